/**
 * The local key store: one file, encrypted at rest under a passphrase-derived key (scrypt,
 * parameters stored in the header; AES-256-GCM over the whole body with the header as AAD), mode
 * 0600, replaced atomically, and locked so concurrent processes never corrupt it. The file format
 * is specified in docs/KEYSTORE.md.
 *
 * Provides the core `KeyStore` contract and the richer `KeyManager`.
 *
 * @since 0.1.0
 */
import { Config, Context, Duration, Effect, Layer, Option, Redacted, Ref } from "effect"
import { InvalidCustomerKey, KeyNotFound, KeyStoreError, KeyUnusable } from "@objcrypt/core/Errors"
import { KeyStore } from "@objcrypt/core/KeyStore"
import type { KeyAlgorithm, KeyInfo, KeyPurpose, ResolvedKey } from "@objcrypt/core/KeyStore"
import * as crypto from "node:crypto"
import * as path from "node:path"
import { AuditLog, audited } from "./AuditLog.js"
import type { AuditEntry } from "./AuditLog.js"
import * as Container from "./internal/container.js"
import * as Data from "./internal/data.js"
import * as Files from "./internal/files.js"
import { KeyManager } from "./KeyManager.js"
import type { KeyDetails, PrimaryInfo, RestoreReport, Snapshot, VersionDetails } from "./KeyManager.js"
import * as KeyMaterial from "./KeyMaterial.js"

/**
 * Magic bytes opening a key store file.
 *
 * @since 0.1.0
 * @category constants
 */
export const MAGIC = "OBJCKEYS"

/**
 * @since 0.1.0
 * @category models
 */
export type ScryptParams = Container.ScryptParams

/**
 * Scrypt cost for new stores: N = 2^17, r = 8, p = 1 (128 MiB, a fraction of a second).
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_SCRYPT: ScryptParams = Container.DEFAULT_SCRYPT

/**
 * @since 0.1.0
 * @category models
 */
export interface LocalKeyStoreConfig {
  /** The store file; created (with its directory, mode 0700) on the first write. */
  readonly path: string
  readonly passphrase: Redacted.Redacted<string>
  /** Scrypt cost for a new store or a passphrase change. @default DEFAULT_SCRYPT */
  readonly scrypt?: ScryptParams | undefined
  /** Accept scrypt N below 2^15. For tests only: a low cost makes the passphrase cheap to guess. @default false */
  readonly allowLowCost?: boolean | undefined
  /** How long to wait for another process's lock before failing with `Locked`. @default 10 seconds */
  readonly lockTimeout?: Duration.DurationInput | undefined
}

/**
 * The key store service: the core contract and the manager, over the same file.
 *
 * @since 0.1.0
 * @category models
 */
