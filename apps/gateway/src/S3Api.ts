/**
 * The S3 REST API over the gateway's buckets: request parsing (path-style addressing), SigV4
 * authentication, bucket authorization, dispatch to the operations and S3's XML responses.
 *
 * @since 0.1.0
 */
import type * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpMultipart from "@effect/platform/Multipart"
import * as ClientSide from "@objcrypt/core/ClientSide"
import type { CustomerKey } from "@objcrypt/core/CustomerKey"
import type { StoreError } from "@objcrypt/core/Errors"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import { Context, Effect, Either, Exit, Option, Scope, Stream } from "effect"
import * as crypto from "node:crypto"
import * as Acl from "./Acl.js"
import * as BucketSubresources from "./BucketSubresources.js"
import type { BucketRecord } from "./Buckets.js"
import { Buckets } from "./Buckets.js"
import { decodeBody } from "./internal/body.js"
import type { DecodedBody } from "./internal/body.js"
import { toS3 } from "./internal/errors.js"
import * as Etag from "./internal/etag.js"
import * as Http from "./internal/http.js"
import * as Checksums from "./Checksums.js"
import * as Multipart from "./Multipart.js"
import * as ObjectAttributes from "./ObjectAttributes.js"
import * as PostPolicy from "./PostPolicy.js"
import { errors, S3Error } from "./S3Error.js"
import * as SigV4 from "./SigV4.js"
import * as Sse from "./Sse.js"
import * as Tagging from "./Tagging.js"
import * as Xml from "./Xml.js"

/**
 * What the API needs from the deployment.
 *
 * @since 0.1.0
 * @category tags
 */
export class ApiSettings extends Context.Tag("@objcrypt/gateway/ApiSettings")<ApiSettings, {
  readonly users: ReadonlyArray<SigV4.User>
  readonly region: string
  /** Whether requests arrive over TLS. */
  readonly secure: boolean
  readonly allowPlainHttpSseC: boolean
  /** Smallest part but the last, in plaintext bytes. @default 5 MiB */
  readonly minPartSize: number
  /**
   * Base domains of virtual-hosted-style addressing: a request whose Host is `<bucket>.<domain>`
   * (port ignored) addresses that bucket and its path is the key. Path style works on every other
   * Host, including a bare `<domain>`. @default []
   */
  readonly virtualHostDomains?: ReadonlyArray<string> | undefined
}>() {}

type Store = ObjectStore.ObjectStore["Type"]

interface Request {
  readonly method: string
  readonly bucket: string | undefined
  readonly key: string | undefined
  readonly query: ReadonlyMap<string, string>
  readonly headers: Readonly<Record<string, string>>
  readonly user: SigV4.User
  readonly payload: SigV4.Payload
  readonly raw: HttpServerRequest.HttpServerRequest
  /** Addressed as `bucket.host/key` rather than `host/bucket/key`. */
  readonly virtualHosted: boolean
}

/**
 * The absolute URL of an object as the client addressed the gateway (CompleteMultipartUpload's and
 * POST Object's `Location`): its scheme and Host, the bucket in the path unless virtual-hosted,
 * the key URI-encoded.
 */
const objectUrl = (secure: boolean, host: string | undefined, virtualHosted: boolean, bucket: string, key: string) =>
  `${secure ? "https" : "http"}://${host ?? "localhost"}${virtualHosted ? "" : `/${bucket}`}/${SigV4.uriEncode(key).replace(/%2F/g, "/")}`

const USER_HEADERS = ["cache-control", "content-disposition", "content-encoding", "content-language", "expires"] as const
const MAX_XML = 1024 * 1024

const has = (r: Request, q: string) => r.query.has(q)

/**
 * Reads an XML request document. On CompleteMultipartUpload the `x-amz-checksum-*` headers are
 * the object's checksum, not the document's (`objectChecksumHeaders`).
 */
const readSmallBody = (r: Request, options?: { readonly objectChecksumHeaders?: boolean }): Effect.Effect<string, S3Error> =>
  Effect.gen(function*() {
    const headers = options?.objectChecksumHeaders === true
      ? Object.fromEntries(Object.entries(r.headers).filter(([k]) => !/^x-amz-checksum-(?!algorithm$|type$)/.test(k) || k === "x-amz-checksum-type"))
      : r.headers
    const { body } = yield* decodeBody(r.raw.stream, headers, r.payload, () => errors.incompleteBody("the request body could not be read"))
    const chunks: Array<Uint8Array> = []
    let n = 0
    yield* Stream.runForEach(body, (c) => {
      n += c.length
      if (n > MAX_XML) return Effect.fail(errors.malformedXml("the XML document is too large"))
      chunks.push(c)
      return Effect.void
    })
    return Buffer.concat(chunks).toString("utf8")
  })

const objectHeaders = (info: ObjectStore.ObjectInfo, etag: string, customerKey: CustomerKey | undefined): Record<string, string> => {
  const h: Record<string, string> = {
    "etag": `"${etag}"`,
    "last-modified": Http.httpDate(Tagging.lastModified(info)),
    "accept-ranges": "bytes",
    "content-type": info.contentType ?? "binary/octet-stream",
    ...Sse.responseHeaders(info.metadata, customerKey),
    ...Tagging.countHeader(info.metadata)
  }
  for (const [k, v] of Object.entries(info.metadata)) {
    if (k.startsWith(Sse.Meta.userPrefix)) h[`x-amz-meta-${k.slice(Sse.Meta.userPrefix.length)}`] = v
    else if (k.startsWith(Sse.Meta.headerPrefix)) h[k.slice(Sse.Meta.headerPrefix.length)] = v
  }
  return h
}

/** S3's storage classes; the gateway stores every object in its backend's one class: STANDARD. */
const STORAGE_CLASSES = ["STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER", "DEEP_ARCHIVE", "OUTPOSTS", "GLACIER_IR", "SNOW", "EXPRESS_ONEZONE"]

/** A write's `x-amz-storage-class`: STANDARD (or none) is what the gateway stores; any other is refused, not silently changed. */
const checkStorageClass = (headers: Readonly<Record<string, string>>): Either.Either<void, S3Error> => {
  const sc = headers["x-amz-storage-class"]
  if (sc === undefined || sc === "STANDARD") return Either.void
  return Either.left(
    STORAGE_CLASSES.includes(sc)
      ? errors.invalidStorageClass(`the gateway stores objects in the STANDARD storage class only, not ${sc}`)
      : errors.invalidStorageClass("the storage class you specified is not valid")
  )
}

const REDIRECT = "x-amz-website-redirect-location"

const userMetadata = (headers: Readonly<Record<string, string>>): Either.Either<Record<string, string>, S3Error> => {
  const sc = checkStorageClass(headers)
  if (Either.isLeft(sc)) return Either.left(sc.left)
  const out: Record<string, string> = {}
  const redirect = headers[REDIRECT]
  if (redirect !== undefined) {
    // S3: an absolute path or an http(s) URL, at most 2 KB.
    if (!/^(\/|https?:\/\/)/.test(redirect) || Buffer.byteLength(redirect) > 2048) {
      return Either.left(errors.invalidRedirectLocation("the website redirect location must start with '/', 'http://' or 'https://' and be at most 2 KB"))
    }
    out[`${Sse.Meta.headerPrefix}${REDIRECT}`] = redirect
  }
  for (const [k, v] of Object.entries(headers)) {
    if (k.startsWith("x-amz-meta-")) {
      const name = k.slice("x-amz-meta-".length)
      if (!ObjectStore.isMetadataKey(name)) return Either.left(errors.invalidArgument(`metadata name ${name} is not supported (use a-z, 0-9, '.', '_', '-')`))
      out[`${Sse.Meta.userPrefix}${name}`] = v
    }
  }
  for (const h of USER_HEADERS) if (headers[h] !== undefined && !(h === "content-encoding" && headers[h] === "aws-chunked")) {
    const v = headers[h]!.split(",").map((s) => s.trim()).filter((s) => s !== "aws-chunked").join(", ")
    if (v !== "") out[`${Sse.Meta.headerPrefix}${h}`] = v
  }
  return Either.right(out)
}

/**
 * Handles one S3 request.
 *
 * @since 0.1.0
 * @category handlers
 */
export const handle: Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest | ApiSettings | Buckets | Sse.GatewayKeys> =
  Effect.gen(function*() {
    const raw = yield* HttpServerRequest.HttpServerRequest
    const requestId = crypto.randomBytes(8).toString("hex").toUpperCase()
    return yield* route(raw).pipe(
      Effect.catchAll((e) => Effect.succeed(Http.errorResponse(toS3(e), requestId, raw.method))),
      Effect.catchAllDefect(() => Effect.succeed(Http.errorResponse(errors.internalError("we encountered an internal error; please try again"), requestId, raw.method))),
      Effect.map((res) => ({ ...res, headers: { ...res.headers, "x-amz-request-id": requestId } }) as HttpServerResponse.HttpServerResponse)
    )
  })

const decodeSegment = (s: string) => {
  try {
    return decodeURIComponent(s)
  } catch {
    return undefined
  }
}

/**
 * The bucket and key a request addresses: virtual-hosted style when its Host is
 * `<bucket>.<domain>` for a configured domain, path style otherwise.
 *
 * @since 0.1.0
 * @category routing
 */
