/**
 * The core `Kms` contract on Azure Key Vault (and Managed HSM) keys, with `@azure/keyvault-keys`:
 * a data key is 32 random bytes from `crypto.randomBytes`, sealed with AES-256-GCM under a fresh
 * one-time key that Key Vault wraps (`wrapKey`: `RSA-OAEP-256` for RSA keys, `A256KW` for Managed
 * HSM `oct-HSM` keys). Key Vault's wrap has no additional authenticated data, so the encryption
 * context is bound by that GCM layer: a wrong context or a changed blob fails with `KmsError`
 * `InvalidCiphertext`, as AWS KMS answers. Key ids are Key Vault key URLs
 * (`https://<vault>.vault.azure.net/keys/<name>[/<version>]`); the blob records the versioned id,
 * so data keys stay readable after a rotation.
 *
 * Also a key-encryption key for Azure client-side encryption v2 (`keyEncryptionKey`, `resolver`)
 * that wraps the content key with Key Vault directly, as the .NET, Java and Python SDKs do.
 *
 * Not verified against a Key Vault server: the tests drive the real SDK against recorded requests
 * and responses shaped as the Key Vault REST reference documents them.
 *
 * @since 0.1.0
 */
import type { TokenCredential } from "@azure/core-auth"
import { DefaultAzureCredential } from "@azure/identity"
import { CryptographyClient, KeyClient, parseKeyVaultKeyIdentifier } from "@azure/keyvault-keys"
import type { CryptographyClientOptions, KeyVaultKey, KeyWrapAlgorithm } from "@azure/keyvault-keys"
import type { EncryptionContext } from "@objcrypt/core/EncryptionMode"
import { DecryptError, EncryptError, KmsError } from "@objcrypt/core/Errors"
import { Kms } from "@objcrypt/core/Kms"
import type { DataKey } from "@objcrypt/core/Kms"
import { Config, Context, Effect, Layer, Option, Redacted } from "effect"
import type { ConfigError } from "effect/ConfigError"
import * as crypto from "node:crypto"
import type { KeyEncryptionKey, KeyResolver } from "./AzureClientSideEncryption.js"

/**
 * The wrapping algorithms used with Key Vault keys.
 *
 * @since 0.1.0
 * @category models
 */
export type WrapAlgorithm = "RSA-OAEP-256" | "RSA-OAEP" | "A256KW"

/**
 * @since 0.1.0
 * @category models
 */
export interface KeyVaultKmsConfig {
  /** Any `TokenCredential` (`@azure/identity`'s, or the caller's own). @default DefaultAzureCredential */
  readonly credential?: TokenCredential | undefined
  /**
   * The wrapping algorithm. @default from the key type: `RSA-OAEP-256` for `RSA`/`RSA-HSM`,
   * `A256KW` for `oct-HSM` (Managed HSM); `RSA-OAEP-256` when the key cannot be read (no `keys/get`)
   */
  readonly algorithm?: WrapAlgorithm | undefined
  /** Retries of throttled (429) or failed (5xx) requests. @default 3 */
  readonly maxRetries?: number | undefined
  /** Extra SDK pipeline options: an `httpClient`, `additionalPolicies`, a proxy, `serviceVersion`. */
  readonly clientOptions?: CryptographyClientOptions | undefined
}

/**
 * A key wrapped (or unwrapped) by Key Vault.
 *
 * @since 0.1.0
 * @category models
 */
export interface Wrapped {
  /** The versioned key id (`…/keys/<name>/<version>`). */
  readonly keyId: string
  readonly algorithm: WrapAlgorithm
  readonly wrapped: Uint8Array
}

/**
 * The Key Vault service: the core `Kms`, plus raw `wrapKey`/`unwrapKey` for key-encryption keys.
 *
 * @since 0.1.0
 * @category tags
 */
export class KeyVaultKms extends Context.Tag("@objcrypt/driver-azure/KeyVaultKms")<KeyVaultKms, Kms["Type"] & {
  /** Wraps `key` under `keyId` (resolved to its current version when unversioned). */
  readonly wrapKey: (keyId: string, key: Redacted.Redacted<Uint8Array>) => Effect.Effect<Wrapped, KmsError>
  /** The versioned key id and the wrapping algorithm `wrapKey` uses for `keyId`. */
  readonly resolveKey: (keyId: string) => Effect.Effect<{ readonly keyId: string; readonly algorithm: WrapAlgorithm }, KmsError>
  /** Unwraps with the versioned `keyId` that wrapped. */
  readonly unwrapKey: (keyId: string, algorithm: string, wrapped: Uint8Array) => Effect.Effect<Redacted.Redacted<Uint8Array>, KmsError>
}>() {}

