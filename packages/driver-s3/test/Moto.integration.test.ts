/**
 * Against moto_server (AWS KMS and an S3 that echoes SSE-S3/SSE-KMS and stores bucket encryption
 * configuration, but does not enforce SSE-C): AwsKms, SSE-S3 response headers, bucket default
 * encryption, a probe that notices SSE-C is not enforced, and `If-None-Match: *` on
 * CompleteMultipartUpload (which moto checks as AWS does: 412, the upload left in place; moto 5.2
 * ignores `If-Match` there, so that one is asserted on the wire only, in S3ObjectStore.test.ts),
 * and `If-Match` on DeleteObject (which moto checks as AWS does).
 */
import { CreateAliasCommand, CreateKeyCommand } from "@aws-sdk/client-kms"
import { ListMultipartUploadsCommand } from "@aws-sdk/client-s3"
import { assert, layer } from "@effect/vitest"
import * as CustomerKey from "@objcrypt/core/CustomerKey"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as KmsSuite from "@objcrypt/test-kit/KmsSuite"
import * as MotoServer from "@objcrypt/test-kit/MotoServer"
import { Effect, Layer, Option, Stream } from "effect"
import * as crypto from "node:crypto"
import * as AwsKms from "../src/AwsKms.js"
import * as S3Buckets from "../src/S3Buckets.js"
import * as S3ObjectStore from "../src/S3ObjectStore.js"

const kmsLayer = Layer.unwrapEffect(Effect.map(MotoServer.MotoServer, (m) => AwsKms.layer(MotoServer.clientSettings(m))))

const bucket = `objcrypt-moto-${crypto.randomBytes(4).toString("hex")}`
const s3Layer = Layer.unwrapEffect(Effect.map(MotoServer.MotoServer, (m) => S3ObjectStore.layer({ bucket, ...MotoServer.s3Settings(m) })))

const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b))

const newKey = Effect.gen(function*() {
  const kms = yield* AwsKms.AwsKms
  const r = yield* Effect.promise(() => kms.client.send(new CreateKeyCommand({ Description: "objcrypt test" })))
  return r.KeyMetadata!
})

