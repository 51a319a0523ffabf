/**
 * `objcrypt rm URL… [-r] [--dry-run]`: delete objects.
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import { Chunk, Effect, Stream } from "effect"
import * as StoreUrl from "../StoreUrl.js"
import { common, json, printJson, println, withSession } from "./common.js"
import { listPrefix } from "./ls.js"
import { notFoundAs } from "./shared.js"

/**
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make(
  "rm",
  {
    ...common,
    json,
    recursive: Options.boolean("recursive").pipe(Options.withAlias("r"), Options.withDescription("every object under the prefix")),
    dryRun: Options.boolean("dry-run").pipe(Options.withDescription("print what would be deleted")),
    urls: Args.text({ name: "URL" }).pipe(Args.atLeast(1))
  },
  (o) =>
    withSession(o, (s) =>
      Effect.gen(function*() {
        const removed: Array<string> = []
        for (const url of o.urls) {
          const loc = yield* s.locateStore(url)
          const store = yield* s.open(loc.store)
          const keys: Array<string> = []
          if (o.recursive) {
            const below = yield* Stream.runCollect(ObjectStore.listAll(store, { prefix: listPrefix(loc.key) }))
            keys.push(...Chunk.toReadonlyArray(below).map((x) => x.key))
            if (loc.key !== "" && !loc.key.endsWith("/")) {
              const self = yield* store.head(loc.key).pipe(Effect.option)
              if (self._tag === "Some") keys.push(loc.key)
            }
          } else {
            // Deleting a missing key succeeds in S3; a user naming one wants to know.
            yield* store.head(loc.key).pipe(notFoundAs(StoreUrl.displayKey(loc, loc.key)))
            keys.push(loc.key)
          }
          for (const key of keys) {
            if (!o.dryRun) yield* store.remove(key)
            removed.push(StoreUrl.displayKey(loc, key))
            if (!o.json) yield* println(`${o.dryRun ? "(dry run) would delete" : "deleted"}: ${StoreUrl.displayKey(loc, key)}`)
          }
        }
        if (o.json) yield* printJson({ dryRun: o.dryRun, deleted: removed })
      }))
).pipe(Command.withDescription("delete objects (with -r, everything under a prefix)"))
