import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3"
import type { S3Client } from "@aws-sdk/client-s3"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { alice, bob, body, bytes, call, client, filesUnder, MARKER, MiB, refused, ssec, start } from "./apiHarness.js"
import type { Api } from "./apiHarness.js"

let api: Api
let s3: S3Client

beforeAll(async () => {
  api = await start()
  s3 = client(api)
  await s3.send(new CreateBucketCommand({ Bucket: "posts" }))
}, 60_000)

afterAll(async () => {
  await api?.close()
})

const hmac = (key: crypto.BinaryLike, data: string) => crypto.createHmac("sha256", key).update(data).digest()

/** A form signed as the AWS SigV4 POST documentation describes (policy → base64 → HMAC with the signing key). */
const signedForm = (options: {
  readonly user?: { id: string; secret: string }
  readonly bucket?: string
  readonly conditions?: ReadonlyArray<unknown>
  readonly expiresInMs?: number
  readonly fields?: Record<string, string>
  readonly tamper?: boolean
  readonly rawPolicy?: string
}) => {
  const user = options.user ?? alice
  const now = new Date()
  const amzDate = now.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "")
  const day = amzDate.slice(0, 8)
  const credential = `${user.id}/${day}/us-east-1/s3/aws4_request`
  const policy = {
    expiration: new Date(now.getTime() + (options.expiresInMs ?? 60_000)).toISOString(),
    conditions: [
      { bucket: options.bucket ?? "posts" },
      { "x-amz-algorithm": "AWS4-HMAC-SHA256" },
      { "x-amz-credential": credential },
      { "x-amz-date": amzDate },
      ...(options.conditions ?? [])
    ]
  }
  const policyB64 = options.rawPolicy ?? Buffer.from(JSON.stringify(policy)).toString("base64")
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${user.secret}`, day), "us-east-1"), "s3"), "aws4_request")
  let signature = hmac(signingKey, policyB64).toString("hex")
  if (options.tamper === true) signature = signature.replace(/^./, (c) => (c === "0" ? "1" : "0"))
  return {
    ...options.fields,
    "x-amz-algorithm": "AWS4-HMAC-SHA256",
    "x-amz-credential": credential,
    "x-amz-date": amzDate,
    policy: policyB64,
    "x-amz-signature": signature
  }
}

const post = (fields: Record<string, string>, file: Buffer | undefined, options?: { readonly bucket?: string; readonly filename?: string }) =>
  call(async () => {
    const form = new FormData()
    for (const [k, v] of Object.entries(fields)) form.append(k, v)
    if (file !== undefined) form.append("file", new Blob([file], { type: "application/octet-stream" }), options?.filename ?? "hello.txt")
    const res = await fetch(`${api.endpoint}/${options?.bucket ?? "posts"}`, { method: "POST", body: form, redirect: "manual" })
    return { status: res.status, headers: res.headers, text: await res.text() }
  })

const code = (xml: string) => /<Code>([^<]*)<\/Code>/.exec(xml)?.[1]

describe("browser POST uploads", () => {
  it.effect("stores a file under a signed policy, with SSE, metadata and success_action_status 201", () =>
    Effect.gen(function*() {
      const data = body(200_000, 21)
      const fields = signedForm({
        conditions: [
          ["starts-with", "$key", "uploads/"],
          ["content-length-range", 1, MiB],
          { success_action_status: "201" },
          ["eq", "$x-amz-server-side-encryption", "aws:kms"],
          ["starts-with", "$Content-Type", "text/"],
          ["starts-with", "$x-amz-meta-tag", ""]
        ],
        fields: {
          key: "uploads/${filename}",
          success_action_status: "201",
          "x-amz-server-side-encryption": "aws:kms",
          "Content-Type": "text/plain",
          "x-amz-meta-tag": "from-a-browser"
        }
      })
      const r = yield* post(fields, data)
      assert.strictEqual(r.status, 201, r.text)
      assert.include(r.text, "<Key>uploads/hello.txt</Key>")
      assert.include(r.text, "<Bucket>posts</Bucket>")
      // S3's Location: the object's absolute URL as the client addressed the gateway.
      assert.include(r.text, `<Location>${api.endpoint}/posts/uploads/hello.txt</Location>`)
      assert.strictEqual(r.headers.get("location"), `${api.endpoint}/posts/uploads/hello.txt`)
      assert.strictEqual(r.headers.get("x-amz-server-side-encryption"), "aws:kms")
      const o = yield* call(() => s3.send(new GetObjectCommand({ Bucket: "posts", Key: "uploads/hello.txt" })))
      assert.strictEqual(o.ServerSideEncryption, "aws:kms")
      assert.strictEqual(o.ContentType, "text/plain")
      assert.strictEqual(o.Metadata?.["tag"], "from-a-browser")
      assert.strictEqual(`${o.ETag}`, r.headers.get("etag"))
      assert.isTrue(Buffer.from(yield* bytes(o.Body)).equals(data))
    }))

  it.effect("redirects, answers 204 by default, and takes SSE-C keys as fields", () =>
    Effect.gen(function*() {
      const redirect = signedForm({
        conditions: [["eq", "$key", "r/one"], ["starts-with", "$success_action_redirect", "https://example.com/"]],
        fields: { key: "r/one", success_action_redirect: "https://example.com/done?x=1" }
      })
      const r = yield* post(redirect, Buffer.from("redirected"))
      assert.strictEqual(r.status, 303)
      const location = new URL(r.headers.get("location")!)
      assert.strictEqual(location.origin + location.pathname, "https://example.com/done")
      assert.strictEqual(location.searchParams.get("bucket"), "posts")
      assert.strictEqual(location.searchParams.get("key"), "r/one")
      assert.match(location.searchParams.get("etag") ?? "", /^".+"$/)
      const c = ssec()
      const withKey = signedForm({
        conditions: [
          { key: "r/two" },
          { "x-amz-server-side-encryption-customer-algorithm": "AES256" },
          ["starts-with", "$x-amz-server-side-encryption-customer-key", ""],
          ["starts-with", "$x-amz-server-side-encryption-customer-key-MD5", ""]
        ],
        fields: {
          key: "r/two",
          "x-amz-server-side-encryption-customer-algorithm": "AES256",
          "x-amz-server-side-encryption-customer-key": c.SSECustomerKey,
          "x-amz-server-side-encryption-customer-key-MD5": c.SSECustomerKeyMD5
        }
      })
      const d = yield* post(withKey, Buffer.from("customer keyed"))
      assert.strictEqual(d.status, 204, d.text)
      const denied = yield* refused(() => s3.send(new GetObjectCommand({ Bucket: "posts", Key: "r/two" })))
      assert.deepStrictEqual(denied, { code: "InvalidRequest", status: 400 })
      const o = yield* call(() => s3.send(new GetObjectCommand({ Bucket: "posts", Key: "r/two", ...c })))
      assert.strictEqual(yield* call(() => o.Body!.transformToString()), "customer keyed")
    }))

  it.effect("refuses expired, violated, mis-signed and malformed policies with S3's errors, storing nothing", () =>
    Effect.gen(function*() {
      const base = { conditions: [["starts-with", "$key", "ok/"], ["content-length-range", 2, 5 * MiB]], fields: { key: "ok/refused" } }
      const expired = yield* post(signedForm({ ...base, expiresInMs: -1000 }), Buffer.from("data"))
      assert.deepStrictEqual([expired.status, code(expired.text)], [403, "AccessDenied"])
      assert.include(expired.text, "expired")
      const badKey = yield* post(signedForm({ ...base, fields: { key: "elsewhere/x" } }), Buffer.from("data"))
      assert.deepStrictEqual([badKey.status, code(badKey.text)], [403, "AccessDenied"])
      const tooLarge = yield* post(signedForm(base), body(5 * MiB + 1, 3))
      assert.deepStrictEqual([tooLarge.status, code(tooLarge.text)], [400, "EntityTooLarge"])
      // Past one part of the gateway's multipart path before the limit is hit.
      const tooLargeBig = yield* post(signedForm({ ...base, conditions: [["starts-with", "$key", "ok/"], ["content-length-range", 0, 9 * MiB]] }), body(9 * MiB + 1, 4))
      assert.deepStrictEqual([tooLargeBig.status, code(tooLargeBig.text)], [400, "EntityTooLarge"])
      const tooSmall = yield* post(signedForm(base), Buffer.from("x"))
      assert.deepStrictEqual([tooSmall.status, code(tooSmall.text)], [400, "EntityTooSmall"])
      const tampered = yield* post(signedForm({ ...base, tamper: true }), Buffer.from("data"))
      assert.deepStrictEqual([tampered.status, code(tampered.text)], [403, "SignatureDoesNotMatch"])
      const extra = yield* post(signedForm({ ...base, fields: { key: "ok/refused", "x-amz-meta-unlisted": "1" } }), Buffer.from("data"))
      assert.deepStrictEqual([extra.status, code(extra.text)], [403, "AccessDenied"])
      assert.include(extra.text, "x-amz-meta-unlisted")
      const ignored = yield* post(signedForm({ ...base, fields: { key: "ok/ignored", "x-ignore-me": "1" } }), Buffer.from("data"))
      assert.strictEqual(ignored.status, 204, ignored.text)
      const otherBucket = yield* post(signedForm({ ...base, bucket: "not-posts" }), Buffer.from("data"))
      assert.deepStrictEqual([otherBucket.status, code(otherBucket.text)], [403, "AccessDenied"])
      const notJson = yield* post(signedForm({ ...base, rawPolicy: Buffer.from("{not json").toString("base64") }), Buffer.from("data"))
      assert.deepStrictEqual([notJson.status, code(notJson.text)], [400, "InvalidPolicyDocument"])
      const noFile = yield* post(signedForm(base), undefined)
      assert.deepStrictEqual([noFile.status, code(noFile.text)], [400, "IncorrectNumberOfFilesInPostRequest"])
      const outsider = yield* post(signedForm({ ...base, user: bob }), Buffer.from("data"))
      assert.deepStrictEqual([outsider.status, code(outsider.text)], [403, "AccessDenied"])
      const anonymous = yield* post({ key: "ok/anon" }, Buffer.from("data"))
      assert.deepStrictEqual([anonymous.status, code(anonymous.text)], [403, "AccessDenied"])
      const unknownKey = yield* post(signedForm({ ...base, user: { id: "AKIANOBODY000000", secret: "x" } }), Buffer.from("data"))
      assert.deepStrictEqual([unknownKey.status, code(unknownKey.text)], [403, "InvalidAccessKeyId"])
      const noBucket = yield* post(signedForm({ ...base, bucket: "missing-bucket" }), Buffer.from("data"), { bucket: "missing-bucket" })
      assert.deepStrictEqual([noBucket.status, code(noBucket.text)], [404, "NoSuchBucket"])
      const garbage = yield* call(async () => {
        const res = await fetch(`${api.endpoint}/posts`, { method: "POST", headers: { "content-type": "multipart/form-data; boundary=xyz" }, body: "--xyz\r\nnot a part" })
        return { status: res.status, text: await res.text() }
      })
      assert.strictEqual(garbage.status, 400)
      for (const k of ["ok/refused", "elsewhere/x"]) {
        const gone = yield* refused(() => s3.send(new HeadObjectCommand({ Bucket: "posts", Key: k })))
        assert.strictEqual(gone.status, 404, k)
      }
      // Nothing visible was left by any refused form, the large multipart one included.
      const listed = yield* call(() => s3.send(new ListObjectsV2Command({ Bucket: "posts", Prefix: "ok/" })))
      assert.deepStrictEqual(listed.Contents?.map((o) => o.Key), ["ok/ignored"])
      // …and no backend multipart upload or staged file remains in the bucket's directory.
      const staging = path.join(api.root, "posts", ".objcrypt-fs")
      assert.isTrue(fs.existsSync(staging))
      assert.deepStrictEqual(filesUnder(staging).map((f) => path.relative(staging, f)).filter((f) => f.startsWith("uploads") || f.startsWith("tmp")), [])
    }))

  it.effect("refuses a form asking for an object lock, as S3 does on a bucket without Object Lock, storing nothing", () =>
    Effect.gen(function*() {
      const asks: ReadonlyArray<Record<string, string>> = [
        { "x-amz-object-lock-legal-hold": "ON" },
        { "x-amz-object-lock-mode": "GOVERNANCE", "x-amz-object-lock-retain-until-date": new Date(Date.now() + 86_400_000).toISOString() }
      ]
      for (const ask of asks) {
        const fields = signedForm({ conditions: [{ key: "locked/one" }, ...Object.entries(ask).map(([k, v]) => ({ [k]: v }))], fields: { key: "locked/one", ...ask } })
        const r = yield* post(fields, Buffer.from("never stored"))
        assert.strictEqual(r.status, 400, r.text)
        assert.strictEqual(code(r.text), "InvalidRequest")
        assert.include(r.text, "Bucket is missing ObjectLockConfiguration")
        const head = yield* refused(() => s3.send(new HeadObjectCommand({ Bucket: "posts", Key: "locked/one" })))
        assert.deepStrictEqual(head, { code: "NotFound", status: 404 })
      }
    }))

  it.effect("never writes plaintext to the backend", () =>
    Effect.sync(() => {
      for (const f of filesUnder(api.root)) {
        assert.isFalse(fs.readFileSync(f).includes(MARKER), f)
        assert.isFalse(fs.readFileSync(f).includes("customer keyed"), f)
      }
    }))
})
