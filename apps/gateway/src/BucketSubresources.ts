/**
 * Bucket configurations the gateway never holds — policy, CORS, lifecycle rules, static website,
 * access logging, event notifications, Object Lock, public access block, ownership controls,
 * replication, transfer acceleration, requester pays — answered as Amazon S3 answers for a bucket
 * that has none of them: the "not found" error of each GET (or the empty document S3 returns where
 * it has no such error), and `204` for a DELETE, which S3 also accepts when nothing is configured.
 * Tools that read a bucket's whole configuration before acting (Terraform's AWS provider, the
 * console-like clients, `aws s3api` scripts) then work; setting one of them (PUT) stays
 * `501 NotImplemented`, with what the gateway offers instead.
 *
 * The same holds for the configurations S3 keeps by id — inventory, analytics, metrics and
 * S3 Intelligent-Tiering: their List… operations answer S3's empty list and their Get… and
 * Delete… `404 NoSuchConfiguration`. No bucket has Object Lock either, so the object
 * sub-resources `retention` and `legal-hold`, and writes asking for a lock, get S3's
 * `400 InvalidRequest` for a bucket without it — never a write that silently drops the lock.
 *
 * @since 0.1.0
 */
import { S3Error } from "./S3Error.js"
import * as Xml from "./Xml.js"

/**
 * What a request for one of these sub-resources gets.
 *
 * @since 0.1.0
 * @category models
 */
export type Answer =
  | { readonly _tag: "Document"; readonly xml: string }
  | { readonly _tag: "NoContent" }
  | { readonly _tag: "Error"; readonly error: S3Error }

interface Entry {
  /** GET: S3's error when nothing is configured, or the document it returns. */
  readonly get: { readonly code: string; readonly detail: string } | { readonly root: string; readonly children?: ReadonlyArray<string> }
  /** Whether S3 has a DELETE for it. */
  readonly deletable: boolean
  /** Said when a PUT is refused. */
  readonly instead: string
}

const notFound = (code: string, detail: string) => ({ code, detail })

const ENTRIES: Readonly<Record<string, Entry>> = {
  policy: { get: notFound("NoSuchBucketPolicy", "The bucket policy does not exist"), deletable: true, instead: "access is granted per user and bucket in the gateway's users configuration" },
  policyStatus: { get: notFound("NoSuchBucketPolicy", "The bucket policy does not exist"), deletable: false, instead: "the gateway has no bucket policies" },
  cors: { get: notFound("NoSuchCORSConfiguration", "The CORS configuration does not exist"), deletable: true, instead: "the gateway answers no CORS preflight requests" },
  lifecycle: {
    get: notFound("NoSuchLifecycleConfiguration", "The lifecycle configuration does not exist"),
    deletable: true,
    instead: "incomplete multipart uploads can be aborted for every bucket with abortIncompleteUploadsAfterDays in the gateway's configuration"
  },
  website: { get: notFound("NoSuchWebsiteConfiguration", "The specified bucket does not have a website configuration"), deletable: true, instead: "the gateway serves no websites" },
  logging: { get: { root: "BucketLoggingStatus" }, deletable: false, instead: "the gateway writes one access log for all buckets (accessLog in its configuration)" },
  notification: { get: { root: "NotificationConfiguration" }, deletable: false, instead: "the gateway sends no event notifications" },
  "object-lock": {
    get: notFound("ObjectLockConfigurationNotFoundError", "Object Lock configuration does not exist for this bucket"),
    deletable: false,
    instead: "the gateway has no Object Lock"
  },
  publicAccessBlock: {
    get: notFound("NoSuchPublicAccessBlockConfiguration", "The public access block configuration was not found"),
    deletable: true,
    instead: "nothing the gateway serves is public: every request must be signed by a configured user"
  },
  ownershipControls: {
    get: notFound("OwnershipControlsNotFoundError", "The bucket ownership controls were not found"),
    deletable: true,
    instead: "objects belong to the bucket; ACLs grant nothing beyond the users configuration"
  },
  replication: {
    get: notFound("ReplicationConfigurationNotFoundError", "The replication configuration was not found"),
    deletable: true,
    instead: "the gateway does not replicate; replicate the backend"
  },
  accelerate: { get: { root: "AccelerateConfiguration" }, deletable: false, instead: "the gateway has no transfer acceleration" },
  requestPayment: { get: { root: "RequestPaymentConfiguration", children: ["Payer:BucketOwner"] }, deletable: false, instead: "the bucket owner pays" }
}

/**
 * The sub-resources answered here.
 *
 * @since 0.1.0
 * @category models
 */
export const NAMES: ReadonlyArray<string> = Object.keys(ENTRIES)

/**
 * The answer to `method` on `subresource` of an existing bucket (one of {@link NAMES}).
 *
 * @since 0.1.0
 * @category answering
 */
export const answer = (method: string, subresource: string, bucket: string): Answer => {
  const entry = ENTRIES[subresource]
  const resource = `/${bucket}`
  if (entry === undefined) {
    return { _tag: "Error", error: new S3Error({ code: "NotImplemented", status: 501, detail: `the ${subresource} subresource is not implemented`, resource }) }
  }
  if (method === "GET") {
    const g = entry.get
    if ("code" in g) return { _tag: "Error", error: new S3Error({ code: g.code, status: 404, detail: g.detail, resource }) }
    const children = (g.children ?? []).map((c) => {
      const [name, value] = c.split(":") as [string, string]
      return Xml.el(name, value)
    })
    return { _tag: "Document", xml: Xml.el(g.root, children, Xml.S3_NS) }
  }
  if (method === "DELETE" && entry.deletable) return { _tag: "NoContent" }
  if (method === "PUT") {
    return { _tag: "Error", error: new S3Error({ code: "NotImplemented", status: 501, detail: `setting the bucket's ${subresource} is not implemented: ${entry.instead}`, resource }) }
  }
  return { _tag: "Error", error: new S3Error({ code: "MethodNotAllowed", status: 405, detail: "the specified method is not allowed against this resource", resource }) }
}

