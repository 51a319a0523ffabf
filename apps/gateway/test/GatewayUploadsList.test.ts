/**
 * ListMultipartUploads against S3's documented semantics (AWS API reference): uploads sorted by
 * key (UTF-8 binary order), then by initiation; `prefix`; `delimiter` grouping into common
 * prefixes (groups at or before `key-marker` left out); `key-marker` alone lists keys after it,
 * with `upload-id-marker` also the uploads of that key with a greater id; `upload-id-marker`
 * without `key-marker` is ignored; `max-uploads` counts uploads and prefixes, with NextKeyMarker
 * and NextUploadIdMarker leading to the next page. Each page is checked against a model of those
 * rules, and its cost (listing calls, upload records read) is checked to be the page's, not the
 * number of uploads in progress.
 */
import { CreateBucketCommand, CreateMultipartUploadCommand, ListMultipartUploadsCommand } from "@aws-sdk/client-s3"
import type { ListMultipartUploadsCommandOutput, S3Client } from "@aws-sdk/client-s3"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { ProviderError } from "@objcrypt/core/Errors"
import type * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as FsObjectStore from "@objcrypt/driver-fs/FsObjectStore"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { SYSTEM_DIR } from "../src/Buckets.js"
import { call, client, refused, start } from "./apiHarness.js"
import type { Api } from "./apiHarness.js"

type Store = ObjectStore.ObjectStore["Type"]

/** Listing calls and upload-record reads on the system store while `counting`. */
const cost = { lists: 0, records: 0 }
let counting = false
/** Refuse the next index write (a backend failing between the upload record and its entry). */
let failIndexWrite = false
const countingStore = (store: Store): Store =>
  store.bucket !== SYSTEM_DIR ? store : {
    ...store,
    put: (key, body, options) => {
      if (failIndexWrite && key.startsWith("upload-index/")) {
        failIndexWrite = false
        return Effect.fail(new ProviderError({ provider: store.provider, operation: "put", key, code: "InjectedFault", detail: "injected" }))
      }
      return store.put(key, body, options)
    },
    list: (options) => {
      if (counting) cost.lists++
      return store.list(options)
    },
    get: (key, options) => {
      if (counting && /^uploads\/[0-9a-f]{32}\/record$/.test(key)) cost.records++
      return store.get(key, options)
    }
  }

// 25 uploads. Keys chosen where orders differ: bytes below and around the index's escape ("\t",
// " ", "!"), a key that prefixes others ("a" < "a\t" < "a b" < "a!x" < "a/0"), non-ASCII, two
// characters whose UTF-16 order is the reverse of their UTF-8 order (U+FF5E, U+1F600), and a last
// segment of 250 bytes (driver-fs takes 255 per name: the index entry must fit where the object does).
const KEYS = [
  "a", "a\t", "a b", "a!x", "a/0", "a/1", "a/1", "a/1", "b", "b/c/d", "b/c/e", "b/x", "é", "é/1", "z",
  "a", `k/${"1".repeat(250)}`, "k/2", "k/2", "k/10", "\u{1F600}", "\uFF5E", "a/0", "b", "zz"
]

const utf8 = (a: string, b: string) => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"))

interface Upload {
  readonly key: string
  readonly id: string
}
type Entry = string // "U <key> <id>" or "P <prefix>"

interface Query {
  readonly prefix?: string
  readonly delimiter?: string
  readonly keyMarker?: string
  readonly uploadIdMarker?: string
  readonly max?: number
}

/** S3's rules, over the uploads the test created. */
const model = (uploads: ReadonlyArray<Upload>, q: Query) => {
  const prefix = q.prefix ?? ""
  const km = q.keyMarker ?? ""
  const um = km === "" ? "" : q.uploadIdMarker ?? ""
  const max = q.max ?? 1000
  const sorted = uploads.filter((u) => u.key.startsWith(prefix)).sort((a, b) => utf8(a.key, b.key) || (a.id < b.id ? -1 : 1))
  const after = sorted.filter((u) => km === "" || utf8(u.key, km) > 0 || (u.key === km && um !== "" && u.id > um))
  const entries: Array<Entry> = []
  for (const u of after) {
    const cut = q.delimiter === undefined ? -1 : u.key.indexOf(q.delimiter, prefix.length)
    const group = cut < 0 ? undefined : u.key.slice(0, cut + q.delimiter!.length)
    if (group !== undefined && (entries.at(-1) === `P ${group}` || (km !== "" && group <= km))) continue
    entries.push(group === undefined ? `U ${u.key} ${u.id}` : `P ${group}`)
  }
  return { entries: entries.slice(0, max), truncated: entries.length > max }
}

