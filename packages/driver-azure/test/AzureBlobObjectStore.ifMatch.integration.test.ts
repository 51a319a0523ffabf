/**
 * `put` and `createMultipart` with `ifMatch` against a real Azurite: `If-Match` on Put Blob and on
 * Put Block List. Races are made real by a request policy in the store's own SDK pipeline that
 * lets another writer replace the blob just before a chosen request goes out.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import type { RequestPolicy, RequestPolicyFactory, WebResource } from "@azure/storage-blob"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as Azurite from "@objcrypt/test-kit/Azurite"
import { Effect, ManagedRuntime, Redacted, Stream } from "effect"
import * as crypto from "node:crypto"
import * as AzureBlobObjectStore from "../src/AzureBlobObjectStore.js"
import type { AzureConfig } from "../src/AzureConfig.js"

const azurite = ManagedRuntime.make(Azurite.layer())
afterAll(() => azurite.dispose(), 60_000)

type Trigger = { readonly when: (r: WebResource) => boolean; readonly run: () => Promise<unknown> }

/** Records every request, and runs the armed trigger (once) before the first request it matches is sent. */
const injector = (state: { armed: Trigger | undefined; seen: Array<WebResource> }): RequestPolicyFactory => ({
  create: (next: RequestPolicy): RequestPolicy => ({
    sendRequest: async (req: WebResource) => {
      state.seen.push(req)
      const t = state.armed
      if (t !== undefined && t.when(req)) {
        state.armed = undefined
        await t.run()
      }
      return next.sendRequest(req)
    }
  })
})

const comp = (r: WebResource) => new URL(r.url).searchParams.get("comp")
const putBlob = (r: WebResource) => r.method === "PUT" && comp(r) === null
const commits = (r: WebResource) => r.method === "PUT" && comp(r) === "blocklist"

const setup = Effect.gen(function*() {
  const info = yield* Effect.promise(() => azurite.runPromise(Azurite.Azurite))
  const state: { armed: Trigger | undefined; seen: Array<WebResource> } = { armed: undefined, seen: [] }
  const base: AzureConfig = {
    container: `ifmatch-${crypto.randomBytes(5).toString("hex")}`,
    accountUrl: info.blobEndpoint,
    credentials: { _tag: "SharedKey", accountName: info.accountName, accountKey: Redacted.make(info.accountKey) },
    blockSize: 64 * 1024
  }
  const direct = yield* AzureBlobObjectStore.make(base)
  yield* Effect.orDie(AzureBlobObjectStore.createContainer(direct.client))
  const store = yield* AzureBlobObjectStore.make({ ...base, requestPolicyFactories: [injector(state)] })
  return {
    direct,
    store,
    arm: (when: Trigger["when"], run: Trigger["run"]) => {
      state.armed = { when, run }
    },
    isArmed: () => state.armed !== undefined,
    /** Requests the store sent so far. */
    requests: () => state.seen.length
  }
})

const text = (store: ObjectStore.ObjectStore["Type"], key: string) =>
  Effect.map(ObjectStore.readAll(store, key), (r) => ({ text: Buffer.from(r.bytes).toString(), metadata: { ...r.info.metadata } }))

/** An upload of `chunks` (one part each) to `key`, not committed. */
const staged = (store: ObjectStore.ObjectStore["Type"], key: string, chunks: ReadonlyArray<string>, options?: ObjectStore.PutOptions) =>
  Effect.gen(function*() {
    const u = yield* store.createMultipart(key, { metadata: { v: "mp" }, ...options })
    const parts = yield* Effect.forEach(chunks, (c, i) => store.uploadPart(u, i + 1, Stream.make(Buffer.from(c))))
    return { u, parts, text: chunks.join("") }
  })

const chunks = (tag: string) => [`${tag}0;`, `${tag}1;`, `${tag}2;`]

/** The blob's staged (uncommitted) blocks: an upload in progress. */
const uncommitted = (store: AzureBlobObjectStore.AzureBlobObjectStore["Type"], key: string) =>
  Effect.promise(() =>
    store.client.getBlockBlobClient(key).getBlockList("uncommitted").then((l) => l.uncommittedBlocks?.length ?? 0, () => 0)
  )

const usageError = (e: { readonly _tag: string }) => [e._tag, (e as { code?: string }).code, (e as { status?: number }).status]

