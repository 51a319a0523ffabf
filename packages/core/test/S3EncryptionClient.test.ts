import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted, Stream } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { KeyStore as S3EC_KeyStore } from "../src/KeyStore.js"
import * as ObjectStore from "../src/ObjectStore.js"
import * as S3EC from "../src/S3EncryptionClient.js"
import { keyPair, memoryKeyStore, memoryKms, symmetric } from "./support/Keys.js"
import * as MemoryStore from "./support/MemoryStore.js"
import { hkdfSha512, manualGcmOpen } from "./support/s3ecVectors.js"

const aesKey = crypto.randomBytes(32)
const otherKey = crypto.randomBytes(32)
const rsa = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey
const otherRsa = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey
const kms = memoryKms({ master: crypto.randomBytes(32), other: crypto.randomBytes(32) })

const aesW = S3EC.aesGcm({ material: Redacted.make(aesKey) })
const rsaW = S3EC.rsaOaepSha1({ publicKey: crypto.createPublicKey(rsa) })
const kmsW = S3EC.kmsContext(kms, "master")
const materials: S3EC.Materials = {
  kms,
  keys: [
    { _tag: "Aes", keyId: "aes", material: Redacted.make(aesKey) },
    { _tag: "Private", keyId: "rsa", privateKey: Redacted.make(rsa) }
  ]
}
const spool = S3EC.layerNodeSpool()
const ALLOW: S3EC.CommitmentPolicy = "RequireEncryptAllowDecrypt"
const FORBID: S3EC.CommitmentPolicy = "ForbidEncryptAllowDecrypt"

const chunked = (bytes: Uint8Array, chunk = 4096) =>
  Stream.fromIterable(Array.from({ length: Math.ceil(bytes.length / chunk) }, (_, i) => bytes.subarray(i * chunk, (i + 1) * chunk)))

const read = (store: MemoryStore.MemoryStore, key: string, options?: Partial<S3EC.GetOptions>) =>
  S3EC.getBytes(store, key, { materials, ...options }).pipe(Effect.map((b) => Buffer.from(b)), Effect.provide(spool))

const wraps = [["kms+context", kmsW], ["AES/GCM", aesW], ["RSA-OAEP-SHA1", rsaW]] as const

const flip = (store: MemoryStore.MemoryStore, key: string, at: number) => {
  const e = store.objects.get(key)!
  const b = Buffer.from(e.bytes)
  b[at] = b[at]! ^ 1
  e.bytes = b
}

