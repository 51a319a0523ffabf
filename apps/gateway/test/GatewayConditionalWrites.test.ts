/**
 * S3 conditional writes through the real @aws-sdk/client-s3 against a gateway on driver-fs:
 * `If-None-Match: *` creates only and `If-Match: <etag>` replaces only the version with that ETag,
 * on PutObject and CopyObject, with SSE-S3, SSE-C and SSE-KMS. The client's ETag is the gateway's
 * (for SSE-S3 the plaintext MD5), checked against the version headed; the backend then writes only
 * over that version's backend etag, so a writer slipping in between is refused, not overwritten
 * (a store wrapper runs the racing writer deterministically between the two steps). The same
 * holds for CompleteMultipartUpload, whose condition the backend checks as it publishes the object.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListPartsCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  UploadPartCommand
} from "@aws-sdk/client-s3"
import type { S3Client } from "@aws-sdk/client-s3"
import type * as ObjectStore from "@objcrypt/core/ObjectStore"
import { afterAll, assert, beforeAll, beforeEach, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import { bytes, call, client, start } from "./apiHarness.js"
import type { Api } from "./apiHarness.js"

type Store = ObjectStore.ObjectStore["Type"]

/** The conditions each backend write of an object key carried (system-store writes excluded). */
let conditions: Array<{ readonly key: string; readonly ifMatch: string | undefined; readonly ifNoneMatch: string | undefined }> = []
/** Runs once, right before the backend write of `key` that carries an `ifMatch`: a racing writer. */
let beforeConditionalPut: { readonly key: string; readonly run: () => Promise<unknown> } | undefined
/** The same for the backend's completion of a multipart upload of `key`. */
let beforeConditionalComplete: { readonly key: string; readonly run: () => Promise<unknown> } | undefined
/** The same for the backend's removal of `key` under an `ifMatch`. */
let beforeConditionalRemove: { readonly key: string; readonly run: () => Promise<unknown> } | undefined
/** The `ifMatch` of each backend removal of an object key. */
let removals: Array<{ readonly key: string; readonly ifMatch: string | undefined }> = []

/** The backend store of bucket `cond`, as the gateway opened it. */
let condStore: Store | undefined

const hooked = (store: Store): Store => {
  if (store.bucket === "cond") condStore = store
  return {
  ...store,
  remove: (key, options) => {
    if (store.bucket === "cond") removals.push({ key, ifMatch: options?.ifMatch })
    const hook = beforeConditionalRemove
    if (hook === undefined || hook.key !== key || options?.ifMatch === undefined) return store.remove(key, options)
    beforeConditionalRemove = undefined
    return Effect.zipRight(Effect.promise(() => hook.run()), store.remove(key, options))
  },
  completeMultipart: (upload, parts, options) => {
    if (store.bucket === "cond") conditions.push({ key: upload.key, ifMatch: options?.ifMatch, ifNoneMatch: options?.ifNoneMatch })
    const hook = beforeConditionalComplete
    if (hook === undefined || hook.key !== upload.key) return store.completeMultipart(upload, parts, options)
    beforeConditionalComplete = undefined
  beforeConditionalRemove = undefined
  removals = []
    return Effect.zipRight(Effect.promise(() => hook.run()), store.completeMultipart(upload, parts, options))
  },
  put: (key, body, options) => {
    if (store.bucket === "cond") conditions.push({ key, ifMatch: options?.ifMatch, ifNoneMatch: options?.ifNoneMatch })
    const hook = beforeConditionalPut
    if (hook === undefined || hook.key !== key || options?.ifMatch === undefined) return store.put(key, body, options)
    beforeConditionalPut = undefined
    return Effect.zipRight(Effect.promise(() => hook.run()), store.put(key, body, options))
  }
  }
}

let api: Api
let s3: S3Client

beforeAll(async () => {
  api = await start({ wrapStore: hooked })
  s3 = client(api, undefined, { maxAttempts: 1 })
  await s3.send(new CreateBucketCommand({ Bucket: "cond" }))
}, 60_000)

