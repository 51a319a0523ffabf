import type { StoreError } from "@objcrypt/core/Errors"
import { ProviderError } from "@objcrypt/core/Errors"
import { Effect } from "effect"
import * as fs from "node:fs/promises"
import * as util from "node:util"

/** The provider name in errors. */
export const PROVIDER = "fs"

/**
 * Converts a Node fs error into a `ProviderError`: the errno code and the system's description,
 * never Node's message (it holds absolute paths).
 */
export const toProviderError = (operation: string, key: string | undefined, e: unknown): ProviderError => {
  const err = e as NodeJS.ErrnoException | undefined
  const code = typeof err?.code === "string" ? err.code : "EUNKNOWN"
  let detail = ""
  if (typeof err?.errno === "number") {
    try {
      detail = util.getSystemErrorMessage(err.errno)
    } catch {
      detail = ""
    }
  }
  if (typeof err?.syscall === "string") detail = detail === "" ? err.syscall : `${err.syscall}: ${detail}`
  return new ProviderError({ provider: PROVIDER, operation, key, code, detail })
}

/** A Node error code, or undefined. */
export const errCode = (e: unknown): string | undefined => {
  const c = (e as NodeJS.ErrnoException | undefined)?.code
  return typeof c === "string" ? c : undefined
}

const STORE_ERRORS = new Set(["ObjectNotFound", "InvalidObjectKey", "InvalidRange", "PreconditionFailed", "AccessDenied", "ProviderError"])

/** Whether a thrown value is already one of the core's store errors. */
export const isStoreError = (e: unknown): e is StoreError =>
  typeof e === "object" && e !== null && STORE_ERRORS.has((e as { _tag?: unknown })._tag as string) && e instanceof Error

/**
 * Runs a promise-returning fs call; a store error it throws passes through, anything else becomes
 * a `ProviderError`.
 */
export const io = <A>(operation: string, key: string | undefined, f: () => Promise<A>): Effect.Effect<A, StoreError> =>
  Effect.tryPromise({ try: f, catch: (e) => (isStoreError(e) ? e : toProviderError(operation, key, e)) })

/** fsync a directory so a rename or a new entry in it survives a crash. */
export const fsyncDir = async (dir: string): Promise<void> => {
  const h = await fs.open(dir, "r")
  try {
    await h.sync()
  } finally {
    await h.close()
  }
}

/** Size of the reused write buffer: large writes do better than 64 KiB ones (PERFORMANCE.md). */
export const WRITE_BUFFER = 1024 * 1024

/**
 * Write buffers are reused across writes (fresh allocations per write are what bound throughput,
 * PERFORMANCE.md): a small free list, so concurrent writers each hold one.
 */
const pool: Array<Buffer> = []
const POOL_MAX = 8

const takeBuffer = (size: number): Buffer =>
  size >= WRITE_BUFFER ? (pool.pop() ?? Buffer.allocUnsafeSlow(WRITE_BUFFER)) : Buffer.allocUnsafe(size)

const giveBuffer = (b: Buffer) => {
  if (b.length === WRITE_BUFFER && pool.length < POOL_MAX) pool.push(b)
}

/**
 * What the writer feeds the bytes it writes: a `BackgroundHash` (the chunk is copied before
 * `update` returns, except for the part behind a returned promise).
 */
export interface WriteHash {
  readonly update: (chunk: Uint8Array) => Promise<void> | undefined
}

/**
 * Writes a stream of chunks to a file at increasing offsets through reused buffers, hashing each
 * buffer-full as it is written (the hash runs on its worker while the write is in flight). One
 * write stays in flight while the next buffer fills (write-behind: two buffers, so the caller's
 * work overlaps the disk's). A chunk of the buffer's size or more is written directly, from the
 * chunk itself — stream chunks are never modified once emitted. `flush` waits for everything;
 * `release` returns the buffers to the pool (after any write still in flight); the writer must not
 * be used after it.
 */
