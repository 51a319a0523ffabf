/**
 * Writing and reading objects in any mode through core's `Encryption` facade, with the key store
 * opened only when a mode or an object needs it (so `cp` in mode none never asks for a passphrase,
 * and a wrong passphrase is reported as such rather than as an undecryptable object).
 *
 * @since 0.1.0
 */
import { Effect, Layer, Stream } from "effect"
import type * as Scope from "effect/Scope"
import * as Encryption from "@objcrypt/core/Encryption"
import type * as EncryptionMode from "@objcrypt/core/EncryptionMode"
import { KeyStoreError } from "@objcrypt/core/Errors"
import type { DecryptError, StoreError } from "@objcrypt/core/Errors"
import { KeyStore } from "@objcrypt/core/KeyStore"
import { Kms, type DataKey } from "@objcrypt/core/Kms"
import { KmsError } from "@objcrypt/core/Errors"
import type * as ModeService from "@objcrypt/core/ModeService"
import type * as ObjectStore from "@objcrypt/core/ObjectStore"
import type { LocalFileError, PassphraseUnavailable } from "./CliError.js"
import type * as Session from "./Session.js"

type Store = ObjectStore.ObjectStore["Type"]

/**
 * @since 0.1.0
 * @category models
 */
export type KeyAccessError = KeyStoreError | PassphraseUnavailable | LocalFileError

const locked = (e: KeyAccessError): KeyStoreError =>
  e._tag === "KeyStoreError" ? e : new KeyStoreError({ reason: "Locked", detail: e.message })

/**
 * The key store and KMS as services that open the key store on first use.
 *
 * @since 0.1.0
 * @category layers
 */
export const lazyKeys = (session: Session.Session): Layer.Layer<KeyStore | Kms> =>
  Layer.merge(
    Layer.succeed(KeyStore, {
      resolve: (name, version) => Effect.flatMap(Effect.mapError(session.keys, locked), (k) => k.keyStore.resolve(name, version)),
      resolveId: (id, version) => Effect.flatMap(Effect.mapError(session.keys, locked), (k) => k.keyStore.resolveId(id, version)),
      list: Effect.flatMap(Effect.mapError(session.keys, locked), (k) => k.keyStore.list)
    }),
    Layer.succeed(Kms, {
      kind: "local",
      generateDataKey: (keyId, context): Effect.Effect<DataKey, KmsError> =>
        Effect.flatMap(Effect.mapError(session.keys, kmsLocked), (k) => k.kms.generateDataKey(keyId, context)),
      encrypt: (keyId, plaintext, context) =>
        Effect.flatMap(Effect.mapError(session.keys, kmsLocked), (k) => k.kms.encrypt(keyId, plaintext, context)),
      decrypt: (ciphertext, context, keyId) =>
        Effect.flatMap(Effect.mapError(session.keys, kmsLocked), (k) => k.kms.decrypt(ciphertext, context, keyId))
    })
  )

const kmsLocked = (e: KeyAccessError) => new KmsError({ reason: "Unavailable", detail: `the local key store cannot be opened: ${e.message}` })

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
    return yield* Encryption.put(store, key, body, mode, options).pipe(
      Effect.provide(Encryption.layerAll.pipe(Layer.provide(lazyKeys(session))))
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
  options?: Encryption.ReadOptions
): Effect.Effect<Encryption.ReadResult, StoreError | DecryptError | ModeService.ResolveError | KeyAccessError, Scope.Scope> =>
  Effect.gen(function*() {
    if (options?.customerKey !== undefined) yield* session.keys
    else {
      const info = yield* store.head(key)
      if (Encryption.classify(info).clientSide !== undefined) yield* session.keys
    }
    return yield* Encryption.get(store, key, options).pipe(Effect.provide(decryptor(session)))
  })

/**
 * The facade's `Decryptor` over the lazily opened key store and KMS.
 *
 * @since 0.1.0
 * @category layers
 */
export const decryptor = (session: Session.Session): Layer.Layer<Encryption.Decryptor> =>
  Encryption.layerDecryptor().pipe(Layer.provide(lazyKeys(session)))

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
  Effect.map(Encryption.inspect(store, key, { customerKey }).pipe(Effect.provide(decryptor(session))), (i) => i.info)
