/**
 * `moto_server` (moto 5.x, from the machine's Python) on 127.0.0.1: the AWS KMS API, and an S3
 * that echoes SSE-S3/SSE-KMS headers and bucket encryption configuration but does not enforce
 * SSE-C. A server that cannot start fails the run.
 *
 * @since 0.1.0
 */
import { Clock, Context, Duration, Effect, Layer, Redacted } from "effect"
import type * as Scope from "effect/Scope"
import { daemon, freePort, ServerError, waitUntil } from "./internal/process.js"

export {
  /**
   * @since 0.1.0
   * @category errors
   */
  ServerError
} from "./internal/process.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface MotoServerInfo {
  /** `http://127.0.0.1:<port>`: one endpoint for every AWS service moto serves. */
  readonly endpoint: string
  readonly region: string
  /** moto accepts any credentials. */
  readonly accessKeyId: string
  readonly secretAccessKey: string
  /** Clears every resource moto holds (`POST /moto-api/reset`). */
  readonly reset: Effect.Effect<void, ServerError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class MotoServer extends Context.Tag("@objcrypt/test-kit/MotoServer")<MotoServer, MotoServerInfo>() {}

/**
 * @since 0.1.0
 * @category models
 */
export interface MotoServerOptions {
  /** @default "moto_server" on PATH, or `$MOTO_SERVER`. */
  readonly command?: string | undefined
  /** @default "60 seconds" */
  readonly startTimeout?: Duration.DurationInput | undefined
}

/**
 * Starts `moto_server` in the scope and stops it (by PID) on release.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options?: MotoServerOptions): Effect.Effect<MotoServerInfo, ServerError, Scope.Scope> =>
  Effect.gen(function*() {
    const port = yield* freePort
    const command = options?.command ?? process.env["MOTO_SERVER"] ?? "moto_server"
    const proc = yield* daemon("moto_server", command, ["-H", "127.0.0.1", "-p", String(port)], { graceMs: 2000 })
    const endpoint = `http://127.0.0.1:${port}`
    const call = (method: string, p: string) =>
      Effect.tryPromise({
        try: async () => {
          const res = await fetch(`${endpoint}${p}`, { method, signal: AbortSignal.timeout(5000) })
          await res.arrayBuffer()
          if (res.status >= 300) throw new Error(`HTTP ${res.status}`)
        },
        catch: (e) => new ServerError({ server: "moto_server", detail: `${method} ${p}: ${String(e)}` })
      })
    yield* waitUntil("moto_server", call("GET", "/moto-api/data.json"), {
      timeout: options?.startTimeout ?? "60 seconds",
      watch: [proc]
    })
    return {
      endpoint,
      region: "us-east-1",
      accessKeyId: "testing",
      secretAccessKey: "testing",
      reset: call("POST", "/moto-api/reset")
    }
  }).pipe(Effect.withClock(Clock.make()), Effect.withSpan("MotoServer.make"))

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: MotoServerOptions): Layer.Layer<MotoServer, ServerError> => Layer.scoped(MotoServer, make(options))

/**
 * Settings for an AWS SDK client of moto (driver-s3's `AwsKms.layer(MotoServer.clientSettings(m))`).
 *
 * @since 0.1.0
 * @category utils
 */
export const clientSettings = (info: MotoServerInfo) => ({
  endpoint: info.endpoint,
  region: info.region,
  accessKeyId: info.accessKeyId,
  secretAccessKey: Redacted.make(info.secretAccessKey)
})

/**
 * Settings for driver-s3's `S3ObjectStore` on moto's S3: path-style addressing, the `aws-s3`
 * profile (`S3ObjectStore.layer({ bucket, ...MotoServer.s3Settings(m) })`).
 *
 * @since 0.1.0
 * @category utils
 */
export const s3Settings = (info: MotoServerInfo) => ({ ...clientSettings(info), forcePathStyle: true, profile: "aws-s3" as const })
