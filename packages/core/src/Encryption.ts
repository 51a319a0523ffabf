/**
 * One entry point for every mode: `put` encrypts with any of the six modes (server-side modes
 * become the driver's native request parameters, client-side modes the native segmented format),
 * `get` reads any object back (client-side envelopes are detected and decrypted), `inspect` says
 * how an object is protected. A mode's requirements show in the type: `put` with `cse-kms` needs a
 * `CseKmsMode` service, whose only layer needs a `Kms`, so forgetting the KMS does not compile.
 *
 * @since 0.1.0
 */
import { Context, Effect, Either, Layer, Option, Stream } from "effect"
import type { Scope } from "effect"
import * as ClientSide from "./ClientSide.js"
import type * as CustomerKey from "./CustomerKey.js"
import type * as EncryptionMode from "./EncryptionMode.js"
import type { DecryptError, EncryptError, StoreError } from "./Errors.js"
import { KeyNotFound, KeyUnusable, UnsupportedMode } from "./Errors.js"
import { Keyring } from "./Keyring.js"
import * as Keyrings from "./Keyring.js"
import { KeyStore } from "./KeyStore.js"
import { Kms } from "./Kms.js"
import * as ModeService from "./ModeService.js"
import type * as ObjectStore from "./ObjectStore.js"

type Store = ObjectStore.ObjectStore["Type"]

/**
 * Client-side encryption under key-store keys (symmetric keys and public-key recipients).
 *
 * @since 0.1.0
 * @category tags
 */
export class CseCMode extends Context.Tag("@objcrypt/core/Encryption/CseCMode")<CseCMode, {
  readonly keyrings: (mode: EncryptionMode.Of<"CseC">) => Effect.Effect<ReadonlyArray<Keyring>, ModeService.ResolveError>
}>() {}

/**
 * Client-side encryption with data keys wrapped by a KMS.
 *
 * @since 0.1.0
 * @category tags
 */
export class CseKmsMode extends Context.Tag("@objcrypt/core/Encryption/CseKmsMode")<CseKmsMode, {
  readonly keyrings: (mode: EncryptionMode.Of<"CseKms">) => Effect.Effect<ReadonlyArray<Keyring>, ModeService.ResolveError>
}>() {}

/**
 * @since 0.1.0
 * @category layers
 */
export const layerCseC: Layer.Layer<CseCMode, never, KeyStore> = Layer.effect(
  CseCMode,
  Effect.map(KeyStore, (keys) => ({
    keyrings: (mode: EncryptionMode.Of<"CseC">) =>
      Effect.forEach(mode.keys, (ref) =>
        Effect.flatMap(keys.resolve(ref.name, ref.version), (k) =>
          k.info.state !== "enabled"
            ? Effect.fail(new KeyUnusable({ name: ref.name, reason: `the key is ${k.info.state}` }))
            : k.info.purpose === "sse-c"
            ? Effect.fail(new KeyUnusable({ name: ref.name, reason: "an sse-c customer key is not for client-side wrapping" }))
            : Effect.succeed(Keyrings.fromResolvedKey(k))))
  }))
)

/**
 * @since 0.1.0
 * @category layers
 */
export const layerCseKms: Layer.Layer<CseKmsMode, never, Kms> = Layer.effect(
  CseKmsMode,
  Effect.map(Kms, (kms) => ({
    keyrings: (mode: EncryptionMode.Of<"CseKms">) => Effect.succeed([Keyrings.kms(kms, mode.keyId)])
  }))
)

/**
 * Reads objects back: the unwrapper for client-side envelopes and the resolver for SSE-C keys.
 *
 * @since 0.1.0
 * @category tags
 */
export class Decryptor extends Context.Tag("@objcrypt/core/Encryption/Decryptor")<Decryptor, {
  readonly unwrapper: Keyrings.Unwrapper
  readonly customerKey: (ref: EncryptionMode.KeyRef) => Effect.Effect<CustomerKey.CustomerKey, ModeService.ResolveError>
}>() {}

