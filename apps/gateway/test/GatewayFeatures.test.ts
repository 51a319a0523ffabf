import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCorsCommand,
  GetBucketCorsCommand,
  GetBucketLifecycleConfigurationCommand,
  GetBucketLoggingCommand,
  GetBucketOwnershipControlsCommand,
  GetBucketPolicyCommand,
  GetBucketReplicationCommand,
  GetBucketRequestPaymentCommand,
  GetBucketWebsiteCommand,
  GetObjectLegalHoldCommand,
  GetObjectLockConfigurationCommand,
  GetPublicAccessBlockCommand,
  HeadBucketCommand,
  GetObjectAttributesCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutBucketCorsCommand,
  PutBucketPolicyCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand
} from "@aws-sdk/client-s3"
import type { S3Client } from "@aws-sdk/client-s3"
import { getSignedUrl } from "@aws-sdk/s3-request-presigner"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as http from "node:http"
import { Readable } from "node:stream"
import * as Checksums from "../src/Checksums.js"
import { body, bytes, call, client, filesUnder, loopbackAgent, MARKER, MiB, refused, ssec, start } from "./apiHarness.js"
import type { Api } from "./apiHarness.js"

let api: Api
let s3: S3Client

beforeAll(async () => {
  api = await start({ virtualHostDomains: ["s3.gw.test"] })
  s3 = client(api)
  await s3.send(new CreateBucketCommand({ Bucket: "feat" }))
}, 60_000)

afterAll(async () => {
  await api?.close()
})

/** A GET with a given agent and Host header, for names that have no DNS entry. */
const rawGet = (url: string, headers?: Record<string, string>) =>
  call(() =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const u = new URL(url)
      const req = http.request({ host: "127.0.0.1", port: api.port, path: `${u.pathname}${u.search}`, headers: { host: u.host, ...headers } }, (res) => {
        const chunks: Array<Buffer> = []
        res.on("data", (c: Buffer) => chunks.push(c))
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }))
      })
      req.on("error", reject)
      req.end()
    })
  )

/** A multipart upload of the given parts (1-based numbers in order), returning the ETags. */
const CHECKSUM_FIELDS = ["ChecksumCRC32", "ChecksumCRC32C", "ChecksumCRC64NVME", "ChecksumSHA1", "ChecksumSHA256"] as const

const uploadParts = (
  bucket: string,
  key: string,
  parts: ReadonlyArray<Buffer>,
  extra: Record<string, unknown> = {},
  partExtra: Record<string, unknown> = {},
  completeExtra: Record<string, unknown> = {}
) =>
  Effect.gen(function*() {
    const created = yield* call(() => s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ...extra })))
    const done: Array<{ PartNumber: number; ETag: string } & Partial<Record<typeof CHECKSUM_FIELDS[number], string>>> = []
    for (let i = 0; i < parts.length; i++) {
      const r = yield* call(() => s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: created.UploadId, PartNumber: i + 1, Body: parts[i], ...partExtra })))
      const sums = Object.fromEntries(CHECKSUM_FIELDS.flatMap((f) => (r[f] === undefined ? [] : [[f, r[f]]])))
      done.push({ PartNumber: i + 1, ETag: r.ETag!, ...sums })
    }
    const complete = () => s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: created.UploadId, MultipartUpload: { Parts: done }, ...completeExtra }))
    const completed = yield* call(complete)
    return { uploadId: created.UploadId!, parts: done, completed, created }
  })

