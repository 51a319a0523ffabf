/**
 * Key material: generation from `crypto` randomness, and import/export in the encodings users
 * hold keys in (a raw 32-byte file, base64, hex, JWK, PEM). Secret parts are only ever `Redacted`,
 * and no error message ever echoes the input.
 *
 * @since 0.1.0
 */
import { Effect, Redacted, Schema } from "effect"
import { InvalidCustomerKey } from "@objcrypt/core/Errors"
import type { KeyAlgorithm } from "@objcrypt/core/KeyStore"
import * as crypto from "node:crypto"

/**
 * Key material held in memory.
 *
 * @since 0.1.0
 * @category models
 */
export type KeyMaterial =
  | { readonly _tag: "Symmetric"; readonly algorithm: "aes-256"; readonly bytes: Redacted.Redacted<Uint8Array> }
  | { readonly _tag: "PublicKey"; readonly algorithm: "rsa-oaep-256" | "x25519"; readonly publicKey: crypto.KeyObject }
  | {
    readonly _tag: "KeyPair"
    readonly algorithm: "rsa-oaep-256" | "x25519"
    readonly publicKey: crypto.KeyObject
    readonly privateKey: Redacted.Redacted<crypto.KeyObject>
  }

/**
 * Encodings for import and export. `raw`, `base64` and `hex` carry a 256-bit symmetric key;
 * `jwk` carries any key (`oct`, `RSA`, `OKP`/X25519); `pem` carries SPKI public or PKCS#8 private
 * keys (PKCS#1 RSA keys are accepted on import). `auto` detects the encoding on import.
 *
 * @since 0.1.0
 * @category models
 */
export const Format = Schema.Literal("raw", "base64", "hex", "jwk", "pem")

/**
 * @since 0.1.0
 * @category models
 */
export type Format = typeof Format.Type

/**
 * @since 0.1.0
 * @category constants
 */
export const SYMMETRIC_KEY_LENGTH = 32

/**
 * Smallest RSA modulus accepted on import and generation.
 *
 * @since 0.1.0
 * @category constants
 */
export const MIN_RSA_BITS = 2048

const bad = (reason: InvalidCustomerKey["reason"], detail: string) => new InvalidCustomerKey({ reason, detail })

/**
 * @since 0.1.0
 * @category models
 */
export interface GenerateOptions {
  /** RSA modulus length in bits. @default 3072 */
  readonly modulusLength?: number | undefined
}

/**
 * Generates fresh key material from `crypto` randomness.
 *
 * @since 0.1.0
 * @category constructors
 */
export const generate = (
  algorithm: KeyAlgorithm,
  options?: GenerateOptions
): Effect.Effect<KeyMaterial, InvalidCustomerKey> => {
  switch (algorithm) {
    case "aes-256":
      return Effect.sync(() => symmetric(crypto.randomBytes(SYMMETRIC_KEY_LENGTH)))
    case "x25519":
      return Effect.sync(() => {
        const { privateKey, publicKey } = crypto.generateKeyPairSync("x25519")
        return { _tag: "KeyPair", algorithm, publicKey, privateKey: Redacted.make(privateKey) }
      })
    case "rsa-oaep-256": {
      const modulusLength = options?.modulusLength ?? 3072
      if (!Number.isInteger(modulusLength) || modulusLength < MIN_RSA_BITS || modulusLength > 16384 || modulusLength % 8 !== 0) {
        return Effect.fail(bad("UnsupportedAlgorithm", `RSA modulus must be a multiple of 8 between ${MIN_RSA_BITS} and 16384 bits`))
      }
      return Effect.async<KeyMaterial, InvalidCustomerKey>((resume) => {
        crypto.generateKeyPair("rsa", { modulusLength, publicExponent: 65537 }, (err, publicKey, privateKey) => {
          if (err !== null) resume(Effect.fail(bad("UnsupportedAlgorithm", "RSA key generation failed")))
          else resume(Effect.succeed({ _tag: "KeyPair", algorithm, publicKey, privateKey: Redacted.make(privateKey) }))
        })
      })
    }
  }
}

