/**
 * Keyrings wrap the data key of a native client-side object (raw AES-256 keys, a KMS, public-key
 * recipients); an `Unwrapper` recovers it on read from whichever wrapped-key entry it has a key
 * for. Wire formats are specified in `docs/FORMAT.md`.
 *
 * @since 0.1.0
 */
import { Effect, FiberRef, Option, Redacted } from "effect"
import * as crypto from "node:crypto"
import { DecryptError, EncryptError } from "./Errors.js"
import type { KeyNotFound, KeyStoreError, KmsError } from "./Errors.js"
import { currentRandom } from "./internal/nativeRandom.js"
import { KeyStore } from "./KeyStore.js"
import type { ResolvedKey } from "./KeyStore.js"
import { Kms } from "./Kms.js"
import * as NativeFormat from "./NativeFormat.js"

/**
 * What a keyring binds a wrapped key to.
 *
 * @since 0.1.0
 * @category models
 */
export interface WrapContext {
  /** The object's binding digest (header + full encryption context). */
  readonly binding: Uint8Array
  /** The full encryption context (user entries plus `oc:bucket`, `oc:key`). */
  readonly context: Readonly<Record<string, string>>
  /** For error messages. */
  readonly objectKey: string
}

/**
 * Wraps a data key for one reader.
 *
 * @since 0.1.0
 * @category models
 */
export interface Keyring {
  readonly _tag: "Keyring"
  readonly type: NativeFormat.KeyringType
  readonly keyId: string
  readonly version: number
  readonly wrap: (dataKey: Redacted.Redacted<Uint8Array>, context: WrapContext) => Effect.Effect<NativeFormat.WrappedKey, EncryptError>
}

/**
 * How a raw AES-256 key wraps: AES-256-GCM (binds the context as AAD) or AES Key Wrap (RFC 3394;
 * no AAD — the context is bound through the key commitment instead).
 *
 * @since 0.1.0
 * @category models
 */
export type AesWrap = "aes-gcm" | "aes-kw"

const WRAP_LABEL = "objcrypt/native/v1 wrap"
const X25519_LABEL = "objcrypt/native/v1 x25519"
const KW_IV = Buffer.from("A6A6A6A6A6A6A6A6", "hex")
const X25519_SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex")
const X25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex")

/**
 * The AAD of a wrapped-key entry: "objcrypt/native/v1 wrap" ‖ 0x00 ‖ type ‖ 0x00 ‖
 * u32 len(keyId) ‖ keyId ‖ u32 version ‖ binding.
 *
 * @since 0.1.0
 * @category wrapping
 */
export const wrapAad = (type: NativeFormat.KeyringType, keyId: string, version: number, binding: Uint8Array): Buffer => {
  const id = Buffer.from(keyId, "utf8")
  const n = Buffer.alloc(4)
  n.writeUInt32BE(id.length)
  const v = Buffer.alloc(4)
  v.writeUInt32BE(version)
  return Buffer.concat([Buffer.from(WRAP_LABEL, "ascii"), Buffer.from([0]), Buffer.from(type, "ascii"), Buffer.from([0]), n, id, v, binding])
}

const checkId = (keyId: string, version: number): void => {
  if (keyId.length === 0) throw new Error("a keyring needs a key id")
  if (!Number.isSafeInteger(version) || version < 0 || version > 0xffffffff) throw new Error("invalid key version")
}

const encryptError = (objectKey: string, reason: string) => new EncryptError({ key: objectKey, reason })

/**
 * A raw AES-256 key, e.g. from a key store or given by the user.
 *
 * @since 0.1.0
 * @category constructors
 */
