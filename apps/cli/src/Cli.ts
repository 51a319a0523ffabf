/**
 * The `objcrypt` command tree and the top-level runner: every expected error becomes one line on
 * stderr and a documented exit code (see the README); causes and stack traces only with `--verbose`.
 *
 * @since 0.1.0
 */
import { Command, ValidationError } from "@effect/cli"
import { Cause, Console, Effect, Option } from "effect"
import { ExitCode, exitCodeOf, messageOf } from "./CliError.js"
import * as audit from "./commands/audit.js"
import * as bucket from "./commands/bucket.js"
import * as cat from "./commands/cat.js"
import * as cp from "./commands/cp.js"
import * as inspect from "./commands/inspect.js"
import * as keys from "./commands/keys.js"
import * as ls from "./commands/ls.js"
import * as matrix from "./commands/matrix.js"
import * as rekey from "./commands/rekey.js"
import * as rm from "./commands/rm.js"

/**
 * @since 0.1.0
 * @category constants
 */
export const VERSION = "0.1.0"

/**
 * The root command.
 *
 * @since 0.1.0
 * @category commands
 */
export const root = Command.make("objcrypt").pipe(
  Command.withDescription("encryption for data in object storage: keys, encrypted copy, inspect, audit, rekey"),
  Command.withSubcommands([
    keys.command,
    cp.command,
    ls.command,
    cat.command,
    inspect.command,
    rm.command,
    rekey.command,
    audit.command,
    bucket.command,
    matrix.command
  ])
)

const cli = Command.run(root, { name: "objcrypt", version: VERSION })

const ANSI_STYLE = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g")

// @effect/cli prints usage errors as multi-line styled documents; users get one plain line.
const oneLineErrors = (console: Console.Console): Console.Console => {
  const wrapped = Object.create(console) as { -readonly [K in keyof Console.Console]: Console.Console[K] }
  wrapped.error = (...args: ReadonlyArray<unknown>) =>
    Effect.sync(() => {
      const text = args.map(String).join(" ").replace(ANSI_STYLE, "").split("\n").map((l) => l.trim()).filter((l) => l !== "").join("; ")
      process.stderr.write(`objcrypt: ${text}\n`)
    })
  return wrapped
}

/**
 * Runs the command line (`argv` as in `process.argv`) and yields the exit code.
 *
 * @since 0.1.0
 * @category running
 */
export const run = (argv: ReadonlyArray<string>) => {
  const verbose = argv.includes("--verbose")
  return Effect.flatMap(Effect.console, (console) => Console.withConsole(cli(argv), oneLineErrors(console))).pipe(
    Effect.as(ExitCode.Ok as number),
    Effect.catchAllCause((cause) => {
      if (Cause.isInterruptedOnly(cause)) return Effect.interrupt
      const failure = Cause.failureOption(cause)
      if (Option.isSome(failure)) {
        const e = failure.value
        // @effect/cli has already printed its own message for usage errors.
        if (ValidationError.isValidationError(e)) {
          return Effect.succeed(ValidationError.isHelpRequested(e) ? ExitCode.Ok : ExitCode.Usage)
        }
        return Effect.sync(() => {
          process.stderr.write(`objcrypt: ${messageOf(e)}\n`)
          if (verbose) process.stderr.write(`${Cause.pretty(cause, { renderErrorCause: true })}\n`)
          return exitCodeOf(e) as number
        })
      }
      return Effect.sync(() => {
        const defect = Cause.squash(cause)
        process.stderr.write(`objcrypt: internal error: ${messageOf(defect)}${verbose ? "" : " (run with --verbose for details)"}\n`)
        if (verbose) process.stderr.write(`${Cause.pretty(cause, { renderErrorCause: true })}\n`)
        return ExitCode.General as number
      })
    })
  )
}
