/**
 * Child process of the GCS benchmark: what `objcrypt cp FILE gs://bench/KEY --mode MODE` does,
 * through the library (the CLI has no `gs://` URLs yet): the file streamed from disk into
 * `GcsObjectStore` (parallel compose upload), with `none` a plain `put` and `cse-c` core's
 * `ClientSide.put` under a random AES-256 key. Then reads the object back and checks its size.
 *
 *   upload.ts ENDPOINT FILE MODE KEY
 *
 * @since 0.1.0
 */
import * as ClientSide from "@objcrypt/core/ClientSide"
import * as Keyring from "@objcrypt/core/Keyring"
import * as GcsObjectStore from "@objcrypt/driver-gcs/GcsObjectStore"
import { Effect, Redacted, Stream } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"

const [endpoint, file, mode, key] = process.argv.slice(2) as [string, string, string, string]

const body = Stream.fromAsyncIterable(fs.createReadStream(file, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Uint8Array>, (e) => e)

const program = Effect.scoped(
  Effect.gen(function*() {
    const store = yield* GcsObjectStore.make({ bucket: "bench", apiEndpoint: endpoint, projectId: "objcrypt-test" })
    const size = fs.statSync(file).size
    if (mode === "cse-c") {
      const keyring = Keyring.aes({ keyId: "bench", material: Redacted.make(new Uint8Array(crypto.randomBytes(32))) })
      yield* ClientSide.put(store, key, body, [keyring], { contentLength: size })
    } else {
      yield* store.put(key, body, { contentLength: size })
    }
    const info = yield* store.head(key)
    if (mode === "none" && info.size !== size) throw new Error(`stored ${info.size} bytes, not ${size}`)
    yield* store.remove(key)
  })
)

Effect.runPromise(program).then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`${String(e)}\n`)
    process.exit(1)
  }
)
