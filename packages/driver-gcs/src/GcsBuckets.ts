/**
 * Bucket-level operations the `ObjectStore` contract does not cover: creating a bucket with a
 * default CMEK key, reading its encryption configuration, and probing what it really allows.
 *
 * @since 0.1.0
 */
import type { Storage } from "@google-cloud/storage"
import type { BucketFacts, ModeObservation, ProbeResult, ProfileName } from "@objcrypt/core/CompatibilityMatrix"
import * as CustomerKey from "@objcrypt/core/CustomerKey"
import type { StoreError } from "@objcrypt/core/Errors"
import { Effect, Redacted } from "effect"
import * as crypto from "node:crypto"
import type { GcsObjectStore } from "./GcsObjectStore.js"
import { toStoreError } from "./internal/errors.js"

/**
 * GCS `restrictionMode` per key kind (the bucket's encryption enforcement config).
 *
 * @since 0.1.0
 * @category models
 */
export interface Enforcement {
  readonly googleManaged?: "NotRestricted" | "FullyRestricted" | undefined
  readonly customerManaged?: "NotRestricted" | "FullyRestricted" | undefined
  readonly customerSupplied?: "NotRestricted" | "FullyRestricted" | undefined
}

/**
 * A bucket's encryption configuration.
 *
 * @since 0.1.0
 * @category models
 */
export interface BucketEncryption {
  /** Cloud KMS key for objects written without one (`encryption.defaultKmsKeyName`). */
  readonly defaultKmsKeyName?: string | undefined
  readonly enforcement?: Enforcement | undefined
}

const FIELDS = {
  googleManaged: "googleManagedEncryptionEnforcementConfig",
  customerManaged: "customerManagedEncryptionEnforcementConfig",
  customerSupplied: "customerSuppliedEncryptionEnforcementConfig"
} as const

const toApi = (e: BucketEncryption): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  if (e.defaultKmsKeyName !== undefined) out["defaultKmsKeyName"] = e.defaultKmsKeyName
  for (const [k, field] of Object.entries(FIELDS)) {
    const mode = e.enforcement?.[k as keyof Enforcement]
    if (mode !== undefined) out[field] = { restrictionMode: mode }
  }
  return out
}

const fromApi = (v: unknown): BucketEncryption => {
  if (typeof v !== "object" || v === null) return {}
  const o = v as Record<string, unknown>
  const enforcement: { -readonly [K in keyof Enforcement]: Enforcement[K] } = {}
  for (const [k, field] of Object.entries(FIELDS)) {
    const mode = (o[field] as { restrictionMode?: unknown } | undefined)?.restrictionMode
    if (mode === "NotRestricted" || mode === "FullyRestricted") enforcement[k as keyof Enforcement] = mode
  }
  return {
    ...(typeof o["defaultKmsKeyName"] === "string" ? { defaultKmsKeyName: o["defaultKmsKeyName"] } : {}),
    ...(Object.keys(enforcement).length === 0 ? {} : { enforcement })
  }
}

/**
 * Creates a bucket, optionally with a default CMEK key and an enforcement config.
 *
 * @since 0.1.0
 * @category buckets
 */
export const createBucket = (storage: Storage, name: string, encryption?: BucketEncryption): Effect.Effect<void, StoreError> =>
  Effect.asVoid(
    Effect.tryPromise({
      try: () => storage.createBucket(name, encryption === undefined ? {} : ({ encryption: toApi(encryption) } as never)),
      catch: (e) => toStoreError("createBucket", name, e)
    })
  )

/**
 * Reads a bucket's encryption configuration.
 *
 * @since 0.1.0
 * @category buckets
 */
export const getEncryption = (storage: Storage, name: string): Effect.Effect<BucketEncryption, StoreError> =>
  Effect.tryPromise({
    try: () => storage.bucket(name).getMetadata(),
    catch: (e) => toStoreError("getBucket", name, e)
  }).pipe(Effect.map(([m]) => fromApi((m as { encryption?: unknown }).encryption)))

