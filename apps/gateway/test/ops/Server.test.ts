import {
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client as S3ClientClass,
  UploadPartCommand
} from "@aws-sdk/client-s3"
import { getSignedUrl } from "@aws-sdk/s3-request-presigner"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import * as https from "node:https"
import * as path from "node:path"
import { client, decode, freePort, PASSPHRASE, rawConfig, selfSigned, start, tempDir, users } from "./harness.js"

const call = <A>(f: () => Promise<A>) => Effect.promise(f)
const failure = (f: () => Promise<unknown>) =>
  Effect.promise(() =>
    f().then(
      () => ({ code: "none", status: 0 }),
      (e: { name?: string; $metadata?: { httpStatusCode?: number } }) => ({ code: e.name ?? "?", status: e.$metadata?.httpStatusCode ?? 0 })
    )
  )

const customerKey = crypto.randomBytes(32)
const ssec = {
  SSECustomerAlgorithm: "AES256",
  SSECustomerKey: customerKey.toString("base64"),
  SSECustomerKeyMD5: crypto.createHash("md5").update(customerKey).digest("base64")
}

describe("TLS", () => {
  it.live("serves HTTPS from the configured cert and key, and accepts SSE-C over it without allowPlainHttpSseC", () =>
    Effect.gen(function*() {
      const dir = tempDir("tls")
      const cert = yield* call(() => selfSigned(dir))
      const gw = yield* call(() => start(decode(rawConfig(dir, { tls: { cert: cert.cert, key: cert.key } }))))
      const plainDir = tempDir("plain")
      const plain = yield* call(() => start(decode(rawConfig(plainDir))))
      try {
        assert.match(gw.endpoint, /^https:/)
        const s3 = client(gw.endpoint, users.alice, cert.pem)
        yield* call(() => s3.send(new CreateBucketCommand({ Bucket: "tls-bucket" })))
        yield* call(() => s3.send(new PutObjectCommand({ Bucket: "tls-bucket", Key: "secret.txt", Body: "over tls", ...ssec })))
        const got = yield* call(() => s3.send(new GetObjectCommand({ Bucket: "tls-bucket", Key: "secret.txt", ...ssec })))
        assert.strictEqual(yield* call(() => got.Body!.transformToString()), "over tls")
        assert.strictEqual(got.SSECustomerKeyMD5, ssec.SSECustomerKeyMD5)
        const other = crypto.randomBytes(32)
        const wrong = yield* failure(() =>
          s3.send(new GetObjectCommand({
            Bucket: "tls-bucket",
            Key: "secret.txt",
            SSECustomerAlgorithm: "AES256",
            SSECustomerKey: other.toString("base64"),
            SSECustomerKeyMD5: crypto.createHash("md5").update(other).digest("base64")
          }))
        )
        assert.strictEqual(wrong.status, 403)
        // The same request over plain HTTP is refused, as S3 refuses it.
        const p = client(plain.endpoint)
        yield* call(() => p.send(new CreateBucketCommand({ Bucket: "plain-bucket" })))
        const refused = yield* failure(() => p.send(new PutObjectCommand({ Bucket: "plain-bucket", Key: "k", Body: "x", ...ssec })))
        assert.deepStrictEqual(refused, { code: "InvalidRequest", status: 400 })
        // A client that does not trust the certificate cannot connect.
        const untrusted = yield* Effect.promise(() =>
          new Promise<string>((resolve) => {
            https.get(`${gw.endpoint}/_health`, (res) => resolve(String(res.statusCode))).on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"))
          })
        )
        assert.strictEqual(untrusted, "DEPTH_ZERO_SELF_SIGNED_CERT")
      } finally {
        yield* call(() => gw.close())
        yield* call(() => plain.close())
      }
    }), { timeout: 60_000 })

  it.live("refuses to start with an unusable certificate or key", () =>
    Effect.gen(function*() {
      const dir = tempDir("badtls")
      const cert = yield* call(() => selfSigned(dir))
      const other = yield* call(() => selfSigned(tempDir("badtls2")))
      const mismatch = yield* Effect.promise(() =>
        start(decode(rawConfig(dir, { tls: { cert: cert.cert, key: other.key } }))).then(() => "started", (e: Error) => e.message)
      )
      assert.include(mismatch, "tls")
      assert.notInclude(mismatch, "PRIVATE KEY")
      const missing = yield* Effect.promise(() =>
        start(decode(rawConfig(dir, { tls: { cert: path.join(dir, "nope.pem"), key: cert.key } }))).then(() => "started", (e: Error) => e.message)
      )
      assert.include(missing, "cannot be read")
    }), { timeout: 60_000 })
})

