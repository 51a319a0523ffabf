/**
 * The sweep of records the system store keeps per object version — ETag records
 * (`etag-records/<bucket>/<id>`), multipart manifests (`manifests/<bucket>/<id>`) and checksum
 * records (`checksums/<bucket>/<etag>`). Each is named by an id the object version carries (a
 * random id in its metadata, or its backend ETag) and holds the object's key, so a record is live
 * exactly when the object under that key carries its id. Records become orphans when
 * a process is killed between writing one and committing its object, when a commit fails after it,
 * when a delete or an overwrite is killed before it drops the old version's records, or when
 * concurrent overwrites replace a version another writer was about to drop.
 *
 * An incremental sweep checks the records written since the previous one (the time up to which
 * records were checked is kept in the system store), one head each; a full sweep checks every
 * record, so the orphans of versions deleted or replaced long after their record was written go
 * too. Records younger than the safety age are left alone (their object may be on its way).
 * Replicas may sweep at once: removals are idempotent.
 *
 * @internal
 */
import type { StoreError } from "@objcrypt/core/Errors"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import { Duration, Effect, Option, Schedule, Stream } from "effect"
import { readJson, storeIfExists, writeJson } from "../Buckets.js"
import type { Buckets } from "../Buckets.js"

type Store = ObjectStore.ObjectStore["Type"]

const ID = /^[0-9a-f]{32}$/

/**
 * One kind of per-version record.
 *
 * @internal
 */
export interface RecordKind {
  /** For log lines: "ETag records", "multipart manifests". */
  readonly name: string
  /** `<prefix><bucket>/<id>` in the system store. */
  readonly prefix: string
  /** Where the sweep's progress is kept in the system store. */
  readonly cursor: string
  /**
   * The key of the object a record belongs to: `Some(key)`; `None` when the record is unreadable
   * (an orphan by construction: nothing can use it); `undefined` when the record does not say (a
   * record from before records named their object: kept).
   */
  readonly objectKey: (text: string | undefined) => Option.Option<string> | undefined
  /** The id of this kind an object version carries (an id in its metadata, or its ETag). */
  readonly idOf: (info: ObjectStore.ObjectInfo) => string | undefined
  /** What a record's id looks like (others under the prefix are left alone). @default 32 hex digits */
  readonly id?: RegExp | undefined
  /** Called for each removed record (a cache to forget). */
  readonly removed?: ((bucket: string, id: string) => void) | undefined
}

/**
 * What a sweep did.
 *
 * @internal
 */
export interface SweepResult {
  readonly checked: number
  readonly removed: number
}

interface Cursor {
  /** Records last modified up to this time (ms) have been checked. */
  readonly checkedUpTo: number
  /** When the last full sweep ran (ms); 0 when never. */
  readonly fullAt: number
}

const readCursor = (system: Store, kind: RecordKind): Effect.Effect<Cursor, StoreError> =>
  readJson(system, kind.cursor).pipe(Effect.map((t): Cursor => {
    try {
      const c = t === undefined ? {} : (JSON.parse(t) as { checkedUpTo?: unknown; fullAt?: unknown })
      return {
        checkedUpTo: typeof c.checkedUpTo === "number" ? c.checkedUpTo : 0,
        fullAt: typeof c.fullAt === "number" ? c.fullAt : 0
      }
    } catch {
      return { checkedUpTo: 0, fullAt: 0 }
    }
  }))

/**
 * Removes the orphan records of one kind last modified at least `olderThanMs` before `now`: all of
 * them with `full`, else those written since the previous sweep.
 *
 * @internal
 */
export const sweep = (
  system: Store,
  bucketStore: (bucket: string) => Effect.Effect<Store | undefined, StoreError>,
  kind: RecordKind,
  options: { readonly olderThanMs: number; readonly now?: number | undefined; readonly full?: boolean | undefined }
): Effect.Effect<SweepResult, StoreError> =>
  Effect.gen(function*() {
    const now = options.now ?? Date.now()
    const upTo = now - options.olderThanMs
    const cursor = yield* readCursor(system, kind)
    const since = options.full === true ? Number.NEGATIVE_INFINITY : cursor.checkedUpTo
    let checked = 0
    let removed = 0
    yield* ObjectStore.listAll(system, { prefix: kind.prefix }).pipe(
      Stream.filter((o) => o.lastModified.getTime() > since && o.lastModified.getTime() <= upTo),
      Stream.mapEffect((o) =>
        Effect.gen(function*() {
          const [bucket, id, ...rest] = o.key.slice(kind.prefix.length).split("/")
          if (bucket === undefined || id === undefined || rest.length > 0 || !(kind.id ?? ID).test(id)) return
          const key = kind.objectKey(yield* readJson(system, o.key))
          if (key === undefined) return
          checked++
          const store = Option.isNone(key) ? undefined : yield* bucketStore(bucket)
          const carried = Option.isNone(key) || store === undefined
            ? undefined
            : yield* store.head(key.value).pipe(
              Effect.map(kind.idOf),
              Effect.catchTag("ObjectNotFound", () => Effect.succeed(undefined))
            )
          if (carried === id) return
          yield* system.remove(o.key).pipe(Effect.ignore)
          kind.removed?.(bucket, id)
          removed++
        }), { concurrency: 8 }),
      Stream.runDrain
    )
    const next: Cursor = {
      checkedUpTo: Math.max(cursor.checkedUpTo, upTo),
      fullAt: options.full === true ? now : cursor.fullAt
    }
    if (next.checkedUpTo !== cursor.checkedUpTo || next.fullAt !== cursor.fullAt) yield* writeJson(system, kind.cursor, next)
    return { checked, removed }
  })

/**
 * The sweeps a gateway runs in the background: first `firstAfter` after start, then every
 * `every`, over records older than `olderThan` (the time a write may take between its record and
 * its commit, with a wide margin); a turn is a full sweep when the last full one of that kind (by
 * any replica) is older than `fullEvery`. A failing sweep is logged and tried again at the next turn.
 *
 * @internal
 */
export const sweepForever = (
  buckets: Buckets["Type"],
  kinds: ReadonlyArray<RecordKind>,
  options?: {
    readonly firstAfter?: Duration.DurationInput
    readonly every?: Duration.DurationInput
    readonly olderThan?: Duration.DurationInput
    readonly fullEvery?: Duration.DurationInput
  }
): Effect.Effect<never> => {
  const bucketStore = (name: string) => storeIfExists(buckets, name)
  const olderThanMs = Duration.toMillis(options?.olderThan ?? "24 hours")
  const fullEveryMs = Duration.toMillis(options?.fullEvery ?? "7 days")
  const once = (kind: RecordKind) =>
    Effect.gen(function*() {
      const now = Date.now()
      const full = now - (yield* readCursor(buckets.system, kind)).fullAt >= fullEveryMs
      const r = yield* sweep(buckets.system, bucketStore, kind, { olderThanMs, now, full })
      if (r.removed > 0) yield* Effect.logInfo(`removed ${r.removed} orphan ${kind.name} of ${r.checked} checked${full ? " (full sweep)" : ""}`)
    }).pipe(Effect.catchAllCause((cause) => Effect.logWarning(`the sweep of orphan ${kind.name} failed; it runs again later`, cause)))
  return Effect.sleep(options?.firstAfter ?? "5 minutes").pipe(
    Effect.zipRight(Effect.repeat(Effect.forEach(kinds, once, { discard: true }), Schedule.spaced(options?.every ?? "6 hours"))),
    Effect.zipRight(Effect.never)
  )
}
