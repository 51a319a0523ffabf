/**
 * The structured access log: one JSON line per request, written when the response is finished or
 * the connection is dropped. A line carries when, who (the configured user name of the access key,
 * never a secret or signature), what (the S3 operation, bucket and key), the outcome (status,
 * bytes, duration) and the request id S3 clients show in their errors. It never carries headers,
 * the query string (presigned URLs hold signatures), customer keys or any key material.
 *
 * @since 0.1.0
 */
import { Effect, Either } from "effect"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs"
import type * as http from "node:http"
import type * as GatewayConfig from "./GatewayConfig.js"
import * as S3Api from "./S3Api.js"

/**
 * One access-log line.
 *
 * @since 0.1.0
 * @category models
 */
export interface Entry {
  /** ISO 8601 time the request arrived. */
  readonly time: string
  /** The `x-amz-request-id` the response carried. */
  readonly requestId: string | null
  readonly remote: string | null
  readonly method: string
  /** The configured name of the user whose access key signed the request (`null`: anonymous or unknown key). */
  readonly user: string | null
  /** The S3 operation (`PutObject`, `ListObjectsV2`…), `Health`/`Ready`, or `Unknown`. */
  readonly operation: string
  readonly bucket: string | null
  readonly key: string | null
  readonly status: number
  /** Request body bytes announced by the client (decoded length for aws-chunked). */
  readonly bytesIn: number | null
  /** Response body bytes sent. */
  readonly bytesOut: number
  readonly durationMs: number
  /** `true` when the connection closed before the response was complete. */
  readonly aborted: boolean
}

/**
 * Where lines go.
 *
 * @since 0.1.0
 * @category models
 */
export type Sink = (line: string) => void

const credentialOf = (req: http.IncomingMessage, query: URLSearchParams): string | undefined => {
  const auth = req.headers.authorization
  if (typeof auth === "string") {
    const m = /Credential=([^/,\s]+)\//.exec(auth)
    if (m !== null) return m[1]
    const v2 = /^AWS ([^:\s]+):/.exec(auth)
    if (v2 !== null) return v2[1]
  }
  const q = query.get("X-Amz-Credential") ?? query.get("x-amz-credential")
  if (q !== null) return q.split("/")[0]
  return query.get("AWSAccessKeyId") ?? undefined
}

// Bucket sub-resources and the operation names S3 (and CloudTrail) give them, after Get/Put/Delete.
const BUCKET_SUBRESOURCES: ReadonlyArray<readonly [string, string]> = [
  ["encryption", "BucketEncryption"],
  ["location", "BucketLocation"],
  ["versioning", "BucketVersioning"],
  ["acl", "BucketAcl"],
  ["policyStatus", "BucketPolicyStatus"],
  ["policy", "BucketPolicy"],
  ["tagging", "BucketTagging"],
  ["cors", "BucketCors"],
  ["lifecycle", "BucketLifecycleConfiguration"],
  ["website", "BucketWebsite"],
  ["logging", "BucketLogging"],
  ["notification", "BucketNotificationConfiguration"],
  ["replication", "BucketReplication"],
  ["object-lock", "ObjectLockConfiguration"],
  ["publicAccessBlock", "PublicAccessBlock"],
  ["ownershipControls", "BucketOwnershipControls"],
  ["accelerate", "BucketAccelerateConfiguration"],
  ["requestPayment", "BucketRequestPayment"]
]

// Bucket configurations kept by id: Get/Put/Delete…Configuration with an `id`, List…Configurations without.
const NAMED_CONFIGURATIONS: ReadonlyArray<readonly [string, string]> = [
  ["inventory", "BucketInventoryConfiguration"],
  ["analytics", "BucketAnalyticsConfiguration"],
  ["metrics", "BucketMetricsConfiguration"],
  ["intelligent-tiering", "BucketIntelligentTieringConfiguration"]
]

/**
 * The S3 operation a request names, and its bucket and key (path style, or virtual-hosted style
 * for the configured domains, as `S3Api.address` reads them), as S3's server access logs and
 * CloudTrail name them.
 *
 * @since 0.1.0
 * @category parsing
 */
