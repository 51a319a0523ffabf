/**
 * The KMS service's ciphertext blob: a 36-byte header naming the key (id and version) and the
 * AES-GCM nonce, then the AES-256-GCM ciphertext and tag; the header and the canonical encryption
 * context are the AAD. The layout is the local KMS's (`@objcrypt/keys/LocalKms`), so blobs name
 * their key and `Decrypt` needs no key id. Specified with a test vector in docs/KMS.md.
 *
 * @since 0.1.0
 */
import { canonicalContext } from "@objcrypt/keys/LocalKms"
import { Option } from "effect"
import * as crypto from "node:crypto"

/**
 * `"ock"` and format version 1.
 *
 * @since 0.1.0
 * @category constants
 */
export const MAGIC: Uint8Array = Uint8Array.from([0x6f, 0x63, 0x6b, 0x01])

/**
 * @since 0.1.0
 * @category constants
 */
export const HEADER_LENGTH = 36

/**
 * @since 0.1.0
 * @category constants
 */
export const IV_LENGTH = 12

/**
 * @since 0.1.0
 * @category constants
 */
export const TAG_LENGTH = 16

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/**
 * A blob split into its parts (nothing decrypted).
 *
 * @since 0.1.0
 * @category models
 */
export interface Parsed {
  /** The key's id, a lower-case UUID. */
  readonly keyId: string
  readonly version: number
  readonly header: Buffer
  readonly iv: Buffer
  /** Ciphertext followed by the 16-byte tag. */
  readonly sealed: Buffer
}

/**
 * True for a lower-case UUID, the form key ids take.
 *
 * @since 0.1.0
 * @category utils
 */
export const isKeyId = (s: string): boolean => UUID.test(s)

/**
 * Builds the header for a key id, version and nonce.
 *
 * @since 0.1.0
 * @category encoding
 */
export const header = (keyId: string, version: number, iv: Uint8Array): Buffer => {
  if (!isKeyId(keyId)) throw new TypeError("a key id is a lower-case UUID")
  if (iv.length !== IV_LENGTH) throw new TypeError("the nonce is 12 bytes")
  const h = Buffer.alloc(HEADER_LENGTH)
  h.set(MAGIC, 0)
  Buffer.from(keyId.replace(/-/g, ""), "hex").copy(h, 4)
  h.writeUInt32BE(version, 20)
  h.set(iv, 24)
  return h
}

/**
 * Splits a blob; `None` when it is too short or not this format.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = (blob: Uint8Array): Option.Option<Parsed> => {
  const b = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength)
  if (b.length < HEADER_LENGTH + TAG_LENGTH || !b.subarray(0, 4).equals(MAGIC)) return Option.none()
  const hex = b.subarray(4, 20).toString("hex")
  return Option.some({
    keyId: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
    version: b.readUInt32BE(20),
    header: b.subarray(0, HEADER_LENGTH),
    iv: b.subarray(24, HEADER_LENGTH),
    sealed: b.subarray(HEADER_LENGTH)
  })
}

/**
 * The AAD: the header followed by the canonical encryption context (see `LocalKms.canonicalContext`).
 *
 * @since 0.1.0
 * @category encoding
 */
export const aad = (headerBytes: Uint8Array, context: Readonly<Record<string, string>>): Buffer =>
  Buffer.concat([headerBytes, canonicalContext(context)])

/**
 * Seals with a key held in memory. `iv` is fresh random bytes except in test vectors.
 *
 * @since 0.1.0
 * @category encryption
 */
export const seal = (
  key: crypto.KeyObject,
  keyId: string,
  version: number,
  plaintext: Uint8Array,
  context: Readonly<Record<string, string>>,
  iv: Uint8Array = crypto.randomBytes(IV_LENGTH)
): Uint8Array => {
  const h = header(keyId, version, iv)
  const cipher = crypto.createCipheriv("aes-256-gcm", key, iv)
  cipher.setAAD(aad(h, context))
  return new Uint8Array(Buffer.concat([h, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]))
}

/**
 * Opens with a key held in memory; `None` when the blob is damaged or the context differs.
 *
 * @since 0.1.0
 * @category encryption
 */
export const open = (key: crypto.KeyObject, parsed: Parsed, context: Readonly<Record<string, string>>): Option.Option<Buffer> => {
  try {
    const decipher = crypto.createDecipheriv("aes-256-gcm", key, parsed.iv)
    decipher.setAAD(aad(parsed.header, context))
    decipher.setAuthTag(parsed.sealed.subarray(parsed.sealed.length - TAG_LENGTH))
    return Option.some(Buffer.concat([decipher.update(parsed.sealed.subarray(0, parsed.sealed.length - TAG_LENGTH)), decipher.final()]))
  } catch {
    return Option.none()
  }
}
