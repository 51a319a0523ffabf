/**
 * The client-side formats the CLI writes and reads: objcrypt's native segmented format (the
 * default), the AWS S3 Encryption Client formats V2/V3 (`s3ec-v2`, `s3ec-v3`, for `s3://`) and
 * Azure Blob client-side encryption v2 (`azure-v2`, for `az://`). Reads detect the format from the
 * object's metadata; writes check the format against the destination and the mode before any byte
 * is read or sent.
 *
 * @since 0.1.0
 */
import { Effect, Option } from "effect"
import * as Encryption from "@objcrypt/core/Encryption"
import type * as EncryptionMode from "@objcrypt/core/EncryptionMode"
import { nameOf, type ModeName } from "@objcrypt/core/EncryptionMode"
import { DecryptError, KeyUnusable } from "@objcrypt/core/Errors"
import type { KeyNotFound, KeyStoreError, StoreError } from "@objcrypt/core/Errors"
import { KeyStore, type ResolvedKey } from "@objcrypt/core/KeyStore"
import type { Kms } from "@objcrypt/core/Kms"
import type * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as S3EC from "@objcrypt/core/S3EncryptionClient"
import type * as AzureCse from "@objcrypt/driver-azure/AzureClientSideEncryption"
import { UnsupportedFormat } from "./CliError.js"
import * as EndpointsConfig from "./EndpointsConfig.js"
import type * as StoreUrl from "./StoreUrl.js"

type Store = ObjectStore.ObjectStore["Type"]

/**
 * driver-azure's client-side encryption, loaded only when an Azure-encrypted object is met (the
 * CLI loads drivers lazily to keep start-up fast).
 *
 * @since 0.1.0
 * @category loading
 */
export const azureCse: Effect.Effect<typeof AzureCse> = Effect.promise(() => import("@objcrypt/driver-azure/AzureClientSideEncryption"))

/** Azure's metadata entry (`AzureClientSideEncryption.METADATA_KEY`), as the Azure SDKs name it. */
const AZURE_METADATA_KEY = "encryptiondata"

/**
 * The formats `cp --format` accepts.
 *
 * @since 0.1.0
 * @category models
 */
export const formatNames = EndpointsConfig.ClientFormat.literals

/**
 * @since 0.1.0
 * @category models
 */
export type FormatName = (typeof formatNames)[number]

/**
 * The client-side format an object was found in.
 *
 * @since 0.1.0
 * @category models
 */
export type Found = "native" | "aws-s3ec" | "azure-cse"

/**
 * What an object's metadata says about how it is encrypted, without any key.
 *
 * @since 0.1.0
 * @category models
 */
export interface Detection {
  /** `undefined`: not client-side encrypted (server-side modes only). */
  readonly format: Found | undefined
  readonly mode: ModeName | "unknown"
  /** The plaintext size when it can be told from the metadata and the stored size. */
  readonly plaintextSize: number | undefined
  /** Set for the S3 Encryption Client format. */
  readonly s3ec?: S3EC.EnvelopeSummary | undefined
  /** Set for Azure client-side encryption. */
  readonly azure?: AzureCse.EncryptionData | undefined
  /** Why the envelope could not be read. */
  readonly problem?: DecryptError | undefined
}

const sseName = (m: ObjectStore.ServerEncryptionInfo["mode"]): ModeName | "unknown" =>
  m === "None" ? "none" : m === "SseS3" ? "sse-s3" : m === "SseKms" ? "sse-kms" : m === "SseC" ? "sse-c" : "unknown"

/**
 * Whether the metadata carries Azure's `encryptiondata` entry.
 *
 * @since 0.1.0
 * @category detection
 */
export const isAzureCse = (info: ObjectStore.ObjectInfo): boolean =>
  Object.keys(info.metadata).some((k) => k.toLowerCase() === AZURE_METADATA_KEY)

