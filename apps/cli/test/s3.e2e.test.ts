import { assert, afterAll, beforeAll, describe, it } from "@effect/vitest"
import * as CephRgw from "@objcrypt/test-kit/CephRgw"
import { Effect, Exit, Scope } from "effect"
import { spawn } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import { BIN, type Home, makeHome, oneLineError } from "./harness.js"

// One real Ceph RGW (SSE-C and SSE-KMS really enforced) for the whole file.
let scope: Scope.CloseableScope
let rgw: CephRgw.CephRgwInfo
let home: Home

beforeAll(async () => {
  scope = Effect.runSync(Scope.make())
  rgw = await Effect.runPromise(Scope.extend(CephRgw.make(), scope))
  home = makeHome()
  Object.assign(home.env, {
    RGW_KEY_ID: rgw.accessKeyId,
    RGW_SECRET: rgw.secretAccessKey,
    OBJCRYPT_CONFIG: home.file("rgw.json", JSON.stringify({
      version: 1,
      endpoints: {
        rgw: {
          type: "s3",
          bucket: "objcrypt-cli",
          endpoint: rgw.endpoint,
          region: rgw.region,
          pathStyle: true,
          profile: "ceph-rgw",
          credentials: { accessKeyIdEnv: "RGW_KEY_ID", secretAccessKeyEnv: "RGW_SECRET" }
        }
      }
    }))
  })
  const created = await home.run(["bucket", "create", "s3://objcrypt-cli"])
  assert.strictEqual(created.code, 0, created.stderr)
  // Plain-http SSE-C/SSE-KMS are only allowed on what a probe of this bucket saw.
  const probed = await home.run(["matrix", "--probe", "rgw:", "--kms-key-id", rgw.kmsKeyIds[0]!, "--json"])
  assert.strictEqual(probed.code, 0, probed.stderr)
  const { probe } = JSON.parse(probed.stdout)
  assert.deepStrictEqual(probe.facts.modes, { SseS3: "ignored", SseKms: "accepted", SseC: "enforced" })
  const config = JSON.parse(fs.readFileSync(home.env.OBJCRYPT_CONFIG!, "utf8"))
  config.endpoints.rgw.facts = probe.facts
  fs.writeFileSync(home.env.OBJCRYPT_CONFIG!, JSON.stringify(config))
  assert.strictEqual((await home.run(["keys", "generate", "k"])).code, 0)
  assert.strictEqual((await home.run(["keys", "generate", "ck", "--purpose", "sse-c"])).code, 0)
}, 300_000)

afterAll(async () => {
  home?.cleanup()
  if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
})

const ciphertextInRados = async (needle: Buffer) => {
  const names = await Effect.runPromise(rgw.radosList())
  for (const n of names) {
    const bytes = await Effect.runPromise(rgw.radosGet(n))
    if (bytes.includes(needle)) return true
  }
  return false
}

