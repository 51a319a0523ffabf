/**
 * Key management over a key store: generate, import, export, rotate, enable/disable, delete with
 * safeguards, aliases, snapshots for backup. The CLI's `keys` commands and the local KMS use it;
 * encryption code only needs the core `KeyStore` contract.
 *
 * @since 0.1.0
 */
import { Context } from "effect"
import type { Effect, Redacted } from "effect"
import type { InvalidCustomerKey, KeyNotFound, KeyStoreError, KeyUnusable } from "@objcrypt/core/Errors"
import type { KeyAlgorithm, KeyInfo, KeyPurpose, ResolvedKey } from "@objcrypt/core/KeyStore"
import type { Format, GenerateOptions as MaterialOptions } from "./KeyMaterial.js"

/**
 * @since 0.1.0
 * @category models
 */
export type KeyState = "enabled" | "disabled" | "deleted"

/**
 * @since 0.1.0
 * @category models
 */
export interface VersionDetails {
  readonly version: number
  readonly state: KeyState
  readonly primary: boolean
  readonly origin: "generated" | "imported"
  readonly createdAt: Date
  readonly deletedAt?: Date | undefined
  /** `kcv:` key check value (symmetric) or `sha256:` of the SPKI (public): safe to print. */
  readonly fingerprint: string
  /** True when the version holds a private key (key pairs). */
  readonly hasPrivate: boolean
}

/**
 * Everything about a key except its material.
 *
 * @since 0.1.0
 * @category models
 */
export interface KeyDetails {
  /** Stable id (a UUID), unchanged by renames and rotation. */
  readonly id: string
  readonly name: string
  readonly algorithm: KeyAlgorithm
  readonly purpose: KeyPurpose
  readonly description?: string | undefined
  /** When false, `export` refuses to release the material (backups still carry it, encrypted). */
  readonly extractable: boolean
  readonly state: KeyState
  readonly createdAt: Date
  readonly deletedAt?: Date | undefined
  readonly primaryVersion: number
  readonly aliases: ReadonlyArray<string>
  readonly versions: ReadonlyArray<VersionDetails>
}

/**
 * Names a key: its name, its stable id, or `alias/<alias>`, optionally followed by `@<version>`.
 *
 * @since 0.1.0
 * @category models
 */
export type KeyRef = string

/**
 * @since 0.1.0
 * @category models
 */
