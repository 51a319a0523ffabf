/**
 * The test vectors of docs/FORMAT.md. Each vector is regenerated with the same fixed randomness and
 * must be byte-identical to the committed JSON (RSA-OAEP entries excepted: OAEP draws its own
 * randomness inside OpenSSL), decrypts to its plaintext, and its intermediate values are
 * recomputed here from the formulas of the spec with plain `node:crypto`, independently of
 * NativeFormat. `OBJCRYPT_WRITE_VECTORS=1` rewrites the JSON.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted, Stream } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as ClientSide from "../src/ClientSide.js"
import { currentRandom, deterministic } from "../src/internal/nativeRandom.js"
import * as Keyring from "../src/Keyring.js"
import * as ObjectStore from "../src/ObjectStore.js"
import { memoryKms } from "./support/Keys.js"
import * as MemoryStore from "./support/MemoryStore.js"

const FILE = new URL("./vectors/native-v1.json", import.meta.url)
const DOC = new URL("../../../docs/FORMAT.md", import.meta.url)

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex")
const unhex = (s: string) => Buffer.from(s, "hex")

const KEK = unhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
const KMS_MASTER = unhex("1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100")
const X25519_PRIVATE = unhex("a8abababababababababababababababababababababababababababababab6b")
const x25519Key = crypto.createPrivateKey({
  key: Buffer.concat([unhex("302e020100300506032b656e04220420"), X25519_PRIVATE]),
  format: "der",
  type: "pkcs8"
})
const kmsNonce = (pt: Uint8Array) => crypto.createHash("sha256").update("objcrypt test kms nonce").update(pt).digest().subarray(0, 12)

interface VectorCase {
  readonly name: string
  readonly keyring: "aes-gcm" | "aes-kw" | "kms" | "rsa-oaep-256" | "x25519"
  readonly plaintext: string
  readonly segmentSize: number
  readonly context: Record<string, string>
  readonly range?: { readonly start: number; readonly end: number }
}

const pattern = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => i & 0xff))

const CASES: ReadonlyArray<VectorCase> = [
  { name: "empty", keyring: "aes-gcm", plaintext: "", segmentSize: 64, context: {} },
  { name: "one-short-segment", keyring: "aes-gcm", plaintext: hex(Buffer.from("hello, objcrypt")), segmentSize: 64, context: {} },
  {
    name: "several-segments-ranged",
    keyring: "aes-gcm",
    plaintext: hex(pattern(200)),
    segmentSize: 64,
    context: { tenant: "acme" },
    range: { start: 70, end: 141 }
  },
  { name: "aes-kw", keyring: "aes-kw", plaintext: hex(Buffer.from("wrapped with AES-KW")), segmentSize: 64, context: {} },
  { name: "kms", keyring: "kms", plaintext: hex(Buffer.from("wrapped by a KMS")), segmentSize: 64, context: { app: "vectors" } },
  { name: "rsa-oaep-256", keyring: "rsa-oaep-256", plaintext: hex(Buffer.from("for an RSA recipient")), segmentSize: 64, context: {} },
  { name: "x25519", keyring: "x25519", plaintext: hex(Buffer.from("for an X25519 recipient")), segmentSize: 64, context: {} }
]

interface Vector extends VectorCase {
  readonly bucket: string
  readonly key: string
  readonly seed: string
  readonly metadata: Record<string, string>
  readonly body: string
  readonly intermediate: Record<string, string | ReadonlyArray<string>>
  readonly rangePlaintext?: string
  readonly rangeCiphertext?: { readonly start: number; readonly end: number }
}

interface VectorFile {
  readonly keys: {
    readonly aes: string
    readonly kmsMaster: string
    readonly x25519Private: string
    readonly rsaPrivatePkcs8: string
  }
  readonly vectors: ReadonlyArray<Vector>
}

const existing: VectorFile | undefined = fs.existsSync(FILE) ? JSON.parse(fs.readFileSync(FILE, "utf8")) : undefined
const rsaKey = existing !== undefined
  ? crypto.createPrivateKey({ key: unhex(existing.keys.rsaPrivatePkcs8), format: "der", type: "pkcs8" })
  : crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey
const kms = memoryKms({ "vector-master": KMS_MASTER }, kmsNonce)

const keyringOf = (c: VectorCase): Keyring.Keyring => {
  switch (c.keyring) {
    case "aes-gcm":
    case "aes-kw":
      return Keyring.aes({ keyId: "vector-key", version: 1, material: Redacted.make(KEK), wrap: c.keyring })
    case "kms":
      return Keyring.kms(kms, "vector-master")
    case "rsa-oaep-256":
      return Keyring.recipient({ keyId: "vector-rsa", version: 1, publicKey: crypto.createPublicKey(rsaKey) })
    case "x25519":
      return Keyring.recipient({ keyId: "vector-x25519", version: 1, publicKey: crypto.createPublicKey(x25519Key) })
  }
}

const unwrapper = Keyring.makeUnwrapper({
  kms,
  keys: [
    { _tag: "Aes", keyId: "vector-key", material: Redacted.make(KEK) },
    { _tag: "Private", keyId: "vector-rsa", privateKey: Redacted.make(rsaKey) },
    { _tag: "Private", keyId: "vector-x25519", privateKey: Redacted.make(x25519Key) }
  ]
})

/** Intermediate values computed straight from the spec's formulas. */
const intermediate = (c: VectorCase, seed: string, bucket: string, key: string) => {
  const random = deterministic(seed)
  const dataKey = Buffer.from(random(32))
  const salt = Buffer.from(random(32))
  const header = Buffer.alloc(38)
  header[0] = 1
  header[1] = 1
  header.writeUInt32BE(c.segmentSize, 2)
  salt.copy(header, 6)
  const ctx = { ...c.context, "oc:bucket": bucket, "oc:key": key }
  const entries = Object.entries(ctx).map(([k, v]) => [Buffer.from(k), Buffer.from(v)] as const).sort((a, b) => Buffer.compare(a[0], b[0]))
  const u32 = (n: number) => {
    const b = Buffer.alloc(4)
    b.writeUInt32BE(n)
    return b
  }
  const contextBytes = Buffer.concat([u32(entries.length), ...entries.flatMap(([k, v]) => [u32(k.length), k, u32(v.length), v])])
  const lbl = (s: string) => Buffer.concat([Buffer.from(s), Buffer.from([0])])
  const sha = (...p: Array<Buffer>) => crypto.createHash("sha256").update(Buffer.concat(p)).digest()
  const binding = sha(lbl("objcrypt/native/v1 binding"), header, contextBytes)
  const hk = (label: string) => Buffer.from(crypto.hkdfSync("sha256", dataKey, salt, Buffer.concat([lbl(label), binding]), 32))
  const pt = unhex(c.plaintext)
  const n = pt.length === 0 ? 1 : Math.ceil(pt.length / c.segmentSize)
  const nonces = Array.from({ length: n }, (_, i) => {
    const b = Buffer.alloc(12)
    b.writeUInt32BE(i, 7)
    b[11] = i === n - 1 ? 1 : 0
    return hex(b)
  })
  return {
    dataKey: hex(dataKey),
    salt: hex(salt),
    header: hex(header),
    contextBytes: hex(contextBytes),
    binding: hex(binding),
    contentKey: hex(hk("objcrypt/native/v1 content key")),
    commitment: hex(hk("objcrypt/native/v1 key commitment")),
    contextDigest: hex(sha(lbl("objcrypt/native/v1 context"), contextBytes).subarray(0, 16)),
    nonces
  }
}

