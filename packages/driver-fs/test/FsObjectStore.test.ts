import { afterAll, assert, describe, it } from "@effect/vitest"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import { ObjectStoreSuite } from "@objcrypt/test-kit"
import { ConfigProvider, Config, Data, Effect, Fiber, Layer, Stream } from "effect"
import * as cp from "node:child_process"
import * as crypto from "node:crypto"
import * as fsSync from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import * as url from "node:url"
import * as FsObjectStore from "../src/FsObjectStore.js"

const scratch = fsSync.mkdtempSync(path.join(os.tmpdir(), "objcrypt-fs-test-"))
afterAll(() => fsSync.rmSync(scratch, { recursive: true, force: true }))

const freshRoot = () => path.join(scratch, crypto.randomBytes(6).toString("hex"), "store")

/** Every file under a directory, relative to it. */
const tree = (dir: string): Array<string> =>
  fsSync.existsSync(dir) ? (fsSync.readdirSync(dir, { recursive: true, withFileTypes: true }) as Array<fsSync.Dirent>)
    .filter((d) => d.isFile())
    .map((d) => path.relative(dir, path.join(d.parentPath, d.name)))
    .sort() : []

const withStore = <A, E>(f: (store: FsObjectStore.FsObjectStore["Type"], root: string) => Effect.Effect<A, E>, config: Partial<Parameters<typeof FsObjectStore.make>[0]> = {}) =>
  Effect.gen(function*() {
    const root = freshRoot()
    const store = yield* FsObjectStore.make({ root, ...config })
    return yield* f(store, root)
  })

class Boom extends Data.TaggedError("Boom")<{ readonly at: string }> {}

ObjectStoreSuite.objectStoreSuite({
  name: "FsObjectStore conformance",
  layer: FsObjectStore.layer({ root: path.join(scratch, "conformance") }),
  capabilities: { md5Etags: true, conditionalWrites: true }
})

ObjectStoreSuite.objectStoreSuite({
  name: "FsObjectStore conformance (small parts, no fsync)",
  layer: FsObjectStore.layer({ root: path.join(scratch, "conformance-small"), minPartSize: 64 * 1024, fsync: false }),
  capabilities: { md5Etags: true },
  sizes: { segment: 4096 }
})

describe("FsObjectStore keys", () => {
  const badKeys: ReadonlyArray<readonly [string, string]> = [
    ["", "empty"],
    ["a\0b", "NUL"],
    ["x".repeat(1025), "over 1024 bytes"],
    ["é".repeat(513), "over 1024 UTF-8 bytes"],
    ["bad\uD800surrogate", "unpaired surrogate"],
    ["s".repeat(300), "segment longer than a file name"]
  ]
  for (const [key, what] of badKeys) {
    it.effect(`rejects a key with ${what} before any I/O`, () =>
      withStore((store, root) =>
        Effect.gen(function*() {
          const parent = path.dirname(root)
          const before = tree(parent)
          const errors = [
            yield* Effect.flip(store.put(key, Stream.make(new Uint8Array([1])))),
            yield* Effect.flip(store.head(key)),
            yield* Effect.flip(ObjectStore.readAll(store, key)),
            yield* Effect.flip(store.remove(key)),
            yield* Effect.flip(store.copy(key, "fine")),
            yield* Effect.flip(store.copy("fine", key)),
            yield* Effect.flip(store.createMultipart(key))
          ]
          for (const e of errors) {
            assert.strictEqual(e._tag, "InvalidObjectKey")
            if (e._tag === "InvalidObjectKey") assert.strictEqual(e.key, key)
          }
          assert.deepStrictEqual(tree(parent), before, "nothing written anywhere")
        })
      ))
  }

  it.effect("stores keys with . and .. segments, a leading / and backslashes (valid S3 keys) under the root, never outside it", () =>
    withStore((store, root) =>
      Effect.gen(function*() {
        const parent = path.dirname(root)
        const outside = tree(parent).filter((f) => !f.startsWith(path.basename(root)))
        const keys = ["..", ".", "../escape", "a/../../escape", "a/..", "a/./b", "/etc/passwd", "//x", "a\\..\\b", "..\\..\\win"]
        for (const k of keys) yield* store.put(k, Stream.make(Buffer.from(`body of ${k}`)))
        for (const k of keys) {
          const got = yield* ObjectStore.readAll(store, k)
          assert.strictEqual(Buffer.from(got.bytes).toString(), `body of ${k}`, k)
        }
        const listed = yield* store.list({})
        assert.deepStrictEqual(listed.objects.map((o) => o.key), [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))))
        const top = yield* store.list({ delimiter: "/" })
        assert.deepStrictEqual([...top.commonPrefixes], ["../", "/", "a/"])
        assert.deepStrictEqual(top.objects.map((o) => o.key), [".", "..", "..\\..\\win", "a\\..\\b"])
        // Nothing left the root, and no name in it is hidden, `.`/`..` or holds a backslash.
        assert.deepStrictEqual(tree(parent).filter((f) => !f.startsWith(path.basename(root))), outside)
        for (const f of tree(root).filter((f) => !f.startsWith(".objcrypt-fs"))) {
          for (const part of f.split(path.sep)) {
            assert.isFalse(part.startsWith("."), f)
            assert.notInclude(part, "\\", f)
          }
        }
        for (const k of keys) yield* store.remove(k)
        assert.deepStrictEqual((yield* store.list({})).objects, [])
      })
    ))

  it.effect("keeps a/b, a/b/c, a/, a//b and names with % and leading dots side by side", () =>
    withStore((store, root) =>
      Effect.gen(function*() {
        const keys = ["a/b", "a/b/c", "a/", "a//b", "a/b/c/", "%2F", "%", "100%/x", ".hidden", "a/.b", "..x", "日本/ファイル", "\u{1F600}", "%5C", "%255C"]
        for (const k of keys) yield* store.put(k, Stream.make(Buffer.from(`body of ${k}`)))
        for (const k of keys) {
          const got = yield* ObjectStore.readAll(store, k)
          assert.strictEqual(Buffer.from(got.bytes).toString(), `body of ${k}`)
        }
        const listed = yield* store.list({})
        const sorted = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)))
        assert.deepStrictEqual(listed.objects.map((o) => o.key), sorted)
        const top = yield* store.list({ delimiter: "/" })
        assert.deepStrictEqual([...top.commonPrefixes], ["100%/", "a/", "日本/"])
        const inA = yield* store.list({ prefix: "a/", delimiter: "/" })
        assert.deepStrictEqual(inA.objects.map((o) => o.key), ["a/", "a/.b", "a/b"])
        assert.deepStrictEqual([...inA.commonPrefixes], ["a//", "a/b/"])
        // Every name in the tree is ours: no key made a hidden file or left the root.
        for (const f of tree(root).filter((f) => !f.startsWith(".objcrypt-fs"))) {
          for (const part of f.split(path.sep)) assert.isFalse(part.startsWith("."), f)
        }
        yield* store.remove("a/b")
        assert.strictEqual(Buffer.from((yield* ObjectStore.readAll(store, "a/b/c")).bytes).toString(), "body of a/b/c")
      })
    ))

  it.effect("lays objects out as documented: one file per object, %2F directories", () =>
    withStore((store, root) =>
      Effect.gen(function*() {
        yield* store.put("photos/2024/cat.jpg", Stream.make(Buffer.from("meow")), { contentType: "image/jpeg" })
        const file = path.join(root, "photos%2F", "2024%2F", "cat.jpg%")
        const bytes = fsSync.readFileSync(file)
        assert.strictEqual(bytes.subarray(0, 4).toString("latin1"), "OCFS")
        const n = bytes.readUInt32BE(8)
        const header = JSON.parse(bytes.subarray(12, 12 + n).toString())
        assert.strictEqual(header.key, "photos/2024/cat.jpg")
        assert.strictEqual(header.etag, crypto.createHash("md5").update("meow").digest("hex"))
        assert.strictEqual(bytes.subarray(12 + n).toString(), "meow")
      })
    ))
})

