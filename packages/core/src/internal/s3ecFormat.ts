/**
 * The byte-level parts of the AWS S3 Encryption Client formats (V1 read, V2 and V3 read/write):
 * content-metadata names and values, key wrapping, key derivation and commitment. Specified in
 * `docs/S3EC.md`. Not exported from any public module.
 *
 * @since 0.1.0
 * @internal
 */
import { FiberRef } from "effect"
import * as crypto from "node:crypto"

/**
 * Where `put` draws data keys, message ids and IVs: always `crypto.randomBytes`, except in the
 * test-vector generator, which substitutes fixed bytes with `Effect.locally`.
 *
 * @internal
 */
export const currentRandom: FiberRef.FiberRef<(length: number) => Uint8Array> = FiberRef.unsafeMake<(length: number) => Uint8Array>(
  (n) => crypto.randomBytes(n)
)

/** @internal */
export const Names = {
  // V1/V2
  keyV1: "x-amz-key",
  keyV2: "x-amz-key-v2",
  iv: "x-amz-iv",
  matdesc: "x-amz-matdesc",
  wrapAlg: "x-amz-wrap-alg",
  cekAlg: "x-amz-cek-alg",
  tagLen: "x-amz-tag-len",
  unencryptedLength: "x-amz-unencrypted-content-length",
  // V3
  contentCipherV3: "x-amz-c",
  encryptedDataKeyV3: "x-amz-3",
  wrapAlgV3: "x-amz-w",
  matdescV3: "x-amz-m",
  contextV3: "x-amz-t",
  commitmentV3: "x-amz-d",
  messageIdV3: "x-amz-i"
} as const

/** Names only V2 (and V1) objects carry besides their key. @internal */
const V2_ONLY = [Names.keyV2, Names.wrapAlg, Names.cekAlg, Names.tagLen] as const
/** @internal */
export const V3_NAMES = [
  Names.contentCipherV3,
  Names.encryptedDataKeyV3,
  Names.wrapAlgV3,
  Names.matdescV3,
  Names.contextV3,
  Names.commitmentV3,
  Names.messageIdV3
] as const
/** V3 names kept in the object's metadata even when an instruction file is used. @internal */
export const V3_METADATA_ONLY = [Names.contentCipherV3, Names.commitmentV3, Names.messageIdV3] as const

/** Every content-metadata name of every version. @internal */
export const ALL_NAMES: ReadonlySet<string> = new Set<string>([
  Names.keyV1,
  Names.iv,
  Names.matdesc,
  Names.unencryptedLength,
  ...V2_ONLY,
  ...V3_NAMES
])

/** @internal */
export const CEK_GCM = "AES/GCM/NoPadding"
/** @internal */
export const CEK_CBC = "AES/CBC/PKCS5Padding"
/** ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY (0x0073) as V3 writes it. @internal */
export const CEK_V3 = "115"
/** @internal */
export const SUITE_V3_ID = Buffer.from([0x00, 0x73])
/** @internal */
export const MESSAGE_ID_LENGTH = 28
/** @internal */
export const COMMITMENT_LENGTH = 28
/** @internal */
export const TAG_LENGTH = 16
/** @internal */
export const GCM_IV_LENGTH = 12
/** @internal */
export const CBC_IV_LENGTH = 16
/** @internal */
export const KEY_LENGTH = 32
/** The reserved KMS encryption-context key of `kms+context`. @internal */
export const CEK_CONTEXT_KEY = "aws:x-amz-cek-alg"
/** The reserved key the legacy `kms` wrap records. @internal */
export const KMS_CMK_CONTEXT_KEY = "kms_cmk_id"
/** @internal */
export const INSTRUCTION_SUFFIX = ".instruction"

/** Wrapping algorithms as V2 names them. @internal */
export type WrapAlg =
  | "kms+context"
  | "AES/GCM"
  | "RSA-OAEP-SHA1"
  // legacy (read only)
  | "kms"
  | "AESWrap"
  | "AES"
  | "RSA"
  | typeof RSA_OAEP_SHA256_MGF1_SHA1

/** Java V1's RSA wrap in authenticated mode (SunJCE: OAEP with SHA-256, MGF1 with SHA-1). @internal */
export const RSA_OAEP_SHA256_MGF1_SHA1 = "RSA/ECB/OAEPWithSHA-256AndMGF1Padding"

