/**
 * Everything a command needs from its environment, resolved once per run: file locations (XDG,
 * flags, environment), the endpoints configuration, stores opened from locations, and the key
 * store (opened lazily, so commands that need no key never ask for a passphrase).
 *
 * @since 0.1.0
 */
import { Effect, Layer, Option, Redacted } from "effect"
import * as Scope from "effect/Scope"
import * as CompatibilityMatrix from "@objcrypt/core/CompatibilityMatrix"
import * as EncryptionMode from "@objcrypt/core/EncryptionMode"
import type { KeyStore } from "@objcrypt/core/KeyStore"
import type { Kms } from "@objcrypt/core/Kms"
import type * as ObjectStore from "@objcrypt/core/ObjectStore"
import { InvalidEncryptionParameters, UnsupportedMode } from "@objcrypt/core/Errors"
import type { KeyStoreError, StoreError } from "@objcrypt/core/Errors"
import * as AuditLog from "@objcrypt/keys/AuditLog"
import type { KeyManager } from "@objcrypt/keys/KeyManager"
import * as LocalKeyStore from "@objcrypt/keys/LocalKeyStore"
import * as fs from "node:fs"
import * as path from "node:path"
import { UsageError as UsageErrorClass } from "./CliError.js"
import type { ConfigError, LocalFileError, PassphraseUnavailable, UsageError } from "./CliError.js"
import * as EndpointsConfig from "./EndpointsConfig.js"
import * as Passphrase from "./Passphrase.js"
import * as StoreUrl from "./StoreUrl.js"
import * as Stores from "./Stores.js"

/**
 * The options every command accepts.
 *
 * @since 0.1.0
 * @category models
 */
export interface CommonFlags {
  readonly config: Option.Option<string>
  readonly keystore: Option.Option<string>
  readonly passphraseFile: Option.Option<string>
  readonly verbose: boolean
  /** `--kms`: the KMS of cse-kms, over the endpoint's and the file's. */
  readonly kms?: Option.Option<EndpointsConfig.KmsType> | undefined
  /** `--kms-endpoint`: the AWS or Cloud KMS endpoint URL. */
  readonly kmsEndpoint?: Option.Option<string> | undefined
  /** `--kms-region`: the AWS KMS region. */
  readonly kmsRegion?: Option.Option<string> | undefined
}

/**
 * An opened key store.
 *
 * @since 0.1.0
 * @category models
 */
