/**
 * The SSE-C key-check record (`gw-ssec`, README "SSE-C key-check record"): the documented vector,
 * an independent computation of it, and the checks on records of every form, malformed ones included.
 */
import { assert, describe, it } from "@effect/vitest"
import * as CustomerKey from "@objcrypt/core/CustomerKey"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Sse from "../src/Sse.js"

const bytes = (from: number, step: number) => Buffer.from(Array.from({ length: 32 }, (_, i) => (from + step * i) & 0xff))
const MASTER = bytes(0x00, 1)
const SALT = Buffer.from(Array.from({ length: 16 }, (_, i) => 0xa0 + i))
const CUSTOMER = CustomerKey.unsafeFromBytes(bytes(0xff, -1))
const REF = "ks:00000000-0000-4000-8000-000000000000:1"
const VECTOR = "oKGio6SlpqeoqaqrrK2urw.GOncaiMyBWCWARkOemu3kAWEKfcutc8e71pacG_nbQU.ks:00000000-0000-4000-8000-000000000000:1"

const readme = fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), "../README.md"), "utf8")

/** Only what `checkReadKey` reads of the gateway's keys. */
const keysWith = (checks: Sse.CustomerKeyChecks) => ({ customerKeyChecks: checks }) as unknown as Sse.GatewayKeys["Type"]

describe("SSE-C key-check record", () => {
  it("matches the documented vector and an independent HKDF + HMAC computation", () => {
    const record = Sse.customerKeyRecord({ key: Sse.checkKey(MASTER), ref: REF }, SALT, CUSTOMER)
    const k = Buffer.from(crypto.hkdfSync("sha256", MASTER, Buffer.alloc(0), "objcrypt-gateway/v1 sse-c key check", 32))
    const mac = crypto.createHmac("sha256", k).update(SALT).update(bytes(0xff, -1)).digest("base64url")
    assert.strictEqual(record, `${SALT.toString("base64url")}.${mac}.${REF}`)
    assert.strictEqual(record, VECTOR)
    assert.include(readme, "`" + record + "`")
  })

  it.effect("a record is checked with the key its ref names; one without a ref with every candidate; anything else is refused, never thrown", () =>
    Effect.gen(function*() {
      const v1 = Sse.checkKey(MASTER)
      const v2 = Sse.checkKey(bytes(0x40, 3))
      const asked: Array<string> = []
      const keys = keysWith({
        current: { ref: "ks:id:2", key: v2 },
        keysFor: (ref) => Effect.sync(() => (asked.push(ref), ref === "ks:id:1" ? [v1] : ref === "" ? [v2, v1] : [v2]))
      })
      const meta = (record: string) => ({ "gw-sse": "SSE-C", "gw-ssec": record })
      const status = (record: string, given: CustomerKey.CustomerKey | undefined = CUSTOMER) =>
        Sse.checkReadKey(keys, meta(record), given).pipe(Effect.as(200), Effect.catchAll((e) => Effect.succeed(e.status)))
      const withRef = Sse.customerKeyRecord({ key: v1, ref: "ks:id:1" }, SALT, CUSTOMER)
      assert.strictEqual(yield* status(withRef), 200)
      assert.strictEqual(asked.pop(), "ks:id:1")
      // The same record checked with the current key would not match: the ref matters.
      assert.strictEqual(yield* status(withRef.replace("ks:id:1", "ks:id:2")), 403)
      // No ref: every version of the master is tried.
      const legacy = withRef.slice(0, withRef.lastIndexOf(".ks:"))
      assert.strictEqual(yield* status(legacy), 200)
      assert.strictEqual(asked.pop(), "")
      // A token label may contain dots: everything after the second dot is the ref.
      const dotted = Sse.customerKeyRecord({ key: v2, ref: "p11:my.key" }, SALT, CUSTOMER)
      assert.strictEqual(yield* status(dotted), 200)
      assert.strictEqual(asked.pop(), "p11:my.key")
      assert.strictEqual(yield* status(withRef, CustomerKey.unsafeFromBytes(bytes(1, 1))), 403)
      for (const bad of ["", ".", "..", "nodots", `${SALT.toString("base64url")}.`, `.${withRef}`, "!!.??.ks:id:1"]) {
        assert.strictEqual(yield* status(bad), 403, JSON.stringify(bad))
      }
      assert.strictEqual(yield* Sse.checkReadKey(keys, meta(withRef), undefined).pipe(Effect.as(200), Effect.catchAll((e) => Effect.succeed(e.status))), 400)
      assert.strictEqual(
        yield* Sse.checkReadKey(keys, { "gw-sse": "AES256" }, CUSTOMER).pipe(Effect.as(200), Effect.catchAll((e) => Effect.succeed(e.status))),
        400
      )
      assert.strictEqual(yield* Sse.checkReadKey(keys, { "gw-sse": "AES256" }, undefined).pipe(Effect.as(200)), 200)
    }))
})
