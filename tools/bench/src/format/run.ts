/**
 * Native-format benchmark: encrypt/decrypt MB/s in memory and file → file, next to Node's raw
 * AES-256-GCM with one cipher over the same bytes in the same run, for several segment sizes,
 * single-threaded and with 2 worker threads; and the peak RSS of streaming a 4 GiB object.
 *
 *   node --conditions=@objcrypt/source --import ./tools/bench/src/format/hooks.ts \
 *     tools/bench/src/format/run.ts [--size-mib 1024] [--segments 64,256,1024,4096] [--rounds 3] [--no-file] [--no-ceiling] [--rss-gib 4]
 *
 * @since 0.1.0
 */
import * as ClientSide from "@objcrypt/core/ClientSide"
import * as NativeFormat from "@objcrypt/core/NativeFormat"
import { Effect, Stream } from "effect"
import { spawnSync } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { pipeline } from "node:stream/promises"
import { Transform } from "node:stream"
import { fileURLToPath } from "node:url"

const MiB = 1024 * 1024
const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback
}
const flag = (name: string) => process.argv.includes(`--${name}`)

const sizeMiB = Number(arg("size-mib", "1024"))
const segmentsKiB = arg("segments", "64,256,1024,4096").split(",").map(Number)
const rounds = Number(arg("rounds", "3"))
const CHUNK = MiB

const median = (xs: Array<number>) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000)
const timeAsync = async (f: () => Promise<unknown>): Promise<number> => {
  const t = performance.now()
  await f()
  return performance.now() - t
}

const keysFor = (segmentSize: number) =>
  NativeFormat.deriveKeys(crypto.randomBytes(32), { segmentSize, salt: crypto.randomBytes(32) }, { "oc:bucket": "b", "oc:key": "k" })

// ----------------------------------------------------------------------------------------------
// RSS child: stream N GiB of generated data through encrypt → decrypt (Effect Streams).
// ----------------------------------------------------------------------------------------------
if (flag("rss-child")) {
  const gib = Number(arg("rss-child-gib", "4"))
  const keys = keysFor(NativeFormat.DEFAULT_SEGMENT_SIZE)
  const chunk = crypto.randomBytes(CHUNK)
  const total = gib * 1024 * MiB
  const plan = NativeFormat.planRange(total, keys.segmentSize)
  let n = 0
  const t = performance.now()
  const workers = Number(arg("rss-child-workers", "0"))
  await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const source = Stream.range(1, gib * 1024, 1).pipe(Stream.map(() => chunk))
    const count = Stream.runForEach((c: Uint8Array) => Effect.sync(() => void (n += c.length)))
    if (workers === 0) {
      return yield* source.pipe(NativeFormat.encrypt(keys), NativeFormat.decrypt(keys, plan, "rss"), count)
    }
    const pool = yield* ClientSide.makeWorkerPool(workers)
    // The source reuses one chunk, so it is copied to the workers; the ciphertext the workers
    // produce belongs to nobody else and is transferred back to them for opening.
    return yield* source.pipe(
      NativeFormat.encryptParallel(keys, { pool }),
      NativeFormat.decryptParallel(keys, plan, "rss", { pool, transfer: true }),
      count
    )
  })))
  const ms = performance.now() - t
  if (n !== total) throw new Error("size mismatch")
  // VmHWM, not getrusage's maxrss: Linux carries ru_maxrss over fork+exec from the parent.
  const hwm = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync("/proc/self/status", "utf8"))
  const maxRssKiB = hwm === null ? process.resourceUsage().maxRSS : Number(hwm[1])
  console.log(JSON.stringify({ maxRssMiB: maxRssKiB / 1024, ms, mbps: mbps(total, ms) }))
  process.exit(0)
}

const plaintext = Buffer.allocUnsafe(sizeMiB * MiB)
for (let off = 0; off < plaintext.length; off += 64 * MiB) crypto.randomFillSync(plaintext, off, Math.min(64 * MiB, plaintext.length - off))
const chunks: Array<Buffer> = []
for (let off = 0; off < plaintext.length; off += CHUNK) chunks.push(plaintext.subarray(off, off + CHUNK))

