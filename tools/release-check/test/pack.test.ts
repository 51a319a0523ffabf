import { assert, describe, it } from "@effect/vitest"
import { execFile, spawn } from "node:child_process"
import { promisify } from "node:util"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"

const workspace = path.resolve(import.meta.dirname, "../../..")
const node = process.execPath
const npmCli = (() => {
  // Use the npm that ships with the pinned Node when present, else the one on PATH.
  const bundled = path.join(path.dirname(node), "../lib/node_modules/npm/bin/npm-cli.js")
  return fs.existsSync(bundled) ? [node, bundled] : ["npm"]
})()
// Asynchronous on purpose: a synchronous child process would block the test worker for minutes
// and starve vitest's own RPC.
const run = promisify(execFile)
const exec = async (file: string, args: ReadonlyArray<string>, cwd: string) =>
  (await run(file, [...args], {
    cwd,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, npm_config_update_notifier: "false", npm_config_fund: "false", npm_config_audit: "false" }
  })).stdout
const npm = (args: ReadonlyArray<string>, cwd: string) => exec(npmCli[0]!, [...npmCli.slice(1), ...args], cwd)

interface Pkg {
  readonly dir: string
  readonly name: string
  readonly json: Record<string, any>
}

const publishable: ReadonlyArray<Pkg> = ["packages", "apps"].flatMap((group) =>
  fs.readdirSync(path.join(workspace, group)).map((d) => {
    const dir = path.join(workspace, group, d)
    const json = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"))
    return { dir, name: json.name as string, json }
  })
).filter((p) => p.json.private !== true)

/** Every public subpath: "." and one per top-level module in src/ (internal/* is closed). */
const entryPoints = (p: Pkg): ReadonlyArray<string> => [
  p.name,
  ...fs.readdirSync(path.join(p.dir, "src"))
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts") && f !== "index.ts" && f !== "bin.ts")
    .map((f) => `${p.name}/${f.slice(0, -3)}`)
]

describe("packages as npm users get them", () => {
  it("every publishable package declares what a published package needs", () => {
    assert.isAtLeast(publishable.length, 8)
    for (const p of publishable) {
      assert.strictEqual(p.json.version, "0.1.0", p.name)
      assert.strictEqual(p.json.engines?.node, ">=22", p.name)
      assert.strictEqual(p.json.type, "module", p.name)
      assert.isString(p.json.license, p.name)
      assert.isDefined(p.json.exports?.["."]?.types, p.name)
      assert.deepStrictEqual(p.json.files?.includes("dist"), true, p.name)
      assert.isTrue(fs.existsSync(path.join(p.dir, "README.md")), `${p.name} has a README`)
    }
  })

  it("installs from packed tarballs into a fresh project and imports every entry point on Node 24", async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-pack-"))
    try {
      const tarballs: Array<string> = []
      for (const p of publishable) {
        const out = await npm(["pack", "--json", "--pack-destination", tmp], p.dir)
        const info = JSON.parse(out) as Array<{ filename: string; files: Array<{ path: string }> }>
        const files = info[0]!.files.map((f) => f.path)
        assert.isTrue(files.includes("dist/index.js"), `${p.name} ships dist/index.js`)
        for (const bin of Object.values((p.json.bin ?? {}) as Record<string, string>)) {
          assert.isTrue(files.includes(path.normalize(bin)), `${p.name} ships its bin ${bin}`)
        }
        assert.isTrue(files.includes("dist/index.d.ts"), `${p.name} ships types`)
        assert.isFalse(files.some((f) => f.startsWith("src/") || f.startsWith("test/")), `${p.name} ships no sources or tests`)
        tarballs.push(path.join(tmp, path.basename(info[0]!.filename)))
      }
      const app = path.join(tmp, "app")
      fs.mkdirSync(app)
      fs.writeFileSync(
        path.join(app, "package.json"),
        JSON.stringify({ name: "consumer", version: "1.0.0", private: true, type: "module" }, null, 2)
      )
      await npm(["install", "--no-package-lock", "--prefer-offline", "--ignore-scripts", ...tarballs], app)

      const specifiers = publishable.flatMap(entryPoints)
      const js = specifiers.map((s, i) => `import * as m${i} from ${JSON.stringify(s)}\nif (Object.keys(m${i}).length === 0) throw new Error(${JSON.stringify(`empty module ${s}`)})`).join("\n")
      fs.writeFileSync(path.join(app, "check.mjs"), `${js}\nconsole.log("imported ${specifiers.length} entry points")\n`)
      const out = await exec(node, ["check.mjs"], app)
      assert.include(out, `imported ${specifiers.length} entry points`)

      // Types: a TypeScript consumer with the strictest module resolution must see every entry.
      fs.writeFileSync(path.join(app, "check.ts"), specifiers.map((s, i) => `import * as m${i} from ${JSON.stringify(s)}\nexport const e${i} = m${i}`).join("\n") + "\n")
      fs.writeFileSync(
        path.join(app, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: { module: "nodenext", moduleResolution: "nodenext", target: "es2023", strict: true, noEmit: true, skipLibCheck: false, types: ["node"], typeRoots: [path.join(workspace, "node_modules/@types")] },
          files: ["check.ts"]
        })
      )
      try {
        await exec(node, [path.join(workspace, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], app)
      } catch (e: any) {
        assert.fail(`type-check of the installed packages failed:\n${e.stdout}`)
      }

      // The gateway's bin (an esbuild bundle whose other packages resolve from node_modules) serves.
      const gatewayBin = path.join(app, "node_modules/.bin/objcrypt-gateway")
      assert.isTrue(fs.existsSync(gatewayBin), "npm linked objcrypt-gateway")
      const port = await new Promise<number>((resolve) => {
        const srv = net.createServer().listen(0, "127.0.0.1", () => {
          const p = (srv.address() as net.AddressInfo).port
          srv.close(() => resolve(p))
        })
      })
      fs.writeFileSync(path.join(app, "gateway.json"), JSON.stringify({
        listen: { host: "127.0.0.1", port },
        backend: { type: "fs", root: path.join(app, "data") },
        users: [{ name: "u", accessKeyId: "AKIAPACKTEST0000001", secretAccessKey: { env: "PACK_SECRET" }, buckets: "*" }],
        keyStore: { path: path.join(app, "keys.ocks"), passphrase: { env: "PACK_SECRET" } },
        accessLog: "off"
      }))
      const gateway = spawn(node, [fs.realpathSync(gatewayBin), "--config", path.join(app, "gateway.json")], {
        cwd: app,
        env: { ...process.env, PACK_SECRET: "pack-test-secret-0123456789" },
        stdio: ["ignore", "ignore", "pipe"]
      })
      let stderr = ""
      gateway.stderr.on("data", (b: Buffer) => (stderr += b.toString()))
      try {
        let healthy = false
        for (let i = 0; i < 300 && !healthy && gateway.exitCode === null; i++) {
          healthy = await fetch(`http://127.0.0.1:${port}/_health`).then((r) => r.ok, () => false)
          if (!healthy) await new Promise((r) => setTimeout(r, 100))
        }
        assert.isTrue(healthy, `the installed objcrypt-gateway serves /_health (stderr: ${stderr})`)
      } finally {
        gateway.kill("SIGTERM")
        await new Promise((r) => gateway.exitCode === null ? gateway.once("exit", r) : r(undefined))
      }
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true })
    }
  })
})
