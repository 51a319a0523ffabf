import { HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { KMSClient } from "@aws-sdk/client-kms"
import { Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import { createServer } from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import * as KmsService from "../../src/kms/KmsService.js"
import type * as SigV4 from "../../src/SigV4.js"

export const REGION = "us-east-1"

const user = (name: string, accessKeyId: string): SigV4.User & { readonly secret: string } => {
  const secret = crypto.randomBytes(24).toString("base64url")
  return { name, accessKeyId, secret, secretAccessKey: Redacted.make(secret), buckets: "*" }
}

/** alice may do everything; bob only Decrypt/Encrypt/DescribeKey on `alias/bob`; carol has no grant. */
export const users = {
  alice: user("alice", "AKIAKMSALICE00001"),
  bob: user("bob", "AKIAKMSBOB0000002"),
  carol: user("carol", "AKIAKMSCAROL00003")
}

export interface Service {
  readonly endpoint: string
  readonly dir: string
  readonly auditLog: string
  /** Moves the service's lifecycle clock forward. */
  readonly advance: (ms: number) => void
  /** The service's lifecycle clock. */
  readonly now: () => number
  readonly close: () => Promise<void>
}

process.env["KMS_TEST_PASSPHRASE"] = "kms test passphrase, not a secret"

export const configFor = (dir: string, extra?: Partial<KmsService.KmsServiceConfigEncoded>): KmsService.KmsServiceConfig =>
  Effect.runSync(KmsService.decodeConfig({
    listen: { host: "127.0.0.1", port: 0 },
    region: REGION,
    backend: { type: "keyStore", path: path.join(dir, "keys.ocks"), passphrase: { env: "KMS_TEST_PASSPHRASE" } },
    registry: path.join(dir, "kms-registry.json"),
    auditLog: path.join(dir, "kms-audit.jsonl"),
    grants: [
      { accessKeyId: users.alice.accessKeyId, keys: "*", operations: "*" },
      { accessKeyId: users.bob.accessKeyId, keys: ["alias/bob"], operations: ["Decrypt", "Encrypt", "DescribeKey"] }
    ],
    ...extra
  }))

export const start = async (
  extra?: Partial<KmsService.KmsServiceConfigEncoded>,
  extraUsers: ReadonlyArray<SigV4.User> = [],
  /** Share another service's key store, registry and audit log (a second replica). */
  shareDir?: string
): Promise<Service> => {
  const dir = shareDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-kms-"))
  const config = configFor(dir, extra)
  let offset = 0
  const scope = Effect.runSync(Scope.make())
  const layer = KmsService.serve.pipe(
    Layer.provide(KmsService.serverLayer(config, [...Object.values(users), ...extraUsers], { allowLowCostKeyStore: true, now: () => Date.now() + offset })),
    Layer.provideMerge(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: 0 }))
  )
  const ctx = await Effect.runPromise(Layer.buildWithScope(layer, scope))
  const address = Context.get(ctx, HttpServer.HttpServer).address
  if (address._tag !== "TcpAddress") throw new Error("expected a TCP address")
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    dir,
    auditLog: config.auditLog,
    now: () => Date.now() + offset,
    advance: (ms) => {
      offset += ms
    },
    close: async () => {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      if (shareDir === undefined) fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}

export const client = (service: { readonly endpoint: string }, u: { readonly accessKeyId: string; readonly secret: string } = users.alice) =>
  new KMSClient({
    endpoint: service.endpoint,
    region: REGION,
    maxAttempts: 1,
    credentials: { accessKeyId: u.accessKeyId, secretAccessKey: u.secret }
  })

export const DAY = 24 * 3600 * 1000