describe("virtual-hosted-style addressing", () => {
  it.effect("serves a bucket named in the Host header, next to path style", () =>
    Effect.gen(function*() {
      const seen: Array<{ hostname: string; path: string }> = []
      const vh = client(api, undefined, {
        endpoint: `http://s3.gw.test:${api.port}`,
        forcePathStyle: false,
        requestHandler: { httpAgent: loopbackAgent() }
      })
      vh.middlewareStack.add((next) => async (args) => {
        const req = args.request as { hostname: string; path: string }
        seen.push({ hostname: req.hostname, path: req.path })
        return next(args)
      }, { step: "finalizeRequest", priority: "low" })
      yield* call(() => vh.send(new CreateBucketCommand({ Bucket: "vhost-bucket" })))
      const data = body(70_000, 4)
      const key = "dir/a b+c=ü.txt"
      yield* call(() => vh.send(new PutObjectCommand({ Bucket: "vhost-bucket", Key: key, Body: data })))
      const got = yield* call(() => vh.send(new GetObjectCommand({ Bucket: "vhost-bucket", Key: key })))
      assert.isTrue(Buffer.from(yield* bytes(got.Body)).equals(data))
      assert.deepStrictEqual(seen[1], { hostname: "vhost-bucket.s3.gw.test", path: "/dir/a%20b%2Bc%3D%C3%BC.txt" })
      const listed = yield* call(() => vh.send(new ListObjectsV2Command({ Bucket: "vhost-bucket", Prefix: "dir/" })))
      assert.deepStrictEqual(listed.Contents?.map((o) => o.Key), [key])
      // A multipart object's Location is its URL as addressed: the bucket in the host name.
      const { UploadId } = yield* call(() => vh.send(new CreateMultipartUploadCommand({ Bucket: "vhost-bucket", Key: "mp" })))
      const part = yield* call(() => vh.send(new UploadPartCommand({ Bucket: "vhost-bucket", Key: "mp", UploadId, PartNumber: 1, Body: "x" })))
      const done = yield* call(() =>
        vh.send(new CompleteMultipartUploadCommand({ Bucket: "vhost-bucket", Key: "mp", UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } }))
      )
      assert.strictEqual(done.Location, `http://vhost-bucket.s3.gw.test:${api.port}/mp`)
      // The same object through path style on the loopback address.
      const viaPath = yield* call(() => s3.send(new GetObjectCommand({ Bucket: "vhost-bucket", Key: key })))
      assert.isTrue(Buffer.from(yield* bytes(viaPath.Body)).equals(data))
      // Path style also works on the bare base domain.
      const bare = client(api, undefined, { endpoint: `http://s3.gw.test:${api.port}`, forcePathStyle: true, requestHandler: { httpAgent: loopbackAgent() } })
      const head = yield* call(() => bare.send(new HeadObjectCommand({ Bucket: "vhost-bucket", Key: key })))
      assert.strictEqual(head.ContentLength, data.length)

      const url = yield* call(() => getSignedUrl(vh, new GetObjectCommand({ Bucket: "vhost-bucket", Key: key }), { expiresIn: 60 }))
      assert.include(url, "//vhost-bucket.s3.gw.test:")
      const ok = yield* rawGet(url)
      assert.strictEqual(ok.status, 200)
      assert.isTrue(ok.body.startsWith(MARKER))
      // The signature covers the Host: another bucket's host name does not verify.
      const u = new URL(url)
      const moved = yield* rawGet(url.replace(u.host, `feat.s3.gw.test:${api.port}`))
      assert.strictEqual(moved.status, 403)
      assert.include(moved.body, "<Code>SignatureDoesNotMatch</Code>")
      const missing = yield* refused(() => vh.send(new GetObjectCommand({ Bucket: "no-such-vhost", Key: "k" })))
      assert.deepStrictEqual(missing, { code: "NoSuchBucket", status: 404 })
    }))
})

describe("partNumber reads", () => {
  it.effect("reads one part of a multipart object with its range and the parts count", () =>
    Effect.gen(function*() {
      const c = ssec()
      const parts = [body(5 * MiB + 17, 1), body(5 * MiB, 2), body(1234, 3)]
      yield* uploadParts("feat", "parts/obj", parts, c, c)
      const whole = Buffer.concat(parts)
      for (const [n, start] of [[1, 0], [2, 5 * MiB + 17], [3, 10 * MiB + 17]] as const) {
        const r = yield* call(() => s3.send(new GetObjectCommand({ Bucket: "feat", Key: "parts/obj", PartNumber: n, ...c })))
        assert.strictEqual(r.$metadata.httpStatusCode, 206)
        assert.strictEqual(r.PartsCount, 3)
        assert.strictEqual(r.ContentRange, `bytes ${start}-${start + parts[n - 1]!.length - 1}/${whole.length}`)
        assert.isTrue(Buffer.from(yield* bytes(r.Body)).equals(parts[n - 1]!), `part ${n}`)
      }
      const head = yield* call(() => s3.send(new HeadObjectCommand({ Bucket: "feat", Key: "parts/obj", PartNumber: 3, ...c })))
      assert.strictEqual(head.ContentLength, 1234)
      assert.strictEqual(head.PartsCount, 3)
      const plainHead = yield* call(() => s3.send(new HeadObjectCommand({ Bucket: "feat", Key: "parts/obj", ...c })))
      assert.isUndefined(plainHead.PartsCount)
      assert.strictEqual(plainHead.ContentLength, whole.length)
      const beyond = yield* refused(() => s3.send(new GetObjectCommand({ Bucket: "feat", Key: "parts/obj", PartNumber: 4, ...c })))
      assert.deepStrictEqual(beyond, { code: "InvalidPartNumber", status: 416 })
      const both = yield* refused(() => s3.send(new GetObjectCommand({ Bucket: "feat", Key: "parts/obj", PartNumber: 1, Range: "bytes=0-1", ...c })))
      assert.deepStrictEqual(both, { code: "InvalidRequest", status: 400 })
      const noKey = yield* refused(() => s3.send(new GetObjectCommand({ Bucket: "feat", Key: "parts/obj", PartNumber: 1 })))
      assert.deepStrictEqual(noKey, { code: "InvalidRequest", status: 400 })
      const zero = yield* refused(() => s3.send(new GetObjectCommand({ Bucket: "feat", Key: "parts/obj", PartNumber: 0, ...c })))
      assert.strictEqual(zero.status, 400)

      yield* call(() => s3.send(new PutObjectCommand({ Bucket: "feat", Key: "parts/single", Body: "single part" })))
      const one = yield* call(() => s3.send(new GetObjectCommand({ Bucket: "feat", Key: "parts/single", PartNumber: 1 })))
      assert.strictEqual(yield* call(() => one.Body!.transformToString()), "single part")
      assert.isUndefined(one.PartsCount)
      const two = yield* refused(() => s3.send(new GetObjectCommand({ Bucket: "feat", Key: "parts/single", PartNumber: 2 })))
      assert.deepStrictEqual(two, { code: "InvalidPartNumber", status: 416 })
    }))
})