// Raw baseline: one cipher over all bytes, update() per 1 MiB chunk. Measured runs drop every
// output as soon as it is made (as a stream that writes it on does), like the runs they compare to.
const rawKey = crypto.createSecretKey(crypto.randomBytes(32))
const rawEncrypt = (keep = false) => {
  const out: Array<Buffer> = []
  const c = crypto.createCipheriv("aes-256-gcm", rawKey, Buffer.alloc(12))
  for (const ch of chunks) {
    const o = c.update(ch)
    if (keep) out.push(o)
  }
  c.final()
  out.push(c.getAuthTag())
  return out
}
const rawCt = rawEncrypt(true)
const rawTag = rawCt.pop()!
const rawDecrypt = () => {
  const d = crypto.createDecipheriv("aes-256-gcm", rawKey, Buffer.alloc(12))
  d.setAuthTag(rawTag)
  let n = 0
  for (const ch of rawCt) n += d.update(ch).length
  d.final()
  return n
}

// CPU time per thread (user + system) from /proc: on a shared machine wall time says little, so
// every measurement also records the process's CPU seconds and its busiest thread's, and projects
// the throughput on two idle cores as bytes / max(busiest thread, all threads / 2).
const threadCpu = (): Map<string, number> => {
  const m = new Map<string, number>()
  for (const t of fs.readdirSync("/proc/self/task")) {
    try {
      const f = fs.readFileSync(`/proc/self/task/${t}/stat`, "utf8").split(") ")[1]!.split(" ")
      m.set(t, (Number(f[11]) + Number(f[12])) / 100)
    } catch {
      // the thread ended
    }
  }
  return m
}
interface Sample {
  readonly wall: number
  readonly cpu: number
  readonly busiest: number
  readonly projected: number
}
const measure = async (f: () => unknown): Promise<Sample> => {
  const before = threadCpu()
  const t = performance.now()
  await f()
  const ms = performance.now() - t
  const after = threadCpu()
  let cpu = 0
  let busiest = 0
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0)
    cpu += d
    busiest = Math.max(busiest, d)
  }
  return { wall: mbps(bytes, ms), cpu, busiest, projected: bytes / 1e6 / Math.max(busiest, cpu / 2, 0.01) }
}
const medianSample = (xs: Array<Sample>): Sample => ({
  wall: median(xs.map((x) => x.wall)),
  cpu: median(xs.map((x) => x.cpu)),
  busiest: median(xs.map((x) => x.busiest)),
  projected: median(xs.map((x) => x.projected))
})

const kinds = ["rawEnc", "rawDec", "enc", "dec", "encStream", "decStream", "enc2w", "enc2wCopy", "dec2w", "dec2wCopy"] as const
type Kind = typeof kinds[number]
const rows: Array<{ segmentKiB: number } & Record<Kind, Sample>> = []
const bytes = plaintext.length
/** The bytes of `xs` cut into fresh buffers of `size` bytes (the last one shorter). */
const recut = (xs: ReadonlyArray<Uint8Array>, size: number): Array<Uint8Array> => {
  const all = Buffer.concat(xs)
  const out: Array<Uint8Array> = []
  for (let off = 0; off < all.length; off += size) out.push(Uint8Array.from(all.subarray(off, off + size)))
  return out
}
/** Fresh copies of chunks, each owning its ArrayBuffer (as file reads give), for the transferring runs. */
const freshCopies = (xs: ReadonlyArray<Uint8Array>) => xs.map((x) => Uint8Array.from(x))

