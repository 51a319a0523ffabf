/**
 * Behaviours a differential probe (the same requests to the gateway and to Ceph RGW, checked
 * against Amazon S3's API reference) found the gateway getting wrong: ListObjects v1 paging by
 * NextMarker through common prefixes, GetObject's response-* overrides, object owners in listings,
 * ListParts max-parts=0, bucket naming rules, CreateBucket's body and re-creation, storage classes,
 * the website redirect location, the part order check, Content-Length of an empty object and the
 * integrity header DeleteObjects requires; and a second probe of the SSE headers: dual-layer
 * SSE-KMS, the SSE-C algorithm error, unsigned SSE headers on a presigned URL, the encryption
 * context as an addition to the object's ARN, an SSE-C object copied onto itself out of SSE-C, and
 * a bucket default's BucketKeyEnabled.
 */
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutBucketEncryptionCommand,
  PutObjectCommand,
  UploadPartCommand
} from "@aws-sdk/client-s3"
import type { S3Client, StorageClass } from "@aws-sdk/client-s3"
import { getSignedUrl } from "@aws-sdk/s3-request-presigner"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as http from "node:http"
import { alice, bob, body, call, client, MiB, refused, ssec, start } from "./apiHarness.js"
import type { Api } from "./apiHarness.js"
import * as RawSigned from "./rawSigned.js"

let api: Api
let s3: S3Client
const B = "conf"

beforeAll(async () => {
  api = await start({ minPartSize: 5 * MiB })
  s3 = client(api)
  await s3.send(new CreateBucketCommand({ Bucket: B }))
}, 60_000)

afterAll(async () => {
  await api?.close()
})

const put = (key: string, data: string | Uint8Array = key) => call(() => s3.send(new PutObjectCommand({ Bucket: B, Key: key, Body: data })))

describe("listing", () => {
  const keys = ["l/a/b/c", "l/a/b/d", "l/a/e", "l/amp&lt", "l/b", "l/c/", "l/c/x", "l/\uFF61", "l/\u{1F600}", "l/\u{1F600}/x"]

  it.effect("ListObjects v1 pages by NextMarker through common prefixes and ends, in UTF-8 order", () =>
    Effect.gen(function*() {
      yield* Effect.forEach(keys, (k) => put(k), { discard: true })
      const seen: Array<string> = []
      let marker: string | undefined
      for (let page = 0; ; page++) {
        assert.isBelow(page, 20, "paging by NextMarker must end")
        const r = yield* call(() => s3.send(new ListObjectsCommand({ Bucket: B, Prefix: "l/", Delimiter: "/", MaxKeys: 1, Marker: marker })))
        const got = [...(r.Contents ?? []).map((c) => c.Key!), ...(r.CommonPrefixes ?? []).map((p) => p.Prefix!)]
        seen.push(...got)
        if (r.IsTruncated !== true) break
        assert.isDefined(r.NextMarker)
        marker = r.NextMarker
      }
      // One entry per page, in S3's order (UTF-8 bytes: U+FF61 before U+1F600), each once.
      assert.deepStrictEqual(seen, ["l/a/", "l/amp&lt", "l/b", "l/c/", "l/\uFF61", "l/\u{1F600}", "l/\u{1F600}/"])
      // A marker inside a group still lists the group when keys after it fall in it.
      const inside = yield* call(() => s3.send(new ListObjectsCommand({ Bucket: B, Prefix: "l/", Delimiter: "/", Marker: "l/a/b/c" })))
      assert.strictEqual(inside.CommonPrefixes?.[0]?.Prefix, "l/a/")
      // start-after that is a group passes over it in v2 too.
      const v2 = yield* call(() => s3.send(new ListObjectsV2Command({ Bucket: B, Prefix: "l/", Delimiter: "/", StartAfter: "l/a/" })))
      assert.deepStrictEqual(v2.CommonPrefixes?.map((p) => p.Prefix), ["l/c/", "l/\u{1F600}/"])
      assert.deepStrictEqual(v2.Contents?.map((c) => c.Key), ["l/amp&lt", "l/b", "l/\uFF61", "l/\u{1F600}"])
    }))

  it.effect("names object owners in v1 always and in v2 with fetch-owner only", () =>
    Effect.gen(function*() {
      yield* put("o/x")
      const v1 = yield* call(() => s3.send(new ListObjectsCommand({ Bucket: B, Prefix: "o/" })))
      assert.deepStrictEqual(v1.Contents?.[0]?.Owner, { ID: "alice", DisplayName: "alice" })
      const v2 = yield* call(() => s3.send(new ListObjectsV2Command({ Bucket: B, Prefix: "o/" })))
      assert.isUndefined(v2.Contents?.[0]?.Owner)
      const owned = yield* call(() => s3.send(new ListObjectsV2Command({ Bucket: B, Prefix: "o/", FetchOwner: true })))
      assert.deepStrictEqual(owned.Contents?.[0]?.Owner, { ID: "alice", DisplayName: "alice" })
    }))
})

