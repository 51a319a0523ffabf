import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand
} from "@aws-sdk/client-s3"
import { getSignedUrl } from "@aws-sdk/s3-request-presigner"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as http from "node:http"
import { type Child, client, markedPayload, rawConfig, spawnGateway, stopChild, tempDir } from "./harness.js"

const call = <A>(f: () => Promise<A>) => Effect.promise(f)
const status = (f: () => Promise<unknown>) =>
  Effect.promise(() => f().then(() => 200, (e: { $metadata?: { httpStatusCode?: number } }) => e.$metadata?.httpStatusCode ?? 0))

const MiB = 1024 * 1024

/** A request whose body trickles in, so the gateway is in the middle of it when the test acts. */
const slowRequest = (url: string, method: string, total: number, chunk: number, everyMs: number) => {
  const u = new URL(url)
  let sent = 0
  const response = new Promise<{ status: number; body: string } | { error: string }>((resolve) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path: `${u.pathname}${u.search}`, headers: { "content-length": String(total) } }, (res) => {
      const parts: Array<Buffer> = []
      res.on("data", (b: Buffer) => parts.push(b))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString("utf8") }))
    })
    req.on("error", (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }))
    const timer = setInterval(() => {
      if (req.destroyed) return clearInterval(timer)
      const n = Math.min(chunk, total - sent)
      req.write(Buffer.alloc(n, 0x62))
      sent += n
      if (sent >= total) {
        clearInterval(timer)
        req.end()
      }
    }, everyMs)
  })
  return { response, sent: () => sent }
}

const waitFor = (cond: () => boolean, ms = 10_000) =>
  Effect.promise(async () => {
    const deadline = Date.now() + ms
    while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  })

