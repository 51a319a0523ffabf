/**
 * What the backend tests (s3 on moto, azure on Azurite, gcs on the test-kit GCS server) share: the
 * S3 calls they make through the gateway and the check that the backend holds only ciphertext.
 */
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectTaggingCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  PutObjectTaggingCommand,
  type S3Client,
  UploadPartCommand
} from "@aws-sdk/client-s3"
import { assert } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"

export const MiB = 1024 * 1024

export const call = <A>(f: () => Promise<A>) => Effect.promise(f)

/** S3's error name and HTTP status of a call expected to fail (`{ code: "none" }` when it did not). */
export const failure = (f: () => Promise<unknown>) =>
  Effect.promise(() =>
    f().then(
      () => ({ code: "none", status: 0 }),
      (e: { name?: string; $metadata?: { httpStatusCode?: number } }) => ({ code: e.name ?? "?", status: e.$metadata?.httpStatusCode ?? 0 })
    )
  )

/** The SSE-C request fields of a customer key. */
export const sseC = (customerKey: Uint8Array) => ({
  SSECustomerAlgorithm: "AES256",
  SSECustomerKey: Buffer.from(customerKey).toString("base64"),
  SSECustomerKeyMD5: crypto.createHash("md5").update(customerKey).digest("base64")
})

/** The SSE-C copy-source fields of a customer key. */
export const copySourceSseC = (customerKey: Uint8Array) => {
  const k = sseC(customerKey)
  return {
    CopySourceSSECustomerAlgorithm: k.SSECustomerAlgorithm,
    CopySourceSSECustomerKey: k.SSECustomerKey,
    CopySourceSSECustomerKeyMD5: k.SSECustomerKeyMD5
  }
}

/** GetObject's body (and any extra request fields: Range, SSE-C…). */
export const readObject = (s3: S3Client, Bucket: string, Key: string, extra?: Record<string, string>) =>
  call(() => s3.send(new GetObjectCommand({ Bucket, Key, ...extra })).then((r) => r.Body!.transformToByteArray()).then(Buffer.from))

/**
 * Creates a multipart upload of `body` and uploads it in `partSize` parts. `clients` take turns
 * (part i on `clients[i % n]`), so an upload can span several gateways.
 */
export const uploadParts = (
  clients: ReadonlyArray<S3Client>,
  Bucket: string,
  Key: string,
  body: Uint8Array,
  partSize: number,
  extra?: Record<string, string>
) =>
  Effect.gen(function*() {
    const created = yield* call(() => clients[0]!.send(new CreateMultipartUploadCommand({ Bucket, Key, ...extra })))
    const UploadId = created.UploadId!
    const parts: Array<{ PartNumber: number; ETag: string }> = []
    for (let off = 0, n = 1; off < body.length; off += partSize, n++) {
      const s3 = clients[(n - 1) % clients.length]!
      const Body = body.subarray(off, Math.min(body.length, off + partSize))
      const done = yield* call(() => s3.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: n, Body, ...extra })))
      parts.push({ PartNumber: n, ETag: done.ETag! })
    }
    return { uploadId: UploadId, parts }
  })

/** Completes an upload with its parts; resolves to the object's ETag. */
export const completeUpload = (s3: S3Client, Bucket: string, Key: string, upload: { readonly uploadId: string; readonly parts: ReadonlyArray<{ PartNumber: number; ETag: string }> }) =>
  call(() => s3.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId: upload.uploadId, MultipartUpload: { Parts: [...upload.parts] } })))
    .pipe(Effect.map((r) => r.ETag!))

/** `uploadParts`, then completion on the last of `clients`. */
export const multipartPut = (
  clients: ReadonlyArray<S3Client>,
  Bucket: string,
  Key: string,
  body: Uint8Array,
  partSize: number,
  extra?: Record<string, string>
) =>
  Effect.gen(function*() {
    const upload = yield* uploadParts(clients, Bucket, Key, body, partSize, extra)
    const etag = yield* completeUpload(clients[clients.length - 1]!, Bucket, Key, upload)
    return { ...upload, etag }
  })

/** Asserts that no stored object holds any of the secrets (a plaintext marker, a customer key). */
export const assertCiphertextOnly = (stored: ReadonlyArray<{ readonly key: string; readonly bytes: Uint8Array }>, secrets: ReadonlyArray<string | Uint8Array>) => {
  assert.isAbove(stored.length, 0)
  for (const { bytes, key } of stored) {
    const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    for (const s of secrets) assert.isFalse(b.includes(typeof s === "string" ? s : Buffer.from(s)), `${key} holds a secret`)
  }
}

/**
 * Tags an existing object through one gateway and reads it back through another (a metadata-only
 * rewrite with the driver's conditional copy): tags seen, ETag kept, body unchanged, tags removed.
 */
export const tagRoundTrip = (writer: S3Client, reader: S3Client, Bucket: string, Key: string, expected: Uint8Array, extra?: Record<string, string>) =>
  Effect.gen(function*() {
    const before = yield* call(() => reader.send(new HeadObjectCommand({ Bucket, Key, ...extra })))
    const TagSet = [{ Key: "backend", Value: "tagged" }, { Key: "n", Value: "2" }]
    yield* call(() => writer.send(new PutObjectTaggingCommand({ Bucket, Key, Tagging: { TagSet } })))
    const got = yield* call(() => reader.send(new GetObjectTaggingCommand({ Bucket, Key })))
    assert.deepStrictEqual(got.TagSet?.map((t) => [t.Key, t.Value]), TagSet.map((t) => [t.Key, t.Value]))
    const after = yield* call(() => reader.send(new HeadObjectCommand({ Bucket, Key, ...extra })))
    assert.strictEqual(after.ETag, before.ETag)
    assert.strictEqual(after.TagCount, 2)
    assert.isTrue((yield* readObject(reader, Bucket, Key, extra)).equals(Buffer.from(expected)))
    yield* call(() => writer.send(new DeleteObjectTaggingCommand({ Bucket, Key })))
    assert.deepStrictEqual((yield* call(() => reader.send(new GetObjectTaggingCommand({ Bucket, Key })))).TagSet, [])
  })
