import * as StreamParts from "../src/StreamParts.js"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Option, Stream } from "effect"
import * as crypto from "node:crypto"
import fc from "fast-check"

// Parts well above Node's buffer-pool threshold own their memory, as real multi-megabyte parts do.
const SIZE = 128 * 1024

/** `data` cut into pieces of the given lengths (cycled), delivered three pieces per pull. */
const chunked = (data: Buffer, lengths: ReadonlyArray<number>) => {
  const out: Array<Uint8Array> = []
  for (let off = 0, i = 0; off < data.length; i++) {
    const n = Math.min(lengths[i % lengths.length]!, data.length - off)
    out.push(Uint8Array.from(data.subarray(off, off + n)))
    off += n
  }
  return Stream.fromIterable(out).pipe(Stream.rechunk(3))
}

/** Reads every part; with `release`, each part is given back once its bytes are copied out. */
const readAll = (reader: StreamParts.PartReader<never>, release: boolean) =>
  Effect.gen(function*() {
    const parts: Array<Buffer> = []
    const memories = new Set<ArrayBufferLike>()
    for (;;) {
      const next = yield* reader.next
      if (Option.isNone(next)) break
      parts.push(Buffer.from(next.value))
      memories.add(next.value.buffer)
      if (release) reader.release(next.value)
    }
    return { parts, memories }
  })

describe("StreamParts.partReader", () => {
  it.effect("cuts any chunking into parts of exactly the size, the last shorter; an empty body is one empty part", () =>
    Effect.gen(function*() {
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(
            fc.integer({ min: 0, max: 5 * SIZE + 100 }),
            fc.array(fc.integer({ min: 512, max: 3 * SIZE }), { minLength: 1, maxLength: 5 }),
            fc.boolean(),
            async (length, lengths, release) => {
              const data = crypto.randomBytes(length)
              const { parts } = await Effect.runPromise(Effect.scoped(Effect.flatMap(StreamParts.partReader(chunked(data, lengths), SIZE), (r) => readAll(r, release))))
              expect(Buffer.concat(parts).equals(data)).toBe(true)
              if (length === 0) expect(parts.map((p) => p.length)).toEqual([0])
              else {
                expect(parts.length).toBe(Math.ceil(length / SIZE))
                for (const p of parts.slice(0, -1)) expect(p.length).toBe(SIZE)
              }
            }
          ),
          { numRuns: 60 }
        )
      )
    }))

  it.effect("one-byte pieces among larger ones make the same parts", () =>
    Effect.gen(function*() {
      const data = crypto.randomBytes(3 * SIZE + 5)
      const { parts } = yield* Effect.flatMap(StreamParts.partReader(chunked(data, [1, 7, 4096, 1]), SIZE), (r) => readAll(r, true))
      expect(parts.map((p) => p.length)).toEqual([SIZE, SIZE, SIZE, 5])
      expect(Buffer.concat(parts).equals(data)).toBe(true)
    }).pipe(Effect.scoped))

  it.effect("a released part's memory backs the next part, which holds the right bytes", () =>
    Effect.gen(function*() {
      const data = crypto.randomBytes(10 * SIZE + 7)
      const reader = yield* StreamParts.partReader(chunked(data, [5000, 70000]), SIZE)
      const first = Option.getOrThrow(yield* reader.next)
      reader.release(first)
      const second = Option.getOrThrow(yield* reader.next)
      expect(second.buffer).toBe(first.buffer)
      expect(Buffer.from(second).equals(data.subarray(SIZE, 2 * SIZE))).toBe(true)
      // The rest, releasing each: two buffers serve all eleven parts.
      const { parts, memories } = yield* readAll(reader, true)
      expect(Buffer.concat([data.subarray(0, 2 * SIZE), ...parts]).equals(data)).toBe(true)
      expect(memories.size).toBe(1)
    }).pipe(Effect.scoped))

  it.effect("without release every part is fresh memory", () =>
    Effect.gen(function*() {
      const data = crypto.randomBytes(6 * SIZE)
      const reader = yield* StreamParts.partReader(chunked(data, [SIZE]), SIZE)
      const { memories, parts } = yield* readAll(reader, false)
      expect(parts.length).toBe(6)
      expect(memories.size).toBe(6)
    }).pipe(Effect.scoped))

  it.effect("short parts, foreign buffers and parts over maxPooled are not reused", () =>
    Effect.gen(function*() {
      const data = crypto.randomBytes(8 * SIZE)
      const reader = yield* StreamParts.partReader(chunked(data, [SIZE]), SIZE, { maxPooled: 1 })
      const a = Option.getOrThrow(yield* reader.next)
      const b = Option.getOrThrow(yield* reader.next)
      // A view of a part, a buffer of the right length from elsewhere: not pooled.
      reader.release(a.subarray(0, SIZE - 1))
      reader.release(Buffer.alloc(SIZE + 1).subarray(1))
      const c = Option.getOrThrow(yield* reader.next)
      expect([a.buffer, b.buffer]).not.toContain(c.buffer)
      // Two whole parts released with room for one: the first is reused, the second is not kept.
      reader.release(a)
      reader.release(b)
      const d = Option.getOrThrow(yield* reader.next)
      const e = Option.getOrThrow(yield* reader.next)
      expect(d.buffer).toBe(a.buffer)
      expect(e.buffer).not.toBe(b.buffer)
      expect(Buffer.concat([d, e]).equals(data.subarray(3 * SIZE, 5 * SIZE))).toBe(true)
    }).pipe(Effect.scoped))

  it.effect("a part released twice is pooled once (two later parts never share memory)", () =>
    Effect.gen(function*() {
      const data = crypto.randomBytes(4 * SIZE)
      const reader = yield* StreamParts.partReader(chunked(data, [SIZE]), SIZE)
      const a = Option.getOrThrow(yield* reader.next)
      reader.release(a)
      reader.release(a)
      const b = Option.getOrThrow(yield* reader.next)
      const c = Option.getOrThrow(yield* reader.next)
      expect(b.buffer).toBe(a.buffer)
      expect(c.buffer).not.toBe(a.buffer)
      expect(Buffer.concat([b, c]).equals(data.subarray(SIZE, 3 * SIZE))).toBe(true)
    }).pipe(Effect.scoped))
})

