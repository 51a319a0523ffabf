/**
 * `ObjectStore` for Amazon S3 and S3-compatible stores, on the official AWS SDK v3. Server-side
 * modes map to S3's own headers (SSE-S3 `AES256`, SSE-KMS with key id, context and bucket key,
 * SSE-C on every request that touches the object); which of them a server honours comes from the
 * compatibility matrix (the `profile`) and, when given, a probe of the bucket. Large bodies go up
 * as multipart uploads with parts in parallel and bounded memory, aborted on any failure.
 *
 * @since 0.1.0
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand
} from "@aws-sdk/client-s3"
import type { S3ClientConfig } from "@aws-sdk/client-s3"
import { matrix, resolveIn } from "@objcrypt/core/CompatibilityMatrix"
import type { BucketFacts, ProfileName } from "@objcrypt/core/CompatibilityMatrix"
import type { ModeTag } from "@objcrypt/core/EncryptionMode"
import { AccessDenied, InvalidObjectKey, InvalidRange, PreconditionFailed, ProviderError, UnsupportedMode } from "@objcrypt/core/Errors"
import type { StoreError } from "@objcrypt/core/Errors"
import { checkConditions as refuseConflictingConditions, formatRange, ObjectStore } from "@objcrypt/core/ObjectStore"
import type {
  CompletedPart,
  CompleteOptions,
  CopyOptions,
  GetOptions,
  ListOptions,
  ListPage,
  MultipartUpload,
  ObjectInfo,
  PutOptions,
  PutResult,
  RemoveOptions,
  ServerSideEncryption,
  StoreLimits,
  StoredObject
} from "@objcrypt/core/ObjectStore"
import { Config, Context, Duration, Effect, Either, Layer, Option, Redacted, Stream } from "effect"
import type { ConfigError } from "effect/ConfigError"
import type * as Scope from "effect/Scope"
import * as crypto from "node:crypto"
import { Readable } from "node:stream"
import type { S3Config } from "./S3Config.js"
import { defaults, MiB } from "./S3Config.js"
import { toStoreError } from "./internal/errors.js"
import type { Operation } from "./internal/errors.js"
import { copySourceFields, customerKeyFields, getRgwCopyIfMatchPlugin, infoOf, infoOrRequested, writeFields } from "./internal/headers.js"
import { decodeMetadata, encodeMetadata } from "./internal/metadata.js"
import { collect, exactly, heldByUpload, memoryBudget, partReader, settleOnInterrupt } from "@objcrypt/core/StreamParts"

/**
 * The S3 store: the core `ObjectStore` service plus the SDK client, for what the contract does
 * not cover.
 *
 * @since 0.1.0
 * @category tags
 */
export class S3ObjectStore extends Context.Tag("@objcrypt/driver-s3/S3ObjectStore")<
  S3ObjectStore,
  ObjectStore["Type"] & {
    readonly client: S3Client
    /** The compatibility-matrix profile the store follows. */
    readonly profile: ProfileName
    /** The bucket facts in use (the endpoint's TLS, plus any probe). */
    readonly facts: BucketFacts
  }
>() {}

/**
 * Amazon S3's limits.
 *
 * @since 0.1.0
 * @category constants
 */
export const limits: StoreLimits = {
  maxMetadataBytes: 2048,
  minPartSize: 5 * MiB,
  maxPartSize: 5 * 1024 * MiB,
  maxParts: 10_000
}

const SSE_TAGS = ["SseS3", "SseKms", "SseC"] as const

/**
 * How long an interrupted part request may take to finish before it is cut off: part uploads and
 * copies settle before the abort that follows (`settleOnInterrupt`), or a part landing after the
 * abort would be an orphan no S3 call can remove (seen on Ceph RGW after an interrupted `objcrypt cp`).
 */
const PART_GRACE = Duration.seconds(15)

/**
 * The SDK client the driver uses: request checksums only when an operation requires them, so no
 * `aws-chunked` streaming upload is sent (Ceph RGW 16 answers 411, other servers mishandle it);
 * integrity comes from `Content-MD5` instead, which also stands for the body in the signature
 * (`UNSIGNED-PAYLOAD`, unless `signPayload`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeClient = (config: S3Config): S3Client => {
  const options: S3ClientConfig = {
    region: config.region ?? defaults.region,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    maxAttempts: config.maxAttempts ?? defaults.maxAttempts,
    // A server that never answers fails the request instead of holding it (and its caller) forever.
    requestHandler: {
      connectionTimeout: config.connectTimeoutMs ?? defaults.connectTimeoutMs,
      socketTimeout: config.idleTimeoutMs ?? defaults.idleTimeoutMs
    },
    ...(config.endpoint === undefined ? {} : { endpoint: config.endpoint }),
    ...(config.forcePathStyle === undefined ? {} : { forcePathStyle: config.forcePathStyle }),
    ...(config.awsProfile === undefined ? {} : { profile: config.awsProfile }),
    ...(config.accessKeyId !== undefined && config.secretAccessKey !== undefined
      ? {
        credentials: {
          accessKeyId: config.accessKeyId,
          secretAccessKey: Redacted.value(config.secretAccessKey),
          ...(config.sessionToken === undefined ? {} : { sessionToken: Redacted.value(config.sessionToken) })
        }
      }
      : {})
  }
  const client = new S3Client(options)
  if (config.signPayload !== true) client.middlewareStack.add(md5CoversPayload, { step: "build", name: "objcryptMd5CoversPayload", tags: ["objcrypt"] })
  return client
}

/**
 * A request carrying `Content-MD5` is signed with `UNSIGNED-PAYLOAD` instead of the SHA-256 of its
 * body: the MD5 is a signed header and the server refuses a body that does not match it, so the
 * body's integrity is kept while the second pass over every byte (SHA-256 on the calling thread,
 * about a third of the CPU of an upload) is saved. `signPayload: true` keeps the SHA-256.
 */
