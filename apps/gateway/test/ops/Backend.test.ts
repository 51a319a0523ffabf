import {
  CopyObjectCommand,
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client
} from "@aws-sdk/client-s3"
import { assert, describe, it } from "@effect/vitest"
import { MotoServer } from "@objcrypt/test-kit"
import * as TcpRelay from "@objcrypt/test-kit/TcpRelay"
import { Effect } from "effect"
import * as GatewayConfig from "../../src/GatewayConfig.js"
import * as crypto from "node:crypto"
import * as net from "node:net"
import { assertCiphertextOnly, call, failure, MiB, multipartPut, readObject, sseC, tagRoundTrip } from "./backendSuite.js"
import { client, decode, markedPayload, rawConfig, start, tempDir } from "./harness.js"

/** A TCP forwarder in front of the backend, so a test can take the backend away and bring it back. */
const proxy = async (target: number) => {
  const sockets = new Set<net.Socket>()
  let server: net.Server | undefined
  let port = 0
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server = net.createServer((c) => {
        const up = net.connect(target, "127.0.0.1")
        sockets.add(c).add(up)
        c.pipe(up).pipe(c)
        const drop = () => {
          c.destroy()
          up.destroy()
          sockets.delete(c)
          sockets.delete(up)
        }
        c.on("error", drop).on("close", drop)
        up.on("error", drop).on("close", drop)
      })
      server.once("error", reject)
      server.listen(port, "127.0.0.1", () => {
        port = (server!.address() as net.AddressInfo).port
        resolve()
      })
    })
  await listen()
  return {
    port: () => port,
    down: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        sockets.clear()
        server!.close(() => resolve())
      }),
    up: listen
  }
}

const MARKER = `PLAINTEXT-MARKER-${crypto.randomBytes(6).toString("hex")}`
const customerKey = crypto.randomBytes(32)
const ssec = sseC(customerKey)

/** The moto server, its secret where the gateway's config reads it, and a client straight to it. */
const motoBackend = Effect.map(MotoServer.MotoServer, (moto) => {
  process.env["GW_OPS_MOTO"] = moto.secretAccessKey
  const direct = new S3Client({
    endpoint: moto.endpoint,
    region: moto.region,
    forcePathStyle: true,
    credentials: { accessKeyId: moto.accessKeyId, secretAccessKey: moto.secretAccessKey }
  })
  return { direct, moto }
})

