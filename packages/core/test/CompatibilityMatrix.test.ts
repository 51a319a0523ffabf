import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Schema } from "effect"
import * as fs from "node:fs"
import { fileURLToPath } from "node:url"
import * as Matrix from "../src/CompatibilityMatrix.js"
import * as EncryptionMode from "../src/EncryptionMode.js"

const GATEWAY = "put the objcrypt gateway in front"
const cell = (p: Matrix.ProfileName, t: EncryptionMode.ModeTag) => Matrix.profile(p)!.cells[t]
const fail = (p: Matrix.ProfileName, t: EncryptionMode.ModeTag | EncryptionMode.EncryptionMode, facts?: Matrix.BucketFacts) =>
  Effect.flip(Matrix.resolve(p, t, facts))
const quotes = (c: Matrix.Cell) => c.sources.map((s) => `${s.quote ?? ""} ${s.note ?? ""}`).join(" | ")

describe("CompatibilityMatrix seed facts: ABCI", () => {
  it.effect("SSE-S3-equivalent only for buckets created encrypted (create-encrypted-bucket)", () =>
    Effect.gen(function*() {
      const c = cell("abci", "SseS3")
      assert.strictEqual(c.kind, "native")
      assert.strictEqual(c.constraints.setAt, "bucket-creation")
      assert.include(c.feature!, "create-encrypted-bucket")
      const plan = yield* Matrix.resolve("abci", "SseS3")
      assert.strictEqual(plan._tag, "Native")
      assert.strictEqual(plan._tag === "Native" && plan.apply, "bucket-default")
      const e = yield* fail("abci", "SseS3", { defaultEncryption: { mode: "None" } })
      assert.strictEqual(e._tag, "UnsupportedMode")
      assert.include(e.reason, "only be set when a bucket is created")
      assert.isTrue(e.alternatives.some((a) => a.includes("create-encrypted-bucket")))
      assert.include(e.alternatives, "use cse-c")
    }))

  it.effect("no SSE-C: fails naming the reason and the alternatives", () =>
    Effect.gen(function*() {
      const e = yield* fail("abci", "SseC")
      assert.strictEqual(e.provider, "abci")
      assert.strictEqual(e.mode, "SseC")
      assert.include(e.reason, "no SSE-C")
      assert.deepStrictEqual(e.alternatives, ["use cse-c", GATEWAY])
      assert.strictEqual(e.message, "abci does not support sse-c (ABCI Cloud Storage offers no SSE-C): use cse-c, or put the objcrypt gateway in front")
    }))

  it.effect("no SSE-KMS: the alternative is cse-kms with objcrypt's local KMS", () =>
    Effect.gen(function*() {
      const e = yield* fail("abci", "SseKms")
      assert.include(e.reason, "no SSE-KMS")
      assert.deepStrictEqual(e.alternatives, ["use cse-kms with objcrypt's local KMS", GATEWAY])
    }))

  it.effect("client-side encryption works (cse-c from the key store, cse-kms from a Kms)", () =>
    Effect.gen(function*() {
      const c = yield* Matrix.resolve("abci", "CseC")
      assert.strictEqual(c._tag, "ClientSide")
      assert.strictEqual(c._tag === "ClientSide" && c.needs, "key-store")
      const k = yield* Matrix.resolve("abci", "CseKms")
      assert.strictEqual(k._tag === "ClientSide" && k.needs, "kms")
      assert.include(quotes(cell("abci", "CseC")), "CSE is available for ABCI Cloud Storage")
    }))

  it.effect("no KMS service", () =>
    Effect.sync(() => {
      assert.isNull(Matrix.profile("abci")!.kms)
      assert.isTrue(cell("abci", "CseKms").constraints.noProviderKms)
      assert.include(quotes(cell("abci", "CseKms")), "doesn't offer Key Management Service")
    }))
})

