/**
 * Native-format benchmark: encrypt/decrypt MB/s in memory and file → file, next to Node's raw
 * AES-256-GCM with one cipher over the same bytes in the same run, for several segment sizes,
 * single-threaded and with 2 worker threads; and the peak RSS of streaming a 4 GiB object.
 *
 *   node --conditions=@objcrypt/source --import ./tools/bench/src/format/hooks.ts \
 *     tools/bench/src/format/run.ts [--size-mib 1024] [--segments 64,256,1024,4096] [--rounds 3] [--no-file] [--rss-gib 4]
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
const time = (f: () => void): number => {
  const t = performance.now()
  f()
  return performance.now() - t
}
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
  await Effect.runPromise(
    Stream.range(1, gib * 1024, 1).pipe(
      Stream.map(() => chunk),
      NativeFormat.encrypt(keys),
      NativeFormat.decrypt(keys, plan, "rss"),
      Stream.runForEach((c) => Effect.sync(() => void (n += c.length)))
    )
  )
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

// Raw baseline: one cipher over all bytes, update() per 1 MiB chunk.
const rawKey = crypto.createSecretKey(crypto.randomBytes(32))
const rawEncrypt = () => {
  const out: Array<Buffer> = []
  const c = crypto.createCipheriv("aes-256-gcm", rawKey, Buffer.alloc(12))
  for (const ch of chunks) out.push(c.update(ch))
  c.final()
  out.push(c.getAuthTag())
  return out
}
const rawCt = rawEncrypt()
const rawTag = rawCt.pop()!
const rawDecrypt = () => {
  const d = crypto.createDecipheriv("aes-256-gcm", rawKey, Buffer.alloc(12))
  d.setAuthTag(rawTag)
  let n = 0
  for (const ch of rawCt) n += d.update(ch).length
  d.final()
  return n
}

interface Row {
  segmentKiB: number
  rawEnc: number
  rawDec: number
  enc: number
  dec: number
  encStream: number
  decStream: number
  enc2w: number
  dec2w: number
}

const rows: Array<Row> = []
const bytes = plaintext.length

const runPool = <A>(f: (pool: ClientSide.WorkerPool) => Effect.Effect<A>) =>
  Effect.runPromise(Effect.scoped(Effect.flatMap(ClientSide.makeWorkerPool(2), f)))

for (const kib of segmentsKiB) {
  const segmentSize = kib * 1024
  const keys = keysFor(segmentSize)
  const sealAll = () => {
    const out: Array<Uint8Array> = []
    const s = NativeFormat.makeSealer(keys)
    for (const ch of chunks) s.push(ch, out)
    s.end(out)
    return out
  }
  const ct = sealAll()
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
  // Parts of 8 MiB (or one segment if larger), as ClientSide.put cuts them.
  const partSize = Math.max(8 * MiB, segmentSize)
  const parts: Array<Array<Uint8Array>> = []
  for (let off = 0; off < bytes; off += partSize) parts.push([plaintext.subarray(off, Math.min(bytes, off + partSize))])
  const perPart = partSize / segmentSize
  const total = NativeFormat.segmentCount(bytes, segmentSize)
  const r: Row = { segmentKiB: kib, rawEnc: 0, rawDec: 0, enc: 0, dec: 0, encStream: 0, decStream: 0, enc2w: 0, dec2w: 0 }
  const samples: Record<keyof Omit<Row, "segmentKiB">, Array<number>> = {
    rawEnc: [], rawDec: [], enc: [], dec: [], encStream: [], decStream: [], enc2w: [], dec2w: []
  }
  for (let round = 0; round < rounds; round++) {
    samples.rawEnc.push(mbps(bytes, time(rawEncrypt)))
    samples.enc.push(mbps(bytes, time(sealAll)))
    samples.rawDec.push(mbps(bytes, time(rawDecrypt)))
    samples.dec.push(mbps(bytes, time(openAll)))
    samples.encStream.push(mbps(bytes, await timeAsync(() =>
      Effect.runPromise(Stream.runDrain(Stream.fromIterable(chunks).pipe(NativeFormat.encrypt(keys)))))))
    samples.decStream.push(mbps(bytes, await timeAsync(() =>
      Effect.runPromise(Stream.runDrain(Stream.fromIterable(ct).pipe(NativeFormat.decrypt(keys, plan, "bench")))))))
    samples.enc2w.push(mbps(bytes, await runPool((pool) =>
      Effect.promise(() => timeAsync(() =>
        Effect.runPromise(Effect.forEach(parts, (p, i) => pool.seal(keys, i * perPart, i === parts.length - 1, p), { concurrency: 4, discard: true }))
      ))
    )))
    // Decrypt with workers: whole parts of ciphertext (segments with their tags).
    const fullSeg = segmentSize + 16
    const cipher = Buffer.concat(ct)
    const cparts: Array<{ first: number; lengths: Array<number>; piece: Uint8Array }> = []
    for (let i = 0; i < total; i += perPart) {
      const lengths: Array<number> = []
      for (let j = i; j < Math.min(total, i + perPart); j++) lengths.push(j === total - 1 ? bytes - j * segmentSize : segmentSize)
      const start = i * fullSeg
      cparts.push({ first: i, lengths, piece: cipher.subarray(start, start + lengths.reduce((a, b) => a + b + 16, 0)) })
    }
    samples.dec2w.push(mbps(bytes, await runPool((pool) =>
      Effect.promise(() => timeAsync(() =>
        Effect.runPromise(Effect.forEach(cparts, (p) =>
          Effect.flatMap(pool.open(keys, p.first, total - 1, p.lengths, [p.piece]), (r) =>
            r.failedAt === undefined ? Effect.void : Effect.die(new Error("open failed"))), { concurrency: 4, discard: true }))
      ))
    )))
  }
  for (const k of Object.keys(samples) as Array<keyof typeof samples>) r[k] = median(samples[k])
  rows.push(r)
  console.error(`segment ${kib} KiB done`)
}

const f = (x: number) => x.toFixed(0)
console.log(`\n## In memory, ${sizeMiB} MiB, median of ${rounds} (MB/s; ratio to raw one-cipher in brackets)\n`)
console.log("| segment | raw enc | enc (sync core) | enc (Stream) | enc 2 workers | raw dec | dec (sync core) | dec (Stream) | dec 2 workers |")
console.log("|---|---|---|---|---|---|---|---|---|")
for (const r of rows) {
  console.log(
    `| ${r.segmentKiB} KiB | ${f(r.rawEnc)} | ${f(r.enc)} (${(r.enc / r.rawEnc).toFixed(2)}) | ${f(r.encStream)} (${(r.encStream / r.rawEnc).toFixed(2)}) | ${f(r.enc2w)} (${(r.enc2w / r.enc).toFixed(2)}× 1 thread) | ${f(r.rawDec)} | ${f(r.dec)} (${(r.dec / r.rawDec).toFixed(2)}) | ${f(r.decStream)} (${(r.decStream / r.rawDec).toFixed(2)}) | ${f(r.dec2w)} (${(r.dec2w / r.dec).toFixed(2)}× 1 thread) |`
  )
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
          for (const o of out) this.push(o)
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
  console.log("| object | peak RSS | MB/s (enc+dec in series) |")
  console.log("|---|---|---|")
  for (const gib of [rssGib / 4, rssGib]) {
    const r = spawnSync(process.execPath, [...process.execArgv, self, "--rss-child", "--rss-child-gib", String(gib)], { encoding: "utf8" })
    if (r.status !== 0) throw new Error(r.stderr)
    const o = JSON.parse(r.stdout.trim().split("\n").pop()!)
    console.log(`| ${gib} GiB | ${o.maxRssMiB.toFixed(0)} MiB | ${f(o.mbps)} |`)
  }
}
