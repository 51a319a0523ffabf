/**
 * A message digest computed on a worker thread, so hashing a large body (MD5 ETags, Content-MD5)
 * runs on the second core while the calling thread encrypts and writes.
 *
 * `update` copies each chunk into a reused 1 MiB slab (memory already touched, so the copy costs
 * a fraction of the hash); a full slab is transferred (not copied) to the worker, which hashes
 * slabs in order and transfers them back. Plain `ArrayBuffer`s, not shared ones: V8 copies into
 * shared memory word by word, several times slower than the memcpy a plain buffer gets. At most `MAX_SLABS_IN_FLIGHT` slabs per hash are
 * out: `update` then returns a promise to wait on (back-pressure), otherwise `undefined`. A body
 * that never fills one slab is hashed on the calling thread at `digest` — small objects never
 * cross threads.
 *
 * One worker serves the whole process; it is created on first use, keeps the process alive only
 * while a hash is in progress, and is replaced if it dies (the hashes it held fail).
 *
 * @since 0.1.0
 */
import * as crypto from "node:crypto"
import { Worker } from "node:worker_threads"

/**
 * @since 0.1.0
 * @category models
 */
export type Algorithm = "md5" | "sha1" | "sha256"

/**
 * @since 0.1.0
 * @category models
 */
export interface BackgroundHash {
  /** Adds bytes (copied: the caller may reuse `chunk` at once); a promise when the caller must wait. */
  readonly update: (chunk: Uint8Array) => Promise<void> | undefined
  /** The digest of everything added; the hash cannot be updated afterwards. */
  readonly digest: () => Promise<Buffer>
  /** Gives the slabs back without a digest (an abandoned body). */
  readonly dispose: () => void
}

/**
 * Bytes per slab: what the calling thread hashes itself when the whole body fits.
 *
 * @since 0.1.0
 * @category constants
 */
export const SLAB_SIZE = Number(process.env.BH_SLAB ?? 1024 * 1024)

