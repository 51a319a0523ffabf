/**
 * The six encryption modes as data: parsed from CLI flags, config files and S3 request headers.
 * What a mode *does* lives in `ModeService`; what each provider supports in `CompatibilityMatrix`.
 *
 * @since 0.1.0
 */
import { Effect, Option, ParseResult, Schema } from "effect"
import * as CustomerKey from "./CustomerKey.js"
import { InvalidCustomerKey, InvalidEncryptionParameters } from "./Errors.js"

/**
 * @since 0.1.0
 * @category models
 */
export const ModeTag = Schema.Literal("None", "SseS3", "SseKms", "SseC", "CseC", "CseKms")

/**
 * @since 0.1.0
 * @category models
 */
export type ModeTag = typeof ModeTag.Type

/**
 * The names users type (`--mode sse-c`).
 *
 * @since 0.1.0
 * @category models
 */
export const ModeName = Schema.Literal("none", "sse-s3", "sse-kms", "sse-c", "cse-c", "cse-kms")

/**
 * @since 0.1.0
 * @category models
 */
export type ModeName = typeof ModeName.Type

/**
 * @since 0.1.0
 * @category models
 */
export const allTags: ReadonlyArray<ModeTag> = ["None", "SseS3", "SseKms", "SseC", "CseC", "CseKms"]

const tagToName: Record<ModeTag, ModeName> = {
  None: "none",
  SseS3: "sse-s3",
  SseKms: "sse-kms",
  SseC: "sse-c",
  CseC: "cse-c",
  CseKms: "cse-kms"
}

/**
 * @since 0.1.0
 * @category conversions
 */
export const nameOf = (tag: ModeTag): ModeName => tagToName[tag]

/**
 * @since 0.1.0
 * @category conversions
 */
export const tagOf = (name: ModeName): ModeTag =>
  (Object.keys(tagToName) as Array<ModeTag>).find((t) => tagToName[t] === name)!

/**
 * Server-side modes are applied by the provider; client-side modes by objcrypt before upload.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isClientSide = (tag: ModeTag): tag is "CseC" | "CseKms" => tag === "CseC" || tag === "CseKms"

/**
 * A named key in the `KeyStore`; without a version, its primary version.
 *
 * @since 0.1.0
 * @category models
 */
export class NamedKey extends Schema.TaggedClass<NamedKey>("@objcrypt/core/NamedKey")("NamedKey", {
  name: Schema.NonEmptyTrimmedString,
  version: Schema.optional(Schema.Int.pipe(Schema.positive()))
}) {}

const CustomerKeyValue = Schema.declare(
  (u: unknown): u is CustomerKey.CustomerKey =>
    typeof u === "object" && u !== null && (u as { _tag?: unknown })._tag === "CustomerKey",
  { identifier: "CustomerKey" }
)

/**
 * A key given with the request itself (an S3 SSE-C header), never written anywhere.
 *
 * @since 0.1.0
 * @category models
 */
export class ProvidedKey extends Schema.TaggedClass<ProvidedKey>("@objcrypt/core/ProvidedKey")("ProvidedKey", {
  key: CustomerKeyValue
}) {}

/**
 * How a mode names its key: by reference to the key store, or provided per request.
 *
 * @since 0.1.0
 * @category models
 */
export const KeyRef = Schema.Union(NamedKey, ProvidedKey)

/**
 * @since 0.1.0
 * @category models
 */
export type KeyRef = typeof KeyRef.Type

/**
 * An encryption context: non-secret key/value pairs bound to the ciphertext (KMS AAD).
 *
 * @since 0.1.0
 * @category models
 */
export const EncryptionContext = Schema.Record({ key: Schema.String, value: Schema.String })

/**
 * @since 0.1.0
 * @category models
 */
export type EncryptionContext = typeof EncryptionContext.Type

/**
 * No encryption.
 *
 * @since 0.1.0
 * @category models
 */
export const None = Schema.TaggedStruct("None", {})

/**
 * Provider-managed keys (S3 `AES256`, GCS Google-managed, Azure Microsoft-managed).
 *
 * @since 0.1.0
 * @category models
 */
export const SseS3 = Schema.TaggedStruct("SseS3", {})

/**
 * Server-side encryption under a key held in the provider's KMS.
 *
 * @since 0.1.0
 * @category models
 */
export const SseKms = Schema.TaggedStruct("SseKms", {
  /** KMS key id, ARN or alias; absent means the provider's default KMS key. */
  keyId: Schema.optional(Schema.String),
  context: Schema.optional(EncryptionContext),
  /** S3 Bucket Keys. */
  bucketKey: Schema.optional(Schema.Boolean),
  /** Dual-layer SSE-KMS (S3's `aws:kms:dsse`). */
  dsse: Schema.optional(Schema.Boolean)
})

