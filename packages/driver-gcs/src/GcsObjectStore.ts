/**
 * `ObjectStore` for Google Cloud Storage, on the official `@google-cloud/storage` client.
 * Server-side modes map to GCS's own features: sse-c → customer-supplied encryption keys (CSEK,
 * the client's `encryptionKey`), sse-kms → customer-managed keys (CMEK, `kmsKeyName`), sse-s3 →
 * Google-managed keys, always on. Which of them a bucket honours comes from the compatibility
 * matrix (profile `gcs`) and, when given, a probe of the bucket (`GcsBuckets.probe`).
 *
 * Large bodies go up as part objects uploaded in parallel and joined by compose (hierarchically
 * past 32 parts), under a hidden prefix and removed on success and on any failure; or, with
 * `parallelUploads: false`, as one resumable upload. Either way memory stays bounded and no
 * partial object is ever visible under the key. A process killed midway cannot clean up: its part
 * objects stay under the hidden prefix until a sweep (`sweepUploads`, run on demand and once per
 * store before its first parallel upload) finds them older than `staleUploadAge`.
 *
 * @since 0.1.0
 */
import { Storage } from "@google-cloud/storage"
import type { Bucket, File, FileMetadata, StorageOptions } from "@google-cloud/storage"
import { matrix, resolveIn } from "@objcrypt/core/CompatibilityMatrix"
import type { BucketFacts, ProfileName } from "@objcrypt/core/CompatibilityMatrix"
import type { ModeTag } from "@objcrypt/core/EncryptionMode"
import { AccessDenied, InvalidObjectKey, InvalidRange, PreconditionFailed, ProviderError, UnsupportedMode } from "@objcrypt/core/Errors"
import type { StoreError } from "@objcrypt/core/Errors"
import { checkConditions as refuseConflictingConditions, completionConditions, formatRange, isGroupMarker, ObjectStore, resolveRange } from "@objcrypt/core/ObjectStore"
import { collect, exactly, heldByUpload, memoryBudget, partReader } from "@objcrypt/core/StreamParts"
import type {
  CompleteOptions,
  CompletedPart,
  CopyOptions,
  GetOptions,
  ListedObject,
  ListOptions,
  ListPage,
  MultipartUpload,
  ObjectInfo,
  PutOptions,
  PutResult,
  RemoveOptions,
  ServerEncryptionInfo,
  ServerSideEncryption,
  StoredObject,
  StoreLimits
} from "@objcrypt/core/ObjectStore"
import { Config, Context, Duration, Effect, Either, Layer, Option, Redacted, Schedule, Stream } from "effect"
import type { ConfigError } from "effect/ConfigError"
import type * as Scope from "effect/Scope"
import * as crypto from "node:crypto"
import type { Readable } from "node:stream"
import type { GcsConfig } from "./GcsConfig.js"
import { defaults, MiB } from "./GcsConfig.js"
import * as Crc32c from "./internal/crc32c.js"
import { PROVIDER, toStoreError } from "./internal/errors.js"
import type { Operation } from "./internal/errors.js"
import { feed } from "./internal/parts.js"

/**
 * The GCS store: the core `ObjectStore` service plus the client objects, for what the contract
 * does not cover.
 *
 * @since 0.1.0
 * @category tags
 */
export class GcsObjectStore extends Context.Tag("@objcrypt/driver-gcs/GcsObjectStore")<
  GcsObjectStore,
  ObjectStore["Type"] & {
    readonly storage: Storage
    /** The client's handle on the configured bucket. */
    readonly gcsBucket: Bucket
    /** The compatibility-matrix profile the store follows. */
    readonly profile: ProfileName
    /** The bucket facts in use (the endpoint's TLS, plus any probe). */
    readonly facts: BucketFacts
    /** Where part objects of uploads in progress live (hidden from listings). */
    readonly uploadPrefix: string
    /**
     * Removes the part objects of uploads that stopped (a killed process): every upload under
     * `uploadPrefix` whose objects are all older than `olderThan` (default: the configured
     * `staleUploadAge`, else 24 hours). An upload still running past that age loses its parts
     * and fails at completion with `PreconditionFailed`.
     */
    readonly sweepUploads: (options?: { readonly olderThan?: Duration.DurationInput | undefined }) => Effect.Effect<SweepResult, StoreError>
  }
>() {}

/**
 * What a sweep of stale uploads did.
 *
 * @since 0.1.0
 * @category models
 */
export interface SweepResult {
  /** Uploads whose objects were removed. */
  readonly uploads: number
  /** Part objects, intermediate composites and upload records removed. */
  readonly objects: number
  /** Uploads younger than the threshold, left alone. */
  readonly kept: number
}

/**
 * GCS's limits: 8 KiB of custom metadata, no minimum part size for compose, 1024 components per
 * composite object, 5 TiB per object.
 *
 * @since 0.1.0
 * @category constants
 */
export const limits: StoreLimits = {
  maxMetadataBytes: 8192,
  minPartSize: 1,
  maxPartSize: 5 * 1024 * 1024 * MiB,
  maxParts: 1024
}

const SSE_TAGS = ["SseS3", "SseKms", "SseC"] as const
const COMPOSE_MAX = 32

/** The generation preconditions of one GCS write. */
interface Preconditions {
  readonly ifGenerationMatch?: number | undefined
  readonly ifMetagenerationMatch?: number | undefined
}

const unquote = (etag: string) => etag.replace(/^"(.*)"$/, "$1")

