/**
 * The AWS KMS operations the service implements, over a key backend and the registry: input
 * validation as the AWS KMS API reference states it, key resolution (key id, key ARN, alias name,
 * alias ARN), key states, rotation (automatic and on demand; every version keeps decrypting),
 * deletion after a waiting period, per-access-key grants, and one audit entry per call (ids,
 * context and outcome; never key material or plaintext).
 *
 * @since 0.1.0
 */
import type { AuditLog } from "@objcrypt/keys/AuditLog"
import { Effect, Option } from "effect"
import * as crypto from "node:crypto"
import type * as SigV4 from "../SigV4.js"
import type { KmsBackend } from "./KmsBackend.js"
import * as KmsBlob from "./KmsBlob.js"
import { errors, KmsApiError } from "./KmsError.js"
import type { KeyRecord, KmsRegistry, State } from "./KmsRegistry.js"

/**
 * The operations (the `X-Amz-Target` suffix after `TrentService.`).
 *
 * @since 0.1.0
 * @category models
 */
export const OPERATIONS = [
  "CancelKeyDeletion",
  "CreateAlias",
  "CreateKey",
  "Decrypt",
  "DeleteAlias",
  "DescribeKey",
  "DisableKey",
  "DisableKeyRotation",
  "EnableKey",
  "EnableKeyRotation",
  "Encrypt",
  "GenerateDataKey",
  "GenerateDataKeyWithoutPlaintext",
  "GenerateRandom",
  "GetKeyRotationStatus",
  "ListAliases",
  "ListKeyRotations",
  "ListKeys",
  "ReEncrypt",
  "RotateKeyOnDemand",
  "ScheduleKeyDeletion",
  "UpdateAlias"
] as const

/**
 * @since 0.1.0
 * @category models
 */
export type Operation = typeof OPERATIONS[number]

/**
 * What an access key may do: operations (AWS action names without `kms:`, `*`, or a prefix ending
 * in `*` such as `Generate*`; `ReEncrypt` needs `ReEncryptFrom` on the source key and `ReEncryptTo`
 * on the destination) on keys (key ids, key ARNs, `alias/…` names, or `*`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Grant {
  readonly accessKeyId: string
  readonly keys: "*" | ReadonlyArray<string>
  readonly operations: "*" | ReadonlyArray<string>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Settings {
  readonly region: string
  readonly accountId: string
  readonly grants: ReadonlyArray<Grant>
  /** Time in ms; injectable so tests can pass a deletion waiting period. */
  readonly now: () => number
  readonly audit: AuditLog["Type"] | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export type Json = { readonly [k: string]: unknown }

const DAY = 24 * 3600 * 1000
const MAX_PLAINTEXT = 4096
const MAX_CIPHERTEXT = 6144
const ALIAS = /^alias\/[a-zA-Z0-9/_-]+$/

interface Audit {
  keyId?: string | undefined
  version?: number | undefined
  context?: Readonly<Record<string, string>> | undefined
}

// ---------------------------------------------------------------------------------------------
// input

type Field<A> = (input: Json, name: string) => Effect.Effect<A, KmsApiError>

const optional = <A>(check: (v: unknown, name: string) => Effect.Effect<A, KmsApiError>): Field<A | undefined> => (input, name) =>
  input[name] === undefined || input[name] === null ? Effect.succeed(undefined) : check(input[name], name)
const required = <A>(check: (v: unknown, name: string) => Effect.Effect<A, KmsApiError>): Field<A> => (input, name) =>
  input[name] === undefined || input[name] === null
    ? Effect.fail(errors.validation(`1 validation error detected: Value null at '${lower(name)}' failed to satisfy constraint: Member must not be null`))
    : check(input[name], name)
const lower = (name: string) => name.charAt(0).toLowerCase() + name.slice(1)
const constraint = (name: string, what: string) =>
  errors.validation(`1 validation error detected: Value at '${lower(name)}' failed to satisfy constraint: ${what}`)

const string = (min: number, max: number) => (v: unknown, name: string): Effect.Effect<string, KmsApiError> =>
  typeof v !== "string"
    ? Effect.fail(errors.serialization(`${name} must be a string`))
    : v.length < min || v.length > max
    ? Effect.fail(constraint(name, `Member must have length between ${min} and ${max}`))
    : Effect.succeed(v)
const integer = (min: number, max: number) => (v: unknown, name: string): Effect.Effect<number, KmsApiError> =>
  typeof v !== "number" || !Number.isInteger(v)
    ? Effect.fail(errors.serialization(`${name} must be an integer`))
    : v < min || v > max
    ? Effect.fail(constraint(name, `Member must have value between ${min} and ${max}`))
    : Effect.succeed(v)
