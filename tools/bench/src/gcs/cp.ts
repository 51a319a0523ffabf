/**
 * Benchmark: `objcrypt cp FILE gs://bench/KEY` to the GCS test server (`@objcrypt/test-kit/GcsServer`,
 * in its own process on 127.0.0.1) with `--mode cse-c` versus `--mode none`, run as a user runs it:
 * the built bin in a child process, the server found through `STORAGE_EMULATOR_HOST`. The two
 * modes alternate in one run so the ratio compares like with like on a shared machine. Reports
 * each run's wall time, CPU time (user + system) of the CLI and of the server, throughput, peak
 * RSS of the CLI (VmHWM, polled from /proc), and the cse-c / none ratio in wall time and in CLI
 * CPU time.
 *
 *   npx nx build @objcrypt/cli
 *   node_modules/.bin/node --conditions=@objcrypt/source --import ./tools/bench/src/format/hooks.ts \
 *     tools/bench/src/gcs/cp.ts --size-mib 1024 --rounds 1
 *
 * @since 0.1.0
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { arg, cliEnv, compareModes, cpuOf, objcrypt, peakRss, requireBin, writeRandomFile } from "../internal/cliRun.js"
import type { Run } from "../internal/cliRun.js"

const here = path.dirname(fileURLToPath(import.meta.url))
const serverArgs = ["--conditions=@objcrypt/source", "--import", path.resolve(here, "../format/hooks.ts"), path.resolve(here, "server.ts")]

const main = async () => {
  const sizeMib = arg("size-mib", 1024)
  const rounds = arg("rounds", 1)
  requireBin()
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-bench-gcs-"))
  const server = spawn(process.execPath, serverArgs, { stdio: ["pipe", "pipe", "inherit"] })
  try {
    const { endpoint, projectId } = await new Promise<{ endpoint: string; projectId: string }>((resolve, reject) => {
      let out = ""
      server.stdout.on("data", (c: Buffer) => {
        out += c.toString()
        const line = out.split("\n")[0]
        if (out.includes("\n") && line !== undefined) resolve(JSON.parse(line) as { endpoint: string; projectId: string })
      })
      server.on("exit", (code) => reject(new Error(`the GCS test server exited ${code}`)))
    })
    const env = cliEnv(home, {
      // gs:// without configuration: the emulator variable of the Google client libraries.
      STORAGE_EMULATOR_HOST: endpoint.replace(/^http:\/\//, ""),
      GOOGLE_CLOUD_PROJECT: projectId
    })
    // Incompressible input, written once; both modes then read it from the page cache.
    const input = path.join(home, "input.bin")
    writeRandomFile(input, sizeMib)
    await objcrypt(["keys", "generate", "bench"], env)
    // Startup alone (Node, module loading, the key store's scrypt): reported, not subtracted.
    const startup = await objcrypt(["keys", "list"], env)

    const results: Array<Run & { mode: string; command: string; serverCpuSeconds: number; mibPerSecond: number }> = []
    for (let r = 0; r < rounds; r++) {
      for (const mode of ["none", "cse-c"] as const) {
        const dest = `gs://bench/${mode}-${r}.bin`
        const args = ["cp", input, dest, "--quiet", "--mode", mode, ...(mode === "cse-c" ? ["--key", "bench"] : [])]
        const serverCpu0 = cpuOf(server.pid!)
        const x = await objcrypt(args, env)
        results.push({ mode, command: `objcrypt ${args.join(" ")}`, ...x, serverCpuSeconds: cpuOf(server.pid!) - serverCpu0, mibPerSecond: sizeMib / x.seconds })
        await objcrypt(["rm", dest], env)
      }
    }
    const report = {
      sizeMib,
      rounds,
      node: process.version,
      startupSeconds: Number(startup.seconds.toFixed(2)),
      serverPeakRssMib: Math.round(peakRss(server.pid!)),
      runs: results.map((x) => ({
        ...x,
        seconds: Number(x.seconds.toFixed(2)),
        cpuSeconds: Number(x.cpuSeconds.toFixed(2)),
        serverCpuSeconds: Number(x.serverCpuSeconds.toFixed(2)),
        mibPerSecond: Math.round(x.mibPerSecond),
        peakRssMib: Math.round(x.peakRssMib)
      })),
      ...compareModes(results, rounds)
    }
    process.stdout.write(JSON.stringify(report, null, 2) + "\n")
  } finally {
    server.stdin.end()
    fs.rmSync(home, { recursive: true, force: true })
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).message}\n`)
  process.exit(1)
})
