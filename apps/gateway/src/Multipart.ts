/**
 * Encrypted multipart uploads whose parts are encrypted independently, as S3 clients send them:
 * in any order, of sizes the client chooses, each possibly on another gateway process.
 *
 * CreateMultipartUpload draws the object's data key and wraps it (SSE-S3, SSE-KMS or SSE-C
 * keyring) into an envelope kept in the upload's record in the backend. Each UploadPart unwraps
 * the data key, draws a fresh random 32-byte part salt and encrypts the part as one complete
 * native-format segment stream (segments from 0, the last flagged final) under the content key
 * HKDF derives from the data key, the part salt and the object's context. A part uploaded twice
 * gets a new salt, so no (key, nonce) pair is ever reused. CompleteMultipartUpload writes a
 * manifest (each chosen part's salt, plaintext and ciphertext size) and completes the backend
 * upload; reads decrypt part by part, ranged reads fetch only the segments they need. See
 * apps/gateway/README.md.
 *
 * @since 0.1.0
 */
import * as ClientSide from "@objcrypt/core/ClientSide"
import { DecryptError } from "@objcrypt/core/Errors"
import type { StoreError } from "@objcrypt/core/Errors"
import type * as Keyring from "@objcrypt/core/Keyring"
import * as NativeFormat from "@objcrypt/core/NativeFormat"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import { Duration, Effect, Either, Option, Schedule, Schema, Stream } from "effect"
import type { Scope } from "effect"
import * as crypto from "node:crypto"
import { readJson, storeIfExists, writeJson } from "./Buckets.js"
import type { Buckets } from "./Buckets.js"
import * as Checksums from "./Checksums.js"
import * as Etag from "./internal/etag.js"
import type * as Orphans from "./internal/orphans.js"
import { errors } from "./S3Error.js"
import type { S3Error } from "./S3Error.js"
import { Meta } from "./Sse.js"

type Store = ObjectStore.ObjectStore["Type"]

/**
 * Prefix of the envelope entries of a multipart object: not the native names, so a native reader
 * never mistakes the object for a single segment stream.
 *
 * @since 0.1.0
 * @category constants
 */
export const ENVELOPE_PREFIX = "gwe-"

/**
 * The upload record kept in the gateway's system store.
 *
 * @since 0.1.0
 * @category models
 */
export const UploadRecord = Schema.Struct({
  bucket: Schema.String,
  key: Schema.String,
  backendUploadId: Schema.String,
  manifestId: Schema.String,
  initiated: Schema.String,
  /** The object's metadata as created (gateway entries + prefixed envelope + user metadata). */
  metadata: Schema.Record({ key: Schema.String, value: Schema.String }),
  /** `x-amz-checksum-algorithm` of CreateMultipartUpload: the parts' and the composite checksum. */
  checksumAlgorithm: Schema.optional(Schema.Literal(...Checksums.ALGORITHMS)),
  /** `x-amz-checksum-type`: one checksum of the parts' checksums, or a CRC of the whole object. */
  checksumType: Schema.optional(Schema.Literal("COMPOSITE", "FULL_OBJECT")),
  /** Who started the upload (ListMultipartUploads' Initiator/Owner). */
  initiator: Schema.optional(Schema.String)
})

/**
 * @since 0.1.0
 * @category models
 */
export type UploadRecord = typeof UploadRecord.Type

/**
 * A checksum of plaintext bytes (base64, as S3 sends it).
 *
 * @since 0.1.0
 * @category models
 */
export const PartChecksum = Schema.Struct({ algorithm: Schema.Literal(...Checksums.ALGORITHMS), value: Schema.String })

/**
 * @since 0.1.0
 * @category models
 */
export type PartChecksum = typeof PartChecksum.Type

/**
 * One uploaded part.
 *
 * @since 0.1.0
 * @category models
 */
export const PartRecord = Schema.Struct({
  partNumber: Schema.Int,
  salt: Schema.String,
  plain: Schema.Int,
  cipher: Schema.Int,
  etag: Schema.String,
  uploaded: Schema.String,
  /** The part's verified `x-amz-checksum-*` (plaintext), when the request carried one. */
  checksum: Schema.optional(PartChecksum),
  /** The hex MD5 of the part's plaintext (SSE-S3 uploads): the part's ETag, as S3 returns it. */
  md5: Schema.optional(Schema.String)
})

/**
 * @since 0.1.0
 * @category models
 */
export type PartRecord = typeof PartRecord.Type

/**
 * The ETag a client sees for a part: the MD5 of its plaintext when recorded (SSE-S3), otherwise
 * the backend's ETag of its ciphertext (opaque, as S3's SSE-KMS and SSE-C part ETags are).
 *
 * @since 0.1.0
 * @category models
 */