export const address = (
  rawPath: string,
  host: string | undefined,
  domains: ReadonlyArray<string>
): Either.Either<{ readonly bucket: string | undefined; readonly key: string | undefined; readonly virtualHosted: boolean }, S3Error> => {
  const hostname = (host ?? "").trim().toLowerCase().replace(/:\d+$/, "").replace(/\.$/, "")
  const segments = rawPath.replace(/^\//, "")
  for (const d of domains) {
    const domain = d.toLowerCase().replace(/\.$/, "")
    if (domain !== "" && hostname.endsWith(`.${domain}`)) {
      const bucket = hostname.slice(0, -(domain.length + 1))
      const key = segments === "" ? undefined : decodeSegment(segments)
      if (segments !== "" && key === undefined) return Either.left(errors.invalidArgument("malformed path"))
      return Either.right({ bucket, key, virtualHosted: true })
    }
  }
  const slash = segments.indexOf("/")
  const bucket = segments === "" ? undefined : decodeSegment(slash < 0 ? segments : segments.slice(0, slash))
  const key = slash < 0 || slash === segments.length - 1 ? undefined : decodeSegment(segments.slice(slash + 1))
  if ((segments !== "" && bucket === undefined) || (slash >= 0 && slash < segments.length - 1 && key === undefined)) {
    return Either.left(errors.invalidArgument("malformed path"))
  }
  return Either.right({ bucket, key, virtualHosted: false })
}

const route = (raw: HttpServerRequest.HttpServerRequest) =>
  Effect.gen(function*() {
    const settings = yield* ApiSettings
    const qi = raw.url.indexOf("?")
    const rawPath = qi < 0 ? raw.url : raw.url.slice(0, qi)
    const rawQuery = qi < 0 ? "" : raw.url.slice(qi + 1)
    const headers: Record<string, string> = {}
    for (const [k, v] of Object.entries(raw.headers)) headers[k.toLowerCase()] = v
    const addressed = address(rawPath, headers["host"], settings.virtualHostDomains ?? [])
    if (Either.isLeft(addressed)) return yield* addressed.left
    const { bucket, key, virtualHosted } = addressed.right
    // Browser POST uploads authenticate with their signed policy, not a request signature.
    if (
      raw.method === "POST" && bucket !== undefined && key === undefined && headers["authorization"] === undefined &&
      (headers["content-type"] ?? "").toLowerCase().startsWith("multipart/form-data")
    ) {
      return yield* postObject(raw, bucket, virtualHosted)
    }
    const auth = SigV4.verify(
      { method: raw.method, rawPath, rawQuery, headers, now: new Date() },
      (id) => settings.users.find((u) => u.accessKeyId === id)
    )
    if (Either.isLeft(auth)) return yield* auth.left
    const pairs = Either.getOrThrow(SigV4.parseQuery(rawQuery))
    const query = new Map<string, string>()
    for (const [k, v] of pairs) if (!query.has(k)) query.set(k, v)
    const r: Request = { method: raw.method, bucket, key, query, headers, user: auth.right.user, payload: auth.right.payload, raw, virtualHosted }
    if (bucket === undefined) {
      if (r.method === "GET") return yield* listBuckets(r)
      return yield* errors.methodNotAllowed("the specified method is not allowed against this resource")
    }
    if (!SigV4.mayUse(r.user, bucket)) return yield* errors.accessDenied("access denied", `/${bucket}`)
    if (key === undefined) return yield* bucketOperation(r, bucket)
    if (Buffer.byteLength(key) > 1024) return yield* errors.keyTooLong("your key is too long")
    return yield* objectOperation(r, bucket, key)
  })

/** Object sub-resources of features the gateway does not have (no S3 answer fits "none configured"). */
const UNSUPPORTED_OBJECT_SUBRESOURCES = ["restore", "select", "torrent"]
/** Bucket subresources with their own handlers (never a bucket create or delete). */
const BUCKET_SUBRESOURCES = ["encryption", "tagging", "versioning", "acl"]

const requireBucket = (name: string) =>
  Effect.flatMap(Buckets, (b) => b.get(name)).pipe(
    Effect.flatMap((rec) => rec === undefined ? Effect.fail(errors.noSuchBucket("the specified bucket does not exist", `/${name}`)) : Effect.succeed(rec))
  )

const listBuckets = (r: Request) =>
  Effect.gen(function*() {
    const buckets = yield* Buckets
    const all = (yield* buckets.list).filter((b) => SigV4.mayUse(r.user, b.name))
    return Http.xml(
      Xml.el("ListAllMyBucketsResult", [
        Xml.el("Owner", [Xml.el("ID", r.user.name), Xml.el("DisplayName", r.user.name)]),
        Xml.el("Buckets", all.map((b) => Xml.el("Bucket", [Xml.el("Name", b.name), Xml.el("CreationDate", b.created)])))
      ], Xml.S3_NS)
    )
  })

/**
 * S3's bucket naming rules: 3–63 of a-z, 0-9, '.', '-', starting and ending with a letter or
 * digit, no '..', not an IP address, none of the reserved prefixes and suffixes.
 */
const validBucketName = (name: string): boolean =>
  /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(name) && !name.includes("..") && !/^\d+\.\d+\.\d+\.\d+$/.test(name) &&
  !["xn--", "sthree-", "amzn-s3-demo-"].some((p) => name.startsWith(p)) &&
  !["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"].some((x) => name.endsWith(x))

/** CreateBucket's optional body: well-formed, and a LocationConstraint (if any) naming this gateway's region. */
const checkCreateBucketConfiguration = (body: string, region: string): Effect.Effect<void, S3Error> => {
  if (body.trim() === "") return Effect.void
  const doc = Xml.parse(body)
  if (doc === undefined || Xml.localName(doc) !== "CreateBucketConfiguration") {
    return Effect.fail(errors.malformedXml("the XML you provided was not well-formed or did not validate against our published schema"))
  }
  const constraint = Xml.childText(doc, "LocationConstraint")?.trim()
  return constraint === undefined || constraint === "" || constraint === region
    ? Effect.void
    : Effect.fail(errors.illegalLocationConstraint(`the ${constraint} location constraint is incompatible for the region specific endpoint this request was sent to (${region})`))
}

const bucketOperation = (r: Request, name: string) =>
  Effect.gen(function*() {
    const buckets = yield* Buckets
    // Configurations the gateway never holds: S3's answers for a bucket without them.
    const named = BucketSubresources.NAMED_CONFIGURATIONS.find((s) => has(r, s))
    const unconfigured = BucketSubresources.NAMES.find((s) => has(r, s))
    if (named !== undefined || unconfigured !== undefined) {
      yield* requireBucket(name)
      const a = named !== undefined
        ? BucketSubresources.answerNamed(r.method, named, name, r.query.get("id"))
        : BucketSubresources.answer(r.method, unconfigured ?? "", name)
      return a._tag === "Document" ? Http.xml(a.xml) : a._tag === "NoContent" ? Http.empty(204) : yield* Effect.fail(a.error)
    }
    if (r.method === "PUT" && !BUCKET_SUBRESOURCES.some((q) => has(r, q))) {
      if (!validBucketName(name)) return yield* errors.invalidBucketName("the specified bucket is not valid", `/${name}`)
      yield* Acl.checkHeaders(r.headers, r.user.name)
      const region = (yield* ApiSettings).region
      yield* checkCreateBucketConfiguration(yield* readSmallBody(r), region)
      const created = yield* buckets.create(name, r.user.name)
      if (!created) {
        const existing = yield* buckets.get(name)
        if (existing !== undefined && existing.owner !== r.user.name) {
          return yield* errors.bucketAlreadyExists("the requested bucket name is not available", `/${name}`)
        }
        // S3 answers 200 to its owner re-creating a bucket in us-east-1 (legacy), 409 elsewhere.
        if (region !== "us-east-1") {
          return yield* errors.bucketAlreadyOwnedByYou("your previous request to create the named bucket succeeded and you already own it", `/${name}`)
        }
      }
      return Http.empty(200, { location: `/${name}` })
    }
    const record = yield* requireBucket(name)
    if (has(r, "tagging")) return yield* bucketTagging(r, record)
    if (has(r, "versioning")) return yield* bucketVersioning(r)
    if (has(r, "acl")) return yield* bucketAcl(r, record)
    switch (r.method) {
      case "HEAD":
        return Http.empty(200, { "x-amz-bucket-region": (yield* ApiSettings).region })
      case "GET": {
        if (has(r, "encryption")) return getBucketEncryption(record)
        if (has(r, "uploads")) return yield* listUploads(r, record)
        if (has(r, "versions")) return yield* listVersions(r, record)
        if (has(r, "location")) {
          const region = (yield* ApiSettings).region
          return Http.xml(Xml.el("LocationConstraint", region === "us-east-1" ? "" : region, Xml.S3_NS))
        }
        return yield* listObjects(r, record)
      }
      case "PUT":
        return yield* putBucketEncryption(r, record)
      case "DELETE": {
        if (has(r, "encryption")) {
          const { encryption: _, ...rest } = record
          yield* buckets.update(rest)
          return Http.empty(204)
        }
        const removed = yield* buckets.remove(name)
        if (!removed) return yield* errors.bucketNotEmpty("the bucket you tried to delete is not empty", `/${name}`)
        return Http.empty(204)
      }
      case "POST":
        if (has(r, "delete")) return yield* deleteObjects(r, record)
        return yield* errors.methodNotAllowed("the specified method is not allowed against this resource")
      default:
        return yield* errors.methodNotAllowed("the specified method is not allowed against this resource")
    }
  })

const methodNotAllowed = () => errors.methodNotAllowed("the specified method is not allowed against this resource")

/** Put/Get/DeleteBucketTagging: the tag set lives in the bucket record. */
const bucketTagging = (r: Request, record: BucketRecord) =>
  Effect.gen(function*() {
    const buckets = yield* Buckets
    switch (r.method) {
      case "GET": {
        if (record.tags === undefined || record.tags.length === 0) return yield* new S3Error({ code: "NoSuchTagSet", status: 404, detail: "The TagSet does not exist", resource: `/${record.name}` })
        return Http.xml(Tagging.toXml(record.tags))
      }
      case "PUT": {
        const tags = yield* Tagging.parseXml(yield* readSmallBody(r), "bucket")
        const { tags: _, ...rest } = record
        yield* buckets.update(tags.length === 0 ? rest : { ...rest, tags })
        return Http.empty(204)
      }
      case "DELETE": {
        const { tags: _, ...rest } = record
        if (record.tags !== undefined) yield* buckets.update(rest)
        return Http.empty(204)
      }
      default:
        return yield* methodNotAllowed()
    }
  })

/** Versioning is never enabled: Get answers an empty configuration, Put accepts only `Suspended`. */
const bucketVersioning = (r: Request) =>
  Effect.gen(function*() {
    switch (r.method) {
      case "GET":
        return Http.xml(Xml.el("VersioningConfiguration", [], Xml.S3_NS))
      case "PUT": {
        const doc = Xml.parse(yield* readSmallBody(r))
        if (doc === undefined || Xml.localName(doc) !== "VersioningConfiguration") {
          return yield* errors.malformedXml("the XML you provided was not well-formed or did not validate against our published schema")
        }
        const status = Xml.childText(doc, "Status")?.trim()
        const mfa = Xml.childText(doc, "MfaDelete")?.trim()
        if ((status !== undefined && status !== "Enabled" && status !== "Suspended") || (mfa !== undefined && mfa !== "Enabled" && mfa !== "Disabled")) {
          return yield* errors.malformedXml("the XML you provided was not well-formed or did not validate against our published schema")
        }
        if (status === "Enabled") return yield* errors.notImplemented("bucket versioning is not implemented: the gateway keeps only the current version of each object")
        if (mfa === "Enabled" || r.headers["x-amz-mfa"] !== undefined) return yield* errors.notImplemented("MFA delete is not implemented")
        return Http.empty(200)
      }
      default:
        return yield* methodNotAllowed()
    }
  })

/** Get/PutBucketAcl: the bucket owner has FULL_CONTROL, nobody else is granted anything. */
const bucketAcl = (r: Request, record: BucketRecord) =>
  Effect.gen(function*() {
    switch (r.method) {
      case "GET":
        return Http.xml(Acl.toXml(record.owner))
      case "PUT":
        yield* Acl.checkPut(r.headers, yield* readSmallBody(r), record.owner)
        return Http.empty(200)
      default:
        return yield* methodNotAllowed()
    }
  })

const getBucketEncryption = (record: BucketRecord) => {
  const e = record.encryption ?? { algorithm: "AES256" as const }
  return Http.xml(
    Xml.el("ServerSideEncryptionConfiguration", [
      Xml.el("Rule", [
        Xml.el("ApplyServerSideEncryptionByDefault", [
          Xml.el("SSEAlgorithm", e.algorithm),
          e.kmsKeyId === undefined ? "" : Xml.el("KMSMasterKeyID", e.kmsKeyId)
        ]),
        Xml.el("BucketKeyEnabled", e.bucketKeyEnabled ?? false)
      ])
    ], Xml.S3_NS)
  )
}

const putBucketEncryption = (r: Request, record: BucketRecord) =>
  Effect.gen(function*() {
    const doc = Xml.parse(yield* readSmallBody(r))
    if (doc === undefined || Xml.localName(doc) !== "ServerSideEncryptionConfiguration") {
      return yield* errors.malformedXml("the XML you provided was not well-formed or did not validate against our published schema")
    }
    const rules = Xml.children(doc, "Rule")
    if (rules.length !== 1) return yield* errors.malformedXml("exactly one Rule is required")
    const apply = Xml.children(rules[0]!, "ApplyServerSideEncryptionByDefault")[0]
    const algorithm = apply === undefined ? undefined : Xml.childText(apply, "SSEAlgorithm")?.trim()
    if (algorithm !== "AES256" && algorithm !== "aws:kms" && algorithm !== "aws:kms:dsse") {
      return yield* errors.malformedXml("SSEAlgorithm must be AES256, aws:kms or aws:kms:dsse")
    }
    const kmsKeyId = apply === undefined ? undefined : Xml.childText(apply, "KMSMasterKeyID")?.trim()
    if (kmsKeyId !== undefined && algorithm === "AES256") {
      return yield* errors.invalidArgument("a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms")
    }
    if (kmsKeyId !== undefined) yield* (yield* Sse.GatewayKeys).checkKmsKey(kmsKeyId)
    const bke = Xml.childText(rules[0]!, "BucketKeyEnabled")?.trim()
    if (bke !== undefined && bke !== "true" && bke !== "false") return yield* errors.malformedXml("BucketKeyEnabled must be true or false")
    yield* (yield* Buckets).update({
      ...record,
      encryption: {
        algorithm,
        ...(kmsKeyId === undefined || kmsKeyId === "" ? {} : { kmsKeyId }),
        ...(bke === undefined ? {} : { bucketKeyEnabled: bke === "true" })
      }
    })
    return Http.empty(200)
  })

/** The parameters ListObjects (v1, v2) and ListObjectVersions share, checked as S3 checks them. */
const listParams = (r: Request) =>
  Effect.gen(function*() {
    const maxKeysText = r.query.get("max-keys")
    if (maxKeysText !== undefined && !/^\d+$/.test(maxKeysText)) return yield* errors.invalidArgument("provided max-keys not an integer or within integer range")
    const encode = r.query.get("encoding-type") === "url"
    if (r.query.has("encoding-type") && !encode) return yield* errors.invalidArgument("invalid encoding method specified in request")
    return {
      maxKeys: Math.min(1000, maxKeysText === undefined ? 1000 : Number(maxKeysText)),
      prefix: r.query.get("prefix") ?? "",
      delimiter: r.query.get("delimiter") || undefined,
      encode,
      enc: (s: string) => (encode ? SigV4.uriEncode(s).replace(/%2F/g, "/") : s)
    }
  })

const listObjects = (r: Request, record: BucketRecord) =>
  Effect.gen(function*() {
    const store = yield* (yield* Buckets).store(record.name)
    const v2 = r.query.get("list-type") === "2"
    if (r.query.has("list-type") && !v2) return yield* errors.invalidArgument("invalid list-type")
    const { maxKeys, prefix, delimiter, encode, enc } = yield* listParams(r)
    const token = v2 ? r.query.get("continuation-token") : undefined
    let continuation: string | undefined
    if (token !== undefined) {
      try {
        continuation = Buffer.from(token, "base64url").toString("utf8")
      } catch {
        return yield* errors.invalidArgument("the continuation token provided is incorrect")
      }
    }
    const startAfter = v2 ? r.query.get("start-after") : r.query.get("marker")
    const page = maxKeys === 0
      ? { objects: [], commonPrefixes: [], continuationToken: undefined }
      : yield* store.list({ prefix, delimiter, maxKeys, continuationToken: continuation, startAfter: continuation === undefined ? startAfter : undefined })
    const system = (yield* Buckets).system
    const described = yield* Effect.forEach(page.objects, (o) => describeListed(store, system, record.name, o), { concurrency: 16 })
    const sizes = described.map((d) => d.size)
    const etags = described.map((d) => d.etag)
    // v1 names each object's owner (the bucket's: every object in a gateway bucket is its owner's);
    // v2 only with fetch-owner=true.
    const withOwner = !v2 || r.query.get("fetch-owner") === "true"
    const owner = withOwner ? Xml.el("Owner", [Xml.el("ID", record.owner), Xml.el("DisplayName", record.owner)]) : ""
    const contents = page.objects.map((o, i) =>
      Xml.el("Contents", [
        Xml.el("Key", enc(o.key)),
        Xml.el("LastModified", Http.isoDate(described[i]!.lastModified)),
        Xml.el("ETag", `"${etags[i]!}"`),
        Xml.el("Size", sizes[i]!),
        owner,
        Xml.el("StorageClass", "STANDARD")
      ])
    )
    const prefixes = page.commonPrefixes.map((p) => Xml.el("CommonPrefixes", [Xml.el("Prefix", enc(p))]))
    const truncated = page.continuationToken !== undefined
    const common = [
      Xml.el("Name", record.name),
      Xml.el("Prefix", enc(prefix)),
      delimiter === undefined ? "" : Xml.el("Delimiter", enc(delimiter)),
      Xml.el("MaxKeys", maxKeys),
      encode ? Xml.el("EncodingType", "url") : "",
      Xml.el("IsTruncated", truncated)
    ]
    if (v2) {
      return Http.xml(Xml.el("ListBucketResult", [
        ...common,
        Xml.el("KeyCount", contents.length + prefixes.length),
        token === undefined ? "" : Xml.el("ContinuationToken", token),
        truncated ? Xml.el("NextContinuationToken", Buffer.from(page.continuationToken!, "utf8").toString("base64url")) : "",
        startAfter === undefined ? "" : Xml.el("StartAfter", enc(startAfter)),
        ...contents,
        ...prefixes
      ], Xml.S3_NS))
    }
    // The last entry in S3's order (UTF-8 bytes, not JavaScript's UTF-16 order).
    const last = [...page.objects.map((o) => o.key), ...page.commonPrefixes].sort(ObjectStore.compareKeys).at(-1)
    return Http.xml(Xml.el("ListBucketResult", [
      ...common,
      Xml.el("Marker", enc(startAfter ?? "")),
      truncated && last !== undefined ? Xml.el("NextMarker", enc(last)) : "",
      ...contents,
      ...prefixes
    ], Xml.S3_NS))
  })

/**
 * ListObjectVersions of a bucket that never had versioning: each object is its one version,
 * `null`, the latest (S3's answer for an unversioned bucket); no delete markers.
 */
const listVersions = (r: Request, record: BucketRecord) =>
  Effect.gen(function*() {
    const buckets = yield* Buckets
    const store = yield* buckets.store(record.name)
    const { maxKeys, prefix, delimiter, encode, enc } = yield* listParams(r)
    const keyMarker = r.query.get("key-marker") || undefined
    const versionIdMarker = r.query.get("version-id-marker") || undefined
    if (versionIdMarker !== undefined && keyMarker === undefined) return yield* errors.invalidArgument("a version-id marker cannot be specified without a key marker")
    if (versionIdMarker !== undefined && versionIdMarker !== "null") return yield* errors.invalidArgument("Invalid version id specified")
    const page = maxKeys === 0
      ? { objects: [], commonPrefixes: [], continuationToken: undefined }
      : yield* store.list({ prefix, delimiter, maxKeys, startAfter: keyMarker })
    const described = yield* Effect.forEach(page.objects, (o) => describeListed(store, buckets.system, record.name, o), { concurrency: 16 })
    const truncated = page.continuationToken !== undefined
    const last = [...page.objects.map((o) => o.key), ...page.commonPrefixes].sort(ObjectStore.compareKeys).at(-1)
    const owner = [Xml.el("ID", record.owner), Xml.el("DisplayName", record.owner)]
    return Http.xml(Xml.el("ListVersionsResult", [
      Xml.el("Name", record.name),
      Xml.el("Prefix", enc(prefix)),
      Xml.el("KeyMarker", enc(keyMarker ?? "")),
      Xml.el("VersionIdMarker", versionIdMarker ?? ""),
      truncated && last !== undefined ? Xml.el("NextKeyMarker", enc(last)) : "",
      truncated && last !== undefined ? Xml.el("NextVersionIdMarker", "null") : "",
      Xml.el("MaxKeys", maxKeys),
      delimiter === undefined ? "" : Xml.el("Delimiter", enc(delimiter)),
      encode ? Xml.el("EncodingType", "url") : "",
      Xml.el("IsTruncated", truncated),
      ...page.objects.map((o, i) =>
        Xml.el("Version", [
          Xml.el("Key", enc(o.key)),
          Xml.el("VersionId", "null"),
          Xml.el("IsLatest", true),
          Xml.el("LastModified", Http.isoDate(described[i]!.lastModified)),
          Xml.el("ETag", `"${described[i]!.etag}"`),
          Xml.el("Size", described[i]!.size),
          Xml.el("Owner", owner),
          Xml.el("StorageClass", "STANDARD")
        ])
      ),
      ...page.commonPrefixes.map((p) => Xml.el("CommonPrefixes", [Xml.el("Prefix", enc(p))]))
    ], Xml.S3_NS))
  })

/** A listed object's plaintext size, client ETag and Last-Modified (one head for all). */
const describeListed = (store: Store, system: Store, bucket: string, o: ObjectStore.ListedObject) =>
  store.head(o.key).pipe(
    Effect.flatMap((info) =>
      Effect.all({
        size: plaintextSize(system, bucket, info).pipe(Effect.orElseSucceed(() => 0)),
        etag: Etag.clientEtag(system, bucket, info).pipe(Effect.orElseSucceed(() => o.etag)),
        lastModified: Effect.succeed(Tagging.lastModified(info))
      })
    ),
    Effect.orElseSucceed(() => ({ size: 0, etag: o.etag, lastModified: o.lastModified }))
  )

const plaintextSize = (system: Store, bucket: string, info: ObjectStore.ObjectInfo) =>
  Effect.gen(function*() {
    if (Multipart.isMultipart(info.metadata)) return (yield* Multipart.manifestOf(system, bucket, info)).size
    const s = ClientSide.inspect(info)
    if (Either.isLeft(s) || s.right.plaintextSize === undefined) return yield* errors.internalError("the stored object has no readable envelope", info.key)
    return s.right.plaintextSize
  })

const deleteObjects = (r: Request, record: BucketRecord) =>
  Effect.gen(function*() {
    // S3 requires an integrity check on DeleteObjects (the body names what is deleted); the
    // body reader verifies whichever is sent.
    const checked = r.headers["content-md5"] !== undefined || r.headers["x-amz-trailer"] !== undefined ||
      Object.keys(r.headers).some((h) => h.startsWith("x-amz-checksum-") && Checksums.isAlgorithm(h.slice("x-amz-checksum-".length)))
    if (!checked) return yield* errors.invalidRequest("missing required header for this request: Content-MD5 (or an x-amz-checksum-* header)")
    const doc = Xml.parse(yield* readSmallBody(r))
    if (doc === undefined || Xml.localName(doc) !== "Delete") return yield* errors.malformedXml("the XML you provided was not well-formed or did not validate against our published schema")
    const quiet = Xml.childText(doc, "Quiet")?.trim() === "true"
    const objects = Xml.children(doc, "Object").map((o) => ({
      key: Xml.childText(o, "Key"),
      versionId: Xml.childText(o, "VersionId")?.trim(),
      etag: Xml.childText(o, "ETag")?.trim()
    }))
    if (objects.length === 0 || objects.length > 1000 || objects.some((o) => o.key === undefined || o.key === "")) {
      return yield* errors.malformedXml("the XML you provided was not well-formed or did not validate against our published schema")
    }
    const buckets = yield* Buckets
    const store = yield* buckets.store(record.name)
    const results = yield* Effect.forEach(objects as ReadonlyArray<{ key: string; versionId: string | undefined; etag: string | undefined }>, ({ etag, key: k, versionId }) =>
      // Versioning is never enabled: the "null" version is the object, any other id is invalid.
      Effect.suspend((): Effect.Effect<void, unknown, Buckets> =>
        versionId !== undefined && versionId !== "null"
          ? Effect.fail(errors.invalidArgument("Invalid version id specified", k))
          // An ETag makes it a conditional delete of that one object (the others go on).
          : removeObject(store, buckets.system, record.name, k, etag)
      ).pipe(
        Effect.as(Xml.el("Deleted", [Xml.el("Key", k), versionId === undefined ? "" : Xml.el("VersionId", versionId)])),
        Effect.catchAll((e) => {
          const s3 = toS3(e, k)
          return Effect.succeed(Xml.el("Error", [Xml.el("Key", k), Xml.el("Code", s3.code), Xml.el("Message", s3.detail)]))
        })
      ), { concurrency: 8 })
    return Http.xml(Xml.el("DeleteResult", quiet ? results.filter((x) => x.startsWith("<Error>")) : results, Xml.S3_NS))
  })

/**
 * Removes an object and, for a multipart object, its manifest. With `ifMatch` (S3's conditional
 * delete: the client's ETag, a list, or `*`) only the version it names: checked against the
 * version headed (404 NoSuchKey when there is none, 412 when another), then by the backend, which
 * removes only that version's backend etag — a writer slipping in between keeps its object.
 */
const removeObject = (store: Store, system: Store, bucket: string, key: string, ifMatch?: string) =>
  Effect.gen(function*() {
    const before = yield* store.head(key).pipe(Effect.option)
    if (ifMatch === undefined) {
      yield* store.remove(key)
    } else {
      const conditions = yield* storeCondition({ _tag: "Match", header: ifMatch }, before, bucket, key)
      yield* store.remove(key, { ifMatch: conditions.ifMatch }).pipe(
        Effect.catchTag("PreconditionFailed", () => refusedWrite(store, conditions, bucket, key))
      )
    }
    yield* dropManifest(system, bucket, before)
  })

/** Drops what the system store keeps about a replaced or deleted object (manifest, checksum). */
const dropManifest = (system: Store, bucket: string, before: Option.Option<ObjectStore.ObjectInfo>) =>
  Option.match(before, {
    onNone: () => Effect.void,
    onSome: (info) => {
      const id = info.metadata[Sse.Meta.multipart]
      const manifest = id === undefined || !/^[0-9a-f]{32}$/.test(id) ? Effect.void : system.remove(Multipart.manifestKey(bucket, id)).pipe(Effect.ignore)
      return Effect.zipRight(manifest, Effect.zipRight(ObjectAttributes.dropChecksum(system, bucket, info.etag), Etag.drop(system, bucket, info)))
    }
  })

// ---------------------------------------------------------------------------------------------
// objects
// ---------------------------------------------------------------------------------------------

const requireSecureForSseC = (ck: CustomerKey | undefined) =>
  Effect.gen(function*() {
    const s = yield* ApiSettings
    if (ck !== undefined && !s.secure && !s.allowPlainHttpSseC) {
      return yield* errors.invalidRequest("requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection")
    }
  })

/** The customer key of a read (SSE headers other than SSE-C are refused on reads, as S3 does). */
const readCustomerKey = (r: Request, copySource = false) =>
  Effect.gen(function*() {
    const mode = yield* Sse.parseHeaders(r.headers, { copySource })
    if (mode._tag !== "None" && mode._tag !== "SseC") {
      return yield* errors.invalidArgument("x-amz-server-side-encryption header is not supported for this operation")
    }
    const ck = Sse.customerKeyOf(mode)
    yield* requireSecureForSseC(ck)
    return ck
  })

const objectOperation = (r: Request, bucketName: string, key: string) =>
  Effect.gen(function*() {
    const unsupported = UNSUPPORTED_OBJECT_SUBRESOURCES.find((s) => has(r, s))
    if (unsupported !== undefined) return yield* errors.notImplemented(`the ${unsupported} subresource is not implemented`)
    const record = yield* requireBucket(bucketName)
    // No bucket has Object Lock: S3 refuses its object sub-resources whether or not the key exists,
    // and refuses a write asking for a lock before reading anything of it.
    if (BucketSubresources.OBJECT_LOCK_SUBRESOURCES.some((s) => has(r, s))) {
      if (r.method !== "GET" && r.method !== "PUT") return yield* methodNotAllowed()
      return yield* BucketSubresources.missingObjectLock(`/${bucketName}/${key}`, { write: false })
    }
    const writes = (r.method === "PUT" && !has(r, "uploadId") && !has(r, "partNumber") && !has(r, "tagging") && !has(r, "acl")) ||
      (r.method === "POST" && has(r, "uploads"))
    if (writes && BucketSubresources.objectLockHeader(r.headers) !== undefined) {
      return yield* BucketSubresources.missingObjectLock(`/${bucketName}/${key}`, { write: true })
    }
    const buckets = yield* Buckets
    const store = yield* buckets.store(bucketName)
    // Versioning is never enabled: every object is the "null" version, any other id is invalid.
    const versionId = r.query.get("versionId")
    if (versionId !== undefined && versionId !== "null") return yield* errors.invalidArgument("Invalid version id specified", `/${bucketName}/${key}`)
    if (has(r, "tagging")) return yield* objectTagging(r, record, store, key)
    if (has(r, "acl")) return yield* objectAcl(r, record, store, key)
    switch (r.method) {
      case "PUT": {
        if ((has(r, "uploadId") || has(r, "partNumber")) && r.headers["x-amz-copy-source"] !== undefined) return yield* uploadPartCopy(r, record, store, key)
        if (has(r, "uploadId") || has(r, "partNumber")) return yield* uploadPart(r, record, store, key)
        if (r.headers["x-amz-copy-source"] !== undefined) return yield* copyObject(r, record, store, key)
        return yield* putObject(r, record, store, key)
      }
      case "GET":
        if (has(r, "uploadId")) return yield* listParts(r, record, store, key)
        if (has(r, "attributes")) return yield* getObjectAttributes(r, record, store, key)
        return yield* getObject(r, record, store, key, false)
      case "HEAD":
        return yield* getObject(r, record, store, key, true)
      case "DELETE":
        if (has(r, "uploadId")) {
          const id = r.query.get("uploadId")!
          const upload = yield* Multipart.load(buckets.system, id, record.name, key)
          yield* Multipart.abort(buckets.system, store, id, upload)
          return Http.empty(204)
        }
        yield* removeObject(store, buckets.system, record.name, key, r.headers["if-match"])
        return Http.empty(204)
      case "POST":
        if (has(r, "uploads")) return yield* createUpload(r, record, store, key)
        if (has(r, "uploadId")) return yield* completeUpload(r, record, store, key)
        return yield* errors.methodNotAllowed("the specified method is not allowed against this resource")
      default:
        return yield* errors.methodNotAllowed("the specified method is not allowed against this resource")
    }
  })

const headObject = (store: Store, bucket: string, key: string) =>
  store.head(key).pipe(
    Effect.catchTag("ObjectNotFound", () => Effect.fail(errors.noSuchKey("the specified key does not exist", `/${bucket}/${key}`)))
  )

/**
 * Put/Get/DeleteObjectTagging. No customer key is needed (S3 asks none): tags are metadata, kept
 * in plain text beside the envelope, and an update never decrypts or re-encrypts the object.
 */
const objectTagging = (r: Request, record: BucketRecord, store: Store, key: string) =>
  Effect.gen(function*() {
    const system = (yield* Buckets).system
    const rewrite = (tags: Tagging.TagSet) =>
      Tagging.rewrite({ store, system, bucket: record.name, key, tags }).pipe(
        Effect.catchTag("ObjectNotFound", () => Effect.fail(errors.noSuchKey("the specified key does not exist", `/${record.name}/${key}`)))
      )
    switch (r.method) {
      case "GET": {
        const info = yield* headObject(store, record.name, key)
        return Http.xml(Tagging.toXml(Tagging.fromMetadata(info.metadata)))
      }
      case "PUT": {
        const tags = yield* Tagging.parseXml(yield* readSmallBody(r), "object")
        yield* rewrite(tags)
        return Http.empty(200)
      }
      case "DELETE":
        yield* rewrite([])
        return Http.empty(204)
      default:
        return yield* methodNotAllowed()
    }
  })

/** Get/PutObjectAcl: objects belong to the bucket owner (S3's bucket-owner-enforced ownership). */
const objectAcl = (r: Request, record: BucketRecord, store: Store, key: string) =>
  Effect.gen(function*() {
    switch (r.method) {
      case "GET":
        yield* headObject(store, record.name, key)
        return Http.xml(Acl.toXml(record.owner))
      case "PUT": {
        const body = yield* readSmallBody(r)
        yield* headObject(store, record.name, key)
        yield* Acl.checkPut(r.headers, body, record.owner)
        return Http.empty(200)
      }
      default:
        return yield* methodNotAllowed()
    }
  })

/** The `x-amz-tagging` header of a write, as metadata. */
const headerTags = (headers: Readonly<Record<string, string>>) =>
  Effect.gen(function*() {
    const header = headers["x-amz-tagging"]
    return header === undefined ? {} : Tagging.metadataFor(yield* Tagging.parseHeader(header))
  })

/** The tags and ACL headers of a write: `x-amz-tagging` as metadata, the ACL checked. */
const writeTagsAndAcl = (headers: Readonly<Record<string, string>>, record: BucketRecord) =>
  Effect.gen(function*() {
    yield* Acl.checkHeaders(headers, record.owner)
    return yield* headerTags(headers)
  })

const writeMode = (r: { readonly headers: Readonly<Record<string, string>> }, record: BucketRecord, key: string) =>
  Effect.gen(function*() {
    const keys = yield* Sse.GatewayKeys
    const requested = yield* Sse.parseHeaders(r.headers)
    yield* requireSecureForSseC(Sse.customerKeyOf(requested))
    const mode = yield* Sse.resolveWrite(keys, requested, record, key)
    return { keys, mode }
  })

const MAX_FORM_FIELDS = 100
const MAX_FORM_FIELD = 20 * 1024

/** POST Object: a browser form upload, authorized by its signed policy. */
const postObject = (raw: HttpServerRequest.HttpServerRequest, bucketName: string, virtualHosted: boolean) =>
  Effect.gen(function*() {
    const settings = yield* ApiSettings
    const fields = new Map<string, string>()
    let done: HttpServerResponse.HttpServerResponse | undefined
    const parts = raw.multipartStream.pipe(
      HttpMultipart.withLimitsStream({ maxParts: Option.some(MAX_FORM_FIELDS + 1), maxFieldSize: MAX_FORM_FIELD, maxFileSize: Option.none() }),
      Stream.mapError(() => errors.malformedPostRequest("the body of your POST request is not well-formed multipart/form-data"))
    )
    yield* Stream.runForEachWhile(parts, (part) =>
      Effect.gen(function*() {
        if (part._tag === "Field") {
          const name = part.key.toLowerCase()
          if (!fields.has(name)) fields.set(name, part.value)
          return true
        }
        if (part.key.toLowerCase() !== "file") return yield* errors.invalidArgument("POST requires exactly one file upload per request, in the field named 'file'")
        done = yield* postFile(bucketName, fields, part, settings, objectUrl(settings.secure, raw.headers["host"], virtualHosted, bucketName, ""))
        return false
      }))
    if (done === undefined) {
      return yield* fields.has("key")
        ? errors.incorrectNumberOfFilesInPostRequest("POST requires exactly one file upload per request")
        : errors.invalidArgument("bucket POST must contain a field named 'key'; if it is specified, please check the order of the fields")
    }
    return done
  })

const postFile = (
  bucketName: string,
  fields: ReadonlyMap<string, string>,
  file: HttpMultipart.File,
  settings: ApiSettings["Type"],
  /** The bucket's URL as the client addressed it, ending in '/'. */
  bucketUrl: string
) =>
  Effect.gen(function*() {
    const verified = PostPolicy.verify(fields, bucketName, (id) => settings.users.find((u) => u.accessKeyId === id), new Date())
    if (Either.isLeft(verified)) return yield* verified.left
    const key = PostPolicy.objectKey(fields, file.name)
    if (key === undefined || key === "") return yield* errors.invalidArgument("bucket POST must contain a field named 'key'; if it is specified, please check the order of the fields")
    if (Buffer.byteLength(key) > 1024) return yield* errors.keyTooLong("your key is too long")
    const record = yield* requireBucket(bucketName)
    const buckets = yield* Buckets
    const store = yield* buckets.store(bucketName)
    const asHeaders: Record<string, string> = {}
    for (const [k, v] of fields) if (k.startsWith("x-amz-") || (USER_HEADERS as ReadonlyArray<string>).includes(k) || k === "content-type") asHeaders[k] = v
    delete asHeaders["x-amz-signature"]
    if (BucketSubresources.objectLockHeader(asHeaders) !== undefined) return yield* BucketSubresources.missingObjectLock(`/${bucketName}/${key}`, { write: true })
    const { keys, mode } = yield* writeMode({ headers: asHeaders }, record, key)
    yield* Acl.checkHeaders({ ...asHeaders, ...(fields.has("acl") ? { "x-amz-acl": fields.get("acl")! } : {}) }, record.owner)
    const tagging = fields.get("tagging")
    const meta = {
      ...(yield* userMetadata(asHeaders)),
      ...(tagging === undefined ? {} : Tagging.metadataFor(yield* Tagging.parseXml(tagging, "object")))
    }
    const range = verified.right.contentLength
    let total = 0
    const body = file.content.pipe(
      Stream.mapError(() => errors.incompleteBody("the file of the POST request could not be read")),
      Stream.mapEffect((b) => {
        total += b.length
        return range !== undefined && total > range.max
          ? Effect.fail(errors.entityTooLarge("your proposed upload exceeds the maximum allowed size"))
          : Effect.succeed(b)
      }),
      Stream.concat(Stream.suspend(() =>
        range !== undefined && total < range.min
          ? Stream.fail(errors.entityTooSmall("your proposed upload is smaller than the minimum allowed size"))
          : Stream.empty
      ))
    )
    const before = yield* store.head(key).pipe(Effect.option)
    const md5 = Etag.md5Tap(mode, buckets.system, bucketName, key)
    const put = yield* ClientSide.put(store, key, md5 === undefined ? body : md5.pipe(body), [Sse.keyringFor(keys, mode)], {
      contentType: asHeaders["content-type"] ?? (file.contentType === "" ? undefined : file.contentType),
      metadata: { ...meta, ...Sse.metadataFor(keys, mode), ...md5?.metadata },
      context: mode._tag === "SseKms" ? mode.context : undefined,
      current: Option.getOrNull(before)
    })
    const result = { etag: md5?.hex() ?? put.etag }
    yield* dropManifest(buckets.system, record.name, before)
    const h = { etag: `"${result.etag}"`, location: `${bucketUrl}${SigV4.uriEncode(key).replace(/%2F/g, "/")}`, ...Sse.writeHeaders(keys, mode) }
    const outcome = PostPolicy.outcome(fields, { bucket: bucketName, key, etag: result.etag })
    if (outcome._tag === "Redirect") return Http.empty(303, { ...h, location: outcome.location })
    if (outcome.status === 201) {
      return Http.xml(Xml.el("PostResponse", [
        Xml.el("Location", h.location),
        Xml.el("Bucket", bucketName),
        Xml.el("Key", key),
        Xml.el("ETag", `"${result.etag}"`)
      ]), { status: 201, headers: h })
    }
    return Http.empty(outcome.status, h)
  })

/**
 * Whether an `If-Match`/`If-None-Match` header names this client ETag: `*`, or one of its
 * comma-separated entity tags, quoted or not.
 */
const etagListed = (header: string, clientEtag: string): boolean =>
  header.split(",").map((s) => s.trim()).some((t) => t === "*" || t === `"${clientEtag}"` || t === clientEtag)

/** A write's S3 condition: none, create only (`If-None-Match: *`), or replace only a version (`If-Match`). */
type WriteCondition =
  | { readonly _tag: "None" }
  | { readonly _tag: "CreateOnly" }
  | { readonly _tag: "Match"; readonly header: string }

const PRECONDITION = "at least one of the preconditions you specified did not hold"

/**
 * The S3 conditional-write headers of PutObject, CopyObject and CompleteMultipartUpload.
 * `If-None-Match` takes only `*` (S3 answers any other value 501 NotImplemented); the two headers
 * together are refused the same way.
 */
const writeCondition = (r: Request, operation: "PutObject" | "CopyObject" | "CompleteMultipartUpload"): Effect.Effect<WriteCondition, S3Error> =>
  Effect.gen(function*() {
    const ifMatch = r.headers["if-match"]
    const ifNoneMatch = r.headers["if-none-match"]
    if (ifMatch === undefined && ifNoneMatch === undefined) return { _tag: "None" } as const
    if (ifMatch !== undefined) {
      if (ifNoneMatch !== undefined) return yield* errors.notImplemented("If-Match with If-None-Match is not implemented")
      return { _tag: "Match", header: ifMatch } as const
    }
    if (ifNoneMatch?.trim() !== "*") return yield* errors.notImplemented(`If-None-Match other than * on ${operation} is not implemented (S3 takes only *)`)
    return { _tag: "CreateOnly" } as const
  })

/**
 * Checks a write's condition against the version headed before it (`before`) and gives the store
 * condition that makes the write atomic: `If-None-Match: *` is the backend's create-only write;
 * `If-Match` compares the client's ETag (for SSE-S3 the plaintext MD5 of its record, see
 * internal/etag) with the version's, then has the backend replace only that very version (its
 * backend etag), so a writer slipping in between fails the write instead of being overwritten.
 */
const storeCondition = (
  condition: WriteCondition,
  before: Option.Option<ObjectStore.ObjectInfo>,
  bucket: string,
  key: string
): Effect.Effect<Pick<ObjectStore.PutOptions, "ifMatch" | "ifNoneMatch">, S3Error | StoreError, Buckets> =>
  Effect.gen(function*() {
    switch (condition._tag) {
      case "None":
        return {}
      case "CreateOnly":
        if (Option.isSome(before)) return yield* errors.preconditionFailed(PRECONDITION)
        return { ifNoneMatch: "*" as const }
      case "Match": {
        // S3: no current version to compare is 404, not 412.
        if (Option.isNone(before)) return yield* errors.noSuchKey("the specified key does not exist", `/${bucket}/${key}`)
        const clientEtag = yield* Etag.clientEtag((yield* Buckets).system, bucket, before.value)
        if (!etagListed(condition.header, clientEtag)) return yield* errors.preconditionFailed(PRECONDITION)
        return { ifMatch: before.value.etag }
      }
    }
  })

/**
 * The answer to a conditional write the backend refused: the version checked was replaced (412),
 * or, under `If-Match`, deleted meanwhile (404 NoSuchKey, as S3 answers a concurrent delete).
 */
const refusedWrite = (store: Store, conditions: Pick<ObjectStore.PutOptions, "ifMatch">, bucket: string, key: string) =>
  Effect.gen(function*() {
    if (conditions.ifMatch !== undefined) {
      const gone = yield* store.head(key).pipe(Effect.as(false), Effect.catchTag("ObjectNotFound", () => Effect.succeed(true)), Effect.orElseSucceed(() => false))
      if (gone) return yield* errors.noSuchKey("the specified key does not exist", `/${bucket}/${key}`)
    }
    return yield* errors.preconditionFailed(PRECONDITION)
  })

const putObject = (r: Request, record: BucketRecord, store: Store, key: string) =>
  Effect.gen(function*() {
    const condition = yield* writeCondition(r, "PutObject")
    const { keys, mode } = yield* writeMode(r, record, key)
    const meta = { ...(yield* userMetadata(r.headers)), ...(yield* writeTagsAndAcl(r.headers, record)) }
    const decoded = yield* decodeBody(r.raw.stream, r.headers, r.payload, () => errors.incompleteBody("the request body ended early"))
    const { body, length } = decoded
    if (length === undefined) return yield* errors.missingContentLength("you must provide the Content-Length HTTP header")
    const system = (yield* Buckets).system
    const before = yield* store.head(key).pipe(Effect.option)
    const conditions = yield* storeCondition(condition, before, record.name, key)
    // A Content-MD5 was verified by decodeBody: that MD5 is the ETag, not hashed again.
    const md5 = Etag.md5Tap(mode, system, record.name, key, r.headers["content-md5"] === undefined ? undefined : decoded.md5Hex)
    const result = yield* ClientSide.put(store, key, md5 === undefined ? body : md5.pipe(body), [Sse.keyringFor(keys, mode)], {
      contentLength: length,
      contentType: r.headers["content-type"],
      metadata: { ...meta, ...Sse.metadataFor(keys, mode), ...md5?.metadata },
      context: mode._tag === "SseKms" ? mode.context : undefined,
      current: Option.getOrNull(before),
      ...conditions
    }).pipe(
      Effect.catchTag("PreconditionFailed", () => refusedWrite(store, conditions, record.name, key))
    )
    const etag = md5?.hex() ?? result.etag
    const checksum = verifiedChecksum(decoded)
    if (checksum !== undefined) yield* ObjectAttributes.recordChecksum(system, record.name, key, result.etag, checksum)
    yield* dropManifest(system, record.name, before)
    return Http.empty(200, {
      etag: `"${etag}"`,
      ...Sse.writeHeaders(keys, mode),
      ...ObjectAttributes.checksumHeaders(checksum === undefined ? undefined : { ...checksum, type: "FULL_OBJECT" })
    })
  })

/** The single checksum a request body was verified against (S3 accepts one per request). */
const verifiedChecksum = (decoded: DecodedBody): Multipart.PartChecksum | undefined => {
  const algorithm = decoded.algorithms[0]
  const value = algorithm === undefined ? undefined : decoded.verified[algorithm]
  return algorithm === undefined || value === undefined ? undefined : { algorithm, value }
}

const conditional = (r: Request, info: ObjectStore.ObjectInfo, clientEtag: string): Effect.Effect<HttpServerResponse.HttpServerResponse | undefined, S3Error> =>
  Effect.gen(function*() {
    const etag = `"${clientEtag}"`
    const matches = (h: string) => etagListed(h, clientEtag)
    const ifMatch = r.headers["if-match"]
    const ifNoneMatch = r.headers["if-none-match"]
    const since = (h: string | undefined) => (h === undefined ? undefined : new Date(h))
    const modified = Math.floor(Tagging.lastModified(info).getTime() / 1000) * 1000
    if (ifMatch !== undefined && !matches(ifMatch)) return yield* errors.preconditionFailed("at least one of the preconditions you specified did not hold")
    const ius = since(r.headers["if-unmodified-since"])
    if (ifMatch === undefined && ius !== undefined && !Number.isNaN(ius.getTime()) && modified > ius.getTime()) {
      return yield* errors.preconditionFailed("at least one of the preconditions you specified did not hold")
    }
    if (ifNoneMatch !== undefined && matches(ifNoneMatch)) return Http.empty(304, { etag })
    const ims = since(r.headers["if-modified-since"])
    if (ifNoneMatch === undefined && ims !== undefined && !Number.isNaN(ims.getTime()) && modified <= ims.getTime()) return Http.empty(304, { etag })
    return undefined
  })

interface Opened {
  readonly info: ObjectStore.ObjectInfo
  readonly size: number
  readonly range: { readonly start: number; readonly end: number } | undefined
  readonly body: Stream.Stream<Uint8Array, unknown>
}

/** Opens an object's plaintext (after the key checks), whole or one range. */
const openObject = (
  store: Store,
  system: Store,
  bucket: string,
  key: string,
  info: ObjectStore.ObjectInfo,
  customerKey: CustomerKey | undefined,
  range: ObjectStore.ByteRange | undefined
) =>
  Effect.gen(function*() {
    const keys = yield* Sse.GatewayKeys
    yield* Sse.checkReadKey(keys, info.metadata, customerKey)
    const unwrapper = Sse.unwrapperFor(keys, info.metadata, customerKey)
    const size = yield* plaintextSize(system, bucket, info)
    let resolved: { readonly start: number; readonly end: number } | undefined
    if (range !== undefined) {
      const rr = ObjectStore.resolveRange(range, size)
      if (Option.isNone(rr)) return yield* errors.invalidRange("the requested range is not satisfiable", `/${bucket}/${key}`)
      resolved = rr.value
    }
    if (Multipart.isMultipart(info.metadata)) {
      const manifest = yield* Multipart.manifestOf(system, bucket, info)
      const body = yield* Multipart.read({ store, bucket, info, manifest, unwrapper, range: resolved })
      return { info, size, range: resolved, body } satisfies Opened
    }
    // Open (unwrap the data key, check the envelope) before answering, so a disabled KMS key or a
    // wrong envelope is an error status, not a 200 whose body breaks; the opened object lives in
    // its own scope, closed when the body stream ends or fails.
    const scope = yield* Scope.make()
    const opened = yield* ClientSide.get(store, key, unwrapper, {
      range: resolved === undefined ? undefined : ObjectStore.range.bounded(resolved.start, resolved.end - 1)
    }).pipe(
      Scope.extend(scope),
      Effect.onExit((exit) => Exit.isFailure(exit) ? Scope.close(scope, exit) : Effect.void)
    )
    const body = opened.body.pipe(Stream.ensuring(Scope.close(scope, Exit.void)))
    return { info, size, range: resolved, body } satisfies Opened
  })

const parsePartNumber = (text: string | undefined): Either.Either<number | undefined, S3Error> => {
  if (text === undefined) return Either.right(undefined)
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 10000) {
    return Either.left(errors.invalidArgument("part number must be an integer between 1 and 10000, inclusive"))
  }
  return Either.right(Number(text))
}

