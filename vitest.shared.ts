import { defaultClientConditions, defaultServerConditions } from "vite"
import { defineConfig } from "vitest/config"

// Tests run on the TypeScript sources of every workspace package through the
// "@objcrypt/source" export condition, so no build is needed before `vitest`.
export default defineConfig({
  resolve: { conditions: ["@objcrypt/source", ...defaultClientConditions] },
  ssr: { resolve: { conditions: ["@objcrypt/source", ...defaultServerConditions] } },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    sequence: { concurrent: false },
    pool: "forks"
  }
})
