/**
 * The ETag records of src/internal/etag.ts on driver-fs stores: which versions are looked up, the
 * records kept by gateways before the id-named ones, and what a write through the tap leaves when
 * the commit fails after the body has been read (the record, an orphan, and no object).
 */
import { assert, describe, it } from "@effect/vitest"
import * as ClientSide from "@objcrypt/core/ClientSide"
import * as Keyring from "@objcrypt/core/Keyring"
import type * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as FsObjectStore from "@objcrypt/driver-fs/FsObjectStore"
import { Effect, Redacted, Stream } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { readJson, writeJson } from "../src/Buckets.js"
import * as Etag from "../src/internal/etag.js"

type Store = ObjectStore.ObjectStore["Type"]

const stores = Effect.gen(function*() {
  const root = yield* Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-gw-etag-"))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )
  const system = yield* FsObjectStore.make({ root: path.join(root, "system"), bucket: "system", fsync: false })
  const bucket = yield* FsObjectStore.make({ root: path.join(root, "b"), bucket: "b", fsync: false })
  return { system, bucket }
})

/** `store` with its reads counted. */
const counted = (store: Store) => {
  let gets = 0
  return { store: { ...store, get: (k: string, o: ObjectStore.GetOptions) => Effect.suspend(() => (gets++, store.get(k, o))) } as Store, gets: () => gets }
}

const putRaw = (store: Store, key: string, metadata: Record<string, string>) =>
  store.put(key, Stream.succeed(new Uint8Array([1, 2, 3])), { contentLength: 3, metadata }).pipe(Effect.orDie)

const keyring = Keyring.aes({ keyId: "etag-test", material: Redacted.make(new Uint8Array(crypto.randomBytes(32))) })
const MD5 = crypto.createHash("md5").update("x").digest("hex")

describe("ETag records", () => {
  it.scoped("reads nothing for SSE-KMS and SSE-C versions (their ETags are opaque)", () =>
    Effect.gen(function*() {
      const { bucket, system } = yield* stores
      const c = counted(system)
      const kms = yield* putRaw(bucket, "kms", { "gw-sse": "aws:kms", "gw-mp": "0".repeat(32) })
      const info = yield* bucket.head("kms")
      assert.strictEqual(yield* Etag.clientEtag(c.store, "b", info), kms.etag)
      assert.strictEqual(c.gets(), 0)
    }))

  it.scoped("still reads the records of gateways before the id-named ones (single and multipart SSE-S3 objects), and drops them", () =>
    Effect.gen(function*() {
      const { bucket, system } = yield* stores
      for (const [key, meta] of [["single", {}], ["multi", { "gw-mp": crypto.randomBytes(16).toString("hex") }]] as const) {
        const put = yield* putRaw(bucket, key, { "gw-sse": "AES256", ...meta })
        yield* writeJson(system, `etags/b/${put.etag}`, MD5)
        const info = yield* bucket.head(key)
        assert.strictEqual(yield* Etag.clientEtag(system, "b", info), MD5, key)
        yield* Etag.drop(system, "b", info)
        assert.isUndefined(yield* readJson(system, `etags/b/${put.etag}`), key)
        assert.strictEqual(yield* Etag.clientEtag(system, "b", info), put.etag, key)
      }
    }))

  it.scoped("a commit failing after the body was read leaves the record (an orphan) and no object; the sweep removes it", () =>
    Effect.gen(function*() {
      const { bucket, system } = yield* stores
      const tap = Etag.md5Tap({ _tag: "SseS3" }, system, "b", "obj")!
      // The backend takes the whole body, then refuses the commit: the failure comes after the
      // point where a crash is the worst (body read, record written, object not committed).
      const failing: Store = {
        ...bucket,
        put: (key, body, options) =>
          Stream.runDrain(body).pipe(Effect.zipRight(Effect.die("the backend went away before the commit")), Effect.zipRight(bucket.put(key, Stream.empty, options)))
      }
      const exit = yield* Effect.exit(
        ClientSide.put(failing, "obj", tap.pipe(Stream.succeed(Buffer.from("x"))), [keyring], { contentLength: 1, metadata: { "gw-sse": "AES256", ...tap.metadata } })
      )
      assert.isTrue(exit._tag === "Failure")
      const id = tap.metadata[Etag.META]!
      assert.deepStrictEqual(JSON.parse((yield* readJson(system, `etag-records/b/${id}`))!), { etag: MD5, key: "obj" })
      assert.isTrue((yield* Effect.exit(bucket.head("obj")))._tag === "Failure")
      const swept = yield* Etag.sweep(system, () => Effect.succeed(bucket), { olderThanMs: 0, now: Date.now() + 1000 })
      assert.deepStrictEqual(swept, { checked: 1, removed: 1 })
      assert.isUndefined(yield* readJson(system, `etag-records/b/${id}`))
    }))
})