KmsSuite.kmsSuite({
  name: "moto_server: AwsKms and S3",
  layer: Layer.mergeAll(kmsLayer, s3Layer).pipe(Layer.provideMerge(MotoServer.layer())),
  createKey: Effect.map(newKey, (k) => ({ keyId: k.KeyId!, arn: k.Arn! })),
  createAlias: (alias, keyId) =>
    Effect.flatMap(AwsKms.AwsKms, (kms) => Effect.promise(() => kms.client.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: keyId })))),
  tests: (it) => {
    it.effect("S3: bucket created with default SSE-KMS; get/put/delete of the default encryption", () =>
      Effect.gen(function*() {
        const store = yield* S3ObjectStore.S3ObjectStore
        const key = yield* newKey
        yield* S3Buckets.createBucket(store.client, bucket, { defaultEncryption: { _tag: "SseKms", keyId: key.Arn!, bucketKey: true } })
        const d1 = yield* S3Buckets.getDefaultEncryption(store.client, bucket)
        assert.deepStrictEqual(Option.getOrUndefined(d1), { _tag: "SseKms", keyId: key.Arn!, bucketKey: true })
        yield* S3Buckets.putDefaultEncryption(store.client, bucket, { _tag: "SseS3", bucketKey: false })
        assert.deepStrictEqual(Option.getOrUndefined(yield* S3Buckets.getDefaultEncryption(store.client, bucket)), { _tag: "SseS3", bucketKey: false })
        yield* S3Buckets.deleteDefaultEncryption(store.client, bucket)
        assert.isTrue(Option.isNone(yield* S3Buckets.getDefaultEncryption(store.client, bucket)))
        const e = yield* Effect.flip(S3Buckets.getDefaultEncryption(store.client, "no-such-bucket-objcrypt"))
        assert.strictEqual(e._tag, "ProviderError")
      }))

    it.effect("S3: SSE-S3 and SSE-KMS are reported from the response headers on put, head and get", () =>
      Effect.gen(function*() {
        const store = yield* ObjectStore.ObjectStore
        const key = yield* newKey
        const body = crypto.randomBytes(1000)
        const put = yield* store.put("sse-s3", Stream.make(body), { sse: { _tag: "SseS3" } })
        assert.strictEqual(put.encryption.mode, "SseS3")
        assert.strictEqual((yield* store.head("sse-s3")).encryption.mode, "SseS3")
        const got = yield* ObjectStore.readAll(store, "sse-s3")
        assert.strictEqual(got.info.encryption.mode, "SseS3")
        assert.isTrue(same(got.bytes, body))
        const kput = yield* store.put("sse-kms", Stream.make(body), { sse: { _tag: "SseKms", keyId: key.Arn!, context: { team: "a" }, bucketKey: true } })
        assert.deepStrictEqual([kput.encryption.mode, kput.encryption.kmsKeyId], ["SseKms", key.Arn])
        const kh = yield* store.head("sse-kms")
        assert.deepStrictEqual([kh.encryption.mode, kh.encryption.kmsKeyId], ["SseKms", key.Arn])
        // A plain PUT gets the bucket's default encryption, and the response says so.
        const s3 = yield* S3ObjectStore.S3ObjectStore
        yield* S3Buckets.putDefaultEncryption(s3.client, bucket, { _tag: "SseS3" })
        const plain = yield* store.put("plain", Stream.make(body))
        assert.strictEqual(plain.encryption.mode, "SseS3")
        assert.strictEqual((yield* store.head("plain")).encryption.mode, "SseS3")
        yield* S3Buckets.deleteDefaultEncryption(s3.client, bucket)
        assert.strictEqual((yield* store.put("plain2", Stream.make(body))).encryption.mode, "None")
      }))

    it.effect("S3: the probe sees SSE-S3/SSE-KMS accepted and SSE-C ignored (moto stores SSE-C objects readable without the key)", () =>
      Effect.gen(function*() {
        const store = yield* S3ObjectStore.S3ObjectStore
        const r = yield* S3Buckets.probe(store)
        assert.deepStrictEqual(r.facts.modes, { SseS3: "accepted", SseKms: "accepted", SseC: "ignored" })
        assert.strictEqual(r.facts.tls, false)
        // Over plain http, no SSE-C unless a probe saw it enforced: never send a key in the clear.
        assert.isFalse(store.nativeModes.has("SseC"))
        const k = yield* CustomerKey.generate
        const e = yield* Effect.flip(store.put("ssec", Stream.make(Buffer.from("x")), { sse: { _tag: "SseC", key: k } }))
        assert.strictEqual(e._tag, "UnsupportedMode")
        const listed = yield* store.list({ prefix: ".objcrypt-probe/" })
        assert.deepStrictEqual(listed.objects, [], "probe objects are removed")
      }))
  }
})

const conditionalBucket = `objcrypt-moto-${crypto.randomBytes(4).toString("hex")}`
const MiB = 1024 * 1024
const conditionalLayer = Layer.unwrapEffect(
  Effect.map(MotoServer.MotoServer, (m) => S3ObjectStore.layer({ bucket: conditionalBucket, ...MotoServer.s3Settings(m), partSize: 5 * MiB }))
).pipe(Layer.provide(MotoServer.layer()))

