/**
 * Browser-based uploads (S3's POST Object with a SigV4-signed policy): the policy document, its
 * signature and the conditions it places on the form fields, as the Amazon S3 reference
 * ("Creating a POST policy", "Browser-based uploads using POST (AWS Signature Version 4)")
 * describes them. The caller streams the file; only its length is checked here.
 *
 * @since 0.1.0
 */
import { Either, Schema } from "effect"
import * as crypto from "node:crypto"
import { errors } from "./S3Error.js"
import type { S3Error } from "./S3Error.js"
import * as SigV4 from "./SigV4.js"

/**
 * One condition of a policy. Field names are lower-case, without `$`.
 *
 * @since 0.1.0
 * @category models
 */
export type Condition =
  | { readonly _tag: "Eq"; readonly field: string; readonly value: string; readonly source: string }
  | { readonly _tag: "StartsWith"; readonly field: string; readonly value: string; readonly source: string }
  | { readonly _tag: "ContentLengthRange"; readonly min: number; readonly max: number; readonly source: string }

/**
 * @since 0.1.0
 * @category models
 */
export interface Policy {
  readonly expiration: Date
  readonly conditions: ReadonlyArray<Condition>
}

/**
 * A policy whose signature checked out, with the user who signed it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Verified {
  readonly user: SigV4.User
  readonly policy: Policy
  readonly contentLength: { readonly min: number; readonly max: number } | undefined
}

/** Fields the policy need not cover. */
const EXEMPT = new Set(["x-amz-signature", "file", "policy"])
const MAX_POLICY = 20 * 1024
const PolicyJson = Schema.parseJson(Schema.Struct({ expiration: Schema.String, conditions: Schema.Array(Schema.Unknown) }))
const decodePolicyJson = Schema.decodeUnknownEither(PolicyJson)

const invalidPolicy = (m: string) => errors.invalidPolicyDocument(`invalid Policy: ${m}`)
const denied = (m: string) => errors.accessDenied(`invalid according to Policy: ${m}`)

const toNumber = (u: unknown): number | undefined => {
  const n = typeof u === "number" ? u : typeof u === "string" && /^\d+$/.test(u) ? Number(u) : Number.NaN
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined
}

/**
 * Decodes a base64 policy document.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = (base64: string): Either.Either<Policy, S3Error> => {
  if (base64.length > MAX_POLICY || !/^[A-Za-z0-9+/=\s]*$/.test(base64)) return Either.left(invalidPolicy("invalid base64 encoding"))
  const doc = decodePolicyJson(Buffer.from(base64, "base64").toString("utf8"))
  if (Either.isLeft(doc)) return Either.left(invalidPolicy("invalid JSON, or no expiration and conditions"))
  const expiration = new Date(doc.right.expiration)
  if (Number.isNaN(expiration.getTime()) || !/^\d{4}-\d{2}-\d{2}T/.test(doc.right.expiration)) {
    return Either.left(invalidPolicy("invalid 'expiration' value"))
  }
  const conditions: Array<Condition> = []
  for (const c of doc.right.conditions) {
    const source = JSON.stringify(c)
    if (Array.isArray(c)) {
      const [op, a, b] = c as ReadonlyArray<unknown>
      if (c.length !== 3 || typeof op !== "string") return Either.left(invalidPolicy(`condition ${source} is malformed`))
      const opName = op.toLowerCase()
      if (opName === "content-length-range") {
        const min = toNumber(a)
        const max = toNumber(b)
        if (min === undefined || max === undefined || min > max) return Either.left(invalidPolicy(`condition ${source} is malformed`))
        conditions.push({ _tag: "ContentLengthRange", min, max, source })
      } else if (opName === "eq" || opName === "starts-with") {
        if (typeof a !== "string" || !a.startsWith("$") || typeof b !== "string") return Either.left(invalidPolicy(`condition ${source} is malformed`))
        conditions.push({ _tag: opName === "eq" ? "Eq" : "StartsWith", field: a.slice(1).toLowerCase(), value: b, source })
      } else {
        return Either.left(invalidPolicy(`condition ${source} has an unknown operation`))
      }
    } else if (typeof c === "object" && c !== null) {
      const entries = Object.entries(c as Record<string, unknown>)
      if (entries.length !== 1 || typeof entries[0]![1] !== "string") return Either.left(invalidPolicy(`condition ${source} is malformed`))
      conditions.push({ _tag: "Eq", field: entries[0]![0].toLowerCase(), value: entries[0]![1] as string, source })
    } else {
      return Either.left(invalidPolicy(`condition ${source} is malformed`))
    }
  }
  return Either.right({ expiration, conditions })
}

/**
 * Verifies a form's SigV4 policy signature and its conditions. `fields` has lower-case names;
 * `bucket` is the addressed bucket (checked against `bucket` conditions). The file's length is
 * checked by the caller against `contentLength` while it streams.
 *
 * @since 0.1.0
 * @category verification
 */
