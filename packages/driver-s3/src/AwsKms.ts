/**
 * The core `Kms` contract on AWS KMS (`@aws-sdk/client-kms`): 256-bit data keys from
 * `GenerateDataKey`, wrapping with `Encrypt`, unwrapping with `Decrypt`, each bound to an
 * encryption context. Keys are named by id, ARN, alias name (`alias/…`) or alias ARN.
 *
 * @since 0.1.0
 */
import { DecryptCommand, EncryptCommand, GenerateDataKeyCommand, KMSClient } from "@aws-sdk/client-kms"
import type { KMSClientConfig } from "@aws-sdk/client-kms"
import type { EncryptionContext } from "@objcrypt/core/EncryptionMode"
import { KmsError } from "@objcrypt/core/Errors"
import { Kms } from "@objcrypt/core/Kms"
import type { DataKey } from "@objcrypt/core/Kms"
import { Config, Context, Effect, Layer, Redacted } from "effect"
import type { ConfigError } from "effect/ConfigError"
import type * as Scope from "effect/Scope"
import { factsOf } from "./internal/errors.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface AwsKmsConfig {
  /** @default "us-east-1" */
  readonly region?: string | undefined
  /** A custom endpoint (a KMS-compatible service, a test server). @default the AWS regional endpoint */
  readonly endpoint?: string | undefined
  /** With `secretAccessKey`: explicit credentials. Without: the AWS default provider chain. */
  readonly accessKeyId?: string | undefined
  readonly secretAccessKey?: Redacted.Redacted | undefined
  readonly sessionToken?: Redacted.Redacted | undefined
  /** A named profile of the AWS shared config/credentials files. */
  readonly awsProfile?: string | undefined
  /** @default 3 */
  readonly maxAttempts?: number | undefined
}

/**
 * The AWS KMS service: the core `Kms` plus the SDK client.
 *
 * @since 0.1.0
 * @category tags
 */
export class AwsKms extends Context.Tag("@objcrypt/driver-s3/AwsKms")<AwsKms, Kms["Type"] & { readonly client: KMSClient }>() {}

const reasonOf = (code: string, status: number | undefined): KmsError["reason"] => {
  switch (code) {
    case "NotFoundException":
      return "NotFound"
    case "DisabledException":
      return "Disabled"
    case "InvalidCiphertextException":
    case "IncorrectKeyException":
      return "InvalidCiphertext"
    case "AccessDeniedException":
      return "AccessDenied"
    case "KMSInvalidStateException":
      return "InvalidState"
    case "KeyUnavailableException":
    case "DependencyTimeoutException":
    case "KMSInternalException":
    case "ThrottlingException":
      return "Unavailable"
    case "ValidationException":
    case "InvalidKeyUsageException":
    case "InvalidGrantTokenException":
    case "UnsupportedOperationException":
      return "Invalid"
    default:
      return status === 403 || status === 401 ? "AccessDenied" : status !== undefined && status >= 400 && status < 500 ? "Invalid" : "Unavailable"
  }
}

const detailOf = (reason: KmsError["reason"], code: string, message: string): string =>
  reason === "InvalidCiphertext"
    // AWS KMS does not say which: a wrong context and a damaged blob fail the same way.
    ? `${code}: the ciphertext is damaged, was made under another key, or the encryption context does not match`
    : message === "" ? code : `${code}: ${message}`

/**
 * Converts an SDK exception into a `KmsError` (name/code and the service's message only).
 *
 * @since 0.1.0
 * @category errors
 */
