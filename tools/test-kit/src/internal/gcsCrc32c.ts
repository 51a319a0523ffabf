/**
 * CRC32C (Castagnoli, RFC 3720) with slicing-by-8 tables: about 8× faster than the client's
 * byte-at-a-time default, which would bound every validated download to ~20 MB/s. A checksum for
 * transfer integrity, not a cryptographic primitive. Used by the GCS test server for the `crc32c` of every object.
 *
 * @since 0.1.0
 */

const TABLES: ReadonlyArray<Int32Array> = (() => {
  const t = Array.from({ length: 8 }, () => new Int32Array(256))
  for (let i = 0; i < 256; i++) {
    let c = i
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
    t[0]![i] = c
  }
  for (let i = 0; i < 256; i++) {
    for (let s = 1; s < 8; s++) t[s]![i] = (t[s - 1]![i]! >>> 8) ^ t[0]![t[s - 1]![i]! & 0xff]!
  }
  return t
})()

/** Continues a CRC32C over `buf` (start with 0). @internal */
export const update = (crc: number, buf: Uint8Array): number => {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES as [Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array]
  let c = ~crc
  const n = buf.length
  const end = n - (n % 8)
  let i = 0
  for (; i < end; i += 8) {
    const a = (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24)) ^ c
    c = t7[a & 0xff]! ^ t6[(a >>> 8) & 0xff]! ^ t5[(a >>> 16) & 0xff]! ^ t4[a >>> 24]! ^
      t3[buf[i + 4]!]! ^ t2[buf[i + 5]!]! ^ t1[buf[i + 6]!]! ^ t0[buf[i + 7]!]!
  }
  for (; i < n; i++) c = t0[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8)
  return ~c >>> 0
}

/** The big-endian base64 form GCS uses (`crc32c` field, `x-goog-hash: crc32c=`). @internal */
export const toBase64 = (crc: number): string => {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(crc >>> 0)
  return b.toString("base64")
}

/** A validator in the shape of the client's `CRC32CValidator`. @internal */
export const generator = () => {
  let crc = 0
  return {
    update: (data: Buffer) => {
      crc = update(crc, data)
    },
    toString: () => toBase64(crc),
    validate: (value: string) => value === toBase64(crc)
  }
}
