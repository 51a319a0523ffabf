/**
 * Block ids and multipart upload ids. Azure keeps staged (uncommitted) blocks per blob name until a
 * commit or a week passes; the driver keeps no other state, so an upload lives in its block ids:
 *
 * - every block id is 24 bytes (base64: 32 characters, the same length for every block of a blob,
 *   as Azure requires): kind (1) `b` data, `o` upload open, `a` upload aborted · upload id (12) ·
 *   part number (4, big-endian) · attempt (3, random per `uploadPart` call) · block index (4).
 * - an upload id is `<24 hex>` for the random id, then `.` and base64url JSON of what the commit
 *   needs (content type, metadata, encryption scope, if-none-match), since Azure has no place to
 *   keep them before the commit.
 *
 * @since 0.1.0
 */
import * as crypto from "node:crypto"

/** @internal */
export type BlockKind = "b" | "o" | "a"

/** @internal */
export const blockId = (kind: BlockKind, upload: Uint8Array, part: number, attempt: Uint8Array, index: number): string => {
  const b = Buffer.alloc(24)
  b.write(kind, 0, "latin1")
  b.set(upload.subarray(0, 12), 1)
  b.writeUInt32BE(part >>> 0, 13)
  b.set(attempt.subarray(0, 3), 17)
  b.writeUInt32BE(index >>> 0, 20)
  return b.toString("base64")
}

const ZERO3 = new Uint8Array(3)

/** @internal */
export const markerId = (kind: "o" | "a", upload: Uint8Array): string => blockId(kind, upload, 0, ZERO3, 0)

/** @internal */
export interface UploadState {
  readonly id: Buffer
  readonly contentType?: string | undefined
  readonly metadata?: Readonly<Record<string, string>> | undefined
  readonly scope?: string | undefined
  readonly ifNoneMatch?: "*" | undefined
  /** `PutOptions.ifMatch` (unquoted), sent on the commit. */
  readonly ifMatch?: string | undefined
}

/** @internal */
export const newUploadId = (): Buffer => crypto.randomBytes(12)

/** @internal */
export const formatUploadId = (s: UploadState): string => {
  const extra = {
    ...(s.contentType === undefined ? {} : { t: s.contentType }),
    ...(s.metadata === undefined ? {} : { m: s.metadata }),
    ...(s.scope === undefined ? {} : { s: s.scope }),
    ...(s.ifNoneMatch === undefined ? {} : { n: s.ifNoneMatch }),
    ...(s.ifMatch === undefined ? {} : { i: s.ifMatch })
  }
  return `${s.id.toString("hex")}.${Buffer.from(JSON.stringify(extra), "utf8").toString("base64url")}`
}

/** @internal */
export const parseUploadId = (uploadId: string): UploadState | undefined => {
  const m = /^([0-9a-f]{24})\.([A-Za-z0-9_-]*)$/.exec(uploadId)
  if (m === null) return undefined
  try {
    const extra = JSON.parse(Buffer.from(m[2]!, "base64url").toString("utf8")) as Record<string, unknown>
    if (typeof extra !== "object" || extra === null) return undefined
    const str = (v: unknown) => (typeof v === "string" ? v : undefined)
    const metadata = extra["m"]
    if (metadata !== undefined && (typeof metadata !== "object" || metadata === null || Object.values(metadata).some((v) => typeof v !== "string"))) {
      return undefined
    }
    return {
      id: Buffer.from(m[1]!, "hex"),
      contentType: str(extra["t"]),
      metadata: metadata as Record<string, string> | undefined,
      scope: str(extra["s"]),
      ifNoneMatch: extra["n"] === "*" ? "*" : undefined,
      ifMatch: str(extra["i"])
    }
  } catch {
    return undefined
  }
}

/** The etag of a part: its attempt and block count (what the commit needs to name its blocks). @internal */
export const partEtag = (attempt: Uint8Array, blocks: number): string => `${Buffer.from(attempt).toString("hex")}-${blocks}`

/** @internal */
export const parsePartEtag = (etag: string): { readonly attempt: Buffer; readonly blocks: number } | undefined => {
  const m = /^"?([0-9a-f]{6})-(\d{1,6})"?$/.exec(etag)
  return m === null ? undefined : { attempt: Buffer.from(m[1]!, "hex"), blocks: Number(m[2]) }
}