/**
 * Server-side encryption under a customer key sent with every request.
 *
 * @since 0.1.0
 * @category models
 */
export const SseC = Schema.TaggedStruct("SseC", { key: KeyRef })

/**
 * Client-side encryption under key-store keys: symmetric keys and/or public-key recipients
 * (every listed key can decrypt).
 *
 * @since 0.1.0
 * @category models
 */
export const CseC = Schema.TaggedStruct("CseC", {
  keys: Schema.NonEmptyArray(NamedKey),
  /** Bound to the object (authenticated with its envelope) besides its bucket and key. */
  context: Schema.optional(EncryptionContext)
})

/**
 * Client-side encryption with a data key generated and wrapped by a KMS.
 *
 * @since 0.1.0
 * @category models
 */
export const CseKms = Schema.TaggedStruct("CseKms", {
  keyId: Schema.NonEmptyTrimmedString,
  context: Schema.optional(EncryptionContext)
})

/**
 * @since 0.1.0
 * @category models
 */
export const EncryptionMode = Schema.Union(None, SseS3, SseKms, SseC, CseC, CseKms)

/**
 * @since 0.1.0
 * @category models
 */
export type EncryptionMode = typeof EncryptionMode.Type

/**
 * @since 0.1.0
 * @category models
 */
export type Of<T extends ModeTag> = Extract<EncryptionMode, { readonly _tag: T }>

/**
 * The user-facing shape of a mode in flags and config files:
 * `{ mode: "cse-c", key: "backup" }`, `{ mode: "sse-kms", kmsKeyId: "alias/x", context: { team: "a" } }`.
 *
 * @since 0.1.0
 * @category models
 */
export const ModeSpec = Schema.Struct({
  mode: ModeName,
  /** Key name (`name` or `name@version`) for sse-c and cse-c; several comma-separated for cse-c. */
  key: Schema.optional(Schema.String),
  /** Public-key recipients (key-store names) for cse-c. */
  recipients: Schema.optional(Schema.Array(Schema.String)),
  kmsKeyId: Schema.optional(Schema.String),
  context: Schema.optional(EncryptionContext),
  bucketKey: Schema.optional(Schema.Boolean)
})

/**
 * @since 0.1.0
 * @category models
 */
export type ModeSpec = typeof ModeSpec.Type

const invalid = (detail: string) => new InvalidEncryptionParameters({ detail })

/**
 * Parses `name` or `name@3` into a `NamedKey`.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseKeyName = (s: string): Effect.Effect<NamedKey, InvalidEncryptionParameters> => {
  const m = /^([^@\s]+)(?:@(\d+))?$/.exec(s.trim())
  if (m === null) return Effect.fail(invalid(`bad key name ${JSON.stringify(s)} (expected NAME or NAME@VERSION)`))
  const version = m[2] === undefined ? undefined : Number(m[2])
  if (version !== undefined && (!Number.isSafeInteger(version) || version < 1)) {
    return Effect.fail(invalid(`bad key version in ${JSON.stringify(s)}`))
  }
  return Effect.succeed(new NamedKey(version === undefined ? { name: m[1]! } : { name: m[1]!, version }))
}

/**
 * Turns a user-facing spec (flags or config) into a mode, checking every field it needs and
 * refusing fields that do not apply.
 *
 * @since 0.1.0
 * @category parsing
 */
export const fromSpec = (spec: ModeSpec): Effect.Effect<EncryptionMode, InvalidEncryptionParameters> =>
  Effect.gen(function*() {
    const refuse = (field: string, present: unknown) =>
      present === undefined ? Effect.void : Effect.fail(invalid(`${field} does not apply to --mode ${spec.mode}`))
    switch (spec.mode) {
      case "none":
      case "sse-s3": {
        yield* refuse("a key", spec.key)
        yield* refuse("a KMS key id", spec.kmsKeyId)
        yield* refuse("an encryption context", spec.context)
        yield* refuse("recipients", spec.recipients)
        yield* refuse("bucket key", spec.bucketKey)
        return spec.mode === "none" ? None.make({}) : SseS3.make({})
      }
      case "sse-kms": {
        yield* refuse("a key", spec.key)
        yield* refuse("recipients", spec.recipients)
        return SseKms.make({
          ...(spec.kmsKeyId === undefined ? {} : { keyId: spec.kmsKeyId }),
          ...(spec.context === undefined ? {} : { context: spec.context }),
          ...(spec.bucketKey === undefined ? {} : { bucketKey: spec.bucketKey })
        })
      }
      case "sse-c": {
        yield* refuse("a KMS key id", spec.kmsKeyId)
        yield* refuse("an encryption context", spec.context)
        yield* refuse("recipients", spec.recipients)
        yield* refuse("bucket key", spec.bucketKey)
        if (spec.key === undefined) return yield* invalid("--mode sse-c needs a key")
        return SseC.make({ key: yield* parseKeyName(spec.key) })
      }
      case "cse-c": {
        yield* refuse("a KMS key id", spec.kmsKeyId)
        yield* refuse("bucket key", spec.bucketKey)
        const names = [
          ...(spec.key === undefined ? [] : spec.key.split(",").filter((s) => s.trim() !== "")),
          ...(spec.recipients ?? [])
        ]
        if (names.length === 0) return yield* invalid("--mode cse-c needs a key or a recipient")
        const keys = yield* Effect.forEach(names, parseKeyName)
        return CseC.make({
          keys: keys as unknown as readonly [NamedKey, ...Array<NamedKey>],
          ...(spec.context === undefined ? {} : { context: spec.context })
        })
      }
      case "cse-kms": {
        yield* refuse("a key", spec.key)
        yield* refuse("recipients", spec.recipients)
        yield* refuse("bucket key", spec.bucketKey)
        if (spec.kmsKeyId === undefined || spec.kmsKeyId.trim() === "") return yield* invalid("--mode cse-kms needs a KMS key id")
        return CseKms.make({ keyId: spec.kmsKeyId.trim(), ...(spec.context === undefined ? {} : { context: spec.context }) })
      }
    }
  })

