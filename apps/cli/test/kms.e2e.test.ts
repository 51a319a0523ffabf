/**
 * cse-kms with a provider's KMS, run through the built bin: AWS KMS (driver-s3 `AwsKms`) served by
 * moto_server, chosen by the config file's `kms` or by `--kms aws --kms-endpoint`; and the
 * validation of every KMS setting. Cloud KMS and Key Vault have no server that installs here: for
 * them only the configuration and key-id checks run (no fake server stands in for them).
 */
import { assert, afterAll, beforeAll, describe, it } from "@effect/vitest"
import * as MotoServer from "@objcrypt/test-kit/MotoServer"
import { Effect, Exit, Scope } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import { filesBelow, type Home, makeHome, oneLineError } from "./harness.js"

let scope: Scope.CloseableScope
let moto: MotoServer.MotoServerInfo
let home: Home
let keyArn: string

const MARKER = Buffer.from("KMS-PLAINTEXT-MARKER")

/** Creates a KMS key in moto through its JSON API (moto does not check request signatures). */
const createKey = async (): Promise<string> => {
  const res = await fetch(moto.endpoint, {
    method: "POST",
    headers: {
      "content-type": "application/x-amz-json-1.1",
      "x-amz-target": "TrentService.CreateKey",
      authorization: `AWS4-HMAC-SHA256 Credential=${moto.accessKeyId}/20260101/${moto.region}/kms/aws4_request, SignedHeaders=host, Signature=0`
    },
    body: JSON.stringify({ Description: "objcrypt cli e2e" })
  })
  assert.strictEqual(res.status, 200, await res.clone().text())
  const body = await res.json() as { KeyMetadata: { Arn: string } }
  return body.KeyMetadata.Arn
}

beforeAll(async () => {
  scope = Effect.runSync(Scope.make())
  moto = await Effect.runPromise(Scope.extend(MotoServer.make({ startTimeout: "180 seconds" }), scope))
  keyArn = await createKey()
  home = makeHome()
  Object.assign(home.env, { KMS_TEST_ID: moto.accessKeyId, KMS_TEST_SECRET: moto.secretAccessKey })
}, 300_000)

afterAll(async () => {
  home?.cleanup()
  if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
})

const writeConfig = (config: unknown) => home.file("config/objcrypt/config.json", JSON.stringify(config))

const awsKms = () => ({
  type: "aws",
  endpoint: moto.endpoint,
  region: moto.region,
  credentials: { accessKeyIdEnv: "KMS_TEST_ID", secretAccessKeyEnv: "KMS_TEST_SECRET" }
})

describe("cse-kms with AWS KMS (moto_server)", () => {
  it("the config file's kms: cp up, cat back, inspect shows aws-kms and the key ARN; the local KMS cannot open it", async () => {
    writeConfig({ kms: awsKms() })
    const body = Buffer.concat([MARKER, crypto.randomBytes(300_000)])
    const input = home.file("in/a.bin", body)
    const up = await home.run(["cp", input, "local://kms/a.bin", "--mode", "cse-kms", "--kms-key-id", keyArn, "--context", "app=e2e"])
    assert.strictEqual(up.code, 0, up.stderr)
    // Only ciphertext in the store.
    const stored = filesBelow(home.storeRoot)
    assert.isAbove(stored.length, 0)
    for (const file of stored) assert.strictEqual(fs.readFileSync(file).indexOf(MARKER), -1)

    const cat = await home.run(["cat", "local://kms/a.bin"])
    assert.strictEqual(cat.code, 0, cat.stderr)
    assert.isTrue(cat.stdoutBytes.equals(body))

    const ins = await home.run(["inspect", "local://kms/a.bin", "--json"])
    assert.strictEqual(ins.code, 0, ins.stderr)
    const report = JSON.parse(ins.stdout)
    assert.strictEqual(report.mode, "cse-kms")
    assert.deepStrictEqual(report.clientSide.keys.map((k: { type: string; kms: string; keyId: string }) => [k.type, k.kms, k.keyId]), [["kms", "aws-kms", keyArn]])
    const text = await home.run(["inspect", "local://kms/a.bin"])
    assert.match(text.stdout, /wrapped key\s+kms \(aws-kms\) arn:aws:kms:/)

    // `--kms local` overrides the file: the local KMS does not hold an AWS-wrapped data key.
    const local = await home.run(["cat", "local://kms/a.bin", "--kms", "local"])
    // The data key cannot be unwrapped: the object is not decryptable with this KMS (exit 5).
    assert.strictEqual(local.code, 5, local.stderr)
    assert.match(oneLineError(local), /key/i)
    assert.strictEqual(local.stdout, "")
  }, 300_000)

  it("--kms aws --kms-endpoint --kms-region with no kms in the file; an unknown KMS key writes nothing", async () => {
    writeConfig({})
    const flags = ["--kms", "aws", "--kms-endpoint", moto.endpoint, "--kms-region", moto.region]
    const env = { AWS_ACCESS_KEY_ID: moto.accessKeyId, AWS_SECRET_ACCESS_KEY: moto.secretAccessKey }
    const body = Buffer.concat([MARKER, crypto.randomBytes(5000)])
    const input = home.file("in/b.bin", body)
    const up = await home.run(["cp", input, "local://kms/b.bin", "--mode", "cse-kms", "--kms-key-id", keyArn, ...flags], { env })
    assert.strictEqual(up.code, 0, up.stderr)
    const cat = await home.run(["cat", "local://kms/b.bin", ...flags], { env })
    assert.strictEqual(cat.code, 0, cat.stderr)
    assert.isTrue(cat.stdoutBytes.equals(body))
    // A KMS key that does not exist: the upload fails (exit 1, the KMS's refusal in one line), nothing written.
    const missing = await home.run(["cp", input, "local://kms/c.bin", "--mode", "cse-kms", "--kms-key-id", "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000", ...flags], { env })
    assert.strictEqual(missing.code, 1, missing.stderr)
    assert.match(oneLineError(missing), /KMS NotFound/)
    assert.isFalse(filesBelow(home.storeRoot).some((f) => f.includes("c.bin")))
  }, 300_000)
})

