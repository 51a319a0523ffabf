/**
 * A parallel upload whose process is killed (SIGKILL, so no cleanup runs) against the test-kit
 * GCS server: nothing is visible under the key, its part objects stay under the hidden prefix,
 * and a sweep removes them once they are older than the threshold, never younger ones.
 */
import { assert, describe, it } from "@effect/vitest"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import * as GcsServer from "@objcrypt/test-kit/GcsServer"
import { Effect, Stream } from "effect"
import * as cp from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import * as url from "node:url"
import * as GcsBuckets from "../src/GcsBuckets.js"
import * as GcsObjectStore from "../src/GcsObjectStore.js"

const KiB = 1024
const PART = 64 * KiB

// The child runs the driver from its TypeScript sources (Node strips the types) and streams an
// endless body in parts of 64 KiB; it says "uploading" once parts are going up.
const WRITER = `
import { registerHooks } from "node:module"
registerHooks({ resolve(s, c, next) {
  const ctx = { ...c, conditions: ["@objcrypt/source", ...(c.conditions ?? [])] }
  try { return next(s, ctx) } catch (e) { if (s.startsWith(".") && s.endsWith(".js")) return next(s.slice(0, -3) + ".ts", ctx); throw e }
} })
const [driver, effect, endpoint, bucket] = process.argv.slice(2)
const { make } = await import(driver)
const { Effect, Stream, Scope } = await import(effect)
const scope = Effect.runSync(Scope.make())
const store = await Effect.runPromise(Scope.extend(make({ bucket, apiEndpoint: endpoint, projectId: "objcrypt-test", partSize: ${PART}, concurrency: 2 }), scope))
let n = 0
const endless = Stream.repeatEffect(Effect.sync(() => { if (++n === 8) process.stdout.write("uploading\\n"); return Buffer.alloc(${PART}, n & 255) }))
await Effect.runPromise(store.put("killed/object", endless.pipe(Stream.tap(() => Effect.sleep("5 millis")))))
`

const runWriter = (endpoint: string, bucket: string, seen: () => number) =>
  Effect.gen(function*() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-gcs-kill-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
    const script = path.join(dir, "writer.mjs")
    fs.writeFileSync(script, WRITER)
    const driver = url.pathToFileURL(path.join(import.meta.dirname, "..", "src", "GcsObjectStore.ts")).href
    const effect = url.pathToFileURL(path.join(path.dirname(createRequire(import.meta.url).resolve("effect/package.json")), "dist", "esm", "index.js")).href
    const child = cp.spawn(process.execPath, [script, driver, effect, endpoint, bucket], {
      stdio: ["ignore", "pipe", "pipe"],
      cwd: path.join(import.meta.dirname, "..")
    })
    yield* Effect.addFinalizer(() => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL")))
    let stderr = ""
    child.stderr.on("data", (d) => (stderr += String(d)))
    yield* Effect.async<void, Error>((resume) => {
      child.stdout.on("data", (d) => String(d).includes("uploading") && resume(Effect.void))
      child.on("exit", (code) => resume(Effect.fail(new Error(`writer exited (${code}) before the kill: ${stderr}`))))
    }).pipe(Effect.timeout("60 seconds"))
    // Wait until several part objects are on the server, so the kill lands mid-upload.
    for (let i = 0; i < 500 && seen() < 3; i++) yield* Effect.sleep("10 millis")
    child.kill("SIGKILL")
    yield* Effect.async<void>((resume) => {
      if (child.exitCode !== null || child.signalCode !== null) resume(Effect.void)
      else child.on("exit", () => resume(Effect.void))
    })
    assert.strictEqual(child.signalCode, "SIGKILL")
  })

