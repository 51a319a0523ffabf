/**
 * Amazon S3's server-side encryption semantics, implemented by the gateway with the native
 * client-side format: which mode a request asks for (its headers or the bucket default), the
 * keyrings that wrap a data key for it, what the gateway records beside the envelope, the checks
 * on reads and the response headers S3 returns.
 *
 * SSE-S3 wraps data keys with a gateway master key from the key store, or with a non-extractable
 * key in a PKCS#11 token; SSE-KMS with a KMS key (the local KMS over the same key store, or a remote
 * KMS); SSE-C with the customer's key, which is never stored: only an HMAC of it under a per-object
 * salt and a gateway key derived from the SSE-S3 master is kept to tell a wrong key apart.
 *
 * @since 0.1.0
 */
import type { CustomerKey } from "@objcrypt/core/CustomerKey"
import * as EncryptionMode from "@objcrypt/core/EncryptionMode"
import { KeyStore } from "@objcrypt/core/KeyStore"
import type { ResolvedKey } from "@objcrypt/core/KeyStore"
import * as Keyring from "@objcrypt/core/Keyring"
import { Kms } from "@objcrypt/core/Kms"
import { KeyManager } from "@objcrypt/keys/KeyManager"
import * as Pkcs11Kms from "@objcrypt/keys/Pkcs11Kms"
import { Context, Effect, Layer, Option, Redacted } from "effect"
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
 * The keys that check SSE-C customer keys. A record names its key (`<salt>.<mac>.<ref>`): `ks:<id>:<version>`,
 * a version of the key-store master, or `p11:<label>`, a token key; records from before refs
 * (`<salt>.<mac>`) were made with a version of the key-store master, so every version is tried.
 *
 * @since 0.1.0
 * @category models
 */
export interface CustomerKeyChecks {
  /** The key new records are made with, and its ref. */
  readonly current: { readonly ref: string; readonly key: crypto.KeyObject }
  /** The keys a record's ref may name (cached after the first lookup). */
  readonly keysFor: (ref: string) => Effect.Effect<ReadonlyArray<crypto.KeyObject>, S3Error>
}

/**
 * The key material and services the gateway encrypts with.
 *
 * @since 0.1.0
 * @category tags
 */
export class GatewayKeys extends Context.Tag("@objcrypt/gateway/GatewayKeys")<GatewayKeys, {
  readonly sseS3: Keyring.Keyring
  /** The KMS over the PKCS#11 token holding the SSE-S3 master key, when it lives in one. */
  readonly sseS3Kms: Kms["Type"] | undefined
  readonly kms: Kms["Type"]
  /** None when the gateway runs without one (SSE-S3 in a token, SSE-KMS in a remote KMS). */
  readonly keyStore: KeyStore["Type"] | undefined
  readonly defaultKmsKeyId: string
  /**
   * Checks a KMS key id names a usable key; returns the id objects record and S3 answers: the
   * key's ARN from a remote KMS (as S3 answers it, whatever alias or id was given), the id as given
   * for the local KMS.
   */
  readonly checkKmsKey: (keyId: string) => Effect.Effect<string, S3Error>
  readonly customerKeyChecks: CustomerKeyChecks
}>() {}

const MAC_LABEL = "objcrypt-gateway/v1 sse-c key check"
/** The fixed nonce of the one deterministic token operation that derives the SSE-C check key (see `fromToken`). */
const TOKEN_CHECK_IV = Buffer.from("objcrypt-mac", "latin1")

const tokenError = (e: { readonly detail: string }): S3Error => errors.internalError(`PKCS#11 token: ${e.detail}`)

/**
 * The SSE-C check key from key material: the key-store master key itself, or the token's output
 * for a token key (see `fromToken`).
 *
 * @since 0.1.0
 * @category customer keys
 */
export const checkKey = (ikm: Uint8Array): crypto.KeyObject =>
  crypto.createSecretKey(Buffer.from(crypto.hkdfSync("sha256", ikm, Buffer.alloc(0), MAC_LABEL, 32)))

/**
 * The SSE-C check key of a token key, which cannot leave the token: AES-256-GCM in the token over
 * 32 zero bytes with a fixed nonce and the label as AAD — a deterministic pseudo-random value only
 * the token can compute, through HKDF. (The fixed nonce is never used for anything else: data keys
 * are wrapped with random 96-bit nonces.)
 */
