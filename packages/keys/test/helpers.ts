import { Effect, Redacted } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as LocalKeyStore from "../src/LocalKeyStore.js"

/** Low scrypt cost: tests only. */
export const lowCost = { scrypt: { log2N: 10, r: 8, p: 1 }, allowLowCost: true } as const

export const passphrase = Redacted.make("correct horse battery staple")

/** A fresh directory removed when the scope closes. */
export const tmpDir = Effect.acquireRelease(
  Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "objcrypt-keys-"))),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

export const config = (file: string, extra?: Partial<LocalKeyStore.LocalKeyStoreConfig>): LocalKeyStore.LocalKeyStoreConfig => ({
  path: file,
  passphrase,
  ...lowCost,
  ...extra
})

/** A store in a fresh directory. */
export const openStore = (extra?: Partial<LocalKeyStore.LocalKeyStoreConfig>) =>
  Effect.gen(function*() {
    const dir = yield* tmpDir
    const file = path.join(dir, "keys", "store.ocks")
    const store = yield* LocalKeyStore.make(config(file, extra))
    return { dir, file, ...store }
  })

export const readFile = (file: string) => Effect.promise(() => fs.readFile(file))
export const writeFile = (file: string, bytes: Uint8Array) => Effect.promise(() => fs.writeFile(file, bytes))

export const exists = (file: string) => Effect.promise(() => fs.access(file).then(() => true, () => false))
