/**
 * A small in-memory implementation of core's own `KeyStore` contract (named, versioned keys;
 * rotation keeps old versions), so these tests need no `@objcrypt/keys` (drivers may not import it).
 */
import { KeyNotFound } from "@objcrypt/core/Errors"
import { KeyStore } from "@objcrypt/core/KeyStore"
import type { KeyAlgorithm, KeyInfo, KeyPurpose, ResolvedKey } from "@objcrypt/core/KeyStore"
import { Effect, Layer, Redacted } from "effect"
import * as crypto from "node:crypto"

export interface MemoryKeyStore {
  readonly layer: Layer.Layer<KeyStore>
  /** Adds a new primary version of `name` (a new key on first use). */
  readonly add: (name: string, algorithm: KeyAlgorithm, options?: { purpose?: KeyPurpose; publicOnly?: boolean }) => ResolvedKey
  readonly remove: (name: string) => void
}

export const make = (): MemoryKeyStore => {
  const keys = new Map<string, Array<ResolvedKey>>()
  const ids = new Map<string, string>()
  const add: MemoryKeyStore["add"] = (name, algorithm, options) => {
    const versions = keys.get(name) ?? []
    const id = ids.get(name) ?? `key-${crypto.randomBytes(6).toString("hex")}`
    ids.set(name, id)
    for (const [i, v] of versions.entries()) versions[i] = { ...v, info: { ...v.info, primary: false } } as ResolvedKey
    const info: KeyInfo = {
      id,
      name,
      version: versions.length + 1,
      algorithm,
      purpose: options?.purpose ?? (algorithm === "aes-256" ? "wrap" : "recipient"),
      primary: true,
      state: "enabled",
      createdAt: new Date()
    }
    let resolved: ResolvedKey
    if (algorithm === "aes-256") resolved = { _tag: "Symmetric", info, material: Redacted.make(new Uint8Array(crypto.randomBytes(32))) }
    else {
      const pair = algorithm === "x25519" ? crypto.generateKeyPairSync("x25519") : crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
      resolved = options?.publicOnly === true
        ? { _tag: "PublicKey", info, publicKey: pair.publicKey }
        : { _tag: "KeyPair", info, publicKey: pair.publicKey, privateKey: Redacted.make(pair.privateKey) }
    }
    versions.push(resolved)
    keys.set(name, versions)
    return resolved
  }
  const store = KeyStore.of({
    resolve: (name, version) => {
      const versions = keys.get(name) ?? []
      const found = version === undefined ? versions.find((v) => v.info.primary) : versions.find((v) => v.info.version === version)
      return found === undefined ? Effect.fail(new KeyNotFound({ name, ...(version === undefined ? {} : { version }) })) : Effect.succeed(found)
    },
    resolveId: (id, version) => {
      const found = [...keys.values()].flat().find((v) => v.info.id === id && v.info.version === version)
      return found === undefined ? Effect.fail(new KeyNotFound({ name: id, version })) : Effect.succeed(found)
    },
    list: Effect.sync(() => [...keys.values()].flat().map((v) => v.info))
  })
  return { layer: Layer.succeed(KeyStore, store), add, remove: (name) => keys.delete(name) }
}
