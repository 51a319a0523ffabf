/**
 * Object and bucket tagging, versioning and ACL subresources, through the real
 * `@aws-sdk/client-s3` (and raw signed requests where the SDK cannot send the bad input).
 */
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketTaggingCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  DeleteObjectTaggingCommand,
  GetBucketAclCommand,
  GetBucketTaggingCommand,
  GetBucketVersioningCommand,
  GetObjectAclCommand,
  GetObjectAttributesCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutBucketAclCommand,
  PutBucketTaggingCommand,
  PutBucketVersioningCommand,
  PutObjectAclCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  UploadPartCommand
} from "@aws-sdk/client-s3"
import type { S3Client } from "@aws-sdk/client-s3"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import type * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as FsObjectStore from "@objcrypt/driver-fs/FsObjectStore"
import * as ObjectStoreOps from "@objcrypt/core/ObjectStore"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import * as path from "node:path"
import { alice, body, bytes, call, client, filesUnder, MARKER, MiB, refused, ssec, start } from "./apiHarness.js"
import type { Api } from "./apiHarness.js"
import * as Harness from "./harness.js"

type Store = ObjectStore.ObjectStore["Type"]

/** Runs before each backend copy (a tag update's rewrite) of the key it names. */
let beforeCopy: { key: string; run: () => Promise<void> } | undefined

/** Wraps each real FsObjectStore so a test can act between a tag update's read and its rewrite. */
const hooked = (store: Store): Store => ({
  ...store,
  copy: (source, destination, options) => {
    const hook = beforeCopy
    if (hook === undefined || hook.key !== source) return store.copy(source, destination, options)
    return Effect.zipRight(Effect.promise(() => hook.run()), store.copy(source, destination, options))
  }
})

let api: Api
let s3: S3Client
const B = "subres"

beforeAll(async () => {
  api = await start({ wrapStore: hooked, minPartSize: 5 * MiB })
  s3 = client(api)
  await s3.send(new CreateBucketCommand({ Bucket: B }))
}, 60_000)

afterAll(async () => {
  await api?.close()
})

const sha256 = (s: string | Buffer) => crypto.createHash("sha256").update(s).digest("hex")
const hmac = (k: string | Buffer, s: string) => crypto.createHmac("sha256", k).update(s).digest()

/** A SigV4-signed request built by hand, for bodies and headers the SDK will not send. */
const raw = (method: string, pathname: string, query: string, payload: string, extra: Record<string, string> = {}) =>
  call(() =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const amzDate = new Date().toISOString().replace(/[-:]|\.\d{3}/g, "")
      const date = amzDate.slice(0, 8)
      const headers: Record<string, string> = {
        host: `127.0.0.1:${api.port}`,
        "x-amz-date": amzDate,
        "x-amz-content-sha256": sha256(payload),
        ...extra
      }
      const names = Object.keys(headers).sort()
      const canonical = [method, pathname, query, names.map((n) => `${n}:${headers[n]!.trim()}\n`).join(""), names.join(";"), headers["x-amz-content-sha256"]].join("\n")
      const scope = `${date}/us-east-1/s3/aws4_request`
      const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256(canonical)].join("\n")
      const key = hmac(hmac(hmac(hmac(`AWS4${alice.secret}`, date), "us-east-1"), "s3"), "aws4_request")
      headers["authorization"] = `AWS4-HMAC-SHA256 Credential=${alice.id}/${scope}, SignedHeaders=${names.join(";")}, Signature=${hmac(key, toSign).toString("hex")}`
      headers["content-length"] = String(Buffer.byteLength(payload))
      const req = http.request({ host: "127.0.0.1", port: api.port, method, path: query === "" ? pathname : `${pathname}?${query}`, headers }, (res) => {
        const chunks: Array<Buffer> = []
        res.on("data", (c: Buffer) => chunks.push(c))
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }))
      })
      req.on("error", reject)
      req.end(payload)
    })
  )

const codeOf = (xml: string) => /<Code>([^<]*)<\/Code>/.exec(xml)?.[1]

const tagsOf = (key: string) =>
  call(() => s3.send(new GetObjectTaggingCommand({ Bucket: B, Key: key }))).pipe(
    Effect.map((r) => (r.TagSet ?? []).map((t) => [t.Key!, t.Value!] as const))
  )

const putTags = (key: string, tags: ReadonlyArray<readonly [string, string]>) =>
  s3.send(new PutObjectTaggingCommand({ Bucket: B, Key: key, Tagging: { TagSet: tags.map(([Key, Value]) => ({ Key, Value })) } }))

/** The stored object as the backend holds it: ciphertext and metadata. */
const backendObject = (key: string) =>
  Effect.gen(function*() {
    const store = yield* FsObjectStore.make({ root: path.join(api.root, B), bucket: B, fsync: false })
    return yield* ObjectStoreOps.readAll(store, key)
  }).pipe(Effect.orDie)

