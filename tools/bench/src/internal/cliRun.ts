/**
 * What the `objcrypt cp` benchmarks share: flags, the built CLI, running it in a child process
 * while polling its CPU time and peak RSS from /proc, medians and the incompressible input file.
 *
 * @since 0.1.0
 */
import { spawn } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

/**
 * A numeric `--name N` flag of the benchmark's command line.
 *
 * @since 0.1.0
 */
export const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? fallback : Number(process.argv[i + 1])
}

/**
 * The Node flags a bundled bin asks for in its `#!/usr/bin/env -S node <flags>` line, so a
 * benchmark that starts it with the pinned Node runs it as the installed bin runs.
 *
 * @since 0.1.0
 */
export const binNodeFlags = (file: string): ReadonlyArray<string> => {
  const first = fs.readFileSync(file, "utf8").slice(0, 512).split("\n")[0]!
  const m = /^#!\/usr\/bin\/env -S node (.*)$/.exec(first)
  return m === null ? [] : m[1]!.trim().split(/\s+/)
}

/**
 * The built CLI (`npx nx build @objcrypt/cli`), or `OBJCRYPT_BENCH_BIN`.
 *
 * @since 0.1.0
 */
export const BIN = process.env.OBJCRYPT_BENCH_BIN ??
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../../apps/cli/dist/bundle/objcrypt.mjs")

/**
 * Fails with the build command when the CLI has not been built.
 *
 * @since 0.1.0
 */
export const requireBin = (): void => {
  if (!fs.existsSync(BIN)) throw new Error(`${BIN} not found: build the CLI first (npx nx build @objcrypt/cli)`)
}

/**
 * Peak resident set (VmHWM) of a live process, in MiB; 0 once it has exited.
 *
 * @since 0.1.0
 */
export const peakRss = (pid: number): number => {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))
    return m === null ? 0 : Number(m[1]) / 1024
  } catch {
    return 0
  }
}

/**
 * User + system CPU seconds of a live process; 0 once it has exited.
 *
 * @since 0.1.0
 */
export const cpuOf = (pid: number): number => {
  try {
    // utime and stime (fields 14 and 15) in clock ticks; the kernel's USER_HZ is 100 on Linux.
    const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return 0
  }
}

/**
 * One run of the CLI: wall seconds, CPU seconds (less sensitive than wall time to a shared
 * machine) and peak RSS.
 *
 * @since 0.1.0
 */
export interface Run {
  readonly seconds: number
  readonly cpuSeconds: number
  readonly peakRssMib: number
}

/**
 * Runs `objcrypt ARGS` as a user would (the built bin in a child process), polling its CPU time
 * and peak RSS every 20 ms; rejects with the end of its stderr when it exits non-zero.
 *
 * @since 0.1.0
 */
export const objcrypt = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv): Promise<Run> =>
  new Promise((resolve, reject) => {
    const started = process.hrtime.bigint()
    const child = spawn(process.execPath, [...binNodeFlags(BIN), BIN, ...args], { env, stdio: ["ignore", "ignore", "pipe"] })
    let stderr = ""
    let peak = 0
    let cpu = 0
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()))
    const poll = setInterval(() => {
      peak = Math.max(peak, peakRss(child.pid!))
      cpu = Math.max(cpu, cpuOf(child.pid!))
    }, 20)
    child.on("error", reject)
    child.on("exit", (code) => {
      clearInterval(poll)
      const seconds = Number(process.hrtime.bigint() - started) / 1e9
      if (code !== 0) reject(new Error(`objcrypt ${args.join(" ")} exited ${code}: ${stderr.slice(-2000)}`))
      else resolve({ seconds, cpuSeconds: cpu, peakRssMib: peak })
    })
  })

/**
 * @since 0.1.0
 */
export const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

/**
 * Writes `sizeMib` MiB of incompressible random bytes to `file`, 16 MiB at a time.
 *
 * @since 0.1.0
 */
export const writeRandomFile = (file: string, sizeMib: number): void => {
  const fd = fs.openSync(file, "w")
  try {
    const block = crypto.randomBytes(16 * 1024 * 1024)
    for (let written = 0; written < sizeMib * 1024 * 1024; written += block.length) {
      crypto.randomFillSync(block)
      fs.writeSync(fd, block, 0, Math.min(block.length, sizeMib * 1024 * 1024 - written))
    }
  } finally {
    fs.closeSync(fd)
  }
}

/**
 * A CLI environment confined to `home` (config, data and key store under it).
 *
 * @since 0.1.0
 */
export const cliEnv = (home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH,
  HOME: home,
  XDG_CONFIG_HOME: path.join(home, "config"),
  XDG_DATA_HOME: path.join(home, "data"),
  OBJCRYPT_PASSPHRASE: "bench passphrase",
  ...extra
})

/**
 * The cse-c versus none comparison every cp benchmark reports, from runs alternating
 * none, cse-c per round: median throughputs, each round's wall ratio, the median wall ratio and
 * the CPU-time ratio (none CPU seconds / cse-c CPU seconds).
 *
 * @since 0.1.0
 */
export const compareModes = (
  results: ReadonlyArray<{ readonly mode: string; readonly seconds: number; readonly cpuSeconds: number; readonly mibPerSecond: number }>,
  rounds: number
) => {
  const of = (mode: string, f: (x: (typeof results)[number]) => number) => median(results.filter((x) => x.mode === mode).map(f))
  const none = of("none", (x) => x.mibPerSecond)
  const cse = of("cse-c", (x) => x.mibPerSecond)
  const cpu = { none: of("none", (x) => x.cpuSeconds), "cse-c": of("cse-c", (x) => x.cpuSeconds) }
  return {
    medianMibPerSecond: { none: Math.round(none), "cse-c": Math.round(cse) },
    medianCpuSeconds: { none: Number(cpu.none.toFixed(2)), "cse-c": Number(cpu["cse-c"].toFixed(2)) },
    ratioPerRound: Array.from({ length: rounds }, (_, r) => Number((results[2 * r]!.seconds / results[2 * r + 1]!.seconds).toFixed(3))),
    /** cse-c throughput / none throughput, wall time. */
    ratio: Number((cse / none).toFixed(3)),
    /** none CPU seconds / cse-c CPU seconds of the CLI process: the same ratio in CPU time. */
    cpuRatio: Number((cpu.none / cpu["cse-c"]).toFixed(3))
  }
}
