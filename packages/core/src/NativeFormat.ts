/**
 * The native segmented client-side format, at the byte level: key derivation, the STREAM segment
 * construction (AES-256-GCM under a counter ‖ last-segment-flag nonce), plaintext-range to
 * ciphertext-range mapping, streaming encrypt/decrypt as Stream transforms, and the envelope
 * encoding in object metadata (or a sidecar object). The byte format is specified in
 * `docs/FORMAT.md`; this module is its reference implementation.
 *
 * @since 0.1.0
 */
import { Channel, Chunk, Effect, Either, Option, Stream } from "effect"
import type { Cause } from "effect"
import * as crypto from "node:crypto"
import { DecryptError } from "./Errors.js"
import type { WorkerPool } from "./internal/nativePool.js"

/**
 * @since 0.1.0
 * @category constants
 */
export const FORMAT_VERSION = 1

/**
 * Suite 1: AES-256-GCM segments, HKDF-SHA256 derivations, 96-bit STREAM nonces.
 *
 * @since 0.1.0
 * @category constants
 */
export const SUITE_AES256GCM_HKDF_SHA256 = 1

/**
 * @since 0.1.0
 * @category constants
 */
export const ALGORITHM = "AES-256-GCM segments, HKDF-SHA256, STREAM nonces, key commitment"

/** @since 0.1.0 @category constants */
export const KEY_LENGTH = 32
/** @since 0.1.0 @category constants */
export const SALT_LENGTH = 32
/** @since 0.1.0 @category constants */
export const COMMITMENT_LENGTH = 32
/** @since 0.1.0 @category constants */
export const CONTEXT_DIGEST_LENGTH = 16
/** @since 0.1.0 @category constants */
export const TAG_LENGTH = 16
/** @since 0.1.0 @category constants */
export const NONCE_LENGTH = 12

/**
 * The default plaintext segment size (chosen from the benchmark recorded in docs/FORMAT.md).
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_SEGMENT_SIZE = 1024 * 1024

/** @since 0.1.0 @category constants */
export const MIN_SEGMENT_SIZE = 16

/** @since 0.1.0 @category constants */
export const MAX_SEGMENT_SIZE = 64 * 1024 * 1024

/**
 * Encryption-context entries objcrypt adds itself; user contexts may not use this prefix.
 *
 * @since 0.1.0
 * @category constants
 */
export const RESERVED_CONTEXT_PREFIX = "oc:"

const LABEL_BINDING = "objcrypt/native/v1 binding"
const LABEL_CONTENT = "objcrypt/native/v1 content key"
const LABEL_COMMIT = "objcrypt/native/v1 key commitment"
const LABEL_CONTEXT = "objcrypt/native/v1 context"

// ---------------------------------------------------------------------------------------------
// Keys and derivations
// ---------------------------------------------------------------------------------------------

/**
 * The fixed, per-object parameters that everything else is bound to.
 *
 * @since 0.1.0
 * @category models
 */
export interface Header {
  readonly segmentSize: number
  readonly salt: Uint8Array
}

/**
 * The keys of one object, derived from its data key. `contentKey` is a `KeyObject` (its bytes are
 * never exposed by inspection).
 *
 * @since 0.1.0
 * @category models
 */
export interface ObjectKeys {
  readonly contentKey: crypto.KeyObject
  readonly commitment: Uint8Array
  /** SHA-256 over header and full encryption context: the AAD every wrapped key is bound to. */
  readonly binding: Uint8Array
  readonly contextDigest: Uint8Array
  readonly segmentSize: number
}

/**
 * True when `n` is a valid segment size.
 *
 * @since 0.1.0
 * @category validation
 */
export const isValidSegmentSize = (n: number): boolean =>
  Number.isSafeInteger(n) && n >= MIN_SEGMENT_SIZE && n <= MAX_SEGMENT_SIZE

/**
 * The 38 header bytes: version ‖ suite ‖ segment size (u32 BE) ‖ salt.
 *
 * @since 0.1.0
 * @category derivations
 */
export const headerBytes = (header: Header): Buffer => {
  const b = Buffer.alloc(6 + SALT_LENGTH)
  b[0] = FORMAT_VERSION
  b[1] = SUITE_AES256GCM_HKDF_SHA256
  b.writeUInt32BE(header.segmentSize, 2)
  Buffer.from(header.salt).copy(b, 6)
  return b
}

/**
 * The canonical encoding of an encryption context: u32 BE count, then for every entry in
 * ascending byte order of its UTF-8 key, u32 BE length ‖ key ‖ u32 BE length ‖ value.
 *
 * @since 0.1.0
 * @category derivations
 */
export const contextBytes = (context: Readonly<Record<string, string>>): Buffer => {
  const entries = Object.entries(context).map(([k, v]) => [Buffer.from(k, "utf8"), Buffer.from(v, "utf8")] as const)
  entries.sort((a, b) => Buffer.compare(a[0], b[0]))
  const parts: Array<Buffer> = [u32(entries.length)]
  for (const [k, v] of entries) parts.push(u32(k.length), k, u32(v.length), v)
  return Buffer.concat(parts)
}

/**
 * The full context bound to an object: the user's context plus `oc:bucket` and `oc:key`.
 *
 * @since 0.1.0
 * @category derivations
 */
export const fullContext = (
  bucket: string,
  key: string,
  user: Readonly<Record<string, string>> | undefined
): Record<string, string> => ({ ...user, "oc:bucket": bucket, "oc:key": key })

/**
 * Derives the content key, the key commitment, the binding digest and the context digest of an
 * object from its data key, header and full encryption context.
 *
 * @since 0.1.0
 * @category derivations
 */
export const deriveKeys = (
  dataKey: Uint8Array,
  header: Header,
  context: Readonly<Record<string, string>>
): ObjectKeys => {
  const binding = bindingDigest(header, context)
  // Node 24 takes ~20 µs to vet a raw key Buffer on every call and ~2 µs to make a KeyObject.
  const ikm = crypto.createSecretKey(dataKey)
  const contentKey = hkdf(ikm, header.salt, Buffer.concat([label(LABEL_CONTENT), binding]), KEY_LENGTH)
  const commitment = hkdf(ikm, header.salt, Buffer.concat([label(LABEL_COMMIT), binding]), COMMITMENT_LENGTH)
  const key = crypto.createSecretKey(contentKey)
  contentKey.fill(0)
  return {
    contentKey: key,
    commitment,
    binding,
    contextDigest: contextDigest(context),
    segmentSize: header.segmentSize
  }
}