describe("replicas on one backend", () => {
  it.live("complete an upload begun on another, survive kill -9 mid-upload with nothing partial visible, and stop gracefully on SIGTERM", () =>
    Effect.gen(function*() {
      const dir = tempDir("replicas")
      const raw = rawConfig(dir)
      const children: Array<Child> = []
      try {
        const a = yield* call(() => spawnGateway(dir, raw, "a"))
        children.push(a)
        const b = yield* call(() => spawnGateway(dir, raw, "b"))
        children.push(b)
        const sa = client(a.endpoint)
        const sb = client(b.endpoint)
        yield* call(() => sa.send(new CreateBucketCommand({ Bucket: "shared" })))
        const committed = markedPayload("committed", 300_000)
        yield* call(() => sb.send(new PutObjectCommand({ Bucket: "shared", Key: "committed", Body: committed, ServerSideEncryption: "aws:kms" })))

        // An upload begun on A, continued and completed on B.
        const data = markedPayload("multipart-across-replicas", 5 * MiB + 777)
        const mp = yield* call(() => sa.send(new CreateMultipartUploadCommand({ Bucket: "shared", Key: "across" })))
        const p1 = yield* call(() => sa.send(new UploadPartCommand({ Bucket: "shared", Key: "across", UploadId: mp.UploadId!, PartNumber: 1, Body: data.subarray(0, 5 * MiB) })))
        const p2 = yield* call(() => sb.send(new UploadPartCommand({ Bucket: "shared", Key: "across", UploadId: mp.UploadId!, PartNumber: 2, Body: data.subarray(5 * MiB) })))
        const parts = yield* call(() => sb.send(new ListPartsCommand({ Bucket: "shared", Key: "across", UploadId: mp.UploadId! })))
        assert.deepStrictEqual(parts.Parts?.map((p) => p.PartNumber), [1, 2])
        yield* call(() =>
          sb.send(new CompleteMultipartUploadCommand({
            Bucket: "shared",
            Key: "across",
            UploadId: mp.UploadId!,
            MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.ETag! }, { PartNumber: 2, ETag: p2.ETag! }] }
          }))
        )
        const back = yield* call(() => sa.send(new GetObjectCommand({ Bucket: "shared", Key: "across" })).then((r) => r.Body!.transformToByteArray()))
        assert.isTrue(Buffer.from(back).equals(data))

        // kill -9 of A in the middle of a PutObject and of an UploadPart.
        const mp2 = yield* call(() => sb.send(new CreateMultipartUploadCommand({ Bucket: "shared", Key: "killed-mp" })))
        const q1 = yield* call(() => sb.send(new UploadPartCommand({ Bucket: "shared", Key: "killed-mp", UploadId: mp2.UploadId!, PartNumber: 1, Body: data.subarray(0, 5 * MiB) })))
        const putUrl = yield* call(() => getSignedUrl(sa, new PutObjectCommand({ Bucket: "shared", Key: "killed-put" }), { expiresIn: 300 }))
        const partUrl = yield* call(() =>
          getSignedUrl(sa, new UploadPartCommand({ Bucket: "shared", Key: "killed-mp", UploadId: mp2.UploadId!, PartNumber: 2 }), { expiresIn: 300 })
        )
        const put = slowRequest(putUrl, "PUT", 4 * MiB, 64 * 1024, 20)
        const part = slowRequest(partUrl, "PUT", 4 * MiB, 64 * 1024, 20)
        yield* waitFor(() => put.sent() > MiB && part.sent() > MiB)
        a.proc.kill("SIGKILL")
        yield* call(() => a.exited)
        const putResult = yield* call(() => put.response)
        const partResult = yield* call(() => part.response)
        assert.property(putResult, "error")
        assert.property(partResult, "error")
        assert.strictEqual(yield* status(() => sb.send(new HeadObjectCommand({ Bucket: "shared", Key: "killed-put" }))), 404)
        const listed = yield* call(() => sb.send(new ListObjectsV2Command({ Bucket: "shared" })))
        assert.deepStrictEqual(listed.Contents?.map((c) => c.Key), ["across", "committed"])
        const afterKill = yield* call(() => sb.send(new ListPartsCommand({ Bucket: "shared", Key: "killed-mp", UploadId: mp2.UploadId! })))
        assert.deepStrictEqual(afterKill.Parts?.map((p) => p.PartNumber), [1])
        const q2 = yield* call(() => sb.send(new UploadPartCommand({ Bucket: "shared", Key: "killed-mp", UploadId: mp2.UploadId!, PartNumber: 2, Body: data.subarray(5 * MiB) })))
        yield* call(() =>
          sb.send(new CompleteMultipartUploadCommand({
            Bucket: "shared",
            Key: "killed-mp",
            UploadId: mp2.UploadId!,
            MultipartUpload: { Parts: [{ PartNumber: 1, ETag: q1.ETag! }, { PartNumber: 2, ETag: q2.ETag! }] }
          }))
        )
        const resumed = yield* call(() => sb.send(new GetObjectCommand({ Bucket: "shared", Key: "killed-mp" })).then((r) => r.Body!.transformToByteArray()))
        assert.isTrue(Buffer.from(resumed).equals(data))
        const kept = yield* call(() => sb.send(new GetObjectCommand({ Bucket: "shared", Key: "committed" })).then((r) => r.Body!.transformToByteArray()))
        assert.isTrue(Buffer.from(kept).equals(committed))

        // SIGTERM on B while an upload is in flight: it finishes, new connections are refused, exit 0.
        const slowUrl = yield* call(() => getSignedUrl(sb, new PutObjectCommand({ Bucket: "shared", Key: "drained" }), { expiresIn: 300 }))
        const slow = slowRequest(slowUrl, "PUT", 1 * MiB, 64 * 1024, 60)
        yield* waitFor(() => slow.sent() > 128 * 1024)
        b.proc.kill("SIGTERM")
        yield* Effect.sleep("300 millis")
        assert.isBelow(slow.sent(), MiB)
        const refused = yield* call(() => fetch(`${b.endpoint}/_health`).then((r) => String(r.status), (e: { cause?: { code?: string } }) => e.cause?.code ?? "error"))
        assert.strictEqual(refused, "ECONNREFUSED")
        const drained = yield* call(() => slow.response)
        assert.deepStrictEqual("status" in drained ? drained.status : drained, 200)
        assert.strictEqual(yield* call(() => b.exited), 0)

        const c = yield* call(() => spawnGateway(dir, raw, "c"))
        children.push(c)
        const got = yield* call(() => client(c.endpoint).send(new GetObjectCommand({ Bucket: "shared", Key: "drained" })).then((r) => r.Body!.transformToByteArray()))
        assert.strictEqual(got.length, MiB)
      } finally {
        for (const c of children) yield* call(() => stopChild(c))
      }
    }), { timeout: 180_000 })
})
