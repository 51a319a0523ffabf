/**
 * AWS's own S3 Encryption Clients (Go SDK v1 `s3crypto` V2 and Ruby `Aws::S3::EncryptionV2`, the
 * programs in tools/test-kit/interop/s3ec, unchanged) encrypt and decrypt with `kms+context`
 * through the KMS service, and objcrypt's S3EC (over driver-s3's `AwsKms` pointed at the service)
 * reads what they write and the other way round. The peers take one endpoint for S3 and KMS, so
 * the test puts a router in front: requests naming a `TrentService` target go to the KMS service,
 * everything else to moto_server's S3. The service's audit log proves the KMS calls reached it.
 */
import { CreateKeyCommand, DisableKeyCommand, EnableKeyCommand, ScheduleKeyDeletionCommand } from "@aws-sdk/client-kms"
import { assert, layer } from "@effect/vitest"
import { Kms } from "@objcrypt/core/Kms"
import * as S3EC from "@objcrypt/core/S3EncryptionClient"
import * as MotoServer from "@objcrypt/test-kit/MotoServer"
import * as S3ecPeers from "@objcrypt/test-kit/S3ecPeers"
import { Context, Effect, Layer, Redacted, Stream } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as path from "node:path"
import { REGION, start } from "./harness.js"
import type { Service as KmsServiceHandle } from "./harness.js"

// driver-s3 is loaded lazily by the gateway, so tests import it the same way.
const AwsKms = await import("@objcrypt/driver-s3/AwsKms")
const S3Buckets = await import("@objcrypt/driver-s3/S3Buckets")
const S3ObjectStore = await import("@objcrypt/driver-s3/S3ObjectStore")

const bucket = `objcrypt-kms-s3ec-${crypto.randomBytes(4).toString("hex")}`

// The peers sign with the static credentials testing/testing: give the service that user.
const peer = { name: "s3ec-peer", accessKeyId: "testing", secret: "testing", secretAccessKey: Redacted.make("testing"), buckets: "*" as const }

class Endpoints extends Context.Tag("test/Endpoints")<Endpoints, { readonly router: string; readonly kms: KmsServiceHandle }>() {}

/** Forwards each request unchanged (Host included, so signatures stay valid) to KMS or S3. */
const router = (kmsUrl: string, s3Url: string) =>
  Effect.acquireRelease(
    Effect.async<http.Server>((resume) => {
      const server = http.createServer((req, res) => {
        const target = new URL(String(req.headers["x-amz-target"] ?? "").startsWith("TrentService.") ? kmsUrl : s3Url)
        const out = http.request(
          { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
          (up) => {
            res.writeHead(up.statusCode ?? 502, up.headers)
            up.pipe(res)
          }
        )
        out.on("error", () => res.destroy())
        req.pipe(out)
      })
      server.listen(0, "127.0.0.1", () => {
        resume(Effect.succeed(server))
      })
    }),
    (server) =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
      })
  )

const endpointsLayer = Layer.scoped(
  Endpoints,
  Effect.gen(function*() {
    const moto = yield* MotoServer.MotoServer
    const kms = yield* Effect.acquireRelease(
      Effect.promise(() => start({ grants: [{ accessKeyId: "testing", keys: "*", operations: "*" }] }, [peer])),
      (s) => Effect.promise(() => s.close())
    )
    const server = yield* router(kms.endpoint, moto.endpoint)
    return { router: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, kms }
  })
)

const kmsLayer = Layer.unwrapEffect(
  Effect.map(Endpoints, (e) =>
    AwsKms.layer({ endpoint: e.kms.endpoint, region: REGION, accessKeyId: "testing", secretAccessKey: Redacted.make("testing"), maxAttempts: 1 }))
)
const s3Layer = Layer.unwrapEffect(Effect.map(MotoServer.MotoServer, (m) => S3ObjectStore.layer({ bucket, ...MotoServer.s3Settings(m) })))

