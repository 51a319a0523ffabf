/**
 * The ETags clients see. S3 returns the hex MD5 of the plaintext for objects stored with SSE-S3
 * (and no encryption) and an opaque value for SSE-KMS and SSE-C. The backend's own ETag is over
 * our ciphertext, so for SSE-S3 writes the gateway hashes the plaintext while it streams and keeps
 * the MD5 in a record of the system store.
 *
 * Crash order. The record is named by a random id that the object itself carries in its metadata
 * (`gw-etag`; for a multipart object, its manifest id `gw-mp`), and it is written *before* the
 * object is committed: the tap below writes it when the plaintext stream has been read to its
 * end, and `ClientSide.put` cannot seal the last segment (so the backend cannot commit the object)
 * before it has seen that end; a multipart completion writes it before completing the backend
 * upload. A process killed between the two steps therefore leaves at most a record that no
 * object names (an orphan: never read, since only an object carrying its id leads to it), never
 * an object without its ETag. Orphans are removed by `sweep` (`internal/orphans.ts`), which checks
 * records (older than a safety age) against the objects they name.
 *
 * Records are immutable (an id names one stored version; an overwrite gets a new id), so they
 * are safe to cache across replicas. Objects written before these records (keyed by the backend
 * ETag under `etags/`) are still read and dropped.
 */
import * as BackgroundHash from "@objcrypt/core/BackgroundHash"
import type { StoreError } from "@objcrypt/core/Errors"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import { Chunk, Effect, Option, Stream } from "effect"
import * as crypto from "node:crypto"
import { readJson, writeJson } from "../Buckets.js"
import { Meta } from "../Sse.js"
import type * as Sse from "../Sse.js"
import * as Orphans from "./orphans.js"

type Store = ObjectStore.ObjectStore["Type"]

/** The object metadata entry naming its ETag record. */
export const META = "gw-etag"

/**
 * The client ETag of a version rewritten in place for its metadata alone (a tag update): the
 * backend gives the rewrite a new ETag, the client must keep seeing the one it had.
 */
export const PINNED = "gw-etag-pin"

const ID = /^[0-9a-f]{32}$/
const SAFE_ETAG = /^[A-Za-z0-9_-]{1,128}$/
const MD5_HEX = /^[0-9a-f]{32}(-\d{1,5})?$/
const RECORDS = "etag-records/"
const recordKey = (bucket: string, id: string) => `${RECORDS}${bucket}/${id}`
const legacyKey = (bucket: string, backendEtag: string) => `etags/${bucket}/${backendEtag}`
const SWEEP_CURSOR = "etag-sweep.json"

/** The record's id an object carries, if any. */
const idOf = (metadata: Readonly<Record<string, string>>): string | undefined => {
  const id = metadata[META] ?? metadata[Meta.multipart]
  return id !== undefined && ID.test(id) ? id : undefined
}

/** What a record holds: the client ETag and the object's key (for the sweep). */
interface EtagRecord {
  readonly etag: string
  readonly key: string
}

const parseRecord = (text: string | undefined): EtagRecord | undefined => {
  if (text === undefined) return undefined
  try {
    const r = JSON.parse(text) as Partial<EtagRecord>
    return typeof r.etag === "string" && MD5_HEX.test(r.etag) && typeof r.key === "string" ? { etag: r.etag, key: r.key } : undefined
  } catch {
    return undefined
  }
}

/** Whether S3 would return the plaintext MD5 as the ETag of a write in this mode. */
export const isMd5Mode = (mode: Sse.WriteMode): boolean => mode._tag === "SseS3"

/** An MD5 fed by a write's plaintext as it passes (no buffering), recorded before the commit. */
export interface Md5Tap {
  /** Metadata to store with the object: the id naming its ETag record. */
  readonly metadata: Readonly<Record<string, string>>
  /** Hashes the stream and, once it has been read to its end, writes the record. */
  readonly pipe: <E, R>(self: Stream.Stream<Uint8Array, E, R>) => Stream.Stream<Uint8Array, E | StoreError, R>
  /** The hex digest, once the stream has been read in full. */
  readonly hex: () => string
}

const CACHE_MAX = 10_000
const cache = new Map<string, string>()
const remember = (k: string, v: string) => {
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value!)
  cache.set(k, v)
}

/**
 * Writes the record of a version about to be committed (`id` is what the object will carry).
 *
 * @internal
 */
export const record = (system: Store, bucket: string, key: string, id: string, etag: string): Effect.Effect<void, StoreError> =>
  !ID.test(id) || !MD5_HEX.test(etag)
    ? Effect.void
    : writeJson(system, recordKey(bucket, id), { etag, key } satisfies EtagRecord).pipe(Effect.map(() => remember(`${bucket}/${id}`, etag)))

/**
 * A tap for a write of `key` in an MD5 mode; undefined otherwise. With `known`, the MD5 the body
 * was already verified against (a request's Content-MD5, see `decodeBody`), available once the
 * body has ended, the body is not hashed a second time.
 */
export const md5Tap = (
  mode: Sse.WriteMode,
  system: Store,
  bucket: string,
  key: string,
  known?: (() => string | undefined) | undefined
): Md5Tap | undefined => {
  if (!isMd5Mode(mode)) return undefined
  const id = crypto.randomBytes(16).toString("hex")
  const md5 = known === undefined ? backgroundMd5() : fromKnown(known)
  return {
    metadata: { [META]: id },
    // The record goes out when the plaintext ends: before ClientSide.put can seal the last segment.
    pipe: (self) =>
      md5.pipe(self).pipe(Stream.concat(Stream.execute(Effect.suspend(() => record(system, bucket, key, id, md5.hex()))))),
    hex: md5.hex
  }
}

