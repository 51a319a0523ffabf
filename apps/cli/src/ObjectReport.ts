/**
 * How one stored object is encrypted, as `inspect` prints it and `audit` checks it: the
 * server-side encryption the provider reports plus, for client-side objects, the envelope
 * (format, algorithm, wrapped keys with id and version, sizes). Never any key material.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import * as Encryption from "@objcrypt/core/Encryption"
import type * as EncryptionMode from "@objcrypt/core/EncryptionMode"
import { nameOf, type ModeName } from "@objcrypt/core/EncryptionMode"
import type { DecryptError, StoreError } from "@objcrypt/core/Errors"
import type * as ModeService from "@objcrypt/core/ModeService"
import type * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as S3EC from "@objcrypt/core/S3EncryptionClient"
import type * as AzureCse from "@objcrypt/driver-azure/AzureClientSideEncryption"
import * as Formats from "./Formats.js"
import * as Stores from "./Stores.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface WrappedKeyReport {
  readonly type: string
  readonly keyId: string
  readonly version: number
  /** KMS-wrapped keys: the KMS the key id belongs to (`local`, `aws-kms`, `gcp-kms`, `azure-key-vault`). */
  readonly kms?: string | undefined
  /** The key-store name, when the key store was opened and knows the id. */
  readonly name?: string | undefined
  /** Whether `version` is the key's primary version (key store opened only). */
  readonly primary?: boolean | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ObjectReport {
  readonly key: string
  readonly url: string
  /** The effective mode: a client-side mode wins over the server-side one it may sit on. */
  readonly mode: ModeName | "unknown"
  readonly size: number
  readonly etag: string
  readonly lastModified: string
  readonly contentType?: string | undefined
  readonly serverSide: {
    readonly mode: ModeName | "unknown"
    readonly kmsKeyId?: string | undefined
    readonly bucketKeyEnabled?: boolean | undefined
    readonly customerKeyMd5?: string | undefined
    readonly customerKeySha256?: string | undefined
    readonly scope?: string | undefined
  }
  readonly clientSide?: {
    readonly mode: "cse-c" | "cse-kms"
    readonly format: string
    readonly formatVersion: number
    readonly algorithm: string
    readonly envelope: "metadata" | "sidecar" | "instruction"
    readonly segmentSize?: number | undefined
    readonly segments?: number | undefined
    readonly plaintextSize?: number | undefined
    readonly ciphertextSize: number
    readonly context?: Readonly<Record<string, string>> | undefined
    readonly keys: ReadonlyArray<WrappedKeyReport>
  } | undefined
  /** Why the envelope could not be read (malformed, unknown format). */
  readonly envelopeError?: string | undefined
}

const sseName = (m: ObjectStore.ServerEncryptionInfo["mode"]): ModeName | "unknown" =>
  m === "None" ? "none" : m === "SseS3" ? "sse-s3" : m === "SseKms" ? "sse-kms" : m === "SseC" ? "sse-c" : "unknown"

