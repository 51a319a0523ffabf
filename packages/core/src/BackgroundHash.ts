/**
 * A message digest computed on a worker thread, so hashing a large body (MD5 ETags, Content-MD5)
 * runs on the second core while the calling thread encrypts and writes.
 *
 * A body that never fills one 1 MiB slab is hashed on the calling thread at `digest`: small
 * objects never cross threads and take no shared memory. A longer one gets a ring of
 * `MAX_SLABS_IN_FLIGHT` slabs in one `SharedArrayBuffer` (pooled), handed to the worker once;
 * `update` copies chunks into the current slab (the caller may reuse its buffer at once) and a full
 * slab is announced to the worker by its index — only integers cross threads per slab, so no
 * buffer object is created, transferred or accounted per megabyte on either side (each of those
 * would add to the external memory that triggers V8's full GCs). When every slab is with the
 * worker, `update` returns a promise to wait on (back-pressure), otherwise `undefined`.
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
export const SLAB_SIZE = 1024 * 1024

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
const jobs = new Map();
parentPort.on("message", (m) => {
  if (m.op === "open") {
    jobs.set(m.id, { hash: crypto.createHash(m.algorithm), ring: m.ring, slabSize: m.slabSize });
  } else if (m.op === "update") {
    const job = jobs.get(m.id);
    job.hash.update(new Uint8Array(job.ring, m.slab * job.slabSize, m.length));
    parentPort.postMessage({ op: "done", id: m.id, slab: m.slab });
  } else if (m.op === "digest") {
    const job = jobs.get(m.id);
    jobs.delete(m.id);
    const d = job.hash.digest();
    parentPort.postMessage({ op: "digest", id: m.id, digest: d.toString("hex") });
  } else if (m.op === "drop") {
    jobs.delete(m.id);
  }
});
`

interface Job {
  readonly done: (slab: number) => void
  readonly digested: (hex: string) => void
  readonly failed: (error: Error) => void
}

const RING_POOL_MAX = 4
const ringPool: Array<SharedArrayBuffer> = []
const takeRing = () => ringPool.pop() ?? new SharedArrayBuffer(SLAB_SIZE * MAX_SLABS_IN_FLIGHT)
const giveRing = (ring: SharedArrayBuffer) => {
  if (ringPool.length < RING_POOL_MAX) ringPool.push(ring)
}

let worker: Worker | undefined
const jobs = new Map<number, Job>()
let nextId = 1

const hashWorker = (): Worker => {
  if (worker !== undefined) return worker
  const w = new Worker(WORKER_SOURCE, { eval: true })
  w.unref()
  w.on("message", (m: { op: string; id: number; slab?: number; digest?: string }) => {
    const job = jobs.get(m.id)
    if (job === undefined) return
    if (m.op === "done") job.done(m.slab!)
    else if (m.op === "digest") job.digested(m.digest!)
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
  // Before the first slab is full: a plain buffer, grown as needed, hashed here at `digest`.
  let first: Buffer = Buffer.allocUnsafe(0)
  let ring: SharedArrayBuffer | undefined
  let ringView: Uint8Array | undefined
  /** The slab being filled (an index into the ring), `undefined` while all are with the worker. */
  let current: number | undefined
  let fill = 0
  const free: Array<number> = []
  let finished = false
  let failure: Error | undefined
  let wake: (() => void) | undefined
  let onDigest: { resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined
  let w: Worker | undefined

  const release = () => {
    const r = ring
    ring = undefined
    ringView = undefined
    // The worker may still read slabs it was sent: the ring goes back to the pool only when
    // none is out.
    if (r !== undefined && free.length + (current === undefined ? 0 : 1) === MAX_SLABS_IN_FLIGHT) giveRing(r)
  }

  const job: Job = {
    done: (slab) => {
      free.push(slab)
      const f = wake
      wake = undefined
      f?.()
    },
    digested: (hex) => {
      close(id)
      release()
      onDigest?.resolve(Buffer.from(hex, "hex"))
    },
    failed: (e) => {
      failure = e
      const f = wake
      wake = undefined
      f?.()
      onDigest?.reject(e)
    }
  }

  /** Moves to the shared ring: the first slab's bytes become slab 0. */
  const start = () => {
    ring = takeRing()
    ringView = new Uint8Array(ring)
    ringView.set(first.subarray(0, fill), 0)
    first = Buffer.allocUnsafe(0)
    current = 0
    for (let i = MAX_SLABS_IN_FLIGHT - 1; i > 0; i--) free.push(i)
    w = hashWorker()
    if (jobs.size === 0) w.ref()
    jobs.set(id, job)
    w.postMessage({ op: "open", id, algorithm, ring, slabSize: SLAB_SIZE })
  }

  const send = () => {
    if (worker !== w || w === undefined) {
      failure ??= new Error("the hashing worker exited")
      return
    }
    w.postMessage({ op: "update", id, slab: current, length: fill })
    current = undefined
    fill = 0
  }

  const update = (chunk: Uint8Array): Promise<void> | undefined => {
    if (finished) throw new Error("hash already finished")
    if (failure !== undefined) return Promise.reject(failure)
    let off = 0
    while (off < chunk.length) {
      if (ring === undefined) {
        if (fill + chunk.length - off <= SLAB_SIZE) {
          if (first.length < fill + chunk.length - off) {
            const grown = Buffer.allocUnsafe(Math.min(SLAB_SIZE, Math.max(64 * 1024, 2 * (fill + chunk.length - off))))
            first.copy(grown, 0, 0, fill)
            first = grown
          }
          first.set(chunk.subarray(off), fill)
          fill += chunk.length - off
          return undefined
        }
        if (first.length < SLAB_SIZE) {
          const grown = Buffer.allocUnsafe(SLAB_SIZE)
          first.copy(grown, 0, 0, fill)
          first = grown
        }
        const n = SLAB_SIZE - fill
        first.set(chunk.subarray(off, off + n), fill)
        fill += n
        off += n
        start()
        send()
        continue
      }
      if (current === undefined) {
        if (failure !== undefined) return Promise.reject(failure)
        const next = free.pop()
        if (next === undefined) {
          const rest = chunk.subarray(off)
          // The caller may reuse `chunk` once this settles, so the rest is copied before then.
          return new Promise<void>((resolve) => (wake = resolve)).then(() => update(rest))
        }
        current = next
      }
      const n = Math.min(SLAB_SIZE - fill, chunk.length - off)
      ringView!.set(n === chunk.length ? chunk : chunk.subarray(off, off + n), current * SLAB_SIZE + fill)
      fill += n
      off += n
      if (fill === SLAB_SIZE) send()
    }
    return undefined
  }

  const digest = (): Promise<Buffer> => {
    if (finished) return Promise.reject(new Error("hash already finished"))
    finished = true
    if (ring === undefined) {
      const d = crypto.createHash(algorithm).update(first.subarray(0, fill)).digest()
      first = Buffer.allocUnsafe(0)
      return Promise.resolve(d)
    }
    return new Promise<Buffer>((resolve, reject) => {
      if (current !== undefined && fill > 0) send()
      else if (current !== undefined) {
        free.push(current)
        current = undefined
      }
      if (failure !== undefined || w === undefined || worker !== w || !jobs.has(id)) {
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
    first = Buffer.allocUnsafe(0)
    if (ring !== undefined) {
      if (current !== undefined) {
        free.push(current)
        current = undefined
      }
      w?.postMessage({ op: "drop", id })
      close(id)
      release()
    }
  }

  return { update, digest, dispose }
}
