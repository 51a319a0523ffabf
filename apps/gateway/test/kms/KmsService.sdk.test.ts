/**
 * The KMS service on 127.0.0.1 driven by the real `@aws-sdk/client-kms`: every operation, every
 * error it documents for them, grants, lifecycles and the audit log.
 */
import {
  CancelKeyDeletionCommand,
  CreateAliasCommand,
  CreateKeyCommand,
  DecryptCommand,
  DeleteAliasCommand,
  DescribeKeyCommand,
  DisableKeyCommand,
  DisableKeyRotationCommand,
  EnableKeyCommand,
  EnableKeyRotationCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  GenerateDataKeyWithoutPlaintextCommand,
  GenerateRandomCommand,
  GetKeyRotationStatusCommand,
  ListAliasesCommand,
  ListKeyRotationsCommand,
  ListKeysCommand,
  ReEncryptCommand,
  RotateKeyOnDemandCommand,
  ScheduleKeyDeletionCommand,
  UpdateAliasCommand
} from "@aws-sdk/client-kms"
import type { KMSClient } from "@aws-sdk/client-kms"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { SignatureV4 } from "@smithy/signature-v4"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import { client, DAY, REGION, start, users } from "./harness.js"
import type { Service } from "./harness.js"

const call = <A>(f: () => Promise<A>) => Effect.promise(f)
/** Runs an SDK call expected to fail; yields the exception name and HTTP status. */
const refused = (f: () => Promise<unknown>) =>
  Effect.tryPromise({ try: f, catch: (e) => e as { name: string; message: string; $metadata?: { httpStatusCode?: number } } }).pipe(
    Effect.flip,
    Effect.map((e) => ({ name: e.name, status: e.$metadata?.httpStatusCode, message: e.message }))
  )

/** A raw request signed by the SDK's own signer, for inputs the SDK would not send. */
const raw = (target: string, body: string) =>
  Effect.promise(async () => {
    const url = new URL(svc.endpoint)
    const signer = new SignatureV4({
      service: "kms",
      region: REGION,
      credentials: { accessKeyId: users.alice.accessKeyId, secretAccessKey: users.alice.secret },
      sha256: class {
        private readonly h = crypto.createHash("sha256")
        private readonly m: crypto.Hmac | undefined
        constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
          this.m = secret === undefined ? undefined : crypto.createHmac("sha256", typeof secret === "string" ? secret : new Uint8Array(secret as ArrayBuffer))
        }
        update(d: string | ArrayBuffer | ArrayBufferView) {
          const b = typeof d === "string" ? d : ArrayBuffer.isView(d) ? new Uint8Array(d.buffer, d.byteOffset, d.byteLength) : new Uint8Array(d)
          if (this.m === undefined) this.h.update(b)
          else this.m.update(b)
        }
        digest() {
          return Promise.resolve(new Uint8Array((this.m ?? this.h).digest()))
        }
        reset() {
          // one-shot
        }
      }
    })
    const signed = await signer.sign({
      method: "POST",
      protocol: "http:",
      hostname: url.hostname,
      port: Number(url.port),
      path: "/",
      query: {},
      headers: { host: url.host, "content-type": "application/x-amz-json-1.1", "x-amz-target": target },
      body
    })
    const res = await fetch(svc.endpoint, { method: "POST", headers: signed.headers as Record<string, string>, body })
    return { status: res.status, type: (await res.json() as { __type: string }).__type }
  })

let svc: Service
let kms: KMSClient

beforeAll(async () => {
  svc = await start()
  kms = client(svc)
}, 60_000)
afterAll(async () => {
  kms.destroy()
  await svc.close()
})

const newKey = (description = "test key") =>
  Effect.map(call(() => kms.send(new CreateKeyCommand({ Description: description }))), (r) => r.KeyMetadata!)