beforeEach(() => {
  conditions = []
  beforeConditionalPut = undefined
  beforeConditionalComplete = undefined
})

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

  it.effect("If-None-Match other than *, and If-Match with If-None-Match, are 501 NotImplemented as S3 answers them; nothing written", () =>
    Effect.gen(function*() {
      const first = yield* call(() => s3.send(new PutObjectCommand({ Bucket: "cond", Key: "m", Body: "one" })))
      assert.strictEqual(yield* failure(() => s3.send(new PutObjectCommand({ Bucket: "cond", Key: "m", Body: "two", IfNoneMatch: first.ETag }))), "501 NotImplemented")
      assert.strictEqual(yield* failure(() => s3.send(new PutObjectCommand({ Bucket: "cond", Key: "new", Body: "two", IfNoneMatch: first.ETag }))), "501 NotImplemented")
      assert.strictEqual(
        yield* failure(() => s3.send(new PutObjectCommand({ Bucket: "cond", Key: "m", Body: "two", IfMatch: first.ETag, IfNoneMatch: "*" }))),
        "501 NotImplemented"
      )
      assert.strictEqual(yield* text("m"), "one")
      assert.strictEqual(yield* failure(() => s3.send(new HeadObjectCommand({ Bucket: "cond", Key: "new" }))), "404 NotFound")
    }))

  it.effect("CompleteMultipartUpload: If-None-Match: * and If-Match are checked as the backend publishes the object; a refused completion leaves the upload to complete or abort", () =>
    Effect.gen(function*() {
      const key = "mp"
      const begin = (body: string, extra: object = {}) =>
        Effect.gen(function*() {
          const { UploadId } = yield* call(() => s3.send(new CreateMultipartUploadCommand({ Bucket: "cond", Key: key, ...extra })))
          const part = yield* call(() => s3.send(new UploadPartCommand({ Bucket: "cond", Key: key, UploadId, PartNumber: 1, Body: body, ...extra })))
          const parts = { MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } }
          return {
            UploadId,
            complete: (condition: object) => call(() => s3.send(new CompleteMultipartUploadCommand({ Bucket: "cond", Key: key, UploadId, ...parts, ...condition, ...extra }))),
            refused: (condition: object) =>
              failure(() => s3.send(new CompleteMultipartUploadCommand({ Bucket: "cond", Key: key, UploadId, ...parts, ...condition, ...extra })))
          }
        })
      const listed = (UploadId: string | undefined) => call(() => s3.send(new ListPartsCommand({ Bucket: "cond", Key: key, UploadId })))

      // Missing key: If-Match is 404 NoSuchKey and publishes nothing; If-None-Match: * publishes.
      const a = yield* begin("first")
      assert.strictEqual(yield* a.refused({ IfMatch: "\"0123456789abcdef0123456789abcdef-1\"" }), "404 NoSuchKey")
      assert.strictEqual(yield* failure(() => s3.send(new HeadObjectCommand({ Bucket: "cond", Key: key }))), "404 NotFound")
      const created = yield* a.complete({ IfNoneMatch: "*" })
      assert.strictEqual(yield* text(key), "first")
      assert.deepStrictEqual(conditions.filter((c) => c.ifNoneMatch !== undefined).map((c) => c.ifNoneMatch), ["*"], "create-only reached the backend")

      // Existing key: If-None-Match: * and a wrong If-Match are 412, the object intact and the
      // upload still listed; the multipart ETag the client saw (S3's MD5-of-MD5s) then replaces it.
      const b = yield* begin("second")
      assert.strictEqual(yield* b.refused({ IfNoneMatch: "*" }), "412 PreconditionFailed")
      assert.strictEqual(yield* b.refused({ IfMatch: `"${md5("first")}"` }), "412 PreconditionFailed")
      assert.strictEqual(yield* text(key), "first")
      assert.strictEqual((yield* listed(b.UploadId)).Parts?.length, 1)
      const before = yield* condStore!.head(key)
      conditions = []
      assert.match(created.ETag ?? "", /^"[0-9a-f]{32}-1"$/)
      const replaced = yield* b.complete({ IfMatch: created.ETag })
      assert.strictEqual(yield* text(key), "second")
      assert.deepStrictEqual(conditions.map((c) => c.ifMatch), [before.etag], "the backend completion carried the backend etag, not the client's")
      assert.notStrictEqual(unquote(created.ETag), before.etag)

      // A writer slipping in between the gateway's check and the backend's completion keeps its
      // object: 412, and the upload can still be aborted.
      const c = yield* begin("third")
      beforeConditionalComplete = { key, run: () => s3.send(new PutObjectCommand({ Bucket: "cond", Key: key, Body: "racer" })) }
      assert.strictEqual(yield* c.refused({ IfMatch: replaced.ETag }), "412 PreconditionFailed")
      assert.strictEqual(yield* text(key), "racer")
      yield* call(() => s3.send(new AbortMultipartUploadCommand({ Bucket: "cond", Key: key, UploadId: c.UploadId })))
      assert.strictEqual(yield* failure(() => s3.send(new ListPartsCommand({ Bucket: "cond", Key: key, UploadId: c.UploadId }))), "404 NoSuchUpload")

      // SSE-C: the client's ETag of an SSE-C object is the opaque one the gateway gave.
      const d = yield* begin("fourth", ssec)
      const current = yield* call(() => s3.send(new HeadObjectCommand({ Bucket: "cond", Key: key })))
      assert.strictEqual(yield* d.refused({ IfMatch: replaced.ETag }), "412 PreconditionFailed")
      yield* d.complete({ IfMatch: current.ETag })
      assert.strictEqual(yield* text(key, ssec), "fourth")
    }))
})

