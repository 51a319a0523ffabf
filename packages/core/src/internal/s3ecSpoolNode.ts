/**
 * The Node file-system backend of the S3EC verification spool: a file of mode 0600 in a fresh
 * private directory (`mkdtemp`, mode 0700), both removed when the scope closes — on success,
 * failure and interruption alike.
 *
 * @since 0.1.0
 * @internal
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { ProviderError } from "../Errors.js"
import type { ScratchFile } from "./s3ecSpool.js"

const spoolError = (operation: string, e: unknown) =>
  new ProviderError({
    provider: "local",
    operation,
    code: typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : "SpoolError",
    detail: "the local spool for a verified read failed"
  })

/** @internal */
export const open = (directory: string | undefined): Effect.Effect<ScratchFile, ProviderError, Scope.Scope> =>
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
    return {
      write: (bytes, position) =>
        Effect.tryPromise({
          try: async () => {
            let done = 0
            while (done < bytes.length) {
              const r = await handle.write(bytes, done, bytes.length - done, position + done)
              done += r.bytesWritten
            }
          },
          catch: (e) => spoolError("spool-write", e)
        }),
      read: (position, length) =>
        Effect.tryPromise({
          try: async () => {
            const out = Buffer.allocUnsafe(length)
            let done = 0
            while (done < length) {
              const r = await handle.read(out, done, length - done, position + done)
              if (r.bytesRead === 0) break
              done += r.bytesRead
            }
            return done === length ? out : out.subarray(0, done)
          },
          catch: (e) => spoolError("spool-read", e)
        })
    }
  })