export interface GenerateOptions extends MaterialOptions {
  readonly name: string
  /** @default "aes-256" */
  readonly algorithm?: KeyAlgorithm | undefined
  /** @default "wrap" for aes-256, "recipient" otherwise */
  readonly purpose?: KeyPurpose | undefined
  readonly description?: string | undefined
  /** @default true */
  readonly extractable?: boolean | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ImportOptions {
  readonly name: string
  /** The encoded key, as read from a file or a prompt. */
  readonly material: Redacted.Redacted<Uint8Array | string>
  /** @default "auto" */
  readonly format?: Format | "auto" | undefined
  /** @default "wrap" for symmetric keys, "recipient" otherwise */
  readonly purpose?: KeyPurpose | undefined
  readonly description?: string | undefined
  /** @default true */
  readonly extractable?: boolean | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ExportOptions {
  readonly format: Format
  /** Export the private half of a key pair. @default false */
  readonly includePrivate?: boolean | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RotateOptions {
  /** New material for an imported key; generated when absent. */
  readonly material?: Redacted.Redacted<Uint8Array | string> | undefined
  readonly format?: Format | "auto" | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface DeleteOptions {
  /**
   * Delete an enabled key, or the primary version. Without it, a key must be disabled first and
   * the primary version cannot be deleted.
   * @default false
   */
  readonly force?: boolean | undefined
}

/**
 * Where a key and version named by a ref stand: what the CLI needs to tell whether an object's
 * recorded (key id, version) is the key's primary.
 *
 * @since 0.1.0
 * @category models
 */
export interface PrimaryInfo {
  readonly id: string
  readonly name: string
  readonly version: number
  readonly primaryVersion: number
  readonly isPrimary: boolean
}

/**
 * The whole store (or a selection of keys) in memory, for a backup. Opaque.
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly _tag: "Snapshot"
  readonly keyCount: number
  readonly generation: number
  /** Internal: the store contents. */
  readonly contents: Redacted.Redacted<unknown>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RestoreOptions {
  /** `replace` swaps the whole store; `merge` adds missing keys and versions. @default "merge" */
  readonly mode?: "replace" | "merge" | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RestoreReport {
  readonly mode: "replace" | "merge"
  /** Keys that were not in the store. */
  readonly added: ReadonlyArray<string>
  /** Keys that gained versions. */
  readonly updated: ReadonlyArray<string>
  readonly unchanged: ReadonlyArray<string>
}

/**
 * @since 0.1.0
 * @category errors
 */
export type ManagerError = KeyNotFound | KeyUnusable | KeyStoreError

/**
 * @since 0.1.0
 * @category tags
 */
export class KeyManager extends Context.Tag("@objcrypt/keys/KeyManager")<KeyManager, {
  /** The store's location, for messages. */
  readonly location: string
  readonly generate: (options: GenerateOptions) => Effect.Effect<KeyDetails, KeyStoreError | InvalidCustomerKey>
  readonly import: (options: ImportOptions) => Effect.Effect<KeyDetails, KeyStoreError | InvalidCustomerKey>
  /** Encodes one version (the primary by default); refused for non-extractable keys. */
  readonly export: (
    ref: KeyRef,
    options: ExportOptions
  ) => Effect.Effect<Redacted.Redacted<Uint8Array>, ManagerError | InvalidCustomerKey>
  readonly list: (options?: { readonly includeDeleted?: boolean | undefined }) => Effect.Effect<ReadonlyArray<KeyDetails>, KeyStoreError>
  readonly show: (ref: KeyRef) => Effect.Effect<KeyDetails, KeyNotFound | KeyStoreError>
  /** Adds a version and makes it primary; earlier versions stay usable for decryption. */
  readonly rotate: (ref: KeyRef, options?: RotateOptions) => Effect.Effect<KeyDetails, ManagerError | InvalidCustomerKey>
  /** Without `@version`, the whole key. */
  readonly enable: (ref: KeyRef) => Effect.Effect<KeyDetails, ManagerError>
  readonly disable: (ref: KeyRef) => Effect.Effect<KeyDetails, ManagerError>
  /** Soft delete (recoverable with `undelete` until `purge`). See {@link DeleteOptions}. */
  readonly delete: (ref: KeyRef, options?: DeleteOptions) => Effect.Effect<KeyDetails, ManagerError>
  readonly undelete: (ref: KeyRef) => Effect.Effect<KeyDetails, ManagerError>
  /** Erases a deleted key or version for good; refused unless it was deleted first. */
  readonly purge: (ref: KeyRef) => Effect.Effect<void, ManagerError>
  readonly rename: (ref: KeyRef, newName: string) => Effect.Effect<KeyDetails, ManagerError>
  readonly setAlias: (alias: string, ref: KeyRef) => Effect.Effect<void, ManagerError>
  readonly removeAlias: (alias: string) => Effect.Effect<void, ManagerError>
  /** Every version of a key as core `KeyInfo` (no material). */
  readonly versionsOf: (ref: KeyRef) => Effect.Effect<ReadonlyArray<KeyInfo>, KeyNotFound | KeyStoreError>
  /** Whether `ref` (e.g. `<id>@<version>` from an envelope) names the key's primary version. */
  readonly primaryOf: (ref: KeyRef) => Effect.Effect<PrimaryInfo, KeyNotFound | KeyStoreError>
  /**
   * Resolves a ref to usable material: the version given, or the primary. Disabled keys fail with
   * `KeyUnusable`; deleted keys are not found.
   */
  readonly resolveRef: (ref: KeyRef) => Effect.Effect<ResolvedKey, ManagerError>
  /** Re-encrypts the store under a new passphrase (fresh salt). */
  readonly changePassphrase: (passphrase: Redacted.Redacted<string>) => Effect.Effect<void, KeyStoreError>
  /** The store, or the named keys only, for a backup or an export bundle. */
  readonly snapshot: (refs?: ReadonlyArray<KeyRef> | undefined) => Effect.Effect<Snapshot, ManagerError>
  /** Applies a verified snapshot atomically. Conflicts fail before anything changes. */
  readonly restore: (snapshot: Snapshot, options?: RestoreOptions) => Effect.Effect<RestoreReport, KeyStoreError>
}>() {}
