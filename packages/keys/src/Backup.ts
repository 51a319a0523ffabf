/**
 * Backup and restore of the key store: an encrypted, versioned, integrity-checked bundle (the
 * same sealed container as the store, under its own passphrase; see docs/KEYSTORE.md), written to
 * a file or to any `ObjectStore` so a scheduled job can back keys up to a bucket. A bundle of
 * selected keys is an encrypted export bundle. Restoring verifies the whole bundle before the
 * store is touched.
 *
 * @since 0.1.0
 */
import { Effect, Option, Redacted, Schema, Stream } from "effect"
import type { StoreError, UnsupportedMode } from "@objcrypt/core/Errors"
import { KeyStoreError } from "@objcrypt/core/Errors"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import { AuditLog, audited } from "./AuditLog.js"
import * as Container from "./internal/container.js"
import * as Data from "./internal/data.js"
import * as Files from "./internal/files.js"
import { KeyManager } from "./KeyManager.js"
import type { KeyRef, ManagerError, RestoreOptions, RestoreReport, Snapshot } from "./KeyManager.js"

/**
 * Magic bytes opening a backup bundle.
 *
 * @since 0.1.0
 * @category constants
 */
export const MAGIC = "OBJCBKUP"

/**
 * Content type used when a bundle is written to an object store.
 *
 * @since 0.1.0
 * @category constants
 */
export const CONTENT_TYPE = "application/vnd.objcrypt.key-backup"

const Bundle = Schema.Struct({
  format: Schema.Literal("objcrypt-key-backup"),
  version: Schema.Literal(1),
  createdAt: Schema.String,
  source: Schema.String,
  store: Data.StoreData
})

const decodeBundle = Schema.decodeUnknownEither(Schema.parseJson(Bundle))

/**
 * @since 0.1.0
 * @category models
 */
export interface BackupOptions {
  /** The bundle's own passphrase (use a different one from the store's). */
  readonly passphrase: Redacted.Redacted<string>
  /** Only these keys (an export bundle); the whole store by default. */
  readonly keys?: ReadonlyArray<KeyRef> | undefined
  /** @default the key store's default (N = 2^17, r = 8, p = 1) */
  readonly scrypt?: Container.ScryptParams | undefined
  /** Accept scrypt N below 2^15. For tests only. @default false */
  readonly allowLowCost?: boolean | undefined
}

/**
 * What a verified bundle holds (no material).
 *
 * @since 0.1.0
 * @category models
 */
export interface BundleInfo {
  readonly createdAt: Date
  /** The store the bundle was made from. */
  readonly source: string
  readonly keys: ReadonlyArray<{ readonly id: string; readonly name: string; readonly versions: number; readonly state: string }>
  readonly generation: number
}

/**
 * A verified bundle, ready to restore.
 *
 * @since 0.1.0
 * @category models
 */
export interface VerifiedBundle {
  readonly info: BundleInfo
  readonly snapshot: Snapshot
}

/**
 * Seals a snapshot of the store (or of `keys`) into a bundle.
 *
 * @since 0.1.0
 * @category constructors
 */
export const create = (options: BackupOptions): Effect.Effect<Uint8Array, ManagerError, KeyManager> =>
  Effect.gen(function*() {
    const manager = yield* KeyManager
    const scrypt = options.scrypt ?? Container.DEFAULT_SCRYPT
    const bad = Container.validateScrypt(scrypt, options.allowLowCost === true)
    if (bad !== undefined) return yield* new KeyStoreError({ reason: "Invalid", detail: bad })
    const snap = yield* manager.snapshot(options.keys)
    const key = yield* Container.deriveNew(options.passphrase, scrypt)
    const plain = Buffer.from(JSON.stringify({
      format: "objcrypt-key-backup",
      version: 1,
      createdAt: new Date().toISOString(),
      source: manager.location,
      store: Redacted.value(snap.contents)
    }))
    const sealed = Container.seal(MAGIC, key, plain)
    plain.fill(0)
    return sealed
  })

/**
 * Opens and checks a whole bundle: header, passphrase, authentication tag over every byte, and
 * structure. Nothing is restored here.
 *
 * @since 0.1.0
 * @category parsing
 */
