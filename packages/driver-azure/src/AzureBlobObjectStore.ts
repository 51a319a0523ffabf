/**
 * `ObjectStore` for Azure Blob Storage (block blobs), on the official `@azure/storage-blob`.
 * Server-side modes map to Azure's own features: `sse-c` to customer-provided keys (CPK, on every
 * request that touches the blob, https only), `sse-kms` to encryption scopes, `sse-s3` to the
 * Microsoft-managed encryption that is always on. Uploads stage blocks in parallel with bounded
 * memory and commit the block list; the contract's multipart uploads are staged blocks named by
 * the upload id (see `internal/blocks.ts`), so nothing is visible before the commit.
 *
 * @since 0.1.0
 */
import {
  AnonymousCredential,
  BlobSASPermissions,
  BlobServiceClient,
  ContainerClient,
  generateBlobSASQueryParameters,
  newPipeline,
  StorageSharedKeyCredential
} from "@azure/storage-blob"
import type { BlobDownloadResponseParsed, BlobGetPropertiesResponse, CpkInfo, Pipeline } from "@azure/storage-blob"
import { matrix, resolveIn } from "@objcrypt/core/CompatibilityMatrix"
import type { BucketFacts } from "@objcrypt/core/CompatibilityMatrix"
import type { ModeTag } from "@objcrypt/core/EncryptionMode"
import { AccessDenied, InvalidObjectKey, InvalidRange, PreconditionFailed, ProviderError, UnsupportedMode } from "@objcrypt/core/Errors"
import type { StoreError } from "@objcrypt/core/Errors"
import { checkConditions as refuseConflictingConditions, compareKeys, completionConditions, ObjectStore, resolveRange } from "@objcrypt/core/ObjectStore"
import type {
  ByteRange,
  CompleteOptions,
  CompletedPart,
  CopyOptions,
  GetOptions,
  ListedObject,
  ListOptions,
  ListPage,
  MultipartUpload,
  ObjectInfo,
  PutOptions,
  PutResult,
  RemoveOptions,
  ServerEncryptionInfo,
  ServerSideEncryption,
  StoredObject,
  StoreLimits
} from "@objcrypt/core/ObjectStore"
import { Config, Context, Effect, Either, Layer, Option, Redacted, Stream } from "effect"
import type { ConfigError } from "effect/ConfigError"
import type * as Scope from "effect/Scope"
import * as crypto from "node:crypto"
import type { Readable } from "node:stream"
import type { AzureConfig } from "./AzureConfig.js"
import { defaults, MiB } from "./AzureConfig.js"
import { blockId, formatUploadId, markerId, newUploadId, parsePartEtag, parseUploadId, partEtag } from "./internal/blocks.js"
import type { UploadState } from "./internal/blocks.js"
import { toStoreError } from "./internal/errors.js"
import type { ErrorContext, Operation } from "./internal/errors.js"
import { decodeMetadata, encodeMetadata } from "./internal/metadata.js"
import { heldByUpload, memoryBudget, partReader } from "@objcrypt/core/StreamParts"

/**
 * The Azure store: the core `ObjectStore` service plus the SDK's `ContainerClient`, for what the
 * contract does not cover.
 *
 * @since 0.1.0
 * @category tags
 */
export class AzureBlobObjectStore extends Context.Tag("@objcrypt/driver-azure/AzureBlobObjectStore")<
  AzureBlobObjectStore,
  ObjectStore["Type"] & {
    readonly client: ContainerClient
    /** The container facts in use (the endpoint's TLS, plus any probe). */
    readonly facts: BucketFacts
  }
>() {}

/**
 * Azure Blob Storage's limits for block blobs (service version 2019-12-12 and later).
 *
 * @since 0.1.0
 * @category constants
 */
export const limits: StoreLimits = {
  maxMetadataBytes: 8192,
  // Azure has no minimum block size; 1 MiB keeps 10 000-part uploads of large objects sensible.
  minPartSize: 1 * MiB,
  maxPartSize: 4000 * MiB,
  maxParts: 10_000
}

const SSE_TAGS = ["SseS3", "SseKms", "SseC"] as const

const parseConnectionString = (cs: string): Record<string, string> =>
  Object.fromEntries(
    cs.split(";").filter((p) => p.includes("=")).map((p) => {
      const i = p.indexOf("=")
      return [p.slice(0, i).trim().toLowerCase(), p.slice(i + 1).trim()]
    })
  )

interface Clients {
  readonly container: ContainerClient
  /** Signs a read-only SAS for a source blob (server-side copies), when the credentials allow. */
  readonly sourceUrl: (name: string) => Promise<string>
}

