/**
 * `uploadPart` bodies above `streamPartsAbove` against the test-kit GCS server (its request log shows
 * what arrived): they go up as they are read (a resumable upload of the part object, chunk by
 * chunk), not buffered whole; the object composed from them reads back intact; a body of the wrong
 * length or a failing one fails the part with that error. And the store's memory budget holds
 * concurrent puts back before they read their bodies.
 */
import { assert, describe, it } from "@effect/vitest"
import * as GcsServer from "@objcrypt/test-kit/GcsServer"
import * as MemoryBudget from "@objcrypt/test-kit/MemoryBudget"
import { Chunk, Data, Effect, Fiber, Schedule, Stream } from "effect"
import * as crypto from "node:crypto"
import * as GcsBuckets from "../src/GcsBuckets.js"
import * as GcsObjectStore from "../src/GcsObjectStore.js"

const KiB = 1024
const MiB = 1024 * KiB
const PART = 256 * KiB
const BODY = 40 * PART

class BodyBoom extends Data.TaggedError("BodyBoom")<{ readonly at?: string }> {}

const setup = Effect.gen(function*() {
  const server = yield* GcsServer.make({ logRequests: true })
  const bucket = `objcrypt-${crypto.randomBytes(5).toString("hex")}`
  const store = yield* GcsObjectStore.make({ bucket, apiEndpoint: server.endpoint, projectId: server.projectId, partSize: PART })
  yield* Effect.orDie(GcsBuckets.createBucket(store.storage, bucket))
  /** The bytes of resumable upload chunks the server has received so far. */
  const received = () =>
    server.requests.reduce((n, r) => {
      const m = r.url.includes("upload_id=") ? /^bytes (\d+)-(\d+)\//.exec(r.headers["content-range"] ?? "") : null
      return m === null ? n : Math.max(n, Number(m[2]) + 1)
    }, 0)
  return { store, received }
})

describe("GcsObjectStore: parts above streamPartsAbove", () => {
  it.live("are sent as they are read and compose into an object that reads back intact", () =>
    Effect.scoped(Effect.gen(function*() {
      const { store, received } = yield* setup
      const data = crypto.randomBytes(BODY)
      const last = yield* Effect.makeLatch(false)
      const body = Stream.concat(
        Stream.fromIterable(Array.from({ length: BODY / PART - 1 }, (_, i) => data.subarray(i * PART, (i + 1) * PART))),
        Stream.fromEffect(Effect.as(last.await, data.subarray(BODY - PART)))
      )
      const upload = yield* store.createMultipart("streamed/ok", {})
      const part = yield* Effect.fork(store.uploadPart(upload, 1, body, { contentLength: BODY }))
      const arrived = yield* Effect.sync(received).pipe(
        Effect.filterOrFail((n) => n >= BODY - 4 * PART),
        Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 200 }),
        Effect.orElseSucceed(received)
      )
      assert.isAtLeast(arrived, BODY - 4 * PART, "the body went out while it was being read")
      yield* last.open
      const first = yield* Fiber.join(part)
      const second = yield* store.uploadPart(upload, 2, Stream.make(data.subarray(0, 1000)), { contentLength: 1000 })
      yield* store.completeMultipart(upload, [first, second])
      const back = yield* store.get("streamed/ok").pipe(Effect.flatMap((o) => Stream.runCollect(o.body)), Effect.scoped)
      assert.isTrue(Buffer.concat([...Chunk.toReadonlyArray(back)]).equals(Buffer.concat([data, data.subarray(0, 1000)])))
    })), 60_000)

  it.live("a body shorter or longer than its length, or failing, fails the part with that error", () =>
    Effect.scoped(Effect.gen(function*() {
      const { store } = yield* setup
      const upload = yield* store.createMultipart("streamed/bad", {})
      const short = yield* Effect.flip(store.uploadPart(upload, 1, Stream.make(crypto.randomBytes(BODY - 1)), { contentLength: BODY })).pipe(Effect.timeout("20 seconds"))
      assert.include(short.message, "BodyLengthMismatch")
      const long = yield* Effect.flip(store.uploadPart(upload, 2, Stream.make(crypto.randomBytes(BODY), crypto.randomBytes(1)), { contentLength: BODY })).pipe(Effect.timeout("20 seconds"))
      assert.include(long.message, "longer than")
      const failing = Stream.concat(Stream.make(crypto.randomBytes(BODY / 2)), Stream.fail(new BodyBoom({ at: "half" })))
      const boom = yield* Effect.flip(store.uploadPart(upload, 3, failing, { contentLength: BODY })).pipe(Effect.timeout("20 seconds"))
      assert.strictEqual(boom._tag, "BodyBoom")
      yield* store.abortMultipart(upload)
    })), 60_000)

  it.live("memoryBudget: concurrent puts beyond it wait before reading their bodies; without one they all run", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* GcsServer.make({})
      const bucket = `objcrypt-${crypto.randomBytes(5).toString("hex")}`
      // concurrency 1: a parallel put holds two 1 MiB parts; the budget fits one such put.
      const most = (memoryBudget: number | undefined) =>
        Effect.gen(function*() {
          const store = yield* GcsObjectStore.make({
            bucket,
            apiEndpoint: server.endpoint,
            projectId: server.projectId,
            partSize: MiB,
            concurrency: 1,
            ...(memoryBudget === undefined ? {} : { memoryBudget })
          })
          yield* Effect.ignore(GcsBuckets.createBucket(store.storage, bucket))
          return yield* MemoryBudget.mostReadAtOnce(store, { prefix: "budget/", puts: 3, parts: 3, partBytes: MiB })
        })
      assert.strictEqual(yield* most(2 * MiB), 1)
      assert.isAbove(yield* most(undefined), 1)
    })), 60_000)
})
