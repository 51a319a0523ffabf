/**
 * Every failure a user must tell apart, as tagged errors. Messages are built from fields only and
 * never contain key material.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

const ModeTagSchema = Schema.Literal("None", "SseS3", "SseKms", "SseC", "CseC", "CseKms")

/**
 * A mode the provider (or this particular bucket) cannot honour. Raised before any byte is sent.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnsupportedMode extends Schema.TaggedError<UnsupportedMode>("@objcrypt/core/UnsupportedMode")(
  "UnsupportedMode",
  {
    provider: Schema.String,
    mode: ModeTagSchema,
    reason: Schema.String,
    alternatives: Schema.Array(Schema.String)
  }
) {
  override get message() {
    const alt = this.alternatives.length > 0 ? `: ${this.alternatives.join(", or ")}` : ""
    return `${this.provider} does not support ${modeLabel(this.mode)} (${this.reason})${alt}`
  }
}

/**
 * The object does not exist.
 *
 * @since 0.1.0
 * @category errors
 */
export class ObjectNotFound extends Schema.TaggedError<ObjectNotFound>("@objcrypt/core/ObjectNotFound")(
  "ObjectNotFound",
  { key: Schema.String }
) {
  override get message() {
    return `no object at ${JSON.stringify(this.key)}`
  }
}

/**
 * An object key the store refuses: empty, too long, escaping the root, containing NUL…
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidObjectKey extends Schema.TaggedError<InvalidObjectKey>("@objcrypt/core/InvalidObjectKey")(
  "InvalidObjectKey",
  { key: Schema.String, reason: Schema.String }
) {
  override get message() {
    return `invalid object key ${JSON.stringify(this.key)}: ${this.reason}`
  }
}

/**
 * A byte range that cannot be satisfied (HTTP 416).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidRange extends Schema.TaggedError<InvalidRange>("@objcrypt/core/InvalidRange")(
  "InvalidRange",
  { key: Schema.String, range: Schema.String, size: Schema.Number }
) {
  override get message() {
    return `range ${this.range} is not satisfiable for ${JSON.stringify(this.key)} of ${this.size} bytes`
  }
}

/**
 * A conditional request failed (If-Match / If-None-Match) or a multipart upload is unknown.
 *
 * @since 0.1.0
 * @category errors
 */
export class PreconditionFailed extends Schema.TaggedError<PreconditionFailed>("@objcrypt/core/PreconditionFailed")(
  "PreconditionFailed",
  { key: Schema.String, reason: Schema.String }
) {
  override get message() {
    return `precondition failed for ${JSON.stringify(this.key)}: ${this.reason}`
  }
}

/**
 * The store refused the credentials, or the SSE-C key given does not match the object's.
 *
 * @since 0.1.0
 * @category errors
 */
export class AccessDenied extends Schema.TaggedError<AccessDenied>("@objcrypt/core/AccessDenied")(
  "AccessDenied",
  { provider: Schema.String, operation: Schema.String, key: Schema.optional(Schema.String), reason: Schema.String }
) {
  override get message() {
    return `${this.provider} denied ${this.operation}${this.key === undefined ? "" : ` on ${JSON.stringify(this.key)}`}: ${this.reason}`
  }
}

/**
 * Any other failure of the storage provider or the file system. `code` is the SDK's or the
 * system's error name/code, never the request.
 *
 * @since 0.1.0
 * @category errors
 */
export class ProviderError extends Schema.TaggedError<ProviderError>("@objcrypt/core/ProviderError")(
  "ProviderError",
  {
    provider: Schema.String,
    operation: Schema.String,
    key: Schema.optional(Schema.String),
    code: Schema.String,
    detail: Schema.String,
    status: Schema.optional(Schema.Number)
  }
) {
  override get message() {
    return `${this.provider} ${this.operation}${this.key === undefined ? "" : ` ${JSON.stringify(this.key)}`} failed: ${this.code}${this.detail ? ` (${this.detail})` : ""}`
  }
}

/**
 * Errors an `ObjectStore` may fail with.
 *
 * @since 0.1.0
 * @category errors
 */
export const StoreError = Schema.Union(ObjectNotFound, InvalidObjectKey, InvalidRange, PreconditionFailed, AccessDenied, ProviderError)

/**
 * @since 0.1.0
 * @category errors
 */
export type StoreError = typeof StoreError.Type

/**
 * A customer-provided key (SSE-C, or an imported raw key) that cannot be used.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidCustomerKey extends Schema.TaggedError<InvalidCustomerKey>("@objcrypt/core/InvalidCustomerKey")(
  "InvalidCustomerKey",
  { reason: Schema.Literal("WrongLength", "Md5Mismatch", "BadEncoding", "UnsupportedAlgorithm", "Missing"), detail: Schema.String }
) {
  override get message() {
    return `invalid customer key: ${this.reason} (${this.detail})`
  }
}

/**
 * Encryption parameters that cannot be parsed (flags, config or S3 headers).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidEncryptionParameters extends Schema.TaggedError<InvalidEncryptionParameters>(
  "@objcrypt/core/InvalidEncryptionParameters"
)("InvalidEncryptionParameters", { detail: Schema.String }) {
  override get message() {
    return `invalid encryption parameters: ${this.detail}`
  }
}

/**
 * A key that is not in the key store (or not that version).
 *
 * @since 0.1.0
 * @category errors
 */
