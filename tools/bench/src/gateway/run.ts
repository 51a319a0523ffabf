/**
 * Benchmark of the S3 gateway on driver-fs, in one run:
 *
 * 1. PUT and GET of one large object (default 10 GiB, `--size-gib`) through `objcrypt-gateway`
 *    (a child process, plain HTTP on 127.0.0.1, `UNSIGNED-PAYLOAD`) with SSE-S3 and with SSE-C,
 *    versus a PUT and GET of the same bytes directly to a driver-fs store in this process,
 *    configured as the gateway configures its backend (random etags, no fsync): the throughput
 *    ratios gateway / direct (target ≥ 0.8), and the gateway's CPU time per phase. Phase
 *    `direct-md5` adds a direct PUT with driver-fs's default MD5 etags (the MD5 S3 computes on a
 *    PUT) as a second reference.
 * 2. The gateway's peak RSS while serving (VmRSS sampled every 50 ms during the transfers; target
 *    ≤ 200 MB), and its lifetime VmHWM (which includes start-up: module loading, and with the
 *    sources Node's TypeScript stripping).
 * 3. Many concurrent small-object requests (PUT then GET of `--small-kib` KiB objects,
 *    `--concurrency` at a time, `--requests` in all) from a separate process: p50/p99 latency.
 * 4. A reference for what HTTP alone costs on this machine: the same PUT and GET against a bare
 *    `node:http` server in a child process (same Node, no auth, no encryption, no Effect: the
 *    request body piped to a file, the file piped to the response), as ratios to direct. No HTTP
 *    gateway in Node can beat those; the gateway's ratio to them shows what is ours. `--only`
 *    without `bare` skips it.
 *
 * 5. `--backend rgw`: the same on a Ceph RGW backend (a one-node memstore cluster started here,
 *    `@objcrypt/test-kit/CephRgw`) instead of driver-fs — the gateway on driver-s3 versus driver-s3
 *    directly to the same RGW bucket, so both sides cross HTTP to the backend. The memstore holds
 *    4 GiB, so keep `--size-gib` at 1 (the default on this backend); no bare-server phase.
 *    `--part-size-mib N`, `--part-concurrency N` and `--memory-budget-mib N` set the gateway's
 *    backend multipart parts and their memory budget.
 *
 *   node_modules/.bin/node --conditions=@objcrypt/source --import ./tools/bench/src/format/hooks.ts \
 *     tools/bench/src/gateway/run.ts --size-gib 10
 *
 * With `--built`, the gateway runs from its bundle `apps/gateway/dist/bundle/objcrypt-gateway.mjs` (`npx nx build @objcrypt/gateway`)
 * as users run it; by default from the sources. `--profile DIR` writes the gateway's V8 CPU profile
 * into DIR (more Node flags for the gateway in `BENCH_GATEWAY_NODE_FLAGS`); `--only put-sse-s3,get-sse-c,upload-part,concurrent-put,…` runs only those gateway phases (and skips the
 * small-object load when `small` is not named).
 *
 * @since 0.1.0
 */
import type * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as FsObjectStore from "@objcrypt/driver-fs/FsObjectStore"
import * as S3Buckets from "@objcrypt/driver-s3/S3Buckets"
import * as S3ObjectStore from "@objcrypt/driver-s3/S3ObjectStore"
import * as CephRgw from "@objcrypt/test-kit/CephRgw"
import { binNodeFlags } from "../internal/cliRun.js"
import { Effect, Exit, Option, Redacted, Scope, Stream } from "effect"
import { spawn } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const here = path.dirname(fileURLToPath(import.meta.url))
const WORKSPACE = path.resolve(here, "../../../..")
const HOOKS = path.join(WORKSPACE, "tools/bench/src/format/hooks.ts")
const BIN = path.join(WORKSPACE, "apps/gateway/src/bin.ts")
const MiB = 1024 * 1024
const CHUNK = MiB

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? fallback : Number(process.argv[i + 1])
}

const ACCESS = { id: "AKIABENCH0000001", secret: crypto.randomBytes(24).toString("base64url") }

