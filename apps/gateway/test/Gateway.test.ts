import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteBucketEncryptionCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetBucketEncryptionCommand,
  GetObjectCommand,
  GetObjectRetentionCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutBucketEncryptionCommand,
  PutObjectCommand,
  UploadPartCommand
} from "@aws-sdk/client-s3"
import type { S3Client } from "@aws-sdk/client-s3"
import { getSignedUrl } from "@aws-sdk/s3-request-presigner"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import { Readable } from "node:stream"
import { client, configFor, filesUnder, makeDirs, start, users } from "./harness.js"
import type { Gateway } from "./harness.js"

const MARKER = "PLAINTEXT-MARKER-7f3a9c"
const MiB = 1024 * 1024

const call = <A>(f: () => Promise<A>) => Effect.promise(f)
/** Runs an SDK call expected to fail; yields the error's S3 code and HTTP status. */
const refused = (f: () => Promise<unknown>) =>
  Effect.tryPromise({ try: f, catch: (e) => e as { name: string; Code?: string; $metadata?: { httpStatusCode?: number } } }).pipe(
    Effect.flip,
    Effect.map((e) => ({ code: e.Code ?? e.name, status: e.$metadata?.httpStatusCode }))
  )
const text = (b: { transformToString: () => Promise<string> } | undefined) => call(() => b!.transformToString())
const bytes = (b: { transformToByteArray: () => Promise<Uint8Array> } | undefined) => call(() => b!.transformToByteArray())

const ssec = () => {
  const key = crypto.randomBytes(32)
  return {
    SSECustomerAlgorithm: "AES256",
    SSECustomerKey: key.toString("base64"),
    SSECustomerKeyMD5: crypto.createHash("md5").update(key).digest("base64")
  }
}

const body = (n: number, seed = 1) => {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff
  const m = Buffer.from(MARKER)
  m.copy(b, 0)
  return b
}

let dirs: ReturnType<typeof makeDirs>
let gw: Gateway
let gw2: Gateway
let s3: S3Client
let s3b: S3Client

beforeAll(async () => {
  dirs = makeDirs()
  gw = await start(configFor(dirs))
  gw2 = await start(configFor(dirs))
  s3 = client(gw)
  s3b = client(gw2)
  await s3.send(new CreateBucketCommand({ Bucket: "alpha" }))
}, 60_000)

afterAll(async () => {
  await gw?.close()
  await gw2?.close()
  fs.rmSync(dirs.dir, { recursive: true, force: true })
})

describe("buckets", () => {
  it.effect("creates, lists, heads and deletes buckets", () =>
    Effect.gen(function*() {
      yield* call(() => s3.send(new CreateBucketCommand({ Bucket: "tmp-bucket" })))
      // us-east-1: S3 answers its owner's re-creation 200 (GatewayConformance covers other regions).
      yield* call(() => s3.send(new CreateBucketCommand({ Bucket: "tmp-bucket" })))
      const list = yield* call(() => s3.send(new ListBucketsCommand({})))
      assert.include(list.Buckets!.map((b) => b.Name), "tmp-bucket")
      yield* call(() => s3.send(new HeadBucketCommand({ Bucket: "tmp-bucket" })))
      yield* call(() => s3.send(new PutObjectCommand({ Bucket: "tmp-bucket", Key: "x", Body: "x" })))
      const notEmpty = yield* refused(() => s3.send(new DeleteBucketCommand({ Bucket: "tmp-bucket" })))
      assert.deepStrictEqual(notEmpty, { code: "BucketNotEmpty", status: 409 })
      yield* call(() => s3.send(new DeleteObjectCommand({ Bucket: "tmp-bucket", Key: "x" })))
      yield* call(() => s3.send(new DeleteBucketCommand({ Bucket: "tmp-bucket" })))
      const gone = yield* refused(() => s3.send(new HeadBucketCommand({ Bucket: "tmp-bucket" })))
      assert.strictEqual(gone.status, 404)
      const missing = yield* refused(() => s3.send(new GetObjectCommand({ Bucket: "no-such-bucket", Key: "k" })))
      assert.deepStrictEqual(missing, { code: "NoSuchBucket", status: 404 })
    }))

  it.effect("puts, gets and deletes the default encryption", () =>
    Effect.gen(function*() {
      yield* call(() => s3.send(new CreateBucketCommand({ Bucket: "kms-default" })))
      yield* call(() => s3.send(new PutBucketEncryptionCommand({
        Bucket: "kms-default",
        ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: "aws:kms" }, BucketKeyEnabled: true }] }
      })))
      const got = yield* call(() => s3.send(new GetBucketEncryptionCommand({ Bucket: "kms-default" })))
      assert.strictEqual(got.ServerSideEncryptionConfiguration?.Rules?.[0]?.ApplyServerSideEncryptionByDefault?.SSEAlgorithm, "aws:kms")
      const put = yield* call(() => s3.send(new PutObjectCommand({ Bucket: "kms-default", Key: "k", Body: "hello" })))
      assert.strictEqual(put.ServerSideEncryption, "aws:kms")
      assert.strictEqual(put.SSEKMSKeyId, "objcrypt-gateway-kms")
      assert.strictEqual(put.BucketKeyEnabled, true)
      const head = yield* call(() => s3.send(new HeadObjectCommand({ Bucket: "kms-default", Key: "k" })))
      assert.strictEqual(head.ServerSideEncryption, "aws:kms")
      yield* call(() => s3.send(new DeleteBucketEncryptionCommand({ Bucket: "kms-default" })))
      const put2 = yield* call(() => s3.send(new PutObjectCommand({ Bucket: "kms-default", Key: "k2", Body: "hello" })))
      assert.strictEqual(put2.ServerSideEncryption, "AES256")
      const badKey = yield* refused(() => s3.send(new PutBucketEncryptionCommand({
        Bucket: "kms-default",
        ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: "aws:kms", KMSMasterKeyID: "no-such-key" } }] }
      })))
      assert.strictEqual(badKey.code, "KMS.NotFoundException")
    }))
})

