/**
 * Configurations no gateway bucket ever has — inventory, analytics, metrics, S3 Intelligent-Tiering
 * and Object Lock — answered through the real @aws-sdk/client-s3 as Amazon S3 answers for a bucket
 * without them, and writes asking for an object lock refused without writing anything.
 */
import {
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketAnalyticsConfigurationCommand,
  DeleteBucketIntelligentTieringConfigurationCommand,
  DeleteBucketInventoryConfigurationCommand,
  DeleteBucketMetricsConfigurationCommand,
  GetBucketAnalyticsConfigurationCommand,
  GetBucketIntelligentTieringConfigurationCommand,
  GetBucketInventoryConfigurationCommand,
  GetBucketMetricsConfigurationCommand,
  GetObjectCommand,
  GetObjectLegalHoldCommand,
  GetObjectRetentionCommand,
  HeadObjectCommand,
  ListBucketAnalyticsConfigurationsCommand,
  ListBucketIntelligentTieringConfigurationsCommand,
  ListBucketInventoryConfigurationsCommand,
  ListBucketMetricsConfigurationsCommand,
  ListMultipartUploadsCommand,
  PutBucketAnalyticsConfigurationCommand,
  PutBucketIntelligentTieringConfigurationCommand,
  PutBucketInventoryConfigurationCommand,
  PutBucketMetricsConfigurationCommand,
  PutObjectCommand,
  PutObjectLegalHoldCommand,
  PutObjectRetentionCommand
} from "@aws-sdk/client-s3"
import type { S3Client } from "@aws-sdk/client-s3"
import { getSignedUrl } from "@aws-sdk/s3-request-presigner"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { bob, bytes, call, client, refused, start } from "./apiHarness.js"
import type { Api } from "./apiHarness.js"

let api: Api
let s3: S3Client

beforeAll(async () => {
  api = await start()
  s3 = client(api)
  await s3.send(new CreateBucketCommand({ Bucket: "plain" }))
  await s3.send(new PutObjectCommand({ Bucket: "plain", Key: "kept", Body: "kept body" }))
}, 60_000)

afterAll(async () => {
  await api?.close()
})

/** An SDK call expected to fail: `"<status> <code>: <message>"`. */
const failure = (f: () => Promise<unknown>) =>
  Effect.tryPromise({ try: f, catch: (e) => e as { name: string; Code?: string; message: string; $metadata?: { httpStatusCode?: number } } }).pipe(
    Effect.flip,
    Effect.map((e) => `${e.$metadata?.httpStatusCode} ${e.Code ?? e.name}: ${e.message}`)
  )
const status = (f: () => Promise<unknown>) => Effect.map(refused(f), (r) => `${r.status} ${r.code}`)

const NO_CONFIGURATION = "404 NoSuchConfiguration: The specified configuration does not exist."
const NO_OBJECT_LOCK = "400 InvalidRequest: Bucket is missing Object Lock Configuration"
const NO_OBJECT_LOCK_ON_WRITE = "400 InvalidRequest: Bucket is missing ObjectLockConfiguration"
const future = () => new Date(Date.now() + 86_400_000)

