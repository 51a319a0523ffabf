// Runs against a real SoftHSM2 token (Debian package `softhsm2`), initialised in a temporary
// directory. A missing SoftHSM2 fails the run: nothing is skipped.
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import { Kms } from "@objcrypt/core/Kms"
import * as child from "node:child_process"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Pkcs11Kms from "../src/Pkcs11Kms.js"
import { tmpDir } from "./helpers.js"

const LIBRARY = "/usr/lib/softhsm/libsofthsm2.so"
const ctx = { bucket: "b", key: "k" }

/** A throwaway token: its own config file and token directory, removed with the scope. */
const initToken = Effect.gen(function*() {
  const dir = yield* tmpDir
  const conf = path.join(dir, "softhsm2.conf")
  yield* Effect.promise(async () => {
    await fs.mkdir(path.join(dir, "tokens"))
    await fs.writeFile(conf, `directories.tokendir = ${path.join(dir, "tokens")}\nobjectstore.backend = file\nlog.level = ERROR\n`)
  })
  // SoftHSM reads SOFTHSM2_CONF at C_Initialize; each test file runs in its own process.
  process.env.SOFTHSM2_CONF = conf
  const init = child.spawnSync("softhsm2-util", ["--init-token", "--free", "--label", "objcrypt-test", "--pin", "1234", "--so-pin", "5678"], {
    env: { ...process.env, SOFTHSM2_CONF: conf },
    encoding: "utf8"
  })
  assert.strictEqual(init.status, 0, `softhsm2-util failed: ${init.error?.message ?? init.stderr}`)
})

const token = Effect.gen(function*() {
  yield* initToken
  const context = yield* Layer.build(Pkcs11Kms.layer({ library: LIBRARY, tokenLabel: "objcrypt-test", pin: Redacted.make("1234") }))
  return { kms: Context.get(context, Kms), hsm: Context.get(context, Pkcs11Kms.Pkcs11Hsm) }
})

const bytes = (r: Redacted.Redacted<Uint8Array>) => Buffer.from(Redacted.value(r))

describe("Pkcs11Kms over SoftHSM2", () => {
  it.scoped("master keys are created in the token, sensitive and non-extractable; export is refused by the token", () =>
    Effect.gen(function*() {
      const { hsm } = yield* token
      const k = yield* hsm.generateKey("master")
      assert.isFalse(k.extractable)
      assert.isTrue(k.sensitive)
      assert.strictEqual(k.id.length, 32)
      assert.deepStrictEqual((yield* hsm.listKeys).map((x) => x.label), ["master"])
      const e = yield* Effect.flip(hsm.exportKey("master"))
      assert.strictEqual(e._tag, "KeyUnusable")
      assert.match(e.message, /not extractable \(CKR_ATTRIBUTE_SENSITIVE\)/)
      const dup = yield* Effect.flip(hsm.generateKey("master"))
      assert.strictEqual(dup.reason, "Invalid")
      assert.strictEqual((yield* Effect.flip(hsm.exportKey("nope")))._tag, "KmsError")
    }))

  it.scoped("generateDataKey / decrypt round trip with AES-GCM in the token, context bound", () =>
    Effect.gen(function*() {
      const { hsm, kms } = yield* token
      yield* hsm.generateKey("master")
      assert.strictEqual(kms.kind, "pkcs11")
      const dk = yield* kms.generateDataKey("master", ctx)
      assert.strictEqual(bytes(dk.plaintext).length, 32)
      const out = yield* kms.decrypt(dk.ciphertext, ctx)
      assert.isTrue(bytes(out.plaintext).equals(bytes(dk.plaintext)))
      assert.strictEqual(out.keyId, "master")
      const enc = yield* kms.encrypt("master", Redacted.make(new Uint8Array([1, 2, 3])), {})
      assert.deepStrictEqual([...bytes((yield* kms.decrypt(enc.ciphertext, {}, "master")).plaintext)], [1, 2, 3])
      for (const bad of [{}, { ...ctx, key: "other" }]) {
        assert.strictEqual((yield* Effect.flip(kms.decrypt(dk.ciphertext, bad))).reason, "InvalidCiphertext")
      }
      const t = Uint8Array.from(dk.ciphertext)
      t[t.length - 1] = t[t.length - 1]! ^ 1
      assert.strictEqual((yield* Effect.flip(kms.decrypt(t, ctx))).reason, "InvalidCiphertext")
      assert.strictEqual((yield* Effect.flip(kms.decrypt(dk.ciphertext.subarray(0, 40), ctx))).reason, "InvalidCiphertext")
      yield* hsm.generateKey("other")
      assert.strictEqual((yield* Effect.flip(kms.decrypt(dk.ciphertext, ctx, "other"))).reason, "InvalidCiphertext")
    }))

  it.scoped("unknown or deleted keys are NotFound", () =>
    Effect.gen(function*() {
      const { hsm, kms } = yield* token
      assert.strictEqual((yield* Effect.flip(kms.generateDataKey("nope", ctx))).reason, "NotFound")
      yield* hsm.generateKey("gone")
      const dk = yield* kms.generateDataKey("gone", ctx)
      yield* hsm.deleteKey("gone")
      assert.strictEqual((yield* Effect.flip(kms.decrypt(dk.ciphertext, ctx))).reason, "NotFound")
    }))
})