export interface LocalKeyStore {
  readonly keyStore: KeyStore["Type"]
  readonly manager: KeyManager["Type"]
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/**
 * A valid key or alias name: letters, digits, `.`, `_`, `-`, at most 128, not shaped like an id.
 *
 * @since 0.1.0
 * @category utils
 */
export const isValidName = (name: string): boolean => NAME.test(name) && !UUID.test(name)

type Mutable<T> = { -readonly [K in keyof T]: T[K] extends ReadonlyArray<infer U> ? Array<U> : T[K] }

const refused = (detail: string) => new KeyStoreError({ reason: "Refused", detail })
const invalid = (detail: string) => new KeyStoreError({ reason: "Invalid", detail })

interface ParsedRef {
  readonly base: string
  readonly version: number | undefined
}

const parseRef = (ref: string): ParsedRef => {
  const m = /^(.+)@(\d{1,9})$/.exec(ref.trim())
  return m === null ? { base: ref.trim(), version: undefined } : { base: m[1]!, version: Number(m[2]) }
}

const findKey = (data: Data.StoreData, base: string): Data.KeyRecord | undefined => {
  if (base.startsWith("alias/")) {
    const alias = base.slice(6)
    const id = data.aliases[alias]
    return id !== undefined ? data.keys.find((k) => k.id === id) : data.keys.find((k) => k.name === alias)
  }
  return data.keys.find((k) => k.id === base) ?? data.keys.find((k) => k.name === base)
}

const versionState = (k: Data.KeyRecord, v: Data.VersionRecord): "enabled" | "disabled" | "deleted" =>
  k.state === "deleted" || v.state === "deleted"
    ? "deleted"
    : k.state === "disabled" || v.state === "disabled"
    ? "disabled"
    : "enabled"

const toInfo = (k: Data.KeyRecord, v: Data.VersionRecord): KeyInfo => ({
  id: k.id,
  name: k.name,
  version: v.version,
  algorithm: k.algorithm,
  purpose: k.purpose,
  primary: v.version === k.primaryVersion,
  state: versionState(k, v),
  createdAt: new Date(v.createdAt)
})

const toDetails = (data: Data.StoreData, k: Data.KeyRecord): KeyDetails => ({
  id: k.id,
  name: k.name,
  algorithm: k.algorithm,
  purpose: k.purpose,
  description: k.description,
  extractable: k.extractable,
  state: k.state,
  createdAt: new Date(k.createdAt),
  deletedAt: k.deletedAt === undefined ? undefined : new Date(k.deletedAt),
  primaryVersion: k.primaryVersion,
  aliases: Object.entries(data.aliases).filter(([, id]) => id === k.id).map(([a]) => a).sort(),
  versions: k.versions.map((v): VersionDetails => ({
    version: v.version,
    state: v.state,
    primary: v.version === k.primaryVersion,
    origin: v.origin,
    createdAt: new Date(v.createdAt),
    deletedAt: v.deletedAt === undefined ? undefined : new Date(v.deletedAt),
    fingerprint: v.fingerprint,
    hasPrivate: v.material.kind !== "public"
  }))
})

const toResolved = (k: Data.KeyRecord, v: Data.VersionRecord): ResolvedKey => {
  const info = toInfo(k, v)
  const m = Data.fromStored(v.material, k.algorithm)
  switch (m._tag) {
    case "Symmetric":
      return { _tag: "Symmetric", info, material: m.bytes }
    case "PublicKey":
      return { _tag: "PublicKey", info, publicKey: m.publicKey }
    case "KeyPair":
      return { _tag: "KeyPair", info, publicKey: m.publicKey, privateKey: m.privateKey }
  }
}

const defaultPurpose = (algorithm: KeyAlgorithm): KeyPurpose => (algorithm === "aes-256" ? "wrap" : "recipient")

const checkPurpose = (algorithm: KeyAlgorithm, purpose: KeyPurpose): KeyStoreError | undefined =>
  (algorithm === "aes-256") === (purpose === "recipient")
    ? invalid(`purpose ${purpose} does not fit a ${algorithm} key (aes-256: wrap or sse-c; rsa-oaep-256/x25519: recipient)`)
    : undefined

const now = () => new Date().toISOString()

const replaceKey = (data: Data.StoreData, k: Data.KeyRecord): Data.StoreData => ({
  ...data,
  keys: data.keys.map((x) => (x.id === k.id ? k : x))
})

/** Looks a ref up; every failure is `KeyNotFound` naming the ref as typed. */
const lookup = (data: Data.StoreData, ref: string) =>
  Effect.suspend(() => {
    const p = parseRef(ref)
    const k = findKey(data, p.base)
    if (k === undefined) return Effect.fail(new KeyNotFound({ name: ref }))
    if (p.version === undefined) return Effect.succeed({ key: k, version: undefined as Data.VersionRecord | undefined })
    const v = k.versions.find((x) => x.version === p.version)
    return v === undefined
      ? Effect.fail(new KeyNotFound({ name: k.name, version: p.version }))
      : Effect.succeed({ key: k, version: v as Data.VersionRecord | undefined })
  })

/** A key and version usable now: deleted is not found, disabled is unusable. */
const usable = (
  data: Data.StoreData,
  ref: string
): Effect.Effect<{ readonly key: Data.KeyRecord; readonly version: Data.VersionRecord }, KeyNotFound | KeyUnusable> =>
  Effect.flatMap(lookup(data, ref), ({ key, version }): Effect.Effect<{ readonly key: Data.KeyRecord; readonly version: Data.VersionRecord }, KeyNotFound | KeyUnusable> => {
    if (key.state === "deleted") return Effect.fail(new KeyNotFound({ name: ref }))
    const v = version ?? key.versions.find((x) => x.version === key.primaryVersion)
    if (v === undefined || v.state === "deleted") {
      return Effect.fail(new KeyNotFound({ name: key.name, version: v?.version ?? key.primaryVersion }))
    }
    if (key.state === "disabled" || v.state === "disabled") {
      return Effect.fail(
        new KeyUnusable({ name: key.name, reason: key.state === "disabled" ? "the key is disabled" : `version ${v.version} is disabled` })
      )
    }
    return Effect.succeed({ key, version: v })
  })

/**
 * Opens (or prepares to create) a key store. An existing file is read and decrypted now, so a
 * wrong passphrase or a corrupt store fails here. Uses an `AuditLog` when one is provided.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (config: LocalKeyStoreConfig): Effect.Effect<LocalKeyStore, KeyStoreError> =>
  Effect.gen(function*() {
    const file = path.resolve(config.path)
    const scrypt = config.scrypt ?? Container.DEFAULT_SCRYPT
    const allowLowCost = config.allowLowCost === true
    const badCost = Container.validateScrypt(scrypt, allowLowCost)
    if (badCost !== undefined) return yield* invalid(badCost)
    const lockTimeout = config.lockTimeout ?? Duration.seconds(10)
    const log = Option.getOrUndefined(yield* Effect.serviceOption(AuditLog))
    const passphrase = yield* Ref.make(config.passphrase)
    const derived = yield* Ref.make<Container.DerivedKey | undefined>(undefined)
    const cache = yield* Ref.make<{ readonly identity: string; readonly data: Data.StoreData } | undefined>(undefined)

    const keyFor = (header: Container.Header) =>
      Effect.gen(function*() {
        const current = yield* Ref.get(derived)
        if (current !== undefined && Container.matches(current, header)) return current
        const k = yield* Container.derive(yield* Ref.get(passphrase), header.salt, header.scrypt)
        yield* Ref.set(derived, k)
        return k
      })

    const read: Effect.Effect<{ readonly data: Data.StoreData; readonly exists: boolean }, KeyStoreError> = Effect.gen(
      function*() {
        const identity = yield* Files.identity(file)
        if (identity === undefined) return { data: Data.empty, exists: false }
        const cached = yield* Ref.get(cache)
        if (cached !== undefined && cached.identity === identity) return { data: cached.data, exists: true }
        const bytes = yield* Files.readIfExists(file)
        if (bytes === undefined) return { data: Data.empty, exists: false }
        const header = yield* Container.parseHeader(bytes, MAGIC, "key store")
        const key = yield* keyFor(header)
        const data = yield* Data.parse(yield* Container.open(bytes, header, key, "key store"), "key store")
        yield* Ref.set(cache, { identity, data })
        return { data, exists: true }
      }
    )

    const write = (data: Data.StoreData, exists: boolean) =>
      Effect.gen(function*() {
        let key = yield* Ref.get(derived)
        if (!exists || key === undefined) {
          key = yield* Container.deriveNew(yield* Ref.get(passphrase), scrypt)
          yield* Ref.set(derived, key)
        }
        const next = { ...data, generation: data.generation + 1 }
        const plain = Data.serialize(next)
        const sealed = Container.seal(MAGIC, key, plain)
        plain.fill(0)
        yield* Files.writeAtomic(file, sealed)
        const identity = yield* Files.identity(file)
        yield* Ref.set(cache, identity === undefined ? undefined : { identity, data: next })
      })

    /** Read-modify-write under the lock; `f` returning `undefined` data writes nothing. */
    const mutate = <A, E>(
      f: (data: Data.StoreData) => Effect.Effect<readonly [Data.StoreData | undefined, A], E>
    ): Effect.Effect<A, E | KeyStoreError> =>
      Effect.scoped(
        Effect.gen(function*() {
          yield* Files.lock(file, lockTimeout)
          const { data, exists } = yield* read
          const [next, a] = yield* f(data)
          if (next !== undefined) yield* write(next, exists)
          return a
        })
      )