export const toKmsError = (e: unknown, keyId?: string | undefined): KmsError => {
  const { code, message, status } = factsOf(e)
  const reason = reasonOf(code, status)
  return new KmsError({ reason, ...(keyId === undefined ? {} : { keyId }), detail: detailOf(reason, code, message) })
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const makeClient = (config: AwsKmsConfig): KMSClient => {
  const options: KMSClientConfig = {
    region: config.region ?? "us-east-1",
    maxAttempts: config.maxAttempts ?? 3,
    ...(config.endpoint === undefined ? {} : { endpoint: config.endpoint }),
    ...(config.awsProfile === undefined ? {} : { profile: config.awsProfile }),
    ...(config.accessKeyId !== undefined && config.secretAccessKey !== undefined
      ? {
        credentials: {
          accessKeyId: config.accessKeyId,
          secretAccessKey: Redacted.value(config.secretAccessKey),
          ...(config.sessionToken === undefined ? {} : { sessionToken: Redacted.value(config.sessionToken) })
        }
      }
      : {})
  }
  return new KMSClient(options)
}

const takeSecret = (bytes: Uint8Array | undefined): Redacted.Redacted<Uint8Array> => {
  const copy = Uint8Array.from(bytes ?? new Uint8Array(0))
  // Do not leave a second copy of the key in the SDK's response.
  bytes?.fill(0)
  return Redacted.make(copy)
}

const invalid = (keyId: string | undefined, detail: string) =>
  new KmsError({ reason: "Invalid", ...(keyId === undefined ? {} : { keyId }), detail })

/**
 * Builds the service; the SDK client is destroyed when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (config: AwsKmsConfig): Effect.Effect<AwsKms["Type"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const client = yield* Effect.acquireRelease(Effect.sync(() => makeClient(config)), (c) => Effect.sync(() => c.destroy()))
    const call = <A>(keyId: string | undefined, f: (abortSignal: AbortSignal) => Promise<A>) =>
      Effect.tryPromise({ try: f, catch: (e) => toKmsError(e, keyId) })
    const ctx = (context: EncryptionContext) => (Object.keys(context).length === 0 ? {} : { EncryptionContext: { ...context } })

    const generateDataKey = (keyId: string, context: EncryptionContext): Effect.Effect<DataKey, KmsError> =>
      Effect.flatMap(
        call(keyId, (abortSignal) => client.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: "AES_256", ...ctx(context) }), { abortSignal })),
        (r) =>
          r.Plaintext?.length !== 32 || r.CiphertextBlob === undefined || r.KeyId === undefined
            ? Effect.fail(invalid(keyId, "GenerateDataKey returned no 256-bit key"))
            : Effect.succeed({ keyId: r.KeyId, plaintext: takeSecret(r.Plaintext), ciphertext: Uint8Array.from(r.CiphertextBlob) })
      )

    const encrypt = (keyId: string, plaintext: Redacted.Redacted<Uint8Array>, context: EncryptionContext) =>
      Effect.flatMap(
        call(keyId, (abortSignal) =>
          client.send(new EncryptCommand({ KeyId: keyId, Plaintext: Redacted.value(plaintext), ...ctx(context) }), { abortSignal })),
        (r) =>
          r.CiphertextBlob === undefined || r.KeyId === undefined
            ? Effect.fail(invalid(keyId, "Encrypt returned no ciphertext"))
            : Effect.succeed({ keyId: r.KeyId, ciphertext: Uint8Array.from(r.CiphertextBlob) })
      )

    const decrypt = (ciphertext: Uint8Array, context: EncryptionContext, keyId?: string | undefined) =>
      Effect.flatMap(
        call(keyId, (abortSignal) =>
          client.send(
            new DecryptCommand({ CiphertextBlob: ciphertext, ...(keyId === undefined ? {} : { KeyId: keyId }), ...ctx(context) }),
            { abortSignal }
          )),
        (r) =>
          r.Plaintext === undefined || r.KeyId === undefined
            ? Effect.fail(invalid(keyId, "Decrypt returned no plaintext"))
            : Effect.succeed({ keyId: r.KeyId, plaintext: takeSecret(r.Plaintext) })
      )

    return AwsKms.of({ kind: "aws-kms", client, generateDataKey, encrypt, decrypt })
  })

/**
 * A layer providing both `AwsKms` and the core `Kms`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (config: AwsKmsConfig): Layer.Layer<AwsKms | Kms> =>
  Layer.scopedContext(Effect.map(make(config), (s) => Context.make(AwsKms, s).pipe(Context.add(Kms, s))))

/**
 * As {@link layer}, reading its configuration.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (config: Config.Config.Wrap<AwsKmsConfig>): Layer.Layer<AwsKms | Kms, ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(config), layer))
