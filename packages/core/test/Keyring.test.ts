import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import * as crypto from "node:crypto"
import * as Keyring from "../src/Keyring.js"
import { KeyStore } from "../src/KeyStore.js"
import * as NativeFormat from "../src/NativeFormat.js"
import { keyPair, memoryKeyStore, memoryKms, publicOnly, symmetric } from "./support/Keys.js"

const rsa = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey
const x25519 = crypto.generateKeyPairSync("x25519").privateKey
const aesKey = crypto.randomBytes(32)
const kmsKeys = { "master-1": crypto.randomBytes(32) }

/** A fixture object: header, context, data key and the request an unwrapper receives. */
const fixture = (objectKey = "a/b") => {
  const dataKey = crypto.randomBytes(32)
  const header = { segmentSize: 1024, salt: crypto.randomBytes(32) }
  const context = NativeFormat.fullContext("bkt", objectKey, { team: "x" })
  const keys = NativeFormat.deriveKeys(dataKey, header, context)
  const ctx: Keyring.WrapContext = { binding: keys.binding, context, objectKey }
  const request = (entries: ReadonlyArray<NativeFormat.WrappedKey>): Keyring.UnwrapRequest => ({
    entries,
    binding: keys.binding,
    context,
    objectKey,
    verify: (dk) => NativeFormat.commitmentMatches(NativeFormat.deriveKeys(dk, header, context), keys.commitment)
  })
  return { dataKey, ctx, request, header, context }
}

const keyrings = (): ReadonlyArray<Keyring.Keyring> => [
  Keyring.aes({ keyId: "sym", version: 2, material: Redacted.make(aesKey) }),
  Keyring.aes({ keyId: "sym-kw", version: 1, material: Redacted.make(aesKey), wrap: "aes-kw" }),
  Keyring.kms(memoryKms(kmsKeys), "master-1"),
  Keyring.recipient({ keyId: "rsa-1", publicKey: crypto.createPublicKey(rsa) }),
  Keyring.recipient({ keyId: "x-1", version: 4, publicKey: crypto.createPublicKey(x25519) })
]

const fullUnwrapper = () =>
  Keyring.makeUnwrapper({
    keyStore: memoryKeyStore([symmetric("sym", 2, aesKey), symmetric("sym-kw", 1, aesKey), keyPair("rsa-1", 1, rsa), keyPair("x-1", 4, x25519)]),
    kms: memoryKms(kmsKeys)
  })

