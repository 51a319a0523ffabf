/**
 * Against moto_server (AWS KMS and an S3 that echoes SSE-S3/SSE-KMS and stores bucket encryption
 * configuration, but does not enforce SSE-C): AwsKms, SSE-S3 response headers, bucket default
 * encryption, and a probe that notices SSE-C is not enforced.
 */
import { CreateAliasCommand, CreateKeyCommand } from "@aws-sdk/client-kms"
import { assert, layer } from "@effect/vitest"
import * as CustomerKey from "@objcrypt/core/CustomerKey"
import { Kms } from "@objcrypt/core/Kms"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as MotoServer from "@objcrypt/test-kit/MotoServer"
import { Effect, Layer, Option, Redacted, Stream } from "effect"
import * as crypto from "node:crypto"
import * as AwsKms from "../src/AwsKms.js"
import * as S3Buckets from "../src/S3Buckets.js"
import * as S3ObjectStore from "../src/S3ObjectStore.js"

const kmsLayer = Layer.unwrapEffect(
  Effect.map(MotoServer.MotoServer, (m) =>
    AwsKms.layer({ endpoint: m.endpoint, region: m.region, accessKeyId: m.accessKeyId, secretAccessKey: Redacted.make(m.secretAccessKey) }))
)

const bucket = `objcrypt-moto-${crypto.randomBytes(4).toString("hex")}`
const s3Layer = Layer.unwrapEffect(
  Effect.map(MotoServer.MotoServer, (m) =>
    S3ObjectStore.layer({
      bucket,
      endpoint: m.endpoint,
      region: m.region,
      forcePathStyle: true,
      accessKeyId: m.accessKeyId,
      secretAccessKey: Redacted.make(m.secretAccessKey),
      profile: "aws-s3"
    }))
)

const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b))

layer(Layer.mergeAll(kmsLayer, s3Layer).pipe(Layer.provideMerge(MotoServer.layer())), { timeout: "60 seconds", excludeTestServices: true })(
  "moto_server",
  (it) => {
    const newKey = Effect.gen(function*() {
      const kms = yield* AwsKms.AwsKms
      const r = yield* Effect.promise(() => kms.client.send(new CreateKeyCommand({ Description: "objcrypt test" })))
      return r.KeyMetadata!
    })

    it.effect("AwsKms: a data key round-trips through Decrypt with its context; the key id is the ARN", () =>
      Effect.gen(function*() {
        const kms = yield* Kms
        const key = yield* newKey
        const context = { bucket: "b", object: "k/é" }
        const dk = yield* kms.generateDataKey(key.KeyId!, context)
        assert.strictEqual(Redacted.value(dk.plaintext).length, 32)
        assert.strictEqual(dk.keyId, key.Arn)
        assert.notInclude(String(dk.plaintext), Buffer.from(Redacted.value(dk.plaintext)).toString("hex"))
        const back = yield* kms.decrypt(dk.ciphertext, context)
        assert.isTrue(same(Redacted.value(back.plaintext), Redacted.value(dk.plaintext)))
        assert.strictEqual(back.keyId, key.Arn)
        const again = yield* kms.decrypt(dk.ciphertext, context, key.Arn)
        assert.isTrue(same(Redacted.value(again.plaintext), Redacted.value(dk.plaintext)))
      }))

    it.effect("AwsKms: a wrong or missing context, or a tampered blob, is refused with InvalidCiphertext", () =>
      Effect.gen(function*() {
        const kms = yield* Kms
        const key = yield* newKey
        const dk = yield* kms.generateDataKey(key.KeyId!, { purpose: "a" })
        const wrong = yield* Effect.flip(kms.decrypt(dk.ciphertext, { purpose: "b" }))
        assert.deepStrictEqual([wrong._tag, wrong.reason], ["KmsError", "InvalidCiphertext"])
        const missing = yield* Effect.flip(kms.decrypt(dk.ciphertext, {}))
        assert.strictEqual(missing.reason, "InvalidCiphertext")
        const tampered = Uint8Array.from(dk.ciphertext)
        tampered[tampered.length - 1]! ^= 1
        const t = yield* Effect.flip(kms.decrypt(tampered, { purpose: "a" }))
        assert.strictEqual(t.reason, "InvalidCiphertext")
        assert.notInclude(t.message, Buffer.from(Redacted.value(dk.plaintext)).toString("base64"))
      }))

    it.effect("AwsKms: keys named by alias and alias ARN; Encrypt/Decrypt of a given data key", () =>
      Effect.gen(function*() {
        const kms = yield* AwsKms.AwsKms
        const key = yield* newKey
        const alias = `alias/objcrypt-${crypto.randomBytes(4).toString("hex")}`
        yield* Effect.promise(() => kms.client.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: key.KeyId! })))
        const dk = yield* kms.generateDataKey(alias, { a: "1" })
        assert.strictEqual(dk.keyId, key.Arn, "the alias resolves to the key's ARN")
        const plaintext = Redacted.make(Uint8Array.from(crypto.randomBytes(32)))
        const aliasArn = `${key.Arn!.split(":key/")[0]}:${alias}`
        const wrapped = yield* kms.encrypt(aliasArn, plaintext, { a: "1" })
        assert.strictEqual(wrapped.keyId, key.Arn)
        const back = yield* kms.decrypt(wrapped.ciphertext, { a: "1" })
        assert.isTrue(same(Redacted.value(back.plaintext), Redacted.value(plaintext)))
      }))

    it.effect("AwsKms: unknown keys and aliases fail with NotFound, naming the key", () =>
      Effect.gen(function*() {
        const kms = yield* AwsKms.AwsKms
        const nf = yield* Effect.flip(kms.generateDataKey("alias/does-not-exist", {}))
        assert.deepStrictEqual([nf.reason, nf.keyId], ["NotFound", "alias/does-not-exist"])
        const id = crypto.randomUUID()
        const nf2 = yield* Effect.flip(kms.encrypt(id, Redacted.make(new Uint8Array(32)), {}))
        assert.deepStrictEqual([nf2.reason, nf2.keyId], ["NotFound", id])
      }))

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
)
