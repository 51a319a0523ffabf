import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Either, Option, Stream } from "effect"
import * as fc from "fast-check"
import * as crypto from "node:crypto"
import * as NativeFormat from "../src/NativeFormat.js"

const ctx = NativeFormat.fullContext("bucket", "dir/object", { app: "test" })
const keysFor = (segmentSize: number, dataKey: Uint8Array = crypto.randomBytes(32)) =>
  NativeFormat.deriveKeys(dataKey, { segmentSize, salt: crypto.randomBytes(32) }, ctx)

/** Splits bytes into chunks of the given sizes (cycled), as a stream. */
const chunks = (bytes: Uint8Array, sizes: ReadonlyArray<number>): Stream.Stream<Uint8Array> => {
  const out: Array<Uint8Array> = []
  let off = 0
  let i = 0
  while (off < bytes.length) {
    const n = Math.max(1, Math.min(sizes[i++ % sizes.length]!, bytes.length - off))
    out.push(bytes.subarray(off, off + n))
    off += n
  }
  return Stream.fromIterable(out)
}

const seal = (keys: NativeFormat.ObjectKeys, pt: Uint8Array, sizes: ReadonlyArray<number> = [1000]) =>
  Effect.map(Stream.runCollect(chunks(pt, sizes).pipe(NativeFormat.encrypt(keys))), (c) => Buffer.concat(Chunk.toArray(c)))

const open = (
  keys: NativeFormat.ObjectKeys,
  ct: Uint8Array,
  plaintextSize: number,
  range?: { start: number; end: number },
  sizes: ReadonlyArray<number> = [777]
) => {
  const plan = NativeFormat.planRange(plaintextSize, keys.segmentSize, range)
  return Stream.runCollect(
    chunks(ct.subarray(plan.cipherStart, plan.cipherEnd), sizes).pipe(NativeFormat.decrypt(keys, plan, "dir/object"))
  ).pipe(Effect.map((c) => Buffer.concat(Chunk.toArray(c))))
}

/** Decrypts and returns what was released before the failure, and the failure. */
const openPartial = (keys: NativeFormat.ObjectKeys, ct: Uint8Array, plaintextSize: number) => {
  const released: Array<Uint8Array> = []
  const plan = NativeFormat.planRange(plaintextSize, keys.segmentSize)
  return chunks(ct, [333]).pipe(
    NativeFormat.decrypt(keys, plan, "dir/object"),
    Stream.runForEach((c) => Effect.sync(() => released.push(c))),
    Effect.flip,
    Effect.map((e) => ({ error: e, released: Buffer.concat(released) }))
  )
}

/** As a store's borrowed read gives them: every chunk is one reused buffer, overwritten at each pull. */
const borrowedChunks = (ct: Uint8Array, size: number) => {
  const shared = Buffer.alloc(size)
  return Stream.range(0, Math.ceil(ct.length / size) - 1).pipe(
    Stream.rechunk(1),
    Stream.map((i) => {
      const piece = ct.subarray(i * size, (i + 1) * size)
      shared.fill(0xa5)
      shared.set(piece)
      return shared.subarray(0, piece.length) as Uint8Array
    })
  )
}

const openPartialBorrowed = (keys: NativeFormat.ObjectKeys, ct: Uint8Array, plaintextSize: number) => {
  const released: Array<Uint8Array> = []
  const plan = NativeFormat.planRange(plaintextSize, keys.segmentSize)
  return borrowedChunks(ct, 50).pipe(
    NativeFormat.decrypt(keys, plan, "dir/object", { borrowed: true }),
    Stream.runForEach((c) => Effect.sync(() => released.push(c))),
    Effect.flip,
    Effect.map((e) => ({ error: e, released: Buffer.concat(released) }))
  )
}

