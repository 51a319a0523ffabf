/**
 * KeyVaultKms at the HTTP layer: the real `@azure/keyvault-keys` pipeline (challenge
 * authentication, retries, serialization) talks to a recording `httpClient` that answers as the
 * Key Vault REST reference documents. Asserts the requests sent and the typed errors. Not verified
 * against a Key Vault server.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import * as crypto from "node:crypto"
import * as KeyVaultKms from "../src/KeyVaultKms.js"
import * as KeyVaultHttp from "./support/KeyVaultHttp.js"

const VAULT = "objcrypt-test.vault.azure.net"
const API_VERSION = /^(\d{4}-\d{2}-\d{2}(-preview)?|7\.\d)$/

const setup = (options?: { host?: string; algorithm?: KeyVaultKms.WrapAlgorithm; maxRetries?: number }) =>
  Effect.gen(function*() {
    const http = KeyVaultHttp.make(options?.host ?? VAULT)
    const kms = yield* KeyVaultKms.make({
      credential: http.credential,
      maxRetries: options?.maxRetries ?? 0,
      ...(options?.algorithm === undefined ? {} : { algorithm: options.algorithm }),
      clientOptions: { httpClient: http.httpClient }
    })
    return { http, kms }
  })

const reason = <A, E extends { _tag: string; reason?: string }>(eff: Effect.Effect<A, E>) =>
  Effect.map(Effect.flip(eff), (e) => [e._tag, e.reason])

describe("KeyVaultKms (HTTP layer, not verified against a server)", () => {
  it.effect("generateDataKey wraps a random key with RSA-OAEP-256 after the 401 challenge; decrypt unwraps it", () =>
    Effect.gen(function*() {
      const { http, kms } = yield* setup()
      http.keys.set("master", [KeyVaultHttp.rsaVersion("v1")])
      const keyId = `https://${VAULT}/keys/master/v1`
      const dk = yield* kms.generateDataKey(keyId, { bucket: "b", key: "k" })
      assert.strictEqual(dk.keyId, keyId)
      assert.strictEqual(Redacted.value(dk.plaintext).length, 32)
      assert.isFalse(Buffer.from(dk.ciphertext).includes(Buffer.from(Redacted.value(dk.plaintext))), "the data key is not in the blob")

      const r = http.requests
      // The challenge: each SDK client (KeyClient, then CryptographyClient) first sends its request
      // without token and without body, gets 401 + WWW-Authenticate, then sends it with both.
      assert.deepStrictEqual(r.map((x) => [x.method, x.path, x.bearer, x.body === undefined]), [
        ["GET", "/keys/master/v1", false, true],
        ["GET", "/keys/master/v1", true, true],
        ["POST", "/keys/master/v1/wrapkey", false, true],
        ["POST", "/keys/master/v1/wrapkey", true, false]
      ])
      for (const x of r) assert.match(x.apiVersion ?? "", API_VERSION)
      assert.strictEqual(new Set(r.map((x) => x.apiVersion)).size, 1)
      const wrap = r[3]!.body as { alg: string; value: string }
      assert.deepStrictEqual(Object.keys(wrap).sort(), ["alg", "value"])
      assert.strictEqual(wrap.alg, "RSA-OAEP-256")
      assert.strictEqual(Buffer.from(wrap.value, "base64url").length, 32, "a 256-bit one-time key is wrapped")
      assert.isFalse(Buffer.from(wrap.value, "base64url").equals(Buffer.from(Redacted.value(dk.plaintext))), "the data key never goes to Key Vault")

      http.requests.length = 0
      const back = yield* kms.decrypt(dk.ciphertext, { key: "k", bucket: "b" }, keyId)
      assert.isTrue(Buffer.from(Redacted.value(back.plaintext)).equals(Buffer.from(Redacted.value(dk.plaintext))))
      assert.strictEqual(back.keyId, keyId)
      assert.deepStrictEqual(http.requests.map((x) => [x.method, x.path, x.bearer]), [["POST", "/keys/master/v1/unwrapkey", true]])
      const unwrap = http.requests[0]!.body as { alg: string; value: string }
      assert.strictEqual(unwrap.alg, "RSA-OAEP-256")
      assert.strictEqual(Buffer.from(unwrap.value, "base64url").length, 256, "an RSA-2048 ciphertext")
    }), 60_000)

  it.effect("encrypt/decrypt of a caller's key; the context is bound: another context, a changed blob, another key fail", () =>
    Effect.gen(function*() {
      const { http, kms } = yield* setup()
      http.keys.set("master", [KeyVaultHttp.rsaVersion("v1")])
      http.keys.set("other", [KeyVaultHttp.rsaVersion("o1")])
      const keyId = `https://${VAULT}/keys/master/v1`
      const secret = crypto.randomBytes(40)
      const enc = yield* kms.encrypt(keyId, Redacted.make(new Uint8Array(secret)), { purpose: "test" })
      const ok = yield* kms.decrypt(enc.ciphertext, { purpose: "test" })
      assert.isTrue(Buffer.from(Redacted.value(ok.plaintext)).equals(secret))

      assert.deepStrictEqual(yield* reason(kms.decrypt(enc.ciphertext, { purpose: "other" })), ["KmsError", "InvalidCiphertext"])
      assert.deepStrictEqual(yield* reason(kms.decrypt(enc.ciphertext, {})), ["KmsError", "InvalidCiphertext"])
      const changed = Uint8Array.from(enc.ciphertext)
      changed[changed.length - 20]! ^= 1
      assert.deepStrictEqual(yield* reason(kms.decrypt(changed, { purpose: "test" })), ["KmsError", "InvalidCiphertext"])
      // A blob asked for under another key is refused before any request.
      const before = http.requests.length
      assert.deepStrictEqual(yield* reason(kms.decrypt(enc.ciphertext, { purpose: "test" }, `https://${VAULT}/keys/other`)), ["KmsError", "InvalidCiphertext"])
      assert.deepStrictEqual(yield* reason(kms.decrypt(new Uint8Array([1, 2, 3]), {})), ["KmsError", "InvalidCiphertext"])
      assert.deepStrictEqual(yield* reason(kms.decrypt(enc.ciphertext.subarray(0, 40), { purpose: "test" })), ["KmsError", "InvalidCiphertext"])
      assert.strictEqual(http.requests.length, before)
      // A wrapped key that Key Vault cannot unwrap (400 BadParameter) is an invalid ciphertext.
      const header = Buffer.from(enc.ciphertext)
      const wrappedAt = header.indexOf(Buffer.from("/keys/master/v1")) + "/keys/master/v1".length + 2
      header[wrappedAt + 10]! ^= 1
      assert.deepStrictEqual(yield* reason(kms.decrypt(header, { purpose: "test" })), ["KmsError", "InvalidCiphertext"])
      assert.strictEqual(http.requests.at(-1)!.path, "/keys/master/v1/unwrapkey")
    }), 60_000)

  it.effect("an unversioned key id is resolved to the current version and recorded; old blobs stay readable after a rotation", () =>
    Effect.gen(function*() {
      const { http, kms } = yield* setup()
      http.keys.set("rotating", [KeyVaultHttp.rsaVersion("a1")])
      const dk = yield* kms.generateDataKey(`https://${VAULT}/keys/rotating`, {})
      assert.strictEqual(dk.keyId, `https://${VAULT}/keys/rotating/a1`)
      assert.deepStrictEqual(http.requests.filter((x) => x.bearer).map((x) => x.path), ["/keys/rotating/", "/keys/rotating/a1/wrapkey"])
      http.keys.get("rotating")!.push(KeyVaultHttp.rsaVersion("a2"))
      // A new instance (a new process) sees the new current version.
      const fresh = yield* KeyVaultKms.make({ credential: http.credential, maxRetries: 0, clientOptions: { httpClient: http.httpClient } })
      const dk2 = yield* fresh.generateDataKey(`https://${VAULT}/keys/rotating`, {})
      assert.strictEqual(dk2.keyId, `https://${VAULT}/keys/rotating/a2`)
      http.requests.length = 0
      const old = yield* fresh.decrypt(dk.ciphertext, {}, `https://${VAULT}/keys/rotating`)
      assert.isTrue(Buffer.from(Redacted.value(old.plaintext)).equals(Buffer.from(Redacted.value(dk.plaintext))))
      assert.isTrue(http.requests.some((x) => x.path === "/keys/rotating/a1/unwrapkey"))
    }), 60_000)

  it.effect("A256KW on a Managed HSM oct-HSM key", () =>
    Effect.gen(function*() {
      const host = "objcrypt-test.managedhsm.azure.net"
      const { http, kms } = yield* setup({ host })
      http.keys.set("hsm-key", [{ version: "h1", kty: "oct-HSM", secret: crypto.randomBytes(32) }])
      const dk = yield* kms.generateDataKey(`https://${host}/keys/hsm-key/h1`, { a: "1" })
      const wrap = http.requests.find((x) => x.path.endsWith("/wrapkey") && x.bearer)!
      assert.strictEqual((wrap.body as { alg: string }).alg, "A256KW")
      const back = yield* kms.decrypt(dk.ciphertext, { a: "1" })
      assert.isTrue(Buffer.from(Redacted.value(back.plaintext)).equals(Buffer.from(Redacted.value(dk.plaintext))))
      assert.strictEqual((http.requests.at(-1)!.body as { alg: string }).alg, "A256KW")
    }), 60_000)

  it.effect("typed errors: 404 KeyNotFound, 403 Forbidden, disabled key, 401 token refused, 5xx, EC key, not a key id", () =>
    Effect.gen(function*() {
      const { http, kms } = yield* setup()
      http.keys.set("master", [KeyVaultHttp.rsaVersion("v1")])
      http.keys.set("off", [KeyVaultHttp.rsaVersion("d1", false)])
      http.keys.set("ec", [{ version: "e1", kty: "EC", pair: crypto.generateKeyPairSync("ec", { namedCurve: "P-256" }) }])

      const missing = yield* Effect.flip(kms.generateDataKey(`https://${VAULT}/keys/nope/v9`, {}))
      assert.deepStrictEqual([missing._tag, missing.reason, missing.keyId], ["KmsError", "NotFound", `https://${VAULT}/keys/nope/v9`])
      assert.match(missing.message, /KeyNotFound/)

      const dk = yield* kms.generateDataKey(`https://${VAULT}/keys/master/v1`, {})
      http.forbidden.add("unwrapKey")
      const denied = yield* Effect.flip(kms.decrypt(dk.ciphertext, {}))
      assert.deepStrictEqual([denied._tag, denied.reason], ["KmsError", "AccessDenied"])
      assert.match(denied.message, /unwrapKey permission/)
      http.forbidden.clear()

      assert.deepStrictEqual(yield* reason(kms.generateDataKey(`https://${VAULT}/keys/off/d1`, {})), ["KmsError", "Disabled"])
      assert.deepStrictEqual(yield* reason(kms.generateDataKey(`https://${VAULT}/keys/ec/e1`, {})), ["KmsError", "Invalid"])

      // Without keys/get, an unversioned id cannot be resolved; a versioned one is used remotely.
      http.forbidden.add("get")
      http.keys.set("blind", [KeyVaultHttp.rsaVersion("b1")])
      const unversioned = yield* Effect.flip(kms.generateDataKey(`https://${VAULT}/keys/blind`, {}))
      assert.deepStrictEqual([unversioned.reason, /keys\/get/.test(unversioned.detail)], ["AccessDenied", true])
      const blind = yield* kms.generateDataKey(`https://${VAULT}/keys/blind/b1`, {})
      assert.strictEqual(blind.keyId, `https://${VAULT}/keys/blind/b1`)
      assert.strictEqual((http.requests.at(-1)!.body as { alg: string }).alg, "RSA-OAEP-256")
      http.forbidden.clear()

      http.failWith = 500
      assert.deepStrictEqual(yield* reason(kms.decrypt(dk.ciphertext, {})), ["KmsError", "Unavailable"])
      http.failWith = undefined

      const before = http.requests.length
      assert.deepStrictEqual(yield* reason(kms.generateDataKey("master", {})), ["KmsError", "Invalid"])
      assert.deepStrictEqual(yield* reason(kms.generateDataKey("https://example.com/secrets/x", {})), ["KmsError", "Invalid"])
      assert.strictEqual(http.requests.length, before, "no request for a malformed key id")

      // The token itself is refused on every attempt (a 401 with the token): AccessDenied.
      const { http: http2, kms: kms2 } = yield* setup()
      http2.keys.set("master", [KeyVaultHttp.rsaVersion("v1")])
      http2.failWith = 401
      const refused = yield* Effect.flip(kms2.generateDataKey(`https://${VAULT}/keys/master/v1`, {}))
      assert.deepStrictEqual([refused._tag, refused.reason], ["KmsError", "AccessDenied"])
      assert.isTrue(http2.requests.some((x) => x.bearer), "the SDK answered the challenge with the token")

      for (const e of [missing, denied, unversioned, refused]) {
        const text = `${e.message} ${JSON.stringify(e)} ${String(e.stack)}`
        assert.notInclude(text, http.token)
        assert.notInclude(text, http2.token)
      }
    }), 60_000)

  it.effect("no key material in errors: a failing unwrap does not echo the wrapped key or the data key", () =>
    Effect.gen(function*() {
      const { http, kms } = yield* setup()
      http.keys.set("master", [KeyVaultHttp.rsaVersion("v1")])
      const dk = yield* kms.generateDataKey(`https://${VAULT}/keys/master/v1`, {})
      http.keys.set("master", [])
      const e = yield* Effect.flip(kms.decrypt(dk.ciphertext, {}))
      assert.strictEqual(e.reason, "NotFound")
      const sent = (http.requests.at(-1)!.body as { value: string }).value
      const text = `${e.message} ${JSON.stringify(e)} ${String(e.stack)}`
      assert.notInclude(text, sent)
      assert.notInclude(text, Buffer.from(Redacted.value(dk.plaintext)).toString("base64"))
      assert.notInclude(text, Buffer.from(Redacted.value(dk.plaintext)).toString("hex"))
    }), 60_000)
})