await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
  const pool = yield* ClientSide.makeWorkerPool(2)
  for (const kib of segmentsKiB) {
    const segmentSize = kib * 1024
    const keys = keysFor(segmentSize)
    const sealAll = (keep: boolean) => {
      const out: Array<Uint8Array> = []
      const s = NativeFormat.makeSealer(keys)
      for (const ch of chunks) {
        s.push(ch, out)
        if (!keep) out.length = 0
      }
      s.end(out)
      return out
    }
    const ct = recut(sealAll(true), CHUNK)
    const plan = NativeFormat.planRange(bytes, segmentSize)
    const openAll = () => {
      const out: Array<Uint8Array> = []
      const o = NativeFormat.makeOpener(keys, plan)
      for (const c of ct) {
        if (o.push(c, out) !== undefined) throw new Error("open failed")
        out.length = 0
      }
      if (o.end(out) !== undefined) throw new Error("open failed")
    }
    const drain = (s: Stream.Stream<Uint8Array, unknown>) => Effect.runPromise(Stream.runDrain(s))
    // One buffer per pull, as a file or socket delivers them. `Stream.fromIterable` alone would put
    // every buffer of the object into one Chunk, so the whole object would be encrypted (and its
    // output allocated, all 1 GiB of it) before the first write downstream: not a stream.
    const oneByOne = (xs: ReadonlyArray<Uint8Array>) => Stream.fromIterable(xs).pipe(Stream.rechunk(1))
    const samples = Object.fromEntries(kinds.map((k) => [k, [] as Array<Sample>])) as Record<Kind, Array<Sample>>
    for (let round = 0; round < rounds; round++) {
      samples.rawEnc.push(yield* Effect.promise(() => measure(() => rawEncrypt())))
      samples.enc.push(yield* Effect.promise(() => measure(() => sealAll(false))))
      samples.rawDec.push(yield* Effect.promise(() => measure(rawDecrypt)))
      samples.dec.push(yield* Effect.promise(() => measure(openAll)))
      samples.encStream.push(yield* Effect.promise(() => measure(() => drain(oneByOne(chunks).pipe(NativeFormat.encrypt(keys))))))
      samples.decStream.push(yield* Effect.promise(() => measure(() => drain(oneByOne(ct).pipe(NativeFormat.decrypt(keys, plan, "bench"))))))
      const freshPt = freshCopies(chunks)
      samples.enc2w.push(yield* Effect.promise(() =>
        measure(() => drain(oneByOne(freshPt).pipe(NativeFormat.encryptParallel(keys, { pool, transfer: true }))))
      ))
      samples.enc2wCopy.push(yield* Effect.promise(() =>
        measure(() => drain(oneByOne(chunks).pipe(NativeFormat.encryptParallel(keys, { pool }))))
      ))
      const freshCt = freshCopies(ct)
      samples.dec2w.push(yield* Effect.promise(() =>
        measure(() => drain(oneByOne(freshCt).pipe(NativeFormat.decryptParallel(keys, plan, "bench", { pool, transfer: true }))))
      ))
      samples.dec2wCopy.push(yield* Effect.promise(() =>
        measure(() => drain(oneByOne(ct).pipe(NativeFormat.decryptParallel(keys, plan, "bench", { pool }))))
      ))
    }
    rows.push({ segmentKiB: kib, ...Object.fromEntries(kinds.map((k) => [k, medianSample(samples[k])])) as Record<Kind, Sample> })
    console.error(`segment ${kib} KiB done`)
  }
})))

const f = (x: number) => x.toFixed(0)
const r2 = (x: number) => x.toFixed(2)
console.log(`\n## In memory, ${sizeMiB} MiB, median of ${rounds} (MB/s wall clock; ratio to raw one-cipher in brackets)\n`)
console.log("| segment | raw enc | enc (sync core) | enc (Stream) | raw dec | dec (sync core) | dec (Stream) |")
console.log("|---|---|---|---|---|---|---|")
for (const r of rows) {
  console.log(
    `| ${r.segmentKiB} KiB | ${f(r.rawEnc.wall)} | ${f(r.enc.wall)} (${r2(r.enc.wall / r.rawEnc.wall)}) | ${f(r.encStream.wall)} (${r2(r.encStream.wall / r.rawEnc.wall)}) | ${f(r.rawDec.wall)} | ${f(r.dec.wall)} (${r2(r.dec.wall / r.rawDec.wall)}) | ${f(r.decStream.wall)} (${r2(r.decStream.wall / r.rawDec.wall)}) |`
  )
}
console.log(`\n## 1 thread vs 2 workers (Effect Streams), ${sizeMiB} MiB, median of ${rounds}\n`)
console.log("MB/s wall clock, then projected on two idle cores from CPU time (bytes / max(busiest thread, process CPU / 2)); CPU s = user + system of all threads.\n")
console.log("| segment | op | 1 thread wall / projected (CPU s) | 2 workers, transfer: wall / projected (CPU s) | ratio wall / projected | 2 workers, copy: wall / projected (CPU s) | ratio wall / projected |")
console.log("|---|---|---|---|---|---|---|")
for (const r of rows) {
  for (const [op, one, two, copy] of [["encrypt", r.encStream, r.enc2w, r.enc2wCopy], ["decrypt", r.decStream, r.dec2w, r.dec2wCopy]] as const) {
    console.log(
      `| ${r.segmentKiB} KiB | ${op} | ${f(one.wall)} / ${f(one.projected)} (${r2(one.cpu)}) | ${f(two.wall)} / ${f(two.projected)} (${r2(two.cpu)}) | ${r2(two.wall / one.wall)}× / ${r2(two.projected / one.projected)}× | ${f(copy.wall)} / ${f(copy.projected)} (${r2(copy.cpu)}) | ${r2(copy.wall / one.wall)}× / ${r2(copy.projected / one.projected)}× |`
    )
  }
}