    const entry = (operation: string, ref?: string, extra?: Partial<AuditEntry>) =>
    (details: { readonly id: string; readonly name: string; readonly primaryVersion?: number } | undefined) => ({
      operation,
      keyId: details?.id,
      keyName: details?.name ?? ref,
      version: extra?.version ?? details?.primaryVersion,
      ...extra
    })

    const ensureNameFree = (data: Data.StoreData, name: string, exceptId?: string) => {
      if (!isValidName(name)) {
        return Effect.fail(invalid("a key name is 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit"))
      }
      const clash = data.keys.find((k) => k.name === name && k.id !== exceptId)
      return clash === undefined ? Effect.void : Effect.fail(
        new KeyStoreError({
          reason: "Exists",
          detail: clash.state === "deleted"
            ? `a deleted key named ${JSON.stringify(name)} still exists: purge it or undelete it`
            : `a key named ${JSON.stringify(name)} already exists`
        })
      )
    }

    const addKey = (
      options: {
        readonly name: string
        readonly purpose?: KeyPurpose | undefined
        readonly description?: string | undefined
        readonly extractable?: boolean | undefined
      },
      material: KeyMaterial.KeyMaterial,
      origin: "generated" | "imported"
    ) =>
      mutate((data) =>
        Effect.gen(function*() {
          yield* ensureNameFree(data, options.name)
          const purpose = options.purpose ?? defaultPurpose(material.algorithm)
          const badPurpose = checkPurpose(material.algorithm, purpose)
          if (badPurpose !== undefined) return yield* badPurpose
          const time = now()
          const record: Data.KeyRecord = {
            id: crypto.randomUUID(),
            name: options.name,
            algorithm: material.algorithm,
            purpose,
            description: options.description,
            extractable: options.extractable ?? true,
            state: "enabled",
            createdAt: time,
            primaryVersion: 1,
            versions: [{
              version: 1,
              createdAt: time,
              state: "enabled",
              origin,
              fingerprint: KeyMaterial.fingerprint(material),
              material: Data.toStored(material)
            }]
          }
          const next = { ...data, keys: [...data.keys, record] }
          return [next, toDetails(next, record)] as const
        })
      )

