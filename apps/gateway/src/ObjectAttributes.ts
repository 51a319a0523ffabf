/**
 * What S3 reports about an object beside its bytes: the `x-amz-checksum-*` it was uploaded with
 * (whole-object for PutObject, composite for multipart uploads), its parts, and the
 * GetObjectAttributes document.
 *
 * A PutObject checksum is kept in the gateway's system store under the bucket and the stored
 * object's ETag (`checksums/<bucket>/<etag>`): an overwrite has a new ETag, so a stale record can
 * never be reported for the new object, and the record is dropped with the object. A multipart
 * object's part and composite checksums live in its manifest.
 *
 * @since 0.1.0
 */
import type { StoreError } from "@objcrypt/core/Errors"
import type * as ObjectStore from "@objcrypt/core/ObjectStore"
import { Effect, Either, Option, Schema } from "effect"
import { readJson, writeJson } from "./Buckets.js"
import * as Checksums from "./Checksums.js"
import type * as Orphans from "./internal/orphans.js"
import * as Multipart from "./Multipart.js"
import * as Xml from "./Xml.js"

type Store = ObjectStore.ObjectStore["Type"]

/**
 * An object's checksum: `FULL_OBJECT` (PutObject) or `COMPOSITE` (`<base64>-<parts>`, multipart).
 *
 * @since 0.1.0
 * @category models
 */
export interface ObjectChecksum {
  readonly algorithm: Checksums.Algorithm
  readonly value: string
  readonly type: "FULL_OBJECT" | "COMPOSITE"
}

/**
 * One part of a multipart object, numbered from 1 in the object's order.
 *
 * @since 0.1.0
 * @category models
 */
export interface ObjectPart {
  readonly partNumber: number
  /** First plaintext byte of the part. */
  readonly start: number
  readonly size: number
  readonly checksum?: Multipart.PartChecksum | undefined
}

const SAFE_ETAG = /^[A-Za-z0-9_-]{1,128}$/
const recordKey = (bucket: string, etag: string) => `checksums/${bucket}/${etag}`
const decodeRecord = Schema.decodeUnknownEither(Schema.parseJson(Multipart.PartChecksum))

/**
 * Records the checksum a PutObject was verified against, with the object's key (for the sweep of
 * orphan records).
 *
 * @since 0.1.0
 * @category writing
 */
export const recordChecksum = (system: Store, bucket: string, key: string, etag: string, checksum: Multipart.PartChecksum): Effect.Effect<void, StoreError> =>
  SAFE_ETAG.test(etag) ? writeJson(system, recordKey(bucket, etag), { ...checksum, key }) : Effect.void

const RecordKey = Schema.parseJson(Schema.Struct({ key: Schema.optional(Schema.String) }))

/**
 * Checksum records as `internal/orphans.ts` sweeps them: live while the object under their key has
 * their ETag. Records of older gateways name no key and are kept; an unreadable one goes.
 *
 * @internal
 */
export const checksums: Orphans.RecordKind = {
  name: "checksum records",
  prefix: "checksums/",
  cursor: "checksum-sweep.json",
  id: SAFE_ETAG,
  objectKey: (text) => {
    if (text === undefined || Either.isLeft(decodeRecord(text))) return Option.none()
    const r = Schema.decodeUnknownEither(RecordKey)(text)
    return Either.isRight(r) && r.right.key !== undefined ? Option.some(r.right.key) : undefined
  },
  idOf: (info) => info.etag
}

/**
 * Drops the checksum record of an object that is being replaced or deleted.
 *
 * @since 0.1.0
 * @category writing
 */
export const dropChecksum = (system: Store, bucket: string, etag: string): Effect.Effect<void> =>
  SAFE_ETAG.test(etag) ? system.remove(recordKey(bucket, etag)).pipe(Effect.ignore) : Effect.void

/**
 * The object's checksum, if it was uploaded with one.
 *
 * @since 0.1.0
 * @category reading
 */
export const checksumOf = (
  system: Store,
  bucket: string,
  info: ObjectStore.ObjectInfo,
  manifest: Multipart.Manifest | undefined
): Effect.Effect<ObjectChecksum | undefined, StoreError> =>
  Effect.gen(function*() {
    if (manifest !== undefined) {
      return manifest.checksum === undefined ? undefined : { ...manifest.checksum, type: manifest.checksumType ?? "COMPOSITE" }
    }
    if (!SAFE_ETAG.test(info.etag)) return undefined
    const text = yield* readJson(system, recordKey(bucket, info.etag))
    if (text === undefined) return undefined
    const r = decodeRecord(text)
    return Either.isRight(r) ? { ...r.right, type: "FULL_OBJECT" as const } : undefined
  })

