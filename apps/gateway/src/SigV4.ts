/**
 * AWS Signature Version 4 verification for S3 requests: the `Authorization` header, presigned
 * URLs (query parameters, `X-Amz-Expires` enforced) and the seed signature of streaming
 * (`aws-chunked`) uploads. Canonical requests are built exactly as the SigV4 reference documents
 * them; signatures are compared in constant time.
 *
 * @since 0.1.0
 */
import { Either, Redacted } from "effect"
import * as crypto from "node:crypto"
import { errors } from "./S3Error.js"
import type { S3Error } from "./S3Error.js"

/**
 * A user: an access key, its secret, and the buckets it may use (`"*"`: all).
 *
 * @since 0.1.0
 * @category models
 */
export interface User {
  readonly name: string
  readonly accessKeyId: string
  readonly secretAccessKey: Redacted.Redacted<string>
  readonly buckets: ReadonlyArray<string> | "*"
}

/**
 * The parts of a request the signature covers, as they arrived on the wire.
 *
 * @since 0.1.0
 * @category models
 */
export interface SignedRequest {
  readonly method: string
  /** The path exactly as sent (still percent-encoded). */
  readonly rawPath: string
  /** The query string without `?`, as sent. */
  readonly rawQuery: string
  /** Lower-case names. */
  readonly headers: Readonly<Record<string, string>>
  readonly now: Date
}

/**
 * How the body is protected.
 *
 * @since 0.1.0
 * @category models
 */
export type Payload =
  | { readonly _tag: "Unsigned" }
  | { readonly _tag: "Sha256"; readonly hex: string }
  | { readonly _tag: "StreamingUnsigned" }
  | {
    readonly _tag: "StreamingSigned"
    readonly seedSignature: string
    readonly signingKey: Redacted.Redacted<crypto.KeyObject>
    readonly amzDate: string
    readonly scope: string
    /** `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`: signed trailing headers follow the last chunk. */
    readonly trailer: boolean
  }

/**
 * @since 0.1.0
 * @category models
 */
export interface Authenticated {
  readonly user: User
  readonly payload: Payload
}

const ALGORITHM = "AWS4-HMAC-SHA256"
const MAX_SKEW_MS = 15 * 60 * 1000
const MAX_EXPIRES = 7 * 24 * 3600
/**
 * SHA-256 of the empty string, hex.
 *
 * @since 0.1.0
 * @category constants
 */
export const EMPTY_SHA256 = crypto.createHash("sha256").update("").digest("hex")

const hmac = (key: crypto.BinaryLike | crypto.KeyObject, data: string): Buffer => crypto.createHmac("sha256", key).update(data, "utf8").digest()
const sha256Hex = (data: string): string => crypto.createHash("sha256").update(data, "utf8").digest("hex")

/**
 * RFC 3986 encoding as SigV4 requires: everything but `A-Za-z0-9-_.~` percent-encoded, upper-case hex.
 *
 * @since 0.1.0
 * @category encoding
 */
export const uriEncode = (s: string): string =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)

const safeDecode = (s: string): string | undefined => {
  try {
    return decodeURIComponent(s)
  } catch {
    return undefined
  }
}

/**
 * Splits a raw query string into decoded pairs, in order.
 *
 * @since 0.1.0
 * @category encoding
 */
export const parseQuery = (raw: string): Either.Either<ReadonlyArray<readonly [string, string]>, S3Error> => {
  const out: Array<readonly [string, string]> = []
  for (const part of raw.split("&")) {
    if (part === "") continue
    const i = part.indexOf("=")
    const k = safeDecode(i < 0 ? part : part.slice(0, i))
    const v = safeDecode(i < 0 ? "" : part.slice(i + 1))
    if (k === undefined || v === undefined) return Either.left(errors.invalidArgument("malformed query string"))
    out.push([k, v])
  }
  return Either.right(out)
}

const canonicalQuery = (pairs: ReadonlyArray<readonly [string, string]>, exclude?: string): string =>
  pairs
    .filter(([k]) => k !== exclude)
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join("&")

const canonicalHeaders = (headers: Readonly<Record<string, string>>, signed: ReadonlyArray<string>): string | undefined => {
  let out = ""
  for (const name of signed) {
    const v = headers[name]
    if (v === undefined) return undefined
    out += `${name}:${v.trim().replace(/\s+/g, " ")}\n`
  }
  return out
}

// Derived keys by secret (each configured user's `Redacted`, so a reloaded configuration starts
// afresh) and scope. Deriving costs four HMACs keyed by byte strings, ~100 µs, and an HMAC keyed
// by a `KeyObject` is ~6 µs against ~45 µs for a Buffer key: per request that is most of what
// signature checking costs. A key is valid for one day, region and service; a few scopes per
// secret are kept (requests signed for unusual scopes only evict each other).
const signingKeys = new WeakMap<Redacted.Redacted<string>, Map<string, crypto.KeyObject>>()
const SCOPES_PER_SECRET = 8

