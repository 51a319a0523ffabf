/**
 * Benchmark: `cp` of a large file to the GCS test server (`@objcrypt/test-kit/GcsServer`, in its
 * own process) with cse-c versus mode none, alternating the two modes in one run so the ratio
 * compares like with like on a shared machine. Each upload runs in a child process (`upload.ts`);
 * reports wall time, CPU time, throughput, the cse-c / none ratio and each run's peak RSS (VmHWM).
 *
 *   node_modules/.bin/node --conditions=@objcrypt/source --import ./tools/bench/src/format/hooks.ts \
 *     tools/bench/src/gcs/cp.ts --size-mib 1024 --rounds 1
 *
 * @since 0.1.0
 */
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
const nodeArgs = ["--conditions=@objcrypt/source", "--import", path.resolve(here, "../format/hooks.ts")]

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
    const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return 0
  }
}

const run = (args: ReadonlyArray<string>): Promise<{ seconds: number; cpuSeconds: number; peakRssMib: number }> =>
  new Promise((resolve, reject) => {
    const started = process.hrtime.bigint()
    const child = spawn(process.execPath, [...nodeArgs, path.resolve(here, "upload.ts"), ...args], { stdio: ["ignore", "ignore", "pipe"] })
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
      if (code !== 0) reject(new Error(`upload ${args.join(" ")} exited ${code}: ${stderr.slice(-2000)}`))
      else resolve({ seconds, cpuSeconds: cpu, peakRssMib: peak })
    })
  })

const main = async () => {
  const sizeMib = arg("size-mib", 1024)
  const rounds = arg("rounds", 1)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-bench-gcs-"))
  const server = spawn(process.execPath, [...nodeArgs, path.resolve(here, "server.ts")], { stdio: ["pipe", "pipe", "inherit"] })
  try {
    const { endpoint } = await new Promise<{ endpoint: string }>((resolve, reject) => {
      let out = ""
      server.stdout.on("data", (c: Buffer) => {
        out += c.toString()
        const line = out.split("\n")[0]
        if (out.includes("\n") && line !== undefined) resolve(JSON.parse(line) as { endpoint: string })
      })
      server.on("exit", (code) => reject(new Error(`the GCS test server exited ${code}`)))
    })
    const input = path.join(dir, "input.bin")
    const fd = fs.openSync(input, "w")
    const block = crypto.randomBytes(16 * 1024 * 1024)
    for (let written = 0; written < sizeMib * 1024 * 1024; written += block.length) {
      crypto.randomFillSync(block)
      fs.writeSync(fd, block, 0, Math.min(block.length, sizeMib * 1024 * 1024 - written))
    }
    fs.closeSync(fd)
    const results: Array<{ mode: string; seconds: number; cpuSeconds: number; mibPerSecond: number; peakRssMib: number }> = []
    for (let r = 0; r < rounds; r++) {
      for (const mode of ["none", "cse-c"] as const) {
        const x = await run([endpoint, input, mode, `${mode}-${r}.bin`])
        results.push({ mode, ...x, mibPerSecond: sizeMib / x.seconds })
      }
    }
    const median = (xs: ReadonlyArray<number>) => {
      const s = [...xs].sort((a, b) => a - b)
      return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
    }
    const none = median(results.filter((x) => x.mode === "none").map((x) => x.mibPerSecond))
    const cse = median(results.filter((x) => x.mode === "cse-c").map((x) => x.mibPerSecond))
    const report = {
      sizeMib,
      rounds,
      node: process.version,
      serverPeakRssMib: Math.round(procStatus(server.pid!, "VmHWM")),
      runs: results.map((x) => ({
        ...x,
        seconds: Number(x.seconds.toFixed(2)),
        cpuSeconds: Number(x.cpuSeconds.toFixed(2)),
        mibPerSecond: Math.round(x.mibPerSecond),
        peakRssMib: Math.round(x.peakRssMib)
      })),
      medianMibPerSecond: { none: Math.round(none), "cse-c": Math.round(cse) },
      ratio: Number((cse / none).toFixed(3))
    }
    process.stdout.write(JSON.stringify(report, null, 2) + "\n")
  } finally {
    server.stdin.end()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).message}\n`)
  process.exit(1)
})
