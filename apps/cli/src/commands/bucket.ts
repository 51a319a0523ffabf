/**
 * `objcrypt bucket create URL [--default-encryption sse-s3|sse-kms] …`: create a bucket (S3) or a
 * store directory (fs), a Cloud Storage bucket or an Azure container, with default encryption where the provider has it.
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import * as CompatibilityMatrix from "@objcrypt/core/CompatibilityMatrix"
import { UnsupportedMode } from "@objcrypt/core/Errors"
import type * as S3Buckets from "@objcrypt/driver-s3/S3Buckets"
import { Effect, Option } from "effect"
import * as fs from "node:fs/promises"
import { LocalFileError, UsageError } from "../CliError.js"
import * as Stores from "../Stores.js"
import { common, json, printJson, println, withSession } from "./common.js"

const create = Command.make(
  "create",
  {
    ...common,
    json,
    defaultEncryption: Options.choice("default-encryption", ["none", "sse-s3", "sse-kms"] as const).pipe(
      Options.withDescription("encryption the bucket applies to objects written without their own"),
      Options.withDefault("none" as const)
    ),
    kmsKeyId: Options.text("kms-key-id").pipe(Options.withDescription("KMS key for sse-kms (default: the provider's)"), Options.optional),
    bucketKey: Options.boolean("bucket-key").pipe(Options.withDescription("S3 Bucket Keys for sse-kms")),
    blockSseC: Options.boolean("block-sse-c").pipe(Options.withDescription("refuse SSE-C requests on this bucket (AWS)")),
    url: Args.text({ name: "URL" })
  },
  (o) =>
    withSession(o, (s) =>
      Effect.gen(function*() {
        const loc = yield* s.locateStore(o.url)
        if (loc.key !== "" && loc.key !== loc.basePrefix) {
          return yield* new UsageError({ detail: "bucket create takes a bucket URL without a key (s3://BUCKET)" })
        }
        const profile = s.profileOf(loc.store)
        if (o.defaultEncryption !== "none") {
          const tag = o.defaultEncryption === "sse-s3" ? "SseS3" as const : "SseKms" as const
          const plan = yield* CompatibilityMatrix.resolve(profile, tag)
          if (plan._tag !== "Native") {
            return yield* new UnsupportedMode({
              provider: profile,
              mode: tag,
              reason: "no native bucket default encryption",
              alternatives: ["write objects with --mode cse-c or cse-kms", "enforce with `objcrypt audit --require-encrypted`"]
            })
          }
        }
        if (loc.store._tag === "Fs") {
          const root = loc.store.root
          yield* Effect.tryPromise({
            try: () => fs.mkdir(root, { recursive: true, mode: 0o700 }),
            catch: (e) => new LocalFileError({ path: root, reason: "Io", detail: `cannot create (${(e as NodeJS.ErrnoException).code ?? "error"})` })
          })
          if (o.json) return yield* printJson({ created: o.url, defaultEncryption: o.defaultEncryption })
          return yield* println(`created ${o.url}`)
        }
        const kmsKeyId = Option.getOrUndefined(o.kmsKeyId)
        const done = o.json
          ? printJson({ created: o.url, defaultEncryption: o.defaultEncryption })
          : println(`created ${o.url}${o.defaultEncryption === "none" ? "" : ` with default encryption ${o.defaultEncryption}`}`)
        if (loc.store._tag === "Gcs" || loc.store._tag === "Azure") {
          if (o.bucketKey) return yield* new UsageError({ detail: "--bucket-key is an S3 option" })
          if (o.defaultEncryption === "sse-kms" && kmsKeyId === undefined) {
            return yield* new UsageError({
              detail: `--default-encryption sse-kms needs --kms-key-id (${loc.store._tag === "Gcs" ? "a Cloud KMS key name" : "an encryption scope"})`
            })
          }
        }
        if (loc.store._tag === "Gcs") {
          const store = yield* Stores.openGcs(loc.store)
          const Buckets = yield* Effect.promise(() => import("@objcrypt/driver-gcs/GcsBuckets"))
          yield* Buckets.createBucket(store.storage, loc.store.bucket, {
            defaultKmsKeyName: o.defaultEncryption === "sse-kms" ? kmsKeyId : undefined,
            enforcement: o.blockSseC ? { customerSupplied: "FullyRestricted" } : undefined
          })
          return yield* done
        }
        if (loc.store._tag === "Azure") {
          if (o.blockSseC) return yield* new UsageError({ detail: "--block-sse-c is not available for Azure containers" })
          const store = yield* Stores.openAzure(loc.store, s.env)
          const Azure = yield* Effect.promise(() => import("@objcrypt/driver-azure/AzureBlobObjectStore"))
          yield* Azure.createContainer(store.client, {
            defaultEncryptionScope: o.defaultEncryption === "sse-kms" ? kmsKeyId : undefined,
            preventEncryptionScopeOverride: o.defaultEncryption === "sse-kms" ? true : undefined
          })
          return yield* done
        }
        const store = yield* Stores.openS3(loc.store, s.env)
        const defaultEncryption: S3Buckets.DefaultEncryption | undefined = o.defaultEncryption === "sse-s3"
          ? { _tag: "SseS3", bucketKey: o.bucketKey || undefined, blockSseC: o.blockSseC || undefined }
          : o.defaultEncryption === "sse-kms"
          ? { _tag: "SseKms", keyId: kmsKeyId, bucketKey: o.bucketKey || undefined, blockSseC: o.blockSseC || undefined }
          : undefined
        const Buckets = yield* Effect.promise(() => import("@objcrypt/driver-s3/S3Buckets"))
        yield* Buckets.createBucket(store.client, loc.store.bucket, { region: loc.store.region, defaultEncryption })
        yield* done
      }))
).pipe(Command.withDescription("create a bucket, optionally with default encryption"))

/**
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("bucket").pipe(
  Command.withDescription("bucket operations"),
  Command.withSubcommands([create])
)
