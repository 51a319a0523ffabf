/**
 * Cross-checks of objcrypt's S3 Encryption Client format with AWS's own clients from Debian:
 * the Go SDK v1 `s3crypto` V2 client (kms+context) and Ruby's `Aws::S3::EncryptionV2::Client`
 * (kms+context, AES/GCM, RSA-OAEP-SHA1), against moto_server (S3 + KMS) on 127.0.0.1. Objects
 * they write are read by objcrypt and objects objcrypt writes — single PUTs and multipart
 * uploads — are read by them, with the content metadata in object metadata and in instruction
 * files. Ruby's legacy `Aws::S3::Encryption::Client` (V1) writes the legacy wraps objcrypt reads
 * behind its opt-ins. The programs live in tools/test-kit/interop/s3ec/.
 */
import { CreateKeyCommand } from "@aws-sdk/client-kms"
import { assert, layer } from "@effect/vitest"
import { Kms } from "@objcrypt/core/Kms"
import * as S3EC from "@objcrypt/core/S3EncryptionClient"
import * as MotoServer from "@objcrypt/test-kit/MotoServer"
import * as S3ecPeers from "@objcrypt/test-kit/S3ecPeers"
import { Effect, Layer, Redacted, Stream } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as AwsKms from "../src/AwsKms.js"
import * as S3Buckets from "../src/S3Buckets.js"
import * as S3ObjectStore from "../src/S3ObjectStore.js"

const bucket = `objcrypt-s3ec-${crypto.randomBytes(4).toString("hex")}`
const kmsLayer = Layer.unwrapEffect(Effect.map(MotoServer.MotoServer, (m) => AwsKms.layer(MotoServer.clientSettings(m))))
const s3Layer = Layer.unwrapEffect(Effect.map(MotoServer.MotoServer, (m) => S3ObjectStore.layer({ bucket, ...MotoServer.s3Settings(m) })))

const aesKey = crypto.randomBytes(32)
const rsa = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey
const ALLOW: S3EC.CommitmentPolicy = "RequireEncryptAllowDecrypt"
/** Each test starts AWS's clients several times (Ruby loads the whole SDK each time): minutes on a loaded machine. */
const TIMEOUT = 600_000
const V2: S3EC.CommitmentPolicy = "ForbidEncryptAllowDecrypt"

const peersLayer = Layer.unwrapEffect(Effect.map(MotoServer.MotoServer, (m) => S3ecPeers.layer({ endpoint: m.endpoint, region: m.region })))

/** Runs one of AWS's clients; its failure fails the test with its stderr. */
const ruby = (mode: string, key: string, wrap: string, keyArg: string, file: string) =>
  Effect.flatMap(S3ecPeers.S3ecPeers, (p) => p.ruby([mode, bucket, key, wrap, keyArg, file]))
const go = (mode: string, key: string, cmk: string, file: string) => Effect.flatMap(S3ecPeers.S3ecPeers, (p) => p.go([mode, bucket, key, cmk, file]))

