/**
 * Which encryption mode each storage profile can honour, and how: natively (under the provider's
 * own name for the feature), client-side by objcrypt, through the objcrypt gateway, or not at all.
 * The data (with a public source for every cell) lives in `internal/matrixData.ts`; this module
 * holds the types, `resolve`, the merge of per-bucket probe results, and the renderings (a
 * fixed-width table for humans, JSON through a Schema for `--json`, and `docs/MATRIX.md`).
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Schema } from "effect"
import { ModeTag, nameOf } from "./EncryptionMode.js"
import type { EncryptionMode } from "./EncryptionMode.js"
import { UnsupportedMode } from "./Errors.js"
import { Provider } from "./Provider.js"
import { profiles as defaultProfiles } from "./internal/matrixData.js"

// ---------------------------------------------------------------------------------------------
// models
// ---------------------------------------------------------------------------------------------

/**
 * The storage profiles the matrix knows, as users type them (`--provider abci`).
 *
 * @since 0.1.0
 * @category models
 */
export const ProfileName = Schema.Literal(
  "aws-s3",
  "s3-compatible",
  "minio",
  "ceph-rgw",
  "ibm-cos",
  "abci",
  "backblaze-b2",
  "wasabi",
  "cloudflare-r2",
  "gcs",
  "azure-blob",
  "local-fs",
  "objcrypt-gateway"
)

/**
 * @since 0.1.0
 * @category models
 */
export type ProfileName = typeof ProfileName.Type

/**
 * Every profile name, in table order.
 *
 * @since 0.1.0
 * @category models
 */
export const allProfileNames: ReadonlyArray<ProfileName> = ProfileName.literals

/**
 * - `native`: the provider applies the mode itself, under its own name for the feature;
 * - `client-side`: objcrypt encrypts before upload, the store only sees opaque bytes;
 * - `via-gateway`: only through the objcrypt gateway, which implements the mode in front of the store;
 * - `unsupported`: neither the provider nor objcrypt (on its own) can honour it.
 *
 * @since 0.1.0
 * @category models
 */
export const CellKind = Schema.Literal("native", "client-side", "via-gateway", "unsupported")

/**
 * @since 0.1.0
 * @category models
 */
export type CellKind = typeof CellKind.Type

/**
 * Where a native mode is chosen:
 * - `request`: per object, with request headers/fields;
 * - `bucket-config`: by the bucket's (or container's) default-encryption configuration, changeable later;
 * - `bucket-creation`: only when the bucket is created, never afterwards;
 * - `always-on`: the provider encrypts every object at rest anyway; nothing is sent.
 *
 * @since 0.1.0
 * @category models
 */
export const SetAt = Schema.Literal("request", "bucket-config", "bucket-creation", "always-on")

/**
 * @since 0.1.0
 * @category models
 */
export type SetAt = typeof SetAt.Type

/**
 * What the ETag of an object written in this mode is: `md5` of the plaintext, `not-md5` (some
 * other value), `random` (documented as random), `hidden-without-key` (the MD5 is itself encrypted
 * and only returned with the key).
 *
 * @since 0.1.0
 * @category models
 */
export const EtagBehaviour = Schema.Literal("md5", "not-md5", "random", "hidden-without-key")

/**
 * @since 0.1.0
 * @category models
 */
export type EtagBehaviour = typeof EtagBehaviour.Type

/**
 * A bucket setting that can forbid this mode for new objects (GCS encryption enforcement).
 *
 * @since 0.1.0
 * @category models
 */
export const BucketEnforcement = Schema.Struct({
  /** The bucket field, e.g. `encryption.customerSuppliedEncryptionEnforcementConfig`. */
  field: Schema.String,
  /** The value of `restrictionMode` that forbids the mode. */
  restrictedWhen: Schema.String
})

/**
 * A mode the provider turns off by default on new buckets (Amazon S3 SSE-C since April 2026).
 *
 * @since 0.1.0
 * @category models
 */
export const BlockedOnNewBuckets = Schema.Struct({
  /** When the default changed, `YYYY-MM`. */
  since: Schema.String,
  /** The bucket setting that blocks it. */
  setting: Schema.String,
  /** How to allow it on a bucket. */
  unblock: Schema.String
})

/**
 * The constraints of a cell, as data (the prose goes in `notes`).
 *
 * @since 0.1.0
 * @category models
 */