describe("settleOnInterrupt", () => {
  /** Parts 1..20 through Stream.mapEffect (4 at a time), each request taking `ms(i)`; interrupted at 120 ms. */
  const run = (ms: (i: number) => number, grace: number, settle: boolean) =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const request = (i: number) =>
        Effect.zipRight(Effect.sync(() => log.push(`start ${i}`)), Effect.delay(Effect.sync(() => log.push(`done ${i}`)), ms(i)))
      const upload = Effect.uninterruptibleMask((restore) =>
        restore(
          Stream.range(1, 20).pipe(
            Stream.mapEffect((i) => (settle ? StreamParts.settleOnInterrupt(request(i), grace) : request(i)), { concurrency: 4 }),
            Stream.runDrain
          )
        ).pipe(Effect.onError(() => Effect.sync(() => log.push("abort"))))
      )
      const fiber = yield* Effect.fork(upload)
      yield* Effect.sleep(120)
      const t0 = Date.now()
      yield* Fiber.interrupt(fiber)
      return { log, waited: Date.now() - t0 }
    })

  it.live("the clean-up after an interrupted upload comes after every part request in flight has finished", () =>
    Effect.gen(function*() {
      const { log, waited } = yield* run((i) => 100 + 20 * i, 5000, true)
      const abort = log.indexOf("abort")
      expect(abort).toBe(log.length - 1)
      const started = log.filter((l) => l.startsWith("start")).map((l) => l.slice(6))
      expect(started.length).toBeGreaterThanOrEqual(4)
      // Every request that started finished, before the abort.
      expect(log.filter((l) => l.startsWith("done")).map((l) => l.slice(5)).sort()).toEqual([...started].sort())
      expect(waited).toBeLessThan(2000)
    }))

  it.live("without it, Stream.mapEffect's interrupted workers cut their requests off and the abort goes first", () =>
    Effect.gen(function*() {
      const { log } = yield* run((i) => 100 + 20 * i, 5000, false)
      const started = log.filter((l) => l.startsWith("start")).length
      const done = log.filter((l) => l.startsWith("done")).length
      expect(done).toBeLessThan(started)
    }))

  it.live("a request still running after the grace is cut off, and the interruption then completes", () =>
    Effect.gen(function*() {
      const { log, waited } = yield* run((i) => (i === 2 ? 60_000 : 50), 300, true)
      expect(log).toContain("start 2")
      expect(log).not.toContain("done 2")
      expect(log[log.length - 1]).toBe("abort")
      expect(waited).toBeGreaterThanOrEqual(250)
      expect(waited).toBeLessThan(3000)
    }))
})