describe("object tagging", () => {
  it.effect("round-trips x-amz-tagging, Put/Get/DeleteObjectTagging and x-amz-tagging-count, keeping the ETag, body and checksum", () =>
    Effect.gen(function*() {
      const data = body(200_000, 3)
      const put = yield* call(() =>
        s3.send(new PutObjectCommand({ Bucket: B, Key: "t/one", Body: data, Tagging: "project=objcrypt&note=two%20words", ChecksumAlgorithm: "SHA256" }))
      )
      assert.deepStrictEqual(yield* tagsOf("t/one"), [["project", "objcrypt"], ["note", "two words"]])
      const head = yield* call(() => s3.send(new HeadObjectCommand({ Bucket: B, Key: "t/one" })))
      assert.strictEqual(head.TagCount, 2)
      const before = yield* backendObject("t/one")
      const listedBefore = yield* call(() => s3.send(new ListObjectsV2Command({ Bucket: B, Prefix: "t/one" })))
      // Past the next second, so a Last-Modified moved by the rewrite would show.
      yield* call(() => new Promise((resolve) => setTimeout(resolve, 1100)))

      yield* call(() => putTags("t/one", [["k", "v=1 +-.:/@"], ["ключ", "значение"], ["empty", ""]]))
      assert.deepStrictEqual(yield* tagsOf("t/one"), [["k", "v=1 +-.:/@"], ["ключ", "значение"], ["empty", ""]])
      const got = yield* call(() => s3.send(new GetObjectCommand({ Bucket: B, Key: "t/one", ChecksumMode: "ENABLED" })))
      assert.strictEqual(got.TagCount, 3)
      assert.strictEqual(got.ETag, put.ETag)
      assert.strictEqual(got.ChecksumSHA256, put.ChecksumSHA256)
      assert.isTrue(Buffer.from(yield* bytes(got.Body)).equals(data))
      const attrs = yield* call(() => s3.send(new GetObjectAttributesCommand({ Bucket: B, Key: "t/one", ObjectAttributes: ["ETag", "Checksum"] })))
      assert.strictEqual(attrs.Checksum?.ChecksumSHA256, put.ChecksumSHA256)
      const listed = yield* call(() => s3.send(new ListObjectsV2Command({ Bucket: B, Prefix: "t/one" })))
      assert.strictEqual(listed.Contents?.[0]?.ETag, put.ETag)
      // Tags are a subresource: Last-Modified stays the time the body was written, as in S3.
      assert.strictEqual(got.LastModified?.getTime(), head.LastModified?.getTime())
      assert.strictEqual(listed.Contents?.[0]?.LastModified?.getTime(), listedBefore.Contents?.[0]?.LastModified?.getTime())

      // Metadata-only: the same ciphertext and envelope, only the tag entry changed.
      const after = yield* backendObject("t/one")
      assert.isTrue(Buffer.from(after.bytes).equals(Buffer.from(before.bytes)))
      // The backend's own time did move: the client's is pinned.
      assert.isAbove(after.info.lastModified.getTime(), before.info.lastModified.getTime())
      const strip = (m: Readonly<Record<string, string>>) => Object.fromEntries(Object.entries(m).filter(([k]) => k !== "gw-tags" && k !== "gw-etag-pin" && k !== "gw-mtime-pin"))
      assert.deepStrictEqual(strip(after.info.metadata), strip(before.info.metadata))

      const del = yield* call(() => s3.send(new DeleteObjectTaggingCommand({ Bucket: B, Key: "t/one" })))
      assert.strictEqual(del.$metadata.httpStatusCode, 204)
      assert.deepStrictEqual(yield* tagsOf("t/one"), [])
      const bare = yield* call(() => s3.send(new HeadObjectCommand({ Bucket: B, Key: "t/one" })))
      assert.isUndefined(bare.TagCount)
      assert.strictEqual(bare.ETag, put.ETag)
      // An overwrite replaces the tags, as S3 does.
      yield* call(() => putTags("t/one", [["a", "1"]]))
      yield* call(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "t/one", Body: "new" })))
      assert.deepStrictEqual(yield* tagsOf("t/one"), [])
    }))

  it.effect("needs no customer key on an SSE-C object and ignores a wrong one, never decrypting or re-encrypting it", () =>
    Effect.gen(function*() {
      const c = ssec()
      const data = body(100_000, 5)
      yield* call(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "t/ssec", Body: data, ...c, Tagging: "a=1" })))
      const before = yield* backendObject("t/ssec")
      assert.deepStrictEqual(yield* tagsOf("t/ssec"), [["a", "1"]])
      yield* call(() => putTags("t/ssec", [["b", "2"]]))
      const wrong = ssec()
      const res = yield* raw("PUT", `/${B}/t/ssec`, "tagging=", "<Tagging><TagSet><Tag><Key>c</Key><Value>3</Value></Tag></TagSet></Tagging>", {
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": wrong.SSECustomerKey,
        "x-amz-server-side-encryption-customer-key-md5": wrong.SSECustomerKeyMD5
      })
      assert.strictEqual(res.status, 200, res.body)
      assert.deepStrictEqual(yield* tagsOf("t/ssec"), [["c", "3"]])
      const after = yield* backendObject("t/ssec")
      assert.isTrue(Buffer.from(after.bytes).equals(Buffer.from(before.bytes)))
      assert.strictEqual(after.info.metadata["gw-ssec"], before.info.metadata["gw-ssec"])
      // The object still opens with its key only.
      const refusedWrong = yield* refused(() => s3.send(new GetObjectCommand({ Bucket: B, Key: "t/ssec", ...wrong })))
      assert.deepStrictEqual(refusedWrong, { code: "AccessDenied", status: 403 })
      const got = yield* call(() => s3.send(new GetObjectCommand({ Bucket: B, Key: "t/ssec", ...c })))
      assert.strictEqual(got.TagCount, 1)
      assert.isTrue(Buffer.from(yield* bytes(got.Body)).equals(data))
    }))

  it.effect("applies x-amz-tagging of CreateMultipartUpload to the completed object", () =>
    Effect.gen(function*() {
      const data = body(5 * MiB + 100, 7)
      const mp = yield* call(() => s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "t/mp", Tagging: "stage=final&n=2", ServerSideEncryption: "aws:kms" })))
      const p1 = yield* call(() => s3.send(new UploadPartCommand({ Bucket: B, Key: "t/mp", UploadId: mp.UploadId!, PartNumber: 1, Body: data.subarray(0, 5 * MiB) })))
      const p2 = yield* call(() => s3.send(new UploadPartCommand({ Bucket: B, Key: "t/mp", UploadId: mp.UploadId!, PartNumber: 2, Body: data.subarray(5 * MiB) })))
      const missing = yield* refused(() => s3.send(new GetObjectTaggingCommand({ Bucket: B, Key: "t/mp" })))
      assert.deepStrictEqual(missing, { code: "NoSuchKey", status: 404 })
      const done = yield* call(() =>
        s3.send(new CompleteMultipartUploadCommand({
          Bucket: B,
          Key: "t/mp",
          UploadId: mp.UploadId!,
          MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.ETag! }, { PartNumber: 2, ETag: p2.ETag! }] }
        }))
      )
      assert.deepStrictEqual(yield* tagsOf("t/mp"), [["stage", "final"], ["n", "2"]])
      yield* call(() => putTags("t/mp", [["stage", "archived"]]))
      const got = yield* call(() => s3.send(new GetObjectCommand({ Bucket: B, Key: "t/mp" })))
      assert.strictEqual(got.ETag, done.ETag)
      assert.strictEqual(got.TagCount, 1)
      assert.isTrue(Buffer.from(yield* bytes(got.Body)).equals(data))
    }))

  it.effect("copies tags with x-amz-tagging-directive COPY (default) and replaces them with REPLACE", () =>
    Effect.gen(function*() {
      yield* call(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "t/src", Body: "copy me", Tagging: "from=src" })))
      yield* call(() => s3.send(new CopyObjectCommand({ Bucket: B, Key: "t/copy1", CopySource: `${B}/t/src` })))
      assert.deepStrictEqual(yield* tagsOf("t/copy1"), [["from", "src"]])
      yield* call(() => s3.send(new CopyObjectCommand({ Bucket: B, Key: "t/copy2", CopySource: `${B}/t/src`, TaggingDirective: "REPLACE", Tagging: "x=y" })))
      assert.deepStrictEqual(yield* tagsOf("t/copy2"), [["x", "y"]])
      yield* call(() => s3.send(new CopyObjectCommand({ Bucket: B, Key: "t/copy3", CopySource: `${B}/t/src`, TaggingDirective: "REPLACE" })))
      assert.deepStrictEqual(yield* tagsOf("t/copy3"), [])
      const bad = yield* raw("PUT", `/${B}/t/copy4`, "", "", { "x-amz-copy-source": `/${B}/t/src`, "x-amz-tagging-directive": "MERGE" })
      assert.strictEqual(bad.status, 400)
      assert.strictEqual(codeOf(bad.body), "InvalidArgument")
    }))

  it.effect("refuses bad tag sets as S3 does: too many, duplicate keys, oversize keys and values, aws: prefix, malformed XML", () =>
    Effect.gen(function*() {
      yield* call(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "t/bad", Body: "x", Tagging: "keep=me" })))
      const eleven = Array.from({ length: 11 }, (_, i) => [`k${i}`, "v"] as const)
      assert.deepStrictEqual(yield* refused(() => putTags("t/bad", eleven)), { code: "BadRequest", status: 400 })
      yield* call(() => putTags("t/bad", eleven.slice(0, 10)))
      assert.strictEqual((yield* tagsOf("t/bad")).length, 10)
      assert.deepStrictEqual(yield* refused(() => putTags("t/bad", [["a", "1"], ["a", "2"]])), { code: "InvalidTag", status: 400 })
      assert.deepStrictEqual(yield* refused(() => putTags("t/bad", [["k".repeat(129), "v"]])), { code: "InvalidTag", status: 400 })
      assert.deepStrictEqual(yield* refused(() => putTags("t/bad", [["k", "v".repeat(257)]])), { code: "InvalidTag", status: 400 })
      assert.deepStrictEqual(yield* refused(() => putTags("t/bad", [["aws:owner", "me"]])), { code: "InvalidTag", status: 400 })
      assert.deepStrictEqual(yield* refused(() => putTags("t/bad", [["", "v"]])), { code: "InvalidTag", status: 400 })
      assert.deepStrictEqual(yield* refused(() => putTags("t/bad", [["semi;colon", "v"]])), { code: "InvalidTag", status: 400 })
      // Limits count Unicode characters, not bytes.
      yield* call(() => putTags("t/bad", [["é".repeat(128), "ü".repeat(256)]]))
      assert.deepStrictEqual(yield* tagsOf("t/bad"), [["é".repeat(128), "ü".repeat(256)]])
      for (const doc of ["<Tagging><TagSet>", "<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>", "<Other/>", "not xml"]) {
        const res = yield* raw("PUT", `/${B}/t/bad`, "tagging=", doc)
        assert.strictEqual(res.status, 400, doc)
        assert.strictEqual(codeOf(res.body), "MalformedXML", doc)
      }
      // Valid for S3 but past the backend's metadata limit (driver-fs: 16 KiB): refused, not a 500.
      const huge = Array.from({ length: 10 }, (_, i) => [`${i}${"語".repeat(127)}`, "語".repeat(256)] as const)
      assert.deepStrictEqual(yield* refused(() => putTags("t/bad", huge)), { code: "MetadataTooLarge", status: 400 })
      // Nothing refused changed the tags.
      assert.deepStrictEqual(yield* tagsOf("t/bad"), [["é".repeat(128), "ü".repeat(256)]])
      // The x-amz-tagging header of a write.
      const dup = yield* refused(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "t/bad2", Body: "x", Tagging: "a=1&a=2" })))
      assert.deepStrictEqual(dup, { code: "InvalidArgument", status: 400 })
      const many = eleven.map(([k, v]) => `${k}=${v}`).join("&")
      assert.deepStrictEqual(yield* refused(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "t/bad2", Body: "x", Tagging: many }))), { code: "BadRequest", status: 400 })
      assert.deepStrictEqual(yield* refused(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "t/bad2", Body: "x", Tagging: "aws%3Ax=1" }))), { code: "InvalidTag", status: 400 })
      assert.deepStrictEqual(yield* refused(() => s3.send(new HeadObjectCommand({ Bucket: B, Key: "t/bad2" }))), { code: "NotFound", status: 404 })
    }))

  it.effect("answers NoSuchKey for a missing object", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* refused(() => putTags("t/missing", [["a", "1"]])), { code: "NoSuchKey", status: 404 })
      assert.deepStrictEqual(yield* refused(() => s3.send(new GetObjectTaggingCommand({ Bucket: B, Key: "t/missing" }))), { code: "NoSuchKey", status: 404 })
      assert.deepStrictEqual(yield* refused(() => s3.send(new DeleteObjectTaggingCommand({ Bucket: B, Key: "t/missing" }))), { code: "NoSuchKey", status: 404 })
      assert.deepStrictEqual(yield* refused(() => s3.send(new GetObjectTaggingCommand({ Bucket: "no-such-bucket", Key: "k" }))), { code: "NoSuchBucket", status: 404 })
    }))

  it.effect("never loses a body written during a tag update: the update is applied again to the new version", () =>
    Effect.gen(function*() {
      yield* call(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "t/race", Body: "first body" })))
      let overwrites = 0
      beforeCopy = {
        key: "t/race",
        run: async () => {
          if (overwrites > 0) return
          overwrites++
          await s3.send(new PutObjectCommand({ Bucket: B, Key: "t/race", Body: "second body", Tagging: "by=overwrite" }))
        }
      }
      try {
        yield* call(() => putTags("t/race", [["by", "tagging"]]))
      } finally {
        beforeCopy = undefined
      }
      assert.strictEqual(overwrites, 1)
      const got = yield* call(() => s3.send(new GetObjectCommand({ Bucket: B, Key: "t/race" })))
      assert.strictEqual(Buffer.from(yield* bytes(got.Body)).toString(), "second body")
      assert.deepStrictEqual(yield* tagsOf("t/race"), [["by", "tagging"]])
    }))

  it.effect("answers OperationAborted when the object keeps changing, leaving the last body intact", () =>
    Effect.gen(function*() {
      yield* call(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "t/busy", Body: "v0" })))
      let n = 0
      beforeCopy = {
        key: "t/busy",
        run: async () => {
          n++
          await s3.send(new PutObjectCommand({ Bucket: B, Key: "t/busy", Body: `v${n}` }))
        }
      }
      const r = yield* refused(() => putTags("t/busy", [["a", "1"]])).pipe(Effect.ensuring(Effect.sync(() => (beforeCopy = undefined))))
      assert.deepStrictEqual(r, { code: "OperationAborted", status: 409 })
      const got = yield* call(() => s3.send(new GetObjectCommand({ Bucket: B, Key: "t/busy" })))
      assert.strictEqual(Buffer.from(yield* bytes(got.Body)).toString(), `v${n}`)
      assert.deepStrictEqual(yield* tagsOf("t/busy"), [])
    }))
})