const boolean = (v: unknown, name: string): Effect.Effect<boolean, KmsApiError> =>
  typeof v === "boolean" ? Effect.succeed(v) : Effect.fail(errors.serialization(`${name} must be a boolean`))
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
const blob = (min: number, max: number) => (v: unknown, name: string): Effect.Effect<Buffer, KmsApiError> => {
  if (typeof v !== "string" || !BASE64.test(v)) return Effect.fail(errors.serialization(`${name} must be base64-encoded binary data`))
  const b = Buffer.from(v, "base64")
  return b.length < min || b.length > max ? Effect.fail(constraint(name, `Member must have length between ${min} and ${max}`)) : Effect.succeed(b)
}
const literal = <L extends string>(...values: ReadonlyArray<L>) => (v: unknown, name: string): Effect.Effect<L, KmsApiError> =>
  typeof v !== "string"
    ? Effect.fail(errors.serialization(`${name} must be a string`))
    : (values as ReadonlyArray<string>).includes(v)
    ? Effect.succeed(v as L)
    : Effect.fail(constraint(name, `Member must satisfy enum value set: [${values.join(", ")}]`))
const encryptionContext = (v: unknown, name: string): Effect.Effect<Readonly<Record<string, string>>, KmsApiError> => {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return Effect.fail(errors.serialization(`${name} must be a map of strings`))
  const out: Record<string, string> = {}
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== "string") return Effect.fail(errors.serialization(`${name} must be a map of strings`))
    if (k === "") return Effect.fail(errors.validation(`${name} keys must not be empty`))
    out[k] = x
  }
  return Effect.succeed(out)
}
const context = optional(encryptionContext)
const keyIdField = required(string(1, 2048))
const algorithm = optional(literal("SYMMETRIC_DEFAULT"))

// ---------------------------------------------------------------------------------------------
// the service

/**
 * The result of one call: the JSON output.
 *
 * @since 0.1.0
 * @category models
 */
export interface KmsOperations {
  readonly call: (user: SigV4.User, operation: string, input: Json) => Effect.Effect<Json, KmsApiError>
}

