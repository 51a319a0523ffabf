/**
 * An AWS-KMS-compatible endpoint (`X-Amz-Target: TrentService.*`,
 * `application/x-amz-json-1.1`) served on its own listener with the gateway's users and SigV4:
 * keys in the passphrase-protected key store or as non-extractable keys in a PKCS#11 token,
 * per-access-key grants, and every call in the key audit log. Blob layout: docs/KMS.md.
 *
 * @since 0.1.0
 */
// Subpath imports: the package barrels load every platform module (tens of MiB of idle RSS).
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as AuditLog from "@objcrypt/keys/AuditLog"
import * as LocalKeyStore from "@objcrypt/keys/LocalKeyStore"
import * as Pkcs11Kms from "@objcrypt/keys/Pkcs11Kms"
import { Context, Effect, Either, Layer, Option, Redacted, Schema } from "effect"
import type * as Scope from "effect/Scope"
import * as crypto from "node:crypto"
import * as fs from "node:fs/promises"
import { createServer } from "node:http"
import type * as GatewayConfig from "../GatewayConfig.js"
import type * as SigV4 from "../SigV4.js"
import * as KmsAuth from "./KmsAuth.js"
import * as KmsBackend from "./KmsBackend.js"
import { errors, toJson } from "./KmsError.js"
import * as KmsOperations from "./KmsOperations.js"
import * as KmsRegistry from "./KmsRegistry.js"

/**
 * Where a secret comes from: `{ "env": "NAME" }` or `{ "file": "/path" }` — the same shape as the
 * gateway configuration's `SecretRef` (declared here so `GatewayConfig` can embed this module's
 * schema without an import cycle).
 *
 * @since 0.1.0
 * @category schemas
 */
export const SecretRef = Schema.Union(
  Schema.Struct({ env: Schema.NonEmptyString }),
  Schema.Struct({ file: Schema.NonEmptyString })
)

const OperationPattern = Schema.String.pipe(Schema.pattern(/^(\*|[A-Za-z]+\*?)$/))

/**
 * One grant: what an access key may do with which keys (see `KmsOperations.Grant`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const GrantConfig = Schema.Struct({
  accessKeyId: Schema.NonEmptyString,
  /** Key ids, key ARNs, `alias/…` names, or `"*"`. */
  keys: Schema.Union(Schema.Literal("*"), Schema.Array(Schema.NonEmptyString)),
  /** AWS KMS action names without `kms:` (`Decrypt`, `GenerateDataKey*`, `ReEncryptFrom`…), or `"*"`. */
  operations: Schema.Union(Schema.Literal("*"), Schema.Array(OperationPattern))
})

/**
 * The KMS listener's configuration (the `kms` section of the gateway's configuration file).
 *
 * @since 0.1.0
 * @category schemas
 */
export const KmsServiceConfig = Schema.Struct({
  listen: Schema.optionalWith(
    Schema.Struct({
      host: Schema.optionalWith(Schema.String, { default: () => "127.0.0.1" }),
      port: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 65535)), { default: () => 9100 })
    }),
    { default: () => ({ host: "127.0.0.1", port: 9100 }) }
  ),
  /** The region clients sign for and ARNs name. @default the gateway's region, else "us-east-1" */
  region: Schema.optional(Schema.NonEmptyString),
  /** The account id in ARNs. @default "000000000000" */
  accountId: Schema.optionalWith(Schema.String.pipe(Schema.pattern(/^\d{12}$/)), { default: () => "000000000000" }),
  /** Where key material lives. */
  backend: Schema.Union(
    Schema.Struct({ type: Schema.Literal("keyStore"), path: Schema.NonEmptyString, passphrase: SecretRef }),
    Schema.Struct({
      type: Schema.Literal("pkcs11"),
      /** The PKCS#11 module, e.g. `/usr/lib/softhsm/libsofthsm2.so`. */
      library: Schema.NonEmptyString,
      tokenLabel: Schema.NonEmptyString,
      pin: SecretRef
    })
  ),
  /** The key registry (states, aliases, rotation schedule; no key material), a JSON file. */
  registry: Schema.NonEmptyString,
  /** The audit log (JSON lines): one entry per call. */
  auditLog: Schema.NonEmptyString,
  grants: Schema.Array(GrantConfig)
})

/**
 * @since 0.1.0
 * @category models
 */
export type KmsServiceConfig = typeof KmsServiceConfig.Type

/**
 * @since 0.1.0
 * @category models
 */
export type KmsServiceConfigEncoded = typeof KmsServiceConfig.Encoded

/**
 * The service could not start (backend, key store, token or audit log).
 *
 * @since 0.1.0
 * @category errors
 */