/** @internal */
export const V3_WRAP_CODES: Readonly<Record<string, WrapAlg>> = { "02": "AES/GCM", "12": "kms+context", "22": "RSA-OAEP-SHA1" }
/** @internal */
export const V3_WRAP_NAMES: Readonly<Record<string, string>> = { "AES/GCM": "02", "kms+context": "12", "RSA-OAEP-SHA1": "22" }

/** @internal */
export const isLegacyWrap = (w: WrapAlg): boolean =>
  w === "kms" || w === "AESWrap" || w === "AES" || w === "RSA" || w === RSA_OAEP_SHA256_MGF1_SHA1

/** Wraps opened with an RSA private key. @internal */
export const isRsaWrap = (w: WrapAlg): boolean => w === "RSA-OAEP-SHA1" || w === "RSA" || w === RSA_OAEP_SHA256_MGF1_SHA1

/** The content metadata of one object, whatever its version, decoded and checked. @internal */
export interface Envelope {
  readonly version: "V1" | "V2" | "V3"
  readonly location: "metadata" | "instruction"
  readonly encryptedDataKey: Uint8Array
  readonly wrapAlg: WrapAlg
  /** `AES/GCM/NoPadding`, `AES/CBC/PKCS5Padding` or `115`. */
  readonly cekAlg: string
  /** V1/V2: the content IV. */
  readonly iv?: Uint8Array | undefined
  /** Material description (V1/V2 `x-amz-matdesc`, V3 `x-amz-m`). */
  readonly matdesc: Readonly<Record<string, string>>
  /** KMS encryption context (V2 `kms+context`: the matdesc; V3 `x-amz-t`). */
  readonly kmsContext: Readonly<Record<string, string>>
  readonly unencryptedLength?: number | undefined
  readonly messageId?: Uint8Array | undefined
  readonly commitment?: Uint8Array | undefined
}

/** Why content metadata was refused. @internal */
export type EnvelopeProblem =
  | { readonly _tag: "None" }
  | { readonly _tag: "NeedsInstructionFile" }
  | { readonly _tag: "Ambiguous"; readonly detail: string }
  | { readonly _tag: "Malformed"; readonly detail: string }
  | { readonly _tag: "Unsupported"; readonly detail: string }

/** @internal */
export class EnvelopeRefused extends Error {
  constructor(readonly problem: Exclude<EnvelopeProblem, { readonly _tag: "None" | "NeedsInstructionFile" }>) {
    super(problem.detail)
  }
}

const refuse = (tag: "Ambiguous" | "Malformed" | "Unsupported", detail: string): never => {
  throw new EnvelopeRefused({ _tag: tag, detail })
}

/**
 * Which format an object's metadata announces: V1 (`x-amz-key`), V2 (`x-amz-key-v2`), V3
 * (`x-amz-3`, or `x-amz-c`/`x-amz-d`/`x-amz-i` with an instruction file), none, or several (refused).
 *
 * @internal
 */
export const detect = (metadata: Readonly<Record<string, string>>): "V1" | "V2" | "V3" | "V3-instruction" | "none" => {
  const has = (k: string) => Object.prototype.hasOwnProperty.call(metadata, k)
  const v1 = has(Names.keyV1)
  const v2 = V2_ONLY.some(has)
  const v3 = V3_NAMES.some(has)
  const count = Number(v1) + Number(v2 && !v1) + Number(v3)
  if ((v1 && has(Names.keyV2)) || count > 1) {
    return refuse("Ambiguous", "the object's metadata mixes names of several S3 Encryption Client format versions")
  }
  if (v1) return "V1"
  if (has(Names.keyV2)) return "V2"
  if (v2) return refuse("Malformed", `${Names.keyV2} is missing`)
  if (has(Names.encryptedDataKeyV3)) return "V3"
  if (v3) return "V3-instruction"
  if (has(Names.iv) || has(Names.matdesc)) return refuse("Malformed", "content metadata without an encrypted data key")
  return "none"
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/

/** Strict base64 (the clients write it without line breaks). @internal */
export const unbase64 = (name: string, value: string | undefined): Buffer => {
  if (value === undefined) return refuse("Malformed", `${name} is missing`)
  const s = value.trim()
  if (s.length % 4 !== 0 || !B64.test(s)) return refuse("Malformed", `${name} is not base64`)
  return Buffer.from(s, "base64")
}

/**
 * Decodes S3's RFC 2047 "double encoding" of non-ASCII metadata values (`=?UTF-8?B?…?=` and
 * `=?UTF-8?Q?…?=` words); other values are returned untouched.
 *
 * @internal
 */
export const decodeRfc2047 = (value: string): string => {
  if (!value.includes("=?")) return value
  return value.replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=\s*/g, (whole, charset: string, enc: string, text: string) => {
    if (!/^utf-?8$/i.test(charset)) return whole
    if (enc === "B" || enc === "b") return Buffer.from(text, "base64").toString("utf8")
    const bytes = text.replace(/_/g, " ").replace(/=([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)))
    return Buffer.from(bytes, "latin1").toString("utf8")
  })
}

