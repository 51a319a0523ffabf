/**
 * `--part-size` and `--parallel` shape every mode's uploads, not only client-side ones: for mode
 * none and sse-s3 the driver's native multipart upload (S3 parts to moto_server, Azure staged blocks
 * to Azurite) is seen on the wire through a forwarding proxy that counts part requests and the most
 * in flight at once.
 */
import { assert, afterAll, beforeAll, describe, it } from "@effect/vitest"
import * as Azurite from "@objcrypt/test-kit/Azurite"
import * as MotoServer from "@objcrypt/test-kit/MotoServer"
import { Effect, Exit, Scope } from "effect"
import * as crypto from "node:crypto"
import { type CountingProxy, countingProxy, type Home, makeHome, oneLineError } from "./harness.js"

let scope: Scope.CloseableScope
let moto: MotoServer.MotoServerInfo
let azurite: Azurite.AzuriteInfo
let home: Home
let s3Proxy: CountingProxy
let azProxy: CountingProxy

const MiB = 1024 * 1024

beforeAll(async () => {
  scope = Effect.runSync(Scope.make())
  ;[moto, azurite] = await Effect.runPromise(Scope.extend(Effect.all([MotoServer.make({ startTimeout: "180 seconds" }), Azurite.make({ startTimeout: "180 seconds" })], { concurrency: 2 }), scope))
  s3Proxy = await countingProxy(moto.endpoint, (method, url) => method === "PUT" && /[?&]partNumber=/.test(url))
  azProxy = await countingProxy(new URL(azurite.blobEndpoint).origin, (method, url) => method === "PUT" && /[?&]comp=block(&|$)/.test(url))
  home = makeHome()
  const blobEndpoint = `${azProxy.endpoint}${new URL(azurite.blobEndpoint).pathname}`
  Object.assign(home.env, {
    AWS_ENDPOINT_URL_S3: s3Proxy.endpoint,
    AWS_ACCESS_KEY_ID: moto.accessKeyId,
    AWS_SECRET_ACCESS_KEY: moto.secretAccessKey,
    AWS_REGION: moto.region,
    AZURE_STORAGE_CONNECTION_STRING:
      `DefaultEndpointsProtocol=http;AccountName=${azurite.accountName};AccountKey=${azurite.accountKey};BlobEndpoint=${blobEndpoint};`
  })
  // s3://objcrypt-tune goes to a configured endpoint, so that a probe can record what moto does
  // with SSE headers (an unprobed S3-compatible server is not trusted with sse-s3).
  const config = {
    version: 1,
    endpoints: {
      moto: {
        type: "s3",
        bucket: "objcrypt-tune",
        endpoint: s3Proxy.endpoint,
        region: moto.region,
        pathStyle: true,
        credentials: { accessKeyIdEnv: "AWS_ACCESS_KEY_ID", secretAccessKeyEnv: "AWS_SECRET_ACCESS_KEY" }
      } as Record<string, unknown>
    }
  }
  home.env.OBJCRYPT_CONFIG = home.file("tune.json", JSON.stringify(config))
  for (const args of [["bucket", "create", "s3://objcrypt-tune"], ["bucket", "create", "az://objcrypt-tune"], ["keys", "generate", "k"]]) {
    const r = await home.run(args)
    assert.strictEqual(r.code, 0, r.stderr)
  }
  const probed = await home.run(["matrix", "--probe", "moto:", "--json"])
  assert.strictEqual(probed.code, 0, probed.stderr)
  const { probe } = JSON.parse(probed.stdout)
  assert.strictEqual(probe.facts.modes.SseS3, "accepted", "moto echoes SSE-S3")
  config.endpoints.moto.facts = probe.facts
  home.file("tune.json", JSON.stringify(config))
}, 300_000)

afterAll(async () => {
  home?.cleanup()
  await s3Proxy?.close()
  await azProxy?.close()
  if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
})

const upload = async (proxy: CountingProxy, name: string, size: number, url: string, flags: ReadonlyArray<string>) => {
  const body = crypto.randomBytes(size)
  const file = home.file(name, body)
  proxy.reset()
  const r = await home.run(["cp", file, url, "--json", ...flags])
  assert.strictEqual(r.code, 0, r.stderr)
  const stats = proxy.stats()
  const cat = await home.run(["cat", url])
  assert.isTrue(cat.stdoutBytes.equals(body), `${url} reads back`)
  const done = r.stdout.split("\n").filter((l) => l.includes('"event":"done"')).map((l) => JSON.parse(l))
  return { stats, done: done[0] }
}

describe("s3:// multipart (moto_server)", () => {
  it("mode none: --part-size sets the number of parts, --parallel 1 sends one at a time", async () => {
    const a = await upload(s3Proxy, "n5.bin", 12 * MiB, "s3://objcrypt-tune/none-5.bin", ["--part-size", "5MiB", "--parallel", "1"])
    assert.deepStrictEqual(a.stats, { count: 3, maxInFlight: 1 })
    assert.match(a.done.etag, /-3"?$/, "a multipart ETag of 3 parts")
    const b = await upload(s3Proxy, "n6.bin", 12 * MiB, "s3://objcrypt-tune/none-6.bin", ["--part-size", "6MiB", "--parallel", "1"])
    assert.deepStrictEqual(b.stats, { count: 2, maxInFlight: 1 })
  }, 300_000)

  it("sse-s3: --parallel 4 keeps several parts in flight", async () => {
    const r = await upload(s3Proxy, "s.bin", 24 * MiB, "s3://objcrypt-tune/sse-s3.bin", ["--mode", "sse-s3", "--part-size", "5MiB", "--parallel", "4"])
    assert.strictEqual(r.stats.count, 5)
    assert.isAtLeast(r.stats.maxInFlight, 2)
    assert.isAtMost(r.stats.maxInFlight, 4)
    assert.strictEqual(r.done.mode, "sse-s3")
  }, 300_000)

  it("cse-c uses the same flags for its parts", async () => {
    const r = await upload(s3Proxy, "c.bin", 12 * MiB, "s3://objcrypt-tune/cse.bin", ["--mode", "cse-c", "--key", "k", "--part-size", "5MiB", "--parallel", "1"])
    assert.deepStrictEqual(r.stats, { count: 3, maxInFlight: 1 })
  }, 300_000)

  it("a part size the store cannot take is refused before upload (exit 2)", async () => {
    home.file("small.bin", crypto.randomBytes(1024))
    s3Proxy.reset()
    const r = await home.run(["cp", "small.bin", "s3://objcrypt-tune/small.bin", "--part-size", "1MiB"])
    assert.strictEqual(r.code, 2, r.stderr)
    assert.match(oneLineError(r), /--part-size must be between 5\.0 MiB/)
    assert.strictEqual((await home.run(["ls", "s3://objcrypt-tune/small.bin"])).code, 3)
  }, 300_000)
})

describe("az:// staged blocks (Azurite)", () => {
  it("mode none: --part-size sets the block size, --parallel the blocks in flight", async () => {
    const one = await upload(azProxy, "a1.bin", 6 * MiB, "az://objcrypt-tune/one.bin", ["--part-size", "1MiB", "--parallel", "1"])
    assert.deepStrictEqual(one.stats, { count: 6, maxInFlight: 1 })
    const two = await upload(azProxy, "a2.bin", 6 * MiB, "az://objcrypt-tune/two.bin", ["--part-size", "2MiB", "--parallel", "3"])
    assert.strictEqual(two.stats.count, 3)
    assert.isAtLeast(two.stats.maxInFlight, 2)
  }, 300_000)
})