/** A browser POST upload under a SigV4-signed policy that allows exactly `fields`. */
const postForm = (key: string, fields: Record<string, string>, file: Buffer) =>
  call(async () => {
    const amzDate = new Date().toISOString().replace(/[-:]|\.\d{3}/g, "")
    const day = amzDate.slice(0, 8)
    const credential = `${alice.id}/${day}/us-east-1/s3/aws4_request`
    const all = { key, "x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-credential": credential, "x-amz-date": amzDate, ...fields }
    const policy = Buffer.from(JSON.stringify({
      expiration: new Date(Date.now() + 60_000).toISOString(),
      conditions: [{ bucket: B }, ...Object.entries(all).map(([k, v]) => ({ [k]: v }))]
    })).toString("base64")
    const signingKey = hmac(hmac(hmac(hmac(`AWS4${alice.secret}`, day), "us-east-1"), "s3"), "aws4_request")
    const form = new FormData()
    for (const [k, v] of Object.entries({ ...all, policy, "x-amz-signature": hmac(signingKey, policy).toString("hex") })) form.append(k, v)
    form.append("file", new Blob([file], { type: "application/octet-stream" }), "f.bin")
    const res = await fetch(`${api.endpoint}/${B}`, { method: "POST", body: form })
    return { status: res.status, body: await res.text() }
  })