describe("GetObject", () => {
  it.effect("applies the response-* overrides to GET and HEAD, also presigned; refuses a value that is no header", () =>
    Effect.gen(function*() {
      yield* put("r/obj", "0123456789")
      const overrides = {
        ResponseContentType: "application/x-over",
        ResponseCacheControl: "no-cache",
        ResponseContentDisposition: "attachment; filename=\"x.bin\"",
        ResponseContentLanguage: "fr",
        ResponseContentEncoding: "identity",
        ResponseExpires: new Date("2030-01-01T00:00:00Z")
      }
      const got = yield* call(() => s3.send(new GetObjectCommand({ Bucket: B, Key: "r/obj", ...overrides })))
      assert.strictEqual(got.ContentType, "application/x-over")
      assert.strictEqual(got.CacheControl, "no-cache")
      assert.strictEqual(got.ContentDisposition, "attachment; filename=\"x.bin\"")
      assert.strictEqual(got.ContentLanguage, "fr")
      assert.strictEqual(got.ContentEncoding, "identity")
      assert.strictEqual(got.ExpiresString, "Tue, 01 Jan 2030 00:00:00 GMT")
      assert.strictEqual(yield* call(() => got.Body!.transformToString()), "0123456789")
      const head = yield* call(() => s3.send(new HeadObjectCommand({ Bucket: B, Key: "r/obj", ResponseContentType: "text/plain" })))
      assert.strictEqual(head.ContentType, "text/plain")
      const url = yield* call(() => getSignedUrl(s3, new GetObjectCommand({ Bucket: B, Key: "r/obj", ResponseContentDisposition: "inline" }), { expiresIn: 60 }))
      const res = yield* call(() => fetch(url))
      assert.strictEqual(res.status, 200)
      assert.strictEqual(res.headers.get("content-disposition"), "inline")
      const bad = yield* call(() => RawSigned.request(api.port, alice, "GET", `/${B}/r/obj`, { query: [["response-content-type", "a\r\nx-injected: 1"]] }))
      assert.strictEqual(bad.status, 400)
      assert.strictEqual(RawSigned.errorCode(bad), "InvalidArgument")
      assert.isUndefined(bad.headers["x-injected"])
    }))

  it.effect("answers Content-Length: 0 for an empty object (GET, and partNumber=1)", () =>
    Effect.gen(function*() {
      yield* put("r/empty", "")
      for (const query of [[], [["partNumber", "1"]]] as const) {
        const r = yield* call(() => RawSigned.request(api.port, alice, "GET", `/${B}/r/empty`, { query }))
        assert.include([200, 206], r.status)
        assert.strictEqual(r.headers["content-length"], "0")
        assert.isUndefined(r.headers["transfer-encoding"])
      }
    }))
})

