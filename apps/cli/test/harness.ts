/**
 * Runs the built `objcrypt` bin as a user would: a child process on the pinned Node, in a fresh
 * temporary home (XDG directories, key store, local store) per test.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

/** The built executable (`npx nx test @objcrypt/cli` builds it first). */
export const BIN = process.env.OBJCRYPT_TEST_BIN ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "dist", "bundle", "objcrypt.mjs")

export interface Result {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  readonly stdoutBytes: Buffer
}

export interface Home {
  readonly dir: string
  readonly env: Record<string, string>
  readonly storeRoot: string
  readonly run: (args: ReadonlyArray<string>, options?: RunOptions) => Promise<Result>
  readonly file: (rel: string, content: string | Uint8Array) => string
  readonly cleanup: () => void
}

export interface RunOptions {
  readonly env?: Record<string, string | undefined>
  readonly input?: string | Uint8Array
  readonly cwd?: string
}

export const PASSPHRASE = "correct horse battery staple"

const baseEnv = (): Record<string, string> => {
  const keep: Record<string, string> = {}
  for (const k of ["PATH", "LANG", "TZ", "SYSTEMROOT"]) if (process.env[k] !== undefined) keep[k] = process.env[k]!
  return keep
}

export const run = (args: ReadonlyArray<string>, env: Record<string, string>, options?: RunOptions): Promise<Result> =>
  new Promise((resolve, reject) => {
    const merged: Record<string, string> = { ...env }
    for (const [k, v] of Object.entries(options?.env ?? {})) {
      if (v === undefined) delete merged[k]
      else merged[k] = v
    }
    const child = spawn(process.execPath, [BIN, ...args], { env: merged, cwd: options?.cwd ?? env.HOME, stdio: ["pipe", "pipe", "pipe"] })
    const out: Array<Buffer> = []
    const err: Array<Buffer> = []
    child.stdout.on("data", (c: Buffer) => out.push(c))
    child.stderr.on("data", (c: Buffer) => err.push(c))
    child.on("error", reject)
    child.on("close", (code, signal) => {
      const stdoutBytes = Buffer.concat(out)
      resolve({ code, signal, stdout: stdoutBytes.toString("utf8"), stderr: Buffer.concat(err).toString("utf8"), stdoutBytes })
    })
    if (options?.input !== undefined) child.stdin.end(options.input)
    else child.stdin.end()
  })

export const makeHome = (): Home => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-cli-"))
  const env: Record<string, string> = {
    ...baseEnv(),
    HOME: dir,
    XDG_CONFIG_HOME: path.join(dir, "config"),
    XDG_DATA_HOME: path.join(dir, "data"),
    OBJCRYPT_PASSPHRASE: PASSPHRASE
  }
  return {
    dir,
    env,
    storeRoot: path.join(dir, "data", "objcrypt", "store"),
    run: (args, options) => run(args, env, options),
    file: (rel, content) => {
      const p = path.join(dir, rel)
      fs.mkdirSync(path.dirname(p), { recursive: true })
      fs.writeFileSync(p, content)
      return p
    },
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** Every file below a directory (for looking at what the store wrote). */
export const filesBelow = (dir: string): Array<string> => {
  if (!fs.existsSync(dir)) return []
  return (fs.readdirSync(dir, { recursive: true, withFileTypes: true }) as Array<fs.Dirent>)
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name))
}

/** A one-line error: a single `objcrypt: …` line on stderr, no stack trace. */
export const oneLineError = (r: Result): string => {
  const lines = r.stderr.split("\n").filter((l) => l.trim() !== "")
  if (lines.length !== 1) throw new Error(`expected one stderr line, got ${lines.length}:\n${r.stderr}`)
  if (!lines[0]!.startsWith("objcrypt: ")) throw new Error(`expected "objcrypt: …", got ${lines[0]}`)
  if (/\n\s+at /.test(r.stderr) || r.stderr.includes(".js:")) throw new Error(`stack trace in stderr:\n${r.stderr}`)
  return lines[0]!
}

/**
 * A forwarding HTTP proxy on 127.0.0.1 in front of a real server, counting the requests `watch`
 * selects and the most of them in flight at once (to see part sizes and parallelism on the wire).
 */
export interface CountingProxy {
  readonly endpoint: string
  readonly stats: () => { readonly count: number; readonly maxInFlight: number }
  readonly reset: () => void
  readonly close: () => Promise<void>
}

export const countingProxy = async (target: string, watch: (method: string, url: string) => boolean): Promise<CountingProxy> => {
  const http = await import("node:http")
  const upstream = new URL(target)
  let count = 0
  let inFlight = 0
  let maxInFlight = 0
  const server = http.createServer((req, res) => {
    const watched = watch(req.method ?? "", req.url ?? "")
    if (watched) {
      count++
      maxInFlight = Math.max(maxInFlight, ++inFlight)
    }
    let done = false
    const finish = () => {
      if (watched && !done) inFlight--
      done = true
    }
    const out = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers)
        up.pipe(res)
        up.on("end", finish)
      }
    )
    out.on("error", () => {
      finish()
      res.destroy()
    })
    res.on("close", finish)
    req.pipe(out)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as { port: number }).port
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stats: () => ({ count, maxInFlight }),
    reset: () => {
      count = 0
      maxInFlight = 0
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}
