/**
 * The config file: YAML or JSON, one mapping whose keys are the flag names
 * in snake case plus the `federation` block.
 *
 * @module
 */

import { parseDocument } from "yaml";
import type { RelayOptions } from "../options.ts";
import { ConfigError, invalidValue } from "./config_error.ts";
import { parseFederation } from "./federation_config.ts";
import { OPTION_TABLE, type OptionSpec } from "./option_table.ts";

const OPTIONS_BY_KEY: ReadonlyMap<string, OptionSpec> = new Map(
  OPTION_TABLE.map((spec) => [spec.key, spec]),
);

/** Names the format after the file extension, for messages. */
function formatName(path: string): string {
  return path.toLowerCase().endsWith(".json") ? "JSON" : "YAML";
}

/**
 * Parses YAML or JSON text into a mapping. JSON is parsed as YAML too, so
 * that errors carry a line and column and never quote the file's text,
 * which may hold a secret.
 */
function parseMapping(text: string, path: string): Record<string, unknown> {
  // NOTE: yaml 2.9.1 reads process.env.LOG_TOKENS while it parses, so a
  // caller without env permission gets NotCapable here.
  const document = parseDocument(text);
  const first = document.errors[0];
  if (first !== undefined) {
    // The first line has the reason and the position; the lines after it
    // quote the file, which may hold a secret.
    const reason = (first.message.split("\n")[0] ?? "").replace(/:$/, "");
    throw new ConfigError(`Invalid ${formatName(path)} in ${path}: ${reason}`);
  }

  let value: unknown;
  try {
    value = document.toJS();
  } catch (error) {
    // Unresolved aliases and alias expansion over the limit throw here.
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigError(
      `Invalid ${formatName(path)} in ${path}: ${reason}`,
      { cause: error },
    );
  }

  if (value === null || value === undefined) return {};
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new ConfigError(
      `Invalid ${formatName(path)} in ${path}: the top level must be a ` +
        "mapping of option keys to values, such as http_port: 8080",
    );
  }
  return value as Record<string, unknown>;
}

/**
 * Parses the text of the config file at `path` into options. The path only
 * names the file in errors and picks the word JSON or YAML for them. A key
 * set to null counts as unset. `cert` and `key` are file paths, which
 * `loadConfig` checks.
 *
 * @throws {ConfigError} for invalid YAML or JSON, an unknown key or an
 * invalid value, naming the key and the value.
 */
export function parseConfigText(
  text: string,
  path: string,
): Partial<RelayOptions> {
  const mapping = parseMapping(text, path);
  const options: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(mapping)) {
    if (key === "federation") {
      options.federation = parseFederation(value, path);
      continue;
    }

    const spec = OPTIONS_BY_KEY.get(key);
    if (spec === undefined) {
      throw new ConfigError(
        `Unknown key "${key}" in ${path}: config file keys are the flag ` +
          "names in snake case, such as http_port, plus federation",
        { option: key },
      );
    }
    if (value === null) continue;

    const parsed = spec.kind.parseValue(value);
    if (parsed === undefined) {
      throw invalidValue(
        `${key} in ${path}`,
        value,
        spec.kind.expected,
        spec.secret,
      );
    }
    options[spec.field] = parsed;
  }
  return options as Partial<RelayOptions>;
}

/**
 * Reads and parses the config file at `path`; `origin` names the flag or
 * variable that gave the path.
 *
 * @throws {ConfigError} when the file is missing, unreadable or invalid.
 */
export async function readConfigFile(
  path: string,
  origin: string,
): Promise<Partial<RelayOptions>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new ConfigError(
        `Config file not found: "${path}" (from ${origin})`,
        { option: origin, cause: error },
      );
    }
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigError(
      `Cannot read config file "${path}" (from ${origin}): ${reason}`,
      { option: origin, cause: error },
    );
  }
  return parseConfigText(text, path);
}
