#!/usr/bin/env node
/**
 * Bundles an app's bin (TypeScript sources, workspace packages included) into one ES module
 * with esbuild, so the process loads a few files instead of ~800 ESM modules: a third less idle
 * RSS, and a live heap half the size, which halves the cost of every full GC (the gateway's
 * streaming path triggers one per 64 MiB of buffers; measured in tools/bench/src/gateway).
 *
 *   node tools/scripts/bundle.mjs <projectDir> <entry.ts> <outfile.mjs> [node flags…]
 *
 * Node flags given after the outfile go into the bin's `#!/usr/bin/env -S node <flags>` line, so
 * the installed bin runs with them (V8 reads heap-sizing flags only at start: they cannot be set
 * from inside the process, and NODE_OPTIONS refuses them). `--initial-old-space-size=128` lets
 * the old generation start at 128 MB instead of growing from a few MB: the streaming paths, whose
 * garbage is buffers (external memory) rather than JS objects, then trigger a full GC about a
 * third as often (measured: `objcrypt cp` of 512 MiB with cse-c, 47 → 16 full GCs, same peak
 * RSS; the gateway's SSE-C GET used half the CPU). The gateway starts at 64 MB with
 * `--heap-growing-percent=100` (growth capped at 2× the live heap): 60–80 MiB less RSS under many
 * concurrent small requests for ~5 % more CPU on large GETs (apps/gateway/README.md, "Heap
 * flags"). Benchmarks that run a bin read these flags from its first line.
 *
 * effect, @effect/* and @objcrypt/* are bundled (their modules are side-effect free and
 * tree-shaken); every other package stays an import resolved from node_modules at run time —
 * native add-ons (pkcs11js), the cloud SDKs, ws — and must be a dependency of the app. Dynamic
 * imports (the cloud drivers) become chunks loaded on first use, so a server on the local
 * filesystem never loads a cloud SDK. The externals are printed: a new one must be declared.
 */
import * as esbuild from "esbuild"
import * as fs from "node:fs"
import * as path from "node:path"

const [projectDir, entry, outfile, ...nodeFlags] = process.argv.slice(2)
if (projectDir === undefined || entry === undefined || outfile === undefined) {
  console.error("usage: bundle.mjs <projectDir> <entry.ts> <outfile.mjs>")
  process.exit(2)
}
const root = path.resolve(projectDir)
const outdir = path.join(root, path.dirname(outfile))
const bundled = (name) => name === "effect" || name.startsWith("effect/") || name.startsWith("@effect/") || name.startsWith("@objcrypt/")
const externals = new Set()

const result = await esbuild.build({
  entryPoints: { [path.basename(outfile, path.extname(outfile))]: path.join(root, entry) },
  outdir,
  outExtension: { ".js": path.extname(outfile) },
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node22",
  conditions: ["@objcrypt/source"],
  // CommonJS dependencies that esbuild inlines call require(); give the ES module one.
  banner: { js: "import { createRequire as __objcryptRequire } from \"node:module\"; const require = __objcryptRequire(import.meta.url);" },
  chunkNames: "chunks/[name]-[hash]",
  sourcemap: "linked",
  logLevel: "warning",
  metafile: true,
  plugins: [{
    name: "externals",
    setup(build) {
      // effect's Schema imports its Arbitrary module, which re-exports fast-check (property-test
      // generators). The bins never generate test data, yet loading it costs ~9 MB of RSS and
      // 2.3 MB of live heap that every full GC marks again. It is replaced by an empty module, so
      // a call into it would fail loudly (not a function) rather than silently misbehave.
      build.onResolve({ filter: /^fast-check$/ }, () => ({ path: "fast-check", namespace: "objcrypt-omitted" }))
      build.onLoad({ filter: /.*/, namespace: "objcrypt-omitted" }, () => ({ contents: "export {}", loader: "js" }))
      build.onResolve({ filter: /^[^./]/ }, (args) => {
        if (args.path.startsWith("node:")) return { path: args.path, external: true }
        const name = args.path.startsWith("@") ? args.path.split("/").slice(0, 2).join("/") : args.path.split("/")[0]
        if (bundled(name)) return undefined
        externals.add(name)
        return { path: args.path, external: true }
      })
    }
  }]
})
const out = Object.entries(result.metafile.outputs).filter(([f]) => !f.endsWith(".map"))
const bytes = out.reduce((n, [, o]) => n + o.bytes, 0)
console.log(`${path.relative(process.cwd(), path.join(root, outfile))}: ${out.length} files, ${(bytes / 1e6).toFixed(2)} MB; external: ${[...externals].sort().join(", ")}`)
const main = path.join(root, outfile)
const text = fs.readFileSync(main, "utf8")
const body = text.startsWith("#!") ? text.slice(text.indexOf("\n") + 1) : text
fs.writeFileSync(main, `#!/usr/bin/env ${nodeFlags.length === 0 ? "node" : `-S node ${nodeFlags.join(" ")}`}\n${body}`)
fs.chmodSync(main, 0o755)
