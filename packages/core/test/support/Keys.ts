/**
 * Small in-memory implementations of core's own `Kms` and `KeyStore` contracts for core's tests.
 */
import { Effect, Redacted } from "effect"
import * as crypto from "node:crypto"
import { KeyNotFound, KmsError } from "../../src/Errors.js"
import type * as KeyStore from "../../src/KeyStore.js"
import type * as Kms from "../../src/Kms.js"
import * as NativeFormat from "../../src/NativeFormat.js"

export const memoryKms = (
  keys: Record<string, Uint8Array>,
  /** Deterministic nonces for test vectors. */
  nonceOf: (plaintext: Uint8Array) => Uint8Array = () => crypto.randomBytes(12)
): Kms.Kms["Type"] => {
  const aad = (ctx: Readonly<Record<string, string>>) => Buffer.from(NativeFormat.canonicalJson(ctx), "utf8")
  const encrypt = (keyId: string, pt: Uint8Array, ctx: Readonly<Record<string, string>>) => {
    const k = keys[keyId]
    if (k === undefined) return Effect.fail(new KmsError({ reason: "NotFound", keyId, detail: "no such key" }))
    const nonce = nonceOf(pt)
    const c = crypto.createCipheriv("aes-256-gcm", k, nonce)
    c.setAAD(aad(ctx))
    const ct = Buffer.concat([c.update(pt), c.final()])
    const id = Buffer.from(keyId)
    return Effect.succeed({ keyId: `arn:test:${keyId}`, ciphertext: Buffer.concat([Buffer.from([id.length]), id, nonce, ct, c.getAuthTag()]) })
  }
  return {
    kind: "test",
    generateDataKey: (keyId, ctx) => {
      const pt = crypto.randomBytes(32)
      return Effect.map(encrypt(keyId, pt, ctx), (r) => ({ ...r, plaintext: Redacted.make(pt) }))
    },
    encrypt: (keyId, pt, ctx) => encrypt(keyId, Redacted.value(pt), ctx),
    decrypt: (blob, ctx) => {
      const n = blob[0] ?? 0
      const keyId = Buffer.from(blob.subarray(1, 1 + n)).toString()
      const k = keys[keyId]
      if (k === undefined) return Effect.fail(new KmsError({ reason: "NotFound", keyId, detail: "no such key" }))
      try {
        const rest = blob.subarray(1 + n)
        const d = crypto.createDecipheriv("aes-256-gcm", k, rest.subarray(0, 12))
        d.setAAD(aad(ctx))
        d.setAuthTag(rest.subarray(rest.length - 16))
        const pt = Buffer.concat([d.update(rest.subarray(12, rest.length - 16)), d.final()])
        return Effect.succeed({ keyId: `arn:test:${keyId}`, plaintext: Redacted.make(pt) })
      } catch {
        return Effect.fail(new KmsError({ reason: "InvalidCiphertext", keyId, detail: "cannot decrypt" }))
      }
    }
  }
}

const info = (id: string, version: number, algorithm: KeyStore.KeyAlgorithm): KeyStore.KeyInfo => ({
  id,
  name: id,
  version,
  algorithm,
  purpose: algorithm === "aes-256" ? "wrap" : "recipient",
  primary: true,
  state: "enabled",
  createdAt: new Date(0)
})

export const symmetric = (id: string, version: number, material: Uint8Array): KeyStore.ResolvedKey => ({
  _tag: "Symmetric",
  info: info(id, version, "aes-256"),
  material: Redacted.make(material)
})

export const keyPair = (id: string, version: number, privateKey: crypto.KeyObject): KeyStore.ResolvedKey => ({
  _tag: "KeyPair",
  info: info(id, version, privateKey.asymmetricKeyType === "rsa" ? "rsa-oaep-256" : "x25519"),
  publicKey: crypto.createPublicKey(privateKey),
  privateKey: Redacted.make(privateKey)
})

export const publicOnly = (id: string, version: number, publicKey: crypto.KeyObject): KeyStore.ResolvedKey => ({
  _tag: "PublicKey",
  info: info(id, version, publicKey.asymmetricKeyType === "rsa" ? "rsa-oaep-256" : "x25519"),
  publicKey
})

export const memoryKeyStore = (keys: ReadonlyArray<KeyStore.ResolvedKey>): KeyStore.KeyStore["Type"] => ({
  resolve: (name, version) => {
    const found = keys.filter((k) => k.info.name === name && (version === undefined || k.info.version === version))
      .sort((a, b) => b.info.version - a.info.version)[0]
    return found === undefined ? Effect.fail(new KeyNotFound({ name, version })) : Effect.succeed(found)
  },
  resolveId: (id, version) => {
    const found = keys.find((k) => k.info.id === id && k.info.version === version)
    return found === undefined ? Effect.fail(new KeyNotFound({ name: id, version })) : Effect.succeed(found)
  },
  list: Effect.succeed(keys.map((k) => k.info))
})