describe("browser POST uploads", () => {
  it.effect("take a tagging document and a private acl field, and refuse bad tags and public acls", () =>
    Effect.gen(function*() {
      const data = body(5000, 11)
      const tagging = "<Tagging><TagSet><Tag><Key>via</Key><Value>post</Value></Tag></TagSet></Tagging>"
      const ok = yield* postForm("post/tagged", { tagging, acl: "private" }, data)
      assert.strictEqual(ok.status, 204, ok.body)
      assert.deepStrictEqual(yield* tagsOf("post/tagged"), [["via", "post"]])
      const dup = "<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value></Tag><Tag><Key>a</Key><Value>2</Value></Tag></TagSet></Tagging>"
      const bad = yield* postForm("post/bad", { tagging: dup }, data)
      assert.strictEqual(codeOf(bad.body), "InvalidTag")
      const pub = yield* postForm("post/public", { acl: "public-read" }, data)
      assert.strictEqual(pub.status, 501)
      for (const k of ["post/bad", "post/public"]) {
        assert.deepStrictEqual(yield* refused(() => s3.send(new HeadObjectCommand({ Bucket: B, Key: k }))), { code: "NotFound", status: 404 })
      }
    }))
})

describe("bucket tagging", () => {
  it.effect("answers NoSuchTagSet, then round-trips a tag set kept in the bucket record", () =>
    Effect.gen(function*() {
      yield* call(() => s3.send(new CreateBucketCommand({ Bucket: "tagged-bucket" })))
      assert.deepStrictEqual(yield* refused(() => s3.send(new GetBucketTaggingCommand({ Bucket: "tagged-bucket" }))), { code: "NoSuchTagSet", status: 404 })
      const tags = Array.from({ length: 50 }, (_, i) => ({ Key: `team-${i}`, Value: `v ${i}` }))
      yield* call(() => s3.send(new PutBucketTaggingCommand({ Bucket: "tagged-bucket", Tagging: { TagSet: tags } })))
      const got = yield* call(() => s3.send(new GetBucketTaggingCommand({ Bucket: "tagged-bucket" })))
      assert.deepStrictEqual(got.TagSet?.map((t) => [t.Key, t.Value]), tags.map((t) => [t.Key, t.Value]))
      const system = yield* FsObjectStore.make({ root: path.join(api.root, ".objcrypt-gateway"), bucket: ".objcrypt-gateway", fsync: false }).pipe(Effect.orDie)
      const stored = yield* ObjectStoreOps.readAll(system, "buckets/tagged-bucket").pipe(Effect.orDie)
      const record = JSON.parse(Buffer.from(stored.bytes).toString("utf8")) as { tags?: Array<unknown> }
      assert.strictEqual(record.tags?.length, 50)
      const tooMany = [...tags, { Key: "one-more", Value: "x" }]
      assert.deepStrictEqual(yield* refused(() => s3.send(new PutBucketTaggingCommand({ Bucket: "tagged-bucket", Tagging: { TagSet: tooMany } }))), { code: "BadRequest", status: 400 })
      const dup = [{ Key: "a", Value: "1" }, { Key: "a", Value: "2" }]
      assert.deepStrictEqual(yield* refused(() => s3.send(new PutBucketTaggingCommand({ Bucket: "tagged-bucket", Tagging: { TagSet: dup } }))), { code: "InvalidTag", status: 400 })
      const sys = [{ Key: "aws:cloudformation:stack-name", Value: "x" }]
      assert.deepStrictEqual(yield* refused(() => s3.send(new PutBucketTaggingCommand({ Bucket: "tagged-bucket", Tagging: { TagSet: sys } }))), { code: "InvalidTag", status: 400 })
      const malformed = yield* raw("PUT", "/tagged-bucket", "tagging=", "<Tagging><TagSet><Tag><Key>a</Key>")
      assert.strictEqual(codeOf(malformed.body), "MalformedXML")
      assert.strictEqual((yield* call(() => s3.send(new GetBucketTaggingCommand({ Bucket: "tagged-bucket" })))).TagSet?.length, 50)
      yield* call(() => s3.send(new DeleteBucketTaggingCommand({ Bucket: "tagged-bucket" })))
      assert.deepStrictEqual(yield* refused(() => s3.send(new GetBucketTaggingCommand({ Bucket: "tagged-bucket" }))), { code: "NoSuchTagSet", status: 404 })
      // DELETE /bucket?tagging never deletes the bucket.
      yield* call(() => s3.send(new HeadBucketCommand({ Bucket: "tagged-bucket" })))
      assert.deepStrictEqual(yield* refused(() => s3.send(new GetBucketTaggingCommand({ Bucket: "no-such-bucket" }))), { code: "NoSuchBucket", status: 404 })
    }))
})

