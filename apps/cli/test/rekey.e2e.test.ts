/**
 * `rekey` run through the built bin: KMS targets (`--kms-key-id`) with the local KMS of the key
 * store and with AWS KMS on moto_server (native format, S3EC V2/V3 on moto's S3, Azure v2 on
 * Azurite refused), and per-object outcomes over many objects: damaged envelopes, an object
 * changed and one deleted between examination and rewrite (held there by a gate in front of
 * moto's KMS), the summary line, `--json`, `--dry-run` and the exit codes.
 */
import { assert, afterAll, beforeAll, describe, it } from "@effect/vitest"
import * as ClientSide from "@objcrypt/core/ClientSide"
import * as Keyring from "@objcrypt/core/Keyring"
import * as FsObjectStore from "@objcrypt/driver-fs/FsObjectStore"
import * as Azurite from "@objcrypt/test-kit/Azurite"
import * as MotoServer from "@objcrypt/test-kit/MotoServer"
import { Effect, Exit, Scope, Stream } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import { filesBelow, type Home, makeHome, oneLineError, type Result } from "./harness.js"

let scope: Scope.CloseableScope
let moto: MotoServer.MotoServerInfo
let azurite: Azurite.AzuriteInfo
let home: Home
let gate: Gate
/** AWS KMS keys on moto: K1 wraps the objects first, K2 is the rekey target. */
let K1: string
let K2: string

const MARKER = Buffer.from("REKEY-PLAINTEXT-MARKER")
const S3 = "s3://objcrypt-rk"
const AZ = "az://objcrypt-rk"

const data = (n: number) => Buffer.concat([MARKER, crypto.randomBytes(n - MARKER.length)])

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

/** One call of moto's KMS JSON API (moto does not check request signatures). */
const kmsCall = async (target: string, body: unknown): Promise<Record<string, unknown>> => {
  const res = await fetch(moto.endpoint, {
    method: "POST",
    headers: {
      "content-type": "application/x-amz-json-1.1",
      "x-amz-target": `TrentService.${target}`,
      authorization: `AWS4-HMAC-SHA256 Credential=${moto.accessKeyId}/20260101/${moto.region}/kms/aws4_request, SignedHeaders=host, Signature=0`
    },
    body: JSON.stringify(body)
  })
  const text = await res.text()
  assert.strictEqual(res.status, 200, text)
  return JSON.parse(text)
}

const createKey = async (): Promise<string> =>
  ((await kmsCall("CreateKey", { Description: "objcrypt rekey e2e" })).KeyMetadata as { Arn: string }).Arn

/**
 * A forwarding proxy on 127.0.0.1 in front of moto that can hold the next request of one KMS
 * operation until released: the rekey under test then waits between examining its objects and
 * rewriting the first one, while the test changes the others.
 */
interface Gate {
  readonly endpoint: string
  /** Holds the next request whose `x-amz-target` is `TrentService.<operation>`; resolves once it is held. */
  readonly hold: (operation: string) => Promise<void>
  readonly release: () => void
  readonly close: () => Promise<void>
}