/** A view of `store` whose `head` of `info.key` answers from `info` (no second request). */
const knowing = (store: Store, info: ObjectStore.ObjectInfo): Store => ({
  ...store,
  head: (key, options) => (key === info.key ? Effect.succeed(info) : store.head(key, options))
})

/**
 * Classifies an object from its head (an S3EC object with its content metadata in an instruction
 * file costs one more read).
 *
 * @since 0.1.0
 * @category detection
 */
export const detect = (
  store: Store,
  info: ObjectStore.ObjectInfo,
  options?: {
    /** Also look for `<key>.instruction` (S3EC content metadata kept only in an instruction file): one more head. */
    readonly instructionFiles?: boolean | undefined
  }
): Effect.Effect<Detection, StoreError> =>
  Effect.gen(function*() {
    const native = Encryption.classify(info)
    if (native.problem !== undefined) return { format: "native", mode: "unknown", plaintextSize: undefined, problem: native.problem }
    if (native.clientSide !== undefined) {
      return {
        format: "native",
        mode: native.mode === "Unknown" ? "unknown" : nameOf(native.mode),
        plaintextSize: native.clientSide.plaintextSize
      }
    }
    if (isAzureCse(info)) {
      const AzureCse = yield* azureCse
      const parsed = yield* Effect.either(AzureCse.parseEncryptionData(info.key, info.metadata))
      if (parsed._tag === "Left") return { format: "azure-cse", mode: "unknown", plaintextSize: undefined, problem: parsed.left }
      const size = AzureCse.plaintextLength(info.size, parsed.right.dataLength)
      return { format: "azure-cse", mode: "cse-c", plaintextSize: Option.getOrUndefined(size), azure: parsed.right }
    }
    const instruction = !S3EC.isS3ec(info) && options?.instructionFiles === true && !info.key.endsWith(S3EC.INSTRUCTION_SUFFIX)
      ? Option.isSome(yield* Effect.option(store.head(info.key + S3EC.INSTRUCTION_SUFFIX)))
      : false
    if (S3EC.isS3ec(info) || instruction) {
      const env = yield* Effect.either(S3EC.readEnvelope(knowing(store, info), info.key))
      if (env._tag === "Left") {
        if (env.left._tag !== "DecryptError") return yield* Effect.fail(env.left)
        return { format: "aws-s3ec", mode: "unknown", plaintextSize: undefined, problem: env.left }
      }
      const kms = env.right.wrapAlgorithm === "kms+context" || env.right.wrapAlgorithm === "kms"
      return { format: "aws-s3ec", mode: kms ? "cse-kms" : "cse-c", plaintextSize: env.right.plaintextSize, s3ec: env.right }
    }
    return { format: undefined, mode: sseName(info.encryption.mode), plaintextSize: info.size }
  })

// ---------------------------------------------------------------------------------------------
// writing
// ---------------------------------------------------------------------------------------------

/**
 * Refuses, before any I/O, a format the destination or the mode cannot take.
 *
 * @since 0.1.0
 * @category writing
 */
export const check = (
  format: FormatName,
  store: StoreUrl.StoreSpec,
  destination: string,
  mode: EncryptionMode.EncryptionMode,
  options?: {
    /** The format is the endpoint's default (`format` in the configuration), not a flag. */
    readonly fromEndpoint?: boolean | undefined
  }
): Effect.Effect<void, UnsupportedFormat> => {
  const kind = store._tag === "S3" ? "s3" : store._tag === "Azure" ? "azure" : store._tag === "Gcs" ? "gcs" : "fs"
  const problem = EndpointsConfig.formatProblem(format, kind, mode)
  return problem === undefined
    ? Effect.void
    : Effect.fail(new UnsupportedFormat({
      format,
      destination,
      reason: options?.fromEndpoint === true ? `${problem} (the endpoint's default format; override it with --format)` : problem
    }))
}

