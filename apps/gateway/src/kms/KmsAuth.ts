/**
 * AWS Signature Version 4 for the KMS JSON protocol: the `Authorization` header with the
 * credential scoped to service `kms` and the service's region, the payload hash computed from the
 * POST body (clients of this protocol do not send `x-amz-content-sha256`; when one is sent it must
 * match), signatures compared in constant time. The signing-key derivation and encoding come from
 * the S3 API's `SigV4` module.
 *
 * @since 0.1.0
 */
import { Either } from "effect"
import * as crypto from "node:crypto"
import * as SigV4 from "../SigV4.js"
import { errors } from "./KmsError.js"
import type { KmsApiError } from "./KmsError.js"

/**
 * The request as it arrived.
 *
 * @since 0.1.0
 * @category models
 */
export interface Request {
  readonly method: string
  readonly rawPath: string
  readonly rawQuery: string
  /** Lower-case names. */
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
  readonly now: Date
}

const ALGORITHM = "AWS4-HMAC-SHA256"
const MAX_SKEW_MS = 5 * 60 * 1000

const sha256Hex = (data: Uint8Array | string) => crypto.createHash("sha256").update(data).digest("hex")
const hmac = (key: crypto.BinaryLike | crypto.KeyObject, data: string) => crypto.createHmac("sha256", key).update(data, "utf8").digest()

const decode = (s: string): string | undefined => {
  try {
    return decodeURIComponent(s.replace(/\+/g, "%20"))
  } catch {
    return undefined
  }
}

const canonicalQuery = (raw: string): string | undefined => {
  const pairs: Array<readonly [string, string]> = []
  for (const part of raw.split("&")) {
    if (part === "") continue
    const i = part.indexOf("=")
    const k = decode(i < 0 ? part : part.slice(0, i))
    const v = decode(i < 0 ? "" : part.slice(i + 1))
    if (k === undefined || v === undefined) return undefined
    pairs.push([SigV4.uriEncode(k), SigV4.uriEncode(v)])
  }
  return pairs
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join("&")
}

/**
 * Verifies the request's signature and returns its user.
 *
 * @since 0.1.0
 * @category verification
 */
export const verify = (
  req: Request,
  region: string,
  lookup: (accessKeyId: string) => SigV4.User | undefined
): Either.Either<SigV4.User, KmsApiError> =>
  Either.gen(function*() {
    const auth = req.headers["authorization"]
    if (auth === undefined) return yield* Either.left(errors.missingAuthenticationToken("Request is missing Authentication Token"))
    if (!auth.startsWith(`${ALGORITHM} `)) return yield* Either.left(errors.incompleteSignature("unsupported authorization type; use AWS4-HMAC-SHA256"))
    const fields = SigV4.authorizationFields(auth)
    if (fields === undefined) {
      return yield* Either.left(errors.incompleteSignature("Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters"))
    }
    const { credential, signature, signedHeaders } = fields
    const cred = SigV4.splitCredential(credential)
    if (cred === undefined) {
      return yield* Either.left(errors.incompleteSignature("the Credential is malformed; expected \"<access key>/YYYYMMDD/REGION/SERVICE/aws4_request\""))
    }
    const { accessKeyId, date, region: credRegion, service } = cred
    const user = lookup(accessKeyId)
    if (user === undefined) return yield* Either.left(errors.unrecognizedClient("The security token included in the request is invalid."))
    if (service !== "kms") return yield* Either.left(errors.invalidSignature("Credential should be scoped to correct service: 'kms'."))
    if (credRegion !== region) return yield* Either.left(errors.invalidSignature(`Credential should be scoped to a valid region, not '${credRegion.slice(0, 64)}'.`))
    const amzDate = req.headers["x-amz-date"]
    const when = amzDate === undefined ? undefined : SigV4.parseAmzDate(amzDate)
    if (amzDate === undefined || when === undefined) return yield* Either.left(errors.incompleteSignature("Authorization requires a valid X-Amz-Date header"))
    if (amzDate.slice(0, 8) !== date) return yield* Either.left(errors.invalidSignature("the credential date does not match X-Amz-Date"))
    if (Math.abs(req.now.getTime() - when.getTime()) > MAX_SKEW_MS) return yield* Either.left(errors.invalidSignature("Signature expired"))
    const signed = signedHeaders.split(";")
    if (!signed.includes("host")) return yield* Either.left(errors.incompleteSignature("the host header must be signed"))
    let headersBlock = ""
    for (const name of signed) {
      const v = req.headers[name]
      if (v === undefined) return yield* Either.left(errors.incompleteSignature(`signed header ${name.slice(0, 64)} is missing`))
      headersBlock += `${name}:${v.trim().replace(/\s+/g, " ")}\n`
    }
    const payloadHash = sha256Hex(req.body)
    const claimed = req.headers["x-amz-content-sha256"]
    if (claimed !== undefined && claimed !== payloadHash) {
      return yield* Either.left(errors.invalidSignature("the x-amz-content-sha256 header does not match the body"))
    }
    const query = canonicalQuery(req.rawQuery)
    if (query === undefined) return yield* Either.left(errors.incompleteSignature("the query string is malformed"))
    const canonical = [req.method, req.rawPath, query, headersBlock, signedHeaders, payloadHash].join("\n")
    const scope = `${date}/${credRegion}/${service}/aws4_request`
    const expected = hmac(
      SigV4.signingKey(user.secretAccessKey, date, credRegion, service),
      `${ALGORITHM}\n${amzDate}\n${scope}\n${sha256Hex(canonical)}`
    )
    if (!SigV4.signatureMatches(expected, signature)) {
      return yield* Either.left(errors.invalidSignature("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."))
    }
    return user
  })
