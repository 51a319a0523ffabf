/**
 * Azure Blob client-side encryption v2, the format of the .NET, Java and Python Azure Storage SDKs
 * (which no JavaScript library reads or writes): the blob is cut into regions of `DataLength`
 * plaintext bytes (4 MiB), each stored as `nonce (12) ‖ AES-256-GCM ciphertext ‖ tag (16)` under a
 * fresh content key; the content key, prefixed with the protocol version padded to 8 bytes, is
 * wrapped by a key-encryption key (`A256KW` or `RSA-OAEP`) and described in the `encryptiondata`
 * metadata entry. Protocol `2.0` has 4 MiB regions; `2.1` records any region size.
 *
 * Writing and reading stream one region at a time (memory: a few regions), and ranged reads fetch
 * only the regions that cover the range. Protocol 1.0 (AES-CBC, CVE-2022-30187) is not read.
 *
 * The format authenticates each region but not their order or count: a blob cut at a region
 * boundary, or with regions swapped, decrypts without error (a property of the format, shared
 * by every SDK). Prefer objcrypt's native format when only objcrypt reads the data.
 *
 * @since 0.1.0
 */
import { DecryptError, EncryptError, InvalidRange } from "@objcrypt/core/Errors"
import type { StoreError, UnsupportedMode } from "@objcrypt/core/Errors"
import { resolveRange } from "@objcrypt/core/ObjectStore"
import type { ByteRange, ObjectInfo, ObjectStore, PutOptions, PutResult } from "@objcrypt/core/ObjectStore"
import { Effect, Option, Redacted, Stream } from "effect"
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
 * An RSA key wrapping with `RSA-OAEP` (SHA-1, as Azure Key Vault defines it). Without a private
 * key it can only encrypt.
 *
 * @since 0.1.0
 * @category key-encryption keys
 */
export const rsaOaep = (keyId: string, keys: { readonly publicKey: crypto.KeyObject; readonly privateKey?: crypto.KeyObject | undefined }): KeyEncryptionKey => ({
  keyId,
  algorithm: "RSA-OAEP",
  wrap: (cek) =>
    Effect.try({
      try: () => crypto.publicEncrypt({ key: keys.publicKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" }, cek),
      catch: () => new EncryptError({ key: keyId, reason: "RSA-OAEP wrap failed" })
    }),
  unwrap: keys.privateKey === undefined
    ? Option.none()
    : Option.some((wrapped, algorithm) =>
      algorithm !== "RSA-OAEP"
        ? Effect.fail(new DecryptError({ reason: "NoUsableKey", key: keyId, detail: `the content key is wrapped with ${algorithm}, not RSA-OAEP` }))
        : Effect.try({
          try: () => crypto.privateDecrypt({ key: keys.privateKey!, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" }, wrapped),
          catch: () => new DecryptError({ reason: "WrongKey", key: keyId, detail: "the RSA key does not unwrap the content key" })
        }))
})

/**
 * The parsed `encryptiondata` entry.
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
export const parseEncryptionData = (key: string, metadata: Readonly<Record<string, string>>): Effect.Effect<EncryptionData, DecryptError> =>
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
    if (protocol === "1.0") {
      return yield* new DecryptError({ reason: "UnknownFormat", key, detail: "protocol 1.0 (AES-CBC, CVE-2022-30187) is not read; re-encrypt with 2.x" })
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
    const keyId = wrapped["KeyId"]
    const encryptedKey = wrapped["EncryptedKey"]
    const algorithm = wrapped["Algorithm"]
    if (typeof keyId !== "string" || typeof encryptedKey !== "string" || typeof algorithm !== "string" || !/^[A-Za-z0-9+/]+={0,2}$/.test(encryptedKey)) {
      return yield* malformed("WrappedContentKey is incomplete")
    }
    return { protocol, keyId, wrappedKey: Buffer.from(encryptedKey, "base64"), algorithm, dataLength }
  })

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
 * Finds the key-encryption key for a key id (the SDKs' `key_resolver`).
 *
 * @since 0.1.0
 * @category models
 */
export type KeyResolver = (keyId: string) => Option.Option<KeyEncryptionKey>

/**
 * A resolver over a fixed set of keys.
 *
 * @since 0.1.0
 * @category models
 */
export const resolverOf = (...keys: ReadonlyArray<KeyEncryptionKey>): KeyResolver => (id) => Option.fromNullable(keys.find((k) => k.keyId === id))

/**
 * Unwraps the content key of a blob and checks the protocol prefix bound into it.
 *
 * @since 0.1.0
 * @category decryption
 */
export const unwrapContentKey = (key: string, data: EncryptionData, resolve: KeyResolver): Effect.Effect<crypto.KeyObject, DecryptError> =>
  Effect.gen(function*() {
    const kek = resolve(data.keyId)
    if (Option.isNone(kek) || Option.isNone(kek.value.unwrap)) {
      return yield* new DecryptError({ reason: "NoUsableKey", key, detail: `no private key-encryption key with id ${JSON.stringify(data.keyId)}` })
    }
    const plain = Buffer.from(yield* kek.value.unwrap.value(data.wrappedKey, data.algorithm))
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
 * No plaintext of a region is released before its tag is checked.
 *
 * @since 0.1.0
 * @category decryption
 */
export const get = (
  store: ObjectStore["Type"],
  key: string,
  resolve: KeyResolver,
  options?: { readonly range?: ByteRange | undefined }
): Effect.Effect<DecryptedObject, StoreError | DecryptError, Scope.Scope> =>
  Effect.gen(function*() {
    const head = yield* store.head(key)
    const data = yield* parseEncryptionData(key, head.metadata)
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
