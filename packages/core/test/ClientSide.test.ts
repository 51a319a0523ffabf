import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Either, Fiber, Option, Redacted, Stream } from "effect"
import * as fc from "fast-check"
import * as crypto from "node:crypto"
import * as ClientSide from "../src/ClientSide.js"
import * as Keyring from "../src/Keyring.js"
import * as NativeFormat from "../src/NativeFormat.js"
import * as ObjectStore from "../src/ObjectStore.js"
import { keyPair, memoryKeyStore, memoryKms, symmetric } from "./support/Keys.js"
import * as MemoryStore from "./support/MemoryStore.js"

const aesKey = crypto.randomBytes(32)
const otherKey = crypto.randomBytes(32)
const rsa = crypto.generateKeyPairSync("rsa", { modulusLength: 4096 }).privateKey
const x25519 = crypto.generateKeyPairSync("x25519").privateKey
const kmsKeys = { master: crypto.randomBytes(32) }

const aes = (id = "k1", material: Uint8Array = aesKey, version = 1) => Keyring.aes({ keyId: id, version, material: Redacted.make(material) })
const unwrapper = Keyring.makeUnwrapper({
  keyStore: memoryKeyStore([symmetric("k1", 1, aesKey), symmetric("k2", 1, otherKey), keyPair("rsa", 1, rsa), keyPair("x", 1, x25519)]),
  kms: memoryKms(kmsKeys)
})

const body = (bytes: Uint8Array, chunk = 4096) =>
  Stream.fromIterable(Array.from({ length: Math.ceil(bytes.length / chunk) }, (_, i) => bytes.subarray(i * chunk, (i + 1) * chunk)))

const read = (store: MemoryStore.MemoryStore, key: string, options?: ClientSide.GetOptions, u: Keyring.Unwrapper = unwrapper) =>
  ClientSide.getBytes(store, key, u, options).pipe(Effect.map((b) => Buffer.from(b)))

const small = { segmentSize: 64, partSize: 256 }

