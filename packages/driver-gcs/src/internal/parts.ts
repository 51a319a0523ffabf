/**
 * Feeds a byte stream into a Node writable with backpressure (the client's resumable upload).
 *
 * @since 0.1.0
 */
import { Effect, Stream } from "effect"
import type { Writable } from "node:stream"

const ignore = (): void => undefined

/**
 * Writes every chunk into `w` (waiting for `drain`), ends it and waits for `finish`; on a body
 * failure or interruption the writable is destroyed, so nothing is finalized.
 *
 * @internal
 */
export const feed = <E, E2>(
  w: Writable,
  body: Stream.Stream<Uint8Array, E>,
  onError: (e: unknown) => E2
): Effect.Effect<void, E | E2> =>
  Effect.suspend(() => {
    let failure: unknown
    let failed = false
    const finished = new Promise<void>((resolve, reject) => {
      w.once("finish", resolve)
      w.once("error", (e) => {
        failed = true
        failure = e
        reject(e)
      })
    })
    finished.catch(ignore)
    const write = (chunk: Uint8Array) =>
      Effect.async<void, E2>((resume) => {
        if (failed) return resume(Effect.fail(onError(failure)))
        if (w.write(chunk)) return resume(Effect.void)
        const done = () => {
          w.off("drain", done)
          w.off("error", done)
          w.off("close", done)
          resume(failed ? Effect.fail(onError(failure)) : Effect.void)
        }
        w.on("drain", done)
        w.on("error", done)
        w.on("close", done)
      })
    return Stream.runForEach(body, write).pipe(
      Effect.zipRight(Effect.sync(() => w.end())),
      Effect.zipRight(Effect.tryPromise({ try: () => finished, catch: onError })),
      Effect.onExit((exit) => Effect.sync(() => {
        if (exit._tag === "Failure") w.destroy(new Error("upload abandoned"))
      }))
    )
  })
