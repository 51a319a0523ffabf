/**
 * az:// over https: Azurite serving TLS with a throwaway self-signed certificate (made with
 * `openssl` by test-kit's launcher for this run), trusted by the CLI child through
 * `NODE_EXTRA_CA_CERTS`. `matrix --probe` tries sse-c (customer-provided keys) only over https,
 * which the Azure SDK requires for them; over plain http the trial is reported as not tried.
 *
 * Azurite does not implement customer-provided keys: by default it refuses their headers
 * (`UnsupportedHeader`), and in its loose mode it drops them and stores the blob unencrypted. The
 * probe must tell both apart from a server that enforces the key (what Azure Blob Storage does,
 * and what the gs:// probe sees on the test-kit GCS server in cloud.e2e.test.ts).
 */
import { assert, afterAll, beforeAll, describe, it } from "@effect/vitest"
import * as Azurite from "@objcrypt/test-kit/Azurite"
import { Effect, Exit, Scope } from "effect"
import { type Home, makeHome, oneLineError } from "./harness.js"

let scope: Scope.CloseableScope
let strict: Azurite.AzuriteInfo
let loose: Azurite.AzuriteInfo
let plain: Azurite.AzuriteInfo
let home: Home

const envOf = (a: Azurite.AzuriteInfo, name: string) => ({
  AZURE_STORAGE_CONNECTION_STRING: a.connectionString,
  ...(a.certificate === undefined ? {} : { NODE_EXTRA_CA_CERTS: home.file(`${name}-ca.pem`, a.certificate) })
})

beforeAll(async () => {
  scope = Effect.runSync(Scope.make())
  ;[strict, loose, plain] = await Effect.runPromise(Scope.extend(
    Effect.all([
      Azurite.make({ https: true, startTimeout: "180 seconds" }),
      Azurite.make({ https: true, loose: true, startTimeout: "180 seconds" }),
      Azurite.make({ loose: true, startTimeout: "180 seconds" })
    ], { concurrency: 3 }),
    scope
  ))
  home = makeHome()
  for (const [a, name] of [[strict, "strict"], [loose, "loose"], [plain, "plain"]] as const) {
    const r = await home.run(["bucket", "create", `az://objcrypt-${name}`], { env: envOf(a, name) })
    assert.strictEqual(r.code, 0, r.stderr)
  }
}, 300_000)

afterAll(async () => {
  home?.cleanup()
  if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
})

const probe = async (a: Azurite.AzuriteInfo, name: string) => {
  const r = await home.run(["matrix", "--probe", `az://objcrypt-${name}`, "--json"], { env: envOf(a, name) })
  assert.strictEqual(r.code, 0, r.stderr)
  return JSON.parse(r.stdout) as { probe: { facts: { tls: boolean; modes: Record<string, string> } }; skipped: Array<string> }
}

const leftovers = async (a: Azurite.AzuriteInfo, name: string) => {
  const r = await home.run(["ls", "-r", `az://objcrypt-${name}`, "--json", "--stored-sizes"], { env: envOf(a, name) })
  assert.strictEqual(r.code, 0, r.stderr)
  return (JSON.parse(r.stdout).objects as Array<{ key: string }>).filter((o) => o.key.includes("probe"))
}

describe("matrix --probe az:// and TLS (Azurite with a self-signed certificate)", () => {
  it("the certificate is needed: without NODE_EXTRA_CA_CERTS the https store is not trusted", async () => {
    const r = await home.run(["ls", "az://objcrypt-strict"], { env: { AZURE_STORAGE_CONNECTION_STRING: strict.connectionString } })
    assert.notStrictEqual(r.code, 0)
    oneLineError(r)
  })

  it("over https the sse-c trial runs: Azurite refuses customer-provided keys (strict) or drops them (loose)", async () => {
    const [s, l] = await Promise.all([probe(strict, "strict"), probe(loose, "loose")])
    assert.deepStrictEqual(s.probe.facts.tls, true)
    assert.deepStrictEqual(s.probe.facts.modes, { SseS3: "accepted", SseC: "refused" })
    assert.deepStrictEqual(l.probe.facts.modes, { SseS3: "accepted", SseC: "ignored" })
    for (const p of [s, l]) {
      assert.deepStrictEqual(p.skipped, ["sse-kms: no --kms-key-id (encryption scope) to try"])
      assert.isFalse(p.skipped.some((x) => x.startsWith("sse-c")))
    }
    const text = await home.run(["matrix", "--probe", "az://objcrypt-strict"], { env: envOf(strict, "strict") })
    assert.strictEqual(text.code, 0, text.stderr)
    assert.notMatch(text.stderr, /not tried: sse-c/)
    assert.deepStrictEqual(await leftovers(strict, "strict"), [])
    assert.deepStrictEqual(await leftovers(loose, "loose"), [])
  }, 120_000)

  it("over plain http the sse-c trial is not run, even on a server that would take the headers", async () => {
    const p = await probe(plain, "plain")
    assert.strictEqual(p.probe.facts.tls, false)
    assert.deepStrictEqual(p.probe.facts.modes, { SseS3: "accepted" })
    assert.include(p.skipped, "sse-c: customer-provided keys need https (the Azure SDK refuses them over http)")
    assert.deepStrictEqual(await leftovers(plain, "plain"), [])
  }, 120_000)
})
