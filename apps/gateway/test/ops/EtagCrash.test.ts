/**
 * Crash order of the ETag records (src/internal/etag.ts): a gateway child process on the gcs
 * backend talks to the test-kit GCS server through a proxy in this process that holds back one
 * chosen backend request and never answers it; once the gateway has sent it, the test SIGKILLs
 * the gateway. That stops the gateway deterministically between two backend steps:
 *
 * - held at the record write: neither the object nor its record exists (the object is committed
 *   only after its record, so there is never an object whose ETag falls back to the backend's);
 * - held at the object's commit (a single upload, or the compose completing a multipart upload):
 *   the record exists and no object does — an orphan, never read, removed by the sweep; the
 *   multipart upload itself survives and completes on another gateway with S3's ETag (its record,
 *   named by the manifest id, written again).
 */
import { CreateBucketCommand, HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as GcsServer from "@objcrypt/test-kit/GcsServer"
import { Effect, Exit, Scope } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import * as Backend from "../../src/Backend.js"
import * as Etag from "../../src/internal/etag.js"
import { call, completeUpload, failure, MiB, uploadParts } from "./backendSuite.js"
import { type Child, client, decode, rawConfig, spawnGateway, start, tempDir } from "./harness.js"

const BUCKET = "gw-backend"
const SYSTEM = ".objcrypt-gateway/"
const md5 = (b: Uint8Array) => crypto.createHash("md5").update(b).digest("hex")

/** An HTTP proxy to the GCS server that never answers the next request `holdNext` picks (by method and decoded URL). */
const holdingProxy = async (target: string) => {
  const t = new URL(target)
  let hold: ((method: string, url: string) => boolean) | undefined
  let seen: (() => void) | undefined
  const held: Array<http.ServerResponse> = []
  const server = http.createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (b: Buffer) => chunks.push(b))
    req.on("end", () => {
      const body = Buffer.concat(chunks)
      if (hold !== undefined && hold(req.method ?? "", decodeURIComponent(req.url ?? ""))) {
        hold = undefined
        held.push(res)
        seen?.()
        return
      }
      const up = http.request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers)
        r.pipe(res)
      })
      up.on("error", () => res.destroy())
      up.end(body)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    endpoint: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    /** Holds the next request `pick` matches; resolves once the gateway has sent it in full. */
    holdNext: (pick: (method: string, url: string) => boolean) =>
      new Promise<void>((resolve) => {
        hold = pick
        seen = resolve
      }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const r of held) r.destroy()
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}

const kill = (child: Child) =>
  Effect.promise(async () => {
    child.proc.kill("SIGKILL")
    await child.exited
  })

let scope: Scope.CloseableScope
let gcs: GcsServer.GcsServerInfo
let proxy: Awaited<ReturnType<typeof holdingProxy>>
let dir: string

beforeAll(async () => {
  scope = Effect.runSync(Scope.make())
  gcs = await Effect.runPromise(Scope.extend(GcsServer.make({ buckets: [BUCKET] }), scope))
  proxy = await holdingProxy(gcs.endpoint)
  dir = tempDir("etag-crash")
}, 60_000)

afterAll(async () => {
  await proxy?.close()
  await Effect.runPromise(Scope.close(scope, Exit.void))
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
})

const backend = (apiEndpoint: string) => ({ type: "gcs", bucket: BUCKET, projectId: "objcrypt-test", apiEndpoint })
const names = () => gcs.objectNames(BUCKET)
const recordsOf = (key: string) =>
  Effect.gen(function*() {
    const out: Array<string> = []
    for (const n of names().filter((n) => n.startsWith(`${SYSTEM}etag-records/photos/`))) {
      const bytes = yield* gcs.storedBytes(BUCKET, n)
      if (bytes !== undefined && (JSON.parse(Buffer.from(bytes).toString("utf8")) as { key: string }).key === key) out.push(n)
    }
    return out
  })

/** A fresh child gateway through the proxy. */
const child = (name: string) => call(() => spawnGateway(dir, rawConfig(dir, { backend: backend(proxy.endpoint) }), name))

