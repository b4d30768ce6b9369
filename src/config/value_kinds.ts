/**
 * Value kinds of the relay's options: how each kind is parsed from a flag or
 * an environment variable (text) and from a config file (a YAML value), the
 * valid values that an error message names, and how `--help` prints a default.
 *
 * @module
 */

import type { LogFormat, LogLevel } from "../options.ts";

/** Parser and printer of one kind of option value. */
export interface ValueKind<T> {
  /** Placeholder after the flag in `--help`, such as `<port>`; empty for switches. */
  readonly placeholder: string;
  /** Description of the valid values, for error messages. */
  readonly expected: string;
  /** Parses text from a flag or an environment variable; undefined when invalid. */
  parseText(text: string): T | undefined;
  /** Parses a value read from a config file; undefined when invalid. */
  parseValue(value: unknown): T | undefined;
  /** Formats a value for `--help` and the example config files. */
  format(value: T): string;
}

/**
 * Maximum timer delay, in ms. Deno's `setTimeout` stores the delay as a
 * signed 32-bit integer and fires after 1 ms when the delay is larger.
 */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/** Maximum number of room shards. */
export const MAX_ROOM_SHARDS = 4096;

const DIGITS = /^[0-9]+$/;

function parseInteger(text: string): number | undefined {
  if (!DIGITS.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}

/** Builds a kind whose file values are numbers or numeric text. */
function integerKind(
  placeholder: string,
  expected: string,
  accept: (value: number) => boolean,
): ValueKind<number> {
  const check = (value: number | undefined) =>
    value !== undefined && Number.isSafeInteger(value) && accept(value)
      ? value
      : undefined;
  return {
    placeholder,
    expected,
    parseText: (text) => check(parseInteger(text)),
    parseValue: (value) => {
      if (typeof value === "number") return check(value);
      if (typeof value === "string") return check(parseInteger(value));
      return undefined;
    },
    format: (value) => String(value),
  };
}

/** TCP or UDP port; 0 lets the system pick one. */
export const portKind: ValueKind<number> = integerKind(
  "<port>",
  "an integer from 0 to 65535",
  (value) => value >= 0 && value <= 65_535,
);

/** Count or size of at least 1. */
export const countKind: ValueKind<number> = integerKind(
  "<count>",
  "a positive integer",
  (value) => value >= 1,
);

/** Size in bytes, at least 1. */
export const bytesKind: ValueKind<number> = {
  ...integerKind(
    "<bytes>",
    "a positive integer number of bytes",
    (value) => value >= 1,
  ),
  format: (value) => `${value} bytes`,
};

/** Number of room shards: a power of two from 1 to {@linkcode MAX_ROOM_SHARDS}. */
export const roomShardsKind: ValueKind<number> = integerKind(
  "<count>",
  `a power of two from 1 to ${MAX_ROOM_SHARDS}`,
  (value) =>
    value >= 1 && value <= MAX_ROOM_SHARDS && (value & (value - 1)) === 0,
);

const DURATION = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?$/;

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

/** Converts an amount of a unit to whole ms; undefined when out of range. */
function toMilliseconds(amount: number, unitMs: number): number | undefined {
  const exact = amount * unitMs;
  const ms = Math.round(exact);
  // Decimal fractions such as 1.1 are not exact in binary, so allow a tiny
  // error before calling a value a fraction of a millisecond.
  if (Math.abs(exact - ms) > 1e-6) return undefined;
  if (ms < 1 || ms > MAX_TIMER_DELAY_MS) return undefined;
  return ms;
}

/**
 * Duration, stored in ms. Text takes a unit (`500ms`, `5s`, `2m`, `1h`);
 * a bare number, in text or as a YAML number, means seconds.
 */
export const durationKind: ValueKind<number> = {
  placeholder: "<duration>",
  expected: `a duration from 1ms to ${MAX_TIMER_DELAY_MS}ms such as ` +
    "500ms, 5s or 2m; a bare number means seconds",
  parseText: parseDuration,
  parseValue(value) {
    if (typeof value === "string") return parseDuration(value);
    if (typeof value !== "number" || !Number.isFinite(value)) return undefined;
    return toMilliseconds(value, 1_000);
  },
  format: formatDuration,
};

function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (match === null) return undefined;
  const unitMs = UNIT_MS[match[2] ?? "s"] ?? 1_000;
  return toMilliseconds(Number(match[1]), unitMs);
}

