/**
 * Azure client-side encryption v2 against Azurite, cross-checked with the official Azure Storage
 * Python SDK from Debian (`python3-azure-storage`, /usr/bin/python3): blobs it writes (A256KW and
 * RSA-OAEP, protocol 2.0 — the only v2 protocol that SDK version writes) are read by objcrypt,
 * and blobs objcrypt writes are read by it. Then ranged reads by region, protocol 2.1, and every
 * bad input as a typed error.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as Azurite from "@objcrypt/test-kit/Azurite"
import { Effect, ManagedRuntime, Option, Redacted, Stream } from "effect"
import * as cp from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as AzureBlobObjectStore from "../src/AzureBlobObjectStore.js"
import * as Cse from "../src/AzureClientSideEncryption.js"

const azurite = ManagedRuntime.make(Azurite.layer())
afterAll(() => azurite.dispose(), 60_000)

const PY = "/usr/bin/python3"
const SCRIPT = path.join(import.meta.dirname, "support", "azure_cse.py")
const MiB = 1024 * 1024

const aesKey = crypto.randomBytes(32)
const aes = Cse.aesKeyWrap("local:aes-1", Redacted.make(aesKey))
const rsa = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
const rsaKek = Cse.rsaOaep("local:rsa-1", rsa)
const resolve = Cse.resolverOf(aes, rsaKek)
type KekSpec = { kind: "A256KW"; keyId: string; key: string } | { kind: "RSA-OAEP"; keyId: string; privatePem: string }
const aesSpec: KekSpec = { kind: "A256KW", keyId: aes.keyId, key: aesKey.toString("base64") }
const rsaSpec: KekSpec = { kind: "RSA-OAEP", keyId: rsaKek.keyId, privatePem: rsa.privateKey.export({ type: "pkcs8", format: "pem" }).toString() }

const python = (action: "write" | "read", request: Record<string, unknown>) =>
  Effect.async<void, Error>((resume) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-pycse-"))
    const req = path.join(dir, "request.json")
    fs.writeFileSync(req, JSON.stringify(request), { mode: 0o600 })
    cp.execFile(PY, [SCRIPT, action, req], { timeout: 120_000 }, (err, _stdout, stderr) => {
      fs.rmSync(dir, { recursive: true, force: true })
      resume(err === null ? Effect.void : Effect.fail(new Error(`python ${action} failed: ${stderr.slice(-2000)}`)))
    })
  })

const setup = Effect.gen(function*() {
  const info = yield* Effect.promise(() => azurite.runPromise(Azurite.Azurite))
  const container = `cse-${crypto.randomBytes(5).toString("hex")}`
  const store = yield* AzureBlobObjectStore.make({
    container,
    accountUrl: info.blobEndpoint,
    credentials: { _tag: "SharedKey", accountName: info.accountName, accountKey: Redacted.make(info.accountKey) },
    blockSize: 1 * MiB
  })
  yield* Effect.orDie(AzureBlobObjectStore.createContainer(store.client))
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-cse-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(tmp, { recursive: true, force: true })))
  return { store, info, container, tmp }
})

const readPlain = (store: ObjectStore.ObjectStore["Type"], key: string, range?: ObjectStore.ByteRange) =>
  Effect.scoped(
    Effect.gen(function*() {
      const obj = yield* Cse.get(store, key, resolve, { range })
      return { info: obj.info, range: obj.range, bytes: Buffer.concat([...(yield* Stream.runCollect(obj.body))]) }
    })
  )

describe("Azure client-side encryption v2 (Azurite, Python SDK cross-check)", () => {
  for (const spec of [aesSpec, rsaSpec]) {
    it.scoped(`reads what the Python SDK writes (${spec.kind}, protocol 2.0)`, () =>
      Effect.gen(function*() {
        const { store, info, container, tmp } = yield* setup
        const body = crypto.randomBytes(9 * MiB + 123)
        const file = path.join(tmp, "in")
        fs.writeFileSync(file, body)
        yield* python("write", { connectionString: info.connectionString, container, blob: "py/blob", file, kek: spec, metadata: { origin: "python" } })
        const raw = yield* store.head("py/blob")
        assert.strictEqual(raw.size, Cse.encryptedLength(body.length), "3 regions of nonce+tag overhead")
        const data = yield* Cse.parseEncryptionData("py/blob", raw.metadata)
        assert.deepStrictEqual([data.protocol, data.algorithm, data.keyId, "dataLength" in data && data.dataLength], ["2.0", spec.kind, spec.keyId, 4 * MiB])
        const got = yield* readPlain(store, "py/blob")
        assert.isTrue(got.bytes.equals(body), "whole blob")
        assert.strictEqual(got.info.size, body.length)
        assert.deepStrictEqual({ ...got.info.metadata }, { origin: "python" })
        const across = yield* readPlain(store, "py/blob", ObjectStore.range.bounded(4 * MiB - 5, 4 * MiB + 4))
        assert.isTrue(across.bytes.equals(body.subarray(4 * MiB - 5, 4 * MiB + 5)), "range across a region boundary")
        const tail = yield* readPlain(store, "py/blob", ObjectStore.range.suffix(200))
        assert.isTrue(tail.bytes.equals(body.subarray(body.length - 200)), "suffix range")
        assert.deepStrictEqual(tail.range, { start: body.length - 200, end: body.length })
      }), 120_000)

    it.scoped(`the Python SDK reads what objcrypt writes (${spec.kind}, protocol 2.0)`, () =>
      Effect.gen(function*() {
        const { store, info, container, tmp } = yield* setup
        const body = crypto.randomBytes(8 * MiB + 7)
        const kek = spec.kind === "A256KW" ? aes : rsaKek
        yield* Cse.put(store, "js/blob", Stream.make(body.subarray(0, 1000), body.subarray(1000)), kek, { contentLength: body.length, metadata: { origin: "objcrypt" } })
        const file = path.join(tmp, "out")
        yield* python("read", { connectionString: info.connectionString, container, blob: "js/blob", file, kek: spec })
        assert.isTrue(fs.readFileSync(file).equals(body), "Python decrypts objcrypt's blob")
      }), 120_000)
  }

  it.scoped("the Python SDK reads an empty blob and a one-byte blob written by objcrypt", () =>
    Effect.gen(function*() {
      const { store, info, container, tmp } = yield* setup
      for (const body of [Buffer.alloc(0), Buffer.from([7])]) {
        yield* Cse.put(store, `js/small-${body.length}`, Stream.make(body), aes)
        const file = path.join(tmp, `small-${body.length}`)
        yield* python("read", { connectionString: info.connectionString, container, blob: `js/small-${body.length}`, file, kek: aesSpec })
        assert.isTrue(fs.readFileSync(file).equals(body))
        assert.isTrue((yield* readPlain(store, `js/small-${body.length}`)).bytes.equals(body))
      }
    }), 60_000)

  it.scoped("protocol 2.1 with small regions: round trip and ranged reads fetch only the covering regions", () =>
    Effect.gen(function*() {
      const { store } = yield* setup
      const body = crypto.randomBytes(100_000)
      yield* Cse.put(store, "v21", Stream.make(body), aes, { protocol: "2.1", regionDataLength: 4096 })
      const data = yield* Cse.parseEncryptionData("v21", (yield* store.head("v21")).metadata)
      assert.deepStrictEqual([data.protocol, "dataLength" in data && data.dataLength], ["2.1", 4096])
      assert.isTrue((yield* readPlain(store, "v21")).bytes.equals(body))
      for (const [s, e] of [[0, 0], [4095, 4096], [50_000, 60_000], [99_999, 99_999]] as const) {
        const r = yield* readPlain(store, "v21", ObjectStore.range.bounded(s, e))
        assert.isTrue(r.bytes.equals(body.subarray(s, e + 1)), `${s}-${e}`)
      }
      const refused = yield* Effect.flip(Cse.put(store, "bad", Stream.make(body), aes, { protocol: "2.0", regionDataLength: 4096 }))
      assert.strictEqual(refused._tag, "EncryptError")
    }), 60_000)

  it.scoped("bad input: wrong key, tampered region, truncated blob, missing or malformed metadata, unknown protocol, downgrade", () =>
    Effect.gen(function*() {
      const { store } = yield* setup
      const body = crypto.randomBytes(3 * 4096 + 10)
      const put = (key: string) => Cse.put(store, key, Stream.make(body), aes, { protocol: "2.1", regionDataLength: 4096 })
      yield* put("good")
      const meta = (yield* store.head("good")).metadata
      const raw = (yield* ObjectStore.readAll(store, "good")).bytes
      const reason = (key: string, resolver: Cse.KeyResolver = resolve) =>
        Effect.map(Effect.flip(Effect.scoped(Effect.flatMap(Cse.get(store, key, resolver), (o) => Stream.runDrain(o.body)))), (e) => [e._tag, (e as { reason?: string }).reason])
      const wrongAes = Cse.aesKeyWrap(aes.keyId, Redacted.make(crypto.randomBytes(32)))
      assert.deepStrictEqual(yield* reason("good", Cse.resolverOf(wrongAes)), ["DecryptError", "WrongKey"])
      assert.deepStrictEqual(yield* reason("good", () => Effect.succeed(Option.none())), ["DecryptError", "NoUsableKey"])
      const pubOnly = Cse.rsaOaep(rsaKek.keyId, { publicKey: rsa.publicKey })
      yield* Cse.put(store, "rsa", Stream.make(body), pubOnly)
      assert.deepStrictEqual(yield* reason("rsa", Cse.resolverOf(pubOnly)), ["DecryptError", "NoUsableKey"])

      const tampered = Buffer.from(raw)
      tampered[4096 + 28 + 100]! ^= 1
      yield* store.put("tampered", Stream.make(tampered), { metadata: meta })
      assert.deepStrictEqual(yield* reason("tampered"), ["DecryptError", "Tampered"])
      // No plaintext of the failing region is released: only the first region comes out.
      const released = yield* Effect.scoped(Effect.flatMap(Cse.get(store, "tampered", resolve), (o) =>
        o.body.pipe(Stream.runFold(0, (n, c) => n + c.length), Effect.either)))
      assert.isTrue(released._tag === "Left")

      yield* store.put("truncated", Stream.make(raw.subarray(0, raw.length - 20)), { metadata: meta })
      assert.deepStrictEqual(yield* reason("truncated"), ["DecryptError", "Truncated"])

      yield* store.put("missing", Stream.make(raw), {})
      assert.deepStrictEqual(yield* reason("missing"), ["DecryptError", "MissingMetadata"])
      for (const [name, value] of [
        ["not-json", "{"],
        ["no-agent", JSON.stringify({ WrappedContentKey: {} })],
        ["bad-region", meta["encryptiondata"]!.replace("\"DataLength\":4096", "\"DataLength\":-1")],
        ["bad-nonce", meta["encryptiondata"]!.replace("\"NonceLength\":12", "\"NonceLength\":8")]
      ] as const) {
        yield* store.put(name, Stream.make(raw), { metadata: { encryptiondata: value } })
        assert.deepStrictEqual(yield* reason(name), ["DecryptError", "MalformedMetadata"], name)
      }
      yield* store.put("v9", Stream.make(raw), { metadata: { encryptiondata: meta["encryptiondata"]!.replace("\"Protocol\":\"2.1\"", "\"Protocol\":\"9.0\"") } })
      assert.deepStrictEqual(yield* reason("v9"), ["DecryptError", "UnknownFormat"])
      yield* store.put("v1", Stream.make(raw), { metadata: { encryptiondata: meta["encryptiondata"]!.replace("\"Protocol\":\"2.1\"", "\"Protocol\":\"1.0\"") } })
      assert.deepStrictEqual(yield* reason("v1"), ["DecryptError", "UnknownFormat"])
      // Relabelling a 2.1 blob as 2.0 (with 4 MiB regions) is caught by the protocol bound into the wrapped key.
      const relabelled = meta["encryptiondata"]!.replace("\"Protocol\":\"2.1\"", "\"Protocol\":\"2.0\"").replace("\"DataLength\":4096", `"DataLength":${4 * MiB}`)
      yield* store.put("downgrade", Stream.make(raw), { metadata: { encryptiondata: relabelled } })
      assert.deepStrictEqual(yield* reason("downgrade"), ["DecryptError", "Tampered"])
    }), 60_000)
})
