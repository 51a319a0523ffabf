import { assert, describe, it } from "@effect/vitest"

describe("runtime", () => {
  it("runs on the workspace's pinned Node 24, not the machine's Node", () => {
    assert.strictEqual(process.versions.node.split(".")[0], "24")
  })
})
