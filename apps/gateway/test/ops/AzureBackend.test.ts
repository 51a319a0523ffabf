import { CopyObjectCommand, CreateBucketCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3"
import { assert, describe, it } from "@effect/vitest"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import { Azurite } from "@objcrypt/test-kit"
import { Effect, Redacted, Stream } from "effect"
import * as crypto from "node:crypto"
import { assertCiphertextOnly, call, MiB, multipartPut, readObject, sseC, tagRoundTrip } from "./backendSuite.js"
import { client, decode, markedPayload, rawConfig, start, tempDir } from "./harness.js"

const MARKER = `AZURE-PLAINTEXT-${crypto.randomBytes(6).toString("hex")}`
const customerKey = crypto.randomBytes(32)
const ssec = sseC(customerKey)

describe("azure backend", () => {
  it.layer(Azurite.layer(), { timeout: "90 seconds" })("over Azurite", (it) => {
    it.effect("serves the S3 API from one container and stores only ciphertext", () =>
      Effect.gen(function*() {
        const azurite = yield* Azurite.Azurite
        // The gateway loads its drivers lazily (Backend.makeStore); the test follows the same rule.
        const AzureBlobObjectStore = yield* Effect.promise(() => import("@objcrypt/driver-azure/AzureBlobObjectStore"))
        process.env["GW_OPS_AZURE"] = azurite.connectionString
        const credentials = { _tag: "ConnectionString" as const, connectionString: Redacted.make(azurite.connectionString) }
        yield* AzureBlobObjectStore.createContainer(AzureBlobObjectStore.makeClient({ container: "gateway", credentials }))
        const dir = tempDir("azure")
        const gw = yield* call(() =>
          start(decode(rawConfig(dir, {
            allowPlainHttpSseC: true,
            backend: { type: "azure", container: "gateway", connectionString: { env: "GW_OPS_AZURE" } }
          })))
        )
        try {
          const s3 = client(gw.endpoint)
          const small = markedPayload(MARKER, 50_000)
          const big = markedPayload(MARKER, 5 * 1024 * 1024 + 999)
          yield* call(() => s3.send(new CreateBucketCommand({ Bucket: "blobs" })))
          yield* call(() => s3.send(new PutObjectCommand({ Bucket: "blobs", Key: "s3", Body: small })))
          yield* call(() => s3.send(new PutObjectCommand({ Bucket: "blobs", Key: "kms", Body: small, ServerSideEncryption: "aws:kms" })))
          yield* call(() => s3.send(new PutObjectCommand({ Bucket: "blobs", Key: "c", Body: small, ...ssec })))
          yield* multipartPut([s3], "blobs", "big", big, 5 * MiB, ssec)
          yield* call(() => s3.send(new CopyObjectCommand({ Bucket: "blobs", Key: "copy", CopySource: "blobs/kms" })))
          const read = (Key: string, extra?: Record<string, string>) => readObject(s3, "blobs", Key, extra)
          for (const k of ["s3", "kms", "copy"]) assert.isTrue((yield* read(k)).equals(small), k)
          assert.isTrue((yield* read("c", ssec)).equals(small))
          assert.isTrue((yield* read("big", ssec)).equals(big))
          assert.isTrue((yield* read("big", { ...ssec, Range: "bytes=5242870-5242889" })).equals(big.subarray(5242870, 5242890)))
          yield* tagRoundTrip(s3, s3, "blobs", "kms", small)
          yield* tagRoundTrip(s3, s3, "blobs", "big", big, ssec)
          const list = yield* call(() => s3.send(new ListObjectsV2Command({ Bucket: "blobs" })))
          assert.deepStrictEqual(list.Contents?.map((c) => [c.Key, c.Size]), [["big", big.length], ["c", small.length], ["copy", small.length], ["kms", small.length], ["s3", small.length]])
          // Read the container directly: our format only.
          const blobs = yield* Effect.scoped(Effect.gen(function*() {
            const store = yield* AzureBlobObjectStore.make({ container: "gateway", credentials })
            const keys = yield* Stream.runCollect(ObjectStore.listAll(store)).pipe(Effect.map((c) => Array.from(c, (o) => o.key)))
            const stored = yield* Effect.forEach(keys, (key) => Effect.map(ObjectStore.readAll(store, key), ({ bytes }) => ({ key, bytes })))
            assertCiphertextOnly(stored, [MARKER, customerKey])
            return keys
          }))
          assert.includeMembers(blobs, ["blobs/s3", "blobs/big", ".objcrypt-gateway/buckets/blobs"])
        } finally {
          yield* call(() => gw.close())
        }
      }), { timeout: 120_000 })
  })
})
