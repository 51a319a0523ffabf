/**
 * `objcrypt ls URL [-r] [--json]`: list objects (and, without `-r`, common prefixes).
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import type { ModeName } from "@objcrypt/core/EncryptionMode"
import { ObjectNotFound } from "@objcrypt/core/Errors"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import { Chunk, Effect, Stream } from "effect"
import * as Formats from "../Formats.js"
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
 * Objects headed at once to read their envelopes (listings carry no metadata).
 *
 * @since 0.1.0
 * @category constants
 */
export const HEAD_CONCURRENCY = 16

/**
 * One listed object with what its head says: the plaintext size of client-side objects (the
 * stored size otherwise) and the mode.
 *
 * @since 0.1.0
 * @category models
 */
export interface Entry {
  readonly object: ObjectStore.ListedObject
  /** Plaintext bytes for client-side objects, stored bytes otherwise (or when unknown). */
  readonly size: number
  readonly mode: ModeName | "unknown" | undefined
  readonly format: Formats.Found | undefined
}

/**
 * Heads each object (at most {@link HEAD_CONCURRENCY} at once) and classifies it. An object that
 * cannot be headed (an SSE-C object without its key, a race with a delete) keeps its stored size
 * and mode `unknown`.
 *
 * @since 0.1.0
 * @category listing
 */
export const describe = (
  store: ObjectStore.ObjectStore["Type"],
  objects: ReadonlyArray<ObjectStore.ListedObject>
): Effect.Effect<ReadonlyArray<Entry>> =>
  Effect.forEach(
    objects,
    (object) =>
      store.head(object.key).pipe(
        Effect.flatMap((info) => Formats.detect(store, info)),
        Effect.map((d): Entry => ({ object, size: d.plaintextSize ?? object.size, mode: d.mode, format: d.format })),
        Effect.orElseSucceed((): Entry => ({ object, size: object.size, mode: "unknown", format: undefined }))
      ),
    { concurrency: HEAD_CONCURRENCY }
  )

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
    storedSizes: Options.boolean("stored-sizes").pipe(
      Options.withDescription("print stored sizes without heading each object (no mode column; faster on large prefixes)")
    ),
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
        const entries: ReadonlyArray<Entry> = o.storedSizes
          ? objects.map((object) => ({ object, size: object.size, mode: undefined, format: undefined }))
          : yield* describe(store, objects)
        if (o.json) {
          return yield* printJson({
            prefixes: prefixes.map((p) => StoreUrl.displayKey(loc, p)),
            objects: entries.map(({ format, mode, object: x, size }) => ({
              key: x.key,
              url: StoreUrl.displayKey(loc, x.key),
              size,
              storedSize: x.size,
              ...(mode === undefined ? {} : { mode }),
              ...(format === undefined ? {} : { format }),
              etag: x.etag,
              lastModified: x.lastModified.toISOString()
            }))
          })
        }
        const rel = (k: string) => (k.startsWith(prefix) && k !== prefix ? k.slice(prefix.length) : k)
        const modeColumn = (m: string | undefined) => (o.storedSizes ? "" : `${(m ?? "").padEnd(7)}  `)
        for (const p of prefixes) yield* println(`${"".padEnd(19)}  ${"PRE".padStart(9)}  ${modeColumn("")}${rel(p)}`)
        for (const e of entries) {
          const when = e.object.lastModified.toISOString().slice(0, 19).replace("T", " ")
          yield* println(`${when}  ${formatBytes(e.size).padStart(9)}  ${modeColumn(e.mode)}${rel(e.object.key)}`)
        }
      }))
).pipe(Command.withDescription("list objects under a store URL (default local://): plaintext sizes and modes"))
