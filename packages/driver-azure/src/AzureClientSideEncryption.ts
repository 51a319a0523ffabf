/**
 * Azure Blob client-side encryption v2, the format of the .NET, Java and Python Azure Storage SDKs
 * (which no JavaScript library reads or writes): the blob is cut into regions of `DataLength`
 * plaintext bytes (4 MiB), each stored as `nonce (12) ‖ AES-256-GCM ciphertext ‖ tag (16)` under a
 * fresh content key; the content key, prefixed with the protocol version padded to 8 bytes, is
 * wrapped by a key-encryption key (`A256KW` or `RSA-OAEP`) and described in the `encryptiondata`
 * metadata entry. Protocol `2.0` has 4 MiB regions; `2.1` records any region size.
 *
 * Writing and reading stream one region at a time (memory: a few regions), and ranged reads fetch
 * only the regions that cover the range. Protocol 1.0 (AES-256-CBC, CVE-2022-30187) is read only
 * with the explicit `allowLegacyV1` opt-in, and never written: CBC is unauthenticated, so a changed
 * v1 blob decrypts to changed plaintext without any error (only a broken padding block is noticed).
 *
 * The key-encryption key is a local key (`aesKeyWrap`, `rsaOaep`), a key of objcrypt's `KeyStore`
 * (`fromKeyStore`, `keyStoreResolver`), any core `Kms` (`fromKms`, `kmsResolver`), or an Azure Key
 * Vault key (`KeyVaultKms.keyEncryptionKey`, readable by the other Azure SDKs).
 *
 * The format authenticates each region but not their order or count: a blob cut at a region
 * boundary, or with regions swapped, decrypts without error (a property of the format, shared
 * by every SDK). Prefer objcrypt's native format when only objcrypt reads the data.
 *
 * @since 0.1.0
 */
import type { EncryptionContext } from "@objcrypt/core/EncryptionMode"
import { DecryptError, EncryptError, InvalidRange, KeyUnusable } from "@objcrypt/core/Errors"
import type { KeyNotFound, KeyStoreError, StoreError, UnsupportedMode } from "@objcrypt/core/Errors"
import { KeyStore } from "@objcrypt/core/KeyStore"
import type { KeyInfo, ResolvedKey } from "@objcrypt/core/KeyStore"
import type { Kms } from "@objcrypt/core/Kms"
import { resolveRange } from "@objcrypt/core/ObjectStore"
import type { ByteRange, ObjectInfo, ObjectStore, PutOptions, PutResult } from "@objcrypt/core/ObjectStore"
import { Chunk, Effect, Option, Redacted, Stream } from "effect"
import type * as Scope from "effect/Scope"
import * as crypto from "node:crypto"
import { partReader } from "@objcrypt/core/StreamParts"

/**
 * The metadata entry holding the encryption data (as the Azure SDKs name it).
 *
 * @since 0.1.0
 * @category constants
 */
export const METADATA_KEY = "encryptiondata"

/**
 * @since 0.1.0
 * @category constants
 */
export const REGION_DATA_LENGTH = 4 * 1024 * 1024

const NONCE = 12
const TAG = 16

/**
 * @since 0.1.0
 * @category models
 */
export type Protocol = "2.0" | "2.1"

/**
 * A key-encryption key, as the Azure SDKs model it (`wrap_key`/`unwrap_key`/`get_kid`).
 *
 * @since 0.1.0
 * @category models
 */
export interface KeyEncryptionKey {
  readonly keyId: string
  /** `A256KW` or `RSA-OAEP`. */
  readonly algorithm: string
  readonly wrap: (contentKey: Uint8Array) => Effect.Effect<Uint8Array, EncryptError>
  /** `None` when this key cannot unwrap (a public key only). */
  readonly unwrap: Option.Option<(wrapped: Uint8Array, algorithm: string) => Effect.Effect<Uint8Array, DecryptError>>
}

const AES_KW_IV = Buffer.from("A6A6A6A6A6A6A6A6", "hex")

/**
 * A local 256-bit AES key wrapping with AES Key Wrap (RFC 3394, `A256KW`).
 *
 * @since 0.1.0
 * @category key-encryption keys
 */
export const aesKeyWrap = (keyId: string, key: Redacted.Redacted<Uint8Array>): KeyEncryptionKey => {
  const secret = () => crypto.createSecretKey(Redacted.value(key))
  return {
    keyId,
    algorithm: "A256KW",
    wrap: (cek) =>
      Effect.try({
        try: () => {
          const c = crypto.createCipheriv("id-aes256-wrap", secret(), AES_KW_IV)
          return Buffer.concat([c.update(cek), c.final()])
        },
        catch: () => new EncryptError({ key: keyId, reason: "AES key wrap failed (the key must be 256 bits)" })
      }),
    unwrap: Option.some((wrapped, algorithm) =>
      algorithm !== "A256KW"
        ? Effect.fail(new DecryptError({ reason: "NoUsableKey", key: keyId, detail: `the content key is wrapped with ${algorithm}, not A256KW` }))
        : Effect.try({
          try: () => {
            const d = crypto.createDecipheriv("id-aes256-wrap", secret(), AES_KW_IV)
            return Buffer.concat([d.update(wrapped), d.final()])
          },
          catch: () => new DecryptError({ reason: "WrongKey", key: keyId, detail: "the key-encryption key does not unwrap the content key" })
        }))
  }
}

