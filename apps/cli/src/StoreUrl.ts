/**
 * What a command-line location names: a local file, or an object (or prefix) in a store.
 *
 * - `local://KEY` — the embedded local store (`$XDG_DATA_HOME/objcrypt/store` by default).
 * - `file:///ROOT//KEY` — a driver-fs store rooted at `/ROOT`; the key follows the first `//`
 *   (`file:///ROOT` alone addresses the whole store).
 * - `s3://BUCKET/KEY` — S3 or an S3-compatible store; endpoint, region and credentials come from a
 *   configured endpoint for that bucket, or from the usual AWS environment variables.
 * - `NAME:KEY` — a named endpoint from the configuration file.
 * - `gs://BUCKET/KEY` — Google Cloud Storage: a configured `gcs` endpoint for that bucket, or
 *   `STORAGE_EMULATOR_HOST`, `GOOGLE_APPLICATION_CREDENTIALS` and `GOOGLE_CLOUD_PROJECT`.
 * - `az://CONTAINER/KEY` — Azure Blob Storage: a configured `azure` endpoint for that container, or
 *   `AZURE_STORAGE_CONNECTION_STRING` (else `AZURE_STORAGE_ACCOUNT` + `AZURE_STORAGE_KEY`).
 * - anything else is a local path.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type * as CompatibilityMatrix from "@objcrypt/core/CompatibilityMatrix"
import type * as EncryptionMode from "@objcrypt/core/EncryptionMode"
import * as path from "node:path"
import { UsageError } from "./CliError.js"
import type { AzureCredentials, AzureEndpoint, ClientFormat, Credentials, EndpointsConfig, GcsEndpoint, KmsSpec } from "./EndpointsConfig.js"

/**
 * A store to open.
 *
 * @since 0.1.0
 * @category models
 */
export type StoreSpec =
  | {
    readonly _tag: "Fs"
    readonly root: string
    readonly encryption?: EncryptionMode.ModeSpec | undefined
    /** The endpoint's default client-side format (`cp --format` overrides it). */
    readonly format?: ClientFormat | undefined
    /** The endpoint's KMS for cse-kms (else the file's `kms`, else local). */
    readonly kms?: KmsSpec | undefined
  }
  | {
    readonly _tag: "S3"
    readonly bucket: string
    readonly endpoint?: string | undefined
    readonly region?: string | undefined
    readonly pathStyle?: boolean | undefined
    readonly profile?: CompatibilityMatrix.ProfileName | undefined
    readonly facts?: CompatibilityMatrix.BucketFacts | undefined
    readonly credentials?: Credentials | undefined
    readonly encryption?: EncryptionMode.ModeSpec | undefined
    /** The endpoint's default client-side format (`cp --format` overrides it). */
    readonly format?: ClientFormat | undefined
    /** The endpoint's KMS for cse-kms (else the file's `kms`, else local). */
    readonly kms?: KmsSpec | undefined
  }
  | {
    readonly _tag: "Gcs"
    readonly bucket: string
    readonly apiEndpoint?: string | undefined
    readonly projectId?: string | undefined
    readonly keyFilename?: string | undefined
    readonly profile?: CompatibilityMatrix.ProfileName | undefined
    readonly facts?: CompatibilityMatrix.BucketFacts | undefined
    readonly encryption?: EncryptionMode.ModeSpec | undefined
    /** The endpoint's default client-side format (`cp --format` overrides it). */
    readonly format?: ClientFormat | undefined
    /** The endpoint's KMS for cse-kms (else the file's `kms`, else local). */
    readonly kms?: KmsSpec | undefined
  }
  | {
    readonly _tag: "Azure"
    readonly container: string
    /** The blob endpoint (from the endpoint, else the connection string); decides TLS. */
    readonly accountUrl?: string | undefined
    /** `undefined`: nothing configured and no credentials in the environment. */
    readonly credentials?: AzureCredentials | undefined
    readonly defaultEncryptionScope?: string | undefined
    readonly profile?: CompatibilityMatrix.ProfileName | undefined
    readonly facts?: CompatibilityMatrix.BucketFacts | undefined
    readonly encryption?: EncryptionMode.ModeSpec | undefined
    /** The endpoint's default client-side format (`cp --format` overrides it). */
    readonly format?: ClientFormat | undefined
    /** The endpoint's KMS for cse-kms (else the file's `kms`, else local). */
    readonly kms?: KmsSpec | undefined
  }