const md5CoversPayload = <I, O>(next: (args: I) => Promise<O>) => (args: I): Promise<O> => {
  const headers = (args as { request?: { headers?: Record<string, string> } }).request?.headers
  if (headers !== undefined && Object.keys(headers).some((h) => h.toLowerCase() === "content-md5")) {
    headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
  }
  return next(args)
}

/**
 * The bucket facts a configuration implies: TLS from the endpoint, plus any probe.
 *
 * @since 0.1.0
 * @category constructors
 */
export const factsOf = (config: S3Config): BucketFacts => ({
  ...config.facts,
  tls: config.endpoint === undefined || config.endpoint.toLowerCase().startsWith("https:")
})

/**
 * The modes a profile honours natively on a bucket with these facts (always including `None`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const nativeModesOf = (profile: ProfileName, facts: BucketFacts): ReadonlySet<ModeTag> =>
  new Set<ModeTag>([
    "None",
    ...SSE_TAGS.filter((t) => {
      const r = Effect.runSync(Effect.either(resolveIn(matrix, profile, t, facts)))
      return Either.isRight(r) && r.right._tag === "Native"
    })
  ])

/**
 * Profiles whose server copies encrypted objects wrongly: Ceph RGW 16 answers 501 to CopyObject
 * from an SSE-C/SSE-KMS source and ignores destination SSE headers (it would store plaintext), so
 * such copies stream through the client instead.
 */
const streamedEncryptedCopy: ReadonlySet<ProfileName> = new Set<ProfileName>(["ceph-rgw"])

/**
 * Profiles whose server reads CopyObject's source ETag condition under another name: Ceph RGW 16
 * ignores `x-amz-copy-source-if-match` and checks `x-amz-copy-if-match` (see `internal/headers.ts`).
 */
const rgwCopyConditions: ReadonlySet<ProfileName> = new Set<ProfileName>(["ceph-rgw"])

/**
 * Profiles whose server compares `If-Match` on PutObject byte for byte with its stored, unquoted
 * etag: Ceph RGW 16 answers 412 to the quoted (RFC 9110) form even when the etag is right, so it
 * is sent bare there. (RGW 16 ignores the conditions on CompleteMultipartUpload: see below.)
 */
const bareIfMatch: ReadonlySet<ProfileName> = new Set<ProfileName>(["ceph-rgw"])

/**
 * Profiles whose server ignores both `If-Match` and `If-None-Match` on CompleteMultipartUpload
 * (Ceph RGW 16 completes the upload over any object, whatever its etag, and over a missing key):
 * a conditional `completeMultipart`, or a conditional `put` that needs several parts, is refused
 * there before it is sent, rather than published without its condition.
 */
const unconditionalComplete: ReadonlySet<ProfileName> = new Set<ProfileName>(["ceph-rgw"])

/**
 * Profiles whose server ignores `If-Match` on DeleteObject: Ceph RGW 16 deletes the object whatever
 * the etag (quoted or bare) and answers 204 for a missing key too (see the integration tests). A
 * conditional `remove` is refused there before it is sent, rather than deleting unconditionally.
 */
const unconditionalDelete: ReadonlySet<ProfileName> = new Set<ProfileName>(["ceph-rgw"])

/** Profiles whose server rewrites `_` to `-` in metadata names (see `internal/metadata.ts`). */
const mangledMetadataNames: ReadonlySet<ProfileName> = new Set<ProfileName>(["ceph-rgw"])

const unquote = (etag: string | undefined) => (etag ?? "").replace(/^"(.*)"$/, "$1")
const quote = (etag: string) => (etag.startsWith("\"") ? etag : `"${etag}"`)
const md5 = (b: Uint8Array) => crypto.createHash("md5").update(b).digest("base64")
const encodeCopySource = (bucket: string, key: string) => `${bucket}/${key.split("/").map(encodeURIComponent).join("/")}`
const urlDecode = (s: string | undefined) => (s === undefined ? "" : decodeURIComponent(s.replace(/\+/g, " ")))

const parseContentRange = (s: string | undefined): { start: number; end: number; size: number } | undefined => {
  const m = s === undefined ? null : /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(s.trim())
  return m === null ? undefined : { start: Number(m[1]), end: Number(m[2]) + 1, size: m[3] === "*" ? -1 : Number(m[3]) }
}

