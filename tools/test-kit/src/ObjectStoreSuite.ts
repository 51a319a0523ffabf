/**
 * The `ObjectStore` conformance suite. Every driver runs it against its real server:
 *
 * ```ts
 * objectStoreSuite({ name: "FsObjectStore", layer: FsObjectStore.layer({ root }) })
 * ```
 *
 * It registers one `describe` block of `it.effect` tests sharing the layer. Every run writes under
 * a random prefix and removes what it wrote, in its last test and again when the layer is released.
 *
 * @since 0.1.0
 */
import { assert, layer } from "@effect/vitest"
import * as CustomerKey from "@objcrypt/core/CustomerKey"
import type { ModeTag } from "@objcrypt/core/EncryptionMode"
import type { StoreError } from "@objcrypt/core/Errors"
import * as ObjectStore from "@objcrypt/core/ObjectStore"
import { Chunk, Data, Duration, Effect, Either, Layer, Stream } from "effect"
import * as crypto from "node:crypto"

/**
 * Server-side modes a driver honours on its server, so the suite round-trips them too.
 *
 * @since 0.1.0
 * @category models
 */
export interface SseCapabilities {
  /** Provider-managed keys (`AES256`). */
  readonly SseS3?: boolean | undefined
  /** A KMS key the server knows. */
  readonly SseKms?: { readonly keyId: string } | undefined
  /** Customer-provided keys: a missing or wrong key must never read data. */
  readonly SseC?: boolean | undefined
}

/**
 * What the server under test can do, where stores legitimately differ.
 *
 * @since 0.1.0
 * @category models
 */
export interface Capabilities {
  readonly sse?: SseCapabilities | undefined
  /** `ifNoneMatch: "*"` on put. @default true */
  readonly conditionalWrites?: boolean | undefined
  /** ETags of unencrypted objects are S3's: MD5 hex, and `md5(md5s)-N` for multipart. @default false */
  readonly md5Etags?: boolean | undefined
  /**
   * `completeMultipart` checks `ifNoneMatch`/`ifMatch` as it publishes the upload. `false`: the
   * server cannot, and the driver refuses a conditional completion (400 `ProviderError`, nothing
   * published, the upload left to complete or abort). @default true
   */
  readonly conditionalCompletion?: boolean | undefined
  /**
   * `remove` checks `ifMatch` as it removes. `false`: the server cannot, and the driver refuses a
   * conditional remove (400 `ProviderError`, nothing removed). @default true
   */
  readonly conditionalRemove?: boolean | undefined
}

/**
 * Body sizes the suite uses; smaller values keep a slow server fast.
 *
 * @since 0.1.0
 * @category models
 */
