/**
 * `objcrypt matrix [--provider P]… [--details] [--probe URL] [--json]`: the provider × mode compatibility matrix.
 *
 * @since 0.1.0
 */
import { Command, Options } from "@effect/cli"
import * as CompatibilityMatrix from "@objcrypt/core/CompatibilityMatrix"
import { Effect, Option, Schema } from "effect"
import { UsageError } from "../CliError.js"
import * as Stores from "../Stores.js"
import { common, json, printJson, println, withSession } from "./common.js"

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
      Options.withDescription("probe a real bucket (s3:// URL or endpoint) and merge what it allows into the matrix"),
      Options.optional
    ),
    kmsKeyId: Options.text("kms-key-id").pipe(Options.withDescription("KMS key for the probe's sse-kms trial"), Options.optional)
  },
  (o) =>
    withSession(o, (s) =>
      Effect.gen(function*() {
        let m = CompatibilityMatrix.matrix
        let profiles = o.provider
        let probe: CompatibilityMatrix.ProbeResult | undefined
        if (Option.isSome(o.probe)) {
          const loc = yield* s.locateStore(o.probe.value)
          if (loc.store._tag !== "S3") return yield* new UsageError({ detail: "--probe takes an s3:// URL or an s3 endpoint" })
          const store = yield* Stores.openS3(loc.store, s.env)
          const Buckets = yield* Effect.promise(() => import("@objcrypt/driver-s3/S3Buckets"))
          const result = yield* Buckets.probe(store, { kmsKeyId: Option.getOrUndefined(o.kmsKeyId) })
          probe = result
          m = CompatibilityMatrix.applyProbe(m, result)
          if (profiles.length === 0) profiles = [result.profile]
        }
        if (o.json) {
          const table = CompatibilityMatrix.toJSON(m, { profiles })
          return yield* printJson(probe === undefined ? table : { probe: Schema.encodeSync(CompatibilityMatrix.ProbeResult)(probe), ...table })
        }
        yield* println(CompatibilityMatrix.render(m, { profiles, details: o.details || Option.isSome(o.probe) }))
      }))
).pipe(Command.withDescription("print the provider x mode compatibility matrix"))
