/**
 * Native modes at the wire. Azurite supports neither customer-provided keys nor encryption scopes
 * (it refuses them in strict mode and ignores them in loose mode), so these tests run Azurite over
 * https in loose mode and record, with a request policy in the real SDK pipeline, the headers each
 * request carries: CPK on put, get, head, stage block, commit and copy; encryption scopes on every
 * write. Over plain http, CPK is refused before any request is sent.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import type { RequestPolicy, RequestPolicyFactory, WebResource } from "@azure/storage-blob"
import * as CustomerKey from "@objcrypt/core/CustomerKey"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as Azurite from "@objcrypt/test-kit/Azurite"
import { Effect, ManagedRuntime, Redacted, Stream } from "effect"
import * as crypto from "node:crypto"
import * as https from "node:https"
import * as AzureBlobObjectStore from "../src/AzureBlobObjectStore.js"
import type { AzureConfig } from "../src/AzureConfig.js"

const tls = ManagedRuntime.make(Azurite.layer({ https: true, loose: true }))
const plain = ManagedRuntime.make(Azurite.layer())
afterAll(() => Promise.all([tls.dispose(), plain.dispose()]), 60_000)

interface Recorded {
  readonly method: string
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
}

/** Records every request the SDK sends (after serialization, so with the CPK/scope headers), and trusts the test CA. */
const recorder = (log: Array<Recorded>, ca: string | undefined): RequestPolicyFactory => {
  const agent = ca === undefined ? undefined : new https.Agent({ ca, keepAlive: true })
  return {
    create: (next: RequestPolicy): RequestPolicy => ({
      sendRequest: (req: WebResource) => {
        log.push({
          method: req.method,
          url: req.url,
          headers: Object.fromEntries(req.headers.headersArray().map((h) => [h.name.toLowerCase(), h.value]))
        })
        if (agent !== undefined) (req as { agent?: unknown }).agent = agent
        return next.sendRequest(req)
      }
    })
  }
}

const setup = (runtime: typeof tls, extra?: Partial<AzureConfig>) =>
  Effect.gen(function*() {
    const info = yield* Effect.promise(() => runtime.runPromise(Azurite.Azurite))
    const log: Array<Recorded> = []
    const config: AzureConfig = {
      container: `wire-${crypto.randomBytes(5).toString("hex")}`,
      accountUrl: info.blobEndpoint,
      credentials: { _tag: "SharedKey", accountName: info.accountName, accountKey: Redacted.make(info.accountKey) },
      requestPolicyFactories: [recorder(log, info.certificate)],
      blockSize: 64 * 1024,
      copyBlockSize: 64 * 1024,
      ...extra
    }
    const store = yield* AzureBlobObjectStore.make(config)
    yield* Effect.orDie(AzureBlobObjectStore.createContainer(store.client))
    log.length = 0
    return { store, log, info }
  })

const op = (r: Recorded) => {
  const u = new URL(r.url)
  const comp = u.searchParams.get("comp")
  return `${r.method}${comp === null ? "" : ` comp=${comp}`}`
}

const cpkHeaders = (key: CustomerKey.CustomerKey) => ({
  "x-ms-encryption-key": Buffer.from(Redacted.value(key.material)).toString("base64"),
  "x-ms-encryption-key-sha256": key.sha256,
  "x-ms-encryption-algorithm": "AES256"
})

const assertCpk = (r: Recorded, key: CustomerKey.CustomerKey, what: string, prefix = "x-ms-") => {
  for (const [name, value] of Object.entries(cpkHeaders(key))) {
    const h = name.replace(/^x-ms-/, prefix)
    assert.strictEqual(r.headers[h], value, `${what}: ${h}`)
  }
}

