/**
 * A local KMS implementing the core `Kms` contract over the key store, so cse-kms works with no
 * cloud KMS (ABCI, air-gapped sites). Data keys are wrapped with AES-256-GCM under a `wrap` key;
 * the encryption context is bound as AAD. The ciphertext blob names its key's stable id and
 * version, so `decrypt` needs no key id, and rotation never breaks old blobs. Blob layout: see
 * docs/KEYSTORE.md.
 *
 * Key ids: a key name, its stable id, or `alias/<alias>` (an alias set with the manager, or else
 * a key name), optionally with `@<version>` to pin a version.
 *
 * A wrong context, like a tampered blob, fails with `KmsError` `InvalidCiphertext` — as AWS KMS
 * answers `InvalidCiphertextException`: AES-GCM cannot tell the two apart, and saying which would
 * leak nothing useful anyway.
 *
 * @since 0.1.0
 */
import { Effect, Layer, Option, Redacted } from "effect"
import type { EncryptionContext } from "@objcrypt/core/EncryptionMode"
import { KmsError } from "@objcrypt/core/Errors"
import type { KeyNotFound, KeyStoreError, KeyUnusable } from "@objcrypt/core/Errors"
import type { ResolvedKey } from "@objcrypt/core/KeyStore"
import { Kms } from "@objcrypt/core/Kms"
import * as crypto from "node:crypto"
import { AuditLog, audited } from "./AuditLog.js"
import { KeyManager } from "./KeyManager.js"

const MAGIC = Buffer.from([0x6f, 0x63, 0x6b, 0x01])
const HEADER = 36
const TAG = 16

/**
 * Largest plaintext `encrypt` accepts (as AWS KMS).
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_PLAINTEXT = 4096

/**
 * The `kind` recorded in envelopes.
 *
 * @since 0.1.0
 * @category constants
 */
export const KIND = "local"

/**
 * The key id and version a ciphertext blob was made under.
 *
 * @since 0.1.0
 * @category models
 */
export interface CiphertextInfo {
  readonly keyId: string
  readonly version: number
}

/**
 * Reads the key id and version from a blob without decrypting it (what the CLI needs to find
 * objects still wrapped under an old version).
 *
 * @since 0.1.0
 * @category parsing
 */
export const describeCiphertext = (blob: Uint8Array): Effect.Effect<CiphertextInfo, KmsError> => {
  const b = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength)
  if (b.length < HEADER + TAG || !b.subarray(0, 4).equals(MAGIC)) {
    return Effect.fail(new KmsError({ reason: "InvalidCiphertext", detail: "not a local KMS ciphertext blob" }))
  }
  const hex = b.subarray(4, 20).toString("hex")
  const keyId = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
  return Effect.succeed({ keyId, version: b.readUInt32BE(20) })
}

/**
 * Canonical AAD of an encryption context: entries sorted by key, JSON-encoded (unambiguous).
 *
 * @since 0.1.0
 * @category utils
 */
export const canonicalContext = (context: EncryptionContext): Buffer =>
  Buffer.from(JSON.stringify(Object.entries(context).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))), "utf8")

const split = (resolved: string | undefined) => {
  if (resolved === undefined) return {}
  const at = resolved.lastIndexOf("@")
  return { keyId: resolved.slice(0, at), version: Number(resolved.slice(at + 1)) }
}

const toKmsError = (keyId: string) => (e: KeyNotFound | KeyUnusable | KeyStoreError): KmsError => {
  switch (e._tag) {
    case "KeyNotFound":
      return new KmsError({ reason: "NotFound", keyId, detail: "no such key, version or alias" })
    case "KeyUnusable":
      return new KmsError({ reason: "Disabled", keyId, detail: e.reason })
    case "KeyStoreError":
      return new KmsError({ reason: "Unavailable", keyId, detail: e.message })
  }
}

const wrapKey = (keyId: string, k: ResolvedKey): Effect.Effect<{ readonly id: string; readonly version: number; readonly key: crypto.KeyObject }, KmsError> =>
  k._tag === "Symmetric" && k.info.purpose === "wrap"
    ? Effect.sync(() => ({ id: k.info.id, version: k.info.version, key: crypto.createSecretKey(Redacted.value(k.material)) }))
    : Effect.fail(new KmsError({ reason: "Invalid", keyId, detail: `key ${k.info.name} is a ${k.info.algorithm} ${k.info.purpose} key, not a wrap key` }))

