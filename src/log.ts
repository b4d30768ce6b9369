/**
 * The relay's one logger: levels, text or JSON lines, `component key=value`
 * fields, and a rate limit on repeated lines so that a flood of bad input
 * cannot flood the log too.
 *
 * @module
 */

import type { LogFormat, LogLevel } from "./options.ts";

/** Values a log field may carry. */
export type LogFields = Record<
  string,
  string | number | boolean | null | undefined | bigint
>;

/** Leveled logger bound to one component. */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** Returns a logger for `component` that shares this one's output. */
  child(component: string): Logger;
  /** Changes the level of this logger and all its children. */
  setLevel(level: LogLevel): void;
}

/** Options of {@linkcode createLogger}. */
export interface LoggerOptions {
  /** @default {"info"} */
  level?: LogLevel;
  /** @default {"text"} */
  format?: LogFormat;
  /** Receives each finished line; writes to stderr by default. */
  write?: (line: string) => void;
  /** Lines with the same component and message allowed per window. @default {10} */
  repeatLimit?: number;
  /** Window of the repeat limit, in ms. @default {10000} */
  repeatWindowMs?: number;
  /** Clock in ms, replaceable in tests. @default {Date.now} */
  now?: () => number;
}

const LEVEL_RANK: Record<LogLevel, number> = {
  debug: 10,
  info: 20,
  warn: 30,
  error: 40,
};

/** Most distinct repeat keys tracked at once; older ones are forgotten. */
const MAX_REPEAT_KEYS = 1_000;

interface RepeatState {
  windowStart: number;
  count: number;
}

interface SharedState {
  level: number;
  format: LogFormat;
  write: (line: string) => void;
  repeatLimit: number;
  repeatWindowMs: number;
  now: () => number;
  repeats: Map<string, RepeatState>;
}

const encoder = new TextEncoder();

function writeStderr(line: string): void {
  try {
    Deno.stderr.writeSync(encoder.encode(line + "\n"));
  } catch {
    // The log has nowhere else to go when stderr is closed.
  }
}

/** Creates the root logger. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const state: SharedState = {
    level: LEVEL_RANK[options.level ?? "info"],
    format: options.format ?? "text",
    write: options.write ?? writeStderr,
    repeatLimit: options.repeatLimit ?? 10,
    repeatWindowMs: options.repeatWindowMs ?? 10_000,
    now: options.now ?? Date.now,
    repeats: new Map(),
  };
  return new LeveledLogger(state, "relay");
}

class LeveledLogger implements Logger {
  #state: SharedState;
  #component: string;

  constructor(state: SharedState, component: string) {
    this.#state = state;
    this.#component = component;
  }

  debug(message: string, fields?: LogFields): void {
    this.#log("debug", message, fields);
  }

  info(message: string, fields?: LogFields): void {
    this.#log("info", message, fields);
  }

  warn(message: string, fields?: LogFields): void {
    this.#log("warn", message, fields);
  }

  error(message: string, fields?: LogFields): void {
    this.#log("error", message, fields);
  }

  child(component: string): Logger {
    return new LeveledLogger(this.#state, component);
  }

  setLevel(level: LogLevel): void {
    this.#state.level = LEVEL_RANK[level];
  }

  #log(level: LogLevel, message: string, fields?: LogFields): void {
    const state = this.#state;
    if (LEVEL_RANK[level] < state.level) return;

    const suppressed = this.#countRepeat(message);
    if (suppressed === -1) return;

    const time = new Date(state.now()).toISOString();
    const all: LogFields = suppressed > 0
      ? { ...fields, suppressed_repeats: suppressed }
      : { ...fields };
    state.write(
      state.format === "json"
        ? formatJson(time, level, this.#component, message, all)
        : formatText(time, level, this.#component, message, all),
    );
  }

  /**
   * Returns -1 when this line is over the repeat limit, else the number of
   * lines suppressed in the previous window (0 when none).
   */
  #countRepeat(message: string): number {
    const state = this.#state;
    const key = this.#component + "\0" + message;
    const now = state.now();
    let entry = state.repeats.get(key);
    if (entry === undefined) {
      if (state.repeats.size >= MAX_REPEAT_KEYS) state.repeats.clear();
      entry = { windowStart: now, count: 0 };
      state.repeats.set(key, entry);
    }

    let suppressed = 0;
    if (now - entry.windowStart >= state.repeatWindowMs) {
      suppressed = Math.max(0, entry.count - state.repeatLimit);
      entry.windowStart = now;
      entry.count = 0;
    }

    entry.count++;
    if (entry.count > state.repeatLimit) return -1;
    return suppressed;
  }
}

/** A logger that discards everything, for embedders and tests. */
export const silentLogger: Logger = createLogger({
  level: "error",
  write: () => {},
});

function formatValue(value: LogFields[string]): string {
  const text = String(value);
  return /^[^\s"=]+$/.test(text) ? text : JSON.stringify(text);
}

function formatText(
  time: string,
  level: LogLevel,
  component: string,
  message: string,
  fields: LogFields,
): string {
  let line = `${time} ${level.toUpperCase().padEnd(5)} ${component} ${message}`;
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    line += ` ${key}=${formatValue(value)}`;
  }
  return line;
}

function formatJson(
  time: string,
  level: LogLevel,
  component: string,
  message: string,
  fields: LogFields,
): string {
  const record: Record<string, unknown> = { time, level, component, message };
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    record[key] = typeof value === "bigint" ? value.toString() : value;
  }
  return JSON.stringify(record);
}

/** Returns the message of an unknown thrown value, for a log field. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
