/**
 * An independent SigV4 signer (header auth) for tests that send requests no SDK would: raw bodies,
 * missing or odd headers. Not the gateway's own code, so a shared mistake cannot pass unnoticed.
 */
import * as crypto from "node:crypto"
import * as http from "node:http"

const sha256 = (b: string | Buffer) => crypto.createHash("sha256").update(b).digest("hex")
const hmac = (k: Buffer | string, s: string) => crypto.createHmac("sha256", k).update(s).digest()
/** RFC 3986 encoding, as SigV4 canonicalizes. */
export const enc = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)

export interface Signer {
  readonly id: string
  readonly secret: string
  readonly region?: string
}

/** The request's headers with `x-amz-date`, `x-amz-content-sha256` and `authorization` added. */
export const sign = (
  user: Signer,
  request: { readonly method: string; readonly pathname: string; readonly query: ReadonlyArray<readonly [string, string]>; readonly headers: Readonly<Record<string, string>>; readonly host: string },
  payloadHash: string
): Record<string, string> => {
  const region = user.region ?? "us-east-1"
  const amzDate = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "")
  const day = amzDate.slice(0, 8)
  const all: Record<string, string> = { ...request.headers, host: request.host, "x-amz-date": amzDate, "x-amz-content-sha256": payloadHash }
  const names = Object.keys(all).map((n) => n.toLowerCase()).sort()
  const canonicalHeaders = names.map((n) => `${n}:${String(all[Object.keys(all).find((k) => k.toLowerCase() === n)!]).trim().replace(/\s+/g, " ")}\n`).join("")
  const canonicalQuery = request.query.map(([k, v]) => [enc(k), enc(v)])
    .sort((a, b) => (a[0]! < b[0]! ? -1 : a[0]! > b[0]! ? 1 : a[1]! < b[1]! ? -1 : 1)).map(([k, v]) => `${k}=${v}`).join("&")
  const canonical = [request.method, request.pathname, canonicalQuery, canonicalHeaders, names.join(";"), payloadHash].join("\n")
  const scope = `${day}/${region}/s3/aws4_request`
  const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256(canonical)].join("\n")
  let k = hmac(`AWS4${user.secret}`, day)
  for (const p of [region, "s3", "aws4_request"]) k = hmac(k, p)
  const signature = crypto.createHmac("sha256", k).update(toSign).digest("hex")
  return { ...all, authorization: `AWS4-HMAC-SHA256 Credential=${user.id}/${scope}, SignedHeaders=${names.join(";")}, Signature=${signature}` }
}

export interface RawResponse {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
}

/** One signed request to 127.0.0.1:`port` (path-style), its body signed by its SHA-256. */
export const request = (
  port: number,
  user: Signer,
  method: string,
  pathname: string,
  options?: { readonly query?: ReadonlyArray<readonly [string, string]>; readonly headers?: Readonly<Record<string, string>>; readonly body?: string | Buffer }
): Promise<RawResponse> =>
  new Promise((resolve, reject) => {
    const body = options?.body === undefined ? Buffer.alloc(0) : Buffer.from(options.body)
    const query = options?.query ?? []
    const headers = sign(user, { method, pathname, query, headers: { ...options?.headers, "content-length": String(body.length) }, host: `127.0.0.1:${port}` }, sha256(body))
    const search = query.map(([k, v]) => `${enc(k)}=${enc(v)}`).join("&")
    const req = http.request({ host: "127.0.0.1", port, method, path: search === "" ? pathname : `${pathname}?${search}`, headers }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }))
      res.on("error", reject)
    })
    req.on("error", reject)
    req.end(body)
  })

/** The `<Code>` of an S3 error body. */
export const errorCode = (r: RawResponse) => /<Code>([^<]*)<\/Code>/.exec(r.body)?.[1]
