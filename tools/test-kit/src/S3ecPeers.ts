/**
 * AWS's own S3 Encryption Clients as test peers: the Go SDK v1 `s3crypto` V2 client and Ruby's
 * `Aws::S3::EncryptionV2::Client` (and legacy V1), the programs in tools/test-kit/interop/s3ec,
 * run from Debian's packages. The Go program is built offline (GOPATH=/usr/share/gocode) on first
 * use; both talk to one endpoint for S3 and KMS.
 *
 * ```ts
 * const peers = yield* S3ecPeers
 * yield* peers.go(["put", bucket, key, cmk, peers.file(bytes)])
 * yield* peers.ruby(["get", bucket, key, "kms", cmk, path.join(peers.directory, "out")])
 * ```
 *
 * @since 0.1.0
 */
import { Context, Data, Effect, Layer } from "effect"
import type * as Scope from "effect/Scope"
import { execFile } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"

const run = promisify(execFile)

/**
 * `tools/test-kit/interop/s3ec`: `go/main.go`, `ruby/s3ec.rb` and `java/`.
 *
 * @since 0.1.0
 * @category constants
 */
export const interopDirectory: string = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../interop/s3ec")

/**
 * A peer that failed (or could not be built); the message carries its stderr.
 *
 * @since 0.1.0
 * @category errors
 */
export class PeerError extends Data.TaggedError("PeerError")<{
  readonly command: string
  readonly detail: string
}> {
  override get message() {
    return `${this.command} failed: ${this.detail}`
  }
}

/**
 * @since 0.1.0
 * @category models
 */
export interface S3ecPeersOptions {
  /** One endpoint for S3 and KMS (`S3EC_ENDPOINT`). */
  readonly endpoint: string
  /** `AWS_REGION` of the peers. */
  readonly region: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Peers {
  /** A scratch directory for the peers' input and output files, removed when the scope closes. */
  readonly directory: string
  /** Writes `bytes` to a new file in `directory` (mode 0600) and returns its path. */
  readonly file: (bytes: Uint8Array | string) => string
  /** Runs the Go client (`go/main.go`): `<mode> <bucket> <key> <cmk> <file>`. */
  readonly go: (args: ReadonlyArray<string>) => Effect.Effect<void, PeerError>
  /** Runs the Ruby client (`ruby/s3ec.rb`): `<mode> <bucket> <key> <wrap> <key-arg> <file>`. */
  readonly ruby: (args: ReadonlyArray<string>) => Effect.Effect<void, PeerError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class S3ecPeers extends Context.Tag("@objcrypt/test-kit/S3ecPeers")<S3ecPeers, Peers>() {}

const stderrOf = (e: unknown) => (e as { stderr?: string }).stderr || String(e)

/**
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: S3ecPeersOptions): Effect.Effect<Peers, never, Scope.Scope> =>
  Effect.gen(function*() {
    const directory = yield* Effect.acquireRelease(
      Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "objcrypt-s3ec-peers-"))),
      (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
    )
    const goBinary = path.join(directory, "s3ec-go")
    const build = yield* Effect.cached(
      Effect.tryPromise({
        try: () =>
          run("go", ["build", "-o", goBinary, "."], {
            cwd: path.join(interopDirectory, "go"),
            env: { ...process.env, GO111MODULE: "off", GOPATH: "/usr/share/gocode", GOFLAGS: "" },
            timeout: 300_000
          }),
        catch: (e) => new PeerError({ command: "building the Go client", detail: stderrOf(e) })
      })
    )
    const client = (command: string, args: ReadonlyArray<string>) =>
      Effect.tryPromise({
        try: () =>
          run(command, [...args], { env: { ...process.env, S3EC_ENDPOINT: options.endpoint, AWS_REGION: options.region }, timeout: 120_000 }),
        catch: (e) => new PeerError({ command: `${command} ${args.join(" ")}`, detail: stderrOf(e) })
      }).pipe(Effect.asVoid)
    return {
      directory,
      file: (bytes) => {
        const f = path.join(directory, crypto.randomBytes(6).toString("hex"))
        fs.writeFileSync(f, bytes, { mode: 0o600 })
        return f
      },
      go: (args) => Effect.zipRight(build, client(goBinary, args)),
      ruby: (args) => client("ruby", [path.join(interopDirectory, "ruby/s3ec.rb"), ...args])
    }
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: S3ecPeersOptions): Layer.Layer<S3ecPeers> => Layer.scoped(S3ecPeers, make(options))
