/**
 * The table of command line options. Each row names one field of
 * {@linkcode RelayOptions} and derives its three spellings from the flag:
 * `--http-port`, `RELAY_HTTP_PORT` and the config file key `http_port`.
 * Help text, parsing and tests all read this table, so a new option needs
 * only a new row.
 *
 * @module
 */

import type { RelayOptions } from "../options.ts";
import {
  booleanKind,
  bytesKind,
  countKind,
  durationKind,
  hostKind,
  httpUrlKind,
  logFormatKind,
  logLevelKind,
  pathKind,
  portKind,
  roomShardsKind,
  secretKind,
  type ValueKind,
} from "./value_kinds.ts";

/** Sections of `--help`, in order. */
export const OPTION_GROUPS = [
  "Listeners",
  "Authentication",
  "Limits",
  "Timers",
  "Logging",
  "Webhooks",
] as const;

/** Section of `--help` that an option is listed in. */
export type OptionGroup = typeof OPTION_GROUPS[number];

/** Fields of {@linkcode RelayOptions} that one flag sets. */
export type ScalarField = Exclude<keyof RelayOptions, "federation">;

/** One option: its field, its spellings, its kind and its help line. */
export interface OptionSpec<K extends ScalarField = ScalarField> {
  readonly field: K;
  /** Flag name without the leading dashes, in kebab case. */
  readonly flag: string;
  /** Environment variable, `RELAY_` and the flag in upper snake case. */
  readonly env: string;
  /** Config file key, the flag in snake case. */
  readonly key: string;
  readonly group: OptionGroup;
  readonly kind: ValueKind<NonNullable<RelayOptions[K]>>;
  /** Help text: the setting that the option controls. */
  readonly description: string;
  /** Whether the value is shown as `"***"` in messages. */
  readonly secret: boolean;
}

interface OptionRow<K extends ScalarField> {
  field: K;
  flag: string;
  group: OptionGroup;
  kind: ValueKind<NonNullable<RelayOptions[K]>>;
  description: string;
  secret?: boolean;
}

/** Checks that the kind fits the field, then derives the spellings. */
function option<K extends ScalarField>(row: OptionRow<K>): OptionSpec {
  return {
    ...row,
    env: "RELAY_" + row.flag.toUpperCase().replaceAll("-", "_"),
    key: row.flag.replaceAll("-", "_"),
    secret: row.secret ?? false,
  } as OptionSpec;
}

