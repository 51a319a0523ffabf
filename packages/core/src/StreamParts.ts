/**
 * Cutting byte streams into fixed-size parts for multipart uploads, shared by every driver: one
 * part in memory at a time per reader, each input chunk copied once.
 *
 * @since 0.1.0
 */
import { Chunk, Effect, Fiber, Option, Stream } from "effect"
import type * as Duration from "effect/Duration"
import type * as Scope from "effect/Scope"

/**
 * @since 0.1.0
 * @category models
 */
export interface PartReader<E> {
  /** The next part: exactly `size` bytes, fewer for the last, `None` after the end. */
  readonly next: Effect.Effect<Option.Option<Buffer>, E>
  /**
   * Gives a part back once nothing reads it any more (its upload has finished, successfully or
   * not, and no request still holds it): a later part is read into its memory instead of a fresh
   * buffer. Parts never given back are simply garbage. Releasing a part that is still in use
   * corrupts the part that reuses it — release only what is done; at most `maxPooled` are kept.
   */
  readonly release: (part: Buffer) => void
}

/**
 * Reads `body` as parts of exactly `size` bytes (the last one shorter; an empty body is one empty part).
 *
 * A driver that uploads parts `concurrency` at a time and gives each back with `release` when its
 * upload is done holds about `concurrency + 1` part buffers for the whole body, instead of making
 * a fresh one per part — each a multi-megabyte allocation that stays in the process's memory until
 * V8 next collects (measured on the gateway over Ceph RGW: the 8 MiB parts were most of its RSS).
 *
 * @since 0.1.0
 * @category constructors
 */
export const partReader = <E>(
  body: Stream.Stream<Uint8Array, E>,
  size: number,
  options?: { readonly maxPooled?: number | undefined }
): Effect.Effect<PartReader<E>, never, Scope.Scope> =>
  Effect.map(Stream.toPull(body), (pull) => {
    const maxPooled = options?.maxPooled ?? 8
    const pool: Array<Buffer> = []
    // Only whole parts of this reader's size in memory of their own (a short last part is a view,
    // a small buffer may share Node's pool): not reused.
    const release = (part: Buffer) => {
      if (part.length === size && part.byteOffset === 0 && part.buffer.byteLength === size && pool.length < maxPooled && !pool.includes(part)) {
        pool.push(part)
      }
    }
    let queue: Array<Uint8Array> = []
    let ended = false
    let emittedAny = false
    const fill = (part: Buffer, from: number): Effect.Effect<number, E> =>
      Effect.gen(function*() {
        let at = from
        while (at < size) {
          if (queue.length === 0) {
            if (ended) break
            const r = yield* Effect.either(pull)
            if (r._tag === "Left") {
              if (Option.isNone(r.left)) {
                ended = true
                break
              }
              return yield* Effect.fail(r.left.value)
            }
            queue = Chunk.toArray(r.right).filter((c) => c.length > 0)
            continue
          }
          const c = queue[0]!
          const n = Math.min(c.length, size - at)
          part.set(n === c.length ? c : c.subarray(0, n), at)
          at += n
          if (n === c.length) queue.shift()
          else queue[0] = c.subarray(n)
        }
        return at
      })
    return {
      next: Effect.suspend(() => {
        if (ended && queue.length === 0) {
          // An empty body is one empty part.
          if (emittedAny) return Effect.succeed(Option.none())
          emittedAny = true
          return Effect.succeed(Option.some(Buffer.alloc(0)))
        }
        const part = pool.pop() ?? Buffer.allocUnsafe(size)
        return Effect.map(fill(part, 0), (n) => {
          if (n === 0 && emittedAny) {
            release(part)
            return Option.none()
          }
          emittedAny = true
          return Option.some(n === size ? part : part.subarray(0, n))
        })
      }),
      release
    }
  })

/**
 * Reads a whole (small) stream into one buffer, failing with `tooLarge` past `limit` bytes.
 *
 * @since 0.1.0
 * @category combinators
 */
export const collect = <E, E2>(
  body: Stream.Stream<Uint8Array, E>,
  limit: number,
  tooLarge: () => E2
): Effect.Effect<Buffer, E | E2> =>
  Effect.flatMap(
    Stream.runFoldWhileEffect(
      body,
      { chunks: [] as Array<Uint8Array>, n: 0 },
      () => true,
      (acc, c) =>
        acc.n + c.length > limit
          ? Effect.fail(tooLarge())
          : Effect.sync(() => {
            acc.chunks.push(c)
            acc.n += c.length
            return acc
          })
    ),
    (acc) => Effect.sync(() => Buffer.concat(acc.chunks, acc.n))
  )

