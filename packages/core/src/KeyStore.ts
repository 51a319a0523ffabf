/**
 * The key-store contract: named, versioned keys resolved for encryption (by name, primary
 * version) and for decryption (by stable id and version, as envelopes record them).
 *
 * @since 0.1.0
 */
import { Context, Schema } from "effect"
import type { Effect, Redacted } from "effect"
import type { KeyObject } from "node:crypto"
import type { KeyNotFound, KeyStoreError } from "./Errors.js"

/**
 * @since 0.1.0
 * @category models
 */
export const KeyAlgorithm = Schema.Literal("aes-256", "rsa-oaep-256", "x25519")

/**
 * @since 0.1.0
 * @category models
 */
export type KeyAlgorithm = typeof KeyAlgorithm.Type

/**
 * What a key may be used for: wrapping data keys (`wrap`), SSE-C customer key (`sse-c`), a
 * public-key recipient (`recipient`, public part only, or a key pair that can also decrypt).
 *
 * @since 0.1.0
 * @category models
 */
export const KeyPurpose = Schema.Literal("wrap", "sse-c", "recipient")

/**
 * @since 0.1.0
 * @category models
 */
export type KeyPurpose = typeof KeyPurpose.Type

/**
 * @since 0.1.0
 * @category models
 */
export interface KeyInfo {
  /** Stable id, unchanged by renames and rotation. */
  readonly id: string
  readonly name: string
  readonly version: number
  readonly algorithm: KeyAlgorithm
  readonly purpose: KeyPurpose
  readonly primary: boolean
  readonly state: "enabled" | "disabled" | "deleted"
  readonly createdAt: Date
}

/**
 * A key version ready for use. Secret material is only ever `Redacted`.
 *
 * @since 0.1.0
 * @category models
 */
export type ResolvedKey =
  | { readonly _tag: "Symmetric"; readonly info: KeyInfo; readonly material: Redacted.Redacted<Uint8Array> }
  | { readonly _tag: "PublicKey"; readonly info: KeyInfo; readonly publicKey: KeyObject }
  | {
    readonly _tag: "KeyPair"
    readonly info: KeyInfo
    readonly publicKey: KeyObject
    readonly privateKey: Redacted.Redacted<KeyObject>
  }

/**
 * @since 0.1.0
 * @category tags
 */
export class KeyStore extends Context.Tag("@objcrypt/core/KeyStore")<KeyStore, {
  /** By name; without a version, the primary version. */
  readonly resolve: (name: string, version?: number | undefined) => Effect.Effect<ResolvedKey, KeyNotFound | KeyStoreError>
  /** By stable id and version, as recorded in an envelope. */
  readonly resolveId: (id: string, version: number) => Effect.Effect<ResolvedKey, KeyNotFound | KeyStoreError>
  /** Every version of every key (no material). */
  readonly list: Effect.Effect<ReadonlyArray<KeyInfo>, KeyStoreError>
}>() {}
