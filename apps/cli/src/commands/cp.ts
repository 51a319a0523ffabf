/**
 * `objcrypt cp SRC DST`: files and trees between the local disk and stores (and between stores),
 * in any mode, with a progress bar. Uploads are atomic: an interrupted or failed copy leaves no
 * partial object and no multipart upload behind; downloads are written to a temporary file renamed
 * into place.
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import { nameOf as modeName } from "@objcrypt/core/EncryptionMode"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import { Chunk, Effect, Option, Stream } from "effect"
import * as path from "node:path"
import { LocalFileError, UsageError } from "../CliError.js"
import * as Formats from "../Formats.js"
import * as LocalFiles from "../LocalFiles.js"
import * as Progress from "../Progress.js"
import type * as Session from "../Session.js"
import * as StoreUrl from "../StoreUrl.js"
import * as Transfer from "../Transfer.js"
import { common, json, modeFlags, modeOptions, type ModeOptionValues, withSession } from "./common.js"
import { listPrefix } from "./ls.js"
import { customerKeyRef, notFoundAs } from "./shared.js"

type StoreLoc = Extract<StoreUrl.Location, { _tag: "Store" }>

interface Job {
  readonly source: string
  readonly destination: string
  /** Planned bytes (the stored size for downloads). */
  readonly size: number
  readonly run: (progress: Progress.Progress) => Effect.Effect<Record<string, unknown>, unknown>
}

const counted = <E, R>(body: Stream.Stream<Uint8Array, E, R>, progress: Progress.Progress) =>
  Stream.mapChunks(body, (chunk) => {
    let n = 0
    for (const c of chunk) n += c.length
    progress.advance(n)
    return chunk
  })

const safeRelative = (rel: string): Effect.Effect<string, UsageError> =>
  rel === "" || rel.split("/").some((seg) => seg === ".." || seg === ".") || path.isAbsolute(rel) || rel.includes("\0")
    ? Effect.fail(new UsageError({ detail: `refusing to write object key ${JSON.stringify(rel)} outside the destination directory` }))
    : Effect.succeed(rel)