/** One page through the gateway, uploads and common prefixes merged in key order. */
const entriesOf = (r: ListMultipartUploadsCommandOutput): Array<Entry> =>
  [
    ...(r.Uploads ?? []).map((u) => ({ at: u.Key!, e: `U ${u.Key} ${u.UploadId}` })),
    ...(r.CommonPrefixes ?? []).map((p) => ({ at: p.Prefix!, e: `P ${p.Prefix}` }))
  ].sort((a, b) => utf8(a.at, b.at)).map((x) => x.e)

let api: Api
let s3: S3Client
const uploads: Array<Upload> = []

beforeAll(async () => {
  api = await start({ wrapStore: countingStore })
  s3 = client(api)
  await s3.send(new CreateBucketCommand({ Bucket: "paging" }))
  await s3.send(new CreateBucketCommand({ Bucket: "paging-other" }))
  for (const key of KEYS) {
    const r = await s3.send(new CreateMultipartUploadCommand({ Bucket: "paging", Key: key }))
    uploads.push({ key, id: r.UploadId! })
    // Another bucket's uploads, interleaved: never listed here, never read.
    await s3.send(new CreateMultipartUploadCommand({ Bucket: "paging-other", Key: key }))
  }
}, 60_000)

afterAll(async () => {
  await api?.close()
})

const list = (q: Query) =>
  call(async () => {
    cost.lists = 0
    cost.records = 0
    counting = true
    try {
      return await s3.send(new ListMultipartUploadsCommand({
        Bucket: "paging",
        Prefix: q.prefix,
        Delimiter: q.delimiter,
        KeyMarker: q.keyMarker,
        UploadIdMarker: q.uploadIdMarker,
        MaxUploads: q.max
      }))
    } finally {
      counting = false
    }
  })

/** Pages through a listing with the Next markers, checking each page against the model. */
const pageThrough = (q: Query) =>
  Effect.gen(function*() {
    const all: Array<Entry> = []
    let marker: { keyMarker?: string; uploadIdMarker?: string } = {}
    for (let pages = 1;; pages++) {
      const r = yield* list({ ...q, ...marker })
      const want = model(uploads, { ...q, ...marker })
      assert.deepStrictEqual(entriesOf(r), want.entries, `page ${pages}`)
      assert.strictEqual(r.IsTruncated, want.truncated, `page ${pages}`)
      assert.isAtMost(cost.records, (q.max ?? 1000) + 1, `records read for page ${pages}`)
      all.push(...entriesOf(r))
      if (r.IsTruncated !== true) return { all, pages }
      marker = { keyMarker: r.NextKeyMarker, uploadIdMarker: r.NextUploadIdMarker }
      assert.isDefined(r.NextKeyMarker)
    }
  })

