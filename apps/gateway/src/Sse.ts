/**
 * Amazon S3's server-side encryption semantics, implemented by the gateway with the native
 * client-side format: which mode a request asks for (its headers or the bucket default), the
 * keyrings that wrap a data key for it, what the gateway records beside the envelope, the checks
 * on reads and the response headers S3 returns.
 *
 * SSE-S3 wraps data keys with a gateway master key from the key store; SSE-KMS with a KMS key
 * (the local KMS over the same key store); SSE-C with the customer's key, which is never stored:
 * only an HMAC of it under a per-object salt and a gateway key is kept to tell a wrong key apart.
 *
 * @since 0.1.0
 */
import type { CustomerKey } from "@objcrypt/core/CustomerKey"
import * as EncryptionMode from "@objcrypt/core/EncryptionMode"
import { KeyStore } from "@objcrypt/core/KeyStore"
import * as Keyring from "@objcrypt/core/Keyring"
import { Kms } from "@objcrypt/core/Kms"
import { KeyManager } from "@objcrypt/keys/KeyManager"
import { Context, Effect, Either, Layer, Redacted } from "effect"
import * as crypto from "node:crypto"
import type { BucketRecord } from "./Buckets.js"
import { errors } from "./S3Error.js"
import type { S3Error } from "./S3Error.js"

/**
 * The encryption a write asks for, resolved.
 *
 * @since 0.1.0
 * @category models
 */
export type WriteMode =
  | { readonly _tag: "SseS3" }
  | {
    readonly _tag: "SseKms"
    readonly keyId: string
    readonly context: Readonly<Record<string, string>>
    readonly contextGiven: boolean
    readonly bucketKey: boolean
    readonly dsse: boolean
  }
  | { readonly _tag: "SseC"; readonly key: CustomerKey }

/**
 * Metadata names the gateway records beside the envelope (never returned as user metadata).
 *
 * @since 0.1.0
 * @category constants
 */
export const Meta = {
  sse: "gw-sse",
  kmsKeyId: "gw-kms-key",
  bucketKey: "gw-bucket-key",
  customerKeyMac: "gw-ssec",
  userPrefix: "u-",
  headerPrefix: "h-",
  multipart: "gw-mp"
} as const

/**
 * The key material and services the gateway encrypts with.
 *
 * @since 0.1.0
 * @category tags
 */
export class GatewayKeys extends Context.Tag("@objcrypt/gateway/GatewayKeys")<GatewayKeys, {
  readonly sseS3: Keyring.Keyring
  readonly kms: Kms["Type"]
  readonly keyStore: KeyStore["Type"]
  readonly defaultKmsKeyId: string
  /** Checks a KMS key id names a usable key. */
  readonly checkKmsKey: (keyId: string) => Effect.Effect<void, S3Error>
  /** HMAC key for SSE-C key checks, derived from the master key. */
  readonly macKey: crypto.KeyObject
}>() {}

const MAC_LABEL = "objcrypt-gateway/v1 sse-c key check"

/** A remote KMS key is usable when it encrypts (one byte: KMS refuses empty plaintexts); its errors become S3's. */
const checkRemoteKmsKey = (kms: Kms["Type"]) => (keyId: string): Effect.Effect<void, S3Error> =>
  kms.encrypt(keyId, Redacted.make(new Uint8Array(1)), {}).pipe(
    Effect.asVoid,
    Effect.catchTag("KmsError", (e) => {
      switch (e.reason) {
        case "NotFound":
          return Effect.fail(errors.kmsNotFound(`Invalid keyId ${keyId}`))
        case "Disabled":
          return Effect.fail(errors.kmsDisabled(`${keyId} is disabled`))
        case "InvalidState":
          return Effect.fail(errors.kmsInvalidState(`${keyId} is pending deletion or not usable`))
        case "AccessDenied":
          return Effect.fail(errors.accessDenied(`the gateway may not use KMS key ${keyId}`))
        case "Unavailable":
          return Effect.fail(errors.serviceUnavailable("the KMS is unavailable"))
        default:
          return Effect.fail(errors.kmsInvalidState(`${keyId}: ${e.reason}`))
      }
    })
  )

