/**
 * The request handler of the GCS JSON-API test server (see `GcsServer.ts`): buckets, objects,
 * uploads (media, multipart, resumable), ranged downloads, rewrite, compose, CSEK and CMEK, written
 * from Google's JSON API reference. Object bytes live in a temporary directory; CSEK objects are
 * stored encrypted with the customer's key (AES-256-CTR) and only the key's SHA-256 is kept.
 *
 * @since 0.1.0
 */
import * as crypto from "node:crypto"
import { once } from "node:events"
import * as fs from "node:fs"
import type * as http from "node:http"
import * as path from "node:path"
import { pipeline } from "node:stream/promises"
import * as Crc32c from "@objcrypt/core/Crc32c"
import { Readable, Transform } from "node:stream"
import type { Writable } from "node:stream"

const ignore = (): void => undefined

const ReadableFrom = (chunks: Array<Buffer>): Readable => Readable.from(chunks)

/** @internal */
export interface StoredObject {
  readonly bucket: string
  readonly name: string
  readonly generation: number
  metageneration: number
  readonly size: number
  contentType: string
  metadata: Record<string, string>
  cacheControl?: string | undefined
  contentDisposition?: string | undefined
  contentEncoding?: string | undefined
  contentLanguage?: string | undefined
  readonly md5: string
  readonly crc32c: string
  readonly timeCreated: string
  updated: string
  readonly kmsKeyName?: string | undefined
  /** base64 SHA-256 of the customer key; the key itself is never kept. */
  readonly keySha256?: string | undefined
  /** AES-256-CTR initial counter of a CSEK object's bytes on disk. */
  readonly iv?: Buffer | undefined
  readonly componentCount?: number | undefined
  readonly file: string
}

/** @internal */
export interface BucketState {
  readonly name: string
  readonly timeCreated: string
  metageneration: number
  encryption?: Record<string, unknown> | undefined
  readonly objects: Map<string, StoredObject>
}

/** @internal */
export interface LoggedRequest {
  readonly method: string
  readonly url: string
  /** Request headers, with every `*-encryption-key` value replaced by `[redacted]`. */
  readonly headers: Readonly<Record<string, string>>
}

interface CustomerKey {
  readonly key: Buffer
  readonly sha256: string
}

interface Session {
  readonly id: string
  readonly bucket: string
  readonly name: string
  readonly resource: Record<string, unknown>
  readonly query: URLSearchParams
  readonly contentType: string | undefined
  readonly declaredLength: number | undefined
  readonly customerKey: CustomerKey | undefined
  readonly file: string
  received: number
  busy: boolean
  done?: Record<string, unknown> | undefined
}

interface RewriteState {
  readonly source: StoredObject
  readonly destination: string
  /** The destination resource of the first call; later calls carry only the token. */
  readonly resource: Record<string, unknown>
  done: number
}

const OBJECT_FIELDS = ["contentType", "metadata", "cacheControl", "contentDisposition", "contentEncoding", "contentLanguage"]

/** @internal */
export interface ServerOptions {
  readonly dir: string
  readonly projectId: string
  /** Bytes a rewrite call moves before answering with a `rewriteToken`. */
  readonly rewriteStep: number
  readonly log: Array<LoggedRequest> | undefined
}

class ApiError extends Error {
  readonly code: number
  readonly reason: string
  readonly headers: Record<string, string> | undefined
  constructor(code: number, reason: string, message: string, headers?: Record<string, string>) {
    super(message)
    this.code = code
    this.reason = reason
    this.headers = headers
  }
}

const notFound = (bucket: string, name?: string) =>
  new ApiError(404, "notFound", name === undefined ? "The specified bucket does not exist." : `No such object: ${bucket}/${name}`)
const conditionNotMet = () => new ApiError(412, "conditionNotMet", "At least one of the pre-conditions you specified did not hold.")
const badRequest = (reason: string, message: string) => new ApiError(400, reason, message)

const csekRequired = () =>
  badRequest("resourceIsEncryptedWithCustomerEncryptionKey", "The target object is encrypted by a customer-supplied encryption key.")
const csekWrong = () =>
  badRequest("customerEncryptionKeyIsIncorrect", "The provided encryption key is incorrect.")
const csekNotEncrypted = () =>
  badRequest("resourceNotEncryptedWithCustomerEncryptionKey", "The target object is not encrypted by a customer-supplied encryption key.")

const isoNow = () => new Date().toISOString()

/** Byte order of UTF-8 names, as GCS lists them. */
const compareNames = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b))

const safeEqual = (a: string, b: string) => {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && crypto.timingSafeEqual(x, y)
}

/** Parses one `x-goog-[copy-source-]encryption-*` header triple. */
const customerKeyOf = (headers: http.IncomingHttpHeaders, prefix: string): CustomerKey | undefined => {
  const algorithm = headers[`${prefix}-algorithm`]
  const key = headers[`${prefix}-key`]
  const sha = headers[`${prefix}-key-sha256`]
  if (algorithm === undefined && key === undefined && sha === undefined) return undefined
  if (typeof algorithm !== "string" || algorithm !== "AES256") {
    throw badRequest("customerEncryptionAlgorithmIsInvalid", "The encryption algorithm specified is not supported; use AES256.")
  }
  if (typeof key !== "string" || typeof sha !== "string") {
    throw badRequest(
      "customerEncryptionKeyFormatIsInvalid",
      "Missing an encryption key, or it is not base64 encoded, or it does not meet the required length of the encryption algorithm."
    )
  }
  const bytes = /^[A-Za-z0-9+/]*={0,2}$/.test(key) ? Buffer.from(key, "base64") : Buffer.alloc(0)
  if (bytes.length !== 32) {
    throw badRequest(
      "customerEncryptionKeyFormatIsInvalid",
      "Missing an encryption key, or it is not base64 encoded, or it does not meet the required length of the encryption algorithm."
    )
  }
  const actual = crypto.createHash("sha256").update(bytes).digest("base64")
  if (!safeEqual(actual, sha)) {
    throw badRequest("customerEncryptionKeySha256IsInvalid", "The provided encryption key SHA256 hash does not match the provided key.")
  }
  return { key: bytes, sha256: actual }
}

