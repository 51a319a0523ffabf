/**
 * The AWS S3 Encryption Client formats over any `ObjectStore`: write V2 (AES-256-GCM) and V3
 * (AES-256-GCM with HKDF-SHA512 key commitment), single PUT or multipart (one GCM stream cut into
 * parts uploaded concurrently, aborted on failure); read V2, V3 and — behind legacy opt-ins — V1
 * (AES-CBC) and the legacy wraps (`kms`, `AESWrap`, Java's `RSA/ECB/OAEPWithSHA-256AndMGF1Padding`,
 * V1 `AES` and `RSA`), with the `kms+context`, `AES/GCM` and `RSA-OAEP-SHA1` wraps, content
 * metadata in object metadata or in instruction files, verified streaming reads (through the
 * `Spool` service for large objects) and instruction-file re-encryption. Objects are
 * byte-compatible with AWS's clients (Java, Go, Ruby, Python, .NET, C++, PHP). The format and the
 * design of verified reads are described in `docs/S3EC.md`.
 *
 * @since 0.1.0
 */
import { Chunk, Context, Effect, Exit, FiberRef, Layer, Option, Redacted, Stream } from "effect"
import type { Scope } from "effect"
import * as crypto from "node:crypto"
import { DecryptError, EncryptError, InvalidEncryptionParameters, InvalidRange, PreconditionFailed, ProviderError } from "./Errors.js"
import type { KeyNotFound, KeyStoreError, KmsError, StoreError, UnsupportedMode } from "./Errors.js"
import * as F from "./internal/s3ecFormat.js"
import * as SealedSpool from "./internal/s3ecSpool.js"
import * as NodeSpool from "./internal/s3ecSpoolNode.js"
import type { DecryptionKey } from "./Keyring.js"
import { KeyStore } from "./KeyStore.js"
import type { ResolvedKey } from "./KeyStore.js"
import { Kms } from "./Kms.js"
import * as ObjectStore from "./ObjectStore.js"

type Store = ObjectStore.ObjectStore["Type"]

// ---------------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------------

/**
 * AWS's key-commitment policies. `ForbidEncryptAllowDecrypt` writes V2 (no commitment);
 * `Require*` write V3; `RequireEncryptRequireDecrypt` (the default, like AWS's current clients)
 * also refuses to read V1/V2 objects.
 *
 * @since 0.1.0
 * @category models
 */
export type CommitmentPolicy = "ForbidEncryptAllowDecrypt" | "RequireEncryptAllowDecrypt" | "RequireEncryptRequireDecrypt"

/**
 * @since 0.1.0
 * @category models
 */
export const DEFAULT_COMMITMENT_POLICY: CommitmentPolicy = "RequireEncryptRequireDecrypt"

/**
 * The default instruction-file suffix.
 *
 * @since 0.1.0
 * @category models
 */
export const INSTRUCTION_SUFFIX = F.INSTRUCTION_SUFFIX

/**
 * How a new object's data key is wrapped.
 *
 * @since 0.1.0
 * @category models
 */
export type Wrapping =
  | { readonly _tag: "KmsContext"; readonly kms: Kms["Type"]; readonly keyId: string }
  | {
    readonly _tag: "AesGcm"
    readonly material: Redacted.Redacted<Uint8Array>
    /** The material description recorded in `x-amz-matdesc` / `x-amz-m`. */
    readonly description: Readonly<Record<string, string>>
  }
  | { readonly _tag: "RsaOaepSha1"; readonly publicKey: crypto.KeyObject; readonly description: Readonly<Record<string, string>> }

/**
 * `kms+context`: the data key comes from the KMS, bound to an encryption context that includes
 * the reserved `aws:x-amz-cek-alg` entry.
 *
 * @since 0.1.0
 * @category constructors
 */
export const kmsContext = (kms: Kms["Type"], keyId: string): Wrapping => {
  if (keyId.length === 0) throw new Error("kms+context needs a KMS key id")
  return { _tag: "KmsContext", kms, keyId }
}

/**
 * `AES/GCM`: a raw AES-256 wrapping key.
 *
 * @since 0.1.0
 * @category constructors
 */
export const aesGcm = (options: {
  readonly material: Redacted.Redacted<Uint8Array>
  /** @default {} */
  readonly description?: Readonly<Record<string, string>> | undefined
}): Wrapping => {
  if (Redacted.value(options.material).length !== F.KEY_LENGTH) throw new Error("AES/GCM wrapping needs a 32-byte key")
  return { _tag: "AesGcm", material: options.material, description: options.description ?? {} }
}

/**
 * `RSA-OAEP-SHA1`: an RSA public key (at least 2048 bits); only the reader needs the private key.
 *
 * @since 0.1.0
 * @category constructors
 */
