/**
 * `objcrypt rekey URL… --to KEY [--recipient NAME]… [-r] [--dry-run]`: rewrap client-side objects'
 * data keys under another key or key version, rewriting only their envelopes (no data is
 * re-encrypted). Objects in objcrypt's native format, the AWS S3 Encryption Client formats (V2/V3,
 * kept as they were) and Azure client-side encryption v2 are re-keyed; every object is examined
 * before any is changed, so a refusal changes nothing.
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import * as Encryption from "@objcrypt/core/Encryption"
import * as EncryptionMode from "@objcrypt/core/EncryptionMode"
import { InvalidEncryptionParameters, KeyUnusable } from "@objcrypt/core/Errors"
import * as Keyring from "@objcrypt/core/Keyring"
import type { ResolvedKey } from "@objcrypt/core/KeyStore"
import { KeyStore } from "@objcrypt/core/KeyStore"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as S3EC from "@objcrypt/core/S3EncryptionClient"
import { Chunk, Effect, Stream } from "effect"
import { UnsupportedFormat } from "../CliError.js"
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
  readonly status: "rekeyed" | "would-rekey" | "up-to-date" | "skipped"
  /** The client-side format, as `cp --format` names it. */
  readonly format?: Formats.FormatName | undefined
  /** Where the envelope is rewritten: the object's metadata, a sidecar or an S3EC instruction file. */
  readonly envelope?: string | undefined
  /** Wrapped keys before (`KEYID@VERSION`). */
  readonly from?: ReadonlyArray<string> | undefined
  /** The wrap before and after (S3EC and Azure: one wrapped key). */
  readonly wrap?: { readonly from: string; readonly to: string } | undefined
  readonly reason?: string | undefined
}

interface Planned {
  readonly store: Store
  readonly key: string
  readonly outcome: RekeyOutcome
  readonly report: ObjectReport.ObjectReport
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
        if (names.length === 0) return yield* new InvalidEncryptionParameters({ detail: "rekey needs --to KEY or --recipient NAME" })
        const targets = yield* Effect.forEach(names, EncryptionMode.parseKeyName)
        const keys = yield* s.keys
        const resolved = yield* Effect.forEach(targets, (t) => keys.keyStore.resolve(t.name, t.version))
        const wanted = resolved.map((k) => `${k.info.id}@${k.info.version}`).sort().join(",")
        const to = resolved.map((k) => `${k.info.name}@${k.info.version}`)

        // Examine everything first: a refusal leaves every object as it was.
        const planned: Array<Planned> = []
        for (const url of o.urls) {
          const loc = yield* s.locateStore(url)
          const store = yield* s.open(loc.store)
          const listed = o.recursive
            ? Chunk.toReadonlyArray(yield* Stream.runCollect(ObjectStore.listAll(store, { prefix: listPrefix(loc.key) }))).map((x) => x.key)
            : [loc.key]
          // An S3EC instruction file is re-keyed with its object, not on its own.
          const all = new Set(listed)
          const objectKeys = listed.filter((k) => !(k.endsWith(S3EC.INSTRUCTION_SUFFIX) && all.has(k.slice(0, -S3EC.INSTRUCTION_SUFFIX.length))))
          for (const key of objectKeys) {
            const display = StoreUrl.displayKey(loc, key)
            const report = yield* ObjectReport.make(store, key, display).pipe(Effect.provide(Transfer.decryptor(s, store)))
            planned.push({ store, key, report, outcome: yield* plan(display, report, resolved, wanted, o.recipient.length) })
          }
        }