/**
 * Wraps 32 bytes as symmetric material (the bytes are copied).
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromBytes = (bytes: Uint8Array): Effect.Effect<KeyMaterial, InvalidCustomerKey> =>
  bytes.length === SYMMETRIC_KEY_LENGTH
    ? Effect.sync(() => symmetric(bytes))
    : Effect.fail(wrongLength(bytes.length))

const symmetric = (bytes: Uint8Array): KeyMaterial => ({
  _tag: "Symmetric",
  algorithm: "aes-256",
  bytes: Redacted.make(Uint8Array.from(bytes))
})

const wrongLength = (n: number) =>
  bad("WrongLength", `a 256-bit key is exactly ${SYMMETRIC_KEY_LENGTH} bytes, got ${n}`)

const HEX = /^[0-9a-fA-F]*$/
const BASE64 = /^[A-Za-z0-9+/\-_]*={0,2}$/

const toText = (input: Uint8Array | string): string =>
  typeof input === "string" ? input : Buffer.from(input).toString("utf8")

const isText = (bytes: Uint8Array): boolean => {
  for (const b of bytes) {
    if (b < 0x09 || (b > 0x0d && b < 0x20) || b === 0x7f || b >= 0x80) return false
  }
  return true
}

/**
 * Detects the encoding of an import: non-text bytes are `raw`, then JWK, PEM, 64 hex digits,
 * otherwise base64.
 *
 * @since 0.1.0
 * @category parsing
 */
export const detect = (input: Uint8Array | string): Format => {
  if (typeof input !== "string" && !isText(input)) return "raw"
  const text = toText(input).trim()
  if (text.startsWith("{")) return "jwk"
  if (text.startsWith("-----BEGIN")) return "pem"
  if (text.length === 2 * SYMMETRIC_KEY_LENGTH && HEX.test(text)) return "hex"
  return "base64"
}

/**
 * Decodes imported key material. The input is secret and stays inside this function: errors
 * describe what was wrong with it, never what it contained.
 *
 * @since 0.1.0
 * @category parsing
 */
export const decode = (
  input: Redacted.Redacted<Uint8Array | string>,
  format: Format | "auto" = "auto"
): Effect.Effect<KeyMaterial, InvalidCustomerKey> =>
  Effect.suspend(() => {
    const value = Redacted.value(input)
    const fmt = format === "auto" ? detect(value) : format
    switch (fmt) {
      case "raw":
        return fromBytes(typeof value === "string" ? Buffer.from(value, "latin1") : value)
      case "hex": {
        const text = toText(value).trim()
        if (text.length % 2 !== 0 || !HEX.test(text)) return Effect.fail(bad("BadEncoding", "the key is not valid hex"))
        return fromBytes(Buffer.from(text, "hex"))
      }
      case "base64": {
        const text = toText(value).replace(/\s+/g, "")
        if (text.length === 0 || !BASE64.test(text) || (text.includes("=") && text.length % 4 !== 0)) {
          return Effect.fail(bad("BadEncoding", "the key is not valid base64"))
        }
        return fromBytes(Buffer.from(text, /[-_]/.test(text) ? "base64url" : "base64"))
      }
      case "jwk":
        return decodeJwk(toText(value))
      case "pem":
        return decodePem(toText(value))
    }
  })