const kms = { ServerSideEncryption: "aws:kms" as const }
/** Each mode: the write's headers and a read's (SSE-KMS needs none to read). */
const modes = [
  { name: "SSE-S3", write: {}, read: {} },
  { name: "SSE-C", write: ssec, read: ssec },
  { name: "SSE-KMS", write: kms, read: {} }
] as const
const unquote = (etag: string | undefined) => etag?.replace(/^"(.*)"$/, "$1")
const md5 = (b: string | Buffer) => crypto.createHash("md5").update(b).digest("hex")
const put = (key: string, body: string | Buffer, extra: object = {}) => call(() => s3.send(new PutObjectCommand({ Bucket: "cond", Key: key, Body: body, ...extra })))
const head = (key: string, extra: object = {}) => call(() => s3.send(new HeadObjectCommand({ Bucket: "cond", Key: key, ...extra })))

describe("If-Match on PutObject", () => {
  it.effect("replaces only the version with the client's ETag (SSE-S3's plaintext MD5, SSE-C's pinned ETag, SSE-KMS); the backend writes over that version's own etag", () =>
    Effect.gen(function*() {
      for (const mode of modes) {
        const key = `match-${mode.name}`
        const first = yield* put(key, "v1", mode.write)
        if (mode.name === "SSE-S3") assert.strictEqual(first.ETag, `"${md5("v1")}"`)
        if (mode.name === "SSE-C") {
          // A tag update rewrites the backend object (a new backend etag); the client's ETag stays.
          yield* call(() => s3.send(new PutObjectTaggingCommand({ Bucket: "cond", Key: key, Tagging: { TagSet: [{ Key: "a", Value: "b" }] } })))
          assert.strictEqual((yield* head(key, mode.read)).ETag, first.ETag)
        }
        const wrong = yield* failure(() =>
          s3.send(new PutObjectCommand({ Bucket: "cond", Key: key, Body: "wrong", IfMatch: "\"0123456789abcdef0123456789abcdef\"", ...mode.write }))
        )
        assert.strictEqual(wrong, "412 PreconditionFailed", mode.name)
        assert.strictEqual(yield* text(key, mode.read), "v1")
        conditions = []
        const second = yield* put(key, "v2", { IfMatch: first.ETag, ...mode.write })
        assert.strictEqual(second.$metadata.httpStatusCode, 200)
        assert.strictEqual(yield* text(key, mode.read), "v2")
        assert.strictEqual((yield* head(key, mode.read)).ETag, second.ETag)
        // One backend write, conditional on the backend's etag of the version checked — for SSE-S3
        // and the re-tagged SSE-C object that is not the ETag the client sent.
        const written = conditions.filter((c) => c.key === key)
        assert.strictEqual(written.length, 1, mode.name)
        const backendCondition = written[0]?.ifMatch
        assert.isString(backendCondition)
        if (mode.name !== "SSE-KMS") assert.notStrictEqual(unquote(backendCondition), unquote(first.ETag), mode.name)
        // The replaced version's ETag no longer matches.
        assert.strictEqual(yield* failure(() => s3.send(new PutObjectCommand({ Bucket: "cond", Key: key, Body: "v3", IfMatch: first.ETag, ...mode.write }))), "412 PreconditionFailed")
        assert.strictEqual(yield* text(key, mode.read), "v2")
        // Unquoted, in a list, or * (any current version): matches too.
        yield* put(key, "v4", { IfMatch: unquote(second.ETag), ...mode.write })
        const fourth = yield* head(key, mode.read)
        yield* put(key, "v5", { IfMatch: `"other", ${fourth.ETag}`, ...mode.write })
        yield* put(key, "v6", { IfMatch: "*", ...mode.write })
        assert.strictEqual(yield* text(key, mode.read), "v6")
      }
    }))

  it.effect("on a missing key is 404 NoSuchKey (as S3 answers it), and creates nothing", () =>
    Effect.gen(function*() {
      for (const mode of modes) {
        const key = `absent-${mode.name}`
        for (const ifMatch of ["\"0123456789abcdef0123456789abcdef\"", "*"]) {
          assert.strictEqual(yield* failure(() => s3.send(new PutObjectCommand({ Bucket: "cond", Key: key, Body: "x", IfMatch: ifMatch, ...mode.write }))), "404 NoSuchKey")
        }
        assert.strictEqual(yield* failure(() => s3.send(new HeadObjectCommand({ Bucket: "cond", Key: key, ...mode.read }))), "404 NotFound")
      }
      assert.isFalse(conditions.some((c) => c.key.startsWith("absent-")))
    }))

  it.effect("a writer slipping in between the gateway's check and its write keeps its object: the conditional PUT is 412 (404 when the object was deleted)", () =>
    Effect.gen(function*() {
      for (const mode of modes) {
        const key = `raced-${mode.name}`
        const first = yield* put(key, "v1", mode.write)
        beforeConditionalPut = { key, run: () => s3.send(new PutObjectCommand({ Bucket: "cond", Key: key, Body: "racer", ...mode.write })) }
        assert.strictEqual(yield* failure(() => s3.send(new PutObjectCommand({ Bucket: "cond", Key: key, Body: "mine", IfMatch: first.ETag, ...mode.write }))), "412 PreconditionFailed")
        assert.isUndefined(beforeConditionalPut, "the racing writer ran")
        assert.strictEqual(yield* text(key, mode.read), "racer")
        // A delete slipping in: S3's answer to a concurrent delete is 404, and nothing is created.
        const current = yield* head(key, mode.read)
        beforeConditionalPut = { key, run: () => s3.send(new DeleteObjectCommand({ Bucket: "cond", Key: key })) }
        assert.strictEqual(yield* failure(() => s3.send(new PutObjectCommand({ Bucket: "cond", Key: key, Body: "mine", IfMatch: current.ETag, ...mode.write }))), "404 NoSuchKey")
        assert.isUndefined(beforeConditionalPut, "the racing delete ran")
        assert.strictEqual(yield* failure(() => s3.send(new HeadObjectCommand({ Bucket: "cond", Key: key, ...mode.read }))), "404 NotFound")
      }
    }))

  it.effect("of four concurrent PUTs with the same If-Match, exactly one wins and the others are 412", () =>
    Effect.gen(function*() {
      const body = (i: number) => Buffer.alloc(3 * 1024 * 1024, i)
      const first = yield* put("cas", body(0))
      const results = yield* Effect.all(
        [1, 2, 3, 4].map((i) =>
          Effect.either(failure(() => s3.send(new PutObjectCommand({ Bucket: "cond", Key: "cas", Body: body(i), IfMatch: first.ETag }))))
        ),
        { concurrency: "unbounded" }
      )
      // `failure` flips: a Left is a request that succeeded, a Right the error it answered.
      assert.strictEqual(results.filter((r) => r._tag === "Left").length, 1)
      assert.deepStrictEqual(results.flatMap((r) => (r._tag === "Right" ? [r.right] : [])), Array(3).fill("412 PreconditionFailed"))
      const winner = results.findIndex((r) => r._tag === "Left") + 1
      const stored = Buffer.from(yield* Effect.flatMap(call(() => s3.send(new GetObjectCommand({ Bucket: "cond", Key: "cas" }))), (o) => bytes(o.Body)))
      assert.isTrue(stored.equals(body(winner)))
      assert.strictEqual((yield* head("cas")).ETag, `"${md5(body(winner))}"`)
    }))
})