/**
 * Builds the store; the SDK client is destroyed when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (config: S3Config): Effect.Effect<S3ObjectStore["Type"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const client = yield* Effect.acquireRelease(Effect.sync(() => makeClient(config)), (c) => Effect.sync(() => c.destroy()))
    // Streamed part bodies cannot be sent twice: their requests are never retried by the SDK.
    const streamClient = yield* Effect.acquireRelease(Effect.sync(() => makeClient({ ...config, maxAttempts: 1 })), (c) => Effect.sync(() => c.destroy()))
    const Bucket = config.bucket
    const profile = config.profile ?? defaults.profile
    const facts = factsOf(config)
    const nativeModes = nativeModesOf(profile, facts)
    const basePartSize = Math.min(Math.max(config.partSize ?? defaults.partSize, limits.minPartSize), limits.maxPartSize)
    const concurrency = Math.max(1, config.concurrency ?? defaults.concurrency)
    const copyThreshold = config.multipartCopyThreshold ?? defaults.multipartCopyThreshold
    const withMd5 = config.contentMd5 ?? defaults.contentMd5
    const streamAbove = config.streamPartsAbove ?? 2 * basePartSize
    const budget = yield* memoryBudget(config.memoryBudget)
    const escapeNames = mangledMetadataNames.has(profile)
    const ifMatchValue = (etag: string) => (bareIfMatch.has(profile) ? unquote(etag) : quote(etag))

    const send = <A>(operation: Operation, key: string | undefined, f: (signal: AbortSignal) => Promise<A>, ctx?: Parameters<typeof toStoreError>[3]) =>
      Effect.tryPromise({ try: f, catch: (e) => toStoreError(operation, key, e, ctx) })

    const validKey = (key: string): Effect.Effect<void, InvalidObjectKey> =>
      key === ""
        ? Effect.fail(new InvalidObjectKey({ key, reason: "empty" }))
        : Buffer.byteLength(key, "utf8") > 1024
        ? Effect.fail(new InvalidObjectKey({ key, reason: "longer than 1024 bytes of UTF-8" }))
        : Effect.void

    /** Which request fields to send for a write in `sse`; fails before any I/O when the store cannot. */
    const planWrite = (sse: ServerSideEncryption | undefined) =>
      Effect.gen(function*() {
        if (sse === undefined) return {}
        const plan = yield* resolveIn(matrix, profile, sse._tag, facts)
        if (plan._tag !== "Native") {
          return yield* new UnsupportedMode({
            provider: profile,
            mode: sse._tag,
            reason: `the S3 driver sends only native server-side modes; this one is ${plan._tag === "ClientSide" ? "client-side" : "gateway-only"} on ${profile}`,
            alternatives: ["put the objcrypt gateway in front"]
          })
        }
        // Always-on and bucket-default modes need no request headers; the bucket applies them.
        return plan.apply === "per-request" ? writeFields(sse) : {}
      })

    /** Reads send an SSE-C key only where the store may receive it (never over plain http unless probed). */
    const readKey = (operation: Operation, key: string, sse: ServerSideEncryption | undefined) =>
      sse?._tag === "SseC" && !nativeModes.has("SseC")
        ? Effect.fail(new AccessDenied({ provider: profile, operation, key, reason: "sse-c is not available on this store (see the compatibility matrix)" }))
        : Effect.succeed(customerKeyFields(sse))

    const infoFromHead = (key: string, r: {
      ContentLength?: number | undefined
      ETag?: string | undefined
      LastModified?: Date | undefined
      ContentType?: string | undefined
      Metadata?: Record<string, string> | undefined
    } & Parameters<typeof infoOf>[0], size?: number): ObjectInfo => ({
      key,
      size: size ?? r.ContentLength ?? 0,
      etag: unquote(r.ETag),
      lastModified: r.LastModified ?? new Date(0),
      ...(r.ContentType === undefined ? {} : { contentType: r.ContentType }),
      metadata: decodeMetadata(r.Metadata, escapeNames),
      encryption: infoOf(r)
    })

    const head = (key: string, options?: GetOptions): Effect.Effect<ObjectInfo, StoreError> =>
      Effect.gen(function*() {
        yield* validKey(key)
        const ssec = yield* readKey("head", key, options?.sse)
        const r = yield* send("head", key, (abortSignal) => client.send(new HeadObjectCommand({ Bucket, Key: key, ...ssec }), { abortSignal }), {
          customerKey: options?.sse?._tag === "SseC"
        })
        return infoFromHead(key, r)
      })

    const get = (key: string, options?: GetOptions): Effect.Effect<StoredObject, StoreError, Scope.Scope> =>
      Effect.gen(function*() {
        yield* validKey(key)
        const ssec = yield* readKey("get", key, options?.sse)
        const range = options?.range === undefined ? undefined : formatRange(options.range)
        const controller = new AbortController()
        yield* Effect.addFinalizer(() => Effect.sync(() => controller.abort()))
        const r = yield* send(
          "get",
          key,
          () => client.send(new GetObjectCommand({ Bucket, Key: key, ...(range === undefined ? {} : { Range: range }), ...ssec }), { abortSignal: controller.signal }),
          { range, customerKey: options?.sse?._tag === "SseC" }
        ).pipe(
          Effect.catchTag("InvalidRange", (e) =>
            // S3 does not say the size in a 416; ask for it so the error can.
            Effect.flatMap(Effect.either(head(key, options)), (h) => Effect.fail(Either.isRight(h) ? new InvalidRange({ key, range: range ?? "", size: h.right.size }) : e)))
        )
        const body = r.Body as (Readable & AsyncIterable<Uint8Array>) | undefined
        if (body !== undefined) yield* Effect.addFinalizer(() => Effect.sync(() => body.destroy()))
        const cr = parseContentRange(r.ContentRange)
        const info = infoFromHead(key, r, cr !== undefined && cr.size >= 0 ? cr.size : r.ContentLength)
        const stream: Stream.Stream<Uint8Array, StoreError> = body === undefined
          ? Stream.empty
          : Stream.fromAsyncIterable(body, (e) => toStoreError("get", key, e))
        return {
          info,
          body: stream,
          ...(options?.range === undefined ? {} : { range: cr === undefined ? { start: 0, end: info.size } : { start: cr.start, end: cr.end } })
        }
      })

    /** `ifMatch` with `ifNoneMatch` is a usage error, refused before any request (the same in every driver). */
    const checkConditions = (operation: Operation, key: string, options: Pick<PutOptions, "ifMatch" | "ifNoneMatch"> | undefined) =>
      refuseConflictingConditions("s3", operation, key, options)

    /**
     * Where the server would publish a multipart upload without checking its condition (see
     * `unconditionalComplete`), the conditional completion is refused: nothing is sent, and an
     * upload the caller made stays in place, to complete unconditionally or abort.
     */
    const conditionalCompletion = (
      operation: Operation,
      key: string,
      options: Pick<PutOptions, "ifMatch" | "ifNoneMatch"> | undefined,
      what: string
    ): Effect.Effect<void, ProviderError> => {
      const header = options?.ifMatch !== undefined ? "If-Match" : options?.ifNoneMatch !== undefined ? "If-None-Match" : undefined
      return header === undefined || !unconditionalComplete.has(profile)
        ? Effect.void
        : Effect.fail(refusedCondition(
          operation,
          key,
          `this server (profile ${profile}) ignores If-Match and If-None-Match when completing a multipart upload: ${what} with ${header} is refused rather than published unconditionally`
        ))
    }

    /** A condition this profile's server would ignore: refused before anything is sent (400). */
    const refusedCondition = (operation: Operation, key: string, detail: string) =>
      new ProviderError({ provider: "s3", operation, key, code: "InvalidRequest", detail, status: 400 })

    /**
     * A write with `If-Match`: the server checks the etag and writes in one step. A key that does
     * not exist (AWS answers 404 NoSuchKey to some conditional writes) is a failed precondition too.
     */
    const matching = <A, E extends StoreError>(key: string, ifMatch: string | undefined, self: Effect.Effect<A, E>) =>
      ifMatch === undefined
        ? self
        : Effect.catchIf(self, (e) => e._tag === "ObjectNotFound", () =>
          Effect.fail(new PreconditionFailed({ key, reason: "the object does not exist (If-Match)" })))

    const putSingle = (key: string, bytes: Buffer, options: PutOptions | undefined, fields: object) =>
      Effect.map(
        send("put", key, (abortSignal) =>
          client.send(
            new PutObjectCommand({
              Bucket,
              Key: key,
              Body: bytes,
              ContentLength: bytes.length,
              ...(withMd5 ? { ContentMD5: md5(bytes) } : {}),
              ...(options?.contentType === undefined ? {} : { ContentType: options.contentType }),
              ...(options?.metadata === undefined ? {} : { Metadata: encodeMetadata(options.metadata, escapeNames)! }),
              ...(options?.ifNoneMatch === undefined ? {} : { IfNoneMatch: options.ifNoneMatch }),
              ...(options?.ifMatch === undefined ? {} : { IfMatch: ifMatchValue(options.ifMatch) }),
              ...fields
            }),
            { abortSignal }
          )).pipe((self) => matching(key, options?.ifMatch, self)),
        (r): PutResult => ({ key, etag: unquote(r.ETag), size: bytes.length, encryption: infoOrRequested(r, options?.sse) })
      )

    const createUpload = (key: string, options: PutOptions | undefined, fields: object) =>
      Effect.flatMap(
        send("createMultipart", key, (abortSignal) =>
          client.send(
            new CreateMultipartUploadCommand({
              Bucket,
              Key: key,
              ...(options?.contentType === undefined ? {} : { ContentType: options.contentType }),
              ...(options?.metadata === undefined ? {} : { Metadata: encodeMetadata(options.metadata, escapeNames)! }),
              ...fields
            }),
            { abortSignal }
          )),
        (r) =>
          r.UploadId === undefined
            ? Effect.fail(new ProviderError({ provider: "s3", operation: "createMultipart", key, code: "NoUploadId", detail: "the server returned no upload id" }))
            : Effect.succeed<MultipartUpload>({ key, uploadId: r.UploadId })
      )

    const uploadBuffer = (upload: MultipartUpload, partNumber: number, bytes: Buffer, sse: ServerSideEncryption | undefined) =>
      Effect.map(
        settleOnInterrupt(send("uploadPart", upload.key, (abortSignal) =>
          client.send(
            new UploadPartCommand({
              Bucket,
              Key: upload.key,
              UploadId: upload.uploadId,
              PartNumber: partNumber,
              Body: bytes,
              ContentLength: bytes.length,
              ...(withMd5 ? { ContentMD5: md5(bytes) } : {}),
              ...customerKeyFields(sse)
            }),
            { abortSignal }
          )), PART_GRACE),
        (r): CompletedPart => ({ partNumber, etag: unquote(r.ETag), size: bytes.length })
      )

    const abortMultipart = (upload: MultipartUpload): Effect.Effect<void, StoreError> =>
      send("abortMultipart", upload.key, (abortSignal) =>
        client.send(new AbortMultipartUploadCommand({ Bucket, Key: upload.key, UploadId: upload.uploadId }), { abortSignal })).pipe(
          Effect.asVoid,
          // Aborting an upload that is already gone is what the caller wanted.
          Effect.catchTag("PreconditionFailed", () => Effect.void)
        )

    const complete = (
      upload: MultipartUpload,
      parts: ReadonlyArray<CompletedPart>,
      sse: ServerSideEncryption | undefined,
      ifNoneMatch?: "*" | undefined,
      ifMatch?: string | undefined
    ): Effect.Effect<PutResult, StoreError> =>
      send("completeMultipart", upload.key, (abortSignal) =>
        client.send(
          new CompleteMultipartUploadCommand({
            Bucket,
            Key: upload.key,
            UploadId: upload.uploadId,
            MultipartUpload: {
              Parts: [...parts].sort((a, b) => a.partNumber - b.partNumber).map((p) => ({ PartNumber: p.partNumber, ETag: quote(p.etag) }))
            },
            ...(ifNoneMatch === undefined ? {} : { IfNoneMatch: ifNoneMatch }),
            ...(ifMatch === undefined ? {} : { IfMatch: ifMatchValue(ifMatch) }),
            ...customerKeyFields(sse)
          }),
          { abortSignal }
        )).pipe(
          (self) => matching(upload.key, ifMatch, self),
          // Ceph RGW 16 answers 500 ("completion already in progress") for an upload it no longer
          // has; ask for the upload's parts to tell a gone upload from a real server error.
          Effect.catchIf((e) => e._tag === "ProviderError", (e) =>
            Effect.flatMap(
              Effect.either(send("completeMultipart", upload.key, (abortSignal) =>
                client.send(new ListPartsCommand({ Bucket, Key: upload.key, UploadId: upload.uploadId, MaxParts: 1 }), { abortSignal }))),
              // NoSuchUpload, or (RGW 16) NoSuchKey for the upload's missing meta object.
              (r) =>
                Effect.fail(
                  Either.isLeft(r) && (r.left._tag === "PreconditionFailed" || r.left._tag === "ObjectNotFound")
                    ? new PreconditionFailed({ key: upload.key, reason: "the multipart upload does not exist (aborted or completed)" })
                    : e
                )
            )),
          Effect.flatMap((r) => {
            const result: PutResult = {
              key: upload.key,
              etag: unquote(r.ETag),
              size: parts.reduce((n, p) => n + p.size, 0),
              encryption: infoOrRequested(r, sse)
            }
            // Ceph RGW 16 leaves the ETag of CompleteMultipartUpload empty.
            return result.etag !== ""
              ? Effect.succeed(result)
              : Effect.map(head(upload.key, sse === undefined ? undefined : { sse }), (h) => ({ ...result, etag: h.etag }))
          })
        )

    /** Runs `use` against a fresh upload, aborting it on any failure or interruption. */
    const withUpload = <A, E>(
      key: string,
      options: PutOptions | undefined,
      fields: object,
      use: (upload: MultipartUpload) => Effect.Effect<A, E>
    ): Effect.Effect<A, E | StoreError> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(createUpload(key, options, fields), (upload) =>
          restore(use(upload)).pipe(Effect.onError(() => Effect.ignore(abortMultipart(upload)))))
      )

    const put = <E = never>(key: string, body: Stream.Stream<Uint8Array, E>, options?: PutOptions): Effect.Effect<PutResult, StoreError | UnsupportedMode | E> =>
      Effect.gen(function*() {
        yield* validKey(key)
        yield* checkConditions("put", key, options)
        const fields = yield* planWrite(options?.sse)
        const known = options?.contentLength
        const partSize = known === undefined ? basePartSize : Math.max(basePartSize, Math.ceil(known / limits.maxParts))
        return yield* Effect.scoped(
          Effect.gen(function*() {
            const reader = yield* partReader(body, partSize)
            const first = Option.getOrElse(yield* reader.next, () => Buffer.alloc(0))
            const second = first.length < partSize ? Option.none<Buffer>() : yield* reader.next
            if (Option.isNone(second) || second.value.length === 0) return yield* putSingle(key, first, options, fields)
            yield* conditionalCompletion("put", key, options, `a put over ${partSize} bytes (a multipart upload)`)
            const rest = Stream.repeatEffectOption(
              reader.next.pipe(
                Effect.mapError(Option.some),
                Effect.flatMap((o) => (Option.isSome(o) ? Effect.succeed(o.value) : Effect.fail(Option.none<E>())))
              )
            )
            return yield* withUpload(key, options, fields, (upload) =>
              Stream.make(first, second.value).pipe(
                Stream.concat(rest),
                Stream.filter((b) => b.length > 0),
                Stream.zipWithIndex,
                // A part whose upload is done backs a later part (about concurrency + 1 buffers in all).
                Stream.mapEffect(([bytes, i]) => Effect.tap(uploadBuffer(upload, i + 1, bytes, options?.sse), () => reader.release(bytes)), { concurrency }),
                Stream.runCollect,
                Effect.flatMap((parts) => complete(upload, [...parts], options?.sse, options?.ifNoneMatch, options?.ifMatch))
              ))
          })
        ).pipe(budget.reserve(heldByUpload(known, partSize, concurrency)))
      })

    /**
     * `ifMatch` goes as `If-Match` on DeleteObject, which AWS checks with the delete: 412 when the
     * etag differs, 404 NoSuchKey when the key is missing (both `PreconditionFailed`). Refused (400,
     * nothing sent) on profiles whose server would ignore it (`unconditionalDelete`).
     */
    const remove = (key: string, options?: RemoveOptions): Effect.Effect<void, StoreError> => {
      const ifMatch = options?.ifMatch
      const sent = send("remove", key, (abortSignal) =>
        client.send(
          new DeleteObjectCommand({ Bucket, Key: key, ...(ifMatch === undefined ? {} : { IfMatch: ifMatchValue(ifMatch) }) }),
          { abortSignal }
        )).pipe(
          Effect.asVoid,
          // Unconditionally, a missing key is what the caller wanted; under If-Match it is a failed precondition.
          (self) => (ifMatch === undefined ? Effect.catchTag(self, "ObjectNotFound", () => Effect.void) : matching(key, ifMatch, self))
        )
      return Effect.zipRight(
        validKey(key),
        ifMatch !== undefined && unconditionalDelete.has(profile)
          ? Effect.fail(refusedCondition(
            "remove",
            key,
            `this server (profile ${profile}) ignores If-Match on DeleteObject: a remove with ifMatch is refused rather than deleting unconditionally`
          ))
          : sent
      )
    }

    const listPage = (options: ListOptions | undefined) =>
      Effect.map(
        send("list", options?.prefix, (abortSignal) =>
          client.send(
            new ListObjectsV2Command({
              Bucket,
              EncodingType: "url",
              ...(options?.prefix === undefined ? {} : { Prefix: options.prefix }),
              ...(options?.delimiter === undefined ? {} : { Delimiter: options.delimiter }),
              ...(options?.maxKeys === undefined ? {} : { MaxKeys: options.maxKeys }),
              ...(options?.continuationToken === undefined ? {} : { ContinuationToken: options.continuationToken }),
              ...(options?.startAfter === undefined ? {} : { StartAfter: options.startAfter })
            }),
            { abortSignal }
          )),
        (r): ListPage => ({
          objects: (r.Contents ?? []).map((o) => ({
            key: urlDecode(o.Key),
            size: o.Size ?? 0,
            etag: unquote(o.ETag),
            lastModified: o.LastModified ?? new Date(0)
          })),
          commonPrefixes: (r.CommonPrefixes ?? []).map((p) => urlDecode(p.Prefix)),
          ...(r.IsTruncated === true && r.NextContinuationToken !== undefined ? { continuationToken: r.NextContinuationToken } : {})
        })
      )

    const list = (options?: ListOptions): Effect.Effect<ListPage, StoreError> =>
      Effect.gen(function*() {
        const page = yield* listPage(options)
        const { delimiter, startAfter } = options ?? {}
        const prefix = options?.prefix ?? ""
        if (delimiter === undefined || delimiter === "" || startAfter === undefined || options?.continuationToken !== undefined) return page
        if (!startAfter.startsWith(prefix)) return page
        const cut = startAfter.indexOf(delimiter, prefix.length)
        if (cut < 0) return page
        // startAfter inside a group: S3 still reports the group when keys after startAfter fall in
        // it; Ceph RGW 16 drops it, so look for one.
        const group = startAfter.slice(0, cut + delimiter.length)
        // startAfter that is the group itself passes over it (the server does).
        if (group === startAfter || page.commonPrefixes.includes(group)) return page
        const inGroup = yield* listPage({ prefix: group, startAfter, maxKeys: 1 })
        return inGroup.objects.length === 0 ? page : { ...page, commonPrefixes: [group, ...page.commonPrefixes] }
      })

    const createMultipart = (key: string, options?: PutOptions): Effect.Effect<MultipartUpload, StoreError | UnsupportedMode> =>
      Effect.gen(function*() {
        yield* validKey(key)
        yield* checkConditions("createMultipart", key, options)
        const condition = options?.ifMatch !== undefined ? "ifMatch" : options?.ifNoneMatch !== undefined ? "ifNoneMatch" : undefined
        if (condition !== undefined) {
          // S3 checks the conditions on CompleteMultipartUpload only, and an upload id carries no
          // state from here to there: refused rather than dropped.
          return yield* new ProviderError({
            provider: "s3",
            operation: "createMultipart",
            key,
            code: "InvalidRequest",
            detail: `${condition} is not carried from createMultipart to completeMultipart by this driver; give it to completeMultipart (or use put)`,
            status: 400
          })
        }
        const fields = yield* planWrite(options?.sse)
        return yield* createUpload(key, options, fields)
      })

    /**
     * A part of known length sent as it is read, never held whole: the body is piped into the
     * request (`UNSIGNED-PAYLOAD`, no SDK retry — it cannot be read twice), checked to be exactly
     * `length` bytes (a short body fails the request instead of leaving the server waiting), and
     * its MD5, computed on the way, is compared with the part's ETag where the server's ETag is the
     * MD5 of the bytes it stored (no native SSE-KMS/SSE-C) — the check `Content-MD5` makes for a
     * buffered part, after the fact.
     */
    const uploadStreamed = <E>(upload: MultipartUpload, partNumber: number, body: Stream.Stream<Uint8Array, E>, length: number, sse: ServerSideEncryption | undefined) =>
      Effect.gen(function*() {
        const hash = crypto.createHash("md5")
        const bodyFailed = new AbortController()
        // The body's own failure (the caller's error, or a length mismatch), not the SDK's report of it.
        const bodyFailure: { value: Option.Option<E | ProviderError> } = { value: Option.none() }
        const mismatch = (detail: string) => new ProviderError({ provider: "s3", operation: "uploadPart", key: upload.key, code: "BodyLengthMismatch", detail })
        const counted = exactly(body, length, mismatch).pipe(
          Stream.tap((c) => Effect.sync(() => hash.update(c))),
          // A failed body aborts the request: the server would otherwise wait for the missing bytes.
          Stream.tapError((e) =>
            Effect.sync(() => {
              bodyFailure.value = Option.some(e)
              bodyFailed.abort()
            })
          )
        )
        const r = yield* settleOnInterrupt(
          send("uploadPart", upload.key, (abortSignal) => {
            const readable = Readable.from(Stream.toAsyncIterable(counted), { objectMode: false })
            // The failure is reported through the request (aborted above), not as an unhandled event.
            readable.on("error", () => undefined)
            return streamClient.send(
              new UploadPartCommand({
                Bucket,
                Key: upload.key,
                UploadId: upload.uploadId,
                PartNumber: partNumber,
                Body: readable,
                ContentLength: length,
                ...customerKeyFields(sse)
              }),
              { abortSignal: AbortSignal.any([abortSignal, bodyFailed.signal]) }
            )
          }).pipe(Effect.catchAll((e): Effect.Effect<never, StoreError | E> => Effect.fail(Option.getOrElse(bodyFailure.value, () => e)))),
          PART_GRACE
        )
        const etag = unquote(r.ETag)
        const digest = hash.digest("hex")
        if (withMd5 && sse?._tag !== "SseKms" && sse?._tag !== "SseC" && /^[0-9a-f]{32}$/.test(etag) && etag !== digest) {
          return yield* new ProviderError({
            provider: "s3",
            operation: "uploadPart",
            key: upload.key,
            code: "BadDigest",
            detail: `the server stored part ${partNumber} with ETag ${etag}, not the MD5 of the bytes sent (${digest})`
          })
        }
        return { partNumber, etag, size: length } satisfies CompletedPart
      })

    const uploadPart = <E = never>(
      upload: MultipartUpload,
      partNumber: number,
      body: Stream.Stream<Uint8Array, E>,
      options?: { readonly contentLength?: number | undefined; readonly sse?: ServerSideEncryption | undefined }
    ): Effect.Effect<CompletedPart, StoreError | E> =>
      Effect.gen(function*() {
        if (options?.contentLength !== undefined && options.contentLength > streamAbove) {
          return yield* uploadStreamed(upload, partNumber, body, options.contentLength, options.sse)
        }
        const limit = options?.contentLength ?? limits.maxPartSize
        return yield* budget.reserve(Math.min(limit, streamAbove))(bufferedPart(upload, partNumber, body, limit, options))
      })

    const bufferedPart = <E>(
      upload: MultipartUpload,
      partNumber: number,
      body: Stream.Stream<Uint8Array, E>,
      limit: number,
      options?: { readonly contentLength?: number | undefined; readonly sse?: ServerSideEncryption | undefined }
    ): Effect.Effect<CompletedPart, StoreError | E> =>
      Effect.gen(function*() {
        const bytes = yield* collect(body, limit, () =>
          new ProviderError({ provider: "s3", operation: "uploadPart", key: upload.key, code: "BodyTooLong", detail: `the part body is longer than ${limit} bytes` }))
        if (options?.contentLength !== undefined && bytes.length !== options.contentLength) {
          return yield* new ProviderError({
            provider: "s3",
            operation: "uploadPart",
            key: upload.key,
            code: "BodyLengthMismatch",
            detail: `the part body has ${bytes.length} bytes, not ${options.contentLength}`
          })
        }
        return yield* uploadBuffer(upload, partNumber, bytes, options?.sse)
      })

    /**
     * The conditions go on CompleteMultipartUpload, checked by the server as it publishes the
     * upload. A failed one (412, or 404 for `ifMatch` on a missing key) leaves the upload in place:
     * it is the caller's, to complete again or abort, so it is not aborted here.
     */
    const completeMultipart = (
      upload: MultipartUpload,
      parts: ReadonlyArray<CompletedPart>,
      options?: CompleteOptions
    ): Effect.Effect<PutResult, StoreError> =>
      Effect.gen(function*() {
        yield* checkConditions("completeMultipart", upload.key, options)
        yield* conditionalCompletion("completeMultipart", upload.key, options, "a completion")
        return yield* complete(upload, parts, options?.sse, options?.ifNoneMatch, options?.ifMatch)
      })

    const copy = (source: string, destination: string, options?: CopyOptions): Effect.Effect<PutResult, StoreError | UnsupportedMode> =>
      Effect.gen(function*() {
        yield* validKey(source)
        yield* validKey(destination)
        const fields = yield* planWrite(options?.sse)
        const src = yield* head(source, options?.sourceSse === undefined ? undefined : { sse: options.sourceSse })
        // `ifSourceMatch`: checked here (before any upload starts), then by the server on the request
        // that reads the source (`x-amz-copy-source-if-match`, and RGW's own name for it), so the bytes
        // copied are that version's; a streamed copy checks its GET's etag, a multipart copy heads the
        // source again before completing (RGW ignores the condition on UploadPartCopy).
        const ifMatch = options?.ifSourceMatch === undefined ? undefined : unquote(options.ifSourceMatch)
        const sourceChanged = () => new PreconditionFailed({ key: source, reason: "the source's etag does not match (it was replaced)" })
        if (ifMatch !== undefined && src.etag !== ifMatch) return yield* sourceChanged()
        const conditional = <A, E extends { readonly _tag: string }>(self: Effect.Effect<A, E>) =>
          ifMatch === undefined
            ? self
            : Effect.catchIf(self, (e) => e._tag === "PreconditionFailed", () => Effect.fail(sourceChanged()))
        const sourceIfMatch = ifMatch === undefined ? {} : { CopySourceIfMatch: `"${ifMatch}"` }
        const replace = options?.metadata !== undefined || options?.contentType !== undefined
        const putOptions: PutOptions = {
          contentType: options?.contentType ?? src.contentType,
          metadata: options?.metadata ?? src.metadata,
          sse: options?.sse
        }
        const encrypted = src.encryption.mode !== "None" || options?.sse !== undefined
        if (streamedEncryptedCopy.has(profile) && encrypted) {
          // The server would refuse (501) or silently store plaintext: move the bytes ourselves.
          return yield* Effect.scoped(
            Effect.flatMap(get(source, options?.sourceSse === undefined ? undefined : { sse: options.sourceSse }), (obj) =>
              // One GET response is one version: its etag is the body's.
              ifMatch !== undefined && obj.info.etag !== ifMatch
                ? Effect.fail(sourceChanged())
                : put(destination, obj.body, { ...putOptions, contentLength: obj.info.size }))
          )
        }
        const sourceFields = copySourceFields(options?.sourceSse)
        const CopySource = encodeCopySource(Bucket, source)
        if (src.size <= copyThreshold) {
          const r = yield* conditional(send("copy", source, (abortSignal) => {
            const command = new CopyObjectCommand({
              Bucket,
              Key: destination,
              CopySource,
              ...sourceIfMatch,
              ...(replace
                ? {
                  MetadataDirective: "REPLACE",
                  Metadata: encodeMetadata(putOptions.metadata, escapeNames)!,
                  ...(putOptions.contentType === undefined ? {} : { ContentType: putOptions.contentType })
                }
                : {}),
              ...sourceFields,
              ...fields
            })
            if (ifMatch !== undefined && rgwCopyConditions.has(profile)) command.middlewareStack.use(getRgwCopyIfMatchPlugin(`"${ifMatch}"`))
            return client.send(command, { abortSignal })
          }, { customerKey: options?.sourceSse?._tag === "SseC" }))
          return { key: destination, etag: unquote(r.CopyObjectResult?.ETag), size: src.size, encryption: infoOrRequested(r, options?.sse) }
        }
        const partSize = Math.max(basePartSize, Math.ceil(src.size / limits.maxParts))
        const ranges = Array.from({ length: Math.ceil(src.size / partSize) }, (_, i) => ({
          partNumber: i + 1,
          start: i * partSize,
          end: Math.min(src.size, (i + 1) * partSize)
        }))
        return yield* withUpload(destination, putOptions, fields, (upload) =>
          Effect.forEach(ranges, (r) =>
            Effect.map(
              settleOnInterrupt(conditional(send("uploadPartCopy", source, (abortSignal) =>
                client.send(
                  new UploadPartCopyCommand({
                    Bucket,
                    Key: destination,
                    UploadId: upload.uploadId,
                    PartNumber: r.partNumber,
                    CopySource,
                    CopySourceRange: `bytes=${r.start}-${r.end - 1}`,
                    ...sourceIfMatch,
                    ...sourceFields,
                    ...customerKeyFields(options?.sse)
                  }),
                  { abortSignal }
                ), { customerKey: options?.sourceSse?._tag === "SseC" })), PART_GRACE),
              (res): CompletedPart => ({ partNumber: r.partNumber, etag: unquote(res.CopyPartResult?.ETag), size: r.end - r.start })
            ), { concurrency }).pipe(
              // Servers that ignore the condition on UploadPartCopy (RGW): the source read again
              // after its parts were copied, with the etag unchanged, proves they are that version's.
              Effect.tap(() =>
                ifMatch === undefined ? Effect.void : Effect.flatMap(
                  head(source, options?.sourceSse === undefined ? undefined : { sse: options.sourceSse }).pipe(
                    Effect.catchTag("ObjectNotFound", () => Effect.fail(sourceChanged()))
                  ),
                  (again) => (again.etag === ifMatch ? Effect.void : Effect.fail(sourceChanged()))
                )
              ),
              Effect.flatMap((parts) => complete(upload, parts, options?.sse))
            ))
      })

    return S3ObjectStore.of({
      provider: "s3",
      bucket: Bucket,
      location: `s3://${Bucket}`,
      nativeModes,
      limits,
      client,
      profile,
      facts,
      put,
      get,
      head,
      list,
      remove,
      copy,
      createMultipart,
      uploadPart,
      completeMultipart,
      abortMultipart
    })
  })

/**
 * A layer providing both `S3ObjectStore` and the core `ObjectStore`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (config: S3Config): Layer.Layer<S3ObjectStore | ObjectStore> =>
  Layer.scopedContext(Effect.map(make(config), (s) => Context.make(S3ObjectStore, s).pipe(Context.add(ObjectStore, s))))

/**
 * As {@link layer}, reading its configuration, e.g.
 * `layerConfig({ bucket: Config.string("BUCKET"), secretAccessKey: Config.redacted("SECRET_ACCESS_KEY") })`
 * under `ConfigProvider.nested("OBJCRYPT_S3")`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (config: Config.Config.Wrap<S3Config>): Layer.Layer<S3ObjectStore | ObjectStore, ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(config), layer))
