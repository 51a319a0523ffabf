import { defineProject, mergeConfig } from "vitest/config"
import shared from "../../vitest.shared.ts"

// End-to-end tests run the built bin in child processes: each test spawns several of them, and
// scrypt (the key store's KDF) costs a fraction of a second per process on a shared machine.
export default mergeConfig(shared, defineProject({ test: { name: "@objcrypt/cli", testTimeout: 300_000 } }))
