/**
 * Incomplete multipart uploads are aborted once older than `abortIncompleteUploadsAfterDays` (S3's
 * lifecycle rule AbortIncompleteMultipartUpload): the backend upload, the parts, the records and the
 * listing entry go, a client then gets NoSuchUpload; younger uploads are left to complete. The sweep
 * runs here from a second `Buckets` over the same backend, as another gateway replica would.
 */
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  UploadPartCommand
} from "@aws-sdk/client-s3"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Buckets from "../src/Buckets.js"
import * as GatewayConfig from "../src/GatewayConfig.js"
import * as Multipart from "../src/Multipart.js"
import { body, bytes, call, client, MiB, refused, start } from "./apiHarness.js"
import type { Api } from "./apiHarness.js"

let api: Api
let s3: ReturnType<typeof client>
beforeAll(async () => {
  api = await start()
  s3 = client(api)
  await s3.send(new CreateBucketCommand({ Bucket: "sweep" }))
}, 60_000)
afterAll(() => api.close())

const replica = () => Buckets.makeFs({ root: api.root, fsync: false })
const bucketStore = (b: Buckets.Buckets["Type"]) => (name: string) => Buckets.storeIfExists(b, name)
const inProgress = () =>
  call(() => s3.send(new ListMultipartUploadsCommand({ Bucket: "sweep" }))).pipe(Effect.map((r) => (r.Uploads ?? []).map((u) => u.UploadId!)))
/** Upload ids with records or parts in the system store; driver-fs's own multipart staging directories. */
const records = () =>
  Effect.flatMap(replica(), (b) => b.system.list({ prefix: "uploads/", delimiter: "/" })).pipe(
    Effect.map((p) => p.commonPrefixes.map((c) => c.slice("uploads/".length, -1)))
  )
const staging = () => {
  const dir = path.join(api.root, "sweep", ".objcrypt-fs", "uploads")
  return fs.existsSync(dir) ? fs.readdirSync(dir) : []
}
const begin = (key: string) =>
  Effect.gen(function*() {
    const { UploadId } = yield* call(() => s3.send(new CreateMultipartUploadCommand({ Bucket: "sweep", Key: key, ServerSideEncryption: "AES256" })))
    const part = yield* call(() => s3.send(new UploadPartCommand({ Bucket: "sweep", Key: key, UploadId, PartNumber: 1, Body: body(5 * MiB) })))
    firstPart.set(UploadId!, part.ETag!)
    return UploadId!
  })
const firstPart = new Map<string, string>()

describe("abandoned multipart uploads", () => {
  it.live("aborts uploads initiated before the cutoff and leaves younger ones to complete", () =>
    Effect.gen(function*() {
      const old1 = yield* begin("old/1")
      const old2 = yield* begin("old/2")
      yield* Effect.sleep("20 millis")
      const cutoff = Date.now()
      yield* Effect.sleep("20 millis")
      const young = yield* begin("young")
      assert.sameMembers(yield* inProgress(), [old1, old2, young])
      const stagedBefore = staging().length

      const b = yield* replica()
      const r = yield* Multipart.abortIncomplete(b.system, bucketStore(b), cutoff)
      assert.strictEqual(r.aborted, 2)
      assert.isAtLeast(r.checked, 3)

      assert.deepStrictEqual(yield* inProgress(), [young])
      assert.deepStrictEqual(yield* records(), [young])
      assert.strictEqual(staging().length, stagedBefore - 2)
      for (const [key, id] of [["old/1", old1], ["old/2", old2]] as const) {
        const e = yield* refused(() => s3.send(new UploadPartCommand({ Bucket: "sweep", Key: key, UploadId: id, PartNumber: 2, Body: body(10) })))
        assert.strictEqual(e.code, "NoSuchUpload")
        const c = yield* refused(() =>
          s3.send(new CompleteMultipartUploadCommand({ Bucket: "sweep", Key: key, UploadId: id, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: "x" }] } }))
        )
        assert.strictEqual(c.code, "NoSuchUpload")
      }

      // The young upload is untouched: it completes and reads back.
      const part = yield* call(() => s3.send(new UploadPartCommand({ Bucket: "sweep", Key: "young", UploadId: young, PartNumber: 2, Body: body(10, 2) })))
      yield* call(() =>
        s3.send(new CompleteMultipartUploadCommand({
          Bucket: "sweep",
          Key: "young",
          UploadId: young,
          MultipartUpload: { Parts: [{ PartNumber: 1, ETag: firstPart.get(young) }, { PartNumber: 2, ETag: part.ETag }] }
        }))
      )
      const got = yield* call(() => s3.send(new GetObjectCommand({ Bucket: "sweep", Key: "young" })))
      assert.isTrue(Buffer.from(yield* bytes(got.Body as never)).equals(Buffer.concat([body(5 * MiB), body(10, 2)])))
      assert.deepStrictEqual(yield* inProgress(), [])
    }))

  it.effect("removes what an interrupted removal left (parts without a record) once old, and nothing of a fresh upload", () =>
    Effect.gen(function*() {
      const orphan = yield* begin("orphan")
      const b = yield* replica()
      yield* b.system.remove(`uploads/${orphan}/record`)
      assert.include(yield* records(), orphan)
      // A cutoff before its creation: its remains are not old enough.
      assert.strictEqual((yield* Multipart.abortIncomplete(b.system, bucketStore(b), Date.now() - 60_000)).aborted, 0)
      assert.include(yield* records(), orphan)
      assert.isAtLeast((yield* Multipart.abortIncomplete(b.system, bucketStore(b), Date.now() + 1000)).aborted, 1)
      assert.notInclude(yield* records(), orphan)
    }))

  it.live("the maintenance loop sweeps on its schedule", () =>
    Effect.gen(function*() {
      const id = yield* begin("looped")
      const b = yield* replica()
      const fiber = yield* Effect.fork(Multipart.abortIncompleteForever(b, 1, { firstAfter: "10 millis", every: "50 millis" }))
      let left = [id]
      for (let i = 0; i < 100 && left.length > 0; i++) {
        yield* Effect.sleep("50 millis")
        left = yield* inProgress()
      }
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(left, [])
    }))

  it.effect("the configuration takes a positive number of days", () =>
    Effect.gen(function*() {
      const base = {
        backend: { type: "fs", root: "/tmp/x" },
        users: [{ name: "a", accessKeyId: "AKIAEXAMPLE00001", secretAccessKey: { env: "S" }, buckets: "*" }],
        keyStore: { path: "/tmp/k.ocks", passphrase: { env: "P" } }
      }
      assert.strictEqual((yield* GatewayConfig.decode({ ...base, abortIncompleteUploadsAfterDays: 7 })).abortIncompleteUploadsAfterDays, 7)
      assert.strictEqual((yield* GatewayConfig.decode({ ...base, abortIncompleteUploadsAfterDays: 0.5 })).abortIncompleteUploadsAfterDays, 0.5)
      assert.isUndefined((yield* GatewayConfig.decode(base)).abortIncompleteUploadsAfterDays)
      for (const bad of [0, -1, "7", 100000]) {
        const e = yield* Effect.flip(GatewayConfig.decode({ ...base, abortIncompleteUploadsAfterDays: bad }))
        assert.strictEqual(e._tag, "ConfigFileError")
        assert.include(e.detail, "abortIncompleteUploadsAfterDays")
      }
    }))
})
