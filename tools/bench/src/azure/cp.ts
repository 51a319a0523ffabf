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
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { arg, cliEnv, compareModes, objcrypt, peakRss, requireBin, writeRandomFile } from "../internal/cliRun.js"

const main = async () => {
  const sizeMib = arg("size-mib", 1024)
  const rounds = arg("rounds", 1)
  requireBin()
  const scope = Effect.runSync(Scope.make())
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-bench-azure-"))
  try {
    const azurite = await Effect.runPromise(Scope.extend(Azurite.make(), scope))
    const env = cliEnv(home, {
      AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString
    })
    // Incompressible input, written once; both modes then read it from the page cache.
    const input = path.join(home, "input.bin")
    writeRandomFile(input, sizeMib)
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
    const report = {
      sizeMib,
      rounds,
      node: process.version,
      startupSeconds: Number(startup.seconds.toFixed(2)),
      azuritePeakRssMib: Math.round(peakRss(azurite.pid)),
      runs: results.map((x) => ({
        ...x,
        seconds: Number(x.seconds.toFixed(2)),
        cpuSeconds: Number(x.cpuSeconds.toFixed(2)),
        mibPerSecond: Math.round(x.mibPerSecond),
        peakRssMib: Math.round(x.peakRssMib)
      })),
      ...compareModes(results, rounds)
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