const generate = (c: VectorCase): Effect.Effect<Vector, unknown> =>
  Effect.gen(function*() {
    const bucket = "vectors"
    const key = `objects/${c.name}`
    const seed = `objcrypt native v1 vector ${c.name}`
    const store = MemoryStore.make({ bucket, maxMetadataBytes: 2048 })
    const pt = unhex(c.plaintext)
    yield* ClientSide.put(store, key, Stream.make(pt), [keyringOf(c)], {
      segmentSize: c.segmentSize,
      context: c.context,
      contentLength: pt.length
    }).pipe(Effect.locally(currentRandom, deterministic(seed)))
    const stored = store.objects.get(key)!
    const v: Vector = {
      ...c,
      bucket,
      key,
      seed,
      metadata: stored.metadata,
      body: hex(stored.bytes),
      intermediate: intermediate(c, seed, bucket, key)
    }
    if (c.range === undefined) return v
    const full = c.segmentSize + 16
    const first = Math.floor(c.range.start / c.segmentSize)
    const last = Math.floor((c.range.end - 1) / c.segmentSize)
    return {
      ...v,
      rangePlaintext: hex(pt.subarray(c.range.start, c.range.end)),
      rangeCiphertext: { start: first * full, end: Math.min(stored.bytes.length, (last + 1) * full) }
    }
  })

