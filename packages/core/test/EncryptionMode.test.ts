import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import * as crypto from "node:crypto"
import * as CustomerKey from "../src/CustomerKey.js"
import * as EncryptionMode from "../src/EncryptionMode.js"

const key = crypto.randomBytes(32)
const keyB64 = key.toString("base64")
const md5 = crypto.createHash("md5").update(key).digest("base64")

describe("EncryptionMode.fromS3Headers", () => {
  it.effect("no headers is mode none", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* EncryptionMode.fromS3Headers({}))._tag, "None")
    }))

  it.effect("AES256 is SSE-S3", () =>
    Effect.gen(function*() {
      const m = yield* EncryptionMode.fromS3Headers({ "X-Amz-Server-Side-Encryption": "AES256" })
      assert.strictEqual(m._tag, "SseS3")
    }))

  it.effect("aws:kms with key id, base64-JSON context and bucket key", () =>
    Effect.gen(function*() {
      const ctx = Buffer.from(JSON.stringify({ team: "a" })).toString("base64")
      const m = yield* EncryptionMode.fromS3Headers({
        "x-amz-server-side-encryption": "aws:kms",
        "x-amz-server-side-encryption-aws-kms-key-id": "alias/data",
        "x-amz-server-side-encryption-context": ctx,
        "x-amz-server-side-encryption-bucket-key-enabled": "true"
      })
      assert.deepStrictEqual(m, { _tag: "SseKms", keyId: "alias/data", context: { team: "a" }, bucketKey: true })
      const dual = yield* EncryptionMode.fromS3Headers({ "x-amz-server-side-encryption": "aws:kms:dsse" })
      assert.deepStrictEqual(dual, { _tag: "SseKms", dsse: true })
    }))

  it.effect("SSE-C with a valid key and MD5 yields a redacted provided key", () =>
    Effect.gen(function*() {
      const m = yield* EncryptionMode.fromS3Headers({
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": keyB64,
        "x-amz-server-side-encryption-customer-key-MD5": md5
      })
      assert.strictEqual(m._tag, "SseC")
      if (m._tag !== "SseC" || m.key._tag !== "ProvidedKey") return assert.fail("expected a provided key")
      assert.isTrue(Buffer.from(Redacted.value(m.key.key.material)).equals(key))
      assert.notInclude(JSON.stringify(m), keyB64)
      assert.notInclude(String(m.key.key.material), keyB64)
    }))

  it.effect("SSE-C copy-source headers are read with the copy-source prefix", () =>
    Effect.gen(function*() {
      const m = yield* EncryptionMode.fromS3Headers({
        "x-amz-copy-source-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-copy-source-server-side-encryption-customer-key": keyB64,
        "x-amz-copy-source-server-side-encryption-customer-key-md5": md5
      }, { prefix: "x-amz-copy-source-" })
      assert.strictEqual(m._tag, "SseC")
    }))

  it.effect("an MD5 that does not match the key is a typed error without the key in it", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(EncryptionMode.fromS3Headers({
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": keyB64,
        "x-amz-server-side-encryption-customer-key-md5": crypto.createHash("md5").update("other").digest("base64")
      }))
      assert.strictEqual(e._tag, "InvalidCustomerKey")
      if (e._tag === "InvalidCustomerKey") assert.strictEqual(e.reason, "Md5Mismatch")
      assert.notInclude(e.message, keyB64)
    }))

  it.effect("a 31-byte customer key is WrongLength", () =>
    Effect.gen(function*() {
      const short = crypto.randomBytes(31)
      const e = yield* Effect.flip(EncryptionMode.fromS3Headers({
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": short.toString("base64"),
        "x-amz-server-side-encryption-customer-key-md5": crypto.createHash("md5").update(short).digest("base64")
      }))
      assert.deepInclude(e, { _tag: "InvalidCustomerKey", reason: "WrongLength" })
    }))

  it.effect("a customer algorithm other than AES256 is refused", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(EncryptionMode.fromS3Headers({
        "x-amz-server-side-encryption-customer-algorithm": "AES128",
        "x-amz-server-side-encryption-customer-key": keyB64,
        "x-amz-server-side-encryption-customer-key-md5": md5
      }))
      assert.deepInclude(e, { _tag: "InvalidCustomerKey", reason: "UnsupportedAlgorithm" })
    }))

  it.effect("a customer key without its MD5 is refused", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(EncryptionMode.fromS3Headers({
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": keyB64
      }))
      assert.deepInclude(e, { _tag: "InvalidCustomerKey", reason: "Missing" })
    }))

  it.effect("a key that is not base64 is BadEncoding", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(EncryptionMode.fromS3Headers({
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": "not base64!",
        "x-amz-server-side-encryption-customer-key-md5": md5
      }))
      assert.deepInclude(e, { _tag: "InvalidCustomerKey", reason: "BadEncoding" })
    }))

  it.effect("SSE and SSE-C headers together are refused", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(EncryptionMode.fromS3Headers({
        "x-amz-server-side-encryption": "AES256",
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": keyB64,
        "x-amz-server-side-encryption-customer-key-md5": md5
      }))
      assert.strictEqual(e._tag, "InvalidEncryptionParameters")
    }))

  it.effect("a KMS key id without aws:kms is refused", () =>
    Effect.gen(function*() {
      const e1 = yield* Effect.flip(EncryptionMode.fromS3Headers({ "x-amz-server-side-encryption-aws-kms-key-id": "k" }))
      const e2 = yield* Effect.flip(EncryptionMode.fromS3Headers({
        "x-amz-server-side-encryption": "AES256",
        "x-amz-server-side-encryption-aws-kms-key-id": "k"
      }))
      assert.strictEqual(e1._tag, "InvalidEncryptionParameters")
      assert.strictEqual(e2._tag, "InvalidEncryptionParameters")
    }))

  it.effect("an unknown algorithm, a malformed context and a repeated header are refused", () =>
    Effect.gen(function*() {
      const e1 = yield* Effect.flip(EncryptionMode.fromS3Headers({ "x-amz-server-side-encryption": "AES512" }))
      const e2 = yield* Effect.flip(EncryptionMode.fromS3Headers({
        "x-amz-server-side-encryption": "aws:kms",
        "x-amz-server-side-encryption-context": Buffer.from("[1,2]").toString("base64")
      }))
      const e3 = yield* Effect.flip(EncryptionMode.fromS3Headers({ "x-amz-server-side-encryption": ["AES256", "aws:kms"] }))
      for (const e of [e1, e2, e3]) assert.strictEqual(e._tag, "InvalidEncryptionParameters")
    }))
})