/** Formats ms with the largest unit that divides it: `5s`, `500ms`, `2m`. */
export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1_000 === 0) return `${ms / 1_000}s`;
  return `${ms}ms`;
}

const TRUE_TEXT = new Set(["true", "1", "yes", "on"]);
const FALSE_TEXT = new Set(["false", "0", "no", "off"]);

/** On/off switch; text accepts true/false, 1/0, yes/no and on/off. */
export const booleanKind: ValueKind<boolean> = {
  placeholder: "",
  expected: "true or false",
  parseText: parseBoolean,
  parseValue(value) {
    if (typeof value === "boolean") return value;
    if (typeof value === "string") return parseBoolean(value);
    return undefined;
  },
  format: (value) => String(value),
};

function parseBoolean(text: string): boolean | undefined {
  const lower = text.trim().toLowerCase();
  if (TRUE_TEXT.has(lower)) return true;
  if (FALSE_TEXT.has(lower)) return false;
  return undefined;
}

/** Builds a kind for non-empty text that passes `accept`. */
function textKind(
  placeholder: string,
  expected: string,
  accept: (text: string) => boolean = () => true,
): ValueKind<string> {
  const parseText = (text: string) =>
    text.length > 0 && accept(text) ? text : undefined;
  return {
    placeholder,
    expected,
    parseText,
    parseValue: (value) =>
      typeof value === "string" ? parseText(value) : undefined,
    format: (value) => value,
  };
}

/** Bind address: an IP address or host name, without spaces. */
export const hostKind: ValueKind<string> = textKind(
  "<address>",
  "an IP address or host name",
  (text) => !/\s/.test(text),
);

/** File system path, relative to the working directory unless absolute. */
export const pathKind: ValueKind<string> = textKind(
  "<path>",
  "a non-empty path",
);

/** Secret text such as a token or an HMAC key. */
export const secretKind: ValueKind<string> = textKind(
  "<secret>",
  "a non-empty string",
);

/** Checks that `text` parses as a URL with one of `protocols`. */
export function isUrlWith(text: string, protocols: string[]): boolean {
  if (!URL.canParse(text)) return false;
  const url = new URL(text);
  return protocols.includes(url.protocol) && url.hostname.length > 0;
}

/** Absolute http: or https: URL. */
export const httpUrlKind: ValueKind<string> = textKind(
  "<url>",
  "an http:// or https:// URL",
  (text) => isUrlWith(text, ["http:", "https:"]),
);

/** Builds a kind for one string out of a fixed set. */
function choiceKind<T extends string>(
  choices: readonly T[],
): ValueKind<T> {
  const parseText = (text: string) =>
    (choices as readonly string[]).includes(text) ? text as T : undefined;
  return {
    placeholder: `<${choices.join("|")}>`,
    expected: `one of ${choices.join(", ")}`,
    parseText,
    parseValue: (value) =>
      typeof value === "string" ? parseText(value) : undefined,
    format: (value) => value,
  };
}

/** Log levels, lowest first. */
export const LOG_LEVELS: readonly LogLevel[] = [
  "debug",
  "info",
  "warn",
  "error",
];

/** Log line formats. */
export const LOG_FORMATS: readonly LogFormat[] = ["text", "json"];

/** Log verbosity. */
export const logLevelKind: ValueKind<LogLevel> = choiceKind(LOG_LEVELS);

/** Log line format. */
export const logFormatKind: ValueKind<LogFormat> = choiceKind(LOG_FORMATS);