/** GetObject's and HeadObject's `response-*` parameters: the response headers they set (signed requests only, as every one here is). */
const RESPONSE_OVERRIDES = ["content-type", "content-language", "expires", "cache-control", "content-disposition", "content-encoding"] as const
const responseOverrides = (r: Request): Either.Either<Record<string, string>, S3Error> => {
  const out: Record<string, string> = {}
  for (const h of RESPONSE_OVERRIDES) {
    const v = r.query.get(`response-${h}`)
    if (v === undefined) continue
    // What HTTP lets a header value hold (no CR, LF or other control character).
    if (/[^\t\x20-\x7e\x80-\xff]/.test(v)) return Either.left(errors.invalidArgument(`response-${h} is not a valid header value`))
    out[h] = v
  }
  return Either.right(out)
}

const getObject = (r: Request, record: BucketRecord, store: Store, key: string, headOnly: boolean) =>
  Effect.gen(function*() {
    const partNumber = yield* parsePartNumber(r.query.get("partNumber"))
    if (partNumber !== undefined && r.headers["range"] !== undefined) {
      return yield* errors.invalidRequest("cannot specify both Range header and partNumber query parameter")
    }
    const overrides = yield* responseOverrides(r)
    const customerKey = yield* readCustomerKey(r)
    const system = (yield* Buckets).system
    const keys = yield* Sse.GatewayKeys
    const info = yield* store.head(key).pipe(
      Effect.catchTag("ObjectNotFound", () => Effect.fail(errors.noSuchKey("the specified key does not exist", `/${record.name}/${key}`)))
    )
    yield* Sse.checkReadKey(keys, info.metadata, customerKey)
    const etag = yield* Etag.clientEtag(system, record.name, info)
    const cond = yield* conditional(r, info, etag)
    if (cond !== undefined) return cond
    const manifest = Multipart.isMultipart(info.metadata) ? yield* Multipart.manifestOf(system, record.name, info) : undefined
    const size = yield* plaintextSize(system, record.name, info)
    const extra: Record<string, string> = {}
    // As S3: the parts count only answers a partNumber read of a multipart object.
    if (manifest !== undefined && partNumber !== undefined) extra["x-amz-mp-parts-count"] = String(manifest.parts.length)
    let range: ObjectStore.ByteRange | undefined
    if (partNumber !== undefined) {
      const parts = ObjectAttributes.partsOf(manifest, size)
      const part = parts[partNumber - 1]
      if (part === undefined) return yield* errors.invalidPartNumber("the requested partnumber is not satisfiable", `/${record.name}/${key}`)
      if (part.size > 0) range = ObjectStore.range.bounded(part.start, part.start + part.size - 1)
    } else if (r.headers["range"] !== undefined) {
      range = Option.getOrUndefined(ObjectStore.parseRange(r.headers["range"]))
    }
    if (range === undefined && r.headers["x-amz-checksum-mode"]?.toUpperCase() === "ENABLED") {
      Object.assign(extra, ObjectAttributes.checksumHeaders(yield* ObjectAttributes.checksumOf(system, record.name, info, manifest)))
    }
    if (headOnly) {
      const h = { ...objectHeaders(info, etag, customerKey), ...extra, ...overrides }
      if (range !== undefined) {
        const rr = ObjectStore.resolveRange(range, size)
        if (Option.isNone(rr)) return yield* errors.invalidRange("the requested range is not satisfiable")
        return Http.empty(206, { ...h, "content-length": String(rr.value.end - rr.value.start), "content-range": `bytes ${rr.value.start}-${rr.value.end - 1}/${size}` })
      }
      return Http.empty(200, { ...h, "content-length": String(size) })
    }
    return yield* openObject(store, system, record.name, key, info, customerKey, range).pipe(
      Effect.map((o) => {
        const h = { ...objectHeaders(o.info, etag, customerKey), ...extra, ...overrides }
        if (o.range !== undefined) {
          return Http.stream(o.body, 206, { ...h, "content-range": `bytes ${o.range.start}-${o.range.end - 1}/${o.size}` }, o.range.end - o.range.start)
        }
        return Http.stream(o.body, 200, h, o.size)
      })
    )
  })

