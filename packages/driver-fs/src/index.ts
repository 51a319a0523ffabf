/**
 * @since 0.1.0
 */
export * as FsConfig from "./FsConfig.js"
export * as FsObjectStore from "./FsObjectStore.js"