/**
 * The reference server: node:http with nothing of ours — a PUT's body piped into a file, a GET's
 * file piped into the response (1 MiB reads, as driver-fs reads) — printing its port.
 */
const BARE_SERVER = `
import http from "node:http"
import fs from "node:fs"
import path from "node:path"
import { pipeline } from "node:stream/promises"
const root = process.argv[1]
const server = http.createServer((req, res) => {
  const file = path.join(root, "object")
  const fail = (e) => { if (!res.headersSent) res.writeHead(500); res.end(String(e)) }
  if (req.method === "PUT") {
    pipeline(req, fs.createWriteStream(file)).then(() => { res.writeHead(200); res.end() }, fail)
  } else {
    fs.promises.stat(file).then((st) => {
      res.writeHead(200, { "content-length": st.size })
      return pipeline(fs.createReadStream(file, { highWaterMark: 1024 * 1024 }), res)
    }).catch(fail)
  }
})
server.listen(0, "127.0.0.1", () => process.stdout.write(server.address().port + "\\n"))
`

// ---------------------------------------------------------------------------------------------
// SigV4 (header auth, UNSIGNED-PAYLOAD): the bench signs its own requests, no SDK in the way.
// ---------------------------------------------------------------------------------------------

const hmac = (k: Buffer | string, s: string) => crypto.createHmac("sha256", k).update(s).digest()
const sha256 = (s: string) => crypto.createHash("sha256").update(s).digest("hex")

/** S3's canonical query string of `query` (names and values URI-encoded, sorted). */
const canonicalQuery = (query: Readonly<Record<string, string>>) =>
  Object.entries(query).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).sort().join("&")

const signed = (method: string, port: number, pathname: string, extra: Record<string, string>, query: Readonly<Record<string, string>> = {}): Record<string, string> => {
  const amzDate = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "")
  const day = amzDate.slice(0, 8)
  const headers: Record<string, string> = { ...extra, host: `127.0.0.1:${port}`, "x-amz-date": amzDate, "x-amz-content-sha256": "UNSIGNED-PAYLOAD" }
  const names = Object.keys(headers).sort()
  const canonical = [method, pathname, canonicalQuery(query), names.map((n) => `${n}:${headers[n]!.trim()}\n`).join(""), names.join(";"), "UNSIGNED-PAYLOAD"].join("\n")
  const scope = `${day}/us-east-1/s3/aws4_request`
  let k = hmac(`AWS4${ACCESS.secret}`, day)
  for (const p of ["us-east-1", "s3", "aws4_request"]) k = hmac(k, p)
  const signature = crypto.createHmac("sha256", k).update(["AWS4-HMAC-SHA256", amzDate, scope, sha256(canonical)].join("\n")).digest("hex")
  return { ...headers, authorization: `AWS4-HMAC-SHA256 Credential=${ACCESS.id}/${scope}, SignedHeaders=${names.join(";")}, Signature=${signature}` }
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 })

interface Response {
  readonly status: number
  readonly bytes: number
  /** The start of the body of an error, or of any answer to a request other than GET. */
  readonly body: string
  readonly etag: string | undefined
}

/** One request; the body is `length` bytes from `source` (reused buffers), the response drained. */
const request = (
  port: number,
  method: string,
  pathname: string,
  extra: Record<string, string>,
  source?: { length: number; chunk: Buffer },
  query: Readonly<Record<string, string>> = {}
): Promise<Response> =>
  new Promise((resolve, reject) => {
    const headers = signed(method, port, pathname, extra, query)
    if (source !== undefined) headers["content-length"] = String(source.length)
    const search = canonicalQuery(query).replace(/=(&|$)/g, "$1")
    const req = http.request({ host: "127.0.0.1", port, method, path: search === "" ? pathname : `${pathname}?${search}`, headers, agent }, (res) => {
      let bytes = 0
      const small: Array<Buffer> = []
      res.on("data", (b: Buffer) => {
        bytes += b.length
        if (small.length < 4 && ((res.statusCode ?? 0) >= 300 || method !== "GET")) small.push(b)
      })
      res.on("end", () => resolve({ status: res.statusCode ?? 0, bytes, body: Buffer.concat(small).toString("utf8"), etag: res.headers.etag }))
      res.on("error", reject)
    })
    req.on("error", reject)
    if (source === undefined) return void req.end()
    let sent = 0
    const pump = () => {
      while (sent < source.length) {
        const n = Math.min(source.chunk.length, source.length - sent)
        sent += n
        if (!req.write(n === source.chunk.length ? source.chunk : source.chunk.subarray(0, n))) return void req.once("drain", pump)
      }
      req.end()
    }
    pump()
  })