describe("checksums", () => {
  it.effect("verifies CRC32C and CRC64NVME in headers and trailers and reports them back", () =>
    Effect.gen(function*() {
      const data = body(300_000, 5)
      const put = yield* call(() => s3.send(new PutObjectCommand({ Bucket: "feat", Key: "ck/crc32c", Body: data, ChecksumAlgorithm: "CRC32C" })))
      assert.strictEqual(put.ChecksumCRC32C, Checksums.of("crc32c", data))
      const get = yield* call(() => s3.send(new GetObjectCommand({ Bucket: "feat", Key: "ck/crc32c", ChecksumMode: "ENABLED" })))
      assert.strictEqual(get.ChecksumCRC32C, Checksums.of("crc32c", data))
      assert.isTrue(Buffer.from(yield* bytes(get.Body)).equals(data))

      // A stream of unknown length: the SDK sends aws-chunked with the checksum in a trailer.
      const seen: Array<string | undefined> = []
      const c = client(api)
      c.middlewareStack.add((next) => async (args) => {
        seen.push((args.request as { headers: Record<string, string> }).headers["x-amz-trailer"])
        return next(args)
      }, { step: "finalizeRequest", priority: "low" })
      yield* call(() => c.send(new PutObjectCommand({ Bucket: "feat", Key: "ck/crc64", Body: Readable.from([data.subarray(0, 1000), data.subarray(1000)]), ContentLength: data.length, ChecksumAlgorithm: "CRC64NVME" })))
      assert.deepStrictEqual(seen, ["x-amz-checksum-crc64nvme"])
      const head = yield* call(() => s3.send(new HeadObjectCommand({ Bucket: "feat", Key: "ck/crc64", ChecksumMode: "ENABLED" })))
      assert.strictEqual(head.ChecksumCRC64NVME, Checksums.of("crc64nvme", data))

      const wrong = yield* refused(() => s3.send(new PutObjectCommand({ Bucket: "feat", Key: "ck/wrong", Body: data, ChecksumCRC32C: Checksums.of("crc32c", Buffer.from("other")) })))
      assert.deepStrictEqual(wrong, { code: "BadDigest", status: 400 })
      const wrong64 = yield* refused(() => s3.send(new PutObjectCommand({ Bucket: "feat", Key: "ck/wrong", Body: data, ChecksumCRC64NVME: Checksums.of("crc64nvme", Buffer.from("other")) })))
      assert.deepStrictEqual(wrong64, { code: "BadDigest", status: 400 })
      const malformed = yield* refused(() => s3.send(new PutObjectCommand({ Bucket: "feat", Key: "ck/wrong", Body: data, ChecksumCRC32C: "not-base64!" })))
      assert.deepStrictEqual(malformed, { code: "InvalidRequest", status: 400 })
      const nothing = yield* refused(() => s3.send(new HeadObjectCommand({ Bucket: "feat", Key: "ck/wrong" })))
      assert.strictEqual(nothing.status, 404)

      // Full-object CRCs of multipart uploads, combined from the parts' CRCs (CRC64NVME's only type).
      const mparts = [body(5 * MiB + 3, 14), body(5 * MiB, 15), body(77, 16)]
      const whole = Buffer.concat(mparts)
      const full = yield* uploadParts("feat", "ck/full64", mparts, { ChecksumAlgorithm: "CRC64NVME" }, { ChecksumAlgorithm: "CRC64NVME" })
      assert.strictEqual(full.created.ChecksumType, "FULL_OBJECT")
      assert.strictEqual(full.completed.ChecksumType, "FULL_OBJECT")
      assert.strictEqual(full.completed.ChecksumCRC64NVME, Checksums.of("crc64nvme", whole))
      const fullGet = yield* call(() => s3.send(new GetObjectCommand({ Bucket: "feat", Key: "ck/full64", ChecksumMode: "ENABLED" })))
      assert.strictEqual(fullGet.ChecksumCRC64NVME, Checksums.of("crc64nvme", whole))
      assert.strictEqual(fullGet.ChecksumType, "FULL_OBJECT")
      assert.isTrue(Buffer.from(yield* bytes(fullGet.Body)).equals(whole))
      const full32 = yield* uploadParts("feat", "ck/full32", mparts, { ChecksumAlgorithm: "CRC32", ChecksumType: "FULL_OBJECT" }, { ChecksumAlgorithm: "CRC32" }, {
        ChecksumCRC32: Checksums.of("crc32", whole),
        ChecksumType: "FULL_OBJECT"
      })
      assert.strictEqual(full32.completed.ChecksumCRC32, Checksums.of("crc32", whole))
      const badUp = yield* call(() => s3.send(new CreateMultipartUploadCommand({ Bucket: "feat", Key: "ck/fullbad", ChecksumAlgorithm: "CRC32C", ChecksumType: "FULL_OBJECT" })))
      const badParts: Array<{ PartNumber: number; ETag: string; ChecksumCRC32C: string }> = []
      for (let i = 0; i < mparts.length; i++) {
        const r = yield* call(() => s3.send(new UploadPartCommand({ Bucket: "feat", Key: "ck/fullbad", UploadId: badUp.UploadId, PartNumber: i + 1, Body: mparts[i], ChecksumAlgorithm: "CRC32C" })))
        badParts.push({ PartNumber: i + 1, ETag: r.ETag!, ChecksumCRC32C: r.ChecksumCRC32C! })
      }
      const completeWith = (value: string) => () =>
        s3.send(new CompleteMultipartUploadCommand({
          Bucket: "feat", Key: "ck/fullbad", UploadId: badUp.UploadId, MultipartUpload: { Parts: badParts }, ChecksumCRC32C: value, ChecksumType: "FULL_OBJECT"
        }))
      const wrongWhole = yield* refused(completeWith(Checksums.of("crc32c", Buffer.from("not the object"))))
      assert.deepStrictEqual(wrongWhole, { code: "BadDigest", status: 400 })
      const wrongPart = yield* refused(() =>
        s3.send(new CompleteMultipartUploadCommand({
          Bucket: "feat", Key: "ck/fullbad", UploadId: badUp.UploadId,
          MultipartUpload: { Parts: badParts.map((p, i) => (i === 1 ? { ...p, ChecksumCRC32C: "AAAAAA==" } : p)) }
        }))
      )
      assert.deepStrictEqual(wrongPart, { code: "InvalidPart", status: 400 })
      // Refused completions leave the upload in place: the right checksum completes it.
      const good = yield* call(completeWith(Checksums.of("crc32c", whole)))
      assert.strictEqual(good.ChecksumCRC32C, Checksums.of("crc32c", whole))
      const badCombo = yield* refused(() => s3.send(new CreateMultipartUploadCommand({ Bucket: "feat", Key: "ck/x", ChecksumAlgorithm: "SHA256", ChecksumType: "FULL_OBJECT" })))
      assert.deepStrictEqual(badCombo, { code: "InvalidRequest", status: 400 })
      const badCombo64 = yield* refused(() => s3.send(new CreateMultipartUploadCommand({ Bucket: "feat", Key: "ck/x", ChecksumAlgorithm: "CRC64NVME", ChecksumType: "COMPOSITE" })))
      assert.deepStrictEqual(badCombo64, { code: "InvalidRequest", status: 400 })

      const up = yield* call(() => s3.send(new CreateMultipartUploadCommand({ Bucket: "feat", Key: "ck/mp", ChecksumAlgorithm: "CRC32C" })))
      const badPart = yield* refused(() => s3.send(new UploadPartCommand({ Bucket: "feat", Key: "ck/mp", UploadId: up.UploadId, PartNumber: 1, Body: data, ChecksumCRC32C: "AAAAAA==" })))
      assert.deepStrictEqual(badPart, { code: "BadDigest", status: 400 })
      yield* call(() => s3.send(new AbortMultipartUploadCommand({ Bucket: "feat", Key: "ck/mp", UploadId: up.UploadId })))
    }))

  it.effect("CopyObject carries the source's checksum or computes the one asked for", () =>
    Effect.gen(function*() {
      const data = body(50_000, 17)
      yield* call(() => s3.send(new PutObjectCommand({ Bucket: "feat", Key: "ck/copy-src", Body: data, ChecksumAlgorithm: "CRC32C" })))
      const carried = yield* call(() => s3.send(new CopyObjectCommand({ Bucket: "feat", Key: "ck/copy-1", CopySource: "feat/ck/copy-src" })))
      assert.strictEqual(carried.CopyObjectResult?.ChecksumCRC32C, Checksums.of("crc32c", data))
      const head = yield* call(() => s3.send(new HeadObjectCommand({ Bucket: "feat", Key: "ck/copy-1", ChecksumMode: "ENABLED" })))
      assert.strictEqual(head.ChecksumCRC32C, Checksums.of("crc32c", data))
      const computed = yield* call(() => s3.send(new CopyObjectCommand({ Bucket: "feat", Key: "ck/copy-2", CopySource: "feat/ck/copy-src", ChecksumAlgorithm: "SHA256" })))
      assert.strictEqual(computed.CopyObjectResult?.ChecksumSHA256, Checksums.of("sha256", data))
      const attrs = yield* call(() => s3.send(new GetObjectAttributesCommand({ Bucket: "feat", Key: "ck/copy-2", ObjectAttributes: ["Checksum"] })))
      assert.strictEqual(attrs.Checksum?.ChecksumSHA256, Checksums.of("sha256", data))
      assert.strictEqual(attrs.Checksum?.ChecksumType, "FULL_OBJECT")
      // An overwrite without a checksum drops the old one.
      yield* call(() => s3.send(new PutObjectCommand({ Bucket: "feat", Key: "ck/copy-2", Body: "plain", ChecksumAlgorithm: undefined })))
      const after = yield* call(() => s3.send(new GetObjectAttributesCommand({ Bucket: "feat", Key: "ck/copy-2", ObjectAttributes: ["Checksum", "ObjectSize"] })))
      assert.notStrictEqual(after.Checksum?.ChecksumSHA256, Checksums.of("sha256", data))
      assert.strictEqual(after.ObjectSize, 5)
    }))

  it.effect("GetObjectAttributes reports ETag, composite checksum, parts, storage class and size", () =>
    Effect.gen(function*() {
      const parts = [body(5 * MiB + 5, 7), body(5 * MiB, 8), body(999, 9)]
      const { completed } = yield* uploadParts("feat", "attrs/mp", parts, { ChecksumAlgorithm: "CRC32C" }, { ChecksumAlgorithm: "CRC32C" })
      const partSums = parts.map((p) => Checksums.of("crc32c", p))
      const composite = Checksums.composite("crc32c", partSums)
      assert.strictEqual(completed.ChecksumCRC32C, composite)
      const all = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"] as const
      const a = yield* call(() => s3.send(new GetObjectAttributesCommand({ Bucket: "feat", Key: "attrs/mp", ObjectAttributes: [...all] })))
      const head = yield* call(() => s3.send(new HeadObjectCommand({ Bucket: "feat", Key: "attrs/mp" })))
      assert.strictEqual(`"${a.ETag}"`, head.ETag)
      assert.strictEqual(a.ObjectSize, 10 * MiB + 5 + 999)
      assert.strictEqual(a.StorageClass, "STANDARD")
      assert.strictEqual(a.Checksum?.ChecksumCRC32C, composite.replace(/-3$/, ""))
      assert.strictEqual(a.ObjectParts?.TotalPartsCount, 3)
      assert.deepStrictEqual(a.ObjectParts?.Parts?.map((p) => [p.PartNumber, p.Size, p.ChecksumCRC32C]), parts.map((p, i) => [i + 1, p.length, partSums[i]]))
      const page = yield* call(() => s3.send(new GetObjectAttributesCommand({ Bucket: "feat", Key: "attrs/mp", ObjectAttributes: ["ObjectParts"], MaxParts: 2 })))
      assert.strictEqual(page.ObjectParts?.IsTruncated, true)
      assert.strictEqual(page.ObjectParts?.NextPartNumberMarker, "2")
      assert.isUndefined(page.ETag)
      const rest = yield* call(() => s3.send(new GetObjectAttributesCommand({ Bucket: "feat", Key: "attrs/mp", ObjectAttributes: ["ObjectParts"], PartNumberMarker: "2" })))
      assert.deepStrictEqual(rest.ObjectParts?.Parts?.map((p) => p.PartNumber), [3])
      const composed = yield* call(() => s3.send(new HeadObjectCommand({ Bucket: "feat", Key: "attrs/mp", ChecksumMode: "ENABLED" })))
      assert.strictEqual(composed.ChecksumCRC32C, composite)

      const c = ssec()
      const data = body(4000, 10)
      yield* call(() => s3.send(new PutObjectCommand({ Bucket: "feat", Key: "attrs/single", Body: data, ChecksumAlgorithm: "CRC64NVME", ...c })))
      const s = yield* call(() => s3.send(new GetObjectAttributesCommand({ Bucket: "feat", Key: "attrs/single", ObjectAttributes: ["Checksum", "ObjectSize", "ObjectParts"], ...c })))
      assert.strictEqual(s.Checksum?.ChecksumCRC64NVME, Checksums.of("crc64nvme", data))
      assert.strictEqual(s.ObjectSize, 4000)
      assert.isUndefined(s.ObjectParts)
      const noKey = yield* refused(() => s3.send(new GetObjectAttributesCommand({ Bucket: "feat", Key: "attrs/single", ObjectAttributes: ["ObjectSize"] })))
      assert.deepStrictEqual(noKey, { code: "InvalidRequest", status: 400 })
      const wrongKey = yield* refused(() => s3.send(new GetObjectAttributesCommand({ Bucket: "feat", Key: "attrs/single", ObjectAttributes: ["ObjectSize"], ...ssec() })))
      assert.deepStrictEqual(wrongKey, { code: "AccessDenied", status: 403 })
      const missing = yield* refused(() => s3.send(new GetObjectAttributesCommand({ Bucket: "feat", Key: "attrs/none", ObjectAttributes: ["ObjectSize"] })))
      assert.deepStrictEqual(missing, { code: "NoSuchKey", status: 404 })
      const badName = yield* refused(() => s3.send(new GetObjectAttributesCommand({ Bucket: "feat", Key: "attrs/single", ObjectAttributes: ["Bogus" as "ETag"], ...c })))
      assert.deepStrictEqual(badName, { code: "InvalidArgument", status: 400 })
    }))
})