        const results: Array<RekeyOutcome> = []
        for (const p of planned) {
          if (p.outcome.status !== "would-rekey" || o.dryRun) {
            results.push(p.outcome)
            continue
          }
          yield* apply(s, p, resolved)
          results.push({ ...p.outcome, status: "rekeyed" })
        }
        if (o.json) return yield* printJson({ dryRun: o.dryRun, to, objects: results })
        for (const r of results) {
          const detail = r.wrap === undefined || r.wrap.from === r.wrap.to ? ` (${r.format})` : ` (${r.format}, ${r.wrap.from} -> ${r.wrap.to})`
          yield* println(
            r.status === "skipped"
              ? `skipped ${r.url}: ${r.reason}`
              : r.status === "up-to-date"
              ? `up to date ${r.url} (${r.format})`
              : `${r.status === "rekeyed" ? "rekeyed" : "(dry run) would rekey"} ${r.url} -> ${to.join(", ")}${detail}`
          )
        }
      }))
).pipe(Command.withDescription("rewrap client-side objects (native, S3EC V2/V3, Azure v2) under another key or key version without re-encrypting data"))

const plan = (
  url: string,
  report: ObjectReport.ObjectReport,
  resolved: ReadonlyArray<ResolvedKey>,
  wanted: string,
  recipients: number
): Effect.Effect<RekeyOutcome, UnsupportedFormat | KeyUnusable> =>
  Effect.gen(function*() {
    const c = report.clientSide
    if (c === undefined) return { url, status: "skipped", reason: report.envelopeError ?? `not client-side (${report.mode})` }
    const format = formatOf(c)
    if (format === "s3ec-v1") {
      return { url, status: "skipped", reason: "a legacy S3 Encryption Client V1 object cannot be re-keyed (copy it to re-encrypt)" }
    }
    const from = c.keys.map((k) => `${k.keyId}@${k.version}`)
    const base = { url, format, envelope: c.envelope, from }
    if (from.slice().sort().join(",") === wanted) return { ...base, status: "up-to-date" }
    if (format === "native") return { ...base, status: "would-rekey" }
    const refuse = (reason: string) => Effect.fail(new UnsupportedFormat({ format, destination: url, reason }))
    if (resolved.length !== 1 || recipients > 0) {
      return yield* refuse(`${format === "azure-v2" ? "Azure client-side encryption" : "the AWS S3 Encryption Client format"} wraps the data key under exactly one key (one --to KEY, no --recipient)`)
    }
    const k = yield* usable(resolved[0]!)
    if (k.info.algorithm === "x25519") {
      return yield* Effect.fail(new KeyUnusable({ name: k.info.name, reason: "this format wraps with AES or RSA keys, not x25519" }))
    }
    if (format === "azure-v2" && k._tag === "Symmetric" && k.info.algorithm !== "aes-256") {
      return yield* Effect.fail(new KeyUnusable({ name: k.info.name, reason: "Azure client-side encryption needs an aes-256 or rsa-oaep-256 key" }))
    }
    return { ...base, status: "would-rekey", wrap: { from: c.keys[0]?.type ?? (c.mode === "cse-kms" ? "kms+context" : "unknown"), to: singleWrap(format, k) } }
  })

const apply = (s: Session.Session, p: Planned, resolved: ReadonlyArray<ResolvedKey>) =>
  Effect.gen(function*() {
    const { store, key } = p
    const keys = yield* s.keys
    if (p.outcome.format === "native") {
      const keyrings = resolved.map((k) => Keyring.fromResolvedKey(k))
      yield* Encryption.rekey(store, key, { _tag: "Replace", keyrings }).pipe(Effect.provide(Transfer.decryptor(s, store)))
      return
    }
    const target = resolved[0]!
    if (p.outcome.format === "azure-v2") {
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
    const recorded = p.report.clientSide?.context ?? {}
    yield* S3EC.rekey(store, key, {
      materials: { keyStore: keys.keyStore, kms: p.report.mode === "cse-kms" ? yield* Transfer.kmsOf(s, store) : keys.kms },
      // V2 objects are re-keyed as V2: reading them needs a policy that allows them.
      commitmentPolicy: "RequireEncryptAllowDecrypt",
      // The recorded KMS context is authenticated by the KMS itself; pass it back as recorded.
      kmsContext: Object.fromEntries(Object.entries(recorded).filter(([k]) => k !== "aws:x-amz-cek-alg")),
      wrapping: S3EC.fromResolvedKey(target)
    })
  })