describe("ClientSide put/get", () => {
  it.effect("round-trips a small object with the envelope in metadata", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      const pt = crypto.randomBytes(1000)
      const r = yield* ClientSide.put(store, "docs/a.txt", body(pt), [aes()], {
        contentType: "text/plain",
        metadata: { owner: "me" },
        context: { tenant: "t1" }
      })
      assert.strictEqual(r.envelope, "metadata")
      assert.strictEqual(r.plaintextSize, 1000)
      const stored = store.objects.get("docs/a.txt")!
      assert.strictEqual(stored.bytes.length, NativeFormat.ciphertextSize(1000, NativeFormat.DEFAULT_SEGMENT_SIZE))
      assert.isFalse(Buffer.from(stored.bytes).includes(pt.subarray(0, 32)))
      assert.strictEqual(stored.metadata.owner, "me")
      assert.isTrue((yield* read(store, "docs/a.txt")).equals(pt))
      const info = yield* store.head("docs/a.txt")
      assert.isTrue(ClientSide.isClientSide(info))
      const summary = Either.getOrThrow(ClientSide.inspect(info))
      assert.deepStrictEqual(
        { ...summary, algorithm: undefined },
        {
          format: "objcrypt-native",
          formatVersion: 1,
          algorithm: undefined,
          location: "metadata",
          segmentSize: NativeFormat.DEFAULT_SEGMENT_SIZE,
          ciphertextSize: 1016,
          plaintextSize: 1000,
          segments: 1,
          context: { tenant: "t1" },
          keys: [{ type: "aes-gcm", keyId: "k1", version: 1 }]
        }
      )
      assert.notInclude(JSON.stringify(summary), NativeFormat.b64u(aesKey))
    }))

  it.effect("the empty object round-trips; any range on it is InvalidRange", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      yield* ClientSide.put(store, "empty", Stream.empty, [aes()])
      assert.strictEqual(store.objects.get("empty")!.bytes.length, 16)
      assert.strictEqual((yield* read(store, "empty")).length, 0)
      const e = yield* Effect.flip(read(store, "empty", { range: ObjectStore.range.bounded(0, 0) }))
      assert.strictEqual(e._tag, "InvalidRange")
    }))

  it.effect("property: random sizes, segment and part sizes, chunkings and ranges; ranged reads fetch only their segments", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 0, max: 3000 }),
          fc.integer({ min: 16, max: 200 }),
          fc.integer({ min: 1, max: 4 }),
          fc.integer({ min: 1, max: 900 }),
          fc.boolean(),
          fc.oneof(
            fc.tuple(fc.constant("Bounded" as const), fc.nat(3500), fc.nat(3500)),
            fc.tuple(fc.constant("From" as const), fc.nat(3500), fc.constant(0)),
            fc.tuple(fc.constant("Suffix" as const), fc.integer({ min: 1, max: 3500 }), fc.constant(0))
          ),
          async (size, seg, segsPerPart, chunk, known, [tag, a, b]) => {
            const store = MemoryStore.make()
            const pt = crypto.randomBytes(size)
            await Effect.runPromise(ClientSide.put(store, "obj", body(pt, chunk), [aes()], {
              segmentSize: seg,
              partSize: seg * segsPerPart,
              contentLength: known ? size : undefined,
              concurrency: 3
            }))
            assert.isTrue((await Effect.runPromise(read(store, "obj"))).equals(pt))
            const range: ObjectStore.ByteRange = tag === "Bounded"
              ? ObjectStore.range.bounded(Math.min(a, b), Math.max(a, b))
              : tag === "From"
              ? ObjectStore.range.from(a)
              : ObjectStore.range.suffix(a)
            const resolved = ObjectStore.resolveRange(range, size)
            const before = store.stats.getBytes
            const got = await Effect.runPromise(Effect.either(read(store, "obj", { range })))
            if (resolved._tag === "None") {
              assert.isTrue(Either.isLeft(got) && got.left._tag === "InvalidRange")
              return
            }
            assert.isTrue(Either.isRight(got))
            assert.isTrue(Either.getOrThrow(got).equals(pt.subarray(resolved.value.start, resolved.value.end)))
            const plan = NativeFormat.planRange(size, seg, resolved.value)
            assert.strictEqual(store.stats.getBytes - before, plan.cipherEnd - plan.cipherStart)
          }
        ),
        { numRuns: 50 }
      )
    ))

  it.effect("ranged get reports the plaintext range and size", () =>
    Effect.scoped(Effect.gen(function*() {
      const store = MemoryStore.make()
      const pt = crypto.randomBytes(5000)
      yield* ClientSide.put(store, "r", body(pt), [aes()], small)
      const o = yield* ClientSide.get(store, "r", unwrapper, { range: ObjectStore.range.suffix(100) })
      assert.deepStrictEqual([o.plaintextSize, o.range], [5000, { start: 4900, end: 5000 }])
      const bytes = Buffer.concat(Chunk.toArray(yield* Stream.runCollect(o.body)))
      assert.isTrue(bytes.equals(pt.subarray(4900)))
      const past = yield* Effect.flip(read(store, "r", { range: ObjectStore.range.from(5000) }))
      assert.strictEqual(past._tag, "InvalidRange")
      const clamped = yield* read(store, "r", { range: ObjectStore.range.bounded(4990, 99999) })
      assert.isTrue(clamped.equals(pt.subarray(4990)))
    })))

  it.effect("several recipients on one object: each key alone decrypts it", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make({ maxMetadataBytes: 8192 })
      const pt = crypto.randomBytes(3000)
      const kms = memoryKms(kmsKeys)
      yield* ClientSide.put(store, "multi", body(pt), [
        aes(),
        Keyring.kms(kms, "master"),
        Keyring.recipient({ keyId: "rsa", publicKey: crypto.createPublicKey(rsa) }),
        Keyring.recipient({ keyId: "x", publicKey: crypto.createPublicKey(x25519) })
      ], { ...small, context: { purpose: "backup" } })
      const only = [
        Keyring.makeUnwrapper({ keys: [{ _tag: "Aes", keyId: "k1", material: Redacted.make(aesKey) }] }),
        Keyring.makeUnwrapper({ kms }),
        Keyring.makeUnwrapper({ keys: [{ _tag: "Private", keyId: "rsa", privateKey: Redacted.make(rsa) }] }),
        Keyring.makeUnwrapper({ keys: [{ _tag: "Private", keyId: "x", privateKey: Redacted.make(x25519) }] })
      ]
      for (const u of only) assert.isTrue((yield* read(store, "multi", undefined, u)).equals(pt))
      const summary = yield* ClientSide.readEnvelope(store, "multi")
      assert.deepStrictEqual(summary.keys!.map((k) => k.type), ["aes-gcm", "kms", "rsa-oaep-256", "x25519"])
    }))

  it.effect("the common one-keyring envelope fits S3's 2 KB; one too large goes to a sidecar", () =>
    Effect.gen(function*() {
      const s3like = MemoryStore.make({ maxMetadataBytes: 2048 })
      const r1 = yield* ClientSide.put(s3like, "one", body(crypto.randomBytes(10)), [Keyring.kms(memoryKms(kmsKeys), "master")], {
        context: { department: "finance", project: "q3-report" }
      })
      assert.strictEqual(r1.envelope, "metadata")
      const tight = MemoryStore.make({ maxMetadataBytes: 700 })
      const pt = crypto.randomBytes(700)
      const rsaRing = Keyring.recipient({ keyId: "rsa", publicKey: crypto.createPublicKey(rsa) })
      const r2 = yield* ClientSide.put(tight, "big", body(pt), [rsaRing, aes()], small)
      assert.strictEqual(r2.envelope, "sidecar")
      assert.deepStrictEqual(Object.keys(tight.objects.get("big")!.metadata).sort(), ["ocsc", "ocv"])
      assert.isTrue((yield* read(tight, "big")).equals(pt))
      assert.strictEqual((yield* ClientSide.readEnvelope(tight, "big")).keys!.length, 2)
      // Overwriting replaces the sidecar and removes the old one.
      yield* ClientSide.put(tight, "big", body(pt), [rsaRing, aes()], small)
      assert.strictEqual([...tight.objects.keys()].filter((k) => k.startsWith("big.ocenv.")).length, 1)
      // Told the current version (as a caller that headed the key gives it), put does not head it
      // again and still removes the replaced version's sidecar.
      const current = yield* tight.head("big")
      const heads = tight.stats.heads
      yield* ClientSide.put(tight, "big", body(pt), [rsaRing, aes()], { ...small, current })
      assert.strictEqual(tight.stats.heads, heads, "no head when the current version is given")
      assert.strictEqual([...tight.objects.keys()].filter((k) => k.startsWith("big.ocenv.")).length, 1)
      // null: nothing to replace, nothing removed (the sidecar of the version actually there stays).
      yield* ClientSide.put(tight, "big", body(pt), [rsaRing, aes()], { ...small, current: null })
      assert.strictEqual([...tight.objects.keys()].filter((k) => k.startsWith("big.ocenv.")).length, 2)
      yield* ClientSide.put(tight, "big", body(pt), [rsaRing, aes()], small)
      assert.strictEqual([...tight.objects.keys()].filter((k) => k.startsWith("big.ocenv.")).length, 2)
      const sidecar = [...tight.objects.keys()].find((k) => k === NativeFormat.sidecarKey("big", tight.objects.get("big")!.metadata["ocsc"]!))!
      tight.objects.delete(sidecar)
      const e = yield* Effect.flip(read(tight, "big"))
      assert.deepStrictEqual([e._tag, e._tag === "DecryptError" ? e.reason : ""], ["DecryptError", "MissingMetadata"])
    }))

  it.effect("rejects bad options before writing", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      const bad = [
        ClientSide.put(store, "x", body(Buffer.alloc(10)), [], {}),
        ClientSide.put(store, "x", body(Buffer.alloc(10)), [aes()], { segmentSize: 8 }),
        ClientSide.put(store, "x", body(Buffer.alloc(10)), [aes()], { segmentSize: 64, partSize: 100 }),
        ClientSide.put(store, "x", body(Buffer.alloc(10)), [aes()], { context: { "oc:key": "y" } }),
        ClientSide.put(store, "x", body(Buffer.alloc(10)), [aes()], { metadata: { ocv: "2" } }),
        ClientSide.put(store, "x", body(Buffer.alloc(10)), [aes()], { contentLength: 11 })
      ]
      for (const b of bad) assert.strictEqual((yield* Effect.flip(b))._tag, "EncryptError")
      assert.strictEqual(store.objects.size, 0)
    }))
})

