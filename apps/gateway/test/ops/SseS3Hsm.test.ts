/**
 * SSE-S3 with the master key in a PKCS#11 token (SoftHSM2 from Debian, a throwaway token in a
 * temporary directory): the key is created once by `--create-sse-s3-key`, non-extractable; every
 * SSE-S3 data key is wrapped inside the token; the SSE-C check key comes from the token too; objects
 * written before the switch (and before a rotation of the key-store master) stay readable; the KMS
 * listener on the same token runs in the same process. A missing SoftHSM2 fails the run.
 */
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3ServiceException,
  UploadPartCommand
} from "@aws-sdk/client-s3"
import type { S3Client } from "@aws-sdk/client-s3"
import { CreateAliasCommand, CreateKeyCommand, DecryptCommand, GenerateDataKeyCommand, KMSClient } from "@aws-sdk/client-kms"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as ClientSide from "@objcrypt/core/ClientSide"
import * as FsObjectStore from "@objcrypt/driver-fs/FsObjectStore"
import * as LocalKeyStore from "@objcrypt/keys/LocalKeyStore"
import * as GatewayConfig from "../../src/GatewayConfig.js"
import { Effect, Redacted } from "effect"
import * as child from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { APP, client, decode, filesUnder, freePort, markedPayload, NODE, PASSPHRASE, rawConfig, run, spawnGateway, start, stopChild, tempDir, users } from "./harness.js"
import type { Gateway } from "./harness.js"

const LIBRARY = "/usr/lib/softhsm/libsofthsm2.so"
const LABEL = "objcrypt-gateway-sse-s3"
const PIN = "24682468"
const tokenDir = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-gw-hsm-"))
const hsm = { library: LIBRARY, tokenLabel: "objcrypt-gw", pin: { env: "GW_HSM_PIN" } }
/** A gateway config on `dir` that takes SSE-C over plain HTTP (loopback). */
const config = (dir: string, extra?: Record<string, unknown>) => rawConfig(dir, { allowPlainHttpSseC: true, ...extra })

beforeAll(() => {
  const conf = path.join(tokenDir, "softhsm2.conf")
  fs.mkdirSync(path.join(tokenDir, "tokens"))
  fs.writeFileSync(conf, `directories.tokendir = ${path.join(tokenDir, "tokens")}\nobjectstore.backend = file\nlog.level = ERROR\n`)
  // SoftHSM reads SOFTHSM2_CONF at C_Initialize; each test file runs in its own process, and the
  // gateways spawned here inherit it.
  process.env["SOFTHSM2_CONF"] = conf
  process.env["GW_HSM_PIN"] = PIN
  const init = child.spawnSync("softhsm2-util", ["--init-token", "--free", "--label", "objcrypt-gw", "--pin", PIN, "--so-pin", "13571357"], {
    encoding: "utf8"
  })
  assert.strictEqual(init.status, 0, `softhsm2-util failed: ${init.error?.message ?? init.stderr}`)
})
afterAll(() => fs.rmSync(tokenDir, { recursive: true, force: true }))

const createKey = (dir: string, raw: Record<string, unknown>) => {
  const file = path.join(dir, "create.json")
  fs.writeFileSync(file, JSON.stringify(raw))
  return run(NODE, ["--conditions=@objcrypt/source", "--import", path.join(APP, "test/ops/hooks.mjs"), path.join(APP, "src/bin.ts"), "--config", file, "--create-sse-s3-key"])
}

const text = async (s3: S3Client, bucket: string, key: string, extra?: Record<string, unknown>) =>
  Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, ...extra }))).Body!.transformToByteArray())

const status = async (f: () => Promise<unknown>): Promise<number> => {
  try {
    await f()
    return 200
  } catch (e) {
    if (e instanceof S3ServiceException) return e.$metadata.httpStatusCode ?? 0
    throw e
  }
}

const ssec = (key: Buffer) => ({
  SSECustomerAlgorithm: "AES256",
  SSECustomerKey: key.toString("base64"),
  SSECustomerKeyMD5: crypto.createHash("md5").update(key).digest("base64")
})

/** The bucket's directory in the fs backend, read as the backend store it is. */
const backend = (dir: string, bucket: string) =>
  FsObjectStore.make({ root: path.join(dir, "data", bucket), bucket, fsync: false }).pipe(Effect.orDie)

const keyStoreNames = (dir: string) =>
  Effect.scoped(Effect.gen(function*() {
    const store = yield* LocalKeyStore.make({ path: path.join(dir, "keys.ocks"), passphrase: Redacted.make(PASSPHRASE), allowLowCost: true })
    return (yield* store.manager.list()).map((k) => k.name)
  })).pipe(Effect.orDie)

