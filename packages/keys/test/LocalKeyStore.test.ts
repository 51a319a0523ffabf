import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as LocalKeyStore from "../src/LocalKeyStore.js"
import { config, exists, openStore, passphrase, readFile, tmpDir, writeFile } from "./helpers.js"

const raw = crypto.randomBytes(32)

describe("LocalKeyStore file", () => {
  it.scoped("is created on the first write, mode 0600 in a 0700 directory, with the documented header", () =>
    Effect.gen(function*() {
      const { file, manager } = yield* openStore()
      assert.isFalse(yield* exists(file))
      yield* manager.generate({ name: "data" })
      const st = yield* Effect.promise(() => fs.stat(file))
      assert.strictEqual(st.mode & 0o777, 0o600)
      assert.strictEqual((yield* Effect.promise(() => fs.stat(path.dirname(file)))).mode & 0o777, 0o700)
      const bytes = yield* readFile(file)
      assert.strictEqual(bytes.subarray(0, 8).toString("latin1"), "OBJCKEYS")
      assert.strictEqual(bytes[8], 1)
      assert.strictEqual(bytes[10], 10)
      // The key never appears in plaintext.
      const leaked = yield* manager.export("data", { format: "raw" })
      assert.strictEqual(bytes.indexOf(Buffer.from(Redacted.value(leaked))), -1)
      const dirEntries = yield* Effect.promise(() => fs.readdir(path.dirname(file)))
      assert.deepStrictEqual(dirEntries, ["store.ocks"])
    }))

  it.scoped("a store written with too-permissive mode is rewritten 0600", () =>
    Effect.gen(function*() {
      const { file, manager } = yield* openStore()
      yield* manager.generate({ name: "a" })
      yield* Effect.promise(() => fs.chmod(file, 0o644))
      const again = yield* LocalKeyStore.make(config(file))
      yield* again.manager.generate({ name: "b" })
      assert.strictEqual((yield* Effect.promise(() => fs.stat(file))).mode & 0o777, 0o600)
    }))

  it.scoped("reopens with the same passphrase and sees the keys", () =>
    Effect.gen(function*() {
      const { file, manager } = yield* openStore()
      const created = yield* manager.generate({ name: "data", description: "bucket keys" })
      const again = yield* LocalKeyStore.make(config(file))
      const shown = yield* again.manager.show("data")
      assert.strictEqual(shown.id, created.id)
      assert.strictEqual(shown.description, "bucket keys")
      assert.strictEqual(shown.versions[0]!.fingerprint, created.versions[0]!.fingerprint)
    }))

  it.scoped("a wrong passphrase is WrongPassphrase, on open and on write, and the file is untouched", () =>
    Effect.gen(function*() {
      const { file, manager } = yield* openStore()
      yield* manager.generate({ name: "data" })
      const before = yield* readFile(file)
      const e = yield* Effect.flip(LocalKeyStore.make(config(file, { passphrase: Redacted.make("wrong") })))
      assert.strictEqual(e._tag, "KeyStoreError")
      assert.strictEqual(e.reason, "WrongPassphrase")
      // A handle opened with the right passphrase, after which another process changed it: writes are refused too.
      const good = yield* LocalKeyStore.make(config(file))
      yield* manager.changePassphrase(Redacted.make("new passphrase"))
      const changed = yield* readFile(file)
      const e2 = yield* Effect.flip(good.manager.generate({ name: "other" }))
      assert.strictEqual(e2._tag === "KeyStoreError" && e2.reason, "WrongPassphrase")
      assert.isTrue((yield* readFile(file)).equals(changed))
      assert.isFalse(before.equals(changed))
      const reopened = yield* LocalKeyStore.make(config(file, { passphrase: Redacted.make("new passphrase") }))
      assert.strictEqual((yield* reopened.manager.list()).length, 1)
      assert.strictEqual((yield* Effect.flip(LocalKeyStore.make(config(file)))).reason, "WrongPassphrase")
    }))

  it.scoped("corrupted, truncated, empty or foreign files are Corrupt and never overwritten", () =>
    Effect.gen(function*() {
      const { file, manager } = yield* openStore()
      yield* manager.generate({ name: "data" })
      const good = yield* readFile(file)
      const flip = (i: number) => {
        const b = Buffer.from(good)
        b[i] = b[i]! ^ 0x01
        return b
      }
      const cases: Array<[string, Buffer]> = [
        ["body bit flip", flip(good.length - 40)],
        ["tag bit flip", flip(good.length - 1)],
        ["nonce bit flip", flip(30)],
        ["scrypt cost changed", flip(10)],
        ["truncated body", good.subarray(0, good.length - 10)],
        ["truncated header", good.subarray(0, 40)],
        ["trailing bytes", Buffer.concat([good, Buffer.from("x")])],
        ["empty file", Buffer.alloc(0)],
        ["foreign file", Buffer.from("this is not a key store at all, just text")]
      ]
      for (const [label, bytes] of cases) {
        yield* writeFile(file, bytes)
        const e = yield* Effect.flip(LocalKeyStore.make(config(file)))
        assert.strictEqual(e.reason, "Corrupt", label)
        const e2 = yield* Effect.flip(manager.generate({ name: "other" }))
        assert.strictEqual(e2._tag === "KeyStoreError" && e2.reason, "Corrupt", label)
        assert.isTrue((yield* readFile(file)).equals(bytes), label)
      }
    }))

  it.scoped("refuses scrypt cost below 2^15 unless allowLowCost", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const e = yield* Effect.flip(
        LocalKeyStore.make({ path: path.join(dir, "s"), passphrase, scrypt: { log2N: 10, r: 8, p: 1 } })
      )
      assert.strictEqual(e.reason, "Invalid")
    }))

  it.scoped("the default cost (N = 2^17) opens in a reasonable time", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const file = path.join(dir, "s")
      const s = yield* LocalKeyStore.make({ path: file, passphrase })
      yield* s.manager.generate({ name: "k" })
      assert.strictEqual((yield* readFile(file))[10], 17)
      const t0 = Date.now()
      yield* LocalKeyStore.make({ path: file, passphrase })
      assert.isBelow(Date.now() - t0, 10_000)
    }), { timeout: 60_000 })
})

