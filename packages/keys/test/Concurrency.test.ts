import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as child from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as LocalKeyStore from "../src/LocalKeyStore.js"
import { config, exists, passphrase, tmpDir } from "./helpers.js"

const here = path.dirname(fileURLToPath(import.meta.url))
// The workspace's pinned Node 24 (the one running this test), never the machine's.
const node = process.execPath

const runWriter = (file: string, prefix: string, count: number) =>
  Effect.async<{ readonly code: number | null; readonly stderr: string }>((resume) => {
    const p = child.spawn(
      node,
      [
        "--conditions=@objcrypt/source",
        "--import",
        path.join(here, "fixtures/ts-loader.mjs"),
        path.join(here, "fixtures/writer.ts"),
        file,
        "correct horse battery staple",
        prefix,
        String(count)
      ],
      { stdio: ["ignore", "ignore", "pipe"] }
    )
    let stderr = ""
    p.stderr.on("data", (d) => (stderr += String(d)))
    p.on("exit", (code) => resume(Effect.succeed({ code, stderr })))
    return Effect.sync(() => p.kill())
  })

describe("LocalKeyStore under concurrency", () => {
  it.scoped("two fibers with separate handles never lose a write", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const file = path.join(dir, "store.ocks")
      const a = yield* LocalKeyStore.make(config(file))
      const b = yield* LocalKeyStore.make(config(file))
      yield* Effect.all([
        Effect.forEach(Array.from({ length: 15 }, (_, i) => i), (i) => a.manager.generate({ name: `a-${i}` })),
        Effect.forEach(Array.from({ length: 15 }, (_, i) => i), (i) => b.manager.generate({ name: `b-${i}` })),
        Effect.forEach(Array.from({ length: 10 }, (_, i) => i), () => b.manager.list(), { concurrency: 2 })
      ], { concurrency: "unbounded" })
      const names = (yield* (yield* LocalKeyStore.make(config(file))).manager.list()).map((k) => k.name).sort()
      assert.strictEqual(names.length, 30)
      assert.isFalse(yield* exists(`${file}.lock`))
    }))

  it.scoped("two child processes writing at once never corrupt the store or lose a write", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const file = path.join(dir, "store.ocks")
      const results = yield* Effect.all([runWriter(file, "p1", 12), runWriter(file, "p2", 12), runWriter(file, "p3", 12)], {
        concurrency: "unbounded"
      })
      for (const r of results) assert.strictEqual(r.code, 0, r.stderr)
      const { manager } = yield* LocalKeyStore.make(config(file))
      const names = new Set((yield* manager.list()).map((k) => k.name))
      assert.strictEqual(names.size, 36)
      for (const p of ["p1", "p2", "p3"]) for (let i = 0; i < 12; i++) assert.isTrue(names.has(`${p}-${i}`))
      assert.deepStrictEqual((yield* Effect.promise(() => fs.readdir(dir))).sort(), ["store.ocks"])
    }), { timeout: 120_000 })

  it.scoped("a lock left by a dead process is broken", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const file = path.join(dir, "store.ocks")
      const dead = child.spawnSync(node, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" })
      const deadPid = Number(dead.stdout)
      assert.isTrue(deadPid > 0)
      yield* Effect.promise(() =>
        fs.writeFile(`${file}.lock`, JSON.stringify({ pid: deadPid, host: os.hostname(), token: "x" }))
      )
      const { manager } = yield* LocalKeyStore.make(config(file, { lockTimeout: "5 seconds" }))
      yield* manager.generate({ name: "after-crash" })
      assert.strictEqual((yield* manager.list()).length, 1)
      assert.isFalse(yield* exists(`${file}.lock`))
    }))

  it.scoped("a lock held by a live process is Locked after the timeout, and left alone", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const file = path.join(dir, "store.ocks")
      const owner = JSON.stringify({ pid: process.ppid, host: os.hostname(), token: "live" })
      yield* Effect.promise(() => fs.writeFile(`${file}.lock`, owner))
      const { manager } = yield* LocalKeyStore.make({ ...config(file), passphrase, lockTimeout: "300 millis" })
      const e = yield* Effect.flip(manager.generate({ name: "blocked" }))
      assert.strictEqual(e._tag === "KeyStoreError" && e.reason, "Locked")
      assert.include(e.message, `pid ${process.ppid}`)
      assert.strictEqual(yield* Effect.promise(() => fs.readFile(`${file}.lock`, "utf8")), owner)
      assert.isFalse(yield* exists(file))
    }))
})
