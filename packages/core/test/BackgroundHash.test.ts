import * as BackgroundHash from "../src/BackgroundHash.js"
import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import * as crypto from "node:crypto"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import fc from "fast-check"

const MiB = 1024 * 1024

/** Feeds `data` in `sizes`-long chunks (cycled), awaiting back-pressure, reusing one scratch buffer. */
const feed = async (h: BackgroundHash.BackgroundHash, data: Buffer, sizes: ReadonlyArray<number>) => {
  const scratch = Buffer.alloc(Math.max(...sizes))
  let waits = 0
  for (let off = 0, i = 0; off < data.length; i++) {
    const n = Math.min(sizes[i % sizes.length]!, data.length - off)
    data.copy(scratch, 0, off, off + n)
    const p = h.update(scratch.subarray(0, n))
    if (p !== undefined) {
      waits++
      await p
    }
    // The hash copied the chunk: scribbling over the scratch buffer must not change the digest.
    scratch.fill(0xa5, 0, n)
    off += n
  }
  return waits
}

describe("BackgroundHash", () => {
  it("matches node:crypto at the slab boundaries", async () => {
    const S = BackgroundHash.SLAB_SIZE
    for (const size of [0, 1, 1000, S - 1, S, S + 1, 3 * S, 3 * S + 7]) {
      const data = crypto.randomBytes(size)
      for (const algorithm of ["md5", "sha256"] as const) {
        const h = BackgroundHash.make(algorithm)
        await feed(h, data, [65536, 1, 300_000])
        expect((await h.digest()).toString("hex"), `${algorithm} of ${size} bytes`).toBe(crypto.createHash(algorithm).update(data).digest("hex"))
      }
    }
  })

  it("matches node:crypto for random sizes and chunkings (property)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 5 * MiB }), fc.array(fc.integer({ min: 1, max: 3 * MiB }), { minLength: 1, maxLength: 4 }), async (size, sizes) => {
        const data = crypto.randomBytes(size)
        const h = BackgroundHash.make("md5")
        await feed(h, data, sizes)
        expect((await h.digest()).equals(crypto.createHash("md5").update(data).digest())).toBe(true)
      }),
      { numRuns: 25 }
    )
  })

  it("applies back-pressure: a fast producer waits instead of queueing the whole body", async () => {
    const data = crypto.randomBytes(64 * MiB)
    const h = BackgroundHash.make("sha256")
    const waits = await feed(h, data, [4 * MiB])
    expect(waits).toBeGreaterThan(0)
    expect((await h.digest()).equals(crypto.createHash("sha256").update(data).digest())).toBe(true)
  })

  it("keeps concurrent hashes apart", async () => {
    const bodies = Array.from({ length: 4 }, (_, i) => crypto.randomBytes(2 * MiB + i * 12345))
    const hashes = bodies.map(() => BackgroundHash.make("md5"))
    await Promise.all(bodies.map((b, i) => feed(hashes[i]!, b, [100_000 + i])))
    const digests = await Promise.all(hashes.map((h) => h.digest()))
    digests.forEach((d, i) => expect(d.equals(crypto.createHash("md5").update(bodies[i]!).digest())).toBe(true))
  })

  it("refuses a second digest and updates after the digest; dispose abandons a hash", async () => {
    const h = BackgroundHash.make("md5")
    await feed(h, crypto.randomBytes(3 * MiB), [MiB])
    await h.digest()
    await expect(h.digest()).rejects.toThrow(/already finished/)
    expect(() => h.update(Buffer.from("x"))).toThrow(/already finished/)
    const abandoned = BackgroundHash.make("md5")
    await feed(abandoned, crypto.randomBytes(3 * MiB), [MiB])
    abandoned.dispose()
    await expect(abandoned.digest()).rejects.toThrow(/already finished/)
    // The worker still serves new hashes after an abandoned one.
    const next = BackgroundHash.make("md5")
    const data = crypto.randomBytes(2 * MiB + 1)
    await feed(next, data, [MiB])
    expect((await next.digest()).equals(crypto.createHash("md5").update(data).digest())).toBe(true)
  })

  it("does not keep a process alive once its hashes are done", () => {
    const here = path.dirname(fileURLToPath(import.meta.url))
    const script = `
      import * as BackgroundHash from "@objcrypt/core/BackgroundHash"
      const h = BackgroundHash.make("md5")
      const b = Buffer.alloc(5 * 1024 * 1024, 7)
      for (let i = 0; i < 4; i++) await h.update(b)
      process.stdout.write((await h.digest()).toString("hex"))
    `
    const t0 = Date.now()
    const r = spawnSync(process.execPath, ["--conditions=@objcrypt/source", "--input-type=module", "-e", script], { cwd: path.resolve(here, ".."), encoding: "utf8", timeout: 30_000 })
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toBe(crypto.createHash("md5").update(Buffer.alloc(20 * 1024 * 1024, 7)).digest("hex"))
    expect(Date.now() - t0).toBeLessThan(20_000)
  })
})