describe("KMS settings are validated (no Cloud KMS or Key Vault server is used)", () => {
  it("config: unknown kms type, a non-URL endpoint, inline AWS secrets: one line, exit 8", async () => {
    for (const [kms, pattern] of [
      [{ type: "vault" }, /kms/],
      [{ type: "gcp", endpoint: "not a url" }, /http\(s\) URL/],
      [{ type: "aws", credentials: { accessKeyId: "A", secretAccessKey: "B" } }, /inline credentials are refused/],
      [{ type: "azure", algorithm: "RSA1_5" }, /algorithm|kms/]
    ] as const) {
      writeConfig({ endpoints: { e: { type: "fs", root: `${home.dir}/fs`, kms } } })
      const r = await home.run(["ls", "local://"])
      assert.strictEqual(r.code, 8, `${JSON.stringify(kms)}: ${r.stderr}`)
      assert.match(oneLineError(r), pattern)
      assert.notMatch(r.stderr, /^\s+at /m)
    }
  }, 120_000)

  it("key ids that do not fit the chosen KMS, and flags for another KMS: one line, exit 2, nothing written", async () => {
    writeConfig({ endpoints: { gk: { type: "fs", root: `${home.dir}/g`, kms: { type: "gcp", endpoint: "http://127.0.0.1:9" } } } })
    const input = home.file("in/v.bin", "v")
    const gcp = await home.run(["cp", input, "gk:v.bin", "--mode", "cse-kms", "--kms-key-id", "alias/not-a-cloud-kms-key"])
    assert.strictEqual(gcp.code, 2, gcp.stderr)
    assert.match(oneLineError(gcp), /projects\/PROJECT\/locations/)
    const azure = await home.run(["cp", input, "local://v.bin", "--mode", "cse-kms", "--kms", "azure", "--kms-key-id", "http://vault.example/keys/k"])
    assert.strictEqual(azure.code, 2, azure.stderr)
    assert.match(oneLineError(azure), /https:\/\/VAULT\.vault\.azure\.net\/keys/)
    const region = await home.run(["cp", input, "local://v.bin", "--mode", "cse-kms", "--kms", "gcp", "--kms-region", "eu-west-1", "--kms-key-id", "projects/p/locations/l/keyRings/r/cryptoKeys/k"])
    assert.strictEqual(region.code, 2, region.stderr)
    assert.match(oneLineError(region), /--kms-region applies to the aws KMS/)
    assert.isFalse(fs.existsSync(`${home.dir}/g/v.bin`))
    assert.isFalse(fs.existsSync(`${home.storeRoot}/v.bin`))
  }, 120_000)
})
