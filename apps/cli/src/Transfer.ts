/**
 * Writing and reading objects in any mode through core's `Encryption` facade, with the key store
 * opened only when a mode or an object needs it (so `cp` in mode none never asks for a passphrase,
 * and a wrong passphrase is reported as such rather than as an undecryptable object).
 *
 * @since 0.1.0
 */
import { Effect, Layer, Option, Stream } from "effect"
import type * as Scope from "effect/Scope"
import * as Encryption from "@objcrypt/core/Encryption"
import type * as EncryptionMode from "@objcrypt/core/EncryptionMode"
import { EncryptError, KeyStoreError } from "@objcrypt/core/Errors"
import type { DecryptError, InvalidEncryptionParameters, StoreError } from "@objcrypt/core/Errors"
import { KeyStore } from "@objcrypt/core/KeyStore"
import { Kms, type DataKey } from "@objcrypt/core/Kms"
import { KmsError } from "@objcrypt/core/Errors"
import type * as ModeService from "@objcrypt/core/ModeService"
import type * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as S3EC from "@objcrypt/core/S3EncryptionClient"
import type { ConfigError, LocalFileError, PassphraseUnavailable, UsageError } from "./CliError.js"
import * as Formats from "./Formats.js"
import * as Stores from "./Stores.js"
import type * as Session from "./Session.js"

type Store = ObjectStore.ObjectStore["Type"]

/**
 * @since 0.1.0
 * @category models
 */
export type KeyAccessError = KeyStoreError | PassphraseUnavailable | LocalFileError | ConfigError | UsageError

const locked = (e: KeyStoreError | PassphraseUnavailable | LocalFileError): KeyStoreError =>
  e._tag === "KeyStoreError" ? e : new KeyStoreError({ reason: "Locked", detail: e.message })

/**
 * The KMS a store's cse-kms uses (`Session.kmsFor`), the local one when the store is not known.
 *
 * @since 0.1.0
 * @category layers
 */
export const kmsOf = (session: Session.Session, store?: Store | undefined) => {
  const spec = store === undefined ? undefined : session.specOf(store)
  return spec === undefined ? Effect.map(session.keys, (k) => k.kms) : session.kmsFor(spec)
}

/**
 * The key store and KMS as services that open the key store (and the store's KMS) on first use.
 * Data keys are made by the store's KMS; a wrapped key is opened by the KMS its key id belongs to
 * (a local key id by the local KMS, any other by the store's).
 *
 * @since 0.1.0
 * @category layers
 */
export const lazyKeys = (session: Session.Session, store?: Store | undefined): Layer.Layer<KeyStore | Kms> => {
  const spec = store === undefined ? undefined : session.specOf(store)
  const chosen = Effect.mapError(kmsOf(session, store), kmsUnavailable)
  const local = Effect.mapError(Effect.map(session.keys, (k) => k.kms), kmsUnavailable)
  return Layer.merge(
    Layer.succeed(KeyStore, {
      resolve: (name, version) => Effect.flatMap(Effect.mapError(session.keys, locked), (k) => k.keyStore.resolve(name, version)),
      resolveId: (id, version) => Effect.flatMap(Effect.mapError(session.keys, locked), (k) => k.keyStore.resolveId(id, version)),
      list: Effect.flatMap(Effect.mapError(session.keys, locked), (k) => k.keyStore.list)
    }),
    Layer.effect(
      Kms,
      Effect.map(
        Effect.either(spec === undefined ? Effect.succeed({ type: "local" as const }) : session.kmsSpecFor(spec)),
        (k) => ({
          kind: k._tag === "Right" ? Stores.kindOfSpec(k.right) : "local",
          generateDataKey: (keyId, context): Effect.Effect<DataKey, KmsError> => Effect.flatMap(chosen, (kms) => kms.generateDataKey(keyId, context)),
          encrypt: (keyId, plaintext, context) => Effect.flatMap(chosen, (kms) => kms.encrypt(keyId, plaintext, context)),
          decrypt: (ciphertext, context, keyId) =>
            Effect.flatMap(
              keyId !== undefined && Stores.kmsKindOf(keyId) === "local" ? local : chosen,
              (kms) => kms.decrypt(ciphertext, context, keyId)
            )
        }) satisfies Kms["Type"]
      )
    )
  )
}

const kmsUnavailable = (e: { readonly message: string }) => new KmsError({ reason: "Unavailable", detail: e.message })


/**
 * @since 0.1.0
 * @category models
 */
export interface PutOptions {
  readonly contentLength?: number | undefined
  readonly contentType?: string | undefined
  /** Plaintext bytes per part (client-side multipart). */
  readonly partSize?: number | undefined
  /** Parts in flight at once. */
  readonly concurrency?: number | undefined
  /** The client-side format (checked with `Formats.check` beforehand). @default "native" */
  readonly format?: Formats.FormatName | undefined
  /** The body's chunks are valid only until the next pull (see `ClientSide.PutOptions.borrowedBody`). */
  readonly borrowedBody?: boolean | undefined
}

/**
 * Stores `body` under `key` in `mode`. Atomic: a failed or interrupted put leaves no object.
 *
 * @since 0.1.0
 * @category writing
 */
