import { assert, describe, it } from "@effect/vitest"
import { Cause, Chunk, Effect, Either, Stream } from "effect"
import * as fc from "fast-check"
import * as crypto from "node:crypto"
import * as ClientSide from "../src/ClientSide.js"
import * as NativeFormat from "../src/NativeFormat.js"

const ctx = NativeFormat.fullContext("bucket", "dir/object", {})
const keysFor = (segmentSize: number) =>
  NativeFormat.deriveKeys(crypto.randomBytes(32), { segmentSize, salt: crypto.randomBytes(32) }, ctx)

/** Splits bytes into chunks of the given sizes (cycled); `fresh` copies each chunk into its own ArrayBuffer. */
const split = (bytes: Uint8Array, sizes: ReadonlyArray<number>, fresh = false): Array<Uint8Array> => {
  const out: Array<Uint8Array> = []
  let off = 0
  let i = 0
  while (off < bytes.length) {
    const n = Math.max(1, Math.min(sizes[i++ % sizes.length]!, bytes.length - off))
    out.push(fresh ? Uint8Array.from(bytes.subarray(off, off + n)) : bytes.subarray(off, off + n))
    off += n
  }
  return out
}

const concat = (c: Chunk.Chunk<Uint8Array>) => Buffer.concat(Chunk.toArray(c))

const sealSync = (keys: NativeFormat.ObjectKeys, pt: Uint8Array) =>
  Effect.map(Stream.runCollect(Stream.make(pt).pipe(NativeFormat.encrypt(keys))), concat)

/** What a decryption released before it stopped, and why it stopped (undefined = success). */
const outcome = <E extends { readonly _tag: string }>(s: Stream.Stream<Uint8Array, E>) =>
  Effect.gen(function*() {
    const released: Array<Uint8Array> = []
    const r = yield* Effect.either(Stream.runForEach(s, (c) => Effect.sync(() => void released.push(c))))
    return {
      released: Buffer.concat(released),
      reason: Either.isLeft(r) ? (r.left as unknown as { reason?: string }).reason ?? r.left._tag : undefined
    }
  })