describe("ETag records across a SIGKILL", () => {
  it.live("killed at the record write: no object, no record; killed at the commit: an orphan record only, swept later", () =>
    Effect.gen(function*() {
      const body = Buffer.from(`etag crash ${crypto.randomBytes(8).toString("hex")}`.repeat(100))

      // 1. held at the record write (an SSE-S3 PUT: its ETag is the plaintext MD5, kept in a record)
      const gw1 = yield* child("gw1")
      const s3a = client(gw1.endpoint)
      yield* call(() => s3a.send(new CreateBucketCommand({ Bucket: "photos" })))
      const atRecord = proxy.holdNext((_m, url) => url.startsWith("/upload/") && url.includes(`&name=${SYSTEM}etag-records/photos/`))
      const put1 = s3a.send(new PutObjectCommand({ Bucket: "photos", Key: "crash/at-record", Body: body })).catch(() => undefined)
      yield* call(() => atRecord)
      yield* kill(gw1)
      yield* call(() => put1)
      assert.notInclude(names(), "photos/crash/at-record")
      assert.deepStrictEqual(yield* recordsOf("crash/at-record"), [])

      // 2. held at the object's upload: the record went first
      const gw2 = yield* child("gw2")
      const s3b = client(gw2.endpoint)
      const atCommit = proxy.holdNext((_m, url) => url.startsWith("/upload/") && url.includes("&name=photos/crash/at-commit"))
      const put2 = s3b.send(new PutObjectCommand({ Bucket: "photos", Key: "crash/at-commit", Body: body })).catch(() => undefined)
      yield* call(() => atCommit)
      yield* kill(gw2)
      yield* call(() => put2)
      assert.notInclude(names(), "photos/crash/at-commit")
      const orphans = yield* recordsOf("crash/at-commit")
      assert.strictEqual(orphans.length, 1)

      // 3. a multipart completion held at the compose that creates the object
      const gw3 = yield* child("gw3")
      const s3c = client(gw3.endpoint)
      const big = Buffer.concat([crypto.randomBytes(5 * MiB), crypto.randomBytes(1234)])
      const begun = yield* uploadParts([s3c], "photos", "crash/multipart", big, 5 * MiB)
      const atCompose = proxy.holdNext((m, url) => m === "POST" && url.includes("/o/photos/crash/multipart/compose"))
      const upload = Effect.runPromiseExit(completeUpload(s3c, "photos", "crash/multipart", begun))
      yield* call(() => atCompose)
      yield* kill(gw3)
      yield* call(() => upload)
      assert.notInclude(names(), "photos/crash/multipart")
      assert.strictEqual((yield* recordsOf("crash/multipart")).length, 1)

      // What another gateway on the backend sees: none of the three objects, so no object without
      // its ETag; the interrupted multipart upload still completes there, with S3's ETag.
      const gw = yield* call(() => start(decode(rawConfig(dir, { backend: backend(gcs.endpoint) }))))
      try {
        const s3 = client(gw.endpoint)
        for (const Key of ["crash/at-record", "crash/at-commit", "crash/multipart"]) {
          assert.strictEqual((yield* failure(() => s3.send(new HeadObjectCommand({ Bucket: "photos", Key })))).status, 404, Key)
        }
        const again = { etag: yield* completeUpload(s3, "photos", "crash/multipart", begun) }
        const partMd5s = [big.subarray(0, 5 * MiB), big.subarray(5 * MiB)].map((p) => crypto.createHash("md5").update(p).digest())
        assert.strictEqual(again.etag, `"${md5(Buffer.concat(partMd5s))}-2"`)
        yield* call(() => s3.send(new PutObjectCommand({ Bucket: "photos", Key: "crash/at-commit", Body: body })))
        assert.strictEqual((yield* call(() => s3.send(new HeadObjectCommand({ Bucket: "photos", Key: "crash/at-commit" })))).ETag, `"${md5(body)}"`)

        // The sweep removes the orphan (its id is carried by no object) and keeps the live records.
        const swept = yield* Effect.scoped(
          Effect.gen(function*() {
            const store = yield* Backend.makeStore({ type: "gcs", bucket: BUCKET, prefix: "", projectId: "objcrypt-test", apiEndpoint: gcs.endpoint, memoryBudgetMiB: 256 })
            const buckets = Backend.makeShared(store)
            const sweep = (now: number, olderThanMs: number) => Etag.sweep(buckets.system, (name) => buckets.store(name), { olderThanMs, now })
            // Records younger than the safety age are left alone: their objects may be on their way.
            assert.deepStrictEqual(yield* sweep(Date.now(), 60 * 60 * 1000), { checked: 0, removed: 0 })
            const first = yield* sweep(Date.now() + 1000, 0)
            // Each record is checked once: the next sweep starts where this one stopped.
            assert.deepStrictEqual(yield* sweep(Date.now() + 2000, 0), { checked: 0, removed: 0 })
            return first
          })
        )
        assert.strictEqual(swept.removed, 1)
        assert.isAtLeast(swept.checked, 3)
        assert.notInclude(names(), orphans[0])
        assert.strictEqual((yield* recordsOf("crash/at-commit")).length, 1)
        assert.strictEqual((yield* recordsOf("crash/multipart")).length, 1)
        assert.strictEqual((yield* call(() => s3.send(new HeadObjectCommand({ Bucket: "photos", Key: "crash/at-commit" })))).ETag, `"${md5(body)}"`)
        assert.strictEqual((yield* call(() => s3.send(new HeadObjectCommand({ Bucket: "photos", Key: "crash/multipart" })))).ETag, again.etag)
      } finally {
        yield* call(() => gw.close())
      }
    }), { timeout: 180_000 })
})