describe("ClientSide multipart", () => {
  it.effect("large unknown-length bodies are encrypted in independent parts, concurrently, and read back whole", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make({ minPartSize: 1024 })
      const pt = crypto.randomBytes(64 * 1024 + 123)
      const r = yield* ClientSide.put(store, "mp", body(pt, 1000), [aes()], { segmentSize: 1024, partSize: 4096, concurrency: 4 })
      assert.strictEqual(r.parts, 17)
      assert.strictEqual(store.stats.parts, 17)
      assert.strictEqual(store.objects.get("mp")!.bytes.length, NativeFormat.ciphertextSize(pt.length, 1024))
      assert.isTrue((yield* read(store, "mp")).equals(pt))
      // No plaintext length is recorded for an unknown-length upload; the body's size gives it.
      assert.strictEqual((yield* ClientSide.readEnvelope(store, "mp")).plaintextSize, pt.length)
      const mid = yield* read(store, "mp", { range: ObjectStore.range.bounded(5000, 40000) })
      assert.isTrue(mid.equals(pt.subarray(5000, 40001)))
    }))

  it.effect("a worker pool produces the same bytes as the calling thread", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* ClientSide.makeWorkerPool(2)
      const keys = NativeFormat.deriveKeys(crypto.randomBytes(32), { segmentSize: 100, salt: crypto.randomBytes(32) }, { a: "b" })
      const pt = crypto.randomBytes(1050)
      const viaPool = yield* pool.seal(keys, 7, true, [pt.subarray(0, 333), pt.subarray(333)])
      const out: Array<Uint8Array> = []
      const s = NativeFormat.makeSealer(keys, { firstSegment: 7, final: true })
      s.push(pt, out)
      s.end(out)
      assert.isTrue(Buffer.concat(viaPool.map((x) => Buffer.from(x))).equals(Buffer.concat(out)))
      const store = MemoryStore.make()
      const big = crypto.randomBytes(40_000)
      yield* ClientSide.put(store, "pooled", body(big, 3000), [aes()], { segmentSize: 512, partSize: 2048, pool })
      assert.isTrue((yield* read(store, "pooled")).equals(big))
    })))

  it.effect("without a part size, a large body is one streaming put the store cuts itself (no parts then concatenation)", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make({ minPartSize: 1024 })
      const pt = crypto.randomBytes(9 * 1024 * 1024 + 77)
      const r = yield* ClientSide.put(store, "one", body(pt, 65536), [aes()], { segmentSize: 4096, contentLength: pt.length })
      assert.deepStrictEqual([r.parts, store.stats.puts, store.stats.parts], [1, 1, 0])
      assert.strictEqual(store.objects.get("one")!.bytes.length, NativeFormat.ciphertextSize(pt.length, 4096))
      assert.strictEqual((yield* ClientSide.readEnvelope(store, "one")).plaintextSize, pt.length)
      assert.isTrue((yield* read(store, "one")).equals(pt))
      // Unknown length: no plaintext length recorded, the body's size gives it.
      yield* ClientSide.put(store, "unknown", body(pt, 65536), [aes()], { segmentSize: 4096 })
      assert.isTrue((yield* read(store, "unknown")).equals(pt))
    }), { timeout: 30_000 })

  it.effect("a borrowed body (one buffer reused for every chunk) round-trips on every put path", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 0, max: 3000 }),
          fc.integer({ min: 16, max: 200 }),
          fc.integer({ min: 1, max: 900 }),
          fc.constantFrom("sized", "parts", "unknown"),
          async (size, seg, chunk, path) => {
            const store = MemoryStore.make()
            const pt = crypto.randomBytes(size)
            // Every pull overwrites the same buffer: a chunk kept past the next pull is corrupted.
            const scratch = Buffer.alloc(chunk)
            let at = 0
            const borrowed = Stream.repeatEffectOption(Effect.suspend(() => {
              if (at >= size) return Effect.fail(Option.none())
              const n = Math.min(chunk, size - at)
              pt.copy(scratch, 0, at, at + n)
              at += n
              return Effect.succeed(scratch.subarray(0, n) as Uint8Array)
            }))
            const r = await Effect.runPromise(ClientSide.put(store, "obj", borrowed, [aes()], {
              segmentSize: seg,
              partSize: path === "parts" ? seg * 2 : undefined,
              contentLength: path === "unknown" ? undefined : size,
              borrowedBody: true
            }))
            assert.strictEqual(r.plaintextSize, size)
            assert.isTrue((await Effect.runPromise(read(store, "obj"))).equals(pt))
          }
        ),
        { numRuns: 60 }
      )
    ))

  it.effect("ifNoneMatch: \"*\" creates only, on every put path; an existing object is left as it was", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      const pt = crypto.randomBytes(3000)
      const paths = [
        { segmentSize: 64, contentLength: pt.length },
        { segmentSize: 64 },
        // Client-side parts: the store checks the condition when the upload completes.
        { segmentSize: 64, partSize: 256 }
      ]
      for (const [i, p] of paths.entries()) {
        yield* ClientSide.put(store, `k${i}`, body(pt, 700), [aes()], { ...p, ifNoneMatch: "*" })
        const before = store.objects.get(`k${i}`)!.bytes
        const e = yield* Effect.flip(ClientSide.put(store, `k${i}`, body(crypto.randomBytes(pt.length), 700), [aes()], { ...p, ifNoneMatch: "*" }))
        assert.strictEqual(e._tag, "PreconditionFailed")
        assert.strictEqual(store.objects.get(`k${i}`)!.bytes, before)
        assert.isTrue((yield* read(store, `k${i}`)).equals(pt))
      }
      // The refused upload was aborted.
      assert.strictEqual(store.uploads.size, 0)
      assert.isAbove(store.stats.aborts, 0)
    }))

  it.effect("ifMatch replaces only the version with that store etag, on every put path; otherwise nothing is written", () =>
    Effect.gen(function*() {
      const rsaRing = Keyring.recipient({ keyId: "rsa", publicKey: crypto.createPublicKey(rsa) })
      const paths: ReadonlyArray<{
        store: MemoryStore.MemoryStore
        size: number
        options: ClientSide.PutOptions
        envelope: "metadata" | "sidecar"
        keyrings?: ReadonlyArray<Keyring.Keyring>
      }> = [
        { store: MemoryStore.make(), size: 3000, options: { segmentSize: 64, contentLength: 3000 }, envelope: "metadata" },
        { store: MemoryStore.make(), size: 3000, options: { segmentSize: 64 }, envelope: "metadata" },
        // Client-side parts: checked by the store when the upload completes.
        { store: MemoryStore.make(), size: 3000, options: { segmentSize: 64, partSize: 256 }, envelope: "metadata" },
        // Unknown length, larger than one part: one streaming put the store cuts itself.
        { store: MemoryStore.make({ minPartSize: 1024 }), size: 9 * 1024 * 1024 + 77, options: { segmentSize: 4096 }, envelope: "metadata" },
        // The envelope in a sidecar: a refused write leaves neither its own sidecar nor a damaged old one.
        {
          store: MemoryStore.make({ maxMetadataBytes: 700 }),
          size: 3000,
          options: { segmentSize: 64, contentLength: 3000 },
          envelope: "sidecar",
          keyrings: [rsaRing, aes()]
        }
      ]
      for (const { envelope, options, size, store, ...p } of paths) {
        const keyrings = p.keyrings ?? [aes()]
        const v1 = crypto.randomBytes(size)
        const first = yield* ClientSide.put(store, "k", body(v1, 65536), keyrings, options)
        assert.strictEqual(first.envelope, envelope)
        const stored = [...store.objects.keys()].sort()
        const stale = yield* Effect.flip(
          ClientSide.put(store, "k", body(crypto.randomBytes(size), 65536), keyrings, { ...options, ifMatch: "\"0123456789abcdef0123456789abcdef\"" })
        )
        assert.strictEqual(stale._tag, "PreconditionFailed")
        const missing = yield* Effect.flip(ClientSide.put(store, "absent", body(crypto.randomBytes(size), 65536), keyrings, { ...options, ifMatch: first.etag }))
        assert.strictEqual(missing._tag, "PreconditionFailed")
        assert.deepStrictEqual([...store.objects.keys()].sort(), stored)
        assert.isTrue((yield* read(store, "k")).equals(v1))
        // The current etag, quoted or not: replaced.
        const v2 = crypto.randomBytes(size)
        const second = yield* ClientSide.put(store, "k", body(v2, 65536), keyrings, { ...options, ifMatch: first.etag.replace(/"/g, "") })
        assert.notStrictEqual(second.etag, first.etag)
        assert.isTrue((yield* read(store, "k")).equals(v2))
        // The replaced version's etag no longer matches.
        const old = yield* Effect.flip(ClientSide.put(store, "k", body(v1, 65536), keyrings, { ...options, ifMatch: first.etag }))
        assert.strictEqual(old._tag, "PreconditionFailed")
        assert.isTrue((yield* read(store, "k")).equals(v2))
        assert.strictEqual(store.objects.size, stored.length)
        assert.strictEqual(store.uploads.size, 0, "no upload left behind")
      }
    }), { timeout: 60_000 })

  it.effect("ifMatch with ifNoneMatch is refused before any write", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      const pt = crypto.randomBytes(3000)
      const first = yield* ClientSide.put(store, "k", body(pt, 700), [aes()], { segmentSize: 64 })
      const puts = store.stats.puts
      const parts = yield* Effect.flip(ClientSide.put(store, "k", body(pt, 700), [aes()], { segmentSize: 64, partSize: 256, ifMatch: first.etag, ifNoneMatch: "*" }))
      assert.deepStrictEqual([parts._tag, parts._tag === "ProviderError" ? parts.status : undefined], ["ProviderError", 400])
      assert.strictEqual(store.stats.parts, 0)
      const both = yield* Effect.flip(ClientSide.put(store, "k", body(pt, 700), [aes()], { segmentSize: 64, ifMatch: first.etag, ifNoneMatch: "*" }))
      assert.strictEqual(both._tag, "ProviderError")
      assert.strictEqual(both._tag === "ProviderError" ? both.status : undefined, 400)
      assert.strictEqual(store.stats.puts, puts)
      assert.strictEqual(store.uploads.size, 0)
      assert.strictEqual(store.objects.get("k")!.etag, first.etag)
    }))

  it.effect("a body sealed as it arrives that is shorter or longer than contentLength fails and stores nothing", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      const pt = crypto.randomBytes(5000)
      for (const announced of [0, 4999, 5001, 20_000]) {
        const e = yield* Effect.flip(ClientSide.put(store, "k", body(pt, 700), [aes()], { segmentSize: 64, contentLength: announced, borrowedBody: true }))
        assert.strictEqual(e._tag, "EncryptError")
        assert.match(e.message, announced < 5000 ? /longer than/ : /not the \d+ announced/)
      }
      assert.strictEqual(store.objects.size, 0)
    }))

  it.effect("a streaming put whose body is shorter or longer than contentLength fails and stores nothing", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      const pt = crypto.randomBytes(9 * 1024 * 1024)
      const short = yield* Effect.flip(ClientSide.put(store, "s", body(pt, 65536), [aes()], { contentLength: pt.length + 1 }))
      const long = yield* Effect.flip(ClientSide.put(store, "l", body(pt, 65536), [aes()], { contentLength: pt.length - 1 }))
      assert.deepStrictEqual([short._tag, long._tag], ["EncryptError", "EncryptError"])
      assert.strictEqual(store.objects.size, 0)
    }), { timeout: 30_000 })

  it.effect("a worker pool on put (transferring fresh chunks) and on get reads back the same bytes", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* ClientSide.makeWorkerPool(2)
      const store = MemoryStore.make()
      const pt = crypto.randomBytes(9 * 1024 * 1024 + 5)
      const fresh = Array.from({ length: Math.ceil(pt.length / 65536) }, (_, i) => Uint8Array.from(pt.subarray(i * 65536, (i + 1) * 65536)))
      yield* ClientSide.put(store, "p", Stream.fromIterable(fresh), [aes()], { segmentSize: 65536, pool, transferBody: true })
      assert.strictEqual(fresh[0]!.length, 0, "transferred chunks are detached")
      assert.isTrue((yield* read(store, "p", { pool })).equals(pt))
      assert.isTrue((yield* read(store, "p")).equals(pt))
      const mid = yield* read(store, "p", { pool, range: ObjectStore.range.bounded(70_000, 5_000_000) })
      assert.isTrue(mid.equals(pt.subarray(70_000, 5_000_001)))
      const entry = store.objects.get("p")!
      entry.bytes = Buffer.from(entry.bytes)
      entry.bytes[3 * (65536 + 16) + 9]! ^= 1
      const e = yield* Effect.flip(read(store, "p", { pool }))
      assert.strictEqual(e._tag === "DecryptError" ? e.reason : e._tag, "Tampered")
    })), { timeout: 30_000 })

  it.effect("a failing part aborts the upload: nothing partial remains", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      store.failPart = 3
      const e = yield* Effect.flip(ClientSide.put(store, "fail", body(crypto.randomBytes(5000)), [aes()], small))
      assert.strictEqual(e._tag, "ProviderError")
      assert.strictEqual(store.stats.aborts, 1)
      assert.strictEqual(store.uploads.size, 0)
      assert.isFalse(store.objects.has("fail"))
    }))

  it.effect("a body shorter or longer than contentLength aborts the upload", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      const short = yield* Effect.flip(ClientSide.put(store, "s", body(crypto.randomBytes(1000)), [aes()], { ...small, contentLength: 1200 }))
      const long = yield* Effect.flip(ClientSide.put(store, "l", body(crypto.randomBytes(1000)), [aes()], { ...small, contentLength: 900 }))
      assert.deepStrictEqual([short._tag, long._tag], ["EncryptError", "EncryptError"])
      assert.strictEqual(store.stats.aborts, 2)
      assert.strictEqual(store.uploads.size, 0)
      assert.strictEqual(store.objects.size, 0)
    }))

  it.live("interrupting an upload aborts it", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      // A never-ending source that waits on the event loop for each chunk, as a socket would.
      const endless = Stream.repeatEffect(Effect.promise(() => new Promise<Uint8Array>((r) => setImmediate(() => r(crypto.randomBytes(100))))))
      const fiber = yield* Effect.fork(ClientSide.put(store, "endless", endless, [aes()], small))
      while (store.stats.parts < 3) yield* Effect.sleep("5 millis")
      yield* Fiber.interrupt(fiber)
      assert.strictEqual(store.stats.aborts, 1)
      assert.strictEqual(store.uploads.size, 0)
      assert.isFalse(store.objects.has("endless"))
    }))

  it.effect("memory stays bounded while 256 MiB stream through put", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make({ minPartSize: 5 * 1024 * 1024, discardBodies: true })
      const MiB = 1024 * 1024
      const chunk = crypto.randomBytes(MiB)
      const total = 256
      // Bytes taken from the source but not yet handed to the store: what put holds, whatever the GC does.
      let pulled = 0
      let peak = 0
      const heapBefore = process.memoryUsage().heapUsed
      const src = Stream.range(1, total, 1).pipe(
        Stream.map(() => chunk),
        Stream.tap(() =>
          Effect.sync(() => {
            pulled += MiB
            peak = Math.max(peak, pulled - store.stats.consumed)
          })
        )
      )
      const r = yield* ClientSide.put(store, "huge", src, [aes()], { concurrency: 4 })
      assert.strictEqual(r.plaintextSize, total * MiB)
      assert.strictEqual(r.size, NativeFormat.ciphertextSize(total * MiB, NativeFormat.DEFAULT_SEGMENT_SIZE))
      assert.strictEqual(store.stats.consumed, r.size)
      // (concurrency + 2) parts of 8 MiB at most in flight, whatever the object size.
      assert.isAtMost(peak, 6 * 8 * MiB, `peak in flight ${peak}`)
      assert.isBelow(process.memoryUsage().heapUsed - heapBefore, 64 * MiB)
    }), { timeout: 30_000 })
})

