/**
 * The KMS service with its keys in a PKCS#11 token (SoftHSM2 from Debian, a throwaway token in a
 * temporary directory): keys are created in the token as non-extractable, the token does the
 * AES-GCM, and the blob layout, context binding, rotation and refusals are the same as with the
 * key store. A missing SoftHSM2 fails the run.
 */
import {
  CreateKeyCommand,
  DecryptCommand,
  DisableKeyCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  RotateKeyOnDemandCommand,
  ScheduleKeyDeletionCommand
} from "@aws-sdk/client-kms"
import type { KMSClient } from "@aws-sdk/client-kms"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as Pkcs11Kms from "@objcrypt/keys/Pkcs11Kms"
import { Effect, Redacted } from "effect"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { client, DAY, start } from "./harness.js"
import type { Service } from "./harness.js"

const LIBRARY = "/usr/lib/softhsm/libsofthsm2.so"
const tokenDir = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-kms-hsm-"))

let svc: Service
let kms: KMSClient

beforeAll(async () => {
  const conf = path.join(tokenDir, "softhsm2.conf")
  fs.mkdirSync(path.join(tokenDir, "tokens"))
  fs.writeFileSync(conf, `directories.tokendir = ${path.join(tokenDir, "tokens")}\nobjectstore.backend = file\nlog.level = ERROR\n`)
  // SoftHSM reads SOFTHSM2_CONF at C_Initialize; each test file runs in its own process.
  process.env["SOFTHSM2_CONF"] = conf
  process.env["KMS_TEST_PIN"] = "4321"
  const init = child.spawnSync("softhsm2-util", ["--init-token", "--free", "--label", "objcrypt-kms", "--pin", "4321", "--so-pin", "8765"], {
    env: { ...process.env, SOFTHSM2_CONF: conf },
    encoding: "utf8"
  })
  assert.strictEqual(init.status, 0, `softhsm2-util failed: ${init.error?.message ?? init.stderr}`)
  svc = await start({ backend: { type: "pkcs11", library: LIBRARY, tokenLabel: "objcrypt-kms", pin: { env: "KMS_TEST_PIN" } } })
  kms = client(svc)
}, 60_000)
let closed = false
const closeService = async () => {
  if (closed) return
  closed = true
  kms.destroy()
  await svc.close()
}
afterAll(async () => {
  await closeService()
  fs.rmSync(tokenDir, { recursive: true, force: true })
})

const call = <A>(f: () => Promise<A>) => Effect.promise(f)
const refused = (f: () => Promise<unknown>) =>
  Effect.map(Effect.flip(Effect.tryPromise({ try: f, catch: (e) => e as { name: string } })), (e) => e.name)

describe("KMS service over a PKCS#11 token (SoftHSM2)", () => {
  it.effect("keys live in the token, non-extractable; data keys round-trip; context, tampering, rotation, disable and deletion behave as with the key store", () =>
    Effect.gen(function*() {
      const key = (yield* call(() => kms.send(new CreateKeyCommand({ Description: "hsm" })))).KeyMetadata!
      const ctx = { bucket: "hsm", object: "o" }
      const dk = yield* call(() => kms.send(new GenerateDataKeyCommand({ KeyId: key.KeyId!, KeySpec: "AES_256", EncryptionContext: ctx })))
      assert.strictEqual(dk.KeyId, key.Arn)
      const blob = Buffer.from(dk.CiphertextBlob!)
      assert.strictEqual(blob.subarray(0, 4).toString("hex"), "6f636b01", "the same blob layout as the key store's")
      assert.strictEqual(blob.length, 36 + 32 + 16)
      const back = yield* call(() => kms.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: ctx })))
      assert.isTrue(Buffer.from(back.Plaintext!).equals(Buffer.from(dk.Plaintext!)))
      assert.strictEqual(yield* refused(() => kms.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: { ...ctx, object: "p" } }))), "InvalidCiphertextException")
      const t = Buffer.from(blob)
      t[50] = t[50]! ^ 4
      assert.strictEqual(yield* refused(() => kms.send(new DecryptCommand({ CiphertextBlob: t, EncryptionContext: ctx }))), "InvalidCiphertextException")

      yield* call(() => kms.send(new RotateKeyOnDemandCommand({ KeyId: key.KeyId! })))
      const v2 = yield* call(() => kms.send(new EncryptCommand({ KeyId: key.KeyId!, Plaintext: Buffer.from("v2") })))
      assert.strictEqual(Buffer.from(v2.CiphertextBlob!).readUInt32BE(20), 2)
      const old = yield* call(() => kms.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: ctx })))
      assert.isTrue(Buffer.from(old.Plaintext!).equals(Buffer.from(dk.Plaintext!)), "version 1 still decrypts")

      yield* call(() => kms.send(new DisableKeyCommand({ KeyId: key.KeyId! })))
      assert.strictEqual(yield* refused(() => kms.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: ctx }))), "DisabledException")

      const doomed = (yield* call(() => kms.send(new CreateKeyCommand({})))).KeyMetadata!
      const d = yield* call(() => kms.send(new EncryptCommand({ KeyId: doomed.KeyId!, Plaintext: Buffer.from("bye") })))
      yield* call(() => kms.send(new ScheduleKeyDeletionCommand({ KeyId: doomed.KeyId!, PendingWindowInDays: 7 })))
      assert.strictEqual(yield* refused(() => kms.send(new DecryptCommand({ CiphertextBlob: d.CiphertextBlob! }))), "KMSInvalidStateException")
      svc.advance(8 * DAY)
      assert.strictEqual(yield* refused(() => kms.send(new DecryptCommand({ CiphertextBlob: d.CiphertextBlob! }))), "InvalidCiphertextException")

      // The token itself, once the service has closed its session: one key per version, sensitive
      // and non-extractable; the deleted key's are gone.
      yield* call(() => closeService())
      const labels = yield* Effect.scoped(Effect.gen(function*() {
        const { hsm } = yield* Pkcs11Kms.make({ library: LIBRARY, tokenLabel: "objcrypt-kms", pin: Redacted.make("4321") })
        const keys = yield* hsm.listKeys
        for (const k of keys) {
          assert.isFalse(k.extractable)
          assert.isTrue(k.sensitive)
          assert.strictEqual((yield* Effect.flip(hsm.exportKey(k.label)))._tag, "KeyUnusable")
        }
        return keys.map((k) => k.label).sort()
      }))
      assert.deepStrictEqual(labels, [`kms-${key.KeyId}-v1`, `kms-${key.KeyId}-v2`])
    }), { timeout: 120_000 })
})