/**
 * @since 0.1.0
 * @category models
 */
export type Location =
  | { readonly _tag: "LocalFile"; readonly path: string }
  | {
    readonly _tag: "Store"
    readonly store: StoreSpec
    /** Key or prefix inside the store (an endpoint's own prefix already applied). */
    readonly key: string
    /** The endpoint's prefix, stripped from keys when printing relative names. */
    readonly basePrefix: string
    /** How to print `key` back to the user: `display + key-relative-to-basePrefix`. */
    readonly display: string
  }

/**
 * @since 0.1.0
 * @category models
 */
export interface Context {
  readonly config: EndpointsConfig
  readonly localStore: string
  readonly env: Readonly<Record<string, string | undefined>>
}

const S3_BUCKET = /^(?=.{3,63}$)[a-z0-9][a-z0-9.-]*[a-z0-9]$/

// Google: 3-63 characters (up to 222 with dots), lower-case letters, digits, -, _ and .
const GCS_BUCKET = /^(?=.{3,222}$)[a-z0-9][a-z0-9._-]*[a-z0-9]$/
// Azure: 3-63 lower-case letters, digits and single hyphens, starting and ending alphanumeric.
const AZURE_CONTAINER = /^(?=.{3,63}$)[a-z0-9](?:-?[a-z0-9])*$/

const splitBucket = (rest: string) => {
  const slash = rest.indexOf("/")
  return { bucket: slash < 0 ? rest : rest.slice(0, slash), key: slash < 0 ? "" : rest.slice(slash + 1) }
}

const trimKey = (k: string) => k.replace(/^\/+/, "")

