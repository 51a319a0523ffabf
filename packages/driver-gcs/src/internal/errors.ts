/**
 * Client exceptions → core `StoreError`s, at the driver's boundary. Only the HTTP status and
 * Google's error `reason` travel on; never the request, its headers or a key.
 *
 * @since 0.1.0
 */
import { AccessDenied, InvalidObjectKey, InvalidRange, ObjectNotFound, PreconditionFailed, ProviderError } from "@objcrypt/core/Errors"
import type { StoreError } from "@objcrypt/core/Errors"

/** @internal */
export const PROVIDER = "gcs"

/** @internal */
export type Operation =
  | "put"
  | "get"
  | "head"
  | "list"
  | "remove"
  | "copy"
  | "compose"
  | "createMultipart"
  | "uploadPart"
  | "completeMultipart"
  | "abortMultipart"
  | "sweepUploads"
  | "createBucket"
  | "getBucket"
  | "probe"

/** @internal */
export interface ClientErrorFacts {
  readonly status: number | undefined
  /** Google's `errors[0].reason` (`notFound`, `conditionNotMet`…), or a system error code. */
  readonly reason: string
}

const reasonFromBody = (message: string): string | undefined => {
  // Download errors carry the raw JSON error body as their message.
  if (!message.trimStart().startsWith("{")) return undefined
  try {
    const body = JSON.parse(message) as { error?: { errors?: Array<{ reason?: unknown }> } }
    const r = body.error?.errors?.[0]?.reason
    return typeof r === "string" ? r : undefined
  } catch {
    return undefined
  }
}

/** @internal */
export const factsOf = (e: unknown): ClientErrorFacts => {
  if (typeof e !== "object" || e === null) return { status: undefined, reason: "Unknown" }
  const o = e as {
    code?: unknown
    status?: unknown
    response?: { status?: unknown }
    errors?: Array<{ reason?: unknown }>
    message?: unknown
    name?: unknown
  }
  const status = typeof o.code === "number"
    ? o.code
    : typeof o.status === "number"
    ? o.status
    : typeof o.response?.status === "number"
    ? o.response.status
    : typeof o.code === "string" && /^\d{3}$/.test(o.code)
    ? Number(o.code)
    : undefined
  const listed = Array.isArray(o.errors) && typeof o.errors[0]?.reason === "string" ? o.errors[0].reason : undefined
  const fromBody = typeof o.message === "string" ? reasonFromBody(o.message) : undefined
  const system = typeof o.code === "string" && !/^\d{3}$/.test(o.code) ? o.code : undefined
  const name = typeof o.name === "string" && o.name !== "Error" ? o.name : undefined
  return { status, reason: listed ?? fromBody ?? system ?? name ?? (status === undefined ? "Unknown" : `HTTP${status}`) }
}

const CSEK_REASONS = new Set([
  "resourceIsEncryptedWithCustomerEncryptionKey",
  "customerEncryptionKeyIsIncorrect",
  "resourceNotEncryptedWithCustomerEncryptionKey",
  "customerEncryptionKeySha256IsInvalid",
  "customerEncryptionKeyFormatIsInvalid",
  "customerEncryptionAlgorithmIsInvalid"
])

const csekText = (reason: string) =>
  reason === "resourceIsEncryptedWithCustomerEncryptionKey"
    ? "the object is encrypted with a customer-supplied key (CSEK); give its key"
    : reason === "resourceNotEncryptedWithCustomerEncryptionKey"
    ? "the object is not encrypted with a customer-supplied key, but one was given"
    : reason === "customerEncryptionKeyIsIncorrect"
    ? "the customer-supplied key (CSEK) is not the object's"
    : `the customer-supplied key was refused (${reason})`

/**
 * Converts anything the client threw into a `StoreError`.
 *
 * @internal
 */
export const toStoreError = (
  operation: Operation,
  key: string | undefined,
  e: unknown,
  context?: { readonly range?: string | undefined; readonly size?: number | undefined }
): StoreError => {
  if (isStoreError(e)) return e
  const { reason, status } = factsOf(e)
  const k = key ?? ""
  if (status === 404 && key !== undefined) return new ObjectNotFound({ key })
  if (status === 412) return new PreconditionFailed({ key: k, reason: "the object already exists or changed (conditionNotMet)" })
  if (status === 416) return new InvalidRange({ key: k, range: context?.range ?? "", size: context?.size ?? -1 })
  if (status === 400 && CSEK_REASONS.has(reason)) {
    return new AccessDenied({ provider: PROVIDER, operation, ...(key === undefined ? {} : { key }), reason: csekText(reason) })
  }
  if (status === 401 || status === 403) {
    return new AccessDenied({ provider: PROVIDER, operation, ...(key === undefined ? {} : { key }), reason })
  }
  if (status === 400 && reason === "invalid" && key !== undefined && (operation === "put" || operation === "get" || operation === "head")) {
    return new InvalidObjectKey({ key, reason: "the store refused the name" })
  }
  return new ProviderError({
    provider: PROVIDER,
    operation,
    ...(key === undefined ? {} : { key }),
    code: reason,
    detail: "",
    ...(status === undefined ? {} : { status })
  })
}

/** @internal */
export const isStoreError = (e: unknown): e is StoreError =>
  e instanceof ObjectNotFound || e instanceof InvalidObjectKey || e instanceof InvalidRange || e instanceof PreconditionFailed ||
  e instanceof AccessDenied || e instanceof ProviderError
