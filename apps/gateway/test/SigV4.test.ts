import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Redacted, Stream } from "effect"
import * as crypto from "node:crypto"
import * as zlib from "node:zlib"
import { decodeBody } from "../src/internal/body.js"
import { address } from "../src/S3Api.js"
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

describe("addressing", () => {
  const ok = <A>(e: Either.Either<A, unknown>): A => Either.getOrThrow(e)
  it.effect("reads the bucket from the Host under a base domain, else from the path", () =>
    Effect.sync(() => {
      const domains = ["s3.example.test", "Other.Test."]
      assert.deepStrictEqual(ok(address("/a%20b/c", "photos.s3.example.test:9000", domains)), { bucket: "photos", key: "a b/c", virtualHosted: true })
      assert.deepStrictEqual(ok(address("/", "photos.s3.example.test", domains)), { bucket: "photos", key: undefined, virtualHosted: true })
      assert.deepStrictEqual(ok(address("/x", "my.dotted.bucket.other.test", domains)), { bucket: "my.dotted.bucket", key: "x", virtualHosted: true })
      assert.deepStrictEqual(ok(address("/photos/a/b", "s3.example.test:9000", domains)), { bucket: "photos", key: "a/b", virtualHosted: false })
      assert.deepStrictEqual(ok(address("/photos/", "127.0.0.1:9000", domains)), { bucket: "photos", key: undefined, virtualHosted: false })
      assert.deepStrictEqual(ok(address("/", "127.0.0.1:9000", [])), { bucket: undefined, key: undefined, virtualHosted: false })
      // A host that only ends with the domain's text is not under it.
      assert.deepStrictEqual(ok(address("/b/k", "evils3.example.test", domains)), { bucket: "b", key: "k", virtualHosted: false })
      assert.isTrue(Either.isLeft(address("/b/%zz", "h", domains)))
      assert.isTrue(Either.isLeft(address("/%zz", "photos.s3.example.test", domains)))
    }))
})

