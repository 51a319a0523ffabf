import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Redacted, Stream } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as S3EC from "../src/S3EncryptionClient.js"
import * as MemoryStore from "./support/MemoryStore.js"

const KiB = 1024
const aesKey = crypto.randomBytes(32)
const aesW = S3EC.aesGcm({ material: Redacted.make(aesKey) })
const materials: S3EC.Materials = { keys: [{ _tag: "Aes", keyId: "aes", material: Redacted.make(aesKey) }] }
const bufferSize = 64 * KiB

const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), "s3ec-spool-test-"))
const spoolFiles = (dir: string) => fs.readdirSync(dir).map((d) => path.join(dir, d, "spool")).filter((f) => fs.existsSync(f))

const setup = (size = 3 * 1024 * KiB + 77) =>
  Effect.gen(function*() {
    const store = MemoryStore.make()
    const pt = crypto.randomBytes(size)
    yield* S3EC.put(store, "big", Stream.succeed(pt), { wrapping: aesW })
    return { store, pt }
  })

const flip = (store: MemoryStore.MemoryStore, key: string, at: number) => {
  const e = store.objects.get(key)!
  const b = Buffer.from(e.bytes)
  b[at] = b[at]! ^ 1
  e.bytes = b
}

describe("S3EncryptionClient verification spool (layerNodeSpool)", () => {
  it.effect("spools sealed records to a 0600 file in a 0700 directory, streams them back, then removes both", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const { store, pt } = yield* setup()
      let checked = false
      let largest = 0
      const got = yield* Effect.scoped(Effect.gen(function*() {
        const o = yield* S3EC.get(store, "big", { materials, bufferSize })
        const chunks = yield* Stream.runCollect(o.body.pipe(Stream.tap((c) =>
          Effect.sync(() => {
            largest = Math.max(largest, c.length)
            if (checked) return
            const files = spoolFiles(dir)
            assert.strictEqual(files.length, 1)
            assert.strictEqual(fs.statSync(files[0]!).mode & 0o777, 0o600)
            assert.strictEqual(fs.statSync(path.dirname(files[0]!)).mode & 0o777, 0o700)
            const raw = fs.readFileSync(files[0]!)
            assert.isTrue(raw.length >= pt.length, "the whole plaintext is spooled before the first byte is released")
            // Sealed at rest: no 32-byte window of the plaintext appears in the file.
            for (const at of [0, 1000, 1024 * KiB + 5, pt.length - 40]) assert.strictEqual(raw.indexOf(pt.subarray(at, at + 32)), -1)
            checked = true
          })
        )))
        return Buffer.concat(Chunk.toArray(chunks))
      })).pipe(Effect.provide(S3EC.layerNodeSpool({ directory: dir })))
      assert.isTrue(checked)
      assert.isTrue(got.equals(pt))
      // A record is about 1 MiB: what was pending plus at most one network chunk (MemoryStore: ≤ 200 000 bytes).
      assert.isTrue(largest <= 1024 * KiB + 200_000, `records are bounded (${largest})`)
      assert.deepStrictEqual(fs.readdirSync(dir), [])
      fs.rmdirSync(dir)
    }))

  it.effect("a tag that fails in the first pass releases nothing and removes the spool", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const { store } = yield* setup()
      flip(store, "big", 2 * 1024 * KiB)
      let released = 0
      const e = yield* Effect.flip(Effect.scoped(Effect.flatMap(
        S3EC.get(store, "big", { materials, bufferSize }),
        (o) => Stream.runForEach(o.body, (c) => Effect.sync(() => void (released += c.length)))
      )).pipe(Effect.provide(S3EC.layerNodeSpool({ directory: dir }))))
      assert.strictEqual((e as { reason: string }).reason, "Tampered")
      assert.strictEqual(released, 0)
      assert.deepStrictEqual(fs.readdirSync(dir), [])
      fs.rmdirSync(dir)
    }))

  it.effect("a reader that stops early, is interrupted, or never reads leaves no spool", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const { store, pt } = yield* setup()
      const layer = S3EC.layerNodeSpool({ directory: dir })
      // Stops after the first record.
      const first = yield* Effect.scoped(Effect.flatMap(
        S3EC.get(store, "big", { materials, bufferSize }),
        (o) => Stream.runCollect(Stream.take(o.body, 1))
      )).pipe(Effect.provide(layer))
      assert.isTrue(Buffer.from(Chunk.unsafeHead(first)).equals(pt.subarray(0, Chunk.unsafeHead(first).length)))
      assert.deepStrictEqual(fs.readdirSync(dir), [])
      // Interrupted while streaming from the spool.
      let sawSpool = false
      const exit = yield* Effect.exit(Effect.scoped(Effect.flatMap(
        S3EC.get(store, "big", { materials, bufferSize }),
        (o) =>
          Stream.runDrain(o.body.pipe(Stream.tap(() =>
            Effect.suspend(() => {
              sawSpool = spoolFiles(dir).length === 1
              return Effect.interrupt
            })
          )))
      )).pipe(Effect.provide(layer)))
      assert.isTrue(Exit.isInterrupted(exit))
      assert.isTrue(sawSpool)
      assert.deepStrictEqual(fs.readdirSync(dir), [])
      // Opened, never read: the spool is created lazily, with the body.
      yield* Effect.scoped(S3EC.get(store, "big", { materials, bufferSize })).pipe(Effect.provide(layer))
      assert.deepStrictEqual(fs.readdirSync(dir), [])
      fs.rmdirSync(dir)
    }))

  it.effect("a spool modified on disk between the passes fails with Tampered and is removed", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const { store } = yield* setup()
      const e = yield* Effect.flip(Effect.scoped(Effect.flatMap(
        S3EC.get(store, "big", { materials, bufferSize }),
        (o) =>
          Stream.runDrain(o.body.pipe(Stream.tap(() =>
            Effect.sync(() => {
              // Another local process rewrites a byte of the third record.
              const f = spoolFiles(dir)[0]
              if (f === undefined) return
              const fd = fs.openSync(f, "r+")
              const b = Buffer.alloc(1)
              fs.readSync(fd, b, 0, 1, 2 * (1024 * KiB + 20) + 100)
              b[0] = b[0]! ^ 0xff
              fs.writeSync(fd, b, 0, 1, 2 * (1024 * KiB + 20) + 100)
              fs.closeSync(fd)
            })
          )))
      )).pipe(Effect.provide(S3EC.layerNodeSpool({ directory: dir }))))
      assert.strictEqual(e._tag, "DecryptError")
      assert.strictEqual((e as { reason: string }).reason, "Tampered")
      assert.deepStrictEqual(fs.readdirSync(dir), [])
      fs.rmdirSync(dir)
    }))

  it.effect("a spool directory that cannot be used fails with a typed ProviderError", () =>
    Effect.gen(function*() {
      const { store } = yield* setup(200 * KiB)
      const e = yield* Effect.flip(
        S3EC.getBytes(store, "big", { materials, bufferSize }).pipe(
          Effect.provide(S3EC.layerNodeSpool({ directory: path.join(os.tmpdir(), `missing-${crypto.randomBytes(6).toString("hex")}`, "x") }))
        )
      )
      assert.strictEqual(e._tag, "ProviderError")
      assert.strictEqual((e as { operation: string }).operation, "spool-open")
    }))
})

describe("S3EncryptionClient without a spool (layerNoSpool)", () => {
  it.effect("verifies objects up to bufferSize in memory and refuses larger ones before releasing a byte", () =>
    Effect.gen(function*() {
      const { store, pt } = yield* setup(bufferSize - 16)
      const got = yield* S3EC.getBytes(store, "big", { materials, bufferSize }).pipe(Effect.provide(S3EC.layerNoSpool))
      assert.isTrue(Buffer.from(got).equals(pt))
      const big = yield* setup(bufferSize)
      let released = 0
      const e = yield* Effect.flip(Effect.scoped(Effect.flatMap(
        S3EC.get(big.store, "big", { materials, bufferSize }),
        (o) => Stream.runForEach(o.body, (c) => Effect.sync(() => void (released += c.length)))
      )).pipe(Effect.provide(S3EC.layerNoSpool)))
      assert.strictEqual(e._tag, "ProviderError")
      assert.strictEqual((e as { code: string }).code, "NoSpool")
      assert.strictEqual(released, 0)
    }))
})