const MAGIC = Buffer.from("OCKV", "latin1")
const FORMAT = 1
const NONCE = 12
const TAG = 16

const isRestError = (e: unknown): e is { statusCode?: number; code?: string; message: string; details?: unknown } =>
  typeof e === "object" && e !== null && (e as { name?: unknown }).name === "RestError"

const innerCode = (details: unknown): string | undefined => {
  const err = (details as { error?: { innerError?: { code?: unknown } } } | undefined)?.error
  return typeof err?.innerError?.code === "string" ? err.innerError.code : undefined
}

// The service's messages name keys and permissions, never key material; keep them short anyway.
const clip = (s: string) => s.split("\n")[0]!.slice(0, 300)

/**
 * Converts an SDK failure into a `KmsError`: the service's error code, HTTP status and message
 * only (never the request, which carries the bearer token and the key being wrapped).
 *
 * @since 0.1.0
 * @category errors
 */
export const toKmsError = (e: unknown, operation: "get" | "wrapKey" | "unwrapKey", keyId?: string | undefined): KmsError => {
  const k = keyId === undefined ? {} : { keyId }
  if (isRestError(e)) {
    const status = e.statusCode
    const code = e.code ?? (status === undefined ? "RestError" : `HTTP ${status}`)
    const detail = `${code}${status === undefined ? "" : ` (HTTP ${status})`}: ${clip(e.message)}`
    const inner = innerCode(e.details)
    if (status === 404 || code === "KeyNotFound") return new KmsError({ reason: "NotFound", ...k, detail })
    if (status === 403 && (inner === "KeyDisabled" || /disabled/i.test(e.message))) return new KmsError({ reason: "Disabled", ...k, detail })
    if (status === 401 || status === 403) return new KmsError({ reason: "AccessDenied", ...k, detail })
    // Key Vault answers a blob it cannot unwrap with 400 BadParameter.
    if (status === 400 && operation === "unwrapKey") {
      return new KmsError({ reason: "InvalidCiphertext", ...k, detail: `${detail}; the wrapped key is damaged or was made under another key` })
    }
    if (status === 409) return new KmsError({ reason: "InvalidState", ...k, detail })
    if (status === undefined || status === 429 || status >= 500) return new KmsError({ reason: "Unavailable", ...k, detail })
    return new KmsError({ reason: "Invalid", ...k, detail })
  }
  const message = e instanceof Error ? clip(e.message) : "unknown failure"
  if (/expired|can't be used before/i.test(message)) return new KmsError({ reason: "Disabled", ...k, detail: message })
  if ((e as { name?: unknown } | null)?.name === "AbortError") return new KmsError({ reason: "Unavailable", ...k, detail: "aborted" })
  return new KmsError({ reason: "Invalid", ...k, detail: message })
}

const canonicalContext = (context: EncryptionContext): Buffer =>
  Buffer.from(JSON.stringify(Object.keys(context).sort().map((key) => [key, context[key]])), "utf8")

const u16 = (n: number) => {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(n)
  return b
}

/**
 * The ciphertext blob: `OCKV`, format 1, the wrap algorithm, the versioned key id and the
 * Key Vault-wrapped one-time key (all length-prefixed), then the GCM nonce, sealed data key and
 * tag. The header and the canonical context are the GCM additional data.
 */
const encodeHeader = (algorithm: string, keyId: string, wrapped: Uint8Array): Buffer => {
  const alg = Buffer.from(algorithm, "latin1")
  const kid = Buffer.from(keyId, "utf8")
  return Buffer.concat([MAGIC, Buffer.from([FORMAT, alg.length]), alg, u16(kid.length), kid, u16(wrapped.length), wrapped])
}

const decodeBlob = (blob: Uint8Array): Option.Option<{ header: Buffer; algorithm: string; keyId: string; wrapped: Buffer; nonce: Buffer; sealed: Buffer; tag: Buffer }> => {
  const b = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength)
  let at = 0
  const take = (n: number) => {
    if (n < 0 || at + n > b.length) throw new RangeError("short")
    const out = b.subarray(at, at + n)
    at += n
    return out
  }
  try {
    if (!take(4).equals(MAGIC) || take(1)[0] !== FORMAT) return Option.none()
    const algorithm = take(take(1)[0]!).toString("latin1")
    const keyId = take(take(2).readUInt16BE()).toString("utf8")
    const wrapped = take(take(2).readUInt16BE())
    const header = b.subarray(0, at)
    const nonce = take(NONCE)
    if (b.length - at < TAG) return Option.none()
    const sealed = take(b.length - at - TAG)
    const tag = take(TAG)
    return Option.some({ header, algorithm, keyId, wrapped, nonce, sealed, tag })
  } catch {
    return Option.none()
  }
}

