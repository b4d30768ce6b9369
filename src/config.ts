/**
 * Configuration loading for the command line: flags, `RELAY_*` environment
 * variables and an optional YAML or JSON config file, in that order of
 * precedence over the defaults, all validated before the relay starts.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type RelayOptions, resolveOptions } from "./options.ts";
import { ConfigError, invalidValue } from "./config/config_error.ts";
import { parseConfigText, readConfigFile } from "./config/config_file.ts";
import { helpText } from "./config/help_text.ts";
import {
  COMMAND_FLAGS,
  CONFIG_ENV,
  KNOWN_ENV_NAMES,
  OPTION_TABLE,
  type ScalarField,
} from "./config/option_table.ts";

export { ConfigError, helpText, parseConfigText };

/** Result of {@linkcode loadConfig}. */
export interface LoadedConfig {
  /** Validated options; the defaults when `help` or `version` is set. */
  options: RelayOptions;
  /** Path of the config file that was read, if any. */
  configFile?: string;
  /** `--help` or `-h` was given. */
  help: boolean;
  /** `--version` was given. */
  version: boolean;
  /** Problems that do not stop the relay, such as unknown `RELAY_*` variables. */
  warnings: string[];
}

/** Shortest HS256 key, in bytes: RFC 7518 section 3.2 requires 256 bits. */
export const MIN_TOKEN_SECRET_BYTES = 32;

type ParseArgsConfig = Record<
  string,
  { type: "string" | "boolean"; short?: string }
>;

const PARSE_ARGS_OPTIONS: ParseArgsConfig = Object.fromEntries([
  ...OPTION_TABLE.map((spec) => [
    spec.flag,
    { type: spec.kind.placeholder === "" ? "boolean" : "string" },
  ]),
  ...COMMAND_FLAGS.map((command) => [
    command.flag,
    {
      type: command.placeholder === "" ? "boolean" : "string",
      ...(command.short === undefined ? {} : { short: command.short }),
    },
  ]),
]);

type FlagValues = Record<string, string | boolean | undefined>;

/** Rewords a `parseArgs` error; its own messages name no value. */
function flagError(error: unknown): ConfigError {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown } | null)?.code;
  const flag = /'(-[^' ]*)/.exec(message)?.[1] ?? "";
  switch (code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return new ConfigError(`Unknown option "${flag}"`, { option: flag });
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      if (message.includes("does not take an argument")) {
        return new ConfigError(`Option ${flag} takes no value`, {
          option: flag,
        });
      }
      return new ConfigError(
        `Missing value for ${flag} (to pass a value that starts with "-", ` +
          `write ${flag}=VALUE)`,
        { option: flag },
      );
    default:
      return new ConfigError(`Invalid command line: ${message}`, {
        cause: error,
      });
  }
}

function parseFlags(args: string[]): FlagValues {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: PARSE_ARGS_OPTIONS,
      strict: true,
      allowPositionals: true,
    });
  } catch (error) {
    throw flagError(error);
  }

  const positional = parsed.positionals[0];
  if (positional !== undefined) {
    throw new ConfigError(
      `Unexpected argument "${positional}": the relay takes only options`,
    );
  }
  return parsed.values;
}

/** Options set by one source, with the flag, variable or key that set each. */
interface Layer {
  options: Partial<Record<ScalarField, unknown>>;
  sources: Map<ScalarField, string>;
}

function readEnvLayer(env: Record<string, string | undefined>): Layer {
  const layer: Layer = { options: {}, sources: new Map() };
  for (const spec of OPTION_TABLE) {
    const text = env[spec.env];
    if (text === undefined || text === "") continue;

    const value = spec.kind.parseText(text);
    if (value === undefined) {
      throw invalidValue(spec.env, text, spec.kind.expected, spec.secret);
    }
    layer.options[spec.field] = value;
    layer.sources.set(spec.field, spec.env);
  }
  return layer;
}

function readFlagLayer(values: FlagValues): Layer {
  const layer: Layer = { options: {}, sources: new Map() };
  for (const spec of OPTION_TABLE) {
    const raw = values[spec.flag];
    if (raw === undefined) continue;

    const name = `--${spec.flag}`;
    const value = typeof raw === "boolean" ? raw : spec.kind.parseText(raw);
    if (value === undefined) {
      throw invalidValue(name, raw, spec.kind.expected, spec.secret);
    }
    layer.options[spec.field] = value;
    layer.sources.set(spec.field, name);
  }
  return layer;
}

function fileLayer(options: Partial<RelayOptions>, path: string): Layer {
  const sources = new Map<ScalarField, string>();
  for (const spec of OPTION_TABLE) {
    if (options[spec.field] !== undefined) {
      sources.set(spec.field, `${spec.key} in ${path}`);
    }
  }
  return { options, sources };
}

const PEM_BLOCK = {
  cert: /-----BEGIN CERTIFICATE-----/,
  key: /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/,
} as const;

