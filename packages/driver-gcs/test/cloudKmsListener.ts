/**
 * A local HTTP listener (127.0.0.1, free port) that answers `cryptoKeys.encrypt` and
 * `cryptoKeys.decrypt` the way the Cloud KMS REST reference documents them, and records every
 * request (method, path, authorization header, JSON body). No Cloud KMS server installs here, so
 * `CloudKms` is tested at the HTTP layer against this; the matrix says "not verified against a
 * server".
 *
 * What it follows from the reference: `POST /v1/{name}:encrypt` with a CryptoKey name (primary
 * version) or a CryptoKeyVersion name, `POST /v1/{cryptoKey}:decrypt`; bytes fields in base64;
 * int64 CRC32C fields as decimal strings, checked when sent (`verifiedPlaintextCrc32c`,
 * `verifiedAdditionalAuthenticatedDataCrc32c`), `ciphertextCrc32c`/`plaintextCrc32c` returned;
 * `name` of the version used in the encrypt answer; plaintext ≤ 64 KiB; errors as
 * `{ "error": { "code", "message", "status" } }` with NOT_FOUND (404), PERMISSION_DENIED (403),
 * UNAUTHENTICATED (401), FAILED_PRECONDITION (400) for a version that is not ENABLED, and
 * INVALID_ARGUMENT (400) for a ciphertext that does not decrypt (damaged, another key, other AAD).
 * The ciphertext layout is this listener's own (Cloud KMS's is opaque): version ‖ nonce ‖ AES-256-GCM.
 */
import * as crypto from "node:crypto"
import * as http from "node:http"

export interface RecordedRequest {
  readonly method: string
  readonly path: string
  readonly authorization: string | undefined
  readonly contentType: string | undefined
  readonly body: Record<string, unknown> | undefined
}

interface Version {
  state: "ENABLED" | "DISABLED" | "DESTROYED"
  readonly material: Buffer
}

interface Key {
  readonly versions: Map<number, Version>
  primary: number
  /** IAM: callers may not use it. */
  denied: boolean
}

export interface Listener {
  readonly endpoint: string
  readonly requests: Array<RecordedRequest>
  /** Creates a key with version 1 enabled and primary. */
  readonly createKey: (name: string) => void
  /** Adds a version and makes it primary; returns its number. */
  readonly rotate: (name: string) => number
  readonly setState: (name: string, version: number, state: Version["state"]) => void
  readonly deny: (name: string) => void
  /** The next `n` requests answer 503 UNAVAILABLE. */
  readonly failNext: (n: number) => void
  /** The next `n` successful answers carry a wrong checksum (as a corrupted response would). */
  readonly corruptNext: (n: number) => void
  /** When set, requests without a matching Authorization header answer 401. */
  checkAuth: ((authorization: string | undefined) => boolean) | undefined
  readonly close: () => Promise<void>
}

const crc32c = (() => {
  const table = new Int32Array(256)
  for (let i = 0; i < 256; i++) {
    let c = i
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
    table[i] = c
  }
  return (buf: Uint8Array): string => {
    let c = ~0
    for (const b of buf) c = table[(c ^ b) & 0xff]! ^ (c >>> 8)
    return String(~c >>> 0)
  }
})()

const KEY = /^projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+\/cryptoKeys\/[^/]+$/
const VERSION = /^(projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+\/cryptoKeys\/[^/]+)\/cryptoKeyVersions\/(\d+)$/

class ApiError {
  constructor(readonly code: number, readonly status: string, readonly message: string) {}
}

