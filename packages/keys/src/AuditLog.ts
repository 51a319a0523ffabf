/**
 * An append-only audit log of key use: one JSON object per line with the operation, the key id and
 * version, the caller's context, the time and the outcome. Entries are built from ids, names and
 * error tags only; no field can carry key material.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Ref } from "effect"
import { KeyStoreError } from "@objcrypt/core/Errors"
import * as fs from "node:fs/promises"
import * as path from "node:path"

/**
 * @since 0.1.0
 * @category models
 */
export interface AuditEntry {
  /** ISO-8601 time. */
  readonly time: string
  /** `generate`, `import`, `export`, `rotate`, `delete`, `resolve`, `kms.encrypt`, `kms.decrypt`… */
  readonly operation: string
  readonly keyId?: string | undefined
  readonly keyName?: string | undefined
  readonly version?: number | undefined
  /** Caller-supplied context (KMS encryption context, CLI user…): non-secret by contract. */
  readonly context?: Readonly<Record<string, string>> | undefined
  /** Who made the call (e.g. the KMS service's user name), when there is a caller to name. */
  readonly principal?: string | undefined
  readonly outcome: "success" | "failure"
  /** On failure: the error's tag and reason, e.g. `KmsError:InvalidCiphertext`. */
  readonly error?: string | undefined
  readonly pid: number
}

/**
 * @since 0.1.0
 * @category tags
 */
export class AuditLog extends Context.Tag("@objcrypt/keys/AuditLog")<AuditLog, {
  readonly record: (entry: Omit<AuditEntry, "time" | "pid">) => Effect.Effect<void>
}>() {}

/**
 * Appends to a JSON-lines file (created mode 0600, opened `O_APPEND` so concurrent processes
 * interleave whole lines). A failing write is logged as a warning and never fails the operation
 * it records.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFile = (file: string): Layer.Layer<AuditLog, KeyStoreError> =>
  Layer.scoped(
    AuditLog,
    Effect.gen(function*() {
      const handle = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: async () => {
            await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 })
            return fs.open(file, "a", 0o600)
          },
          catch: (e) =>
            new KeyStoreError({ reason: "Io", detail: `cannot open audit log: ${(e as NodeJS.ErrnoException)?.code ?? "error"}` })
        }),
        (h) => Effect.promise(() => h.close())
      )
      return AuditLog.of({
        record: (entry) =>
          Effect.tryPromise(() => handle.appendFile(line(entry))).pipe(
            Effect.catchAll(() => Effect.logWarning("objcrypt: could not append to the key audit log"))
          )
      })
    })
  )

/**
 * Keeps entries in memory (tests, or an app that ships them elsewhere).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (ref: Ref.Ref<ReadonlyArray<AuditEntry>>): Layer.Layer<AuditLog> =>
  Layer.succeed(
    AuditLog,
    AuditLog.of({ record: (entry) => Ref.update(ref, (es) => [...es, stamp(entry)]) })
  )

const stamp = (entry: Omit<AuditEntry, "time" | "pid">): AuditEntry => ({
  time: new Date().toISOString(),
  operation: entry.operation,
  keyId: entry.keyId,
  keyName: entry.keyName,
  version: entry.version,
  context: entry.context,
  ...(entry.principal === undefined ? {} : { principal: entry.principal }),
  outcome: entry.outcome,
  error: entry.error,
  pid: process.pid
})

const line = (entry: Omit<AuditEntry, "time" | "pid">) => JSON.stringify(stamp(entry)) + "\n"

/**
 * Describes an error for the log: its tag and reason only.
 *
 * @since 0.1.0
 * @category utils
 */
export const describeError = (e: unknown): string => {
  if (typeof e === "object" && e !== null && "_tag" in e) {
    const reason = (e as { reason?: unknown }).reason
    return `${String((e as { _tag: unknown })._tag)}${typeof reason === "string" ? `:${reason}` : ""}`
  }
  return "Error"
}

/**
 * Records the outcome of `effect` when an audit log is provided; otherwise runs it unchanged.
 *
 * @since 0.1.0
 * @category combinators
 */
export const audited = <A, E, R>(
  log: AuditLog["Type"] | undefined,
  entry: (a: A | undefined) => Omit<AuditEntry, "time" | "pid" | "outcome" | "error">,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  log === undefined ? effect : effect.pipe(
    Effect.tapBoth({
      onSuccess: (a) => log.record({ ...entry(a), outcome: "success" }),
      onFailure: (e) => log.record({ ...entry(undefined), outcome: "failure", error: describeError(e) })
    })
  )
