/**
 * Checks a store's `memoryBudget`: several puts at once, counting how many bodies are being read
 * at the same time (a put reserves its buffers before it reads its body, so a budget that fits one
 * put lets one body be read at a time).
 *
 * @since 0.1.0
 */
import type { StoreError, UnsupportedMode } from "@objcrypt/core/Errors"
import type { ObjectStore } from "@objcrypt/core/ObjectStore"
import { Effect, Stream } from "effect"
import * as crypto from "node:crypto"

/**
 * Puts `puts` bodies of `parts` random parts of `partBytes` each under `<prefix><i>`, all at once,
 * checks each stored size, and returns the most bodies read at the same time.
 *
 * @since 0.1.0
 * @category checks
 */
export const mostReadAtOnce = (
  store: ObjectStore["Type"],
  options: { readonly prefix: string; readonly puts: number; readonly parts: number; readonly partBytes: number }
): Effect.Effect<number, StoreError | UnsupportedMode> =>
  Effect.gen(function*() {
    let reading = 0
    let most = 0
    const size = options.parts * options.partBytes
    const put = (i: number) =>
      store.put(
        `${options.prefix}${i}`,
        Stream.repeatEffect(Effect.sync(() => crypto.randomBytes(options.partBytes))).pipe(
          Stream.take(options.parts),
          Stream.onStart(Effect.sync(() => (most = Math.max(most, ++reading)))),
          Stream.ensuring(Effect.sync(() => reading--))
        ),
        { contentLength: size }
      )
    const keys = Array.from({ length: options.puts }, (_, i) => i)
    yield* Effect.all(keys.map(put), { concurrency: "unbounded" })
    for (const i of keys) {
      const info = yield* store.head(`${options.prefix}${i}`)
      if (info.size !== size) return yield* Effect.die(new Error(`${options.prefix}${i} has ${info.size} bytes, not ${size}`))
    }
    return most
  })
