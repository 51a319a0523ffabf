/**
 * Azure client-side encryption v2 with its key-encryption key from objcrypt's `KeyStore`
 * (aes-256 → A256KW, rsa-oaep-256 → RSA-OAEP-256, rotation), from any core `Kms` (here Key Vault
 * through `KeyVaultKms`), and from a Key Vault key wrapping the content key directly, against
 * Azurite. The Python SDK reads a blob wrapped with a key-store key. Key Vault is reached through
 * the real SDK over a recording HTTP layer (no Key Vault server installs here).
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import type { ResolvedKey } from "@objcrypt/core/KeyStore"
import type * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as Azurite from "@objcrypt/test-kit/Azurite"
import { Effect, ManagedRuntime, Option, Redacted, Stream } from "effect"
import * as cp from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Cse from "../src/AzureClientSideEncryption.js"
import { freshContainer, readAll } from "./support/CseStore.js"
import * as KeyVaultKms from "../src/KeyVaultKms.js"
import * as KeyVaultHttp from "./support/KeyVaultHttp.js"
import * as MemoryKeyStore from "./support/MemoryKeyStore.js"

const azurite = ManagedRuntime.make(Azurite.layer())
afterAll(() => azurite.dispose(), 60_000)

const VAULT = "objcrypt-cse.vault.azure.net"

const setup = Effect.flatMap(Effect.promise(() => azurite.runPromise(Azurite.Azurite)), (info) => freshContainer(info, "csek"))

const read = readAll

const failure = (eff: Effect.Effect<unknown, { _tag: string }>) =>
  Effect.map(Effect.flip(eff), (e) => [e._tag, (e as { reason?: string }).reason])

const python = (action: "read" | "write", request: Record<string, unknown>) =>
  Effect.async<void, Error>((resume) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-csek-"))
    const req = path.join(dir, "request.json")
    fs.writeFileSync(req, JSON.stringify(request), { mode: 0o600 })
    cp.execFile("/usr/bin/python3", [path.join(import.meta.dirname, "support", "azure_cse.py"), action, req], { timeout: 120_000 }, (err, _stdout, stderr) => {
      fs.rmSync(dir, { recursive: true, force: true })
      resume(err === null ? Effect.void : Effect.fail(new Error(`python ${action} failed: ${stderr.slice(-2000)}`)))
    })
  })

const wrapped = (store: ObjectStore.ObjectStore["Type"], key: string) =>
  Effect.flatMap(store.head(key), (h) => Cse.parseEncryptionData(key, h.metadata))

describe("Azure client-side encryption v2 with KeyStore, Kms and Key Vault key-encryption keys (Azurite)", () => {
  it.scoped("KeyStore aes-256 → A256KW: round trip, rotation keeps old blobs readable, the Python SDK reads it", () =>
    Effect.gen(function*() {
      const { store, info, container } = yield* setup
      const keys = MemoryKeyStore.make()
      const v1 = keys.add("data", "aes-256")
      const body = crypto.randomBytes(5 * 1024 * 1024 + 11)
      const kek = yield* Effect.provide(Cse.fromKeyStore("data"), keys.layer)
      yield* Cse.put(store, "ks/one", Stream.make(body), kek)
      const d1 = yield* wrapped(store, "ks/one")
      assert.deepStrictEqual([d1.keyId, d1.algorithm], [`${v1.info.id}@1`, "A256KW"])
      const resolver = yield* Effect.provide(Cse.keyStoreResolver, keys.layer)
      assert.isTrue((yield* read(store, "ks/one", resolver)).equals(body))

      keys.add("data", "aes-256")
      const kek2 = yield* Effect.provide(Cse.fromKeyStore("data"), keys.layer)
      yield* Cse.put(store, "ks/two", Stream.make(body.subarray(0, 1000)), kek2)
      assert.strictEqual((yield* wrapped(store, "ks/two")).keyId, `${v1.info.id}@2`)
      assert.isTrue((yield* read(store, "ks/one", resolver)).equals(body), "version 1 still reads")
      assert.isTrue((yield* read(store, "ks/two", resolver)).equals(body.subarray(0, 1000)))
      const pinned = yield* Effect.provide(Cse.fromKeyStore("data", 1), keys.layer)
      assert.strictEqual(pinned.keyId, d1.keyId)

      // The Python SDK, given the same key bytes and key id, reads the blob.
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-csek-out-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(tmp, { recursive: true, force: true })))
      const material = Buffer.from(Redacted.value((v1 as { material: Redacted.Redacted<Uint8Array> }).material)).toString("base64")
      const file = path.join(tmp, "out")
      yield* python("read", { connectionString: info.connectionString, container, blob: "ks/one", file, kek: { kind: "A256KW", keyId: d1.keyId, key: material } })
      assert.isTrue(fs.readFileSync(file).equals(body), "Python decrypts a blob wrapped with a key-store key")

      // Unknown ids and other resolvers combine; a removed key is no usable key.
      keys.remove("data")
      assert.deepStrictEqual(yield* failure(read(store, "ks/one", resolver)), ["DecryptError", "NoUsableKey"])
    }), 120_000)

  it.scoped("KeyStore rsa-oaep-256 → RSA-OAEP-256 (both ways with the Python SDK); a public-only key writes but cannot read; unusable keys are refused", () =>
    Effect.gen(function*() {
      const { store, info, container } = yield* setup
      const keys = MemoryKeyStore.make()
      const pairKey = keys.add("pair", "rsa-oaep-256") as Extract<ResolvedKey, { _tag: "KeyPair" }>
      keys.add("pub", "rsa-oaep-256", { publicOnly: true })
      keys.add("x", "x25519")
      keys.add("cpk", "aes-256", { purpose: "sse-c" })
      const body = crypto.randomBytes(70_000)
      const resolver = yield* Effect.provide(Cse.keyStoreResolver, keys.layer)
      const pair = yield* Effect.provide(Cse.fromKeyStore("pair"), keys.layer)
      yield* Cse.put(store, "rsa", Stream.make(body), pair, { protocol: "2.1", regionDataLength: 16_384 })
      const d = yield* wrapped(store, "rsa")
      assert.strictEqual(d.algorithm, "RSA-OAEP-256")
      assert.strictEqual(d.wrappedKey.length, 256)
      assert.isTrue((yield* read(store, "rsa", resolver)).equals(body))
      const spec = {
        kind: "RSA-OAEP-256",
        keyId: pair.keyId,
        privatePem: Redacted.value(pairKey.privateKey).export({ type: "pkcs8", format: "pem" }).toString()
      }
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-csek-rsa-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(tmp, { recursive: true, force: true })))
      // This Python SDK knows protocols 1.0 and 2.0 only.
      yield* Cse.put(store, "rsa20", Stream.make(body), pair)
      yield* python("read", { connectionString: info.connectionString, container, blob: "rsa20", file: path.join(tmp, "out"), kek: spec })
      assert.isTrue(fs.readFileSync(path.join(tmp, "out")).equals(body), "Python reads objcrypt's RSA-OAEP-256 blob")
      fs.writeFileSync(path.join(tmp, "in"), body)
      yield* python("write", { connectionString: info.connectionString, container, blob: "py-rsa", file: path.join(tmp, "in"), kek: spec })
      assert.strictEqual((yield* wrapped(store, "py-rsa")).algorithm, "RSA-OAEP-256")
      assert.isTrue((yield* read(store, "py-rsa", resolver)).equals(body), "objcrypt reads Python's RSA-OAEP-256 blob via the key store")

      const sha1 = yield* Effect.provide(Cse.fromKeyStore("pair", undefined, { rsaAlgorithm: "RSA-OAEP" }), keys.layer)
      yield* Cse.put(store, "rsa-sha1", Stream.make(body), sha1)
      assert.strictEqual((yield* wrapped(store, "rsa-sha1")).algorithm, "RSA-OAEP")
      assert.isTrue((yield* read(store, "rsa-sha1", resolver)).equals(body), "the resolver unwraps either RSA-OAEP variant")

      const pub = yield* Effect.provide(Cse.fromKeyStore("pub"), keys.layer)
      yield* Cse.put(store, "pub", Stream.make(body), pub)
      assert.deepStrictEqual(yield* failure(read(store, "pub", resolver)), ["DecryptError", "NoUsableKey"])

      for (const [name, why] of [["x", /x25519 key cannot wrap/], ["cpk", /made for wrapping/]] as const) {
        const e = yield* Effect.flip(Effect.provide(Cse.fromKeyStore(name), keys.layer))
        assert.strictEqual(e._tag, "KeyUnusable", name)
        assert.match(e.message, why)
      }
      assert.deepStrictEqual(yield* failure(Effect.provide(Cse.fromKeyStore("absent"), keys.layer)), ["KeyNotFound", undefined])
      assert.deepStrictEqual(yield* failure(Effect.provide(Cse.fromKeyStore("pair", 7), keys.layer)), ["KeyNotFound", undefined])
    }), 60_000)

  it.scoped("any Kms (Key Vault through KeyVaultKms) wraps the content key; Key Vault keys also wrap it directly, as the other SDKs do", () =>
    Effect.gen(function*() {
      const { store } = yield* setup
      const http = KeyVaultHttp.make(VAULT)
      http.keys.set("cse", [KeyVaultHttp.rsaVersion("k1")])
      const kv = yield* KeyVaultKms.make({ credential: http.credential, maxRetries: 0, clientOptions: { httpClient: http.httpClient } })
      const body = crypto.randomBytes(4 * 1024 * 1024 + 5)

      // Through the Kms contract (objcrypt-only blobs), with a context.
      const viaKms = Cse.fromKms(kv, `https://${VAULT}/keys/cse`, { context: { app: "objcrypt" } })
      yield* Cse.put(store, "kms", Stream.make(body), viaKms)
      const dk = yield* wrapped(store, "kms")
      assert.deepStrictEqual([dk.keyId, dk.algorithm], [`https://${VAULT}/keys/cse`, "KMS:azure-key-vault"])
      assert.isTrue((yield* read(store, "kms", Cse.kmsResolver(kv, { context: { app: "objcrypt" } }))).equals(body))
      assert.deepStrictEqual(yield* failure(read(store, "kms", Cse.kmsResolver(kv, { context: { app: "other" } }))), ["DecryptError", "WrongKey"])

      // Directly by Key Vault (RSA-OAEP-256 of the 40-byte versioned content key), versioned key id.
      const kek = yield* KeyVaultKms.keyEncryptionKey(kv, `https://${VAULT}/keys/cse`)
      yield* Cse.put(store, "kv", Stream.make(body), kek)
      const dv = yield* wrapped(store, "kv")
      assert.deepStrictEqual([dv.keyId, dv.algorithm, dv.wrappedKey.length], [`https://${VAULT}/keys/cse/k1`, "RSA-OAEP-256", 256])
      const wraps = http.requests.filter((x) => x.bearer && x.path === "/keys/cse/k1/wrapkey")
      assert.strictEqual(Buffer.from((wraps.at(-1)!.body as { value: string }).value, "base64url").length, 40, "version prefix ‖ content key")
      http.requests.length = 0
      const keys = MemoryKeyStore.make()
      const all = Cse.combineResolvers(yield* Effect.provide(Cse.keyStoreResolver, keys.layer), KeyVaultKms.resolver(kv), Cse.kmsResolver(kv, { context: { app: "objcrypt" } }))
      assert.isTrue((yield* read(store, "kv", all)).equals(body))
      assert.deepStrictEqual(http.requests.filter((x) => x.bearer).map((x) => [x.method, x.path, (x.body as { alg?: string } | undefined)?.alg]), [
        ["POST", "/keys/cse/k1/unwrapkey", "RSA-OAEP-256"]
      ])
      assert.isTrue((yield* read(store, "kms", all)).equals(body), "the combined resolver also finds the Kms-wrapped blob")

      // Key Vault refusing the unwrap surfaces as a decrypt error, not a defect.
      http.forbidden.add("unwrapKey")
      assert.deepStrictEqual(yield* failure(read(store, "kv", all)), ["DecryptError", "NoUsableKey"])
      assert.isTrue(Option.isNone(yield* KeyVaultKms.resolver(kv)("local:not-a-vault-key")))
    }), 60_000)
})
