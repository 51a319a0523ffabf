import { assert, describe, it } from "@effect/vitest"
import { decodeMetadata, decodeName, encodeMetadata, encodeName, encodeValue } from "../src/internal/metadata.js"

const CSHARP_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/

describe("metadata mapping", () => {
  it("maps every contract name to a C# identifier, injectively and losslessly", () => {
    const names = ["a", "encryptiondata", "with-dash_and.dot", "2fa.code-x_y", "0", "a_", "a__b", "a_h", "a-h", "a.d", "a_d", "x-ms", "9-", "_n", "n0"]
      .filter((n) => /^[a-z0-9][a-z0-9._-]*$/.test(n))
    const encoded = names.map(encodeName)
    for (const [i, e] of encoded.entries()) {
      assert.match(e, CSHARP_IDENTIFIER, names[i])
      assert.strictEqual(decodeName(e), names[i])
      assert.strictEqual(decodeName(e.toUpperCase()), names[i], "Azure names are case-insensitive")
    }
    assert.strictEqual(new Set(encoded.map((e) => e.toLowerCase())).size, names.length)
    assert.strictEqual(encodeName("2fa.code-x_y"), "_n2fa_dcode_hx__y")
    assert.strictEqual(encodeName("encryptiondata"), "encryptiondata")
  })

  it("returns names written by other clients as they are (lower-cased)", () => {
    for (const n of ["Foo_Bar", "a_q", "_x", "_nx", "snake_case"]) assert.strictEqual(decodeName(n), n.toLowerCase())
  })

  it("keeps header-safe values and encodes the others as one RFC 2047 word", () => {
    const values = ["plain", "", "héllo wörld", " lead", "trail ", "a=?b", "tab\tx", "日本語", "🔐"]
    const m = Object.fromEntries(values.map((v, i) => [`k${i}`, v]))
    const enc = encodeMetadata(m)
    for (const v of Object.values(enc)) assert.match(v, /^[\x20-\x7e]*$/)
    assert.strictEqual(encodeValue("plain"), "plain")
    assert.strictEqual(encodeValue("é"), "=?UTF-8?B?w6k=?=")
    assert.deepStrictEqual(decodeMetadata(enc), m)
  })
})