describe("FsObjectStore crash safety", () => {
  const objectFiles = (root: string) => tree(root).filter((f) => !f.startsWith(".objcrypt-fs"))
  const stagingFiles = (root: string) => tree(path.join(root, ".objcrypt-fs"))

  it.effect("a body failing mid-write leaves no partial file and no temp file", () =>
    withStore((store, root) =>
      Effect.gen(function*() {
        const body = Stream.concat(Stream.make(crypto.randomBytes(3 * 1024 * 1024)), Stream.fail(new Boom({ at: "3 MiB" })))
        const e = yield* Effect.flip(store.put("dir/obj", body))
        assert.strictEqual(e._tag, "Boom")
        assert.deepStrictEqual(objectFiles(root), [])
        assert.deepStrictEqual(stagingFiles(root), [])
        yield* store.put("dir/obj", Stream.make(Buffer.from("v1")))
        yield* Effect.flip(store.put("dir/obj", body))
        assert.strictEqual(Buffer.from((yield* ObjectStore.readAll(store, "dir/obj")).bytes).toString(), "v1")
        assert.deepStrictEqual(stagingFiles(root), [])
      })
    ))

  it.live("an interrupted put leaves nothing behind", () =>
    withStore((store, root) =>
      Effect.gen(function*() {
        const endless = Stream.repeatEffect(Effect.sleep("5 millis").pipe(Effect.as(crypto.randomBytes(64 * 1024))))
        const fiber = yield* Effect.fork(store.put("slow", endless))
        yield* Effect.sleep("150 millis")
        assert.isAbove(stagingFiles(root).length, 0, "the temp file exists while writing")
        yield* Fiber.interrupt(fiber)
        assert.deepStrictEqual(stagingFiles(root), [])
        assert.deepStrictEqual(objectFiles(root), [])
        assert.strictEqual((yield* Effect.flip(store.head("slow")))._tag, "ObjectNotFound")
      })
    ))

  it.live("a process killed mid-write leaves the previous version and no partial object", () =>
    Effect.gen(function*() {
      const root = freshRoot()
      // A child Node process runs the driver from its TypeScript sources and is SIGKILLed while
      // it streams a replacement body.
      const script = path.join(scratch, `writer-${crypto.randomBytes(4).toString("hex")}.mjs`)
      fsSync.writeFileSync(script, `
import { registerHooks } from "node:module"
registerHooks({ resolve(s, c, next) {
  const ctx = { ...c, conditions: ["@objcrypt/source", ...(c.conditions ?? [])] }
  try { return next(s, ctx) } catch (e) { if (s.startsWith(".") && s.endsWith(".js")) return next(s.slice(0, -3) + ".ts", ctx); throw e }
} })
const { make } = await import(process.argv[2])
const { Effect, Stream } = await import(process.argv[4])
const store = await Effect.runPromise(make({ root: process.argv[3] }))
await Effect.runPromise(store.put("crash/obj", Stream.make(Buffer.from("version 1"))))
let n = 0
const endless = Stream.repeatEffect(Effect.sync(() => { if (++n === 20) process.stdout.write("writing\\n"); return Buffer.alloc(65536, 7) }))
await Effect.runPromise(store.put("crash/obj", endless.pipe(Stream.tap(() => Effect.sleep("1 millis")))))
`)
      const driver = url.pathToFileURL(path.join(import.meta.dirname, "..", "src", "FsObjectStore.ts")).href
      const effect = url.pathToFileURL(path.join(path.dirname(createRequire(import.meta.url).resolve("effect/package.json")), "dist", "esm", "index.js")).href
      const child = cp.spawn(process.execPath, [script, driver, root, effect], { stdio: ["ignore", "pipe", "pipe"], cwd: path.join(import.meta.dirname, "..") })
      let stderr = ""
      child.stderr.on("data", (d) => (stderr += String(d)))
      yield* Effect.async<void, Error>((resume) => {
        child.stdout.on("data", (d) => String(d).includes("writing") && resume(Effect.void))
        child.on("exit", (code) => resume(Effect.fail(new Error(`writer exited (${code}) before the kill: ${stderr}`))))
      }).pipe(Effect.timeout("60 seconds"))
      child.kill("SIGKILL")
      yield* Effect.async<void>((resume) => {
        if (child.exitCode !== null || child.signalCode !== null) resume(Effect.void)
        else child.on("exit", () => resume(Effect.void))
      })
      const leftovers = tree(path.join(root, ".objcrypt-fs", "tmp"))
      assert.strictEqual(leftovers.length, 1, "the killed write left its temp file in staging")
      const store = yield* FsObjectStore.make({ root })
      assert.strictEqual(Buffer.from((yield* ObjectStore.readAll(store, "crash/obj")).bytes).toString(), "version 1")
      assert.deepStrictEqual((yield* store.list({})).objects.map((o) => o.key), ["crash/obj"])
      assert.deepStrictEqual(objectFiles(root), [path.join("crash%2F", "obj%")])
    }), 90_000)

  it.effect("a length mismatch against contentLength is refused and nothing is written", () =>
    withStore((store, root) =>
      Effect.gen(function*() {
        const e = yield* Effect.flip(store.put("short", Stream.make(Buffer.from("abc")), { contentLength: 4 }))
        assert.strictEqual(e._tag, "ProviderError")
        if (e._tag === "ProviderError") assert.strictEqual(e.code, "IncompleteBody")
        assert.deepStrictEqual(tree(root), [])
      })
    ))

  it.effect("temp files a crash left are never listed and are removed once stale", () =>
    Effect.gen(function*() {
      const root = freshRoot()
      const store = yield* FsObjectStore.make({ root })
      yield* store.put("real", Stream.make(Buffer.from("x")))
      const stale = path.join(root, ".objcrypt-fs", "tmp", "deadbeef")
      const recent = path.join(root, ".objcrypt-fs", "tmp", "cafebabe")
      fsSync.writeFileSync(stale, "partial")
      fsSync.writeFileSync(recent, "partial")
      const old = new Date(Date.now() - 2 * 60 * 60 * 1000)
      fsSync.utimesSync(stale, old, old)
      const upload = yield* store.createMultipart("pending")
      yield* store.uploadPart(upload, 1, Stream.make(Buffer.from("part")))
      const listed = yield* store.list({})
      assert.deepStrictEqual(listed.objects.map((o) => o.key), ["real"])
      assert.deepStrictEqual([...(yield* store.list({ delimiter: "/" })).commonPrefixes], [])
      yield* FsObjectStore.make({ root })
      assert.isFalse(fsSync.existsSync(stale), "stale temp removed")
      assert.isTrue(fsSync.existsSync(recent), "a recent temp may belong to a live writer")
      // The pending upload survives a restart and can still complete.
      const reopened = yield* FsObjectStore.make({ root, minPartSize: 1 })
      const part = yield* reopened.uploadPart(upload, 2, Stream.make(Buffer.from("!")))
      const parts = [{ partNumber: 1, etag: crypto.createHash("md5").update("part").digest("hex"), size: 4 }, part]
      yield* reopened.completeMultipart(upload, parts)
      assert.strictEqual(Buffer.from((yield* ObjectStore.readAll(reopened, "pending")).bytes).toString(), "part!")
      assert.deepStrictEqual(tree(path.join(root, ".objcrypt-fs", "uploads")), [])
    }))
})

