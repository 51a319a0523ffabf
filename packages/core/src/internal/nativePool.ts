/**
 * A pool of worker threads sealing and opening native-format segments, so one large object uses
 * several cores while the calling thread only moves buffers and keeps order.
 *
 * Buffers cross threads without copies where the caller allows it: plaintext (or ciphertext) that
 * wholly owns its `ArrayBuffer` is transferred to the worker when `transfer` is set (the caller's
 * buffer is detached), anything else is copied once into a reused `SharedArrayBuffer` slot (memory
 * already touched, so the copy is the only cost). What a worker produces — the buffers OpenSSL wrote
 * — is always transferred back. Work goes in batches of several segments per message so the
 * per-message cost is spread over megabytes.
 *
 * Opening verifies every segment's tag in the worker and returns the plaintext of verified
 * segments only; at the first segment that does not verify the worker stops and classifies it
 * (the same rules as `NativeFormat.classify`), so no plaintext of that segment or after it ever
 * leaves the worker.
 *
 * The worker is evaluated from a string so it runs the same from TypeScript sources, from `dist`
 * and from an installed package; it only needs `node:crypto`. Its sealing and classification must
 * stay byte- and rule-identical to `NativeFormat` (tests check both).
 *
 * @since 0.1.0
 * @internal
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import type { KeyObject } from "node:crypto"
import { Worker } from "node:worker_threads"

/**
 * Why a segment failed to open (as `NativeFormat.SegmentFailure`).
 *
 * @since 0.1.0
 * @category models
 */
export type PoolFailure = "Tampered" | "Truncated" | "Reordered" | "TrailingData"

/**
 * @since 0.1.0
 * @category models
 */