describe("configurations kept by id (inventory, analytics, metrics, intelligent-tiering)", () => {
  it.effect("List… answers S3's empty list, which the SDK parses", () =>
    Effect.gen(function*() {
      const inventory = yield* call(() => s3.send(new ListBucketInventoryConfigurationsCommand({ Bucket: "plain" })))
      assert.strictEqual(inventory.$metadata.httpStatusCode, 200)
      assert.strictEqual(inventory.IsTruncated, false)
      assert.isUndefined(inventory.InventoryConfigurationList)
      const analytics = yield* call(() => s3.send(new ListBucketAnalyticsConfigurationsCommand({ Bucket: "plain" })))
      assert.strictEqual(analytics.IsTruncated, false)
      assert.isUndefined(analytics.AnalyticsConfigurationList)
      const metrics = yield* call(() => s3.send(new ListBucketMetricsConfigurationsCommand({ Bucket: "plain" })))
      assert.strictEqual(metrics.IsTruncated, false)
      assert.isUndefined(metrics.MetricsConfigurationList)
      const tiering = yield* call(() => s3.send(new ListBucketIntelligentTieringConfigurationsCommand({ Bucket: "plain" })))
      assert.strictEqual(tiering.IsTruncated, false)
      assert.isUndefined(tiering.IntelligentTieringConfigurationList)
    }))

  it.effect("List… documents carry the root element of S3's API reference in S3's namespace", () =>
    Effect.gen(function*() {
      const roots: ReadonlyArray<readonly [() => Promise<string>, string]> = [
        [() => getSignedUrl(s3, new ListBucketInventoryConfigurationsCommand({ Bucket: "plain" }), { expiresIn: 60 }), "ListInventoryConfigurationsResult"],
        [() => getSignedUrl(s3, new ListBucketAnalyticsConfigurationsCommand({ Bucket: "plain" }), { expiresIn: 60 }), "ListBucketAnalyticsConfigurationResult"],
        [() => getSignedUrl(s3, new ListBucketMetricsConfigurationsCommand({ Bucket: "plain" }), { expiresIn: 60 }), "ListMetricsConfigurationsResult"],
        [
          () => getSignedUrl(s3, new ListBucketIntelligentTieringConfigurationsCommand({ Bucket: "plain" }), { expiresIn: 60 }),
          "ListBucketIntelligentTieringConfigurationsOutput"
        ]
      ]
      for (const [presign, root] of roots) {
        const url = yield* call(presign)
        const res = yield* call(() => fetch(url))
        assert.strictEqual(res.status, 200, root)
        assert.strictEqual(
          yield* call(() => res.text()),
          `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>false</IsTruncated></${root}>`
        )
      }
    }))

  it.effect("Get… and Delete… of an id answer 404 NoSuchConfiguration", () =>
    Effect.gen(function*() {
      const Bucket = "plain"
      const Id = "report1"
      assert.strictEqual(yield* failure(() => s3.send(new GetBucketInventoryConfigurationCommand({ Bucket, Id }))), NO_CONFIGURATION)
      assert.strictEqual(yield* failure(() => s3.send(new GetBucketAnalyticsConfigurationCommand({ Bucket, Id }))), NO_CONFIGURATION)
      assert.strictEqual(yield* failure(() => s3.send(new GetBucketMetricsConfigurationCommand({ Bucket, Id }))), NO_CONFIGURATION)
      assert.strictEqual(yield* failure(() => s3.send(new GetBucketIntelligentTieringConfigurationCommand({ Bucket, Id }))), NO_CONFIGURATION)
      assert.strictEqual(yield* failure(() => s3.send(new DeleteBucketInventoryConfigurationCommand({ Bucket, Id }))), NO_CONFIGURATION)
      assert.strictEqual(yield* failure(() => s3.send(new DeleteBucketAnalyticsConfigurationCommand({ Bucket, Id }))), NO_CONFIGURATION)
      assert.strictEqual(yield* failure(() => s3.send(new DeleteBucketMetricsConfigurationCommand({ Bucket, Id }))), NO_CONFIGURATION)
      assert.strictEqual(yield* failure(() => s3.send(new DeleteBucketIntelligentTieringConfigurationCommand({ Bucket, Id }))), NO_CONFIGURATION)
    }))

  it.effect("Put… stays 501 NotImplemented, saying the gateway does not hold them, and sets nothing", () =>
    Effect.gen(function*() {
      const Bucket = "plain"
      const Id = "report1"
      const inventory = yield* failure(() =>
        s3.send(
          new PutBucketInventoryConfigurationCommand({
            Bucket,
            Id,
            InventoryConfiguration: {
              Id,
              IsEnabled: true,
              IncludedObjectVersions: "Current",
              Schedule: { Frequency: "Daily" },
              Destination: { S3BucketDestination: { Bucket: "arn:aws:s3:::plain", Format: "CSV" } }
            }
          })
        )
      )
      assert.match(inventory, /^501 NotImplemented: the gateway does not hold inventory configurations/)
      const analytics = yield* failure(() =>
        s3.send(new PutBucketAnalyticsConfigurationCommand({ Bucket, Id, AnalyticsConfiguration: { Id, StorageClassAnalysis: {} } }))
      )
      assert.match(analytics, /^501 NotImplemented: the gateway does not hold analytics configurations/)
      const metrics = yield* failure(() => s3.send(new PutBucketMetricsConfigurationCommand({ Bucket, Id, MetricsConfiguration: { Id } })))
      assert.match(metrics, /^501 NotImplemented: the gateway does not hold metrics configurations/)
      const tiering = yield* failure(() =>
        s3.send(
          new PutBucketIntelligentTieringConfigurationCommand({
            Bucket,
            Id,
            IntelligentTieringConfiguration: { Id, Status: "Enabled", Tierings: [{ Days: 90, AccessTier: "ARCHIVE_ACCESS" }] }
          })
        )
      )
      assert.match(tiering, /^501 NotImplemented: the gateway does not hold intelligent-tiering configurations/)
      assert.strictEqual(yield* failure(() => s3.send(new GetBucketMetricsConfigurationCommand({ Bucket, Id }))), NO_CONFIGURATION)
    }))

  it.effect("a missing bucket is NoSuchBucket, another user's bucket AccessDenied, an unsigned request 403", () =>
    Effect.gen(function*() {
      const Bucket = "no-such-bucket-x"
      assert.strictEqual(yield* status(() => s3.send(new ListBucketInventoryConfigurationsCommand({ Bucket }))), "404 NoSuchBucket")
      assert.strictEqual(yield* status(() => s3.send(new GetBucketAnalyticsConfigurationCommand({ Bucket, Id: "a" }))), "404 NoSuchBucket")
      assert.strictEqual(yield* status(() => s3.send(new DeleteBucketMetricsConfigurationCommand({ Bucket, Id: "a" }))), "404 NoSuchBucket")
      assert.strictEqual(yield* status(() => s3.send(new PutBucketMetricsConfigurationCommand({ Bucket, Id: "a", MetricsConfiguration: { Id: "a" } }))), "404 NoSuchBucket")
      const asBob = client(api, bob)
      assert.strictEqual(yield* status(() => asBob.send(new ListBucketMetricsConfigurationsCommand({ Bucket: "plain" }))), "403 AccessDenied")
      assert.strictEqual(yield* status(() => asBob.send(new GetBucketInventoryConfigurationCommand({ Bucket: "plain", Id: "a" }))), "403 AccessDenied")
      for (const q of ["inventory", "analytics&id=a", "metrics", "intelligent-tiering&id=a"]) {
        const anon = yield* call(() => fetch(`${api.endpoint}/plain?${q}`))
        assert.strictEqual(anon.status, 403, q)
        assert.include(yield* call(() => anon.text()), "<Code>AccessDenied</Code>")
      }
    }))
})

