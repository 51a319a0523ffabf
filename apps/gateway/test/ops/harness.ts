/**
 * Shared pieces of the server-operation and client tests: temporary directories, users, configs,
 * a self-signed certificate, gateways in this process (full `GatewayServer.layer`) or as
 * `objcrypt-gateway` child processes run from the sources, and a small async process runner.
 */
import { HttpServer } from "@effect/platform"
import { S3Client } from "@aws-sdk/client-s3"
import { NodeHttpHandler } from "@smithy/node-http-handler"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { spawn, type ChildProcess } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as https from "node:https"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as GatewayConfig from "../../src/GatewayConfig.js"
import * as GatewayServer from "../../src/GatewayServer.js"

const here = path.dirname(fileURLToPath(import.meta.url))
export const APP = path.resolve(here, "../..")
export const WORKSPACE = path.resolve(APP, "../..")
export const NODE = path.join(WORKSPACE, "node_modules/.bin/node")

export const users = {
  alice: { id: "AKIAOPSALICE0001", secret: `alice-${crypto.randomBytes(18).toString("base64url")}` },
  bob: { id: "AKIAOPSBOB000002", secret: `bob-${crypto.randomBytes(18).toString("base64url")}` }
}
export const PASSPHRASE = `passphrase-${crypto.randomBytes(12).toString("hex")}`

process.env["GW_OPS_ALICE"] = users.alice.secret
process.env["GW_OPS_BOB"] = users.bob.secret
process.env["GW_OPS_PASSPHRASE"] = PASSPHRASE

export const tempDir = (name = "ops") => fs.mkdtempSync(path.join(os.tmpdir(), `objcrypt-gw-${name}-`))

/** A configuration object (not yet decoded) for a gateway on `dir`. */
export const rawConfig = (dir: string, extra?: Record<string, unknown>): Record<string, unknown> => ({
  listen: { host: "127.0.0.1", port: 0 },
  backend: { type: "fs", root: path.join(dir, "data"), fsync: false },
  users: [
    { name: "alice", accessKeyId: users.alice.id, secretAccessKey: { env: "GW_OPS_ALICE" }, buckets: "*" },
    { name: "bob", accessKeyId: users.bob.id, secretAccessKey: { env: "GW_OPS_BOB" }, buckets: ["bob-bucket"] }
  ],
  keyStore: { path: path.join(dir, "keys.ocks"), passphrase: { env: "GW_OPS_PASSPHRASE" } },
  accessLog: "off",
  shutdownGraceSeconds: 10,
  ...extra
})

export const decode = (raw: Record<string, unknown>) => Effect.runSync(GatewayConfig.decode(raw))

export interface Gateway {
  readonly port: number
  readonly endpoint: string
  readonly close: () => Promise<void>
}

/** The whole gateway (`GatewayServer.layer`) in this process. */
export const start = async (config: GatewayConfig.GatewayConfig): Promise<Gateway> => {
  const scope = Effect.runSync(Scope.make())
  const ctx = await Effect.runPromise(Layer.buildWithScope(GatewayServer.layer(config, { allowLowCostKeyStore: true }), scope))
  const address = Context.get(ctx, HttpServer.HttpServer).address
  if (address._tag !== "TcpAddress") throw new Error("expected a TCP address")
  const scheme = config.tls === undefined ? "http" : "https"
  return {
    port: address.port,
    endpoint: `${scheme}://127.0.0.1:${address.port}`,
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

export const client = (endpoint: string, user: { id: string; secret: string } = users.alice, ca?: string) =>
  new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: user.id, secretAccessKey: user.secret },
    maxAttempts: 1,
    ...(ca === undefined ? {} : { requestHandler: new NodeHttpHandler({ httpsAgent: new https.Agent({ ca }) }) })
  })

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once("error", reject)
    s.listen(0, "127.0.0.1", () => {
      const a = s.address() as net.AddressInfo
      s.close(() => resolve(a.port))
    })
  })

export interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs a command without blocking the event loop (the gateway may live in this process). */
export const run = (cmd: string, args: ReadonlyArray<string>, options?: { env?: Record<string, string | undefined>; input?: string | Buffer; cwd?: string; timeoutMs?: number }): Promise<Run> =>
  new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...options?.env }, cwd: options?.cwd, stdio: ["pipe", "pipe", "pipe"] })
    const out: Array<Buffer> = []
    const err: Array<Buffer> = []
    child.stdout.on("data", (b: Buffer) => out.push(b))
    child.stderr.on("data", (b: Buffer) => err.push(b))
    const timer = setTimeout(() => child.kill("SIGKILL"), options?.timeoutMs ?? 60_000)
    child.on("error", reject)
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") })
    })
    child.stdin.end(options?.input)
  })

/** A self-signed certificate for 127.0.0.1 and localhost (openssl). */
export const selfSigned = async (dir: string): Promise<{ cert: string; key: string; pem: string }> => {
  const cert = path.join(dir, "cert.pem")
  const key = path.join(dir, "key.pem")
  const r = await run("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
    "-keyout", key, "-out", cert
  ])
  if (r.code !== 0) throw new Error(`openssl failed: ${r.stderr}`)
  return { cert, key, pem: fs.readFileSync(cert, "utf8") }
}

/** Registers the `.js` → `.ts` resolution hook so Node runs the workspace sources. */
const HOOKS = path.join(here, "hooks.mjs")

export interface Child {
  readonly proc: ChildProcess
  readonly port: number
  readonly endpoint: string
  readonly output: () => string
  readonly exited: Promise<number | null>
}

/** `objcrypt-gateway --config <file>` from the sources, on a free port; resolves once it answers `/_health`. */
export const spawnGateway = async (dir: string, raw: Record<string, unknown>, name = "gw"): Promise<Child> => {
  const port = await freePort()
  const file = path.join(dir, `${name}.json`)
  fs.writeFileSync(file, JSON.stringify({ ...raw, listen: { host: "127.0.0.1", port } }))
  const proc = spawn(NODE, ["--conditions=@objcrypt/source", "--import", HOOKS, path.join(APP, "src/bin.ts"), "--config", file], {
    cwd: WORKSPACE,
    env: process.env,
    stdio: ["ignore", "pipe", "pipe"]
  })
  const chunks: Array<Buffer> = []
  proc.stdout!.on("data", (b: Buffer) => chunks.push(b))
  proc.stderr!.on("data", (b: Buffer) => chunks.push(b))
  const exited = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)))
  const endpoint = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 60_000
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`gateway exited: ${Buffer.concat(chunks).toString("utf8")}`)
    try {
      const r = await fetch(`${endpoint}/_health`)
      if (r.status === 200) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      proc.kill("SIGKILL")
      throw new Error(`gateway did not start: ${Buffer.concat(chunks).toString("utf8")}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return { proc, port, endpoint, output: () => Buffer.concat(chunks).toString("utf8"), exited }
}

/** Stops a child gateway by its PID (SIGKILL when it does not exit on SIGTERM). */
export const stopChild = async (child: Child) => {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return
  child.proc.kill("SIGTERM")
  const timer = setTimeout(() => child.proc.kill("SIGKILL"), 15_000)
  await child.exited
  clearTimeout(timer)
}

/** Every file under a directory, recursively. */
export const filesUnder = (dir: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name))

/** A payload with a recognizable marker repeated through it (to look for plaintext in the backend). */
export const markedPayload = (marker: string, size: number): Buffer => {
  const out = Buffer.alloc(size)
  const m = Buffer.from(marker)
  for (let i = 0; i < size; i += m.length) m.copy(out, i, 0, Math.min(m.length, size - i))
  return out
}
