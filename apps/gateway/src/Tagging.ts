/**
 * S3 tagging: object tag sets (PutObjectTagging, GetObjectTagging, DeleteObjectTagging, the
 * `x-amz-tagging` header of PutObject, CreateMultipartUpload and CopyObject) and bucket tag sets
 * (PutBucketTagging…), with S3's limits and errors.
 *
 * An object's tags are stored beside its envelope as one reserved metadata entry (`gw-tags`, the
 * URL-encoded query string `x-amz-tagging` carries), in plain text: tags are metadata, not
 * encrypted data. A tag update is a metadata-only rewrite of the object onto itself with
 * `ObjectStore.copy` and `ifSourceMatch` the version that was read, so the ciphertext is never
 * re-encrypted and a body written meanwhile by another request or replica is never lost: the
 * copy then fails and the update is applied again to the new version.
 *
 * @since 0.1.0
 */
import type { StoreError } from "@objcrypt/core/Errors"
import type * as ObjectStore from "@objcrypt/core/ObjectStore"
import { Effect, Either, Schema } from "effect"
import * as Etag from "./internal/etag.js"
import * as Multipart from "./Multipart.js"
import * as ObjectAttributes from "./ObjectAttributes.js"
import { errors, S3Error } from "./S3Error.js"
import * as Xml from "./Xml.js"

type Store = ObjectStore.ObjectStore["Type"]

/**
 * One tag.
 *
 * @since 0.1.0
 * @category models
 */
export const Tag = Schema.Struct({ key: Schema.String, value: Schema.String })

/**
 * @since 0.1.0
 * @category models
 */
export type Tag = typeof Tag.Type

/**
 * A tag set, in the order it was given.
 *
 * @since 0.1.0
 * @category models
 */
export type TagSet = ReadonlyArray<Tag>

/**
 * The metadata entry holding an object's tags.
 *
 * @since 0.1.0
 * @category constants
 */
export const META = "gw-tags"

/**
 * The metadata entry keeping an object's Last-Modified across tag updates (ISO 8601): S3 does not
 * change it when tags change, the backend's rewrite does.
 *
 * @since 0.1.0
 * @category constants
 */
export const PINNED_LAST_MODIFIED = "gw-mtime-pin"

/**
 * An object's Last-Modified as clients see it: the time its body was written, kept across tag
 * updates.
 *
 * @since 0.1.0
 * @category metadata
 */
export const lastModified = (info: ObjectStore.ObjectInfo): Date => {
  const pinned = info.metadata[PINNED_LAST_MODIFIED]
  const d = pinned === undefined ? undefined : new Date(pinned)
  return d === undefined || Number.isNaN(d.getTime()) ? info.lastModified : d
}

/**
 * S3's limits: tags per object and per bucket, characters per key and per value.
 *
 * @since 0.1.0
 * @category constants
 */
export const limits = { objectTags: 10, bucketTags: 50, keyLength: 128, valueLength: 256 } as const

/** S3's tag characters: letters, digits, spaces and `+ - = . _ : / @` (any script). */
const ALLOWED = /^[\p{L}\p{N}\p{Z}+\-=._:/@]*$/u

const invalidTag = (detail: string) => new S3Error({ code: "InvalidTag", status: 400, detail })
const tooMany = (detail: string) => new S3Error({ code: "BadRequest", status: 400, detail })
const malformed = () => errors.malformedXml("the XML you provided was not well-formed or did not validate against our published schema")
const badHeader = () =>
  errors.invalidArgument("the header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates")

/**
 * Checks a tag set against S3's rules for an object or a bucket.
 *
 * @since 0.1.0
 * @category validation
 */