/**
 * Decodes an unknown value (a parsed config file entry) as a `ModeSpec`, then a mode.
 *
 * @since 0.1.0
 * @category parsing
 */
export const fromConfig = (u: unknown): Effect.Effect<EncryptionMode, InvalidEncryptionParameters> =>
  Schema.decodeUnknown(ModeSpec)(u).pipe(
    Effect.mapError((e) => invalid(ParseResult.TreeFormatter.formatErrorSync(e))),
    Effect.flatMap(fromSpec)
  )

/**
 * Parses `k=v,k2=v2` or a JSON object into an encryption context.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseContext = (s: string): Effect.Effect<EncryptionContext, InvalidEncryptionParameters> => {
  const t = s.trim()
  if (t.startsWith("{")) {
    return Schema.decodeUnknown(Schema.parseJson(EncryptionContext))(t).pipe(
      Effect.mapError(() => invalid("the encryption context must be a JSON object of strings"))
    )
  }
  const out: Record<string, string> = {}
  for (const pair of t.split(",").filter((p) => p !== "")) {
    const i = pair.indexOf("=")
    if (i <= 0) return Effect.fail(invalid(`bad context entry ${JSON.stringify(pair)} (expected key=value)`))
    out[pair.slice(0, i)] = pair.slice(i + 1)
  }
  return Effect.succeed(out)
}

/**
 * The request headers S3 uses to ask for server-side encryption.
 *
 * @since 0.1.0
 * @category s3 headers
 */
export const S3Headers = {
  sse: "x-amz-server-side-encryption",
  kmsKeyId: "x-amz-server-side-encryption-aws-kms-key-id",
  context: "x-amz-server-side-encryption-context",
  bucketKey: "x-amz-server-side-encryption-bucket-key-enabled",
  customerAlgorithm: "x-amz-server-side-encryption-customer-algorithm",
  customerKey: "x-amz-server-side-encryption-customer-key",
  customerKeyMd5: "x-amz-server-side-encryption-customer-key-md5"
} as const

/**
 * Header names are matched case-insensitively; repeated values are refused.
 *
 * @since 0.1.0
 * @category s3 headers
 */
export type HeaderBag = Readonly<Record<string, string | ReadonlyArray<string> | undefined>>

const header = (headers: HeaderBag, name: string): Effect.Effect<Option.Option<string>, InvalidEncryptionParameters> => {
  const found = Object.keys(headers).filter((k) => k.toLowerCase() === name)
  if (found.length === 0) return Effect.succeed(Option.none())
  if (found.length > 1) return Effect.fail(invalid(`header ${name} given more than once`))
  const v = headers[found[0]!]
  if (v === undefined) return Effect.succeed(Option.none())
  if (typeof v !== "string") {
    if (v.length !== 1) return Effect.fail(invalid(`header ${name} given more than once`))
    return Effect.succeed(Option.some(v[0]!))
  }
  return Effect.succeed(Option.some(v))
}

/**
 * Parses S3's SSE request headers, exactly as Amazon S3 validates them: `AES256` → SSE-S3,
 * `aws:kms` (or `aws:kms:dsse`) → SSE-KMS with optional key id, base64-JSON context and bucket
 * key; the three customer headers → SSE-C (algorithm must be `AES256`, key 256-bit, MD5
 * matching). Mixing SSE and SSE-C headers, or KMS fields without `aws:kms`, is refused.
 *
 * @since 0.1.0
 * @category s3 headers
 */
