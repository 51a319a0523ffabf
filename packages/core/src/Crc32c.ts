/**
 * CRC32C (Castagnoli, RFC 3720; the checksum GCS keeps for every object and S3 accepts as
 * `x-amz-checksum-crc32c`), computed slicing-by-8: about 8× faster than byte at a time, which
 * would bound a validated transfer to ~20 MB/s. A checksum for transfer integrity, not a
 * cryptographic primitive. Values are the finalised CRC as an unsigned 32-bit number; pass the
 * value of the bytes so far to continue over more.
 *
 * @since 0.1.0
 */

// Reflected polynomial 0x82F63B78; table s maps a byte to its contribution s bytes further on.
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

/**
 * The CRC32C of `bytes` following bytes whose CRC32C was `crc` (0 at the start).
 *
 * @since 0.1.0
 * @category computing
 */
export const update = (crc: number, bytes: Uint8Array): number => {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES as [Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array]
  let c = ~crc
  const n = bytes.length
  const end = n - (n % 8)
  let i = 0
  for (; i < end; i += 8) {
    const a = (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24)) ^ c
    c = t7[a & 0xff]! ^ t6[(a >>> 8) & 0xff]! ^ t5[(a >>> 16) & 0xff]! ^ t4[a >>> 24]! ^
      t3[bytes[i + 4]!]! ^ t2[bytes[i + 5]!]! ^ t1[bytes[i + 6]!]! ^ t0[bytes[i + 7]!]!
  }
  for (; i < n; i++) c = t0[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8)
  return ~c >>> 0
}

/**
 * The CRC32C of bytes held in memory.
 *
 * @since 0.1.0
 * @category computing
 */
export const of = (bytes: Uint8Array): number => update(0, bytes)

/**
 * The big-endian base64 form GCS (`crc32c`, `x-goog-hash: crc32c=`) and S3 (`x-amz-checksum-crc32c`) use.
 *
 * @since 0.1.0
 * @category encoding
 */
export const toBase64 = (crc: number): string => {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(crc >>> 0)
  return b.toString("base64")
}
