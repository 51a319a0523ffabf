/**
 * HTTPS for the gateway: the certificate chain and private key come from PEM files named in the
 * configuration (the private key's passphrase, if any, from a secret reference). With TLS on,
 * requests count as secure, so SSE-C is accepted without `allowPlainHttpSseC`, as on S3.
 *
 * @since 0.1.0
 */
import { Effect, Redacted } from "effect"
import * as fs from "node:fs/promises"
import * as http from "node:http"
import * as https from "node:https"
import * as tls from "node:tls"
import * as GatewayConfig from "./GatewayConfig.js"

/**
 * Loaded TLS material; the private key stays `Redacted`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Material {
  readonly cert: string
  readonly key: Redacted.Redacted<string>
  readonly passphrase?: Redacted.Redacted<string> | undefined
}

/**
 * Reads the PEM files and checks that they form a usable pair.
 *
 * @since 0.1.0
 * @category constructors
 */
export const load = (config: GatewayConfig.GatewayConfig["tls"] & {}): Effect.Effect<Material, GatewayConfig.ConfigFileError> =>
  Effect.gen(function*() {
    const read = (file: string, what: string) =>
      Effect.tryPromise({
        try: () => fs.readFile(file, "utf8"),
        catch: () => new GatewayConfig.ConfigFileError({ path: `tls.${what}`, detail: `${file} cannot be read` })
      })
    const cert = yield* read(config.cert, "cert")
    const key = Redacted.make(yield* read(config.key, "key"))
    const passphrase = config.passphrase === undefined ? undefined : yield* GatewayConfig.readSecret(config.passphrase, "tls.passphrase")
    yield* Effect.try({
      try: () => tls.createSecureContext(options({ cert, key, passphrase })),
      // The OpenSSL message names the failing step (bad PEM, key/cert mismatch), never key bytes.
      catch: (e) =>
        new GatewayConfig.ConfigFileError({
          path: "tls",
          detail: `the certificate and key cannot be used: ${e instanceof Error ? e.message.replace(/-----BEGIN[\s\S]*/, "") : "invalid"}`
        })
    })
    return { cert, key, passphrase }
  })

const options = (m: Material): https.ServerOptions => ({
  cert: m.cert,
  key: Redacted.value(m.key),
  ...(m.passphrase === undefined ? {} : { passphrase: Redacted.value(m.passphrase) }),
  minVersion: "TLSv1.2"
})

/**
 * A Node server: HTTPS with `material`, plain HTTP without.
 *
 * @since 0.1.0
 * @category constructors
 */
export const createServer = (material: Material | undefined): http.Server =>
  material === undefined ? http.createServer() : (https.createServer(options(material)) as unknown as http.Server)