/**
 * An RSA key wrapping with `RSA-OAEP` (SHA-1, as Azure Key Vault and the SDKs' local RSA keys
 * define it) or `RSA-OAEP-256` (SHA-256 and MGF1-SHA-256, as Key Vault defines it). Without a
 * private key it can only encrypt.
 *
 * @since 0.1.0
 * @category key-encryption keys
 */
export const rsaOaep = (
  keyId: string,
  keys: { readonly publicKey: crypto.KeyObject; readonly privateKey?: crypto.KeyObject | undefined },
  algorithm: "RSA-OAEP" | "RSA-OAEP-256" = "RSA-OAEP"
): KeyEncryptionKey => {
  const oaepHash = algorithm === "RSA-OAEP" ? "sha1" : "sha256"
  return {
    keyId,
    algorithm,
    wrap: (cek) =>
      Effect.try({
        try: () => crypto.publicEncrypt({ key: keys.publicKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash }, cek),
        catch: () => new EncryptError({ key: keyId, reason: `${algorithm} wrap failed` })
      }),
    unwrap: keys.privateKey === undefined
      ? Option.none()
      : Option.some((wrapped, alg) =>
        alg !== algorithm
          ? Effect.fail(new DecryptError({ reason: "NoUsableKey", key: keyId, detail: `the content key is wrapped with ${alg}, not ${algorithm}` }))
          : Effect.try({
            try: () => crypto.privateDecrypt({ key: keys.privateKey!, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash }, wrapped),
            catch: () => new DecryptError({ reason: "WrongKey", key: keyId, detail: "the RSA key does not unwrap the content key" })
          }))
  }
}

/**
 * The key id recorded in `encryptiondata` for a key of objcrypt's key store: the key's stable id
 * and version as `ID@VERSION` (as the objcrypt CLI writes it), so a read finds the very version
 * that wrapped; other SDKs treat it as an opaque `kid`.
 *
 * @since 0.1.0
 * @category key-encryption keys
 */
export const keyStoreKeyId = (info: Pick<KeyInfo, "id" | "version">): string => `${info.id}@${info.version}`

/**
 * @since 0.1.0
 * @category models
 */
export interface KeyStoreKekOptions {
  /** The wrap of an `rsa-oaep-256` key (reads accept both). @default "RSA-OAEP-256" */
  readonly rsaAlgorithm?: "RSA-OAEP-256" | "RSA-OAEP" | undefined
}

const kekOfResolved = (resolved: ResolvedKey, options?: KeyStoreKekOptions): Effect.Effect<KeyEncryptionKey, KeyUnusable> => {
  const info = resolved.info
  const keyId = keyStoreKeyId(info)
  const unusable = (reason: string) => Effect.fail(new KeyUnusable({ name: info.name, reason }))
  if (info.state !== "enabled") return unusable(`the key is ${info.state}`)
  switch (resolved._tag) {
    case "Symmetric":
      if (info.algorithm !== "aes-256" || info.purpose !== "wrap") return unusable("Azure client-side encryption needs an aes-256 key made for wrapping")
      return Effect.succeed(aesKeyWrap(keyId, resolved.material))
    case "PublicKey":
    case "KeyPair": {
      if (info.algorithm !== "rsa-oaep-256") return unusable(`a ${info.algorithm} key cannot wrap an Azure content key (use aes-256 or rsa-oaep-256)`)
      const keys = { publicKey: resolved.publicKey, privateKey: resolved._tag === "KeyPair" ? Redacted.value(resolved.privateKey) : undefined }
      const writer = rsaOaep(keyId, keys, options?.rsaAlgorithm ?? "RSA-OAEP-256")
      // Either RSA-OAEP variant unwraps: the blob says which one wrapped.
      const unwrap: KeyEncryptionKey["unwrap"] = Option.map(writer.unwrap, () => (wrapped: Uint8Array, alg: string) =>
        alg === "RSA-OAEP" || alg === "RSA-OAEP-256"
          ? Option.getOrThrow(rsaOaep(keyId, keys, alg).unwrap)(wrapped, alg)
          : Effect.fail(new DecryptError({ reason: "NoUsableKey", key: keyId, detail: `the content key is wrapped with ${alg}, not RSA-OAEP(-256)` })))
      return Effect.succeed({ ...writer, unwrap })
    }
  }
}

/**
 * A key-encryption key from objcrypt's `KeyStore`, by name (the primary version unless `version`
 * is given): an `aes-256` wrapping key becomes `A256KW`, an `rsa-oaep-256` key `RSA-OAEP-256`
 * (or `RSA-OAEP`). The key id recorded is {@link keyStoreKeyId}.
 *
 * @since 0.1.0
 * @category key-encryption keys
 */
