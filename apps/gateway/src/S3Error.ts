/**
 * S3's error responses: a code, an HTTP status and an XML body, as the Amazon S3 API reference
 * lists them, plus the mapping from objcrypt's core errors.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import * as Xml from "./Xml.js"

/**
 * An S3 error, rendered as S3's `<Error>` XML. The message never carries key material.
 *
 * @since 0.1.0
 * @category errors
 */
export class S3Error extends Schema.TaggedError<S3Error>("@objcrypt/gateway/S3Error")("S3Error", {
  code: Schema.String,
  status: Schema.Number,
  detail: Schema.String,
  resource: Schema.optional(Schema.String)
}) {
  override get message() {
    return `${this.code}: ${this.detail}`
  }
}

const make = (code: string, status: number) => (detail: string, resource?: string) => new S3Error({ code, status, detail, resource })

/**
 * Constructors for the codes the gateway answers with.
 *
 * @since 0.1.0
 * @category constructors
 */
export const errors = {
  accessDenied: make("AccessDenied", 403),
  signatureDoesNotMatch: make("SignatureDoesNotMatch", 403),
  invalidAccessKeyId: make("InvalidAccessKeyId", 403),
  requestTimeTooSkewed: make("RequestTimeTooSkewed", 403),
  expiredToken: make("AccessDenied", 403),
  missingSecurityHeader: make("MissingSecurityHeader", 400),
  authorizationHeaderMalformed: make("AuthorizationHeaderMalformed", 400),
  authorizationQueryParametersError: make("AuthorizationQueryParametersError", 400),
  contentSha256Mismatch: make("XAmzContentSHA256Mismatch", 400),
  badDigest: make("BadDigest", 400),
  invalidDigest: make("InvalidDigest", 400),
  noSuchBucket: make("NoSuchBucket", 404),
  noSuchKey: make("NoSuchKey", 404),
  noSuchUpload: make("NoSuchUpload", 404),
  noSuchEncryptionConfiguration: make("ServerSideEncryptionConfigurationNotFoundError", 404),
  bucketAlreadyOwnedByYou: make("BucketAlreadyOwnedByYou", 409),
  bucketAlreadyExists: make("BucketAlreadyExists", 409),
  illegalLocationConstraint: make("IllegalLocationConstraintException", 400),
  invalidStorageClass: make("InvalidStorageClass", 400),
  invalidRedirectLocation: make("InvalidRedirectLocation", 400),
  invalidEncryptionAlgorithm: make("InvalidEncryptionAlgorithmError", 400),
  bucketNotEmpty: make("BucketNotEmpty", 409),
  invalidBucketName: make("InvalidBucketName", 400),
  invalidArgument: make("InvalidArgument", 400),
  invalidRequest: make("InvalidRequest", 400),
  invalidRange: make("InvalidRange", 416),
  invalidPart: make("InvalidPart", 400),
  invalidPartOrder: make("InvalidPartOrder", 400),
  entityTooSmall: make("EntityTooSmall", 400),
  entityTooLarge: make("EntityTooLarge", 400),
  invalidPartNumber: make("InvalidPartNumber", 416),
  invalidPolicyDocument: make("InvalidPolicyDocument", 400),
  incorrectNumberOfFilesInPostRequest: make("IncorrectNumberOfFilesInPostRequest", 400),
  malformedPostRequest: make("MalformedPOSTRequest", 400),
  malformedXml: make("MalformedXML", 400),
  keyTooLong: make("KeyTooLongError", 400),
  incompleteBody: make("IncompleteBody", 400),
  missingContentLength: make("MissingContentLength", 411),
  preconditionFailed: make("PreconditionFailed", 412),
  methodNotAllowed: make("MethodNotAllowed", 405),
  notImplemented: make("NotImplemented", 501),
  internalError: make("InternalError", 500),
  serviceUnavailable: make("ServiceUnavailable", 503),
  kmsNotFound: make("KMS.NotFoundException", 400),
  kmsDisabled: make("KMS.DisabledException", 400),
  kmsInvalidState: make("KMS.KMSInvalidStateException", 400)
} as const

/**
 * S3's `<Error>` document.
 *
 * @since 0.1.0
 * @category rendering
 */
export const toXml = (e: S3Error, requestId: string): string =>
  Xml.document(
    Xml.el("Error", [
      Xml.el("Code", e.code),
      Xml.el("Message", e.detail),
      e.resource === undefined ? "" : Xml.el("Resource", e.resource),
      Xml.el("RequestId", requestId)
    ])
  )
