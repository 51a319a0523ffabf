/**
 * Errors raised by the command line itself (bad URLs, configuration, missing local files, audit
 * policy), and the mapping of every expected error to a one-line message and a documented exit code.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * A command line that cannot be acted on: malformed URL, conflicting flags, a local path where a
 * store URL is needed.
 *
 * @since 0.1.0
 * @category errors
 */
export class UsageError extends Schema.TaggedError<UsageError>("@objcrypt/cli/UsageError")("UsageError", {
  detail: Schema.String
}) {
  override get message() {
    return this.detail
  }
}

/**
 * The endpoints configuration file cannot be read or is invalid.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConfigError extends Schema.TaggedError<ConfigError>("@objcrypt/cli/ConfigError")("ConfigError", {
  file: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `config ${this.file}: ${this.detail}`
  }
}

/**
 * A local file or directory that cannot be read or written.
 *
 * @since 0.1.0
 * @category errors
 */
export class LocalFileError extends Schema.TaggedError<LocalFileError>("@objcrypt/cli/LocalFileError")("LocalFileError", {
  path: Schema.String,
  reason: Schema.Literal("NotFound", "NotAFile", "Exists", "Io"),
  detail: Schema.String
}) {
  override get message() {
    return `${this.path}: ${this.detail}`
  }
}

/**
 * `audit` found objects that break the policy; the report has already been printed.
 *
 * @since 0.1.0
 * @category errors
 */
export class PolicyViolation extends Schema.TaggedError<PolicyViolation>("@objcrypt/cli/PolicyViolation")("PolicyViolation", {
  violations: Schema.Number,
  scanned: Schema.Number
}) {
  override get message() {
    return `${this.violations} of ${this.scanned} objects break the policy`
  }
}

/**
 * `rekey` could not re-key some objects; every outcome has already been printed and the others
 * were re-keyed. The exit code is the one the failures share (5 for objects that cannot be
 * decrypted, 3 for objects deleted meanwhile, 4 for a KMS refusal…), else 1.
 *
 * @since 0.1.0
 * @category errors
 */
export class RekeyIncomplete extends Schema.TaggedError<RekeyIncomplete>("@objcrypt/cli/RekeyIncomplete")("RekeyIncomplete", {
  failed: Schema.Number,
  examined: Schema.Number,
  rekeyed: Schema.Number,
  dryRun: Schema.Boolean,
  /** The first failure: `URL: reason`. */
  first: Schema.String,
  exitCode: Schema.Number
}) {
  override get message() {
    if (this.examined === 1) return `rekey ${this.dryRun ? "would fail" : "failed"} for ${this.first}`
    return this.dryRun
      ? `rekey would fail for ${this.failed} of ${this.examined} objects (first: ${this.first})`
      : `rekey failed for ${this.failed} of ${this.examined} objects, ${this.rekeyed} rekeyed (first: ${this.first})`
  }
}

/**
 * No passphrase for the key store could be obtained.
 *
 * @since 0.1.0
 * @category errors
 */
export class PassphraseUnavailable extends Schema.TaggedError<PassphraseUnavailable>("@objcrypt/cli/PassphraseUnavailable")(
  "PassphraseUnavailable",
  { detail: Schema.String }
) {
  override get message() {
    return `no key-store passphrase: ${this.detail}`
  }
}

/**
 * `cp --format` names a client-side format the destination or the mode cannot take.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnsupportedFormat extends Schema.TaggedError<UnsupportedFormat>("@objcrypt/cli/UnsupportedFormat")("UnsupportedFormat", {
  format: Schema.String,
  destination: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `cannot write ${this.destination} in format ${this.format}: ${this.reason}`
  }
}

/**
 * The documented exit codes (see the README).
 *
 * @since 0.1.0
 * @category exit codes
 */
export const ExitCode = {
  Ok: 0,
  General: 1,
  Usage: 2,
  NotFound: 3,
  KeyOrAuth: 4,
  Integrity: 5,
  Unsupported: 6,
  Policy: 7,
  Config: 8,
  Interrupted: 130
} as const

/**
 * @since 0.1.0
 * @category exit codes
 */
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode]

const byTag: Record<string, ExitCode> = {
  UsageError: ExitCode.Usage,
  InvalidEncryptionParameters: ExitCode.Usage,
  InvalidObjectKey: ExitCode.Usage,
  InvalidRange: ExitCode.Usage,
  ConfigError: ExitCode.Config,
  ObjectNotFound: ExitCode.NotFound,
  KeyNotFound: ExitCode.KeyOrAuth,
  KeyUnusable: ExitCode.KeyOrAuth,
  KeyStoreError: ExitCode.KeyOrAuth,
  KmsError: ExitCode.KeyOrAuth,
  AccessDenied: ExitCode.KeyOrAuth,
  InvalidCustomerKey: ExitCode.KeyOrAuth,
  PassphraseUnavailable: ExitCode.KeyOrAuth,
  DecryptError: ExitCode.Integrity,
  UnsupportedMode: ExitCode.Unsupported,
  UnsupportedFormat: ExitCode.Unsupported,
  PolicyViolation: ExitCode.Policy,
  PreconditionFailed: ExitCode.General,
  ProviderError: ExitCode.General,
  EncryptError: ExitCode.General
}

/**
 * The exit code for an error, by its `_tag`.
 *
 * @since 0.1.0
 * @category exit codes
 */
export const exitCodeOf = (error: unknown): ExitCode => {
  const tag = typeof error === "object" && error !== null ? (error as { _tag?: unknown })._tag : undefined
  if (typeof tag !== "string") return ExitCode.General
  if (tag === "LocalFileError") {
    return (error as LocalFileError).reason === "NotFound" ? ExitCode.NotFound : ExitCode.General
  }
  if (tag === "KeyStoreError" && (error as { reason?: unknown }).reason === "Io") return ExitCode.General
  if (tag === "RekeyIncomplete") {
    const code = (error as RekeyIncomplete).exitCode
    return (Object.values(ExitCode) as Array<number>).includes(code) && code !== ExitCode.Ok ? code as ExitCode : ExitCode.General
  }
  return byTag[tag] ?? ExitCode.General
}

/**
 * One line a user can act on: the error's own message with newlines folded.
 *
 * @since 0.1.0
 * @category rendering
 */
export const messageOf = (error: unknown): string => {
  const raw = error instanceof Error || (typeof error === "object" && error !== null && "message" in error)
    ? String((error as { message: unknown }).message)
    : String(error)
  const text = raw.trim() === "" ? (typeof error === "object" && error !== null && "_tag" in error ? String((error as { _tag: unknown })._tag) : "unknown error") : raw
  return text.replace(/\s*\n\s*/g, "; ")
}
