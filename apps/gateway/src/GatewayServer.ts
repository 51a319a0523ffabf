/**
 * The gateway's HTTP(S) server: health and readiness probes and the S3 API on `@effect/platform`'s
 * HTTP server, the JSON access log, graceful shutdown, and the layers composing it all from a
 * configuration (key store, local KMS, buckets over the configured backend).
 *
 * @since 0.1.0
 */
// Subpath imports: the package barrels load every platform module (~70 MB more resident memory).
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as LocalKeyStore from "@objcrypt/keys/LocalKeyStore"
import * as LocalKms from "@objcrypt/keys/LocalKms"
import type { KeyStoreError } from "@objcrypt/core/Errors"
import type { Kms } from "@objcrypt/core/Kms"
import { Duration, Effect, Layer } from "effect"
import * as crypto from "node:crypto"
import type * as http from "node:http"
import * as AccessLog from "./AccessLog.js"
import * as Backend from "./Backend.js"
import { Buckets } from "./Buckets.js"
import * as GatewayConfig from "./GatewayConfig.js"
import * as Health from "./Health.js"
import * as Etag from "./internal/etag.js"
import * as Orphans from "./internal/orphans.js"
import * as Multipart from "./Multipart.js"
import * as ObjectAttributes from "./ObjectAttributes.js"
import * as S3Api from "./S3Api.js"
import * as S3Error from "./S3Error.js"
import type * as SigV4 from "./SigV4.js"
import * as Sse from "./Sse.js"
import * as Tls from "./Tls.js"

/**
 * The app of the S3 port: probes (unsigned GET/HEAD of `/_health`, `/_ready`, `/healthz`), then
 * the S3 API. Once `draining()` is true, S3 requests are refused with S3's `503 ServiceUnavailable`
 * and `Connection: close`, so clients retry elsewhere.
 *
 * @since 0.1.0
 * @category routing
 */
export const app = (draining: () => boolean = () => false): Effect.Effect<
  HttpServerResponse.HttpServerResponse,
  never,
  HttpServerRequest.HttpServerRequest | S3Api.ApiSettings | Buckets | Sse.GatewayKeys
> =>
  Effect.gen(function*() {
    const req = yield* HttpServerRequest.HttpServerRequest
    const probe = Health.probeOf(req.method, req.url, req.headers)
    if (probe !== undefined) return yield* Health.respond(probe, draining)
    if (draining()) {
      const requestId = crypto.randomBytes(8).toString("hex").toUpperCase()
      const e = S3Error.errors.serviceUnavailable("the gateway is shutting down; please retry")
      return HttpServerResponse.text(S3Error.toXml(e, requestId), {
        status: 503,
        contentType: "application/xml",
        headers: { "x-amz-request-id": requestId, connection: "close", "retry-after": "1" }
      })
    }
    return yield* S3Api.handle
  })

/**
 * The app of a server that never shuts down gracefully (tests).
 *
 * @since 0.1.0
 * @category routing
 */
export const router = app()

/**
 * Serves the router on the `HttpServer` provided.
 *
 * @since 0.1.0
 * @category layers
 */
export const serve = HttpServer.serve(router)

/**
 * Everything the API needs, from a validated configuration (users' secrets and the key store
 * passphrase are read from their references here).
 *
 * @since 0.1.0
 * @category layers
 */
export const servicesLayer = (config: GatewayConfig.GatewayConfig, options?: { readonly allowLowCostKeyStore?: boolean }) =>
  Layer.unwrapEffect(
    Effect.gen(function*() {
      const users: Array<SigV4.User> = []
      for (const u of config.users) {
        users.push({
          name: u.name,
          accessKeyId: u.accessKeyId,
          secretAccessKey: yield* GatewayConfig.readSecret(u.secretAccessKey, `user ${u.name}`),
          buckets: u.buckets
        })
      }
      // No key store at all when the SSE-S3 master key is in a token and SSE-KMS goes to a remote
      // KMS (the configuration allows nothing else without one).
      const ks = config.keyStore
      const keyStore = ks === undefined ? undefined : LocalKeyStore.layer({
        path: ks.path,
        passphrase: yield* GatewayConfig.readSecret(ks.passphrase, "keyStore.passphrase"),
        ...(options?.allowLowCostKeyStore === true ? { allowLowCost: true, scrypt: { log2N: 10, r: 8, p: 1 } } : {})
      })
      const sseKms = config.sseKms
      const kms: Layer.Layer<Kms, KeyStoreError | GatewayConfig.ConfigFileError> = sseKms === undefined
        ? keyStore === undefined
          ? Layer.fail(new GatewayConfig.ConfigFileError({ path: "<config>", detail: "keyStore is required without sseKms" }))
          : LocalKms.layer.pipe(Layer.provide(keyStore))
        : Layer.unwrapEffect(Effect.gen(function*() {
          const secretAccessKey = yield* GatewayConfig.readSecret(sseKms.secretAccessKey, "sseKms.secretAccessKey")
          // Loaded only when configured, as the cloud backends are.
          const AwsKms = yield* Effect.promise(() => import("@objcrypt/driver-s3/AwsKms"))
          return AwsKms.layer({
            endpoint: sseKms.endpoint,
            region: sseKms.region ?? config.region,
            accessKeyId: sseKms.accessKeyId,
            secretAccessKey
          })
        }))
      const hsm = config.sseS3Hsm
      const keys = Sse.layer({
        sseS3Key: ks?.sseS3Key ?? "objcrypt-gateway-sse-s3",
        defaultKmsKey: sseKms?.defaultKeyId ?? ks?.defaultKmsKey ?? "objcrypt-gateway-kms",
        externalKms: sseKms !== undefined,
        sseS3Token: hsm === undefined ? undefined : {
          library: hsm.library,
          tokenLabel: hsm.tokenLabel,
          pin: yield* GatewayConfig.readSecret(hsm.pin, "sseS3Hsm.pin"),
          keyLabel: hsm.keyLabel
        }
      })
      // Sse.layer finds the key store (when there is one) with Effect.serviceOption.
      const services: Layer.Layer<Kms, KeyStoreError | GatewayConfig.ConfigFileError> = keyStore === undefined ? kms : Layer.merge(kms, keyStore)
      const keysLayer = keys.pipe(Layer.provide(services))
      const settings = Layer.succeed(S3Api.ApiSettings, {
        users,
        region: config.region,
        secure: config.tls !== undefined,
        allowPlainHttpSseC: config.allowPlainHttpSseC,
        minPartSize: 5 * 1024 * 1024,
        virtualHostDomains: config.virtualHostDomains
      })
      return Layer.mergeAll(keysLayer, settings, Backend.layer(config.backend))
    })
  )