export const Constraints = Schema.Struct({
  /** The provider refuses this mode's key material over plain HTTP. */
  requiresTls: Schema.optional(Schema.Boolean),
  setAt: Schema.optional(SetAt),
  etag: Schema.optional(EtagBehaviour),
  /** Server-side modes are mutually exclusive: an object is stored under exactly one. */
  exclusivePerObject: Schema.optional(Schema.Boolean),
  blockedOnNewBuckets: Schema.optional(BlockedOnNewBuckets),
  bucketEnforcement: Schema.optional(BucketEnforcement),
  /** The server needs operator configuration first (a KMS backend, MinIO KES…). */
  serverSetup: Schema.optional(Schema.String),
  /** What `SseKms.keyId` names on this provider (a KMS ARN, a Cloud KMS key, an encryption scope…). */
  keyId: Schema.optional(Schema.String),
  /** `false` when the key cannot be chosen per object (it is the bucket's). */
  keyPerRequest: Schema.optional(Schema.Boolean),
  /** For `cse-kms`: the provider has no KMS service, so a KMS must come from elsewhere (objcrypt's local KMS). */
  noProviderKms: Schema.optional(Schema.Boolean)
})

/**
 * @since 0.1.0
 * @category models
 */
export type Constraints = typeof Constraints.Type

/**
 * Where a cell's facts come from: a public document and a short quote from it, or a note saying
 * what was (or could not be) confirmed.
 *
 * @since 0.1.0
 * @category models
 */
export const Source = Schema.Struct({
  url: Schema.NonEmptyTrimmedString,
  quote: Schema.optional(Schema.String),
  note: Schema.optional(Schema.String)
})

/**
 * @since 0.1.0
 * @category models
 */
export type Source = typeof Source.Type

/**
 * One (profile, mode) pairing.
 *
 * @since 0.1.0
 * @category models
 */
export const Cell = Schema.Struct({
  kind: CellKind,
  /** Short label for the table: `SSE-C`, `CSEK`, `CMEK`, `CPK`, `scope`, `SSE-KP`… */
  label: Schema.optional(Schema.String),
  /** The provider's own name for the feature. */
  feature: Schema.optional(Schema.String),
  /** Why the mode cannot be honoured (unsupported cells). */
  reason: Schema.optional(Schema.String),
  /** Provider-specific ways out, tried before the generic ones (`create the bucket with …`). */
  alternatives: Schema.optional(Schema.Array(Schema.String)),
  constraints: Constraints,
  notes: Schema.String,
  sources: Schema.NonEmptyArray(Source),
  /** What confirmed the cell: `docs only`, `ceph-rgw 16.2 (tests)`, `probe 2026-05-01`… */
  verifiedBy: Schema.String
})

/**
 * @since 0.1.0
 * @category models
 */
export type Cell = typeof Cell.Type

/**
 * The six cells of a profile, by mode tag.
 *
 * @since 0.1.0
 * @category models
 */
export const Cells = Schema.Struct({
  None: Cell,
  SseS3: Cell,
  SseKms: Cell,
  SseC: Cell,
  CseC: Cell,
  CseKms: Cell
})

/**
 * @since 0.1.0
 * @category models
 */
export type Cells = typeof Cells.Type

/**
 * A row of the matrix.
 *
 * @since 0.1.0
 * @category models
 */
export const Profile = Schema.Struct({
  name: ProfileName,
  title: Schema.String,
  /** The driver that reaches it (the gateway is reached with the S3 driver). */
  provider: Provider,
  /** The provider's own KMS, or `null` when it has none (ABCI). */
  kms: Schema.NullOr(Schema.String),
  notes: Schema.String,
  cells: Cells
})

/**
 * @since 0.1.0
 * @category models
 */
export type Profile = typeof Profile.Type

/**
 * The whole matrix, encodable as JSON.
 *
 * @since 0.1.0
 * @category models
 */
export const Matrix = Schema.Struct({
  profiles: Schema.Array(Profile)
})

/**
 * @since 0.1.0
 * @category models
 */
export type Matrix = typeof Matrix.Type

/**
 * The built-in matrix, from public documentation (see each cell's `sources`).
 *
 * @since 0.1.0
 * @category data
 */
export const matrix: Matrix = { profiles: defaultProfiles }

// ---------------------------------------------------------------------------------------------
// probes
// ---------------------------------------------------------------------------------------------

/**
 * What a probe saw when it tried a server-side mode on a real bucket:
 * `enforced` (stored encrypted and the key was checked on read), `accepted` (request succeeded and
 * the response echoed the mode; enforcement not checked), `ignored` (request succeeded but the
 * object was stored without it), `refused` (the server rejected the request).
 *
 * @since 0.1.0
 * @category probes
 */
export const ModeObservation = Schema.Literal("enforced", "accepted", "ignored", "refused")

/**
 * @since 0.1.0
 * @category probes
 */
export type ModeObservation = typeof ModeObservation.Type

/**
 * GCS `restrictionMode` of an encryption enforcement config.
 *
 * @since 0.1.0
 * @category probes
 */
export const RestrictionMode = Schema.Literal("NotRestricted", "FullyRestricted")

/**
 * Per-bucket observations a driver's probe produces. Every field is optional: only what was
 * observed overrides the static cell.
 *
 * @since 0.1.0
 * @category probes
 */
