/**
 * Client-side encryption over any `ObjectStore` with the native segmented format: streaming put
 * (multipart parts encrypted independently and concurrently), authenticated (ranged) get,
 * envelope inspection and re-keying without re-encrypting a byte. The format is specified in
 * `docs/FORMAT.md`.
 *
 * @since 0.1.0
 */
import { Chunk, Effect, Either, Exit, FiberRef, Option, Redacted, Stream } from "effect"
import type { Scope } from "effect"
import * as crypto from "node:crypto"
import { DecryptError, EncryptError, InvalidRange, PreconditionFailed } from "./Errors.js"
import type { StoreError, UnsupportedMode } from "./Errors.js"
import { currentRandom } from "./internal/nativeRandom.js"
import type { Keyring, Unwrapper } from "./Keyring.js"
import * as NativeFormat from "./NativeFormat.js"
import * as ObjectStore from "./ObjectStore.js"
import { makeWorkerPool as makePool } from "./internal/nativePool.js"
import type { WorkerPool } from "./internal/nativePool.js"

type Store = ObjectStore.ObjectStore["Type"]

/**
 * A pool of worker threads encrypting parts, shared by the puts given it in their options.
 *
 * @since 0.1.0
 * @category models
 */
export type { WorkerPool }

/**
 * Starts `size` worker threads for the scope's lifetime (see docs/FORMAT.md for when it pays).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeWorkerPool: (size: number) => Effect.Effect<WorkerPool, never, Scope.Scope> = makePool

/**
 * @since 0.1.0
 * @category models
 */
