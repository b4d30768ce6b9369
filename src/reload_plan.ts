/**
 * Reload planning: the options to apply, the options that only a restart
 * can change, and every option whose value differs.
 *
 * @module
 */

import { OPTION_TABLE } from "./config/option_table.ts";
import { type RelayOptions, resolveOptions } from "./options.ts";

/**
 * Options that {@linkcode Relay.reload} cannot change: the listeners, the
 * WebTransport endpoint's timers and certificate paths, the data
 * directory, the room map and the log format are set up at start.
 */
export const RESTART_ONLY_OPTIONS = [
  "host",
  "httpPort",
  "wtPort",
  "noWebTransport",
  "dataDir",
  "cert",
  "key",
  "roomShards",
  "qualityStaleMs",
  "pingIntervalMs",
  "livenessTimeoutMs",
  "logFormat",
] as const satisfies readonly (keyof RelayOptions)[];

/** Options that the authenticator is built from. */
export const AUTH_OPTIONS = [
  "tokenSecret",
  "authUrl",
  "authTimeoutMs",
] as const satisfies readonly (keyof RelayOptions)[];

/** Result of {@linkcode planReload}. */
export interface ReloadPlan {
  /** The options to run with: the request, less the restart-only changes. */
  next: RelayOptions;
  /** Restart-only options whose requested value was not applied. */
  needRestart: (keyof RelayOptions)[];
  /** Options whose value differs between the running and `next` options. */
  changed: (keyof RelayOptions)[];
}

/**
 * Compares the running options with a reload request. Without `overrides`
 * the running options are kept; with them, unset fields take defaults.
 */
export function planReload(
  current: RelayOptions,
  overrides: Partial<RelayOptions> | undefined,
): ReloadPlan {
  const requested = overrides === undefined
    ? current
    : resolveOptions(overrides);
  const next: RelayOptions = { ...requested };
  const needRestart: (keyof RelayOptions)[] = RESTART_ONLY_OPTIONS.filter((
    field,
  ) => !sameValue(current[field], requested[field]));
  for (const field of needRestart) {
    (next as unknown as Record<string, unknown>)[field] = current[field];
  }
  const changed = (Object.keys({ ...current, ...next }) as (
    keyof RelayOptions
  )[]).filter((field) => !sameValue(current[field], next[field]));
  return { next, needRestart, changed };
}

/** Returns whether two option values are equal, comparing objects by JSON. */
function sameValue(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

/** Returns the config file key of an option, as operators write it. */
export function optionName(field: keyof RelayOptions): string {
  return OPTION_TABLE.find((spec) => spec.field === field)?.key ?? field;
}
