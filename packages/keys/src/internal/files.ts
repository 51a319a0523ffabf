/**
 * File primitives for the key store: an exclusive lock file with stale-lock detection, and atomic
 * replacement (temp file, fsync, rename, fsync of the directory).
 */
import { Duration, Effect, Scope } from "effect"
import { KeyStoreError } from "@objcrypt/core/Errors"
import * as crypto from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"

const io = (op: string, e: unknown) =>
  new KeyStoreError({ reason: "Io", detail: `${op} failed: ${(e as NodeJS.ErrnoException)?.code ?? "unknown error"}` })

const errno = (e: unknown) => (e as NodeJS.ErrnoException)?.code

/** Reads a file, `undefined` when it does not exist. */
export const readIfExists = (file: string, what = "the key store"): Effect.Effect<Buffer | undefined, KeyStoreError> =>
  Effect.tryPromise({
    try: () => fs.readFile(file).catch((e) => (errno(e) === "ENOENT" ? undefined : Promise.reject(e))),
    catch: (e) => io(`reading ${what}`, e)
  })

/** Identity of the file currently at `file` (changes on every atomic replace), `undefined` if absent. */
export const identity = (file: string): Effect.Effect<string | undefined, KeyStoreError> =>
  Effect.tryPromise({
    try: () =>
      fs.stat(file, { bigint: true }).then(
        (s) => `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}`,
        (e) => (errno(e) === "ENOENT" ? undefined : Promise.reject(e))
      ),
    catch: (e) => io("stat of the key store", e)
  })

/** Mode bits of an existing file. */
export const modeOf = (file: string): Effect.Effect<number | undefined> =>
  Effect.promise(() => fs.stat(file).then((s) => s.mode & 0o777, () => undefined))

/** Replaces `file` with `bytes` atomically, mode 0600; the parent directory is created 0700. */
export const writeAtomic = (file: string, bytes: Uint8Array, what = "the key store"): Effect.Effect<void, KeyStoreError> =>
  Effect.tryPromise({
    try: async () => {
      const dir = path.dirname(file)
      await fs.mkdir(dir, { recursive: true, mode: 0o700 })
      const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}-${crypto.randomBytes(6).toString("hex")}`)
      const handle = await fs.open(tmp, "wx", 0o600)
      try {
        await handle.writeFile(bytes)
        await handle.chmod(0o600)
        await handle.sync()
      } catch (e) {
        await handle.close().catch(() => undefined)
        await fs.rm(tmp, { force: true })
        throw e
      }
      await handle.close()
      try {
        await fs.rename(tmp, file)
      } catch (e) {
        await fs.rm(tmp, { force: true })
        throw e
      }
      // Make the rename itself durable.
      const d = await fs.open(dir, "r")
      await d.sync().catch(() => undefined)
      await d.close()
    },
    catch: (e) => io(`writing ${what}`, e)
  })

interface LockOwner {
  readonly pid: number
  readonly host: string
  readonly token: string
}

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return errno(e) === "EPERM"
  }
}

const readOwner = async (file: string): Promise<LockOwner | undefined> => {
  try {
    const o = JSON.parse(await fs.readFile(file, "utf8")) as Partial<LockOwner>
    return typeof o.pid === "number" && typeof o.host === "string" && typeof o.token === "string"
      ? (o as LockOwner)
      : undefined
  } catch {
    return undefined
  }
}

const tryCreate = async (file: string, owner: LockOwner): Promise<boolean> => {
  try {
    const h = await fs.open(file, "wx", 0o600)
    try {
      await h.writeFile(JSON.stringify(owner))
      await h.sync()
    } finally {
      await h.close()
    }
    return true
  } catch (e) {
    if (errno(e) === "EEXIST") return false
    throw e
  }
}

/** A lock whose owner is a dead process on this host (or, after a grace period, unreadable). */
const isStale = async (file: string): Promise<boolean> => {
  const owner = await readOwner(file)
  if (owner === undefined) {
    // A lock being written right now is briefly empty; only an old unreadable one is stale.
    const st = await fs.stat(file).catch(() => undefined)
    return st !== undefined && Date.now() - st.mtimeMs > 5_000
  }
  return owner.host === os.hostname() && owner.pid !== process.pid && !isAlive(owner.pid)
}

/**
 * Removes a stale lock. Breaking is itself serialised by a second exclusive file, and the lock is
 * re-checked under it, so two processes that both saw the same dead owner never remove a lock a
 * third process has taken since.
 */
const breakStale = async (file: string, me: LockOwner): Promise<void> => {
  const breaker = `${file}.break`
  if (!(await tryCreate(breaker, me))) {
    if (await isStale(breaker)) await fs.rm(breaker, { force: true })
    return
  }
  try {
    if (await isStale(file)) await fs.rm(file, { force: true })
  } finally {
    await fs.rm(breaker, { force: true })
  }
}

const inProcess = new Map<string, Effect.Semaphore>()

const semaphoreFor = (file: string) => {
  let s = inProcess.get(file)
  if (s === undefined) {
    s = Effect.unsafeMakeSemaphore(1)
    inProcess.set(file, s)
  }
  return s
}

/**
 * Holds `${file}.lock` for the scope: fibers of this process queue on a semaphore, processes on
 * the O_EXCL lock file. Fails with `Locked` after `timeout`.
 */
export const lock = (file: string, timeout: Duration.DurationInput): Effect.Effect<void, KeyStoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const lockFile = `${file}.lock`
    const sem = semaphoreFor(path.resolve(lockFile))
    yield* Effect.acquireRelease(sem.take(1), () => sem.release(1))
    const me: LockOwner = { pid: process.pid, host: os.hostname(), token: crypto.randomBytes(8).toString("hex") }
    const deadline = Date.now() + Duration.toMillis(Duration.decode(timeout))
    yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          await fs.mkdir(path.dirname(lockFile), { recursive: true, mode: 0o700 })
          let delay = 5
          for (;;) {
            if (await tryCreate(lockFile, me)) return
            if (await isStale(lockFile)) {
              await breakStale(lockFile, me)
              continue
            }
            if (Date.now() >= deadline) {
              const owner = await readOwner(lockFile)
              throw new KeyStoreError({
                reason: "Locked",
                detail: owner === undefined
                  ? `${lockFile} is held by another process`
                  : `${lockFile} is held by pid ${owner.pid} on ${owner.host}; remove it only if that process is gone`
              })
            }
            await new Promise((r) => setTimeout(r, delay + Math.random() * delay))
            delay = Math.min(delay * 2, 100)
          }
        },
        catch: (e) => (e instanceof KeyStoreError ? e : io("locking the key store", e))
      }),
      () =>
        Effect.promise(async () => {
          const owner = await readOwner(lockFile)
          if (owner !== undefined && owner.token === me.token) await fs.rm(lockFile, { force: true })
        })
    )
  })