layer(Layer.mergeAll(kmsLayer, s3Layer, peersLayer, S3EC.layerNodeSpool()).pipe(Layer.provideMerge(MotoServer.layer())), { timeout: "240 seconds", excludeTestServices: true })(
  "S3 Encryption Client interop (moto_server)",
  (it) => {
    const setup = Effect.gen(function*() {
      const store = yield* S3ObjectStore.S3ObjectStore
      const aws = yield* AwsKms.AwsKms
      yield* Effect.ignore(S3Buckets.createBucket(store.client, bucket))
      const key = yield* Effect.promise(() => aws.client.send(new CreateKeyCommand({ Description: "objcrypt s3ec interop" })))
      const kms = yield* Kms
      const peers = yield* S3ecPeers.S3ecPeers
      const rsaPem = peers.file(rsa.export({ format: "pem", type: "pkcs1" }))
      const cmk = key.KeyMetadata!.KeyId!
      /** The KMS key, the AES key and the RSA key. */
      const materials: S3EC.Materials = {
        kms,
        kmsKeyId: cmk,
        keys: [
          { _tag: "Aes", keyId: "aes", material: Redacted.make(aesKey) },
          { _tag: "Private", keyId: "rsa", privateKey: Redacted.make(rsa) }
        ]
      }
      return { store, cmk, kms, peers, rsaPem, materials }
    })

    it.effect("Go s3crypto V2 (kms+context) ↔ objcrypt, metadata and instruction file", () =>
      Effect.gen(function*() {
        const { store, cmk, kms, peers } = yield* setup
        const materials: S3EC.Materials = { kms, kmsKeyId: cmk }
        for (const mode of ["put", "put-instruction"]) {
          const pt = crypto.randomBytes(300_000)
          const key = `go/${mode}.bin`
          yield* go(mode, key, cmk, peers.file(pt))
          const summary = yield* S3EC.readEnvelope(store, key)
          assert.strictEqual(summary.version, "V2")
          assert.strictEqual(summary.wrapAlgorithm, "kms+context")
          assert.strictEqual(summary.location, mode === "put" ? "metadata" : "instruction")
          const got = yield* S3EC.getBytes(store, key, { materials, commitmentPolicy: ALLOW })
          assert.isTrue(Buffer.from(got).equals(pt), `objcrypt reads Go's ${mode}`)
        }
        for (const instructionFile of [false, true]) {
          const pt = crypto.randomBytes(123_457)
          const key = `objcrypt-for-go/${instructionFile}.bin`
          yield* S3EC.put(store, key, Stream.succeed(pt), {
            wrapping: S3EC.kmsContext(kms, cmk),
            commitmentPolicy: V2,
            instructionFile,
            contentLength: pt.length
          })
          const out = path.join(peers.directory, `go-out-${instructionFile}`)
          yield* go("get", key, cmk, out)
          assert.isTrue(fs.readFileSync(out).equals(pt), `Go reads objcrypt's (instruction file: ${instructionFile})`)
        }
      }), TIMEOUT)

    it.effect("Ruby EncryptionV2 (kms+context, AES/GCM, RSA-OAEP-SHA1) ↔ objcrypt, metadata and instruction file", () =>
      Effect.gen(function*() {
        const { store, cmk, kms, peers, rsaPem, materials } = yield* setup
        const wraps = [
          ["kms", cmk, S3EC.kmsContext(kms, cmk)],
          ["aes", aesKey.toString("hex"), S3EC.aesGcm({ material: Redacted.make(aesKey) })],
          ["rsa", rsaPem, S3EC.rsaOaepSha1({ publicKey: crypto.createPublicKey(rsa) })]
        ] as const
        for (const [wrap, keyArg, wrapping] of wraps) {
          for (const mode of ["put", "put-instruction"]) {
            const pt = crypto.randomBytes(70_001)
            const key = `ruby/${wrap}/${mode}.bin`
            yield* ruby(mode, key, wrap, keyArg, peers.file(pt))
            const summary = yield* S3EC.readEnvelope(store, key)
            assert.strictEqual(summary.version, "V2")
            assert.strictEqual(summary.location, mode === "put" ? "metadata" : "instruction")
            const got = yield* S3EC.getBytes(store, key, { materials, commitmentPolicy: ALLOW })
            assert.isTrue(Buffer.from(got).equals(pt), `objcrypt reads Ruby's ${wrap} ${mode}`)
          }
          for (const instructionFile of [false, true]) {
            const pt = crypto.randomBytes(65_536 + 7)
            const key = `objcrypt-for-ruby/${wrap}/${instructionFile}.bin`
            yield* S3EC.put(store, key, Stream.succeed(pt), { wrapping, commitmentPolicy: V2, instructionFile, contentLength: pt.length })
            const out = path.join(peers.directory, `ruby-out-${wrap}-${instructionFile}`)
            yield* ruby("get", key, wrap, keyArg, out)
            assert.isTrue(fs.readFileSync(out).equals(pt), `Ruby reads objcrypt's ${wrap} (instruction file: ${instructionFile})`)
          }
        }
      }), TIMEOUT)

    it.effect("Ruby reads an instruction file objcrypt re-encrypted from AES/GCM to RSA-OAEP-SHA1", () =>
      Effect.gen(function*() {
        const { store, peers, rsaPem } = yield* setup
        const pt = crypto.randomBytes(10_000)
        const key = "rotation/object.bin"
        const aes = { keys: [{ _tag: "Aes" as const, keyId: "aes", material: Redacted.make(aesKey) }] }
        yield* ruby("put-instruction", key, "aes", aesKey.toString("hex"), peers.file(pt))
        yield* S3EC.reEncryptInstructionFile(store, key, {
          materials: aes,
          commitmentPolicy: ALLOW,
          wrapping: S3EC.rsaOaepSha1({ publicKey: crypto.createPublicKey(rsa) })
        })
        const out = path.join(peers.directory, "rotated-out")
        yield* ruby("get", key, "rsa", rsaPem, out)
        assert.isTrue(fs.readFileSync(out).equals(pt))
      }), TIMEOUT)

    it.effect("Go s3crypto V2 and Ruby EncryptionV2 read V2 objects objcrypt uploaded in parts (metadata and instruction file)", () =>
      Effect.gen(function*() {
        const { store, cmk, kms, peers, rsaPem } = yield* setup
        const MiB = 1024 * 1024
        const readers = [
          ["go", "kms", false, S3EC.kmsContext(kms, cmk)],
          ["go", "kms", true, S3EC.kmsContext(kms, cmk)],
          ["ruby", "kms", false, S3EC.kmsContext(kms, cmk)],
          ["ruby", "aes", true, S3EC.aesGcm({ material: Redacted.make(aesKey) })],
          ["ruby", "rsa", false, S3EC.rsaOaepSha1({ publicKey: crypto.createPublicKey(rsa) })]
        ] as const
        for (const [reader, wrap, instructionFile, wrapping] of readers) {
          // Unknown length, 5 MiB parts (moto's minimum): three parts, the last one short.
          const pt = crypto.randomBytes(2 * 5 * MiB + 4321)
          const key = `multipart/${reader}-${wrap}-${instructionFile}.bin`
          const body = Stream.fromIterable(Array.from({ length: Math.ceil(pt.length / 65_536) }, (_, i) => pt.subarray(i * 65_536, (i + 1) * 65_536)))
          const r = yield* S3EC.put(store, key, body, { wrapping, commitmentPolicy: V2, instructionFile, partSize: 5 * MiB, concurrency: 2 })
          assert.strictEqual(r.parts, 3)
          const info = yield* store.head(key)
          assert.match(info.etag, /-3"?$/, "stored by a multipart upload")
          assert.strictEqual(info.size, pt.length + 16)
          const out = path.join(peers.directory, `mp-out-${reader}-${wrap}-${instructionFile}`)
          if (reader === "go") yield* go("get", key, cmk, out)
          else yield* ruby("get", key, wrap, wrap === "kms" ? cmk : wrap === "aes" ? aesKey.toString("hex") : rsaPem, out)
          assert.isTrue(fs.readFileSync(out).equals(pt), `${reader} reads objcrypt's multipart ${wrap} object (instruction file: ${instructionFile})`)
        }
      }), TIMEOUT)

    it.effect("objcrypt reads what Ruby's legacy V1 Encryption::Client writes (RSA PKCS#1 v1.5, AES/ECB, kms; AES-CBC content) only with the legacy opt-ins", () =>
      Effect.gen(function*() {
        const { store, cmk, peers, rsaPem, materials } = yield* setup
        const legacy = { materials, commitmentPolicy: ALLOW, enableLegacyUnauthenticatedModes: true, enableLegacyWrappingAlgorithms: true } as const
        const cells = [["rsa", rsaPem, "RSA", "V1"], ["aes", aesKey.toString("hex"), "AES", "V1"], ["kms", cmk, "kms", "V2"]] as const
        for (const [wrap, keyArg, wrapAlgorithm, version] of cells) {
          for (const mode of ["put-v1", "put-v1-instruction"]) {
            const pt = crypto.randomBytes(100_003)
            const key = `ruby-v1/${wrap}/${mode}.bin`
            yield* ruby(mode, key, wrap, keyArg, peers.file(pt))
            const summary = yield* S3EC.readEnvelope(store, key)
            assert.strictEqual(summary.wrapAlgorithm, wrapAlgorithm)
            assert.strictEqual(summary.version, version)
            assert.strictEqual(summary.contentAlgorithm, "AES/CBC/PKCS5Padding")
            assert.strictEqual(summary.location, mode === "put-v1" ? "metadata" : "instruction")
            const refused = yield* Effect.flip(S3EC.getBytes(store, key, { ...legacy, enableLegacyUnauthenticatedModes: false }))
            assert.strictEqual((refused as { reason: string }).reason, "UnknownFormat")
            const got = yield* S3EC.getBytes(store, key, legacy)
            assert.isTrue(Buffer.from(got).equals(pt), `objcrypt reads Ruby V1's ${wrap} ${mode}`)
          }
        }
      }), TIMEOUT)
  }
)
