/**
 * Against the GCS JSON-API test server of @objcrypt/test-kit (in this process, 127.0.0.1, free
 * port), driven by the official client: the conformance suite with CSEK, CMEK and Google-managed
 * keys, with parallel (compose) and resumable uploads.
 */
import { afterAll } from "@effect/vitest"
import * as GcsServer from "@objcrypt/test-kit/GcsServer"
import { objectStoreSuite } from "@objcrypt/test-kit/ObjectStoreSuite"
import { Effect, Layer, ManagedRuntime } from "effect"
import * as crypto from "node:crypto"
import type { GcsConfig } from "../src/GcsConfig.js"
import * as GcsBuckets from "../src/GcsBuckets.js"
import * as GcsObjectStore from "../src/GcsObjectStore.js"

const server = ManagedRuntime.make(GcsServer.layer())
afterAll(() => server.dispose(), 60_000)

const PART = 256 * 1024
const KMS = "projects/objcrypt/locations/us/keyRings/test/cryptoKeys/conformance"

/** A fresh bucket on the shared server, probed so CSEK over its plain http is allowed by the facts. */
export const storeLayer = (extra?: Partial<GcsConfig>) =>
  Layer.unwrapScoped(
    Effect.gen(function*() {
      const info = yield* Effect.promise(() => server.runPromise(GcsServer.GcsServer))
      const bucket = `objcrypt-${crypto.randomBytes(5).toString("hex")}`
      const base: GcsConfig = { bucket, apiEndpoint: info.endpoint, projectId: info.projectId, partSize: PART, ...extra }
      const probe = yield* Effect.scoped(
        Effect.gen(function*() {
          const s = yield* GcsObjectStore.make(base)
          yield* Effect.orDie(GcsBuckets.createBucket(s.storage, bucket))
          return yield* GcsBuckets.probe(s, { kmsKeyName: KMS })
        })
      )
      return GcsObjectStore.layer({ ...base, facts: probe.facts })
    })
  )

objectStoreSuite({
  name: "GcsObjectStore on the test-kit GCS server (conformance, parallel uploads)",
  layer: storeLayer(),
  capabilities: { sse: { SseS3: true, SseKms: { keyId: KMS }, SseC: true }, conditionalWrites: true, md5Etags: false },
  sizes: { partSize: PART }
})

objectStoreSuite({
  name: "GcsObjectStore on the test-kit GCS server (conformance, resumable uploads)",
  layer: storeLayer({ parallelUploads: false }),
  capabilities: { sse: { SseS3: true, SseKms: { keyId: KMS }, SseC: true }, conditionalWrites: true, md5Etags: false },
  sizes: { partSize: PART }
})