describe("NativeFormat layout", () => {
  it("segment counts and sizes", () => {
    assert.strictEqual(NativeFormat.segmentCount(0, 64), 1)
    assert.strictEqual(NativeFormat.segmentCount(64, 64), 1)
    assert.strictEqual(NativeFormat.segmentCount(65, 64), 2)
    assert.strictEqual(NativeFormat.ciphertextSize(0, 64), 16)
    assert.strictEqual(NativeFormat.ciphertextSize(128, 64), 160)
    assert.strictEqual(NativeFormat.ciphertextSize(129, 64), 129 + 48)
  })

  it("plaintext size is the inverse of ciphertext size, and rejects impossible sizes", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 100_000 }), fc.integer({ min: 16, max: 5000 }), (n, s) => {
        assert.strictEqual(Option.getOrThrow(NativeFormat.plaintextSize(NativeFormat.ciphertextSize(n, s), s)), n)
      })
    )
    assert.isTrue(Option.isNone(NativeFormat.plaintextSize(15, 64)))
    // One full segment and a lone tag (an empty non-first segment) is not a valid layout.
    assert.isTrue(Option.isNone(NativeFormat.plaintextSize(80 + 16, 64)))
    assert.isTrue(Option.isNone(NativeFormat.plaintextSize(80 + 10, 64)))
  })

  it("maps plaintext ranges to whole ciphertext segments", () => {
    const p = NativeFormat.planRange(1000, 100, { start: 250, end: 420 })
    assert.deepStrictEqual(
      { first: p.firstSegment, n: p.segments, cs: p.cipherStart, ce: p.cipherEnd, skip: p.skip, take: p.take },
      { first: 2, n: 3, cs: 232, ce: 580, skip: 50, take: 170 }
    )
    const last = NativeFormat.planRange(1005, 100, { start: 1000, end: 1005 })
    assert.deepStrictEqual([last.firstSegment, last.cipherStart, last.cipherEnd], [10, 1160, 1005 + 11 * 16])
  })

  it("nonces are an 88-bit big-endian counter and a last-segment flag", () => {
    assert.strictEqual(NativeFormat.segmentNonce(0, false).toString("hex"), "000000000000000000000000")
    assert.strictEqual(NativeFormat.segmentNonce(1, true).toString("hex"), "000000000000000000000101")
    assert.strictEqual(NativeFormat.segmentNonce(2 ** 32 + 2, false).toString("hex"), "000000000000010000000200")
    assert.strictEqual(NativeFormat.segmentNonce(2 ** 40, false).toString("hex"), "000000000001000000000000")
  })
})

