/**
 * An in-memory implementation of core's own `ObjectStore` contract, for core's tests (core may not
 * depend on a driver). It honours ranges, the metadata limit, multipart uploads (parts assembled in
 * part-number order on completion, nothing visible before) and copy with replaced metadata and
 * `ifSourceMatch`, and `put` with `ifNoneMatch`/`ifMatch` (checked in the same synchronous step as
 * the write).
 * Counters let tests assert what was fetched.
 */
import { Effect, Option, Stream } from "effect"
import * as crypto from "node:crypto"
import { InvalidRange, ObjectNotFound, PreconditionFailed, ProviderError } from "../../src/Errors.js"
import * as ObjectStore from "../../src/ObjectStore.js"

export interface StoredEntry {
  bytes: Uint8Array
  metadata: Record<string, string>
  contentType?: string | undefined
  etag: string
  lastModified: Date
}

type Contract = ObjectStore.ObjectStore["Type"]

export interface MemoryStore extends Contract {
  readonly objects: Map<string, StoredEntry>
  readonly uploads: Map<string, { key: string; parts: Map<number, Uint8Array>; metadata: Record<string, string>; contentType?: string | undefined }>
  readonly stats: { getBytes: number; gets: number; heads: number; puts: number; copies: number; aborts: number; parts: number; consumed: number }
  /** Fail `uploadPart` for this part number (fault injection). */
  failPart?: number | undefined
}

const unquote = (etag: string) => etag.replace(/^"(.*)"$/, "$1")

const collect = <E>(body: Stream.Stream<Uint8Array, E>) =>
  Effect.map(Stream.runCollect(body), (c) => ObjectStore.concat(c))

