import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Redacted } from "effect"
import * as SigV4 from "../src/SigV4.js"
import * as Xml from "../src/Xml.js"

// The GET example of the AWS SigV4 documentation ("Signature calculation: GetObject").
const user: SigV4.User = {
  name: "example",
  accessKeyId: "AKIAIOSFODNN7EXAMPLE",
  secretAccessKey: Redacted.make("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
  buckets: "*"
}
const request = (signature: string, extra?: Record<string, string>): SigV4.SignedRequest => ({
  method: "GET",
  rawPath: "/test.txt",
  rawQuery: "",
  now: new Date("2013-05-24T00:05:00Z"),
  headers: {
    host: "examplebucket.s3.amazonaws.com",
    range: "bytes=0-9",
    "x-amz-content-sha256": SigV4.EMPTY_SHA256,
    "x-amz-date": "20130524T000000Z",
    authorization: `AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=${signature}`,
    ...extra
  }
})
const GOOD = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
const lookup = (id: string) => (id === user.accessKeyId ? user : undefined)

describe("SigV4", () => {
  it.effect("accepts the documented example signature", () =>
    Effect.sync(() => {
      const r = SigV4.verify(request(GOOD), lookup)
      assert.isTrue(Either.isRight(r))
    }))

  it.effect("refuses a changed signature, header, time or key id", () =>
    Effect.sync(() => {
      const code = (r: Either.Either<unknown, { readonly code: string }>) => (Either.isLeft(r) ? r.left.code : "ok")
      assert.strictEqual(code(SigV4.verify(request(GOOD.replace(/^f/, "e")), lookup)), "SignatureDoesNotMatch")
      assert.strictEqual(code(SigV4.verify(request(GOOD, { range: "bytes=0-10" }), lookup)), "SignatureDoesNotMatch")
      assert.strictEqual(code(SigV4.verify(request("zz"), lookup)), "SignatureDoesNotMatch")
      assert.strictEqual(code(SigV4.verify({ ...request(GOOD), now: new Date("2013-05-25T00:00:00Z") }, lookup)), "RequestTimeTooSkewed")
      assert.strictEqual(code(SigV4.verify(request(GOOD), () => undefined)), "InvalidAccessKeyId")
      assert.strictEqual(code(SigV4.verify(request(GOOD, { "x-amz-meta-unsigned": "1" }), lookup)), "AccessDenied")
      assert.strictEqual(code(SigV4.verify(request(GOOD, { authorization: "AWS4-HMAC-SHA256 garbage" }), lookup)), "AuthorizationHeaderMalformed")
      assert.strictEqual(code(SigV4.verify({ ...request(GOOD), rawQuery: "a=%zz" }, lookup)), "InvalidArgument")
    }))
})

describe("Xml", () => {
  it.effect("parses request documents and refuses malformed or DTD-bearing ones", () =>
    Effect.sync(() => {
      const doc = Xml.parse(`<?xml version="1.0"?><Delete xmlns="x"><Object><Key>a&amp;b</Key></Object><Quiet>true</Quiet></Delete>`)
      assert.strictEqual(doc?.name, "Delete")
      assert.strictEqual(Xml.childText(Xml.children(doc!, "Object")[0]!, "Key"), "a&b")
      assert.isUndefined(Xml.parse("<a><b></a></b>"))
      assert.isUndefined(Xml.parse(`<!DOCTYPE x [<!ENTITY e "boom">]><a>&e;</a>`))
      assert.isUndefined(Xml.parse("<a>&unknown;</a>"))
      assert.isUndefined(Xml.parse("<a></a><b></b>"))
      assert.isUndefined(Xml.parse("<a".repeat(10)))
    }))
})
