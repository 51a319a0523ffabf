/**
 * Child process of the GCS benchmark: runs `@objcrypt/test-kit/GcsServer` with one bucket, prints
 * its endpoint as one JSON line, and stops when its stdin closes.
 *
 * @since 0.1.0
 */
// The benchmark needs the GCS test server, which lives in test-kit; bench is dev-only like the tests.
import * as GcsServer from "@objcrypt/test-kit/GcsServer"
import { Effect } from "effect"

const program = Effect.scoped(
  Effect.gen(function*() {
    const server = yield* GcsServer.make({ buckets: ["bench"] })
    process.stdout.write(JSON.stringify({ endpoint: server.endpoint, projectId: server.projectId }) + "\n")
    yield* Effect.async<void>((resume) => {
      process.stdin.on("end", () => resume(Effect.void))
      process.stdin.on("close", () => resume(Effect.void))
      process.stdin.resume()
    })
  })
)

Effect.runPromise(program).then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`${String(e)}\n`)
    process.exit(1)
  }
)