describe("objects", () => {
  it.effect("round-trips every SSE option with ranges, head and metadata", () =>
    Effect.gen(function*() {
      const data = body(3 * MiB + 123)
      const c = ssec()
      const modes: ReadonlyArray<readonly [string, Record<string, string>, Record<string, string>, string | undefined]> = [
        ["none", {}, {}, "AES256"],
        ["sse-s3", { ServerSideEncryption: "AES256" }, {}, "AES256"],
        ["sse-kms", { ServerSideEncryption: "aws:kms", SSEKMSKeyId: "objcrypt-gateway-kms" }, {}, "aws:kms"],
        ["sse-c", c, c, undefined]
      ]
      for (const [name, put, get, expected] of modes) {
        const key = `modes/${name}/obj ü+%.bin`
        const r = yield* call(() => s3.send(new PutObjectCommand({ Bucket: "alpha", Key: key, Body: data, Metadata: { color: "blue" }, ContentType: "application/x-test", ...put })))
        assert.strictEqual(r.ServerSideEncryption, expected)
        const o = yield* call(() => s3b.send(new GetObjectCommand({ Bucket: "alpha", Key: key, ...get })))
        assert.strictEqual(o.ServerSideEncryption, expected)
        assert.strictEqual(o.ContentType, "application/x-test")
        assert.strictEqual(o.Metadata?.["color"], "blue")
        assert.strictEqual(o.ContentLength, data.length)
        assert.isTrue(Buffer.from(yield* bytes(o.Body)).equals(data), name)
        if (name === "sse-c") assert.strictEqual(o.SSECustomerKeyMD5, c.SSECustomerKeyMD5)
        const ranged = yield* call(() => s3.send(new GetObjectCommand({ Bucket: "alpha", Key: key, Range: "bytes=1048570-2097160", ...get })))
        assert.strictEqual(ranged.ContentRange, `bytes 1048570-2097160/${data.length}`)
        assert.isTrue(Buffer.from(yield* bytes(ranged.Body)).equals(data.subarray(1048570, 2097161)))
        const suffix = yield* call(() => s3.send(new GetObjectCommand({ Bucket: "alpha", Key: key, Range: "bytes=-10", ...get })))
        assert.isTrue(Buffer.from(yield* bytes(suffix.Body)).equals(data.subarray(data.length - 10)))
        const head = yield* call(() => s3.send(new HeadObjectCommand({ Bucket: "alpha", Key: key, ...get })))
        assert.strictEqual(head.ContentLength, data.length)
        const bad = yield* refused(() => s3.send(new GetObjectCommand({ Bucket: "alpha", Key: key, Range: `bytes=${data.length + 5}-`, ...get })))
        assert.deepStrictEqual(bad, { code: "InvalidRange", status: 416 })
      }
      const empty = yield* call(() => s3.send(new PutObjectCommand({ Bucket: "alpha", Key: "empty", Body: new Uint8Array(0) })))
      assert.strictEqual(empty.ServerSideEncryption, "AES256")
      assert.strictEqual(yield* text((yield* call(() => s3.send(new GetObjectCommand({ Bucket: "alpha", Key: "empty" })))).Body), "")
    }))

  it.effect("streams an unknown-length body with aws-chunked and a trailing checksum", () =>
    Effect.gen(function*() {
      const data = body(2 * MiB + 5, 3)
      const stream = Readable.from([data.subarray(0, MiB), data.subarray(MiB)])
      const seen: Array<string | undefined> = []
      const c = client(gw)
      c.middlewareStack.add((next) => async (args) => {
        const req = args.request as { headers: Record<string, string> }
        seen.push(req.headers["x-amz-content-sha256"])
        return next(args)
      }, { step: "finalizeRequest", priority: "low" })
      yield* call(() => c.send(new PutObjectCommand({ Bucket: "alpha", Key: "chunked", Body: stream, ContentLength: data.length })))
      assert.deepStrictEqual(seen, ["STREAMING-UNSIGNED-PAYLOAD-TRAILER"])
      const o = yield* call(() => s3.send(new GetObjectCommand({ Bucket: "alpha", Key: "chunked" })))
      assert.isTrue(Buffer.from(yield* bytes(o.Body)).equals(data))
    }))

  it.effect("refuses a missing or wrong SSE-C key and keys on a non-SSE-C object", () =>
    Effect.gen(function*() {
      const c = ssec()
      yield* call(() => s3.send(new PutObjectCommand({ Bucket: "alpha", Key: "secret", Body: "top secret", ...c })))
      const missing = yield* refused(() => s3.send(new GetObjectCommand({ Bucket: "alpha", Key: "secret" })))
      assert.deepStrictEqual(missing, { code: "InvalidRequest", status: 400 })
      const wrong = yield* refused(() => s3.send(new GetObjectCommand({ Bucket: "alpha", Key: "secret", ...ssec() })))
      assert.deepStrictEqual(wrong, { code: "AccessDenied", status: 403 })
      const headWrong = yield* refused(() => s3.send(new HeadObjectCommand({ Bucket: "alpha", Key: "secret", ...ssec() })))
      assert.strictEqual(headWrong.status, 403)
      yield* call(() => s3.send(new PutObjectCommand({ Bucket: "alpha", Key: "plain", Body: "x" })))
      const notApplicable = yield* refused(() => s3.send(new GetObjectCommand({ Bucket: "alpha", Key: "plain", ...c })))
      assert.deepStrictEqual(notApplicable, { code: "InvalidRequest", status: 400 })
      const conflict = yield* refused(() => s3.send(new PutObjectCommand({ Bucket: "alpha", Key: "x", Body: "x", ...c, ServerSideEncryption: "AES256" })))
      assert.strictEqual(conflict.status, 400)
      const noKmsKey = yield* refused(() => s3.send(new PutObjectCommand({ Bucket: "alpha", Key: "x", Body: "x", ServerSideEncryption: "aws:kms", SSEKMSKeyId: "nope" })))
      assert.strictEqual(noKmsKey.code, "KMS.NotFoundException")
    }))

  it.effect("lists with prefix, delimiter, pagination and start-after; deletes in bulk", () =>
    Effect.gen(function*() {
      yield* call(() => s3.send(new CreateBucketCommand({ Bucket: "listing" })))
      const keys = ["a/1", "a/2", "a/b/3", "b/4", "c", "d"]
      for (const k of keys) yield* call(() => s3.send(new PutObjectCommand({ Bucket: "listing", Key: k, Body: `v-${k}` })))
      const all = yield* call(() => s3.send(new ListObjectsV2Command({ Bucket: "listing" })))
      assert.deepStrictEqual(all.Contents!.map((o) => o.Key), keys)
      assert.strictEqual(all.Contents![4]!.Size, 3)
      const delim = yield* call(() => s3.send(new ListObjectsV2Command({ Bucket: "listing", Delimiter: "/" })))
      assert.deepStrictEqual(delim.Contents!.map((o) => o.Key), ["c", "d"])
      assert.deepStrictEqual(delim.CommonPrefixes!.map((p) => p.Prefix), ["a/", "b/"])
      const pref = yield* call(() => s3.send(new ListObjectsV2Command({ Bucket: "listing", Prefix: "a/", Delimiter: "/" })))
      assert.deepStrictEqual(pref.Contents!.map((o) => o.Key), ["a/1", "a/2"])
      const seen: Array<string> = []
      let token: string | undefined
      do {
        const page = yield* call(() => s3.send(new ListObjectsV2Command({ Bucket: "listing", MaxKeys: 4, ContinuationToken: token })))
        seen.push(...page.Contents!.map((o) => o.Key!))
        token = page.NextContinuationToken
        assert.strictEqual(page.IsTruncated, token !== undefined)
      } while (token !== undefined)
      assert.deepStrictEqual(seen, keys)
      const after = yield* call(() => s3.send(new ListObjectsV2Command({ Bucket: "listing", StartAfter: "b/4" })))
      assert.deepStrictEqual(after.Contents!.map((o) => o.Key), ["c", "d"])
      const del = yield* call(() => s3.send(new DeleteObjectsCommand({ Bucket: "listing", Delete: { Objects: keys.map((Key) => ({ Key })) } })))
      assert.strictEqual(del.Deleted!.length, keys.length)
      const none = yield* call(() => s3.send(new ListObjectsV2Command({ Bucket: "listing" })))
      assert.strictEqual(none.KeyCount, 0)
      const gone = yield* refused(() => s3.send(new GetObjectCommand({ Bucket: "listing", Key: "c" })))
      assert.deepStrictEqual(gone, { code: "NoSuchKey", status: 404 })
    }))

  it.effect("copies across modes, with source SSE-C keys and metadata directives", () =>
    Effect.gen(function*() {
      const c1 = ssec()
      const c2 = ssec()
      const data = body(1500, 9)
      yield* call(() => s3.send(new PutObjectCommand({ Bucket: "alpha", Key: "copy/src", Body: data, Metadata: { a: "1" }, ...c1 })))
      yield* call(() => s3.send(new CopyObjectCommand({
        Bucket: "alpha", Key: "copy/kms", CopySource: "alpha/copy/src", ServerSideEncryption: "aws:kms",
        CopySourceSSECustomerAlgorithm: "AES256", CopySourceSSECustomerKey: c1.SSECustomerKey, CopySourceSSECustomerKeyMD5: c1.SSECustomerKeyMD5
      })))
      const kms = yield* call(() => s3.send(new GetObjectCommand({ Bucket: "alpha", Key: "copy/kms" })))
      assert.strictEqual(kms.ServerSideEncryption, "aws:kms")
      assert.strictEqual(kms.Metadata?.["a"], "1")
      assert.isTrue(Buffer.from(yield* bytes(kms.Body)).equals(data))
      yield* call(() => s3.send(new CopyObjectCommand({ Bucket: "alpha", Key: "copy/c2", CopySource: "/alpha/copy/kms", MetadataDirective: "REPLACE", Metadata: { b: "2" }, ...c2 })))
      const o = yield* call(() => s3.send(new GetObjectCommand({ Bucket: "alpha", Key: "copy/c2", ...c2 })))
      assert.deepStrictEqual(o.Metadata, { b: "2" })
      assert.isTrue(Buffer.from(yield* bytes(o.Body)).equals(data))
      const noSourceKey = yield* refused(() => s3.send(new CopyObjectCommand({ Bucket: "alpha", Key: "copy/x", CopySource: "alpha/copy/src" })))
      assert.strictEqual(noSourceKey.status, 400)
      const self = yield* refused(() => s3.send(new CopyObjectCommand({ Bucket: "alpha", Key: "copy/kms", CopySource: "alpha/copy/kms" })))
      assert.deepStrictEqual(self, { code: "InvalidRequest", status: 400 })
    }))
})