describe("S3EncryptionClient V3 (default)", () => {
  for (const [name, wrapping] of wraps) {
    it.effect(`round-trips with ${name} and writes exactly the V3 names`, () =>
      Effect.gen(function*() {
        const store = MemoryStore.make()
        const pt = crypto.randomBytes(10_000)
        const r = yield* S3EC.put(store, "a/b.bin", chunked(pt, 777), { wrapping, contentLength: pt.length, metadata: { owner: "me" } })
        assert.strictEqual(r.format, "V3")
        const meta = store.objects.get("a/b.bin")!.metadata
        const expected = ["owner", "x-amz-3", "x-amz-c", "x-amz-d", "x-amz-i", "x-amz-w", name === "kms+context" ? "x-amz-t" : "x-amz-m"]
        assert.deepStrictEqual(Object.keys(meta).sort(), expected.sort())
        assert.strictEqual(meta["x-amz-c"], "115")
        assert.strictEqual(meta["x-amz-w"], { "kms+context": "12", "AES/GCM": "02", "RSA-OAEP-SHA1": "22" }[name])
        assert.strictEqual(Buffer.from(meta["x-amz-i"]!, "base64").length, 28)
        assert.strictEqual(Buffer.from(meta["x-amz-d"]!, "base64").length, 28)
        if (name === "kms+context") assert.deepStrictEqual(JSON.parse(meta["x-amz-t"]!), { "aws:x-amz-cek-alg": "115" })
        assert.strictEqual(store.objects.get("a/b.bin")!.bytes.length, pt.length + 16)
        assert.deepStrictEqual(yield* read(store, "a/b.bin"), pt)
      }))
  }

  it.effect("writes an instruction file with only x-amz-3/w/m|t, keeping c/d/i in the object", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      const pt = Buffer.from("hello instruction file")
      const r = yield* S3EC.put(store, "k", Stream.succeed(pt), { wrapping: aesW, instructionFile: true })
      assert.strictEqual(r.location, "instruction")
      assert.deepStrictEqual(Object.keys(store.objects.get("k")!.metadata).sort(), ["x-amz-c", "x-amz-d", "x-amz-i"])
      const instr = JSON.parse(Buffer.from(store.objects.get("k.instruction")!.bytes).toString())
      assert.deepStrictEqual(Object.keys(instr).sort(), ["x-amz-3", "x-amz-m", "x-amz-w"])
      assert.deepStrictEqual(yield* read(store, "k"), pt)
      const summary = yield* S3EC.readEnvelope(store, "k")
      assert.strictEqual(summary.location, "instruction")
      assert.strictEqual(summary.keyCommitment, true)
    }))

  it.effect("V3 follows the spec: HKDF-SHA512 from the message id, zero IV, AAD 0x0073, AES/GCM wrap with AAD \"115\"", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      const pt = crypto.randomBytes(333)
      yield* S3EC.put(store, "v", Stream.succeed(pt), { wrapping: aesW })
      const { bytes, metadata } = store.objects.get("v")!
      const edk = Buffer.from(metadata["x-amz-3"]!, "base64")
      const dataKey = manualGcmOpen(aesKey, edk.subarray(0, 12), edk.subarray(12), Buffer.from("115"))
      const messageId = Buffer.from(metadata["x-amz-i"]!, "base64")
      const info = (label: string) => Buffer.concat([Buffer.from([0x00, 0x73]), Buffer.from(label)])
      assert.deepStrictEqual(hkdfSha512(dataKey, messageId, info("COMMITKEY"), 28), Buffer.from(metadata["x-amz-d"]!, "base64"))
      const contentKey = hkdfSha512(dataKey, messageId, info("DERIVEKEY"), 32)
      assert.deepStrictEqual(manualGcmOpen(contentKey, Buffer.alloc(12), bytes, Buffer.from([0x00, 0x73])), pt)
    }))

  it.effect("refuses a data key that does not match the commitment (CommitmentMismatch)", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      yield* S3EC.put(store, "c", Stream.succeed(Buffer.from("x".repeat(100))), { wrapping: aesW, instructionFile: true })
      // An attacker who can write the instruction file wraps another data key under the same KEK.
      const forged = { ...JSON.parse(Buffer.from(store.objects.get("c.instruction")!.bytes).toString()) }
      const iv = crypto.randomBytes(12)
      const c = crypto.createCipheriv("aes-256-gcm", aesKey, iv)
      c.setAAD(Buffer.from("115"))
      forged["x-amz-3"] = Buffer.concat([iv, c.update(crypto.randomBytes(32)), c.final(), c.getAuthTag()]).toString("base64")
      store.objects.get("c.instruction")!.bytes = Buffer.from(JSON.stringify(forged))
      const e = yield* Effect.flip(read(store, "c"))
      assert.strictEqual(e._tag, "DecryptError")
      assert.strictEqual((e as { reason: string }).reason, "CommitmentMismatch")
    }))

  it.effect("refuses a modified x-amz-d", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      yield* S3EC.put(store, "d", Stream.succeed(Buffer.from("data")), { wrapping: rsaW })
      const meta = store.objects.get("d")!.metadata
      const d = Buffer.from(meta["x-amz-d"]!, "base64")
      d[0] = d[0]! ^ 1
      meta["x-amz-d"] = d.toString("base64")
      const e = yield* Effect.flip(read(store, "d"))
      assert.strictEqual((e as { reason: string }).reason, "CommitmentMismatch")
    }))
})

