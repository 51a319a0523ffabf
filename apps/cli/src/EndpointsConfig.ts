/**
 * The endpoints configuration file: named stores with their location, credentials (as references
 * to environment variables) and default encryption. Found at `$XDG_CONFIG_HOME/objcrypt/config.json`
 * unless `--config` or `OBJCRYPT_CONFIG` names another file; a missing default file means "no
 * endpoints", a missing explicit one is an error.
 *
 * @since 0.1.0
 */
import { Effect, Option, ParseResult, Schema } from "effect"
import * as CompatibilityMatrix from "@objcrypt/core/CompatibilityMatrix"
import * as EncryptionMode from "@objcrypt/core/EncryptionMode"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { ConfigError } from "./CliError.js"

const EnvName = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: () => "must be an environment variable name" })
)

/**
 * Where credentials come from. The `*Env` fields name environment variables; inline
 * `accessKeyId`/`secretAccessKey` are refused unless the file sets `allowInlineSecrets: true`.
 *
 * @since 0.1.0
 * @category models
 */
export const Credentials = Schema.Struct({
  accessKeyIdEnv: Schema.optional(EnvName),
  secretAccessKeyEnv: Schema.optional(EnvName),
  sessionTokenEnv: Schema.optional(EnvName),
  accessKeyId: Schema.optional(Schema.String),
  secretAccessKey: Schema.optional(Schema.String)
})

/**
 * @since 0.1.0
 * @category models
 */
export type Credentials = typeof Credentials.Type

const HttpUrl = Schema.String.pipe(Schema.pattern(/^https?:\/\/[^\s]+$/, { message: () => "must be an http(s) URL" }))

/**
 * The KMS that cse-kms wraps data keys with: the local KMS over the key store (the default),
 * AWS KMS (driver-s3 `AwsKms`; key ids are key ids, ARNs or aliases), Google Cloud KMS (driver-gcs
 * `CloudKms`; key ids are `projects/P/locations/L/keyRings/R/cryptoKeys/K`) or Azure Key Vault
 * (driver-azure `KeyVaultKms`; key ids are `https://VAULT.vault.azure.net/keys/NAME[/VERSION]`).
 *
 * @since 0.1.0
 * @category models
 */
export const KmsSpec = Schema.Union(
  Schema.Struct({ type: Schema.Literal("local") }),
  Schema.Struct({
    type: Schema.Literal("aws"),
    /** @default $AWS_REGION, else us-east-1 */
    region: Schema.optional(Schema.NonEmptyTrimmedString),
    /** A custom KMS endpoint (a VPC endpoint, a test server). */
    endpoint: Schema.optional(HttpUrl),
    /** Environment-variable references; without them the AWS SDK's default chain applies. */
    credentials: Schema.optional(Credentials)
  }),
  Schema.Struct({
    type: Schema.Literal("gcp"),
    /** @default https://cloudkms.googleapis.com */
    endpoint: Schema.optional(HttpUrl),
    /** A service-account key file (a path, not the key itself). */
    keyFilename: Schema.optional(Schema.NonEmptyTrimmedString),
    /** An environment variable holding an OAuth 2 access token. */
    accessTokenEnv: Schema.optional(EnvName)
  }),
  Schema.Struct({
    type: Schema.Literal("azure"),
    /** @default from the key type (RSA-OAEP-256 for RSA keys, A256KW for oct-HSM) */
    algorithm: Schema.optional(Schema.Literal("RSA-OAEP-256", "RSA-OAEP", "A256KW"))
  })
)

/**
 * @since 0.1.0
 * @category models
 */
export type KmsSpec = typeof KmsSpec.Type

/**
 * The KMS kinds of `KmsSpec` (`--kms`).
 *
 * @since 0.1.0
 * @category models
 */
export const KmsType = Schema.Literal("local", "aws", "gcp", "azure")

/**
 * @since 0.1.0
 * @category models
 */
export type KmsType = typeof KmsType.Type

/**
 * The client-side formats a write can use (`cp --format`): objcrypt's native format, the AWS S3
 * Encryption Client V2/V3 (s3 only) and Azure client-side encryption v2 (azure only).
 *
 * @since 0.1.0
 * @category models
 */
export const ClientFormat = Schema.Literal("native", "s3ec-v2", "s3ec-v3", "azure-v2")

/**
 * @since 0.1.0
 * @category models
 */
export type ClientFormat = typeof ClientFormat.Type

/**
 * Why `format` cannot be written to a store of this kind, or in this mode; `undefined` when it
 * can. Without a mode only the store kind is checked.
 *
 * @since 0.1.0
 * @category validation
 */