describe("ListMultipartUploads pagination", () => {
  it.effect("lists every upload in S3's order: UTF-8 key order, then initiation (ids of a key rise with it)", () =>
    Effect.gen(function*() {
      const r = yield* list({})
      assert.deepStrictEqual(entriesOf(r), model(uploads, {}).entries)
      assert.strictEqual(r.Uploads?.length, 25)
      assert.strictEqual(r.IsTruncated, false)
      // the astral character after U+FF5E, as S3 orders UTF-8 (UTF-16 would put it first)
      const keys = r.Uploads!.map((u) => u.Key)
      assert.isBelow(keys.indexOf("\uFF5E"), keys.indexOf("\u{1F600}"))
      // same key: in order of initiation, and ids rise with it
      const a1 = r.Uploads!.filter((u) => u.Key === "a/1")
      assert.deepStrictEqual(a1.map((u) => u.UploadId), uploads.filter((u) => u.key === "a/1").map((u) => u.id))
      for (let i = 1; i < a1.length; i++) assert.isAtMost(a1[i - 1]!.Initiated!.getTime(), a1[i]!.Initiated!.getTime())
    }))

  it.effect("pages of 7 through 25 uploads: 4 pages, each as the model says, each reading at most 8 records", () =>
    Effect.gen(function*() {
      const { all, pages } = yield* pageThrough({ max: 7 })
      assert.strictEqual(pages, 4)
      assert.deepStrictEqual(all, model(uploads, {}).entries)
      const first = yield* list({ max: 7 })
      assert.strictEqual(first.MaxUploads, 7)
      assert.isAtMost(cost.lists, 2)
      assert.isAtMost(cost.records, 8)
    }))

  it.effect("groups keys with a delimiter, paged at 3 (a common prefix counts as one entry and is listed once)", () =>
    Effect.gen(function*() {
      const { all } = yield* pageThrough({ delimiter: "/", max: 3 })
      assert.deepStrictEqual(all, model(uploads, { delimiter: "/" }).entries)
      assert.includeMembers(all, ["P a/", "P b/", "P k/", "P é/"])
      const whole = yield* list({ delimiter: "/" })
      assert.deepStrictEqual(whole.CommonPrefixes?.map((p) => p.Prefix), ["a/", "b/", "k/", "é/"])
      // a group costs one listing call, not one per upload in it
      assert.isAtMost(cost.lists, 4 + 2)
      const nested = yield* pageThrough({ prefix: "b/", delimiter: "/", max: 1 })
      assert.deepStrictEqual(nested.all, ["P b/c/", `U b/x ${uploads.find((u) => u.key === "b/x")!.id}`])
    }))

  it.effect("honours key-marker alone, key-marker with upload-id-marker, and ignores upload-id-marker alone", () =>
    Effect.gen(function*() {
      const a1 = uploads.filter((u) => u.key === "a/1")
      for (const q of [
        { keyMarker: "a/1" },
        { keyMarker: "a/1", uploadIdMarker: a1[0]!.id },
        { keyMarker: "a/1", uploadIdMarker: a1[1]!.id, max: 2 },
        { keyMarker: "a/0x" },
        { keyMarker: "a/", delimiter: "/" },
        { keyMarker: "a/0", delimiter: "/" },
        { keyMarker: "zzz" },
        { uploadIdMarker: a1[2]!.id },
        { prefix: "k/", keyMarker: "k/10", max: 2 }
      ] satisfies ReadonlyArray<Query>) {
        const r = yield* list(q)
        const want = model(uploads, q)
        assert.deepStrictEqual(entriesOf(r), want.entries, JSON.stringify(q))
        assert.strictEqual(r.IsTruncated, want.truncated, JSON.stringify(q))
      }
      const r = yield* list({ keyMarker: "a/1", uploadIdMarker: a1[0]!.id })
      assert.deepStrictEqual(r.Uploads!.slice(0, 2).map((u) => u.UploadId), [a1[1]!.id, a1[2]!.id])
      assert.strictEqual(r.KeyMarker, "a/1")
      assert.strictEqual(r.UploadIdMarker, a1[0]!.id)
    }))

  it.effect("skips and removes an index entry whose upload record is gone (a completion killed between its two removals)", () =>
    Effect.gen(function*() {
      const victim = uploads.find((u) => u.key === "zz")!
      const system = yield* FsObjectStore.make({ root: path.join(api.root, SYSTEM_DIR), bucket: SYSTEM_DIR, fsync: false })
      yield* system.remove(`uploads/${victim.id}/record`)
      const r = yield* list({ prefix: "z" })
      assert.deepStrictEqual(r.Uploads?.map((u) => u.Key), ["z"])
      const index = yield* system.list({ prefix: "upload-index/paging/z" })
      assert.deepStrictEqual(index.objects.map((o) => o.key.replace(/ \/[0-9a-f]{32}$/, "")), ["upload-index/paging/z"])
      uploads.splice(uploads.indexOf(victim), 1)
    }))

  it.effect("an upload whose index entry cannot be written fails and leaves neither its record nor its backend upload", () =>
    Effect.gen(function*() {
      const system = yield* FsObjectStore.make({ root: path.join(api.root, SYSTEM_DIR), bucket: SYSTEM_DIR, fsync: false })
      const records = () => system.list({ prefix: "uploads/", delimiter: "/" }).pipe(Effect.map((p) => p.commonPrefixes.length))
      // driver-fs keeps a multipart upload in progress as a directory of its staging area
      const backendUploads = () => fs.readdirSync(path.join(api.root, "paging", ".objcrypt-fs", "uploads")).length
      const before = yield* records()
      const backendBefore = backendUploads()
      failIndexWrite = true
      const once = client(api, undefined, { maxAttempts: 1 }) // no retry of the 5xx
      const r = yield* refused(() => once.send(new CreateMultipartUploadCommand({ Bucket: "paging", Key: "no-index" })))
      assert.isAtLeast(r.status ?? 0, 500)
      assert.strictEqual(yield* records(), before)
      assert.strictEqual(backendUploads(), backendBefore)
      assert.isUndefined((yield* list({ prefix: "no-index" })).Uploads)
      const again = yield* call(() => s3.send(new CreateMultipartUploadCommand({ Bucket: "paging", Key: "no-index" })))
      assert.deepStrictEqual((yield* list({ prefix: "no-index" })).Uploads?.map((u) => u.UploadId), [again.UploadId])
      assert.strictEqual(backendUploads(), backendBefore + 1)
    }))
})