describe("UploadPartCopy", () => {
  it.effect("copies whole objects and ranges, from SSE-C and multipart sources, into an encrypted upload", () =>
    Effect.gen(function*() {
      const srcKey = ssec()
      const a = body(6 * MiB + 100, 11)
      yield* call(() => s3.send(new PutObjectCommand({ Bucket: "feat", Key: "upc/src-c", Body: a, ...srcKey })))
      const bParts = [body(5 * MiB + 1, 12), body(3000, 13)]
      yield* uploadParts("feat", "upc/src-mp", bParts)
      const b = Buffer.concat(bParts)
      const destKey = ssec()
      const up = yield* call(() => s3.send(new CreateMultipartUploadCommand({ Bucket: "feat", Key: "upc/dest", ...destKey })))
      const sourceC = { CopySourceSSECustomerAlgorithm: "AES256", CopySourceSSECustomerKey: srcKey.SSECustomerKey, CopySourceSSECustomerKeyMD5: srcKey.SSECustomerKeyMD5 }
      const p1 = yield* call(() => s3.send(new UploadPartCopyCommand({
        Bucket: "feat", Key: "upc/dest", UploadId: up.UploadId, PartNumber: 1, CopySource: "feat/upc/src-c", CopySourceRange: `bytes=10-${5 * MiB + 20}`, ...sourceC, ...destKey
      })))
      assert.match(p1.CopyPartResult?.ETag ?? "", /^".+"$/)
      assert.strictEqual(p1.SSECustomerKeyMD5, destKey.SSECustomerKeyMD5)
      // The whole multipart source, then a range that crosses its part boundary.
      const p2 = yield* call(() => s3.send(new UploadPartCopyCommand({
        Bucket: "feat", Key: "upc/dest", UploadId: up.UploadId, PartNumber: 2, CopySource: encodeURIComponent("feat/upc/src-mp"), ...destKey
      })))
      const p3 = yield* call(() => s3.send(new UploadPartCopyCommand({
        Bucket: "feat", Key: "upc/dest", UploadId: up.UploadId, PartNumber: 3, CopySource: "/feat/upc/src-mp", CopySourceRange: `bytes=${5 * MiB - 5}-${5 * MiB + 10}`, ...destKey
      })))
      const badRange = yield* refused(() => s3.send(new UploadPartCopyCommand({
        Bucket: "feat", Key: "upc/dest", UploadId: up.UploadId, PartNumber: 4, CopySource: "feat/upc/src-mp", CopySourceRange: `bytes=0-${b.length}`, ...destKey
      })))
      assert.deepStrictEqual(badRange, { code: "InvalidArgument", status: 400 })
      const noSourceKey = yield* refused(() => s3.send(new UploadPartCopyCommand({ Bucket: "feat", Key: "upc/dest", UploadId: up.UploadId, PartNumber: 4, CopySource: "feat/upc/src-c", ...destKey })))
      assert.deepStrictEqual(noSourceKey, { code: "InvalidRequest", status: 400 })
      const wrongSourceKey = yield* refused(() => s3.send(new UploadPartCopyCommand({
        Bucket: "feat", Key: "upc/dest", UploadId: up.UploadId, PartNumber: 4, CopySource: "feat/upc/src-c", ...destKey,
        CopySourceSSECustomerAlgorithm: "AES256", CopySourceSSECustomerKey: ssec().SSECustomerKey, CopySourceSSECustomerKeyMD5: undefined
      })))
      assert.strictEqual(wrongSourceKey.status, 403)
      const noDestKey = yield* refused(() => s3.send(new UploadPartCopyCommand({ Bucket: "feat", Key: "upc/dest", UploadId: up.UploadId, PartNumber: 4, CopySource: "feat/upc/src-mp" })))
      assert.deepStrictEqual(noDestKey, { code: "InvalidRequest", status: 400 })
      const ifMatch = yield* refused(() => s3.send(new UploadPartCopyCommand({ Bucket: "feat", Key: "upc/dest", UploadId: up.UploadId, PartNumber: 4, CopySource: "feat/upc/src-mp", CopySourceIfMatch: "\"nope\"", ...destKey })))
      assert.deepStrictEqual(ifMatch, { code: "PreconditionFailed", status: 412 })
      const noSource = yield* refused(() => s3.send(new UploadPartCopyCommand({ Bucket: "feat", Key: "upc/dest", UploadId: up.UploadId, PartNumber: 4, CopySource: "feat/upc/none", ...destKey })))
      assert.deepStrictEqual(noSource, { code: "NoSuchKey", status: 404 })
      yield* call(() => s3.send(new CompleteMultipartUploadCommand({
        Bucket: "feat", Key: "upc/dest", UploadId: up.UploadId,
        MultipartUpload: { Parts: [p1, p2, p3].map((p, i) => ({ PartNumber: i + 1, ETag: p.CopyPartResult!.ETag! })) }
      })))
      const expected = Buffer.concat([a.subarray(10, 5 * MiB + 21), b, b.subarray(5 * MiB - 5, 5 * MiB + 11)])
      const got = yield* call(() => s3.send(new GetObjectCommand({ Bucket: "feat", Key: "upc/dest", ...destKey })))
      assert.isTrue(Buffer.from(yield* bytes(got.Body)).equals(expected))
      const counted = yield* call(() => s3.send(new HeadObjectCommand({ Bucket: "feat", Key: "upc/dest", PartNumber: 2, ...destKey })))
      assert.strictEqual(counted.PartsCount, 3)
      assert.strictEqual(counted.ContentLength, b.length)
    }))
})

