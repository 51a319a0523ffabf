/**
 * What only GCS semantics show, against the test-kit GCS server with the official client: CSEK
 * enforced (missing/wrong key refused, only the key's SHA-256 on the server), rotation by rewrite
 * across rewrite tokens, CMEK echoed (per object and bucket default), modes refused before any
 * request, parallel uploads (hierarchical compose, flat memory, nothing left after a failure or an
 * interruption), and client-side cse-c objects with tampering, truncation and a missing envelope.
 */
import { assert, describe, layer } from "@effect/vitest"
import * as ClientSide from "@objcrypt/core/ClientSide"
import * as CustomerKey from "@objcrypt/core/CustomerKey"
import * as Keyring from "@objcrypt/core/Keyring"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as GcsServer from "@objcrypt/test-kit/GcsServer"
import { Context, Data, Effect, Either, Fiber, Layer, Redacted, Scope, Stream } from "effect"
import * as crypto from "node:crypto"
import type { GcsConfig } from "../src/GcsConfig.js"
import * as GcsBuckets from "../src/GcsBuckets.js"
import * as GcsObjectStore from "../src/GcsObjectStore.js"

const KMS = "projects/objcrypt/locations/us/keyRings/test/cryptoKeys/k1"
const KiB = 1024
const MiB = 1024 * KiB

class Env extends Context.Tag("test/Env")<Env, {
  readonly server: GcsServer.GcsServerInfo
  /** A fresh bucket and a store on it (probed unless `probe: false`). */
  readonly store: (extra?: Partial<GcsConfig>, options?: { readonly probe?: boolean; readonly defaultKmsKeyName?: string }) => Effect.Effect<GcsObjectStore.GcsObjectStore["Type"]>
}>() {}

const envLayer = Layer.scoped(
  Env,
  Effect.gen(function*() {
    const server = yield* GcsServer.make({ rewriteStep: 256 * KiB, logRequests: true })
    const scope = yield* Effect.scope
    const store = (extra?: Partial<GcsConfig>, options?: { readonly probe?: boolean; readonly defaultKmsKeyName?: string }) =>
      Effect.gen(function*() {
        const bucket = `objcrypt-${crypto.randomBytes(5).toString("hex")}`
        const base: GcsConfig = { bucket, apiEndpoint: server.endpoint, projectId: server.projectId, partSize: 256 * KiB, ...extra }
        const first = yield* GcsObjectStore.make(base)
        yield* Effect.orDie(GcsBuckets.createBucket(first.storage, bucket, options?.defaultKmsKeyName === undefined ? undefined : { defaultKmsKeyName: options.defaultKmsKeyName }))
        if (options?.probe === false) return first
        const probe = yield* GcsBuckets.probe(first, { kmsKeyName: KMS })
        return yield* GcsObjectStore.make({ ...base, facts: probe.facts })
      }).pipe(Scope.extend(scope))
    return { server, store }
  })
)


class BodyFailure extends Data.TaggedError("BodyFailure")<object> {}

const random = (n: number) => crypto.randomBytes(n)
const sse = (key: CustomerKey.CustomerKey): ObjectStore.ServerSideEncryption => ({ _tag: "SseC", key })

const flipped = <A, E>(self: Effect.Effect<A, E>) => Effect.map(Effect.either(self), (r) => (Either.isLeft(r) ? r.left : undefined))

