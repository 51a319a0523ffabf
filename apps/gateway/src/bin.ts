#!/usr/bin/env node
/**
 * `objcrypt-gateway --config <file>`: serves the S3 API described by the configuration file.
 * `objcrypt-gateway --config <file> --create-sse-s3-key`: creates the SSE-S3 master key in the
 * PKCS#11 token named by `sseS3Hsm` (once, before the first start) and exits.
 *
 * @since 0.1.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Pkcs11Kms from "@objcrypt/keys/Pkcs11Kms"
import { Console, Effect, Layer } from "effect"
import * as GatewayConfig from "./GatewayConfig.js"
import * as GatewayServer from "./GatewayServer.js"
import * as KmsService from "./kms/KmsService.js"

const args = process.argv.slice(2)
const i = args.indexOf("--config")
const path = i >= 0 ? args[i + 1] : process.env["OBJCRYPT_GATEWAY_CONFIG"]

const main = Effect.gen(function*() {
  if (path === undefined) {
    return yield* Effect.fail(new GatewayConfig.ConfigFileError({ path: "<none>", detail: "usage: objcrypt-gateway --config <file> (or OBJCRYPT_GATEWAY_CONFIG)" }))
  }
  const config = yield* GatewayConfig.load(path)
  if (args.includes("--create-sse-s3-key")) {
    const hsm = config.sseS3Hsm
    if (hsm === undefined) {
      return yield* Effect.fail(new GatewayConfig.ConfigFileError({ path, detail: "--create-sse-s3-key needs an sseS3Hsm section" }))
    }
    const pin = yield* GatewayConfig.readSecret(hsm.pin, "sseS3Hsm.pin")
    const key = yield* Effect.scoped(
      Effect.flatMap(Pkcs11Kms.make({ library: hsm.library, tokenLabel: hsm.tokenLabel, pin }), ({ hsm: token }) => token.generateKey(hsm.keyLabel))
    )
    return yield* Console.log(JSON.stringify({ created: key.label, id: key.id, extractable: key.extractable, sensitive: key.sensitive }))
  }
  const kms = config.kmsService === undefined
    ? Layer.empty
    : KmsService.layer(config.kmsService, yield* KmsService.readUsers(config.users), { defaultRegion: config.region })
  return yield* Layer.launch(Layer.merge(GatewayServer.layer(config), kms))
})

NodeRuntime.runMain(main)