export const formatProblem = (
  format: ClientFormat,
  store: "s3" | "fs" | "gcs" | "azure",
  mode?: EncryptionMode.EncryptionMode | undefined
): string | undefined => {
  const clientSide = mode === undefined || mode._tag === "CseC" || mode._tag === "CseKms"
  if (!clientSide) return `a client-side format needs --mode cse-c or cse-kms, not ${EncryptionMode.nameOf(mode._tag)}`
  if (format === "native") return undefined
  if (format === "s3ec-v2" || format === "s3ec-v3") {
    if (store !== "s3") return "the AWS S3 Encryption Client format is written only to s3:// destinations"
    if (mode?._tag === "CseC" && mode.keys.length !== 1) return "the AWS S3 Encryption Client format wraps the data key under exactly one key"
    return undefined
  }
  if (store !== "azure") return "Azure client-side encryption is written only to az:// destinations"
  if (mode?._tag === "CseKms") return "Azure client-side encryption v2 wraps with A256KW or RSA-OAEP, not a KMS (use --mode cse-c)"
  if (mode?._tag === "CseC" && mode.keys.length !== 1) return "Azure client-side encryption v2 wraps the content key under exactly one key"
  return undefined
}

const EndpointName = Schema.String.pipe(
  Schema.pattern(/^[a-z][a-z0-9_-]*$/, { message: () => "endpoint names are lower-case letters, digits, - and _" })
)

/**
 * An S3 or S3-compatible bucket.
 *
 * @since 0.1.0
 * @category models
 */
export const S3Endpoint = Schema.Struct({
  type: Schema.Literal("s3"),
  bucket: Schema.NonEmptyTrimmedString,
  /** Prefix prepended to every key under this endpoint. */
  prefix: Schema.optional(Schema.String),
  /** Custom endpoint URL for S3-compatible stores (Ceph RGW, MinIO, IBM COS…). */
  endpoint: Schema.optional(Schema.String.pipe(Schema.pattern(/^https?:\/\/[^\s]+$/, { message: () => "must be an http(s) URL" }))),
  region: Schema.optional(Schema.NonEmptyTrimmedString),
  pathStyle: Schema.optional(Schema.Boolean),
  /** Compatibility-matrix profile (`aws-s3`, `ceph-rgw`, `minio`…). */
  profile: Schema.optional(CompatibilityMatrix.ProfileName),
  credentials: Schema.optional(Credentials),
  /** What a probe of the bucket observed (`objcrypt matrix --probe URL --json` prints it): overrides the profile's cells. */
  facts: Schema.optional(CompatibilityMatrix.BucketFacts),
  /** The KMS of cse-kms writes through this endpoint (over the file's `kms`); `--kms` overrides it. */
  kms: Schema.optional(KmsSpec),
  /** Default client-side format of cse-c/cse-kms writes through this endpoint (`cp --format` overrides it). @default "native" */
  format: Schema.optional(ClientFormat),
  /** Default encryption for writes through this endpoint; flags override it. */
  encryption: Schema.optional(EncryptionMode.ModeSpec)
})

/**
 * @since 0.1.0
 * @category models
 */
export type S3Endpoint = typeof S3Endpoint.Type

/**
 * A store in a local directory (driver-fs).
 *
 * @since 0.1.0
 * @category models
 */
export const FsEndpoint = Schema.Struct({
  type: Schema.Literal("fs"),
  root: Schema.NonEmptyTrimmedString,
  prefix: Schema.optional(Schema.String),
  /** The KMS of cse-kms writes through this endpoint (over the file's `kms`); `--kms` overrides it. */
  kms: Schema.optional(KmsSpec),
  /** Default client-side format of cse-c/cse-kms writes through this endpoint (`cp --format` overrides it). @default "native" */
  format: Schema.optional(ClientFormat),
  encryption: Schema.optional(EncryptionMode.ModeSpec)
})

/**
 * @since 0.1.0
 * @category models
 */
export type FsEndpoint = typeof FsEndpoint.Type

/**
 * A Google Cloud Storage bucket (driver-gcs). Without `keyFilename`, Application Default
 * Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, the metadata server…) apply.
 *
 * @since 0.1.0
 * @category models
 */