describe("versioning", () => {
  it.effect("reports versioning never enabled, accepts Suspended, refuses Enabled and MFA delete", () =>
    Effect.gen(function*() {
      const v = yield* call(() => s3.send(new GetBucketVersioningCommand({ Bucket: B })))
      assert.isUndefined(v.Status)
      assert.isUndefined(v.MFADelete)
      assert.match(yield* raw("GET", `/${B}`, "versioning=", "").pipe(Effect.map((r) => r.body)), /<VersioningConfiguration xmlns="http:\/\/s3.amazonaws.com\/doc\/2006-03-01\/"><\/VersioningConfiguration>/)
      yield* call(() => s3.send(new PutBucketVersioningCommand({ Bucket: B, VersioningConfiguration: { Status: "Suspended" } })))
      assert.isUndefined((yield* call(() => s3.send(new GetBucketVersioningCommand({ Bucket: B })))).Status)
      const enabled = yield* raw("PUT", `/${B}`, "versioning=", "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>")
      assert.strictEqual(enabled.status, 501)
      assert.strictEqual(codeOf(enabled.body), "NotImplemented")
      assert.match(enabled.body, /versioning is not implemented/)
      const mfa = yield* raw("PUT", `/${B}`, "versioning=", "<VersioningConfiguration><Status>Suspended</Status><MfaDelete>Enabled</MfaDelete></VersioningConfiguration>")
      assert.strictEqual(mfa.status, 501)
      const bad = yield* raw("PUT", `/${B}`, "versioning=", "<VersioningConfiguration><Status>On</Status></VersioningConfiguration>")
      assert.strictEqual(codeOf(bad.body), "MalformedXML")
      // The bucket is still there (PUT ?versioning is never a CreateBucket).
      yield* call(() => s3.send(new HeadBucketCommand({ Bucket: B })))
    }))

  it.effect("serves versionId=null as the current object and refuses any other version id", () =>
    Effect.gen(function*() {
      yield* call(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "v/obj", Body: "current", Tagging: "a=b" })))
      const got = yield* call(() => s3.send(new GetObjectCommand({ Bucket: B, Key: "v/obj", VersionId: "null" })))
      assert.strictEqual(Buffer.from(yield* bytes(got.Body)).toString(), "current")
      yield* call(() => s3.send(new HeadObjectCommand({ Bucket: B, Key: "v/obj", VersionId: "null" })))
      const tags = yield* call(() => s3.send(new GetObjectTaggingCommand({ Bucket: B, Key: "v/obj", VersionId: "null" })))
      assert.strictEqual(tags.TagSet?.length, 1)
      const other = yield* refused(() => s3.send(new GetObjectCommand({ Bucket: B, Key: "v/obj", VersionId: "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY" })))
      assert.deepStrictEqual(other, { code: "InvalidArgument", status: 400 })
      assert.strictEqual((yield* refused(() => s3.send(new HeadObjectCommand({ Bucket: B, Key: "v/obj", VersionId: "x" })))).status, 400)
      assert.deepStrictEqual(yield* refused(() => s3.send(new DeleteObjectCommand({ Bucket: B, Key: "v/obj", VersionId: "x" }))), { code: "InvalidArgument", status: 400 })
      yield* call(() => s3.send(new HeadObjectCommand({ Bucket: B, Key: "v/obj" })))
      yield* call(() => s3.send(new DeleteObjectCommand({ Bucket: B, Key: "v/obj", VersionId: "null" })))
      assert.deepStrictEqual(yield* refused(() => s3.send(new HeadObjectCommand({ Bucket: B, Key: "v/obj" }))), { code: "NotFound", status: 404 })
    }))
})