export const partEtag = (part: PartRecord): string => part.md5 ?? part.etag

/**
 * The layout of a completed multipart object.
 *
 * @since 0.1.0
 * @category models
 */
export const Manifest = Schema.Struct({
  size: Schema.Int,
  parts: Schema.Array(Schema.Struct({
    salt: Schema.String,
    plain: Schema.Int,
    cipher: Schema.Int,
    partNumber: Schema.optional(Schema.Int),
    checksum: Schema.optional(PartChecksum)
  })),
  /**
   * The object's checksum when every part carried the upload's algorithm: S3's composite
   * (`<base64>-<parts>`) or a full-object CRC combined from the parts' CRCs.
   */
  checksum: Schema.optional(PartChecksum),
  checksumType: Schema.optional(Schema.Literal("COMPOSITE", "FULL_OBJECT")),
  /** The object's key, for the sweep of orphan manifests (absent in manifests of older gateways). */
  key: Schema.optional(Schema.String)
})

/**
 * @since 0.1.0
 * @category models
 */
export type Manifest = typeof Manifest.Type

const uploadKey = (id: string) => `uploads/${id}/record`

/**
 * A new upload id: 12 hex digits of the creation time in milliseconds, then 20 random hex digits.
 * Ids of one key therefore sort by initiation, so S3's two orders for the uploads of a key (by
 * initiation in the listing, by "lexicographically greater" upload id after `upload-id-marker`)
 * are one order.
 */
const newUploadId = (now: number): string =>
  `${Math.max(0, Math.min(now, 0xffffffffffff)).toString(16).padStart(12, "0")}${crypto.randomBytes(10).toString("hex")}`

/**
 * Where the uploads in progress are listed: `upload-index/<bucket>/<escaped key> /<upload id>`,
 * an empty entry per upload whose name the backend lists in S3's order (by key, then initiation).
 * The escape keeps that order: the bytes below `"` (0x22), `!` included, become `!` and two hex
 * digits, so every escaped or literal character of a key sorts above the space ending the key, and
 * a key sorts before the keys it is a prefix of, as in S3. The rest of the key stays as it is and
 * the id is a path segment of its own, so the key's last segment grows by one byte only (drivers
 * with per-segment limits, like driver-fs's 255 bytes, take the entry wherever they take the
 * object, but for a last segment of exactly 255 bytes or one with control characters).
 */
const INDEX_PREFIX = "upload-index/"
const UPLOAD_ID = /^[0-9a-f]{32}$/
const escapeKey = (key: string) => {
  let out = ""
  for (const c of key) {
    const n = c.charCodeAt(0)
    out += n <= 0x21 ? `!${n.toString(16).padStart(2, "0")}` : c
  }
  return out
}
const unescapeKey = (s: string) => s.replace(/!([0-9a-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)))
const indexBase = (bucket: string) => `${INDEX_PREFIX}${bucket}/`
const indexKey = (bucket: string, key: string, id: string) => `${indexBase(bucket)}${escapeKey(key)} /${id}`
const parseIndexKey = (bucket: string, name: string): { readonly key: string; readonly id: string } | undefined => {
  const rest = name.slice(indexBase(bucket).length)
  const end = rest.lastIndexOf(" /")
  const id = rest.slice(end + 2)
  return end < 0 || !name.startsWith(indexBase(bucket)) || !UPLOAD_ID.test(id) ? undefined : { key: unescapeKey(rest.slice(0, end)), id }
}

const partKey = (id: string, n: number) => `uploads/${id}/parts/${String(n).padStart(5, "0")}`
/**
 * Where a completed object's manifest is kept.
 *
 * @since 0.1.0
 * @category models
 */
export const manifestKey = (bucket: string, id: string) => `manifests/${bucket}/${id}`

const decode = <A, I>(schema: Schema.Schema<A, I>) => {
  const d = Schema.decodeUnknownEither(Schema.parseJson(schema))
  return (text: string | undefined): A | undefined => {
    if (text === undefined) return undefined
    const r = d(text)
    return Either.isRight(r) ? r.right : undefined
  }
}
const decodeUpload = decode(UploadRecord)
const decodePart = decode(PartRecord)
const decodeManifest = decode(Manifest)

const prefixed = (m: Record<string, string>) => Object.fromEntries(Object.entries(m).map(([k, v]) => [`${ENVELOPE_PREFIX}${k}`, v]))
const unprefixed = (m: Readonly<Record<string, string>>) =>
  Object.fromEntries(Object.entries(m).filter(([k]) => k.startsWith(ENVELOPE_PREFIX)).map(([k, v]) => [k.slice(ENVELOPE_PREFIX.length), v]))

