/**
 * Server-side encryption parameters ↔ the S3 SDK's input and output fields. The SDK turns these
 * fields into `x-amz-server-side-encryption*` headers (and computes the SSE-C key MD5 itself).
 *
 * @since 0.1.0
 */
import type { CopyObjectCommand } from "@aws-sdk/client-s3"
import type { ServerEncryptionInfo, ServerSideEncryption } from "@objcrypt/core/ObjectStore"
import { Redacted } from "effect"

/** Fields of PutObject, CreateMultipartUpload and CopyObject (destination). @internal */
export interface WriteSseFields {
  ServerSideEncryption?: "AES256" | "aws:kms" | "aws:kms:dsse"
  SSEKMSKeyId?: string
  SSEKMSEncryptionContext?: string
  BucketKeyEnabled?: boolean
  SSECustomerAlgorithm?: string
  SSECustomerKey?: string
  SSECustomerKeyMD5?: string
}

/** Fields of GetObject, HeadObject, UploadPart, CompleteMultipartUpload (SSE-C only). @internal */
export interface CustomerKeyFields {
  SSECustomerAlgorithm?: string
  SSECustomerKey?: string
  SSECustomerKeyMD5?: string
}

/** CopyObject / UploadPartCopy source fields. @internal */
export interface CopySourceFields {
  CopySourceSSECustomerAlgorithm?: string
  CopySourceSSECustomerKey?: string
  CopySourceSSECustomerKeyMD5?: string
}

/**
 * The encryption context as S3 wants it: base64 of its JSON.
 *
 * @internal
 */
export const encodeContext = (context: Readonly<Record<string, string>>): string =>
  Buffer.from(JSON.stringify(context), "utf8").toString("base64")

const customer = (sse: ServerSideEncryption | undefined): CustomerKeyFields =>
  sse?._tag === "SseC"
    ? {
      SSECustomerAlgorithm: "AES256",
      SSECustomerKey: Buffer.from(Redacted.value(sse.key.material)).toString("base64"),
      SSECustomerKeyMD5: sse.key.md5
    }
    : {}

/**
 * Request fields for a write (put, createMultipart, copy destination).
 *
 * @internal
 */
export const writeFields = (sse: ServerSideEncryption | undefined): WriteSseFields => {
  if (sse === undefined) return {}
  switch (sse._tag) {
    case "SseS3":
      return { ServerSideEncryption: "AES256" }
    case "SseKms":
      return {
        ServerSideEncryption: sse.dsse === true ? "aws:kms:dsse" : "aws:kms",
        ...(sse.keyId === undefined ? {} : { SSEKMSKeyId: sse.keyId }),
        ...(sse.context === undefined ? {} : { SSEKMSEncryptionContext: encodeContext(sse.context) }),
        ...(sse.bucketKey === undefined ? {} : { BucketKeyEnabled: sse.bucketKey })
      }
    case "SseC":
      return customer(sse)
  }
}

/**
 * Request fields for a read or a part upload: only SSE-C keys are sent again; S3 refuses
 * `x-amz-server-side-encryption` on GET/HEAD.
 *
 * @internal
 */
export const customerKeyFields = customer

/**
 * Request fields naming the key of an SSE-C copy source.
 *
 * @internal
 */
export const copySourceFields = (sse: ServerSideEncryption | undefined): CopySourceFields => {
  const c = customer(sse)
  return c.SSECustomerKey === undefined
    ? {}
    : {
      CopySourceSSECustomerAlgorithm: c.SSECustomerAlgorithm!,
      CopySourceSSECustomerKey: c.SSECustomerKey,
      CopySourceSSECustomerKeyMD5: c.SSECustomerKeyMD5!
    }
}

/** Response fields S3 returns about encryption. @internal */
export interface SseResponse {
  readonly ServerSideEncryption?: string | undefined
  readonly SSEKMSKeyId?: string | undefined
  readonly BucketKeyEnabled?: boolean | undefined
  readonly SSECustomerAlgorithm?: string | undefined
  readonly SSECustomerKeyMD5?: string | undefined
}

/**
 * How the store says it stored the object.
 *
 * @internal
 */
export const infoOf = (r: SseResponse): ServerEncryptionInfo => {
  if (r.SSECustomerAlgorithm !== undefined && r.SSECustomerAlgorithm !== "") {
    return { mode: "SseC", ...(r.SSECustomerKeyMD5 === undefined ? {} : { customerKeyMd5: r.SSECustomerKeyMD5 }) }
  }
  switch (r.ServerSideEncryption) {
    case undefined:
    case "":
      return { mode: "None" }
    case "AES256":
      return { mode: "SseS3", ...(r.BucketKeyEnabled === undefined ? {} : { bucketKeyEnabled: r.BucketKeyEnabled }) }
    case "aws:kms":
    case "aws:kms:dsse":
      return {
        mode: "SseKms",
        ...(r.SSEKMSKeyId === undefined ? {} : { kmsKeyId: r.SSEKMSKeyId }),
        ...(r.BucketKeyEnabled === undefined ? {} : { bucketKeyEnabled: r.BucketKeyEnabled })
      }
    default:
      return { mode: "Unknown" }
  }
}

/**
 * CompleteMultipartUpload (and UploadPartCopy) do not echo SSE-C; the request's key is what the
 * object is stored under.
 *
 * @internal
 */
export const infoOrRequested = (r: SseResponse, sse: ServerSideEncryption | undefined): ServerEncryptionInfo => {
  const info = infoOf(r)
  return info.mode === "None" && sse?._tag === "SseC" ? { mode: "SseC", customerKeyMd5: sse.key.md5 } : info
}

/**
 * Ceph RGW reads a copy's source ETag condition from `x-amz-copy-if-match` (its documented name)
 * and ignores S3's `x-amz-copy-source-if-match`: this plugin, used on one CopyObject, sends the
 * condition under RGW's name too. RGW checks neither on UploadPartCopy. @internal
 */
export const getRgwCopyIfMatchPlugin = (etag: string) => ({
  applyToStack: (stack: CopyObjectCommand["middlewareStack"]) => {
    stack.add(
      (next) => (args) => {
        const request = args.request as { headers?: Record<string, string> } | undefined
        if (request?.headers !== undefined) request.headers["x-amz-copy-if-match"] = etag
        return next(args)
      },
      { step: "build", name: "objcryptRgwCopyIfMatch", tags: ["objcrypt"] }
    )
  }
})