// ----------------------------------------------------------------------------------------------
// The machine's own ceiling for two threads: raw AES-256-GCM (1 MiB segments fed 64 KiB at a time,
// outputs discarded) over a SharedArrayBuffer, by the calling thread alone, then by two workers
// each taking half — no transfer, no copy, no Stream. What two cores give the bare primitive here:
// on 2 vCPUs that are hyperthreads of one physical core this stays well below 2×.
// ----------------------------------------------------------------------------------------------
const CEILING_LOOP = `
const crypto = require("node:crypto")
const key = crypto.createSecretKey(Buffer.alloc(32, 7))
const SEG = 1 << 20, SLICE = 65536
const run = (src, from, to) => {
  let n = 0
  for (let off = from; off < to; off += SEG) {
    const c = crypto.createCipheriv("aes-256-gcm", key, crypto.randomBytes(12))
    const end = Math.min(off + SEG, to)
    for (let o = off; o < end; o += SLICE) n += c.update(src.subarray(o, Math.min(o + SLICE, end))).length
    c.final()
    n += c.getAuthTag().length
  }
  return n
}`
if (!flag("no-ceiling")) {
  const { Worker } = await import("node:worker_threads")
  const shared = new SharedArrayBuffer(plaintext.length)
  const src = Buffer.from(shared)
  plaintext.copy(src)
  const run = new Function("require", `${CEILING_LOOP}; return run`)((await import("node:module")).createRequire(import.meta.url)) as (
    s: Buffer,
    from: number,
    to: number
  ) => number
  const workers = [0, 1].map(() =>
    new Worker(`${CEILING_LOOP}
const { parentPort, workerData } = require("node:worker_threads")
const src = Buffer.from(workerData)
parentPort.on("message", (m) => parentPort.postMessage(run(src, m.from, m.to)))`, { eval: true, workerData: shared })
  )
  const half = Math.floor(plaintext.length / 2 / MiB) * MiB
  const both = () =>
    Promise.all(workers.map((w, i) =>
      new Promise((resolve) => {
        w.once("message", resolve)
        w.postMessage(i === 0 ? { from: 0, to: half } : { from: half, to: plaintext.length })
      })
    ))
  await both() // warm-up: worker start-up and JIT out of the timing
  const one: Array<Sample> = []
  const two: Array<Sample> = []
  for (let round = 0; round < rounds; round++) {
    one.push(await measure(() => run(src, 0, plaintext.length)))
    two.push(await measure(both))
  }
  await Promise.all(workers.map((w) => w.terminate()))
  const a = medianSample(one)
  const b = medianSample(two)
  console.log(`\n## The machine's two-thread ceiling: raw AES-256-GCM over shared memory, ${sizeMiB} MiB, median of ${rounds}\n`)
  console.log("| 1 thread MB/s (CPU s) | 2 workers, own halves MB/s (CPU s) | ratio |")
  console.log("|---|---|---|")
  console.log(`| ${f(a.wall)} (${r2(a.cpu)}) | ${f(b.wall)} (${r2(b.cpu)}) | ${r2(b.wall / a.wall)}× |`)
}

