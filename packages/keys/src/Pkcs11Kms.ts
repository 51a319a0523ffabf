/**
 * An HSM backend over PKCS#11 (tested with SoftHSM2): master keys are AES-256 keys created inside
 * the token as sensitive and non-extractable, and data keys are wrapped by the token with AES-GCM
 * (`CKM_AES_GCM`), the encryption context bound as AAD. Provides the core `Kms` (kind
 * `"pkcs11"`) and `Pkcs11Hsm` for key management. Blob layout: see docs/KEYSTORE.md §4.
 *
 * `pkcs11js` is loaded only when a layer is built, so the rest of the package works without it.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Redacted } from "effect"
import type { EncryptionContext } from "@objcrypt/core/EncryptionMode"
import { KeyUnusable, KmsError } from "@objcrypt/core/Errors"
import { Kms } from "@objcrypt/core/Kms"
import * as crypto from "node:crypto"
import { createRequire } from "node:module"
import type * as Pkcs11Js from "pkcs11js"
import { canonicalContext, MAX_PLAINTEXT } from "./LocalKms.js"

const MAGIC = Buffer.from([0x6f, 0x63, 0x48, 0x01])
const ID_LENGTH = 16
const HEADER = 4 + ID_LENGTH + 12
const TAG = 16

/**
 * @since 0.1.0
 * @category models
 */
export interface Pkcs11Config {
  /** The PKCS#11 module, e.g. `/usr/lib/softhsm/libsofthsm2.so`. */
  readonly library: string
  /** The token's label (as set by `softhsm2-util --init-token --label`). */
  readonly tokenLabel: string
  /** The user PIN. */
  readonly pin: Redacted.Redacted<string>
}

/**
 * A master key in the token (no material: it never leaves the token).
 *
 * @since 0.1.0
 * @category models
 */
export interface HsmKeyInfo {
  /** `CKA_LABEL`: the name used as key id. */
  readonly label: string
  /** `CKA_ID`, hex: recorded in every blob. */
  readonly id: string
  readonly extractable: boolean
  readonly sensitive: boolean
}

/**
 * Master-key management in the token.
 *
 * @since 0.1.0
 * @category tags
 */
export class Pkcs11Hsm extends Context.Tag("@objcrypt/keys/Pkcs11Hsm")<Pkcs11Hsm, {
  /** Creates a non-extractable AES-256 master key; fails with `Invalid` if the label exists. */
  readonly generateKey: (label: string) => Effect.Effect<HsmKeyInfo, KmsError>
  readonly listKeys: Effect.Effect<ReadonlyArray<HsmKeyInfo>, KmsError>
  /** Always refused for token keys: they are non-extractable by construction. */
  readonly exportKey: (label: string) => Effect.Effect<never, KeyUnusable | KmsError>
  readonly deleteKey: (label: string) => Effect.Effect<void, KmsError>
  /**
   * AES-256-GCM in the token under the key `label` with the caller's 12-byte nonce and AAD;
   * returns ciphertext followed by the 16-byte tag (for callers with their own blob layout).
   */
  readonly encryptGcm: (label: string, iv: Uint8Array, aad: Uint8Array, plaintext: Uint8Array) => Effect.Effect<Uint8Array, KmsError>
  /** The inverse of `encryptGcm`; a wrong tag, nonce or AAD fails with `InvalidCiphertext`. */
  readonly decryptGcm: (label: string, iv: Uint8Array, aad: Uint8Array, sealed: Uint8Array) => Effect.Effect<Uint8Array, KmsError>
}>() {}

const ckr = (e: unknown): string => {
  const m = /CKR_[A-Z_]+/.exec(String((e as Error)?.message ?? ""))
  return m === null ? "PKCS#11 error" : m[0]
}

/**
 * The libraries loaded in this process. A PKCS#11 library is initialised once per process
 * (`C_Initialize` again fails with `CKR_CRYPTOKI_ALREADY_INITIALIZED`) and a login covers every
 * session of the application on that token (`C_Logout` on one ends them all), so two users of one
 * token in one process (the gateway's SSE-S3 keys and its KMS listener) share the library and the
 * login: the last to close logs out and finalises.
 */
