/**
 * Bucket-level encryption: create a bucket with default encryption, read/set/remove a bucket's
 * default encryption, and probe what a real bucket allows (for the compatibility matrix).
 *
 * @since 0.1.0
 */
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteBucketEncryptionCommand,
  DeleteObjectCommand,
  GetBucketEncryptionCommand,
  GetObjectCommand,
  PutBucketEncryptionCommand,
  PutObjectCommand
} from "@aws-sdk/client-s3"
import type { S3Client, ServerSideEncryptionConfiguration } from "@aws-sdk/client-s3"
import type { BucketFacts, ModeObservation, ProbeResult, ProfileName } from "@objcrypt/core/CompatibilityMatrix"
import * as CustomerKey from "@objcrypt/core/CustomerKey"
import type { StoreError } from "@objcrypt/core/Errors"
import { Effect, Option } from "effect"
import * as crypto from "node:crypto"
import { factsOf as sdkFacts, toStoreError } from "./internal/errors.js"
import type { Operation } from "./internal/errors.js"
import { customerKeyFields, writeFields } from "./internal/headers.js"
import type { S3ObjectStore } from "./S3ObjectStore.js"

/**
 * A bucket's default encryption: what S3 applies to objects written without SSE headers, and
 * (Amazon S3, since April 2026) whether SSE-C requests are blocked.
 *
 * @since 0.1.0
 * @category models
 */
export type DefaultEncryption =
  | { readonly _tag: "SseS3"; readonly bucketKey?: boolean | undefined; readonly blockSseC?: boolean | undefined }
  | {
    readonly _tag: "SseKms"
    /** KMS key id, ARN or alias; absent: the AWS managed key `aws/s3`. */
    readonly keyId?: string | undefined
    readonly bucketKey?: boolean | undefined
    readonly blockSseC?: boolean | undefined
  }

const send = <A>(operation: Operation, bucket: string, f: () => Promise<A>): Effect.Effect<A, StoreError> =>
  Effect.tryPromise({ try: f, catch: (e) => toStoreError(operation, undefined, e) }).pipe(Effect.annotateLogs("bucket", bucket))

const toConfiguration = (d: DefaultEncryption): ServerSideEncryptionConfiguration => ({
  Rules: [
    {
      ApplyServerSideEncryptionByDefault: d._tag === "SseS3"
        ? { SSEAlgorithm: "AES256" }
        : { SSEAlgorithm: "aws:kms", ...(d.keyId === undefined ? {} : { KMSMasterKeyID: d.keyId }) },
      ...(d.bucketKey === undefined ? {} : { BucketKeyEnabled: d.bucketKey }),
      ...(d.blockSseC === undefined ? {} : { BlockedEncryptionTypes: { EncryptionType: [d.blockSseC ? "SSE-C" : "NONE"] } })
    }
  ]
})

/**
 * Sets a bucket's default encryption (`PutBucketEncryption`).
 *
 * @since 0.1.0
 * @category encryption
 */
export const putDefaultEncryption = (client: S3Client, bucket: string, encryption: DefaultEncryption): Effect.Effect<void, StoreError> =>
  Effect.asVoid(
    send("putBucketEncryption", bucket, () =>
      client.send(new PutBucketEncryptionCommand({ Bucket: bucket, ServerSideEncryptionConfiguration: toConfiguration(encryption) })))
  )

/**
 * A bucket's default encryption, `None` when it has no configuration.
 *
 * @since 0.1.0
 * @category encryption
 */
export const getDefaultEncryption = (client: S3Client, bucket: string): Effect.Effect<Option.Option<DefaultEncryption>, StoreError> =>
  Effect.tryPromise({
    try: () => client.send(new GetBucketEncryptionCommand({ Bucket: bucket })),
    catch: (e) => e
  }).pipe(
    Effect.map((r) => {
      const rule = r.ServerSideEncryptionConfiguration?.Rules?.[0]
      const d = rule?.ApplyServerSideEncryptionByDefault
      if (rule === undefined || d === undefined) return Option.none<DefaultEncryption>()
      const blocked = rule.BlockedEncryptionTypes?.EncryptionType
      const common = {
        ...(rule.BucketKeyEnabled === undefined ? {} : { bucketKey: rule.BucketKeyEnabled }),
        ...(blocked === undefined ? {} : { blockSseC: blocked.includes("SSE-C") })
      }
      return Option.some<DefaultEncryption>(
        d.SSEAlgorithm === "AES256"
          ? { _tag: "SseS3", ...common }
          : { _tag: "SseKms", ...(d.KMSMasterKeyID === undefined ? {} : { keyId: d.KMSMasterKeyID }), ...common }
      )
    }),
    Effect.catchAll((e) =>
      sdkFacts(e).code === "ServerSideEncryptionConfigurationNotFoundError"
        ? Effect.succeed(Option.none<DefaultEncryption>())
        : Effect.fail(toStoreError("getBucketEncryption", undefined, e))
    )
  )

/**
 * Removes a bucket's default encryption (on Amazon S3 the bucket falls back to SSE-S3).
 *
 * @since 0.1.0
 * @category encryption
 */
export const deleteDefaultEncryption = (client: S3Client, bucket: string): Effect.Effect<void, StoreError> =>
  Effect.asVoid(send("deleteBucketEncryption", bucket, () => client.send(new DeleteBucketEncryptionCommand({ Bucket: bucket }))))

/**
 * Creates a bucket, then sets its default encryption when given (what ABCI's
 * `create-encrypted-bucket` does). If setting the encryption fails, the new bucket is deleted so no
 * unencrypted bucket is left behind.
 *
 * @since 0.1.0
 * @category buckets
 */