/**
 * The signing key for a date, region and service, as a `KeyObject` (derived once per secret and
 * scope, then cached).
 *
 * @since 0.1.0
 * @category signing
 */
export const signingKey = (secret: Redacted.Redacted<string>, date: string, region: string, service: string): crypto.KeyObject => {
  let scopes = signingKeys.get(secret)
  if (scopes === undefined) {
    scopes = new Map()
    signingKeys.set(secret, scopes)
  }
  const scope = `${date}/${region}/${service}`
  const cached = scopes.get(scope)
  if (cached !== undefined) return cached
  const raw = hmac(hmac(hmac(hmac(`AWS4${Redacted.value(secret)}`, date), region), service), "aws4_request")
  const key = crypto.createSecretKey(raw)
  raw.fill(0)
  if (scopes.size >= SCOPES_PER_SECRET) scopes.delete(scopes.keys().next().value!)
  scopes.set(scope, key)
  return key
}


const sameSignature = (expected: Buffer, given: string): boolean => {
  if (!/^[0-9a-f]{64}$/.test(given)) return false
  return crypto.timingSafeEqual(expected, Buffer.from(given, "hex"))
}

/**
 * An `x-amz-date` (`YYYYMMDDTHHMMSSZ`) as a Date; undefined when malformed.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseAmzDate = (s: string): Date | undefined => {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s)
  if (m === null) return undefined
  const d = new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!))
  return Number.isNaN(d.getTime()) ? undefined : d
}

/**
 * A SigV4 credential: `<access key id>/YYYYMMDD/<region>/<service>/aws4_request`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Credential {
  readonly accessKeyId: string
  readonly date: string
  readonly region: string
  readonly service: string
  /** `YYYYMMDD/<region>/<service>/aws4_request` */
  readonly scope: string
}

/**
 * Splits a credential; undefined unless it has the five parts, an eight-digit date and ends in
 * `aws4_request` (which service it names is for the caller to check).
 *
 * @since 0.1.0
 * @category parsing
 */
export const splitCredential = (s: string): Credential | undefined => {
  const parts = s.split("/")
  if (parts.length !== 5 || parts[4] !== "aws4_request" || !/^\d{8}$/.test(parts[1]!)) return undefined
  return { accessKeyId: parts[0]!, date: parts[1]!, region: parts[2]!, service: parts[3]!, scope: parts.slice(1).join("/") }
}

/**
 * The `Credential`, `SignedHeaders` and `Signature` of an `AWS4-HMAC-SHA256 …` Authorization
 * header (whose algorithm the caller has checked); undefined when one of them is missing.
 *
 * @since 0.1.0
 * @category parsing
 */
export const authorizationFields = (
  auth: string
): { readonly credential: string; readonly signedHeaders: string; readonly signature: string } | undefined => {
  const fields: Record<string, string> = {}
  for (const f of auth.slice(ALGORITHM.length + 1).split(",")) {
    const i = f.indexOf("=")
    if (i > 0) fields[f.slice(0, i).trim()] = f.slice(i + 1).trim()
  }
  const { Credential: credential, SignedHeaders: signedHeaders, Signature: signature } = fields
  return credential === undefined || signedHeaders === undefined || signature === undefined ? undefined : { credential, signedHeaders, signature }
}

const parseCredential = (s: string, malformed: (m: string) => S3Error): Either.Either<Credential, S3Error> => {
  const cred = splitCredential(s)
  if (cred === undefined) return Either.left(malformed("the Credential is malformed; expected \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\""))
  if (cred.service !== "s3") return Either.left(malformed(`the credential scope names service ${cred.service}, expected s3`))
  return Either.right(cred)
}

const stringToSign = (amzDate: string, scope: string, canonicalRequest: string) =>
  `${ALGORITHM}\n${amzDate}\n${scope}\n${sha256Hex(canonicalRequest)}`

/**
 * Verifies a request signed in its `Authorization` header or presigned in its query string.
 * Anonymous requests are refused: the gateway has no public buckets.
 *
 * @since 0.1.0
 * @category verification
 */