/**
 * Builds the SDK clients for a configuration (no network).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeClient = (config: AzureConfig): ContainerClient => makeClients(config).container

const makeClients = (config: AzureConfig): Clients => {
  const pipelineOf = (credential: StorageSharedKeyCredential | AnonymousCredential | import("@azure/core-auth").TokenCredential): Pipeline => {
    const pipeline = newPipeline(credential, {
      retryOptions: { maxTries: config.maxTries ?? defaults.maxTries },
      // Checksums are sent by the driver (Content-MD5); the SDK's structured CRC64 messages are
      // not understood by every server (Azurite).
      ...({ uploadContentChecksumAlgorithm: "None", downloadContentChecksumAlgorithm: "None" } as object)
    })
    for (const f of config.requestPolicyFactories ?? []) pipeline.factories.push(f)
    return pipeline
  }
  const creds = config.credentials
  const url = (u: string | undefined) => {
    if (u === undefined || u === "") throw new Error("accountUrl is required")
    return u.replace(/\/+$/, "")
  }
  switch (creds._tag) {
    case "SharedKey": {
      const shared = new StorageSharedKeyCredential(creds.accountName, Redacted.value(creds.accountKey))
      const container = new BlobServiceClient(url(config.accountUrl), pipelineOf(shared)).getContainerClient(config.container)
      return { container, sourceUrl: async (name) => sasUrl(container, name, shared) }
    }
    case "ConnectionString": {
      const cs = parseConnectionString(Redacted.value(creds.connectionString))
      const accountName = cs["accountname"]
      const accountKey = cs["accountkey"]
      const sas = cs["sharedaccesssignature"]
      const endpoint = cs["blobendpoint"] ??
        (accountName === undefined
          ? undefined
          : `${cs["defaultendpointsprotocol"] ?? "https"}://${accountName}.blob.${cs["endpointsuffix"] ?? "core.windows.net"}`)
      if (accountName !== undefined && accountKey !== undefined) {
        const shared = new StorageSharedKeyCredential(accountName, accountKey)
        const container = new BlobServiceClient(url(endpoint), pipelineOf(shared)).getContainerClient(config.container)
        return { container, sourceUrl: async (name) => sasUrl(container, name, shared) }
      }
      const query = sas === undefined ? "" : `?${sas.replace(/^\?/, "")}`
      const container = new BlobServiceClient(`${url(endpoint)}${query}`, pipelineOf(new AnonymousCredential())).getContainerClient(config.container)
      return { container, sourceUrl: async (name) => container.getBlobClient(name).url }
    }
    case "Sas": {
      const token = Redacted.value(creds.token).replace(/^\?/, "")
      const container = new BlobServiceClient(`${url(config.accountUrl)}?${token}`, pipelineOf(new AnonymousCredential())).getContainerClient(
        config.container
      )
      return { container, sourceUrl: async (name) => container.getBlobClient(name).url }
    }
    case "Token": {
      const container = new BlobServiceClient(url(config.accountUrl), pipelineOf(creds.credential)).getContainerClient(config.container)
      return { container, sourceUrl: async (name) => container.getBlobClient(name).url }
    }
  }
}

const sasUrl = (container: ContainerClient, name: string, shared: StorageSharedKeyCredential): string => {
  const blob = container.getBlobClient(name)
  const now = Date.now()
  const sas = generateBlobSASQueryParameters(
    {
      containerName: container.containerName,
      blobName: name,
      permissions: BlobSASPermissions.parse("r"),
      startsOn: new Date(now - 5 * 60_000),
      expiresOn: new Date(now + 60 * 60_000)
    },
    shared
  ).toString()
  return `${blob.url}${blob.url.includes("?") ? "&" : "?"}${sas}`
}

/**
 * The container facts a configuration implies: TLS from the endpoint, plus any probe.
 *
 * @since 0.1.0
 * @category constructors
 */
export const factsOf = (config: AzureConfig, client: ContainerClient): BucketFacts => ({
  ...config.facts,
  tls: client.url.toLowerCase().startsWith("https:")
})

/**
 * The modes Azure honours natively on a container with these facts (always including `None`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const nativeModesOf = (facts: BucketFacts): ReadonlySet<ModeTag> =>
  new Set<ModeTag>([
    "None",
    ...SSE_TAGS.filter((t) => {
      const r = Effect.runSync(Effect.either(resolveIn(matrix, "azure-blob", t, facts)))
      return Either.isRight(r) && r.right._tag === "Native"
    })
  ])

/** What a request sends for a server-side mode. */
interface EncryptionFields {
  readonly customerProvidedKey?: CpkInfo | undefined
  readonly encryptionScope?: string | undefined
}

const cpkOf = (sse: ServerSideEncryption | undefined): CpkInfo | undefined =>
  sse?._tag === "SseC"
    ? { encryptionKey: Buffer.from(Redacted.value(sse.key.material)).toString("base64"), encryptionKeySha256: sse.key.sha256, encryptionAlgorithm: "AES256" }
    : undefined

const unquote = (etag: string | undefined) => (etag ?? "").replace(/^"(.*)"$/, "$1")
const md5 = (b: Uint8Array) => crypto.createHash("md5").update(b).digest()

const infoOfEncryption = (r: {
  readonly isServerEncrypted?: boolean | undefined
  readonly encryptionKeySha256?: string | undefined
  readonly encryptionScope?: string | undefined
}): ServerEncryptionInfo =>
  r.encryptionKeySha256 !== undefined && r.encryptionKeySha256 !== ""
    ? { mode: "SseC", customerKeySha256: r.encryptionKeySha256 }
    : r.encryptionScope !== undefined && r.encryptionScope !== "" && r.encryptionScope !== "$account-encryption-key"
    ? { mode: "SseKms", kmsKeyId: r.encryptionScope, scope: r.encryptionScope }
    : r.isServerEncrypted === true
    ? { mode: "SseS3" }
    : { mode: "None" }

/** What the service reported, completed with what was asked when it said nothing (emulators). */
const reportedOrRequested = (reported: ServerEncryptionInfo, sse: ServerSideEncryption | undefined, scope: string | undefined): ServerEncryptionInfo =>
  reported.mode !== "None" && reported.mode !== "SseS3"
    ? reported
    : sse?._tag === "SseC"
    ? { mode: "SseC", customerKeySha256: sse.key.sha256 }
    : sse?._tag === "SseKms" && scope !== undefined
    ? { mode: "SseKms", kmsKeyId: scope, scope }
    : reported

