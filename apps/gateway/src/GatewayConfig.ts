/**
 * The gateway's configuration file (JSON), validated with a Schema. Secrets are never written in
 * it: each is a reference to an environment variable or a file.
 *
 * @since 0.1.0
 */
import * as CompatibilityMatrix from "@objcrypt/core/CompatibilityMatrix"
import { Effect, ParseResult, Redacted, Schema } from "effect"
import * as fs from "node:fs/promises"
import * as KmsService from "./kms/KmsService.js"

/**
 * Where a secret comes from: `{ "env": "NAME" }` or `{ "file": "/path" }` (trailing newline dropped).
 *
 * @since 0.1.0
 * @category schemas
 */
export const SecretRef = Schema.Union(
  Schema.Struct({ env: Schema.NonEmptyString }),
  Schema.Struct({ file: Schema.NonEmptyString })
)

/**
 * @since 0.1.0
 * @category models
 */
export type SecretRef = typeof SecretRef.Type

const BucketName = Schema.String.pipe(Schema.pattern(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/))

/**
 * @since 0.1.0
 * @category schemas
 */
export const UserConfig = Schema.Struct({
  name: Schema.NonEmptyString,
  accessKeyId: Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9]{3,128}$/)),
  secretAccessKey: SecretRef,
  /** Buckets the user may use, or `"*"` for all (including creating new ones). */
  buckets: Schema.Union(Schema.Literal("*"), Schema.Array(BucketName))
})

/**
 * The default backend: one directory per bucket under `root` (driver-fs).
 *
 * @since 0.1.0
 * @category schemas
 */
export const FsBackend = Schema.Struct({
  type: Schema.Literal("fs"),
  root: Schema.NonEmptyString,
  fsync: Schema.optionalWith(Schema.Boolean, { default: () => true })
})

/**
 * The most MiB all uploads to a cloud backend hold in part buffers at once (16 MiB to 1 TiB;
 * default 256): a large PUT reserves its parts before it reads its body, a buffered UploadPart its
 * body, and waits (its client held back by TCP) while the budget is taken.
 *
 * @since 0.1.0
 * @category schemas
 */
export const MemoryBudgetMiB = Schema.optionalWith(Schema.Int.pipe(Schema.between(16, 1024 * 1024)), { default: () => 256 })

/**
 * An S3 or S3-compatible bucket (driver-s3) holding every gateway bucket under `prefix`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const S3Backend = Schema.Struct({
  type: Schema.Literal("s3"),
  bucket: Schema.NonEmptyString,
  prefix: Schema.optionalWith(Schema.String, { default: () => "" }),
  region: Schema.optionalWith(Schema.NonEmptyString, { default: () => "us-east-1" }),
  /** S3-compatible endpoint (RGW, MinIO…); AWS when absent. */
  endpoint: Schema.optional(Schema.NonEmptyString),
  forcePathStyle: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  accessKeyId: Schema.optional(Schema.NonEmptyString),
  secretAccessKey: Schema.optional(SecretRef),
  /** Compatibility-matrix profile of the server (`aws-s3`, `ceph-rgw`, `minio`…). */
  profile: Schema.optional(CompatibilityMatrix.ProfileName),
  /**
   * Bytes per backend multipart part (5 MiB to 5 GiB; driver-s3's default is 8 MiB). Each large
   * PUT holds about `(partConcurrency + 1) × partSize` of ciphertext while it uploads.
   */
  partSize: Schema.optional(Schema.Int.pipe(Schema.between(5 * 1024 * 1024, 5 * 1024 * 1024 * 1024))),
  /** Parts of one object uploaded at the same time (1 to 64; driver-s3's default is 4). */
  partConcurrency: Schema.optional(Schema.Int.pipe(Schema.between(1, 64))),
  /**
   * The most MiB all uploads to this backend hold in part buffers at once (16 MiB to 1 TiB): a
   * large PUT reserves `(partConcurrency + 1) × partSize` before it reads its body, an UploadPart
   * up to `2 × partSize`, and waits (its client held back by TCP) while the budget is taken.
   */
  memoryBudgetMiB: MemoryBudgetMiB,
  /**
   * Seconds a backend request may go without a byte either way before it fails (the client then
   * gets `503 ServiceUnavailable`, nothing committed): a backend that accepts
   * requests and never answers does not hold clients forever. A client that stops reading a GET
   * for that long is cut off too. 0: no limit. Default 120.
   */
  idleTimeoutSeconds: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 86_400)), { default: () => 120 })
})