export class KmsServiceError extends Schema.TaggedError<KmsServiceError>("@objcrypt/gateway/KmsServiceError")("KmsServiceError", {
  detail: Schema.String
}) {
  override get message() {
    return `KMS service: ${this.detail}`
  }
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Accept a key store with low scrypt parameters (tests only). @default false */
  readonly allowLowCostKeyStore?: boolean | undefined
  /** The clock for key lifecycles (deletion waiting period, rotation), in ms. @default Date.now */
  readonly now?: (() => number) | undefined
  /** The region when the configuration names none (the gateway's). @default "us-east-1" */
  readonly defaultRegion?: string | undefined
}

/**
 * The running service: what the HTTP handler needs.
 *
 * @since 0.1.0
 * @category tags
 */
export class KmsServer extends Context.Tag("@objcrypt/gateway/KmsServer")<KmsServer, {
  readonly region: string
  readonly lookup: (accessKeyId: string) => SigV4.User | undefined
  readonly operations: KmsOperations.KmsOperations
  /** Records calls refused before they reach an operation (authentication, unknown target, bad JSON). */
  readonly audit: AuditLog.AuditLog["Type"]
}>() {}

/**
 * Decodes a `kms` configuration section.
 *
 * @since 0.1.0
 * @category parsing
 */
export const decodeConfig = (u: unknown, source = "kms"): Effect.Effect<KmsServiceConfig, KmsServiceError> =>
  Schema.decodeUnknown(KmsServiceConfig, { onExcessProperty: "error" })(u).pipe(
    Effect.mapError((e) => new KmsServiceError({ detail: `configuration ${source}: ${e.message}` }))
  )

/**
 * Reads a secret from its reference (trailing newline of a file dropped).
 *
 * @since 0.1.0
 * @category secrets
 */
export const readSecret = (ref: typeof SecretRef.Type, what: string): Effect.Effect<Redacted.Redacted<string>, KmsServiceError> =>
  "env" in ref
    ? Effect.suspend(() => {
      const v = process.env[ref.env]
      return v === undefined || v === ""
        ? Effect.fail(new KmsServiceError({ detail: `${what}: environment variable ${ref.env} is not set` }))
        : Effect.succeed(Redacted.make(v))
    })
    : Effect.tryPromise({
      try: () => fs.readFile(ref.file, "utf8"),
      catch: () => new KmsServiceError({ detail: `${what}: secret file ${ref.file} cannot be read` })
    }).pipe(Effect.map((s) => Redacted.make(s.replace(/\r?\n$/, ""))))

/**
 * Opens the backend, registry and audit log; they are closed with the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  config: KmsServiceConfig,
  users: ReadonlyArray<SigV4.User>,
  options?: Options
): Effect.Effect<KmsServer["Type"], KmsServiceError, Scope.Scope> =>
  Effect.gen(function*() {
    const backend: KmsBackend.KmsBackend = config.backend.type === "keyStore"
      ? yield* Effect.gen(function*() {
        const b = config.backend as Extract<KmsServiceConfig["backend"], { type: "keyStore" }>
        const passphrase = yield* readSecret(b.passphrase, "kms.backend.passphrase")
        const store = yield* LocalKeyStore.make({
          path: b.path,
          passphrase,
          ...(options?.allowLowCostKeyStore === true ? { allowLowCost: true, scrypt: { log2N: 10, r: 8, p: 1 } } : {})
        }).pipe(Effect.mapError((e) => new KmsServiceError({ detail: `key store: ${e.message}` })))
        return KmsBackend.keyStore(store.manager)
      })
      : yield* Effect.gen(function*() {
        const b = config.backend as Extract<KmsServiceConfig["backend"], { type: "pkcs11" }>
        const pin = yield* readSecret(b.pin, "kms.backend.pin")
        const { hsm } = yield* Pkcs11Kms.make({ library: b.library, tokenLabel: b.tokenLabel, pin }).pipe(
          Effect.mapError((e) => new KmsServiceError({ detail: `PKCS#11 token: ${e.detail}` }))
        )
        return KmsBackend.pkcs11(hsm)
      })
    const audit = Context.get(
      yield* Layer.build(AuditLog.layerFile(config.auditLog)).pipe(Effect.mapError((e) => new KmsServiceError({ detail: e.detail }))),
      AuditLog.AuditLog
    )
    const registry = yield* KmsRegistry.make(config.registry)
    const region = config.region ?? options?.defaultRegion ?? "us-east-1"
    const operations = KmsOperations.make(backend, registry, {
      region,
      accountId: config.accountId,
      grants: config.grants,
      now: options?.now ?? Date.now,
      audit
    })
    const byKey = new Map(users.map((u) => [u.accessKeyId, u]))
    return KmsServer.of({ region, lookup: (id) => byKey.get(id), operations, audit })
  })

const MAX_BODY = 1024 * 1024
const TARGET_PREFIX = "TrentService."
const JSON_TYPE = "application/x-amz-json-1.1"

const respond = (status: number, body: string, requestId: string) =>
  HttpServerResponse.text(body, { status, contentType: JSON_TYPE, headers: { "x-amzn-requestid": requestId } })

/**
 * Handles one KMS request (`POST /`).
 *
 * @since 0.1.0
 * @category handlers
 */
