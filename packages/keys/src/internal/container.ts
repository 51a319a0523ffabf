/**
 * The passphrase-sealed container shared by the key store file and backup bundles. The byte layout
 * is specified in docs/KEYSTORE.md.
 */
import { Effect, Redacted } from "effect"
import { KeyStoreError } from "@objcrypt/core/Errors"
import * as crypto from "node:crypto"

/** Scrypt cost parameters, stored in every container header. */
export interface ScryptParams {
  /** log2 of the CPU/memory cost N. */
  readonly log2N: number
  readonly r: number
  readonly p: number
}

export const DEFAULT_SCRYPT: ScryptParams = { log2N: 17, r: 8, p: 1 }
export const MIN_LOG2N = 15
/** Upper bounds on what a header may ask for, so a doctored file cannot exhaust memory. */
const MAX_LOG2N = 22
const MAX_R = 32
const MAX_P = 16

export const HEADER_LENGTH = 73
const TAG_LENGTH = 16
const KDF_SCRYPT = 1
const FORMAT_VERSION = 1

export interface Header {
  readonly magic: string
  readonly version: number
  readonly scrypt: ScryptParams
  readonly salt: Uint8Array
  readonly nonce: Uint8Array
  readonly check: Uint8Array
  readonly bodyLength: number
}

/** A key derived from a passphrase for one salt and cost. */
export interface DerivedKey {
  readonly saltHex: string
  readonly scrypt: ScryptParams
  readonly encKey: Redacted.Redacted<crypto.KeyObject>
  readonly check: Uint8Array
}

const corrupt = (what: string, detail: string) => new KeyStoreError({ reason: "Corrupt", detail: `${what}: ${detail}` })

export const validateScrypt = (s: ScryptParams, allowLowCost: boolean): string | undefined => {
  if (!Number.isInteger(s.log2N) || s.log2N < (allowLowCost ? 1 : MIN_LOG2N) || s.log2N > MAX_LOG2N) {
    return `scrypt log2(N) must be between ${allowLowCost ? 1 : MIN_LOG2N} and ${MAX_LOG2N}`
  }
  if (!Number.isInteger(s.r) || s.r < 1 || s.r > MAX_R) return `scrypt r must be between 1 and ${MAX_R}`
  if (!Number.isInteger(s.p) || s.p < 1 || s.p > MAX_P) return `scrypt p must be between 1 and ${MAX_P}`
  return undefined
}

/** Derives the encryption key and the passphrase check value with scrypt (64 bytes of output). */
export const derive = (
  passphrase: Redacted.Redacted<string>,
  salt: Uint8Array,
  scrypt: ScryptParams
): Effect.Effect<DerivedKey, KeyStoreError> =>
  Effect.async<DerivedKey, KeyStoreError>((resume) => {
    const N = 2 ** scrypt.log2N
    const maxmem = 128 * N * scrypt.r * scrypt.p + 16 * 1024 * 1024
    crypto.scrypt(
      Buffer.from(Redacted.value(passphrase).normalize("NFC"), "utf8"),
      salt,
      64,
      { N, r: scrypt.r, p: scrypt.p, maxmem },
      (err, out) => {
        if (err !== null) {
          resume(Effect.fail(new KeyStoreError({ reason: "Invalid", detail: `scrypt failed: ${(err as NodeJS.ErrnoException).code ?? err.name}` })))
          return
        }
        const encKey = crypto.createSecretKey(out.subarray(0, 32))
        const check = crypto.createHmac("sha256", out.subarray(32, 64)).update("objcrypt/container/passphrase-check/v1").digest()
          .subarray(0, 16)
        out.fill(0)
        resume(Effect.succeed({ saltHex: Buffer.from(salt).toString("hex"), scrypt, encKey: Redacted.make(encKey), check }))
      }
    )
  })

/** A fresh salt and key for a new container. */
export const deriveNew = (passphrase: Redacted.Redacted<string>, scrypt: ScryptParams) =>
  derive(passphrase, crypto.randomBytes(16), scrypt)

const headerChecksum = (bytes: Uint8Array) => crypto.createHash("sha256").update(bytes).digest().subarray(0, 8)