/**
 * A Google Cloud Storage bucket (driver-gcs) holding every gateway bucket under `prefix`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const GcsBackend = Schema.Struct({
  type: Schema.Literal("gcs"),
  bucket: Schema.NonEmptyString,
  prefix: Schema.optionalWith(Schema.String, { default: () => "" }),
  projectId: Schema.optional(Schema.NonEmptyString),
  /** Custom JSON-API endpoint (emulators). */
  apiEndpoint: Schema.optional(Schema.NonEmptyString),
  /** Service-account key file; the default credentials when absent. */
  keyFilename: Schema.optional(Schema.NonEmptyString),
  memoryBudgetMiB: MemoryBudgetMiB
})

/**
 * An Azure Blob container (driver-azure) holding every gateway bucket under `prefix`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const AzureBackend = Schema.Struct({
  type: Schema.Literal("azure"),
  container: Schema.NonEmptyString,
  prefix: Schema.optionalWith(Schema.String, { default: () => "" }),
  connectionString: SecretRef,
  memoryBudgetMiB: MemoryBudgetMiB
})

/**
 * @since 0.1.0
 * @category schemas
 */
export const Backend = Schema.Union(FsBackend, S3Backend, GcsBackend, AzureBackend)

/**
 * @since 0.1.0
 * @category models
 */
export type Backend = typeof Backend.Type

/**
 * PEM certificate chain and private key files for HTTPS.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Tls = Schema.Struct({
  cert: Schema.NonEmptyString,
  key: Schema.NonEmptyString,
  /** Passphrase of an encrypted private key. */
  passphrase: Schema.optional(SecretRef)
})

/**
 * Where access-log lines go.
 *
 * @since 0.1.0
 * @category schemas
 */
export const AccessLogTarget = Schema.Union(
  Schema.Literal("stdout", "stderr", "off"),
  Schema.Struct({ file: Schema.NonEmptyString })
)

/**
 * @since 0.1.0
 * @category models
 */
export type AccessLogTarget = typeof AccessLogTarget.Type

/**
 * @since 0.1.0
 * @category schemas
 */
export const GatewayConfig = Schema.Struct({
  listen: Schema.optionalWith(
    Schema.Struct({
      host: Schema.optionalWith(Schema.String, { default: () => "127.0.0.1" }),
      port: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 65535)), { default: () => 9000 })
    }),
    { default: () => ({ host: "127.0.0.1", port: 9000 }) }
  ),
  region: Schema.optionalWith(Schema.NonEmptyString, { default: () => "us-east-1" }),
  /** Base domains of virtual-hosted-style addressing (`<bucket>.<domain>`); path style always works. */
  virtualHostDomains: Schema.optionalWith(Schema.Array(Schema.NonEmptyString), { default: () => [] }),
  backend: Backend,
  users: Schema.NonEmptyArray(UserConfig),
  /**
   * The `@objcrypt/keys` key store: the SSE-S3 master key (unless `sseS3Hsm`) and the local KMS's
   * keys (unless `sseKms`). Optional only when both of those are set: then no key lives in a file.
   */
  keyStore: Schema.optional(Schema.Struct({
    path: Schema.NonEmptyString,
    passphrase: SecretRef,
    /** Name of the master key wrapping SSE-S3 data keys; generated on first start. */
    sseS3Key: Schema.optionalWith(Schema.NonEmptyString, { default: () => "objcrypt-gateway-sse-s3" }),
    /** KMS key used for `aws:kms` without a key id (S3's `aws/s3` key); generated on first start. */
    defaultKmsKey: Schema.optionalWith(Schema.NonEmptyString, { default: () => "objcrypt-gateway-kms" })
  })),
  /**
   * The SSE-S3 master key in a PKCS#11 token (an HSM; SoftHSM2 in the tests) instead of the key
   * store: a non-extractable AES-256 key under `keyLabel`, which wraps every SSE-S3 data key inside
   * the token. Not generated on start: create it once with `objcrypt-gateway --config <file>
   * --create-sse-s3-key`. Objects written before under `keyStore.sseS3Key` stay readable.
   */
  sseS3Hsm: Schema.optional(Schema.Struct({
    /** The PKCS#11 module, e.g. `/usr/lib/softhsm/libsofthsm2.so`. */
    library: Schema.NonEmptyString,
    tokenLabel: Schema.NonEmptyString,
    pin: SecretRef,
    keyLabel: Schema.optionalWith(Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/)), {
      default: () => "objcrypt-gateway-sse-s3"
    })
  })),
  /**
   * SSE-KMS through an AWS-KMS-compatible endpoint — AWS KMS itself, or this gateway's own
   * `kmsService` — instead of the local key store: key ids, aliases, disabled keys and keys
   * pending deletion are then the KMS's. `defaultKeyId` is used for `aws:kms` without a key id.
   */
  sseKms: Schema.optional(Schema.Struct({
    endpoint: Schema.optional(Schema.NonEmptyString),
    region: Schema.optional(Schema.NonEmptyString),
    accessKeyId: Schema.NonEmptyString,
    secretAccessKey: SecretRef,
    defaultKeyId: Schema.NonEmptyString
  })),
  /** A second listener speaking the AWS KMS JSON protocol (see docs/KMS.md), same users and SigV4. */
  kmsService: Schema.optional(KmsService.KmsServiceConfig),
  /** Accept SSE-C over plain HTTP (S3 refuses it). Only for tests and loopback; not needed with `tls`. */
  allowPlainHttpSseC: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  /** Serve HTTPS from PEM files (SSE-C then works without `allowPlainHttpSseC`). */
  tls: Schema.optional(Tls),
  /** A separate plain-HTTP listener answering only `/health` and `/ready`. */
  health: Schema.optional(Schema.Struct({
    host: Schema.optionalWith(Schema.String, { default: () => "127.0.0.1" }),
    port: Schema.Int.pipe(Schema.between(0, 65535))
  })),
  /** Where the JSON access log goes: `"stdout"`, `"stderr"`, `"off"` or `{ "file": path }` (appended). */
  accessLog: Schema.optionalWith(AccessLogTarget, { default: () => "stdout" as const }),
  /**
   * Abort multipart uploads still incomplete this many days after initiation (S3's lifecycle rule
   * `AbortIncompleteMultipartUpload`, for every bucket); fractions allowed. Unset: uploads stay
   * until completed or aborted, as on S3 without such a rule.
   */
  abortIncompleteUploadsAfterDays: Schema.optional(Schema.Number.pipe(Schema.positive(), Schema.lessThanOrEqualTo(36500))),
  /** Seconds a SIGTERM waits for requests in flight before closing their connections. */
  shutdownGraceSeconds: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 3600)), { default: () => 30 })
}).pipe(Schema.filter((c) =>
  c.keyStore !== undefined || (c.sseS3Hsm !== undefined && c.sseKms !== undefined) ||
  "keyStore is required unless both sseS3Hsm (the SSE-S3 master key in a token) and sseKms (a remote KMS) are set"
))

