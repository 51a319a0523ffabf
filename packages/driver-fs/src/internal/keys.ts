import { InvalidObjectKey } from "@objcrypt/core/Errors"

/** S3's limit on key length, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 1024

/** Most local file systems (ext4, xfs, btrfs, APFS, NTFS) cap one name at 255 bytes. */
export const MAX_NAME_BYTES = 255

/** Directory-entry name suffixes: a lone `%` never comes out of `encodeSegment`, nor does `%2F`. */
export const OBJECT_SUFFIX = "%"
export const DIR_SUFFIX = "%2F"

/** The staging directory; encoded names never start with ".", so no key can reach it. */
export const STAGING_DIR = ".objcrypt-fs"

/**
 * Encodes one key segment (the text between two `/`) as a file name: `%` becomes `%25`, `\`
 * becomes `%5C` and a leading `.` becomes `%2E`, so no file name is `.`, `..`, hidden or holds a
 * Windows path separator — a key with `.` or `..` segments, a leading `/` or a backslash (all
 * valid S3 keys) is stored as ordinary names under the root, never walks the tree — and the
 * suffixes above stay unambiguous. Everything else (any Unicode) is kept as is.
 */
export const encodeSegment = (segment: string): string => {
  const escaped = segment.replaceAll("%", "%25").replaceAll("\\", "%5C")
  return escaped.startsWith(".") ? "%2E" + escaped.slice(1) : escaped
}

/** The inverse of `encodeSegment`. */
export const decodeSegment = (name: string): string =>
  name.replaceAll(/%2E|%25|%5C/g, (m) => (m === "%2E" ? "." : m === "%5C" ? "\\" : "%"))

/** The directory-entry name of an object whose last segment is `segment`. */
export const objectName = (segment: string): string => encodeSegment(segment) + OBJECT_SUFFIX

/** The directory-entry name of the directory holding keys that continue with `segment + "/"`. */
export const dirName = (segment: string): string => encodeSegment(segment) + DIR_SUFFIX

/** A directory entry read back: its key segment and whether it is an object or a directory. */
export interface ParsedName {
  readonly segment: string
  readonly isDir: boolean
}

/** Parses a directory-entry name; entries that are not ours (staging, foreign files) give `undefined`. */
export const parseName = (name: string): ParsedName | undefined => {
  if (name.startsWith(".")) return undefined
  if (name.endsWith(DIR_SUFFIX)) {
    const body = name.slice(0, -DIR_SUFFIX.length)
    return isEncoded(body) ? { segment: decodeSegment(body), isDir: true } : undefined
  }
  if (name.endsWith(OBJECT_SUFFIX)) {
    const body = name.slice(0, -OBJECT_SUFFIX.length)
    return isEncoded(body) ? { segment: decodeSegment(body), isDir: false } : undefined
  }
  return undefined
}

/** Every `%` starts `%25`, `%5C` or a leading `%2E`: what `encodeSegment` produces. */
const isEncoded = (body: string): boolean => {
  for (let i = body.indexOf("%"); i !== -1; i = body.indexOf("%", i + 1)) {
    const esc = body.slice(i, i + 3)
    if (!(esc === "%25" || esc === "%5C" || (esc === "%2E" && i === 0))) return false
  }
  return true
}

/**
 * Checks a key before any I/O. Keys are S3 keys: up to 1024 UTF-8 bytes, `/` separates segments;
 * `.`/`..` segments, a leading `/` and backslashes are ordinary characters (see `encodeSegment`).
 * Refused: empty, too long, NUL, unpaired surrogates (no UTF-8 form, so no stable name) and a
 * segment whose file name would pass the 255-byte name limit.
 */
export const validateKey = (key: string): InvalidObjectKey | undefined => {
  const bad = (reason: string) => new InvalidObjectKey({ key, reason })
  if (typeof key !== "string" || key.length === 0) return bad("the key is empty")
  if (!(key as string & { isWellFormed(): boolean }).isWellFormed()) return bad("the key is not valid Unicode (unpaired surrogate)")
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) return bad(`the key is longer than ${MAX_KEY_BYTES} bytes`)
  if (key.includes("\0")) return bad("the key contains a NUL character")
  const segments = key.split("/")
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!
    const name = i === segments.length - 1 ? objectName(s) : dirName(s)
    if (Buffer.byteLength(name) > MAX_NAME_BYTES) {
      return bad(`a path segment is longer than the local file system allows (${MAX_NAME_BYTES} bytes per name)`)
    }
  }
  return undefined
}

/** The path of an object's file relative to the root, for a valid key. */
export const objectRelPath = (key: string): { readonly dir: ReadonlyArray<string>; readonly file: string } => {
  const segments = key.split("/")
  const last = segments.pop()!
  return { dir: segments.map(dirName), file: objectName(last) }
}

