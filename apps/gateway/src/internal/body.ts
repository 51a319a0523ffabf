import * as BackgroundHash from "@objcrypt/core/BackgroundHash"
import { Effect, Stream } from "effect"
import * as crypto from "node:crypto"
import * as Checksums from "../Checksums.js"
import { errors } from "../S3Error.js"
import type { S3Error } from "../S3Error.js"
import * as SigV4 from "../SigV4.js"

const checksumAlgorithm = (header: string): string | undefined => {
  const m = /^x-amz-checksum-([a-z0-9]+)$/.exec(header)
  return m === null ? undefined : m[1]
}

type Checker = { readonly update: (b: Uint8Array) => void; readonly digest: () => string }

const checker = (a: Checksums.Algorithm): Checker => {
  const c = Checksums.make(a)
  return { update: c.update, digest: () => Buffer.from(c.digest()).toString("base64") }
}

interface Expectation {
  readonly name: string
  readonly algorithm: Checksums.Algorithm
  readonly checker: Checker
  value: string | undefined
  readonly onMismatch: () => S3Error
}

const MAX_LINE = 4096

export interface DecodedBody {
  readonly body: Stream.Stream<Uint8Array, S3Error>
  readonly length: number | undefined
  /**
   * The body's MD5 (hex) once it has been read in full, when the request carried a `Content-MD5`
   * (then verified against it): a write that needs the MD5 itself (an S3 ETag) can take it from here
   * instead of hashing the body a second time.
   */
  readonly md5Hex: () => string | undefined
  /** The `x-amz-checksum-*` values, filled in once the body has been read and each one matched. */
  readonly verified: Readonly<Partial<Record<Checksums.Algorithm, string>>>
  /** The checksum algorithms the request carries (header or trailer). */
  readonly algorithms: ReadonlyArray<Checksums.Algorithm>
}

/**
 * Turns a request body into the object's bytes: decodes `aws-chunked` (checking chunk signatures
 * of signed streams), and verifies the payload SHA-256, `Content-MD5`, `x-amz-checksum-*` (header
 * or trailer) and the announced length. A mismatch fails the stream at its end, so the write it
 * feeds is abandoned and nothing is stored.
 */
