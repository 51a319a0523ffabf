import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Redacted, Stream } from "effect"
import * as crypto from "node:crypto"
import * as S3EC from "../src/S3EncryptionClient.js"
import { memoryKms } from "./support/Keys.js"
import * as MemoryStore from "./support/MemoryStore.js"
import { hkdfSha512, manualGcmOpen } from "./support/s3ecVectors.js"

const KiB = 1024
const aesKey = crypto.randomBytes(32)
const kms = memoryKms({ master: crypto.randomBytes(32) })
const aesW = S3EC.aesGcm({ material: Redacted.make(aesKey) })
const kmsW = S3EC.kmsContext(kms, "master")
const materials: S3EC.Materials = { kms, keys: [{ _tag: "Aes", keyId: "aes", material: Redacted.make(aesKey) }] }
const spool = S3EC.layerNodeSpool()
const ALLOW: S3EC.CommitmentPolicy = "RequireEncryptAllowDecrypt"
const FORBID: S3EC.CommitmentPolicy = "ForbidEncryptAllowDecrypt"

const chunked = (bytes: Uint8Array, chunk: number) =>
  Stream.fromIterable(Array.from({ length: Math.ceil(bytes.length / chunk) }, (_, i) => bytes.subarray(i * chunk, (i + 1) * chunk)))

const read = (store: MemoryStore.MemoryStore, key: string) =>
  S3EC.getBytes(store, key, { materials, commitmentPolicy: ALLOW }).pipe(Effect.map((b) => Buffer.from(b)), Effect.provide(spool))

/** Nothing visible and no upload left behind. */
const assertNothingLeft = (store: MemoryStore.MemoryStore) => {
  assert.strictEqual(store.objects.size, 0, `objects left: ${[...store.objects.keys()].join(", ")}`)
  assert.strictEqual(store.uploads.size, 0, "an upload was left open")
}