/**
 * A decryptor over whatever `KeyStore` and `Kms` are in the context (both optional): objects
 * whose keys are not available fail with `DecryptError` `NoUsableKey`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerDecryptor = (keys?: ReadonlyArray<Keyrings.DecryptionKey>): Layer.Layer<Decryptor> =>
  Layer.effect(
    Decryptor,
    Effect.gen(function*() {
      const keyStore = Option.getOrUndefined(yield* Effect.serviceOption(KeyStore))
      const kms = Option.getOrUndefined(yield* Effect.serviceOption(Kms))
      return {
        unwrapper: Keyrings.makeUnwrapper({ keyStore, kms, keys }),
        customerKey: (ref: EncryptionMode.KeyRef) =>
          ModeService.resolveCustomerKey(keyStore ?? noKeyStore, ref)
      }
    })
  )

const noKeyStore: KeyStore["Type"] = {
  resolve: (name, version) => Effect.fail(new KeyNotFound({ name, version })),
  resolveId: (id, version) => Effect.fail(new KeyNotFound({ name: id, version })),
  list: Effect.succeed([])
}

/**
 * Every mode service, over a key store and a KMS: what the CLI composes.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerAll: Layer.Layer<
  ModeService.NoneMode | ModeService.SseS3Mode | ModeService.SseKmsMode | ModeService.SseCMode | CseCMode | CseKmsMode | Decryptor,
  never,
  KeyStore | Kms
> = Layer.mergeAll(
  ModeService.layerNone,
  ModeService.layerSseS3,
  ModeService.layerSseKms,
  ModeService.layerSseC,
  layerCseC,
  layerCseKms,
  layerDecryptor()
)

/**
 * The service a mode needs.
 *
 * @since 0.1.0
 * @category models
 */
export type Requirement<T extends EncryptionMode.ModeTag> = T extends "None" ? ModeService.NoneMode
  : T extends "SseS3" ? ModeService.SseS3Mode
  : T extends "SseKms" ? ModeService.SseKmsMode
  : T extends "SseC" ? ModeService.SseCMode
  : T extends "CseC" ? CseCMode
  : CseKmsMode

/**
 * @since 0.1.0
 * @category models
 */