describe("S3EncryptionClient V2", () => {
  for (const [name, wrapping] of wraps) {
    it.effect(`round-trips with ${name} and writes exactly the V2 names and values`, () =>
      Effect.gen(function*() {
        const store = MemoryStore.make()
        const pt = crypto.randomBytes(5000)
        const r = yield* S3EC.put(store, "o", chunked(pt, 1000), { wrapping, commitmentPolicy: FORBID, contentLength: pt.length })
        assert.strictEqual(r.format, "V2")
        const meta = store.objects.get("o")!.metadata
        assert.deepStrictEqual(Object.keys(meta).sort(), [
          "x-amz-cek-alg",
          "x-amz-iv",
          "x-amz-key-v2",
          "x-amz-matdesc",
          "x-amz-tag-len",
          "x-amz-unencrypted-content-length",
          "x-amz-wrap-alg"
        ])
        assert.strictEqual(meta["x-amz-cek-alg"], "AES/GCM/NoPadding")
        assert.strictEqual(meta["x-amz-wrap-alg"], name)
        assert.strictEqual(meta["x-amz-tag-len"], "128")
        assert.strictEqual(meta["x-amz-unencrypted-content-length"], "5000")
        assert.strictEqual(Buffer.from(meta["x-amz-iv"]!, "base64").length, 12)
        assert.deepStrictEqual(JSON.parse(meta["x-amz-matdesc"]!), name === "kms+context" ? { "aws:x-amz-cek-alg": "AES/GCM/NoPadding" } : {})
        assert.deepStrictEqual(yield* read(store, "o", { commitmentPolicy: ALLOW }), pt)
        assert.deepStrictEqual(yield* read(store, "o", { commitmentPolicy: FORBID }), pt)
      }))
  }

  it.effect("the default policy (RequireEncryptRequireDecrypt) refuses to read V2", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      yield* S3EC.put(store, "o", Stream.succeed(Buffer.from("abc")), { wrapping: aesW, commitmentPolicy: FORBID })
      const e = yield* Effect.flip(read(store, "o"))
      assert.strictEqual((e as { reason: string }).reason, "UnknownFormat")
      assert.match((e as { detail: string }).detail, /RequireEncryptRequireDecrypt/)
    }))

  it.effect("reads a V2 object built by hand from the specification (AES/GCM wrap, RSA-OAEP-SHA1 wrap, instruction file)", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      const dataKey = crypto.randomBytes(32)
      const iv = crypto.randomBytes(12)
      const pt = Buffer.from("The quick brown fox jumps over the lazy dog, twice: ".repeat(9))
      const c = crypto.createCipheriv("aes-256-gcm", dataKey, iv)
      const ct = Buffer.concat([c.update(pt), c.final(), c.getAuthTag()])
      const wrapIv = crypto.randomBytes(12)
      const w = crypto.createCipheriv("aes-256-gcm", aesKey, wrapIv)
      w.setAAD(Buffer.from("AES/GCM/NoPadding"))
      const edk = Buffer.concat([wrapIv, w.update(dataKey), w.final(), w.getAuthTag()])
      const common = { "x-amz-iv": iv.toString("base64"), "x-amz-cek-alg": "AES/GCM/NoPadding", "x-amz-tag-len": "128" }
      yield* store.put("aes", Stream.succeed(ct), {
        metadata: { ...common, "x-amz-key-v2": edk.toString("base64"), "x-amz-wrap-alg": "AES/GCM", "x-amz-matdesc": "{}" }
      })
      assert.deepStrictEqual(yield* read(store, "aes", { commitmentPolicy: ALLOW }), pt)

      const pseudo = Buffer.concat([Buffer.from([32]), dataKey, Buffer.from("AES/GCM/NoPadding")])
      const rsaEdk = crypto.publicEncrypt({ key: rsa, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" }, pseudo)
      yield* store.put("rsa", Stream.succeed(ct), {})
      yield* store.put("rsa.instruction", Stream.succeed(Buffer.from(JSON.stringify({
        ...common,
        "x-amz-key-v2": rsaEdk.toString("base64"),
        "x-amz-wrap-alg": "RSA-OAEP-SHA1",
        "x-amz-matdesc": "{}"
      }))))
      assert.deepStrictEqual(yield* read(store, "rsa", { commitmentPolicy: ALLOW }), pt)

      // An RSA pseudo key naming another content algorithm is a downgrade attempt.
      const bad = Buffer.concat([Buffer.from([32]), dataKey, Buffer.from("AES/CBC/PKCS5Padding")])
      const badEdk = crypto.publicEncrypt({ key: rsa, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" }, bad)
      yield* store.put("rsa.instruction", Stream.succeed(Buffer.from(JSON.stringify({
        ...common,
        "x-amz-key-v2": badEdk.toString("base64"),
        "x-amz-wrap-alg": "RSA-OAEP-SHA1",
        "x-amz-matdesc": "{}"
      }))))
      const e = yield* Effect.flip(read(store, "rsa", { commitmentPolicy: ALLOW }))
      assert.strictEqual((e as { reason: string }).reason, "Tampered")
    }))

  it.effect("kms+context binds the reserved aws:x-amz-cek-alg and the caller's context", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      yield* S3EC.put(store, "k", Stream.succeed(Buffer.from("ctx")), { wrapping: kmsW, commitmentPolicy: FORBID, kmsContext: { tenant: "t1" } })
      assert.deepStrictEqual(JSON.parse(store.objects.get("k")!.metadata["x-amz-matdesc"]!), {
        tenant: "t1",
        "aws:x-amz-cek-alg": "AES/GCM/NoPadding"
      })
      assert.strictEqual((yield* read(store, "k", { commitmentPolicy: ALLOW, kmsContext: { tenant: "t1" } })).toString(), "ctx")
      const missing = yield* Effect.flip(read(store, "k", { commitmentPolicy: ALLOW }))
      assert.strictEqual((missing as { reason: string }).reason, "ContextMismatch")
      const wrong = yield* Effect.flip(read(store, "k", { commitmentPolicy: ALLOW, kmsContext: { tenant: "t2" } }))
      assert.strictEqual((wrong as { reason: string }).reason, "ContextMismatch")

      // The stored context must name the object's content algorithm.
      const meta = store.objects.get("k")!.metadata
      meta["x-amz-matdesc"] = JSON.stringify({ tenant: "t1", "aws:x-amz-cek-alg": "AES/CBC/PKCS5Padding" })
      const cek = yield* Effect.flip(read(store, "k", { commitmentPolicy: ALLOW, kmsContext: { tenant: "t1" } }))
      assert.strictEqual((cek as { reason: string }).reason, "ContextMismatch")

      const reserved = yield* Effect.flip(
        S3EC.put(store, "r", Stream.succeed(Buffer.from("x")), { wrapping: kmsW, kmsContext: { "aws:x-amz-cek-alg": "x" } })
      )
      assert.strictEqual(reserved._tag, "EncryptError")
      assert.isFalse(store.objects.has("r"))
    }))

  it.effect("decodes S3's RFC 2047 double encoding of a non-ASCII material description", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      const w = S3EC.aesGcm({ material: Redacted.make(aesKey), description: { owner: "Zoë" } })
      yield* S3EC.put(store, "n", Stream.succeed(Buffer.from("é")), { wrapping: w, commitmentPolicy: FORBID })
      const meta = store.objects.get("n")!.metadata
      meta["x-amz-matdesc"] = `=?UTF-8?B?${Buffer.from(meta["x-amz-matdesc"]!).toString("base64")}?=`
      const summary = yield* S3EC.readEnvelope(store, "n")
      assert.deepStrictEqual(summary.materialDescription, { owner: "Zoë" })
      assert.strictEqual((yield* read(store, "n", { commitmentPolicy: ALLOW })).toString(), "é")
    }))
})