export interface Sizes {
  /** The boundary single puts straddle (the client-side segment size). @default 65536 */
  readonly segment?: number | undefined
  /** Part size of multipart tests; raised to `store.limits.minPartSize` when below. @default store.limits.minPartSize */
  readonly partSize?: number | undefined
  /** Also round-trip single puts of `partSize - 1`, `partSize` and `partSize + 1` bytes. @default true */
  readonly partBoundary?: boolean | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface SuiteOptions {
  /** Name of the `describe` block. */
  readonly name: string
  /** The store under test, built once for the whole block. */
  readonly layer: Layer.Layer<ObjectStore.ObjectStore, unknown>
  readonly capabilities?: Capabilities | undefined
  readonly sizes?: Sizes | undefined
  /** Per test, and for building the layer. @default 60 seconds */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * A body stream failure the suite injects.
 *
 * @since 0.1.0
 * @category errors
 */
export class BodyFailure extends Data.TaggedError("BodyFailure")<{ readonly at: number }> {}

const STORE_ERROR_TAGS = new Set(["ObjectNotFound", "InvalidObjectKey", "InvalidRange", "PreconditionFailed", "AccessDenied", "ProviderError"])

const SSE_TAGS = ["SseS3", "SseKms", "SseC"] as const

/**
 * A body as a stream of uneven chunks (1 byte, a few bytes, then larger slices).
 *
 * @since 0.1.0
 * @category utils
 */
export const chunked = (bytes: Uint8Array, sizes: ReadonlyArray<number> = [1, 7, 4093, 65_537, 16_384]): Stream.Stream<Uint8Array> => {
  const out: Array<Uint8Array> = []
  let i = 0
  for (let n = 0; i < bytes.length; n++) {
    const size = sizes[n % sizes.length]!
    out.push(bytes.subarray(i, Math.min(bytes.length, i + size)))
    i += size
  }
  return Stream.fromIterable(out)
}

const random = (n: number): Buffer => crypto.randomBytes(n)
const md5 = (b: Uint8Array) => crypto.createHash("md5").update(b).digest("hex")
const unquote = (etag: string) => etag.replace(/^"(.*)"$/, "$1")
const utf8Sort = (keys: ReadonlyArray<string>) => [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))

const sameBytes = (actual: Uint8Array, expected: Uint8Array, what: string) => {
  assert.strictEqual(actual.length, expected.length, `${what}: length`)
  assert.isTrue(Buffer.from(actual).equals(Buffer.from(expected)), `${what}: bytes differ`)
}

/** Fails the test unless the effect fails with a store error of one of `tags`; returns the error. */
const failsWith = <A, E>(self: Effect.Effect<A, E>, tags: ReadonlyArray<string>, what: string) =>
  Effect.gen(function*() {
    const r = yield* Effect.either(self)
    if (Either.isRight(r)) return assert.fail(`${what}: expected ${tags.join(" or ")}, but it succeeded`)
    const tag = (r.left as { _tag?: string })._tag ?? String(r.left)
    assert.include(tags, tag, `${what}: failed with ${tag}`)
    return r.left
  })

const listKeys = (store: ObjectStore.ObjectStore["Type"], prefix: string) =>
  ObjectStore.listAll(store, { prefix }).pipe(Stream.map((o) => o.key), Stream.runCollect, Effect.map(Chunk.toReadonlyArray))

const removeAll = (store: ObjectStore.ObjectStore["Type"], prefix: string) =>
  Effect.gen(function*() {
    const keys = yield* listKeys(store, prefix)
    yield* Effect.forEach(keys, (k) => store.remove(k), { concurrency: 8, discard: true })
  })

/**
 * Registers the conformance suite for one store.
 *
 * @since 0.1.0
 * @category suites
 */
export const objectStoreSuite = (options: SuiteOptions): void => {
  const runPrefix = `conformance-${crypto.randomBytes(6).toString("hex")}/`
  const caps = options.capabilities ?? {}
  const sse = caps.sse ?? {}
  const timeout = Duration.toMillis(options.timeout ?? "60 seconds")
  const segment = options.sizes?.segment ?? 65_536

  // Removes the run's prefix when the layer is released, even after failed tests.
  const cleanup = Layer.scopedDiscard(
    Effect.gen(function*() {
      const store = yield* ObjectStore.ObjectStore
      yield* Effect.addFinalizer(() => removeAll(store, runPrefix).pipe(Effect.ignore))
    })
  )

  layer(Layer.provideMerge(cleanup, options.layer), { timeout: options.timeout ?? "60 seconds", excludeTestServices: true })(
    options.name,
    (it) => {
      const test = (name: string, body: (store: ObjectStore.ObjectStore["Type"], base: string) => Effect.Effect<void, unknown>) =>
        it.effect(
          name,
          () =>
            Effect.gen(function*() {
              const store = yield* ObjectStore.ObjectStore
              const base = `${runPrefix}${name.replace(/[^a-z0-9]+/gi, "-").slice(0, 40)}/`
              yield* body(store, base)
            }),
          timeout
        )

      const partSizeOf = (store: ObjectStore.ObjectStore["Type"]) =>
        Math.max(options.sizes?.partSize ?? store.limits.minPartSize, store.limits.minPartSize)

      const roundTrip = (store: ObjectStore.ObjectStore["Type"], key: string, body: Uint8Array, known: boolean) =>
        Effect.gen(function*() {
          const put = yield* store.put(key, chunked(body), known ? { contentLength: body.length } : {})
          assert.strictEqual(put.size, body.length, `put size of ${body.length} B`)
          assert.isTrue(put.etag.length > 0, "put returns an etag")
          if (caps.md5Etags === true) assert.strictEqual(unquote(put.etag), md5(body), "etag is the MD5")
          const got = yield* ObjectStore.readAll(store, key)
          sameBytes(got.bytes, body, `${body.length} B body`)
          assert.strictEqual(got.info.size, body.length)
          const info = yield* store.head(key)
          assert.strictEqual(info.size, body.length)
          assert.strictEqual(unquote(info.etag), unquote(put.etag), "head etag equals put etag")
        })

      test("round-trips 0 B, 1 B and bodies around the segment boundary", (store, base) =>
        Effect.forEach(
          [0, 1, 2, segment - 1, segment, segment + 1, 2 * segment + 3],
          (n) => roundTrip(store, `${base}size-${n}`, random(n), true),
          { discard: true }
        ))

      if (options.sizes?.partBoundary !== false) {
        test("round-trips single puts around the part boundary", (store, base) =>
          Effect.gen(function*() {
            const p = partSizeOf(store)
            for (const n of [p - 1, p, p + 1]) yield* roundTrip(store, `${base}size-${n}`, random(n), true)
          }))
      }

      test("streams a body of unknown length in uneven chunks", (store, base) =>
        Effect.gen(function*() {
          yield* roundTrip(store, `${base}unknown`, random(3 * segment + 12_345), false)
          yield* roundTrip(store, `${base}unknown-empty`, new Uint8Array(0), false)
        }))

      test("assembles a multi-part object from parts uploaded out of order and concurrently", (store, base) =>
        Effect.gen(function*() {
          const p = partSizeOf(store)
          const bodies = [random(p), random(p), random(1234)]
          const whole = Buffer.concat(bodies)
          const key = `${base}multi`
          const upload = yield* store.createMultipart(key, { contentType: "application/x-test", metadata: { kind: "multi" } })
          const uploaded = yield* Effect.forEach(
            [3, 1, 2],
            (n) => store.uploadPart(upload, n, chunked(bodies[n - 1]!), { contentLength: bodies[n - 1]!.length }),
            { concurrency: "unbounded" }
          )
          const parts = [...uploaded].sort((a, b) => a.partNumber - b.partNumber)
          assert.deepStrictEqual(parts.map((x) => x.size), bodies.map((b) => b.length))
          const done = yield* store.completeMultipart(upload, parts)
          assert.strictEqual(done.size, whole.length)
          if (caps.md5Etags === true) {
            const md5s = Buffer.concat(bodies.map((b) => crypto.createHash("md5").update(b).digest()))
            assert.strictEqual(unquote(done.etag), `${md5(md5s)}-3`)
          }
          const got = yield* ObjectStore.readAll(store, key)
          sameBytes(got.bytes, whole, "multipart object")
          assert.strictEqual(got.info.contentType, "application/x-test")
          assert.deepStrictEqual({ ...got.info.metadata }, { kind: "multi" })
          const across = yield* ObjectStore.readAll(store, key, { range: ObjectStore.range.bounded(p - 10, p + 9) })
          sameBytes(across.bytes, whole.subarray(p - 10, p + 10), "range across a part boundary")
          const listed = yield* store.list({ prefix: key })
          assert.deepStrictEqual(listed.objects.map((o) => [o.key, o.size]), [[key, whole.length]])
        }))

      test("abort leaves nothing behind and ends the upload", (store, base) =>
        Effect.gen(function*() {
          const key = `${base}aborted`
          const upload = yield* store.createMultipart(key)
          const part = yield* store.uploadPart(upload, 1, Stream.make(random(1000)))
          yield* store.abortMultipart(upload)
          yield* failsWith(store.head(key), ["ObjectNotFound"], "head after abort")
          assert.deepStrictEqual(yield* listKeys(store, base), [])
          yield* failsWith(store.uploadPart(upload, 2, Stream.make(random(10))), ["PreconditionFailed"], "uploadPart after abort")
          yield* failsWith(store.completeMultipart(upload, [part]), ["PreconditionFailed"], "complete after abort")
          yield* failsWith(store.head(key), ["ObjectNotFound"], "head after a late complete")
        }))

      test("serves bounded, open-ended, suffix and clamped ranges", (store, base) =>
        Effect.gen(function*() {
          const key = `${base}ranged`
          const body = random(1000)
          yield* store.put(key, Stream.make(body), { contentLength: body.length })
          const r = ObjectStore.range
          const cases: ReadonlyArray<readonly [ObjectStore.ByteRange, number, number]> = [
            [r.bounded(0, 0), 0, 1],
            [r.bounded(10, 19), 10, 20],
            [r.from(990), 990, 1000],
            [r.suffix(10), 990, 1000],
            [r.bounded(995, 5000), 995, 1000],
            [r.suffix(5000), 0, 1000],
            [r.bounded(0, 999), 0, 1000]
          ]
          for (const [range, start, end] of cases) {
            const what = ObjectStore.formatRange(range)
            const got = yield* Effect.scoped(
              Effect.gen(function*() {
                const obj = yield* store.get(key, { range })
                const bytes = ObjectStore.concat(yield* Stream.runCollect(obj.body))
                return { obj, bytes }
              })
            )
            sameBytes(got.bytes, body.subarray(start, end), what)
            assert.deepStrictEqual(got.obj.range, { start, end }, `${what}: reported range`)
            assert.strictEqual(got.obj.info.size, 1000, `${what}: full size`)
          }
        }))

      test("rejects unsatisfiable ranges with InvalidRange", (store, base) =>
        Effect.gen(function*() {
          const key = `${base}ranged`
          yield* store.put(key, Stream.make(random(1000)), { contentLength: 1000 })
          const r = ObjectStore.range
          for (const range of [r.from(1000), r.bounded(1000, 1100), r.bounded(5000, 6000)]) {
            const e = yield* failsWith(ObjectStore.readAll(store, key, { range }), ["InvalidRange"], ObjectStore.formatRange(range))
            assert.strictEqual((e as { size?: number }).size, 1000)
          }
        }))

      test("round-trips content type and user metadata with non-ASCII values", (store, base) =>
        Effect.gen(function*() {
          const key = `${base}meta`
          const metadata: Record<string, string> = { greeting: "héllo wörld", cjk: "日本語のテキスト", emoji: "🔐 locked", plain: "v", "with-dash_and.dot": "x" }
          const before = Date.now()
          const put = yield* store.put(key, Stream.make(random(10)), { contentType: "text/plain; charset=utf-8", metadata })
          const info = yield* store.head(key)
          assert.deepStrictEqual({ ...info.metadata }, metadata)
          assert.strictEqual(info.contentType, "text/plain; charset=utf-8")
          assert.strictEqual(unquote(info.etag), unquote(put.etag))
          assert.strictEqual(info.key, key)
          assert.isTrue(Math.abs(info.lastModified.getTime() - before) < 10 * 60_000, "lastModified is about now")
          const got = yield* ObjectStore.readAll(store, key)
          assert.deepStrictEqual({ ...got.info.metadata }, metadata)
        }))

      test("missing objects: get and head fail with ObjectNotFound, remove succeeds", (store, base) =>
        Effect.gen(function*() {
          const key = `${base}missing`
          const e = yield* failsWith(ObjectStore.readAll(store, key), ["ObjectNotFound"], "get")
          assert.strictEqual((e as { key?: string }).key, key)
          yield* failsWith(store.head(key), ["ObjectNotFound"], "head")
          yield* store.remove(key)
          yield* store.put(key, Stream.make(random(3)))
          yield* store.remove(key)
          yield* failsWith(store.head(key), ["ObjectNotFound"], "head after remove")
          yield* store.remove(key)
        }))

      test("rejects empty and over-long keys, accepts a 1024-byte key", (store, base) =>
        Effect.gen(function*() {
          yield* failsWith(store.put("", Stream.make(random(1))), ["InvalidObjectKey"], "empty key")
          const long = base + "x".repeat(1025 - base.length)
          yield* failsWith(store.put(long, Stream.make(random(1))), ["InvalidObjectKey"], "1025-byte key")
          let max = base
          while (Buffer.byteLength(max) < 1024 - 101) max += "s".repeat(99) + "é/"
          max += "k".repeat(1024 - Buffer.byteLength(max))
          assert.strictEqual(Buffer.byteLength(max), 1024)
          yield* roundTrip(store, max, random(5), true)
        }))

      const listing = (base: string) => {
        const rel = ["a", "b/1", "b/2", "c", "d/x/y", "e", "é", "\uFF61", "\u{1F600}", "f-", "f/g"]
        return { keys: rel.map((k) => base + k), base }
      }
      const seed = (store: ObjectStore.ObjectStore["Type"], keys: ReadonlyArray<string>) =>
        Effect.forEach(keys, (k) => store.put(k, Stream.make(Buffer.from(k))), { concurrency: 4, discard: true })

      test("lists a prefix in UTF-8 byte order with sizes and etags", (store, base) =>
        Effect.gen(function*() {
          const { keys } = listing(base)
          yield* seed(store, keys)
          const page = yield* store.list({ prefix: base })
          assert.deepStrictEqual(page.objects.map((o) => o.key), utf8Sort(keys))
          assert.isUndefined(page.continuationToken)
          for (const o of page.objects) {
            assert.strictEqual(o.size, Buffer.byteLength(o.key))
            assert.isTrue(o.etag.length > 0)
            if (caps.md5Etags === true) assert.strictEqual(unquote(o.etag), md5(Buffer.from(o.key)))
          }
          const narrow = yield* store.list({ prefix: base + "b/" })
          assert.deepStrictEqual(narrow.objects.map((o) => o.key), [base + "b/1", base + "b/2"])
          const partial = yield* store.list({ prefix: base + "f" })
          assert.deepStrictEqual(partial.objects.map((o) => o.key), [base + "f-", base + "f/g"])
          const none = yield* store.list({ prefix: base + "zz" })
          assert.deepStrictEqual([none.objects.length, none.commonPrefixes.length], [0, 0])
        }))

      test("groups keys into common prefixes with a delimiter", (store, base) =>
        Effect.gen(function*() {
          const { keys } = listing(base)
          yield* seed(store, keys)
          const top = yield* store.list({ prefix: base, delimiter: "/" })
          assert.deepStrictEqual(top.objects.map((o) => o.key), utf8Sort(keys.filter((k) => !k.slice(base.length).includes("/"))))
          assert.deepStrictEqual([...top.commonPrefixes], [base + "b/", base + "d/", base + "f/"])
          const b = yield* store.list({ prefix: base + "b", delimiter: "/" })
          assert.deepStrictEqual([b.objects.length, [...b.commonPrefixes]], [0, [base + "b/"]])
          const d = yield* store.list({ prefix: base + "d/", delimiter: "/" })
          assert.deepStrictEqual([d.objects.length, [...d.commonPrefixes]], [0, [base + "d/x/"]])
          const dash = yield* store.list({ prefix: base, delimiter: "-" })
          assert.deepStrictEqual([...dash.commonPrefixes], [base + "f-"])
          assert.strictEqual(dash.objects.length, keys.length - 1)
          // Removing the last key under a prefix removes the prefix.
          yield* store.remove(base + "d/x/y")
          const after = yield* store.list({ prefix: base, delimiter: "/" })
          assert.deepStrictEqual([...after.commonPrefixes], [base + "b/", base + "f/"])
        }))

      test("paginates with maxKeys and continuation tokens, with and without a delimiter", (store, base) =>
        Effect.gen(function*() {
          const { keys } = listing(base)
          yield* seed(store, keys)
          const collect = (delimiter: string | undefined, maxKeys: number) =>
            Effect.gen(function*() {
              const objects: Array<string> = []
              const prefixes: Array<string> = []
              let token: string | undefined
              let pages = 0
              do {
                const page = yield* store.list({ prefix: base, delimiter, maxKeys, continuationToken: token })
                assert.isAtMost(page.objects.length + page.commonPrefixes.length, maxKeys, "page size")
                objects.push(...page.objects.map((o) => o.key))
                prefixes.push(...page.commonPrefixes)
                token = page.continuationToken
                pages++
                assert.isBelow(pages, 50, "pagination ends")
              } while (token !== undefined)
              return { objects, prefixes, pages }
            })
          const flat = yield* collect(undefined, 2)
          assert.deepStrictEqual(flat.objects, utf8Sort(keys))
          assert.strictEqual(flat.pages, Math.ceil(keys.length / 2))
          const grouped = yield* collect("/", 1)
          assert.deepStrictEqual(grouped.objects, utf8Sort(keys.filter((k) => !k.slice(base.length).includes("/"))))
          assert.deepStrictEqual(grouped.prefixes, [base + "b/", base + "d/", base + "f/"])
          const all = yield* listKeys(store, base)
          assert.deepStrictEqual(all, utf8Sort(keys))
        }))

      test("lists the keys after startAfter", (store, base) =>
        Effect.gen(function*() {
          const { keys } = listing(base)
          yield* seed(store, keys)
          const sorted = utf8Sort(keys)
          for (const after of [base + "b/2", base + "b", base + "c", base + "é"]) {
            const page = yield* store.list({ prefix: base, startAfter: after })
            const expected = sorted.filter((k) => Buffer.compare(Buffer.from(k), Buffer.from(after)) > 0)
            assert.deepStrictEqual(page.objects.map((o) => o.key), expected, `after ${after}`)
          }
          const grouped = yield* store.list({ prefix: base, delimiter: "/", startAfter: base + "b/1" })
          assert.deepStrictEqual([...grouped.commonPrefixes], [base + "b/", base + "d/", base + "f/"])
          // startAfter that is a group itself (what ListObjects v1 answers as NextMarker after a
          // common prefix) steps over the whole group, so paging by the last entry ends.
          const past = yield* store.list({ prefix: base, delimiter: "/", startAfter: base + "b/" })
          assert.deepStrictEqual([...past.commonPrefixes], [base + "d/", base + "f/"])
          assert.isFalse(past.objects.some((o) => o.key.startsWith(base + "b/")))
          const entries: Array<string> = []
          let marker: string | undefined
          for (let pages = 0; pages < 50; pages++) {
            const page = yield* store.list({ prefix: base, delimiter: "/", maxKeys: 1, startAfter: marker })
            const got = [...page.objects.map((o) => o.key), ...page.commonPrefixes].sort()
            entries.push(...got)
            marker = got.at(-1)
            if (page.continuationToken === undefined) break
            assert.isDefined(marker, "a page with more to follow names an entry to continue after")
          }
          const rolled = [...new Set(sorted.map((k) => {
            const cut = k.indexOf("/", base.length)
            return cut < 0 ? k : k.slice(0, cut + 1)
          }))]
          assert.deepStrictEqual(entries, utf8Sort(rolled))
        }))

      test("copies an object, keeping or replacing its metadata", (store, base) =>
        Effect.gen(function*() {
          const src = `${base}src`
          const body = random(segment + 17)
          yield* store.put(src, chunked(body), { contentType: "image/png", metadata: { origin: "café" } })
          const kept = yield* store.copy(src, `${base}kept`)
          assert.strictEqual(kept.size, body.length)
          const k = yield* ObjectStore.readAll(store, `${base}kept`)
          sameBytes(k.bytes, body, "copy")
          assert.deepStrictEqual({ ...k.info.metadata }, { origin: "café" })
          assert.strictEqual(k.info.contentType, "image/png")
          yield* store.copy(src, `${base}replaced`, { metadata: { other: "ünïcode" }, contentType: "text/plain" })
          const r = yield* store.head(`${base}replaced`)
          assert.deepStrictEqual({ ...r.metadata }, { other: "ünïcode" })
          assert.strictEqual(r.contentType, "text/plain")
          const s = yield* store.head(src)
          assert.deepStrictEqual({ ...s.metadata }, { origin: "café" })
          yield* failsWith(store.copy(`${base}nope`, `${base}dst`), ["ObjectNotFound"], "copy of a missing source")
          yield* failsWith(store.head(`${base}dst`), ["ObjectNotFound"], "no destination after a failed copy")
        }))

      test("copy with ifSourceMatch: the current etag copies, a stale one fails and writes nothing", (store, base) =>
        Effect.gen(function*() {
          const src = `${base}src`
          const first = random(segment + 5)
          yield* store.put(src, chunked(first), { contentType: "image/png", metadata: { v: "1" } })
          const v1 = yield* store.head(src)
          // The current etag: to another key, and onto the source itself (a metadata rewrite).
          yield* store.copy(src, `${base}dst`, { ifSourceMatch: v1.etag })
          sameBytes((yield* ObjectStore.readAll(store, `${base}dst`)).bytes, first, "copy with the current etag")
          yield* store.copy(src, src, { metadata: { v: "2" }, contentType: "image/png", ifSourceMatch: v1.etag })
          const v2 = yield* ObjectStore.readAll(store, src)
          assert.deepStrictEqual({ ...v2.info.metadata }, { v: "2" }, "same-key rewrite with the current etag")
          sameBytes(v2.bytes, first, "same-key rewrite keeps the body")
          // Another writer replaces the source after the head: the etag read before is stale.
          const stale = v2.info.etag
          const second = random(segment + 9)
          yield* store.put(src, chunked(second), { contentType: "text/plain", metadata: { v: "3" } })
          const e1 = yield* failsWith(store.copy(src, `${base}other`, { ifSourceMatch: stale }), ["PreconditionFailed"], "stale etag, new key")
          assert.strictEqual((e1 as { key?: string }).key, src, "the error names the source")
          yield* failsWith(store.head(`${base}other`), ["ObjectNotFound"], "no destination after a failed conditional copy")
          yield* failsWith(
            store.copy(src, `${base}dst`, { metadata: { v: "x" }, ifSourceMatch: stale }),
            ["PreconditionFailed"],
            "stale etag, existing destination"
          )
          const dst = yield* ObjectStore.readAll(store, `${base}dst`)
          sameBytes(dst.bytes, first, "the destination is untouched")
          assert.deepStrictEqual({ ...dst.info.metadata }, { v: "1" }, "the destination's metadata is untouched")
          yield* failsWith(
            store.copy(src, src, { metadata: { v: "4" }, contentType: "image/png", ifSourceMatch: stale }),
            ["PreconditionFailed"],
            "stale etag, same key"
          )
          const now = yield* ObjectStore.readAll(store, src)
          sameBytes(now.bytes, second, "the new body stays")
          assert.deepStrictEqual({ ...now.info.metadata }, { v: "3" }, "the new metadata stays")
          assert.strictEqual(now.info.contentType, "text/plain")
          // The current etag of the new version copies it.
          yield* store.copy(src, src, { metadata: { v: "5" }, contentType: "text/plain", ifSourceMatch: now.info.etag })
          assert.deepStrictEqual({ ...(yield* store.head(src)).metadata }, { v: "5" })
          // A missing source is still ObjectNotFound.
          yield* failsWith(store.copy(`${base}nope`, `${base}nope-dst`, { ifSourceMatch: stale }), ["ObjectNotFound"], "missing source")
          yield* failsWith(store.head(`${base}nope-dst`), ["ObjectNotFound"], "no destination for a missing source")
        }))

      if (caps.conditionalWrites !== false) {
        test("ifNoneMatch * only creates: PreconditionFailed when the key exists", (store, base) =>
          Effect.gen(function*() {
            const key = `${base}once`
            const first = random(100)
            yield* store.put(key, Stream.make(first), { ifNoneMatch: "*" })
            yield* failsWith(store.put(key, Stream.make(random(100)), { ifNoneMatch: "*" }), ["PreconditionFailed"], "second create")
            sameBytes((yield* ObjectStore.readAll(store, key)).bytes, first, "the first body stays")
          }))
      }

      test("completeMultipart with ifNoneMatch/ifMatch publishes only when the condition holds, and a refused upload can still complete or abort", (store, base) =>
        Effect.gen(function*() {
          const key = `${base}cond-mp`
          const staged = (k: string) =>
            Effect.gen(function*() {
              const body = random(segment + 3)
              const upload = yield* store.createMultipart(k)
              const parts = [yield* store.uploadPart(upload, 1, Stream.make(body), { contentLength: body.length })]
              return { upload, parts, body }
            })
          const first = random(100)
          const v1 = yield* store.put(key, Stream.make(first))
          const a = yield* staged(key)
          if (caps.conditionalCompletion === false) {
            for (const condition of [{ ifNoneMatch: "*" as const }, { ifMatch: v1.etag }]) {
              const e = yield* failsWith(store.completeMultipart(a.upload, a.parts, condition), ["ProviderError"], "a refused conditional completion")
              assert.strictEqual((e as { status?: number }).status, 400)
              sameBytes((yield* ObjectStore.readAll(store, key)).bytes, first, "nothing published")
            }
            yield* store.completeMultipart(a.upload, a.parts)
            sameBytes((yield* ObjectStore.readAll(store, key)).bytes, a.body, "the upload then completes unconditionally")
            return
          }
          // Over an existing key: create-only is refused; the upload stays and completes under the current etag.
          yield* failsWith(store.completeMultipart(a.upload, a.parts, { ifNoneMatch: "*" }), ["PreconditionFailed"], "ifNoneMatch over an existing key")
          sameBytes((yield* ObjectStore.readAll(store, key)).bytes, first, "the existing object stays")
          const v2 = yield* store.put(key, Stream.make(random(120)))
          yield* failsWith(store.completeMultipart(a.upload, a.parts, { ifMatch: v1.etag }), ["PreconditionFailed"], "a stale ifMatch")
          yield* store.completeMultipart(a.upload, a.parts, { ifMatch: v2.etag })
          sameBytes((yield* ObjectStore.readAll(store, key)).bytes, a.body, "published under the current etag")
          // A missing key: ifMatch refused (then aborted, nothing left), ifNoneMatch creates.
          const absent = `${base}cond-mp-absent`
          const b = yield* staged(absent)
          yield* failsWith(store.completeMultipart(b.upload, b.parts, { ifMatch: v2.etag }), ["PreconditionFailed"], "ifMatch on a missing key")
          yield* failsWith(store.head(absent), ["ObjectNotFound"], "nothing published")
          yield* store.abortMultipart(b.upload)
          const c = yield* staged(absent)
          yield* store.completeMultipart(c.upload, c.parts, { ifNoneMatch: "*" })
          sameBytes((yield* ObjectStore.readAll(store, absent)).bytes, c.body, "created")
          // Both conditions at once: a usage error before anything is published.
          const d = yield* staged(key)
          const both = yield* failsWith(store.completeMultipart(d.upload, d.parts, { ifNoneMatch: "*", ifMatch: v2.etag }), ["ProviderError"], "both conditions")
          assert.strictEqual((both as { status?: number }).status, 400)
          yield* store.abortMultipart(d.upload)
          sameBytes((yield* ObjectStore.readAll(store, key)).bytes, a.body, "unchanged")
        }))

      test("remove with ifMatch removes only that version; a stale etag or a missing key is PreconditionFailed and removes nothing", (store, base) =>
        Effect.gen(function*() {
          const key = `${base}cond-rm`
          const v1 = yield* store.put(key, Stream.make(random(50)))
          const body = random(60)
          const v2 = yield* store.put(key, Stream.make(body))
          if (caps.conditionalRemove === false) {
            const e = yield* failsWith(store.remove(key, { ifMatch: v2.etag }), ["ProviderError"], "a refused conditional remove")
            assert.strictEqual((e as { status?: number }).status, 400)
            sameBytes((yield* ObjectStore.readAll(store, key)).bytes, body, "nothing removed")
            return
          }
          yield* failsWith(store.remove(key, { ifMatch: v1.etag }), ["PreconditionFailed"], "a stale etag")
          sameBytes((yield* ObjectStore.readAll(store, key)).bytes, body, "nothing removed")
          yield* failsWith(store.remove(`${base}cond-rm-absent`, { ifMatch: v2.etag }), ["PreconditionFailed"], "a missing key")
          yield* store.remove(key, { ifMatch: `"${unquote(v2.etag)}"` })
          yield* failsWith(store.head(key), ["ObjectNotFound"], "removed")
          // Without a condition, removing a missing key still succeeds.
          yield* store.remove(key)
        }))

      test("concurrent writers to one key: one whole body wins, never a mix", (store, base) =>
        Effect.gen(function*() {
          const key = `${base}contended`
          for (let round = 0; round < 3; round++) {
            const bodies = Array.from({ length: 4 }, () => random(3 * segment + 1))
            const slow = (b: Uint8Array) => chunked(b, [16_384]).pipe(Stream.tap(() => Effect.yieldNow()))
            yield* Effect.forEach(bodies, (b) => store.put(key, slow(b)), { concurrency: "unbounded", discard: true })
            const got = yield* ObjectStore.readAll(store, key)
            const winner = bodies.findIndex((b) => b.equals(Buffer.from(got.bytes)))
            assert.isAtLeast(winner, 0, `round ${round}: the object is exactly one writer's body`)
            assert.strictEqual(unquote(got.info.etag), unquote((yield* store.head(key)).etag))
          }
        }))

      test("a body stream failing midway leaves no object, and an existing one intact", (store, base) =>
        Effect.gen(function*() {
          const failing = (n: number) =>
            Stream.concat(chunked(random(n)), Stream.fail(new BodyFailure({ at: n })))
          const fresh = `${base}fresh`
          const e = yield* Effect.flip(store.put(fresh, failing(2 * segment)))
          assert.strictEqual((e as { _tag?: string })._tag, "BodyFailure", "the body's own error comes out")
          yield* failsWith(store.head(fresh), ["ObjectNotFound"], "no object after a failed put")
          const old = `${base}old`
          const v1 = random(segment)
          yield* store.put(old, Stream.make(v1))
          const e2 = yield* Effect.flip(store.put(old, failing(segment + 5), { metadata: { v: "2" } }))
          assert.strictEqual((e2 as { _tag?: string })._tag, "BodyFailure")
          const got = yield* ObjectStore.readAll(store, old)
          sameBytes(got.bytes, v1, "previous version")
          assert.deepStrictEqual({ ...got.info.metadata }, {})
          assert.deepStrictEqual(yield* listKeys(store, base), [old])
        }))

      test("rejects server-side modes it does not honour with UnsupportedMode, writing nothing", (store, base) =>
        Effect.gen(function*() {
          // The modes the driver declares to the suite are the ones it says it honours.
          const declared = SSE_TAGS.filter((t) => (t === "SseKms" ? sse.SseKms !== undefined : sse[t] === true))
          const native = SSE_TAGS.filter((t) => store.nativeModes.has(t))
          assert.deepStrictEqual(native, declared, "capabilities.sse matches store.nativeModes")
          const key = `${base}unsupported`
          const src = `${base}source`
          yield* store.put(src, Stream.make(random(10)))
          const customerKey = yield* CustomerKey.generate
          const params: Record<(typeof SSE_TAGS)[number], ObjectStore.ServerSideEncryption> = {
            SseS3: { _tag: "SseS3" },
            SseKms: { _tag: "SseKms", keyId: "objcrypt-conformance" },
            SseC: { _tag: "SseC", key: customerKey }
          }
          for (const tag of SSE_TAGS.filter((t) => !store.nativeModes.has(t))) {
            const check = (e: unknown, what: string) => {
              assert.strictEqual((e as { mode?: ModeTag }).mode, tag, `${what}: the error names the mode`)
              assert.isAbove((e as { alternatives?: ReadonlyArray<string> }).alternatives?.length ?? 0, 0, `${what}: alternatives`)
            }
            check(yield* failsWith(store.put(key, Stream.make(random(10)), { sse: params[tag] }), ["UnsupportedMode"], `put ${tag}`), "put")
            check(yield* failsWith(store.createMultipart(key, { sse: params[tag] }), ["UnsupportedMode"], `createMultipart ${tag}`), "multipart")
            check(yield* failsWith(store.copy(src, key, { sse: params[tag] }), ["UnsupportedMode"], `copy ${tag}`), "copy")
            yield* failsWith(store.head(key), ["ObjectNotFound"], `nothing written for ${tag}`)
          }
          assert.deepStrictEqual(yield* listKeys(store, base), [src])
        }))

      if (sse.SseS3 === true) {
        test("SSE-S3: round trip, reported on put and head", (store, base) =>
          Effect.gen(function*() {
            const key = `${base}sse-s3`
            const body = random(segment + 1)
            const put = yield* store.put(key, chunked(body), { sse: { _tag: "SseS3" }, contentLength: body.length })
            assert.strictEqual(put.encryption.mode, "SseS3")
            assert.strictEqual((yield* store.head(key)).encryption.mode, "SseS3")
            sameBytes((yield* ObjectStore.readAll(store, key)).bytes, body, "SSE-S3 body")
          }))
      }

      if (sse.SseKms !== undefined) {
        const keyId = sse.SseKms.keyId
        test("SSE-KMS: round trip with the key id reported", (store, base) =>
          Effect.gen(function*() {
            const key = `${base}sse-kms`
            const body = random(segment + 1)
            const put = yield* store.put(key, chunked(body), { sse: { _tag: "SseKms", keyId }, contentLength: body.length })
            assert.strictEqual(put.encryption.mode, "SseKms")
            const info = yield* store.head(key)
            assert.strictEqual(info.encryption.mode, "SseKms")
            assert.include(info.encryption.kmsKeyId ?? "", keyId)
            sameBytes((yield* ObjectStore.readAll(store, key)).bytes, body, "SSE-KMS body")
          }))
      }

      if (sse.SseC === true) {
        test("SSE-C: reads need the same key; a missing or wrong key never returns data", (store, base) =>
          Effect.gen(function*() {
            const key = `${base}sse-c`
            const customerKey = yield* CustomerKey.generate
            const wrongKey = yield* CustomerKey.generate
            const mode: ObjectStore.ServerSideEncryption = { _tag: "SseC", key: customerKey }
            const wrong: ObjectStore.ServerSideEncryption = { _tag: "SseC", key: wrongKey }
            const body = random(segment + 1)
            const put = yield* store.put(key, chunked(body), { sse: mode, contentLength: body.length })
            assert.strictEqual(put.encryption.mode, "SseC")
            sameBytes((yield* ObjectStore.readAll(store, key, { sse: mode })).bytes, body, "SSE-C body")
            const ranged = yield* ObjectStore.readAll(store, key, { sse: mode, range: ObjectStore.range.suffix(100) })
            sameBytes(ranged.bytes, body.subarray(body.length - 100), "SSE-C suffix range")
            const info = yield* store.head(key, { sse: mode })
            assert.strictEqual(info.encryption.mode, "SseC")
            assert.strictEqual(info.encryption.customerKeyMd5, customerKey.md5)
            const storeTags = [...STORE_ERROR_TAGS]
            yield* failsWith(ObjectStore.readAll(store, key, { sse: wrong }), storeTags, "get with a wrong key")
            yield* failsWith(ObjectStore.readAll(store, key), storeTags, "get without the key")
            yield* failsWith(store.head(key, { sse: wrong }), storeTags, "head with a wrong key")
          }))

        test("SSE-C: multipart upload with the key on every part", (store, base) =>
          Effect.gen(function*() {
            const key = `${base}sse-c-multi`
            const customerKey = yield* CustomerKey.generate
            const mode: ObjectStore.ServerSideEncryption = { _tag: "SseC", key: customerKey }
            const p = partSizeOf(store)
            const bodies = [random(p), random(777)]
            const upload = yield* store.createMultipart(key, { sse: mode })
            const parts = yield* Effect.forEach(bodies, (b, i) => store.uploadPart(upload, i + 1, chunked(b), { contentLength: b.length, sse: mode }))
            yield* store.completeMultipart(upload, parts, { sse: mode })
            sameBytes((yield* ObjectStore.readAll(store, key, { sse: mode })).bytes, Buffer.concat(bodies), "SSE-C multipart body")
            yield* failsWith(ObjectStore.readAll(store, key), [...STORE_ERROR_TAGS], "get without the key")
          }))
      }

      test("cleans up everything it wrote", (store) =>
        Effect.gen(function*() {
          yield* removeAll(store, runPrefix)
          assert.deepStrictEqual(yield* listKeys(store, runPrefix), [])
        }))
    }
  )
}

/**
 * Error tags an `ObjectStore` may fail with.
 *
 * @since 0.1.0
 * @category utils
 */
export const storeErrorTags: ReadonlySet<StoreError["_tag"]> = STORE_ERROR_TAGS as ReadonlySet<StoreError["_tag"]>