describe("ListObjectVersions and DeleteObjects with version ids", () => {
  it.effect("lists each object as its one null version and deletes only the null version", () =>
    Effect.gen(function*() {
      yield* call(() => s3.send(new CreateBucketCommand({ Bucket: "versions-bucket" })))
      const data = body(3000, 9)
      for (const k of ["a", "b/1", "b/2", "c"]) yield* call(() => s3.send(new PutObjectCommand({ Bucket: "versions-bucket", Key: k, Body: data })))
      const all = yield* call(() => s3.send(new ListObjectVersionsCommand({ Bucket: "versions-bucket" })))
      assert.deepStrictEqual(all.Versions?.map((v) => [v.Key, v.VersionId, v.IsLatest, v.Size]), [["a", "null", true, 3000], ["b/1", "null", true, 3000], ["b/2", "null", true, 3000], ["c", "null", true, 3000]])
      const head = yield* call(() => s3.send(new HeadObjectCommand({ Bucket: "versions-bucket", Key: "a" })))
      assert.strictEqual(all.Versions?.[0]?.ETag, head.ETag)
      assert.strictEqual(all.Versions?.[0]?.Owner?.ID, "alice")
      assert.isUndefined(all.DeleteMarkers)
      const grouped = yield* call(() => s3.send(new ListObjectVersionsCommand({ Bucket: "versions-bucket", Delimiter: "/" })))
      assert.deepStrictEqual(grouped.Versions?.map((v) => v.Key), ["a", "c"])
      assert.deepStrictEqual(grouped.CommonPrefixes?.map((p) => p.Prefix), ["b/"])
      const first = yield* call(() => s3.send(new ListObjectVersionsCommand({ Bucket: "versions-bucket", MaxKeys: 2 })))
      assert.isTrue(first.IsTruncated)
      assert.strictEqual(first.NextKeyMarker, "b/1")
      assert.strictEqual(first.NextVersionIdMarker, "null")
      const second = yield* call(() =>
        s3.send(new ListObjectVersionsCommand({ Bucket: "versions-bucket", MaxKeys: 2, KeyMarker: first.NextKeyMarker!, VersionIdMarker: first.NextVersionIdMarker! }))
      )
      assert.deepStrictEqual(second.Versions?.map((v) => v.Key), ["b/2", "c"])
      assert.isFalse(second.IsTruncated)
      const noKey = yield* raw("GET", "/versions-bucket", "version-id-marker=null&versions=", "")
      assert.strictEqual(codeOf(noKey.body), "InvalidArgument")
      const deleted = yield* call(() =>
        s3.send(new DeleteObjectsCommand({ Bucket: "versions-bucket", Delete: { Objects: [{ Key: "a", VersionId: "null" }, { Key: "c", VersionId: "3HL4kqtJlcpXroDTDmJ" }, { Key: "b/1" }] } }))
      )
      assert.deepStrictEqual(deleted.Deleted?.map((d) => [d.Key, d.VersionId]).sort(), [["a", "null"], ["b/1", undefined]])
      assert.deepStrictEqual(deleted.Errors?.map((e) => [e.Key, e.Code]), [["c", "InvalidArgument"]])
      const left = yield* call(() => s3.send(new ListObjectVersionsCommand({ Bucket: "versions-bucket" })))
      assert.deepStrictEqual(left.Versions?.map((v) => v.Key), ["b/2", "c"])
    }))
})