/**
 * True when an object was written by a multipart upload.
 *
 * @since 0.1.0
 * @category reading
 */
export const isMultipart = (metadata: Readonly<Record<string, string>>): boolean => metadata[Meta.multipart] !== undefined

/**
 * Starts an upload: wraps a fresh data key with the keyring and records the upload.
 *
 * @since 0.1.0
 * @category writing
 */
export const create = (options: {
  readonly system: Store
  readonly store: Store
  readonly bucket: string
  readonly key: string
  readonly keyring: Keyring.Keyring
  readonly context: Readonly<Record<string, string>>
  readonly metadata: Readonly<Record<string, string>>
  readonly contentType: string | undefined
  readonly checksumAlgorithm?: Checksums.Algorithm | undefined
  readonly checksumType?: "COMPOSITE" | "FULL_OBJECT" | undefined
  readonly initiator?: string | undefined
}): Effect.Effect<string, StoreError | S3Error> =>
  Effect.gen(function*() {
    const envelope = yield* Effect.scoped(
      Effect.map(
        ClientSide.createEnvelope([options.keyring], { bucket: options.bucket, key: options.key }, { context: options.context }),
        (opened) => NativeFormat.encodeEnvelope(opened.envelope)
      )
    ).pipe(Effect.mapError((e) => errors.internalError(`cannot wrap the data key: ${e.reason}`)))
    const manifestId = crypto.randomBytes(16).toString("hex")
    const metadata = { ...options.metadata, ...prefixed(envelope), [Meta.multipart]: manifestId }
    const backend = yield* options.store.createMultipart(options.key, { metadata, contentType: options.contentType }).pipe(
      Effect.catchTag("UnsupportedMode", (e) => Effect.die(e))
    )
    const now = Date.now()
    const id = newUploadId(now)
    const record: UploadRecord = {
      bucket: options.bucket,
      key: options.key,
      backendUploadId: backend.uploadId,
      manifestId,
      initiated: new Date(now).toISOString(),
      metadata,
      ...(options.checksumAlgorithm === undefined ? {} : { checksumAlgorithm: options.checksumAlgorithm }),
      ...(options.checksumType === undefined ? {} : { checksumType: options.checksumType }),
      ...(options.initiator === undefined ? {} : { initiator: options.initiator })
    }
    // The record first: an index entry always names an upload whose record was written (an entry
    // left without one, by a kill between the two steps of a completion, is skipped and removed).
    yield* writeJson(options.system, uploadKey(id), record)
    yield* writeJson(options.system, indexKey(options.bucket, options.key, id), "").pipe(
      Effect.tapError(() =>
        Effect.all([options.system.remove(uploadKey(id)), options.store.abortMultipart(backend)], { concurrency: 2 }).pipe(Effect.ignore)
      )
    )
    return id
  })

/**
 * Reads an upload record, checking it belongs to this bucket and key.
 *
 * @since 0.1.0
 * @category writing
 */
export const load = (system: Store, id: string, bucket: string, key: string): Effect.Effect<UploadRecord, StoreError | S3Error> =>
  Effect.gen(function*() {
    if (!UPLOAD_ID.test(id)) return yield* errors.noSuchUpload("the specified upload does not exist")
    const record = decodeUpload(yield* readJson(system, uploadKey(id)))
    if (record === undefined || record.bucket !== bucket || record.key !== key) {
      return yield* errors.noSuchUpload("the specified upload does not exist; the upload ID may be invalid, or the upload may have been aborted or completed")
    }
    return record
  })

/**
 * Opens the upload's envelope (context, key and commitment checked by core) for the scope's
 * lifetime: the data key is zeroed when the scope closes.
 */
const openKeys = (
  metadata: Readonly<Record<string, string>>,
  unwrapper: Keyring.Unwrapper,
  bucket: string,
  key: string
): Effect.Effect<ClientSide.EnvelopeKeys, DecryptError, Scope.Scope> =>
  Effect.gen(function*() {
    const loc = NativeFormat.decodeEnvelope(unprefixed(metadata))
    if (Either.isLeft(loc) || loc.right._tag !== "Inline") {
      return yield* new DecryptError({ key, reason: "MissingMetadata", detail: "the multipart envelope is missing" })
    }
    return yield* ClientSide.openEnvelope(loc.right.envelope, unwrapper, { bucket, key })
  })

