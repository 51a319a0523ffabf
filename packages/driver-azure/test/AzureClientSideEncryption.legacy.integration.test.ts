/**
 * Azure client-side encryption protocol 1.0 (AES-256-CBC, CVE-2022-30187), read only behind the
 * `allowLegacyV1` opt-in: blobs written by the official Azure Storage Python SDK from Debian
 * (`python3-azure-storage`, `encryption_version='1.0'`, A256KW and RSA-OAEP) to Azurite are read
 * whole and by range. Without the opt-in, a typed refusal. CBC is unauthenticated: a changed
 * block decrypts to changed plaintext without an error, which the last test shows.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as Azurite from "@objcrypt/test-kit/Azurite"
import { Chunk, Effect, ManagedRuntime, Redacted, Stream } from "effect"
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

const aesKey = crypto.randomBytes(32)
const aes = Cse.aesKeyWrap("legacy:aes", Redacted.make(aesKey))
const rsa = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
const rsaKek = Cse.rsaOaep("legacy:rsa", rsa)
const resolve = Cse.resolverOf(aes, rsaKek)
const specs = [
  { kind: "A256KW", keyId: aes.keyId, key: aesKey.toString("base64") },
  { kind: "RSA-OAEP", keyId: rsaKek.keyId, privatePem: rsa.privateKey.export({ type: "pkcs8", format: "pem" }).toString() }
] as const

const python = (request: Record<string, unknown>) =>
  Effect.async<void, Error>((resume) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-pycse1-"))
    const req = path.join(dir, "request.json")
    fs.writeFileSync(req, JSON.stringify(request), { mode: 0o600 })
    cp.execFile(PY, ["-W", "ignore", SCRIPT, "write", req], { timeout: 120_000 }, (err, _stdout, stderr) => {
      fs.rmSync(dir, { recursive: true, force: true })
      resume(err === null ? Effect.void : Effect.fail(new Error(`python write failed: ${stderr.slice(-2000)}`)))
    })
  })

const setup = Effect.gen(function*() {
  const info = yield* Effect.promise(() => azurite.runPromise(Azurite.Azurite))
  const container = `cse1-${crypto.randomBytes(5).toString("hex")}`
  const store = yield* AzureBlobObjectStore.make({
    container,
    accountUrl: info.blobEndpoint,
    credentials: { _tag: "SharedKey", accountName: info.accountName, accountKey: Redacted.make(info.accountKey) }
  })
  yield* Effect.orDie(AzureBlobObjectStore.createContainer(store.client))
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-cse1-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(tmp, { recursive: true, force: true })))
  const write = (blob: string, body: Uint8Array, kek: (typeof specs)[number]) => {
    const file = path.join(tmp, crypto.randomBytes(4).toString("hex"))
    fs.writeFileSync(file, body)
    return python({ connectionString: info.connectionString, container, blob, file, kek, version: "1.0", metadata: { origin: "python-v1" } })
  }
  return { store, write }
})

const read = (store: ObjectStore.ObjectStore["Type"], key: string, range?: ObjectStore.ByteRange, resolver: Cse.KeyResolver = resolve) =>
  Effect.scoped(Effect.gen(function*() {
    const obj = yield* Cse.get(store, key, resolver, { range, allowLegacyV1: true })
    return { info: obj.info, range: obj.range, bytes: Buffer.concat(Chunk.toArray(yield* Stream.runCollect(obj.body))) }
  }))

const failure = (eff: Effect.Effect<unknown, { _tag: string }>) =>
  Effect.map(Effect.flip(eff), (e) => [e._tag, (e as { reason?: string }).reason])

describe("Azure client-side encryption 1.0 (legacy opt-in; Python SDK writes, objcrypt reads)", () => {
  for (const spec of specs) {
    it.scoped(`reads what the Python SDK writes with protocol 1.0 (${spec.kind}), whole and by range`, () =>
      Effect.gen(function*() {
        const { store, write } = yield* setup
        for (const size of [0, 1, 15, 16, 17, 1024 * 1024 + 3]) {
          const body = crypto.randomBytes(size)
          const key = `v1/${spec.kind}/${size}`
          yield* write(key, body, spec)
          const raw = yield* store.head(key)
          assert.strictEqual(raw.size, (Math.floor(size / 16) + 1) * 16, "PKCS#7 always pads")
          const data = yield* Cse.parseEncryptionData(key, raw.metadata, { allowLegacyV1: true })
          assert.deepStrictEqual([data.protocol, data.algorithm, data.keyId], ["1.0", spec.kind, spec.keyId])
          const whole = yield* read(store, key)
          assert.isTrue(whole.bytes.equals(body), `${size} bytes`)
          assert.strictEqual(whole.info.size, size)
          assert.deepStrictEqual({ ...whole.info.metadata }, { origin: "python-v1" })
          if (size === 0) continue
          const ranges: Array<[number, number]> = [[0, 0], [0, Math.min(size, 16) - 1], [size - 1, size - 1]]
          if (size > 17) ranges.push([15, 16], [16, 31], [17, size - 2], [size - 20, size + 100])
          for (const [s, e] of ranges) {
            const r = yield* read(store, key, ObjectStore.range.bounded(s, e))
            assert.isTrue(r.bytes.equals(body.subarray(s, e + 1)), `${size}: ${s}-${e}`)
          }
          const tail = yield* read(store, key, ObjectStore.range.suffix(7))
          assert.isTrue(tail.bytes.equals(body.subarray(Math.max(0, size - 7))), `${size}: suffix`)
          assert.deepStrictEqual(tail.range, { start: Math.max(0, size - 7), end: size })
        }
      }), 180_000)
  }

  it.scoped("without the opt-in: a typed refusal naming the opt-in; objcrypt never writes 1.0", () =>
    Effect.gen(function*() {
      const { store, write } = yield* setup
      yield* write("v1/plain", crypto.randomBytes(100), specs[0])
      const e = yield* Effect.flip(Effect.scoped(Effect.flatMap(Cse.get(store, "v1/plain", resolve), (o) => Stream.runDrain(o.body))))
      assert.deepStrictEqual([e._tag, (e as { reason?: string }).reason], ["DecryptError", "UnknownFormat"])
      assert.match(e.message, /allowLegacyV1/)
      const parsed = yield* Effect.flip(Cse.parseEncryptionData("v1/plain", (yield* store.head("v1/plain")).metadata))
      assert.strictEqual(parsed.reason, "UnknownFormat")
      // @ts-expect-error protocol 1.0 cannot be written
      const refused = yield* Effect.flip(Cse.put(store, "never", Stream.make(new Uint8Array(1)), aes, { protocol: "1.0" }))
      assert.strictEqual(refused._tag, "EncryptError")
    }), 60_000)

  it.scoped("bad input: wrong key, truncated, bad padding, malformed IV; a changed middle block is NOT detected (CBC is unauthenticated)", () =>
    Effect.gen(function*() {
      const { store, write } = yield* setup
      const body = crypto.randomBytes(100)
      yield* write("v1/good", body, specs[0])
      const meta = (yield* store.head("v1/good")).metadata
      const raw = (yield* ObjectStore.readAll(store, "v1/good")).bytes

      const wrongAes = Cse.aesKeyWrap(aes.keyId, Redacted.make(crypto.randomBytes(32)))
      assert.deepStrictEqual(yield* failure(read(store, "v1/good", undefined, Cse.resolverOf(wrongAes))), ["DecryptError", "WrongKey"])

      yield* store.put("v1/cut", Stream.make(raw.subarray(0, raw.length - 5)), { metadata: meta })
      assert.deepStrictEqual(yield* failure(read(store, "v1/cut")), ["DecryptError", "Truncated"])

      // Flipping the top bit of the last ciphertext byte of the block before the last flips the
      // padding byte's top bit: the padding is then invalid for certain.
      const badPad = Buffer.from(raw)
      badPad[raw.length - 17]! ^= 0x80
      yield* store.put("v1/badpad", Stream.make(badPad), { metadata: meta })
      assert.deepStrictEqual(yield* failure(read(store, "v1/badpad")), ["DecryptError", "Tampered"])

      for (const [name, iv] of [["short-iv", "AAAA"], ["no-iv", undefined]] as const) {
        const j = JSON.parse(meta["encryptiondata"]!) as Record<string, unknown>
        if (iv === undefined) delete j["ContentEncryptionIV"]
        else j["ContentEncryptionIV"] = iv
        yield* store.put(`v1/${name}`, Stream.make(raw), { metadata: { encryptiondata: JSON.stringify(j) } })
        assert.deepStrictEqual(yield* failure(read(store, `v1/${name}`)), ["DecryptError", "MalformedMetadata"], name)
      }

      // The unauthenticated property, stated as a test: a changed first block reads without error.
      const changed = Buffer.from(raw)
      changed[3]! ^= 1
      yield* store.put("v1/changed", Stream.make(changed), { metadata: meta })
      const got = yield* read(store, "v1/changed")
      assert.strictEqual(got.bytes.length, body.length)
      assert.isFalse(got.bytes.equals(body), "different plaintext comes out")
      assert.isTrue(got.bytes.subarray(32).equals(body.subarray(32)), "only blocks 0 and 1 changed")
    }), 60_000)
})