/**
 * Parses one command-line location.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = (input: string, ctx: Context): Effect.Effect<Location, UsageError> =>
  Effect.suspend((): Effect.Effect<Location, UsageError> => {
    const bad = (why: string) => Effect.fail(new UsageError({ detail: `malformed location ${JSON.stringify(input)}: ${why}` }))
    if (input.trim() === "") return bad("empty")
    const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/(.*)$/s.exec(input)
    if (scheme !== null) {
      const rest = scheme[2]!
      switch (scheme[1]!.toLowerCase()) {
        case "local":
          return Effect.succeed(store({ _tag: "Fs", root: ctx.localStore, encryption: ctx.config.localEncryption }, trimKey(rest), "", "local://"))
        case "file": {
          if (!rest.startsWith("/") && !rest.startsWith("localhost/")) return bad("file URLs need an absolute path (file:///dir)")
          const p = rest.startsWith("localhost/") ? rest.slice("localhost".length) : rest
          const split = p.indexOf("//")
          const root = split < 0 ? p : p.slice(0, split)
          const key = split < 0 ? "" : p.slice(split + 2)
          if (root === "/" || root === "") return bad("the store root cannot be /")
          let decoded: string
          try {
            decoded = decodeURIComponent(root)
          } catch {
            return bad("bad percent-encoding")
          }
          return Effect.succeed(store({ _tag: "Fs", root: path.resolve(decoded) }, key, "", `file://${root}//`))
        }
        case "s3": {
          const slash = rest.indexOf("/")
          const bucket = slash < 0 ? rest : rest.slice(0, slash)
          const key = slash < 0 ? "" : rest.slice(slash + 1)
          if (bucket === "") return bad("no bucket (expected s3://BUCKET/KEY)")
          if (!S3_BUCKET.test(bucket)) return bad(`${JSON.stringify(bucket)} is not a valid S3 bucket name`)
          const configured = Object.values(ctx.config.endpoints ?? {}).find((e) => e.type === "s3" && e.bucket === bucket)
          const spec: StoreSpec = configured !== undefined && configured.type === "s3"
            ? { _tag: "S3", ...configured, encryption: configured.encryption }
            : s3FromEnv(bucket, ctx.env)
          return Effect.succeed(store(spec, key, "", `s3://${bucket}/`))
        }
        case "gs": {
          const { bucket, key } = splitBucket(rest)
          if (bucket === "") return bad("no bucket (expected gs://BUCKET/KEY)")
          if (!GCS_BUCKET.test(bucket)) return bad(`${JSON.stringify(bucket)} is not a valid Cloud Storage bucket name`)
          const configured = Object.values(ctx.config.endpoints ?? {}).find((e) => e.type === "gcs" && e.bucket === bucket)
          const spec: StoreSpec = configured !== undefined && configured.type === "gcs"
            ? gcsSpec(configured)
            : gcsFromEnv(bucket, ctx.env)
          return Effect.succeed(store(spec, key, "", `gs://${bucket}/`))
        }
        case "az": {
          const { bucket: container, key } = splitBucket(rest)
          if (container === "") return bad("no container (expected az://CONTAINER/KEY)")
          if (!AZURE_CONTAINER.test(container)) return bad(`${JSON.stringify(container)} is not a valid Azure container name`)
          const configured = Object.values(ctx.config.endpoints ?? {}).find((e) => e.type === "azure" && e.container === container)
          const spec: StoreSpec = configured !== undefined && configured.type === "azure"
            ? azureSpec(configured, ctx.env)
            : azureFromEnv(container, ctx.env)
          return Effect.succeed(store(spec, key, "", `az://${container}/`))
        }
        default:
          return bad(`unknown scheme ${scheme[1]}:// (expected local://, file://, s3://, gs://, az://, an endpoint NAME: or a local path)`)
      }
    }
    if (input === "local:" || input.startsWith("local:")) {
      return Effect.succeed(store({ _tag: "Fs", root: ctx.localStore, encryption: ctx.config.localEncryption }, trimKey(input.slice(6)), "", "local://"))
    }
    const named = /^([a-z][a-z0-9_-]+):(.*)$/s.exec(input)
    if (named !== null && !named[2]!.startsWith("//")) {
      const name = named[1]!
      const ep = ctx.config.endpoints?.[name]
      if (ep === undefined) {
        const known = Object.keys(ctx.config.endpoints ?? {})
        return Effect.fail(new UsageError({
          detail: `unknown endpoint ${JSON.stringify(name)} in ${JSON.stringify(input)} (${known.length === 0 ? "no endpoints are configured" : `configured: ${known.join(", ")}`}; write ./${input} for a local file)`
        }))
      }
      const base = ep.prefix ?? ""
      const key = base + trimKey(named[2]!)
      const spec: StoreSpec = ep.type === "fs"
        ? { _tag: "Fs", root: path.resolve(ep.root), encryption: ep.encryption, format: ep.format, kms: ep.kms }
        : ep.type === "gcs"
        ? gcsSpec(ep)
        : ep.type === "azure"
        ? azureSpec(ep, ctx.env)
        : { _tag: "S3", ...ep, encryption: ep.encryption }
      return Effect.succeed(store(spec, key, base, `${name}:`))
    }
    return Effect.succeed({ _tag: "LocalFile", path: input })
  })

const store = (spec: StoreSpec, key: string, basePrefix: string, display: string): Location => ({
  _tag: "Store",
  store: spec,
  key,
  basePrefix,
  display
})

const s3FromEnv = (bucket: string, env: Context["env"]): StoreSpec => {
  const endpoint = env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL
  return {
    _tag: "S3",
    bucket,
    endpoint: endpoint === undefined || endpoint === "" ? undefined : endpoint,
    region: env.AWS_REGION ?? env.AWS_DEFAULT_REGION,
    // S3-compatible servers behind a custom endpoint rarely have virtual-host DNS.
    pathStyle: endpoint !== undefined && endpoint !== "" ? true : undefined
  }
}

const nonEmpty = (s: string | undefined) => (s === undefined || s.trim() === "" ? undefined : s)

const gcsSpec = (ep: GcsEndpoint): StoreSpec => ({
  _tag: "Gcs",
  bucket: ep.bucket,
  apiEndpoint: ep.apiEndpoint,
  projectId: ep.projectId,
  keyFilename: ep.keyFilename,
  profile: ep.profile,
  facts: ep.facts,
  encryption: ep.encryption,
  format: ep.format,
  kms: ep.kms
})

const gcsFromEnv = (bucket: string, env: Context["env"]): StoreSpec => {
  // The variable the Google client libraries and emulators use: `host:port` or a URL.
  const emulator = nonEmpty(env.STORAGE_EMULATOR_HOST)
  return {
    _tag: "Gcs",
    bucket,
    apiEndpoint: emulator === undefined ? undefined : /^https?:\/\//i.test(emulator) ? emulator : `http://${emulator}`,
    projectId: nonEmpty(env.GOOGLE_CLOUD_PROJECT) ?? nonEmpty(env.GCLOUD_PROJECT),
    keyFilename: nonEmpty(env.GOOGLE_APPLICATION_CREDENTIALS)
  }
}

/**
 * The blob endpoint a storage connection string names (`BlobEndpoint`, else built from the account
 * name, protocol and suffix); `undefined` when it names none.
 *
 * @since 0.1.0
 * @category parsing
 */
