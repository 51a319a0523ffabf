/**
 * What each server-side mode does, as services. A mode's Layer states in its type what it needs:
 * `SseCMode.layer` needs a `KeyStore` to resolve named customer keys (`layerProvidedKeys` accepts
 * only keys given per request), `SseS3Mode` and `SseKmsMode` need nothing. The client-side modes
 * live in `ClientSide` (`CseCMode` needs a `KeyStore`, `CseKmsMode` a `Kms`).
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Redacted } from "effect"
import * as CustomerKey from "./CustomerKey.js"
import type * as EncryptionMode from "./EncryptionMode.js"
import { KeyNotFound, KeyStoreError, KeyUnusable, InvalidCustomerKey, UnsupportedMode } from "./Errors.js"
import { KeyStore } from "./KeyStore.js"
import type { ObjectStore, ServerSideEncryption } from "./ObjectStore.js"

/**
 * Errors resolving a mode's server-side parameters.
 *
 * @since 0.1.0
 * @category errors
 */
export type ResolveError = KeyNotFound | KeyStoreError | KeyUnusable | InvalidCustomerKey | UnsupportedMode

/**
 * A server-side mode turned into the parameters a driver sends with each request.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerSideMode<T extends "None" | "SseS3" | "SseKms" | "SseC"> {
  readonly tag: T
  /** `undefined` for mode none. */
  readonly resolve: (mode: EncryptionMode.Of<T>) => Effect.Effect<ServerSideEncryption | undefined, ResolveError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class NoneMode extends Context.Tag("@objcrypt/core/ModeService/NoneMode")<NoneMode, ServerSideMode<"None">>() {}

/**
 * @since 0.1.0
 * @category tags
 */
export class SseS3Mode extends Context.Tag("@objcrypt/core/ModeService/SseS3Mode")<SseS3Mode, ServerSideMode<"SseS3">>() {}

/**
 * @since 0.1.0
 * @category tags
 */
export class SseKmsMode extends Context.Tag("@objcrypt/core/ModeService/SseKmsMode")<SseKmsMode, ServerSideMode<"SseKms">>() {}

/**
 * @since 0.1.0
 * @category tags
 */
export class SseCMode extends Context.Tag("@objcrypt/core/ModeService/SseCMode")<SseCMode, ServerSideMode<"SseC">>() {}

/**
 * @since 0.1.0
 * @category layers
 */
export const layerNone: Layer.Layer<NoneMode> = Layer.succeed(NoneMode, { tag: "None", resolve: () => Effect.succeed(undefined) })

/**
 * @since 0.1.0
 * @category layers
 */
export const layerSseS3: Layer.Layer<SseS3Mode> = Layer.succeed(SseS3Mode, {
  tag: "SseS3",
  resolve: () => Effect.succeed({ _tag: "SseS3" })
})

/**
 * @since 0.1.0
 * @category layers
 */
export const layerSseKms: Layer.Layer<SseKmsMode> = Layer.succeed(SseKmsMode, {
  tag: "SseKms",
  resolve: (mode) => Effect.succeed({ _tag: "SseKms", keyId: mode.keyId, context: mode.context, bucketKey: mode.bucketKey })
})

const providedOnly = (ref: EncryptionMode.KeyRef): Effect.Effect<CustomerKey.CustomerKey, ResolveError> =>
  ref._tag === "ProvidedKey" ? Effect.succeed(ref.key) : Effect.fail(new KeyNotFound({ name: ref.name, version: ref.version }))

/**
 * SSE-C with customer keys given per request only (the gateway's case).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSseCProvidedKeys: Layer.Layer<SseCMode> = Layer.succeed(SseCMode, {
  tag: "SseC",
  resolve: (mode) => Effect.map(providedOnly(mode.key), (key) => ({ _tag: "SseC", key }))
})

/**
 * Resolves a customer key: given per request, or a named `sse-c` (or `wrap`) AES-256 key from the key store.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolveCustomerKey = (
  keys: KeyStore["Type"],
  ref: EncryptionMode.KeyRef
): Effect.Effect<CustomerKey.CustomerKey, ResolveError> =>
  ref._tag === "ProvidedKey"
    ? Effect.succeed(ref.key)
    : Effect.gen(function*() {
      const k = yield* keys.resolve(ref.name, ref.version)
      if (k._tag !== "Symmetric") {
        return yield* new KeyUnusable({ name: ref.name, reason: "an SSE-C customer key must be a symmetric AES-256 key" })
      }
      if (k.info.state !== "enabled") return yield* new KeyUnusable({ name: ref.name, reason: `the key is ${k.info.state}` })
      return yield* CustomerKey.fromBytes(Redacted.value(k.material))
    })

/**
 * SSE-C with named keys from the key store as well as per-request keys.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSseC: Layer.Layer<SseCMode, never, KeyStore> = Layer.effect(
  SseCMode,
  Effect.map(KeyStore, (keys) => ({
    tag: "SseC" as const,
    resolve: (mode: EncryptionMode.Of<"SseC">) =>
      Effect.map(resolveCustomerKey(keys, mode.key), (key): ServerSideEncryption => ({ _tag: "SseC", key }))
  }))
)

/**
 * Checks a server-side mode against what the store honours, before any byte is sent.
 *
 * @since 0.1.0
 * @category guards
 */
export const ensureNative = (
  store: ObjectStore["Type"],
  tag: EncryptionMode.ModeTag
): Effect.Effect<void, UnsupportedMode> =>
  tag === "None" || store.nativeModes.has(tag)
    ? Effect.void
    : Effect.fail(
      new UnsupportedMode({
        provider: `${store.provider} (${store.location})`,
        mode: tag,
        reason: "this store does not offer it natively",
        alternatives: ["use cse-c", "use cse-kms", "put the objcrypt gateway in front"]
      })
    )