/** Every option of {@linkcode RelayOptions} except `federation`. */
export const OPTION_TABLE: readonly OptionSpec[] = [
  option({
    field: "host",
    flag: "host",
    group: "Listeners",
    kind: hostKind,
    description: "Address both listeners bind to",
  }),
  option({
    field: "httpPort",
    flag: "http-port",
    group: "Listeners",
    kind: portKind,
    description: "TCP port for HTTP, WebSocket and the page; 0 picks one",
  }),
  option({
    field: "wtPort",
    flag: "wt-port",
    group: "Listeners",
    kind: portKind,
    description: "UDP port for WebTransport; 0 picks one",
  }),
  option({
    field: "noWebTransport",
    flag: "no-webtransport",
    group: "Listeners",
    kind: booleanKind,
    description: "Run without the WebTransport listener, WebSocket only",
  }),
  option({
    field: "dataDir",
    flag: "data-dir",
    group: "Listeners",
    kind: pathKind,
    description: "Directory for the identity key and generated certificates",
  }),
  option({
    field: "cert",
    flag: "cert",
    group: "Listeners",
    kind: pathKind,
    description: "PEM certificate chain file for WebTransport; " +
      "generated when unset",
  }),
  option({
    field: "key",
    flag: "key",
    group: "Listeners",
    kind: pathKind,
    description: "PEM private key file of --cert",
  }),
  option({
    field: "tokenSecret",
    flag: "token-secret",
    group: "Authentication",
    kind: secretKind,
    description: "HS256 secret that verifies participant JWTs",
    secret: true,
  }),
  option({
    field: "authUrl",
    flag: "auth-url",
    group: "Authentication",
    kind: httpUrlKind,
    description: "URL that validates participant tokens by POST",
  }),
  option({
    field: "authTimeoutMs",
    flag: "auth-timeout",
    group: "Authentication",
    kind: durationKind,
    description: "Time limit of one --auth-url request",
  }),
  option({
    field: "adminToken",
    flag: "admin-token",
    group: "Authentication",
    kind: secretKind,
    description: "Bearer token of the admin routes; unset means loopback only",
    secret: true,
  }),
  option({
    field: "maxParticipantsPerRoom",
    flag: "max-participants-per-room",
    group: "Limits",
    kind: countKind,
    description: "Local participants in one room",
  }),
  option({
    field: "maxRooms",
    flag: "max-rooms",
    group: "Limits",
    kind: countKind,
    description: "Rooms on this relay",
  }),
  option({
    field: "maxParticipants",
    flag: "max-participants",
    group: "Limits",
    kind: countKind,
    description: "Local participants on this relay",
  }),
  option({
    field: "maxConnectionsPerIp",
    flag: "max-connections-per-ip",
    group: "Limits",
    kind: countKind,
    description: "Open WebSocket and WebTransport connections from one " +
      "IP address (an IPv6 /64)",
  }),
  option({
    field: "maxHandshakesPerIp",
    flag: "max-handshakes-per-ip",
    group: "Limits",
    kind: countKind,
    description: "Connections from one IP address that have not reached " +
      "welcome",
  }),
  option({
    field: "maxPendingHandshakes",
    flag: "max-pending-handshakes",
    group: "Limits",
    kind: countKind,
    description: "Connections on this relay that have not reached welcome",
  }),
  option({
    field: "maxSignalBytes",
    flag: "max-signal-bytes",
    group: "Limits",
    kind: bytesKind,
    description: "Largest signal frame",
  }),
  option({
    field: "wsBufferLimitBytes",
    flag: "ws-buffer-limit",
    group: "Limits",
    kind: bytesKind,
    description: "WebSocket send buffer above which media is dropped",
  }),
  option({
    field: "maxDatagramsInFlight",
    flag: "max-datagrams-in-flight",
    group: "Limits",
    kind: countKind,
    description: "Datagram writes in flight per WebTransport receiver",
  }),
  option({
    field: "maxMediaPacketsPerSecond",
    flag: "max-media-packets-per-second",
    group: "Limits",
    kind: countKind,
    description:
      "Media packets per second one participant may send; the excess is dropped",
  }),
  option({
    field: "maxMediaBytesPerSecond",
    flag: "max-media-bytes-per-second",
    group: "Limits",
    kind: bytesKind,
    description:
      "Media bytes per second one participant may send; the excess is dropped",
  }),
  option({
    field: "maxSignalsPerSecond",
    flag: "max-signals-per-second",
    group: "Limits",
    kind: countKind,
    description:
      "Signals per second one participant may send; the excess is dropped",
  }),
  option({
    field: "federationRateLimit",
    flag: "federation-rate-limit",
    group: "Limits",
    kind: countKind,
    description:
      "Media packets per second accepted from one sender on another relay",
  }),
  option({
    field: "roomShards",
    flag: "room-shards",
    group: "Limits",
    kind: roomShardsKind,
    description: "Shards of the room map, a power of two up to 4096",
  }),
  option({
    field: "handshakeTimeoutMs",
    flag: "handshake-timeout",
    group: "Timers",
    kind: durationKind,
    description: "Time a client has to send hello",
  }),
  option({
    field: "pingIntervalMs",
    flag: "ping-interval",
    group: "Timers",
    kind: durationKind,
    description: "Interval of QUIC keep-alive packets on WebTransport sessions",
  }),
  option({
    field: "livenessTimeoutMs",
    flag: "liveness-timeout",
    group: "Timers",
    kind: durationKind,
    description: "Time without a pong before a participant is dropped",
  }),
  option({
    field: "slowConsumerTimeoutMs",
    flag: "slow-consumer-timeout",
    group: "Timers",
    kind: durationKind,
    description: "Time over --ws-buffer-limit before close 4008",
  }),
  option({
    field: "rateLimitGraceMs",
    flag: "rate-limit-grace",
    group: "Timers",
    kind: durationKind,
    description:
      "Time a participant may stay over a rate limit before close 4429",
  }),
  option({
    field: "qualityIntervalMs",
    flag: "quality-interval",
    group: "Timers",
    kind: durationKind,
    description: "Interval of the room quality recompute",
  }),
  option({
    field: "qualityStaleMs",
    flag: "quality-stale",
    group: "Timers",
    kind: durationKind,
    description: "Age after which a quality report no longer counts",
  }),
  option({
    field: "shutdownTimeoutMs",
    flag: "shutdown-timeout",
    group: "Timers",
    kind: durationKind,
    description: "Time shutdown waits for clients to close",
  }),
  option({
    field: "logLevel",
    flag: "log-level",
    group: "Logging",
    kind: logLevelKind,
    description: "Lowest level that is logged",
  }),
  option({
    field: "logFormat",
    flag: "log-format",
    group: "Logging",
    kind: logFormatKind,
    description: "Format of log lines on stderr",
  }),
  option({
    field: "webhookUrl",
    flag: "webhook-url",
    group: "Webhooks",
    kind: httpUrlKind,
    description: "URL that receives room, participant and peer events by POST",
  }),
  option({
    field: "webhookSecret",
    flag: "webhook-secret",
    group: "Webhooks",
    kind: secretKind,
    description: "HMAC-SHA256 key of the X-Relay-Signature header",
    secret: true,
  }),
  option({
    field: "webhookTimeoutMs",
    flag: "webhook-timeout",
    group: "Webhooks",
    kind: durationKind,
    description: "Time limit of one webhook request",
  }),
  option({
    field: "webhookMaxAttempts",
    flag: "webhook-max-attempts",
    group: "Webhooks",
    kind: countKind,
    description: "Tries per webhook event, the first one included",
  }),
  option({
    field: "webhookRetryDelayMs",
    flag: "webhook-retry-delay",
    group: "Webhooks",
    kind: durationKind,
    description: "Wait before the first webhook retry; doubles on each retry",
  }),
  option({
    field: "webhookMaxRetryDelayMs",
    flag: "webhook-max-retry-delay",
    group: "Webhooks",
    kind: durationKind,
    description: "Maximum wait between two webhook tries",
  }),
  option({
    field: "webhookQueueLimit",
    flag: "webhook-queue-limit",
    group: "Webhooks",
    kind: countKind,
    description: "Webhook events queued over all rooms; more are dropped",
  }),
];

/** A flag that controls the command instead of setting an option. */
export interface CommandFlag {
  readonly flag: string;
  readonly short?: string;
  readonly placeholder: string;
  readonly description: string;
}

/** `--config`, `--help` and `--version`. */
export const COMMAND_FLAGS: readonly CommandFlag[] = [
  {
    flag: "config",
    placeholder: "<path>",
    description: "YAML or JSON config file; also read from RELAY_CONFIG",
  },
  { flag: "help", short: "h", placeholder: "", description: "Print this help" },
  { flag: "version", placeholder: "", description: "Print the version" },
];

/** Environment variable of `--config`. */
export const CONFIG_ENV = "RELAY_CONFIG";

/** Environment variables that the relay reads. */
export const KNOWN_ENV_NAMES: ReadonlySet<string> = new Set([
  CONFIG_ENV,
  ...OPTION_TABLE.map((spec) => spec.env),
]);
