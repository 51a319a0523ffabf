import { assert, describe, layer } from "@effect/vitest"
import { Storage } from "@google-cloud/storage"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as http from "node:http"
import * as GcsServer from "../src/GcsServer.js"

const BUCKET = "server-test"
const random = (n: number) => crypto.randomBytes(n)
const sha256 = (b: Uint8Array) => crypto.createHash("sha256").update(b).digest("base64")
const md5 = (b: Uint8Array) => crypto.createHash("md5").update(b).digest("base64")

const storageOf = (server: GcsServer.GcsServerInfo) =>
  new Storage({ apiEndpoint: server.endpoint, projectId: server.projectId, retryOptions: { autoRetry: false } })

/** The status and Google error `reason` of a failed client call. */
const failure = (p: Promise<unknown>) =>
  Effect.promise(() =>
    p.then(
      () => ({ code: 0, reason: "succeeded", message: "" }),
      (e: { code?: unknown; errors?: Array<{ reason?: string }>; message?: string }) => ({
        code: typeof e.code === "number" ? e.code : Number(e.code),
        reason: e.errors?.[0]?.reason ?? "",
        message: e.message ?? ""
      })
    )
  )

const raw = (url: string, init?: RequestInit) =>
  Effect.promise(async () => {
    const r = await fetch(url, init)
    const body = Buffer.from(await r.arrayBuffer())
    return { status: r.status, headers: r.headers, body }
  })