export const describe = (
  method: string,
  url: string,
  headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>,
  virtualHostDomains: ReadonlyArray<string> = []
): { readonly operation: string; readonly bucket: string | null; readonly key: string | null } => {
  const qi = url.indexOf("?")
  const rawPath = qi < 0 ? url : url.slice(0, qi)
  const query = new URLSearchParams(qi < 0 ? "" : url.slice(qi + 1))
  const host = headers["host"]
  const addressed = S3Api.address(rawPath, typeof host === "string" ? host : undefined, virtualHostDomains)
  const bucket = Either.isRight(addressed) ? addressed.right.bucket ?? null : null
  const key = Either.isRight(addressed) ? addressed.right.key ?? null : null
  const has = (q: string) => query.has(q)
  const op = (): string => {
    if (bucket === null) return method === "GET" ? "ListBuckets" : "Unknown"
    if (key === null) {
      for (const [sub, name] of NAMED_CONFIGURATIONS) {
        if (has(sub)) {
          if (method === "GET") return has("id") ? `Get${name}` : `List${name}s`
          return method === "PUT" ? `Put${name}` : method === "DELETE" ? `Delete${name}` : "Unknown"
        }
      }
      for (const [sub, name] of BUCKET_SUBRESOURCES) {
        if (has(sub)) {
          const verb = method === "GET" ? "Get" : method === "PUT" ? "Put" : method === "DELETE" ? "Delete" : undefined
          return verb === undefined ? "Unknown" : `${verb}${name}`
        }
      }
      if (method === "GET" && has("uploads")) return "ListMultipartUploads"
      if (method === "GET" && has("versions")) return "ListObjectVersions"
      switch (method) {
        case "GET":
          return query.get("list-type") === "2" ? "ListObjectsV2" : "ListObjects"
        case "HEAD":
          return "HeadBucket"
        case "PUT":
          return "CreateBucket"
        case "DELETE":
          return "DeleteBucket"
        case "POST":
          return has("delete") ? "DeleteObjects" : "PostObject"
        default:
          return "Unknown"
      }
    }
    const copy = headers["x-amz-copy-source"] !== undefined
    switch (method) {
      case "GET":
        if (has("uploadId")) return "ListParts"
        if (has("attributes")) return "GetObjectAttributes"
        if (has("acl")) return "GetObjectAcl"
        if (has("tagging")) return "GetObjectTagging"
        if (has("retention")) return "GetObjectRetention"
        if (has("legal-hold")) return "GetObjectLegalHold"
        return "GetObject"
      case "HEAD":
        return "HeadObject"
      case "PUT":
        if (has("partNumber") && has("uploadId")) return copy ? "UploadPartCopy" : "UploadPart"
        if (has("acl")) return "PutObjectAcl"
        if (has("tagging")) return "PutObjectTagging"
        if (has("retention")) return "PutObjectRetention"
        if (has("legal-hold")) return "PutObjectLegalHold"
        return copy ? "CopyObject" : "PutObject"
      case "POST":
        if (has("uploads")) return "CreateMultipartUpload"
        if (has("uploadId")) return "CompleteMultipartUpload"
        return "Unknown"
      case "DELETE":
        return has("uploadId") ? "AbortMultipartUpload" : has("tagging") ? "DeleteObjectTagging" : "DeleteObject"
      default:
        return "Unknown"
    }
  }
  return { operation: op(), bucket, key }
}

const announcedLength = (req: http.IncomingMessage): number | null => {
  const v = req.headers["x-amz-decoded-content-length"] ?? req.headers["content-length"]
  return typeof v === "string" && /^\d+$/.test(v) ? Number(v) : null
}