describe("s3:// against Ceph RGW", () => {
  it("cse-c: copies up and back; RADOS holds only ciphertext", async () => {
    const data = Buffer.concat([Buffer.from("RGW-CSE-PLAINTEXT-MARKER"), crypto.randomBytes(6 * 1024 * 1024)])
    home.file("c.bin", data)
    const up = await home.run(["cp", "c.bin", "s3://objcrypt-cli/cse/c.bin", "--mode", "cse-c", "--key", "k"])
    assert.strictEqual(up.code, 0, up.stderr)
    const back = await home.run(["cat", "rgw:cse/c.bin"])
    assert.strictEqual(back.code, 0, back.stderr)
    assert.isTrue(back.stdoutBytes.equals(data))
    assert.isFalse(await ciphertextInRados(Buffer.from("RGW-CSE-PLAINTEXT-MARKER")))
    const ins = JSON.parse((await home.run(["inspect", "rgw:cse/c.bin", "--json"])).stdout)
    assert.strictEqual(ins.mode, "cse-c")
    assert.strictEqual(ins.url, "rgw:cse/c.bin")
  })

  it("sse-c: the server needs the key; inspect and cat work with --key", async () => {
    home.file("s.txt", "server side with a customer key\n")
    const up = await home.run(["cp", "s.txt", "rgw:ssec/s.txt", "--mode", "sse-c", "--key", "ck"])
    assert.strictEqual(up.code, 0, up.stderr)
    const without = await home.run(["cat", "rgw:ssec/s.txt"])
    assert.notStrictEqual(without.code, 0)
    oneLineError(without)
    const ins = await home.run(["inspect", "rgw:ssec/s.txt", "--key", "ck", "--json"])
    assert.strictEqual(ins.code, 0, ins.stderr)
    assert.strictEqual(JSON.parse(ins.stdout).serverSide.mode, "sse-c")
    const cat = await home.run(["cat", "rgw:ssec/s.txt", "--key", "ck"])
    assert.strictEqual(cat.stdout, "server side with a customer key\n")
  })

  it("sse-kms: stored under the KMS key named", async () => {
    home.file("k.txt", "kms\n")
    const keyId = rgw.kmsKeyIds[0]!
    const up = await home.run(["cp", "k.txt", "rgw:kms/k.txt", "--mode", "sse-kms", "--kms-key-id", keyId])
    assert.strictEqual(up.code, 0, up.stderr)
    const ins = JSON.parse((await home.run(["inspect", "rgw:kms/k.txt", "--json"])).stdout)
    assert.strictEqual(ins.mode, "sse-kms")
    assert.strictEqual(ins.serverSide.kmsKeyId, keyId)
    assert.strictEqual((await home.run(["cat", "rgw:kms/k.txt"])).stdout, "kms\n")
  })

  it("sse-s3, which RGW ignores, is refused before upload (exit 6)", async () => {
    home.file("x.txt", "x")
    const r = await home.run(["cp", "x.txt", "rgw:x.txt", "--mode", "sse-s3"])
    assert.strictEqual(r.code, 6)
    assert.match(oneLineError(r), /ceph-rgw/)
    assert.strictEqual((await home.run(["ls", "rgw:x.txt"])).code, 3)
  })

  it("audit over the bucket reports every mode", async () => {
    const r = await home.run(["audit", "rgw:", "--json"])
    assert.strictEqual(r.code, 0, r.stderr)
    const report = JSON.parse(r.stdout)
    assert.isAtLeast(report.byMode["cse-c"], 1)
    assert.isAtLeast(report.byMode["sse-kms"], 1)
  })

  it("SIGINT mid-upload leaves no object and no multipart upload", async () => {
    const big = home.file("big.bin", crypto.randomBytes(256 * 1024 * 1024))
    const child = spawn(process.execPath, [BIN, "cp", big, "rgw:int/big.bin", "--mode", "cse-c", "--key", "k", "--json", "--part-size", "8MiB"], {
      cwd: home.dir,
      env: home.env,
      stdio: ["ignore", "pipe", "pipe"]
    })
    let out = ""
    let err = ""
    child.stderr.on("data", (c: Buffer) => (err += c.toString()))
    const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)))
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (c: Buffer) => {
        out += c.toString()
        const p = out.split("\n").filter((l) => l.includes('"event":"progress"'))
        if (p.length > 0 && JSON.parse(p[p.length - 1]!).bytes > 24 * 1024 * 1024) resolve()
      })
      child.on("close", () => reject(new Error(`finished before the interrupt: ${out}${err}`)))
    })
    child.kill("SIGINT")
    assert.strictEqual(await exited, 130, err)
    assert.strictEqual((await home.run(["ls", "rgw:int/big.bin"])).code, 3)
    // In-progress multipart uploads show in the bucket index's multipart namespace.
    const index = await Effect.runPromise(rgw.admin(["bucket", "list", "--bucket=objcrypt-cli"]))
    assert.notInclude(index, "int/big.bin")
    fs.rmSync(big)
  })
})