export const put = <E>(
  session: Session.Session,
  store: Store,
  key: string,
  body: Stream.Stream<Uint8Array, E>,
  mode: EncryptionMode.EncryptionMode,
  options?: PutOptions
): Effect.Effect<Encryption.PutResult, E | Encryption.PutError | KeyAccessError> =>
  Effect.gen(function*() {
    // Modes with keys open the key store first, so its own errors (wrong passphrase…) surface.
    if (mode._tag === "SseC" || mode._tag === "CseC" || mode._tag === "CseKms") yield* session.keys
    // The store's KMS opens first too, so a configuration error is reported as one.
    const kms = mode._tag === "CseKms" ? yield* kmsOf(session, store) : undefined
    const format = options?.format ?? "native"
    if (format !== "native" && (mode._tag === "CseC" || mode._tag === "CseKms")) {
      // These formats may keep chunks (parts being filled): borrowed ones are copied.
      if (options?.borrowedBody === true) body = Stream.map(body, (c) => new Uint8Array(c))
      const keys = yield* session.keys
      if (format === "azure-v2") {
        if (mode._tag !== "CseC") return yield* new EncryptError({ key, reason: "azure-v2 needs cse-c" })
        const kek = yield* Formats.azureKek(mode, keys.keyStore)
        const AzureCse = yield* Formats.azureCse
        const r = yield* AzureCse.put(store, key, body, kek, { contentLength: options?.contentLength, contentType: options?.contentType })
        return { ...r, mode: mode._tag, clientSide: {
            plaintextSize: options?.contentLength ?? Option.getOrElse(AzureCse.plaintextLength(r.size, AzureCse.REGION_DATA_LENGTH), () => 0),
            envelope: "metadata",
            parts: 1
          }
        } satisfies Encryption.PutResult
      }
      const wrapping = yield* Formats.s3ecWrapping(mode, keys.keyStore, kms ?? keys.kms)
      const r = yield* S3EC.put(store, key, body, {
        wrapping,
        commitmentPolicy: format === "s3ec-v2" ? "ForbidEncryptAllowDecrypt" : "RequireEncryptRequireDecrypt",
        kmsContext: mode._tag === "CseKms" ? mode.context : undefined,
        contentLength: options?.contentLength,
        contentType: options?.contentType
      })
      return {
        key: r.key,
        etag: r.etag,
        size: r.size,
        encryption: r.encryption,
        mode: mode._tag,
        clientSide: { plaintextSize: r.plaintextSize, envelope: "metadata", parts: 1 }
      } satisfies Encryption.PutResult
    }
    return yield* Encryption.put(store, key, body, mode, options).pipe(
      Effect.provide(Encryption.layerAll.pipe(Layer.provide(lazyKeys(session, store))))
    )
  })

/**
 * Opens any object: client-side objects are decrypted (the key store is opened only then), SSE-C
 * objects read with `customerKey`.
 *
 * @since 0.1.0
 * @category reading
 */
export const get = (
  session: Session.Session,
  store: Store,
  key: string,
  options?: ReadOptions
): Effect.Effect<
  Encryption.ReadResult,
  StoreError | DecryptError | ModeService.ResolveError | KeyAccessError | InvalidEncryptionParameters,
  Scope.Scope
> =>
  Effect.gen(function*() {
    if (options?.customerKey !== undefined) yield* session.keys
    else {
      const info = yield* store.head(key)
      const found = yield* Formats.detect(store, info, { instructionFiles: true })
      if (found.problem !== undefined) return yield* Effect.fail(found.problem)
      if (found.format === "aws-s3ec") {
        const keys = yield* session.keys
        const obj = yield* S3EC.get(store, key, {
          materials: { keyStore: keys.keyStore, kms: found.mode === "cse-kms" ? yield* kmsOf(session, store) : keys.kms },
          // V2 objects (no key commitment) are read as well: AWS's clients still write them.
          commitmentPolicy: "RequireEncryptAllowDecrypt",
          // The recorded KMS context is authenticated by the KMS itself (a changed context fails
          // to decrypt); the CLI has no other expectation of it, so it is passed back as recorded.
          kmsContext: found.s3ec === undefined
            ? undefined
            : Object.fromEntries(Object.entries(found.s3ec.kmsContext).filter(([k]) => k !== "aws:x-amz-cek-alg")),
          range: options?.range,
          unauthenticatedRanges: options?.unauthenticatedRanges
        }).pipe(Effect.provide(S3EC.layerNodeSpool()))
        return { info: obj.info, mode: found.mode === "cse-kms" ? "CseKms" : "CseC", size: obj.plaintextSize, range: obj.range, body: obj.body }
      }
      if (found.format === "azure-cse" && found.azure !== undefined) {
        const keys = yield* session.keys
        const resolver = yield* Formats.azureResolver(key, found.azure, keys.keyStore)
        const obj = yield* (yield* Formats.azureCse).get(store, key, resolver, { range: options?.range })
        return { info: obj.info, mode: "CseC", size: obj.info.size, range: obj.range, body: obj.body }
      }
      if (found.format === "native") yield* session.keys
    }
    return yield* Encryption.get(store, key, options).pipe(Effect.provide(decryptor(session, store)))
  })

/**
 * @since 0.1.0
 * @category models
 */
export interface ReadOptions extends Encryption.ReadOptions {
  /** Allow ranged reads of S3 Encryption Client objects (AES-CTR, not authenticated). */
  readonly unauthenticatedRanges?: boolean | undefined
}

/**
 * The facade's `Decryptor` over the lazily opened key store and KMS.
 *
 * @since 0.1.0
 * @category layers
 */
export const decryptor = (session: Session.Session, store?: Store | undefined): Layer.Layer<Encryption.Decryptor> =>
  Encryption.layerDecryptor().pipe(Layer.provide(lazyKeys(session, store)))

/**
 * Heads an object, with its SSE-C key when one is named.
 *
 * @since 0.1.0
 * @category reading
 */
export const head = (
  session: Session.Session,
  store: Store,
  key: string,
  customerKey?: EncryptionMode.KeyRef | undefined
): Effect.Effect<ObjectStore.ObjectInfo, StoreError | DecryptError | ModeService.ResolveError> =>
  Effect.map(Encryption.inspect(store, key, { customerKey }).pipe(Effect.provide(decryptor(session, store))), (i) => i.info)
