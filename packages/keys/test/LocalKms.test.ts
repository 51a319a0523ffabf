import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Redacted, Ref } from "effect"
import { Kms } from "@objcrypt/core/Kms"
import * as crypto from "node:crypto"
import * as path from "node:path"
import * as AuditLog from "../src/AuditLog.js"
import { KeyManager } from "../src/KeyManager.js"
import * as LocalKeyStore from "../src/LocalKeyStore.js"
import * as LocalKms from "../src/LocalKms.js"
import { config, tmpDir } from "./helpers.js"

const ctx = { bucket: "photos", key: "2026/a.jpg" }

/** The local KMS over a fresh store, with an in-memory audit log. */
const setup = Effect.gen(function*() {
  const dir = yield* tmpDir
  const entries = yield* Ref.make<ReadonlyArray<AuditLog.AuditEntry>>([])
  const ctxLayer = LocalKms.layer.pipe(
    Layer.provideMerge(LocalKeyStore.layer(config(path.join(dir, "store.ocks")))),
    Layer.provideMerge(AuditLog.layerMemory(entries))
  )
  const context = yield* Layer.build(ctxLayer)
  const kms = Context.get(context, Kms)
  const manager = Context.get(context, KeyManager)
  return { kms, manager, entries }
})

const bytes = (r: Redacted.Redacted<Uint8Array>) => Buffer.from(Redacted.value(r))

