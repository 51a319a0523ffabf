/**
 * `cp --format`: the AWS S3 Encryption Client formats to s3:// (moto_server, S3 + the local KMS)
 * and Azure client-side encryption v2 to az:// (Azurite), written and read by the built bin; reads
 * (`cat`, `cp` down, `inspect`, `ls`) detect the format on their own. The Azure blobs are
 * cross-checked with the official Python SDK from Debian (`python3-azure-storage`) in both
 * directions.
 */
import { assert, afterAll, beforeAll, describe, it } from "@effect/vitest"
import * as Azurite from "@objcrypt/test-kit/Azurite"
import * as MotoServer from "@objcrypt/test-kit/MotoServer"
import * as S3EC from "@objcrypt/core/S3EncryptionClient"
import { Effect, Exit, Redacted, Scope, Stream } from "effect"
import * as cp from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { type Home, makeHome, oneLineError } from "./harness.js"

let scope: Scope.CloseableScope
let moto: MotoServer.MotoServerInfo
let azurite: Azurite.AzuriteInfo
let home: Home

const PY = "/usr/bin/python3"
const PY_SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../packages/driver-azure/test/support/azure_cse.py")
const MARKER = Buffer.from("FORMAT-PLAINTEXT-MARKER")
const S3 = "s3://objcrypt-fmt"
const AZ = "az://objcrypt-fmt"

beforeAll(async () => {
  scope = Effect.runSync(Scope.make())
  ;[moto, azurite] = await Effect.runPromise(Scope.extend(Effect.all([MotoServer.make({ startTimeout: "180 seconds" }), Azurite.make({ startTimeout: "180 seconds" })], { concurrency: 2 }), scope))
  home = makeHome()
  Object.assign(home.env, {
    AWS_ENDPOINT_URL_S3: moto.endpoint,
    AWS_ACCESS_KEY_ID: moto.accessKeyId,
    AWS_SECRET_ACCESS_KEY: moto.secretAccessKey,
    AWS_REGION: moto.region,
    AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString
  })
  for (const args of [["keys", "generate", "k"], ["keys", "generate", "r", "--algorithm", "rsa-oaep-256"], ["keys", "generate", "x", "--algorithm", "x25519"]]) {
    const r = await home.run(args)
    assert.strictEqual(r.code, 0, r.stderr)
  }
  for (const url of [S3, AZ]) {
    const r = await home.run(["bucket", "create", url])
    assert.strictEqual(r.code, 0, r.stderr)
  }
}, 300_000)

afterAll(async () => {
  home?.cleanup()
  if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
})

const data = (n: number) => Buffer.concat([MARKER, crypto.randomBytes(n - MARKER.length)])

interface Listed {
  readonly url: string
  readonly size: number
  readonly storedSize: number
  readonly mode: string
  readonly format?: string
}

const listed = async (url: string): Promise<Array<Listed>> => {
  const r = await home.run(["ls", "-r", url, "--json"])
  assert.strictEqual(r.code, 0, r.stderr)
  return JSON.parse(r.stdout).objects
}

const exportKey = async (name: string, format: "base64" | "pem", extra: Array<string> = []) => {
  const r = await home.run(["keys", "export", name, "--format", format, ...extra])
  assert.strictEqual(r.code, 0, r.stderr)
  return r.stdout.trim()
}