describe("AzureBlobObjectStore native modes at the wire (Azurite https, loose)", () => {
  it.scoped("sse-c sends the customer key on put, stage block, commit, get, head and copy", () =>
    Effect.gen(function*() {
      const { store, log } = yield* setup(tls)
      assert.isTrue(store.nativeModes.has("SseC"), "CPK is native over https")
      const key = yield* CustomerKey.generate
      const sse: ObjectStore.ServerSideEncryption = { _tag: "SseC", key }
      const small = crypto.randomBytes(1000)
      const put = yield* store.put("cpk/small", Stream.make(small), { sse })
      assert.strictEqual(put.encryption.mode, "SseC")
      assert.strictEqual(put.encryption.customerKeySha256, key.sha256)
      assert.deepStrictEqual(log.map(op), ["PUT"])
      assertCpk(log[0]!, key, "put blob")

      log.length = 0
      const big = crypto.randomBytes(3 * 64 * 1024 + 5)
      yield* store.put("cpk/big", Stream.make(big), { sse })
      assert.deepStrictEqual(log.map(op).sort(), ["PUT comp=block", "PUT comp=block", "PUT comp=block", "PUT comp=block", "PUT comp=blocklist"])
      for (const r of log) assertCpk(r, key, op(r))

      log.length = 0
      const got = yield* ObjectStore.readAll(store, "cpk/big", { sse, range: ObjectStore.range.bounded(10, 19) })
      assert.isTrue(Buffer.from(got.bytes).equals(big.subarray(10, 20)))
      yield* store.head("cpk/big", { sse })
      assert.deepStrictEqual(log.map(op), ["GET", "HEAD"])
      for (const r of log) assertCpk(r, key, op(r))

      log.length = 0
      // Copy blocks from the source URL: the source key and the destination key both travel.
      const dest = yield* CustomerKey.generate
      yield* Effect.either(store.copy("cpk/small", "cpk/copy", { sourceSse: sse, sse: { _tag: "SseC", key: dest } }))
      const fromUrl = log.filter((r) => op(r) === "PUT comp=block")
      assert.strictEqual(fromUrl.length, 1, "one block staged from the source URL")
      assert.isDefined(fromUrl[0]!.headers["x-ms-copy-source"])
      assertCpk(fromUrl[0]!, key, "stage block from URL (source)", "x-ms-source-")
      assertCpk(fromUrl[0]!, dest, "stage block from URL (destination)")
    }), 60_000)

  it.scoped("sse-c multipart: the key on the upload marker, every part and the commit", () =>
    Effect.gen(function*() {
      const { store, log } = yield* setup(tls)
      const key = yield* CustomerKey.generate
      const sse: ObjectStore.ServerSideEncryption = { _tag: "SseC", key }
      const upload = yield* store.createMultipart("cpk/multi", { sse })
      const p1 = yield* store.uploadPart(upload, 1, Stream.make(crypto.randomBytes(70_000)), { sse })
      const p2 = yield* store.uploadPart(upload, 2, Stream.make(crypto.randomBytes(10)), { sse })
      const done = yield* store.completeMultipart(upload, [p1, p2], { sse })
      assert.strictEqual(done.size, 70_010)
      const writes = log.filter((r) => r.method === "PUT")
      assert.deepStrictEqual(writes.map(op), ["PUT comp=block", "PUT comp=block", "PUT comp=block", "PUT comp=block", "PUT comp=blocklist"])
      for (const r of writes) assertCpk(r, key, op(r))
    }), 60_000)

  it.scoped("sse-kms sends the encryption scope on every write, and the default scope when no key id is given", () =>
    Effect.gen(function*() {
      const { store, log } = yield* setup(tls, { defaultEncryptionScope: "scope-default" })
      assert.isTrue(store.nativeModes.has("SseKms"))
      const put = yield* store.put("scope/a", Stream.make(crypto.randomBytes(10)), { sse: { _tag: "SseKms", keyId: "scope-a" } })
      assert.strictEqual(put.encryption.mode, "SseKms")
      assert.strictEqual(put.encryption.scope, "scope-a")
      yield* store.put("scope/big", Stream.make(crypto.randomBytes(2 * 64 * 1024 + 1)), { sse: { _tag: "SseKms" } })
      yield* store.copy("scope/a", "scope/copy", { sse: { _tag: "SseKms", keyId: "scope-b" } })
      const scopes = log.filter((r) => r.method === "PUT").map((r) => [op(r), r.headers["x-ms-encryption-scope"]])
      assert.deepStrictEqual(scopes, [
        ["PUT", "scope-a"],
        ["PUT comp=block", "scope-default"],
        ["PUT comp=block", "scope-default"],
        ["PUT comp=block", "scope-default"],
        ["PUT comp=blocklist", "scope-default"],
        ["PUT comp=block", "scope-b"],
        ["PUT comp=blocklist", "scope-b"]
      ])
      const refused = yield* Effect.flip(store.put("scope/ctx", Stream.make(Buffer.from("x")), { sse: { _tag: "SseKms", keyId: "s", context: { a: "b" } } }))
      assert.strictEqual(refused._tag, "UnsupportedMode")
    }), 60_000)

  it.scoped("sse-s3 sends nothing: Microsoft-managed encryption is always on", () =>
    Effect.gen(function*() {
      const { store, log } = yield* setup(tls)
      yield* store.put("mmk", Stream.make(Buffer.from("x")), { sse: { _tag: "SseS3" } })
      assert.deepStrictEqual(Object.keys(log[0]!.headers).filter((h) => h.includes("encryption")), [])
    }), 60_000)

  it.scoped("over plain http, sse-c is refused before any request and the key never appears in errors", () =>
    Effect.gen(function*() {
      const { store, log } = yield* setup(plain)
      assert.isFalse(store.nativeModes.has("SseC"))
      const key = yield* CustomerKey.generate
      const sse: ObjectStore.ServerSideEncryption = { _tag: "SseC", key }
      const e1 = yield* Effect.flip(store.put("x", Stream.make(Buffer.from("x")), { sse }))
      assert.strictEqual(e1._tag, "UnsupportedMode")
      const e2 = yield* Effect.flip(store.head("x", { sse }))
      assert.strictEqual(e2._tag, "AccessDenied")
      const e3 = yield* Effect.flip(store.createMultipart("x", { sse }))
      assert.strictEqual(e3._tag, "UnsupportedMode")
      assert.deepStrictEqual(log, [])
      const secret = Buffer.from(Redacted.value(key.material)).toString("base64")
      for (const e of [e1, e2, e3]) assert.notInclude(`${e.message} ${JSON.stringify(e)}`, secret)
    }), 60_000)
})