describe("CompatibilityMatrix seed facts: IBM COS", () => {
  it.effect("SSE-C requires TLS: a customer key over plain http is refused", () =>
    Effect.gen(function*() {
      assert.isTrue(cell("ibm-cos", "SseC").constraints.requiresTls)
      const ok = yield* Matrix.resolve("ibm-cos", "SseC", { tls: true })
      assert.strictEqual(ok._tag, "Native")
      const e = yield* fail("ibm-cos", "SseC", { tls: false })
      assert.include(e.reason, "requires TLS")
      assert.strictEqual(e.alternatives[0], "use an https:// endpoint")
    }))

  it.effect("SSE-C returns a random ETag, not an MD5", () =>
    Effect.sync(() => {
      assert.strictEqual(cell("ibm-cos", "SseC").constraints.etag, "random")
      assert.include(quotes(cell("ibm-cos", "SseC")), "randomly generated")
    }))

  it.effect("Key Protect root keys are set only at bucket creation", () =>
    Effect.gen(function*() {
      const c = cell("ibm-cos", "SseKms")
      assert.strictEqual(c.label, "SSE-KP")
      assert.strictEqual(c.constraints.setAt, "bucket-creation")
      assert.isFalse(c.constraints.keyPerRequest)
      const e = yield* fail("ibm-cos", "SseKms", { defaultEncryption: { mode: "SseS3" } })
      assert.include(e.reason, "only be set when a bucket is created")
      assert.include(e.alternatives, "create a new bucket with a Key Protect root key")
      const plan = yield* Matrix.resolve("ibm-cos", "SseKms", { defaultEncryption: { mode: "SseKms", keyId: "crn:kp:1" } })
      assert.strictEqual(plan._tag === "Native" && plan.apply, "bucket-default")
    }))

  it.effect("a per-object KMS key other than the bucket's is refused", () =>
    Effect.gen(function*() {
      const mode = EncryptionMode.SseKms.make({ keyId: "crn:kp:other" })
      const e = yield* fail("ibm-cos", mode, { defaultEncryption: { mode: "SseKms", keyId: "crn:kp:1" } })
      assert.include(e.reason, "bucket's key")
      const plan = yield* Matrix.resolve("ibm-cos", mode)
      assert.isTrue(plan._tag === "Native" && plan.notes.some((n) => n.includes("not sent per object")))
    }))
})

describe("CompatibilityMatrix seed facts: Amazon S3", () => {
  it.effect("three mutually exclusive server-side modes", () =>
    Effect.gen(function*() {
      for (const t of ["SseS3", "SseKms", "SseC"] as const) {
        const c = cell("aws-s3", t)
        assert.strictEqual(c.kind, "native", t)
        assert.isTrue(c.constraints.exclusivePerObject, t)
        assert.strictEqual((yield* Matrix.resolve("aws-s3", t))._tag, "Native")
      }
      assert.deepStrictEqual(
        (["SseS3", "SseKms", "SseC"] as const).map((t) => cell("aws-s3", t).label),
        ["SSE-S3", "SSE-KMS", "SSE-C"]
      )
      assert.include(quotes(cell("aws-s3", "SseS3")), "three mutually exclusive")
      assert.include(cell("aws-s3", "SseKms").feature!, "DSSE-KMS")
    }))

  it.effect("client-side encryption with a KMS key or a client master key", () =>
    Effect.sync(() => {
      assert.strictEqual(cell("aws-s3", "CseKms").kind, "client-side")
      assert.strictEqual(cell("aws-s3", "CseC").kind, "client-side")
      assert.include(quotes(cell("aws-s3", "CseKms")), "AWS KMS key")
      assert.include(quotes(cell("aws-s3", "CseC")), "key that you store within your application")
      assert.include(cell("aws-s3", "CseC").notes, "client master key")
    }))

  it.effect("ETag is not an MD5 under SSE-C and SSE-KMS (it is under SSE-S3)", () =>
    Effect.sync(() => {
      assert.strictEqual(cell("aws-s3", "SseC").constraints.etag, "not-md5")
      assert.strictEqual(cell("aws-s3", "SseKms").constraints.etag, "not-md5")
      assert.strictEqual(cell("aws-s3", "SseS3").constraints.etag, "md5")
    }))

  it.effect("SSE-C over plain http is refused", () =>
    Effect.gen(function*() {
      assert.isTrue(cell("aws-s3", "SseC").constraints.requiresTls)
      const e = yield* fail("aws-s3", "SseC", { tls: false })
      assert.include(e.reason, "requires TLS")
    }))

  it.effect("SSE-C is blocked by default on new buckets since April 2026; a blocked bucket fails with the unblock step", () =>
    Effect.gen(function*() {
      const b = cell("aws-s3", "SseC").constraints.blockedOnNewBuckets!
      assert.strictEqual(b.since, "2026-04")
      assert.include(b.setting, "BlockedEncryptionTypes")
      assert.include(quotes(cell("aws-s3", "SseC")), "Starting April 2026")
      const e = yield* fail("aws-s3", "SseC", { sseCBlocked: true, tls: true })
      assert.include(e.reason, "blocked on this bucket")
      assert.include(e.alternatives[0]!, "BlockedEncryptionTypes set to NONE")
      assert.include(e.alternatives, "use cse-c")
      assert.include(e.alternatives, GATEWAY)
      const ok = yield* Matrix.resolve("aws-s3", "SseC", { sseCBlocked: false, tls: true })
      assert.strictEqual(ok._tag, "Native")
    }))

  it.effect("a KMS key the caller may not use makes SSE-KMS fail", () =>
    Effect.gen(function*() {
      const e = yield* fail("aws-s3", "SseKms", { kmsDenied: true })
      assert.include(e.reason, "not usable")
      assert.include(e.alternatives, "use cse-kms")
    }))
})

