/**
 * Independent spec arithmetic for the S3EC tests: RFC 5869 HKDF written out with HMAC-SHA512 (not
 * `crypto.hkdfSync`, which the implementation uses) and a plain AES-GCM open.
 */
import * as crypto from "node:crypto"

export const hkdfSha512 = (ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Buffer => {
  const prk = crypto.createHmac("sha512", salt).update(ikm).digest()
  const blocks: Array<Buffer> = []
  let previous = Buffer.alloc(0)
  for (let i = 1; Buffer.concat(blocks).length < length; i++) {
    previous = crypto.createHmac("sha512", prk).update(Buffer.concat([previous, info, Buffer.from([i])])).digest()
    blocks.push(previous)
  }
  return Buffer.concat(blocks).subarray(0, length)
}

/** Opens `ciphertext ‖ tag(16)`. */
export const manualGcmOpen = (key: Uint8Array, iv: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): Buffer => {
  const d = crypto.createDecipheriv("aes-256-gcm", key, iv)
  if (aad !== undefined) d.setAAD(aad)
  d.setAuthTag(sealed.subarray(sealed.length - 16))
  return Buffer.concat([d.update(sealed.subarray(0, sealed.length - 16)), d.final()])
}
