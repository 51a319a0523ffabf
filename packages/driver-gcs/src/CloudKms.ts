/**
 * The core `Kms` contract on Google Cloud KMS, through its REST API (`cryptoKeys.encrypt` and
 * `cryptoKeys.decrypt` of `cloudkms.googleapis.com/v1`): a data key is 32 bytes from
 * `crypto.randomBytes`, wrapped by `encrypt`; the encryption context is bound as the request's
 * `additionalAuthenticatedData`, in core's canonical encoding (`NativeFormat.contextBytes`; an empty
 * context sends none). Every request carries CRC32C checksums and every response is checked
 * against them, as Google's integrity guide asks; a response that fails them is retried.
 *
 * Keys are named `projects/P/locations/L/keyRings/R/cryptoKeys/K`, optionally with
 * `/cryptoKeyVersions/N`. `encrypt` answers with the version it used, which is what the envelope
 * records; `decrypt` sends the key's name (Cloud KMS finds the version in the ciphertext).
 *
 * Authentication: an access token, a service-account key (signed locally as a self-signed JWT,
 * no token exchange), a key file, or Application Default Credentials; none for a custom endpoint
 * without credentials (a test server).
 *
 * @since 0.1.0
 */
import { KmsError } from "@objcrypt/core/Errors"
import type { EncryptionContext } from "@objcrypt/core/EncryptionMode"
import { Kms } from "@objcrypt/core/Kms"
import type { DataKey } from "@objcrypt/core/Kms"
import { contextBytes } from "@objcrypt/core/NativeFormat"
import { Config, Context, Duration, Effect, Layer, Redacted, Schedule } from "effect"
import type { ConfigError } from "effect/ConfigError"
import type * as Scope from "effect/Scope"
import { GoogleAuth, JWT } from "google-auth-library"
import type { AuthClient } from "google-auth-library"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import type { ServiceAccountCredentials } from "./GcsConfig.js"
import * as Crc32c from "./internal/crc32c.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface CloudKmsConfig {
  /** The REST endpoint (a regional or private endpoint, a test server). @default "https://cloudkms.googleapis.com" */
  readonly endpoint?: string | undefined
  /** A ready OAuth 2 access token (e.g. `gcloud auth print-access-token`), sent as is. */
  readonly accessToken?: Redacted.Redacted<string> | undefined
  /** A service account's key; requests carry a self-signed JWT made from it. */
  readonly credentials?: ServiceAccountCredentials | undefined
  /** A service account key file. Without it, `credentials` and `accessToken`: Application Default Credentials. */
  readonly keyFilename?: string | undefined
  /** Send no `Authorization` header. @default true for a custom `endpoint` given no credentials, else false */
  readonly anonymous?: boolean | undefined
  /** Retries of a call that failed with 429, 5xx, a network error or a checksum mismatch. @default 3 */
  readonly maxRetries?: number | undefined
  /** Time allowed for one HTTP request. @default 30 seconds */
  readonly requestTimeout?: Duration.DurationInput | undefined
}

/**
 * The Cloud KMS service: the core `Kms` plus the endpoint it calls.
 *
 * @since 0.1.0
 * @category tags
 */
export class CloudKms extends Context.Tag("@objcrypt/driver-gcs/CloudKms")<CloudKms, Kms["Type"] & { readonly endpoint: string }>() {}

/**
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_ENDPOINT = "https://cloudkms.googleapis.com"

/**
 * The OAuth scope the requests ask for.
 *
 * @since 0.1.0
 * @category constants
 */
export const SCOPE = "https://www.googleapis.com/auth/cloudkms"

/** Cloud KMS's limit on `plaintext` for software keys (64 KiB). */
const MAX_PLAINTEXT = 64 * 1024

const KEY_NAME = /^projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+\/cryptoKeys\/[^/]+$/
const VERSION_NAME = /^(projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+\/cryptoKeys\/[^/]+)\/cryptoKeyVersions\/[^/]+$/

/**
 * The crypto key a name refers to (a version name loses its `/cryptoKeyVersions/N`), or
 * `undefined` when the name is neither.
 *
 * @since 0.1.0
 * @category utils
 */
export const cryptoKeyOf = (name: string): string | undefined =>
  KEY_NAME.test(name) ? name : VERSION_NAME.exec(name)?.[1]

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64")
const crcOf = (bytes: Uint8Array): string => String(Crc32c.update(0, bytes))