/**
 * Builds the operations over a backend and a registry.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (backend: KmsBackend, registry: KmsRegistry, settings: Settings): KmsOperations => {
  const { accountId, region } = settings
  const arnPrefix = `arn:aws:kms:${region}:${accountId}:`
  const keyArn = (keyId: string) => `${arnPrefix}key/${keyId}`
  const aliasArn = (alias: string) => `${arnPrefix}${alias}`
  const seconds = (ms: number) => ms / 1000

  // -- lifecycle: deletion after the waiting period, automatic rotation, done lazily when due.
  // The earliest pending deletion or rotation of a state, computed once per state read.
  const earliest = new WeakMap<State, number>()
  const due = (s: State, now: number) => {
    let at = earliest.get(s)
    if (at === undefined) {
      at = Infinity
      for (const k of Object.values(s.keys)) {
        if (k.state === "PendingDeletion" && k.deletionDate !== undefined) at = Math.min(at, k.deletionDate)
        if (k.state === "Enabled" && k.rotationEnabled && k.nextRotationDate !== undefined) at = Math.min(at, k.nextRotationDate)
      }
      earliest.set(s, at)
    }
    return at <= now
  }

  const sweep = Effect.gen(function*() {
    const now = settings.now()
    if (!due(yield* registry.read, now)) return
    yield* registry.update((s) =>
      Effect.gen(function*() {
        const keys: Record<string, KeyRecord> = { ...s.keys }
        let aliases = s.aliases
        for (const k of Object.values(s.keys)) {
          if (k.state === "PendingDeletion" && k.deletionDate !== undefined && k.deletionDate <= now) {
            yield* backend.destroy(k.keyId, k.versions.map((v) => v.ref))
            delete keys[k.keyId]
            aliases = Object.fromEntries(Object.entries(aliases).filter(([, a]) => a.keyId !== k.keyId))
            if (settings.audit !== undefined) {
              yield* settings.audit.record({ operation: "kms.DeleteKeyMaterial", keyId: k.keyId, outcome: "success" })
            }
          } else if (k.state === "Enabled" && k.rotationEnabled && k.nextRotationDate !== undefined && k.nextRotationDate <= now) {
            const version = k.currentVersion + 1
            const ref = yield* backend.addVersion(k.keyId, version)
            keys[k.keyId] = {
              ...k,
              currentVersion: version,
              versions: [...k.versions, { version, ref, createdAt: now, rotationType: "AUTOMATIC" }],
              nextRotationDate: now + k.rotationPeriodInDays * DAY
            }
            if (settings.audit !== undefined) {
              yield* settings.audit.record({ operation: "kms.AutomaticRotation", keyId: k.keyId, version, outcome: "success" })
            }
          }
        }
        return [{ ...s, keys, aliases }, undefined] as const
      })
    )
  })

  // -- grants
  const allows = (user: SigV4.User, action: string, key: KeyRecord | undefined, s: State | undefined) =>
    settings.grants.some((g) => {
      if (g.accessKeyId !== user.accessKeyId) return false
      const opOk = g.operations === "*" ||
        g.operations.some((o) => o === action || (o.endsWith("*") && action.startsWith(o.slice(0, -1))))
      if (!opOk) return false
      if (key === undefined || g.keys === "*") return true
      const aliases = s === undefined ? [] : Object.entries(s.aliases).filter(([, a]) => a.keyId === key.keyId).map(([n]) => n)
      return g.keys.some((k) => k === key.keyId || k === keyArn(key.keyId) || aliases.includes(k) || aliases.some((a) => k === aliasArn(a)))
    })
  const authorize = (user: SigV4.User, action: string, key?: KeyRecord, s?: State) =>
    allows(user, action, key, s)
      ? Effect.void
      : Effect.fail(errors.accessDenied(
        `User: arn:aws:iam::${accountId}:user/${user.name} is not authorized to perform: kms:${action} on resource: ${
          key === undefined ? "*" : keyArn(key.keyId)
        } because no grant allows the kms:${action} action`
      ))

  // -- key resolution
  const resolve = (s: State, ref: string, options?: { readonly aliases?: boolean }): Effect.Effect<KeyRecord, KmsApiError> => {
    let id: string | undefined
    let alias: string | undefined
    if (ref.startsWith("arn:")) {
      const m = /^arn:aws:kms:([^:]*):([^:]*):(key\/.+|alias\/.+)$/.exec(ref)
      if (m === null) return Effect.fail(errors.notFound(`Invalid arn ${ref.slice(0, 256)}`))
      if (m[1] !== region || m[2] !== accountId) return Effect.fail(errors.notFound(`Key '${ref.slice(0, 256)}' does not exist`))
      if (m[3]!.startsWith("key/")) id = m[3]!.slice(4)
      else alias = m[3]!
    } else if (ref.startsWith("alias/")) alias = ref
    else id = ref
    if (alias !== undefined) {
      if (options?.aliases === false) return Effect.fail(errors.validation(`${ref.slice(0, 256)} is an alias; a key id or key ARN is required`))
      const a = s.aliases[alias]
      const k = a === undefined ? undefined : s.keys[a.keyId]
      return k === undefined ? Effect.fail(errors.notFound(`Alias ${aliasArn(alias).slice(0, 300)} is not found.`)) : Effect.succeed(k)
    }
    if (!KmsBlob.isKeyId(id!)) return Effect.fail(errors.notFound(`Invalid keyId '${id!.slice(0, 256)}'`))
    const k = s.keys[id!]
    return k === undefined ? Effect.fail(errors.notFound(`Key '${keyArn(id!)}' does not exist`)) : Effect.succeed(k)
  }

  const usable = (k: KeyRecord): Effect.Effect<void, KmsApiError> =>
    k.state === "Enabled"
      ? Effect.void
      : k.state === "Disabled"
      ? Effect.fail(errors.disabled(`${keyArn(k.keyId)} is disabled.`))
      : Effect.fail(errors.invalidState(`${keyArn(k.keyId)} is pending deletion.`))
  const notPendingDeletion = (k: KeyRecord): Effect.Effect<void, KmsApiError> =>
    k.state === "PendingDeletion" ? Effect.fail(errors.invalidState(`${keyArn(k.keyId)} is pending deletion.`)) : Effect.void

  const metadata = (k: KeyRecord): Json => ({
    AWSAccountId: accountId,
    KeyId: k.keyId,
    Arn: keyArn(k.keyId),
    CreationDate: seconds(k.createdAt),
    Enabled: k.state === "Enabled",
    Description: k.description,
    KeyUsage: "ENCRYPT_DECRYPT",
    KeyState: k.state,
    ...(k.deletionDate === undefined ? {} : { DeletionDate: seconds(k.deletionDate) }),
    ...(k.pendingWindowInDays === undefined ? {} : { PendingDeletionWindowInDays: k.pendingWindowInDays }),
    Origin: "AWS_KMS",
    KeyManager: "CUSTOMER",
    CustomerMasterKeySpec: "SYMMETRIC_DEFAULT",
    KeySpec: "SYMMETRIC_DEFAULT",
    EncryptionAlgorithms: ["SYMMETRIC_DEFAULT"],
    MultiRegion: false
  })

  const current = (k: KeyRecord) => k.versions.find((v) => v.version === k.currentVersion)!

  const dryRun = (input: Json) =>
    Effect.flatMap(optional(boolean)(input, "DryRun"), (d) =>
      d === true ? Effect.fail(errors.dryRun("The request would have succeeded, but the DryRun option is set.")) : Effect.void)

  const sealUnder = (k: KeyRecord, plaintext: Uint8Array, ctx: Readonly<Record<string, string>>, audit: Audit) => {
    const v = current(k)
    audit.keyId = k.keyId
    audit.version = v.version
    return backend.seal(k.keyId, v.version, v.ref, plaintext, ctx)
  }

  /** Finds the key a blob names, checks it may be used, and opens it. */
  const openBlob = (
    user: SigV4.User,
    action: string,
    s: State,
    ciphertext: Buffer,
    ctx: Readonly<Record<string, string>>,
    keyIdParam: string | undefined,
    audit: Audit
  ) =>
    Effect.gen(function*() {
      const parsed = KmsBlob.parse(ciphertext)
      if (Option.isNone(parsed)) return yield* errors.invalidCiphertext("The ciphertext is not valid.")
      const k = s.keys[parsed.value.keyId]
      const v = k?.versions.find((x) => x.version === parsed.value.version)
      // A blob naming no key we hold is as invalid as a damaged one: do not confirm ids to probes.
      if (k === undefined || v === undefined) return yield* errors.invalidCiphertext("The ciphertext is not valid.")
      audit.keyId = k.keyId
      audit.version = v.version
      if (keyIdParam !== undefined) {
        const named = yield* resolve(s, keyIdParam)
        if (named.keyId !== k.keyId) {
          return yield* errors.incorrectKey("The key ID in the request does not identify a KMS key that can perform this operation.")
        }
      }
      yield* authorize(user, action, k, s)
      yield* usable(k)
      const plain = yield* backend.open(parsed.value, v.ref, ctx)
      if (Option.isNone(plain)) return yield* errors.invalidCiphertext("The ciphertext is damaged or the encryption context does not match.")
      return { key: k, plaintext: plain.value }
    })

  const page = <A>(items: ReadonlyArray<A>, input: Json, id: (a: A) => string) =>
    Effect.gen(function*() {
      const limit = (yield* optional(integer(1, 1000))(input, "Limit")) ?? 100
      const marker = yield* optional(string(1, 1024))(input, "Marker")
      let start = 0
      if (marker !== undefined) {
        const after = Buffer.from(marker, "base64url").toString("utf8")
        start = items.findIndex((a) => id(a) > after)
        if (!items.some((a) => id(a) === after) && start < 0) return yield* errors.invalidMarker("The marker is not valid.")
        if (start < 0) start = items.length
      }
      const slice = items.slice(start, start + limit)
      const truncated = start + limit < items.length
      return {
        slice,
        tail: truncated ? { Truncated: true, NextMarker: Buffer.from(id(slice[slice.length - 1]!)).toString("base64url") } : { Truncated: false }
      }
    })

  const dataKeyLength = (input: Json) =>
    Effect.gen(function*() {
      const spec = yield* optional(literal("AES_256", "AES_128"))(input, "KeySpec")
      const n = yield* optional(integer(1, 1024))(input, "NumberOfBytes")
      if (spec !== undefined && n !== undefined) return yield* errors.validation("KeySpec and NumberOfBytes are mutually exclusive")
      if (spec === undefined && n === undefined) return yield* errors.validation("Please specify either number of bytes or key spec.")
      if (input["Recipient"] !== undefined) return yield* errors.unsupportedOperation("Recipient (Nitro Enclaves attestation) is not supported")
      return n ?? (spec === "AES_128" ? 16 : 32)
    })

  const withKey = (input: Json, name = "KeyId") =>
    Effect.gen(function*() {
      const ref = yield* keyIdField(input, name)
      const s = yield* registry.read
      return { s, key: yield* resolve(s, ref) }
    })

  /** The request's key (`KeyId`), recorded in the audit entry, once the user's grant allows `action` on it. */
  const authorizedKey = (user: SigV4.User, action: string, input: Json, audit: { keyId?: string | undefined }) =>
    Effect.gen(function*() {
      const found = yield* withKey(input)
      audit.keyId = found.key.keyId
      yield* authorize(user, action, found.key, found.s)
      return found
    })

  /** A mutation of one key, re-resolved inside the registry lock. */
  const mutateKey = <A>(
    keyId: string,
    f: (k: KeyRecord, s: State) => Effect.Effect<readonly [KeyRecord | undefined, A], KmsApiError>
  ) =>
    registry.update((s) =>
      Effect.gen(function*() {
        const k = s.keys[keyId]
        if (k === undefined) return yield* errors.notFound(`Key '${keyArn(keyId)}' does not exist`)
        const [next, a] = yield* f(k, s)
        return [next === undefined ? undefined : { ...s, keys: { ...s.keys, [keyId]: next } }, a] as const
      })
    )

  const ops: Record<Operation, (user: SigV4.User, input: Json, audit: Audit) => Effect.Effect<Json, KmsApiError>> = {
    CreateKey: (user, input, audit) =>
      Effect.gen(function*() {
        yield* authorize(user, "CreateKey")
        const description = (yield* optional(string(0, 8192))(input, "Description")) ?? ""
        yield* optional(literal("ENCRYPT_DECRYPT"))(input, "KeyUsage")
        yield* optional(literal("SYMMETRIC_DEFAULT"))(input, "KeySpec")
        yield* optional(literal("SYMMETRIC_DEFAULT"))(input, "CustomerMasterKeySpec")
        yield* optional(literal("AWS_KMS"))(input, "Origin")
        if ((yield* optional(boolean)(input, "MultiRegion")) === true) {
          return yield* errors.unsupportedOperation("multi-Region keys are not supported")
        }
        if (input["CustomKeyStoreId"] !== undefined || input["XksKeyId"] !== undefined) {
          return yield* errors.unsupportedOperation("custom key stores are not supported")
        }
        const now = settings.now()
        const created = yield* backend.createKey(description)
        const record: KeyRecord = {
          keyId: created.keyId,
          backend: backend.kind,
          description,
          createdAt: now,
          state: "Enabled",
          rotationEnabled: false,
          rotationPeriodInDays: 365,
          currentVersion: 1,
          versions: [{ version: 1, ref: created.ref, createdAt: now }]
        }
        audit.keyId = record.keyId
        audit.version = 1
        yield* registry.update((s) => Effect.succeed([{ ...s, keys: { ...s.keys, [record.keyId]: record } }, undefined] as const))
        return { KeyMetadata: metadata(record) }
      }),

    DescribeKey: (user, input, audit) =>
      Effect.gen(function*() {
        const { key } = yield* authorizedKey(user, "DescribeKey", input, audit)
        return { KeyMetadata: metadata(key) }
      }),

    ListKeys: (user, input) =>
      Effect.gen(function*() {
        yield* authorize(user, "ListKeys")
        const s = yield* registry.read
        const keys = Object.values(s.keys).map((k) => k.keyId).sort()
        const { slice, tail } = yield* page(keys, input, (k) => k)
        return { Keys: slice.map((k) => ({ KeyId: k, KeyArn: keyArn(k) })), ...tail }
      }),

    ListAliases: (user, input, audit) =>
      Effect.gen(function*() {
        yield* authorize(user, "ListAliases")
        const s = yield* registry.read
        const filter = yield* optional(string(1, 2048))(input, "KeyId")
        let target: string | undefined
        if (filter !== undefined) {
          target = (yield* resolve(s, filter, { aliases: false })).keyId
          audit.keyId = target
        }
        const all = Object.entries(s.aliases).filter(([, a]) => target === undefined || a.keyId === target).sort(([a], [b]) => (a < b ? -1 : 1))
        const { slice, tail } = yield* page(all, input, ([n]) => n)
        return {
          Aliases: slice.map(([name, a]) => ({
            AliasName: name,
            AliasArn: aliasArn(name),
            TargetKeyId: a.keyId,
            CreationDate: seconds(a.createdAt),
            LastUpdatedDate: seconds(a.updatedAt)
          })),
          ...tail
        }
      }),

    CreateAlias: (user, input, audit) =>
      Effect.gen(function*() {
        const name = yield* aliasName(input)
        const target = yield* keyIdField(input, "TargetKeyId")
        const s = yield* registry.read
        const key = yield* resolve(s, target, { aliases: false })
        audit.keyId = key.keyId
        yield* authorize(user, "CreateAlias", key, s)
        yield* notPendingDeletion(key)
        yield* registry.update((s) => {
          if (s.aliases[name] !== undefined) return Effect.fail(errors.alreadyExists(`An alias with the name ${aliasArn(name)} already exists`))
          if (s.keys[key.keyId] === undefined) return Effect.fail(errors.notFound(`Key '${keyArn(key.keyId)}' does not exist`))
          const now = settings.now()
          return Effect.succeed([{ ...s, aliases: { ...s.aliases, [name]: { keyId: key.keyId, createdAt: now, updatedAt: now } } }, undefined] as const)
        })
        return {}
      }),

    UpdateAlias: (user, input, audit) =>
      Effect.gen(function*() {
        const name = yield* aliasName(input)
        const target = yield* keyIdField(input, "TargetKeyId")
        const s = yield* registry.read
        const key = yield* resolve(s, target, { aliases: false })
        audit.keyId = key.keyId
        const existing = s.aliases[name]
        if (existing === undefined) return yield* errors.notFound(`Alias ${aliasArn(name)} is not found.`)
        const old = s.keys[existing.keyId]
        yield* authorize(user, "UpdateAlias", key, s)
        if (old !== undefined) yield* authorize(user, "UpdateAlias", old, s)
        yield* notPendingDeletion(key)
        yield* registry.update((s) => {
          const a = s.aliases[name]
          if (a === undefined) return Effect.fail(errors.notFound(`Alias ${aliasArn(name)} is not found.`))
          return Effect.succeed([{ ...s, aliases: { ...s.aliases, [name]: { ...a, keyId: key.keyId, updatedAt: settings.now() } } }, undefined] as const)
        })
        return {}
      }),

    DeleteAlias: (user, input, audit) =>
      Effect.gen(function*() {
        const name = yield* aliasName(input)
        const s = yield* registry.read
        const a = s.aliases[name]
        if (a === undefined) return yield* errors.notFound(`Alias ${aliasArn(name)} is not found.`)
        audit.keyId = a.keyId
        const k = s.keys[a.keyId]
        if (k !== undefined) yield* authorize(user, "DeleteAlias", k, s)
        yield* registry.update((s) => {
          if (s.aliases[name] === undefined) return Effect.fail(errors.notFound(`Alias ${aliasArn(name)} is not found.`))
          const aliases = { ...s.aliases }
          delete aliases[name]
          return Effect.succeed([{ ...s, aliases }, undefined] as const)
        })
        return {}
      }),

    EnableKey: (user, input, audit) => setState(user, input, audit, "EnableKey", "Enabled"),
    DisableKey: (user, input, audit) => setState(user, input, audit, "DisableKey", "Disabled"),

    GenerateDataKey: (user, input, audit) => generateDataKey(user, input, audit, true),
    GenerateDataKeyWithoutPlaintext: (user, input, audit) => generateDataKey(user, input, audit, false),

    GenerateRandom: (user, input) =>
      Effect.gen(function*() {
        const n = yield* required(integer(1, 1024))(input, "NumberOfBytes")
        if (input["CustomKeyStoreId"] !== undefined) return yield* errors.unsupportedOperation("custom key stores are not supported")
        if (input["Recipient"] !== undefined) return yield* errors.unsupportedOperation("Recipient (Nitro Enclaves attestation) is not supported")
        yield* authorize(user, "GenerateRandom")
        return { Plaintext: crypto.randomBytes(n).toString("base64") }
      }),

    Encrypt: (user, input, audit) =>
      Effect.gen(function*() {
        const plaintext = yield* required(blob(1, MAX_PLAINTEXT))(input, "Plaintext")
        const ctx = (yield* context(input, "EncryptionContext")) ?? {}
        audit.context = ctx
        yield* algorithm(input, "EncryptionAlgorithm")
        const { key } = yield* authorizedKey(user, "Encrypt", input, audit)
        yield* usable(key)
        yield* dryRun(input)
        const ciphertext = yield* sealUnder(key, plaintext, ctx, audit)
        return { CiphertextBlob: Buffer.from(ciphertext).toString("base64"), KeyId: keyArn(key.keyId), EncryptionAlgorithm: "SYMMETRIC_DEFAULT" }
      }),

    Decrypt: (user, input, audit) =>
      Effect.gen(function*() {
        const ciphertext = yield* required(blob(1, MAX_CIPHERTEXT))(input, "CiphertextBlob")
        const ctx = (yield* context(input, "EncryptionContext")) ?? {}
        audit.context = ctx
        yield* algorithm(input, "EncryptionAlgorithm")
        const keyId = yield* optional(string(1, 2048))(input, "KeyId")
        if (input["Recipient"] !== undefined) return yield* errors.unsupportedOperation("Recipient (Nitro Enclaves attestation) is not supported")
        const s = yield* registry.read
        const { key, plaintext } = yield* openBlob(user, "Decrypt", s, ciphertext, ctx, keyId, audit)
        yield* dryRun(input)
        const out = plaintext.toString("base64")
        plaintext.fill(0)
        return { KeyId: keyArn(key.keyId), Plaintext: out, EncryptionAlgorithm: "SYMMETRIC_DEFAULT" }
      }),

    ReEncrypt: (user, input, audit) =>
      Effect.gen(function*() {
        const ciphertext = yield* required(blob(1, MAX_CIPHERTEXT))(input, "CiphertextBlob")
        const sourceCtx = (yield* context(input, "SourceEncryptionContext")) ?? {}
        const destCtx = (yield* context(input, "DestinationEncryptionContext")) ?? {}
        audit.context = sourceCtx
        const sourceKeyId = yield* optional(string(1, 2048))(input, "SourceKeyId")
        const destRef = yield* keyIdField(input, "DestinationKeyId")
        yield* algorithm(input, "SourceEncryptionAlgorithm")
        yield* algorithm(input, "DestinationEncryptionAlgorithm")
        const s = yield* registry.read
        const dest = yield* resolve(s, destRef)
        const { key, plaintext } = yield* openBlob(user, "ReEncryptFrom", s, ciphertext, sourceCtx, sourceKeyId, audit)
        yield* authorize(user, "ReEncryptTo", dest, s)
        yield* usable(dest)
        yield* dryRun(input)
        const sealed = yield* sealUnder(dest, plaintext, destCtx, {})
        plaintext.fill(0)
        return {
          CiphertextBlob: Buffer.from(sealed).toString("base64"),
          SourceKeyId: keyArn(key.keyId),
          KeyId: keyArn(dest.keyId),
          SourceEncryptionAlgorithm: "SYMMETRIC_DEFAULT",
          DestinationEncryptionAlgorithm: "SYMMETRIC_DEFAULT"
        }
      }),

    EnableKeyRotation: (user, input, audit) =>
      Effect.gen(function*() {
        const period = (yield* optional(integer(90, 2560))(input, "RotationPeriodInDays")) ?? 365
        const { key } = yield* authorizedKey(user, "EnableKeyRotation", input, audit)
        yield* usable(key)
        yield* mutateKey(key.keyId, (k) =>
          Effect.succeed([{ ...k, rotationEnabled: true, rotationPeriodInDays: period, nextRotationDate: settings.now() + period * DAY }, undefined] as const))
        return {}
      }),

    DisableKeyRotation: (user, input, audit) =>
      Effect.gen(function*() {
        const { key } = yield* authorizedKey(user, "DisableKeyRotation", input, audit)
        yield* usable(key)
        yield* mutateKey(key.keyId, (k) => {
          const { nextRotationDate: _, ...rest } = k
          return Effect.succeed([{ ...rest, rotationEnabled: false }, undefined] as const)
        })
        return {}
      }),

    GetKeyRotationStatus: (user, input, audit) =>
      Effect.gen(function*() {
        const { key } = yield* authorizedKey(user, "GetKeyRotationStatus", input, audit)
        yield* notPendingDeletion(key)
        return {
          KeyId: keyArn(key.keyId),
          KeyRotationEnabled: key.rotationEnabled,
          ...(key.rotationEnabled ? { RotationPeriodInDays: key.rotationPeriodInDays } : {}),
          ...(key.rotationEnabled && key.nextRotationDate !== undefined ? { NextRotationDate: seconds(key.nextRotationDate) } : {})
        }
      }),

    ListKeyRotations: (user, input, audit) =>
      Effect.gen(function*() {
        const { key } = yield* authorizedKey(user, "ListKeyRotations", input, audit)
        const rotations = key.versions.filter((v) => v.version > 1).map((v) => ({
          KeyId: key.keyId,
          RotationDate: seconds(v.createdAt),
          RotationType: v.rotationType ?? "ON_DEMAND"
        }))
        const { slice, tail } = yield* page(rotations, input, (r) => String(r.RotationDate).padStart(20, "0"))
        return { Rotations: slice, ...tail }
      }),

    RotateKeyOnDemand: (user, input, audit) =>
      Effect.gen(function*() {
        const { key } = yield* authorizedKey(user, "RotateKeyOnDemand", input, audit)
        yield* usable(key)
        const version = yield* mutateKey(key.keyId, (k) =>
          Effect.gen(function*() {
            yield* usable(k)
            const version = k.currentVersion + 1
            const ref = yield* backend.addVersion(k.keyId, version)
            return [
              { ...k, currentVersion: version, versions: [...k.versions, { version, ref, createdAt: settings.now(), rotationType: "ON_DEMAND" as const }] },
              version
            ] as const
          }))
        audit.version = version
        return { KeyId: key.keyId }
      }),

    ScheduleKeyDeletion: (user, input, audit) =>
      Effect.gen(function*() {
        const days = (yield* optional(integer(7, 30))(input, "PendingWindowInDays")) ?? 30
        const { key } = yield* authorizedKey(user, "ScheduleKeyDeletion", input, audit)
        const updated = yield* mutateKey(key.keyId, (k) => {
          if (k.state === "PendingDeletion") return Effect.fail(errors.invalidState(`${keyArn(k.keyId)} is pending deletion.`))
          const next: KeyRecord = { ...k, state: "PendingDeletion", deletionDate: settings.now() + days * DAY, pendingWindowInDays: days }
          return Effect.succeed([next, next] as const)
        })
        return {
          KeyId: keyArn(key.keyId),
          DeletionDate: seconds(updated.deletionDate!),
          KeyState: "PendingDeletion",
          PendingWindowInDays: days
        }
      }),

    CancelKeyDeletion: (user, input, audit) =>
      Effect.gen(function*() {
        const { key } = yield* authorizedKey(user, "CancelKeyDeletion", input, audit)
        yield* mutateKey(key.keyId, (k) => {
          if (k.state !== "PendingDeletion") return Effect.fail(errors.invalidState(`${keyArn(k.keyId)} is not pending deletion.`))
          const { deletionDate: _d, pendingWindowInDays: _p, ...rest } = k
          // As AWS KMS: a key whose deletion is cancelled comes back disabled.
          return Effect.succeed([{ ...rest, state: "Disabled" as const }, undefined] as const)
        })
        return { KeyId: keyArn(key.keyId) }
      })
  }

  const aliasName = (input: Json) =>
    Effect.gen(function*() {
      const name = yield* required(string(1, 256))(input, "AliasName")
      if (!ALIAS.test(name)) {
        return yield* errors.validation(`1 validation error detected: Value '${name.slice(0, 256)}' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^alias/[a-zA-Z0-9/_-]+$`)
      }
      if (name.startsWith("alias/aws/")) return yield* errors.invalidAliasName("Aliases beginning with alias/aws/ are reserved.")
      return name
    })

  const setState = (user: SigV4.User, input: Json, audit: Audit, action: "EnableKey" | "DisableKey", state: "Enabled" | "Disabled") =>
    Effect.gen(function*() {
      const { key, s } = yield* withKey(input)
      audit.keyId = key.keyId
      yield* authorize(user, action, key, s)
      yield* mutateKey(key.keyId, (k) =>
        k.state === "PendingDeletion"
          ? Effect.fail(errors.invalidState(`${keyArn(k.keyId)} is pending deletion.`))
          : Effect.succeed([k.state === state ? undefined : { ...k, state }, undefined] as const))
      return {}
    })

  const generateDataKey = (user: SigV4.User, input: Json, audit: Audit, withPlaintext: boolean) =>
    Effect.gen(function*() {
      const action = withPlaintext ? "GenerateDataKey" : "GenerateDataKeyWithoutPlaintext"
      const n = yield* dataKeyLength(input)
      const ctx = (yield* context(input, "EncryptionContext")) ?? {}
      audit.context = ctx
      const { key, s } = yield* withKey(input)
      audit.keyId = key.keyId
      yield* authorize(user, action, key, s)
      yield* usable(key)
      yield* dryRun(input)
      const dataKey = crypto.randomBytes(n)
      const ciphertext = yield* sealUnder(key, dataKey, ctx, audit)
      const out: Json = {
        CiphertextBlob: Buffer.from(ciphertext).toString("base64"),
        KeyId: keyArn(key.keyId),
        ...(withPlaintext ? { Plaintext: dataKey.toString("base64") } : {})
      }
      dataKey.fill(0)
      return out
    })

  const call: KmsOperations["call"] = (user, operation, input) => {
    const op = (OPERATIONS as ReadonlyArray<string>).includes(operation) ? ops[operation as Operation] : undefined
    if (op === undefined) return Effect.fail(errors.unknownOperation(`operation ${operation.slice(0, 64)} is not supported`))
    const audit: Audit = {}
    const record = (outcome: "success" | "failure", error?: string) =>
      settings.audit === undefined ? Effect.void : settings.audit.record({
        operation: `kms.${operation}`,
        keyId: audit.keyId,
        version: audit.version,
        context: audit.context,
        principal: user.name,
        outcome,
        ...(error === undefined ? {} : { error })
      })
    // A failed sweep leaves keys as they were (a key past its deletion date stays pending, so
    // unusable; a key due for rotation keeps its version): the call itself goes on.
    return sweep.pipe(
      Effect.catchAll((e) => Effect.logWarning(`objcrypt KMS: key lifecycle update failed (${e.type})`)),
      Effect.zipRight(Effect.suspend(() => op(user, input, audit))),
      Effect.catchAllDefect(() => Effect.fail(errors.internal("internal error"))),
      Effect.tapBoth({
        onSuccess: () => record("success"),
        onFailure: (e) => record("failure", e instanceof KmsApiError ? e.type : "KMSInternalException")
      })
    )
  }

  return { call }
}