describe("AzureBlobObjectStore ifMatch (Azurite)", () => {
  for (const [name, size] of [["Put Blob", 10], ["staged blocks + Put Block List", 200 * 1024]] as const) {
    it.scoped(`${name}: a stale etag or a missing blob is PreconditionFailed and writes nothing; a match (quoted or not) overwrites`, () =>
      Effect.gen(function*() {
        const { store } = yield* setup
        const body = () => crypto.randomBytes(size)
        const one = body()
        const first = yield* store.put("k", Stream.make(one), { metadata: { v: "1" } })
        const stale = yield* Effect.flip(store.put("k", Stream.make(body()), { ifMatch: "0x8D0000000000000" }))
        assert.deepStrictEqual([stale._tag, (stale as { key?: string }).key], ["PreconditionFailed", "k"])
        const now = yield* ObjectStore.readAll(store, "k")
        assert.isTrue(Buffer.from(now.bytes).equals(one))
        assert.deepStrictEqual({ ...now.info.metadata }, { v: "1" })
        const missing = yield* Effect.flip(store.put("nope", Stream.make(body()), { ifMatch: first.etag }))
        assert.strictEqual(missing._tag, "PreconditionFailed")
        assert.strictEqual((yield* Effect.flip(store.head("nope")))._tag, "ObjectNotFound")
        const two = body()
        const second = yield* store.put("k", Stream.make(two), { ifMatch: `"${first.etag}"`, metadata: { v: "2" } })
        assert.isTrue(Buffer.from((yield* ObjectStore.readAll(store, "k")).bytes).equals(two))
        const three = body()
        yield* store.put("k", Stream.make(three), { ifMatch: second.etag })
        assert.strictEqual((yield* Effect.flip(store.put("k", Stream.make(body()), { ifMatch: first.etag })))._tag, "PreconditionFailed")
        assert.isTrue(Buffer.from((yield* ObjectStore.readAll(store, "k")).bytes).equals(three))
      }))
  }

  it.scoped("ifMatch with ifNoneMatch is a usage error (400 InvalidRequest) for put and createMultipart", () =>
    Effect.gen(function*() {
      const { store } = yield* setup
      const first = yield* store.put("k", Stream.make(Buffer.from("one")))
      for (const e of [
        yield* Effect.flip(store.put("k", Stream.make(Buffer.from("two")), { ifMatch: first.etag, ifNoneMatch: "*" })),
        yield* Effect.flip(store.createMultipart("k", { ifMatch: first.etag, ifNoneMatch: "*" }))
      ]) {
        assert.deepStrictEqual([e._tag, (e as { code?: string }).code, (e as { status?: number }).status], ["ProviderError", "InvalidRequest", 400])
      }
      assert.strictEqual((yield* text(store, "k")).text, "one")
    }))

  for (const [name, size, when] of [["Put Blob", 10, putBlob], ["Put Block List", 200 * 1024, commits]] as const) {
    it.scoped(`${name}: a blob replaced just before the write goes out is not overwritten`, () =>
      Effect.gen(function*() {
        const { arm, direct, isArmed, store } = yield* setup
        const first = yield* store.put("race", Stream.make(Buffer.from("first")))
        const theirs = crypto.randomBytes(50)
        arm(when, () => Effect.runPromise(direct.put("race", Stream.make(theirs), { metadata: { v: "other" } })))
        const e = yield* Effect.flip(store.put("race", Stream.make(crypto.randomBytes(size)), { ifMatch: first.etag }))
        assert.isFalse(isArmed(), "the other writer ran")
        assert.strictEqual(e._tag, "PreconditionFailed")
        const now = yield* ObjectStore.readAll(direct, "race")
        assert.isTrue(Buffer.from(now.bytes).equals(theirs), "the other writer's blob is intact")
        assert.deepStrictEqual({ ...now.info.metadata }, { v: "other" })
      }))
  }

  it.scoped("createMultipart with ifMatch: sent on the commit; replaced or removed meanwhile fails, a match completes", () =>
    Effect.gen(function*() {
      const { store } = yield* setup
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
  it.scoped("completeMultipart ifNoneMatch: over an existing blob PreconditionFailed with the old blob intact and the upload kept; over a missing blob it creates", () =>
    Effect.gen(function*() {
      const { direct, store } = yield* setup
      yield* store.put("k", Stream.make(Buffer.from("old")), { metadata: { v: "old" } })
      const a = yield* staged(store, "k", chunks("a"))
      const refused = yield* Effect.flip(store.completeMultipart(a.u, a.parts, { ifNoneMatch: "*" }))
      assert.deepStrictEqual([refused._tag, (refused as { key?: string }).key], ["PreconditionFailed", "k"])
      assert.deepStrictEqual(yield* text(store, "k"), { text: "old", metadata: { v: "old" } })
      assert.strictEqual(yield* uncommitted(direct, "k"), 4, "the marker block and the three parts' blocks are kept")
      // Still usable: committed without conditions, it replaces the blob.
      yield* store.completeMultipart(a.u, a.parts)
      assert.deepStrictEqual(yield* text(store, "k"), { text: a.text, metadata: { v: "mp" } })
      assert.strictEqual(yield* uncommitted(direct, "k"), 0)

      // Or aborted after the refusal.
      const b = yield* staged(store, "k", chunks("b"))
      assert.strictEqual((yield* Effect.flip(store.completeMultipart(b.u, b.parts, { ifNoneMatch: "*" })))._tag, "PreconditionFailed")
      yield* store.abortMultipart(b.u)
      assert.strictEqual((yield* Effect.flip(store.completeMultipart(b.u, b.parts)))._tag, "PreconditionFailed")
      assert.strictEqual((yield* text(store, "k")).text, a.text)

      const c = yield* staged(store, "new", chunks("c"))
      yield* store.completeMultipart(c.u, c.parts, { ifNoneMatch: "*" })
      assert.deepStrictEqual(yield* text(store, "new"), { text: c.text, metadata: { v: "mp" } })
    }))

  it.scoped("completeMultipart ifMatch: the current etag (quoted or not) replaces; a stale etag or a missing blob is PreconditionFailed and keeps the upload", () =>
    Effect.gen(function*() {
      const { direct, store } = yield* setup
      const first = yield* store.put("k", Stream.make(Buffer.from("one")), { metadata: { v: "1" } })
      const a = yield* staged(store, "k", chunks("a"))
      yield* store.completeMultipart(a.u, a.parts, { ifMatch: `"${first.etag}"` })
      assert.deepStrictEqual(yield* text(store, "k"), { text: a.text, metadata: { v: "mp" } })

      const replaced = yield* store.put("k", Stream.make(Buffer.from("replaced")), { metadata: { v: "r" } })
      const b = yield* staged(store, "k", chunks("b"))
      for (const stale of [first.etag, "0x8D0000000000000"]) {
        const e = yield* Effect.flip(store.completeMultipart(b.u, b.parts, { ifMatch: stale }))
        assert.deepStrictEqual([e._tag, (e as { key?: string }).key], ["PreconditionFailed", "k"])
        assert.deepStrictEqual(yield* text(store, "k"), { text: "replaced", metadata: { v: "r" } })
      }
      yield* store.completeMultipart(b.u, b.parts, { ifMatch: replaced.etag })
      assert.deepStrictEqual(yield* text(store, "k"), { text: b.text, metadata: { v: "mp" } })

      const c = yield* staged(store, "missing", chunks("c"))
      assert.strictEqual((yield* Effect.flip(store.completeMultipart(c.u, c.parts, { ifMatch: replaced.etag })))._tag, "PreconditionFailed")
      assert.strictEqual((yield* Effect.flip(store.head("missing")))._tag, "ObjectNotFound")
      assert.strictEqual(yield* uncommitted(direct, "missing"), 4)
      yield* store.abortMultipart(c.u)
      assert.strictEqual((yield* Effect.flip(store.completeMultipart(c.u, c.parts)))._tag, "PreconditionFailed")
      assert.strictEqual((yield* Effect.flip(store.head("missing")))._tag, "ObjectNotFound")
    }))

  it.scoped("completeMultipart conditions go on Put Block List: a blob written just before the commit goes out is not overwritten", () =>
    Effect.gen(function*() {
      const { arm, direct, isArmed, store } = yield* setup
      const first = yield* store.put("race", Stream.make(Buffer.from("first")))
      const theirs = crypto.randomBytes(50)
      const a = yield* staged(store, "race", chunks("a"))
      arm(commits, () => Effect.runPromise(direct.put("race", Stream.make(theirs))))
      assert.strictEqual((yield* Effect.flip(store.completeMultipart(a.u, a.parts, { ifMatch: first.etag })))._tag, "PreconditionFailed")
      assert.isFalse(isArmed(), "the other writer ran")
      assert.isTrue(Buffer.from((yield* ObjectStore.readAll(direct, "race")).bytes).equals(theirs))

      const b = yield* staged(store, "fresh", chunks("b"))
      arm(commits, () => Effect.runPromise(direct.put("fresh", Stream.make(theirs))))
      assert.strictEqual((yield* Effect.flip(store.completeMultipart(b.u, b.parts, { ifNoneMatch: "*" })))._tag, "PreconditionFailed")
      assert.isFalse(isArmed(), "the other writer ran")
      assert.isTrue(Buffer.from((yield* ObjectStore.readAll(direct, "fresh")).bytes).equals(theirs))
    }))

  it.scoped("completeMultipart with the conditions of createMultipart: both must hold", () =>
    Effect.gen(function*() {
      const { requests, store } = yield* setup
      const first = yield* store.put("k", Stream.make(Buffer.from("one")))

      // ifMatch and ifNoneMatch together on the completion: 400 before any request.
      const a = yield* staged(store, "k", chunks("a"))
      const before = requests()
      assert.deepStrictEqual(usageError(yield* Effect.flip(store.completeMultipart(a.u, a.parts, { ifMatch: first.etag, ifNoneMatch: "*" }))), ["ProviderError", "InvalidRequest", 400])
      assert.strictEqual(requests(), before, "no request sent")
      assert.strictEqual((yield* text(store, "k")).text, "one")
      // The upload is untouched: it can still be completed.
      const completed = yield* store.completeMultipart(a.u, a.parts, { ifMatch: first.etag })
      assert.strictEqual((yield* text(store, "k")).text, a.text)

      // Two ifMatch naming different versions never both hold; the same version (quoted or not) does.
      const b = yield* staged(store, "k", chunks("b"), { ifMatch: completed.etag })
      assert.strictEqual((yield* Effect.flip(store.completeMultipart(b.u, b.parts, { ifMatch: "0x8D0000000000000" })))._tag, "PreconditionFailed")
      assert.strictEqual((yield* text(store, "k")).text, a.text)
      const done = yield* store.completeMultipart(b.u, b.parts, { ifMatch: `"${completed.etag}"` })
      assert.strictEqual((yield* text(store, "k")).text, b.text)

      // ifNoneMatch at creation (inside the upload id) and ifMatch at completion, or the reverse:
      // the usage error before any request, with nothing written and the upload kept.
      const c = yield* staged(store, "k", chunks("c"), { ifNoneMatch: "*" })
      const d = yield* staged(store, "k", chunks("d"), { ifMatch: done.etag })
      const sent = requests()
      assert.deepStrictEqual(usageError(yield* Effect.flip(store.completeMultipart(c.u, c.parts, { ifMatch: done.etag }))), ["ProviderError", "InvalidRequest", 400])
      assert.deepStrictEqual(usageError(yield* Effect.flip(store.completeMultipart(d.u, d.parts, { ifNoneMatch: "*" }))), ["ProviderError", "InvalidRequest", 400])
      assert.strictEqual(requests(), sent, "no request sent")
      assert.strictEqual((yield* text(store, "k")).text, b.text)
      // The creation's ifNoneMatch still holds on a completion without conditions.
      assert.strictEqual((yield* Effect.flip(store.completeMultipart(c.u, c.parts)))._tag, "PreconditionFailed")
      assert.strictEqual((yield* text(store, "k")).text, b.text)
      yield* store.abortMultipart(c.u)
      yield* store.completeMultipart(d.u, d.parts)
      assert.strictEqual((yield* text(store, "k")).text, d.text)
    }))

  it.scoped("remove ifMatch: the current etag (quoted or not) removes; a stale etag or a missing blob is PreconditionFailed and removes nothing", () =>
    Effect.gen(function*() {
      const { store } = yield* setup
      const first = yield* store.put("k", Stream.make(Buffer.from("one")), { metadata: { v: "1" } })
      const second = yield* store.put("k", Stream.make(Buffer.from("two")), { metadata: { v: "2" } })
      const stale = yield* Effect.flip(store.remove("k", { ifMatch: first.etag }))
      assert.deepStrictEqual([stale._tag, (stale as { key?: string }).key], ["PreconditionFailed", "k"])
      assert.deepStrictEqual(yield* text(store, "k"), { text: "two", metadata: { v: "2" } })
      yield* store.remove("k", { ifMatch: `"${second.etag}"` })
      assert.strictEqual((yield* Effect.flip(store.head("k")))._tag, "ObjectNotFound")

      const third = yield* store.put("k", Stream.make(Buffer.from("three")))
      yield* store.remove("k", { ifMatch: third.etag })
      assert.strictEqual((yield* Effect.flip(store.head("k")))._tag, "ObjectNotFound")

      // A missing blob: refused with ifMatch, still a success without.
      const missing = yield* Effect.flip(store.remove("k", { ifMatch: third.etag }))
      assert.deepStrictEqual([missing._tag, (missing as { key?: string }).key], ["PreconditionFailed", "k"])
      yield* store.remove("k")
      yield* store.remove("never-written")
    }))

  it.scoped("remove ifMatch goes on Delete Blob: a blob replaced just before the delete goes out is not removed", () =>
    Effect.gen(function*() {
      const { arm, direct, isArmed, store } = yield* setup
      const first = yield* store.put("race", Stream.make(Buffer.from("first")))
      const theirs = crypto.randomBytes(50)
      arm((r) => r.method === "DELETE", () => Effect.runPromise(direct.put("race", Stream.make(theirs), { metadata: { v: "other" } })))
      const e = yield* Effect.flip(store.remove("race", { ifMatch: first.etag }))
      assert.isFalse(isArmed(), "the other writer ran")
      assert.strictEqual(e._tag, "PreconditionFailed")
      const now = yield* ObjectStore.readAll(direct, "race")
      assert.isTrue(Buffer.from(now.bytes).equals(theirs), "the other writer's blob is intact")
      assert.deepStrictEqual({ ...now.info.metadata }, { v: "other" })
    }))
})