/** Long base64 runs (resource names aside) are dropped from a server's message: an error never echoes key material. */
const scrub = (message: string): string =>
  message.replace(/[A-Za-z0-9+/_-]{32,}={0,2}/g, (run) => (/^projects\/[\w.-]+\/locations\//.test(run) && !run.includes("+") ? run : "…"))
    .replace(/\s+/g, " ").trim().slice(0, 300)

type Operation = "encrypt" | "decrypt"

interface GoogleError {
  readonly code?: unknown
  readonly message?: unknown
  readonly status?: unknown
}

/**
 * A Cloud KMS error answer (`{ "error": { code, message, status } }`) as a `KmsError`: NOT_FOUND →
 * NotFound, PERMISSION_DENIED/UNAUTHENTICATED → AccessDenied, FAILED_PRECONDITION → Disabled (or
 * InvalidState for a destroyed version), INVALID_ARGUMENT on decrypt → InvalidCiphertext (Cloud
 * KMS does not tell a damaged blob from a wrong key or context), 429/5xx → Unavailable.
 *
 * @since 0.1.0
 * @category errors
 */
export const toKmsError = (operation: Operation, httpStatus: number, body: unknown, keyId?: string | undefined): KmsError => {
  const e = (typeof body === "object" && body !== null ? (body as { error?: GoogleError }).error : undefined) ?? {}
  const status = typeof e.status === "string" ? e.status : `HTTP ${httpStatus}`
  const message = typeof e.message === "string" ? scrub(e.message) : ""
  const reason: KmsError["reason"] = status === "NOT_FOUND" || (status === `HTTP ${httpStatus}` && httpStatus === 404)
    ? "NotFound"
    : status === "PERMISSION_DENIED" || status === "UNAUTHENTICATED" || httpStatus === 401 || httpStatus === 403
    ? "AccessDenied"
    : status === "FAILED_PRECONDITION"
    ? (/DESTROY/.test(message) ? "InvalidState" : "Disabled")
    : status === "INVALID_ARGUMENT" && operation === "decrypt"
    ? "InvalidCiphertext"
    : status === "RESOURCE_EXHAUSTED" || status === "UNAVAILABLE" || status === "INTERNAL" || status === "DEADLINE_EXCEEDED" ||
        httpStatus === 429 || httpStatus >= 500
    ? "Unavailable"
    : "Invalid"
  const detail = reason === "InvalidCiphertext"
    ? `${status}: the ciphertext is damaged, was made under another key, or the encryption context does not match`
    : message === "" ? status : `${status}: ${message}`
  return new KmsError({ reason, ...(keyId === undefined ? {} : { keyId }), detail })
}

const invalid = (keyId: string | undefined, detail: string) => new KmsError({ reason: "Invalid", ...(keyId === undefined ? {} : { keyId }), detail })

/** A failure worth another attempt (throttling, a server or network fault, a corrupted answer). */
class Retryable {
  readonly _tag = "Retryable"
  readonly error: KmsError
  constructor(error: KmsError) {
    this.error = error
  }
}

const retryableStatus = (status: number) => status === 429 || status === 500 || status === 502 || status === 503 || status === 504

/** How requests are authorized, resolved once per service. */
const makeAuthorizer = (config: CloudKmsConfig, endpoint: string): ((url: string) => Promise<Record<string, string>>) => {
  if (config.accessToken !== undefined) {
    const token = config.accessToken
    return () => Promise.resolve({ authorization: `Bearer ${Redacted.value(token)}` })
  }
  const explicit = config.credentials !== undefined || config.keyFilename !== undefined
  if (config.anonymous ?? (config.endpoint !== undefined && !explicit)) return () => Promise.resolve({})
  const selfSigned = (email: string, key: string, keyId?: string) => {
    const jwt = new JWT({ email, key, scopes: [SCOPE], ...(keyId === undefined ? {} : { keyId }) })
    // As Google's client libraries do for service accounts: a locally signed JWT carrying the
    // scope, which Google APIs accept, so there is no token exchange with oauth2.googleapis.com.
    jwt.useJWTAccessWithScope = true
    jwt.defaultServicePath = new URL(endpoint).host
    return jwt
  }
  const resolve = async (): Promise<AuthClient> => {
    if (config.credentials !== undefined) return selfSigned(config.credentials.clientEmail, Redacted.value(config.credentials.privateKey))
    if (config.keyFilename !== undefined) {
      const file = JSON.parse(await fs.promises.readFile(config.keyFilename, "utf8")) as {
        type?: string
        client_email?: string
        private_key?: string
        private_key_id?: string
      }
      if (file.type === "service_account" && file.client_email !== undefined && file.private_key !== undefined) {
        return selfSigned(file.client_email, file.private_key, file.private_key_id)
      }
      return new GoogleAuth({ scopes: [SCOPE], keyFilename: config.keyFilename }).getClient()
    }
    return new GoogleAuth({ scopes: [SCOPE] }).getClient()
  }
  let client: Promise<AuthClient> | undefined
  return async (url) => {
    client ??= resolve()
    // A failed resolution (no ADC here yet) is tried again on the next call.
    client.catch(() => (client = undefined))
    const headers = await (await client).getRequestHeaders(url)
    const out: Record<string, string> = {}
    headers.forEach((v, k) => (out[k] = v))
    return out
  }
}

/**
 * Builds the service. Nothing is held open, so the scope is only for symmetry with the drivers.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (config: CloudKmsConfig): Effect.Effect<CloudKms["Type"], never, Scope.Scope> =>
  Effect.sync(() => {
    const endpoint = (config.endpoint ?? DEFAULT_ENDPOINT).replace(/\/+$/, "")
    const authorize = makeAuthorizer(config, endpoint)
    const timeout = Duration.decode(config.requestTimeout ?? "30 seconds")
    const retries = Math.max(0, config.maxRetries ?? 3)
    const schedule = Schedule.intersect(Schedule.jittered(Schedule.exponential("50 millis")), Schedule.recurs(retries))

    /** One POST to `/v1/{name}:{operation}`, retried on transient failures; the answer is `check`ed. */
    const call = <A>(operation: Operation, name: string, keyId: string | undefined, body: Record<string, string>, check: (json: Record<string, unknown>) => A | Retryable | KmsError) => {
      const url = `${endpoint}/v1/${name}:${operation}`
      const once = Effect.gen(function*() {
        const headers = yield* Effect.tryPromise({
          try: () => authorize(url),
          catch: (e) => new KmsError({ reason: "AccessDenied", ...(keyId === undefined ? {} : { keyId }), detail: `no credentials for Cloud KMS: ${scrub(e instanceof Error ? e.message : String(e))}` })
        })
        const response = yield* Effect.tryPromise({
          try: (signal) =>
            fetch(url, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: JSON.stringify(body), signal }).then(async (r) => ({
              status: r.status,
              text: await r.text()
            })),
          catch: (e) =>
            new Retryable(new KmsError({ reason: "Unavailable", ...(keyId === undefined ? {} : { keyId }), detail: `Cloud KMS unreachable: ${(e as { cause?: { code?: string } }).cause?.code ?? (e instanceof Error ? e.name : "error")}` }))
        }).pipe(
          Effect.timeoutFail({
            duration: timeout,
            onTimeout: () => new Retryable(new KmsError({ reason: "Unavailable", ...(keyId === undefined ? {} : { keyId }), detail: `no answer from Cloud KMS within ${Duration.format(timeout)}` }))
          })
        )
        let json: unknown
        try {
          json = JSON.parse(response.text)
        } catch {
          json = undefined
        }
        if (response.status !== 200) {
          const e = toKmsError(operation, response.status, json, keyId)
          return yield* (retryableStatus(response.status) ? Effect.fail(new Retryable(e)) : Effect.fail(e))
        }
        if (typeof json !== "object" || json === null) return yield* invalid(keyId, `Cloud KMS ${operation} answered with no JSON object`)
        const r = check(json as Record<string, unknown>)
        return yield* (r instanceof Retryable || r instanceof KmsError ? Effect.fail(r) : Effect.succeed(r))
      })
      return once.pipe(
        Effect.retry({ schedule, while: (e) => e instanceof Retryable }),
        Effect.mapError((e) => (e instanceof Retryable ? e.error : e))
      )
    }

    const aadOf = (context: EncryptionContext): Record<string, string> => {
      if (Object.keys(context).length === 0) return {}
      const aad = contextBytes(context)
      return { additionalAuthenticatedData: b64(aad), additionalAuthenticatedDataCrc32c: crcOf(aad) }
    }

    const integrity = (keyId: string, what: string) =>
      new Retryable(new KmsError({ reason: "Unavailable", keyId, detail: `the Cloud KMS ${what} failed its CRC32C integrity check` }))

    const encrypt = (keyId: string, plaintext: Redacted.Redacted<Uint8Array>, context: EncryptionContext) =>
      Effect.suspend(() => {
        if (cryptoKeyOf(keyId) === undefined) {
          return Effect.fail(invalid(keyId, "not a Cloud KMS key name (projects/…/locations/…/keyRings/…/cryptoKeys/…[/cryptoKeyVersions/…])"))
        }
        const bytes = Redacted.value(plaintext)
        if (bytes.length > MAX_PLAINTEXT) return Effect.fail(invalid(keyId, `Cloud KMS encrypts at most ${MAX_PLAINTEXT} bytes`))
        const aad = aadOf(context)
        const body = { plaintext: b64(bytes), plaintextCrc32c: crcOf(bytes), ...aad }
        return call("encrypt", keyId, keyId, body, (r) => {
          const name = r["name"]
          const ciphertext = typeof r["ciphertext"] === "string" ? Buffer.from(r["ciphertext"], "base64") : undefined
          if (ciphertext === undefined || ciphertext.length === 0 || typeof name !== "string") return invalid(keyId, "Cloud KMS encrypt returned no ciphertext")
          // Google asks callers to check that the intended key did the encryption.
          if (name !== keyId && cryptoKeyOf(name) !== keyId) return invalid(keyId, `Cloud KMS encrypted with ${name}, not the key asked for`)
          if (r["verifiedPlaintextCrc32c"] !== true) return integrity(keyId, "request's plaintext")
          if (aad.additionalAuthenticatedData !== undefined && r["verifiedAdditionalAuthenticatedDataCrc32c"] !== true) {
            return integrity(keyId, "request's additional authenticated data")
          }
          if (String(r["ciphertextCrc32c"]) !== crcOf(ciphertext)) return integrity(keyId, "response's ciphertext")
          return { keyId: name, ciphertext: new Uint8Array(ciphertext) }
        })
      })

    const decrypt = (ciphertext: Uint8Array, context: EncryptionContext, keyId?: string | undefined) =>
      Effect.suspend(() => {
        if (keyId === undefined) return Effect.fail(invalid(undefined, "Cloud KMS decrypt needs the key's name (the envelope records it)"))
        const key = cryptoKeyOf(keyId)
        if (key === undefined) return Effect.fail(invalid(keyId, "not a Cloud KMS key name (projects/…/locations/…/keyRings/…/cryptoKeys/…[/cryptoKeyVersions/…])"))
        if (ciphertext.length === 0) return Effect.fail(new KmsError({ reason: "InvalidCiphertext", keyId, detail: "empty ciphertext" }))
        const body = { ciphertext: b64(ciphertext), ciphertextCrc32c: crcOf(ciphertext), ...aadOf(context) }
        return call("decrypt", key, keyId, body, (r) => {
          if (typeof r["plaintext"] !== "string") return invalid(keyId, "Cloud KMS decrypt returned no plaintext")
          const decoded = Buffer.from(r["plaintext"], "base64")
          const ok = r["plaintextCrc32c"] === undefined || String(r["plaintextCrc32c"]) === crcOf(decoded)
          const plaintext = Uint8Array.from(decoded)
          decoded.fill(0)
          if (!ok) {
            plaintext.fill(0)
            return integrity(keyId, "response's plaintext")
          }
          return { keyId, plaintext: Redacted.make(plaintext) }
        })
      })

    const generateDataKey = (keyId: string, context: EncryptionContext): Effect.Effect<DataKey, KmsError> =>
      Effect.gen(function*() {
        const plaintext = Redacted.make(new Uint8Array(crypto.randomBytes(32)))
        const r = yield* encrypt(keyId, plaintext, context).pipe(Effect.tapError(() => Effect.sync(() => Redacted.value(plaintext).fill(0))))
        return { keyId: r.keyId, plaintext, ciphertext: r.ciphertext }
      })

    return CloudKms.of({ kind: "gcp-kms", endpoint, generateDataKey, encrypt, decrypt })
  })

/**
 * A layer providing both `CloudKms` and the core `Kms`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (config: CloudKmsConfig): Layer.Layer<CloudKms | Kms> =>
  Layer.scopedContext(Effect.map(make(config), (s) => Context.make(CloudKms, s).pipe(Context.add(Kms, s))))

/**
 * As {@link layer}, reading its configuration.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (config: Config.Config.Wrap<CloudKmsConfig>): Layer.Layer<CloudKms | Kms, ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(config), layer))