const must = async (p: Promise<Response>, what: string) => {
  const r = await p
  if (r.status >= 300) throw new Error(`${what}: HTTP ${r.status} ${r.body}`)
  return r
}

// ---------------------------------------------------------------------------------------------
// The small-object load generator (runs as its own process: `run.ts --load <port> …`).
// ---------------------------------------------------------------------------------------------

const load = async () => {
  const port = arg("load", 0)
  const concurrency = arg("concurrency", 32)
  const requests = arg("requests", 4000)
  const size = arg("small-kib", 4) * 1024
  const body = crypto.randomBytes(size)
  const latencies: { put: Array<number>; get: Array<number> } = { put: [], get: [] }
  let next = 0
  const started = process.hrtime.bigint()
  const worker = async () => {
    for (;;) {
      const i = next++
      if (i >= requests) return
      const key = `/bench/small/${i % (requests / 2)}`
      const isPut = i < requests / 2
      const t0 = process.hrtime.bigint()
      await must(request(port, isPut ? "PUT" : "GET", key, {}, isPut ? { length: size, chunk: body } : undefined), `${isPut ? "PUT" : "GET"} ${key}`)
      ;(isPut ? latencies.put : latencies.get).push(Number(process.hrtime.bigint() - t0) / 1e6)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  const pct = (xs: Array<number>, p: number) => {
    const s = [...xs].sort((a, b) => a - b)
    return Number(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!.toFixed(2))
  }
  process.stdout.write(JSON.stringify({
    requests,
    concurrency,
    objectKiB: size / 1024,
    seconds: Number(seconds.toFixed(2)),
    requestsPerSecond: Math.round(requests / seconds),
    putMs: { p50: pct(latencies.put, 50), p99: pct(latencies.put, 99) },
    getMs: { p50: pct(latencies.get, 50), p99: pct(latencies.get, 99) }
  }) + "\n")
}

// ---------------------------------------------------------------------------------------------
// The main run.
// ---------------------------------------------------------------------------------------------

const procStatus = (pid: number) => {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8")
    const hwm = /VmHWM:\s+(\d+) kB/.exec(status)
    const rss = /VmRSS:\s+(\d+) kB/.exec(status)
    const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
    return {
      peakRssMib: hwm === null ? 0 : Number(hwm[1]) / 1024,
      rssMib: rss === null ? 0 : Number(rss[1]) / 1024,
      // utime + stime (fields 14 and 15) in clock ticks; USER_HZ is 100 on Linux.
      cpuSeconds: (Number(fields[11]) + Number(fields[12])) / 100
    }
  } catch {
    return { peakRssMib: 0, rssMib: 0, cpuSeconds: 0 }
  }
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once("error", reject)
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port
      s.close(() => resolve(p))
    })
  })

interface Phase {
  readonly name: string
  readonly seconds: number
  readonly mibPerSecond: number
  /** CPU seconds of the process doing the encryption (the gateway; this process for direct). */
  readonly cpuSeconds: number
  /** The gateway's peak RSS (sampled) during this phase, for gateway phases. */
  readonly peakRssMib?: number | undefined
}

const backendAt = process.argv.indexOf("--backend")
const backendKind = backendAt < 0 ? "fs" : process.argv[backendAt + 1]!
if (backendKind !== "fs" && backendKind !== "rgw") throw new Error(`--backend fs or rgw, not ${backendKind}`)

