/**
 * `copy` with `ifSourceMatch` against a real Azurite, with the race made real: a request policy in
 * the store's own SDK pipeline lets another writer change the source just before a chosen request
 * of the copy goes out (after the driver's head), so only the conditions the driver sends or
 * re-checks can refuse it.
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

/** Runs the armed trigger (once) before the first request it matches is sent. */
const injector = (state: { armed: Trigger | undefined }): RequestPolicyFactory => ({
  create: (next: RequestPolicy): RequestPolicy => ({
    sendRequest: async (req: WebResource) => {
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
const stagesFromUrl = (r: WebResource) => r.method === "PUT" && comp(r) === "block" && r.headers.get("x-ms-copy-source") !== undefined
const commits = (r: WebResource) => r.method === "PUT" && comp(r) === "blocklist"

const setup = Effect.gen(function*() {
  const info = yield* Effect.promise(() => azurite.runPromise(Azurite.Azurite))
  const state: { armed: Trigger | undefined } = { armed: undefined }
  const base: AzureConfig = {
    container: `copy-${crypto.randomBytes(5).toString("hex")}`,
    accountUrl: info.blobEndpoint,
    credentials: { _tag: "SharedKey", accountName: info.accountName, accountKey: Redacted.make(info.accountKey) },
    blockSize: 64 * 1024,
    copyBlockSize: 64 * 1024
  }
  const direct = yield* AzureBlobObjectStore.make(base)
  yield* Effect.orDie(AzureBlobObjectStore.createContainer(direct.client))
  const store = yield* AzureBlobObjectStore.make({ ...base, requestPolicyFactories: [injector(state)] })
  return {
    direct,
    store,
    arm: (when: Trigger["when"], run: Trigger["run"]) => {
      state.armed = { when, run }
    }
  }
})

describe("AzureBlobObjectStore copy with ifSourceMatch (Azurite)", () => {
  it.scoped("to another key: a source replaced while its blocks are staged fails PreconditionFailed, no destination", () =>
    Effect.gen(function*() {
      const { arm, direct, store } = yield* setup
      yield* direct.put("src", Stream.make(crypto.randomBytes(200 * 1024)), { metadata: { v: "old" } })
      const { etag } = yield* store.head("src")
      const fresh = crypto.randomBytes(200 * 1024 + 1)
      arm(stagesFromUrl, () => Effect.runPromise(direct.put("src", Stream.make(fresh), { metadata: { v: "new" } })))
      const e = yield* Effect.flip(store.copy("src", "dst", { metadata: { v: "copied" }, ifSourceMatch: etag }))
      assert.strictEqual(e._tag, "PreconditionFailed")
      assert.strictEqual((yield* Effect.flip(direct.head("dst")))._tag, "ObjectNotFound")
      assert.isTrue(Buffer.from((yield* ObjectStore.readAll(direct, "src")).bytes).equals(fresh))
    }))

  it.scoped("onto the same key: a metadata-only change before the commit fails the commit's If-Match", () =>
    Effect.gen(function*() {
      const { arm, direct, store } = yield* setup
      const body = crypto.randomBytes(200 * 1024)
      yield* direct.put("k", Stream.make(body), { metadata: { v: "old" } })
      const { etag } = yield* store.head("k")
      // Setting metadata changes the etag but keeps the uncommitted blocks: only If-Match sees it.
      arm(commits, () => direct.client.getBlockBlobClient("k").setMetadata({ v: "other-writer" }))
      const e = yield* Effect.flip(store.copy("k", "k", { metadata: { v: "rekeyed" }, ifSourceMatch: etag }))
      assert.strictEqual(e._tag, "PreconditionFailed")
      const now = yield* ObjectStore.readAll(direct, "k")
      assert.deepStrictEqual({ ...now.info.metadata }, { v: "other-writer" })
      assert.isTrue(Buffer.from(now.bytes).equals(body))
    }))

  it.scoped("onto the same key: a new body before the commit fails it too; the current etag goes through", () =>
    Effect.gen(function*() {
      const { arm, direct, store } = yield* setup
      yield* direct.put("k", Stream.make(crypto.randomBytes(200 * 1024)), { metadata: { v: "old" } })
      const { etag } = yield* store.head("k")
      const fresh = crypto.randomBytes(1000)
      arm(commits, () => Effect.runPromise(direct.put("k", Stream.make(fresh), { metadata: { v: "new" } })))
      const e = yield* Effect.flip(store.copy("k", "k", { metadata: { v: "rekeyed" }, ifSourceMatch: etag }))
      assert.strictEqual(e._tag, "PreconditionFailed")
      const now = yield* ObjectStore.readAll(direct, "k")
      assert.isTrue(Buffer.from(now.bytes).equals(fresh))
      assert.deepStrictEqual({ ...now.info.metadata }, { v: "new" })
      yield* store.copy("k", "k", { metadata: { v: "rekeyed" }, ifSourceMatch: now.info.etag })
      assert.deepStrictEqual({ ...(yield* direct.head("k")).metadata }, { v: "rekeyed" })
    }))
})