/**
 * SHA-256("objcrypt/native/v1 binding" ‖ 0x00 ‖ header ‖ canonical context): what every derived
 * key and every wrapped-key entry is bound to.
 *
 * @since 0.1.0
 * @category derivations
 */
export const bindingDigest = (header: Header, context: Readonly<Record<string, string>>): Buffer =>
  sha256(label(LABEL_BINDING), headerBytes(header), contextBytes(context))

/**
 * First 16 bytes of SHA-256("objcrypt/native/v1 context" ‖ 0x00 ‖ canonical context): lets a
 * reader tell an envelope that belongs to another object before trying any key.
 *
 * @since 0.1.0
 * @category derivations
 */
export const contextDigest = (context: Readonly<Record<string, string>>): Uint8Array =>
  sha256(label(LABEL_CONTEXT), contextBytes(context)).subarray(0, CONTEXT_DIGEST_LENGTH)

/**
 * Compares a stored commitment with the derived one in constant time.
 *
 * @since 0.1.0
 * @category derivations
 */
export const commitmentMatches = (keys: ObjectKeys, stored: Uint8Array): boolean =>
  stored.length === keys.commitment.length && crypto.timingSafeEqual(stored, keys.commitment)

// ---------------------------------------------------------------------------------------------
// Segments
// ---------------------------------------------------------------------------------------------

/**
 * The 12-byte nonce of segment `index`: an 88-bit big-endian counter ‖ 0x01 for the last segment
 * of the object, 0x00 otherwise.
 *
 * @since 0.1.0
 * @category segments
 */
export const segmentNonce = (index: number, final: boolean): Buffer => {
  const n = Buffer.alloc(NONCE_LENGTH)
  n.writeUInt32BE(Math.floor(index / 0x100000000), 3)
  n.writeUInt32BE(index >>> 0, 7)
  n[11] = final ? 1 : 0
  return n
}

/** Largest `update` the calling-thread sealer makes (its output size). */
const UPDATE_SLICE = 256 * 1024

/**
 * Seals one segment given as pieces; pushes the ciphertext pieces then the 16-byte tag to `out`.
 *
 * @since 0.1.0
 * @category segments
 */
export const sealSegment = (
  key: crypto.KeyObject,
  index: number,
  final: boolean,
  pieces: ReadonlyArray<Uint8Array>,
  out: Array<Uint8Array>
): void => {
  const cipher = crypto.createCipheriv("aes-256-gcm", key, segmentNonce(index, final))
  for (const p of pieces) {
    // 256 KiB outputs: a whole 1 MiB output is a fresh mapping whose page faults cost about as
    // much as the encryption, while 64 KiB ones pay the per-call cost four times as often (on a
    // VAES host the sync sealer went 0.79–0.85 → 0.88 of raw AES; docs/FORMAT.md §9.7).
    if (p.length <= UPDATE_SLICE) {
      if (p.length > 0) out.push(cipher.update(p))
    } else {
      for (let o = 0; o < p.length; o += UPDATE_SLICE) out.push(cipher.update(p.subarray(o, o + UPDATE_SLICE)))
    }
  }
  cipher.final()
  out.push(cipher.getAuthTag())
}

/**
 * Opens one whole segment (body ‖ tag); `undefined` when the tag does not verify.
 *
 * @since 0.1.0
 * @category segments
 */
export const openSegment = (
  key: crypto.KeyObject,
  index: number,
  final: boolean,
  segment: Uint8Array
): Uint8Array | undefined => {
  if (segment.length < TAG_LENGTH) return undefined
  const body = segment.subarray(0, segment.length - TAG_LENGTH)
  const decipher = crypto.createDecipheriv("aes-256-gcm", key, segmentNonce(index, final))
  decipher.setAuthTag(segment.subarray(segment.length - TAG_LENGTH))
  const pt = decipher.update(body)
  try {
    decipher.final()
  } catch {
    return undefined
  }
  return pt
}

// ---------------------------------------------------------------------------------------------
// Layout
// ---------------------------------------------------------------------------------------------

/**
 * Number of segments of a plaintext: one (possibly empty) for the empty plaintext, otherwise
 * ⌈size / segmentSize⌉ — the last segment is never empty unless it is the only one.
 *
 * @since 0.1.0
 * @category layout
 */
export const segmentCount = (plaintextSize: number, segmentSize: number): number =>
  plaintextSize === 0 ? 1 : Math.ceil(plaintextSize / segmentSize)

/**
 * @since 0.1.0
 * @category layout
 */
export const ciphertextSize = (plaintextSize: number, segmentSize: number): number =>
  plaintextSize + TAG_LENGTH * segmentCount(plaintextSize, segmentSize)

/**
 * The plaintext size of a ciphertext body, or `None` when no plaintext encrypts to that size.
 *
 * @since 0.1.0
 * @category layout
 */
export const plaintextSize = (ciphertextSize: number, segmentSize: number): Option.Option<number> => {
  if (!Number.isSafeInteger(ciphertextSize) || ciphertextSize < TAG_LENGTH) return Option.none()
  const full = segmentSize + TAG_LENGTH
  const n = Math.ceil(ciphertextSize / full)
  const last = ciphertextSize - (n - 1) * full - TAG_LENGTH
  if (last < 0 || (last === 0 && n > 1)) return Option.none()
  return Option.some(ciphertextSize - n * TAG_LENGTH)
}

/**
 * Which segments hold the plaintext bytes `[start, end)` and the ciphertext byte range
 * `[cipherStart, cipherEnd)` that contains them; `skip` plaintext bytes are dropped from the first
 * segment opened.
 *
 * @since 0.1.0
 * @category layout
 */
export interface SegmentPlan {
  readonly segmentSize: number
  readonly plaintextSize: number
  readonly firstSegment: number
  readonly segments: number
  readonly cipherStart: number
  readonly cipherEnd: number
  readonly skip: number
  readonly take: number
}

