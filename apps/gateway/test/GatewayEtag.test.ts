import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectAttributesCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand
} from "@aws-sdk/client-s3"
import type { S3Client } from "@aws-sdk/client-s3"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import { client, configFor, makeDirs, start } from "./harness.js"
import type { Gateway } from "./harness.js"

const MiB = 1024 * 1024
const BUCKET = "etags"

const call = <A>(f: () => Promise<A>) => Effect.promise(f)
const refused = (f: () => Promise<unknown>) =>
  Effect.tryPromise({ try: f, catch: (e) => e as { name: string; Code?: string; $metadata?: { httpStatusCode?: number } } }).pipe(
    Effect.flip,
    Effect.map((e) => ({ code: e.Code ?? e.name, status: e.$metadata?.httpStatusCode }))
  )
const md5 = (b: Uint8Array) => crypto.createHash("md5").update(b).digest("hex")
const quoted = (s: string) => `"${s}"`
const data = (n: number) => crypto.randomBytes(n)
const ssec = () => {
  const key = crypto.randomBytes(32)
  return {
    SSECustomerAlgorithm: "AES256",
    SSECustomerKey: key.toString("base64"),
    SSECustomerKeyMD5: crypto.createHash("md5").update(key).digest("base64")
  }
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
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }))
}, 60_000)

afterAll(async () => {
  await gw?.close()
  await gw2?.close()
  fs.rmSync(dirs.dir, { recursive: true, force: true })
})

/** The ETag of a key as HEAD, GET, ListObjects v1 and v2 return it (all must agree). */
const seenEtags = (key: string, extra: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const head = yield* call(() => s3b.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key, ...extra })))
    const get = yield* call(() => s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, ...extra })))
    yield* call(() => get.Body!.transformToByteArray())
    const v2 = yield* call(() => s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: key })))
    const v1 = yield* call(() => s3b.send(new ListObjectsCommand({ Bucket: BUCKET, Prefix: key })))
    const attrs = yield* call(() => s3.send(new GetObjectAttributesCommand({ Bucket: BUCKET, Key: key, ObjectAttributes: ["ETag"], ...extra })))
    const all = [head.ETag, get.ETag, v2.Contents?.find((o) => o.Key === key)?.ETag, v1.Contents?.find((o) => o.Key === key)?.ETag]
    for (const e of all) assert.strictEqual(e, head.ETag)
    assert.strictEqual(quoted(attrs.ETag!.replace(/"/g, "")), head.ETag)
    return head.ETag!
  })

describe("ETags of single-request writes", () => {
  it.effect("SSE-S3 (bucket default and explicit AES256): the hex MD5 of the plaintext everywhere", () =>
    Effect.gen(function*() {
      for (const [key, sse] of [["plain", undefined], ["aes", "AES256" as const]] as const) {
        const body = data(200_000)
        const put = yield* call(() => s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body, ServerSideEncryption: sse })))
        assert.strictEqual(put.ETag, quoted(md5(body)))
        assert.strictEqual(put.ServerSideEncryption, "AES256")
        assert.strictEqual(yield* seenEtags(key), quoted(md5(body)))
        // An overwrite shows the new content's MD5, on either replica.
        const next = data(1000)
        const again = yield* call(() => s3b.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: next })))
        assert.strictEqual(again.ETag, quoted(md5(next)))
        assert.strictEqual(yield* seenEtags(key), quoted(md5(next)))
      }
    }))

  it.effect("an empty object's ETag is the MD5 of nothing", () =>
    Effect.gen(function*() {
      const put = yield* call(() => s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "empty", Body: new Uint8Array(0) })))
      assert.strictEqual(put.ETag, quoted("d41d8cd98f00b204e9800998ecf8427e"))
      assert.strictEqual(yield* seenEtags("empty"), put.ETag)
    }))

  it.effect("SSE-KMS and SSE-C: an opaque ETag (not the MD5), the same from every read", () =>
    Effect.gen(function*() {
      const body = data(50_000)
      const kms = yield* call(() => s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "kms", Body: body, ServerSideEncryption: "aws:kms" })))
      assert.notStrictEqual(kms.ETag, quoted(md5(body)))
      assert.strictEqual(yield* seenEtags("kms"), kms.ETag)
      const key = ssec()
      const c = yield* call(() => s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "ssec", Body: body, ...key })))
      assert.notStrictEqual(c.ETag, quoted(md5(body)))
      assert.strictEqual(yield* seenEtags("ssec", key), c.ETag)
    }))

  it.effect("conditional reads compare with the ETag the client sees", () =>
    Effect.gen(function*() {
      const body = data(3000)
      yield* call(() => s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "cond", Body: body })))
      const etag = quoted(md5(body))
      const ok = yield* call(() => s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: "cond", IfMatch: etag })))
      assert.deepStrictEqual(Buffer.from(yield* call(() => ok.Body!.transformToByteArray())), body)
      const unquoted = yield* call(() => s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "cond", IfMatch: md5(body) })))
      assert.strictEqual(unquoted.ETag, etag)
      const failed = yield* refused(() => s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: "cond", IfMatch: quoted(md5(data(8))) })))
      assert.deepStrictEqual(failed, { code: "PreconditionFailed", status: 412 })
      const notModified = yield* refused(() => s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: "cond", IfNoneMatch: etag })))
      assert.strictEqual(notModified.status, 304)
      const fresh = yield* call(() => s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "cond", IfNoneMatch: quoted(md5(data(8))) })))
      assert.strictEqual(fresh.ETag, etag)
    }))

  it.effect("CopyObject: the MD5 when the copy is SSE-S3 (from any source), opaque when it is SSE-KMS", () =>
    Effect.gen(function*() {
      const body = data(40_000)
      const key = ssec()
      yield* call(() => s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "copy-src", Body: body, ...key })))
      const toS3 = yield* call(() =>
        s3.send(new CopyObjectCommand({
          Bucket: BUCKET,
          Key: "copy-s3",
          CopySource: `${BUCKET}/copy-src`,
          CopySourceSSECustomerAlgorithm: key.SSECustomerAlgorithm,
          CopySourceSSECustomerKey: key.SSECustomerKey,
          CopySourceSSECustomerKeyMD5: key.SSECustomerKeyMD5
        }))
      )
      assert.strictEqual(toS3.CopyObjectResult?.ETag, quoted(md5(body)))
      assert.strictEqual(yield* seenEtags("copy-s3"), quoted(md5(body)))
      const toKms = yield* call(() =>
        s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: "copy-kms", CopySource: `${BUCKET}/copy-s3`, ServerSideEncryption: "aws:kms" }))
      )
      assert.notStrictEqual(toKms.CopyObjectResult?.ETag, quoted(md5(body)))
      assert.strictEqual(yield* seenEtags("copy-kms"), toKms.CopyObjectResult?.ETag)
      // If-Match on the copy source compares with the source's client ETag.
      const cond = yield* call(() =>
        s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: "copy-s3-2", CopySource: `${BUCKET}/copy-s3`, CopySourceIfMatch: quoted(md5(body)) }))
      )
      assert.strictEqual(cond.CopyObjectResult?.ETag, quoted(md5(body)))
    }))
})