describe("S3EncryptionClient refuses bad input", () => {
  const setup = (policy: S3EC.CommitmentPolicy = "RequireEncryptRequireDecrypt", bytes = 3000) =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      const pt = crypto.randomBytes(bytes)
      yield* S3EC.put(store, "x", chunked(pt, 512), { wrapping: aesW, commitmentPolicy: policy })
      return { store, pt }
    })
  const reason = (e: unknown) => (e as { reason: string }).reason

  it.effect("a flipped ciphertext bit fails with Tampered and releases no plaintext (in memory and through the spool)", () =>
    Effect.gen(function*() {
      for (const bufferSize of [undefined, 100]) {
        const { store } = yield* setup()
        flip(store, "x", 10)
        const released: Array<number> = []
        const e = yield* Effect.flip(Effect.scoped(Effect.flatMap(
          S3EC.get(store, "x", { materials, bufferSize }),
          (o) => Stream.runForEach(o.body, (c) => Effect.sync(() => void released.push(c.length)))
        ).pipe(Effect.provide(spool))))
        assert.strictEqual(reason(e), "Tampered")
        assert.deepStrictEqual(released, [])
      }
    }))

  it.effect("a flipped tag bit fails with Tampered", () =>
    Effect.gen(function*() {
      const { store } = yield* setup()
      flip(store, "x", 3000 + 15)
      assert.strictEqual(reason(yield* Effect.flip(read(store, "x"))), "Tampered")
    }))

  it.effect("a truncated object fails, and one shorter than the tag fails with Truncated", () =>
    Effect.gen(function*() {
      const { store } = yield* setup()
      const e = store.objects.get("x")!
      e.bytes = e.bytes.subarray(0, 2000)
      assert.strictEqual(reason(yield* Effect.flip(read(store, "x"))), "Tampered")
      e.bytes = e.bytes.subarray(0, 10)
      assert.strictEqual(reason(yield* Effect.flip(read(store, "x"))), "Truncated")
    }))

  it.effect("a V2 object whose length disagrees with x-amz-unencrypted-content-length is refused", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      yield* S3EC.put(store, "l", Stream.succeed(Buffer.alloc(100)), { wrapping: aesW, commitmentPolicy: FORBID, contentLength: 100 })
      const e = store.objects.get("l")!
      e.bytes = e.bytes.subarray(0, 90)
      assert.strictEqual(reason(yield* Effect.flip(read(store, "l", { commitmentPolicy: ALLOW }))), "Truncated")
    }))

  it.effect("the wrong AES key fails with WrongKey, no key with NoUsableKey, the wrong RSA key with WrongKey", () =>
    Effect.gen(function*() {
      const { store } = yield* setup()
      const wrong = { keys: [{ _tag: "Aes" as const, keyId: "o", material: Redacted.make(otherKey) }] }
      assert.strictEqual(reason(yield* Effect.flip(read(store, "x", { materials: wrong }))), "WrongKey")
      assert.strictEqual(reason(yield* Effect.flip(read(store, "x", { materials: { kms } }))), "NoUsableKey")
      yield* S3EC.put(store, "r", Stream.succeed(Buffer.from("rsa")), { wrapping: rsaW })
      const wrongRsa = { keys: [{ _tag: "Private" as const, keyId: "o", privateKey: Redacted.make(otherRsa) }] }
      assert.strictEqual(reason(yield* Effect.flip(read(store, "r", { materials: wrongRsa }))), "WrongKey")
      yield* S3EC.put(store, "m", Stream.succeed(Buffer.from("kms")), { wrapping: kmsW })
      assert.strictEqual(reason(yield* Effect.flip(read(store, "m", { materials: { keys: materials.keys } }))), "NoUsableKey")
    }))

  it.effect("metadata of two versions at once is refused as ambiguous", () =>
    Effect.gen(function*() {
      const { store } = yield* setup()
      store.objects.get("x")!.metadata["x-amz-key-v2"] = "AAAA"
      const e = yield* Effect.flip(read(store, "x"))
      assert.strictEqual(reason(e), "UnknownFormat")
      assert.match((e as { detail: string }).detail, /several/)
    }))

  it.effect("an unencrypted object without an instruction file fails with MissingMetadata", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      yield* store.put("plain", Stream.succeed(Buffer.from("plain")))
      assert.strictEqual(reason(yield* Effect.flip(read(store, "plain"))), "MissingMetadata")
      yield* S3EC.put(store, "i", Stream.succeed(Buffer.from("i")), { wrapping: aesW, instructionFile: true })
      yield* store.remove("i.instruction")
      assert.strictEqual(reason(yield* Effect.flip(read(store, "i"))), "MissingMetadata")
    }))

  it.effect("malformed values fail with MalformedMetadata, unknown algorithms with UnknownFormat", () =>
    Effect.gen(function*() {
      const cases: Array<[string, string | undefined, string, S3EC.CommitmentPolicy]> = [
        ["x-amz-3", "not base64!", "MalformedMetadata", "RequireEncryptRequireDecrypt"],
        ["x-amz-i", Buffer.alloc(12).toString("base64"), "MalformedMetadata", "RequireEncryptRequireDecrypt"],
        ["x-amz-w", "99", "UnknownFormat", "RequireEncryptRequireDecrypt"],
        ["x-amz-c", "114", "UnknownFormat", "RequireEncryptRequireDecrypt"],
        ["x-amz-m", "[1]", "MalformedMetadata", "RequireEncryptRequireDecrypt"],
        ["x-amz-tag-len", "96", "MalformedMetadata", FORBID],
        ["x-amz-cek-alg", "AES/CTR/NoPadding", "UnknownFormat", FORBID],
        ["x-amz-iv", undefined, "MalformedMetadata", FORBID],
        ["x-amz-wrap-alg", "RSA", "UnknownFormat", FORBID]
      ]
      for (const [name, value, expected, policy] of cases) {
        const { store } = yield* setup(policy)
        const meta = store.objects.get("x")!.metadata
        if (value === undefined) delete meta[name]
        else meta[name] = value
        const e = yield* Effect.flip(read(store, "x", { commitmentPolicy: ALLOW }))
        assert.strictEqual(reason(e), expected, `${name}=${value}`)
      }
    }))

  it.effect("reserved user-metadata names and a wrong content length fail before anything is stored", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      const e1 = yield* Effect.flip(S3EC.put(store, "u", Stream.succeed(Buffer.from("x")), { wrapping: aesW, metadata: { "x-amz-iv": "a" } }))
      assert.strictEqual(e1._tag, "EncryptError")
      const e2 = yield* Effect.flip(S3EC.put(store, "u", Stream.succeed(Buffer.from("xyz")), { wrapping: aesW, contentLength: 4 }))
      assert.strictEqual(e2._tag, "EncryptError")
      assert.strictEqual(store.objects.size, 0)
    }))
})