describe("CompatibilityMatrix: Ceph RGW 16.2 (test server facts)", () => {
  it.effect("ignores SSE-S3 (AES256 stored plain)", () =>
    Effect.gen(function*() {
      const e = yield* fail("ceph-rgw", "SseS3")
      assert.include(e.reason, "stores the object in plain")
      assert.strictEqual(e.alternatives[0], "use sse-kms")
      assert.include(cell("ceph-rgw", "SseS3").verifiedBy, "ceph-rgw 16.2")
    }))

  it.effect("has no bucket default encryption", () =>
    Effect.sync(() => {
      assert.include(Matrix.profile("ceph-rgw")!.notes, "No bucket default encryption")
    }))

  it.effect("enforces SSE-C and SSE-KMS, over TLS unless `rgw crypt require ssl` is off", () =>
    Effect.gen(function*() {
      for (const t of ["SseC", "SseKms"] as const) {
        assert.strictEqual(cell("ceph-rgw", t).kind, "native")
        assert.isTrue(cell("ceph-rgw", t).constraints.requiresTls)
        assert.include(cell("ceph-rgw", t).verifiedBy, "ceph-rgw 16.2")
        const e = yield* fail("ceph-rgw", t, { tls: false })
        assert.include(e.reason, "requires TLS")
      }
      assert.include(quotes(cell("ceph-rgw", "SseC")), "secure HTTPS connection")
      assert.include(Matrix.profile("ceph-rgw")!.notes, "rgw crypt require ssl")
      // Our loopback test server runs with `rgw crypt require ssl = false`: a probe that saw it enforce SSE-C over http lifts the refusal.
      const plan = yield* Matrix.resolve("ceph-rgw", "SseC", { tls: false, modes: { SseC: "enforced" } })
      assert.isTrue(plan._tag === "Native" && plan.notes.some((n) => n.includes("loopback only")))
    }))

  it.effect("needs a KMS backend configured for SSE-KMS", () =>
    Effect.sync(() => {
      assert.include(cell("ceph-rgw", "SseKms").constraints.serverSetup!, "rgw crypt s3 kms backend")
    }))
})