export const rsaOaepSha1 = (options: {
  readonly publicKey: crypto.KeyObject
  /** @default {} */
  readonly description?: Readonly<Record<string, string>> | undefined
}): Wrapping => {
  const pub = options.publicKey.type === "private" ? crypto.createPublicKey(options.publicKey) : options.publicKey
  if (pub.asymmetricKeyType !== "rsa" || (pub.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) {
    throw new Error("RSA-OAEP-SHA1 wrapping needs an RSA key of at least 2048 bits")
  }
  return { _tag: "RsaOaepSha1", publicKey: pub, description: options.description ?? {} }
}

/**
 * Material-description entries that name a key-store key, so that a reader with the same key
 * store finds it (AWS's clients ignore them).
 *
 * @since 0.1.0
 * @category models
 */
export const KeyStoreDescription = { id: "objcrypt-key-id", version: "objcrypt-key-version" } as const

/**
 * A wrapping from a key-store key: symmetric keys wrap with `AES/GCM`, RSA keys with
 * `RSA-OAEP-SHA1`; the key's id and version are recorded in the material description.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromResolvedKey = (key: ResolvedKey, description?: Readonly<Record<string, string>>): Wrapping => {
  const desc = { ...description, [KeyStoreDescription.id]: key.info.id, [KeyStoreDescription.version]: String(key.info.version) }
  if (key._tag === "Symmetric") return aesGcm({ material: key.material, description: desc })
  return rsaOaepSha1({ publicKey: key.publicKey, description: desc })
}

/**
 * Resolves a named key (primary version unless given) from the `KeyStore` into a wrapping.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromKeyStore = (
  name: string,
  options?: { readonly version?: number | undefined; readonly description?: Readonly<Record<string, string>> | undefined }
): Effect.Effect<Wrapping, KeyNotFound | KeyStoreError, KeyStore> =>
  Effect.flatMap(KeyStore, (ks) => ks.resolve(name, options?.version)).pipe(Effect.map((k) => fromResolvedKey(k, options?.description)))

/**
 * What a reader may unwrap data keys with.
 *
 * @since 0.1.0
 * @category models
 */
export interface Materials {
  /** For `kms+context` (and, with the legacy opt-in, `kms`). */
  readonly kms?: Kms["Type"] | undefined
  /** Passed to KMS Decrypt; without it the key recorded in the ciphertext blob is used. */
  readonly kmsKeyId?: string | undefined
  /** Raw AES keys (`AES/GCM`, legacy `AESWrap`/`AES`) and RSA private keys (`RSA-OAEP-SHA1`, legacy OAEP-SHA-256 and `RSA`); each is tried. */
  readonly keys?: ReadonlyArray<DecryptionKey> | undefined
  /** Resolves keys named in the material description (see `KeyStoreDescription`). */
  readonly keyStore?: KeyStore["Type"] | undefined
}

/**
 * Materials from the `Kms` and `KeyStore` services when present, plus keys given directly.
 *
 * @since 0.1.0
 * @category constructors
 */
export const materialsFromServices = (
  keys?: ReadonlyArray<DecryptionKey> | undefined,
  kmsKeyId?: string | undefined
): Effect.Effect<Materials> =>
  Effect.gen(function*() {
    const keyStore = yield* Effect.serviceOption(KeyStore)
    const kms = yield* Effect.serviceOption(Kms)
    return { kms: Option.getOrUndefined(kms), keyStore: Option.getOrUndefined(keyStore), keys, kmsKeyId }
  })

/**
 * @since 0.1.0
 * @category models
 */
export interface PutOptions {
  readonly wrapping: Wrapping
  /** @default DEFAULT_COMMITMENT_POLICY (writes V3) */
  readonly commitmentPolicy?: CommitmentPolicy | undefined
  /** Extra KMS encryption context (`kms+context` only; `aws:x-amz-cek-alg` is reserved). */
  readonly kmsContext?: Readonly<Record<string, string>> | undefined
  /** Write the content metadata to `<key>.instruction` instead of the object's metadata. @default false */
  readonly instructionFile?: boolean | undefined
  /** Plaintext length when known: recorded (V2) and checked against the body. */
  readonly contentLength?: number | undefined
  readonly contentType?: string | undefined
  /** User metadata stored beside the content metadata (its names may not collide). */
  readonly metadata?: Readonly<Record<string, string>> | undefined
  /**
   * Ciphertext bytes per multipart part. Objects whose ciphertext fits in one part are stored with
   * a single `put`; larger or unknown-length ones through the store's multipart API. Raised when a
   * known `contentLength` would need more parts than the store allows.
   * @default 8 MiB (or the store's minimum part size)
   */
  readonly partSize?: number | undefined
  /** Parts uploaded at once (memory ≈ (concurrency + 2) × partSize). @default 4 */
  readonly concurrency?: number | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface PutResult extends ObjectStore.PutResult {
  readonly format: "V2" | "V3"
  readonly plaintextSize: number
  readonly location: "metadata" | "instruction"
  /** 1 for a single `put`, otherwise the number of multipart parts. */
  readonly parts: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ReadOptions {
  readonly materials: Materials
  /** @default DEFAULT_COMMITMENT_POLICY (V1/V2 objects refused) */
  readonly commitmentPolicy?: CommitmentPolicy | undefined
  /** The KMS encryption context the object must carry besides the reserved entries. @default {} */
  readonly kmsContext?: Readonly<Record<string, string>> | undefined
  /** Read AES-CBC (V1 and legacy V2) objects, which are not authenticated. @default false */
  readonly enableLegacyUnauthenticatedModes?: boolean | undefined
  /** Unwrap with the legacy `kms`, `AESWrap`, `RSA/ECB/OAEPWithSHA-256AndMGF1Padding` and V1 `AES`/`RSA` wraps. @default false */
  readonly enableLegacyWrappingAlgorithms?: boolean | undefined
  /** @default ".instruction" */
  readonly instructionFileSuffix?: string | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface GetOptions extends ReadOptions {
  /**
   * Release plaintext as it is decrypted, before the GCM tag at the end of the object is checked
   * (a tampered object then fails only at the end of the stream). @default false
   */
  readonly delayedAuthentication?: boolean | undefined
  /** Objects up to this many ciphertext bytes are verified in memory; larger ones through the `Spool`. @default 8 MiB */
  readonly bufferSize?: number | undefined
  readonly range?: ObjectStore.ByteRange | undefined
  /** Ranged reads decrypt with AES-CTR and are not authenticated: they need this opt-in. @default false */
  readonly unauthenticatedRanges?: boolean | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface DecryptedObject {
  readonly info: ObjectStore.ObjectInfo
  readonly plaintextSize: number
  readonly format: "V1" | "V2" | "V3"
  readonly range?: { readonly start: number; readonly end: number } | undefined
  /** Verified before release unless `delayedAuthentication`, a ranged or a legacy CBC read. */
  readonly body: Stream.Stream<Uint8Array, StoreError | DecryptError>
}

/**
 * Content metadata, safe to print (no key material).
 *
 * @since 0.1.0
 * @category models
 */
export interface EnvelopeSummary {
  readonly format: "aws-s3ec"
  readonly version: "V1" | "V2" | "V3"
  readonly location: "metadata" | "instruction"
  readonly wrapAlgorithm: string
  readonly contentAlgorithm: string
  readonly keyCommitment: boolean
  readonly legacy: boolean
  readonly materialDescription: Readonly<Record<string, string>>
  readonly kmsContext: Readonly<Record<string, string>>
  readonly plaintextSize?: number | undefined
}

// ---------------------------------------------------------------------------------------------
// Verification spool
// ---------------------------------------------------------------------------------------------

/**
 * Random-access scratch storage for one verified read. `get` writes only sealed records to it
 * (AES-256-GCM under an ephemeral in-memory key, see `docs/S3EC.md`), never plaintext.
 *
 * @since 0.1.0
 * @category models
 */
export interface SpoolFile {
  readonly write: (bytes: Uint8Array, position: number) => Effect.Effect<void, ProviderError>
  /** Up to `length` bytes at `position`; fewer only at the end of the file. */
  readonly read: (position: number, length: number) => Effect.Effect<Uint8Array, ProviderError>
}

/**
 * Where verify-then-stream reads keep the plaintext of objects larger than `bufferSize` until
 * the object's GCM tag has verified. `open` returns an empty scratch file that must be gone when
 * its scope closes (success, failure or interruption). `get` needs this service, so a program
 * states in its type where large verified reads may write: `layerNodeSpool` (a 0600 file in a
 * private temporary directory) or `layerNoSpool` (memory only; larger objects are refused).
 *
 * @since 0.1.0
 * @category tags
 */
export class Spool extends Context.Tag("@objcrypt/core/S3EncryptionClient/Spool")<Spool, {
  readonly open: Effect.Effect<SpoolFile, ProviderError, Scope.Scope>
}>() {}

/**
 * A spool on the local file system (Node): a file of mode 0600 in a fresh `mkdtemp` directory
 * under `directory`, both removed when the read's scope closes.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerNodeSpool = (options?: {
  /** @default os.tmpdir() */
  readonly directory?: string | undefined
}): Layer.Layer<Spool> => Layer.succeed(Spool, { open: NodeSpool.open(options?.directory) })

/**
 * No spool: objects larger than `bufferSize` fail with a `ProviderError` (`NoSpool`) before any
 * byte is released; for runtimes without a writable file system.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerNoSpool: Layer.Layer<Spool> = Layer.succeed(Spool, {
  open: Effect.fail(
    new ProviderError({
      provider: "local",
      operation: "spool-open",
      code: "NoSpool",
      detail: "the object is larger than bufferSize and no verification spool is configured (layerNoSpool)"
    })
  )
})

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const MiB = 1024 * 1024
const DEFAULT_BUFFER_SIZE = 8 * MiB
const DEFAULT_PART_SIZE = 8 * MiB
const DEFAULT_CONCURRENCY = 4
/** AES-GCM's limit for one message: 2^39 - 256 bits. */
const GCM_MAX_PLAINTEXT = 68_719_476_704

const decryptError = (key: string, reason: DecryptError["reason"], detail?: string) => new DecryptError({ reason, key, detail })

const b64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64")

const sameMap = (a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean => {
  const ka = Object.keys(a)
  return ka.length === Object.keys(b).length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && a[k] === b[k])
}

const refusal = (key: string, e: unknown): DecryptError => {
  if (e instanceof F.EnvelopeRefused) {
    const p = e.problem
    return decryptError(key, p._tag === "Malformed" ? "MalformedMetadata" : "UnknownFormat", p.detail)
  }
  return decryptError(key, "MalformedMetadata", "unreadable content metadata")
}

/** Reads and parses `<key><suffix>`, with the etag of the version read (for a conditional rewrite). */
const readInstructionFile = (
  store: Store,
  key: string,
  suffix: string
): Effect.Effect<Option.Option<{ readonly fields: Record<string, string>; readonly etag: string }>, StoreError | DecryptError> =>
  ObjectStore.readAll(store, key + suffix).pipe(
    Effect.map(Option.some),
    Effect.catchTag("ObjectNotFound", () => Effect.succeed(Option.none<{ readonly info: ObjectStore.ObjectInfo; readonly bytes: Uint8Array }>())),
    Effect.flatMap((o) =>
      Option.isNone(o)
        ? Effect.succeed(Option.none())
        : Effect.try({
          try: () => Option.some({ fields: F.parseInstructionFile(o.value.bytes), etag: o.value.info.etag }),
          catch: (e) => refusal(key, e)
        })
    )
  )

/** Finds and decodes an object's content metadata (object metadata first, then the instruction file). */
const loadEnvelope = (
  store: Store,
  key: string,
  metadata: Readonly<Record<string, string>>,
  suffix: string
): Effect.Effect<
  {
    readonly envelope: F.Envelope
    readonly instruction?: Record<string, string> | undefined
    /** The etag of the instruction file read, when the envelope came from one. */
    readonly instructionEtag?: string | undefined
  },
  StoreError | DecryptError
> =>
  Effect.gen(function*() {
    const found = yield* Effect.try({ try: () => F.detect(metadata), catch: (e) => refusal(key, e) })
    if (found === "V1" || found === "V2") {
      return { envelope: yield* Effect.try({ try: () => F.decodeV1V2(metadata, found, "metadata"), catch: (e) => refusal(key, e) }) }
    }
    if (found === "V3") {
      return { envelope: yield* Effect.try({ try: () => F.decodeV3(metadata, undefined), catch: (e) => refusal(key, e) }) }
    }
    const instruction = yield* readInstructionFile(store, key, suffix)
    if (Option.isNone(instruction)) {
      return yield* decryptError(
        key,
        "MissingMetadata",
        found === "V3-instruction"
          ? `the V3 content metadata needs the instruction file ${key + suffix}, which does not exist`
          : "no S3 Encryption Client content metadata in the object's metadata and no instruction file"
      )
    }
    const instr = instruction.value.fields
    const envelope = yield* Effect.try({
      try: () => {
        const inFile = F.detect(instr)
        if (found === "V3-instruction") {
          if (inFile !== "V3" && inFile !== "V3-instruction") {
            throw new F.EnvelopeRefused({ _tag: "Ambiguous", detail: "V3 object metadata with a V1/V2 instruction file" })
          }
          return F.decodeV3(metadata, instr)
        }
        if (inFile === "V1" || inFile === "V2") return F.decodeV1V2(instr, inFile, "instruction")
        if (inFile === "none") throw new F.EnvelopeRefused({ _tag: "Malformed", detail: "the instruction file holds no content metadata" })
        throw new F.EnvelopeRefused({ _tag: "Malformed", detail: "a V3 instruction file needs x-amz-c, x-amz-d and x-amz-i in the object's metadata" })
      },
      catch: (e) => refusal(key, e)
    })
    return { envelope, instruction: instr, instructionEtag: instruction.value.etag }
  })

/**
 * Rewrites an instruction file only over the version that was read (`ifMatch` its etag): if another
 * writer replaced the object and its instruction file meanwhile, nothing is written and the re-key
 * fails with `PreconditionFailed`, rather than pairing the new object with a rewrap of the old data key.
 */
const rewriteInstructionFile = (
  store: Store,
  key: string,
  target: string,
  fields: Record<string, string>,
  ifMatch: string | undefined
): Effect.Effect<ObjectStore.PutResult, StoreError | UnsupportedMode> =>
  store.put(target, Stream.succeed(F.encodeInstructionFile(fields)), {
    contentType: "application/json",
    ...(ifMatch === undefined ? {} : { ifMatch })
  }).pipe(
    Effect.catchTag("PreconditionFailed", () =>
      Effect.fail(
        new PreconditionFailed({
          key,
          reason: `the instruction file ${target} changed during the re-key (the object was replaced or re-keyed by another writer); nothing was written`
        })
      ))
  )

/** Applies the commitment policy and the legacy opt-ins before any key is touched. */
const checkPolicy = (key: string, env: F.Envelope, options: ReadOptions): Effect.Effect<void, DecryptError> => {
  if (env.cekAlg === F.CEK_CBC && options.enableLegacyUnauthenticatedModes !== true) {
    return Effect.fail(decryptError(
      key,
      "UnknownFormat",
      `the object uses ALG_AES_256_CBC_IV16_NO_KDF (${F.CEK_CBC}), a legacy unauthenticated mode: enable legacy unauthenticated modes to read it`
    ))
  }
  if (F.isLegacyWrap(env.wrapAlg) && options.enableLegacyWrappingAlgorithms !== true) {
    return Effect.fail(decryptError(key, "UnknownFormat", `the data key uses the legacy wrapping algorithm ${env.wrapAlg}: enable legacy wrapping algorithms to read it`))
  }
  if (env.version !== "V3" && (options.commitmentPolicy ?? DEFAULT_COMMITMENT_POLICY) === "RequireEncryptRequireDecrypt") {
    return Effect.fail(decryptError(
      key,
      "UnknownFormat",
      `the object is in the ${env.version} format, without key commitment; the commitment policy RequireEncryptRequireDecrypt forbids reading it (use RequireEncryptAllowDecrypt)`
    ))
  }
  return Effect.void
}

type Candidate = { readonly _tag: "Aes"; readonly material: Uint8Array } | { readonly _tag: "Rsa"; readonly privateKey: crypto.KeyObject }

const candidates = (env: F.Envelope, materials: Materials): Effect.Effect<ReadonlyArray<Candidate>> =>
  Effect.gen(function*() {
    const rsa = F.isRsaWrap(env.wrapAlg)
    const out: Array<Candidate> = []
    for (const k of materials.keys ?? []) {
      if (k._tag === "Aes" && !rsa) out.push({ _tag: "Aes", material: Redacted.value(k.material) })
      if (k._tag === "Private" && rsa && Redacted.value(k.privateKey).asymmetricKeyType === "rsa") {
        out.push({ _tag: "Rsa", privateKey: Redacted.value(k.privateKey) })
      }
    }
    const id = env.matdesc[KeyStoreDescription.id]
    const version = Number(env.matdesc[KeyStoreDescription.version])
    if (materials.keyStore !== undefined && id !== undefined && Number.isSafeInteger(version)) {
      const resolved = yield* Effect.option(materials.keyStore.resolveId(id, version))
      if (Option.isSome(resolved)) {
        const r = resolved.value
        if (r._tag === "Symmetric" && !rsa) out.push({ _tag: "Aes", material: Redacted.value(r.material) })
        if (r._tag === "KeyPair" && rsa) out.push({ _tag: "Rsa", privateKey: Redacted.value(r.privateKey) })
      }
    }
    return out
  })

const kmsFailure = (key: string, e: KmsError): DecryptError =>
  e.reason === "ContextMismatch"
    ? decryptError(key, "ContextMismatch", "the KMS refused the encryption context")
    : e.reason === "InvalidCiphertext"
    ? decryptError(key, "WrongKey", "the KMS could not decrypt the data key")
    : decryptError(key, "NoUsableKey", `KMS ${e.reason}`)

/** Recovers the plaintext data key; for V3 also checks the key commitment (in constant time). */
const unwrap = (key: string, env: F.Envelope, options: ReadOptions): Effect.Effect<Uint8Array, DecryptError> =>
  Effect.gen(function*() {
    const materials = options.materials
    let dataKey: Uint8Array | undefined
    if (env.wrapAlg === "kms+context" || env.wrapAlg === "kms") {
      if (materials.kms === undefined) return yield* decryptError(key, "NoUsableKey", `the data key is wrapped with ${env.wrapAlg} and no KMS is configured`)
      const ctx = env.kmsContext
      if (env.wrapAlg === "kms+context") {
        if (ctx[F.CEK_CONTEXT_KEY] !== env.cekAlg) {
          return yield* decryptError(key, "ContextMismatch", `the encryption context's ${F.CEK_CONTEXT_KEY} does not name the content algorithm`)
        }
        const stored = { ...ctx }
        delete stored[F.CEK_CONTEXT_KEY]
        delete stored[F.KMS_CMK_CONTEXT_KEY]
        if (!sameMap(stored, options.kmsContext ?? {})) {
          return yield* decryptError(key, "ContextMismatch", "the object's encryption context differs from the one expected")
        }
      }
      const r = yield* materials.kms.decrypt(env.encryptedDataKey, ctx, materials.kmsKeyId).pipe(Effect.mapError((e) => kmsFailure(key, e)))
      dataKey = Redacted.value(r.plaintext)
    } else {
      const list = yield* candidates(env, materials)
      if (list.length === 0) return yield* decryptError(key, "NoUsableKey", `no ${F.isRsaWrap(env.wrapAlg) ? "RSA private" : "AES"} key to unwrap the data key`)
      let cekMismatch = false
      let uncommitted = false
      for (const c of list) {
        let opened: Uint8Array | "cek" | undefined
        if (c._tag === "Rsa") {
          opened = env.wrapAlg === "RSA-OAEP-SHA1"
            ? F.unwrapRsaOaepSha1(c.privateKey, env.encryptedDataKey, env.cekAlg)
            : env.wrapAlg === "RSA"
            ? F.unwrapRsaPkcs1(c.privateKey, env.encryptedDataKey)
            : F.unwrapRsaOaepSha256Mgf1Sha1(c.privateKey, env.encryptedDataKey)
        } else if (env.wrapAlg === "AES/GCM") opened = F.unwrapAesGcm(c.material, env.encryptedDataKey, env.cekAlg)
        else if (env.wrapAlg === "AESWrap") opened = F.unwrapAesKw(c.material, env.encryptedDataKey)
        else opened = F.unwrapAesEcb(c.material, env.encryptedDataKey)
        if (opened === "cek") cekMismatch = true
        else if (opened !== undefined) {
          if (env.version !== "V3" || F.commitmentMatches(opened, env.messageId!, env.commitment!)) {
            dataKey = opened
            break
          }
          uncommitted = true
        }
      }
      if (dataKey === undefined) {
        return yield* uncommitted
          ? decryptError(key, "CommitmentMismatch", "the data key does not match the object's key commitment")
          : cekMismatch
          ? decryptError(key, "Tampered", "the wrapped data key names another content algorithm")
          : decryptError(key, "WrongKey", `none of the ${list.length} key(s) opens the data key`)
      }
    }
    if (dataKey.length !== F.KEY_LENGTH) return yield* decryptError(key, "MalformedMetadata", "the data key is not 256 bits")
    if (env.version === "V3" && !F.commitmentMatches(dataKey, env.messageId!, env.commitment!)) {
      return yield* decryptError(key, "CommitmentMismatch", "the data key does not match the object's key commitment")
    }
    return dataKey
  })

/** The content key and IV (V3: derived key, zero IV, AAD = suite id). */
const contentKey = (env: F.Envelope, dataKey: Uint8Array): { readonly key: Uint8Array; readonly iv: Uint8Array; readonly aad?: Uint8Array } =>
  env.version === "V3"
    ? { key: F.deriveV3(dataKey, env.messageId!).key, iv: Buffer.alloc(F.GCM_IV_LENGTH), aad: F.SUITE_V3_ID }
    : { key: dataKey, iv: env.iv! }

// ---------------------------------------------------------------------------------------------
// put
// ---------------------------------------------------------------------------------------------

/**
 * Encrypts a stream into an object in the V3 format (or V2 under `ForbidEncryptAllowDecrypt`),
 * with its content metadata in the object's metadata or in `<key>.instruction`. A ciphertext of
 * up to `partSize` bytes is stored with one `put`; a larger or unknown-length one through the
 * store's multipart API: parts are cut in order from the object's single GCM stream and uploaded
 * `concurrency` at a time (memory ≈ (concurrency + 2) × partSize); any failure or interruption
 * aborts the upload and removes the instruction file, so nothing partial remains.
 *
 * @since 0.1.0
 * @category encryption
 */
export const put = <E>(
  store: Store,
  key: string,
  body: Stream.Stream<Uint8Array, E>,
  options: PutOptions
): Effect.Effect<PutResult, StoreError | UnsupportedMode | EncryptError | E> =>
  Effect.gen(function*() {
    const policy = options.commitmentPolicy ?? DEFAULT_COMMITMENT_POLICY
    const v3 = policy !== "ForbidEncryptAllowDecrypt"
    const cekAlg = v3 ? F.CEK_V3 : F.CEK_GCM
    const fail = (reason: string) => Effect.fail(new EncryptError({ key, reason }))
    for (const name of Object.keys(options.metadata ?? {})) {
      if (F.ALL_NAMES.has(name) || name.startsWith("x-amz-")) return yield* fail(`user metadata may not use the reserved name ${name}`)
    }
    const length = options.contentLength
    if (length !== undefined && (!Number.isSafeInteger(length) || length < 0 || length > GCM_MAX_PLAINTEXT)) {
      return yield* fail("the content length is invalid or exceeds AES-GCM's limit")
    }
    const w = options.wrapping
    if (w._tag !== "KmsContext" && options.kmsContext !== undefined) return yield* fail("a KMS encryption context needs kms+context wrapping")
    if (options.kmsContext !== undefined && Object.prototype.hasOwnProperty.call(options.kmsContext, F.CEK_CONTEXT_KEY)) {
      return yield* fail(`${F.CEK_CONTEXT_KEY} is reserved for the S3 Encryption Client`)
    }

    const random = yield* FiberRef.get(F.currentRandom)
    let dataKey: Uint8Array
    let edk: Uint8Array
    let wrapName: string
    let description: Record<string, string>
    if (w._tag === "KmsContext") {
      description = { ...options.kmsContext, [F.CEK_CONTEXT_KEY]: cekAlg }
      const dk = yield* w.kms.generateDataKey(w.keyId, description).pipe(
        Effect.mapError((e) => new EncryptError({ key, reason: `KMS ${e.reason} for key ${w.keyId}` }))
      )
      dataKey = Redacted.value(dk.plaintext)
      if (dataKey.length !== F.KEY_LENGTH) return yield* fail("the KMS returned a data key that is not 256 bits")
      edk = dk.ciphertext
      wrapName = "kms+context"
    } else {
      dataKey = Buffer.from(random(F.KEY_LENGTH))
      description = { ...w.description }
      if (w._tag === "AesGcm") {
        edk = F.wrapAesGcm(Redacted.value(w.material), dataKey, cekAlg, random(F.GCM_IV_LENGTH))
        wrapName = "AES/GCM"
      } else {
        edk = F.wrapRsaOaepSha1(w.publicKey, dataKey, cekAlg)
        wrapName = "RSA-OAEP-SHA1"
      }
    }

    let content: { key: Uint8Array; iv: Uint8Array; aad?: Uint8Array }
    let keyMeta: Record<string, string>
    let objectMeta: Record<string, string>
    if (v3) {
      const messageId = random(F.MESSAGE_ID_LENGTH)
      const derived = F.deriveV3(dataKey, messageId)
      content = { key: derived.key, iv: Buffer.alloc(F.GCM_IV_LENGTH), aad: F.SUITE_V3_ID }
      keyMeta = {
        [F.Names.encryptedDataKeyV3]: b64(edk),
        [F.Names.wrapAlgV3]: F.V3_WRAP_NAMES[wrapName]!,
        [w._tag === "KmsContext" ? F.Names.contextV3 : F.Names.matdescV3]: JSON.stringify(description)
      }
      objectMeta = {
        [F.Names.contentCipherV3]: F.CEK_V3,
        [F.Names.commitmentV3]: b64(derived.commitment),
        [F.Names.messageIdV3]: b64(messageId)
      }
    } else {
      const iv = random(F.GCM_IV_LENGTH)
      content = { key: dataKey, iv }
      keyMeta = {
        [F.Names.keyV2]: b64(edk),
        [F.Names.iv]: b64(iv),
        [F.Names.matdesc]: JSON.stringify(description),
        [F.Names.wrapAlg]: wrapName,
        [F.Names.cekAlg]: F.CEK_GCM,
        [F.Names.tagLen]: "128",
        ...(length === undefined ? {} : { [F.Names.unencryptedLength]: String(length) })
      }
      objectMeta = {}
    }

    const useInstruction = options.instructionFile === true
    const metadata = useInstruction ? { ...options.metadata, ...objectMeta } : { ...options.metadata, ...keyMeta, ...objectMeta }
    const partSize = choosePartSize(store.limits, length, options.partSize)
    if (typeof partSize === "string") return yield* fail(partSize)
    const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) return yield* fail("concurrency must be a positive integer")
    if (useInstruction) {
      yield* store.put(key + F.INSTRUCTION_SUFFIX, Stream.succeed(F.encodeInstructionFile(keyMeta)), { contentType: "application/json" })
    }

    let plaintextSize = 0
    // One GCM stream over the whole object: the parts are cut from it in order, so only their
    // uploads can run concurrently.
    const encrypted = Stream.suspend(() => {
      const c = crypto.createCipheriv("aes-256-gcm", content.key, content.iv)
      if (content.aad !== undefined) c.setAAD(content.aad)
      return body.pipe(
        Stream.map((chunk) => {
          plaintextSize += chunk.length
          return c.update(chunk) as Uint8Array
        }),
        Stream.filter((b) => b.length > 0),
        Stream.concat(Stream.suspend(() => {
          if (length !== undefined && plaintextSize !== length) {
            return Stream.fail(new EncryptError({ key, reason: `the body has ${plaintextSize} bytes, not the ${length} announced` }))
          }
          if (plaintextSize > GCM_MAX_PLAINTEXT) return Stream.fail(new EncryptError({ key, reason: "the body exceeds AES-GCM's limit" }))
          return Stream.succeed(Buffer.concat([c.final(), c.getAuthTag()]) as Uint8Array)
        }))
      )
    })
    const upload = Effect.scoped(Effect.gen(function*() {
      // Parts are lists of the cipher's own output buffers (sliced at part boundaries, never
      // copied), pulled one at a time.
      const pull = yield* Stream.toPull(Stream.rechunk(groupParts(encrypted, partSize), 1))
      const next = pull.pipe(
        Effect.map((c) => Option.some(Chunk.unsafeHead(c))),
        Effect.catchAll((o) => Option.isNone(o) ? Effect.succeed(Option.none<Part>()) : Effect.fail(o.value))
      )
      const first = yield* next
      const second = Option.isSome(first) && first.value.size === partSize ? yield* next : Option.none<Part>()
      if (Option.isNone(first) || Option.isNone(second)) {
        const part = Option.getOrElse(first, () => ({ chunks: [], size: 0 }))
        const r = yield* store.put(key, Stream.fromIterable(part.chunks), { contentLength: part.size, contentType: options.contentType, metadata })
        return { ...r, parts: 1 }
      }
      return yield* Effect.acquireUseRelease(
        store.createMultipart(key, { contentType: options.contentType, metadata }),
        (mpu) =>
          Effect.gen(function*() {
            let count = 2
            const rest = Stream.repeatEffectOption(Effect.flatMap(Effect.mapError(next, Option.some), (o) => {
              if (Option.isNone(o)) return Effect.fail(Option.none())
              if (++count > store.limits.maxParts) {
                return Effect.fail(Option.some(new EncryptError({ key, reason: `the body needs more than ${store.limits.maxParts} parts of ${partSize} bytes: give contentLength or a larger partSize` })))
              }
              return Effect.succeed(o.value)
            }))
            const parts = yield* Stream.fromIterable([first.value, second.value]).pipe(
              Stream.concat(rest),
              Stream.zipWithIndex,
              Stream.mapEffect(([part, i]) => store.uploadPart(mpu, i + 1, Stream.fromIterable(part.chunks), { contentLength: part.size }), { concurrency }),
              Stream.runCollect
            )
            const sorted = Chunk.toReadonlyArray(parts).slice().sort((a, b) => a.partNumber - b.partNumber)
            const r = yield* store.completeMultipart(mpu, sorted)
            return { ...r, parts: sorted.length }
          }),
        (mpu, exit) => Exit.isSuccess(exit) ? Effect.void : Effect.ignore(store.abortMultipart(mpu))
      )
    }))
    const result = yield* upload.pipe(
      Effect.onError(() => useInstruction ? Effect.ignore(store.remove(key + F.INSTRUCTION_SUFFIX)) : Effect.void),
      Effect.ensuring(Effect.sync(() => {
        dataKey.fill(0)
        content.key.fill(0)
      }))
    )
    return {
      ...result,
      format: v3 ? "V3" as const : "V2" as const,
      plaintextSize,
      location: useInstruction ? "instruction" as const : "metadata" as const
    }
  })

interface Part {
  readonly chunks: ReadonlyArray<Uint8Array>
  readonly size: number
}

/** Groups a byte stream into parts of exactly `size` bytes (the last one shorter) by reference. */
const groupParts = <E>(body: Stream.Stream<Uint8Array, E>, size: number): Stream.Stream<Part, E> =>
  Stream.suspend(() => {
    let chunks: Array<Uint8Array> = []
    let n = 0
    return body.pipe(
      Stream.mapConcat((chunk) => {
        const out: Array<Part> = []
        let off = 0
        while (off < chunk.length) {
          const take = Math.min(size - n, chunk.length - off)
          chunks.push(off === 0 && take === chunk.length ? chunk : chunk.subarray(off, off + take))
          n += take
          off += take
          if (n === size) {
            out.push({ chunks, size })
            chunks = []
            n = 0
          }
        }
        return out
      }),
      Stream.concat(Stream.suspend(() => (n > 0 ? Stream.make({ chunks, size: n }) : Stream.empty)))
    )
  })

/** Ciphertext bytes per part: the store's limits, then enough parts for a known length; an error text otherwise. */
const choosePartSize = (limits: ObjectStore.StoreLimits, length: number | undefined, requested: number | undefined): number | string => {
  if (requested !== undefined) {
    if (!Number.isSafeInteger(requested) || requested < Math.max(1, limits.minPartSize) || requested > limits.maxPartSize) {
      return `partSize must be an integer between ${Math.max(1, limits.minPartSize)} and ${limits.maxPartSize}`
    }
  }
  const base = requested ?? Math.min(limits.maxPartSize, Math.max(DEFAULT_PART_SIZE, limits.minPartSize))
  if (length === undefined) return base
  const needed = Math.ceil((length + F.TAG_LENGTH) / limits.maxParts)
  if (needed > limits.maxPartSize) return `an object of ${length} bytes does not fit in ${limits.maxParts} parts`
  return Math.max(base, needed)
}

// ---------------------------------------------------------------------------------------------
// get
// ---------------------------------------------------------------------------------------------

/**
 * Runs the single-tag GCM check over a ciphertext stream, handing plaintext to `sink` as it is
 * decrypted (held by the caller until the tag verifies).
 */
const verifyPass = <R>(
  key: string,
  body: Stream.Stream<Uint8Array, StoreError>,
  decipher: crypto.DecipherGCM,
  sink: (plaintext: Uint8Array) => Effect.Effect<void, StoreError | ProviderError, R>
): Effect.Effect<number, StoreError | DecryptError | ProviderError, R> =>
  Effect.gen(function*() {
    let tail: Buffer = Buffer.alloc(0)
    let total = 0
    yield* Stream.runForEach(body, (chunk) => {
      total += chunk.length
      if (chunk.length >= F.TAG_LENGTH) {
        const a = tail.length > 0 ? decipher.update(tail) : undefined
        const b = decipher.update(chunk.subarray(0, chunk.length - F.TAG_LENGTH))
        tail = Buffer.from(chunk.subarray(chunk.length - F.TAG_LENGTH))
        const out = a === undefined || a.length === 0 ? b : b.length === 0 ? a : Buffer.concat([a, b])
        return out.length > 0 ? sink(out) : Effect.void
      }
      const joined = Buffer.concat([tail, chunk])
      const cut = Math.max(0, joined.length - F.TAG_LENGTH)
      tail = Buffer.from(joined.subarray(cut))
      if (cut === 0) return Effect.void
      const out = decipher.update(joined.subarray(0, cut))
      return out.length > 0 ? sink(out) : Effect.void
    })
    if (total < F.TAG_LENGTH) return yield* decryptError(key, "Truncated", "the object is shorter than its GCM tag")
    const last = yield* Effect.try({
      try: () => {
        decipher.setAuthTag(tail)
        return decipher.final()
      },
      catch: () => decryptError(key, "Tampered", "the GCM tag does not verify: the object or its content metadata was modified")
    })
    if (last.length > 0) yield* sink(last)
    return total - F.TAG_LENGTH
  })

const makeDecipher = (c: { readonly key: Uint8Array; readonly iv: Uint8Array; readonly aad?: Uint8Array | undefined }): crypto.DecipherGCM => {
  const d = crypto.createDecipheriv("aes-256-gcm", c.key, c.iv)
  if (c.aad !== undefined) d.setAAD(c.aad)
  return d
}

/**
 * Opens an S3EC object: finds its content metadata, applies the commitment policy and legacy
 * opt-ins, unwraps the data key, checks the V3 key commitment, then returns a body that releases
 * no plaintext until the object's GCM tag has verified (see `docs/S3EC.md`: objects up to
 * `bufferSize` are verified in memory, larger ones through the `Spool` service, which the caller
 * provides: `layerNodeSpool()` or `layerNoSpool`).
 *
 * @since 0.1.0
 * @category decryption
 */
export const get = (
  store: Store,
  key: string,
  options: GetOptions
): Effect.Effect<DecryptedObject, StoreError | DecryptError | InvalidEncryptionParameters, Scope.Scope | Spool> =>
  Effect.gen(function*() {
    const spool = yield* Spool
    const range = options.range
    if (range !== undefined && options.unauthenticatedRanges !== true) {
      return yield* new InvalidEncryptionParameters({
        detail: "ranged reads of S3 Encryption Client objects are not authenticated: pass unauthenticatedRanges: true to allow them"
      })
    }
    const suffix = options.instructionFileSuffix ?? F.INSTRUCTION_SUFFIX
    const opened = range === undefined ? yield* store.get(key) : undefined
    const info = opened?.info ?? (yield* store.head(key))
    const { envelope: env } = yield* loadEnvelope(store, key, info.metadata, suffix)
    yield* checkPolicy(key, env, options)
    const dataKey = yield* unwrap(key, env, options)

    if (env.cekAlg === F.CEK_CBC) {
      if (opened === undefined) return yield* new InvalidEncryptionParameters({ detail: "ranged reads of legacy AES-CBC objects are not supported" })
      const d = crypto.createDecipheriv("aes-256-cbc", dataKey, env.iv!)
      const body = opened.body.pipe(
        Stream.map((c) => d.update(c) as Uint8Array),
        Stream.concat(Stream.suspend(() => {
          try {
            return Stream.succeed(d.final() as Uint8Array)
          } catch {
            return Stream.fail(decryptError(key, "Tampered", "bad AES-CBC padding: the object or its key was modified"))
          }
        })),
        Stream.filter((b) => b.length > 0)
      )
      return { info, format: env.version, plaintextSize: env.unencryptedLength ?? Math.max(0, info.size - 1), body }
    }

    if (info.size < F.TAG_LENGTH) return yield* decryptError(key, "Truncated", "the object is shorter than its GCM tag")
    const plaintextSize = info.size - F.TAG_LENGTH
    if (env.unencryptedLength !== undefined && env.unencryptedLength !== plaintextSize) {
      return yield* decryptError(
        key,
        env.unencryptedLength > plaintextSize ? "Truncated" : "TrailingData",
        `the object holds ${plaintextSize} plaintext bytes, its metadata says ${env.unencryptedLength}`
      )
    }
    const content = contentKey(env, dataKey)

    if (opened === undefined) {
      const resolved = ObjectStore.resolveRange(range!, plaintextSize)
      if (Option.isNone(resolved)) return yield* new InvalidRange({ key, range: ObjectStore.formatRange(range!), size: plaintextSize })
      const { start, end } = resolved.value
      const block = Math.floor(start / 16)
      const obj = yield* store.get(key, { range: ObjectStore.range.bounded(block * 16, end - 1) })
      if (obj.info.etag !== info.etag) return yield* new PreconditionFailed({ key, reason: "the object changed while it was being read" })
      const d = crypto.createDecipheriv("aes-256-ctr", content.key, F.gcmCounter(content.iv, block))
      let skip = start - block * 16
      const body = obj.body.pipe(
        Stream.map((c) => {
          let out = d.update(c)
          if (skip > 0) {
            const n = Math.min(skip, out.length)
            out = out.subarray(n)
            skip -= n
          }
          return out as Uint8Array
        }),
        Stream.filter((b) => b.length > 0)
      )
      return { info, format: env.version, plaintextSize, range: resolved.value, body }
    }

    if (options.delayedAuthentication === true) {
      const body = Stream.unwrap(Effect.sync(() => {
        const d = makeDecipher(content)
        let tail: Buffer = Buffer.alloc(0)
        let total = 0
        return opened.body.pipe(
          Stream.map((chunk) => {
            total += chunk.length
            const joined = tail.length === 0 ? Buffer.from(chunk) : Buffer.concat([tail, chunk])
            const cut = Math.max(0, joined.length - F.TAG_LENGTH)
            tail = Buffer.from(joined.subarray(cut))
            return d.update(joined.subarray(0, cut)) as Uint8Array
          }),
          Stream.concat(Stream.suspend(() => {
            if (total < F.TAG_LENGTH) return Stream.fail(decryptError(key, "Truncated", "the object is shorter than its GCM tag"))
            try {
              d.setAuthTag(tail)
              return Stream.succeed(d.final() as Uint8Array)
            } catch {
              return Stream.fail(decryptError(key, "Tampered", "the GCM tag does not verify (plaintext was already released: delayed authentication)"))
            }
          })),
          Stream.filter((b) => b.length > 0)
        )
      }))
      return { info, format: env.version, plaintextSize, body }
    }

    const bufferSize = options.bufferSize ?? DEFAULT_BUFFER_SIZE
    const body: Stream.Stream<Uint8Array, StoreError | DecryptError> = info.size <= bufferSize
      ? Stream.unwrap(Effect.gen(function*() {
        const pieces: Array<Uint8Array> = []
        yield* verifyPass(key, opened.body, makeDecipher(content), (p) => Effect.sync(() => void pieces.push(p)))
        return Stream.fromIterable(pieces)
      }))
      : Stream.unwrapScoped(Effect.gen(function*() {
        const sealed = SealedSpool.seal(key, yield* spool.open)
        yield* verifyPass(key, opened.body, makeDecipher(content), sealed.write)
        return sealed.read
      }))
    return { info, format: env.version, plaintextSize, body }
  })

/**
 * Decrypts a whole object (or range) into memory (small objects, tests).
 *
 * @since 0.1.0
 * @category decryption
 */
export const getBytes = (
  store: Store,
  key: string,
  options: GetOptions
): Effect.Effect<Uint8Array, StoreError | DecryptError | InvalidEncryptionParameters, Spool> =>
  Effect.scoped(Effect.flatMap(get(store, key, options), (o) => Effect.map(Stream.runCollect(o.body), ObjectStore.concat)))

// ---------------------------------------------------------------------------------------------
// Inspection, deletion, re-encryption
// ---------------------------------------------------------------------------------------------

/**
 * True when an object's metadata carries S3EC content metadata (an object whose content metadata
 * is only in an instruction file is found by `readEnvelope`).
 *
 * @since 0.1.0
 * @category inspection
 */
export const isS3ec = (info: ObjectStore.ObjectInfo): boolean => {
  try {
    return F.detect(info.metadata) !== "none"
  } catch {
    return true
  }
}

/**
 * Reads and summarizes an object's content metadata (object metadata or instruction file).
 *
 * @since 0.1.0
 * @category inspection
 */
export const readEnvelope = (
  store: Store,
  key: string,
  options?: { readonly instructionFileSuffix?: string | undefined }
): Effect.Effect<EnvelopeSummary, StoreError | DecryptError> =>
  Effect.gen(function*() {
    const info = yield* store.head(key)
    const { envelope: env } = yield* loadEnvelope(store, key, info.metadata, options?.instructionFileSuffix ?? F.INSTRUCTION_SUFFIX)
    return {
      format: "aws-s3ec" as const,
      version: env.version,
      location: env.location,
      wrapAlgorithm: env.wrapAlg,
      contentAlgorithm: env.cekAlg === F.CEK_V3 ? "ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY" : env.cekAlg,
      keyCommitment: env.version === "V3",
      legacy: env.cekAlg === F.CEK_CBC || F.isLegacyWrap(env.wrapAlg),
      materialDescription: env.wrapAlg === "kms+context" ? {} : env.matdesc,
      kmsContext: env.kmsContext,
      plaintextSize: env.cekAlg === F.CEK_CBC ? env.unencryptedLength : Math.max(0, info.size - F.TAG_LENGTH)
    }
  })

/**
 * Deletes an object and its default instruction file (S3EC DeleteObject semantics).
 *
 * @since 0.1.0
 * @category operations
 */
export const remove = (store: Store, key: string): Effect.Effect<void, StoreError> =>
  Effect.zipRight(store.remove(key), store.remove(key + F.INSTRUCTION_SUFFIX))

/**
 * @since 0.1.0
 * @category models
 */
export interface ReEncryptOptions extends ReadOptions {
  /** The new wrapping of the data key. */
  readonly wrapping: Wrapping
  /** Extra KMS encryption context for a new `kms+context` wrapping. */
  readonly newKmsContext?: Readonly<Record<string, string>> | undefined
  /** Where the re-encrypted instruction file is written. @default the suffix it was read from */
  readonly newSuffix?: string | undefined
}

/**
 * Rotation without touching the object: unwraps the data key from the object's instruction file
 * with the current materials (checking the V3 commitment), wraps it with a new key and writes the
 * instruction file again (at `newSuffix`, or over the old one: then only over the version read,
 * with `ifMatch`, failing with `PreconditionFailed` if it was replaced meanwhile).
 *
 * @since 0.1.0
 * @category operations
 */
export const reEncryptInstructionFile = (
  store: Store,
  key: string,
  options: ReEncryptOptions
): Effect.Effect<{ readonly key: string; readonly wrapAlgorithm: string }, StoreError | UnsupportedMode | DecryptError | EncryptError> =>
  Effect.gen(function*() {
    const suffix = options.instructionFileSuffix ?? F.INSTRUCTION_SUFFIX
    const info = yield* store.head(key)
    const { envelope: env, instruction, instructionEtag } = yield* loadEnvelope(store, key, info.metadata, suffix)
    const fail = (reason: string) => Effect.fail(new EncryptError({ key, reason }))
    if (env.location !== "instruction" || instruction === undefined) {
      return yield* fail("the content metadata is in the object's metadata, not in an instruction file")
    }
    if (env.cekAlg === F.CEK_CBC || env.version === "V1") return yield* fail("legacy (V1, AES-CBC) objects cannot be re-encrypted")
    yield* checkPolicy(key, env, options)
    const dataKey = yield* unwrap(key, env, options)
    const next = yield* rewrapped(key, env, instruction, dataKey, options.wrapping, options.newKmsContext).pipe(
      Effect.ensuring(Effect.sync(() => dataKey.fill(0)))
    )
    const targetSuffix = options.newSuffix ?? suffix
    const target = key + targetSuffix
    // Over the file read: only over that very version. Elsewhere: a plain write, as before.
    yield* rewriteInstructionFile(store, key, target, next.fields, targetSuffix === suffix ? instructionEtag : undefined)
    return { key: target, wrapAlgorithm: next.wrapAlgorithm }
  })

/**
 * Wraps a data key anew and returns `fields` (the object's metadata or its instruction file) with
 * the key, wrap and description entries of `env`'s version replaced.
 */
const rewrapped = (
  key: string,
  env: F.Envelope,
  fields: Readonly<Record<string, string>>,
  dataKey: Uint8Array,
  w: Wrapping,
  newKmsContext: Readonly<Record<string, string>> | undefined
): Effect.Effect<{ readonly fields: Record<string, string>; readonly wrapAlgorithm: string; readonly description: Record<string, string> }, EncryptError> =>
  Effect.gen(function*() {
    const fail = (reason: string) => Effect.fail(new EncryptError({ key, reason }))
    if (w._tag !== "KmsContext" && newKmsContext !== undefined) return yield* fail("a KMS encryption context needs kms+context wrapping")
    let edk: Uint8Array
    let wrapName: string
    let description: Record<string, string>
    if (w._tag === "KmsContext") {
      if (newKmsContext !== undefined && Object.prototype.hasOwnProperty.call(newKmsContext, F.CEK_CONTEXT_KEY)) {
        return yield* fail(`${F.CEK_CONTEXT_KEY} is reserved for the S3 Encryption Client`)
      }
      description = { ...newKmsContext, [F.CEK_CONTEXT_KEY]: env.cekAlg }
      const r = yield* w.kms.encrypt(w.keyId, Redacted.make(dataKey), description).pipe(
        Effect.mapError((e) => new EncryptError({ key, reason: `KMS ${e.reason} for key ${w.keyId}` }))
      )
      edk = r.ciphertext
      wrapName = "kms+context"
    } else if (w._tag === "AesGcm") {
      description = { ...w.description }
      edk = F.wrapAesGcm(Redacted.value(w.material), dataKey, env.cekAlg, crypto.randomBytes(F.GCM_IV_LENGTH))
      wrapName = "AES/GCM"
    } else {
      description = { ...w.description }
      edk = F.wrapRsaOaepSha1(w.publicKey, dataKey, env.cekAlg)
      wrapName = "RSA-OAEP-SHA1"
    }
    const next: Record<string, string> = { ...fields }
    if (env.version === "V3") {
      delete next[F.Names.matdescV3]
      delete next[F.Names.contextV3]
      next[F.Names.encryptedDataKeyV3] = b64(edk)
      next[F.Names.wrapAlgV3] = F.V3_WRAP_NAMES[wrapName]!
      next[w._tag === "KmsContext" ? F.Names.contextV3 : F.Names.matdescV3] = JSON.stringify(description)
    } else {
      next[F.Names.keyV2] = b64(edk)
      next[F.Names.wrapAlg] = wrapName
      next[F.Names.matdesc] = JSON.stringify(description)
    }
    return { fields: next, wrapAlgorithm: wrapName, description }
  })

/**
 * @since 0.1.0
 * @category models
 */
export interface RekeyOptions extends ReadOptions {
  /** The new wrapping of the data key. */
  readonly wrapping: Wrapping
  /** Extra KMS encryption context for a new `kms+context` wrapping. */
  readonly newKmsContext?: Readonly<Record<string, string>> | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RekeyResult {
  readonly key: string
  /** Kept as the object had it (a V3 object keeps its message id and key commitment). */
  readonly version: "V2" | "V3"
  readonly location: "metadata" | "instruction"
  /** The wrap before and after. */
  readonly fromWrapAlgorithm: string
  readonly wrapAlgorithm: string
  /** The new material description (`AES/GCM`, `RSA-OAEP-SHA1`) or KMS context (`kms+context`). */
  readonly description: Readonly<Record<string, string>>
}

/**
 * Rewraps an object's data key under another key without touching its body: unwraps it with the
 * current materials (checking the V3 key commitment), wraps it with `wrapping`, and rewrites only
 * the content metadata where it was found — the object's metadata through a same-key `copy`
 * (user metadata and content type kept), or the instruction file (a put with `ifMatch` on the
 * etag of the instruction file read, so one replaced meanwhile fails with `PreconditionFailed` and
 * is not overwritten). V2 stays V2 and V3 stays V3
 * (the data key, hence the commitment, is unchanged). V1 and AES-CBC objects are refused; a
 * legacy wrap (read under `enableLegacyWrappingAlgorithms`) is replaced by the new one. On any
 * failure the object is left as it was.
 *
 * @since 0.1.0
 * @category operations
 */
export const rekey = (
  store: Store,
  key: string,
  options: RekeyOptions
): Effect.Effect<RekeyResult, StoreError | UnsupportedMode | DecryptError | EncryptError> =>
  Effect.gen(function*() {
    const suffix = options.instructionFileSuffix ?? F.INSTRUCTION_SUFFIX
    const info = yield* store.head(key)
    const { envelope: env, instruction, instructionEtag } = yield* loadEnvelope(store, key, info.metadata, suffix)
    if (env.cekAlg === F.CEK_CBC || env.version === "V1") {
      return yield* new EncryptError({ key, reason: "legacy (V1, AES-CBC) objects cannot be re-keyed" })
    }
    yield* checkPolicy(key, env, options)
    const dataKey = yield* unwrap(key, env, options)
    const inInstruction = env.location === "instruction" && instruction !== undefined
    const next = yield* rewrapped(key, env, inInstruction ? instruction : info.metadata, dataKey, options.wrapping, options.newKmsContext).pipe(
      Effect.ensuring(Effect.sync(() => dataKey.fill(0)))
    )
    if (inInstruction) {
      // Only over the instruction file the data key was read from: a concurrent replacement fails the put.
      yield* rewriteInstructionFile(store, key, key + suffix, next.fields, instructionEtag)
    } else {
      // Only onto the body the envelope was read from: a concurrent rewrite fails the copy.
      yield* store.copy(key, key, { metadata: next.fields, contentType: info.contentType, ifSourceMatch: info.etag })
    }
    return {
      key,
      version: env.version,
      location: inInstruction ? "instruction" as const : "metadata" as const,
      fromWrapAlgorithm: env.wrapAlg,
      wrapAlgorithm: next.wrapAlgorithm,
      description: next.description
    }
  })