describe("S3EncryptionClient streaming and ranges", () => {
  it.effect("delayedAuthentication releases plaintext early and still fails on a bad tag", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      const pt = crypto.randomBytes(50_000)
      yield* S3EC.put(store, "d", chunked(pt), { wrapping: aesW })
      assert.isTrue((yield* read(store, "d", { delayedAuthentication: true })).equals(pt))
      flip(store, "d", 50_000 + 1)
      let released = 0
      const e = yield* Effect.flip(Effect.scoped(Effect.flatMap(
        S3EC.get(store, "d", { materials, delayedAuthentication: true }),
        (o) => Stream.runForEach(o.body, (c) => Effect.sync(() => void (released += c.length)))
      ).pipe(Effect.provide(spool))))
      assert.strictEqual((e as { reason: string }).reason, "Tampered")
      assert.isTrue(released > 0)
    }))

  it.effect("ranged reads need the opt-in, then decrypt with AES-CTR at the GCM counter (V2 and V3)", () =>
    Effect.gen(function*() {
      for (const policy of [FORBID, "RequireEncryptRequireDecrypt" as const]) {
        const store = MemoryStore.make()
        const pt = crypto.randomBytes(1000)
        yield* S3EC.put(store, "r", chunked(pt, 100), { wrapping: aesW, commitmentPolicy: policy })
        const e = yield* Effect.flip(read(store, "r", { range: ObjectStore.range.bounded(0, 9), commitmentPolicy: ALLOW }))
        assert.strictEqual(e._tag, "InvalidEncryptionParameters")
        for (const [s, t] of [[0, 0], [0, 15], [15, 16], [17, 500], [990, 2000], [512, 527]] as const) {
          const got = yield* read(store, "r", { range: ObjectStore.range.bounded(s, t), unauthenticatedRanges: true, commitmentPolicy: ALLOW })
          assert.deepStrictEqual(got, pt.subarray(s, Math.min(t + 1, 1000)), `${s}-${t}`)
        }
        const suffix = yield* read(store, "r", { range: ObjectStore.range.suffix(33), unauthenticatedRanges: true, commitmentPolicy: ALLOW })
        assert.deepStrictEqual(suffix, pt.subarray(967))
        const bad = yield* Effect.flip(read(store, "r", { range: ObjectStore.range.from(1000), unauthenticatedRanges: true, commitmentPolicy: ALLOW }))
        assert.strictEqual(bad._tag, "InvalidRange")
      }
    }))

  it.effect("an empty object round-trips", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      yield* S3EC.put(store, "e", Stream.empty, { wrapping: rsaW, contentLength: 0 })
      assert.strictEqual((yield* read(store, "e")).length, 0)
    }))
})

