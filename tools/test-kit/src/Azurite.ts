/**
 * Azurite (npm `azurite`, the Azure Storage emulator) on 127.0.0.1: the Blob service with
 * in-memory persistence, over http or, with `https: true`, over TLS with a self-signed certificate
 * made by `openssl req` for this run. Azurite supports neither customer-provided keys nor
 * encryption scopes; it is solid for blob I/O, staged blocks and copies. A server that cannot
 * start fails the run.
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, Layer } from "effect"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as http from "node:http"
import * as https from "node:https"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import { daemon, freePort, run, ServerError, waitUntil } from "./internal/process.js"

export {
  /**
   * @since 0.1.0
   * @category errors
   */
  ServerError
} from "./internal/process.js"

/**
 * Azurite's well-known development account.
 *
 * @since 0.1.0
 * @category constants
 */
export const devAccount = {
  name: "devstoreaccount1",
  key: "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
} as const

/**
 * @since 0.1.0
 * @category models
 */
export interface AzuriteInfo {
  /** `http(s)://127.0.0.1:<port>/devstoreaccount1`: the Blob service URL of the dev account. */
  readonly blobEndpoint: string
  readonly accountName: string
  /** The account's shared key (base64), a well-known public test value. */
  readonly accountKey: string
  /** A connection string for the account (`DefaultEndpointsProtocol=…;BlobEndpoint=…`). */
  readonly connectionString: string
  /** PEM of the self-signed certificate when started with `https: true`; trust it in the client. */
  readonly certificate?: string | undefined
  /** The Azurite process id (to kill it mid-test, e.g. to simulate a crash of the server). */
  readonly pid: number
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Azurite extends Context.Tag("@objcrypt/test-kit/Azurite")<Azurite, AzuriteInfo>() {}

/**
 * @since 0.1.0
 * @category models
 */
export interface AzuriteOptions {
  /** Serve https with a self-signed certificate for `127.0.0.1` generated for this run. @default false */
  readonly https?: boolean | undefined
  /** Azurite's loose mode: ignore unsupported headers instead of refusing them. @default false */
  readonly loose?: boolean | undefined
  /** @default "60 seconds" */
  readonly startTimeout?: string | undefined
}

const ping = (url: string, ca: string | undefined) =>
  Effect.async<void, Error>((resume) => {
    const lib = url.startsWith("https:") ? https : http
    const req = lib.get(url, { timeout: 2000, ...(ca === undefined ? {} : { ca }) }, (res) => {
      res.resume()
      // Any HTTP answer (Azurite replies 400/403 to an anonymous request) means it is serving.
      resume(Effect.void)
    })
    req.once("error", (e) => resume(Effect.fail(e)))
    req.once("timeout", () => req.destroy(new Error("timeout")))
  })

/**
 * Starts Azurite's Blob service in the scope (with the pinned Node running these tests) and stops
 * it, by PID, on release.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options?: AzuriteOptions): Effect.Effect<AzuriteInfo, ServerError, Scope.Scope> =>
  Effect.gen(function*() {
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-azurite-"))),
      (d) => Effect.sync(() => fs.rmSync(d, { recursive: true, force: true }))
    )
    const main = createRequire(import.meta.url).resolve("azurite/dist/src/blob/main.js")
    const port = yield* freePort
    const args = [
      main,
      "--blobHost",
      "127.0.0.1",
      "--blobPort",
      String(port),
      "--inMemoryPersistence",
      "--disableTelemetry",
      "--skipApiVersionCheck",
      "--silent"
    ]
    if (options?.loose === true) args.push("--loose")
    let certificate: string | undefined
    if (options?.https === true) {
      const cert = path.join(dir, "cert.pem")
      const key = path.join(dir, "key.pem")
      yield* run("openssl", "openssl", [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        key,
        "-out",
        cert
      ])
      certificate = fs.readFileSync(cert, "utf8")
      args.push("--cert", cert, "--key", key)
    }
    const proc = yield* daemon("azurite", process.execPath, args, { cwd: dir, graceMs: 2000 })
    const scheme = options?.https === true ? "https" : "http"
    const base = `${scheme}://127.0.0.1:${port}`
    yield* waitUntil("azurite", ping(`${base}/${devAccount.name}?comp=list`, certificate), {
      timeout: options?.startTimeout ?? "60 seconds",
      watch: [proc]
    })
    const blobEndpoint = `${base}/${devAccount.name}`
    return {
      blobEndpoint,
      accountName: devAccount.name,
      accountKey: devAccount.key,
      connectionString:
        `DefaultEndpointsProtocol=${scheme};AccountName=${devAccount.name};AccountKey=${devAccount.key};BlobEndpoint=${blobEndpoint};`,
      certificate,
      pid: proc.pid
    }
  }).pipe(Effect.withClock(Clock.make()), Effect.withSpan("Azurite.make"))

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: AzuriteOptions): Layer.Layer<Azurite, ServerError> => Layer.scoped(Azurite, make(options))
