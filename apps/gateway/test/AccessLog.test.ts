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
      ["POST", "/b/k?uploads", "CreateMultipartUpload"]
    ]
    for (const [method, url, name] of cases) assert.strictEqual(op(method, url), name, `${method} ${url}`)
  })
})
