/**
 * No network: error mapping at the boundary, encryption read-back, and which modes a bucket's
 * facts allow.
 */
import { assert, describe, it } from "@effect/vitest"
import * as CustomerKey from "@objcrypt/core/CustomerKey"
import { Effect, Redacted } from "effect"
import * as GcsObjectStore from "../src/GcsObjectStore.js"
import { toStoreError } from "../src/internal/errors.js"
import * as Crc32c from "../src/internal/crc32c.js"

const apiError = (code: number, reason: string, message = "m") => Object.assign(new Error(message), { code, errors: [{ reason, message }] })

describe("GcsObjectStore (unit)", () => {
  it("maps Google's statuses and reasons to StoreErrors", () => {
    assert.strictEqual(toStoreError("get", "k", apiError(404, "notFound"))._tag, "ObjectNotFound")
    assert.strictEqual(toStoreError("put", "k", apiError(412, "conditionNotMet"))._tag, "PreconditionFailed")
    const range = toStoreError("get", "k", apiError(416, "requestedRangeNotSatisfiable"), { range: "bytes=9-", size: 3 })
    assert.deepStrictEqual([range._tag, (range as { size: number }).size], ["InvalidRange", 3])
    const missing = toStoreError("get", "k", apiError(400, "resourceIsEncryptedWithCustomerEncryptionKey"))
    assert.deepStrictEqual([missing._tag, (missing as { reason: string }).reason], ["AccessDenied", "the object is encrypted with a customer-supplied key (CSEK); give its key"])
    assert.strictEqual(toStoreError("get", "k", apiError(400, "customerEncryptionKeyIsIncorrect"))._tag, "AccessDenied")
    assert.strictEqual(toStoreError("list", undefined, apiError(403, "forbidden"))._tag, "AccessDenied")
    const other = toStoreError("put", "k", apiError(503, "backendError", "secret details"))
    assert.deepStrictEqual([other._tag, (other as { code: string }).code, (other as { detail: string }).detail], ["ProviderError", "backendError", ""])
    // Download errors carry the raw JSON body as their message.
    const body = JSON.stringify({ error: { code: 400, errors: [{ reason: "customerEncryptionKeyIsIncorrect" }] } })
    assert.strictEqual(toStoreError("get", "k", Object.assign(new Error(body), { code: 400 }))._tag, "AccessDenied")
    const reset = toStoreError("get", "k", Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }))
    assert.deepStrictEqual([reset._tag, (reset as { code: string }).code], ["ProviderError", "ECONNRESET"])
  })

  it.effect("never copies a key into an error", () =>
    Effect.gen(function*() {
      const key = yield* CustomerKey.generate
      const b64 = Buffer.from(Redacted.value(key.material)).toString("base64")
      const e = toStoreError("get", "k", Object.assign(new Error(`bad key ${b64}`), { code: 500, config: { headers: { "x-goog-encryption-key": b64 } } }))
      assert.notInclude(JSON.stringify(e) + String(e), b64)
    }))

  it.effect("reads CSEK, CMEK and Google-managed encryption back from the object resource", () =>
    Effect.gen(function*() {
      const key = yield* CustomerKey.generate
      const csek = { customerEncryption: { encryptionAlgorithm: "AES256", keySha256: key.sha256 } }
      assert.deepStrictEqual(GcsObjectStore.encryptionOf(csek), { mode: "SseC", customerKeySha256: key.sha256 })
      assert.deepStrictEqual(GcsObjectStore.encryptionOf(csek, { _tag: "SseC", key }), { mode: "SseC", customerKeySha256: key.sha256, customerKeyMd5: key.md5 })
      const other = yield* CustomerKey.generate
      assert.isUndefined(GcsObjectStore.encryptionOf(csek, { _tag: "SseC", key: other }).customerKeyMd5)
      assert.deepStrictEqual(GcsObjectStore.encryptionOf({ kmsKeyName: "projects/p/k/cryptoKeyVersions/1" }), { mode: "SseKms", kmsKeyId: "projects/p/k/cryptoKeyVersions/1" })
      assert.deepStrictEqual(GcsObjectStore.encryptionOf({}), { mode: "SseS3" })
    }))

  it("allows CSEK over https, or over http only when a probe saw it enforced; enforcement configs forbid kinds", () => {
    const modes = (apiEndpoint: string | undefined, facts?: Parameters<typeof GcsObjectStore.nativeModesOf>[1]) =>
      [...GcsObjectStore.nativeModesOf("gcs", { ...facts, ...GcsObjectStore.factsOf({ bucket: "b", apiEndpoint, facts }) })].sort()
    assert.deepStrictEqual(modes(undefined), ["None", "SseC", "SseKms", "SseS3"])
    assert.notInclude(modes("http://127.0.0.1:1"), "SseC")
    assert.include(modes("http://127.0.0.1:1", { modes: { SseC: "enforced" } }), "SseC")
    assert.notInclude(modes(undefined, { gcsEnforcement: { customerSupplied: "FullyRestricted" } }), "SseC")
    assert.notInclude(modes(undefined, { gcsEnforcement: { customerManaged: "FullyRestricted" } }), "SseKms")
  })

  it("computes CRC32C (Castagnoli) as GCS does", () => {
    assert.strictEqual(Crc32c.update(0, Buffer.from("123456789")), 0xe3069283)
    const g = Crc32c.generator()
    g.update(Buffer.from("1234"))
    g.update(Buffer.from("56789"))
    assert.strictEqual(g.toString(), Buffer.from("e3069283", "hex").toString("base64"))
    assert.isTrue(g.validate(Buffer.from("e3069283", "hex").toString("base64")))
  })
})