layer(conditionalLayer, { timeout: "60 seconds", excludeTestServices: true })("moto_server: conditional completion (aws-s3 profile)", (it) => {
  const setup = Effect.flatMap(S3ObjectStore.S3ObjectStore, (store) =>
    Effect.as(Effect.ignore(S3Buckets.createBucket(store.client, conditionalBucket)), store))
  const text = (store: ObjectStore.ObjectStore["Type"], key: string) => Effect.map(ObjectStore.readAll(store, key), (r) => Buffer.from(r.bytes).toString())
  const uploads = (store: S3ObjectStore.S3ObjectStore["Type"]) =>
    Effect.map(Effect.promise(() => store.client.send(new ListMultipartUploadsCommand({ Bucket: conditionalBucket }))), (r) =>
      (r.Uploads ?? []).map((u) => u.Key))

  it.effect("completeMultipart ifNoneMatch over an existing key: PreconditionFailed, the old object intact, the upload still there to complete or abort; over a missing key it creates", () =>
    Effect.gen(function*() {
      const store = yield* setup
      yield* store.put("inm/k", Stream.make(Buffer.from("old")))
      const upload = yield* store.createMultipart("inm/k")
      const part = yield* store.uploadPart(upload, 1, Stream.make(Buffer.from("new")))
      const e = yield* Effect.flip(store.completeMultipart(upload, [part], { ifNoneMatch: "*" }))
      assert.deepStrictEqual([e._tag, (e as { key?: string }).key], ["PreconditionFailed", "inm/k"])
      assert.strictEqual(yield* text(store, "inm/k"), "old")
      assert.deepStrictEqual(yield* uploads(store), ["inm/k"], "the upload is left in place")
      // Completed again without the condition, it replaces the object.
      const done = yield* store.completeMultipart(upload, [part])
      assert.strictEqual(yield* text(store, "inm/k"), "new")
      assert.strictEqual((yield* store.head("inm/k")).etag, done.etag)
      assert.deepStrictEqual(yield* uploads(store), [])
      // Or aborted.
      const second = yield* store.createMultipart("inm/k")
      const p2 = yield* store.uploadPart(second, 1, Stream.make(Buffer.from("newer")))
      assert.strictEqual((yield* Effect.flip(store.completeMultipart(second, [p2], { ifNoneMatch: "*" })))._tag, "PreconditionFailed")
      yield* store.abortMultipart(second)
      assert.deepStrictEqual(yield* uploads(store), [])
      assert.strictEqual(yield* text(store, "inm/k"), "new")
      // Over a missing key the condition holds.
      const fresh = yield* store.createMultipart("inm/missing")
      const p3 = yield* store.uploadPart(fresh, 1, Stream.make(Buffer.from("created")))
      yield* store.completeMultipart(fresh, [p3], { ifNoneMatch: "*" })
      assert.strictEqual(yield* text(store, "inm/missing"), "created")
      // ifMatch with ifNoneMatch: the usage error, before the server sees it (the upload is untouched).
      const third = yield* store.createMultipart("inm/k")
      const p4 = yield* store.uploadPart(third, 1, Stream.make(Buffer.from("x")))
      const usage = yield* Effect.flip(store.completeMultipart(third, [p4], { ifNoneMatch: "*", ifMatch: done.etag }))
      assert.deepStrictEqual([usage._tag, (usage as { status?: number }).status], ["ProviderError", 400])
      assert.deepStrictEqual(yield* uploads(store), ["inm/k"])
      yield* store.abortMultipart(third)
    }))

  it.effect("remove with ifMatch: a wrong etag is PreconditionFailed and the object stays; a missing key is PreconditionFailed; the right etag (quoted or not) removes", () =>
    Effect.gen(function*() {
      const store = yield* setup
      const first = yield* store.put("rm/k", Stream.make(Buffer.from("one")))
      const second = yield* store.put("rm/k", Stream.make(Buffer.from("two")))
      for (const ifMatch of [crypto.randomBytes(16).toString("hex"), first.etag]) {
        const e = yield* Effect.flip(store.remove("rm/k", { ifMatch }))
        assert.deepStrictEqual([e._tag, (e as { key?: string }).key], ["PreconditionFailed", "rm/k"])
        assert.strictEqual(yield* text(store, "rm/k"), "two")
      }
      assert.strictEqual((yield* Effect.flip(store.remove("rm/missing", { ifMatch: second.etag })))._tag, "PreconditionFailed")
      yield* store.remove("rm/k", { ifMatch: `"${second.etag}"` })
      assert.strictEqual((yield* Effect.flip(store.head("rm/k")))._tag, "ObjectNotFound")
      assert.strictEqual((yield* Effect.flip(store.remove("rm/k", { ifMatch: second.etag })))._tag, "PreconditionFailed")
      yield* store.remove("rm/k")
      const third = yield* store.put("rm/k", Stream.make(Buffer.from("three")))
      yield* store.remove("rm/k", { ifMatch: third.etag })
      assert.strictEqual((yield* Effect.flip(store.head("rm/k")))._tag, "ObjectNotFound")
    }))

  it.effect("a put that needs parts with ifNoneMatch over an existing key: PreconditionFailed at completion, nothing written, its upload aborted", () =>
    Effect.gen(function*() {
      const store = yield* setup
      yield* store.put("inm/big", Stream.make(Buffer.from("small")))
      const body = crypto.randomBytes(5 * MiB + 1000)
      const e = yield* Effect.flip(store.put("inm/big", Stream.make(body), { ifNoneMatch: "*" }))
      assert.strictEqual(e._tag, "PreconditionFailed")
      assert.strictEqual(yield* text(store, "inm/big"), "small")
      assert.deepStrictEqual(yield* uploads(store), [])
      const created = yield* store.put("inm/big-new", Stream.make(body), { ifNoneMatch: "*" })
      assert.match(created.etag, /-2$/, "a 2-part upload")
      assert.isTrue(same((yield* ObjectStore.readAll(store, "inm/big-new")).bytes, body))
    }))
})
