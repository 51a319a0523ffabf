/**
 * `objcrypt cat URL [--range A-B]`: stream an object (decrypted) to stdout.
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import { Effect, Option, Stream } from "effect"
import { UsageError } from "../CliError.js"
import * as StoreUrl from "../StoreUrl.js"
import * as Transfer from "../Transfer.js"
import { common, withSession } from "./common.js"
import { customerKeyOption, customerKeyRef, notFoundAs } from "./shared.js"

/**
 * Parses `--range`: `A-B` (inclusive), `A-`, `-N` (last N bytes), with or without `bytes=`.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseRange = (s: string): Option.Option<ObjectStore.ByteRange> =>
  ObjectStore.parseRange(s.trim().startsWith("bytes=") ? s : `bytes=${s.trim()}`)

const writeStdout = (chunk: Uint8Array) =>
  Effect.async<void>((resume) => {
    const ok = process.stdout.write(chunk, () => {
      if (ok) resume(Effect.void)
    })
    if (!ok) process.stdout.once("drain", () => resume(Effect.void))
  })

/**
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make(
  "cat",
  {
    ...common,
    key: customerKeyOption,
    range: Options.text("range").pipe(Options.withDescription("byte range: A-B, A- or -N"), Options.optional),
    unauthenticatedRange: Options.boolean("unauthenticated-range").pipe(
      Options.withDescription("allow --range on AWS S3 Encryption Client objects (AES-CTR: the bytes are not authenticated)")
    ),
    url: Args.text({ name: "URL" })
  },
  (o) =>
    withSession(o, (s) =>
      Effect.gen(function*() {
        const range = Option.isNone(o.range) ? undefined : Option.getOrUndefined(parseRange(o.range.value))
        if (Option.isSome(o.range) && range === undefined) {
          return yield* new UsageError({ detail: `bad --range ${JSON.stringify(o.range.value)} (expected A-B, A- or -N)` })
        }
        const loc = yield* s.locateStore(o.url)
        const store = yield* s.open(loc.store)
        const customerKey = yield* customerKeyRef(o.key)
        yield* Effect.scoped(
          Effect.gen(function*() {
            const opened = yield* Transfer.get(s, store, loc.key, { customerKey, range, unauthenticatedRanges: o.unauthenticatedRange }).pipe(notFoundAs(StoreUrl.displayKey(loc, loc.key)))
            yield* Stream.runForEach(opened.body, writeStdout)
          })
        )
      }))
).pipe(Command.withDescription("write an object's plaintext (or a byte range of it) to stdout"))
