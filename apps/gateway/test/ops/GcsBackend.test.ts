/**
 * The gateway on driver-gcs against the test-kit GCS JSON-API server (in this process, 127.0.0.1,
 * free port), driven by @aws-sdk/client-s3 through two gateway instances sharing the backend.
 */
import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand
} from "@aws-sdk/client-s3"
import { assert, describe, it } from "@effect/vitest"
import * as GcsServer from "@objcrypt/test-kit/GcsServer"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import { assertCiphertextOnly, call, copySourceSseC, failure, MiB, multipartPut, readObject, sseC, tagRoundTrip } from "./backendSuite.js"
import { client, decode, markedPayload, rawConfig, start, tempDir } from "./harness.js"

const MARKER = `GCS-PLAINTEXT-${crypto.randomBytes(6).toString("hex")}`
const customerKey = crypto.randomBytes(32)
const ssec = sseC(customerKey)
const md5 = (b: Uint8Array) => crypto.createHash("md5").update(b).digest("hex")

describe("gcs backend", () => {
  it.layer(GcsServer.layer({ buckets: ["gw-backend"] }), { timeout: "60 seconds" })("over the test-kit GCS server", (it) => {
    it.effect("serves the S3 API from one GCS bucket on two gateways, SSE-S3/SSE-KMS/SSE-C round trips, and stores only ciphertext", () =>
      Effect.gen(function*() {
        const gcs = yield* GcsServer.GcsServer
        const dir = tempDir("gcs")
        const config = decode(rawConfig(dir, {
          allowPlainHttpSseC: true,
          backend: { type: "gcs", bucket: "gw-backend", prefix: "tenant/", projectId: gcs.projectId, apiEndpoint: gcs.endpoint }
        }))
        const gwA = yield* call(() => start(config))
        const gwB = yield* call(() => start(config))
        try {
          const a = client(gwA.endpoint)
          const b = client(gwB.endpoint)
          const small = markedPayload(MARKER, 70_000)
          const big = markedPayload(MARKER, 5 * MiB + 4321)
          yield* call(() => a.send(new CreateBucketCommand({ Bucket: "photos" })))

          // put / get / head in every SSE mode; the other gateway reads what one wrote.
          const putS3 = yield* call(() => a.send(new PutObjectCommand({ Bucket: "photos", Key: "dir/sse-s3", Body: small, ServerSideEncryption: "AES256" })))
          assert.strictEqual(putS3.ServerSideEncryption, "AES256")
          assert.strictEqual(putS3.ETag, `"${md5(small)}"`)
          const putKms = yield* call(() => a.send(new PutObjectCommand({ Bucket: "photos", Key: "dir/sse-kms", Body: small, ServerSideEncryption: "aws:kms" })))
          assert.strictEqual(putKms.ServerSideEncryption, "aws:kms")
          const putC = yield* call(() => a.send(new PutObjectCommand({ Bucket: "photos", Key: "other/sse-c", Body: small, ...ssec })))
          assert.strictEqual(putC.SSECustomerKeyMD5, ssec.SSECustomerKeyMD5)
          yield* call(() => a.send(new PutObjectCommand({ Bucket: "photos", Key: "empty", Body: new Uint8Array(0) })))
          assert.isTrue((yield* readObject(b, "photos", "dir/sse-s3")).equals(small))
          assert.isTrue((yield* readObject(b, "photos", "dir/sse-kms")).equals(small))
          assert.isTrue((yield* readObject(b, "photos", "other/sse-c", ssec)).equals(small))
          assert.strictEqual((yield* readObject(b, "photos", "empty")).length, 0)
          // (HEAD answers carry no body: only the status tells the refusals apart)
          assert.strictEqual((yield* failure(() => b.send(new HeadObjectCommand({ Bucket: "photos", Key: "other/sse-c" })))).status, 400)
          assert.strictEqual((yield* failure(() => b.send(new HeadObjectCommand({ Bucket: "photos", Key: "other/sse-c", ...sseC(crypto.randomBytes(32)) })))).status, 403)
          assert.deepStrictEqual(
            yield* failure(() => b.send(new GetObjectCommand({ Bucket: "photos", Key: "other/sse-c", ...sseC(crypto.randomBytes(32)) }))),
            { code: "AccessDenied", status: 403 }
          )
          const headS3 = yield* call(() => b.send(new HeadObjectCommand({ Bucket: "photos", Key: "dir/sse-s3" })))
          assert.strictEqual(headS3.ContentLength, small.length)
          assert.strictEqual(headS3.ETag, `"${md5(small)}"`)
          assert.strictEqual(headS3.ServerSideEncryption, "AES256")
          const headC = yield* call(() => b.send(new HeadObjectCommand({ Bucket: "photos", Key: "other/sse-c", ...ssec })))
          assert.strictEqual(headC.ContentLength, small.length)
          assert.strictEqual(headC.SSECustomerAlgorithm, "AES256")

          // ranges, from both ends and across the single-object segment boundary
          assert.isTrue((yield* readObject(a, "photos", "dir/sse-kms", { Range: "bytes=65530-65545" })).equals(small.subarray(65530, 65546)))
          assert.isTrue((yield* readObject(a, "photos", "other/sse-c", { ...ssec, Range: "bytes=-100" })).equals(small.subarray(small.length - 100)))

          // multipart begun on A, parts on A and B, completed on B; SSE-S3 and SSE-C
          const mp = yield* multipartPut([a, b], "photos", "big", big, 5 * MiB)
          assert.strictEqual(mp.etag, `"${md5(Buffer.concat([crypto.createHash("md5").update(big.subarray(0, 5 * MiB)).digest(), crypto.createHash("md5").update(big.subarray(5 * MiB)).digest()]))}-2"`)
          yield* multipartPut([b, a], "photos", "big-c", big, 5 * MiB, ssec)
          assert.isTrue((yield* readObject(a, "photos", "big")).equals(big))
          assert.isTrue((yield* readObject(b, "photos", "big-c", ssec)).equals(big))
          assert.isTrue((yield* readObject(a, "photos", "big", { Range: "bytes=5242870-5242889" })).equals(big.subarray(5242870, 5242890)))
          assert.isTrue((yield* readObject(b, "photos", "big-c", { ...ssec, Range: "bytes=5242870-" })).equals(big.subarray(5242870)))
          assert.strictEqual((yield* call(() => a.send(new HeadObjectCommand({ Bucket: "photos", Key: "big" })))).ETag, mp.etag)
          // tags written through A, read through B: a metadata-only rewrite of the GCS object
          yield* tagRoundTrip(a, b, "photos", "big", big)
          yield* tagRoundTrip(b, a, "photos", "big-c", big, ssec)

          // abort: begun on A with a part, aborted on B, gone from both and from the backend
          const aborted = yield* call(() => a.send(new CreateMultipartUploadCommand({ Bucket: "photos", Key: "dropped", ServerSideEncryption: "aws:kms" })))
          yield* call(() => a.send(new UploadPartCommand({ Bucket: "photos", Key: "dropped", UploadId: aborted.UploadId!, PartNumber: 1, Body: small })))
          const listed = yield* call(() => b.send(new ListMultipartUploadsCommand({ Bucket: "photos" })))
          assert.deepStrictEqual(listed.Uploads?.map((u) => [u.Key, u.UploadId]), [["dropped", aborted.UploadId]])
          yield* call(() => b.send(new AbortMultipartUploadCommand({ Bucket: "photos", Key: "dropped", UploadId: aborted.UploadId! })))
          assert.strictEqual(
            (yield* failure(() => a.send(new ListPartsCommand({ Bucket: "photos", Key: "dropped", UploadId: aborted.UploadId! })))).code,
            "NoSuchUpload"
          )
          assert.deepStrictEqual((yield* call(() => a.send(new ListMultipartUploadsCommand({ Bucket: "photos" })))).Uploads ?? [], [])
          assert.strictEqual((yield* failure(() => a.send(new HeadObjectCommand({ Bucket: "photos", Key: "dropped" })))).status, 404)

          // copies: changing the encryption, and from an SSE-C source
          yield* call(() => a.send(new CopyObjectCommand({ Bucket: "photos", Key: "copy-kms", CopySource: "photos/dir/sse-s3", ServerSideEncryption: "aws:kms" })))
          const fromC = yield* call(() =>
            b.send(new CopyObjectCommand({ Bucket: "photos", Key: "copy-s3", CopySource: "photos/other/sse-c", ServerSideEncryption: "AES256", ...copySourceSseC(customerKey) }))
          )
          assert.strictEqual(fromC.CopyObjectResult?.ETag, `"${md5(small)}"`)
          assert.isTrue((yield* readObject(b, "photos", "copy-kms")).equals(small))
          assert.isTrue((yield* readObject(a, "photos", "copy-s3")).equals(small))
          assert.strictEqual((yield* call(() => a.send(new HeadObjectCommand({ Bucket: "photos", Key: "copy-kms" })))).ServerSideEncryption, "aws:kms")

          // list with a delimiter, sizes in plaintext
          const list = yield* call(() => b.send(new ListObjectsV2Command({ Bucket: "photos", Delimiter: "/" })))
          assert.deepStrictEqual(list.Contents?.map((c) => [c.Key, c.Size]), [
            ["big", big.length],
            ["big-c", big.length],
            ["copy-kms", small.length],
            ["copy-s3", small.length],
            ["empty", 0]
          ])
          assert.deepStrictEqual(list.CommonPrefixes?.map((p) => p.Prefix), ["dir/", "other/"])
          assert.strictEqual(list.Contents?.find((c) => c.Key === "copy-s3")?.ETag, `"${md5(small)}"`)

          // The GCS bucket holds only our format, under the prefix: read it straight from the server.
          const names = [...gcs.objectNames("gw-backend")]
          for (const n of names) assert.isTrue(n.startsWith("tenant/"), n)
          assert.includeMembers(names, ["tenant/photos/dir/sse-s3", "tenant/photos/big", "tenant/photos/big-c", "tenant/.objcrypt-gateway/buckets/photos"])
          const stored = yield* Effect.forEach(names, (key) => Effect.map(gcs.storedBytes("gw-backend", key), (bytes) => ({ key, bytes: bytes! })))
          assertCiphertextOnly(stored, [MARKER, customerKey])
          // SSE-S3 ETags live in the backend (what a third gateway would read), one per version.
          const etagRecords = () => gcs.objectNames("gw-backend").filter((n) => n.startsWith("tenant/.objcrypt-gateway/etag-records/photos/")).length
          assert.strictEqual(etagRecords(), 4) // dir/sse-s3, empty (bucket default SSE-S3), big, copy-s3

          // delete (single and batch) reaches the backend, and what it kept about the objects goes too
          yield* call(() => a.send(new DeleteObjectCommand({ Bucket: "photos", Key: "big" })))
          const batch = yield* call(() =>
            b.send(new DeleteObjectsCommand({ Bucket: "photos", Delete: { Objects: [{ Key: "big-c" }, { Key: "copy-s3" }, { Key: "absent" }] } }))
          )
          assert.deepStrictEqual(batch.Deleted?.map((d) => d.Key).sort(), ["absent", "big-c", "copy-s3"])
          assert.strictEqual((yield* failure(() => b.send(new HeadObjectCommand({ Bucket: "photos", Key: "big" })))).status, 404)
          assert.strictEqual(etagRecords(), 2) // big's and copy-s3's went with them
          const left = gcs.objectNames("gw-backend")
          for (const gone of ["tenant/photos/big", "tenant/photos/big-c", "tenant/photos/copy-s3"]) assert.notInclude(left, gone)
          assert.isFalse(left.some((n) => n.includes("/manifests/")), "a deleted multipart object's manifest was kept")
          assert.isFalse(left.some((n) => n.includes("/uploads/")), "an upload's records were kept")
        } finally {
          yield* call(() => gwA.close())
          yield* call(() => gwB.close())
          fs.rmSync(dir, { recursive: true, force: true })
        }
      }), { timeout: 120_000 })
  })
})