const seal = (id: string, version: number, key: crypto.KeyObject, plaintext: Uint8Array, context: EncryptionContext) => {
  const header = Buffer.alloc(HEADER)
  MAGIC.copy(header, 0)
  Buffer.from(id.replace(/-/g, ""), "hex").copy(header, 4)
  header.writeUInt32BE(version, 20)
  crypto.randomFillSync(header, 24, 12)
  const cipher = crypto.createCipheriv("aes-256-gcm", key, header.subarray(24, 36))
  cipher.setAAD(Buffer.concat([header, canonicalContext(context)]))
  return new Uint8Array(Buffer.concat([header, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]))
}

/**
 * Builds the local KMS over the `KeyManager` (audited when an `AuditLog` is provided).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<Kms["Type"], never, KeyManager> = Effect.gen(function*() {
  const manager = yield* KeyManager
  const log = Option.getOrUndefined(yield* Effect.serviceOption(AuditLog))

  const resolveWrap = (keyId: string) =>
    manager.resolveRef(keyId).pipe(Effect.mapError(toKmsError(keyId)), Effect.flatMap((k) => wrapKey(keyId, k)))

  const encrypt: Kms["Type"]["encrypt"] = (keyId, plaintext, context) =>
    audited(
      log,
      (r) => ({ operation: "kms.encrypt", keyName: keyId, ...split(r?.keyId), context }),
      Effect.gen(function*() {
        const bytes = Redacted.value(plaintext)
        if (bytes.length < 1 || bytes.length > MAX_PLAINTEXT) {
          return yield* new KmsError({ reason: "Invalid", keyId, detail: `plaintext must be 1 to ${MAX_PLAINTEXT} bytes` })
        }
        const k = yield* resolveWrap(keyId)
        return { keyId: `${k.id}@${k.version}`, ciphertext: seal(k.id, k.version, k.key, bytes, context) }
      })
    )

  const generateDataKey: Kms["Type"]["generateDataKey"] = (keyId, context) =>
    audited(
      log,
      (r) => ({ operation: "kms.generateDataKey", keyName: keyId, ...split(r?.keyId), context }),
      Effect.gen(function*() {
        const k = yield* resolveWrap(keyId)
        const dataKey = crypto.randomBytes(32)
        const ciphertext = seal(k.id, k.version, k.key, dataKey, context)
        return { keyId: `${k.id}@${k.version}`, plaintext: Redacted.make(new Uint8Array(dataKey)), ciphertext }
      })
    )

  const decrypt: Kms["Type"]["decrypt"] = (ciphertext, context, keyId) =>
    Effect.flatMap(Effect.option(describeCiphertext(ciphertext)), (named) =>
    audited(
      log,
      () => ({
        operation: "kms.decrypt",
        keyName: keyId,
        keyId: Option.getOrUndefined(named)?.keyId,
        version: Option.getOrUndefined(named)?.version,
        context
      }),
      Effect.gen(function*() {
        const info = yield* describeCiphertext(ciphertext)
        const blobRef = `${info.keyId}@${info.version}`
        if (keyId !== undefined) {
          const expected = yield* manager.primaryOf(keyId).pipe(Effect.mapError(toKmsError(keyId)))
          if (expected.id !== info.keyId) {
            return yield* new KmsError({ reason: "InvalidCiphertext", keyId, detail: "the ciphertext was not made under this key" })
          }
        }
        const k = yield* resolveWrap(blobRef)
        const b = Buffer.from(ciphertext.buffer, ciphertext.byteOffset, ciphertext.byteLength)
        try {
          const decipher = crypto.createDecipheriv("aes-256-gcm", k.key, b.subarray(24, 36))
          decipher.setAAD(Buffer.concat([b.subarray(0, HEADER), canonicalContext(context)]))
          decipher.setAuthTag(b.subarray(b.length - TAG))
          const plain = Buffer.concat([decipher.update(b.subarray(HEADER, b.length - TAG)), decipher.final()])
          return { keyId: blobRef, plaintext: Redacted.make(new Uint8Array(plain)) }
        } catch {
          return yield* new KmsError({
            reason: "InvalidCiphertext",
            keyId: blobRef,
            detail: "the ciphertext is damaged or the encryption context does not match"
          })
        }
      })
    ))

  return Kms.of({ kind: KIND, generateDataKey, encrypt, decrypt })
})

/**
 * Provides the core `Kms` over a `KeyManager` (e.g. `LocalKeyStore.layer`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Kms, never, KeyManager> = Layer.effect(Kms, make)
