import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as EndpointsConfig from "../src/EndpointsConfig.js"
import * as StoreUrl from "../src/StoreUrl.js"

const ctx: StoreUrl.Context = {
  config: {
    endpoints: {
      vault: { type: "fs", root: "/srv/vault", prefix: "docs/" },
      arch: { type: "s3", bucket: "arch-bucket", endpoint: "http://127.0.0.1:9000", profile: "ceph-rgw" }
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

  it.effect("malformed and unsupported locations fail with their tags", () =>
    Effect.gen(function*() {
      for (const bad of ["s3://", "s3://UPPER/x", "file://rel/x", "file:///", "ftp://h/x", "nope:x", ""]) {
        const e = yield* Effect.flip(StoreUrl.parse(bad, ctx))
        assert.strictEqual(e._tag, "UsageError", bad)
      }
      assert.strictEqual((yield* Effect.flip(StoreUrl.parse("gs://b/k", ctx)))._tag, "DriverUnavailable")
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

  it("flags override an endpoint's default field by field; another mode drops its key fields", () => {
    const fallback = { mode: "cse-c" as const, key: "team" }
    assert.deepStrictEqual(EndpointsConfig.mergeSpec({}, fallback), fallback)
    assert.deepStrictEqual(EndpointsConfig.mergeSpec({ key: "other" }, fallback), { mode: "cse-c", key: "other" })
    assert.deepStrictEqual(EndpointsConfig.mergeSpec({ mode: "none" }, fallback), { mode: "none" })
    assert.deepStrictEqual(EndpointsConfig.mergeSpec({}, undefined), { mode: "none" })
  })
})
