/**
 * Starts the S3 API alone (no GatewayServer): the same services the server composes, with the
 * API settings and the Buckets given by each test, on 127.0.0.1 and a free port.
 */
import { S3Client } from "@aws-sdk/client-s3"
import { HttpRouter, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import type * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as LocalKeyStore from "@objcrypt/keys/LocalKeyStore"
import * as LocalKms from "@objcrypt/keys/LocalKms"
import { Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import * as Buckets from "../src/Buckets.js"
import * as S3Api from "../src/S3Api.js"
import type * as SigV4 from "../src/SigV4.js"
import * as Sse from "../src/Sse.js"

export const alice = { id: "AKIAAPIALICE0001", secret: crypto.randomBytes(24).toString("base64url") }
export const bob = { id: "AKIAAPIBOB000002", secret: crypto.randomBytes(24).toString("base64url") }

const users: ReadonlyArray<SigV4.User> = [
  { name: "alice", accessKeyId: alice.id, secretAccessKey: Redacted.make(alice.secret), buckets: "*" },
  { name: "bob", accessKeyId: bob.id, secretAccessKey: Redacted.make(bob.secret), buckets: ["bob-bucket"] }
]

export interface Api {
  readonly port: number
  readonly endpoint: string
  readonly dir: string
  readonly root: string
  readonly close: () => Promise<void>
}

export interface StartOptions {
  readonly virtualHostDomains?: ReadonlyArray<string>
  /** Wraps every store the gateway opens (the system store and each bucket's). */
  readonly wrapStore?: (store: ObjectStore.ObjectStore["Type"]) => ObjectStore.ObjectStore["Type"]
  readonly minPartSize?: number
  /** @default "us-east-1" */
  readonly region?: string
}

export const start = async (options: StartOptions = {}): Promise<Api> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-gw-api-"))
  const root = path.join(dir, "data")
  const wrap = options.wrapStore ?? ((s) => s)
  const buckets = Layer.effect(
    Buckets.Buckets,
    Effect.map(Buckets.makeFs({ root, fsync: false }), (b) => {
      const system = wrap(b.system)
      return Buckets.make({ system, open: (name) => Effect.map(b.store(name), wrap) })
    })
  )
  const keys = Sse.layer({ sseS3Key: "gw-sse-s3", defaultKmsKey: "gw-kms" }).pipe(
    Layer.provide(LocalKms.layer),
    Layer.provide(LocalKeyStore.layer({
      path: path.join(dir, "keys.ocks"),
      passphrase: Redacted.make("api harness passphrase"),
      allowLowCost: true,
      scrypt: { log2N: 10, r: 8, p: 1 }
    }))
  )
  const settings = Layer.succeed(S3Api.ApiSettings, {
    users,
    region: options.region ?? "us-east-1",
    secure: false,
    allowPlainHttpSseC: true,
    minPartSize: options.minPartSize ?? 5 * 1024 * 1024,
    virtualHostDomains: options.virtualHostDomains
  })
  const scope = Effect.runSync(Scope.make())
  const layer = HttpServer.serve(HttpRouter.empty.pipe(HttpRouter.all("*", S3Api.handle))).pipe(
    Layer.provide(Layer.mergeAll(keys, settings, buckets)),
    Layer.provideMerge(NodeHttpServer.layer(http.createServer, { host: "127.0.0.1", port: 0 }))
  )
  const ctx = await Effect.runPromise(Layer.buildWithScope(layer, scope))
  const address = Context.get(ctx, HttpServer.HttpServer).address
  if (address._tag !== "TcpAddress") throw new Error("expected a TCP address")
  return {
    port: address.port,
    endpoint: `http://127.0.0.1:${address.port}`,
    dir,
    root,
    close: async () => {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}

export const client = (api: Api, user: { id: string; secret: string } = alice, extra?: Record<string, unknown>) =>
  new S3Client({
    endpoint: api.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: user.id, secretAccessKey: user.secret },
    ...extra
  })

/** An agent that connects every host name to 127.0.0.1 (virtual-hosted names need no DNS). */
export const loopbackAgent = () =>
  new http.Agent({
    lookup: ((_host: string, opts: { all?: boolean }, cb: (...args: Array<unknown>) => void) =>
      opts.all === true ? cb(null, [{ address: "127.0.0.1", family: 4 }]) : cb(null, "127.0.0.1", 4)) as never
  })

export const MiB = 1024 * 1024

/** Deterministic bytes with a marker that must never reach the backend in plaintext. */
export const MARKER = "API-PLAINTEXT-MARKER-52b1"
export const body = (n: number, seed = 1) => {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff
  if (n >= MARKER.length) Buffer.from(MARKER).copy(b, 0)
  return b
}

export const ssec = () => {
  const key = crypto.randomBytes(32)
  return {
    SSECustomerAlgorithm: "AES256",
    SSECustomerKey: key.toString("base64"),
    SSECustomerKeyMD5: crypto.createHash("md5").update(key).digest("base64")
  }
}

export const call = <A>(f: () => Promise<A>) => Effect.promise(f)
/** Runs an SDK call expected to fail; yields the S3 code and HTTP status. */
export const refused = (f: () => Promise<unknown>) =>
  Effect.tryPromise({ try: f, catch: (e) => e as { name: string; Code?: string; $metadata?: { httpStatusCode?: number } } }).pipe(
    Effect.flip,
    Effect.map((e) => ({ code: e.Code ?? e.name, status: e.$metadata?.httpStatusCode }))
  )
export const bytes = (b: { transformToByteArray: () => Promise<Uint8Array> } | undefined) => call(() => b!.transformToByteArray())

/** Every file under a directory, recursively. */
export const filesUnder = (dir: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name))
