/**
 * Opening the store a location names, with the driver for its scheme, and the KMS for cse-kms.
 *
 * @since 0.1.0
 */
import { Effect, Redacted } from "effect"
import type * as Scope from "effect/Scope"
import type * as CompatibilityMatrix from "@objcrypt/core/CompatibilityMatrix"
import type { StoreError } from "@objcrypt/core/Errors"
import type { Kms } from "@objcrypt/core/Kms"
import type * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as FsObjectStore from "@objcrypt/driver-fs/FsObjectStore"
import type * as AzureBlobObjectStore from "@objcrypt/driver-azure/AzureBlobObjectStore"
import type * as AzureConfig from "@objcrypt/driver-azure/AzureConfig"
import type * as GcsObjectStore from "@objcrypt/driver-gcs/GcsObjectStore"
import type * as S3ObjectStore from "@objcrypt/driver-s3/S3ObjectStore"
import { KeyManager } from "@objcrypt/keys/KeyManager"
import type * as LocalKeyStore from "@objcrypt/keys/LocalKeyStore"
import * as LocalKms from "@objcrypt/keys/LocalKms"
import { ConfigError } from "./CliError.js"
import type * as EndpointsConfig from "./EndpointsConfig.js"
import type * as StoreUrl from "./StoreUrl.js"

/**
 * The matrix profile of a store: `local-fs` for directories; for S3, the endpoint's `profile`,
 * else `s3-compatible` behind a custom endpoint URL and `aws-s3` without one; `gcs` and
 * `azure-blob` (or the endpoint's `profile`) for Cloud Storage and Azure Blob Storage.
 *
 * @since 0.1.0
 * @category profiles
 */
export const profileOf = (spec: StoreUrl.StoreSpec): CompatibilityMatrix.ProfileName => {
  switch (spec._tag) {
    case "Fs":
      return "local-fs"
    case "S3":
      return spec.profile ?? (spec.endpoint === undefined ? "aws-s3" : "s3-compatible")
    case "Gcs":
      return spec.profile ?? "gcs"
    case "Azure":
      return spec.profile ?? "azure-blob"
  }
}

const envRef = (env: Readonly<Record<string, string | undefined>>, name: string | undefined, what: string) =>
  Effect.suspend(() => {
    if (name === undefined) return Effect.succeed(undefined)
    const v = env[name]
    return v === undefined || v === ""
      ? Effect.fail(new ConfigError({ file: "(endpoint credentials)", detail: `environment variable ${name} (${what}) is not set` }))
      : Effect.succeed(v)
  })

/**
 * What is known of a store's bucket: TLS from the endpoint URL, plus a configured probe result.
 *
 * @since 0.1.0
 * @category profiles
 */
export const factsOf = (spec: StoreUrl.StoreSpec): CompatibilityMatrix.BucketFacts | undefined => {
  const tls = (url: string | undefined) => url === undefined || url.toLowerCase().startsWith("https:")
  switch (spec._tag) {
    case "Fs":
      return undefined
    case "S3":
      return { ...spec.facts, tls: tls(spec.endpoint) }
    case "Gcs":
      return { ...spec.facts, tls: tls(spec.apiEndpoint) }
    case "Azure":
      return { ...spec.facts, tls: tls(spec.accountUrl) }
  }
}

/**
 * Upload tuning from `--part-size` and `--parallel`: the part (Azure: block) size and the parts in
 * flight of the driver's own multipart uploads, which carry every server-side mode. The local
 * store writes one file and has no parts.
 *
 * @since 0.1.0
 * @category models
 */
export interface Tuning {
  readonly partSize?: number | undefined
  readonly concurrency?: number | undefined
}

/**
 * Opens a store; it is closed with the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const open = (
  spec: StoreUrl.StoreSpec,
  env: Readonly<Record<string, string | undefined>>,
  tuning?: Tuning
): Effect.Effect<ObjectStore.ObjectStore["Type"], StoreError | ConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    switch (spec._tag) {
      case "Fs":
        return yield* FsObjectStore.make({ root: spec.root })
      case "S3":
        return yield* openS3(spec, env, tuning)
      case "Gcs":
        return yield* openGcs(spec, tuning)
      case "Azure":
        return yield* openAzure(spec, env, tuning)
    }
  })

/**
 * Opens an S3 store with its driver-specific parts (client, facts) for bucket operations.
 *
 * @since 0.1.0
 * @category constructors
 */
