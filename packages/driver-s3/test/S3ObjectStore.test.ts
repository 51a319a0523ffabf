/**
 * Header mapping, asserted on the wire: the real SDK sends real HTTP requests to a local server
 * that only records what arrives and answers with the smallest valid S3 reply. No network.
 */
import { assert, describe, it } from "@effect/vitest"
import * as CustomerKey from "@objcrypt/core/CustomerKey"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import { Effect, Redacted, Stream } from "effect"
import type * as Scope from "effect/Scope"
import * as crypto from "node:crypto"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as AwsKms from "../src/AwsKms.js"
import type { S3Config } from "../src/S3Config.js"
import * as S3ObjectStore from "../src/S3ObjectStore.js"
import { decodeValue, encodeValue, escapeName, unescapeName } from "../src/internal/metadata.js"

interface Recorded {
  readonly method: string
  readonly url: URL
  readonly headers: http.IncomingHttpHeaders
  readonly body: Buffer
}

type Reply = { readonly status: number; readonly headers?: Record<string, string>; readonly body?: string }

const xml = (s: string) => `<?xml version="1.0" encoding="UTF-8"?>${s}`
const LM = "Wed, 01 Jan 2025 00:00:00 GMT"

/** The minimal S3 reply for each request shape, echoing the SSE headers it was sent. */
const defaultReply = (r: Recorded, objectSize: number): Reply => {
  const echo: Record<string, string> = {}
  for (const h of ["x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id", "x-amz-server-side-encryption-customer-algorithm", "x-amz-server-side-encryption-customer-key-md5", "x-amz-server-side-encryption-bucket-key-enabled"]) {
    const v = r.headers[h]
    if (typeof v === "string") echo[h] = v
  }
  const q = r.url.searchParams
  if (r.method === "POST" && q.has("uploads")) {
    return { status: 200, headers: echo, body: xml("<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>upload-1</UploadId></InitiateMultipartUploadResult>") }
  }
  if (r.method === "POST" && q.has("uploadId")) {
    return { status: 200, body: xml("<CompleteMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><ETag>&quot;done-2&quot;</ETag></CompleteMultipartUploadResult>") }
  }
  if (r.method === "PUT" && q.has("partNumber") && r.headers["x-amz-copy-source"] !== undefined) {
    return { status: 200, body: xml(`<CopyPartResult><ETag>"cp-${q.get("partNumber")}"</ETag><LastModified>2025-01-01T00:00:00.000Z</LastModified></CopyPartResult>`) }
  }
  if (r.method === "PUT" && q.has("partNumber")) return { status: 200, headers: { ETag: `"part-${q.get("partNumber")}"`, ...echo } }
  if (r.method === "PUT" && r.headers["x-amz-copy-source"] !== undefined) {
    return { status: 200, headers: echo, body: xml(`<CopyObjectResult><ETag>"copied"</ETag><LastModified>2025-01-01T00:00:00.000Z</LastModified></CopyObjectResult>`) }
  }
  if (r.method === "PUT") return { status: 200, headers: { ETag: `"${crypto.createHash("md5").update(r.body).digest("hex")}"`, ...echo } }
  if (r.method === "HEAD" || r.method === "GET") {
    return { status: 200, headers: { "Content-Length": String(objectSize), ETag: "\"e\"", "Last-Modified": LM, ...echo }, body: r.method === "GET" ? "x".repeat(objectSize) : "" }
  }
  if (r.method === "DELETE") return { status: 204 }
  return { status: 400, body: xml("<Error><Code>Unexpected</Code></Error>") }
}

/** A local HTTP server on 127.0.0.1 that records every request. */
const recorder = (options?: { readonly objectSize?: number; readonly reply?: (r: Recorded) => Reply | undefined }): Effect.Effect<
  { readonly endpoint: string; readonly requests: Array<Recorded> },
  never,
  Scope.Scope