export const BucketFacts = Schema.Struct({
  /** The endpoint is reached over TLS (`https`). */
  tls: Schema.optional(Schema.Boolean),
  /** Amazon S3: the bucket's `BlockedEncryptionTypes` contains `SSE-C`. */
  sseCBlocked: Schema.optional(Schema.Boolean),
  /** The provider's KMS refuses these credentials the key (SSE-KMS cannot work). */
  kmsDenied: Schema.optional(Schema.Boolean),
  /** The bucket's default encryption; `enforced` when other modes are refused (Azure `preventEncryptionScopeOverride`). */
  defaultEncryption: Schema.optional(Schema.Struct({
    mode: ModeTag,
    keyId: Schema.optional(Schema.String),
    enforced: Schema.optional(Schema.Boolean)
  })),
  /** GCS bucket encryption enforcement config. */
  gcsEnforcement: Schema.optional(Schema.Struct({
    googleManaged: Schema.optional(RestrictionMode),
    customerManaged: Schema.optional(RestrictionMode),
    customerSupplied: Schema.optional(RestrictionMode)
  })),
  /** What trying each server-side mode did. */
  modes: Schema.optional(Schema.Struct({
    SseS3: Schema.optional(ModeObservation),
    SseKms: Schema.optional(ModeObservation),
    SseC: Schema.optional(ModeObservation)
  }))
})

/**
 * @since 0.1.0
 * @category probes
 */
export type BucketFacts = typeof BucketFacts.Type

/**
 * The result of probing one bucket.
 *
 * @since 0.1.0
 * @category probes
 */
export const ProbeResult = Schema.Struct({
  profile: ProfileName,
  bucket: Schema.String,
  /** ISO-8601 date or timestamp of the probe. */
  probedAt: Schema.String,
  /** The server as it identified itself, if it did (`ceph 16.2.15`). */
  server: Schema.optional(Schema.String),
  facts: BucketFacts
})

/**
 * @since 0.1.0
 * @category probes
 */
export type ProbeResult = typeof ProbeResult.Type

// ---------------------------------------------------------------------------------------------
// plans
// ---------------------------------------------------------------------------------------------

/**
 * How a driver applies a native mode: with request headers, by relying on the bucket's default
 * encryption, or not at all because the provider always encrypts.
 *
 * @since 0.1.0
 * @category plans
 */
export const Apply = Schema.Literal("per-request", "bucket-default", "implicit")

/**
 * The provider realises the mode itself.
 *
 * @since 0.1.0
 * @category plans
 */
export const NativePlan = Schema.TaggedStruct("Native", {
  profile: ProfileName,
  provider: Provider,
  mode: ModeTag,
  feature: Schema.String,
  label: Schema.String,
  apply: Apply,
  constraints: Constraints,
  notes: Schema.Array(Schema.String),
  verifiedBy: Schema.String
})

/**
 * objcrypt encrypts before upload; the store keeps opaque bytes plus the envelope in metadata.
 *
 * @since 0.1.0
 * @category plans
 */
export const ClientSidePlan = Schema.TaggedStruct("ClientSide", {
  profile: ProfileName,
  provider: Provider,
  mode: Schema.Literal("CseC", "CseKms"),
  /** `cse-c` needs keys from the KeyStore, `cse-kms` a Kms. */
  needs: Schema.Literal("key-store", "kms"),
  constraints: Constraints,
  notes: Schema.Array(Schema.String),
  verifiedBy: Schema.String
})

/**
 * Only the objcrypt gateway, in front of this store, can realise the mode.
 *
 * @since 0.1.0
 * @category plans
 */
export const ViaGatewayPlan = Schema.TaggedStruct("ViaGateway", {
  profile: ProfileName,
  provider: Provider,
  mode: ModeTag,
  feature: Schema.String,
  notes: Schema.Array(Schema.String)
})

/**
 * @since 0.1.0
 * @category plans
 */
export const Plan = Schema.Union(NativePlan, ClientSidePlan, ViaGatewayPlan)

/**
 * @since 0.1.0
 * @category plans
 */
export type Plan = typeof Plan.Type

// ---------------------------------------------------------------------------------------------
// lookup and facts
// ---------------------------------------------------------------------------------------------

const serverSide = (tag: ModeTag): tag is "SseS3" | "SseKms" | "SseC" => tag === "SseS3" || tag === "SseKms" || tag === "SseC"

/**
 * The row of a profile, if this matrix has it.
 *
 * @since 0.1.0
 * @category lookup
 */
export const profile = (name: ProfileName, m: Matrix = matrix): Profile | undefined => m.profiles.find((p) => p.name === name)

/**
 * The profiles reached with a given driver.
 *
 * @since 0.1.0
 * @category lookup
 */
export const profilesFor = (provider: Provider, m: Matrix = matrix): ReadonlyArray<Profile> =>
  m.profiles.filter((p) => p.provider === provider)

/**
 * The profile assumed for a driver when nothing more is known (`s3://` → `aws-s3`, `gs://` → `gcs`,
 * `az://` → `azure-blob`, `file://` → `local-fs`); named endpoints in the config choose others.
 *
 * @since 0.1.0
 * @category lookup
 */
