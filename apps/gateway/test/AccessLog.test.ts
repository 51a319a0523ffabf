import { assert, describe, it } from "@effect/vitest"
import * as AccessLog from "../src/AccessLog.js"

const op = (method: string, url: string) => AccessLog.describe(method, url, { host: "127.0.0.1:9000" }).operation

describe("AccessLog.describe", () => {
  it("names bucket and object operations as S3 (and CloudTrail) name them", () => {
    const cases: ReadonlyArray<readonly [string, string, string]> = [
      ["GET", "/", "ListBuckets"],
      ["GET", "/b?list-type=2", "ListObjectsV2"],
      ["GET", "/b", "ListObjects"],
      ["GET", "/b?versions", "ListObjectVersions"],
      ["GET", "/b?uploads", "ListMultipartUploads"],
      ["GET", "/b?policy", "GetBucketPolicy"],
      ["GET", "/b?policyStatus", "GetBucketPolicyStatus"],
      ["DELETE", "/b?cors", "DeleteBucketCors"],
      ["GET", "/b?lifecycle", "GetBucketLifecycleConfiguration"],
      ["GET", "/b?notification", "GetBucketNotificationConfiguration"],
      ["GET", "/b?object-lock", "GetObjectLockConfiguration"],
      ["PUT", "/b?publicAccessBlock", "PutPublicAccessBlock"],
      ["GET", "/b?requestPayment", "GetBucketRequestPayment"],
      ["PUT", "/b?tagging", "PutBucketTagging"],
      ["PUT", "/b", "CreateBucket"],
      ["GET", "/b/k?tagging", "GetObjectTagging"],
      ["PUT", "/b/k?tagging", "PutObjectTagging"],
      ["DELETE", "/b/k?tagging", "DeleteObjectTagging"],
      ["DELETE", "/b/k", "DeleteObject"],
      ["DELETE", "/b/k?uploadId=x", "AbortMultipartUpload"],
      ["POST", "/b/k?uploads", "CreateMultipartUpload"],
      ["GET", "/b?inventory", "ListBucketInventoryConfigurations"],
      ["GET", "/b?inventory&id=r1", "GetBucketInventoryConfiguration"],
      ["PUT", "/b?inventory&id=r1", "PutBucketInventoryConfiguration"],
      ["DELETE", "/b?inventory&id=r1", "DeleteBucketInventoryConfiguration"],
      ["GET", "/b?analytics", "ListBucketAnalyticsConfigurations"],
      ["GET", "/b?analytics&id=a", "GetBucketAnalyticsConfiguration"],
      ["GET", "/b?metrics&x-id=ListBucketMetricsConfigurations", "ListBucketMetricsConfigurations"],
      ["DELETE", "/b?metrics&id=m", "DeleteBucketMetricsConfiguration"],
      ["GET", "/b?intelligent-tiering", "ListBucketIntelligentTieringConfigurations"],
      ["PUT", "/b?intelligent-tiering&id=t", "PutBucketIntelligentTieringConfiguration"],
      ["GET", "/b/k?retention", "GetObjectRetention"],
      ["PUT", "/b/k?retention", "PutObjectRetention"],
      ["GET", "/b/k?legal-hold", "GetObjectLegalHold"],
      ["PUT", "/b/k?legal-hold", "PutObjectLegalHold"]
    ]
    for (const [method, url, name] of cases) assert.strictEqual(op(method, url), name, `${method} ${url}`)
  })
})
