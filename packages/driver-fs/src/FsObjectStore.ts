/**
 * `ObjectStore` over a local directory: the embedded default backend of the CLI and the gateway.
 * Writes are atomic (temp file, fsync, rename), data and metadata live in one file, any Unicode
 * key works and `a/b` can sit next to `a/b/c`. The on-disk layout is described in the package
 * README.
 *
 * @since 0.1.0
 */
import * as BackgroundHash from "@objcrypt/core/BackgroundHash"
import type { ModeTag } from "@objcrypt/core/EncryptionMode"
import { InvalidRange, ObjectNotFound, PreconditionFailed, ProviderError, UnsupportedMode } from "@objcrypt/core/Errors"
import type { StoreError } from "@objcrypt/core/Errors"
import { checkConditions as refuseConflictingConditions, completionConditions, formatRange, isGroupMarker, isMetadataKey, metadataSize, ObjectStore, resolveRange } from "@objcrypt/core/ObjectStore"
import type {
  CompletedPart,
  CompleteOptions,
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
  ServerSideEncryption,
  StoredObject
} from "@objcrypt/core/ObjectStore"
import { Chunk, Config, Context, Effect, Layer, Option, Stream } from "effect"
import type { ConfigError } from "effect/ConfigError"
import type * as Scope from "effect/Scope"
import * as crypto from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as url from "node:url"
import type { FsConfig } from "./FsConfig.js"
import { defaults } from "./FsConfig.js"
import type { Header } from "./internal/format.js"
import { decodeHeader, encodeHeader, HEAD_READ, headerLength, PREAMBLE, reservedHeaderLength } from "./internal/format.js"
import { BufferedWriter, errCode, fsyncDir, io, PROVIDER, readFully, writeFully } from "./internal/io.js"
import { objectRelPath, STAGING_DIR, validateKey } from "./internal/keys.js"
import { DirCache, walk } from "./internal/listing.js"
import type { WalkItem } from "./internal/listing.js"

/**
 * The local-directory store: the core `ObjectStore` service plus the absolute root directory.
 *
 * @since 0.1.0
 * @category tags
 */
export class FsObjectStore extends Context.Tag("@objcrypt/driver-fs/FsObjectStore")<
  FsObjectStore,
  ObjectStore["Type"] & { readonly root: string }
>() {}

/**
 * The name this store gives itself in `UnsupportedMode` errors (its compatibility-matrix profile).
 *
 * @since 0.1.0
 * @category constants
 */
export const profileName = "local-fs"

/**
 * Modes a local directory honours natively: none. Server-side modes over fs are provided by the
 * gateway with the client-side formats.
 *
 * @since 0.1.0
 * @category constants
 */
export const nativeModes: ReadonlySet<ModeTag> = new Set<ModeTag>(["None"])

const READ_CHUNK = 512 * 1024
const COPY_BUFFER = 1024 * 1024
const MAX_PART_NUMBER = 10_000
const MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
const STALE_TEMP_MS = 60 * 60 * 1000
const UPLOAD_ID = /^[0-9a-f]{32}$/
const LIST_CONCURRENCY = 32

const unsupported = (mode: ModeTag): UnsupportedMode =>
  new UnsupportedMode({
    provider: profileName,
    mode,
    reason: "a local directory stores bytes as given; server-side encryption over it is done by the objcrypt gateway",
    alternatives: ["use cse-c or cse-kms", "put the objcrypt gateway in front"]
  })

const badRequest = (operation: string, key: string | undefined, code: string, detail: string) =>
  new ProviderError({ provider: PROVIDER, operation, key, code, detail, status: 400 })

const noSuchUpload = (key: string) => new PreconditionFailed({ key, reason: "no such multipart upload (aborted, completed or unknown)" })

const stripQuotes = (etag: string) => etag.replace(/^"(.*)"$/, "$1")

const sourceChanged = (key: string) => new PreconditionFailed({ key, reason: "the source's etag does not match (it was replaced)" })

/**
 * One queue per object path, shared by every store of the process: a conditional copy's check of
 * the object in place and its rename, and every other rename or unlink of that path, run one at a
 * time.
 */
const pathLocks = new Map<string, Promise<unknown>>()

const withPathLock = <A>(target: string, f: () => Promise<A>): Promise<A> => {
  const previous = pathLocks.get(target) ?? Promise.resolve()
  const run = previous.then(f, f)
  const tail = run.then(() => undefined, () => undefined)
  pathLocks.set(target, tail)
  void tail.then(() => {
    if (pathLocks.get(target) === tail) pathLocks.delete(target)
  })
  return run
}

interface UploadManifest {
  readonly key: string
  readonly contentType?: string | undefined
  readonly metadata: Readonly<Record<string, string>>
  readonly ifNoneMatch: boolean
  /** `PutOptions.ifMatch`, unquoted; checked when the upload completes. */
  readonly ifMatch?: string | undefined
}

