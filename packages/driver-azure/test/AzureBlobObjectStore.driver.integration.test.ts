/**
 * Azure-specific behaviour on Azurite: client-side encryption (objcrypt's native format) through
 * the driver, an upload interrupted midway leaving nothing visible, multipart state kept in block
 * ids, the metadata names other Azure clients see, and parallel block uploads with bounded memory.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as ClientSide from "@objcrypt/core/ClientSide"
import * as Keyring from "@objcrypt/core/Keyring"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as Azurite from "@objcrypt/test-kit/Azurite"
import * as MemoryBudget from "@objcrypt/test-kit/MemoryBudget"
import { Effect, Fiber, ManagedRuntime, Redacted, Stream } from "effect"
import * as crypto from "node:crypto"
import * as AzureBlobObjectStore from "../src/AzureBlobObjectStore.js"

const azurite = ManagedRuntime.make(Azurite.layer())
afterAll(() => azurite.dispose(), 60_000)

const MiB = 1024 * 1024

const setup = (blockSize = 256 * 1024) =>
  Effect.gen(function*() {
    const info = yield* Effect.promise(() => azurite.runPromise(Azurite.Azurite))
    const store = yield* AzureBlobObjectStore.make({
      container: `drv-${crypto.randomBytes(5).toString("hex")}`,
      accountUrl: info.blobEndpoint,
      credentials: { _tag: "ConnectionString", connectionString: Redacted.make(info.connectionString) },
      blockSize
    })
    yield* Effect.orDie(AzureBlobObjectStore.createContainer(store.client))
    return store
  })

describe("AzureBlobObjectStore on Azurite (driver)", () => {
  it.scoped("cse-c (native format) round trip with parallel parts and ranged reads", () =>
    Effect.gen(function*() {
      const store = yield* setup()
      const material = Redacted.make(new Uint8Array(crypto.randomBytes(32)))
      const keyring = Keyring.aes({ keyId: "backup", material })
      const body = crypto.randomBytes(3 * MiB + 12_345)
      yield* ClientSide.put(store, "cse/obj", Stream.make(body), [keyring], { partSize: MiB, segmentSize: 65_536, contentLength: body.length })
      const stored = yield* ObjectStore.readAll(store, "cse/obj")
      assert.isFalse(Buffer.from(stored.bytes).includes(body.subarray(0, 64)), "ciphertext at rest")
      const unwrapper = Keyring.makeUnwrapper({ keys: [{ _tag: "Aes", keyId: "backup", material }] })
      const read = (range?: ObjectStore.ByteRange) =>
        Effect.scoped(Effect.flatMap(ClientSide.get(store, "cse/obj", unwrapper, { range }), (o) => Effect.map(Stream.runCollect(o.body), (c) => Buffer.concat([...c]))))
      assert.isTrue((yield* read()).equals(body))
      assert.isTrue((yield* read(ObjectStore.range.bounded(MiB - 3, MiB + 70_000))).equals(body.subarray(MiB - 3, MiB + 70_001)))
      const wrong = Keyring.makeUnwrapper({ keys: [{ _tag: "Aes", keyId: "backup", material: Redacted.make(new Uint8Array(crypto.randomBytes(32))) }] })
      const e = yield* Effect.flip(Effect.scoped(Effect.flatMap(ClientSide.get(store, "cse/obj", wrong), (o) => Stream.runDrain(o.body))))
      assert.strictEqual(e._tag, "DecryptError")
    }), 60_000)

  it.scopedLive("an upload interrupted midway leaves nothing visible (its staged blocks stay uncommitted)", () =>
    Effect.gen(function*() {
      const store = yield* setup()
      let sent = 0
      const endless = Stream.repeatEffect(Effect.sync(() => {
        sent += 64 * 1024
        return crypto.randomBytes(64 * 1024) as Uint8Array
      }))
      const fiber = yield* Effect.fork(store.put("killed/obj", endless))
      // Wait until blocks have really reached the server, then stop the upload.
      let staged = 0
      while (staged < 4) {
        yield* Effect.sleep("20 millis")
        const list = yield* Effect.promise(() => store.client.getBlockBlobClient("killed/obj").getBlockList("uncommitted").catch(() => ({ uncommittedBlocks: [] })))
        staged = list.uncommittedBlocks?.length ?? 0
      }
      yield* Fiber.interrupt(fiber)
      assert.isAbove(sent, MiB)
      assert.strictEqual((yield* Effect.flip(store.head("killed/obj")))._tag, "ObjectNotFound")
      assert.deepStrictEqual((yield* store.list({ prefix: "killed/" })).objects, [])
    }), 60_000)

  it.scoped("multipart: foreign etags, missing parts, unknown and completed uploads are refused", () =>
    Effect.gen(function*() {
      const store = yield* setup()
      const upload = yield* store.createMultipart("mp/obj", { metadata: { "x.y": "z" } })
      const p1 = yield* store.uploadPart(upload, 1, Stream.make(crypto.randomBytes(1000)))
      const fake = { partNumber: 2, etag: "\"0x8DB\"", size: 5 }
      assert.strictEqual((yield* Effect.flip(store.completeMultipart(upload, [p1, fake])))._tag, "PreconditionFailed")
      const missing = { partNumber: 2, etag: p1.etag, size: 1000 }
      assert.strictEqual((yield* Effect.flip(store.completeMultipart(upload, [p1, missing])))._tag, "PreconditionFailed")
      const bogus = { key: "mp/obj", uploadId: "not-an-upload" }
      assert.strictEqual((yield* Effect.flip(store.uploadPart(bogus, 1, Stream.make(Buffer.from("x")))))._tag, "PreconditionFailed")
      // A completed upload is over: its blocks are committed and the markers discarded.
      yield* store.completeMultipart(upload, [p1])
      assert.strictEqual((yield* Effect.flip(store.uploadPart(upload, 2, Stream.make(Buffer.from("x")))))._tag, "PreconditionFailed")
      assert.strictEqual((yield* Effect.flip(store.completeMultipart(upload, [p1])))._tag, "PreconditionFailed")
      assert.deepStrictEqual({ ...(yield* store.head("mp/obj")).metadata }, { "x.y": "z" })
      assert.strictEqual((yield* store.head("mp/obj")).size, 1000)
    }), 60_000)

  it.scoped("metadata names are stored as C# identifiers other Azure clients can read", () =>
    Effect.gen(function*() {
      const store = yield* setup()
      yield* store.put("meta", Stream.make(Buffer.from("x")), { metadata: { "with-dash_and.dot": "café", "2fa": "v" } })
      const props = yield* Effect.promise(() => store.client.getBlobClient("meta").getProperties())
      assert.deepStrictEqual(props.metadata, { with_hdash__and_ddot: "=?UTF-8?B?Y2Fmw6k=?=", _n2fa: "v" })
      assert.deepStrictEqual({ ...(yield* store.head("meta")).metadata }, { "with-dash_and.dot": "café", "2fa": "v" })
    }), 60_000)

  it.scoped("a 256 MiB streamed upload stages blocks in parallel with bounded memory", () =>
    Effect.gen(function*() {
      const store = yield* setup(8 * MiB)
      const chunk = crypto.randomBytes(MiB)
      const total = 256
      const baseline = process.memoryUsage().rss
      let peak = baseline
      const body = Stream.range(1, total).pipe(Stream.map(() => {
        peak = Math.max(peak, process.memoryUsage().rss)
        return chunk as Uint8Array
      }))
      const started = Date.now()
      const put = yield* store.put("big/obj", body)
      const seconds = (Date.now() - started) / 1000
      assert.strictEqual(put.size, total * MiB)
      const blocks = yield* Effect.promise(() => store.client.getBlockBlobClient("big/obj").getBlockList("committed"))
      assert.strictEqual(blocks.committedBlocks?.length, total / 8)
      const growth = (peak - baseline) / MiB
      console.log(`256 MiB put: ${(total / seconds).toFixed(0)} MiB/s, RSS growth ${growth.toFixed(0)} MiB`)
      // (concurrency 4 + 1) × 8 MiB blocks, plus the SDK's and Node's buffers.
      assert.isBelow(growth, 160, "memory stays bounded by the blocks in flight")
      const tail = yield* ObjectStore.readAll(store, "big/obj", { range: ObjectStore.range.suffix(10) })
      assert.isTrue(Buffer.from(tail.bytes).equals(chunk.subarray(MiB - 10)))
      yield* store.remove("big/obj")
    }), 180_000)

  it.scoped("memoryBudget: concurrent puts beyond it wait before reading their bodies; without one they all run", () =>
    Effect.gen(function*() {
      const info = yield* Effect.promise(() => azurite.runPromise(Azurite.Azurite))
      const container = `budget-${crypto.randomBytes(5).toString("hex")}`
      // concurrency 1: a put holds two 1 MiB blocks; the budget fits one such put.
      const most = (memoryBudget: number | undefined) =>
        Effect.gen(function*() {
          const store = yield* AzureBlobObjectStore.make({
            container,
            accountUrl: info.blobEndpoint,
            credentials: { _tag: "ConnectionString", connectionString: Redacted.make(info.connectionString) },
            blockSize: MiB,
            concurrency: 1,
            ...(memoryBudget === undefined ? {} : { memoryBudget })
          })
          yield* Effect.ignore(AzureBlobObjectStore.createContainer(store.client))
          return yield* MemoryBudget.mostReadAtOnce(store, { prefix: "budget/", puts: 3, parts: 3, partBytes: MiB })
        })
      assert.strictEqual(yield* most(2 * MiB), 1)
      assert.isAbove(yield* most(undefined), 1)
    }))
})
