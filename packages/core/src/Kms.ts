/**
 * The KMS contract: data keys generated and wrapped by a key-management service, bound to an
 * encryption context. Implemented by `@objcrypt/keys` (local KMS) and by drivers for their cloud.
 *
 * @since 0.1.0
 */
import { Context } from "effect"
import type { Effect, Redacted } from "effect"
import type { EncryptionContext } from "./EncryptionMode.js"
import type { KmsError } from "./Errors.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface DataKey {
  /** The key that wrapped it, fully resolved (ARN, or id and version). */
  readonly keyId: string
  readonly plaintext: Redacted.Redacted<Uint8Array>
  /** Opaque ciphertext blob: store it, give it back to `decrypt`. */
  readonly ciphertext: Uint8Array
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Kms extends Context.Tag("@objcrypt/core/Kms")<Kms, {
  /** `"local"`, `"aws-kms"`, `"gcp-kms"`, `"azure-key-vault"`… recorded in envelopes. */
  readonly kind: string
  /** A fresh 256-bit data key, in plaintext and wrapped under `keyId` with `context` as AAD. */
  readonly generateDataKey: (keyId: string, context: EncryptionContext) => Effect.Effect<DataKey, KmsError>
  readonly encrypt: (
    keyId: string,
    plaintext: Redacted.Redacted<Uint8Array>,
    context: EncryptionContext
  ) => Effect.Effect<{ readonly keyId: string; readonly ciphertext: Uint8Array }, KmsError>
  /** Fails with `KmsError` `InvalidCiphertext` or `ContextMismatch` when the blob or context is wrong. */
  readonly decrypt: (
    ciphertext: Uint8Array,
    context: EncryptionContext,
    keyId?: string | undefined
  ) => Effect.Effect<{ readonly keyId: string; readonly plaintext: Redacted.Redacted<Uint8Array> }, KmsError>
}>() {}
