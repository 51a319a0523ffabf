import { HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { S3Client } from "@aws-sdk/client-s3"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import * as crypto from "node:crypto"
import { createServer } from "node:http"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as GatewayConfig from "../src/GatewayConfig.js"
import * as GatewayServer from "../src/GatewayServer.js"

export interface Gateway {
  readonly port: number
  readonly endpoint: string
  readonly close: () => Promise<void>
}

export const makeDirs = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-gateway-"))
  return { dir, root: path.join(dir, "data"), keystore: path.join(dir, "keys.ocks") }
}

export const users = {
  alice: { id: "AKIAALICE0000001", secret: crypto.randomBytes(24).toString("base64url") },
  bob: { id: "AKIABOB000000002", secret: crypto.randomBytes(24).toString("base64url") }
}

process.env["GW_TEST_ALICE"] = users.alice.secret
process.env["GW_TEST_BOB"] = users.bob.secret
process.env["GW_TEST_PASSPHRASE"] = "correct horse battery staple"

export const configFor = (dirs: { root: string; keystore: string }) =>
  Effect.runSync(GatewayConfig.decode({
    listen: { host: "127.0.0.1", port: 0 },
    backend: { type: "fs", root: dirs.root, fsync: false },
    users: [
      { name: "alice", accessKeyId: users.alice.id, secretAccessKey: { env: "GW_TEST_ALICE" }, buckets: "*" },
      { name: "bob", accessKeyId: users.bob.id, secretAccessKey: { env: "GW_TEST_BOB" }, buckets: ["bob-bucket"] }
    ],
    keyStore: { path: dirs.keystore, passphrase: { env: "GW_TEST_PASSPHRASE" } },
    allowPlainHttpSseC: true
  }))

export const start = async (config: GatewayConfig.GatewayConfig): Promise<Gateway> => {
  const scope = Effect.runSync(Scope.make())
  const layer = GatewayServer.serve.pipe(
    Layer.provide(GatewayServer.servicesLayer(config, { allowLowCostKeyStore: true })),
    Layer.provideMerge(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: 0 }))
  )
  const ctx = await Effect.runPromise(Layer.buildWithScope(layer, scope))
  const address = Context.get(ctx, HttpServer.HttpServer).address
  if (address._tag !== "TcpAddress") throw new Error("expected a TCP address")
  return {
    port: address.port,
    endpoint: `http://127.0.0.1:${address.port}`,
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

export const client = (gw: Gateway, user: { id: string; secret: string } = users.alice, extra?: Record<string, unknown>) =>
  new S3Client({
    endpoint: gw.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: user.id, secretAccessKey: user.secret },
    ...extra
  })

/** Every file under a directory, recursively. */
export const filesUnder = (dir: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name))
