import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListBucketsCommand,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand
} from "@aws-sdk/client-s3"
import type { S3Client } from "@aws-sdk/client-s3"
import { afterAll, assert, beforeAll, beforeEach, describe, it } from "@effect/vitest"
import { ProviderError } from "@objcrypt/core/Errors"
import type * as ObjectStore from "@objcrypt/core/ObjectStore"
import { Effect } from "effect"
import { SYSTEM_DIR } from "../src/Buckets.js"
import { body, bytes, call, client, MiB, refused, start } from "./apiHarness.js"
import type { Api } from "./apiHarness.js"

type Store = ObjectStore.ObjectStore["Type"]
type Op = "put" | "get" | "head" | "list" | "remove" | "copy" | "createMultipart" | "uploadPart" | "completeMultipart" | "abortMultipart"

/**
 * A fault: which operations fail, on which stores, and how — a backend that cannot be reached
 * (connection refused, no HTTP status), one that answers a server error, or a driver defect.
 */
interface Fault {
  readonly ops: ReadonlySet<Op> | "all"
  readonly where: "system" | "buckets" | "all"
  readonly kind: "unreachable" | "server-error" | "defect"
}

let fault: Fault | undefined

/** Wraps a real FsObjectStore so that the current fault applies to it (fault injection, not a fake). */
const faulty = (store: Store): Store => {
  const isSystem = store.bucket === SYSTEM_DIR
  const hit = (op: Op) =>
    fault !== undefined &&
    (fault.ops === "all" || fault.ops.has(op)) &&
    (fault.where === "all" || (fault.where === "system") === isSystem)
  const failure = (op: Op, key?: string) =>
    fault!.kind === "defect"
      ? Effect.die(new Error("driver bug"))
      : Effect.fail(
        new ProviderError({
          provider: "fs",
          operation: op,
          key,
          code: fault!.kind === "unreachable" ? "ECONNREFUSED" : "InternalError",
          detail: "injected",
          ...(fault!.kind === "server-error" ? { status: 500 } : {})
        })
      )
  const guard = <A, E, R>(op: Op, key: string | undefined, run: () => Effect.Effect<A, E, R>): Effect.Effect<A, E | ProviderError, R> =>
    Effect.suspend((): Effect.Effect<A, E | ProviderError, R> => (hit(op) ? failure(op, key) : run()))
  return {
    ...store,
    put: (key, b, o) => guard("put", key, () => store.put(key, b, o)),
    get: (key, o) => guard("get", key, () => store.get(key, o)),
    head: (key, o) => guard("head", key, () => store.head(key, o)),
    list: (o) => guard("list", undefined, () => store.list(o)),
    remove: (key) => guard("remove", key, () => store.remove(key)),
    copy: (s, d, o) => guard("copy", d, () => store.copy(s, d, o)),
    createMultipart: (key, o) => guard("createMultipart", key, () => store.createMultipart(key, o)),
    uploadPart: (u, n, b, o) => guard("uploadPart", u.key, () => store.uploadPart(u, n, b, o)),
    completeMultipart: (u, p, o) => guard("completeMultipart", u.key, () => store.completeMultipart(u, p, o)),
    abortMultipart: (u) => guard("abortMultipart", u.key, () => store.abortMultipart(u))
  }
}

let api: Api
let s3: S3Client

beforeAll(async () => {
  api = await start({ wrapStore: faulty })
  // No retries: each refusal is observed as the gateway answered it.
  s3 = client(api, undefined, { maxAttempts: 1 })
  await s3.send(new CreateBucketCommand({ Bucket: "faults" }))
}, 60_000)

beforeEach(() => {
  fault = undefined
})

afterAll(async () => {
  fault = undefined
  await api?.close()
})

const read = (key: string) =>
  Effect.gen(function*() {
    const o = yield* call(() => s3.send(new GetObjectCommand({ Bucket: "faults", Key: key })))
    return Buffer.from(yield* bytes(o.Body))
  })