describe("buckets", () => {
  it.effect("refuse names S3 refuses: IP addresses, reserved prefixes and suffixes", () =>
    Effect.gen(function*() {
      for (const name of ["192.168.5.4", "xn--abc", "sthree-abc", "amzn-s3-demo-x", "abc-s3alias", "abc--ol-s3", "abc.mrap", "abc--x-s3", "abc--table-s3", "ab", "Upper", "a..b"]) {
        // Raw: the SDK treats some of these names (--x-s3: directory buckets) on its own.
        const e = yield* call(() => RawSigned.request(api.port, alice, "PUT", `/${name}`))
        assert.deepStrictEqual({ code: RawSigned.errorCode(e), status: e.status }, { code: "InvalidBucketName", status: 400 }, name)
      }
      yield* call(() => s3.send(new CreateBucketCommand({ Bucket: "192.168.5.4x" })))
    }))

  it.effect("CreateBucket: a malformed body is MalformedXML, another region's constraint refused, nothing created", () =>
    Effect.gen(function*() {
      const malformed = yield* call(() => RawSigned.request(api.port, alice, "PUT", "/conf-bad-xml", { body: "<CreateBucketConfiguration><Loc" }))
      assert.strictEqual(malformed.status, 400)
      assert.strictEqual(RawSigned.errorCode(malformed), "MalformedXML")
      const elsewhere = yield* refused(() => s3.send(new CreateBucketCommand({ Bucket: "conf-eu", CreateBucketConfiguration: { LocationConstraint: "eu-west-1" } })))
      assert.deepStrictEqual(elsewhere, { code: "IllegalLocationConstraintException", status: 400 })
      for (const name of ["conf-bad-xml", "conf-eu"]) {
        const head = yield* call(() => RawSigned.request(api.port, alice, "HEAD", `/${name}`))
        assert.strictEqual(head.status, 404, name)
      }
      const here = `<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>us-east-1</LocationConstraint></CreateBucketConfiguration>`
      assert.strictEqual((yield* call(() => RawSigned.request(api.port, alice, "PUT", "/conf-here", { body: here }))).status, 200)
    }))

  it.effect("re-creating your own bucket is 200 in us-east-1 (S3's legacy), 409 elsewhere; another owner's is BucketAlreadyExists", () =>
    Effect.gen(function*() {
      yield* call(() => s3.send(new CreateBucketCommand({ Bucket: "bob-bucket" })))
      yield* call(() => s3.send(new CreateBucketCommand({ Bucket: "bob-bucket" })))
      const taken = yield* refused(() => client(api, bob).send(new CreateBucketCommand({ Bucket: "bob-bucket" })))
      assert.deepStrictEqual(taken, { code: "BucketAlreadyExists", status: 409 })
      const eu = yield* call(() => start({ region: "eu-west-1" }))
      try {
        const s3eu = client(eu, alice, { region: "eu-west-1" })
        yield* call(() => s3eu.send(new CreateBucketCommand({ Bucket: "again", CreateBucketConfiguration: { LocationConstraint: "eu-west-1" } })))
        const again = yield* refused(() => s3eu.send(new CreateBucketCommand({ Bucket: "again", CreateBucketConfiguration: { LocationConstraint: "eu-west-1" } })))
        assert.deepStrictEqual(again, { code: "BucketAlreadyOwnedByYou", status: 409 })
      } finally {
        yield* call(() => eu.close())
      }
    }))
})