describe("health and readiness", () => {
  it.live("answers /_health and /_ready unsigned on the S3 port, /health and /ready on the health port, and keeps bucket names free", () =>
    Effect.gen(function*() {
      const dir = tempDir("health")
      const healthPort = yield* call(() => freePort())
      const gw = yield* call(() => start(decode(rawConfig(dir, { health: { port: healthPort } }))))
      try {
        const get = (url: string) => call(() => fetch(url).then(async (r) => ({ status: r.status, body: await r.text() })))
        assert.deepStrictEqual(yield* get(`${gw.endpoint}/_health`), { status: 200, body: "{\"status\":\"ok\"}" })
        assert.deepStrictEqual(yield* get(`${gw.endpoint}/_ready`), { status: 200, body: "{\"status\":\"ready\"}" })
        assert.deepStrictEqual(yield* get(`http://127.0.0.1:${healthPort}/health`), { status: 200, body: "{\"status\":\"ok\"}" })
        assert.deepStrictEqual(yield* get(`http://127.0.0.1:${healthPort}/ready`), { status: 200, body: "{\"status\":\"ready\"}" })
        assert.strictEqual((yield* get(`http://127.0.0.1:${healthPort}/bucket`)).status, 404)
        // Buckets named like the probes still work with a signature (path-style).
        const s3 = client(gw.endpoint)
        for (const name of ["health", "healthz", "ready"]) {
          yield* call(() => s3.send(new CreateBucketCommand({ Bucket: name })))
          yield* call(() => s3.send(new PutObjectCommand({ Bucket: name, Key: "_health", Body: name })))
          const list = yield* call(() => s3.send(new ListObjectsV2Command({ Bucket: name })))
          assert.deepStrictEqual(list.Contents?.map((c) => c.Key), ["_health"])
        }
        // Unsigned requests on those buckets are still refused like S3 refuses them.
        assert.strictEqual((yield* get(`${gw.endpoint}/health`)).status, 403)
        assert.strictEqual((yield* get(`${gw.endpoint}/ready/_health`)).status, 403)
      } finally {
        yield* call(() => gw.close())
      }
    }), { timeout: 60_000 })
})

