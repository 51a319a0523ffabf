/**
 * Where the KMS service's key material lives: the passphrase-protected key store
 * (`@objcrypt/keys` `KeyManager`, one non-extractable `aes-256` wrap key per KMS key, one key-store
 * version per KMS key version) or a PKCS#11 token (one non-extractable AES-256 token key per KMS
 * key version; the token does the AES-GCM). Both seal the same blob layout (`KmsBlob`).
 *
 * @since 0.1.0
 */
import type { KmsError } from "@objcrypt/core/Errors"
import type { KeyManager } from "@objcrypt/keys/KeyManager"
import type { Pkcs11Hsm } from "@objcrypt/keys/Pkcs11Kms"
import { Effect, Option, Redacted } from "effect"
import * as crypto from "node:crypto"
import * as KmsBlob from "./KmsBlob.js"
import { errors } from "./KmsError.js"
import type { KmsApiError } from "./KmsError.js"

/**
 * Key material operations; `ref` is the backend's name for one version.
 *
 * @since 0.1.0
 * @category models
 */
export interface KmsBackend {
  readonly kind: "keyStore" | "pkcs11"
  /** Creates version 1 of a new key; returns the key id (a UUID) and the version's ref. */
  readonly createKey: (description: string) => Effect.Effect<{ readonly keyId: string; readonly ref: string }, KmsApiError>
  /** Creates material for a new version (rotation). */
  readonly addVersion: (keyId: string, version: number) => Effect.Effect<string, KmsApiError>
  readonly seal: (
    keyId: string,
    version: number,
    ref: string,
    plaintext: Uint8Array,
    context: Readonly<Record<string, string>>
  ) => Effect.Effect<Uint8Array, KmsApiError>
  /** `None` when the blob is damaged or the context differs. */
  readonly open: (
    parsed: KmsBlob.Parsed,
    ref: string,
    context: Readonly<Record<string, string>>
  ) => Effect.Effect<Option.Option<Buffer>, KmsApiError>
  /** Destroys every version of a key (end of its deletion waiting period). */
  readonly destroy: (keyId: string, refs: ReadonlyArray<string>) => Effect.Effect<void, KmsApiError>
}

const internal = (what: string) => (e: { readonly _tag: string }) => errors.internal(`${what} failed (${e._tag})`)

/**
 * Keys in the key store behind a `KeyManager`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const keyStore = (manager: KeyManager["Type"]): KmsBackend => {
  // Versions are immutable: a KeyObject per version is safe to keep.
  const cache = new Map<string, crypto.KeyObject>()
  const keyOf = (ref: string) =>
    Effect.suspend(() => {
      const hit = cache.get(ref)
      if (hit !== undefined) return Effect.succeed(hit)
      return manager.resolveRef(ref).pipe(
        Effect.mapError(internal("resolving key material")),
        Effect.flatMap((k) => {
          if (k._tag !== "Symmetric") return Effect.fail(errors.internal("the key store holds no symmetric key for this version"))
          const key = crypto.createSecretKey(Redacted.value(k.material))
          cache.set(ref, key)
          return Effect.succeed(key)
        })
      )
    })
  return {
    kind: "keyStore",
    createKey: (description) =>
      manager.generate({
        name: `kms-${crypto.randomBytes(12).toString("hex")}`,
        algorithm: "aes-256",
        purpose: "wrap",
        extractable: false,
        ...(description === "" ? {} : { description: description.slice(0, 256) })
      }).pipe(
        Effect.mapError(internal("creating the key")),
        Effect.map((d) => ({ keyId: d.id, ref: `${d.id}@${d.primaryVersion}` }))
      ),
    addVersion: (keyId, version) =>
      manager.rotate(keyId).pipe(
        Effect.mapError(internal("rotating the key")),
        Effect.flatMap((d) =>
          d.primaryVersion === version
            ? Effect.succeed(`${d.id}@${d.primaryVersion}`)
            : Effect.fail(errors.internal("the key store's versions and the KMS's disagree"))
        )
      ),
    seal: (keyId, version, ref, plaintext, context) => Effect.map(keyOf(ref), (key) => KmsBlob.seal(key, keyId, version, plaintext, context)),
    open: (parsed, ref, context) => Effect.map(keyOf(ref), (key) => KmsBlob.open(key, parsed, context)),
    destroy: (keyId, refs) =>
      Effect.gen(function*() {
        for (const r of refs) cache.delete(r)
        // Idempotent: a retry after a partial failure finds the key already deleted or purged.
        yield* manager.delete(keyId, { force: true }).pipe(
          Effect.asVoid,
          Effect.catchTag("KeyNotFound", () => Effect.void),
          Effect.mapError(internal("deleting the key"))
        )
        yield* manager.purge(keyId).pipe(Effect.catchTag("KeyNotFound", () => Effect.void), Effect.mapError(internal("purging the key")))
      })
  }
}

const hsmError = (what: string) => (e: KmsError) => errors.internal(`${what} failed in the HSM (${e.reason})`)

/**
 * Keys as non-extractable AES-256 keys in a PKCS#11 token: version `n` of key `k` is the token key
 * labelled `kms-<k>-v<n>`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const pkcs11 = (hsm: Pkcs11Hsm["Type"]): KmsBackend => {
  const label = (keyId: string, version: number) => `kms-${keyId}-v${version}`
  return {
    kind: "pkcs11",
    createKey: () =>
      Effect.gen(function*() {
        const keyId = crypto.randomUUID()
        const info = yield* hsm.generateKey(label(keyId, 1)).pipe(Effect.mapError(hsmError("key generation")))
        return { keyId, ref: info.label }
      }),
    addVersion: (keyId, version) =>
      Effect.map(hsm.generateKey(label(keyId, version)).pipe(Effect.mapError(hsmError("key generation"))), (i) => i.label),
    seal: (keyId, version, ref, plaintext, context) =>
      Effect.gen(function*() {
        const h = KmsBlob.header(keyId, version, crypto.randomBytes(KmsBlob.IV_LENGTH))
        const sealed = yield* hsm.encryptGcm(ref, h.subarray(24), KmsBlob.aad(h, context), plaintext).pipe(
          Effect.mapError(hsmError("encryption"))
        )
        return new Uint8Array(Buffer.concat([h, sealed]))
      }),
    open: (parsed, ref, context) =>
      hsm.decryptGcm(ref, parsed.iv, KmsBlob.aad(parsed.header, context), parsed.sealed).pipe(
        Effect.map((p) => Option.some(Buffer.from(p))),
        Effect.catchAll((e) => (e.reason === "InvalidCiphertext" ? Effect.succeed(Option.none()) : Effect.fail(hsmError("decryption")(e))))
      ),
    destroy: (_keyId, refs) =>
      Effect.forEach(refs, (r) => Effect.ignore(hsm.deleteKey(r)), { discard: true })
  }
}