/** Checks the key a request gives against an object; `media` reads need it, metadata reads do not. */
const checkKey = (o: StoredObject, k: CustomerKey | undefined, media: boolean): void => {
  if (o.keySha256 === undefined) {
    if (k !== undefined) throw csekNotEncrypted()
    return
  }
  if (k === undefined) {
    if (media) throw csekRequired()
    return
  }
  if (!safeEqual(k.sha256, o.keySha256)) throw csekWrong()
}

const addCounter = (iv: Buffer, blocks: number): Buffer => {
  const out = Buffer.from(iv)
  let carry = BigInt(blocks)
  for (let i = 15; i >= 0 && carry > 0n; i--) {
    const sum = BigInt(out[i]!) + (carry & 0xffn)
    out[i] = Number(sum & 0xffn)
    carry = (carry >> 8n) + (sum >> 8n)
  }
  return out
}

/** The plaintext of `[start, end)` of an object, decrypting CSEK bytes with the request's key. */
const readPlain = (o: StoredObject, key: CustomerKey | undefined, start: number, end: number): Readable => {
  if (end <= start) return ReadableFrom([])
  if (o.iv === undefined || key === undefined) return fs.createReadStream(o.file, { start, end: end - 1 })
  const blockStart = start - (start % 16)
  const decipher = crypto.createDecipheriv("aes-256-ctr", key.key, addCounter(o.iv, blockStart / 16))
  let skip = start - blockStart
  const cut = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (skip >= chunk.length) {
        skip -= chunk.length
        return cb()
      }
      const out = skip > 0 ? chunk.subarray(skip) : chunk
      skip = 0
      cb(null, out)
    }
  })
  const src = fs.createReadStream(o.file, { start: blockStart, end: end - 1 })
  src.on("error", (e) => cut.destroy(e))
  decipher.on("error", (e) => cut.destroy(e))
  return src.pipe(decipher).pipe(cut)
}

/** A sink writing plaintext to `file` (encrypted when a key is given) while hashing it. */
const sink = (file: string, key: CustomerKey | undefined) => {
  const iv = key === undefined ? undefined : crypto.randomBytes(16)
  const md5 = crypto.createHash("md5")
  let crc = 0
  let size = 0
  const cipher = key === undefined || iv === undefined ? undefined : crypto.createCipheriv("aes-256-ctr", key.key, iv)
  const out = fs.createWriteStream(file)
  const hasher = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      md5.update(chunk)
      crc = Crc32c.update(crc, chunk)
      size += chunk.length
      cb(null, cipher === undefined ? chunk : cipher.update(chunk))
    },
    flush(cb) {
      if (cipher !== undefined) {
        const last = cipher.final()
        if (last.length > 0) this.push(last)
      }
      cb()
    }
  })
  hasher.pipe(out)
  return {
    stream: hasher as Writable,
    iv,
    finished: new Promise<void>((resolve, reject) => {
      out.on("finish", resolve)
      out.on("error", reject)
      hasher.on("error", reject)
    }),
    hashes: () => ({ md5: md5.digest("base64"), crc32c: Crc32c.toBase64(crc), size })
  }
}