export interface PutOptions extends Omit<ClientSide.PutOptions, "pool"> {
  readonly pool?: ClientSide.WorkerPool | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface PutResult extends ObjectStore.PutResult {
  readonly mode: EncryptionMode.ModeTag
  /** Set for client-side modes. */
  readonly clientSide?: { readonly plaintextSize: number; readonly envelope: "metadata" | "sidecar"; readonly parts: number } | undefined
}

/**
 * @since 0.1.0
 * @category errors
 */
export type PutError = StoreError | UnsupportedMode | EncryptError | ModeService.ResolveError

/**
 * Stores `body` under `key` with `mode`. An unsupported mode fails before any byte is sent.
 *
 * @since 0.1.0
 * @category encryption
 */
export const put = <M extends EncryptionMode.EncryptionMode, E = never>(
  store: Store,
  key: string,
  body: Stream.Stream<Uint8Array, E>,
  mode: M,
  options?: PutOptions
): Effect.Effect<PutResult, PutError | E, Requirement<M["_tag"]>> => {
  const m = mode as EncryptionMode.EncryptionMode
  const sse = (resolved: Effect.Effect<ObjectStore.ServerSideEncryption | undefined, ModeService.ResolveError, any>) =>
    Effect.gen(function*() {
      yield* ModeService.ensureNative(store, m._tag)
      const s = yield* resolved
      // Drivers may keep a chunk (a multipart part being filled): borrowed chunks are copied.
      const owned = options?.borrowedBody === true ? Stream.map(body, (c) => new Uint8Array(c)) : body
      const r = yield* store.put(key, owned, {
        contentLength: options?.contentLength,
        contentType: options?.contentType,
        metadata: options?.metadata,
        sse: s
      })
      return { ...r, mode: m._tag } satisfies PutResult
    })
  const cse = (keyrings: Effect.Effect<ReadonlyArray<Keyring>, ModeService.ResolveError, any>) =>
    Effect.gen(function*() {
      const ks = yield* keyrings
      // The mode's context (`--context`) and the caller's are both bound; the caller's wins a clash.
      const modeContext = m._tag === "CseC" || m._tag === "CseKms" ? m.context : undefined
      const context = modeContext === undefined ? options?.context : { ...modeContext, ...options?.context }
      const r = yield* ClientSide.put(store, key, body, ks, { ...options, context })
      return {
        key: r.key,
        etag: r.etag,
        size: r.size,
        encryption: r.encryption,
        mode: m._tag,
        clientSide: { plaintextSize: r.plaintextSize, envelope: r.envelope, parts: r.parts }
      } satisfies PutResult
    })
  switch (m._tag) {
    case "None":
      return sse(Effect.flatMap(ModeService.NoneMode, (s) => s.resolve(m))) as never
    case "SseS3":
      return sse(Effect.flatMap(ModeService.SseS3Mode, (s) => s.resolve(m))) as never
    case "SseKms":
      return sse(Effect.flatMap(ModeService.SseKmsMode, (s) => s.resolve(m))) as never
    case "SseC":
      return sse(Effect.flatMap(ModeService.SseCMode, (s) => s.resolve(m))) as never
    case "CseC":
      return cse(Effect.flatMap(CseCMode, (s) => s.keyrings(m))) as never
    case "CseKms":
      return cse(Effect.flatMap(CseKmsMode, (s) => s.keyrings(m))) as never
  }
}

/**
 * How an object is protected, as far as can be told without its keys.
 *
 * @since 0.1.0
 * @category models
 */
export interface Inspection {
  readonly info: ObjectStore.ObjectInfo
  /** `CseC`/`CseKms` are told apart by the envelope's keyring types. */
  readonly mode: EncryptionMode.ModeTag | "Unknown"
  readonly clientSide?: ClientSide.EnvelopeSummary | undefined
  /** Set when the envelope could not be read (malformed, unknown format). */
  readonly problem?: DecryptError | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ReadOptions {
  readonly range?: ObjectStore.ByteRange | undefined
  /** The key of an SSE-C object. */
  readonly customerKey?: EncryptionMode.KeyRef | undefined
  /** Open client-side segments on worker threads (see `ClientSide.makeWorkerPool`). @default the calling thread */
  readonly pool?: ClientSide.WorkerPool | undefined
}

const sseOf = (ref: EncryptionMode.KeyRef | undefined) =>
  ref === undefined
    ? Effect.succeed(undefined)
    : Effect.flatMap(Decryptor, (d) => d.customerKey(ref)).pipe(
      Effect.map((key): ObjectStore.ServerSideEncryption => ({ _tag: "SseC", key }))
    )

/**
 * Classifies an object from its info (and envelope, for client-side objects).
 *
 * @since 0.1.0
 * @category inspection
 */
export const classify = (info: ObjectStore.ObjectInfo): Inspection => {
  if (ClientSide.isClientSide(info)) {
    const summary = ClientSide.inspect(info)
    if (Either.isLeft(summary)) return { info, mode: "Unknown", problem: summary.left }
    const kmsOnly = (summary.right.keys ?? []).length > 0 && (summary.right.keys ?? []).every((k) => k.type === "kms")
    return { info, mode: kmsOnly ? "CseKms" : "CseC", clientSide: summary.right }
  }
  const mode = info.encryption.mode === "Unknown" ? "Unknown" : info.encryption.mode
  return { info, mode }
}

/**
 * Heads an object and says how it is protected.
 *
 * @since 0.1.0
 * @category inspection
 */
export const inspect = (
  store: Store,
  key: string,
  options?: Pick<ReadOptions, "customerKey">
): Effect.Effect<Inspection, StoreError | ModeService.ResolveError | DecryptError, Decryptor> =>
  Effect.gen(function*() {
    const sse = yield* sseOf(options?.customerKey)
    const info = yield* store.head(key, { sse })
    const c = classify(info)
    if (c.clientSide?.location === "sidecar") {
      const full = yield* ClientSide.readEnvelope(store, key)
      return { ...c, clientSide: full }
    }
    return c
  })

/**
 * @since 0.1.0
 * @category models
 */
export interface ReadResult {
  readonly info: ObjectStore.ObjectInfo
  readonly mode: EncryptionMode.ModeTag | "Unknown"
  /** Size of the whole plaintext object. */
  readonly size: number
  /** Present on ranged reads, `end` exclusive. */
  readonly range?: { readonly start: number; readonly end: number } | undefined
  readonly body: Stream.Stream<Uint8Array, StoreError | DecryptError>
}

/**
 * Opens any object for reading: client-side objects are decrypted (authenticated, ranged reads
 * fetch only the segments they need), SSE-C objects are read with their key, others as stored.
 *
 * @since 0.1.0
 * @category decryption
 */
export const get = (
  store: Store,
  key: string,
  options?: ReadOptions
): Effect.Effect<ReadResult, StoreError | DecryptError | ModeService.ResolveError, Decryptor | Scope.Scope> =>
  Effect.gen(function*() {
    const sse = yield* sseOf(options?.customerKey)
    const info = yield* store.head(key, { sse })
    const c = classify(info)
    if (c.problem !== undefined) return yield* Effect.fail(c.problem)
    if (c.clientSide !== undefined) {
      const d = yield* Decryptor
      const obj = yield* ClientSide.get(store, key, d.unwrapper, { range: options?.range, pool: options?.pool })
      return { info: obj.info, mode: c.mode, size: obj.plaintextSize, range: obj.range, body: obj.body }
    }
    const obj = yield* store.get(key, { range: options?.range, sse })
    return { info: obj.info, mode: c.mode, size: obj.info.size, range: obj.range, body: obj.body }
  })

/**
 * Rewraps a client-side object's data key (see `ClientSide.rekey`).
 *
 * @since 0.1.0
 * @category rekeying
 */
export const rekey = (
  store: Store,
  key: string,
  change: ClientSide.RekeyChange
): Effect.Effect<ClientSide.EnvelopeSummary, StoreError | UnsupportedMode | DecryptError | EncryptError, Decryptor> =>
  Effect.flatMap(Decryptor, (d) => ClientSide.rekey(store, key, d.unwrapper, change))
