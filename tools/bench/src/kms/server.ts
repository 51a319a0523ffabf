/**
 * Child process of the KMS benchmark: runs the gateway's KMS service (key-store backend, in a
 * temporary directory, on 127.0.0.1) and moto_server (`@objcrypt/test-kit/MotoServer`), prints
 * both endpoints and the benchmark user's credentials as one JSON line, and stops when its stdin
 * closes.
 *
 * @since 0.1.0
 */
import { HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import * as KmsService from "@objcrypt/gateway/kms/KmsService"
// The benchmark compares with moto_server, which lives in test-kit; bench is dev-only like the tests.
import * as MotoServer from "@objcrypt/test-kit/MotoServer"
import { Context, Effect, Layer, Redacted } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import { createServer } from "node:http"
import * as os from "node:os"
import * as path from "node:path"

const program = Effect.scoped(
  Effect.gen(function*() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-kms-bench-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
    const accessKeyId = "AKIAKMSBENCH00001"
    const secret = crypto.randomBytes(24).toString("base64url")
    process.env["OBJCRYPT_KMS_BENCH_PASSPHRASE"] = crypto.randomBytes(16).toString("hex")
    const config = yield* KmsService.decodeConfig({
      listen: { host: "127.0.0.1", port: 0 },
      region: "us-east-1",
      backend: { type: "keyStore", path: path.join(dir, "keys.ocks"), passphrase: { env: "OBJCRYPT_KMS_BENCH_PASSPHRASE" } },
      registry: path.join(dir, "registry.json"),
      auditLog: path.join(dir, "audit.jsonl"),
      grants: [{ accessKeyId, keys: "*", operations: "*" }]
    })
    const users = [{ name: "bench", accessKeyId, secretAccessKey: Redacted.make(secret), buckets: "*" as const }]
    const ctx = yield* Layer.build(
      KmsService.serve.pipe(
        Layer.provide(KmsService.serverLayer(config, users)),
        Layer.provideMerge(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: 0 }))
      )
    )
    const address = Context.get(ctx, HttpServer.HttpServer).address
    if (address._tag !== "TcpAddress") return yield* Effect.die("expected a TCP address")
    const moto = yield* MotoServer.make()
    process.stdout.write(JSON.stringify({
      objcrypt: { endpoint: `http://127.0.0.1:${address.port}`, accessKeyId, secretAccessKey: secret },
      moto: { endpoint: moto.endpoint, accessKeyId: moto.accessKeyId, secretAccessKey: moto.secretAccessKey }
    }) + "\n")
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