export interface PutOptions {
  /** Plaintext length when known: recorded in the envelope and checked against the body. */
  readonly contentLength?: number | undefined
  readonly contentType?: string | undefined
  /** User metadata stored beside the envelope (names may not collide with the envelope's). */
  readonly metadata?: Readonly<Record<string, string>> | undefined
  /** Plaintext bytes per segment. @default NativeFormat.DEFAULT_SEGMENT_SIZE */
  readonly segmentSize?: number | undefined
  /**
   * Plaintext bytes per multipart part, a multiple of the segment size. When given, a body larger
   * than one part is uploaded through the store's multipart API, parts encrypted independently and
   * concurrently. When absent, such a body is encrypted as it streams into one `store.put`, which
   * the driver cuts as it cuts any large body (on a local store: one write, not parts plus a
   * concatenation); 8 MiB (or the store's minimum) is then only the encryption batch.
   * @default 8 MiB (or the store's minimum)
   */
  readonly partSize?: number | undefined
  /** Parts encrypted and uploaded at once (with a `partSize`, or on a `pool`). @default 4 */
  readonly concurrency?: number | undefined
  /** Encryption context bound to the object besides its bucket and key (`oc:` names are reserved). */
  readonly context?: Readonly<Record<string, string>> | undefined
  /** Encrypt on worker threads (see `makeWorkerPool`). @default the calling thread */
  readonly pool?: WorkerPool | undefined
  /**
   * With a `pool`: hand the body's chunks to the workers without copying them when they wholly own
   * their `ArrayBuffer` (fresh file reads do). The chunks are detached afterwards, so set it only
   * when nothing else reads them again. @default false
   */
  readonly transferBody?: boolean | undefined
  /**
   * The body's chunks are only valid until the next one is pulled (a file reader that reuses its
   * buffers). `put` then never keeps a reference to one: with a `contentLength`, no `partSize` and
   * no `pool` it encrypts each chunk as it arrives (which it does then anyway); on any other path it
   * copies each chunk first (and never transfers one). @default false
   */
  readonly borrowedBody?: boolean | undefined
  /**
   * `"*"`: only create the object, `PreconditionFailed` when the key exists and nothing written.
   * The store checks it atomically: on its single write, or with a `partSize` when it completes
   * the multipart upload (which is then aborted).
   */
  readonly ifNoneMatch?: "*" | undefined
  /**
   * Only replace the stored version whose store etag (`ObjectStore.ObjectInfo.etag`, quoted or not)
   * is this one: `PreconditionFailed` when the key is missing or holds another version, and nothing
   * is written (checked atomically by the store, as `ifNoneMatch` is). With `ifNoneMatch` it is
   * the store's usage error (see `ObjectStore.checkConditions`), refused before any write.
   */
  readonly ifMatch?: string | undefined
  /**
   * The key's current version as the caller has just headed it (`null`: there is none). `put`
   * then does not head the key again to learn whether the version it replaces keeps its envelope
   * in a sidecar (removed once the new version is written): one store call less per put, for a
   * caller that heads the key anyway (a conditional write, a gateway). @default put heads the key
   */
  readonly current?: ObjectStore.ObjectInfo | null | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface PutResult extends ObjectStore.PutResult {
  readonly plaintextSize: number
  /** Where the envelope was written. */
  readonly envelope: "metadata" | "sidecar"
  readonly parts: number
}

/**
 * A decrypted object. The body verifies every segment before releasing its plaintext.
 *
 * @since 0.1.0
 * @category models
 */
export interface DecryptedObject {
  readonly info: ObjectStore.ObjectInfo
  readonly plaintextSize: number
  /** Present on ranged reads: the plaintext bytes returned, `end` exclusive. */
  readonly range?: { readonly start: number; readonly end: number } | undefined
  readonly body: Stream.Stream<Uint8Array, DecryptError | StoreError>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface GetOptions {
  readonly range?: ObjectStore.ByteRange | undefined
  /**
   * The bucket and key the object was encrypted for, when it was copied verbatim from elsewhere.
   * @default the store's bucket and `key`
   */
  readonly encryptedFor?: { readonly bucket: string; readonly key: string } | undefined
  /** Open segments on worker threads (see `makeWorkerPool`). @default the calling thread */
  readonly pool?: WorkerPool | undefined
}

/**
 * An envelope summary, safe to print: no key material, no salt, no commitment.
 *
 * @since 0.1.0
 * @category models
 */
export interface EnvelopeSummary {
  readonly format: "objcrypt-native"
  readonly formatVersion: number
  readonly algorithm: string
  readonly location: "metadata" | "sidecar"
  readonly segmentSize?: number | undefined
  readonly ciphertextSize: number
  readonly plaintextSize?: number | undefined
  readonly segments?: number | undefined
  readonly context?: Readonly<Record<string, string>> | undefined
  readonly keys?: ReadonlyArray<{ readonly type: NativeFormat.KeyringType; readonly keyId: string; readonly version: number }> | undefined
}

const MiB = 1024 * 1024

/**
 * True when the object carries a native client-side envelope.
 *
 * @since 0.1.0
 * @category inspection
 */
export const isClientSide = (info: ObjectStore.ObjectInfo): boolean => NativeFormat.isEncrypted(info.metadata)

// ---------------------------------------------------------------------------------------------
// put
// ---------------------------------------------------------------------------------------------

type Part = NativeFormat.ByteGroup

const sealPart = (
  keys: NativeFormat.ObjectKeys,
  part: Part,
  segmentsPerPart: number,
  pool: WorkerPool | undefined,
  transfer: boolean
): Effect.Effect<ReadonlyArray<Uint8Array>> => {
  const firstSegment = part.index * segmentsPerPart
  if (pool !== undefined) return pool.seal(keys, firstSegment, part.last, part.pieces, { transfer })
  return Effect.sync(() => {
    const out: Array<Uint8Array> = []
    const sealer = NativeFormat.makeSealer(keys, { firstSegment, final: part.last })
    for (const p of part.pieces) sealer.push(p, out)
    sealer.end(out)
    return out
  })
}

const sum = (chunks: ReadonlyArray<Uint8Array>) => chunks.reduce((n, c) => n + c.length, 0)

/**
 * Encrypts a body and stores it with its envelope. Bodies up to one part go in a single `put`.
 * Larger or unknown-length bodies stream into one `store.put` (memory ≈ 2 parts, or the pool's
 * batches in flight), or — when `partSize` is given — use the store's multipart API, parts
 * encrypted independently and `concurrency` at a time (memory ≈ (concurrency + 2) × part size).
 * Either way a failure or interruption leaves nothing partial.
 *
 * @since 0.1.0
 * @category encryption
 */
export const put = <E>(
  store: Store,
  key: string,
  body: Stream.Stream<Uint8Array, E>,
  keyrings: ReadonlyArray<Keyring>,
  options?: PutOptions
): Effect.Effect<PutResult, StoreError | UnsupportedMode | EncryptError | E> =>
  Effect.scoped(Effect.gen(function*() {
    const fail = (reason: string) => new EncryptError({ key, reason })
    const segmentSize = options?.segmentSize ?? NativeFormat.DEFAULT_SEGMENT_SIZE
    if (!NativeFormat.isValidSegmentSize(segmentSize)) {
      return yield* fail(`segment size must be between ${NativeFormat.MIN_SEGMENT_SIZE} and ${NativeFormat.MAX_SEGMENT_SIZE}`)
    }
    if (keyrings.length === 0) return yield* fail("at least one keyring is required")
    if (keyrings.length > NativeFormat.MAX_WRAPPED_KEYS) return yield* fail(`at most ${NativeFormat.MAX_WRAPPED_KEYS} keyrings`)
    const userContext = options?.context ?? {}
    if (Object.keys(userContext).some((k) => k.startsWith(NativeFormat.RESERVED_CONTEXT_PREFIX))) {
      return yield* fail(`encryption context names starting with ${NativeFormat.RESERVED_CONTEXT_PREFIX} are reserved`)
    }
    const userMeta = options?.metadata ?? {}
    if (Object.keys(userMeta).some(NativeFormat.isEnvelopeKey)) return yield* fail("user metadata uses a reserved envelope name")
    const contentLength = options?.contentLength
    if (contentLength !== undefined && (!Number.isSafeInteger(contentLength) || contentLength < 0)) {
      return yield* fail("invalid contentLength")
    }
    const partSize = choosePartSize(store.limits, segmentSize, contentLength, options?.partSize)
    if (Either.isLeft(partSize)) return yield* fail(partSize.left)
    const segmentsPerPart = partSize.right / segmentSize
    const concurrency = Math.max(1, options?.concurrency ?? 4)
    const borrowed = options?.borrowedBody === true
    // Known length on the calling thread: the final segment is known by its index, so every chunk
    // is sealed as it arrives — no grouping into parts, no plaintext held, borrowed chunks safe.
    const sealAsItArrives = contentLength !== undefined && options?.partSize === undefined && options?.pool === undefined
    const transfer = options?.transferBody === true && !borrowed
    const input = borrowed && !sealAsItArrives ? Stream.map(body, (c) => new Uint8Array(c)) : body
    yield* ObjectStore.checkConditions(store.provider, "put", key, options)

    const random = yield* FiberRef.get(currentRandom)
    const dataKey = Redacted.make(Uint8Array.from(random(NativeFormat.KEY_LENGTH)))
    const salt = Uint8Array.from(random(NativeFormat.SALT_LENGTH))
    const context = NativeFormat.fullContext(store.bucket, key, userContext)
    const header = { segmentSize, salt }
    const keys = NativeFormat.deriveKeys(Redacted.value(dataKey), header, context)
    const wrapped: Array<NativeFormat.WrappedKey> = []
    for (const k of keyrings) wrapped.push(yield* k.wrap(dataKey, { binding: keys.binding, context, objectKey: key }))
    Redacted.value(dataKey).fill(0)

    const envelopeFor = (plaintextLength: number | undefined): NativeFormat.Envelope => ({
      version: NativeFormat.FORMAT_VERSION,
      segmentSize,
      salt,
      commitment: keys.commitment,
      contextDigest: keys.contextDigest,
      plaintextLength,
      context: userContext,
      keys: wrapped
    })
    const current = options?.current
    const previousSidecar = current !== undefined
      ? (current === null ? undefined : sidecarIdOf(current.metadata))
      : yield* store.head(key).pipe(
        Effect.map((info) => sidecarIdOf(info.metadata)),
        Effect.orElseSucceed(() => undefined)
      )

    /** The options of the object's own write (each path: one `store.put` of the ciphertext). */
    const objectPut = (placed: { readonly metadata: Readonly<Record<string, string>> }, ciphertextLength: number | undefined): ObjectStore.PutOptions => ({
      contentLength: ciphertextLength,
      contentType: options?.contentType,
      metadata: placed.metadata,
      ifNoneMatch: options?.ifNoneMatch,
      ifMatch: options?.ifMatch
    })

    if (sealAsItArrives) {
      const placed = yield* placeEnvelope(store, key, envelopeFor(contentLength), userMeta)
      const sealer = NativeFormat.makeSizedSealer(keys, contentLength)
      const sealed = Stream.mapChunksEffect(input, (chunk) =>
        Effect.suspend(() => {
          const out: Array<Uint8Array> = []
          for (const c of chunk) {
            if (c.length > contentLength - sealer.bytes()) return Effect.fail(fail(`the body is longer than the ${contentLength} bytes announced`))
            sealer.push(c, out)
          }
          return Effect.succeed(Chunk.unsafeFromArray(out))
        })).pipe(
          Stream.concat(Stream.suspend(() => {
            if (sealer.bytes() !== contentLength) return Stream.fail(fail(`the body is ${sealer.bytes()} bytes, not the ${contentLength} announced`))
            const out: Array<Uint8Array> = []
            sealer.end(out)
            return Stream.fromIterable(out)
          }))
        )
      const result = yield* store.put(key, sealed, objectPut(placed, NativeFormat.ciphertextSize(contentLength, segmentSize))).pipe(Effect.onError(() => placed.cleanup))
      yield* removeSidecar(store, key, previousSidecar, placed.sidecarId)
      return { ...result, plaintextSize: contentLength, envelope: placed.location, parts: 1 } satisfies PutResult
    }

    // A pull rather than `Stream.peel`: peel hands the rest of the stream to another fiber and a
    // body failure then surfaces as a ChannelException defect instead of the body's own error.
    const pull = yield* Stream.toPull(Stream.rechunk(NativeFormat.groupBytes(partSize.right)(input), 1))
    const firstChunk = yield* pull.pipe(
      Effect.catchAll((e) => Option.isSome(e) ? Effect.fail(e.value) : Effect.dieMessage("groupParts always emits a part"))
    )
    const firstPart = Chunk.unsafeHead(firstChunk)
    const rest = Stream.repeatEffectChunkOption(pull)

    if (firstPart.last) {
      if (contentLength !== undefined && firstPart.size !== contentLength) {
        return yield* fail(`the body is ${firstPart.size} bytes, not the ${contentLength} announced`)
      }
      const placed = yield* placeEnvelope(store, key, envelopeFor(firstPart.size), userMeta)
      const ct = yield* sealPart(keys, firstPart, segmentsPerPart, options?.pool, transfer)
      const result = yield* store.put(key, Stream.fromIterable(ct), objectPut(placed, sum(ct))).pipe(Effect.onError(() => placed.cleanup))
      yield* removeSidecar(store, key, previousSidecar, placed.sidecarId)
      return { ...result, plaintextSize: firstPart.size, envelope: placed.location, parts: 1 }
    }

    const placed = yield* placeEnvelope(store, key, envelopeFor(contentLength), userMeta)
    if (options?.partSize === undefined) {
      // One streaming put: the driver cuts the ciphertext as it cuts any large body (its own
      // parallel multipart on a cloud store, a single write on a local one — no parts written and
      // then concatenated). Segments are still sealed in parallel when a pool is given.
      let total = 0
      const checked = Stream.concat(Stream.succeed(firstPart), rest).pipe(
        Stream.mapEffect((part) =>
          Effect.suspend(() => {
            total += part.size
            if (contentLength !== undefined && total > contentLength) {
              return Effect.fail(fail(`the body is longer than the ${contentLength} bytes announced`))
            }
            if (contentLength !== undefined && part.last && total !== contentLength) {
              return Effect.fail(fail(`the body is ${total} bytes, not the ${contentLength} announced`))
            }
            return Effect.succeed(part)
          })
        ),
        Stream.mapEffect((part) => sealPart(keys, part, segmentsPerPart, options?.pool, transfer), {
          concurrency: options?.pool === undefined ? 1 : Math.max(concurrency, 2 * options.pool.size)
        }),
        Stream.mapConcat((ct) => ct)
      )
      const result = yield* store.put(
        key,
        checked,
        objectPut(placed, contentLength === undefined ? undefined : NativeFormat.ciphertextSize(contentLength, segmentSize))
      ).pipe(Effect.onError(() => placed.cleanup))
      yield* removeSidecar(store, key, previousSidecar, placed.sidecarId)
      return { ...result, plaintextSize: total, envelope: placed.location, parts: 1 } satisfies PutResult
    }
    const upload = Effect.acquireUseRelease(
      store.createMultipart(key, { contentType: options?.contentType, metadata: placed.metadata }),
      (upload) =>
        Effect.gen(function*() {
          let total = 0
          const parts = yield* Stream.concat(Stream.succeed(firstPart), rest).pipe(
            Stream.mapEffect((part) =>
              Effect.gen(function*() {
                total += part.size
                if (contentLength !== undefined && total > contentLength) {
                  return yield* fail(`the body is longer than the ${contentLength} bytes announced`)
                }
                const ct = yield* sealPart(keys, part, segmentsPerPart, options?.pool, transfer)
                return yield* store.uploadPart(upload, part.index + 1, Stream.fromIterable(ct), { contentLength: sum(ct) })
              }), { concurrency }),
            Stream.runCollect
          )
          if (contentLength !== undefined && total !== contentLength) {
            return yield* fail(`the body is ${total} bytes, not the ${contentLength} announced`)
          }
          const sorted = Chunk.toReadonlyArray(parts).slice().sort((a, b) => a.partNumber - b.partNumber)
          // The condition is the store's to check as it publishes the object (a refused upload is
          // aborted below, with the sidecar this put wrote).
          const result = yield* store.completeMultipart(upload, sorted, { ifNoneMatch: options?.ifNoneMatch, ifMatch: options?.ifMatch })
          return { ...result, plaintextSize: total, envelope: placed.location, parts: sorted.length }
        }),
      (upload, exit) => Exit.isSuccess(exit) ? Effect.void : store.abortMultipart(upload).pipe(Effect.ignore)
    )
    const result = yield* upload.pipe(Effect.onError(() => placed.cleanup))
    yield* removeSidecar(store, key, previousSidecar, placed.sidecarId)
    return result satisfies PutResult
  }))

const choosePartSize = (
  limits: ObjectStore.StoreLimits,
  segmentSize: number,
  contentLength: number | undefined,
  requested: number | undefined
): Either.Either<number, string> => {
  const roundUp = (n: number) => Math.ceil(n / segmentSize) * segmentSize
  let size = requested ?? roundUp(Math.max(8 * MiB, limits.minPartSize, segmentSize))
  if (requested !== undefined) {
    if (!Number.isSafeInteger(requested) || requested <= 0 || requested % segmentSize !== 0) {
      return Either.left("the part size must be a positive multiple of the segment size")
    }
    if (requested < limits.minPartSize) return Either.left(`the store needs parts of at least ${limits.minPartSize} bytes`)
  } else if (contentLength !== undefined && Math.ceil(contentLength / size) > limits.maxParts) {
    size = roundUp(Math.ceil(contentLength / limits.maxParts))
  }
  if (NativeFormat.ciphertextSize(size, segmentSize) > limits.maxPartSize) {
    return Either.left(`parts of ${size} bytes exceed the store's largest part`)
  }
  if (contentLength !== undefined && Math.ceil(contentLength / size) > limits.maxParts) {
    return Either.left(`${contentLength} bytes need more than ${limits.maxParts} parts of ${size} bytes`)
  }
  return Either.right(size)
}

interface Placement {
  readonly metadata: Record<string, string>
  readonly location: "metadata" | "sidecar"
  readonly sidecarId?: string | undefined
  readonly cleanup: Effect.Effect<void>
}

/** Inline when the envelope and the user's metadata fit the store's limit, a sidecar otherwise. */
const placeEnvelope = (
  store: Store,
  key: string,
  envelope: NativeFormat.Envelope,
  userMeta: Readonly<Record<string, string>>
): Effect.Effect<Placement, StoreError | UnsupportedMode | EncryptError> =>
  Effect.gen(function*() {
    const inline = { ...userMeta, ...NativeFormat.encodeEnvelope(envelope) }
    if (ObjectStore.metadataSize(inline) <= store.limits.maxMetadataBytes) {
      return { metadata: inline, location: "metadata" as const, cleanup: Effect.void }
    }
    const random = yield* FiberRef.get(currentRandom)
    const id = NativeFormat.b64u(random(NativeFormat.SIDECAR_ID_LENGTH))
    const metadata = { ...userMeta, ...NativeFormat.sidecarMarker(id) }
    if (ObjectStore.metadataSize(metadata) > store.limits.maxMetadataBytes) {
      return yield* new EncryptError({ key, reason: "the user metadata leaves no room for the envelope marker" })
    }
    const bytes = NativeFormat.encodeSidecar(envelope)
    const sidecar = NativeFormat.sidecarKey(key, id)
    yield* store.put(sidecar, Stream.succeed(bytes), { contentLength: bytes.length, contentType: "application/json" })
    return { metadata, location: "sidecar" as const, sidecarId: id, cleanup: store.remove(sidecar).pipe(Effect.ignore) }
  })

const sidecarIdOf = (metadata: Readonly<Record<string, string>>): string | undefined => {
  const loc = NativeFormat.decodeEnvelope(metadata)
  return Either.isRight(loc) && loc.right._tag === "Sidecar" ? loc.right.id : undefined
}

const removeSidecar = (store: Store, key: string, id: string | undefined, keep: string | undefined) =>
  id === undefined || id === keep ? Effect.void : store.remove(NativeFormat.sidecarKey(key, id)).pipe(Effect.ignore)

// ---------------------------------------------------------------------------------------------
// envelope reading
// ---------------------------------------------------------------------------------------------

const decryptError = (key: string, reason: DecryptError["reason"], detail?: string) =>
  new DecryptError({ key, reason, detail })

const loadEnvelope = (
  store: Store,
  key: string,
  info: ObjectStore.ObjectInfo
): Effect.Effect<{ readonly envelope: NativeFormat.Envelope; readonly location: "metadata" | "sidecar" }, StoreError | DecryptError> =>
  Effect.gen(function*() {
    const loc = NativeFormat.decodeEnvelope(info.metadata)
    if (Either.isLeft(loc)) return yield* decryptError(key, loc.left.reason, loc.left.detail)
    if (loc.right._tag === "Inline") return { envelope: loc.right.envelope, location: "metadata" as const }
    const sidecar = yield* ObjectStore.readAll(store, NativeFormat.sidecarKey(key, loc.right.id)).pipe(
      Effect.catchTag("ObjectNotFound", () => decryptError(key, "MissingMetadata", "the envelope's sidecar object is missing"))
    )
    const env = NativeFormat.decodeSidecar(sidecar.bytes)
    if (Either.isLeft(env)) return yield* decryptError(key, env.left.reason, env.left.detail)
    return { envelope: env.right, location: "sidecar" as const }
  })

/**
 * Recovers the data key (after checking the envelope belongs to this object and matching the key
 * commitment) and derives the object's keys.
 */
const recoverDataKey = (
  envelope: NativeFormat.Envelope,
  unwrapper: Unwrapper,
  bucket: string,
  key: string,
  errorKey: string
) =>
  Effect.gen(function*() {
    const context = NativeFormat.fullContext(bucket, key, envelope.context)
    const digest = NativeFormat.contextDigest(context)
    if (!crypto.timingSafeEqual(digest, envelope.contextDigest)) {
      return yield* decryptError(errorKey, "ContextMismatch", "the envelope was written for another bucket, key or context")
    }
    const header = { segmentSize: envelope.segmentSize, salt: envelope.salt }
    const dataKey = yield* unwrapper.unwrap({
      entries: envelope.keys,
      binding: NativeFormat.bindingDigest(header, context),
      context,
      objectKey: errorKey,
      verify: (dk) => NativeFormat.commitmentMatches(NativeFormat.deriveKeys(dk, header, context), envelope.commitment)
    })
    return { dataKey, header, context, binding: NativeFormat.bindingDigest(header, context) }
  })

const openKeys = (
  envelope: NativeFormat.Envelope,
  unwrapper: Unwrapper,
  bucket: string,
  key: string,
  errorKey: string
): Effect.Effect<NativeFormat.ObjectKeys, DecryptError> =>
  Effect.map(recoverDataKey(envelope, unwrapper, bucket, key, errorKey), ({ context, dataKey, header }) => {
    const keys = NativeFormat.deriveKeys(Redacted.value(dataKey), header, context)
    Redacted.value(dataKey).fill(0)
    return keys
  })

const checkSize = (envelope: NativeFormat.Envelope, size: number, key: string): Effect.Effect<number, DecryptError> => {
  if (envelope.plaintextLength !== undefined) {
    const expected = NativeFormat.ciphertextSize(envelope.plaintextLength, envelope.segmentSize)
    if (size < expected) return Effect.fail(decryptError(key, "Truncated", `${size} of ${expected} ciphertext bytes`))
    if (size > expected) return Effect.fail(decryptError(key, "TrailingData", `${size - expected} bytes after the last segment`))
    return Effect.succeed(envelope.plaintextLength)
  }
  return Option.match(NativeFormat.plaintextSize(size, envelope.segmentSize), {
    onNone: () => Effect.fail(decryptError(key, "Truncated", `${size} bytes is not a whole number of segments`)),
    onSome: Effect.succeed
  })
}

const decryptWith = (keys: NativeFormat.ObjectKeys, plan: NativeFormat.SegmentPlan, key: string, pool: WorkerPool | undefined) =>
<E>(body: Stream.Stream<Uint8Array, E>): Stream.Stream<Uint8Array, E | DecryptError> =>
  pool === undefined
    ? body.pipe(NativeFormat.decrypt(keys, plan, key, { borrowed: true }))
    : body.pipe(NativeFormat.decryptParallel(keys, plan, key, { pool }))

/**
 * Opens a client-side object: checks the envelope belongs to this bucket and key, unwraps the data
 * key, checks the key commitment, then streams the plaintext. A ranged read fetches only the
 * segments holding the range; every segment is authenticated before any of its bytes is released.
 *
 * @since 0.1.0
 * @category decryption
 */
export const get = (
  store: Store,
  key: string,
  unwrapper: Unwrapper,
  options?: GetOptions
): Effect.Effect<DecryptedObject, StoreError | DecryptError, Scope.Scope> =>
  Effect.gen(function*() {
    const range = options?.range
    // On the calling thread the opener is done with each ciphertext chunk when it pulls the next
    // (it copies what it keeps), so the store may reuse its read buffers; the pool's batches keep
    // their chunks until a worker has them.
    const borrowed = options?.pool === undefined
    const opened = range === undefined ? yield* store.get(key, { borrowed }) : undefined
    const info = opened?.info ?? (yield* store.head(key))
    const { envelope } = yield* loadEnvelope(store, key, info)
    const keys = yield* openKeys(
      envelope,
      unwrapper,
      options?.encryptedFor?.bucket ?? store.bucket,
      options?.encryptedFor?.key ?? key,
      key
    )
    const size = yield* checkSize(envelope, info.size, key)
    if (opened !== undefined) {
      const plan = NativeFormat.planRange(size, envelope.segmentSize)
      return { info, plaintextSize: size, body: opened.body.pipe(decryptWith(keys, plan, key, options?.pool)) }
    }
    const resolved = ObjectStore.resolveRange(range!, size)
    if (Option.isNone(resolved)) return yield* new InvalidRange({ key, range: ObjectStore.formatRange(range!), size })
    const plan = NativeFormat.planRange(size, envelope.segmentSize, resolved.value)
    const obj = yield* store.get(key, { range: ObjectStore.range.bounded(plan.cipherStart, plan.cipherEnd - 1), borrowed })
    if (obj.info.etag !== info.etag) {
      return yield* new PreconditionFailed({ key, reason: "the object changed while it was being read" })
    }
    return {
      info,
      plaintextSize: size,
      range: resolved.value,
      body: obj.body.pipe(decryptWith(keys, plan, key, options?.pool))
    }
  })

/**
 * Decrypts a whole object (or range) into memory (small objects, tests).
 *
 * @since 0.1.0
 * @category decryption
 */
export const getBytes = (
  store: Store,
  key: string,
  unwrapper: Unwrapper,
  options?: GetOptions
): Effect.Effect<Uint8Array, StoreError | DecryptError> =>
  Effect.scoped(
    Effect.flatMap(get(store, key, unwrapper, options), (o) => Effect.map(Stream.runCollect(o.body), ObjectStore.concat))
  )

const summarize = (
  info: ObjectStore.ObjectInfo,
  envelope: NativeFormat.Envelope | undefined,
  location: "metadata" | "sidecar"
): EnvelopeSummary => {
  const base = {
    format: "objcrypt-native" as const,
    formatVersion: NativeFormat.FORMAT_VERSION,
    algorithm: NativeFormat.ALGORITHM,
    location,
    ciphertextSize: info.size
  }
  if (envelope === undefined) return base
  const plaintextSize = envelope.plaintextLength ?? Option.getOrUndefined(NativeFormat.plaintextSize(info.size, envelope.segmentSize))
  return {
    ...base,
    segmentSize: envelope.segmentSize,
    plaintextSize,
    segments: plaintextSize === undefined ? undefined : NativeFormat.segmentCount(plaintextSize, envelope.segmentSize),
    context: envelope.context,
    keys: envelope.keys.map((k) => ({ type: k.type, keyId: k.keyId, version: k.version }))
  }
}

/**
 * Summarizes the envelope in an object's metadata (an envelope in a sidecar is only located: use
 * `readEnvelope`).
 *
 * @since 0.1.0
 * @category inspection
 */
export const inspect = (info: ObjectStore.ObjectInfo): Either.Either<EnvelopeSummary, DecryptError> => {
  const loc = NativeFormat.decodeEnvelope(info.metadata)
  if (Either.isLeft(loc)) return Either.left(decryptError(info.key, loc.left.reason, loc.left.detail))
  return Either.right(loc.right._tag === "Inline" ? summarize(info, loc.right.envelope, "metadata") : summarize(info, undefined, "sidecar"))
}

/**
 * Reads and summarizes an object's envelope, from its metadata or its sidecar.
 *
 * @since 0.1.0
 * @category inspection
 */
export const readEnvelope = (store: Store, key: string): Effect.Effect<EnvelopeSummary, StoreError | DecryptError> =>
  Effect.gen(function*() {
    const info = yield* store.head(key)
    const { envelope, location } = yield* loadEnvelope(store, key, info)
    return summarize(info, envelope, location)
  })

// ---------------------------------------------------------------------------------------------
// envelope keys: sealing and opening segments outside put/get
// ---------------------------------------------------------------------------------------------

/**
 * The keys of one object, recovered from (or created with) its envelope, for code that seals or
 * opens segments itself: a gateway encrypting multipart parts as they arrive, a reader of parts at
 * known segment indexes. The data key stays inside (zeroed when the scope that opened it closes);
 * only derived keys (`KeyObject`s) are handed out.
 *
 * @since 0.1.0
 * @category models
 */
export interface EnvelopeKeys {
  readonly envelope: NativeFormat.Envelope
  readonly segmentSize: number
  /** The full encryption context bound to the object (the user's, `oc:bucket` and `oc:key`). */
  readonly context: Readonly<Record<string, string>>
  /** The keys of the object's body, under the envelope's salt. */
  readonly keys: NativeFormat.ObjectKeys
  /**
   * The keys of an independently sealed part: the same data key, segment size and context under
   * another (fresh random, 32-byte) salt — each part is then its own segment stream, so parts can be
   * sealed in any order, on any process, and re-uploaded under a new salt without nonce reuse.
   */
  readonly keysForSalt: (salt: Uint8Array) => NativeFormat.ObjectKeys
  /**
   * Seals plaintext as segments `firstSegment`, `firstSegment + 1`… (a part at byte offset `o` of a
   * body starts at segment `o / segmentSize`, `o` a multiple of it); the last one is flagged as the
   * stream's end when `final` (then it may be short), otherwise the plaintext must be whole segments.
   */
  readonly seal: (options?: SealOptions) => <E, R>(plaintext: Stream.Stream<Uint8Array, E, R>) => Stream.Stream<Uint8Array, E, R>
  /**
   * Opens the ciphertext of a body of `plaintextSize` bytes, or of the segments holding `range`
   * (fetch `NativeFormat.planRange(...).cipherStart`…`cipherEnd` of it): verified plaintext only,
   * failing with `DecryptError` at the first bad segment.
   */
  readonly open: (options: OpenOptions) => <E, R>(ciphertext: Stream.Stream<Uint8Array, E, R>) => Stream.Stream<Uint8Array, E | DecryptError, R>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface SealOptions {
  /** @default 0 */
  readonly firstSegment?: number | undefined
  /** @default true */
  readonly final?: boolean | undefined
  /** Keys to seal with (e.g. `keysForSalt(partSalt)`). @default the object's keys */
  readonly keys?: NativeFormat.ObjectKeys | undefined
  /** Seal on worker threads. @default the calling thread */
  readonly pool?: WorkerPool | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface OpenOptions {
  /** Plaintext size of the segment stream being opened (the object's, or the part's). */
  readonly plaintextSize: number
  /** A plaintext range (`end` exclusive, already resolved); the ciphertext given must be its plan's bytes. */
  readonly range?: { readonly start: number; readonly end: number } | undefined
  /** Keys to open with (e.g. `keysForSalt(partSalt)`). @default the object's keys */
  readonly keys?: NativeFormat.ObjectKeys | undefined
  /** Open on worker threads. @default the calling thread */
  readonly pool?: WorkerPool | undefined
  /** Named in errors. @default the object's key */
  readonly errorKey?: string | undefined
}

const envelopeKeys = (
  envelope: NativeFormat.Envelope,
  dataKey: Redacted.Redacted<Uint8Array>,
  context: Readonly<Record<string, string>>,
  keys: NativeFormat.ObjectKeys,
  objectKey: string
): Effect.Effect<EnvelopeKeys, never, Scope.Scope> =>
  Effect.as(
    Effect.addFinalizer(() => Effect.sync(() => Redacted.value(dataKey).fill(0))),
    {
      envelope,
      segmentSize: envelope.segmentSize,
      context,
      keys,
      keysForSalt: (salt) => {
        if (salt.length !== NativeFormat.SALT_LENGTH) throw new Error(`a part salt is ${NativeFormat.SALT_LENGTH} bytes`)
        return NativeFormat.deriveKeys(Redacted.value(dataKey), { segmentSize: envelope.segmentSize, salt }, context)
      },
      seal: (options) => {
        const k = options?.keys ?? keys
        const o = { firstSegment: options?.firstSegment, final: options?.final }
        return options?.pool === undefined ? NativeFormat.encrypt(k, o) : NativeFormat.encryptParallel(k, { ...o, pool: options.pool })
      },
      open: (options) => {
        const k = options.keys ?? keys
        const plan = NativeFormat.planRange(options.plaintextSize, envelope.segmentSize, options.range)
        const name = options.errorKey ?? objectKey
        return options.pool === undefined
          ? NativeFormat.decrypt(k, plan, name)
          : NativeFormat.decryptParallel(k, plan, name, { pool: options.pool })
      }
    } satisfies EnvelopeKeys
  )

/**
 * Creates the envelope of a new object: a fresh random data key and salt, wrapped by every
 * keyring, bound to `bucket`, `key` and `context`. Store `NativeFormat.encodeEnvelope(envelope)` as
 * the object's metadata (or anywhere a later `openEnvelope` finds it). The data key is zeroed when
 * the scope closes.
 *
 * @since 0.1.0
 * @category envelope keys
 */
export const createEnvelope = (
  keyrings: ReadonlyArray<Keyring>,
  target: { readonly bucket: string; readonly key: string },
  options?: {
    readonly context?: Readonly<Record<string, string>> | undefined
    /** @default NativeFormat.DEFAULT_SEGMENT_SIZE */
    readonly segmentSize?: number | undefined
    /** Omit when the length is not known yet (the body's size then gives it). */
    readonly plaintextLength?: number | undefined
  }
): Effect.Effect<EnvelopeKeys, EncryptError, Scope.Scope> =>
  Effect.gen(function*() {
    const fail = (reason: string) => new EncryptError({ key: target.key, reason })
    const segmentSize = options?.segmentSize ?? NativeFormat.DEFAULT_SEGMENT_SIZE
    if (!NativeFormat.isValidSegmentSize(segmentSize)) return yield* fail("invalid segment size")
    if (keyrings.length === 0 || keyrings.length > NativeFormat.MAX_WRAPPED_KEYS) {
      return yield* fail(`between 1 and ${NativeFormat.MAX_WRAPPED_KEYS} keyrings are required`)
    }
    const userContext = options?.context ?? {}
    if (Object.keys(userContext).some((k) => k.startsWith(NativeFormat.RESERVED_CONTEXT_PREFIX))) {
      return yield* fail(`encryption context names starting with ${NativeFormat.RESERVED_CONTEXT_PREFIX} are reserved`)
    }
    const random = yield* FiberRef.get(currentRandom)
    const dataKey = Redacted.make(Uint8Array.from(random(NativeFormat.KEY_LENGTH)))
    const salt = Uint8Array.from(random(NativeFormat.SALT_LENGTH))
    const context = NativeFormat.fullContext(target.bucket, target.key, userContext)
    const keys = NativeFormat.deriveKeys(Redacted.value(dataKey), { segmentSize, salt }, context)
    const wrapped = yield* Effect.forEach(keyrings, (k) => k.wrap(dataKey, { binding: keys.binding, context, objectKey: target.key })).pipe(
      Effect.tapError(() => Effect.sync(() => Redacted.value(dataKey).fill(0)))
    )
    const envelope: NativeFormat.Envelope = {
      version: NativeFormat.FORMAT_VERSION,
      segmentSize,
      salt,
      commitment: keys.commitment,
      contextDigest: keys.contextDigest,
      plaintextLength: options?.plaintextLength,
      context: userContext,
      keys: wrapped
    }
    return yield* envelopeKeys(envelope, dataKey, context, keys, target.key)
  })

/**
 * Opens an object's envelope with a keyring: checks it was written for `bucket` and `key`
 * (`ContextMismatch` otherwise), unwraps the data key and checks the key commitment
 * (`WrongKey`/`CommitmentMismatch`), and returns the object's keys. The data key is zeroed when the
 * scope closes.
 *
 * @since 0.1.0
 * @category envelope keys
 */
export const openEnvelope = (
  envelope: NativeFormat.Envelope,
  unwrapper: Unwrapper,
  target: { readonly bucket: string; readonly key: string }
): Effect.Effect<EnvelopeKeys, DecryptError, Scope.Scope> =>
  Effect.flatMap(
    recoverDataKey(envelope, unwrapper, target.bucket, target.key, target.key),
    ({ context, dataKey, header }) =>
      envelopeKeys(envelope, dataKey, context, NativeFormat.deriveKeys(Redacted.value(dataKey), header, context), target.key)
  )

// ---------------------------------------------------------------------------------------------
// rekey
// ---------------------------------------------------------------------------------------------

/**
 * What a re-key changes: replace every wrapped key, or add recipients and remove entries (by key
 * id, and version or type when given).
 *
 * @since 0.1.0
 * @category models
 */
export type RekeyChange =
  | { readonly _tag: "Replace"; readonly keyrings: ReadonlyArray<Keyring> }
  | {
    readonly _tag: "Update"
    readonly add?: ReadonlyArray<Keyring> | undefined
    readonly remove?: ReadonlyArray<{
      readonly keyId: string
      readonly version?: number | undefined
      readonly type?: NativeFormat.KeyringType | undefined
    }> | undefined
  }

/**
 * Rewraps the data key (another key, key version, added or removed recipients) and rewrites only
 * the envelope — the object's metadata through a same-key `copy`, or its sidecar — never one byte
 * of the body. The copy is conditional on the etag the envelope was read with: when another writer
 * replaces the object meanwhile, it fails with `PreconditionFailed` and changes nothing (a new
 * sidecar it placed is removed); run it again to re-key the new object.
 *
 * @since 0.1.0
 * @category rekeying
 */
export const rekey = (
  store: Store,
  key: string,
  unwrapper: Unwrapper,
  change: RekeyChange
): Effect.Effect<EnvelopeSummary, StoreError | UnsupportedMode | DecryptError | EncryptError> =>
  Effect.gen(function*() {
    const info = yield* store.head(key)
    const { envelope } = yield* loadEnvelope(store, key, info)
    const { binding, context, dataKey } = yield* recoverDataKey(envelope, unwrapper, store.bucket, key, key)
    const wrapAll = (keyrings: ReadonlyArray<Keyring>) =>
      Effect.forEach(keyrings, (k) => k.wrap(dataKey, { binding, context, objectKey: key }))
    let entries: Array<NativeFormat.WrappedKey>
    if (change._tag === "Replace") {
      entries = yield* wrapAll(change.keyrings)
    } else {
      const removed = (e: NativeFormat.WrappedKey) =>
        (change.remove ?? []).some((r) =>
          r.keyId === e.keyId && (r.version === undefined || r.version === e.version) && (r.type === undefined || r.type === e.type)
        )
      entries = [...envelope.keys.filter((e) => !removed(e)), ...(yield* wrapAll(change.add ?? []))]
    }
    Redacted.value(dataKey).fill(0)
    if (entries.length === 0) return yield* new EncryptError({ key, reason: "re-keying would leave no wrapped key" })
    if (entries.length > NativeFormat.MAX_WRAPPED_KEYS) {
      return yield* new EncryptError({ key, reason: `at most ${NativeFormat.MAX_WRAPPED_KEYS} wrapped keys` })
    }
    const next = { ...envelope, keys: entries }
    const userMeta = NativeFormat.userMetadata(info.metadata)
    const oldSidecar = sidecarIdOf(info.metadata)
    const placed = yield* placeEnvelope(store, key, next, userMeta)
    // Conditional on the version whose envelope was read: a body written since keeps its own.
    yield* store.copy(key, key, { metadata: placed.metadata, contentType: info.contentType, ifSourceMatch: info.etag }).pipe(
      Effect.onError(() => placed.cleanup),
      Effect.catchTag("PreconditionFailed", () =>
        Effect.fail(new PreconditionFailed({ key, reason: "the object changed during re-keying; nothing was changed" })))
    )
    yield* removeSidecar(store, key, oldSidecar, placed.sidecarId)
    return summarize({ ...info, metadata: placed.metadata }, next, placed.location)
  })