describe("writes", () => {
  it.effect("keys with . and .. segments, a leading / and backslashes (valid S3 keys) are stored and read back on the fs backend", () =>
    Effect.gen(function*() {
      const keys = ["k/../up", "k/./same", "/lead", "k\\win"]
      for (const k of keys) yield* call(() => s3.send(new PutObjectCommand({ Bucket: B, Key: k, Body: `body of ${k}` })))
      for (const k of keys) {
        const got = yield* call(() => s3.send(new GetObjectCommand({ Bucket: B, Key: k })))
        assert.strictEqual(yield* call(() => got.Body!.transformToString()), `body of ${k}`, k)
      }
      const listed = yield* call(() => s3.send(new ListObjectsV2Command({ Bucket: B, Prefix: "k" })))
      assert.deepStrictEqual(listed.Contents?.map((c) => c.Key), ["k/../up", "k/./same", "k\\win"])
    }))

  it.effect("storage class: STANDARD is stored; another class is refused (InvalidStorageClass), not silently changed; nothing written", () =>
    Effect.gen(function*() {
      yield* call(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "sc/standard", Body: "x", StorageClass: "STANDARD" })))
      for (const sc of ["GLACIER", "STANDARD_IA", "bogus"]) {
        const e = yield* refused(() => s3.send(new PutObjectCommand({ Bucket: B, Key: `sc/${sc}`, Body: "x", StorageClass: sc as StorageClass })))
        assert.deepStrictEqual(e, { code: "InvalidStorageClass", status: 400 }, sc)
        assert.strictEqual((yield* refused(() => s3.send(new HeadObjectCommand({ Bucket: B, Key: `sc/${sc}` })))).status, 404)
      }
      const mp = yield* refused(() => s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "sc/mp", StorageClass: "DEEP_ARCHIVE" })))
      assert.deepStrictEqual(mp, { code: "InvalidStorageClass", status: 400 })
      const copy = yield* refused(() => s3.send(new CopyObjectCommand({ Bucket: B, Key: "sc/copy", CopySource: `${B}/sc/standard`, StorageClass: "GLACIER" })))
      assert.deepStrictEqual(copy, { code: "InvalidStorageClass", status: 400 })
    }))

  it.effect("keeps and answers the website redirect location; refuses one S3 refuses", () =>
    Effect.gen(function*() {
      yield* call(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "w/page", Body: "x", WebsiteRedirectLocation: "/other/page" })))
      const head = yield* call(() => s3.send(new HeadObjectCommand({ Bucket: B, Key: "w/page" })))
      assert.strictEqual(head.WebsiteRedirectLocation, "/other/page")
      const e = yield* refused(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "w/bad", Body: "x", WebsiteRedirectLocation: "other" })))
      assert.deepStrictEqual(e, { code: "InvalidRedirectLocation", status: 400 })
    }))

  it.effect("CompleteMultipartUpload: parts out of order are InvalidPartOrder even when the one listed last is small; max-parts=0 lists none", () =>
    Effect.gen(function*() {
      const { UploadId } = yield* call(() => s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "mp/order" })))
      const p1 = yield* call(() => s3.send(new UploadPartCommand({ Bucket: B, Key: "mp/order", UploadId, PartNumber: 1, Body: body(5 * MiB) })))
      const p2 = yield* call(() => s3.send(new UploadPartCommand({ Bucket: B, Key: "mp/order", UploadId, PartNumber: 2, Body: "tail" })))
      const none = yield* call(() => s3.send(new ListPartsCommand({ Bucket: B, Key: "mp/order", UploadId, MaxParts: 0 })))
      assert.deepStrictEqual(none.Parts ?? [], [])
      assert.isTrue(none.IsTruncated)
      const complete = (parts: ReadonlyArray<{ PartNumber: number; ETag: string | undefined }>) => () =>
        s3.send(new CompleteMultipartUploadCommand({ Bucket: B, Key: "mp/order", UploadId, MultipartUpload: { Parts: [...parts] } }))
      const first = { PartNumber: 1, ETag: p1.ETag }
      const second = { PartNumber: 2, ETag: p2.ETag }
      assert.deepStrictEqual(yield* refused(complete([second, first])), { code: "InvalidPartOrder", status: 400 })
      const done = yield* call(complete([first, second]))
      // Location: the object's absolute URL as addressed (path style here), the key URI-encoded.
      assert.strictEqual(done.Location, `${api.endpoint}/${B}/mp/order`)
      const { UploadId: id2 } = yield* call(() => s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "mp/a b+é" })))
      const only = yield* call(() => s3.send(new UploadPartCommand({ Bucket: B, Key: "mp/a b+é", UploadId: id2, PartNumber: 1, Body: "x" })))
      const encoded = yield* call(() =>
        s3.send(new CompleteMultipartUploadCommand({ Bucket: B, Key: "mp/a b+é", UploadId: id2, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: only.ETag }] } }))
      )
      assert.strictEqual(encoded.Location, `${api.endpoint}/${B}/mp/a%20b%2B%C3%A9`)
    }))

  it.effect("UploadPart of a part whose ciphertext cannot fit a 5 GiB backend part is EntityTooLarge, answered before the body is sent", () =>
    Effect.gen(function*() {
      const { UploadId } = yield* call(() => s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "mp/huge" })))
      const query = [["partNumber", "1"], ["uploadId", UploadId!]] as const
      const pathname = `/${B}/mp/huge`
      const headers = RawSigned.sign(alice, { method: "PUT", pathname, query, headers: { "content-length": String(5 * 1024 * MiB) }, host: `127.0.0.1:${api.port}` }, "UNSIGNED-PAYLOAD")
      // Only the headers go out: the answer must come without the 5 GiB.
      const r = yield* call(() =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = http.request({ host: "127.0.0.1", port: api.port, method: "PUT", path: `${pathname}?${query.map(([k, v]) => `${k}=${RawSigned.enc(v)}`).join("&")}`, headers }, (res) => {
            let text = ""
            res.on("data", (c: Buffer) => (text += c.toString()))
            res.on("end", () => {
              req.destroy()
              resolve({ status: res.statusCode ?? 0, body: text })
            })
          })
          req.on("error", reject)
          req.flushHeaders()
        })
      ).pipe(Effect.timeout("20 seconds"))
      assert.strictEqual(r.status, 400)
      assert.include(r.body, "<Code>EntityTooLarge</Code>")
      assert.include(r.body, "at most")
    }))

  it.effect("DeleteObjects needs Content-MD5 or a checksum header (nothing deleted without); the SDK's request passes", () =>
    Effect.gen(function*() {
      yield* put("d/keep")
      const doc = `<Delete><Object><Key>d/keep</Key></Object></Delete>`
      const bare = yield* call(() => RawSigned.request(api.port, alice, "POST", `/${B}`, { query: [["delete", ""]], body: doc }))
      assert.strictEqual(bare.status, 400)
      assert.strictEqual(RawSigned.errorCode(bare), "InvalidRequest")
      yield* call(() => s3.send(new HeadObjectCommand({ Bucket: B, Key: "d/keep" })))
      const md5 = crypto.createHash("md5").update(doc).digest("base64")
      const ok = yield* call(() => RawSigned.request(api.port, alice, "POST", `/${B}`, { query: [["delete", ""]], body: doc, headers: { "content-md5": md5 } }))
      assert.strictEqual(ok.status, 200)
      yield* put("d/sdk")
      const r = yield* call(() => s3.send(new DeleteObjectsCommand({ Bucket: B, Delete: { Objects: [{ Key: "d/sdk" }] } })))
      assert.deepStrictEqual(r.Deleted?.map((d) => d.Key), ["d/sdk"])
    }))
})