/** Parses a JSON material description / encryption context: an object of strings. @internal */
export const parseStringMap = (name: string, value: string | undefined): Record<string, string> => {
  if (value === undefined || value === "") return {}
  let parsed: unknown
  try {
    parsed = JSON.parse(decodeRfc2047(value))
  } catch {
    return refuse("Malformed", `${name} is not JSON`)
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return refuse("Malformed", `${name} is not a JSON object`)
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    if (typeof v !== "string") return refuse("Malformed", `${name} has a non-string value`)
    out[k] = v
  }
  return out
}

const parseWrapV2 = (value: string | undefined, cekAlg: string, edk: Uint8Array): WrapAlg => {
  if (value === undefined) {
    // AES-CBC objects of the "encryption only" clients record no wrap: the data key was encrypted
    // with the master key's own cipher, AES/ECB/PKCS5Padding (48 bytes) or RSA PKCS#1 v1.5 (the
    // modulus size). Like AWS's Java client, tell them apart by the length.
    if (cekAlg !== CEK_CBC) return refuse("Malformed", `${Names.wrapAlg} is missing`)
    return edk.length > 48 ? "RSA" : "AES"
  }
  switch (value) {
    case "kms+context":
    case "AES/GCM":
    case "RSA-OAEP-SHA1":
    case "kms":
    case "AESWrap":
    case RSA_OAEP_SHA256_MGF1_SHA1:
      return value
    default:
      return refuse("Unsupported", `wrapping algorithm ${JSON.stringify(value)} is not supported`)
  }
}

/**
 * Decodes V1/V2 content metadata (from object metadata or an instruction file).
 *
 * @internal
 */
export const decodeV1V2 = (
  m: Readonly<Record<string, string>>,
  version: "V1" | "V2",
  location: "metadata" | "instruction"
): Envelope => {
  const edk = unbase64(version === "V1" ? Names.keyV1 : Names.keyV2, m[version === "V1" ? Names.keyV1 : Names.keyV2])
  const iv = unbase64(Names.iv, m[Names.iv])
  const cekAlg = m[Names.cekAlg] ?? (version === "V1" ? CEK_CBC : refuse("Malformed", `${Names.cekAlg} is missing`))
  const wrapAlg = parseWrapV2(m[Names.wrapAlg], cekAlg, edk)
  if (cekAlg === CEK_GCM) {
    if (m[Names.tagLen] !== "128") return refuse("Malformed", `${Names.tagLen} must be 128 for ${CEK_GCM}`)
    if (iv.length !== GCM_IV_LENGTH) return refuse("Malformed", `${Names.iv} must be ${GCM_IV_LENGTH} bytes for ${CEK_GCM}`)
  } else if (cekAlg === CEK_CBC) {
    if (m[Names.tagLen] !== undefined) return refuse("Malformed", `${Names.tagLen} must be absent for ${CEK_CBC}`)
    if (iv.length !== CBC_IV_LENGTH) return refuse("Malformed", `${Names.iv} must be ${CBC_IV_LENGTH} bytes for ${CEK_CBC}`)
  } else {
    return refuse("Unsupported", `content algorithm ${JSON.stringify(cekAlg)} is not supported`)
  }
  const matdesc = parseStringMap(Names.matdesc, m[Names.matdesc])
  const lengthText = m[Names.unencryptedLength]
  let unencryptedLength: number | undefined
  if (lengthText !== undefined) {
    if (!/^\d{1,16}$/.test(lengthText)) return refuse("Malformed", `${Names.unencryptedLength} is not a length`)
    unencryptedLength = Number(lengthText)
  }
  return {
    version,
    location,
    encryptedDataKey: edk,
    wrapAlg,
    cekAlg,
    iv,
    matdesc,
    kmsContext: wrapAlg === "kms+context" || wrapAlg === "kms" ? matdesc : {},
    unencryptedLength
  }
}

