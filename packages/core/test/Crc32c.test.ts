import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as Crc32c from "../src/Crc32c.js"

const filled = (n: number, f: (i: number) => number) => Uint8Array.from({ length: n }, (_, i) => f(i))

// Byte at a time, straight from the definition: the reference the sliced tables must agree with.
const reference = (bytes: Uint8Array): number => {
  let c = 0xffffffff
  for (const b of bytes) {
    c ^= b
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
  }
  return (c ^ 0xffffffff) >>> 0
}

describe("Crc32c", () => {
  it("matches the catalogue check value and the RFC 3720 (iSCSI) vectors", () => {
    assert.strictEqual(Crc32c.of(Buffer.from("123456789")), 0xe3069283)
    assert.strictEqual(Crc32c.of(new Uint8Array(0)), 0)
    assert.strictEqual(Crc32c.of(Buffer.alloc(32, 0)), 0x8a9136aa)
    assert.strictEqual(Crc32c.of(Buffer.alloc(32, 0xff)), 0x62a8ab43)
    assert.strictEqual(Crc32c.of(filled(32, (i) => i)), 0x46dd794e)
    assert.strictEqual(Crc32c.of(filled(32, (i) => 31 - i)), 0x113fdb5c)
  })

  it("encodes big-endian base64 as GCS and S3 send it", () => {
    assert.strictEqual(Crc32c.toBase64(0xe3069283), Buffer.from("e3069283", "hex").toString("base64"))
    assert.strictEqual(Crc32c.toBase64(0), "AAAAAA==")
  })

  it("agrees with the byte-at-a-time definition, in one piece or continued over any split", () =>
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(), (bytes, at) => {
        const cut = bytes.length === 0 ? 0 : at % (bytes.length + 1)
        const whole = Crc32c.of(bytes)
        assert.strictEqual(whole, reference(bytes))
        assert.strictEqual(Crc32c.update(Crc32c.update(0, bytes.subarray(0, cut)), bytes.subarray(cut)), whole)
      })
    ))
})