const getObjectAttributes = (r: Request, record: BucketRecord, store: Store, key: string) =>
  Effect.gen(function*() {
    const attributes = ObjectAttributes.parseAttributes(r.headers["x-amz-object-attributes"])
    if (attributes === undefined) return yield* errors.invalidArgument("invalid attribute name specified")
    const maxText = r.headers["x-amz-max-parts"] ?? "1000"
    const markerText = r.headers["x-amz-part-number-marker"] ?? "0"
    if (!/^\d{1,6}$/.test(maxText) || !/^\d{1,6}$/.test(markerText)) return yield* errors.invalidArgument("invalid x-amz-max-parts or x-amz-part-number-marker")
    const customerKey = yield* readCustomerKey(r)
    const system = (yield* Buckets).system
    const info = yield* store.head(key).pipe(
      Effect.catchTag("ObjectNotFound", () => Effect.fail(errors.noSuchKey("the specified key does not exist", `/${record.name}/${key}`)))
    )
    yield* Sse.checkReadKey(yield* Sse.GatewayKeys, info.metadata, customerKey)
    const manifest = Multipart.isMultipart(info.metadata) ? yield* Multipart.manifestOf(system, record.name, info) : undefined
    const size = yield* plaintextSize(system, record.name, info)
    const checksum = yield* ObjectAttributes.checksumOf(system, record.name, info, manifest)
    return Http.xml(
      ObjectAttributes.render({
        attributes,
        etag: yield* Etag.clientEtag(system, record.name, info),
        size,
        checksum,
        parts: manifest === undefined ? undefined : ObjectAttributes.partsOf(manifest, size),
        maxParts: Math.min(1000, Number(maxText)),
        partNumberMarker: Number(markerText)
      }),
      { headers: { "last-modified": Http.httpDate(Tagging.lastModified(info)), ...Sse.responseHeaders(info.metadata, customerKey) } }
    )
  })