    const generate: KeyManager["Type"]["generate"] = (options) =>
      audited(
        log,
        entry("generate", options.name),
        Effect.gen(function*() {
          const algorithm = options.algorithm ?? "aes-256"
          const material = yield* KeyMaterial.generate(algorithm, options)
          return yield* addKey(options, material, "generated")
        })
      )

    const importKey: KeyManager["Type"]["import"] = (options) =>
      audited(
        log,
        entry("import", options.name),
        Effect.flatMap(KeyMaterial.decode(options.material, options.format ?? "auto"), (m) => addKey(options, m, "imported"))
      )

    const exportKey: KeyManager["Type"]["export"] = (ref, options) =>
      audited(
        log,
        (r) => ({ operation: "export", keyName: ref, keyId: r?.id, version: r?.version, context: { format: options.format } }),
        Effect.gen(function*() {
          const { data } = yield* read
          const { key, version } = yield* lookup(data, ref)
          if (key.state === "deleted") return yield* new KeyNotFound({ name: ref })
          const v = version ?? key.versions.find((x) => x.version === key.primaryVersion)
          if (v === undefined || v.state === "deleted") return yield* new KeyNotFound({ name: key.name, version: v?.version })
          const secret = v.material.kind === "symmetric" || options.includePrivate === true
          if (secret && !key.extractable) {
            return yield* new KeyUnusable({ name: key.name, reason: "the key is not extractable: its material cannot be exported" })
          }
          const out = yield* KeyMaterial.encode(Data.fromStored(v.material, key.algorithm), options.format, options)
          return { id: key.id, version: v.version, out }
        })
      ).pipe(Effect.map((r) => r.out))

