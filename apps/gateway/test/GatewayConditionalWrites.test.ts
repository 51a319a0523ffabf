/**
 * S3 conditional writes through the real @aws-sdk/client-s3: `If-None-Match: *` on PutObject
 * creates only (412 when the key exists, the stored object untouched, with SSE-S3 and SSE-C), and
 * the conditions the gateway does not implement (`If-Match` on PutObject, any condition on
 * CompleteMultipartUpload) are refused with 501 instead of being ignored — an ignored condition
 * would overwrite (a Terraform state lock, for one, relies on `If-None-Match: *`).
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
import type { S3Client } from "@aws-sdk/client-s3"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import { bytes, call, client, start } from "./apiHarness.js"
import type { Api } from "./apiHarness.js"

let api: Api
let s3: S3Client

beforeAll(async () => {
  api = await start()
  s3 = client(api)
  await s3.send(new CreateBucketCommand({ Bucket: "cond" }))
}, 60_000)

afterAll(async () => {
  await api?.close()
})

const failure = (f: () => Promise<unknown>) =>
  Effect.tryPromise({ try: f, catch: (e) => e as { name: string; Code?: string; $metadata?: { httpStatusCode?: number } } }).pipe(
    Effect.flip,
    Effect.map((e) => `${e.$metadata?.httpStatusCode} ${e.Code ?? e.name}`)
  )
const text = (key: string, extra: object = {}) =>
  Effect.flatMap(call(() => s3.send(new GetObjectCommand({ Bucket: "cond", Key: key, ...extra }))), (o) => Effect.map(bytes(o.Body), (b) => Buffer.from(b).toString()))

const customerKey = crypto.randomBytes(32)
const ssec = {
  SSECustomerAlgorithm: "AES256",
  SSECustomerKey: customerKey.toString("base64"),
  SSECustomerKeyMD5: crypto.createHash("md5").update(customerKey).digest("base64")
}

describe("conditional writes", () => {
  it.effect("If-None-Match: * creates a missing key, and is 412 PreconditionFailed once it exists (object untouched)", () =>
    Effect.gen(function*() {
      for (const [key, extra] of [["lock.tfstate", {}], ["lock-ssec", ssec]] as const) {
        const created = yield* call(() => s3.send(new PutObjectCommand({ Bucket: "cond", Key: key, Body: "first", IfNoneMatch: "*", ...extra })))
        assert.strictEqual(created.$metadata.httpStatusCode, 200)
        const again = yield* failure(() => s3.send(new PutObjectCommand({ Bucket: "cond", Key: key, Body: "second", IfNoneMatch: "*", ...extra })))
        assert.strictEqual(again, "412 PreconditionFailed")
        assert.strictEqual(yield* text(key, extra), "first")
        const head = yield* call(() => s3.send(new HeadObjectCommand({ Bucket: "cond", Key: key, ...extra })))
        assert.strictEqual(head.ETag, created.ETag)
        // Without the condition, the overwrite goes through as before.
        yield* call(() => s3.send(new PutObjectCommand({ Bucket: "cond", Key: key, Body: "third", ...extra })))
        assert.strictEqual(yield* text(key, extra), "third")
      }
    }))

  it.effect("of two racing create-only PUTs of one key, exactly one wins", () =>
    Effect.gen(function*() {
      const body = (i: number) => Buffer.alloc(3 * 1024 * 1024, i)
      const results = yield* Effect.all(
        [1, 2, 3, 4].map((i) =>
          Effect.either(Effect.tryPromise(() => s3.send(new PutObjectCommand({ Bucket: "cond", Key: "race", Body: body(i), IfNoneMatch: "*" }))))
        ),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(results.filter((r) => r._tag === "Right").length, 1)
      const stored = Buffer.from(yield* Effect.flatMap(call(() => s3.send(new GetObjectCommand({ Bucket: "cond", Key: "race" }))), (o) => bytes(o.Body)))
      const winner = results.findIndex((r) => r._tag === "Right") + 1
      assert.isTrue(stored.equals(body(winner)))
    }))

  it.effect("If-Match on PutObject and If-None-Match other than * are 501, nothing written", () =>
    Effect.gen(function*() {
      const first = yield* call(() => s3.send(new PutObjectCommand({ Bucket: "cond", Key: "m", Body: "one" })))
      assert.strictEqual(yield* failure(() => s3.send(new PutObjectCommand({ Bucket: "cond", Key: "m", Body: "two", IfMatch: first.ETag }))), "501 NotImplemented")
      assert.strictEqual(yield* failure(() => s3.send(new PutObjectCommand({ Bucket: "cond", Key: "m", Body: "two", IfNoneMatch: first.ETag }))), "501 NotImplemented")
      assert.strictEqual(yield* failure(() => s3.send(new PutObjectCommand({ Bucket: "cond", Key: "new", Body: "two", IfMatch: first.ETag }))), "501 NotImplemented")
      assert.strictEqual(yield* text("m"), "one")
      assert.strictEqual(yield* failure(() => s3.send(new HeadObjectCommand({ Bucket: "cond", Key: "new" }))), "404 NotFound")
    }))

  it.effect("a condition on CompleteMultipartUpload is 501 and completes nothing", () =>
    Effect.gen(function*() {
      const { UploadId } = yield* call(() => s3.send(new CreateMultipartUploadCommand({ Bucket: "cond", Key: "mp" })))
      const part = yield* call(() => s3.send(new UploadPartCommand({ Bucket: "cond", Key: "mp", UploadId, PartNumber: 1, Body: "only part" })))
      const complete = (extra: object) =>
        failure(() =>
          s3.send(new CompleteMultipartUploadCommand({ Bucket: "cond", Key: "mp", UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] }, ...extra }))
        )
      assert.strictEqual(yield* complete({ IfNoneMatch: "*" }), "501 NotImplemented")
      assert.strictEqual(yield* complete({ IfMatch: part.ETag }), "501 NotImplemented")
      assert.strictEqual(yield* failure(() => s3.send(new HeadObjectCommand({ Bucket: "cond", Key: "mp" }))), "404 NotFound")
      // The upload is still there and completes without a condition.
      const done = yield* call(() =>
        s3.send(new CompleteMultipartUploadCommand({ Bucket: "cond", Key: "mp", UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } }))
      )
      assert.strictEqual(done.$metadata.httpStatusCode, 200)
      assert.strictEqual(yield* text("mp"), "only part")
    }))
})