export interface PoolKeys {
  readonly contentKey: KeyObject
  readonly segmentSize: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface TransferOptions {
  /**
   * Hand the input buffers over to the worker when they wholly own their `ArrayBuffer`: no copy,
   * but the caller's buffers are detached (length 0) afterwards. @default false (copy)
   */
  readonly transfer?: boolean | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface OpenResult {
  /** Plaintext of the segments that verified, in order. */
  readonly plaintext: ReadonlyArray<Uint8Array>
  /** Index of the first segment that did not verify (nothing of it or after it is returned). */
  readonly failedAt?: number | undefined
  readonly reason?: PoolFailure | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface WorkerPool {
  readonly _tag: "WorkerPool"
  readonly size: number
  /**
   * Seals consecutive segments starting at `firstSegment`: `pieces` concatenated are whole segments
   * except possibly the last; `final` marks the last segment as the object's last. Returns the
   * ciphertext pieces (segment bodies and tags, in order).
   */
  readonly seal: (
    keys: PoolKeys,
    firstSegment: number,
    final: boolean,
    pieces: ReadonlyArray<Uint8Array>,
    options?: TransferOptions
  ) => Effect.Effect<ReadonlyArray<Uint8Array>>
  /**
   * Opens whole segments (`bodyLengths[i]` ciphertext body bytes each, then a 16-byte tag) starting
   * at `firstSegment`; the one at `finalIndex` (if in range) is opened as the object's last.
   */
  readonly open: (
    keys: PoolKeys,
    firstSegment: number,
    finalIndex: number,
    bodyLengths: ReadonlyArray<number>,
    pieces: ReadonlyArray<Uint8Array>,
    options?: TransferOptions
  ) => Effect.Effect<OpenResult>
  /** CPU time (user + system, microseconds) each worker thread has used so far. */
  readonly cpuUsage: Effect.Effect<ReadonlyArray<number>>
}

const WORKER_SOURCE = `
const { parentPort } = process.getBuiltinModule("node:worker_threads");
const crypto = process.getBuiltinModule("node:crypto");
const REORDER_WINDOW = 16;
// Outputs below glibc's mmap threshold come from memory the worker's arena already touched; whole
// 1 MiB outputs are fresh mappings whose page faults cost as much as the encryption (measured).
const SLICE = 64 * 1024;
const nonceOf = (index, final) => {
  const nonce = Buffer.alloc(12);
  nonce.writeUInt32BE(Math.floor(index / 0x100000000), 3);
  nonce.writeUInt32BE(index >>> 0, 7);
  nonce[11] = final ? 1 : 0;
  return nonce;
};
// A cursor over the message's pieces: take(n) returns views covering the next n bytes.
const cursor = (pieces) => {
  const views = pieces.map((p) => new Uint8Array(p.buf, p.off, p.len));
  let i = 0, off = 0;
  return (n) => {
    const out = [];
    while (n > 0 && i < views.length) {
      const v = views[i];
      const k = Math.min(n, v.length - off);
      if (k > 0) out.push(v.subarray(off, off + k));
      off += k; n -= k;
      if (off === v.length) { i++; off = 0; }
    }
    return out;
  };
};
const openOne = (key, index, final, body, tag) => {
  const d = crypto.createDecipheriv("aes-256-gcm", key, nonceOf(index, final));
  d.setAuthTag(tag);
  d.update(body);
  try { d.final(); return true; } catch { return false; }
};
const classify = (key, index, final, body, tag) => {
  if (openOne(key, index, !final, body, tag)) return final ? "Truncated" : "TrailingData";
  for (let j = Math.max(0, index - REORDER_WINDOW); j <= index + REORDER_WINDOW; j++) {
    if (j === index) continue;
    if (openOne(key, j, false, body, tag) || openOne(key, j, true, body, tag)) return "Reordered";
  }
  return "Tampered";
};
const ownedBuffer = (b) => b.byteOffset === 0 && b.buffer.byteLength === b.length;
const seal = (m) => {
  const out = [], transfer = [];
  const take = cursor(m.pieces);
  const size = m.segmentSize;
  const total = m.length;
  const n = total === 0 ? (m.final ? 1 : 0) : Math.ceil(total / size);
  if (!m.final && total % size !== 0) throw new Error("a non-final part must be a multiple of the segment size");
  for (let i = 0; i < n; i++) {
    const len = Math.min(size, total - i * size);
    const c = crypto.createCipheriv("aes-256-gcm", m.key, nonceOf(m.first + i, m.final && i === n - 1));
    for (const v of take(len)) {
      for (let o = 0; o < v.length; o += SLICE) {
        const ct = c.update(o === 0 && v.length <= SLICE ? v : v.subarray(o, o + SLICE));
        if (ct.length === 0) continue;
        out.push(ct);
        if (ownedBuffer(ct)) transfer.push(ct.buffer);
      }
    }
    c.final();
    const tag = c.getAuthTag();
    out.push(tag);
    if (ownedBuffer(tag)) transfer.push(tag.buffer);
  }
  return { out, transfer };
};
const open = (m) => {
  const out = [], transfer = [];
  const take = cursor(m.pieces);
  for (let i = 0; i < m.bodyLengths.length; i++) {
    const index = m.first + i;
    const final = index === m.finalIndex;
    const body = take(m.bodyLengths[i]);
    const tagParts = take(16);
    const tag = tagParts.length === 1 ? tagParts[0] : Buffer.concat(tagParts);
    const d = crypto.createDecipheriv("aes-256-gcm", m.key, nonceOf(index, final));
    d.setAuthTag(tag);
    const pt = [];
    for (const v of body) { const p = d.update(v); if (p.length > 0) pt.push(p); }
    let ok = true;
    try { d.final(); } catch { ok = false; }
    if (!ok) {
      const whole = Buffer.concat(body);
      return { out, transfer, failedAt: index, reason: classify(m.key, index, final, whole, tag) };
    }
    for (const p of pt) { out.push(p); if (ownedBuffer(p)) transfer.push(p.buffer); }
  }
  return { out, transfer };
};
parentPort.on("message", (m) => {
  if (m.op === "cpu") { const u = process.threadCpuUsage(); parentPort.postMessage({ id: m.id, cpu: u.user + u.system }); return; }
  try {
    const r = m.op === "open" ? open(m) : seal(m);
    parentPort.postMessage({ id: m.id, out: r.out, failedAt: r.failedAt, reason: r.reason }, r.transfer);
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String(e && e.message || e) });
  }
});
`

interface Reply {
  readonly id: number
  readonly out?: Array<Uint8Array>
  readonly error?: string
  readonly failedAt?: number
  readonly reason?: PoolFailure
  readonly cpu?: number
}

interface Task {
  readonly resume: (result: Effect.Effect<Reply>) => void
  readonly slot: SharedArrayBuffer | undefined
  readonly worker: number
}

interface WirePiece {
  readonly buf: ArrayBufferLike
  readonly off: number
  readonly len: number
}

/** Slots kept for reuse per worker; more in flight at once are allocated and dropped. */
const SLOTS_PER_WORKER = 4

/**
 * Starts `size` workers for the scope's lifetime.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeWorkerPool = (size: number): Effect.Effect<WorkerPool, never, Scope.Scope> =>
  Effect.gen(function*() {
    const n = Math.max(1, Math.floor(size))
    const workers = yield* Effect.acquireRelease(
      Effect.sync(() =>
        Array.from({ length: n }, () => new Worker(WORKER_SOURCE, { eval: true }))
      ),
      (ws) => Effect.promise(() => Promise.all(ws.map((w) => w.terminate())))
    )
    const busy = workers.map(() => 0)
    const alive = workers.map(() => true)
    const tasks = new Map<number, Task>()
    const slots: Array<SharedArrayBuffer> = []
    let nextId = 0
    workers.forEach((w, index) => {
      // A worker that dies (out of memory, killed) fails what it held instead of leaving it pending.
      const failPending = (why: string) => {
        alive[index] = false
        for (const [id, task] of tasks) {
          if (task.worker !== index) continue
          tasks.delete(id)
          busy[index]--
          task.resume(Effect.die(new Error(`segment worker ${why}`)))
        }
      }
      w.on("error", (e) => failPending(`failed: ${e.message}`))
      w.on("exit", (code) => failPending(`exited with code ${code}`))
      w.on("message", (m: Reply) => {
        const task = tasks.get(m.id)
        if (task === undefined) return
        tasks.delete(m.id)
        busy[task.worker]--
        // A slot is reusable only once the worker is done reading it.
        if (task.slot !== undefined && slots.length < SLOTS_PER_WORKER * n) slots.push(task.slot)
        task.resume(m.error === undefined ? Effect.succeed(m) : Effect.die(new Error(`segment worker failed: ${m.error}`)))
      })
    })
    const takeSlot = (length: number): SharedArrayBuffer => {
      let best = -1
      for (let i = 0; i < slots.length; i++) {
        if (slots[i]!.byteLength >= length && (best < 0 || slots[i]!.byteLength < slots[best]!.byteLength)) best = i
      }
      return best >= 0 ? slots.splice(best, 1)[0]! : new SharedArrayBuffer(Math.max(length, 1))
    }
    /**
     * Builds the wire form of `pieces`: buffers the batch wholly owns are transferred (when
     * allowed), every other piece is copied into one shared slot.
     */
    const wire = (pieces: ReadonlyArray<Uint8Array>, transfer: boolean) => {
      const owned = new Map<ArrayBufferLike, number>()
      if (transfer) {
        for (const p of pieces) {
          if (p.length > 0 && !(p.buffer instanceof SharedArrayBuffer)) owned.set(p.buffer, (owned.get(p.buffer) ?? 0) + p.length)
        }
      }
      const movable = (p: Uint8Array) => transfer && p.length > 0 && owned.get(p.buffer) === p.buffer.byteLength
      let copied = 0
      for (const p of pieces) if (!movable(p)) copied += p.length
      const slot = copied > 0 ? takeSlot(copied) : undefined
      const view = slot === undefined ? undefined : new Uint8Array(slot)
      const out: Array<WirePiece> = []
      const transferList = new Set<ArrayBuffer>()
      let at = 0
      let length = 0
      for (const p of pieces) {
        length += p.length
        if (p.length === 0) continue
        if (movable(p)) {
          out.push({ buf: p.buffer, off: p.byteOffset, len: p.length })
          transferList.add(p.buffer as ArrayBuffer)
        } else {
          view!.set(p, at)
          out.push({ buf: slot!, off: at, len: p.length })
          at += p.length
        }
      }
      return { pieces: out, transferList: [...transferList], slot, length }
    }
    const dispatch = (message: Record<string, unknown>, pieces: ReadonlyArray<Uint8Array>, transfer: boolean) =>
      Effect.async<Reply>((resume) => {
        let worker = -1
        for (let i = 0; i < n; i++) if (alive[i]! && (worker < 0 || busy[i]! < busy[worker]!)) worker = i
        if (worker < 0) return resume(Effect.die(new Error("no segment worker is running")))
        const w = wire(pieces, transfer)
        busy[worker]++
        const id = nextId++
        tasks.set(id, { resume, slot: w.slot, worker })
        workers[worker]!.postMessage({ ...message, id, pieces: w.pieces, length: w.length }, w.transferList)
      })
    const cpuOf = (worker: number) =>
      Effect.async<number>((resume) => {
        if (!alive[worker]!) return resume(Effect.succeed(0))
        const id = nextId++
        busy[worker]++
        tasks.set(id, { resume: (r) => resume(Effect.map(r, (m) => m.cpu ?? 0)), slot: undefined, worker })
        workers[worker]!.postMessage({ op: "cpu", id })
      })
    return {
      _tag: "WorkerPool",
      size: n,
      seal: (keys, firstSegment, final, pieces, options) =>
        Effect.map(
          dispatch(
            { op: "seal", key: keys.contentKey, segmentSize: keys.segmentSize, first: firstSegment, final },
            pieces,
            options?.transfer === true
          ),
          (r) => r.out ?? []
        ),
      open: (keys, firstSegment, finalIndex, bodyLengths, pieces, options) =>
        Effect.map(
          dispatch({ op: "open", key: keys.contentKey, first: firstSegment, finalIndex, bodyLengths }, pieces, options?.transfer === true),
          (r) => ({ plaintext: r.out ?? [], failedAt: r.failedAt, reason: r.reason })
        ),
      cpuUsage: Effect.forEach(workers, (_, i) => cpuOf(i))
    } satisfies WorkerPool
  })
