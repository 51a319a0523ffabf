/**
 * The gateway's SSE-KMS through the KMS service (`sseKms` pointing at `kmsService`): key ids and
 * aliases are the service's, and a disabled key or a key pending deletion is refused by S3 calls
 * as S3 refuses them — no object written, no plaintext read.
 */
import { CreateAliasCommand, CreateKeyCommand, DisableKeyCommand, EnableKeyCommand, ScheduleKeyDeletionCommand } from "@aws-sdk/client-kms"
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as GatewayConfig from "../../src/GatewayConfig.js"
import * as gw from "../harness.js"
import * as kmsHarness from "./harness.js"

const call = <A>(f: () => Promise<A>) => Effect.promise(f)
const refused = (f: () => Promise<unknown>) =>
  Effect.tryPromise({ try: f, catch: (e) => e as { name: string; Code?: string; $metadata?: { httpStatusCode?: number } } }).pipe(
    Effect.flip,
    Effect.map((e) => ({ code: e.Code ?? e.name, status: e.$metadata?.httpStatusCode }))
  )

describe("gateway SSE-KMS through the KMS service", () => {
  it.effect("uses the service's keys and aliases, and refuses disabled, deleted and unknown keys", () =>
    Effect.gen(function*() {
      const service = yield* Effect.acquireRelease(call(() => kmsHarness.start()), (s) => Effect.promise(() => s.close()))
      const kms = kmsHarness.client(service)
      const primary = (yield* call(() => kms.send(new CreateKeyCommand({ Description: "gateway default" })))).KeyMetadata!
      yield* call(() => kms.send(new CreateAliasCommand({ AliasName: "alias/gateway", TargetKeyId: primary.KeyId! })))
      const other = (yield* call(() => kms.send(new CreateKeyCommand({ Description: "per object" })))).KeyMetadata!

      process.env["GW_TEST_KMS_SECRET"] = kmsHarness.users.alice.secret
      const dirs = gw.makeDirs()
      const config: GatewayConfig.GatewayConfig = {
        ...gw.configFor(dirs),
        sseKms: {
          endpoint: service.endpoint,
          accessKeyId: kmsHarness.users.alice.accessKeyId,
          secretAccessKey: { env: "GW_TEST_KMS_SECRET" },
          defaultKeyId: "alias/gateway"
        }
      }
      const gateway = yield* Effect.acquireRelease(call(() => gw.start(config)), (g) => Effect.promise(() => g.close()))
      const s3 = gw.client(gateway)
      yield* call(() => s3.send(new CreateBucketCommand({ Bucket: "kms" })))

      // aws:kms without a key id: the configured default (an alias of the service).
      const put = yield* call(() => s3.send(new PutObjectCommand({ Bucket: "kms", Key: "default", Body: "hello default", ServerSideEncryption: "aws:kms" })))
      assert.strictEqual(put.ServerSideEncryption, "aws:kms")
      assert.strictEqual(put.SSEKMSKeyId, primary.Arn, "the alias's key, as its ARN")
      const got = yield* call(() => s3.send(new GetObjectCommand({ Bucket: "kms", Key: "default" })))
      assert.strictEqual(yield* call(() => got.Body!.transformToString()), "hello default")

      // An explicit key id of the service, with an encryption context.
      const context = Buffer.from(JSON.stringify({ project: "objcrypt" })).toString("base64")
      yield* call(() =>
        s3.send(new PutObjectCommand({ Bucket: "kms", Key: "other", Body: "hello other", ServerSideEncryption: "aws:kms", SSEKMSKeyId: other.KeyId!, SSEKMSEncryptionContext: context }))
      )
      const head = yield* call(() => s3.send(new HeadObjectCommand({ Bucket: "kms", Key: "other" })))
      assert.strictEqual(head.ServerSideEncryption, "aws:kms")
      // S3 answers the key's ARN, whatever id or alias the request gave.
      assert.strictEqual(head.SSEKMSKeyId, other.Arn)

      // The service audited the gateway's calls under alice's access key.
      const audit = fs.readFileSync(service.auditLog, "utf8")
      const entries = audit.trim().split("\n").map((l) => JSON.parse(l) as { operation: string; principal?: string; keyId?: string })
      assert.isTrue(entries.some((e) => e.operation === "kms.Encrypt" && e.principal === "alice" && e.keyId === other.KeyId))
      assert.isTrue(entries.some((e) => e.operation === "kms.Decrypt" && e.principal === "alice"))
      assert.notInclude(audit, kmsHarness.users.alice.secret)

      // Unknown key: refused before anything is written.
      const unknown = yield* refused(() => s3.send(new PutObjectCommand({ Bucket: "kms", Key: "x", Body: "x", ServerSideEncryption: "aws:kms", SSEKMSKeyId: "alias/missing" })))
      assert.strictEqual(unknown.code, "KMS.NotFoundException")

      // Disabled key: no new object under it, and the stored one no longer opens.
      yield* call(() => kms.send(new DisableKeyCommand({ KeyId: other.KeyId! })))
      const disabled = yield* refused(() => s3.send(new PutObjectCommand({ Bucket: "kms", Key: "y", Body: "y", ServerSideEncryption: "aws:kms", SSEKMSKeyId: other.KeyId! })))
      assert.strictEqual(disabled.code, "KMS.DisabledException")
      const noRead = yield* refused(() => s3.send(new GetObjectCommand({ Bucket: "kms", Key: "other" })))
      assert.deepStrictEqual(noRead, { code: "AccessDenied", status: 403 })
      const absent = yield* refused(() => s3.send(new HeadObjectCommand({ Bucket: "kms", Key: "y" })))
      assert.strictEqual(absent.status, 404)

      // Re-enabled, it reads again; pending deletion, it is refused again.
      yield* call(() => kms.send(new EnableKeyCommand({ KeyId: other.KeyId! })))
      const back = yield* call(() => s3.send(new GetObjectCommand({ Bucket: "kms", Key: "other" })))
      assert.strictEqual(yield* call(() => back.Body!.transformToString()), "hello other")
      yield* call(() => kms.send(new ScheduleKeyDeletionCommand({ KeyId: other.KeyId!, PendingWindowInDays: 7 })))
      const pending = yield* refused(() => s3.send(new PutObjectCommand({ Bucket: "kms", Key: "z", Body: "z", ServerSideEncryption: "aws:kms", SSEKMSKeyId: other.KeyId! })))
      assert.strictEqual(pending.code, "KMS.KMSInvalidStateException")
    }).pipe(Effect.scoped), 60_000)

  it.effect("the configuration accepts a kmsService listener and sseKms, and refuses a malformed one", () =>
    Effect.gen(function*() {
      const dirs = gw.makeDirs()
      const base = {
        backend: { type: "fs", root: dirs.root },
        users: [{ name: "alice", accessKeyId: "AKIAALICE0000001", secretAccessKey: { env: "X" }, buckets: "*" }],
        keyStore: { path: dirs.keystore, passphrase: { env: "Y" } }
      }
      const ok = yield* GatewayConfig.decode({
        ...base,
        kmsService: {
          listen: { host: "127.0.0.1", port: 9001 },
          backend: { type: "keyStore", path: dirs.keystore, passphrase: { env: "Y" } },
          registry: `${dirs.dir}/registry.json`,
          auditLog: `${dirs.dir}/audit.jsonl`,
          grants: [{ accessKeyId: "AKIAALICE0000001", keys: "*", operations: "*" }]
        },
        sseKms: { endpoint: "http://127.0.0.1:9001", accessKeyId: "AKIAALICE0000001", secretAccessKey: { env: "X" }, defaultKeyId: "alias/s3" }
      })
      assert.strictEqual(ok.kmsService?.listen.port, 9001)
      assert.strictEqual(ok.sseKms?.defaultKeyId, "alias/s3")
      const bad = yield* Effect.flip(GatewayConfig.decode({ ...base, sseKms: { endpoint: "http://x" } }))
      assert.strictEqual(bad._tag, "ConfigFileError")
      assert.include(bad.detail, "accessKeyId")
    }))
})
