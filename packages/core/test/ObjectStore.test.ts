import { assert, describe, it } from "@effect/vitest"
import { Option } from "effect"
import * as ObjectStore from "../src/ObjectStore.js"

const r = ObjectStore.range
const resolve = (range: ObjectStore.ByteRange, size: number) => Option.getOrUndefined(ObjectStore.resolveRange(range, size))

describe("ObjectStore ranges (HTTP semantics)", () => {
  it("bounded ranges are inclusive and clamp past the end", () => {
    assert.deepStrictEqual(resolve(r.bounded(0, 0), 10), { start: 0, end: 1 })
    assert.deepStrictEqual(resolve(r.bounded(2, 5), 10), { start: 2, end: 6 })
    assert.deepStrictEqual(resolve(r.bounded(8, 100), 10), { start: 8, end: 10 })
  })

  it("open-ended and suffix ranges", () => {
    assert.deepStrictEqual(resolve(r.from(7), 10), { start: 7, end: 10 })
    assert.deepStrictEqual(resolve(r.suffix(3), 10), { start: 7, end: 10 })
    assert.deepStrictEqual(resolve(r.suffix(30), 10), { start: 0, end: 10 })
  })

  it("unsatisfiable ranges", () => {
    assert.isUndefined(resolve(r.bounded(10, 12), 10))
    assert.isUndefined(resolve(r.bounded(5, 2), 10))
    assert.isUndefined(resolve(r.bounded(-1, 2), 10))
    assert.isUndefined(resolve(r.from(10), 10))
    assert.isUndefined(resolve(r.suffix(0), 10))
    assert.isUndefined(resolve(r.suffix(5), 0))
    assert.isUndefined(resolve(r.bounded(0, 0), 0))
  })

  it("parses and formats Range headers", () => {
    for (const s of ["bytes=0-9", "bytes=5-", "bytes=-20"]) {
      assert.strictEqual(ObjectStore.formatRange(Option.getOrThrow(ObjectStore.parseRange(s))), s)
    }
    assert.isTrue(Option.isNone(ObjectStore.parseRange("bytes=-")))
    assert.isTrue(Option.isNone(ObjectStore.parseRange("bytes=1-2,4-5")))
    assert.isTrue(Option.isNone(ObjectStore.parseRange("items=1-2")))
  })

  it("counts metadata bytes as UTF-8 and validates metadata keys", () => {
    assert.strictEqual(ObjectStore.metadataSize({ ab: "é" }), 4)
    assert.isTrue(ObjectStore.isMetadataKey("oc-key.v1_x"))
    assert.isFalse(ObjectStore.isMetadataKey("Upper"))
    assert.isFalse(ObjectStore.isMetadataKey("-lead"))
    assert.isFalse(ObjectStore.isMetadataKey("sp ace"))
  })
})