describe("backend failures", () => {
  it.effect("an unreachable backend answers 503 ServiceUnavailable and commits nothing", () =>
    Effect.gen(function*() {
      const v1 = body(100_000, 1)
      yield* call(() => s3.send(new PutObjectCommand({ Bucket: "faults", Key: "k", Body: v1 })))
      fault = { ops: "all", where: "all", kind: "unreachable" }
      const list = yield* refused(() => s3.send(new ListBucketsCommand({})))
      assert.deepStrictEqual(list, { code: "ServiceUnavailable", status: 503 })
      const get = yield* refused(() => s3.send(new GetObjectCommand({ Bucket: "faults", Key: "k" })))
      assert.deepStrictEqual(get, { code: "ServiceUnavailable", status: 503 })
      fault = { ops: "all", where: "buckets", kind: "unreachable" }
      const put = yield* refused(() => s3.send(new PutObjectCommand({ Bucket: "faults", Key: "k", Body: body(100_000, 2) })))
      assert.deepStrictEqual(put, { code: "ServiceUnavailable", status: 503 })
      const putNew = yield* refused(() => s3.send(new PutObjectCommand({ Bucket: "faults", Key: "new", Body: "x" })))
      assert.strictEqual(putNew.status, 503)
      // Only the write fails: the overwrite never replaced the old version.
      fault = { ops: new Set(["put"]), where: "buckets", kind: "unreachable" }
      const put2 = yield* refused(() => s3.send(new PutObjectCommand({ Bucket: "faults", Key: "k", Body: body(100_000, 3) })))
      assert.deepStrictEqual(put2, { code: "ServiceUnavailable", status: 503 })
      fault = undefined
      assert.isTrue((yield* read("k")).equals(v1))
      const none = yield* refused(() => s3.send(new GetObjectCommand({ Bucket: "faults", Key: "new" })))
      assert.deepStrictEqual(none, { code: "NoSuchKey", status: 404 })
    }))

  it.effect("a backend server error answers 500 InternalError; a failed completion leaves the upload to retry", () =>
    Effect.gen(function*() {
      const parts = [body(5 * MiB, 4), body(4000, 5)]
      const up = yield* call(() => s3.send(new CreateMultipartUploadCommand({ Bucket: "faults", Key: "mp" })))
      const etags: Array<string> = []
      for (let i = 0; i < parts.length; i++) {
        const r = yield* call(() => s3.send(new UploadPartCommand({ Bucket: "faults", Key: "mp", UploadId: up.UploadId, PartNumber: i + 1, Body: parts[i] })))
        etags.push(r.ETag!)
      }
      fault = { ops: new Set(["uploadPart"]), where: "buckets", kind: "server-error" }
      const part3 = yield* refused(() => s3.send(new UploadPartCommand({ Bucket: "faults", Key: "mp", UploadId: up.UploadId, PartNumber: 3, Body: "more" })))
      assert.deepStrictEqual(part3, { code: "InternalError", status: 500 })
      fault = { ops: new Set(["completeMultipart"]), where: "buckets", kind: "server-error" }
      const complete = () =>
        s3.send(new CompleteMultipartUploadCommand({
          Bucket: "faults", Key: "mp", UploadId: up.UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ PartNumber: i + 1, ETag })) }
        }))
      const failed = yield* refused(complete)
      assert.deepStrictEqual(failed, { code: "InternalError", status: 500 })
      fault = undefined
      const missing = yield* refused(() => s3.send(new GetObjectCommand({ Bucket: "faults", Key: "mp" })))
      assert.deepStrictEqual(missing, { code: "NoSuchKey", status: 404 })
      const listed = yield* call(() => s3.send(new ListPartsCommand({ Bucket: "faults", Key: "mp", UploadId: up.UploadId })))
      assert.deepStrictEqual(listed.Parts?.map((p) => p.PartNumber), [1, 2])
      yield* call(complete)
      assert.isTrue((yield* read("mp")).equals(Buffer.concat(parts)))
    }))

  it.effect("a failing gateway state store and a driver defect are 503 and 500, never a crash", () =>
    Effect.gen(function*() {
      fault = { ops: new Set(["put"]), where: "system", kind: "unreachable" }
      const create = yield* refused(() => s3.send(new CreateMultipartUploadCommand({ Bucket: "faults", Key: "sys" })))
      assert.deepStrictEqual(create, { code: "ServiceUnavailable", status: 503 })
      const bucket = yield* refused(() => s3.send(new CreateBucketCommand({ Bucket: "never-made" })))
      assert.deepStrictEqual(bucket, { code: "ServiceUnavailable", status: 503 })
      fault = { ops: new Set(["head", "get"]), where: "buckets", kind: "defect" }
      const defect = yield* refused(() => s3.send(new GetObjectCommand({ Bucket: "faults", Key: "k" })))
      assert.deepStrictEqual(defect, { code: "InternalError", status: 500 })
      fault = undefined
      const gone = yield* refused(() => s3.send(new GetObjectCommand({ Bucket: "never-made", Key: "k" })))
      assert.deepStrictEqual(gone, { code: "NoSuchBucket", status: 404 })
      assert.strictEqual((yield* read("k")).length, 100_000)
    }))
})
