/**
 * The sweep of orphan multipart manifests (src/internal/orphans.ts with `Multipart.manifests`) on
 * a gateway's driver-fs backend: manifests whose object was deleted or replaced without dropping
 * them (what a process killed between the two steps, or racing overwrites, leave), of a bucket that
 * no longer exists, and unreadable ones go; live manifests and those of older gateways (naming no
 * object) stay; young ones are not looked at; an incremental sweep checks only what was written
 * since the last, a full one everything. The same for checksum records (keyed by the ETag).
 */
import { CompleteMultipartUploadCommand, CreateBucketCommand, CreateMultipartUploadCommand, DeleteBucketCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, UploadPartCommand } from "@aws-sdk/client-s3"
import type { S3Client } from "@aws-sdk/client-s3"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import * as crypto from "node:crypto"
import * as Buckets from "../src/Buckets.js"
import * as Orphans from "../src/internal/orphans.js"
import * as Multipart from "../src/Multipart.js"
import * as ObjectAttributes from "../src/ObjectAttributes.js"
import { client, configFor, makeDirs, start } from "./harness.js"
import type { Gateway } from "./harness.js"

const MiB = 1024 * 1024

const upload = async (s3: S3Client, Bucket: string, Key: string, body: Buffer) => {
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key }))
  const Parts = []
  for (let n = 1, off = 0; off < body.length; n++, off += 5 * MiB) {
    const r = await s3.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: n, Body: body.subarray(off, off + 5 * MiB) }))
    Parts.push({ PartNumber: n, ETag: r.ETag! })
  }
  await s3.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts } }))
}

const get = async (s3: S3Client, Bucket: string, Key: string) =>
  Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket, Key }))).Body!.transformToByteArray())