describe("S3EncryptionClient legacy V1", () => {
  const v1Object = (store: MemoryStore.MemoryStore, pt: Uint8Array) =>
    Effect.gen(function*() {
      const dataKey = crypto.randomBytes(32)
      const iv = crypto.randomBytes(16)
      const c = crypto.createCipheriv("aes-256-cbc", dataKey, iv)
      const ct = Buffer.concat([c.update(pt), c.final()])
      const w = crypto.createCipheriv("aes-256-ecb", aesKey, null)
      const edk = Buffer.concat([w.update(dataKey), w.final()])
      yield* store.put("v1", Stream.succeed(ct), {
        metadata: {
          "x-amz-key": edk.toString("base64"),
          "x-amz-iv": iv.toString("base64"),
          "x-amz-matdesc": "{}",
          "x-amz-unencrypted-content-length": String(pt.length)
        }
      })
    })

  it.effect("is refused by default and read with both legacy opt-ins", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      const pt = Buffer.from("legacy CBC content ".repeat(20))
      yield* v1Object(store, pt)
      const policy = { commitmentPolicy: ALLOW }
      const e1 = yield* Effect.flip(read(store, "v1", policy))
      assert.match((e1 as { detail: string }).detail, /legacy unauthenticated/)
      const e2 = yield* Effect.flip(read(store, "v1", { ...policy, enableLegacyUnauthenticatedModes: true }))
      assert.match((e2 as { detail: string }).detail, /legacy wrapping/)
      const e3 = yield* Effect.flip(read(store, "v1", { enableLegacyUnauthenticatedModes: true, enableLegacyWrappingAlgorithms: true }))
      assert.match((e3 as { detail: string }).detail, /RequireEncryptRequireDecrypt/)
      const got = yield* read(store, "v1", { ...policy, enableLegacyUnauthenticatedModes: true, enableLegacyWrappingAlgorithms: true })
      assert.deepStrictEqual(got, pt)
      const s = yield* S3EC.readEnvelope(store, "v1")
      assert.strictEqual(s.version, "V1")
      assert.isTrue(s.legacy)
    }))

  it.effect("reads a legacy V2 object (kms wrap, AES-CBC content) with the opt-ins", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      const ctx = { kms_cmk_id: "master" }
      const dk = yield* kms.generateDataKey("master", ctx)
      const iv = crypto.randomBytes(16)
      const c = crypto.createCipheriv("aes-256-cbc", Redacted.value(dk.plaintext), iv)
      const pt = Buffer.from("kms v1 style")
      yield* store.put("lk", Stream.succeed(Buffer.concat([c.update(pt), c.final()])), {
        metadata: {
          "x-amz-key-v2": Buffer.from(dk.ciphertext).toString("base64"),
          "x-amz-iv": iv.toString("base64"),
          "x-amz-matdesc": JSON.stringify(ctx),
          "x-amz-wrap-alg": "kms",
          "x-amz-cek-alg": "AES/CBC/PKCS5Padding"
        }
      })
      const got = yield* read(store, "lk", { commitmentPolicy: ALLOW, enableLegacyUnauthenticatedModes: true, enableLegacyWrappingAlgorithms: true })
      assert.deepStrictEqual(got, pt)
      const e = yield* Effect.flip(read(store, "lk", { commitmentPolicy: ALLOW, enableLegacyUnauthenticatedModes: true }))
      assert.match((e as { detail: string }).detail, /legacy wrapping algorithm kms/)
    }))
})