describe("ClientSide failures", () => {
  const setup = Effect.gen(function*() {
    const store = MemoryStore.make()
    const pt = crypto.randomBytes(64 * 10 + 5)
    yield* ClientSide.put(store, "a", body(pt), [aes()], { ...small, contentLength: pt.length })
    yield* ClientSide.put(store, "b", body(crypto.randomBytes(300)), [aes()], small)
    // Unknown length: no plaintext length in the envelope.
    yield* ClientSide.put(store, "u", body(pt), [aes()], small)
    return { store, pt, entry: store.objects.get("a")! }
  })
  const reasonOf = (e: { _tag: string; reason?: unknown }) => e._tag === "DecryptError" ? e.reason : e._tag
  const full = 80

  it.effect("a flipped bit anywhere in the body → Tampered", () =>
    Effect.gen(function*() {
      const { entry, store } = yield* setup
      entry.bytes = Buffer.from(entry.bytes)
      entry.bytes[3 * full + 10]! ^= 4
      assert.strictEqual(reasonOf(yield* Effect.flip(read(store, "a"))), "Tampered")
    }))

  it.effect("no plaintext from the bad segment onward is released", () =>
    Effect.scoped(Effect.gen(function*() {
      const { entry, pt, store } = yield* setup
      entry.bytes = Buffer.from(entry.bytes)
      entry.bytes[4 * full + 70]! ^= 1 // in the tag of segment 4
      const o = yield* ClientSide.get(store, "a", unwrapper)
      const got: Array<Uint8Array> = []
      const e = yield* o.body.pipe(Stream.runForEach((c) => Effect.sync(() => got.push(c))), Effect.flip)
      assert.strictEqual(reasonOf(e), "Tampered")
      assert.isTrue(Buffer.concat(got).equals(pt.subarray(0, 4 * 64)))
    })))

  it.effect("the final segment cut off → Truncated; bytes appended → TrailingData", () =>
    Effect.gen(function*() {
      const { entry, store } = yield* setup
      const original = entry.bytes
      entry.bytes = original.subarray(0, 10 * full)
      assert.strictEqual(reasonOf(yield* Effect.flip(read(store, "a"))), "Truncated")
      entry.bytes = original.subarray(0, original.length - 3)
      assert.strictEqual(reasonOf(yield* Effect.flip(read(store, "a"))), "Truncated")
      entry.bytes = Buffer.concat([original, Buffer.alloc(80)])
      assert.strictEqual(reasonOf(yield* Effect.flip(read(store, "a"))), "TrailingData")
      // Without a recorded length, a cut on a segment boundary is still caught by the final flag.
      const u = store.objects.get("u")!
      assert.strictEqual((yield* ClientSide.readEnvelope(store, "u")).plaintextSize, 645)
      u.bytes = u.bytes.subarray(0, 10 * full)
      assert.strictEqual(reasonOf(yield* Effect.flip(read(store, "u"))), "Truncated")
    }))

  it.effect("reordered or duplicated segments → Reordered", () =>
    Effect.gen(function*() {
      const { entry, store } = yield* setup
      const b = Buffer.from(entry.bytes)
      entry.bytes = Buffer.concat([b.subarray(0, 2 * full), b.subarray(3 * full, 4 * full), b.subarray(2 * full, 3 * full), b.subarray(4 * full)])
      assert.strictEqual(reasonOf(yield* Effect.flip(read(store, "a"))), "Reordered")
      entry.bytes = Buffer.concat([b.subarray(0, 5 * full), b.subarray(0, full), b.subarray(6 * full)])
      assert.strictEqual(reasonOf(yield* Effect.flip(read(store, "a", { range: ObjectStore.range.bounded(5 * 64, 6 * 64 + 3) }))), "Reordered")
    }))

  it.effect("wrong key → WrongKey; no key → NoUsableKey", () =>
    Effect.gen(function*() {
      const { store } = yield* setup
      const wrong = Keyring.makeUnwrapper({ keyStore: memoryKeyStore([symmetric("k1", 1, otherKey)]) })
      assert.strictEqual(reasonOf(yield* Effect.flip(read(store, "a", undefined, wrong))), "WrongKey")
      const none = Keyring.makeUnwrapper({ keyStore: memoryKeyStore([symmetric("k9", 1, aesKey)]) })
      assert.strictEqual(reasonOf(yield* Effect.flip(read(store, "a", undefined, none))), "NoUsableKey")
    }))

  it.effect("an envelope moved onto another object → ContextMismatch; a whole object copied elsewhere reads with encryptedFor", () =>
    Effect.gen(function*() {
      const { entry, store } = yield* setup
      store.objects.get("b")!.metadata = { ...entry.metadata }
      assert.strictEqual(reasonOf(yield* Effect.flip(read(store, "b"))), "ContextMismatch")
      yield* store.copy("a", "a-copy")
      assert.strictEqual(reasonOf(yield* Effect.flip(read(store, "a-copy"))), "ContextMismatch")
      const ok = yield* read(store, "a-copy", { encryptedFor: { bucket: store.bucket, key: "a" } })
      assert.strictEqual(ok.length, 645)
      // Forging the context digest too does not help: the key entries are bound to the context.
      const forged = NativeFormat.fullContext(store.bucket, "b", {})
      store.objects.get("b")!.metadata = { ...entry.metadata, occx: NativeFormat.b64u(NativeFormat.contextDigest(forged)) }
      assert.strictEqual(reasonOf(yield* Effect.flip(read(store, "b"))), "WrongKey")
    }))

  it.effect("a changed commitment → CommitmentMismatch; changed salt or segment size → WrongKey", () =>
    Effect.gen(function*() {
      const { entry, store } = yield* setup
      const m = { ...entry.metadata }
      entry.metadata = { ...m, occm: NativeFormat.b64u(crypto.randomBytes(32)) }
      assert.strictEqual(reasonOf(yield* Effect.flip(read(store, "a"))), "CommitmentMismatch")
      entry.metadata = { ...m, ocsalt: NativeFormat.b64u(crypto.randomBytes(32)) }
      assert.strictEqual(reasonOf(yield* Effect.flip(read(store, "a"))), "WrongKey")
      entry.metadata = { ...m, ocseg: "128" }
      assert.strictEqual(reasonOf(yield* Effect.flip(read(store, "a"))), "WrongKey")
      entry.metadata = { ...m, oclen: "600" }
      assert.strictEqual(reasonOf(yield* Effect.flip(read(store, "a"))), "TrailingData")
    }))

  it.effect("missing metadata, unknown version, malformed envelope", () =>
    Effect.gen(function*() {
      const { entry, store } = yield* setup
      yield* store.put("plain", Stream.make(Buffer.from("hello")))
      assert.strictEqual(reasonOf(yield* Effect.flip(read(store, "plain"))), "MissingMetadata")
      assert.isFalse(ClientSide.isClientSide(yield* store.head("plain")))
      const m = { ...entry.metadata }
      entry.metadata = { ...m, ocv: "9" }
      assert.strictEqual(reasonOf(yield* Effect.flip(read(store, "a"))), "UnknownFormat")
      entry.metadata = { ...m, ock0: "aes-gcm.1.azE.!!" }
      assert.strictEqual(reasonOf(yield* Effect.flip(read(store, "a"))), "MalformedMetadata")
      assert.strictEqual(reasonOf(Either.getLeft(ClientSide.inspect(yield* store.head("a"))).pipe((o) => o._tag === "Some" ? o.value : { _tag: "none" })), "MalformedMetadata")
    }))
})

