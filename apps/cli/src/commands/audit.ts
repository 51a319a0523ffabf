/**
 * `objcrypt audit URL [policy flags] [--json]`: scan a prefix, report objects by mode, key and
 * version, and exit 7 when an object breaks the policy.
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import * as EncryptionMode from "@objcrypt/core/EncryptionMode"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import { Effect, Option, Schema, Stream } from "effect"
import * as fs from "node:fs/promises"
import { ConfigError, PolicyViolation } from "../CliError.js"
import * as ObjectReport from "../ObjectReport.js"
import * as StoreUrl from "../StoreUrl.js"
import * as Transfer from "../Transfer.js"
import { common, json, printJson, println, withSession } from "./common.js"
import { listPrefix } from "./ls.js"

/**
 * A policy file (`--policy FILE`); flags add to it.
 *
 * @since 0.1.0
 * @category models
 */
export const Policy = Schema.Struct({
  /** Every object must be stored under one of these modes. */
  requireMode: Schema.optional(Schema.Array(EncryptionMode.ModeName)),
  /** No object may be stored unencrypted. */
  requireEncrypted: Schema.optional(Schema.Boolean),
  /** Client-side objects must be wrapped under key versions at least this. */
  minKeyVersion: Schema.optional(Schema.Int.pipe(Schema.positive())),
  /** Client-side objects must be wrapped under their key's primary version. */
  currentKeyVersionOnly: Schema.optional(Schema.Boolean)
})

/**
 * @since 0.1.0
 * @category models
 */
export type Policy = typeof Policy.Type

/**
 * The reasons an object breaks a policy (empty when it complies).
 *
 * @since 0.1.0
 * @category checks
 */
export const check = (policy: Policy, r: ObjectReport.ObjectReport): ReadonlyArray<string> => {
  const out: Array<string> = []
  if (r.envelopeError !== undefined) out.push(`unreadable envelope: ${r.envelopeError}`)
  if (policy.requireEncrypted === true && (r.mode === "none" || r.mode === "unknown")) out.push(`not encrypted (${r.mode})`)
  if (policy.requireMode !== undefined && policy.requireMode.length > 0 && !policy.requireMode.includes(r.mode as EncryptionMode.ModeName)) {
    out.push(`mode ${r.mode} is not ${policy.requireMode.join(" or ")}`)
  }
  const keys = r.clientSide?.keys ?? []
  if (policy.minKeyVersion !== undefined) {
    for (const k of keys) {
      if (k.version < policy.minKeyVersion) out.push(`key ${k.name ?? k.keyId} version ${k.version} < ${policy.minKeyVersion}`)
    }
    if (r.clientSide === undefined) out.push(`mode ${r.mode} has no key version to check`)
  }
  if (policy.currentKeyVersionOnly === true) {
    for (const k of keys) {
      if (k.primary === undefined) out.push(`key ${k.keyId} is not in the key store`)
      else if (!k.primary) out.push(`key ${k.name ?? k.keyId} version ${k.version} is not the primary version`)
    }
    if (r.clientSide === undefined) out.push(`mode ${r.mode} has no key version to check`)
  }
  return out
}

const sseCOnly = (x: ObjectStore.ListedObject, url: string): ObjectReport.ObjectReport => ({
  key: x.key,
  url,
  mode: "sse-c",
  size: x.size,
  etag: x.etag,
  lastModified: x.lastModified.toISOString(),
  serverSide: { mode: "sse-c" }
})

const loadPolicy = (file: string) =>
  Effect.tryPromise({
    try: () => fs.readFile(file, "utf8"),
    catch: (e) => new ConfigError({ file, detail: `cannot read the policy (${(e as NodeJS.ErrnoException).code ?? "error"})` })
  }).pipe(
    Effect.flatMap((text) =>
      Schema.decodeUnknown(Schema.parseJson(Policy), { onExcessProperty: "error" })(text).pipe(
        Effect.mapError((e) => new ConfigError({ file, detail: `invalid policy: ${e.message.split("\n").slice(-1)[0]}` }))
      )
    )
  )