/**
 * Decodes V3 content metadata: `x-amz-c`, `x-amz-d`, `x-amz-i` always from the object's metadata,
 * the rest from the object's metadata or from the instruction file.
 *
 * @internal
 */
export const decodeV3 = (
  metadata: Readonly<Record<string, string>>,
  instruction: Readonly<Record<string, string>> | undefined
): Envelope => {
  if (instruction !== undefined) {
    for (const k of V3_METADATA_ONLY) {
      // The spec keeps these out of instruction files; one client writes them there too. Accept
      // only an identical copy.
      if (instruction[k] !== undefined && instruction[k] !== metadata[k]) {
        return refuse("Malformed", `the instruction file's ${k} disagrees with the object's metadata`)
      }
    }
    for (const k of [Names.encryptedDataKeyV3, Names.wrapAlgV3, Names.matdescV3, Names.contextV3]) {
      if (metadata[k] !== undefined) return refuse("Ambiguous", `${k} is both in the object's metadata and in its instruction file`)
    }
  }
  const wrapped = instruction ?? metadata
  const cekAlg = metadata[Names.contentCipherV3]
  if (cekAlg === undefined) return refuse("Malformed", `${Names.contentCipherV3} is missing`)
  if (cekAlg !== CEK_V3) return refuse("Unsupported", `content algorithm ${JSON.stringify(cekAlg)} is not supported`)
  const code = wrapped[Names.wrapAlgV3]
  if (code === undefined) return refuse("Malformed", `${Names.wrapAlgV3} is missing`)
  const wrapAlg = V3_WRAP_CODES[code] ?? refuse("Unsupported", `wrapping algorithm ${JSON.stringify(code)} is not supported`)
  const messageId = unbase64(Names.messageIdV3, metadata[Names.messageIdV3])
  const commitment = unbase64(Names.commitmentV3, metadata[Names.commitmentV3])
  if (messageId.length !== MESSAGE_ID_LENGTH) return refuse("Malformed", `${Names.messageIdV3} must be ${MESSAGE_ID_LENGTH} bytes`)
  if (commitment.length !== COMMITMENT_LENGTH) return refuse("Malformed", `${Names.commitmentV3} must be ${COMMITMENT_LENGTH} bytes`)
  return {
    version: "V3",
    location: instruction === undefined ? "metadata" : "instruction",
    encryptedDataKey: unbase64(Names.encryptedDataKeyV3, wrapped[Names.encryptedDataKeyV3]),
    wrapAlg,
    cekAlg,
    matdesc: parseStringMap(Names.matdescV3, wrapped[Names.matdescV3]),
    kmsContext: parseStringMap(Names.contextV3, wrapped[Names.contextV3]),
    messageId,
    commitment
  }
}

