#!/usr/bin/env node
/**
 * `objcrypt-gateway --config <file>`: serves the S3 API described by the configuration file.
 *
 * @since 0.1.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect, Layer } from "effect"
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
  const kms = config.kmsService === undefined
    ? Layer.empty
    : KmsService.layer(config.kmsService, yield* KmsService.readUsers(config.users), { defaultRegion: config.region })
  return yield* Layer.launch(Layer.merge(GatewayServer.layer(config), kms))
})

NodeRuntime.runMain(main)
