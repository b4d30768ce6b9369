/**
 * Relay options: the one shape that the command line, the environment, the
 * config file and embedders all produce. Every limit facing a peer is here
 * with its default, so that `--help`, the docs and the code agree.
 *
 * @module
 */

/** Log verbosity, lowest first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Output format of log lines. */
export type LogFormat = "text" | "json";

/** A relay this one dials for federation. */
export interface FederationPeerOptions {
  /** WebTransport URL of the peer's `/federation` endpoint. */
  url: string;
  /** HTTP base URL of the peer, where its signed certificate hashes are. */
  httpUrl?: string;
  /** The peer's identity fingerprint, 8 groups of 4 hex digits. */
  fingerprint: string;
  /** Name shown in logs, metrics and `room_update`. */
  label: string;
}

/** A relay that may dial this one. */
export interface FederationTrustedOptions {
  fingerprint: string;
  label: string;
}

/** Federation settings; see docs/federation.md. */
export interface FederationOptions {
  peers: FederationPeerOptions[];
  trusted: FederationTrustedOptions[];
  /** Rooms bridged to peers; `["*"]` bridges every room. */
  globalRooms: string[];
}

/** Everything the relay can be configured with. */
export interface RelayOptions {
  /** Address both listeners bind to. @default {"0.0.0.0"} */
  host: string;
  /** TCP port of the HTTP listener (API, WebSocket, page); 0 picks one. @default {8080} */
  httpPort: number;
  /** UDP port of the WebTransport listener; 0 picks one. @default {4433} */
  wtPort: number;
  /** Disable the WebTransport listener. @default {false} */
  noWebTransport: boolean;
  /** Directory for the identity key and generated certificates. @default {"./relay-data"} */
  dataDir: string;
  /** Path of the PEM certificate chain for WebTransport; generated when unset. */
  cert?: string;
  /** Path of the PEM private key that goes with `cert`. */
  key?: string;
  /** HS256 secret that verifies participant JWTs. */
  tokenSecret?: string;
  /** URL that validates participant tokens by POST. */
  authUrl?: string;
  /** Time limit of one auth-URL request, in ms. @default {5000} */
  authTimeoutMs: number;
  /** Bearer token for the admin routes. Without it, they respond to loopback clients only. */
  adminToken?: string;
  /** @default {"info"} */
  logLevel: LogLevel;
  /** @default {"text"} */
  logFormat: LogFormat;
  /** Time a client has to send `hello`, in ms. @default {5000} */
  handshakeTimeoutMs: number;
  /** Interval of QUIC keep-alive packets on WebTransport sessions, in ms. WebSocket pings follow `livenessTimeoutMs`. @default {10000} */
  pingIntervalMs: number;
  /** Time without a pong before a participant is dropped, in ms. @default {30000} */
  livenessTimeoutMs: number;
  /** Participants in one room, federated ones excluded. @default {100} */
  maxParticipantsPerRoom: number;
  /** Rooms on this relay. @default {10000} */
  maxRooms: number;
  /** Local participants on this relay. @default {10000} */
  maxParticipants: number;
  /** Open WebSocket and WebTransport connections from one IP address (an IPv6 /64). @default {32} */
  maxConnectionsPerIp: number;
  /** Connections from one IP address that have not reached `welcome`. @default {32} */
  maxHandshakesPerIp: number;
  /** Connections on this relay that have not reached `welcome`. @default {1000} */
  maxPendingHandshakes: number;
  /** Largest signal frame, in bytes. @default {65536} */
  maxSignalBytes: number;
  /** Bytes a WebSocket may have buffered before media to it is dropped. @default {65536} */
  wsBufferLimitBytes: number;
  /** Time a receiver may stay over its buffer limit before close 4008, in ms. @default {10000} */
  slowConsumerTimeoutMs: number;
  /** Datagram writes in flight per WebTransport receiver before drops. @default {64} */
  maxDatagramsInFlight: number;
  /** Media packets per second one participant may send. @default {200} */
  maxMediaPacketsPerSecond: number;
  /** Media bytes per second one participant may send. @default {65536} */
  maxMediaBytesPerSecond: number;
  /** Signals per second one participant may send. @default {20} */
  maxSignalsPerSecond: number;
  /** Time a participant may stay over a rate limit before close 4429, in ms. @default {5000} */
  rateLimitGraceMs: number;
  /** Media packets per second accepted from one remote sender. @default {100} */
  federationRateLimit: number;
  /** Interval of the quality recompute timer, in ms. @default {1000} */
  qualityIntervalMs: number;
  /** Age after which a participant's quality report no longer counts, in ms. @default {10000} */
  qualityStaleMs: number;
  /** Time shutdown waits for clients to close before it exits, in ms. @default {5000} */
  shutdownTimeoutMs: number;
  /** Number of shards of the room map, a power of two. @default {64} */
  roomShards: number;
  /** URL that receives webhook events by POST; unset sends none. */
  webhookUrl?: string;
  /** HMAC-SHA256 key of the `X-Relay-Signature` header; unset sends unsigned events. */
  webhookSecret?: string;
  /** Time limit of one webhook request, in ms. @default {5000} */
  webhookTimeoutMs: number;
  /** Tries per webhook event, the first one included. @default {5} */
  webhookMaxAttempts: number;
  /** Wait before the first webhook retry, in ms; doubles on each retry. @default {1000} */
  webhookRetryDelayMs: number;
  /** Maximum wait between two webhook tries, in ms. @default {30000} */
  webhookMaxRetryDelayMs: number;
  /** Webhook events queued over all rooms; more are dropped. @default {10000} */
  webhookQueueLimit: number;
  /** Federation peers, trust list and bridged rooms. */
  federation: FederationOptions;
}

