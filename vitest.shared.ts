import { defaultClientConditions, defaultServerConditions } from "vite"
import { defineConfig } from "vitest/config"

// Tests run on the TypeScript sources of every workspace package through the
// "@objcrypt/source" export condition, so no build is needed before `vitest`.
// Vite's `module` condition is dropped: the AWS SDK lists under it an ESM build with
// extension-less imports that Node cannot load; resolve packages as Node does.
const withoutModule = (conditions: ReadonlyArray<string>) => conditions.filter((c) => c !== "module")

export default defineConfig({
  resolve: { conditions: ["@objcrypt/source", ...withoutModule(defaultClientConditions)] },
  ssr: { resolve: { conditions: ["@objcrypt/source", ...withoutModule(defaultServerConditions)] } },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    sequence: { concurrent: false },
    pool: "forks"
  }
})
