#!/usr/bin/env node
/**
 * The `objcrypt` executable.
 *
 * @since 0.1.0
 */
// Sub-path imports: the package barrel loads the HTTP stack too (about 100 MB more RSS).
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Effect, Exit } from "effect"
import * as Cli from "./Cli.js"
import { ExitCode } from "./CliError.js"

const flushThenExit = (code: number) => {
  let pending = 2
  const done = () => {
    if (--pending === 0) process.exit(code)
  }
  process.stdout.write("", done)
  process.stderr.write("", done)
}

// A closed pipe (`objcrypt cat … | head`) ends the command quietly.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(stream === process.stdout ? 0 : ExitCode.General)
    throw e
  })
}

Cli.run(process.argv).pipe(
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({
    disableErrorReporting: true,
    disablePrettyLogger: true,
    teardown: (exit, _onExit) => {
      if (Exit.isSuccess(exit)) return flushThenExit(exit.value as unknown as number)
      if (Cause.isInterruptedOnly(exit.cause)) {
        process.stderr.write("objcrypt: interrupted\n")
        return flushThenExit(ExitCode.Interrupted)
      }
      process.stderr.write(`objcrypt: internal error: ${Cause.pretty(exit.cause).split("\n")[0]}\n`)
      return flushThenExit(ExitCode.General)
    }
  })
)