describe("s3:// in the AWS S3 Encryption Client formats (moto_server)", () => {
  const cases = [
    { name: "v3-aes", format: "s3ec-v3", flags: ["--mode", "cse-c", "--key", "k"], mode: "cse-c", version: 3, wrap: "AES/GCM" },
    { name: "v2-aes", format: "s3ec-v2", flags: ["--mode", "cse-c", "--key", "k"], mode: "cse-c", version: 2, wrap: "AES/GCM" },
    { name: "v2-rsa", format: "s3ec-v2", flags: ["--mode", "cse-c", "--key", "r"], mode: "cse-c", version: 2, wrap: "RSA-OAEP-SHA1" },
    { name: "v3-kms", format: "s3ec-v3", flags: ["--mode", "cse-kms", "--kms-key-id", "k", "--context", "team=a"], mode: "cse-kms", version: 3, wrap: "kms+context" }
  ] as const

  for (const c of cases) {
    it(`${c.format} ${c.mode} (${c.wrap}): cp up, ls, inspect, cat, cp back`, async () => {
      const body = data(300_001)
      const file = home.file(`${c.name}.bin`, body)
      const url = `${S3}/${c.name}/obj.bin`
      const up = await home.run(["cp", file, url, "--format", c.format, ...c.flags])
      assert.strictEqual(up.code, 0, up.stderr)

      const ins = await home.run(["inspect", url, "--json"])
      assert.strictEqual(ins.code, 0, ins.stderr)
      const report = JSON.parse(ins.stdout)
      assert.strictEqual(report.mode, c.mode)
      assert.strictEqual(report.clientSide.format, "aws-s3ec")
      assert.strictEqual(report.clientSide.formatVersion, c.version)
      assert.strictEqual(report.clientSide.plaintextSize, body.length)
      assert.strictEqual(report.size, body.length + 16, "stored: plaintext + the GCM tag")
      if (c.mode === "cse-c") assert.strictEqual(report.clientSide.keys[0].type, c.wrap)
      else assert.strictEqual(report.clientSide.context.team, "a")

      const [ls, cat, ranged] = await Promise.all([
        listed(`${S3}/${c.name}/`),
        home.run(["cat", url]),
        home.run(["cat", url, "--range", "1000-1099", "--unauthenticated-range"])
      ])
      assert.deepStrictEqual(ls.map((x) => [x.url, x.size, x.storedSize, x.mode, x.format]), [[url, body.length, body.length + 16, c.mode, "aws-s3ec"]])
      assert.strictEqual(cat.code, 0, cat.stderr)
      assert.isTrue(cat.stdoutBytes.equals(body))
      assert.strictEqual(ranged.code, 0, ranged.stderr)
      assert.isTrue(ranged.stdoutBytes.equals(body.subarray(1000, 1100)))

      const back = await home.run(["cp", url, `${c.name}.back`])
      assert.strictEqual(back.code, 0, back.stderr)
      assert.isTrue(fs.readFileSync(path.join(home.dir, `${c.name}.back`)).equals(body))
    }, 300_000)
  }

  it("an object whose S3EC content metadata is only in KEY.instruction is found by cat, cp and inspect", async () => {
    // Written by core's S3 Encryption Client in this process (the CLI writes metadata envelopes).
    const keys = JSON.parse((await home.run(["keys", "list", "--json"])).stdout) as Array<{ id: string; name: string; primaryVersion: number }>
    const k = keys.find((x) => x.name === "k")!
    const material = Buffer.from(await exportKey("k", "base64"), "base64")
    const body = data(70_000)
    const S3ObjectStore = await import("@objcrypt/driver-s3/S3ObjectStore")
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const store = yield* S3ObjectStore.make({
        bucket: "objcrypt-fmt",
        endpoint: moto.endpoint,
        region: moto.region,
        forcePathStyle: true,
        accessKeyId: moto.accessKeyId,
        secretAccessKey: Redacted.make(moto.secretAccessKey),
        profile: "s3-compatible"
      })
      yield* S3EC.put(store, "instr/obj.bin", Stream.make(body), {
        wrapping: S3EC.aesGcm({
          material: Redacted.make(new Uint8Array(material)),
          description: { [S3EC.KeyStoreDescription.id]: k.id, [S3EC.KeyStoreDescription.version]: String(k.primaryVersion) }
        }),
        commitmentPolicy: "ForbidEncryptAllowDecrypt",
        instructionFile: true,
        contentLength: body.length
      })
    })))
    const [cat, ins] = await Promise.all([home.run(["cat", `${S3}/instr/obj.bin`]), home.run(["inspect", `${S3}/instr/obj.bin`, "--json"])])
    assert.strictEqual(cat.code, 0, cat.stderr)
    assert.isTrue(cat.stdoutBytes.equals(body))
    const report = JSON.parse(ins.stdout)
    assert.strictEqual(report.clientSide.format, "aws-s3ec")
    assert.strictEqual(report.clientSide.envelope, "instruction")
    assert.strictEqual(report.clientSide.formatVersion, 2)
  }, 300_000)

  it("a ranged cat of an S3EC object needs --unauthenticated-range (exit 2)", async () => {
    home.file("rng.txt", "0123456789")
    assert.strictEqual((await home.run(["cp", "rng.txt", `${S3}/rng.txt`, "--mode", "cse-c", "--key", "k", "--format", "s3ec-v3"])).code, 0)
    const r = await home.run(["cat", `${S3}/rng.txt`, "--range", "2-4"])
    assert.strictEqual(r.code, 2)
    assert.match(oneLineError(r), /not authenticated/)
    assert.strictEqual(r.stdout, "")
  })

  it("refuses formats the destination or mode cannot take, before writing anything", async () => {
    home.file("f.txt", "format refusal\n")
    const refusals: Array<[Array<string>, number, RegExp]> = [
      [["cp", "f.txt", `${S3}/no/a.txt`, "--mode", "cse-c", "--key", "k", "--format", "azure-v2"], 6, /az:\/\//],
      [["cp", "f.txt", `${AZ}/no/a.txt`, "--mode", "cse-c", "--key", "k", "--format", "s3ec-v3"], 6, /s3:\/\//],
      [["cp", "f.txt", "local://no/a.txt", "--mode", "cse-c", "--key", "k", "--format", "s3ec-v2"], 6, /s3:\/\//],
      [["cp", "f.txt", `${S3}/no/a.txt`, "--format", "s3ec-v3"], 6, /cse-c or cse-kms, not none/],
      [["cp", "f.txt", `${S3}/no/a.txt`, "--mode", "cse-c", "--key", "k,r", "--format", "s3ec-v3"], 6, /exactly one key/],
      [["cp", "f.txt", `${AZ}/no/a.txt`, "--mode", "cse-kms", "--kms-key-id", "k", "--format", "azure-v2"], 6, /not a KMS/],
      [["cp", "f.txt", `${S3}/no/a.txt`, "--mode", "cse-c", "--key", "x", "--format", "s3ec-v3"], 4, /x25519/],
      [["cp", "f.txt", `${AZ}/no/a.txt`, "--mode", "cse-c", "--key", "x", "--format", "azure-v2"], 4, /x25519/],
      [["cp", `${S3}/rng.txt`, "down.txt", "--format", "s3ec-v3"], 2, /downloads detect/],
      [["cp", "f.txt", `${S3}/no/a.txt`, "--mode", "cse-c", "--key", "k", "--format", "s3ec-v4"], 2, /s3ec-v3/]
    ]
    const results = await Promise.all(refusals.map(([args]) => home.run(args)))
    refusals.forEach(([args, code, message], i) => {
      const r = results[i]!
      assert.strictEqual(r.code, code, `${args.join(" ")}: ${r.stderr}`)
      assert.match(oneLineError(r), message, args.join(" "))
    })
    for (const url of [`${S3}/no/a.txt`, `${AZ}/no/a.txt`, "local://no/a.txt"]) {
      assert.strictEqual((await home.run(["ls", url])).code, 3, url)
    }
  }, 300_000)
})

const python = (action: "write" | "read", request: Record<string, unknown>) => {
  const req = home.file(`py-${crypto.randomBytes(4).toString("hex")}.json`, JSON.stringify(request))
  const r = cp.spawnSync(PY, [PY_SCRIPT, action, req], { encoding: "utf8", timeout: 120_000 })
  assert.strictEqual(r.status, 0, `python ${action}: ${r.stderr}`)
}

describe("az:// in Azure client-side encryption v2 (Azurite)", () => {
  for (const key of ["k", "r"] as const) {
    it(`azure-v2 with ${key === "k" ? "an AES key (A256KW)" : "an RSA key (RSA-OAEP)"}: cp up, ls, inspect, cat, cp back; the Python SDK reads it`, async () => {
      const body = data(4 * 1024 * 1024 + 777)
      const file = home.file(`az-${key}.bin`, body)
      const url = `${AZ}/${key}/obj.bin`
      const up = await home.run(["cp", file, url, "--mode", "cse-c", "--key", key, "--format", "azure-v2"])
      assert.strictEqual(up.code, 0, up.stderr)

      const report = JSON.parse((await home.run(["inspect", url, "--json"])).stdout)
      assert.strictEqual(report.mode, "cse-c")
      assert.strictEqual(report.clientSide.format, "azure-cse")
      assert.strictEqual(report.clientSide.keys[0].type, key === "k" ? "A256KW" : "RSA-OAEP")
      assert.strictEqual(report.clientSide.plaintextSize, body.length)
      assert.strictEqual(report.size, body.length + 2 * 28, "two regions, each with a nonce and a tag")

      const [ls, lsText, cat, ranged] = await Promise.all([
        listed(`${AZ}/${key}/`),
        home.run(["ls", `${AZ}/${key}/`]),
        home.run(["cat", url]),
        home.run(["cat", url, "--range", "-300"])
      ])
      assert.deepStrictEqual(ls.map((x) => [x.size, x.storedSize, x.mode, x.format]), [[body.length, body.length + 56, "cse-c", "azure-cse"]])
      assert.match(lsText.stdout, /\s4\.0 MiB\s+cse-c\s+obj\.bin\n$/)
      assert.isTrue(cat.stdoutBytes.equals(body))
      assert.isTrue(ranged.stdoutBytes.equals(body.subarray(body.length - 300)))
      const back = await home.run(["cp", url, `az-${key}.back`])
      assert.strictEqual(back.code, 0, back.stderr)
      assert.isTrue(fs.readFileSync(path.join(home.dir, `az-${key}.back`)).equals(body))

      // The official SDK decrypts it with the same key under the key id the CLI recorded.
      const keyId = `${report.clientSide.keys[0].keyId}@${report.clientSide.keys[0].version}`
      const kek = key === "k"
        ? { kind: "A256KW", keyId, key: await exportKey("k", "base64") }
        : { kind: "RSA-OAEP", keyId, privatePem: await exportKey("r", "pem", ["--private"]) }
      const out = path.join(home.dir, `py-${key}.out`)
      python("read", { connectionString: azurite.connectionString, container: "objcrypt-fmt", blob: `${key}/obj.bin`, file: out, kek })
      assert.isTrue(fs.readFileSync(out).equals(body), "Python reads the CLI's blob")
    }, 300_000)
  }

  it("cat reads a blob the Python SDK wrote under a key id that names a key-store key", async () => {
    const material = crypto.randomBytes(32)
    const keyFile = home.file("pk.raw", material)
    assert.strictEqual((await home.run(["keys", "import", "pk", "--from", keyFile, "--format", "raw"])).code, 0)
    const body = data(100_000)
    const input = home.file("py.in", body)
    python("write", {
      connectionString: azurite.connectionString,
      container: "objcrypt-fmt",
      blob: "py/blob.bin",
      file: input,
      kek: { kind: "A256KW", keyId: "pk", key: material.toString("base64") },
      metadata: {}
    })
    const cat = await home.run(["cat", `${AZ}/py/blob.bin`])
    assert.strictEqual(cat.code, 0, cat.stderr)
    assert.isTrue(cat.stdoutBytes.equals(body))
    const ls = await listed(`${AZ}/py/`)
    assert.deepStrictEqual(ls.map((x) => [x.size, x.mode]), [[body.length, "cse-c"]])
    // Without that key in the key store the blob cannot be read: exit 5, one line.
    python("write", {
      connectionString: azurite.connectionString,
      container: "objcrypt-fmt",
      blob: "py/other.bin",
      file: input,
      kek: { kind: "A256KW", keyId: "nobody", key: crypto.randomBytes(32).toString("base64") },
      metadata: {}
    })
    const other = await home.run(["cat", `${AZ}/py/other.bin`])
    assert.strictEqual(other.code, 5)
    assert.match(oneLineError(other), /NoUsableKey/)
    assert.strictEqual(other.stdout, "")
  }, 300_000)
})