describe("orphan record sweep", () => {
  const dirs = makeDirs()
  let gw: Gateway | undefined
  afterAll(() => gw?.close())

  it.effect("removes the manifests no object carries, keeps the live and the unknown, and a full sweep finds what an incremental one cannot", () =>
    Effect.gen(function*() {
      gw = yield* Effect.promise(() => start(configFor(dirs)))
      const s3 = client(gw)
      const body = crypto.randomBytes(5 * MiB + 10)
      yield* Effect.promise(async () => {
        await s3.send(new CreateBucketCommand({ Bucket: "mfst" }))
        await s3.send(new CreateBucketCommand({ Bucket: "gone" }))
        for (const key of ["keep", "keep-too", "deleted", "replaced"]) await upload(s3, "mfst", key, body)
        await upload(s3, "gone", "x", body)
      })
      const buckets = yield* Buckets.makeFs({ root: dirs.root })
      const b = yield* buckets.store("mfst")
      const gone = yield* buckets.store("gone")
      const idOf = (store: typeof b, key: string) => Effect.map(store.head(key), (i) => i.metadata["gw-mp"]!)
      const ids = {
        keep: yield* idOf(b, "keep"),
        keepToo: yield* idOf(b, "keep-too"),
        deleted: yield* idOf(b, "deleted"),
        replaced: yield* idOf(b, "replaced"),
        x: yield* idOf(gone, "x")
      }
      const manifest = (bucket: string, id: string) => Buckets.readJson(buckets.system, Multipart.manifestKey(bucket, id))
      assert.strictEqual(JSON.parse((yield* manifest("mfst", ids.keep))!).key, "keep", "a manifest names its object")

      // What a kill between the object's removal (or replacement) and the manifest's drop leaves.
      yield* b.remove("deleted")
      yield* b.put("replaced", Stream.make(new Uint8Array([1, 2, 3])), { contentLength: 3, metadata: {} })
      yield* gone.remove("x")
      yield* Effect.promise(() => s3.send(new DeleteBucketCommand({ Bucket: "gone" })))
      // A manifest of an older gateway (no key) and an unreadable one.
      const older = crypto.randomBytes(16).toString("hex")
      const broken = crypto.randomBytes(16).toString("hex")
      yield* Buckets.writeJson(buckets.system, Multipart.manifestKey("mfst", older), { size: 0, parts: [] })
      yield* buckets.system.put(Multipart.manifestKey("mfst", broken), Stream.make(Buffer.from("{not json")), { contentLength: 9 })

      const sweep = (now: number, olderThanMs: number, full = false) =>
        Orphans.sweep(buckets.system, (name) => Buckets.storeIfExists(buckets, name), Multipart.manifests, { olderThanMs, now, full })
      // Younger than the safety age: their objects may still be on their way.
      assert.deepStrictEqual(yield* sweep(Date.now(), 60 * 60 * 1000), { checked: 0, removed: 0 })
      assert.deepStrictEqual(yield* sweep(Date.now() + 1000, 0), { checked: 6, removed: 4 })
      assert.isDefined(yield* manifest("mfst", ids.keep))
      assert.isDefined(yield* manifest("mfst", ids.keepToo))
      assert.isDefined(yield* manifest("mfst", older))
      for (const [bucket, id] of [["mfst", ids.deleted], ["mfst", ids.replaced], ["gone", ids.x], ["mfst", broken]] as const) {
        assert.isUndefined(yield* manifest(bucket, id), `${bucket}/${id}`)
      }
      assert.isTrue((yield* Effect.promise(() => get(s3, "mfst", "keep"))).equals(body))

      // A version removed long after its manifest was written: the incremental sweep has moved
      // past that manifest, the full one finds it.
      yield* b.remove("keep-too")
      assert.deepStrictEqual(yield* sweep(Date.now() + 2000, 0), { checked: 0, removed: 0 })
      assert.deepStrictEqual(yield* sweep(Date.now() + 3000, 0, true), { checked: 2, removed: 1 })
      assert.isUndefined(yield* manifest("mfst", ids.keepToo))
      assert.isTrue((yield* Effect.promise(() => get(s3, "mfst", "keep"))).equals(body))
      const cursor = JSON.parse((yield* Buckets.readJson(buckets.system, "manifest-sweep.json"))!) as { checkedUpTo: number; fullAt: number }
      assert.isAbove(cursor.fullAt, Date.now())
    }).pipe(Effect.scoped), 60_000)

  it.effect("checksum records: kept while their object has their ETag, removed once it is gone or replaced; older records (no key) kept", () =>
    Effect.gen(function*() {
      gw ??= yield* Effect.promise(() => start(configFor(dirs)))
      const s3 = client(gw)
      yield* Effect.promise(async () => {
        await s3.send(new CreateBucketCommand({ Bucket: "sums" }))
        for (const key of ["live", "deleted", "replaced"]) {
          await s3.send(new PutObjectCommand({ Bucket: "sums", Key: key, Body: `body of ${key}`, ChecksumAlgorithm: "CRC32" }))
        }
      })
      const buckets = yield* Buckets.makeFs({ root: dirs.root })
      const store = yield* buckets.store("sums")
      const etagOf = (key: string) => Effect.map(store.head(key), (i) => i.etag)
      const etags = { live: yield* etagOf("live"), deleted: yield* etagOf("deleted"), replaced: yield* etagOf("replaced") }
      const record = (etag: string) => Buckets.readJson(buckets.system, `checksums/sums/${etag}`)
      assert.strictEqual(JSON.parse((yield* record(etags.live))!).key, "live", "a record names its object")
      yield* store.remove("deleted")
      yield* store.put("replaced", Stream.make(new Uint8Array([1])), { contentLength: 1, metadata: {} })
      yield* Buckets.writeJson(buckets.system, "checksums/sums/older0123", { algorithm: "crc32", value: "AAAAAA==" })
      const swept = yield* Orphans.sweep(buckets.system, (name) => Buckets.storeIfExists(buckets, name), ObjectAttributes.checksums, { olderThanMs: 0, now: Date.now() + 1000 })
      assert.deepStrictEqual(swept, { checked: 3, removed: 2 })
      assert.isDefined(yield* record(etags.live))
      assert.isDefined(yield* record("older0123"))
      assert.isUndefined(yield* record(etags.deleted))
      assert.isUndefined(yield* record(etags.replaced))
      const head = yield* Effect.promise(() => s3.send(new HeadObjectCommand({ Bucket: "sums", Key: "live", ChecksumMode: "ENABLED" })))
      assert.isDefined(head.ChecksumCRC32, "the live object keeps its checksum")
    }).pipe(Effect.scoped), 60_000)
})
