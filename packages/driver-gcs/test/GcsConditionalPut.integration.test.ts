/**
 * `put` and `createMultipart` with `ifMatch` against the test-kit GCS server. The etag is mapped to
 * the (generation, metageneration) it stands for and pinned with `ifGenerationMatch` and
 * `ifMetagenerationMatch`; the races are made real with a pass-through proxy (127.0.0.1) that, on
 * the first write request matching a test's filter, first lets another writer replace the object
 * through a direct store. The driver has already read the old version by then, so only the
 * server's preconditions can refuse the write.
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
import type { GcsConfig } from "../src/GcsConfig.js"
import * as GcsObjectStore from "../src/GcsObjectStore.js"

const PART = 256 * 1024

/** Forwards every request to `target`; `before` runs (and is awaited) before a request is sent on. */
const proxy = (
  target: string,
  before: (method: string, url: string) => Promise<void>
): Effect.Effect<{ readonly endpoint: string }, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ server: http.Server; endpoint: string }>((resume) => {
      const to = new URL(target)
      const server = http.createServer((req, res) => {
        const chunks: Array<Buffer> = []
        req.on("data", (c: Buffer) => chunks.push(c))
        req.on("end", () => {
          const method = req.method ?? "GET"
          const url = req.url ?? "/"
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
        resume(Effect.succeed({ server, endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }))
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

const setup = (extra?: Partial<GcsConfig>) =>
  Effect.gen(function*() {
    const info = yield* GcsServer.make()
    const bucket = `objcrypt-${crypto.randomBytes(5).toString("hex")}`
    const base = { bucket, apiEndpoint: info.endpoint, projectId: info.projectId, partSize: PART, staleUploadAge: false as const, ...extra }
    const direct = yield* GcsObjectStore.make(base)
    yield* Effect.orDie(GcsBuckets.createBucket(direct.storage, bucket))
    let armed: { readonly match: (method: string, url: string) => boolean; readonly key: string; readonly body: Buffer } | undefined
    let requests = 0
    const p = yield* proxy(info.endpoint, async (method, url) => {
      requests++
      const a = armed
      if (a === undefined || !a.match(method, url)) return
      armed = undefined
      await Effect.runPromise(direct.put(a.key, Stream.make(a.body), { metadata: { v: "other" } }))
    })
    const store = yield* GcsObjectStore.make({ ...base, apiEndpoint: p.endpoint })
    return {
      direct,
      store,
      /** Before the first request matching `match`, another writer replaces `key` with `body`. */
      arm: (key: string, body: Buffer, match: (method: string, url: string) => boolean) => {
        armed = { key, body, match }
      },
      isArmed: () => armed !== undefined,
      /** Requests the store sent (through the proxy) so far. */
      requests: () => requests
    }
  })

const text = (store: ObjectStore.ObjectStore["Type"], key: string) =>
  Effect.map(ObjectStore.readAll(store, key), (r) => ({ text: Buffer.from(r.bytes).toString(), metadata: { ...r.info.metadata } }))

const writesKey = (key: string) => (method: string, url: string) =>
  method === "POST" && (url.includes(`name=${encodeURIComponent(key)}&`) || url.endsWith(`name=${encodeURIComponent(key)}`) || url.includes(`/o/${encodeURIComponent(key)}/compose`))


/** An upload of `chunks` (one part each) to `key`, not completed. */
const staged = (store: ObjectStore.ObjectStore["Type"], key: string, chunks: ReadonlyArray<string>, options?: ObjectStore.PutOptions) =>
  Effect.gen(function*() {
    const u = yield* store.createMultipart(key, { metadata: { v: "mp" }, ...options })
    const parts = yield* Effect.forEach(chunks, (c, i) => store.uploadPart(u, i + 1, Stream.make(Buffer.from(c))), { concurrency: 4 })
    return { u, parts, text: chunks.join("") }
  })

const chunks = (n: number, tag: string) => Array.from({ length: n }, (_, i) => `${tag}${i};`)

/** The objects of uploads in progress (records, parts, intermediate composites). */
const uploadObjects = (store: GcsObjectStore.GcsObjectStore["Type"]) =>
  Effect.map(ObjectStore.listAll(store, { prefix: store.uploadPrefix }).pipe(Stream.runCollect), (c) => [...c].map((o) => o.key))

const usageError = (e: { readonly _tag: string }) => [e._tag, (e as { code?: string }).code, (e as { status?: number }).status]

describe("GcsObjectStore ifMatch (test-kit GCS server)", () => {
  it.scoped("a stale etag or a missing key is PreconditionFailed and writes nothing; a match (quoted or not) overwrites", () =>
    Effect.gen(function*() {
      const { store } = yield* setup()
      const first = yield* store.put("k", Stream.make(Buffer.from("one")), { metadata: { v: "1" } })
      const stale = yield* Effect.flip(store.put("k", Stream.make(Buffer.from("two")), { ifMatch: "CAE=" }))
      assert.deepStrictEqual([stale._tag, (stale as { key?: string }).key], ["PreconditionFailed", "k"])
      assert.deepStrictEqual(yield* text(store, "k"), { text: "one", metadata: { v: "1" } })
      const missing = yield* Effect.flip(store.put("nope", Stream.make(Buffer.from("x")), { ifMatch: first.etag }))
      assert.strictEqual(missing._tag, "PreconditionFailed")
      assert.strictEqual((yield* Effect.flip(store.head("nope")))._tag, "ObjectNotFound")
      const second = yield* store.put("k", Stream.make(Buffer.from("two")), { ifMatch: `"${first.etag}"`, metadata: { v: "2" } })
      assert.deepStrictEqual(yield* text(store, "k"), { text: "two", metadata: { v: "2" } })
      yield* store.put("k", Stream.make(Buffer.from("three")), { ifMatch: second.etag })
      assert.strictEqual((yield* text(store, "k")).text, "three")
      assert.strictEqual((yield* Effect.flip(store.put("k", Stream.make(Buffer.from("four")), { ifMatch: first.etag })))._tag, "PreconditionFailed")
      assert.strictEqual((yield* text(store, "k")).text, "three")
    }))

  it.scoped("ifMatch with ifNoneMatch is a usage error (400 InvalidRequest) for put and createMultipart", () =>
    Effect.gen(function*() {
      const { store } = yield* setup()
      const first = yield* store.put("k", Stream.make(Buffer.from("one")))
      for (const e of [
        yield* Effect.flip(store.put("k", Stream.make(Buffer.from("two")), { ifMatch: first.etag, ifNoneMatch: "*" })),
        yield* Effect.flip(store.createMultipart("k", { ifMatch: first.etag, ifNoneMatch: "*" }))
      ]) {
        assert.deepStrictEqual([e._tag, (e as { code?: string }).code, (e as { status?: number }).status], ["ProviderError", "InvalidRequest", 400])
      }
      assert.strictEqual((yield* text(store, "k")).text, "one")
    }))

  for (const [name, extra, size] of [
    ["a single upload", {}, 100],
    ["parallel parts joined by compose", {}, 3 * PART + 10],
    ["one resumable upload", { parallelUploads: false }, 3 * PART + 10]
  ] as const) {
    it.scoped(`${name}: an object replaced after the driver read its etag is not overwritten (the server's generation check)`, () =>
      Effect.gen(function*() {
        const { arm, direct, isArmed, store } = yield* setup(extra)
        const first = yield* store.put("race", Stream.make(Buffer.from("first")))
        const theirs = crypto.randomBytes(50)
        arm("race", theirs, writesKey("race"))
        const e = yield* Effect.flip(store.put("race", Stream.make(crypto.randomBytes(size)), { ifMatch: first.etag }))
        assert.isFalse(isArmed(), "the other writer ran")
        assert.strictEqual(e._tag, "PreconditionFailed")
        const now = yield* ObjectStore.readAll(direct, "race")
        assert.isTrue(Buffer.from(now.bytes).equals(theirs), "the other writer's object is intact")
        assert.deepStrictEqual({ ...now.info.metadata }, { v: "other" })
        // Without a race, the same path overwrites.
        const body = crypto.randomBytes(size)
        yield* store.put("race", Stream.make(body), { ifMatch: now.info.etag })
        assert.isTrue(Buffer.from((yield* ObjectStore.readAll(direct, "race")).bytes).equals(body))
      }))
  }

  it.scoped("a metadata-only change (new metageneration, new etag) also fails an ifMatch of the old etag", () =>
    Effect.gen(function*() {
      const { direct, store } = yield* setup()
      const first = yield* store.put("meta", Stream.make(Buffer.from("body")), { metadata: { v: "1" } })
      const copied = yield* direct.copy("meta", "meta", { metadata: { v: "2" } })
      assert.notStrictEqual(copied.etag, first.etag)
      assert.strictEqual((yield* Effect.flip(store.put("meta", Stream.make(Buffer.from("x")), { ifMatch: first.etag })))._tag, "PreconditionFailed")
      assert.deepStrictEqual(yield* text(store, "meta"), { text: "body", metadata: { v: "2" } })
    }))

  it.scoped("createMultipart with ifMatch: checked at completion; replaced or removed meanwhile fails, a match completes", () =>
    Effect.gen(function*() {
      const { store } = yield* setup()
      const first = yield* store.put("mp", Stream.make(Buffer.from("one")))
      const upload = (ifMatch: string) =>
        Effect.gen(function*() {
          const u = yield* store.createMultipart("mp", { ifMatch, metadata: { v: "mp" } })
          const p = yield* store.uploadPart(u, 1, Stream.make(Buffer.from("multipart")))
          return { u, p }
        })
      const a = yield* upload(first.etag)
      const replaced = yield* store.put("mp", Stream.make(Buffer.from("replaced")))
      assert.strictEqual((yield* Effect.flip(store.completeMultipart(a.u, [a.p])))._tag, "PreconditionFailed")
      assert.strictEqual((yield* text(store, "mp")).text, "replaced")

      const b = yield* upload(replaced.etag)
      yield* store.remove("mp")
      assert.strictEqual((yield* Effect.flip(store.completeMultipart(b.u, [b.p])))._tag, "PreconditionFailed")
      assert.strictEqual((yield* Effect.flip(store.head("mp")))._tag, "ObjectNotFound")

      const again = yield* store.put("mp", Stream.make(Buffer.from("again")))
      const c = yield* upload(`"${again.etag}"`)
      yield* store.completeMultipart(c.u, [c.p])
      assert.deepStrictEqual(yield* text(store, "mp"), { text: "multipart", metadata: { v: "mp" } })
    }))
  // 2 parts: one compose; 33 parts: composites of composites, whose intermediate objects a
  // refused completion must keep too.
  for (const n of [2, 33]) {
    it.scoped(`completeMultipart ifNoneMatch (${n} parts): over an existing key PreconditionFailed with the old object intact and the upload kept; over a missing key it creates`, () =>
      Effect.gen(function*() {
        const { direct, store } = yield* setup()
        yield* store.put("k", Stream.make(Buffer.from("old")), { metadata: { v: "old" } })
        const a = yield* staged(store, "k", chunks(n, "a"))
        const refused = yield* Effect.flip(store.completeMultipart(a.u, a.parts, { ifNoneMatch: "*" }))
        assert.deepStrictEqual([refused._tag, (refused as { key?: string }).key], ["PreconditionFailed", "k"])
        assert.deepStrictEqual(yield* text(store, "k"), { text: "old", metadata: { v: "old" } })
        assert.isAtLeast((yield* uploadObjects(direct)).length, n + 1, "the record and every part are kept")
        // Still usable: completed unconditionally, it replaces the object and is gone.
        yield* store.completeMultipart(a.u, a.parts)
        assert.deepStrictEqual(yield* text(store, "k"), { text: a.text, metadata: { v: "mp" } })
        assert.deepStrictEqual(yield* uploadObjects(direct), [])

        // Or aborted after the refusal.
        const b = yield* staged(store, "k", chunks(n, "b"))
        assert.strictEqual((yield* Effect.flip(store.completeMultipart(b.u, b.parts, { ifNoneMatch: "*" })))._tag, "PreconditionFailed")
        yield* store.abortMultipart(b.u)
        assert.deepStrictEqual(yield* uploadObjects(direct), [])
        assert.strictEqual((yield* Effect.flip(store.completeMultipart(b.u, b.parts)))._tag, "PreconditionFailed")
        assert.strictEqual((yield* text(store, "k")).text, a.text)

        const c = yield* staged(store, "new", chunks(n, "c"))
        yield* store.completeMultipart(c.u, c.parts, { ifNoneMatch: "*" })
        assert.deepStrictEqual(yield* text(store, "new"), { text: c.text, metadata: { v: "mp" } })
        assert.deepStrictEqual(yield* uploadObjects(direct), [])
      }))
  }

  it.scoped("completeMultipart ifMatch: the current etag (quoted or not) replaces; a stale etag or a missing key is PreconditionFailed and keeps the upload", () =>
    Effect.gen(function*() {
      const { direct, store } = yield* setup()
      const first = yield* store.put("k", Stream.make(Buffer.from("one")), { metadata: { v: "1" } })
      const a = yield* staged(store, "k", chunks(3, "a"))
      yield* store.completeMultipart(a.u, a.parts, { ifMatch: `"${first.etag}"` })
      assert.deepStrictEqual(yield* text(store, "k"), { text: a.text, metadata: { v: "mp" } })

      const b = yield* staged(store, "k", chunks(3, "b"))
      const replaced = yield* store.put("k", Stream.make(Buffer.from("replaced")), { metadata: { v: "r" } })
      for (const stale of [first.etag, "CAE="]) {
        const e = yield* Effect.flip(store.completeMultipart(b.u, b.parts, { ifMatch: stale }))
        assert.deepStrictEqual([e._tag, (e as { key?: string }).key], ["PreconditionFailed", "k"])
        assert.deepStrictEqual(yield* text(store, "k"), { text: "replaced", metadata: { v: "r" } })
      }
      yield* store.completeMultipart(b.u, b.parts, { ifMatch: replaced.etag })
      assert.deepStrictEqual(yield* text(store, "k"), { text: b.text, metadata: { v: "mp" } })

      const c = yield* staged(store, "missing", chunks(2, "c"))
      assert.strictEqual((yield* Effect.flip(store.completeMultipart(c.u, c.parts, { ifMatch: replaced.etag })))._tag, "PreconditionFailed")
      assert.strictEqual((yield* Effect.flip(store.head("missing")))._tag, "ObjectNotFound")
      assert.isNotEmpty(yield* uploadObjects(direct))
      yield* store.abortMultipart(c.u)
      assert.deepStrictEqual(yield* uploadObjects(direct), [])
    }))

  it.scoped("completeMultipart conditions are checked by the server on the compose: a writer between the driver's read and the compose is not overwritten", () =>
    Effect.gen(function*() {
      const { arm, direct, isArmed, store } = yield* setup()
      const first = yield* store.put("race", Stream.make(Buffer.from("first")))
      const a = yield* staged(store, "race", chunks(3, "a"))
      const theirs = crypto.randomBytes(50)
      arm("race", theirs, writesKey("race"))
      assert.strictEqual((yield* Effect.flip(store.completeMultipart(a.u, a.parts, { ifMatch: first.etag })))._tag, "PreconditionFailed")
      assert.isFalse(isArmed(), "the other writer ran")
      assert.isTrue(Buffer.from((yield* ObjectStore.readAll(direct, "race")).bytes).equals(theirs))

      const b = yield* staged(store, "fresh", chunks(3, "b"))
      arm("fresh", theirs, writesKey("fresh"))
      assert.strictEqual((yield* Effect.flip(store.completeMultipart(b.u, b.parts, { ifNoneMatch: "*" })))._tag, "PreconditionFailed")
      assert.isFalse(isArmed(), "the other writer ran")
      assert.isTrue(Buffer.from((yield* ObjectStore.readAll(direct, "fresh")).bytes).equals(theirs))
      // Both uploads are still there.
      yield* store.completeMultipart(a.u, a.parts)
      yield* store.completeMultipart(b.u, b.parts)
      assert.deepStrictEqual([(yield* text(store, "race")).text, (yield* text(store, "fresh")).text], [a.text, b.text])
    }))

  it.scoped("a parallel put refused by its condition at the compose still removes its part objects (only completeMultipart keeps them)", () =>
    Effect.gen(function*() {
      const { direct, store } = yield* setup()
      yield* store.put("k", Stream.make(Buffer.from("old")))
      const e = yield* Effect.flip(store.put("k", Stream.make(crypto.randomBytes(3 * PART + 10)), { ifNoneMatch: "*" }))
      assert.strictEqual(e._tag, "PreconditionFailed")
      assert.strictEqual((yield* text(store, "k")).text, "old")
      assert.deepStrictEqual(yield* uploadObjects(direct), [])
    }))

  it.scoped("completeMultipart with the conditions of createMultipart: both must hold", () =>
    Effect.gen(function*() {
      const { direct, requests, store } = yield* setup()
      const first = yield* store.put("k", Stream.make(Buffer.from("one")))

      // ifMatch and ifNoneMatch together on the completion: 400 before any request.
      const a = yield* staged(store, "k", chunks(2, "a"))
      const before = requests()
      assert.deepStrictEqual(usageError(yield* Effect.flip(store.completeMultipart(a.u, a.parts, { ifMatch: first.etag, ifNoneMatch: "*" }))), ["ProviderError", "InvalidRequest", 400])
      assert.strictEqual(requests(), before, "no request sent")
      assert.strictEqual((yield* text(store, "k")).text, "one")

      // Two ifMatch naming different versions never both hold; the same version (quoted or not) does.
      const b = yield* staged(store, "k", chunks(2, "b"), { ifMatch: first.etag })
      assert.strictEqual((yield* Effect.flip(store.completeMultipart(b.u, b.parts, { ifMatch: "CAE=" })))._tag, "PreconditionFailed")
      assert.strictEqual((yield* text(store, "k")).text, "one")
      const done = yield* store.completeMultipart(b.u, b.parts, { ifMatch: `"${first.etag}"` })
      assert.strictEqual((yield* text(store, "k")).text, b.text)

      // ifNoneMatch at creation (kept with the upload) and ifMatch at completion, or the reverse:
      // the usage error, with nothing written and the upload kept.
      const c = yield* staged(store, "k", chunks(2, "c"), { ifNoneMatch: "*" })
      const d = yield* staged(store, "k", chunks(2, "d"), { ifMatch: done.etag })
      assert.deepStrictEqual(usageError(yield* Effect.flip(store.completeMultipart(c.u, c.parts, { ifMatch: done.etag }))), ["ProviderError", "InvalidRequest", 400])
      assert.deepStrictEqual(usageError(yield* Effect.flip(store.completeMultipart(d.u, d.parts, { ifNoneMatch: "*" }))), ["ProviderError", "InvalidRequest", 400])
      assert.strictEqual((yield* text(store, "k")).text, b.text)
      // The creation's ifNoneMatch still holds on a completion without conditions.
      assert.strictEqual((yield* Effect.flip(store.completeMultipart(c.u, c.parts)))._tag, "PreconditionFailed")
      assert.strictEqual((yield* text(store, "k")).text, b.text)
      yield* store.abortMultipart(c.u)
      yield* store.completeMultipart(d.u, d.parts)
      assert.strictEqual((yield* text(store, "k")).text, d.text)
      // The first upload, refused before any request, is still there to abort.
      assert.lengthOf(yield* uploadObjects(direct), 3)
      yield* store.abortMultipart(a.u)
      assert.deepStrictEqual(yield* uploadObjects(direct), [])
    }))

  it.scoped("remove ifMatch: the current etag (quoted or not) removes; a stale etag or a missing key is PreconditionFailed and removes nothing", () =>
    Effect.gen(function*() {
      const { direct, store } = yield* setup()
      const first = yield* store.put("k", Stream.make(Buffer.from("one")), { metadata: { v: "1" } })
      const second = yield* store.put("k", Stream.make(Buffer.from("two")), { metadata: { v: "2" } })
      for (const etag of [first.etag, "CAE="]) {
        const stale = yield* Effect.flip(store.remove("k", { ifMatch: etag }))
        assert.deepStrictEqual([stale._tag, (stale as { key?: string }).key], ["PreconditionFailed", "k"])
        assert.deepStrictEqual(yield* text(store, "k"), { text: "two", metadata: { v: "2" } })
      }
      // A metadata-only change (new metageneration) makes the etag stale too.
      const patched = yield* direct.copy("k", "k", { metadata: { v: "3" } })
      assert.strictEqual((yield* Effect.flip(store.remove("k", { ifMatch: second.etag })))._tag, "PreconditionFailed")
      assert.deepStrictEqual(yield* text(store, "k"), { text: "two", metadata: { v: "3" } })
      yield* store.remove("k", { ifMatch: `"${patched.etag}"` })
      assert.strictEqual((yield* Effect.flip(store.head("k")))._tag, "ObjectNotFound")

      const third = yield* store.put("k", Stream.make(Buffer.from("three")))
      yield* store.remove("k", { ifMatch: third.etag })
      assert.strictEqual((yield* Effect.flip(store.head("k")))._tag, "ObjectNotFound")

      // A missing key: refused with ifMatch, still a success without.
      const missing = yield* Effect.flip(store.remove("k", { ifMatch: third.etag }))
      assert.deepStrictEqual([missing._tag, (missing as { key?: string }).key], ["PreconditionFailed", "k"])
      yield* store.remove("k")
      yield* store.remove("never-written")
    }))

  it.scoped("remove ifMatch: an object replaced after the driver read its etag is not removed (the server's generation check)", () =>
    Effect.gen(function*() {
      const { arm, direct, isArmed, store } = yield* setup()
      const first = yield* store.put("race", Stream.make(Buffer.from("first")))
      const theirs = crypto.randomBytes(50)
      arm("race", theirs, (method, url) => method === "DELETE" && url.includes(`/o/${encodeURIComponent("race")}`))
      const e = yield* Effect.flip(store.remove("race", { ifMatch: first.etag }))
      assert.isFalse(isArmed(), "the other writer ran")
      assert.deepStrictEqual([e._tag, (e as { key?: string }).key], ["PreconditionFailed", "race"])
      const now = yield* ObjectStore.readAll(direct, "race")
      assert.isTrue(Buffer.from(now.bytes).equals(theirs), "the other writer's object is intact")
      assert.deepStrictEqual({ ...now.info.metadata }, { v: "other" })
    }))
})