const main = async () => {
  const sizeGib = arg("size-gib", backendKind === "rgw" ? 1 : 10)
  const size = Math.round(sizeGib * 1024 * MiB)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-bench-gateway-"))
  const chunk = crypto.randomBytes(CHUNK)
  const customerKey = crypto.randomBytes(32)
  const ssec = {
    "x-amz-server-side-encryption-customer-algorithm": "AES256",
    "x-amz-server-side-encryption-customer-key": customerKey.toString("base64"),
    "x-amz-server-side-encryption-customer-key-md5": crypto.createHash("md5").update(customerKey).digest("base64")
  }
  const port = await freePort()
  const config = path.join(dir, "gateway.json")
  // An RGW backend: the cluster lives until this process ends (closed in the finally below).
  const rgwScope = Effect.runSync(Scope.make())
  const rgw = backendKind === "rgw" ? await Effect.runPromise(Scope.extend(
    // Deleted and overwritten objects freed within seconds (RGW's GC waits 2 h by default): the
    // phases write more than the 4 GiB memstore holds, and a full one stalls every request.
    CephRgw.make({ rgwOptions: { "rgw gc obj min wait": "0", "rgw gc processor period": "5" } }),
    rgwScope
  )) : undefined
  const RGW_BUCKET = "bench-backend"
  const s3Config = rgw === undefined ? undefined : {
    bucket: RGW_BUCKET,
    region: rgw.region,
    endpoint: rgw.endpoint,
    forcePathStyle: true,
    accessKeyId: rgw.accessKeyId,
    secretAccessKey: Redacted.make(rgw.secretAccessKey),
    profile: "ceph-rgw" as const
  }
  // The backend bucket exists before the gateway starts (the gateway keeps its state in it).
  const s3Store = s3Config === undefined ? undefined : await Effect.runPromise(Scope.extend(
    Effect.tap(S3ObjectStore.make(s3Config), (s3) => S3Buckets.createBucket(s3.client, RGW_BUCKET)),
    rgwScope
  ))
  fs.writeFileSync(config, JSON.stringify({
    listen: { host: "127.0.0.1", port },
    backend: rgw === undefined ? { type: "fs", root: path.join(dir, "gateway"), fsync: false } : {
      type: "s3",
      bucket: RGW_BUCKET,
      prefix: "gw/",
      region: rgw.region,
      endpoint: rgw.endpoint,
      forcePathStyle: true,
      accessKeyId: rgw.accessKeyId,
      secretAccessKey: { env: "BENCH_BACKEND_SECRET" },
      profile: "ceph-rgw",
      ...(process.argv.includes("--part-size-mib") ? { partSize: arg("part-size-mib", 8) * MiB } : {}),
      ...(process.argv.includes("--part-concurrency") ? { partConcurrency: arg("part-concurrency", 4) } : {}),
      ...(process.argv.includes("--memory-budget-mib") ? { memoryBudgetMiB: arg("memory-budget-mib", 256) } : {})
    },
    users: [{ name: "bench", accessKeyId: ACCESS.id, secretAccessKey: { env: "BENCH_SECRET" }, buckets: "*" }],
    keyStore: { path: path.join(dir, "keys.ocks"), passphrase: { env: "BENCH_SECRET" } },
    allowPlainHttpSseC: true,
    accessLog: "off"
  }))
  const built = process.argv.includes("--built")
  const profileAt = process.argv.indexOf("--profile")
  const nodeFlags = [
    ...(profileAt < 0 ? [] : ["--cpu-prof", `--cpu-prof-dir=${path.resolve(process.argv[profileAt + 1]!)}`]),
    ...(process.env.BENCH_GATEWAY_NODE_FLAGS ?? "").split(" ").filter((f) => f !== "")
  ]
  const onlyAt = process.argv.indexOf("--only")
  const only = onlyAt < 0 ? undefined : new Set(process.argv[onlyAt + 1]!.split(","))
  const wanted = (phase: string) => only === undefined || only.has(phase)
  const bundle = path.join(WORKSPACE, "apps/gateway/dist/bundle/objcrypt-gateway.mjs")
  const gatewayArgs = built
    ? [...binNodeFlags(bundle), ...nodeFlags, bundle, "--config", config]
    : [...nodeFlags, "--conditions=@objcrypt/source", "--import", HOOKS, BIN, "--config", config]
  const gateway = spawn(process.execPath, gatewayArgs, {
    cwd: WORKSPACE,
    env: { ...process.env, BENCH_SECRET: ACCESS.secret, ...(rgw === undefined ? {} : { BENCH_BACKEND_SECRET: rgw.secretAccessKey }) },
    stdio: ["ignore", (process.env.BENCH_GATEWAY_NODE_FLAGS ?? "") === "" ? "ignore" : process.stderr, "inherit"]
  })
  const gpid = gateway.pid!
  let serving = 0
  let sampling = false
  let phasePeak = 0
  const poll = setInterval(() => {
    if (sampling) {
      const now = procStatus(gpid).rssMib
      serving = Math.max(serving, now)
      phasePeak = Math.max(phasePeak, now)
    }
  }, 50)
  try {
    for (let i = 0; ; i++) {
      const ok = await fetch(`http://127.0.0.1:${port}/_health`).then((r) => r.ok, () => false)
      if (ok) break
      if (i > 600 || gateway.exitCode !== null) throw new Error("the gateway did not start")
      await new Promise((r) => setTimeout(r, 100))
    }
    const idleRssMib = procStatus(gpid).rssMib
    await must(request(port, "PUT", "/bench", {}), "create bucket")

    const phases: Array<Phase> = []
    const timed = async (name: string, f: () => Promise<void>, pid?: number) => {
      const cpu0 = pid === undefined ? process.cpuUsage() : undefined
      const c0 = pid === undefined ? 0 : procStatus(pid).cpuSeconds
      const t0 = process.hrtime.bigint()
      phasePeak = 0
      await f()
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9
      const cpuSeconds = pid === undefined
        ? (() => {
          const d = process.cpuUsage(cpu0)
          return (d.user + d.system) / 1e6
        })()
        : procStatus(pid).cpuSeconds - c0
      phases.push({ name, seconds: Number(seconds.toFixed(2)), mibPerSecond: Math.round(size / MiB / seconds), cpuSeconds: Number(cpuSeconds.toFixed(2)), ...(pid === gpid ? { peakRssMib: Math.round(phasePeak) } : {}) })
      process.stderr.write(`${name}: ${Math.round(size / MiB / seconds)} MiB/s\n`)
    }

    // Direct to driver-fs, in this process: same bytes, same chunking, no encryption, and the
    // store configured as the gateway configures its backend (random etags: the gateway keeps S3's
    // ETag itself), so the direct PUT does no MD5 — the strict baseline the ratios use.
    // On RGW: driver-s3 with the gateway's backend settings, to the same bucket.
    const store: ObjectStore.ObjectStore["Type"] = s3Store
      ?? await Effect.runPromise(FsObjectStore.make({ root: path.join(dir, "direct"), bucket: "bench", fsync: false, etags: "random" }))
    const body = Stream.unfold(0, (sent) => {
      if (sent >= size) return Option.none()
      const n = Math.min(CHUNK, size - sent)
      return Option.some([(n === CHUNK ? chunk : chunk.subarray(0, n)) as Uint8Array, sent + n] as const)
    })
    await timed("direct PUT", () => Effect.runPromise(store.put("big", body, { contentLength: size })).then(() => undefined))
    // For reference: a plain driver-fs put with its default MD5 etags (what S3 itself computes on a PUT).
    if (rgw === undefined && wanted("direct-md5")) {
      const md5Store = await Effect.runPromise(FsObjectStore.make({ root: path.join(dir, "direct-md5"), bucket: "bench", fsync: false }))
      await timed("direct PUT (MD5 etags)", () => Effect.runPromise(md5Store.put("big", body, { contentLength: size })).then(() => undefined))
      await Effect.runPromise(md5Store.remove("big"))
    }
    await timed("direct GET", () =>
      Effect.runPromise(Effect.scoped(Effect.flatMap(store.get("big", { borrowed: true }), (o) => Stream.runDrain(o.body)))).then(() => undefined))
    await Effect.runPromise(store.remove("big"))

    // The bare node:http reference (a child process, as the gateway is).
    if (rgw === undefined && wanted("bare")) {
      const bareRoot = path.join(dir, "bare")
      fs.mkdirSync(bareRoot)
      const bare = spawn(process.execPath, ["--input-type=module", "-e", BARE_SERVER, bareRoot], { stdio: ["ignore", "pipe", "inherit"] })
      try {
        const barePort = await new Promise<number>((resolve, reject) => {
          bare.stdout.once("data", (b: Buffer) => resolve(Number(b.toString().trim())))
          bare.once("exit", (code) => reject(new Error(`the bare HTTP server exited (${code})`)))
        })
        await timed("bare HTTP PUT", async () => {
          await must(request(barePort, "PUT", "/big", {}, { length: size, chunk }), "bare PUT")
        }, bare.pid)
        await timed("bare HTTP GET", async () => {
          const r = await must(request(barePort, "GET", "/big", {}), "bare GET")
          if (r.bytes !== size) throw new Error(`bare GET returned ${r.bytes} bytes`)
        }, bare.pid)
      } finally {
        bare.kill("SIGTERM")
        fs.rmSync(bareRoot, { recursive: true, force: true })
      }
    }

    sampling = true
    for (const [mode, headers] of [["SSE-S3", { "x-amz-server-side-encryption": "AES256" }], ["SSE-C", ssec]] as const) {
      const tag = mode.toLowerCase()
      if (!wanted(`put-${tag}`) && !wanted(`get-${tag}`)) continue
      await timed(`gateway PUT ${mode}`, async () => {
        await must(request(port, "PUT", "/bench/big", headers, { length: size, chunk }), `PUT ${mode}`)
      }, gpid)
      if (wanted(`get-${tag}`)) {
        await timed(`gateway GET ${mode}`, async () => {
          const r = await must(request(port, "GET", "/bench/big", mode === "SSE-C" ? ssec : {}), `GET ${mode}`)
          if (r.bytes !== size) throw new Error(`GET ${mode} returned ${r.bytes} bytes`)
        }, gpid)
      }
      await must(request(port, "DELETE", "/bench/big", {}), "DELETE")
    }

    // A client-driven multipart upload of one part as large as S3 allows (up to 5 GiB): the
    // gateway must not hold the part, whatever its size.
    if (wanted("upload-part")) {
      // S3's 5 GiB less the encryption's overhead: the largest part the gateway takes.
      const partLength = Math.min(size, 5 * 1024 * MiB - 2 * MiB)
      await timed("gateway UploadPart SSE-S3 (one part)", async () => {
        const created = await must(request(port, "POST", "/bench/mp", { "x-amz-server-side-encryption": "AES256" }, undefined, { uploads: "" }), "CreateMultipartUpload")
        const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(created.body)?.[1]
        if (uploadId === undefined) throw new Error(`no UploadId in ${created.body}`)
        const part = await must(request(port, "PUT", "/bench/mp", {}, { length: partLength, chunk }, { partNumber: "1", uploadId }), "UploadPart")
        const xml = `<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>${part.etag}</ETag></Part></CompleteMultipartUpload>`
        await must(request(port, "POST", "/bench/mp", {}, { length: xml.length, chunk: Buffer.from(xml) }, { uploadId }), "CompleteMultipartUpload")
      }, gpid)
      if (partLength !== size) phases[phases.length - 1] = { ...phases[phases.length - 1]!, mibPerSecond: Math.round(partLength / MiB / phases[phases.length - 1]!.seconds) }
      await must(request(port, "DELETE", "/bench/mp", {}), "DELETE")
    }

    // `--puts N` (default 8) concurrent PUTs of size / N each: memory must not grow with N.
    if (wanted("concurrent-put")) {
      const n = arg("puts", 8)
      const each = Math.floor(size / n)
      await timed(`gateway ${n} concurrent PUTs SSE-S3`, async () => {
        await Promise.all(Array.from({ length: n }, (_, i) =>
          must(request(port, "PUT", `/bench/c${i}`, { "x-amz-server-side-encryption": "AES256" }, { length: each, chunk }), `PUT c${i}`)))
      }, gpid)
      for (let i = 0; i < n; i++) await must(request(port, "DELETE", `/bench/c${i}`, {}), "DELETE")
    }

    // Small objects from a separate process.
    phasePeak = 0
    const loadOut = !wanted("small") ? "null" : await new Promise<string>((resolve, reject) => {
      const args = ["--conditions=@objcrypt/source", "--import", HOOKS, fileURLToPath(import.meta.url), "--load", String(port),
        "--concurrency", String(arg("concurrency", 32)), "--requests", String(arg("requests", 4000)), "--small-kib", String(arg("small-kib", 4))]
      const child = spawn(process.execPath, args, { cwd: WORKSPACE, env: { ...process.env, BENCH_ACCESS: JSON.stringify(ACCESS) }, stdio: ["ignore", "pipe", "inherit"] })
      let out = ""
      child.stdout.on("data", (b: Buffer) => (out += b.toString()))
      child.on("error", reject)
      child.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`load generator exited ${code}`))))
    })

    const by = (n: string) => phases.find((p) => p.name === n)!
    const ratio = (a: string, b: string) => phases.some((p) => p.name === a) && phases.some((p) => p.name === b) ? Number((by(a).mibPerSecond / by(b).mibPerSecond).toFixed(3)) : null
    process.stdout.write(JSON.stringify({
      sizeGiB: sizeGib,
      backend: rgw === undefined ? "driver-fs" : "Ceph RGW (memstore) through driver-s3",
      node: process.version,
      phases,
      ratios: {
        "PUT SSE-S3 / direct": ratio("gateway PUT SSE-S3", "direct PUT"),
        "PUT SSE-C / direct": ratio("gateway PUT SSE-C", "direct PUT"),
        "GET SSE-S3 / direct": ratio("gateway GET SSE-S3", "direct GET"),
        "GET SSE-C / direct": ratio("gateway GET SSE-C", "direct GET"),
        target: 0.8,
        "PUT SSE-S3 / direct PUT with MD5 etags": ratio("gateway PUT SSE-S3", "direct PUT (MD5 etags)"),
        "PUT SSE-C / direct PUT with MD5 etags": ratio("gateway PUT SSE-C", "direct PUT (MD5 etags)"),
        "bare node:http PUT / direct": ratio("bare HTTP PUT", "direct PUT"),
        "bare node:http GET / direct": ratio("bare HTTP GET", "direct GET"),
        "PUT SSE-S3 / bare node:http PUT": ratio("gateway PUT SSE-S3", "bare HTTP PUT"),
        "PUT SSE-C / bare node:http PUT": ratio("gateway PUT SSE-C", "bare HTTP PUT"),
        "GET SSE-S3 / bare node:http GET": ratio("gateway GET SSE-S3", "bare HTTP GET"),
        "GET SSE-C / bare node:http GET": ratio("gateway GET SSE-C", "bare HTTP GET")
      },
      gateway: built ? "apps/gateway/dist/bundle/objcrypt-gateway.mjs" : "apps/gateway/src/bin.ts (sources)",
      nodeFlags: { gateway: gatewayArgs.slice(0, gatewayArgs.findIndex((a) => !a.startsWith("--"))), direct: process.execArgv },
      gatewayRssMib: { idle: Math.round(idleRssMib), peakWhileServing: Math.round(serving), lifetimeHwm: Math.round(procStatus(gpid).peakRssMib), target: 200 },
      smallObjects: loadOut === "null" ? null : { ...JSON.parse(loadOut) as object, gatewayPeakRssMib: Math.round(phasePeak) }
    }, null, 2) + "\n")
  } finally {
    clearInterval(poll)
    gateway.kill("SIGTERM")
    await new Promise((r) => gateway.once("exit", r))
    agent.destroy()
    await Effect.runPromise(Scope.close(rgwScope, Exit.void))
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

if (process.argv.includes("--load")) {
  const shared = process.env["BENCH_ACCESS"]
  if (shared !== undefined) Object.assign(ACCESS, JSON.parse(shared) as typeof ACCESS)
  await load()
} else {
  await main()
}
