/**
 * A pool of worker threads sealing native-format segments, so one large object uses several
 * cores. Plaintext goes to a worker through a reused `SharedArrayBuffer` slot (one copy into memory
 * already touched); ciphertext comes back by transferring the buffers OpenSSL wrote (no copy).
 *
 * The worker is evaluated from a string so it runs the same from TypeScript sources, from `dist`
 * and from an installed package; it only needs `node:crypto`. Its segment sealing must stay
 * byte-identical to `NativeFormat.sealSegment` (a test checks it).
 *
 * @since 0.1.0
 * @internal
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import type { KeyObject } from "node:crypto"
import { Worker } from "node:worker_threads"

/**
 * @since 0.1.0
 * @category models
 */
export interface WorkerPool {
  readonly _tag: "WorkerPool"
  readonly size: number
  /**
   * Seals the segments of one part: `pieces` concatenated are whole segments except possibly the
   * last; `final` marks the part's last segment as the object's last.
   */
  readonly seal: (
    keys: { readonly contentKey: KeyObject; readonly segmentSize: number },
    firstSegment: number,
    final: boolean,
    pieces: ReadonlyArray<Uint8Array>
  ) => Effect.Effect<ReadonlyArray<Uint8Array>>
  /**
   * Opens whole segments (`bodyLengths[i]` plaintext bytes each, then a tag) starting at
   * `firstSegment`; the one at `finalIndex` (if any) is opened as the object's last. Returns the
   * plaintext pieces, or the position of the first segment that did not verify (nothing of it or
   * after it is returned).
   */
  readonly open: (
    keys: { readonly contentKey: KeyObject; readonly segmentSize: number },
    firstSegment: number,
    finalIndex: number,
    bodyLengths: ReadonlyArray<number>,
    pieces: ReadonlyArray<Uint8Array>
  ) => Effect.Effect<{ readonly plaintext: ReadonlyArray<Uint8Array>; readonly failedAt?: number | undefined }>
}

const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const crypto = require("node:crypto");
const nonceOf = (index, final) => {
  const nonce = Buffer.alloc(12);
  nonce.writeUInt32BE(Math.floor(index / 0x100000000), 3);
  nonce.writeUInt32BE(index >>> 0, 7);
  nonce[11] = final ? 1 : 0;
  return nonce;
};
const open = (m) => {
  const out = [];
  const transfer = [];
  const src = new Uint8Array(m.sab, 0, m.length);
  let off = 0;
  for (let i = 0; i < m.bodyLengths.length; i++) {
    const index = m.first + i;
    const len = m.bodyLengths[i];
    const d = crypto.createDecipheriv("aes-256-gcm", m.key, nonceOf(index, index === m.finalIndex));
    d.setAuthTag(src.subarray(off + len, off + len + 16));
    const pt = d.update(src.subarray(off, off + len));
    try { d.final(); } catch { parentPort.postMessage({ id: m.id, out, failedAt: index }, transfer); return; }
    out.push(pt);
    if (pt.byteOffset === 0 && pt.buffer.byteLength === pt.length) transfer.push(pt.buffer);
    off += len + 16;
  }
  parentPort.postMessage({ id: m.id, out }, transfer);
};
parentPort.on("message", (m) => {
  if (m.op === "open") { try { open(m); } catch (e) { parentPort.postMessage({ id: m.id, error: String(e && e.message || e) }); } return; }
  const out = [];
  const transfer = [];
  try {
    const src = new Uint8Array(m.sab, 0, m.length);
    const size = m.segmentSize;
    const n = m.length === 0 ? 1 : Math.ceil(m.length / size);
    for (let i = 0; i < n; i++) {
      const start = i * size;
      const end = Math.min(start + size, m.length);
      const index = m.first + i;
      const c = crypto.createCipheriv("aes-256-gcm", m.key, nonceOf(index, m.final && i === n - 1));
      if (end > start) {
        const ct = c.update(src.subarray(start, end));
        out.push(ct);
        if (ct.byteOffset === 0 && ct.buffer.byteLength === ct.length) transfer.push(ct.buffer);
      }
      c.final();
      out.push(c.getAuthTag());
    }
    parentPort.postMessage({ id: m.id, out }, transfer);
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String(e && e.message || e) });
  }
});
`

interface Task {
  readonly resume: (result: Effect.Effect<{ readonly out: ReadonlyArray<Uint8Array>; readonly failedAt?: number | undefined }>) => void
  readonly slot: SharedArrayBuffer
  readonly worker: number
}

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
      Effect.sync(() => Array.from({ length: n }, () => new Worker(WORKER_SOURCE, { eval: true }))),
      (ws) => Effect.promise(() => Promise.all(ws.map((w) => w.terminate())))
    )
    const busy = workers.map(() => 0)
    const tasks = new Map<number, Task>()
    const slots: Array<SharedArrayBuffer> = []
    let nextId = 0
    workers.forEach((w) => {
      w.on("message", (m: { id: number; out?: Array<Uint8Array>; error?: string; failedAt?: number }) => {
        const task = tasks.get(m.id)
        if (task === undefined) return
        tasks.delete(m.id)
        busy[task.worker]--
        // The slot is reusable only now that the worker is done reading it.
        slots.push(task.slot)
        task.resume(
          m.error === undefined
            ? Effect.succeed({ out: m.out ?? [], failedAt: m.failedAt })
            : Effect.die(new Error(`segment worker failed: ${m.error}`))
        )
      })
    })
    const takeSlot = (length: number): SharedArrayBuffer => {
      for (let i = 0; i < slots.length; i++) {
        if (slots[i]!.byteLength >= length) return slots.splice(i, 1)[0]!
      }
      return new SharedArrayBuffer(Math.max(length, 1))
    }
    const dispatch = (pieces: ReadonlyArray<Uint8Array>, message: Record<string, unknown>) =>
      Effect.async<{ readonly out: ReadonlyArray<Uint8Array>; readonly failedAt?: number | undefined }>((resume) => {
        const length = pieces.reduce((s, p) => s + p.length, 0)
        const slot = takeSlot(length)
        const view = new Uint8Array(slot)
        let off = 0
        for (const p of pieces) {
          view.set(p, off)
          off += p.length
        }
        let worker = 0
        for (let i = 1; i < n; i++) if (busy[i]! < busy[worker]!) worker = i
        busy[worker]++
        const id = nextId++
        tasks.set(id, { resume, slot, worker })
        workers[worker]!.postMessage({ ...message, id, sab: slot, length })
      })
    return {
      _tag: "WorkerPool",
      size: n,
      seal: (keys, firstSegment, final, pieces) =>
        Effect.map(
          dispatch(pieces, { op: "seal", key: keys.contentKey, segmentSize: keys.segmentSize, first: firstSegment, final }),
          (r) => r.out
        ),
      open: (keys, firstSegment, finalIndex, bodyLengths, pieces) =>
        Effect.map(
          dispatch(pieces, { op: "open", key: keys.contentKey, first: firstSegment, finalIndex, bodyLengths }),
          (r) => ({ plaintext: r.out, failedAt: r.failedAt })
        )
    } satisfies WorkerPool
  })