/** Parses an instruction file: a JSON object of strings. @internal */
export const parseInstructionFile = (bytes: Uint8Array): Record<string, string> => {
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(bytes).toString("utf8"))
  } catch {
    return refuse("Malformed", "the instruction file is not JSON")
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return refuse("Malformed", "the instruction file is not a JSON object")
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    if (typeof v !== "string") return refuse("Malformed", `the instruction file's ${k} is not a string`)
    out[k] = v
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

/** The V3 derived content key and commitment: HKDF-SHA512(ikm = data key, salt = message id). @internal */
export const deriveV3 = (dataKey: Uint8Array, messageId: Uint8Array): { readonly key: Buffer; readonly commitment: Buffer } => ({
  key: Buffer.from(crypto.hkdfSync("sha512", dataKey, messageId, Buffer.concat([SUITE_V3_ID, Buffer.from("DERIVEKEY", "utf8")]), KEY_LENGTH)),
  commitment: Buffer.from(
    crypto.hkdfSync("sha512", dataKey, messageId, Buffer.concat([SUITE_V3_ID, Buffer.from("COMMITKEY", "utf8")]), COMMITMENT_LENGTH)
  )
})

/** Constant-time check of the stored commitment, before the content key is derived. @internal */
export const commitmentMatches = (dataKey: Uint8Array, messageId: Uint8Array, stored: Uint8Array): boolean => {
  const derived = Buffer.from(
    crypto.hkdfSync("sha512", dataKey, messageId, Buffer.concat([SUITE_V3_ID, Buffer.from("COMMITKEY", "utf8")]), COMMITMENT_LENGTH)
  )
  return derived.length === stored.length && crypto.timingSafeEqual(derived, stored)
}

/** AES/GCM wrap: IV(12) ‖ ciphertext ‖ tag, AAD = the content algorithm name. @internal */
export const wrapAesGcm = (kek: Uint8Array, dataKey: Uint8Array, cekAlg: string, iv: Uint8Array): Buffer => {
  const c = crypto.createCipheriv("aes-256-gcm", kek, iv)
  c.setAAD(Buffer.from(cekAlg, "utf8"))
  return Buffer.concat([iv, c.update(dataKey), c.final(), c.getAuthTag()])
}

/** @internal */
export const unwrapAesGcm = (kek: Uint8Array, edk: Uint8Array, cekAlg: string): Buffer | undefined => {
  if (kek.length !== KEY_LENGTH || edk.length <= GCM_IV_LENGTH + TAG_LENGTH) return undefined
  try {
    const d = crypto.createDecipheriv("aes-256-gcm", kek, edk.subarray(0, GCM_IV_LENGTH))
    d.setAAD(Buffer.from(cekAlg, "utf8"))
    d.setAuthTag(edk.subarray(edk.length - TAG_LENGTH))
    return Buffer.concat([d.update(edk.subarray(GCM_IV_LENGTH, edk.length - TAG_LENGTH)), d.final()])
  } catch {
    return undefined
  }
}

/** RSA-OAEP-SHA1 wrap of the "pseudo data key": len(key) ‖ key ‖ content algorithm name. @internal */
export const wrapRsaOaepSha1 = (publicKey: crypto.KeyObject, dataKey: Uint8Array, cekAlg: string): Buffer =>
  crypto.publicEncrypt(
    { key: publicKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" },
    Buffer.concat([Buffer.from([dataKey.length]), dataKey, Buffer.from(cekAlg, "utf8")])
  )

/**
 * @returns the data key, `"cek"` when the pseudo key names another content algorithm, or
 * `undefined` when the key does not open it.
 * @internal
 */
export const unwrapRsaOaepSha1 = (privateKey: crypto.KeyObject, edk: Uint8Array, cekAlg: string): Buffer | "cek" | undefined => {
  let pseudo: Buffer
  try {
    pseudo = crypto.privateDecrypt({ key: privateKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" }, edk)
  } catch {
    return undefined
  }
  const n = pseudo[0] ?? 0
  if (n !== KEY_LENGTH || pseudo.length <= 1 + n) return undefined
  const name = pseudo.subarray(1 + n)
  const expected = Buffer.from(cekAlg, "utf8")
  if (name.length !== expected.length || !crypto.timingSafeEqual(name, expected)) return "cek"
  return Buffer.from(pseudo.subarray(1, 1 + n))
}

const KW_IV = Buffer.from("A6A6A6A6A6A6A6A6", "hex")

/** Legacy `AESWrap` (RFC 3394). @internal */
export const unwrapAesKw = (kek: Uint8Array, edk: Uint8Array): Buffer | undefined => {
  if (kek.length !== KEY_LENGTH || edk.length !== KEY_LENGTH + 8) return undefined
  try {
    const d = crypto.createDecipheriv("id-aes256-wrap", kek, KW_IV)
    return Buffer.concat([d.update(edk), d.final()])
  } catch {
    return undefined
  }
}

/** Legacy V1 symmetric wrap: AES/ECB/PKCS5Padding. @internal */
export const unwrapAesEcb = (kek: Uint8Array, edk: Uint8Array): Buffer | undefined => {
  if (kek.length !== KEY_LENGTH || edk.length !== 48) return undefined
  try {
    const d = crypto.createDecipheriv("aes-256-ecb", kek, null)
    const out = Buffer.concat([d.update(edk), d.final()])
    return out.length === KEY_LENGTH ? out : undefined
  } catch {
    return undefined
  }
}

/** The counter block of content block `block` of a GCM message with a 96-bit IV (J0 + 1 + block). @internal */
export const gcmCounter = (iv: Uint8Array, block: number): Buffer => {
  const out = Buffer.alloc(16)
  Buffer.from(iv).copy(out, 0, 0, GCM_IV_LENGTH)
  // 32-bit increment, as GCM's inc32; valid GCM messages never carry past 2^32 - 2 blocks.
  out.writeUInt32BE((2 + block) >>> 0, 12)
  return out
}

/** Serializes content metadata as an instruction file (a JSON object of strings). @internal */
export const encodeInstructionFile = (m: Readonly<Record<string, string>>): Uint8Array => Buffer.from(JSON.stringify(m), "utf8")

/**
 * Legacy V1 `RSA` wrap: RSA PKCS#1 v1.5 (the "encryption only" clients). OpenSSL ≥ 3.2 answers a
 * wrong key or a bad padding with a pseudo-random message (implicit rejection), never an error
 * an attacker could time, so the length check is what refuses it.
 *
 * @internal
 */
export const unwrapRsaPkcs1 = (privateKey: crypto.KeyObject, edk: Uint8Array): Buffer | undefined => {
  try {
    const out = crypto.privateDecrypt({ key: privateKey, padding: crypto.constants.RSA_PKCS1_PADDING }, edk)
    return out.length === KEY_LENGTH ? out : undefined
  } catch {
    return undefined
  }
}

const mgf1Sha1 = (seed: Uint8Array, length: number): Buffer => {
  const out = Buffer.alloc(Math.ceil(length / 20) * 20)
  const counter = Buffer.alloc(4)
  for (let i = 0; i * 20 < length; i++) {
    counter.writeUInt32BE(i)
    crypto.createHash("sha1").update(seed).update(counter).digest().copy(out, i * 20)
  }
  return out.subarray(0, length)
}

const SHA256_EMPTY = crypto.createHash("sha256").digest()

/**
 * Java V1's `RSA/ECB/OAEPWithSHA-256AndMGF1Padding` as SunJCE implements it: OAEP with SHA-256
 * for the label hash and MGF1 with SHA-1. Node's `privateDecrypt` ties the MGF1 digest to the
 * OAEP digest, so the RSA private operation is OpenSSL's (raw, blinded) and the EME-OAEP
 * decoding of RFC 8017 §7.1.2 is done here, every check folded into one result without an
 * early exit. The message is the raw 32-byte data key.
 *
 * @internal
 */
export const unwrapRsaOaepSha256Mgf1Sha1 = (privateKey: crypto.KeyObject, edk: Uint8Array): Buffer | undefined => {
  const k = Math.ceil((privateKey.asymmetricKeyDetails?.modulusLength ?? 0) / 8)
  const hLen = 32
  if (privateKey.asymmetricKeyType !== "rsa" || k < 2 * hLen + 2 || edk.length !== k) return undefined
  let em: Buffer
  try {
    em = crypto.privateDecrypt({ key: privateKey, padding: crypto.constants.RSA_NO_PADDING }, edk)
  } catch {
    return undefined
  }
  if (em.length !== k) return undefined
  const maskedSeed = em.subarray(1, 1 + hLen)
  const maskedDb = em.subarray(1 + hLen)
  const seed = Buffer.alloc(hLen)
  const seedMask = mgf1Sha1(maskedDb, hLen)
  for (let i = 0; i < hLen; i++) seed[i] = maskedSeed[i]! ^ seedMask[i]!
  const dbMask = mgf1Sha1(seed, k - hLen - 1)
  const db = Buffer.alloc(k - hLen - 1)
  for (let i = 0; i < db.length; i++) db[i] = maskedDb[i]! ^ dbMask[i]!
  let bad = em[0]! | (crypto.timingSafeEqual(db.subarray(0, hLen), SHA256_EMPTY) ? 0 : 1)
  // Find the 0x01 after the zero padding without branching on secret bytes.
  let found = 0
  let index = 0
  for (let i = hLen; i < db.length; i++) {
    const b = db[i]!
    const isOne = ((b ^ 1) - 1) >>> 31
    const isZero = (b - 1) >>> 31
    const take = isOne & (found ^ 1)
    index = (index & -(take ^ 1)) | (i & -take)
    found |= isOne
    bad |= (found ^ 1) & (isZero ^ 1) & (isOne ^ 1)
  }
  bad |= found ^ 1
  const message = db.subarray(index + 1)
  if ((bad | (message.length === KEY_LENGTH ? 0 : 1)) !== 0) return undefined
  return Buffer.from(message)
}