const gateIn = async (target: string): Promise<Gate> => {
  const upstream = new URL(target)
  let armed: { readonly target: string; readonly onHeld: () => void } | undefined
  const held: Array<() => void> = []
  const server = http.createServer((req, res) => {
    const forward = () => {
      const out = http.request(
        { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers)
          up.pipe(res)
        }
      )
      out.on("error", () => res.destroy())
      req.pipe(out)
    }
    if (armed !== undefined && req.headers["x-amz-target"] === armed.target) {
      const { onHeld } = armed
      armed = undefined
      held.push(forward)
      onHeld()
      return
    }
    forward()
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    endpoint: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    hold: (operation) => new Promise<void>((resolve) => (armed = { target: `TrentService.${operation}`, onHeld: resolve })),
    release: () => held.splice(0).forEach((f) => f()),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}

const awsKms = (endpoint: string) => ({
  type: "aws",
  endpoint,
  region: moto.region,
  credentials: { accessKeyIdEnv: "KMS_TEST_ID", secretAccessKeyEnv: "KMS_TEST_SECRET" }
})

const writeConfig = (config: unknown) => home.file("config/objcrypt/config.json", JSON.stringify(config))

const ok = (r: Result, what: string) => assert.strictEqual(r.code, 0, `${what}: ${r.stderr}`)

const inspect = async (url: string) => {
  const r = await home.run(["inspect", url, "--json"])
  ok(r, `inspect ${url}`)
  return JSON.parse(r.stdout)
}

const keyIds = async () =>
  new Map((JSON.parse((await home.run(["keys", "list", "--json"])).stdout) as Array<{ id: string; name: string }>).map((k) => [k.name, k.id]))

const generate = async (...specs: Array<readonly [string, string?]>) => {
  for (const [name, alg] of specs) ok(await home.run(["keys", "generate", name, ...(alg === undefined ? [] : ["--algorithm", alg])]), name)
}

const upload = async (url: string, body: Buffer, flags: ReadonlyArray<string>) => {
  const input = home.file(`in/${crypto.randomBytes(6).toString("hex")}`, body)
  ok(await home.run(["cp", input, url, ...flags]), `cp ${url}`)
}

const catIs = async (url: string, body: Buffer) => {
  const r = await home.run(["cat", url])
  ok(r, `cat ${url}`)
  assert.isTrue(r.stdoutBytes.equals(body), `${url} reads back`)
}

const wrapped = (report: { clientSide: { keys: Array<{ type: string; keyId: string; version: number }> } }) =>
  report.clientSide.keys.map((k) => [k.type, k.keyId, k.version]).sort()

/** The local store's file of an object (driver-fs: preamble, JSON header, body). */
const objectFile = (key: string): string => {
  for (const file of filesBelow(home.storeRoot)) {
    const b = fs.readFileSync(file)
    if (b.subarray(0, 4).toString("latin1") !== "OCFS") continue
    const n = b.readUInt32BE(8)
    if ((JSON.parse(b.subarray(12, 12 + n).toString("utf8")) as { key: string }).key === key) return file
  }
  throw new Error(`no object file for ${key}`)
}

/** Rewrites an object's metadata in place (its etag unchanged), as damage or tampering would. */
const tamper = (key: string, change: (metadata: Record<string, string>) => void) => {
  const file = objectFile(key)
  const b = fs.readFileSync(file)
  const n = b.readUInt32BE(8)
  const header = JSON.parse(b.subarray(12, 12 + n).toString("utf8")) as { metadata: Record<string, string> }
  change(header.metadata)
  const json = Buffer.from(JSON.stringify(header))
  assert.isAtMost(json.length, n)
  Buffer.concat([json, Buffer.alloc(n - json.length, 0x20)]).copy(b, 12)
  fs.writeFileSync(file, b)
}

/** Flips one base64url character near the end of a value. */
const flip = (v: string) => {
  const i = v.length - 6
  return v.slice(0, i) + (v[i] === "A" ? "B" : "A") + v.slice(i + 1)
}

// ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  scope = Effect.runSync(Scope.make())
  ;[moto, azurite] = await Effect.runPromise(
    Scope.extend(Effect.all([MotoServer.make({ startTimeout: "180 seconds" }), Azurite.make({ startTimeout: "180 seconds" })], { concurrency: 2 }), scope)
  )
  gate = await gateIn(moto.endpoint)
  K1 = await createKey()
  K2 = await createKey()
  home = makeHome()
  Object.assign(home.env, {
    KMS_TEST_ID: moto.accessKeyId,
    KMS_TEST_SECRET: moto.secretAccessKey,
    AWS_ENDPOINT_URL_S3: moto.endpoint,
    AWS_ACCESS_KEY_ID: moto.accessKeyId,
    AWS_SECRET_ACCESS_KEY: moto.secretAccessKey,
    AWS_REGION: moto.region,
    AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString
  })
  for (const url of [S3, AZ]) ok(await home.run(["bucket", "create", url]), url)
}, 300_000)

afterAll(async () => {
  await gate?.close()
  home?.cleanup()
  if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
})