describe("ETags of multipart uploads", () => {
  it.effect("SSE-S3: parts are the MD5 of their plaintext, the object is md5(part md5s)-N", () =>
    Effect.gen(function*() {
      const p1 = data(5 * MiB)
      const p3 = data(12_345)
      yield* call(() => s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "mp-src", Body: p1 })))
      const created = yield* call(() => s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: "mp" })))
      const id = created.UploadId!
      const u1 = yield* call(() => s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: "mp", UploadId: id, PartNumber: 1, Body: p1 })))
      assert.strictEqual(u1.ETag, quoted(md5(p1)))
      const u2 = yield* call(() =>
        s3b.send(new UploadPartCopyCommand({ Bucket: BUCKET, Key: "mp", UploadId: id, PartNumber: 2, CopySource: `${BUCKET}/mp-src`, CopySourceRange: `bytes=0-${5 * MiB - 1}` }))
      )
      assert.strictEqual(u2.CopyPartResult?.ETag, quoted(md5(p1)))
      const u3 = yield* call(() => s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: "mp", UploadId: id, PartNumber: 3, Body: p3 })))
      assert.strictEqual(u3.ETag, quoted(md5(p3)))
      const listed = yield* call(() => s3.send(new ListPartsCommand({ Bucket: BUCKET, Key: "mp", UploadId: id })))
      assert.deepStrictEqual(listed.Parts?.map((p) => p.ETag), [md5(p1), md5(p1), md5(p3)].map(quoted))
      // A part listed with a wrong ETag is refused.
      const wrong = yield* refused(() =>
        s3.send(new CompleteMultipartUploadCommand({
          Bucket: BUCKET,
          Key: "mp",
          UploadId: id,
          MultipartUpload: { Parts: [{ PartNumber: 1, ETag: u1.ETag }, { PartNumber: 2, ETag: quoted(md5(p3)) }, { PartNumber: 3, ETag: u3.ETag }] }
        }))
      )
      assert.deepStrictEqual(wrong, { code: "InvalidPart", status: 400 })
      const done = yield* call(() =>
        s3b.send(new CompleteMultipartUploadCommand({
          Bucket: BUCKET,
          Key: "mp",
          UploadId: id,
          MultipartUpload: { Parts: [{ PartNumber: 1, ETag: u1.ETag }, { PartNumber: 2, ETag: u2.CopyPartResult?.ETag }, { PartNumber: 3, ETag: u3.ETag }] }
        }))
      )
      const expected = crypto.createHash("md5").update(Buffer.concat([md5(p1), md5(p1), md5(p3)].map((h) => Buffer.from(h, "hex")))).digest("hex")
      assert.strictEqual(done.ETag, quoted(`${expected}-3`))
      assert.strictEqual(yield* seenEtags("mp"), quoted(`${expected}-3`))
    }), 60_000)

  it.effect("SSE-KMS: part and object ETags are opaque (not MD5s), and complete still matches them", () =>
    Effect.gen(function*() {
      const p1 = data(5 * MiB)
      const p2 = data(1000)
      const created = yield* call(() => s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: "mp-kms", ServerSideEncryption: "aws:kms" })))
      const id = created.UploadId!
      const u1 = yield* call(() => s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: "mp-kms", UploadId: id, PartNumber: 1, Body: p1 })))
      const u2 = yield* call(() => s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: "mp-kms", UploadId: id, PartNumber: 2, Body: p2 })))
      assert.notStrictEqual(u1.ETag, quoted(md5(p1)))
      assert.notStrictEqual(u2.ETag, quoted(md5(p2)))
      const done = yield* call(() =>
        s3.send(new CompleteMultipartUploadCommand({
          Bucket: BUCKET,
          Key: "mp-kms",
          UploadId: id,
          MultipartUpload: { Parts: [{ PartNumber: 1, ETag: u1.ETag }, { PartNumber: 2, ETag: u2.ETag }] }
        }))
      )
      const asIfMd5 = crypto.createHash("md5").update(Buffer.concat([md5(p1), md5(p2)].map((h) => Buffer.from(h, "hex")))).digest("hex")
      assert.notStrictEqual(done.ETag, quoted(`${asIfMd5}-2`))
      assert.strictEqual(yield* seenEtags("mp-kms"), done.ETag)
    }), 60_000)
})