describe("conditions on CopyObject", () => {
  it.effect("If-None-Match: * and If-Match apply to the destination as on PutObject; x-amz-copy-source-if-match to the source", () =>
    Effect.gen(function*() {
      yield* put("copy/src", "source")
      const dst = yield* put("copy/dst", "old", ssec)
      const copy = (key: string, extra: object) =>
        call(() => s3.send(new CopyObjectCommand({ Bucket: "cond", Key: key, CopySource: "cond/copy/src", ...extra })))
      const refusedCopy = (key: string, extra: object) =>
        failure(() => s3.send(new CopyObjectCommand({ Bucket: "cond", Key: key, CopySource: "cond/copy/src", ...extra })))
      assert.strictEqual(yield* refusedCopy("copy/dst", { IfNoneMatch: "*" }), "412 PreconditionFailed")
      assert.strictEqual(yield* refusedCopy("copy/dst", { IfMatch: "\"0123456789abcdef0123456789abcdef\"" }), "412 PreconditionFailed")
      assert.strictEqual(yield* refusedCopy("copy/none", { IfMatch: dst.ETag }), "404 NoSuchKey")
      assert.strictEqual(yield* refusedCopy("copy/dst", { CopySourceIfMatch: "\"0123456789abcdef0123456789abcdef\"" }), "412 PreconditionFailed")
      assert.strictEqual(yield* refusedCopy("copy/dst", { IfNoneMatch: dst.ETag }), "501 NotImplemented")
      assert.strictEqual(yield* text("copy/dst", ssec), "old")
      assert.strictEqual(yield* failure(() => s3.send(new HeadObjectCommand({ Bucket: "cond", Key: "copy/none" }))), "404 NotFound")
      yield* copy("copy/new", { IfNoneMatch: "*" })
      assert.strictEqual(yield* text("copy/new"), "source")
      const replaced = yield* copy("copy/dst", { IfMatch: dst.ETag, CopySourceIfMatch: `"${md5("source")}"` })
      assert.strictEqual(replaced.CopyObjectResult?.ETag, `"${md5("source")}"`)
      assert.strictEqual(yield* text("copy/dst"), "source")
    }))
})

