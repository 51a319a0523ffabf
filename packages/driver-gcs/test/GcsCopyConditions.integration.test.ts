/**
 * `copy` with `ifSourceMatch` against the test-kit GCS server, with the race made real: the store
 * under test talks to the server through a pass-through proxy (127.0.0.1) that, on the first
 * rewrite request it forwards, first lets another writer replace the source through a direct
 * store. The driver's own head has already seen the old version, so only the server's
 * preconditions can refuse the copy.
 */
import { assert, describe, it } from "@effect/vitest"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as GcsServer from "@objcrypt/test-kit/GcsServer"
import { Effect, Stream } from "effect"
import type * as Scope from "effect/Scope"
import * as crypto from "node:crypto"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as GcsBuckets from "../src/GcsBuckets.js"
import * as GcsObjectStore from "../src/GcsObjectStore.js"

/** Forwards every request to `target`; `before` runs (and is awaited) before a request is sent on. */
const proxy = (
  target: string,
  before: (method: string, url: string) => Promise<void>
): Effect.Effect<{ readonly endpoint: string; readonly seen: Array<string> }, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ server: http.Server; endpoint: string; seen: Array<string> }>((resume) => {
      const seen: Array<string> = []
      const to = new URL(target)
      const server = http.createServer((req, res) => {
        const chunks: Array<Buffer> = []
        req.on("data", (c: Buffer) => chunks.push(c))
        req.on("end", () => {
          const method = req.method ?? "GET"
          const url = req.url ?? "/"
          seen.push(`${method} ${url}`)
          before(method, url).then(() => {
            const out = http.request(
              { host: to.hostname, port: to.port, method, path: url, headers: { ...req.headers, host: to.host } },
              (r) => {
                res.writeHead(r.statusCode ?? 502, r.headers)
                r.pipe(res)
              }
            )
            out.on("error", () => res.destroy())
            out.end(Buffer.concat(chunks))
          }, () => res.destroy())
        })
      })
      server.listen(0, "127.0.0.1", () => {
        resume(Effect.succeed({ server, endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }))
      })
    }),
    ({ server }) =>
      Effect.promise(() =>
        new Promise<void>((r) => {
          server.closeAllConnections()
          server.close(() => r())
        })
      )
  )

const setup = (rewriteStep?: number) =>
  Effect.gen(function*() {
    const info = yield* GcsServer.make(rewriteStep === undefined ? undefined : { rewriteStep })
    const bucket = `objcrypt-${crypto.randomBytes(5).toString("hex")}`
    const direct = yield* GcsObjectStore.make({ bucket, apiEndpoint: info.endpoint, projectId: info.projectId })
    yield* Effect.orDie(GcsBuckets.createBucket(direct.storage, bucket))
    let armed: { readonly key: string; readonly body: Buffer; skip: number } | undefined
    const p = yield* proxy(info.endpoint, async (method, url) => {
      const a = armed
      if (a === undefined || method !== "POST" || !url.includes("/rewriteTo/") || a.skip-- > 0) return
      armed = undefined
      await Effect.runPromise(direct.put(a.key, Stream.make(a.body), { contentType: "text/plain", metadata: { v: "new" } }))
    })
    const store = yield* GcsObjectStore.make({ bucket, apiEndpoint: p.endpoint, projectId: info.projectId })
    return {
      direct,
      store,
      seen: p.seen,
      /** The `skip + 1`-th rewrite call is preceded by another writer replacing `key`. */
      arm: (key: string, body: Buffer, skip = 0) => {
        armed = { key, body, skip }
      }
    }
  })

describe("GcsObjectStore copy with ifSourceMatch (test-kit GCS server)", () => {
  it.scoped("a source replaced after the driver's head: the server refuses the rewrite, nothing changes", () =>
    Effect.gen(function*() {
      const { arm, direct, seen, store } = yield* setup()
      for (const destination of ["k", "other"]) {
        const old = crypto.randomBytes(5000)
        yield* direct.put("k", Stream.make(old), { metadata: { v: "old" } })
        const { etag } = yield* store.head("k")
        const fresh = crypto.randomBytes(5001)
        arm("k", fresh)
        const e = yield* Effect.flip(store.copy("k", destination, { metadata: { v: "rekeyed" }, ifSourceMatch: etag }))
        assert.strictEqual(e._tag, "PreconditionFailed", `to ${destination}`)
        const now = yield* ObjectStore.readAll(direct, "k")
        assert.isTrue(Buffer.from(now.bytes).equals(fresh), `to ${destination}: the new body stays`)
        assert.deepStrictEqual({ ...now.info.metadata }, { v: "new" })
        assert.strictEqual((yield* Effect.flip(direct.head("other")))._tag, "ObjectNotFound")
      }
      const rewrite = seen.filter((s) => s.includes("/rewriteTo/"))
      assert.strictEqual(rewrite.length, 2)
      assert.isTrue(rewrite.every((s) => /ifSourceGenerationMatch=\d+/.test(s) && /ifSourceMetagenerationMatch=\d+/.test(s)), "source pinned")
      assert.isTrue(/ifGenerationMatch=\d+/.test(rewrite[0] ?? ""), "same key: the destination pinned too")
      assert.isFalse(/[?&]ifGenerationMatch=/.test(rewrite[1] ?? "-"), "another key: the destination is not pinned")
      // Control: with the current etag the same copy goes through.
      const { etag } = yield* store.head("k")
      yield* store.copy("k", "k", { metadata: { v: "rekeyed" }, contentType: "text/plain", ifSourceMatch: etag })
      assert.deepStrictEqual({ ...(yield* direct.head("k")).metadata }, { v: "rekeyed" })
    }))

  it.scoped("a source replaced between two calls of a multi-step rewrite: PreconditionFailed, nothing changes", () =>
    Effect.gen(function*() {
      const { arm, direct, seen, store } = yield* setup(64 * 1024)
      yield* direct.put("big", Stream.make(crypto.randomBytes(300 * 1024)), { metadata: { v: "old" } })
      const { etag } = yield* store.head("big")
      const fresh = crypto.randomBytes(1000)
      arm("big", fresh, 1)
      const e = yield* Effect.flip(store.copy("big", "big-copy", { ifSourceMatch: etag }))
      assert.strictEqual(e._tag, "PreconditionFailed")
      const continued = seen.filter((s) => s.includes("rewriteToken="))
      assert.isAtLeast(continued.length, 1, "the rewrite went on with a token")
      assert.isTrue(continued.every((s) => s.includes("ifSourceGenerationMatch=")), "the token calls keep the preconditions")
      assert.strictEqual((yield* Effect.flip(direct.head("big-copy")))._tag, "ObjectNotFound")
      assert.isTrue(Buffer.from((yield* ObjectStore.readAll(direct, "big")).bytes).equals(fresh))
      // A missing source with a condition is ObjectNotFound.
      const missing = yield* Effect.flip(store.copy("nope", "nope-copy", { ifSourceMatch: etag }))
      assert.strictEqual(missing._tag, "ObjectNotFound")
    }))
})
