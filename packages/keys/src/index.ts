/**
 * @since 0.1.0
 */
export * as AuditLog from "./AuditLog.js"
export * as Backup from "./Backup.js"
export * as KeyManager from "./KeyManager.js"
export * as KeyMaterial from "./KeyMaterial.js"
export * as LocalKeyStore from "./LocalKeyStore.js"
export * as LocalKms from "./LocalKms.js"
export * as Pkcs11Kms from "./Pkcs11Kms.js"