const decodeJwk = (text: string): Effect.Effect<KeyMaterial, InvalidCustomerKey> => {
  let jwk: Record<string, unknown>
  try {
    const parsed: unknown = JSON.parse(text)
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error()
    jwk = parsed as Record<string, unknown>
  } catch {
    // JSON.parse messages quote the input: never pass them on.
    return Effect.fail(bad("BadEncoding", "the key is not a JSON Web Key object"))
  }
  if (jwk.kty === "oct") {
    if (typeof jwk.k !== "string" || !/^[A-Za-z0-9\-_]*$/.test(jwk.k)) {
      return Effect.fail(bad("BadEncoding", "JWK of type oct needs a base64url \"k\""))
    }
    if (typeof jwk.alg === "string" && !/^A256/.test(jwk.alg)) {
      return Effect.fail(bad("UnsupportedAlgorithm", `JWK alg ${JSON.stringify(jwk.alg.slice(0, 20))} is not a 256-bit AES algorithm`))
    }
    return fromBytes(Buffer.from(jwk.k, "base64url"))
  }
  if (jwk.kty === "RSA" || (jwk.kty === "OKP" && jwk.crv === "X25519")) {
    try {
      if (typeof jwk.d === "string") {
        const privateKey = crypto.createPrivateKey({ key: jwk as crypto.JsonWebKey, format: "jwk" })
        return fromKeyObjects(crypto.createPublicKey(privateKey), privateKey)
      }
      return fromKeyObjects(crypto.createPublicKey({ key: jwk as crypto.JsonWebKey, format: "jwk" }), undefined)
    } catch {
      return Effect.fail(bad("BadEncoding", `the ${String(jwk.kty)} JWK is not a valid key`))
    }
  }
  const kty = typeof jwk.kty === "string" ? jwk.kty.slice(0, 10) : "missing"
  return Effect.fail(bad("UnsupportedAlgorithm", `JWK kty ${JSON.stringify(kty)}${typeof jwk.crv === "string" ? ` crv ${JSON.stringify(jwk.crv.slice(0, 10))}` : ""} is not supported (oct, RSA or OKP X25519)`))
}

const decodePem = (text: string): Effect.Effect<KeyMaterial, InvalidCustomerKey> => {
  const label = /-----BEGIN ([A-Z0-9 ]+)-----/.exec(text)?.[1]
  if (label === undefined) return Effect.fail(bad("BadEncoding", "no PEM block found"))
  if (label === "ENCRYPTED PRIVATE KEY" || /Proc-Type: 4,ENCRYPTED/.test(text)) {
    return Effect.fail(bad("UnsupportedAlgorithm", "encrypted PEM keys are not supported: decrypt it first (openssl pkey)"))
  }
  try {
    if (label === "PRIVATE KEY" || label === "RSA PRIVATE KEY") {
      const privateKey = crypto.createPrivateKey({ key: text, format: "pem" })
      return fromKeyObjects(crypto.createPublicKey(privateKey), privateKey)
    }
    if (label === "PUBLIC KEY" || label === "RSA PUBLIC KEY") {
      return fromKeyObjects(crypto.createPublicKey({ key: text, format: "pem" }), undefined)
    }
  } catch {
    return Effect.fail(bad("BadEncoding", `the PEM ${label} block is not a valid key`))
  }
  return Effect.fail(bad("UnsupportedAlgorithm", `PEM ${label} is not supported (PUBLIC KEY or PRIVATE KEY)`))
}

/**
 * Builds asymmetric material from key objects, checking the algorithm (RSA of at least 2048 bits,
 * or X25519).
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromKeyObjects = (
  publicKey: crypto.KeyObject,
  privateKey: crypto.KeyObject | undefined
): Effect.Effect<KeyMaterial, InvalidCustomerKey> => {
  const type = publicKey.asymmetricKeyType
  let algorithm: "rsa-oaep-256" | "x25519"
  if (type === "rsa") {
    const bits = publicKey.asymmetricKeyDetails?.modulusLength ?? 0
    if (bits < MIN_RSA_BITS) return Effect.fail(bad("UnsupportedAlgorithm", `RSA keys under ${MIN_RSA_BITS} bits are refused (got ${bits})`))
    algorithm = "rsa-oaep-256"
  } else if (type === "x25519") {
    algorithm = "x25519"
  } else {
    return Effect.fail(bad("UnsupportedAlgorithm", `${type ?? "unknown"} keys are not supported (RSA or X25519)`))
  }
  return Effect.succeed(
    privateKey === undefined
      ? { _tag: "PublicKey", algorithm, publicKey }
      : { _tag: "KeyPair", algorithm, publicKey, privateKey: Redacted.make(privateKey) }
  )
}

/**
 * @since 0.1.0
 * @category models
 */