describe("S3EncryptionClient instruction-file re-encryption and keys from the key store", () => {
  for (const policy of [FORBID, "RequireEncryptRequireDecrypt" as const]) {
    it.effect(`rotates an instruction file without touching the object (${policy})`, () =>
      Effect.gen(function*() {
        const store = MemoryStore.make()
        const pt = crypto.randomBytes(2048)
        yield* S3EC.put(store, "rot", Stream.succeed(pt), { wrapping: aesW, instructionFile: true, commitmentPolicy: policy })
        const before = store.objects.get("rot")!
        const etag = before.etag
        const r = yield* S3EC.reEncryptInstructionFile(store, "rot", { materials, wrapping: rsaW, commitmentPolicy: ALLOW })
        assert.strictEqual(r.key, "rot.instruction")
        assert.strictEqual(store.objects.get("rot")!.etag, etag)
        const onlyRsa = { keys: [{ _tag: "Private" as const, keyId: "r", privateKey: Redacted.make(rsa) }] }
        assert.deepStrictEqual(yield* read(store, "rot", { materials: onlyRsa, commitmentPolicy: ALLOW }), pt)
        const onlyAes = { keys: [{ _tag: "Aes" as const, keyId: "a", material: Redacted.make(aesKey) }] }
        const refused = yield* Effect.flip(read(store, "rot", { materials: onlyAes, commitmentPolicy: ALLOW }))
        assert.strictEqual((refused as { reason: string }).reason, "NoUsableKey")

        // To KMS at a custom suffix; the default instruction file stays as it was.
        yield* S3EC.reEncryptInstructionFile(store, "rot", { materials, wrapping: kmsW, commitmentPolicy: ALLOW, newSuffix: ".instruction.kms" })
        assert.deepStrictEqual(
          yield* read(store, "rot", { materials: { kms }, commitmentPolicy: ALLOW, instructionFileSuffix: ".instruction.kms" }),
          pt
        )
        assert.deepStrictEqual(yield* read(store, "rot", { materials: onlyRsa, commitmentPolicy: ALLOW }), pt)
      }))
  }

  it.effect("refuses to re-encrypt content metadata kept in the object's metadata, or with the wrong key", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      yield* S3EC.put(store, "m", Stream.succeed(Buffer.from("m")), { wrapping: aesW })
      const e = yield* Effect.flip(S3EC.reEncryptInstructionFile(store, "m", { materials, wrapping: rsaW }))
      assert.strictEqual(e._tag, "EncryptError")
      yield* S3EC.put(store, "i", Stream.succeed(Buffer.from("i")), { wrapping: aesW, instructionFile: true })
      const wrong = { keys: [{ _tag: "Aes" as const, keyId: "o", material: Redacted.make(otherKey) }] }
      const e2 = yield* Effect.flip(S3EC.reEncryptInstructionFile(store, "i", { materials: wrong, wrapping: rsaW }))
      assert.strictEqual((e2 as { reason: string }).reason, "WrongKey")
    }))

  it.effect("wraps with key-store keys and finds them again from the material description", () =>
    Effect.gen(function*() {
      const keyStore = memoryKeyStore([symmetric("sym", 3, otherKey), keyPair("pair", 1, rsa)])
      const store = MemoryStore.make()
      for (const name of ["sym", "pair"]) {
        const wrapping = yield* S3EC.fromKeyStore(name).pipe(Effect.provideService(S3EC_KeyStore, keyStore))
        yield* S3EC.put(store, name, Stream.succeed(Buffer.from(name)), { wrapping })
        const got = yield* read(store, name, { materials: { keyStore } })
        assert.strictEqual(got.toString(), name)
      }
      assert.strictEqual(JSON.parse(store.objects.get("sym")!.metadata["x-amz-m"]!)["objcrypt-key-version"], "3")
    }))

  it.effect("remove deletes the object and its instruction file", () =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      yield* S3EC.put(store, "z", Stream.succeed(Buffer.from("z")), { wrapping: aesW, instructionFile: true })
      assert.strictEqual(store.objects.size, 2)
      yield* S3EC.remove(store, "z")
      assert.strictEqual(store.objects.size, 0)
    }))
})


