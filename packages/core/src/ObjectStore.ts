/**
 * The storage contract every driver implements: byte storage for one bucket/container, with
 * per-request server-side encryption parameters. Client-side modes are applied above it by core.
 *
 * @since 0.1.0
 */
import { Chunk, Context, Effect, Option, Stream } from "effect"
import type * as Scope from "effect/Scope"
import type { CustomerKey } from "./CustomerKey.js"
import type { ModeTag, EncryptionContext } from "./EncryptionMode.js"
import { PreconditionFailed, ProviderError } from "./Errors.js"
import type { StoreError, UnsupportedMode } from "./Errors.js"
import type { Provider } from "./Provider.js"

/**
 * Server-side encryption parameters for one request, resolved to what the provider needs
 * (SSE-C carries the key itself, as `Redacted` bytes).
 *
 * @since 0.1.0
 * @category models
 */
export type ServerSideEncryption =
  | { readonly _tag: "SseS3" }
  | {
    readonly _tag: "SseKms"
    readonly keyId?: string | undefined
    readonly context?: EncryptionContext | undefined
    readonly bucketKey?: boolean | undefined
    /** Dual-layer SSE-KMS (`aws:kms:dsse`). */
    readonly dsse?: boolean | undefined
  }
  | { readonly _tag: "SseC"; readonly key: CustomerKey }

/**
 * What the provider reports about how it stored an object (S3 `x-amz-server-side-encryption*`,
 * Azure `x-ms-server-encrypted`, GCS `kmsKeyName`/`customerEncryption`).
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerEncryptionInfo {
  readonly mode: "None" | "SseS3" | "SseKms" | "SseC" | "Unknown"
  readonly kmsKeyId?: string | undefined
  readonly bucketKeyEnabled?: boolean | undefined
  /** base64 MD5 of the SSE-C key (S3). */
  readonly customerKeyMd5?: string | undefined
  /** base64 SHA-256 of the customer key (Azure CPK, GCS CSEK). */
  readonly customerKeySha256?: string | undefined
  /** Azure encryption scope. */
  readonly scope?: string | undefined
}

/**
 * A byte range of an object, as HTTP `Range` expresses it. `end` is inclusive.
 *
 * @since 0.1.0
 * @category models
 */
export type ByteRange =
  | { readonly _tag: "Bounded"; readonly start: number; readonly end: number }
  | { readonly _tag: "From"; readonly start: number }
  | { readonly _tag: "Suffix"; readonly length: number }

/**
 * @since 0.1.0
 * @category constructors
 */
export const range = {
  bounded: (start: number, end: number): ByteRange => ({ _tag: "Bounded", start, end }),
  from: (start: number): ByteRange => ({ _tag: "From", start }),
  suffix: (length: number): ByteRange => ({ _tag: "Suffix", length })
}

/**
 * Resolves a range against an object size with HTTP semantics (RFC 9110 §14.1.2): an end past the
 * last byte is clamped, a suffix longer than the object means the whole object; `None` when the
 * range cannot be satisfied (start past the end, empty suffix, empty object). `end` is exclusive.
 *
 * @since 0.1.0
 * @category ranges
 */
export const resolveRange = (r: ByteRange, size: number): Option.Option<{ readonly start: number; readonly end: number }> => {
  switch (r._tag) {
    case "Bounded":
      if (!Number.isSafeInteger(r.start) || !Number.isSafeInteger(r.end) || r.start < 0 || r.end < r.start || r.start >= size) {
        return Option.none()
      }
      return Option.some({ start: r.start, end: Math.min(r.end + 1, size) })
    case "From":
      if (!Number.isSafeInteger(r.start) || r.start < 0 || r.start >= size) return Option.none()
      return Option.some({ start: r.start, end: size })
    case "Suffix":
      if (!Number.isSafeInteger(r.length) || r.length <= 0 || size === 0) return Option.none()
      return Option.some({ start: Math.max(0, size - r.length), end: size })
  }
}

