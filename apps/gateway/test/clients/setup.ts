/**
 * One HTTPS gateway (self-signed certificate, so SSE-C is allowed as on S3) per client test file,
 * with a scratch directory of files the client uploads and downloads.
 */
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { decode, type Gateway, markedPayload, rawConfig, selfSigned, start, tempDir } from "../ops/harness.js"

export interface ClientEnv {
  readonly gw: Gateway
  readonly dir: string
  readonly work: string
  readonly ca: string
  readonly caPem: string
  readonly dataRoot: string
  readonly customerKey: Buffer
  /** 12 MiB + a bit: multipart for every client once its threshold is 5–8 MiB. */
  readonly big: string
  readonly small: string
  readonly marker: string
}

export const setup = async (name: string): Promise<ClientEnv> => {
  const dir = tempDir(name)
  const cert = await selfSigned(dir)
  const gw = await start(decode(rawConfig(dir, { tls: { cert: cert.cert, key: cert.key } })))
  const work = path.join(dir, "work")
  fs.mkdirSync(work)
  const marker = `CLIENT-PLAINTEXT-${crypto.randomBytes(6).toString("hex")}`
  const big = path.join(work, "big.bin")
  fs.writeFileSync(big, markedPayload(marker, 12 * 1024 * 1024 + 4321))
  const small = path.join(work, "small.txt")
  fs.writeFileSync(small, markedPayload(marker, 70_000))
  return { gw, dir, work, ca: cert.cert, caPem: cert.pem, dataRoot: path.join(dir, "data"), customerKey: crypto.randomBytes(32), big, small, marker }
}

export const sameFile = (a: string, b: string) => fs.readFileSync(a).equals(fs.readFileSync(b))

/** No file of the backend holds the marker (plaintext) or the customer key. */
export const backendHoldsNoPlaintext = (env: ClientEnv): number => {
  let n = 0
  for (const e of fs.readdirSync(env.dataRoot, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue
    const bytes = fs.readFileSync(path.join(e.parentPath, e.name))
    if (bytes.includes(env.marker)) throw new Error(`plaintext in ${e.name}`)
    if (bytes.includes(env.customerKey)) throw new Error(`customer key in ${e.name}`)
    n++
  }
  return n
}