    const rotate: KeyManager["Type"]["rotate"] = (ref, options) =>
      audited(
        log,
        entry("rotate", ref),
        Effect.gen(function*() {
          const supplied = options?.material === undefined
            ? undefined
            : yield* KeyMaterial.decode(options.material, options.format ?? "auto")
          return yield* mutate((data) =>
            Effect.gen(function*() {
              const { key } = yield* lookup(data, parseRef(ref).base)
              if (key.state === "deleted") return yield* new KeyNotFound({ name: ref })
              if (key.state === "disabled") return yield* new KeyUnusable({ name: key.name, reason: "the key is disabled" })
              const primary = key.versions.find((v) => v.version === key.primaryVersion)
              let material: KeyMaterial.KeyMaterial
              if (supplied !== undefined) {
                if (supplied.algorithm !== key.algorithm) {
                  return yield* new InvalidCustomerKey({
                    reason: "UnsupportedAlgorithm",
                    detail: `the new material is ${supplied.algorithm}, the key is ${key.algorithm}`
                  })
                }
                material = supplied
              } else if (primary?.material.kind === "public") {
                return yield* new InvalidCustomerKey({
                  reason: "Missing",
                  detail: "a public-key recipient is rotated by importing its new public key"
                })
              } else {
                const current = primary === undefined ? undefined : Data.fromStored(primary.material, key.algorithm)
                const modulusLength = current !== undefined && current._tag !== "Symmetric"
                  ? current.publicKey.asymmetricKeyDetails?.modulusLength
                  : undefined
                material = yield* KeyMaterial.generate(key.algorithm, { modulusLength })
              }
              const version = Math.max(...key.versions.map((v) => v.version)) + 1
              const next: Data.KeyRecord = {
                ...key,
                primaryVersion: version,
                versions: [...key.versions, {
                  version,
                  createdAt: now(),
                  state: "enabled",
                  origin: supplied === undefined ? "generated" : "imported",
                  fingerprint: KeyMaterial.fingerprint(material),
                  material: Data.toStored(material)
                }]
              }
              const nextData = replaceKey(data, next)
              return [nextData, toDetails(nextData, next)] as const
            })
          )
        })
      )

    /** Applies a state change to a key or a version. */
    const transition = (
      operation: string,
      ref: string,
      f: (
        key: Data.KeyRecord,
        version: Data.VersionRecord | undefined
      ) => Effect.Effect<Data.KeyRecord, KeyStoreError | KeyUnusable | KeyNotFound>
    ) =>
      audited(
        log,
        entry(operation, ref, { version: parseRef(ref).version }),
        mutate((data) =>
          Effect.gen(function*() {
            const { key, version } = yield* lookup(data, ref)
            const next = yield* f(key, version)
            const nextData = replaceKey(data, next)
            return [nextData, toDetails(nextData, next)] as const
          })
        )
      )

    const setVersion = (key: Data.KeyRecord, v: Data.VersionRecord, patch: Partial<Mutable<Data.VersionRecord>>) => ({
      ...key,
      versions: key.versions.map((x) => (x.version === v.version ? { ...x, ...patch } : x))
    })

    const enable: KeyManager["Type"]["enable"] = (ref) =>
      transition("enable", ref, (key, v) => {
        if (key.state === "deleted" || v?.state === "deleted") return Effect.fail(refused("deleted: undelete it first"))
        return Effect.succeed(v === undefined ? { ...key, state: "enabled" as const } : setVersion(key, v, { state: "enabled" }))
      })

    const disable: KeyManager["Type"]["disable"] = (ref) =>
      transition("disable", ref, (key, v) => {
        if (key.state === "deleted" || v?.state === "deleted") return Effect.fail(refused("deleted: undelete it first"))
        if (v === undefined) return Effect.succeed({ ...key, state: "disabled" as const })
        if (v.version === key.primaryVersion) {
          return Effect.fail(refused(`version ${v.version} is the primary of ${key.name}: rotate first, or disable the whole key`))
        }
        return Effect.succeed(setVersion(key, v, { state: "disabled" }))
      })

    const remove: KeyManager["Type"]["delete"] = (ref, options) =>
      transition("delete", ref, (key, v) => {
        const force = options?.force === true
        if (key.state === "deleted") return Effect.succeed(key)
        if (v === undefined) {
          if (key.state === "enabled" && !force) {
            return Effect.fail(
              refused(`${key.name} is enabled and its primary version ${key.primaryVersion} is in use: disable it first or force`)
            )
          }
          return Effect.succeed({ ...key, state: "deleted" as const, deletedAt: now() })
        }
        if (v.state === "deleted") return Effect.succeed(key)
        const deleted = setVersion(key, v, { state: "deleted", deletedAt: now() })
        if (v.version !== key.primaryVersion) return Effect.succeed(deleted)
        if (!force) {
          return Effect.fail(refused(`version ${v.version} is the primary of ${key.name}: rotate first or force`))
        }
        const successor = key.versions.filter((x) => x.version !== v.version && x.state === "enabled")
          .reduce<number | undefined>((m, x) => (m === undefined || x.version > m ? x.version : m), undefined)
        if (successor === undefined) {
          return Effect.fail(refused(`version ${v.version} is the only usable version of ${key.name}: delete the key instead`))
        }
        return Effect.succeed({ ...deleted, primaryVersion: successor })
      })