describe("LocalKms", () => {
  it.scoped("generateDataKey and decrypt round trip with no key id; the blob names key id and version", () =>
    Effect.gen(function*() {
      const { kms, manager } = yield* setup
      const k = yield* manager.generate({ name: "master" })
      assert.strictEqual(kms.kind, "local")
      const dk = yield* kms.generateDataKey("master", ctx)
      assert.strictEqual(dk.keyId, `${k.id}@1`)
      assert.strictEqual(bytes(dk.plaintext).length, 32)
      const info = yield* LocalKms.describeCiphertext(dk.ciphertext)
      assert.deepStrictEqual({ ...info }, { keyId: k.id, version: 1 })
      const out = yield* kms.decrypt(dk.ciphertext, { key: ctx.key, bucket: ctx.bucket })
      assert.isTrue(bytes(out.plaintext).equals(bytes(dk.plaintext)))
      assert.strictEqual(out.keyId, `${k.id}@1`)
      const again = yield* kms.generateDataKey("master", ctx)
      assert.isFalse(bytes(again.plaintext).equals(bytes(dk.plaintext)))
    }))

  it.scoped("encrypt/decrypt by name, id, id@version, name@version and alias", () =>
    Effect.gen(function*() {
      const { kms, manager } = yield* setup
      const k = yield* manager.generate({ name: "master" })
      yield* manager.setAlias("objcrypt", "master")
      const secret = Redacted.make(new Uint8Array(crypto.randomBytes(100)))
      for (const keyId of ["master", k.id, `${k.id}@1`, "master@1", "alias/objcrypt", "alias/master"]) {
        const enc = yield* kms.encrypt(keyId, secret, {})
        const dec = yield* kms.decrypt(enc.ciphertext, {}, keyId.includes("@") ? undefined : keyId)
        assert.isTrue(bytes(dec.plaintext).equals(bytes(secret)), keyId)
      }
    }))

  it.scoped("a wrong, missing or extra context is InvalidCiphertext", () =>
    Effect.gen(function*() {
      const { kms, manager } = yield* setup
      yield* manager.generate({ name: "master" })
      const dk = yield* kms.generateDataKey("master", ctx)
      for (const bad of [{} as Record<string, string>, { bucket: "photos" }, { ...ctx, key: "2026/b.jpg" }, { ...ctx, extra: "1" }, { bucket: "photos2", key: "026/a.jpg" }]) {
        const e = yield* Effect.flip(kms.decrypt(dk.ciphertext, bad))
        assert.strictEqual(e.reason, "InvalidCiphertext")
      }
    }))

  it.scoped("tampered, truncated and foreign blobs are InvalidCiphertext", () =>
    Effect.gen(function*() {
      const { kms, manager } = yield* setup
      yield* manager.generate({ name: "master" })
      const dk = yield* kms.generateDataKey("master", ctx)
      const blobs: Array<Uint8Array> = []
      for (const i of [0, 30, 40, dk.ciphertext.length - 1]) {
        const b = Uint8Array.from(dk.ciphertext)
        b[i] = b[i]! ^ 1
        blobs.push(b)
      }
      blobs.push(dk.ciphertext.subarray(0, dk.ciphertext.length - 1), dk.ciphertext.subarray(0, 20), new Uint8Array(0))
      blobs.push(Uint8Array.from([...dk.ciphertext, 0]))
      for (const b of blobs) {
        const e = yield* Effect.flip(kms.decrypt(b, ctx))
        assert.strictEqual(e.reason, "InvalidCiphertext")
      }
      // A blob naming a key that does not exist.
      const other = Uint8Array.from(dk.ciphertext)
      other[5] = other[5]! ^ 1
      assert.strictEqual((yield* Effect.flip(kms.decrypt(other, ctx))).reason, "NotFound")
    }))

  it.scoped("decrypt with the wrong key id is InvalidCiphertext", () =>
    Effect.gen(function*() {
      const { kms, manager } = yield* setup
      yield* manager.generate({ name: "a" })
      yield* manager.generate({ name: "b" })
      const dk = yield* kms.generateDataKey("a", ctx)
      assert.strictEqual((yield* Effect.flip(kms.decrypt(dk.ciphertext, ctx, "b"))).reason, "InvalidCiphertext")
      assert.strictEqual((yield* Effect.flip(kms.decrypt(dk.ciphertext, ctx, "nope"))).reason, "NotFound")
    }))

  it.scoped("unknown keys are NotFound, disabled keys Disabled, soft-deleted keys NotFound", () =>
    Effect.gen(function*() {
      const { kms, manager } = yield* setup
      assert.strictEqual((yield* Effect.flip(kms.generateDataKey("nope", ctx))).reason, "NotFound")
      assert.strictEqual((yield* Effect.flip(kms.generateDataKey("alias/nope", ctx))).reason, "NotFound")
      yield* manager.generate({ name: "master" })
      const dk = yield* kms.generateDataKey("master", ctx)
      yield* manager.disable("master")
      assert.strictEqual((yield* Effect.flip(kms.generateDataKey("master", ctx))).reason, "Disabled")
      assert.strictEqual((yield* Effect.flip(kms.decrypt(dk.ciphertext, ctx))).reason, "Disabled")
      yield* manager.delete("master")
      assert.strictEqual((yield* Effect.flip(kms.decrypt(dk.ciphertext, ctx))).reason, "NotFound")
      yield* manager.undelete("master")
      yield* manager.enable("master")
      yield* kms.decrypt(dk.ciphertext, ctx)
    }))

  it.scoped("only symmetric wrap keys wrap data keys; plaintext size is bounded", () =>
    Effect.gen(function*() {
      const { kms, manager } = yield* setup
      yield* manager.generate({ name: "ssec", purpose: "sse-c" })
      yield* manager.generate({ name: "x", algorithm: "x25519" })
      assert.strictEqual((yield* Effect.flip(kms.generateDataKey("ssec", ctx))).reason, "Invalid")
      assert.strictEqual((yield* Effect.flip(kms.generateDataKey("x", ctx))).reason, "Invalid")
      yield* manager.generate({ name: "master" })
      const big = Redacted.make(new Uint8Array(LocalKms.MAX_PLAINTEXT + 1))
      assert.strictEqual((yield* Effect.flip(kms.encrypt("master", big, {}))).reason, "Invalid")
      assert.strictEqual((yield* Effect.flip(kms.encrypt("master", Redacted.make(new Uint8Array(0)), {}))).reason, "Invalid")
    }))

  it.scoped("after rotation, new data keys use the new version and old blobs still decrypt", () =>
    Effect.gen(function*() {
      const { kms, manager } = yield* setup
      const k = yield* manager.generate({ name: "master" })
      const old = yield* kms.generateDataKey("master", ctx)
      yield* manager.rotate("master")
      const fresh = yield* kms.generateDataKey("master", ctx)
      assert.strictEqual(fresh.keyId, `${k.id}@2`)
      assert.isTrue(bytes((yield* kms.decrypt(old.ciphertext, ctx)).plaintext).equals(bytes(old.plaintext)))
      // What the CLI uses to list objects still on an old version.
      const recorded = yield* LocalKms.describeCiphertext(old.ciphertext)
      const where = yield* manager.primaryOf(`${recorded.keyId}@${recorded.version}`)
      assert.isFalse(where.isPrimary)
      assert.strictEqual(where.primaryVersion, 2)
      assert.isTrue((yield* manager.primaryOf(fresh.keyId)).isPrimary)
      // Pinning a version still works; disabling it stops old blobs.
      const pinned = yield* kms.generateDataKey("master@1", ctx)
      assert.strictEqual(pinned.keyId, `${k.id}@1`)
      yield* manager.disable("master@1")
      assert.strictEqual((yield* Effect.flip(kms.decrypt(old.ciphertext, ctx))).reason, "Disabled")
    }))

  it.scoped("every KMS call is audited with key id, version, context and outcome", () =>
    Effect.gen(function*() {
      const { kms, manager, entries } = yield* setup
      const k = yield* manager.generate({ name: "master" })
      const dk = yield* kms.generateDataKey("master", ctx)
      yield* kms.decrypt(dk.ciphertext, ctx)
      yield* Effect.flip(kms.decrypt(dk.ciphertext, {}))
      const log = (yield* Ref.get(entries)).filter((e) => e.operation.startsWith("kms."))
      assert.deepStrictEqual(
        log.map((e) => [e.operation, e.keyId, e.version, e.outcome, e.error]),
        [
          ["kms.generateDataKey", k.id, 1, "success", undefined],
          ["kms.decrypt", k.id, 1, "success", undefined],
          ["kms.decrypt", k.id, 1, "failure", "KmsError:InvalidCiphertext"]
        ]
      )
      assert.deepStrictEqual(log[0]!.context, ctx)
      assert.strictEqual((yield* Ref.get(entries))[0]!.operation, "generate")
    }))
})
