import { assert, describe, it } from "@effect/vitest"
import * as BucketSubresources from "../src/BucketSubresources.js"

describe("BucketSubresources", () => {
  it("answers GET with S3's not-configured error or its empty document", () => {
    const policy = BucketSubresources.answer("GET", "policy", "b")
    assert.strictEqual(policy._tag, "Error")
    if (policy._tag === "Error") {
      assert.strictEqual(policy.error.code, "NoSuchBucketPolicy")
      assert.strictEqual(policy.error.status, 404)
      assert.strictEqual(policy.error.resource, "/b")
    }
    const codes = Object.fromEntries(BucketSubresources.NAMES.map((n) => {
      const a = BucketSubresources.answer("GET", n, "b")
      return [n, a._tag === "Error" ? a.error.code : a._tag === "Document" ? a.xml : a._tag]
    }))
    assert.deepStrictEqual(codes, {
      policy: "NoSuchBucketPolicy",
      policyStatus: "NoSuchBucketPolicy",
      cors: "NoSuchCORSConfiguration",
      lifecycle: "NoSuchLifecycleConfiguration",
      website: "NoSuchWebsiteConfiguration",
      logging: `<BucketLoggingStatus xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></BucketLoggingStatus>`,
      notification: `<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></NotificationConfiguration>`,
      "object-lock": "ObjectLockConfigurationNotFoundError",
      publicAccessBlock: "NoSuchPublicAccessBlockConfiguration",
      ownershipControls: "OwnershipControlsNotFoundError",
      replication: "ReplicationConfigurationNotFoundError",
      accelerate: `<AccelerateConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></AccelerateConfiguration>`,
      requestPayment: `<RequestPaymentConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Payer>BucketOwner</Payer></RequestPaymentConfiguration>`
    })
  })

  it("accepts DELETE where S3 has one, refuses PUT as not implemented and saying what to use instead", () => {
    assert.strictEqual(BucketSubresources.answer("DELETE", "cors", "b")._tag, "NoContent")
    const del = BucketSubresources.answer("DELETE", "logging", "b")
    assert.isTrue(del._tag === "Error" && del.error.status === 405)
    const put = BucketSubresources.answer("PUT", "lifecycle", "b")
    assert.isTrue(put._tag === "Error" && put.error.code === "NotImplemented" && put.error.status === 501)
    if (put._tag === "Error") assert.include(put.error.detail, "abortIncompleteUploadsAfterDays")
    const unknown = BucketSubresources.answer("GET", "torrent", "b")
    assert.isTrue(unknown._tag === "Error" && unknown.error.code === "NotImplemented")
  })

  it("answers the configurations kept by id: an empty list, NoSuchConfiguration, PUT not implemented", () => {
    const describeAnswer = (a: BucketSubresources.Answer) =>
      a._tag === "Error" ? `${a.error.status} ${a.error.code}: ${a.error.detail}` : a._tag === "Document" ? a.xml : a._tag
    assert.deepStrictEqual(BucketSubresources.NAMED_CONFIGURATIONS, ["inventory", "analytics", "metrics", "intelligent-tiering"])
    assert.deepStrictEqual(
      BucketSubresources.NAMED_CONFIGURATIONS.map((n) => describeAnswer(BucketSubresources.answerNamed("GET", n, "b", undefined))),
      [
        `<ListInventoryConfigurationsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>false</IsTruncated></ListInventoryConfigurationsResult>`,
        `<ListBucketAnalyticsConfigurationResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>false</IsTruncated></ListBucketAnalyticsConfigurationResult>`,
        `<ListMetricsConfigurationsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>false</IsTruncated></ListMetricsConfigurationsResult>`,
        `<ListBucketIntelligentTieringConfigurationsOutput xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>false</IsTruncated></ListBucketIntelligentTieringConfigurationsOutput>`
      ]
    )
    for (const n of BucketSubresources.NAMED_CONFIGURATIONS) {
      assert.strictEqual(describeAnswer(BucketSubresources.answerNamed("GET", n, "b", "r1")), "404 NoSuchConfiguration: The specified configuration does not exist.")
      assert.strictEqual(describeAnswer(BucketSubresources.answerNamed("DELETE", n, "b", "r1")), "404 NoSuchConfiguration: The specified configuration does not exist.")
      assert.match(describeAnswer(BucketSubresources.answerNamed("DELETE", n, "b", undefined)), /^400 InvalidArgument: /)
      assert.match(describeAnswer(BucketSubresources.answerNamed("PUT", n, "b", "r1")), new RegExp(`^501 NotImplemented: the gateway does not hold ${n} configurations: `))
      assert.match(describeAnswer(BucketSubresources.answerNamed("POST", n, "b", "r1")), /^405 MethodNotAllowed/)
    }
    const get = BucketSubresources.answerNamed("GET", "metrics", "bk", "x")
    assert.isTrue(get._tag === "Error" && get.error.resource === "/bk")
    const unknown = BucketSubresources.answerNamed("GET", "policy", "b", undefined)
    assert.isTrue(unknown._tag === "Error" && unknown.error.code === "NotImplemented")
  })

  it("refuses Object Lock as S3 does for a bucket without it", () => {
    const read = BucketSubresources.missingObjectLock("/b/k", { write: false })
    assert.deepStrictEqual([read.code, read.status, read.detail, read.resource], ["InvalidRequest", 400, "Bucket is missing Object Lock Configuration", "/b/k"])
    const write = BucketSubresources.missingObjectLock("/b/k", { write: true })
    assert.deepStrictEqual([write.code, write.status, write.detail], ["InvalidRequest", 400, "Bucket is missing ObjectLockConfiguration"])
    assert.strictEqual(BucketSubresources.objectLockHeader({ "x-amz-object-lock-mode": "GOVERNANCE" }), "x-amz-object-lock-mode")
    assert.strictEqual(BucketSubresources.objectLockHeader({ "x-amz-object-lock-retain-until-date": "2030-01-01T00:00:00Z" }), "x-amz-object-lock-retain-until-date")
    assert.strictEqual(BucketSubresources.objectLockHeader({ "x-amz-object-lock-legal-hold": "OFF" }), "x-amz-object-lock-legal-hold")
    assert.isUndefined(BucketSubresources.objectLockHeader({ "x-amz-meta-lock": "x", "content-type": "text/plain" }))
  })
})