/** The RSA-OAEP entry is randomized by OpenSSL: compare everything but its wrapped bytes. */
const comparable = (m: Record<string, string>) =>
  Object.fromEntries(Object.entries(m).map(([k, v]) => [k, v.startsWith("rsa-oaep-256.") ? v.split(".").slice(0, 3).join(".") : v]))

if (process.env.OBJCRYPT_WRITE_VECTORS === "1") {
  const vectors = await Effect.runPromise(Effect.forEach(CASES, generate))
  const file: VectorFile = {
    keys: {
      aes: hex(KEK),
      kmsMaster: hex(KMS_MASTER),
      x25519Private: hex(X25519_PRIVATE),
      rsaPrivatePkcs8: hex(rsaKey.export({ format: "der", type: "pkcs8" }))
    },
    vectors
  }
  fs.mkdirSync(new URL(".", FILE), { recursive: true })
  fs.writeFileSync(FILE, JSON.stringify(file, null, 2) + "\n")
}

const committed: VectorFile = JSON.parse(fs.readFileSync(FILE, "utf8"))

describe("NativeFormat test vectors (docs/FORMAT.md)", () => {
  it("covers every case", () => {
    assert.deepStrictEqual(committed.vectors.map((v) => v.name), CASES.map((c) => c.name))
  })

  for (const v of committed.vectors) {
    it.effect(`${v.name}: re-encrypting with the fixed randomness gives the same bytes`, () =>
      Effect.gen(function*() {
        const c = CASES.find((x) => x.name === v.name)!
        const again = yield* generate(c)
        assert.strictEqual(again.body, v.body)
        assert.deepStrictEqual(comparable(again.metadata), comparable(v.metadata))
        if (v.keyring !== "rsa-oaep-256") assert.deepStrictEqual(again.metadata, v.metadata)
      }))

    it.effect(`${v.name}: intermediate values follow the spec's formulas`, () =>
      Effect.sync(() => {
        assert.deepStrictEqual(intermediate(v, v.seed, v.bucket, v.key), v.intermediate)
        assert.strictEqual(v.metadata.ocsalt, Buffer.from(v.intermediate.salt as string, "hex").toString("base64url"))
        assert.strictEqual(v.metadata.occm, Buffer.from(v.intermediate.commitment as string, "hex").toString("base64url"))
        // Segment 0 opens with the content key and nonce given.
        const body = unhex(v.body)
        const seg0 = body.subarray(0, Math.min(body.length, v.segmentSize + 16))
        const d = crypto.createDecipheriv("aes-256-gcm", unhex(v.intermediate.contentKey as string), unhex((v.intermediate.nonces as Array<string>)[0]!))
        d.setAuthTag(seg0.subarray(seg0.length - 16))
        const p0 = Buffer.concat([d.update(seg0.subarray(0, seg0.length - 16)), d.final()])
        assert.isTrue(p0.equals(unhex(v.plaintext).subarray(0, v.segmentSize)))
      }))

    it.effect(`${v.name}: decrypts${v.range === undefined ? "" : " (and its range)"}`, () =>
      Effect.gen(function*() {
        const store = MemoryStore.make({ bucket: v.bucket })
        yield* store.put(v.key, Stream.make(unhex(v.body)), { metadata: v.metadata })
        const pt = yield* ClientSide.getBytes(store, v.key, unwrapper)
        assert.strictEqual(hex(pt), v.plaintext)
        if (v.range !== undefined) {
          const before = store.stats.getBytes
          const r = yield* ClientSide.getBytes(store, v.key, unwrapper, { range: ObjectStore.range.bounded(v.range.start, v.range.end - 1) })
          assert.strictEqual(hex(r), v.rangePlaintext)
          assert.strictEqual(store.stats.getBytes - before, v.rangeCiphertext!.end - v.rangeCiphertext!.start)
        }
      }))
  }

  it("docs/FORMAT.md quotes every vector's body and metadata", () => {
    const doc = fs.readFileSync(DOC, "utf8").replace(/\s+/g, "")
    for (const v of committed.vectors) {
      assert.include(doc, v.body, v.name)
      for (const value of Object.values(v.metadata)) assert.include(doc, value, v.name)
    }
  })
})