export const defaultProfile = (provider: Provider): ProfileName =>
  provider === "s3" ? "aws-s3" : provider === "gcs" ? "gcs" : provider === "azure" ? "azure-blob" : "local-fs"

/**
 * A matrix restricted to some profiles (all when `names` is empty or absent).
 *
 * @since 0.1.0
 * @category lookup
 */
export const filter = (m: Matrix, names?: ReadonlyArray<ProfileName>): Matrix =>
  names === undefined || names.length === 0 ? m : { profiles: m.profiles.filter((p) => names.includes(p.name)) }

const protocolFeature: Record<Provider, Record<"SseS3" | "SseKms" | "SseC", { readonly label: string; readonly feature: string }>> = {
  s3: {
    SseS3: { label: "SSE-S3", feature: "SSE-S3 (x-amz-server-side-encryption: AES256)" },
    SseKms: { label: "SSE-KMS", feature: "SSE-KMS (x-amz-server-side-encryption: aws:kms)" },
    SseC: { label: "SSE-C", feature: "SSE-C (x-amz-server-side-encryption-customer-*)" }
  },
  gcs: {
    SseS3: { label: "Google-managed", feature: "Google-managed encryption keys" },
    SseKms: { label: "CMEK", feature: "customer-managed encryption keys (CMEK)" },
    SseC: { label: "CSEK", feature: "customer-supplied encryption keys (CSEK)" }
  },
  azure: {
    SseS3: { label: "MMK", feature: "Microsoft-managed keys" },
    SseKms: { label: "scope", feature: "encryption scope" },
    SseC: { label: "CPK", feature: "customer-provided key (CPK)" }
  },
  fs: {
    SseS3: { label: "gateway", feature: "objcrypt gateway SSE-S3" },
    SseKms: { label: "gateway", feature: "objcrypt gateway SSE-KMS" },
    SseC: { label: "gateway", feature: "objcrypt gateway SSE-C" }
  }
}

const gcsEnforcementOf = (tag: ModeTag, f: NonNullable<BucketFacts["gcsEnforcement"]>) =>
  tag === "SseS3" ? f.googleManaged : tag === "SseKms" ? f.customerManaged : tag === "SseC" ? f.customerSupplied : undefined

const unsupportedCell = (cell: Cell, reason: string, alternatives?: ReadonlyArray<string>): Cell => ({
  ...cell,
  kind: "unsupported",
  reason,
  ...(alternatives === undefined ? {} : { alternatives: [...alternatives, ...(cell.alternatives ?? [])] })
})

const withNote = (cell: Cell, note: string): Cell => ({ ...cell, notes: cell.notes === "" ? note : `${cell.notes} ${note}` })

/**
 * The cell of (profile, mode) once a bucket's observed facts are taken into account. `touched` is
 * true when the facts said something about this cell (the merge marks it verified by the probe).
 *
 * @since 0.1.0
 * @category probes
 */