/**
 * Maps a plaintext byte range (`end` exclusive, already resolved against the plaintext size) to
 * segments and a ciphertext range. For the empty object, the whole (single, empty) segment.
 *
 * @since 0.1.0
 * @category layout
 */
export const planRange = (
  plaintextSize: number,
  segmentSize: number,
  range?: { readonly start: number; readonly end: number } | undefined
): SegmentPlan => {
  const total = segmentCount(plaintextSize, segmentSize)
  const cSize = ciphertextSize(plaintextSize, segmentSize)
  if (range === undefined || plaintextSize === 0) {
    return {
      segmentSize,
      plaintextSize,
      firstSegment: 0,
      segments: total,
      cipherStart: 0,
      cipherEnd: cSize,
      skip: 0,
      take: plaintextSize
    }
  }
  const first = Math.floor(range.start / segmentSize)
  const last = Math.floor((range.end - 1) / segmentSize)
  const full = segmentSize + TAG_LENGTH
  return {
    segmentSize,
    plaintextSize,
    firstSegment: first,
    segments: last - first + 1,
    cipherStart: first * full,
    cipherEnd: Math.min(cSize, (last + 1) * full),
    skip: range.start - first * segmentSize,
    take: range.end - range.start
  }
}

// ---------------------------------------------------------------------------------------------
// Streaming encryption
// ---------------------------------------------------------------------------------------------

/**
 * A synchronous segmenting sealer: `push` plaintext chunks of any size, `end` once. Holds at most
 * one segment of plaintext (by reference, no copy); a full segment is sealed only once a further
 * byte shows it is not the last one.
 *
 * @since 0.1.0
 * @category streaming
 */
export interface Sealer {
  readonly push: (chunk: Uint8Array, out: Array<Uint8Array>) => void
  readonly end: (out: Array<Uint8Array>) => void
  /** Plaintext bytes pushed so far. */
  readonly bytes: () => number
}

/**
 * @since 0.1.0
 * @category streaming
 */
export interface SealerOptions {
  /** Index of the first segment (a multipart part starts at its offset / segment size). @default 0 */
  readonly firstSegment?: number | undefined
  /** Whether the last segment sealed by `end` is the last of the object. @default true */
  readonly final?: boolean | undefined
}

/**
 * @since 0.1.0
 * @category streaming
 */
export const makeSealer = (keys: Pick<ObjectKeys, "contentKey" | "segmentSize">, options?: SealerOptions): Sealer => {
  const size = keys.segmentSize
  const key = keys.contentKey
  const finalAtEnd = options?.final ?? true
  let index = options?.firstSegment ?? 0
  let pending: Array<Uint8Array> = []
  let pendingLength = 0
  let total = 0
  let ended = false
  return {
    push: (chunk, out) => {
      if (ended) throw new Error("sealer already ended")
      total += chunk.length
      let off = 0
      while (off < chunk.length) {
        if (pendingLength === size) {
          sealSegment(key, index++, false, pending, out)
          pending = []
          pendingLength = 0
        }
        const take = Math.min(size - pendingLength, chunk.length - off)
        pending.push(off === 0 && take === chunk.length ? chunk : chunk.subarray(off, off + take))
        pendingLength += take
        off += take
      }
    },
    end: (out) => {
      if (ended) throw new Error("sealer already ended")
      ended = true
      if (finalAtEnd) {
        sealSegment(key, index++, true, pending, out)
      } else if (pendingLength > 0) {
        // A part that is not the object's last must end on a segment boundary.
        if (pendingLength !== size) throw new Error("a non-final part must be a multiple of the segment size")
        sealSegment(key, index++, false, pending, out)
      }
      pending = []
      pendingLength = 0
    },
    bytes: () => total
  }
}

/**
 * A sealer for a plaintext whose size is known before the first byte: the last segment is known
 * by its index, so every byte is encrypted as soon as it is pushed and **no input chunk is held
 * after `push` returns** — the caller may reuse its buffers (a file reader's ring). Produces the
 * same bytes as {@link makeSealer} over the same plaintext. Pushing more than `plaintextSize`
 * bytes, or ending short of it, throws (callers check lengths first and fail with a typed error).
 *
 * @since 0.1.0
 * @category streaming
 */
export const makeSizedSealer = (
  keys: Pick<ObjectKeys, "contentKey" | "segmentSize">,
  plaintextSize: number
): Sealer => {
  if (!Number.isSafeInteger(plaintextSize) || plaintextSize < 0) throw new Error("invalid plaintext size")
  const size = keys.segmentSize
  const key = keys.contentKey
  const lastIndex = segmentCount(plaintextSize, size) - 1
  let index = 0
  let cipher: crypto.CipherGCM | undefined
  let inSegment = 0
  let total = 0
  let ended = false
  const close = (out: Array<Uint8Array>) => {
    cipher!.final()
    out.push(cipher!.getAuthTag())
    cipher = undefined
    inSegment = 0
    index++
  }
  return {
    push: (chunk, out) => {
      if (ended) throw new Error("sealer already ended")
      if (chunk.length > plaintextSize - total) throw new Error("more plaintext than the size given")
      total += chunk.length
      let off = 0
      while (off < chunk.length) {
        cipher ??= crypto.createCipheriv("aes-256-gcm", key, segmentNonce(index, index === lastIndex))
        const take = Math.min(size - inSegment, chunk.length - off, UPDATE_SLICE)
        out.push(cipher.update(chunk.subarray(off, off + take)))
        inSegment += take
        off += take
        // A full segment closes now unless it is the last (closed by `end`, also when empty).
        if (inSegment === size && index !== lastIndex) close(out)
      }
    },
    end: (out) => {
      if (ended) throw new Error("sealer already ended")
      if (total !== plaintextSize) throw new Error("less plaintext than the size given")
      ended = true
      cipher ??= crypto.createCipheriv("aes-256-gcm", key, segmentNonce(index, true))
      close(out)
    },
    bytes: () => total
  }
}

/**
 * Encrypts a plaintext stream into the segment stream (the object body). Memory: one segment.
 *
 * @since 0.1.0
 * @category streaming
 */
