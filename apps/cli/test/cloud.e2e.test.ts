/**
 * gs:// and az:// end to end: the built bin against the test-kit GCS JSON-API server (in this
 * process) and Azurite (a child process), both on 127.0.0.1 and free ports.
 */
import { assert, afterAll, beforeAll, describe, it } from "@effect/vitest"
import * as Azurite from "@objcrypt/test-kit/Azurite"
import * as GcsServer from "@objcrypt/test-kit/GcsServer"
import { Effect, Exit, Scope } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { type Home, makeHome, oneLineError } from "./harness.js"

let scope: Scope.CloseableScope
let gcs: GcsServer.GcsServerInfo
let azurite: Azurite.AzuriteInfo
let home: Home

const MARKER = "CLOUD-PLAINTEXT-MARKER"
// A small tree: one file spanning several cse-c segments, one tiny, one in a subdirectory.
const tree = {
  "big.bin": Buffer.concat([Buffer.from(MARKER), crypto.randomBytes(300 * 1024)]),
  "small.txt": Buffer.from(`${MARKER} small\n`),
  "sub/deep.txt": Buffer.from(`${MARKER} deep\n`)
}

beforeAll(async () => {
  scope = Effect.runSync(Scope.make())
  ;[gcs, azurite] = await Effect.runPromise(
    Scope.extend(Effect.all([GcsServer.make({ buckets: ["objcrypt-cli"] }), Azurite.make({ startTimeout: "180 seconds" })], { concurrency: 2 }), scope)
  )
  home = makeHome()
  for (const [rel, bytes] of Object.entries(tree)) home.file(path.join("tree", rel), bytes)
  Object.assign(home.env, {
    // gs:// without configuration: the emulator variable of the Google client libraries.
    // host:port, as the other client libraries accept it (the CLI adds http://).
    STORAGE_EMULATOR_HOST: gcs.endpoint.replace(/^http:\/\//, ""),
    GOOGLE_CLOUD_PROJECT: gcs.projectId,
    // az:// through a configured endpoint: account name plus the key in a variable.
    BLOB_KEY: azurite.accountKey,
    OBJCRYPT_CONFIG: home.file("cloud.json", JSON.stringify({
      version: 1,
      endpoints: {
        blob: {
          type: "azure",
          container: "objcrypt-cli",
          prefix: "named/",
          accountUrl: azurite.blobEndpoint,
          credentials: { accountName: azurite.accountName, accountKeyEnv: "BLOB_KEY" }
        },
        pics: { type: "gcs", bucket: "objcrypt-named", apiEndpoint: gcs.endpoint, projectId: gcs.projectId }
      }
    }))
  })
  const keys = await Promise.all([home.run(["keys", "generate", "k"]), home.run(["keys", "generate", "ck", "--purpose", "sse-c"])])
  for (const r of keys) assert.strictEqual(r.code, 0, r.stderr)
}, 300_000)

afterAll(async () => {
  home?.cleanup()
  if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
})

const roundTrip = async (base: string) => {
  const up = await home.run(["cp", "-r", "tree", base, "--mode", "cse-c", "--key", "k"])
  assert.strictEqual(up.code, 0, up.stderr)
  assert.include(up.stdout, `${base}/sub/deep.txt`)

  // Independent reads run side by side (each is a separate process).
  const [ls, lsRec, ins, range, ...cats] = await Promise.all([
    home.run(["ls", base]),
    home.run(["ls", base, "-r", "--json"]),
    home.run(["inspect", `${base}/big.bin`, "--json"]),
    home.run(["cat", `${base}/big.bin`, "--range", "70000-70099"]),
    ...Object.keys(tree).map((rel) => home.run(["cat", `${base}/${rel}`]))
  ])
  assert.strictEqual(ls.code, 0, ls.stderr)
  assert.match(ls.stdout, /big\.bin/)
  assert.match(ls.stdout, /PRE\s+sub\//)
  assert.match(ls.stdout, /\s300 KiB {2}cse-c {4}big\.bin\n/)
  const lsr = JSON.parse(lsRec.stdout) as { objects: Array<{ url: string; size: number; storedSize: number; mode: string }> }
  assert.deepStrictEqual(lsr.objects.map((x) => x.url).sort(), Object.keys(tree).map((rel) => `${base}/${rel}`).sort())
  // Sizes are the plaintext's; stored sizes the ciphertext's, larger (tags).
  for (const x of lsr.objects) {
    const plain = tree[x.url.slice(base.length + 1) as keyof typeof tree].length
    assert.strictEqual(x.size, plain, x.url)
    assert.isAbove(x.storedSize, plain, x.url)
    assert.strictEqual(x.mode, "cse-c")
  }
  Object.values(tree).forEach((bytes, i) => {
    assert.strictEqual(cats[i]!.code, 0, cats[i]!.stderr)
    assert.isTrue(cats[i]!.stdoutBytes.equals(bytes))
  })
  assert.isTrue(range.stdoutBytes.equals(tree["big.bin"].subarray(70000, 70100)))
  assert.strictEqual(ins.code, 0, ins.stderr)
  assert.strictEqual(JSON.parse(ins.stdout).mode, "cse-c")

  const back = await home.run(["cp", "-r", base, `restored-${base.slice(0, 2)}`])
  assert.strictEqual(back.code, 0, back.stderr)
  assert.isTrue(fs.readFileSync(path.join(home.dir, `restored-${base.slice(0, 2)}`, "sub/deep.txt")).equals(tree["sub/deep.txt"]))
}

describe("gs:// against the test-kit GCS server", () => {
  it("cse-c: cp -r up, ls, cat, inspect, cp -r back; the server holds only ciphertext", async () => {
    await roundTrip("gs://objcrypt-cli/tree")
    const names = gcs.objectNames("objcrypt-cli")
    assert.includeMembers([...names], ["tree/big.bin", "tree/small.txt", "tree/sub/deep.txt"])
    for (const n of names) {
      const stored = await Effect.runPromise(gcs.storedBytes("objcrypt-cli", n))
      assert.isFalse(Buffer.from(stored!).includes(Buffer.from(MARKER)), n)
    }
  })

  it("bucket create gs:// and a named gcs endpoint", async () => {
    const created = await home.run(["bucket", "create", "pics:"])
    assert.strictEqual(created.code, 0, created.stderr)
    home.file("n.txt", "named gcs\n")
    assert.strictEqual((await home.run(["cp", "n.txt", "pics:n.txt", "--mode", "cse-c", "--key", "k"])).code, 0)
    assert.strictEqual((await home.run(["cat", "gs://objcrypt-named/n.txt"])).stdout, "named gcs\n")
  })

  it("matrix --probe gs://: CSEK enforced by the server, plain writes accepted; no probe object left", async () => {
    const r = await home.run(["matrix", "--probe", "gs://objcrypt-cli", "--json"])
    assert.strictEqual(r.code, 0, r.stderr)
    const { probe, profiles } = JSON.parse(r.stdout)
    assert.strictEqual(probe.profile, "gcs")
    assert.strictEqual(probe.bucket, "objcrypt-cli")
    assert.strictEqual(probe.facts.tls, false)
    assert.deepStrictEqual(probe.facts.modes, { SseS3: "accepted", SseC: "enforced" })
    assert.deepStrictEqual(profiles.map((p: { name: string }) => p.name), ["gcs"])
    assert.isFalse(gcs.objectNames("objcrypt-cli").some((n) => n.includes("probe")), gcs.objectNames("objcrypt-cli").join(","))
    const text = await home.run(["matrix", "--probe", "pics:"])
    assert.strictEqual(text.code, 0, text.stderr)
    assert.match(text.stdout, /probe \d{4}-\d\d-\d\d/)
  })

  it("sse-c over plain http without a probe is refused before upload (exit 6)", async () => {
    home.file("s.txt", "x")
    const r = await home.run(["cp", "s.txt", "gs://objcrypt-cli/ssec/s.txt", "--mode", "sse-c", "--key", "ck"])
    assert.strictEqual(r.code, 6, r.stderr)
    assert.match(oneLineError(r), /gcs/)
    assert.notInclude(gcs.objectNames("objcrypt-cli"), "ssec/s.txt")
  })
})

describe("az:// against Azurite", () => {
  it("bucket create, then cse-c: cp -r up, ls, cat, inspect, cp -r back", async () => {
    // Without the configuration file: the connection string from the environment.
    const created = await home.run(["bucket", "create", "az://objcrypt-cli"], {
      env: { OBJCRYPT_CONFIG: undefined, AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString }
    })
    assert.strictEqual(created.code, 0, created.stderr)
    await roundTrip("az://objcrypt-cli/tree")
  })

  it("a named azure endpoint (prefix, account key from a variable) and the connection string see the same container", async () => {
    home.file("b.txt", "named azure\n")
    const up = await home.run(["cp", "b.txt", "blob:b.txt", "--mode", "cse-c", "--key", "k"])
    assert.strictEqual(up.code, 0, up.stderr)
    const viaEnv = await home.run(["cat", "az://objcrypt-cli/named/b.txt"], {
      env: { OBJCRYPT_CONFIG: undefined, AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString }
    })
    assert.strictEqual(viaEnv.code, 0, viaEnv.stderr)
    assert.strictEqual(viaEnv.stdout, "named azure\n")
    const missing = await home.run(["ls", "blob:"], { env: { BLOB_KEY: undefined } })
    assert.strictEqual(missing.code, 8)
    assert.match(oneLineError(missing), /BLOB_KEY/)
    assert.notInclude(missing.stderr, azurite.accountKey)
  })

  it("matrix --probe az://: what Azurite reports through the SDK, sse-c not tried over http; no probe blob left", async () => {
    const env = { OBJCRYPT_CONFIG: undefined, AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString }
    const r = await home.run(["matrix", "--probe", "az://objcrypt-cli", "--kms-key-id", "scope-a", "--json"], { env })
    assert.strictEqual(r.code, 0, r.stderr)
    const { probe, skipped } = JSON.parse(r.stdout)
    assert.strictEqual(probe.profile, "azure-blob")
    assert.strictEqual(probe.bucket, "objcrypt-cli")
    assert.strictEqual(probe.facts.tls, false)
    // Azurite reports every blob server-encrypted and ignores encryption scopes.
    assert.deepStrictEqual(probe.facts.modes, { SseS3: "accepted", SseKms: "ignored" })
    assert.deepStrictEqual(skipped, ["sse-c: customer-provided keys need https (the Azure SDK refuses them over http)"])
    const text = await home.run(["matrix", "--probe", "az://objcrypt-cli"], { env })
    assert.strictEqual(text.code, 0, text.stderr)
    assert.match(text.stderr, /not tried: sse-kms/)
    assert.match(text.stderr, /not tried: sse-c/)
    const left = await home.run(["ls", "-r", "az://objcrypt-cli", "--json", "--stored-sizes"], { env })
    assert.strictEqual(left.code, 0, left.stderr)
    assert.isFalse(JSON.parse(left.stdout).objects.some((o: { key: string }) => o.key.includes("probe")))
  })

  it("sse-c over plain http is refused before upload (exit 6); nothing is written", async () => {
    home.file("s.txt", "x")
    const r = await home.run(["cp", "s.txt", "az://objcrypt-cli/ssec/s.txt", "--mode", "sse-c", "--key", "ck"])
    assert.strictEqual(r.code, 6, r.stderr)
    assert.match(oneLineError(r), /azure/)
    const ls = await home.run(["ls", "az://objcrypt-cli/ssec/s.txt"])
    assert.strictEqual(ls.code, 3, ls.stderr)
  })
})