describe("NativeFormat streaming", () => {
  it.effect("round-trips random sizes, segment sizes, chunkings and ranges", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 0, max: 5000 }),
          fc.integer({ min: 16, max: 700 }),
          fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 4 }),
          fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 4 }),
          fc.tuple(fc.nat(), fc.nat()),
          async (size, seg, inSizes, outSizes, [a, b]) => {
            const pt = crypto.randomBytes(size)
            const keys = keysFor(seg)
            const ct = await Effect.runPromise(seal(keys, pt, inSizes))
            assert.strictEqual(ct.length, NativeFormat.ciphertextSize(size, seg))
            assert.isTrue(Buffer.from(await Effect.runPromise(open(keys, ct, size, undefined, outSizes))).equals(pt))
            if (size > 0) {
              const start = a % size
              const end = start + 1 + (b % (size - start))
              const got = await Effect.runPromise(open(keys, ct, size, { start, end }, outSizes))
              assert.isTrue(Buffer.from(got).equals(pt.subarray(start, end)))
            }
          }
        ),
        { numRuns: 150 }
      )
    ))

  it.effect("the sized sealer writes the same bytes as the sealer, holding no input after push", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 0, max: 3000 }),
          fc.integer({ min: 16, max: 300 }),
          fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 4 }),
          async (size, seg, sizes) => {
            const keys = keysFor(seg)
            const pt = crypto.randomBytes(size)
            const expected = await Effect.runPromise(seal(keys, pt, sizes))
            // Each chunk is copied into one reused buffer, which is scribbled over after push:
            // any input the sealer kept would corrupt the output.
            const scratch = Buffer.alloc(700)
            const sealer = NativeFormat.makeSizedSealer(keys, size)
            const out: Array<Uint8Array> = []
            for (const c of Chunk.toArray(await Effect.runPromise(Stream.runCollect(chunks(pt, sizes))))) {
              c.forEach((b, i) => (scratch[i] = b))
              sealer.push(scratch.subarray(0, c.length), out)
              scratch.fill(0xa5)
            }
            sealer.end(out)
            assert.isTrue(Buffer.concat(out).equals(expected))
          }
        ),
        { numRuns: 150 }
      )
    ))

  it("the sized sealer refuses more or less plaintext than its size", () => {
    const keys = keysFor(64)
    const over = NativeFormat.makeSizedSealer(keys, 100)
    over.push(Buffer.alloc(60), [])
    assert.throws(() => over.push(Buffer.alloc(41), []), /more plaintext/)
    const under = NativeFormat.makeSizedSealer(keys, 100)
    under.push(Buffer.alloc(99), [])
    assert.throws(() => under.end([]), /less plaintext/)
    assert.throws(() => NativeFormat.makeSizedSealer(keys, -1), /invalid/)
    const done = NativeFormat.makeSizedSealer(keys, 0)
    done.end([])
    assert.throws(() => done.push(Buffer.alloc(1), []), /ended/)
  })

  it.effect("a part sealed with an offset and no final flag continues the object's segments", () =>
    Effect.gen(function*() {
      const keys = keysFor(64)
      const pt = crypto.randomBytes(64 * 5 + 10)
      const whole = yield* seal(keys, pt)
      const out: Array<Uint8Array> = []
      const p1 = NativeFormat.makeSealer(keys, { firstSegment: 0, final: false })
      p1.push(pt.subarray(0, 192), out)
      p1.end(out)
      const p2 = NativeFormat.makeSealer(keys, { firstSegment: 3, final: true })
      p2.push(pt.subarray(192), out)
      p2.end(out)
      assert.isTrue(Buffer.concat(out).equals(whole))
      const bad = NativeFormat.makeSealer(keys, { final: false })
      bad.push(pt.subarray(0, 70), [])
      assert.throws(() => bad.end([]))
    }))

  const tamper = (
    name: string,
    mutate: (ct: Buffer, seg: number) => Buffer,
    reason: string,
    releasedSegments: number
  ) =>
    it.effect(`${name} → ${reason}, releasing only the ${releasedSegments} good segments before it`, () =>
      Effect.gen(function*() {
        const seg = 64
        const pt = crypto.randomBytes(seg * 6 + 20)
        const keys = keysFor(seg)
        const ct = Buffer.from(yield* seal(keys, pt))
        const bad = mutate(ct, seg + 16)
        const plainSize = Option.getOrElse(NativeFormat.plaintextSize(bad.length, seg), () => pt.length)
        const r = yield* openPartial(keys, bad, plainSize)
        assert.strictEqual(r.error._tag, "DecryptError")
        assert.strictEqual(r.error.reason, reason)
        assert.isTrue(r.released.equals(pt.subarray(0, releasedSegments * seg)))
        // Borrowed chunks (each overwritten once the next is pulled) open and fail alike: the
        // opener keeps its own copy of an open segment's ciphertext to tell why it failed.
        const b = yield* openPartialBorrowed(keys, bad, plainSize)
        assert.strictEqual(b.error.reason, reason, "borrowed chunks")
        assert.isTrue(b.released.equals(pt.subarray(0, releasedSegments * seg)), "borrowed chunks")
      }))

  it.effect("borrowed chunks (one buffer, overwritten at each pull) decrypt whole objects and ranges", () =>
    Effect.gen(function*() {
      for (const n of [0, 1, 63, 64, 65, 200, 1000]) {
        const keys = keysFor(64)
        const pt = crypto.randomBytes(n)
        const ct = yield* seal(keys, pt)
        for (const size of [1, 7, 50, 80, 81, 4096]) {
          const whole = yield* Stream.runCollect(
            borrowedChunks(ct, size).pipe(NativeFormat.decrypt(keys, NativeFormat.planRange(n, 64), "k", { borrowed: true }))
          )
          assert.isTrue(Buffer.concat(Chunk.toArray(whole)).equals(pt), `${n} bytes in ${size}-byte chunks`)
          if (n > 100) {
            const plan = NativeFormat.planRange(n, 64, { start: 70, end: n - 3 })
            const got = yield* Stream.runCollect(
              borrowedChunks(ct.subarray(plan.cipherStart, plan.cipherEnd), size).pipe(NativeFormat.decrypt(keys, plan, "k", { borrowed: true }))
            )
            assert.isTrue(Buffer.concat(Chunk.toArray(got)).equals(pt.subarray(70, n - 3)), `range of ${n} bytes in ${size}-byte chunks`)
          }
        }
      }
    }))

  tamper("a flipped bit in segment 2", (ct, full) => {
    const c = Buffer.from(ct)
    c[2 * full + 5]! ^= 1
    return c
  }, "Tampered", 2)
  tamper("a flipped bit in the last tag", (ct) => {
    const c = Buffer.from(ct)
    c[c.length - 1]! ^= 0x80
    return c
  }, "Tampered", 6)
  tamper("the final segment removed", (ct, full) => ct.subarray(0, 6 * full), "Truncated", 5)
  tamper("segments 1 and 2 swapped", (ct, full) =>
    Buffer.concat([ct.subarray(0, full), ct.subarray(2 * full, 3 * full), ct.subarray(full, 2 * full), ct.subarray(3 * full)]), "Reordered", 1)
  tamper("segment 1 duplicated over segment 3", (ct, full) =>
    Buffer.concat([ct.subarray(0, 3 * full), ct.subarray(full, 2 * full), ct.subarray(4 * full)]), "Reordered", 3)

  it.effect("a segment appended after a full final segment → TrailingData, releasing the segments before the end", () =>
    Effect.gen(function*() {
      const keys = keysFor(64)
      const pt = crypto.randomBytes(64 * 4)
      const ct = yield* seal(keys, pt)
      const bad = Buffer.concat([ct, ct.subarray(0, 80)])
      const r = yield* openPartial(keys, bad, 64 * 5)
      assert.strictEqual(r.error.reason, "TrailingData")
      assert.isTrue(r.released.equals(pt.subarray(0, 64 * 3)))
    }))

  it.effect("a stream that ends early is Truncated; extra bytes are TrailingData", () =>
    Effect.gen(function*() {
      const keys = keysFor(64)
      const pt = crypto.randomBytes(300)
      const ct = yield* seal(keys, pt)
      const plan = NativeFormat.planRange(300, 64)
      const short = yield* Stream.make(ct.subarray(0, ct.length - 5)).pipe(NativeFormat.decrypt(keys, plan, "k"), Stream.runDrain, Effect.flip)
      assert.strictEqual(short.reason, "Truncated")
      const long = yield* Stream.make(ct, Buffer.from([1])).pipe(NativeFormat.decrypt(keys, plan, "k"), Stream.runDrain, Effect.flip)
      assert.strictEqual(long.reason, "TrailingData")
      const none = yield* Stream.empty.pipe(NativeFormat.decrypt(keys, NativeFormat.planRange(0, 64), "k"), Stream.runDrain, Effect.flip)
      assert.strictEqual(none.reason, "Truncated")
    }))

  it.effect("a wrong content key opens nothing", () =>
    Effect.gen(function*() {
      const pt = crypto.randomBytes(200)
      const ct = yield* seal(keysFor(64), pt)
      const r = yield* openPartial(keysFor(64), ct, 200)
      assert.strictEqual(r.error.reason, "Tampered")
      assert.strictEqual(r.released.length, 0)
    }))
})