export const handle: Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest | KmsServer> = Effect.gen(
  function*() {
    const raw = yield* HttpServerRequest.HttpServerRequest
    const server = yield* KmsServer
    const requestId = crypto.randomUUID()
    let reached = false
    let principal: string | undefined
    let operation = "unknown"
    const result = Effect.gen(function*() {
      const headers: Record<string, string> = {}
      for (const [k, v] of Object.entries(raw.headers)) headers[k.toLowerCase()] = v
      const target = headers["x-amz-target"]
      if (target?.startsWith(TARGET_PREFIX) === true && /^[A-Za-z]{1,64}$/.test(target.slice(TARGET_PREFIX.length))) {
        operation = target.slice(TARGET_PREFIX.length)
      }
      const claimed = /Credential=([A-Za-z0-9]{1,128})\//.exec(headers["authorization"] ?? "")
      principal = claimed === null ? undefined : `unauthenticated:${claimed[1]}`
      const length = Number(headers["content-length"] ?? "0")
      if (!(length <= MAX_BODY)) return yield* errors.serialization("the request body is too large")
      const body = new Uint8Array(
        yield* raw.arrayBuffer.pipe(
          HttpIncomingMessage.withMaxBodySize(Option.some(MAX_BODY)),
          Effect.mapError(() => errors.serialization("the request body could not be read"))
        )
      )
      const qi = raw.url.indexOf("?")
      const user = yield* KmsAuth.verify(
        {
          method: raw.method,
          rawPath: qi < 0 ? raw.url : raw.url.slice(0, qi),
          rawQuery: qi < 0 ? "" : raw.url.slice(qi + 1),
          headers,
          body,
          now: new Date()
        },
        server.region,
        server.lookup
      )
      principal = user.name
      if (target === undefined || !target.startsWith(TARGET_PREFIX)) {
        return yield* errors.unknownOperation("the X-Amz-Target header must name a TrentService operation")
      }
      if (raw.method !== "POST") return yield* errors.unknownOperation(`${raw.method} is not supported; KMS requests are POST`)
      const text = Buffer.from(body).toString("utf8")
      const input = yield* Either.try({ try: () => (text.trim() === "" ? {} : JSON.parse(text)) as unknown, catch: () => errors.serialization("the request body is not valid JSON") })
      if (typeof input !== "object" || input === null || Array.isArray(input)) return yield* errors.serialization("the request body must be a JSON object")
      reached = true
      return yield* server.operations.call(user, target.slice(TARGET_PREFIX.length), input as KmsOperations.Json)
    })
    return yield* result.pipe(
      Effect.map((out) => respond(200, JSON.stringify(out), requestId)),
      Effect.catchAll((e) =>
        Effect.as(
          reached ? Effect.void : server.audit.record({
            operation: `kms.${operation}`,
            ...(principal === undefined ? {} : { principal }),
            outcome: "failure",
            error: e.type
          }),
          respond(e.status, toJson(e), requestId)
        )
      ),
      Effect.catchAllDefect(() => {
        const e = errors.internal("internal error")
        return Effect.succeed(respond(e.status, toJson(e), requestId))
      })
    )
  }
)

/**
 * `GET /healthz` and the KMS API on every other request.
 *
 * @since 0.1.0
 * @category routing
 */
export const router = HttpRouter.empty.pipe(
  HttpRouter.get("/healthz", HttpServerResponse.text("ok")),
  HttpRouter.all("*", handle)
)

/**
 * Serves the router on the `HttpServer` provided.
 *
 * @since 0.1.0
 * @category layers
 */
export const serve = HttpServer.serve(router)

/**
 * The `KmsServer` service from a configuration and the gateway's users.
 *
 * @since 0.1.0
 * @category layers
 */
export const serverLayer = (config: KmsServiceConfig, users: ReadonlyArray<SigV4.User>, options?: Options) =>
  Layer.scoped(KmsServer, make(config, users, options))

/**
 * The whole KMS listener: the service plus a Node HTTP server on `config.listen`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (config: KmsServiceConfig, users: ReadonlyArray<SigV4.User>, options?: Options) =>
  serve.pipe(
    HttpServer.withLogAddress,
    Layer.provide(serverLayer(config, users, options)),
    Layer.provide(NodeHttpServer.layer(createServer, { host: config.listen.host, port: config.listen.port }))
  )

/**
 * Reads the users' secrets from a gateway configuration's `users` (as `GatewayServer` does).
 *
 * @since 0.1.0
 * @category constructors
 */
export const readUsers = (
  users: ReadonlyArray<typeof GatewayConfig.UserConfig.Type>
): Effect.Effect<ReadonlyArray<SigV4.User>, KmsServiceError> =>
  Effect.forEach(users, (u) =>
    Effect.map(readSecret(u.secretAccessKey, `user ${u.name}`), (secretAccessKey) => ({
      name: u.name,
      accessKeyId: u.accessKeyId,
      secretAccessKey,
      buckets: u.buckets
    })))