describe("SSE-S3 master key in a PKCS#11 token", () => {
  const dir = tempDir("hsm")
  const raw = config(dir, { sseS3Hsm: hsm })
  let gw: Gateway | undefined
  afterAll(() => gw?.close())

  it("the key is created once by --create-sse-s3-key, non-extractable; without it the gateway does not start and says how to make it", async () => {
    const refused = await start(decode(raw)).then(() => "started", (e: unknown) => String(e))
    assert.include(refused, `the SSE-S3 master key "${LABEL}" is not in the PKCS#11 token`)
    assert.include(refused, "--create-sse-s3-key")
    assert.notInclude(refused, PIN)

    const created = await createKey(dir, raw)
    assert.strictEqual(created.code, 0, created.stderr)
    const out = JSON.parse(created.stdout) as { created: string; id: string; extractable: boolean; sensitive: boolean }
    assert.deepStrictEqual({ ...out, id: out.id.length }, { created: LABEL, id: 32, extractable: false, sensitive: true })
    assert.notInclude(created.stdout + created.stderr, PIN)

    const again = await createKey(dir, raw)
    assert.notStrictEqual(again.code, 0)
    assert.include(again.stdout + again.stderr, "a key with this label exists")

    const noSection = await createKey(dir, config(dir))
    assert.notStrictEqual(noSection.code, 0)
    assert.include(noSection.stdout + noSection.stderr, "needs an sseS3Hsm section")

    const badPin = await createKey(dir, config(dir, { sseS3Hsm: { ...hsm, pin: { env: "GW_HSM_WRONG_PIN" } } }))
    assert.notStrictEqual(badPin.code, 0)
  }, 60_000)

  it("SSE-S3 data keys are wrapped in the token (put, multipart, range, copy), the key store holds no SSE-S3 master, and no plaintext reaches the backend", async () => {
    gw = await start(decode(raw))
    const s3 = client(gw.endpoint)
    await s3.send(new CreateBucketCommand({ Bucket: "hsm" }))
    const small = markedPayload("HSM-PLAINTEXT-MARKER", 300_000)
    await s3.send(new PutObjectCommand({ Bucket: "hsm", Key: "a.bin", Body: small }))
    const big = markedPayload("HSM-MULTIPART-MARKER", 11 * 1024 * 1024 + 17)
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: "hsm", Key: "mp.bin", ServerSideEncryption: "AES256" }))
    const parts = []
    for (let n = 1, off = 0; off < big.length; n++, off += 5 * 1024 * 1024) {
      const body = big.subarray(off, off + 5 * 1024 * 1024)
      parts.push({ PartNumber: n, ETag: (await s3.send(new UploadPartCommand({ Bucket: "hsm", Key: "mp.bin", UploadId, PartNumber: n, Body: body }))).ETag! })
    }
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: "hsm", Key: "mp.bin", UploadId, MultipartUpload: { Parts: parts } }))
    await s3.send(new CopyObjectCommand({ Bucket: "hsm", Key: "copy.bin", CopySource: "hsm/a.bin" }))

    assert.isTrue((await text(s3, "hsm", "a.bin")).equals(small))
    assert.isTrue((await text(s3, "hsm", "mp.bin")).equals(big))
    assert.isTrue((await text(s3, "hsm", "mp.bin", { Range: "bytes=5242000-5243999" })).equals(big.subarray(5242000, 5244000)))
    assert.isTrue((await text(s3, "hsm", "copy.bin")).equals(small))
    assert.strictEqual((await s3.send(new HeadObjectCommand({ Bucket: "hsm", Key: "a.bin" }))).ServerSideEncryption, "AES256")

    const entries = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const store = yield* backend(dir, "hsm")
      return [
        (yield* ClientSide.readEnvelope(store, "a.bin")).keys,
        (yield* ClientSide.readEnvelope(store, "copy.bin")).keys
      ]
    })))
    for (const keys of entries) assert.deepStrictEqual(keys, [{ type: "kms", keyId: LABEL, version: 0 }])
    assert.notInclude(await Effect.runPromise(keyStoreNames(dir)), "objcrypt-gateway-sse-s3")
    for (const f of filesUnder(path.join(dir, "data"))) {
      const bytes = fs.readFileSync(f)
      assert.strictEqual(bytes.indexOf("HSM-PLAINTEXT-MARKER"), -1, f)
      assert.strictEqual(bytes.indexOf("HSM-MULTIPART-MARKER"), -1, f)
    }
  }, 120_000)

  it("SSE-C keys are checked with a key the token derives; the record names it; a gateway without the token cannot open either kind", async () => {
    const s3 = client(gw!.endpoint)
    const key = crypto.randomBytes(32)
    await s3.send(new PutObjectCommand({ Bucket: "hsm", Key: "c.bin", Body: "customer", ...ssec(key) }))
    assert.strictEqual((await text(s3, "hsm", "c.bin", ssec(key))).toString(), "customer")
    assert.strictEqual(await status(() => text(s3, "hsm", "c.bin", ssec(crypto.randomBytes(32)))), 403)
    const info = await Effect.runPromise(Effect.scoped(Effect.flatMap(backend(dir, "hsm"), (store) => store.head("c.bin"))))
    assert.match(info.metadata["gw-ssec"]!, new RegExp(`^[\\w-]{22}\\.[\\w-]{43}\\.p11:${LABEL}$`))

    // The same backend and key store, no token: nothing written under the token opens.
    const dir2 = tempDir("hsm-none")
    const without = await start(decode(config(dir2, {
      backend: { type: "fs", root: path.join(dir, "data"), fsync: false },
      keyStore: { path: path.join(dir, "keys.ocks"), passphrase: { env: "GW_OPS_PASSPHRASE" } }
    })))
    try {
      const other = client(without.endpoint)
      // As for an SSE-KMS object whose KMS key cannot be used: 403 AccessDenied.
      assert.strictEqual(await status(() => text(other, "hsm", "a.bin")), 403)
      // The key check itself cannot be made: the gateway's fault, not the caller's.
      assert.strictEqual(await status(() => text(other, "hsm", "c.bin", ssec(key))), 500)
    } finally {
      await without.close()
    }
  }, 60_000)
})

