/**
 * `CloudKms` at the HTTP layer, against a local listener that answers as the Cloud KMS REST
 * reference documents (see `cloudKmsListener.ts`): the requests it sends (paths, base64 fields,
 * CRC32C checksums, AAD, Authorization), what it makes of the answers (keys, versions, integrity
 * checks, retries) and every error status as a typed `KmsError` with no key material in it.
 * Not verified against a real Cloud KMS.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as ClientSide from "@objcrypt/core/ClientSide"
import * as Keyring from "@objcrypt/core/Keyring"
import { contextBytes } from "@objcrypt/core/NativeFormat"
import * as GcsServer from "@objcrypt/test-kit/GcsServer"
import { Effect, Either, Redacted, Stream } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as CloudKms from "../src/CloudKms.js"
import type { CloudKmsConfig } from "../src/CloudKms.js"
import * as GcsObjectStore from "../src/GcsObjectStore.js"
import * as Crc32c from "../src/internal/crc32c.js"
import * as Listener from "./cloudKmsListener.js"

const KEY = "projects/objcrypt/locations/europe-west1/keyRings/ring/cryptoKeys/data"
const OTHER = "projects/objcrypt/locations/europe-west1/keyRings/ring/cryptoKeys/other"
const CONTEXT = { "oc:bucket": "b", "oc:key": "some/object", team: "ünïcode" }

let kms: Listener.Listener

beforeAll(async () => {
  kms = await Listener.start()
  kms.createKey(KEY)
  kms.createKey(OTHER)
})
afterAll(() => kms.close())

const service = (extra?: Partial<CloudKmsConfig>) => CloudKms.make({ endpoint: kms.endpoint, ...extra })
const since = (n: number) => kms.requests.slice(n)
const crc = (b: Uint8Array) => String(Crc32c.update(0, b))
const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64")
const noSecret = (e: unknown, ...secrets: ReadonlyArray<Uint8Array>) => {
  const text = `${String(e)} ${JSON.stringify(e)} ${(e as Error).stack ?? ""}`
  for (const s of secrets) {
    assert.notInclude(text, b64(s))
    assert.notInclude(text, Buffer.from(s).toString("hex"))
  }
}

describe("CloudKms (HTTP layer; not verified against a server)", () => {
  it.scoped("generateDataKey: random key + encrypt with the context as AAD and CRC32C checksums; decrypt sends the crypto key's name", () =>
    Effect.gen(function*() {
      const k = yield* service()
      const n = kms.requests.length
      const dk = yield* k.generateDataKey(KEY, CONTEXT)
      const plaintext = Redacted.value(dk.plaintext)
      assert.strictEqual(plaintext.length, 32)
      assert.strictEqual(dk.keyId, `${KEY}/cryptoKeyVersions/1`)
      const [enc] = since(n)
      const aad = contextBytes(CONTEXT)
      assert.deepStrictEqual({ method: enc!.method, path: enc!.path, contentType: enc!.contentType, authorization: enc!.authorization }, {
        method: "POST",
        path: `/v1/${KEY}:encrypt`,
        contentType: "application/json",
        authorization: undefined
      })
      assert.deepStrictEqual(enc!.body, {
        plaintext: b64(plaintext),
        plaintextCrc32c: crc(plaintext),
        additionalAuthenticatedData: b64(aad),
        additionalAuthenticatedDataCrc32c: crc(aad)
      })

      // The envelope records the version; decrypt goes to the crypto key with the same AAD.
      const m = kms.requests.length
      const back = yield* k.decrypt(dk.ciphertext, { team: "ünïcode", "oc:key": "some/object", "oc:bucket": "b" }, dk.keyId)
      assert.isTrue(Buffer.from(Redacted.value(back.plaintext)).equals(Buffer.from(plaintext)))
      assert.strictEqual(back.keyId, dk.keyId)
      const [dec] = since(m)
      assert.strictEqual(dec!.path, `/v1/${KEY}:decrypt`)
      assert.deepStrictEqual(dec!.body, {
        ciphertext: b64(dk.ciphertext),
        ciphertextCrc32c: crc(dk.ciphertext),
        additionalAuthenticatedData: b64(aad),
        additionalAuthenticatedDataCrc32c: crc(aad)
      })
      // Two data keys are never the same.
      const again = yield* k.generateDataKey(KEY, CONTEXT)
      assert.isFalse(Buffer.from(Redacted.value(again.plaintext)).equals(Buffer.from(plaintext)))
    }))

  it.scoped("an empty context sends no AAD; a wrong, missing or extra context is InvalidCiphertext", () =>
    Effect.gen(function*() {
      const k = yield* service()
      const n = kms.requests.length
      const bare = yield* k.generateDataKey(KEY, {})
      assert.deepStrictEqual(Object.keys(since(n)[0]!.body!).sort(), ["plaintext", "plaintextCrc32c"])
      assert.strictEqual(Redacted.value((yield* k.decrypt(bare.ciphertext, {}, bare.keyId)).plaintext).length, 32)
      const bound = yield* k.generateDataKey(KEY, CONTEXT)
      for (const context of [{}, { ...CONTEXT, team: "other" }, { ...CONTEXT, extra: "x" }]) {
        const e = yield* Effect.flip(k.decrypt(bound.ciphertext, context, bound.keyId))
        assert.deepStrictEqual([e._tag, e.reason, e.keyId], ["KmsError", "InvalidCiphertext", bound.keyId])
        noSecret(e, Redacted.value(bound.plaintext))
      }
      const e = yield* Effect.flip(k.decrypt(bare.ciphertext, CONTEXT, bare.keyId))
      assert.strictEqual(e.reason, "InvalidCiphertext")
    }))

  it.scoped("tampered, truncated, empty or foreign ciphertexts are InvalidCiphertext", () =>
    Effect.gen(function*() {
      const k = yield* service()
      const dk = yield* k.generateDataKey(KEY, CONTEXT)
      const tampered = Uint8Array.from(dk.ciphertext)
      tampered[20] = tampered[20]! ^ 1
      const truncated = dk.ciphertext.subarray(0, 10)
      for (const blob of [tampered, truncated]) {
        const e = yield* Effect.flip(k.decrypt(blob, CONTEXT, dk.keyId))
        assert.strictEqual(e.reason, "InvalidCiphertext")
        assert.include(e.message, "INVALID_ARGUMENT")
        noSecret(e, Redacted.value(dk.plaintext))
      }
      const n = kms.requests.length
      const empty = yield* Effect.flip(k.decrypt(new Uint8Array(0), CONTEXT, dk.keyId))
      assert.strictEqual(empty.reason, "InvalidCiphertext")
      assert.strictEqual(kms.requests.length, n, "nothing sent for an empty blob")
      // A blob made under one key, given to another.
      const foreign = yield* Effect.flip(k.decrypt(dk.ciphertext, CONTEXT, OTHER))
      assert.strictEqual(foreign.reason, "InvalidCiphertext")
    }))

  it.scoped("key versions: encrypt reports the primary version; old versions still decrypt; a version name pins it", () =>
    Effect.gen(function*() {
      const key = `${KEY}-rot`
      kms.createKey(key)
      const k = yield* service()
      const v1 = yield* k.generateDataKey(key, CONTEXT)
      assert.strictEqual(v1.keyId, `${key}/cryptoKeyVersions/1`)
      assert.strictEqual(kms.rotate(key), 2)
      const v2 = yield* k.generateDataKey(key, CONTEXT)
      assert.strictEqual(v2.keyId, `${key}/cryptoKeyVersions/2`)
      const pinned = yield* k.encrypt(`${key}/cryptoKeyVersions/1`, Redacted.make(new Uint8Array(32)), {})
      assert.strictEqual(pinned.keyId, `${key}/cryptoKeyVersions/1`)
      for (const dk of [v1, v2]) {
        const r = yield* k.decrypt(dk.ciphertext, CONTEXT, dk.keyId)
        assert.isTrue(Buffer.from(Redacted.value(r.plaintext)).equals(Buffer.from(Redacted.value(dk.plaintext))))
      }
      // Decrypting by the crypto key's name alone works too: the version is inside the ciphertext.
      assert.strictEqual(Redacted.value((yield* k.decrypt(v1.ciphertext, CONTEXT, key)).plaintext).length, 32)
    }))

  it.scoped("NOT_FOUND, PERMISSION_DENIED, FAILED_PRECONDITION (disabled, destroyed) and UNAUTHENTICATED map to typed reasons", () =>
    Effect.gen(function*() {
      const k = yield* service()
      const missing = yield* Effect.flip(k.generateDataKey(`${KEY}-missing`, CONTEXT))
      assert.deepStrictEqual([missing.reason, missing.keyId], ["NotFound", `${KEY}-missing`])
      assert.include(missing.detail, "NOT_FOUND")

      const denied = `${KEY}-denied`
      kms.createKey(denied)
      kms.deny(denied)
      const d = yield* Effect.flip(k.generateDataKey(denied, CONTEXT))
      assert.strictEqual(d.reason, "AccessDenied")
      assert.include(d.detail, "PERMISSION_DENIED")

      const disabled = `${KEY}-disabled`
      kms.createKey(disabled)
      const dk = yield* k.generateDataKey(disabled, CONTEXT)
      kms.setState(disabled, 1, "DISABLED")
      const onEncrypt = yield* Effect.flip(k.generateDataKey(disabled, CONTEXT))
      const onDecrypt = yield* Effect.flip(k.decrypt(dk.ciphertext, CONTEXT, dk.keyId))
      for (const e of [onEncrypt, onDecrypt]) {
        assert.strictEqual(e.reason, "Disabled")
        assert.include(e.detail, "FAILED_PRECONDITION")
        assert.include(e.detail, "DISABLED")
        noSecret(e, Redacted.value(dk.plaintext))
      }
      kms.setState(disabled, 1, "DESTROYED")
      assert.strictEqual((yield* Effect.flip(k.decrypt(dk.ciphertext, CONTEXT, dk.keyId))).reason, "InvalidState")

      kms.checkAuth = (h) => h === "Bearer right-token"
      try {
        const anonymous = yield* Effect.flip(k.generateDataKey(KEY, CONTEXT))
        assert.deepStrictEqual([anonymous.reason, anonymous.detail.startsWith("UNAUTHENTICATED")], ["AccessDenied", true])
        const wrong = yield* service({ accessToken: Redacted.make("wrong-token") })
        assert.strictEqual((yield* Effect.flip(wrong.generateDataKey(KEY, CONTEXT))).reason, "AccessDenied")
        const right = yield* service({ accessToken: Redacted.make("right-token") })
        const n = kms.requests.length
        yield* right.generateDataKey(KEY, CONTEXT)
        assert.strictEqual(since(n)[0]!.authorization, "Bearer right-token")
        const e = yield* Effect.flip(wrong.generateDataKey(KEY, CONTEXT))
        assert.notInclude(`${String(e)} ${JSON.stringify(e)}`, "wrong-token")
      } finally {
        kms.checkAuth = undefined
      }
    }))

  it.scoped("bad input is refused before any request: key names, a missing key name on decrypt, plaintext over 64 KiB", () =>
    Effect.gen(function*() {
      const k = yield* service()
      const n = kms.requests.length
      for (const name of ["data", "projects/p/keyRings/r/cryptoKeys/k", `${KEY}/`, `${KEY}/cryptoKeyVersions`, "alias/aws-style", `${KEY}/../x`]) {
        const e = yield* Effect.flip(k.generateDataKey(name, {}))
        assert.deepStrictEqual([e.reason, e.keyId], ["Invalid", name])
      }
      assert.strictEqual((yield* Effect.flip(k.decrypt(new Uint8Array(40), {}))).reason, "Invalid")
      assert.strictEqual((yield* Effect.flip(k.decrypt(new Uint8Array(40), {}, "not/a/key"))).reason, "Invalid")
      const big = new Uint8Array(crypto.randomBytes(64 * 1024 + 1))
      const e = yield* Effect.flip(k.encrypt(KEY, Redacted.make(big), {}))
      assert.strictEqual(e.reason, "Invalid")
      noSecret(e, big.subarray(0, 48))
      assert.strictEqual(kms.requests.length, n, "no request was sent")
    }))

  it.scopedLive("503 is retried with backoff; past maxRetries it is Unavailable", () =>
    Effect.gen(function*() {
      const k = yield* service({ maxRetries: 2 })
      let n = kms.requests.length
      kms.failNext(2)
      yield* k.generateDataKey(KEY, CONTEXT)
      assert.strictEqual(since(n).length, 3)
      n = kms.requests.length
      kms.failNext(3)
      const e = yield* Effect.flip(k.generateDataKey(KEY, CONTEXT))
      assert.deepStrictEqual([e.reason, since(n).length], ["Unavailable", 3])
      assert.include(e.detail, "UNAVAILABLE")
      kms.failNext(0)
      // No server at all: a network error, retried, then Unavailable.
      const down = yield* CloudKms.make({ endpoint: "http://127.0.0.1:9", maxRetries: 1 })
      assert.strictEqual((yield* Effect.flip(down.generateDataKey(KEY, CONTEXT))).reason, "Unavailable")
    }))

  it.scopedLive("an answer whose CRC32C does not match is discarded and retried, then Unavailable", () =>
    Effect.gen(function*() {
      const k = yield* service({ maxRetries: 1 })
      const dk = yield* k.generateDataKey(KEY, CONTEXT)
      let n = kms.requests.length
      kms.corruptNext(1)
      const ok = yield* k.decrypt(dk.ciphertext, CONTEXT, dk.keyId)
      assert.strictEqual(Redacted.value(ok.plaintext).length, 32)
      assert.strictEqual(since(n).length, 2)
      n = kms.requests.length
      kms.corruptNext(2)
      const bad = yield* Effect.flip(k.encrypt(KEY, dk.plaintext, CONTEXT))
      assert.deepStrictEqual([bad.reason, since(n).length], ["Unavailable", 2])
      assert.include(bad.detail, "CRC32C")
      noSecret(bad, Redacted.value(dk.plaintext))
      kms.corruptNext(0)
    }))

  it.scoped("service-account credentials: a self-signed RS256 JWT with the Cloud KMS scope, no token exchange", () =>
    Effect.gen(function*() {
      const { privateKey, publicKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
      const email = "objcrypt@objcrypt.iam.gserviceaccount.com"
      const k = yield* service({
        credentials: { clientEmail: email, privateKey: Redacted.make(privateKey.export({ type: "pkcs8", format: "pem" }).toString()) }
      })
      const n = kms.requests.length
      yield* k.generateDataKey(KEY, CONTEXT)
      const seen = since(n)
      assert.strictEqual(seen.length, 1, "only the KMS call: no OAuth token request")
      const [scheme, jwt] = (seen[0]!.authorization ?? "").split(" ")
      assert.strictEqual(scheme, "Bearer")
      const [h, p, s] = jwt!.split(".")
      assert.isTrue(crypto.verify("RSA-SHA256", Buffer.from(`${h}.${p}`), publicKey, Buffer.from(s!, "base64url")), "signed by the key")
      const header = JSON.parse(Buffer.from(h!, "base64url").toString()) as { alg: string }
      const payload = JSON.parse(Buffer.from(p!, "base64url").toString()) as { iss: string; sub: string; scope: string; exp: number }
      assert.strictEqual(header.alg, "RS256")
      assert.deepStrictEqual([payload.iss, payload.sub, payload.scope], [email, email, CloudKms.SCOPE])
      assert.isAbove(payload.exp, Date.now() / 1000)

      // The same from a key file, whose key id goes into the JWT header.
      const file = path.join(os.tmpdir(), `objcrypt-sa-${crypto.randomBytes(4).toString("hex")}.json`)
      fs.writeFileSync(file, JSON.stringify({ type: "service_account", client_email: email, private_key_id: "kid-1", private_key: privateKey.export({ type: "pkcs8", format: "pem" }).toString() }), { mode: 0o600 })
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(file, { force: true })))
      const fromFile = yield* service({ keyFilename: file })
      const m = kms.requests.length
      yield* fromFile.generateDataKey(KEY, CONTEXT)
      const token = since(m)[0]!.authorization!.split(" ")[1]!
      const [h2, p2, s2] = token.split(".")
      assert.isTrue(crypto.verify("RSA-SHA256", Buffer.from(`${h2}.${p2}`), publicKey, Buffer.from(s2!, "base64url")))
      assert.strictEqual((JSON.parse(Buffer.from(h2!, "base64url").toString()) as { kid: string }).kid, "kid-1")
    }))

  it.scoped("cse-kms over GCS: ClientSide with a Cloud KMS keyring, against the test-kit GCS server", () =>
    Effect.gen(function*() {
      const gcs = yield* GcsServer.make({ buckets: ["cse-kms"] })
      const store = yield* GcsObjectStore.make({ bucket: "cse-kms", apiEndpoint: gcs.endpoint, projectId: gcs.projectId, partSize: 256 * 1024 })
      const k = yield* service()
      const body = crypto.randomBytes(700_000)
      const n = kms.requests.length
      yield* ClientSide.put(store, "obj", Stream.make(body), [Keyring.kms(k, KEY)], { segmentSize: 65_536, contentLength: body.length })
      assert.deepStrictEqual(since(n).map((r) => r.path), [`/v1/${KEY}:encrypt`])
      const got = yield* ClientSide.getBytes(store, "obj", Keyring.makeUnwrapper({ kms: k }))
      assert.isTrue(Buffer.from(got).equals(body))
      assert.strictEqual(since(n).at(-1)!.path, `/v1/${KEY}:decrypt`)
      // The object is bound to its location through the AAD: copied elsewhere, it does not open.
      yield* store.copy("obj", "moved")
      const moved = yield* Effect.either(ClientSide.getBytes(store, "moved", Keyring.makeUnwrapper({ kms: k })))
      assert.isTrue(Either.isLeft(moved))
      assert.strictEqual(Either.isLeft(moved) ? moved.left._tag : "", "DecryptError")
    }))

  it("maps error answers by Google status, with no key material in the detail", () => {
    const body = (code: number, status: string, message: string) => ({ error: { code, status, message } })
    const secret = crypto.randomBytes(32).toString("base64")
    const cases: ReadonlyArray<[number, unknown, "encrypt" | "decrypt", string]> = [
      [404, body(404, "NOT_FOUND", "x not found."), "encrypt", "NotFound"],
      [403, body(403, "PERMISSION_DENIED", "denied"), "decrypt", "AccessDenied"],
      [401, body(401, "UNAUTHENTICATED", "bad token"), "encrypt", "AccessDenied"],
      [400, body(400, "FAILED_PRECONDITION", "v is not enabled, current state is: DISABLED."), "decrypt", "Disabled"],
      [400, body(400, "FAILED_PRECONDITION", "v is not enabled, current state is: DESTROY_SCHEDULED."), "decrypt", "InvalidState"],
      [400, body(400, "INVALID_ARGUMENT", `Decryption failed ${secret}`), "decrypt", "InvalidCiphertext"],
      [400, body(400, "INVALID_ARGUMENT", `bad plaintext ${secret}`), "encrypt", "Invalid"],
      [429, body(429, "RESOURCE_EXHAUSTED", "quota"), "encrypt", "Unavailable"],
      [500, "<html>oops</html>", "decrypt", "Unavailable"],
      [418, undefined, "decrypt", "Invalid"]
    ]
    for (const [status, json, op, reason] of cases) {
      const e = CloudKms.toKmsError(op, status, json, KEY)
      assert.strictEqual(e.reason, reason, `${status} ${JSON.stringify(json)}`)
      assert.notInclude(`${e.message} ${JSON.stringify(e)}`, secret)
    }
    // Resource names stay readable.
    const named = CloudKms.toKmsError("decrypt", 400, body(400, "FAILED_PRECONDITION", `${KEY}/cryptoKeyVersions/1 is not enabled, current state is: DISABLED.`), KEY)
    assert.strictEqual(named.detail, `FAILED_PRECONDITION: ${KEY}/cryptoKeyVersions/1 is not enabled, current state is: DISABLED.`)
    assert.strictEqual(CloudKms.cryptoKeyOf(`${KEY}/cryptoKeyVersions/7`), KEY)
    assert.strictEqual(CloudKms.cryptoKeyOf(KEY), KEY)
    assert.isUndefined(CloudKms.cryptoKeyOf(`${KEY}/cryptoKeyVersions/7/x`))
  })
})
