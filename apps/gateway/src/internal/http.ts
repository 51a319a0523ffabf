import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type { Stream } from "effect"
import * as S3Error from "../S3Error.js"
import * as Xml from "../Xml.js"

export const xml = (body: string, options?: { readonly status?: number; readonly headers?: Record<string, string> }) =>
  HttpServerResponse.text(Xml.document(body), {
    status: options?.status ?? 200,
    contentType: "application/xml",
    headers: options?.headers ?? {}
  })

export const empty = (status: number, headers?: Record<string, string>) => HttpServerResponse.empty({ status, headers: headers ?? {} })

/** A streamed body of a known length; `Content-Length` is always sent (also 0: the platform drops a zero length). */
export const stream = (body: Stream.Stream<Uint8Array, unknown>, status: number, headers: Record<string, string>, contentLength: number) =>
  HttpServerResponse.stream(body, { status, headers: { ...headers, "content-length": String(contentLength) }, contentLength })

export const errorResponse = (e: S3Error.S3Error, requestId: string, method: string) =>
  method === "HEAD"
    ? HttpServerResponse.empty({ status: e.status, headers: { "x-amz-request-id": requestId, "x-amz-error-code": e.code } })
    : HttpServerResponse.text(S3Error.toXml(e, requestId), {
      status: e.status,
      contentType: "application/xml",
      headers: { "x-amz-request-id": requestId }
    })

export const isoDate = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, ".000Z")
export const httpDate = (d: Date) => d.toUTCString()