describe("ClientSide rekey", () => {
  it.effect("replaces the wrapped key without touching one body byte", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      const pt = crypto.randomBytes(2000)
      yield* ClientSide.put(store, "rk", body(pt), [aes()], { ...small, metadata: { keep: "me" }, contentType: "x/y" })
      const before = Buffer.from(store.objects.get("rk")!.bytes)
      const summary = yield* ClientSide.rekey(store, "rk", unwrapper, { _tag: "Replace", keyrings: [aes("k2", otherKey)] })
      assert.deepStrictEqual(summary.keys, [{ type: "aes-gcm", keyId: "k2", version: 1 }])
      const after = store.objects.get("rk")!
      assert.isTrue(Buffer.from(after.bytes).equals(before))
      assert.strictEqual(after.metadata.keep, "me")
      assert.strictEqual(after.contentType, "x/y")
      assert.strictEqual(store.stats.copies, 1)
      const onlyOld = Keyring.makeUnwrapper({ keyStore: memoryKeyStore([symmetric("k1", 1, aesKey)]) })
      assert.strictEqual((yield* Effect.flip(read(store, "rk", undefined, onlyOld)))._tag, "DecryptError")
      assert.isTrue((yield* read(store, "rk")).equals(pt))
    }))

  it.effect("adds and removes recipients, moving the envelope to and from a sidecar as needed", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make({ maxMetadataBytes: 800 })
      const pt = crypto.randomBytes(500)
      yield* ClientSide.put(store, "r2", body(pt), [aes()], small)
      const before = Buffer.from(store.objects.get("r2")!.bytes)
      const rsaRing = Keyring.recipient({ keyId: "rsa", publicKey: crypto.createPublicKey(rsa) })
      const s1 = yield* ClientSide.rekey(store, "r2", unwrapper, { _tag: "Update", add: [rsaRing, Keyring.recipient({ keyId: "x", publicKey: crypto.createPublicKey(x25519) })] })
      assert.strictEqual(s1.location, "sidecar")
      assert.deepStrictEqual(s1.keys!.map((k) => k.keyId), ["k1", "rsa", "x"])
      const onlyX = Keyring.makeUnwrapper({ keys: [{ _tag: "Private", keyId: "x", privateKey: Redacted.make(x25519) }] })
      assert.isTrue((yield* read(store, "r2", undefined, onlyX)).equals(pt))
      const s2 = yield* ClientSide.rekey(store, "r2", onlyX, { _tag: "Update", remove: [{ keyId: "rsa" }, { keyId: "k1" }] })
      assert.strictEqual(s2.location, "metadata")
      assert.deepStrictEqual(s2.keys!.map((k) => k.keyId), ["x"])
      assert.deepStrictEqual([...store.objects.keys()].sort(), ["r2"])
      assert.isTrue(Buffer.from(store.objects.get("r2")!.bytes).equals(before))
      const none = yield* Effect.flip(ClientSide.rekey(store, "r2", onlyX, { _tag: "Update", remove: [{ keyId: "x" }] }))
      assert.strictEqual(none._tag, "EncryptError")
      const denied = yield* Effect.flip(ClientSide.rekey(store, "r2", Keyring.makeUnwrapper({}), { _tag: "Replace", keyrings: [aes()] }))
      assert.strictEqual(denied._tag === "DecryptError" ? denied.reason : denied._tag, "NoUsableKey")
    }))

  /** The store, but the first `copy` lets another writer replace `key` (under k2) just before it runs. */
  const racing = (store: MemoryStore.MemoryStore, key: string, replacement: Uint8Array): ObjectStore.ObjectStore["Type"] => {
    let raced = false
    return {
      ...store,
      copy: (source, destination, options) =>
        Effect.suspend(() => {
          if (raced) return store.copy(source, destination, options)
          raced = true
          return Effect.zipRight(
            Effect.orDie(ClientSide.put(store, key, body(replacement), [aes("k2", otherKey)], small)),
            store.copy(source, destination, options)
          )
        })
    }
  }

  for (const placement of ["metadata", "sidecar"] as const) {
    it.effect(`a writer replacing the object between the head and the copy: PreconditionFailed, the new object intact (${placement})`, () =>
      Effect.gen(function*() {
        const store = MemoryStore.make({ maxMetadataBytes: 800 })
        yield* ClientSide.put(store, "race", body(crypto.randomBytes(700)), [aes()], small)
        const replacement = crypto.randomBytes(900)
        const add = placement === "metadata"
          ? [aes("k2", otherKey)]
          : [Keyring.recipient({ keyId: "rsa", publicKey: crypto.createPublicKey(rsa) }), Keyring.recipient({ keyId: "x", publicKey: crypto.createPublicKey(x25519) })]
        const e = yield* Effect.flip(ClientSide.rekey(racing(store, "race", replacement), "race", unwrapper, { _tag: "Update", add }))
        assert.strictEqual(e._tag, "PreconditionFailed")
        assert.strictEqual(e._tag === "PreconditionFailed" ? e.reason : "", "the object changed during re-keying; nothing was changed")
        // The new body keeps its own envelope: it opens with its key alone, and with nothing else.
        const onlyK2 = Keyring.makeUnwrapper({ keyStore: memoryKeyStore([symmetric("k2", 1, otherKey)]) })
        assert.isTrue((yield* read(store, "race", undefined, onlyK2)).equals(replacement))
        const onlyK1 = Keyring.makeUnwrapper({ keyStore: memoryKeyStore([symmetric("k1", 1, aesKey)]) })
        assert.strictEqual((yield* Effect.flip(read(store, "race", undefined, onlyK1)))._tag, "DecryptError")
        assert.deepStrictEqual(Either.getOrThrow(ClientSide.inspect(yield* store.head("race"))).keys, [{ type: "aes-gcm", keyId: "k2", version: 1 }])
        // No sidecar left behind by the failed attempt.
        assert.deepStrictEqual([...store.objects.keys()], ["race"])
        assert.strictEqual(store.stats.copies, 0)
        // Run again, it re-keys the new object.
        const again = yield* ClientSide.rekey(store, "race", unwrapper, { _tag: "Update", add })
        assert.strictEqual(again.location, placement)
        assert.isTrue((yield* read(store, "race")).equals(replacement))
      }))
  }

  it.effect("re-keying a removed object is ObjectNotFound", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      const e = yield* Effect.flip(ClientSide.rekey(store, "gone", unwrapper, { _tag: "Replace", keyrings: [aes("k2", otherKey)] }))
      assert.strictEqual(e._tag, "ObjectNotFound")
    }))
})