export const encrypt = (keys: Pick<ObjectKeys, "contentKey" | "segmentSize">, options?: SealerOptions) =>
<E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Uint8Array, E, R> =>
  Stream.suspend(() => {
    const sealer = makeSealer(keys, options)
    const loop: Channel.Channel<Chunk.Chunk<Uint8Array>, Chunk.Chunk<Uint8Array>, E, E, unknown, unknown> = Channel
      .readWithCause({
        onInput: (input: Chunk.Chunk<Uint8Array>) => {
          const out: Array<Uint8Array> = []
          for (const c of input) sealer.push(c, out)
          return out.length === 0 ? loop : Channel.zipRight(Channel.write(Chunk.unsafeFromArray(out)), loop)
        },
        onFailure: (cause: Cause.Cause<E>) => Channel.failCause(cause),
        onDone: () =>
          Channel.suspend(() => {
            const out: Array<Uint8Array> = []
            sealer.end(out)
            return Channel.write(Chunk.unsafeFromArray(out))
          })
      })
    return Stream.pipeThroughChannelOrFail(self, loop)
  })

// ---------------------------------------------------------------------------------------------
// Streaming decryption
// ---------------------------------------------------------------------------------------------

/**
 * Why a segment failed to open.
 *
 * @since 0.1.0
 * @category models
 */
export type SegmentFailure = "Tampered" | "Truncated" | "Reordered" | "TrailingData"

/**
 * A synchronous opener for the segments of a plan: push ciphertext chunks of any size. Plaintext of
 * a segment is appended to `out` only after its tag has verified; a failure is returned and every
 * later call fails the same way.
 *
 * @since 0.1.0
 * @category streaming
 */
export interface Opener {
  readonly push: (chunk: Uint8Array, out: Array<Uint8Array>) => SegmentFailure | undefined
  readonly end: (out: Array<Uint8Array>) => SegmentFailure | undefined
}

/**
 * How far around a failing segment's position the opener looks for the position it was sealed
 * at, to report `Reordered` rather than `Tampered`.
 *
 * @since 0.1.0
 * @category constants
 */
export const REORDER_WINDOW = 16

/**
 * Drops the plan's `skip` bytes from the front of the verified plaintext and stops after `take`:
 * a stateful trimmer fed the segments' plaintext in order, pushing what the range keeps to `out`.
 */
const rangeTrimmer = (plan: Pick<SegmentPlan, "skip" | "take">) => {
  let skip = plan.skip
  let remaining = plan.take
  return (plaintext: ReadonlyArray<Uint8Array>, out: Array<Uint8Array>): Array<Uint8Array> => {
    for (let p of plaintext) {
      if (skip > 0) {
        if (p.length <= skip) {
          skip -= p.length
          continue
        }
        p = p.subarray(skip)
        skip = 0
      }
      if (remaining <= 0) break
      if (p.length > remaining) p = p.subarray(0, remaining)
      remaining -= p.length
      if (p.length > 0) out.push(p)
    }
    return out
  }
}

/**
 * @since 0.1.0
 * @category streaming
 */
export interface OpenerOptions {
  /**
   * The caller reuses a chunk's memory once `push` returns (a store's borrowed read): the opener
   * then copies what it keeps of a segment still open at the end of a `push` (its ciphertext, for
   * telling why the segment fails should it fail) into a buffer of its own. @default false
   */
  readonly borrowed?: boolean | undefined
}

/**
 * @since 0.1.0
 * @category streaming
 */
export const makeOpener = (keys: Pick<ObjectKeys, "contentKey" | "segmentSize">, plan: SegmentPlan, options?: OpenerOptions): Opener => {
  const borrowed = options?.borrowed === true
  const size = plan.segmentSize
  const key = keys.contentKey
  const totalSegments = segmentCount(plan.plaintextSize, size)
  const lastIndex = plan.firstSegment + plan.segments - 1
  let index = plan.firstSegment
  let failed: SegmentFailure | undefined
  // Current segment state.
  let bodyLength = 0
  let bodyRemaining = 0
  let decipher: crypto.DecipherGCM | undefined
  let plain: Array<Uint8Array> = []
  let raw: Array<Uint8Array> = []
  const tag = Buffer.alloc(TAG_LENGTH)
  let tagFilled = 0
  // Borrowed input: the open segment's ciphertext from earlier pushes, copied (`kept` bytes).
  let keep: Buffer | undefined
  let kept = 0
  const keepRaw = () => {
    let n = 0
    for (const r of raw) n += r.length
    if (n === 0) return
    if (keep === undefined || keep.length < kept + n) {
      const grown = Buffer.allocUnsafe(Math.max(kept + n, Math.min(size, 2 * (kept + n))))
      if (keep !== undefined) keep.copy(grown, 0, 0, kept)
      keep = grown
    }
    for (const r of raw) {
      keep.set(r, kept)
      kept += r.length
    }
    raw = []
  }
  const segmentCiphertext = () => Buffer.concat([...(kept > 0 ? [keep!.subarray(0, kept)] : []), ...raw, tag])

  const isFinal = (i: number) => i === totalSegments - 1
  const bodyLengthOf = (i: number) => (isFinal(i) ? plan.plaintextSize - i * size : size)

  const start = () => {
    bodyLength = bodyLengthOf(index)
    bodyRemaining = bodyLength
    decipher = crypto.createDecipheriv("aes-256-gcm", key, segmentNonce(index, isFinal(index)))
    plain = []
    raw = []
    kept = 0
    tagFilled = 0
  }

  const trim = rangeTrimmer(plan)
  const release = (out: Array<Uint8Array>) => trim(plain, out)

  const finish = (out: Array<Uint8Array>): SegmentFailure | undefined => {
    const d = decipher!
    d.setAuthTag(tag)
    try {
      const last = d.final()
      if (last.length > 0) plain.push(last)
    } catch {
      return classify(key, index, isFinal(index), segmentCiphertext())
    }
    release(out)
    decipher = undefined
    index++
    return undefined
  }

  return {
    push: (chunk, out) => {
      if (failed !== undefined) return failed
      let off = 0
      while (off < chunk.length) {
        if (decipher === undefined) {
          if (index > lastIndex) return (failed = "TrailingData")
          start()
        }
        if (bodyRemaining > 0) {
          const n = Math.min(bodyRemaining, chunk.length - off)
          const piece = off === 0 && n === chunk.length ? chunk : chunk.subarray(off, off + n)
          raw.push(piece)
          const p = decipher!.update(piece)
          if (p.length > 0) plain.push(p)
          bodyRemaining -= n
          off += n
          continue
        }
        const n = Math.min(TAG_LENGTH - tagFilled, chunk.length - off)
        tag.set(chunk.subarray(off, off + n), tagFilled)
        tagFilled += n
        off += n
        if (tagFilled === TAG_LENGTH) {
          const f = finish(out)
          if (f !== undefined) return (failed = f)
        }
      }
      if (borrowed && decipher !== undefined) keepRaw()
      return undefined
    },
    end: (out) => {
      if (failed !== undefined) return failed
      if (decipher === undefined && index === plan.firstSegment && index <= lastIndex) start()
      if (decipher !== undefined) {
        // An empty final segment (the empty object) is complete once its tag is; anything else
        // still pending means bytes are missing.
        if (bodyRemaining === 0 && tagFilled === TAG_LENGTH) {
          const f = finish(out)
          if (f !== undefined) return (failed = f)
        } else {
          return (failed = "Truncated")
        }
      }
      if (index <= lastIndex) return (failed = "Truncated")
      return undefined
    }
  }
}