export const decodeBody = <E>(
  raw: Stream.Stream<Uint8Array, E>,
  headers: Readonly<Record<string, string>>,
  payload: SigV4.Payload,
  mapError: (e: E) => S3Error
): Effect.Effect<DecodedBody, S3Error> =>
  Effect.gen(function*() {
    const chunked = payload._tag === "StreamingSigned" || payload._tag === "StreamingUnsigned" ||
      (headers["content-encoding"] ?? "").split(",").map((s) => s.trim()).includes("aws-chunked")
    const lengthHeader = chunked ? headers["x-amz-decoded-content-length"] : headers["content-length"]
    if (lengthHeader !== undefined && !/^\d+$/.test(lengthHeader)) return yield* errors.invalidArgument("invalid content length")
    const length = lengthHeader === undefined ? undefined : Number(lengthHeader)
    if (chunked && length === undefined) return yield* errors.missingContentLength("x-amz-decoded-content-length is required with aws-chunked")

    const expectations: Array<Expectation> = []
    // Content-MD5 and the payload SHA-256 are hashed on core's hashing worker (the body's bytes are
    // copied into shared slabs as they pass), not on this thread, which decrypts, encrypts and
    // serves; the checksums below are CRCs (zlib's CRC32 is native) or rare.
    const md5 = headers["content-md5"]
    if (md5 !== undefined && Buffer.from(md5, "base64").length !== 16) return yield* errors.invalidDigest("the Content-MD5 you specified was invalid")
    for (const [h, v] of Object.entries(headers)) {
      const alg = checksumAlgorithm(h)
      if (alg === undefined || alg === "algorithm" || alg === "type" || alg === "mode") continue
      if (!Checksums.isAlgorithm(alg)) return yield* errors.invalidRequest(`x-amz-checksum-${alg} is not a checksum algorithm S3 supports`)
      if (!Checksums.isWellFormed(alg, v)) return yield* errors.invalidRequest(`value for x-amz-checksum-${alg} header is invalid`)
      expectations.push({ name: h, algorithm: alg, checker: checker(alg), value: v, onMismatch: () => errors.badDigest(`the ${alg.toUpperCase()} you specified did not match the calculated checksum`) })
    }
    let trailer: Expectation | undefined
    const trailerName = headers["x-amz-trailer"]?.trim().toLowerCase()
    if (trailerName !== undefined && trailerName !== "") {
      const alg = checksumAlgorithm(trailerName)
      if (alg === undefined || !Checksums.isAlgorithm(alg)) return yield* errors.invalidRequest(`unsupported trailer ${trailerName}`)
      trailer = { name: trailerName, algorithm: alg, checker: checker(alg), value: undefined, onMismatch: () => errors.badDigest(`the ${alg.toUpperCase()} you specified did not match the calculated checksum`) }
      expectations.push(trailer)
    }
    if (new Set(expectations.map((e) => e.algorithm)).size > 1) {
      return yield* errors.invalidRequest("expecting a single x-amz-checksum- header; multiple checksum types are not allowed")
    }
    const wantSha = payload._tag === "Sha256" && !chunked ? payload.hex : undefined

    const verified: Partial<Record<Checksums.Algorithm, string>> = {}
    let md5Hex: string | undefined
    let total = 0
    // One read of the body: created when it starts, given back when it ends however it ends.
    type Hashes = { readonly md5: BackgroundHash.BackgroundHash | undefined; readonly sha: BackgroundHash.BackgroundHash | undefined }
    const observe = (h: Hashes, b: Uint8Array): Effect.Effect<Uint8Array, S3Error> => {
      total += b.length
      if (length !== undefined && total > length) return Effect.fail(errors.incompleteBody("the request body is longer than its announced length"))
      for (const e of expectations) e.checker.update(b)
      const waits = [h.md5?.update(b), h.sha?.update(b)].filter((p) => p !== undefined)
      return waits.length === 0 ? Effect.succeed(b) : Effect.as(Effect.promise(() => Promise.all(waits)), b)
    }
    const finish = (h: Hashes): Effect.Effect<void, S3Error> =>
      Effect.gen(function*() {
        if (length !== undefined && total !== length) return yield* errors.incompleteBody("you did not provide the number of bytes specified by the Content-Length HTTP header")
        const [md5Digest, shaDigest] = yield* Effect.promise(() => Promise.all([h.md5?.digest(), h.sha?.digest()]))
        if (shaDigest !== undefined && wantSha !== undefined && !crypto.timingSafeEqual(shaDigest, Buffer.from(wantSha, "hex"))) {
          return yield* errors.contentSha256Mismatch("the provided 'x-amz-content-sha256' header does not match what was computed")
        }
        if (md5Digest !== undefined && md5 !== undefined) {
          if (!Checksums.equal(md5Digest.toString("base64"), md5)) return yield* errors.badDigest("the Content-MD5 you specified did not match what we received")
          md5Hex = md5Digest.toString("hex")
        }
        const err = checkExpectations()
        if (err !== undefined) return yield* err
      })
    const checkExpectations = (): S3Error | undefined => {
      for (const e of expectations) {
        if (e.value === undefined) return errors.invalidRequest(`the trailer ${e.name} is missing`)
        if (!Checksums.isWellFormed(e.algorithm, e.value)) return errors.invalidRequest(`value for ${e.name} trailing header is invalid`)
        if (!Checksums.equal(e.checker.digest(), e.value)) return e.onMismatch()
        verified[e.algorithm] = e.value
      }
      return undefined
    }

    const source = raw.pipe(Stream.mapError(mapError))
    const decoded = chunked ? source.pipe(dechunk(payload, (name, value) => {
      if (trailer !== undefined && name === trailer.name) trailer.value = value
    })) : source
    const body = Stream.unwrapScoped(
      Effect.map(
        Effect.acquireRelease(
          Effect.sync((): Hashes => ({
            md5: md5 === undefined ? undefined : BackgroundHash.make("md5"),
            sha: wantSha === undefined ? undefined : BackgroundHash.make("sha256")
          })),
          // After a digest this is a no-op; after a failure or an interruption it frees the slabs.
          (h) => Effect.sync(() => {
            h.md5?.dispose()
            h.sha?.dispose()
          })
        ),
        (h) => decoded.pipe(Stream.mapEffect((b) => observe(h, b)), Stream.concat(Stream.execute(finish(h))))
      )
    )
    return {
      body,
      length,
      verified,
      md5Hex: () => md5Hex,
      algorithms: expectations.map((e) => e.algorithm)
    }
  })

