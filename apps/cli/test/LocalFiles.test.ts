import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as LocalFiles from "../src/LocalFiles.js"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-localfiles-"))
const file = (name: string, bytes: Uint8Array) => {
  const p = path.join(dir, name)
  fs.writeFileSync(p, bytes)
  return p
}

/** Collects a borrowed stream the way its consumers must: copying each chunk before the next pull. */
const copied = (s: Stream.Stream<Uint8Array, unknown>) =>
  Effect.map(Stream.runCollect(Stream.map(s, (c) => Buffer.from(c))), (c) => Buffer.concat(Chunk.toArray(c)))

describe("LocalFiles.readBorrowed", () => {
  it.effect("reads a file in order through its ring, whatever its size against the chunk size", () =>
    Effect.gen(function*() {
      for (const size of [0, 1, 999, 1000, 1001, 7 * 1000 + 3, 64 * 1000]) {
        const bytes = crypto.randomBytes(size)
        const got = yield* copied(LocalFiles.readBorrowed(file(`f${size}`, bytes), 1000))
        assert.isTrue(got.equals(bytes), `size ${size}`)
        const chunks = yield* Stream.runCollect(Stream.map(LocalFiles.readBorrowed(file(`g${size}`, bytes), 1000), (c) => c.length))
        assert.deepStrictEqual(Chunk.toArray(chunks), Array.from({ length: Math.ceil(size / 1000) }, (_, i) => Math.min(1000, size - i * 1000)))
      }
    }))

  it.effect("chunks are borrowed: the ring's buffers come round again", () =>
    Effect.gen(function*() {
      const bytes = crypto.randomBytes(20 * 100)
      const kept = Chunk.toArray(yield* Stream.runCollect(LocalFiles.readBorrowed(file("kept", bytes), 100)))
      // Kept without copying, the early chunks have been overwritten by later reads.
      assert.strictEqual(kept.length, 20)
      assert.isFalse(Buffer.concat(kept).equals(bytes))
      assert.strictEqual(new Set(kept.map((c) => c.buffer)).size <= 4, true)
    }))

  it.effect("a missing file or a directory is a typed error", () =>
    Effect.gen(function*() {
      const missing = yield* Effect.flip(Stream.runDrain(LocalFiles.readBorrowed(path.join(dir, "nope"))))
      assert.deepStrictEqual([missing._tag, missing.reason], ["LocalFileError", "NotFound"])
      const isDir = yield* Effect.flip(Stream.runDrain(LocalFiles.readBorrowed(dir)))
      assert.deepStrictEqual([isDir._tag, isDir.reason], ["LocalFileError", "NotAFile"])
    }))

  it.effect("stopping early closes the file (no reads left running)", () =>
    Effect.gen(function*() {
      const bytes = crypto.randomBytes(50 * 1000)
      const p = file("early", bytes)
      const openOn = () => fs.readdirSync("/proc/self/fd").filter((fd) => {
        try {
          return fs.readlinkSync(`/proc/self/fd/${fd}`) === p
        } catch {
          return false
        }
      }).length
      const first = yield* copied(Stream.take(LocalFiles.readBorrowed(p, 1000), 3))
      assert.isTrue(first.equals(bytes.subarray(0, 3000)))
      assert.strictEqual(openOn(), 0)
    }))
})