    const undelete: KeyManager["Type"]["undelete"] = (ref) =>
      transition("undelete", ref, (key, v) => {
        if (v === undefined) {
          return key.state === "deleted"
            ? Effect.succeed({ ...key, state: "disabled" as const, deletedAt: undefined })
            : Effect.fail(refused(`${key.name} is not deleted`))
        }
        return v.state === "deleted"
          ? Effect.succeed(setVersion(key, v, { state: "disabled", deletedAt: undefined }))
          : Effect.fail(refused(`version ${v.version} of ${key.name} is not deleted`))
      })

    const purge: KeyManager["Type"]["purge"] = (ref) =>
      audited(
        log,
        entry("purge", ref, { version: parseRef(ref).version }),
        mutate((data) =>
          Effect.gen(function*() {
            const { key, version } = yield* lookup(data, ref)
            if (version === undefined) {
              if (key.state !== "deleted") return yield* refused(`${key.name} must be deleted before it is purged`)
              const next: Data.StoreData = {
                ...data,
                keys: data.keys.filter((k) => k.id !== key.id),
                aliases: Object.fromEntries(Object.entries(data.aliases).filter(([, id]) => id !== key.id))
              }
              return [next, key] as const
            }
            if (version.state !== "deleted") {
              return yield* refused(`version ${version.version} of ${key.name} must be deleted before it is purged`)
            }
            const next = { ...key, versions: key.versions.filter((v) => v.version !== version.version) }
            if (next.versions.length === 0) return yield* refused(`that is the last version of ${key.name}: purge the key`)
            return [replaceKey(data, next), key] as const
          })
        )
      ).pipe(Effect.asVoid)

    const rename: KeyManager["Type"]["rename"] = (ref, newName) =>
      audited(
        log,
        entry("rename", ref, { context: { newName } }),
        mutate((data) =>
          Effect.gen(function*() {
            const { key } = yield* lookup(data, parseRef(ref).base)
            if (key.state === "deleted") return yield* new KeyNotFound({ name: ref })
            yield* ensureNameFree(data, newName, key.id)
            const next = { ...key, name: newName }
            const nextData = replaceKey(data, next)
            return [nextData, toDetails(nextData, next)] as const
          })
        )
      )

    const setAlias: KeyManager["Type"]["setAlias"] = (alias, ref) =>
      audited(
        log,
        entry("alias.set", ref, { context: { alias } }),
        mutate((data) =>
          Effect.gen(function*() {
            const name = alias.startsWith("alias/") ? alias.slice(6) : alias
            if (!isValidName(name)) return yield* invalid("an alias is 1 to 128 letters, digits, '.', '_' or '-'")
            const { key } = yield* lookup(data, parseRef(ref).base)
            if (key.state === "deleted") return yield* new KeyNotFound({ name: ref })
            return [{ ...data, aliases: { ...data.aliases, [name]: key.id } }, key] as const
          })
        )
      ).pipe(Effect.asVoid)

    const removeAlias: KeyManager["Type"]["removeAlias"] = (alias) =>
      audited(
        log,
        () => ({ operation: "alias.remove", keyName: alias }),
        mutate((data) => {
          const name = alias.startsWith("alias/") ? alias.slice(6) : alias
          if (data.aliases[name] === undefined) return Effect.fail(new KeyNotFound({ name: `alias/${name}` }))
          const aliases = { ...data.aliases }
          delete aliases[name]
          return Effect.succeed([{ ...data, aliases }, undefined] as const)
        })
      )

    const list: KeyManager["Type"]["list"] = (options) =>
      Effect.map(read, ({ data }) =>
        data.keys.filter((k) => options?.includeDeleted === true || k.state !== "deleted").map((k) => toDetails(data, k)))