> =>
  Effect.acquireRelease(
    Effect.async<{ server: http.Server; endpoint: string; requests: Array<Recorded> }>((resume) => {
      const requests: Array<Recorded> = []
      const server = http.createServer((req, res) => {
        const chunks: Array<Buffer> = []
        req.on("data", (c: Buffer) => chunks.push(c))
        req.on("end", () => {
          const rec: Recorded = { method: req.method ?? "", url: new URL(req.url ?? "/", "http://x"), headers: req.headers, body: Buffer.concat(chunks) }
          requests.push(rec)
          const reply = options?.reply?.(rec) ?? defaultReply(rec, options?.objectSize ?? 100)
          res.writeHead(reply.status, { ...(reply.body === undefined || reply.body === "" ? {} : { "Content-Type": "application/xml" }), ...reply.headers })
          res.end(req.method === "HEAD" ? undefined : reply.body)
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const port = (server.address() as AddressInfo).port
        resume(Effect.succeed({ server, endpoint: `http://127.0.0.1:${port}`, requests }))
      })
    }),
    ({ server }) => Effect.promise(() => new Promise<void>((r) => server.close(() => r())))
  )

const config = (endpoint: string, extra?: Partial<S3Config>): S3Config => ({
  bucket: "bucket",
  endpoint,
  forcePathStyle: true,
  accessKeyId: "AKIDEXAMPLE",
  secretAccessKey: Redacted.make("secret"),
  // These servers are loopback: let SSE-C go over http, as a probe that saw it enforced would.
  facts: { modes: { SseC: "enforced", SseKms: "accepted", SseS3: "accepted" } },
  maxAttempts: 1,
  ...extra
})

const b64 = (k: CustomerKey.CustomerKey) => Buffer.from(Redacted.value(k.material)).toString("base64")
const md5b64 = (b: Uint8Array) => crypto.createHash("md5").update(b).digest("base64")

const assertCustomerHeaders = (h: http.IncomingHttpHeaders, key: CustomerKey.CustomerKey, prefix = "x-amz-", what = "") => {
  assert.strictEqual(h[`${prefix}server-side-encryption-customer-algorithm`], "AES256", `${what} algorithm`)
  assert.strictEqual(h[`${prefix}server-side-encryption-customer-key`], b64(key), `${what} key`)
  assert.strictEqual(h[`${prefix}server-side-encryption-customer-key-md5`], key.md5, `${what} key MD5`)
}

const assertNoStreaming = (r: Recorded) => {
  assert.notInclude(String(r.headers["content-encoding"] ?? ""), "aws-chunked", "no aws-chunked upload")
  assert.isUndefined(r.headers["x-amz-decoded-content-length"])
  assert.isUndefined(r.headers["x-amz-trailer"])
  assert.notStrictEqual(r.headers["x-amz-content-sha256"], "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
  assert.deepStrictEqual(Object.keys(r.headers).filter((h) => h.startsWith("x-amz-checksum-")), [], "no flexible checksum")
  assert.isUndefined(r.headers["transfer-encoding"], "a content length, not chunked transfer")
}

describe("S3ObjectStore on the wire", () => {
  it.scoped("put with SSE-C sends the three customer headers and Content-MD5, no aws-chunked", () =>
    Effect.gen(function*() {
      const srv = yield* recorder()
      const store = yield* S3ObjectStore.make(config(srv.endpoint))
      const key = yield* CustomerKey.generate
      const body = crypto.randomBytes(1000)
      const r = yield* store.put("a/b c", Stream.make(body.subarray(0, 10), body.subarray(10)), { sse: { _tag: "SseC", key } })
      const [req] = srv.requests
      assert.strictEqual(srv.requests.length, 1)
      assert.strictEqual(req!.method, "PUT")
      assert.strictEqual(req!.url.pathname, "/bucket/a/b%20c")
      assertCustomerHeaders(req!.headers, key)
      assert.isUndefined(req!.headers["x-amz-server-side-encryption"])
      assert.strictEqual(req!.headers["content-md5"], md5b64(body))
      assert.strictEqual(req!.headers["content-length"], "1000")
      assertNoStreaming(req!)
      assert.isTrue(req!.body.equals(body))
      assert.deepStrictEqual(r.encryption, { mode: "SseC", customerKeyMd5: key.md5 })
    }))

  it.scoped("put with SSE-KMS sends key id, base64-JSON context and bucket key", () =>
    Effect.gen(function*() {
      const srv = yield* recorder()
      const store = yield* S3ObjectStore.make(config(srv.endpoint))
      const context = { team: "a", path: "x/é" }
      const r = yield* store.put("k", Stream.make(Buffer.from("hi")), { sse: { _tag: "SseKms", keyId: "alias/k", context, bucketKey: true } })
      const h = srv.requests[0]!.headers
      assert.strictEqual(h["x-amz-server-side-encryption"], "aws:kms")
      assert.strictEqual(h["x-amz-server-side-encryption-aws-kms-key-id"], "alias/k")
      assert.deepStrictEqual(JSON.parse(Buffer.from(String(h["x-amz-server-side-encryption-context"]), "base64").toString("utf8")), context)
      assert.strictEqual(h["x-amz-server-side-encryption-bucket-key-enabled"], "true")
      assert.isUndefined(h["x-amz-server-side-encryption-customer-key"])
      assert.deepStrictEqual(r.encryption, { mode: "SseKms", kmsKeyId: "alias/k", bucketKeyEnabled: true })
    }))

  it.scoped("put with SSE-S3 sends AES256 only; no mode sends no SSE header", () =>
    Effect.gen(function*() {
      const srv = yield* recorder()
      const store = yield* S3ObjectStore.make(config(srv.endpoint))
      yield* store.put("k", Stream.make(Buffer.from("hi")), { sse: { _tag: "SseS3" } })
      yield* store.put("k2", Stream.make(Buffer.from("hi")))
      assert.strictEqual(srv.requests[0]!.headers["x-amz-server-side-encryption"], "AES256")
      assert.deepStrictEqual(Object.keys(srv.requests[1]!.headers).filter((h) => h.includes("server-side-encryption")), [])
    }))

  it.scoped("get and head with SSE-C send the customer headers, never x-amz-server-side-encryption", () =>
    Effect.gen(function*() {
      const srv = yield* recorder({ objectSize: 42 })
      const store = yield* S3ObjectStore.make(config(srv.endpoint))
      const key = yield* CustomerKey.generate
      const got = yield* ObjectStore.readAll(store, "k", { sse: { _tag: "SseC", key }, range: ObjectStore.range.suffix(5) })
      const info = yield* store.head("k", { sse: { _tag: "SseC", key } })
      const [g, h] = srv.requests
      assert.strictEqual(g!.method, "GET")
      assert.strictEqual(g!.headers["range"], "bytes=-5")
      assertCustomerHeaders(g!.headers, key, "x-amz-", "get")
      assertCustomerHeaders(h!.headers, key, "x-amz-", "head")
      assert.isUndefined(g!.headers["x-amz-server-side-encryption"])
      assert.strictEqual(got.bytes.length, 42)
      assert.deepStrictEqual(info.encryption, { mode: "SseC", customerKeyMd5: key.md5 })
    }))

  it.scoped("copy sends the copy-source customer headers for the source and the destination's SSE headers", () =>
    Effect.gen(function*() {
      const srv = yield* recorder({ objectSize: 10 })
      const store = yield* S3ObjectStore.make(config(srv.endpoint))
      const src = yield* CustomerKey.generate
      const dst = yield* CustomerKey.generate
      yield* store.copy("from/é", "to", { sourceSse: { _tag: "SseC", key: src }, sse: { _tag: "SseC", key: dst } })
      const [head, copy] = srv.requests
      assert.strictEqual(head!.method, "HEAD")
      assertCustomerHeaders(head!.headers, src, "x-amz-", "source head")
      assert.strictEqual(copy!.headers["x-amz-copy-source"], "bucket/from/%C3%A9")
      assertCustomerHeaders(copy!.headers, src, "x-amz-copy-source-", "copy source")
      assertCustomerHeaders(copy!.headers, dst, "x-amz-", "destination")
      yield* store.copy("from", "to-kms", { sse: { _tag: "SseKms", keyId: "k1" } })
      const kms = srv.requests[3]!
      assert.strictEqual(kms.headers["x-amz-server-side-encryption"], "aws:kms")
      assert.strictEqual(kms.headers["x-amz-server-side-encryption-aws-kms-key-id"], "k1")
      assert.isUndefined(kms.headers["x-amz-copy-source-server-side-encryption-customer-key"])
    }))

  it.scoped("multipart put: the key on create, every part and complete; parts carry Content-MD5", () =>
    Effect.gen(function*() {
      const srv = yield* recorder()
      const MiB = 1024 * 1024
      const store = yield* S3ObjectStore.make(config(srv.endpoint, { partSize: 5 * MiB }))
      const key = yield* CustomerKey.generate
      const body = crypto.randomBytes(11 * MiB)
      const r = yield* store.put("big", Stream.make(body), { sse: { _tag: "SseC", key } })
      const create = srv.requests.find((x) => x.url.searchParams.has("uploads"))!
      const parts = srv.requests.filter((x) => x.url.searchParams.has("partNumber"))
      const done = srv.requests.find((x) => x.method === "POST" && x.url.searchParams.has("uploadId"))!
      assertCustomerHeaders(create.headers, key, "x-amz-", "create")
      assert.strictEqual(parts.length, 3)
      for (const p of parts) {
        assertCustomerHeaders(p.headers, key, "x-amz-", `part ${p.url.searchParams.get("partNumber")}`)
        assert.strictEqual(p.headers["content-md5"], md5b64(p.body))
        assertNoStreaming(p)
      }
      assert.deepStrictEqual(parts.map((p) => p.body.length).sort((a, b) => a - b), [MiB, 5 * MiB, 5 * MiB])
      assertCustomerHeaders(done.headers, key, "x-amz-", "complete")
      assert.include(done.body.toString(), "<PartNumber>3</PartNumber>")
      assert.strictEqual(r.etag, "done-2")
      assert.strictEqual(r.size, body.length)
    }))

  it.scoped("large copies use UploadPartCopy with ranges and both sets of customer headers", () =>
    Effect.gen(function*() {
      const MiB = 1024 * 1024
      const srv = yield* recorder({ objectSize: 12 * MiB })
      const store = yield* S3ObjectStore.make(config(srv.endpoint, { partSize: 5 * MiB, multipartCopyThreshold: 5 * MiB }))
      const src = yield* CustomerKey.generate
      const dst = yield* CustomerKey.generate
      yield* store.copy("src", "dst", { sourceSse: { _tag: "SseC", key: src }, sse: { _tag: "SseC", key: dst } })
      const parts = srv.requests.filter((x) => x.url.searchParams.has("partNumber"))
      assert.deepStrictEqual(
        parts.map((p) => p.headers["x-amz-copy-source-range"]).sort(),
        ["bytes=0-5242879", "bytes=10485760-12582911", "bytes=5242880-10485759"]
      )
      for (const p of parts) {
        assertCustomerHeaders(p.headers, src, "x-amz-copy-source-", "part copy source")
        assertCustomerHeaders(p.headers, dst, "x-amz-", "part destination")
      }
    }))

  it.scoped("ifSourceMatch: x-amz-copy-source-if-match on CopyObject and on every UploadPartCopy; 412 is PreconditionFailed", () =>
    Effect.gen(function*() {
      const MiB = 1024 * 1024
      let replaced = false
      const srv = yield* recorder({
        objectSize: 12 * MiB,
        reply: (r) =>
          replaced && r.headers["x-amz-copy-source"] !== undefined
            ? { status: 412, body: xml("<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>") }
            : undefined
      })
      const single = yield* S3ObjectStore.make(config(srv.endpoint))
      const parts = yield* S3ObjectStore.make(config(srv.endpoint, { partSize: 5 * MiB, multipartCopyThreshold: 5 * MiB }))
      yield* single.copy("src", "src", { metadata: { v: "2" }, ifSourceMatch: "e" })
      const copy = srv.requests.find((x) => x.method === "PUT" && x.headers["x-amz-copy-source"] !== undefined)!
      assert.strictEqual(copy.headers["x-amz-copy-source-if-match"], "\"e\"")
      assert.isUndefined(copy.headers["x-amz-copy-if-match"], "RGW's header only for RGW")
      // Ceph RGW reads the condition under its own name: both are sent, and signed.
      srv.requests.length = 0
      const rgw = yield* S3ObjectStore.make(config(srv.endpoint, { profile: "ceph-rgw" }))
      yield* rgw.copy("src", "src", { metadata: { v: "2" }, ifSourceMatch: "e" })
      const rgwCopy = srv.requests.find((x) => x.method === "PUT" && x.headers["x-amz-copy-source"] !== undefined)!
      assert.strictEqual(rgwCopy.headers["x-amz-copy-if-match"], "\"e\"")
      assert.strictEqual(rgwCopy.headers["x-amz-copy-source-if-match"], "\"e\"")
      assert.include(String(rgwCopy.headers["authorization"]), "x-amz-copy-if-match", "signed")
      srv.requests.length = 0
      yield* parts.copy("src", "dst", { ifSourceMatch: "\"e\"" })
      const partCopies = srv.requests.filter((x) => x.url.searchParams.has("partNumber"))
      assert.strictEqual(partCopies.length, 3)
      for (const p of partCopies) assert.strictEqual(p.headers["x-amz-copy-source-if-match"], "\"e\"", `part ${p.url.searchParams.get("partNumber")}`)
      // Without the option, no condition.
      srv.requests.length = 0
      yield* single.copy("src", "dst")
      assert.isUndefined(srv.requests.find((x) => x.headers["x-amz-copy-source"] !== undefined)!.headers["x-amz-copy-source-if-match"])
      // A stale etag fails on the driver's own head, before any copy request.
      srv.requests.length = 0
      const stale = yield* Effect.flip(single.copy("src", "dst", { ifSourceMatch: "old" }))
      assert.deepStrictEqual([stale._tag, (stale as { key?: string }).key], ["PreconditionFailed", "src"])
      assert.deepStrictEqual(srv.requests.map((x) => x.method), ["HEAD"])
      // Replaced between the head and the copy: the server's 412, on either path; the upload is aborted.
      replaced = true
      for (const store of [single, parts]) {
        srv.requests.length = 0
        const e = yield* Effect.flip(store.copy("src", "dst", { ifSourceMatch: "e" }))
        assert.strictEqual(e._tag, "PreconditionFailed")
        assert.strictEqual((e as { reason?: string }).reason, "the source's etag does not match (it was replaced)")
      }
      assert.isTrue(srv.requests.some((x) => x.method === "DELETE" && x.url.searchParams.has("uploadId")), "the multipart copy is aborted")
    }))

  it.scoped("ifMatch: If-Match on PutObject (quoted; bare on ceph-rgw) and only on CompleteMultipartUpload of a multipart put", () =>
    Effect.gen(function*() {
      const srv = yield* recorder()
      const store = yield* S3ObjectStore.make(config(srv.endpoint))
      const rgw = yield* S3ObjectStore.make(config(srv.endpoint, { profile: "ceph-rgw" }))
      yield* store.put("k", Stream.make(Buffer.from("x")), { ifMatch: "abc" })
      assert.strictEqual(srv.requests.at(-1)!.headers["if-match"], "\"abc\"")
      yield* store.put("k", Stream.make(Buffer.from("x")), { ifMatch: "\"abc\"" })
      assert.strictEqual(srv.requests.at(-1)!.headers["if-match"], "\"abc\"")
      yield* rgw.put("k", Stream.make(Buffer.from("x")), { ifMatch: "\"abc\"" })
      assert.strictEqual(srv.requests.at(-1)!.headers["if-match"], "abc")
      yield* store.put("k", Stream.make(Buffer.from("x")))
      assert.isUndefined(srv.requests.at(-1)!.headers["if-match"])

      const MiB = 1024 * 1024
      const big = yield* S3ObjectStore.make(config(srv.endpoint, { partSize: 5 * MiB }))
      srv.requests.length = 0
      yield* big.put("big", Stream.make(crypto.randomBytes(6 * MiB)), { ifMatch: "abc" })
      const done = srv.requests.filter((x) => x.method === "POST" && x.url.searchParams.has("uploadId"))
      assert.strictEqual(done.length, 1)
      assert.strictEqual(done[0]!.headers["if-match"], "\"abc\"")
      assert.deepStrictEqual(srv.requests.filter((x) => x !== done[0]).map((x) => x.headers["if-match"]), [undefined, undefined, undefined], "not on create or parts")
    }))

  it.scoped("ifMatch: 412 and 404 NoSuchKey are PreconditionFailed; with ifNoneMatch, or on createMultipart, a 400 usage error before any request", () =>
    Effect.gen(function*() {
      const srv = yield* recorder({
        reply: (r) =>
          r.method === "PUT" && r.url.pathname === "/bucket/stale"
            ? { status: 412, body: xml("<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>") }
            : r.method === "PUT" && r.url.pathname === "/bucket/gone"
            ? { status: 404, body: xml("<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>") }
            : undefined
      })
      const store = yield* S3ObjectStore.make(config(srv.endpoint))
      for (const key of ["stale", "gone"]) {
        const e = yield* Effect.flip(store.put(key, Stream.make(Buffer.from("x")), { ifMatch: "abc" }))
        assert.deepStrictEqual([e._tag, (e as { key?: string }).key], ["PreconditionFailed", key])
      }
      srv.requests.length = 0
      const usage = [
        yield* Effect.flip(store.put("k", Stream.make(Buffer.from("x")), { ifMatch: "abc", ifNoneMatch: "*" })),
        yield* Effect.flip(store.createMultipart("k", { ifMatch: "abc", ifNoneMatch: "*" })),
        yield* Effect.flip(store.createMultipart("k", { ifMatch: "abc" }))
      ]
      for (const e of usage) {
        assert.deepStrictEqual([e._tag, (e as { code?: string }).code, (e as { status?: number }).status], ["ProviderError", "InvalidRequest", 400])
      }
      assert.strictEqual(srv.requests.length, 0)
    }))

  it.scoped("remove ifMatch: quoted If-Match on DeleteObject; 412, 404 NoSuchKey and 409 are PreconditionFailed; ceph-rgw refuses it (400) before any request", () =>
    Effect.gen(function*() {
      const deleting = (r: Recorded, key: string) => r.method === "DELETE" && r.url.pathname === `/bucket/${key}`
      const srv = yield* recorder({
        reply: (r) =>
          deleting(r, "stale")
            ? { status: 412, body: xml("<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>") }
            : deleting(r, "gone")
            ? { status: 404, body: xml("<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>") }
            : deleting(r, "raced")
            ? { status: 409, body: xml("<Error><Code>ConditionalRequestConflict</Code><Message>A conflicting operation occurred</Message></Error>") }
            : undefined
      })
      const store = yield* S3ObjectStore.make(config(srv.endpoint))
      const rgw = yield* S3ObjectStore.make(config(srv.endpoint, { profile: "ceph-rgw" }))
      yield* store.remove("k", { ifMatch: "abc" })
      assert.deepStrictEqual([srv.requests.at(-1)!.method, srv.requests.at(-1)!.headers["if-match"]], ["DELETE", "\"abc\""])
      yield* store.remove("k", { ifMatch: "\"abc\"" })
      assert.strictEqual(srv.requests.at(-1)!.headers["if-match"], "\"abc\"")
      assert.include(String(srv.requests.at(-1)!.headers["authorization"]), "if-match", "signed")
      yield* store.remove("k")
      assert.isUndefined(srv.requests.at(-1)!.headers["if-match"])

      const failed = [
        yield* Effect.flip(store.remove("stale", { ifMatch: "abc" })),
        yield* Effect.flip(store.remove("gone", { ifMatch: "abc" })),
        yield* Effect.flip(store.remove("raced", { ifMatch: "abc" }))
      ]
      assert.deepStrictEqual(failed.map((e) => [e._tag, (e as { key?: string }).key]), [["PreconditionFailed", "stale"], ["PreconditionFailed", "gone"], ["PreconditionFailed", "raced"]])
      assert.match(failed[1]!.message, /does not exist \(If-Match\)/)
      // Without ifMatch, a missing key is still a success.
      yield* store.remove("gone")

      srv.requests.length = 0
      for (const ifMatch of ["abc", "\"abc\""]) {
        const e = yield* Effect.flip(rgw.remove("k", { ifMatch }))
        assert.deepStrictEqual([e._tag, (e as { code?: string }).code, (e as { status?: number }).status], ["ProviderError", "InvalidRequest", 400])
        assert.match(e.message, /ignores If-Match on DeleteObject/)
      }
      assert.strictEqual(srv.requests.length, 0, "nothing sent")
      yield* rgw.remove("k")
      assert.deepStrictEqual(srv.requests.map((r) => [r.method, r.headers["if-match"]]), [["DELETE", undefined]], "without ifMatch, ceph-rgw removes as usual")
    }))

  it.scoped("completeMultipart: ifNoneMatch/ifMatch go as If-None-Match/If-Match on CompleteMultipartUpload; 412 and 404 NoSuchKey are PreconditionFailed, the upload not aborted", () =>
    Effect.gen(function*() {
      const completion = (r: Recorded) => r.method === "POST" && r.url.searchParams.has("uploadId")
      const srv = yield* recorder({
        reply: (r) =>
          completion(r) && r.url.pathname === "/bucket/stale"
            ? { status: 412, body: xml("<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>") }
            : completion(r) && r.url.pathname === "/bucket/gone"
            ? { status: 404, body: xml("<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>") }
            : undefined
      })
      const store = yield* S3ObjectStore.make(config(srv.endpoint))
      const upload = (key: string): ObjectStore.MultipartUpload => ({ key, uploadId: "upload-1" })
      const parts = [{ partNumber: 1, etag: "part-1", size: 1 }]
      const sent = () => {
        const last = srv.requests.at(-1)!
        assert.isTrue(completion(last), "a CompleteMultipartUpload")
        return [last.headers["if-none-match"], last.headers["if-match"]]
      }
      yield* store.completeMultipart(upload("k"), parts, { ifNoneMatch: "*" })
      assert.deepStrictEqual(sent(), ["*", undefined])
      yield* store.completeMultipart(upload("k"), parts, { ifMatch: "abc" })
      assert.deepStrictEqual(sent(), [undefined, "\"abc\""])
      yield* store.completeMultipart(upload("k"), parts, { ifMatch: "\"abc\"" })
      assert.deepStrictEqual(sent(), [undefined, "\"abc\""])
      yield* store.completeMultipart(upload("k"), parts)
      assert.deepStrictEqual(sent(), [undefined, undefined])

      srv.requests.length = 0
      const failed = [
        yield* Effect.flip(store.completeMultipart(upload("stale"), parts, { ifNoneMatch: "*" })),
        yield* Effect.flip(store.completeMultipart(upload("stale"), parts, { ifMatch: "abc" })),
        yield* Effect.flip(store.completeMultipart(upload("gone"), parts, { ifMatch: "abc" }))
      ]
      assert.deepStrictEqual(failed.map((e) => [e._tag, (e as { key?: string }).key]), [["PreconditionFailed", "stale"], ["PreconditionFailed", "stale"], ["PreconditionFailed", "gone"]])
      assert.match(failed[2]!.message, /does not exist \(If-Match\)/)
      assert.deepStrictEqual(srv.requests.map((r) => r.method), ["POST", "POST", "POST"], "only the completions: no abort, no ListParts")

      // A multipart put sends ifNoneMatch on its completion too, and aborts its own upload on a 412.
      const MiB = 1024 * 1024
      const big = yield* S3ObjectStore.make(config(srv.endpoint, { partSize: 5 * MiB }))
      srv.requests.length = 0
      yield* big.put("big", Stream.make(crypto.randomBytes(6 * MiB)), { ifNoneMatch: "*" })
      const done = srv.requests.filter(completion)
      assert.deepStrictEqual(done.map((r) => r.headers["if-none-match"]), ["*"])
      assert.deepStrictEqual(srv.requests.filter((r) => !completion(r)).map((r) => r.headers["if-none-match"]), [undefined, undefined, undefined], "not on create or parts")
      srv.requests.length = 0
      assert.strictEqual((yield* Effect.flip(big.put("stale", Stream.make(crypto.randomBytes(6 * MiB)), { ifNoneMatch: "*" })))._tag, "PreconditionFailed")
      assert.deepStrictEqual(srv.requests.map((r) => r.method), ["POST", "PUT", "PUT", "POST", "DELETE"], "put's own upload is aborted")
    }))

  it.scoped("completeMultipart: ifMatch with ifNoneMatch is a 400 before any request; ceph-rgw refuses either condition before any request; createMultipart refuses both", () =>
    Effect.gen(function*() {
      const srv = yield* recorder()
      const store = yield* S3ObjectStore.make(config(srv.endpoint))
      const rgw = yield* S3ObjectStore.make(config(srv.endpoint, { profile: "ceph-rgw" }))
      const upload: ObjectStore.MultipartUpload = { key: "k", uploadId: "upload-1" }
      const parts = [{ partNumber: 1, etag: "part-1", size: 1 }]
      const badRequest = (e: { readonly _tag: string; readonly message: string }) => {
        assert.deepStrictEqual([e._tag, (e as { code?: string }).code, (e as { status?: number }).status], ["ProviderError", "InvalidRequest", 400])
        return e
      }
      for (const s of [store, rgw]) {
        const both = badRequest(yield* Effect.flip(s.completeMultipart(upload, parts, { ifMatch: "abc", ifNoneMatch: "*" })))
        assert.match(both.message, /cannot be combined/)
      }
      for (const options of [{ ifNoneMatch: "*" as const }, { ifMatch: "abc" }]) {
        const e = badRequest(yield* Effect.flip(rgw.completeMultipart(upload, parts, options)))
        assert.match(e.message, /ignores If-Match and If-None-Match when completing/)
        assert.match(e.message, options.ifMatch === undefined ? /with If-None-Match is refused/ : /with If-Match is refused/)
        badRequest(yield* Effect.flip(store.createMultipart("k", options)))
        badRequest(yield* Effect.flip(rgw.put("k", Stream.make(crypto.randomBytes(9 * 1024 * 1024)), options)))
      }
      assert.strictEqual(srv.requests.length, 0, "nothing sent")
      // Without a condition, ceph-rgw completes as usual.
      const done = yield* rgw.completeMultipart(upload, parts)
      assert.strictEqual(done.etag, "done-2")
      assert.strictEqual(srv.requests.length, 1)
    }))

  it.scoped("non-ASCII metadata values go as RFC 2047 encoded-words and come back decoded", () =>
    Effect.gen(function*() {
      const srv = yield* recorder()
      const store = yield* S3ObjectStore.make(config(srv.endpoint))
      yield* store.put("k", Stream.make(Buffer.from("x")), { metadata: { plain: "ascii", utf: "héllo 🔐" } })
      const h = srv.requests[0]!.headers
      assert.strictEqual(h["x-amz-meta-plain"], "ascii")
      assert.strictEqual(h["x-amz-meta-utf"], `=?UTF-8?B?${Buffer.from("héllo 🔐").toString("base64")}?=`)
      assert.strictEqual(decodeValue(String(h["x-amz-meta-utf"])), "héllo 🔐")
      assert.strictEqual(decodeValue("=?UTF-8?Q?h=C3=A9llo_w?= =?UTF-8?B?w7ZybGQ=?="), "héllo wörld")
      assert.strictEqual(encodeValue(" padded "), `=?UTF-8?B?${Buffer.from(" padded ").toString("base64")}?=`)
      for (const k of ["a_b", "a.b", "a.ub", "a-b", "x_.d_y"]) assert.strictEqual(unescapeName(escapeName(k)), k)
      assert.notInclude(escapeName("with-dash_and.dot"), "_")
    }))

  it.scoped("an unsupported mode fails with UnsupportedMode before any request", () =>
    Effect.gen(function*() {
      const srv = yield* recorder()
      // Plain http, no probe: a customer key must not travel in the clear.
      const store = yield* S3ObjectStore.make({ ...config(srv.endpoint), facts: undefined })
      const key = yield* CustomerKey.generate
      const e = yield* Effect.flip(store.put("k", Stream.make(Buffer.from("x")), { sse: { _tag: "SseC", key } }))
      assert.strictEqual(e._tag, "UnsupportedMode")
      const e2 = yield* Effect.flip(store.createMultipart("k", { sse: { _tag: "SseC", key } }))
      assert.strictEqual(e2._tag, "UnsupportedMode")
      const e3 = yield* Effect.flip(store.head("k", { sse: { _tag: "SseC", key } }))
      assert.strictEqual(e3._tag, "AccessDenied")
      const rgw = yield* S3ObjectStore.make({ ...config(srv.endpoint), profile: "ceph-rgw", facts: { modes: { SseC: "enforced", SseKms: "accepted" } } })
      const e4 = yield* Effect.flip(rgw.put("k", Stream.make(Buffer.from("x")), { sse: { _tag: "SseS3" } }))
      assert.deepStrictEqual([e4._tag, (e4 as { mode?: string }).mode], ["UnsupportedMode", "SseS3"])
      assert.strictEqual(srv.requests.length, 0)
      assert.deepStrictEqual([...rgw.nativeModes].sort(), ["None", "SseC", "SseKms"])
    }))

  it.scoped("invalid keys are refused before any request", () =>
    Effect.gen(function*() {
      const srv = yield* recorder()
      const store = yield* S3ObjectStore.make(config(srv.endpoint))
      assert.strictEqual((yield* Effect.flip(store.put("", Stream.make(Buffer.from("x")))))._tag, "InvalidObjectKey")
      assert.strictEqual((yield* Effect.flip(store.head("é".repeat(513))))._tag, "InvalidObjectKey")
      assert.strictEqual(srv.requests.length, 0)
    }))

  it.scoped("S3 error replies become typed StoreErrors without the key material", () =>
    Effect.gen(function*() {
      const replies: Record<string, Reply> = {
        "/bucket/missing": { status: 404, body: xml("<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>") },
        "/bucket/denied": { status: 403, body: xml("<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>") },
        "/bucket/exists": { status: 412, body: xml("<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>") },
        "/bucket/boom": { status: 503, body: xml("<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>") },
        "/bucket/range": { status: 416, body: xml("<Error><Code>InvalidRange</Code><Message>The requested range is not satisfiable</Message></Error>") },
        "/bucket/ssec": { status: 400, body: xml("<Error><Code>InvalidRequest</Code><Message>The object was stored using a form of Server Side Encryption.</Message></Error>") }
      }
      const srv = yield* recorder({
        objectSize: 7,
        reply: (r) => (r.method === "HEAD" && r.url.pathname === "/bucket/range" ? undefined : replies[r.url.pathname])
      })
      const store = yield* S3ObjectStore.make(config(srv.endpoint))
      const key = yield* CustomerKey.generate
      const sse = { _tag: "SseC" as const, key }
      const missing = yield* Effect.flip(ObjectStore.readAll(store, "missing"))
      assert.deepStrictEqual([missing._tag, (missing as { key?: string }).key], ["ObjectNotFound", "missing"])
      const denied = yield* Effect.flip(ObjectStore.readAll(store, "denied", { sse }))
      assert.strictEqual(denied._tag, "AccessDenied")
      assert.notInclude(denied.message, b64(key))
      assert.notInclude(denied.message, key.md5)
      const exists = yield* Effect.flip(store.put("exists", Stream.make(Buffer.from("x")), { ifNoneMatch: "*" }))
      assert.strictEqual(exists._tag, "PreconditionFailed")
      assert.strictEqual(srv.requests.at(-1)!.headers["if-none-match"], "*")
      const boom = yield* Effect.flip(store.put("boom", Stream.make(Buffer.from("x")), { sse }))
      assert.deepStrictEqual([boom._tag, (boom as { code?: string }).code, (boom as { status?: number }).status], ["ProviderError", "SlowDown", 503])
      assert.notInclude(JSON.stringify(boom), b64(key))
      const range = yield* Effect.flip(ObjectStore.readAll(store, "range", { range: ObjectStore.range.from(100) }))
      assert.deepStrictEqual([range._tag, (range as { size?: number }).size], ["InvalidRange", 7])
      const ssec = yield* Effect.flip(ObjectStore.readAll(store, "ssec"))
      assert.strictEqual(ssec._tag, "AccessDenied")
    }))
})

describe("AwsKms errors", () => {
  it("maps AWS KMS exception names to KmsError reasons", () => {
    const cases: ReadonlyArray<readonly [string, number, string]> = [
      ["NotFoundException", 400, "NotFound"],
      ["DisabledException", 400, "Disabled"],
      ["InvalidCiphertextException", 400, "InvalidCiphertext"],
      ["IncorrectKeyException", 400, "InvalidCiphertext"],
      ["AccessDeniedException", 400, "AccessDenied"],
      ["KMSInvalidStateException", 400, "InvalidState"],
      ["KeyUnavailableException", 500, "Unavailable"],
      ["ValidationException", 400, "Invalid"],
      ["SomethingNew", 403, "AccessDenied"],
      ["SomethingElse", 500, "Unavailable"]
    ]
    for (const [name, status, reason] of cases) {
      const e = Object.assign(new Error("the service message"), { name, $fault: "client", $metadata: { httpStatusCode: status } })
      const k = AwsKms.toKmsError(e, "alias/x")
      assert.strictEqual(k.reason, reason, name)
      assert.strictEqual(k.keyId, "alias/x")
    }
  })
})
