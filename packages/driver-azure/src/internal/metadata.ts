/**
 * Azure metadata names must be C# identifiers (`[A-Za-z_][A-Za-z0-9_]*`) and are case-insensitive;
 * values travel in `x-ms-meta-*` headers, which carry only visible ASCII. The contract's names are
 * `[a-z0-9][a-z0-9._-]*` and its values any Unicode text, so both are mapped losslessly:
 *
 * - names: `_` → `__`, `-` → `_h`, `.` → `_d`; a name that starts with a digit gets the prefix
 *   `_n` (so `2fa.code-x_y` is stored as `_n2fa_dcode_hx__y`). Letters and digits stay, so plain
 *   names (`encryptiondata`, `origin`) are stored as they are and other Azure clients see them.
 * - values: visible ASCII without `=?` is stored as is; anything else (non-ASCII, control
 *   characters, leading or trailing spaces, or a value containing `=?`) is stored as one RFC 2047
 *   encoded-word `=?UTF-8?B?<base64 of the UTF-8 bytes>?=`.
 *
 * A stored name that is not a valid encoding (written by another client) is returned lower-cased
 * as it is.
 *
 * @since 0.1.0
 */

const SAFE = /^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/

/** @internal */
export const encodeValue = (v: string): string =>
  v === "" || (SAFE.test(v) && !v.includes("=?")) ? v : `=?UTF-8?B?${Buffer.from(v, "utf8").toString("base64")}?=`

const WORD = /^=\?UTF-8\?B\?([A-Za-z0-9+/]*={0,2})\?=$/i

/** @internal */
export const decodeValue = (v: string): string => {
  const m = WORD.exec(v)
  return m === null ? v : Buffer.from(m[1]!, "base64").toString("utf8")
}

/** @internal */
export const encodeName = (k: string): string => {
  const body = k.replace(/[_.-]/g, (c) => (c === "_" ? "__" : c === "-" ? "_h" : "_d"))
  return /^[0-9]/.test(body) ? `_n${body}` : body
}

/** @internal */
export const decodeName = (stored: string): string => {
  const s = stored.toLowerCase()
  let out = ""
  let i = 0
  if (s.startsWith("_n")) {
    if (!/^[0-9]$/.test(s[2] ?? "")) return s
    i = 2
  } else if (/^[0-9]/.test(s)) return s
  for (; i < s.length; i++) {
    const c = s[i]!
    if (c !== "_") {
      if (!/[a-z0-9]/.test(c)) return s
      out += c
      continue
    }
    const next = s[++i]
    if (next === "_") out += "_"
    else if (next === "h") out += "-"
    else if (next === "d") out += "."
    else return s
  }
  return out === "" ? s : out
}

/** @internal */
export const encodeMetadata = (m: Readonly<Record<string, string>> | undefined): Record<string, string> =>
  m === undefined ? {} : Object.fromEntries(Object.entries(m).map(([k, v]) => [encodeName(k), encodeValue(v)]))

/** @internal */
export const decodeMetadata = (m: Readonly<Record<string, string>> | undefined): Record<string, string> =>
  m === undefined ? {} : Object.fromEntries(Object.entries(m).map(([k, v]) => [decodeName(k), decodeValue(v)]))
