/**
 * `AzureClientSideEncryption.rekey` against Azurite: the content key is rewrapped under another
 * key-encryption key and only `encryptiondata` is rewritten; the new key reads the blob (so does
 * the official Python SDK), the old one no longer does, and a wrong current key changes nothing.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import type * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as Azurite from "@objcrypt/test-kit/Azurite"
import { Chunk, Effect, ManagedRuntime, Option, Redacted, Stream } from "effect"
import * as cp from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Cse from "../src/AzureClientSideEncryption.js"
import { freshContainer, readAll } from "./support/CseStore.js"

const azurite = ManagedRuntime.make(Azurite.layer())
afterAll(() => azurite.dispose(), 60_000)

const setup = Effect.flatMap(Effect.promise(() => azurite.runPromise(Azurite.Azurite)), (info) => freshContainer(info, "rekey"))

const read = readAll

const raw = (store: ObjectStore.ObjectStore["Type"], key: string) =>
  Effect.scoped(Effect.gen(function*() {
    const obj = yield* store.get(key)
    return { info: obj.info, bytes: Buffer.concat(Chunk.toArray(yield* Stream.runCollect(obj.body))) }
  }))

const failure = (eff: Effect.Effect<unknown, { _tag: string }>) =>
  Effect.map(Effect.flip(eff), (e) => [e._tag, (e as { reason?: string }).reason])

/** A resolver that offers `kek` for whatever key id the blob names (the "old key" trying its luck). */
const always = (kek: Cse.KeyEncryptionKey): Cse.KeyResolver => (id) => Effect.succeed(Option.some({ ...kek, keyId: id }))

const python = (request: Record<string, unknown>) =>
  Effect.async<void, Error>((resume) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-rekey-"))
    const req = path.join(dir, "request.json")
    fs.writeFileSync(req, JSON.stringify(request), { mode: 0o600 })
    cp.execFile("/usr/bin/python3", [path.join(import.meta.dirname, "support", "azure_cse.py"), "read", req], { timeout: 120_000 }, (err, _o, stderr) => {
      fs.rmSync(dir, { recursive: true, force: true })
      resume(err === null ? Effect.void : Effect.fail(new Error(`python read failed: ${stderr.slice(-2000)}`)))
    })
  })

