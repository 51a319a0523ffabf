/**
 * @since 0.1.0
 */
export * as AzureProbe from "./AzureProbe.js"
export * as Cli from "./Cli.js"
export * as CliError from "./CliError.js"
export * as EndpointsConfig from "./EndpointsConfig.js"
export * as Formats from "./Formats.js"
export * as Passphrase from "./Passphrase.js"
export * as Progress from "./Progress.js"
export * as Session from "./Session.js"
export * as StoreUrl from "./StoreUrl.js"
export * as Stores from "./Stores.js"