export const fromKeyStore = (
  name: string,
  version?: number | undefined,
  options?: KeyStoreKekOptions
): Effect.Effect<KeyEncryptionKey, KeyNotFound | KeyStoreError | KeyUnusable, KeyStore> =>
  Effect.flatMap(KeyStore, (store) => Effect.flatMap(store.resolve(name, version), (k) => kekOfResolved(k, options)))

/**
 * A resolver over objcrypt's `KeyStore`: key ids written by {@link fromKeyStore} (`ID@VERSION`)
 * resolve to that key version (rotated-out versions included); any other key id is not found here.
 *
 * @since 0.1.0
 * @category key-encryption keys
 */
export const keyStoreResolver: Effect.Effect<KeyResolver, never, KeyStore> = Effect.map(KeyStore, (store) => (keyId: string) => {
  const m = /^(.+)@([1-9][0-9]{0,8})$/.exec(keyId)
  if (m === null) return Effect.succeed(Option.none())
  return store.resolveId(m[1]!, Number(m[2])).pipe(
    Effect.flatMap((k) => kekOfResolved(k)),
    Effect.map(Option.some),
    Effect.catchAll((e) =>
      e._tag === "KeyNotFound"
        ? Effect.succeed(Option.none<KeyEncryptionKey>())
        : Effect.fail(new DecryptError({ reason: "NoUsableKey", key: keyId, detail: e.message }))
    )
  )
})

/**
 * The `Algorithm` recorded for a content key wrapped by a core `Kms` of this kind.
 *
 * @since 0.1.0
 * @category key-encryption keys
 */
export const kmsAlgorithm = (kms: Pick<Kms["Type"], "kind">): string => `KMS:${kms.kind}`

/**
 * A key-encryption key on any core `Kms` (objcrypt's local KMS, AWS KMS, Key Vault through
 * `KeyVaultKms`…): the content key is wrapped by `Kms.encrypt` under `keyId` with `context`, and
 * the algorithm recorded is {@link kmsAlgorithm}. Only objcrypt reads such blobs; for a blob the
 * other Azure SDKs can read with a Key Vault key, use `KeyVaultKms.keyEncryptionKey`.
 *
 * @since 0.1.0
 * @category key-encryption keys
 */
export const fromKms = (kms: Kms["Type"], keyId: string, options?: { readonly context?: EncryptionContext | undefined }): KeyEncryptionKey => {
  const context = options?.context ?? {}
  const algorithm = kmsAlgorithm(kms)
  return {
    keyId,
    algorithm,
    wrap: (cek) =>
      Effect.mapBoth(kms.encrypt(keyId, Redacted.make(cek), context), {
        onFailure: (e) => new EncryptError({ key: keyId, reason: `the KMS did not wrap the content key: ${e.message}` }),
        onSuccess: (r) => r.ciphertext
      }),
    unwrap: Option.some((wrapped, alg) =>
      alg !== algorithm
        ? Effect.fail(new DecryptError({ reason: "NoUsableKey", key: keyId, detail: `the content key is wrapped with ${alg}, not ${algorithm}` }))
        : Effect.mapBoth(kms.decrypt(wrapped, context, keyId), {
          onFailure: (e) =>
            e.reason === "InvalidCiphertext" || e.reason === "ContextMismatch"
              ? new DecryptError({ reason: "WrongKey", key: keyId, detail: e.message })
              : new DecryptError({ reason: "NoUsableKey", key: keyId, detail: e.message }),
          onSuccess: (r) => Uint8Array.from(Redacted.value(r.plaintext))
        }))
  }
}

/**
 * A resolver that hands every key id to a core `Kms` (put it last in {@link combineResolvers}).
 *
 * @since 0.1.0
 * @category key-encryption keys
 */
export const kmsResolver = (kms: Kms["Type"], options?: { readonly context?: EncryptionContext | undefined }): KeyResolver => (keyId) =>
  Effect.succeed(Option.some(fromKms(kms, keyId, options)))

/**
 * The parsed `encryptiondata` entry of a protocol 2.x blob.
 *
 * @since 0.1.0
 * @category models
 */
export interface EncryptionData {
  readonly protocol: Protocol
  readonly keyId: string
  readonly wrappedKey: Uint8Array
  readonly algorithm: string
  readonly dataLength: number
}

/**
 * The parsed `encryptiondata` entry of a legacy protocol 1.0 blob (AES-256-CBC, PKCS#7 padding,
 * one IV for the whole blob, the bare 32-byte content key wrapped).
 *
 * @since 0.1.0
 * @category models
 */