describe("ListMultipartUploads", () => {
  it.effect("lists uploads in progress with prefix, delimiter, markers and max-uploads", () =>
    Effect.gen(function*() {
      yield* call(() => s3.send(new CreateBucketCommand({ Bucket: "uploads-list" })))
      const ids: Record<string, Array<string>> = {}
      for (const key of ["lm/a", "lm/b/1", "lm/a", "lm/b/2", "lm/c", "other"]) {
        const r = yield* call(() => s3.send(new CreateMultipartUploadCommand({ Bucket: "uploads-list", Key: key, ChecksumAlgorithm: key === "lm/c" ? "SHA256" : undefined })))
        ;(ids[key] ??= []).push(r.UploadId!)
      }
      // Another bucket's uploads never show.
      yield* call(() => s3.send(new CreateMultipartUploadCommand({ Bucket: "feat", Key: "lm/a" })))
      const all = yield* call(() => s3.send(new ListMultipartUploadsCommand({ Bucket: "uploads-list", Prefix: "lm/" })))
      assert.deepStrictEqual(all.Uploads?.map((u) => [u.Key, u.UploadId]), [
        ["lm/a", ids["lm/a"]![0]], ["lm/a", ids["lm/a"]![1]], ["lm/b/1", ids["lm/b/1"]![0]], ["lm/b/2", ids["lm/b/2"]![0]], ["lm/c", ids["lm/c"]![0]]
      ])
      assert.strictEqual(all.IsTruncated, false)
      assert.strictEqual(all.Uploads?.[0]?.Initiator?.DisplayName, "alice")
      assert.strictEqual(all.Uploads?.[4]?.ChecksumAlgorithm, "SHA256")
      const grouped = yield* call(() => s3.send(new ListMultipartUploadsCommand({ Bucket: "uploads-list", Prefix: "lm/", Delimiter: "/" })))
      assert.deepStrictEqual(grouped.Uploads?.map((u) => u.Key), ["lm/a", "lm/a", "lm/c"])
      assert.deepStrictEqual(grouped.CommonPrefixes?.map((p) => p.Prefix), ["lm/b/"])
      const first = yield* call(() => s3.send(new ListMultipartUploadsCommand({ Bucket: "uploads-list", MaxUploads: 2 })))
      assert.strictEqual(first.IsTruncated, true)
      assert.strictEqual(first.NextKeyMarker, "lm/a")
      assert.strictEqual(first.NextUploadIdMarker, ids["lm/a"]![1])
      const next = yield* call(() => s3.send(new ListMultipartUploadsCommand({ Bucket: "uploads-list", KeyMarker: first.NextKeyMarker, UploadIdMarker: first.NextUploadIdMarker })))
      assert.deepStrictEqual(next.Uploads?.map((u) => u.Key), ["lm/b/1", "lm/b/2", "lm/c", "other"])
      const afterKey = yield* call(() => s3.send(new ListMultipartUploadsCommand({ Bucket: "uploads-list", KeyMarker: "lm/b/2" })))
      assert.deepStrictEqual(afterKey.Uploads?.map((u) => u.Key), ["lm/c", "other"])
      yield* call(() => s3.send(new AbortMultipartUploadCommand({ Bucket: "uploads-list", Key: "lm/c", UploadId: ids["lm/c"]![0] })))
      const afterAbort = yield* call(() => s3.send(new ListMultipartUploadsCommand({ Bucket: "uploads-list", Prefix: "lm/c" })))
      assert.isUndefined(afterAbort.Uploads)
      const none = yield* refused(() => s3.send(new ListMultipartUploadsCommand({ Bucket: "no-such-bucket-x" })))
      assert.deepStrictEqual(none, { code: "NoSuchBucket", status: 404 })
    }))
})