describe("LocalKeyStore keys", () => {
  it.scoped("generate and import: duplicate names and bad names are refused", () =>
    Effect.gen(function*() {
      const { manager } = yield* openStore()
      const a = yield* manager.generate({ name: "data" })
      assert.strictEqual(a.algorithm, "aes-256")
      assert.strictEqual(a.purpose, "wrap")
      assert.strictEqual(a.primaryVersion, 1)
      const dup = yield* Effect.flip(manager.generate({ name: "data" }))
      assert.strictEqual(dup._tag === "KeyStoreError" && dup.reason, "Exists")
      const dup2 = yield* Effect.flip(manager.import({ name: "data", material: Redacted.make(raw), format: "raw" }))
      assert.strictEqual(dup2._tag === "KeyStoreError" && dup2.reason, "Exists")
      for (const name of ["", "a b", "x/y", "k@1", "-lead", "alias/x", crypto.randomUUID(), "x".repeat(129)]) {
        const bad = yield* Effect.flip(manager.generate({ name }))
        assert.strictEqual(bad._tag === "KeyStoreError" && bad.reason, "Invalid", name)
      }
      const wrongPurpose = yield* Effect.flip(manager.generate({ name: "r", algorithm: "x25519", purpose: "wrap" }))
      assert.strictEqual(wrongPurpose._tag === "KeyStoreError" && wrongPurpose.reason, "Invalid")
      assert.strictEqual((yield* manager.list()).length, 1)
    }))

  it.scoped("import of a 31-byte key is WrongLength and stores nothing", () =>
    Effect.gen(function*() {
      const { manager, file } = yield* openStore()
      const e = yield* Effect.flip(manager.import({ name: "short", material: Redacted.make(crypto.randomBytes(31)), format: "raw" }))
      assert.strictEqual(e._tag, "InvalidCustomerKey")
      assert.strictEqual(e._tag === "InvalidCustomerKey" && e.reason, "WrongLength")
      assert.isFalse(yield* exists(file))
    }))

  it.scoped("import and export round trip in every encoding; the core contract resolves it", () =>
    Effect.gen(function*() {
      const { manager, keyStore } = yield* openStore()
      const info = yield* manager.import({ name: "sse", material: Redacted.make(raw.toString("base64")), purpose: "sse-c" })
      assert.strictEqual(info.purpose, "sse-c")
      assert.strictEqual(info.versions[0]!.origin, "imported")
      for (const format of ["raw", "base64", "hex", "jwk"] as const) {
        const out = yield* manager.export("sse", { format })
        const back = yield* manager.import({ name: `sse-${format}`, material: out, format })
        assert.strictEqual(back.versions[0]!.fingerprint, info.versions[0]!.fingerprint)
      }
      const resolved = yield* keyStore.resolve("sse")
      assert.strictEqual(resolved._tag, "Symmetric")
      assert.isTrue(resolved._tag === "Symmetric" && Buffer.from(Redacted.value(resolved.material)).equals(raw))
      const byId = yield* keyStore.resolveId(info.id, 1)
      assert.strictEqual(byId.info.name, "sse")
    }))

  it.scoped("asymmetric keys: recipients (public only) and key pairs", () =>
    Effect.gen(function*() {
      const { manager, keyStore } = yield* openStore()
      const pair = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
      const pub = pair.publicKey.export({ format: "pem", type: "spki" }).toString()
      yield* manager.import({ name: "partner", material: Redacted.make(pub) })
      const r = yield* keyStore.resolve("partner")
      assert.strictEqual(r._tag, "PublicKey")
      assert.isTrue(r._tag === "PublicKey" && r.publicKey.equals(pair.publicKey))
      assert.isFalse((yield* manager.show("partner")).versions[0]!.hasPrivate)
      const gen = yield* manager.generate({ name: "me", algorithm: "x25519" })
      assert.strictEqual(gen.purpose, "recipient")
      const kp = yield* keyStore.resolve("me")
      assert.strictEqual(kp._tag, "KeyPair")
      const pem = Buffer.from(Redacted.value(yield* manager.export("me", { format: "pem" }))).toString()
      assert.match(pem, /BEGIN PUBLIC KEY/)
      const privatePem = Buffer.from(Redacted.value(yield* manager.export("me", { format: "pem", includePrivate: true }))).toString()
      assert.match(privatePem, /BEGIN PRIVATE KEY/)
      const noPriv = yield* Effect.flip(manager.export("partner", { format: "pem", includePrivate: true }))
      assert.strictEqual(noPriv._tag === "InvalidCustomerKey" && noPriv.reason, "Missing")
      const noRotate = yield* Effect.flip(manager.rotate("partner"))
      assert.strictEqual(noRotate._tag === "InvalidCustomerKey" && noRotate.reason, "Missing")
      const newPub = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ format: "pem", type: "spki" }).toString()
      assert.strictEqual((yield* manager.rotate("partner", { material: Redacted.make(newPub) })).primaryVersion, 2)
      const x = crypto.generateKeyPairSync("x25519").publicKey.export({ format: "pem", type: "spki" }).toString()
      const mismatch = yield* Effect.flip(manager.rotate("partner", { material: Redacted.make(x) }))
      assert.strictEqual(mismatch._tag === "InvalidCustomerKey" && mismatch.reason, "UnsupportedAlgorithm")
      assert.strictEqual((yield* manager.rotate("me")).primaryVersion, 2)
    }))

  it.scoped("non-extractable keys refuse export of secret material", () =>
    Effect.gen(function*() {
      const { manager } = yield* openStore()
      yield* manager.generate({ name: "locked", extractable: false })
      const e = yield* Effect.flip(manager.export("locked", { format: "raw" }))
      assert.strictEqual(e._tag, "KeyUnusable")
      assert.match(e.message, /not extractable/)
      yield* manager.generate({ name: "pair", algorithm: "x25519", extractable: false })
      yield* manager.export("pair", { format: "pem" })
      assert.strictEqual((yield* Effect.flip(manager.export("pair", { format: "pem", includePrivate: true })))._tag, "KeyUnusable")
    }))

  it.scoped("unknown key ids and versions are KeyNotFound everywhere", () =>
    Effect.gen(function*() {
      const { manager, keyStore } = yield* openStore()
      const k = yield* manager.generate({ name: "data" })
      const ops = [
        manager.show("nope"),
        manager.export("nope", { format: "raw" }),
        manager.export("data@7", { format: "raw" }),
        manager.rotate("nope"),
        manager.delete("nope"),
        manager.disable("data@9"),
        manager.versionsOf("nope"),
        manager.primaryOf("alias/nope"),
        manager.resolveRef("data@2"),
        manager.rename("nope", "x"),
        manager.setAlias("a", "nope"),
        manager.removeAlias("nope"),
        keyStore.resolve("nope"),
        keyStore.resolve("data", 2),
        keyStore.resolveId(crypto.randomUUID(), 1),
        keyStore.resolveId(k.id, 3)
      ]
      for (const op of ops) {
        const e = yield* Effect.flip(op as Effect.Effect<unknown, { readonly _tag: string }>)
        assert.strictEqual(e._tag, "KeyNotFound")
      }
    }))

  it.scoped("rotate: the new version is primary, old versions still resolve for decryption", () =>
    Effect.gen(function*() {
      const { manager, keyStore } = yield* openStore()
      const v1 = yield* manager.generate({ name: "data" })
      const v2 = yield* manager.rotate("data")
      assert.strictEqual(v2.id, v1.id)
      assert.strictEqual(v2.primaryVersion, 2)
      assert.deepStrictEqual(v2.versions.map((v) => [v.version, v.primary]), [[1, false], [2, true]])
      assert.notStrictEqual(v2.versions[0]!.fingerprint, v2.versions[1]!.fingerprint)
      assert.strictEqual((yield* keyStore.resolve("data")).info.version, 2)
      assert.strictEqual((yield* keyStore.resolveId(v1.id, 1)).info.version, 1)
      assert.isFalse((yield* keyStore.resolveId(v1.id, 1)).info.primary)
      const versions = yield* manager.versionsOf("data")
      assert.deepStrictEqual(versions.map((v) => v.version), [1, 2])
      const old = yield* manager.primaryOf(`${v1.id}@1`)
      assert.deepStrictEqual({ ...old }, { id: v1.id, name: "data", version: 1, primaryVersion: 2, isPrimary: false })
      assert.isTrue((yield* manager.primaryOf(`${v1.id}@2`)).isPrimary)
      assert.isTrue((yield* manager.primaryOf("data")).isPrimary)
      const imported = yield* manager.rotate("data", { material: Redacted.make(raw.toString("hex")) })
      assert.strictEqual(imported.versions[2]!.origin, "imported")
      const all = yield* keyStore.list
      assert.strictEqual(all.length, 3)
    }))

  it.scoped("disable and enable a key or a version; the primary version cannot be disabled alone", () =>
    Effect.gen(function*() {
      const { manager, keyStore } = yield* openStore()
      const k = yield* manager.generate({ name: "data" })
      yield* manager.rotate("data")
      yield* manager.disable("data@1")
      const e = yield* Effect.flip(keyStore.resolveId(k.id, 1))
      assert.strictEqual(e._tag === "KeyStoreError" && e.reason, "Refused")
      assert.strictEqual((yield* Effect.flip(manager.resolveRef("data@1")))._tag, "KeyUnusable")
      const p = yield* Effect.flip(manager.disable("data@2"))
      assert.strictEqual(p._tag === "KeyStoreError" && p.reason, "Refused")
      yield* manager.disable("data")
      assert.strictEqual((yield* Effect.flip(keyStore.resolve("data")))._tag, "KeyStoreError")
      assert.strictEqual((yield* Effect.flip(manager.rotate("data")))._tag, "KeyUnusable")
      yield* manager.enable("data")
      yield* manager.enable("data@1")
      assert.strictEqual((yield* keyStore.resolveId(k.id, 1)).info.state, "enabled")
    }))

  it.scoped("delete: refused for an enabled key or the primary version unless forced; recoverable until purged", () =>
    Effect.gen(function*() {
      const { manager, keyStore } = yield* openStore()
      const k = yield* manager.generate({ name: "data" })
      const e = yield* Effect.flip(manager.delete("data"))
      assert.strictEqual(e._tag === "KeyStoreError" && e.reason, "Refused")
      assert.strictEqual((yield* manager.show("data")).state, "enabled")
      const only = yield* Effect.flip(manager.delete("data@1", { force: true }))
      assert.strictEqual(only._tag === "KeyStoreError" && only.reason, "Refused")
      yield* manager.rotate("data")
      const prim = yield* Effect.flip(manager.delete("data@2"))
      assert.strictEqual(prim._tag === "KeyStoreError" && prim.reason, "Refused")
      // A non-primary version deletes without force, and is not found until undeleted.
      yield* manager.delete("data@1")
      assert.strictEqual((yield* Effect.flip(keyStore.resolveId(k.id, 1)))._tag, "KeyNotFound")
      assert.strictEqual((yield* Effect.flip(manager.purge("data@2")))._tag, "KeyStoreError")
      yield* manager.undelete("data@1")
      yield* manager.enable("data@1")
      assert.strictEqual((yield* keyStore.resolveId(k.id, 1)).info.version, 1)
      // Forced deletion of the primary version promotes the newest remaining one.
      const forced = yield* manager.delete("data@2", { force: true })
      assert.strictEqual(forced.primaryVersion, 1)
      // The whole key: disable then delete; hidden from list, name reserved, then undelete.
      yield* manager.disable("data")
      yield* manager.delete("data")
      assert.strictEqual((yield* manager.list()).length, 0)
      assert.strictEqual((yield* manager.list({ includeDeleted: true }))[0]!.state, "deleted")
      assert.strictEqual((yield* Effect.flip(keyStore.resolve("data")))._tag, "KeyNotFound")
      const reserved = yield* Effect.flip(manager.generate({ name: "data" }))
      assert.strictEqual(reserved._tag === "KeyStoreError" && reserved.reason, "Exists")
      assert.include(reserved.message, "purge")
      const undeleted = yield* manager.undelete("data")
      assert.strictEqual(undeleted.state, "disabled")
      yield* manager.enable("data")
      assert.strictEqual((yield* keyStore.resolve("data")).info.id, k.id)
      // Forced delete of an enabled key, then purge: gone for good, aliases too.
      yield* manager.setAlias("current", "data")
      const notDeleted = yield* Effect.flip(manager.purge("data"))
      assert.strictEqual(notDeleted._tag === "KeyStoreError" && notDeleted.reason, "Refused")
      yield* manager.delete("data", { force: true })
      yield* manager.purge("data")
      assert.strictEqual((yield* manager.list({ includeDeleted: true })).length, 0)
      assert.strictEqual((yield* Effect.flip(manager.show("alias/current")))._tag, "KeyNotFound")
      assert.strictEqual((yield* Effect.flip(manager.undelete("data")))._tag, "KeyNotFound")
      yield* manager.generate({ name: "data" })
    }))

  it.scoped("rename keeps the stable id; aliases resolve and can be re-pointed and removed", () =>
    Effect.gen(function*() {
      const { manager, keyStore } = yield* openStore()
      const a = yield* manager.generate({ name: "a" })
      const b = yield* manager.generate({ name: "b" })
      const renamed = yield* manager.rename("a", "a2")
      assert.strictEqual(renamed.id, a.id)
      assert.strictEqual((yield* Effect.flip(manager.rename("a2", "b")))._tag, "KeyStoreError")
      yield* manager.setAlias("alias/current", "a2")
      assert.strictEqual((yield* keyStore.resolve("alias/current")).info.id, a.id)
      assert.deepStrictEqual((yield* manager.show("a2")).aliases, ["current"])
      yield* manager.setAlias("current", b.id)
      assert.strictEqual((yield* keyStore.resolve("alias/current")).info.id, b.id)
      // Without an explicit alias, alias/<name> names the key.
      assert.strictEqual((yield* keyStore.resolve("alias/a2")).info.id, a.id)
      yield* manager.removeAlias("alias/current")
      assert.strictEqual((yield* Effect.flip(keyStore.resolve("alias/current")))._tag, "KeyNotFound")
      const bad = yield* Effect.flip(manager.setAlias("bad alias", "a2"))
      assert.strictEqual(bad._tag === "KeyStoreError" && bad.reason, "Invalid")
    }))
})
