/**
 * `objcrypt rekey URL… (--to KEY | --recipient NAME | --kms-key-id ID)… [-r] [--dry-run]`: rewrap
 * client-side objects' data keys under other key-store keys, key versions or a KMS key, rewriting
 * only their envelopes (no data is re-encrypted). Objects in objcrypt's native format, the AWS S3
 * Encryption Client formats (V2/V3, kept as they were) and Azure client-side encryption v2 are
 * re-keyed.
 *
 * Every object is examined first, and a refusal then (flags a format cannot take, an unknown or
 * disabled target key) changes nothing. Objects are then rewritten one by one: one that fails
 * (its data key does not open, it changed or was deleted since it was examined, the KMS refuses)
 * is reported `failed` with a one-line reason and the others are still re-keyed; the command then
 * exits non-zero.
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import * as Encryption from "@objcrypt/core/Encryption"
import * as EncryptionMode from "@objcrypt/core/EncryptionMode"
import { InvalidEncryptionParameters, KeyUnusable, PreconditionFailed } from "@objcrypt/core/Errors"
import type { KmsError } from "@objcrypt/core/Errors"
import * as Keyring from "@objcrypt/core/Keyring"
import type { Kms } from "@objcrypt/core/Kms"
import type { ResolvedKey } from "@objcrypt/core/KeyStore"
import { KeyStore } from "@objcrypt/core/KeyStore"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as S3EC from "@objcrypt/core/S3EncryptionClient"
import { Chunk, Effect, Either, Option, Redacted, Stream } from "effect"
import * as crypto from "node:crypto"
import { ExitCode, exitCodeOf, messageOf, RekeyIncomplete, UnsupportedFormat } from "../CliError.js"
import * as EndpointsConfig from "../EndpointsConfig.js"
import * as Formats from "../Formats.js"
import * as ObjectReport from "../ObjectReport.js"
import type * as Session from "../Session.js"
import * as StoreUrl from "../StoreUrl.js"
import * as Transfer from "../Transfer.js"
import { common, json, printJson, println, withSession } from "./common.js"
import { listPrefix } from "./ls.js"

type Store = ObjectStore.ObjectStore["Type"]

/**
 * What `rekey` did (or, with `--dry-run`, would do) to one object.
 *
 * @since 0.1.0
 * @category models
 */
export interface RekeyOutcome {
  readonly url: string
  readonly status: "rekeyed" | "would-rekey" | "up-to-date" | "skipped" | "failed"
  /** The client-side format, as `cp --format` names it. */
  readonly format?: Formats.FormatName | undefined
  /** Where the envelope is rewritten: the object's metadata, a sidecar or an S3EC instruction file. */
  readonly envelope?: string | undefined
  /** Wrapped keys before (`KEYID@VERSION`). */
  readonly from?: ReadonlyArray<string> | undefined
  /** The wrap before and after (S3EC and Azure: one wrapped key). */
  readonly wrap?: { readonly from: string; readonly to: string } | undefined
  /** Why it was skipped or failed: one line, never key material. */
  readonly reason?: string | undefined
}

/**
 * The counts `rekey` ends with.
 *
 * @since 0.1.0
 * @category models
 */
export interface RekeySummary {
  readonly rekeyed: number
  readonly wouldRekey: number
  readonly upToDate: number
  readonly skipped: number
  readonly failed: number
}

/** A KMS key to wrap under, checked with the store's KMS before anything is examined. */
interface KmsTarget {
  readonly kms: Kms["Type"]
  /** As given (`--kms-key-id`). */
  readonly keyId: string
  /** As the KMS records it in a wrapped key (an ARN, a local `ID@VERSION`). */
  readonly recorded: string
}

interface Targets {
  /** `--to` keys and `--recipient` keys, resolved. */
  readonly resolved: ReadonlyArray<ResolvedKey>
  readonly recipients: number
  readonly kms: KmsTarget | undefined
}

interface Planned {
  readonly store: Store
  readonly key: string
  readonly outcome: RekeyOutcome
  /** `undefined` for an object that was gone by the time it was examined. */
  readonly report: ObjectReport.ObjectReport | undefined
  readonly kms: KmsTarget | undefined
}

