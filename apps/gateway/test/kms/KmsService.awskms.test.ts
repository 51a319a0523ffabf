/**
 * driver-s3's `AwsKms` (the core `Kms` over `@aws-sdk/client-kms`) against the KMS service: the
 * same round trips it passes against moto_server (packages/driver-s3/test/Moto.integration.test.ts).
 */
import { CreateAliasCommand, CreateKeyCommand, DisableKeyCommand, EnableKeyCommand, ScheduleKeyDeletionCommand } from "@aws-sdk/client-kms"
import { assert, layer } from "@effect/vitest"
import { Kms } from "@objcrypt/core/Kms"
import { Context, Effect, Layer, Redacted } from "effect"
import * as crypto from "node:crypto"
import { REGION, start, users } from "./harness.js"

// driver-s3 is loaded lazily by the gateway, so tests import it the same way.
const AwsKms = await import("@objcrypt/driver-s3/AwsKms")

class Service extends Context.Tag("test/KmsService")<Service, { readonly endpoint: string }>() {}

const serviceLayer = Layer.scoped(Service, Effect.acquireRelease(Effect.promise(() => start()), (s) => Effect.promise(() => s.close())))

const kmsLayer = Layer.unwrapEffect(
  Effect.map(Service, (s) =>
    AwsKms.layer({
      endpoint: s.endpoint,
      region: REGION,
      accessKeyId: users.alice.accessKeyId,
      secretAccessKey: Redacted.make(users.alice.secret),
      maxAttempts: 1
    }))
)

const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b))

layer(kmsLayer.pipe(Layer.provideMerge(serviceLayer)), { timeout: "60 seconds", excludeTestServices: true })("AwsKms against the KMS service", (it) => {
  const newKey = Effect.gen(function*() {
    const kms = yield* AwsKms.AwsKms
    const r = yield* Effect.promise(() => kms.client.send(new CreateKeyCommand({ Description: "objcrypt test" })))
    return r.KeyMetadata!
  })

  it.effect("a data key round-trips through Decrypt with its context; the key id is the ARN", () =>
    Effect.gen(function*() {
      const kms = yield* Kms
      const key = yield* newKey
      const context = { bucket: "b", object: "k/é" }
      const dk = yield* kms.generateDataKey(key.KeyId!, context)
      assert.strictEqual(Redacted.value(dk.plaintext).length, 32)
      assert.strictEqual(dk.keyId, key.Arn)
      const back = yield* kms.decrypt(dk.ciphertext, context)
      assert.isTrue(same(Redacted.value(back.plaintext), Redacted.value(dk.plaintext)))
      assert.strictEqual(back.keyId, key.Arn)
      const again = yield* kms.decrypt(dk.ciphertext, context, key.Arn)
      assert.isTrue(same(Redacted.value(again.plaintext), Redacted.value(dk.plaintext)))
    }))

  it.effect("a wrong or missing context, or a tampered blob, is refused with InvalidCiphertext", () =>
    Effect.gen(function*() {
      const kms = yield* Kms
      const key = yield* newKey
      const dk = yield* kms.generateDataKey(key.KeyId!, { purpose: "a" })
      const wrong = yield* Effect.flip(kms.decrypt(dk.ciphertext, { purpose: "b" }))
      assert.deepStrictEqual([wrong._tag, wrong.reason], ["KmsError", "InvalidCiphertext"])
      const missing = yield* Effect.flip(kms.decrypt(dk.ciphertext, {}))
      assert.strictEqual(missing.reason, "InvalidCiphertext")
      const tampered = Uint8Array.from(dk.ciphertext)
      tampered[tampered.length - 1]! ^= 1
      const t = yield* Effect.flip(kms.decrypt(tampered, { purpose: "a" }))
      assert.strictEqual(t.reason, "InvalidCiphertext")
      assert.notInclude(t.message, Buffer.from(Redacted.value(dk.plaintext)).toString("base64"))
    }))

  it.effect("keys named by alias and alias ARN; Encrypt/Decrypt of a given data key", () =>
    Effect.gen(function*() {
      const kms = yield* AwsKms.AwsKms
      const key = yield* newKey
      const alias = `alias/objcrypt-${crypto.randomBytes(4).toString("hex")}`
      yield* Effect.promise(() => kms.client.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: key.KeyId! })))
      const dk = yield* kms.generateDataKey(alias, { a: "1" })
      assert.strictEqual(dk.keyId, key.Arn, "the alias resolves to the key's ARN")
      const plaintext = Redacted.make(Uint8Array.from(crypto.randomBytes(32)))
      const aliasArn = `${key.Arn!.split(":key/")[0]}:${alias}`
      const wrapped = yield* kms.encrypt(aliasArn, plaintext, { a: "1" })
      assert.strictEqual(wrapped.keyId, key.Arn)
      const back = yield* kms.decrypt(wrapped.ciphertext, { a: "1" })
      assert.isTrue(same(Redacted.value(back.plaintext), Redacted.value(plaintext)))
    }))

  it.effect("unknown keys and aliases fail with NotFound, naming the key", () =>
    Effect.gen(function*() {
      const kms = yield* AwsKms.AwsKms
      const nf = yield* Effect.flip(kms.generateDataKey("alias/does-not-exist", {}))
      assert.deepStrictEqual([nf.reason, nf.keyId], ["NotFound", "alias/does-not-exist"])
      const id = crypto.randomUUID()
      const nf2 = yield* Effect.flip(kms.encrypt(id, Redacted.make(new Uint8Array(32)), {}))
      assert.deepStrictEqual([nf2.reason, nf2.keyId], ["NotFound", id])
    }))

  it.effect("a disabled key, a key pending deletion and a user without a grant map to Disabled, InvalidState and AccessDenied", () =>
    Effect.gen(function*() {
      const aws = yield* AwsKms.AwsKms
      const kms = yield* Kms
      const key = yield* newKey
      const dk = yield* kms.generateDataKey(key.KeyId!, { p: "q" })
      yield* Effect.promise(() => aws.client.send(new DisableKeyCommand({ KeyId: key.KeyId! })))
      assert.strictEqual((yield* Effect.flip(kms.decrypt(dk.ciphertext, { p: "q" }))).reason, "Disabled")
      yield* Effect.promise(() => aws.client.send(new EnableKeyCommand({ KeyId: key.KeyId! })))
      yield* Effect.promise(() => aws.client.send(new ScheduleKeyDeletionCommand({ KeyId: key.KeyId!, PendingWindowInDays: 7 })))
      assert.strictEqual((yield* Effect.flip(kms.decrypt(dk.ciphertext, { p: "q" }))).reason, "InvalidState")
      const s = yield* Service
      const carol = yield* Effect.scoped(
        Effect.flatMap(
          AwsKms.make({ endpoint: s.endpoint, region: REGION, accessKeyId: users.carol.accessKeyId, secretAccessKey: Redacted.make(users.carol.secret), maxAttempts: 1 }),
          (c) => Effect.flip(c.generateDataKey(key.KeyId!, {}))
        )
      )
      assert.strictEqual(carol.reason, "AccessDenied")
    }))
})