describe("conditional deletes", () => {
  it.effect("If-Match on DeleteObject removes only the version with the client's ETag; the backend removes that version's own etag; 412 / 404 otherwise, nothing removed", () =>
    Effect.gen(function*() {
      const a = yield* put("del/a", "a")
      const del = (key: string, ifMatch: string) => call(() => s3.send(new DeleteObjectCommand({ Bucket: "cond", Key: key, IfMatch: ifMatch })))
      const refused = (key: string, ifMatch: string) => failure(() => s3.send(new DeleteObjectCommand({ Bucket: "cond", Key: key, IfMatch: ifMatch })))
      assert.strictEqual(yield* refused("del/a", `"${md5("other")}"`), "412 PreconditionFailed")
      assert.strictEqual(yield* text("del/a"), "a")
      assert.strictEqual(yield* refused("del/none", a.ETag!), "404 NoSuchKey")
      // The SSE-S3 ETag is the plaintext MD5; the backend is asked to remove its own etag.
      assert.strictEqual(unquote(a.ETag), md5("a"))
      const backend = yield* condStore!.head("del/a")
      yield* del("del/a", a.ETag!)
      assert.strictEqual(yield* failure(() => s3.send(new HeadObjectCommand({ Bucket: "cond", Key: "del/a" }))), "404 NotFound")
      assert.deepStrictEqual(removals.filter((x) => x.key === "del/a").map((x) => x.ifMatch), [backend.etag])
      // `*`: any current version.
      yield* put("del/star", "s")
      yield* del("del/star", "*")
      assert.strictEqual(yield* failure(() => s3.send(new HeadObjectCommand({ Bucket: "cond", Key: "del/star" }))), "404 NotFound")
    }))

  it.effect("a writer slipping in between the gateway's check and the backend's removal keeps its object (412)", () =>
    Effect.gen(function*() {
      const a = yield* put("del/raced", "old")
      beforeConditionalRemove = { key: "del/raced", run: () => s3.send(new PutObjectCommand({ Bucket: "cond", Key: "del/raced", Body: "racer" })) }
      assert.strictEqual(yield* failure(() => s3.send(new DeleteObjectCommand({ Bucket: "cond", Key: "del/raced", IfMatch: a.ETag }))), "412 PreconditionFailed")
      assert.strictEqual(yield* text("del/raced"), "racer")
    }))

  it.effect("DeleteObjects: an ETag makes that object's delete conditional; the others go on", () =>
    Effect.gen(function*() {
      const b = yield* put("del/b", "b")
      const c = yield* put("del/c", "c")
      yield* put("del/d", "d")
      const r = yield* call(() =>
        s3.send(new DeleteObjectsCommand({
          Bucket: "cond",
          Delete: { Objects: [{ Key: "del/b", ETag: c.ETag }, { Key: "del/c", ETag: c.ETag }, { Key: "del/d" }, { Key: "del/e", ETag: b.ETag }] }
        }))
      )
      assert.deepStrictEqual((r.Deleted ?? []).map((x) => x.Key).sort(), ["del/c", "del/d"])
      assert.deepStrictEqual((r.Errors ?? []).map((x) => [x.Key, x.Code]).sort(), [["del/b", "PreconditionFailed"], ["del/e", "NoSuchKey"]])
      assert.strictEqual(yield* text("del/b"), "b")
      assert.strictEqual(yield* failure(() => s3.send(new HeadObjectCommand({ Bucket: "cond", Key: "del/c" }))), "404 NotFound")
    }))
})
