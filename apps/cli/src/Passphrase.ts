/**
 * The key-store passphrase: from `--passphrase-file`, the `OBJCRYPT_PASSPHRASE` environment
 * variable, or a prompt on the terminal (never a flag value, which would land in shell history
 * and the process list).
 *
 * @since 0.1.0
 */
import { Effect, Redacted } from "effect"
import * as fs from "node:fs/promises"
import { LocalFileError, PassphraseUnavailable } from "./CliError.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Sources {
  readonly file?: string | undefined
  readonly env: Readonly<Record<string, string | undefined>>
  /** Whether the store exists yet: a new store's passphrase is asked twice. */
  readonly creating: boolean
}

/**
 * Obtains the passphrase.
 *
 * @since 0.1.0
 * @category constructors
 */
export const obtain = (sources: Sources): Effect.Effect<Redacted.Redacted<string>, PassphraseUnavailable | LocalFileError> =>
  Effect.gen(function*() {
    if (sources.file !== undefined) {
      const file = sources.file
      const text = yield* Effect.tryPromise({
        try: () => fs.readFile(file, "utf8"),
        catch: (e) => {
          const code = (e as NodeJS.ErrnoException).code
          return new LocalFileError({
            path: file,
            reason: code === "ENOENT" ? "NotFound" : "Io",
            detail: `cannot read the passphrase file (${code ?? "error"})`
          })
        }
      })
      const value = text.replace(/\r?\n$/, "")
      if (value === "") return yield* new PassphraseUnavailable({ detail: `the passphrase file ${file} is empty` })
      return Redacted.make(value)
    }
    const fromEnv = sources.env.OBJCRYPT_PASSPHRASE
    if (fromEnv !== undefined && fromEnv !== "") return Redacted.make(fromEnv)
    if (process.stdin.isTTY !== true || process.stderr.isTTY !== true) {
      return yield* new PassphraseUnavailable({ detail: "set OBJCRYPT_PASSPHRASE or pass --passphrase-file (no terminal to prompt on)" })
    }
    const first = yield* prompt(sources.creating ? "New key-store passphrase: " : "Key-store passphrase: ")
    if (first === "") return yield* new PassphraseUnavailable({ detail: "empty passphrase" })
    if (sources.creating) {
      const again = yield* prompt("Repeat the passphrase: ")
      if (again !== first) return yield* new PassphraseUnavailable({ detail: "the two passphrases differ" })
    }
    return Redacted.make(first)
  })

/**
 * Reads a line from the terminal without echo; prompt text goes to stderr so stdout stays clean.
 *
 * @since 0.1.0
 * @category prompts
 */
export const prompt = (message: string): Effect.Effect<string, PassphraseUnavailable> =>
  Effect.async<string, PassphraseUnavailable>((resume) => {
    const stdin = process.stdin
    // Echo goes off before the prompt shows, so nothing typed after seeing it is echoed.
    stdin.setRawMode(true)
    process.stderr.write(message)
    stdin.resume()
    let value = ""
    const done = (result: Effect.Effect<string, PassphraseUnavailable>) => {
      stdin.off("data", onData)
      stdin.setRawMode(false)
      stdin.pause()
      process.stderr.write("\n")
      resume(result)
    }
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString("utf8")) {
        if (ch === "\r" || ch === "\n") return done(Effect.succeed(value))
        if (ch === "\u0003" || ch === "\u0004") return done(Effect.fail(new PassphraseUnavailable({ detail: "cancelled" })))
        if (ch === "\u007f" || ch === "\b") value = value.slice(0, -1)
        else value += ch
      }
    }
    stdin.on("data", onData)
    return Effect.sync(() => {
      stdin.off("data", onData)
      if (stdin.isTTY) stdin.setRawMode(false)
      stdin.pause()
    })
  })
