import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as EndpointsConfig from "../src/EndpointsConfig.js"
import * as StoreUrl from "../src/StoreUrl.js"

const ctx: StoreUrl.Context = {
  config: {
    endpoints: {
      vault: { type: "fs", root: "/srv/vault", prefix: "docs/" },
      arch: { type: "s3", bucket: "arch-bucket", endpoint: "http://127.0.0.1:9000", profile: "ceph-rgw" },
      pics: { type: "gcs", bucket: "pics_bucket", apiEndpoint: "http://127.0.0.1:4443", projectId: "p1", prefix: "p/" },
      blobs: {
        type: "azure",
        container: "blobs",
        credentials: { connectionStringEnv: "BLOBS_CS" }
      }
    }
  },
  localStore: "/home/u/.local/share/objcrypt/store",
  env: {}
}

describe("StoreUrl.parse", () => {
  it.effect("local://, file:// with the // key separator, endpoints, s3 and plain paths", () =>
    Effect.gen(function*() {
      const local = yield* StoreUrl.parseStore("local://photos/a.jpg", ctx)
      assert.deepStrictEqual(local.store, { _tag: "Fs", root: ctx.localStore, encryption: undefined })
      assert.strictEqual(local.key, "photos/a.jpg")
      const file = yield* StoreUrl.parseStore("file:///srv/data//x/y.txt", ctx)
      assert.deepStrictEqual([file.store._tag === "Fs" && file.store.root, file.key], ["/srv/data", "x/y.txt"])
      const named = yield* StoreUrl.parseStore("vault:a.txt", ctx)
      assert.strictEqual(named.key, "docs/a.txt")
      assert.strictEqual(StoreUrl.displayKey(named, named.key), "vault:a.txt")
      const s3 = yield* StoreUrl.parseStore("s3://arch-bucket/k", ctx)
      assert.strictEqual(s3.store._tag === "S3" && s3.store.profile, "ceph-rgw")
      const env = yield* StoreUrl.parseStore("s3://other/k", { ...ctx, env: { AWS_ENDPOINT_URL: "http://h:1" } })
      assert.isTrue(env.store._tag === "S3" && env.store.pathStyle === true && env.store.endpoint === "http://h:1")
      assert.deepStrictEqual(yield* StoreUrl.parse("./a:b", ctx), { _tag: "LocalFile", path: "./a:b" })
    }))

  it.effect("gs:// and az:// from configured endpoints and from the environment", () =>
    Effect.gen(function*() {
      const gs = yield* StoreUrl.parseStore("gs://pics_bucket/a/b.txt", ctx)
      assert.deepStrictEqual([gs.store._tag, gs.key, gs.display], ["Gcs", "a/b.txt", "gs://pics_bucket/"])
      assert.isTrue(gs.store._tag === "Gcs" && gs.store.apiEndpoint === "http://127.0.0.1:4443" && gs.store.projectId === "p1")
      const named = yield* StoreUrl.parseStore("pics:x", ctx)
      assert.deepStrictEqual([named.store._tag, named.key], ["Gcs", "p/x"])
      const gsEnv = yield* StoreUrl.parseStore("gs://other/k", {
        ...ctx,
        env: { STORAGE_EMULATOR_HOST: "127.0.0.1:9023", GOOGLE_APPLICATION_CREDENTIALS: "/k.json", GOOGLE_CLOUD_PROJECT: "proj" }
      })
      assert.deepStrictEqual(gsEnv.store, { _tag: "Gcs", bucket: "other", apiEndpoint: "http://127.0.0.1:9023", projectId: "proj", keyFilename: "/k.json" })

      const cs = "DefaultEndpointsProtocol=http;AccountName=dev;AccountKey=c2VjcmV0;BlobEndpoint=http://127.0.0.1:10000/dev;"
      const az = yield* StoreUrl.parseStore("az://blobs/k", { ...ctx, env: { BLOBS_CS: cs } })
      assert.isTrue(az.store._tag === "Azure" && az.store.accountUrl === "http://127.0.0.1:10000/dev")
      assert.deepStrictEqual(az.store._tag === "Azure" && az.store.credentials, { connectionStringEnv: "BLOBS_CS" })
      const azEnv = yield* StoreUrl.parseStore("az://cont1/k", { ...ctx, env: { AZURE_STORAGE_CONNECTION_STRING: "AccountName=acc;AccountKey=c2VjcmV0" } })
      assert.isTrue(azEnv.store._tag === "Azure" && azEnv.store.accountUrl === "https://acc.blob.core.windows.net")
      // The secret itself never lands in the spec: only the variable's name.
      assert.notInclude(JSON.stringify(azEnv.store), "c2VjcmV0")
      const azKey = yield* StoreUrl.parseStore("az://cont1/k", { ...ctx, env: { AZURE_STORAGE_ACCOUNT: "acc", AZURE_STORAGE_KEY: "c2VjcmV0" } })
      assert.deepStrictEqual(azKey.store._tag === "Azure" && azKey.store.credentials, { accountName: "acc", accountKeyEnv: "AZURE_STORAGE_KEY" })
      const azNone = yield* StoreUrl.parseStore("az://cont1/k", ctx)
      assert.isTrue(azNone.store._tag === "Azure" && azNone.store.credentials === undefined)
      assert.notStrictEqual(StoreUrl.storeId(gs.store), StoreUrl.storeId(gsEnv.store))
      assert.strictEqual(StoreUrl.connectionStringBlobEndpoint("UseDevelopmentStorage=true"), undefined)
    }))

  it.effect("malformed and unsupported locations fail with their tags", () =>
    Effect.gen(function*() {
      for (const bad of ["s3://", "s3://UPPER/x", "file://rel/x", "file:///", "ftp://h/x", "nope:x", "", "gs://", "gs://Up/k", "gs://a/k", "az://", "az://a--b/k", "az://Up/k", "az://a_b/k"]) {
        const e = yield* Effect.flip(StoreUrl.parse(bad, ctx))
        assert.strictEqual(e._tag, "UsageError", bad)
      }
      assert.strictEqual((yield* Effect.flip(StoreUrl.parseStore("./local.txt", ctx)))._tag, "UsageError")
    }))
})

