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
    const unknown = BucketSubresources.answer("GET", "inventory", "b")
    assert.isTrue(unknown._tag === "Error" && unknown.error.code === "NotImplemented")
  })
})
