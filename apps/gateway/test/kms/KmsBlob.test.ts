/**
 * The ciphertext blob layout of docs/KMS.md: its test vector, and that it is the local KMS's
 * layout (a blob sealed by `LocalKms` opens with `KmsBlob` under the same key and vice versa).
 */
import { assert, describe, it } from "@effect/vitest"
import { KeyManager } from "@objcrypt/keys/KeyManager"
import * as LocalKeyStore from "@objcrypt/keys/LocalKeyStore"
import * as LocalKms from "@objcrypt/keys/LocalKms"
import { Effect, Option, Redacted } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as KmsBlob from "../../src/kms/KmsBlob.js"

const docs = fs.readFileSync(path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../../docs/KMS.md"), "utf8")
/** A `name: value` line of the test vector section in docs/KMS.md. */
const field = (name: string) => {
  const m = new RegExp(`^- ${name}: \`([^\`]*)\``, "m").exec(docs)
  assert.isNotNull(m, `docs/KMS.md has no ${name}`)
  return m![1]!
}

const vector = () => ({
  key: crypto.createSecretKey(Buffer.from(field("master key"), "hex")),
  keyId: field("key id"),
  version: Number(field("version")),
  iv: Buffer.from(field("nonce"), "hex"),
  context: JSON.parse(field("encryption context")) as Record<string, string>,
  aad: field("canonical context"),
  plaintext: Buffer.from(field("plaintext"), "utf8"),
  blob: Buffer.from(field("blob \\(hex\\)"), "hex"),
  base64: field("CiphertextBlob \\(base64, as in JSON\\)")
})

describe("KmsBlob", () => {
  it("seals the docs/KMS.md test vector byte for byte", () => {
    const v = vector()
    const sealed = KmsBlob.seal(v.key, v.keyId, v.version, v.plaintext, v.context, v.iv)
    assert.strictEqual(Buffer.from(sealed).toString("hex"), v.blob.toString("hex"))
    assert.strictEqual(Buffer.from(sealed).toString("base64"), v.base64)
    assert.strictEqual(LocalKms.canonicalContext(v.context).toString("utf8"), v.aad)
  })

  it("opens the test vector, and names key and version without decrypting", () => {
    const v = vector()
    const parsed = Option.getOrThrow(KmsBlob.parse(v.blob))
    assert.deepStrictEqual([parsed.keyId, parsed.version], [v.keyId, v.version])
    assert.strictEqual(Option.getOrThrow(KmsBlob.open(v.key, parsed, v.context)).toString("utf8"), v.plaintext.toString("utf8"))
    // The context's order does not matter; its content does.
    const reordered = Object.fromEntries(Object.entries(v.context).reverse())
    assert.isTrue(Option.isSome(KmsBlob.open(v.key, parsed, reordered)))
  })

  it("refuses a wrong context, a wrong key and every flipped bit of header, body and tag", () => {
    const v = vector()
    const parsed = Option.getOrThrow(KmsBlob.parse(v.blob))
    assert.isTrue(Option.isNone(KmsBlob.open(v.key, parsed, {})))
    assert.isTrue(Option.isNone(KmsBlob.open(v.key, parsed, { ...v.context, bucket: "other" })))
    assert.isTrue(Option.isNone(KmsBlob.open(crypto.createSecretKey(crypto.randomBytes(32)), parsed, v.context)))
    for (let i = 4; i < v.blob.length; i++) {
      const t = Buffer.from(v.blob)
      t[i] = t[i]! ^ 0x80
      const p = KmsBlob.parse(t)
      assert.isTrue(Option.isNone(Option.flatMap(p, (x) => KmsBlob.open(v.key, x, v.context))), `byte ${i}`)
    }
  })

  it("does not parse blobs of another format or too short", () => {
    const v = vector()
    for (const bad of [v.blob.subarray(0, 51), Buffer.concat([Buffer.from([0x6f, 0x63, 0x48, 0x01]), v.blob.subarray(4)]), Buffer.alloc(0)]) {
      assert.isTrue(Option.isNone(KmsBlob.parse(bad)))
    }
  })

  it.effect("is the local KMS's layout: LocalKms and KmsBlob open each other's blobs", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-kmsblob-"))
      const material = crypto.randomBytes(32)
      const store = yield* LocalKeyStore.make({
        path: path.join(dir, "keys.ocks"),
        passphrase: Redacted.make("blob test"),
        allowLowCost: true,
        scrypt: { log2N: 10, r: 8, p: 1 }
      })
      const details = yield* store.manager.import({ name: "wrap", material: Redacted.make(material), format: "raw" })
      const kms = yield* LocalKms.make.pipe(Effect.provideService(KeyManager, store.manager))
      const key = crypto.createSecretKey(material)
      const ctx = { a: "b" }
      const theirs = yield* kms.encrypt("wrap", Redacted.make(new Uint8Array([7, 7, 7])), ctx)
      const parsed = Option.getOrThrow(KmsBlob.parse(theirs.ciphertext))
      assert.deepStrictEqual([parsed.keyId, parsed.version], [details.id, 1])
      assert.deepStrictEqual([...Option.getOrThrow(KmsBlob.open(key, parsed, ctx))], [7, 7, 7])
      const ours = KmsBlob.seal(key, details.id, 1, new Uint8Array([9, 9]), ctx)
      assert.deepStrictEqual([...Redacted.value((yield* kms.decrypt(ours, ctx)).plaintext)], [9, 9])
      fs.rmSync(dir, { recursive: true, force: true })
    }))
})
