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
      const store = yield* S3ObjectStore.make({ bucket: "objcrypt-fmt", ...MotoServer.s3Settings(moto), profile: "s3-compatible" })
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

describe("rekey of S3EC and Azure v2 objects", () => {
  const inspect = async (url: string) => {
    const r = await home.run(["inspect", url, "--json"])
    assert.strictEqual(r.code, 0, r.stderr)
    return JSON.parse(r.stdout)
  }
  const keyIds = async () =>
    new Map((JSON.parse((await home.run(["keys", "list", "--json"])).stdout) as Array<{ id: string; name: string }>).map((k) => [k.name, k.id]))

  it("s3ec-v2/v3 (metadata and instruction file, AES, RSA, kms+context): dry run, rekey keeps the version, the old key is no longer needed", async () => {
    for (const [name, alg] of [["old-a", "aes-256"], ["old-r", "rsa-oaep-256"], ["new-a", "aes-256"], ["new-r", "rsa-oaep-256"]]) {
      const r = await home.run(["keys", "generate", name!, "--algorithm", alg!])
      assert.strictEqual(r.code, 0, r.stderr)
    }
    const ids = await keyIds()
    const bodies = new Map<string, Buffer>()
    const objects = [
      ["v3-aes", ["--format", "s3ec-v3", "--mode", "cse-c", "--key", "old-a"]],
      ["v2-rsa", ["--format", "s3ec-v2", "--mode", "cse-c", "--key", "old-r"]],
      ["v3-kms", ["--format", "s3ec-v3", "--mode", "cse-kms", "--kms-key-id", "old-a", "--context", "team=b"]],
      ["keep", ["--format", "s3ec-v3", "--mode", "cse-c", "--key", "old-a"]]
    ] as const
    for (const [name, flags] of objects) {
      const body = data(50_000)
      bodies.set(name, body)
      const up = await home.run(["cp", home.file(`rk-${name}.bin`, body), `${S3}/rk/${name}`, ...flags])
      assert.strictEqual(up.code, 0, up.stderr)
    }
    // A V3 object whose content metadata is in KEY.instruction, written by core in this process.
    const material = Buffer.from(await exportKey("old-a", "base64"), "base64")
    const instrBody = data(30_000)
    bodies.set("v3-instr", instrBody)
    const S3ObjectStore = await import("@objcrypt/driver-s3/S3ObjectStore")
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const store = yield* S3ObjectStore.make({ bucket: "objcrypt-fmt", ...MotoServer.s3Settings(moto), profile: "s3-compatible" })
      yield* S3EC.put(store, "rk/v3-instr", Stream.make(instrBody), {
        wrapping: S3EC.aesGcm({
          material: Redacted.make(new Uint8Array(material)),
          description: { [S3EC.KeyStoreDescription.id]: ids.get("old-a")!, [S3EC.KeyStoreDescription.version]: "1" }
        }),
        instructionFile: true
      })
    })))
    const before = new Map(await Promise.all([...bodies.keys()].map(async (n) => [n, await inspect(`${S3}/rk/${n}`)] as const)))

    const targets = [`${S3}/rk/v3-aes`, `${S3}/rk/v2-rsa`, `${S3}/rk/v3-kms`, `${S3}/rk/v3-instr`]
    const dry = await home.run(["rekey", ...targets, "--to", "new-r", "--dry-run", "--json"])
    assert.strictEqual(dry.code, 0, dry.stderr)
    const planned = JSON.parse(dry.stdout)
    assert.strictEqual(planned.dryRun, true)
    assert.deepStrictEqual(
      planned.objects.map((x: { status: string; format: string; envelope: string; wrap: { from: string; to: string } }) => [x.status, x.format, x.envelope, x.wrap.from, x.wrap.to]),
      [
        ["would-rekey", "s3ec-v3", "metadata", "AES/GCM", "RSA-OAEP-SHA1"],
        ["would-rekey", "s3ec-v2", "metadata", "RSA-OAEP-SHA1", "RSA-OAEP-SHA1"],
        ["would-rekey", "s3ec-v3", "metadata", "kms+context", "RSA-OAEP-SHA1"],
        ["would-rekey", "s3ec-v3", "instruction", "AES/GCM", "RSA-OAEP-SHA1"]
      ]
    )
    const dryText = await home.run(["rekey", `${S3}/rk/v2-rsa`, "--to", "new-r", "--dry-run"])
    assert.match(dryText.stdout, /^\(dry run\) would rekey s3:\/\/objcrypt-fmt\/rk\/v2-rsa -> new-r@1 \(s3ec-v2\)\n$/)
    for (const [n, report] of before) assert.deepStrictEqual((await inspect(`${S3}/rk/${n}`)).clientSide.keys, report.clientSide.keys, `dry run left ${n}`)

    // Several keys, or an x25519 key, cannot wrap an S3EC data key: refused before anything changes.
    const several = await home.run(["rekey", ...targets, "--to", "new-a,new-r"])
    assert.strictEqual(several.code, 6)
    assert.match(oneLineError(several), /exactly one key/)
    const x = await home.run(["rekey", `${S3}/rk/v3-aes`, "--to", "x"])
    assert.strictEqual(x.code, 4)
    assert.match(oneLineError(x), /x25519/)

    const r = await home.run(["rekey", ...targets, "--to", "new-r", "--json"])
    assert.strictEqual(r.code, 0, r.stderr)
    assert.deepStrictEqual(JSON.parse(r.stdout).objects.map((o: { status: string }) => o.status), ["rekeyed", "rekeyed", "rekeyed", "rekeyed"])
    for (const n of ["v3-aes", "v2-rsa", "v3-kms", "v3-instr"]) {
      const report = await inspect(`${S3}/rk/${n}`)
      const was = before.get(n)!
      assert.strictEqual(report.mode, "cse-c", n)
      assert.strictEqual(report.clientSide.formatVersion, was.clientSide.formatVersion, `${n} keeps its version`)
      assert.strictEqual(report.clientSide.envelope, was.clientSide.envelope, n)
      assert.strictEqual(report.etag, was.etag, `${n}: the body is not rewritten`)
      assert.deepStrictEqual(report.clientSide.keys.map((k: { type: string; keyId: string; version: number }) => [k.type, k.keyId, k.version]), [["RSA-OAEP-SHA1", ids.get("new-r"), 1]])
    }
    const again = await home.run(["rekey", `${S3}/rk/v3-aes`, "--to", "new-r"])
    assert.match(again.stdout, /^up to date s3:\/\/objcrypt-fmt\/rk\/v3-aes \(s3ec-v3\)\n$/)

    // The old keys are no longer needed (the object left under old-a shows that they were).
    for (const k of ["old-a", "old-r"]) assert.strictEqual((await home.run(["keys", "disable", k])).code, 0)
    for (const n of ["v3-aes", "v2-rsa", "v3-kms", "v3-instr"]) {
      const cat = await home.run(["cat", `${S3}/rk/${n}`])
      assert.strictEqual(cat.code, 0, `${n}: ${cat.stderr}`)
      assert.isTrue(cat.stdoutBytes.equals(bodies.get(n)!), n)
    }
    const kept = await home.run(["cat", `${S3}/rk/keep`])
    assert.notStrictEqual(kept.code, 0)
    assert.strictEqual(kept.stdout, "")
    // ...and the current key must open the data key: rekeying it now fails, leaving it as it was.
    const stuck = await home.run(["rekey", `${S3}/rk/keep`, "--to", "new-a"])
    assert.strictEqual(stuck.code, 5, stuck.stderr)
    assert.match(oneLineError(stuck), /NoUsableKey/)
    assert.deepStrictEqual((await inspect(`${S3}/rk/keep`)).clientSide.keys, before.get("keep")!.clientSide.keys)
  }, 300_000)

  it("azure-v2: dry run, rekey rewrites only encryptiondata, the Python SDK reads it with the new key; a blob whose key is unknown is left as it was", async () => {
    for (const [name, alg] of [["az-old", "aes-256"], ["az-new", "rsa-oaep-256"]]) {
      const r = await home.run(["keys", "generate", name!, "--algorithm", alg!])
      assert.strictEqual(r.code, 0, r.stderr)
    }
    const ids = await keyIds()
    const body = data(4 * 1024 * 1024 + 99)
    const url = `${AZ}/rk/blob.bin`
    const up = await home.run(["cp", home.file("rk-az.bin", body), url, "--mode", "cse-c", "--key", "az-old", "--format", "azure-v2"])
    assert.strictEqual(up.code, 0, up.stderr)
    const was = await inspect(url)

    const dry = await home.run(["rekey", url, "--to", "az-new", "--dry-run", "--json"])
    assert.strictEqual(dry.code, 0, dry.stderr)
    assert.deepStrictEqual(JSON.parse(dry.stdout).objects, [{
      url,
      status: "would-rekey",
      format: "azure-v2",
      envelope: "metadata",
      from: [`${ids.get("az-old")}@1`],
      wrap: { from: "A256KW", to: "RSA-OAEP" }
    }])
    assert.deepStrictEqual((await inspect(url)).clientSide.keys, was.clientSide.keys)

    const r = await home.run(["rekey", url, "--to", "az-new"])
    assert.strictEqual(r.code, 0, r.stderr)
    assert.strictEqual(r.stdout, `rekeyed ${url} -> az-new@1 (azure-v2, A256KW -> RSA-OAEP)\n`)
    const now = await inspect(url)
    assert.deepStrictEqual(now.clientSide.keys.map((k: { type: string; keyId: string }) => [k.type, k.keyId]), [["RSA-OAEP", ids.get("az-new")]])
    assert.strictEqual(now.size, was.size)
    assert.strictEqual((await home.run(["keys", "disable", "az-old"])).code, 0)
    const cat = await home.run(["cat", url])
    assert.strictEqual(cat.code, 0, cat.stderr)
    assert.isTrue(cat.stdoutBytes.equals(body))
    const out = path.join(home.dir, "py-rekeyed.out")
    python("read", {
      connectionString: azurite.connectionString,
      container: "objcrypt-fmt",
      blob: "rk/blob.bin",
      file: out,
      kek: { kind: "RSA-OAEP", keyId: `${ids.get("az-new")}@1`, privatePem: await exportKey("az-new", "pem", ["--private"]) }
    })
    assert.isTrue(fs.readFileSync(out).equals(body), "Python reads the rewrapped blob with the new key")

    // A blob wrapped under a key the key store does not hold: exit 5, one line, unchanged.
    python("write", {
      connectionString: azurite.connectionString,
      container: "objcrypt-fmt",
      blob: "rk/foreign.bin",
      file: home.file("rk-foreign.in", data(10_000)),
      kek: { kind: "A256KW", keyId: "stranger", key: crypto.randomBytes(32).toString("base64") },
      metadata: {}
    })
    const foreign = await inspect(`${AZ}/rk/foreign.bin`)
    const refused = await home.run(["rekey", `${AZ}/rk/foreign.bin`, "--to", "az-new"])
    assert.strictEqual(refused.code, 5)
    assert.match(oneLineError(refused), /NoUsableKey/)
    const after = await inspect(`${AZ}/rk/foreign.bin`)
    assert.deepStrictEqual([after.etag, after.clientSide.keys], [foreign.etag, foreign.clientSide.keys])
  }, 300_000)
})