export interface Keys {
  readonly keyStore: KeyStore["Type"]
  readonly manager: KeyManager["Type"]
  readonly kms: Kms["Type"]
  readonly passphrase: Redacted.Redacted<string>
  readonly path: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Session {
  readonly env: Readonly<Record<string, string | undefined>>
  readonly config: EndpointsConfig.EndpointsConfig
  readonly configFile: string
  readonly keystorePath: string
  readonly localStore: string
  readonly verbose: boolean
  /** Parses a command-line location (local path or store URL). */
  readonly locate: (input: string) => Effect.Effect<StoreUrl.Location, UsageError>
  readonly locateStore: (input: string) => Effect.Effect<Extract<StoreUrl.Location, { _tag: "Store" }>, UsageError>
  /** Opens the store a location is in (once per store, tuning and run). */
  readonly open: (
    spec: StoreUrl.StoreSpec,
    tuning?: Stores.Tuning
  ) => Effect.Effect<ObjectStore.ObjectStore["Type"], StoreError | ConfigError | UnsupportedMode>
  /** The compatibility-matrix profile of a store. */
  readonly profileOf: (spec: StoreUrl.StoreSpec) => CompatibilityMatrix.ProfileName
  /** Opens (or creates) the key store, asking for the passphrase once. */
  readonly keys: Effect.Effect<Keys, KeyStoreError | PassphraseUnavailable | LocalFileError>
  /** The KMS a store's cse-kms uses: `--kms` flags, else the endpoint's `kms`, else the file's, else local. */
  readonly kmsSpecFor: (spec: StoreUrl.StoreSpec) => Effect.Effect<EndpointsConfig.KmsSpec, UsageError>
  /** Opens that KMS (once per KMS and run); the local one opens the key store. */
  readonly kmsFor: (spec: StoreUrl.StoreSpec) => Effect.Effect<Kms["Type"], UsageError | ConfigError | KeyStoreError | PassphraseUnavailable | LocalFileError>
  /** The spec a store opened by `open` came from. */
  readonly specOf: (store: ObjectStore.ObjectStore["Type"]) => StoreUrl.StoreSpec | undefined
  /** Combines mode flags with the endpoint's default and checks the result against the matrix. */
  readonly modeFor: (
    spec: StoreUrl.StoreSpec,
    flags: ModeFlags
  ) => Effect.Effect<EncryptionMode.EncryptionMode, InvalidEncryptionParameters | UnsupportedMode | UsageError>
}

/**
 * Encryption flags of one command (`undefined` when not given).
 *
 * @since 0.1.0
 * @category models
 */
export interface ModeFlags {
  readonly mode?: EncryptionMode.ModeName | undefined
  readonly key?: string | undefined
  readonly recipients?: ReadonlyArray<string> | undefined
  readonly kmsKeyId?: string | undefined
  readonly context?: EncryptionMode.EncryptionContext | undefined
}

/**
 * Builds the session; stores and the key store are released with the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (flags: CommonFlags): Effect.Effect<Session, ConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const env = process.env
    const defaults = EndpointsConfig.xdg(env)
    const explicitConfig = Option.getOrUndefined(flags.config) ?? nonEmpty(env.OBJCRYPT_CONFIG)
    const configFile = path.resolve(explicitConfig ?? defaults.configFile)
    const config = yield* EndpointsConfig.load(configFile, explicitConfig !== undefined)
    const keystorePath = path.resolve(
      Option.getOrUndefined(flags.keystore) ?? nonEmpty(env.OBJCRYPT_KEYSTORE) ?? config.keystore ?? defaults.keystore
    )
    const localStore = path.resolve(nonEmpty(env.OBJCRYPT_LOCAL_STORE) ?? config.localStore ?? defaults.localStore)
    const ctx: StoreUrl.Context = { config, localStore, env }
    const scope = yield* Effect.scope

    const opened = new Map<string, ObjectStore.ObjectStore["Type"]>()
    const specs = new WeakMap<ObjectStore.ObjectStore["Type"], StoreUrl.StoreSpec>()
    const open = (spec: StoreUrl.StoreSpec, tuning?: Stores.Tuning) =>
      Effect.suspend(() => {
        const id = `${StoreUrl.storeId(spec)}|${tuning?.partSize ?? ""}|${tuning?.concurrency ?? ""}`
        const hit = opened.get(id)
        if (hit !== undefined) return Effect.succeed(hit)
        return Stores.open(spec, env, tuning).pipe(
          Effect.tap((s) => Effect.sync(() => {
            opened.set(id, s)
            specs.set(s, spec)
          })),
          Scope.extend(scope)
        )
      })

    const keys = yield* Effect.cached(
      Effect.gen(function*() {
        const passphrase = yield* Passphrase.obtain({
          file: Option.getOrUndefined(flags.passphraseFile),
          env,
          creating: !fs.existsSync(keystorePath)
        })
        const auditFile = path.join(path.dirname(keystorePath), "key-audit.log")
        const audit = yield* Layer.buildWithScope(AuditLog.layerFile(auditFile), scope)
        const lks = yield* LocalKeyStore.make({ path: keystorePath, passphrase }).pipe(Effect.provide(audit))
        const kms = yield* Stores.localKms(lks)
        return { keyStore: lks.keyStore, manager: lks.manager, kms, passphrase, path: keystorePath } satisfies Keys
      })
    )

    const kmsSpecFor = (spec: StoreUrl.StoreSpec): Effect.Effect<EndpointsConfig.KmsSpec, UsageError> =>
      Effect.suspend((): Effect.Effect<EndpointsConfig.KmsSpec, UsageError> => {
        const flagType = Option.getOrUndefined(flags.kms ?? Option.none())
        const endpoint = Option.getOrUndefined(flags.kmsEndpoint ?? Option.none())
        const region = Option.getOrUndefined(flags.kmsRegion ?? Option.none())
        const configured = spec.kms ?? config.kms ?? { type: "local" as const }
        const base: EndpointsConfig.KmsSpec = flagType === undefined || flagType === configured.type
          ? configured
          : { type: flagType }
        if (endpoint !== undefined && !/^https?:\/\/[^\s]+$/.test(endpoint)) {
          return Effect.fail(new UsageErrorClass({ detail: "--kms-endpoint must be an http(s) URL" }))
        }
        if (endpoint !== undefined && base.type !== "aws" && base.type !== "gcp") {
          return Effect.fail(new UsageErrorClass({ detail: `--kms-endpoint applies to the aws and gcp KMSs, not ${base.type}` }))
        }
        if (region !== undefined && base.type !== "aws") {
          return Effect.fail(new UsageErrorClass({ detail: `--kms-region applies to the aws KMS, not ${base.type}` }))
        }
        if (base.type === "aws") {
          return Effect.succeed({ ...base, ...(endpoint === undefined ? {} : { endpoint }), ...(region === undefined ? {} : { region }) })
        }
        if (base.type === "gcp") return Effect.succeed(endpoint === undefined ? base : { ...base, endpoint })
        return Effect.succeed(base)
      })

    const kmsOpened = new Map<string, Kms["Type"]>()
    const kmsFor = (spec: StoreUrl.StoreSpec): Effect.Effect<Kms["Type"], UsageError | ConfigError | KeyStoreError | PassphraseUnavailable | LocalFileError> =>
      Effect.flatMap(kmsSpecFor(spec), (k): Effect.Effect<Kms["Type"], UsageError | ConfigError | KeyStoreError | PassphraseUnavailable | LocalFileError> => {
        if (k.type === "local") return Effect.map(keys, (opened) => opened.kms)
        const id = JSON.stringify(k)
        const hit = kmsOpened.get(id)
        if (hit !== undefined) return Effect.succeed(hit)
        return Stores.openKms(k, env).pipe(
          Effect.tap((kms) => Effect.sync(() => kmsOpened.set(id, kms))),
          Scope.extend(scope)
        )
      })

    const profileOf = (spec: StoreUrl.StoreSpec): CompatibilityMatrix.ProfileName => Stores.profileOf(spec)

    const modeFor = (spec: StoreUrl.StoreSpec, f: ModeFlags) =>
      Effect.gen(function*() {
        const merged = EndpointsConfig.mergeSpec(
          { mode: f.mode, key: f.key, recipients: f.recipients, kmsKeyId: f.kmsKeyId, context: f.context },
          spec.encryption
        )
        const mode = yield* EncryptionMode.fromSpec(merged)
        if (mode._tag === "CseKms") {
          const kms = yield* kmsSpecFor(spec)
          const problem = EndpointsConfig.kmsKeyIdProblem(kms.type, mode.keyId)
          if (problem !== undefined) {
            return yield* new InvalidEncryptionParameters({ detail: `--kms-key-id ${JSON.stringify(mode.keyId)} for the ${kms.type} KMS: ${problem}` })
          }
        }
        const profile = profileOf(spec)
        const plan = yield* CompatibilityMatrix.resolve(profile, mode, Stores.factsOf(spec))
        if (plan._tag === "ViaGateway") {
          // The CLI talks to the store directly; a gateway-only mode cannot be honoured here.
          return yield* new UnsupportedMode({
            provider: profile,
            mode: mode._tag,
            reason: `only available through the objcrypt gateway (${plan.feature})`,
            alternatives: ["use cse-c", "use cse-kms", "point an s3 endpoint at an objcrypt gateway"]
          })
        }
        return mode
      })

    return {
      env,
      config,
      configFile,
      keystorePath,
      localStore,
      verbose: flags.verbose,
      locate: (input) => StoreUrl.parse(input, ctx),
      locateStore: (input) => StoreUrl.parseStore(input, ctx),
      open,
      profileOf,
      keys,
      kmsSpecFor,
      kmsFor,
      specOf: (store) => specs.get(store),
      modeFor
    } satisfies Session
  })

const nonEmpty = (s: string | undefined) => (s === undefined || s.trim() === "" ? undefined : s)