    const show: KeyManager["Type"]["show"] = (ref) =>
      Effect.gen(function*() {
        const { data } = yield* read
        const { key } = yield* lookup(data, parseRef(ref).base)
        return toDetails(data, key)
      })

    const versionsOf: KeyManager["Type"]["versionsOf"] = (ref) =>
      Effect.gen(function*() {
        const { data } = yield* read
        const { key } = yield* lookup(data, parseRef(ref).base)
        return key.versions.map((v) => toInfo(key, v))
      })

    const primaryOf: KeyManager["Type"]["primaryOf"] = (ref) =>
      Effect.gen(function*() {
        const { data } = yield* read
        const { key, version } = yield* lookup(data, ref)
        const v = version?.version ?? key.primaryVersion
        return { id: key.id, name: key.name, version: v, primaryVersion: key.primaryVersion, isPrimary: v === key.primaryVersion } satisfies PrimaryInfo
      })

    // Not audited here: callers (the KeyStore contract below, LocalKms) record their own operation.
    const resolveRef: KeyManager["Type"]["resolveRef"] = (ref) =>
      Effect.gen(function*() {
        const { data } = yield* read
        const { key, version } = yield* usable(data, ref)
        return toResolved(key, version)
      })

    const auditedResolve = <E>(ref: string, effect: Effect.Effect<ResolvedKey, E>) =>
      audited(log, (r) => ({ operation: "resolve", keyName: r?.info.name ?? ref, keyId: r?.info.id, version: r?.info.version }), effect)

    const changePassphrase: KeyManager["Type"]["changePassphrase"] = (next) =>
      audited(
        log,
        () => ({ operation: "change-passphrase" }),
        Effect.scoped(Effect.gen(function*() {
          yield* Files.lock(file, lockTimeout)
          const { data } = yield* read
          const key = yield* Container.deriveNew(next, scrypt)
          yield* Ref.set(passphrase, next)
          yield* Ref.set(derived, key)
          yield* write(data, true)
        }))
      )

    const snapshot: KeyManager["Type"]["snapshot"] = (refs) =>
      audited(
        log,
        (s) => ({ operation: "snapshot", context: { keys: String(s?.keyCount ?? refs?.length ?? "all") } }),
        Effect.gen(function*() {
          const { data } = yield* read
          let selected = data
          if (refs !== undefined) {
            const keys: Array<Data.KeyRecord> = []
            for (const ref of refs) {
              const { key } = yield* lookup(data, parseRef(ref).base)
              if (!keys.some((k) => k.id === key.id)) keys.push(key)
            }
            const ids = new Set(keys.map((k) => k.id))
            selected = { ...data, keys, aliases: Object.fromEntries(Object.entries(data.aliases).filter(([, id]) => ids.has(id))) }
          }
          return {
            _tag: "Snapshot",
            keyCount: selected.keys.length,
            generation: selected.generation,
            contents: Redacted.make<unknown>(selected)
          } satisfies Snapshot
        })
      )

    const restore: KeyManager["Type"]["restore"] = (snap, options) =>
      audited(
        log,
        (r) => ({
          operation: "restore",
          context: { mode: options?.mode ?? "merge", ...(r === undefined ? {} : { added: String(r.added.length), updated: String(r.updated.length) }) }
        }),
        mutate((data) => Effect.try({ try: () => applyRestore(data, Redacted.value(snap.contents) as Data.StoreData, options?.mode ?? "merge"), catch: (e) => e as KeyStoreError }))
      )

    const keyStore = KeyStore.of({
      resolve: (name, version) =>
        auditedResolve(
          name,
          resolveRef(version === undefined ? name : `${parseRef(name).base}@${version}`).pipe(
            Effect.catchTag("KeyUnusable", (e) => Effect.fail(refused(e.message)))
          )
        ),
      resolveId: (id, version) =>
        auditedResolve(
          id,
          Effect.gen(function*() {
            const { data } = yield* read
            if (!data.keys.some((k) => k.id === id)) return yield* new KeyNotFound({ name: id, version })
            return yield* resolveRef(`${id}@${version}`)
          }).pipe(Effect.catchTag("KeyUnusable", (e) => Effect.fail(refused(e.message))))
        ),
      list: Effect.map(read, ({ data }) => data.keys.flatMap((k) => k.versions.map((v) => toInfo(k, v))))
    })

