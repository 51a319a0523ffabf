/**
 * Two KMS service replicas sharing one key store, registry and audit log (as behind a load
 * balancer): a key created through one is usable through the other, and a state change made
 * through one (disable, alias, rotation, deletion) takes effect in the other.
 */
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DecryptCommand,
  DisableKeyCommand,
  EnableKeyCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  RotateKeyOnDemandCommand,
  ScheduleKeyDeletionCommand
} from "@aws-sdk/client-kms"
import type { KMSClient } from "@aws-sdk/client-kms"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import { client, start } from "./harness.js"
import type { Service } from "./harness.js"

let a: Service
let b: Service
let ka: KMSClient
let kb: KMSClient

beforeAll(async () => {
  a = await start()
  b = await start(undefined, [], a.dir)
  ka = client(a)
  kb = client(b)
}, 60_000)
afterAll(async () => {
  ka.destroy()
  kb.destroy()
  await b.close()
  await a.close()
})

const call = <A>(f: () => Promise<A>) => Effect.promise(f)
const refused = (f: () => Promise<unknown>) =>
  Effect.map(Effect.flip(Effect.tryPromise({ try: f, catch: (e) => e as { name: string } })), (e) => e.name)

describe("KMS service replicas sharing their state", () => {
  it.effect("keys, aliases, states and rotations made through one replica hold in the other", () =>
    Effect.gen(function*() {
      const key = (yield* call(() => ka.send(new CreateKeyCommand({})))).KeyMetadata!
      const alias = `alias/shared-${crypto.randomBytes(3).toString("hex")}`
      yield* call(() => ka.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: key.KeyId! })))
      const dk = yield* call(() => kb.send(new GenerateDataKeyCommand({ KeyId: alias, KeySpec: "AES_256", EncryptionContext: { r: "b" } })))
      const back = yield* call(() => ka.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob!, EncryptionContext: { r: "b" } })))
      assert.isTrue(Buffer.from(back.Plaintext!).equals(Buffer.from(dk.Plaintext!)))

      yield* call(() => ka.send(new DisableKeyCommand({ KeyId: key.KeyId! })))
      assert.strictEqual(yield* refused(() => kb.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob!, EncryptionContext: { r: "b" } }))), "DisabledException")
      yield* call(() => kb.send(new EnableKeyCommand({ KeyId: key.KeyId! })))

      yield* call(() => kb.send(new RotateKeyOnDemandCommand({ KeyId: key.KeyId! })))
      const v2 = yield* call(() => ka.send(new EncryptCommand({ KeyId: key.KeyId!, Plaintext: Buffer.from("x") })))
      assert.strictEqual(Buffer.from(v2.CiphertextBlob!).readUInt32BE(20), 2, "replica A seals with the version B created")
      assert.strictEqual(Buffer.from((yield* call(() => kb.send(new DecryptCommand({ CiphertextBlob: v2.CiphertextBlob! })))).Plaintext!).toString(), "x")

      yield* call(() => kb.send(new ScheduleKeyDeletionCommand({ KeyId: key.KeyId!, PendingWindowInDays: 7 })))
      assert.strictEqual(yield* refused(() => ka.send(new EncryptCommand({ KeyId: alias, Plaintext: Buffer.from("x") }))), "KMSInvalidStateException")
    }))
})