/** S3's largest part (and so every backend's, as the gateway stores one client part as one backend part). */
const MAX_BACKEND_PART = 5 * 1024 * 1024 * 1024

/**
 * The largest plaintext part whose ciphertext fits a backend part.
 *
 * @since 0.1.0
 * @category writing
 */
export const maxPlainPart = (segmentSize: number): number => {
  let lo = 0
  let hi = MAX_BACKEND_PART
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2)
    if (NativeFormat.ciphertextSize(mid, segmentSize) <= MAX_BACKEND_PART) lo = mid
    else hi = mid - 1
  }
  return lo
}

/**
 * Encrypts and stores one part (refused, before its body is read, when its ciphertext would not
 * fit a backend part).
 *
 * @since 0.1.0
 * @category writing
 */
export const uploadPart = (options: {
  readonly system: Store
  readonly store: Store
  readonly id: string
  readonly record: UploadRecord
  readonly partNumber: number
  readonly body: Stream.Stream<Uint8Array, S3Error>
  readonly length: number
  readonly unwrapper: Keyring.Unwrapper
  /** The part's verified checksum, read once the body has been consumed. */
  readonly checksum?: (() => PartChecksum | undefined) | undefined
  /** Hash the part's plaintext as it streams (its ETag in SSE-S3). */
  readonly md5?: boolean | undefined
  /** With `md5`: the part's MD5 as already verified (its Content-MD5), once the body has ended. */
  readonly knownMd5?: (() => string | undefined) | undefined
}): Effect.Effect<PartRecord, StoreError | S3Error | DecryptError> =>
  Effect.gen(function*() {
    const { record } = options
    const salt = crypto.randomBytes(NativeFormat.SALT_LENGTH)
    const { keys, segmentSize } = yield* Effect.scoped(
      Effect.map(openKeys(record.metadata, options.unwrapper, record.bucket, record.key), (opened) => ({
        keys: opened.keysForSalt(salt),
        segmentSize: opened.segmentSize
      }))
    )
    const cipher = NativeFormat.ciphertextSize(options.length, segmentSize)
    // Refused before the body is read: its ciphertext would not fit one backend part.
    if (cipher > MAX_BACKEND_PART) {
      return yield* errors.entityTooLarge(
        `your proposed upload exceeds the maximum allowed size: a part holds at most ${maxPlainPart(segmentSize)} bytes here (its ciphertext must fit the backend's 5 GiB part)`
      )
    }
    const md5 = options.md5 !== true ? undefined : options.knownMd5 !== undefined ? Etag.fromKnown(options.knownMd5) : Etag.backgroundMd5()
    const plain = md5 === undefined ? options.body : md5.pipe(options.body)
    const done = yield* options.store.uploadPart(
      { key: record.key, uploadId: record.backendUploadId },
      options.partNumber,
      plain.pipe(NativeFormat.encrypt(keys)),
      { contentLength: cipher }
    )
    const checksum = options.checksum?.()
    const part: PartRecord = {
      partNumber: options.partNumber,
      salt: Buffer.from(salt).toString("base64url"),
      plain: options.length,
      cipher: done.size,
      etag: done.etag,
      uploaded: new Date().toISOString(),
      ...(checksum === undefined ? {} : { checksum }),
      ...(md5 === undefined ? {} : { md5: md5.hex() })
    }
    yield* writeJson(options.system, partKey(options.id, options.partNumber), part)
    return part
  })

/**
 * The parts uploaded so far, by part number.
 *
 * @since 0.1.0
 * @category writing
 */
export const listParts = (system: Store, id: string): Effect.Effect<ReadonlyArray<PartRecord>, StoreError> =>
  ObjectStore.listAll(system, { prefix: `uploads/${id}/parts/` }).pipe(
    Stream.mapEffect((o) => readJson(system, o.key).pipe(Effect.map(decodePart)), { concurrency: 8 }),
    Stream.filter((p): p is PartRecord => p !== undefined),
    Stream.runCollect,
    Effect.map((c) => Array.from(c).sort((a, b) => a.partNumber - b.partNumber))
  )

/** Removes an upload's records and parts, and its listing entry when its record is known. */
const removeRecords = (system: Store, id: string, record: UploadRecord | undefined) =>
  ObjectStore.listAll(system, { prefix: `uploads/${id}/` }).pipe(
    Stream.mapEffect((o) => system.remove(o.key), { concurrency: 8 }),
    Stream.runDrain,
    Effect.zipRight(record === undefined ? Effect.void : system.remove(indexKey(record.bucket, record.key, id))),
    Effect.ignore
  )

/**
 * Completes an upload with the parts the client lists (ascending, each matching its ETag).
 *
 * @since 0.1.0
 * @category writing
 */
