import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Redacted, Stream } from "effect"
import * as crypto from "node:crypto"
import * as Encryption from "../src/Encryption.js"
import * as EncryptionMode from "../src/EncryptionMode.js"
import { KeyStore } from "../src/KeyStore.js"
import { Kms } from "../src/Kms.js"
import * as ModeService from "../src/ModeService.js"
import type * as ObjectStore from "../src/ObjectStore.js"
import * as Keys from "./support/Keys.js"
import * as MemoryStore from "./support/MemoryStore.js"

const wrapKey = crypto.randomBytes(32)
const custKey = crypto.randomBytes(32)
const x25519 = crypto.generateKeyPairSync("x25519").privateKey
const keyStore = Keys.memoryKeyStore([
  { ...Keys.symmetric("k-backup", 1, wrapKey), info: { ...Keys.symmetric("k-backup", 1, wrapKey).info, name: "backup" } },
  { ...Keys.symmetric("k-cust", 1, custKey), info: { ...Keys.symmetric("k-cust", 1, custKey).info, name: "cust", purpose: "sse-c" } },
  { ...Keys.keyPair("k-ops", 1, x25519), info: { ...Keys.keyPair("k-ops", 1, x25519).info, name: "ops", purpose: "recipient" } }
])
const kms = Keys.memoryKms({ "alias/data": crypto.randomBytes(32) })
const Services = Encryption.layerAll.pipe(
  Layer.provide(Layer.mergeAll(Layer.succeed(KeyStore, keyStore), Layer.succeed(Kms, kms)))
)

const body = (bytes: Uint8Array) => Stream.make(bytes)
const read = (store: ObjectStore.ObjectStore["Type"], key: string, options?: Encryption.ReadOptions) =>
  Effect.scoped(Effect.flatMap(Encryption.get(store, key, options), (r) =>
    Effect.map(Stream.runCollect(r.body), (c) => ({ ...r, bytes: Buffer.concat(Array.from(c)) }))))