describe("rekey --kms-key-id with the local KMS (native format)", () => {
  it("dry run changes nothing; cse-c and cse-kms objects move to the KMS key (cse-c becomes cse-kms); --to with --kms-key-id keeps both; a rerun is up to date", async () => {
    writeConfig({})
    await generate(["l-k"], ["l-w1"], ["l-w2"], ["l-k2"])
    const ids = await keyIds()
    const a = data(70_000)
    const b = data(3_000_000)
    await upload("local://l/a.bin", a, ["--mode", "cse-c", "--key", "l-k"])
    await upload("local://l/b.bin", b, ["--mode", "cse-kms", "--kms-key-id", "l-w1"])
    const before = [await inspect("local://l/a.bin"), await inspect("local://l/b.bin")]

    const dry = await home.run(["rekey", "-r", "local://l", "--kms-key-id", "l-w2", "--dry-run", "--json"])
    ok(dry, "dry run")
    const planned = JSON.parse(dry.stdout)
    assert.deepStrictEqual(planned.to, ["kms:l-w2"])
    assert.deepStrictEqual(planned.objects.map((o: { url: string; status: string }) => [o.url, o.status]), [
      ["local://l/a.bin", "would-rekey"],
      ["local://l/b.bin", "would-rekey"]
    ])
    assert.deepStrictEqual(planned.summary, { rekeyed: 0, wouldRekey: 2, upToDate: 0, skipped: 0, failed: 0 })
    const dryText = await home.run(["rekey", "-r", "local://l", "--kms-key-id", "l-w2", "--dry-run"])
    assert.strictEqual(
      dryText.stdout,
      "(dry run) would rekey local://l/a.bin -> kms:l-w2 (native)\n(dry run) would rekey local://l/b.bin -> kms:l-w2 (native)\n(dry run) would rekey 2, up to date 0, skipped 0, failed 0\n"
    )
    for (const [i, url] of ["local://l/a.bin", "local://l/b.bin"].entries()) {
      const now = await inspect(url)
      assert.deepStrictEqual([now.etag, now.clientSide.keys], [before[i].etag, before[i].clientSide.keys], `dry run left ${url}`)
    }

    const r = await home.run(["rekey", "-r", "local://l", "--kms-key-id", "l-w2"])
    ok(r, "rekey")
    assert.strictEqual(
      r.stdout,
      "rekeyed local://l/a.bin -> kms:l-w2 (native)\nrekeyed local://l/b.bin -> kms:l-w2 (native)\nrekeyed 2, up to date 0, skipped 0, failed 0\n"
    )
    for (const url of ["local://l/a.bin", "local://l/b.bin"]) {
      const report = await inspect(url)
      assert.strictEqual(report.mode, "cse-kms", url)
      assert.deepStrictEqual(wrapped(report), [["kms", `${ids.get("l-w2")}@1`, 0]], url)
      assert.strictEqual(report.clientSide.keys[0].kms, "local")
    }
    // The old keys are no longer needed.
    for (const k of ["l-k", "l-w1"]) ok(await home.run(["keys", "disable", k]), k)
    await catIs("local://l/a.bin", a)
    await catIs("local://l/b.bin", b)

    const again = await home.run(["rekey", "-r", "local://l", "--kms-key-id", "l-w2"])
    ok(again, "rerun")
    assert.strictEqual(again.stdout, "up to date local://l/a.bin (native)\nup to date local://l/b.bin (native)\nrekeyed 0, up to date 2, skipped 0, failed 0\n")

    // Several keyrings: a key-store key and the KMS key (the object is cse-c again).
    const both = await home.run(["rekey", "local://l/a.bin", "--to", "l-k2", "--kms-key-id", "l-w2", "--json"])
    ok(both, "both")
    assert.deepStrictEqual(JSON.parse(both.stdout).to, ["l-k2@1", "kms:l-w2"])
    const report = await inspect("local://l/a.bin")
    assert.strictEqual(report.mode, "cse-c")
    assert.deepStrictEqual(wrapped(report), [["aes-gcm", ids.get("l-k2"), 1], ["kms", `${ids.get("l-w2")}@1`, 0]].sort())
    // Either key opens it.
    ok(await home.run(["keys", "disable", "l-w2"]), "disable l-w2")
    await catIs("local://l/a.bin", a)
    ok(await home.run(["keys", "enable", "l-w2"]), "enable l-w2")
    ok(await home.run(["keys", "disable", "l-k2"]), "disable l-k2")
    await catIs("local://l/a.bin", a)
  }, 300_000)

  it("an unknown or disabled KMS key, a key id the KMS cannot take, no target: refused before anything changes (exit 4, 2)", async () => {
    writeConfig({})
    await generate(["t-k"], ["t-w"], ["t-off"])
    ok(await home.run(["keys", "disable", "t-off"]), "disable")
    await upload("local://t/a.bin", data(5000), ["--mode", "cse-c", "--key", "t-k"])
    await upload("local://t/b.bin", data(5000), ["--mode", "cse-kms", "--kms-key-id", "t-w"])
    const before = filesBelow(home.storeRoot).filter((f) => f.includes("t%2F")).map((f) => fs.readFileSync(f))
    assert.lengthOf(before, 2)

    const unknown = await home.run(["rekey", "-r", "local://t", "--kms-key-id", "no-such-key"])
    assert.strictEqual(unknown.code, 4, unknown.stderr)
    assert.match(oneLineError(unknown), /KMS NotFound for key no-such-key/)
    assert.strictEqual(unknown.stdout, "")
    const disabled = await home.run(["rekey", "-r", "local://t", "--kms-key-id", "t-off", "--dry-run"])
    assert.strictEqual(disabled.code, 4, disabled.stderr)
    assert.match(oneLineError(disabled), /KMS Disabled for key t-off/)
    const shape = await home.run(["rekey", "-r", "local://t", "--kms", "gcp", "--kms-key-id", "alias/not-a-cloud-kms-key"])
    assert.strictEqual(shape.code, 2, shape.stderr)
    assert.match(oneLineError(shape), /projects\/PROJECT\/locations/)
    const none = await home.run(["rekey", "-r", "local://t"])
    assert.strictEqual(none.code, 2, none.stderr)
    assert.match(oneLineError(none), /--to KEY, --recipient NAME or --kms-key-id ID/)
    const empty = await home.run(["rekey", "-r", "local://t", "--kms-key-id", " "])
    assert.strictEqual(empty.code, 2, empty.stderr)
    assert.match(oneLineError(empty), /--kms-key-id needs a key id/)

    const after = filesBelow(home.storeRoot).filter((f) => f.includes("t%2F")).map((f) => fs.readFileSync(f))
    assert.deepStrictEqual(after, before, "nothing was rewritten")
  }, 300_000)
})