describe("S3EncryptionClient multipart writes", () => {
  for (const [policy, wrapping, name] of [[undefined, aesW, "V3"], [FORBID, kmsW, "V2"]] as const) {
    it.effect(`a ${name} object of unknown length goes up in parts cut from one GCM stream, and reads back`, () =>
      Effect.gen(function*() {
        const store = MemoryStore.make({ minPartSize: 64 * KiB })
        const pt = crypto.randomBytes(1024 * KiB + 333)
        const r = yield* S3EC.put(store, "mp/obj", chunked(pt, 10_007), { wrapping, commitmentPolicy: policy, partSize: 64 * KiB, concurrency: 3 })
        const ctLength = pt.length + 16
        assert.strictEqual(r.format, name)
        assert.strictEqual(r.parts, Math.ceil(ctLength / (64 * KiB)))
        assert.strictEqual(store.stats.parts, r.parts)
        assert.strictEqual(store.stats.puts, 0, "no single put for a multi-part object")
        assert.strictEqual(store.uploads.size, 0)
        assert.strictEqual(r.plaintextSize, pt.length)
        const stored = store.objects.get("mp/obj")!
        assert.strictEqual(stored.bytes.length, ctLength)
        assert.strictEqual(stored.metadata[name === "V3" ? "x-amz-c" : "x-amz-cek-alg"], name === "V3" ? "115" : "AES/GCM/NoPadding")
        assert.isTrue((yield* read(store, "mp/obj")).equals(pt))
      }))
  }

  it.effect("the parts concatenate to exactly the single-stream V3 ciphertext (spec arithmetic, independent of the writer)", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make({ minPartSize: 16 * KiB })
      const pt = crypto.randomBytes(100 * KiB + 5)
      yield* S3EC.put(store, "k", chunked(pt, 4099), { wrapping: aesW, partSize: 16 * KiB })
      const { bytes, metadata } = store.objects.get("k")!
      const edk = Buffer.from(metadata["x-amz-3"]!, "base64")
      const dataKey = manualGcmOpen(aesKey, edk.subarray(0, 12), edk.subarray(12), Buffer.from("115"))
      const info = Buffer.concat([Buffer.from([0x00, 0x73]), Buffer.from("DERIVEKEY")])
      const contentKey = hkdfSha512(dataKey, Buffer.from(metadata["x-amz-i"]!, "base64"), info, 32)
      assert.isTrue(manualGcmOpen(contentKey, Buffer.alloc(12), bytes, Buffer.from([0x00, 0x73])).equals(pt))
    }))

  it.effect("ciphertext of exactly one part is a single put; one byte more is two parts", () =>
    Effect.gen(function*() {
      const partSize = 32 * KiB
      const one = MemoryStore.make({ minPartSize: partSize })
      const r1 = yield* S3EC.put(one, "a", chunked(crypto.randomBytes(partSize - 16), 1000), { wrapping: aesW, partSize })
      assert.strictEqual(r1.parts, 1)
      assert.strictEqual(one.stats.puts, 1)
      assert.strictEqual(one.stats.parts, 0)
      const two = MemoryStore.make({ minPartSize: partSize })
      const pt = crypto.randomBytes(partSize - 15)
      const r2 = yield* S3EC.put(two, "a", chunked(pt, 1000), { wrapping: aesW, partSize })
      assert.strictEqual(r2.parts, 2)
      assert.strictEqual(two.stats.puts, 0)
      assert.strictEqual(two.objects.get("a")!.bytes.length, partSize + 1)
      assert.isTrue((yield* read(two, "a")).equals(pt))
    }))

  it.effect("a known length picks a part size that fits the store's part count, and V2 records the length", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make({ minPartSize: 8 * KiB, maxParts: 5 })
      const pt = crypto.randomBytes(100 * KiB)
      const r = yield* S3EC.put(store, "k", chunked(pt, 7000), { wrapping: aesW, commitmentPolicy: FORBID, partSize: 8 * KiB, contentLength: pt.length })
      assert.strictEqual(r.parts, 5)
      assert.strictEqual(store.objects.get("k")!.metadata["x-amz-unencrypted-content-length"], String(pt.length))
      assert.isTrue((yield* read(store, "k")).equals(pt))
    }))

  it.effect("ranged reads (opt-in) of a multipart V3 object cross part boundaries at the right GCM counter", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make({ minPartSize: 16 * KiB })
      const pt = crypto.randomBytes(80 * KiB + 3)
      yield* S3EC.put(store, "k", chunked(pt, 3000), { wrapping: aesW, partSize: 16 * KiB })
      for (const [a, b] of [[16 * KiB - 5, 16 * KiB + 40], [0, 80 * KiB + 2], [48 * KiB + 1, 64 * KiB + 17]] as const) {
        const got = yield* S3EC.getBytes(store, "k", { materials, range: { _tag: "Bounded", start: a, end: b }, unauthenticatedRanges: true }).pipe(
          Effect.provide(S3EC.layerNoSpool)
        )
        assert.isTrue(Buffer.from(got).equals(pt.subarray(a, b + 1)), `${a}-${b}`)
      }
    }))

  it.effect("with an instruction file, the multipart object carries only x-amz-c/d/i", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make({ minPartSize: 16 * KiB })
      const pt = crypto.randomBytes(50 * KiB)
      const r = yield* S3EC.put(store, "k", chunked(pt, 5000), { wrapping: aesW, partSize: 16 * KiB, instructionFile: true, metadata: { owner: "me" } })
      assert.strictEqual(r.location, "instruction")
      assert.isTrue(r.parts > 1)
      assert.deepStrictEqual(Object.keys(store.objects.get("k")!.metadata).sort(), ["owner", "x-amz-c", "x-amz-d", "x-amz-i"])
      assert.isTrue(store.objects.has("k.instruction"))
      assert.isTrue((yield* read(store, "k")).equals(pt))
    }))
})