describe("Encryption facade", () => {
  it.effect("cse-c: put encrypts (no plaintext stored), get decrypts, inspect names the keys", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      const data = crypto.randomBytes(100_000)
      const mode = yield* EncryptionMode.fromSpec({ mode: "cse-c", key: "backup", recipients: ["ops"] })
      const r = yield* Encryption.put(store, "a/b", body(data), mode)
      assert.strictEqual(r.mode, "CseC")
      assert.strictEqual(r.clientSide?.plaintextSize, data.length)
      const stored = store.objects.get("a/b")!.bytes
      assert.isFalse(Buffer.from(stored).includes(data.subarray(0, 64)))
      const back = yield* read(store, "a/b")
      assert.isTrue(back.bytes.equals(data))
      assert.strictEqual(back.mode, "CseC")
      const ranged = yield* read(store, "a/b", { range: { _tag: "Bounded", start: 70_000, end: 70_099 } })
      assert.isTrue(ranged.bytes.equals(data.subarray(70_000, 70_100)))
      const ins = yield* Encryption.inspect(store, "a/b")
      assert.deepStrictEqual(ins.clientSide?.keys?.map((k) => k.keyId).sort(), ["k-backup", "k-ops"])
    }).pipe(Effect.provide(Services)))

  it.effect("cse-kms: the data key is wrapped by the KMS", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      const data = crypto.randomBytes(5000)
      yield* Encryption.put(store, "k", body(data), EncryptionMode.CseKms.make({ keyId: "alias/data" }))
      const ins = yield* Encryption.inspect(store, "k")
      assert.strictEqual(ins.mode, "CseKms")
      assert.isTrue((yield* read(store, "k")).bytes.equals(data))
    }).pipe(Effect.provide(Services)))

  it.effect("a cse-c or cse-kms mode's encryption context is bound to the object and recorded in its envelope", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      const data = crypto.randomBytes(3000)
      for (const spec of [
        { mode: "cse-c", key: "backup", context: { team: "a", purpose: "test" } },
        { mode: "cse-kms", kmsKeyId: "alias/data", context: { team: "a", purpose: "test" } }
      ] as const) {
        const mode = yield* EncryptionMode.fromSpec(spec)
        yield* Encryption.put(store, spec.mode, body(data), mode)
        const ins = yield* Encryption.inspect(store, spec.mode)
        assert.deepInclude(ins.clientSide?.context ?? {}, { team: "a", purpose: "test" })
        assert.isTrue((yield* read(store, spec.mode)).bytes.equals(data))
      }
      // A caller's context is bound as well, and wins a clash with the mode's.
      const mode = yield* EncryptionMode.fromSpec({ mode: "cse-c", key: "backup", context: { team: "a" } })
      yield* Encryption.put(store, "both", body(data), mode, { context: { team: "b", run: "1" } })
      assert.deepInclude((yield* Encryption.inspect(store, "both")).clientSide?.context ?? {}, { team: "b", run: "1" })
    }).pipe(Effect.provide(Services)))

  it.effect("a server-side mode the store does not offer fails before anything is written", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      for (const spec of [{ mode: "sse-s3" }, { mode: "sse-kms" }, { mode: "sse-c", key: "cust" }] as const) {
        const mode = yield* EncryptionMode.fromSpec(spec)
        const e = yield* Effect.flip(Encryption.put(store, "x", body(Buffer.from("secret")), mode))
        assert.strictEqual(e._tag, "UnsupportedMode")
        if (e._tag === "UnsupportedMode") assert.include(e.alternatives.join(" "), "cse-c")
      }
      assert.strictEqual(store.objects.size, 0)
      assert.strictEqual(store.stats.puts, 0)
    }).pipe(Effect.provide(Services)))

  it.effect("sse-c with a named key sends the resolved customer key to the store", () =>
    Effect.gen(function*() {
      const base = MemoryStore.make()
      let seen: ObjectStore.ServerSideEncryption | undefined
      const store: ObjectStore.ObjectStore["Type"] = {
        ...base,
        nativeModes: new Set(["None", "SseC"]),
        put: (key, b, options) => {
          seen = options?.sse
          return base.put(key, b, { ...options, sse: undefined })
        }
      }
      yield* Encryption.put(store, "c", body(Buffer.from("x")), yield* EncryptionMode.fromSpec({ mode: "sse-c", key: "cust" }))
      assert.strictEqual(seen?._tag, "SseC")
      if (seen?._tag === "SseC") assert.isTrue(Buffer.from(Redacted.value(seen.key.material)).equals(custKey))
    }).pipe(Effect.provide(Services)))

  it.effect("sse-c with a public key, and cse-c with an sse-c key, are refused as unusable", () =>
    Effect.gen(function*() {
      const base = MemoryStore.make()
      const store = { ...base, nativeModes: new Set<EncryptionMode.ModeTag>(["None", "SseC"]) }
      const e1 = yield* Effect.flip(Encryption.put(store, "c", body(Buffer.from("x")), yield* EncryptionMode.fromSpec({ mode: "sse-c", key: "ops" })))
      assert.strictEqual(e1._tag, "KeyUnusable")
      const e2 = yield* Effect.flip(Encryption.put(store, "c", body(Buffer.from("x")), yield* EncryptionMode.fromSpec({ mode: "cse-c", key: "cust" })))
      assert.strictEqual(e2._tag, "KeyUnusable")
      const e3 = yield* Effect.flip(Encryption.put(store, "c", body(Buffer.from("x")), yield* EncryptionMode.fromSpec({ mode: "cse-c", key: "nope" })))
      assert.strictEqual(e3._tag, "KeyNotFound")
      assert.strictEqual(base.objects.size, 0)
    }).pipe(Effect.provide(Services)))

  it.effect("reading a client-side object without its keys is NoUsableKey, never ciphertext", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      yield* Encryption.put(store, "k", body(Buffer.from("hello")), EncryptionMode.CseKms.make({ keyId: "alias/data" })).pipe(
        Effect.provide(Services)
      )
      const e = yield* Effect.flip(read(store, "k").pipe(Effect.provide(Encryption.layerDecryptor())))
      assert.deepInclude(e, { _tag: "DecryptError", reason: "NoUsableKey" })
    }))

  it.effect("plain objects read back as stored", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      yield* Encryption.put(store, "p", body(Buffer.from("plain")), EncryptionMode.None.make({}))
      const r = yield* read(store, "p")
      assert.strictEqual(r.mode, "None")
      assert.strictEqual(r.bytes.toString(), "plain")
    }).pipe(Effect.provide(Services)))

  it("a mode's layer states what it needs: composing cse-kms without a Kms does not compile", () => {
    const store = MemoryStore.make()
    const program = Encryption.put(store, "k", body(Buffer.from("x")), EncryptionMode.CseKms.make({ keyId: "a" }))
    const withMode = program.pipe(Effect.provide(Encryption.layerCseKms))
    // @ts-expect-error -- CseKmsMode's only layer needs a Kms, so `Kms` remains required.
    const _notRunnable: Effect.Effect<unknown, unknown, never> = withMode
    const ssec = Encryption.put(store, "k", body(Buffer.from("x")), EncryptionMode.SseC.make({ key: new EncryptionMode.NamedKey({ name: "a" }) }))
      .pipe(Effect.provide(ModeService.layerSseC))
    // @ts-expect-error -- SSE-C with named keys needs a KeyStore.
    const _notRunnable2: Effect.Effect<unknown, unknown, never> = ssec
    const sses3: Effect.Effect<unknown, unknown, never> = Encryption.put(store, "k", body(Buffer.from("x")), EncryptionMode.SseS3.make({}))
      .pipe(Effect.provide(ModeService.layerSseS3))
    assert.isDefined(sses3)
  })
})