describe("per-object outcomes over many objects", () => {
  it("damaged envelopes fail, the rest is re-keyed; every outcome and a summary are printed; exit 5; --json and --dry-run agree; no key material in any output", async () => {
    writeConfig({})
    await generate(["m-old"], ["m-new"])
    const bodies = new Map<string, Buffer>()
    for (const name of ["ok.bin", "wrapped.bin", "commit.bin", "garbled.bin"]) {
      bodies.set(name, data(40_000))
      await upload(`local://m/${name}`, bodies.get(name)!, ["--mode", "cse-c", "--key", "m-old"])
    }
    bodies.set("current.bin", data(1000))
    await upload("local://m/current.bin", bodies.get("current.bin")!, ["--mode", "cse-c", "--key", "m-new"])
    bodies.set("plain.bin", data(1000))
    await upload("local://m/plain.bin", bodies.get("plain.bin")!, [])
    // Tampered: a wrapped key's bytes, the key commitment; damaged: the format version.
    tamper("m/wrapped.bin", (m) => (m.ock0 = flip(m.ock0!)))
    tamper("m/commit.bin", (m) => (m.occm = flip(m.occm!)))
    tamper("m/garbled.bin", (m) => (m.ocv = "9"))
    const damaged = ["commit.bin", "garbled.bin", "wrapped.bin"].map((n) => fs.readFileSync(objectFile(`m/${n}`)))
    const secrets = [
      (await home.run(["keys", "export", "m-new", "--format", "base64"])).stdout.trim(),
      (await home.run(["keys", "export", "m-old", "--format", "base64"])).stdout.trim()
    ]
    for (const s of secrets) assert.isAbove(s.length, 20)
    const noSecrets = (r: Result) => {
      for (const s of secrets) {
        assert.notInclude(r.stdout, s)
        assert.notInclude(r.stderr, s)
      }
    }

    const dry = await home.run(["rekey", "-r", "local://m", "--to", "m-new", "--dry-run"])
    assert.strictEqual(dry.code, 5, dry.stderr)
    assert.match(oneLineError(dry), /^objcrypt: rekey would fail for 1 of 6 objects \(first: local:\/\/m\/garbled\.bin: cannot decrypt "m\/garbled\.bin": UnknownFormat/)
    assert.match(dry.stdout, /\(dry run\) would rekey 3, up to date 1, skipped 1, failed 1\n$/)
    noSecrets(dry)

    const r = await home.run(["rekey", "-r", "local://m", "--to", "m-new"])
    noSecrets(r)
    assert.strictEqual(r.code, 5, r.stderr)
    const lines = r.stdout.trimEnd().split("\n")
    assert.lengthOf(lines, 7, r.stdout)
    assert.match(lines[0]!, /^failed local:\/\/m\/commit\.bin: cannot decrypt "m\/commit\.bin": CommitmentMismatch/)
    assert.strictEqual(lines[1], "up to date local://m/current.bin (native)")
    assert.match(lines[2]!, /^failed local:\/\/m\/garbled\.bin: cannot decrypt "m\/garbled\.bin": UnknownFormat/)
    assert.strictEqual(lines[3], "rekeyed local://m/ok.bin -> m-new@1 (native)")
    assert.strictEqual(lines[4], "skipped local://m/plain.bin: not client-side (none)")
    assert.match(lines[5]!, /^failed local:\/\/m\/wrapped\.bin: cannot decrypt "m\/wrapped\.bin": WrongKey/)
    assert.strictEqual(lines[6], "rekeyed 1, up to date 1, skipped 1, failed 3")
    assert.match(oneLineError(r), /^objcrypt: rekey failed for 3 of 6 objects, 1 rekeyed \(first: local:\/\/m\/commit\.bin: /)
    // The damaged objects are left exactly as they were; the good one no longer needs the old key.
    assert.deepStrictEqual(["commit.bin", "garbled.bin", "wrapped.bin"].map((n) => fs.readFileSync(objectFile(`m/${n}`))), damaged)
    ok(await home.run(["keys", "disable", "m-old"]), "disable m-old")
    await catIs("local://m/ok.bin", bodies.get("ok.bin")!)

    const js = await home.run(["rekey", "-r", "local://m", "--to", "m-new", "--json"])
    noSecrets(js)
    assert.strictEqual(js.code, 5, js.stderr)
    oneLineError(js)
    const report = JSON.parse(js.stdout)
    assert.deepStrictEqual(report.objects.map((o: { url: string; status: string }) => [o.url.slice("local://m/".length), o.status]), [
      ["commit.bin", "failed"],
      ["current.bin", "up-to-date"],
      ["garbled.bin", "failed"],
      ["ok.bin", "up-to-date"],
      ["plain.bin", "skipped"],
      ["wrapped.bin", "failed"]
    ])
    for (const o of report.objects.filter((x: { status: string }) => x.status === "failed")) assert.match(o.reason, /^cannot decrypt /)
    assert.deepStrictEqual(report.summary, { rekeyed: 0, wouldRekey: 0, upToDate: 2, skipped: 1, failed: 3 })

    // One URL, one failure: the error line names it.
    const one = await home.run(["rekey", "local://m/wrapped.bin", "--to", "m-new"])
    assert.strictEqual(one.code, 5)
    assert.match(oneLineError(one), /^objcrypt: rekey failed for local:\/\/m\/wrapped\.bin: cannot decrypt/)
    assert.match(one.stdout, /^failed local:\/\/m\/wrapped\.bin: /)
  }, 300_000)
})

describe("rekey --kms-key-id with AWS KMS (moto_server)", () => {
  it("a native object keeps its encryption context under the new key; an object changed and one deleted between examination and rewrite are reported and left alone (exit 1)", async () => {
    writeConfig({ kms: awsKms(gate.endpoint) })
    // An object with a user encryption context, written by core in this process into the CLI's local store.
    const ctxBody = data(100_000)
    const AwsKms = await import("@objcrypt/driver-s3/AwsKms")
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const store = yield* FsObjectStore.make({ root: home.storeRoot })
      const kms = yield* AwsKms.make(MotoServer.clientSettings(moto))
      yield* ClientSide.put(store, "g/0-ctx.bin", Stream.make(ctxBody), [Keyring.kms(kms, K1)], { context: { team: "g" } })
    })))
    const bodies = new Map<string, Buffer>([["0-ctx.bin", ctxBody]])
    for (const n of ["1.bin", "2.bin", "3.bin"]) {
      bodies.set(n, data(20_000))
      await upload(`local://g/${n}`, bodies.get(n)!, ["--mode", "cse-kms", "--kms-key-id", K1])
    }
    const before = await inspect("local://g/0-ctx.bin")
    assert.deepStrictEqual(before.clientSide.context, { team: "g" })

    // The first rewrite's Decrypt is held at the gate: objects 2 and 3 change meanwhile.
    const held = gate.hold("Decrypt")
    const running = home.run(["rekey", "-r", "local://g", "--kms-key-id", K2, "--json"])
    await held
    // Another writer replaces 2.bin with a new cse-kms object under K1, and deletes 3.bin.
    const replaced = data(5000)
    await upload("local://g/2.bin", replaced, ["--mode", "cse-kms", "--kms-key-id", K1])
    const writers = await inspect("local://g/2.bin")
    ok(await home.run(["rm", "local://g/3.bin"]), "rm")
    gate.release()
    const r = await running

    assert.strictEqual(r.code, 1, r.stderr)
    assert.match(oneLineError(r), /^objcrypt: rekey failed for 2 of 4 objects, 2 rekeyed \(first: local:\/\/g\/2\.bin: changed since examined/)
    const report = JSON.parse(r.stdout)
    assert.deepStrictEqual(report.objects.map((o: { url: string; status: string; reason?: string }) => [o.url, o.status, o.reason]), [
      ["local://g/0-ctx.bin", "rekeyed", undefined],
      ["local://g/1.bin", "rekeyed", undefined],
      ["local://g/2.bin", "failed", "changed since examined"],
      ["local://g/3.bin", "failed", "deleted since examined"]
    ])
    assert.deepStrictEqual(report.summary, { rekeyed: 2, wouldRekey: 0, upToDate: 0, skipped: 0, failed: 2 })

    for (const n of ["0-ctx.bin", "1.bin"]) {
      const now = await inspect(`local://g/${n}`)
      assert.strictEqual(now.mode, "cse-kms")
      assert.deepStrictEqual(now.clientSide.keys.map((k: { type: string; kms: string; keyId: string }) => [k.type, k.kms, k.keyId]), [["kms", "aws-kms", K2]])
      await catIs(`local://g/${n}`, bodies.get(n)!)
    }
    assert.deepStrictEqual((await inspect("local://g/0-ctx.bin")).clientSide.context, { team: "g" }, "the context is kept")
    // The replacement is the writer's, untouched: still under K1, same etag.
    const two = await inspect("local://g/2.bin")
    assert.deepStrictEqual([two.etag, two.clientSide.keys], [writers.etag, writers.clientSide.keys])
    assert.strictEqual(two.clientSide.keys[0].keyId, K1)
    await catIs("local://g/2.bin", replaced)
    const gone = await home.run(["inspect", "local://g/3.bin"])
    assert.strictEqual(gone.code, 3)

    // Only deletions: exit 3 (not found).
    const held2 = gate.hold("Decrypt")
    await upload("local://h/1.bin", data(1000), ["--mode", "cse-kms", "--kms-key-id", K1])
    await upload("local://h/2.bin", data(1000), ["--mode", "cse-kms", "--kms-key-id", K1])
    const running2 = home.run(["rekey", "-r", "local://h", "--kms-key-id", K2])
    await held2
    ok(await home.run(["rm", "local://h/2.bin"]), "rm")
    gate.release()
    const r2 = await running2
    assert.strictEqual(r2.code, 3, r2.stderr)
    assert.strictEqual(r2.stdout, `rekeyed local://h/1.bin -> kms:${K2} (native)\nfailed local://h/2.bin: deleted since examined\nrekeyed 1, up to date 0, skipped 0, failed 1\n`)
  }, 300_000)

  it("an unknown AWS KMS key is refused before anything changes (exit 4)", async () => {
    writeConfig({ kms: awsKms(moto.endpoint) })
    await upload("local://u/a.bin", data(1000), ["--mode", "cse-kms", "--kms-key-id", K1])
    const was = await inspect("local://u/a.bin")
    const missing = await home.run(["rekey", "local://u/a.bin", "--kms-key-id", "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"])
    assert.strictEqual(missing.code, 4, missing.stderr)
    assert.match(oneLineError(missing), /KMS NotFound/)
    assert.strictEqual(missing.stdout, "")
    const now = await inspect("local://u/a.bin")
    assert.deepStrictEqual([now.etag, now.clientSide.keys], [was.etag, was.clientSide.keys])
  }, 300_000)

  it("S3EC V2/V3: kms+context keeps its context and version, AES/GCM becomes kms+context; one wrap only; Azure v2 has no KMS wrap (exit 6)", async () => {
    writeConfig({ kms: awsKms(moto.endpoint) })
    await generate(["s-a"])
    const v3 = data(60_000)
    const v2 = data(60_000)
    await upload(`${S3}/e/v3-kms`, v3, ["--format", "s3ec-v3", "--mode", "cse-kms", "--kms-key-id", K1, "--context", "team=b"])
    await upload(`${S3}/e/v2-aes`, v2, ["--format", "s3ec-v2", "--mode", "cse-c", "--key", "s-a"])
    const targets = [`${S3}/e/v3-kms`, `${S3}/e/v2-aes`]
    const before = await Promise.all(targets.map(inspect))

    const two = await home.run(["rekey", ...targets, "--to", "s-a", "--kms-key-id", K2])
    assert.strictEqual(two.code, 6, two.stderr)
    assert.match(oneLineError(two), /exactly one key \(one --to KEY or one --kms-key-id, no --recipient\)/)

    const dry = await home.run(["rekey", ...targets, "--kms-key-id", K2, "--dry-run", "--json"])
    ok(dry, "dry run")
    assert.deepStrictEqual(
      JSON.parse(dry.stdout).objects.map((o: { status: string; format: string; wrap: { from: string; to: string } }) => [o.status, o.format, o.wrap.from, o.wrap.to]),
      [["would-rekey", "s3ec-v3", "kms+context", "kms+context"], ["would-rekey", "s3ec-v2", "AES/GCM", "kms+context"]]
    )
    for (const [i, url] of targets.entries()) assert.strictEqual((await inspect(url)).etag, before[i].etag)

    const r = await home.run(["rekey", ...targets, "--kms-key-id", K2])
    ok(r, "rekey")
    assert.strictEqual(
      r.stdout,
      `rekeyed ${S3}/e/v3-kms -> kms:${K2} (s3ec-v3)\nrekeyed ${S3}/e/v2-aes -> kms:${K2} (s3ec-v2, AES/GCM -> kms+context)\nrekeyed 2, up to date 0, skipped 0, failed 0\n`
    )
    const [k3, k2] = await Promise.all(targets.map(inspect))
    assert.strictEqual(k3.clientSide.formatVersion, 3)
    assert.strictEqual(k3.etag, before[0].etag, "the body is not rewritten")
    assert.strictEqual(k3.clientSide.context.team, "b", "the context is kept")
    assert.strictEqual(k2.mode, "cse-kms")
    assert.strictEqual(k2.clientSide.formatVersion, 2)
    await catIs(targets[0]!, v3)
    ok(await home.run(["keys", "disable", "s-a"]), "disable s-a")
    await catIs(targets[1]!, v2)

    // The data keys are now under K2: moto's Decrypt says which key opened them.
    const S3ObjectStore = await import("@objcrypt/driver-s3/S3ObjectStore")
    const heads = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const store = yield* S3ObjectStore.make({ bucket: "objcrypt-rk", ...MotoServer.s3Settings(moto), profile: "s3-compatible" })
      return yield* Effect.forEach(["e/v3-kms", "e/v2-aes"], (k) => store.head(k))
    })))
    for (const [info, keyName, contextName] of [[heads[0]!, "x-amz-3", "x-amz-t"], [heads[1]!, "x-amz-key-v2", "x-amz-matdesc"]] as const) {
      const opened = await kmsCall("Decrypt", {
        CiphertextBlob: info.metadata[keyName],
        EncryptionContext: JSON.parse(info.metadata[contextName]!)
      })
      assert.strictEqual(opened.KeyId, K2, info.key)
    }

    // Azure client-side encryption wraps with key-store keys only.
    ok(await home.run(["keys", "enable", "s-a"]), "enable s-a")
    await upload(`${AZ}/e/blob.bin`, data(10_000), ["--mode", "cse-c", "--key", "s-a", "--format", "azure-v2"])
    const blob = await inspect(`${AZ}/e/blob.bin`)
    const az = await home.run(["rekey", `${AZ}/e/blob.bin`, "--kms-key-id", K2])
    assert.strictEqual(az.code, 6, az.stderr)
    assert.match(oneLineError(az), /Azure client-side encryption has no KMS wrap/)
    assert.strictEqual((await inspect(`${AZ}/e/blob.bin`)).etag, blob.etag)
  }, 300_000)
})