// ----------------------------------------------------------------------------------------------
// file → file
// ----------------------------------------------------------------------------------------------
if (!flag("no-file")) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-bench-"))
  try {
    const src = path.join(dir, "plain")
    fs.writeFileSync(src, plaintext)
    const through = (make: () => { push: (c: Buffer, out: Array<Uint8Array>) => void; end: (out: Array<Uint8Array>) => void }) => {
      const s = make()
      return new Transform({
        transform(chunk: Buffer, _enc, cb) {
          const out: Array<Uint8Array> = []
          s.push(chunk, out)
          // One buffer per input chunk, as the raw cipher gives: the write side's cost is per
          // chunk, and the sealer's 64 KiB pieces would otherwise cost 16 stream writes per MiB.
          if (out.length > 0) this.push(out.length === 1 ? out[0] : Buffer.concat(out))
          cb()
        },
        flush(cb) {
          const out: Array<Uint8Array> = []
          s.end(out)
          for (const o of out) this.push(o)
          cb()
        }
      })
    }
    const copyFile = (from: string, to: string, t: Transform | undefined) =>
      t === undefined
        ? pipeline(fs.createReadStream(from, { highWaterMark: MiB }), fs.createWriteStream(to))
        : pipeline(fs.createReadStream(from, { highWaterMark: MiB }), t, fs.createWriteStream(to))
    const rawT = () => {
      const c = crypto.createCipheriv("aes-256-gcm", rawKey, Buffer.alloc(12))
      return { push: (ch: Buffer, out: Array<Uint8Array>) => void out.push(c.update(ch)), end: (out: Array<Uint8Array>) => void (c.final(), out.push(c.getAuthTag())) }
    }
    console.log(`\n## File → file, ${sizeMiB} MiB, 1 MiB reads, median of ${rounds} (MB/s)\n`)
    console.log("| segment | plain copy | raw one-cipher enc | native enc | native dec |")
    console.log("|---|---|---|---|---|")
    for (const kib of segmentsKiB) {
      const keys = keysFor(kib * 1024)
      const plan = NativeFormat.planRange(bytes, keys.segmentSize)
      const s = { copy: [] as Array<number>, raw: [] as Array<number>, enc: [] as Array<number>, dec: [] as Array<number> }
      for (let round = 0; round < rounds; round++) {
        s.copy.push(mbps(bytes, await timeAsync(() => copyFile(src, path.join(dir, "copy"), undefined))))
        s.raw.push(mbps(bytes, await timeAsync(() => copyFile(src, path.join(dir, "raw"), through(rawT)))))
        s.enc.push(mbps(bytes, await timeAsync(() => copyFile(src, path.join(dir, "enc"), through(() => NativeFormat.makeSealer(keys))))))
        s.dec.push(mbps(bytes, await timeAsync(() =>
          copyFile(path.join(dir, "enc"), path.join(dir, "dec"), through(() => {
            const o = NativeFormat.makeOpener(keys, plan)
            return {
              push: (c, out) => { if (o.push(c, out) !== undefined) throw new Error("open failed") },
              end: (out) => { if (o.end(out) !== undefined) throw new Error("open failed") }
            }
          })))))
      }
      console.log(`| ${kib} KiB | ${f(median(s.copy))} | ${f(median(s.raw))} | ${f(median(s.enc))} | ${f(median(s.dec))} |`)
      if (!fs.readFileSync(path.join(dir, "dec")).equals(plaintext)) throw new Error("file round trip differs")
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

// ----------------------------------------------------------------------------------------------
// Peak RSS of a streaming encrypt → decrypt of a large object, in a fresh process.
// ----------------------------------------------------------------------------------------------
const rssGib = Number(arg("rss-gib", "4"))
if (rssGib > 0) {
  const self = fileURLToPath(import.meta.url)
  console.log(`\n## Peak RSS, Effect Stream encrypt → decrypt, default segment size\n`)
  console.log("| object | threads | peak RSS | MB/s (enc+dec in series, wall) |")
  console.log("|---|---|---|---|")
  for (const workers of [0, 2]) {
    for (const gib of [rssGib / 4, rssGib]) {
      const r = spawnSync(
        process.execPath,
        [...process.execArgv, self, "--rss-child", "--rss-child-gib", String(gib), "--rss-child-workers", String(workers)],
        { encoding: "utf8" }
      )
      if (r.status !== 0) throw new Error(r.stderr)
      const o = JSON.parse(r.stdout.trim().split("\n").pop()!)
      console.log(`| ${gib} GiB | ${workers === 0 ? "1 (calling thread)" : `${workers} workers`} | ${o.maxRssMiB.toFixed(0)} MiB | ${f(o.mbps)} |`)
    }
  }
}
