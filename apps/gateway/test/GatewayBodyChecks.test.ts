/**
 * Content-MD5 and the signed payload SHA-256 (`x-amz-content-sha256` with a hex digest), checked on
 * the hashing worker: bodies that fit one slab and bodies spanning many, right and wrong values.
 * A mismatch is S3's error and stores nothing; a verified Content-MD5 of an SSE-S3 object is its
 * ETag.
 */
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCommand
} from "@aws-sdk/client-s3"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import * as crypto from "node:crypto"
import { decodeBody } from "../src/internal/body.js"
import { body, bytes, call, client, MiB, refused, start } from "./apiHarness.js"
import type { Api } from "./apiHarness.js"

let api: Api
let s3: ReturnType<typeof client>
beforeAll(async () => {
  api = await start()
  s3 = client(api)
  await s3.send(new CreateBucketCommand({ Bucket: "checks" }))
}, 60_000)
afterAll(() => api.close())

const md5 = (b: Uint8Array) => crypto.createHash("md5").update(b).digest()
const absent = (key: string) =>
  Effect.map(refused(() => s3.send(new HeadObjectCommand({ Bucket: "checks", Key: key }))), (r) => assert.strictEqual(r.status, 404))

describe("Content-MD5", () => {
  for (const size of [1000, 3 * MiB + 17]) {
    it.effect(`a right one is accepted and, for SSE-S3, is the ETag; a wrong one stores nothing (${size} bytes)`, () =>
      Effect.gen(function*() {
        const data = body(size, 3)
        const put = yield* call(() =>
          s3.send(new PutObjectCommand({ Bucket: "checks", Key: `md5/${size}`, Body: data, ContentMD5: md5(data).toString("base64"), ServerSideEncryption: "AES256" }))
        )
        assert.strictEqual(put.ETag, `"${md5(data).toString("hex")}"`)
        const got = yield* call(() => s3.send(new GetObjectCommand({ Bucket: "checks", Key: `md5/${size}` })))
        assert.isTrue(Buffer.from(yield* bytes(got.Body)).equals(data))

        const other = Buffer.from(data)
        other[other.length - 1] ^= 1
        const wrong = yield* refused(() =>
          s3.send(new PutObjectCommand({ Bucket: "checks", Key: `md5-wrong/${size}`, Body: data, ContentMD5: md5(other).toString("base64") }))
        )
        assert.deepStrictEqual(wrong, { code: "BadDigest", status: 400 })
        yield* absent(`md5-wrong/${size}`)
      }))
  }

  it.effect("the parts of an SSE-S3 multipart upload: each part's verified Content-MD5 is its ETag, and the object's is S3's MD5 of MD5s", () =>
    Effect.gen(function*() {
      const parts = [body(5 * MiB + 3, 5), body(1000, 6)]
      const { UploadId } = yield* call(() => s3.send(new CreateMultipartUploadCommand({ Bucket: "checks", Key: "mp", ServerSideEncryption: "AES256" })))
      const etags: Array<string> = []
      for (const [i, p] of parts.entries()) {
        const r = yield* call(() => s3.send(new UploadPartCommand({ Bucket: "checks", Key: "mp", UploadId, PartNumber: i + 1, Body: p, ContentMD5: md5(p).toString("base64") })))
        assert.strictEqual(r.ETag, `"${md5(p).toString("hex")}"`)
        etags.push(r.ETag!)
      }
      const bad = yield* refused(() =>
        s3.send(new UploadPartCommand({ Bucket: "checks", Key: "mp", UploadId, PartNumber: 3, Body: parts[1], ContentMD5: md5(parts[0]!).toString("base64") }))
      )
      assert.deepStrictEqual(bad, { code: "BadDigest", status: 400 })
      const done = yield* call(() =>
        s3.send(new CompleteMultipartUploadCommand({ Bucket: "checks", Key: "mp", UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }))
      )
      assert.strictEqual(done.ETag, `"${md5(Buffer.concat(parts.map(md5))).toString("hex")}-2"`)
      const got = yield* call(() => s3.send(new GetObjectCommand({ Bucket: "checks", Key: "mp" })))
      assert.isTrue(Buffer.from(yield* bytes(got.Body)).equals(Buffer.concat(parts)))
    }))

  it.effect("one that is not 16 bytes is InvalidDigest", () =>
    Effect.gen(function*() {
      const r = yield* refused(() => s3.send(new PutObjectCommand({ Bucket: "checks", Key: "md5-bad", Body: body(10), ContentMD5: "AAAA" })))
      assert.deepStrictEqual(r, { code: "InvalidDigest", status: 400 })
      yield* absent("md5-bad")
    }))
})

describe("signed payload SHA-256", () => {
  // The SDK signs whatever x-amz-content-sha256 a request already carries: a wrong one yields a
  // valid signature over a wrong payload hash.
  const lying = (hex: string) => {
    const c = client(api)
    c.middlewareStack.add((next) => async (args) => {
      ;(args.request as { headers: Record<string, string> }).headers["x-amz-content-sha256"] = hex
      return next(args)
    }, { step: "build", priority: "low" })
    return c
  }

  for (const size of [1000, 3 * MiB + 17]) {
    it.effect(`the right hash is accepted, a wrong one is XAmzContentSHA256Mismatch and stores nothing (${size} bytes)`, () =>
      Effect.gen(function*() {
        const data = body(size, 4)
        const hex = crypto.createHash("sha256").update(data).digest("hex")
        yield* call(() => lying(hex).send(new PutObjectCommand({ Bucket: "checks", Key: `sha/${size}`, Body: data })))
        const got = yield* call(() => s3.send(new GetObjectCommand({ Bucket: "checks", Key: `sha/${size}` })))
        assert.isTrue(Buffer.from(yield* bytes(got.Body)).equals(data))

        const wrongHex = crypto.createHash("sha256").update(data.subarray(1)).digest("hex")
        const wrong = yield* refused(() => lying(wrongHex).send(new PutObjectCommand({ Bucket: "checks", Key: `sha-wrong/${size}`, Body: data })))
        assert.deepStrictEqual(wrong, { code: "XAmzContentSHA256Mismatch", status: 400 })
        yield* absent(`sha-wrong/${size}`)
      }))
  }
})

describe("decodeBody", () => {
  it.effect("exposes the verified MD5 once the body has been read, and only then", () =>
    Effect.gen(function*() {
      const data = body(2 * MiB + 5, 9)
      const decoded = yield* decodeBody(
        Stream.fromIterable([data.subarray(0, MiB), data.subarray(MiB)]),
        { "content-md5": md5(data).toString("base64"), "content-length": String(data.length) },
        { _tag: "Unsigned" },
        () => { throw new Error("unreachable") }
      )
      assert.isUndefined(decoded.md5Hex())
      yield* Stream.runDrain(decoded.body)
      assert.strictEqual(decoded.md5Hex(), md5(data).toString("hex"))
    }))
})