export const verify = (
  bytes: Uint8Array,
  passphrase: Redacted.Redacted<string>
): Effect.Effect<VerifiedBundle, KeyStoreError> =>
  Effect.gen(function*() {
    const header = yield* Container.parseHeader(bytes, MAGIC, "backup bundle")
    const key = yield* Container.derive(passphrase, header.salt, header.scrypt)
    const plain = yield* Container.open(bytes, header, key, "backup bundle")
    const text = plain.toString("utf8")
    plain.fill(0)
    const decoded = decodeBundle(text)
    if (decoded._tag === "Left") {
      return yield* new KeyStoreError({ reason: "Corrupt", detail: "backup bundle: contents do not match the expected structure" })
    }
    const bundle = decoded.right
    const ids = new Set(bundle.store.keys.map((k) => k.id))
    const names = new Set(bundle.store.keys.map((k) => k.name))
    if (ids.size !== bundle.store.keys.length || names.size !== bundle.store.keys.length) {
      return yield* new KeyStoreError({ reason: "Corrupt", detail: "backup bundle: duplicate key ids or names" })
    }
    return {
      info: {
        createdAt: new Date(bundle.createdAt),
        source: bundle.source,
        generation: bundle.store.generation,
        keys: bundle.store.keys.map((k) => ({ id: k.id, name: k.name, versions: k.versions.length, state: k.state }))
      },
      snapshot: {
        _tag: "Snapshot",
        keyCount: bundle.store.keys.length,
        generation: bundle.store.generation,
        contents: Redacted.make<unknown>(bundle.store)
      }
    }
  })

/**
 * Verifies a bundle completely, then applies it (merge by default).
 *
 * @since 0.1.0
 * @category combinators
 */
export const restore = (
  bytes: Uint8Array,
  passphrase: Redacted.Redacted<string>,
  options?: RestoreOptions
): Effect.Effect<RestoreReport, KeyStoreError, KeyManager> =>
  Effect.gen(function*() {
    const verified = yield* verify(bytes, passphrase)
    return yield* (yield* KeyManager).restore(verified.snapshot, options)
  })

/**
 * Writes a bundle to a file (atomically, mode 0600).
 *
 * @since 0.1.0
 * @category combinators
 */
export const toFile = (file: string, options: BackupOptions): Effect.Effect<void, ManagerError, KeyManager> =>
  withAudit(
    "backup",
    { target: file },
    Effect.flatMap(create(options), (bytes) => Files.writeAtomic(file, bytes, "the backup bundle"))
  )

/**
 * Reads, verifies and restores a bundle file.
 *
 * @since 0.1.0
 * @category combinators
 */
export const fromFile = (
  file: string,
  passphrase: Redacted.Redacted<string>,
  options?: RestoreOptions
): Effect.Effect<RestoreReport, KeyStoreError, KeyManager> =>
  Effect.gen(function*() {
    const bytes = yield* Files.readIfExists(file, "the backup bundle")
    if (bytes === undefined) return yield* new KeyStoreError({ reason: "Io", detail: `no backup bundle at ${file}` })
    return yield* restore(bytes, passphrase, options)
  })

/**
 * Writes a bundle to an object store under `key` (for example from a scheduled job; see
 * {@link timestampedKey}).
 *
 * @since 0.1.0
 * @category combinators
 */
export const toObjectStore = (
  key: string,
  options: BackupOptions
): Effect.Effect<ObjectStore.PutResult, ManagerError | StoreError | UnsupportedMode, KeyManager | ObjectStore.ObjectStore> =>
  withAudit(
    "backup",
    { target: key },
    Effect.gen(function*() {
      const store = yield* ObjectStore.ObjectStore
      const bytes = yield* create(options)
      return yield* store.put(key, Stream.make(bytes), { contentLength: bytes.length, contentType: CONTENT_TYPE })
    })
  )

/**
 * Reads, verifies and restores a bundle from an object store.
 *
 * @since 0.1.0
 * @category combinators
 */
export const fromObjectStore = (
  key: string,
  passphrase: Redacted.Redacted<string>,
  options?: RestoreOptions
): Effect.Effect<RestoreReport, KeyStoreError | StoreError, KeyManager | ObjectStore.ObjectStore> =>
  Effect.gen(function*() {
    const store = yield* ObjectStore.ObjectStore
    const { bytes } = yield* ObjectStore.readAll(store, key)
    return yield* restore(bytes, passphrase, options)
  })

/**
 * An object key for a backup taken now: `<prefix>keys-<ISO time>.ocbk`, which sorts by time.
 *
 * @since 0.1.0
 * @category utils
 */
export const timestampedKey = (prefix: string, date: Date = new Date()): string =>
  `${prefix}keys-${date.toISOString().replace(/[:.]/g, "-")}.ocbk`

const withAudit = <A, E, R>(operation: string, context: Record<string, string>, effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.serviceOption(AuditLog), (log) =>
    audited(Option.getOrUndefined(log), () => ({ operation, context }), effect))