describe("s3 backend", () => {
  it.layer(MotoServer.layer(), { timeout: "90 seconds" })("over moto", (it) => {
    it.effect("serves every operation from one backend bucket, stores only ciphertext, and answers 503 while the backend is down", () =>
      Effect.gen(function*() {
        const { direct, moto } = yield* motoBackend
        yield* call(() => direct.send(new CreateBucketCommand({ Bucket: "gw-backend" })))
        const fwd = yield* call(() => proxy(Number(new URL(moto.endpoint).port)))
        const dir = tempDir("s3backend")
        const gw = yield* call(() =>
          start(decode(rawConfig(dir, {
            allowPlainHttpSseC: true,
            backend: {
              type: "s3",
              bucket: "gw-backend",
              prefix: "tenant/",
              endpoint: `http://127.0.0.1:${fwd.port()}`,
              forcePathStyle: true,
              accessKeyId: moto.accessKeyId,
              secretAccessKey: { env: "GW_OPS_MOTO" }
            }
          })))
        )
        try {
          const s3 = client(gw.endpoint)
          const small = markedPayload(MARKER, 100_000)
          yield* call(() => s3.send(new CreateBucketCommand({ Bucket: "photos" })))
          yield* call(() => s3.send(new PutObjectCommand({ Bucket: "photos", Key: "a/sse-s3", Body: small, ServerSideEncryption: "AES256" })))
          yield* call(() => s3.send(new PutObjectCommand({ Bucket: "photos", Key: "a/sse-kms", Body: small, ServerSideEncryption: "aws:kms" })))
          yield* call(() => s3.send(new PutObjectCommand({ Bucket: "photos", Key: "b/sse-c", Body: small, ...ssec })))
          const big = markedPayload(MARKER, 5 * 1024 * 1024 + 12345)
          yield* multipartPut([s3], "photos", "big", big, 5 * MiB)
          yield* call(() => s3.send(new CopyObjectCommand({ Bucket: "photos", Key: "copied", CopySource: "photos/a/sse-s3", ServerSideEncryption: "aws:kms" })))

          const read = (Key: string, extra?: Record<string, string>) => readObject(s3, "photos", Key, extra)
          assert.isTrue((yield* read("a/sse-s3")).equals(small))
          assert.isTrue((yield* read("a/sse-kms")).equals(small))
          assert.isTrue((yield* read("b/sse-c", ssec)).equals(small))
          assert.isTrue((yield* read("big")).equals(big))
          assert.isTrue((yield* read("copied")).equals(small))
          assert.isTrue((yield* read("big", { Range: "bytes=5242000-5242999" })).equals(big.subarray(5242000, 5243000)))
          const list = yield* call(() => s3.send(new ListObjectsV2Command({ Bucket: "photos", Delimiter: "/" })))
          assert.deepStrictEqual(list.Contents?.map((c) => [c.Key, c.Size]), [["big", big.length], ["copied", small.length]])
          assert.deepStrictEqual(list.CommonPrefixes?.map((p) => p.Prefix), ["a/", "b/"])
          const head = yield* call(() => s3.send(new HeadObjectCommand({ Bucket: "photos", Key: "a/sse-kms" })))
          assert.strictEqual(head.ServerSideEncryption, "aws:kms")
          yield* tagRoundTrip(s3, s3, "photos", "b/sse-c", small, ssec)
          yield* tagRoundTrip(s3, s3, "photos", "big", big)

          // The backend holds only our format, under the prefix.
          const stored = yield* call(() => direct.send(new ListObjectsV2Command({ Bucket: "gw-backend" })))
          const keys = (stored.Contents ?? []).map((c) => c.Key!)
          assert.isAbove(keys.length, 5)
          for (const k of keys) assert.isTrue(k.startsWith("tenant/"), k)
          assert.includeMembers(keys, ["tenant/photos/a/sse-s3", "tenant/photos/big", "tenant/.objcrypt-gateway/buckets/photos"])
          const bodies = yield* Effect.forEach(keys, (k) =>
            call(() => direct.send(new GetObjectCommand({ Bucket: "gw-backend", Key: k })).then((r) => r.Body!.transformToByteArray())).pipe(Effect.map((bytes) => ({ key: k, bytes })))
          )
          assertCiphertextOnly(bodies, [MARKER, customerKey])

          const status = (p: string) => call(() => fetch(`${gw.endpoint}${p}`).then((r) => r.status))
          assert.strictEqual(yield* status("/_ready"), 200)

          yield* call(() => fwd.down())
          assert.strictEqual(yield* status("/_ready"), 503)
          assert.strictEqual(yield* status("/_health"), 200)
          assert.deepStrictEqual(
            yield* failure(() => s3.send(new PutObjectCommand({ Bucket: "photos", Key: "during-outage", Body: "x" }))),
            { code: "ServiceUnavailable", status: 503 }
          )
          assert.deepStrictEqual(yield* failure(() => s3.send(new GetObjectCommand({ Bucket: "photos", Key: "big" }))), { code: "ServiceUnavailable", status: 503 })
          assert.strictEqual((yield* failure(() => s3.send(new ListObjectsV2Command({ Bucket: "photos" })))).status, 503)

          yield* call(() => fwd.up())
          assert.strictEqual(yield* status("/_ready"), 200)
          assert.isTrue((yield* read("big")).equals(big))
          assert.isTrue((yield* read("b/sse-c", ssec)).equals(small))
          assert.strictEqual((yield* failure(() => s3.send(new HeadObjectCommand({ Bucket: "photos", Key: "during-outage" })))).status, 404)
          yield* call(() => s3.send(new PutObjectCommand({ Bucket: "photos", Key: "after-outage", Body: "back" })))
          assert.strictEqual((yield* read("after-outage")).toString(), "back")
        } finally {
          yield* call(() => gw.close())
          yield* call(() => fwd.down())
        }
      }), { timeout: 120_000 })

    it.effect("a backend that accepts requests and never answers gives 503 after idleTimeoutSeconds, nothing committed; then serves again", () =>
      Effect.gen(function*() {
        const { direct, moto } = yield* motoBackend
        yield* call(() => direct.send(new CreateBucketCommand({ Bucket: "gw-idle" })))
        const relay = yield* TcpRelay.make(moto.endpoint)
        const dir = tempDir("s3idle")
        const gw = yield* call(() =>
          start(decode(rawConfig(dir, {
            backend: {
              type: "s3",
              bucket: "gw-idle",
              endpoint: relay.endpoint,
              forcePathStyle: true,
              accessKeyId: moto.accessKeyId,
              secretAccessKey: { env: "GW_OPS_MOTO" },
              idleTimeoutSeconds: 1
            }
          })))
        )
        try {
          const s3 = client(gw.endpoint)
          yield* call(() => s3.send(new CreateBucketCommand({ Bucket: "idle" })))
          yield* call(() => s3.send(new PutObjectCommand({ Bucket: "idle", Key: "before", Body: "kept" })))
          relay.blackhole = true
          const started = Date.now()
          assert.deepStrictEqual(
            yield* failure(() => s3.send(new PutObjectCommand({ Bucket: "idle", Key: "during", Body: "x" }))),
            { code: "ServiceUnavailable", status: 503 }
          )
          assert.strictEqual((yield* failure(() => s3.send(new GetObjectCommand({ Bucket: "idle", Key: "before" })))).status, 503)
          // The SDK's retries (3 attempts) of two requests, each cut off after 1 s of silence.
          assert.isBelow(Date.now() - started, 30_000)
          relay.blackhole = false
          assert.strictEqual((yield* readObject(s3, "idle", "before")).toString(), "kept")
          assert.strictEqual((yield* failure(() => s3.send(new HeadObjectCommand({ Bucket: "idle", Key: "during" })))).status, 404)
        } finally {
          yield* call(() => gw.close())
        }
      }).pipe(Effect.scoped), { timeout: 90_000 })

    it.effect("partSize, partConcurrency and memoryBudgetMiB set the backend's multipart parts and their memory; out-of-range values are refused", () =>
      Effect.gen(function*() {
        const { direct, moto } = yield* motoBackend
        yield* call(() => direct.send(new CreateBucketCommand({ Bucket: "gw-parts" })))
        const dir = tempDir("s3parts")
        const backend = (extra: Record<string, unknown>) => ({
          backend: {
            type: "s3",
            bucket: "gw-parts",
            endpoint: moto.endpoint,
            forcePathStyle: true,
            accessKeyId: moto.accessKeyId,
            secretAccessKey: { env: "GW_OPS_MOTO" },
            ...extra
          }
        })
        for (const bad of [{ partSize: 5 * MiB - 1 }, { partSize: 5 * MiB + 0.5 }, { partConcurrency: 0 }, { partConcurrency: 65 }, { memoryBudgetMiB: 15 }, { memoryBudgetMiB: 16.5 }, { idleTimeoutSeconds: -1 }, { idleTimeoutSeconds: 1.5 }]) {
          const e = yield* Effect.flip(GatewayConfig.decode(rawConfig(dir, backend(bad))))
          assert.strictEqual(e._tag, "ConfigFileError", JSON.stringify(bad))
        }
        // The same 12 MiB object: in 5 MiB parts (3, one at a time) and with the driver's 8 MiB default (2).
        const body = markedPayload(MARKER, 12 * MiB)
        const partsOf = (extra: Record<string, unknown>, key: string) =>
          Effect.gen(function*() {
            const gw = yield* call(() => start(decode(rawConfig(dir, backend(extra)))))
            try {
              const s3 = client(gw.endpoint)
              yield* call(() => s3.send(new CreateBucketCommand({ Bucket: key })))
              yield* call(() => s3.send(new PutObjectCommand({ Bucket: key, Key: "object", Body: body, ServerSideEncryption: "AES256" })))
              assert.isTrue((yield* readObject(s3, key, "object")).equals(body))
              const stored = yield* call(() => direct.send(new HeadObjectCommand({ Bucket: "gw-parts", Key: `${key}/object` })))
              return Number(/-(\d+)"?$/.exec(stored.ETag ?? "")?.[1] ?? 1)
            } finally {
              yield* call(() => gw.close())
            }
          })
        assert.strictEqual(yield* partsOf({ partSize: 5 * MiB, partConcurrency: 1 }, "small-parts"), 3)
        assert.strictEqual(yield* partsOf({}, "default-parts"), 2)
        // A budget smaller than one large PUT's parts (40 MiB with the defaults): each takes all of
        // it in turn, and concurrent PUTs all complete.
        const gw = yield* call(() => start(decode(rawConfig(dir, backend({ memoryBudgetMiB: 16 })))))
        try {
          const s3 = client(gw.endpoint)
          yield* call(() => s3.send(new CreateBucketCommand({ Bucket: "budget" })))
          const bodies = [0, 1, 2].map((i) => markedPayload(`${MARKER}-${i}`, 12 * MiB))
          yield* Effect.all(bodies.map((Body, i) => call(() => s3.send(new PutObjectCommand({ Bucket: "budget", Key: `o${i}`, Body })))), { concurrency: "unbounded" })
          for (const [i, b] of bodies.entries()) assert.isTrue((yield* readObject(s3, "budget", `o${i}`)).equals(b))
        } finally {
          yield* call(() => gw.close())
        }
      }), { timeout: 120_000 })
  })
})