/**
 * The client the driver uses. A custom `apiEndpoint` without credentials gets no authentication
 * (the client's default for custom endpoints); otherwise a key file, explicit service-account
 * credentials, or Application Default Credentials.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeStorage = (config: GcsConfig): Storage => {
  const options: StorageOptions = {
    ...(config.projectId === undefined ? {} : { projectId: config.projectId }),
    ...(config.apiEndpoint === undefined ? {} : { apiEndpoint: config.apiEndpoint }),
    ...(config.keyFilename === undefined ? {} : { keyFilename: config.keyFilename }),
    ...(config.credentials === undefined
      ? {}
      : { credentials: { client_email: config.credentials.clientEmail, private_key: Redacted.value(config.credentials.privateKey) } }),
    retryOptions: { autoRetry: true, maxRetries: config.maxRetries ?? defaults.maxRetries },
    crc32cGenerator: Crc32c.generator
  }
  return new Storage(options)
}

/**
 * The bucket facts a configuration implies: TLS from the endpoint, plus any probe.
 *
 * @since 0.1.0
 * @category constructors
 */
export const factsOf = (config: GcsConfig): BucketFacts => ({
  ...config.facts,
  tls: config.apiEndpoint === undefined || config.apiEndpoint.toLowerCase().startsWith("https:")
})

/**
 * The modes a profile honours natively on a bucket with these facts (always including `None`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const nativeModesOf = (profile: ProfileName, facts: BucketFacts): ReadonlySet<ModeTag> =>
  new Set<ModeTag>([
    "None",
    ...SSE_TAGS.filter((t) => {
      const r = Effect.runSync(Effect.either(resolveIn(matrix, profile, t, facts)))
      return Either.isRight(r) && r.right._tag === "Native"
    })
  ])

/**
 * How GCS reports an object's encryption: CSEK (`customerEncryption.keySha256`), CMEK
 * (`kmsKeyName`), or Google-managed keys, which every other object has.
 *
 * @since 0.1.0
 * @category conversions
 */
export const encryptionOf = (m: FileMetadata, requested?: ServerSideEncryption): ServerEncryptionInfo => {
  const sha = m.customerEncryption?.keySha256
  if (typeof sha === "string" && sha !== "") {
    return {
      mode: "SseC",
      customerKeySha256: sha,
      // GCS keeps only the SHA-256; the MD5 is reported when the request's key is the object's.
      ...(requested?._tag === "SseC" && requested.key.sha256 === sha ? { customerKeyMd5: requested.key.md5 } : {})
    }
  }
  if (typeof m.kmsKeyName === "string" && m.kmsKeyName !== "") return { mode: "SseKms", kmsKeyId: m.kmsKeyName }
  return { mode: "SseS3" }
}

const metadataOf = (m: FileMetadata): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(m.metadata ?? {})) if (v !== null && v !== undefined) out[k] = String(v)
  return out
}

const RESET_RETRY = Schedule.intersect(Schedule.exponential("20 millis"), Schedule.recurs(3))

const isConnectionReset = (e: StoreError): boolean =>
  e._tag === "ProviderError" && e.status === undefined && (e.code === "ECONNRESET" || e.code === "EPIPE" || e.code === "ECONNABORTED")

const pad = (n: number) => String(n).padStart(5, "0")

