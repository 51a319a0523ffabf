/**
 * Configuration of a local-directory object store.
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 * @category models
 */
export interface FsConfig {
  /** The directory holding the objects; created (with `dirMode`) when missing. */
  readonly root: string
  /** The bucket name the store reports (bound into client-side encryption contexts). @default the root's base name */
  readonly bucket?: string | undefined
  /** Smallest multipart part but the last, checked on complete. @default 5 MiB (as S3, so plans made on fs hold on S3) */
  readonly minPartSize?: number | undefined
  /** Total bytes of user metadata (keys + values) accepted per object. @default 16 KiB */
  readonly maxMetadataBytes?: number | undefined
  /** Permission bits of object files. @default 0o600 */
  readonly fileMode?: number | undefined
  /** Permission bits of the directories the store creates. @default 0o700 */
  readonly dirMode?: number | undefined
  /**
   * fsync every object file and the directory entries it is renamed into, so a completed write
   * survives a power loss. Turning it off keeps writes atomic (never partial, never mixed) but not
   * durable: only for scratch stores and benchmarks. @default true
   */
  readonly fsync?: boolean | undefined
  /**
   * What an object's ETag is. `"md5"`: the hex MD5 of its bytes, as S3 gives a single-part upload
   * (computed on a worker thread while the object is written). `"random"`: 128 random bits per
   * stored version — unique, but not a content hash; for callers that keep their own checksums
   * (the objcrypt gateway records the plaintext MD5 itself) and would otherwise pay for a hash of
   * ciphertext nobody reads. Multipart objects are `md5-of-part-etags-N` either way. @default "md5"
   */
  readonly etags?: "md5" | "random" | undefined
}

/**
 * Defaults of the optional fields.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults = {
  minPartSize: 5 * 1024 * 1024,
  maxMetadataBytes: 16 * 1024,
  fileMode: 0o600,
  dirMode: 0o700,
  fsync: true,
  etags: "md5"
} as const