/**
 * Renders a range as an HTTP `Range` header value.
 *
 * @since 0.1.0
 * @category ranges
 */
export const formatRange = (r: ByteRange): string =>
  r._tag === "Bounded" ? `bytes=${r.start}-${r.end}` : r._tag === "From" ? `bytes=${r.start}-` : `bytes=-${r.length}`

/**
 * Parses an HTTP `Range` header with a single range.
 *
 * @since 0.1.0
 * @category ranges
 */
export const parseRange = (s: string): Option.Option<ByteRange> => {
  const m = /^bytes=(\d*)-(\d*)$/.exec(s.trim())
  if (m === null) return Option.none()
  const [, a, b] = m
  if (a === "" && b === "") return Option.none()
  if (a === "") return Option.some(range.suffix(Number(b)))
  if (b === "") return Option.some(range.from(Number(a)))
  return Option.some(range.bounded(Number(a), Number(b)))
}

/**
 * Metadata of a stored object. User metadata keys are lower-case ASCII (`[a-z0-9-_.]`); values
 * may hold any Unicode text and are returned exactly as written.
 *
 * @since 0.1.0
 * @category models
 */
export interface ObjectInfo {
  readonly key: string
  readonly size: number
  readonly etag: string
  readonly lastModified: Date
  readonly contentType?: string | undefined
  readonly metadata: Readonly<Record<string, string>>
  readonly encryption: ServerEncryptionInfo
}

/**
 * An entry of a listing: providers do not return user metadata in listings.
 *
 * @since 0.1.0
 * @category models
 */
export interface ListedObject {
  readonly key: string
  readonly size: number
  readonly etag: string
  readonly lastModified: Date
}

/**
 * @since 0.1.0
 * @category models
 */