ObjectStoreSuite.objectStoreSuite({
  name: "FsObjectStore conformance (random etags)",
  layer: FsObjectStore.layer({ root: path.join(scratch, "conformance-random"), etags: "random", fsync: false }),
  capabilities: { md5Etags: false, conditionalWrites: true }
})

describe("FsObjectStore etags", () => {
  const body = crypto.randomBytes(5 * 1024 * 1024 + 77)
  const chunks = (b: Buffer, n: number) => Stream.fromIterable(Array.from({ length: Math.ceil(b.length / n) }, (_, i) => b.subarray(i * n, (i + 1) * n)))

  it.effect("md5: a body of several MiB (hashed on the worker thread) gets the MD5 of its bytes, single put and parts", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const md5 = crypto.createHash("md5").update(body).digest("hex")
        assert.strictEqual((yield* store.put("big", chunks(body, 65536))).etag, md5)
        assert.strictEqual((yield* store.put("big-one-chunk", Stream.make(body))).etag, md5)
        assert.strictEqual((yield* store.head("big")).etag, md5)
        const upload = yield* store.createMultipart("mp")
        const part = yield* store.uploadPart(upload, 1, chunks(body, 300_000))
        assert.strictEqual(part.etag, md5)
        yield* store.abortMultipart(upload)
      })
    ))

  it.effect("random: 128 random bits per stored version, equal bodies or not; the bytes are stored as given", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const a = yield* store.put("k", chunks(body, 65536))
        const b = yield* store.put("k", chunks(body, 65536))
        assert.match(a.etag, /^[0-9a-f]{32}$/)
        assert.notStrictEqual(a.etag, b.etag)
        assert.notStrictEqual(a.etag, crypto.createHash("md5").update(body).digest("hex"))
        assert.strictEqual((yield* store.head("k")).etag, b.etag)
        const back = yield* Effect.scoped(Effect.flatMap(store.get("k"), (o) => Stream.runCollect(o.body)))
        assert.isTrue(Buffer.concat([...back]).equals(body))
      }), { etags: "random" }))
})