export const start = (): Promise<Listener> => {
  const keys = new Map<string, Key>()
  const requests: Array<RecordedRequest> = []
  let failing = 0
  let corrupting = 0

  const keyOf = (name: string, permission: string): Key => {
    const k = keys.get(name)
    if (k?.denied === true) throw new ApiError(403, "PERMISSION_DENIED", `Permission '${permission}' denied on resource '${name}' (or it may not exist).`)
    if (k === undefined) throw new ApiError(404, "NOT_FOUND", `${name} not found.`)
    return k
  }
  const usable = (name: string, n: number, v: Version | undefined): Version => {
    if (v === undefined) throw new ApiError(404, "NOT_FOUND", `${name}/cryptoKeyVersions/${n} not found.`)
    if (v.state !== "ENABLED") throw new ApiError(400, "FAILED_PRECONDITION", `${name}/cryptoKeyVersions/${n} is not enabled, current state is: ${v.state}.`)
    return v
  }
  const bytesField = (body: Record<string, unknown>, field: string, required: boolean): Buffer | undefined => {
    const v = body[field]
    if (v === undefined || v === "") {
      if (required) throw new ApiError(400, "INVALID_ARGUMENT", `${field} is required.`)
      return undefined
    }
    if (typeof v !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) throw new ApiError(400, "INVALID_ARGUMENT", `Invalid value at '${field}' (TYPE_BYTES), Base64 decoding failed.`)
    return Buffer.from(v, "base64")
  }
  const checksum = (body: Record<string, unknown>, field: string, data: Buffer | undefined, proto: string): boolean => {
    const sent = body[`${field}Crc32c`]
    if (sent === undefined) return false
    if (typeof sent !== "string" || String(sent) !== crc32c(data ?? Buffer.alloc(0))) {
      throw new ApiError(400, "INVALID_ARGUMENT", `The checksum in field ${proto}_crc32c did not match the data in field ${proto}.`)
    }
    return true
  }

  const encrypt = (name: string, body: Record<string, unknown>) => {
    const m = VERSION.exec(name)
    const keyName = m === null ? name : m[1]!
    const key = keyOf(keyName, "cloudkms.cryptoKeyVersions.useToEncrypt")
    const n = m === null ? key.primary : Number(m[2])
    const version = usable(keyName, n, key.versions.get(n))
    const plaintext = bytesField(body, "plaintext", true)!
    if (plaintext.length > 64 * 1024) throw new ApiError(400, "INVALID_ARGUMENT", "The request's plaintext exceeds the maximum size of 65536 bytes.")
    const aad = bytesField(body, "additionalAuthenticatedData", false)
    const verifiedPlaintextCrc32c = checksum(body, "plaintext", plaintext, "plaintext")
    const verifiedAdditionalAuthenticatedDataCrc32c = checksum(body, "additionalAuthenticatedData", aad, "additional_authenticated_data")
    const nonce = crypto.randomBytes(12)
    const c = crypto.createCipheriv("aes-256-gcm", version.material, nonce)
    if (aad !== undefined) c.setAAD(aad)
    const head = Buffer.alloc(4)
    head.writeUInt32BE(n)
    const ciphertext = Buffer.concat([head, nonce, c.update(plaintext), c.final(), c.getAuthTag()])
    return {
      name: `${keyName}/cryptoKeyVersions/${n}`,
      ciphertext: ciphertext.toString("base64"),
      ciphertextCrc32c: crc32c(ciphertext),
      verifiedPlaintextCrc32c,
      verifiedAdditionalAuthenticatedDataCrc32c,
      protectionLevel: "SOFTWARE"
    }
  }

  const decrypt = (name: string, body: Record<string, unknown>) => {
    if (!KEY.test(name)) throw new ApiError(400, "INVALID_ARGUMENT", `Resource name [${name}] does not represent a valid CryptoKey.`)
    const key = keyOf(name, "cloudkms.cryptoKeyVersions.useToDecrypt")
    const ciphertext = bytesField(body, "ciphertext", true)!
    const aad = bytesField(body, "additionalAuthenticatedData", false)
    checksum(body, "ciphertext", ciphertext, "ciphertext")
    checksum(body, "additionalAuthenticatedData", aad, "additional_authenticated_data")
    const refused = new ApiError(400, "INVALID_ARGUMENT", "Decryption failed: verify that 'name' refers to the correct CryptoKey.")
    if (ciphertext.length < 4 + 12 + 16) throw new ApiError(400, "INVALID_ARGUMENT", "Decryption failed: the ciphertext is invalid.")
    const n = ciphertext.readUInt32BE(0)
    const v = key.versions.get(n)
    if (v === undefined) throw refused
    usable(name, n, v)
    try {
      const d = crypto.createDecipheriv("aes-256-gcm", v.material, ciphertext.subarray(4, 16))
      if (aad !== undefined) d.setAAD(aad)
      d.setAuthTag(ciphertext.subarray(ciphertext.length - 16))
      const plaintext = Buffer.concat([d.update(ciphertext.subarray(16, ciphertext.length - 16)), d.final()])
      return { plaintext: plaintext.toString("base64"), plaintextCrc32c: crc32c(plaintext), usedPrimary: n === key.primary, protectionLevel: "SOFTWARE" }
    } catch {
      throw refused
    }
  }

  const listener: Listener = {
    endpoint: "",
    requests,
    createKey: (name) => void keys.set(name, { versions: new Map([[1, { state: "ENABLED", material: crypto.randomBytes(32) }]]), primary: 1, denied: false }),
    rotate: (name) => {
      const k = keys.get(name)!
      const n = k.versions.size + 1
      k.versions.set(n, { state: "ENABLED", material: crypto.randomBytes(32) })
      k.primary = n
      return n
    },
    setState: (name, n, state) => void (keys.get(name)!.versions.get(n)!.state = state),
    deny: (name) => void (keys.get(name)!.denied = true),
    failNext: (n) => void (failing = n),
    corruptNext: (n) => void (corrupting = n),
    checkAuth: undefined,
    close: () => Promise.resolve()
  }

  const server = http.createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname)
      let body: Record<string, unknown> | undefined
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>
      } catch {
        body = undefined
      }
      requests.push({ method: req.method ?? "", path, authorization: req.headers.authorization, contentType: req.headers["content-type"], body })
      const send = (status: number, json: unknown) => {
        res.writeHead(status, { "content-type": "application/json; charset=UTF-8" })
        res.end(JSON.stringify(json))
      }
      try {
        if (failing > 0) {
          failing--
          throw new ApiError(503, "UNAVAILABLE", "The service is currently unavailable.")
        }
        if (listener.checkAuth !== undefined && !listener.checkAuth(req.headers.authorization)) {
          throw new ApiError(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.")
        }
        const m = /^\/v1\/(.+):(encrypt|decrypt)$/.exec(path)
        if (req.method !== "POST" || m === null) throw new ApiError(404, "NOT_FOUND", `Method not found: ${req.method} ${path}`)
        if (body === undefined) throw new ApiError(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        const answer: Record<string, unknown> = m[2] === "encrypt" ? encrypt(m[1]!, body) : decrypt(m[1]!, body)
        if (corrupting > 0) {
          corrupting--
          if ("ciphertextCrc32c" in answer) answer["ciphertextCrc32c"] = String((Number(answer["ciphertextCrc32c"]) + 1) % 2 ** 32)
          if ("plaintextCrc32c" in answer) answer["plaintextCrc32c"] = String((Number(answer["plaintextCrc32c"]) + 1) % 2 ** 32)
        }
        send(200, answer)
      } catch (e) {
        if (e instanceof ApiError) send(e.code, { error: { code: e.code, message: e.message, status: e.status } })
        else send(500, { error: { code: 500, message: "Internal error encountered.", status: "INTERNAL" } })
      }
    })
  })

  return new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen({ host: "127.0.0.1", port: 0 }, () => {
      const addr = server.address()
      const port = typeof addr === "object" && addr !== null ? addr.port : 0
      Object.assign(listener, {
        endpoint: `http://127.0.0.1:${port}`,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections()
            server.close(() => done())
          })
      })
      resolve(listener)
    })
  })
}