export class BufferedWriter {
  private readonly handle: fs.FileHandle
  private readonly hash: WriteHash | undefined
  private buf: Buffer
  /** The buffer of the write in flight (or a free one), swapped with `buf` at each flush. */
  private spare: Buffer | undefined
  private inflight: Promise<void> | undefined
  private fill = 0
  position: number
  written = 0

  /** `expected`: the body length when known, so a small body does not take a large buffer. */
  constructor(handle: fs.FileHandle, start: number, hash: WriteHash | undefined, expected?: number) {
    this.handle = handle
    this.hash = hash
    this.buf = takeBuffer(expected === undefined ? WRITE_BUFFER : Math.max(1, Math.min(expected, WRITE_BUFFER)))
    this.position = start
  }

  /** Whether `push(chunk)` can complete without I/O. */
  fits(chunk: Uint8Array): boolean {
    return this.fill + chunk.length <= this.buf.length
  }

  /** Copies a chunk into the buffer; only when `fits(chunk)`. */
  push(chunk: Uint8Array): void {
    this.buf.set(chunk, this.fill)
    this.fill += chunk.length
    this.written += chunk.length
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.fits(chunk)) return this.push(chunk)
    await this.startFlush()
    if (this.buf.length < WRITE_BUFFER && chunk.length < WRITE_BUFFER) {
      // The body is longer than announced: move to a full-size buffer.
      giveBuffer(this.buf)
      this.buf = takeBuffer(WRITE_BUFFER)
    }
    if (chunk.length >= this.buf.length) {
      await this.settle()
      this.launch(chunk)
      this.written += chunk.length
    } else {
      this.push(chunk)
    }
  }

  /** Writes what is buffered and waits for every write. */
  async flush(): Promise<void> {
    await this.startFlush()
    await this.settle()
  }

  /** Sends the buffered bytes to disk without waiting for them: the buffers swap. */
  private async startFlush(): Promise<void> {
    if (this.fill === 0) return
    await this.settle()
    const full = this.buf
    this.launch(full.subarray(0, this.fill))
    this.fill = 0
    this.buf = this.spare !== undefined && this.spare.length === full.length ? this.spare : takeBuffer(full.length)
    this.spare = full
  }

  /** Starts writing (and hashing) `data` at the current position; at most one write in flight. */
  private launch(data: Uint8Array): void {
    const p = this.hashed(data, writeFully(this.handle, data, this.position))
    this.position += data.length
    // Observed here so a failure is not an unhandled rejection; `settle` rethrows it.
    p.catch(() => undefined)
    this.inflight = p
  }

  private async settle(): Promise<void> {
    const p = this.inflight
    if (p === undefined) return
    this.inflight = undefined
    await p
  }

  /** Hashes `data` while its write is in flight; `data` is not reused before both are done. */
  private async hashed(data: Uint8Array, writing: Promise<void>): Promise<void> {
    let hashing: Promise<void> | undefined
    try {
      hashing = this.hash?.update(data)
    } finally {
      await writing
    }
    if (hashing !== undefined) await hashing
  }

  release(): void {
    const buffers = [this.buf, ...(this.spare === undefined ? [] : [this.spare])]
    this.buf = Buffer.alloc(0)
    this.spare = undefined
    const p = this.inflight
    this.inflight = undefined
    if (p === undefined) for (const b of buffers) giveBuffer(b)
    else void p.then(() => buffers.forEach(giveBuffer), () => buffers.forEach(giveBuffer))
  }
}

/** `write` may write fewer bytes than asked; loop until all are on disk. */
export const writeFully = async (handle: fs.FileHandle, data: Uint8Array, position: number): Promise<void> => {
  let off = 0
  while (off < data.length) {
    const { bytesWritten } = await handle.write(data, off, data.length - off, position + off)
    off += bytesWritten
  }
}

/** Reads exactly `length` bytes at `position` (fewer only at end of file). */
export const readFully = async (handle: fs.FileHandle, buffer: Buffer, position: number): Promise<number> => {
  let off = 0
  while (off < buffer.length) {
    const { bytesRead } = await handle.read(buffer, off, buffer.length - off, position + off)
    if (bytesRead === 0) break
    off += bytesRead
  }
  return off
}
