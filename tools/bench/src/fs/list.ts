/**
 * Benchmark: create many small objects in a driver-fs store, then list them (whole listing in
 * pages of 1000 and of 100, `/`-delimited, narrow prefix), reporting objects per second.
 *
 *   node tools/bench/src/fs/list.ts [count=100000] [--fsync]
 *
 * Runs on the TypeScript sources with Node 24's type stripping: a resolve hook adds the
 * `@objcrypt/source` condition and maps the sources' `.js` import suffixes to `.ts`.
 *
 * @since 0.1.0
 */
import type * as Core from "@objcrypt/core"
import type * as DriverFs from "@objcrypt/driver-fs"
import { Chunk, Effect, Stream } from "effect"
import { registerHooks } from "node:module"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

registerHooks({
  resolve(specifier, context, nextResolve) {
    const ctx = { ...context, conditions: ["@objcrypt/source", ...(context.conditions ?? [])] }
    try {
      return nextResolve(specifier, ctx)
    } catch (e) {
      if (specifier.startsWith(".") && specifier.endsWith(".js")) return nextResolve(specifier.slice(0, -3) + ".ts", ctx)
      throw e
    }
  }
})

// Loaded after the hook is in place; a computed specifier keeps the libraries statically linked
// for Nx (a literal dynamic import would mark them lazy-loaded for every other importer).
const load = <A>(specifier: string): Promise<A> => import(specifier) as Promise<A>
const { FsObjectStore } = await load<typeof DriverFs>("@objcrypt/driver-fs")
const { ObjectStore } = await load<typeof Core>("@objcrypt/core")

const count = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 100_000)
const durable = process.argv.includes("--fsync")
const root = fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-bench-fs-"))

const time = async <A>(f: () => Promise<A>): Promise<{ readonly value: A; readonly seconds: number }> => {
  const t0 = process.hrtime.bigint()
  const value = await f()
  return { value, seconds: Number(process.hrtime.bigint() - t0) / 1e9 }
}

const rate = (n: number, s: number) => `${Math.round(n / s).toLocaleString("en-US")} objects/s`
const report = (what: string, n: number, s: number) => console.log(`${what.padEnd(44)} ${String(n).padStart(7)} in ${s.toFixed(2)} s  ${rate(n, s)}`)

/**
 * The same work with bare `fs/promises` calls, no store: temp file, two writes, close, rename
 * into one directory; then readdir, sort and one 16 KiB header read per file. The machine is
 * shared and noisy, so the store's figures are also given as a ratio to this baseline.
 */
const baseline = async (n: number) => {
  const dir = path.join(root, "baseline")
  const tmp = path.join(root, "baseline-tmp")
  fs.mkdirSync(dir)
  fs.mkdirSync(tmp)
  const body = crypto.randomBytes(64)
  let next = 0
  const created = await time(() =>
    Promise.all(Array.from({ length: 16 }, async () => {
      while (next < n) {
        const i = next++
        const t = path.join(tmp, crypto.randomBytes(12).toString("hex"))
        const h = await fs.promises.open(t, "wx", 0o600)
        await h.write(body, 0, body.length, 256)
        await h.write(Buffer.alloc(256, 0x20), 0, 256, 0)
        await h.close()
        await fs.promises.mkdir(dir, { recursive: true })
        await fs.promises.rename(t, path.join(dir, `obj-${String(i).padStart(6, "0")}%`))
      }
    }))
  )
  const listed = await time(async () => {
    const names = (await fs.promises.readdir(dir)).sort()
    let j = 0
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (j < names.length) {
        const h = await fs.promises.open(path.join(dir, names[j++]!), "r")
        await h.read(Buffer.allocUnsafe(16 * 1024), 0, 16 * 1024, 0)
        await h.close()
      }
    }))
    return names.length
  })
  fs.rmSync(dir, { recursive: true })
  return { created: created.seconds, listed: listed.seconds }
}

const main = Effect.gen(function*() {
  const base = yield* Effect.promise(() => baseline(count))
  report("baseline: bare fs create + rename", count, base.created)
  report("baseline: bare readdir + header reads", count, base.listed)

  const store = yield* FsObjectStore.make({ root, fsync: durable })
  const key = (i: number) => `bench/obj-${String(i).padStart(6, "0")}`
  const body = crypto.randomBytes(64)

  const created = yield* Effect.promise(() =>
    time(() =>
      Effect.runPromise(Effect.forEach(
        Array.from({ length: count }, (_, i) => i),
        (i) => store.put(key(i), Stream.make(body), { contentLength: body.length }),
        { concurrency: 16, discard: true }
      ))
    )
  )
  report(`create (64 B each, fsync ${durable ? "on" : "off"})`, count, created.seconds)
  console.log(`  = ${(base.created / created.seconds).toFixed(2)}× the bare-fs baseline`)

  const listAll = (maxKeys: number) =>
    Effect.promise(() =>
      time(() =>
        Effect.runPromise(
          ObjectStore.listAll(store, { prefix: "bench/", maxKeys }).pipe(Stream.runCount)
        )
      )
    )

  const fresh = yield* listAll(1000)
  report("list all, pages of 1000 (just written)", fresh.value, fresh.seconds)
  // Sorted directory listings are reused once the directory has been unchanged for 2 s.
  yield* Effect.sleep("2500 millis")
  for (const maxKeys of [1000, 100]) {
    const r = yield* listAll(maxKeys)
    report(`list all, pages of ${maxKeys}`, r.value, r.seconds)
    console.log(`  = ${(base.listed / r.seconds).toFixed(2)}× the bare-fs baseline`)
    if (r.value !== count) throw new Error(`listed ${r.value} of ${count}`)
  }
  const firstPage = yield* Effect.promise(() => time(() => Effect.runPromise(store.list({ prefix: "bench/", maxKeys: 1000 }))))
  report("one page of 1000", firstPage.value.objects.length, firstPage.seconds)
  const narrow = yield* Effect.promise(() =>
    time(() => Effect.runPromise(ObjectStore.listAll(store, { prefix: "bench/obj-0500" }).pipe(Stream.runCollect, Effect.map(Chunk.size))))
  )
  report("narrow prefix bench/obj-0500", narrow.value, narrow.seconds)
  const grouped = yield* Effect.promise(() => time(() => Effect.runPromise(store.list({ delimiter: "/" }))))
  report("delimiter / at the root (1 common prefix)", grouped.value.commonPrefixes.length, grouped.seconds)
  console.log(`peak RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MiB, node ${process.version}`)
})

try {
  await Effect.runPromise(main)
} finally {
  fs.rmSync(root, { recursive: true, force: true })
}