/**
 * Requests in flight on a Node server, and the shutdown that lets them finish.
 *
 * @since 0.1.0
 * @category models
 */
export interface Drain {
  readonly draining: () => boolean
  readonly inFlight: () => number
  /** Stops accepting connections, lets requests in flight finish (up to `grace`), then closes every connection. */
  readonly shutdown: (grace: Duration.DurationInput) => Effect.Effect<void>
}

/**
 * Tracks the requests of `server`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const track = (server: http.Server): Drain => {
  let draining = false
  const open = new Set<http.ServerResponse>()
  server.prependListener("request", (_req: http.IncomingMessage, res: http.ServerResponse) => {
    open.add(res)
    if (draining) res.setHeader("connection", "close")
    res.once("close", () => open.delete(res))
  })
  const shutdown = (grace: Duration.DurationInput) =>
    Effect.gen(function*() {
      draining = true
      const closed = Effect.async<void>((resume) => {
        if (!server.listening) return resume(Effect.void)
        server.close(() => resume(Effect.void))
      })
      const closing = yield* Effect.fork(closed)
      for (const res of open) if (!res.headersSent) res.setHeader("connection", "close")
      const deadline = Date.now() + Duration.toMillis(Duration.decode(grace))
      while (open.size > 0 && Date.now() < deadline) {
        server.closeIdleConnections()
        yield* Effect.sleep("50 millis")
      }
      server.closeAllConnections()
      yield* closing.await
    })
  return { draining: () => draining, inFlight: () => open.size, shutdown }
}

/**
 * The whole gateway: services plus a Node HTTP(S) server listening where the configuration says,
 * the access log, the optional health listener, and graceful shutdown when the layer is released
 * (SIGTERM in `objcrypt-gateway`): new connections are refused, requests on open connections get
 * `503` with `Connection: close`, requests in flight finish within `shutdownGraceSeconds`. The
 * layer provides the S3 port's `HttpServer` (its address).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (config: GatewayConfig.GatewayConfig, options?: { readonly allowLowCostKeyStore?: boolean }) =>
  Layer.unwrapScoped(
    Effect.gen(function*() {
      const material = config.tls === undefined ? undefined : yield* Tls.load(config.tls)
      const node = Tls.createServer(material)
      const drain = track(node)
      const sink = yield* AccessLog.sink(config.accessLog)
      const users = new Map(config.users.map((u) => [u.accessKeyId, u.name] as const))
      if (sink !== undefined) {
        AccessLog.attach(node, {
          sink,
          users,
          virtualHostDomains: config.virtualHostDomains,
          classify: (req) => Health.probeOf(req.method ?? "", req.url ?? "/", req.headers)
        })
      }
      const main = Layer.scopedDiscard(
        Effect.gen(function*() {
          const server = yield* HttpServer.HttpServer
          yield* server.serve(app(drain.draining))
          if (server.address._tag === "TcpAddress") {
            yield* Effect.log(`Listening on ${material === undefined ? "http" : "https"}://${server.address.hostname}:${server.address.port}`)
          }
          // Added after `serve`, so it runs first on release: requests finish before the handler goes.
          yield* Effect.addFinalizer(() => drain.shutdown(Duration.seconds(config.shutdownGraceSeconds)))
        })
      ).pipe(
        Layer.provideMerge(NodeHttpServer.layer(() => node, { host: config.listen.host, port: config.listen.port }))
      )
      const health = config.health === undefined ? Layer.empty : Layer.scopedDiscard(
        Effect.gen(function*() {
          const server = yield* HttpServer.HttpServer
          yield* server.serve(Health.app(drain.draining))
        })
      ).pipe(
        Layer.provide(NodeHttpServer.layer(() => Tls.createServer(undefined), { host: config.health.host, port: config.health.port }))
      )
      // Orphan ETag records and manifests (a write killed between its record and its commit, a
      // delete or overwrite killed before dropping them) are swept here.
      const days = config.abortIncompleteUploadsAfterDays
      const maintenance = Layer.scopedDiscard(Effect.flatMap(Buckets, (buckets) =>
        Effect.zipRight(
          Effect.forkScoped(Orphans.sweepForever(buckets, [Etag.records, Multipart.manifests, ObjectAttributes.checksums])),
          days === undefined ? Effect.void : Effect.forkScoped(Multipart.abortIncompleteForever(buckets, days * 86_400_000))
        )))
      return Layer.mergeAll(main, health, maintenance).pipe(Layer.provide(servicesLayer(config, options)))
    })
  )