describe("EndpointsConfig", () => {
  it.effect("refuses unknown fields, inline secrets and invalid default modes", () =>
    Effect.gen(function*() {
      const parse = (u: unknown) => Effect.flip(EndpointsConfig.parse("c.json", JSON.stringify(u)))
      assert.strictEqual((yield* parse({ surprise: 1 }))._tag, "ConfigError")
      const inline = yield* parse({ endpoints: { a: { type: "s3", bucket: "b", credentials: { secretAccessKey: "s3cr3t" } } } })
      assert.include(inline.message, "inline credentials")
      assert.notInclude(inline.message, "s3cr3t")
      const mode = yield* parse({ endpoints: { a: { type: "fs", root: "/x", encryption: { mode: "cse-c" } } } })
      assert.include(mode.message, "needs a key")
      const ok = yield* EndpointsConfig.parse("c.json", JSON.stringify({ allowInlineSecrets: true, endpoints: { a: { type: "s3", bucket: "b", credentials: { accessKeyId: "A", secretAccessKey: "S" } } } }))
      assert.strictEqual(ok.endpoints?.a?.type, "s3")
    }))

  it.effect("azure endpoints: credentials by environment variable only, exactly one kind, accountUrl unless a connection string", () =>
    Effect.gen(function*() {
      const parse = (u: unknown) => Effect.flip(EndpointsConfig.parse("c.json", JSON.stringify(u)))
      const az = (credentials: unknown, extra?: object) => ({ endpoints: { a: { type: "azure", container: "c1", credentials, ...extra } } })
      const inline = yield* parse(az({ connectionString: "AccountKey=SeCrEt" }))
      assert.include(inline.message, "inline credentials")
      assert.notInclude(inline.message, "SeCrEt")
      assert.include((yield* parse(az({ sasTokenEnv: "S", connectionStringEnv: "C" }))).message, "exactly one")
      assert.include((yield* parse(az({}))).message, "exactly one")
      assert.include((yield* parse(az({ accountKeyEnv: "K" }, { accountUrl: "https://a.blob.core.windows.net" }))).message, "accountName")
      assert.include((yield* parse(az({ sasTokenEnv: "S" }))).message, "accountUrl")
      assert.strictEqual((yield* parse(az({ sasTokenEnv: "bad-name" }, { accountUrl: "https://x" })))._tag, "ConfigError")
      const ok = yield* EndpointsConfig.parse("c.json", JSON.stringify(az({ accountName: "a", accountKeyEnv: "K" }, { accountUrl: "https://a.blob.core.windows.net" })))
      assert.strictEqual(ok.endpoints?.a?.type, "azure")
      const okCs = yield* EndpointsConfig.parse("c.json", JSON.stringify(az({ connectionStringEnv: "CS" })))
      assert.strictEqual(okCs.endpoints?.a?.type, "azure")
      const allowed = yield* EndpointsConfig.parse("c.json", JSON.stringify({ allowInlineSecrets: true, ...az({ sasToken: "sv=1" }, { accountUrl: "https://x" }) }))
      assert.strictEqual(allowed.endpoints?.a?.type, "azure")
      const gcs = yield* EndpointsConfig.parse("c.json", JSON.stringify({ endpoints: { g: { type: "gcs", bucket: "b", apiEndpoint: "http://127.0.0.1:1", projectId: "p", keyFilename: "/k.json" } } }))
      assert.strictEqual(gcs.endpoints?.g?.type, "gcs")
      assert.include((yield* parse({ endpoints: { g: { type: "gcs", bucket: "b", apiEndpoint: "ftp://x" } } })).message, "http(s) URL")
      assert.strictEqual((yield* parse({ endpoints: { g: { type: "gcs", bucket: "b", privateKey: "x" } } }))._tag, "ConfigError")
    }))

  it("flags override an endpoint's default field by field; another mode drops its key fields", () => {
    const fallback = { mode: "cse-c" as const, key: "team" }
    assert.deepStrictEqual(EndpointsConfig.mergeSpec({}, fallback), fallback)
    assert.deepStrictEqual(EndpointsConfig.mergeSpec({ key: "other" }, fallback), { mode: "cse-c", key: "other" })
    assert.deepStrictEqual(EndpointsConfig.mergeSpec({ mode: "none" }, fallback), { mode: "none" })
    assert.deepStrictEqual(EndpointsConfig.mergeSpec({}, undefined), { mode: "none" })
  })
})