describe("switching to the token, and rotating the key-store master", () => {
  it("objects written under the key store (before and after a rotation, and SSE-C records from before records named their key) stay readable; new ones go to the token", async () => {
    const dir = tempDir("hsm-switch")
    const plain = config(dir)
    const k1 = crypto.randomBytes(32)
    let gw = await start(decode(plain))
    let s3 = client(gw.endpoint)
    await s3.send(new CreateBucketCommand({ Bucket: "mig" }))
    await s3.send(new PutObjectCommand({ Bucket: "mig", Key: "old-s3", Body: "old sse-s3" }))
    await s3.send(new PutObjectCommand({ Bucket: "mig", Key: "old-c", Body: "old sse-c", ...ssec(k1) }))
    await s3.send(new PutObjectCommand({ Bucket: "mig", Key: "legacy-c", Body: "legacy sse-c", ...ssec(k1) }))
    await gw.close()

    // A record as written before records named their key: `<salt>.<mac>`.
    const { record, id } = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const store = yield* backend(dir, "mig")
      const info = yield* store.head("legacy-c")
      const [salt, mac, ref] = info.metadata["gw-ssec"]!.split(".")
      yield* store.copy("legacy-c", "legacy-c", { metadata: { ...info.metadata, "gw-ssec": `${salt}.${mac}` } })
      return { record: ref!, id: (yield* store.head("old-c")).metadata["gw-ssec"]! }
    })))
    assert.match(record, /^ks:[0-9a-f-]{36}:1$/)
    assert.isTrue(id.endsWith(record))

    // Rotating the key-store master changed the SSE-C check key for every object written before.
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const store = yield* LocalKeyStore.make({ path: path.join(dir, "keys.ocks"), passphrase: Redacted.make(PASSPHRASE), allowLowCost: true })
      yield* store.manager.rotate("objcrypt-gateway-sse-s3")
    })).pipe(Effect.orDie))
    gw = await start(decode(plain))
    s3 = client(gw.endpoint)
    assert.strictEqual((await text(s3, "mig", "old-c", ssec(k1))).toString(), "old sse-c")
    assert.strictEqual((await text(s3, "mig", "legacy-c", ssec(k1))).toString(), "legacy sse-c")
    assert.strictEqual(await status(() => text(s3, "mig", "legacy-c", ssec(crypto.randomBytes(32)))), 403)
    await s3.send(new PutObjectCommand({ Bucket: "mig", Key: "v2-c", Body: "v2 sse-c", ...ssec(k1) }))
    const v2 = await Effect.runPromise(Effect.scoped(Effect.flatMap(backend(dir, "mig"), (store) => store.head("v2-c"))))
    assert.match(v2.metadata["gw-ssec"]!, /:2$/)
    await gw.close()

    // Now the token (its key made by the first block, or here when this block runs alone).
    const withToken = config(dir, { sseS3Hsm: hsm })
    await createKey(dir, withToken)
    gw = await start(decode(withToken))
    s3 = client(gw.endpoint)
    try {
      assert.strictEqual((await text(s3, "mig", "old-s3")).toString(), "old sse-s3")
      for (const [key, body] of [["old-c", "old sse-c"], ["legacy-c", "legacy sse-c"], ["v2-c", "v2 sse-c"]] as const) {
        assert.strictEqual((await text(s3, "mig", key, ssec(k1))).toString(), body)
        assert.strictEqual(await status(() => text(s3, "mig", key, ssec(crypto.randomBytes(32)))), 403)
      }
      await s3.send(new PutObjectCommand({ Bucket: "mig", Key: "new-s3", Body: "new sse-s3" }))
      const keys = await Effect.runPromise(Effect.scoped(Effect.flatMap(backend(dir, "mig"), (store) => ClientSide.readEnvelope(store, "new-s3"))))
      assert.deepStrictEqual(keys.keys, [{ type: "kms", keyId: LABEL, version: 0 }])
    } finally {
      await gw.close()
    }
  }, 120_000)
})