/**
 * Checks that the file of `--cert` or `--key` can be read and contains a
 * PEM block of the right type. `source` names the option that set the path.
 */
async function checkPemFile(
  path: string,
  source: string,
  fileType: keyof typeof PEM_BLOCK,
): Promise<void> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "file not found"
      : error instanceof Error
      ? error.message
      : String(error);
    const kind = fileType === "cert" ? "certificate" : "private key";
    throw new ConfigError(
      `Cannot read the ${kind} file "${path}" (from ${source}): ${reason}`,
      { option: source, cause: error },
    );
  }

  if (!PEM_BLOCK[fileType].test(text)) {
    const block = fileType === "cert" ? "CERTIFICATE" : "PRIVATE KEY";
    throw invalidValue(source, path, `a PEM file with a ${block} block`);
  }
}

/** Checks that cert and key come together and that both files are PEM. */
async function checkCertificateFiles(
  options: Partial<Record<ScalarField, unknown>>,
  sources: Map<ScalarField, string>,
): Promise<void> {
  const certSource = sources.get("cert");
  const keySource = sources.get("key");
  if (certSource !== undefined && keySource === undefined) {
    throw new ConfigError(
      `Missing value for --key: ${certSource} sets a certificate, which ` +
        "needs its private key (set both --cert and --key, or neither)",
      { option: "--key" },
    );
  }
  if (keySource !== undefined && certSource === undefined) {
    throw new ConfigError(
      `Missing value for --cert: ${keySource} sets a private key, which ` +
        "needs its certificate (set both --cert and --key, or neither)",
      { option: "--cert" },
    );
  }
  if (certSource === undefined || keySource === undefined) return;

  await checkPemFile(String(options.cert), certSource, "cert");
  await checkPemFile(String(options.key), keySource, "key");
}

function collectWarnings(
  env: Record<string, string | undefined>,
  options: RelayOptions,
  sources: Map<ScalarField, string>,
): string[] {
  const warnings: string[] = [];
  for (const name of Object.keys(env).sort()) {
    if (name.startsWith("RELAY_") && !KNOWN_ENV_NAMES.has(name)) {
      warnings.push(`Unknown environment variable ${name} is ignored`);
    }
  }

  const secret = options.tokenSecret;
  const bytes = secret === undefined
    ? 0
    : new TextEncoder().encode(secret).length;
  if (secret !== undefined && bytes < MIN_TOKEN_SECRET_BYTES) {
    warnings.push(
      `The token secret from ${sources.get("tokenSecret")} is ${bytes} ` +
        `bytes; HS256 needs at least ${MIN_TOKEN_SECRET_BYTES} ` +
        "(RFC 7518 section 3.2), so use a longer random secret",
    );
  }
  return warnings;
}

/**
 * Builds the relay options from command line arguments and environment
 * variables: flags win over `RELAY_*` variables, which win over the config
 * file (`--config` or `RELAY_CONFIG`), which wins over the defaults. With
 * `--help` or `--version` it returns the defaults and reads nothing else.
 * `cert` and `key` stay file paths, and both files are checked to hold PEM.
 *
 * @throws {ConfigError} for an unknown flag or file key, an invalid value,
 * or a missing or unreadable file; the message names the option and the
 * value, with secrets shown as `"***"`.
 */
export async function loadConfig(
  args: string[],
  env: Record<string, string | undefined>,
): Promise<LoadedConfig> {
  const values = parseFlags(args);
  const help = values.help === true;
  const version = values.version === true;
  if (help || version) {
    return { options: resolveOptions(), help, version, warnings: [] };
  }

  const flagPath = values.config;
  const envPath = env[CONFIG_ENV];
  let configFile: string | undefined;
  let file: Layer = { options: {}, sources: new Map() };
  if (flagPath === "") {
    throw invalidValue("--config", flagPath, "a non-empty path");
  }
  if (typeof flagPath === "string" || (envPath ?? "") !== "") {
    const fromFlag = typeof flagPath === "string";
    configFile = fromFlag ? flagPath : envPath ?? "";
    const origin = fromFlag ? "--config" : CONFIG_ENV;
    file = fileLayer(await readConfigFile(configFile, origin), configFile);
  }

  const layers = [file, readEnvLayer(env), readFlagLayer(values)];
  const merged: Partial<Record<ScalarField, unknown>> = {};
  const sources = new Map<ScalarField, string>();
  for (const layer of layers) {
    Object.assign(merged, layer.options);
    for (const [field, source] of layer.sources) sources.set(field, source);
  }
  await checkCertificateFiles(merged, sources);

  const options = resolveOptions(merged as Partial<RelayOptions>);
  const loaded: LoadedConfig = {
    options,
    help,
    version,
    warnings: collectWarnings(env, options, sources),
  };
  if (configFile !== undefined) loaded.configFile = configFile;
  return loaded;
}