// The AWS example "Signature calculation: Transferring payload in multiple chunks" (PUT of 66560
// bytes of 'a' in 64 KiB chunks), and the same framing with signed trailing headers.
describe("aws-chunked signed payloads", () => {
  const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
  const docUser: SigV4.User = { name: "example", accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: Redacted.make(secret), buckets: "*" }
  const hmac = (k: crypto.BinaryLike, d: string) => crypto.createHmac("sha256", k).update(d).digest()
  const sha = (d: crypto.BinaryLike) => crypto.createHash("sha256").update(d).digest("hex")
  const key = hmac(hmac(hmac(hmac(`AWS4${secret}`, "20130524"), "us-east-1"), "s3"), "aws4_request")
  const scope = "20130524/us-east-1/s3/aws4_request"
  const data = Buffer.alloc(66560, "a")
  const chunks = [data.subarray(0, 65536), data.subarray(65536), Buffer.alloc(0)]
  const frame = (sigs: ReadonlyArray<string>, trailer = "") =>
    Buffer.concat(chunks.flatMap((c, i) => [Buffer.from(`${c.length.toString(16)};chunk-signature=${sigs[i]}\r\n`), c, Buffer.from(i < 2 ? "\r\n" : trailer === "" ? "\r\n" : `${trailer}\r\n`)]))
  const decode = (framed: Buffer, headers: Record<string, string>, payload: SigV4.Payload) =>
    decodeBody(Stream.fromIterable([framed.subarray(0, 1000), framed.subarray(1000)]), headers, payload, () => new Error("io") as never).pipe(
      Effect.flatMap((d) => Stream.runCollect(d.body)),
      Effect.map((c) => Buffer.concat(Array.from(c)))
    )

  it.effect("verifies the documented seed and chunk signatures", () =>
    Effect.gen(function*() {
      const seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
      const headers = {
        host: "s3.amazonaws.com",
        "x-amz-date": "20130524T000000Z",
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": "66560",
        "content-length": "66824",
        authorization: `AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/${scope},SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=${seed}`
      }
      const auth = SigV4.verify({ method: "PUT", rawPath: "/examplebucket/chunkObject.txt", rawQuery: "", headers, now: new Date("2013-05-24T00:00:30Z") }, (id) => (id === docUser.accessKeyId ? docUser : undefined))
      assert.isTrue(Either.isRight(auth))
      const payload = Either.getOrThrow(auth).payload
      const sigs = [
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"
      ]
      const framed = frame(sigs)
      assert.strictEqual(framed.length, 66824)
      assert.isTrue((yield* decode(framed, headers, payload)).equals(data))
      const tampered = Buffer.from(framed)
      tampered[30_000] = 0x62
      const e = yield* Effect.flip(decode(tampered, headers, payload))
      assert.strictEqual((e as { code?: string }).code, "SignatureDoesNotMatch")
    }))

  it.effect("verifies signed trailing headers (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER)", () =>
    Effect.gen(function*() {
      const amzDate = "20130524T000000Z"
      const crc = Buffer.alloc(4)
      crc.writeUInt32BE(zlib.crc32(data))
      const checksum = crc.toString("base64")
      const headers: Record<string, string> = {
        host: "s3.amazonaws.com",
        "x-amz-date": amzDate,
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": "66560",
        "x-amz-trailer": "x-amz-checksum-crc32"
      }
      const signed = "content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-trailer"
      const canonical = ["PUT", "/examplebucket/chunkObject.txt", "", ...signed.split(";").map((h) => `${h}:${headers[h]}`), "", signed, headers["x-amz-content-sha256"]].join("\n")
      const seed = hmac(key, `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${sha(canonical)}`).toString("hex")
      headers["authorization"] = `AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/${scope},SignedHeaders=${signed},Signature=${seed}`
      const sigs: Array<string> = []
      let previous = seed
      for (const c of chunks) {
        previous = hmac(key, `AWS4-HMAC-SHA256-PAYLOAD\n${amzDate}\n${scope}\n${previous}\n${sha("")}\n${sha(c)}`).toString("hex")
        sigs.push(previous)
      }
      const trailerSig = (value: string) => hmac(key, `AWS4-HMAC-SHA256-TRAILER\n${amzDate}\n${scope}\n${previous}\n${sha(`x-amz-checksum-crc32:${value}\n`)}`).toString("hex")
      const auth = SigV4.verify({ method: "PUT", rawPath: "/examplebucket/chunkObject.txt", rawQuery: "", headers, now: new Date("2013-05-24T00:00:30Z") }, (id) => (id === docUser.accessKeyId ? docUser : undefined))
      const payload = Either.getOrThrow(auth).payload
      assert.strictEqual(payload._tag === "StreamingSigned" && payload.trailer, true)
      const good = frame(sigs, `x-amz-checksum-crc32:${checksum}\r\nx-amz-trailer-signature:${trailerSig(checksum)}\r\n`)
      assert.isTrue((yield* decode(good, headers, payload)).equals(data))
      const forged = frame(sigs, `x-amz-checksum-crc32:AAAAAA==\r\nx-amz-trailer-signature:${trailerSig(checksum)}\r\n`)
      assert.strictEqual(((yield* Effect.flip(decode(forged, headers, payload))) as { code?: string }).code, "SignatureDoesNotMatch")
      const unsigned = frame(sigs, `x-amz-checksum-crc32:${checksum}\r\n`)
      assert.strictEqual(((yield* Effect.flip(decode(unsigned, headers, payload))) as { code?: string }).code, "SignatureDoesNotMatch")
      // Signed but wrong: the checksum itself is still verified.
      const wrongSum = frame(sigs, `x-amz-checksum-crc32:AAAAAA==\r\nx-amz-trailer-signature:${trailerSig("AAAAAA==")}\r\n`)
      assert.strictEqual(((yield* Effect.flip(decode(wrongSum, headers, payload))) as { code?: string }).code, "BadDigest")
    }))
})

describe("signing keys", () => {
  // The derived-key example of the AWS SigV4 documentation ("Examples of how to derive a signing key").
  const secret = Redacted.make("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")

  it("derives the documented key and reuses it for the same secret and scope", () => {
    const k = SigV4.signingKey(secret, "20120215", "us-east-1", "iam")
    assert.strictEqual(k.export().toString("hex"), "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d")
    assert.strictEqual(SigV4.signingKey(secret, "20120215", "us-east-1", "iam"), k)
  })

  it("keeps scopes and secrets apart, and a bounded number of scopes per secret", () => {
    const a = SigV4.signingKey(secret, "20120215", "us-east-1", "iam")
    const other = SigV4.signingKey(Redacted.make("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"), "20120215", "us-east-1", "iam")
    assert.notStrictEqual(other, a)
    assert.isTrue(other.equals(a))
    assert.isFalse(SigV4.signingKey(secret, "20120216", "us-east-1", "iam").equals(a))
    assert.isFalse(SigV4.signingKey(secret, "20120215", "eu-west-1", "iam").equals(a))
    for (let d = 1; d <= 20; d++) SigV4.signingKey(secret, `201203${String(d).padStart(2, "0")}`, "us-east-1", "s3")
    // Evicted by the 20 newer scopes: derived again, equal but not the cached object.
    const again = SigV4.signingKey(secret, "20120215", "us-east-1", "iam")
    assert.notStrictEqual(again, a)
    assert.isTrue(again.equals(a))
  })
})