describe("CompatibilityMatrix: GCS encryption enforcement", () => {
  it.effect("CSEK forbidden by the bucket's enforcement config", () =>
    Effect.gen(function*() {
      assert.strictEqual(cell("gcs", "SseC").label, "CSEK")
      assert.include(cell("gcs", "SseC").constraints.bucketEnforcement!.field, "customerSuppliedEncryptionEnforcementConfig")
      const e = yield* fail("gcs", "SseC", { gcsEnforcement: { customerSupplied: "FullyRestricted" } })
      assert.include(e.reason, "FullyRestricted")
      assert.include(e.alternatives, "use cse-c")
      const ok = yield* Matrix.resolve("gcs", "SseC", { gcsEnforcement: { customerSupplied: "NotRestricted" } })
      assert.strictEqual(ok._tag === "Native" && ok.label, "CSEK")
    }))

  it.effect("CMEK forbidden by the bucket's enforcement config", () =>
    Effect.gen(function*() {
      const e = yield* fail("gcs", "SseKms", { gcsEnforcement: { customerManaged: "FullyRestricted" } })
      assert.include(e.reason, "CMEK")
    }))

  it.effect("Google-managed encryption restricted: plain and client-side uploads need a default CMEK key", () =>
    Effect.gen(function*() {
      const facts: Matrix.BucketFacts = { gcsEnforcement: { googleManaged: "FullyRestricted" } }
      const e = yield* fail("gcs", "CseC", facts)
      assert.include(e.reason, "no default CMEK key")
      assert.include(e.alternatives[0]!, "defaultKmsKeyName")
      yield* fail("gcs", "None", facts)
      const s3 = yield* fail("gcs", "SseS3", facts)
      // Only ways out that work on this bucket are offered: CMEK does, client-side does not.
      assert.include(s3.alternatives, "use sse-kms")
      assert.notInclude(s3.alternatives, "use cse-c")
      const ok = yield* Matrix.resolve("gcs", "CseC", { ...facts, defaultEncryption: { mode: "SseKms", keyId: "projects/p/locations/l/keyRings/r/cryptoKeys/k" } })
      assert.strictEqual(ok._tag, "ClientSide")
    }))

  it.effect("CSEK needs TLS and hides the MD5 without the key", () =>
    Effect.gen(function*() {
      assert.isTrue(cell("gcs", "SseC").constraints.requiresTls)
      assert.strictEqual(cell("gcs", "SseC").constraints.etag, "hidden-without-key")
      yield* fail("gcs", "SseC", { tls: false })
    }))
})

describe("CompatibilityMatrix: other providers", () => {
  it.effect("Azure names: Microsoft-managed keys, encryption scope, CPK (TLS)", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(
        (["SseS3", "SseKms", "SseC"] as const).map((t) => cell("azure-blob", t).label),
        ["MMK", "scope", "CPK"]
      )
      assert.isTrue(cell("azure-blob", "SseC").constraints.requiresTls)
      const plan = yield* Matrix.resolve("azure-blob", "SseS3")
      assert.strictEqual(plan._tag === "Native" && plan.apply, "implicit")
    }))

  it.effect("a container that forces its default scope refuses other server-side modes", () =>
    Effect.gen(function*() {
      const facts: Matrix.BucketFacts = { defaultEncryption: { mode: "SseKms", keyId: "scope1", enforced: true } }
      const e = yield* fail("azure-blob", "SseC", facts)
      assert.include(e.reason, "forces its default encryption")
      assert.include(e.alternatives, "use sse-kms")
      assert.strictEqual((yield* Matrix.resolve("azure-blob", "SseKms", facts))._tag, "Native")
    }))

  it.effect("Wasabi: no KMS, SSE-C keeps an MD5 ETag, SSE-S3 is always on", () =>
    Effect.gen(function*() {
      const e = yield* fail("wasabi", "SseKms")
      assert.include(e.reason, "no key management service")
      assert.strictEqual(cell("wasabi", "SseC").constraints.etag, "md5")
      const p = yield* Matrix.resolve("wasabi", "SseS3")
      assert.strictEqual(p._tag === "Native" && p.apply, "implicit")
    }))

  it.effect("MinIO SSE needs KES and TLS", () =>
    Effect.gen(function*() {
      assert.include(cell("minio", "SseKms").constraints.serverSetup!, "KES")
      yield* fail("minio", "SseKms", { tls: false })
    }))

  it.effect("Backblaze B2 and Cloudflare R2 have no SSE-KMS but do SSE-C", () =>
    Effect.gen(function*() {
      yield* fail("backblaze-b2", "SseKms")
      yield* fail("cloudflare-r2", "SseKms")
      assert.strictEqual(cell("backblaze-b2", "SseS3").label, "SSE-B2")
      assert.strictEqual((yield* Matrix.resolve("backblaze-b2", "SseC", { tls: true }))._tag, "Native")
      assert.strictEqual((yield* Matrix.resolve("cloudflare-r2", "SseC", { tls: true }))._tag, "Native")
    }))

  it.effect("objcrypt never sends a customer key over plain http, even where the provider does not say", () =>
    Effect.gen(function*() {
      assert.isUndefined(cell("backblaze-b2", "SseC").constraints.requiresTls)
      const e = yield* fail("backblaze-b2", "SseC", { tls: false })
      assert.include(e.reason, "never sends a customer key over plain http")
    }))

  it.effect("local-fs: server-side modes only through the gateway", () =>
    Effect.gen(function*() {
      const plan = yield* Matrix.resolve("local-fs", "SseC")
      assert.strictEqual(plan._tag, "ViaGateway")
      assert.strictEqual(plan.provider, "fs")
      assert.strictEqual((yield* Matrix.resolve("local-fs", "CseC"))._tag, "ClientSide")
    }))

  it.effect("the gateway is reached with the S3 driver and never suggests itself", () =>
    Effect.gen(function*() {
      assert.strictEqual(Matrix.profile("objcrypt-gateway")!.provider, "s3")
      const e = yield* fail("objcrypt-gateway", "SseC", { tls: false })
      assert.notInclude(e.alternatives, GATEWAY)
    }))

  it.effect("accepts a full EncryptionMode, not only a tag", () =>
    Effect.gen(function*() {
      const m = yield* EncryptionMode.fromSpec({ mode: "sse-c", key: "k1" })
      const e = yield* fail("abci", m)
      assert.strictEqual(e.mode, "SseC")
      const plan = yield* Matrix.resolve("aws-s3", m)
      assert.strictEqual(plan.mode, "SseC")
    }))
})