/**
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make(
  "audit",
  {
    ...common,
    json,
    policy: Options.text("policy").pipe(Options.withDescription("JSON policy file (see README); flags add to it"), Options.optional),
    requireMode: Options.choice("require-mode", EncryptionMode.ModeName.literals).pipe(
      Options.withDescription("allowed mode (repeatable)"),
      Options.repeated
    ),
    requireEncrypted: Options.boolean("require-encrypted").pipe(Options.withDescription("no object may be unencrypted")),
    minKeyVersion: Options.integer("min-key-version").pipe(Options.optional),
    currentKeyVersionOnly: Options.boolean("current-key-version-only").pipe(
      Options.withDescription("client-side objects must use their key's primary version (opens the key store)")
    ),
    url: Args.text({ name: "URL" })
  },
  (o) =>
    withSession(o, (s) =>
      Effect.gen(function*() {
        const fromFile = Option.isSome(o.policy) ? yield* loadPolicy(o.policy.value) : {}
        const policy: Policy = {
          requireMode: [...(fromFile.requireMode ?? []), ...o.requireMode],
          requireEncrypted: o.requireEncrypted || fromFile.requireEncrypted,
          minKeyVersion: Option.getOrUndefined(o.minKeyVersion) ?? fromFile.minKeyVersion,
          currentKeyVersionOnly: o.currentKeyVersionOnly || fromFile.currentKeyVersionOnly
        }
        const loc = yield* s.locateStore(o.url)
        const store = yield* s.open(loc.store)
        const keys = policy.currentKeyVersionOnly === true ? yield* s.keys : undefined
        const decryptor = Transfer.decryptor(s, store)
        const byMode: Record<string, number> = {}
        const byKey: Record<string, number> = {}
        const violations: Array<{ readonly url: string; readonly mode: string; readonly reasons: ReadonlyArray<string> }> = []
        let scanned = 0
        yield* ObjectStore.listAll(store, { prefix: listPrefix(loc.key) }).pipe(
          Stream.mapEffect((x) =>
            ObjectReport.make(store, x.key, StoreUrl.displayKey(loc, x.key)).pipe(
              Effect.provide(decryptor),
              // An SSE-C object cannot even be headed without its key: that alone tells its mode.
              Effect.catchIf(
                (e) => e._tag === "AccessDenied" && /SSE-C/.test(e.reason),
                () => Effect.succeed(sseCOnly(x, StoreUrl.displayKey(loc, x.key)))
              ),
              Effect.flatMap((r) => (keys === undefined ? Effect.succeed(r) : ObjectReport.withKeyNames(r, keys.manager.primaryOf)))
            ), { concurrency: 8 }),
          Stream.runForEach((r) =>
            Effect.sync(() => {
              scanned++
              byMode[r.mode] = (byMode[r.mode] ?? 0) + 1
              for (const k of r.clientSide?.keys ?? []) {
                const label = `${k.name ?? k.keyId}@${k.version}`
                byKey[label] = (byKey[label] ?? 0) + 1
              }
              if (r.serverSide.mode === "sse-kms") {
                const label = `kms:${r.serverSide.kmsKeyId ?? "default"}`
                byKey[label] = (byKey[label] ?? 0) + 1
              }
              const reasons = check(policy, r)
              if (reasons.length > 0) violations.push({ url: r.url, mode: r.mode, reasons })
            })
          )
        )
        if (o.json) {
          yield* printJson({ scanned, policy, byMode, byKey, violations, compliant: violations.length === 0 })
        } else {
          yield* println(`scanned ${scanned} objects under ${StoreUrl.displayKey(loc, listPrefix(loc.key))}`)
          yield* println("by mode:")
          for (const [m, n] of Object.entries(byMode).sort()) yield* println(`  ${m.padEnd(10)} ${n}`)
          if (Object.keys(byKey).length > 0) {
            yield* println("by key and version:")
            for (const [k, n] of Object.entries(byKey).sort()) yield* println(`  ${k.padEnd(30)} ${n}`)
          }
          if (violations.length > 0) {
            yield* println(`violations (${violations.length}):`)
            for (const v of violations) yield* println(`  ${v.url}: ${v.reasons.join("; ")}`)
          } else {
            yield* println("no violations")
          }
        }
        if (violations.length > 0) return yield* new PolicyViolation({ violations: violations.length, scanned })
      }))
).pipe(Command.withDescription("scan a prefix and check every object against an encryption policy (exit 7 on violation)"))