describe("multipart", () => {
  const upload = (s3c: S3Client, s3d: S3Client, key: string, sse: Record<string, string>, partKey: Record<string, string>) =>
    Effect.gen(function*() {
      const parts = [body(5 * MiB + 17, 1), body(5 * MiB, 2), body(1234, 3)]
      const created = yield* call(() => s3c.send(new CreateMultipartUploadCommand({ Bucket: "alpha", Key: key, Metadata: { m: "p" }, ...sse })))
      const done: Array<{ PartNumber: number; ETag: string }> = []
      // Parts sent out of order, alternately through both gateways.
      for (const i of [2, 0, 1]) {
        const via = i % 2 === 0 ? s3c : s3d
        const r = yield* call(() => via.send(new UploadPartCommand({ Bucket: "alpha", Key: key, UploadId: created.UploadId, PartNumber: i + 1, Body: parts[i], ...partKey })))
        done[i] = { PartNumber: i + 1, ETag: r.ETag! }
      }
      const listed = yield* call(() => s3d.send(new ListPartsCommand({ Bucket: "alpha", Key: key, UploadId: created.UploadId })))
      assert.deepStrictEqual(listed.Parts!.map((p) => [p.PartNumber, p.Size]), [[1, parts[0]!.length], [2, parts[1]!.length], [3, 1234]])
      yield* call(() => s3d.send(new CompleteMultipartUploadCommand({ Bucket: "alpha", Key: key, UploadId: created.UploadId, MultipartUpload: { Parts: done } })))
      return Buffer.concat(parts)
    })

  it.effect("uploads on one gateway and completes on another, for every SSE option", () =>
    Effect.gen(function*() {
      const c = ssec()
      for (const [name, sse, partKey] of [["s3", {}, {}], ["kms", { ServerSideEncryption: "aws:kms" }, {}], ["c", c, c]] as const) {
        const key = `mp/${name}`
        const data = yield* upload(s3, s3b, key, sse, partKey)
        const get = name === "c" ? c : {}
        const o = yield* call(() => s3.send(new GetObjectCommand({ Bucket: "alpha", Key: key, ...get })))
        assert.strictEqual(o.ContentLength, data.length)
        assert.strictEqual(o.Metadata?.["m"], "p")
        assert.isTrue(Buffer.from(yield* bytes(o.Body)).equals(data), name)
        const start = 5 * MiB - 3
        const r = yield* call(() => s3b.send(new GetObjectCommand({ Bucket: "alpha", Key: key, Range: `bytes=${start}-${start + 5 * MiB + 100}`, ...get })))
        assert.isTrue(Buffer.from(yield* bytes(r.Body)).equals(data.subarray(start, start + 5 * MiB + 101)), `${name} ranged`)
        const list = yield* call(() => s3.send(new ListObjectsV2Command({ Bucket: "alpha", Prefix: key })))
        assert.strictEqual(list.Contents?.[0]?.Size, data.length)
      }
      const wrong = yield* refused(() => s3.send(new GetObjectCommand({ Bucket: "alpha", Key: "mp/c", ...ssec() })))
      assert.strictEqual(wrong.status, 403)
    }))

  it.effect("refuses bad part lists, a part without its SSE-C key, and aborts", () =>
    Effect.gen(function*() {
      const c = ssec()
      const created = yield* call(() => s3.send(new CreateMultipartUploadCommand({ Bucket: "alpha", Key: "mp/bad", ...c })))
      const noKey = yield* refused(() => s3.send(new UploadPartCommand({ Bucket: "alpha", Key: "mp/bad", UploadId: created.UploadId, PartNumber: 1, Body: "x" })))
      assert.strictEqual(noKey.status, 400)
      const p1 = yield* call(() => s3.send(new UploadPartCommand({ Bucket: "alpha", Key: "mp/bad", UploadId: created.UploadId, PartNumber: 1, Body: "small", ...c })))
      const p2 = yield* call(() => s3.send(new UploadPartCommand({ Bucket: "alpha", Key: "mp/bad", UploadId: created.UploadId, PartNumber: 2, Body: "small", ...c })))
      const small = yield* refused(() => s3.send(new CompleteMultipartUploadCommand({ Bucket: "alpha", Key: "mp/bad", UploadId: created.UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.ETag! }, { PartNumber: 2, ETag: p2.ETag! }] } })))
      assert.deepStrictEqual(small, { code: "EntityTooSmall", status: 400 })
      const badEtag = yield* refused(() => s3.send(new CompleteMultipartUploadCommand({ Bucket: "alpha", Key: "mp/bad", UploadId: created.UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: "\"00\"" }] } })))
      assert.deepStrictEqual(badEtag, { code: "InvalidPart", status: 400 })
      yield* call(() => s3b.send(new AbortMultipartUploadCommand({ Bucket: "alpha", Key: "mp/bad", UploadId: created.UploadId })))
      const gone = yield* refused(() => s3.send(new ListPartsCommand({ Bucket: "alpha", Key: "mp/bad", UploadId: created.UploadId })))
      assert.deepStrictEqual(gone, { code: "NoSuchUpload", status: 404 })
      const missing = yield* refused(() => s3.send(new GetObjectCommand({ Bucket: "alpha", Key: "mp/bad" })))
      assert.strictEqual(missing.code, "NoSuchKey")
    }))
})