const fromToken = (hsm: Pkcs11Kms.Pkcs11Hsm["Type"], label: string) =>
  hsm.encryptGcm(label, TOKEN_CHECK_IV, Buffer.from(MAC_LABEL, "utf8"), Buffer.alloc(32)).pipe(Effect.map(checkKey))

/**
 * Where SSE-S3 master keys live in a PKCS#11 token: the token's session and the key's label.
 *
 * @since 0.1.0
 * @category models
 */
export interface SseS3Token {
  readonly hsm: Pkcs11Kms.Pkcs11Hsm["Type"]
  readonly kms: Kms["Type"]
  readonly keyLabel: string
}

/** A remote KMS key is usable when it encrypts (one byte: KMS refuses empty plaintexts); its errors become S3's. */
const checkRemoteKmsKey = (kms: Kms["Type"]) => (keyId: string): Effect.Effect<string, S3Error> =>
  kms.encrypt(keyId, Redacted.make(new Uint8Array(1)), {}).pipe(
    Effect.map((r) => r.keyId),
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
 * Opens the SSE-S3 master key (in the key store, generated when missing; or in the token, where it
 * must exist) and the default KMS key (generated when missing).
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
  /** SSE-S3 master keys in a PKCS#11 token instead of the key store. */
  readonly sseS3Token?: SseS3Token | undefined
  /** The key store; it may be absent only with both `sseS3Token` and `externalKms`. */
  readonly store?: { readonly keyStore: KeyStore["Type"]; readonly manager: KeyManager["Type"] } | undefined
}): Effect.Effect<GatewayKeys["Type"], S3Error> =>
  Effect.gen(function*() {
    const token = options.sseS3Token
    const store = options.store
    if (store === undefined && (token === undefined || options.externalKms !== true)) {
      return yield* errors.internalError("without a key store, the SSE-S3 master key must be in a token and SSE-KMS in a remote KMS")
    }
    const keyStore = store?.keyStore
    const storeError = (e: { readonly _tag: string }) => errors.internalError(`key store: ${e._tag}`)
    const ensure = (manager: KeyManager["Type"], name: string) =>
      manager.show(name).pipe(
        Effect.catchTag("KeyNotFound", () => manager.generate({ name, description: "objcrypt gateway" })),
        Effect.mapError(storeError)
      )
    if (options.externalKms !== true && store !== undefined) yield* ensure(store.manager, options.defaultKmsKey)
    let sseS3: Keyring.Keyring
    let current: CustomerKeyChecks["current"]
    if (token === undefined) {
      if (store === undefined) return yield* errors.internalError("no SSE-S3 master key")
      yield* ensure(store.manager, options.sseS3Key)
      const master = yield* store.keyStore.resolve(options.sseS3Key).pipe(Effect.mapError(storeError))
      if (master._tag !== "Symmetric") return yield* errors.internalError("the SSE-S3 master key must be an AES-256 key")
      sseS3 = Keyring.fromResolvedKey(master)
      current = { ref: `ks:${master.info.id}:${master.info.version}`, key: checkKey(Redacted.value(master.material)) }
    } else {
      // Not generated here: two replicas starting together would each make a key under one label.
      const present = yield* token.hsm.listKeys.pipe(
        Effect.mapError(tokenError)
      )
      if (!present.some((k) => k.label === token.keyLabel)) {
        return yield* errors.internalError(
          `the SSE-S3 master key ${JSON.stringify(token.keyLabel)} is not in the PKCS#11 token; create it once with objcrypt-gateway --config <file> --create-sse-s3-key`
        )
      }
      sseS3 = Keyring.kms(token.kms, token.keyLabel)
      const key = yield* fromToken(token.hsm, token.keyLabel).pipe(
        Effect.mapError(tokenError)
      )
      current = { ref: `p11:${token.keyLabel}`, key }
    }
    const cache = new Map<string, ReadonlyArray<crypto.KeyObject>>([[current.ref, [current.key]]])
    const unavailable = (what: string) => errors.internalError(`the key that checks this object's customer key is not available: ${what}`)
    const lookup = (ref: string): Effect.Effect<ReadonlyArray<crypto.KeyObject>, S3Error> => {
      const symmetric = (k: ResolvedKey) => k._tag === "Symmetric" ? Effect.succeed(checkKey(Redacted.value(k.material))) : Effect.fail(unavailable("not an AES key"))
      if (ref === "" || ref.startsWith("ks:")) {
        if (keyStore === undefined) return Effect.fail(unavailable("a key-store key (no key store is configured)"))
        if (ref === "") {
          return keyStore.list.pipe(
            Effect.mapError(storeError),
            Effect.flatMap((infos) =>
              Effect.forEach(
                infos.filter((i) => i.name === options.sseS3Key && i.algorithm === "aes-256" && i.state !== "deleted"),
                (i) => Effect.flatMap(Effect.mapError(keyStore.resolveId(i.id, i.version), storeError), symmetric)
              )
            ),
            Effect.filterOrFail((ks) => ks.length > 0, () => unavailable(`no version of ${options.sseS3Key} in the key store`))
          )
        }
        const ks = /^ks:([^:]+):(\d+)$/.exec(ref)
        if (ks !== null) {
          return keyStore.resolveId(ks[1]!, Number(ks[2])).pipe(
            Effect.mapError((e) => (e._tag === "KeyNotFound" ? unavailable("a key-store key no longer in the key store") : storeError(e))),
            Effect.flatMap(symmetric),
            Effect.map((k) => [k])
          )
        }
      }
      if (ref.startsWith("p11:")) {
        if (token === undefined) return Effect.fail(unavailable("a PKCS#11 token key (configure sseS3Hsm)"))
        return fromToken(token.hsm, ref.slice(4)).pipe(
          Effect.mapError((e) => (e.reason === "NotFound" ? unavailable("a token key no longer in the token") : errors.serviceUnavailable("the PKCS#11 token is unavailable"))),
          Effect.map((k) => [k])
        )
      }
      return Effect.fail(unavailable("an unknown key reference"))
    }
    const customerKeyChecks: CustomerKeyChecks = {
      current,
      keysFor: (ref) => {
        const hit = cache.get(ref)
        return hit !== undefined ? Effect.succeed(hit) : Effect.tap(lookup(ref), (ks) => Effect.sync(() => cache.set(ref, ks)))
      }
    }
    const manager = store?.manager
    const checkKmsKey = options.externalKms === true || manager === undefined ? checkRemoteKmsKey(options.kms) : (keyId: string) =>
      manager.resolveRef(keyId).pipe(
        Effect.flatMap((k) => k._tag === "Symmetric" ? Effect.succeed(keyId) : Effect.fail(errors.kmsInvalidState(`key ${keyId} is not a symmetric key`))),
        Effect.catchTags({
          KeyNotFound: () => Effect.fail(errors.kmsNotFound(`Invalid keyId ${keyId}`)),
          KeyUnusable: () => Effect.fail(errors.kmsDisabled(`${keyId} is disabled`)),
          KeyStoreError: () => Effect.fail(errors.serviceUnavailable("the key store is unavailable"))
        })
      )
    return GatewayKeys.of({
      sseS3,
      sseS3Kms: token?.kms,
      kms: options.kms,
      keyStore,
      defaultKmsKeyId: options.defaultKmsKey,
      checkKmsKey,
      customerKeyChecks
    })
  })

