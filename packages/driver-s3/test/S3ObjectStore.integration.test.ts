/**
 * Against a real Ceph RGW 16 (one-node cluster started for this file, see
 * @objcrypt/test-kit/CephRgw): the conformance suite, then what only RGW can show — SSE-C and
 * SSE-KMS really enforced, ciphertext in RADOS, multipart under both, and aborts leaving nothing.
 */
import { CompleteMultipartUploadCommand, CreateMultipartUploadCommand, DeleteObjectCommand, ListMultipartUploadsCommand, S3Client, UploadPartCommand } from "@aws-sdk/client-s3"
import { afterAll, assert, layer } from "@effect/vitest"
import * as ClientSide from "@objcrypt/core/ClientSide"
import * as CustomerKey from "@objcrypt/core/CustomerKey"
import * as Keyring from "@objcrypt/core/Keyring"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as CephRgw from "@objcrypt/test-kit/CephRgw"
import * as MemoryBudget from "@objcrypt/test-kit/MemoryBudget"
import * as TcpRelay from "@objcrypt/test-kit/TcpRelay"
import { objectStoreSuite } from "@objcrypt/test-kit/ObjectStoreSuite"
import { Chunk, Context, Data, Effect, Fiber, Layer, ManagedRuntime, Redacted, Schedule, Stream } from "effect"
import * as crypto from "node:crypto"
import * as S3Buckets from "../src/S3Buckets.js"
import type { S3Config } from "../src/S3Config.js"
import * as S3ObjectStore from "../src/S3ObjectStore.js"

// One cluster for the whole file (~6–15 s to start), shared by every block below.
const rgw = ManagedRuntime.make(CephRgw.layer())
afterAll(() => rgw.dispose(), 60_000)

const PART = 5 * 1024 * 1024
const MiB = 1024 * 1024

class Bucket extends Context.Tag("test/Bucket")<Bucket, { readonly config: S3Config; readonly info: CephRgw.CephRgwInfo }>() {}

/** A fresh bucket on the shared cluster, probed so plain-http SSE-C/SSE-KMS are allowed by the facts. */
const bucketLayer = (extra?: Partial<S3Config>) =>
  Layer.scoped(
    Bucket,
    Effect.gen(function*() {
      const info = yield* Effect.promise(() => rgw.runPromise(CephRgw.CephRgw))
      const bucket = `objcrypt-${crypto.randomBytes(5).toString("hex")}`
      const base: S3Config = {
        bucket,
        endpoint: info.endpoint,
        region: info.region,
        forcePathStyle: true,
        accessKeyId: info.accessKeyId,
        secretAccessKey: Redacted.make(info.secretAccessKey),
        profile: "ceph-rgw",
        partSize: PART,
        ...extra
      }
      const probe = yield* Effect.scoped(
        Effect.gen(function*() {
          const s = yield* S3ObjectStore.make(base)
          yield* Effect.orDie(S3Buckets.createBucket(s.client, bucket))
          return yield* S3Buckets.probe(s, { kmsKeyId: info.kmsKeyIds[0] })
        })
      )
      return { config: { ...base, facts: probe.facts }, info }
    })
  )

const storeLayer = (extra?: Partial<S3Config>) =>
  Layer.unwrapScoped(Effect.map(Bucket, (b) => S3ObjectStore.layer(b.config))).pipe(Layer.provideMerge(bucketLayer(extra)))

objectStoreSuite({
  name: "S3ObjectStore on Ceph RGW 16 (conformance)",
  layer: storeLayer(),
  capabilities: { sse: { SseKms: { keyId: "testkey-1" }, SseC: true }, conditionalCompletion: false, conditionalRemove: false },
  sizes: { partSize: PART },
  timeout: "120 seconds"
})

class BodyBoom extends Data.TaggedError("BodyBoom")<{ readonly after: string }> {}

const random = (n: number) => crypto.randomBytes(n)

