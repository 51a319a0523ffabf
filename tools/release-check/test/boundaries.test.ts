import { assert, describe, it } from "@effect/vitest"
import { ESLint } from "eslint"
import * as path from "node:path"

const workspace = path.resolve(import.meta.dirname, "../../..")

const lint = async (file: string, code: string) => {
  const eslint = new ESLint({ cwd: workspace })
  const [result] = await eslint.lintText(code, { filePath: path.join(workspace, file) })
  return result!.messages.filter((m) => m.ruleId === "@nx/enforce-module-boundaries" || m.ruleId === "no-restricted-imports")
}

describe("layer boundaries (shared/ARCHITECTURE.md) are enforced by lint", () => {
  it("core may not import a driver", async () => {
    const errors = await lint("packages/core/src/Violation.ts", `import * as S3 from "@objcrypt/driver-s3"\nexport const x = S3\n`)
    assert.isAtLeast(errors.length, 1)
    assert.match(errors[0]!.message, /tags|Circular dependency/)
  })

  it("core may not import keys", async () => {
    const errors = await lint("packages/core/src/Violation.ts", `import * as K from "@objcrypt/keys"\nexport const x = K\n`)
    assert.isAtLeast(errors.length, 1)
  })

  it("a driver may not import another driver", async () => {
    const errors = await lint("packages/driver-s3/src/Violation.ts", `import * as Fs from "@objcrypt/driver-fs"\nexport const x = Fs\n`)
    assert.isAtLeast(errors.length, 1)
  })

  it("a driver may not import keys", async () => {
    const errors = await lint("packages/driver-fs/src/Violation.ts", `import * as K from "@objcrypt/keys"\nexport const x = K\n`)
    assert.isAtLeast(errors.length, 1)
  })

  it("shipped code may not import test-kit", async () => {
    const errors = await lint("apps/cli/src/Violation.ts", `import * as T from "@objcrypt/test-kit"\nexport const x = T\n`)
    assert.isAtLeast(errors.length, 1)
  })

  it("allowed arrows pass: a driver imports core, an app imports a driver", async () => {
    assert.lengthOf(await lint("packages/driver-fs/src/Ok.ts", `import * as C from "@objcrypt/core"\nexport const x = C\n`), 0)
    assert.lengthOf(await lint("apps/cli/src/Ok.ts", `import * as Fs from "@objcrypt/driver-fs"\nexport const x = Fs\n`), 0)
  })
})