export const verify = (
  req: SignedRequest,
  lookup: (accessKeyId: string) => User | undefined
): Either.Either<Authenticated, S3Error> =>
  Either.gen(function*() {
    const query = yield* parseQuery(req.rawQuery)
    const q = (name: string) => query.find(([k]) => k === name)?.[1]
    const auth = req.headers["authorization"]
    const presigned = q("X-Amz-Signature") !== undefined || q("X-Amz-Algorithm") !== undefined
    if (auth !== undefined && presigned) {
      return yield* Either.left(errors.invalidArgument("only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified"))
    }
    if (auth === undefined && !presigned) return yield* Either.left(errors.accessDenied("anonymous access is not allowed"))

    if (auth !== undefined) {
      const malformed = errors.authorizationHeaderMalformed
      if (!auth.startsWith(`${ALGORITHM} `)) {
        return yield* Either.left(auth.startsWith("AWS ") ? errors.invalidRequest("signature version 2 is not supported; use AWS4-HMAC-SHA256") : malformed("unsupported authorization type"))
      }
      const fields = authorizationFields(auth)
      if (fields === undefined) return yield* Either.left(malformed("the authorization header is malformed"))
      const { credential, signature, signedHeaders } = fields
      const cred = yield* parseCredential(credential, malformed)
      const user = lookup(cred.accessKeyId)
      if (user === undefined) return yield* Either.left(errors.invalidAccessKeyId("the AWS access key id you provided does not exist in our records"))
      const amzDate = req.headers["x-amz-date"]
      const when = amzDate === undefined ? undefined : parseAmzDate(amzDate)
      if (amzDate === undefined || when === undefined) {
        return yield* Either.left(errors.accessDenied("AWS authentication requires a valid x-amz-date header"))
      }
      if (amzDate.slice(0, 8) !== cred.date) return yield* Either.left(malformed("the credential date does not match x-amz-date"))
      if (Math.abs(req.now.getTime() - when.getTime()) > MAX_SKEW_MS) {
        return yield* Either.left(errors.requestTimeTooSkewed("the difference between the request time and the current time is too large"))
      }
      const contentSha = req.headers["x-amz-content-sha256"]
      if (contentSha === undefined) return yield* Either.left(errors.invalidRequest("missing required header for this request: x-amz-content-sha256"))
      const signed = signedHeaders.split(";")
      if (!signed.includes("host")) return yield* Either.left(malformed("the host header must be signed"))
      if (signed.some((h, i) => h !== h.toLowerCase() || (i > 0 && signed[i - 1]! >= h))) {
        return yield* Either.left(malformed("SignedHeaders must be lower-case and sorted"))
      }
      const unsignedHeader = unsignedAmzHeader(req.headers, signed)
      if (unsignedHeader !== undefined) {
        return yield* Either.left(errors.accessDenied(`there were headers present in the request which were not signed: ${unsignedHeader}`))
      }
      const headersBlock = canonicalHeaders(req.headers, signed)
      if (headersBlock === undefined) return yield* Either.left(malformed("a signed header is missing from the request"))
      const canonical = [req.method, req.rawPath, canonicalQuery(query), headersBlock, signedHeaders, contentSha].join("\n")
      const key = signingKey(user.secretAccessKey, cred.date, cred.region, cred.service)
      const expected = hmac(key, stringToSign(amzDate, cred.scope, canonical))
      if (!sameSignature(expected, signature)) {
        return yield* Either.left(errors.signatureDoesNotMatch("the request signature we calculated does not match the signature you provided; check your key and signing method"))
      }
      const payload: Payload | undefined = contentSha === "UNSIGNED-PAYLOAD"
        ? { _tag: "Unsigned" }
        : contentSha === "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
        ? { _tag: "StreamingUnsigned" }
        : contentSha === "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" || contentSha === "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
        ? {
          _tag: "StreamingSigned",
          seedSignature: signature,
          signingKey: Redacted.make(key),
          amzDate,
          scope: cred.scope,
          trailer: contentSha.endsWith("-TRAILER")
        }
        : /^[0-9a-f]{64}$/.test(contentSha)
        ? { _tag: "Sha256", hex: contentSha }
        : undefined
      if (payload === undefined) {
        return yield* Either.left(
          contentSha.startsWith("STREAMING-")
            ? errors.notImplemented(`x-amz-content-sha256 ${contentSha} is not implemented`)
            : errors.invalidArgument("x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD or a SHA256 hex digest")
        )
      }
      return { user, payload }
    }

    // Presigned URL.
    const qerr = errors.authorizationQueryParametersError
    const algorithm = q("X-Amz-Algorithm")
    const credential = q("X-Amz-Credential")
    const amzDate = q("X-Amz-Date")
    const expires = q("X-Amz-Expires")
    const signedHeaders = q("X-Amz-SignedHeaders")
    const signature = q("X-Amz-Signature")
    if (algorithm !== ALGORITHM) return yield* Either.left(qerr("X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\""))
    if (credential === undefined || amzDate === undefined || expires === undefined || signedHeaders === undefined || signature === undefined) {
      return yield* Either.left(qerr("query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters"))
    }
    const cred = yield* parseCredential(credential, qerr)
    const when = parseAmzDate(amzDate)
    if (when === undefined || amzDate.slice(0, 8) !== cred.date) return yield* Either.left(qerr("X-Amz-Date must be in the ISO8601 basic format and match the credential date"))
    if (!/^\d+$/.test(expires)) return yield* Either.left(qerr("X-Amz-Expires should be a number"))
    const seconds = Number(expires)
    if (seconds <= 0) return yield* Either.left(qerr("X-Amz-Expires must be positive"))
    if (seconds > MAX_EXPIRES) return yield* Either.left(qerr("X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds"))
    const user = lookup(cred.accessKeyId)
    if (user === undefined) return yield* Either.left(errors.invalidAccessKeyId("the AWS access key id you provided does not exist in our records"))
    if (when.getTime() - req.now.getTime() > MAX_SKEW_MS) return yield* Either.left(errors.accessDenied("request is not valid yet"))
    if (req.now.getTime() > when.getTime() + seconds * 1000) return yield* Either.left(errors.accessDenied("request has expired"))
    const signed = signedHeaders.split(";")
    if (!signed.includes("host")) return yield* Either.left(qerr("the host header must be signed"))
    const headersBlock = canonicalHeaders(req.headers, signed)
    if (headersBlock === undefined) return yield* Either.left(qerr("a signed header is missing from the request"))
    // As with header auth: whoever holds a presigned URL cannot add x-amz-* headers (an SSE-C key,
    // a KMS key id, an ACL) that its signer did not sign.
    const unsignedHeader = unsignedAmzHeader(req.headers, signed)
    if (unsignedHeader !== undefined) {
      return yield* Either.left(errors.accessDenied(`there were headers present in the request which were not signed: ${unsignedHeader}`))
    }
    const contentSha = q("X-Amz-Content-Sha256") ?? req.headers["x-amz-content-sha256"] ?? "UNSIGNED-PAYLOAD"
    const canonical = [req.method, req.rawPath, canonicalQuery(query, "X-Amz-Signature"), headersBlock, signedHeaders, contentSha].join("\n")
    const key = signingKey(user.secretAccessKey, cred.date, cred.region, cred.service)
    const expected = hmac(key, stringToSign(amzDate, cred.scope, canonical))
    if (!sameSignature(expected, signature)) {
      return yield* Either.left(errors.signatureDoesNotMatch("the request signature we calculated does not match the signature you provided; check your key and signing method"))
    }
    const payload: Payload = /^[0-9a-f]{64}$/.test(contentSha) ? { _tag: "Sha256", hex: contentSha } : { _tag: "Unsigned" }
    return { user, payload }
  })