export class KeyNotFound extends Schema.TaggedError<KeyNotFound>("@objcrypt/core/KeyNotFound")(
  "KeyNotFound",
  { name: Schema.String, version: Schema.optional(Schema.Number) }
) {
  override get message() {
    return `no key ${JSON.stringify(this.name)}${this.version === undefined ? "" : ` version ${this.version}`} in the key store`
  }
}

/**
 * A key exists but cannot serve this purpose (e.g. a public key asked to decrypt).
 *
 * @since 0.1.0
 * @category errors
 */
export class KeyUnusable extends Schema.TaggedError<KeyUnusable>("@objcrypt/core/KeyUnusable")(
  "KeyUnusable",
  { name: Schema.String, reason: Schema.String }
) {
  override get message() {
    return `key ${JSON.stringify(this.name)} cannot be used: ${this.reason}`
  }
}

/**
 * The key store itself failed: locked, wrong passphrase, corrupt, I/O.
 *
 * @since 0.1.0
 * @category errors
 */
export class KeyStoreError extends Schema.TaggedError<KeyStoreError>("@objcrypt/core/KeyStoreError")(
  "KeyStoreError",
  {
    reason: Schema.Literal("WrongPassphrase", "Corrupt", "Locked", "Io", "Invalid", "Exists", "Refused"),
    detail: Schema.String
  }
) {
  override get message() {
    return `key store: ${this.reason} (${this.detail})`
  }
}

/**
 * A KMS call failed. `reason` mirrors the AWS KMS exceptions users must tell apart.
 *
 * @since 0.1.0
 * @category errors
 */
export class KmsError extends Schema.TaggedError<KmsError>("@objcrypt/core/KmsError")(
  "KmsError",
  {
    reason: Schema.Literal("NotFound", "Disabled", "InvalidCiphertext", "ContextMismatch", "AccessDenied", "InvalidState", "Unavailable", "Invalid"),
    keyId: Schema.optional(Schema.String),
    detail: Schema.String
  }
) {
  override get message() {
    return `KMS ${this.reason}${this.keyId === undefined ? "" : ` for key ${this.keyId}`}: ${this.detail}`
  }
}

/**
 * A client-side encrypted object that cannot be decrypted. Each reason is a distinct failure; no
 * plaintext from the failing segment onward is ever released.
 *
 * @since 0.1.0
 * @category errors
 */
export class DecryptError extends Schema.TaggedError<DecryptError>("@objcrypt/core/DecryptError")(
  "DecryptError",
  {
    reason: Schema.Literal(
      "WrongKey",
      "CommitmentMismatch",
      "Tampered",
      "Truncated",
      "Reordered",
      "TrailingData",
      "MissingMetadata",
      "MalformedMetadata",
      "UnknownFormat",
      "ContextMismatch",
      "NoUsableKey"
    ),
    key: Schema.String,
    detail: Schema.optional(Schema.String)
  }
) {
  override get message() {
    return `cannot decrypt ${JSON.stringify(this.key)}: ${this.reason}${this.detail === undefined ? "" : ` (${this.detail})`}`
  }
}

/**
 * Encrypting failed (e.g. an envelope too large, a bad recipient key).
 *
 * @since 0.1.0
 * @category errors
 */
export class EncryptError extends Schema.TaggedError<EncryptError>("@objcrypt/core/EncryptError")(
  "EncryptError",
  { key: Schema.String, reason: Schema.String }
) {
  override get message() {
    return `cannot encrypt ${JSON.stringify(this.key)}: ${this.reason}`
  }
}

/**
 * Every error objcrypt's core may raise, for encoders (CLI JSON, gateway XML).
 *
 * @since 0.1.0
 * @category errors
 */
export const ObjcryptError = Schema.Union(
  UnsupportedMode,
  ObjectNotFound,
  InvalidObjectKey,
  InvalidRange,
  PreconditionFailed,
  AccessDenied,
  ProviderError,
  InvalidCustomerKey,
  InvalidEncryptionParameters,
  KeyNotFound,
  KeyUnusable,
  KeyStoreError,
  KmsError,
  DecryptError,
  EncryptError
)

/**
 * @since 0.1.0
 * @category errors
 */
export type ObjcryptError = typeof ObjcryptError.Type

const modeLabel = (tag: string): string =>
  ({ None: "none", SseS3: "sse-s3", SseKms: "sse-kms", SseC: "sse-c", CseC: "cse-c", CseKms: "cse-kms" } as Record<string, string>)[tag] ?? tag