const libraries = new Map<string, {
  readonly p11: Pkcs11Js.PKCS11
  users: number
  readonly logins: Map<string, { count: number; readonly pin: Buffer }>
}>()

const pinDigest = (pin: Redacted.Redacted<string>) => crypto.createHash("sha256").update(Redacted.value(pin), "utf8").digest()

const openSession = (lib: typeof Pkcs11Js, config: Pkcs11Config) => {
  let shared = libraries.get(config.library)
  if (shared === undefined) {
    const p11 = new lib.PKCS11()
    p11.load(config.library)
    p11.C_Initialize()
    shared = { p11, users: 0, logins: new Map() }
    libraries.set(config.library, shared)
  }
  const entry = shared
  const { p11 } = entry
  entry.users++
  const releaseLibrary = () => {
    if (--entry.users === 0) {
      libraries.delete(config.library)
      p11.C_Finalize()
    }
  }
  try {
    const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === config.tokenLabel)
    if (slot === undefined) throw new Error("CKR_TOKEN_NOT_PRESENT")
    const slotKey = slot.toString("hex")
    const session = p11.C_OpenSession(slot, lib.CKF_RW_SESSION | lib.CKF_SERIAL_SESSION)
    const pin = pinDigest(config.pin)
    const login = entry.logins.get(slotKey)
    try {
      if (login === undefined) {
        p11.C_Login(session, lib.CKU_USER, Redacted.value(config.pin))
        entry.logins.set(slotKey, { count: 1, pin })
      } else {
        // Already logged in by another user in this process: the token would accept any PIN now,
        // so this one must be the PIN that logged in.
        if (!crypto.timingSafeEqual(login.pin, pin)) throw new Error("CKR_PIN_INCORRECT")
        login.count++
      }
    } catch (e) {
      p11.C_CloseSession(session)
      throw e
    }
    return {
      p11,
      session,
      close: () => {
        const l = entry.logins.get(slotKey)!
        try {
          if (--l.count === 0) {
            entry.logins.delete(slotKey)
            p11.C_Logout(session)
          }
          p11.C_CloseSession(session)
        } finally {
          releaseLibrary()
        }
      }
    }
  } catch (e) {
    releaseLibrary()
    throw e
  }
}

