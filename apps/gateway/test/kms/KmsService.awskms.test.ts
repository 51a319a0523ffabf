/**
 * driver-s3's `AwsKms` (the core `Kms` over `@aws-sdk/client-kms`) against the KMS service: test-kit's
 * `KmsSuite`, which it also passes against moto_server (packages/driver-s3/test/Moto.integration.test.ts),
 * and the errors moto does not model (disabled key, pending deletion, no grant).
 */
import { CreateAliasCommand, CreateKeyCommand, DisableKeyCommand, EnableKeyCommand, ScheduleKeyDeletionCommand } from "@aws-sdk/client-kms"
import { assert } from "@effect/vitest"
import { Kms } from "@objcrypt/core/Kms"
import * as KmsSuite from "@objcrypt/test-kit/KmsSuite"
import { Context, Effect, Layer, Redacted } from "effect"
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

const newKey = Effect.gen(function*() {
  const kms = yield* AwsKms.AwsKms
  const r = yield* Effect.promise(() => kms.client.send(new CreateKeyCommand({ Description: "objcrypt test" })))
  return r.KeyMetadata!
})

KmsSuite.kmsSuite({
  name: "AwsKms against the KMS service",
  layer: kmsLayer.pipe(Layer.provideMerge(serviceLayer)),
  createKey: Effect.map(newKey, (k) => ({ keyId: k.KeyId!, arn: k.Arn! })),
  createAlias: (alias, keyId) =>
    Effect.flatMap(AwsKms.AwsKms, (kms) => Effect.promise(() => kms.client.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: keyId })))),
  tests: (it) => {
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
  }
})