/**
 * The parts of a multipart object (one part for any other object).
 *
 * @since 0.1.0
 * @category reading
 */
export const partsOf = (manifest: Multipart.Manifest | undefined, size: number): ReadonlyArray<ObjectPart> => {
  if (manifest === undefined) return [{ partNumber: 1, start: 0, size }]
  let start = 0
  return manifest.parts.map((p, i) => {
    const part: ObjectPart = { partNumber: i + 1, start, size: p.plain, checksum: p.checksum }
    start += p.plain
    return part
  })
}

/**
 * The response headers of a checksum (GetObject/HeadObject with `x-amz-checksum-mode: ENABLED`).
 *
 * @since 0.1.0
 * @category rendering
 */
export const checksumHeaders = (c: ObjectChecksum | undefined): Record<string, string> =>
  c === undefined ? {} : { [`x-amz-checksum-${c.algorithm}`]: c.value, "x-amz-checksum-type": c.type }

/**
 * The attributes GetObjectAttributes can be asked for.
 *
 * @since 0.1.0
 * @category models
 */
export const ATTRIBUTES = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"] as const

/**
 * @since 0.1.0
 * @category models
 */
export type Attribute = typeof ATTRIBUTES[number]

/**
 * Parses `x-amz-object-attributes` (comma-separated, case-sensitive names as S3 defines them).
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseAttributes = (header: string | undefined): ReadonlySet<Attribute> | undefined => {
  if (header === undefined) return undefined
  const out = new Set<Attribute>()
  for (const raw of header.split(",")) {
    const name = raw.trim()
    if (!(ATTRIBUTES as ReadonlyArray<string>).includes(name)) return undefined
    out.add(name as Attribute)
  }
  return out.size === 0 ? undefined : out
}

/**
 * The GetObjectAttributes document.
 *
 * @since 0.1.0
 * @category rendering
 */
export const render = (options: {
  readonly attributes: ReadonlySet<Attribute>
  readonly etag: string
  readonly size: number
  readonly checksum: ObjectChecksum | undefined
  /** Present for multipart objects only, as S3 reports ObjectParts. */
  readonly parts: ReadonlyArray<ObjectPart> | undefined
  readonly maxParts: number
  readonly partNumberMarker: number
}): string => {
  const a = options.attributes
  const out: Array<string> = []
  if (a.has("ETag")) out.push(Xml.el("ETag", options.etag))
  if (a.has("Checksum") && options.checksum !== undefined) {
    // GetObjectAttributes reports a composite checksum without its "-<parts>" suffix.
    const value = options.checksum.value.replace(/-\d+$/, "")
    out.push(Xml.el("Checksum", [Xml.el(Checksums.xmlName(options.checksum.algorithm), value), Xml.el("ChecksumType", options.checksum.type)]))
  }
  if (a.has("ObjectParts") && options.parts !== undefined) {
    const after = options.parts.filter((p) => p.partNumber > options.partNumberMarker)
    const page = after.slice(0, options.maxParts)
    const truncated = after.length > page.length
    out.push(Xml.el("ObjectParts", [
      // The SDKs call it TotalPartsCount; on the wire it is PartsCount.
      Xml.el("PartsCount", options.parts.length),
      Xml.el("PartNumberMarker", options.partNumberMarker),
      Xml.el("NextPartNumberMarker", page.at(-1)?.partNumber ?? options.partNumberMarker),
      Xml.el("MaxParts", options.maxParts),
      Xml.el("IsTruncated", truncated),
      ...page.map((p) =>
        Xml.el("Part", [
          Xml.el("PartNumber", p.partNumber),
          Xml.el("Size", p.size),
          p.checksum === undefined ? "" : Xml.el(Checksums.xmlName(p.checksum.algorithm), p.checksum.value)
        ])
      )
    ]))
  }
  if (a.has("StorageClass")) out.push(Xml.el("StorageClass", "STANDARD"))
  if (a.has("ObjectSize")) out.push(Xml.el("ObjectSize", options.size))
  return Xml.el("GetObjectAttributesResponse", out, Xml.S3_NS)
}
