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

const args = process.argv.slice(2)
const i = args.indexOf("--config")
const path = i >= 0 ? args[i + 1] : process.env["OBJCRYPT_GATEWAY_CONFIG"]

const main = Effect.gen(function*() {
  if (path === undefined) {
    return yield* Effect.fail(new GatewayConfig.ConfigFileError({ path: "<none>", detail: "usage: objcrypt-gateway --config <file> (or OBJCRYPT_GATEWAY_CONFIG)" }))
  }
  const config = yield* GatewayConfig.load(path)
  return yield* Layer.launch(GatewayServer.layer(config))
})

NodeRuntime.runMain(main)