export const fromS3Headers = (
  headers: HeaderBag,
  options?: { readonly prefix?: "x-amz-copy-source-" | undefined }
): Effect.Effect<EncryptionMode, InvalidEncryptionParameters | InvalidCustomerKey> =>
  Effect.gen(function*() {
    const p = (h: string) => (options?.prefix === undefined ? h : h.replace(/^x-amz-/, options.prefix))
    const sse = yield* header(headers, p(S3Headers.sse))
    const kmsKeyId = yield* header(headers, p(S3Headers.kmsKeyId))
    const context = yield* header(headers, p(S3Headers.context))
    const bucketKey = yield* header(headers, p(S3Headers.bucketKey))
    const alg = yield* header(headers, p(S3Headers.customerAlgorithm))
    const key = yield* header(headers, p(S3Headers.customerKey))
    const md5 = yield* header(headers, p(S3Headers.customerKeyMd5))
    const anyCustomer = Option.isSome(alg) || Option.isSome(key) || Option.isSome(md5)
    if (anyCustomer) {
      if (Option.isSome(sse) || Option.isSome(kmsKeyId) || Option.isSome(context)) {
        return yield* invalid("server-side encryption headers and customer-key headers cannot be combined")
      }
      if (Option.isNone(alg)) return yield* invalid(`${p(S3Headers.customerAlgorithm)} is required with a customer key`)
      if (alg.value !== "AES256") {
        return yield* new InvalidCustomerKey({ reason: "UnsupportedAlgorithm", detail: "the customer algorithm must be AES256" })
      }
      if (Option.isNone(key)) return yield* new InvalidCustomerKey({ reason: "Missing", detail: `${p(S3Headers.customerKey)} is required` })
      if (Option.isNone(md5)) return yield* new InvalidCustomerKey({ reason: "Missing", detail: `${p(S3Headers.customerKeyMd5)} is required` })
      const ck = yield* CustomerKey.fromBase64(key.value, md5.value)
      return SseC.make({ key: new ProvidedKey({ key: ck }) })
    }
    if (Option.isNone(sse)) {
      if (Option.isSome(kmsKeyId) || Option.isSome(context) || Option.isSome(bucketKey)) {
        return yield* invalid(`KMS parameters need ${p(S3Headers.sse)}: aws:kms`)
      }
      return None.make({})
    }
    switch (sse.value) {
      case "AES256": {
        if (Option.isSome(kmsKeyId) || Option.isSome(context)) {
          return yield* invalid("a KMS key id or context needs aws:kms, not AES256")
        }
        return SseS3.make({})
      }
      case "aws:kms":
      case "aws:kms:dsse": {
        let ctx: EncryptionContext | undefined
        if (Option.isSome(context)) {
          ctx = yield* Schema.decodeUnknown(Schema.compose(Schema.StringFromBase64, Schema.parseJson(EncryptionContext)))(context.value).pipe(
            Effect.mapError(() => invalid(`${p(S3Headers.context)} must be base64-encoded JSON of string values`))
          )
        }
        if (Option.isSome(bucketKey) && bucketKey.value !== "true" && bucketKey.value !== "false") {
          return yield* invalid(`${p(S3Headers.bucketKey)} must be true or false`)
        }
        if (Option.isSome(kmsKeyId) && kmsKeyId.value.trim() === "") return yield* invalid("empty KMS key id")
        return SseKms.make({
          ...(Option.isSome(kmsKeyId) ? { keyId: kmsKeyId.value } : {}),
          ...(ctx === undefined ? {} : { context: ctx }),
          ...(Option.isSome(bucketKey) ? { bucketKey: bucketKey.value === "true" } : {}),
          ...(sse.value === "aws:kms:dsse" ? { dsse: true } : {})
        })
      }
      default:
        return yield* invalid(`unknown ${p(S3Headers.sse)} value ${JSON.stringify(sse.value)} (expected AES256 or aws:kms)`)
    }
  })

/**
 * A short human description, safe to log (no key material).
 *
 * @since 0.1.0
 * @category rendering
 */
export const describe = (mode: EncryptionMode): string => {
  switch (mode._tag) {
    case "None":
    case "SseS3":
      return nameOf(mode._tag)
    case "SseKms":
      return `sse-kms${mode.keyId === undefined ? "" : ` (${mode.keyId})`}`
    case "SseC":
      return mode.key._tag === "NamedKey" ? `sse-c (${keyLabel(mode.key)})` : "sse-c (provided key)"
    case "CseC":
      return `cse-c (${mode.keys.map(keyLabel).join(", ")})`
    case "CseKms":
      return `cse-kms (${mode.keyId})`
  }
}

const keyLabel = (k: NamedKey) => (k.version === undefined ? k.name : `${k.name}@${k.version}`)