export const make = (options?: {
  readonly bucket?: string
  readonly maxMetadataBytes?: number
  readonly minPartSize?: number
  readonly maxParts?: number
  /** Count part bytes but keep none (memory tests). */
  readonly discardBodies?: boolean
}): MemoryStore => {
  const sizes = new Map<Uint8Array, number>()
  const objects = new Map<string, StoredEntry>()
  const uploads: MemoryStore["uploads"] = new Map()
  const stats = { getBytes: 0, gets: 0, heads: 0, puts: 0, copies: 0, aborts: 0, parts: 0, consumed: 0 }
  const limits: ObjectStore.StoreLimits = {
    maxMetadataBytes: options?.maxMetadataBytes ?? 2048,
    minPartSize: options?.minPartSize ?? 0,
    maxPartSize: 5 * 1024 * 1024 * 1024,
    maxParts: options?.maxParts ?? 10000
  }
  const tooBig = (op: string, key: string, metadata: Record<string, string> | undefined) =>
    metadata !== undefined && ObjectStore.metadataSize(metadata) > limits.maxMetadataBytes
      ? Effect.fail(new ProviderError({ provider: "fs", operation: op, key, code: "MetadataTooLarge", detail: "user metadata exceeds the limit" }))
      : Object.keys(metadata ?? {}).some((k) => !ObjectStore.isMetadataKey(k))
      ? Effect.fail(new ProviderError({ provider: "fs", operation: op, key, code: "InvalidArgument", detail: "bad metadata name" }))
      : Effect.void
  const store = (key: string, bytes: Uint8Array, metadata: Record<string, string>, contentType: string | undefined) => {
    const entry: StoredEntry = {
      bytes,
      metadata: { ...metadata },
      contentType,
      etag: `"${crypto.createHash("md5").update(bytes).digest("hex")}"`,
      lastModified: new Date()
    }
    objects.set(key, entry)
    return { key, etag: entry.etag, size: bytes.length, encryption: { mode: "None" as const } }
  }
  const infoOf = (key: string, e: StoredEntry): ObjectStore.ObjectInfo => ({
    key,
    size: e.bytes.length,
    etag: e.etag,
    lastModified: e.lastModified,
    contentType: e.contentType,
    metadata: { ...e.metadata },
    encryption: { mode: "None" }
  })
  const lookup = (key: string) => {
    const e = objects.get(key)
    return e === undefined ? Effect.fail(new ObjectNotFound({ key })) : Effect.succeed(e)
  }
  const self: MemoryStore = {
    provider: "fs",
    bucket: options?.bucket ?? "mem-bucket",
    location: "memory://test",
    nativeModes: new Set(["None"]),
    limits,
    objects,
    uploads,
    stats,
    put: (key, body, opts) =>
      Effect.gen(function*() {
        yield* tooBig("put", key, opts?.metadata as Record<string, string> | undefined)
        if (options?.discardBodies === true) {
          const n = yield* Stream.runFold(body, 0, (acc, c) => {
            stats.consumed += c.length
            return acc + c.length
          })
          if (opts?.contentLength !== undefined && opts.contentLength !== n) {
            return yield* new ProviderError({ provider: "fs", operation: "put", key, code: "BadLength", detail: "length differs" })
          }
          stats.puts++
          return { ...store(key, new Uint8Array(0), { ...opts?.metadata }, opts?.contentType), size: n }
        }
        if (opts?.ifMatch !== undefined && opts.ifNoneMatch !== undefined) {
          return yield* new ProviderError({ provider: "fs", operation: "put", key, code: "InvalidRequest", detail: "ifMatch with ifNoneMatch", status: 400 })
        }
        const bytes = yield* collect(body)
        if (opts?.contentLength !== undefined && opts.contentLength !== bytes.length) {
          return yield* new ProviderError({ provider: "fs", operation: "put", key, code: "BadLength", detail: "length differs" })
        }
        // The precondition and the write run in one synchronous step: nothing can write in between.
        const current = objects.get(key)
        if (opts?.ifNoneMatch === "*" && current !== undefined) {
          return yield* new PreconditionFailed({ key, reason: "the object exists" })
        }
        if (opts?.ifMatch !== undefined && (current === undefined || unquote(current.etag) !== unquote(opts.ifMatch))) {
          return yield* new PreconditionFailed({ key, reason: current === undefined ? "no such object" : "the etag does not match" })
        }
        stats.puts++
        return store(key, bytes, { ...opts?.metadata }, opts?.contentType)
      }),
    get: (key, opts) =>
      Effect.gen(function*() {
        const e = yield* lookup(key)
        stats.gets++
        if (opts?.range === undefined) {
          stats.getBytes += e.bytes.length
          return { info: infoOf(key, e), body: chunked(e.bytes) }
        }
        const r = ObjectStore.resolveRange(opts.range, e.bytes.length)
        if (Option.isNone(r)) {
          return yield* new InvalidRange({ key, range: ObjectStore.formatRange(opts.range), size: e.bytes.length })
        }
        const slice = e.bytes.subarray(r.value.start, r.value.end)
        stats.getBytes += slice.length
        return { info: infoOf(key, e), body: chunked(slice), range: r.value }
      }),
    head: (key) => Effect.suspend(() => {
      stats.heads++
      return Effect.map(lookup(key), (e) => infoOf(key, e))
    }),
    list: (opts) =>
      Effect.sync(() => ({
        objects: [...objects.entries()]
          .filter(([k]) => k.startsWith(opts?.prefix ?? ""))
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .map(([k, e]) => ({ key: k, size: e.bytes.length, etag: e.etag, lastModified: e.lastModified })),
        commonPrefixes: []
      })),
    remove: (key) => Effect.sync(() => void objects.delete(key)),
    copy: (source, destination, opts) =>
      Effect.gen(function*() {
        yield* tooBig("copy", destination, opts?.metadata as Record<string, string> | undefined)
        // The lookup, the check and the write run in one synchronous step: nothing can write in between.
        return yield* Effect.suspend((): Effect.Effect<ObjectStore.PutResult, ObjectNotFound | PreconditionFailed> => {
          const e = objects.get(source)
          if (e === undefined) return Effect.fail(new ObjectNotFound({ key: source }))
          if (opts?.ifSourceMatch !== undefined && opts.ifSourceMatch !== e.etag) {
            return Effect.fail(new PreconditionFailed({ key: source, reason: "the source's etag does not match" }))
          }
          stats.copies++
          return Effect.succeed(store(destination, e.bytes, { ...(opts?.metadata ?? e.metadata) }, opts?.contentType ?? e.contentType))
        })
      }),
    createMultipart: (key, opts) =>
      Effect.gen(function*() {
        yield* tooBig("createMultipart", key, opts?.metadata as Record<string, string> | undefined)
        const uploadId = crypto.randomUUID()
        uploads.set(uploadId, { key, parts: new Map(), metadata: { ...opts?.metadata }, contentType: opts?.contentType })
        return { key, uploadId }
      }),
    uploadPart: (upload, partNumber, body, opts) =>
      Effect.gen(function*() {
        const u = uploads.get(upload.uploadId)
        if (u === undefined) return yield* new PreconditionFailed({ key: upload.key, reason: "no such upload" })
        let bytes: Uint8Array
        if (options?.discardBodies === true) {
          const n = yield* Stream.runFold(body, 0, (acc, c) => {
            stats.consumed += c.length
            return acc + c.length
          })
          bytes = new Uint8Array(0)
          sizes.set(bytes, n)
        } else {
          bytes = yield* collect(body)
        }
        const length = sizes.get(bytes) ?? bytes.length
        if (self.failPart === partNumber) {
          return yield* new ProviderError({ provider: "fs", operation: "uploadPart", key: upload.key, code: "Injected", detail: "fault" })
        }
        if (opts?.contentLength !== undefined && opts.contentLength !== length) {
          return yield* new ProviderError({ provider: "fs", operation: "uploadPart", key: upload.key, code: "BadLength", detail: "" })
        }
        // Parts arrive concurrently: yield so others interleave.
        yield* Effect.yieldNow()
        u.parts.set(partNumber, bytes)
        stats.parts++
        return { partNumber, etag: `"${partNumber}"`, size: length }
      }),
    completeMultipart: (upload, parts, opts) =>
      Effect.gen(function*() {
        if (opts?.ifMatch !== undefined && opts.ifNoneMatch !== undefined) {
          return yield* new ProviderError({ provider: "fs", operation: "completeMultipart", key: upload.key, code: "InvalidRequest", detail: "ifMatch with ifNoneMatch", status: 400 })
        }
        const u = uploads.get(upload.uploadId)
        if (u === undefined) return yield* new PreconditionFailed({ key: upload.key, reason: "no such upload" })
        // Checked with the publish in one synchronous step; a refused upload stays to retry or abort.
        const current = objects.get(u.key)
        if (opts?.ifNoneMatch === "*" && current !== undefined) return yield* new PreconditionFailed({ key: u.key, reason: "the object exists" })
        if (opts?.ifMatch !== undefined && (current === undefined || unquote(current.etag) !== unquote(opts.ifMatch))) {
          return yield* new PreconditionFailed({ key: u.key, reason: current === undefined ? "no such object" : "the etag does not match" })
        }
        const chunks: Array<Uint8Array> = []
        for (const p of parts) {
          const b = u.parts.get(p.partNumber)
          if (b === undefined) return yield* new PreconditionFailed({ key: upload.key, reason: `missing part ${p.partNumber}` })
          if (p !== parts[parts.length - 1] && (sizes.get(b) ?? b.length) < limits.minPartSize) {
            return yield* new PreconditionFailed({ key: upload.key, reason: "part too small" })
          }
          chunks.push(b)
        }
        uploads.delete(upload.uploadId)
        const result = store(u.key, ObjectStore.concat(chunks), u.metadata, u.contentType)
        return { ...result, size: chunks.reduce((n, c) => n + (sizes.get(c) ?? c.length), 0) }
      }),
    abortMultipart: (upload) =>
      Effect.sync(() => {
        stats.aborts++
        uploads.delete(upload.uploadId)
      })
  }
  return self
}

/** Serves bytes in odd-sized chunks, as a network would. */
const chunked = (bytes: Uint8Array): Stream.Stream<Uint8Array> =>
  Stream.suspend(() => {
    const out: Array<Uint8Array> = []
    let off = 0
    let i = 0
    const sizes = [7, 1000, 65536, 3, 200_000]
    while (off < bytes.length) {
      const n = Math.min(sizes[i++ % sizes.length]!, bytes.length - off)
      out.push(bytes.subarray(off, off + n))
      off += n
    }
    return Stream.fromIterable(out)
  })