/** Parses and checks a container header; `what` names the file in errors ("key store", "backup bundle"). */
export const parseHeader = (bytes: Uint8Array, magic: string, what: string): Effect.Effect<Header, KeyStoreError> =>
  Effect.suspend(() => {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    if (buf.length < 8 || buf.subarray(0, 8).toString("latin1") !== magic) {
      return Effect.fail(corrupt(what, "not an objcrypt " + what + " (bad magic)"))
    }
    if (buf.length < HEADER_LENGTH) return Effect.fail(corrupt(what, `truncated header (${buf.length} bytes)`))
    if (!crypto.timingSafeEqual(headerChecksum(buf.subarray(0, 65)), buf.subarray(65, 73))) {
      return Effect.fail(corrupt(what, "header checksum mismatch"))
    }
    const version = buf[8]!
    if (version !== FORMAT_VERSION) {
      return Effect.fail(corrupt(what, `unsupported format version ${version}`))
    }
    if (buf[9] !== KDF_SCRYPT) return Effect.fail(corrupt(what, `unknown key derivation function ${buf[9]}`))
    const scrypt = { log2N: buf[10]!, r: buf[11]!, p: buf[12]! }
    const bad = validateScrypt(scrypt, true)
    if (bad !== undefined) return Effect.fail(corrupt(what, bad))
    const bodyLength = Number(buf.readBigUInt64BE(57))
    if (bodyLength < TAG_LENGTH) return Effect.fail(corrupt(what, "body too short"))
    return Effect.succeed({
      magic,
      version,
      scrypt,
      salt: Uint8Array.from(buf.subarray(13, 29)),
      nonce: Uint8Array.from(buf.subarray(29, 41)),
      check: Uint8Array.from(buf.subarray(41, 57)),
      bodyLength
    })
  })

/** Seals `plaintext` under `key`; the whole header is the AES-256-GCM AAD. */
export const seal = (magic: string, key: DerivedKey, plaintext: Uint8Array): Uint8Array => {
  const header = Buffer.alloc(HEADER_LENGTH)
  header.write(magic, 0, 8, "latin1")
  header[8] = FORMAT_VERSION
  header[9] = KDF_SCRYPT
  header[10] = key.scrypt.log2N
  header[11] = key.scrypt.r
  header[12] = key.scrypt.p
  Buffer.from(key.saltHex, "hex").copy(header, 13)
  const nonce = crypto.randomBytes(12)
  nonce.copy(header, 29)
  Buffer.from(key.check).copy(header, 41)
  header.writeBigUInt64BE(BigInt(plaintext.length + TAG_LENGTH), 57)
  headerChecksum(header.subarray(0, 65)).copy(header, 65)
  const cipher = crypto.createCipheriv("aes-256-gcm", Redacted.value(key.encKey), nonce)
  cipher.setAAD(header)
  const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()])
  return Buffer.concat([header, body])
}

/** True when a derived key was made for this header's salt and cost. */
export const matches = (key: DerivedKey, header: Header): boolean =>
  key.saltHex === Buffer.from(header.salt).toString("hex") &&
  key.scrypt.log2N === header.scrypt.log2N && key.scrypt.r === header.scrypt.r && key.scrypt.p === header.scrypt.p

/**
 * Opens a container: wrong passphrase (check value mismatch) and corruption (length, GCM tag) are
 * told apart, and nothing is released unless the whole body authenticates.
 */
export const open = (
  bytes: Uint8Array,
  header: Header,
  key: DerivedKey,
  what: string
): Effect.Effect<Buffer, KeyStoreError> =>
  Effect.suspend(() => {
    if (!crypto.timingSafeEqual(key.check, header.check)) {
      return Effect.fail(new KeyStoreError({ reason: "WrongPassphrase", detail: `the passphrase does not open this ${what}` }))
    }
    const actual = bytes.length - HEADER_LENGTH
    if (actual < header.bodyLength) {
      return Effect.fail(corrupt(what, `truncated: ${actual} of ${header.bodyLength} body bytes`))
    }
    if (actual > header.bodyLength) return Effect.fail(corrupt(what, `${actual - header.bodyLength} trailing bytes`))
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    const body = buf.subarray(HEADER_LENGTH)
    try {
      const decipher = crypto.createDecipheriv("aes-256-gcm", Redacted.value(key.encKey), header.nonce)
      decipher.setAAD(buf.subarray(0, HEADER_LENGTH))
      decipher.setAuthTag(body.subarray(body.length - TAG_LENGTH))
      const out = Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_LENGTH)), decipher.final()])
      return Effect.succeed(out)
    } catch {
      return Effect.fail(corrupt(what, "authentication failed: the contents were modified or damaged"))
    }
  })