const parseCopySource = (r: Request) =>
  Effect.gen(function*() {
    let src = r.headers["x-amz-copy-source"]!
    const q = src.indexOf("?")
    if (q >= 0) {
      if (src.slice(q + 1).startsWith("versionId=") && src.slice(q + 1) !== "versionId=null") return yield* errors.notImplemented("versioned copy sources are not implemented")
      src = src.slice(0, q)
    }
    let decoded: string
    try {
      decoded = decodeURIComponent(src).replace(/^\//, "")
    } catch {
      return yield* errors.invalidArgument("invalid copy source encoding")
    }
    const i = decoded.indexOf("/")
    if (i <= 0 || i === decoded.length - 1) return yield* errors.invalidArgument("copy source must be of the form bucket/key")
    return { bucket: decoded.slice(0, i), key: decoded.slice(i + 1) }
  })

const copyObject = (r: Request, record: BucketRecord, store: Store, key: string) =>
  Effect.gen(function*() {
    const condition = yield* writeCondition(r, "CopyObject")
    const src = yield* parseCopySource(r)
    if (!SigV4.mayUse(r.user, src.bucket)) return yield* errors.accessDenied("access denied", `/${src.bucket}`)
    yield* requireBucket(src.bucket)
    const buckets = yield* Buckets
    const srcStore = yield* buckets.store(src.bucket)
    const srcKey = yield* readCustomerKey(r, true)
    yield* checkStorageClass(r.headers)
    const info = yield* srcStore.head(src.key).pipe(
      Effect.catchTag("ObjectNotFound", () => Effect.fail(errors.noSuchKey("the specified key does not exist", `/${src.bucket}/${src.key}`)))
    )
    yield* copySourceConditions(r, info, src.bucket)
    const directive = r.headers["x-amz-metadata-directive"] ?? "COPY"
    if (directive !== "COPY" && directive !== "REPLACE") return yield* errors.invalidArgument("unknown metadata directive")
    const { keys, mode } = yield* writeMode(r, record, key)
    const sseHeaderGiven = ["x-amz-server-side-encryption", "x-amz-server-side-encryption-customer-algorithm"].some((h) => r.headers[h] !== undefined)
    // An SSE-C source (its key given) written back without a customer key changes its encryption.
    const leavesSseC = srcKey !== undefined && mode._tag !== "SseC"
    if (src.bucket === record.name && src.key === key && directive === "COPY" && !sseHeaderGiven && !leavesSseC) {
      return yield* errors.invalidRequest("this copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes")
    }
    const taggingDirective = r.headers["x-amz-tagging-directive"] ?? "COPY"
    if (taggingDirective !== "COPY" && taggingDirective !== "REPLACE") return yield* errors.invalidArgument("Unknown tagging directive")
    yield* Acl.checkHeaders(r.headers, record.owner)
    const tags = taggingDirective === "REPLACE" ? yield* headerTags(r.headers) : Tagging.metadataFor(Tagging.fromMetadata(info.metadata))
    const meta = {
      ...(directive === "REPLACE"
        ? yield* userMetadata(r.headers)
        : Object.fromEntries(Object.entries(info.metadata).filter(([k]) => k.startsWith(Sse.Meta.userPrefix) || k.startsWith(Sse.Meta.headerPrefix)))),
      ...tags
    }
    const contentType = directive === "REPLACE" ? r.headers["content-type"] : info.contentType
    const algText = r.headers["x-amz-checksum-algorithm"]?.toLowerCase()
    if (algText !== undefined && !Checksums.isAlgorithm(algText)) return yield* errors.invalidRequest("checksum algorithm provided is unsupported; use CRC32, CRC32C, CRC64NVME, SHA1 or SHA256")
    // The copy's checksum: computed over the copied bytes when asked for, else the source's
    // whole-object checksum carried over (the plaintext is the same).
    const sourceChecksum = Multipart.isMultipart(info.metadata) ? undefined : yield* ObjectAttributes.checksumOf(buckets.system, src.bucket, info, undefined)
    const computing = algText === undefined ? undefined : Checksums.make(algText)
    const md5 = Etag.md5Tap(mode, buckets.system, record.name, key)
    const result = yield* Effect.gen(function*() {
      // The destination's condition before the source is opened (an opened body must be consumed).
      const before = yield* store.head(key).pipe(Effect.option)
      const conditions = yield* storeCondition(condition, before, record.name, key)
      const opened = yield* openObject(srcStore, buckets.system, src.bucket, src.key, info, srcKey, undefined)
      const hashed = computing === undefined ? opened.body : opened.body.pipe(Stream.tap((b) => Effect.sync(() => computing.update(b))))
      const copied = md5 === undefined ? hashed : md5.pipe(hashed)
      const put = yield* ClientSide.put(store, key, copied, [Sse.keyringFor(keys, mode)], {
        contentLength: opened.size,
        contentType,
        metadata: { ...meta, ...Sse.metadataFor(keys, mode), ...md5?.metadata },
        context: mode._tag === "SseKms" ? mode.context : undefined,
        current: Option.getOrNull(before),
        ...conditions
      }).pipe(
        Effect.catchTag("PreconditionFailed", () => refusedWrite(store, conditions, record.name, key))
      )
      // The source, when copied onto itself, has been read in full by now.
      yield* dropManifest(buckets.system, record.name, before)
      return put
    })
    const checksum: Multipart.PartChecksum | undefined = computing !== undefined
      ? { algorithm: computing.algorithm, value: Buffer.from(computing.digest()).toString("base64") }
      : sourceChecksum === undefined
      ? undefined
      : { algorithm: sourceChecksum.algorithm, value: sourceChecksum.value }
    if (checksum !== undefined) yield* ObjectAttributes.recordChecksum(buckets.system, record.name, key, result.etag, checksum)
    const etag = md5?.hex() ?? result.etag
    const after = yield* store.head(key)
    return Http.xml(
      Xml.el("CopyObjectResult", [
        Xml.el("LastModified", Http.isoDate(after.lastModified)),
        Xml.el("ETag", `"${etag}"`),
        checksum === undefined ? "" : Xml.el("ChecksumType", "FULL_OBJECT"),
        checksum === undefined ? "" : Xml.el(Checksums.xmlName(checksum.algorithm), checksum.value)
      ], Xml.S3_NS),
      { headers: Sse.writeHeaders(keys, mode) }
    )
  })

// ---------------------------------------------------------------------------------------------
// multipart
// ---------------------------------------------------------------------------------------------

const createUpload = (r: Request, record: BucketRecord, store: Store, key: string) =>
  Effect.gen(function*() {
    const { keys, mode } = yield* writeMode(r, record, key)
    const meta = { ...(yield* userMetadata(r.headers)), ...(yield* writeTagsAndAcl(r.headers, record)) }
    const algText = r.headers["x-amz-checksum-algorithm"]?.toLowerCase()
    if (algText !== undefined && !Checksums.isAlgorithm(algText)) return yield* errors.invalidRequest("checksum algorithm provided is unsupported; use CRC32, CRC32C, CRC64NVME, SHA1 or SHA256")
    const typeText = r.headers["x-amz-checksum-type"]?.toUpperCase()
    if (typeText !== undefined && typeText !== "COMPOSITE" && typeText !== "FULL_OBJECT") return yield* errors.invalidRequest("the x-amz-checksum-type header is invalid")
    if (typeText !== undefined && algText === undefined) return yield* errors.invalidRequest("x-amz-checksum-type requires x-amz-checksum-algorithm")
    // S3: CRC64NVME is only a full-object checksum; SHA-1/SHA-256 are only composite.
    const checksumType = algText === undefined ? undefined : typeText ?? (algText === "crc64nvme" ? "FULL_OBJECT" : "COMPOSITE")
    if (algText !== undefined && ((checksumType === "FULL_OBJECT" && !Checksums.isCrc(algText)) || (checksumType === "COMPOSITE" && algText === "crc64nvme"))) {
      return yield* errors.invalidRequest(`the ${checksumType} checksum type cannot be used with the ${Checksums.upperName(algText)} checksum algorithm`)
    }
    const id = yield* Multipart.create({
      system: (yield* Buckets).system,
      store,
      bucket: record.name,
      key,
      keyring: Sse.keyringFor(keys, mode),
      context: mode._tag === "SseKms" ? mode.context : {},
      metadata: { ...meta, ...Sse.metadataFor(keys, mode) },
      contentType: r.headers["content-type"],
      checksumAlgorithm: algText,
      checksumType,
      initiator: r.user.name
    })
    return Http.xml(
      Xml.el("InitiateMultipartUploadResult", [Xml.el("Bucket", record.name), Xml.el("Key", key), Xml.el("UploadId", id)], Xml.S3_NS),
      {
        headers: {
          ...Sse.writeHeaders(keys, mode),
          ...(algText === undefined ? {} : { "x-amz-checksum-algorithm": Checksums.upperName(algText), "x-amz-checksum-type": checksumType! })
        }
      }
    )
  })

const uploadContext = (r: Request, record: BucketRecord, key: string) =>
  Effect.gen(function*() {
    const id = r.query.get("uploadId")
    if (id === undefined) return yield* errors.invalidRequest("an uploadId is required")
    const system = (yield* Buckets).system
    const upload = yield* Multipart.load(system, id, record.name, key)
    return { id, upload, system }
  })

const partNumberOf = (r: Request) =>
  Effect.gen(function*() {
    const n = yield* parsePartNumber(r.query.get("partNumber") ?? "")
    return n!
  })

const uploadPart = (r: Request, record: BucketRecord, store: Store, key: string) =>
  Effect.gen(function*() {
    const n = yield* partNumberOf(r)
    const { id, upload, system } = yield* uploadContext(r, record, key)
    const keys = yield* Sse.GatewayKeys
    const customerKey = yield* readCustomerKey(r)
    yield* Sse.checkReadKey(keys, upload.metadata, customerKey)
    const decoded = yield* decodeBody(r.raw.stream, r.headers, r.payload, () => errors.incompleteBody("the request body ended early"))
    const { body, length } = decoded
    if (length === undefined) return yield* errors.missingContentLength("you must provide the Content-Length HTTP header")
    if (upload.checksumAlgorithm !== undefined && decoded.algorithms.length > 0 && decoded.algorithms[0] !== upload.checksumAlgorithm) {
      return yield* errors.invalidRequest(`the upload was created using the ${Checksums.upperName(upload.checksumAlgorithm)} checksum algorithm`)
    }
    const part = yield* Multipart.uploadPart({
      system,
      store,
      id,
      record: upload,
      partNumber: n,
      body,
      length,
      unwrapper: Sse.unwrapperFor(keys, upload.metadata, customerKey),
      checksum: () => verifiedChecksum(decoded),
      md5: upload.metadata[Sse.Meta.sse] === "AES256",
      // A verified Content-MD5 is the part's MD5: not hashed again.
      knownMd5: r.headers["content-md5"] === undefined ? undefined : decoded.md5Hex
    })
    return Http.empty(200, {
      etag: `"${Multipart.partEtag(part)}"`,
      ...Sse.responseHeaders(upload.metadata, customerKey),
      ...(part.checksum === undefined ? {} : { [`x-amz-checksum-${part.checksum.algorithm}`]: part.checksum.value })
    })
  })

/** `x-amz-copy-source-if-*`: any failed condition is 412 PreconditionFailed, as S3 answers copies. */
const copySourceConditions = (r: Request, info: ObjectStore.ObjectInfo, bucket: string) =>
  Effect.gen(function*() {
    const clientEtag = yield* Etag.clientEtag((yield* Buckets).system, bucket, info)
    const matches = (h: string) => etagListed(h, clientEtag)
    const date = (h: string | undefined) => (h === undefined ? undefined : new Date(h))
    const modified = Math.floor(Tagging.lastModified(info).getTime() / 1000) * 1000
    const ifMatch = r.headers["x-amz-copy-source-if-match"]
    const ifNone = r.headers["x-amz-copy-source-if-none-match"]
    const ius = date(r.headers["x-amz-copy-source-if-unmodified-since"])
    const ims = date(r.headers["x-amz-copy-source-if-modified-since"])
    const failed = (ifMatch !== undefined && !matches(ifMatch)) ||
      (ifNone !== undefined && matches(ifNone)) ||
      (ifMatch === undefined && ius !== undefined && !Number.isNaN(ius.getTime()) && modified > ius.getTime()) ||
      (ifNone === undefined && ims !== undefined && !Number.isNaN(ims.getTime()) && modified <= ims.getTime())
    if (failed) return yield* errors.preconditionFailed("at least one of the pre-conditions you specified did not hold")
  })

const uploadPartCopy = (r: Request, record: BucketRecord, store: Store, key: string) =>
  Effect.gen(function*() {
    const n = yield* partNumberOf(r)
    const src = yield* parseCopySource(r)
    if (!SigV4.mayUse(r.user, src.bucket)) return yield* errors.accessDenied("access denied", `/${src.bucket}`)
    yield* requireBucket(src.bucket)
    const { id, upload, system } = yield* uploadContext(r, record, key)
    const buckets = yield* Buckets
    const keys = yield* Sse.GatewayKeys
    const customerKey = yield* readCustomerKey(r)
    yield* Sse.checkReadKey(keys, upload.metadata, customerKey)
    const srcKey = yield* readCustomerKey(r, true)
    const srcStore = yield* buckets.store(src.bucket)
    const info = yield* srcStore.head(src.key).pipe(
      Effect.catchTag("ObjectNotFound", () => Effect.fail(errors.noSuchKey("the specified key does not exist", `/${src.bucket}/${src.key}`)))
    )
    yield* copySourceConditions(r, info, src.bucket)
    const size = yield* plaintextSize(buckets.system, src.bucket, info)
    const rangeText = r.headers["x-amz-copy-source-range"]
    let range: ObjectStore.ByteRange | undefined
    let length = size
    if (rangeText !== undefined) {
      const m = /^bytes=(\d+)-(\d+)$/.exec(rangeText.trim())
      if (m === null) return yield* errors.invalidArgument("the x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy")
      const first = Number(m[1])
      const last = Number(m[2])
      if (first > last || last >= size) return yield* errors.invalidArgument(`range specified is not valid for source object of size: ${size}`)
      range = ObjectStore.range.bounded(first, last)
      length = last - first + 1
    }
    const opened = yield* openObject(srcStore, buckets.system, src.bucket, src.key, info, srcKey, range)
    const part = yield* Multipart.uploadPart({
      system,
      store,
      id,
      record: upload,
      partNumber: n,
      body: opened.body.pipe(Stream.mapError((e) => toS3(e, src.key))),
      length,
      unwrapper: Sse.unwrapperFor(keys, upload.metadata, customerKey),
      md5: upload.metadata[Sse.Meta.sse] === "AES256"
    })
    return Http.xml(
      Xml.el("CopyPartResult", [Xml.el("ETag", `"${Multipart.partEtag(part)}"`), Xml.el("LastModified", part.uploaded)], Xml.S3_NS),
      { headers: Sse.responseHeaders(upload.metadata, customerKey) }
    )
  })

const listParts = (r: Request, record: BucketRecord, _store: Store, key: string) =>
  Effect.gen(function*() {
    const { id, system, upload } = yield* uploadContext(r, record, key)
    const markerText = r.query.get("part-number-marker") ?? "0"
    const maxText = r.query.get("max-parts") ?? "1000"
    if (!/^\d{1,6}$/.test(markerText) || !/^\d{1,6}$/.test(maxText)) return yield* errors.invalidArgument("invalid part-number-marker or max-parts")
    const marker = Number(markerText)
    const max = Math.min(1000, Number(maxText))
    const all = (yield* Multipart.listParts(system, id)).filter((p) => p.partNumber > marker)
    const page = all.slice(0, max)
    const truncated = all.length > page.length
    return Http.xml(Xml.el("ListPartsResult", [
      Xml.el("Bucket", record.name),
      Xml.el("Key", key),
      Xml.el("UploadId", id),
      Xml.el("PartNumberMarker", marker),
      // max-parts=0 answers no part: the next page starts where this one did.
      truncated ? Xml.el("NextPartNumberMarker", page.at(-1)?.partNumber ?? marker) : "",
      Xml.el("MaxParts", max),
      Xml.el("IsTruncated", truncated),
      Xml.el("Initiator", [Xml.el("ID", upload.initiator ?? ""), Xml.el("DisplayName", upload.initiator ?? "")]),
      Xml.el("Owner", [Xml.el("ID", upload.initiator ?? ""), Xml.el("DisplayName", upload.initiator ?? "")]),
      Xml.el("StorageClass", "STANDARD"),
      upload.checksumAlgorithm === undefined ? "" : Xml.el("ChecksumAlgorithm", Checksums.upperName(upload.checksumAlgorithm)),
      ...page.map((p) =>
        Xml.el("Part", [
          Xml.el("PartNumber", p.partNumber),
          Xml.el("LastModified", p.uploaded),
          Xml.el("ETag", `"${Multipart.partEtag(p)}"`),
          Xml.el("Size", p.plain),
          p.checksum === undefined ? "" : Xml.el(Checksums.xmlName(p.checksum.algorithm), p.checksum.value)
        ])
      )
    ], Xml.S3_NS))
  })

const completeUpload = (r: Request, record: BucketRecord, store: Store, key: string) =>
  Effect.gen(function*() {
    const condition = yield* writeCondition(r, "CompleteMultipartUpload")
    const { id, upload, system } = yield* uploadContext(r, record, key)
    const doc = Xml.parse(yield* readSmallBody(r, { objectChecksumHeaders: true }))
    if (doc === undefined || Xml.localName(doc) !== "CompleteMultipartUpload") {
      return yield* errors.malformedXml("the XML you provided was not well-formed or did not validate against our published schema")
    }
    const parts: Array<{ partNumber: number; etag: string; checksum?: Multipart.PartChecksum }> = []
    for (const p of Xml.children(doc, "Part")) {
      const n = Xml.childText(p, "PartNumber")?.trim()
      const etag = Xml.childText(p, "ETag")?.trim()
      if (n === undefined || !/^\d+$/.test(n) || etag === undefined) return yield* errors.malformedXml("each Part needs a PartNumber and an ETag")
      const given = Checksums.ALGORITHMS.flatMap((a) => {
        const v = Xml.childText(p, Checksums.xmlName(a))?.trim()
        return v === undefined ? [] : [{ algorithm: a, value: v }]
      })
      if (given.length > 1) return yield* errors.invalidRequest("a part may carry one checksum")
      parts.push({ partNumber: Number(n), etag, ...(given[0] === undefined ? {} : { checksum: given[0] }) })
    }
    const wholeHeaders = Checksums.ALGORITHMS.flatMap((a) => {
      const v = r.headers[`x-amz-checksum-${a}`]
      return v === undefined ? [] : [{ algorithm: a, value: v }]
    })
    if (wholeHeaders.length > 1) return yield* errors.invalidRequest("expecting a single x-amz-checksum- header")
    const before = yield* store.head(key).pipe(Effect.option)
    // Checked against the version headed now, then by the backend as it publishes the object; a
    // refused completion leaves the upload to complete again or abort, as S3 does.
    const conditions = yield* storeCondition(condition, before, record.name, key)
    const settings = yield* ApiSettings
    const result = yield* Multipart.complete({ system, store, id, record: upload, parts, minPartSize: settings.minPartSize, expected: wholeHeaders[0], conditions }).pipe(
      Effect.catchIf(
        (e) => e._tag === "PreconditionFailed" && (conditions.ifMatch !== undefined || conditions.ifNoneMatch !== undefined),
        () => refusedWrite(store, conditions, record.name, key)
      )
    )
    yield* dropManifest(system, record.name, before)
    const checksum = result.manifest.checksum
    return Http.xml(Xml.el("CompleteMultipartUploadResult", [
      Xml.el("Location", objectUrl((yield* ApiSettings).secure, r.headers["host"], r.virtualHosted, record.name, key)),
      Xml.el("Bucket", record.name),
      Xml.el("Key", key),
      Xml.el("ETag", `"${result.clientEtag}"`),
      checksum === undefined ? "" : Xml.el(Checksums.xmlName(checksum.algorithm), checksum.value),
      checksum === undefined ? "" : Xml.el("ChecksumType", result.manifest.checksumType ?? "COMPOSITE")
    ], Xml.S3_NS), { headers: Sse.responseHeaders(upload.metadata, undefined) })
  })

const listUploads = (r: Request, record: BucketRecord) =>
  Effect.gen(function*() {
    const system = (yield* Buckets).system
    const prefix = r.query.get("prefix") ?? ""
    const delimiter = r.query.get("delimiter") || undefined
    const keyMarker = r.query.get("key-marker") ?? ""
    const idMarker = r.query.get("upload-id-marker") ?? ""
    const maxText = r.query.get("max-uploads") ?? "1000"
    if (!/^\d{1,7}$/.test(maxText)) return yield* errors.invalidArgument("provided max-uploads not an integer or within integer range")
    const max = Math.min(1000, Number(maxText))
    const encode = r.query.get("encoding-type") === "url"
    if (r.query.has("encoding-type") && !encode) return yield* errors.invalidArgument("invalid encoding method specified in request")
    const enc = (s: string) => (encode ? SigV4.uriEncode(s).replace(/%2F/g, "/") : s)
    const { entries, next, truncated } = yield* Multipart.listUploads(system, record.name, { prefix, delimiter, keyMarker, uploadIdMarker: idMarker, maxUploads: max })
    const person = (name: string | undefined) => [Xml.el("ID", name ?? ""), Xml.el("DisplayName", name ?? "")]
    return Http.xml(Xml.el("ListMultipartUploadsResult", [
      Xml.el("Bucket", record.name),
      Xml.el("KeyMarker", enc(keyMarker)),
      Xml.el("UploadIdMarker", idMarker),
      next === undefined ? "" : Xml.el("NextKeyMarker", enc(next.key)),
      next === undefined ? "" : Xml.el("NextUploadIdMarker", next.id),
      Xml.el("Prefix", enc(prefix)),
      delimiter === undefined ? "" : Xml.el("Delimiter", enc(delimiter)),
      Xml.el("MaxUploads", max),
      encode ? Xml.el("EncodingType", "url") : "",
      Xml.el("IsTruncated", truncated),
      ...entries.filter((e) => e._tag === "Upload").map((e) =>
        Xml.el("Upload", [
          Xml.el("Key", enc(e.upload.key)),
          Xml.el("UploadId", e.upload.id),
          Xml.el("Initiator", person(e.upload.initiator)),
          Xml.el("Owner", person(e.upload.initiator)),
          Xml.el("StorageClass", "STANDARD"),
          Xml.el("Initiated", e.upload.initiated),
          e.upload.checksumAlgorithm === undefined ? "" : Xml.el("ChecksumAlgorithm", Checksums.upperName(e.upload.checksumAlgorithm))
        ])
      ),
      ...entries.filter((e) => e._tag === "Prefix").map((e) => Xml.el("CommonPrefixes", [Xml.el("Prefix", enc(e.prefix))]))
    ], Xml.S3_NS))
  })

/**
 * The error XML of a failed request (for tests and the server's fallback).
 *
 * @since 0.1.0
 * @category rendering
 */
export const isS3Error = (u: unknown): u is S3Error => u instanceof S3Error
