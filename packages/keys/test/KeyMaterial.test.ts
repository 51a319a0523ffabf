import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import * as crypto from "node:crypto"
import * as KeyMaterial from "../src/KeyMaterial.js"

const key = crypto.randomBytes(32)
const r = <A>(v: A) => Redacted.make(v)
const decode = (input: Uint8Array | string, format: KeyMaterial.Format | "auto" = "auto") =>
  KeyMaterial.decode(r(input), format)
const text = (m: Redacted.Redacted<Uint8Array>) => Buffer.from(Redacted.value(m)).toString("utf8")
const symBytes = (m: KeyMaterial.KeyMaterial) => {
  assert.strictEqual(m._tag, "Symmetric")
  return Buffer.from(Redacted.value((m as Extract<KeyMaterial.KeyMaterial, { _tag: "Symmetric" }>).bytes))
}

describe("KeyMaterial.generate", () => {
  it.effect("aes-256 is 32 random bytes, different every time", () =>
    Effect.gen(function*() {
      const a = symBytes(yield* KeyMaterial.generate("aes-256"))
      const b = symBytes(yield* KeyMaterial.generate("aes-256"))
      assert.strictEqual(a.length, 32)
      assert.isFalse(a.equals(b))
    }))

  it.effect("x25519 and RSA key pairs", () =>
    Effect.gen(function*() {
      const x = yield* KeyMaterial.generate("x25519")
      assert.strictEqual(x._tag, "KeyPair")
      assert.strictEqual(x._tag === "KeyPair" && x.publicKey.asymmetricKeyType, "x25519")
      const rsa = yield* KeyMaterial.generate("rsa-oaep-256", { modulusLength: 2048 })
      assert.strictEqual(rsa._tag === "KeyPair" && rsa.publicKey.asymmetricKeyDetails?.modulusLength, 2048)
    }))

  it.effect("refuses an RSA modulus under 2048 bits", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(KeyMaterial.generate("rsa-oaep-256", { modulusLength: 1024 }))
      assert.strictEqual(e._tag, "InvalidCustomerKey")
      assert.strictEqual(e.reason, "UnsupportedAlgorithm")
    }))
})