describe("FsObjectStore borrowed reads", () => {
  const pullAll = <E>(body: Stream.Stream<Uint8Array, E>) =>
    Effect.gen(function*() {
      const copies: Array<Buffer> = []
      const memory = new Set<ArrayBufferLike>()
      // Each chunk is copied before the next is pulled, as the borrowed contract asks.
      yield* Stream.runForEach(body, (c) => Effect.sync(() => {
        copies.push(Buffer.from(c))
        memory.add(c.buffer)
      }))
      return { bytes: Buffer.concat(copies), chunks: copies.length, buffers: memory.size }
    })

  it.effect("reads whole objects and ranges into two reused buffers, byte for byte", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const data = crypto.randomBytes(2 * 1024 * 1024 + 333_333)
        yield* store.put("big", Stream.make(data))
        const whole = yield* Effect.scoped(Effect.flatMap(store.get("big", { borrowed: true }), (o) => pullAll(o.body)))
        assert.isTrue(whole.bytes.equals(data))
        assert.isAtLeast(whole.chunks, 4)
        assert.strictEqual(whole.buffers, 2, "the chunks share two buffers")
        const fresh = yield* Effect.scoped(Effect.flatMap(store.get("big"), (o) => pullAll(o.body)))
        assert.isTrue(fresh.bytes.equals(data))
        assert.strictEqual(fresh.buffers, fresh.chunks, "without borrowed every chunk is its own buffer")
        for (const [start, end] of [[0, 99], [100, 2 * 1024 * 1024 + 5], [1_000_000, data.length - 1]] as const) {
          const r = yield* Effect.scoped(Effect.flatMap(store.get("big", { borrowed: true, range: ObjectStore.range.bounded(start, end) }), (o) => pullAll(o.body)))
          assert.isTrue(r.bytes.equals(data.subarray(start, end + 1)), `range ${start}-${end}`)
        }
      })
    ))

  it.effect("a caller that stops early, and an object file cut short, end cleanly", () =>
    withStore((store, root) =>
      Effect.gen(function*() {
        const data = crypto.randomBytes(3 * 1024 * 1024)
        yield* store.put("cut", Stream.make(data))
        const first = yield* Effect.scoped(Effect.flatMap(store.get("cut", { borrowed: true }), (o) => Stream.runCollect(Stream.take(o.body, 1))))
        assert.strictEqual(first.length, 1)
        const file = path.join(root, "cut%")
        fsSync.truncateSync(file, fsSync.statSync(file).size - 1024 * 1024)
        const e = yield* Effect.flip(Effect.scoped(Effect.flatMap(store.get("cut", { borrowed: true }), (o) => pullAll(o.body))))
        assert.strictEqual(e._tag, "ProviderError")
        if (e._tag === "ProviderError") assert.strictEqual(e.code, "CorruptObject")
      })
    ))
})