const formatOf = (c: NonNullable<ObjectReport.ObjectReport["clientSide"]>): Formats.FormatName | "s3ec-v1" =>
  c.format === "aws-s3ec" ? (c.formatVersion === 3 ? "s3ec-v3" : c.formatVersion === 2 ? "s3ec-v2" : "s3ec-v1") : c.format === "azure-cse" ? "azure-v2" : "native"

/** The S3EC / Azure wrap a key-store key gives (what `cp --format` writes with it). */
const singleWrap = (format: "s3ec-v2" | "s3ec-v3" | "azure-v2", k: ResolvedKey): string =>
  k._tag === "Symmetric" ? (format === "azure-v2" ? "A256KW" : "AES/GCM") : format === "azure-v2" ? "RSA-OAEP" : "RSA-OAEP-SHA1"

const usable = (k: ResolvedKey): Effect.Effect<ResolvedKey, KeyUnusable> =>
  k.info.state !== "enabled"
    ? Effect.fail(new KeyUnusable({ name: k.info.name, reason: `the key is ${k.info.state}` }))
    : k.info.purpose === "sse-c"
    ? Effect.fail(new KeyUnusable({ name: k.info.name, reason: "an sse-c customer key is not for client-side wrapping" }))
    : Effect.succeed(k)

/**
 * Asks the KMS to wrap 32 random bytes under `keyId`: an unknown, disabled or forbidden key is
 * refused before any object is examined, and the answer names the key as wrapped keys record it.
 */
const checkKmsKey = (kms: Kms["Type"], keyId: string): Effect.Effect<KmsTarget, KmsError> => {
  const probe = new Uint8Array(crypto.randomBytes(32))
  return kms.encrypt(keyId, Redacted.make(probe), { "objcrypt-rekey": "key-check" }).pipe(
    Effect.map((r) => ({ kms, keyId, recorded: r.keyId })),
    Effect.ensuring(Effect.sync(() => probe.fill(0)))
  )
}

/**
 * A view of `store` whose `head` of `key` fails with `PreconditionFailed` unless the object still
 * has the etag it was examined with. Every re-key heads the object first and makes its rewrite
 * conditional on the etag it read, so the rewrite applies only to the object that was examined.
 */
const asExamined = (store: Store, key: string, etag: string): Store => ({
  ...store,
  head: (k, options) =>
    k !== key
      ? store.head(k, options)
      : Effect.filterOrFail(
        store.head(k, options),
        (info) => info.etag === etag,
        () => new PreconditionFailed({ key, reason: "the object changed since it was examined" })
      )
})

/** The one-line reason and exit code of an object that could not be re-keyed. */
const failureOf = (p: Pick<Planned, "key">, e: unknown): { readonly reason: string; readonly code: number } => {
  const tag = typeof e === "object" && e !== null ? (e as { _tag?: unknown })._tag : undefined
  if (tag === "PreconditionFailed") return { reason: "changed since examined", code: exitCodeOf(e) }
  if (tag === "ObjectNotFound" && (e as { key?: unknown }).key === p.key) return { reason: "deleted since examined", code: ExitCode.NotFound }
  return { reason: messageOf(e), code: exitCodeOf(e) }
}

const lineOf = (r: RekeyOutcome, to: ReadonlyArray<string>): string => {
  const detail = r.wrap === undefined || r.wrap.from === r.wrap.to ? ` (${r.format})` : ` (${r.format}, ${r.wrap.from} -> ${r.wrap.to})`
  switch (r.status) {
    case "skipped":
      return `skipped ${r.url}: ${r.reason}`
    case "failed":
      return `failed ${r.url}: ${r.reason}`
    case "up-to-date":
      return `up to date ${r.url} (${r.format})`
    case "rekeyed":
      return `rekeyed ${r.url} -> ${to.join(", ")}${detail}`
    case "would-rekey":
      return `(dry run) would rekey ${r.url} -> ${to.join(", ")}${detail}`
  }
}

