import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Redacted } from "effect"
import * as crypto from "node:crypto"
import * as PostPolicy from "../src/PostPolicy.js"
import type * as SigV4 from "../src/SigV4.js"

const secret = "post-policy-unit-secret"
const user: SigV4.User = { name: "u", accessKeyId: "AKIAPOSTUNIT0001", secretAccessKey: Redacted.make(secret), buckets: ["pics"] }
const lookup = (id: string) => (id === user.accessKeyId ? user : undefined)
const now = new Date("2026-01-02T03:04:05Z")
const hmac = (k: crypto.BinaryLike, d: string) => crypto.createHmac("sha256", k).update(d).digest()

const b64 = (doc: unknown) => Buffer.from(typeof doc === "string" ? doc : JSON.stringify(doc)).toString("base64")
const code = (e: Either.Either<unknown, { readonly code: string }>) => (Either.isLeft(e) ? e.left.code : "ok")

/** Signed form fields for a policy document, as a browser form built by a server would carry them. */
const form = (conditions: ReadonlyArray<unknown>, fields: Record<string, string>, expiration = "2026-01-02T04:00:00.000Z") => {
  const credential = `${user.accessKeyId}/20260102/us-east-1/s3/aws4_request`
  const policy = b64({
    expiration,
    conditions: [{ "x-amz-algorithm": "AWS4-HMAC-SHA256" }, { "x-amz-credential": credential }, { "x-amz-date": "20260102T030000Z" }, ...conditions]
  })
  const key = hmac(hmac(hmac(hmac(`AWS4${secret}`, "20260102"), "us-east-1"), "s3"), "aws4_request")
  return new Map(Object.entries({
    ...fields,
    "x-amz-algorithm": "AWS4-HMAC-SHA256",
    "x-amz-credential": credential,
    "x-amz-date": "20260102T030000Z",
    policy,
    "x-amz-signature": hmac(key, policy).toString("hex")
  }))
}

describe("PostPolicy.parse", () => {
  it.effect("reads conditions in every documented form", () =>
    Effect.sync(() => {
      const p = Either.getOrThrow(PostPolicy.parse(b64({
        expiration: "2026-01-02T04:00:00Z",
        conditions: [{ bucket: "pics" }, ["starts-with", "$Key", "u/"], ["eq", "$Content-Type", "image/png"], ["content-length-range", "1", 100]]
      })))
      assert.deepStrictEqual(p.conditions.map((c) => c._tag === "ContentLengthRange" ? [c._tag, c.min, c.max] : [c._tag, c.field, c.value]), [
        ["Eq", "bucket", "pics"],
        ["StartsWith", "key", "u/"],
        ["Eq", "content-type", "image/png"],
        ["ContentLengthRange", 1, 100]
      ])
    }))

  it.effect("refuses malformed documents with InvalidPolicyDocument", () =>
    Effect.sync(() => {
      for (const doc of [
        "not json",
        { conditions: [] },
        { expiration: "tomorrow", conditions: [] },
        { expiration: "2026-01-02T04:00:00Z", conditions: [["eq", "key", "no-dollar"]] },
        { expiration: "2026-01-02T04:00:00Z", conditions: [["content-length-range", 10, 1]] },
        { expiration: "2026-01-02T04:00:00Z", conditions: [["content-length-range", -1, 1]] },
        { expiration: "2026-01-02T04:00:00Z", conditions: [["matches", "$key", ".*"]] },
        { expiration: "2026-01-02T04:00:00Z", conditions: [{ a: "1", b: "2" }] },
        { expiration: "2026-01-02T04:00:00Z", conditions: [42] }
      ]) {
        assert.strictEqual(code(PostPolicy.parse(b64(doc))), "InvalidPolicyDocument", JSON.stringify(doc))
      }
      assert.strictEqual(code(PostPolicy.parse("%%%")), "InvalidPolicyDocument")
    }))
})

