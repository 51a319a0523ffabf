/**
 * SDK exceptions → core `StoreError`s, at the driver's boundary. Only the error's name/code, HTTP
 * status and the server's short message travel on; never the request, its headers or a key.
 *
 * @since 0.1.0
 */
import { AccessDenied, InvalidObjectKey, InvalidRange, ObjectNotFound, PreconditionFailed, ProviderError } from "@objcrypt/core/Errors"
import type { StoreError } from "@objcrypt/core/Errors"

/** @internal */
export const PROVIDER = "s3"

/** @internal */
export interface SdkErrorFacts {
  readonly code: string
  readonly status: number | undefined
  readonly message: string
}

// A base64 AES-256 key (44 chars) or its MD5 (24 chars) never belongs in an error: scrub anything
// shaped like one, whatever produced the message.
const scrub = (s: string): string =>
  s.replace(/[A-Za-z0-9+/]{43}=/g, "[redacted]").replace(/[A-Za-z0-9+/]{22}==/g, "[redacted]").slice(0, 300)

/** @internal */
export const factsOf = (e: unknown): SdkErrorFacts => {
  if (typeof e !== "object" || e === null) return { code: "Unknown", status: undefined, message: "" }
  const o = e as {
    name?: unknown
    Code?: unknown
    code?: unknown
    message?: unknown
    $metadata?: { httpStatusCode?: unknown }
    $fault?: unknown
    $response?: { statusCode?: unknown }
  }
  const status = typeof o.$metadata?.httpStatusCode === "number"
    ? o.$metadata.httpStatusCode
    : typeof o.$response?.statusCode === "number"
    ? o.$response.statusCode
    : undefined
  const code = typeof o.Code === "string" && o.Code !== ""
    ? o.Code
    : typeof o.code === "string" && o.code !== ""
    ? o.code
    : typeof o.name === "string" && o.name !== "" && o.name !== "Error"
    ? o.name
    : "Unknown"
  // Only service replies (an XML <Message>) and system errors carry a useful, safe message.
  const message = typeof o.message === "string" && (o.$fault !== undefined || typeof o.code === "string") ? scrub(o.message) : ""
  return { code, status, message }
}

/** @internal */
export type Operation =
  | "put"
  | "get"
  | "head"
  | "list"
  | "remove"
  | "copy"
  | "createMultipart"
  | "uploadPart"
  | "uploadPartCopy"
  | "completeMultipart"
  | "abortMultipart"
  | "listMultipartUploads"
  | "createBucket"
  | "deleteBucket"
  | "getBucketEncryption"
  | "putBucketEncryption"
  | "deleteBucketEncryption"
  | "probe"

const READS: ReadonlySet<Operation> = new Set(["get", "head", "copy", "uploadPartCopy"])

/**
 * Converts anything the SDK threw into a `StoreError`.
 *
 * @internal
 */
export const toStoreError = (
  operation: Operation,
  key: string | undefined,
  e: unknown,
  context?: { readonly size?: number | undefined; readonly range?: string | undefined; readonly customerKey?: boolean | undefined }
): StoreError => {
  const { code, message, status } = factsOf(e)
  const k = key ?? ""
  if (code === "NoSuchKey" || (status === 404 && (code === "NotFound" || code === "Unknown") && key !== undefined)) {
    return new ObjectNotFound({ key: k })
  }
  if (code === "NoSuchUpload") {
    return new PreconditionFailed({ key: k, reason: "the multipart upload does not exist (aborted or completed)" })
  }
  if (code === "InvalidRange" || status === 416) {
    return new InvalidRange({ key: k, range: context?.range ?? "", size: context?.size ?? -1 })
  }
  if (code === "PreconditionFailed" || status === 412 || code === "ConditionalRequestConflict") {
    return new PreconditionFailed({ key: k, reason: code === "ConditionalRequestConflict" ? "a concurrent conditional write won" : "the object already exists or changed" })
  }
  if (code === "KeyTooLongError") return new InvalidObjectKey({ key: k, reason: "longer than the store accepts" })
  if (status === 403 || code === "AccessDenied" || code === "InvalidAccessKeyId" || code === "SignatureDoesNotMatch") {
    return new AccessDenied({
      provider: PROVIDER,
      operation,
      ...(key === undefined ? {} : { key }),
      reason: READS.has(operation) && context?.customerKey === true ? `${code}: the customer key (SSE-C) does not match the object's` : code
    })
  }
  // S3 answers 400 to a read of an SSE-C object without its key, or with a key it cannot use.
  if (status === 400 && READS.has(operation) && key !== undefined) {
    return new AccessDenied({
      provider: PROVIDER,
      operation,
      key,
      reason: `${code}: ${context?.customerKey === true ? "the customer key (SSE-C) is not the object's" : "the object is encrypted with a customer key (SSE-C); give its key"}`
    })
  }
  return new ProviderError({
    provider: PROVIDER,
    operation,
    ...(key === undefined ? {} : { key }),
    code,
    detail: message,
    ...(status === undefined ? {} : { status })
  })
}