describe("Object Lock on a bucket without it", () => {
  it.effect("GetObjectRetention and GetObjectLegalHold answer 400 InvalidRequest, for a key that exists or not", () =>
    Effect.gen(function*() {
      for (const Key of ["kept", "absent"]) {
        assert.strictEqual(yield* failure(() => s3.send(new GetObjectRetentionCommand({ Bucket: "plain", Key }))), NO_OBJECT_LOCK, Key)
        assert.strictEqual(yield* failure(() => s3.send(new GetObjectLegalHoldCommand({ Bucket: "plain", Key }))), NO_OBJECT_LOCK, Key)
      }
    }))

  it.effect("PutObjectRetention and PutObjectLegalHold answer 400 InvalidRequest and leave the object as it was", () =>
    Effect.gen(function*() {
      const retention = yield* failure(() =>
        s3.send(new PutObjectRetentionCommand({ Bucket: "plain", Key: "kept", Retention: { Mode: "GOVERNANCE", RetainUntilDate: future() } }))
      )
      assert.strictEqual(retention, NO_OBJECT_LOCK)
      const hold = yield* failure(() => s3.send(new PutObjectLegalHoldCommand({ Bucket: "plain", Key: "kept", LegalHold: { Status: "ON" } })))
      assert.strictEqual(hold, NO_OBJECT_LOCK)
      const head = yield* call(() => s3.send(new HeadObjectCommand({ Bucket: "plain", Key: "kept" })))
      assert.isUndefined(head.ObjectLockMode)
      assert.isUndefined(head.ObjectLockLegalHoldStatus)
      const got = yield* call(() => s3.send(new GetObjectCommand({ Bucket: "plain", Key: "kept" })))
      assert.strictEqual(Buffer.from(yield* bytes(got.Body)).toString(), "kept body")
    }))

  it.effect("PutObject asking for a lock is refused and writes nothing, nor overwrites", () =>
    Effect.gen(function*() {
      const asks = [
        { ObjectLockMode: "GOVERNANCE", ObjectLockRetainUntilDate: future() },
        { ObjectLockMode: "COMPLIANCE", ObjectLockRetainUntilDate: future() },
        { ObjectLockLegalHoldStatus: "ON" }
      ] as const
      for (const ask of asks) {
        const put = yield* failure(() => s3.send(new PutObjectCommand({ Bucket: "plain", Key: "locked", Body: "never stored", ...ask })))
        assert.strictEqual(put, NO_OBJECT_LOCK_ON_WRITE)
        assert.strictEqual(yield* status(() => s3.send(new HeadObjectCommand({ Bucket: "plain", Key: "locked" }))), "404 NotFound")
      }
      const over = yield* failure(() => s3.send(new PutObjectCommand({ Bucket: "plain", Key: "kept", Body: "replaced", ObjectLockLegalHoldStatus: "OFF" })))
      assert.strictEqual(over, NO_OBJECT_LOCK_ON_WRITE)
      const got = yield* call(() => s3.send(new GetObjectCommand({ Bucket: "plain", Key: "kept" })))
      assert.strictEqual(Buffer.from(yield* bytes(got.Body)).toString(), "kept body")
    }))

  it.effect("CreateMultipartUpload and CopyObject asking for a lock are refused and start or write nothing", () =>
    Effect.gen(function*() {
      const create = yield* failure(() =>
        s3.send(new CreateMultipartUploadCommand({ Bucket: "plain", Key: "mpu-locked", ObjectLockMode: "GOVERNANCE", ObjectLockRetainUntilDate: future() }))
      )
      assert.strictEqual(create, NO_OBJECT_LOCK_ON_WRITE)
      const hold = yield* failure(() => s3.send(new CreateMultipartUploadCommand({ Bucket: "plain", Key: "mpu-locked", ObjectLockLegalHoldStatus: "ON" })))
      assert.strictEqual(hold, NO_OBJECT_LOCK_ON_WRITE)
      const uploads = yield* call(() => s3.send(new ListMultipartUploadsCommand({ Bucket: "plain" })))
      assert.isUndefined(uploads.Uploads)
      const copy = yield* failure(() =>
        s3.send(new CopyObjectCommand({ Bucket: "plain", Key: "copy-locked", CopySource: "plain/kept", ObjectLockLegalHoldStatus: "ON" }))
      )
      assert.strictEqual(copy, NO_OBJECT_LOCK_ON_WRITE)
      assert.strictEqual(yield* status(() => s3.send(new HeadObjectCommand({ Bucket: "plain", Key: "copy-locked" }))), "404 NotFound")
      // Without the lock headers the same requests succeed.
      yield* call(() => s3.send(new CopyObjectCommand({ Bucket: "plain", Key: "copy-plain", CopySource: "plain/kept" })))
      assert.strictEqual((yield* call(() => s3.send(new HeadObjectCommand({ Bucket: "plain", Key: "copy-plain" })))).ContentLength, 9)
    }))

  it.effect("a missing bucket is still NoSuchBucket, another user's bucket AccessDenied, an unsigned request 403", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* status(() => s3.send(new GetObjectRetentionCommand({ Bucket: "no-such-bucket-x", Key: "k" }))), "404 NoSuchBucket")
      assert.strictEqual(yield* status(() => s3.send(new PutObjectLegalHoldCommand({ Bucket: "no-such-bucket-x", Key: "k", LegalHold: { Status: "ON" } }))), "404 NoSuchBucket")
      assert.strictEqual(
        yield* status(() => s3.send(new PutObjectCommand({ Bucket: "no-such-bucket-x", Key: "k", Body: "x", ObjectLockLegalHoldStatus: "ON" }))),
        "404 NoSuchBucket"
      )
      const asBob = client(api, bob)
      assert.strictEqual(yield* status(() => asBob.send(new GetObjectLegalHoldCommand({ Bucket: "plain", Key: "kept" }))), "403 AccessDenied")
      for (const q of ["retention", "legal-hold"]) {
        const anon = yield* call(() => fetch(`${api.endpoint}/plain/kept?${q}`))
        assert.strictEqual(anon.status, 403, q)
        assert.include(yield* call(() => anon.text()), "<Code>AccessDenied</Code>")
      }
    }))
})