/**
 * The gateway's keys over the `Kms` service and, when provided, the `KeyStore` and `KeyManager`;
 * with `sseS3Token`, a session on that PKCS#11 token (closed with the layer) holds the SSE-S3
 * master key.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: {
    readonly sseS3Key: string
    readonly defaultKmsKey: string
    readonly externalKms?: boolean | undefined
    readonly sseS3Token?: (Pkcs11Kms.Pkcs11Config & { readonly keyLabel: string }) | undefined
  }
): Layer.Layer<GatewayKeys, S3Error, Kms> =>
  Layer.scoped(
    GatewayKeys,
    Effect.gen(function*() {
      const kms = yield* Kms
      const keyStore = yield* Effect.serviceOption(KeyStore)
      const manager = yield* Effect.serviceOption(KeyManager)
      const store = Option.isSome(keyStore) && Option.isSome(manager) ? { keyStore: keyStore.value, manager: manager.value } : undefined
      const t = options.sseS3Token
      const sseS3Token = t === undefined ? undefined : yield* Pkcs11Kms.make(t).pipe(
        Effect.map(({ hsm, kms }): SseS3Token => ({ hsm, kms, keyLabel: t.keyLabel })),
        Effect.mapError(tokenError)
      )
      return yield* make({ ...options, kms, sseS3Token, store })
    })
  )

/** S3's codes: an SSE-C algorithm other than AES256 is InvalidEncryptionAlgorithmError; the rest InvalidArgument. */
const fromCoreError = (e: { readonly _tag: string; readonly message: string; readonly reason?: string }): S3Error =>
  e._tag === "InvalidCustomerKey" && e.reason === "UnsupportedAlgorithm"
    ? errors.invalidEncryptionAlgorithm("the encryption request you specified is not valid; the valid value is AES256")
    : errors.invalidArgument(e.message)

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
        // S3's default context is the object's ARN; a request's context is *additional* to it.
        const arn = `arn:aws:s3:::${bucket.name}/${key}`
        if (context?.["aws:s3:arn"] !== undefined && context["aws:s3:arn"] !== arn) {
          return yield* errors.invalidArgument("aws:s3:arn in the encryption context must be the object's ARN")
        }
        const id = yield* keys.checkKmsKey(keyId ?? keys.defaultKmsKeyId)
        return {
          _tag: "SseKms" as const,
          keyId: id,
          context: { ...context, "aws:s3:arn": arn },
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
        return yield* kmsMode(requested.keyId, requested.context, requested.bucketKey ?? bucket.encryption?.bucketKeyEnabled ?? false, requested.dsse === true)
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
 * The unwrapper reading an object (or a multipart upload's parts): the key store, the KMS of its
 * mode — the token's for SSE-S3, so an SSE-KMS key can never open an SSE-S3 object's entry nor the
 * token an SSE-KMS one — plus the customer key when given.
 *
 * @since 0.1.0
 * @category keyrings
 */
export const unwrapperFor = (
  keys: GatewayKeys["Type"],
  metadata: Readonly<Record<string, string>>,
  customerKey: CustomerKey | undefined
): Keyring.Unwrapper =>
  Keyring.makeUnwrapper({
    keyStore: keys.keyStore,
    kms: metadata[Meta.sse] === "AES256" ? keys.sseS3Kms : keys.kms,
    keys: customerKey === undefined ? [] : [{ _tag: "Aes", keyId: "sse-c", version: 1, material: customerKey.material }]
  })

const customerKeyMac = (key: crypto.KeyObject, salt: Uint8Array, customerKey: CustomerKey): Buffer =>
  crypto.createHmac("sha256", key).update(salt).update(Redacted.value(customerKey.material)).digest()

/**
 * The `gw-ssec` record of a customer key: `<salt>.<mac>.<ref>` (README, "SSE-C key-check record").
 *
 * @since 0.1.0
 * @category customer keys
 */
export const customerKeyRecord = (check: { readonly key: crypto.KeyObject; readonly ref: string }, salt: Uint8Array, customerKey: CustomerKey): string =>
  `${Buffer.from(salt).toString("base64url")}.${customerKeyMac(check.key, salt, customerKey).toString("base64url")}.${check.ref}`

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
      return { [Meta.sse]: "SSE-C", [Meta.customerKeyMac]: customerKeyRecord(keys.customerKeyChecks.current, crypto.randomBytes(16), mode.key) }
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
): Effect.Effect<void, S3Error> =>
  Effect.gen(function*() {
    const stored = metadata[Meta.customerKeyMac]
    if (metadata[Meta.sse] !== "SSE-C" || stored === undefined) {
      return given === undefined ? undefined : yield* errors.invalidRequest("the encryption parameters are not applicable to this object")
    }
    if (given === undefined) {
      return yield* errors.invalidRequest("the object was stored using a form of server side encryption; the correct parameters must be provided to retrieve the object")
    }
    // `<salt>.<mac>` or `<salt>.<mac>.<ref>` (a token label may itself contain dots).
    const first = stored.indexOf(".")
    const second = stored.indexOf(".", first + 1)
    const salt = Buffer.from(stored.slice(0, first), "base64url")
    const expected = Buffer.from(second < 0 ? stored.slice(first + 1) : stored.slice(first + 1, second), "base64url")
    const candidates = yield* keys.customerKeyChecks.keysFor(second < 0 ? "" : stored.slice(second + 1))
    let matched = false
    for (const k of candidates) {
      const actual = customerKeyMac(k, salt, given)
      // Every candidate is compared (no early exit), each in constant time.
      if (first > 0 && expected.length === actual.length && crypto.timingSafeEqual(expected, actual)) matched = true
    }
    if (!matched) return yield* errors.accessDenied("access denied: the provided customer key does not match the object's key")
  })

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