export const complete = (options: {
  readonly system: Store
  readonly store: Store
  readonly id: string
  readonly record: UploadRecord
  readonly parts: ReadonlyArray<{ readonly partNumber: number; readonly etag: string; readonly checksum?: PartChecksum | undefined }>
  readonly minPartSize: number
  /** A whole-object checksum the client sent with CompleteMultipartUpload, to verify. */
  readonly expected?: PartChecksum | undefined
  /** The client's write condition as the backend checks it when it publishes the object. */
  readonly conditions?: Pick<ObjectStore.CompleteOptions, "ifMatch" | "ifNoneMatch"> | undefined
}): Effect.Effect<ObjectStore.PutResult & { readonly manifest: Manifest; readonly clientEtag: string }, StoreError | S3Error> =>
  Effect.gen(function*() {
    if (options.parts.length === 0) return yield* errors.malformedXml("you must specify at least one part")
    const uploaded = new Map((yield* listParts(options.system, options.id)).map((p) => [p.partNumber, p]))
    // The order first: which part is last (the one allowed to be small) depends on it.
    if (options.parts.some((p, i) => i > 0 && p.partNumber <= options.parts[i - 1]!.partNumber)) {
      return yield* errors.invalidPartOrder("the list of parts was not in ascending order; parts must be ordered by part number")
    }
    const chosen: Array<PartRecord> = []
    for (let i = 0; i < options.parts.length; i++) {
      const want = options.parts[i]!
      const got = uploaded.get(want.partNumber)
      if (got === undefined || partEtag(got) !== want.etag.replace(/^"(.*)"$/, "$1")) {
        return yield* errors.invalidPart("one or more of the specified parts could not be found or its entity tag did not match")
      }
      if (want.checksum !== undefined && (got.checksum === undefined || got.checksum.algorithm !== want.checksum.algorithm || !Checksums.equal(got.checksum.value, want.checksum.value))) {
        return yield* errors.invalidPart("one or more of the specified parts could not be found: the part's checksum did not match")
      }
      if (i < options.parts.length - 1 && got.plain < options.minPartSize) {
        return yield* errors.entityTooSmall("your proposed upload is smaller than the minimum allowed object size")
      }
      chosen.push(got)
    }
    const alg = options.record.checksumAlgorithm
    const type = options.record.checksumType ?? "COMPOSITE"
    const sums = alg !== undefined && chosen.every((p) => p.checksum?.algorithm === alg) ? chosen.map((p) => p.checksum!.value) : undefined
    const objectChecksum = alg === undefined || sums === undefined
      ? undefined
      : type === "FULL_OBJECT" && Checksums.isCrc(alg)
      ? { algorithm: alg, value: sums.slice(1).reduce((acc, v, i) => Checksums.combine(alg, acc, v, chosen[i + 1]!.plain), sums[0]!) }
      : { algorithm: alg, value: Checksums.composite(alg, sums) }
    if (options.expected !== undefined && (objectChecksum === undefined || objectChecksum.algorithm !== options.expected.algorithm || !Checksums.equal(options.expected.value, objectChecksum.value.replace(/-\d+$/, "")))) {
      return yield* errors.badDigest(`the ${options.expected.algorithm.toUpperCase()} you specified for the object did not match the calculated checksum`)
    }
    const manifest: Manifest = {
      size: chosen.reduce((n, p) => n + p.plain, 0),
      parts: chosen.map((p) => ({
        salt: p.salt,
        plain: p.plain,
        cipher: p.cipher,
        partNumber: p.partNumber,
        ...(p.checksum === undefined ? {} : { checksum: p.checksum })
      })),
      ...(objectChecksum === undefined ? {} : { checksum: objectChecksum, checksumType: type }),
      key: options.record.key
    }
    const mkey = manifestKey(options.record.bucket, options.record.manifestId)
    yield* writeJson(options.system, mkey, manifest)
    // S3's multipart ETag (MD5 of the concatenated binary part MD5s, dash, part count), recorded
    // before the backend completes: the object names the record by its manifest id (internal/etag).
    const md5s = chosen.flatMap((p) => (p.md5 === undefined ? [] : [p.md5]))
    const md5Etag = md5s.length === chosen.length ? multipartEtag(md5s) : undefined
    if (md5Etag !== undefined) yield* Etag.record(options.system, options.record.bucket, options.record.key, options.record.manifestId, md5Etag)
    // The backend checks its own minimum on ciphertext sizes, which are larger: no extra refusal.
    const result = yield* options.store.completeMultipart(
      { key: options.record.key, uploadId: options.record.backendUploadId },
      chosen.map((p) => ({ partNumber: p.partNumber, etag: p.etag, size: p.cipher })),
      options.conditions
    ).pipe(Effect.tapError(() => options.system.remove(mkey).pipe(Effect.ignore)))
    yield* removeRecords(options.system, options.id, options.record)
    const clientEtag = md5Etag ?? result.etag
    return { ...result, manifest, clientEtag }
  })