describe("unsupported features", () => {
  it.effect("answer 501 NotImplemented", () =>
    Effect.gen(function*() {
      const v = yield* refused(() => s3.send(new PutBucketCorsCommand({ Bucket: "feat", CORSConfiguration: { CORSRules: [{ AllowedMethods: ["GET"], AllowedOrigins: ["*"] }] } })))
      assert.deepStrictEqual(v, { code: "NotImplemented", status: 501 })
      const policy = yield* refused(() => s3.send(new PutBucketPolicyCommand({ Bucket: "feat", Policy: "{}" })))
      assert.deepStrictEqual(policy, { code: "NotImplemented", status: 501 })
      yield* call(() => s3.send(new PutObjectCommand({ Bucket: "feat", Key: "acl", Body: "x" })))
      const hold = yield* refused(() => s3.send(new GetObjectLegalHoldCommand({ Bucket: "feat", Key: "acl" })))
      assert.deepStrictEqual(hold, { code: "InvalidRequest", status: 400 })
    }))

  it.effect("bucket configurations never set read as S3 reads them on a bucket without them", () =>
    Effect.gen(function*() {
      const code = (f: () => Promise<unknown>) => Effect.map(refused(f), (r) => `${r.status} ${r.code}`)
      assert.strictEqual(yield* code(() => s3.send(new GetBucketPolicyCommand({ Bucket: "feat" }))), "404 NoSuchBucketPolicy")
      assert.strictEqual(yield* code(() => s3.send(new GetBucketCorsCommand({ Bucket: "feat" }))), "404 NoSuchCORSConfiguration")
      assert.strictEqual(yield* code(() => s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: "feat" }))), "404 NoSuchLifecycleConfiguration")
      assert.strictEqual(yield* code(() => s3.send(new GetBucketWebsiteCommand({ Bucket: "feat" }))), "404 NoSuchWebsiteConfiguration")
      assert.strictEqual(yield* code(() => s3.send(new GetPublicAccessBlockCommand({ Bucket: "feat" }))), "404 NoSuchPublicAccessBlockConfiguration")
      assert.strictEqual(yield* code(() => s3.send(new GetObjectLockConfigurationCommand({ Bucket: "feat" }))), "404 ObjectLockConfigurationNotFoundError")
      assert.strictEqual(yield* code(() => s3.send(new GetBucketReplicationCommand({ Bucket: "feat" }))), "404 ReplicationConfigurationNotFoundError")
      assert.strictEqual(yield* code(() => s3.send(new GetBucketOwnershipControlsCommand({ Bucket: "feat" }))), "404 OwnershipControlsNotFoundError")
      assert.isUndefined((yield* call(() => s3.send(new GetBucketLoggingCommand({ Bucket: "feat" })))).LoggingEnabled)
      assert.strictEqual((yield* call(() => s3.send(new GetBucketRequestPaymentCommand({ Bucket: "feat" })))).Payer, "BucketOwner")
      assert.strictEqual((yield* call(() => s3.send(new DeleteBucketCorsCommand({ Bucket: "feat" })))).$metadata.httpStatusCode, 204)
      // A missing bucket is still NoSuchBucket, and a PUT of a configuration never creates one.
      assert.strictEqual(yield* code(() => s3.send(new GetBucketPolicyCommand({ Bucket: "no-such-bucket-x" }))), "404 NoSuchBucket")
      assert.strictEqual(yield* code(() => s3.send(new PutBucketPolicyCommand({ Bucket: "no-such-bucket-x", Policy: "{}" }))), "404 NoSuchBucket")
      assert.strictEqual(yield* code(() => s3.send(new HeadBucketCommand({ Bucket: "no-such-bucket-x" }))), "404 NotFound")
    }))

  it.effect("never writes plaintext to the backend", () =>
    Effect.sync(() => {
      const files = filesUnder(api.root)
      assert.isAbove(files.length, 10)
      for (const f of files) assert.isFalse(fs.readFileSync(f).includes(MARKER), f)
    }))
})
