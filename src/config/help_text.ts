/**
 * `--help` output, built from the option table so that every option is
 * listed with its unit and default.
 *
 * @module
 */

import { DEFAULT_OPTIONS } from "../options.ts";
import {
  COMMAND_FLAGS,
  OPTION_GROUPS,
  OPTION_TABLE,
  type OptionSpec,
} from "./option_table.ts";

/** Width of the column that contains the flag and its placeholder. */
const FLAG_COLUMN = 38;

function line(flags: string, description: string): string {
  return `  ${flags.padEnd(FLAG_COLUMN - 2)} ${description}`;
}

function optionLine(spec: OptionSpec): string {
  const flag = `--${spec.flag}` +
    (spec.kind.placeholder === "" ? "" : ` ${spec.kind.placeholder}`);
  const value = DEFAULT_OPTIONS[spec.field];
  const defaultText = value === undefined
    ? "none"
    : (spec.kind.format as (value: unknown) => string)(value);
  return line(flag, `${spec.description} (default: ${defaultText})`);
}

const HEADER = `Usage: relay [options]

Voice relay (SFU) for WebSocket and WebTransport clients.

Each option comes from its flag, else from its environment variable
(--http-port is RELAY_HTTP_PORT), else from the config file (key
http_port), else from its default. An empty environment variable counts as
unset. Durations take a unit, as in 500ms, 5s, 2m or 1h, and a bare number
means seconds. Paths are relative to the working directory.`;

const FEDERATION = [
  "Federation (config file only):",
  line(
    "federation.peers",
    "Relays this one dials: url, http_url, fingerprint, label " +
      "(default: none)",
  ),
  line(
    "federation.trusted",
    "Relays that may dial this one: fingerprint, label (default: none)",
  ),
  line(
    "federation.global_rooms",
    'Rooms bridged to peers; "*" bridges every room (default: none)',
  ),
  "",
  "A peer's url is the https:// WebTransport URL of its /federation",
  "endpoint, and http_url its http:// or https:// base URL, where its signed",
  "certificate hashes are. A fingerprint is 8 groups of 4 hex digits:",
  "xxxx:xxxx:xxxx:xxxx:xxxx:xxxx:xxxx:xxxx. A label names the relay in logs",
  "and metrics.",
];

/** Returns the `--help` text: every flag with its unit and default. */
export function helpText(): string {
  const sections = [HEADER];

  const general = ["General:"];
  for (const command of COMMAND_FLAGS) {
    const names = (command.short === undefined ? "" : `-${command.short}, `) +
      `--${command.flag}` +
      (command.placeholder === "" ? "" : ` ${command.placeholder}`);
    general.push(line(names, command.description));
  }
  sections.push(general.join("\n"));

  for (const group of OPTION_GROUPS) {
    const lines = [`${group}:`];
    for (const spec of OPTION_TABLE) {
      if (spec.group === group) lines.push(optionLine(spec));
    }
    sections.push(lines.join("\n"));
  }

  sections.push(FEDERATION.join("\n"));
  return sections.join("\n\n") + "\n";
}