/**
 * S3's ETag of a multipart object: the MD5 of the concatenated binary part MD5s, `-`, the count.
 *
 * @since 0.1.0
 * @category models
 */
export const multipartEtag = (partMd5s: ReadonlyArray<string>): string => {
  const h = crypto.createHash("md5")
  for (const p of partMd5s) h.update(Buffer.from(p, "hex"))
  return `${h.digest("hex")}-${partMd5s.length}`
}

/**
 * Aborts an upload: the backend upload, then the records.
 *
 * @since 0.1.0
 * @category writing
 */
export const abort = (system: Store, store: Store, id: string, record: UploadRecord): Effect.Effect<void, StoreError> =>
  store.abortMultipart({ key: record.key, uploadId: record.backendUploadId }).pipe(
    Effect.catchTag("PreconditionFailed", () => Effect.void),
    Effect.zipRight(removeRecords(system, id, record))
  )

/**
 * Manifests as `internal/orphans.ts` sweeps them: a manifest is live while the object under its
 * `key` carries its id. Manifests of older gateways name no key and are kept; an unreadable one is
 * an orphan (no object can be read through it).
 *
 * @internal
 */
export const manifests: Orphans.RecordKind = {
  name: "multipart manifests",
  prefix: "manifests/",
  cursor: "manifest-sweep.json",
  objectKey: (text) => {
    const m = decodeManifest(text)
    return m === undefined ? Option.none() : m.key === undefined ? undefined : Option.some(m.key)
  },
  idOf: (info) => info.metadata[Meta.multipart]
}

/**
 * Reads a completed object's manifest.
 *
 * @since 0.1.0
 * @category reading
 */
export const manifestOf = (system: Store, bucket: string, info: ObjectStore.ObjectInfo): Effect.Effect<Manifest, StoreError | DecryptError> =>
  Effect.gen(function*() {
    const id = info.metadata[Meta.multipart] ?? ""
    const m = /^[0-9a-f]{32}$/.test(id) ? decodeManifest(yield* readJson(system, manifestKey(bucket, id))) : undefined
    if (m === undefined) return yield* new DecryptError({ key: info.key, reason: "MissingMetadata", detail: "the multipart manifest is missing" })
    if (m.parts.reduce((n, p) => n + p.cipher, 0) !== info.size) {
      return yield* new DecryptError({ key: info.key, reason: "Truncated", detail: "the object does not match its manifest" })
    }
    return m
  })

/**
 * Opens a multipart object for reading (whole or one resolved range, `end` exclusive).
 *
 * @since 0.1.0
 * @category reading
 */
export const read = (options: {
  readonly store: Store
  readonly bucket: string
  readonly info: ObjectStore.ObjectInfo
  readonly manifest: Manifest
  readonly unwrapper: Keyring.Unwrapper
  readonly range?: { readonly start: number; readonly end: number } | undefined
}): Effect.Effect<Stream.Stream<Uint8Array, StoreError | DecryptError | S3Error>, DecryptError> =>
  Effect.gen(function*() {
    const { info, manifest } = options
    const key = info.key
    const start = options.range?.start ?? 0
    const end = options.range?.end ?? manifest.size
    const pieces = yield* Effect.scoped(Effect.map(openKeys(info.metadata, options.unwrapper, options.bucket, key), (opened) => {
      const out: Array<{ plan: NativeFormat.SegmentPlan; cipherOffset: number; keys: NativeFormat.ObjectKeys }> = []
      let plainOffset = 0
      let cipherOffset = 0
      for (const p of manifest.parts) {
        const pStart = Math.max(start, plainOffset)
        const pEnd = Math.min(end, plainOffset + p.plain)
        if (pStart < pEnd || (manifest.size === 0 && out.length === 0)) {
          const whole = pStart === plainOffset && pEnd === plainOffset + p.plain
          const plan = NativeFormat.planRange(p.plain, opened.segmentSize, whole ? undefined : { start: pStart - plainOffset, end: pEnd - plainOffset })
          out.push({ plan, cipherOffset, keys: opened.keysForSalt(Buffer.from(p.salt, "base64url")) })
        }
        plainOffset += p.plain
        cipherOffset += p.cipher
      }
      return out
    }))
    return Stream.fromIterable(pieces).pipe(
      Stream.flatMap((piece) =>
        Stream.unwrapScoped(
          Effect.gen(function*() {
            const obj = yield* options.store.get(key, {
              range: ObjectStore.range.bounded(piece.cipherOffset + piece.plan.cipherStart, piece.cipherOffset + piece.plan.cipherEnd - 1)
            })
            if (obj.info.etag !== info.etag) return yield* errors.preconditionFailed("the object changed while it was being read")
            return obj.body.pipe(NativeFormat.decrypt(piece.keys, piece.plan, key))
          })
        )
      )
    )
  })