/**
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make(
  "cp",
  {
    ...common,
    ...modeOptions,
    json,
    quiet: Options.boolean("quiet").pipe(Options.withAlias("q"), Options.withDescription("no progress output")),
    recursive: Options.boolean("recursive").pipe(Options.withAlias("r"), Options.withDescription("copy a directory or a prefix")),
    parallel: Options.integer("parallel").pipe(
      Options.withDescription("files and parts in flight at once"),
      Options.withDefault(4)
    ),
    partSize: Options.text("part-size").pipe(
      Options.withDescription("multipart part size, e.g. 8MiB (every mode: the driver's native multipart for none and sse-*)"),
      Options.optional
    ),
    format: Options.choice("format", Formats.formatNames).pipe(
      Options.withDescription("client-side format: native, s3ec-v2 or s3ec-v3 (s3:// only), azure-v2 (az:// only, cse-c); default: the endpoint's, else native"),
      Options.optional
    ),
    source: Args.text({ name: "SRC" }),
    destination: Args.text({ name: "DST" })
  },
  (o) =>
    withSession(o, (s) =>
      Effect.gen(function*() {
        if (o.parallel < 1 || o.parallel > 64) return yield* new UsageError({ detail: "--parallel must be between 1 and 64" })
        const partSize = Option.isNone(o.partSize) ? undefined : Option.getOrUndefined(LocalFiles.parseSize(o.partSize.value))
        if (Option.isSome(o.partSize) && partSize === undefined) {
          return yield* new UsageError({ detail: `bad --part-size ${JSON.stringify(o.partSize.value)} (e.g. 8MiB)` })
        }
        const src = yield* s.locate(o.source)
        const dst = yield* s.locate(o.destination)
        if (src._tag === "LocalFile" && dst._tag === "LocalFile") {
          return yield* new UsageError({ detail: "one of SRC and DST must be a store URL (local://, file://, s3://, ENDPOINT:)" })
        }
        const jobs: ReadonlyArray<Job> = dst._tag === "Store"
          ? yield* uploads(s, o, src, dst, partSize)
          : yield* downloads(s, o, src as StoreLoc, dst.path)
        const progress = Progress.make(
          Progress.styleFor({ json: o.json, quiet: o.quiet }, process.stderr.isTTY === true),
          dst._tag === "Store" ? (src._tag === "Store" ? "copy" : "upload") : "download"
        )
        progress.plan(jobs.length, jobs.reduce((n, j) => n + j.size, 0))
        yield* Progress.guard(
          progress,
          Effect.forEach(
            jobs,
            (job) =>
              Effect.suspend(() => {
                progress.fileStart(job.source, job.destination, job.size)
                return job.run(progress)
              }).pipe(
                Effect.tap((detail) => Effect.sync(() => progress.fileDone(job.source, job.destination, (detail.bytes as number) ?? job.size, detail))),
                Effect.tapError((e) => Effect.sync(() => progress.fileFailed(job.source, job.destination, String((e as Error)?.message ?? e))))
              ),
            { concurrency: o.parallel, discard: true }
          )
        )
        progress.finish()
      }))
).pipe(Command.withDescription("copy files or trees to, from or between stores, encrypting with --mode"))

interface CpFlags extends ModeOptionValues {
  readonly recursive: boolean
  readonly parallel: number
  readonly format: Option.Option<Formats.FormatName>
}

const uploads = (
  s: Session.Session,
  o: CpFlags & { readonly key: Option.Option<string> },
  src: StoreUrl.Location,
  dst: StoreLoc,
  partSize: number | undefined
) =>
  Effect.gen(function*() {
    const flags = yield* modeFlags(o)
    // Checked against the matrix before anything is read or sent.
    const mode = yield* s.modeFor(dst.store, flags)
    // `--format`, else the endpoint's default format for client-side writes.
    const flagFormat = Option.getOrUndefined(o.format)
    const format = flagFormat ?? (mode._tag === "CseC" || mode._tag === "CseKms" ? dst.store.format : undefined)
    if (format !== undefined) {
      yield* Formats.check(format, dst.store, StoreUrl.displayKey(dst, dst.key), mode, { fromEndpoint: flagFormat === undefined })
    }
    const store = yield* s.open(dst.store, { partSize, concurrency: o.parallel })
    if (partSize !== undefined && dst.store._tag !== "Fs" && (partSize < store.limits.minPartSize || partSize > store.limits.maxPartSize)) {
      return yield* new UsageError({
        detail: `--part-size must be between ${Progress.formatBytes(store.limits.minPartSize)} and ${Progress.formatBytes(store.limits.maxPartSize)} for ${store.location}`
      })
    }
    const putOptions = { partSize, concurrency: o.parallel, format }
    const formatOf = (r: { readonly clientSide?: unknown }) => (r.clientSide === undefined ? {} : { format: format ?? "native" })
    const target = (key: string) => StoreUrl.displayKey(dst, key)
    if (src._tag === "Store") {
      // Store to store: decrypt from the source, encrypt for the destination.
      const from = yield* s.open(src.store)
      const listed = o.recursive
        ? yield* collectAll(from, listPrefix(src.key))
        : [{ key: src.key, size: (yield* from.head(src.key).pipe(notFoundAs(StoreUrl.displayKey(src, src.key)))).size }]
      const base = o.recursive ? listPrefix(src.key) : ""
      const destKey = (k: string) =>
        o.recursive ? listPrefix(dst.key) + k.slice(base.length) : dst.key === "" || dst.key.endsWith("/") ? dst.key + path.posix.basename(k) : dst.key
      return listed.map((x): Job => ({
        source: StoreUrl.displayKey(src, x.key),
        destination: target(destKey(x.key)),
        size: x.size,
        run: (progress) =>
          Effect.scoped(Effect.gen(function*() {
            const opened = yield* Transfer.get(s, from, x.key)
            progress.retotal(opened.size - x.size)
            const r = yield* Transfer.put(s, store, destKey(x.key), counted(opened.body, progress), mode, { ...putOptions, contentLength: opened.size, contentType: opened.info.contentType })
            return { bytes: opened.size, stored: r.size, mode: modeName(r.mode), ...formatOf(r), etag: r.etag }
          }))
      }))
    }
    const stat = yield* LocalFiles.statOption(src.path)
    if (Option.isNone(stat)) {
      return yield* new LocalFileError({ path: src.path, reason: "NotFound", detail: "no such file or directory" })
    }
    const files: ReadonlyArray<LocalFiles.FileEntry> = stat.value.isDirectory()
      ? o.recursive
        ? yield* LocalFiles.walk(src.path)
        : yield* new UsageError({ detail: `${src.path} is a directory (use -r)` })
      : [{ path: src.path, relative: path.basename(src.path), size: stat.value.size }]
    const destKey = (f: LocalFiles.FileEntry) =>
      stat.value.isDirectory()
        ? listPrefix(dst.key) + f.relative
        : dst.key === "" || dst.key.endsWith("/")
        ? dst.key + f.relative
        : dst.key
    // The native format with a known length and no client-side parts seals each chunk as it
    // arrives, so the file is read into reused buffers (nothing else keeps a chunk).
    const borrow = (mode._tag === "CseC" || mode._tag === "CseKms") && (format ?? "native") === "native" && partSize === undefined
    return files.map((f): Job => ({
      source: f.path,
      destination: target(destKey(f)),
      size: f.size,
      run: (progress) =>
        Transfer.put(
          s,
          store,
          destKey(f),
          counted(borrow ? LocalFiles.readBorrowed(f.path) : LocalFiles.read(f.path), progress),
          mode,
          { ...putOptions, contentLength: f.size, borrowedBody: borrow }
        ).pipe(
          Effect.map((r) => ({ bytes: f.size, stored: r.size, mode: modeName(r.mode), ...formatOf(r), etag: r.etag }))
        )
    }))
  })

const collectAll = (store: ObjectStore.ObjectStore["Type"], prefix: string) =>
  Effect.map(Stream.runCollect(ObjectStore.listAll(store, { prefix })), (c) => Chunk.toReadonlyArray(c))

const downloads = (
  s: Session.Session,
  o: CpFlags & { readonly key: Option.Option<string> },
  src: StoreLoc,
  dest: string
) =>
  Effect.gen(function*() {
    if (Option.isSome(o.mode) || o.recipient.length > 0 || Option.isSome(o.kmsKeyId) || Option.isSome(o.context) || Option.isSome(o.format)) {
      return yield* new UsageError({
        detail: "--mode, --format and the key flags apply to uploads; downloads detect the mode and format (use --key only for sse-c objects)"
      })
    }
    const from = yield* s.open(src.store)
    const customerKey = yield* customerKeyRef(o.key)
    if (customerKey !== undefined) yield* s.keys
    const destStat = yield* LocalFiles.statOption(dest)
    const destIsDir = (Option.isSome(destStat) && destStat.value.isDirectory()) || dest.endsWith("/") || dest.endsWith(path.sep)
    const objects = o.recursive
      ? yield* collectAll(from, listPrefix(src.key))
      : [{ key: src.key, size: (yield* Transfer.head(s, from, src.key, customerKey).pipe(notFoundAs(StoreUrl.displayKey(src, src.key)))).size }]
    if (o.recursive && objects.length === 0) {
      return yield* new LocalFileError({ path: StoreUrl.displayKey(src, listPrefix(src.key)), reason: "NotFound", detail: "no objects under this prefix" })
    }
    if (o.recursive && Option.isSome(destStat) && !destStat.value.isDirectory()) {
      return yield* new UsageError({ detail: `${dest} exists and is not a directory` })
    }
    const base = listPrefix(src.key)
    return yield* Effect.forEach(objects, (x) =>
      Effect.gen(function*() {
        const file = o.recursive
          ? path.join(dest, ...(yield* safeRelative(x.key.slice(base.length))).split("/"))
          : destIsDir
          ? path.join(dest, yield* safeRelative(path.posix.basename(x.key)))
          : dest
        return {
          source: StoreUrl.displayKey(src, x.key),
          destination: file,
          size: x.size,
          run: (progress: Progress.Progress) =>
            Effect.scoped(Effect.gen(function*() {
              const opened = yield* Transfer.get(s, from, x.key, { customerKey })
              progress.retotal(opened.size - x.size)
              const bytes = yield* LocalFiles.writeAtomic(file, counted(opened.body, progress))
              return { bytes, mode: opened.mode === "Unknown" ? "unknown" : modeName(opened.mode) }
            }))
        } satisfies Job
      }))
  })
