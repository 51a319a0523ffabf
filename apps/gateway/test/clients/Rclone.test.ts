/**
 * rclone (Debian) against the gateway over HTTPS: copyto (single and multipart), cat with
 * `--offset/--count` (ranged get), server-side copy, lsf/lsl, delete, and its SSE options
 * (`--s3-server-side-encryption AES256|aws:kms`, `--s3-sse-kms-key-id`, `--s3-sse-customer-*`).
 *
 * rclone checks that a single-part object's ETag is the MD5 of its bytes (S3 does that for plain and
 * SSE-S3 objects, and so does the gateway), and a multipart object's MD5 against the
 * `md5chksum` metadata it writes: checksum verification stays on.
 */
import { HeadObjectCommand } from "@aws-sdk/client-s3"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { client, run, users } from "../ops/harness.js"
import { backendHoldsNoPlaintext, type ClientEnv, sameFile, setup } from "./setup.js"

const call = <A>(f: () => Promise<A>) => Effect.promise(f)

describe("rclone", () => {
  it.live("puts, gets, ranges, multiparts, copies and lists with every SSE option", () =>
    Effect.gen(function*() {
      const env: ClientEnv = yield* call(() => setup("rclone"))
      try {
        const rcloneEnv = {
          HOME: env.dir,
          RCLONE_CONFIG: path.join(env.dir, "rclone.conf"),
          RCLONE_CONFIG_GW_TYPE: "s3",
          RCLONE_CONFIG_GW_PROVIDER: "Other",
          RCLONE_CONFIG_GW_ACCESS_KEY_ID: users.alice.id,
          RCLONE_CONFIG_GW_SECRET_ACCESS_KEY: users.alice.secret,
          RCLONE_CONFIG_GW_ENDPOINT: env.gw.endpoint,
          RCLONE_CONFIG_GW_REGION: "us-east-1",
          RCLONE_CONFIG_GW_FORCE_PATH_STYLE: "true",
          AWS_CA_BUNDLE: undefined
        }
        fs.writeFileSync(rcloneEnv.RCLONE_CONFIG, "")
        const b64 = env.customerKey.toString("base64")
        const md5 = crypto.createHash("md5").update(env.customerKey).digest("base64")
        const ssec = ["--s3-sse-customer-algorithm", "AES256", "--s3-sse-customer-key-base64", b64, "--s3-sse-customer-key-md5", md5]
        const rclone = async (...args: Array<string>) => {
          const r = await run("rclone", ["--ca-cert", env.ca, "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", "--retries", "1", "--low-level-retries", "1", ...args], {
            env: rcloneEnv,
            timeoutMs: 120_000
          })
          if (r.code !== 0) throw new Error(`rclone ${args.join(" ")} failed (${r.code}): ${r.stderr}`)
          return r.stdout
        }
        const out = (n: string) => path.join(env.work, n)
        yield* call(() => rclone("mkdir", "gw:rclone-bucket"))
        yield* call(() => rclone("copyto", env.small, "gw:rclone-bucket/small"))
        yield* call(() => rclone("copyto", env.big, "gw:rclone-bucket/big-aes", "--s3-server-side-encryption", "AES256"))
        yield* call(() => rclone("copyto", env.big, "gw:rclone-bucket/big-kms", "--s3-server-side-encryption", "aws:kms", "--s3-sse-kms-key-id", "objcrypt-gateway-kms"))
        yield* call(() => rclone("copyto", env.big, "gw:rclone-bucket/big-ssec", ...ssec))
        yield* call(() => rclone("copyto", env.small, "gw:rclone-bucket/small-ssec", ...ssec))
        for (const [k, src, extra] of [["small", env.small, []], ["big-aes", env.big, []], ["big-kms", env.big, []], ["big-ssec", env.big, ssec], ["small-ssec", env.small, ssec]] as const) {
          yield* call(() => rclone("copyto", `gw:rclone-bucket/${k}`, out(k), ...extra))
          assert.isTrue(sameFile(src, out(k)), k)
        }
        const s3 = client(env.gw.endpoint, users.alice, env.caPem)
        assert.strictEqual((yield* call(() => s3.send(new HeadObjectCommand({ Bucket: "rclone-bucket", Key: "big-kms" })))).ServerSideEncryption, "aws:kms")
        assert.strictEqual((yield* call(() => s3.send(new HeadObjectCommand({ Bucket: "rclone-bucket", Key: "big-aes" })))).ServerSideEncryption, "AES256")
        const refused = yield* call(() => s3.send(new HeadObjectCommand({ Bucket: "rclone-bucket", Key: "big-ssec" })).then(() => 0, (e: { $metadata?: { httpStatusCode?: number } }) => e.$metadata?.httpStatusCode))
        assert.strictEqual(refused, 400)
        // Ranged reads.
        const bigBytes = fs.readFileSync(env.big)
        const part = yield* call(() => run("rclone", ["--ca-cert", env.ca, "cat", "--offset", "6000000", "--count", "777", "gw:rclone-bucket/big-aes"], { env: rcloneEnv }))
        assert.strictEqual(part.code, 0, part.stderr)
        assert.strictEqual(part.stdout, bigBytes.subarray(6000000, 6000777).toString("utf8"))
        const partC = yield* call(() => run("rclone", ["--ca-cert", env.ca, "cat", "--offset", "10", "--count", "20", ...ssec, "gw:rclone-bucket/big-ssec"], { env: rcloneEnv }))
        assert.strictEqual(partC.stdout, bigBytes.subarray(10, 30).toString("utf8"))
        // Server-side copy, listing, delete.
        yield* call(() => rclone("copyto", "gw:rclone-bucket/big-kms", "gw:rclone-bucket/dir/copied"))
        yield* call(() => rclone("copyto", "gw:rclone-bucket/dir/copied", out("copied")))
        assert.isTrue(sameFile(env.big, out("copied")))
        const lsf = yield* call(() => rclone("lsf", "gw:rclone-bucket"))
        assert.deepStrictEqual(lsf.trim().split("\n").sort(), ["big-aes", "big-kms", "big-ssec", "dir/", "small", "small-ssec"])
        const lsl = yield* call(() => rclone("ls", "gw:rclone-bucket"))
        assert.match(lsl, new RegExp(`${bigBytes.length} dir/copied`))
        // rclone's MD5 of the plain single-part object is its ETag: the plaintext's MD5.
        const sums = yield* call(() => rclone("md5sum", "gw:rclone-bucket", "--include", "small"))
        assert.strictEqual(sums.trim(), `${crypto.createHash("md5").update(fs.readFileSync(env.small)).digest("hex")}  small`)
        yield* call(() => rclone("deletefile", "gw:rclone-bucket/small"))
        assert.notInclude(yield* call(() => rclone("lsf", "gw:rclone-bucket")), "small\n")
        assert.isAbove(backendHoldsNoPlaintext(env), 5)
      } finally {
        yield* call(() => env.gw.close())
      }
    }), { timeout: 240_000 })
})
