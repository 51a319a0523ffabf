/**
 * A one-node Ceph cluster with the RADOS Gateway (S3) on 127.0.0.1, built in a temporary
 * directory for one test run: monitor, one memstore OSD, radosgw with the beast frontend and the
 * `testing` KMS backend, so SSE-C and SSE-KMS are really enforced. Needs the Debian packages
 * `radosgw ceph-mon ceph-osd ceph-common` (`.ci/install-deps.sh`); a cluster that cannot start
 * fails the run.
 *
 * @since 0.1.0
 */
import { Clock, Context, Duration, Effect, Layer } from "effect"
import type * as Scope from "effect/Scope"
import * as crypto from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { daemon, freePort, run, ServerError, waitUntil } from "./internal/process.js"

export {
  /**
   * @since 0.1.0
   * @category errors
   */
  ServerError
} from "./internal/process.js"

/**
 * A running RGW and how to reach it.
 *
 * @since 0.1.0
 * @category models
 */
export interface CephRgwInfo {
  /** `http://127.0.0.1:<port>` (path-style addressing). */
  readonly endpoint: string
  readonly region: string
  readonly accessKeyId: string
  readonly secretAccessKey: string
  /** Key ids the `testing` KMS backend knows (`SSEKMSKeyId`). */
  readonly kmsKeyIds: ReadonlyArray<string>
  /** The cluster's temporary directory (config, logs), removed on release. */
  readonly dataDir: string
  /** Runs the `rados` tool against the cluster and returns its stdout. */
  readonly rados: (args: ReadonlyArray<string>) => Effect.Effect<Buffer, ServerError>
  /** Names of the RADOS objects in a pool (default: the bucket data pool). */
  readonly radosList: (pool?: string) => Effect.Effect<ReadonlyArray<string>, ServerError>
  /** The raw bytes of one RADOS object, as stored (ciphertext for encrypted S3 objects). */
  readonly radosGet: (object: string, pool?: string) => Effect.Effect<Buffer, ServerError>
  /** Runs `radosgw-admin` and returns its stdout. */
  readonly admin: (args: ReadonlyArray<string>) => Effect.Effect<string, ServerError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class CephRgw extends Context.Tag("@objcrypt/test-kit/CephRgw")<CephRgw, CephRgwInfo>() {}

/**
 * The pool RGW stores object data in.
 *
 * @since 0.1.0
 * @category constants
 */
export const DATA_POOL = "default.rgw.buckets.data"

/**
 * @since 0.1.0
 * @category models
 */
export interface CephRgwOptions {
  /** @default "120 seconds" — generous for a loaded 2-core CI machine; normal start-up is ~5–15 s. */
  readonly startTimeout?: Duration.DurationInput | undefined
  /** Extra `[client]` options for radosgw (`"rgw max put size": "..."`). */
  readonly rgwOptions?: Readonly<Record<string, string>> | undefined
}

const conf = (dir: string, fsid: string, monPort: number, rgwPort: number, kmsKeys: ReadonlyArray<readonly [string, string]>, extra: Readonly<Record<string, string>>) =>
  `[global]
fsid = ${fsid}
mon host = v2:127.0.0.1:${monPort}
mon initial members = a
public network = 127.0.0.0/8
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
ms mon client mode = crc
ms bind ipv4 = true
ms bind ipv6 = false
run dir = ${dir}/run
log file = ${dir}/log/$name.log
admin socket = ${dir}/run/$name.asok
pid file = ${dir}/run/$name.pid
keyring = ${dir}/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail crit = 1
mon data avail warn = 2
# Every pool RGW creates is one monitor proposal; the 1 s default interval makes start-up ~12 s.
paxos propose interval = 0.02
paxos min wait = 0.01

[mon]
mon data = ${dir}/mon/$name

[osd]
osd objectstore = memstore
osd data = ${dir}/osd/$name
memstore device bytes = 4294967296
osd max object name len = 2048
osd max object namespace len = 256

[client]
# With cephx off, radosgw waits 300 s for a mon session unless the client side agrees too.
auth client required = none
ms mon client mode = crc
rgw data = ${dir}/rgw
rgw frontends = beast endpoint=127.0.0.1:${rgwPort}
rgw crypt require ssl = false
rgw crypt s3 kms backend = testing
rgw crypt s3 kms encryption keys = ${kmsKeys.map(([id, k]) => `${id}=${k}`).join(" ")}
${Object.entries(extra).map(([k, v]) => `${k} = ${v}`).join("\n")}
`

/**
 * Starts the cluster in the scope; on release every process it started is stopped by PID and
 * its directory removed.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options?: CephRgwOptions): Effect.Effect<CephRgwInfo, ServerError, Scope.Scope> =>
  Effect.gen(function*() {
    const timeout = options?.startTimeout ?? "120 seconds"
    // Released last (scopes close in reverse order): after every daemon has stopped.
    const dir = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => fs.mkdtemp(path.join(os.tmpdir(), "objcrypt-rgw-")),
        catch: (e) => new ServerError({ server: "ceph-rgw", detail: `cannot create a temp dir: ${String(e)}` })
      }),
      (d) => Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
    )
    for (const sub of ["run", "log", "mon/mon.a", "osd/osd.0", "rgw"]) {
      yield* Effect.promise(() => fs.mkdir(path.join(dir, sub), { recursive: true }))
    }
    const monPort = yield* freePort
    const rgwPort = yield* freePort
    const fsid = crypto.randomUUID()
    const kmsKeys = [1, 2].map((i) => [`testkey-${i}`, crypto.randomBytes(32).toString("base64")] as const)
    const confPath = path.join(dir, "ceph.conf")
    yield* Effect.promise(() =>
      fs.writeFile(confPath, conf(dir, fsid, monPort, rgwPort, kmsKeys, options?.rgwOptions ?? {}))
    )
    const c = ["-c", confPath]
    const tool = (name: string, args: ReadonlyArray<string>) => run("ceph-rgw", name, [...c, ...args], { cwd: dir })

    yield* tool("monmaptool", ["--create", "--fsid", fsid, "--addv", "a", `[v2:127.0.0.1:${monPort}]`, path.join(dir, "monmap")])
    yield* tool("ceph-mon", ["-i", "a", "--mkfs", "--monmap", path.join(dir, "monmap")])
    const mon = yield* daemon("ceph-mon", "ceph-mon", [...c, "-f", "-i", "a"], { cwd: dir })
    yield* waitUntil("ceph-rgw", tool("ceph", ["--connect-timeout", "5", "health"]), { timeout, watch: [mon] })
    yield* tool("ceph", ["osd", "create"])
    yield* tool("ceph-osd", ["-i", "0", "--mkfs"])
    const osd = yield* daemon("ceph-osd", "ceph-osd", [...c, "-f", "-i", "0"], { cwd: dir, graceMs: 1000 })
    const rgw = yield* daemon("radosgw", "radosgw", [...c, "-f", "-n", "client.rgw.a"], { cwd: dir, graceMs: 1000 })
    const endpoint = `http://127.0.0.1:${rgwPort}`
    yield* waitUntil(
      "ceph-rgw",
      Effect.tryPromise(async () => {
        const res = await fetch(`${endpoint}/`, { signal: AbortSignal.timeout(2000) })
        await res.arrayBuffer()
        if (res.status !== 200) throw new Error(String(res.status))
      }),
      { timeout, watch: [mon, osd, rgw] }
    )
    const admin = (args: ReadonlyArray<string>) =>
      Effect.map(tool("radosgw-admin", ["-n", "client.admin", ...args]), (r) => r.stdout.toString("utf8"))
    const accessKeyId = `OBJCRYPT${crypto.randomBytes(6).toString("hex").toUpperCase()}`
    const secretAccessKey = crypto.randomBytes(30).toString("base64url")
    yield* admin([
      "user",
      "create",
      "--uid=objcrypt",
      "--display-name=objcrypt tests",
      `--access-key=${accessKeyId}`,
      `--secret=${secretAccessKey}`
    ])
    const rados = (args: ReadonlyArray<string>) => Effect.map(tool("rados", args), (r) => r.stdout)
    return {
      endpoint,
      region: "us-east-1",
      accessKeyId,
      secretAccessKey,
      kmsKeyIds: kmsKeys.map(([id]) => id),
      dataDir: dir,
      rados,
      radosList: (pool = DATA_POOL) =>
        Effect.map(rados(["-p", pool, "ls"]), (b) => b.toString("utf8").split("\n").filter((l) => l !== "")),
      radosGet: (object: string, pool = DATA_POOL) => rados(["-p", pool, "get", object, "-"]),
      admin
    }
  }).pipe(
    // Start-up timeouts and retries need real time, also under @effect/vitest's TestClock.
    Effect.withClock(Clock.make()),
    Effect.withSpan("CephRgw.make")
  )

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: CephRgwOptions): Layer.Layer<CephRgw, ServerError> => Layer.scoped(CephRgw, make(options))