describe("GcsServer", () => {
  layer(GcsServer.layer({ buckets: [BUCKET], rewriteStep: 64 * 1024, logRequests: true }))((it) => {
    it.effect("multipart upload, download, metadata with hashes", () =>
      Effect.gen(function*() {
        const server = yield* GcsServer.GcsServer
        const file = storageOf(server).bucket(BUCKET).file("dir/a.bin")
        const body = random(10_000)
        yield* Effect.promise(() => file.save(body, { resumable: false, contentType: "application/x-a", metadata: { metadata: { k: "v" } } }))
        const [bytes] = yield* Effect.promise(() => file.download())
        assert.isTrue(bytes.equals(body))
        const [meta] = yield* Effect.promise(() => file.getMetadata())
        assert.strictEqual(meta.size, "10000")
        assert.strictEqual(meta.md5Hash, md5(body))
        assert.strictEqual(meta.contentType, "application/x-a")
        assert.deepStrictEqual(meta.metadata, { k: "v" })
        assert.isString(meta.crc32c)
        const missing = yield* failure(storageOf(server).bucket(BUCKET).file("nope").download())
        assert.strictEqual(missing.code, 404)
        assert.include(missing.message, "No such object")
      }))

    it.effect("resumable upload in chunks, and a session resumed after a dropped connection", () =>
      Effect.gen(function*() {
        const server = yield* GcsServer.GcsServer
        const file = storageOf(server).bucket(BUCKET).file("resumable.bin")
        const body = random(3 * 256 * 1024 + 5)
        yield* Effect.promise(() => file.save(body, { resumable: true, chunkSize: 256 * 1024 }))
        const [bytes] = yield* Effect.promise(() => file.download())
        assert.isTrue(bytes.equals(body))

        // Start a session by hand, drop the connection midway, ask where to resume, finish.
        const start = yield* raw(`${server.endpoint}/upload/storage/v1/b/${BUCKET}/o?uploadType=resumable&name=dropped.bin`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ contentType: "application/x-dropped" })
        })
        const location = start.headers.get("location")!
        assert.include(location, "upload_id=")
        const whole = random(200_000)
        yield* Effect.async<void>((resume) => {
          const req = http.request(location, { method: "PUT", headers: { "content-range": `bytes 0-${whole.length - 1}/${whole.length}`, "content-length": whole.length } })
          req.on("error", () => resume(Effect.void))
          req.write(whole.subarray(0, 100_000), () => setTimeout(() => req.destroy(), 100))
        })
        const status = yield* raw(location, { method: "PUT", headers: { "content-range": `bytes */${whole.length}` } })
        assert.strictEqual(status.status, 308)
        const have = Number(/bytes=0-(\d+)/.exec(status.headers.get("range") ?? "")![1]) + 1
        assert.isAbove(have, 0)
        assert.isAtMost(have, 100_000)
        const done = yield* raw(location, {
          method: "PUT",
          headers: { "content-range": `bytes ${have}-${whole.length - 1}/${whole.length}` },
          body: whole.subarray(have)
        })
        assert.strictEqual(done.status, 200)
        const [got] = yield* Effect.promise(() => storageOf(server).bucket(BUCKET).file("dropped.bin").download())
        assert.isTrue(got.equals(whole))
      }))

    it.effect("ranged reads: bounded, suffix, unsatisfiable (416)", () =>
      Effect.gen(function*() {
        const server = yield* GcsServer.GcsServer
        const file = storageOf(server).bucket(BUCKET).file("ranged.bin")
        const body = random(1000)
        yield* Effect.promise(() => file.save(body, { resumable: false }))
        const [part] = yield* Effect.promise(() => file.download({ start: 10, end: 19 }))
        assert.isTrue(part.equals(body.subarray(10, 20)))
        const url = `${server.endpoint}/storage/v1/b/${BUCKET}/o/ranged.bin?alt=media`
        const suffix = yield* raw(url, { headers: { range: "bytes=-10" } })
        assert.strictEqual(suffix.status, 206)
        assert.strictEqual(suffix.headers.get("content-range"), "bytes 990-999/1000")
        assert.isTrue(suffix.body.equals(body.subarray(990)))
        const bad = yield* raw(url, { headers: { range: "bytes=1000-" } })
        assert.strictEqual(bad.status, 416)
        const err = JSON.parse(bad.body.toString()) as { error: { code: number; errors: Array<{ reason: string }> } }
        assert.strictEqual(err.error.code, 416)
        assert.strictEqual(err.error.errors[0]!.reason, "requestedRangeNotSatisfiable")
      }))

    it.effect("lists with prefix, delimiter and page tokens", () =>
      Effect.gen(function*() {
        const server = yield* GcsServer.GcsServer
        const bucket = storageOf(server).bucket(BUCKET)
        const names = ["l/a", "l/b/1", "l/b/2", "l/c", "l/d/x"]
        yield* Effect.forEach(names, (n) => Effect.promise(() => bucket.file(n).save(Buffer.from(n), { resumable: false })), { discard: true })
        const [files] = yield* Effect.promise(() => bucket.getFiles({ prefix: "l/" }))
        assert.deepStrictEqual(files.map((f) => f.name), names)
        const [top, , api] = yield* Effect.promise(() => bucket.getFiles({ prefix: "l/", delimiter: "/", autoPaginate: false }))
        assert.deepStrictEqual(top.map((f) => f.name), ["l/a", "l/c"])
        assert.deepStrictEqual((api as { prefixes?: Array<string> }).prefixes, ["l/b/", "l/d/"])
        const seen: Array<string> = []
        let token: string | undefined
        let pages = 0
        do {
          const [page, next, resp] = yield* Effect.promise(() =>
            bucket.getFiles({ prefix: "l/", delimiter: "/", maxResults: 1, autoPaginate: false, ...(token === undefined ? {} : { pageToken: token }) })
          )
          seen.push(...page.map((f) => f.name), ...((resp as { prefixes?: Array<string> }).prefixes ?? []))
          token = (next as { pageToken?: string } | null)?.pageToken
          pages++
        } while (token !== undefined && pages < 20)
        assert.deepStrictEqual(seen, ["l/a", "l/b/", "l/c", "l/d/"])
        assert.strictEqual(pages, 4)
      }))

    it.effect("CSEK: only the key's SHA-256 is kept; missing or wrong keys are refused with 400", () =>
      Effect.gen(function*() {
        const server = yield* GcsServer.GcsServer
        const key = random(32)
        const wrong = random(32)
        const storage = storageOf(server)
        const body = random(5000)
        yield* Effect.promise(() => storage.bucket(BUCKET).file("csek.bin", { encryptionKey: key }).save(body, { resumable: false }))
        assert.strictEqual(server.storedKeySha256(BUCKET, "csek.bin"), sha256(key))
        const stored = (yield* server.storedBytes(BUCKET, "csek.bin"))!
        assert.strictEqual(stored.length, body.length)
        assert.isFalse(Buffer.from(stored).equals(body), "bytes at rest are not the plaintext")
        const [ok] = yield* Effect.promise(() => storage.bucket(BUCKET).file("csek.bin", { encryptionKey: key }).download())
        assert.isTrue(ok.equals(body))
        const [partial] = yield* Effect.promise(() => storage.bucket(BUCKET).file("csek.bin", { encryptionKey: key }).download({ start: 17, end: 4000 }))
        assert.isTrue(partial.equals(body.subarray(17, 4001)), "ranged CSEK read from an unaligned offset")
        const noKey = yield* failure(storage.bucket(BUCKET).file("csek.bin").download())
        assert.strictEqual(noKey.code, 400)
        assert.include(noKey.message, "customer-supplied encryption key")
        const wrongKey = yield* failure(storage.bucket(BUCKET).file("csek.bin", { encryptionKey: wrong }).download())
        assert.strictEqual(wrongKey.code, 400)
        assert.include(wrongKey.message, "incorrect")
        const [meta] = yield* Effect.promise(() => storage.bucket(BUCKET).file("csek.bin").getMetadata())
        assert.deepStrictEqual(meta.customerEncryption, { encryptionAlgorithm: "AES256", keySha256: sha256(key) })
        assert.isUndefined(meta.md5Hash, "no MD5 without the key")
        // A key of the wrong length never reaches storage.
        const short = yield* raw(`${server.endpoint}/upload/storage/v1/b/${BUCKET}/o?uploadType=media&name=short`, {
          method: "POST",
          headers: { "x-goog-encryption-algorithm": "AES256", "x-goog-encryption-key": random(16).toString("base64"), "x-goog-encryption-key-sha256": "x" },
          body: "abc"
        })
        assert.strictEqual(short.status, 400)
        assert.include(short.body.toString(), "customerEncryptionKeyFormatIsInvalid")
        // The log never holds a key.
        for (const r of server.requests) {
          for (const v of Object.values(r.headers)) {
            assert.notInclude(v, key.toString("base64"))
          }
        }
      }))

    it.effect("CSEK: key rotation by rewrite, and rewrite without the source key refused", () =>
      Effect.gen(function*() {
        const server = yield* GcsServer.GcsServer
        const storage = storageOf(server)
        const k1 = random(32)
        const k2 = random(32)
        const body = random(300_000)
        const f1 = storage.bucket(BUCKET).file("rotate.bin", { encryptionKey: k1 })
        yield* Effect.promise(() => f1.save(body, { resumable: false }))
        const refused = yield* failure(storage.bucket(BUCKET).file("rotate.bin").copy(storage.bucket(BUCKET).file("rotate-copy.bin")))
        assert.strictEqual(refused.code, 400)
        yield* Effect.promise(() => f1.rotateEncryptionKey({ encryptionKey: k2 }))
        assert.strictEqual(server.storedKeySha256(BUCKET, "rotate.bin"), sha256(k2))
        const [got] = yield* Effect.promise(() => storage.bucket(BUCKET).file("rotate.bin", { encryptionKey: k2 }).download())
        assert.isTrue(got.equals(body))
        const old = yield* failure(storage.bucket(BUCKET).file("rotate.bin", { encryptionKey: k1 }).download())
        assert.strictEqual(old.code, 400)
        // 300 KB over 64 KiB steps: the client looped on the rewrite token.
        assert.isAtLeast(server.requests.filter((r) => r.url.includes("rewriteToken=")).length, 4)
      }))

    it.effect("CMEK: kmsKeyName recorded and echoed, per object and as the bucket default", () =>
      Effect.gen(function*() {
        const server = yield* GcsServer.GcsServer
        const storage = storageOf(server)
        const kms = "projects/p/locations/us/keyRings/r/cryptoKeys/k1"
        yield* Effect.promise(() => storage.bucket(BUCKET).file("cmek.bin", { kmsKeyName: kms }).save(random(10), { resumable: false }))
        const [meta] = yield* Effect.promise(() => storage.bucket(BUCKET).file("cmek.bin").getMetadata())
        assert.strictEqual(meta.kmsKeyName, `${kms}/cryptoKeyVersions/1`)
        const dflt = "projects/p/locations/us/keyRings/r/cryptoKeys/default"
        yield* Effect.promise(() => storage.createBucket("cmek-default", { encryption: { defaultKmsKeyName: dflt } } as never))
        const [bm] = yield* Effect.promise(() => storage.bucket("cmek-default").getMetadata())
        assert.strictEqual(bm.encryption?.defaultKmsKeyName, dflt)
        yield* Effect.promise(() => storage.bucket("cmek-default").file("x").save(random(10), { resumable: false }))
        const [xm] = yield* Effect.promise(() => storage.bucket("cmek-default").file("x").getMetadata())
        assert.strictEqual(xm.kmsKeyName, `${dflt}/cryptoKeyVersions/1`)
        const dup = yield* failure(storage.createBucket("cmek-default"))
        assert.strictEqual(dup.code, 409)
      }))

    it.effect("encryption enforcement configs refuse the forbidden kind of key; rewrite can move an object to CMEK", () =>
      Effect.gen(function*() {
        const server = yield* GcsServer.GcsServer
        const storage = storageOf(server)
        yield* server.createBucket("enforced", {
          customerSuppliedEncryptionEnforcementConfig: { restrictionMode: "FullyRestricted" },
          googleManagedEncryptionEnforcementConfig: { restrictionMode: "FullyRestricted" }
        })
        const csek = yield* failure(storage.bucket("enforced").file("a", { encryptionKey: random(32) }).save(random(5), { resumable: false }))
        assert.strictEqual(csek.code, 412)
        const plain = yield* failure(storage.bucket("enforced").file("b").save(random(5), { resumable: false }))
        assert.strictEqual(plain.code, 412)
        const kms = "projects/p/locations/us/keyRings/r/cryptoKeys/e"
        yield* Effect.promise(() => storage.bucket("enforced").file("c", { kmsKeyName: kms }).save(random(5), { resumable: false }))
        assert.deepStrictEqual(server.objectNames("enforced"), ["c"])
        const [bm] = yield* Effect.promise(() => storage.bucket("enforced").getMetadata())
        assert.deepStrictEqual((bm.encryption as Record<string, unknown>)["customerSuppliedEncryptionEnforcementConfig"], { restrictionMode: "FullyRestricted" })
        // Rewrite a Google-managed object into a CMEK one.
        const src = storage.bucket(BUCKET).file("to-cmek")
        yield* Effect.promise(() => src.save(random(100), { resumable: false }))
        yield* Effect.promise(() => src.copy(storage.bucket(BUCKET).file("to-cmek"), { destinationKmsKeyName: kms }))
        const [m] = yield* Effect.promise(() => src.getMetadata())
        assert.strictEqual(m.kmsKeyName, `${kms}/cryptoKeyVersions/1`)
      }))

    it.effect("ifGenerationMatch preconditions hold on write, metadata patch and delete", () =>
      Effect.gen(function*() {
        const server = yield* GcsServer.GcsServer
        const file = storageOf(server).bucket(BUCKET).file("once.bin")
        yield* Effect.promise(() => file.save(Buffer.from("1"), { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } }))
        const again = yield* failure(file.save(Buffer.from("2"), { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } }))
        assert.deepStrictEqual([again.code, again.reason], [412, "conditionNotMet"])
        const [meta] = yield* Effect.promise(() => file.getMetadata())
        const [patched] = yield* Effect.promise(() => file.setMetadata({ metadata: { a: "1" } }, { ifGenerationMatch: Number(meta.generation) }))
        assert.deepStrictEqual(patched.metadata, { a: "1" })
        assert.strictEqual(patched.metageneration, "2")
        const [cleared] = yield* Effect.promise(() => file.setMetadata({ metadata: { a: null, b: "2" } }))
        assert.deepStrictEqual(cleared.metadata, { b: "2" })
        const stale = yield* failure(file.delete({ ifGenerationMatch: Number(meta.generation) + 1 }))
        assert.strictEqual(stale.code, 412)
        yield* Effect.promise(() => file.delete())
        const gone = yield* failure(file.getMetadata())
        assert.strictEqual(gone.code, 404)
      }))

    it.effect("compose joins sources (with a customer key) in order", () =>
      Effect.gen(function*() {
        const server = yield* GcsServer.GcsServer
        const bucket = storageOf(server).bucket(BUCKET)
        const key = random(32)
        const parts = [random(1000), random(17), random(5000)]
        const files = parts.map((_, i) => bucket.file(`comp/${i}`, { encryptionKey: key }))
        yield* Effect.forEach(files, (f, i) => Effect.promise(() => f.save(parts[i]!, { resumable: false })), { discard: true })
        const dest = bucket.file("comp/all", { encryptionKey: key })
        yield* Effect.promise(() => bucket.combine(files, dest))
        const [got] = yield* Effect.promise(() => dest.download())
        assert.isTrue(got.equals(Buffer.concat(parts)))
        const [meta] = yield* Effect.promise(() => dest.getMetadata())
        assert.strictEqual(meta.componentCount, 3)
        assert.strictEqual(meta.customerEncryption?.keySha256, sha256(key))
        const noKey = yield* failure(bucket.combine([bucket.file("comp/0"), bucket.file("comp/1")], bucket.file("comp/bad")))
        assert.strictEqual(noKey.code, 400)
      }))
  })
})