const readBody = async (req: http.IncomingMessage): Promise<Buffer> => {
  const chunks: Array<Buffer> = []
  for await (const c of req) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

const readJson = async (req: http.IncomingMessage): Promise<Record<string, unknown>> => {
  const body = await readBody(req)
  if (body.length === 0) return {}
  try {
    const v = JSON.parse(body.toString("utf8")) as unknown
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not an object")
    return v as Record<string, unknown>
  } catch {
    throw badRequest("parseError", "Parse Error")
  }
}

const stringMap = (v: unknown): Record<string, string> => {
  const out: Record<string, string> = {}
  if (typeof v === "object" && v !== null) {
    for (const [k, x] of Object.entries(v)) if (typeof x === "string") out[k] = x
  }
  return out
}

const nameOk = (name: string) => {
  if (name === "" || Buffer.byteLength(name) > 1024) throw badRequest("invalid", "The object name is invalid (empty or longer than 1024 bytes).")
  if (/[\r\n]/.test(name)) throw badRequest("invalid", "Object names cannot contain carriage return or line feed characters.")
}

const intParam = (q: URLSearchParams, name: string): number | undefined => {
  const v = q.get(name)
  if (v === null) return undefined
  if (!/^-?\d+$/.test(v)) throw badRequest("invalid", `Invalid value for ${name}: ${v}`)
  return Number(v)
}

/** `ifGenerationMatch` and friends, against the current object (or its absence). */
const checkPreconditions = (q: URLSearchParams, o: StoredObject | undefined, prefix = "if") => {
  const gm = intParam(q, `${prefix}GenerationMatch`)
  const gnm = intParam(q, `${prefix}GenerationNotMatch`)
  const mm = intParam(q, `${prefix}MetagenerationMatch`)
  const mnm = intParam(q, `${prefix}MetagenerationNotMatch`)
  const gen = o?.generation ?? 0
  if (gm !== undefined && gm !== gen) throw conditionNotMet()
  if (gnm !== undefined && gnm === gen) throw conditionNotMet()
  if (mm !== undefined && (o === undefined || mm !== o.metageneration)) throw conditionNotMet()
  if (mnm !== undefined && o !== undefined && mnm === o.metageneration) throw conditionNotMet()
}

/** The GCS JSON-API handler with its state. @internal */
export class GcsState {
  readonly buckets = new Map<string, BucketState>()
  private readonly sessions = new Map<string, Session>()
  private readonly rewrites = new Map<string, RewriteState>()
  private lastGeneration = Date.now() * 1000
  private fileCounter = 0
  endpoint = ""

  readonly options: ServerOptions

  constructor(options: ServerOptions) {
    this.options = options
  }

  private nextGeneration() {
    this.lastGeneration = Math.max(this.lastGeneration + 1, Date.now() * 1000)
    return this.lastGeneration
  }

  private tempFile() {
    return path.join(this.options.dir, `f${++this.fileCounter}-${crypto.randomBytes(4).toString("hex")}`)
  }

  createBucket(name: string, encryption?: Record<string, unknown>): BucketState {
    if (!/^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/.test(name)) throw badRequest("invalid", "Invalid bucket name: " + JSON.stringify(name))
    if (this.buckets.has(name)) throw new ApiError(409, "conflict", "Your previous request to create the named bucket succeeded and you already own it.")
    const b: BucketState = { name, timeCreated: isoNow(), metageneration: 1, encryption, objects: new Map() }
    this.buckets.set(name, b)
    return b
  }

  private bucket(name: string): BucketState {
    const b = this.buckets.get(name)
    if (b === undefined) throw notFound(name)
    return b
  }

  private object(bucket: string, name: string): StoredObject {
    const o = this.bucket(bucket).objects.get(name)
    if (o === undefined) throw notFound(bucket, name)
    return o
  }

  bucketResource(b: BucketState): Record<string, unknown> {
    return {
      kind: "storage#bucket",
      id: b.name,
      selfLink: `${this.endpoint}/storage/v1/b/${b.name}`,
      projectNumber: "0",
      name: b.name,
      timeCreated: b.timeCreated,
      updated: b.timeCreated,
      metageneration: String(b.metageneration),
      location: "US",
      locationType: "multi-region",
      storageClass: "STANDARD",
      etag: Buffer.from(`b${b.metageneration}`).toString("base64"),
      ...(b.encryption === undefined ? {} : { encryption: b.encryption })
    }
  }

  /** The object resource; hashes of a CSEK object only for a request that gave its key. */
  objectResource(o: StoredObject, withHashes: boolean): Record<string, unknown> {
    const enc = (s: string) => encodeURIComponent(s)
    return {
      kind: "storage#object",
      id: `${o.bucket}/${o.name}/${o.generation}`,
      selfLink: `${this.endpoint}/storage/v1/b/${enc(o.bucket)}/o/${enc(o.name)}`,
      mediaLink: `${this.endpoint}/download/storage/v1/b/${enc(o.bucket)}/o/${enc(o.name)}?generation=${o.generation}&alt=media`,
      name: o.name,
      bucket: o.bucket,
      generation: String(o.generation),
      metageneration: String(o.metageneration),
      contentType: o.contentType,
      storageClass: "STANDARD",
      size: String(o.size),
      ...(o.keySha256 === undefined || withHashes ? { md5Hash: o.md5, crc32c: o.crc32c } : {}),
      etag: Buffer.from(`${o.generation}/${o.metageneration}`).toString("base64"),
      timeCreated: o.timeCreated,
      updated: o.updated,
      timeStorageClassUpdated: o.timeCreated,
      ...(Object.keys(o.metadata).length === 0 ? {} : { metadata: o.metadata }),
      ...(o.cacheControl === undefined ? {} : { cacheControl: o.cacheControl }),
      ...(o.contentDisposition === undefined ? {} : { contentDisposition: o.contentDisposition }),
      ...(o.contentEncoding === undefined ? {} : { contentEncoding: o.contentEncoding }),
      ...(o.contentLanguage === undefined ? {} : { contentLanguage: o.contentLanguage }),
      ...(o.kmsKeyName === undefined ? {} : { kmsKeyName: o.kmsKeyName }),
      ...(o.keySha256 === undefined ? {} : { customerEncryption: { encryptionAlgorithm: "AES256", keySha256: o.keySha256 } }),
      ...(o.componentCount === undefined ? {} : { componentCount: o.componentCount })
    }
  }

  /**
   * Where a new object's encryption comes from: a customer key wins; otherwise the request's
   * `kmsKeyName`, else the bucket's default key; Google-managed otherwise. Enforcement configs
   * that forbid the resulting kind refuse the write.
   */
  private encryptionFor(b: BucketState, key: CustomerKey | undefined, kmsKeyName: string | undefined): string | undefined {
    if (key !== undefined && kmsKeyName !== undefined) {
      throw badRequest("invalid", "Customer-supplied encryption keys and Cloud KMS keys cannot be used together.")
    }
    const dflt = typeof b.encryption?.["defaultKmsKeyName"] === "string" ? b.encryption["defaultKmsKeyName"] as string : undefined
    const kms = key === undefined ? kmsKeyName ?? dflt : undefined
    const restricted = (field: string) =>
      (b.encryption?.[field] as { restrictionMode?: unknown } | undefined)?.restrictionMode === "FullyRestricted"
    const kind = key !== undefined
      ? "customerSuppliedEncryptionEnforcementConfig"
      : kms !== undefined
      ? "customerManagedEncryptionEnforcementConfig"
      : "googleManagedEncryptionEnforcementConfig"
    if (restricted(kind)) {
      throw new ApiError(412, "conditionNotMet", `The bucket's encryption enforcement config forbids this kind of encryption (${kind}: FullyRestricted).`)
    }
    return kms === undefined ? undefined : kms.includes("/cryptoKeyVersions/") ? kms : `${kms}/cryptoKeyVersions/1`
  }

  /** Makes a written temp file the live object, checking preconditions at that instant. */
  private commit(args: {
    bucket: string
    name: string
    file: string
    query: URLSearchParams
    resource: Record<string, unknown>
    contentType?: string | undefined
    hashes: { md5: string; crc32c: string; size: number }
    key: CustomerKey | undefined
    iv: Buffer | undefined
    kmsKeyName: string | undefined
    componentCount?: number | undefined
  }): StoredObject {
    const b = this.bucket(args.bucket)
    const existing = b.objects.get(args.name)
    try {
      checkPreconditions(args.query, existing)
    } catch (e) {
      fs.rmSync(args.file, { force: true })
      throw e
    }
    const r = args.resource
    const str = (k: string) => (typeof r[k] === "string" ? (r[k] as string) : undefined)
    const now = isoNow()
    const o: StoredObject = {
      bucket: args.bucket,
      name: args.name,
      generation: this.nextGeneration(),
      metageneration: 1,
      size: args.hashes.size,
      contentType: str("contentType") ?? args.contentType ?? "application/octet-stream",
      metadata: stringMap(r["metadata"]),
      cacheControl: str("cacheControl"),
      contentDisposition: str("contentDisposition"),
      contentEncoding: str("contentEncoding"),
      contentLanguage: str("contentLanguage"),
      md5: args.hashes.md5,
      crc32c: args.hashes.crc32c,
      timeCreated: now,
      updated: now,
      kmsKeyName: args.kmsKeyName,
      keySha256: args.key?.sha256,
      iv: args.iv,
      componentCount: args.componentCount,
      file: args.file
    }
    b.objects.set(args.name, o)
    if (existing !== undefined) fs.rm(existing.file, { force: true }, ignore)
    return o
  }

  // ------------------------------------------------------------------------------------------
  // HTTP
  // ------------------------------------------------------------------------------------------

  handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (this.options.log !== undefined) {
      const headers: Record<string, string> = {}
      for (const [k, v] of Object.entries(req.headers)) {
        if (v === undefined) continue
        headers[k] = /encryption-key$/.test(k) ? "[redacted]" : Array.isArray(v) ? v.join(", ") : v
      }
      this.options.log.push({ method: req.method ?? "", url: req.url ?? "", headers })
    }
    this.route(req, res).catch((e: unknown) => {
      const err = e instanceof ApiError ? e : new ApiError(500, "backendError", "Internal error.")
      const gone = (e as { code?: unknown }).code === "ECONNRESET" || (e as { code?: unknown }).code === "ERR_STREAM_PREMATURE_CLOSE" ||
        (e as { message?: unknown }).message === "aborted"
      if (!(e instanceof ApiError) && !gone) process.stderr.write(`GcsServer: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`)
      if (res.headersSent) {
        res.destroy()
        return
      }
      // Drain what the client is still sending so it sees the answer.
      req.resume()
      const body = JSON.stringify({ error: { code: err.code, message: err.message, errors: [{ domain: "global", reason: err.reason, message: err.message }] } })
      res.writeHead(err.code, { "content-type": "application/json; charset=UTF-8", "content-length": Buffer.byteLength(body), ...err.headers })
      res.end(body)
    })
  }

  private json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
    const s = JSON.stringify(body)
    res.writeHead(status, { "content-type": "application/json; charset=UTF-8", "content-length": Buffer.byteLength(s), ...headers })
    res.end(s)
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost")
    const q = url.searchParams
    const raw = url.pathname.split("/").slice(1)
    const seg = raw.map((s) => decodeURIComponent(s))
    const method = req.method ?? "GET"
    let p = seg
    let upload = false
    if (p[0] === "upload") {
      upload = true
      p = p.slice(1)
    } else if (p[0] === "download") {
      p = p.slice(1)
    }
    if (p[0] !== "storage" || p[1] !== "v1" || p[2] !== "b") throw new ApiError(404, "notFound", "Not Found")
    p = p.slice(3)
    if (upload) {
      if (p.length !== 2 || p[1] !== "o") throw new ApiError(404, "notFound", "Not Found")
      return this.upload(req, res, p[0]!, q)
    }
    if (p.length === 0) {
      if (method === "POST") {
        const body = await readJson(req)
        const name = typeof body["name"] === "string" ? body["name"] : ""
        const b = this.createBucket(name, typeof body["encryption"] === "object" && body["encryption"] !== null ? body["encryption"] as Record<string, unknown> : undefined)
        return this.json(res, 200, this.bucketResource(b))
      }
      if (method === "GET") {
        return this.json(res, 200, { kind: "storage#buckets", items: [...this.buckets.values()].map((b) => this.bucketResource(b)) })
      }
    }
    const bucket = p[0]!
    if (p.length === 1) {
      if (method === "GET") return this.json(res, 200, this.bucketResource(this.bucket(bucket)))
      if (method === "PATCH" || method === "PUT") {
        const b = this.bucket(bucket)
        const body = await readJson(req)
        if ("encryption" in body) {
          b.encryption = body["encryption"] === null ? undefined : (body["encryption"] as Record<string, unknown>)
          b.metageneration++
        }
        return this.json(res, 200, this.bucketResource(b))
      }
      if (method === "DELETE") {
        const b = this.bucket(bucket)
        if (b.objects.size > 0) throw new ApiError(409, "conflict", "The bucket you tried to delete is not empty.")
        this.buckets.delete(bucket)
        res.writeHead(204).end()
        return
      }
    }
    if (p[1] !== "o") throw new ApiError(404, "notFound", "Not Found")
    if (p.length === 2 && method === "GET") return this.list(res, bucket, q)
    const name = p[2]
    if (name === undefined) throw new ApiError(404, "notFound", "Not Found")
    if (p.length === 3) {
      if (method === "GET") return this.get(req, res, bucket, name, q)
      if (method === "PATCH" || method === "PUT") return this.patch(req, res, bucket, name, q, method === "PUT")
      if (method === "DELETE") {
        const o = this.object(bucket, name)
        checkPreconditions(q, o)
        this.bucket(bucket).objects.delete(name)
        fs.rm(o.file, { force: true }, ignore)
        res.writeHead(204).end()
        return
      }
    }
    if (p.length === 4 && p[3] === "compose" && method === "POST") return this.compose(req, res, bucket, name, q)
    if (p.length === 7 && (p[3] === "rewriteTo" || p[3] === "copyTo") && p[4] === "b" && p[6] === "o") {
      throw new ApiError(404, "notFound", "Not Found")
    }
    if (p.length === 8 && (p[3] === "rewriteTo" || p[3] === "copyTo") && p[4] === "b" && p[6] === "o" && method === "POST") {
      return this.rewrite(req, res, bucket, name, p[5]!, p[7]!, q, p[3] === "copyTo")
    }
    throw new ApiError(405, "methodNotAllowed", `${method} is not supported here.`)
  }

  private list(res: http.ServerResponse, bucket: string, q: URLSearchParams) {
    const b = this.bucket(bucket)
    const prefix = q.get("prefix") ?? ""
    const delimiter = q.get("delimiter") ?? ""
    const startOffset = q.get("startOffset")
    const endOffset = q.get("endOffset")
    const max = Math.max(1, Math.min(1000, intParam(q, "maxResults") ?? 1000))
    let after: { k: string; p: boolean } | undefined
    const token = q.get("pageToken")
    if (token !== null && token !== "") {
      try {
        after = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { k: string; p: boolean }
      } catch {
        throw badRequest("invalid", "Invalid pageToken.")
      }
    }
    const names = [...b.objects.keys()]
      .filter((n) => n.startsWith(prefix))
      .filter((n) => startOffset === null || compareNames(n, startOffset) >= 0)
      .filter((n) => endOffset === null || compareNames(n, endOffset) < 0)
      .sort(compareNames)
    const items: Array<Record<string, unknown>> = []
    const prefixes: Array<string> = []
    let last: { k: string; p: boolean } | undefined
    let more = false
    for (const n of names) {
      if (after !== undefined && (after.p ? n.startsWith(after.k) || compareNames(n, after.k) <= 0 : compareNames(n, after.k) <= 0)) continue
      const cut = delimiter === "" ? -1 : n.indexOf(delimiter, prefix.length)
      const entry = cut < 0 ? { k: n, p: false } : { k: n.slice(0, cut + delimiter.length), p: true }
      if (entry.p && last?.p === true && last.k === entry.k) continue
      if (items.length + prefixes.length >= max) {
        more = true
        break
      }
      if (entry.p) prefixes.push(entry.k)
      else items.push(this.objectResource(b.objects.get(n)!, false))
      last = entry
    }
    this.json(res, 200, {
      kind: "storage#objects",
      ...(items.length > 0 ? { items } : {}),
      ...(prefixes.length > 0 ? { prefixes } : {}),
      ...(more && last !== undefined ? { nextPageToken: Buffer.from(JSON.stringify(last)).toString("base64url") } : {})
    })
  }

  private async get(req: http.IncomingMessage, res: http.ServerResponse, bucket: string, name: string, q: URLSearchParams) {
    const key = customerKeyOf(req.headers, "x-goog-encryption")
    const o = this.object(bucket, name)
    const generation = intParam(q, "generation")
    if (generation !== undefined && generation !== o.generation) throw notFound(bucket, name)
    checkPreconditions(q, o)
    const media = q.get("alt") === "media"
    checkKey(o, key, media)
    if (!media) return this.json(res, 200, this.objectResource(o, key !== undefined))
    let start = 0
    let end = o.size
    let partial = false
    const range = req.headers["range"]
    if (typeof range === "string" && range !== "") {
      const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim())
      if (m !== null && (m[1] !== "" || m[2] !== "")) {
        if (m[1] === "") {
          const n = Number(m[2])
          start = Math.max(0, o.size - n)
          if (n === 0 || o.size === 0) throw new ApiError(416, "requestedRangeNotSatisfiable", "The requested range cannot be satisfied.")
        } else {
          start = Number(m[1])
          end = m[2] === "" ? o.size : Math.min(o.size, Number(m[2]) + 1)
          if (start >= o.size || end <= start) {
            throw new ApiError(416, "requestedRangeNotSatisfiable", "The requested range cannot be satisfied.", { "content-range": `bytes */${o.size}` })
          }
        }
        partial = true
      }
    }
    const headers: Record<string, string> = {
      "content-type": o.contentType,
      "content-length": String(end - start),
      "accept-ranges": "bytes",
      etag: Buffer.from(`${o.generation}/${o.metageneration}`).toString("base64"),
      "x-goog-generation": String(o.generation),
      "x-goog-metageneration": String(o.metageneration),
      "x-goog-stored-content-length": String(o.size),
      "x-goog-stored-content-encoding": o.contentEncoding ?? "identity",
      "x-goog-hash": `crc32c=${o.crc32c},md5=${o.md5}`,
      "last-modified": new Date(o.updated).toUTCString()
    }
    if (o.keySha256 !== undefined) {
      headers["x-goog-encryption-algorithm"] = "AES256"
      headers["x-goog-encryption-key-sha256"] = o.keySha256
    }
    if (o.kmsKeyName !== undefined) headers["x-goog-encryption-kms-key-name"] = o.kmsKeyName
    if (partial) headers["content-range"] = `bytes ${start}-${end - 1}/${o.size}`
    res.writeHead(partial ? 206 : 200, headers)
    if (req.method === "HEAD") {
      res.end()
      return
    }
    await pipeline(readPlain(o, key, start, end), res).catch(() => res.destroy())
  }

  private async patch(req: http.IncomingMessage, res: http.ServerResponse, bucket: string, name: string, q: URLSearchParams, replace: boolean) {
    const key = customerKeyOf(req.headers, "x-goog-encryption")
    const body = await readJson(req)
    const o = this.object(bucket, name)
    checkPreconditions(q, o)
    checkKey(o, key, false)
    if ("metadata" in body) {
      const m = body["metadata"]
      if (m === null) o.metadata = {}
      else {
        const next = replace ? {} : { ...o.metadata }
        for (const [k, v] of Object.entries(m as Record<string, unknown>)) {
          if (v === null) delete next[k]
          else if (typeof v === "string") next[k] = v
        }
        o.metadata = next
      }
    }
    for (const f of ["contentType", "cacheControl", "contentDisposition", "contentEncoding", "contentLanguage"] as const) {
      if (f in body) {
        const v = body[f]
        if (f === "contentType") o.contentType = typeof v === "string" ? v : "application/octet-stream"
        else o[f] = typeof v === "string" ? v : undefined
      }
    }
    o.metageneration++
    o.updated = isoNow()
    this.json(res, 200, this.objectResource(o, key !== undefined))
  }

  private async upload(req: http.IncomingMessage, res: http.ServerResponse, bucket: string, q: URLSearchParams) {
    const type = q.get("uploadType")
    const method = req.method ?? "POST"
    if (type === "resumable" && q.get("upload_id") !== null) return this.resumableChunk(req, res, q.get("upload_id")!)
    if (method !== "POST") throw new ApiError(405, "methodNotAllowed", `${method} is not supported here.`)
    const b = this.bucket(bucket)
    const key = customerKeyOf(req.headers, "x-goog-encryption")
    if (type === "resumable") {
      const resource = await readJson(req)
      const name = q.get("name") ?? (typeof resource["name"] === "string" ? resource["name"] : "")
      nameOk(name)
      const kmsKeyName = q.get("kmsKeyName") ?? (typeof resource["kmsKeyName"] === "string" ? resource["kmsKeyName"] : undefined)
      this.encryptionFor(b, key, kmsKeyName)
      checkPreconditions(q, b.objects.get(name))
      const id = crypto.randomBytes(16).toString("hex")
      const ct = req.headers["x-upload-content-type"]
      const len = req.headers["x-upload-content-length"]
      const file = this.tempFile()
      fs.writeFileSync(file, "")
      this.sessions.set(id, {
        id,
        bucket,
        name,
        resource,
        query: q,
        contentType: typeof ct === "string" ? ct : undefined,
        declaredLength: typeof len === "string" && /^\d+$/.test(len) ? Number(len) : undefined,
        customerKey: key,
        file,
        received: 0,
        busy: false
      })
      const location = `${this.endpoint}/upload/storage/v1/b/${encodeURIComponent(bucket)}/o?uploadType=resumable&upload_id=${id}`
      res.writeHead(200, { location, "x-guploader-uploadid": id, "content-length": "0" })
      res.end()
      return
    }
    if (type === "multipart") {
      const ctype = req.headers["content-type"] ?? ""
      const boundary = /boundary="?([^";]+)"?/i.exec(ctype)?.[1]
      if (boundary === undefined) throw badRequest("invalid", "A multipart upload needs a multipart/related body with a boundary.")
      const body = await readBody(req)
      const parts = splitMultipart(body, boundary)
      if (parts.length < 2) throw badRequest("invalid", "A multipart upload needs a metadata part and a media part.")
      let resource: Record<string, unknown>
      try {
        resource = JSON.parse(parts[0]!.body.toString("utf8")) as Record<string, unknown>
      } catch {
        throw badRequest("parseError", "Parse Error")
      }
      const name = q.get("name") ?? (typeof resource["name"] === "string" ? resource["name"] : "")
      nameOk(name)
      return this.writeWhole(res, b, name, q, resource, parts[1]!.contentType, key, (w) => {
        w.end(parts[1]!.body)
      })
    }
    if (type === "media" || type === null) {
      const name = q.get("name") ?? ""
      nameOk(name)
      const ct = req.headers["content-type"]
      return this.writeWhole(res, b, name, q, {}, typeof ct === "string" ? ct : undefined, key, (w) => {
        req.pipe(w)
      })
    }
    throw badRequest("invalid", `Unknown uploadType ${type}`)
  }

  private async writeWhole(
    res: http.ServerResponse,
    b: BucketState,
    name: string,
    q: URLSearchParams,
    resource: Record<string, unknown>,
    contentType: string | undefined,
    key: CustomerKey | undefined,
    feed: (w: Writable) => void
  ) {
    const kmsKeyName = this.encryptionFor(b, key, q.get("kmsKeyName") ?? (typeof resource["kmsKeyName"] === "string" ? resource["kmsKeyName"] : undefined))
    checkPreconditions(q, b.objects.get(name))
    const file = this.tempFile()
    const s = sink(file, key)
    feed(s.stream)
    try {
      await s.finished
    } catch (e) {
      fs.rmSync(file, { force: true })
      throw e
    }
    const o = this.commit({ bucket: b.name, name, file, query: q, resource, contentType, hashes: s.hashes(), key, iv: s.iv, kmsKeyName })
    this.json(res, 200, this.objectResource(o, true))
  }

  private async resumableChunk(req: http.IncomingMessage, res: http.ServerResponse, id: string) {
    const s = this.sessions.get(id)
    if (s === undefined) throw new ApiError(404, "notFound", "No such upload session.")
    if (req.method === "DELETE") {
      this.sessions.delete(id)
      fs.rm(s.file, { force: true }, ignore)
      res.writeHead(499, { "content-length": "0" }).end()
      return
    }
    if (s.done !== undefined) {
      req.resume()
      return this.json(res, 200, s.done)
    }
    const cr = req.headers["content-range"]
    const m = typeof cr === "string" ? /^bytes (?:(\d+)-(\d+|\*)|\*)\/(\d+|\*)$/.exec(cr.trim()) : null
    if (typeof cr === "string" && m === null) throw badRequest("invalid", "Invalid Content-Range.")
    const total = m === null || m[3] === "*" ? undefined : Number(m[3])
    const incomplete = () => {
      res.writeHead(308, { ...(s.received > 0 ? { range: `bytes=0-${s.received - 1}` } : {}), "content-length": "0" })
      res.end()
    }
    if (m === null || m[1] === undefined) {
      // A status query (`bytes */*`), or the final empty request (`bytes */N`).
      req.resume()
      await new Promise((r) => req.on("end", r))
      if (total !== undefined && total === s.received) return this.finishSession(res, s)
      return incomplete()
    }
    if (s.busy) throw new ApiError(503, "backendError", "Another request is writing this upload.")
    const start = Number(m[1])
    if (start > s.received) throw badRequest("invalid", "The upload's Content-Range starts past the bytes received.")
    s.busy = true
    try {
      // Bytes the server already has are skipped, so a resent chunk is harmless.
      let skip = s.received - start
      const out = fs.createWriteStream(s.file, { flags: "a" })
      const take = new Transform({
        transform(chunk: Buffer, _e, cb) {
          if (skip >= chunk.length) {
            skip -= chunk.length
            return cb()
          }
          const c = skip > 0 ? chunk.subarray(skip) : chunk
          skip = 0
          s.received += c.length
          cb(null, c)
        }
      })
      try {
        await pipeline(req, take, out)
      } catch {
        // A dropped connection: keep what arrived; the client asks where to resume.
        return
      }
    } finally {
      s.busy = false
    }
    const declared = total ?? s.declaredLength
    const endsHere = m[2] === "*" ? total !== undefined || s.declaredLength === undefined : declared !== undefined && s.received >= declared
    if (declared !== undefined && s.received > declared) throw badRequest("invalid", "More bytes than the declared object size.")
    if (endsHere) return this.finishSession(res, s)
    return incomplete()
  }

  private async finishSession(res: http.ServerResponse, s: Session) {
    const b = this.bucket(s.bucket)
    const kmsKeyName = this.encryptionFor(
      b,
      s.customerKey,
      s.query.get("kmsKeyName") ?? (typeof s.resource["kmsKeyName"] === "string" ? s.resource["kmsKeyName"] : undefined)
    )
    const file = this.tempFile()
    const w = sink(file, s.customerKey)
    await pipeline(fs.createReadStream(s.file), w.stream)
    await w.finished
    fs.rm(s.file, { force: true }, ignore)
    this.sessions.delete(s.id)
    const o = this.commit({
      bucket: s.bucket,
      name: s.name,
      file,
      query: s.query,
      resource: s.resource,
      contentType: s.contentType,
      hashes: w.hashes(),
      key: s.customerKey,
      iv: w.iv,
      kmsKeyName
    })
    const done = this.objectResource(o, true)
    this.json(res, 200, done)
  }

  private async compose(req: http.IncomingMessage, res: http.ServerResponse, bucket: string, name: string, q: URLSearchParams) {
    const key = customerKeyOf(req.headers, "x-goog-encryption")
    const body = await readJson(req)
    const b = this.bucket(bucket)
    nameOk(name)
    const list = Array.isArray(body["sourceObjects"]) ? (body["sourceObjects"] as Array<Record<string, unknown>>) : []
    if (list.length === 0) throw badRequest("required", "Required: sourceObjects.")
    if (list.length > 32) throw badRequest("invalid", "The number of source components provided (" + list.length + ") exceeds the maximum (32).")
    const sources = list.map((s) => {
      const n = typeof s["name"] === "string" ? s["name"] : ""
      const o = b.objects.get(n)
      if (o === undefined) throw notFound(bucket, n)
      const gen = s["generation"]
      if (gen !== undefined && String(gen) !== String(o.generation)) throw notFound(bucket, n)
      const pre = (s["objectPreconditions"] as { ifGenerationMatch?: unknown } | undefined)?.ifGenerationMatch
      if (pre !== undefined && String(pre) !== String(o.generation)) throw conditionNotMet()
      checkKey(o, key, true)
      return o
    })
    const dest = typeof body["destination"] === "object" && body["destination"] !== null ? body["destination"] as Record<string, unknown> : {}
    const kmsKeyName = this.encryptionFor(b, key, q.get("kmsKeyName") ?? (typeof dest["kmsKeyName"] === "string" ? dest["kmsKeyName"] : undefined))
    checkPreconditions(q, b.objects.get(name))
    const file = this.tempFile()
    const w = sink(file, key)
    try {
      for (const o of sources) {
        for await (const chunk of readPlain(o, key, 0, o.size)) {
          if (!w.stream.write(chunk)) await once(w.stream, "drain")
        }
      }
      w.stream.end()
      await w.finished
    } catch (e) {
      fs.rmSync(file, { force: true })
      throw e
    }
    const components = sources.reduce((n, o) => n + (o.componentCount ?? 1), 0)
    if (components > 1024) {
      fs.rmSync(file, { force: true })
      throw badRequest("invalid", "The composite object would have more than 1024 components.")
    }
    const o = this.commit({
      bucket,
      name,
      file,
      query: q,
      resource: { contentType: sources[0]!.contentType, ...dest },
      hashes: w.hashes(),
      key,
      iv: w.iv,
      kmsKeyName,
      componentCount: components
    })
    this.json(res, 200, this.objectResource(o, true))
  }

  private async rewrite(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    srcBucket: string,
    srcName: string,
    dstBucket: string,
    dstName: string,
    q: URLSearchParams,
    copyTo: boolean
  ) {
    const sourceKey = customerKeyOf(req.headers, "x-goog-copy-source-encryption")
    const destKey = customerKeyOf(req.headers, "x-goog-encryption")
    const body = await readJson(req)
    nameOk(dstName)
    const db = this.bucket(dstBucket)
    const token = q.get("rewriteToken")
    const state = token === null ? undefined : this.rewrites.get(token)
    if (token !== null && state === undefined) throw badRequest("invalid", "Invalid rewriteToken.")
    const src = state?.source ?? this.object(srcBucket, srcName)
    if (state === undefined) {
      const sg = intParam(q, "sourceGeneration")
      if (sg !== undefined && sg !== src.generation) throw notFound(srcBucket, srcName)
      checkPreconditions(q, src, "ifSource")
    } else if (this.buckets.get(srcBucket)?.objects.get(srcName) !== src) {
      throw notFound(srcBucket, srcName)
    }
    checkKey(src, sourceKey, true)
    const kmsKeyName = this.encryptionFor(db, destKey, q.get("destinationKmsKeyName") ?? (typeof body["kmsKeyName"] === "string" ? body["kmsKeyName"] : undefined))
    checkPreconditions(q, db.objects.get(dstName))
    const step = copyTo ? Number.MAX_SAFE_INTEGER : Math.max(1, intParam(q, "maxBytesRewrittenPerCall") ?? this.options.rewriteStep)
    const done = (state?.done ?? 0) + step
    if (done < src.size) {
      const next = crypto.randomBytes(16).toString("hex")
      if (token !== null) this.rewrites.delete(token)
      this.rewrites.set(next, { source: src, destination: `${dstBucket}/${dstName}`, resource: state?.resource ?? body, done })
      return this.json(res, 200, {
        kind: "storage#rewriteResponse",
        totalBytesRewritten: String(done),
        objectSize: String(src.size),
        done: false,
        rewriteToken: next
      })
    }
    if (token !== null) this.rewrites.delete(token)
    const file = this.tempFile()
    const w = sink(file, destKey)
    await pipeline(readPlain(src, sourceKey, 0, src.size), w.stream)
    await w.finished
    const given = state?.resource ?? body
    const hasMeta = Object.keys(given).some((k) => OBJECT_FIELDS.includes(k))
    const resource = hasMeta
      ? given
      : {
        contentType: src.contentType,
        metadata: src.metadata,
        cacheControl: src.cacheControl,
        contentDisposition: src.contentDisposition,
        contentEncoding: src.contentEncoding,
        contentLanguage: src.contentLanguage
      }
    const o = this.commit({
      bucket: dstBucket,
      name: dstName,
      file,
      query: q,
      resource: { contentType: src.contentType, ...resource },
      hashes: w.hashes(),
      key: destKey,
      iv: w.iv,
      kmsKeyName
    })
    const out = this.objectResource(o, true)
    if (copyTo) return this.json(res, 200, out)
    this.json(res, 200, { kind: "storage#rewriteResponse", totalBytesRewritten: String(src.size), objectSize: String(src.size), done: true, resource: out })
  }

  /** Drops every session, rewrite and file. */
  close() {
    this.sessions.clear()
    this.rewrites.clear()
    this.buckets.clear()
  }
}

const splitMultipart = (body: Buffer, boundary: string): Array<{ contentType: string | undefined; body: Buffer }> => {
  const delim = Buffer.from(`--${boundary}`)
  const out: Array<{ contentType: string | undefined; body: Buffer }> = []
  let at = body.indexOf(delim)
  while (at >= 0) {
    const start = at + delim.length
    if (body.subarray(start, start + 2).toString() === "--") break
    const next = body.indexOf(delim, start)
    if (next < 0) break
    let part = body.subarray(start, next)
    if (part.subarray(0, 2).toString() === "\r\n") part = part.subarray(2)
    if (part.subarray(part.length - 2).toString() === "\r\n") part = part.subarray(0, part.length - 2)
    const headEnd = part.indexOf("\r\n\r\n")
    const head = headEnd < 0 ? "" : part.subarray(0, headEnd).toString("utf8")
    const ct = /^content-type:\s*(.+)$/im.exec(head)?.[1]?.trim()
    out.push({ contentType: ct, body: headEnd < 0 ? part : part.subarray(headEnd + 4) })
    at = next
  }
  return out
}