const ALLOW: S3EC.CommitmentPolicy = "RequireEncryptAllowDecrypt"
const V2: S3EC.CommitmentPolicy = "ForbidEncryptAllowDecrypt"

/** The peers sign with testing/testing and send S3 and KMS requests to the router. */
const peersLayer = Layer.unwrapEffect(Effect.map(Endpoints, (e) => S3ecPeers.layer({ endpoint: e.router, region: REGION })))
const ruby = (mode: string, key: string, cmk: string, file: string) =>
  Effect.flatMap(S3ecPeers.S3ecPeers, (p) => p.ruby([mode, bucket, key, "kms", cmk, file]))
const go = (mode: string, key: string, cmk: string, file: string) => Effect.flatMap(S3ecPeers.S3ecPeers, (p) => p.go([mode, bucket, key, cmk, file]))

/** Audit entries of the service for one key. */
const auditOf = (keyId: string) =>
  Effect.map(Endpoints, (e) =>
    fs.readFileSync(e.kms.auditLog, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>).filter((x) => x["keyId"] === keyId))

layer(
  Layer.mergeAll(kmsLayer, s3Layer, peersLayer, S3EC.layerNodeSpool()).pipe(Layer.provideMerge(endpointsLayer), Layer.provideMerge(MotoServer.layer())),
  { timeout: "240 seconds", excludeTestServices: true }
)("S3 Encryption Clients (Go, Ruby) with kms+context through the KMS service", (it) => {
  const setup = Effect.gen(function*() {
    const store = yield* S3ObjectStore.S3ObjectStore
    const aws = yield* AwsKms.AwsKms
    yield* Effect.ignore(S3Buckets.createBucket(store.client, bucket))
    const key = yield* Effect.promise(() => aws.client.send(new CreateKeyCommand({ Description: "objcrypt s3ec interop" })))
    return { store, cmk: key.KeyMetadata!.KeyId!, kms: yield* Kms, peers: yield* S3ecPeers.S3ecPeers }
  })

  it.effect("Go s3crypto V2 ↔ objcrypt: metadata and instruction file; the data keys come from the service", () =>
    Effect.gen(function*() {
      const { cmk, kms, peers, store } = yield* setup
      const materials: S3EC.Materials = { kms, kmsKeyId: cmk }
      for (const mode of ["put", "put-instruction"]) {
        const pt = crypto.randomBytes(200_000)
        const key = `go/${mode}.bin`
        yield* go(mode, key, cmk, peers.file(pt))
        const summary = yield* S3EC.readEnvelope(store, key)
        assert.deepStrictEqual([summary.version, summary.wrapAlgorithm], ["V2", "kms+context"])
        const got = yield* S3EC.getBytes(store, key, { materials, commitmentPolicy: ALLOW })
        assert.isTrue(Buffer.from(got).equals(pt), `objcrypt reads Go's ${mode}`)
        const out = path.join(peers.directory, `go-self-${mode}`)
        yield* go("get", key, cmk, out)
        assert.isTrue(fs.readFileSync(out).equals(pt), `Go reads its own ${mode}`)
      }
      for (const instructionFile of [false, true]) {
        const pt = crypto.randomBytes(100_001)
        const key = `objcrypt-for-go/${instructionFile}.bin`
        yield* S3EC.put(store, key, Stream.succeed(pt), { wrapping: S3EC.kmsContext(kms, cmk), commitmentPolicy: V2, instructionFile, contentLength: pt.length })
        const out = path.join(peers.directory, `go-out-${instructionFile}`)
        yield* go("get", key, cmk, out)
        assert.isTrue(fs.readFileSync(out).equals(pt), `Go reads objcrypt's (instruction file: ${instructionFile})`)
      }
      const entries = yield* auditOf(cmk)
      const ops = entries.map((e) => `${e["operation"]}:${e["principal"]}`)
      assert.isAtLeast(ops.filter((o) => o === "kms.GenerateDataKey:s3ec-peer").length, 2, "Go's data keys came from the service")
      assert.isAtLeast(ops.filter((o) => o === "kms.Decrypt:s3ec-peer").length, 4, "Go unwrapped through the service")
      assert.isTrue(entries.some((e) => (e["context"] as Record<string, string> | undefined)?.["aws:x-amz-cek-alg"] === "AES/GCM/NoPadding"))
    }), { timeout: 300_000 })

  it.effect("Ruby EncryptionV2 ↔ objcrypt: metadata and instruction file", () =>
    Effect.gen(function*() {
      const { cmk, kms, peers, store } = yield* setup
      const materials: S3EC.Materials = { kms, kmsKeyId: cmk }
      for (const mode of ["put", "put-instruction"]) {
        const pt = crypto.randomBytes(70_001)
        const key = `ruby/${mode}.bin`
        yield* ruby(mode, key, cmk, peers.file(pt))
        const got = yield* S3EC.getBytes(store, key, { materials, commitmentPolicy: ALLOW })
        assert.isTrue(Buffer.from(got).equals(pt), `objcrypt reads Ruby's ${mode}`)
      }
      for (const instructionFile of [false, true]) {
        const pt = crypto.randomBytes(65_543)
        const key = `objcrypt-for-ruby/${instructionFile}.bin`
        yield* S3EC.put(store, key, Stream.succeed(pt), { wrapping: S3EC.kmsContext(kms, cmk), commitmentPolicy: V2, instructionFile, contentLength: pt.length })
        const out = path.join(peers.directory, `ruby-out-${instructionFile}`)
        yield* ruby("get", key, cmk, out)
        assert.isTrue(fs.readFileSync(out).equals(pt), `Ruby reads objcrypt's (instruction file: ${instructionFile})`)
      }
      const ops = (yield* auditOf(cmk)).map((e) => `${e["operation"]}:${e["principal"]}:${e["outcome"]}`)
      assert.isAtLeast(ops.filter((o) => o === "kms.GenerateDataKey:s3ec-peer:success").length, 2)
      assert.isAtLeast(ops.filter((o) => o === "kms.Decrypt:s3ec-peer:success").length, 2)
    }), { timeout: 300_000 })

  it.effect("the peers are refused when the key is disabled or pending deletion", () =>
    Effect.gen(function*() {
      const { cmk, peers } = yield* setup
      const aws = yield* AwsKms.AwsKms
      const pt = crypto.randomBytes(1000)
      yield* go("put", "refused/go.bin", cmk, peers.file(pt))
      yield* ruby("put", "refused/ruby.bin", cmk, peers.file(pt))
      yield* Effect.promise(() => aws.client.send(new DisableKeyCommand({ KeyId: cmk })))
      const g = yield* Effect.flip(go("get", "refused/go.bin", cmk, path.join(peers.directory, "x1")))
      assert.match(g.message, /DisabledException/)
      const r = yield* Effect.flip(ruby("get", "refused/ruby.bin", cmk, path.join(peers.directory, "x2")))
      assert.match(r.message, /DisabledException|disabled/i)
      yield* Effect.promise(() => aws.client.send(new EnableKeyCommand({ KeyId: cmk })))
      yield* Effect.promise(() => aws.client.send(new ScheduleKeyDeletionCommand({ KeyId: cmk, PendingWindowInDays: 7 })))
      const g2 = yield* Effect.flip(go("get", "refused/go.bin", cmk, path.join(peers.directory, "x3")))
      assert.match(g2.message, /KMSInvalidStateException/)
      const r2 = yield* Effect.flip(ruby("put", "refused/ruby2.bin", cmk, peers.file(pt)))
      assert.match(r2.message, /KMSInvalidStateException|pending deletion/i)
    }), { timeout: 300_000 })
})
