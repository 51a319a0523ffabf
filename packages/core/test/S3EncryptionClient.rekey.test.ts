/**
 * `S3EncryptionClient.rekey`: the data key is rewrapped under another key without touching the
 * body, for V2 and V3, content metadata in the object's metadata or in an instruction file.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted, Stream } from "effect"
import * as crypto from "node:crypto"
import * as S3EC from "../src/S3EncryptionClient.js"
import { memoryKms } from "./support/Keys.js"
import * as MemoryStore from "./support/MemoryStore.js"

const aesKey = crypto.randomBytes(32)
const newAes = crypto.randomBytes(32)
const rsa = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey
const kms = memoryKms({ master: crypto.randomBytes(32), other: crypto.randomBytes(32) })

const aesW = S3EC.aesGcm({ material: Redacted.make(aesKey), description: { k: "old" } })
const newAesW = S3EC.aesGcm({ material: Redacted.make(newAes), description: { k: "new" } })
const rsaW = S3EC.rsaOaepSha1({ publicKey: crypto.createPublicKey(rsa) })
const kmsW = S3EC.kmsContext(kms, "master")

const onlyOld: S3EC.Materials = { keys: [{ _tag: "Aes", keyId: "old", material: Redacted.make(aesKey) }] }
const onlyNew: S3EC.Materials = { keys: [{ _tag: "Aes", keyId: "new", material: Redacted.make(newAes) }] }
const onlyRsa: S3EC.Materials = { keys: [{ _tag: "Private", keyId: "rsa", privateKey: Redacted.make(rsa) }] }
const ALLOW: S3EC.CommitmentPolicy = "RequireEncryptAllowDecrypt"

const read = (store: MemoryStore.MemoryStore, key: string, materials: S3EC.Materials) =>
  S3EC.getBytes(store, key, { materials, commitmentPolicy: ALLOW }).pipe(
    Effect.map((b) => Buffer.from(b)),
    Effect.provide(S3EC.layerNoSpool)
  )

const snapshot = (store: MemoryStore.MemoryStore) =>
  new Map([...store.objects].map(([k, e]) => [k, { bytes: Buffer.from(e.bytes), metadata: { ...e.metadata }, etag: e.etag }]))

describe("S3EncryptionClient.rekey", () => {
  for (const policy of ["ForbidEncryptAllowDecrypt", "RequireEncryptRequireDecrypt"] as const) {
    const version = policy === "ForbidEncryptAllowDecrypt" ? "V2" : "V3"
    for (const instructionFile of [false, true]) {
      const where = instructionFile ? "instruction file" : "object metadata"
      it.effect(`${version}, ${where}: AES/GCM → AES/GCM, RSA-OAEP-SHA1 and kms+context; the body and the version stay`, () =>
        Effect.gen(function*() {
          const store = MemoryStore.make()
          const pt = crypto.randomBytes(20_000)
          yield* S3EC.put(store, "o", Stream.succeed(pt), {
            wrapping: aesW,
            commitmentPolicy: policy,
            instructionFile,
            metadata: { owner: "me" },
            contentType: "text/x-test"
          })
          const body = Buffer.from(store.objects.get("o")!.bytes)
          const commitment = store.objects.get("o")!.metadata["x-amz-d"]

          const r = yield* S3EC.rekey(store, "o", { materials: onlyOld, wrapping: newAesW, commitmentPolicy: ALLOW })
          assert.deepStrictEqual([r.version, r.location, r.fromWrapAlgorithm, r.wrapAlgorithm], [version, instructionFile ? "instruction" : "metadata", "AES/GCM", "AES/GCM"])
          assert.deepStrictEqual(r.description, { k: "new" })
          const after = store.objects.get("o")!
          assert.isTrue(Buffer.from(after.bytes).equals(body), "the body is not rewritten")
          assert.strictEqual(after.metadata["owner"], "me")
          assert.strictEqual(after.contentType, "text/x-test")
          assert.strictEqual(after.metadata["x-amz-d"], commitment, "a V3 commitment is kept")
          assert.strictEqual(store.stats.copies, instructionFile ? 0 : 1)
          assert.deepStrictEqual(yield* read(store, "o", onlyNew), pt)
          assert.strictEqual(((yield* Effect.flip(read(store, "o", onlyOld))) as { reason: string }).reason, "WrongKey")
          const summary = yield* S3EC.readEnvelope(store, "o")
          assert.strictEqual(summary.version, version)
          assert.deepStrictEqual(summary.materialDescription, { k: "new" })

          yield* S3EC.rekey(store, "o", { materials: onlyNew, wrapping: rsaW, commitmentPolicy: ALLOW })
          assert.deepStrictEqual(yield* read(store, "o", onlyRsa), pt)
          assert.strictEqual(((yield* Effect.flip(read(store, "o", onlyNew))) as { reason: string }).reason, "NoUsableKey")

          yield* S3EC.rekey(store, "o", { materials: onlyRsa, wrapping: kmsW, newKmsContext: { team: "a" }, commitmentPolicy: ALLOW })
          const viaKms = yield* S3EC.getBytes(store, "o", { materials: { kms }, kmsContext: { team: "a" }, commitmentPolicy: ALLOW }).pipe(
            Effect.provide(S3EC.layerNoSpool)
          )
          assert.deepStrictEqual(Buffer.from(viaKms), pt)
          const meta = instructionFile
            ? JSON.parse(Buffer.from(store.objects.get("o.instruction")!.bytes).toString())
            : store.objects.get("o")!.metadata
          if (version === "V3") {
            assert.strictEqual(meta["x-amz-w"], "12")
            assert.isUndefined(meta["x-amz-m"], "the V3 material description gives way to the KMS context")
            assert.deepStrictEqual(JSON.parse(meta["x-amz-t"]), { team: "a", "aws:x-amz-cek-alg": "115" })
          } else {
            assert.strictEqual(meta["x-amz-wrap-alg"], "kms+context")
            assert.deepStrictEqual(JSON.parse(meta["x-amz-matdesc"]), { team: "a", "aws:x-amz-cek-alg": "AES/GCM/NoPadding" })
          }
          assert.isTrue(Buffer.from(store.objects.get("o")!.bytes).equals(body))
        }))
    }
  }

  it.effect("a wrong current key fails with WrongKey and leaves the object and its instruction file unchanged", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      yield* S3EC.put(store, "m", Stream.succeed(Buffer.from("in metadata")), { wrapping: aesW })
      yield* S3EC.put(store, "i", Stream.succeed(Buffer.from("in instruction")), { wrapping: aesW, instructionFile: true })
      const before = snapshot(store)
      for (const key of ["m", "i"]) {
        const e = yield* Effect.flip(S3EC.rekey(store, key, { materials: onlyNew, wrapping: rsaW }))
        assert.deepStrictEqual([e._tag, (e as { reason?: string }).reason], ["DecryptError", "WrongKey"])
      }
      assert.deepStrictEqual(snapshot(store), before)
      assert.strictEqual(store.stats.copies, 0)
    }))

  it.effect("an object replaced between reading its envelope and the copy is not given the new envelope", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      yield* S3EC.put(store, "race", Stream.succeed(Buffer.from("first")), { wrapping: aesW })
      // Another writer replaces the object right after rekey's head.
      const racing: typeof store = {
        ...store,
        head: (key, options) =>
          Effect.tap(store.head(key, options), () => key === "race" ? Effect.orDie(store.put("race", Stream.succeed(Buffer.from("second")), { metadata: { v: "2" } })) : Effect.void)
      }
      const e = yield* Effect.flip(S3EC.rekey(racing, "race", { materials: onlyOld, wrapping: newAesW }))
      assert.strictEqual(e._tag, "PreconditionFailed")
      const now = store.objects.get("race")!
      assert.strictEqual(Buffer.from(now.bytes).toString(), "second")
      assert.deepStrictEqual(now.metadata, { v: "2" })
    }))

  for (const policy of ["ForbidEncryptAllowDecrypt", "RequireEncryptRequireDecrypt"] as const) {
    for (const op of ["rekey", "reEncryptInstructionFile"] as const) {
      it.effect(`${op}, ${policy}: an instruction file replaced between its read and the rewrite is not overwritten (PreconditionFailed)`, () =>
        Effect.gen(function*() {
          const store = MemoryStore.make()
          yield* S3EC.put(store, "o", Stream.succeed(Buffer.from("old object")), { wrapping: aesW, commitmentPolicy: policy, instructionFile: true })
          const seen: Array<string | undefined> = []
          const theirs: Array<Buffer> = []
          // Another writer replaces the object and its instruction file (a new data key) right
          // before the re-key writes the instruction file back.
          const racing: typeof store = {
            ...store,
            put: (key, body, options) =>
              key === "o.instruction"
                ? Effect.zipRight(
                  Effect.sync(() => seen.push(options?.ifMatch)).pipe(
                    Effect.zipRight(Effect.orDie(S3EC.put(store, "o", Stream.succeed(Buffer.from("new object")), {
                      wrapping: aesW,
                      commitmentPolicy: policy,
                      instructionFile: true
                    }))),
                    Effect.zipRight(Effect.sync(() => theirs.push(Buffer.from(store.objects.get("o.instruction")!.bytes))))
                  ),
                  store.put(key, body, options)
                )
                : store.put(key, body, options)
          }
          const before = snapshot(store)
          const run = op === "rekey"
            ? S3EC.rekey(racing, "o", { materials: onlyOld, wrapping: newAesW, commitmentPolicy: ALLOW })
            : S3EC.reEncryptInstructionFile(racing, "o", { materials: onlyOld, wrapping: newAesW, commitmentPolicy: ALLOW })
          const e = yield* Effect.flip(run)
          assert.strictEqual(seen.length, 1)
          assert.isString(seen[0], "the rewrite is conditional")
          assert.strictEqual(seen[0], before.get("o.instruction")!.etag, "the etag read is the old file's")
          assert.deepStrictEqual([e._tag, (e as { key?: string }).key], ["PreconditionFailed", "o"])
          assert.include((e as { reason: string }).reason, "changed during the re-key")
          // The new object is intact: its instruction file is the other writer's, still under the old key.
          assert.deepStrictEqual(yield* read(store, "o", onlyOld), Buffer.from("new object"))
          assert.strictEqual(((yield* Effect.flip(read(store, "o", onlyNew))) as { reason: string }).reason, "WrongKey")
          assert.isFalse(theirs[0]!.equals(before.get("o.instruction")!.bytes), "the other writer's instruction file differs")
          assert.isTrue(Buffer.from(store.objects.get("o.instruction")!.bytes).equals(theirs[0]!), "and is left as it wrote it")
        }))
    }
  }

  it.effect("an instruction-file re-key without a race passes the etag it read as ifMatch and overwrites", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      yield* S3EC.put(store, "o", Stream.succeed(Buffer.from("object")), { wrapping: aesW, instructionFile: true })
      const etag = store.objects.get("o.instruction")!.etag
      const seen: Array<string | undefined> = []
      const watching: typeof store = {
        ...store,
        put: (key, body, options) => Effect.zipRight(Effect.sync(() => seen.push(options?.ifMatch)), store.put(key, body, options))
      }
      yield* S3EC.rekey(watching, "o", { materials: onlyOld, wrapping: newAesW })
      assert.deepStrictEqual(seen, [etag])
      assert.deepStrictEqual(yield* read(store, "o", onlyNew), Buffer.from("object"))
      // To a new suffix: nothing to match, a plain write.
      seen.length = 0
      yield* S3EC.reEncryptInstructionFile(watching, "o", { materials: onlyNew, wrapping: aesW, newSuffix: ".instruction.2" })
      assert.deepStrictEqual(seen, [undefined])
    }))

  it.effect("the test store honours ifMatch: a mismatch or a missing key fails and writes nothing, a match overwrites", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      const first = yield* store.put("k", Stream.succeed(Buffer.from("one")))
      const e = yield* Effect.flip(store.put("k", Stream.succeed(Buffer.from("two")), { ifMatch: "\"0123\"" }))
      assert.strictEqual(e._tag, "PreconditionFailed")
      assert.strictEqual(Buffer.from(store.objects.get("k")!.bytes).toString(), "one")
      assert.strictEqual((yield* Effect.flip(store.put("missing", Stream.succeed(Buffer.from("x")), { ifMatch: first.etag })))._tag, "PreconditionFailed")
      assert.isFalse(store.objects.has("missing"))
      yield* store.put("k", Stream.succeed(Buffer.from("three")), { ifMatch: first.etag.replace(/"/g, "") })
      assert.strictEqual(Buffer.from(store.objects.get("k")!.bytes).toString(), "three")
    }))

  it.effect("a tampered V3 commitment is refused before anything is written", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      yield* S3EC.put(store, "c", Stream.succeed(Buffer.from("committed")), { wrapping: aesW })
      const e = store.objects.get("c")!
      const d = Buffer.from(e.metadata["x-amz-d"]!, "base64")
      d[0] = d[0]! ^ 1
      e.metadata = { ...e.metadata, "x-amz-d": d.toString("base64") }
      const before = snapshot(store)
      const err = yield* Effect.flip(S3EC.rekey(store, "c", { materials: onlyOld, wrapping: newAesW }))
      assert.strictEqual((err as { reason?: string }).reason, "CommitmentMismatch")
      assert.deepStrictEqual(snapshot(store), before)
    }))

  it.effect("V2 objects need a policy that reads them; missing metadata and unknown objects are typed errors", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      yield* S3EC.put(store, "v2", Stream.succeed(Buffer.from("v2")), { wrapping: aesW, commitmentPolicy: "ForbidEncryptAllowDecrypt" })
      const refused = yield* Effect.flip(S3EC.rekey(store, "v2", { materials: onlyOld, wrapping: newAesW }))
      assert.strictEqual((refused as { reason?: string }).reason, "UnknownFormat")
      yield* store.put("plain", Stream.succeed(Buffer.from("plain")), {})
      const missing = yield* Effect.flip(S3EC.rekey(store, "plain", { materials: onlyOld, wrapping: newAesW }))
      assert.strictEqual((missing as { reason?: string }).reason, "MissingMetadata")
      const none = yield* Effect.flip(S3EC.rekey(store, "nope", { materials: onlyOld, wrapping: newAesW }))
      assert.strictEqual(none._tag, "ObjectNotFound")
    }))
})
