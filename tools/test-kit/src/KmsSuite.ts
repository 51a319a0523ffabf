/**
 * The `Kms` round-trip suite for AWS-KMS-compatible services (driver-s3's `AwsKms` against
 * moto_server, and against the gateway's KMS service):
 *
 * ```ts
 * kmsSuite({ name: "AwsKms (moto_server)", layer, createKey, createAlias })
 * ```
 *
 * It registers one `describe` block of `it.effect` tests sharing the layer; `tests` adds the
 * caller's own tests to the same block (and so to the same servers).
 *
 * @since 0.1.0
 */
import { assert, layer, type Vitest } from "@effect/vitest"
import { Kms } from "@objcrypt/core/Kms"
import { Duration, Effect, type Layer, Redacted } from "effect"
import * as crypto from "node:crypto"

/**
 * A key the suite created in the service under test.
 *
 * @since 0.1.0
 * @category models
 */
export interface KmsKey {
  /** The bare key id (a UUID). */
  readonly keyId: string
  /** The key's ARN, which the service reports as the key id of every data key. */
  readonly arn: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface SuiteOptions<R> {
  /** Name of the `describe` block. */
  readonly name: string
  /** Provides the `Kms` under test and whatever `createKey`, `createAlias` and `tests` need; built once. */
  readonly layer: Layer.Layer<Kms | R, unknown>
  /** Creates a fresh symmetric key in the service. */
  readonly createKey: Effect.Effect<KmsKey, unknown, NoInfer<Kms | R>>
  /** Points a new alias (`alias/…`) at a key. */
  readonly createAlias: (alias: string, keyId: string) => Effect.Effect<void, unknown, NoInfer<Kms | R>>
  /** Registers more tests in the same block. */
  readonly tests?: ((it: Vitest.MethodsNonLive<NoInfer<Kms | R>, true>) => void) | undefined
  /** Per test, and for building the layer. @default 60 seconds */
  readonly timeout?: Duration.DurationInput | undefined
}

const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b))

/**
 * Registers the suite for one service.
 *
 * @since 0.1.0
 * @category suites
 */
export const kmsSuite = <R>(options: SuiteOptions<R>): void => {
  const timeout = Duration.toMillis(options.timeout ?? "60 seconds")
  layer(options.layer, { timeout: options.timeout ?? "60 seconds", excludeTestServices: true })(options.name, (it) => {
    it.effect("a data key round-trips through Decrypt with its context; the key id is the ARN", () =>
      Effect.gen(function*() {
        const kms = yield* Kms
        const key = yield* options.createKey
        const context = { bucket: "b", object: "k/é" }
        const dk = yield* kms.generateDataKey(key.keyId, context)
        assert.strictEqual(Redacted.value(dk.plaintext).length, 32)
        assert.strictEqual(dk.keyId, key.arn)
        assert.notInclude(String(dk.plaintext), Buffer.from(Redacted.value(dk.plaintext)).toString("hex"))
        const back = yield* kms.decrypt(dk.ciphertext, context)
        assert.isTrue(same(Redacted.value(back.plaintext), Redacted.value(dk.plaintext)))
        assert.strictEqual(back.keyId, key.arn)
        const again = yield* kms.decrypt(dk.ciphertext, context, key.arn)
        assert.isTrue(same(Redacted.value(again.plaintext), Redacted.value(dk.plaintext)))
      }), timeout)

    it.effect("a wrong or missing context, or a tampered blob, is refused with InvalidCiphertext", () =>
      Effect.gen(function*() {
        const kms = yield* Kms
        const key = yield* options.createKey
        const dk = yield* kms.generateDataKey(key.keyId, { purpose: "a" })
        const wrong = yield* Effect.flip(kms.decrypt(dk.ciphertext, { purpose: "b" }))
        assert.deepStrictEqual([wrong._tag, wrong.reason], ["KmsError", "InvalidCiphertext"])
        const missing = yield* Effect.flip(kms.decrypt(dk.ciphertext, {}))
        assert.strictEqual(missing.reason, "InvalidCiphertext")
        const tampered = Uint8Array.from(dk.ciphertext)
        tampered[tampered.length - 1]! ^= 1
        const t = yield* Effect.flip(kms.decrypt(tampered, { purpose: "a" }))
        assert.strictEqual(t.reason, "InvalidCiphertext")
        assert.notInclude(t.message, Buffer.from(Redacted.value(dk.plaintext)).toString("base64"))
      }), timeout)

    it.effect("keys named by alias and alias ARN; Encrypt/Decrypt of a given data key", () =>
      Effect.gen(function*() {
        const kms = yield* Kms
        const key = yield* options.createKey
        const alias = `alias/objcrypt-${crypto.randomBytes(4).toString("hex")}`
        yield* options.createAlias(alias, key.keyId)
        const dk = yield* kms.generateDataKey(alias, { a: "1" })
        assert.strictEqual(dk.keyId, key.arn, "the alias resolves to the key's ARN")
        const plaintext = Redacted.make(Uint8Array.from(crypto.randomBytes(32)))
        const aliasArn = `${key.arn.split(":key/")[0]}:${alias}`
        const wrapped = yield* kms.encrypt(aliasArn, plaintext, { a: "1" })
        assert.strictEqual(wrapped.keyId, key.arn)
        const back = yield* kms.decrypt(wrapped.ciphertext, { a: "1" })
        assert.isTrue(same(Redacted.value(back.plaintext), Redacted.value(plaintext)))
      }), timeout)

    it.effect("unknown keys and aliases fail with NotFound, naming the key", () =>
      Effect.gen(function*() {
        const kms = yield* Kms
        const nf = yield* Effect.flip(kms.generateDataKey("alias/does-not-exist", {}))
        assert.deepStrictEqual([nf.reason, nf.keyId], ["NotFound", "alias/does-not-exist"])
        const id = crypto.randomUUID()
        const nf2 = yield* Effect.flip(kms.encrypt(id, Redacted.make(new Uint8Array(32)), {}))
        assert.deepStrictEqual([nf2.reason, nf2.keyId], ["NotFound", id])
      }), timeout)

    options.tests?.(it)
  })
}