const byteLength = (chunk: unknown, encoding?: unknown): number =>
  typeof chunk === "string"
    ? Buffer.byteLength(chunk, typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8")
    : chunk instanceof Uint8Array
    ? chunk.byteLength
    : 0

/**
 * Logs every request `server` receives to `sink`. `users` maps access key ids to user names;
 * `classify` may name requests the S3 parser would not (health endpoints).
 *
 * @since 0.1.0
 * @category constructors
 */
export const attach = (
  server: http.Server,
  options: {
    readonly sink: Sink
    readonly users: ReadonlyMap<string, string>
    readonly virtualHostDomains?: ReadonlyArray<string> | undefined
    readonly classify?: ((req: http.IncomingMessage) => string | undefined) | undefined
  }
): void => {
  server.prependListener("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    const started = process.hrtime.bigint()
    const time = new Date().toISOString()
    const url = req.url ?? "/"
    const qi = url.indexOf("?")
    const query = new URLSearchParams(qi < 0 ? "" : url.slice(qi + 1))
    const special = options.classify?.(req)
    const described = special === undefined ? describe(req.method ?? "GET", url, req.headers, options.virtualHostDomains) : { operation: special, bucket: null, key: null }
    const keyId = credentialOf(req, query)
    let bytesOut = 0
    let requestId: string | null = null
    const writeHead = res.writeHead
    res.writeHead = function(this: http.ServerResponse, ...args: Array<unknown>) {
      const headers = args.find((a, i) => i > 0 && typeof a === "object" && a !== null)
      if (Array.isArray(headers)) {
        for (let i = 0; i + 1 < headers.length; i += 2) if (String(headers[i]).toLowerCase() === "x-amz-request-id") requestId = String(headers[i + 1])
      } else if (headers !== undefined) {
        for (const [k, v] of Object.entries(headers as Record<string, unknown>)) if (k.toLowerCase() === "x-amz-request-id") requestId = String(v)
      }
      return (writeHead as (...a: Array<unknown>) => http.ServerResponse).apply(this, args)
    } as typeof res.writeHead
    const write = res.write
    const end = res.end
    res.write = function(this: http.ServerResponse, chunk: unknown, ...rest: Array<unknown>) {
      bytesOut += byteLength(chunk, rest[0])
      return (write as (...a: Array<unknown>) => boolean).call(this, chunk, ...rest)
    } as typeof res.write
    res.end = function(this: http.ServerResponse, chunk?: unknown, ...rest: Array<unknown>) {
      if (typeof chunk !== "function") bytesOut += byteLength(chunk, rest[0])
      return (end as (...a: Array<unknown>) => http.ServerResponse).call(this, chunk, ...rest)
    } as typeof res.end
    let done = false
    const finish = () => {
      if (done) return
      done = true
      const header = res.getHeader("x-amz-request-id")
      const entry: Entry = {
        time,
        requestId: requestId ?? (typeof header === "string" ? header : null),
        remote: req.socket.remoteAddress ?? null,
        method: req.method ?? "",
        user: keyId === undefined ? null : options.users.get(keyId) ?? null,
        operation: described.operation,
        bucket: described.bucket,
        key: described.key,
        status: res.statusCode,
        bytesIn: announcedLength(req),
        bytesOut,
        durationMs: Number(process.hrtime.bigint() - started) / 1e6,
        aborted: !res.writableFinished
      }
      options.sink(JSON.stringify(entry))
    }
    res.once("finish", finish)
    res.once("close", finish)
  })
}

/**
 * Opens the configured sink; a file is appended to and closed with the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const sink = (target: GatewayConfig.AccessLogTarget): Effect.Effect<Sink | undefined, never, Scope.Scope> => {
  if (target === "off") return Effect.succeed(undefined)
  if (target === "stdout") return Effect.succeed((line) => void process.stdout.write(`${line}\n`))
  if (target === "stderr") return Effect.succeed((line) => void process.stderr.write(`${line}\n`))
  return Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => fs.createWriteStream(target.file, { flags: "a", mode: 0o640 })),
      (stream) => Effect.async<void>((resume) => void stream.end(() => resume(Effect.void)))
    ),
    (stream): Sink => (line) => void stream.write(`${line}\n`)
  )
}