describe("FsObjectStore files and errors", () => {
  it.effect("object files are 0600 and directories 0700", () =>
    withStore((store, root) =>
      Effect.gen(function*() {
        yield* store.put("x/y/z", Stream.make(Buffer.from("secret")))
        const file = fsSync.statSync(path.join(root, "x%2F", "y%2F", "z%"))
        assert.strictEqual(file.mode & 0o777, 0o600)
        for (const d of [root, path.join(root, "x%2F"), path.join(root, "x%2F", "y%2F"), path.join(root, ".objcrypt-fs")]) {
          assert.strictEqual(fsSync.statSync(d).mode & 0o777, 0o700, d)
        }
      })
    ))

  it.effect("removing the last object prunes its empty directories", () =>
    withStore((store, root) =>
      Effect.gen(function*() {
        yield* store.put("p/q/r", Stream.make(Buffer.from("1")))
        yield* store.put("p/s", Stream.make(Buffer.from("2")))
        yield* store.remove("p/q/r")
        assert.isFalse(fsSync.existsSync(path.join(root, "p%2F", "q%2F")))
        assert.isTrue(fsSync.existsSync(path.join(root, "p%2F")))
        yield* store.remove("p/s")
        assert.deepStrictEqual(fsSync.readdirSync(root), [".objcrypt-fs"])
      })
    ))

  it.effect("system errors become ProviderError with the errno code and no absolute path", () =>
    withStore((store, root) =>
      Effect.gen(function*() {
        const tmp = path.join(root, ".objcrypt-fs", "tmp")
        fsSync.rmSync(tmp, { recursive: true })
        fsSync.writeFileSync(tmp, "not a directory")
        const e = yield* Effect.flip(store.put("k", Stream.make(Buffer.from("x"))))
        assert.strictEqual(e._tag, "ProviderError")
        if (e._tag === "ProviderError") {
          assert.strictEqual(e.code, "ENOTDIR")
          assert.strictEqual(e.provider, "fs")
          assert.notInclude(e.message, scratch)
          assert.notInclude(JSON.stringify(e), scratch)
        }
      })
    ))

  it.effect("a corrupt object file is a ProviderError, not data", () =>
    withStore((store, root) =>
      Effect.gen(function*() {
        yield* store.put("c", Stream.make(Buffer.from("fine")))
        fsSync.writeFileSync(path.join(root, "c%"), "garbage that is not an object file")
        const e = yield* Effect.flip(store.head("c"))
        assert.strictEqual(e._tag, "ProviderError")
        if (e._tag === "ProviderError") assert.strictEqual(e.code, "CorruptObject")
        assert.deepStrictEqual((yield* store.list({})).objects, [])
      })
    ))

  it.effect("server-side encryption is refused: UnsupportedMode on writes, InvalidRequest on reads", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const e = yield* Effect.flip(store.put("k", Stream.make(Buffer.from("x")), { sse: { _tag: "SseS3" } }))
        assert.strictEqual(e._tag, "UnsupportedMode")
        if (e._tag === "UnsupportedMode") {
          assert.strictEqual(e.provider, "local-fs")
          assert.include(e.message, "cse-c")
        }
        yield* store.put("k", Stream.make(Buffer.from("x")))
        const r = yield* Effect.flip(store.head("k", { sse: { _tag: "SseKms", keyId: "k1" } }))
        assert.strictEqual(r._tag, "ProviderError")
        if (r._tag === "ProviderError") assert.strictEqual(r.code, "InvalidRequest")
        assert.deepStrictEqual([...store.nativeModes], ["None"])
      })
    ))

  it.effect("multipart checks part order, etags and the minimum part size", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const upload = yield* store.createMultipart("m")
        const p1 = yield* store.uploadPart(upload, 1, Stream.make(crypto.randomBytes(100)))
        const p2 = yield* store.uploadPart(upload, 2, Stream.make(crypto.randomBytes(100)))
        const code = (e: { _tag: string }) => (e._tag === "ProviderError" ? (e as unknown as { code: string }).code : e._tag)
        assert.strictEqual(code(yield* Effect.flip(store.completeMultipart(upload, [p2, p1]))), "InvalidPartOrder")
        assert.strictEqual(code(yield* Effect.flip(store.completeMultipart(upload, [p1, { ...p2, etag: "0".repeat(32) }]))), "InvalidPart")
        assert.strictEqual(code(yield* Effect.flip(store.completeMultipart(upload, [p1, { ...p2, partNumber: 3 }]))), "InvalidPart")
        assert.strictEqual(code(yield* Effect.flip(store.completeMultipart(upload, [p1, p2]))), "EntityTooSmall")
        assert.strictEqual(code(yield* Effect.flip(store.uploadPart(upload, 0, Stream.make(new Uint8Array(1))))), "InvalidArgument")
        assert.strictEqual(code(yield* Effect.flip(store.uploadPart({ ...upload, uploadId: "../../x" }, 1, Stream.empty))), "PreconditionFailed")
        assert.strictEqual(code(yield* Effect.flip(store.uploadPart({ ...upload, key: "other" }, 1, Stream.empty))), "PreconditionFailed")
        // A part uploaded again replaces the earlier one; a single small part is a valid object.
        const again = yield* store.uploadPart(upload, 1, Stream.make(Buffer.from("only")))
        const done = yield* store.completeMultipart(upload, [again])
        assert.strictEqual(done.etag, `${crypto.createHash("md5").update(crypto.createHash("md5").update("only").digest()).digest("hex")}-1`)
        assert.strictEqual(code(yield* Effect.flip(store.abortMultipart(upload))), "PreconditionFailed")
      }), { minPartSize: 1000 }))

  it.effect("a continuation token that is not ours is refused", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const e = yield* Effect.flip(store.list({ continuationToken: "not a token!" }))
        assert.strictEqual(e._tag, "ProviderError")
        if (e._tag === "ProviderError") assert.strictEqual(e.code, "InvalidArgument")
      })
    ))

  it.effect("listings see changes to a directory whose sorted entries are cached", () =>
    withStore((store, root) =>
      Effect.gen(function*() {
        for (let i = 0; i < 30; i++) yield* store.put(`big/k${String(i).padStart(3, "0")}`, Stream.make(Buffer.from([i])))
        const dir = path.join(root, "big%2F")
        const old = new Date(Date.now() - 60_000)
        fsSync.utimesSync(dir, old, old)
        const first = yield* store.list({ prefix: "big/", maxKeys: 10 })
        assert.strictEqual(first.objects.length, 10)
        yield* store.put("big/k0055", Stream.make(Buffer.from("new")))
        yield* store.remove("big/k000")
        const keys = yield* ObjectStore.listAll(store, { prefix: "big/" }).pipe(Stream.map((o) => o.key), Stream.runCollect)
        assert.strictEqual([...keys].length, 30)
        assert.include([...keys], "big/k0055")
        assert.notInclude([...keys], "big/k000")
      })
    ))

  it.effect("layerConfig reads the root; bucket and location default from it", () =>
    Effect.gen(function*() {
      const root = path.join(freshRoot(), "my-bucket")
      const store = yield* FsObjectStore.FsObjectStore.pipe(
        Effect.provide(
          FsObjectStore.layerConfig({ root: Config.string("ROOT") }).pipe(
            Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["ROOT", root]]))))
          )
        )
      )
      assert.strictEqual(store.root, root)
      assert.strictEqual(store.bucket, "my-bucket")
      assert.strictEqual(store.location, `file://${root}`)
      assert.isTrue(fsSync.statSync(root).isDirectory())
      const core = yield* ObjectStore.ObjectStore.pipe(Effect.provide(FsObjectStore.layer({ root, bucket: "named" })))
      assert.strictEqual(core.bucket, "named")
      assert.strictEqual(core.provider, "fs")
    }))
})