describe("NativeFormat derivations and envelope", () => {
  it("binds the header and the full context into the keys", () => {
    const dk = crypto.randomBytes(32)
    const salt = crypto.randomBytes(32)
    const a = NativeFormat.deriveKeys(dk, { segmentSize: 64, salt }, ctx)
    const b = NativeFormat.deriveKeys(dk, { segmentSize: 64, salt }, { ...ctx, "oc:key": "other" })
    const c = NativeFormat.deriveKeys(dk, { segmentSize: 128, salt }, ctx)
    assert.isFalse(Buffer.from(a.commitment).equals(Buffer.from(b.commitment)))
    assert.isFalse(Buffer.from(a.commitment).equals(Buffer.from(c.commitment)))
    assert.isTrue(NativeFormat.commitmentMatches(a, a.commitment))
    assert.isFalse(NativeFormat.commitmentMatches(a, b.commitment))
    // Context encoding is order-independent.
    assert.isTrue(NativeFormat.contextBytes({ b: "2", a: "1" }).equals(NativeFormat.contextBytes({ a: "1", b: "2" })))
  })

  const envelope: NativeFormat.Envelope = {
    version: 1,
    segmentSize: 1 << 20,
    salt: crypto.randomBytes(32),
    commitment: crypto.randomBytes(32),
    contextDigest: crypto.randomBytes(16),
    plaintextLength: 123456789,
    context: { tenant: "ü-1" },
    keys: [{ type: "aes-gcm", keyId: "key/ü 1", version: 3, data: crypto.randomBytes(60) }]
  }

  it("encodes the envelope as ASCII metadata that fits S3's 2 KB and decodes it back", () => {
    const m = NativeFormat.encodeEnvelope(envelope)
    for (const [k, v] of Object.entries(m)) {
      assert.match(k, /^[a-z][a-z0-9]*$/)
      assert.match(v, /^[\x21-\x7e]*$/)
    }
    assert.isBelow(Object.entries(m).reduce((n, [k, v]) => n + k.length + v.length, 0), 400)
    const back = NativeFormat.decodeEnvelope({ ...m, "user-meta": "x" })
    assert.isTrue(Either.isRight(back))
    if (Either.isRight(back) && back.right._tag === "Inline") {
      assert.deepStrictEqual(back.right.envelope.context, envelope.context)
      assert.deepStrictEqual(back.right.envelope.keys[0]!.keyId, "key/ü 1")
      assert.strictEqual(back.right.envelope.plaintextLength, 123456789)
    }
    const side = NativeFormat.decodeSidecar(NativeFormat.encodeSidecar(envelope))
    assert.isTrue(Either.isRight(side))
    assert.deepStrictEqual(NativeFormat.userMetadata({ ...m, "user-meta": "x" }), { "user-meta": "x" })
  })

  it("rejects missing, unknown and malformed envelopes with distinct reasons", () => {
    const m = NativeFormat.encodeEnvelope(envelope)
    const reason = (x: Record<string, string>) => Either.match(NativeFormat.decodeEnvelope(x), { onLeft: (l) => l.reason, onRight: () => "ok" })
    assert.strictEqual(reason({}), "MissingMetadata")
    assert.strictEqual(reason({ ...m, ocv: "2" }), "UnknownFormat")
    assert.strictEqual(reason({ ...m, ocseg: "12" }), "MalformedMetadata")
    assert.strictEqual(reason({ ...m, ocseg: "01024" }), "MalformedMetadata")
    assert.strictEqual(reason({ ...m, ocsalt: "AAAA" }), "MalformedMetadata")
    assert.strictEqual(reason({ ...m, occm: m.occm + "=" }), "MalformedMetadata")
    assert.strictEqual(reason({ ...m, oclen: "-1" }), "MalformedMetadata")
    assert.strictEqual(reason({ ...m, occtx: "bm90IGpzb24" }), "MalformedMetadata")
    assert.strictEqual(reason({ ...m, ock0: "des.1.a2V5.AAAA" }), "MalformedMetadata")
    const { ock0: _, ...noKeys } = m
    assert.strictEqual(reason(noKeys), "MalformedMetadata")
    assert.strictEqual(reason({ ocv: "1", ocsc: "short" }), "MalformedMetadata")
    assert.strictEqual(Either.getLeft(NativeFormat.decodeSidecar(Buffer.from("{"))).pipe(Option.map((l) => l.reason), Option.getOrNull), "MalformedMetadata")
  })
})
