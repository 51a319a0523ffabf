/**
 * `matrix --probe az://…`: driver-azure has no probe of its own, so the CLI probes a container
 * through the driver's public `client` (the Azure SDK's `ContainerClient`): the container's default
 * encryption scope and whether it may be overridden, whether a plain upload is reported
 * server-encrypted (sse-s3), whether an encryption scope named by `--kms-key-id` is applied
 * (sse-kms), and — over https only, since the SDK refuses customer-provided keys over http —
 * whether a customer-provided key is enforced (sse-c), with a throwaway random key. Every probe
 * blob is deleted.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type * as CompatibilityMatrix from "@objcrypt/core/CompatibilityMatrix"
import type * as AzureBlobObjectStore from "@objcrypt/driver-azure/AzureBlobObjectStore"
import * as crypto from "node:crypto"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** An encryption scope for the sse-kms trial; absent: no sse-kms trial. */
  readonly encryptionScope?: string | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Result {
  readonly probe: CompatibilityMatrix.ProbeResult
  /** Trials that were not run, and why. */
  readonly skipped: ReadonlyArray<string>
}

type Observation = CompatibilityMatrix.ModeObservation

/**
 * Probes the container the store addresses.
 *
 * @since 0.1.0
 * @category probe
 */
export const probe = (store: AzureBlobObjectStore.AzureBlobObjectStore["Type"], options?: Options): Effect.Effect<Result> =>
  Effect.gen(function*() {
    const client = store.client
    const base = `.objcrypt-probe-${crypto.randomBytes(8).toString("hex")}`
    const body = crypto.randomBytes(64)
    const attempt = <A>(f: () => Promise<A>) => Effect.either(Effect.tryPromise({ try: f, catch: (e) => e }))
    const cleanup = (name: string) => Effect.ignore(attempt(() => client.getBlockBlobClient(name).deleteIfExists()))
    const facts: { -readonly [K in keyof CompatibilityMatrix.BucketFacts]: CompatibilityMatrix.BucketFacts[K] } = { tls: store.facts.tls }
    const modes: { -readonly [K in "SseS3" | "SseKms" | "SseC"]?: Observation } = {}
    const skipped: Array<string> = []

    const props = yield* attempt(() => client.getProperties())
    if (props._tag === "Right") {
      const scope = props.right.defaultEncryptionScope
      if (scope !== undefined && scope !== "" && scope !== "$account-encryption-key") {
        facts.defaultEncryption = { mode: "SseKms", keyId: scope, enforced: props.right.denyEncryptionScopeOverride === true }
      }
    }

    {
      const name = `${base}-plain`
      const r = yield* attempt(() => client.getBlockBlobClient(name).upload(body, body.length))
      modes.SseS3 = r._tag === "Left" ? "refused" : r.right.isServerEncrypted === true ? "accepted" : "ignored"
      yield* cleanup(name)
    }

    if (options?.encryptionScope !== undefined) {
      const name = `${base}-scope`
      const scope = options.encryptionScope
      const r = yield* attempt(() => client.getBlockBlobClient(name).upload(body, body.length, { encryptionScope: scope }))
      if (r._tag === "Left") modes.SseKms = "refused"
      else {
        const props = yield* attempt(() => client.getBlockBlobClient(name).getProperties())
        const applied = r.right.encryptionScope ?? (props._tag === "Right" ? props.right.encryptionScope : undefined)
        modes.SseKms = applied === scope ? "accepted" : "ignored"
      }
      yield* cleanup(name)
    } else {
      skipped.push("sse-kms: no --kms-key-id (encryption scope) to try")
    }

    if (store.facts.tls === true) {
      const name = `${base}-cpk`
      const key = crypto.randomBytes(32)
      const cpk = {
        encryptionKey: key.toString("base64"),
        encryptionKeySha256: crypto.createHash("sha256").update(key).digest("base64"),
        encryptionAlgorithm: "AES256" as const
      }
      const blob = client.getBlockBlobClient(name)
      const r = yield* attempt(() => blob.upload(body, body.length, { customerProvidedKey: cpk }))
      if (r._tag === "Left") modes.SseC = "refused"
      else {
        const without = yield* attempt(() => blob.downloadToBuffer())
        const withKey = yield* attempt(() => blob.downloadToBuffer(0, undefined, { customerProvidedKey: cpk }))
        modes.SseC = without._tag === "Right"
          ? "ignored"
          : withKey._tag === "Right" && withKey.right.equals(body)
          ? "enforced"
          : "accepted"
      }
      yield* cleanup(name)
    } else {
      skipped.push("sse-c: customer-provided keys need https (the Azure SDK refuses them over http)")
    }

    facts.modes = modes
    return {
      probe: { profile: "azure-blob", bucket: store.bucket, probedAt: new Date().toISOString(), facts },
      skipped
    }
  })
