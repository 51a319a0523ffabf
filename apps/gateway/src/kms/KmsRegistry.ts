/**
 * The KMS service's key registry: per key its state (Enabled, Disabled, PendingDeletion and the
 * deletion date), description, rotation schedule and versions; and the aliases. A JSON file
 * (mode 0600, replaced atomically) beside the key material, which lives in the backend. Replicas
 * sharing the file see each other's changes: the file is re-read whenever it changes on disk.
 * It holds no key material.
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import * as crypto from "node:crypto"
import * as fsSync from "node:fs"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { errors } from "./KmsError.js"
import type { KmsApiError } from "./KmsError.js"

const Version = Schema.Struct({
  version: Schema.Int,
  ref: Schema.String,
  createdAt: Schema.Number,
  rotationType: Schema.optional(Schema.Literal("AUTOMATIC", "ON_DEMAND"))
})

/**
 * @since 0.1.0
 * @category schemas
 */
export const KeyRecord = Schema.Struct({
  keyId: Schema.String,
  backend: Schema.Literal("keyStore", "pkcs11"),
  description: Schema.String,
  createdAt: Schema.Number,
  state: Schema.Literal("Enabled", "Disabled", "PendingDeletion"),
  deletionDate: Schema.optional(Schema.Number),
  pendingWindowInDays: Schema.optional(Schema.Int),
  rotationEnabled: Schema.Boolean,
  rotationPeriodInDays: Schema.Int,
  nextRotationDate: Schema.optional(Schema.Number),
  currentVersion: Schema.Int,
  versions: Schema.Array(Version)
})

/**
 * @since 0.1.0
 * @category models
 */
export type KeyRecord = typeof KeyRecord.Type

/**
 * @since 0.1.0
 * @category schemas
 */
export const AliasRecord = Schema.Struct({ keyId: Schema.String, createdAt: Schema.Number, updatedAt: Schema.Number })

/**
 * @since 0.1.0
 * @category models
 */
export type AliasRecord = typeof AliasRecord.Type

/**
 * @since 0.1.0
 * @category schemas
 */
export const State = Schema.Struct({
  format: Schema.Literal("objcrypt-kms-registry/1"),
  keys: Schema.Record({ key: Schema.String, value: KeyRecord }),
  aliases: Schema.Record({ key: Schema.String, value: AliasRecord })
})

/**
 * @since 0.1.0
 * @category models
 */
export type State = typeof State.Type

const empty: State = { format: "objcrypt-kms-registry/1", keys: {}, aliases: {} }

/**
 * @since 0.1.0
 * @category models
 */
export interface KmsRegistry {
  /** The current state (re-read when the file changed). */
  readonly read: Effect.Effect<State, KmsApiError>
  /** Read-modify-write, one at a time in this process; `f` returning `undefined` writes nothing. */
  readonly update: <A>(f: (s: State) => Effect.Effect<readonly [State | undefined, A], KmsApiError>) => Effect.Effect<A, KmsApiError>
}

const io = (what: string) => (e: unknown) => errors.internal(`${what} the KMS registry failed (${(e as NodeJS.ErrnoException)?.code ?? "error"})`)

/**
 * Opens (or starts) the registry at `file`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (file: string): Effect.Effect<KmsRegistry> =>
  Effect.gen(function*() {
    const lock = yield* Effect.makeSemaphore(1)
    let cached: { readonly identity: string; readonly state: State } | undefined

    // A synchronous stat per request: one syscall, cheaper than a trip through libuv's thread pool
    // (which the audit log's appends and the key store also use) when many requests are in flight.
    const identity = Effect.try({
      try: () => {
        const s = fsSync.statSync(file, { bigint: true, throwIfNoEntry: false })
        return s === undefined ? undefined : `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}`
      },
      catch: io("reading")
    })

    const read: Effect.Effect<State, KmsApiError> = Effect.gen(function*() {
      const id = yield* identity
      if (id === undefined) return empty
      if (cached !== undefined && cached.identity === id) return cached.state
      const text = yield* Effect.tryPromise({ try: () => fs.readFile(file, "utf8"), catch: io("reading") })
      const state = yield* Effect.try({ try: () => JSON.parse(text) as unknown, catch: () => errors.internal("the KMS registry is not valid JSON") }).pipe(
        Effect.flatMap(Schema.decodeUnknown(State)),
        Effect.mapError(() => errors.internal("the KMS registry is corrupt"))
      )
      cached = { identity: id, state }
      return state
    })

    const write = (state: State) =>
      Effect.tryPromise({
        try: async () => {
          const dir = path.dirname(file)
          await fs.mkdir(dir, { recursive: true, mode: 0o700 })
          const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}-${crypto.randomBytes(6).toString("hex")}`)
          const handle = await fs.open(tmp, "wx", 0o600)
          try {
            await handle.writeFile(JSON.stringify(state))
            await handle.sync()
          } finally {
            await handle.close()
          }
          await fs.rename(tmp, file)
        },
        catch: io("writing")
      }).pipe(Effect.zipRight(identity), Effect.tap((id) => Effect.sync(() => {
        cached = id === undefined ? undefined : { identity: id, state }
      })))

    const update: KmsRegistry["update"] = (f) =>
      lock.withPermits(1)(
        Effect.gen(function*() {
          const [next, a] = yield* f(yield* read)
          if (next !== undefined) yield* write(next)
          return a
        })
      )

    return { read, update }
  })
