/**
 * The HTTP layer under the real `@azure/keyvault-keys` SDK for the Key Vault tests: an `httpClient`
 * that records every request the SDK pipeline sends (method, path, api-version, JSON body, whether
 * it carries a bearer token) and answers with responses shaped as the Key Vault REST reference
 * documents them (learn.microsoft.com/rest/api/keyvault/keys: Get Key → a key bundle
 * `{ key: JsonWebKey, attributes }`, Wrap Key / Unwrap Key → `{ kid, value }` with base64url values,
 * errors → `{ error: { code, message, innererror } }`, and the 401 challenge with
 * `WWW-Authenticate: Bearer authorization="…", resource="…"` that starts every client's
 * authentication). The key operations are done for real with node:crypto so the SDK's results
 * can be checked end to end. No Key Vault server is involved: this verifies our requests, not the
 * service.
 */
import type { AccessToken, TokenCredential } from "@azure/core-auth"
import { createHttpHeaders } from "@azure/core-rest-pipeline"
import type { HttpClient, PipelineRequest, PipelineResponse } from "@azure/core-rest-pipeline"
import * as crypto from "node:crypto"

export interface Recorded {
  readonly method: string
  readonly host: string
  readonly path: string
  readonly apiVersion: string | null
  /** The parsed JSON body, `undefined` when there is none. */
  readonly body: unknown
  /** Whether an `Authorization: Bearer <the test token>` header was sent. */
  readonly bearer: boolean
}

export type KeyVersion =
  | { readonly version: string; readonly kty: "RSA" | "RSA-HSM"; readonly pair: crypto.KeyPairKeyObjectResult; readonly enabled?: boolean }
  | { readonly version: string; readonly kty: "oct-HSM"; readonly secret: Buffer; readonly enabled?: boolean }
  | { readonly version: string; readonly kty: "EC"; readonly pair: crypto.KeyPairKeyObjectResult; readonly enabled?: boolean }

export interface KeyVaultHttp {
  readonly httpClient: HttpClient
  readonly credential: TokenCredential
  readonly requests: Array<Recorded>
  readonly token: string
  /** Keys by name, versions oldest first (the last is current). */
  readonly keys: Map<string, Array<KeyVersion>>
  /** Operations answered with 403 Forbidden (e.g. "get", "unwrapKey"). */
  readonly forbidden: Set<string>
  /** Answer every request with this status (e.g. 401 to reject the token, 500). */
  failWith: number | undefined
}

const b64url = (b: Uint8Array) => Buffer.from(b).toString("base64url")

const json = (request: PipelineRequest, status: number, body: unknown, headers: Record<string, string> = {}): PipelineResponse => ({
  request,
  status,
  headers: createHttpHeaders({ "content-type": "application/json; charset=utf-8", "x-ms-keyvault-service-version": "1.9.0.0", ...headers }),
  bodyAsText: JSON.stringify(body)
})

const error = (request: PipelineRequest, status: number, code: string, message: string, inner?: string) =>
  json(request, status, { error: { code, message, ...(inner === undefined ? {} : { innererror: { code: inner } }) } })