/**
 * Heads an object and reads its envelope (through core's `Encryption.inspect`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  store: ObjectStore.ObjectStore["Type"],
  key: string,
  url: string,
  customerKey?: EncryptionMode.KeyRef | undefined
): Effect.Effect<ObjectReport, StoreError | DecryptError | ModeService.ResolveError, Encryption.Decryptor> =>
  Effect.gen(function*() {
    const inspection = yield* Encryption.inspect(store, key, { customerKey })
    const info = inspection.info
    const serverSide = {
      mode: sseName(info.encryption.mode),
      kmsKeyId: info.encryption.kmsKeyId,
      bucketKeyEnabled: info.encryption.bucketKeyEnabled,
      customerKeyMd5: info.encryption.customerKeyMd5,
      customerKeySha256: info.encryption.customerKeySha256,
      scope: info.encryption.scope
    }
    const base = {
      key,
      url,
      size: info.size,
      etag: info.etag,
      lastModified: info.lastModified.toISOString(),
      contentType: info.contentType,
      serverSide
    }
    if (inspection.problem !== undefined) return { ...base, mode: "unknown" as const, envelopeError: inspection.problem.message }
    const e = inspection.clientSide
    if (e === undefined || (inspection.mode !== "CseC" && inspection.mode !== "CseKms")) {
      const other = yield* Formats.detect(store, info, { instructionFiles: true })
      if (other.problem !== undefined) return { ...base, mode: "unknown" as const, envelopeError: other.problem.message }
      if (other.s3ec !== undefined && other.mode !== "unknown") return { ...base, mode: other.mode, clientSide: s3ecReport(other.s3ec, other.mode, info.size) }
      if (other.azure !== undefined) return { ...base, mode: "cse-c" as const, clientSide: azureReport(other.azure, other.plaintextSize, info.size) }
      return { ...base, mode: inspection.mode === "Unknown" ? "unknown" as const : nameOf(inspection.mode) }
    }
    const mode = nameOf(inspection.mode) as "cse-c" | "cse-kms"
    const keys = (e.keys ?? []).map((k) => ({ type: k.type, keyId: k.keyId, version: k.version, ...(k.type === "kms" ? { kms: Stores.kmsKindOf(k.keyId) } : {}) }))
    return {
      ...base,
      mode,
      clientSide: {
        mode,
        format: e.format,
        formatVersion: e.formatVersion,
        algorithm: e.algorithm,
        envelope: e.location,
        segmentSize: e.segmentSize,
        segments: e.segments,
        plaintextSize: e.plaintextSize,
        ciphertextSize: e.ciphertextSize,
        context: e.context,
        keys
      }
    }
  })

type ClientSideReport = NonNullable<ObjectReport["clientSide"]>

const s3ecReport = (e: S3EC.EnvelopeSummary, mode: ModeName, stored: number): ClientSideReport => {
  const id = e.materialDescription[S3EC.KeyStoreDescription.id]
  const version = Number(e.materialDescription[S3EC.KeyStoreDescription.version])
  return {
    mode: mode === "cse-kms" ? "cse-kms" : "cse-c",
    format: "aws-s3ec",
    formatVersion: Number(e.version.slice(1)),
    algorithm: e.contentAlgorithm,
    envelope: e.location,
    plaintextSize: e.plaintextSize,
    ciphertextSize: stored,
    context: Object.keys(e.kmsContext).length === 0 ? undefined : e.kmsContext,
    keys: id === undefined ? [] : [{
      type: e.wrapAlgorithm,
      keyId: id,
      version: Number.isSafeInteger(version) ? version : 0,
      ...(mode === "cse-kms" ? { kms: Stores.kmsKindOf(id) } : {})
    }]
  }
}

const azureReport = (d: AzureCse.EncryptionData, plaintextSize: number | undefined, stored: number): ClientSideReport => {
  const m = /^(.+)@(\d+)$/.exec(d.keyId)
  return {
    mode: "cse-c",
    format: "azure-cse",
    formatVersion: 2,
    algorithm: `AES_GCM_256 (protocol ${d.protocol}, ${d.dataLength}-byte regions)`,
    envelope: "metadata",
    segmentSize: d.dataLength,
    segments: plaintextSize === undefined ? undefined : Math.ceil(plaintextSize / d.dataLength),
    plaintextSize,
    ciphertextSize: stored,
    keys: [{ type: d.algorithm, keyId: m === null ? d.keyId : m[1]!, version: m === null ? 0 : Number(m[2]) }]
  }
}

/**
 * Adds key names and primary flags from a lookup (the key store's `primaryOf`).
 *
 * @since 0.1.0
 * @category combinators
 */
export const withKeyNames = <E>(
  report: ObjectReport,
  lookup: (ref: string) => Effect.Effect<{ readonly name: string; readonly isPrimary: boolean }, E>
): Effect.Effect<ObjectReport> =>
  report.clientSide === undefined
    ? Effect.succeed(report)
    : Effect.map(
      Effect.forEach(report.clientSide.keys, (k) =>
        lookup(`${k.keyId}@${k.version}`).pipe(
          Effect.map((p) => ({ ...k, name: p.name, primary: p.isPrimary })),
          Effect.orElseSucceed(() => k)
        )),
      (keys) => ({ ...report, clientSide: { ...report.clientSide!, keys } })
    )

/**
 * The report as aligned text lines.
 *
 * @since 0.1.0
 * @category rendering
 */
export const render = (r: ObjectReport): string => {
  const lines = [
    `${r.url}`,
    `  mode            ${r.mode}`,
    `  size            ${r.size} bytes stored${r.clientSide?.plaintextSize === undefined ? "" : `, ${r.clientSide.plaintextSize} bytes plaintext`}`,
    `  etag            ${r.etag}`,
    `  last modified   ${r.lastModified}`,
    ...(r.contentType === undefined ? [] : [`  content type    ${r.contentType}`]),
    `  server-side     ${r.serverSide.mode}${r.serverSide.kmsKeyId === undefined ? "" : ` key ${r.serverSide.kmsKeyId}`}${r.serverSide.bucketKeyEnabled === true ? " (bucket key)" : ""}${r.serverSide.customerKeyMd5 === undefined ? "" : ` customer key MD5 ${r.serverSide.customerKeyMd5}`}${r.serverSide.scope === undefined ? "" : ` scope ${r.serverSide.scope}`}`
  ]
  const c = r.clientSide
  if (c !== undefined) {
    lines.push(
      `  client-side     ${c.mode}: ${c.format} v${c.formatVersion}, ${c.algorithm}`,
      `  envelope in     ${c.envelope}`,
      ...(c.segmentSize === undefined ? [] : [`  segments        ${c.segments ?? "?"} x ${c.segmentSize} bytes`]),
      ...(c.context === undefined || Object.keys(c.context).length === 0
        ? []
        : [`  context         ${Object.entries(c.context).map(([k, v]) => `${k}=${v}`).join(",")}`]),
      ...c.keys.map((k) =>
        `  wrapped key     ${k.type}${k.kms === undefined ? "" : ` (${k.kms})`} ${k.name === undefined ? k.keyId : `${k.name} (${k.keyId})`} version ${k.version}${k.primary === undefined ? "" : k.primary ? " (primary)" : " (not primary)"}`
      )
    )
  }
  if (r.envelopeError !== undefined) lines.push(`  envelope error  ${r.envelopeError}`)
  return lines.join("\n")
}