describe("GcsObjectStore (GCS semantics)", () => {
  layer(envLayer, { timeout: "120 seconds", excludeTestServices: true })((it) => {
    it.effect("CSEK: only the key's SHA-256 on the server; a missing or wrong key is AccessDenied and never data", () =>
      Effect.gen(function*() {
        const { server, store: make } = yield* Env
        const store = yield* make()
        assert.isTrue(store.nativeModes.has("SseC"), "the probe saw CSEK enforced")
        const key = yield* CustomerKey.generate
        const wrong = yield* CustomerKey.generate
        const body = random(100_000)
        const put = yield* store.put("csek", Stream.make(body), { sse: sse(key) })
        assert.strictEqual(put.encryption.mode, "SseC")
        assert.strictEqual(put.encryption.customerKeySha256, key.sha256)
        assert.strictEqual(server.storedKeySha256(store.bucket, "csek"), key.sha256)
        const atRest = (yield* server.storedBytes(store.bucket, "csek"))!
        assert.isFalse(Buffer.from(atRest).equals(body), "the server holds ciphertext")
        const got = yield* ObjectStore.readAll(store, "csek", { sse: sse(key) })
        assert.isTrue(Buffer.from(got.bytes).equals(body))
        const missing = yield* flipped(ObjectStore.readAll(store, "csek"))
        assert.strictEqual(missing?._tag, "AccessDenied")
        assert.include((missing as { reason: string }).reason, "give its key")
        const bad = yield* flipped(ObjectStore.readAll(store, "csek", { sse: sse(wrong) }))
        assert.strictEqual(bad?._tag, "AccessDenied")
        assert.include((bad as { reason: string }).reason, "not the object's")
        const headBad = yield* flipped(store.head("csek", { sse: sse(wrong) }))
        assert.strictEqual(headBad?._tag, "AccessDenied")
        // Metadata without the key names the key's hash only.
        const info = yield* store.head("csek")
        assert.deepStrictEqual([info.encryption.mode, info.encryption.customerKeySha256, info.encryption.customerKeyMd5], ["SseC", key.sha256, undefined])
        for (const e of [missing, bad, headBad]) {
          const text = `${String(e)} ${JSON.stringify(e)}`
          assert.notInclude(text, Buffer.from(Redacted.value(key.material)).toString("base64"))
          assert.notInclude(text, Buffer.from(Redacted.value(wrong.material)).toString("base64"))
        }
        // A key of the wrong length never becomes a CustomerKey.
        const short = yield* Effect.flip(CustomerKey.fromBytes(random(16)))
        assert.strictEqual(short.reason, "WrongLength")
      }))

    it.effect("CSEK: the key travels only in x-goog-encryption-* headers, never in a URL", () =>
      Effect.gen(function*() {
        const { server, store: make } = yield* Env
        const store = yield* make()
        const key = yield* CustomerKey.generate
        const before = server.requests.length
        yield* store.put("wire", Stream.make(random(10)), { sse: sse(key) })
        yield* ObjectStore.readAll(store, "wire", { sse: sse(key) })
        const seen = server.requests.slice(before)
        const b64 = Buffer.from(Redacted.value(key.material)).toString("base64")
        assert.isAtLeast(seen.length, 3)
        for (const r of seen) {
          assert.notInclude(r.url, b64)
          assert.notInclude(r.url, encodeURIComponent(b64))
          assert.strictEqual(r.headers["x-goog-encryption-algorithm"], "AES256")
          assert.strictEqual(r.headers["x-goog-encryption-key-sha256"], key.sha256)
          assert.strictEqual(r.headers["x-goog-encryption-key"], "[redacted]")
        }
      }))

    it.effect("CSEK: rotation from one key to another by rewrite, looping on the rewrite token", () =>
      Effect.gen(function*() {
        const { server, store: make } = yield* Env
        const store = yield* make()
        const k1 = yield* CustomerKey.generate
        const k2 = yield* CustomerKey.generate
        const body = random(MiB + 7)
        yield* store.put("rotate", Stream.make(body), { sse: sse(k1), contentType: "application/x-r", metadata: { keep: "me" } })
        const before = server.requests.length
        const r = yield* store.copy("rotate", "rotate", { sourceSse: sse(k1), sse: sse(k2) })
        assert.strictEqual(r.encryption.customerKeySha256, k2.sha256)
        assert.isAtLeast(server.requests.slice(before).filter((x) => x.url.includes("rewriteToken=")).length, 3, "rewrite tokens followed")
        assert.strictEqual(server.storedKeySha256(store.bucket, "rotate"), k2.sha256)
        const got = yield* ObjectStore.readAll(store, "rotate", { sse: sse(k2) })
        assert.isTrue(Buffer.from(got.bytes).equals(body))
        assert.deepStrictEqual({ ...got.info.metadata }, { keep: "me" })
        assert.strictEqual(got.info.contentType, "application/x-r")
        const old = yield* flipped(ObjectStore.readAll(store, "rotate", { sse: sse(k1) }))
        assert.strictEqual(old?._tag, "AccessDenied")
        // Rewriting without the source key is refused.
        const noSource = yield* flipped(store.copy("rotate", "elsewhere", { sse: sse(k1) }))
        assert.strictEqual(noSource?._tag, "AccessDenied")
        assert.strictEqual(yield* flipped(store.head("elsewhere")).pipe(Effect.map((e) => e?._tag)), "ObjectNotFound")
      }))

    it.effect("CMEK: kmsKeyName echoed into ObjectInfo, per object and as the bucket default", () =>
      Effect.gen(function*() {
        const { store: make } = yield* Env
        const store = yield* make()
        const put = yield* store.put("cmek", Stream.make(random(10)), { sse: { _tag: "SseKms", keyId: KMS } })
        assert.deepStrictEqual(put.encryption, { mode: "SseKms", kmsKeyId: `${KMS}/cryptoKeyVersions/1` })
        assert.strictEqual((yield* store.head("cmek")).encryption.kmsKeyId, `${KMS}/cryptoKeyVersions/1`)
        const context = yield* flipped(store.put("ctx", Stream.make(random(1)), { sse: { _tag: "SseKms", keyId: KMS, context: { a: "b" } } }))
        assert.strictEqual(context?._tag, "UnsupportedMode")
        const dflt = "projects/objcrypt/locations/us/keyRings/test/cryptoKeys/default"
        const withDefault = yield* make({}, { defaultKmsKeyName: dflt })
        assert.deepStrictEqual(withDefault.facts.defaultEncryption, { mode: "SseKms", keyId: dflt })
        const enc = yield* GcsBuckets.getEncryption(withDefault.storage, withDefault.bucket)
        assert.strictEqual(enc.defaultKmsKeyName, dflt)
        const plain = yield* withDefault.put("plain", Stream.make(random(10)))
        assert.deepStrictEqual(plain.encryption, { mode: "SseKms", kmsKeyId: `${dflt}/cryptoKeyVersions/1` })
        // A parallel upload gets the object's CMEK key too.
        const big = random(3 * 256 * KiB + 1)
        yield* store.put("cmek-big", Stream.make(big), { sse: { _tag: "SseKms", keyId: KMS } })
        assert.strictEqual((yield* store.head("cmek-big")).encryption.kmsKeyId, `${KMS}/cryptoKeyVersions/1`)
      }))

    it.effect("an encryption enforcement config read by the probe refuses the forbidden kinds before any request", () =>
      Effect.gen(function*() {
        const { server } = yield* Env
        const bucket = `objcrypt-${crypto.randomBytes(5).toString("hex")}`
        yield* Effect.orDie(server.createBucket(bucket, {
          customerSuppliedEncryptionEnforcementConfig: { restrictionMode: "FullyRestricted" },
          googleManagedEncryptionEnforcementConfig: { restrictionMode: "NotRestricted" }
        }))
        const base: GcsConfig = { bucket, apiEndpoint: server.endpoint, projectId: server.projectId }
        const probe = yield* Effect.scoped(Effect.flatMap(GcsObjectStore.make(base), (s) => GcsBuckets.probe(s)))
        assert.deepStrictEqual(probe.facts.gcsEnforcement, { googleManaged: "NotRestricted", customerSupplied: "FullyRestricted" })
        assert.strictEqual(probe.facts.modes?.SseC, "refused")
        const store = yield* Effect.scoped(GcsObjectStore.make({ ...base, facts: probe.facts }))
        assert.isFalse(store.nativeModes.has("SseC"))
        const key = yield* CustomerKey.generate
        const before = server.requests.length
        const e = yield* flipped(store.put("x", Stream.make(random(10)), { sse: sse(key) }))
        assert.strictEqual(e?._tag, "UnsupportedMode")
        assert.match((e as { reason: string }).reason, /refused|FullyRestricted/)
        assert.strictEqual(server.requests.length, before)
      }))

    it.effect("plain http without a probe: sse-c is UnsupportedMode before any request", () =>
      Effect.gen(function*() {
        const { server, store: make } = yield* Env
        const store = yield* make({}, { probe: false })
        assert.isFalse(store.nativeModes.has("SseC"))
        const key = yield* CustomerKey.generate
        const before = server.requests.length
        const e = yield* flipped(store.put("x", Stream.make(random(10)), { sse: sse(key) }))
        assert.strictEqual(e?._tag, "UnsupportedMode")
        assert.include((e as { alternatives: ReadonlyArray<string> }).alternatives.join(" "), "https")
        const read = yield* flipped(store.head("x", { sse: sse(key) }))
        assert.strictEqual(read?._tag, "AccessDenied")
        assert.strictEqual(server.requests.length, before, "no request was sent")
      }))

    it.effect("parallel upload past 32 parts composes hierarchically; CSEK on every part", () =>
      Effect.gen(function*() {
        const { server, store: make } = yield* Env
        const store = yield* make({ partSize: 32 * KiB, concurrency: 6 })
        const body = random(70 * 32 * KiB + 5)
        const key = yield* CustomerKey.generate
        const put = yield* store.put("many", Stream.make(body), { contentLength: body.length, sse: sse(key), metadata: { m: "1" } })
        assert.strictEqual(put.size, body.length)
        const got = yield* ObjectStore.readAll(store, "many", { sse: sse(key) })
        assert.isTrue(Buffer.from(got.bytes).equals(body))
        assert.deepStrictEqual({ ...got.info.metadata }, { m: "1" })
        const ranged = yield* ObjectStore.readAll(store, "many", { sse: sse(key), range: ObjectStore.range.suffix(40_000) })
        assert.isTrue(Buffer.from(ranged.bytes).equals(body.subarray(body.length - 40_000)))
        assert.deepStrictEqual(server.objectNames(store.bucket), ["many"], "no part object left")
      }))

    it.effect("a body failing midway, or an interruption, leaves nothing visible and no part objects", () =>
      Effect.gen(function*() {
        const { server, store: make } = yield* Env
        const store = yield* make({ partSize: 64 * KiB })
        const failing = Stream.concat(Stream.make(random(6 * 64 * KiB)), Stream.fail(new BodyFailure()))
        const e = yield* flipped(store.put("failed", failing))
        assert.strictEqual(e?._tag, "BodyFailure")
        assert.deepStrictEqual(server.objectNames(store.bucket), [])
        // Interrupt while parts are going up.
        const slow = Stream.repeatEffect(Effect.as(Effect.sleep("20 millis"), random(64 * KiB))).pipe(Stream.take(200))
        const fiber = yield* Effect.fork(store.put("killed", slow))
        for (let i = 0; i < 200 && !server.objectNames(store.bucket).some((n) => n.startsWith(store.uploadPrefix)); i++) {
          yield* Effect.sleep("20 millis")
        }
        assert.isTrue(server.objectNames(store.bucket).some((n) => n.startsWith(store.uploadPrefix)), "parts were being uploaded")
        yield* Fiber.interrupt(fiber)
        assert.deepStrictEqual(server.objectNames(store.bucket), [], "the interrupted upload left nothing")
        assert.deepStrictEqual((yield* store.list()).objects, [])
      }))

    it.effect("resumable upload (parallelUploads: false): a failing body leaves nothing", () =>
      Effect.gen(function*() {
        const { server, store: make } = yield* Env
        const store = yield* make({ parallelUploads: false, partSize: 256 * KiB })
        const body = random(5 * 256 * KiB + 3)
        yield* store.put("resumable", Stream.make(body))
        assert.isTrue(Buffer.from((yield* ObjectStore.readAll(store, "resumable")).bytes).equals(body))
        const failing = Stream.concat(Stream.make(random(3 * 256 * KiB)), Stream.fail(new BodyFailure()))
        const e = yield* flipped(store.put("failed", failing))
        assert.strictEqual(e?._tag, "BodyFailure")
        assert.deepStrictEqual(server.objectNames(store.bucket), ["resumable"])
      }))

    it.effect("parallel upload of a 256 MiB stream with flat memory", () =>
      Effect.gen(function*() {
        const { store: make } = yield* Env
        const store = yield* make({ partSize: 8 * MiB, concurrency: 4 })
        const block = random(MiB)
        const total = 256
        const digest = crypto.createHash("sha256")
        for (let i = 0; i < total; i++) digest.update(block)
        const rss0 = process.memoryUsage().rss
        let peak = rss0
        const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20)
        yield* store.put("big", Stream.range(1, total).pipe(Stream.map(() => block)), { contentLength: total * MiB }).pipe(
          Effect.ensuring(Effect.sync(() => clearInterval(sampler)))
        )
        const grew = (peak - rss0) / MiB
        assert.isBelow(grew, 200, `RSS grew ${grew.toFixed(0)} MiB for a ${total} MiB upload`)
        const read = crypto.createHash("sha256")
        yield* Effect.scoped(Effect.flatMap(store.get("big"), (o) => Stream.runForEach(o.body, (c) => Effect.sync(() => read.update(c)))))
        assert.strictEqual(read.digest("hex"), digest.digest("hex"))
      }), { timeout: 120_000 })

    it.effect("client-side cse-c: round trip and ranges; tampered, truncated and missing envelope are DecryptError", () =>
      Effect.gen(function*() {
        const { store: make } = yield* Env
        const store = yield* make()
        const material = Redacted.make(new Uint8Array(random(32)))
        const keyring = Keyring.aes({ keyId: "gcs-test", material })
        const unwrapper = Keyring.makeUnwrapper({ keys: [{ _tag: "Aes", keyId: "gcs-test", material }] })
        const body = random(3 * 256 * KiB + 999)
        yield* ClientSide.put(store, "cse", Stream.make(body), [keyring], { segmentSize: 65_536, partSize: 256 * KiB, contentLength: body.length })
        assert.isTrue(Buffer.from(yield* ClientSide.getBytes(store, "cse", unwrapper)).equals(body))
        const ranged = yield* ClientSide.getBytes(store, "cse", unwrapper, { range: ObjectStore.range.bounded(100_000, 300_000) })
        assert.isTrue(Buffer.from(ranged).equals(body.subarray(100_000, 300_001)))
        const wrong = Keyring.makeUnwrapper({ keys: [{ _tag: "Aes", keyId: "gcs-test", material: Redacted.make(new Uint8Array(random(32))) }] })
        assert.strictEqual((yield* flipped(ClientSide.getBytes(store, "cse", wrong)))?._tag, "DecryptError")

        const stored = yield* ObjectStore.readAll(store, "cse")
        const rewrite = (key: string, bytes: Uint8Array, metadata: Readonly<Record<string, string>>) =>
          store.put(key, Stream.make(bytes), { metadata, contentLength: bytes.length })
        const tampered = Buffer.from(stored.bytes)
        tampered[70_000] = tampered[70_000]! ^ 1
        yield* rewrite("tampered", tampered, stored.info.metadata)
        const t = yield* flipped(ClientSide.getBytes(store, "tampered", unwrapper, { encryptedFor: { bucket: store.bucket, key: "cse" } }))
        assert.deepStrictEqual([t?._tag, (t as { reason?: string }).reason], ["DecryptError", "Tampered"])
        yield* rewrite("truncated", stored.bytes.subarray(0, stored.bytes.length - 65_536), stored.info.metadata)
        const tr = yield* flipped(ClientSide.getBytes(store, "truncated", unwrapper, { encryptedFor: { bucket: store.bucket, key: "cse" } }))
        assert.strictEqual(tr?._tag, "DecryptError")
        assert.include(["Truncated", "MalformedMetadata"], (tr as { reason?: string }).reason)
        yield* rewrite("bare", stored.bytes, {})
        const bare = yield* flipped(ClientSide.getBytes(store, "bare", unwrapper))
        assert.strictEqual(bare?._tag, "DecryptError")
        assert.include(["MissingMetadata", "UnknownFormat"], (bare as { reason?: string }).reason)
      }))
  })
})
