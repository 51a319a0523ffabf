/**
 * A 256-bit customer-provided key (SSE-C, Azure CPK, GCS CSEK), held only as `Redacted` bytes.
 *
 * @since 0.1.0
 */
import { Effect, Redacted } from "effect"
import * as crypto from "node:crypto"
import { InvalidCustomerKey } from "./Errors.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface CustomerKey {
  readonly _tag: "CustomerKey"
  /** The 32 key bytes. Unwrap only on the line that hands them to `crypto` or an SDK. */
  readonly material: Redacted.Redacted<Uint8Array>
  /** Base64 MD5 of the key, as S3 and IBM COS expect in `x-amz-server-side-encryption-customer-key-MD5`. */
  readonly md5: string
  /** Base64 SHA-256 of the key, as Azure (`x-ms-encryption-key-sha256`) and GCS (`x-goog-encryption-key-sha256`) expect. */
  readonly sha256: string
}

/**
 * Length of an AES-256 key in bytes.
 *
 * @since 0.1.0
 * @category constants
 */
export const KEY_LENGTH = 32

/**
 * Builds a customer key from raw bytes; the bytes are copied.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromBytes = (bytes: Uint8Array): Effect.Effect<CustomerKey, InvalidCustomerKey> =>
  bytes.length !== KEY_LENGTH
    ? Effect.fail(new InvalidCustomerKey({ reason: "WrongLength", detail: `expected ${KEY_LENGTH} bytes, got ${bytes.length}` }))
    : Effect.sync(() => unsafeFromBytes(bytes))

/**
 * As {@link fromBytes}, for callers that already checked the length.
 *
 * @since 0.1.0
 * @category constructors
 */
export const unsafeFromBytes = (bytes: Uint8Array): CustomerKey => {
  const copy = Uint8Array.from(bytes)
  return {
    _tag: "CustomerKey",
    material: Redacted.make(copy),
    md5: crypto.createHash("md5").update(copy).digest("base64"),
    sha256: crypto.createHash("sha256").update(copy).digest("base64")
  }
}

/**
 * A fresh random key from `crypto.randomBytes`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const generate: Effect.Effect<CustomerKey> = Effect.sync(() => unsafeFromBytes(crypto.randomBytes(KEY_LENGTH)))

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

/**
 * Decodes a base64 key and, when given, checks it against its base64 MD5 in constant time — the
 * check S3 performs on `x-amz-server-side-encryption-customer-key` / `-key-MD5`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromBase64 = (
  keyBase64: string,
  md5Base64?: string | undefined
): Effect.Effect<CustomerKey, InvalidCustomerKey> =>
  Effect.gen(function*() {
    const trimmed = keyBase64.trim()
    if (trimmed.length === 0 || trimmed.length % 4 !== 0 || !BASE64.test(trimmed)) {
      return yield* new InvalidCustomerKey({ reason: "BadEncoding", detail: "the key is not valid base64" })
    }
    const key = yield* fromBytes(Buffer.from(trimmed, "base64"))
    if (md5Base64 !== undefined && !digestEquals(key.md5, md5Base64.trim())) {
      return yield* new InvalidCustomerKey({ reason: "Md5Mismatch", detail: "the key MD5 does not match the key" })
    }
    return key
  })

/**
 * Compares two base64 digests in constant time.
 *
 * @since 0.1.0
 * @category utils
 */
export const digestEquals = (a: string, b: string): boolean => {
  const x = Buffer.from(a, "base64")
  const y = Buffer.from(b, "base64")
  return x.length === y.length && x.length > 0 && crypto.timingSafeEqual(x, y)
}

/**
 * True when two keys are the same, compared in constant time.
 *
 * @since 0.1.0
 * @category utils
 */
export const equals = (a: CustomerKey, b: CustomerKey): boolean =>
  crypto.timingSafeEqual(Redacted.value(a.material), Redacted.value(b.material))