describe("server-side encryption", () => {
  it.effect("aws:kms:dsse is kept and answered as such on PUT, HEAD, multipart and copy", () =>
    Effect.gen(function*() {
      const put = yield* call(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "e/dsse", Body: "x", ServerSideEncryption: "aws:kms:dsse" })))
      assert.strictEqual(put.ServerSideEncryption, "aws:kms:dsse")
      const head = yield* call(() => s3.send(new HeadObjectCommand({ Bucket: B, Key: "e/dsse" })))
      assert.strictEqual(head.ServerSideEncryption, "aws:kms:dsse")
      const mp = yield* call(() => s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: "e/dsse-mp", ServerSideEncryption: "aws:kms:dsse" })))
      assert.strictEqual(mp.ServerSideEncryption, "aws:kms:dsse")
      const copy = yield* call(() => s3.send(new CopyObjectCommand({ Bucket: B, Key: "e/dsse-copy", CopySource: `${B}/e/dsse`, ServerSideEncryption: "aws:kms:dsse" })))
      assert.strictEqual(copy.ServerSideEncryption, "aws:kms:dsse")
      const plain = yield* call(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "e/kms", Body: "x", ServerSideEncryption: "aws:kms" })))
      assert.strictEqual(plain.ServerSideEncryption, "aws:kms")
    }))

  it.effect("an SSE-C algorithm other than AES256 is InvalidEncryptionAlgorithmError; nothing written", () =>
    Effect.gen(function*() {
      for (const alg of ["AES128", "aes256"]) {
        const e = yield* refused(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "e/alg", Body: "x", ...ssec(), SSECustomerAlgorithm: alg })))
        assert.deepStrictEqual(e, { code: "InvalidEncryptionAlgorithmError", status: 400 }, alg)
      }
      assert.strictEqual((yield* refused(() => s3.send(new HeadObjectCommand({ Bucket: B, Key: "e/alg" })))).status, 404)
    }))

  it.effect("a presigned URL carries only the SSE headers its signer signed: unsigned ones are refused (403), signed ones work", () =>
    Effect.gen(function*() {
      const url = yield* call(() => getSignedUrl(s3, new PutObjectCommand({ Bucket: B, Key: "e/presigned" }), { expiresIn: 60 }))
      const key = ssec()
      const added = [
        { "x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id": "gw-kms" },
        {
          "x-amz-server-side-encryption-customer-algorithm": key.SSECustomerAlgorithm,
          "x-amz-server-side-encryption-customer-key": key.SSECustomerKey,
          "x-amz-server-side-encryption-customer-key-md5": key.SSECustomerKeyMD5
        }
      ]
      for (const headers of added) {
        const res = yield* call(() => fetch(url, { method: "PUT", body: "x", headers }))
        assert.strictEqual(res.status, 403)
        assert.include(yield* call(() => res.text()), "not signed")
      }
      assert.strictEqual((yield* refused(() => s3.send(new HeadObjectCommand({ Bucket: B, Key: "e/presigned" })))).status, 404)
      assert.strictEqual((yield* call(() => fetch(url, { method: "PUT", body: "x" }))).status, 200)
      const signed = yield* call(() => getSignedUrl(s3, new PutObjectCommand({ Bucket: B, Key: "e/presigned-c", ...key }), { expiresIn: 60 }))
      const withKey = yield* call(() =>
        fetch(signed, {
          method: "PUT",
          body: "y",
          headers: {
            "x-amz-server-side-encryption-customer-algorithm": key.SSECustomerAlgorithm,
            "x-amz-server-side-encryption-customer-key": key.SSECustomerKey,
            "x-amz-server-side-encryption-customer-key-md5": key.SSECustomerKeyMD5
          }
        })
      )
      assert.strictEqual(withKey.status, 200)
    }))

  it.effect("an encryption context is in addition to the object's ARN (aws:s3:arn), as S3 binds it; another ARN refused", () =>
    Effect.gen(function*() {
      const context = Buffer.from(JSON.stringify({ project: "probe" })).toString("base64")
      const put = yield* call(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "e/ctx", Body: "with context", ServerSideEncryption: "aws:kms", SSEKMSEncryptionContext: context })))
      assert.deepStrictEqual(JSON.parse(Buffer.from(put.SSEKMSEncryptionContext!, "base64").toString("utf8")), { project: "probe", "aws:s3:arn": `arn:aws:s3:::${B}/e/ctx` })
      const got = yield* call(() => s3.send(new GetObjectCommand({ Bucket: B, Key: "e/ctx" })))
      assert.strictEqual(yield* call(() => got.Body!.transformToString()), "with context")
      const other = Buffer.from(JSON.stringify({ "aws:s3:arn": `arn:aws:s3:::${B}/elsewhere` })).toString("base64")
      const e = yield* refused(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "e/ctx2", Body: "x", ServerSideEncryption: "aws:kms", SSEKMSEncryptionContext: other })))
      assert.deepStrictEqual(e, { code: "InvalidArgument", status: 400 })
    }))

  it.effect("an SSE-C object copied onto itself with only its copy-source key leaves SSE-C (allowed); without any change refused", () =>
    Effect.gen(function*() {
      const key = ssec()
      yield* call(() => s3.send(new PutObjectCommand({ Bucket: B, Key: "e/self", Body: "self", ...key })))
      const source = { CopySourceSSECustomerAlgorithm: key.SSECustomerAlgorithm, CopySourceSSECustomerKey: key.SSECustomerKey, CopySourceSSECustomerKeyMD5: key.SSECustomerKeyMD5 }
      yield* put("e/plain-self")
      const same = yield* refused(() => s3.send(new CopyObjectCommand({ Bucket: B, Key: "e/plain-self", CopySource: `${B}/e/plain-self` })))
      assert.deepStrictEqual(same, { code: "InvalidRequest", status: 400 })
      const out = yield* call(() => s3.send(new CopyObjectCommand({ Bucket: B, Key: "e/self", CopySource: `${B}/e/self`, ...source })))
      assert.strictEqual(out.ServerSideEncryption, "AES256")
      const got = yield* call(() => s3.send(new GetObjectCommand({ Bucket: B, Key: "e/self" })))
      assert.strictEqual(yield* call(() => got.Body!.transformToString()), "self")
    }))

  it.effect("a bucket default's BucketKeyEnabled must be true or false (MalformedXML)", () =>
    Effect.gen(function*() {
      const doc = `<ServerSideEncryptionConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault><BucketKeyEnabled>maybe</BucketKeyEnabled></Rule></ServerSideEncryptionConfiguration>`
      const md5 = crypto.createHash("md5").update(doc).digest("base64")
      const r = yield* call(() => RawSigned.request(api.port, alice, "PUT", `/${B}`, { query: [["encryption", ""]], body: doc, headers: { "content-md5": md5 } }))
      assert.strictEqual(r.status, 400)
      assert.strictEqual(RawSigned.errorCode(r), "MalformedXML")
      yield* call(() =>
        s3.send(new PutBucketEncryptionCommand({
          Bucket: B,
          ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" }, BucketKeyEnabled: false }] }
        }))
      )
    }))
})