export const applyFacts = (row: Profile, tag: ModeTag, facts: BucketFacts): { readonly cell: Cell; readonly touched: boolean } => {
  let cell: Cell = row.cells[tag]
  let touched = false
  const observed = serverSide(tag) ? facts.modes?.[tag] : undefined

  if (observed !== undefined && serverSide(tag)) {
    touched = true
    if (observed === "ignored") {
      cell = unsupportedCell(
        cell,
        `this server accepts ${nameOf(tag)} requests but stores the object without it (silently ignored, seen by a probe)`
      )
    } else if (observed === "refused") {
      cell = unsupportedCell(cell, `this server refused ${nameOf(tag)} requests (seen by a probe)`)
    } else if (cell.kind !== "native") {
      const proto = protocolFeature[row.provider][tag]
      const { alternatives: _a, reason: _r, ...rest } = cell
      cell = withNote(
        { ...rest, kind: "native", label: cell.label ?? proto.label, feature: cell.feature ?? proto.feature },
        `A probe saw this bucket ${observed === "enforced" ? "enforce" : "accept"} ${nameOf(tag)}.`
      )
    }
  }

  if (cell.kind === "native" && serverSide(tag)) {
    if (tag === "SseC" && facts.sseCBlocked !== undefined) {
      touched = true
      if (facts.sseCBlocked) {
        const unblock = cell.constraints.blockedOnNewBuckets?.unblock
        cell = unsupportedCell(
          cell,
          "SSE-C is blocked on this bucket (its default encryption configuration lists SSE-C in BlockedEncryptionTypes; Amazon S3's default for new buckets since April 2026)",
          [unblock === undefined ? "unblock SSE-C in the bucket's encryption configuration" : unblock]
        )
      }
    }
  }

  if (cell.kind === "native" && serverSide(tag) && facts.tls === false) {
    // A customer key sent over plain HTTP is disclosed to anyone on the path; only a probe that saw
    // this very server take it over HTTP (a loopback test server with the TLS check disabled) lifts this.
    const carriesKey = tag === "SseC"
    const provenOverHttp = observed === "enforced" || observed === "accepted"
    if ((carriesKey || cell.constraints.requiresTls === true) && !provenOverHttp) {
      touched = true
      cell = unsupportedCell(
        cell,
        cell.constraints.requiresTls === true
          ? `${row.title} requires TLS for ${nameOf(tag)} and this endpoint is plain http`
          : `objcrypt never sends a customer key over plain http`,
        ["use an https:// endpoint"]
      )
    } else if (provenOverHttp && (carriesKey || cell.constraints.requiresTls === true)) {
      cell = withNote(cell, "This server takes the key over plain http (its TLS check is off): acceptable on loopback only.")
    }
  }

  if (cell.kind === "native" && tag === "SseKms" && facts.kmsDenied === true) {
    touched = true
    cell = unsupportedCell(cell, "the KMS key is not usable with these credentials (a probe was denied)", [
      "grant the caller use of the key (encrypt, decrypt, generate data key)"
    ])
  }

  const def = facts.defaultEncryption
  if (cell.kind === "native" && serverSide(tag) && def !== undefined) {
    const setAt = cell.constraints.setAt
    if ((setAt === "bucket-creation" || setAt === "bucket-config") && def.mode !== tag) {
      touched = true
      cell = unsupportedCell(
        cell,
        setAt === "bucket-creation"
          ? `this bucket was not created with ${cell.feature ?? nameOf(tag)}, which can only be set when a bucket is created`
          : `this bucket's default encryption is ${nameOf(def.mode)}, and ${nameOf(tag)} is only set through it`,
        setAt === "bucket-creation" ? [`create a new bucket with ${cell.feature ?? nameOf(tag)}`] : [`set the bucket's default encryption to ${nameOf(tag)}`]
      )
    } else if (def.enforced === true && def.mode !== tag) {
      touched = true
      cell = unsupportedCell(cell, `this bucket forces its default encryption (${nameOf(def.mode)}) on every new object`, [
        `use ${nameOf(def.mode)}`
      ])
    } else if (setAt === "bucket-creation" || setAt === "bucket-config" || def.mode === tag) {
      touched = true
    }
  }

  const enforcement = facts.gcsEnforcement
  if (enforcement !== undefined && row.provider === "gcs") {
    if (cell.kind === "native" && serverSide(tag)) {
      const restriction = gcsEnforcementOf(tag, enforcement)
      if (restriction !== undefined) touched = true
      if (restriction === "FullyRestricted") {
        cell = unsupportedCell(
          cell,
          `this bucket's encryption enforcement config forbids ${cell.feature ?? nameOf(tag)} for new objects (${cell.constraints.bucketEnforcement?.field ?? "enforcement"}: FullyRestricted)`
        )
      }
    } else if (
      (tag === "None" || tag === "CseC" || tag === "CseKms") && enforcement.googleManaged === "FullyRestricted" &&
      def?.mode !== "SseKms"
    ) {
      // Client-side ciphertext is still uploaded as an ordinary object, under Google-managed keys
      // unless the bucket has a default CMEK key.
      touched = true
      cell = unsupportedCell(
        cell,
        "this bucket forbids Google-managed encryption for new objects and has no default CMEK key, so a plain upload is refused",
        ["set a default Cloud KMS key on the bucket (encryption.defaultKmsKeyName)"]
      )
    }
  }

  return { cell, touched }
}

// ---------------------------------------------------------------------------------------------
// resolve
// ---------------------------------------------------------------------------------------------

const GATEWAY = "put the objcrypt gateway in front"

const alternativesFor = (row: Profile, tag: ModeTag, cell: Cell, facts?: BucketFacts): ReadonlyArray<string> => {
  // An alternative is only offered if it would itself work on this bucket.
  const effective = (t: ModeTag) => (facts === undefined ? row.cells[t] : applyFacts(row, t, facts).cell)
  const usable = (t: ModeTag) => effective(t).kind !== "unsupported"
  const out: Array<string> = [...(cell.alternatives ?? [])]
  const cseKms = row.kms === null
    ? "use cse-kms with objcrypt's local KMS"
    : "use cse-kms"
  switch (tag) {
    case "SseC":
      if (usable("CseC")) out.push("use cse-c")
      break
    case "SseKms":
      if (usable("CseKms")) out.push(cseKms)
      break
    case "SseS3":
      if (effective("SseKms").kind === "native") out.push("use sse-kms")
      if (usable("CseC")) out.push("use cse-c")
      break
    case "CseKms":
      if (usable("CseC")) out.push("use cse-c")
      break
    case "None":
    case "CseC":
      break
  }
  if (serverSide(tag) && row.name !== "objcrypt-gateway") out.push(GATEWAY)
  return [...new Set(out)]
}

