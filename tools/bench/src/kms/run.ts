/**
 * Benchmark: GenerateDataKey and Decrypt requests per second against the gateway's KMS service
 * (key-store backend) and against moto_server's AWS KMS, with 1 and 32 concurrent clients. Both
 * servers run in a child process (`server.ts`); this process is the client (`@aws-sdk/client-kms`,
 * keep-alive connections). Servers alternate for each (operation, concurrency) cell so the
 * comparison is like with like on a shared machine. Reports requests/s, median latency, the
 * client's CPU time and the server process's CPU time (user + system) per cell.
 *
 *   node_modules/.bin/node --conditions=@objcrypt/source --import ./tools/bench/src/format/hooks.ts \
 *     tools/bench/src/kms/run.ts [--seconds 5] [--rounds 1]
 *
 * @since 0.1.0
 */
import { CreateKeyCommand, DecryptCommand, GenerateDataKeyCommand, KMSClient } from "@aws-sdk/client-kms"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as path from "node:path"
import * as readline from "node:readline"
import { fileURLToPath } from "node:url"

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? fallback : Number(process.argv[i + 1])
}
const SECONDS = arg("seconds", 5)
const ROUNDS = arg("rounds", 1)
const here = path.dirname(fileURLToPath(import.meta.url))

interface Target {
  readonly endpoint: string
  readonly accessKeyId: string
  readonly secretAccessKey: string
}

/** utime + stime of one process, in seconds (USER_HZ is 100 on Linux). */
const ownCpu = (pid: number): number => {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return 0
  }
}

const childrenOf = (pid: number): Array<number> => {
  const out: Array<number> = []
  try {
    for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
      const children = fs.readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim()
      for (const c of children === "" ? [] : children.split(" ")) out.push(Number(c))
    }
  } catch {
    // the process ended
  }
  return out
}

const treeCpu = (pid: number): number => ownCpu(pid) + childrenOf(pid).reduce((n, c) => n + treeCpu(c), 0)

/** The KMS service runs in the server child itself; moto_server is that child's child process. */
const serverCpu = (name: "objcrypt" | "moto", serverPid: number): number =>
  name === "objcrypt" ? ownCpu(serverPid) : childrenOf(serverPid).reduce((n, c) => n + treeCpu(c), 0)

const client = (t: Target) =>
  new KMSClient({
    endpoint: t.endpoint,
    region: "us-east-1",
    maxAttempts: 1,
    credentials: { accessKeyId: t.accessKeyId, secretAccessKey: t.secretAccessKey },
    requestHandler: { httpAgent: new http.Agent({ keepAlive: true, maxSockets: 64 }) }
  })

interface Cell {
  readonly rps: number
  readonly p50ms: number
  readonly clientCpu: number
  readonly serverCpu: number
  readonly errors: number
}

const measure = async (op: () => Promise<unknown>, concurrency: number, server: () => number): Promise<Cell> => {
  // Warm up connections and JIT.
  await Promise.all(Array.from({ length: concurrency }, () => op()))
  const latencies: Array<number> = []
  let errors = 0
  const cpu0 = process.cpuUsage()
  const server0 = server()
  const start = performance.now()
  const end = start + SECONDS * 1000
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const t = performance.now()
      try {
        await op()
        latencies.push(performance.now() - t)
      } catch {
        errors++
      }
    }
  }))
  const elapsed = (performance.now() - start) / 1000
  const cpu = process.cpuUsage(cpu0)
  latencies.sort((a, b) => a - b)
  return {
    rps: latencies.length / elapsed,
    p50ms: latencies[Math.floor(latencies.length / 2)] ?? 0,
    clientCpu: (cpu.user + cpu.system) / 1e6,
    serverCpu: server() - server0,
    errors
  }
}

const main = async () => {
  const child = spawn(process.execPath, ["--conditions=@objcrypt/source", "--import", path.resolve(here, "../format/hooks.ts"), path.resolve(here, "server.ts")], {
    stdio: ["pipe", "pipe", "inherit"]
  })
  const line = await new Promise<string>((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).once("line", resolve)
    child.once("exit", (code) => reject(new Error(`server exited with ${code}`)))
  })
  const targets = JSON.parse(line) as Record<"objcrypt" | "moto", Target>
  const setups = await Promise.all((["objcrypt", "moto"] as const).map(async (name) => {
    const kms = client(targets[name])
    const key = (await kms.send(new CreateKeyCommand({ Description: "bench" }))).KeyMetadata!.KeyId!
    const context = { bucket: "bench", object: "some/key" }
    const dk = await kms.send(new GenerateDataKeyCommand({ KeyId: key, KeySpec: "AES_256", EncryptionContext: context }))
    return {
      name,
      kms,
      ops: {
        GenerateDataKey: () => kms.send(new GenerateDataKeyCommand({ KeyId: key, KeySpec: "AES_256", EncryptionContext: context })),
        Decrypt: () => kms.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob!, EncryptionContext: context }))
      }
    }
  }))
  console.log(`KMS benchmark: ${SECONDS} s per cell, ${ROUNDS} round(s); client = this process (pid ${process.pid}), servers in pid ${child.pid}`)
  console.log("operation        clients  server     req/s    p50 ms  client CPU s  server CPU s  errors")
  for (let round = 0; round < ROUNDS; round++) {
    for (const op of ["GenerateDataKey", "Decrypt"] as const) {
      for (const concurrency of [1, 32]) {
        for (const s of setups) {
          const r = await measure(s.ops[op], concurrency, () => serverCpu(s.name, child.pid!))
          console.log(
            `${op.padEnd(16)} ${String(concurrency).padStart(7)}  ${s.name.padEnd(8)} ${r.rps.toFixed(0).padStart(8)} ${r.p50ms.toFixed(2).padStart(9)} ${
              r.clientCpu.toFixed(2).padStart(13)
            } ${r.serverCpu.toFixed(2).padStart(13)} ${String(r.errors).padStart(7)}`
          )
        }
      }
    }
  }
  for (const s of setups) s.kms.destroy()
  child.stdin!.end()
  await new Promise((resolve) => child.once("exit", resolve))
}

main().catch((e: unknown) => {
  console.error(e)
  process.exit(1)
})