export const GcsEndpoint = Schema.Struct({
  type: Schema.Literal("gcs"),
  bucket: Schema.NonEmptyTrimmedString,
  prefix: Schema.optional(Schema.String),
  /** Custom JSON-API endpoint (a test server or emulator); no credentials are sent to it. */
  apiEndpoint: Schema.optional(HttpUrl),
  projectId: Schema.optional(Schema.NonEmptyTrimmedString),
  /** A service-account key file (a path, not the key itself). */
  keyFilename: Schema.optional(Schema.NonEmptyTrimmedString),
  /** Compatibility-matrix profile. @default "gcs" */
  profile: Schema.optional(CompatibilityMatrix.ProfileName),
  facts: Schema.optional(CompatibilityMatrix.BucketFacts),
  /** The KMS of cse-kms writes through this endpoint (over the file's `kms`); `--kms` overrides it. */
  kms: Schema.optional(KmsSpec),
  /** Default client-side format of cse-c/cse-kms writes through this endpoint (`cp --format` overrides it). @default "native" */
  format: Schema.optional(ClientFormat),
  encryption: Schema.optional(EncryptionMode.ModeSpec)
})

/**
 * @since 0.1.0
 * @category models
 */
export type GcsEndpoint = typeof GcsEndpoint.Type

/**
 * Where Azure credentials come from: exactly one of an account name with its key, a SAS token or a
 * connection string. The `*Env` fields name environment variables; the inline secrets
 * (`accountKey`, `sasToken`, `connectionString`) are refused unless the file sets
 * `allowInlineSecrets: true`.
 *
 * @since 0.1.0
 * @category models
 */
export const AzureCredentials = Schema.Struct({
  accountName: Schema.optional(Schema.NonEmptyTrimmedString),
  accountKeyEnv: Schema.optional(EnvName),
  sasTokenEnv: Schema.optional(EnvName),
  connectionStringEnv: Schema.optional(EnvName),
  accountKey: Schema.optional(Schema.String),
  sasToken: Schema.optional(Schema.String),
  connectionString: Schema.optional(Schema.String)
})

/**
 * @since 0.1.0
 * @category models
 */
export type AzureCredentials = typeof AzureCredentials.Type

/**
 * An Azure Blob Storage container (driver-azure).
 *
 * @since 0.1.0
 * @category models
 */
export const AzureEndpoint = Schema.Struct({
  type: Schema.Literal("azure"),
  container: Schema.NonEmptyTrimmedString,
  prefix: Schema.optional(Schema.String),
  /** `https://ACCOUNT.blob.core.windows.net` or an emulator URL; taken from a connection string when absent. */
  accountUrl: Schema.optional(HttpUrl),
  credentials: AzureCredentials,
  /** Encryption scope for sse-kms without a key id. */
  defaultEncryptionScope: Schema.optional(Schema.NonEmptyTrimmedString),
  /** Compatibility-matrix profile. @default "azure-blob" */
  profile: Schema.optional(CompatibilityMatrix.ProfileName),
  facts: Schema.optional(CompatibilityMatrix.BucketFacts),
  /** The KMS of cse-kms writes through this endpoint (over the file's `kms`); `--kms` overrides it. */
  kms: Schema.optional(KmsSpec),
  /** Default client-side format of cse-c/cse-kms writes through this endpoint (`cp --format` overrides it). @default "native" */
  format: Schema.optional(ClientFormat),
  encryption: Schema.optional(EncryptionMode.ModeSpec)
})

/**
 * @since 0.1.0
 * @category models
 */
export type AzureEndpoint = typeof AzureEndpoint.Type

/**
 * The ways an `AzureCredentials` is complete; `undefined` when it is, else what is wrong.
 *
 * @since 0.1.0
 * @category validation
 */