const applyOf = (setAt: SetAt | undefined): typeof Apply.Type =>
  setAt === "bucket-creation" || setAt === "bucket-config" ? "bucket-default" : setAt === "always-on" ? "implicit" : "per-request"

const splitNotes = (notes: string): ReadonlyArray<string> => (notes.trim() === "" ? [] : [notes.trim()])

const modeTagOf = (mode: ModeTag | EncryptionMode): ModeTag => (typeof mode === "string" ? mode : mode._tag)

/**
 * Like `resolve`, against a given matrix (a probed one, or a filtered one).
 *
 * @since 0.1.0
 * @category resolve
 */
export const resolveIn = (
  m: Matrix,
  name: ProfileName,
  mode: ModeTag | EncryptionMode,
  facts?: BucketFacts
): Effect.Effect<Plan, UnsupportedMode> => {
  const tag = modeTagOf(mode)
  const row = profile(name, m)
  if (row === undefined) {
    return Effect.fail(
      new UnsupportedMode({ provider: name, mode: tag, reason: "this profile is not in the matrix in use", alternatives: [] })
    )
  }
  const cell = facts === undefined ? row.cells[tag] : applyFacts(row, tag, facts).cell
  switch (cell.kind) {
    case "unsupported":
      return Effect.fail(
        new UnsupportedMode({
          provider: name,
          mode: tag,
          reason: cell.reason ?? `${row.title} offers no ${nameOf(tag)}`,
          alternatives: alternativesFor(row, tag, cell, facts)
        })
      )
    case "via-gateway":
      return Effect.succeed(ViaGatewayPlan.make({
        profile: name,
        provider: row.provider,
        mode: tag,
        feature: cell.feature ?? `objcrypt gateway ${nameOf(tag)}`,
        notes: splitNotes(cell.notes)
      }))
    case "client-side": {
      if (tag !== "CseC" && tag !== "CseKms") {
        return Effect.dieMessage(`matrix data error: ${name}/${tag} marked client-side`)
      }
      return Effect.succeed(ClientSidePlan.make({
        profile: name,
        provider: row.provider,
        mode: tag,
        needs: tag === "CseC" ? "key-store" : "kms",
        constraints: cell.constraints,
        notes: splitNotes(cell.notes),
        verifiedBy: cell.verifiedBy
      }))
    }
    case "native": {
      const notes = [...splitNotes(cell.notes)]
      if (typeof mode !== "string" && mode._tag === "SseKms" && mode.keyId !== undefined && cell.constraints.keyPerRequest === false) {
        const bucketKey = facts?.defaultEncryption?.mode === "SseKms" ? facts.defaultEncryption.keyId : undefined
        if (bucketKey !== undefined && bucketKey !== mode.keyId) {
          return Effect.fail(
            new UnsupportedMode({
              provider: name,
              mode: tag,
              reason: `${row.title} uses the bucket's key for every object; this bucket's key is not ${mode.keyId}`,
              alternatives: [`use a bucket created with ${mode.keyId}`, "use cse-kms"]
            })
          )
        }
        notes.push(`The key is the bucket's; the requested key id ${mode.keyId} is not sent per object.`)
      }
      return Effect.succeed(NativePlan.make({
        profile: name,
        provider: row.provider,
        mode: tag,
        feature: cell.feature ?? nameOf(tag),
        label: cell.label ?? nameOf(tag),
        apply: applyOf(cell.constraints.setAt),
        constraints: cell.constraints,
        notes,
        verifiedBy: cell.verifiedBy
      }))
    }
  }
}

/**
 * How to realise `mode` on `profile`, given what is known of the bucket. Fails with
 * `UnsupportedMode` (naming the reason and the alternatives) before any byte is sent.
 *
 * @example
 * resolve("abci", "SseC") // fails: abci does not support sse-c (…): use cse-c, or put the objcrypt gateway in front
 * resolve("aws-s3", "SseC", { sseCBlocked: true }) // fails: blocked on this bucket, unblock it or use cse-c
 *
 * @since 0.1.0
 * @category resolve
 */
export const resolve = (
  name: ProfileName,
  mode: ModeTag | EncryptionMode,
  facts?: BucketFacts
): Effect.Effect<Plan, UnsupportedMode> => resolveIn(matrix, name, mode, facts)

/**
 * Merges a bucket's probe into the matrix: the probed profile's cells become what the facts say,
 * and each cell the probe informed is marked `verifiedBy: "probe <date>"` with the probe as a source.
 *
 * @since 0.1.0
 * @category probes
 */