describe("EncryptionMode.fromSpec / fromConfig", () => {
  it.effect("parses each mode from flags", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* EncryptionMode.fromSpec({ mode: "none" }))._tag, "None")
      assert.strictEqual((yield* EncryptionMode.fromSpec({ mode: "sse-s3" }))._tag, "SseS3")
      assert.deepStrictEqual(yield* EncryptionMode.fromSpec({ mode: "sse-kms", kmsKeyId: "k1" }), { _tag: "SseKms", keyId: "k1" })
      const ssec = yield* EncryptionMode.fromSpec({ mode: "sse-c", key: "cust@2" })
      assert.deepInclude(ssec._tag === "SseC" ? ssec.key : {}, { name: "cust", version: 2 })
      const csec = yield* EncryptionMode.fromSpec({ mode: "cse-c", key: "a,b@3", recipients: ["ops"] })
      assert.deepStrictEqual(csec._tag === "CseC" ? csec.keys.map((k) => [k.name, k.version]) : [], [["a", undefined], ["b", 3], ["ops", undefined]])
      assert.deepStrictEqual(yield* EncryptionMode.fromSpec({ mode: "cse-kms", kmsKeyId: "alias/x", context: { a: "b" } }), {
        _tag: "CseKms",
        keyId: "alias/x",
        context: { a: "b" }
      })
    }))

  it.effect("each mode refuses what it needs but lacks, and fields that do not apply", () =>
    Effect.gen(function*() {
      const bad = [
        { mode: "sse-c" },
        { mode: "cse-c" },
        { mode: "cse-kms" },
        { mode: "none", key: "k" },
        { mode: "sse-s3", kmsKeyId: "k" },
        { mode: "sse-kms", key: "k" },
        { mode: "cse-kms", kmsKeyId: "k", recipients: ["r"] },
        { mode: "sse-c", key: "bad name with spaces" },
        { mode: "sse-c", key: "k@0" }
      ] as const
      for (const spec of bad) {
        const e = yield* Effect.flip(EncryptionMode.fromSpec(spec as EncryptionMode.ModeSpec))
        assert.strictEqual(e._tag, "InvalidEncryptionParameters", JSON.stringify(spec))
      }
    }))

  it.effect("config files: decodes an entry, rejects unknown modes with a readable message", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* EncryptionMode.fromConfig({ mode: "cse-c", key: "backup" }))._tag, "CseC")
      const e = yield* Effect.flip(EncryptionMode.fromConfig({ mode: "sse-x" }))
      assert.strictEqual(e._tag, "InvalidEncryptionParameters")
      assert.include(e.message, "sse-x")
    }))

  it.effect("parses encryption contexts as k=v lists and JSON", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* EncryptionMode.parseContext("a=1,b=x=y"), { a: "1", b: "x=y" })
      assert.deepStrictEqual(yield* EncryptionMode.parseContext("{\"a\":\"1\"}"), { a: "1" })
      assert.strictEqual((yield* Effect.flip(EncryptionMode.parseContext("novalue")))._tag, "InvalidEncryptionParameters")
      assert.strictEqual((yield* Effect.flip(EncryptionMode.parseContext("{\"a\":1}")))._tag, "InvalidEncryptionParameters")
    }))

  it("describes modes without key material", () => {
    const ck = CustomerKey.unsafeFromBytes(key)
    const d = EncryptionMode.describe(EncryptionMode.SseC.make({ key: new EncryptionMode.ProvidedKey({ key: ck }) }))
    assert.strictEqual(d, "sse-c (provided key)")
    assert.strictEqual(EncryptionMode.nameOf("CseKms"), "cse-kms")
    assert.strictEqual(EncryptionMode.tagOf("sse-kms"), "SseKms")
  })
})