describe("NativeFormat with a worker pool", () => {
  it.effect("sealing on workers is byte-identical to the calling thread (random sizes, batches, chunkings, transfer)", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* ClientSide.makeWorkerPool(2)
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(
            fc.integer({ min: 0, max: 6000 }),
            fc.integer({ min: 16, max: 600 }),
            fc.integer({ min: 1, max: 5000 }),
            fc.array(fc.integer({ min: 1, max: 2000 }), { minLength: 1, maxLength: 3 }),
            fc.boolean(),
            async (n, seg, batch, sizes, transfer) => {
              const keys = keysFor(seg)
              const pt = crypto.randomBytes(n)
              const expected = await Effect.runPromise(sealSync(keys, pt))
              const got = await Effect.runPromise(
                Stream.runCollect(
                  Stream.fromIterable(split(pt, sizes, transfer)).pipe(
                    NativeFormat.encryptParallel(keys, { pool, transfer, batchBytes: batch, concurrency: 3 })
                  )
                )
              )
              assert.isTrue(concat(got).equals(expected))
            }
          ),
          { numRuns: 60 }
        )
      )
    })), { timeout: 60_000 })

  it.effect("transfer hands owned buffers over (detached) and copies shared ones", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* ClientSide.makeWorkerPool(1)
      const keys = keysFor(64)
      const owned = Uint8Array.from(crypto.randomBytes(200))
      const big = crypto.randomBytes(400)
      const shared = big.subarray(0, 200)
      const a = yield* pool.seal(keys, 0, true, [owned, shared], { transfer: true })
      assert.strictEqual(owned.length, 0, "an owned buffer is transferred")
      assert.strictEqual(shared.length, 200, "a view of a larger buffer is copied")
      assert.strictEqual(Buffer.concat(a).length, NativeFormat.ciphertextSize(400, 64))
      const kept = Uint8Array.from(crypto.randomBytes(100))
      yield* pool.seal(keys, 0, true, [kept])
      assert.strictEqual(kept.length, 100, "without transfer the caller keeps its buffer")
    })))

  it.effect("opening on workers round-trips whole objects and ranges like the calling thread", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* ClientSide.makeWorkerPool(2)
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(
            fc.integer({ min: 0, max: 6000 }),
            fc.integer({ min: 16, max: 600 }),
            fc.integer({ min: 1, max: 5000 }),
            fc.array(fc.integer({ min: 1, max: 2000 }), { minLength: 1, maxLength: 3 }),
            fc.tuple(fc.nat(), fc.nat()),
            fc.boolean(),
            async (n, seg, batch, sizes, [a, b], transfer) => {
              const keys = keysFor(seg)
              const pt = crypto.randomBytes(n)
              const ct = await Effect.runPromise(sealSync(keys, pt))
              const range = n === 0 ? undefined : { start: Math.min(a, b) % n, end: (Math.max(a, b) % n) + 1 }
              const r = range !== undefined && range.start < range.end ? range : undefined
              const plan = NativeFormat.planRange(n, seg, r)
              const body = ct.subarray(plan.cipherStart, plan.cipherEnd)
              const got = await Effect.runPromise(
                Stream.runCollect(
                  Stream.fromIterable(split(body, sizes, transfer)).pipe(
                    NativeFormat.decryptParallel(keys, plan, "k", { pool, transfer, batchBytes: batch })
                  )
                )
              )
              const want = r === undefined ? pt : pt.subarray(r.start, r.end)
              assert.isTrue(concat(got).equals(want))
            }
          ),
          { numRuns: 60 }
        )
      )
    })), { timeout: 60_000 })

  // Every mutation gives the same released plaintext and the same reason on workers as on the
  // calling thread: nothing of a bad segment or after it, and the same typed error.
  const mutations: ReadonlyArray<readonly [string, (ct: Buffer, full: number) => Buffer, number | undefined]> = [
    ["a flipped bit in segment 2", (ct, full) => {
      const c = Buffer.from(ct)
      c[2 * full + 5]! ^= 1
      return c
    }, undefined],
    ["a flipped bit in the last tag", (ct) => {
      const c = Buffer.from(ct)
      c[c.length - 1]! ^= 0x80
      return c
    }, undefined],
    ["the final segment removed", (ct, full) => ct.subarray(0, 6 * full), 64 * 6],
    ["segments 1 and 2 swapped", (ct, full) =>
      Buffer.concat([ct.subarray(0, full), ct.subarray(2 * full, 3 * full), ct.subarray(full, 2 * full), ct.subarray(3 * full)]), undefined],
    ["segment 1 duplicated over segment 3", (ct, full) =>
      Buffer.concat([ct.subarray(0, 3 * full), ct.subarray(full, 2 * full), ct.subarray(4 * full)]), undefined],
    ["the stream cut inside segment 4", (ct, full) => ct.subarray(0, 4 * full + 30), undefined],
    ["the stream cut inside the last tag", (ct) => ct.subarray(0, ct.length - 5), undefined],
    ["a byte after the end", (ct) => Buffer.concat([ct, Buffer.from([7])]), undefined],
    ["a segment appended after a full final segment", (ct, full) => Buffer.concat([ct.subarray(0, 6 * full), ct.subarray(0, full)]), 64 * 7],
    ["an empty body", () => Buffer.alloc(0), undefined]
  ]
  for (const [name, mutate, plainSize] of mutations) {
    it.effect(`${name}: same plaintext released and same reason as the calling thread`, () =>
      Effect.scoped(Effect.gen(function*() {
        const pool = yield* ClientSide.makeWorkerPool(2)
        const seg = 64
        const full = seg + 16
        const pt = crypto.randomBytes(name.includes("appended") ? seg * 6 : seg * 6 + 20)
        const keys = keysFor(seg)
        const ct = Buffer.from(yield* sealSync(keys, pt))
        const bad = mutate(ct, full)
        const plan = NativeFormat.planRange(plainSize ?? pt.length, seg)
        for (const batch of [seg, 2 * seg, 100 * seg]) {
          const sync = yield* outcome(Stream.fromIterable(split(bad, [333])).pipe(NativeFormat.decrypt(keys, plan, "k")))
          const par = yield* outcome(
            Stream.fromIterable(split(bad, [333])).pipe(NativeFormat.decryptParallel(keys, plan, "k", { pool, batchBytes: batch }))
          )
          assert.isDefined(sync.reason)
          assert.strictEqual(par.reason, sync.reason, `batch ${batch}`)
          assert.isTrue(par.released.equals(sync.released), `batch ${batch}: released ${par.released.length} vs ${sync.released.length}`)
          // Transferred ciphertext comes back holding its plaintext in place: the buffers that come
          // back must hold nothing of a segment that was not released, not even outside the views.
          const views: Array<Uint8Array> = []
          const moved = yield* outcome(
            Stream.fromIterable(split(bad, [333], true)).pipe(
              NativeFormat.decryptParallel(keys, plan, "k", { pool, batchBytes: batch, transfer: true }),
              Stream.tap((v) => Effect.sync(() => void views.push(v)))
            )
          )
          assert.strictEqual(moved.reason, sync.reason, `transfer, batch ${batch}`)
          assert.isTrue(moved.released.equals(sync.released), `transfer, batch ${batch}`)
          const whole = Buffer.concat([...new Set(views.map((v) => v.buffer))].map((b) => new Uint8Array(b)))
          for (let j = Math.ceil(sync.released.length / seg); j * seg < pt.length; j++) {
            assert.strictEqual(whole.indexOf(pt.subarray(j * seg, Math.min((j + 1) * seg, pt.length))), -1, `segment ${j} leaked (batch ${batch})`)
          }
        }
      })))
  }

  it.effect("a part that is not whole segments without the final flag is a defect, and the pool keeps working", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* ClientSide.makeWorkerPool(1)
      const keys = keysFor(64)
      const exit = yield* Effect.exit(pool.seal(keys, 0, false, [crypto.randomBytes(100)]))
      assert.isTrue(exit._tag === "Failure" && Cause.isDie(exit.cause))
      const ok = yield* pool.seal(keys, 0, false, [crypto.randomBytes(128)])
      assert.strictEqual(Buffer.concat(ok).length, 160)
      const cpu = yield* pool.cpuUsage
      assert.strictEqual(cpu.length, 1)
      assert.isAbove(cpu[0]!, 0)
    })))

  it.effect("a wrong key opens nothing on workers", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* ClientSide.makeWorkerPool(2)
      const keys = keysFor(64)
      const pt = crypto.randomBytes(1000)
      const ct = yield* sealSync(keys, pt)
      const r = yield* outcome(
        Stream.make(ct).pipe(NativeFormat.decryptParallel(keysFor(64), NativeFormat.planRange(1000, 64), "k", { pool, batchBytes: 256 }))
      )
      assert.strictEqual(r.reason, "Tampered")
      assert.strictEqual(r.released.length, 0)
    })))
})
