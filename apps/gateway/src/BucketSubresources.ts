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
