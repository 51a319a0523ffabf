/**
 * A Google Cloud Storage JSON-API server for tests, in this process, on 127.0.0.1 and a free port.
 * No GCS emulator installs on these machines, so this one is ours: the official
 * `@google-cloud/storage` client talks to it unchanged through `apiEndpoint`.
 *
 * It serves buckets get/insert/patch (with `encryption.defaultKmsKeyName` and the encryption
 * enforcement configs), objects insert (media, multipart, resumable — resumable sessions survive a
 * dropped connection), get (`alt=media`, `Range`), metadata get/patch, list (prefix, delimiter,
 * `maxResults`, `pageToken`, `startOffset`), delete, rewrite (with `rewriteToken` steps), copyTo and
 * compose. As Google documents: a CSEK object keeps only its key's SHA-256 (its bytes are stored
 * encrypted with the key), reads and rewrites without the key or with a wrong one are refused
 * with 400 and Google's JSON error body; CMEK names are recorded and echoed
 * (`…/cryptoKeyVersions/1`); `ifGenerationMatch` and the other preconditions hold (412).
 *
 * ```ts
 * const server = yield* GcsServer.GcsServer   // via GcsServer.layer({ buckets: ["b"] })
 * const storage = new Storage({ apiEndpoint: server.endpoint, projectId: server.projectId })
 * ```
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer } from "effect"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { GcsState } from "./internal/gcsServer.js"
import type { LoggedRequest } from "./internal/gcsServer.js"
import { ServerError } from "./internal/process.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface GcsServerOptions {
  /** Buckets created at start. @default [] */
  readonly buckets?: ReadonlyArray<string> | undefined
  /** @default "objcrypt-test" */
  readonly projectId?: string | undefined
  /** Bytes one rewrite call moves before answering with a `rewriteToken`. @default 8 MiB */
  readonly rewriteStep?: number | undefined
  /** Record every request (secrets redacted) in `requests`. @default false */
  readonly logRequests?: boolean | undefined
}

/**
 * A running server.
 *
 * @since 0.1.0
 * @category models
 */
export interface GcsServerInfo {
  /** `http://127.0.0.1:PORT`, for the client's `apiEndpoint`. */
  readonly endpoint: string
  readonly port: number
  readonly projectId: string
  /** Requests seen so far when `logRequests` is on; `*-encryption-key` headers are `[redacted]`. */
  readonly requests: ReadonlyArray<LoggedRequest>
  /** Creates a bucket, optionally with a default CMEK key and enforcement configs. */
  readonly createBucket: (name: string, encryption?: Readonly<Record<string, unknown>>) => Effect.Effect<void, ServerError>
  /** The SHA-256 (base64) the server keeps for a CSEK object, or `undefined`; for tests. */
  readonly storedKeySha256: (bucket: string, name: string) => string | undefined
  /** The bytes as they sit on the server's disk (ciphertext for CSEK objects); for tests. */
  readonly storedBytes: (bucket: string, name: string) => Effect.Effect<Uint8Array | undefined>
  /** Names of every object in a bucket, including ones a driver would hide. */
  readonly objectNames: (bucket: string) => ReadonlyArray<string>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class GcsServer extends Context.Tag("@objcrypt/test-kit/GcsServer")<GcsServer, GcsServerInfo>() {}

/**
 * Starts the server; it stops, and its temporary directory is removed, when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options?: GcsServerOptions): Effect.Effect<GcsServerInfo, ServerError, Scope.Scope> =>
  Effect.gen(function*() {
    const dir = yield* Effect.acquireRelease(
      Effect.try({
        try: () => fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-gcs-")),
        catch: (e) => new ServerError({ server: "GcsServer", detail: `temp dir: ${String(e)}` })
      }),
      (d) => Effect.sync(() => fs.rmSync(d, { recursive: true, force: true }))
    )
    const log: Array<LoggedRequest> | undefined = options?.logRequests === true ? [] : undefined
    const projectId = options?.projectId ?? "objcrypt-test"
    const state = new GcsState({ dir, projectId, rewriteStep: options?.rewriteStep ?? 8 * 1024 * 1024, log })
    const server = http.createServer({ requestTimeout: 0 }, state.handle)
    server.keepAliveTimeout = 65_000
    yield* Effect.acquireRelease(
      Effect.async<void, ServerError>((resume) => {
        server.once("error", (e) => resume(Effect.fail(new ServerError({ server: "GcsServer", detail: e.message }))))
        server.listen({ host: "127.0.0.1", port: 0 }, () => resume(Effect.void))
      }),
      () =>
        Effect.async<void>((resume) => {
          state.close()
          server.closeAllConnections()
          server.close(() => resume(Effect.void))
        })
    )
    const addr = server.address()
    const port = typeof addr === "object" && addr !== null ? addr.port : 0
    const endpoint = `http://127.0.0.1:${port}`
    state.endpoint = endpoint
    const createBucket = (name: string, encryption?: Readonly<Record<string, unknown>>) =>
      Effect.try({
        try: () => void state.createBucket(name, encryption === undefined ? undefined : { ...encryption }),
        catch: (e) => new ServerError({ server: "GcsServer", detail: e instanceof Error ? e.message : String(e) })
      })
    for (const b of options?.buckets ?? []) yield* createBucket(b)
    return {
      endpoint,
      port,
      projectId,
      requests: log ?? [],
      createBucket,
      storedKeySha256: (bucket, name) => state.buckets.get(bucket)?.objects.get(name)?.keySha256,
      storedBytes: (bucket, name) =>
        Effect.promise(async () => {
          const o = state.buckets.get(bucket)?.objects.get(name)
          return o === undefined ? undefined : new Uint8Array(await fs.promises.readFile(o.file))
        }),
      objectNames: (bucket) => [...(state.buckets.get(bucket)?.objects.keys() ?? [])]
    }
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: GcsServerOptions): Layer.Layer<GcsServer, ServerError> => Layer.scoped(GcsServer, make(options))