describe("CustomerKey", () => {
  it.effect("generates random 32-byte keys with MD5 and SHA-256 digests", () =>
    Effect.gen(function*() {
      const a = yield* CustomerKey.generate
      const b = yield* CustomerKey.generate
      assert.strictEqual(Redacted.value(a.material).length, 32)
      assert.isFalse(CustomerKey.equals(a, b))
      assert.strictEqual(a.md5, crypto.createHash("md5").update(Redacted.value(a.material)).digest("base64"))
      assert.strictEqual(a.sha256, crypto.createHash("sha256").update(Redacted.value(a.material)).digest("base64"))
    }))

  it.effect("rejects 31 and 33 byte keys", () =>
    Effect.gen(function*() {
      for (const n of [0, 31, 33]) {
        const e = yield* Effect.flip(CustomerKey.fromBytes(new Uint8Array(n)))
        assert.strictEqual(e.reason, "WrongLength")
      }
    }))

  it("never prints its material", () => {
    const ck = CustomerKey.unsafeFromBytes(key)
    for (const s of [String(ck.material), JSON.stringify(ck), `${ck.material}`]) {
      assert.notInclude(s, keyB64)
      assert.notInclude(s, key.toString("hex"))
    }
  })

  it("compares digests in constant time and rejects empty ones", () => {
    assert.isTrue(CustomerKey.digestEquals(md5, md5))
    assert.isFalse(CustomerKey.digestEquals(md5, ""))
    assert.isFalse(CustomerKey.digestEquals("", ""))
  })
})
