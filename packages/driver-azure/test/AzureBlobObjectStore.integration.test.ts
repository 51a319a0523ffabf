/**
 * The conformance suite against a real Azurite (started for this file, see
 * @objcrypt/test-kit/Azurite). Azure-specific cases are in AzureBlobObjectStore.driver.integration.test.ts.
 */
import { afterAll } from "@effect/vitest"
import * as Azurite from "@objcrypt/test-kit/Azurite"
import { objectStoreSuite } from "@objcrypt/test-kit/ObjectStoreSuite"
import { Context, Effect, Layer, ManagedRuntime, Redacted } from "effect"
import * as crypto from "node:crypto"
import * as AzureBlobObjectStore from "../src/AzureBlobObjectStore.js"
import type { AzureConfig } from "../src/AzureConfig.js"

const azurite = ManagedRuntime.make(Azurite.layer())
afterAll(() => azurite.dispose(), 60_000)

class Container extends Context.Tag("test/Container")<Container, { readonly config: AzureConfig; readonly info: Azurite.AzuriteInfo }>() {}

/** A fresh container on the shared Azurite. Azurite ignores encryption scopes: the facts say so. */
const containerLayer = (extra?: Partial<AzureConfig>) =>
  Layer.scoped(
    Container,
    Effect.gen(function*() {
      const info = yield* Effect.promise(() => azurite.runPromise(Azurite.Azurite))
      const config: AzureConfig = {
        container: `objcrypt-${crypto.randomBytes(5).toString("hex")}`,
        accountUrl: info.blobEndpoint,
        credentials: { _tag: "SharedKey", accountName: info.accountName, accountKey: Redacted.make(info.accountKey) },
        facts: { modes: { SseKms: "ignored" } },
        ...extra
      }
      const client = AzureBlobObjectStore.makeClient(config)
      yield* Effect.orDie(AzureBlobObjectStore.createContainer(client))
      yield* Effect.addFinalizer(() => Effect.promise(() => client.deleteIfExists()).pipe(Effect.ignore))
      return { config, info }
    })
  )

const storeLayer = (extra?: Partial<AzureConfig>) =>
  Layer.unwrapScoped(Effect.map(Container, (c) => AzureBlobObjectStore.layer(c.config))).pipe(Layer.provideMerge(containerLayer(extra)))

objectStoreSuite({
  name: "AzureBlobObjectStore on Azurite (conformance)",
  layer: storeLayer({ blockSize: 256 * 1024 }),
  capabilities: { sse: { SseS3: true } },
  sizes: { partSize: 1024 * 1024 }
})
