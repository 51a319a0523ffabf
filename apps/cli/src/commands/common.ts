/**
 * Options shared by every command, and the helper that opens a session for a handler.
 *
 * @since 0.1.0
 */
import { Options } from "@effect/cli"
import { Effect, Option } from "effect"
import type * as Scope from "effect/Scope"
import * as EncryptionMode from "@objcrypt/core/EncryptionMode"
import type { InvalidEncryptionParameters } from "@objcrypt/core/Errors"
import type { ConfigError } from "../CliError.js"
import * as EndpointsConfig from "../EndpointsConfig.js"
import * as Session from "../Session.js"

/**
 * `--config`, `--keystore`, `--passphrase-file`, `--kms`, `--kms-endpoint`, `--kms-region`, `--verbose`.
 *
 * @since 0.1.0
 * @category options
 */
export const common = {
  config: Options.text("config").pipe(
    Options.withDescription("endpoints configuration file (default $XDG_CONFIG_HOME/objcrypt/config.json, or $OBJCRYPT_CONFIG)"),
    Options.optional
  ),
  keystore: Options.text("keystore").pipe(
    Options.withDescription("key store file (default $XDG_DATA_HOME/objcrypt/keystore, or $OBJCRYPT_KEYSTORE)"),
    Options.optional
  ),
  passphraseFile: Options.text("passphrase-file").pipe(
    Options.withDescription("read the key-store passphrase from this file (else $OBJCRYPT_PASSPHRASE, else a prompt)"),
    Options.optional
  ),
  kms: Options.choice("kms", EndpointsConfig.KmsType.literals).pipe(
    Options.withDescription("KMS of cse-kms: local (the key store), aws, gcp (Cloud KMS) or azure (Key Vault); default: the endpoint's, else the config file's, else local"),
    Options.optional
  ),
  kmsEndpoint: Options.text("kms-endpoint").pipe(
    Options.withDescription("AWS KMS or Cloud KMS endpoint URL (a private endpoint, a test server)"),
    Options.optional
  ),
  kmsRegion: Options.text("kms-region").pipe(Options.withDescription("AWS KMS region (default $AWS_REGION, else us-east-1)"), Options.optional),
  verbose: Options.boolean("verbose").pipe(Options.withDescription("print error causes and stack traces"))
}

/**
 * `--json`.
 *
 * @since 0.1.0
 * @category options
 */
export const json = Options.boolean("json").pipe(Options.withDescription("machine-readable JSON output"))

/**
 * The encryption flags of commands that write.
 *
 * @since 0.1.0
 * @category options
 */
export const modeOptions = {
  mode: Options.choice("mode", EncryptionMode.ModeName.literals).pipe(
    Options.withDescription("encryption mode (default: the endpoint's, else none)"),
    Options.optional
  ),
  key: Options.text("key").pipe(
    Options.withDescription("key-store key NAME[@VERSION] (cse-c: comma-separated for several; sse-c: the customer key)"),
    Options.optional
  ),
  recipient: Options.text("recipient").pipe(
    Options.withDescription("public-key recipient (key-store name), repeatable (cse-c)"),
    Options.repeated
  ),
  kmsKeyId: Options.text("kms-key-id").pipe(Options.withDescription("KMS key id (sse-kms, cse-kms)"), Options.optional),
  context: Options.text("context").pipe(
    Options.withDescription("encryption context k=v,k2=v2 or a JSON object (sse-kms, cse-kms, cse-c)"),
    Options.optional
  )
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ModeOptionValues {
  readonly mode: Option.Option<EncryptionMode.ModeName>
  readonly key: Option.Option<string>
  readonly recipient: ReadonlyArray<string>
  readonly kmsKeyId: Option.Option<string>
  readonly context: Option.Option<string>
}

/**
 * Turns parsed mode options into `ModeFlags`.
 *
 * @since 0.1.0
 * @category options
 */
export const modeFlags = (o: ModeOptionValues): Effect.Effect<Session.ModeFlags, InvalidEncryptionParameters> =>
  Effect.gen(function*() {
    const context = Option.isSome(o.context) ? yield* EncryptionMode.parseContext(o.context.value) : undefined
    return {
      mode: Option.getOrUndefined(o.mode),
      key: Option.getOrUndefined(o.key),
      recipients: o.recipient.length > 0 ? o.recipient : undefined,
      kmsKeyId: Option.getOrUndefined(o.kmsKeyId),
      context
    }
  })

/**
 * Runs a handler with a session, closing stores and the key store afterwards.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withSession = <A, E, R>(
  flags: Session.CommonFlags,
  f: (session: Session.Session) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | ConfigError, Exclude<R, Scope.Scope>> => Effect.scoped(Effect.flatMap(Session.make(flags), f))

/**
 * Writes a line to stdout.
 *
 * @since 0.1.0
 * @category output
 */
export const println = (s: string): Effect.Effect<void> => Effect.sync(() => void process.stdout.write(s + "\n"))

/**
 * Writes JSON (one document) to stdout.
 *
 * @since 0.1.0
 * @category output
 */
export const printJson = (value: unknown): Effect.Effect<void> =>
  Effect.sync(() => void process.stdout.write(JSON.stringify(value, null, 2) + "\n"))

/**
 * Writes a line to stderr (notes and warnings that must not mix with data on stdout).
 *
 * @since 0.1.0
 * @category output
 */
export const eprintln = (s: string): Effect.Effect<void> => Effect.sync(() => void process.stderr.write(s + "\n"))
