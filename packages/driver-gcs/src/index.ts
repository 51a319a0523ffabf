/**
 * @since 0.1.0
 */
export * as GcsConfig from "./GcsConfig.js"
export * as GcsObjectStore from "./GcsObjectStore.js"
export * as GcsBuckets from "./GcsBuckets.js"
export * as CloudKms from "./CloudKms.js"