export const applyProbe = (m: Matrix, probe: ProbeResult): Matrix => {
  const date = probe.probedAt.slice(0, 10)
  return {
    profiles: m.profiles.map((row) => {
      if (row.name !== probe.profile) return row
      const cells = Object.fromEntries(
        ModeTag.literals.map((tag) => {
          const { cell, touched } = applyFacts(row, tag, probe.facts)
          if (!touched) return [tag, cell]
          const source: Source = {
            url: `probe://${probe.profile}/${probe.bucket}`,
            note: `observed on bucket ${probe.bucket}${probe.server === undefined ? "" : ` (${probe.server})`} at ${probe.probedAt}`
          }
          return [tag, { ...cell, verifiedBy: `probe ${date}`, sources: [source, ...cell.sources] }]
        })
      ) as unknown as Cells
      return { ...row, notes: `${row.notes} Probed: bucket ${probe.bucket} on ${date}.`.trim(), cells }
    })
  }
}

// ---------------------------------------------------------------------------------------------
// service
// ---------------------------------------------------------------------------------------------

/**
 * The matrix in use (the built-in one, or one with probe results merged in).
 *
 * @since 0.1.0
 * @category tags
 */
export class CompatibilityMatrix extends Context.Tag("@objcrypt/core/CompatibilityMatrix")<CompatibilityMatrix, Matrix>() {}

/**
 * The built-in matrix, plus any probe results.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (probes: ReadonlyArray<ProbeResult> = []): Layer.Layer<CompatibilityMatrix> =>
  Layer.succeed(CompatibilityMatrix, probes.reduce(applyProbe, matrix))

/**
 * `resolve` against the matrix in the context.
 *
 * @since 0.1.0
 * @category resolve
 */
export const resolveWith = (
  name: ProfileName,
  mode: ModeTag | EncryptionMode,
  facts?: BucketFacts
): Effect.Effect<Plan, UnsupportedMode, CompatibilityMatrix> =>
  Effect.flatMap(CompatibilityMatrix, (m) => resolveIn(m, name, mode, facts))

// ---------------------------------------------------------------------------------------------
// rendering
// ---------------------------------------------------------------------------------------------

const flagLegend: ReadonlyArray<readonly [string, string, (c: Constraints) => boolean]> = [
  ["T", "the key travels with the request: TLS required", (c) => c.requiresTls === true],
  ["C", "set only when the bucket is created", (c) => c.setAt === "bucket-creation"],
  ["D", "set through the bucket's default-encryption configuration, not per object", (c) => c.setAt === "bucket-config"],
  ["A", "always on: the provider encrypts every object at rest, nothing is sent", (c) => c.setAt === "always-on"],
  ["E", "the ETag is not an MD5 of the content (or it is hidden without the key)", (c) => c.etag !== undefined && c.etag !== "md5"],
  ["B", "blocked by default on new buckets: allow it on the bucket first", (c) => c.blockedOnNewBuckets !== undefined],
  ["R", "a bucket enforcement setting can forbid it", (c) => c.bucketEnforcement !== undefined],
  ["S", "needs server-side setup by the operator (a KMS backend, KES…)", (c) => c.serverSetup !== undefined],
  ["N", "the provider has no KMS: use objcrypt's local KMS or another KMS", (c) => c.noProviderKms === true]
]

const flagsOf = (c: Constraints): string => flagLegend.filter(([, , test]) => test(c)).map(([f]) => f).join("")

/**
 * The short text of a cell in the table: `native(CSEK) T`, `client`, `gateway`, `—`.
 *
 * @since 0.1.0
 * @category rendering
 */
export const cellLabel = (cell: Cell): string => {
  const flags = flagsOf(cell.constraints)
  const base = cell.kind === "native"
    ? `native(${cell.label ?? cell.feature ?? "?"})`
    : cell.kind === "client-side"
    ? "client"
    : cell.kind === "via-gateway"
    ? "gateway"
    : "—"
  return cell.kind === "unsupported" || flags === "" ? base : `${base} ${flags}`
}

const pad = (s: string, n: number) => s + " ".repeat(Math.max(0, n - [...s].length))

/**
 * The fixed-width table, one row per profile, with its legend.
 *
 * @since 0.1.0
 * @category rendering
 */
export const renderTable = (m: Matrix): string => {
  const header = ["profile", "driver", ...ModeTag.literals.map(nameOf)]
  const rows = m.profiles.map((p) => [p.name, p.provider, ...ModeTag.literals.map((t) => cellLabel(p.cells[t]))])
  const widths = header.map((h, i) => Math.max([...h].length, ...rows.map((r) => [...(r[i] ?? "")].length)))
  const line = (r: ReadonlyArray<string>) => r.map((s, i) => pad(s, widths[i] ?? 0)).join("  ").trimEnd()
  const rule = widths.map((w) => "-".repeat(w)).join("  ")
  return [line(header), rule, ...rows.map(line)].join("\n")
}

/**
 * The legend printed under the table.
 *
 * @since 0.1.0
 * @category rendering
 */
export const renderLegend = (): string =>
  [
    "native(X)  the provider does it itself, X is its own name for it",
    "client     objcrypt encrypts before upload (works on any store)",
    "gateway    only through the objcrypt gateway in front of the store",
    "—          not possible: resolve fails with UnsupportedMode and the alternatives",
    ...flagLegend.map(([f, text]) => `${f}          ${text}`),
    "Server-side modes are mutually exclusive: an object is stored under exactly one of them."
  ].join("\n")