/**
 * Opens (creating when missing) a store over a directory.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (config: FsConfig): Effect.Effect<FsObjectStore["Type"], StoreError> =>
  Effect.gen(function*() {
    const root = path.resolve(config.root)
    const minPartSize = config.minPartSize ?? defaults.minPartSize
    const maxMetadataBytes = config.maxMetadataBytes ?? defaults.maxMetadataBytes
    const fileMode = config.fileMode ?? defaults.fileMode
    const dirMode = config.dirMode ?? defaults.dirMode
    const durable = config.fsync ?? defaults.fsync
    const contentEtags = (config.etags ?? defaults.etags) === "md5"
    const staging = path.join(root, STAGING_DIR)
    const tmpDir = path.join(staging, "tmp")
    const uploadsDir = path.join(staging, "uploads")
    const cache = new DirCache()

    yield* io("open", undefined, async () => {
      await fs.mkdir(root, { recursive: true, mode: dirMode })
      await fs.mkdir(tmpDir, { recursive: true, mode: dirMode })
      await fs.mkdir(uploadsDir, { recursive: true, mode: dirMode })
      // Temp files left by a crash: never visible as objects, removed once surely abandoned.
      const now = Date.now()
      for (const name of await fs.readdir(tmpDir)) {
        const p = path.join(tmpDir, name)
        const st = await fs.lstat(p).catch(() => undefined)
        if (st !== undefined && now - st.mtimeMs > STALE_TEMP_MS) await fs.rm(p, { recursive: true, force: true }).catch(() => undefined)
      }
    })

    const tmpName = () => path.join(tmpDir, crypto.randomBytes(12).toString("hex"))

    const objectPath = (key: string) => {
      const { dir, file } = objectRelPath(key)
      const targetDir = path.join(root, ...dir)
      return { targetDir, target: path.join(targetDir, file) }
    }

    const checkKey = (key: string) => {
      const bad = validateKey(key)
      return bad === undefined ? Effect.void : Effect.fail(bad)
    }

    const checkMetadata = (operation: string, key: string, metadata: Readonly<Record<string, string>> | undefined) =>
      Effect.suspend(() => {
        if (metadata === undefined) return Effect.void
        for (const [k, v] of Object.entries(metadata)) {
          if (!isMetadataKey(k)) {
            return Effect.fail(badRequest(operation, key, "InvalidArgument", `metadata key ${JSON.stringify(k)} is not lower-case ASCII`))
          }
          if (typeof v !== "string") return Effect.fail(badRequest(operation, key, "InvalidArgument", `metadata ${k} is not a string`))
        }
        return metadataSize(metadata) > maxMetadataBytes
          ? Effect.fail(badRequest(operation, key, "MetadataTooLarge", `user metadata over ${maxMetadataBytes} bytes`))
          : Effect.void
      })

    const rejectSse = (sse: ServerSideEncryption | undefined) => (sse === undefined ? Effect.void : Effect.fail(unsupported(sse._tag)))

    /** A request carrying SSE parameters for an object this store cannot have encrypted. */
    const rejectSseRead = (operation: string, key: string, sse: ServerSideEncryption | undefined) =>
      sse === undefined
        ? Effect.void
        : Effect.fail(badRequest(operation, key, "InvalidRequest", "server-side encryption parameters given, but local-fs objects are not server-side encrypted"))

    // ---- publishing --------------------------------------------------------------------------

    /**
     * Moves a finished temp file to the object's path: rename (last writer wins) or, for create-only,
     * link. Runs under the path's lock, after `guard` (a precondition on the object in place), so no
     * other write of this process to the key comes between the two.
     */
    const publish = (key: string, tmp: string, createOnly: boolean, guard?: () => Promise<void>): Promise<void> => {
      const { target } = objectPath(key)
      return withPathLock(target, async () => {
        if (guard !== undefined) await guard()
        await publishNow(key, tmp, createOnly)
      })
    }

    const publishNow = async (key: string, tmp: string, createOnly: boolean): Promise<void> => {
      const { targetDir, target } = objectPath(key)
      for (let attempt = 0;; attempt++) {
        const created = await fs.mkdir(targetDir, { recursive: true, mode: dirMode })
        try {
          if (createOnly) {
            await fs.link(tmp, target)
            await fs.unlink(tmp)
          } else {
            await fs.rename(tmp, target)
          }
        } catch (e) {
          // A concurrent remove may prune the directory between mkdir and rename: make it again.
          if (errCode(e) === "ENOENT" && attempt < 8) continue
          if (errCode(e) === "EEXIST" && createOnly) throw new PreconditionFailed({ key, reason: "the object exists (If-None-Match: *)" })
          throw e
        }
        if (durable) {
          const dirs = [targetDir]
          // New directories are entries of their parents: make those durable too.
          if (created !== undefined) {
            const stop = path.dirname(created)
            for (let d = targetDir; d !== stop && d !== path.dirname(d);) {
              d = path.dirname(d)
              dirs.push(d)
            }
          }
          for (const d of dirs) await fsyncDir(d)
        }
        return
      }
    }

    /**
     * Writes an object: a temp file in the staging directory gets the body (from `fill`, at the
     * offset after the reserved header), then the header, is fsynced and renamed into place. On
     * any failure or interruption the temp file is removed and no object changes.
     */
    const writeObject = <E>(
      operation: string,
      key: string,
      meta: { readonly contentType?: string | undefined; readonly metadata: Readonly<Record<string, string>> },
      createOnly: boolean,
      fill: (handle: fs.FileHandle, offset: number) => Effect.Effect<{ readonly size: number; readonly etag: string }, E | StoreError>,
      guard?: () => Promise<void>
    ): Effect.Effect<PutResult & { readonly mtime: number }, E | StoreError> => {
      const tmp = tmpName()
      const reserved = reservedHeaderLength({ key, ...meta })
      return Effect.acquireUseRelease(
        io(operation, key, () => fs.open(tmp, "wx", fileMode)),
        (handle) =>
          Effect.gen(function*() {
            const { size, etag } = yield* fill(handle, PREAMBLE + reserved)
            const mtime = Date.now()
            const header: Header = { key, size, etag, mtime, contentType: meta.contentType, metadata: meta.metadata }
            yield* io(operation, key, async () => {
              await writeFully(handle, encodeHeader(header, reserved), 0)
              if (durable) await handle.sync()
              await handle.close()
              await publish(key, tmp, createOnly, guard)
            })
            return { key, etag, size, mtime, encryption: { mode: "None" as const } }
          }),
        (handle, exit) =>
          Effect.promise(async () => {
            await handle.close().catch(() => undefined)
            if (exit._tag === "Failure") await fs.unlink(tmp).catch(() => undefined)
          })
      )
    }

    /** `ifMatch` with `ifNoneMatch` is a usage error, refused before any request (the same in every driver). */
    const checkConditions = (operation: string, key: string, options: Pick<PutOptions, "ifMatch" | "ifNoneMatch"> | undefined) =>
      refuseConflictingConditions(PROVIDER, operation, key, options)

    /**
     * `ifMatch`: the object in place must still have this etag. Run as the `guard` of `publish`
     * (under the key's lock, right before the rename), or by `remove` under the same lock right
     * before the unlink, so no write of this process comes between the check and the change.
     */
    const matchGuard = (key: string, ifMatch: string) => () =>
      currentEtag(key).then((etag) => {
        if (etag === undefined) throw new PreconditionFailed({ key, reason: "the object does not exist (If-Match)" })
        if (etag !== stripQuotes(ifMatch)) throw new PreconditionFailed({ key, reason: "the object's etag does not match (If-Match): it was replaced" })
      })

    const exists = (key: string) =>
      io("put", key, () => fs.access(objectPath(key).target).then(() => true, (e) => (errCode(e) === "ENOENT" || errCode(e) === "ENOTDIR" ? false : Promise.reject(e))))

    /** Streams a body into a file through the reused buffer, hashing it with MD5 (`etags: "md5"`). */
    const writeBody = <E>(operation: string, key: string, body: Stream.Stream<Uint8Array, E>, contentLength: number | undefined) =>
      (handle: fs.FileHandle, offset: number) =>
        Effect.scoped(Effect.gen(function*() {
          const hash = contentEtags
            ? yield* Effect.acquireRelease(Effect.sync(() => BackgroundHash.make("md5")), (h) => Effect.sync(() => h.dispose()))
            : undefined
          const w = yield* Effect.acquireRelease(
            Effect.sync(() => new BufferedWriter(handle, offset, hash, contentLength)),
            (w) => Effect.sync(() => w.release())
          )
          // Chunk-wise: chunks that fit the buffer are copied without an effect (or a promise) each.
          yield* Stream.runForEachChunk(body, (chunk) => {
            const items = Chunk.toReadonlyArray(chunk)
            let i = 0
            while (i < items.length && w.fits(items[i]!)) w.push(items[i++]!)
            return i === items.length ? Effect.void : io(operation, key, async () => {
              for (; i < items.length; i++) await w.write(items[i]!)
            })
          })
          yield* io(operation, key, () => w.flush())
          if (contentLength !== undefined && w.written !== contentLength) {
            return yield* Effect.fail(badRequest(operation, key, "IncompleteBody", `expected ${contentLength} bytes, got ${w.written}`))
          }
          const etag = hash === undefined
            ? crypto.randomBytes(16).toString("hex")
            : (yield* io(operation, key, () => hash.digest())).toString("hex")
          return { size: w.written, etag }
        }))

    // ---- reading -----------------------------------------------------------------------------

    /** Reads and checks the header of an open object file. */
    const readHeader = async (handle: fs.FileHandle, key: string): Promise<{ readonly header: Header; readonly dataOffset: number }> => {
      const corrupt = () =>
        new ProviderError({ provider: PROVIDER, operation: "read", key, code: "CorruptObject", detail: "not a readable objcrypt-fs object file" })
      const first = Buffer.allocUnsafe(HEAD_READ)
      const n = await readFully(handle, first, 0)
      const len = headerLength(first.subarray(0, n))
      if (len === undefined || n < PREAMBLE) throw corrupt()
      let json: Buffer
      if (PREAMBLE + len <= n) {
        json = first.subarray(PREAMBLE, PREAMBLE + len)
      } else {
        json = Buffer.allocUnsafe(len)
        if ((await readFully(handle, json, PREAMBLE)) !== len) throw corrupt()
      }
      const header = decodeHeader(json)
      if (header === undefined) throw corrupt()
      return { header, dataOffset: PREAMBLE + len }
    }

    const openObject = (operation: string, key: string) =>
      io(operation, key, () =>
        fs.open(objectPath(key).target, "r").catch((e) => {
          throw errCode(e) === "ENOENT" || errCode(e) === "ENOTDIR" ? new ObjectNotFound({ key }) : e
        }))

    /** The etag of the object now at `key`, `undefined` when there is none. */
    const currentEtag = async (key: string): Promise<string | undefined> => {
      let handle: fs.FileHandle
      try {
        handle = await fs.open(objectPath(key).target, "r")
      } catch (e) {
        if (errCode(e) === "ENOENT" || errCode(e) === "ENOTDIR") return undefined
        throw e
      }
      try {
        return (await readHeader(handle, key)).header.etag
      } finally {
        await handle.close()
      }
    }

    const toInfo = (key: string, h: Header): ObjectInfo => ({
      key,
      size: h.size,
      etag: h.etag,
      lastModified: new Date(h.mtime),
      contentType: h.contentType,
      metadata: h.metadata,
      encryption: { mode: "None" }
    })

    /** A read found fewer bytes than the object's header promises. */
    const shortObject = (key: string) =>
      new ProviderError({ provider: PROVIDER, operation: "get", key, code: "CorruptObject", detail: "object file shorter than its header says" })

    const readRange = (handle: fs.FileHandle, key: string, from: number, to: number, borrowed: boolean): Stream.Stream<Uint8Array, StoreError> => {
      if (borrowed && to - from > READ_CHUNK) return readBorrowed(handle, key, from, to)
      const chunks = Stream.unfoldEffect(from, (pos) =>
        pos >= to
          ? Effect.succeed(Option.none())
          : io("get", key, async () => {
            const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, to - pos))
            const n = await readFully(handle, buf, pos)
            if (n === 0) {
              throw shortObject(key)
            }
            return Option.some([buf.subarray(0, n) as Uint8Array, pos + n] as const)
          }))
      // Read-ahead: the next chunk is read while the consumer decrypts and sends this one. A range
      // of one read has nothing to read ahead, and the buffer's fiber and queue cost about as much
      // CPU as serving a small object (measured: 2× the allocations of the read alone).
      return to - from <= READ_CHUNK ? chunks : chunks.pipe(Stream.buffer({ capacity: 2 }))
    }

    /**
     * A range read for a caller that is done with each chunk when it pulls the next
     * (`GetOptions.borrowed`): two buffers, reused. The next chunk is read into the other buffer
     * while the caller works on this one; the read after it starts only when the caller pulls
     * again, into the buffer it has just finished with. A fresh 1 MiB buffer per read costs its page
     * faults, its unmapping and a share of a full GC each (measured on the gateway's GET: the
     * reads' buffers were half of the bytes it allocated).
     */
    const readBorrowed = (handle: fs.FileHandle, key: string, from: number, to: number): Stream.Stream<Uint8Array, StoreError> =>
      Stream.suspend(() => {
        const buffers = [Buffer.allocUnsafe(READ_CHUNK), Buffer.allocUnsafe(READ_CHUNK)]
        let pos = from
        let turn = 0
        const start = (): Promise<Uint8Array> | undefined => {
          if (pos >= to) return undefined
          const at = pos
          const len = Math.min(READ_CHUNK, to - at)
          const buf = buffers[turn++ % 2]!.subarray(0, len)
          pos += len
          const read = readFully(handle, buf, at).then((n) => {
            if (n !== len) {
              throw shortObject(key)
            }
            return buf as Uint8Array
          })
          // A read ahead that nobody pulls (the caller stopped early) must not be an unhandled rejection.
          read.catch(() => undefined)
          return read
        }
        let next = start()
        return Stream.repeatEffectOption(Effect.suspend(() => {
          const pending = next
          if (pending === undefined) return Effect.fail(Option.none())
          return io("get", key, () => pending).pipe(
            Effect.mapError(Option.some),
            Effect.map((chunk) => {
              next = start()
              return chunk
            })
          )
        }))
      })

    /** Header of an object file for a listing; `undefined` when it vanished or is not ours. */
    const listedAt = async (file: string, key: string): Promise<ListedObject | undefined> => {
      let handle: fs.FileHandle
      try {
        handle = await fs.open(file, "r")
      } catch (e) {
        if (errCode(e) === "ENOENT" || errCode(e) === "ENOTDIR") return undefined
        throw e
      }
      try {
        const { header } = await readHeader(handle, key)
        return { key, size: header.size, etag: header.etag, lastModified: new Date(header.mtime) }
      } catch (e) {
        if ((e as { _tag?: string })._tag === "ProviderError") return undefined
        throw e
      } finally {
        await handle.close()
      }
    }

    // ---- multipart ---------------------------------------------------------------------------

    const uploadDir = (upload: MultipartUpload) => path.join(uploadsDir, upload.uploadId)

    const loadUpload = (operation: string, upload: MultipartUpload) =>
      Effect.suspend(() =>
        !UPLOAD_ID.test(upload.uploadId)
          ? Effect.fail(noSuchUpload(upload.key))
          : io(operation, upload.key, async () => {
            let text: string
            try {
              text = await fs.readFile(path.join(uploadDir(upload), "upload.json"), "utf8")
            } catch (e) {
              if (errCode(e) === "ENOENT" || errCode(e) === "ENOTDIR") throw noSuchUpload(upload.key)
              throw e
            }
            const m = JSON.parse(text) as UploadManifest
            if (m.key !== upload.key) throw noSuchUpload(upload.key)
            return m
          })
      )

    const partFile = (upload: MultipartUpload, partNumber: number) => path.join(uploadDir(upload), `part-${partNumber}`)

    // ---- the service -------------------------------------------------------------------------

    const put = <E = never>(key: string, body: Stream.Stream<Uint8Array, E>, options?: PutOptions) =>
      Effect.gen(function*() {
        yield* checkKey(key)
        yield* rejectSse(options?.sse)
        yield* checkMetadata("put", key, options?.metadata)
        yield* checkConditions("put", key, options)
        const createOnly = options?.ifNoneMatch === "*"
        if (createOnly && (yield* exists(key))) {
          return yield* Effect.fail(new PreconditionFailed({ key, reason: "the object exists (If-None-Match: *)" }))
        }
        const guard = options?.ifMatch === undefined ? undefined : matchGuard(key, options.ifMatch)
        // Checked early too, so a stale etag fails before the body is written out.
        if (guard !== undefined) yield* io("put", key, guard)
        const r = yield* writeObject(
          "put",
          key,
          { contentType: options?.contentType, metadata: { ...options?.metadata } },
          createOnly,
          writeBody("put", key, body, options?.contentLength),
          guard
        )
        return { key: r.key, etag: r.etag, size: r.size, encryption: r.encryption } satisfies PutResult
      })

    const get = (key: string, options?: GetOptions): Effect.Effect<StoredObject, StoreError, Scope.Scope> =>
      Effect.gen(function*() {
        yield* checkKey(key)
        yield* rejectSseRead("get", key, options?.sse)
        const handle = yield* Effect.acquireRelease(openObject("get", key), (h) => Effect.promise(() => h.close().catch(() => undefined)))
        const { dataOffset, header } = yield* io("get", key, () => readHeader(handle, key))
        const info = toInfo(key, header)
        if (options?.range === undefined) {
          return { info, body: readRange(handle, key, dataOffset, dataOffset + header.size, options?.borrowed === true) }
        }
        const r = resolveRange(options.range, header.size)
        if (Option.isNone(r)) {
          return yield* Effect.fail(new InvalidRange({ key, range: formatRange(options.range), size: header.size }))
        }
        const { end, start } = r.value
        return { info, body: readRange(handle, key, dataOffset + start, dataOffset + end, options?.borrowed === true), range: { start, end } }
      })

    const head = (key: string, options?: GetOptions): Effect.Effect<ObjectInfo, StoreError> =>
      Effect.gen(function*() {
        yield* checkKey(key)
        yield* rejectSseRead("head", key, options?.sse)
        return yield* Effect.acquireUseRelease(
          openObject("head", key),
          (handle) => io("head", key, () => readHeader(handle, key)),
          (h) => Effect.promise(() => h.close().catch(() => undefined))
        ).pipe(Effect.map(({ header }) => toInfo(key, header)))
      })

    /**
     * `ifMatch` is checked by `matchGuard` under the key's lock, right before the unlink (as `put`'s
     * before its rename): no write or remove of this process comes between the check and the unlink.
     */
    const remove = (key: string, options?: RemoveOptions): Effect.Effect<void, StoreError> =>
      Effect.gen(function*() {
        yield* checkKey(key)
        const { target, targetDir } = objectPath(key)
        const guard = options?.ifMatch === undefined ? undefined : matchGuard(key, options.ifMatch)
        yield* io("remove", key, async () => {
          try {
            await withPathLock(target, async () => {
              if (guard !== undefined) await guard()
              await fs.unlink(target)
            })
          } catch (e) {
            if (errCode(e) === "ENOENT" || errCode(e) === "ENOTDIR") return
            throw e
          }
          if (durable) await fsyncDir(targetDir).catch(() => undefined)
          // Prune directories left empty, so `/`-delimited listings need not look inside them.
          for (let d = targetDir; d !== root && d.startsWith(root + path.sep); d = path.dirname(d)) {
            try {
              await fs.rmdir(d)
            } catch {
              break
            }
          }
        })
      })

    const list = (options?: ListOptions): Effect.Effect<ListPage, StoreError> =>
      Effect.gen(function*() {
        const maxKeys = Math.min(options?.maxKeys ?? 1000, 1000)
        const prefix = options?.prefix ?? ""
        const empty: ListPage = { objects: [], commonPrefixes: [] }
        if (maxKeys <= 0 || prefix.includes("\0") || !(prefix as string & { isWellFormed(): boolean }).isWellFormed()) return empty
        let after = options?.startAfter
        let afterPrefix: string | undefined
        if (options?.continuationToken !== undefined) {
          const t = decodeToken(options.continuationToken)
          if (t === undefined) return yield* Effect.fail(badRequest("list", undefined, "InvalidArgument", "the continuation token is not valid"))
          after = t.value
          if (t.isPrefix) afterPrefix = t.value
        } else if (after !== undefined && isGroupMarker(prefix, options?.delimiter, after)) {
          // startAfter that is a group itself (ListObjects v1's NextMarker): the whole group is passed.
          afterPrefix = after
        }
        const items = yield* io("list", undefined, () =>
          walk(cache, root, { prefix, delimiter: options?.delimiter, after, afterPrefix, limit: maxKeys + 1 }))
        const page = items.slice(0, maxKeys)
        const objects = yield* io("list", undefined, () =>
          mapLimit(
            page.filter((i): i is Extract<WalkItem, { _tag: "Object" }> => i._tag === "Object"),
            LIST_CONCURRENCY,
            (i) => listedAt(i.file, i.key)
          ))
        const last = page[page.length - 1]
        return {
          objects: objects.filter((o): o is ListedObject => o !== undefined),
          commonPrefixes: page.flatMap((i) => (i._tag === "Prefix" ? [i.prefix] : [])),
          continuationToken: items.length > maxKeys && last !== undefined ? encodeToken(last) : undefined
        } satisfies ListPage
      })

    const copy = (source: string, destination: string, options?: CopyOptions): Effect.Effect<PutResult, StoreError | UnsupportedMode> =>
      Effect.gen(function*() {
        yield* checkKey(source)
        yield* checkKey(destination)
        yield* rejectSse(options?.sse)
        yield* rejectSse(options?.sourceSse)
        yield* checkMetadata("copy", destination, options?.metadata)
        return yield* Effect.acquireUseRelease(
          openObject("copy", source),
          (src) =>
            Effect.gen(function*() {
              const { dataOffset, header } = yield* io("copy", source, () => readHeader(src, source))
              // The open file is one version (writes replace the file, never change it): checked
              // here, it is the version copied.
              const expected = options?.ifSourceMatch === undefined ? undefined : stripQuotes(options.ifSourceMatch)
              if (expected !== undefined && header.etag !== expected) {
                return yield* Effect.fail(sourceChanged(source))
              }
              const meta = { contentType: options?.contentType ?? header.contentType, metadata: { ...(options?.metadata ?? header.metadata) } }
              const r = yield* writeObject(
                "copy",
                destination,
                meta,
                false,
                (dst, offset) =>
                  io("copy", destination, async () => {
                    // `etags: "random"`: a copy is a new stored version too, with its own etag.
                    const hash = contentEtags ? crypto.createHash("md5") : undefined
                    const size = await copyRange(src, dataOffset, header.size, dst, offset, hash)
                    return { size, etag: hash === undefined ? crypto.randomBytes(16).toString("hex") : hash.digest("hex") }
                  }),
                // Onto the source itself: the object replaced must still be that version when the
                // copy takes its place (checked under the key's lock, with the rename).
                expected !== undefined && objectPath(source).target === objectPath(destination).target
                  ? () => currentEtag(source).then((etag) => {
                    if (etag === undefined) throw new ObjectNotFound({ key: source })
                    if (etag !== expected) throw sourceChanged(source)
                  })
                  : undefined
              )
              return { key: r.key, etag: r.etag, size: r.size, encryption: r.encryption } satisfies PutResult
            }),
          (h) => Effect.promise(() => h.close().catch(() => undefined))
        )
      })

    const createMultipart = (key: string, options?: PutOptions): Effect.Effect<MultipartUpload, StoreError | UnsupportedMode> =>
      Effect.gen(function*() {
        yield* checkKey(key)
        yield* rejectSse(options?.sse)
        yield* checkMetadata("createMultipart", key, options?.metadata)
        yield* checkConditions("createMultipart", key, options)
        const uploadId = crypto.randomBytes(16).toString("hex")
        const manifest: UploadManifest = {
          key,
          contentType: options?.contentType,
          metadata: { ...options?.metadata },
          ifNoneMatch: options?.ifNoneMatch === "*",
          ...(options?.ifMatch === undefined ? {} : { ifMatch: stripQuotes(options.ifMatch) })
        }
        yield* io("createMultipart", key, async () => {
          // Built aside and renamed in whole, so an upload directory always has its manifest.
          const staged = tmpName()
          await fs.mkdir(staged, { mode: dirMode })
          try {
            const h = await fs.open(path.join(staged, "upload.json"), "wx", fileMode)
            try {
              await h.writeFile(JSON.stringify(manifest))
              if (durable) await h.sync()
            } finally {
              await h.close()
            }
            await fs.rename(staged, path.join(uploadsDir, uploadId))
            if (durable) await fsyncDir(uploadsDir)
          } catch (e) {
            await fs.rm(staged, { recursive: true, force: true }).catch(() => undefined)
            throw e
          }
        })
        return { key, uploadId }
      })

    const uploadPart = <E = never>(
      upload: MultipartUpload,
      partNumber: number,
      body: Stream.Stream<Uint8Array, E>,
      options?: { readonly contentLength?: number | undefined; readonly sse?: ServerSideEncryption | undefined }
    ): Effect.Effect<CompletedPart, StoreError | E> =>
      Effect.gen(function*() {
        yield* rejectSseRead("uploadPart", upload.key, options?.sse)
        if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > MAX_PART_NUMBER) {
          return yield* Effect.fail(badRequest("uploadPart", upload.key, "InvalidArgument", `part number must be 1 to ${MAX_PART_NUMBER}`))
        }
        yield* loadUpload("uploadPart", upload)
        // A part file has the object file format, so its etag and size are published with it.
        const tmp = path.join(uploadDir(upload), `part-${partNumber}.${crypto.randomBytes(8).toString("hex")}.tmp`)
        const meta = { key: upload.key, metadata: {} }
        const reserved = reservedHeaderLength(meta)
        return yield* Effect.acquireUseRelease(
          io("uploadPart", upload.key, () =>
            fs.open(tmp, "wx", fileMode).catch((e) => {
              throw errCode(e) === "ENOENT" ? noSuchUpload(upload.key) : e
            })),
          (handle) =>
            Effect.gen(function*() {
              const { etag, size } = yield* writeBody("uploadPart", upload.key, body, options?.contentLength)(handle, PREAMBLE + reserved)
              if (size > MAX_PART_SIZE) {
                return yield* Effect.fail(badRequest("uploadPart", upload.key, "EntityTooLarge", `a part is at most ${MAX_PART_SIZE} bytes`))
              }
              yield* io("uploadPart", upload.key, async () => {
                await writeFully(handle, encodeHeader({ ...meta, size, etag, mtime: Date.now() }, reserved), 0)
                if (durable) await handle.sync()
                await handle.close()
                await fs.rename(tmp, partFile(upload, partNumber)).catch((e) => {
                  throw errCode(e) === "ENOENT" ? noSuchUpload(upload.key) : e
                })
              })
              return { partNumber, etag, size } satisfies CompletedPart
            }),
          (handle, exit) =>
            Effect.promise(async () => {
              await handle.close().catch(() => undefined)
              if (exit._tag === "Failure") await fs.unlink(tmp).catch(() => undefined)
            })
        )
      })

    const completeMultipart = (
      upload: MultipartUpload,
      parts: ReadonlyArray<CompletedPart>,
      options?: CompleteOptions
    ): Effect.Effect<PutResult, StoreError> =>
      Effect.scoped(Effect.gen(function*() {
        const key = upload.key
        yield* rejectSseRead("completeMultipart", key, options?.sse)
        yield* checkConditions("completeMultipart", key, options)
        const manifest = yield* loadUpload("completeMultipart", upload)
        // The conditions given at creation and now must both hold.
        const conditions = yield* completionConditions(PROVIDER, key, {
          ifNoneMatch: manifest.ifNoneMatch ? "*" : undefined,
          ifMatch: typeof manifest.ifMatch === "string" ? manifest.ifMatch : undefined
        }, options)
        if (parts.length === 0) return yield* Effect.fail(badRequest("completeMultipart", key, "InvalidPart", "no parts given"))
        for (let i = 1; i < parts.length; i++) {
          if (parts[i]!.partNumber <= parts[i - 1]!.partNumber) {
            return yield* Effect.fail(badRequest("completeMultipart", key, "InvalidPartOrder", "parts must be listed in ascending part-number order"))
          }
        }
        // Open every part first: the upload's files stay readable even if it is aborted meanwhile.
        const opened = yield* Effect.forEach(parts, (p) =>
          Effect.acquireRelease(
            io("completeMultipart", key, async () => {
              let handle: fs.FileHandle
              try {
                handle = await fs.open(partFile(upload, p.partNumber), "r")
              } catch (e) {
                if (errCode(e) === "ENOENT") throw badRequest("completeMultipart", key, "InvalidPart", `part ${p.partNumber} was not uploaded`)
                throw e
              }
              try {
                const { dataOffset, header } = await readHeader(handle, key)
                if (header.etag !== stripQuotes(p.etag)) {
                  throw badRequest("completeMultipart", key, "InvalidPart", `part ${p.partNumber} has another etag`)
                }
                return { handle, dataOffset, header }
              } catch (e) {
                await handle.close()
                throw e
              }
            }),
            (o) => Effect.promise(() => o.handle.close().catch(() => undefined))
          ))
        for (let i = 0; i < opened.length - 1; i++) {
          if (opened[i]!.header.size < minPartSize) {
            return yield* Effect.fail(
              badRequest("completeMultipart", key, "EntityTooSmall", `part ${parts[i]!.partNumber} is smaller than ${minPartSize} bytes`)
            )
          }
        }
        const md5s = Buffer.concat(opened.map((o) => Buffer.from(o.header.etag, "hex")))
        const etag = `${crypto.createHash("md5").update(md5s).digest("hex")}-${opened.length}`
        const r = yield* writeObject(
          "completeMultipart",
          key,
          { contentType: manifest.contentType, metadata: manifest.metadata },
          conditions.ifNoneMatch === "*",
          (dst, offset) =>
            io("completeMultipart", key, async () => {
              let at = offset
              for (const o of opened) at += await copyRange(o.handle, o.dataOffset, o.header.size, dst, at)
              return { size: at - offset, etag }
            }),
          conditions.ifMatch === undefined ? undefined : matchGuard(key, conditions.ifMatch)
        )
        yield* io("completeMultipart", key, () => fs.rm(uploadDir(upload), { recursive: true, force: true })).pipe(Effect.ignore)
        return { key: r.key, etag: r.etag, size: r.size, encryption: r.encryption } satisfies PutResult
      }))

    const abortMultipart = (upload: MultipartUpload): Effect.Effect<void, StoreError> =>
      Effect.suspend(() =>
        !UPLOAD_ID.test(upload.uploadId)
          ? Effect.fail(noSuchUpload(upload.key))
          : Effect.gen(function*() {
            yield* loadUpload("abortMultipart", upload)
            yield* io("abortMultipart", upload.key, async () => {
              // Moved out first, so a concurrent uploadPart fails instead of writing into it.
              const moved = tmpName()
              try {
                await fs.rename(uploadDir(upload), moved)
              } catch (e) {
                if (errCode(e) === "ENOENT") throw noSuchUpload(upload.key)
                throw e
              }
              await fs.rm(moved, { recursive: true, force: true })
            })
          })
      )

    return FsObjectStore.of({
      provider: "fs",
      bucket: config.bucket ?? path.basename(root),
      location: url.pathToFileURL(root).href,
      root,
      nativeModes,
      limits: { maxMetadataBytes, minPartSize, maxPartSize: MAX_PART_SIZE, maxParts: MAX_PART_NUMBER },
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
 * A layer providing both `FsObjectStore` and the core `ObjectStore`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (config: FsConfig): Layer.Layer<FsObjectStore | ObjectStore, StoreError> =>
  Layer.effectContext(Effect.map(make(config), (s) => Context.make(FsObjectStore, s).pipe(Context.add(ObjectStore, s))))

/**
 * As {@link layer}, reading its configuration, e.g.
 * `layerConfig({ root: Config.string("ROOT") })` under `ConfigProvider.nested("OBJCRYPT_FS")`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<FsConfig>
): Layer.Layer<FsObjectStore | ObjectStore, StoreError | ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(config), layer))

// ---- helpers ---------------------------------------------------------------------------------

/** Copies `length` bytes between two files through one reused buffer; returns the bytes copied. */
const copyRange = async (
  src: fs.FileHandle,
  from: number,
  length: number,
  dst: fs.FileHandle,
  to: number,
  hash?: crypto.Hash
): Promise<number> => {
  const buf = Buffer.allocUnsafe(Math.min(COPY_BUFFER, Math.max(length, 1)))
  let done = 0
  while (done < length) {
    const n = await readFully(src, buf.subarray(0, Math.min(buf.length, length - done)), from + done)
    if (n === 0) throw new ProviderError({ provider: PROVIDER, operation: "copy", code: "CorruptObject", detail: "source shorter than its header says" })
    const chunk = buf.subarray(0, n)
    hash?.update(chunk)
    await writeFully(dst, chunk, to + done)
    done += n
  }
  return done
}

const mapLimit = async <A, B>(items: ReadonlyArray<A>, limit: number, f: (a: A) => Promise<B>): Promise<Array<B>> => {
  const out = new Array<B>(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await f(items[i]!)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return out
}

/** Continuation tokens: base64url of `k` + the last key, or `p` + the last common prefix. */
const encodeToken = (item: WalkItem): string =>
  Buffer.from(item._tag === "Object" ? "k" + item.key : "p" + item.prefix, "utf8").toString("base64url")

const decodeToken = (token: string): { readonly value: string; readonly isPrefix: boolean } | undefined => {
  if (!/^[A-Za-z0-9_-]+$/.test(token)) return undefined
  const s = Buffer.from(token, "base64url").toString("utf8")
  if ((s[0] !== "k" && s[0] !== "p") || s.length < 2 || s.includes("\uFFFD")) return undefined
  return { value: s.slice(1), isPrefix: s[0] === "p" }
}