/**
 * Tells why a segment did not open at its position: sealed as the last segment while more were
 * expected (data after the end: `TrailingData`), sealed as not-last where the object should end
 * (`Truncated`), sealed at another position nearby (`Reordered`, covering duplicates), or none of
 * these (`Tampered`).
 *
 * @since 0.1.0
 * @category streaming
 */
export const classify = (
  key: crypto.KeyObject,
  index: number,
  final: boolean,
  segment: Uint8Array
): SegmentFailure => {
  if (openSegment(key, index, !final, segment) !== undefined) return final ? "Truncated" : "TrailingData"
  for (let j = Math.max(0, index - REORDER_WINDOW); j <= index + REORDER_WINDOW; j++) {
    if (j === index) continue
    if (openSegment(key, j, false, segment) !== undefined || openSegment(key, j, true, segment) !== undefined) {
      return "Reordered"
    }
  }
  return "Tampered"
}

/**
 * Decrypts the ciphertext bytes of a plan (the whole body, or the ranged bytes `planRange` asked
 * for) into the requested plaintext. Never emits plaintext of a segment whose tag has not verified;
 * fails with `DecryptError` at the first bad segment.
 *
 * @since 0.1.0
 * @category streaming
 */
export const decrypt = (
  keys: Pick<ObjectKeys, "contentKey" | "segmentSize">,
  plan: SegmentPlan,
  objectKey: string,
  options?: OpenerOptions
) =>
<E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Uint8Array, E | DecryptError, R> =>
  Stream.suspend(() => {
    const opener = makeOpener(keys, plan, options)
    const fail = (reason: SegmentFailure) => Channel.fail(new DecryptError({ reason, key: objectKey }))
    const loop: Channel.Channel<Chunk.Chunk<Uint8Array>, Chunk.Chunk<Uint8Array>, E | DecryptError, E, unknown, unknown> =
      Channel.readWithCause({
        onInput: (input: Chunk.Chunk<Uint8Array>) => {
          const out: Array<Uint8Array> = []
          for (const c of input) {
            const f = opener.push(c, out)
            if (f !== undefined) {
              return out.length === 0 ? fail(f) : Channel.zipRight(Channel.write(Chunk.unsafeFromArray(out)), fail(f))
            }
          }
          return out.length === 0 ? loop : Channel.zipRight(Channel.write(Chunk.unsafeFromArray(out)), loop)
        },
        onFailure: (cause: Cause.Cause<E>) => Channel.failCause(cause),
        onDone: () =>
          Channel.suspend(() => {
            const out: Array<Uint8Array> = []
            const f = opener.end(out)
            const written = out.length === 0 ? Channel.void : Channel.write(Chunk.unsafeFromArray(out))
            return f === undefined ? written : Channel.zipRight(written, fail(f))
          })
      })
    return Stream.pipeThroughChannelOrFail(self, loop)
  })

// ---------------------------------------------------------------------------------------------
// Parallel streaming (worker pool)
// ---------------------------------------------------------------------------------------------

/**
 * Plaintext bytes per message to a pool worker (rounded down to whole segments, at least one):
 * large enough that per-message costs vanish, small enough that memory stays a few segments per
 * worker.
 *
 * @since 0.1.0
 * @category constants
 */
export const POOL_BATCH_BYTES = 4 * 1024 * 1024

/**
 * A run of bytes cut from a stream by {@link groupBytes}.
 *
 * @since 0.1.0
 * @category models
 */
export interface ByteGroup {
  readonly index: number
  /** The group's bytes, by reference to the input chunks (no copy). */
  readonly pieces: ReadonlyArray<Uint8Array>
  readonly size: number
  /** True for the stream's last group (the only one that may be shorter, or empty for an empty stream). */
  readonly last: boolean
}

/**
 * Groups a byte stream into runs of exactly `size` bytes (the last one shorter), by reference. A
 * full group is emitted only once a further byte shows it is not the last, so the last group is
 * flagged — what the STREAM construction needs to seal the final segment.
 *
 * @since 0.1.0
 * @category streaming
 */
export const groupBytes = (size: number) =>
<E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<ByteGroup, E, R> =>
  Stream.suspend(() => {
    let pieces: Array<Uint8Array> = []
    let filled = 0
    let index = 0
    const emit = (last: boolean): ByteGroup => {
      const g = { index: index++, pieces, size: filled, last }
      pieces = []
      filled = 0
      return g
    }
    return self.pipe(
      Stream.mapConcat((chunk: Uint8Array) => {
        const out: Array<ByteGroup> = []
        let off = 0
        while (off < chunk.length) {
          if (filled === size) out.push(emit(false))
          const n = Math.min(size - filled, chunk.length - off)
          pieces.push(off === 0 && n === chunk.length ? chunk : chunk.subarray(off, off + n))
          filled += n
          off += n
        }
        return out
      }),
      Stream.concat(Stream.suspend(() => Stream.succeed(emit(true))))
    )
  })

/**
 * @since 0.1.0
 * @category streaming
 */