const constraintText = (c: Constraints): ReadonlyArray<string> => {
  const out: Array<string> = []
  if (c.requiresTls === true) out.push("requires TLS")
  if (c.setAt !== undefined) out.push(`set at: ${c.setAt}`)
  if (c.etag !== undefined) out.push(`ETag: ${c.etag}`)
  if (c.exclusivePerObject === true) out.push("exclusive with the other server-side modes per object")
  if (c.blockedOnNewBuckets !== undefined) {
    out.push(`blocked on new buckets since ${c.blockedOnNewBuckets.since} (${c.blockedOnNewBuckets.setting}); ${c.blockedOnNewBuckets.unblock}`)
  }
  if (c.bucketEnforcement !== undefined) {
    out.push(`forbidden when ${c.bucketEnforcement.field} is ${c.bucketEnforcement.restrictedWhen}`)
  }
  if (c.serverSetup !== undefined) out.push(`server setup: ${c.serverSetup}`)
  if (c.keyId !== undefined) out.push(`key id: ${c.keyId}`)
  if (c.keyPerRequest === false) out.push("the key is the bucket's, not chosen per object")
  if (c.noProviderKms === true) out.push("no provider KMS")
  return out
}

const kindText = (cell: Cell): string =>
  cell.kind === "native"
    ? `native: ${cell.feature ?? cell.label ?? ""}`
    : cell.kind === "client-side"
    ? "client-side (objcrypt)"
    : cell.kind === "via-gateway"
    ? `via the objcrypt gateway${cell.feature === undefined ? "" : `: ${cell.feature}`}`
    : `unsupported: ${cell.reason ?? ""}`

/**
 * Every cell in words: kind, constraints, notes, sources and what verified it.
 *
 * @since 0.1.0
 * @category rendering
 */
export const renderDetails = (m: Matrix): string =>
  m.profiles.map((p) =>
    [
      `${p.name} — ${p.title} (driver ${p.provider}; KMS: ${p.kms ?? "none"})`,
      ...(p.notes === "" ? [] : [`  ${p.notes}`]),
      ...ModeTag.literals.flatMap((t) => {
        const cell = p.cells[t]
        const cons = constraintText(cell.constraints)
        return [
          `  ${nameOf(t)}: ${kindText(cell)}`,
          ...(cons.length === 0 ? [] : [`    constraints: ${cons.join("; ")}`]),
          ...(cell.notes === "" ? [] : [`    notes: ${cell.notes}`]),
          ...cell.sources.map((s) =>
            `    source: ${s.url}${s.quote === undefined ? "" : ` — "${s.quote}"`}${s.note === undefined ? "" : ` (${s.note})`}`
          ),
          `    verified by: ${cell.verifiedBy}`
        ]
      })
    ].join("\n")
  ).join("\n\n")

/**
 * The table, the legend, and with `details` every cell in words. Filter with `profiles`.
 *
 * @since 0.1.0
 * @category rendering
 */
export const render = (
  m: Matrix = matrix,
  options?: { readonly profiles?: ReadonlyArray<ProfileName> | undefined; readonly details?: boolean | undefined }
): string => {
  const f = filter(m, options?.profiles)
  return [renderTable(f), "", renderLegend(), ...(options?.details === true ? ["", renderDetails(f)] : [])].join("\n")
}

/**
 * The matrix as JSON-ready data (for `--json`), validated by the `Matrix` schema.
 *
 * @since 0.1.0
 * @category rendering
 */
export const toJSON = (m: Matrix = matrix, options?: { readonly profiles?: ReadonlyArray<ProfileName> | undefined }): typeof Matrix.Encoded =>
  Schema.encodeSync(Matrix)(filter(m, options?.profiles))

/**
 * The content of `docs/MATRIX.md`.
 *
 * @since 0.1.0
 * @category rendering
 */
export const renderMarkdown = (m: Matrix = matrix): string =>
  [
    "# Compatibility matrix",
    "",
    "<!-- Generated from packages/core/src/internal/matrixData.ts; do not edit by hand.",
    "     Regenerate: UPDATE_MATRIX_DOC=1 npx vitest run test/CompatibilityMatrix.test.ts (in packages/core). -->",
    "",
    "Which encryption mode each storage profile honours, and how. `objcrypt matrix` prints this table;",
    "`objcrypt matrix --json` prints the same data as JSON; a probe of a real bucket overrides cells with what it observed.",
    "Cells marked `docs only` were taken from the provider's public documentation and not yet checked against a server.",
    "",
    "```text",
    renderTable(m),
    "",
    renderLegend(),
    "```",
    "",
    "## Cells",
    "",
    "```text",
    renderDetails(m),
    "```",
    ""
  ].join("\n")