export const aes = (options: {
  readonly keyId: string
  readonly version?: number | undefined
  readonly material: Redacted.Redacted<Uint8Array>
  /** @default "aes-gcm" */
  readonly wrap?: AesWrap | undefined
}): Keyring => {
  const version = options.version ?? 1
  const type = options.wrap ?? "aes-gcm"
  checkId(options.keyId, version)
  if (Redacted.value(options.material).length !== 32) throw new Error("an AES-256 keyring needs a 32-byte key")
  const kek = crypto.createSecretKey(Redacted.value(options.material))
  return {
    _tag: "Keyring",
    type,
    keyId: options.keyId,
    version,
    wrap: (dataKey, ctx) =>
      Effect.gen(function*() {
        if (type === "aes-kw") {
          const c = crypto.createCipheriv("id-aes256-wrap", kek, KW_IV)
          const data = Buffer.concat([c.update(Redacted.value(dataKey)), c.final()])
          return { type, keyId: options.keyId, version, data }
        }
        const random = yield* FiberRef.get(currentRandom)
        const nonce = Buffer.from(random(12))
        const c = crypto.createCipheriv("aes-256-gcm", kek, nonce)
        c.setAAD(wrapAad(type, options.keyId, version, ctx.binding))
        const ct = Buffer.concat([c.update(Redacted.value(dataKey)), c.final()])
        return { type, keyId: options.keyId, version, data: Buffer.concat([nonce, ct, c.getAuthTag()]) }
      })
  }
}

/**
 * A KMS key: the data key is encrypted by the KMS under `keyId` with the full encryption context
 * (which includes the bucket and object key).
 *
 * @since 0.1.0
 * @category constructors
 */
export const kms = (service: Kms["Type"], keyId: string): Keyring => {
  checkId(keyId, 0)
  return {
    _tag: "Keyring",
    type: "kms",
    keyId,
    version: 0,
    wrap: (dataKey, ctx) =>
      service.encrypt(keyId, dataKey, ctx.context).pipe(
        Effect.map((r) => ({ type: "kms" as const, keyId: r.keyId, version: 0, data: r.ciphertext })),
        Effect.mapError((e) => encryptError(ctx.objectKey, `KMS ${e.reason} for key ${keyId}`))
      )
  }
}

/**
 * A public-key recipient: RSA-OAEP with SHA-256 (key ≥ 2048 bits) or X25519. The uploading host
 * needs only the public key.
 *
 * @since 0.1.0
 * @category constructors
 */
