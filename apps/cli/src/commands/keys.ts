/**
 * `objcrypt keys …`: generate, import, export, list, show, rotate, delete, backup, restore.
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import { KeyAlgorithm, KeyPurpose } from "@objcrypt/core/KeyStore"
import * as Backup from "@objcrypt/keys/Backup"
import { KeyManager as keysTag, type KeyDetails } from "@objcrypt/keys/KeyManager"
import { Format } from "@objcrypt/keys/KeyMaterial"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import { Effect, Option, Redacted } from "effect"
import * as fs from "node:fs/promises"
import { LocalFileError, UsageError } from "../CliError.js"
import * as Passphrase from "../Passphrase.js"
import type * as Session from "../Session.js"
import { common, eprintln, json, printJson, println, withSession } from "./common.js"

const name = Args.text({ name: "NAME" }).pipe(Args.withDescription("key name (or NAME@VERSION where a version applies)"))

const detailsJson = (k: KeyDetails) => ({
  id: k.id,
  name: k.name,
  algorithm: k.algorithm,
  purpose: k.purpose,
  state: k.state,
  primaryVersion: k.primaryVersion,
  extractable: k.extractable,
  aliases: k.aliases,
  description: k.description,
  createdAt: k.createdAt.toISOString(),
  versions: k.versions.map((v) => ({
    version: v.version,
    state: v.state,
    primary: v.primary,
    origin: v.origin,
    fingerprint: v.fingerprint,
    hasPrivate: v.hasPrivate,
    createdAt: v.createdAt.toISOString()
  }))
})

const describeKey = (k: KeyDetails): string =>
  [
    `${k.name}  id ${k.id}`,
    `  algorithm ${k.algorithm}, purpose ${k.purpose}, state ${k.state}, primary version ${k.primaryVersion}${k.extractable ? "" : ", non-extractable"}`,
    ...(k.aliases.length > 0 ? [`  aliases ${k.aliases.join(", ")}`] : []),
    ...(k.description === undefined ? [] : [`  ${k.description}`]),
    ...k.versions.map((v) =>
      `  v${v.version}${v.primary ? " (primary)" : ""}  ${v.state}  ${v.origin}  ${v.fingerprint}  ${v.createdAt.toISOString()}`
    )
  ].join("\n")

const readMaterial = (from: string) =>
  Effect.tryPromise({
    try: async () => {
      if (from === "-") {
        const chunks: Array<Buffer> = []
        for await (const c of process.stdin) chunks.push(c as Buffer)
        return new Uint8Array(Buffer.concat(chunks))
      }
      return new Uint8Array(await fs.readFile(from))
    },
    catch: (e) => {
      const code = (e as NodeJS.ErrnoException).code
      return new LocalFileError({ path: from, reason: code === "ENOENT" ? "NotFound" : "Io", detail: `cannot read the key (${code ?? "error"})` })
    }
  }).pipe(Effect.map((bytes) => Redacted.make<Uint8Array>(bytes)))

const generate = Command.make(
  "generate",
  {
    ...common,
    json,
    name,
    algorithm: Options.choice("algorithm", KeyAlgorithm.literals).pipe(Options.withDefault("aes-256" as const)),
    purpose: Options.choice("purpose", KeyPurpose.literals).pipe(Options.optional),
    description: Options.text("description").pipe(Options.optional),
    nonExtractable: Options.boolean("non-extractable").pipe(Options.withDescription("never let `keys export` release it"))
  },
  (o) =>
    withSession(o, (s) =>
      Effect.gen(function*() {
        const { manager } = yield* s.keys
        const k = yield* manager.generate({
          name: o.name,
          algorithm: o.algorithm,
          purpose: Option.getOrUndefined(o.purpose),
          description: Option.getOrUndefined(o.description),
          extractable: !o.nonExtractable
        })
        if (o.json) return yield* printJson(detailsJson(k))
        yield* println(`generated ${k.algorithm} key ${k.name} (id ${k.id}, version ${k.primaryVersion}) in ${s.keystorePath}`)
      }))
).pipe(Command.withDescription("generate a new key from secure randomness"))

const importCmd = Command.make(
  "import",
  {
    ...common,
    json,
    name,
    from: Options.text("from").pipe(Options.withDescription("file holding the key, or - for stdin")),
    format: Options.choice("format", ["auto", ...Format.literals] as const).pipe(Options.withDefault("auto" as const)),
    purpose: Options.choice("purpose", KeyPurpose.literals).pipe(Options.optional),
    description: Options.text("description").pipe(Options.optional),
    nonExtractable: Options.boolean("non-extractable")
  },
  (o) =>
    withSession(o, (s) =>
      Effect.gen(function*() {
        const material = yield* readMaterial(o.from)
        const { manager } = yield* s.keys
        const k = yield* manager.import({
          name: o.name,
          material,
          format: o.format,
          purpose: Option.getOrUndefined(o.purpose),
          description: Option.getOrUndefined(o.description),
          extractable: !o.nonExtractable
        })
        if (o.json) return yield* printJson(detailsJson(k))
        yield* println(`imported ${k.algorithm} key ${k.name} (id ${k.id})`)
      }))
).pipe(Command.withDescription("import a key (raw, base64, hex, JWK or PEM)"))

const exportCmd = Command.make(
  "export",
  {
    ...common,
    name,
    format: Options.choice("format", Format.literals).pipe(Options.withDefault("base64" as const)),
    private: Options.boolean("private").pipe(Options.withDescription("include the private half of a key pair")),
    out: Options.text("out").pipe(Options.withDescription("write to this file (mode 0600) instead of stdout"), Options.optional)
  },
  (o) =>
    withSession(o, (s) =>
      Effect.gen(function*() {
        const { manager } = yield* s.keys
        const bytes = yield* manager.export(o.name, { format: o.format, includePrivate: o.private })
        if (Option.isSome(o.out)) {
          const out = o.out.value
          yield* Effect.tryPromise({
            try: () => fs.writeFile(out, Redacted.value(bytes), { mode: 0o600, flag: "wx" }),
            catch: (e) => {
              const code = (e as NodeJS.ErrnoException).code
              return new LocalFileError({ path: out, reason: code === "EEXIST" ? "Exists" : "Io", detail: code === "EEXIST" ? "already exists" : `cannot write (${code ?? "error"})` })
            }
          })
          return yield* eprintln(`exported ${o.name} to ${out}`)
        }
        const b = Redacted.value(bytes)
        yield* Effect.sync(() => void process.stdout.write(o.format === "raw" ? b : Buffer.concat([b, Buffer.from("\n")])))
      }))
).pipe(Command.withDescription("export a key's material (refused for non-extractable keys)"))

const list = Command.make(
  "list",
  { ...common, json, all: Options.boolean("all").pipe(Options.withDescription("include deleted keys")) },
  (o) =>
    withSession(o, (s) =>
      Effect.gen(function*() {
        const { manager } = yield* s.keys
        const keys = yield* manager.list({ includeDeleted: o.all })
        if (o.json) return yield* printJson(keys.map(detailsJson))
        if (keys.length === 0) return yield* eprintln(`no keys in ${s.keystorePath}`)
        for (const k of keys) {
          yield* println(`${k.name.padEnd(20)} ${k.algorithm.padEnd(13)} ${k.purpose.padEnd(9)} v${String(k.primaryVersion).padEnd(3)} ${k.state.padEnd(8)} ${k.id}`)
        }
      }))
).pipe(Command.withDescription("list the keys (no material)"))

const show = Command.make("show", { ...common, json, name }, (o) =>
  withSession(o, (s) =>
    Effect.gen(function*() {
      const { manager } = yield* s.keys
      const k = yield* manager.show(o.name)
      yield* o.json ? printJson(detailsJson(k)) : println(describeKey(k))
    }))).pipe(Command.withDescription("show a key's versions, fingerprints and state"))

const rotate = Command.make(
  "rotate",
  {
    ...common,
    json,
    name,
    from: Options.text("from").pipe(Options.withDescription("new material for an imported key (file or -)"), Options.optional),
    format: Options.choice("format", ["auto", ...Format.literals] as const).pipe(Options.withDefault("auto" as const))
  },
  (o) =>
    withSession(o, (s) =>
      Effect.gen(function*() {
        const material = Option.isSome(o.from) ? yield* readMaterial(o.from.value) : undefined
        const { manager } = yield* s.keys
        const k = yield* manager.rotate(o.name, { material, format: o.format })
        if (o.json) return yield* printJson(detailsJson(k))
        yield* println(`rotated ${k.name}: version ${k.primaryVersion} is primary; earlier versions still decrypt (use \`objcrypt rekey\` to move objects)`)
      }))
).pipe(Command.withDescription("add a new primary version; older versions stay for decryption"))

const deleteCmd = Command.make(
  "delete",
  {
    ...common,
    name,
    force: Options.boolean("force").pipe(Options.withDescription("delete an enabled key or the primary version")),
    purge: Options.boolean("purge").pipe(Options.withDescription("erase a deleted key for good (cannot be undone)"))
  },
  (o) =>
    withSession(o, (s) =>
      Effect.gen(function*() {
        const { manager } = yield* s.keys
        if (o.purge) {
          yield* manager.purge(o.name)
          return yield* println(`purged ${o.name}: objects encrypted under it can no longer be decrypted`)
        }
        const k = yield* manager.delete(o.name, { force: o.force })
        yield* println(`deleted ${o.name} (${k.state}); recoverable until purged with \`objcrypt keys delete ${o.name} --purge\``)
      }))
).pipe(Command.withDescription("soft-delete a key or a version (disable it first, or --force)"))

const toggle = (verb: "enable" | "disable") =>
  Command.make(verb, { ...common, name }, (o) =>
    withSession(o, (s) =>
      Effect.gen(function*() {
        const { manager } = yield* s.keys
        const k = yield* manager[verb](o.name)
        yield* println(`${o.name}: ${k.state}`)
      }))).pipe(Command.withDescription(verb === "enable" ? "enable a key or a version" : "disable a key or a version (it stops encrypting and decrypting)"))

const backupPassphrase = Options.text("backup-passphrase-file").pipe(
  Options.withDescription("passphrase of the bundle (else $OBJCRYPT_BACKUP_PASSPHRASE, else the key-store passphrase)"),
  Options.optional
)

const bundlePassphrase = (s: Session.Session, file: Option.Option<string>, fallback: Redacted.Redacted<string>) =>
  Option.isSome(file) || (s.env.OBJCRYPT_BACKUP_PASSPHRASE ?? "") !== ""
    ? Passphrase.obtain({
      file: Option.getOrUndefined(file),
      env: { OBJCRYPT_PASSPHRASE: s.env.OBJCRYPT_BACKUP_PASSPHRASE },
      creating: false
    })
    : Effect.succeed(fallback)

const backup = Command.make(
  "backup",
  {
    ...common,
    backupPassphraseFile: backupPassphrase,
    keys: Options.text("keys").pipe(Options.withDescription("only these keys (comma-separated)"), Options.optional),
    destination: Args.text({ name: "DESTINATION" }).pipe(Args.withDescription("a file, or a store URL (a key, or a prefix ending in /)"))
  },
  (o) =>
    withSession(o, (s) =>
      Effect.gen(function*() {
        const dest = yield* s.locate(o.destination)
        const keys = yield* s.keys
        const passphrase = yield* bundlePassphrase(s, o.backupPassphraseFile, keys.passphrase)
        const refs = Option.map(o.keys, (k) => k.split(",").map((x) => x.trim()).filter((x) => x !== ""))
        const options = { passphrase, keys: Option.getOrUndefined(refs) }
        if (dest._tag === "LocalFile") {
          yield* Effect.tryPromise(() => fs.access(dest.path)).pipe(
            Effect.flatMap(() => new LocalFileError({ path: dest.path, reason: "Exists", detail: "already exists; choose a new file name" })),
            Effect.catchIf((e) => !(e instanceof LocalFileError), () => Effect.void)
          )
          yield* Backup.toFile(dest.path, options).pipe(Effect.provideService(keysTag, keys.manager))
          return yield* println(`backed up the key store to ${dest.path}`)
        }
        const store = yield* s.open(dest.store)
        const key = dest.key === "" || dest.key.endsWith("/") ? Backup.timestampedKey(dest.key) : dest.key
        yield* Backup.toObjectStore(key, options).pipe(
          Effect.provideService(keysTag, keys.manager),
          Effect.provideService(ObjectStore.ObjectStore, store)
        )
        yield* println(`backed up the key store to ${dest.display}${key.slice(dest.basePrefix.length)}`)
      }))
).pipe(Command.withDescription("write an encrypted backup bundle of the key store to a file or a store"))

const restore = Command.make(
  "restore",
  {
    ...common,
    json,
    backupPassphraseFile: backupPassphrase,
    replace: Options.boolean("replace").pipe(Options.withDescription("replace the whole store (default: merge)")),
    source: Args.text({ name: "SOURCE" }).pipe(Args.withDescription("a bundle file or store URL"))
  },
  (o) =>
    withSession(o, (s) =>
      Effect.gen(function*() {
        const src = yield* s.locate(o.source)
        const keys = yield* s.keys
        const passphrase = yield* bundlePassphrase(s, o.backupPassphraseFile, keys.passphrase)
        const mode = o.replace ? "replace" as const : "merge" as const
        const report = src._tag === "LocalFile"
          ? yield* Effect.tryPromise({
            try: () => fs.access(src.path),
            catch: () => new LocalFileError({ path: src.path, reason: "NotFound", detail: "no such backup bundle" })
          }).pipe(Effect.zipRight(Backup.fromFile(src.path, passphrase, { mode })), Effect.provideService(keysTag, keys.manager))
          : yield* Effect.gen(function*() {
            if (src.key === "" || src.key.endsWith("/")) {
              return yield* new UsageError({ detail: "name the bundle object, not a prefix" })
            }
            const store = yield* s.open(src.store)
            return yield* Backup.fromObjectStore(src.key, passphrase, { mode }).pipe(
              Effect.provideService(keysTag, keys.manager),
              Effect.provideService(ObjectStore.ObjectStore, store)
            )
          })
        if (o.json) return yield* printJson(report)
        yield* println(
          `restored (${report.mode}): ${report.added.length} added, ${report.updated.length} updated, ${report.unchanged.length} unchanged`
        )
      }))
).pipe(Command.withDescription("verify a backup bundle and restore it into the key store"))

/**
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("keys").pipe(
  Command.withDescription("manage the local key store"),
  Command.withSubcommands([
    generate,
    importCmd,
    exportCmd,
    list,
    show,
    rotate,
    toggle("enable"),
    toggle("disable"),
    deleteCmd,
    backup,
    restore
  ])
)