/**
 * The first `x-amz-*` header of a request its signature does not cover, if any: S3 requires every
 * one to be signed, except `x-amz-content-sha256` and what streaming uploads send outside the
 * signature (`x-amz-decoded-content-length`, `x-amz-trailer`, `x-amz-checksum-*`).
 */
const unsignedAmzHeader = (headers: Readonly<Record<string, string>>, signed: ReadonlyArray<string>): string | undefined =>
  Object.keys(headers).find((h) =>
    h.startsWith("x-amz-") && !signed.includes(h) && h !== "x-amz-content-sha256" &&
    !(h === "x-amz-decoded-content-length" || h === "x-amz-trailer" || h.startsWith("x-amz-checksum-"))
  )

/**
 * The signature of one `aws-chunked` chunk, chained from the previous one.
 *
 * @since 0.1.0
 * @category signing
 */
export const chunkSignature = (
  payload: Extract<Payload, { readonly _tag: "StreamingSigned" }>,
  previous: string,
  chunkSha256Hex: string
): Buffer =>
  hmac(
    Redacted.value(payload.signingKey),
    `${ALGORITHM}-PAYLOAD\n${payload.amzDate}\n${payload.scope}\n${previous}\n${EMPTY_SHA256}\n${chunkSha256Hex}`
  )

/**
 * The signature of the trailing headers of a `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER` body,
 * chained from the final chunk's signature; `canonicalTrailers` is `name:value\n` per header.
 *
 * @since 0.1.0
 * @category signing
 */
export const trailerSignature = (
  payload: Extract<Payload, { readonly _tag: "StreamingSigned" }>,
  previous: string,
  canonicalTrailers: string
): Buffer =>
  hmac(
    Redacted.value(payload.signingKey),
    `${ALGORITHM}-TRAILER\n${payload.amzDate}\n${payload.scope}\n${previous}\n${sha256Hex(canonicalTrailers)}`
  )

/**
 * Compares a computed signature with a hex one in constant time.
 *
 * @since 0.1.0
 * @category verification
 */
export const signatureMatches = sameSignature

/**
 * True when the user may use the bucket.
 *
 * @since 0.1.0
 * @category authorization
 */
export const mayUse = (user: User, bucket: string): boolean => user.buckets === "*" || user.buckets.includes(bucket)