export const validate = (tags: TagSet, kind: "object" | "bucket"): Either.Either<TagSet, S3Error> => {
  const max = kind === "object" ? limits.objectTags : limits.bucketTags
  if (tags.length > max) return Either.left(tooMany(`${kind === "object" ? "Object" : "Bucket"} tags cannot be greater than ${max}`))
  const seen = new Set<string>()
  for (const t of tags) {
    if (seen.has(t.key)) return Either.left(invalidTag("Cannot provide multiple Tags with the same key"))
    seen.add(t.key)
    if (t.key.toLowerCase().startsWith("aws:")) return Either.left(invalidTag("System tags cannot be added/updated by requester"))
    if ([...t.key].length > limits.keyLength) return Either.left(invalidTag(`The TagKey you have provided is too long, max ${limits.keyLength}`))
    if ([...t.value].length > limits.valueLength) return Either.left(invalidTag(`The TagValue you have provided is too long, max ${limits.valueLength}`))
    if (t.key === "" || !ALLOWED.test(t.key)) return Either.left(invalidTag("The TagKey you have provided is invalid"))
    if (!ALLOWED.test(t.value)) return Either.left(invalidTag("The TagValue you have provided is invalid"))
  }
  return Either.right(tags)
}

/**
 * Parses a `<Tagging><TagSet><Tag><Key/><Value/></Tag>…</TagSet></Tagging>` document and checks it.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseXml = (text: string, kind: "object" | "bucket"): Either.Either<TagSet, S3Error> => {
  const doc = Xml.parse(text)
  if (doc === undefined || Xml.localName(doc) !== "Tagging") return Either.left(malformed())
  const sets = Xml.children(doc, "TagSet")
  if (sets.length !== 1 || doc.children.length !== 1) return Either.left(malformed())
  const tags: Array<Tag> = []
  for (const node of sets[0]!.children) {
    if (Xml.localName(node) !== "Tag") return Either.left(malformed())
    const keys = Xml.children(node, "Key")
    const values = Xml.children(node, "Value")
    if (keys.length !== 1 || values.length !== 1 || node.children.length !== 2) return Either.left(malformed())
    if (keys[0]!.children.length > 0 || values[0]!.children.length > 0) return Either.left(malformed())
    tags.push({ key: keys[0]!.text, value: values[0]!.text })
  }
  return validate(tags, kind)
}

const decodeComponent = (s: string): string | undefined => {
  try {
    return decodeURIComponent(s.replace(/\+/g, " "))
  } catch {
    return undefined
  }
}

/**
 * Parses the `x-amz-tagging` header (`k1=v1&k2=v2`, URL-encoded; a key alone has an empty value)
 * and checks it as an object's tag set.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseHeader = (value: string): Either.Either<TagSet, S3Error> => {
  if (value === "") return Either.right([])
  const tags: Array<Tag> = []
  const seen = new Set<string>()
  for (const pair of value.split("&")) {
    const eq = pair.indexOf("=")
    const key = decodeComponent(eq < 0 ? pair : pair.slice(0, eq))
    const val = eq < 0 ? "" : decodeComponent(pair.slice(eq + 1))
    if (key === undefined || val === undefined || key === "" || seen.has(key)) return Either.left(badHeader())
    seen.add(key)
    tags.push({ key, value: val })
  }
  return validate(tags, "object")
}

/**
 * The `<Tagging>` document of a tag set.
 *
 * @since 0.1.0
 * @category rendering
 */
export const toXml = (tags: TagSet): string =>
  Xml.el("Tagging", [Xml.el("TagSet", tags.map((t) => Xml.el("Tag", [Xml.el("Key", t.key), Xml.el("Value", t.value)])))], Xml.S3_NS)

/**
 * The metadata value of a tag set (the `x-amz-tagging` form, ASCII).
 *
 * @since 0.1.0
 * @category metadata
 */
export const encode = (tags: TagSet): string =>
  tags.map((t) => `${encodeURIComponent(t.key)}=${encodeURIComponent(t.value)}`).join("&")

/**
 * The metadata entry for a tag set (none for an empty set).
 *
 * @since 0.1.0
 * @category metadata
 */
