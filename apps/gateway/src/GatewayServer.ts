/**
 * The gateway's HTTP server: `GET /healthz` and the S3 API on `@effect/platform`'s router, and the
 * layers composing it from a configuration (key store, local KMS, buckets over driver-fs).
 *
 * @since 0.1.0
 */
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import * as LocalKeyStore from "@objcrypt/keys/LocalKeyStore"
import * as LocalKms from "@objcrypt/keys/LocalKms"
import { Effect, Layer } from "effect"
import { createServer } from "node:http"
import * as Buckets from "./Buckets.js"
import * as GatewayConfig from "./GatewayConfig.js"
import * as S3Api from "./S3Api.js"
import type * as SigV4 from "./SigV4.js"
import * as Sse from "./Sse.js"

/**
 * The router: health first, every other path to the S3 API.
 *
 * @since 0.1.0
 * @category routing
 */
export const router = HttpRouter.empty.pipe(
  HttpRouter.get("/healthz", HttpServerResponse.text("ok")),
  HttpRouter.all("*", S3Api.handle)
)

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
      const passphrase = yield* GatewayConfig.readSecret(config.keyStore.passphrase, "keyStore.passphrase")
      const keyStore = LocalKeyStore.layer({
        path: config.keyStore.path,
        passphrase,
        ...(options?.allowLowCostKeyStore === true ? { allowLowCost: true, scrypt: { log2N: 10, r: 8, p: 1 } } : {})
      })
      const keys = Sse.layer({ sseS3Key: config.keyStore.sseS3Key, defaultKmsKey: config.keyStore.defaultKmsKey }).pipe(
        Layer.provide(LocalKms.layer),
        Layer.provide(keyStore)
      )
      const settings = Layer.succeed(S3Api.ApiSettings, {
        users,
        region: config.region,
        secure: false,
        allowPlainHttpSseC: config.allowPlainHttpSseC,
        minPartSize: 5 * 1024 * 1024
      })
      return Layer.mergeAll(keys, settings, Buckets.layerFs({ root: config.backend.root, fsync: config.backend.fsync }))
    })
  )

/**
 * The whole gateway: services plus a Node HTTP server listening where the configuration says.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (config: GatewayConfig.GatewayConfig, options?: { readonly allowLowCostKeyStore?: boolean }) =>
  serve.pipe(
    HttpServer.withLogAddress,
    Layer.provide(servicesLayer(config, options)),
    Layer.provide(NodeHttpServer.layer(createServer, { host: config.listen.host, port: config.listen.port }))
  )
