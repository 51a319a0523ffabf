/**
 * The object file: a fixed 12-byte preamble, a JSON header, then the object's bytes.
 *
 *   0..3   "OCFS"
 *   4      format version (1)
 *   5..7   zero
 *   8..11  header length N, big-endian u32
 *   12..   N bytes of UTF-8 JSON (`Header`), padded with spaces
 *   12+N.. the object's bytes
 *
 * Keeping data and metadata in one file makes a single rename publish both at once.
 */

export const MAGIC = Buffer.from("OCFS", "latin1")
export const VERSION = 1
export const PREAMBLE = 12

/** Bytes read at once when opening an object: enough for the preamble and most headers. */
export const HEAD_READ = 16 * 1024

export interface Header {
  readonly key: string
  readonly size: number
  readonly etag: string
  /** Milliseconds since the epoch. */
  readonly mtime: number
  readonly contentType?: string | undefined
  readonly metadata: Readonly<Record<string, string>>
}

/**
 * The header length for an object whose key, content type and metadata are known but whose etag,
 * size and time are not yet: the widest values they can take are used, and the real header is
 * padded to this length, so the body can be written first at its final offset.
 */
export const reservedHeaderLength = (h: Pick<Header, "key" | "contentType" | "metadata">): number =>
  Buffer.byteLength(
    serialize({ ...h, size: Number.MAX_SAFE_INTEGER, etag: "f".repeat(32) + "-10000", mtime: 99_999_999_999_999 })
  )

const serialize = (h: Header): string =>
  JSON.stringify({
    v: VERSION,
    key: h.key,
    size: h.size,
    etag: h.etag,
    mtime: h.mtime,
    ...(h.contentType === undefined ? {} : { contentType: h.contentType }),
    metadata: h.metadata
  })

/** The preamble and header, padded to `length` bytes of JSON. */
export const encodeHeader = (h: Header, length: number): Buffer => {
  const json = Buffer.from(serialize(h))
  if (json.length > length) throw new Error("header longer than reserved")
  const out = Buffer.alloc(PREAMBLE + length, 0x20)
  MAGIC.copy(out, 0)
  out.writeUInt8(VERSION, 4)
  out.fill(0, 5, 8)
  out.writeUInt32BE(length, 8)
  json.copy(out, PREAMBLE)
  return out
}

/** The header length declared by a preamble, or `undefined` when it is not an object file. */
export const headerLength = (preamble: Uint8Array): number | undefined => {
  if (preamble.length < PREAMBLE) return undefined
  const b = Buffer.from(preamble.buffer, preamble.byteOffset, preamble.byteLength)
  if (!b.subarray(0, 4).equals(MAGIC) || b.readUInt8(4) !== VERSION) return undefined
  const n = b.readUInt32BE(8)
  return n > 0 && n <= 16 * 1024 * 1024 ? n : undefined
}

/** Parses the JSON header; `undefined` when it is malformed. */
export const decodeHeader = (json: Uint8Array): Header | undefined => {
  try {
    const o = JSON.parse(Buffer.from(json.buffer, json.byteOffset, json.byteLength).toString("utf8")) as Record<string, unknown>
    if (
      o.v !== VERSION || typeof o.key !== "string" || typeof o.size !== "number" || typeof o.etag !== "string" ||
      typeof o.mtime !== "number" || (o.contentType !== undefined && typeof o.contentType !== "string") ||
      typeof o.metadata !== "object" || o.metadata === null
    ) {
      return undefined
    }
    const metadata: Record<string, string> = {}
    for (const [k, v] of Object.entries(o.metadata as Record<string, unknown>)) {
      if (typeof v !== "string") return undefined
      metadata[k] = v
    }
    return { key: o.key, size: o.size, etag: o.etag, mtime: o.mtime, contentType: o.contentType as string | undefined, metadata }
  } catch {
    return undefined
  }
}