export interface EncryptionDataV1 {
  readonly protocol: "1.0"
  readonly keyId: string
  readonly wrappedKey: Uint8Array
  readonly algorithm: string
  readonly iv: Uint8Array
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ReadOptions {
  /**
   * Read protocol 1.0 blobs (AES-256-CBC, CVE-2022-30187). CBC is unauthenticated: a changed blob
   * decrypts to changed plaintext without an error. Without it they fail with `DecryptError`
   * `UnknownFormat`. @default false
   */
  readonly allowLegacyV1?: boolean | undefined
}

const versionPrefix = (p: Protocol) => Buffer.from(p.padEnd(8, "\0"), "latin1")

/**
 * The JSON of `encryptiondata`, field for field as the SDKs write it.
 *
 * @since 0.1.0
 * @category encoding
 */
export const formatEncryptionData = (d: EncryptionData): string =>
  JSON.stringify({
    WrappedContentKey: { KeyId: d.keyId, EncryptedKey: Buffer.from(d.wrappedKey).toString("base64"), Algorithm: d.algorithm },
    EncryptionAgent: { Protocol: d.protocol, EncryptionAlgorithm: "AES_GCM_256" },
    EncryptedRegionInfo: { DataLength: d.dataLength, NonceLength: NONCE },
    KeyWrappingMetadata: { EncryptionLibrary: "objcrypt" },
    EncryptionMode: "FullBlob"
  })

/**
 * Parses `encryptiondata`, refusing what this reader cannot decrypt safely.
 *
 * @since 0.1.0
 * @category encoding
 */
export const parseEncryptionData: {
  (key: string, metadata: Readonly<Record<string, string>>, options?: { readonly allowLegacyV1?: false | undefined }): Effect.Effect<EncryptionData, DecryptError>
  (key: string, metadata: Readonly<Record<string, string>>, options?: ReadOptions): Effect.Effect<EncryptionData | EncryptionDataV1, DecryptError>
} = (key: string, metadata: Readonly<Record<string, string>>, options?: ReadOptions): Effect.Effect<any, DecryptError> =>
  Effect.gen(function*() {
    const raw = Object.entries(metadata).find(([k]) => k.toLowerCase() === METADATA_KEY)?.[1]
    if (raw === undefined) return yield* new DecryptError({ reason: "MissingMetadata", key, detail: `no ${METADATA_KEY} metadata` })
    const malformed = (detail: string) => new DecryptError({ reason: "MalformedMetadata", key, detail })
    let j: Record<string, unknown>
    try {
      j = JSON.parse(raw) as Record<string, unknown>
    } catch {
      return yield* malformed(`${METADATA_KEY} is not JSON`)
    }
    const obj = (v: unknown) => (typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined)
    const agent = obj(j["EncryptionAgent"])
    const wrapped = obj(j["WrappedContentKey"])
    if (agent === undefined || wrapped === undefined) return yield* malformed("EncryptionAgent or WrappedContentKey is missing")
    const protocol = agent["Protocol"]
    const wrappedContentKey = yield* wrappedKeyOf(wrapped, malformed)
    if (protocol === "1.0") {
      if (options?.allowLegacyV1 !== true) {
        return yield* new DecryptError({
          reason: "UnknownFormat",
          key,
          detail: "protocol 1.0 (AES-CBC, unauthenticated, CVE-2022-30187) is read only with allowLegacyV1; re-encrypt with 2.x"
        })
      }
      if (agent["EncryptionAlgorithm"] !== "AES_CBC_256") return yield* malformed("EncryptionAlgorithm is not AES_CBC_256")
      if (j["EncryptionMode"] !== undefined && j["EncryptionMode"] !== "FullBlob") return yield* malformed("EncryptionMode is not FullBlob")
      const iv = j["ContentEncryptionIV"]
      const ivBytes = typeof iv === "string" && BASE64.test(iv) ? Buffer.from(iv, "base64") : undefined
      if (ivBytes?.length !== 16) return yield* malformed("ContentEncryptionIV is missing or not 16 bytes")
      return { protocol, ...wrappedContentKey, iv: ivBytes } satisfies EncryptionDataV1
    }
    if (protocol !== "2.0" && protocol !== "2.1") {
      return yield* new DecryptError({ reason: "UnknownFormat", key, detail: `unknown client-side encryption protocol ${JSON.stringify(protocol)}` })
    }
    if (agent["EncryptionAlgorithm"] !== "AES_GCM_256") return yield* malformed("EncryptionAlgorithm is not AES_GCM_256")
    if (j["EncryptionMode"] !== undefined && j["EncryptionMode"] !== "FullBlob") return yield* malformed("EncryptionMode is not FullBlob")
    const region = obj(j["EncryptedRegionInfo"])
    const dataLength = region?.["DataLength"]
    if (region === undefined || typeof dataLength !== "number" || !Number.isSafeInteger(dataLength) || dataLength < 16 || dataLength > 2 ** 31) {
      return yield* malformed("EncryptedRegionInfo.DataLength is missing or out of range")
    }
    if (region["NonceLength"] !== NONCE) return yield* malformed("EncryptedRegionInfo.NonceLength is not 12")
    if (protocol === "2.0" && dataLength !== REGION_DATA_LENGTH) return yield* malformed("protocol 2.0 has 4 MiB regions")
    return { protocol, ...wrappedContentKey, dataLength } satisfies EncryptionData
  })

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/

const wrappedKeyOf = (
  wrapped: Record<string, unknown>,
  malformed: (detail: string) => DecryptError
): Effect.Effect<{ readonly keyId: string; readonly wrappedKey: Uint8Array; readonly algorithm: string }, DecryptError> => {
  const keyId = wrapped["KeyId"]
  const encryptedKey = wrapped["EncryptedKey"]
  const algorithm = wrapped["Algorithm"]
  if (typeof keyId !== "string" || typeof encryptedKey !== "string" || typeof algorithm !== "string" || !BASE64.test(encryptedKey)) {
    return Effect.fail(malformed("WrappedContentKey is incomplete"))
  }
  return Effect.succeed({ keyId, wrappedKey: Buffer.from(encryptedKey, "base64"), algorithm })
}

/**
 * @since 0.1.0
 * @category models
 */
export interface EncryptOptions {
  /** @default "2.0" */
  readonly protocol?: Protocol | undefined
  /** Plaintext bytes per region; only protocol 2.1 may change it. @default 4 MiB */
  readonly regionDataLength?: number | undefined
}

/**
 * Encrypts a stream: returns the `encryptiondata` value and the ciphertext stream (one region in
 * memory at a time), and the ciphertext length for a known plaintext length.
 *
 * @since 0.1.0
 * @category encryption
 */
export const encrypt = <E>(
  key: string,
  body: Stream.Stream<Uint8Array, E>,
  kek: KeyEncryptionKey,
  options?: EncryptOptions
): Effect.Effect<{ readonly encryptionData: string; readonly body: Stream.Stream<Uint8Array, E> }, EncryptError> =>
  Effect.gen(function*() {
    const protocol = options?.protocol ?? "2.0"
    const dataLength = options?.regionDataLength ?? REGION_DATA_LENGTH
    if (protocol !== "2.0" && protocol !== "2.1") {
      return yield* new EncryptError({ key, reason: `protocol ${JSON.stringify(protocol)} is not written (only 2.0 and 2.1)` })
    }
    if (protocol === "2.0" && dataLength !== REGION_DATA_LENGTH) {
      return yield* new EncryptError({ key, reason: "protocol 2.0 has 4 MiB regions; use 2.1 for another size" })
    }
    if (!Number.isSafeInteger(dataLength) || dataLength < 16) return yield* new EncryptError({ key, reason: "regions hold at least 16 bytes" })
    const cek = crypto.randomBytes(32)
    const wrappedKey = yield* kek.wrap(Buffer.concat([versionPrefix(protocol), cek]))
    const encryptionData = formatEncryptionData({ protocol, keyId: kek.keyId, wrappedKey, algorithm: kek.algorithm, dataLength })
    const secret = crypto.createSecretKey(cek)
    cek.fill(0)
    const regions = Stream.unwrapScoped(Effect.map(partReader(body, dataLength), (reader) => {
      let counter = 0n
      return Stream.repeatEffectOption(
        Effect.flatMap(Effect.mapError(reader.next, Option.some), (o) => {
          // An empty blob is stored as zero regions, as the SDKs do.
          if (Option.isNone(o) || o.value.length === 0) return Effect.fail(Option.none<E>())
          // A fresh content key per blob: a counter nonce never repeats under it (as the SDKs do).
          const nonce = Buffer.alloc(NONCE)
          nonce.writeBigUInt64BE(counter++, 4)
          const c = crypto.createCipheriv("aes-256-gcm", secret, nonce)
          const out = Buffer.concat([nonce, c.update(o.value), c.final(), c.getAuthTag()])
          return Effect.succeed(out as Uint8Array)
        })
      )
    }))
    return { encryptionData, body: regions }
  })

/**
 * The ciphertext length of `plaintextLength` bytes in regions of `dataLength`.
 *
 * @since 0.1.0
 * @category encryption
 */
export const encryptedLength = (plaintextLength: number, dataLength = REGION_DATA_LENGTH): number =>
  plaintextLength + Math.ceil(plaintextLength / dataLength) * (NONCE + TAG)

/**
 * The plaintext length of a ciphertext of `size` bytes, or `None` when no region layout gives it
 * (a truncated last region).
 *
 * @since 0.1.0
 * @category encryption
 */
export const plaintextLength = (size: number, dataLength: number): Option.Option<number> => {
  const regionLength = dataLength + NONCE + TAG
  const full = Math.floor(size / regionLength)
  const rest = size - full * regionLength
  if (rest > 0 && rest <= NONCE + TAG) return Option.none()
  return Option.some(full * dataLength + (rest === 0 ? 0 : rest - NONCE - TAG))
}

/**
 * Encrypts and stores a blob in the Azure v2 format (any `ObjectStore` works; the Azure SDKs
 * read it from Azure Blob Storage). User metadata is stored beside `encryptiondata`.
 *
 * @since 0.1.0
 * @category encryption
 */
export const put = <E>(
  store: ObjectStore["Type"],
  key: string,
  body: Stream.Stream<Uint8Array, E>,
  kek: KeyEncryptionKey,
  options?: EncryptOptions & Omit<PutOptions, "sse">
): Effect.Effect<PutResult, StoreError | UnsupportedMode | EncryptError | E> =>
  Effect.gen(function*() {
    const enc = yield* encrypt(key, body, kek, options)
    const dataLength = options?.regionDataLength ?? REGION_DATA_LENGTH
    return yield* store.put(key, enc.body, {
      ...options,
      contentLength: options?.contentLength === undefined ? undefined : encryptedLength(options.contentLength, dataLength),
      metadata: { ...options?.metadata, [METADATA_KEY]: enc.encryptionData }
    })
  })

/**
 * Finds the key-encryption key for a key id (the SDKs' `key_resolver`); `None` when it does not
 * know the id.
 *
 * @since 0.1.0
 * @category models
 */
export type KeyResolver = (keyId: string) => Effect.Effect<Option.Option<KeyEncryptionKey>, DecryptError>

/**
 * A resolver over a fixed set of keys.
 *
 * @since 0.1.0
 * @category models
 */
export const resolverOf = (...keys: ReadonlyArray<KeyEncryptionKey>): KeyResolver => (id) =>
  Effect.succeed(Option.fromNullable(keys.find((k) => k.keyId === id)))

/**
 * The first resolver that knows the key id wins.
 *
 * @since 0.1.0
 * @category models
 */
export const combineResolvers = (...resolvers: ReadonlyArray<KeyResolver>): KeyResolver => (id) =>
  Effect.reduce(resolvers, Option.none<KeyEncryptionKey>(), (found, r) => (Option.isSome(found) ? Effect.succeed(found) : r(id)))

/**
 * Unwraps the content key of a blob and, for 2.x, checks the protocol prefix bound into it.
 *
 * @since 0.1.0
 * @category decryption
 */
export const unwrapContentKey = (
  key: string,
  data: EncryptionData | EncryptionDataV1,
  resolve: KeyResolver
): Effect.Effect<crypto.KeyObject, DecryptError> =>
  Effect.gen(function*() {
    const kek = yield* resolve(data.keyId)
    if (Option.isNone(kek) || Option.isNone(kek.value.unwrap)) {
      return yield* new DecryptError({ reason: "NoUsableKey", key, detail: `no private key-encryption key with id ${JSON.stringify(data.keyId)}` })
    }
    const plain = Buffer.from(yield* kek.value.unwrap.value(data.wrappedKey, data.algorithm))
    if (data.protocol === "1.0") {
      if (plain.length !== 32) {
        plain.fill(0)
        return yield* new DecryptError({ reason: "WrongKey", key, detail: "the unwrapped content key is not 256 bits" })
      }
      const secret = crypto.createSecretKey(plain)
      plain.fill(0)
      return secret
    }
    const prefix = versionPrefix(data.protocol)
    // The protocol is bound into the wrapped key so a downgrade of the metadata is detected.
    if (plain.length !== 40 || !crypto.timingSafeEqual(plain.subarray(0, 8), prefix)) {
      plain.fill(0)
      return yield* new DecryptError({ reason: "Tampered", key, detail: "the wrapped content key does not carry this protocol version" })
    }
    const secret = crypto.createSecretKey(plain.subarray(8))
    plain.fill(0)
    return secret
  })

/**
 * @since 0.1.0
 * @category models
 */
export interface DecryptedObject {
  /** The stored object's info, with `size` the plaintext size and `encryptiondata` left out of the metadata. */
  readonly info: ObjectInfo
  readonly body: Stream.Stream<Uint8Array, StoreError | DecryptError>
  /** Present on ranged reads: the plaintext bytes returned, `end` exclusive. */
  readonly range?: { readonly start: number; readonly end: number } | undefined
}

/**
 * Reads and decrypts a blob written in the v2 format, fetching only the regions a range needs.
 * No plaintext of a region is released before its tag is checked. With `allowLegacyV1`, protocol
 * 1.0 blobs are read too (unauthenticated AES-CBC: see {@link ReadOptions}).
 *
 * @since 0.1.0
 * @category decryption
 */
export const get = (
  store: ObjectStore["Type"],
  key: string,
  resolve: KeyResolver,
  options?: ReadOptions & { readonly range?: ByteRange | undefined }
): Effect.Effect<DecryptedObject, StoreError | DecryptError, Scope.Scope> =>
  Effect.gen(function*() {
    const head = yield* store.head(key)
    const data = yield* parseEncryptionData(key, head.metadata, options)
    if (data.protocol === "1.0") return yield* getV1(store, key, head, data, resolve, options?.range)
    const size = plaintextLength(head.size, data.dataLength)
    if (Option.isNone(size)) return yield* new DecryptError({ reason: "Truncated", key, detail: "the last region is shorter than a nonce and a tag" })
    const secret = yield* unwrapContentKey(key, data, resolve)
    const regionLength = data.dataLength + NONCE + TAG
    const metadata = Object.fromEntries(Object.entries(head.metadata).filter(([k]) => k.toLowerCase() !== METADATA_KEY))
    const info: ObjectInfo = { ...head, size: size.value, metadata }
    let want = { start: 0, end: size.value }
    if (options?.range !== undefined) {
      const r = resolveRange(options.range, size.value)
      if (Option.isNone(r)) {
        return yield* new InvalidRange({ key, range: JSON.stringify(options.range), size: size.value })
      }
      want = r.value
    }
    if (want.end === want.start) return { info, body: Stream.empty, ...(options?.range === undefined ? {} : { range: want }) }
    const first = Math.floor(want.start / data.dataLength)
    const last = Math.floor((want.end - 1) / data.dataLength)
    const obj = yield* store.get(key, {
      range: { _tag: "Bounded", start: first * regionLength, end: Math.min(head.size, (last + 1) * regionLength) - 1 }
    })
    if (obj.info.etag !== head.etag) {
      return yield* new DecryptError({ reason: "Tampered", key, detail: "the blob changed between reading its metadata and its data" })
    }
    const body = Stream.unwrapScoped(Effect.map(partReader(obj.body, regionLength), (reader) => {
      let index = first
      return Stream.repeatEffectOption<Uint8Array, StoreError | DecryptError, never>(
        Effect.flatMap(Effect.mapError(reader.next, (e) => Option.some<StoreError | DecryptError>(e)), (o) => {
          if (Option.isNone(o) || o.value.length === 0) {
            return index <= last ? Effect.fail(Option.some(new DecryptError({ reason: "Truncated", key, detail: `region ${index} is missing` }))) : Effect.fail(Option.none())
          }
          const region = o.value
          if (region.length <= NONCE + TAG) {
            return Effect.fail(Option.some(new DecryptError({ reason: "Truncated", key, detail: `region ${index} is shorter than a nonce and a tag` })))
          }
          const d = crypto.createDecipheriv("aes-256-gcm", secret, region.subarray(0, NONCE))
          d.setAuthTag(region.subarray(region.length - TAG))
          let plain: Buffer
          try {
            plain = Buffer.concat([d.update(region.subarray(NONCE, region.length - TAG)), d.final()])
          } catch {
            return Effect.fail(Option.some(new DecryptError({ reason: "Tampered", key, detail: `region ${index} fails authentication` })))
          }
          const base = index * data.dataLength
          index++
          const from = Math.max(0, want.start - base)
          const to = Math.min(plain.length, want.end - base)
          return Effect.succeed(plain.subarray(from, to) as Uint8Array)
        })
      )
    }))
    return { info, body, ...(options?.range === undefined ? {} : { range: want }) }
  })

const BLOCK = 16

const readBytes = (store: ObjectStore["Type"], key: string, start: number, end: number, etag: string | undefined) =>
  Effect.scoped(Effect.gen(function*() {
    const obj = yield* store.get(key, { range: { _tag: "Bounded", start, end: end - 1 } })
    if (obj.info.etag !== etag) {
      return yield* new DecryptError({ reason: "Tampered", key, detail: "the blob changed between reading its metadata and its data" })
    }
    const bytes = Buffer.concat(Chunk.toArray(yield* Stream.runCollect(obj.body)))
    if (bytes.length !== end - start) return yield* new DecryptError({ reason: "Truncated", key, detail: "the blob is shorter than its size" })
    return bytes
  }))

/**
 * Protocol 1.0: AES-256-CBC over the whole blob with PKCS#7 padding. The plaintext size needs the
 * padding of the last block (one small read); a range is read from the block before it (its IV).
 */
const getV1 = (
  store: ObjectStore["Type"],
  key: string,
  head: ObjectInfo,
  data: EncryptionDataV1,
  resolve: KeyResolver,
  range: ByteRange | undefined
): Effect.Effect<DecryptedObject, StoreError | DecryptError, Scope.Scope> =>
  Effect.gen(function*() {
    const size = head.size
    if (size === 0 || size % BLOCK !== 0) {
      return yield* new DecryptError({ reason: "Truncated", key, detail: "an AES-CBC blob is a whole, non-zero number of 16-byte blocks" })
    }
    const secret = yield* unwrapContentKey(key, data, resolve)
    const tail = yield* readBytes(store, key, Math.max(0, size - 2 * BLOCK), size, head.etag)
    const last = crypto.createDecipheriv("aes-256-cbc", secret, size === BLOCK ? data.iv : tail.subarray(0, BLOCK))
    last.setAutoPadding(false)
    const lastBlock = Buffer.concat([last.update(tail.subarray(tail.length - BLOCK)), last.final()])
    const pad = lastBlock[BLOCK - 1]!
    let goodPad = pad >= 1 && pad <= BLOCK
    for (let i = BLOCK - pad; goodPad && i < BLOCK; i++) goodPad = lastBlock[i] === pad
    if (!goodPad) {
      return yield* new DecryptError({ reason: "Tampered", key, detail: "bad AES-CBC padding: the blob was changed or the key-encryption key is wrong" })
    }
    const plainSize = size - pad
    const metadata = Object.fromEntries(Object.entries(head.metadata).filter(([k]) => k.toLowerCase() !== METADATA_KEY))
    const info: ObjectInfo = { ...head, size: plainSize, metadata }
    let want = { start: 0, end: plainSize }
    if (range !== undefined) {
      const r = resolveRange(range, plainSize)
      if (Option.isNone(r)) return yield* new InvalidRange({ key, range: JSON.stringify(range), size: plainSize })
      want = r.value
    }
    const ranged = range === undefined ? {} : { range: want }
    if (want.end === want.start) return { info, body: Stream.empty, ...ranged }
    const first = Math.floor(want.start / BLOCK)
    const lastIndex = Math.floor((want.end - 1) / BLOCK)
    const iv = first === 0 ? Buffer.from(data.iv) : yield* readBytes(store, key, (first - 1) * BLOCK, first * BLOCK, head.etag)
    const fetchEnd = (lastIndex + 1) * BLOCK
    const obj = yield* store.get(key, { range: { _tag: "Bounded", start: first * BLOCK, end: fetchEnd - 1 } })
    if (obj.info.etag !== head.etag) {
      return yield* new DecryptError({ reason: "Tampered", key, detail: "the blob changed between reading its metadata and its data" })
    }
    const expected = fetchEnd - first * BLOCK
    const body = Stream.suspend(() => {
      const d = crypto.createDecipheriv("aes-256-cbc", secret, iv)
      d.setAutoPadding(false)
      let pos = first * BLOCK
      let received = 0
      const emit = (plain: Buffer): Uint8Array => {
        const from = Math.max(0, want.start - pos)
        const to = Math.min(plain.length, want.end - pos)
        pos += plain.length
        return to > from ? plain.subarray(from, to) : new Uint8Array(0)
      }
      return obj.body.pipe(
        Stream.map((c): Uint8Array => {
          received += c.length
          return emit(d.update(c))
        }),
        Stream.concat(Stream.suspend(() =>
          received !== expected
            ? Stream.fail(new DecryptError({ reason: "Truncated", key, detail: "the blob is shorter than its size" }))
            : Stream.succeed(emit(d.final()))
        )),
        Stream.filter((c) => c.length > 0)
      )
    })
    return { info, body, ...ranged }
  })

/**
 * @since 0.1.0
 * @category models
 */
export interface RekeyResult {
  readonly key: string
  readonly protocol: Protocol
  /** The key id and wrap before and after. */
  readonly from: { readonly keyId: string; readonly algorithm: string }
  readonly to: { readonly keyId: string; readonly algorithm: string }
}

/**
 * Rewraps a protocol 2.x blob's content key under another key-encryption key without touching its
 * body: the content key (with its protocol prefix, checked) is unwrapped through `resolve`, wrapped
 * with `next`, and only `WrappedContentKey` of the `encryptiondata` entry is rewritten, through a
 * same-key `copy` that keeps the other metadata, the content type and the rest of the entry as the
 * writing SDK left it. Protocol 1.0 blobs are refused (re-encrypt them instead). On any failure the
 * blob is left as it was.
 *
 * @since 0.1.0
 * @category key-encryption keys
 */
export const rekey = (
  store: ObjectStore["Type"],
  key: string,
  resolve: KeyResolver,
  next: KeyEncryptionKey
): Effect.Effect<RekeyResult, StoreError | UnsupportedMode | DecryptError | EncryptError> =>
  Effect.gen(function*() {
    const head = yield* store.head(key)
    const data = yield* parseEncryptionData(key, head.metadata)
    const secret = yield* unwrapContentKey(key, data, resolve)
    const cek = Buffer.concat([versionPrefix(data.protocol), secret.export()])
    const wrappedKey = yield* next.wrap(cek).pipe(Effect.ensuring(Effect.sync(() => cek.fill(0))))
    // The entry keeps the name (case) the writing SDK gave it; parseEncryptionData found it.
    const [entry, raw] = Object.entries(head.metadata).find(([k]) => k.toLowerCase() === METADATA_KEY) ?? [METADATA_KEY, "{}"]
    const json = JSON.parse(raw) as Record<string, unknown>
    json["WrappedContentKey"] = { KeyId: next.keyId, EncryptedKey: Buffer.from(wrappedKey).toString("base64"), Algorithm: next.algorithm }
    // Only onto the body the key was read from: a concurrent rewrite fails the copy.
    yield* store.copy(key, key, {
      metadata: { ...head.metadata, [entry]: JSON.stringify(json) },
      contentType: head.contentType,
      ifSourceMatch: head.etag
    })
    return {
      key,
      protocol: data.protocol,
      from: { keyId: data.keyId, algorithm: data.algorithm },
      to: { keyId: next.keyId, algorithm: next.algorithm }
    }
  })
