/**
 * `objcrypt rekey URL… --to KEY [--recipient NAME]… [-r] [--dry-run]`: rewrap client-side objects'
 * data keys under another key or key version, rewriting only their envelopes (no data is
 * re-encrypted).
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import * as Encryption from "@objcrypt/core/Encryption"
import * as EncryptionMode from "@objcrypt/core/EncryptionMode"
import { InvalidEncryptionParameters } from "@objcrypt/core/Errors"
import * as Keyring from "@objcrypt/core/Keyring"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import { Chunk, Effect, Stream } from "effect"
import * as ObjectReport from "../ObjectReport.js"
import * as StoreUrl from "../StoreUrl.js"
import * as Transfer from "../Transfer.js"
import { common, json, printJson, println, withSession } from "./common.js"
import { listPrefix } from "./ls.js"

/**
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make(
  "rekey",
  {
    ...common,
    json,
    to: Options.text("to").pipe(
      Options.withDescription("key-store key NAME[@VERSION] to wrap under (comma-separated for several); default: its primary"),
      Options.optional
    ),
    recipient: Options.text("recipient").pipe(Options.withDescription("public-key recipient to wrap for (repeatable)"), Options.repeated),
    recursive: Options.boolean("recursive").pipe(Options.withAlias("r"), Options.withDescription("every object under each prefix")),
    dryRun: Options.boolean("dry-run").pipe(Options.withDescription("report what would change, change nothing")),
    urls: Args.text({ name: "URL" }).pipe(Args.atLeast(1))
  },
  (o) =>
    withSession(o, (s) =>
      Effect.gen(function*() {
        const names = [
          ...(o.to._tag === "Some" ? o.to.value.split(",").map((x) => x.trim()).filter((x) => x !== "") : []),
          ...o.recipient
        ]
        if (names.length === 0) return yield* new InvalidEncryptionParameters({ detail: "rekey needs --to KEY or --recipient NAME" })
        const targets = yield* Effect.forEach(names, EncryptionMode.parseKeyName)
        const keys = yield* s.keys
        const resolved = yield* Effect.forEach(targets, (t) => keys.keyStore.resolve(t.name, t.version))
        const keyrings = resolved.map((k) => Keyring.fromResolvedKey(k))
        const wanted = resolved.map((k) => `${k.info.id}@${k.info.version}`).sort().join(",")
        const results: Array<{ readonly url: string; readonly status: "rekeyed" | "would-rekey" | "up-to-date" | "skipped"; readonly from?: ReadonlyArray<string>; readonly reason?: string }> = []
        for (const url of o.urls) {
          const loc = yield* s.locateStore(url)
          const store = yield* s.open(loc.store)
          const objectKeys = o.recursive
            ? Chunk.toReadonlyArray(yield* Stream.runCollect(ObjectStore.listAll(store, { prefix: listPrefix(loc.key) }))).map((x) => x.key)
            : [loc.key]
          for (const key of objectKeys) {
            const display = StoreUrl.displayKey(loc, key)
            const report = yield* ObjectReport.make(store, key, display).pipe(Effect.provide(Transfer.decryptor(s, store)))
            if (report.clientSide === undefined) {
              results.push({ url: display, status: "skipped", reason: report.envelopeError ?? `not client-side (${report.mode})` })
              continue
            }
            const from = report.clientSide.keys.map((k) => `${k.keyId}@${k.version}`)
            if (from.slice().sort().join(",") === wanted) {
              results.push({ url: display, status: "up-to-date", from })
              continue
            }
            if (o.dryRun) {
              results.push({ url: display, status: "would-rekey", from })
              continue
            }
            yield* Encryption.rekey(store, key, { _tag: "Replace", keyrings }).pipe(Effect.provide(Transfer.decryptor(s, store)))
            results.push({ url: display, status: "rekeyed", from })
          }
        }
        const to = resolved.map((k) => `${k.info.name}@${k.info.version}`)
        if (o.json) return yield* printJson({ dryRun: o.dryRun, to, objects: results })
        for (const r of results) {
          yield* println(
            r.status === "skipped"
              ? `skipped ${r.url}: ${r.reason}`
              : r.status === "up-to-date"
              ? `up to date ${r.url}`
              : `${r.status === "rekeyed" ? "rekeyed" : "(dry run) would rekey"} ${r.url} -> ${to.join(", ")}`
          )
        }
      }))
).pipe(Command.withDescription("rewrap client-side objects under another key or key version without re-encrypting data"))