/**
 * Opens a session on the token and logs in; the session is closed and the library finalised when
 * the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (config: Pkcs11Config) =>
  Effect.gen(function*() {
    const lib = yield* Effect.try({
      try: () => createRequire(import.meta.url)("pkcs11js") as typeof Pkcs11Js,
      catch: () => new KmsError({ reason: "Unavailable", detail: "the pkcs11js module is not installed" })
    })
    const fail = (detail: string, keyId?: string) => (e: unknown) =>
      new KmsError({ reason: "Unavailable", keyId, detail: `${detail}: ${ckr(e)}` })

    const { p11, session } = yield* Effect.acquireRelease(
      Effect.try({ try: () => openSession(lib, config), catch: fail(`cannot open token ${JSON.stringify(config.tokenLabel)}`) }),
      (opened) => Effect.sync(opened.close)
    )

    const find = (template: Pkcs11Js.Template): Array<Pkcs11Js.Handle> => {
      p11.C_FindObjectsInit(session, [{ type: lib.CKA_CLASS, value: lib.CKO_SECRET_KEY }, ...template])
      try {
        return p11.C_FindObjects(session, 1000)
      } finally {
        p11.C_FindObjectsFinal(session)
      }
    }

    const info = (h: Pkcs11Js.Handle): HsmKeyInfo => {
      const [label, id, extractable, sensitive] = p11.C_GetAttributeValue(session, h, [
        { type: lib.CKA_LABEL },
        { type: lib.CKA_ID },
        { type: lib.CKA_EXTRACTABLE },
        { type: lib.CKA_SENSITIVE }
      ])
      const bool = (v: unknown) => (Buffer.isBuffer(v) ? v[0] === 1 : v === true)
      return {
        label: Buffer.isBuffer(label!.value) ? label!.value.toString("utf8") : String(label!.value),
        id: Buffer.isBuffer(id!.value) ? id!.value.toString("hex") : "",
        extractable: bool(extractable!.value),
        sensitive: bool(sensitive!.value)
      }
    }

    const byLabel = (label: string) =>
      Effect.try({ try: () => find([{ type: lib.CKA_LABEL, value: label }]), catch: fail("key lookup", label) }).pipe(
        Effect.flatMap((hs) =>
          hs.length === 1
            ? Effect.succeed(hs[0]!)
            : Effect.fail(new KmsError({ reason: "NotFound", keyId: label, detail: hs.length === 0 ? "no such key in the token" : "label is ambiguous" }))
        )
      )

    const byId = (id: Buffer) =>
      Effect.try({ try: () => find([{ type: lib.CKA_ID, value: id }]), catch: fail("key lookup") }).pipe(
        Effect.flatMap((hs) =>
          hs.length === 1
            ? Effect.succeed(hs[0]!)
            : Effect.fail(new KmsError({ reason: "NotFound", keyId: id.toString("hex"), detail: "the key of this ciphertext is not in the token" }))
        )
      )

    const generateKey = (label: string) =>
      Effect.gen(function*() {
        if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(label)) {
          return yield* new KmsError({ reason: "Invalid", keyId: label, detail: "a label is 1 to 64 letters, digits, '.', '_' or '-'" })
        }
        const existing = yield* Effect.try({ try: () => find([{ type: lib.CKA_LABEL, value: label }]), catch: fail("key lookup", label) })
        if (existing.length > 0) return yield* new KmsError({ reason: "Invalid", keyId: label, detail: "a key with this label exists" })
        return yield* Effect.try({
          try: () =>
            info(p11.C_GenerateKey(session, { mechanism: lib.CKM_AES_KEY_GEN }, [
              { type: lib.CKA_CLASS, value: lib.CKO_SECRET_KEY },
              { type: lib.CKA_KEY_TYPE, value: lib.CKK_AES },
              { type: lib.CKA_VALUE_LEN, value: 32 },
              { type: lib.CKA_TOKEN, value: true },
              { type: lib.CKA_PRIVATE, value: true },
              { type: lib.CKA_LABEL, value: label },
              { type: lib.CKA_ID, value: crypto.randomBytes(ID_LENGTH) },
              { type: lib.CKA_SENSITIVE, value: true },
              { type: lib.CKA_EXTRACTABLE, value: false },
              { type: lib.CKA_ENCRYPT, value: true },
              { type: lib.CKA_DECRYPT, value: true },
              { type: lib.CKA_WRAP, value: true },
              { type: lib.CKA_UNWRAP, value: true }
            ])),
          catch: fail("key generation", label)
        })
      })

    const exportKey = (label: string) =>
      Effect.gen(function*() {
        const h = yield* byLabel(label)
        // Ask the token, so the refusal is the HSM's and not only our policy.
        let refusal = "refused by objcrypt"
        try {
          p11.C_GetAttributeValue(session, h, [{ type: lib.CKA_VALUE }])
        } catch (e) {
          refusal = ckr(e)
        }
        return yield* new KeyUnusable({ name: label, reason: `the HSM key is not extractable (${refusal})` })
      })

    const gcm = (iv: Buffer, aad: Buffer) => ({
      mechanism: lib.CKM_AES_GCM,
      parameter: { type: lib.CK_PARAMS_AES_GCM, iv, aad, ivBits: 96, tagBits: 128 }
    })

    const seal = (label: string, plaintext: Uint8Array, context: EncryptionContext) =>
      Effect.gen(function*() {
        const h = yield* byLabel(label)
        const { id } = info(h)
        const header = Buffer.alloc(HEADER)
        MAGIC.copy(header, 0)
        Buffer.from(id, "hex").copy(header, 4)
        crypto.randomFillSync(header, 4 + ID_LENGTH, 12)
        const iv = header.subarray(4 + ID_LENGTH)
        const out = yield* Effect.try({
          try: () => {
            p11.C_EncryptInit(session, gcm(iv, Buffer.concat([header, canonicalContext(context)])), h)
            return p11.C_Encrypt(session, Buffer.from(plaintext), Buffer.alloc(plaintext.length + TAG))
          },
          catch: fail("encrypt", label)
        })
        return { keyId: label, ciphertext: new Uint8Array(Buffer.concat([header, out])) }
      })

    const kms = Kms.of({
      kind: "pkcs11",
      generateDataKey: (keyId, context) =>
        Effect.gen(function*() {
          const dataKey = crypto.randomBytes(32)
          const sealed = yield* seal(keyId, dataKey, context)
          return { ...sealed, plaintext: Redacted.make(new Uint8Array(dataKey)) }
        }),
      encrypt: (keyId, plaintext, context) => {
        const bytes = Redacted.value(plaintext)
        return bytes.length < 1 || bytes.length > MAX_PLAINTEXT
          ? Effect.fail(new KmsError({ reason: "Invalid", keyId, detail: `plaintext must be 1 to ${MAX_PLAINTEXT} bytes` }))
          : seal(keyId, bytes, context)
      },
      decrypt: (ciphertext, context, keyId) =>
        Effect.gen(function*() {
          const b = Buffer.from(ciphertext.buffer, ciphertext.byteOffset, ciphertext.byteLength)
          if (b.length < HEADER + TAG || !b.subarray(0, 4).equals(MAGIC)) {
            return yield* new KmsError({ reason: "InvalidCiphertext", detail: "not a PKCS#11 KMS ciphertext blob" })
          }
          const h = yield* byId(b.subarray(4, 4 + ID_LENGTH))
          const { label } = info(h)
          if (keyId !== undefined && keyId !== label) {
            return yield* new KmsError({ reason: "InvalidCiphertext", keyId, detail: "the ciphertext was not made under this key" })
          }
          const plain = yield* Effect.try({
            try: () => {
              p11.C_DecryptInit(session, gcm(b.subarray(4 + ID_LENGTH, HEADER), Buffer.concat([b.subarray(0, HEADER), canonicalContext(context)])), h)
              return p11.C_Decrypt(session, b.subarray(HEADER), Buffer.alloc(b.length - HEADER))
            },
            catch: () =>
              new KmsError({ reason: "InvalidCiphertext", keyId: label, detail: "the ciphertext is damaged or the encryption context does not match" })
          })
          return { keyId: label, plaintext: Redacted.make(new Uint8Array(plain)) }
        })
    })

    const hsm = Pkcs11Hsm.of({
      generateKey,
      listKeys: Effect.try({ try: () => find([]).map(info), catch: fail("listing keys") }),
      exportKey,
      deleteKey: (label) =>
        Effect.flatMap(byLabel(label), (h) => Effect.try({ try: () => p11.C_DestroyObject(session, h), catch: fail("delete", label) })),
      encryptGcm: (label, iv, aad, plaintext) =>
        Effect.flatMap(byLabel(label), (h) =>
          Effect.try({
            try: () => {
              p11.C_EncryptInit(session, gcm(Buffer.from(iv), Buffer.from(aad)), h)
              return new Uint8Array(p11.C_Encrypt(session, Buffer.from(plaintext), Buffer.alloc(plaintext.length + TAG)))
            },
            catch: fail("encrypt", label)
          })),
      decryptGcm: (label, iv, aad, sealed) =>
        Effect.flatMap(byLabel(label), (h) =>
          Effect.try({
            try: () => {
              p11.C_DecryptInit(session, gcm(Buffer.from(iv), Buffer.from(aad)), h)
              return new Uint8Array(p11.C_Decrypt(session, Buffer.from(sealed), Buffer.alloc(sealed.length)))
            },
            catch: () =>
              new KmsError({ reason: "InvalidCiphertext", keyId: label, detail: "the ciphertext is damaged or the AAD does not match" })
          }))
    })
    return { kms, hsm }
  })

/**
 * Provides the core `Kms` and `Pkcs11Hsm` over one token session.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (config: Pkcs11Config): Layer.Layer<Kms | Pkcs11Hsm, KmsError> =>
  Layer.scopedContext(Effect.map(make(config), ({ hsm, kms }) => Context.make(Kms, kms).pipe(Context.add(Pkcs11Hsm, hsm))))
