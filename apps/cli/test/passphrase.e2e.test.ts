/**
 * The interactive key-store passphrase prompt on a pseudo-terminal (util-linux `script`, as the
 * progress-bar test does): answers are typed only once the prompt shows, as a user would, and the
 * whole terminal transcript is checked for echo of what was typed.
 */
import { assert, afterEach, beforeAll, beforeEach, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { spawn, spawnSync } from "node:child_process"
import { BIN, type Home, makeHome, PASSPHRASE } from "./harness.js"

let home: Home
beforeAll(() => {
  assert.strictEqual(spawnSync("script", ["--version"]).status, 0, "util-linux `script` is needed to allocate a pty")
})
beforeEach(() => {
  home = makeHome()
})
afterEach(() => home.cleanup())

const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`

interface Session {
  readonly code: number | null
  /** Everything the terminal showed (stdout and stderr of the command, and any echo). */
  readonly transcript: string
}

/** Runs the bin on a pty and types each answer (followed by Enter) when its prompt appears. */
const onPty = (args: ReadonlyArray<string>, dialogue: ReadonlyArray<readonly [prompt: string, answer: string]>): Promise<Session> =>
  new Promise((resolve, reject) => {
    const cmd = [process.execPath, BIN, ...args].map(sh).join(" ")
    const env: Record<string, string> = { ...home.env }
    delete env.OBJCRYPT_PASSPHRASE
    const child = spawn("script", ["-qec", cmd, "/dev/null"], { cwd: home.dir, env, stdio: ["pipe", "pipe", "pipe"] })
    let transcript = ""
    let step = 0
    let seen = 0
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`no prompt after ${step} answers:\n${transcript}`))
    }, 120_000)
    child.stdout.on("data", (c: Buffer) => {
      transcript += c.toString("utf8")
      while (step < dialogue.length) {
        const [prompt, answer] = dialogue[step]!
        const at = transcript.indexOf(prompt, seen)
        if (at < 0) break
        seen = at + prompt.length
        step++
        child.stdin.write(`${answer}\r`)
      }
    })
    child.stderr.on("data", (c: Buffer) => (transcript += c.toString("utf8")))
    child.on("error", reject)
    child.on("close", (code) => {
      clearTimeout(timer)
      child.stdin.destroy()
      resolve({ code, transcript })
    })
  })

const lines = (s: string) => s.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== "")

describe("passphrase prompt on a pseudo-terminal", () => {
  it("the right passphrase opens the key store; nothing typed is echoed", async () => {
    assert.strictEqual((await home.run(["keys", "generate", "pty-key"])).code, 0)
    const s = await onPty(["keys", "list"], [["Key-store passphrase: ", PASSPHRASE]])
    assert.strictEqual(s.code, 0, s.transcript)
    assert.include(s.transcript, "pty-key")
    assert.notInclude(s.transcript, PASSPHRASE)
    assert.notInclude(s.transcript, "horse")
  }, 180_000)

  it("a wrong passphrase: exit 4, one error line, no echo", async () => {
    assert.strictEqual((await home.run(["keys", "generate", "pty-key"])).code, 0)
    const wrong = "incorrect donkey staple"
    const s = await onPty(["keys", "list"], [["Key-store passphrase: ", wrong]])
    assert.strictEqual(s.code, 4, s.transcript)
    assert.notInclude(s.transcript, wrong)
    assert.notInclude(s.transcript, "donkey")
    const after = lines(s.transcript.slice(s.transcript.indexOf("Key-store passphrase: ") + "Key-store passphrase: ".length))
    assert.strictEqual(after.length, 1, s.transcript)
    assert.match(after[0]!, /^objcrypt: key store: WrongPassphrase/)
    assert.notMatch(s.transcript, /\n\s+at /)
    assert.notInclude(s.transcript, "pty-key")
  }, 180_000)

  it("a new key store asks twice: matching answers create it, differing ones exit 4 and create nothing", async () => {
    const differ = await onPty(["keys", "generate", "first"], [["New key-store passphrase: ", "one secret"], ["Repeat the passphrase: ", "another secret"]])
    assert.strictEqual(differ.code, 4, differ.transcript)
    assert.match(differ.transcript, /objcrypt: no key-store passphrase: the two passphrases differ/)
    assert.notInclude(differ.transcript, "secret")
    const keystore = path.join(home.env.XDG_DATA_HOME!, "objcrypt", "keystore")
    assert.isFalse(fs.existsSync(keystore), "no key store was created")

    const made = await onPty(["keys", "generate", "first"], [["New key-store passphrase: ", "fresh secret"], ["Repeat the passphrase: ", "fresh secret"]])
    assert.strictEqual(made.code, 0, made.transcript)
    assert.notInclude(made.transcript, "secret")
    const listed = await home.run(["keys", "list"], { env: { OBJCRYPT_PASSPHRASE: "fresh secret" } })
    assert.strictEqual(listed.code, 0, listed.stderr)
    assert.include(listed.stdout, "first")
  }, 240_000)
})
