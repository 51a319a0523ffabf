/**
 * Local files for transfers: walking a tree, reading a file as a stream of large chunks, and
 * writing one atomically (a temporary file renamed into place, removed on failure or interrupt,
 * so an interrupted download never leaves a partial file).
 *
 * @since 0.1.0
 */
import { Effect, Option, Stream } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import * as path from "node:path"
import { LocalFileError } from "./CliError.js"

/**
 * Read size: large reads keep per-chunk overhead (allocation, stream steps) negligible.
 *
 * @since 0.1.0
 * @category constants
 */
export const CHUNK_SIZE = 1024 * 1024

const fail = (p: string, e: unknown, what: string): LocalFileError => {
  const code = (e as NodeJS.ErrnoException | undefined)?.code
  return new LocalFileError({
    path: p,
    reason: code === "ENOENT" ? "NotFound" : code === "EISDIR" || code === "ENOTDIR" ? "NotAFile" : "Io",
    detail: code === "ENOENT" ? "no such file or directory" : `cannot ${what} (${code ?? "error"})`
  })
}

/**
 * `stat`, or `None` when nothing is there.
 *
 * @since 0.1.0
 * @category files
 */
export const statOption = (p: string): Effect.Effect<Option.Option<fs.Stats>, LocalFileError> =>
  Effect.tryPromise({ try: () => fsp.stat(p), catch: (e) => fail(p, e, "stat") }).pipe(
    Effect.map(Option.some),
    Effect.catchIf((e) => e.reason === "NotFound", () => Effect.succeed(Option.none<fs.Stats>()))
  )

/**
 * A regular file found below a directory.
 *
 * @since 0.1.0
 * @category models
 */
export interface FileEntry {
  readonly path: string
  /** Relative to the walked directory, with `/` separators. */
  readonly relative: string
  readonly size: number
}

/**
 * Every regular file below `dir`, sorted; symbolic links are not followed.
 *
 * @since 0.1.0
 * @category files
 */
export const walk = (dir: string): Effect.Effect<ReadonlyArray<FileEntry>, LocalFileError> =>
  Effect.tryPromise({
    try: async () => {
      const out: Array<FileEntry> = []
      const visit = async (d: string, rel: string): Promise<void> => {
        const entries = await fsp.readdir(d, { withFileTypes: true })
        entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
        for (const e of entries) {
          const p = path.join(d, e.name)
          const r = rel === "" ? e.name : `${rel}/${e.name}`
          if (e.isDirectory()) await visit(p, r)
          else if (e.isFile()) out.push({ path: p, relative: r, size: (await fsp.stat(p)).size })
        }
      }
      await visit(dir, "")
      return out
    },
    catch: (e) => fail(dir, e, "read the directory")
  })

/**
 * A file as a stream of chunks of up to {@link CHUNK_SIZE} bytes (fresh buffers: consumers may
 * keep them), read up to two chunks ahead of the consumer.
 *
 * @since 0.1.0
 * @category files
 */
export const read = (p: string, chunkSize: number = CHUNK_SIZE): Stream.Stream<Uint8Array, LocalFileError> =>
  Stream.unwrapScoped(
    Effect.map(
      Effect.acquireRelease(
        Effect.tryPromise({ try: () => fsp.open(p, "r"), catch: (e) => fail(p, e, "open") }),
        (h) => Effect.promise(() => h.close())
      ),
      (handle) =>
        Stream.repeatEffectOption(
          Effect.tryPromise({
            try: async () => {
              const buf = Buffer.allocUnsafe(chunkSize)
              const { bytesRead } = await handle.read(buf, 0, chunkSize, null)
              return bytesRead === 0 ? undefined : bytesRead === chunkSize ? buf : buf.subarray(0, bytesRead)
            },
            catch: (e) => Option.some(fail(p, e, "read"))
          }).pipe(Effect.flatMap((b) => (b === undefined ? Effect.fail(Option.none()) : Effect.succeed(b as Uint8Array))))
        ).pipe(
          // Read-ahead: the next chunk is read while this one is encrypted and written.
          Stream.buffer({ capacity: 2 })
        )
    )
  )

/** Reads kept in flight ahead of the consumer by {@link readBorrowed}. */
const READ_AHEAD = 2

/**
 * A file as a stream of chunks **borrowed** from a small ring of reused buffers: a chunk is valid
 * only until the consumer pulls the next one (then a later read may overwrite it). For consumers
 * that copy every chunk before pulling again — encryption, whose cipher writes fresh output; see
 * `PutOptions.borrowedBody` — it saves allocating (and the GC collecting) one buffer per read.
 * Reads are sequential and positioned, up to two ahead of the consumer.
 *
 * @since 0.1.0
 * @category files
 */
