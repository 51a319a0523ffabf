/**
 * AWS CLI v2 (`/usr/bin/aws`, Debian `awscli`) against the gateway over HTTPS: `aws s3` (cp with
 * multipart, ls, copy between keys, every `--sse` option) and `aws s3api` (put/get/head, ranged get,
 * copy-object with copy-source SSE-C, list-objects-v2, the multipart calls, object and bucket tagging,
 * ACLs and versioning).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { run, users } from "../ops/harness.js"
import { backendHoldsNoPlaintext, type ClientEnv, sameFile, setup } from "./setup.js"

const call = <A>(f: () => Promise<A>) => Effect.promise(f)

describe("aws cli v2", () => {
  it.live("puts, gets, ranges, multiparts, copies and lists with every --sse option", () =>
    Effect.gen(function*() {
      const env: ClientEnv = yield* call(() => setup("awscli"))
      try {
        const home = path.join(env.dir, "home")
        fs.mkdirSync(home)
        const config = path.join(home, "config")
        fs.writeFileSync(config, "[default]\nregion = us-east-1\ns3 =\n  addressing_style = path\n  multipart_threshold = 8MB\n  multipart_chunksize = 5MB\n")
        const keyFile = path.join(env.work, "customer.key")
        fs.writeFileSync(keyFile, env.customerKey)
        const aws = async (...args: Array<string>) => {
          const r = await run("/usr/bin/aws", ["--endpoint-url", env.gw.endpoint, ...args], {
            env: {
              HOME: home,
              AWS_CONFIG_FILE: config,
              AWS_SHARED_CREDENTIALS_FILE: path.join(home, "none"),
              AWS_ACCESS_KEY_ID: users.alice.id,
              AWS_SECRET_ACCESS_KEY: users.alice.secret,
              AWS_CA_BUNDLE: env.ca,
              AWS_PAGER: ""
            },
            timeoutMs: 120_000
          })
          if (r.code !== 0) throw new Error(`aws ${args.join(" ")} failed (${r.code}): ${r.stderr}`)
          return r.stdout
        }
        const json = async (...args: Array<string>) => JSON.parse(await aws(...args, "--output", "json")) as Record<string, unknown>
        const out = (n: string) => path.join(env.work, n)

        assert.match(yield* call(() => aws("--version")), /aws-cli\/2\./)
        yield* call(() => aws("s3", "mb", "s3://cli-bucket"))
        // aws s3: multipart upload (12 MiB > 8 MB threshold) with each SSE option.
        yield* call(() => aws("s3", "cp", env.big, "s3://cli-bucket/p/big-default"))
        yield* call(() => aws("s3", "cp", env.big, "s3://cli-bucket/p/big-aes256", "--sse", "AES256"))
        yield* call(() => aws("s3", "cp", env.big, "s3://cli-bucket/p/big-kms", "--sse", "aws:kms"))
        yield* call(() => aws("s3", "cp", env.big, "s3://cli-bucket/p/big-kms-id", "--sse", "aws:kms", "--sse-kms-key-id", "objcrypt-gateway-kms"))
        yield* call(() => aws("s3", "cp", env.big, "s3://cli-bucket/big-ssec", "--sse-c", "AES256", "--sse-c-key", `fileb://${keyFile}`))
        yield* call(() => aws("s3", "cp", env.small, "s3://cli-bucket/dir/small.txt", "--sse", "AES256"))
        yield* call(() => aws("s3", "cp", "s3://cli-bucket/p/", out("p"), "--recursive"))
        assert.deepStrictEqual(fs.readdirSync(out("p")).sort(), ["big-aes256", "big-default", "big-kms", "big-kms-id"])
        for (const k of fs.readdirSync(out("p"))) assert.isTrue(sameFile(env.big, path.join(out("p"), k)), k)
        yield* call(() => aws("s3", "cp", "s3://cli-bucket/big-ssec", out("big-ssec"), "--sse-c", "AES256", "--sse-c-key", `fileb://${keyFile}`))
        assert.isTrue(sameFile(env.big, out("big-ssec")))
        // Without the key, the SSE-C object is refused.
        const nokey = yield* call(() => aws("s3api", "get-object", "--bucket", "cli-bucket", "--key", "big-ssec", out("nokey")).then(() => "ok", (e: Error) => e.message))
        assert.match(nokey, /InvalidRequest|Bad Request|400/)

        // s3api: head, ranged get, copy (also re-encrypting an SSE-C source to SSE-KMS), list, multipart by hand.
        const headKms = yield* call(() => json("s3api", "head-object", "--bucket", "cli-bucket", "--key", "p/big-kms"))
        assert.strictEqual(headKms["ServerSideEncryption"], "aws:kms")
        assert.strictEqual(headKms["ContentLength"], fs.statSync(env.big).size)
        const headAes = yield* call(() => json("s3api", "head-object", "--bucket", "cli-bucket", "--key", "p/big-aes256"))
        assert.strictEqual(headAes["ServerSideEncryption"], "AES256")
        const ranged = yield* call(() => json("s3api", "get-object", "--bucket", "cli-bucket", "--key", "p/big-aes256", "--range", "bytes=5000000-5000099", out("range")))
        assert.strictEqual(ranged["ContentRange"], `bytes 5000000-5000099/${fs.statSync(env.big).size}`)
        assert.isTrue(fs.readFileSync(out("range")).equals(fs.readFileSync(env.big).subarray(5000000, 5000100)))
        const b64 = env.customerKey.toString("base64")
        const md5 = crypto.createHash("md5").update(env.customerKey).digest("base64")
        const rangedC = yield* call(() =>
          json("s3api", "get-object", "--bucket", "cli-bucket", "--key", "big-ssec", "--range", "bytes=-10", "--sse-customer-algorithm", "AES256", "--sse-customer-key", b64, "--sse-customer-key-md5", md5, out("range-c"))
        )
        assert.strictEqual(rangedC["SSECustomerAlgorithm"], "AES256")
        assert.isTrue(fs.readFileSync(out("range-c")).equals(fs.readFileSync(env.big).subarray(-10)))
        yield* call(() => aws("s3", "cp", "s3://cli-bucket/dir/small.txt", "s3://cli-bucket/dir/copy.txt"))
        yield* call(() =>
          aws("s3api", "copy-object", "--bucket", "cli-bucket", "--key", "from-ssec", "--copy-source", "cli-bucket/big-ssec",
            "--copy-source-sse-customer-algorithm", "AES256", "--copy-source-sse-customer-key", b64, "--copy-source-sse-customer-key-md5", md5,
            "--server-side-encryption", "aws:kms")
        )
        yield* call(() => aws("s3", "cp", "s3://cli-bucket/from-ssec", out("from-ssec")))
        assert.isTrue(sameFile(env.big, out("from-ssec")))
        yield* call(() => aws("s3api", "put-object", "--bucket", "cli-bucket", "--key", "api-put", "--body", env.small, "--sse-customer-algorithm", "AES256", "--sse-customer-key", b64, "--sse-customer-key-md5", md5))
        const mp = yield* call(() => json("s3api", "create-multipart-upload", "--bucket", "cli-bucket", "--key", "api-mp", "--server-side-encryption", "aws:kms"))
        const uploadId = String(mp["UploadId"])
        const part1 = path.join(env.work, "part1")
        const part2 = path.join(env.work, "part2")
        const bigBytes = fs.readFileSync(env.big)
        fs.writeFileSync(part1, bigBytes.subarray(0, 5 * 1024 * 1024))
        fs.writeFileSync(part2, bigBytes.subarray(5 * 1024 * 1024))
        const e1 = yield* call(() => json("s3api", "upload-part", "--bucket", "cli-bucket", "--key", "api-mp", "--upload-id", uploadId, "--part-number", "1", "--body", part1))
        const e2 = yield* call(() => json("s3api", "upload-part", "--bucket", "cli-bucket", "--key", "api-mp", "--upload-id", uploadId, "--part-number", "2", "--body", part2))
        const parts = yield* call(() => json("s3api", "list-parts", "--bucket", "cli-bucket", "--key", "api-mp", "--upload-id", uploadId))
        assert.deepStrictEqual((parts["Parts"] as Array<{ PartNumber: number }>).map((p) => p.PartNumber), [1, 2])
        const layout = path.join(env.work, "parts.json")
        fs.writeFileSync(layout, JSON.stringify({ Parts: [{ PartNumber: 1, ETag: e1["ETag"] }, { PartNumber: 2, ETag: e2["ETag"] }] }))
        yield* call(() => aws("s3api", "complete-multipart-upload", "--bucket", "cli-bucket", "--key", "api-mp", "--upload-id", uploadId, "--multipart-upload", `file://${layout}`))
        yield* call(() => aws("s3api", "get-object", "--bucket", "cli-bucket", "--key", "api-mp", out("api-mp")))
        assert.isTrue(sameFile(env.big, out("api-mp")))

        const listed = yield* call(() => json("s3api", "list-objects-v2", "--bucket", "cli-bucket", "--prefix", "dir/"))
        assert.deepStrictEqual((listed["Contents"] as Array<{ Key: string; Size: number }>).map((c) => [c.Key, c.Size]), [["dir/copy.txt", 70_000], ["dir/small.txt", 70_000]])
        const ls = yield* call(() => aws("s3", "ls", "s3://cli-bucket/"))
        assert.match(ls, /PRE dir\//)
        assert.match(ls, new RegExp(`${fs.statSync(env.big).size} big-ssec`))
        yield* call(() => aws("s3", "rm", "s3://cli-bucket/dir/copy.txt"))
        assert.notInclude(yield* call(() => aws("s3", "ls", "s3://cli-bucket/dir/")), "copy.txt")

        // Tagging, ACLs and versioning: `aws s3 cp` between S3 locations of a multipart-sized
        // object reads the source's tags (GetObjectTagging) and sets them on the copy.
        yield* call(() => aws("s3api", "put-object-tagging", "--bucket", "cli-bucket", "--key", "p/big-aes256", "--tagging", "TagSet=[{Key=team,Value=crypto},{Key=stage,Value=two words}]"))
        const tagged = yield* call(() => json("s3api", "get-object-tagging", "--bucket", "cli-bucket", "--key", "p/big-aes256"))
        assert.deepStrictEqual(tagged["TagSet"], [{ Key: "team", Value: "crypto" }, { Key: "stage", Value: "two words" }])
        yield* call(() => aws("s3", "cp", "s3://cli-bucket/p/big-aes256", "s3://cli-bucket/tagged/big-copy"))
        const copiedTags = yield* call(() => json("s3api", "get-object-tagging", "--bucket", "cli-bucket", "--key", "tagged/big-copy"))
        assert.deepStrictEqual(copiedTags["TagSet"], [{ Key: "team", Value: "crypto" }, { Key: "stage", Value: "two words" }])
        yield* call(() => aws("s3", "cp", "s3://cli-bucket/tagged/big-copy", out("big-copy")))
        assert.isTrue(sameFile(env.big, out("big-copy")))
        const headTagged = yield* call(() => json("s3api", "head-object", "--bucket", "cli-bucket", "--key", "p/big-aes256"))
        assert.strictEqual(headTagged["ETag"], headAes["ETag"])
        yield* call(() => aws("s3api", "delete-object-tagging", "--bucket", "cli-bucket", "--key", "p/big-aes256"))
        assert.deepStrictEqual((yield* call(() => json("s3api", "get-object-tagging", "--bucket", "cli-bucket", "--key", "p/big-aes256")))["TagSet"], [])
        yield* call(() => aws("s3api", "put-bucket-tagging", "--bucket", "cli-bucket", "--tagging", "TagSet=[{Key=env,Value=test}]"))
        assert.deepStrictEqual((yield* call(() => json("s3api", "get-bucket-tagging", "--bucket", "cli-bucket")))["TagSet"], [{ Key: "env", Value: "test" }])
        const acl = yield* call(() => json("s3api", "get-bucket-acl", "--bucket", "cli-bucket"))
        assert.deepStrictEqual((acl["Grants"] as Array<{ Grantee: { ID: string }; Permission: string }>).map((g) => [g.Grantee.ID, g.Permission]), [["alice", "FULL_CONTROL"]])
        yield* call(() => aws("s3api", "put-object-acl", "--bucket", "cli-bucket", "--key", "api-put", "--acl", "private"))
        assert.strictEqual((yield* call(() => json("s3api", "get-object-acl", "--bucket", "cli-bucket", "--key", "api-put")))["Owner"] !== undefined, true)
        const publicAcl = yield* call(() => aws("s3api", "put-object-acl", "--bucket", "cli-bucket", "--key", "api-put", "--acl", "public-read").then(() => "ok", (e: Error) => e.message))
        assert.match(publicAcl, /NotImplemented/)
        const versioning = yield* call(() => aws("s3api", "get-bucket-versioning", "--bucket", "cli-bucket"))
        assert.strictEqual(versioning.trim(), "")
        assert.isAbove(backendHoldsNoPlaintext(env), 8)
      } finally {
        yield* call(() => env.gw.close())
      }
    }), { timeout: 240_000 })
})
