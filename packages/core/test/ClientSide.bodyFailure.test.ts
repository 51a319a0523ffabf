import { assert, describe, it } from "@effect/vitest"
import { Data, Effect, Redacted, Stream } from "effect"
import * as crypto from "node:crypto"
import * as ClientSide from "../src/ClientSide.js"
import * as Keyring from "../src/Keyring.js"
import * as MemoryStore from "./support/MemoryStore.js"

class BodyFailed extends Data.TaggedError("BodyFailed")<{ readonly at: string }> {}

const keyring = Keyring.aes({ keyId: "k", material: Redacted.make(crypto.randomBytes(32)) })
const failingBody = Stream.concat(
  Stream.make(crypto.randomBytes(5000), crypto.randomBytes(5000)),
  Stream.fail(new BodyFailed({ at: "10000 bytes" }))
)

describe("ClientSide.put with a body that fails", () => {
  it.effect("in the first part: the body's own typed error, nothing stored", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make({ minPartSize: 1024 })
      const e = yield* Effect.flip(ClientSide.put(store, "x", failingBody, [keyring], { partSize: 1 << 20, segmentSize: 1024 }))
      assert.deepStrictEqual([e._tag, (e as BodyFailed).at], ["BodyFailed", "10000 bytes"])
      assert.strictEqual(store.objects.size, 0)
    }))

  it.effect("after several multipart parts: the body's own typed error, upload aborted, nothing stored", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make({ minPartSize: 1024 })
      const e = yield* Effect.flip(ClientSide.put(store, "y", failingBody, [keyring], { partSize: 4096, segmentSize: 1024 }))
      assert.strictEqual(e._tag, "BodyFailed")
      assert.strictEqual(store.objects.size, 0)
      assert.strictEqual(store.uploads.size, 0)
      assert.isAtLeast(store.stats.aborts, 1)
    }))
})