describe("exactly", () => {
  const mismatch = (detail: string) => ({ _tag: "Mismatch" as const, detail })
  const run = (pieces: ReadonlyArray<number>, length: number) =>
    Stream.runCollect(StreamParts.exactly(Stream.fromIterable(pieces.map((n) => new Uint8Array(n))), length, mismatch)).pipe(
      Effect.map((c) => ({ ok: [...c].reduce((n, b) => n + b.length, 0) })),
      Effect.catchAll((e) => Effect.succeed({ failed: e.detail }))
    )

  it.effect("passes a body of exactly its length, fails a longer one on the chunk that exceeds it and a shorter one at its end", () =>
    Effect.gen(function*() {
      expect(yield* run([3, 4, 5], 12)).toEqual({ ok: 12 })
      expect(yield* run([], 0)).toEqual({ ok: 0 })
      expect(yield* run([3, 4, 5], 11)).toEqual({ failed: "the body is longer than 11 bytes" })
      expect(yield* run([3, 4], 12)).toEqual({ failed: "the body has 7 bytes, not 12" })
      // The chunks before the one that exceeds the length go through; that one does not.
      const seen: Array<number> = []
      yield* Stream.runForEach(StreamParts.exactly(Stream.make(new Uint8Array(5), new Uint8Array(5)), 8, mismatch), (c) => Effect.sync(() => seen.push(c.length))).pipe(Effect.ignore)
      expect(seen).toEqual([5])
    }))
})

describe("memoryBudget", () => {
  const MiB = 1024 * 1024
  it.live("reservations beyond the budget wait until enough is given back; small ones and larger-than-budget ones never deadlock", () =>
    Effect.gen(function*() {
      const budget = yield* StreamParts.memoryBudget(10 * MiB)
      let held = 0
      let peak = 0
      const use = (bytes: number, ms: number) =>
        budget.reserve(bytes)(Effect.acquireUseRelease(
          Effect.sync(() => {
            held += bytes
            peak = Math.max(peak, held)
          }),
          () => Effect.sleep(ms),
          () => Effect.sync(() => (held -= bytes))
        ))
      // Eight uploads of 4 MiB under 10 MiB: at most two at once.
      yield* Effect.all(Array.from({ length: 8 }, () => use(4 * MiB, 30)), { concurrency: "unbounded" })
      expect(peak).toBe(8 * MiB)
      // Larger than the budget: takes all of it, alone.
      peak = 0
      yield* Effect.all([use(64 * MiB, 30), use(4 * MiB, 30), use(4 * MiB, 30)], { concurrency: "unbounded" })
      expect(peak).toBe(64 * MiB)
      // Under 1 MiB is not counted: it goes through while the budget is taken.
      const blocker = yield* Effect.fork(use(10 * MiB, 300))
      yield* Effect.sleep(20)
      const t0 = Date.now()
      yield* use(512 * 1024, 0)
      expect(Date.now() - t0).toBeLessThan(200)
      yield* Fiber.join(blocker)
      // No budget: nothing waits.
      const free = yield* StreamParts.memoryBudget(undefined)
      peak = 0
      held = 0
      yield* Effect.all(Array.from({ length: 4 }, () => free.reserve(64 * MiB)(Effect.acquireUseRelease(Effect.sync(() => (held += 64, peak = Math.max(peak, held))), () => Effect.sleep(20), () => Effect.sync(() => (held -= 64))))), { concurrency: "unbounded" })
      expect(peak).toBe(256)
    }))
})
