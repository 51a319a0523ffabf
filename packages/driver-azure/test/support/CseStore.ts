/**
 * Shared set-up of the client-side encryption tests on Azurite: a fresh container per test and a
 * whole-blob decrypting read.
 */
import type * as ObjectStore from "@objcrypt/core/ObjectStore"
import type * as Azurite from "@objcrypt/test-kit/Azurite"
import { Chunk, Effect, Redacted, Stream } from "effect"
import * as crypto from "node:crypto"
import * as AzureBlobObjectStore from "../../src/AzureBlobObjectStore.js"
import * as Cse from "../../src/AzureClientSideEncryption.js"

/** A store on a new container named `<prefix>-<random>` of the Azurite `info` describes. */
export const freshContainer = (info: Azurite.AzuriteInfo, prefix: string) =>
  Effect.gen(function*() {
    const container = `${prefix}-${crypto.randomBytes(5).toString("hex")}`
    const store = yield* AzureBlobObjectStore.make({
      container,
      accountUrl: info.blobEndpoint,
      credentials: { _tag: "SharedKey", accountName: info.accountName, accountKey: Redacted.make(info.accountKey) }
    })
    yield* Effect.orDie(AzureBlobObjectStore.createContainer(store.client))
    return { store, info, container }
  })

/** The plaintext of a client-side encrypted blob, read in full. */
export const readAll = (store: ObjectStore.ObjectStore["Type"], key: string, resolver: Cse.KeyResolver) =>
  Effect.scoped(Effect.gen(function*() {
    const obj = yield* Cse.get(store, key, resolver)
    return Buffer.concat(Chunk.toArray(yield* Stream.runCollect(obj.body)))
  }))