describe("ACLs", () => {
  const ownerOnly = (id: string) => ({
    Owner: { ID: id, DisplayName: id },
    Grants: [{ Grantee: { Type: "CanonicalUser" as const, ID: id }, Permission: "FULL_CONTROL" as const }]
  })

  it.effect("return the bucket owner with FULL_CONTROL for buckets and objects", () =>
    Effect.gen(function*() {
      const acl = yield* call(() => s3.send(new GetBucketAclCommand({ Bucket: B })))
      assert.strictEqual(acl.Owner?.ID, "alice")
      assert.deepStrictEqual(acl.Grants?.map((g) => [g.Grantee?.Type, g.Grantee?.ID, g.Permission]), [["CanonicalUser", "alice", "FULL_CONTROL"]])
      yield* call(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "acl/obj", Body: "x" })))
      const objAcl = yield* call(() => s3.send(new GetObjectAclCommand({ Bucket: B, Key: "acl/obj" })))
      assert.strictEqual(objAcl.Owner?.ID, "alice")
      assert.deepStrictEqual(objAcl.Grants?.map((g) => [g.Grantee?.ID, g.Permission]), [["alice", "FULL_CONTROL"]])
      assert.deepStrictEqual(yield* refused(() => s3.send(new GetObjectAclCommand({ Bucket: B, Key: "acl/missing" }))), { code: "NoSuchKey", status: 404 })
    }))

  it.effect("accept private and bucket-owner-full-control, refuse grants to others with 501", () =>
    Effect.gen(function*() {
      yield* call(() => s3.send(new PutBucketAclCommand({ Bucket: B, ACL: "private" })))
      yield* call(() => s3.send(new PutBucketAclCommand({ Bucket: B, AccessControlPolicy: ownerOnly("alice") })))
      const pub = yield* refused(() => s3.send(new PutBucketAclCommand({ Bucket: B, ACL: "public-read" })))
      assert.deepStrictEqual(pub, { code: "NotImplemented", status: 501 })
      const group = yield* refused(() =>
        s3.send(new PutBucketAclCommand({
          Bucket: B,
          AccessControlPolicy: {
            ...ownerOnly("alice"),
            Grants: [...ownerOnly("alice").Grants, { Grantee: { Type: "Group", URI: "http://acs.amazonaws.com/groups/global/AllUsers" }, Permission: "READ" }]
          }
        }))
      )
      assert.deepStrictEqual(group, { code: "NotImplemented", status: 501 })
      assert.deepStrictEqual(yield* refused(() => s3.send(new PutBucketAclCommand({ Bucket: B, AccessControlPolicy: ownerOnly("bob") }))), { code: "NotImplemented", status: 501 })
      assert.deepStrictEqual(yield* refused(() => s3.send(new PutBucketAclCommand({ Bucket: B, GrantRead: 'id="bob"' }))), { code: "NotImplemented", status: 501 })
      const message = yield* raw("PUT", `/${B}`, "acl=", "", { "x-amz-acl": "public-read-write" })
      assert.strictEqual(message.status, 501)
      assert.match(message.body, /users config/)
      const unknown = yield* raw("PUT", `/${B}`, "acl=", "", { "x-amz-acl": "everyone" })
      assert.strictEqual(codeOf(unknown.body), "InvalidArgument")
      const malformed = yield* raw("PUT", `/${B}`, "acl=", "<AccessControlPolicy><AccessControlList><Grant>")
      assert.strictEqual(codeOf(malformed.body), "MalformedACLError")

      yield* call(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "acl/p", Body: "x", ACL: "private" })))
      yield* call(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "acl/p", Body: "x", ACL: "bucket-owner-full-control" })))
      yield* call(() => s3.send(new PutObjectAclCommand({ Bucket: B, Key: "acl/p", ACL: "private" })))
      yield* call(() => s3.send(new PutObjectAclCommand({ Bucket: B, Key: "acl/p", AccessControlPolicy: ownerOnly("alice") })))
      assert.deepStrictEqual(yield* refused(() => s3.send(new PutObjectAclCommand({ Bucket: B, Key: "acl/p", ACL: "public-read" }))), { code: "NotImplemented", status: 501 })
      assert.deepStrictEqual(yield* refused(() => s3.send(new PutObjectAclCommand({ Bucket: B, Key: "acl/none", ACL: "private" }))), { code: "NoSuchKey", status: 404 })
      assert.deepStrictEqual(yield* refused(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "acl/pub", Body: "x", ACL: "public-read" }))), { code: "NotImplemented", status: 501 })
      assert.deepStrictEqual(yield* refused(() => s3.send(new HeadObjectCommand({ Bucket: B, Key: "acl/pub" }))), { code: "NotFound", status: 404 })
      assert.deepStrictEqual(
        yield* refused(() => s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "acl/mp", ACL: "authenticated-read" }))),
        { code: "NotImplemented", status: 501 }
      )
      assert.deepStrictEqual(
        yield* refused(() => s3.send(new CopyObjectCommand({ Bucket: B, Key: "acl/cp", CopySource: `${B}/acl/p`, ACL: "public-read" }))),
        { code: "NotImplemented", status: 501 }
      )
      assert.deepStrictEqual(yield* refused(() => s3.send(new CreateBucketCommand({ Bucket: "public-bucket", ACL: "public-read" }))), { code: "NotImplemented", status: 501 })
      assert.deepStrictEqual(yield* refused(() => s3.send(new HeadBucketCommand({ Bucket: "public-bucket" }))), { code: "NotFound", status: 404 })
      yield* call(() => s3.send(new CreateBucketCommand({ Bucket: "private-bucket", ACL: "private" })))
    }))
})