/**
 * Slabs one hash may have at the worker before `update` asks the caller to wait.
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_SLABS_IN_FLIGHT = 4

const WORKER_SOURCE = `
const { parentPort } = process.getBuiltinModule("node:worker_threads");
const crypto = process.getBuiltinModule("node:crypto");
const hashes = new Map();
parentPort.on("message", (m) => {
  if (m.op === "update") {
    let h = hashes.get(m.id);
    if (h === undefined) hashes.set(m.id, (h = crypto.createHash(m.algorithm)));
    h.update(new Uint8Array(m.slab, 0, m.length));
    parentPort.postMessage({ op: "slab", id: m.id, slab: m.slab }, [m.slab]);
  } else if (m.op === "digest") {
    const h = hashes.get(m.id);
    hashes.delete(m.id);
    const d = h.digest();
    parentPort.postMessage({ op: "digest", id: m.id, digest: d.buffer.slice(d.byteOffset, d.byteOffset + d.length) });
  } else if (m.op === "drop") {
    hashes.delete(m.id);
  }
});
`

interface Job {
  readonly returned: (slab: ArrayBuffer) => void
  readonly digested: (digest: ArrayBuffer) => void
  readonly failed: (error: Error) => void
}

const SLAB_POOL_MAX = 16
const slabPool: Array<ArrayBuffer> = []
const takeSlab = () => slabPool.pop() ?? new ArrayBuffer(SLAB_SIZE)
const giveSlab = (slab: ArrayBuffer) => {
  if (slabPool.length < SLAB_POOL_MAX) slabPool.push(slab)
}

let worker: Worker | undefined
const jobs = new Map<number, Job>()
let nextId = 1

const hashWorker = (): Worker => {
  if (worker !== undefined) return worker
  const w = new Worker(WORKER_SOURCE, { eval: true })
  w.unref()
  w.on("message", (m: { op: string; id: number; slab?: ArrayBuffer; digest?: ArrayBuffer }) => {
    const job = jobs.get(m.id)
    if (m.op === "slab") {
      if (job === undefined) giveSlab(m.slab!)
      else job.returned(m.slab!)
    } else if (m.op === "digest" && job !== undefined) {
      job.digested(m.digest!)
    }
  })
  const fail = (error: Error) => {
    if (worker === w) worker = undefined
    const pending = [...jobs.values()]
    jobs.clear()
    w.unref()
    for (const job of pending) job.failed(error)
  }
  w.on("error", fail)
  w.on("exit", (code) => fail(new Error(`the hashing worker exited (${code})`)))
  worker = w
  return w
}

const open = (id: number, job: Job): Worker => {
  const w = hashWorker()
  if (jobs.size === 0) w.ref()
  jobs.set(id, job)
  return w
}

const close = (id: number) => {
  if (!jobs.delete(id)) return
  if (jobs.size === 0) worker?.unref()
}

/**
 * A new hash. Bodies longer than one slab are hashed on the shared worker thread.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (algorithm: Algorithm): BackgroundHash => {
  const id = nextId++
  let slab: ArrayBuffer | undefined = takeSlab()
  let view = new Uint8Array(slab)
  let fill = 0
  let started = false
  let inFlight = 0
  let finished = false
  let failure: Error | undefined
  let wake: (() => void) | undefined
  let onDigest: { resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined
  const spare: Array<ArrayBuffer> = []

  const job: Job = {
    returned: (s) => {
      inFlight--
      if (finished) giveSlab(s)
      else spare.push(s)
      const w = wake
      wake = undefined
      w?.()
    },
    digested: (d) => {
      close(id)
      onDigest?.resolve(Buffer.from(d))
    },
    failed: (e) => {
      failure = e
      const w = wake
      wake = undefined
      w?.()
      onDigest?.reject(e)
    }
  }

  const send = () => {
    const w = started ? worker : open(id, job)
    if (w === undefined) {
      failure ??= new Error("the hashing worker exited")
      return
    }
    started = true
    w.postMessage({ op: "update", id, algorithm, slab, length: fill }, [slab!])
    inFlight++
    slab = undefined
    fill = 0
  }

  const nextSlab = (): Promise<void> | undefined => {
    if (failure !== undefined) return Promise.reject(failure)
    const s = spare.pop() ?? (inFlight < MAX_SLABS_IN_FLIGHT ? takeSlab() : undefined)
    if (s !== undefined) {
      slab = s
      view = new Uint8Array(s)
      return undefined
    }
    return new Promise<void>((resolve) => (wake = resolve)).then(() => nextSlab())
  }

  const update = (chunk: Uint8Array): Promise<void> | undefined => {
    if (finished) throw new Error("hash already finished")
    if (failure !== undefined) return Promise.reject(failure)
    let off = 0
    while (off < chunk.length) {
      if (slab === undefined) {
        const waiting = nextSlab()
        if (waiting !== undefined) {
          const rest = chunk.subarray(off)
          // The caller may reuse `chunk` once this settles, so the rest is copied before then.
          return waiting.then(() => update(rest))
        }
      }
      const n = Math.min(SLAB_SIZE - fill, chunk.length - off)
      view.set(n === chunk.length ? chunk : chunk.subarray(off, off + n), fill)
      fill += n
      off += n
      if (fill === SLAB_SIZE) send()
    }
    return undefined
  }

  const digest = (): Promise<Buffer> => {
    if (finished) return Promise.reject(new Error("hash already finished"))
    finished = true
    for (const s of spare.splice(0)) giveSlab(s)
    if (!started) {
      const d = crypto.createHash(algorithm).update(view.subarray(0, fill)).digest()
      giveSlab(slab!)
      slab = undefined
      return Promise.resolve(d)
    }
    return new Promise<Buffer>((resolve, reject) => {
      if (slab !== undefined && fill > 0) send()
      else if (slab !== undefined) giveSlab(slab)
      slab = undefined
      const w = worker
      if (failure !== undefined || w === undefined || !jobs.has(id)) {
        close(id)
        return reject(failure ?? new Error("the hashing worker exited"))
      }
      onDigest = { resolve, reject }
      w.postMessage({ op: "digest", id })
    })
  }

  const dispose = () => {
    if (finished) return
    finished = true
    for (const s of spare.splice(0)) giveSlab(s)
    if (slab !== undefined) giveSlab(slab)
    slab = undefined
    if (started) {
      worker?.postMessage({ op: "drop", id })
      close(id)
    }
  }

  return { update, digest, dispose }
}