describe("Pkcs11Hsm encryptGcm/decryptGcm", () => {
  it.scoped("AES-GCM in the token with the caller's nonce and AAD (ciphertext then tag); wrong AAD, nonce or tag refused", () =>
    Effect.gen(function*() {
      const { hsm } = yield* token
      yield* hsm.generateKey("raw")
      const iv = new Uint8Array(12).fill(7)
      const aad = new TextEncoder().encode("header|context")
      const pt = new TextEncoder().encode("token-side plaintext")
      const sealed = yield* hsm.encryptGcm("raw", iv, aad, pt)
      assert.strictEqual(sealed.length, pt.length + 16)
      assert.deepStrictEqual([...(yield* hsm.decryptGcm("raw", iv, aad, sealed))], [...pt])
      const other = new Uint8Array(12).fill(8)
      for (const [i, a, s] of [[iv, new TextEncoder().encode("header|other"), sealed], [other, aad, sealed], [iv, aad, Uint8Array.from(sealed, (b, j) => (j === sealed.length - 1 ? b ^ 1 : b))]] as const) {
        const e = yield* Effect.flip(hsm.decryptGcm("raw", i, a, s))
        assert.strictEqual(e.reason, "InvalidCiphertext")
      }
      assert.strictEqual((yield* Effect.flip(hsm.encryptGcm("absent", iv, aad, pt))).reason, "NotFound")
    }))
})

describe("Pkcs11Kms login", () => {
  it.scoped("a wrong PIN, an absent token or library is a clear Unavailable error", () =>
    Effect.gen(function*() {
      yield* initToken
      const e = yield* Effect.flip(
        Layer.build(Pkcs11Kms.layer({ library: LIBRARY, tokenLabel: "objcrypt-test", pin: Redacted.make("0000") }))
      )
      assert.strictEqual(e.reason, "Unavailable")
      assert.include(e.message, "CKR_PIN_INCORRECT")
      assert.notInclude(e.message, "0000")
      const noToken = yield* Effect.flip(
        Layer.build(Pkcs11Kms.layer({ library: LIBRARY, tokenLabel: "absent", pin: Redacted.make("1234") }))
      )
      assert.include(noToken.message, "CKR_TOKEN_NOT_PRESENT")
      const noLib = yield* Effect.flip(
        Layer.build(Pkcs11Kms.layer({ library: "/nonexistent/libpkcs11.so", tokenLabel: "objcrypt-test", pin: Redacted.make("1234") }))
      )
      assert.strictEqual(noLib.reason, "Unavailable")
    }))
})

describe("Pkcs11Kms: two users of one token in one process", () => {
  const open = (pin: string) =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(Pkcs11Kms.layer({ library: LIBRARY, tokenLabel: "objcrypt-test", pin: Redacted.make(pin) }), scope)
      return { kms: Context.get(context, Kms), hsm: Context.get(context, Pkcs11Kms.Pkcs11Hsm), close: Scope.close(scope, Exit.void) }
    })

  it.scoped("share the library and the login: both work, a second user with another PIN is refused, closing one leaves the other working", () =>
    Effect.gen(function*() {
      yield* initToken
      const a = yield* open("1234")
      // Without sharing, the second C_Initialize fails with CKR_CRYPTOKI_ALREADY_INITIALIZED.
      const b = yield* open("1234")
      yield* a.hsm.generateKey("shared")
      const sealed = yield* a.kms.generateDataKey("shared", ctx)
      assert.isTrue(bytes((yield* b.kms.decrypt(sealed.ciphertext, ctx)).plaintext).equals(bytes(sealed.plaintext)))
      // The token is logged in already and would take any PIN: the PIN that logged in is checked.
      const wrong = yield* Effect.flip(open("9999"))
      assert.include(wrong.message, "CKR_PIN_INCORRECT")
      assert.notInclude(wrong.message, "9999")
      // Closing the first must neither log the second out nor finalise the library under it.
      yield* a.close
      assert.isTrue(bytes((yield* b.kms.decrypt(sealed.ciphertext, ctx)).plaintext).equals(bytes(sealed.plaintext)))
      yield* b.close
      // Both closed: the library was finalised, and a new user initialises it again.
      const c = yield* open("1234")
      assert.deepStrictEqual((yield* c.hsm.listKeys).map((k) => k.label), ["shared"])
      yield* c.close
    }))
})
