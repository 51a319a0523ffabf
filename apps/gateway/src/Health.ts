/**
 * Liveness and readiness. `GET /_health` answers 200 while the process serves requests;
 * `GET /_ready` answers 200 only when the backend answers a listing of the gateway's state (within
 * `timeout`) and the process is not shutting down, 503 otherwise. Underscores are never part of a
 * bucket name, so path-style S3 requests cannot collide; the endpoints answer only unsigned
 * GET/HEAD requests, which S3 would refuse anyway, so virtual-hosted keys named `_health` stay
 * reachable with a signature. The same endpoints (also as `/health` and `/ready`) are served alone
 * on the optional `health` listener. `/healthz` is kept as an alias of `/_health`.
 *
 * @since 0.1.0
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Duration, Effect } from "effect"
import { Buckets } from "./Buckets.js"

/**
 * @since 0.1.0
 * @category models
 */
export type Probe = "Health" | "Ready"

const MAIN: Record<string, Probe> = { "/_health": "Health", "/healthz": "Health", "/_ready": "Ready" }
const SEPARATE: Record<string, Probe> = { ...MAIN, "/health": "Health", "/ready": "Ready" }

const isSigned = (url: string, headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>) =>
  headers["authorization"] !== undefined || /[?&](X-Amz-Signature|X-Amz-Credential|Signature|AWSAccessKeyId)=/i.test(url)

/**
 * Which probe a request on the S3 port is (`undefined`: an S3 request).
 *
 * @since 0.1.0
 * @category routing
 */
export const probeOf = (
  method: string,
  url: string,
  headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>,
  separate = false
): Probe | undefined => {
  if (method !== "GET" && method !== "HEAD") return undefined
  if (!separate && isSigned(url, headers)) return undefined
  const qi = url.indexOf("?")
  return (separate ? SEPARATE : MAIN)[qi < 0 ? url : url.slice(0, qi)]
}

/**
 * Whether the backend answers: lists one entry of the gateway's state.
 *
 * @since 0.1.0
 * @category probes
 */
export const backendReady = (timeout: Duration.DurationInput = "3 seconds"): Effect.Effect<boolean, never, Buckets> =>
  Effect.flatMap(Buckets, (b) => b.system.list({ maxKeys: 1 })).pipe(
    Effect.as(true),
    Effect.timeoutTo({ duration: timeout, onTimeout: () => false, onSuccess: (ok) => ok }),
    Effect.catchAll(() => Effect.succeed(false)),
    Effect.catchAllDefect(() => Effect.succeed(false))
  )

const json = (status: number, body: Record<string, string>) => HttpServerResponse.unsafeJson(body, { status, headers: { "cache-control": "no-store" } })

/**
 * Answers a probe. `draining` is true once a shutdown began.
 *
 * @since 0.1.0
 * @category handlers
 */
export const respond = (probe: Probe, draining: () => boolean): Effect.Effect<HttpServerResponse.HttpServerResponse, never, Buckets> =>
  Effect.gen(function*() {
    if (probe === "Health") return json(200, { status: "ok" })
    if (draining()) return json(503, { status: "draining" })
    return (yield* backendReady()) ? json(200, { status: "ready" }) : json(503, { status: "unavailable", reason: "backend" })
  })

/**
 * The app of the separate health listener.
 *
 * @since 0.1.0
 * @category handlers
 */
export const app = (draining: () => boolean): Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest | Buckets> =>
  Effect.gen(function*() {
    const req = yield* HttpServerRequest.HttpServerRequest
    const probe = probeOf(req.method, req.url, req.headers, true)
    if (probe === undefined) return HttpServerResponse.text("not found", { status: 404 })
    return yield* respond(probe, draining)
  })