describe("one process, one token, two users of it, no key store", () => {
  it("the config refuses a gateway without a key store unless SSE-S3 is in a token and SSE-KMS in a remote KMS", () => {
    const dir = tempDir("hsm-nostore")
    const { keyStore: _, ...raw } = config(dir, { sseS3Hsm: hsm })
    const refused = Effect.runSync(Effect.flip(GatewayConfig.decode(raw)))
    assert.include(refused.message, "keyStore is required unless both sseS3Hsm")
  })

  it("the KMS listener over the token and the SSE-S3 keys in it run in one gateway process that has no key store at all", async () => {
    const dir = tempDir("hsm-kms")
    const kmsPort = await freePort()
    const { keyStore: _, ...raw } = config(dir, {
      sseS3Hsm: hsm,
      kmsService: {
        listen: { host: "127.0.0.1", port: kmsPort },
        backend: { type: "pkcs11", ...hsm },
        registry: path.join(dir, "kms-registry.json"),
        auditLog: path.join(dir, "kms-audit.jsonl"),
        grants: [{ accessKeyId: users.alice.id, keys: "*", operations: "*" }]
      },
      // SSE-KMS through this same process's KMS listener, whose keys are in the token too.
      sseKms: { endpoint: `http://127.0.0.1:${kmsPort}`, accessKeyId: users.alice.id, secretAccessKey: { env: "GW_OPS_ALICE" }, defaultKeyId: "alias/gateway" }
    })
    await createKey(dir, raw)
    const gw = await spawnGateway(dir, raw)
    const kms = new KMSClient({
      endpoint: `http://127.0.0.1:${kmsPort}`,
      region: "us-east-1",
      credentials: { accessKeyId: users.alice.id, secretAccessKey: users.alice.secret },
      maxAttempts: 1
    })
    try {
      const key = await kms.send(new CreateKeyCommand({}))
      await kms.send(new CreateAliasCommand({ AliasName: "alias/gateway", TargetKeyId: key.KeyMetadata!.KeyId! }))
      const dk = await kms.send(new GenerateDataKeyCommand({ KeyId: key.KeyMetadata!.KeyId!, KeySpec: "AES_256" }))
      const back = await kms.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob! }))
      assert.isTrue(Buffer.from(back.Plaintext!).equals(Buffer.from(dk.Plaintext!)))

      const s3 = client(gw.endpoint)
      await s3.send(new CreateBucketCommand({ Bucket: "both" }))
      const customer = crypto.randomBytes(32)
      await s3.send(new PutObjectCommand({ Bucket: "both", Key: "s3", Body: "through the token" }))
      await s3.send(new PutObjectCommand({ Bucket: "both", Key: "kms", Body: "through the KMS", ServerSideEncryption: "aws:kms" }))
      await s3.send(new PutObjectCommand({ Bucket: "both", Key: "c", Body: "customer key", ...ssec(customer) }))
      assert.strictEqual((await text(s3, "both", "s3")).toString(), "through the token")
      assert.strictEqual((await text(s3, "both", "kms")).toString(), "through the KMS")
      assert.strictEqual((await text(s3, "both", "c", ssec(customer))).toString(), "customer key")
      assert.strictEqual(await status(() => text(s3, "both", "c", ssec(crypto.randomBytes(32)))), 403)
      const head = await s3.send(new HeadObjectCommand({ Bucket: "both", Key: "kms" }))
      assert.strictEqual(head.ServerSideEncryption, "aws:kms")
      // The key's ARN, as S3 answers it, though the default was configured as an alias.
      assert.strictEqual(head.SSEKMSKeyId, key.KeyMetadata!.Arn)
      // No key store file anywhere: every key is in the token.
      assert.deepStrictEqual(filesUnder(dir).filter((f) => f.endsWith(".ocks")), [])
      assert.notInclude(gw.output(), PIN)
    } finally {
      kms.destroy()
      await stopChild(gw)
    }
  }, 120_000)
})