/** An MD5 computed elsewhere as the body passed: the stream goes through untouched. */
export const fromKnown = (known: () => string | undefined): ReturnType<typeof backgroundMd5> => ({
  pipe: (self) => self,
  hex: () => {
    const hex = known()
    if (hex === undefined) throw new Error("the body has not been read in full")
    return hex
  }
})

/**
 * The MD5 of a stream's bytes as they pass, computed on the hashing worker thread while this one
 * encrypts and writes; `hex` once the stream has ended.
 */
export const backgroundMd5 = (): {
  readonly pipe: <E, R>(self: Stream.Stream<Uint8Array, E, R>) => Stream.Stream<Uint8Array, E, R>
  readonly hex: () => string
} => {
  let digest: string | undefined
  return {
    pipe: (self) =>
      Stream.suspend(() => {
        const hash = BackgroundHash.make("md5")
        return self.pipe(
          Stream.mapChunksEffect((chunk) => Effect.as(feed(hash, Chunk.toReadonlyArray(chunk)), chunk)),
          Stream.concat(Stream.execute(Effect.promise(() => hash.digest()).pipe(Effect.map((d) => void (digest = d.toString("hex")))))),
          Stream.ensuring(Effect.sync(() => hash.dispose()))
        )
      }),
    hex: () => {
      if (digest === undefined) throw new Error("the body has not been read in full")
      return digest
    }
  }
}

/** Feeds a chunk's buffers to the hash in order, waiting where the hash asks for it. */
const feed = (hash: BackgroundHash.BackgroundHash, items: ReadonlyArray<Uint8Array>): Effect.Effect<void> => {
  for (let i = 0; i < items.length; i++) {
    const waiting = hash.update(items[i]!)
    if (waiting !== undefined) {
      return Effect.promise(async () => {
        await waiting
        for (let j = i + 1; j < items.length; j++) await hash.update(items[j]!)
      })
    }
  }
  return Effect.void
}

/** Whether a version may have a record from before the id-named ones (SSE-S3, no `gw-etag`). */
const mayHaveLegacy = (info: ObjectStore.ObjectInfo) =>
  info.metadata[META] === undefined && info.metadata[Meta.sse] === "AES256" && SAFE_ETAG.test(info.etag)

/** Drops the record of a replaced or deleted version. */
export const drop = (system: Store, bucket: string, info: ObjectStore.ObjectInfo): Effect.Effect<void> => {
  if (info.metadata[Meta.sse] !== "AES256") return Effect.void
  const id = idOf(info.metadata)
  if (id !== undefined) cache.delete(`${bucket}/${id}`)
  return Effect.all([
    id === undefined ? Effect.void : system.remove(recordKey(bucket, id)).pipe(Effect.ignore),
    mayHaveLegacy(info) ? system.remove(legacyKey(bucket, info.etag)).pipe(Effect.ignore) : Effect.void
  ], { concurrency: 2, discard: true })
}

/** The ETag of a version written before the id-named records (a JSON string keyed by the backend ETag). */
const legacyEtag = (system: Store, bucket: string, info: ObjectStore.ObjectInfo): Effect.Effect<string, StoreError> =>
  !mayHaveLegacy(info) ? Effect.succeed(info.etag) : readJson(system, legacyKey(bucket, info.etag)).pipe(Effect.map((text) => {
    let parsed: unknown
    try {
      parsed = text === undefined ? undefined : JSON.parse(text)
    } catch {
      return info.etag
    }
    return typeof parsed === "string" && MD5_HEX.test(parsed) ? parsed : info.etag
  }))

/** The ETag a client sees (unquoted) for a stored version. */
export const clientEtag = (system: Store, bucket: string, info: ObjectStore.ObjectInfo): Effect.Effect<string, StoreError> => {
  const pinned = info.metadata[PINNED]
  if (pinned !== undefined && (MD5_HEX.test(pinned) || SAFE_ETAG.test(pinned))) return Effect.succeed(pinned)
  // Only SSE-S3 versions have records (SSE-KMS and SSE-C ETags are opaque): no read for the others.
  if (info.metadata[Meta.sse] !== "AES256") return Effect.succeed(info.etag)
  const id = idOf(info.metadata)
  if (id === undefined) return legacyEtag(system, bucket, info)
  const hit = cache.get(`${bucket}/${id}`)
  if (hit !== undefined) return Effect.succeed(hit)
  return readJson(system, recordKey(bucket, id)).pipe(Effect.flatMap((text) => {
    const r = parseRecord(text)
    if (r === undefined) return legacyEtag(system, bucket, info)
    remember(`${bucket}/${id}`, r.etag)
    return Effect.succeed(r.etag)
  }))
}

/**
 * ETag records as `internal/orphans.ts` sweeps them.
 *
 * @internal
 */
export const records: Orphans.RecordKind = {
  name: "ETag records",
  prefix: RECORDS,
  cursor: SWEEP_CURSOR,
  objectKey: (text) => Option.map(Option.fromNullable(parseRecord(text)), (r) => r.key),
  idOf: (info) => idOf(info.metadata),
  removed: (bucket, id) => cache.delete(`${bucket}/${id}`)
}

/**
 * Removes orphan ETag records (see `internal/orphans.ts`): a process killed before the commit, a
 * write that failed after its record, a delete killed before its drop.
 *
 * @internal
 */
export const sweep = (
  system: Store,
  bucketStore: (bucket: string) => Effect.Effect<Store | undefined, StoreError>,
  options: { readonly olderThanMs: number; readonly now?: number | undefined; readonly full?: boolean | undefined }
): Effect.Effect<Orphans.SweepResult, StoreError> => Orphans.sweep(system, bucketStore, records, options)
