/**
 * User metadata travels in HTTP headers, which carry only visible ASCII. Values outside it are sent
 * as RFC 2047 encoded-words (`=?UTF-8?B?…?=`), as Amazon S3 documents for non-ASCII metadata; S3
 * decodes them before storing and re-encodes on reads, other servers store them as sent. Both are
 * decoded here.
 *
 * @since 0.1.0
 */

const SAFE = /^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/

/** @internal */
export const encodeValue = (v: string): string =>
  v === "" || (SAFE.test(v) && !v.includes("=?")) ? v : `=?UTF-8?B?${Buffer.from(v, "utf8").toString("base64")}?=`

const WORD = /=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g

/** @internal */
export const decodeValue = (v: string): string => {
  if (!v.includes("=?")) return v
  // Whitespace between two adjacent encoded-words is not part of the text (RFC 2047 §6.2).
  const joined = v.replace(/\?=\s+=\?/g, "?==?")
  return joined.replace(WORD, (whole, charset: string, enc: string, text: string) => {
    if (!/^utf-?8$/i.test(charset) && !/^us-ascii$/i.test(charset)) return whole
    if (enc.toUpperCase() === "B") return Buffer.from(text, "base64").toString("utf8")
    const bytes = text.replace(/_/g, " ").replace(/=([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)))
    return Buffer.from(bytes, "latin1").toString("utf8")
  })
}

/**
 * Ceph RGW turns `_` into `-` in metadata names. On such servers names are escaped injectively
 * into `[a-z0-9.-]`: `.` → `.d`, `_` → `.u` (a name with neither is sent unchanged).
 *
 * @internal
 */
export const escapeName = (k: string): string => (/[._]/.test(k) ? k.replace(/\./g, ".d").replace(/_/g, ".u") : k)

/** @internal */
export const unescapeName = (k: string): string => (k.includes(".") ? k.replace(/\.([du])/g, (_m, c: string) => (c === "d" ? "." : "_")) : k)

/** @internal */
export const encodeMetadata = (
  m: Readonly<Record<string, string>> | undefined,
  escapeNames = false
): Record<string, string> | undefined =>
  m === undefined ? undefined : Object.fromEntries(Object.entries(m).map(([k, v]) => [escapeNames ? escapeName(k) : k, encodeValue(v)]))

/** @internal */
export const decodeMetadata = (m: Readonly<Record<string, string>> | undefined, escapeNames = false): Record<string, string> =>
  m === undefined
    ? {}
    : Object.fromEntries(Object.entries(m).map(([k, v]) => {
      const name = k.toLowerCase()
      return [escapeNames ? unescapeName(name) : name, decodeValue(v)]
    }))