describe("FsObjectStore conditional copy", () => {
  const big = 8 * 1024 * 1024

  it.effect("a same-key copy with ifSourceMatch never replaces a version written while it ran (another store of the process)", () =>
    withStore((store, root) =>
      Effect.gen(function*() {
        const other = yield* FsObjectStore.make({ root })
        let refused = 0
        for (let round = 0; round < 4; round++) {
          yield* store.put("k", Stream.make(crypto.randomBytes(big)), { metadata: { v: "old" } })
          const { etag } = yield* store.head("k")
          const copying = yield* Effect.fork(Effect.either(store.copy("k", "k", { metadata: { v: "rekeyed" }, ifSourceMatch: etag })))
          yield* Effect.sleep("1 millis")
          const fresh = crypto.randomBytes(100)
          yield* other.put("k", Stream.make(fresh), { metadata: { v: "new" } })
          const r = yield* Fiber.join(copying)
          if (r._tag === "Left") {
            assert.strictEqual(r.left._tag, "PreconditionFailed")
            refused++
          }
          // Whichever came first, the last write is the new version, whole.
          const now = yield* ObjectStore.readAll(store, "k")
          assert.isTrue(Buffer.from(now.bytes).equals(fresh), `round ${round}: the new body`)
          assert.deepStrictEqual({ ...now.info.metadata }, { v: "new" }, `round ${round}: the new metadata`)
        }
        assert.isAbove(refused, 0, "the put landed while a copy ran")
      })
    ))

  it.effect("a same-key copy with ifSourceMatch does not bring back an object removed while it ran", () =>
    withStore((store) =>
      Effect.gen(function*() {
        for (let round = 0; round < 4; round++) {
          yield* store.put("k", Stream.make(crypto.randomBytes(big)))
          const { etag } = yield* store.head("k")
          const copying = yield* Effect.fork(Effect.either(store.copy("k", "k", { metadata: { v: "rekeyed" }, ifSourceMatch: etag })))
          yield* Effect.sleep("1 millis")
          yield* store.remove("k")
          const r = yield* Fiber.join(copying)
          if (r._tag === "Left") assert.include(["ObjectNotFound", "PreconditionFailed"], r.left._tag)
          const e = yield* Effect.flip(store.head("k"))
          assert.strictEqual(e._tag, "ObjectNotFound", `round ${round}: still removed`)
        }
      })
    ))

  it.effect("ifSourceMatch accepts the etag quoted, as HTTP writes it", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* store.put("q", Stream.make(Buffer.from("quoted")))
        const { etag } = yield* store.head("q")
        const r = yield* store.copy("q", "q2", { ifSourceMatch: `"${etag}"` })
        assert.strictEqual(r.etag, etag)
      })
    ))
})