export const recipient = (options: {
  readonly keyId: string
  readonly version?: number | undefined
  readonly publicKey: crypto.KeyObject
}): Keyring => {
  const version = options.version ?? 1
  checkId(options.keyId, version)
  const pub = options.publicKey.type === "private" ? crypto.createPublicKey(options.publicKey) : options.publicKey
  const kind = pub.asymmetricKeyType
  if (kind === "rsa") {
    if ((pub.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) throw new Error("RSA recipients need at least 2048 bits")
    return {
      _tag: "Keyring",
      type: "rsa-oaep-256",
      keyId: options.keyId,
      version,
      wrap: (dataKey, ctx) =>
        Effect.try({
          try: () => ({
            type: "rsa-oaep-256" as const,
            keyId: options.keyId,
            version,
            data: crypto.publicEncrypt(
              {
                key: pub,
                padding: crypto.constants.RSA_PKCS1_OAEP_PADDING,
                oaepHash: "sha256",
                oaepLabel: wrapAad("rsa-oaep-256", options.keyId, version, ctx.binding)
              },
              Redacted.value(dataKey)
            )
          }),
          catch: () => encryptError(ctx.objectKey, `RSA-OAEP wrap failed for recipient ${options.keyId}`)
        })
    }
  }
  if (kind === "x25519") {
    const recipientRaw = rawX25519Public(pub)
    return {
      _tag: "Keyring",
      type: "x25519",
      keyId: options.keyId,
      version,
      wrap: (dataKey, ctx) =>
        Effect.gen(function*() {
          const random = yield* FiberRef.get(currentRandom)
          const ephemeral = crypto.createPrivateKey({
            key: Buffer.concat([X25519_PKCS8_PREFIX, Buffer.from(random(32))]),
            format: "der",
            type: "pkcs8"
          })
          const ephemeralRaw = rawX25519Public(crypto.createPublicKey(ephemeral))
          const shared = crypto.diffieHellman({ privateKey: ephemeral, publicKey: pub })
          if (isZero(shared)) return yield* encryptError(ctx.objectKey, `X25519 recipient ${options.keyId} is a low-order point`)
          const wrapKey = x25519WrapKey(shared, ephemeralRaw, recipientRaw)
          const c = crypto.createCipheriv("aes-256-gcm", wrapKey, Buffer.alloc(12))
          c.setAAD(wrapAad("x25519", options.keyId, version, ctx.binding))
          const ct = Buffer.concat([c.update(Redacted.value(dataKey)), c.final()])
          return { type: "x25519" as const, keyId: options.keyId, version, data: Buffer.concat([ephemeralRaw, ct, c.getAuthTag()]) }
        })
    }
  }
  throw new Error(`unsupported recipient key type ${String(kind)}`)
}

/**
 * A keyring from a key-store key: symmetric keys wrap with AES (GCM by default), public keys and
 * key pairs become recipients. The entry records the key's stable id and version.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromResolvedKey = (key: ResolvedKey, options?: { readonly wrap?: AesWrap | undefined }): Keyring =>
  key._tag === "Symmetric"
    ? aes({ keyId: key.info.id, version: key.info.version, material: key.material, wrap: options?.wrap })
    : recipient({ keyId: key.info.id, version: key.info.version, publicKey: key.publicKey })

/**
 * Resolves a named key (primary version unless given) from the `KeyStore` into a keyring.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromKeyStore = (
  name: string,
  options?: { readonly version?: number | undefined; readonly wrap?: AesWrap | undefined }
): Effect.Effect<Keyring, KeyNotFound | KeyStoreError, KeyStore> =>
  Effect.flatMap(KeyStore, (ks) => ks.resolve(name, options?.version)).pipe(
    Effect.map((k) => fromResolvedKey(k, options))
  )

// ---------------------------------------------------------------------------------------------
// Unwrapping
// ---------------------------------------------------------------------------------------------

/**
 * A key given directly to a reader (not from a key store): a raw AES-256 key or a private key.
 *
 * @since 0.1.0
 * @category models
 */
export type DecryptionKey =
  | {
    readonly _tag: "Aes"
    readonly keyId: string
    /** Matches any version when absent. */
    readonly version?: number | undefined
    readonly material: Redacted.Redacted<Uint8Array>
  }
  | {
    readonly _tag: "Private"
    readonly keyId: string
    readonly version?: number | undefined
    readonly privateKey: Redacted.Redacted<crypto.KeyObject>
  }

/**
 * What the unwrapper needs to know about the object.
 *
 * @since 0.1.0
 * @category models
 */
export interface UnwrapRequest {
  readonly entries: ReadonlyArray<NativeFormat.WrappedKey>
  readonly binding: Uint8Array
  readonly context: Readonly<Record<string, string>>
  readonly objectKey: string
  /** Checks a candidate data key against the envelope's commitment. */
  readonly verify: (dataKey: Uint8Array) => boolean
}

/**
 * Recovers the data key from an envelope's wrapped-key entries.
 *
 * @since 0.1.0
 * @category models
 */
export interface Unwrapper {
  readonly _tag: "Unwrapper"
  /**
   * Tries the entries in order; fails with `NoUsableKey` when no entry has a key here, `WrongKey`
   * when a key was tried and did not open its entry, `CommitmentMismatch` when an entry opened to
   * a data key that does not match the commitment, `ContextMismatch` when the KMS refused the
   * context.
   */
  readonly unwrap: (request: UnwrapRequest) => Effect.Effect<Redacted.Redacted<Uint8Array>, DecryptError>
}

type Attempt =
  | { readonly _tag: "Unusable"; readonly detail: string }
  | { readonly _tag: "Failed"; readonly detail: string; readonly context?: boolean }
  | { readonly _tag: "Opened"; readonly dataKey: Uint8Array }

/**
 * An unwrapper over a key store (symmetric keys and key pairs by id and version), a KMS, and keys
 * given directly — any of them optional.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeUnwrapper = (options: {
  readonly keyStore?: KeyStore["Type"] | undefined
  readonly kms?: Kms["Type"] | undefined
  readonly keys?: ReadonlyArray<DecryptionKey> | undefined
}): Unwrapper => {
  const tryEntry = (entry: NativeFormat.WrappedKey, req: UnwrapRequest): Effect.Effect<Attempt> => {
    if (entry.type === "kms") {
      if (options.kms === undefined) return Effect.succeed({ _tag: "Unusable", detail: "no KMS configured" })
      return options.kms.decrypt(entry.data, req.context, entry.keyId).pipe(
        Effect.map((r): Attempt => ({ _tag: "Opened", dataKey: Redacted.value(r.plaintext) })),
        Effect.catchAll((e: KmsError): Effect.Effect<Attempt> =>
          Effect.succeed(
            e.reason === "InvalidCiphertext"
              ? { _tag: "Failed", detail: `KMS refused the wrapped key (${e.reason})` }
              : e.reason === "ContextMismatch"
              ? { _tag: "Failed", detail: "KMS encryption context mismatch", context: true }
              : { _tag: "Unusable", detail: `KMS ${e.reason}` }
          )
        )
      )
    }
    const local = (options.keys ?? []).filter((k) =>
      k.keyId === entry.keyId && (k.version === undefined || k.version === entry.version) &&
      (k._tag === "Aes" ? entry.type === "aes-gcm" || entry.type === "aes-kw" : entry.type === "rsa-oaep-256" || entry.type === "x25519")
    )
    const fromLocal = Effect.sync((): Attempt => {
      if (local.length === 0) return { _tag: "Unusable", detail: "no key" }
      for (const k of local) {
        const dk = k._tag === "Aes"
          ? openSymmetric(entry, Redacted.value(k.material), req.binding)
          : openPrivate(entry, Redacted.value(k.privateKey), req.binding)
        if (dk !== undefined) return { _tag: "Opened", dataKey: dk }
      }
      return { _tag: "Failed", detail: `key ${entry.keyId} did not open its entry` }
    })
    if (local.length > 0 || options.keyStore === undefined) return fromLocal
    return options.keyStore.resolveId(entry.keyId, entry.version).pipe(
      Effect.map((k): Attempt => {
        let dk: Uint8Array | undefined
        if (k._tag === "Symmetric") {
          if (entry.type !== "aes-gcm" && entry.type !== "aes-kw") return { _tag: "Unusable", detail: "key type differs" }
          dk = openSymmetric(entry, Redacted.value(k.material), req.binding)
        } else if (k._tag === "KeyPair") {
          if (entry.type !== "rsa-oaep-256" && entry.type !== "x25519") return { _tag: "Unusable", detail: "key type differs" }
          dk = openPrivate(entry, Redacted.value(k.privateKey), req.binding)
        } else {
          return { _tag: "Unusable", detail: `only the public part of ${entry.keyId} is here` }
        }
        return dk === undefined ? { _tag: "Failed", detail: `key ${entry.keyId} did not open its entry` } : { _tag: "Opened", dataKey: dk }
      }),
      Effect.catchAll((e: KeyNotFound | KeyStoreError): Effect.Effect<Attempt> =>
        Effect.succeed({ _tag: "Unusable", detail: e._tag === "KeyNotFound" ? "key not in the key store" : `key store ${e.reason}` })
      )
    )
  }

  return {
    _tag: "Unwrapper",
    unwrap: (req) =>
      Effect.gen(function*() {
        let failed = 0
        let contextRefused = 0
        let uncommitted = 0
        const details: Array<string> = []
        for (const entry of req.entries) {
          const a = yield* tryEntry(entry, req)
          if (a._tag === "Opened") {
            if (a.dataKey.length === NativeFormat.KEY_LENGTH && req.verify(a.dataKey)) return Redacted.make(a.dataKey)
            // A recipient entry anyone could have written for another data key: try the others.
            uncommitted++
            continue
          }
          if (a._tag === "Failed") {
            failed++
            if (a.context === true) contextRefused++
          }
          details.push(`${entry.type} ${entry.keyId} v${entry.version}: ${a.detail}`)
        }
        const reason = uncommitted > 0
          ? "CommitmentMismatch"
          : contextRefused > 0 && contextRefused === failed
          ? "ContextMismatch"
          : failed > 0
          ? "WrongKey"
          : "NoUsableKey"
        return yield* new DecryptError({ reason, key: req.objectKey, detail: details.join("; ") || undefined })
      })
  }
}

/**
 * An unwrapper over the `KeyStore` and `Kms` services when present in the context.
 *
 * @since 0.1.0
 * @category constructors
 */
export const unwrapperFromServices = (
  keys?: ReadonlyArray<DecryptionKey> | undefined
): Effect.Effect<Unwrapper> =>
  Effect.gen(function*() {
    const keyStore = yield* Effect.serviceOption(KeyStore)
    const kmsService = yield* Effect.serviceOption(Kms)
    return makeUnwrapper({ keyStore: Option.getOrUndefined(keyStore), kms: Option.getOrUndefined(kmsService), keys })
  })

const openSymmetric = (entry: NativeFormat.WrappedKey, raw: Uint8Array, binding: Uint8Array): Uint8Array | undefined => {
  if (raw.length !== 32) return undefined
  try {
    // A KeyObject costs ~2 µs to make; Node 24 spends ~20–40 µs vetting a raw key Buffer per cipher.
    const material = crypto.createSecretKey(raw)
    if (entry.type === "aes-kw") {
      if (entry.data.length !== 40) return undefined
      const d = crypto.createDecipheriv("id-aes256-wrap", material, KW_IV)
      return Buffer.concat([d.update(entry.data), d.final()])
    }
    if (entry.type !== "aes-gcm" || entry.data.length !== 12 + 32 + 16) return undefined
    const d = crypto.createDecipheriv("aes-256-gcm", material, entry.data.subarray(0, 12))
    d.setAAD(wrapAad(entry.type, entry.keyId, entry.version, binding))
    d.setAuthTag(entry.data.subarray(44))
    return Buffer.concat([d.update(entry.data.subarray(12, 44)), d.final()])
  } catch {
    return undefined
  }
}

const openPrivate = (entry: NativeFormat.WrappedKey, privateKey: crypto.KeyObject, binding: Uint8Array): Uint8Array | undefined => {
  try {
    if (entry.type === "rsa-oaep-256") {
      if (privateKey.asymmetricKeyType !== "rsa") return undefined
      return crypto.privateDecrypt(
        {
          key: privateKey,
          padding: crypto.constants.RSA_PKCS1_OAEP_PADDING,
          oaepHash: "sha256",
          oaepLabel: wrapAad("rsa-oaep-256", entry.keyId, entry.version, binding)
        },
        entry.data
      )
    }
    if (entry.type !== "x25519" || privateKey.asymmetricKeyType !== "x25519" || entry.data.length !== 32 + 32 + 16) return undefined
    const ephemeralRaw = entry.data.subarray(0, 32)
    const ephemeral = crypto.createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, ephemeralRaw]), format: "der", type: "spki" })
    const shared = crypto.diffieHellman({ privateKey, publicKey: ephemeral })
    if (isZero(shared)) return undefined
    const wrapKey = x25519WrapKey(shared, ephemeralRaw, rawX25519Public(crypto.createPublicKey(privateKey)))
    const d = crypto.createDecipheriv("aes-256-gcm", wrapKey, Buffer.alloc(12))
    d.setAAD(wrapAad("x25519", entry.keyId, entry.version, binding))
    d.setAuthTag(entry.data.subarray(64))
    return Buffer.concat([d.update(entry.data.subarray(32, 64)), d.final()])
  } catch {
    return undefined
  }
}

/**
 * HKDF-SHA256(ikm = shared secret, salt = ephemeral public ‖ recipient public,
 * info = "objcrypt/native/v1 x25519" ‖ 0x00, 32 bytes).
 */
const x25519WrapKey = (shared: Uint8Array, ephemeralRaw: Uint8Array, recipientRaw: Uint8Array): Buffer =>
  Buffer.from(
    crypto.hkdfSync(
      "sha256",
      shared,
      Buffer.concat([ephemeralRaw, recipientRaw]),
      Buffer.concat([Buffer.from(X25519_LABEL, "ascii"), Buffer.from([0])]),
      32
    )
  )

const rawX25519Public = (pub: crypto.KeyObject): Buffer => {
  const der = pub.export({ format: "der", type: "spki" })
  return Buffer.from(der.subarray(der.length - 32))
}

const isZero = (b: Uint8Array): boolean => b.every((x) => x === 0)