describe("KeyMaterial.decode symmetric", () => {
  it.effect("raw 32-byte file, base64, base64url, hex and JWK oct give the same key", () =>
    Effect.gen(function*() {
      const forms: Array<[Uint8Array | string, KeyMaterial.Format | "auto"]> = [
        [key, "raw"],
        [key, "auto"],
        [key.toString("base64"), "base64"],
        [key.toString("base64") + "\n", "auto"],
        [key.toString("base64url"), "base64"],
        [key.toString("hex"), "hex"],
        [key.toString("hex").toUpperCase() + "\n", "auto"],
        [JSON.stringify({ kty: "oct", k: key.toString("base64url") }), "auto"],
        [Buffer.from(JSON.stringify({ kty: "oct", k: key.toString("base64url"), alg: "A256KW" })), "jwk"]
      ]
      for (const [input, format] of forms) {
        assert.isTrue(symBytes(yield* decode(input, format)).equals(key), `form ${format}`)
      }
    }))

  it.effect("a 31-byte or 33-byte key is WrongLength in every encoding", () =>
    Effect.gen(function*() {
      for (const n of [31, 33, 0, 16, 64]) {
        const k = crypto.randomBytes(n)
        const inputs: Array<[Uint8Array | string, KeyMaterial.Format]> = [
          [k, "raw"],
          [k.toString("hex"), "hex"],
          [JSON.stringify({ kty: "oct", k: k.toString("base64url") }), "jwk"]
        ]
        if (n > 0) inputs.push([k.toString("base64"), "base64"])
        for (const [input, format] of inputs) {
          const e = yield* Effect.flip(decode(input, format))
          assert.strictEqual(e._tag, "InvalidCustomerKey")
          assert.strictEqual(e.reason, "WrongLength", `${n} bytes as ${format}`)
        }
      }
    }))

  it.effect("a binary 31-byte file auto-detects as raw and is WrongLength", () =>
    Effect.gen(function*() {
      const k = Buffer.concat([Buffer.from([0, 255]), crypto.randomBytes(29)])
      assert.strictEqual((yield* Effect.flip(decode(k))).reason, "WrongLength")
    }))

  it.effect("malformed encodings are BadEncoding", () =>
    Effect.gen(function*() {
      const cases: Array<[string, KeyMaterial.Format | "auto"]> = [
        ["zz" + key.toString("hex").slice(2), "hex"],
        [key.toString("hex").slice(1), "hex"],
        ["not base64 !!", "base64"],
        ["", "base64"],
        ["{not json", "jwk"],
        ["[1,2]", "jwk"],
        [JSON.stringify({ kty: "oct", k: 42 }), "jwk"],
        [JSON.stringify({ kty: "RSA", n: "AQAB" }), "jwk"],
        ["-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "pem"],
        ["no pem here", "pem"]
      ]
      for (const [input, format] of cases) {
        const e = yield* Effect.flip(decode(input, format))
        assert.strictEqual(e.reason, "BadEncoding", `${format}: ${input.slice(0, 20)}`)
      }
    }))

  it.effect("unsupported algorithms are refused", () =>
    Effect.gen(function*() {
      const ec = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" })
      const ed = crypto.generateKeyPairSync("ed25519")
      const weak = crypto.generateKeyPairSync("rsa", { modulusLength: 1024 })
      const cases: Array<string> = [
        JSON.stringify(ec.publicKey.export({ format: "jwk" })),
        ec.publicKey.export({ format: "pem", type: "spki" }).toString(),
        ed.privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
        weak.publicKey.export({ format: "pem", type: "spki" }).toString(),
        JSON.stringify({ kty: "oct", k: key.toString("base64url"), alg: "HS256" }),
        ec.privateKey.export({ format: "pem", type: "pkcs8", cipher: "aes-256-cbc", passphrase: "x" }).toString(),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
      ]
      for (const input of cases) {
        const e = yield* Effect.flip(decode(input))
        assert.strictEqual(e.reason, "UnsupportedAlgorithm", input.slice(0, 40))
      }
    }))
})

describe("KeyMaterial.decode asymmetric", () => {
  const rsa = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
  const x = crypto.generateKeyPairSync("x25519")

  it.effect("RSA and X25519 public keys from PEM (SPKI, PKCS#1) and JWK are recipients", () =>
    Effect.gen(function*() {
      const inputs = [
        rsa.publicKey.export({ format: "pem", type: "spki" }).toString(),
        rsa.publicKey.export({ format: "pem", type: "pkcs1" }).toString(),
        JSON.stringify(rsa.publicKey.export({ format: "jwk" })),
        x.publicKey.export({ format: "pem", type: "spki" }).toString(),
        JSON.stringify(x.publicKey.export({ format: "jwk" }))
      ]
      for (const input of inputs) {
        const m = yield* decode(input)
        assert.strictEqual(m._tag, "PublicKey")
      }
    }))

  it.effect("private keys from PEM (PKCS#8, PKCS#1) and JWK are key pairs with the right public key", () =>
    Effect.gen(function*() {
      const cases: Array<[string, crypto.KeyObject]> = [
        [rsa.privateKey.export({ format: "pem", type: "pkcs8" }).toString(), rsa.publicKey],
        [rsa.privateKey.export({ format: "pem", type: "pkcs1" }).toString(), rsa.publicKey],
        [JSON.stringify(rsa.privateKey.export({ format: "jwk" })), rsa.publicKey],
        [x.privateKey.export({ format: "pem", type: "pkcs8" }).toString(), x.publicKey],
        [JSON.stringify(x.privateKey.export({ format: "jwk" })), x.publicKey]
      ]
      for (const [input, pub] of cases) {
        const m = yield* decode(input)
        assert.strictEqual(m._tag, "KeyPair")
        assert.isTrue(m._tag === "KeyPair" && m.publicKey.equals(pub))
      }
    }))
})

describe("KeyMaterial.encode", () => {
  it.effect("symmetric round trips through raw, base64, hex and jwk; pem is refused", () =>
    Effect.gen(function*() {
      const m = yield* decode(key, "raw")
      for (const format of ["raw", "base64", "hex", "jwk"] as const) {
        const out = yield* KeyMaterial.encode(m, format)
        assert.isTrue(symBytes(yield* KeyMaterial.decode(out, format)).equals(key), format)
      }
      assert.strictEqual(text(yield* KeyMaterial.encode(m, "hex")), key.toString("hex"))
      assert.strictEqual((yield* Effect.flip(KeyMaterial.encode(m, "pem"))).reason, "UnsupportedAlgorithm")
    }))

  it.effect("key pairs export their public key unless includePrivate", () =>
    Effect.gen(function*() {
      for (const alg of ["x25519", "rsa-oaep-256"] as const) {
        const m = yield* KeyMaterial.generate(alg, { modulusLength: 2048 })
        const pub = text(yield* KeyMaterial.encode(m, "pem"))
        assert.match(pub, /BEGIN PUBLIC KEY/)
        const priv = text(yield* KeyMaterial.encode(m, "pem", { includePrivate: true }))
        assert.match(priv, /BEGIN PRIVATE KEY/)
        const again = yield* KeyMaterial.decode(r(priv), "pem")
        assert.isTrue(KeyMaterial.equals(m, again))
        const jwk = JSON.parse(text(yield* KeyMaterial.encode(m, "jwk"))) as Record<string, unknown>
        assert.isUndefined(jwk.d)
        const jwkPriv = JSON.parse(text(yield* KeyMaterial.encode(m, "jwk", { includePrivate: true }))) as Record<string, unknown>
        assert.isString(jwkPriv.d)
        assert.strictEqual((yield* Effect.flip(KeyMaterial.encode(m, "hex"))).reason, "UnsupportedAlgorithm")
        const pubOnly = yield* KeyMaterial.decode(r(pub), "pem")
        assert.strictEqual((yield* Effect.flip(KeyMaterial.encode(pubOnly, "pem", { includePrivate: true }))).reason, "Missing")
      }
    }))

  it.effect("fingerprints are stable and do not contain the key", () =>
    Effect.gen(function*() {
      const m = yield* decode(key, "raw")
      const f = KeyMaterial.fingerprint(m)
      assert.strictEqual(f, KeyMaterial.fingerprint(yield* decode(key.toString("hex"), "hex")))
      assert.notInclude(f, key.toString("hex").slice(0, 16))
      assert.match(f, /^kcv:[0-9a-f]{16}$/)
    }))
})