export const openS3 = (
  spec: Extract<StoreUrl.StoreSpec, { _tag: "S3" }>,
  env: Readonly<Record<string, string | undefined>>,
  tuning?: Tuning
): Effect.Effect<S3ObjectStore.S3ObjectStore["Type"], ConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const c = spec.credentials
    const accessKeyId = c?.accessKeyId ?? (yield* envRef(env, c?.accessKeyIdEnv, "access key id"))
    const secret = c?.secretAccessKey ?? (yield* envRef(env, c?.secretAccessKeyEnv, "secret access key"))
    const sessionToken = yield* envRef(env, c?.sessionTokenEnv, "session token")
    // The AWS SDK is loaded only when an s3:// location is used: it doubles start-up time otherwise.
    const S3 = yield* Effect.promise(() => import("@objcrypt/driver-s3/S3ObjectStore"))
    return yield* S3.make({
      bucket: spec.bucket,
      region: spec.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? "us-east-1",
      endpoint: spec.endpoint,
      forcePathStyle: spec.pathStyle,
      profile: profileOf(spec),
      facts: spec.facts,
      accessKeyId,
      secretAccessKey: secret === undefined ? undefined : Redacted.make(secret),
      sessionToken: sessionToken === undefined ? undefined : Redacted.make(sessionToken),
      partSize: tuning?.partSize,
      concurrency: tuning?.concurrency
    })
  })

/**
 * Opens a Cloud Storage bucket. The Google client is loaded only when a gs:// location is used.
 *
 * @since 0.1.0
 * @category constructors
 */
export const openGcs = (
  spec: Extract<StoreUrl.StoreSpec, { _tag: "Gcs" }>,
  tuning?: Tuning
): Effect.Effect<GcsObjectStore.GcsObjectStore["Type"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const Gcs = yield* Effect.promise(() => import("@objcrypt/driver-gcs/GcsObjectStore"))
    // The Google client reads STORAGE_EMULATOR_HOST itself and takes its raw value as the base URL
    // of every client in the process (over any apiEndpoint, and without `/storage/v1`). The CLI has
    // already turned it into the apiEndpoint of env-configured specs, so it is hidden while the
    // client is built (synchronously, at the start of `make`) and put back afterwards.
    const emulatorHost = process.env.STORAGE_EMULATOR_HOST
    return yield* Effect.suspend(() => {
      delete process.env.STORAGE_EMULATOR_HOST
      return Gcs.make({
        bucket: spec.bucket,
        apiEndpoint: spec.apiEndpoint,
        projectId: spec.projectId,
        keyFilename: spec.keyFilename,
        profile: profileOf(spec),
        facts: spec.facts,
        partSize: tuning?.partSize,
        concurrency: tuning?.concurrency
      })
    }).pipe(
      Effect.ensuring(Effect.sync(() => {
        if (emulatorHost !== undefined) process.env.STORAGE_EMULATOR_HOST = emulatorHost
      }))
    )
  })

/**
 * The driver credentials of an Azure store spec, with every `*Env` reference resolved.
 *
 * @since 0.1.0
 * @category constructors
 */
export const azureCredentials = (
  spec: Extract<StoreUrl.StoreSpec, { _tag: "Azure" }>,
  env: Readonly<Record<string, string | undefined>>
): Effect.Effect<AzureConfig.AzureCredentials, ConfigError> =>
  Effect.gen(function*() {
    const c = spec.credentials
    if (c === undefined) {
      return yield* new ConfigError({
        file: "(environment)",
        detail: `az://${spec.container} has no credentials: configure an azure endpoint for it, or set AZURE_STORAGE_CONNECTION_STRING (or AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY)`
      })
    }
    const connectionString = c.connectionString ?? (yield* envRef(env, c.connectionStringEnv, "connection string"))
    if (connectionString !== undefined) return { _tag: "ConnectionString", connectionString: Redacted.make(connectionString) }
    const sas = c.sasToken ?? (yield* envRef(env, c.sasTokenEnv, "SAS token"))
    if (sas !== undefined) return { _tag: "Sas", token: Redacted.make(sas) }
    const accountKey = c.accountKey ?? (yield* envRef(env, c.accountKeyEnv, "account key"))
    if (accountKey !== undefined && c.accountName !== undefined) {
      return { _tag: "SharedKey", accountName: c.accountName, accountKey: Redacted.make(accountKey) }
    }
    return yield* new ConfigError({ file: "(endpoint credentials)", detail: `az://${spec.container}: incomplete credentials` })
  })