export const make = (host: string): KeyVaultHttp => {
  const token = `test-token-${crypto.randomBytes(8).toString("hex")}`
  const base = `https://${host}`
  const resource = host.endsWith(".managedhsm.azure.net") ? "https://managedhsm.azure.net" : "https://vault.azure.net"
  const state: KeyVaultHttp = {
    token,
    requests: [],
    keys: new Map(),
    forbidden: new Set(),
    failWith: undefined,
    credential: {
      getToken: (): Promise<AccessToken> => Promise.resolve({ token, expiresOnTimestamp: Date.now() + 3_600_000 })
    },
    httpClient: { sendRequest: (request) => Promise.resolve(answer(request)) }
  }

  const bundle = (name: string, v: KeyVersion) => {
    const kid = `${base}/keys/${name}/${v.version}`
    const attributes = { enabled: v.enabled ?? true, created: 1_700_000_000, updated: 1_700_000_000, recoveryLevel: "Recoverable+Purgeable", recoverableDays: 90 }
    if (v.kty === "oct-HSM") return { key: { kid, kty: v.kty, key_ops: ["wrapKey", "unwrapKey"] }, attributes }
    const jwk = v.pair.publicKey.export({ format: "jwk" })
    const pub = v.kty === "EC" ? { crv: jwk.crv, x: jwk.x, y: jwk.y } : { n: jwk.n, e: jwk.e }
    const ops = v.kty === "EC" ? ["sign", "verify"] : ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"]
    return { key: { kid, kty: v.kty, key_ops: ops, ...pub }, attributes }
  }

  const answer = (request: PipelineRequest): PipelineResponse => {
    const url = new URL(request.url)
    const auth = request.headers.get("authorization")
    const body = typeof request.body === "string" && request.body.length > 0 ? JSON.parse(request.body) as Record<string, unknown> : undefined
    state.requests.push({
      method: request.method,
      host: url.host,
      path: url.pathname,
      apiVersion: url.searchParams.get("api-version"),
      body,
      bearer: auth === `Bearer ${token}`
    })
    if (url.host !== host) return error(request, 404, "NotFound", "unknown host")
    if (auth === undefined || auth === null || state.failWith === 401) {
      return json(request, 401, { error: { code: "Unauthorized", message: "AKV10000: Request is missing a Bearer or PoP token." } }, {
        "www-authenticate": `Bearer authorization="https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47", resource="${resource}"`
      })
    }
    if (auth !== `Bearer ${token}`) return error(request, 401, "Unauthorized", "AKV10022: Invalid audience.")
    if (state.failWith !== undefined) return error(request, state.failWith, "InternalServerError", "The service is unavailable.")

    const m = /^\/keys\/([^/]+)(?:\/([^/]*))?(?:\/(wrapkey|unwrapkey))?$/.exec(url.pathname)
    if (m === null) return error(request, 400, "BadParameter", "unknown operation")
    const [, name, version, op] = m
    const operation = op === "wrapkey" ? "wrapKey" : op === "unwrapkey" ? "unwrapKey" : "get"
    if (state.forbidden.has(operation)) {
      return error(
        request,
        403,
        "Forbidden",
        `The user, group or application 'appid=00000000-0000-0000-0000-000000000000' does not have keys ${operation} permission on key vault '${host.split(".")[0]};location=westeurope'.`,
        "AccessDenied"
      )
    }
    const versions = state.keys.get(name!) ?? []
    const v = version === undefined || version === "" ? versions.at(-1) : versions.find((x) => x.version === version)
    if (v === undefined) {
      return error(request, 404, "KeyNotFound", `A key with (name/id) ${name}${version ? `/${version}` : ""} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command.`)
    }
    const kid = `${base}/keys/${name}/${v.version}`
    if (operation === "get") {
      return request.method === "GET" ? json(request, 200, bundle(name!, v)) : error(request, 405, "MethodNotAllowed", "bad method")
    }
    if (request.method !== "POST" || body === undefined || typeof body["alg"] !== "string" || typeof body["value"] !== "string") {
      return error(request, 400, "BadParameter", "Property 'alg' and 'value' are required.")
    }
    if (v.enabled === false) return error(request, 403, "Forbidden", `Operation ${operation} is not allowed on a disabled key.`, "KeyDisabled")
    const alg = body["alg"]
    const value = Buffer.from(body["value"], "base64url")
    try {
      let out: Buffer
      if (v.kty === "oct-HSM") {
        if (alg !== "A256KW") return error(request, 400, "BadParameter", `Algorithm ${alg} is not supported for key type oct-HSM.`)
        const c = operation === "wrapKey"
          ? crypto.createCipheriv("id-aes256-wrap", v.secret, Buffer.from("A6A6A6A6A6A6A6A6", "hex"))
          : crypto.createDecipheriv("id-aes256-wrap", v.secret, Buffer.from("A6A6A6A6A6A6A6A6", "hex"))
        out = Buffer.concat([c.update(value), c.final()])
      } else if (v.kty === "EC") {
        return error(request, 400, "BadParameter", "Key and algorithm are not compatible.")
      } else {
        if (alg !== "RSA-OAEP" && alg !== "RSA-OAEP-256") return error(request, 400, "BadParameter", `Algorithm ${alg} is not supported.`)
        const params = { padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: alg === "RSA-OAEP" ? "sha1" : "sha256" }
        out = operation === "wrapKey"
          ? crypto.publicEncrypt({ key: v.pair.publicKey, ...params }, value)
          : crypto.privateDecrypt({ key: v.pair.privateKey, ...params }, value)
      }
      return json(request, 200, { kid, value: b64url(out) })
    } catch {
      return error(request, 400, "BadParameter", "The parameter is incorrect.")
    }
  }
  return state
}

export const rsaVersion = (version: string, enabled = true): KeyVersion => ({
  version,
  kty: "RSA",
  pair: crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }),
  enabled
})