    const manager = KeyManager.of({
      location: file,
      generate,
      import: importKey,
      export: exportKey,
      list,
      show,
      rotate,
      enable,
      disable,
      delete: remove,
      undelete,
      purge,
      rename,
      setAlias,
      removeAlias,
      versionsOf,
      primaryOf,
      resolveRef,
      changePassphrase,
      snapshot,
      restore
    })

    // Fail fast on a wrong passphrase or a damaged file.
    yield* read
    const mode = yield* Files.modeOf(file)
    if (mode !== undefined && (mode & 0o077) !== 0) {
      yield* Effect.logWarning(`objcrypt: key store ${file} has mode ${mode.toString(8)}; it will be rewritten 0600`)
    }
    return { keyStore, manager }
  })

const sameMaterial = (a: Data.StoredMaterial, b: Data.StoredMaterial): boolean => {
  const bytes = (m: Data.StoredMaterial) => Buffer.from(m.kind === "symmetric" ? m.key : m.kind === "public" ? m.spki : m.pkcs8, "base64")
  const x = bytes(a)
  const y = bytes(b)
  return a.kind === b.kind && x.length === y.length && crypto.timingSafeEqual(x, y)
}

/** Computes the restored store, throwing `KeyStoreError` on any conflict before anything is written. */
const applyRestore = (
  current: Data.StoreData,
  incoming: Data.StoreData,
  mode: "replace" | "merge"
): readonly [Data.StoreData, RestoreReport] => {
  if (mode === "replace") {
    return [
      { ...incoming, generation: Math.max(current.generation, incoming.generation) },
      { mode, added: incoming.keys.map((k) => k.name), updated: [], unchanged: [] }
    ]
  }
  const keys = [...current.keys]
  const added: Array<string> = []
  const updated: Array<string> = []
  const unchanged: Array<string> = []
  const conflicts: Array<string> = []
  for (const k of incoming.keys) {
    const i = keys.findIndex((x) => x.id === k.id)
    if (i < 0) {
      if (keys.some((x) => x.name === k.name)) conflicts.push(`name ${JSON.stringify(k.name)} is used by another key`)
      else {
        keys.push(k)
        added.push(k.name)
      }
      continue
    }
    const local = keys[i]!
    const versions = [...local.versions]
    let changed = false
    for (const v of k.versions) {
      const mine = versions.find((x) => x.version === v.version)
      if (mine === undefined) {
        versions.push(v)
        changed = true
      } else if (!sameMaterial(mine.material, v.material)) {
        conflicts.push(`${local.name} version ${v.version} differs between the store and the backup`)
      }
    }
    if (changed) {
      versions.sort((a, b) => a.version - b.version)
      keys[i] = { ...local, versions, primaryVersion: Math.max(local.primaryVersion, k.primaryVersion) }
      updated.push(local.name)
    } else {
      unchanged.push(local.name)
    }
  }
  const aliases = { ...current.aliases }
  for (const [alias, id] of Object.entries(incoming.aliases)) {
    if (aliases[alias] !== undefined && aliases[alias] !== id) conflicts.push(`alias ${JSON.stringify(alias)} points elsewhere`)
    else aliases[alias] = id
  }
  if (conflicts.length > 0) {
    throw new KeyStoreError({ reason: "Exists", detail: `restore would conflict, nothing changed: ${conflicts.join("; ")}` })
  }
  return [{ ...current, keys, aliases }, { mode, added, updated, unchanged }]
}

/**
 * Provides the core `KeyStore` and the `KeyManager` over one store file.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (config: LocalKeyStoreConfig): Layer.Layer<KeyStore | KeyManager, KeyStoreError> =>
  Layer.effectContext(
    Effect.map(make(config), (s) => Context.make(KeyStore, s.keyStore).pipe(Context.add(KeyManager, s.manager)))
  )

/**
 * As {@link layer}, read from config (e.g. `{ path: Config.string("KEYSTORE"), passphrase: Config.redacted("KEYSTORE_PASSPHRASE") }`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<{ readonly path: string; readonly passphrase: Redacted.Redacted<string> }>
): Layer.Layer<KeyStore | KeyManager, KeyStoreError | import("effect/ConfigError").ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(config), (c) => layer(c)))
