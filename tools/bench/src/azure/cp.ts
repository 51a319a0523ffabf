/**
 * Benchmark: `objcrypt cp` (the built bin, in a child process, as a user runs it) of a large file
 * to Azurite (`@objcrypt/test-kit/Azurite`, its own process) with `--mode cse-c` versus
 * `--mode none`, alternating the two modes in one run so the ratio compares like with like on a
 * shared machine. Reports wall time, CPU time (user + system) of the CLI process, throughput, the
 * cse-c / none ratio in wall time and in CPU time, each run's peak RSS of the CLI process (VmHWM,
 * polled from /proc) and Azurite's peak RSS.
 *
 *   npx nx build @objcrypt/cli
 *   node_modules/.bin/node --conditions=@objcrypt/source --import ./tools/bench/src/format/hooks.ts \
 *     tools/bench/src/azure/cp.ts --size-mib 1024 --rounds 1
 *
 * @since 0.1.0
 */
// The benchmark needs Azurite's launcher, which lives in test-kit; bench is dev-only like the tests.
import * as Azurite from "@objcrypt/test-kit/Azurite"
import { Effect, Exit, Scope } from "effect"
import { spawn } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? fallback : Number(process.argv[i + 1])
}

const here = path.dirname(fileURLToPath(import.meta.url))
const BIN = process.env.OBJCRYPT_BENCH_BIN ?? path.resolve(here, "../../../../apps/cli/dist/bin.js")

const procStatus = (pid: number, field: string): number => {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))
    return m === null ? 0 : Number(m[1]) / 1024
  } catch {
    return 0
  }
}

const cpuOf = (pid: number): number => {
  try {
    // utime and stime (fields 14 and 15) in clock ticks; the kernel's USER_HZ is 100 on Linux.
    const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return 0
  }
}

const objcrypt = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv): Promise<{ seconds: number; cpuSeconds: number; peakRssMib: number }> =>
  new Promise((resolve, reject) => {
    const started = process.hrtime.bigint()
    const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ["ignore", "ignore", "pipe"] })
    let stderr = ""
    let peak = 0
    let cpu = 0
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()))
    const poll = setInterval(() => {
      peak = Math.max(peak, procStatus(child.pid!, "VmHWM"))
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

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

const main = async () => {
  const sizeMib = arg("size-mib", 1024)
  const rounds = arg("rounds", 1)
  if (!fs.existsSync(BIN)) throw new Error(`${BIN} not found: build the CLI first (npx nx build @objcrypt/cli)`)
  const scope = Effect.runSync(Scope.make())
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-bench-azure-"))
  try {
    const azurite = await Effect.runPromise(Scope.extend(Azurite.make(), scope))
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: home,
      XDG_CONFIG_HOME: path.join(home, "config"),
      XDG_DATA_HOME: path.join(home, "data"),
      OBJCRYPT_PASSPHRASE: "bench passphrase",
      AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString
    }
    // Incompressible input, written once; both modes then read it from the page cache.
    const input = path.join(home, "input.bin")
    const fd = fs.openSync(input, "w")
    const block = crypto.randomBytes(16 * 1024 * 1024)
    for (let written = 0; written < sizeMib * 1024 * 1024; written += block.length) {
      crypto.randomFillSync(block)
      fs.writeSync(fd, block, 0, Math.min(block.length, sizeMib * 1024 * 1024 - written))
    }
    fs.closeSync(fd)
    await objcrypt(["keys", "generate", "bench"], env)
    await objcrypt(["bucket", "create", "az://bench"], env)
    // Startup alone (Node, module loading, the key store's scrypt): reported, not subtracted.
    const startup = await objcrypt(["keys", "list"], env)

    const results: Array<{ mode: string; seconds: number; cpuSeconds: number; mibPerSecond: number; peakRssMib: number }> = []
    for (let r = 0; r < rounds; r++) {
      for (const mode of ["none", "cse-c"] as const) {
        const dest = `az://bench/${mode}-${r}.bin`
        const args = ["cp", input, dest, "--quiet", "--mode", mode, ...(mode === "cse-c" ? ["--key", "bench"] : [])]
        const x = await objcrypt(args, env)
        results.push({ mode, ...x, mibPerSecond: sizeMib / x.seconds })
        // Azurite keeps blobs in memory: free each one before the next upload.
        await objcrypt(["rm", dest], env)
      }
    }
    const none = median(results.filter((x) => x.mode === "none").map((x) => x.mibPerSecond))
    const cse = median(results.filter((x) => x.mode === "cse-c").map((x) => x.mibPerSecond))
    const cpuRatio = median(results.filter((x) => x.mode === "none").map((x) => x.cpuSeconds)) /
      median(results.filter((x) => x.mode === "cse-c").map((x) => x.cpuSeconds))
    const report = {
      sizeMib,
      rounds,
      node: process.version,
      startupSeconds: Number(startup.seconds.toFixed(2)),
      azuritePeakRssMib: Math.round(procStatus(azurite.pid, "VmHWM")),
      runs: results.map((x) => ({
        ...x,
        seconds: Number(x.seconds.toFixed(2)),
        cpuSeconds: Number(x.cpuSeconds.toFixed(2)),
        mibPerSecond: Math.round(x.mibPerSecond),
        peakRssMib: Math.round(x.peakRssMib)
      })),
      medianMibPerSecond: { none: Math.round(none), "cse-c": Math.round(cse) },
      ratioPerRound: Array.from({ length: rounds }, (_, r) => Number((results[2 * r]!.seconds / results[2 * r + 1]!.seconds).toFixed(3))),
      ratio: Number((cse / none).toFixed(3)),
      /** none CPU seconds / cse-c CPU seconds of the CLI process: the same ratio, in CPU time. */
      cpuRatio: Number(cpuRatio.toFixed(3))
    }
    process.stdout.write(JSON.stringify(report, null, 2) + "\n")
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    fs.rmSync(home, { recursive: true, force: true })
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).message}\n`)
  process.exit(1)
})