const sameKey = (requested: string, recorded: string): boolean => {
  try {
    const a = parseKeyVaultKeyIdentifier(requested)
    const b = parseKeyVaultKeyIdentifier(recorded)
    return a.vaultUrl === b.vaultUrl && a.name === b.name && (a.version === undefined || a.version === "" || a.version === b.version)
  } catch {
    return false
  }
}

interface ResolvedKey {
  readonly keyId: string
  readonly algorithm: WrapAlgorithm
  readonly client: CryptographyClient
}

const algorithmFor = (key: KeyVaultKey, configured: WrapAlgorithm | undefined): Option.Option<WrapAlgorithm> => {
  if (configured !== undefined) return Option.some(configured)
  switch (key.keyType) {
    case "RSA":
    case "RSA-HSM":
      return Option.some("RSA-OAEP-256")
    case "oct":
    case "oct-HSM":
      return Option.some("A256KW")
    default:
      return Option.none()
  }
}

/**
 * Builds the service. SDK clients are made per vault and per key, and reused.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (config: KeyVaultKmsConfig = {}): Effect.Effect<KeyVaultKms["Type"]> =>
  Effect.sync(() => {
    const credential = config.credential ?? new DefaultAzureCredential()
    const options: CryptographyClientOptions = {
      ...config.clientOptions,
      retryOptions: { maxRetries: config.maxRetries ?? 3, ...config.clientOptions?.retryOptions }
    }
    const keyClients = new Map<string, KeyClient>()
    const resolved = new Map<string, ResolvedKey>()
    const remote = new Map<string, CryptographyClient>()

    const parse = (keyId: string) =>
      Effect.try({
        try: () => {
          const url = new URL(keyId)
          const p = parseKeyVaultKeyIdentifier(keyId)
          if (url.protocol !== "https:" || url.pathname.split("/")[1] !== "keys" || p.name === "" || p.vaultUrl === "") throw new Error("not a key")
          return p
        },
        catch: () => new KmsError({ reason: "Invalid", keyId, detail: "not a Key Vault key id (https://<vault>.vault.azure.net/keys/<name>[/<version>])" })
      })

    const resolveKey = (keyId: string): Effect.Effect<ResolvedKey, KmsError> =>
      Effect.suspend(() => {
        const cached = resolved.get(keyId)
        if (cached !== undefined) return Effect.succeed(cached)
        return Effect.flatMap(parse(keyId), (p) => {
          let keys = keyClients.get(p.vaultUrl)
          if (keys === undefined) {
            keys = new KeyClient(p.vaultUrl, credential, options)
            keyClients.set(p.vaultUrl, keys)
          }
          const kc = keys
          const versioned = p.version !== undefined && p.version !== ""
          return Effect.tryPromise({
            try: (abortSignal) => kc.getKey(p.name, { ...(versioned ? { version: p.version! } : {}), abortSignal }),
            catch: (e) => e
          }).pipe(
            Effect.flatMap((key) =>
              Option.match(algorithmFor(key, config.algorithm), {
                onNone: () => Effect.fail(new KmsError({ reason: "Invalid", keyId, detail: `a ${key.keyType ?? "?"} key cannot wrap keys (use an RSA key, or an oct-HSM key of a Managed HSM)` })),
                onSome: (algorithm): Effect.Effect<ResolvedKey, KmsError> =>
                  Effect.succeed({ keyId: key.id ?? keyId, algorithm, client: new CryptographyClient(key, credential, options) })
              })
            ),
            Effect.catchAll((e): Effect.Effect<ResolvedKey, KmsError> => {
              if (e instanceof KmsError) return Effect.fail(e)
              // Without keys/get, a versioned key can still be used remotely (the SDK does the same).
              if (isRestError(e) && e.statusCode === 403 && versioned) {
                return Effect.succeed({ keyId, algorithm: config.algorithm ?? "RSA-OAEP-256", client: remoteClient(keyId) })
              }
              const err = toKmsError(e, "get", keyId)
              return Effect.fail(
                err.reason === "AccessDenied" && !versioned
                  ? new KmsError({ reason: "AccessDenied", keyId, detail: `${err.detail}; the current version of an unversioned key id needs keys/get (or give a versioned key id)` })
                  : err
              )
            }),
            Effect.tap((r) =>
              Effect.sync(() => {
                resolved.set(keyId, r)
                resolved.set(r.keyId, r)
              })
            )
          )
        })
      })

    const remoteClient = (keyId: string): CryptographyClient => {
      let c = remote.get(keyId)
      if (c === undefined) {
        c = resolved.get(keyId)?.client ?? new CryptographyClient(keyId, credential, options)
        remote.set(keyId, c)
      }
      return c
    }

    const wrapKey = (keyId: string, key: Redacted.Redacted<Uint8Array>): Effect.Effect<Wrapped, KmsError> =>
      Effect.flatMap(resolveKey(keyId), (r) =>
        Effect.tryPromise({
          try: (abortSignal) => r.client.wrapKey(r.algorithm as KeyWrapAlgorithm, Redacted.value(key), { abortSignal }),
          catch: (e) => toKmsError(e, "wrapKey", r.keyId)
        }).pipe(Effect.map((w) => ({ keyId: r.keyId, algorithm: r.algorithm, wrapped: Uint8Array.from(w.result) }))))

    const unwrapKey = (keyId: string, algorithm: string, wrapped: Uint8Array): Effect.Effect<Redacted.Redacted<Uint8Array>, KmsError> =>
      Effect.flatMap(parse(keyId), () =>
        Effect.tryPromise({
          try: (abortSignal) => remoteClient(keyId).unwrapKey(algorithm as KeyWrapAlgorithm, wrapped, { abortSignal }),
          catch: (e) => toKmsError(e, "unwrapKey", keyId)
        })).pipe(Effect.map((u) => {
          const copy = Uint8Array.from(u.result)
          u.result.fill(0)
          return Redacted.make(copy)
        }))

    const encrypt = (keyId: string, plaintext: Redacted.Redacted<Uint8Array>, context: EncryptionContext) =>
      Effect.gen(function*() {
        const oneTime = crypto.randomBytes(32)
        try {
          const w = yield* wrapKey(keyId, Redacted.make(oneTime))
          const header = encodeHeader(w.algorithm, w.keyId, w.wrapped)
          const nonce = crypto.randomBytes(NONCE)
          const c = crypto.createCipheriv("aes-256-gcm", oneTime, nonce)
          c.setAAD(Buffer.concat([header, canonicalContext(context)]))
          const sealed = Buffer.concat([c.update(Redacted.value(plaintext)), c.final()])
          return { keyId: w.keyId, ciphertext: new Uint8Array(Buffer.concat([header, nonce, sealed, c.getAuthTag()])) }
        } finally {
          oneTime.fill(0)
        }
      })

    const generateDataKey = (keyId: string, context: EncryptionContext): Effect.Effect<DataKey, KmsError> =>
      Effect.suspend(() => {
        const plaintext = Redacted.make(new Uint8Array(crypto.randomBytes(32)))
        return Effect.map(encrypt(keyId, plaintext, context), (r) => ({ keyId: r.keyId, plaintext, ciphertext: r.ciphertext }))
      })

    const invalidCiphertext = (keyId: string | undefined, detail: string) =>
      new KmsError({ reason: "InvalidCiphertext", ...(keyId === undefined ? {} : { keyId }), detail })

    const decrypt = (ciphertext: Uint8Array, context: EncryptionContext, keyId?: string | undefined) =>
      Effect.gen(function*() {
        const blob = decodeBlob(ciphertext)
        if (Option.isNone(blob)) return yield* invalidCiphertext(keyId, "not a Key Vault data-key blob (or truncated)")
        const b = blob.value
        if (keyId !== undefined && !sameKey(keyId, b.keyId)) {
          return yield* invalidCiphertext(keyId, "the ciphertext was made under another key")
        }
        const oneTime = Buffer.from(Redacted.value(yield* unwrapKey(b.keyId, b.algorithm, b.wrapped)))
        try {
          if (oneTime.length !== 32) return yield* invalidCiphertext(b.keyId, "the unwrapped key is not 256 bits")
          const d = crypto.createDecipheriv("aes-256-gcm", oneTime, b.nonce)
          d.setAAD(Buffer.concat([b.header, canonicalContext(context)]))
          d.setAuthTag(b.tag)
          const plain = yield* Effect.try({
            try: () => Buffer.concat([d.update(b.sealed), d.final()]),
            catch: () => invalidCiphertext(b.keyId, "the ciphertext is damaged, or the encryption context does not match")
          })
          const out = Uint8Array.from(plain)
          plain.fill(0)
          return { keyId: b.keyId, plaintext: Redacted.make(out) }
        } finally {
          oneTime.fill(0)
        }
      })

    return KeyVaultKms.of({
      kind: "azure-key-vault",
      generateDataKey,
      encrypt,
      decrypt,
      wrapKey,
      unwrapKey,
      resolveKey: (keyId) => Effect.map(resolveKey(keyId), (r) => ({ keyId: r.keyId, algorithm: r.algorithm }))
    })
  })

/**
 * A layer providing both `KeyVaultKms` and the core `Kms`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (config?: KeyVaultKmsConfig): Layer.Layer<KeyVaultKms | Kms> =>
  Layer.effectContext(Effect.map(make(config), (s) => Context.make(KeyVaultKms, s).pipe(Context.add(Kms, s))))

/**
 * As {@link layer}, reading its configuration (e.g. `algorithm`, `maxRetries`; the credential
 * is `DefaultAzureCredential`, which reads `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`…).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (config: Config.Config.Wrap<KeyVaultKmsConfig>): Layer.Layer<KeyVaultKms | Kms, ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(config), layer))

const unwrapperFor = (kms: KeyVaultKms["Type"], keyId: string): KeyEncryptionKey["unwrap"] =>
  Option.some((wrapped, algorithm) =>
    Effect.mapBoth(kms.unwrapKey(keyId, algorithm, wrapped), {
      onFailure: (e) =>
        new DecryptError({ reason: e.reason === "InvalidCiphertext" ? "WrongKey" : "NoUsableKey", key: keyId, detail: e.message }),
      onSuccess: (k) => Redacted.value(k)
    }))

/**
 * A key-encryption key for Azure client-side encryption v2 on a Key Vault key: the content key is
 * wrapped by Key Vault itself (`RSA-OAEP-256`, or `A256KW` on Managed HSM) and the versioned key id
 * recorded, so the .NET, Java and Python SDKs with the same Key Vault key read the blob.
 *
 * @since 0.1.0
 * @category key-encryption keys
 */
