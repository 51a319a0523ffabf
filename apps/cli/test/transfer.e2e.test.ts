import { assert, afterEach, beforeEach, describe, it } from "@effect/vitest"
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { BIN, filesBelow, type Home, makeHome } from "./harness.js"

let home: Home
beforeEach(() => {
  home = makeHome()
})
afterEach(() => home.cleanup())

const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`

/** A file of `size` bytes that is cheap to create and to read (sparse). */
const bigFile = (name: string, size: number) => {
  const p = path.join(home.dir, name)
  const fd = fs.openSync(p, "w")
  fs.ftruncateSync(fd, size)
  fs.writeSync(fd, Buffer.from("not all zeros"), 0, 13, size - 13)
  fs.closeSync(fd)
  return p
}

describe("progress", () => {
  it("draws a bar with bytes, rate and ETA on a pseudo-terminal (util-linux script)", async () => {
    assert.strictEqual(spawnSync("script", ["--version"]).status, 0, "util-linux `script` is needed to allocate a pty")
    await home.run(["keys", "generate", "k"])
    bigFile("big.bin", 64 * 1024 * 1024)
    const cmd = [process.execPath, BIN, "cp", "big.bin", "local://big.bin", "--mode", "cse-c", "--key", "k"].map(sh).join(" ")
    const r = spawnSync("script", ["-qec", cmd, "/dev/null"], { cwd: home.dir, env: home.env, encoding: "utf8", timeout: 240_000 })
    assert.strictEqual(r.status, 0, r.stdout + r.stderr)
    const frames = r.stdout.split(/\r|\n/).map((l) => l.split(`${String.fromCharCode(27)}[K`).join("")).filter((l) => l.startsWith("["))
    assert.isAbove(frames.length, 0, r.stdout)
    const last = frames[frames.length - 1]!
    assert.match(last, /^\[#{24}\] 100% 64\.0 MiB\/64\.0 MiB [\d.]+ (B|KiB|MiB|GiB)\/s ETA \d+:\d\d$/)
    assert.isTrue(frames.every((f) => /\[[#-]{24}\]\s+\d+% [\d.]+ (B|KiB|MiB|GiB)\/[\d.]+ (B|KiB|MiB|GiB) [\d.]+ (B|KiB|MiB|GiB)\/s ETA (\d+:\d\d|--:--)/.test(f)))
  })

  it("prints plain lines, and no bar, when stderr is not a terminal", async () => {
    home.file("a.txt", "a")
    const r = await home.run(["cp", "a.txt", "local://a.txt"])
    assert.strictEqual(r.code, 0)
    assert.strictEqual(r.stdout, "upload: a.txt -> local://a.txt (1 B)\n")
    assert.strictEqual(r.stderr, "")
    const q = await home.run(["cp", "a.txt", "local://b.txt", "--quiet"])
    assert.strictEqual(q.stdout + q.stderr, "")
  })
})

describe("interrupted upload", () => {
  for (const signal of ["SIGINT", "SIGTERM", "SIGKILL"] as const) {
    it(`${signal} mid-copy leaves no object and nothing partial listed`, async () => {
      await home.run(["keys", "generate", "k"])
      bigFile("huge.bin", 3 * 1024 * 1024 * 1024)
      const child = spawn(process.execPath, [BIN, "cp", "huge.bin", "local://dir/huge.bin", "--mode", "cse-c", "--key", "k", "--json"], {
        cwd: home.dir,
        env: home.env,
        stdio: ["ignore", "pipe", "pipe"]
      })
      let stdout = ""
      let stderr = ""
      child.stderr.on("data", (c: Buffer) => (stderr += c.toString()))
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.on("close", (code, sig) => resolve({ code, signal: sig }))
      )
      // Wait until bytes are flowing into the store, then interrupt.
      await new Promise<void>((resolve, reject) => {
        child.stdout.on("data", (c: Buffer) => {
          stdout += c.toString()
          const progress = stdout.split("\n").filter((l) => l.includes('"event":"progress"'))
          if (progress.length > 0 && JSON.parse(progress[progress.length - 1]!).bytes > 32 * 1024 * 1024) resolve()
        })
        child.on("close", () => reject(new Error(`finished before it could be interrupted: ${stdout}${stderr}`)))
      })
      child.kill(signal)
      const { code, signal: got } = await exited
      if (signal === "SIGKILL") assert.strictEqual(got, "SIGKILL")
      else {
        assert.strictEqual(code, 130, stderr)
        assert.match(stderr, /objcrypt: interrupted/)
        assert.notMatch(stderr, /\n\s+at /)
      }
      assert.notInclude(stdout, '"event":"done"')
      const ls = await home.run(["ls", "-r", "local://", "--json"])
      assert.strictEqual(ls.code, 0, ls.stderr)
      assert.deepStrictEqual(JSON.parse(ls.stdout).objects, [])
      const dir = await home.run(["ls", "local://dir"])
      assert.strictEqual(dir.code, 3)
      if (signal !== "SIGKILL") {
        // A graceful interrupt runs the store's finalizers: not even a temporary file remains.
        const left = filesBelow(home.storeRoot).filter((f) => fs.statSync(f).size > 1024 * 1024)
        assert.deepStrictEqual(left, [])
      }
    })
  }
})
