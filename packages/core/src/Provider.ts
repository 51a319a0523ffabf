/**
 * The storage back ends objcrypt has a driver for.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * A driver family: one `@objcrypt/driver-*` package each.
 *
 * @since 0.1.0
 * @category models
 */
export const Provider = Schema.Literal("s3", "gcs", "azure", "fs")

/**
 * @since 0.1.0
 * @category models
 */
export type Provider = typeof Provider.Type
