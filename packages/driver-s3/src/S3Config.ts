/**
 * Configuration of the S3 driver: the bucket, where it lives, how to authenticate, which
 * compatibility-matrix profile the server follows, and the multipart tuning.
 *
 * @since 0.1.0
 */
import type { BucketFacts, ProfileName } from "@objcrypt/core/CompatibilityMatrix"
import type { Redacted } from "effect"

/**
 * @since 0.1.0
 * @category models
 */
export interface S3Config {
  readonly bucket: string
  /** @default "us-east-1" */
  readonly region?: string | undefined
  /** Custom endpoint for S3-compatible stores (MinIO, Ceph RGW, IBM COS…). @default the AWS regional endpoint */
  readonly endpoint?: string | undefined
  /** Path-style addressing (`endpoint/bucket/key`), which most S3-compatibles need. @default false */
  readonly forcePathStyle?: boolean | undefined
  /** With `secretAccessKey`: explicit credentials. Without: the AWS default provider chain. */
  readonly accessKeyId?: string | undefined
  readonly secretAccessKey?: Redacted.Redacted | undefined
  readonly sessionToken?: Redacted.Redacted | undefined
  /** A named profile of the AWS shared config/credentials files. @default the default chain's choice */
  readonly awsProfile?: string | undefined
  /**
   * The compatibility-matrix profile of the server (`aws-s3`, `ceph-rgw`, `minio`, `ibm-cos`…):
   * decides which server-side modes are sent, and which are refused before any byte is written.
   * @default "aws-s3"
   */
  readonly profile?: ProfileName | undefined
  /** What a probe of this bucket observed (see `S3Buckets.probe`); overrides the profile's cells. */
  readonly facts?: BucketFacts | undefined
  /** Part size of multipart uploads, raised when a known length would need more than 10 000 parts. @default 8 MiB */
  readonly partSize?: number | undefined
  /** Parts uploaded (or copied) at the same time; memory use is about `(concurrency + 1) × partSize`. @default 4 */
  readonly concurrency?: number | undefined
  /** Copies of objects larger than this use UploadPartCopy. @default 5 GiB */
  readonly multipartCopyThreshold?: number | undefined
  /** Send `Content-MD5` with every PUT and part, so the server checks the bytes it received. @default true */
  readonly contentMd5?: boolean | undefined
  /**
   * Hash every request body into its SigV4 signature (SHA-256), also when it carries `Content-MD5`.
   * By default a request with `Content-MD5` is signed with `UNSIGNED-PAYLOAD`: the MD5 is a signed
   * header the server checks the body against, and the SHA-256 would cost a second pass over the
   * body on the calling thread. Requests without `Content-MD5` always sign their payload.
   * @default false
   */
  readonly signPayload?: boolean | undefined
  /**
   * `uploadPart` bodies of a known length above this many bytes are sent as they are read instead
   * of being buffered whole (memory stays flat whatever the part size; such a request is not
   * retried, and its integrity is checked against the part's ETag instead of `Content-MD5`).
   * @default 2 × partSize
   */
  readonly streamPartsAbove?: number | undefined
  /**
   * The most memory (bytes) all uploads through this store hold in buffers at once: a put reserves
   * its parts (`(concurrency + 1) × partSize`, or its body when it fits one part) and a buffered
   * `uploadPart` its body before reading, and waits while the budget is taken — so memory stays
   * bounded whatever the number of concurrent uploads. Bodies under 1 MiB are not counted.
   * @default no limit
   */
  readonly memoryBudget?: number | undefined
  /** @default 3 */
  readonly maxAttempts?: number | undefined
  /** Give up connecting to the server after this many milliseconds (`TimeoutError`). @default 10000 */
  readonly connectTimeoutMs?: number | undefined
  /**
   * Give up on a request whose connection has carried nothing for this many milliseconds — a
   * server that accepts a request and never answers it, or stops sending a body midway, fails it
   * (`TimeoutError`) instead of holding it forever. A reader that stops pulling a GET's body for
   * that long is cut off too. `0`: no limit.
   * @default 120000
   */
  readonly idleTimeoutMs?: number | undefined
}

/**
 * @since 0.1.0
 * @category constants
 */
export const MiB = 1024 * 1024

/**
 * @since 0.1.0
 * @category constants
 */
export const defaults = {
  region: "us-east-1",
  profile: "aws-s3" as ProfileName,
  partSize: 8 * MiB,
  concurrency: 4,
  multipartCopyThreshold: 5 * 1024 * MiB,
  contentMd5: true,
  maxAttempts: 3,
  connectTimeoutMs: 10_000,
  idleTimeoutMs: 120_000
} as const