export const verify = (
  fields: ReadonlyMap<string, string>,
  bucket: string,
  lookup: (accessKeyId: string) => SigV4.User | undefined,
  now: Date
): Either.Either<Verified, S3Error> =>
  Either.gen(function*() {
    const policyText = fields.get("policy")
    const signature = fields.get("x-amz-signature")
    const algorithm = fields.get("x-amz-algorithm")
    const credential = fields.get("x-amz-credential")
    const amzDate = fields.get("x-amz-date")
    if (policyText === undefined && signature === undefined) return yield* Either.left(errors.accessDenied("anonymous uploads are not allowed"))
    if (policyText === undefined || signature === undefined || algorithm === undefined || credential === undefined || amzDate === undefined) {
      return yield* Either.left(errors.invalidArgument("a signed POST needs the policy, x-amz-algorithm, x-amz-credential, x-amz-date and x-amz-signature fields"))
    }
    if (algorithm !== "AWS4-HMAC-SHA256") return yield* Either.left(errors.invalidArgument("x-amz-algorithm only supports AWS4-HMAC-SHA256"))
    const parts = credential.split("/")
    if (parts.length !== 5 || parts[3] !== "s3" || parts[4] !== "aws4_request" || !/^\d{8}$/.test(parts[1]!)) {
      return yield* Either.left(errors.invalidArgument("the x-amz-credential field is malformed"))
    }
    if (!/^\d{8}T\d{6}Z$/.test(amzDate) || amzDate.slice(0, 8) !== parts[1]) {
      return yield* Either.left(errors.invalidArgument("x-amz-date must be in ISO8601 basic format and match the credential date"))
    }
    const user = lookup(parts[0]!)
    if (user === undefined) return yield* Either.left(errors.invalidAccessKeyId("the AWS access key id you provided does not exist in our records"))
    const key = SigV4.signingKey(user.secretAccessKey, parts[1]!, parts[2]!, "s3")
    const expected = crypto.createHmac("sha256", key).update(policyText, "utf8").digest()
    if (!SigV4.signatureMatches(expected, signature)) {
      return yield* Either.left(errors.signatureDoesNotMatch("the request signature we calculated does not match the signature you provided; check your key and signing method"))
    }
    if (!SigV4.mayUse(user, bucket)) return yield* Either.left(errors.accessDenied("access denied", `/${bucket}`))
    const policy = yield* parse(policyText)
    if (now.getTime() >= policy.expiration.getTime()) return yield* Either.left(denied("policy expired"))
    const withBucket = new Map(fields)
    withBucket.set("bucket", bucket)
    let contentLength: Verified["contentLength"]
    const covered = new Set<string>()
    for (const c of policy.conditions) {
      if (c._tag === "ContentLengthRange") {
        contentLength = { min: c.min, max: c.max }
        continue
      }
      covered.add(c.field)
      const v = withBucket.get(c.field) ?? ""
      const ok = c._tag === "Eq" ? v === c.value : v.startsWith(c.value)
      if (!ok) return yield* Either.left(denied(`policy condition failed: ${c.source}`))
    }
    const extra = [...fields.keys()].filter((f) => !EXEMPT.has(f) && !f.startsWith("x-ignore-") && !covered.has(f))
    if (extra.length > 0) return yield* Either.left(denied(`extra input fields: ${extra.join(", ")}`))
    return { user, policy, contentLength }
  })

/**
 * The object key of a form: `${filename}` replaced by the uploaded file's name.
 *
 * @since 0.1.0
 * @category fields
 */
export const objectKey = (fields: ReadonlyMap<string, string>, filename: string): string | undefined =>
  fields.get("key")?.replaceAll("${filename}", filename)

/**
 * Where a successful upload sends the browser: a 303 to `success_action_redirect` (with bucket,
 * key and etag appended), else the `success_action_status` (200, 201 with a `PostResponse`
 * document, or the default 204).
 *
 * @since 0.1.0
 * @category responses
 */
export const outcome = (
  fields: ReadonlyMap<string, string>,
  result: { readonly bucket: string; readonly key: string; readonly etag: string }
): { readonly _tag: "Redirect"; readonly location: string } | { readonly _tag: "Status"; readonly status: 200 | 201 | 204 } => {
  const redirect = fields.get("success_action_redirect") ?? fields.get("redirect")
  if (redirect !== undefined) {
    try {
      const url = new URL(redirect)
      if (url.protocol === "http:" || url.protocol === "https:") {
        url.searchParams.set("bucket", result.bucket)
        url.searchParams.set("key", result.key)
        url.searchParams.set("etag", `"${result.etag}"`)
        return { _tag: "Redirect", location: url.toString() }
      }
    } catch {
      // S3 ignores a redirect that is not a URL and answers with the status.
    }
  }
  const status = fields.get("success_action_status")
  return { _tag: "Status", status: status === "200" ? 200 : status === "201" ? 201 : 204 }
}
