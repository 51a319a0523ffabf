/**
 * The KMS service driven by the AWS CLI v2 from Debian (`/usr/bin/aws kms`, botocore's own
 * JSON-protocol client and SigV4 signer): every operation and every refusal.
 */
import { CancelKeyDeletionCommand, CreateKeyCommand, EnableKeyCommand, RotateKeyOnDemandCommand } from "@aws-sdk/client-kms"
import type { KMSClient } from "@aws-sdk/client-kms"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { client, REGION, start, users } from "./harness.js"
import type { Service } from "./harness.js"

const AWS = "/usr/bin/aws"

let svc: Service

beforeAll(async () => {
  svc = await start()
}, 60_000)
afterAll(async () => {
  await svc.close()
})

interface Result {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

const cli = (args: ReadonlyArray<string>, user: { readonly accessKeyId: string; readonly secret: string } = users.alice) =>
  Effect.async<Result>((resume) => {
    const env: Record<string, string> = {
      PATH: process.env["PATH"] ?? "/usr/bin:/bin",
      HOME: svc.dir,
      AWS_ACCESS_KEY_ID: user.accessKeyId,
      AWS_SECRET_ACCESS_KEY: user.secret,
      AWS_DEFAULT_REGION: REGION,
      AWS_CONFIG_FILE: path.join(svc.dir, "no-aws-config"),
      AWS_SHARED_CREDENTIALS_FILE: path.join(svc.dir, "no-aws-credentials"),
      AWS_PAGER: "",
      AWS_MAX_ATTEMPTS: "1"
    }
    execFile(AWS, ["kms", ...args, "--endpoint-url", svc.endpoint, "--output", "json"], { env, timeout: 60_000 }, (error, stdout, stderr) => {
      resume(Effect.succeed({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr }))
    })
  })

/** Runs a command that must succeed and parses its JSON output. */
const ok = (args: ReadonlyArray<string>) =>
  Effect.map(cli(args), (r) => {
    assert.strictEqual(r.code, 0, `aws kms ${args.join(" ")}: ${r.stderr}`)
    return (r.stdout.trim() === "" ? {} : JSON.parse(r.stdout)) as Record<string, any>
  })

/** Runs a command that must fail; yields the exception name from the CLI's message. */
const fails = (args: ReadonlyArray<string>, user?: { readonly accessKeyId: string; readonly secret: string }) =>
  Effect.map(cli(args, user), (r) => {
    assert.notStrictEqual(r.code, 0, `aws kms ${args.join(" ")} should fail`)
    const m = /An error occurred \((\w+)\) when calling the (\w+) operation/.exec(r.stderr)
    assert.isNotNull(m, r.stderr)
    return m![1]
  })

/** A step the CLI cannot do (setup, or an operation newer than Debian's CLI) through the SDK. */
const sdk = <A>(f: (c: KMSClient) => Promise<A>) =>
  Effect.acquireUseRelease(Effect.sync(() => client(svc)), (c) => Effect.promise(() => f(c)), (c) => Effect.sync(() => c.destroy()))
const sdkKey = Effect.map(sdk((c) => c.send(new CreateKeyCommand({}))), (r) => r.KeyMetadata!.KeyId!)

const file = (name: string, bytes: Uint8Array) => {
  const f = path.join(svc.dir, name)
  fs.writeFileSync(f, bytes)
  return `fileb://${f}`
}

describe("KMS service with the AWS CLI v2 (/usr/bin/aws kms)", () => {
  it.effect("aws is Debian's CLI v2", () =>
    Effect.gen(function*() {
      const r = yield* Effect.promise(() =>
        new Promise<string>((resolve) => execFile(AWS, ["--version"], (_e, out, err) => resolve(`${out}${err}`)))
      )
      assert.match(r, /^aws-cli\/2\./)
    }), { timeout: 600_000 })

  it.effect("create-key, describe-key, list-keys, create/list/update/delete-alias", () =>
    Effect.gen(function*() {
      const created = yield* ok(["create-key", "--description", "cli key"])
      const keyId = created["KeyMetadata"]["KeyId"] as string
      const arn = created["KeyMetadata"]["Arn"] as string
      assert.strictEqual(created["KeyMetadata"]["KeyState"], "Enabled")
      const second = yield* sdkKey
      const alias = `alias/cli-${crypto.randomBytes(3).toString("hex")}`
      const [described, listed] = yield* Effect.all([
        ok(["describe-key", "--key-id", arn]),
        ok(["list-keys"]),
        ok(["create-alias", "--alias-name", alias, "--target-key-id", keyId])
      ], { concurrency: "unbounded" })
      assert.strictEqual(described["KeyMetadata"]["Description"], "cli key")
      assert.include((listed["Keys"] as Array<{ KeyId: string }>).map((k) => k.KeyId), keyId)
      const aliases = yield* ok(["list-aliases", "--key-id", keyId])
      assert.deepStrictEqual((aliases["Aliases"] as Array<{ AliasName: string }>).map((a) => a.AliasName), [alias])
      yield* ok(["update-alias", "--alias-name", alias, "--target-key-id", second])
      assert.strictEqual((yield* ok(["describe-key", "--key-id", alias]))["KeyMetadata"]["KeyId"], second)
      yield* ok(["delete-alias", "--alias-name", alias])
      assert.deepStrictEqual((yield* ok(["list-aliases", "--key-id", second]))["Aliases"], [])
    }), { timeout: 600_000 })

  it.effect("encrypt, decrypt, generate-data-key, generate-data-key-without-plaintext, generate-random, re-encrypt", () =>
    Effect.gen(function*() {
      const keyId = yield* sdkKey
      const second = yield* sdkKey
      const arn = `arn:aws:kms:${REGION}:000000000000:key/${keyId}`
      const pt = crypto.randomBytes(64)
      const [enc, dk, wp, rnd] = yield* Effect.all([
        ok(["encrypt", "--key-id", keyId, "--plaintext", file("pt", pt), "--encryption-context", "app=cli,tenant=7"]),
        ok(["generate-data-key", "--key-id", keyId, "--key-spec", "AES_256", "--encryption-context", "k=v"]),
        ok(["generate-data-key-without-plaintext", "--key-id", keyId, "--number-of-bytes", "24"]),
        ok(["generate-random", "--number-of-bytes", "16"])
      ], { concurrency: "unbounded" })
      assert.strictEqual(enc["KeyId"], arn)
      assert.strictEqual(Buffer.from(dk["Plaintext"] as string, "base64").length, 32)
      assert.isUndefined(wp["Plaintext"])
      assert.strictEqual(Buffer.from(rnd["Plaintext"] as string, "base64").length, 16)
      const blob = Buffer.from(enc["CiphertextBlob"] as string, "base64")
      const [dec, dkBack, wpBack, re] = yield* Effect.all([
        ok(["decrypt", "--ciphertext-blob", file("blob", blob), "--encryption-context", "tenant=7,app=cli"]),
        ok(["decrypt", "--ciphertext-blob", file("dk", Buffer.from(dk["CiphertextBlob"] as string, "base64")), "--encryption-context", "k=v"]),
        ok(["decrypt", "--ciphertext-blob", file("wp", Buffer.from(wp["CiphertextBlob"] as string, "base64"))]),
        ok([
          "re-encrypt",
          "--ciphertext-blob",
          file("blob2", blob),
          "--source-encryption-context",
          "app=cli,tenant=7",
          "--destination-key-id",
          second,
          "--destination-encryption-context",
          "moved=yes"
        ])
      ], { concurrency: "unbounded" })
      assert.isTrue(Buffer.from(dec["Plaintext"] as string, "base64").equals(pt))
      assert.strictEqual(dec["KeyId"], arn)
      assert.strictEqual(dkBack["Plaintext"], dk["Plaintext"])
      assert.strictEqual(Buffer.from(wpBack["Plaintext"] as string, "base64").length, 24)
      assert.strictEqual(re["SourceKeyId"], arn)
      const reBack = yield* ok(["decrypt", "--ciphertext-blob", file("re", Buffer.from(re["CiphertextBlob"] as string, "base64")), "--encryption-context", "moved=yes"])
      assert.isTrue(Buffer.from(reBack["Plaintext"] as string, "base64").equals(pt))
    }), { timeout: 600_000 })

  it.effect("enable/disable-key-rotation, get-key-rotation-status, disable/enable-key, schedule/cancel-key-deletion; rotated keys still decrypt", () =>
    Effect.gen(function*() {
      const keyId = yield* sdkKey
      const pt = crypto.randomBytes(20)
      const enc = yield* ok(["encrypt", "--key-id", keyId, "--plaintext", file("pt3", pt)])
      const blob = Buffer.from(enc["CiphertextBlob"] as string, "base64")
      yield* ok(["enable-key-rotation", "--key-id", keyId])
      assert.strictEqual((yield* ok(["get-key-rotation-status", "--key-id", keyId]))["KeyRotationEnabled"], true)
      // Debian's CLI (2.9) predates RotateKeyOnDemand (2024): rotate with the SDK, then decrypt the
      // version-1 blob with the CLI.
      yield* sdk((c) => c.send(new RotateKeyOnDemandCommand({ KeyId: keyId })))
      const after = yield* ok(["decrypt", "--ciphertext-blob", file("blob3", blob)])
      assert.isTrue(Buffer.from(after["Plaintext"] as string, "base64").equals(pt), "the old version still decrypts")
      yield* ok(["disable-key-rotation", "--key-id", keyId])
      assert.isFalse((yield* ok(["get-key-rotation-status", "--key-id", keyId]))["KeyRotationEnabled"])
      yield* ok(["disable-key", "--key-id", keyId])
      assert.strictEqual((yield* ok(["describe-key", "--key-id", keyId]))["KeyMetadata"]["KeyState"], "Disabled")
      yield* ok(["enable-key", "--key-id", keyId])
      const sched = yield* ok(["schedule-key-deletion", "--key-id", keyId, "--pending-window-in-days", "7"])
      assert.deepStrictEqual([sched["KeyState"], sched["PendingWindowInDays"]], ["PendingDeletion", 7])
      yield* ok(["cancel-key-deletion", "--key-id", keyId])
      assert.strictEqual((yield* ok(["describe-key", "--key-id", keyId]))["KeyMetadata"]["KeyState"], "Disabled")
    }), { timeout: 600_000 })

  it.effect("every refusal: NotFound, InvalidCiphertext (tampered, wrong context), Disabled, KMSInvalidState, AccessDenied, Validation, IncorrectKey, AlreadyExists", () =>
    Effect.gen(function*() {
      const keyId = yield* sdkKey
      const other = yield* sdkKey
      const alias = `alias/cli-err-${crypto.randomBytes(3).toString("hex")}`
      const enc = yield* ok(["encrypt", "--key-id", keyId, "--plaintext", file("p1", Buffer.from("secret")), "--encryption-context", "a=1"])
      const blob = Buffer.from(enc["CiphertextBlob"] as string, "base64")
      const tampered = Buffer.from(blob)
      tampered[blob.length - 3] = tampered[blob.length - 3]! ^ 0x10
      yield* ok(["create-alias", "--alias-name", alias, "--target-key-id", keyId])
      const expect = (args: ReadonlyArray<string>, name: string, user?: { readonly accessKeyId: string; readonly secret: string }) =>
        Effect.map(fails(args, user), (got) => assert.strictEqual(got, name, args.join(" ")))
      yield* Effect.all([
        expect(["describe-key", "--key-id", crypto.randomUUID()], "NotFoundException"),
        expect(["encrypt", "--key-id", "alias/none-such", "--plaintext", file("p0", Buffer.from("x"))], "NotFoundException"),
        expect(["decrypt", "--ciphertext-blob", file("t", tampered), "--encryption-context", "a=1"], "InvalidCiphertextException"),
        expect(["decrypt", "--ciphertext-blob", file("b", blob), "--encryption-context", "a=2"], "InvalidCiphertextException"),
        expect(["decrypt", "--ciphertext-blob", file("b", blob)], "InvalidCiphertextException"),
        expect(["decrypt", "--ciphertext-blob", file("b", blob), "--encryption-context", "a=1", "--key-id", other], "IncorrectKeyException"),
        expect(["generate-data-key", "--key-id", keyId], "ValidationException"),
        expect(["schedule-key-deletion", "--key-id", keyId, "--pending-window-in-days", "3"], "ValidationException"),
        expect(["create-alias", "--alias-name", alias, "--target-key-id", other], "AlreadyExistsException"),
        expect(["decrypt", "--ciphertext-blob", file("b", blob), "--encryption-context", "a=1"], "AccessDeniedException", users.carol),
        expect(["create-key"], "AccessDeniedException", users.bob),
        expect(["list-keys"], "InvalidSignatureException", { accessKeyId: users.alice.accessKeyId, secret: "wrong" })
      ], { concurrency: 4, discard: true })

      yield* ok(["disable-key", "--key-id", keyId])
      yield* Effect.all([
        expect(["decrypt", "--ciphertext-blob", file("b", blob), "--encryption-context", "a=1"], "DisabledException"),
        expect(["generate-data-key", "--key-id", alias, "--key-spec", "AES_256"], "DisabledException")
      ], { concurrency: "unbounded", discard: true })
      yield* ok(["enable-key", "--key-id", keyId])
      yield* ok(["schedule-key-deletion", "--key-id", keyId, "--pending-window-in-days", "7"])
      yield* Effect.all([
        expect(["decrypt", "--ciphertext-blob", file("b", blob), "--encryption-context", "a=1"], "KMSInvalidStateException"),
        expect(["encrypt", "--key-id", keyId, "--plaintext", file("p2", Buffer.from("x"))], "KMSInvalidStateException")
      ], { concurrency: "unbounded", discard: true })
      yield* sdk((c) => c.send(new CancelKeyDeletionCommand({ KeyId: keyId })))
      yield* sdk((c) => c.send(new EnableKeyCommand({ KeyId: keyId })))
      const back = yield* ok(["decrypt", "--ciphertext-blob", file("b", blob), "--encryption-context", "a=1"])
      assert.strictEqual(Buffer.from(back["Plaintext"] as string, "base64").toString(), "secret")
    }), { timeout: 600_000 })
})
