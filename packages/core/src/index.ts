/**
 * @since 0.1.0
 */
export * as CustomerKey from "./CustomerKey.js"
export * as EncryptionMode from "./EncryptionMode.js"
export * as Errors from "./Errors.js"
export * as KeyStore from "./KeyStore.js"
export * as Kms from "./Kms.js"
export * as ObjectStore from "./ObjectStore.js"
export * as Provider from "./Provider.js"
export * as CompatibilityMatrix from "./CompatibilityMatrix.js"
export * as ModeService from "./ModeService.js"
export * as ClientSide from "./ClientSide.js"
export * as Encryption from "./Encryption.js"
export * as Keyring from "./Keyring.js"
export * as NativeFormat from "./NativeFormat.js"
export * as S3EncryptionClient from "./S3EncryptionClient.js"
export * as StreamParts from "./StreamParts.js"
export * as BackgroundHash from "./BackgroundHash.js"
