/**
 * The ETags clients see. S3 returns the hex MD5 of the plaintext for objects stored with SSE-S3
 * (and no encryption) and an opaque value for SSE-KMS and SSE-C. The backend's own ETag is over
 * our ciphertext, so for SSE-S3 writes the gateway hashes the plaintext while it streams and
 * records the MD5 in the system store under `etags/<bucket>/<backend-etag>`: a backend ETag names
 * one stored version, so the record is immutable (and safe to cache across replicas), and an
 * overwrite, whose backend ETag is new, can never see a stale one. Objects without a record
 * (SSE-KMS, SSE-C, or written before this record existed) show the backend's ETag, which is opaque.
 */
import type { StoreError } from "@objcrypt/core/Errors"
import type * as ObjectStore from "@objcrypt/core/ObjectStore"
import { Effect, Stream } from "effect"
import * as crypto from "node:crypto"
import { readJson, writeJson } from "../Buckets.js"
import type * as Sse from "../Sse.js"

type Store = ObjectStore.ObjectStore["Type"]

const SAFE_ETAG = /^[A-Za-z0-9_-]{1,128}$/
const MD5_HEX = /^[0-9a-f]{32}(-\d{1,5})?$/
const recordKey = (bucket: string, backendEtag: string) => `etags/${bucket}/${backendEtag}`

/** Whether S3 would return the plaintext MD5 as the ETag of a write in this mode. */
export const isMd5Mode = (mode: Sse.WriteMode): boolean => mode._tag === "SseS3"

/** An MD5 fed by a stream as it passes (no buffering). */
export interface Md5Tap {
  readonly pipe: <E, R>(self: Stream.Stream<Uint8Array, E, R>) => Stream.Stream<Uint8Array, E, R>
  /** The hex digest, once the stream has been read in full. */
  readonly hex: () => string
}

/** A tap hashing the bytes of a write in an MD5 mode; undefined otherwise. */
export const md5Tap = (mode: Sse.WriteMode): Md5Tap | undefined => {
  if (!isMd5Mode(mode)) return undefined
  const hash = crypto.createHash("md5")
  let digest: string | undefined
  return {
    pipe: (self) => Stream.map(self, (b) => {
      hash.update(b)
      return b
    }),
    hex: () => (digest ??= hash.digest("hex"))
  }
}

const CACHE_MAX = 10_000
const cache = new Map<string, string>()
const remember = (k: string, v: string) => {
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value!)
  cache.set(k, v)
}

/** Records the client-visible ETag of a stored version (no-op for an unusable backend ETag). */
export const record = (system: Store, bucket: string, backendEtag: string, etag: string): Effect.Effect<void, StoreError> =>
  !SAFE_ETAG.test(backendEtag) || !MD5_HEX.test(etag)
    ? Effect.void
    : writeJson(system, recordKey(bucket, backendEtag), etag).pipe(Effect.map(() => remember(`${bucket}/${backendEtag}`, etag)))

/** Drops the record of a replaced or deleted version. */
export const drop = (system: Store, bucket: string, backendEtag: string): Effect.Effect<void> => {
  if (!SAFE_ETAG.test(backendEtag)) return Effect.void
  cache.delete(`${bucket}/${backendEtag}`)
  return system.remove(recordKey(bucket, backendEtag)).pipe(Effect.ignore)
}

/** The ETag a client sees (unquoted) for a stored version with this backend ETag. */
export const clientEtag = (system: Store, bucket: string, backendEtag: string): Effect.Effect<string, StoreError> => {
  if (!SAFE_ETAG.test(backendEtag)) return Effect.succeed(backendEtag)
  const hit = cache.get(`${bucket}/${backendEtag}`)
  if (hit !== undefined) return Effect.succeed(hit)
  return readJson(system, recordKey(bucket, backendEtag)).pipe(Effect.map((text) => {
    if (text === undefined) return backendEtag
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      return backendEtag
    }
    if (typeof parsed !== "string" || !MD5_HEX.test(parsed)) return backendEtag
    remember(`${bucket}/${backendEtag}`, parsed)
    return parsed
  }))
}
