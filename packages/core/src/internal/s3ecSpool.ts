/**
 * A scoped local spool for verify-then-stream reads of single-tag AES-GCM objects. Plaintext is
 * re-sealed under an ephemeral AES-256-GCM key (never stored) in records of
 * `u32 length ‖ ciphertext ‖ tag` with the record counter as nonce, so the file at rest reveals
 * nothing and a local modification of it is detected when it is read back. See `docs/S3EC.md`.
 *
 * @since 0.1.0
 * @internal
 */
import { Effect, Option, Stream } from "effect"
import type { Scope } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { DecryptError, ProviderError } from "../Errors.js"

/** @internal */
export interface Spool {
  readonly write: (plaintext: Uint8Array) => Effect.Effect<void, ProviderError>
  /** Reads every record back, in order, authenticated. */
  readonly read: Stream.Stream<Uint8Array, ProviderError | DecryptError>
  readonly bytes: () => number
}

const spoolError = (operation: string, e: unknown) =>
  new ProviderError({
    provider: "local",
    operation,
    code: typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : "SpoolError",
    detail: "the local spool for a verified read failed"
  })

const RECORD = 1024 * 1024

const nonce = (n: number): Buffer => {
  const b = Buffer.alloc(12)
  b.writeUInt32BE(Math.floor(n / 0x100000000), 4)
  b.writeUInt32BE(n >>> 0, 8)
  return b
}

/**
 * Opens a spool file (mode 0600, in a private temporary directory) removed when the scope closes.
 *
 * @internal
 */
export const make = (objectKey: string, directory?: string | undefined): Effect.Effect<Spool, ProviderError, Scope.Scope> =>
  Effect.gen(function*() {
    const dir = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => fs.mkdtemp(path.join(directory ?? os.tmpdir(), "objcrypt-s3ec-")),
        catch: (e) => spoolError("spool-open", e)
      }),
      (d) => Effect.promise(() => fs.rm(d, { recursive: true, force: true }).catch(() => undefined))
    )
    const handle = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => fs.open(path.join(dir, "spool"), "wx+", 0o600),
        catch: (e) => spoolError("spool-open", e)
      }),
      (h) => Effect.promise(() => h.close().catch(() => undefined))
    )
    const key = crypto.createSecretKey(crypto.randomBytes(32))
    let written = 0
    let records = 0
    let plainBytes = 0
    // Plaintext arrives in network-sized pieces (sometimes a few bytes): coalesce it into records
    // of about RECORD bytes so the spool costs one cipher and one write per MiB.
    let pending: Array<Uint8Array> = []
    let pendingBytes = 0
    const flush = Effect.suspend(() => {
      if (pendingBytes === 0) return Effect.void
      const plaintext = pending.length === 1 ? pending[0]! : Buffer.concat(pending)
      pending = []
      pendingBytes = 0
      return Effect.tryPromise({
        try: async () => {
          const c = crypto.createCipheriv("aes-256-gcm", key, nonce(records++))
          const head = Buffer.alloc(4)
          head.writeUInt32BE(plaintext.length)
          const body = Buffer.concat([head, c.update(plaintext), c.final(), c.getAuthTag()])
          await handle.write(body, 0, body.length, written)
          written += body.length
          plainBytes += plaintext.length
        },
        catch: (e) => spoolError("spool-write", e)
      })
    })
    const write = (plaintext: Uint8Array) =>
      Effect.suspend(() => {
        if (plaintext.length === 0) return Effect.void
        pending.push(plaintext)
        pendingBytes += plaintext.length
        return pendingBytes >= RECORD ? flush : Effect.void
      })
    const records_ = Stream.unfoldEffect({ position: 0, record: 0 }, (s) =>
      Effect.gen(function*() {
        if (s.position >= written) return Option.none()
        const head = Buffer.alloc(4)
        yield* Effect.tryPromise({ try: () => handle.read(head, 0, 4, s.position), catch: (e) => spoolError("spool-read", e) })
        const n = head.readUInt32BE(0)
        const sealed = Buffer.alloc(n + 16)
        const got = yield* Effect.tryPromise({
          try: () => handle.read(sealed, 0, sealed.length, s.position + 4),
          catch: (e) => spoolError("spool-read", e)
        })
        const opened = yield* Effect.try({
          try: () => {
            if (got.bytesRead !== sealed.length) throw new Error("short")
            const d = crypto.createDecipheriv("aes-256-gcm", key, nonce(s.record))
            d.setAuthTag(sealed.subarray(n))
            return Buffer.concat([d.update(sealed.subarray(0, n)), d.final()])
          },
          catch: () =>
            new DecryptError({ reason: "Tampered", key: objectKey, detail: "the local verification spool was modified while in use" })
        })
        return Option.some([opened as Uint8Array, { position: s.position + 4 + sealed.length, record: s.record + 1 }] as const)
      }))
    const read = Stream.unwrap(Effect.as(flush, records_))
    return { write, read, bytes: () => plainBytes }
  })
