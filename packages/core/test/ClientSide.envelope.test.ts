import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Redacted, Stream } from "effect"
import * as crypto from "node:crypto"
import * as ClientSide from "../src/ClientSide.js"
import * as Keyring from "../src/Keyring.js"
import * as NativeFormat from "../src/NativeFormat.js"
import { memoryKeyStore, symmetric } from "./support/Keys.js"

const aesKey = crypto.randomBytes(32)
const keyring = Keyring.aes({ keyId: "k1", version: 1, material: Redacted.make(aesKey) })
const unwrapper = Keyring.makeUnwrapper({ keyStore: memoryKeyStore([symmetric("k1", 1, aesKey)]) })
const otherUnwrapper = Keyring.makeUnwrapper({ keyStore: memoryKeyStore([symmetric("k1", 1, crypto.randomBytes(32))]) })
const target = { bucket: "b", key: "big/object" }

const run = <E, R>(s: Stream.Stream<Uint8Array, E, R>) => Effect.map(Stream.runCollect(s), (c) => Buffer.concat(Chunk.toArray(c)))

describe("ClientSide envelope keys", () => {
  it.scoped("parts sealed at their segment index are the object's own segments; each opens on its own", () =>
    Effect.gen(function*() {
      const created = yield* ClientSide.createEnvelope([keyring], target, { segmentSize: 64, context: { app: "gw" } })
      const pt = crypto.randomBytes(64 * 7 + 9)
      const whole = yield* run(Stream.make(pt).pipe(created.seal()))
      // Part 1: segments 0..3 (not final); part 2: segments 4.. (final).
      const p1 = yield* run(Stream.make(pt.subarray(0, 256)).pipe(created.seal({ firstSegment: 0, final: false })))
      const p2 = yield* run(Stream.make(pt.subarray(256)).pipe(created.seal({ firstSegment: 4, final: true })))
      assert.isTrue(Buffer.concat([p1, p2]).equals(whole))

      // A reader holding only the stored envelope opens it with its keyring.
      const metadata = NativeFormat.encodeEnvelope(created.envelope)
      const loc = NativeFormat.decodeEnvelope(metadata)
      assert.strictEqual(loc._tag, "Right")
      const envelope = loc._tag === "Right" && loc.right._tag === "Inline" ? loc.right.envelope : created.envelope
      const opened = yield* ClientSide.openEnvelope(envelope, unwrapper, target)
      assert.isTrue((yield* run(Stream.make(whole).pipe(opened.open({ plaintextSize: pt.length })))).equals(pt))
      // The second part alone, as a ranged read of its segments.
      const range = { start: 256, end: pt.length }
      const plan = NativeFormat.planRange(pt.length, 64, range)
      const part2 = yield* run(Stream.make(whole.subarray(plan.cipherStart, plan.cipherEnd)).pipe(opened.open({ plaintextSize: pt.length, range })))
      assert.isTrue(part2.equals(pt.subarray(256)))
    }))

  it.scoped("independently salted parts: same data key, own segment streams, wrong salt fails", () =>
    Effect.gen(function*() {
      const created = yield* ClientSide.createEnvelope([keyring], target, { segmentSize: 128 })
      const salt = crypto.randomBytes(NativeFormat.SALT_LENGTH)
      const pt = crypto.randomBytes(1000)
      const ct = yield* run(Stream.make(pt).pipe(created.seal({ keys: created.keysForSalt(salt) })))
      const opened = yield* ClientSide.openEnvelope(created.envelope, unwrapper, target)
      const back = yield* run(Stream.make(ct).pipe(opened.open({ plaintextSize: pt.length, keys: opened.keysForSalt(salt) })))
      assert.isTrue(back.equals(pt))
      const wrong = yield* Effect.flip(
        run(Stream.make(ct).pipe(opened.open({ plaintextSize: pt.length, keys: opened.keysForSalt(crypto.randomBytes(32)) })))
      )
      assert.strictEqual(wrong.reason, "Tampered")
      assert.throws(() => opened.keysForSalt(new Uint8Array(5)))
    }))

  it.effect("an envelope opened for another object, or with another key, is refused", () =>
    Effect.scoped(Effect.gen(function*() {
      const created = yield* ClientSide.createEnvelope([keyring], target)
      const moved = yield* Effect.flip(ClientSide.openEnvelope(created.envelope, unwrapper, { bucket: "b", key: "other" }))
      assert.strictEqual(moved.reason, "ContextMismatch")
      const wrongKey = yield* Effect.flip(ClientSide.openEnvelope(created.envelope, otherUnwrapper, target))
      assert.strictEqual(wrongKey.reason, "WrongKey")
      const bad = yield* Effect.flip(ClientSide.createEnvelope([keyring], target, { context: { "oc:key": "x" } }))
      assert.strictEqual(bad._tag, "EncryptError")
    })))

  it.effect("the data key is zeroed when the scope closes", () =>
    Effect.gen(function*() {
      const salt = crypto.randomBytes(32)
      const { inside, opened } = yield* Effect.scoped(Effect.gen(function*() {
        const o = yield* ClientSide.createEnvelope([keyring], target)
        return { inside: o.keysForSalt(salt), opened: o }
      }))
      const after = opened.keysForSalt(salt)
      assert.isFalse(Buffer.from(after.commitment).equals(Buffer.from(inside.commitment)))
    }))

  it.scoped("sealing and opening on a worker pool gives the same bytes", () =>
    Effect.gen(function*() {
      const pool = yield* ClientSide.makeWorkerPool(2)
      const created = yield* ClientSide.createEnvelope([keyring], target, { segmentSize: 256 })
      const pt = crypto.randomBytes(5000)
      const a = yield* run(Stream.make(pt).pipe(created.seal()))
      const b = yield* run(Stream.make(pt).pipe(created.seal({ pool })))
      assert.isTrue(a.equals(b))
      assert.isTrue((yield* run(Stream.make(b).pipe(created.open({ plaintextSize: pt.length, pool })))).equals(pt))
    }))
})
