/**
 * s3cmd (Debian) against the gateway over HTTPS: put (single and multipart), get, ranged get
 * (`get --continue` resumes with a Range request), cp, ls, del, `--server-side-encryption` and
 * `--server-side-encryption-kms-id`. s3cmd has no SSE-C option.
 *
 * s3cmd checks that a PUT's ETag is the MD5 of the bytes unless the response says `aws:kms`, and a
 * download's MD5 against the ETag (or, for multipart objects, its own `s3cmd-attrs` metadata): the
 * plain (bucket default SSE-S3) and `--server-side-encryption` (AES256) runs keep those checks on.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { client, run, users } from "../ops/harness.js"
import { HeadObjectCommand } from "@aws-sdk/client-s3"
import { backendHoldsNoPlaintext, type ClientEnv, sameFile, setup } from "./setup.js"

const call = <A>(f: () => Promise<A>) => Effect.promise(f)

describe("s3cmd", () => {
  it.live("puts, gets, resumes with a range, multiparts, copies and lists with its SSE options", () =>
    Effect.gen(function*() {
      const env: ClientEnv = yield* call(() => setup("s3cmd"))
      try {
        const cfg = path.join(env.dir, "s3cfg")
        const host = new URL(env.gw.endpoint).host
        fs.writeFileSync(cfg, [
          "[default]",
          `access_key = ${users.alice.id}`,
          `secret_key = ${users.alice.secret}`,
          `host_base = ${host}`,
          `host_bucket = ${host}`,
          "use_https = True",
          "check_ssl_certificate = True",
          `ca_certs_file = ${env.ca}`,
          "signature_v2 = False",
          "bucket_location = us-east-1",
          "multipart_chunk_size_mb = 5",
          "progress_meter = False",
          ""
        ].join("\n"))
        const s3cmd = async (...args: Array<string>) => {
          const r = await run("s3cmd", ["-c", cfg, ...args], { env: { HOME: env.dir }, timeoutMs: 120_000 })
          if (r.code !== 0) throw new Error(`s3cmd ${args.join(" ")} failed (${r.code}): ${r.stderr}${r.stdout}`)
          return r.stdout
        }
        const out = (n: string) => path.join(env.work, n)
        yield* call(() => s3cmd("mb", "s3://s3cmd-bucket"))
        const s3 = client(env.gw.endpoint, users.alice, env.caPem)
        yield* call(() => s3cmd("put", env.small, "s3://s3cmd-bucket/small"))
        yield* call(() => s3cmd("put", "--server-side-encryption", env.small, "s3://s3cmd-bucket/small-aes"))
        yield* call(() => s3cmd("put", "--server-side-encryption", env.big, "s3://s3cmd-bucket/big-aes"))
        yield* call(() => s3cmd("put", "--server-side-encryption-kms-id=objcrypt-gateway-kms", env.big, "s3://s3cmd-bucket/big-kms"))
        for (const k of ["small", "small-aes", "big-aes", "big-kms"]) {
          yield* call(() => s3cmd("get", `s3://s3cmd-bucket/${k}`, out(k)))
          assert.isTrue(sameFile(k.startsWith("small") ? env.small : env.big, out(k)), k)
        }
        // The ETag s3cmd verified is the MD5 of the plaintext.
        const smallMd5 = crypto.createHash("md5").update(fs.readFileSync(env.small)).digest("hex")
        const smallHead = yield* call(() => s3.send(new HeadObjectCommand({ Bucket: "s3cmd-bucket", Key: "small" })))
        assert.strictEqual(smallHead.ETag, `"${smallMd5}"`)
        assert.strictEqual(smallHead.ServerSideEncryption, "AES256")
        const info = yield* call(() => s3cmd("info", "s3://s3cmd-bucket/small-aes"))
        assert.match(info, new RegExp(`MD5 sum:\\s+${smallMd5}`))
        // s3cmd info reads the object's ACL (GetObjectAcl): the bucket owner with FULL_CONTROL.
        assert.match(info, /ACL:\s+alice: FULL_CONTROL/)
        assert.strictEqual((yield* call(() => s3.send(new HeadObjectCommand({ Bucket: "s3cmd-bucket", Key: "big-kms" })))).ServerSideEncryption, "aws:kms")
        assert.strictEqual((yield* call(() => s3.send(new HeadObjectCommand({ Bucket: "s3cmd-bucket", Key: "big-aes" })))).ServerSideEncryption, "AES256")
        // A partial download resumed with --continue: s3cmd asks for the rest with a Range header.
        fs.writeFileSync(out("resumed"), fs.readFileSync(env.big).subarray(0, 3_000_001))
        yield* call(() => s3cmd("get", "--continue", "s3://s3cmd-bucket/big-aes", out("resumed")))
        assert.isTrue(sameFile(env.big, out("resumed")))
        yield* call(() => s3cmd("cp", "s3://s3cmd-bucket/big-kms", "s3://s3cmd-bucket/copy/big"))
        yield* call(() => s3cmd("cp", "s3://s3cmd-bucket/small-aes", "s3://s3cmd-bucket/copy/small"))
        yield* call(() => s3cmd("get", "s3://s3cmd-bucket/copy/small", out("copy-small")))
        assert.isTrue(sameFile(env.small, out("copy-small")))
        yield* call(() => s3cmd("get", "s3://s3cmd-bucket/copy/big", out("copy")))
        assert.isTrue(sameFile(env.big, out("copy")))
        const ls = yield* call(() => s3cmd("ls", "s3://s3cmd-bucket/"))
        assert.match(ls, /DIR\s+s3:\/\/s3cmd-bucket\/copy\//)
        assert.match(ls, new RegExp(`${fs.statSync(env.big).size}\\s+s3://s3cmd-bucket/big-aes`))
        const la = yield* call(() => s3cmd("ls", "--recursive", "s3://s3cmd-bucket/"))
        assert.strictEqual(la.trim().split("\n").length, 6)
        yield* call(() => s3cmd("del", "s3://s3cmd-bucket/small"))
        const after = yield* call(() => s3cmd("ls", "s3://s3cmd-bucket/"))
        assert.notMatch(after, /s3:\/\/s3cmd-bucket\/small$/m)
        assert.match(after, /s3:\/\/s3cmd-bucket\/small-aes$/m)
        assert.isAbove(backendHoldsNoPlaintext(env), 3)
      } finally {
        yield* call(() => env.gw.close())
      }
    }), { timeout: 240_000 })
})