export interface ParallelOptions {
  readonly pool: WorkerPool
  /**
   * Hand input chunks that wholly own their `ArrayBuffer` to the workers without copying them; the
   * caller's chunks are detached afterwards, so set it only for buffers nothing else reads again
   * (e.g. fresh file reads). @default false
   */
  readonly transfer?: boolean | undefined
  /** Batches in flight at once. @default 2 × the pool's size */
  readonly concurrency?: number | undefined
  /** Bytes per batch sent to a worker, rounded down to whole segments. @default POOL_BATCH_BYTES */
  readonly batchBytes?: number | undefined
}

const batchSegments = (segmentSize: number, batchBytes: number | undefined) =>
  Math.max(1, Math.floor((batchBytes ?? POOL_BATCH_BYTES) / segmentSize))

/**
 * As {@link encrypt}, sealing batches of segments on the pool's worker threads; the output is
 * byte-identical and in order. Memory: `concurrency` batches.
 *
 * @since 0.1.0
 * @category streaming
 */
export const encryptParallel = (
  keys: Pick<ObjectKeys, "contentKey" | "segmentSize">,
  options: ParallelOptions & SealerOptions
) =>
<E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Uint8Array, E, R> =>
  Stream.suspend(() => {
    const perBatch = batchSegments(keys.segmentSize, options.batchBytes)
    const first = options.firstSegment ?? 0
    const final = options.final ?? true
    return self.pipe(
      groupBytes(perBatch * keys.segmentSize),
      Stream.mapEffect(
        (g) => options.pool.seal(keys, first + g.index * perBatch, g.last && final, g.pieces, { transfer: options.transfer }),
        { concurrency: options.concurrency ?? 2 * options.pool.size }
      ),
      Stream.mapConcat((out) => out)
    )
  })

interface OpenBatch {
  readonly first: number
  readonly bodyLengths: ReadonlyArray<number>
  readonly pieces: ReadonlyArray<Uint8Array>
  /** Set when the stream showed this batch is the end of what can be opened. */
  readonly failure?: SegmentFailure | undefined
}

/**
 * As {@link decrypt}, opening batches of whole segments on the pool's worker threads, in order.
 * A worker returns only the plaintext of segments whose tags verified and stops at the first one
 * that does not, so the rule is the same: no plaintext of a bad segment or anything after it, and
 * the same `DecryptError` reasons.
 *
 * @since 0.1.0
 * @category streaming
 */
export const decryptParallel = (
  keys: Pick<ObjectKeys, "contentKey" | "segmentSize">,
  plan: SegmentPlan,
  objectKey: string,
  options: ParallelOptions
) =>
<E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Uint8Array, E | DecryptError, R> =>
  Stream.suspend(() => {
    const size = plan.segmentSize
    const finalIndex = segmentCount(plan.plaintextSize, size) - 1
    const lastIndex = plan.firstSegment + plan.segments - 1
    const bodyLengthOf = (i: number) => (i === finalIndex ? plan.plaintextSize - i * size : size)
    const perBatch = batchSegments(size, options.batchBytes)
    let next = plan.firstSegment
    let current: { first: number; bodyLengths: Array<number>; pieces: Array<Uint8Array>; need: number; got: number } | undefined
    let over = false
    const begin = () => {
      const bodyLengths: Array<number> = []
      let need = 0
      for (let i = next; i <= lastIndex && bodyLengths.length < perBatch; i++) {
        bodyLengths.push(bodyLengthOf(i))
        need += bodyLengthOf(i) + TAG_LENGTH
      }
      current = { first: next, bodyLengths, pieces: [], need, got: 0 }
      next += bodyLengths.length
    }
    const cut = (chunk: Uint8Array): Array<OpenBatch> => {
      const out: Array<OpenBatch> = []
      let off = 0
      while (off < chunk.length && !over) {
        if (current === undefined) {
          if (next > lastIndex) {
            out.push({ first: next, bodyLengths: [], pieces: [], failure: "TrailingData" })
            over = true
            break
          }
          begin()
        }
        const c = current!
        const n = Math.min(c.need - c.got, chunk.length - off)
        c.pieces.push(off === 0 && n === chunk.length ? chunk : chunk.subarray(off, off + n))
        c.got += n
        off += n
        if (c.got === c.need) {
          out.push({ first: c.first, bodyLengths: c.bodyLengths, pieces: c.pieces })
          current = undefined
        }
      }
      return out
    }
    const end = (): Array<OpenBatch> => {
      if (over) return []
      if (current !== undefined) {
        // The whole segments received before the stream ended still open (and are released);
        // then the object is short.
        const c = current
        const whole: Array<number> = []
        let used = 0
        for (const l of c.bodyLengths) {
          if (used + l + TAG_LENGTH > c.got) break
          whole.push(l)
          used += l + TAG_LENGTH
        }
        const pieces: Array<Uint8Array> = []
        let left = used
        for (const p of c.pieces) {
          if (left === 0) break
          const take = Math.min(left, p.length)
          pieces.push(take === p.length ? p : p.subarray(0, take))
          left -= take
        }
        return [{ first: c.first, bodyLengths: whole, pieces, failure: "Truncated" }]
      }
      return next <= lastIndex ? [{ first: next, bodyLengths: [], pieces: [], failure: "Truncated" }] : []
    }
    const trim = rangeTrimmer(plan)
    const release = (plaintext: ReadonlyArray<Uint8Array>): Array<Uint8Array> => trim(plaintext, [])
    return self.pipe(
      Stream.mapConcat(cut),
      Stream.concat(Stream.suspend(() => Stream.fromIterable(end()))),
      Stream.mapEffect(
        (b): Effect.Effect<{ readonly plaintext: ReadonlyArray<Uint8Array>; readonly failure?: SegmentFailure | undefined }> =>
          b.bodyLengths.length === 0
            ? Effect.succeed({ plaintext: [], failure: b.failure })
            : Effect.map(
              options.pool.open(keys, b.first, finalIndex, b.bodyLengths, b.pieces, { transfer: options.transfer }),
              (r) => ({ plaintext: r.plaintext, failure: r.reason ?? b.failure })
            ),
        { concurrency: options.concurrency ?? 2 * options.pool.size }
      ),
      Stream.flatMap((r) => {
        const out = Stream.fromIterable(release(r.plaintext))
        return r.failure === undefined
          ? out
          : Stream.concat(out, Stream.fail(new DecryptError({ reason: r.failure, key: objectKey })))
      })
    )
  })