describe("S3EncryptionClient multipart failures leave nothing behind", () => {
  it.effect("a failing part aborts the upload and removes the instruction file", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make({ minPartSize: 16 * KiB })
      store.failPart = 3
      const e = yield* Effect.flip(
        S3EC.put(store, "k", chunked(crypto.randomBytes(200 * KiB), 4096), { wrapping: aesW, partSize: 16 * KiB, instructionFile: true })
      )
      assert.strictEqual(e._tag, "ProviderError")
      assert.strictEqual(store.stats.aborts, 1)
      assertNothingLeft(store)
    }))

  it.effect("a body that fails half-way surfaces its own error and aborts", () =>
    Effect.gen(function*() {
      class BodyBroke {
        readonly _tag = "BodyBroke"
      }
      const store = MemoryStore.make({ minPartSize: 16 * KiB })
      const body = chunked(crypto.randomBytes(100 * KiB), 4096).pipe(Stream.concat(Stream.fail(new BodyBroke())))
      const e = yield* Effect.flip(S3EC.put(store, "k", body, { wrapping: kmsW, partSize: 16 * KiB }))
      assert.instanceOf(e, BodyBroke)
      assert.strictEqual(store.stats.aborts, 1)
      assertNothingLeft(store)
    }))

  it.effect("a body longer or shorter than contentLength fails with EncryptError and aborts", () =>
    Effect.gen(function*() {
      for (const announced of [50 * KiB, 70 * KiB]) {
        const store = MemoryStore.make({ minPartSize: 16 * KiB })
        const e = yield* Effect.flip(
          S3EC.put(store, "k", chunked(crypto.randomBytes(60 * KiB), 4096), { wrapping: aesW, partSize: 16 * KiB, contentLength: announced })
        )
        assert.strictEqual(e._tag, "EncryptError")
        assertNothingLeft(store)
      }
    }))

  it.effect("an unknown-length body needing more parts than the store allows fails and aborts", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make({ minPartSize: 16 * KiB, maxParts: 3 })
      const e = yield* Effect.flip(S3EC.put(store, "k", chunked(crypto.randomBytes(80 * KiB), 4096), { wrapping: aesW, partSize: 16 * KiB }))
      assert.strictEqual(e._tag, "EncryptError")
      assert.match((e as { reason: string }).reason, /more than 3 parts/)
      assertNothingLeft(store)
    }))

  it.effect("a part size below the store's minimum or a bad concurrency is refused before anything is written", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make({ minPartSize: 5 * 1024 * KiB })
      const e1 = yield* Effect.flip(S3EC.put(store, "k", Stream.succeed(Buffer.from("x")), { wrapping: aesW, partSize: 1024 * KiB, instructionFile: true }))
      assert.strictEqual(e1._tag, "EncryptError")
      const e2 = yield* Effect.flip(S3EC.put(store, "k", Stream.succeed(Buffer.from("x")), { wrapping: aesW, concurrency: 0, instructionFile: true }))
      assert.strictEqual(e2._tag, "EncryptError")
      assert.strictEqual(store.stats.puts, 0)
      assertNothingLeft(store)
    }))

  it.live("an interrupted upload is aborted", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make({ minPartSize: 16 * KiB })
      // Three parts, then a body that never ends.
      const body = chunked(crypto.randomBytes(48 * KiB), 4096).pipe(Stream.concat(Stream.never))
      const fiber = yield* Effect.fork(S3EC.put(store, "k", body, { wrapping: aesW, partSize: 16 * KiB, instructionFile: true }))
      while (store.stats.parts < 2) yield* Effect.sleep("5 millis")
      assert.strictEqual(store.uploads.size, 1)
      yield* Fiber.interrupt(fiber)
      assert.strictEqual(store.stats.aborts, 1)
      assertNothingLeft(store)
    }))
})

describe("S3EncryptionClient multipart memory and concurrency", () => {
  it.live("uploads parts concurrently and holds at most (concurrency + 2) parts of the body at once", () =>
    Effect.gen(function*() {
      const partSize = 64 * KiB
      const concurrency = 3
      const inner = MemoryStore.make({ minPartSize: partSize, discardBodies: true })
      let emitted = 0
      let uploaded = 0
      let inFlight = 0
      let maxInFlight = 0
      let maxHeld = 0
      const store: MemoryStore.MemoryStore = {
        ...inner,
        uploadPart: (upload, n, body, options) =>
          Effect.gen(function*() {
            inFlight++
            maxInFlight = Math.max(maxInFlight, inFlight)
            yield* Effect.sleep("3 millis")
            const r = yield* inner.uploadPart(upload, n, body, options)
            uploaded += r.size
            inFlight--
            return r
          })
      }
      const total = 4 * 1024 * KiB
      const body = Stream.range(0, total / (16 * KiB) - 1).pipe(
        Stream.map(() => crypto.randomBytes(16 * KiB) as Uint8Array),
        Stream.tap((c) =>
          Effect.sync(() => {
            emitted += c.length
            maxHeld = Math.max(maxHeld, emitted - uploaded)
          })
        )
      )
      const r = yield* S3EC.put(store, "big", body, { wrapping: aesW, partSize, concurrency })
      assert.strictEqual(r.parts, Math.ceil((total + 16) / partSize))
      assert.strictEqual(inner.stats.consumed, total + 16)
      assert.isTrue(maxInFlight > 1, `uploads ran one at a time (${maxInFlight})`)
      assert.isTrue(maxInFlight <= concurrency, `${maxInFlight} uploads at once`)
      assert.isTrue(maxHeld <= (concurrency + 2) * partSize + 16 * KiB, `held ${maxHeld} bytes`)
    }))
})
