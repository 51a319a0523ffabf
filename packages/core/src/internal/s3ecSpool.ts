/**
 * The sealed record layer of the verification spool used by verify-then-stream reads of
 * single-tag AES-GCM objects. Plaintext is re-sealed under an ephemeral AES-256-GCM key (never
 * stored) in records of `u32 length ‖ ciphertext ‖ tag` with the record counter as nonce, so the
 * scratch file at rest reveals nothing and a local modification of it is detected when it is read
 * back. Where the bytes go is the `Spool` service's business (see `S3EncryptionClient.Spool`);
 * described in `docs/S3EC.md`.
 *
 * @since 0.1.0
 * @internal
 */
import { Effect, Option, Stream } from "effect"
import * as crypto from "node:crypto"
import { DecryptError } from "../Errors.js"
import type { ProviderError } from "../Errors.js"

/** Random-access scratch storage, as the `Spool` service opens it. @internal */
export interface ScratchFile {
  readonly write: (bytes: Uint8Array, position: number) => Effect.Effect<void, ProviderError>
  /** Reads up to `length` bytes at `position`; fewer only at the end of the file. */
  readonly read: (position: number, length: number) => Effect.Effect<Uint8Array, ProviderError>
}

/** @internal */
export interface SealedSpool {
  readonly write: (plaintext: Uint8Array) => Effect.Effect<void, ProviderError>
  /** Reads every record back, in order, authenticated. */
  readonly read: Stream.Stream<Uint8Array, ProviderError | DecryptError>
  readonly bytes: () => number
}

/** Plaintext bytes per record. @internal */
export const RECORD = 1024 * 1024

const nonce = (n: number): Buffer => {
  const b = Buffer.alloc(12)
  b.writeUInt32BE(Math.floor(n / 0x100000000), 4)
  b.writeUInt32BE(n >>> 0, 8)
  return b
}

/**
 * Seals plaintext into `file` record by record; memory: one record.
 *
 * @internal
 */
export const seal = (objectKey: string, file: ScratchFile): SealedSpool => {
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
    const c = crypto.createCipheriv("aes-256-gcm", key, nonce(records++))
    const head = Buffer.alloc(4)
    head.writeUInt32BE(plaintext.length)
    const sealed = Buffer.concat([head, c.update(plaintext), c.final(), c.getAuthTag()])
    const at = written
    written += sealed.length
    plainBytes += plaintext.length
    return file.write(sealed, at)
  })
  const write = (plaintext: Uint8Array) =>
    Effect.suspend(() => {
      if (plaintext.length === 0) return Effect.void
      pending.push(plaintext)
      pendingBytes += plaintext.length
      return pendingBytes >= RECORD ? flush : Effect.void
    })
  const tampered = () => new DecryptError({ reason: "Tampered", key: objectKey, detail: "the local verification spool was modified while in use" })
  const records_ = Stream.unfoldEffect({ position: 0, record: 0 }, (s) =>
    Effect.gen(function*() {
      if (s.position >= written) return Option.none()
      const head = yield* file.read(s.position, 4)
      if (head.length !== 4) return yield* tampered()
      const n = Buffer.from(head.buffer, head.byteOffset, 4).readUInt32BE(0)
      if (n > RECORD * 2 || s.position + 4 + n + 16 > written) return yield* tampered()
      const sealed = yield* file.read(s.position + 4, n + 16)
      const opened = yield* Effect.try({
        try: () => {
          if (sealed.length !== n + 16) throw new Error("short")
          const d = crypto.createDecipheriv("aes-256-gcm", key, nonce(s.record))
          d.setAuthTag(sealed.subarray(n))
          return Buffer.concat([d.update(sealed.subarray(0, n)), d.final()])
        },
        catch: tampered
      })
      return Option.some([opened as Uint8Array, { position: s.position + 4 + n + 16, record: s.record + 1 }] as const)
    }))
  return { write, read: Stream.unwrap(Effect.as(flush, records_)), bytes: () => plainBytes }
}
