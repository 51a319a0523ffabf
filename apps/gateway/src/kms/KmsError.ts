/**
 * AWS KMS's error responses for the JSON protocol: an exception name (`__type`), an HTTP status
 * and a message, as the AWS KMS API reference lists them per operation. Messages never carry key
 * material or plaintext.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * The exception names the service answers with.
 *
 * @since 0.1.0
 * @category models
 */
export const ErrorType = Schema.Literal(
  "AccessDeniedException",
  "AlreadyExistsException",
  "DisabledException",
  "DryRunOperationException",
  "IncompleteSignatureException",
  "IncorrectKeyException",
  "InvalidAliasNameException",
  "InvalidArnException",
  "InvalidCiphertextException",
  "InvalidMarkerException",
  "InvalidSignatureException",
  "KMSInternalException",
  "KMSInvalidStateException",
  "MissingAuthenticationTokenException",
  "NotFoundException",
  "SerializationException",
  "UnknownOperationException",
  "UnrecognizedClientException",
  "UnsupportedOperationException",
  "ValidationException"
)

/**
 * @since 0.1.0
 * @category models
 */
export type ErrorType = typeof ErrorType.Type

/**
 * One failed KMS call, rendered as `{"__type": …, "message": …}`.
 *
 * @since 0.1.0
 * @category errors
 */
export class KmsApiError extends Schema.TaggedError<KmsApiError>("@objcrypt/gateway/KmsApiError")("KmsApiError", {
  type: ErrorType,
  detail: Schema.String
}) {
  override get message() {
    return `${this.type}: ${this.detail}`
  }

  /** HTTP status AWS KMS uses for this exception. */
  get status(): number {
    switch (this.type) {
      case "KMSInternalException":
        return 500
      case "MissingAuthenticationTokenException":
        return 403
      default:
        return 400
    }
  }
}

const make = (type: ErrorType) => (detail: string) => new KmsApiError({ type, detail })

/**
 * Constructors, one per exception.
 *
 * @since 0.1.0
 * @category constructors
 */
export const errors = {
  accessDenied: make("AccessDeniedException"),
  alreadyExists: make("AlreadyExistsException"),
  disabled: make("DisabledException"),
  dryRun: make("DryRunOperationException"),
  incompleteSignature: make("IncompleteSignatureException"),
  incorrectKey: make("IncorrectKeyException"),
  invalidAliasName: make("InvalidAliasNameException"),
  invalidArn: make("InvalidArnException"),
  invalidCiphertext: make("InvalidCiphertextException"),
  invalidMarker: make("InvalidMarkerException"),
  invalidSignature: make("InvalidSignatureException"),
  internal: make("KMSInternalException"),
  invalidState: make("KMSInvalidStateException"),
  missingAuthenticationToken: make("MissingAuthenticationTokenException"),
  notFound: make("NotFoundException"),
  serialization: make("SerializationException"),
  unknownOperation: make("UnknownOperationException"),
  unrecognizedClient: make("UnrecognizedClientException"),
  unsupportedOperation: make("UnsupportedOperationException"),
  validation: make("ValidationException")
}

/**
 * The JSON body AWS KMS sends with an error.
 *
 * @since 0.1.0
 * @category encoding
 */
export const toJson = (e: KmsApiError): string => JSON.stringify({ __type: e.type, message: e.detail })