export const metadataFor = (tags: TagSet): Record<string, string> => (tags.length === 0 ? {} : { [META]: encode(tags) })

/**
 * An object's tags, from its metadata (empty when it has none or the entry is unreadable).
 *
 * @since 0.1.0
 * @category metadata
 */
export const fromMetadata = (metadata: Readonly<Record<string, string>>): TagSet => {
  const v = metadata[META]
  if (v === undefined || v === "") return []
  const tags: Array<Tag> = []
  for (const pair of v.split("&")) {
    const eq = pair.indexOf("=")
    const key = decodeComponent(eq < 0 ? pair : pair.slice(0, eq))
    const val = eq < 0 ? "" : decodeComponent(pair.slice(eq + 1))
    if (key !== undefined && val !== undefined) tags.push({ key, value: val })
  }
  return tags
}

/**
 * The `x-amz-tagging-count` header of an object with tags.
 *
 * @since 0.1.0
 * @category rendering
 */
export const countHeader = (metadata: Readonly<Record<string, string>>): Record<string, string> => {
  const n = fromMetadata(metadata).length
  return n === 0 ? {} : { "x-amz-tagging-count": String(n) }
}

/**
 * How many times a tag update is tried when the object keeps changing under it.
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_ATTEMPTS = 5

/**
 * Replaces an object's tag set with a metadata-only rewrite of the object onto itself, checked
 * against the version read (`ifSourceMatch`): when another writer replaced the object meanwhile,
 * the update is applied again to the new version, up to `MAX_ATTEMPTS` times, then refused with
 * S3's `OperationAborted`. The client ETag and Last-Modified are kept (pinned in the metadata),
 * and so is the object's recorded checksum.
 *
 * `ObjectNotFound` (missing or deleted meanwhile) is left to the caller.
 *
 * @since 0.1.0
 * @category writing
 */
export const rewrite = (options: {
  readonly store: Store
  readonly system: Store
  readonly bucket: string
  readonly key: string
  readonly tags: TagSet
}): Effect.Effect<void, StoreError | S3Error> => {
  const { store, system, bucket, key } = options
  const attempt = (left: number): Effect.Effect<void, StoreError | S3Error> =>
    Effect.gen(function*() {
      const info = yield* store.head(key)
      const current = info.metadata[META]
      const next = metadataFor(options.tags)[META]
      if (current === next) return
      const clientEtag = yield* Etag.clientEtag(system, bucket, info)
      const checksum = Multipart.isMultipart(info.metadata) ? undefined : yield* ObjectAttributes.checksumOf(system, bucket, info, undefined)
      const { [META]: _, ...rest } = info.metadata
      const metadata = {
        ...rest,
        ...metadataFor(options.tags),
        [Etag.PINNED]: clientEtag,
        [PINNED_LAST_MODIFIED]: lastModified(info).toISOString()
      }
      const copied = yield* store.copy(key, key, { metadata, contentType: info.contentType, ifSourceMatch: info.etag }).pipe(
        Effect.map((r) => Either.right(r)),
        Effect.catchTag("PreconditionFailed", (e) => Effect.succeed(Either.left(e))),
        // No SSE parameter is passed: a store cannot refuse a mode here.
        Effect.catchTag("UnsupportedMode", (e) => Effect.die(e))
      )
      if (Either.isLeft(copied)) {
        if (left <= 1) return yield* new S3Error({ code: "OperationAborted", status: 409, detail: "A conflicting conditional operation is currently in progress against this resource. Please try again." })
        return yield* attempt(left - 1)
      }
      // The checksum record is keyed by the stored version's ETag, which a rewrite may change.
      if (checksum !== undefined && copied.right.etag !== info.etag) {
        yield* ObjectAttributes.recordChecksum(system, bucket, info.key, copied.right.etag, { algorithm: checksum.algorithm, value: checksum.value })
        yield* ObjectAttributes.dropChecksum(system, bucket, info.etag)
      }
    })
  return attempt(MAX_ATTEMPTS)
}