const parseContentRange = (s: string | undefined): { start: number; end: number; size: number } | undefined => {
  const m = s === undefined ? null : /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(s.trim())
  return m === null ? undefined : { start: Number(m[1]), end: Number(m[2]) + 1, size: m[3] === "*" ? -1 : Number(m[3]) }
}

interface ListToken {
  /** The Azure marker of the window being served. */
  readonly m?: string | undefined
  /** Entries of the (sorted) window already returned. */
  readonly s: number
}

const encodeToken = (t: ListToken) => Buffer.from(JSON.stringify(t), "utf8").toString("base64url")
const decodeToken = (s: string): ListToken | undefined => {
  try {
    const t = JSON.parse(Buffer.from(s, "base64url").toString("utf8")) as { m?: unknown; s?: unknown }
    if (typeof t.s !== "number" || !Number.isSafeInteger(t.s) || t.s < 0) return undefined
    if (t.m !== undefined && typeof t.m !== "string") return undefined
    return { m: t.m as string | undefined, s: t.s }
  } catch {
    return undefined
  }
}

/**
 * Builds the store; nothing needs closing (the SDK holds no resource beyond keep-alive sockets).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (config: AzureConfig): Effect.Effect<AzureBlobObjectStore["Type"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const clients = yield* Effect.sync(() => makeClients(config))
    const client = clients.container
    const facts = factsOf(config, client)
    const nativeModes = nativeModesOf(facts)
    const blockSize = Math.min(Math.max(config.blockSize ?? defaults.blockSize, 64 * 1024), limits.maxPartSize)
    const concurrency = Math.max(1, config.concurrency ?? defaults.concurrency)
    const budget = yield* memoryBudget(config.memoryBudget)
    const copyBlockSize = Math.max(config.copyBlockSize ?? defaults.copyBlockSize, blockSize)
    const withMd5 = config.contentMd5 ?? defaults.contentMd5
    const container = client.containerName

    const send = <A>(operation: Operation, key: string | undefined, f: (signal: AbortSignal) => Promise<A>, ctx?: ErrorContext) =>
      Effect.tryPromise({ try: f, catch: (e) => toStoreError(operation, key, e, ctx) })

    const validKey = (key: string): Effect.Effect<void, InvalidObjectKey> =>
      key === ""
        ? Effect.fail(new InvalidObjectKey({ key, reason: "empty" }))
        : Buffer.byteLength(key, "utf8") > 1024
        ? Effect.fail(new InvalidObjectKey({ key, reason: "longer than 1024 bytes of UTF-8" }))
        : Effect.void

    const unsupported = (tag: ModeTag, reason: string) =>
      new UnsupportedMode({ provider: "azure-blob", mode: tag, reason, alternatives: tag === "SseC" ? ["use cse-c", "use an https endpoint"] : ["use cse-kms"] })

    /** The request fields for a write in `sse`; fails before any I/O when the store cannot honour it. */
    const planWrite = (sse: ServerSideEncryption | undefined): Effect.Effect<EncryptionFields, UnsupportedMode> =>
      Effect.gen(function*() {
        if (sse === undefined) return {}
        const plan = yield* resolveIn(matrix, "azure-blob", sse._tag, facts)
        if (plan._tag !== "Native") {
          return yield* unsupported(sse._tag, "the Azure driver sends only native server-side modes")
        }
        switch (sse._tag) {
          case "SseS3":
            // Microsoft-managed encryption is always on: nothing to send.
            return {}
          case "SseC":
            return { customerProvidedKey: cpkOf(sse) }
          case "SseKms": {
            const scope = sse.keyId ?? config.defaultEncryptionScope
            if (scope === undefined || scope === "") {
              return yield* unsupported("SseKms", "sse-kms on Azure needs an encryption scope: give a key id or set defaultEncryptionScope")
            }
            if (sse.context !== undefined && Object.keys(sse.context).length > 0) {
              return yield* unsupported("SseKms", "Azure encryption scopes take no encryption context")
            }
            return { encryptionScope: scope }
          }
        }
      })

    /** Reads send a customer key only where the store may receive it. */
    const readFields = (operation: Operation, key: string, sse: ServerSideEncryption | undefined) =>
      sse?._tag === "SseC" && !nativeModes.has("SseC")
        ? Effect.fail(new AccessDenied({ provider: "azure", operation, key, reason: "sse-c needs an https endpoint (see the compatibility matrix)" }))
        : Effect.succeed(cpkOf(sse))

    const blob = (key: string) => client.getBlockBlobClient(key)

    const infoOf = (key: string, r: BlobGetPropertiesResponse | BlobDownloadResponseParsed, size?: number): ObjectInfo => ({
      key,
      size: size ?? r.contentLength ?? 0,
      etag: unquote(r.etag),
      lastModified: r.lastModified ?? new Date(0),
      ...(r.contentType === undefined ? {} : { contentType: r.contentType }),
      metadata: decodeMetadata(r.metadata),
      encryption: infoOfEncryption(r)
    })

    const head = (key: string, options?: GetOptions): Effect.Effect<ObjectInfo, StoreError> =>
      Effect.gen(function*() {
        yield* validKey(key)
        const cpk = yield* readFields("head", key, options?.sse)
        const r = yield* send("head", key, (abortSignal) => blob(key).getProperties({ abortSignal, ...(cpk === undefined ? {} : { customerProvidedKey: cpk }) }), {
          customerKey: cpk !== undefined
        })
        return infoOf(key, r)
      })

    const rangeText = (r: ByteRange | undefined) =>
      r === undefined ? "" : r._tag === "Bounded" ? `bytes=${r.start}-${r.end}` : r._tag === "From" ? `bytes=${r.start}-` : `bytes=-${r.length}`

    const get = (key: string, options?: GetOptions): Effect.Effect<StoredObject, StoreError, Scope.Scope> =>
      Effect.gen(function*() {
        yield* validKey(key)
        const cpk = yield* readFields("get", key, options?.sse)
        const ctx = { customerKey: cpk !== undefined, range: rangeText(options?.range) }
        let offset = 0
        let count: number | undefined
        let ifMatch: string | undefined
        const r = options?.range
        if (r !== undefined) {
          if (r._tag === "Suffix" || (r._tag === "Bounded" && r.end < r.start)) {
            // Azure takes no suffix ranges: resolve against the size, and pin the version read.
            const info = yield* head(key, options)
            const resolved = resolveRange(r, info.size)
            if (Option.isNone(resolved)) return yield* new InvalidRange({ key, range: ctx.range, size: info.size })
            offset = resolved.value.start
            count = resolved.value.end - resolved.value.start
            ifMatch = `"${info.etag}"`
          } else {
            offset = r.start
            count = r._tag === "Bounded" ? r.end - r.start + 1 : undefined
            if (offset < 0 || !Number.isSafeInteger(offset)) {
              return yield* new InvalidRange({ key, range: ctx.range, size: (yield* head(key, options)).size })
            }
          }
        }
        const controller = new AbortController()
        yield* Effect.addFinalizer(() => Effect.sync(() => controller.abort()))
        const res = yield* send(
          "get",
          key,
          () =>
            blob(key).download(offset, count, {
              abortSignal: controller.signal,
              maxRetryRequests: 3,
              ...(cpk === undefined ? {} : { customerProvidedKey: cpk }),
              ...(ifMatch === undefined ? {} : { conditions: { ifMatch } })
            }),
          ctx
        ).pipe(
          Effect.catchTag("InvalidRange", (e) =>
            // The 416 does not carry the size in a parsed field: ask for it so the error can.
            Effect.flatMap(Effect.either(head(key, options)), (h) => Effect.fail(Either.isRight(h) ? new InvalidRange({ key, range: ctx.range, size: h.right.size }) : e))),
          Effect.catchTag("PreconditionFailed", () => Effect.fail(new ProviderError({ provider: "azure", operation: "get", key, code: "Changed", detail: "the blob changed while reading it" })))
        )
        const body = res.readableStreamBody as (Readable & AsyncIterable<Uint8Array>) | undefined
        if (body !== undefined) yield* Effect.addFinalizer(() => Effect.sync(() => body.destroy()))
        const cr = parseContentRange(res.contentRange)
        const info = infoOf(key, res, cr !== undefined && cr.size >= 0 ? cr.size : res.contentLength)
        if (r !== undefined && (offset >= info.size || (cr === undefined ? offset > 0 : cr.start !== offset))) {
          // A server that answers an unsatisfiable range with the whole blob (Azurite) or another range.
          return yield* new InvalidRange({ key, range: ctx.range, size: info.size })
        }
        const stream: Stream.Stream<Uint8Array, StoreError> = body === undefined
          ? Stream.empty
          : Stream.fromAsyncIterable(body, (e) => toStoreError("get", key, e))
        return {
          info,
          body: stream,
          ...(r === undefined ? {} : { range: cr === undefined ? { start: 0, end: info.size } : { start: cr.start, end: cr.end } })
        }
      })

    const stage = (operation: Operation, key: string, id: string, bytes: Buffer, enc: EncryptionFields) =>
      send(operation, key, (abortSignal) =>
        blob(key).stageBlock(id, bytes, bytes.length, {
          abortSignal,
          ...(withMd5 ? { transactionalContentMD5: md5(bytes) } : {}),
          ...(enc.customerProvidedKey === undefined ? {} : { customerProvidedKey: enc.customerProvidedKey }),
          ...(enc.encryptionScope === undefined ? {} : { encryptionScope: enc.encryptionScope })
        }), { customerKey: enc.customerProvidedKey !== undefined })

    const httpHeadersOf = (contentType: string | undefined, bytes?: Buffer) => ({
      ...(contentType === undefined ? {} : { blobContentType: contentType }),
      ...(bytes !== undefined && withMd5 ? { blobContentMD5: md5(bytes) } : {})
    })

    /** `ifMatch` with `ifNoneMatch` is a usage error, refused before any request (the same in every driver). */
    const checkConditions = (operation: Operation, key: string, options: PutOptions | undefined) =>
      refuseConflictingConditions("azure", operation, key, options)

    /**
     * A write with `If-Match`: Azure checks the etag and writes in one step (412 on another etag).
     * A blob that does not exist is a failed precondition too, whatever status it is reported with.
     */
    const matching = <A, E extends StoreError>(key: string, ifMatch: string | undefined, self: Effect.Effect<A, E>) =>
      ifMatch === undefined
        ? self
        : Effect.catchIf(self, (e) => e._tag === "ObjectNotFound", () =>
          Effect.fail(new PreconditionFailed({ key, reason: "the blob does not exist (If-Match)" })))

    const commit = (
      operation: Operation,
      key: string,
      ids: ReadonlyArray<string>,
      options: {
        contentType?: string | undefined
        metadata?: Readonly<Record<string, string>> | undefined
        ifNoneMatch?: "*" | undefined
        /** Commit only over this version of the blob (its etag, quoted or not). */
        ifMatch?: string | undefined
      },
      enc: EncryptionFields,
      ctx?: ErrorContext
    ) =>
      send(operation, key, (abortSignal) =>
        blob(key).commitBlockList([...ids], {
          abortSignal,
          blobHTTPHeaders: httpHeadersOf(options.contentType),
          metadata: encodeMetadata(options.metadata),
          ...(options.ifNoneMatch === undefined ? {} : { conditions: { ifNoneMatch: "*" } }),
          ...(options.ifMatch === undefined ? {} : { conditions: { ifMatch: `"${unquote(options.ifMatch)}"` } }),
          ...(enc.customerProvidedKey === undefined ? {} : { customerProvidedKey: enc.customerProvidedKey }),
          ...(enc.encryptionScope === undefined ? {} : { encryptionScope: enc.encryptionScope })
        }), { customerKey: enc.customerProvidedKey !== undefined, ...ctx }).pipe((self) => matching(key, options.ifMatch, self))

    const putSingle = (key: string, bytes: Buffer, options: PutOptions | undefined, enc: EncryptionFields) =>
      send("put", key, (abortSignal) =>
        blob(key).upload(bytes, bytes.length, {
          abortSignal,
          blobHTTPHeaders: httpHeadersOf(options?.contentType, bytes),
          metadata: encodeMetadata(options?.metadata),
          ...(options?.ifNoneMatch === undefined ? {} : { conditions: { ifNoneMatch: "*" } }),
          ...(options?.ifMatch === undefined ? {} : { conditions: { ifMatch: `"${unquote(options.ifMatch)}"` } }),
          ...(enc.customerProvidedKey === undefined ? {} : { customerProvidedKey: enc.customerProvidedKey }),
          ...(enc.encryptionScope === undefined ? {} : { encryptionScope: enc.encryptionScope })
        }), { customerKey: enc.customerProvidedKey !== undefined }).pipe((self) => matching(key, options?.ifMatch, self))

    const resultOf = (key: string, etag: string | undefined, size: number, r: { isServerEncrypted?: boolean | undefined; encryptionKeySha256?: string | undefined; encryptionScope?: string | undefined }, sse: ServerSideEncryption | undefined, enc: EncryptionFields): PutResult => ({
      key,
      etag: unquote(etag),
      size,
      encryption: reportedOrRequested(infoOfEncryption(r), sse, enc.encryptionScope)
    })

    const put = <E = never>(key: string, body: Stream.Stream<Uint8Array, E>, options?: PutOptions): Effect.Effect<PutResult, StoreError | UnsupportedMode | E> =>
      Effect.scoped(
        Effect.gen(function*() {
          yield* validKey(key)
          yield* checkConditions("put", key, options)
          const enc = yield* planWrite(options?.sse)
          const reader = yield* partReader(body, blockSize)
          const first = Option.getOrElse(yield* reader.next, () => Buffer.alloc(0))
          const second = first.length < blockSize ? Option.none<Buffer>() : yield* reader.next
          if (Option.isNone(second) || second.value.length === 0) {
            const r = yield* putSingle(key, first, options, enc)
            return resultOf(key, r.etag, first.length, r, options?.sse, enc)
          }
          // Blocks of an interrupted upload stay uncommitted (invisible) until Azure discards them.
          const upload = newUploadId()
          const attempt = crypto.randomBytes(3)
          const rest = Stream.repeatEffectOption(
            Effect.flatMap(Effect.mapError(reader.next, Option.some), (o) => (Option.isSome(o) && o.value.length > 0 ? Effect.succeed(o.value) : Effect.fail(Option.none<E>())))
          )
          const staged = yield* Stream.make(first, second.value).pipe(
            Stream.concat(rest),
            Stream.zipWithIndex,
            Stream.mapEffect(([bytes, i]) => {
              const id = blockId("b", upload, 0, attempt, i)
              // A staged block's buffer backs a later block (about concurrency + 1 buffers in all).
              return Effect.as(Effect.tap(stage("put", key, id, bytes, enc), () => reader.release(bytes)), { id, size: bytes.length })
            }, { concurrency }),
            Stream.runCollect
          )
          const blocks = [...staged]
          const size = blocks.reduce((n, b) => n + b.size, 0)
          const r = yield* commit("put", key, blocks.map((b) => b.id), options ?? {}, enc)
          return resultOf(key, r.etag, size, r, options?.sse, enc)
        })
      ).pipe(budget.reserve(heldByUpload(options?.contentLength, blockSize, concurrency)))

    /**
     * Without `ifMatch`, a missing key succeeds. With it, the delete carries `If-Match`, which
     * Azure checks atomically with the removal: another etag (412) or a missing blob (404) is
     * `PreconditionFailed`, and nothing is removed.
     */
    const remove = (key: string, options?: RemoveOptions): Effect.Effect<void, StoreError> =>
      Effect.zipRight(
        validKey(key),
        send("remove", key, (abortSignal) =>
          blob(key).delete({
            abortSignal,
            deleteSnapshots: "include",
            ...(options?.ifMatch === undefined ? {} : { conditions: { ifMatch: `"${unquote(options.ifMatch)}"` } })
          })).pipe(
            Effect.asVoid,
            (self) =>
              options?.ifMatch === undefined
                ? Effect.catchTag(self, "ObjectNotFound", () => Effect.void)
                : matching(key, options.ifMatch, self)
          )
      )

    type Entry = { readonly _tag: "Object"; readonly object: ListedObject } | { readonly _tag: "Prefix"; readonly prefix: string }
    const nameOf = (e: Entry) => (e._tag === "Object" ? e.object.key : e.prefix)

    /** One page of Azure's listing, sorted in UTF-8 byte order (the contract's order). */
    const window = (prefix: string, delimiter: string | undefined, marker: string | undefined, size: number) =>
      send("list", prefix, async (abortSignal) => {
        const opts = { abortSignal, ...(prefix === "" ? {} : { prefix }) }
        const pages = delimiter === undefined || delimiter === ""
          ? client.listBlobsFlat(opts).byPage({ maxPageSize: size, ...(marker === undefined ? {} : { continuationToken: marker }) })
          : client.listBlobsByHierarchy(delimiter, opts).byPage({ maxPageSize: size, ...(marker === undefined ? {} : { continuationToken: marker }) })
        const page = (await pages.next()).value as {
          continuationToken?: string
          segment: {
            blobItems: Array<{ name: string; properties: { contentLength?: number; etag?: string; lastModified: Date } }>
            blobPrefixes?: Array<{ name: string }>
          }
        } | undefined
        const entries: Array<Entry> = [
          ...(page?.segment.blobItems ?? []).map((b): Entry => ({
            _tag: "Object",
            object: { key: b.name, size: b.properties.contentLength ?? 0, etag: unquote(b.properties.etag), lastModified: b.properties.lastModified }
          })),
          ...(page?.segment.blobPrefixes ?? []).map((p): Entry => ({ _tag: "Prefix", prefix: p.name }))
        ].sort((a, b) => compareKeys(nameOf(a), nameOf(b)))
        const next = page?.continuationToken
        return { entries, next: next === undefined || next === "" ? undefined : next }
      })

    const listImpl = (options: ListOptions | undefined): Effect.Effect<ListPage, StoreError> =>
      Effect.gen(function*() {
        const prefix = options?.prefix ?? ""
        const delimiter = options?.delimiter === "" ? undefined : options?.delimiter
        const maxKeys = Math.max(1, Math.min(options?.maxKeys ?? 1000, 5000))
        const startAfter = options?.startAfter
        let token: ListToken = { s: 0 }
        if (options?.continuationToken !== undefined) {
          const t = decodeToken(options.continuationToken)
          if (t === undefined) {
            return yield* new ProviderError({ provider: "azure", operation: "list", key: prefix, code: "InvalidContinuationToken", detail: "the continuation token is not one this driver issued" })
          }
          token = t
        }
        // Pages are windows of at least 1000 entries, re-sorted in UTF-8 byte order; a small
        // maxKeys is served from the same window, so the order is exact within each window.
        const size = Math.max(maxKeys, 1000)
        const out: Array<Entry> = []
        for (;;) {
          const w = yield* window(prefix, delimiter, token.m, size)
          let i = token.s
          for (; i < w.entries.length && out.length < maxKeys; i++) {
            const e = w.entries[i]!
            if (startAfter !== undefined && compareKeys(nameOf(e), startAfter) <= 0) {
              // A group containing startAfter is still listed when keys after it fall in it (S3).
              // A startAfter that is the group itself passes over it.
              if (!(e._tag === "Prefix" && startAfter.startsWith(e.prefix) && startAfter !== e.prefix)) continue
              const inGroup = yield* listImpl({ prefix: e.prefix, startAfter, maxKeys: 1 })
              if (inGroup.objects.length === 0) continue
            }
            out.push(e)
          }
          if (i < w.entries.length) {
            token = { m: token.m, s: i }
            return pageOf(out, token)
          }
          if (w.next === undefined) return pageOf(out, undefined)
          token = { m: w.next, s: 0 }
          if (out.length >= maxKeys) return pageOf(out, token)
        }
      })

    const pageOf = (entries: ReadonlyArray<Entry>, token: ListToken | undefined): ListPage => ({
      objects: entries.flatMap((e) => (e._tag === "Object" ? [e.object] : [])),
      commonPrefixes: entries.flatMap((e) => (e._tag === "Prefix" ? [e.prefix] : [])),
      ...(token === undefined ? {} : { continuationToken: encodeToken(token) })
    })

    const list = (options?: ListOptions): Effect.Effect<ListPage, StoreError> => listImpl(options)

    // -- multipart: staged blocks named by the upload id ------------------------------------------

    const uploadOf = (operation: Operation, upload: MultipartUpload): Effect.Effect<UploadState, StoreError> => {
      const s = parseUploadId(upload.uploadId)
      return s === undefined ? Effect.fail(new PreconditionFailed({ key: upload.key, reason: "unknown upload id" })) : Effect.succeed(s)
    }

    /** The upload's staged blocks; fails when it was never created, was aborted or is complete. */
    const openBlocks = (operation: Operation, upload: MultipartUpload, s: UploadState) =>
      Effect.gen(function*() {
        const list = yield* send(operation, upload.key, (abortSignal) => blob(upload.key).getBlockList("uncommitted", { abortSignal })).pipe(
          Effect.catchTag("ObjectNotFound", () => Effect.succeed({ uncommittedBlocks: [] as Array<{ name: string; size: number }> }))
        )
        const blocks = new Map((list.uncommittedBlocks ?? []).map((b) => [b.name, b.size] as const))
        if (!blocks.has(markerId("o", s.id)) || blocks.has(markerId("a", s.id))) {
          return yield* new PreconditionFailed({ key: upload.key, reason: "no such upload (aborted, completed, or overwritten by another write)" })
        }
        return blocks
      })

    const createMultipart = (key: string, options?: PutOptions): Effect.Effect<MultipartUpload, StoreError | UnsupportedMode> =>
      Effect.gen(function*() {
        yield* validKey(key)
        yield* checkConditions("createMultipart", key, options)
        const enc = yield* planWrite(options?.sse)
        const id = newUploadId()
        yield* stage("createMultipart", key, markerId("o", id), Buffer.from("o"), enc)
        return {
          key,
          uploadId: formatUploadId({
            id,
            contentType: options?.contentType,
            metadata: options?.metadata,
            scope: enc.encryptionScope,
            ifNoneMatch: options?.ifNoneMatch,
            ifMatch: options?.ifMatch === undefined ? undefined : unquote(options.ifMatch)
          })
        }
      })

    const encOf = (s: UploadState, sse: ServerSideEncryption | undefined): EncryptionFields => ({
      ...(sse?._tag === "SseC" ? { customerProvidedKey: cpkOf(sse) } : {}),
      ...(s.scope === undefined ? {} : { encryptionScope: s.scope })
    })

    const uploadPart = <E = never>(
      upload: MultipartUpload,
      partNumber: number,
      body: Stream.Stream<Uint8Array, E>,
      options?: { readonly contentLength?: number | undefined; readonly sse?: ServerSideEncryption | undefined }
    ): Effect.Effect<CompletedPart, StoreError | E> =>
      Effect.scoped(
        Effect.gen(function*() {
          if (!Number.isSafeInteger(partNumber) || partNumber < 1 || partNumber > limits.maxParts) {
            return yield* new ProviderError({ provider: "azure", operation: "uploadPart", key: upload.key, code: "InvalidPartNumber", detail: `part numbers are 1 to ${limits.maxParts}` })
          }
          const s = yield* uploadOf("uploadPart", upload)
          yield* openBlocks("uploadPart", upload, s)
          const enc = encOf(s, options?.sse)
          const attempt = crypto.randomBytes(3)
          const reader = yield* partReader(body, blockSize)
          const blocks = Stream.repeatEffectOption(
            Effect.flatMap(Effect.mapError(reader.next, Option.some), (o) => (Option.isSome(o) && o.value.length > 0 ? Effect.succeed(o.value) : Effect.fail(Option.none<E>())))
          )
          const sizes = yield* blocks.pipe(
            Stream.zipWithIndex,
            Stream.mapEffect(([bytes, i]) =>
              Effect.as(Effect.tap(stage("uploadPart", upload.key, blockId("b", s.id, partNumber, attempt, i), bytes, enc), () => reader.release(bytes)), bytes.length), { concurrency }),
            Stream.runCollect
          )
          const size = [...sizes].reduce((n, b) => n + b, 0)
          if (options?.contentLength !== undefined && size !== options.contentLength) {
            return yield* new ProviderError({
              provider: "azure",
              operation: "uploadPart",
              key: upload.key,
              code: "BodyLengthMismatch",
              detail: `the part body has ${size} bytes, not ${options.contentLength}`
            })
          }
          return { partNumber, etag: partEtag(attempt, sizes.length), size }
        })
      ).pipe(budget.reserve(heldByUpload(options?.contentLength, blockSize, concurrency)))

    const completeMultipart = (
      upload: MultipartUpload,
      parts: ReadonlyArray<CompletedPart>,
      options?: CompleteOptions
    ): Effect.Effect<PutResult, StoreError> =>
      Effect.gen(function*() {
        yield* checkConditions("completeMultipart", upload.key, options)
        const s = yield* uploadOf("completeMultipart", upload)
        // The conditions given to `createMultipart` (inside the upload id) and now must both hold.
        const conditions = yield* completionConditions("azure", upload.key, s, options)
        const staged = yield* openBlocks("completeMultipart", upload, s)
        const ids: Array<string> = []
        let size = 0
        let last = 0
        for (const p of parts) {
          const e = parsePartEtag(p.etag)
          if (e === undefined || p.partNumber <= last) {
            return yield* new PreconditionFailed({ key: upload.key, reason: `part ${p.partNumber} is out of order or has an etag this upload did not issue` })
          }
          last = p.partNumber
          for (let i = 0; i < e.blocks; i++) {
            const id = blockId("b", s.id, p.partNumber, e.attempt, i)
            const n = staged.get(id)
            if (n === undefined) return yield* new PreconditionFailed({ key: upload.key, reason: `part ${p.partNumber} was not uploaded` })
            ids.push(id)
            size += n
          }
        }
        const enc = encOf(s, options?.sse)
        // Azure checks the conditions atomically with the commit; a refused commit keeps the
        // uncommitted blocks, so the upload can be completed again or aborted.
        const r = yield* commit("completeMultipart", upload.key, ids, { ...s, ...conditions }, enc, { commit: true })
        return resultOf(upload.key, r.etag, size, r, options?.sse, enc)
      })

    const abortMultipart = (upload: MultipartUpload): Effect.Effect<void, StoreError> =>
      Effect.gen(function*() {
        const s = yield* uploadOf("abortMultipart", upload)
        // Staged blocks cannot be deleted one by one: a tombstone block ends the upload, and
        // Azure discards every uncommitted block with the next commit or after a week.
        const open = yield* Effect.either(openBlocks("abortMultipart", upload, s))
        if (Either.isLeft(open)) return
        yield* stage("abortMultipart", upload.key, markerId("a", s.id), Buffer.from("a"), {})
      })

    const copy = (source: string, destination: string, options?: CopyOptions): Effect.Effect<PutResult, StoreError | UnsupportedMode> =>
      Effect.gen(function*() {
        yield* validKey(source)
        yield* validKey(destination)
        const enc = yield* planWrite(options?.sse)
        const headSource = head(source, options?.sourceSse === undefined ? undefined : { sse: options.sourceSse })
        const src = yield* headSource
        // `ifSourceMatch`. Put Block From URL's source conditions are not in the SDK's client, so:
        // onto the same key, the commit itself is conditional on that version (`If-Match`), which
        // Azure checks atomically; to another key, the source is read again after its blocks were
        // staged, and an unchanged etag (every write changes it) proves they are that version's.
        const ifMatch = options?.ifSourceMatch === undefined ? undefined : unquote(options.ifSourceMatch)
        const sourceChanged = () => new PreconditionFailed({ key: source, reason: "the source's etag does not match (it was replaced)" })
        if (ifMatch !== undefined && src.etag !== ifMatch) return yield* sourceChanged()
        const sourceCpk = cpkOf(options?.sourceSse)
        const url = yield* Effect.promise(() => clients.sourceUrl(source))
        const ranges = Array.from({ length: Math.ceil(src.size / copyBlockSize) }, (_, i) => ({
          offset: i * copyBlockSize,
          count: Math.min(src.size, (i + 1) * copyBlockSize) - i * copyBlockSize
        }))
        const upload = newUploadId()
        const attempt = crypto.randomBytes(3)
        const ids = yield* Effect.forEach(ranges, (r, i) => {
          const id = blockId("b", upload, 0, attempt, i)
          return Effect.as(
            send("copy", source, (abortSignal) =>
              blob(destination).stageBlockFromURL(id, url, r.offset, r.count, {
                abortSignal,
                ...(sourceCpk === undefined ? {} : { sourceCustomerProvidedKey: sourceCpk }),
                ...(enc.customerProvidedKey === undefined ? {} : { customerProvidedKey: enc.customerProvidedKey }),
                ...(enc.encryptionScope === undefined ? {} : { encryptionScope: enc.encryptionScope })
              }), { customerKey: sourceCpk !== undefined || enc.customerProvidedKey !== undefined }),
            id
          )
        }, { concurrency })
        const sameKey = source === destination
        if (ifMatch !== undefined && !sameKey) {
          const again = yield* headSource.pipe(Effect.catchTag("ObjectNotFound", () => Effect.fail(sourceChanged())))
          if (again.etag !== ifMatch) return yield* sourceChanged()
        }
        const r = yield* commit("copy", destination, ids, {
          contentType: options?.contentType ?? src.contentType,
          metadata: options?.metadata ?? src.metadata,
          ...(ifMatch !== undefined && sameKey ? { ifMatch } : {})
        }, enc).pipe(
          Effect.catchTag("PreconditionFailed", (e) => (ifMatch !== undefined && sameKey ? Effect.fail(sourceChanged()) : Effect.fail(e)))
        )
        return resultOf(destination, r.etag, src.size, r, options?.sse, enc)
      })

    return AzureBlobObjectStore.of({
      provider: "azure",
      bucket: container,
      location: `az://${container}`,
      nativeModes,
      limits,
      client,
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
 * Creates the container when it does not exist (tests, `bucket create`), optionally with a
 * default encryption scope that blobs cannot override.
 *
 * @since 0.1.0
 * @category containers
 */
export const createContainer = (
  client: ContainerClient,
  options?: { readonly defaultEncryptionScope?: string | undefined; readonly preventEncryptionScopeOverride?: boolean | undefined }
): Effect.Effect<void, StoreError> =>
  Effect.tryPromise({
    try: (abortSignal) =>
      client.createIfNotExists({
        abortSignal,
        ...(options?.defaultEncryptionScope === undefined
          ? {}
          : {
            containerEncryptionScope: {
              defaultEncryptionScope: options.defaultEncryptionScope,
              preventEncryptionScopeOverride: options.preventEncryptionScopeOverride ?? false
            }
          })
      }),
    catch: (e) => toStoreError("createContainer", client.containerName, e)
  }).pipe(Effect.asVoid)

/**
 * A layer providing both `AzureBlobObjectStore` and the core `ObjectStore`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (config: AzureConfig): Layer.Layer<AzureBlobObjectStore | ObjectStore> =>
  Layer.scopedContext(Effect.map(make(config), (s) => Context.make(AzureBlobObjectStore, s).pipe(Context.add(ObjectStore, s))))

/**
 * As {@link layer}, reading its configuration, e.g.
 * `layerConfig({ container: Config.string("CONTAINER"), accountUrl: Config.string("ACCOUNT_URL"), credentials: … })`
 * under `ConfigProvider.nested("OBJCRYPT_AZURE")`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (config: Config.Config.Wrap<AzureConfig>): Layer.Layer<AzureBlobObjectStore | ObjectStore, ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(config), layer))
