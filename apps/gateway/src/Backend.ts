/**
 * The gateway's backends. driver-fs (the default) keeps one directory per bucket (see `Buckets`);
 * every other driver — S3 or an S3-compatible, GCS, Azure Blob — is one backend bucket (or
 * container) holding each gateway bucket under `<prefix><bucket>/` and the gateway's own state
 * under `<prefix>.objcrypt-gateway/`. Bucket names cannot start with a dot, so the two never
 * collide. The backend only ever receives objcrypt's native format: encryption happens above it.
 *
 * @since 0.1.0
 */
import type { StoreError } from "@objcrypt/core/Errors"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import { Effect, Layer, Option, Stream } from "effect"
import type * as Scope from "effect/Scope"
import * as Buckets from "./Buckets.js"
import * as GatewayConfig from "./GatewayConfig.js"

type Store = ObjectStore.ObjectStore["Type"]

/**
 * A view of `store` restricted to the keys under `prefix`, with the prefix removed from every key
 * it returns. `bucket` is what the view reports as its bucket (bound into encryption contexts),
 * so an object's context does not depend on where the backend keeps it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const prefixed = (store: Store, prefix: string, bucket: string): Store => {
  const inner = (key: string) => `${prefix}${key}`
  const outer = (key: string) => (key.startsWith(prefix) ? key.slice(prefix.length) : key)
  const upload = (u: ObjectStore.MultipartUpload): ObjectStore.MultipartUpload => ({ key: inner(u.key), uploadId: u.uploadId })
  const info = (i: ObjectStore.ObjectInfo): ObjectStore.ObjectInfo => ({ ...i, key: outer(i.key) })
  const result = (r: ObjectStore.PutResult): ObjectStore.PutResult => ({ ...r, key: outer(r.key) })
  return {
    provider: store.provider,
    bucket,
    location: `${store.location.replace(/\/$/, "")}/${prefix}`,
    nativeModes: store.nativeModes,
    limits: store.limits,
    put: (key, body, options) => Effect.map(store.put(inner(key), body, options), result),
    get: (key, options) => Effect.map(store.get(inner(key), options), (o) => ({ ...o, info: info(o.info) })),
    head: (key, options) => Effect.map(store.head(inner(key), options), info),
    list: (options) =>
      Effect.map(
        store.list({
          ...options,
          prefix: inner(options?.prefix ?? ""),
          startAfter: options?.startAfter === undefined ? undefined : inner(options.startAfter)
        }),
        (page) => ({
          objects: page.objects.map((o) => ({ ...o, key: outer(o.key) })),
          commonPrefixes: page.commonPrefixes.map(outer),
          continuationToken: page.continuationToken
        })
      ),
    remove: (key) => store.remove(inner(key)),
    copy: (source, destination, options) => Effect.map(store.copy(inner(source), inner(destination), options), result),
    createMultipart: (key, options) => Effect.map(store.createMultipart(inner(key), options), (u) => ({ key: outer(u.key), uploadId: u.uploadId })),
    uploadPart: (u, partNumber, body, options) => store.uploadPart(upload(u), partNumber, body, options),
    completeMultipart: (u, parts, options) => Effect.map(store.completeMultipart(upload(u), parts, options), result),
    abortMultipart: (u) => store.abortMultipart(upload(u))
  }
}

const recordKey = (name: string) => `buckets/${name}`

/**
 * Gateway buckets as prefixes of one backend store (any driver).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeShared = (backend: Store, prefix = ""): Buckets.Buckets["Type"] => {
  const system = prefixed(backend, `${prefix}${Buckets.SYSTEM_DIR}/`, Buckets.SYSTEM_DIR)
  const open = new Map<string, Store>()
  const store = (name: string): Store => {
    let s = open.get(name)
    if (s === undefined) {
      s = prefixed(backend, `${prefix}${name}/`, name)
      open.set(name, s)
    }
    return s
  }
  const get = (name: string) =>
    Buckets.readJson(system, recordKey(name)).pipe(
      Effect.map((text) => {
        if (text === undefined) return undefined
        try {
          const r = JSON.parse(text) as Buckets.BucketRecord
          return typeof r.name === "string" && typeof r.created === "string" && typeof r.owner === "string" ? r : undefined
        } catch {
          return undefined
        }
      })
    )
  return Buckets.Buckets.of({
    list: ObjectStore.listAll(system, { prefix: "buckets/" }).pipe(
      Stream.mapEffect((o) => get(o.key.slice("buckets/".length))),
      Stream.filterMap((r) => Option.fromNullable(r)),
      Stream.runCollect,
      Effect.map((c) => Array.from(c).sort((a, b) => (a.name < b.name ? -1 : 1)))
    ),
    get,
    create: (name, owner) =>
      Buckets.writeJson(system, recordKey(name), { name, created: new Date().toISOString(), owner }, { ifNoneMatch: "*" }).pipe(
        Effect.as(true),
        Effect.catchTag("PreconditionFailed", () => Effect.succeed(false))
      ),
    update: (record) => Buckets.writeJson(system, recordKey(record.name), record),
    remove: (name) =>
      Effect.gen(function*() {
        const page = yield* store(name).list({ maxKeys: 1 })
        if (page.objects.length > 0) return false
        yield* system.remove(recordKey(name))
        return true
      }),
    store: (name) => Effect.succeed(store(name)),
    system
  })
}

/**
 * The backend driver's store for a configuration (not used for `fs`, whose buckets are directories).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeStore = (
  backend: Exclude<GatewayConfig.Backend, { readonly type: "fs" }>
): Effect.Effect<Store, GatewayConfig.ConfigFileError, Scope.Scope> =>
  // Drivers are imported when chosen: each loads its cloud SDK, which an fs gateway need not hold in memory.
  Effect.gen(function*() {
    switch (backend.type) {
      case "s3": {
        const secret = backend.secretAccessKey === undefined
          ? undefined
          : yield* GatewayConfig.readSecret(backend.secretAccessKey, "backend.secretAccessKey")
        const S3ObjectStore = yield* Effect.promise(() => import("@objcrypt/driver-s3/S3ObjectStore"))
        return yield* S3ObjectStore.make({
          bucket: backend.bucket,
          region: backend.region,
          endpoint: backend.endpoint,
          forcePathStyle: backend.forcePathStyle,
          accessKeyId: backend.accessKeyId,
          secretAccessKey: secret,
          profile: backend.profile,
          partSize: backend.partSize,
          concurrency: backend.partConcurrency,
          memoryBudget: backend.memoryBudgetMiB * 1024 * 1024,
          idleTimeoutMs: backend.idleTimeoutSeconds * 1000
        })
      }
      case "gcs": {
        const GcsObjectStore = yield* Effect.promise(() => import("@objcrypt/driver-gcs/GcsObjectStore"))
        return yield* GcsObjectStore.make({
          bucket: backend.bucket,
          projectId: backend.projectId,
          apiEndpoint: backend.apiEndpoint,
          keyFilename: backend.keyFilename,
          memoryBudget: backend.memoryBudgetMiB * 1024 * 1024
        })
      }
      case "azure": {
        const AzureBlobObjectStore = yield* Effect.promise(() => import("@objcrypt/driver-azure/AzureBlobObjectStore"))
        const connectionString = yield* GatewayConfig.readSecret(backend.connectionString, "backend.connectionString")
        return yield* AzureBlobObjectStore.make({
          container: backend.container,
          credentials: { _tag: "ConnectionString", connectionString },
          memoryBudget: backend.memoryBudgetMiB * 1024 * 1024
        })
      }
    }
  })

/**
 * The `Buckets` service for a configured backend.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (backend: GatewayConfig.Backend): Layer.Layer<Buckets.Buckets, StoreError | GatewayConfig.ConfigFileError> =>
  backend.type === "fs"
    ? Buckets.layerFs({ root: backend.root, fsync: backend.fsync })
    : Layer.scoped(Buckets.Buckets, Effect.map(makeStore(backend), (store) => makeShared(store, backend.prefix)))