describe("access log", () => {
  it.live("writes one JSON line per request with who/what/outcome and never a secret, signature or key", () =>
    Effect.gen(function*() {
      const dir = tempDir("log")
      const logFile = path.join(dir, "access.log")
      const gw = yield* call(() => start(decode(rawConfig(dir, { accessLog: { file: logFile }, allowPlainHttpSseC: true, virtualHostDomains: ["s3.test"] }))))
      const s3 = client(gw.endpoint)
      const bob = client(gw.endpoint, users.bob)
      const signatures: Array<string> = []
      s3.middlewareStack.add((next) => async (args) => {
        const r = await next(args)
        const auth = (args.request as { headers?: Record<string, string> }).headers?.["authorization"]
        const sig = auth === undefined ? undefined : /Signature=([0-9a-f]+)/.exec(auth)?.[1]
        if (sig !== undefined) signatures.push(sig)
        return r
      }, { step: "finalizeRequest", name: "captureSignature" })
      let presigned = ""
      try {
        yield* call(() => s3.send(new CreateBucketCommand({ Bucket: "logged" })))
        yield* call(() => s3.send(new PutObjectCommand({ Bucket: "logged", Key: "dir/a b.txt", Body: "hello log" })))
        yield* call(() => s3.send(new PutObjectCommand({ Bucket: "logged", Key: "ssec", Body: "customer data", ...ssec })))
        yield* call(() => s3.send(new GetObjectCommand({ Bucket: "logged", Key: "ssec", ...ssec })).then((r) => r.Body!.transformToString()))
        yield* failure(() => s3.send(new GetObjectCommand({ Bucket: "logged", Key: "missing" })))
        yield* failure(() => bob.send(new ListObjectsV2Command({ Bucket: "logged" })))
        const mp = yield* call(() => s3.send(new CreateMultipartUploadCommand({ Bucket: "logged", Key: "mp", ...ssec })))
        const part = yield* call(() => s3.send(new UploadPartCommand({ Bucket: "logged", Key: "mp", UploadId: mp.UploadId!, PartNumber: 1, Body: "only part", ...ssec })))
        yield* call(() =>
          s3.send(new CompleteMultipartUploadCommand({
            Bucket: "logged",
            Key: "mp",
            UploadId: mp.UploadId!,
            MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag! }] }
          }))
        )
        presigned = yield* call(() => getSignedUrl(s3, new GetObjectCommand({ Bucket: "logged", Key: "dir/a b.txt" }), { expiresIn: 60 }))
        assert.strictEqual(yield* call(() => fetch(presigned).then((r) => r.text())), "hello log")
        // Virtual-hosted style: the bucket is in the Host header.
        const vh = new S3ClientClass({
          endpoint: `http://s3.test:${gw.port}`,
          region: "us-east-1",
          credentials: { accessKeyId: users.alice.id, secretAccessKey: users.alice.secret }
        })
        const vhUrl = new URL(yield* call(() => getSignedUrl(vh, new GetObjectCommand({ Bucket: "logged", Key: "dir/a b.txt" }), { expiresIn: 60 })))
        assert.strictEqual(vhUrl.host, `logged.s3.test:${gw.port}`)
        const vhBody = yield* call(() =>
          new Promise<string>((resolve, reject) => {
            http.get({ host: "127.0.0.1", port: gw.port, path: `${vhUrl.pathname}${vhUrl.search}`, headers: { host: vhUrl.host } }, (res) => {
              const parts: Array<Buffer> = []
              res.on("data", (b: Buffer) => parts.push(b))
              res.on("end", () => resolve(Buffer.concat(parts).toString("utf8")))
            }).on("error", reject)
          })
        )
        assert.strictEqual(vhBody, "hello log")
        // A GET's line is written once its response has ended on the server, which can be after
        // the client has read the body: wait for it, so the health check's line comes last.
        yield* call(async () => {
          for (let i = 0; i < 200; i++) {
            const text = fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8") : ""
            if (text.trim().split("\n").length >= 11) return
            await new Promise((r) => setTimeout(r, 10))
          }
        })
        yield* call(() => fetch(`${gw.endpoint}/_health`).then((r) => r.text()))
      } finally {
        yield* call(() => gw.close())
      }
      const text = fs.readFileSync(logFile, "utf8")
      const lines = text.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>)
      assert.strictEqual(lines.length, 12)
      for (const l of lines) {
        assert.hasAllKeys(l, ["time", "requestId", "remote", "method", "user", "operation", "bucket", "key", "status", "bytesIn", "bytesOut", "durationMs", "aborted"])
      }
      const ops = lines.map((l) => [l["operation"], l["status"], l["user"]])
      assert.deepStrictEqual(ops, [
        ["CreateBucket", 200, "alice"],
        ["PutObject", 200, "alice"],
        ["PutObject", 200, "alice"],
        ["GetObject", 200, "alice"],
        ["GetObject", 404, "alice"],
        ["ListObjectsV2", 403, "bob"],
        ["CreateMultipartUpload", 200, "alice"],
        ["UploadPart", 200, "alice"],
        ["CompleteMultipartUpload", 200, "alice"],
        ["GetObject", 200, "alice"],
        ["GetObject", 200, "alice"],
        ["Health", 200, null]
      ])
      assert.strictEqual(lines[10]!["bucket"], "logged")
      assert.strictEqual(lines[10]!["key"], "dir/a b.txt")
      assert.strictEqual(lines[1]!["key"], "dir/a b.txt")
      assert.strictEqual(lines[1]!["bucket"], "logged")
      assert.strictEqual(lines[3]!["bytesOut"], "customer data".length)
      assert.match(String(lines[3]!["requestId"]), /^[0-9A-F]{16}$/)
      // Nothing secret, in any encoding a log might carry it.
      const url = new URL(presigned)
      const forbidden = [
        users.alice.secret,
        users.bob.secret,
        PASSPHRASE,
        customerKey.toString("base64"),
        customerKey.toString("hex"),
        encodeURIComponent(customerKey.toString("base64")),
        ssec.SSECustomerKeyMD5,
        url.searchParams.get("X-Amz-Signature")!,
        "X-Amz-Signature",
        "Signature=",
        ...signatures
      ]
      assert.isAbove(signatures.length, 5)
      for (const f of forbidden) assert.notInclude(text, f)
    }), { timeout: 60_000 })
})