/**
 * Opens an Azure Blob Storage container. The Azure SDK is loaded only when an az:// location is used.
 *
 * @since 0.1.0
 * @category constructors
 */
export const openAzure = (
  spec: Extract<StoreUrl.StoreSpec, { _tag: "Azure" }>,
  env: Readonly<Record<string, string | undefined>>,
  tuning?: Tuning
): Effect.Effect<AzureBlobObjectStore.AzureBlobObjectStore["Type"], ConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const credentials = yield* azureCredentials(spec, env)
    if (credentials._tag !== "ConnectionString" && spec.accountUrl === undefined) {
      return yield* new ConfigError({ file: "(endpoint credentials)", detail: `az://${spec.container}: no accountUrl` })
    }
    const Azure = yield* Effect.promise(() => import("@objcrypt/driver-azure/AzureBlobObjectStore"))
    return yield* Azure.make({
      container: spec.container,
      accountUrl: spec.accountUrl,
      credentials,
      defaultEncryptionScope: spec.defaultEncryptionScope,
      facts: spec.facts,
      blockSize: tuning?.partSize,
      concurrency: tuning?.concurrency
    })
  })

/**
 * The local KMS over the opened key store (cse-kms without a cloud KMS).
 *
 * @since 0.1.0
 * @category constructors
 */
export const localKms = (keys: LocalKeyStore.LocalKeyStore): Effect.Effect<Kms["Type"]> =>
  Effect.provideService(LocalKms.make, KeyManager, keys.manager)

/**
 * The kind of KMS a wrapped key's id belongs to, from its shape: an AWS ARN, a Cloud KMS key
 * name, a Key Vault key URL, else the local KMS. `inspect` shows it; reads route by it.
 *
 * @since 0.1.0
 * @category kms
 */
export const kmsKindOf = (keyId: string): "aws-kms" | "gcp-kms" | "azure-key-vault" | "local" =>
  /^arn:aws[a-z-]*:kms:/.test(keyId)
    ? "aws-kms"
    : /^projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+\/cryptoKeys\//.test(keyId)
    ? "gcp-kms"
    : /^https:\/\/[^/]+\/keys\//.test(keyId)
    ? "azure-key-vault"
    : "local"

/**
 * The `Kms["kind"]` a `KmsSpec` opens.
 *
 * @since 0.1.0
 * @category kms
 */
export const kindOfSpec = (spec: EndpointsConfig.KmsSpec): string =>
  spec.type === "aws" ? "aws-kms" : spec.type === "gcp" ? "gcp-kms" : spec.type === "azure" ? "azure-key-vault" : "local"

/**
 * Opens a provider KMS (the local one comes from the key store instead). Its SDK is loaded only
 * then; `*Env` references are resolved from `env`.
 *
 * @since 0.1.0
 * @category kms
 */
export const openKms = (
  spec: Exclude<EndpointsConfig.KmsSpec, { type: "local" }>,
  env: Readonly<Record<string, string | undefined>>
): Effect.Effect<Kms["Type"], ConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    switch (spec.type) {
      case "aws": {
        const c = spec.credentials
        const accessKeyId = c?.accessKeyId ?? (yield* envRef(env, c?.accessKeyIdEnv, "access key id"))
        const secret = c?.secretAccessKey ?? (yield* envRef(env, c?.secretAccessKeyEnv, "secret access key"))
        const sessionToken = yield* envRef(env, c?.sessionTokenEnv, "session token")
        const AwsKms = yield* Effect.promise(() => import("@objcrypt/driver-s3/AwsKms"))
        return yield* AwsKms.make({
          region: spec.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? "us-east-1",
          endpoint: spec.endpoint,
          accessKeyId,
          secretAccessKey: secret === undefined ? undefined : Redacted.make(secret),
          sessionToken: sessionToken === undefined ? undefined : Redacted.make(sessionToken)
        })
      }
      case "gcp": {
        const token = yield* envRef(env, spec.accessTokenEnv, "Cloud KMS access token")
        const CloudKms = yield* Effect.promise(() => import("@objcrypt/driver-gcs/CloudKms"))
        return yield* CloudKms.make({
          endpoint: spec.endpoint,
          keyFilename: spec.keyFilename,
          accessToken: token === undefined ? undefined : Redacted.make(token)
        })
      }
      case "azure": {
        const KeyVaultKms = yield* Effect.promise(() => import("@objcrypt/driver-azure/KeyVaultKms"))
        return yield* KeyVaultKms.make({ algorithm: spec.algorithm })
      }
    }
  })
