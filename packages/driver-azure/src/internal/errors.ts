/**
 * Converts Azure SDK failures into the contract's `StoreError`s at the driver boundary. Only the
 * service's error code and HTTP status are kept, never the request (which may carry a key).
 *
 * @since 0.1.0
 */
import { AccessDenied, InvalidRange, ObjectNotFound, PreconditionFailed, ProviderError } from "@objcrypt/core/Errors"
import type { StoreError } from "@objcrypt/core/Errors"

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
  | "completeMultipart"
  | "abortMultipart"
  | "createContainer"
  | "deleteContainer"

/** @internal */
export interface ErrorContext {
  /** The request carried a customer-provided key. */
  readonly customerKey?: boolean | undefined
  /** A failed commit means the upload's blocks are gone (completed, aborted or overwritten). */
  readonly commit?: boolean | undefined
  readonly size?: number | undefined
  readonly range?: string | undefined
}

const codeOf = (e: unknown): { code: string; status: number | undefined } => {
  if (typeof e !== "object" || e === null) return { code: "Unknown", status: undefined }
  const err = e as { name?: unknown; code?: unknown; statusCode?: unknown; details?: { errorCode?: unknown } }
  const status = typeof err.statusCode === "number" ? err.statusCode : undefined
  const code = typeof err.details?.errorCode === "string"
    ? err.details.errorCode
    : typeof err.code === "string"
    ? err.code
    : typeof err.name === "string"
    ? err.name
    : "Unknown"
  return { code, status }
}

const CPK_CODES = new Set([
  "BlobUsesCustomerSpecifiedEncryption",
  "BlobDoesNotUseCustomerSpecifiedEncryption",
  "BlobCustomerSpecifiedEncryptionMismatch",
  "CustomerProvidedKeyMismatch",
  "InvalidEncryptionKey"
])

/** @internal */
export const toStoreError = (operation: Operation, key: string | undefined, e: unknown, ctx?: ErrorContext): StoreError => {
  const { code, status } = codeOf(e)
  const k = key === undefined ? {} : { key }
  if (e instanceof RangeError && /HTTPS/i.test(e.message)) {
    return new AccessDenied({ provider: "azure", operation, ...k, reason: "customer-provided keys need an https endpoint" })
  }
  if (code === "AbortError" || (e as { name?: unknown } | null)?.name === "AbortError") {
    return new ProviderError({ provider: "azure", operation, ...k, code: "Aborted", detail: "the request was aborted" })
  }
  if (CPK_CODES.has(code) || (ctx?.customerKey === true && status === 409)) {
    return new AccessDenied({ provider: "azure", operation, ...k, reason: `the customer-provided key does not match the blob's (${code})` })
  }
  if (status === 404 && code !== "ContainerNotFound") return new ObjectNotFound({ key: key ?? "" })
  if (status === 416 || code === "InvalidRange") {
    return new InvalidRange({ key: key ?? "", range: ctx?.range ?? "", size: ctx?.size ?? -1 })
  }
  if (status === 412 || code === "BlobAlreadyExists" || code === "ConditionNotMet") {
    return new PreconditionFailed({ key: key ?? "", reason: code === "BlobAlreadyExists" ? "the key exists" : `condition not met (${code})` })
  }
  if (ctx?.commit === true && (code === "InvalidBlockList" || code === "InvalidBlockId")) {
    return new PreconditionFailed({ key: key ?? "", reason: "the upload's blocks are gone (completed, aborted or overwritten by another write)" })
  }
  if (status === 401 || status === 403) {
    return new AccessDenied({ provider: "azure", operation, ...k, reason: code })
  }
  const message = e instanceof Error ? e.message.split("\n")[0]!.replace(/(sig|se|sv|sp|skoid|sktid)=[^&\s]*/gi, "$1=…").slice(0, 200) : ""
  return new ProviderError({
    provider: "azure",
    operation,
    ...k,
    code,
    detail: status === undefined ? message : `HTTP ${status}`,
    ...(status === undefined ? {} : { status })
  })
}