layer(storeLayer(), { timeout: "120 seconds", excludeTestServices: true })("S3ObjectStore on Ceph RGW 16", (it) => {
  const uploadsIn = (client: S3Client, bucket: string) =>
    Effect.promise(() => client.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).pipe(
      Effect.map((r) => (r.Uploads ?? []).map((u) => u.Key))
    )

  it.effect("the probe sees SSE-C and SSE-KMS enforced/accepted and SSE-S3 ignored", () =>
    Effect.gen(function*() {
      const { config } = yield* Bucket
      assert.deepStrictEqual(config.facts?.modes, { SseS3: "ignored", SseKms: "accepted", SseC: "enforced" })
      const store = yield* S3ObjectStore.S3ObjectStore
      assert.deepStrictEqual([...store.nativeModes].sort(), ["None", "SseC", "SseKms"])
    }), 60_000)

  it.effect("SSE-C: without the key and with a wrong key, get and head are refused with AccessDenied", () =>
    Effect.gen(function*() {
      const store = yield* ObjectStore.ObjectStore
      const key = yield* CustomerKey.generate
      const wrong = yield* CustomerKey.generate
      const body = random(4096)
      yield* store.put("ssec/object", Stream.make(body), { sse: { _tag: "SseC", key } })
      for (const [what, options] of [["no key", {}], ["wrong key", { sse: { _tag: "SseC" as const, key: wrong } }]] as const) {
        const e = yield* Effect.flip(ObjectStore.readAll(store, "ssec/object", options))
        assert.strictEqual(e._tag, "AccessDenied", `get with ${what}`)
        assert.notInclude(e.message, Buffer.from(Redacted.value(wrong.material)).toString("base64"))
        const h = yield* Effect.flip(store.head("ssec/object", options))
        assert.strictEqual(h._tag, "AccessDenied", `head with ${what}`)
      }
      const ok = yield* ObjectStore.readAll(store, "ssec/object", { sse: { _tag: "SseC", key } })
      assert.isTrue(Buffer.from(ok.bytes).equals(body))
      assert.strictEqual(ok.info.encryption.mode, "SseC")
      assert.strictEqual(ok.info.encryption.customerKeyMd5, key.md5)
    }), 60_000)

  it.effect("the bytes stored in RADOS are not the plaintext (SSE-C and SSE-KMS), but are for mode none", () =>
    Effect.gen(function*() {
      const store = yield* ObjectStore.ObjectStore
      const { info } = yield* Bucket
      const plain = Buffer.from("objcrypt plaintext marker ".repeat(200))
      const key = yield* CustomerKey.generate
      yield* store.put("rados/plain", Stream.make(plain))
      yield* store.put("rados/sse-c", Stream.make(plain), { sse: { _tag: "SseC", key } })
      yield* store.put("rados/sse-kms", Stream.make(plain), { sse: { _tag: "SseKms", keyId: info.kmsKeyIds[1] } })
      const objects = yield* info.radosList()
      const raw = (suffix: string) =>
        Effect.gen(function*() {
          const name = objects.find((o) => o.endsWith(`_${suffix}`))
          assert.isDefined(name, `a RADOS object for ${suffix}`)
          return yield* info.radosGet(name!)
        })
      const rawPlain = yield* raw("rados/plain")
      assert.isTrue(rawPlain.equals(plain), "the control object is stored as sent")
      for (const k of ["rados/sse-c", "rados/sse-kms"]) {
        const bytes = yield* raw(k)
        assert.strictEqual(bytes.length, plain.length, `${k}: same length (AES-256-CBC per 4 KiB chunk)`)
        assert.isFalse(bytes.equals(plain), `${k}: not the plaintext`)
        assert.strictEqual(bytes.indexOf("objcrypt plaintext marker"), -1, `${k}: no plaintext fragment`)
      }
    }), 60_000)

  it.effect("SSE-KMS echoes the key id on put, head and get", () =>
    Effect.gen(function*() {
      const store = yield* ObjectStore.ObjectStore
      const { info } = yield* Bucket
      const keyId = info.kmsKeyIds[1]!
      const put = yield* store.put("kms/object", Stream.make(random(100)), { sse: { _tag: "SseKms", keyId } })
      assert.deepStrictEqual([put.encryption.mode, put.encryption.kmsKeyId], ["SseKms", keyId])
      const head = yield* store.head("kms/object")
      assert.deepStrictEqual([head.encryption.mode, head.encryption.kmsKeyId], ["SseKms", keyId])
      const got = yield* ObjectStore.readAll(store, "kms/object")
      assert.strictEqual(got.info.encryption.kmsKeyId, keyId)
      const unknown = yield* Effect.flip(store.put("kms/unknown-key", Stream.make(random(10)), { sse: { _tag: "SseKms", keyId: "no-such-key" } }))
      assert.include(["ProviderError", "AccessDenied"], unknown._tag)
      yield* Effect.flip(store.head("kms/unknown-key"))
    }), 60_000)

  it.effect("multipart put of an unknown-length stream under SSE-C and SSE-KMS, parts in parallel", () =>
    Effect.gen(function*() {
      const store = yield* ObjectStore.ObjectStore
      const { info } = yield* Bucket
      const body = random(2 * PART + 12_345)
      const chunks = Stream.fromIterable(Array.from({ length: Math.ceil(body.length / 100_000) }, (_, i) => body.subarray(i * 100_000, (i + 1) * 100_000)))
      const key = yield* CustomerKey.generate
      const c = yield* store.put("mp/sse-c", chunks, { sse: { _tag: "SseC", key } })
      assert.strictEqual(c.size, body.length)
      assert.match(c.etag, /-3$/, "a 3-part multipart ETag")
      assert.strictEqual(c.encryption.mode, "SseC")
      const back = yield* ObjectStore.readAll(store, "mp/sse-c", { sse: { _tag: "SseC", key } })
      assert.isTrue(Buffer.from(back.bytes).equals(body))
      assert.strictEqual((yield* Effect.flip(ObjectStore.readAll(store, "mp/sse-c")))._tag, "AccessDenied")
      const ranged = yield* ObjectStore.readAll(store, "mp/sse-c", { sse: { _tag: "SseC", key }, range: ObjectStore.range.bounded(PART - 5, PART + 4) })
      assert.isTrue(Buffer.from(ranged.bytes).equals(body.subarray(PART - 5, PART + 5)))

      const k = yield* store.put("mp/sse-kms", chunks, { sse: { _tag: "SseKms", keyId: info.kmsKeyIds[0] }, contentLength: body.length })
      assert.strictEqual(k.size, body.length)
      const kh = yield* store.head("mp/sse-kms")
      assert.deepStrictEqual([kh.encryption.mode, kh.encryption.kmsKeyId, kh.size], ["SseKms", info.kmsKeyIds[0], body.length])
      assert.isTrue(Buffer.from((yield* ObjectStore.readAll(store, "mp/sse-kms")).bytes).equals(body))
    }), 120_000)

  it.effect("a body failing mid-multipart leaves no object and no orphan upload", () =>
    Effect.gen(function*() {
      const store = yield* S3ObjectStore.S3ObjectStore
      const { config } = yield* Bucket
      const key = yield* CustomerKey.generate
      const failing = Stream.concat(Stream.make(random(PART), random(PART), random(1000)), Stream.fail(new BodyBoom({ after: "two parts" })))
      const e = yield* Effect.flip(store.put("mp/failing", failing, { sse: { _tag: "SseC", key } }))
      assert.strictEqual(e._tag, "BodyBoom")
      assert.strictEqual((yield* Effect.flip(store.head("mp/failing", { sse: { _tag: "SseC", key } })))._tag, "ObjectNotFound")
      assert.deepStrictEqual(yield* uploadsIn(store.client, config.bucket), [])
    }), 120_000)

  it.effect("an interrupted multipart upload is aborted", () =>
    Effect.gen(function*() {
      const store = yield* S3ObjectStore.S3ObjectStore
      const { config } = yield* Bucket
      const started = yield* Effect.makeLatch(false)
      // Three parts are sent, then the stream stalls forever until interrupted.
      const stalled = Stream.concat(
        Stream.make(random(PART), random(PART), random(PART)),
        Stream.fromEffect(Effect.zipRight(started.open, Effect.never))
      )
      const fiber = yield* Effect.fork(store.put("mp/interrupted", stalled))
      yield* started.await
      const inProgress = yield* uploadsIn(store.client, config.bucket).pipe(
        Effect.filterOrFail((u) => u.length > 0),
        Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 100 }),
        Effect.orElseSucceed(() => [])
      )
      assert.isAbove(inProgress.length, 0, "the upload was in progress")
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(yield* uploadsIn(store.client, config.bucket), [])
      assert.strictEqual((yield* Effect.flip(store.head("mp/interrupted")))._tag, "ObjectNotFound")
    }), 120_000)

  it.effect("interrupted while parts are in flight: they settle before the abort, so no orphan part is left in the bucket index", () =>
    Effect.gen(function*() {
      const store = yield* S3ObjectStore.S3ObjectStore
      const { config, info } = yield* Bucket
      // Interrupts at several moments after parts start going up, to catch part requests whose body
      // RGW has received but not answered: an abort sent then is followed by the part landing (an
      // orphan `_multipart_…` index entry) unless the driver waits for them.
      for (let n = 0; n < 12; n++) {
        const delay = n * 20
        const key = `mp/settle-${n}`
        const pulled = yield* Effect.makeLatch(false)
        let parts = 0
        const body = Stream.repeatEffect(Effect.sync(() => random(PART))).pipe(
          Stream.take(12),
          Stream.tap(() => (++parts === 5 ? pulled.open : Effect.void))
        )
        const fiber = yield* Effect.fork(store.put(key, body))
        yield* pulled.await
        yield* Effect.sleep(delay)
        yield* Fiber.interrupt(fiber)
        assert.deepStrictEqual(yield* uploadsIn(store.client, config.bucket), [])
        const index = yield* info.admin(["bucket", "list", `--bucket=${config.bucket}`])
        assert.notInclude(index, key, `interrupted ${delay} ms after the fifth part was read`)
      }
    }), 180_000)

  it.effect("a failing part upload aborts the upload (wrong key length is refused server-side)", () =>
    Effect.gen(function*() {
      const store = yield* S3ObjectStore.S3ObjectStore
      const { config } = yield* Bucket
      const upload = yield* store.createMultipart("mp/manual", {})
      const part = yield* store.uploadPart(upload, 1, Stream.make(random(PART)))
      const mismatch = yield* Effect.flip(store.uploadPart(upload, 2, Stream.make(random(10)), { contentLength: 11 }))
      assert.strictEqual(mismatch._tag, "ProviderError")
      yield* store.abortMultipart(upload)
      yield* store.abortMultipart(upload)
      assert.strictEqual((yield* Effect.flip(store.completeMultipart(upload, [part])))._tag, "PreconditionFailed")
      assert.deepStrictEqual(yield* uploadsIn(store.client, config.bucket), [])
    }), 60_000)

  it.effect("ifMatch on a single PUT: RGW checks it atomically; a stale etag or a missing key is PreconditionFailed and writes nothing", () =>
    Effect.gen(function*() {
      const store = yield* S3ObjectStore.S3ObjectStore
      const text = (key: string) => Effect.map(ObjectStore.readAll(store, key), (r) => Buffer.from(r.bytes).toString())
      const first = yield* store.put("im/k", Stream.make(Buffer.from("one")), { metadata: { v: "1" } })
      const stale = yield* Effect.flip(store.put("im/k", Stream.make(Buffer.from("two")), { ifMatch: crypto.randomBytes(16).toString("hex") }))
      assert.deepStrictEqual([stale._tag, (stale as { key?: string }).key], ["PreconditionFailed", "im/k"])
      assert.strictEqual(yield* text("im/k"), "one")
      assert.deepStrictEqual({ ...(yield* store.head("im/k")).metadata }, { v: "1" })
      const missing = yield* Effect.flip(store.put("im/missing", Stream.make(Buffer.from("x")), { ifMatch: first.etag }))
      assert.strictEqual(missing._tag, "PreconditionFailed")
      assert.strictEqual((yield* Effect.flip(store.head("im/missing")))._tag, "ObjectNotFound")
      // A match overwrites, whether the etag is given quoted or not.
      const second = yield* store.put("im/k", Stream.make(Buffer.from("two")), { ifMatch: `"${first.etag}"`, metadata: { v: "2" } })
      assert.strictEqual(yield* text("im/k"), "two")
      yield* store.put("im/k", Stream.make(Buffer.from("three")), { ifMatch: second.etag })
      assert.strictEqual(yield* text("im/k"), "three")
      assert.strictEqual((yield* Effect.flip(store.put("im/k", Stream.make(Buffer.from("four")), { ifMatch: first.etag })))._tag, "PreconditionFailed")
      assert.strictEqual(yield* text("im/k"), "three")
      const usage = yield* Effect.flip(store.put("im/k", Stream.make(Buffer.from("five")), { ifMatch: second.etag, ifNoneMatch: "*" }))
      assert.deepStrictEqual([usage._tag, (usage as { status?: number }).status], ["ProviderError", 400])
      assert.strictEqual(yield* text("im/k"), "three")
    }), 60_000)

  it.effect("ifMatch on a put that needs parts: refused on RGW (which ignores If-Match on completion), nothing written, no upload left", () =>
    Effect.gen(function*() {
      // RGW 16 completes a multipart upload whatever If-Match says (the driver sends it, as AWS
      // checks it: asserted on the wire in S3ObjectStore.test.ts), so the ceph-rgw profile refuses
      // the conditional put instead of writing it unconditionally.
      const store = yield* S3ObjectStore.S3ObjectStore
      const { config } = yield* Bucket
      const first = yield* store.put("im/big", Stream.make(Buffer.from("small")))
      const body = random(PART + 1000)
      for (const ifMatch of [crypto.randomBytes(16).toString("hex"), first.etag]) {
        const e = yield* Effect.flip(store.put("im/big", Stream.make(body), { ifMatch }))
        assert.deepStrictEqual([e._tag, (e as { status?: number }).status], ["ProviderError", 400])
        assert.match(e.message, /ignores If-Match/)
      }
      assert.strictEqual(Buffer.from((yield* ObjectStore.readAll(store, "im/big")).bytes).toString(), "small")
      assert.strictEqual((yield* Effect.flip(store.put("im/big-missing", Stream.make(body), { ifMatch: first.etag })))._tag, "ProviderError")
      assert.strictEqual((yield* Effect.flip(store.head("im/big-missing")))._tag, "ObjectNotFound")
      assert.deepStrictEqual(yield* uploadsIn(store.client, config.bucket), [])
    }), 120_000)

  it.effect("RGW 16 itself ignores If-None-Match and If-Match on CompleteMultipartUpload (raw SDK requests overwrite): why ceph-rgw refuses them", () =>
    Effect.gen(function*() {
      // The server behaviour the profile's refusals rest on. Should a later RGW honour the
      // conditions, this test fails and `unconditionalComplete` can drop the profile.
      const store = yield* S3ObjectStore.S3ObjectStore
      const send = <A>(f: () => Promise<A>) => Effect.promise(f)
      const text = (key: string) => Effect.map(ObjectStore.readAll(store, key), (r) => Buffer.from(r.bytes).toString())
      for (const [name, condition] of [["If-None-Match", { IfNoneMatch: "*" }], ["If-Match", { IfMatch: crypto.randomBytes(16).toString("hex") }]] as const) {
        const Key = `raw/${name}`
        yield* store.put(Key, Stream.make(Buffer.from("old")))
        const { UploadId } = yield* send(() => store.client.send(new CreateMultipartUploadCommand({ Bucket: store.bucket, Key })))
        const part = yield* send(() => store.client.send(new UploadPartCommand({ Bucket: store.bucket, Key, UploadId, PartNumber: 1, Body: Buffer.from("new") })))
        yield* send(() =>
          store.client.send(new CompleteMultipartUploadCommand({ Bucket: store.bucket, Key, UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag! }] }, ...condition }))
        )
        assert.strictEqual(yield* text(Key), "new", `${name} was ignored: the object was overwritten`)
      }
    }), 60_000)

  it.effect("RGW 16 itself ignores If-Match on DeleteObject (raw SDK: a wrong etag, quoted or bare, still deletes): why ceph-rgw refuses a conditional remove", () =>
    Effect.gen(function*() {
      // The server behaviour the profile's refusal rests on. Should a later RGW honour the
      // condition, this test fails and `unconditionalDelete` can drop the profile.
      const store = yield* S3ObjectStore.S3ObjectStore
      const wrong = crypto.randomBytes(16).toString("hex")
      for (const [form, IfMatch] of [["quoted", `"${wrong}"`], ["bare", wrong]] as const) {
        const Key = `raw-del/${form}`
        yield* store.put(Key, Stream.make(Buffer.from("old")))
        const r = yield* Effect.promise(() => store.client.send(new DeleteObjectCommand({ Bucket: store.bucket, Key, IfMatch })))
        assert.strictEqual(r.$metadata.httpStatusCode, 204, `${form}: not 412`)
        assert.strictEqual((yield* Effect.flip(store.head(Key)))._tag, "ObjectNotFound", `${form} If-Match was ignored: the object was deleted`)
      }
      // Nor does a missing key fail with If-Match (AWS answers 404 NoSuchKey).
      const missing = yield* Effect.promise(() => store.client.send(new DeleteObjectCommand({ Bucket: store.bucket, Key: "raw-del/missing", IfMatch: `"${wrong}"` })))
      assert.strictEqual(missing.$metadata.httpStatusCode, 204)
    }), 60_000)

  it.effect("remove with ifMatch on RGW: refused (400) before it is sent, the object intact whatever the etag; without ifMatch it removes, a missing key included", () =>
    Effect.gen(function*() {
      const store = yield* S3ObjectStore.S3ObjectStore
      const put = yield* store.put("rm/k", Stream.make(Buffer.from("kept")))
      for (const ifMatch of [crypto.randomBytes(16).toString("hex"), put.etag, `"${put.etag}"`]) {
        const e = yield* Effect.flip(store.remove("rm/k", { ifMatch }))
        assert.deepStrictEqual([e._tag, (e as { code?: string }).code, (e as { status?: number }).status], ["ProviderError", "InvalidRequest", 400])
        assert.match(e.message, /ignores If-Match on DeleteObject/)
        assert.strictEqual(Buffer.from((yield* ObjectStore.readAll(store, "rm/k")).bytes).toString(), "kept", `${ifMatch}: the object is intact`)
      }
      assert.strictEqual((yield* Effect.flip(store.remove("rm/missing", { ifMatch: put.etag })))._tag, "ProviderError")
      yield* store.remove("rm/k")
      assert.strictEqual((yield* Effect.flip(store.head("rm/k")))._tag, "ObjectNotFound")
      yield* store.remove("rm/k")
    }), 60_000)

  it.effect("completeMultipart with ifNoneMatch or ifMatch on RGW: refused (400) before it is sent, the old object intact, the upload left to complete unconditionally or abort", () =>
    Effect.gen(function*() {
      const store = yield* S3ObjectStore.S3ObjectStore
      const { config } = yield* Bucket
      const text = (key: string) => Effect.map(ObjectStore.readAll(store, key), (r) => Buffer.from(r.bytes).toString())
      const old = yield* store.put("cm/k", Stream.make(Buffer.from("old")))
      const badRequest = (e: { readonly _tag: string; readonly message: string }, what: string) =>
        assert.deepStrictEqual([e._tag, (e as { status?: number }).status], ["ProviderError", 400], what)

      const upload = yield* store.createMultipart("cm/k")
      const part = yield* store.uploadPart(upload, 1, Stream.make(Buffer.from("new")))
      const conditions = [
        ["ifNoneMatch over an existing key", { ifNoneMatch: "*" as const }],
        ["a stale ifMatch", { ifMatch: crypto.randomBytes(16).toString("hex") }],
        ["the current ifMatch", { ifMatch: old.etag }],
        ["ifMatch with ifNoneMatch", { ifMatch: old.etag, ifNoneMatch: "*" as const }]
      ] as const
      for (const [what, options] of conditions) {
        const e = yield* Effect.flip(store.completeMultipart(upload, [part], options))
        badRequest(e, what)
        assert.match(e.message, what === "ifMatch with ifNoneMatch" ? /cannot be combined/ : /ignores If-Match and If-None-Match/, what)
        assert.strictEqual(yield* text("cm/k"), "old", `${what}: the old object is intact`)
        assert.deepStrictEqual(yield* uploadsIn(store.client, config.bucket), ["cm/k"], `${what}: the upload is still there`)
      }
      // The caller can still complete it without a condition...
      const done = yield* store.completeMultipart(upload, [part])
      assert.strictEqual(yield* text("cm/k"), "new")
      assert.strictEqual((yield* store.head("cm/k")).etag, done.etag)
      // ...or abort it.
      const second = yield* store.createMultipart("cm/k")
      const p2 = yield* store.uploadPart(second, 1, Stream.make(Buffer.from("newer")))
      badRequest(yield* Effect.flip(store.completeMultipart(second, [p2], { ifNoneMatch: "*" })), "second upload")
      yield* store.abortMultipart(second)
      assert.deepStrictEqual(yield* uploadsIn(store.client, config.bucket), [])
      assert.strictEqual(yield* text("cm/k"), "new")
      // Over a missing key too: the profile cannot tell RGW would check it, so it is refused.
      const fresh = yield* store.createMultipart("cm/missing")
      const p3 = yield* store.uploadPart(fresh, 1, Stream.make(Buffer.from("created")))
      badRequest(yield* Effect.flip(store.completeMultipart(fresh, [p3], { ifNoneMatch: "*" })), "missing key")
      assert.strictEqual((yield* Effect.flip(store.head("cm/missing")))._tag, "ObjectNotFound")
      yield* store.completeMultipart(fresh, [p3])
      assert.strictEqual(yield* text("cm/missing"), "created")
    }), 60_000)

  it.effect("ifNoneMatch on a put that needs parts: refused on RGW (which ignores If-None-Match on completion), nothing written, no upload left; a single PUT is still checked", () =>
    Effect.gen(function*() {
      const store = yield* S3ObjectStore.S3ObjectStore
      const { config } = yield* Bucket
      yield* store.put("inm/big", Stream.make(Buffer.from("small")))
      const body = random(PART + 1000)
      const e = yield* Effect.flip(store.put("inm/big", Stream.make(body), { ifNoneMatch: "*" }))
      assert.deepStrictEqual([e._tag, (e as { status?: number }).status], ["ProviderError", 400])
      assert.match(e.message, /ignores If-Match and If-None-Match/)
      assert.strictEqual(Buffer.from((yield* ObjectStore.readAll(store, "inm/big")).bytes).toString(), "small")
      const missing = yield* Effect.flip(store.put("inm/big-missing", Stream.make(body), { ifNoneMatch: "*" }))
      assert.strictEqual(missing._tag, "ProviderError")
      assert.strictEqual((yield* Effect.flip(store.head("inm/big-missing")))._tag, "ObjectNotFound")
      assert.deepStrictEqual(yield* uploadsIn(store.client, config.bucket), [])
      // One part: a PutObject, where RGW does check If-None-Match.
      assert.strictEqual((yield* Effect.flip(store.put("inm/big", Stream.make(random(1000)), { ifNoneMatch: "*" })))._tag, "PreconditionFailed")
      assert.strictEqual(Buffer.from((yield* ObjectStore.readAll(store, "inm/big")).bytes).toString(), "small")
    }), 120_000)

  it.effect("copies of encrypted objects stream through the client and stay encrypted (RGW copies them wrongly)", () =>
    Effect.gen(function*() {
      const store = yield* S3ObjectStore.S3ObjectStore
      const { info } = yield* Bucket
      const key = yield* CustomerKey.generate
      const key2 = yield* CustomerKey.generate
      const body = random(70_000)
      yield* store.put("copy/src-c", Stream.make(body), { sse: { _tag: "SseC", key }, metadata: { a: "1" } })
      yield* store.copy("copy/src-c", "copy/dst-c", { sourceSse: { _tag: "SseC", key }, sse: { _tag: "SseC", key: key2 } })
      const back = yield* ObjectStore.readAll(store, "copy/dst-c", { sse: { _tag: "SseC", key: key2 } })
      assert.isTrue(Buffer.from(back.bytes).equals(body))
      assert.deepStrictEqual({ ...back.info.metadata }, { a: "1" })
      assert.strictEqual((yield* Effect.flip(ObjectStore.readAll(store, "copy/dst-c", { sse: { _tag: "SseC", key } })))._tag, "AccessDenied")
      // Plain → SSE-KMS: RGW would ignore the destination headers; the copy must really be encrypted.
      yield* store.put("copy/plain", Stream.make(body))
      const r = yield* store.copy("copy/plain", "copy/to-kms", { sse: { _tag: "SseKms", keyId: info.kmsKeyIds[0] } })
      assert.strictEqual(r.encryption.mode, "SseKms")
      assert.strictEqual((yield* store.head("copy/to-kms")).encryption.kmsKeyId, info.kmsKeyIds[0])
    }), 60_000)

  it.effect("SSE-S3 is refused on RGW before any byte is sent (RGW 16 would store it plain)", () =>
    Effect.gen(function*() {
      const store = yield* ObjectStore.ObjectStore
      let pulled = 0
      const body = Stream.make(random(10)).pipe(Stream.tap(() => Effect.sync(() => pulled++)))
      const e = yield* Effect.flip(store.put("sse-s3/x", body, { sse: { _tag: "SseS3" } }))
      assert.strictEqual(e._tag, "UnsupportedMode")
      assert.strictEqual(pulled, 0, "the body was not read")
      assert.strictEqual((yield* Effect.flip(store.head("sse-s3/x")))._tag, "ObjectNotFound")
    }), 60_000)
})