describe("PostPolicy.verify", () => {
  it.effect("accepts a form meeting every condition, field names in any case", () =>
    Effect.sync(() => {
      const fields = form([{ bucket: "pics" }, ["starts-with", "$key", "u/"], ["starts-with", "$Content-Type", "image/"], ["content-length-range", 1, 10]], {
        key: "u/a.png",
        "content-type": "image/png"
      })
      const v = PostPolicy.verify(fields, "pics", lookup, now)
      assert.strictEqual(code(v), "ok")
      assert.deepStrictEqual(Either.getOrThrow(v).contentLength, { min: 1, max: 10 })
      assert.strictEqual(PostPolicy.objectKey(new Map([["key", "u/${filename}"]]), "b.png"), "u/b.png")
    }))

  it.effect("refuses failed conditions, extra fields, expiry, other buckets and bad signatures", () =>
    Effect.sync(() => {
      const conditions = [{ bucket: "pics" }, ["starts-with", "$key", "u/"]]
      assert.strictEqual(code(PostPolicy.verify(form(conditions, { key: "other/a" }), "pics", lookup, now)), "AccessDenied")
      assert.strictEqual(code(PostPolicy.verify(form(conditions, { key: "u/a", acl: "public-read" }), "pics", lookup, now)), "AccessDenied")
      assert.strictEqual(code(PostPolicy.verify(form(conditions, { key: "u/a", "x-ignore-note": "ok" }), "pics", lookup, now)), "ok")
      assert.strictEqual(code(PostPolicy.verify(form(conditions, { key: "u/a" }, "2026-01-02T03:00:00Z"), "pics", lookup, now)), "AccessDenied")
      assert.strictEqual(code(PostPolicy.verify(form([{ bucket: "other" }, ["starts-with", "$key", ""]], { key: "u/a" }), "pics", lookup, now)), "AccessDenied")
      // The user may not use the bucket at all.
      assert.strictEqual(code(PostPolicy.verify(form([{ bucket: "vault" }, ["starts-with", "$key", ""]], { key: "u/a" }), "vault", lookup, now)), "AccessDenied")
      const tampered = form(conditions, { key: "u/a" })
      tampered.set("x-amz-signature", "0".repeat(64))
      assert.strictEqual(code(PostPolicy.verify(tampered, "pics", lookup, now)), "SignatureDoesNotMatch")
      const unknown = form(conditions, { key: "u/a" })
      unknown.set("x-amz-credential", "AKIANOBODY/20260102/us-east-1/s3/aws4_request")
      assert.strictEqual(code(PostPolicy.verify(unknown, "pics", lookup, now)), "InvalidAccessKeyId")
      const badScope = form(conditions, { key: "u/a" })
      badScope.set("x-amz-credential", `${user.accessKeyId}/20260102/us-east-1/kms/aws4_request`)
      assert.strictEqual(code(PostPolicy.verify(badScope, "pics", lookup, now)), "InvalidArgument")
      const missing = form(conditions, { key: "u/a" })
      missing.delete("x-amz-date")
      assert.strictEqual(code(PostPolicy.verify(missing, "pics", lookup, now)), "InvalidArgument")
      assert.strictEqual(code(PostPolicy.verify(new Map([["key", "u/a"]]), "pics", lookup, now)), "AccessDenied")
    }))

  it.effect("sends the browser where the form says", () =>
    Effect.sync(() => {
      const result = { bucket: "pics", key: "u/a b", etag: "abc" }
      const r = PostPolicy.outcome(new Map([["success_action_redirect", "https://example.com/ok"]]), result)
      assert.strictEqual(r._tag, "Redirect")
      assert.strictEqual(r._tag === "Redirect" ? r.location : "", "https://example.com/ok?bucket=pics&key=u%2Fa+b&etag=%22abc%22")
      assert.deepStrictEqual(PostPolicy.outcome(new Map([["success_action_redirect", "javascript:alert(1)"], ["success_action_status", "201"]]), result), { _tag: "Status", status: 201 })
      assert.deepStrictEqual(PostPolicy.outcome(new Map([["success_action_status", "200"]]), result), { _tag: "Status", status: 200 })
      assert.deepStrictEqual(PostPolicy.outcome(new Map([["success_action_status", "302"]]), result), { _tag: "Status", status: 204 })
    }))
})
