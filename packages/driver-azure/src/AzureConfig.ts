/**
 * Configuration of the Azure Blob driver: the container, the account URL, how to authenticate,
 * and the block-upload tuning.
 *
 * @since 0.1.0
 */
import type { TokenCredential } from "@azure/core-auth"
import type { RequestPolicyFactory } from "@azure/storage-blob"
import type { BucketFacts } from "@objcrypt/core/CompatibilityMatrix"
import type { Redacted } from "effect"

/**
 * How the driver authenticates. Secrets are `Redacted` and unwrapped only when handed to the SDK.
 *
 * @since 0.1.0
 * @category models
 */
export type AzureCredentials =
  | { readonly _tag: "SharedKey"; readonly accountName: string; readonly accountKey: Redacted.Redacted }
  /** A SAS token (`sv=…&sig=…`, with or without the leading `?`) for the account or the container. */
  | { readonly _tag: "Sas"; readonly token: Redacted.Redacted }
  /** A storage connection string; its `BlobEndpoint` (or account name) is the account URL. */
  | { readonly _tag: "ConnectionString"; readonly connectionString: Redacted.Redacted }
  /** Any Entra ID credential (`DefaultAzureCredential`, a managed identity…). */
  | { readonly _tag: "Token"; readonly credential: TokenCredential }

/**
 * @since 0.1.0
 * @category models
 */
export interface AzureConfig {
  /** The container (the contract's bucket). */
  readonly container: string
  /** `https://<account>.blob.core.windows.net`, or an emulator URL; ignored with a connection string. */
  readonly accountUrl?: string | undefined
  readonly credentials: AzureCredentials
  /** Encryption scope for `sse-kms` requests that name no key id. @default none: such requests are refused */
  readonly defaultEncryptionScope?: string | undefined
  /** What a probe (or the operator) knows of this container; overrides the matrix cells (e.g. Azurite ignores scopes). */
  readonly facts?: BucketFacts | undefined
  /** Size of each staged block. @default 8 MiB */
  readonly blockSize?: number | undefined
  /**
   * The most memory (bytes) all uploads through this store hold in buffers at once: a put or an
   * `uploadPart` reserves `(concurrency + 1) × blockSize` (or its body when it fits one block)
   * before reading, waiting while the budget is taken. Bodies under 1 MiB are not counted.
   * @default no limit
   */
  readonly memoryBudget?: number | undefined
  /** Blocks staged (or copied) at the same time; memory use is about `(concurrency + 1) × blockSize`. @default 4 */
  readonly concurrency?: number | undefined
  /** Size of each block a server-side copy stages from the source URL. @default 64 MiB */
  readonly copyBlockSize?: number | undefined
  /** Send `Content-MD5` with every block and single put, so the service checks the bytes. @default true */
  readonly contentMd5?: boolean | undefined
  /** Extra SDK request policies (request recording, proxies, a test CA), appended to the pipeline. */
  readonly requestPolicyFactories?: ReadonlyArray<RequestPolicyFactory> | undefined
  /** @default 3 */
  readonly maxTries?: number | undefined
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
  blockSize: 8 * MiB,
  concurrency: 4,
  copyBlockSize: 64 * MiB,
  contentMd5: true,
  maxTries: 3
} as const
