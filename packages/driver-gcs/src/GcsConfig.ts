/**
 * Configuration of the GCS driver: the bucket, where it lives, how to authenticate, which
 * compatibility-matrix profile and bucket facts apply, and the upload tuning.
 *
 * @since 0.1.0
 */
import type { BucketFacts, ProfileName } from "@objcrypt/core/CompatibilityMatrix"
import type { Duration, Redacted } from "effect"

/**
 * A service account's key, as in its JSON key file.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServiceAccountCredentials {
  readonly clientEmail: string
  readonly privateKey: Redacted.Redacted<string>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface GcsConfig {
  readonly bucket: string
  /** @default the one Application Default Credentials name */
  readonly projectId?: string | undefined
  /** A custom JSON-API endpoint (`http://127.0.0.1:PORT` for a test server); no credentials are sent to it. @default Google's */
  readonly apiEndpoint?: string | undefined
  /** A service account key file. Without it and `credentials`: Application Default Credentials. */
  readonly keyFilename?: string | undefined
  readonly credentials?: ServiceAccountCredentials | undefined
  /** The compatibility-matrix profile. @default "gcs" */
  readonly profile?: ProfileName | undefined
  /**
   * What a probe of this bucket observed (see `GcsBuckets.probe`): its default CMEK key, its
   * encryption enforcement config, and whether a plain-http test server enforces CSEK. Overrides
   * the profile's cells; customer keys go over plain http only when a probe saw them enforced there.
   */
  readonly facts?: BucketFacts | undefined
  /** Bodies are cut into parts of this size; a body of one part is a single upload. @default 16 MiB */
  readonly partSize?: number | undefined
  /**
   * `uploadPart` bodies of a known length above this many bytes go up as a resumable upload, sent
   * as they are read (chunks of `partSize`), instead of being buffered whole. @default 2 × partSize
   */
  readonly streamPartsAbove?: number | undefined
  /**
   * The most memory (bytes) all uploads through this store hold in buffers at once: a put
   * reserves `(concurrency + 1) × partSize` (or its body when it fits one part) and a buffered
   * `uploadPart` its body before reading, waiting while the budget is taken. Bodies under 1 MiB
   * are not counted. @default no limit
   */
  readonly memoryBudget?: number | undefined
  /** Parts uploaded at the same time; memory use is about `(concurrency + 1) × partSize`. @default 4 */
  readonly concurrency?: number | undefined
  /**
   * `true`: bodies larger than one part upload as parallel part objects joined by compose.
   * `false`: one resumable upload streamed in `partSize` chunks.
   * @default true
   */
  readonly parallelUploads?: boolean | undefined
  /** Where part objects of uploads in progress live; listings hide it. @default ".objcrypt-uploads/" */
  readonly uploadPrefix?: string | undefined
  /**
   * Uploads whose part objects are all older than this are stale (left by a process that was
   * killed) and removed once per store, before its first parallel or multipart upload; `false`
   * turns that off (`sweepUploads` still sweeps on demand). Ages are judged on the local clock
   * against the objects' `updated` time, so keep it well above the longest upload.
   * @default "24 hours"
   */
  readonly staleUploadAge?: Duration.DurationInput | false | undefined
  /** Retries of idempotent requests. @default 3 */
  readonly maxRetries?: number | undefined
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
  profile: "gcs" as ProfileName,
  partSize: 16 * MiB,
  concurrency: 4,
  parallelUploads: true,
  uploadPrefix: ".objcrypt-uploads/",
  staleUploadAge: "24 hours" as Duration.DurationInput,
  maxRetries: 3
} as const