export const readBorrowed = (p: string, chunkSize: number = CHUNK_SIZE): Stream.Stream<Uint8Array, LocalFileError> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    // In flight at once: the chunk the consumer holds, and READ_AHEAD reads (queued or running)
    // beyond it; the next read goes into the buffer of the chunk the consumer has just let go.
    const ring = Array.from({ length: READ_AHEAD + 2 }, () => Buffer.allocUnsafe(chunkSize))
    let slot = 0
    let position = 0
    let eof = false
    let chain: Promise<unknown> = Promise.resolve()
    const queue: Array<Promise<Uint8Array | undefined>> = []
    const handle = yield* Effect.acquireRelease(
      Effect.tryPromise({ try: () => fsp.open(p, "r"), catch: (e) => fail(p, e, "open") }),
      (h) => Effect.promise(() => chain.then(() => h.close(), () => h.close()))
    )
    const schedule = () => {
      const buf = ring[slot++ % ring.length]!
      const read = chain.then(async () => {
        if (eof) return undefined
        const { bytesRead } = await handle.read(buf, 0, chunkSize, position)
        if (bytesRead === 0) {
          eof = true
          return undefined
        }
        position += bytesRead
        return buf.subarray(0, bytesRead)
      })
      chain = read.catch(() => {
        eof = true
      })
      queue.push(read)
    }
    return Stream.repeatEffectOption(
      Effect.tryPromise({
        try: () => {
          if (queue.length === 0) for (let i = 0; i <= READ_AHEAD; i++) schedule()
          else schedule()
          return queue.shift()!
        },
        catch: (e) => Option.some(fail(p, e, "read"))
      }).pipe(Effect.flatMap((b) => (b === undefined ? Effect.fail(Option.none()) : Effect.succeed(b as Uint8Array))))
    )
  }))

/**
 * Writes a stream to `p` atomically: into a temporary file beside it, fsync'd, then renamed. The
 * temporary file is removed if the stream fails or the fiber is interrupted.
 *
 * @since 0.1.0
 * @category files
 */
export const writeAtomic = <E, R>(
  p: string,
  body: Stream.Stream<Uint8Array, E, R>,
  onChunk?: (n: number) => void
): Effect.Effect<number, E | LocalFileError, R> =>
  Effect.gen(function*() {
    const dir = path.dirname(p)
    yield* Effect.tryPromise({ try: () => fsp.mkdir(dir, { recursive: true }), catch: (e) => fail(dir, e, "create the directory") })
    const tmp = path.join(dir, `.${path.basename(p)}.${crypto.randomBytes(6).toString("hex")}.objcrypt-part`)
    return yield* Effect.acquireUseRelease(
      Effect.tryPromise({ try: () => fsp.open(tmp, "wx", 0o644), catch: (e) => fail(p, e, "create") }),
      (handle) =>
        Effect.gen(function*() {
          let written = 0
          yield* Stream.runForEach(body, (chunk) =>
            Effect.tryPromise({
              try: async () => {
                let off = 0
                while (off < chunk.length) {
                  const { bytesWritten } = await handle.write(chunk, off, chunk.length - off)
                  off += bytesWritten
                }
                written += chunk.length
                onChunk?.(chunk.length)
              },
              catch: (e) => fail(p, e, "write")
            }))
          yield* Effect.tryPromise({ try: () => handle.sync(), catch: (e) => fail(p, e, "sync") })
          yield* Effect.tryPromise({ try: () => fsp.rename(tmp, p), catch: (e) => fail(p, e, "rename into place") })
          return written
        }),
      // After a successful rename the temporary name no longer exists and `rm` is a no-op.
      (handle) =>
        Effect.promise(() => handle.close().catch(() => undefined)).pipe(
          Effect.zipRight(Effect.promise(() => fsp.rm(tmp, { force: true })))
        )
    )
  })

/**
 * Parses a size: `8388608`, `8MiB`, `8M`, `64k`, `1GiB`.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseSize = (s: string): Option.Option<number> => {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$/i.exec(s)
  if (m === null) return Option.none()
  const mult: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }
  const n = Math.round(Number(m[1]) * mult[m[2]!.toLowerCase()]!)
  return Number.isSafeInteger(n) && n > 0 ? Option.some(n) : Option.none()
}