describe("a default --format per endpoint", () => {
  const config = (endpoints: Record<string, unknown>) => home.file(`cfg-${crypto.randomBytes(4).toString("hex")}.json`, JSON.stringify({ version: 1, endpoints }))
  const s3Endpoint = (extra: Record<string, unknown>) => ({
    type: "s3",
    bucket: "objcrypt-fmt",
    endpoint: moto.endpoint,
    region: moto.region,
    pathStyle: true,
    credentials: { accessKeyIdEnv: "AWS_ACCESS_KEY_ID", secretAccessKeyEnv: "AWS_SECRET_ACCESS_KEY" },
    ...extra
  })
  const azEndpoint = (extra: Record<string, unknown>) => ({
    type: "azure",
    container: "objcrypt-fmt",
    credentials: { connectionStringEnv: "AZURE_STORAGE_CONNECTION_STRING" },
    ...extra
  })
  const formatOf = async (cfg: string, url: string) => {
    const r = await home.run(["inspect", url, "--json", "--config", cfg])
    assert.strictEqual(r.code, 0, r.stderr)
    const report = JSON.parse(r.stdout)
    return report.clientSide === undefined ? report.mode : `${report.clientSide.format} v${report.clientSide.formatVersion}`
  }

  it("cp writes the endpoint's format for client-side modes; --format overrides it; server-side modes ignore it", async () => {
    const cfg = config({
      aws: s3Endpoint({ prefix: "deffmt/", format: "s3ec-v2", encryption: { mode: "cse-c", key: "k" } }),
      blob: azEndpoint({ prefix: "deffmt/", format: "azure-v2" })
    })
    const file = home.file("deffmt.txt", data(5000))
    const runs: Array<[Array<string>, string, string]> = [
      [["cp", file, "aws:a", "--config", cfg], "aws:a", "aws-s3ec v2"],
      [["cp", file, "aws:b", "--format", "s3ec-v3", "--config", cfg], "aws:b", "aws-s3ec v3"],
      [["cp", file, "aws:c", "--format", "native", "--config", cfg], "aws:c", "objcrypt-native v1"],
      [["cp", file, "aws:d", "--mode", "none", "--config", cfg], "aws:d", "none"],
      [["cp", file, "blob:e", "--mode", "cse-c", "--key", "r", "--config", cfg], "blob:e", "azure-cse v2"],
      // Azure reports every blob encrypted at rest (sse-s3); no client-side format.
      [["cp", file, "blob:f", "--config", cfg], "blob:f", "sse-s3"],
      // s3://BUCKET names the configured endpoint too (without its prefix).
      [["cp", file, `${S3}/deffmt/g`, "--config", cfg], `${S3}/deffmt/g`, "aws-s3ec v2"]
    ]
    for (const [args, url, expected] of runs) {
      const r = await home.run(args)
      assert.strictEqual(r.code, 0, `${args.join(" ")}: ${r.stderr}`)
      assert.strictEqual(await formatOf(cfg, url), expected, args.join(" "))
    }
    const cat = await home.run(["cat", "aws:a", "--config", cfg])
    assert.isTrue(cat.stdoutBytes.equals(fs.readFileSync(file)))

    // A mode the endpoint's format cannot take is refused before anything is written, naming the default.
    const kms = await home.run(["cp", file, "blob:h", "--mode", "cse-kms", "--kms-key-id", "k", "--config", cfg])
    assert.strictEqual(kms.code, 6)
    assert.match(oneLineError(kms), /format azure-v2: .*not a KMS.*endpoint's default format; override it with --format/)
    assert.strictEqual((await home.run(["ls", "blob:h", "--config", cfg])).code, 3)
    const native = await home.run(["cp", file, "blob:h", "--mode", "cse-kms", "--kms-key-id", "k", "--format", "native", "--config", cfg])
    assert.strictEqual(native.code, 0, native.stderr)
  }, 300_000)

  it("the configuration is validated: a format the endpoint's provider or default mode cannot take is one line, exit 8", async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ v: { type: "fs", root: `${home.dir}/v`, format: "s3ec-v3" } }, /endpoint v: format s3ec-v3: .*only to s3:\/\//],
      [{ g: { type: "gcs", bucket: "b", format: "azure-v2" } }, /endpoint g: format azure-v2: .*only to az:\/\//],
      [{ a: azEndpoint({ format: "s3ec-v2" }) }, /endpoint a: format s3ec-v2: .*only to s3:\/\//],
      [{ s: s3Endpoint({ format: "azure-v2" }) }, /endpoint s: format azure-v2: .*only to az:\/\//],
      [{ a: azEndpoint({ format: "azure-v2", encryption: { mode: "cse-kms", kmsKeyId: "k" } }) }, /endpoint a: format azure-v2: .*not a KMS/],
      [{ s: s3Endpoint({ format: "s3ec-v3", encryption: { mode: "cse-c", key: "k,r" } }) }, /endpoint s: format s3ec-v3: .*exactly one key/],
      [{ s: s3Endpoint({ format: "s3ec-v4" }) }, /endpoints\.s\.format|format/]
    ]
    for (const [endpoints, pattern] of cases) {
      const r = await home.run(["ls", "local://", "--config", config(endpoints)])
      assert.strictEqual(r.code, 8, `${JSON.stringify(endpoints)}: ${r.stderr}`)
      assert.match(oneLineError(r), pattern)
    }
    // Valid: native anywhere, s3ec with a server-side default mode (it applies to client-side writes).
    const ok = await home.run(["ls", "local://", "--config", config({
      v: { type: "fs", root: `${home.dir}/v`, format: "native" },
      s: s3Endpoint({ format: "s3ec-v3", encryption: { mode: "sse-s3" } })
    })])
    assert.notStrictEqual(ok.code, 8, ok.stderr)
  }, 120_000)
})