describe("S3EncryptionClient vectors written by AWS's Ruby EncryptionV2 client", () => {
  const vectors = JSON.parse(
    fs.readFileSync(path.join(path.dirname(new URL(import.meta.url).pathname), "vectors/s3ec/ruby-encryption-v2.json"), "utf8")
  ) as {
    plaintext: string
    aesKeyHex: string
    rsaPrivateKeyPem: string
    objects: ReadonlyArray<{ name: string; metadata: Record<string, string>; body: string; instruction?: string }>
  }
  const vectorMaterials: S3EC.Materials = {
    keys: [
      { _tag: "Aes", keyId: "aes", material: Redacted.make(Buffer.from(vectors.aesKeyHex, "hex")) },
      { _tag: "Private", keyId: "rsa", privateKey: Redacted.make(crypto.createPrivateKey(vectors.rsaPrivateKeyPem)) }
    ]
  }
  const load = Effect.gen(function*() {
    const store = MemoryStore.make()
    for (const o of vectors.objects) {
      yield* store.put(o.name, Stream.succeed(Buffer.from(o.body, "base64")), { metadata: o.metadata })
      if (o.instruction !== undefined) yield* store.put(`${o.name}.instruction`, Stream.succeed(Buffer.from(o.instruction)))
    }
    return store
  })

  for (const o of vectors.objects) {
    it.effect(`reads ${o.name}, and refuses it once a byte is changed`, () =>
      Effect.gen(function*() {
        const store = yield* load
        const got = yield* S3EC.getBytes(store, o.name, { materials: vectorMaterials, commitmentPolicy: ALLOW }).pipe(Effect.provide(spool))
        assert.deepStrictEqual(Buffer.from(got), Buffer.from(vectors.plaintext, "base64"))
        flip(store, o.name, 5)
        const e = yield* Effect.flip(S3EC.getBytes(store, o.name, { materials: vectorMaterials, commitmentPolicy: ALLOW }).pipe(Effect.provide(spool)))
        assert.strictEqual((e as { reason: string }).reason, "Tampered")
      }))
  }
})