// ---------------------------------------------------------------------------------------------
// Envelope
// ---------------------------------------------------------------------------------------------

/**
 * The keyring kinds a wrapped-key entry may come from.
 *
 * @since 0.1.0
 * @category models
 */
export type KeyringType = "aes-gcm" | "aes-kw" | "kms" | "rsa-oaep-256" | "x25519"

/**
 * @since 0.1.0
 * @category models
 */
export const KEYRING_TYPES: ReadonlyArray<KeyringType> = ["aes-gcm", "aes-kw", "kms", "rsa-oaep-256", "x25519"]

/**
 * One wrapped copy of the data key.
 *
 * @since 0.1.0
 * @category models
 */
export interface WrappedKey {
  readonly type: KeyringType
  /** Key-store id, KMS key id/ARN, or the name given to a raw key. */
  readonly keyId: string
  /** Key version (0 when the keyring has none, e.g. KMS). */
  readonly version: number
  readonly data: Uint8Array
}

/**
 * Everything a reader needs besides a key. Contains no secret.
 *
 * @since 0.1.0
 * @category models
 */
export interface Envelope {
  readonly version: number
  readonly segmentSize: number
  readonly salt: Uint8Array
  readonly commitment: Uint8Array
  readonly contextDigest: Uint8Array
  /** Absent when the upload did not know its length (then the body's size alone gives it). */
  readonly plaintextLength?: number | undefined
  /** The user's encryption context (without the `oc:` entries objcrypt adds). */
  readonly context: Readonly<Record<string, string>>
  readonly keys: ReadonlyArray<WrappedKey>
}

/**
 * Metadata keys of the envelope: lower-case ASCII letters and digits only, so S3, GCS and Azure
 * (whose names must be C# identifiers) all accept them unchanged.
 *
 * @since 0.1.0
 * @category constants
 */
export const MetadataKeys = {
  version: "ocv",
  segmentSize: "ocseg",
  salt: "ocsalt",
  commitment: "occm",
  contextDigest: "occx",
  plaintextLength: "oclen",
  context: "occtx",
  sidecar: "ocsc",
  keyPrefix: "ock"
} as const

/**
 * Most wrapped-key entries one envelope may hold.
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_WRAPPED_KEYS = 32

/**
 * Suffix of the sidecar object holding an envelope too large for the store's metadata.
 *
 * @since 0.1.0
 * @category constants
 */
export const SIDECAR_SUFFIX = ".ocenv"

/**
 * Encodes an envelope as metadata entries.
 *
 * @since 0.1.0
 * @category envelope
 */
export const encodeEnvelope = (env: Envelope): Record<string, string> => {
  const m: Record<string, string> = {
    [MetadataKeys.version]: String(env.version),
    [MetadataKeys.segmentSize]: String(env.segmentSize),
    [MetadataKeys.salt]: b64u(env.salt),
    [MetadataKeys.commitment]: b64u(env.commitment),
    [MetadataKeys.contextDigest]: b64u(env.contextDigest)
  }
  if (env.plaintextLength !== undefined) m[MetadataKeys.plaintextLength] = String(env.plaintextLength)
  if (Object.keys(env.context).length > 0) m[MetadataKeys.context] = b64u(Buffer.from(canonicalJson(env.context), "utf8"))
  env.keys.forEach((k, i) => {
    m[`${MetadataKeys.keyPrefix}${i}`] = encodeWrappedKey(k)
  })
  return m
}

/**
 * `type.version.b64url(keyId).b64url(data)`.
 *
 * @since 0.1.0
 * @category envelope
 */
export const encodeWrappedKey = (k: WrappedKey): string =>
  `${k.type}.${k.version}.${b64u(Buffer.from(k.keyId, "utf8"))}.${b64u(k.data)}`

/**
 * What the metadata of an object says about its envelope.
 *
 * @since 0.1.0
 * @category models
 */
export type EnvelopeLocation =
  | { readonly _tag: "Inline"; readonly envelope: Envelope }
  | { readonly _tag: "Sidecar"; readonly id: string }

/**
 * Reasons an envelope cannot be read.
 *
 * @since 0.1.0
 * @category models
 */
export type EnvelopeFailure = "MissingMetadata" | "MalformedMetadata" | "UnknownFormat"

/**
 * True when metadata marks a native client-side object.
 *
 * @since 0.1.0
 * @category envelope
 */
export const isEncrypted = (metadata: Readonly<Record<string, string>>): boolean =>
  metadata[MetadataKeys.version] !== undefined

/**
 * Decodes the envelope entries of an object's metadata (or of a sidecar object).
 *
 * @since 0.1.0
 * @category envelope
 */
export const decodeEnvelope = (
  metadata: Readonly<Record<string, string>>
): Either.Either<EnvelopeLocation, { readonly reason: EnvelopeFailure; readonly detail: string }> => {
  const bad = (detail: string) => Either.left({ reason: "MalformedMetadata" as const, detail })
  const v = metadata[MetadataKeys.version]
  if (v === undefined) return Either.left({ reason: "MissingMetadata", detail: "no objcrypt envelope in the object metadata" })
  if (v !== String(FORMAT_VERSION)) return Either.left({ reason: "UnknownFormat", detail: `format version ${JSON.stringify(v)}` })
  if (metadata[MetadataKeys.sidecar] !== undefined) {
    const id = metadata[MetadataKeys.sidecar]!
    const raw = unb64u(id)
    if (raw === undefined || raw.length !== SIDECAR_ID_LENGTH) return bad("sidecar marker")
    return Either.right({ _tag: "Sidecar", id })
  }
  const seg = decimal(metadata[MetadataKeys.segmentSize])
  if (seg === undefined || !isValidSegmentSize(seg)) return bad("segment size")
  const salt = unb64u(metadata[MetadataKeys.salt])
  if (salt === undefined || salt.length !== SALT_LENGTH) return bad("salt")
  const commitment = unb64u(metadata[MetadataKeys.commitment])
  if (commitment === undefined || commitment.length !== COMMITMENT_LENGTH) return bad("commitment")
  const cx = unb64u(metadata[MetadataKeys.contextDigest])
  if (cx === undefined || cx.length !== CONTEXT_DIGEST_LENGTH) return bad("context digest")
  let plaintextLength: number | undefined
  if (metadata[MetadataKeys.plaintextLength] !== undefined) {
    plaintextLength = decimal(metadata[MetadataKeys.plaintextLength])
    if (plaintextLength === undefined) return bad("plaintext length")
  }
  let context: Record<string, string> = {}
  if (metadata[MetadataKeys.context] !== undefined) {
    const raw = unb64u(metadata[MetadataKeys.context])
    if (raw === undefined) return bad("encryption context")
    try {
      const parsed: unknown = JSON.parse(Buffer.from(raw).toString("utf8"))
      if (
        typeof parsed !== "object" || parsed === null || Array.isArray(parsed) ||
        Object.values(parsed).some((x) => typeof x !== "string")
      ) return bad("encryption context")
      context = parsed as Record<string, string>
    } catch {
      return bad("encryption context")
    }
  }
  const keys: Array<WrappedKey> = []
  for (let i = 0; i < MAX_WRAPPED_KEYS; i++) {
    const s = metadata[`${MetadataKeys.keyPrefix}${i}`]
    if (s === undefined) break
    const k = decodeWrappedKey(s)
    if (k === undefined) return bad(`wrapped key ${i}`)
    keys.push(k)
  }
  if (keys.length === 0) return bad("no wrapped key")
  return Either.right({
    _tag: "Inline",
    envelope: { version: FORMAT_VERSION, segmentSize: seg, salt, commitment, contextDigest: cx, plaintextLength, context, keys }
  })
}