describe("CompatibilityMatrix probes", () => {
  it.effect("an unknown S3-compatible server is safe only client-side until probed", () =>
    Effect.gen(function*() {
      const e = yield* fail("s3-compatible", "SseC")
      assert.include(e.reason, "silently ignore")
      assert.include(e.alternatives[0]!, "probe the bucket")
      const plan = yield* Matrix.resolve("s3-compatible", "SseC", { tls: true, modes: { SseC: "enforced" } })
      assert.strictEqual(plan._tag === "Native" && plan.label, "SSE-C")
    }))

  it.effect("a mode the server silently ignores or refuses is unsupported on that bucket", () =>
    Effect.gen(function*() {
      const e = yield* fail("aws-s3", "SseS3", { modes: { SseS3: "ignored" } })
      assert.include(e.reason, "silently ignored")
      const r = yield* fail("minio", "SseKms", { tls: true, modes: { SseKms: "refused" } })
      assert.include(r.reason, "refused")
    }))

  it.effect("applyProbe overrides the probed profile's cells and marks them verified by the probe", () =>
    Effect.gen(function*() {
      const probe: Matrix.ProbeResult = {
        profile: "ceph-rgw",
        bucket: "b1",
        probedAt: "2026-05-01T10:00:00Z",
        server: "ceph 16.2.15",
        facts: { tls: true, modes: { SseS3: "enforced", SseC: "enforced" } }
      }
      const m = Matrix.applyProbe(Matrix.matrix, probe)
      const row = Matrix.profile("ceph-rgw", m)!
      assert.strictEqual(row.cells.SseS3.kind, "native")
      assert.strictEqual(row.cells.SseS3.verifiedBy, "probe 2026-05-01")
      assert.strictEqual(row.cells.SseC.verifiedBy, "probe 2026-05-01")
      assert.strictEqual(row.cells.SseC.sources[0].url, "probe://ceph-rgw/b1")
      assert.include(row.cells.SseC.sources[0].note!, "ceph 16.2.15")
      assert.deepStrictEqual(row.cells.CseC, cell("ceph-rgw", "CseC"))
      assert.deepStrictEqual(Matrix.profile("aws-s3", m), Matrix.profile("aws-s3"))
      assert.strictEqual((yield* Matrix.resolveIn(m, "ceph-rgw", "SseS3"))._tag, "Native")
      assert.strictEqual((yield* Effect.flip(Matrix.resolve("ceph-rgw", "SseS3")))._tag, "UnsupportedMode")
    }))

  it.effect("the matrix layer carries probe results", () =>
    Effect.gen(function*() {
      const plan = yield* Matrix.resolveWith("s3-compatible", "SseKms")
      assert.strictEqual(plan._tag, "Native")
    }).pipe(
      Effect.provide(Matrix.layer([{ profile: "s3-compatible", bucket: "x", probedAt: "2026-05-02", facts: { modes: { SseKms: "accepted" } } }]))
    ))

  it.effect("probe results decode from JSON and bad ones are refused", () =>
    Effect.sync(() => {
      const decode = Schema.decodeUnknownEither(Matrix.ProbeResult)
      assert.isTrue(Either.isRight(decode({ profile: "abci", bucket: "b", probedAt: "2026-05-01", facts: { tls: true } })))
      assert.isTrue(Either.isLeft(decode({ profile: "abci", bucket: "b", probedAt: "2026-05-01", facts: { modes: { SseC: "maybe" } } })))
      assert.isTrue(Either.isLeft(decode({ profile: "nowhere", bucket: "b", probedAt: "2026-05-01", facts: {} })))
    }))
})

