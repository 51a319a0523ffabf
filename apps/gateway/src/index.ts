/**
 * @since 0.1.0
 */
export * as AccessLog from "./AccessLog.js"
export * as Acl from "./Acl.js"
export * as Backend from "./Backend.js"
export * as BucketSubresources from "./BucketSubresources.js"
export * as Buckets from "./Buckets.js"
export * as Checksums from "./Checksums.js"
export * as GatewayConfig from "./GatewayConfig.js"
export * as GatewayServer from "./GatewayServer.js"
export * as Health from "./Health.js"
export * as KmsAuth from "./kms/KmsAuth.js"
export * as KmsBackend from "./kms/KmsBackend.js"
export * as KmsBlob from "./kms/KmsBlob.js"
export * as KmsError from "./kms/KmsError.js"
export * as KmsOperations from "./kms/KmsOperations.js"
export * as KmsRegistry from "./kms/KmsRegistry.js"
export * as KmsService from "./kms/KmsService.js"
export * as Multipart from "./Multipart.js"
export * as ObjectAttributes from "./ObjectAttributes.js"
export * as PostPolicy from "./PostPolicy.js"
export * as S3Api from "./S3Api.js"
export * as S3Error from "./S3Error.js"
export * as SigV4 from "./SigV4.js"
export * as Sse from "./Sse.js"
export * as Tagging from "./Tagging.js"
export * as Tls from "./Tls.js"
export * as Xml from "./Xml.js"

/**
 * @since 0.1.0
 */
export const version = "0.1.0"