/**
 * @since 0.1.0
 * @category probe
 */
export interface ProbeOptions {
  /** A Cloud KMS key for the CMEK trial; absent: no CMEK trial. */
  readonly kmsKeyName?: string | undefined
  /** @default the store's */
  readonly profile?: ProfileName | undefined
}

/**
 * Discovers what a real bucket allows: its default CMEK key and enforcement config, and for CSEK
 * and CMEK a small write under a random hidden name, read back to see whether the server enforced
 * the key. CSEK is tried with a throwaway random key, so it can be probed over plain http (a test
 * server) without exposing a real key. Every probe object is deleted. The result feeds
 * `GcsConfig.facts` and `CompatibilityMatrix.applyProbe`.
 *
 * @since 0.1.0
 * @category probe
 */
export const probe = (store: GcsObjectStore["Type"], options?: ProbeOptions): Effect.Effect<ProbeResult> =>
  Effect.gen(function*() {
    const bucket = store.gcsBucket
    const body = crypto.randomBytes(64)
    const base = `${store.uploadPrefix}probe-${crypto.randomBytes(8).toString("hex")}`
    const attempt = <A>(f: () => Promise<A>) => Effect.either(Effect.tryPromise({ try: f, catch: (e) => e }))
    const cleanup = (name: string) => Effect.ignore(attempt(() => bucket.file(name).delete({ ignoreNotFound: true })))
    const facts: { -readonly [K in keyof BucketFacts]: BucketFacts[K] } = { tls: store.facts.tls }
    const modes: { SseS3?: ModeObservation; SseKms?: ModeObservation; SseC?: ModeObservation } = {}

    const enc = yield* Effect.either(getEncryption(store.storage, store.bucket))
    if (enc._tag === "Right") {
      if (enc.right.defaultKmsKeyName !== undefined) facts.defaultEncryption = { mode: "SseKms", keyId: enc.right.defaultKmsKeyName }
      if (enc.right.enforcement !== undefined) facts.gcsEnforcement = enc.right.enforcement
    }

    {
      const name = `${base}-plain`
      const r = yield* attempt(() => bucket.file(name).save(body, { resumable: false, gzip: false }))
      modes.SseS3 = r._tag === "Left" ? "refused" : "accepted"
      yield* cleanup(name)
    }

    {
      const name = `${base}-csek`
      const key = yield* CustomerKey.generate
      const bytes = Buffer.from(Redacted.value(key.material))
      const r = yield* attempt(() => bucket.file(name, { encryptionKey: bytes }).save(body, { resumable: false, gzip: false }))
      if (r._tag === "Left") {
        modes.SseC = "refused"
      } else {
        const without = yield* attempt(() => bucket.file(name).download())
        const withKey = yield* attempt(() => bucket.file(name, { encryptionKey: bytes }).download())
        modes.SseC = without._tag === "Right"
          ? "ignored"
          : withKey._tag === "Right" && withKey.right[0].equals(body)
          ? "enforced"
          : "accepted"
      }
      yield* cleanup(name)
    }

    if (options?.kmsKeyName !== undefined) {
      const name = `${base}-cmek`
      const kms = options.kmsKeyName
      const r = yield* attempt(async () => {
        const file = bucket.file(name, { kmsKeyName: kms })
        await file.save(body, { resumable: false, gzip: false })
        return file.metadata
      })
      if (r._tag === "Left") {
        modes.SseKms = "refused"
        const status = (r.left as { code?: unknown }).code
        if (status === 403) facts.kmsDenied = true
      } else {
        modes.SseKms = typeof r.right.kmsKeyName === "string" && r.right.kmsKeyName.startsWith(kms) ? "accepted" : "ignored"
      }
      yield* cleanup(name)
    }

    facts.modes = modes
    return {
      profile: options?.profile ?? store.profile,
      bucket: store.bucket,
      probedAt: new Date().toISOString(),
      facts
    }
  })