describe("CompatibilityMatrix data", () => {
  it.effect("holds every profile exactly once, with its driver", () =>
    Effect.sync(() => {
      assert.deepStrictEqual(Matrix.matrix.profiles.map((p) => p.name), [...Matrix.allProfileNames])
      const drivers = Object.fromEntries(Matrix.matrix.profiles.map((p) => [p.name, p.provider]))
      assert.deepStrictEqual(drivers, {
        "aws-s3": "s3",
        "s3-compatible": "s3",
        minio: "s3",
        "ceph-rgw": "s3",
        "ibm-cos": "s3",
        abci: "s3",
        "backblaze-b2": "s3",
        wasabi: "s3",
        "cloudflare-r2": "s3",
        gcs: "gcs",
        "azure-blob": "azure",
        "local-fs": "fs",
        "objcrypt-gateway": "s3"
      })
      assert.deepStrictEqual(Matrix.profilesFor("azure").map((p) => p.name), ["azure-blob"])
      assert.deepStrictEqual(
        (["s3", "gcs", "azure", "fs"] as const).map(Matrix.defaultProfile),
        ["aws-s3", "gcs", "azure-blob", "local-fs"]
      )
    }))

  it.effect("every cell has a source with a URL and a quote or note, and says what verified it", () =>
    Effect.sync(() => {
      for (const p of Matrix.matrix.profiles) {
        for (const t of EncryptionMode.allTags) {
          const c = p.cells[t]
          const where = `${p.name}/${t}`
          assert.isAtLeast(c.sources.length, 1, where)
          for (const s of c.sources) {
            assert.match(s.url, /^https:\/\//, where)
            assert.isTrue((s.quote ?? "").length > 0 || (s.note ?? "").length > 0, `${where}: quote or note`)
          }
          assert.isTrue(c.verifiedBy.length > 0, where)
          if (c.kind === "native") assert.isTrue(c.label !== undefined && c.feature !== undefined, where)
          if (c.kind === "unsupported") assert.isTrue((c.reason ?? "").length > 0, where)
          if (c.kind === "client-side") assert.isTrue(EncryptionMode.isClientSide(t), where)
          if (t === "CseC" || t === "CseKms") assert.strictEqual(c.kind, "client-side", where)
        }
      }
    }))

  it.effect("the data is valid against the Matrix schema", () =>
    Effect.gen(function*() {
      const decoded = yield* Schema.decodeUnknown(Matrix.Matrix)(Matrix.matrix)
      assert.deepStrictEqual(decoded, Matrix.matrix)
    }))

  it.effect("every pairing resolves to a plan or to UnsupportedMode with a reason and alternatives", () =>
    Effect.gen(function*() {
      for (const p of Matrix.allProfileNames) {
        for (const t of EncryptionMode.allTags) {
          const r = yield* Effect.either(Matrix.resolve(p, t))
          if (Either.isLeft(r)) {
            assert.isTrue(r.left.reason.length > 0, `${p}/${t}`)
            assert.isAtLeast(r.left.alternatives.length, 1, `${p}/${t}`)
            assert.notInclude(r.left.message, "undefined")
          } else {
            assert.strictEqual(r.right.profile, p)
            assert.strictEqual(r.right.mode, t)
          }
        }
      }
    }))

  it.effect("profile names parse (for --provider) and unknown ones are refused", () =>
    Effect.sync(() => {
      const decode = Schema.decodeUnknownEither(Matrix.ProfileName)
      assert.deepStrictEqual(decode("ceph-rgw"), Either.right("ceph-rgw"))
      assert.isTrue(Either.isLeft(decode("s3")))
      assert.isTrue(Either.isLeft(decode("ABCI")))
      assert.isTrue(Either.isLeft(decode(42)))
    }))

  it.effect("a matrix without the profile fails rather than guessing", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(Matrix.resolveIn(Matrix.filter(Matrix.matrix, ["gcs"]), "abci", "CseC"))
      assert.include(e.reason, "not in the matrix")
    }))
})

