/**
 * The gateway's buckets over its backend. With driver-fs (the default), each bucket is one
 * `FsObjectStore` rooted at `<root>/<bucket>`, and the gateway's own state (bucket configuration,
 * multipart uploads in progress) lives in a further store at `<root>/.objcrypt-gateway` — bucket
 * names cannot start with a dot, so it never collides. Nothing is kept in process memory but
 * open store handles, so several gateways on one root serve the same buckets.
 *
 * @since 0.1.0
 */
import { ObjectNotFound } from "@objcrypt/core/Errors"
import type { StoreError } from "@objcrypt/core/Errors"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as FsObjectStore from "@objcrypt/driver-fs/FsObjectStore"
import { Context, Effect, Layer, Option, Schema, Stream } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"

type Store = ObjectStore.ObjectStore["Type"]

/**
 * A bucket's default encryption (`PutBucketEncryption`).
 *
 * @since 0.1.0
 * @category models
 */
export const DefaultEncryption = Schema.Struct({
  algorithm: Schema.Literal("AES256", "aws:kms", "aws:kms:dsse"),
  kmsKeyId: Schema.optional(Schema.String),
  bucketKeyEnabled: Schema.optional(Schema.Boolean)
})

/**
 * @since 0.1.0
 * @category models
 */
export type DefaultEncryption = typeof DefaultEncryption.Type

/**
 * What the backend records about a bucket.
 *
 * @since 0.1.0
 * @category models
 */
export const BucketRecord = Schema.Struct({
  name: Schema.String,
  created: Schema.String,
  owner: Schema.String,
  encryption: Schema.optional(DefaultEncryption),
  /** PutBucketTagging's tag set, in the order given. */
  tags: Schema.optional(Schema.Array(Schema.Struct({ key: Schema.String, value: Schema.String })))
})

/**
 * @since 0.1.0
 * @category models
 */
export type BucketRecord = typeof BucketRecord.Type

/**
 * @since 0.1.0
 * @category tags
 */
export class Buckets extends Context.Tag("@objcrypt/gateway/Buckets")<Buckets, {
  readonly list: Effect.Effect<ReadonlyArray<BucketRecord>, StoreError>
  /** `undefined` when the bucket does not exist. */
  readonly get: (name: string) => Effect.Effect<BucketRecord | undefined, StoreError>
  /** `false` when it already existed. */
  readonly create: (name: string, owner: string) => Effect.Effect<boolean, StoreError>
  readonly update: (record: BucketRecord) => Effect.Effect<void, StoreError>
  /** Refused (`false`) when the bucket holds objects. */
  readonly remove: (name: string) => Effect.Effect<boolean, StoreError>
  /** The object store of an existing bucket. */
  readonly store: (name: string) => Effect.Effect<Store, StoreError>
  /** The gateway's own state (bucket records, uploads in progress, multipart manifests). */
  readonly system: Store
}>() {}

/**
 * The directory of the gateway's state under the root.
 *
 * @since 0.1.0
 * @category constants
 */
export const SYSTEM_DIR = ".objcrypt-gateway"

const recordKey = (name: string) => `buckets/${name}`
const decodeRecord = Schema.decodeUnknownEither(Schema.parseJson(BucketRecord))

/**
 * Reads a small JSON document from a store.
 *
 * @since 0.1.0
 * @category utils
 */
export const readJson = (store: Store, key: string): Effect.Effect<string | undefined, StoreError> =>
  ObjectStore.readAll(store, key).pipe(
    Effect.map((r) => Buffer.from(r.bytes).toString("utf8")),
    Effect.catchIf((e): e is ObjectNotFound => e instanceof ObjectNotFound, () => Effect.succeed(undefined))
  )

/**
 * Writes a small JSON document to a store.
 *
 * @since 0.1.0
 * @category utils
 */
export const writeJson = (store: Store, key: string, value: unknown, options?: { readonly ifNoneMatch?: "*" }): Effect.Effect<void, StoreError> => {
  const bytes = Buffer.from(JSON.stringify(value), "utf8")
  return store.put(key, Stream.succeed(new Uint8Array(bytes)), { contentLength: bytes.length, contentType: "application/json", ...options }).pipe(
    Effect.catchTag("UnsupportedMode", (e) => Effect.die(e)),
    Effect.asVoid
  )
}

/**
 * The object store of a bucket that still exists; `undefined` once it has been deleted (what the
 * background sweeps ask before touching a bucket's objects).
 *
 * @since 0.1.0
 * @category accessors
 */
export const storeIfExists = (buckets: Buckets["Type"], name: string): Effect.Effect<Store | undefined, StoreError> =>
  Effect.flatMap(buckets.get(name), (r) => (r === undefined ? Effect.succeed(undefined) : buckets.store(name)))