layer(storeLayer({ multipartCopyThreshold: PART, concurrency: 2 }), { timeout: "120 seconds", excludeTestServices: true })(
  "S3ObjectStore on Ceph RGW 16: multipart copy",
  (it) => {
    it.effect("copies a large plain object with UploadPartCopy, parts in parallel", () =>
      Effect.gen(function*() {
        const store = yield* S3ObjectStore.S3ObjectStore
        const body = random(2 * PART + 777)
        yield* store.put("big/src", Stream.make(body), { contentType: "application/x-big", metadata: { m: "é" } })
        const r = yield* store.copy("big/src", "big/dst")
        assert.match(r.etag, /-3$/, "assembled from 3 copied parts")
        const back = yield* ObjectStore.readAll(store, "big/dst")
        assert.isTrue(Buffer.from(back.bytes).equals(body))
        assert.deepStrictEqual([back.info.contentType, { ...back.info.metadata }], ["application/x-big", { m: "é" }])
        const listed = yield* Stream.runCollect(ObjectStore.listAll(store, { prefix: "big/" }))
        assert.deepStrictEqual(Chunk.toArray(listed).map((o) => o.key), ["big/dst", "big/src"])
      }), 120_000)
  }
)

layer(storeLayer({ concurrency: 3 }), { timeout: "120 seconds", excludeTestServices: true })(
  "client-side modes over S3 (Ceph RGW 16)",
  (it) => {
    const wrapKey = random(32)
    const nextKey = random(32)
    const keyring = (id: string, material: Uint8Array) => Keyring.aes({ keyId: id, version: 1, material: Redacted.make(material) })
    const unwrapper = (id: string, material: Uint8Array) =>
      Keyring.makeUnwrapper({ keys: [{ _tag: "Aes", keyId: id, material: Redacted.make(material) }] })
    const read = (store: ObjectStore.ObjectStore["Type"], key: string, u: Keyring.Unwrapper, range?: ObjectStore.ByteRange) =>
      Effect.scoped(Effect.flatMap(ClientSide.get(store, key, u, { range }), (o) =>
        Effect.map(Stream.runCollect(o.body), (c) => Buffer.concat(Chunk.toArray(c)))))

    it.effect("cse-c: multipart parts encrypted in parallel, ciphertext in RADOS, ranged reads, re-key without touching the body", () =>
      Effect.gen(function*() {
        const store = yield* S3ObjectStore.S3ObjectStore
        const { info, config } = yield* Bucket
        const marker = Buffer.from("objcrypt-cse-marker-".repeat(8))
        const body = Buffer.concat([marker, random(3 * PART + 12_345)])
        const put = yield* ClientSide.put(store, "cse/big", Stream.fromIterable(chunksOf(body, 256 * 1024)), [keyring("wrap-1", wrapKey)], {
          partSize: PART,
          concurrency: 3
        })
        assert.isAtLeast(put.parts, 4, "uploaded as a multipart upload")
        assert.strictEqual(put.plaintextSize, body.length)

        // What the server holds is ciphertext: the marker is nowhere in the bucket's RADOS objects.
        const radosObjects = yield* Effect.promise(() => rgw.runPromise(CephRgw.CephRgw.pipe(Effect.flatMap((r) => r.radosList()))))
        const mine = radosObjects.filter((o) => o.includes("cse/big"))
        assert.isAtLeast(mine.length, 1)
        for (const o of mine) {
          const raw = yield* Effect.promise(() => rgw.runPromise(CephRgw.CephRgw.pipe(Effect.flatMap((r) => r.radosGet(o)))))
          assert.isFalse(Buffer.from(raw).includes(marker.subarray(0, 40)), `plaintext in RADOS object ${o}`)
        }

        assert.isTrue((yield* read(store, "cse/big", unwrapper("wrap-1", wrapKey))).equals(body))
        const mid = yield* read(store, "cse/big", unwrapper("wrap-1", wrapKey), ObjectStore.range.bounded(PART - 10, PART + 2_000_000))
        assert.isTrue(mid.equals(body.subarray(PART - 10, PART + 2_000_001)))
        const tail = yield* read(store, "cse/big", unwrapper("wrap-1", wrapKey), ObjectStore.range.suffix(777))
        assert.isTrue(tail.equals(body.subarray(body.length - 777)))

        const before = yield* store.head("cse/big")
        yield* ClientSide.rekey(store, "cse/big", unwrapper("wrap-1", wrapKey), { _tag: "Replace", keyrings: [keyring("wrap-2", nextKey)] })
        const after = yield* store.head("cse/big")
        assert.strictEqual(after.size, before.size, "the body was not rewritten")
        assert.isTrue((yield* read(store, "cse/big", unwrapper("wrap-2", nextKey))).equals(body))
        const old = yield* Effect.flip(read(store, "cse/big", unwrapper("wrap-1", wrapKey)))
        assert.strictEqual(old._tag, "DecryptError")
        assert.isDefined(config.bucket)
        assert.isDefined(info.endpoint)
      }), 120_000)

    it.effect("cse-c: a body that fails mid-upload leaves no object and no multipart upload", () =>
      Effect.gen(function*() {
        const store = yield* S3ObjectStore.S3ObjectStore
        const { config } = yield* Bucket
        const failing = Stream.concat(Stream.fromIterable(chunksOf(random(2 * PART), 1024 * 1024)), Stream.fail(new BodyBoom({ after: "2 parts" })))
        const e = yield* Effect.flip(ClientSide.put(store, "cse/failed", failing, [keyring("wrap-1", wrapKey)], { partSize: PART }))
        assert.strictEqual(e._tag, "BodyBoom")
        assert.strictEqual((yield* Effect.flip(store.head("cse/failed")))._tag, "ObjectNotFound")
        const uploads = yield* Effect.promise(() => store.client.send(new ListMultipartUploadsCommand({ Bucket: config.bucket })))
        assert.deepStrictEqual((uploads.Uploads ?? []).map((u) => u.Key).filter((k) => k?.startsWith("cse/")), [])
      }), 120_000)
  }
)