describe("FsObjectStore conditional put (ifMatch)", () => {
  const body = (s: string) => Stream.make(Buffer.from(s))
  const contents = (store: FsObjectStore.FsObjectStore["Type"], key: string) =>
    Effect.map(ObjectStore.readAll(store, key), (r) => ({ text: Buffer.from(r.bytes).toString(), metadata: { ...r.info.metadata }, etag: r.info.etag }))

  for (const etags of ["md5", "random"] as const) {
    it.effect(`${etags} etags: a mismatch or a missing key is PreconditionFailed and writes nothing; a match (quoted or not) overwrites`, () =>
      withStore((store, root) =>
        Effect.gen(function*() {
          const first = yield* store.put("k", body("one"), { metadata: { v: "1" } })
          const before = tree(root)
          const stale = yield* Effect.flip(store.put("k", body("two"), { metadata: { v: "2" }, ifMatch: crypto.randomBytes(16).toString("hex") }))
          assert.deepStrictEqual([stale._tag, (stale as { key?: string }).key], ["PreconditionFailed", "k"])
          assert.deepStrictEqual(yield* contents(store, "k"), { text: "one", metadata: { v: "1" }, etag: first.etag })
          const missing = yield* Effect.flip(store.put("nope", body("x"), { ifMatch: first.etag }))
          assert.strictEqual(missing._tag, "PreconditionFailed")
          assert.strictEqual((yield* Effect.flip(store.head("nope")))._tag, "ObjectNotFound")
          assert.deepStrictEqual(tree(root), before, "no temp file or object left")

          const second = yield* store.put("k", body("two"), { metadata: { v: "2" }, ifMatch: `"${first.etag}"` })
          assert.deepStrictEqual(yield* contents(store, "k"), { text: "two", metadata: { v: "2" }, etag: second.etag })
          const third = yield* store.put("k", body("three"), { ifMatch: second.etag })
          assert.strictEqual((yield* contents(store, "k")).text, "three")
          // The etag of a replaced version no longer matches.
          if (etags === "random" || second.etag !== third.etag) {
            assert.strictEqual((yield* Effect.flip(store.put("k", body("four"), { ifMatch: first.etag })))._tag, "PreconditionFailed")
            assert.strictEqual((yield* contents(store, "k")).text, "three")
          }
        }), { etags }))
  }

  it.effect("ifMatch with ifNoneMatch is a usage error (400 InvalidRequest), for put and createMultipart, before any write", () =>
    withStore((store, root) =>
      Effect.gen(function*() {
        const first = yield* store.put("k", body("one"))
        const before = tree(root)
        for (const e of [
          yield* Effect.flip(store.put("k", body("two"), { ifMatch: first.etag, ifNoneMatch: "*" })),
          yield* Effect.flip(store.createMultipart("k", { ifMatch: first.etag, ifNoneMatch: "*" }))
        ]) {
          assert.deepStrictEqual([e._tag, (e as { code?: string }).code, (e as { status?: number }).status], ["ProviderError", "InvalidRequest", 400])
        }
        assert.deepStrictEqual(tree(root), before)
        assert.strictEqual((yield* contents(store, "k")).text, "one")
      })))

  it.effect("createMultipart with ifMatch: checked at completion; a replaced or removed key fails and is left as is, a match completes", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const first = yield* store.put("k", body("one"))
        const upload = (ifMatch: string) =>
          Effect.gen(function*() {
            const u = yield* store.createMultipart("k", { ifMatch, metadata: { v: "mp" } })
            const p = yield* store.uploadPart(u, 1, body("multipart"))
            return { u, p }
          })
        const a = yield* upload(first.etag)
        const replaced = yield* store.put("k", body("replaced"))
        assert.strictEqual((yield* Effect.flip(store.completeMultipart(a.u, [a.p])))._tag, "PreconditionFailed")
        assert.strictEqual((yield* contents(store, "k")).text, "replaced")
        yield* store.abortMultipart(a.u)

        const b = yield* upload(replaced.etag)
        yield* store.remove("k")
        assert.strictEqual((yield* Effect.flip(store.completeMultipart(b.u, [b.p])))._tag, "PreconditionFailed")
        assert.strictEqual((yield* Effect.flip(store.head("k")))._tag, "ObjectNotFound")
        yield* store.abortMultipart(b.u)

        const again = yield* store.put("k", body("again"))
        const c = yield* upload(`"${again.etag}"`)
        yield* store.completeMultipart(c.u, [c.p])
        assert.deepStrictEqual(
          { ...(yield* contents(store, "k")), etag: "" },
          { text: "multipart", metadata: { v: "mp" }, etag: "" }
        )
      })))

  it.effect("completeMultipart's own conditions: checked when publishing, a failure publishes nothing and leaves the upload to complete or abort", () =>
    withStore((store, root) =>
      Effect.gen(function*() {
        let n = 0
        const started = (key: string, options?: ObjectStore.PutOptions) =>
          Effect.gen(function*() {
            const u = yield* store.createMultipart(key, { metadata: { v: "mp" }, ...options })
            return { u, parts: [yield* store.uploadPart(u, 1, body(`multipart ${++n}`))] }
          })
        const first = yield* store.put("k", body("one"))

        // ifNoneMatch over an existing key: refused, the object intact, the upload still there.
        const a = yield* started("k")
        assert.strictEqual((yield* Effect.flip(store.completeMultipart(a.u, a.parts, { ifNoneMatch: "*" })))._tag, "PreconditionFailed")
        assert.deepStrictEqual(yield* contents(store, "k"), { text: "one", metadata: {}, etag: first.etag })
        // ... and it completes without the condition.
        yield* store.completeMultipart(a.u, a.parts)
        assert.strictEqual((yield* contents(store, "k")).text, "multipart 1")
        const current = yield* store.head("k")

        // ifNoneMatch over a missing key publishes.
        const b = yield* started("new")
        yield* store.completeMultipart(b.u, b.parts, { ifNoneMatch: "*" })
        assert.strictEqual((yield* contents(store, "new")).text, "multipart 2")

        // ifMatch: stale or missing refused (upload aborted afterwards), right one replaces.
        const c = yield* started("k")
        for (const stale of [first.etag, crypto.randomBytes(16).toString("hex")]) {
          assert.strictEqual((yield* Effect.flip(store.completeMultipart(c.u, c.parts, { ifMatch: stale })))._tag, "PreconditionFailed")
        }
        assert.strictEqual((yield* store.head("k")).etag, current.etag)
        const d = yield* started("gone")
        assert.strictEqual((yield* Effect.flip(store.completeMultipart(d.u, d.parts, { ifMatch: current.etag })))._tag, "PreconditionFailed")
        assert.strictEqual((yield* Effect.flip(store.head("gone")))._tag, "ObjectNotFound")
        yield* store.abortMultipart(d.u)
        yield* store.completeMultipart(c.u, c.parts, { ifMatch: `"${current.etag}"` })
        assert.strictEqual((yield* contents(store, "k")).text, "multipart 3")

        // With the creation's condition: both must hold; one of each kind is the usage error.
        const now = yield* store.head("k")
        const e = yield* started("k", { ifMatch: now.etag })
        assert.strictEqual((yield* Effect.flip(store.completeMultipart(e.u, e.parts, { ifMatch: first.etag })))._tag, "PreconditionFailed")
        const usage = yield* Effect.flip(store.completeMultipart(e.u, e.parts, { ifNoneMatch: "*" }))
        assert.deepStrictEqual([usage._tag, (usage as { status?: number }).status], ["ProviderError", 400])
        const both = yield* Effect.flip(store.completeMultipart(e.u, e.parts, { ifNoneMatch: "*", ifMatch: now.etag }))
        assert.deepStrictEqual([both._tag, (both as { status?: number }).status], ["ProviderError", 400])
        assert.strictEqual((yield* store.head("k")).etag, now.etag)
        yield* store.completeMultipart(e.u, e.parts, { ifMatch: now.etag })
        assert.strictEqual((yield* contents(store, "k")).text, "multipart 5")
        // Nothing of the refused attempts is left behind: no uploads, no temp files.
        assert.deepStrictEqual(tree(root).sort(), ["k%", "new%"])
      })))

  it.effect("a put with ifMatch never replaces a version another store of the process wrote while it ran", () =>
    withStore((store, root) =>
      Effect.gen(function*() {
        const other = yield* FsObjectStore.make({ root })
        let refused = 0
        for (let round = 0; round < 4; round++) {
          const { etag } = yield* store.put("k", body("old"))
          const putting = yield* Effect.fork(Effect.either(store.put("k", Stream.make(crypto.randomBytes(8 * 1024 * 1024)), { ifMatch: etag })))
          yield* Effect.sleep("1 millis")
          const fresh = crypto.randomBytes(100)
          yield* other.put("k", Stream.make(fresh), { metadata: { v: "new" } })
          const r = yield* Fiber.join(putting)
          if (r._tag === "Left") {
            assert.strictEqual(r.left._tag, "PreconditionFailed")
            refused++
          }
          const now = yield* ObjectStore.readAll(store, "k")
          assert.isTrue(Buffer.from(now.bytes).equals(fresh), `round ${round}: the other writer's body`)
        }
        assert.isAbove(refused, 0, "the other put landed while a conditional put ran")
      })))
})