// ---------------------------------------------------------------------------------------------
// configurations kept by id: inventory, analytics, metrics, S3 Intelligent-Tiering
// ---------------------------------------------------------------------------------------------

interface Named {
  /** The root element of the List…Configurations document (AWS S3 API reference, Response Syntax). */
  readonly listRoot: string
  /** Said when a PUT is refused. */
  readonly instead: string
}

const NAMED: Readonly<Record<string, Named>> = {
  inventory: { listRoot: "ListInventoryConfigurationsResult", instead: "list a bucket with ListObjectsV2 to inventory it" },
  analytics: { listRoot: "ListBucketAnalyticsConfigurationResult", instead: "the gateway runs no storage class analysis" },
  metrics: { listRoot: "ListMetricsConfigurationsResult", instead: "the gateway publishes no CloudWatch request metrics; read its access log instead" },
  "intelligent-tiering": { listRoot: "ListBucketIntelligentTieringConfigurationsOutput", instead: "the gateway has a single storage class and moves no objects between tiers" }
}

/**
 * The bucket sub-resources whose configurations S3 keeps by id (`?inventory&id=…`), of which a
 * bucket may have several: the gateway has none of them.
 *
 * @since 0.1.0
 * @category models
 */
export const NAMED_CONFIGURATIONS: ReadonlyArray<string> = Object.keys(NAMED)

/**
 * The answer to `method` on `subresource` (one of {@link NAMED_CONFIGURATIONS}) of an existing
 * bucket, `id` being the request's `id` query parameter: a GET without one lists the bucket's
 * configurations (S3's empty list document, `IsTruncated` false), a GET or a DELETE naming one
 * answers S3's `404 NoSuchConfiguration`, a DELETE naming none `400 InvalidArgument`, and a PUT
 * stays `501 NotImplemented`.
 *
 * @since 0.1.0
 * @category answering
 */
export const answerNamed = (method: string, subresource: string, bucket: string, id: string | undefined): Answer => {
  const entry = NAMED[subresource]
  const resource = `/${bucket}`
  if (entry === undefined) {
    return { _tag: "Error", error: new S3Error({ code: "NotImplemented", status: 501, detail: `the ${subresource} subresource is not implemented`, resource }) }
  }
  const noSuchConfiguration = { _tag: "Error", error: new S3Error({ code: "NoSuchConfiguration", status: 404, detail: "The specified configuration does not exist.", resource }) } as const
  switch (method) {
    case "GET":
      return id === undefined ? { _tag: "Document", xml: Xml.el(entry.listRoot, [Xml.el("IsTruncated", "false")], Xml.S3_NS) } : noSuchConfiguration
    case "DELETE":
      return id === undefined
        ? { _tag: "Error", error: new S3Error({ code: "InvalidArgument", status: 400, detail: `the ${subresource} configuration to delete must be named by an id parameter`, resource }) }
        : noSuchConfiguration
    case "PUT":
      return {
        _tag: "Error",
        error: new S3Error({ code: "NotImplemented", status: 501, detail: `the gateway does not hold ${subresource} configurations: ${entry.instead}`, resource })
      }
    default:
      return { _tag: "Error", error: new S3Error({ code: "MethodNotAllowed", status: 405, detail: "the specified method is not allowed against this resource", resource }) }
  }
}

// ---------------------------------------------------------------------------------------------
// Object Lock on objects
// ---------------------------------------------------------------------------------------------

/**
 * The request headers that ask PutObject, CopyObject, CreateMultipartUpload or a browser POST to
 * lock the object they write.
 *
 * @since 0.1.0
 * @category models
 */
export const OBJECT_LOCK_HEADERS: ReadonlyArray<string> = ["x-amz-object-lock-mode", "x-amz-object-lock-retain-until-date", "x-amz-object-lock-legal-hold"]

/**
 * The object sub-resources of Object Lock (GetObjectRetention, PutObjectRetention,
 * GetObjectLegalHold, PutObjectLegalHold).
 *
 * @since 0.1.0
 * @category models
 */
export const OBJECT_LOCK_SUBRESOURCES: ReadonlyArray<string> = ["retention", "legal-hold"]

/**
 * S3's refusal of an Object Lock request on a bucket without Object Lock (every gateway bucket):
 * `400 InvalidRequest`. S3 words it "Bucket is missing ObjectLockConfiguration" when a write
 * (`write: true`: PutObject, CopyObject, CreateMultipartUpload) carries lock headers, and "Bucket is
 * missing Object Lock Configuration" on the `retention` and `legal-hold` sub-resources.
 *
 * @since 0.1.0
 * @category answering
 */
export const missingObjectLock = (resource: string, options: { readonly write: boolean }): S3Error =>
  new S3Error({
    code: "InvalidRequest",
    status: 400,
    detail: options.write ? "Bucket is missing ObjectLockConfiguration" : "Bucket is missing Object Lock Configuration",
    resource
  })

/**
 * The first Object Lock header among `headers` (lower-case names), if any.
 *
 * @since 0.1.0
 * @category answering
 */
export const objectLockHeader = (headers: Readonly<Record<string, string | undefined>>): string | undefined =>
  OBJECT_LOCK_HEADERS.find((h) => headers[h] !== undefined)