/**
 * Opens (creating when missing) the SSE-S3 master key and the default KMS key.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: {
  readonly sseS3Key: string
  readonly defaultKmsKey: string
  readonly kms: Kms["Type"]
  /** The KMS is a remote service (not the local key store): its keys are checked through it. */
  readonly externalKms?: boolean | undefined
}): Effect.Effect<GatewayKeys["Type"], S3Error, KeyStore | KeyManager> =>
  Effect.gen(function*() {
    const keyStore = yield* KeyStore
    const manager = yield* KeyManager
    const ensure = (name: string) =>
      manager.show(name).pipe(
        Effect.catchTag("KeyNotFound", () => manager.generate({ name, description: "objcrypt gateway" })),
        Effect.mapError((e) => errors.internalError(`key store: ${e._tag}`))
      )
    yield* ensure(options.sseS3Key)
    if (options.externalKms !== true) yield* ensure(options.defaultKmsKey)
    const master = yield* keyStore.resolve(options.sseS3Key).pipe(Effect.mapError((e) => errors.internalError(`key store: ${e._tag}`)))
    if (master._tag !== "Symmetric") return yield* errors.internalError("the SSE-S3 master key must be an AES-256 key")
    const macKey = crypto.createSecretKey(
      Buffer.from(crypto.hkdfSync("sha256", Redacted.value(master.material), Buffer.alloc(0), MAC_LABEL, 32))
    )
    const checkKmsKey = options.externalKms === true ? checkRemoteKmsKey(options.kms) : (keyId: string) =>
      manager.resolveRef(keyId).pipe(
        Effect.flatMap((k) => k._tag === "Symmetric" ? Effect.void : Effect.fail(errors.kmsInvalidState(`key ${keyId} is not a symmetric key`))),
        Effect.catchTags({
          KeyNotFound: () => Effect.fail(errors.kmsNotFound(`Invalid keyId ${keyId}`)),
          KeyUnusable: () => Effect.fail(errors.kmsDisabled(`${keyId} is disabled`)),
          KeyStoreError: () => Effect.fail(errors.serviceUnavailable("the key store is unavailable"))
        })
      )
    return GatewayKeys.of({
      sseS3: Keyring.fromResolvedKey(master),
      kms: options.kms,
      keyStore,
      defaultKmsKeyId: options.defaultKmsKey,
      checkKmsKey,
      macKey
    })
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: { readonly sseS3Key: string; readonly defaultKmsKey: string; readonly externalKms?: boolean | undefined }
): Layer.Layer<GatewayKeys, S3Error, KeyStore | KeyManager | Kms> =>
  Layer.effect(
    GatewayKeys,
    Effect.flatMap(Kms, (kms) => make({ ...options, kms }))
  )

const fromCoreError = (e: { readonly _tag: string; readonly message: string }): S3Error =>
  e._tag === "InvalidCustomerKey" ? errors.invalidArgument(e.message) : errors.invalidArgument(e.message)

/**
 * Parses the SSE headers of a request (or its `x-amz-copy-source-` customer-key headers).
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseHeaders = (
  headers: EncryptionMode.HeaderBag,
  options?: { readonly copySource?: boolean }
): Effect.Effect<EncryptionMode.EncryptionMode, S3Error> =>
  EncryptionMode.fromS3Headers(headers, options?.copySource === true ? { prefix: "x-amz-copy-source-" } : undefined).pipe(
    Effect.mapError(fromCoreError)
  )

/**
 * The customer key of a request, if it carries SSE-C headers (and no other SSE header).
 *
 * @since 0.1.0
 * @category parsing
 */
export const customerKeyOf = (mode: EncryptionMode.EncryptionMode): CustomerKey | undefined =>
  mode._tag === "SseC" && mode.key._tag === "ProvidedKey" ? mode.key.key : undefined

/**
 * The mode a write uses: its headers, else the bucket's default, else SSE-S3 (as S3 encrypts
 * every new object since 2023).
 *
 * @since 0.1.0
 * @category resolution
 */
export const resolveWrite = (
  keys: GatewayKeys["Type"],
  requested: EncryptionMode.EncryptionMode,
  bucket: BucketRecord,
  key: string
): Effect.Effect<WriteMode, S3Error> =>
  Effect.gen(function*() {
    const kmsMode = (keyId: string | undefined, context: Readonly<Record<string, string>> | undefined, bucketKey: boolean, dsse: boolean) =>
      Effect.gen(function*() {
        const id = keyId ?? keys.defaultKmsKeyId
        yield* keys.checkKmsKey(id)
        return {
          _tag: "SseKms" as const,
          keyId: id,
          context: context ?? { "aws:s3:arn": `arn:aws:s3:::${bucket.name}/${key}` },
          contextGiven: context !== undefined,
          bucketKey,
          dsse
        }
      })
    switch (requested._tag) {
      case "SseC": {
        const ck = customerKeyOf(requested)
        if (ck === undefined) return yield* errors.invalidArgument("a customer key is required")
        return { _tag: "SseC" as const, key: ck }
      }
      case "SseS3":
        return { _tag: "SseS3" as const }
      case "SseKms":
        return yield* kmsMode(requested.keyId, requested.context, requested.bucketKey ?? bucket.encryption?.bucketKeyEnabled ?? false, false)
      case "None": {
        const d = bucket.encryption
        if (d !== undefined && d.algorithm !== "AES256") {
          return yield* kmsMode(d.kmsKeyId, undefined, d.bucketKeyEnabled ?? false, d.algorithm === "aws:kms:dsse")
        }
        return { _tag: "SseS3" as const }
      }
      default:
        return yield* errors.invalidArgument("client-side modes are not S3 request headers")
    }
  })

/**
 * The keyring wrapping the data key for a mode.
 *
 * @since 0.1.0
 * @category keyrings
 */
export const keyringFor = (keys: GatewayKeys["Type"], mode: WriteMode): Keyring.Keyring =>
  mode._tag === "SseS3"
    ? keys.sseS3
    : mode._tag === "SseKms"
    ? Keyring.kms(keys.kms, mode.keyId)
    : Keyring.aes({ keyId: "sse-c", version: 1, material: mode.key.material })

/**
 * The unwrapper reading an object: the key store and KMS, plus the customer key when given.
 *
 * @since 0.1.0
 * @category keyrings
 */
export const unwrapperFor = (keys: GatewayKeys["Type"], customerKey: CustomerKey | undefined): Keyring.Unwrapper =>
  Keyring.makeUnwrapper({
    keyStore: keys.keyStore,
    kms: keys.kms,
    keys: customerKey === undefined ? [] : [{ _tag: "Aes", keyId: "sse-c", version: 1, material: customerKey.material }]
  })

const customerKeyMac = (keys: GatewayKeys["Type"], salt: Uint8Array, key: CustomerKey): Buffer =>
  crypto.createHmac("sha256", keys.macKey).update(salt).update(Redacted.value(key.material)).digest()

/**
 * What the gateway records for a mode (the SSE-C entry is a fresh salt and a keyed hash of the key).
 *
 * @since 0.1.0
 * @category metadata
 */
export const metadataFor = (keys: GatewayKeys["Type"], mode: WriteMode): Record<string, string> => {
  switch (mode._tag) {
    case "SseS3":
      return { [Meta.sse]: "AES256" }
    case "SseKms":
      return {
        [Meta.sse]: mode.dsse ? "aws:kms:dsse" : "aws:kms",
        [Meta.kmsKeyId]: mode.keyId,
        ...(mode.bucketKey ? { [Meta.bucketKey]: "true" } : {})
      }
    case "SseC": {
      const salt = crypto.randomBytes(16)
      return { [Meta.sse]: "SSE-C", [Meta.customerKeyMac]: `${salt.toString("base64url")}.${customerKeyMac(keys, salt, mode.key).toString("base64url")}` }
    }
  }
}

/**
 * Checks the customer key of a read against the object, as S3 does: an SSE-C object needs its
 * key (400 without, 403 with a wrong one); customer-key headers on another object are refused.
 *
 * @since 0.1.0
 * @category reading
 */
export const checkReadKey = (
  keys: GatewayKeys["Type"],
  metadata: Readonly<Record<string, string>>,
  given: CustomerKey | undefined
): Either.Either<void, S3Error> => {
  const stored = metadata[Meta.customerKeyMac]
  if (metadata[Meta.sse] !== "SSE-C" || stored === undefined) {
    return given === undefined ? Either.void : Either.left(errors.invalidRequest("the encryption parameters are not applicable to this object"))
  }
  if (given === undefined) {
    return Either.left(errors.invalidRequest("the object was stored using a form of server side encryption; the correct parameters must be provided to retrieve the object"))
  }
  const [salt, mac] = stored.split(".")
  const expected = Buffer.from(mac ?? "", "base64url")
  const actual = customerKeyMac(keys, Buffer.from(salt ?? "", "base64url"), given)
  if (expected.length !== actual.length || !crypto.timingSafeEqual(expected, actual)) {
    return Either.left(errors.accessDenied("access denied: the provided customer key does not match the object's key"))
  }
  return Either.void
}

/**
 * The response headers describing an object's encryption.
 *
 * @since 0.1.0
 * @category rendering
 */
export const responseHeaders = (
  metadata: Readonly<Record<string, string>>,
  customerKey: CustomerKey | undefined
): Record<string, string> => {
  const sse = metadata[Meta.sse]
  if (sse === "SSE-C") {
    return {
      "x-amz-server-side-encryption-customer-algorithm": "AES256",
      ...(customerKey === undefined ? {} : { "x-amz-server-side-encryption-customer-key-md5": customerKey.md5 })
    }
  }
  if (sse === "aws:kms" || sse === "aws:kms:dsse") {
    return {
      "x-amz-server-side-encryption": sse,
      "x-amz-server-side-encryption-aws-kms-key-id": metadata[Meta.kmsKeyId] ?? "",
      ...(metadata[Meta.bucketKey] === "true" ? { "x-amz-server-side-encryption-bucket-key-enabled": "true" } : {})
    }
  }
  return { "x-amz-server-side-encryption": "AES256" }
}

/**
 * Response headers for a write, from its mode.
 *
 * @since 0.1.0
 * @category rendering
 */
export const writeHeaders = (keys: GatewayKeys["Type"], mode: WriteMode): Record<string, string> => {
  const base = responseHeaders(
    mode._tag === "SseC" ? { [Meta.sse]: "SSE-C" } : metadataFor(keys, mode),
    mode._tag === "SseC" ? mode.key : undefined
  )
  if (mode._tag === "SseKms" && mode.contextGiven) {
    base["x-amz-server-side-encryption-context"] = Buffer.from(JSON.stringify(mode.context), "utf8").toString("base64")
  }
  return base
}