/** A PUT whose body is sent slowly, by hand, so it is in flight while the gateway shuts down. */
const slowPut = (endpoint: string, pathname: string, total: number, chunk: number, everyMs: number) => {
  const url = new URL(endpoint)
  let sent = 0
  let timer: NodeJS.Timeout | undefined
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request({
      host: url.hostname,
      port: url.port,
      method: "PUT",
      path: pathname,
      headers: { "content-length": String(total) }
    }, (res) => {
      const parts: Array<Buffer> = []
      res.on("data", (b: Buffer) => parts.push(b))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString("utf8") }))
    })
    req.on("error", reject)
    timer = setInterval(() => {
      const n = Math.min(chunk, total - sent)
      req.write(Buffer.alloc(n, 0x61))
      sent += n
      if (sent >= total) {
        clearInterval(timer)
        req.end()
      }
    }, everyMs)
  })
  return { response, sent: () => sent }
}

describe("graceful shutdown", () => {
  it.live("lets a request in flight finish, refuses new connections, and stops", () =>
    Effect.gen(function*() {
      const dir = tempDir("drain")
      const gw = yield* call(() => start(decode(rawConfig(dir))))
      const s3 = client(gw.endpoint)
      yield* call(() => s3.send(new CreateBucketCommand({ Bucket: "drain" })))
      const presigned = yield* call(() => getSignedUrl(s3, new PutObjectCommand({ Bucket: "drain", Key: "slow" }), { expiresIn: 60 }))
      const u = new URL(presigned)
      const upload = slowPut(gw.endpoint, `${u.pathname}${u.search}`, 64 * 1024, 4096, 100)
      yield* Effect.sleep("500 millis")
      const closing = gw.close()
      yield* Effect.sleep("200 millis")
      assert.isBelow(upload.sent(), 64 * 1024)
      const refused = yield* Effect.promise(() => fetch(`${gw.endpoint}/_health`).then((r) => String(r.status), (e: { cause?: { code?: string } }) => e.cause?.code ?? "error"))
      assert.strictEqual(refused, "ECONNREFUSED")
      const done = yield* call(() => upload.response)
      assert.strictEqual(done.status, 200, done.body)
      yield* call(() => closing)
      // The object the in-flight request wrote is there for the next gateway on the same root.
      const again = yield* call(() => start(decode(rawConfig(dir))))
      const got = yield* call(() => client(again.endpoint).send(new GetObjectCommand({ Bucket: "drain", Key: "slow" })).then((r) => r.Body!.transformToByteArray()))
      assert.strictEqual(got.length, 64 * 1024)
      yield* call(() => again.close())
    }), { timeout: 60_000 })
})