export const keyEncryptionKey = (kms: KeyVaultKms["Type"], keyId: string): Effect.Effect<KeyEncryptionKey, KmsError> =>
  // Resolve the version and algorithm first: encryptiondata records them.
  Effect.map(kms.resolveKey(keyId), (probe) => ({
    keyId: probe.keyId,
    algorithm: probe.algorithm,
    wrap: (cek: Uint8Array) =>
      Effect.mapBoth(kms.wrapKey(probe.keyId, Redacted.make(cek)), {
        onFailure: (e) => new EncryptError({ key: probe.keyId, reason: `Key Vault did not wrap the content key: ${e.message}` }),
        onSuccess: (w) => w.wrapped
      }),
    unwrap: unwrapperFor(kms, probe.keyId)
  }))

/**
 * Resolves key ids that are Key Vault key URLs to Key Vault unwrapping (the SDKs'
 * `KeyVaultKeyResolver`); other key ids are not found here.
 *
 * @since 0.1.0
 * @category key-encryption keys
 */
export const resolver = (kms: KeyVaultKms["Type"]): KeyResolver => (keyId) =>
  Effect.sync(() => {
    try {
      const p = parseKeyVaultKeyIdentifier(keyId)
      if (p.name === "" || p.version === undefined || p.version === "") return Option.none()
    } catch {
      return Option.none()
    }
    return Option.some<KeyEncryptionKey>({
      keyId,
      algorithm: "",
      wrap: () => Effect.fail(new EncryptError({ key: keyId, reason: "a resolved key-encryption key only unwraps" })),
      unwrap: unwrapperFor(kms, keyId)
    })
  })
