/**
 * Child processes for local test servers: free ports on 127.0.0.1, long-running daemons owned by
 * a scope (killed by PID on release), and one-shot commands with captured output.
 *
 * @since 0.1.0
 */
import { Data, Duration, Effect, Option, Schedule } from "effect"
import type * as Scope from "effect/Scope"
import * as cp from "node:child_process"
import * as net from "node:net"

/**
 * A local test server that could not be started, or a helper command that failed.
 *
 * @since 0.1.0
 * @category errors
 */
export class ServerError extends Data.TaggedError("ServerError")<{
  readonly server: string
  readonly detail: string
}> {
  override get message() {
    return `${this.server}: ${this.detail}`
  }
}

/**
 * A TCP port that was free on 127.0.0.1 a moment ago (bound to port 0, then released).
 *
 * @since 0.1.0
 * @category ports
 */
export const freePort: Effect.Effect<number, ServerError> = Effect.async<number, ServerError>((resume) => {
  const srv = net.createServer()
  srv.unref()
  srv.once("error", (e) => resume(Effect.fail(new ServerError({ server: "port", detail: e.message }))))
  srv.listen({ host: "127.0.0.1", port: 0, exclusive: true }, () => {
    const addr = srv.address()
    const port = typeof addr === "object" && addr !== null ? addr.port : 0
    srv.close(() => resume(port > 0 ? Effect.succeed(port) : Effect.fail(new ServerError({ server: "port", detail: "no port" }))))
  })
})

/**
 * A daemon started by this process.
 *
 * @since 0.1.0
 * @category models
 */
export interface Daemon {
  readonly name: string
  readonly pid: number
  /** `true` once the process has exited. */
  readonly exited: () => boolean
  /** The last few KiB of stdout+stderr, for error messages. */
  readonly output: () => string
}

const TAIL = 8192

const killAndWait = (child: cp.ChildProcess, graceMs: number): Promise<void> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    const timer = setTimeout(() => {
      // Only the PID we spawned, never a process name.
      try {
        child.kill("SIGKILL")
      } catch {
        // already gone
      }
    }, graceMs)
    child.once("exit", () => {
      clearTimeout(timer)
      resolve()
    })
    try {
      child.kill("SIGTERM")
    } catch {
      clearTimeout(timer)
      resolve()
    }
  })

/**
 * Spawns a long-running process in the scope; on release it receives SIGTERM, then SIGKILL after
 * `graceMs`, addressed by its PID only.
 *
 * @since 0.1.0
 * @category processes
 */
export const daemon = (
  name: string,
  command: string,
  args: ReadonlyArray<string>,
  options?: { readonly cwd?: string | undefined; readonly env?: NodeJS.ProcessEnv | undefined; readonly graceMs?: number | undefined }
): Effect.Effect<Daemon, ServerError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ child: cp.ChildProcess; daemon: Daemon }, ServerError>((resume) => {
      let tail = ""
      const child = cp.spawn(command, args, {
        cwd: options?.cwd,
        env: options?.env ?? process.env,
        stdio: ["ignore", "pipe", "pipe"]
      })
      const append = (b: Buffer) => {
        tail = (tail + b.toString("utf8")).slice(-TAIL)
      }
      child.stdout?.on("data", append)
      child.stderr?.on("data", append)
      let done = false
      child.once("error", (e) => {
        if (!done) {
          done = true
          resume(Effect.fail(new ServerError({ server: name, detail: `cannot start ${command}: ${e.message}` })))
        }
      })
      child.once("spawn", () => {
        if (done) return
        done = true
        resume(Effect.succeed({
          child,
          daemon: {
            name,
            pid: child.pid!,
            exited: () => child.exitCode !== null || child.signalCode !== null,
            output: () => tail
          }
        }))
      })
    }),
    ({ child }) => Effect.promise(() => killAndWait(child, options?.graceMs ?? 3000))
  ).pipe(Effect.map(({ daemon }) => daemon))

/**
 * Runs a command to completion; fails with its exit code and output tail when it does not exit 0.
 *
 * @since 0.1.0
 * @category processes
 */
export const run = (
  name: string,
  command: string,
  args: ReadonlyArray<string>,
  options?: { readonly cwd?: string | undefined; readonly input?: Uint8Array | undefined; readonly timeout?: Duration.DurationInput | undefined }
): Effect.Effect<{ readonly stdout: Buffer; readonly stderr: string }, ServerError> =>
  Effect.async<{ readonly stdout: Buffer; readonly stderr: string }, ServerError>((resume, signal) => {
    const child = cp.spawn(command, args, { cwd: options?.cwd, stdio: ["pipe", "pipe", "pipe"], signal })
    const out: Array<Buffer> = []
    let err = ""
    child.stdout.on("data", (b: Buffer) => out.push(b))
    child.stderr.on("data", (b: Buffer) => {
      err = (err + b.toString("utf8")).slice(-TAIL)
    })
    child.once("error", (e) => resume(Effect.fail(new ServerError({ server: name, detail: `${command}: ${e.message}` }))))
    child.once("close", (code, sig) => {
      if (code === 0) resume(Effect.succeed({ stdout: Buffer.concat(out), stderr: err }))
      else {
        resume(Effect.fail(new ServerError({
          server: name,
          detail: `${command} ${args.join(" ")} exited with ${code ?? sig}: ${err.trim().slice(-2000)}`
        })))
      }
    })
    child.stdin.end(options?.input === undefined ? undefined : Buffer.from(options.input))
  }).pipe(
    Effect.timeoutFail({
      duration: options?.timeout ?? "60 seconds",
      onTimeout: () => new ServerError({ server: name, detail: `${command} ${args.join(" ")} timed out` })
    })
  )

/**
 * Retries `probe` until it succeeds, failing with the daemons' output tails when `timeout` passes
 * or one of them exits.
 *
 * @since 0.1.0
 * @category processes
 */
export const waitUntil = <A, E>(
  name: string,
  probe: Effect.Effect<A, E>,
  options: {
    /** A duration, or its text form (`"60 seconds"`). */
    readonly timeout: Duration.DurationInput | string
    readonly watch?: ReadonlyArray<Daemon> | undefined
  }
): Effect.Effect<A, ServerError> => {
  const watch = options.watch ?? []
  const timeout = Option.getOrElse(Duration.decodeUnknown(options.timeout), () => Duration.minutes(1))
  type Wait = { readonly _tag: "NotYet"; readonly e: E } | { readonly _tag: "Dead"; readonly d: Daemon }
  const check: Effect.Effect<A, Wait> = Effect.suspend((): Effect.Effect<A, Wait> => {
    const dead = watch.find((d) => d.exited())
    return dead === undefined
      ? Effect.mapError(probe, (e): Wait => ({ _tag: "NotYet", e }))
      : Effect.fail({ _tag: "Dead", d: dead })
  })
  return check.pipe(
    Effect.retry({
      schedule: Schedule.spaced("100 millis"),
      while: (e) => e._tag === "NotYet"
    }),
    Effect.timeoutFail({
      duration: timeout,
      onTimeout: () => ({ _tag: "Timeout" as const })
    }),
    Effect.mapError((e) =>
      new ServerError({
        server: name,
        detail: e._tag === "Dead"
          ? `${e.d.name} (pid ${e.d.pid}) exited during start-up: ${e.d.output().trim().slice(-2000)}`
          : `not ready after ${Duration.format(timeout)}${
            watch.map((d) => `\n--- ${d.name}:\n${d.output().trim().slice(-1000)}`).join("")
          }`
      })
    )
  )
}