/**
 * What ListMultipartUploads asks for: S3's request parameters.
 *
 * @since 0.1.0
 * @category models
 */
export interface ListUploadsOptions {
  readonly prefix: string
  readonly delimiter?: string | undefined
  /** Uploads of keys after this one (and of this key after `uploadIdMarker`, when given). */
  readonly keyMarker: string
  readonly uploadIdMarker: string
  /** 1 to 1000; uploads and common prefixes both count. */
  readonly maxUploads: number
}

/**
 * One page of ListMultipartUploads: uploads and common prefixes, in S3's order, and the markers of
 * the next page when there is one.
 *
 * @since 0.1.0
 * @category models
 */
export interface UploadsPage {
  readonly entries: ReadonlyArray<
    | { readonly _tag: "Upload"; readonly upload: UploadRecord & { readonly id: string } }
    | { readonly _tag: "Prefix"; readonly prefix: string }
  >
  readonly truncated: boolean
  readonly next?: { readonly key: string; readonly id: string } | undefined
}

/** Above every character a key can hold at this place (U+10FFFF): jumps past a common prefix. */
const PAST = "\u{10FFFF}"

/**
 * One page of the uploads in progress in a bucket, as ListMultipartUploads returns it (by key,
 * then initiation; `delimiter` groups keys into common prefixes). It reads the bucket's upload
 * index in the backend's order from the markers on, a common prefix costs one listing call (the
 * next one starts past it), and it stops once it has one entry more than `maxUploads`: the cost is
 * the page's, not the number of uploads in progress. Each listed upload's record is read (for its
 * initiator and checksum algorithm); an index entry whose record is gone (an upload completed or
 * aborted by a process killed between the two removals) is skipped and removed.
 *
 * @since 0.1.0
 * @category reading
 */
export const listUploads = (system: Store, bucket: string, options: ListUploadsOptions): Effect.Effect<UploadsPage, StoreError> =>
  Effect.gen(function*() {
    const { delimiter, keyMarker, prefix } = options
    const max = Math.max(0, options.maxUploads)
    const base = indexBase(bucket)
    const entries: Array<UploadsPage["entries"][number]> = []
    // S3: without a key marker the upload-id marker is ignored; without an upload-id marker only
    // keys after the key marker are listed (the space ends a key, hex ids sort below "~").
    let after: string | undefined = keyMarker === ""
      ? undefined
      : `${base}${escapeKey(keyMarker)} /${options.uploadIdMarker === "" ? "~" : options.uploadIdMarker}`
    let lastPrefix: string | undefined
    for (;;) {
      const page = yield* system.list({ prefix: `${base}${escapeKey(prefix)}`, startAfter: after, maxKeys: Math.min(1000, max + 1 - entries.length) })
      const parsed = page.objects.flatMap((o) => {
        const p = parseIndexKey(bucket, o.key)
        return p === undefined ? [] : [{ ...p, name: o.key }]
      })
      const groupOf = (key: string) => {
        const cut = delimiter === undefined ? -1 : key.indexOf(delimiter, prefix.length)
        return cut < 0 ? undefined : key.slice(0, cut + delimiter!.length)
      }
      // The records of the uploads this call lists (those before the first group), read together.
      const firstGroup = parsed.findIndex((p) => groupOf(p.key) !== undefined)
      const records = new Map(
        yield* Effect.forEach(firstGroup < 0 ? parsed : parsed.slice(0, firstGroup), (p) =>
          readJson(system, uploadKey(p.id)).pipe(Effect.map((t) => [p.id, decodeUpload(t)] as const)), { concurrency: 16 })
      )
      let jump: string | undefined
      for (const p of parsed) {
        const group = groupOf(p.key)
        if (group !== undefined) {
          if (group !== lastPrefix && (keyMarker === "" || group > keyMarker)) {
            if (entries.length === max) return { entries, truncated: true, next: nextMarker(entries) }
            entries.push({ _tag: "Prefix", prefix: group })
            lastPrefix = group
          }
          jump = `${base}${escapeKey(group)}${PAST}`
          break
        }
        const record = records.get(p.id)
        if (record === undefined || record.bucket !== bucket || record.key !== p.key) {
          if (record === undefined) yield* system.remove(p.name).pipe(Effect.ignore)
          continue
        }
        if (entries.length === max) return { entries, truncated: true, next: nextMarker(entries) }
        entries.push({ _tag: "Upload", upload: { ...record, id: p.id } })
      }
      if (jump === undefined && page.continuationToken === undefined) return { entries, truncated: false }
      // A backend that does not order U+10FFFF above the group's keys lists them again from the
      // same place: the next call then starts after the last one listed.
      const lastListed = page.objects.at(-1)?.key
      after = jump !== undefined && jump !== after ? jump : lastListed
      if (after === undefined) return { entries, truncated: false }
    }
  })