/**
 * @since 0.1.0
 * @category models
 */
export type GatewayConfig = typeof GatewayConfig.Type

/**
 * A configuration file that cannot be read or is invalid.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConfigFileError extends Schema.TaggedError<ConfigFileError>("@objcrypt/gateway/ConfigFileError")(
  "ConfigFileError",
  { path: Schema.String, detail: Schema.String }
) {
  override get message() {
    return `configuration ${this.path}: ${this.detail}`
  }
}

/**
 * Decodes an already-parsed configuration object.
 *
 * @since 0.1.0
 * @category parsing
 */
export const decode = (u: unknown, source = "<inline>"): Effect.Effect<GatewayConfig, ConfigFileError> =>
  Schema.decodeUnknown(GatewayConfig, { onExcessProperty: "error" })(u).pipe(
    Effect.mapError((e) => new ConfigFileError({ path: source, detail: ParseResult.TreeFormatter.formatErrorSync(e) }))
  )

/**
 * Reads and validates a configuration file.
 *
 * @since 0.1.0
 * @category parsing
 */
export const load = (path: string): Effect.Effect<GatewayConfig, ConfigFileError> =>
  Effect.tryPromise({
    try: () => fs.readFile(path, "utf8"),
    catch: () => new ConfigFileError({ path, detail: "cannot be read" })
  }).pipe(
    Effect.flatMap((text) =>
      Effect.try({ try: () => JSON.parse(text) as unknown, catch: () => new ConfigFileError({ path, detail: "is not valid JSON" }) })
    ),
    Effect.flatMap((u) => decode(u, path))
  )

/**
 * Reads a secret from its reference.
 *
 * @since 0.1.0
 * @category secrets
 */
export const readSecret = (ref: SecretRef, what: string): Effect.Effect<Redacted.Redacted<string>, ConfigFileError> =>
  "env" in ref
    ? Effect.suspend(() => {
      const v = process.env[ref.env]
      return v === undefined || v === ""
        ? Effect.fail(new ConfigFileError({ path: what, detail: `environment variable ${ref.env} is not set` }))
        : Effect.succeed(Redacted.make(v))
    })
    : Effect.tryPromise({
      try: () => fs.readFile(ref.file, "utf8"),
      catch: () => new ConfigFileError({ path: what, detail: `secret file ${ref.file} cannot be read` })
    }).pipe(Effect.map((s) => Redacted.make(s.replace(/\r?\n$/, ""))))