/**
 * Buckets over any backend: `system` holds the gateway's state, `open` returns the store of a
 * bucket (called once per bucket and cached), `destroy` releases what a deleted bucket leaves
 * (a directory, a prefix); bucket records and emptiness checks go through the stores. Use it to
 * put the gateway on another driver, or to wrap stores (fault injection in tests).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: {
  readonly system: Store
  readonly open: (name: string) => Effect.Effect<Store, StoreError>
  readonly destroy?: ((name: string) => Effect.Effect<void, StoreError>) | undefined
}): Buckets["Type"] => {
  const { system } = options
  const open = new Map<string, Store>()

  const missingAsNone = <A>(self: Effect.Effect<A, StoreError>): Effect.Effect<Option.Option<A>, StoreError> =>
    self.pipe(
      Effect.map(Option.some),
      Effect.catchIf((e): e is ObjectNotFound => e instanceof ObjectNotFound, () => Effect.succeed(Option.none<A>()))
    )
  // Every request reads its bucket's record, and a replica may change it at any time: each read
  // asks the backend for the record's current etag (a head) and decodes its body again only when
  // that etag is not the one already decoded here. A head costs a tenth of reading the body.
  const decoded = new Map<string, { readonly etag: string; readonly record: BucketRecord | undefined }>()
  const MAX_DECODED = 1024
  const get = (name: string): Effect.Effect<BucketRecord | undefined, StoreError> =>
    Effect.gen(function*() {
      const key = recordKey(name)
      const head = yield* missingAsNone(system.head(key))
      if (Option.isNone(head)) {
        decoded.delete(name)
        return undefined
      }
      const known = decoded.get(name)
      if (known !== undefined && known.etag === head.value.etag) return known.record
      const read = yield* missingAsNone(ObjectStore.readAll(system, key))
      if (Option.isNone(read)) return undefined
      const r = decodeRecord(Buffer.from(read.value.bytes).toString("utf8"))
      const record = r._tag === "Right" ? r.right : undefined
      if (decoded.size >= MAX_DECODED) decoded.clear()
      decoded.set(name, { etag: read.value.info.etag, record })
      return record
    })

  const store = (name: string): Effect.Effect<Store, StoreError> =>
    Effect.suspend(() => {
      const s = open.get(name)
      if (s !== undefined) return Effect.succeed(s)
      return options.open(name).pipe(Effect.tap((s) => Effect.sync(() => open.set(name, s))))
    })

  const list = ObjectStore.listAll(system, { prefix: "buckets/" }).pipe(
    Stream.mapEffect((o) => get(o.key.slice("buckets/".length))),
    Stream.filterMap((r) => Option.fromNullable(r)),
    Stream.runCollect,
    Effect.map((c) => Array.from(c).sort((a, b) => (a.name < b.name ? -1 : 1)))
  )

  const create = (name: string, owner: string) =>
    Effect.gen(function*() {
      yield* store(name)
      const record: BucketRecord = { name, created: new Date().toISOString(), owner }
      return yield* writeJson(system, recordKey(name), record, { ifNoneMatch: "*" }).pipe(
        Effect.as(true),
        Effect.catchTag("PreconditionFailed", () => Effect.succeed(false))
      )
    })

  const remove = (name: string) =>
    Effect.gen(function*() {
      const s = yield* store(name)
      const page = yield* s.list({ maxKeys: 1 })
      if (page.objects.length > 0) return false
      yield* system.remove(recordKey(name))
      open.delete(name)
      if (options.destroy !== undefined) yield* options.destroy(name)
      return true
    })

  return Buckets.of({
    list,
    get,
    create,
    update: (record) => writeJson(system, recordKey(record.name), record),
    remove,
    store,
    system
  })
}

/**
 * Buckets as directories of a local root, each an `FsObjectStore`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeFs = (options: { readonly root: string; readonly fsync?: boolean | undefined }): Effect.Effect<Buckets["Type"], StoreError> =>
  Effect.gen(function*() {
    const root = path.resolve(options.root)
    const system = yield* FsObjectStore.make({ root: path.join(root, SYSTEM_DIR), bucket: SYSTEM_DIR, fsync: options.fsync })
    return make({
      system,
      open: (name) => FsObjectStore.make({ root: path.join(root, name), bucket: name, fsync: options.fsync, etags: "random" }),
      destroy: (name) => Effect.promise(() => fs.rm(path.join(root, name), { recursive: true, force: true }))
    })
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layerFs = (options: { readonly root: string; readonly fsync?: boolean | undefined }): Layer.Layer<Buckets, StoreError> =>
  Layer.effect(Buckets, makeFs(options))