export interface EncodeOptions {
  /** Export the private key of a key pair (otherwise only its public key). @default false */
  readonly includePrivate?: boolean | undefined
}

/**
 * Encodes material for export. Symmetric keys: `raw`, `base64`, `hex`, `jwk`. Asymmetric keys:
 * `jwk`, `pem` (SPKI, or PKCS#8 with `includePrivate`).
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = (
  material: KeyMaterial,
  format: Format,
  options?: EncodeOptions
): Effect.Effect<Redacted.Redacted<Uint8Array>, InvalidCustomerKey> =>
  Effect.suspend(() => {
    if (material._tag === "Symmetric") {
      const bytes = Buffer.from(Redacted.value(material.bytes))
      switch (format) {
        case "raw":
          return Effect.succeed(Redacted.make(new Uint8Array(bytes)))
        case "base64":
          return Effect.succeed(Redacted.make(Buffer.from(bytes.toString("base64"))))
        case "hex":
          return Effect.succeed(Redacted.make(Buffer.from(bytes.toString("hex"))))
        case "jwk":
          return Effect.succeed(
            Redacted.make(Buffer.from(JSON.stringify({ kty: "oct", k: bytes.toString("base64url"), alg: "A256GCM" })))
          )
        case "pem":
          return Effect.fail(bad("UnsupportedAlgorithm", "a symmetric key has no PEM form: use raw, base64, hex or jwk"))
      }
    }
    const usePrivate = options?.includePrivate === true
    if (usePrivate && material._tag !== "KeyPair") {
      return Effect.fail(bad("Missing", "this key holds no private key"))
    }
    const key = usePrivate && material._tag === "KeyPair" ? Redacted.value(material.privateKey) : material.publicKey
    switch (format) {
      case "jwk":
        return Effect.succeed(Redacted.make(Buffer.from(JSON.stringify(key.export({ format: "jwk" })))))
      case "pem":
        return Effect.succeed(
          Redacted.make(Buffer.from(
            key.type === "private"
              ? key.export({ format: "pem", type: "pkcs8" })
              : key.export({ format: "pem", type: "spki" })
          ))
        )
      default:
        return Effect.fail(bad("UnsupportedAlgorithm", `a ${material.algorithm} key cannot be exported as ${format}: use jwk or pem`))
    }
  })

/**
 * A public identifier of the material: SHA-256 of the SPKI for public keys; for symmetric keys an
 * HMAC-based key check value that reveals nothing about the key. Safe to print.
 *
 * @since 0.1.0
 * @category utils
 */
export const fingerprint = (material: KeyMaterial): string =>
  material._tag === "Symmetric"
    ? "kcv:" + crypto.createHmac("sha256", Redacted.value(material.bytes)).update("objcrypt/key-check-value").digest("hex").slice(0, 16)
    : "sha256:" + crypto.createHash("sha256").update(material.publicKey.export({ format: "der", type: "spki" })).digest("hex")

/**
 * Compares two materials in constant time (symmetric) or by their public key.
 *
 * @since 0.1.0
 * @category utils
 */
export const equals = (a: KeyMaterial, b: KeyMaterial): boolean => {
  if (a._tag === "Symmetric" || b._tag === "Symmetric") {
    if (a._tag !== "Symmetric" || b._tag !== "Symmetric") return false
    return crypto.timingSafeEqual(Redacted.value(a.bytes), Redacted.value(b.bytes))
  }
  if (a._tag !== b._tag || a.algorithm !== b.algorithm) return false
  return a.publicKey.equals(b.publicKey) &&
    (a._tag !== "KeyPair" || b._tag !== "KeyPair" || Redacted.value(a.privateKey).equals(Redacted.value(b.privateKey)))
}