export const azureCredentialsProblem = (c: AzureCredentials, accountUrl: string | undefined, allowInline: boolean): string | undefined => {
  const inline = [c.accountKey !== undefined && "accountKey", c.sasToken !== undefined && "sasToken", c.connectionString !== undefined && "connectionString"]
    .filter((x): x is string => x !== false)
  if (inline.length > 0 && !allowInline) {
    return `inline credentials (${inline.join(", ")}) are refused; name environment variables with accountKeyEnv/sasTokenEnv/connectionStringEnv (or set allowInlineSecrets: true)`
  }
  const sharedKey = c.accountKeyEnv !== undefined || c.accountKey !== undefined
  const sas = c.sasTokenEnv !== undefined || c.sasToken !== undefined
  const connection = c.connectionStringEnv !== undefined || c.connectionString !== undefined
  const kinds = [sharedKey, sas, connection].filter((b) => b).length
  if (kinds !== 1) return "credentials need exactly one of accountName + accountKeyEnv, sasTokenEnv or connectionStringEnv"
  if ((c.accountKeyEnv !== undefined && c.accountKey !== undefined) || (c.sasTokenEnv !== undefined && c.sasToken !== undefined) ||
    (c.connectionStringEnv !== undefined && c.connectionString !== undefined)) {
    return "a secret is given both inline and as an environment variable"
  }
  if (sharedKey && c.accountName === undefined) return "accountKeyEnv needs accountName"
  if (!connection && accountUrl === undefined) return "accountUrl is required (except with a connection string)"
  return undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export const Endpoint = Schema.Union(S3Endpoint, FsEndpoint, GcsEndpoint, AzureEndpoint)

/**
 * @since 0.1.0
 * @category models
 */
export type Endpoint = typeof Endpoint.Type

/**
 * The whole file.
 *
 * @since 0.1.0
 * @category models
 */
export const EndpointsConfig = Schema.Struct({
  /** Format version of this file. @default 1 */
  version: Schema.optional(Schema.Literal(1)),
  /** Root of the embedded local store (`local://`). @default $XDG_DATA_HOME/objcrypt/store */
  localStore: Schema.optional(Schema.NonEmptyTrimmedString),
  /** Default encryption of the `local://` store. */
  localEncryption: Schema.optional(EncryptionMode.ModeSpec),
  /** The KMS of cse-kms for every store without its own `kms` (the local store included). @default { "type": "local" } */
  kms: Schema.optional(KmsSpec),
  /** Key store directory. @default $XDG_DATA_HOME/objcrypt/keystore */
  keystore: Schema.optional(Schema.NonEmptyTrimmedString),
  /** Allow inline secrets (S3 `accessKeyId`/`secretAccessKey`, Azure `accountKey`/`sasToken`/`connectionString`). @default false */
  allowInlineSecrets: Schema.optional(Schema.Boolean),
  endpoints: Schema.optional(Schema.Record({ key: EndpointName, value: Endpoint }))
})

/**
 * @since 0.1.0
 * @category models
 */
export type EndpointsConfig = typeof EndpointsConfig.Type

/**
 * An empty configuration (no file).
 *
 * @since 0.1.0
 * @category constructors
 */
export const empty: EndpointsConfig = {}

/**
 * Default locations, following the XDG base-directory specification.
 *
 * @since 0.1.0
 * @category locations
 */
export const xdg = (env: Readonly<Record<string, string | undefined>>) => {
  const home = env.HOME ?? os.homedir()
  const abs = (p: string | undefined) => (p !== undefined && path.isAbsolute(p) ? p : undefined)
  const config = abs(env.XDG_CONFIG_HOME) ?? path.join(home, ".config")
  const data = abs(env.XDG_DATA_HOME) ?? path.join(home, ".local", "share")
  return {
    configFile: path.join(config, "objcrypt", "config.json"),
    keystore: path.join(data, "objcrypt", "keystore"),
    localStore: path.join(data, "objcrypt", "store")
  }
}

/**
 * Parses and validates the text of a configuration file.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = (file: string, text: string): Effect.Effect<EndpointsConfig, ConfigError> =>
  Effect.gen(function*() {
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (e) {
      return yield* new ConfigError({ file, detail: `not valid JSON (${(e as Error).message})` })
    }
    const config = yield* Schema.decodeUnknown(EndpointsConfig, { onExcessProperty: "error" })(json).pipe(
      Effect.mapError((e) => new ConfigError({ file, detail: formatIssue(e) }))
    )
    for (const [name, ep] of Object.entries(config.endpoints ?? {})) {
      if (ep.type === "s3" && ep.credentials !== undefined && config.allowInlineSecrets !== true) {
        if (ep.credentials.secretAccessKey !== undefined || ep.credentials.accessKeyId !== undefined) {
          return yield* new ConfigError({
            file,
            detail: `endpoint ${name}: inline credentials are refused; name environment variables with accessKeyIdEnv/secretAccessKeyEnv (or set allowInlineSecrets: true)`
          })
        }
      }
      if (ep.type === "azure") {
        const problem = azureCredentialsProblem(ep.credentials, ep.accountUrl, config.allowInlineSecrets === true)
        if (problem !== undefined) return yield* new ConfigError({ file, detail: `endpoint ${name}: ${problem}` })
      }
      const kmsProblem = ep.kms === undefined ? undefined : kmsSpecProblem(ep.kms, config.allowInlineSecrets === true)
      if (kmsProblem !== undefined) return yield* new ConfigError({ file, detail: `endpoint ${name}: kms: ${kmsProblem}` })
      const mode = ep.encryption === undefined
        ? undefined
        : yield* EncryptionMode.fromSpec(ep.encryption).pipe(
          Effect.mapError((e) => new ConfigError({ file, detail: `endpoint ${name}: ${e.detail}` }))
        )
      if (ep.format !== undefined) {
        // The default format applies to client-side writes: checked against the endpoint's own
        // default mode when that is client-side, against the store kind always.
        const problem = formatProblem(ep.format, ep.type, mode !== undefined && (mode._tag === "CseC" || mode._tag === "CseKms") ? mode : undefined)
        if (problem !== undefined) return yield* new ConfigError({ file, detail: `endpoint ${name}: format ${ep.format}: ${problem}` })
      }
    }
    const kmsProblem = config.kms === undefined ? undefined : kmsSpecProblem(config.kms, config.allowInlineSecrets === true)
    if (kmsProblem !== undefined) return yield* new ConfigError({ file, detail: `kms: ${kmsProblem}` })
    if (config.localEncryption !== undefined) {
      yield* EncryptionMode.fromSpec(config.localEncryption).pipe(
        Effect.mapError((e) => new ConfigError({ file, detail: `localEncryption: ${e.detail}` }))
      )
    }
    return config
  })

/**
 * What is wrong with a `KmsSpec` beyond its schema; `undefined` when nothing is.
 *
 * @since 0.1.0
 * @category validation
 */
export const kmsSpecProblem = (spec: KmsSpec, allowInline: boolean): string | undefined => {
  if (spec.type !== "aws" || spec.credentials === undefined) return undefined
  const c = spec.credentials
  if ((c.accessKeyId !== undefined || c.secretAccessKey !== undefined) && !allowInline) {
    return "inline credentials are refused; name environment variables with accessKeyIdEnv/secretAccessKeyEnv (or set allowInlineSecrets: true)"
  }
  const hasId = c.accessKeyId !== undefined || c.accessKeyIdEnv !== undefined
  const hasSecret = c.secretAccessKey !== undefined || c.secretAccessKeyEnv !== undefined
  return hasId === hasSecret ? undefined : "credentials need both an access key id and a secret access key"
}

/**
 * The shape a KMS key id must have for a KMS kind; `undefined` when it fits.
 *
 * @since 0.1.0
 * @category validation
 */
export const kmsKeyIdProblem = (type: KmsType, keyId: string): string | undefined => {
  switch (type) {
    case "local":
    case "aws":
      return undefined
    case "gcp":
      return /^projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+\/cryptoKeys\/[^/]+$/.test(keyId)
        ? undefined
        : "a Cloud KMS key id is projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY"
    case "azure":
      return /^https:\/\/[^/\s]+\/keys\/[^/\s]+(\/[^/\s]+)?\/?$/.test(keyId)
        ? undefined
        : "a Key Vault key id is https://VAULT.vault.azure.net/keys/NAME[/VERSION]"
  }
}

const formatIssue = (e: ParseResult.ParseError): string =>
  ParseResult.ArrayFormatter.formatErrorSync(e)
    .map((i) => `${i.path.length > 0 ? i.path.join(".") + ": " : ""}${i.message}`)
    .slice(0, 1)
    .join("; ")

/**
 * Loads the file. When `explicit` (a flag or `OBJCRYPT_CONFIG`), a missing file is an error;
 * otherwise a missing default file yields the empty configuration.
 *
 * @since 0.1.0
 * @category loading
 */
export const load = (file: string, explicit: boolean): Effect.Effect<EndpointsConfig, ConfigError> =>
  Effect.tryPromise({
    try: () => fs.readFile(file, "utf8"),
    catch: (e) => e as NodeJS.ErrnoException
  }).pipe(
    Effect.map(Option.some),
    Effect.catchAll((e) =>
      e.code === "ENOENT" && !explicit
        ? Effect.succeed(Option.none<string>())
        : Effect.fail(new ConfigError({ file, detail: `cannot read (${e.code ?? "error"})` }))
    ),
    Effect.flatMap(Option.match({ onNone: () => Effect.succeed(empty), onSome: (text) => parse(file, text) }))
  )

/**
 * Combines the encryption flags of one command with an endpoint's default: every flag given wins;
 * when the flags name a different mode, the endpoint's key fields (which belong to its own mode)
 * are dropped.
 *
 * @since 0.1.0
 * @category encryption
 */
export const mergeSpec = (
  flags: Partial<{ -readonly [K in keyof EncryptionMode.ModeSpec]: EncryptionMode.ModeSpec[K] }>,
  fallback: EncryptionMode.ModeSpec | undefined
): EncryptionMode.ModeSpec => {
  const defined = Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined)) as Partial<EncryptionMode.ModeSpec>
  if (fallback === undefined || (defined.mode !== undefined && defined.mode !== fallback.mode)) {
    return { mode: "none", ...defined } as EncryptionMode.ModeSpec
  }
  return { ...fallback, ...defined }
}