describe("auth", () => {
  it.effect("refuses a wrong secret, an unknown key and a user outside its buckets", () =>
    Effect.gen(function*() {
      const wrong = client(gw, { id: users.alice.id, secret: "not-the-secret" })
      const sig = yield* refused(() => wrong.send(new ListBucketsCommand({})))
      assert.deepStrictEqual(sig, { code: "SignatureDoesNotMatch", status: 403 })
      const unknown = client(gw, { id: "AKIAUNKNOWN00000", secret: "x" })
      const uk = yield* refused(() => unknown.send(new ListBucketsCommand({})))
      assert.deepStrictEqual(uk, { code: "InvalidAccessKeyId", status: 403 })
      const bob = client(gw, users.bob)
      const denied = yield* refused(() => bob.send(new GetObjectCommand({ Bucket: "alpha", Key: "plain" })))
      assert.deepStrictEqual(denied, { code: "AccessDenied", status: 403 })
      const deniedPut = yield* refused(() => bob.send(new PutObjectCommand({ Bucket: "alpha", Key: "bob", Body: "x" })))
      assert.deepStrictEqual(deniedPut, { code: "AccessDenied", status: 403 })
      yield* call(() => bob.send(new CreateBucketCommand({ Bucket: "bob-bucket" })))
      const listed = yield* call(() => bob.send(new ListBucketsCommand({})))
      assert.deepStrictEqual(listed.Buckets!.map((b) => b.Name), ["bob-bucket"])
    }))

  it.effect("refuses anonymous and tampered requests at the wire", () =>
    Effect.gen(function*() {
      const anon = yield* call(() => fetch(`${gw.endpoint}/alpha/plain`))
      assert.strictEqual(anon.status, 403)
      const xml = yield* call(() => anon.text())
      assert.include(xml, "<Code>AccessDenied</Code>")
      const url = yield* call(() => getSignedUrl(s3, new GetObjectCommand({ Bucket: "alpha", Key: "plain" }), { expiresIn: 60 }))
      const ok = yield* call(() => fetch(url))
      assert.strictEqual(ok.status, 200)
      assert.strictEqual(yield* call(() => ok.text()), "x")
      const tampered = yield* call(() => fetch(url.replace("/alpha/plain", "/alpha/secret")))
      assert.strictEqual(tampered.status, 403)
      assert.include(yield* call(() => tampered.text()), "SignatureDoesNotMatch")
      const expired = new URL(url)
      expired.searchParams.set("X-Amz-Date", "20200101T000000Z")
      const exp = yield* call(() => fetch(expired))
      assert.strictEqual(exp.status, 400)
      const zero = new URL(url)
      zero.searchParams.set("X-Amz-Expires", "0")
      assert.strictEqual((yield* call(() => fetch(zero))).status, 400)
      const health = yield* call(() => fetch(`${gw.endpoint}/healthz`))
      assert.strictEqual(health.status, 200)
    }))

  it.effect("answers object retention as S3 does for a bucket without Object Lock", () =>
    Effect.gen(function*() {
      const r = yield* refused(() => s3.send(new GetObjectRetentionCommand({ Bucket: "alpha", Key: "plain" })))
      assert.deepStrictEqual(r, { code: "InvalidRequest", status: 400 })
    }))
})

describe("storage", () => {
  it.effect("never writes plaintext to the backend", () =>
    Effect.sync(() => {
      const files = filesUnder(dirs.root)
      assert.isAbove(files.length, 10)
      for (const f of files) {
        assert.isFalse(fs.readFileSync(f).includes(MARKER), f)
        assert.isFalse(fs.readFileSync(f).includes("top secret"), f)
      }
    }))
})
