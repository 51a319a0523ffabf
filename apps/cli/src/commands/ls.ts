/**
 * `objcrypt ls URL [-r] [--json]`: list objects (and, without `-r`, common prefixes).
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import { ObjectNotFound } from "@objcrypt/core/Errors"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import { Chunk, Effect, Stream } from "effect"
import * as StoreUrl from "../StoreUrl.js"
import { formatBytes } from "../Progress.js"
import { common, json, printJson, println, withSession } from "./common.js"

/**
 * The prefix a location lists: `photos` lists `photos/…`.
 *
 * @since 0.1.0
 * @category utils
 */
export const listPrefix = (key: string): string => (key === "" || key.endsWith("/") ? key : `${key}/`)

/**
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make(
  "ls",
  {
    ...common,
    json,
    recursive: Options.boolean("recursive").pipe(Options.withAlias("r"), Options.withDescription("every object below, no grouping")),
    url: Args.text({ name: "URL" }).pipe(Args.withDefault("local://"))
  },
  (o) =>
    withSession(o, (s) =>
      Effect.gen(function*() {
        const loc = yield* s.locateStore(o.url)
        const store = yield* s.open(loc.store)
        const prefix = listPrefix(loc.key)
        const objects: Array<ObjectStore.ListedObject> = []
        const prefixes: Array<string> = []
        if (o.recursive) {
          objects.push(...Chunk.toReadonlyArray(yield* Stream.runCollect(ObjectStore.listAll(store, { prefix }))))
        } else {
          let token: string | undefined
          do {
            const page = yield* store.list({ prefix, delimiter: "/", continuationToken: token })
            objects.push(...page.objects)
            prefixes.push(...page.commonPrefixes)
            token = page.continuationToken
          } while (token !== undefined)
        }
        if (objects.length === 0 && prefixes.length === 0 && loc.key !== "" && !loc.key.endsWith("/")) {
          // `ls local://photos/a.jpg` names one object.
          const info = yield* store.head(loc.key).pipe(Effect.option)
          if (info._tag === "Some") {
            objects.push({ key: info.value.key, size: info.value.size, etag: info.value.etag, lastModified: info.value.lastModified })
          }
        }
        if (objects.length === 0 && prefixes.length === 0 && loc.key !== "") {
          return yield* new ObjectNotFound({ key: StoreUrl.displayKey(loc, loc.key) })
        }
        if (o.json) {
          return yield* printJson({
            prefixes: prefixes.map((p) => StoreUrl.displayKey(loc, p)),
            objects: objects.map((x) => ({
              key: x.key,
              url: StoreUrl.displayKey(loc, x.key),
              size: x.size,
              etag: x.etag,
              lastModified: x.lastModified.toISOString()
            }))
          })
        }
        const rel = (k: string) => (k.startsWith(prefix) && k !== prefix ? k.slice(prefix.length) : k)
        for (const p of prefixes) yield* println(`${"".padEnd(19)}  ${"PRE".padStart(9)}  ${rel(p)}`)
        for (const x of objects) {
          const when = x.lastModified.toISOString().slice(0, 19).replace("T", " ")
          yield* println(`${when}  ${formatBytes(x.size).padStart(9)}  ${rel(x.key)}`)
        }
      }))
).pipe(Command.withDescription("list objects under a store URL (default local://)"))