describe("Keyring", () => {
  it.effect("every keyring wraps a data key that its key, and only its entry, unwraps", () =>
    Effect.gen(function*() {
      const f = fixture()
      for (const k of keyrings()) {
        const entry = yield* k.wrap(Redacted.make(f.dataKey), f.ctx)
        assert.strictEqual(entry.type, k.type)
        const dk = yield* fullUnwrapper().unwrap(f.request([entry]))
        assert.isTrue(Buffer.from(Redacted.value(dk)).equals(f.dataKey), k.type)
      }
    }))

  it.effect("entries record type, key id and version; sizes are compact", () =>
    Effect.gen(function*() {
      const f = fixture()
      const entries = yield* Effect.forEach(keyrings(), (k) => k.wrap(Redacted.make(f.dataKey), f.ctx))
      assert.deepStrictEqual(entries.map((e) => [e.type, e.keyId, e.version, e.data.length]), [
        ["aes-gcm", "sym", 2, 60],
        ["aes-kw", "sym-kw", 1, 40],
        ["kms", "arn:test:master-1", 0, entries[2]!.data.length],
        ["rsa-oaep-256", "rsa-1", 1, 256],
        ["x25519", "x-1", 4, 80]
      ])
    }))

  it.effect("a wrong key of the right id fails with WrongKey; no key at all with NoUsableKey", () =>
    Effect.gen(function*() {
      const f = fixture()
      const entries = yield* Effect.forEach(keyrings(), (k) => k.wrap(Redacted.make(f.dataKey), f.ctx))
      const wrong = Keyring.makeUnwrapper({
        keyStore: memoryKeyStore([
          symmetric("sym", 2, crypto.randomBytes(32)),
          symmetric("sym-kw", 1, crypto.randomBytes(32)),
          keyPair("rsa-1", 1, crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey),
          keyPair("x-1", 4, crypto.generateKeyPairSync("x25519").privateKey)
        ])
      })
      for (const e of entries.filter((e) => e.type !== "kms")) {
        const err = yield* Effect.flip(wrong.unwrap(f.request([e])))
        assert.strictEqual(err.reason, "WrongKey", e.type)
        assert.notInclude(err.message, Buffer.from(aesKey).toString("hex"))
      }
      const none = yield* Effect.flip(Keyring.makeUnwrapper({}).unwrap(f.request(entries)))
      assert.strictEqual(none.reason, "NoUsableKey")
      const kmsWrong = yield* Effect.flip(Keyring.makeUnwrapper({ kms: memoryKms({ "master-1": crypto.randomBytes(32) }) }).unwrap(f.request([entries[2]!])))
      assert.strictEqual(kmsWrong.reason, "WrongKey")
      const publicKeyOnly = yield* Effect.flip(
        Keyring.makeUnwrapper({ keyStore: memoryKeyStore([publicOnly("x-1", 4, crypto.createPublicKey(x25519))]) }).unwrap(f.request([entries[4]!]))
      )
      assert.strictEqual(publicKeyOnly.reason, "NoUsableKey")
    }))

  it.effect("an entry moved to another object (other binding/context) does not unwrap", () =>
    Effect.gen(function*() {
      const a = fixture("a")
      const b = fixture("b")
      for (const k of keyrings()) {
        const entry = yield* k.wrap(Redacted.make(a.dataKey), a.ctx)
        const err = yield* Effect.flip(fullUnwrapper().unwrap(b.request([entry])))
        // AES-KW has no AAD: it unwraps, and the key commitment (bound to the context) refuses it.
        assert.strictEqual(err.reason, k.type === "aes-kw" ? "CommitmentMismatch" : "WrongKey", k.type)
      }
    }))

  it.effect("a recipient entry for another data key is skipped by the commitment check", () =>
    Effect.gen(function*() {
      const f = fixture()
      const x = Keyring.recipient({ keyId: "x-1", version: 4, publicKey: crypto.createPublicKey(x25519) })
      // Anyone holding the public key can write an entry for a data key of their choosing.
      const forged = yield* x.wrap(Redacted.make(crypto.randomBytes(32)), f.ctx)
      const genuine = yield* Keyring.aes({ keyId: "sym", version: 2, material: Redacted.make(aesKey) }).wrap(Redacted.make(f.dataKey), f.ctx)
      const dk = yield* fullUnwrapper().unwrap(f.request([forged, genuine]))
      assert.isTrue(Buffer.from(Redacted.value(dk)).equals(f.dataKey))
      const only = yield* Effect.flip(fullUnwrapper().unwrap(f.request([forged])))
      assert.strictEqual(only.reason, "CommitmentMismatch")
    }))

  it.effect("keys given directly unwrap; keyrings resolve from the KeyStore by name", () =>
    Effect.gen(function*() {
      const f = fixture()
      const fromStore = yield* Keyring.fromKeyStore("sym").pipe(
        Effect.provideService(KeyStore, memoryKeyStore([symmetric("sym", 1, crypto.randomBytes(32)), symmetric("sym", 2, aesKey)]))
      )
      assert.strictEqual(fromStore.version, 2)
      const entry = yield* fromStore.wrap(Redacted.make(f.dataKey), f.ctx)
      const direct = Keyring.makeUnwrapper({ keys: [{ _tag: "Aes", keyId: "sym", material: Redacted.make(aesKey) }] })
      assert.isTrue(Buffer.from(Redacted.value(yield* direct.unwrap(f.request([entry])))).equals(f.dataKey))
      const rsaEntry = yield* Keyring.recipient({ keyId: "r", publicKey: crypto.createPublicKey(rsa) }).wrap(Redacted.make(f.dataKey), f.ctx)
      const priv = Keyring.makeUnwrapper({ keys: [{ _tag: "Private", keyId: "r", privateKey: Redacted.make(rsa) }] })
      assert.isTrue(Buffer.from(Redacted.value(yield* priv.unwrap(f.request([rsaEntry])))).equals(f.dataKey))
    }))

  it("refuses weak or unsupported recipient keys and bad raw keys", () => {
    const small = crypto.generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey
    assert.throws(() => Keyring.recipient({ keyId: "r", publicKey: small }))
    assert.throws(() => Keyring.recipient({ keyId: "e", publicKey: crypto.generateKeyPairSync("ed25519").publicKey }))
    assert.throws(() => Keyring.aes({ keyId: "s", material: Redacted.make(crypto.randomBytes(16)) }))
    assert.throws(() => Keyring.aes({ keyId: "", material: Redacted.make(crypto.randomBytes(32)) }))
  })
})