export const connectionStringBlobEndpoint = (cs: string): string | undefined => {
  const fields = new Map<string, string>()
  for (const part of cs.split(";")) {
    const eq = part.indexOf("=")
    if (eq > 0) fields.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim())
  }
  const explicit = fields.get("blobendpoint")
  if (explicit !== undefined && explicit !== "") return explicit
  const account = fields.get("accountname")
  if (account === undefined || account === "") return undefined
  return `${fields.get("defaultendpointsprotocol") ?? "https"}://${account}.blob.${fields.get("endpointsuffix") ?? "core.windows.net"}`
}

const accountUrlOf = (accountUrl: string | undefined, credentials: AzureCredentials | undefined, env: Context["env"]) => {
  if (accountUrl !== undefined) return accountUrl
  const cs = credentials?.connectionString ??
    (credentials?.connectionStringEnv === undefined ? undefined : nonEmpty(env[credentials.connectionStringEnv]))
  return cs === undefined ? undefined : connectionStringBlobEndpoint(cs)
}

const azureSpec = (ep: AzureEndpoint, env: Context["env"]): StoreSpec => ({
  _tag: "Azure",
  container: ep.container,
  accountUrl: accountUrlOf(ep.accountUrl, ep.credentials, env),
  credentials: ep.credentials,
  defaultEncryptionScope: ep.defaultEncryptionScope,
  profile: ep.profile,
  facts: ep.facts,
  encryption: ep.encryption,
  format: ep.format,
  kms: ep.kms
})

const azureFromEnv = (container: string, env: Context["env"]): StoreSpec => {
  if (nonEmpty(env.AZURE_STORAGE_CONNECTION_STRING) !== undefined) {
    const credentials: AzureCredentials = { connectionStringEnv: "AZURE_STORAGE_CONNECTION_STRING" }
    return { _tag: "Azure", container, accountUrl: accountUrlOf(undefined, credentials, env), credentials }
  }
  const account = nonEmpty(env.AZURE_STORAGE_ACCOUNT)
  if (account !== undefined && nonEmpty(env.AZURE_STORAGE_KEY) !== undefined) {
    return {
      _tag: "Azure",
      container,
      accountUrl: `https://${account}.blob.core.windows.net`,
      credentials: { accountName: account, accountKeyEnv: "AZURE_STORAGE_KEY" }
    }
  }
  return { _tag: "Azure", container }
}

/**
 * Parses a location that must be in a store.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseStore = (
  input: string,
  ctx: Context
): Effect.Effect<Extract<Location, { _tag: "Store" }>, UsageError> =>
  Effect.flatMap(parse(input, ctx), (loc) =>
    loc._tag === "Store"
      ? Effect.succeed(loc)
      : Effect.fail(new UsageError({
        detail: `${JSON.stringify(input)} is a local path; expected a store URL (local://KEY, file:///ROOT//KEY, s3://BUCKET/KEY, gs://BUCKET/KEY, az://CONTAINER/KEY or ENDPOINT:KEY)`
      })))

/**
 * The user-facing name of a key inside a location's store.
 *
 * @since 0.1.0
 * @category rendering
 */
export const displayKey = (loc: Extract<Location, { _tag: "Store" }>, key: string): string =>
  loc.display + (key.startsWith(loc.basePrefix) ? key.slice(loc.basePrefix.length) : key)

/**
 * A stable identity for a store spec, to share one opened store between locations.
 *
 * @since 0.1.0
 * @category utils
 */
export const storeId = (spec: StoreSpec): string => {
  switch (spec._tag) {
    case "Fs":
      return `fs:${spec.root}`
    case "S3":
      return `s3:${spec.endpoint ?? ""}:${spec.bucket}`
    case "Gcs":
      return `gs:${spec.apiEndpoint ?? ""}:${spec.bucket}`
    case "Azure":
      return `az:${spec.accountUrl ?? ""}:${spec.container}`
  }
}