/**
 * Builds the store; the client's sockets are released when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (config: GcsConfig): Effect.Effect<GcsObjectStore["Type"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const storage = yield* Effect.sync(() => makeStorage(config))
    const gcsBucket = storage.bucket(config.bucket)
    const profile = config.profile ?? defaults.profile
    const facts = factsOf(config)
    const nativeModes = nativeModesOf(profile, facts)
    const basePartSize = Math.max(1, config.partSize ?? defaults.partSize)
    // Resumable chunks must be multiples of 256 KiB.
    const resumableChunk = Math.max(1, Math.round(basePartSize / (256 * 1024))) * 256 * 1024
    const streamAbove = config.streamPartsAbove ?? 2 * basePartSize
    const budget = yield* memoryBudget(config.memoryBudget)
    const concurrency = Math.max(1, config.concurrency ?? defaults.concurrency)
    const parallel = config.parallelUploads ?? defaults.parallelUploads
    const uploadPrefix = config.uploadPrefix ?? defaults.uploadPrefix
    const staleUploadAge = config.staleUploadAge ?? defaults.staleUploadAge

    // The client destroys its shared HTTP agent when a download stream is abandoned, resetting
    // other requests' sockets; a request whose connection was reset before an answer is retried.
    const send = <A>(operation: Operation, key: string | undefined, f: () => Promise<A>, ctx?: Parameters<typeof toStoreError>[3]) =>
      Effect.tryPromise({ try: f, catch: (e) => toStoreError(operation, key, e, ctx) }).pipe(
        Effect.retry({ while: isConnectionReset, schedule: RESET_RETRY })
      )

    const validKey = (key: string): Effect.Effect<void, InvalidObjectKey> =>
      key === ""
        ? Effect.fail(new InvalidObjectKey({ key, reason: "empty" }))
        : Buffer.byteLength(key, "utf8") > 1024
        ? Effect.fail(new InvalidObjectKey({ key, reason: "longer than 1024 bytes of UTF-8" }))
        : /[\r\n]/.test(key)
        ? Effect.fail(new InvalidObjectKey({ key, reason: "contains a carriage return or line feed" }))
        : key.startsWith(uploadPrefix)
        ? Effect.fail(new InvalidObjectKey({ key, reason: `${uploadPrefix} is reserved for uploads in progress` }))
        : Effect.void

    /** The encryption to send for a write in `sse`; fails before any I/O when the bucket cannot. */
    const planWrite = (sse: ServerSideEncryption | undefined): Effect.Effect<ServerSideEncryption | undefined, UnsupportedMode> =>
      Effect.gen(function*() {
        if (sse === undefined) return undefined
        const plan = yield* resolveIn(matrix, profile, sse._tag, facts)
        if (plan._tag !== "Native") {
          return yield* new UnsupportedMode({
            provider: profile,
            mode: sse._tag,
            reason: `the GCS driver sends only native server-side modes; this one is ${plan._tag === "ClientSide" ? "client-side" : "gateway-only"} on ${profile}`,
            alternatives: ["put the objcrypt gateway in front"]
          })
        }
        if (sse._tag === "SseKms" && sse.context !== undefined && Object.keys(sse.context).length > 0) {
          return yield* new UnsupportedMode({
            provider: profile,
            mode: "SseKms",
            reason: "GCS CMEK has no encryption context",
            alternatives: ["use sse-kms without a context", "use cse-kms, which binds a context"]
          })
        }
        // Google-managed keys are always on: nothing to send.
        return sse._tag === "SseS3" ? undefined : sse
      })

    /** Reads send a customer key only where the store may receive it (never over plain http unless probed). */
    const readKey = (operation: Operation, key: string, sse: ServerSideEncryption | undefined) =>
      sse?._tag === "SseC" && !nativeModes.has("SseC")
        ? Effect.fail(new AccessDenied({ provider: PROVIDER, operation, key, reason: "sse-c (CSEK) is not available on this store (see the compatibility matrix)" }))
        : Effect.succeed(sse?._tag === "SseC" ? sse : undefined)

    /** A client handle on one object, carrying its CSEK key or CMEK key name. */
    const fileOf = (key: string, sse: ServerSideEncryption | undefined, generation?: number | string, on: Bucket = gcsBucket): File =>
      on.file(key, {
        // `null` (not `undefined`) so a copy never inherits the source's key.
        encryptionKey: sse?._tag === "SseC" ? Buffer.from(Redacted.value(sse.key.material)) : null,
        ...(sse?._tag === "SseKms" && sse.keyId !== undefined ? { kmsKeyName: sse.keyId } : {}),
        ...(generation === undefined ? {} : { generation })
      })

    const infoOf = (key: string, m: FileMetadata, sse?: ServerSideEncryption): ObjectInfo => ({
      key,
      size: Number(m.size ?? 0),
      etag: m.etag ?? String(m.generation ?? ""),
      lastModified: new Date(m.updated ?? m.timeCreated ?? 0),
      ...(m.contentType === undefined ? {} : { contentType: m.contentType }),
      metadata: metadataOf(m),
      encryption: encryptionOf(m, sse)
    })

    const resultOf = (key: string, m: FileMetadata, sse?: ServerSideEncryption): PutResult => ({
      key,
      etag: m.etag ?? String(m.generation ?? ""),
      size: Number(m.size ?? 0),
      encryption: encryptionOf(m, sse)
    })

    const headMeta = (key: string, options?: GetOptions) =>
      Effect.gen(function*() {
        yield* validKey(key)
        const sse = yield* readKey("head", key, options?.sse)
        const [m] = yield* send("head", key, () => fileOf(key, sse).getMetadata())
        return m
      })

    const head = (key: string, options?: GetOptions): Effect.Effect<ObjectInfo, StoreError> =>
      Effect.map(headMeta(key, options), (m) => infoOf(key, m, options?.sse))

    const get = (key: string, options?: GetOptions): Effect.Effect<StoredObject, StoreError, Scope.Scope> =>
      Effect.gen(function*() {
        // The metadata first: it gives the size a range resolves against and a generation that
        // pins the read to this very version of the object.
        const m = yield* headMeta(key, options)
        const info = infoOf(key, m, options?.sse)
        const sse = options?.sse?._tag === "SseC" ? options.sse : undefined
        let range: { start: number; end: number } | undefined
        if (options?.range !== undefined) {
          const r = resolveRange(options.range, info.size)
          if (Option.isNone(r)) return yield* new InvalidRange({ key, range: formatRange(options.range), size: info.size })
          range = r.value
        }
        const file = fileOf(key, sse, m.generation)
        const readable = yield* Effect.acquireRelease(
          Effect.sync(() =>
            file.createReadStream(range === undefined ? {} : { start: range.start, end: range.end - 1 }) as Readable & AsyncIterable<Uint8Array>
          ),
          (s) => Effect.sync(() => s.destroy())
        )
        const body: Stream.Stream<Uint8Array, StoreError> = Stream.fromAsyncIterable(readable, (e) =>
          toStoreError("get", key, e, { size: info.size }))
        return { info, body, ...(range === undefined ? {} : { range }) }
      })

    const writeMetadata = (options: PutOptions | CopyOptions | undefined) => ({
      contentType: options?.contentType ?? "application/octet-stream",
      ...(options?.metadata === undefined || Object.keys(options.metadata).length === 0 ? {} : { metadata: { ...options.metadata } })
    })

    const saveBuffer = (operation: Operation, key: string, name: string, bytes: Buffer, sse: ServerSideEncryption | undefined, options: {
      readonly contentType?: string | undefined
      readonly metadata?: Readonly<Record<string, string>> | undefined
      readonly preconditions?: Preconditions | undefined
    }) =>
      Effect.gen(function*() {
        const file = fileOf(name, sse)
        yield* send(operation, key, () =>
          file.save(bytes, {
            resumable: false,
            gzip: false,
            validation: "md5",
            metadata: writeMetadata(options),
            ...(options.preconditions === undefined ? {} : { preconditionOpts: { ...options.preconditions } })
          }))
        return file.metadata
      })

    const partName = (uploadId: string, partNumber: number) => `${uploadPrefix}${uploadId}/${pad(partNumber)}`

    const uploadBuffer = (upload: MultipartUpload, partNumber: number, bytes: Buffer, sse: ServerSideEncryption | undefined) =>
      Effect.map(
        // A part's name is new: `ifGenerationMatch: 0` makes the write idempotent, so the client retries it.
        saveBuffer("uploadPart", upload.key, partName(upload.uploadId, partNumber), bytes, sse, { preconditions: { ifGenerationMatch: 0 } }),
        (m): CompletedPart => ({ partNumber, etag: String(m.generation ?? ""), size: bytes.length })
      )

    /** Removes every part object (and intermediate composite) of an upload, and its marker. */
    const cleanup = (uploadId: string): Effect.Effect<void> =>
      Effect.ignore(
        Effect.gen(function*() {
          const [files] = yield* send("abortMultipart", undefined, () => gcsBucket.getFiles({ prefix: `${uploadPrefix}${uploadId}/` }))
          yield* Effect.forEach(
            [...files.map((f) => f.name), `${uploadPrefix}${uploadId}`],
            (name) => Effect.ignore(send("abortMultipart", name, () => gcsBucket.file(name).delete({ ignoreNotFound: true }))),
            { concurrency: 8, discard: true }
          )
        })
      )

    const sweepUploads = (options?: { readonly olderThan?: Duration.DurationInput | undefined }): Effect.Effect<SweepResult, StoreError> =>
      Effect.gen(function*() {
        const threshold = options?.olderThan ?? (staleUploadAge === false ? defaults.staleUploadAge : staleUploadAge)
        const cutoff = Date.now() - Duration.toMillis(Duration.decode(threshold))
        const [files] = yield* send("sweepUploads", undefined, () => gcsBucket.getFiles({ prefix: uploadPrefix }))
        // One upload is its record `<prefix><id>` plus everything under `<prefix><id>/`; it is
        // stale only when its newest object is.
        const uploads = new Map<string, { names: Array<string>; newest: number }>()
        for (const f of files) {
          const id = f.name.slice(uploadPrefix.length).split("/")[0] ?? ""
          const t = Date.parse(f.metadata.updated ?? f.metadata.timeCreated ?? "")
          const u = uploads.get(id) ?? { names: [], newest: -Infinity }
          u.names.push(f.name)
          u.newest = Math.max(u.newest, Number.isNaN(t) ? Infinity : t)
          uploads.set(id, u)
        }
        const stale = [...uploads.values()].filter((u) => u.newest <= cutoff)
        yield* Effect.forEach(
          stale.flatMap((u) => u.names),
          (name) => send("sweepUploads", name, () => gcsBucket.file(name).delete({ ignoreNotFound: true })),
          { concurrency: 8, discard: true }
        )
        return { uploads: stale.length, objects: stale.reduce((n, u) => n + u.names.length, 0), kept: uploads.size - stale.length }
      })

    // Once per store, before its first upload that writes part objects; a failure (no list or
    // delete permission) must not stop the upload.
    const sweepOnce = staleUploadAge === false ? Effect.void : yield* Effect.cached(Effect.ignore(sweepUploads()))

    const composeRequest = (
      destination: string,
      sources: ReadonlyArray<{ readonly name: string; readonly generation: string }>,
      sse: ServerSideEncryption | undefined,
      resource: Record<string, unknown>,
      qs: Record<string, unknown>
    ) =>
      Effect.map(
        send("compose", destination, () =>
          fileOf(destination, sse?._tag === "SseC" ? sse : undefined).request({
            method: "POST",
            uri: "/compose",
            json: {
              destination: resource,
              sourceObjects: sources.map((s) => ({ name: s.name, generation: s.generation }))
            },
            qs: {
              ...qs,
              ...(sse?._tag === "SseKms" && sse.keyId !== undefined ? { kmsKeyName: sse.keyId } : {})
            }
          })),
        ([body]) => body as FileMetadata
      )

    /**
     * Joins parts into `key` with compose, 32 sources at a time (composites of composites past
     * that), then removes the upload's objects. A failure leaves them: `put` removes them itself,
     * while a failed `completeMultipart` leaves the upload to complete again or abort (as S3 does).
     */
    const composeParts = (
      upload: MultipartUpload,
      parts: ReadonlyArray<CompletedPart>,
      sse: ServerSideEncryption | undefined,
      options: { readonly contentType?: string | undefined; readonly metadata?: Readonly<Record<string, string>> | undefined },
      preconditions: Preconditions | undefined
    ): Effect.Effect<PutResult, StoreError> =>
      Effect.gen(function*() {
        const sorted = [...parts].sort((a, b) => a.partNumber - b.partNumber)
        if (sorted.length === 0) {
          return yield* new ProviderError({ provider: PROVIDER, operation: "completeMultipart", key: upload.key, code: "NoParts", detail: "no parts to join" })
        }
        if (sorted.length > limits.maxParts) {
          return yield* new ProviderError({
            provider: PROVIDER,
            operation: "completeMultipart",
            key: upload.key,
            code: "TooManyParts",
            detail: `GCS composes at most ${limits.maxParts} components`
          })
        }
        let sources = sorted.map((p) => ({ name: partName(upload.uploadId, p.partNumber), generation: p.etag }))
        let level = 0
        while (sources.length > COMPOSE_MAX) {
          level++
          const groups = Array.from({ length: Math.ceil(sources.length / COMPOSE_MAX) }, (_, i) => sources.slice(i * COMPOSE_MAX, (i + 1) * COMPOSE_MAX))
          sources = yield* Effect.forEach(groups, (group, i) => {
            const name = `${uploadPrefix}${upload.uploadId}/c${level}-${pad(i)}`
            return Effect.map(composeRequest(name, group, sse, { contentType: "application/octet-stream" }, {}), (m) => ({ name, generation: String(m.generation) }))
          }, { concurrency })
        }
        const m = yield* composeRequest(upload.key, sources, sse, writeMetadata(options), { ...preconditions }).pipe(
          Effect.catchTag("ObjectNotFound", () =>
            Effect.fail(new PreconditionFailed({ key: upload.key, reason: "a part of the upload is missing (aborted, or not the part uploaded)" })))
        )
        return resultOf(upload.key, m, sse)
      }).pipe(Effect.tap(() => cleanup(upload.uploadId)))

    const newUploadId = () => crypto.randomBytes(12).toString("hex")

    /** `ifMatch` with `ifNoneMatch` is a usage error, refused before any request (the same in every driver). */
    const checkConditions = (operation: Operation, key: string, options: PutOptions | undefined) =>
      refuseConflictingConditions(PROVIDER, operation, key, options)

    /**
     * The preconditions a write sends. `ifNoneMatch: "*"` is `ifGenerationMatch=0`. `ifMatch`: a GCS
     * etag stands for one (generation, metageneration) of the object, so the version whose etag
     * matches now is pinned with `ifGenerationMatch` and `ifMetagenerationMatch`, which GCS checks
     * atomically with the write: an object replaced (new generation), patched (new metageneration)
     * or removed after this read of its metadata fails the write with 412.
     */
    const preconditionsOf = (
      operation: Operation,
      key: string,
      options: { readonly ifNoneMatch?: "*" | undefined; readonly ifMatch?: string | undefined } | undefined
    ): Effect.Effect<Preconditions | undefined, StoreError> =>
      Effect.gen(function*() {
        if (options?.ifNoneMatch === "*") return { ifGenerationMatch: 0 }
        if (options?.ifMatch === undefined) return undefined
        const expected = unquote(options.ifMatch)
        const m = yield* send(operation, key, () => fileOf(key, undefined).getMetadata()).pipe(
          Effect.map(([m]) => m),
          Effect.catchTag("ObjectNotFound", () => Effect.fail(new PreconditionFailed({ key, reason: "the object does not exist (If-Match)" })))
        )
        if (unquote(infoOf(key, m).etag) !== expected || m.generation === undefined || m.metageneration === undefined) {
          return yield* new PreconditionFailed({ key, reason: "the object's etag does not match (If-Match): it was replaced" })
        }
        return { ifGenerationMatch: Number(m.generation), ifMetagenerationMatch: Number(m.metageneration) }
      })

    const putSingle = (
      key: string,
      bytes: Buffer,
      options: PutOptions | undefined,
      sse: ServerSideEncryption | undefined,
      preconditions: Preconditions | undefined
    ) =>
      Effect.map(
        saveBuffer("put", key, key, bytes, sse, { ...options, preconditions }),
        (m) => resultOf(key, m, options?.sse)
      )

    const putResumable = <E>(
      key: string,
      body: Stream.Stream<Uint8Array, E>,
      options: PutOptions | undefined,
      sse: ServerSideEncryption | undefined,
      preconditions: Preconditions | undefined
    ) =>
      Effect.gen(function*() {
        const file = fileOf(key, sse)
        const w = file.createWriteStream({
          resumable: true,
          chunkSize: resumableChunk,
          gzip: false,
          validation: false,
          metadata: writeMetadata(options),
          ...(preconditions === undefined ? {} : { preconditionOpts: { ...preconditions } })
        })
        yield* feed(w, body, (e) => toStoreError("put", key, e))
        return resultOf(key, file.metadata, options?.sse)
      })

    const put = <E = never>(key: string, body: Stream.Stream<Uint8Array, E>, options?: PutOptions): Effect.Effect<PutResult, StoreError | UnsupportedMode | E> =>
      Effect.gen(function*() {
        yield* validKey(key)
        yield* checkConditions("put", key, options)
        const sse = yield* planWrite(options?.sse)
        // Before any byte is sent: a stale etag fails at once, a match pins the version it names.
        const preconditions = yield* preconditionsOf("put", key, options)
        const known = options?.contentLength
        const partSize = known === undefined ? basePartSize : Math.max(basePartSize, Math.ceil(known / limits.maxParts))
        return yield* Effect.scoped(
          Effect.gen(function*() {
            const reader = yield* partReader(body, partSize)
            const first = Option.getOrElse(yield* reader.next, () => Buffer.alloc(0))
            const second = first.length < partSize ? Option.none<Buffer>() : yield* reader.next
            if (Option.isNone(second) || second.value.length === 0) return yield* putSingle(key, first, options, sse, preconditions)
            const rest = Stream.repeatEffectOption(
              reader.next.pipe(
                Effect.mapError(Option.some),
                Effect.flatMap((o) => (Option.isSome(o) ? Effect.succeed(o.value) : Effect.fail(Option.none<E>())))
              )
            )
            const all = Stream.make(first, second.value).pipe(Stream.concat(rest), Stream.filter((b) => b.length > 0))
            if (!parallel) return yield* putResumable(key, all, options, sse, preconditions)
            yield* sweepOnce
            const upload: MultipartUpload = { key, uploadId: newUploadId() }
            return yield* Effect.uninterruptibleMask((restore) =>
              restore(
                all.pipe(
                  Stream.zipWithIndex,
                  Stream.mapEffect(([bytes, i]) => {
                    if (i >= limits.maxParts) {
                      return Effect.fail(new ProviderError({
                        provider: PROVIDER,
                        operation: "put",
                        key,
                        code: "TooManyParts",
                        detail: `a body of unknown length exceeded ${limits.maxParts} parts of ${partSize} bytes; give contentLength or a larger partSize`
                      }))
                    }
                    // A part in flight finishes even on interruption, so the cleanup that follows sees it.
                    // A part whose upload is done backs a later part (about concurrency + 1 buffers in all).
                    return Effect.uninterruptible(Effect.tap(uploadBuffer(upload, i + 1, bytes, sse), () => reader.release(bytes)))
                  }, { concurrency }),
                  Stream.runCollect,
                  Effect.flatMap((parts) => composeParts(upload, [...parts], sse, options ?? {}, preconditions))
                )
              ).pipe(Effect.onError(() => cleanup(upload.uploadId)))
            ).pipe(Effect.map((r) => ({ ...r, encryption: { ...r.encryption, ...(options?.sse?._tag === "SseC" ? { customerKeyMd5: options.sse.key.md5 } : {}) } })))
          })
        ).pipe(budget.reserve(heldByUpload(known, partSize, concurrency)))
      })

    /**
     * Without `ifMatch`, a missing key succeeds. With it, the version whose etag matches is pinned
     * as for a conditional put (`preconditionsOf`: one read of the metadata, then
     * `ifGenerationMatch` + `ifMetagenerationMatch` on the delete), so GCS checks it atomically
     * with the removal: a missing key, another etag, or a replacement, metadata change or removal
     * after the read is `PreconditionFailed` (412 or 404), and nothing is removed. The client
     * retries a delete carrying `ifGenerationMatch`, as it does conditional writes.
     */
    const remove = (key: string, options?: RemoveOptions): Effect.Effect<void, StoreError> =>
      Effect.gen(function*() {
        yield* validKey(key)
        const ifMatch = options?.ifMatch
        if (ifMatch === undefined) {
          return yield* send("remove", key, () => fileOf(key, undefined).delete()).pipe(
            Effect.asVoid,
            Effect.catchTag("ObjectNotFound", () => Effect.void)
          )
        }
        const preconditions = yield* preconditionsOf("remove", key, { ifMatch })
        yield* send("remove", key, () => fileOf(key, undefined).delete({ ...preconditions })).pipe(
          Effect.catchTag("ObjectNotFound", () =>
            Effect.fail(new PreconditionFailed({ key, reason: "the object does not exist (If-Match)" })))
        )
      })

    /** Where GCS starts listing for startAfter: past every name of a group marker (`a/` → `a0`). */
    const startOffsetOf = (prefix: string, delimiter: string | undefined, startAfter: string): string => {
      if (!isGroupMarker(prefix, delimiter, startAfter)) return startAfter
      const points = [...startAfter]
      const last = points.pop()!.codePointAt(0)!
      if (last >= 0x10FFFF) return startAfter
      // UTF-8 byte order is code point order: the next code point (surrogates are not one) ends the group.
      return points.join("") + String.fromCodePoint(last === 0xD7FF ? 0xE000 : last + 1)
    }

    const list = (options?: ListOptions): Effect.Effect<ListPage, StoreError> =>
      Effect.gen(function*() {
        const prefix = options?.prefix ?? ""
        const hidden = (name: string) => !prefix.startsWith(uploadPrefix) && name.startsWith(uploadPrefix)
        let pageToken = options?.continuationToken
        // A page whose every entry is dropped below (the startAfter key itself, which GCS includes,
        // or upload parts) is not answered empty with a token: the next one is read instead.
        for (;;) {
          const [files, next, response] = yield* send("list", options?.prefix, () =>
            gcsBucket.getFiles({
              autoPaginate: false,
              prefix,
              ...(options?.delimiter === undefined || options.delimiter === "" ? {} : { delimiter: options.delimiter }),
              maxResults: Math.max(1, Math.min(1000, options?.maxKeys ?? 1000)),
              ...(pageToken === undefined ? {} : { pageToken }),
              // GCS starts at startOffset inclusively; the exact key is dropped below. A startAfter
              // that is a group starts past all of it.
              ...(options?.startAfter === undefined ? {} : { startOffset: startOffsetOf(prefix, options.delimiter, options.startAfter) })
            }))
          const objects: Array<ListedObject> = files
            .filter((f) => !hidden(f.name) && f.name !== options?.startAfter)
            .map((f) => ({
              key: f.name,
              size: Number(f.metadata.size ?? 0),
              etag: f.metadata.etag ?? "",
              lastModified: new Date(f.metadata.updated ?? 0)
            }))
          // The group startAfter names, where startOffsetOf could not start past it (a last U+10FFFF).
          const prefixes = ((response as { prefixes?: Array<string> } | undefined)?.prefixes ?? [])
            .filter((p) => !hidden(p) && p !== options?.startAfter)
          const token = (next as { pageToken?: string } | null | undefined)?.pageToken
          if (objects.length + prefixes.length > 0 || token === undefined) {
            return { objects, commonPrefixes: prefixes, ...(token === undefined ? {} : { continuationToken: token }) }
          }
          pageToken = token
        }
      })

    interface Marker {
      readonly contentType?: string | undefined
      readonly metadata?: Readonly<Record<string, string>> | undefined
      readonly kmsKeyName?: string | undefined
      /** `PutOptions.ifMatch`, checked (and pinned) at completion. */
      readonly ifMatch?: string | undefined
      /** `PutOptions.ifNoneMatch`, sent (`ifGenerationMatch=0`) on the final compose. */
      readonly ifNoneMatch?: "*" | undefined
    }

    const markerOf = (upload: MultipartUpload, operation: Operation): Effect.Effect<Marker, StoreError> =>
      send(operation, upload.key, () => gcsBucket.file(`${uploadPrefix}${upload.uploadId}`).getMetadata()).pipe(
        Effect.catchTag("ObjectNotFound", () =>
          Effect.fail(new PreconditionFailed({ key: upload.key, reason: "the multipart upload does not exist (aborted or completed)" }))),
        Effect.flatMap(([m]) => {
          const meta = metadataOf(m)
          if (meta["key"] !== upload.key) {
            return Effect.fail(new PreconditionFailed({ key: upload.key, reason: "the multipart upload belongs to another key" }))
          }
          return Effect.try({
            try: () => JSON.parse(meta["upload"] ?? "{}") as Marker,
            catch: () => new PreconditionFailed({ key: upload.key, reason: "the multipart upload's record is unreadable" })
          })
        })
      )

    const createMultipart = (key: string, options?: PutOptions): Effect.Effect<MultipartUpload, StoreError | UnsupportedMode> =>
      Effect.gen(function*() {
        yield* validKey(key)
        yield* checkConditions("createMultipart", key, options)
        const sse = yield* planWrite(options?.sse)
        yield* sweepOnce
        const uploadId = newUploadId()
        const marker: Marker = {
          contentType: options?.contentType,
          metadata: options?.metadata,
          kmsKeyName: sse?._tag === "SseKms" ? sse.keyId : undefined,
          ...(options?.ifMatch === undefined ? {} : { ifMatch: options.ifMatch }),
          ...(options?.ifNoneMatch === "*" ? { ifNoneMatch: "*" as const } : {})
        }
        // The upload's record: an empty object under the hidden prefix, its settings in metadata.
        yield* send("createMultipart", key, () =>
          gcsBucket.file(`${uploadPrefix}${uploadId}`).save(Buffer.alloc(0), {
            resumable: false,
            gzip: false,
            metadata: { contentType: "application/x-objcrypt-upload", metadata: { key, upload: JSON.stringify(marker) } }
          }))
        return { key, uploadId }
      })

    const sseOfUpload = (marker: Marker, sse: ServerSideEncryption | undefined): ServerSideEncryption | undefined =>
      sse?._tag === "SseC" ? sse : marker.kmsKeyName !== undefined ? { _tag: "SseKms", keyId: marker.kmsKeyName } : undefined

    const uploadPart = <E = never>(
      upload: MultipartUpload,
      partNumber: number,
      body: Stream.Stream<Uint8Array, E>,
      options?: { readonly contentLength?: number | undefined; readonly sse?: ServerSideEncryption | undefined }
    ): Effect.Effect<CompletedPart, StoreError | E> =>
      Effect.gen(function*() {
        if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > limits.maxParts) {
          return yield* new ProviderError({ provider: PROVIDER, operation: "uploadPart", key: upload.key, code: "InvalidPartNumber", detail: `part numbers run from 1 to ${limits.maxParts}` })
        }
        const marker = yield* markerOf(upload, "uploadPart")
        if (options?.sse?._tag === "SseC" && !nativeModes.has("SseC")) {
          return yield* new AccessDenied({ provider: PROVIDER, operation: "uploadPart", key: upload.key, reason: "sse-c (CSEK) is not available on this store" })
        }
        const sse = sseOfUpload(marker, options?.sse)
        const length = options?.contentLength
        if (length !== undefined && length > streamAbove) {
          // Sent as it is read through a resumable upload (chunks of partSize), never held whole.
          const file = fileOf(partName(upload.uploadId, partNumber), sse)
          const w = file.createWriteStream({
            resumable: true,
            chunkSize: resumableChunk,
            gzip: false,
            validation: "md5",
            metadata: writeMetadata(undefined),
            preconditionOpts: { ifGenerationMatch: 0 }
          })
          const mismatch = (detail: string) => new ProviderError({ provider: PROVIDER, operation: "uploadPart", key: upload.key, code: "BodyLengthMismatch", detail })
          yield* feed(w, exactly(body, length, mismatch), (e) => toStoreError("uploadPart", upload.key, e))
          return { partNumber, etag: String(file.metadata.generation ?? ""), size: length } satisfies CompletedPart
        }
        const limit = length ?? basePartSize * 4
        // The part is held whole from its first byte read to the end of its upload.
        return yield* budget.reserve(limit)(Effect.gen(function*() {
          const bytes = yield* collect(body, limit, () =>
            new ProviderError({ provider: PROVIDER, operation: "uploadPart", key: upload.key, code: "BodyTooLong", detail: `the part body is longer than ${limit} bytes` }))
          if (length !== undefined && bytes.length !== length) {
            return yield* new ProviderError({
              provider: PROVIDER,
              operation: "uploadPart",
              key: upload.key,
              code: "BodyLengthMismatch",
              detail: `the part body has ${bytes.length} bytes, not ${length}`
            })
          }
          return yield* uploadBuffer(upload, partNumber, bytes, sse)
        }))
      })

    const completeMultipart = (
      upload: MultipartUpload,
      parts: ReadonlyArray<CompletedPart>,
      options?: CompleteOptions
    ): Effect.Effect<PutResult, StoreError> =>
      Effect.gen(function*() {
        yield* checkConditions("completeMultipart", upload.key, options)
        const marker = yield* markerOf(upload, "completeMultipart")
        // The conditions given to `createMultipart` (in the upload's record) and now must both hold.
        const merged = yield* completionConditions(PROVIDER, upload.key, {
          ifNoneMatch: marker.ifNoneMatch === "*" ? "*" : undefined,
          ifMatch: typeof marker.ifMatch === "string" ? marker.ifMatch : undefined
        }, options)
        const conditions = merged.ifNoneMatch === undefined && merged.ifMatch === undefined ? undefined : merged
        // `ifMatch` is pinned here, then checked by GCS on the final compose with `ifNoneMatch`
        // (`ifGenerationMatch=0`): atomic with the write. A failure keeps the upload's objects.
        const preconditions = yield* preconditionsOf("completeMultipart", upload.key, conditions)
        return yield* composeParts(upload, parts, sseOfUpload(marker, options?.sse), marker, preconditions)
      })

    const abortMultipart = (upload: MultipartUpload): Effect.Effect<void, StoreError> => cleanup(upload.uploadId)

    const copy = (source: string, destination: string, options?: CopyOptions): Effect.Effect<PutResult, StoreError | UnsupportedMode> =>
      Effect.gen(function*() {
        yield* validKey(source)
        yield* validKey(destination)
        const sse = yield* planWrite(options?.sse)
        const sourceSse = yield* readKey("copy", source, options?.sourceSse)
        const replace = options?.metadata !== undefined || options?.contentType !== undefined
        const ifMatch = options?.ifSourceMatch
        const src = replace || ifMatch !== undefined ? yield* headMeta(source, { sse: options?.sourceSse }) : undefined
        const sourceChanged = () => new PreconditionFailed({ key: source, reason: "the source's etag does not match (it was replaced)" })
        // `ifSourceMatch`: a GCS etag stands for one (generation, metageneration) of the object, so the
        // version whose etag matched is pinned with `ifSourceGenerationMatch` and
        // `ifSourceMetagenerationMatch`, which GCS checks itself; onto the same key, the destination
        // must still be that version when the copy replaces it (`ifGenerationMatch`, `ifMetagenerationMatch`).
        let pins: Record<string, string> | undefined
        if (ifMatch !== undefined && src !== undefined) {
          if (infoOf(source, src).etag !== ifMatch || src.generation === undefined || src.metageneration === undefined) {
            return yield* sourceChanged()
          }
          const generation = String(src.generation)
          const metageneration = String(src.metageneration)
          pins = {
            ifSourceGenerationMatch: generation,
            ifSourceMetagenerationMatch: metageneration,
            ...(source === destination ? { ifGenerationMatch: generation, ifMetagenerationMatch: metageneration } : {})
          }
        }
        const target = fileOf(destination, sse)
        const body = {
          ...(replace
            ? {
              contentType: options?.contentType ?? src?.contentType ?? "application/octet-stream",
              metadata: { ...(options?.metadata ?? (src === undefined ? {} : metadataOf(src))) }
            }
            : {}),
          ...(sse?._tag === "SseKms" && sse.keyId !== undefined ? { destinationKmsKeyName: sse.keyId } : {})
        }
        // The client loops on the rewrite token for large objects and key changes.
        // The client sends a rewrite through the source's bucket handle: a handle of its own carries
        // the preconditions, on every call, including those made with a rewrite token.
        const on = pins === undefined ? gcsBucket : storage.bucket(config.bucket)
        const from = fileOf(source, sourceSse, undefined, on)
        if (pins !== undefined) {
          const qs = pins
          on.interceptors.push({
            request: (opts) => {
              const o = opts as typeof opts & { qs?: Record<string, unknown> | undefined }
              o.qs = { ...o.qs, ...qs }
              return o as unknown as ReturnType<Bucket["interceptors"][number]["request"]>
            }
          })
        }
        const [, response] = yield* send("copy", source, () => from.copy(target, body)).pipe(
          Effect.catchTags({
            PreconditionFailed: (e) => Effect.fail(pins === undefined ? e : sourceChanged()),
            // The pinned version gone mid-rewrite: replaced (PreconditionFailed) unless the key is gone.
            ObjectNotFound: (e) =>
              pins === undefined
                ? Effect.fail(e)
                : Effect.flatMap(Effect.either(headMeta(source, { sse: options?.sourceSse })), (now) =>
                  Effect.fail(now._tag === "Right" ? sourceChanged() : e))
          })
        )
        const resource = (response as { resource?: FileMetadata } | undefined)?.resource ?? (response as FileMetadata)
        return resultOf(destination, resource, options?.sse)
      })

    return GcsObjectStore.of({
      provider: "gcs",
      bucket: config.bucket,
      location: `gs://${config.bucket}`,
      nativeModes,
      limits,
      storage,
      gcsBucket,
      profile,
      facts,
      uploadPrefix,
      sweepUploads,
      put,
      get,
      head,
      list,
      remove,
      copy,
      createMultipart,
      uploadPart,
      completeMultipart,
      abortMultipart
    })
  })

/**
 * A layer providing both `GcsObjectStore` and the core `ObjectStore`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (config: GcsConfig): Layer.Layer<GcsObjectStore | ObjectStore> =>
  Layer.scopedContext(Effect.map(make(config), (s) => Context.make(GcsObjectStore, s).pipe(Context.add(ObjectStore, s))))

/**
 * As {@link layer}, reading its configuration, e.g.
 * `layerConfig({ bucket: Config.string("BUCKET"), apiEndpoint: Config.option(...) })` under
 * `ConfigProvider.nested("OBJCRYPT_GCS")`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (config: Config.Config.Wrap<GcsConfig>): Layer.Layer<GcsObjectStore | ObjectStore, ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(config), layer))