const nextMarker = (entries: UploadsPage["entries"]) => {
  const last = entries.at(-1)
  return last === undefined ? undefined : last._tag === "Upload" ? { key: last.upload.key, id: last.upload.id } : { key: last.prefix, id: "" }
}

/**
 * Aborts every upload initiated before `cutoffMs` (milliseconds since the epoch), as S3's
 * lifecycle rule `AbortIncompleteMultipartUpload` does: the backend upload, its parts and records,
 * its listing entry. An upload is judged by the initiation time in its record; the time its id
 * begins with only lets a plainly recent upload be passed over without reading its record. The
 * remains of an upload whose record is gone (a removal interrupted by a crash) are removed too, and
 * so are the records of an upload whose bucket no longer exists. Several gateways may sweep at
 * once: aborting an upload already aborted is harmless.
 *
 * @since 0.1.0
 * @category maintenance
 */
export const abortIncomplete = (
  system: Store,
  bucketStore: (bucket: string) => Effect.Effect<Store | undefined, StoreError>,
  cutoffMs: number
): Effect.Effect<{ readonly checked: number; readonly aborted: number }, StoreError> =>
  Effect.gen(function*() {
    let checked = 0
    let aborted = 0
    let token: string | undefined
    const now = Date.now()
    do {
      const page: ObjectStore.ListPage = yield* system.list({ prefix: "uploads/", delimiter: "/", continuationToken: token })
      token = page.continuationToken
      for (const p of page.commonPrefixes) {
        const id = p.slice("uploads/".length, -1)
        if (!UPLOAD_ID.test(id)) continue
        checked++
        const started = parseInt(id.slice(0, 12), 16)
        if (started >= cutoffMs && started <= now + 86_400_000) continue
        const record = decodeUpload(yield* readJson(system, uploadKey(id)))
        if (record === undefined) {
          // No record: only what an interrupted removal left. Leave an upload being created alone.
          if (started < cutoffMs) {
            yield* removeRecords(system, id, undefined)
            aborted++
          }
          continue
        }
        const initiated = Date.parse(record.initiated)
        if (!(initiated < cutoffMs)) continue
        const store = yield* bucketStore(record.bucket)
        yield* (store === undefined ? removeRecords(system, id, record) : abort(system, store, id, record))
        aborted++
      }
    } while (token !== undefined)
    return { checked, aborted }
  })

/**
 * Runs {@link abortIncomplete} over the gateway's uploads every `every` (first after
 * `firstAfter`), aborting those initiated more than `afterMs` ago; a failed sweep is logged and
 * retried at the next turn.
 *
 * @since 0.1.0
 * @category maintenance
 */
export const abortIncompleteForever = (
  buckets: Buckets["Type"],
  afterMs: number,
  options?: { readonly firstAfter?: Duration.DurationInput; readonly every?: Duration.DurationInput }
): Effect.Effect<never> => {
  const bucketStore = (name: string) => storeIfExists(buckets, name)
  const once = Effect.suspend(() => abortIncomplete(buckets.system, bucketStore, Date.now() - afterMs)).pipe(
    Effect.tap((r) => (r.aborted > 0 ? Effect.logInfo(`aborted ${r.aborted} incomplete multipart uploads of ${r.checked} in progress`) : Effect.void)),
    Effect.catchAllCause((cause) => Effect.logWarning("the sweep of incomplete multipart uploads failed; it runs again later", cause))
  )
  return Effect.sleep(options?.firstAfter ?? "1 minute").pipe(
    Effect.zipRight(Effect.repeat(once, Schedule.spaced(options?.every ?? Duration.millis(Math.min(afterMs / 4, 3_600_000))))),
    Effect.zipRight(Effect.never)
  )
}