describe("AzureClientSideEncryption.rekey (Azurite)", () => {
  it.scoped("A256KW → A256KW → RSA-OAEP: the body, user metadata and the rest of encryptiondata stay; only the new key reads it", () =>
    Effect.gen(function*() {
      const { store, info, container } = yield* setup
      const oldMaterial = crypto.randomBytes(32)
      const newMaterial = crypto.randomBytes(32)
      const oldKek = Cse.aesKeyWrap("old", Redacted.make(new Uint8Array(oldMaterial)))
      const newKek = Cse.aesKeyWrap("new", Redacted.make(new Uint8Array(newMaterial)))
      const rsa = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
      const rsaKek = Cse.rsaOaep("rsa", { publicKey: rsa.publicKey, privateKey: rsa.privateKey })
      const body = crypto.randomBytes(4 * 1024 * 1024 + 1234)
      yield* Cse.put(store, "doc.bin", Stream.make(body), oldKek, { metadata: { owner: "me" }, contentType: "application/x-test" })
      const before = yield* raw(store, "doc.bin")
      const entryBefore = JSON.parse(before.info.metadata[Cse.METADATA_KEY]!)

      const r = yield* Cse.rekey(store, "doc.bin", Cse.resolverOf(oldKek), newKek)
      assert.deepStrictEqual(r, { key: "doc.bin", protocol: "2.0", from: { keyId: "old", algorithm: "A256KW" }, to: { keyId: "new", algorithm: "A256KW" } })
      const after = yield* raw(store, "doc.bin")
      assert.isTrue(after.bytes.equals(before.bytes), "the stored ciphertext is unchanged")
      assert.strictEqual(after.info.metadata["owner"], "me")
      assert.strictEqual(after.info.contentType, "application/x-test")
      const entryAfter = JSON.parse(after.info.metadata[Cse.METADATA_KEY]!)
      assert.deepStrictEqual({ ...entryAfter, WrappedContentKey: undefined }, { ...entryBefore, WrappedContentKey: undefined })
      assert.notStrictEqual(entryAfter.WrappedContentKey.EncryptedKey, entryBefore.WrappedContentKey.EncryptedKey)

      assert.isTrue((yield* read(store, "doc.bin", Cse.resolverOf(newKek))).equals(body))
      assert.deepStrictEqual(yield* failure(read(store, "doc.bin", Cse.resolverOf(oldKek))), ["DecryptError", "NoUsableKey"])
      assert.deepStrictEqual(yield* failure(read(store, "doc.bin", always(oldKek))), ["DecryptError", "WrongKey"])

      // The official SDK reads the rewrapped blob with the new key.
      const out = path.join(os.tmpdir(), `objcrypt-rekey-${crypto.randomBytes(4).toString("hex")}.out`)
      yield* python({ connectionString: info.connectionString, container, blob: "doc.bin", file: out, kek: { kind: "A256KW", keyId: "new", key: newMaterial.toString("base64") } })
      assert.isTrue(fs.readFileSync(out).equals(body), "Python reads the rewrapped blob")
      fs.rmSync(out, { force: true })

      yield* Cse.rekey(store, "doc.bin", Cse.resolverOf(newKek), rsaKek)
      assert.strictEqual((yield* Cse.parseEncryptionData("doc.bin", (yield* store.head("doc.bin")).metadata)).algorithm, "RSA-OAEP")
      assert.isTrue((yield* read(store, "doc.bin", Cse.resolverOf(rsaKek))).equals(body))
      assert.deepStrictEqual(yield* failure(read(store, "doc.bin", always(newKek))), ["DecryptError", "NoUsableKey"])
      assert.isTrue((yield* raw(store, "doc.bin")).bytes.equals(before.bytes))
    }), 120_000)

  it.scoped("keeps protocol 2.1 and its region size", () =>
    Effect.gen(function*() {
      const { store } = yield* setup
      const a = Cse.aesKeyWrap("a", Redacted.make(new Uint8Array(crypto.randomBytes(32))))
      const b = Cse.aesKeyWrap("b", Redacted.make(new Uint8Array(crypto.randomBytes(32))))
      const body = crypto.randomBytes(70_000)
      yield* Cse.put(store, "v21", Stream.make(body), a, { protocol: "2.1", regionDataLength: 16 * 1024 })
      const r = yield* Cse.rekey(store, "v21", Cse.resolverOf(a), b)
      assert.strictEqual(r.protocol, "2.1")
      const d = yield* Cse.parseEncryptionData("v21", (yield* store.head("v21")).metadata)
      assert.deepStrictEqual([d.protocol, d.dataLength, d.keyId], ["2.1", 16 * 1024, "b"])
      assert.isTrue((yield* read(store, "v21", Cse.resolverOf(b))).equals(body))
    }), 120_000)

  it.scoped("a wrong or unknown current key is a typed error and the blob is left as it was", () =>
    Effect.gen(function*() {
      const { store } = yield* setup
      const owner = Cse.aesKeyWrap("owner", Redacted.make(new Uint8Array(crypto.randomBytes(32))))
      const impostor = Cse.aesKeyWrap("owner", Redacted.make(new Uint8Array(crypto.randomBytes(32))))
      const target = Cse.aesKeyWrap("target", Redacted.make(new Uint8Array(crypto.randomBytes(32))))
      yield* Cse.put(store, "kept", Stream.make(crypto.randomBytes(5000)), owner)
      const before = yield* raw(store, "kept")
      assert.deepStrictEqual(yield* failure(Cse.rekey(store, "kept", Cse.resolverOf(impostor), target)), ["DecryptError", "WrongKey"])
      assert.deepStrictEqual(yield* failure(Cse.rekey(store, "kept", Cse.resolverOf(target), target)), ["DecryptError", "NoUsableKey"])
      const after = yield* raw(store, "kept")
      assert.strictEqual(after.info.etag, before.info.etag)
      assert.deepStrictEqual(after.info.metadata, before.info.metadata)
      assert.isTrue(after.bytes.equals(before.bytes))
      assert.isTrue((yield* read(store, "kept", Cse.resolverOf(owner))).length === 5000)
    }), 120_000)

  it.scoped("a blob replaced between reading its key and the copy keeps the new writer's body and metadata", () =>
    Effect.gen(function*() {
      const { store } = yield* setup
      const a = Cse.aesKeyWrap("a", Redacted.make(new Uint8Array(crypto.randomBytes(32))))
      const b = Cse.aesKeyWrap("b", Redacted.make(new Uint8Array(crypto.randomBytes(32))))
      yield* Cse.put(store, "race", Stream.make(crypto.randomBytes(3000)), a)
      const racing: ObjectStore.ObjectStore["Type"] = {
        ...store,
        head: (key, options) =>
          Effect.tap(store.head(key, options), () => key === "race" ? Effect.orDie(store.put("race", Stream.make(Buffer.from("second writer")), { metadata: { v: "2" } })) : Effect.void)
      }
      assert.strictEqual((yield* failure(Cse.rekey(racing, "race", Cse.resolverOf(a), b)))[0], "PreconditionFailed")
      const now = yield* raw(store, "race")
      assert.strictEqual(now.bytes.toString(), "second writer")
      assert.deepStrictEqual(now.info.metadata, { v: "2" })
    }), 120_000)

  it.scoped("refuses blobs without encryptiondata, with malformed encryptiondata, and missing blobs", () =>
    Effect.gen(function*() {
      const { store } = yield* setup
      const k = Cse.aesKeyWrap("k", Redacted.make(new Uint8Array(crypto.randomBytes(32))))
      yield* store.put("plain", Stream.make(Buffer.from("plain")), {})
      yield* store.put("broken", Stream.make(Buffer.from("broken")), { metadata: { [Cse.METADATA_KEY]: "{not json" } })
      assert.deepStrictEqual(yield* failure(Cse.rekey(store, "plain", Cse.resolverOf(k), k)), ["DecryptError", "MissingMetadata"])
      assert.deepStrictEqual(yield* failure(Cse.rekey(store, "broken", Cse.resolverOf(k), k)), ["DecryptError", "MalformedMetadata"])
      assert.deepStrictEqual((yield* failure(Cse.rekey(store, "absent", Cse.resolverOf(k), k)))[0], "ObjectNotFound")
    }), 120_000)
})