describe("CompatibilityMatrix rendering", () => {
  it.effect("the table has one row per profile and short cell labels", () =>
    Effect.sync(() => {
      const table = Matrix.renderTable(Matrix.matrix)
      const lines = table.split("\n")
      assert.strictEqual(lines.length, 2 + Matrix.allProfileNames.length)
      for (const name of Matrix.allProfileNames) assert.isTrue(lines.some((l) => l.startsWith(`${name} `)), name)
      const gcs = lines.find((l) => l.startsWith("gcs "))!
      assert.include(gcs, "native(CSEK) T")
      assert.include(gcs, "native(CMEK)")
      assert.include(lines.find((l) => l.startsWith("abci "))!, "—")
      assert.include(lines.find((l) => l.startsWith("abci "))!, "native(bucket SSE) C")
      assert.include(lines.find((l) => l.startsWith("local-fs "))!, "gateway")
      assert.include(lines.find((l) => l.startsWith("aws-s3 "))!, "native(SSE-C) TEB")
      assert.include(lines[0]!, "sse-kms")
      // Columns line up: every row has a cell starting exactly under each header.
      for (const h of ["driver", "none", "sse-s3", "sse-kms", "sse-c", "cse-c", "cse-kms"]) {
        const col = lines[0]!.indexOf(`  ${h}`) + 2
        for (const l of lines.slice(2)) assert.isTrue(l[col - 1] === " " && l[col] !== " " && l[col] !== undefined, `${h}: ${l}`)
      }
    }))

  it.effect("filtering by profile, with details on demand", () =>
    Effect.sync(() => {
      const text = Matrix.render(Matrix.matrix, { profiles: ["ibm-cos"], details: true })
      assert.include(text, "ibm-cos")
      assert.notInclude(text, "aws-s3")
      assert.include(text, "randomly generated 32-byte hexadecimal string")
      assert.include(text, "T          the key travels with the request: TLS required")
      assert.notInclude(Matrix.render(Matrix.matrix, { profiles: ["gcs"] }), "verified by")
    }))

  it.effect("JSON for --json round-trips through the Matrix schema, filtered or whole", () =>
    Effect.gen(function*() {
      const json = JSON.parse(JSON.stringify(Matrix.toJSON()))
      assert.deepStrictEqual(yield* Schema.decodeUnknown(Matrix.Matrix)(json), Matrix.matrix)
      const one = Matrix.toJSON(Matrix.matrix, { profiles: ["abci"] })
      assert.deepStrictEqual(one.profiles.map((p) => p.name), ["abci"])
      assert.strictEqual(one.profiles[0]!.cells.SseC.kind, "unsupported")
    }))

  it.effect("the plan is encodable as JSON too", () =>
    Effect.gen(function*() {
      const plan = yield* Matrix.resolve("gcs", "SseC")
      const back = yield* Schema.decodeUnknown(Matrix.Plan)(JSON.parse(JSON.stringify(Schema.encodeSync(Matrix.Plan)(plan))))
      assert.deepStrictEqual(back, plan)
    }))

  it.effect("docs/MATRIX.md is the rendering of the data (UPDATE_MATRIX_DOC=1 rewrites it)", () =>
    Effect.sync(() => {
      const file = fileURLToPath(new URL("../../../docs/MATRIX.md", import.meta.url))
      const expected = Matrix.renderMarkdown(Matrix.matrix)
      if (process.env["UPDATE_MATRIX_DOC"] === "1") fs.writeFileSync(file, expected)
      const actual = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "(missing)"
      assert.strictEqual(actual, expected, "docs/MATRIX.md is stale: run UPDATE_MATRIX_DOC=1 npx vitest run test/CompatibilityMatrix.test.ts in packages/core")
    }))
})
