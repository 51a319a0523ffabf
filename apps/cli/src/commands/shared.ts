/**
 * Pieces several commands share: the SSE-C read key, not-found messages.
 *
 * @since 0.1.0
 */
import { Options } from "@effect/cli"
import * as EncryptionMode from "@objcrypt/core/EncryptionMode"
import { ObjectNotFound } from "@objcrypt/core/Errors"
import { Effect, Option } from "effect"

/**
 * `--key NAME[@V]` on read commands: the customer key of an SSE-C object.
 *
 * @since 0.1.0
 * @category options
 */
export const customerKeyOption = Options.text("key").pipe(
  Options.withDescription("customer key (key-store NAME[@VERSION]) to read an sse-c object"),
  Options.optional
)

/**
 * The SSE-C key named by `--key`, as a key reference.
 *
 * @since 0.1.0
 * @category options
 */
export const customerKeyRef = (key: Option.Option<string>) =>
  Option.isNone(key) ? Effect.succeed(undefined) : EncryptionMode.parseKeyName(key.value)

/**
 * Names a missing object by its URL rather than its bare key.
 *
 * @since 0.1.0
 * @category errors
 */
export const notFoundAs = (url: string) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.catchIf(
    effect,
    (e): e is E => (e as { _tag?: unknown })?._tag === "ObjectNotFound",
    () => Effect.fail(new ObjectNotFound({ key: url }) as E)
  )
