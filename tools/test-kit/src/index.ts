/**
 * @since 0.1.0
 */
export const version = "0.1.0"
export * as ObjectStoreSuite from "./ObjectStoreSuite.js"
export * as CephRgw from "./CephRgw.js"
export * as MotoServer from "./MotoServer.js"
export * as Azurite from "./Azurite.js"
export * as GcsServer from "./GcsServer.js"
export * as KmsSuite from "./KmsSuite.js"
export * as S3ecPeers from "./S3ecPeers.js"
export * as TcpRelay from "./TcpRelay.js"
export * as MemoryBudget from "./MemoryBudget.js"
