/**
 * SigV4 verification for the KMS JSON protocol, with requests signed by the AWS SDK's own signer
 * (`@smithy/signature-v4`): accepted as signed, refused when the service, region, body, time,
 * secret or a signed header differ.
 */
import { assert, describe, it } from "@effect/vitest"
import { SignatureV4 } from "@smithy/signature-v4"
import { Either, Redacted } from "effect"
import * as crypto from "node:crypto"
import * as KmsAuth from "../../src/kms/KmsAuth.js"
import type * as SigV4 from "../../src/SigV4.js"

const bytes = (d: string | ArrayBuffer | ArrayBufferView): string | Uint8Array =>
  typeof d === "string" ? d : d instanceof ArrayBuffer ? new Uint8Array(d) : new Uint8Array(d.buffer, d.byteOffset, d.byteLength)

class Sha256 {
  private readonly h: crypto.Hash | crypto.Hmac
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.h = secret === undefined ? crypto.createHash("sha256") : crypto.createHmac("sha256", bytes(secret))
  }
  update(data: string | ArrayBuffer | ArrayBufferView) {
    this.h.update(bytes(data))
  }
  digest() {
    return Promise.resolve(new Uint8Array(this.h.digest()))
  }
  reset() {
    // one-shot hashes: nothing to reset
  }
}

const user: SigV4.User = { name: "alice", accessKeyId: "AKIAAUTHTEST00001", secretAccessKey: Redacted.make("s3cr3t"), buckets: "*" }
const lookup = (id: string) => (id === user.accessKeyId ? user : undefined)

const sign = async (options: { service?: string; region?: string; secret?: string; body?: string; date?: Date }) => {
  const signer = new SignatureV4({
    service: options.service ?? "kms",
    region: options.region ?? "us-east-1",
    credentials: { accessKeyId: user.accessKeyId, secretAccessKey: options.secret ?? "s3cr3t" },
    sha256: Sha256
  })
  const body = options.body ?? "{\"KeyId\":\"alias/x\"}"
  const signed = await signer.sign({
    method: "POST",
    protocol: "http:",
    hostname: "127.0.0.1",
    port: 9100,
    path: "/",
    query: {},
    headers: {
      host: "127.0.0.1:9100",
      "content-type": "application/x-amz-json-1.1",
      "x-amz-target": "TrentService.DescribeKey"
    },
    body
  }, { signingDate: options.date ?? new Date() })
  const headers: Record<string, string> = {}
  for (const [k, v] of Object.entries(signed.headers)) headers[k.toLowerCase()] = String(v)
  return { headers, body: new TextEncoder().encode(body) }
}

const verify = (r: { headers: Record<string, string>; body: Uint8Array }, over?: Partial<KmsAuth.Request>) =>
  KmsAuth.verify({ method: "POST", rawPath: "/", rawQuery: "", now: new Date(), ...r, ...over }, "us-east-1", lookup)

const refusal = (e: Either.Either<SigV4.User, { readonly type: string }>) => Either.isLeft(e) ? e.left.type : "accepted"

describe("KmsAuth", () => {
  it("accepts a request signed by the AWS SDK's signer and returns its user", async () => {
    const r = await sign({})
    const out = verify(r)
    assert.isTrue(Either.isRight(out))
    assert.strictEqual(Either.getOrThrow(out).name, "alice")
  })

  it("refuses another service's or region's scope, another secret, a changed body, a stale date, a changed signed header", async () => {
    assert.strictEqual(refusal(verify(await sign({ service: "s3" }))), "InvalidSignatureException")
    assert.strictEqual(refusal(verify(await sign({ region: "eu-west-1" }))), "InvalidSignatureException")
    assert.strictEqual(refusal(verify(await sign({ secret: "other" }))), "InvalidSignatureException")
    const r = await sign({})
    assert.strictEqual(refusal(verify({ ...r, body: new TextEncoder().encode("{\"KeyId\":\"alias/y\"}") })), "InvalidSignatureException")
    assert.strictEqual(refusal(verify(await sign({ date: new Date(Date.now() - 20 * 60_000) }))), "InvalidSignatureException")
    assert.strictEqual(refusal(verify({ ...r, headers: { ...r.headers, "x-amz-target": "TrentService.Decrypt" } })), "InvalidSignatureException")
    assert.strictEqual(refusal(verify({ ...r, headers: { ...r.headers, "x-amz-content-sha256": "0".repeat(64) } })), "InvalidSignatureException")
  })

  it("refuses unknown access keys, missing or malformed authorization", async () => {
    const r = await sign({})
    assert.strictEqual(refusal(KmsAuth.verify({ method: "POST", rawPath: "/", rawQuery: "", now: new Date(), ...r }, "us-east-1", () => undefined)), "UnrecognizedClientException")
    const { authorization: _, ...noAuth } = r.headers
    assert.strictEqual(refusal(verify({ ...r, headers: noAuth })), "MissingAuthenticationTokenException")
    assert.strictEqual(refusal(verify({ ...r, headers: { ...r.headers, authorization: "AWS4-HMAC-SHA256 Credential=x" } })), "IncompleteSignatureException")
    assert.strictEqual(refusal(verify({ ...r, headers: { ...r.headers, authorization: "AWS AKIA:sig" } })), "IncompleteSignatureException")
    const { "x-amz-date": __, ...noDate } = r.headers
    assert.strictEqual(refusal(verify({ ...r, headers: noDate })), "IncompleteSignatureException")
  })
})