function chunksOf(b: Buffer, n: number): Array<Buffer> {
  const out: Array<Buffer> = []
  for (let i = 0; i < b.length; i += n) out.push(b.subarray(i, i + n))
  return out
}

layer(storeLayer({ multipartCopyThreshold: PART, concurrency: 1 }), { timeout: "120 seconds", excludeTestServices: true })(
  "S3ObjectStore on Ceph RGW 16: ifSourceMatch is checked by the server",
  (it) => {
    /**
     * Fault injection on the real client: the next request of `command` first lets another writer
     * replace `key` (after the driver's own head, so only the server can still see the change).
     */
    const racer = Effect.flatMap(S3ObjectStore.S3ObjectStore, (store) => {
      let armed: { readonly command: string; skip: number; readonly key: string; readonly body: Buffer } | undefined
      const name = `objcryptTestReplaceSource-${crypto.randomBytes(4).toString("hex")}`
      const install = () => store.client.middlewareStack.add(
        (next, context) => async (args) => {
          const a = armed
          if (a !== undefined && context.commandName === a.command && a.skip-- === 0) {
            armed = undefined
            await Effect.runPromise(store.put(a.key, Stream.make(a.body), { metadata: { v: "new" } }))
          }
          return next(args)
        },
        { step: "initialize", name }
      )
      return Effect.acquireRelease(Effect.sync(install), () => Effect.sync(() => void store.client.middlewareStack.remove(name))).pipe(
        Effect.as({
          store,
          arm: (command: string, key: string, body: Buffer, skip = 0) => {
            armed = { command, skip, key, body }
          }
        })
      )
    })

    it.scoped("a source replaced before CopyObject or UploadPartCopy: PreconditionFailed, nothing written", () =>
      Effect.gen(function*() {
        const { arm, store } = yield* racer
        const uploadsIn = Effect.promise(() => store.client.send(new ListMultipartUploadsCommand({ Bucket: store.bucket }))).pipe(
          Effect.map((r) => (r.Uploads ?? []).map((u) => u.Key))
        )
        const cases = [
          { name: "CopyObject, same key", command: "CopyObjectCommand", size: 1000, destination: "race/a", skip: 0 },
          { name: "CopyObject, to another key", command: "CopyObjectCommand", size: 1000, destination: "race/other", skip: 0 },
          { name: "UploadPartCopy (second part)", command: "UploadPartCopyCommand", size: 2 * PART + 5, destination: "race/other", skip: 1 }
        ]
        for (const c of cases) {
          const old = random(c.size)
          yield* store.put("race/a", Stream.make(old), { metadata: { v: "old" } })
          const { etag } = yield* store.head("race/a")
          const fresh = random(c.size + 1)
          arm(c.command, "race/a", fresh, c.skip)
          const e = yield* Effect.flip(store.copy("race/a", c.destination, { metadata: { v: "rekeyed" }, ifSourceMatch: etag }))
          assert.strictEqual(e._tag, "PreconditionFailed", c.name)
          const now = yield* ObjectStore.readAll(store, "race/a")
          assert.isTrue(Buffer.from(now.bytes).equals(fresh), `${c.name}: the new body stays`)
          assert.deepStrictEqual({ ...now.info.metadata }, { v: "new" }, `${c.name}: the new metadata stays`)
          assert.strictEqual((yield* Effect.flip(store.head("race/other")))._tag, "ObjectNotFound", `${c.name}: no destination`)
        }
        assert.deepStrictEqual(yield* uploadsIn, [], "the multipart copy was aborted")
        // Control: the same copies with the current etag go through.
        const { etag } = yield* store.head("race/a")
        yield* store.copy("race/a", "race/a", { metadata: { v: "rekeyed" }, ifSourceMatch: etag })
        assert.deepStrictEqual({ ...(yield* store.head("race/a")).metadata }, { v: "rekeyed" })
      }), 120_000)

    it.scoped("an SSE-KMS copy (streamed through the client on RGW): a source replaced before its GET fails too", () =>
      Effect.gen(function*() {
        const { arm, store } = yield* racer
        const { info } = yield* Bucket
        yield* store.put("race/kms", Stream.make(random(3000)), { metadata: { v: "old" } })
        const { etag } = yield* store.head("race/kms")
        const fresh = random(3001)
        arm("GetObjectCommand", "race/kms", fresh)
        const e = yield* Effect.flip(store.copy("race/kms", "race/kms-copy", { sse: { _tag: "SseKms", keyId: info.kmsKeyIds[0] }, ifSourceMatch: etag }))
        assert.strictEqual(e._tag, "PreconditionFailed")
        assert.strictEqual((yield* Effect.flip(store.head("race/kms-copy")))._tag, "ObjectNotFound")
        assert.isTrue(Buffer.from((yield* ObjectStore.readAll(store, "race/kms")).bytes).equals(fresh))
      }), 120_000)
  }
)

