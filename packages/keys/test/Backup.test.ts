import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Redacted } from "effect"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Backup from "../src/Backup.js"
import { KeyManager } from "../src/KeyManager.js"
import * as LocalKeyStore from "../src/LocalKeyStore.js"
import * as DirObjectStore from "./fixtures/DirObjectStore.js"
import { config, lowCost, readFile, tmpDir, writeFile } from "./helpers.js"

const backupPass = Redacted.make("a different backup passphrase")
const opts = { passphrase: backupPass, ...lowCost }

const storeAt = (file: string) =>
  Effect.map(Layer.build(LocalKeyStore.layer(config(file))), (ctx) => Context.get(ctx, KeyManager))

const withManager = <A, E, R>(manager: KeyManager["Type"], effect: Effect.Effect<A, E, R>) =>
  Effect.provideService(effect, KeyManager, manager)

const exportRaw = (m: KeyManager["Type"], ref: string) =>
  Effect.map(m.export(ref, { format: "hex" }), (r) => Buffer.from(Redacted.value(r)).toString())

describe("Backup", () => {
  it.scoped("backs the whole store up to a file (0600) and restores it into an empty store", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const source = yield* storeAt(path.join(dir, "a.ocks"))
      yield* source.generate({ name: "data" })
      yield* source.rotate("data")
      yield* source.generate({ name: "me", algorithm: "x25519" })
      yield* source.setAlias("current", "data")
      const file = path.join(dir, "backups", "keys.ocbk")
      yield* withManager(source, Backup.toFile(file, opts))
      assert.strictEqual((yield* Effect.promise(() => fs.stat(file))).mode & 0o777, 0o600)
      assert.strictEqual((yield* readFile(file)).subarray(0, 8).toString("latin1"), "OBJCBKUP")

      const target = yield* storeAt(path.join(dir, "b.ocks"))
      const report = yield* withManager(target, Backup.fromFile(file, backupPass))
      assert.deepStrictEqual([...report.added].sort(), ["data", "me"])
      const restored = yield* target.show("alias/current")
      assert.strictEqual(restored.id, (yield* source.show("data")).id)
      assert.strictEqual(restored.primaryVersion, 2)
      assert.strictEqual(yield* exportRaw(target, "data@1"), yield* exportRaw(source, "data@1"))
      assert.strictEqual(yield* exportRaw(target, "data@2"), yield* exportRaw(source, "data@2"))
    }))

  it.scoped("verify reports contents without restoring", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const source = yield* storeAt(path.join(dir, "a.ocks"))
      yield* source.generate({ name: "data" })
      const bytes = yield* withManager(source, Backup.create(opts))
      const v = yield* Backup.verify(bytes, backupPass)
      assert.deepStrictEqual(v.info.keys.map((k) => [k.name, k.versions]), [["data", 1]])
      assert.strictEqual(v.info.source, path.join(dir, "a.ocks"))
    }))

  it.scoped("a wrong backup passphrase, a truncated or a tampered bundle fail before anything changes", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const source = yield* storeAt(path.join(dir, "a.ocks"))
      yield* source.generate({ name: "data" })
      const bytes = Buffer.from(yield* withManager(source, Backup.create(opts)))
      const targetFile = path.join(dir, "b.ocks")
      const target = yield* storeAt(targetFile)
      yield* target.generate({ name: "existing" })
      const before = yield* readFile(targetFile)

      const wrong = yield* Effect.flip(withManager(target, Backup.restore(bytes, Redacted.make("nope"), { mode: "replace" })))
      assert.strictEqual(wrong.reason, "WrongPassphrase")
      const cases: Array<[string, Uint8Array]> = [
        ["truncated by one byte", bytes.subarray(0, bytes.length - 1)],
        ["truncated to half", bytes.subarray(0, bytes.length >> 1)],
        ["header only", bytes.subarray(0, 73)],
        ["empty", new Uint8Array(0)],
        ["extended", Buffer.concat([bytes, Buffer.from([0])])]
      ]
      for (const i of [9, 20, 50, 80, bytes.length - 100, bytes.length - 1]) {
        const t = Buffer.from(bytes)
        t[i] = t[i]! ^ 0x80
        cases.push([`byte ${i} flipped`, t])
      }
      for (const [label, bad] of cases) {
        const e = yield* Effect.flip(withManager(target, Backup.restore(bad, backupPass, { mode: "replace" })))
        assert.strictEqual(e._tag, "KeyStoreError", label)
        assert.strictEqual(e.reason, "Corrupt", label)
        assert.isTrue((yield* readFile(targetFile)).equals(before), label)
      }
      // A key store file is not a bundle, and vice versa.
      const notBundle = yield* Effect.flip(Backup.verify(before, backupPass))
      assert.strictEqual(notBundle.reason, "Corrupt")
      yield* writeFile(path.join(dir, "c.ocks"), bytes)
      const notStore = yield* Effect.flip(LocalKeyStore.make(config(path.join(dir, "c.ocks"))))
      assert.strictEqual(notStore.reason, "Corrupt")
      const missing = yield* Effect.flip(withManager(target, Backup.fromFile(path.join(dir, "none"), backupPass)))
      assert.strictEqual(missing.reason, "Io")
    }))

  it.scoped("merge adds missing keys and versions, keeps local ones, and refuses conflicts atomically", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const source = yield* storeAt(path.join(dir, "a.ocks"))
      yield* source.generate({ name: "shared" })
      const early = yield* withManager(source, Backup.create(opts))
      yield* source.rotate("shared")
      yield* source.generate({ name: "new" })
      const late = yield* withManager(source, Backup.create(opts))

      // A store restored from the early bundle, with a key of its own, merges the late one.
      const targetFile = path.join(dir, "b.ocks")
      const target = yield* storeAt(targetFile)
      yield* withManager(target, Backup.restore(early, backupPass))
      yield* target.generate({ name: "local-only" })
      const report = yield* withManager(target, Backup.restore(late, backupPass, { mode: "merge" }))
      assert.deepStrictEqual(report.added, ["new"])
      assert.deepStrictEqual(report.updated, ["shared"])
      assert.strictEqual((yield* target.show("shared")).primaryVersion, 2)
      assert.deepStrictEqual((yield* target.list()).map((k) => k.name).sort(), ["local-only", "new", "shared"])
      const again = yield* withManager(target, Backup.restore(late, backupPass))
      assert.deepStrictEqual(again.unchanged.slice().sort(), ["new", "shared"])

      // A different key with a name already taken: refused, nothing changed.
      const other = yield* storeAt(path.join(dir, "c.ocks"))
      yield* other.generate({ name: "local-only" })
      yield* other.generate({ name: "unrelated" })
      const conflicting = yield* withManager(other, Backup.create(opts))
      const before = yield* readFile(targetFile)
      const e = yield* Effect.flip(withManager(target, Backup.restore(conflicting, backupPass)))
      assert.strictEqual(e.reason, "Exists")
      assert.include(e.message, "local-only")
      assert.isTrue((yield* readFile(targetFile)).equals(before))
      // Replace swaps the whole store.
      const replaced = yield* withManager(target, Backup.restore(conflicting, backupPass, { mode: "replace" }))
      assert.strictEqual(replaced.mode, "replace")
      assert.deepStrictEqual((yield* target.list()).map((k) => k.name).sort(), ["local-only", "unrelated"])
    }))

  it.scoped("an export bundle of selected keys carries only those", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const source = yield* storeAt(path.join(dir, "a.ocks"))
      yield* source.generate({ name: "a" })
      yield* source.generate({ name: "b" })
      yield* source.setAlias("x", "a")
      yield* source.setAlias("y", "b")
      const bundle = yield* withManager(source, Backup.create({ ...opts, keys: ["alias/x"] }))
      const v = yield* Backup.verify(bundle, backupPass)
      assert.deepStrictEqual(v.info.keys.map((k) => k.name), ["a"])
      const e = yield* Effect.flip(withManager(source, Backup.create({ ...opts, keys: ["nope"] })))
      assert.strictEqual(e._tag, "KeyNotFound")
    }))

  it.scoped("backs up to an ObjectStore and restores from it", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const source = yield* storeAt(path.join(dir, "a.ocks"))
      yield* source.generate({ name: "data" })
      const key = Backup.timestampedKey("backups/", new Date("2026-01-02T03:04:05.678Z"))
      assert.strictEqual(key, "backups/keys-2026-01-02T03-04-05-678Z.ocbk")
      const store = DirObjectStore.layer(path.join(dir, "bucket"))
      const put = yield* withManager(source, Backup.toObjectStore(key, opts)).pipe(Effect.provide(store))
      assert.isAbove(put.size, 73)
      const target = yield* storeAt(path.join(dir, "b.ocks"))
      const report = yield* withManager(target, Backup.fromObjectStore(key, backupPass)).pipe(Effect.provide(store))
      assert.deepStrictEqual(report.added, ["data"])
      const missing = yield* Effect.flip(withManager(target, Backup.fromObjectStore("nope", backupPass)).pipe(Effect.provide(store)))
      assert.strictEqual(missing._tag, "ObjectNotFound")
      // Listing shows the backup under its timestamped key.
      const listed = yield* Effect.flatMap(ObjectStore.ObjectStore, (s) => s.list()).pipe(Effect.provide(store))
      assert.deepStrictEqual(listed.objects.map((o) => o.key), [key])
    }))

  it.scoped("backup passphrases below the minimum cost are refused unless allowLowCost", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const source = yield* storeAt(path.join(dir, "a.ocks"))
      const e = yield* Effect.flip(withManager(source, Backup.create({ passphrase: backupPass, scrypt: { log2N: 12, r: 8, p: 1 } })))
      assert.strictEqual(e._tag === "KeyStoreError" && e.reason, "Invalid")
    }))
})
