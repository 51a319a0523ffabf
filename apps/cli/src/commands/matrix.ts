/**
 * `objcrypt matrix [--provider P]… [--details] [--probe URL] [--json]`: the provider × mode compatibility matrix.
 *
 * @since 0.1.0
 */
import { Command, Options } from "@effect/cli"
import * as CompatibilityMatrix from "@objcrypt/core/CompatibilityMatrix"
import { Effect, Option, Schema } from "effect"
import { UsageError } from "../CliError.js"
import * as AzureProbe from "../AzureProbe.js"
import * as Stores from "../Stores.js"
import { common, eprintln, json, printJson, println, withSession } from "./common.js"

/**
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make(
  "matrix",
  {
    ...common,
    json,
    provider: Options.choice("provider", CompatibilityMatrix.allProfileNames).pipe(
      Options.withDescription("show only this profile (repeatable)"),
      Options.repeated
    ),
    details: Options.boolean("details").pipe(Options.withDescription("every cell in words: constraints, notes, sources")),
    probe: Options.text("probe").pipe(
      Options.withDescription("probe a real bucket or container (s3://, gs://, az:// URL or endpoint) and merge what it allows into the matrix"),
      Options.optional
    ),
    kmsKeyId: Options.text("kms-key-id").pipe(
      Options.withDescription("KMS key (S3), Cloud KMS key name (GCS) or encryption scope (Azure) for the probe's sse-kms trial"),
      Options.optional
    )
  },
  (o) =>
    withSession(o, (s) =>
      Effect.gen(function*() {
        let m = CompatibilityMatrix.matrix
        let profiles = o.provider
        let probe: CompatibilityMatrix.ProbeResult | undefined
        let skipped: ReadonlyArray<string> = []
        if (Option.isSome(o.probe)) {
          const loc = yield* s.locateStore(o.probe.value)
          const kmsKeyId = Option.getOrUndefined(o.kmsKeyId)
          let result: CompatibilityMatrix.ProbeResult
          switch (loc.store._tag) {
            case "S3": {
              const store = yield* Stores.openS3(loc.store, s.env)
              const Buckets = yield* Effect.promise(() => import("@objcrypt/driver-s3/S3Buckets"))
              result = yield* Buckets.probe(store, { kmsKeyId })
              break
            }
            case "Gcs": {
              const store = yield* Stores.openGcs(loc.store)
              const Buckets = yield* Effect.promise(() => import("@objcrypt/driver-gcs/GcsBuckets"))
              result = yield* Buckets.probe(store, { kmsKeyName: kmsKeyId })
              break
            }
            case "Azure": {
              const store = yield* Stores.openAzure(loc.store, s.env)
              const r = yield* AzureProbe.probe(store, { encryptionScope: kmsKeyId })
              if (!o.json) for (const why of r.skipped) yield* eprintln(`objcrypt: probe: not tried: ${why}`)
              skipped = r.skipped
              result = r.probe
              break
            }
            case "Fs":
              return yield* new UsageError({ detail: "--probe takes an s3://, gs:// or az:// URL or endpoint (the local store needs no probe)" })
          }
          probe = result
          m = CompatibilityMatrix.applyProbe(m, result)
          if (profiles.length === 0) profiles = [result.profile]
        }
        if (o.json) {
          const table = CompatibilityMatrix.toJSON(m, { profiles })
          return yield* printJson(
            probe === undefined
              ? table
              : { probe: Schema.encodeSync(CompatibilityMatrix.ProbeResult)(probe), ...(skipped.length === 0 ? {} : { skipped }), ...table }
          )
        }
        yield* println(CompatibilityMatrix.render(m, { profiles, details: o.details || Option.isSome(o.probe) }))
      }))
).pipe(Command.withDescription("print the provider x mode compatibility matrix"))
