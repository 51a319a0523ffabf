import { errors, S3Error } from "../S3Error.js"

/** Maps core errors (by tag) to S3's; never includes key material (core messages contain none). */
export const toS3 = (e: unknown, key?: string): S3Error => {
  if (e instanceof S3Error) return e
  const tagged = e as { readonly _tag?: string; readonly message?: string; readonly reason?: string; readonly code?: string; readonly status?: number }
  switch (tagged._tag) {
    case "ObjectNotFound":
      return errors.noSuchKey("the specified key does not exist", key)
    case "InvalidObjectKey":
      return errors.invalidArgument(tagged.message ?? "invalid key", key)
    case "InvalidRange":
      return errors.invalidRange("the requested range is not satisfiable", key)
    case "PreconditionFailed":
      return errors.preconditionFailed("at least one of the preconditions you specified did not hold", key)
    case "AccessDenied":
      return errors.accessDenied("access denied", key)
    case "InvalidCustomerKey":
    case "InvalidEncryptionParameters":
      return errors.invalidArgument(tagged.message ?? "invalid encryption parameters", key)
    case "DecryptError":
      return tagged.reason === "WrongKey" || tagged.reason === "NoUsableKey" || tagged.reason === "CommitmentMismatch"
        ? errors.accessDenied("access denied: the object's key cannot be recovered with the given parameters", key)
        : errors.internalError(`the stored object failed its integrity check (${tagged.reason ?? "unknown"})`, key)
    case "KmsError":
      return tagged.reason === "NotFound"
        ? errors.kmsNotFound("the KMS key does not exist")
        : tagged.reason === "Disabled"
        ? errors.kmsDisabled("the KMS key is disabled")
        : errors.serviceUnavailable("the KMS is unavailable")
    case "ProviderError":
      if (tagged.status === 400) {
        if (tagged.code === "EntityTooSmall") return errors.entityTooSmall("your proposed upload is smaller than the minimum allowed object size", key)
        if (tagged.code === "EntityTooLarge") return errors.entityTooLarge("your proposed upload exceeds the maximum allowed size", key)
        if (tagged.code === "MetadataTooLarge") return new S3Error({ code: "MetadataTooLarge", status: 400, detail: "your metadata headers exceed the maximum allowed metadata size", resource: key })
        return errors.invalidArgument(tagged.code ?? "invalid request", key)
      }
      // A backend that cannot be reached, times out or throttles is a retryable 503; one that
      // answered with its own server error, or holds an unreadable object, is a 500.
      if (tagged.code === "CorruptObject") return errors.internalError("the stored object cannot be read", key)
      if (tagged.status !== undefined && tagged.status >= 500 && tagged.status !== 503) {
        return errors.internalError("the storage backend failed; please retry", key)
      }
      return errors.serviceUnavailable("the storage backend is unavailable; please retry", key)
    case "UnsupportedMode":
    case "EncryptError":
    case "KeyNotFound":
    case "KeyStoreError":
    case "KeyUnusable":
      return errors.internalError(`cannot encrypt: ${tagged._tag}`, key)
    default:
      return errors.internalError("we encountered an internal error; please try again", key)
  }
}