const usable = (ref: EncryptionMode.Of<"CseC">["keys"][number], k: ResolvedKey): Effect.Effect<ResolvedKey, KeyUnusable> =>
  k.info.state !== "enabled"
    ? Effect.fail(new KeyUnusable({ name: ref.name, reason: `the key is ${k.info.state}` }))
    : k.info.purpose === "sse-c"
    ? Effect.fail(new KeyUnusable({ name: ref.name, reason: "an sse-c customer key is not for client-side wrapping" }))
    : k.info.algorithm === "x25519"
    ? Effect.fail(new KeyUnusable({ name: ref.name, reason: "this format wraps with AES or RSA keys, not x25519" }))
    : Effect.succeed(k)

/**
 * The S3EC wrapping of a cse-c key (AES/GCM or RSA-OAEP-SHA1) or a cse-kms key (kms+context).
 *
 * @since 0.1.0
 * @category writing
 */
export const s3ecWrapping = (
  mode: EncryptionMode.Of<"CseC"> | EncryptionMode.Of<"CseKms">,
  keyStore: KeyStore["Type"],
  kms: Kms["Type"]
): Effect.Effect<S3EC.Wrapping, KeyNotFound | KeyStoreError | KeyUnusable> => {
  if (mode._tag === "CseKms") return Effect.succeed(S3EC.kmsContext(kms, mode.keyId))
  const ref = mode.keys[0]
  return keyStore.resolve(ref.name, ref.version).pipe(
    Effect.flatMap((k) => usable(ref, k)),
    Effect.map((k) => S3EC.fromResolvedKey(k))
  )
}

/**
 * The Azure key-encryption key of a cse-c key, from driver-azure's key-store keys
 * (`AzureClientSideEncryption.fromKeyStore`): `A256KW` for AES keys, `RSA-OAEP` for RSA keys (the
 * wrap every Azure SDK reads). The key id recorded is `ID@VERSION`.
 *
 * @since 0.1.0
 * @category writing
 */
export const azureKek = (
  mode: EncryptionMode.Of<"CseC">,
  keyStore: KeyStore["Type"]
): Effect.Effect<AzureCse.KeyEncryptionKey, KeyNotFound | KeyStoreError | KeyUnusable> => {
  const ref = mode.keys[0]
  return Effect.flatMap(azureCse, (Cse) => Cse.fromKeyStore(ref.name, ref.version, { rsaAlgorithm: "RSA-OAEP" })).pipe(
    Effect.provideService(KeyStore, keyStore)
  )
}

/**
 * Finds the key-store key an Azure blob names: `ID@VERSION` as objcrypt writes it (driver-azure's
 * `keyStoreResolver`), else a key-store key *name* (`NAME` or `NAME@VERSION`), as another SDK's
 * `kid` may be.
 *
 * @since 0.1.0
 * @category reading
 */
export const azureResolver = (
  key: string,
  data: AzureCse.EncryptionData,
  keyStore: KeyStore["Type"]
): Effect.Effect<AzureCse.KeyResolver, DecryptError | KeyStoreError> =>
  Effect.gen(function*() {
    const Cse = yield* azureCse
    const byId = yield* Cse.keyStoreResolver.pipe(Effect.provideService(KeyStore, keyStore))
    const found = yield* byId(data.keyId)
    if (Option.isSome(found)) return Cse.resolverOf(found.value)
    const m = /^(.+)@(\d+)$/.exec(data.keyId)
    const byName = yield* Effect.either(
      Cse.fromKeyStore(m === null ? data.keyId : m[1]!, m === null ? undefined : Number(m[2])).pipe(
        Effect.provideService(KeyStore, keyStore)
      )
    )
    if (byName._tag === "Right") return Cse.resolverOf({ ...byName.right, keyId: data.keyId })
    if (byName.left._tag === "KeyStoreError") return yield* Effect.fail(byName.left)
    return yield* new DecryptError({ reason: "NoUsableKey", key, detail: `no key in the key store for the key id ${JSON.stringify(data.keyId)}` })
  })
