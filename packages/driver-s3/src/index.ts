/**
 * @since 0.1.0
 */
export * as S3Config from "./S3Config.js"
export * as S3ObjectStore from "./S3ObjectStore.js"
export * as S3Buckets from "./S3Buckets.js"
export * as AwsKms from "./AwsKms.js"
