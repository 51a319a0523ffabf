/**
 * The decrypted contents of a key store (and of a backup bundle), as stored JSON.
 */
import { Effect, Redacted, Schema } from "effect"
import { KeyStoreError } from "@objcrypt/core/Errors"
import { KeyAlgorithm, KeyPurpose } from "@objcrypt/core/KeyStore"
import * as crypto from "node:crypto"
import * as KeyMaterial from "../KeyMaterial.js"

export const StoredMaterial = Schema.Union(
  Schema.Struct({ kind: Schema.Literal("symmetric"), key: Schema.String }),
  Schema.Struct({ kind: Schema.Literal("public"), spki: Schema.String }),
  Schema.Struct({ kind: Schema.Literal("pair"), pkcs8: Schema.String })
)
export type StoredMaterial = typeof StoredMaterial.Type

export const VersionRecord = Schema.Struct({
  version: Schema.Int.pipe(Schema.positive()),
  createdAt: Schema.String,
  state: Schema.Literal("enabled", "disabled", "deleted"),
  deletedAt: Schema.optional(Schema.String),
  origin: Schema.Literal("generated", "imported"),
  fingerprint: Schema.String,
  material: StoredMaterial
})
export type VersionRecord = typeof VersionRecord.Type

export const KeyRecord = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  algorithm: KeyAlgorithm,
  purpose: KeyPurpose,
  description: Schema.optional(Schema.String),
  extractable: Schema.Boolean,
  state: Schema.Literal("enabled", "disabled", "deleted"),
  deletedAt: Schema.optional(Schema.String),
  createdAt: Schema.String,
  primaryVersion: Schema.Int,
  versions: Schema.Array(VersionRecord)
})
export type KeyRecord = typeof KeyRecord.Type

export const StoreData = Schema.Struct({
  format: Schema.Literal("objcrypt-keystore"),
  version: Schema.Literal(1),
  /** Incremented on every write: a restore or a reader can tell which copy is newer. */
  generation: Schema.Int,
  keys: Schema.Array(KeyRecord),
  aliases: Schema.Record({ key: Schema.String, value: Schema.String })
})
export type StoreData = typeof StoreData.Type

export const empty: StoreData = { format: "objcrypt-keystore", version: 1, generation: 0, keys: [], aliases: {} }

const decodeData = Schema.decodeUnknownEither(Schema.parseJson(StoreData))

/** Parses decrypted JSON; schema errors would quote values (material), so only a summary escapes. */
export const parse = (json: Buffer, what: string): Effect.Effect<StoreData, KeyStoreError> => {
  const text = json.toString("utf8")
  json.fill(0)
  const r = decodeData(text)
  return r._tag === "Right"
    ? Effect.succeed(r.right)
    : Effect.fail(new KeyStoreError({ reason: "Corrupt", detail: `${what}: contents do not match the expected structure` }))
}

export const serialize = (data: StoreData): Buffer => Buffer.from(JSON.stringify(data), "utf8")

export const toStored = (m: KeyMaterial.KeyMaterial): StoredMaterial => {
  switch (m._tag) {
    case "Symmetric":
      return { kind: "symmetric", key: Buffer.from(Redacted.value(m.bytes)).toString("base64") }
    case "PublicKey":
      return { kind: "public", spki: m.publicKey.export({ format: "der", type: "spki" }).toString("base64") }
    case "KeyPair":
      return { kind: "pair", pkcs8: Redacted.value(m.privateKey).export({ format: "der", type: "pkcs8" }).toString("base64") }
  }
}

export const fromStored = (s: StoredMaterial, algorithm: KeyAlgorithm): KeyMaterial.KeyMaterial => {
  switch (s.kind) {
    case "symmetric":
      return { _tag: "Symmetric", algorithm: "aes-256", bytes: Redacted.make(new Uint8Array(Buffer.from(s.key, "base64"))) }
    case "public":
      return {
        _tag: "PublicKey",
        algorithm: algorithm as "rsa-oaep-256" | "x25519",
        publicKey: crypto.createPublicKey({ key: Buffer.from(s.spki, "base64"), format: "der", type: "spki" })
      }
    case "pair": {
      const privateKey = crypto.createPrivateKey({ key: Buffer.from(s.pkcs8, "base64"), format: "der", type: "pkcs8" })
      return {
        _tag: "KeyPair",
        algorithm: algorithm as "rsa-oaep-256" | "x25519",
        publicKey: crypto.createPublicKey(privateKey),
        privateKey: Redacted.make(privateKey)
      }
    }
  }
}
