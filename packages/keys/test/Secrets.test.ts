import { assert, describe, it } from "@effect/vitest"
import { Cause, Context, Effect, Exit, Layer, Logger, LogLevel, Redacted } from "effect"
import { Kms } from "@objcrypt/core/Kms"
import * as crypto from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as AuditLog from "../src/AuditLog.js"
import * as Backup from "../src/Backup.js"
import { KeyManager } from "../src/KeyManager.js"
import * as LocalKeyStore from "../src/LocalKeyStore.js"
import * as LocalKms from "../src/LocalKms.js"
import { config, lowCost, tmpDir, writeFile } from "./helpers.js"

const forms = (bytes: Uint8Array): Array<string> => {
  const b = Buffer.from(bytes)
  return [
    b.toString("hex"),
    b.toString("hex").toUpperCase(),
    b.toString("base64"),
    b.toString("base64").replace(/=+$/, ""),
    b.toString("base64url"),
    b.toString("latin1"),
    Array.from(b).join(",")
  ]
}

describe("key material never leaks", () => {
  it.scoped("not into logs, error messages, String(error), JSON of errors, causes or the audit log", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const file = path.join(dir, "store.ocks")
      const auditFile = path.join(dir, "audit.jsonl")
      const secret = crypto.randomBytes(32)
      const secrets: Array<Uint8Array> = [secret, secret.subarray(0, 31), Buffer.concat([secret, Buffer.from([7])])]
      const logs: Array<string> = []
      const captured: Array<string> = []

      const logger = Logger.make(({ message, cause, annotations, logLevel }) => {
        logs.push(`${logLevel.label} ${JSON.stringify(message)} ${Cause.pretty(cause)} ${JSON.stringify([...annotations])}`)
      })
      const layer = LocalKms.layer.pipe(
        Layer.provideMerge(LocalKeyStore.layer(config(file))),
        Layer.provideMerge(AuditLog.layerFile(auditFile)),
        Layer.provideMerge(Logger.replace(Logger.defaultLogger, logger))
      )
      const ctx = yield* Layer.build(layer)
      const manager = Context.get(ctx, KeyManager)
      const kms = Context.get(ctx, Kms)

      /** Runs an operation expected to fail and records every rendering of its failure. */
      const failing = <A, E>(label: string, effect: Effect.Effect<A, E, never>) =>
        Effect.gen(function*() {
          const exit = yield* Effect.exit(effect.pipe(Effect.tapErrorCause((c) => Effect.logError(label, c))))
          assert.isTrue(Exit.isFailure(exit), label)
          if (Exit.isFailure(exit)) {
            const e = Cause.squash(exit.cause) as Error
            captured.push(String(e), e.message, JSON.stringify(e), String(e.stack), Cause.pretty(exit.cause), JSON.stringify(exit))
          }
        }).pipe(Effect.provide(ctx), Logger.withMinimumLogLevel(LogLevel.All))

      const r = Redacted.make
      yield* manager.import({ name: "k1", material: r(secret), format: "raw" })
      yield* manager.import({ name: "k2", material: r(secret.toString("hex")) })
      yield* manager.import({ name: "k3", material: r(JSON.stringify({ kty: "oct", k: secret.toString("base64url") })) })
      yield* Effect.logInfo("exported", yield* manager.export("k1", { format: "hex" }))
      const dk = yield* kms.generateDataKey("k1", { bucket: "b" })
      secrets.push(Redacted.value(dk.plaintext))
      yield* Effect.logDebug("data key", dk)

      yield* failing("31-byte raw", manager.import({ name: "short", material: r(secret.subarray(0, 31)), format: "raw" }))
      yield* failing("33-byte hex", manager.import({ name: "long", material: r(Buffer.concat([secret, Buffer.from([7])]).toString("hex")), format: "hex" }))
      yield* failing("31-byte base64", manager.import({ name: "short", material: r(secret.subarray(0, 31).toString("base64")) }))
      yield* failing("bad hex", manager.import({ name: "bad", material: r(secret.toString("hex") + "zz"), format: "hex" }))
      yield* failing("bad base64", manager.import({ name: "bad", material: r(secret.toString("base64") + "!"), format: "base64" }))
      yield* failing("broken JSON", manager.import({ name: "bad", material: r(`{"kty":"oct","k":"${secret.toString("base64url")}"`) }))
      yield* failing("wrong JWK alg", manager.import({ name: "bad", material: r(JSON.stringify({ kty: "oct", k: secret.toString("base64url"), alg: "HS256" })) }))
      yield* failing("bad PEM", manager.import({ name: "bad", material: r(`-----BEGIN PRIVATE KEY-----\n${secret.toString("base64")}\n-----END PRIVATE KEY-----\n`) }))
      yield* failing("duplicate", manager.import({ name: "k1", material: r(secret), format: "raw" }))
      yield* failing("wrong context", kms.decrypt(dk.ciphertext, { bucket: "other" }))
      yield* failing("encrypt too big", kms.encrypt("k1", r(new Uint8Array(5000)), {}))
      yield* failing("wrong purpose pem", manager.export("k1", { format: "pem" }))
      yield* manager.generate({ name: "locked", extractable: false })
      yield* failing("not extractable", manager.export("locked", { format: "raw" }))
      yield* failing("wrong passphrase", LocalKeyStore.make(config(file, { passphrase: r("wrong") })))
      const bundle = yield* Backup.create({ passphrase: r("backup"), ...lowCost }).pipe(Effect.provide(ctx))
      yield* failing("tampered bundle", Backup.verify(Buffer.concat([bundle.subarray(0, -1), Buffer.from([0])]), r("backup")))
      const good = yield* Effect.promise(() => fs.readFile(file))
      yield* writeFile(file, good.subarray(0, good.length - 5))
      yield* failing("corrupt store", manager.list())
      yield* writeFile(file, good)

      // Materials are Redacted wherever they travel.
      const resolved = yield* manager.resolveRef("k1")
      captured.push(String(resolved.info), JSON.stringify(resolved), String(dk.plaintext), JSON.stringify(dk.plaintext))
      const k1 = yield* manager.show("k1")
      captured.push(JSON.stringify(k1))

      const audit = yield* Effect.promise(() => fs.readFile(auditFile))
      assert.isAbove(audit.toString().split("\n").filter((l) => l.length > 0).length, 15)
      for (const line of audit.toString().trim().split("\n")) JSON.parse(line)
      assert.include(audit.toString(), "\"operation\":\"kms.decrypt\"")
      assert.include(audit.toString(), "\"outcome\":\"failure\"")

      const haystacks = [...logs, ...captured, audit.toString("utf8"), audit.toString("latin1")]
      assert.isAbove(logs.length, 10)
      for (const s of secrets) {
        assert.strictEqual(audit.indexOf(Buffer.from(s)), -1, "raw bytes in the audit log")
        for (const form of forms(s)) {
          for (const h of haystacks) {
            assert.isFalse(h.includes(form), `a key form leaked into: ${h.slice(0, 120)}`)
          }
        }
      }
    }))

  it.scoped("the leak check itself can fail: an unredacted key would be found", () =>
    Effect.gen(function*() {
      const secret = crypto.randomBytes(32)
      const leaked = JSON.stringify({ material: secret.toString("base64") })
      assert.isTrue(forms(secret).some((f) => leaked.includes(f)))
      const dir = yield* tmpDir
      const s = yield* LocalKeyStore.make(config(path.join(dir, "s.ocks")))
      yield* s.manager.import({ name: "k", material: Redacted.make(secret) })
      const out = yield* s.manager.export("k", { format: "base64" })
      assert.isTrue(forms(secret).some((f) => Buffer.from(Redacted.value(out)).toString().includes(f)))
      assert.strictEqual(String(out), "<redacted>")
    }))
})
