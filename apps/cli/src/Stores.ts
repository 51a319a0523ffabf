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
import type * as S3ObjectStore from "@objcrypt/driver-s3/S3ObjectStore"
import { KeyManager } from "@objcrypt/keys/KeyManager"
import type * as LocalKeyStore from "@objcrypt/keys/LocalKeyStore"
import * as LocalKms from "@objcrypt/keys/LocalKms"
import { ConfigError } from "./CliError.js"
import type * as StoreUrl from "./StoreUrl.js"

/**
 * The matrix profile of a store: `local-fs` for directories; for S3, the endpoint's `profile`,
 * else `s3-compatible` behind a custom endpoint URL and `aws-s3` without one.
 *
 * @since 0.1.0
 * @category profiles
 */
export const profileOf = (spec: StoreUrl.StoreSpec): CompatibilityMatrix.ProfileName =>
  spec._tag === "Fs" ? "local-fs" : spec.profile ?? (spec.endpoint === undefined ? "aws-s3" : "s3-compatible")

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
export const factsOf = (spec: StoreUrl.StoreSpec): CompatibilityMatrix.BucketFacts | undefined =>
  spec._tag === "Fs"
    ? undefined
    : { ...spec.facts, tls: spec.endpoint === undefined || spec.endpoint.toLowerCase().startsWith("https:") }

/**
 * Opens a store; it is closed with the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const open = (
  spec: StoreUrl.StoreSpec,
  env: Readonly<Record<string, string | undefined>>
): Effect.Effect<ObjectStore.ObjectStore["Type"], StoreError | ConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    if (spec._tag === "Fs") return yield* FsObjectStore.make({ root: spec.root })
    return yield* openS3(spec, env)
  })

/**
 * Opens an S3 store with its driver-specific parts (client, facts) for bucket operations.
 *
 * @since 0.1.0
 * @category constructors
 */
export const openS3 = (
  spec: Extract<StoreUrl.StoreSpec, { _tag: "S3" }>,
  env: Readonly<Record<string, string | undefined>>
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
      sessionToken: sessionToken === undefined ? undefined : Redacted.make(sessionToken)
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
