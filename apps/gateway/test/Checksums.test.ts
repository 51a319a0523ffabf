import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as Checksums from "../src/Checksums.js"

const hex64 = (b: Uint8Array) => {
  const [hi, lo] = Checksums.crc64nvme(b)
  return hi.toString(16).padStart(8, "0") + lo.toString(16).padStart(8, "0")
}
const filled = (n: number, f: (i: number) => number) => {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = f(i) & 0xff
  return b
}
const CHECK = Buffer.from("123456789")

describe("Checksums", () => {
  it.effect("CRC32C matches its catalogue check value and the RFC 3720 (iSCSI) vectors", () =>
    Effect.sync(() => {
      assert.strictEqual(Checksums.crc32c(CHECK), 0xe3069283)
      assert.strictEqual(Checksums.crc32c(Buffer.alloc(32, 0)), 0x8a9136aa)
      assert.strictEqual(Checksums.crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43)
      assert.strictEqual(Checksums.crc32c(filled(32, (i) => i)), 0x46dd794e)
      assert.strictEqual(Checksums.crc32c(filled(32, (i) => 31 - i)), 0x113fdb5c)
      assert.strictEqual(Checksums.of("crc32c", CHECK), Buffer.from("e3069283", "hex").toString("base64"))
    }))

  it.effect("CRC64NVME matches its catalogue check value and the NVMe 4 KiB test cases", () =>
    Effect.sync(() => {
      assert.strictEqual(hex64(CHECK), "ae8b14860a799888")
      assert.strictEqual(hex64(Buffer.alloc(4096, 0)), "6482d367eb22b64e")
      assert.strictEqual(hex64(Buffer.alloc(4096, 0xff)), "c0ddba7302eca3ac")
      assert.strictEqual(hex64(filled(4096, (i) => i)), "3e729f5f6750449c")
      assert.strictEqual(hex64(filled(4096, (i) => 0xff - i)), "9a2df64b8e9e517e")
      assert.strictEqual(Checksums.of("crc64nvme", CHECK), Buffer.from("ae8b14860a799888", "hex").toString("base64"))
    }))

  it.effect("CRC32, SHA-1 and SHA-256 are big-endian base64 digests", () =>
    Effect.sync(() => {
      assert.strictEqual(Checksums.of("crc32", CHECK), Buffer.from("cbf43926", "hex").toString("base64"))
      assert.strictEqual(Checksums.of("sha1", CHECK), crypto.createHash("sha1").update(CHECK).digest("base64"))
      assert.strictEqual(Checksums.of("sha256", CHECK), crypto.createHash("sha256").update(CHECK).digest("base64"))
      assert.strictEqual(Checksums.of("crc32c", new Uint8Array(0)), "AAAAAA==")
      assert.strictEqual(Checksums.of("crc64nvme", new Uint8Array(0)), "AAAAAAAAAAA=")
    }))

  it.effect("incremental updates over any split equal the one-shot value", () =>
    Effect.sync(() => {
      const data = crypto.randomBytes(10_007)
      for (const a of Checksums.ALGORITHMS) {
        const whole = Checksums.of(a, data)
        for (const cuts of [[1], [7, 8, 9], [4096, 8191], [10_000]]) {
          const c = Checksums.make(a)
          let at = 0
          for (const cut of [...cuts, data.length]) {
            c.update(data.subarray(at, cut))
            at = cut
          }
          assert.strictEqual(Buffer.from(c.digest()).toString("base64"), whole, `${a} ${cuts.join(",")}`)
        }
      }
    }))

  it.effect("validates digests and builds S3's composite checksum", () =>
    Effect.sync(() => {
      assert.isTrue(Checksums.isWellFormed("crc32c", "4waSgw=="))
      assert.isFalse(Checksums.isWellFormed("crc32c", "rosUhgp5mIg="))
      assert.isFalse(Checksums.isWellFormed("crc64nvme", "not base64!"))
      assert.isTrue(Checksums.equal("4waSgw==", "4waSgw=="))
      assert.isFalse(Checksums.equal("4waSgw==", "4waSgA=="))
      assert.isFalse(Checksums.equal("", ""))
      const parts = [Buffer.from("part one"), Buffer.from("part two")]
      const sums = parts.map((p) => Checksums.of("sha256", p))
      const expected = crypto.createHash("sha256").update(Buffer.concat(sums.map((s) => Buffer.from(s, "base64")))).digest("base64")
      assert.strictEqual(Checksums.composite("sha256", sums), `${expected}-2`)
      assert.isTrue(Checksums.isAlgorithm("crc64nvme"))
      assert.isFalse(Checksums.isAlgorithm("md5"))
    }))
})

describe("Checksums.combine", () => {
  it.effect("combines the CRCs of consecutive runs into the CRC of the whole", () =>
    Effect.sync(() => {
      const data = crypto.randomBytes(70_000)
      for (const a of ["crc32", "crc32c", "crc64nvme"] as const) {
        for (const cut of [0, 1, 9, 65_536, 70_000]) {
          const combined = Checksums.combine(a, Checksums.of(a, data.subarray(0, cut)), Checksums.of(a, data.subarray(cut)), data.length - cut)
          assert.strictEqual(combined, Checksums.of(a, data), `${a} at ${cut}`)
        }
        const three = [data.subarray(0, 100), data.subarray(100, 5000), data.subarray(5000)]
        const folded = three.slice(1).reduce((acc, p) => Checksums.combine(a, acc, Checksums.of(a, p), p.length), Checksums.of(a, three[0]!))
        assert.strictEqual(folded, Checksums.of(a, data), `${a} folded`)
        assert.notStrictEqual(Checksums.combine(a, Checksums.of(a, three[1]!), Checksums.of(a, three[0]!), three[0]!.length), Checksums.of(a, data))
      }
    }))
})
