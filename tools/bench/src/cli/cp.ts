/**
 * Benchmark: `objcrypt cp` of a large file to the embedded local store with `--mode cse-c` versus
 * `--mode none`, run as a user runs it (the built bin in a child process), alternating the two
 * modes in one run so the ratio compares like with like on a shared machine. Reports wall time,
 * CPU time (user + system), throughput, the cse-c / none throughput ratio in wall time and in CPU
 * time (target ≥ 0.9) and each run's peak RSS (VmHWM, polled from /proc while the child runs).
 * Also the fixed CPU cost of each mode (an empty-file copy: startup, and for cse-c the key store's
 * scrypt unlock) and the CPU ratio with it subtracted, which is what the encryption path costs per byte.
 *
 *   npx nx build @objcrypt/cli
 *   node_modules/.bin/node --import ./tools/bench/src/format/hooks.ts tools/bench/src/cli/cp.ts --size-mib 2048 --rounds 2
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { arg, cliEnv, compareModes, median, objcrypt, requireBin, writeRandomFile } from "../internal/cliRun.js"

interface RunResult {
  readonly mode: string
  readonly seconds: number
  /** User + system CPU seconds of the child: far less sensitive than wall time to a shared machine. */
  readonly cpuSeconds: number
  readonly mibPerSecond: number
  readonly peakRssMib: number
}

const main = async () => {
  const sizeMib = arg("size-mib", 2048)
  const rounds = arg("rounds", 2)
  requireBin()
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-bench-cli-"))
  const env = cliEnv(home)
  try {
    // Incompressible input, written once; both modes then read it from the page cache.
    const input = path.join(home, "input.bin")
    writeRandomFile(input, sizeMib)
    await objcrypt(["keys", "generate", "bench"], env)
    // Startup alone (Node, module loading, the key store's scrypt): reported, not subtracted.
    const startup = await objcrypt(["keys", "list"], env)
    // Fixed cost of each mode: copying an empty file (cse-c also unlocks the key store: scrypt).
    const empty = path.join(home, "empty.bin")
    fs.writeFileSync(empty, Buffer.alloc(0))
    const fixed: Record<"none" | "cse-c", number> = { none: 0, "cse-c": 0 }
    for (const mode of ["none", "cse-c"] as const) {
      const samples: Array<number> = []
      for (let i = 0; i < 3; i++) {
        const dest = `local://bench/empty-${mode}-${i}`
        samples.push((await objcrypt(["cp", empty, dest, "--quiet", "--mode", mode, ...(mode === "cse-c" ? ["--key", "bench"] : [])], env)).cpuSeconds)
        await objcrypt(["rm", dest], env)
      }
      fixed[mode] = samples.sort((a, b) => a - b)[1]!
    }

    const results: Array<RunResult> = []
    for (let r = 0; r < rounds; r++) {
      for (const mode of ["none", "cse-c"] as const) {
        const dest = `local://bench/${mode}-${r}.bin`
        const args = ["cp", input, dest, "--quiet", "--mode", mode, ...(mode === "cse-c" ? ["--key", "bench"] : [])]
        const { seconds, cpuSeconds, peakRssMib } = await objcrypt(args, env)
        results.push({ mode, seconds, cpuSeconds, mibPerSecond: sizeMib / seconds, peakRssMib })
        await objcrypt(["rm", dest], env)
      }
    }
    const comparison = compareModes(results, rounds)
    const report = {
      sizeMib,
      rounds,
      node: process.version,
      startupSeconds: Number(startup.seconds.toFixed(2)),
      runs: results.map((x) => ({ ...x, seconds: Number(x.seconds.toFixed(2)), cpuSeconds: Number(x.cpuSeconds.toFixed(2)), mibPerSecond: Math.round(x.mibPerSecond), peakRssMib: Math.round(x.peakRssMib) })),
      ...comparison,
      /** CPU seconds of copying an empty file per mode (startup; cse-c adds the key store's scrypt unlock). */
      fixedCpuSeconds: { none: Number(fixed.none.toFixed(2)), "cse-c": Number(fixed["cse-c"].toFixed(2)) },
      /** As cpuRatio, each mode's fixed cost subtracted: the per-byte cost of encrypting. */
      cpuRatioPerByte: Number((
        (median(results.filter((x) => x.mode === "none").map((x) => x.cpuSeconds)) - fixed.none) /
        (median(results.filter((x) => x.mode === "cse-c").map((x) => x.cpuSeconds)) - fixed["cse-c"])
      ).toFixed(3)),
      target: 0.9
    }
    process.stdout.write(JSON.stringify(report, null, 2) + "\n")
  } finally {
    fs.rmSync(home, { recursive: true, force: true })
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).message}\n`)
  process.exit(1)
})