/**
 * A limit on the memory a store's uploads hold in buffers at once, across all of them: an upload
 * reserves what it will hold before it reads its body (so a waiting upload holds nothing, and its
 * client is held back by TCP) and gives it back when done. Reservations are whole and taken at once,
 * so uploads never deadlock holding parts of theirs; one larger than the whole budget takes all of
 * it. Reservations under 1 MiB are not counted (small bodies would otherwise queue behind large ones).
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryBudget {
  readonly reserve: (bytes: number) => <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

const MiB = 1024 * 1024

/**
 * What an upload of `known` bytes (when known) holds at most when cut into `partSize` parts,
 * `concurrency` uploaded at a time: the body when it fits one part, else the parts in flight and
 * one filling — what it reserves from a `MemoryBudget`.
 *
 * @since 0.1.0
 * @category models
 */
export const heldByUpload = (known: number | undefined, partSize: number, concurrency: number): number =>
  known !== undefined && known <= partSize ? known : (concurrency + 1) * partSize

/**
 * A budget of `bytes` (counted in MiB); `undefined` for no limit.
 *
 * @since 0.1.0
 * @category constructors
 */
export const memoryBudget = (bytes: number | undefined): Effect.Effect<MemoryBudget> => {
  if (bytes === undefined) return Effect.succeed({ reserve: () => (self) => self })
  const total = Math.max(1, Math.floor(bytes / MiB))
  return Effect.map(Effect.makeSemaphore(total), (sem) => ({
    reserve: (n) => (self) => (n < MiB ? self : sem.withPermits(Math.min(total, Math.ceil(n / MiB)))(self))
  }))
}

/**
 * `body` checked to be exactly `length` bytes as it passes: a chunk that would exceed it fails the
 * stream at once, and so does an end before it — so a request sending a body of a declared length
 * fails instead of leaving the server waiting for bytes that never come.
 *
 * @since 0.1.0
 * @category combinators
 */
export const exactly = <E, E2>(
  body: Stream.Stream<Uint8Array, E>,
  length: number,
  mismatch: (detail: string) => E2
): Stream.Stream<Uint8Array, E | E2> =>
  Stream.suspend(() => {
    let seen = 0
    return body.pipe(
      Stream.mapEffect((c) => {
        seen += c.length
        return seen > length ? Effect.fail(mismatch(`the body is longer than ${length} bytes`)) : Effect.succeed(c)
      }),
      Stream.concat(Stream.suspend(() => (seen === length ? Stream.empty : Stream.fail(mismatch(`the body has ${seen} bytes, not ${length}`)))))
    )
  })

/**
 * Runs a part request that must not be cut off halfway. Interrupted, the request is given up to
 * `grace` to finish (its result dropped), then interrupted in turn, and only then does the
 * interruption complete — so the abort or clean-up of the upload that follows is sent after every
 * part request in flight has settled. (A server finishes storing a part whose body it has received
 * even when the client hangs up: an abort sent before that lands leaves an orphan part no S3 call
 * can remove — seen on Ceph RGW as `_multipart_…` bucket index entries.)
 *
 * The request runs on a fiber of its own, so this holds inside `Stream.mapEffect` with concurrency,
 * whose interrupted workers would otherwise take a request forked from them down at once.
 *
 * @since 0.1.0
 * @category combinators
 */
export const settleOnInterrupt = <A, E, R>(self: Effect.Effect<A, E, R>, grace: Duration.DurationInput): Effect.Effect<A, E, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(Effect.forkDaemon(restore(self)), (request) =>
      restore(Fiber.join(request)).pipe(
        Effect.onInterrupt(() =>
          // The wait itself is uninterruptible here: a timer fiber (interruptible, unlike what is
          // forked in this region by default) cuts the request off after `grace`.
          Effect.flatMap(Effect.forkDaemon(Effect.interruptible(Effect.delay(Fiber.interrupt(request), grace))), (timer) =>
            Effect.zipRight(Fiber.await(request), Fiber.interrupt(timer)))
        )
      ))
  )
