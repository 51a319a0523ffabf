import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Ref } from "effect"
import { KeyStore } from "@objcrypt/core/KeyStore"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as AuditLog from "../src/AuditLog.js"
import { KeyManager } from "../src/KeyManager.js"
import * as LocalKeyStore from "../src/LocalKeyStore.js"
import { config, tmpDir } from "./helpers.js"

const managerWithAudit = (store: string, audit: string) =>
  Effect.scoped(
    Effect.map(
      Layer.build(LocalKeyStore.layer(config(store)).pipe(Layer.provide(AuditLog.layerFile(audit)))),
      (ctx) => Context.get(ctx, KeyManager)
    )
  )

const entries = (file: string) =>
  Effect.promise(async () =>
    (await fs.readFile(file, "utf8")).trim().split("\n").map((l) => JSON.parse(l) as AuditLog.AuditEntry)
  )

describe("AuditLog", () => {
  it.scoped("records every management operation as one JSON line, appending across reopenings, mode 0600", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const store = path.join(dir, "store.ocks")
      const audit = path.join(dir, "log", "audit.jsonl")
      yield* Effect.scoped(Effect.gen(function*() {
        const ctx = yield* Layer.build(LocalKeyStore.layer(config(store)).pipe(Layer.provide(AuditLog.layerFile(audit))))
        const m = Context.get(ctx, KeyManager)
        const k = yield* m.generate({ name: "data" })
        yield* m.rotate("data")
        yield* m.export("data@1", { format: "hex" })
        yield* Effect.flip(m.generate({ name: "data" }))
        yield* m.disable("data")
        yield* m.delete("data")
        const es = yield* entries(audit)
        assert.deepStrictEqual(es.map((e) => [e.operation, e.outcome]), [
          ["generate", "success"],
          ["rotate", "success"],
          ["export", "success"],
          ["generate", "failure"],
          ["disable", "success"],
          ["delete", "success"]
        ])
        assert.strictEqual(es[0]!.keyId, k.id)
        assert.strictEqual(es[1]!.version, 2)
        assert.strictEqual(es[2]!.version, 1)
        assert.deepStrictEqual(es[2]!.context, { format: "hex" })
        assert.strictEqual(es[3]!.error, "KeyStoreError:Exists")
        assert.strictEqual(es[0]!.pid, process.pid)
        assert.isFalse(Number.isNaN(Date.parse(es[0]!.time)))
      }))
      assert.strictEqual((yield* Effect.promise(() => fs.stat(audit))).mode & 0o777, 0o600)
      yield* Effect.scoped(Effect.gen(function*() {
        const ctx = yield* Layer.build(LocalKeyStore.layer(config(store)).pipe(Layer.provide(AuditLog.layerFile(audit))))
        yield* Context.get(ctx, KeyManager).undelete("data")
      }))
      const all = yield* entries(audit)
      assert.strictEqual(all.length, 7)
      assert.strictEqual(all[6]!.operation, "undelete")
    }))

  it.scoped("the core KeyStore contract records each resolve", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const audit = path.join(dir, "audit.jsonl")
      const ctx = yield* Layer.build(
        LocalKeyStore.layer(config(path.join(dir, "s.ocks"))).pipe(Layer.provideMerge(AuditLog.layerFile(audit)))
      )
      const m = Context.get(ctx, KeyManager)
      const ks = Context.get(ctx, KeyStore)
      const k = yield* m.generate({ name: "data" })
      yield* ks.resolve("data")
      yield* Effect.flip(ks.resolve("missing"))
      const es = (yield* entries(audit)).filter((e) => e.operation === "resolve")
      assert.deepStrictEqual(es.map((e) => [e.keyId, e.version, e.outcome, e.error]), [
        [k.id, 1, "success", undefined],
        [undefined, undefined, "failure", "KeyNotFound"]
      ])
    }))

  it.scoped("an audit log that cannot be opened fails the layer with KeyStoreError Io", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      yield* Effect.promise(() => fs.writeFile(path.join(dir, "file"), ""))
      const e = yield* Effect.flip(managerWithAudit(path.join(dir, "s.ocks"), path.join(dir, "file", "audit.jsonl")))
      assert.strictEqual(e._tag === "KeyStoreError" && e.reason, "Io")
    }))

  it.effect("records the principal when one is given, and leaves the field out otherwise", () =>
    Effect.gen(function*() {
      const ref = yield* Ref.make<ReadonlyArray<AuditLog.AuditEntry>>([])
      const log = Context.get(yield* Effect.scoped(Layer.build(AuditLog.layerMemory(ref))), AuditLog.AuditLog)
      yield* log.record({ operation: "kms.Decrypt", keyId: "k", principal: "alice", outcome: "success" })
      yield* log.record({ operation: "kms.Decrypt", keyId: "k", outcome: "success" })
      const [a, b] = yield* Ref.get(ref)
      assert.strictEqual(a!.principal, "alice")
      assert.isFalse("principal" in b!)
    }))
})