export interface StoredObject {
  readonly info: ObjectInfo
  /** The requested bytes; a ranged read carries only the range. */
  readonly body: Stream.Stream<Uint8Array, StoreError>
  /** Present on ranged reads: the bytes returned, `end` exclusive. */
  readonly range?: { readonly start: number; readonly end: number } | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface PutOptions {
  /** Known body length; drivers that need it (S3 single PUT) buffer or use multipart without it. */
  readonly contentLength?: number | undefined
  readonly contentType?: string | undefined
  readonly metadata?: Readonly<Record<string, string>> | undefined
  readonly sse?: ServerSideEncryption | undefined
  /** `"*"`: only create, fail with `PreconditionFailed` when the key exists. */
  readonly ifNoneMatch?: "*" | undefined
  /**
   * Only overwrite the object whose current etag is this one (the `etag` of its `ObjectInfo` or
   * `PutResult`, quoted or not); fail with `PreconditionFailed` when the key is missing or has
   * another etag, and write nothing then. The check and the write are one atomic step of the
   * provider (S3 `If-Match`, GCS `ifGenerationMatch`, Azure `If-Match`; local-fs and S3-compatible
   * servers: see each driver).
   * On `createMultipart` it applies when the upload completes, where the driver can carry it
   * there (local-fs, GCS, Azure); S3 cannot and refuses it (use `put`). Giving it with
   * `ifNoneMatch` is a usage error (the driver's bad-request `ProviderError`, status 400).
   */
  readonly ifMatch?: string | undefined
}

/**
 * Options of `completeMultipart`. The conditions are those of {@link PutOptions}, checked when the
 * upload is published, atomically with publishing it (S3 `If-None-Match`/`If-Match` on
 * CompleteMultipartUpload, GCS preconditions on the compose, Azure conditions on Put Block List,
 * local-fs at the rename): `PreconditionFailed` and nothing published, the upload left in place
 * to complete again or abort (as S3 leaves it). Combined with a condition given to
 * `createMultipart`, both must hold; `ifMatch` with `ifNoneMatch` is a usage error (400).
 *
 * @since 0.1.0
 * @category models
 */
export interface CompleteOptions {
  readonly sse?: ServerSideEncryption | undefined
  readonly ifNoneMatch?: "*" | undefined
  readonly ifMatch?: string | undefined
}

/**
 * Options of `remove`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RemoveOptions {
  /**
   * Remove only the version whose etag is this one (quoted or not): `PreconditionFailed` when the
   * key is missing or holds another version, and nothing removed. Checked atomically with the
   * removal by the provider (S3 `If-Match` on DeleteObject, GCS `ifGenerationMatch`, Azure
   * `If-Match`; local-fs under the key's lock, see the driver); a server that would ignore it is
   * refused by its driver (`ProviderError`, status 400) rather than deleting unconditionally.
   */
  readonly ifMatch?: string | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface GetOptions {
  readonly range?: ByteRange | undefined
  /** SSE-C objects can only be read with their key. */
  readonly sse?: ServerSideEncryption | undefined
  /**
   * The caller is done with each chunk of the body once it pulls the next one (it copies or
   * transforms every chunk at once and keeps no reference to it): the store may then read the
   * next chunks into the same memory instead of fresh buffers. A store is free to ignore it.
   * @default false
   */
  readonly borrowed?: boolean | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface PutResult {
  readonly key: string
  readonly etag: string
  readonly size: number
  readonly encryption: ServerEncryptionInfo
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ListOptions {
  readonly prefix?: string | undefined
  /** Group keys sharing the part up to the next delimiter into `commonPrefixes`. */
  readonly delimiter?: string | undefined
  /** @default 1000 */
  readonly maxKeys?: number | undefined
  readonly continuationToken?: string | undefined
  /**
   * List keys lexically (UTF-8 bytes) after this one. With a delimiter, as S3 does: a group holding
   * keys after `startAfter` is still listed when `startAfter` falls inside it, but a `startAfter`
   * that *is* a group (it ends with the delimiter's first occurrence after the prefix: what
   * ListObjects v1 answers as `NextMarker` after a common prefix) passes over that whole group,
   * so paging by the last entry of each page ends (see `isGroupMarker`).
   */
  readonly startAfter?: string | undefined
}

/**
 * S3's key order: by UTF-8 bytes (not JavaScript's UTF-16 code units, which order characters
 * beyond U+FFFF before U+E000–U+FFFF).
 *
 * @since 0.1.0
 * @category listing
 */
export const compareKeys = (a: string, b: string): number => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"))

/**
 * Whether `startAfter` names a whole group of a delimited listing of `prefix`: it extends the
 * prefix and its first delimiter after the prefix is its end. Such a `startAfter` skips the group.
 *
 * @since 0.1.0
 * @category listing
 */
export const isGroupMarker = (prefix: string, delimiter: string | undefined, startAfter: string): boolean =>
  delimiter !== undefined && delimiter !== "" && startAfter.length > prefix.length + delimiter.length - 1 &&
  startAfter.startsWith(prefix) && startAfter.indexOf(delimiter, prefix.length) === startAfter.length - delimiter.length

/**
 * @since 0.1.0
 * @category models
 */
export interface ListPage {
  readonly objects: ReadonlyArray<ListedObject>
  readonly commonPrefixes: ReadonlyArray<string>
  /** Present when more keys follow. */
  readonly continuationToken?: string | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface CopyOptions {
  /** Key for an SSE-C source. */
  readonly sourceSse?: ServerSideEncryption | undefined
  /** Encryption of the copy. */
  readonly sse?: ServerSideEncryption | undefined
  /** Replace the user metadata (otherwise it is copied). */
  readonly metadata?: Readonly<Record<string, string>> | undefined
  readonly contentType?: string | undefined
  /**
   * Copy only if the source's current etag is this one (the `etag` of its `ObjectInfo`, from `head`
   * or `get`); otherwise fail with `PreconditionFailed` and write nothing. The bytes copied are
   * then those of that very version, so metadata derived from a `head` (a rewrapped envelope) can
   * never land on another body. A missing source still fails with `ObjectNotFound`. Where the
   * etag is a hash of the content (S3, local-fs), a metadata-only rewrite keeps it: two concurrent
   * metadata rewrites of one object may both pass, the last one winning.
   */
  readonly ifSourceMatch?: string | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface MultipartUpload {
  readonly key: string
  readonly uploadId: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface CompletedPart {
  readonly partNumber: number
  readonly etag: string
  readonly size: number
}

/**
 * Provider limits the layers above must respect.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoreLimits {
  /** Total bytes of user metadata (keys + values) the provider accepts: S3 2 KiB, GCS/Azure 8 KiB. */
  readonly maxMetadataBytes: number
  /** Smallest part but the last (S3 5 MiB). */
  readonly minPartSize: number
  readonly maxPartSize: number
  readonly maxParts: number
}

/**
 * Byte storage for one bucket/container. Drivers implement it; encryption modes are applied on
 * top by core (client-side) or translated by the driver (server-side). A driver never lets an SDK
 * or system error escape: every failure is a `StoreError`.
 *
 * Writes are atomic: a failed or interrupted `put`, `copy` or multipart upload leaves no partial
 * object visible, and an object is never a mix of two concurrent writers. A `copy` with
 * `ifSourceMatch` is a conditional read of the source: the etag check and the bytes copied cannot
 * be separated by another writer (server-side where the provider can; see each driver).
 *
 * @since 0.1.0
 * @category tags
 */
export class ObjectStore extends Context.Tag("@objcrypt/core/ObjectStore")<ObjectStore, {
  readonly provider: Provider
  /** The bucket, container or root this store addresses (bound into client-side encryption contexts). */
  readonly bucket: string
  /** A URL naming this store for humans (`s3://bucket`, `file:///data`). */
  readonly location: string
  /** Server-side modes this backend honours natively; checked against the matrix before any I/O. */
  readonly nativeModes: ReadonlySet<ModeTag>
  readonly limits: StoreLimits
  readonly put: <E = never>(
    key: string,
    body: Stream.Stream<Uint8Array, E>,
    options?: PutOptions
  ) => Effect.Effect<PutResult, StoreError | UnsupportedMode | E>
  /** Opens an object; the body must be consumed or the scope closed to release the connection. */
  readonly get: (key: string, options?: GetOptions) => Effect.Effect<StoredObject, StoreError, Scope.Scope>
  readonly head: (key: string, options?: GetOptions) => Effect.Effect<ObjectInfo, StoreError>
  readonly list: (options?: ListOptions) => Effect.Effect<ListPage, StoreError>
  /** Deleting a missing key succeeds (S3 semantics), unless `ifMatch` is given. */
  readonly remove: (key: string, options?: RemoveOptions) => Effect.Effect<void, StoreError>
  readonly copy: (source: string, destination: string, options?: CopyOptions) => Effect.Effect<PutResult, StoreError | UnsupportedMode>
  readonly createMultipart: (key: string, options?: PutOptions) => Effect.Effect<MultipartUpload, StoreError | UnsupportedMode>
  readonly uploadPart: <E = never>(
    upload: MultipartUpload,
    partNumber: number,
    body: Stream.Stream<Uint8Array, E>,
    options?: { readonly contentLength?: number | undefined; readonly sse?: ServerSideEncryption | undefined }
  ) => Effect.Effect<CompletedPart, StoreError | E>
  readonly completeMultipart: (
    upload: MultipartUpload,
    parts: ReadonlyArray<CompletedPart>,
    options?: CompleteOptions
  ) => Effect.Effect<PutResult, StoreError>
  readonly abortMultipart: (upload: MultipartUpload) => Effect.Effect<void, StoreError>
}>() {}

/**
 * Every object under a prefix, following continuation tokens.
 *
 * @since 0.1.0
 * @category combinators
 */
export const listAll = (
  store: ObjectStore["Type"],
  options?: Omit<ListOptions, "continuationToken">
): Stream.Stream<ListedObject, StoreError> =>
  Stream.paginateChunkEffect(undefined as string | undefined, (token) =>
    store.list({ ...options, continuationToken: token }).pipe(
      Effect.map((page) =>
        [
          Chunk.fromIterable(page.objects),
          page.continuationToken === undefined ? Option.none<string | undefined>() : Option.some(page.continuationToken)
        ] as const
      )
    ))

/**
 * Reads a whole object into memory (small objects, tests).
 *
 * @since 0.1.0
 * @category combinators
 */
export const readAll = (
  store: ObjectStore["Type"],
  key: string,
  options?: GetOptions
): Effect.Effect<{ readonly info: ObjectInfo; readonly bytes: Uint8Array }, StoreError> =>
  Effect.scoped(
    Effect.gen(function*() {
      const obj = yield* store.get(key, options)
      const chunks = yield* Stream.runCollect(obj.body)
      return { info: obj.info, bytes: concat(chunks) }
    })
  )

/**
 * @since 0.1.0
 * @category utils
 */
export const concat = (chunks: Iterable<Uint8Array>): Uint8Array => Buffer.concat(Array.from(chunks))

/**
 * The byte size of user metadata as providers count it (UTF-8 keys and values).
 *
 * @since 0.1.0
 * @category utils
 */
export const metadataSize = (metadata: Readonly<Record<string, string>>): number =>
  Object.entries(metadata).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0)

/**
 * A valid user-metadata key: lower-case ASCII letters, digits, `-`, `_` and `.`.
 *
 * @since 0.1.0
 * @category utils
 */
export const isMetadataKey = (k: string): boolean => /^[a-z0-9][a-z0-9._-]*$/.test(k)

/**
 * The write conditions every driver refuses before any I/O: `ifMatch` with `ifNoneMatch` is a usage
 * error (`ProviderError` `InvalidRequest`, status 400).
 *
 * @since 0.1.0
 * @category utils
 */
export const checkConditions = (
  provider: string,
  operation: string,
  key: string,
  options: Pick<PutOptions, "ifMatch" | "ifNoneMatch"> | undefined
): Effect.Effect<void, ProviderError> =>
  options?.ifMatch !== undefined && options.ifNoneMatch !== undefined
    ? Effect.fail(new ProviderError({ provider, operation, key, code: "InvalidRequest", detail: "ifMatch and ifNoneMatch cannot be combined", status: 400 }))
    : Effect.void

/**
 * The conditions a multipart upload is published under: those given to `createMultipart` (kept by
 * the driver with the upload) and those given to `completeMultipart`, which must all hold. Two
 * `ifMatch` naming different versions (quotes aside) can never both hold: `PreconditionFailed`,
 * before any write. An `ifNoneMatch` with an `ifMatch`, wherever each was given, is the usage
 * error of {@link checkConditions}. Etags come back unquoted.
 *
 * @since 0.1.0
 * @category utils
 */
export const completionConditions = (
  provider: string,
  key: string,
  created: Pick<PutOptions, "ifMatch" | "ifNoneMatch"> | undefined,
  completing: Pick<CompleteOptions, "ifMatch" | "ifNoneMatch"> | undefined
): Effect.Effect<{ readonly ifNoneMatch: "*" | undefined; readonly ifMatch: string | undefined }, ProviderError | PreconditionFailed> =>
  Effect.gen(function*() {
    const ifNoneMatch = created?.ifNoneMatch === "*" || completing?.ifNoneMatch === "*" ? "*" as const : undefined
    const ifMatches = [...new Set([created?.ifMatch, completing?.ifMatch].flatMap((m) => (m === undefined ? [] : [m.replace(/^"(.*)"$/, "$1")])))]
    yield* checkConditions(provider, "completeMultipart", key, { ifNoneMatch, ifMatch: ifMatches[0] })
    if (ifMatches.length > 1) {
      return yield* new PreconditionFailed({ key, reason: "the upload's If-Match and the completion's name different versions" })
    }
    return { ifNoneMatch, ifMatch: ifMatches[0] }
  })