layer(bucketLayer(), { timeout: "180 seconds", excludeTestServices: true })("S3ObjectStore on Ceph RGW 16: streamed parts and the memory budget", (it) => {
  const PART_BODY = 24 * 1024 * 1024
  const storeVia = (endpoint: string) => Effect.flatMap(Bucket, ({ config }) => S3ObjectStore.make({ ...config, endpoint, partSize: PART }))

  it.scoped("are sent as they are read (the server has most of a part before its body ends), and read back intact", () =>
    Effect.gen(function*() {
      const { config } = yield* Bucket
      const proxy = yield* TcpRelay.make(config.endpoint!)
      const store = yield* storeVia(proxy.endpoint)
      const data = random(PART_BODY)
      const last = yield* Effect.makeLatch(false)
      // All but the last MiB, then the body waits: a buffering driver would have sent nothing yet.
      const body = Stream.concat(
        Stream.fromIterable(Array.from({ length: PART_BODY / MiB - 1 }, (_, i) => data.subarray(i * MiB, (i + 1) * MiB))),
        Stream.fromEffect(Effect.as(last.await, data.subarray(PART_BODY - MiB)))
      )
      const upload = yield* store.createMultipart("streamed/ok", {})
      const before = proxy.sent()
      const part = yield* Effect.fork(store.uploadPart(upload, 1, body, { contentLength: PART_BODY }))
      const arrived = yield* Effect.sync(() => proxy.sent() - before).pipe(
        Effect.filterOrFail((n) => n >= PART_BODY - 2 * MiB),
        Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 200 }),
        Effect.orElseSucceed(() => proxy.sent() - before)
      )
      assert.isAtLeast(arrived, PART_BODY - 2 * MiB, "the body went out while it was being read")
      yield* last.open
      const done = yield* Fiber.join(part)
      assert.strictEqual(done.etag, crypto.createHash("md5").update(data).digest("hex"))
      yield* store.completeMultipart(upload, [done])
      const back = yield* store.get("streamed/ok").pipe(Effect.flatMap((o) => Stream.runCollect(o.body)), Effect.scoped)
      assert.isTrue(Buffer.concat([...Chunk.toReadonlyArray(back)]).equals(data))
    }))

  it.scoped("a body shorter or longer than its length, or failing, fails the part at once with that error; nothing hangs", () =>
    Effect.gen(function*() {
      const store = yield* storeVia((yield* Bucket).config.endpoint!)
      const upload = yield* store.createMultipart("streamed/bad", {})
      const short = yield* Effect.flip(store.uploadPart(upload, 1, Stream.make(random(PART_BODY - 1)), { contentLength: PART_BODY })).pipe(Effect.timeout("20 seconds"))
      assert.strictEqual(short._tag, "ProviderError")
      assert.include(short.message, "BodyLengthMismatch")
      const long = yield* Effect.flip(store.uploadPart(upload, 2, Stream.make(random(PART_BODY), random(1)), { contentLength: PART_BODY })).pipe(Effect.timeout("20 seconds"))
      assert.include(long.message, "longer than")
      assert.include(long.message, "BodyLengthMismatch")
      const failing = Stream.concat(Stream.make(random(PART_BODY / 2)), Stream.fail(new BodyBoom({ after: "half" })))
      const boom = yield* Effect.flip(store.uploadPart(upload, 3, failing, { contentLength: PART_BODY })).pipe(Effect.timeout("20 seconds"))
      assert.strictEqual(boom._tag, "BodyBoom")
      yield* store.abortMultipart(upload)
    }))

  it.scoped("a byte changed on the way is caught by the ETag check (the request carries no Content-MD5)", () =>
    Effect.gen(function*() {
      const { config } = yield* Bucket
      const proxy = yield* TcpRelay.make(config.endpoint!)
      const store = yield* storeVia(proxy.endpoint)
      const upload = yield* store.createMultipart("streamed/corrupt", {})
      proxy.corruptAt = PART_BODY / 2
      const e = yield* Effect.flip(store.uploadPart(upload, 1, Stream.make(random(PART_BODY)), { contentLength: PART_BODY }))
      assert.strictEqual(e._tag, "ProviderError")
      assert.include(e.message, "BadDigest")
      yield* store.abortMultipart(upload)
    }))

  it.scoped("a buffered body is signed UNSIGNED-PAYLOAD under its signed Content-MD5 (signPayload: SHA-256); a byte changed on the way is refused, nothing stored", () =>
    Effect.gen(function*() {
      const { config } = yield* Bucket
      const proxy = yield* TcpRelay.make(config.endpoint!)
      const signed = (store: S3ObjectStore.S3ObjectStore["Type"]) => {
        const seen: Array<{ sha256: string; signedHeaders: string }> = []
        // The deserialize step sees the request as it is sent: signed.
        store.client.middlewareStack.add((next) => (args) => {
          const headers = (args.request as { headers: Record<string, string> }).headers
          if (headers["content-md5"] !== undefined) {
            seen.push({ sha256: headers["x-amz-content-sha256"] ?? "", signedHeaders: /SignedHeaders=([^,]+)/.exec(headers["authorization"] ?? "")?.[1] ?? "" })
          }
          return next(args)
        }, { step: "deserialize", name: "testSeen" })
        return seen
      }
      const store = yield* storeVia(proxy.endpoint)
      const seen = signed(store)
      const data = random(3 * MiB)
      yield* store.put("unsigned/ok", Stream.make(data), { contentLength: data.length })
      assert.isTrue(Buffer.from((yield* ObjectStore.readAll(store, "unsigned/ok")).bytes).equals(data))
      assert.deepStrictEqual(seen.map((s) => s.sha256), ["UNSIGNED-PAYLOAD"])
      assert.include(seen[0]!.signedHeaders.split(";"), "content-md5")

      // A fresh relay: its first connection carries the request, offsets count from its start.
      const corrupting = yield* TcpRelay.make(config.endpoint!)
      corrupting.corruptAt = 2 * MiB
      const e = yield* Effect.flip((yield* storeVia(corrupting.endpoint)).put("unsigned/corrupt", Stream.make(random(3 * MiB)), { contentLength: 3 * MiB }))
      assert.strictEqual(e._tag, "ProviderError")
      assert.include(e.message, "BadDigest")
      assert.strictEqual((yield* Effect.flip(store.head("unsigned/corrupt")))._tag, "ObjectNotFound")

      const signing = yield* S3ObjectStore.make({ ...config, endpoint: proxy.endpoint, partSize: PART, signPayload: true })
      const full = signed(signing)
      yield* signing.put("unsigned/signed", Stream.make(data), { contentLength: data.length })
      assert.deepStrictEqual(full.map((s) => s.sha256), [crypto.createHash("sha256").update(data).digest("hex")])
    }))

  it.scoped("a server that stops answering fails the request after idleTimeoutMs (TimeoutError), also in the middle of a GET's body", () =>
    Effect.gen(function*() {
      const { config } = yield* Bucket
      const proxy = yield* TcpRelay.make(config.endpoint!)
      const store = yield* S3ObjectStore.make({ ...config, endpoint: proxy.endpoint, partSize: PART, idleTimeoutMs: 1000, maxAttempts: 1 })
      // Larger than what the sockets and the relay hold, so the GET below is still reading when it stalls.
      const data = random(48 * MiB)
      yield* store.put("idle/obj", Stream.make(data), { contentLength: data.length })
      proxy.blackhole = true
      const started = Date.now()
      const e = yield* Effect.flip(store.head("idle/obj")).pipe(Effect.timeout("20 seconds"))
      assert.strictEqual(e._tag, "ProviderError")
      assert.include(e.message, "TimeoutError")
      assert.isBelow(Date.now() - started, 10_000)
      proxy.blackhole = false
      // A GET whose body stops: the first bytes arrive, then nothing — the body fails.
      const failed = yield* Effect.scoped(Effect.gen(function*() {
        const o = yield* store.get("idle/obj")
        let seen = 0
        return yield* o.body.pipe(
          Stream.tap((c) => Effect.sync(() => {
            seen += c.length
            if (seen > MiB) proxy.blackhole = true
          })),
          Stream.runDrain,
          Effect.flip
        )
      })).pipe(Effect.timeout("20 seconds"))
      assert.include(String(failed), "TimeoutError")
      proxy.blackhole = false
      const back = yield* ObjectStore.readAll(store, "idle/obj")
      assert.isTrue(Buffer.from(back.bytes).equals(data))
    }))

  it.scoped("memoryBudget: concurrent multipart puts beyond it wait before reading their bodies; without one they all run", () =>
    Effect.gen(function*() {
      const { config } = yield* Bucket
      // concurrency 1: a multipart put holds two 5 MiB parts; the budget fits one such put.
      const most = (memoryBudget: number | undefined) =>
        Effect.flatMap(
          S3ObjectStore.make({ ...config, partSize: PART, concurrency: 1, ...(memoryBudget === undefined ? {} : { memoryBudget }) }),
          (store) => MemoryBudget.mostReadAtOnce(store, { prefix: "budget/", puts: 3, parts: 3, partBytes: PART })
        )
      assert.strictEqual(yield* most(2 * PART), 1)
      assert.isAbove(yield* most(undefined), 1)
    }))
})