/**
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make(
  "rekey",
  {
    ...common,
    json,
    to: Options.text("to").pipe(
      Options.withDescription(
        "key-store key NAME[@VERSION] to wrap under (comma-separated for several, native format only); default: its primary"
      ),
      Options.optional
    ),
    recipient: Options.text("recipient").pipe(Options.withDescription("public-key recipient to wrap for (repeatable, native format only)"), Options.repeated),
    kmsKeyId: Options.text("kms-key-id").pipe(
      Options.withDescription("KMS key to wrap under, in the store's KMS (native: with --to as well; S3EC: kms+context, context kept)"),
      Options.optional
    ),
    recursive: Options.boolean("recursive").pipe(Options.withAlias("r"), Options.withDescription("every object under each prefix")),
    dryRun: Options.boolean("dry-run").pipe(Options.withDescription("report what would change, change nothing")),
    urls: Args.text({ name: "URL" }).pipe(Args.atLeast(1))
  },
  (o) =>
    withSession(o, (s) =>
      Effect.gen(function*() {
        const names = [
          ...(o.to._tag === "Some" ? o.to.value.split(",").map((x) => x.trim()).filter((x) => x !== "") : []),
          ...o.recipient
        ]
        const kmsKeyId = Option.getOrUndefined(o.kmsKeyId)?.trim()
        if (kmsKeyId === "") return yield* new InvalidEncryptionParameters({ detail: "--kms-key-id needs a key id" })
        if (names.length === 0 && kmsKeyId === undefined) {
          return yield* new InvalidEncryptionParameters({ detail: "rekey needs --to KEY, --recipient NAME or --kms-key-id ID" })
        }
        const parsed = yield* Effect.forEach(names, EncryptionMode.parseKeyName)
        const resolved = parsed.length === 0 ? [] : yield* Effect.flatMap(s.keys, (keys) =>
          Effect.forEach(parsed, (t) => Effect.flatMap(keys.keyStore.resolve(t.name, t.version), usable)))
        const to = [...resolved.map((k) => `${k.info.name}@${k.info.version}`), ...(kmsKeyId === undefined ? [] : [`kms:${kmsKeyId}`])]

        // The KMS key is checked once per KMS (stores may use different ones) before anything is examined.
        const checked = new Map<Kms["Type"], KmsTarget>()
        const kmsTargetOf = (store: Store) =>
          Effect.gen(function*() {
            if (kmsKeyId === undefined) return undefined
            const spec = s.specOf(store)
            if (spec !== undefined) {
              const kmsSpec = yield* s.kmsSpecFor(spec)
              const problem = EndpointsConfig.kmsKeyIdProblem(kmsSpec.type, kmsKeyId)
              if (problem !== undefined) {
                return yield* new InvalidEncryptionParameters({ detail: `--kms-key-id ${JSON.stringify(kmsKeyId)} for the ${kmsSpec.type} KMS: ${problem}` })
              }
            }
            const kms = yield* Transfer.kmsOf(s, store)
            const hit = checked.get(kms)
            if (hit !== undefined) return hit
            const target = yield* checkKmsKey(kms, kmsKeyId)
            checked.set(kms, target)
            return target
          })

        // Examine everything first: a refusal leaves every object as it was.
        const planned: Array<Planned> = []
        for (const url of o.urls) {
          const loc = yield* s.locateStore(url)
          const store = yield* s.open(loc.store)
          const kms = yield* kmsTargetOf(store)
          const targets: Targets = { resolved, recipients: o.recipient.length, kms }
          const listed = o.recursive
            ? Chunk.toReadonlyArray(yield* Stream.runCollect(ObjectStore.listAll(store, { prefix: listPrefix(loc.key) }))).map((x) => x.key)
            : [loc.key]
          // An S3EC instruction file is re-keyed with its object, not on its own.
          const all = new Set(listed)
          const objectKeys = listed.filter((k) => !(k.endsWith(S3EC.INSTRUCTION_SUFFIX) && all.has(k.slice(0, -S3EC.INSTRUCTION_SUFFIX.length))))
          for (const key of objectKeys) {
            const display = StoreUrl.displayKey(loc, key)
            const examined = yield* Effect.either(ObjectReport.make(store, key, display).pipe(Effect.provide(Transfer.decryptor(s, store))))
            if (Either.isLeft(examined)) {
              const e = examined.left
              // Listed, then deleted before it was examined: nothing is left to re-key.
              if (o.recursive && e._tag === "ObjectNotFound" && e.key === key) {
                planned.push({ store, key, report: undefined, kms, outcome: { url: display, status: "skipped", reason: "deleted before it was examined" } })
                continue
              }
              return yield* Effect.fail(e)
            }
            const report = examined.right
            planned.push({ store, key, report, kms, outcome: yield* plan(display, report, targets) })
          }
        }

        // Then rewrite one by one; a failure is recorded and the rest still done.
        const results: Array<RekeyOutcome> = []
        const codes: Array<number> = []
        for (const p of planned) {
          let outcome = p.outcome
          if (outcome.status === "would-rekey" && !o.dryRun && p.report !== undefined) {
            const done = yield* Effect.either(apply(s, { ...p, report: p.report }, resolved))
            if (Either.isRight(done)) outcome = { ...outcome, status: "rekeyed" }
            else {
              const f = failureOf(p, done.left)
              outcome = { ...outcome, status: "failed", reason: f.reason }
              codes.push(f.code)
            }
          } else if (outcome.status === "failed") {
            // Found while examining: an envelope that cannot be read.
            codes.push(ExitCode.Integrity)
          }
          results.push(outcome)
          if (!o.json) yield* println(lineOf(outcome, to))
        }

        const count = (status: RekeyOutcome["status"]) => results.filter((r) => r.status === status).length
        const summary: RekeySummary = {
          rekeyed: count("rekeyed"),
          wouldRekey: count("would-rekey"),
          upToDate: count("up-to-date"),
          skipped: count("skipped"),
          failed: count("failed")
        }
        if (o.json) yield* printJson({ dryRun: o.dryRun, to, objects: results, summary })
        else if (o.recursive || o.urls.length > 1) {
          yield* println(
            `${o.dryRun ? `(dry run) would rekey ${summary.wouldRekey}` : `rekeyed ${summary.rekeyed}`}, up to date ${summary.upToDate}, skipped ${summary.skipped}, failed ${summary.failed}`
          )
        }
        const firstFailed = results.find((r) => r.status === "failed")
        if (firstFailed !== undefined) {
          return yield* new RekeyIncomplete({
            failed: summary.failed,
            examined: results.length,
            rekeyed: summary.rekeyed,
            dryRun: o.dryRun,
            first: `${firstFailed.url}: ${firstFailed.reason}`,
            exitCode: codes.length > 0 && codes.every((c) => c === codes[0]) ? codes[0] ?? ExitCode.General : ExitCode.General
          })
        }
      }))
).pipe(
  Command.withDescription(
    "rewrap client-side objects (native, S3EC V2/V3, Azure v2) under other keys or a KMS key without re-encrypting data; every object's outcome is reported"
  )
)

const plan = (url: string, report: ObjectReport.ObjectReport, t: Targets): Effect.Effect<RekeyOutcome, UnsupportedFormat | KeyUnusable> =>
  Effect.gen(function*() {
    const c = report.clientSide
    if (c === undefined) {
      // An envelope that cannot be read is a client-side object that cannot be re-keyed.
      return report.envelopeError !== undefined
        ? { url, status: "failed", reason: report.envelopeError }
        : { url, status: "skipped", reason: `not client-side (${report.mode})` }
    }
    const format = formatOf(c)
    if (format === "s3ec-v1") {
      return { url, status: "skipped", reason: "a legacy S3 Encryption Client V1 object cannot be re-keyed (copy it to re-encrypt)" }
    }
    const from = c.keys.map((k) => `${k.keyId}@${k.version}`)
    const base = { url, format, envelope: c.envelope, from }
    if (format === "native") {
      // A KMS keyring records the key as the KMS names it, with version 0.
      const wanted = [...t.resolved.map((k) => `${k.info.id}@${k.info.version}`), ...(t.kms === undefined ? [] : [`${t.kms.recorded}@0`])]
      if (from.slice().sort().join(",") === wanted.sort().join(",")) return { ...base, status: "up-to-date" }
      return { ...base, status: "would-rekey" }
    }
    const refuse = (reason: string) => Effect.fail(new UnsupportedFormat({ format, destination: url, reason }))
    if (format === "azure-v2" && t.kms !== undefined) {
      return yield* refuse("Azure client-side encryption has no KMS wrap of the data key (rekey it with one --to KEY)")
    }
    if (t.resolved.length + (t.kms === undefined ? 0 : 1) !== 1 || t.recipients > 0) {
      return yield* refuse(
        format === "azure-v2"
          ? "Azure client-side encryption wraps the data key under exactly one key (one --to KEY, no --recipient)"
          : "the AWS S3 Encryption Client format wraps the data key under exactly one key (one --to KEY or one --kms-key-id, no --recipient)"
      )
    }
    const was = c.keys[0]?.type ?? (c.mode === "cse-kms" ? "kms+context" : "unknown")
    // Exactly one target: a key-store key or, failing that, the KMS key. S3EC records no KMS key
    // id (the KMS's ciphertext does), so a kms+context object is always rewrapped.
    const k = t.resolved[0]
    if (k === undefined) return { ...base, status: "would-rekey", wrap: { from: was, to: "kms+context" } }
    if (k.info.algorithm === "x25519") {
      return yield* Effect.fail(new KeyUnusable({ name: k.info.name, reason: "this format wraps with AES or RSA keys, not x25519" }))
    }
    if (format === "azure-v2" && k._tag === "Symmetric" && k.info.algorithm !== "aes-256") {
      return yield* Effect.fail(new KeyUnusable({ name: k.info.name, reason: "Azure client-side encryption needs an aes-256 or rsa-oaep-256 key" }))
    }
    const wanted = `${k.info.id}@${k.info.version}`
    if (from.length === 1 && from[0] === wanted && was === singleWrap(format, k)) return { ...base, status: "up-to-date" }
    return { ...base, status: "would-rekey", wrap: { from: was, to: singleWrap(format, k) } }
  })

const apply = (s: Session.Session, p: Planned & { readonly report: ObjectReport.ObjectReport }, resolved: ReadonlyArray<ResolvedKey>) =>
  Effect.gen(function*() {
    const { key } = p
    const store = asExamined(p.store, key, p.report.etag)
    if (p.outcome.format === "native") {
      const keyrings = [...resolved.map((k) => Keyring.fromResolvedKey(k)), ...(p.kms === undefined ? [] : [Keyring.kms(p.kms.kms, p.kms.keyId)])]
      yield* Encryption.rekey(store, key, { _tag: "Replace", keyrings }).pipe(Effect.provide(Transfer.decryptor(s, p.store)))
      return
    }
    const keys = yield* s.keys
    const target = resolved[0]
    if (p.outcome.format === "azure-v2") {
      if (target === undefined) return yield* new UnsupportedFormat({ format: "azure-v2", destination: p.outcome.url, reason: "no key to wrap under" })
      const info = yield* store.head(key)
      const found = yield* Formats.detect(store, info)
      if (found.azure === undefined) return yield* Effect.fail(found.problem ?? new UnsupportedFormat({ format: "azure-v2", destination: p.outcome.url, reason: "the blob changed since it was examined" }))
      const Cse = yield* Formats.azureCse
      const resolver = yield* Formats.azureResolver(key, found.azure, keys.keyStore)
      const kek = yield* Cse.fromKeyStore(target.info.name, target.info.version, { rsaAlgorithm: "RSA-OAEP" }).pipe(
        Effect.provideService(KeyStore, keys.keyStore)
      )
      yield* Cse.rekey(store, key, resolver, kek)
      return
    }
    // Planning made sure there is exactly one of them.
    const wrapping = p.kms !== undefined ? S3EC.kmsContext(p.kms.kms, p.kms.keyId) : target === undefined ? undefined : S3EC.fromResolvedKey(target)
    if (wrapping === undefined) return yield* new UnsupportedFormat({ format: p.outcome.format ?? "s3ec-v3", destination: p.outcome.url, reason: "no key to wrap under" })
    // The recorded KMS context is authenticated by the KMS itself; pass it back as recorded.
    const recorded = Object.fromEntries(Object.entries(p.report.clientSide?.context ?? {}).filter(([k]) => k !== "aws:x-amz-cek-alg"))
    yield* S3EC.rekey(store, key, {
      materials: { keyStore: keys.keyStore, kms: p.report.mode === "cse-kms" ? yield* Transfer.kmsOf(s, p.store) : keys.kms },
      // V2 objects are re-keyed as V2: reading them needs a policy that allows them.
      commitmentPolicy: "RequireEncryptAllowDecrypt",
      kmsContext: recorded,
      // A kms+context object keeps its encryption context under the new KMS key.
      newKmsContext: p.kms !== undefined && Object.keys(recorded).length > 0 ? recorded : undefined,
      wrapping
    })
  })