export const createBucket = (
  client: S3Client,
  bucket: string,
  options?: { readonly region?: string | undefined; readonly defaultEncryption?: DefaultEncryption | undefined }
): Effect.Effect<void, StoreError> =>
  Effect.gen(function*() {
    const region = options?.region
    yield* send("createBucket", bucket, () =>
      client.send(
        new CreateBucketCommand({
          Bucket: bucket,
          ...(region === undefined || region === "us-east-1" ? {} : { CreateBucketConfiguration: { LocationConstraint: region as never } })
        })
      ))
    const enc = options?.defaultEncryption
    if (enc !== undefined) {
      yield* putDefaultEncryption(client, bucket, enc).pipe(
        Effect.tapError(() => Effect.ignore(deleteBucket(client, bucket)))
      )
    }
  })

/**
 * Deletes an empty bucket.
 *
 * @since 0.1.0
 * @category buckets
 */
export const deleteBucket = (client: S3Client, bucket: string): Effect.Effect<void, StoreError> =>
  Effect.asVoid(send("deleteBucket", bucket, () => client.send(new DeleteBucketCommand({ Bucket: bucket }))))

/**
 * @since 0.1.0
 * @category probe
 */
export interface ProbeOptions {
  /** KMS key for the SSE-KMS trial; absent: the server's default key. */
  readonly kmsKeyId?: string | undefined
  /** The profile to report. @default the store's */
  readonly profile?: ProfileName | undefined
}

const isDenied = (e: unknown) => {
  const { code, status } = sdkFacts(e)
  return status === 403 || code.startsWith("KMS.") || code === "AccessDenied" || code === "KMSAccessDenied"
}

/**
 * Discovers what a real bucket allows: its default encryption, and for each server-side mode a
 * small PUT of a probe object under a random key, read back to see whether the server applied,
 * ignored, enforced or refused it. Every probe object is deleted. The result feeds
 * `CompatibilityMatrix.applyProbe` and `S3Config.facts`.
 *
 * @since 0.1.0
 * @category probe
 */
export const probe = (store: S3ObjectStore["Type"], options?: ProbeOptions): Effect.Effect<ProbeResult> =>
  Effect.gen(function*() {
    const { bucket: Bucket, client } = store
    const body = crypto.randomBytes(64)
    const base = `.objcrypt-probe/${crypto.randomBytes(8).toString("hex")}`
    const attempt = <A>(f: () => Promise<A>) => Effect.either(Effect.tryPromise({ try: f, catch: (e) => e }))
    const readBack = (Key: string, fields: object) =>
      attempt(async () => {
        const r = await client.send(new GetObjectCommand({ Bucket, Key, ...fields }))
        return Buffer.from(await r.Body!.transformToByteArray())
      })
    const cleanup = (Key: string) => Effect.ignore(attempt(() => client.send(new DeleteObjectCommand({ Bucket, Key }))))

    const facts: { -readonly [K in keyof BucketFacts]: BucketFacts[K] } = { tls: store.facts.tls }
    const modes: { SseS3?: ModeObservation; SseKms?: ModeObservation; SseC?: ModeObservation } = {}

    const def = yield* Effect.either(getDefaultEncryption(client, Bucket))
    if (def._tag === "Right" && Option.isSome(def.right)) {
      const d = def.right.value
      facts.defaultEncryption = { mode: d._tag, ...(d._tag === "SseKms" && d.keyId !== undefined ? { keyId: d.keyId } : {}) }
      if (d.blockSseC !== undefined) facts.sseCBlocked = d.blockSseC
    }

    // SSE-S3: applied if the response says AES256.
    {
      const Key = `${base}-sse-s3`
      const r = yield* attempt(() => client.send(new PutObjectCommand({ Bucket, Key, Body: body, ...writeFields({ _tag: "SseS3" }) })))
      modes.SseS3 = r._tag === "Left" ? "refused" : r.right.ServerSideEncryption === "AES256" ? "accepted" : "ignored"
      yield* cleanup(Key)
    }

    // SSE-KMS: applied if the response names aws:kms; a KMS/permission error means the key is denied.
    {
      const Key = `${base}-sse-kms`
      const r = yield* attempt(() =>
        client.send(new PutObjectCommand({ Bucket, Key, Body: body, ...writeFields({ _tag: "SseKms", keyId: options?.kmsKeyId }) })))
      if (r._tag === "Left") {
        modes.SseKms = "refused"
        if (isDenied(r.left)) facts.kmsDenied = true
      } else {
        modes.SseKms = r.right.ServerSideEncryption?.startsWith("aws:kms") === true ? "accepted" : "ignored"
      }
      yield* cleanup(Key)
    }

    // SSE-C: enforced if a read without the key is refused and a read with it returns the bytes.
    {
      const Key = `${base}-sse-c`
      const key = yield* CustomerKey.generate
      const sse = { _tag: "SseC" as const, key }
      const r = yield* attempt(() => client.send(new PutObjectCommand({ Bucket, Key, Body: body, ...writeFields(sse) })))
      if (r._tag === "Left") {
        modes.SseC = "refused"
      } else {
        const without = yield* readBack(Key, {})
        const withKey = yield* readBack(Key, customerKeyFields(sse))
        modes.SseC = without._tag === "Right"
          ? "ignored"
          : withKey._tag === "Right" && withKey.right.equals(body)
          ? "enforced"
          : "accepted"
      }
      yield* cleanup(Key)
    }

    facts.modes = modes
    return {
      profile: options?.profile ?? store.profile,
      bucket: Bucket,
      probedAt: new Date().toISOString(),
      facts
    }
  })
