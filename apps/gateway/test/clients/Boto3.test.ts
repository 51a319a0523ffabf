/**
 * boto3 (Debian `python3-boto3`, run with `/usr/bin/python3`) against the gateway over HTTPS,
 * tagging, ACLs and versioning included.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { run, users } from "../ops/harness.js"
import { backendHoldsNoPlaintext, type ClientEnv, setup } from "./setup.js"

const call = <A>(f: () => Promise<A>) => Effect.promise(f)
const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), "py/boto3_client.py")

describe("boto3", () => {
  it.live("puts, gets, ranges, multiparts, copies and lists with every SSE option", () =>
    Effect.gen(function*() {
      const env: ClientEnv = yield* call(() => setup("boto3"))
      try {
        const r = yield* call(() =>
          run("/usr/bin/python3", [SCRIPT, env.gw.endpoint, env.ca, env.big, env.small, env.work], {
            env: {
              GW_CUSTOMER_KEY: env.customerKey.toString("base64"),
              GW_ACCESS_KEY_ID: users.alice.id,
              GW_SECRET_ACCESS_KEY: users.alice.secret,
              HOME: env.dir,
              AWS_CONFIG_FILE: "/dev/null",
              AWS_SHARED_CREDENTIALS_FILE: "/dev/null"
            },
            timeoutMs: 180_000
          })
        )
        assert.strictEqual(r.code, 0, r.stderr)
        const out = JSON.parse(r.stdout) as Record<string, unknown>
        assert.deepStrictEqual(out, {
          put_default_sse: "AES256",
          put_aes_sse: "AES256",
          put_kms_sse: "aws:kms",
          put_kms_ctx: "aws:kms",
          put_ssec_md5: true,
          get_equal: true,
          get_ssec_equal: true,
          get_ssec_without_key: 400,
          range_equal: true,
          range_header: "bytes 1000-1999/70000",
          range_ssec_equal: true,
          head_kms: "aws:kms",
          "mp_equal_mp-default": true,
          "mp_equal_mp-aes": true,
          "mp_equal_mp-kms": true,
          "mp_equal_mp-ssec": true,
          mp_head_kms: "aws:kms",
          copy_equal: true,
          copy_from_ssec_sse: "aws:kms",
          list_v2: ["aes", "copy-from-ssec", "copy-plain", "copy-to-ssec", "kms", "kms-ctx", "mp-aes", "mp-default", "mp-kms", "mp-ssec", "plain", "ssec"],
          list_v1: ["mp-aes", "mp-default", "mp-kms", "mp-ssec"],
          after_delete: 10,
          tags_put: [{ Key: "a", Value: "1" }, { Key: "b", Value: "two words" }],
          tags_count: 1,
          tags_body_equal: true,
          tags_after_delete: [],
          bucket_tags: [{ Key: "env", Value: "test" }],
          bucket_acl: [["alice", "FULL_CONTROL"]],
          object_acl_owner: "alice",
          public_acl: "NotImplemented",
          versioning: null,
          null_version_equal: true
        })
        assert.isAbove(backendHoldsNoPlaintext(env), 10)
      } finally {
        yield* call(() => env.gw.close())
      }
    }), { timeout: 240_000 })
})