describe("FsObjectStore conditional remove (ifMatch)", () => {
  const body = (s: string) => Stream.make(Buffer.from(s))

  for (const etags of ["md5", "random"] as const) {
    it.effect(`${etags} etags: a stale etag or a missing key is PreconditionFailed and removes nothing; the right one (quoted or not) removes`, () =>
      withStore((store, root) =>
        Effect.gen(function*() {
          const first = yield* store.put("a/k", body("one"))
          const second = yield* store.put("a/k", body("two"))
          const before = tree(root)
          const wrong = yield* Effect.flip(store.remove("a/k", { ifMatch: crypto.randomBytes(16).toString("hex") }))
          assert.deepStrictEqual([wrong._tag, (wrong as { key?: string }).key], ["PreconditionFailed", "a/k"])
          if (etags === "random" || first.etag !== second.etag) {
            assert.strictEqual((yield* Effect.flip(store.remove("a/k", { ifMatch: first.etag })))._tag, "PreconditionFailed", "stale etag")
          }
          const kept = yield* ObjectStore.readAll(store, "a/k")
          assert.deepStrictEqual([Buffer.from(kept.bytes).toString(), kept.info.etag], ["two", second.etag], "the object is intact")
          assert.deepStrictEqual(tree(root), before)

          const missing = yield* Effect.flip(store.remove("a/nope", { ifMatch: second.etag }))
          assert.deepStrictEqual([missing._tag, (missing as { key?: string }).key], ["PreconditionFailed", "a/nope"])

          yield* store.remove("a/k", { ifMatch: `"${second.etag}"` })
          assert.strictEqual((yield* Effect.flip(store.head("a/k")))._tag, "ObjectNotFound")
          assert.deepStrictEqual(tree(root), [], "object gone, its directory pruned")
          // Removed: the same condition now fails; without one a missing key still succeeds.
          assert.strictEqual((yield* Effect.flip(store.remove("a/k", { ifMatch: second.etag })))._tag, "PreconditionFailed")
          yield* store.remove("a/k")

          const third = yield* store.put("k", body("three"))
          yield* store.remove("k", { ifMatch: third.etag })
          assert.strictEqual((yield* Effect.flip(store.head("k")))._tag, "ObjectNotFound")
        }), { etags }))
  }

  it.effect("a remove with ifMatch never removes a version another store of the process wrote in between", () =>
    withStore((store, root) =>
      Effect.gen(function*() {
        const other = yield* FsObjectStore.make({ root })
        let refused = 0
        for (let round = 0; round < 24; round++) {
          const { etag } = yield* store.put("k", body("old"))
          const putting = yield* Effect.fork(other.put("k", Stream.make(crypto.randomBytes(64)), { metadata: { v: "new" } }))
          // Staggered so the remove lands before, during and after the other put.
          yield* Effect.sleep(`${round % 6} millis`)
          const removed = yield* Effect.either(store.remove("k", { ifMatch: etag }))
          const fresh = yield* Fiber.join(putting)
          if (removed._tag === "Left") {
            assert.strictEqual(removed.left._tag, "PreconditionFailed")
            refused++
          }
          // Removed before the put, or refused after it: either way the new version is there.
          assert.strictEqual((yield* store.head("k")).etag, fresh.etag, `round ${round}: the new version is kept`)
        }
        assert.isAbove(refused, 0, "some removes came after the other put")
      }), { etags: "random" }))
})

describe("FsObjectStore conditional copy (random etags)", () => {
  it.effect("a copy is a new version with its own random etag: a metadata rewrite changes it, so a stale etag is refused", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* store.put("k", Stream.make(crypto.randomBytes(1000)), { metadata: { v: "1" } })
        const v1 = yield* store.head("k")
        const copied = yield* store.copy("k", "k", { metadata: { v: "2" }, ifSourceMatch: v1.etag })
        assert.match(copied.etag, /^[0-9a-f]{32}$/)
        assert.notStrictEqual(copied.etag, v1.etag)
        assert.strictEqual((yield* store.head("k")).etag, copied.etag)
        const e = yield* Effect.flip(store.copy("k", "k", { metadata: { v: "3" }, ifSourceMatch: v1.etag }))
        assert.strictEqual(e._tag, "PreconditionFailed")
        assert.deepStrictEqual({ ...(yield* store.head("k")).metadata }, { v: "2" })
      }), { etags: "random" }))
})