/** Default value of every option that has one. */
export const DEFAULT_OPTIONS: RelayOptions = Object.freeze({
  host: "0.0.0.0",
  httpPort: 8080,
  wtPort: 4433,
  noWebTransport: false,
  dataDir: "./relay-data",
  authTimeoutMs: 5_000,
  logLevel: "info",
  logFormat: "text",
  handshakeTimeoutMs: 5_000,
  pingIntervalMs: 10_000,
  livenessTimeoutMs: 30_000,
  maxParticipantsPerRoom: 100,
  maxRooms: 10_000,
  maxParticipants: 10_000,
  maxConnectionsPerIp: 32,
  maxHandshakesPerIp: 32,
  maxPendingHandshakes: 1_000,
  maxSignalBytes: 65_536,
  wsBufferLimitBytes: 65_536,
  slowConsumerTimeoutMs: 10_000,
  maxDatagramsInFlight: 64,
  maxMediaPacketsPerSecond: 200,
  maxMediaBytesPerSecond: 65_536,
  maxSignalsPerSecond: 20,
  rateLimitGraceMs: 5_000,
  federationRateLimit: 100,
  qualityIntervalMs: 1_000,
  qualityStaleMs: 10_000,
  shutdownTimeoutMs: 5_000,
  roomShards: 64,
  webhookTimeoutMs: 5_000,
  webhookMaxAttempts: 5,
  webhookRetryDelayMs: 1_000,
  webhookMaxRetryDelayMs: 30_000,
  webhookQueueLimit: 10_000,
  federation: Object.freeze({ peers: [], trusted: [], globalRooms: [] }),
}) as RelayOptions;

/** Returns the defaults with `overrides` applied on top. */
export function resolveOptions(
  overrides: Partial<RelayOptions> = {},
): RelayOptions {
  return {
    ...DEFAULT_OPTIONS,
    ...overrides,
    federation: {
      peers: overrides.federation?.peers ?? [],
      trusted: overrides.federation?.trusted ?? [],
      globalRooms: overrides.federation?.globalRooms ?? [],
    },
  };
}