describe("GcsObjectStore: uploads of a killed process", () => {
  it.live("leave nothing visible; their parts are swept once stale, fresh ones are kept", () =>
    Effect.scoped(
      Effect.gen(function*() {
        const server = yield* GcsServer.make({})
        const bucket = `objcrypt-${crypto.randomBytes(5).toString("hex")}`
        const base = { bucket, apiEndpoint: server.endpoint, projectId: server.projectId, partSize: PART }
        const first = yield* GcsObjectStore.make(base)
        yield* Effect.orDie(GcsBuckets.createBucket(first.storage, bucket))
        const parts = () => server.objectNames(bucket).filter((n) => n.startsWith(first.uploadPrefix))

        yield* runWriter(server.endpoint, bucket, () => parts().length)
        const left = parts()
        assert.isAtLeast(left.length, 3, "the killed upload left part objects behind")
        assert.strictEqual(new Set(left.map((n) => n.slice(first.uploadPrefix.length).split("/")[0])).size, 1, "all from one upload")
        // Nothing visible: no object under the key, nothing listed.
        assert.strictEqual((yield* Effect.flip(first.head("killed/object")))._tag, "ObjectNotFound")
        assert.deepStrictEqual((yield* first.list()).objects, [])

        // A store with the default threshold (24 hours) uploads in parallel and leaves the fresh
        // parts alone: they could be another process's upload in progress.
        const body = crypto.randomBytes(3 * PART + 5)
        yield* first.put("fresh", Stream.make(body))
        assert.deepStrictEqual(parts(), left)
        assert.deepStrictEqual(yield* first.sweepUploads({ olderThan: "1 hour" }), { uploads: 0, objects: 0, kept: 1 })
        assert.deepStrictEqual(parts(), left)

        // Once stale, a sweep on demand removes every part of that upload and nothing else.
        yield* Effect.sleep("20 millis")
        assert.deepStrictEqual(yield* first.sweepUploads({ olderThan: "10 millis" }), { uploads: 1, objects: left.length, kept: 0 })
        assert.deepStrictEqual(parts(), [])
        assert.deepStrictEqual(server.objectNames(bucket), ["fresh"])
        assert.isTrue(Buffer.from((yield* ObjectStore.readAll(first, "fresh")).bytes).equals(body))
      })
    ), 120_000)

  it.live("the sweep at a store's first parallel upload removes stale parts (staleUploadAge), and only once", () =>
    Effect.scoped(
      Effect.gen(function*() {
        const server = yield* GcsServer.make({ logRequests: true })
        const bucket = `objcrypt-${crypto.randomBytes(5).toString("hex")}`
        const base = { bucket, apiEndpoint: server.endpoint, projectId: server.projectId, partSize: PART }
        const setup = yield* GcsObjectStore.make(base)
        yield* Effect.orDie(GcsBuckets.createBucket(setup.storage, bucket))
        const parts = () => server.objectNames(bucket).filter((n) => n.startsWith(setup.uploadPrefix))
        yield* runWriter(server.endpoint, bucket, () => parts().length)
        assert.isAtLeast(parts().length, 3)
        yield* Effect.sleep("20 millis")

        const off = yield* GcsObjectStore.make({ ...base, staleUploadAge: false })
        yield* off.put("a", Stream.make(crypto.randomBytes(2 * PART + 1)))
        assert.isAtLeast(parts().length, 3, "staleUploadAge: false sweeps nothing")

        const store = yield* GcsObjectStore.make({ ...base, staleUploadAge: "10 millis" })
        // A single-part put writes no parts and does not sweep.
        yield* store.put("small", Stream.make(crypto.randomBytes(10)))
        assert.isAtLeast(parts().length, 3)
        const listing = () => server.requests.filter((r) => r.method === "GET" && r.url.includes(`/b/${bucket}/o?`) && /[?&]prefix=\.objcrypt-uploads\/(&|$)/.test(decodeURIComponent(r.url)))
        const before = listing().length
        yield* store.put("big", Stream.make(crypto.randomBytes(3 * PART + 1)))
        assert.deepStrictEqual(parts(), [])
        assert.deepStrictEqual([...server.objectNames(bucket)].sort(), ["a", "big", "small"])
        yield* store.put("big2", Stream.make(crypto.randomBytes(3 * PART + 1)))
        assert.strictEqual(listing().length - before, 1, "one sweep per store")
      })
    ), 120_000)

  it.live("an abandoned multipart upload (record + parts) is swept as one upload; completing it then fails", () =>
    Effect.scoped(
      Effect.gen(function*() {
        const server = yield* GcsServer.make({})
        const bucket = `objcrypt-${crypto.randomBytes(5).toString("hex")}`
        const store = yield* GcsObjectStore.make({ bucket, apiEndpoint: server.endpoint, projectId: server.projectId, partSize: PART, staleUploadAge: false })
        yield* Effect.orDie(GcsBuckets.createBucket(store.storage, bucket))
        const upload = yield* store.createMultipart("mp", { metadata: { a: "b" } })
        const p1 = yield* store.uploadPart(upload, 1, Stream.make(crypto.randomBytes(PART)))
        const p2 = yield* store.uploadPart(upload, 2, Stream.make(crypto.randomBytes(10)))
        const hidden = server.objectNames(bucket)
        assert.strictEqual(hidden.length, 3, "a record and two parts")
        assert.deepStrictEqual(yield* store.sweepUploads(), { uploads: 0, objects: 0, kept: 1 }, "default threshold: 24 hours")
        yield* Effect.sleep("20 millis")
        assert.deepStrictEqual(yield* store.sweepUploads({ olderThan: "10 millis" }), { uploads: 1, objects: 3, kept: 0 })
        assert.deepStrictEqual(server.objectNames(bucket), [])
        const e = yield* Effect.flip(store.completeMultipart(upload, [p1, p2]))
        assert.strictEqual(e._tag, "PreconditionFailed")
        assert.strictEqual((yield* Effect.flip(store.head("mp")))._tag, "ObjectNotFound")
      })
    ), 60_000)
})