/** Decodes `aws-chunked` framing: `hex-size[;chunk-signature=sig]\r\n data \r\n … 0…\r\n trailers \r\n`. */
const dechunk = (payload: SigV4.Payload, onTrailer: (name: string, value: string) => void) =>
(self: Stream.Stream<Uint8Array, S3Error>): Stream.Stream<Uint8Array, S3Error> =>
  Stream.suspend(() => {
    type State = "size" | "data" | "crlf" | "trailer" | "done"
    let state: State = "size"
    let line: Array<number> = []
    let remaining = 0
    let crlfSeen = 0
    let chunkSig: string | undefined
    let chunkHash: crypto.Hash | undefined
    let trailerText = ""
    let trailerSig: string | undefined
    let previous = payload._tag === "StreamingSigned" ? payload.seedSignature : ""
    const signed = payload._tag === "StreamingSigned" ? payload : undefined
    const bad = (m: string) => errors.incompleteBody(`malformed aws-chunked body: ${m}`)

    const endChunk = (): S3Error | undefined => {
      if (signed === undefined) return undefined
      const digest = (chunkHash ?? crypto.createHash("sha256")).digest("hex")
      const expected = SigV4.chunkSignature(signed, previous, digest)
      if (chunkSig === undefined || !SigV4.signatureMatches(expected, chunkSig)) {
        return errors.signatureDoesNotMatch("the chunk signature does not match")
      }
      previous = chunkSig
      return undefined
    }

    const onLine = (text: string): S3Error | undefined => {
      if (state === "size") {
        const [size, ...exts] = text.split(";")
        if (!/^[0-9a-fA-F]{1,16}$/.test(size ?? "")) return bad("bad chunk size")
        remaining = parseInt(size!, 16)
        chunkSig = exts.map((e) => e.trim()).find((e) => e.startsWith("chunk-signature="))?.slice("chunk-signature=".length)
        if (signed !== undefined && chunkSig === undefined) return bad("missing chunk signature")
        chunkHash = signed === undefined ? undefined : crypto.createHash("sha256")
        if (remaining === 0) {
          const err = endChunk()
          if (err !== undefined) return err
          state = "trailer"
        } else {
          state = "data"
        }
        return undefined
      }
      // trailer section
      if (text === "") {
        state = "done"
        if (signed?.trailer === true) {
          // The trailing headers are signed too, chained from the final chunk's signature.
          const expected = SigV4.trailerSignature(signed, previous, trailerText)
          if (trailerSig === undefined || !SigV4.signatureMatches(expected, trailerSig)) {
            return errors.signatureDoesNotMatch("the trailer signature does not match")
          }
        }
        return undefined
      }
      const i = text.indexOf(":")
      if (i <= 0) return bad("bad trailer")
      const name = text.slice(0, i).trim().toLowerCase()
      const value = text.slice(i + 1).trim()
      if (name === "x-amz-trailer-signature") {
        trailerSig = value
      } else {
        if (trailerSig !== undefined) return bad("a trailer follows the trailer signature")
        trailerText += `${name}:${value}\n`
        onTrailer(name, value)
      }
      return undefined
    }

    return self.pipe(
      Stream.mapConcatEffect((buf: Uint8Array) => {
        const out: Array<Uint8Array> = []
        let i = 0
        while (i < buf.length) {
          switch (state) {
            case "data": {
              const n = Math.min(remaining, buf.length - i)
              const piece = buf.subarray(i, i + n)
              chunkHash?.update(piece)
              out.push(piece)
              remaining -= n
              i += n
              if (remaining === 0) {
                state = "crlf"
                crlfSeen = 0
              }
              break
            }
            case "crlf": {
              const expect = crlfSeen === 0 ? 13 : 10
              if (buf[i] !== expect) return Effect.fail(bad("chunk not followed by CRLF"))
              i++
              if (++crlfSeen === 2) {
                const err = endChunk()
                if (err !== undefined) return Effect.fail(err)
                state = "size"
              }
              break
            }
            case "size":
            case "trailer": {
              const b = buf[i++]!
              if (b === 10 && line[line.length - 1] === 13) {
                line.pop()
                const err = onLine(Buffer.from(line).toString("latin1"))
                line = []
                if (err !== undefined) return Effect.fail(err)
              } else {
                line.push(b)
                if (line.length > MAX_LINE) return Effect.fail(bad("line too long"))
              }
              break
            }
            case "done":
              if (buf[i] === 13 || buf[i] === 10) {
                i++
                break
              }
              return Effect.fail(bad("data after the final chunk"))
          }
        }
        return Effect.succeed(out)
      }),
      Stream.concat(Stream.suspend(() => (state === "done" ? Stream.empty : Stream.fail(bad("the body ended early")))))
    )
  })
