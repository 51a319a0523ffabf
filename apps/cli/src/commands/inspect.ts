/**
 * `objcrypt inspect URL… [--json]`: how objects are encrypted — what `aws s3api head-object` shows
 * for server-side modes, plus the client-side envelope.
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Option } from "effect"
import * as ObjectReport from "../ObjectReport.js"
import * as StoreUrl from "../StoreUrl.js"
import { common, json, printJson, println, withSession } from "./common.js"
import * as Transfer from "../Transfer.js"
import { customerKeyOption, customerKeyRef, notFoundAs } from "./shared.js"

/**
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make(
  "inspect",
  {
    ...common,
    json,
    key: customerKeyOption,
    names: Options.boolean("names").pipe(
      Options.withDescription("resolve wrapped key ids to key-store names (default when a passphrase is set non-interactively)")
    ),
    urls: Args.text({ name: "URL" }).pipe(Args.atLeast(1))
  },
  (o) =>
    withSession(o, (s) =>
      Effect.gen(function*() {
        const reports: Array<ObjectReport.ObjectReport> = []
        const names = o.names || Option.isSome(o.passphraseFile) || (s.env.OBJCRYPT_PASSPHRASE ?? "") !== ""
        for (const url of o.urls) {
          const loc = yield* s.locateStore(url)
          const store = yield* s.open(loc.store)
          const customerKey = yield* customerKeyRef(o.key)
          if (customerKey !== undefined) yield* s.keys
          let report = yield* ObjectReport.make(store, loc.key, StoreUrl.displayKey(loc, loc.key), customerKey).pipe(
            notFoundAs(StoreUrl.displayKey(loc, loc.key)),
            Effect.provide(Transfer.decryptor(s, store))
          )
          if (names && report.clientSide !== undefined) {
            const keys = yield* s.keys
            report = yield* ObjectReport.withKeyNames(report, keys.manager.primaryOf)
          }
          reports.push(report)
        }
        if (o.json) return yield* printJson(reports.length === 1 ? reports[0] : reports)
        yield* println(reports.map(ObjectReport.render).join("\n\n"))
      }))
).pipe(Command.withDescription("show an object's encryption: mode, key id and version, format, sizes"))