/**
 * @since 0.1.0
 * @category envelope
 */
export const decodeWrappedKey = (s: string): WrappedKey | undefined => {
  const parts = s.split(".")
  if (parts.length !== 4) return undefined
  const [type, version, id, data] = parts as [string, string, string, string]
  if (!(KEYRING_TYPES as ReadonlyArray<string>).includes(type)) return undefined
  const v = decimal(version)
  const keyId = unb64u(id)
  const bytes = unb64u(data)
  if (v === undefined || keyId === undefined || bytes === undefined || bytes.length === 0) return undefined
  return { type: type as KeyringType, version: v, keyId: Buffer.from(keyId).toString("utf8"), data: bytes }
}

/**
 * The metadata written when the envelope lives in a sidecar object `id` (16 random bytes,
 * base64url): a fresh id per write, so replacing an envelope never overwrites the one a reader may
 * be using.
 *
 * @since 0.1.0
 * @category envelope
 */
export const sidecarMarker = (id: string): Record<string, string> => ({
  [MetadataKeys.version]: String(FORMAT_VERSION),
  [MetadataKeys.sidecar]: id
})

/**
 * @since 0.1.0
 * @category constants
 */
export const SIDECAR_ID_LENGTH = 16

/**
 * The key of the sidecar object `id` of the object `key`: `<key>.ocenv.<id>`.
 *
 * @since 0.1.0
 * @category envelope
 */
export const sidecarKey = (key: string, id: string): string => `${key}${SIDECAR_SUFFIX}.${id}`

/**
 * The sidecar object's body: the same entries as inline metadata, as a JSON object.
 *
 * @since 0.1.0
 * @category envelope
 */
export const encodeSidecar = (env: Envelope): Uint8Array => Buffer.from(canonicalJson(encodeEnvelope(env)), "utf8")

/**
 * @since 0.1.0
 * @category envelope
 */
export const decodeSidecar = (
  bytes: Uint8Array
): Either.Either<Envelope, { readonly reason: EnvelopeFailure; readonly detail: string }> => {
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(bytes).toString("utf8"))
  } catch {
    return Either.left({ reason: "MalformedMetadata", detail: "sidecar is not JSON" })
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed) || Object.values(parsed).some((x) => typeof x !== "string")) {
    return Either.left({ reason: "MalformedMetadata", detail: "sidecar is not an object of strings" })
  }
  return Either.flatMap(decodeEnvelope(parsed as Record<string, string>), (loc) =>
    loc._tag === "Inline" ? Either.right(loc.envelope) : Either.left({ reason: "MalformedMetadata" as const, detail: "sidecar points to a sidecar" }))
}

/**
 * Removes the envelope entries from metadata, leaving the user's own.
 *
 * @since 0.1.0
 * @category envelope
 */
export const userMetadata = (metadata: Readonly<Record<string, string>>): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(metadata)) if (!isEnvelopeKey(k)) out[k] = v
  return out
}

/**
 * True for the metadata names the envelope uses (user metadata may not use them).
 *
 * @since 0.1.0
 * @category envelope
 */
export const isEnvelopeKey = (k: string): boolean =>
  Object.values(MetadataKeys).some((name) => name !== MetadataKeys.keyPrefix && name === k) ||
  /^ock[0-9]+$/.test(k)

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/**
 * Base64url without padding.
 *
 * @since 0.1.0
 * @category utils
 */
export const b64u = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64url")

/**
 * Strict base64url (no padding) decoding; `undefined` for anything else.
 *
 * @since 0.1.0
 * @category utils
 */
export const unb64u = (s: string | undefined): Uint8Array | undefined => {
  if (s === undefined || !/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) return undefined
  const b = Buffer.from(s, "base64url")
  return b.toString("base64url") === s ? b : undefined
}

/**
 * JSON with object keys sorted (by UTF-16 code units, as `Array.prototype.sort`).
 *
 * @since 0.1.0
 * @category utils
 */
export const canonicalJson = (o: Readonly<Record<string, string>>): string =>
  JSON.stringify(Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))))

const decimal = (s: string | undefined): number | undefined => {
  if (s === undefined || !/^(0|[1-9][0-9]{0,15})$/.test(s)) return undefined
  const n = Number(s)
  return Number.isSafeInteger(n) ? n : undefined
}

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n)
  return b
}

const label = (s: string): Buffer => Buffer.concat([Buffer.from(s, "ascii"), Buffer.from([0])])

const sha256 = (...parts: ReadonlyArray<Uint8Array>): Buffer => {
  const h = crypto.createHash("sha256")
  for (const p of parts) h.update(p)
  return h.digest()
}

const hkdf = (ikm: Uint8Array | crypto.KeyObject, salt: Uint8Array, info: Uint8Array, length: number): Buffer =>
  Buffer.from(crypto.hkdfSync("sha256", ikm, salt, info, length))