describe("KMS service with @aws-sdk/client-kms", () => {
  it.effect("CreateKey / DescribeKey / ListKeys: metadata as AWS returns it, by id, ARN, alias and alias ARN", () =>
    Effect.gen(function*() {
      const key = yield* newKey("payments")
      assert.match(key.KeyId!, /^[0-9a-f-]{36}$/)
      assert.strictEqual(key.Arn, `arn:aws:kms:us-east-1:000000000000:key/${key.KeyId}`)
      assert.deepStrictEqual(
        [key.KeyState, key.Enabled, key.KeyUsage, key.KeySpec, key.Description, key.KeyManager, key.Origin],
        ["Enabled", true, "ENCRYPT_DECRYPT", "SYMMETRIC_DEFAULT", "payments", "CUSTOMER", "AWS_KMS"]
      )
      assert.instanceOf(key.CreationDate, Date)
      assert.isTrue(Math.abs(key.CreationDate!.getTime() - Date.now()) < 60_000)
      const alias = `alias/describe-${crypto.randomBytes(3).toString("hex")}`
      yield* call(() => kms.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: key.KeyId! })))
      for (const ref of [key.KeyId!, key.Arn!, alias, `arn:aws:kms:us-east-1:000000000000:${alias}`]) {
        const d = yield* call(() => kms.send(new DescribeKeyCommand({ KeyId: ref })))
        assert.strictEqual(d.KeyMetadata!.KeyId, key.KeyId, ref)
      }
      const all: Array<string> = []
      let marker: string | undefined
      do {
        const page = yield* call(() => kms.send(new ListKeysCommand({ Limit: 1, ...(marker === undefined ? {} : { Marker: marker }) })))
        assert.isAtMost(page.Keys!.length, 1)
        for (const k of page.Keys!) {
          all.push(k.KeyId!)
          assert.strictEqual(k.KeyArn, `arn:aws:kms:us-east-1:000000000000:key/${k.KeyId}`)
        }
        marker = page.Truncated === true ? page.NextMarker : undefined
      } while (marker !== undefined)
      assert.include(all, key.KeyId)
      assert.strictEqual(new Set(all).size, all.length, "pages do not repeat keys")
      const bad = yield* refused(() => kms.send(new ListKeysCommand({ Marker: "bm90LWEta2V5" })))
      assert.strictEqual(bad.name, "InvalidMarkerException")
    }))

  it.effect("unknown keys, aliases and ARNs of another region or account are NotFoundException", () =>
    Effect.gen(function*() {
      const key = yield* newKey()
      for (const ref of [
        crypto.randomUUID(),
        "alias/does-not-exist",
        "not-a-key-id",
        `arn:aws:kms:eu-west-1:000000000000:key/${key.KeyId}`,
        `arn:aws:kms:us-east-1:111122223333:key/${key.KeyId}`
      ]) {
        const e = yield* refused(() => kms.send(new DescribeKeyCommand({ KeyId: ref })))
        assert.deepStrictEqual([e.name, e.status], ["NotFoundException", 400], ref)
        const g = yield* refused(() => kms.send(new GenerateDataKeyCommand({ KeyId: ref, KeySpec: "AES_256" })))
        assert.strictEqual(g.name, "NotFoundException")
      }
    }))

  it.effect("aliases: create, list (all and per key), update, delete; errors for duplicates, bad names and missing aliases", () =>
    Effect.gen(function*() {
      const a = yield* newKey()
      const b = yield* newKey()
      const alias = `alias/app/${crypto.randomBytes(3).toString("hex")}`
      yield* call(() => kms.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: a.Arn! })))
      const dup = yield* refused(() => kms.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: b.KeyId! })))
      assert.strictEqual(dup.name, "AlreadyExistsException")
      const listed = yield* call(() => kms.send(new ListAliasesCommand({ KeyId: a.KeyId! })))
      assert.deepStrictEqual(listed.Aliases!.map((x) => [x.AliasName, x.TargetKeyId, x.AliasArn]), [[
        alias,
        a.KeyId,
        `arn:aws:kms:us-east-1:000000000000:${alias}`
      ]])
      assert.instanceOf(listed.Aliases![0]!.CreationDate, Date)
      const all = yield* call(() => kms.send(new ListAliasesCommand({})))
      assert.include(all.Aliases!.map((x) => x.AliasName), alias)
      yield* call(() => kms.send(new UpdateAliasCommand({ AliasName: alias, TargetKeyId: b.KeyId! })))
      assert.strictEqual((yield* call(() => kms.send(new DescribeKeyCommand({ KeyId: alias })))).KeyMetadata!.KeyId, b.KeyId)
      assert.deepStrictEqual((yield* call(() => kms.send(new ListAliasesCommand({ KeyId: a.KeyId! })))).Aliases, [])
      const upMissing = yield* refused(() => kms.send(new UpdateAliasCommand({ AliasName: "alias/nope-nope", TargetKeyId: b.KeyId! })))
      assert.strictEqual(upMissing.name, "NotFoundException")
      const toAlias = yield* refused(() => kms.send(new CreateAliasCommand({ AliasName: "alias/x-to-alias", TargetKeyId: alias })))
      assert.strictEqual(toAlias.name, "ValidationException")
      const badName = yield* refused(() => kms.send(new CreateAliasCommand({ AliasName: "no-prefix", TargetKeyId: a.KeyId! })))
      assert.strictEqual(badName.name, "ValidationException")
      const reserved = yield* refused(() => kms.send(new CreateAliasCommand({ AliasName: "alias/aws/s3", TargetKeyId: a.KeyId! })))
      assert.strictEqual(reserved.name, "InvalidAliasNameException")
      const noKey = yield* refused(() => kms.send(new CreateAliasCommand({ AliasName: "alias/x-no-key", TargetKeyId: crypto.randomUUID() })))
      assert.strictEqual(noKey.name, "NotFoundException")
      yield* call(() => kms.send(new DeleteAliasCommand({ AliasName: alias })))
      const gone = yield* refused(() => kms.send(new DescribeKeyCommand({ KeyId: alias })))
      assert.strictEqual(gone.name, "NotFoundException")
      const again = yield* refused(() => kms.send(new DeleteAliasCommand({ AliasName: alias })))
      assert.strictEqual(again.name, "NotFoundException")
    }))

  it.effect("Encrypt / Decrypt: the blob names its key, the context is bound; a wrong or missing context and a tampered blob are InvalidCiphertextException", () =>
    Effect.gen(function*() {
      const key = yield* newKey()
      const plaintext = crypto.randomBytes(100)
      const ctx = { bucket: "b", object: "k/é" }
      const enc = yield* call(() => kms.send(new EncryptCommand({ KeyId: key.KeyId!, Plaintext: plaintext, EncryptionContext: ctx })))
      assert.strictEqual(enc.KeyId, key.Arn)
      assert.strictEqual(enc.EncryptionAlgorithm, "SYMMETRIC_DEFAULT")
      assert.isFalse(Buffer.from(enc.CiphertextBlob!).includes(plaintext.subarray(0, 16)))
      const dec = yield* call(() => kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob!, EncryptionContext: ctx })))
      assert.isTrue(Buffer.from(dec.Plaintext!).equals(plaintext))
      assert.strictEqual(dec.KeyId, key.Arn)
      const withKey = yield* call(() => kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob!, EncryptionContext: ctx, KeyId: key.Arn! })))
      assert.isTrue(Buffer.from(withKey.Plaintext!).equals(plaintext))
      for (const bad of [{}, { bucket: "b" }, { ...ctx, object: "k/e" }, { ...ctx, extra: "x" }] as Array<Record<string, string>>) {
        const e = yield* refused(() => kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob!, EncryptionContext: bad })))
        assert.deepStrictEqual([e.name, e.status], ["InvalidCiphertextException", 400], JSON.stringify(bad))
      }
      const blob = Buffer.from(enc.CiphertextBlob!)
      for (const i of [0, 5, 21, 30, 40, blob.length - 1]) {
        const t = Buffer.from(blob)
        t[i] = t[i]! ^ 0x01
        const e = yield* refused(() => kms.send(new DecryptCommand({ CiphertextBlob: t, EncryptionContext: ctx })))
        assert.strictEqual(e.name, "InvalidCiphertextException", `byte ${i}`)
      }
      for (const cut of [blob.subarray(0, 40), blob.subarray(0, blob.length - 1), Buffer.from("garbage")]) {
        const e = yield* refused(() => kms.send(new DecryptCommand({ CiphertextBlob: cut, EncryptionContext: ctx })))
        assert.strictEqual(e.name, "InvalidCiphertextException")
      }
      const other = yield* newKey()
      const wrongKey = yield* refused(() => kms.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: ctx, KeyId: other.KeyId! })))
      assert.strictEqual(wrongKey.name, "IncorrectKeyException")
      const tooBig = yield* refused(() => kms.send(new EncryptCommand({ KeyId: key.KeyId!, Plaintext: crypto.randomBytes(4097) })))
      assert.strictEqual(tooBig.name, "ValidationException")
      const empty = yield* refused(() => kms.send(new EncryptCommand({ KeyId: key.KeyId!, Plaintext: new Uint8Array(0) })))
      assert.strictEqual(empty.name, "ValidationException")
    }))

  it.effect("GenerateDataKey (AES_256, AES_128, NumberOfBytes), WithoutPlaintext, GenerateRandom; ValidationException for bad sizes", () =>
    Effect.gen(function*() {
      const key = yield* newKey()
      const ctx = { purpose: "dk" }
      const dk = yield* call(() => kms.send(new GenerateDataKeyCommand({ KeyId: key.KeyId!, KeySpec: "AES_256", EncryptionContext: ctx })))
      assert.strictEqual(dk.Plaintext!.length, 32)
      assert.strictEqual(dk.KeyId, key.Arn)
      const back = yield* call(() => kms.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob!, EncryptionContext: ctx })))
      assert.isTrue(Buffer.from(back.Plaintext!).equals(Buffer.from(dk.Plaintext!)))
      assert.strictEqual((yield* call(() => kms.send(new GenerateDataKeyCommand({ KeyId: key.KeyId!, KeySpec: "AES_128" })))).Plaintext!.length, 16)
      assert.strictEqual((yield* call(() => kms.send(new GenerateDataKeyCommand({ KeyId: key.KeyId!, NumberOfBytes: 64 })))).Plaintext!.length, 64)
      const wp = yield* call(() => kms.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: key.KeyId!, KeySpec: "AES_256", EncryptionContext: ctx })))
      assert.isUndefined((wp as { Plaintext?: Uint8Array }).Plaintext)
      assert.strictEqual(wp.KeyId, key.Arn)
      const wpBack = yield* call(() => kms.send(new DecryptCommand({ CiphertextBlob: wp.CiphertextBlob!, EncryptionContext: ctx })))
      assert.strictEqual(wpBack.Plaintext!.length, 32)
      for (const input of [{}, { KeySpec: "AES_256" as const, NumberOfBytes: 32 }, { NumberOfBytes: 0 }, { NumberOfBytes: 1025 }]) {
        const e = yield* refused(() => kms.send(new GenerateDataKeyCommand({ KeyId: key.KeyId!, ...input })))
        assert.strictEqual(e.name, "ValidationException", JSON.stringify(input))
      }
      const r1 = yield* call(() => kms.send(new GenerateRandomCommand({ NumberOfBytes: 48 })))
      const r2 = yield* call(() => kms.send(new GenerateRandomCommand({ NumberOfBytes: 48 })))
      assert.strictEqual(r1.Plaintext!.length, 48)
      assert.isFalse(Buffer.from(r1.Plaintext!).equals(Buffer.from(r2.Plaintext!)))
      for (const n of [0, 1025]) {
        assert.strictEqual((yield* refused(() => kms.send(new GenerateRandomCommand({ NumberOfBytes: n })))).name, "ValidationException")
      }
      const dry = yield* refused(() => kms.send(new GenerateDataKeyCommand({ KeyId: key.KeyId!, KeySpec: "AES_256", DryRun: true })))
      assert.strictEqual(dry.name, "DryRunOperationException")
    }))

  it.effect("ReEncrypt moves a blob to another key and context; source checks apply", () =>
    Effect.gen(function*() {
      const src = yield* newKey()
      const dst = yield* newKey()
      const pt = crypto.randomBytes(32)
      const enc = yield* call(() => kms.send(new EncryptCommand({ KeyId: src.KeyId!, Plaintext: pt, EncryptionContext: { a: "1" } })))
      const re = yield* call(() =>
        kms.send(new ReEncryptCommand({
          CiphertextBlob: enc.CiphertextBlob!,
          SourceEncryptionContext: { a: "1" },
          DestinationKeyId: dst.KeyId!,
          DestinationEncryptionContext: { b: "2" }
        }))
      )
      assert.deepStrictEqual([re.SourceKeyId, re.KeyId], [src.Arn, dst.Arn])
      const dec = yield* call(() => kms.send(new DecryptCommand({ CiphertextBlob: re.CiphertextBlob!, EncryptionContext: { b: "2" } })))
      assert.isTrue(Buffer.from(dec.Plaintext!).equals(pt))
      assert.strictEqual(dec.KeyId, dst.Arn)
      const wrongCtx = yield* refused(() =>
        kms.send(new ReEncryptCommand({ CiphertextBlob: enc.CiphertextBlob!, SourceEncryptionContext: { a: "2" }, DestinationKeyId: dst.KeyId! }))
      )
      assert.strictEqual(wrongCtx.name, "InvalidCiphertextException")
      const wrongSource = yield* refused(() =>
        kms.send(new ReEncryptCommand({ CiphertextBlob: enc.CiphertextBlob!, SourceEncryptionContext: { a: "1" }, SourceKeyId: dst.KeyId!, DestinationKeyId: dst.KeyId! }))
      )
      assert.strictEqual(wrongSource.name, "IncorrectKeyException")
      yield* call(() => kms.send(new DisableKeyCommand({ KeyId: dst.KeyId! })))
      const disabledDest = yield* refused(() =>
        kms.send(new ReEncryptCommand({ CiphertextBlob: enc.CiphertextBlob!, SourceEncryptionContext: { a: "1" }, DestinationKeyId: dst.KeyId! }))
      )
      assert.strictEqual(disabledDest.name, "DisabledException")
    }))

  it.effect("DisableKey refuses every use with DisabledException; EnableKey restores it", () =>
    Effect.gen(function*() {
      const key = yield* newKey()
      const enc = yield* call(() => kms.send(new EncryptCommand({ KeyId: key.KeyId!, Plaintext: Buffer.from("x") })))
      yield* call(() => kms.send(new DisableKeyCommand({ KeyId: key.KeyId! })))
      const d = yield* call(() => kms.send(new DescribeKeyCommand({ KeyId: key.KeyId! })))
      assert.deepStrictEqual([d.KeyMetadata!.KeyState, d.KeyMetadata!.Enabled], ["Disabled", false])
      for (
        const f of [
          () => kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob! })),
          () => kms.send(new EncryptCommand({ KeyId: key.KeyId!, Plaintext: Buffer.from("x") })),
          () => kms.send(new GenerateDataKeyCommand({ KeyId: key.KeyId!, KeySpec: "AES_256" })),
          () => kms.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: key.KeyId!, KeySpec: "AES_256" })),
          () => kms.send(new RotateKeyOnDemandCommand({ KeyId: key.KeyId! })),
          () => kms.send(new EnableKeyRotationCommand({ KeyId: key.KeyId! }))
        ]
      ) {
        const e = yield* refused(f)
        assert.deepStrictEqual([e.name, e.status], ["DisabledException", 400])
      }
      yield* call(() => kms.send(new EnableKeyCommand({ KeyId: key.KeyId! })))
      const dec = yield* call(() => kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob! })))
      assert.strictEqual(Buffer.from(dec.Plaintext!).toString(), "x")
    }))

  it.effect("rotation: on demand and automatic; old versions keep decrypting, new blobs use the new version", () =>
    Effect.gen(function*() {
      const key = yield* newKey()
      const status0 = yield* call(() => kms.send(new GetKeyRotationStatusCommand({ KeyId: key.KeyId! })))
      assert.isFalse(status0.KeyRotationEnabled)
      const before = yield* call(() => kms.send(new EncryptCommand({ KeyId: key.KeyId!, Plaintext: Buffer.from("v1") })))
      const rot = yield* call(() => kms.send(new RotateKeyOnDemandCommand({ KeyId: key.KeyId! })))
      assert.strictEqual(rot.KeyId, key.KeyId)
      const after = yield* call(() => kms.send(new EncryptCommand({ KeyId: key.KeyId!, Plaintext: Buffer.from("v2") })))
      assert.isFalse(Buffer.from(before.CiphertextBlob!).subarray(20, 24).equals(Buffer.from(after.CiphertextBlob!).subarray(20, 24)), "new version in the blob")
      for (const [blob, text] of [[before.CiphertextBlob!, "v1"], [after.CiphertextBlob!, "v2"]] as const) {
        const dec = yield* call(() => kms.send(new DecryptCommand({ CiphertextBlob: blob })))
        assert.strictEqual(Buffer.from(dec.Plaintext!).toString(), text)
      }
      yield* call(() => kms.send(new EnableKeyRotationCommand({ KeyId: key.KeyId!, RotationPeriodInDays: 90 })))
      const status = yield* call(() => kms.send(new GetKeyRotationStatusCommand({ KeyId: key.KeyId! })))
      assert.isTrue(status.KeyRotationEnabled)
      assert.strictEqual(status.RotationPeriodInDays, 90)
      assert.isTrue(Math.abs(status.NextRotationDate!.getTime() - (svc.now() + 90 * DAY)) < 120_000)
      const badPeriod = yield* refused(() => kms.send(new EnableKeyRotationCommand({ KeyId: key.KeyId!, RotationPeriodInDays: 30 })))
      assert.strictEqual(badPeriod.name, "ValidationException")
      svc.advance(91 * DAY)
      const auto = yield* call(() => kms.send(new EncryptCommand({ KeyId: key.KeyId!, Plaintext: Buffer.from("v3") })))
      assert.strictEqual(Buffer.from(auto.CiphertextBlob!).readUInt32BE(20), 3, "rotated automatically once the period passed")
      const rotations = yield* call(() => kms.send(new ListKeyRotationsCommand({ KeyId: key.KeyId! })))
      assert.deepStrictEqual(rotations.Rotations!.map((r) => r.RotationType), ["ON_DEMAND", "AUTOMATIC"])
      const dec1 = yield* call(() => kms.send(new DecryptCommand({ CiphertextBlob: before.CiphertextBlob! })))
      assert.strictEqual(Buffer.from(dec1.Plaintext!).toString(), "v1")
      yield* call(() => kms.send(new DisableKeyRotationCommand({ KeyId: key.KeyId! })))
      assert.isFalse((yield* call(() => kms.send(new GetKeyRotationStatusCommand({ KeyId: key.KeyId! })))).KeyRotationEnabled)
    }))

  it.effect("ScheduleKeyDeletion: pending keys are refused with KMSInvalidStateException; Cancel leaves the key disabled; after the window the key is gone", () =>
    Effect.gen(function*() {
      const key = yield* newKey()
      const alias = `alias/doomed-${crypto.randomBytes(3).toString("hex")}`
      yield* call(() => kms.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: key.KeyId! })))
      const enc = yield* call(() => kms.send(new EncryptCommand({ KeyId: key.KeyId!, Plaintext: Buffer.from("x") })))
      const tooShort = yield* refused(() => kms.send(new ScheduleKeyDeletionCommand({ KeyId: key.KeyId!, PendingWindowInDays: 6 })))
      assert.strictEqual(tooShort.name, "ValidationException")
      const s = yield* call(() => kms.send(new ScheduleKeyDeletionCommand({ KeyId: key.KeyId!, PendingWindowInDays: 7 })))
      assert.deepStrictEqual([s.KeyId, s.KeyState, s.PendingWindowInDays], [key.Arn, "PendingDeletion", 7])
      assert.isTrue(Math.abs(s.DeletionDate!.getTime() - (svc.now() + 7 * DAY)) < 120_000)
      const d = yield* call(() => kms.send(new DescribeKeyCommand({ KeyId: key.KeyId! })))
      assert.deepStrictEqual([d.KeyMetadata!.KeyState, d.KeyMetadata!.PendingDeletionWindowInDays], ["PendingDeletion", 7])
      for (
        const f of [
          () => kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob! })),
          () => kms.send(new EncryptCommand({ KeyId: key.KeyId!, Plaintext: Buffer.from("x") })),
          () => kms.send(new GenerateDataKeyCommand({ KeyId: alias, KeySpec: "AES_256" })),
          () => kms.send(new EnableKeyCommand({ KeyId: key.KeyId! })),
          () => kms.send(new DisableKeyCommand({ KeyId: key.KeyId! })),
          () => kms.send(new ScheduleKeyDeletionCommand({ KeyId: key.KeyId! })),
          () => kms.send(new CreateAliasCommand({ AliasName: `${alias}-2`, TargetKeyId: key.KeyId! }))
        ]
      ) {
        const e = yield* refused(f)
        assert.deepStrictEqual([e.name, e.status], ["KMSInvalidStateException", 400])
      }
      const c = yield* call(() => kms.send(new CancelKeyDeletionCommand({ KeyId: key.KeyId! })))
      assert.strictEqual(c.KeyId, key.Arn)
      const afterCancel = yield* call(() => kms.send(new DescribeKeyCommand({ KeyId: key.KeyId! })))
      assert.strictEqual(afterCancel.KeyMetadata!.KeyState, "Disabled")
      assert.isUndefined(afterCancel.KeyMetadata!.DeletionDate)
      const notPending = yield* refused(() => kms.send(new CancelKeyDeletionCommand({ KeyId: key.KeyId! })))
      assert.strictEqual(notPending.name, "KMSInvalidStateException")
      yield* call(() => kms.send(new EnableKeyCommand({ KeyId: key.KeyId! })))
      assert.strictEqual(Buffer.from((yield* call(() => kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob! })))).Plaintext!).toString(), "x")

      yield* call(() => kms.send(new ScheduleKeyDeletionCommand({ KeyId: key.KeyId!, PendingWindowInDays: 7 })))
      svc.advance(8 * DAY)
      const gone = yield* refused(() => kms.send(new DescribeKeyCommand({ KeyId: key.KeyId! })))
      assert.strictEqual(gone.name, "NotFoundException")
      const aliasGone = yield* refused(() => kms.send(new DescribeKeyCommand({ KeyId: alias })))
      assert.strictEqual(aliasGone.name, "NotFoundException")
      const blobGone = yield* refused(() => kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob! })))
      assert.strictEqual(blobGone.name, "InvalidCiphertextException")
      const cancelGone = yield* refused(() => kms.send(new CancelKeyDeletionCommand({ KeyId: key.KeyId! })))
      assert.strictEqual(cancelGone.name, "NotFoundException")
    }))

  it.effect("grants: a user without a grant, or outside its keys and operations, gets AccessDeniedException", () =>
    Effect.gen(function*() {
      const key = yield* newKey()
      const bobKey = yield* newKey()
      yield* call(() => kms.send(new CreateAliasCommand({ AliasName: "alias/bob", TargetKeyId: bobKey.KeyId! })))
      const enc = yield* call(() => kms.send(new EncryptCommand({ KeyId: bobKey.KeyId!, Plaintext: Buffer.from("for bob"), EncryptionContext: { u: "bob" } })))
      const other = yield* call(() => kms.send(new EncryptCommand({ KeyId: key.KeyId!, Plaintext: Buffer.from("not for bob") })))
      const carol = client(svc, users.carol)
      const bob = client(svc, users.bob)
      try {
        for (
          const f of [
            () => carol.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob!, EncryptionContext: { u: "bob" } })),
            () => carol.send(new CreateKeyCommand({})),
            () => carol.send(new ListKeysCommand({})),
            () => carol.send(new GenerateRandomCommand({ NumberOfBytes: 8 })),
            () => carol.send(new GenerateDataKeyCommand({ KeyId: key.KeyId!, KeySpec: "AES_256" })),
            () => bob.send(new DecryptCommand({ CiphertextBlob: other.CiphertextBlob! })),
            () => bob.send(new GenerateDataKeyCommand({ KeyId: "alias/bob", KeySpec: "AES_256" })),
            () => bob.send(new DisableKeyCommand({ KeyId: "alias/bob" })),
            () => bob.send(new CreateKeyCommand({}))
          ]
        ) {
          const e = yield* refused(f)
          assert.deepStrictEqual([e.name, e.status], ["AccessDeniedException", 400])
          assert.match(e.message, /is not authorized to perform: kms:/)
        }
        const ok = yield* call(() => bob.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob!, EncryptionContext: { u: "bob" } })))
        assert.strictEqual(Buffer.from(ok.Plaintext!).toString(), "for bob")
        const viaAlias = yield* call(() => bob.send(new EncryptCommand({ KeyId: "alias/bob", Plaintext: Buffer.from("y") })))
        assert.strictEqual(viaAlias.KeyId, bobKey.Arn)
      } finally {
        carol.destroy()
        bob.destroy()
      }
    }))

  it.effect("authentication: unknown access key, wrong secret and no signature are refused, and audited", () =>
    Effect.gen(function*() {
      const stranger = client(svc, { accessKeyId: "AKIANOBODY0000000", secret: "x" })
      const liar = client(svc, { accessKeyId: users.alice.accessKeyId, secret: "not-alice-secret" })
      try {
        assert.strictEqual((yield* refused(() => stranger.send(new ListKeysCommand({})))).name, "UnrecognizedClientException")
        assert.strictEqual((yield* refused(() => liar.send(new ListKeysCommand({})))).name, "InvalidSignatureException")
      } finally {
        stranger.destroy()
        liar.destroy()
      }
      const unsigned = yield* call(() =>
        fetch(svc.endpoint, {
          method: "POST",
          headers: { "content-type": "application/x-amz-json-1.1", "x-amz-target": "TrentService.ListKeys" },
          body: "{}"
        }).then(async (r) => ({ status: r.status, body: await r.json() as { __type: string } }))
      )
      assert.deepStrictEqual([unsigned.status, unsigned.body.__type], [403, "MissingAuthenticationTokenException"])
      const refusals = fs.readFileSync(svc.auditLog, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((e) => e["operation"] === "kms.ListKeys" && e["outcome"] === "failure" && !["alice", "carol"].includes(String(e["principal"])))
        .map((e) => [e["principal"], e["error"]])
      assert.deepStrictEqual(refusals, [
        ["unauthenticated:AKIANOBODY0000000", "UnrecognizedClientException"],
        [`unauthenticated:${users.alice.accessKeyId}`, "InvalidSignatureException"],
        [undefined, "MissingAuthenticationTokenException"]
      ], "refused calls are audited too")
    }))

  it.effect("the audit log has one entry per call with user, key and outcome, and no key material or plaintext", () =>
    Effect.gen(function*() {
      const key = yield* newKey()
      const dk = yield* call(() => kms.send(new GenerateDataKeyCommand({ KeyId: key.KeyId!, KeySpec: "AES_256", EncryptionContext: { audit: "yes" } })))
      const pt = Buffer.from("AUDIT-PLAINTEXT-MARKER-91c2")
      yield* call(() => kms.send(new EncryptCommand({ KeyId: key.KeyId!, Plaintext: pt })))
      yield* refused(() => kms.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob!, EncryptionContext: { audit: "no" } })))
      const text = fs.readFileSync(svc.auditLog, "utf8")
      const entries = text.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>)
      const mine = entries.filter((e) => e["keyId"] === key.KeyId)
      assert.deepStrictEqual(mine.map((e) => [e["operation"], e["outcome"], e["principal"]]), [
        ["kms.CreateKey", "success", "alice"],
        ["kms.GenerateDataKey", "success", "alice"],
        ["kms.Encrypt", "success", "alice"],
        ["kms.Decrypt", "failure", "alice"]
      ])
      assert.deepStrictEqual(mine[1]!["context"], { audit: "yes" })
      assert.strictEqual(mine[3]!["error"], "InvalidCiphertextException")
      const dataKey = Buffer.from(dk.Plaintext!)
      for (const secret of [dataKey.toString("base64"), dataKey.toString("hex"), pt.toString(), pt.toString("base64")]) {
        assert.notInclude(text, secret)
      }
      assert.strictEqual(fs.statSync(svc.auditLog).mode & 0o777, 0o600)
    }))
  it.effect("protocol errors: unknown target, malformed JSON, wrong types and non-base64 blobs", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* raw("TrentService.CreateCustomKeyStoreX", "{}"), { status: 400, type: "UnknownOperationException" })
      assert.deepStrictEqual(yield* raw("OtherService.ListKeys", "{}"), { status: 400, type: "UnknownOperationException" })
      assert.deepStrictEqual(yield* raw("TrentService.ListKeys", "{not json"), { status: 400, type: "SerializationException" })
      assert.deepStrictEqual(yield* raw("TrentService.ListKeys", "[]"), { status: 400, type: "SerializationException" })
      assert.deepStrictEqual(yield* raw("TrentService.ListKeys", "{\"Limit\":\"ten\"}"), { status: 400, type: "SerializationException" })
      assert.deepStrictEqual(yield* raw("TrentService.Decrypt", "{\"CiphertextBlob\":\"%%%\"}"), { status: 400, type: "SerializationException" })
      assert.deepStrictEqual(yield* raw("TrentService.Encrypt", "{\"KeyId\":\"alias/x\",\"Plaintext\":\"eA==\",\"EncryptionContext\":{\"a\":1}}"), {
        status: 400,
        type: "SerializationException"
      })
      assert.deepStrictEqual(yield* raw("TrentService.Decrypt", "{}"), { status: 400, type: "ValidationException" })
    }))
})