describe("stateless replicas", () => {
  it.effect("two gateways on one backend see the same object and bucket tags", () =>
    Effect.gen(function*() {
      const dirs = Harness.makeDirs()
      const a = yield* call(() => Harness.start(Harness.configFor(dirs)))
      const b = yield* call(() => Harness.start(Harness.configFor(dirs)))
      try {
        const sa = Harness.client(a)
        const sb = Harness.client(b)
        yield* call(() => sa.send(new CreateBucketCommand({ Bucket: "shared" })))
        yield* call(() => sa.send(new PutObjectCommand({ Bucket: "shared", Key: "obj", Body: "shared body", Tagging: "on=a" })))
        const fromB = yield* call(() => sb.send(new GetObjectTaggingCommand({ Bucket: "shared", Key: "obj" })))
        assert.deepStrictEqual(fromB.TagSet?.map((t) => [t.Key, t.Value]), [["on", "a"]])
        yield* call(() => sb.send(new PutObjectTaggingCommand({ Bucket: "shared", Key: "obj", Tagging: { TagSet: [{ Key: "on", Value: "b" }] } })))
        const fromA = yield* call(() => sa.send(new GetObjectCommand({ Bucket: "shared", Key: "obj" })))
        assert.strictEqual(fromA.TagCount, 1)
        assert.strictEqual(Buffer.from(yield* bytes(fromA.Body)).toString(), "shared body")
        assert.deepStrictEqual((yield* call(() => sa.send(new GetObjectTaggingCommand({ Bucket: "shared", Key: "obj" })))).TagSet?.map((t) => t.Value), ["b"])
        yield* call(() => sa.send(new PutBucketTaggingCommand({ Bucket: "shared", Tagging: { TagSet: [{ Key: "env", Value: "test" }] } })))
        const bucketTags = yield* call(() => sb.send(new GetBucketTaggingCommand({ Bucket: "shared" })))
        assert.deepStrictEqual(bucketTags.TagSet?.map((t) => [t.Key, t.Value]), [["env", "test"]])
      } finally {
        yield* call(() => a.close())
        yield* call(() => b.close())
        fs.rmSync(dirs.dir, { recursive: true, force: true })
      }
    }), 60_000)
})

describe("storage", () => {
  it.effect("keeps tags as plain metadata beside ciphertext, never the body in plaintext", () =>
    Effect.sync(() => {
      const files = filesUnder(api.root)
      assert.isAbove(files.length, 5)
      const all = files.map((f) => fs.readFileSync(f))
      for (const [i, f] of all.entries()) assert.isFalse(f.includes(MARKER), files[i])
      assert.isTrue(all.some((f) => f.includes("gw-tags")))
    }))
})
