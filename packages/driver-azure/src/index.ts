/**
 * @since 0.1.0
 */
export * as AzureConfig from "./AzureConfig.js"
export * as AzureBlobObjectStore from "./AzureBlobObjectStore.js"
export * as AzureClientSideEncryption from "./AzureClientSideEncryption.js"
export * as KeyVaultKms from "./KeyVaultKms.js"
