/**
 * Types of `relay_client.js`: a participant client of the voice relay for
 * Deno and browsers, over WebSocket or WebTransport.
 *
 * @module
 */

import type {
  ErrorSignal,
  ParticipantInfo,
  QualityDirectiveSignal,
  RoomUpdateSignal,
  WelcomeSignal,
} from "../src/wire/signals.ts";

export type {
  ErrorSignal,
  ParticipantInfo,
  QualityDirectiveSignal,
  RoomUpdateSignal,
  WelcomeSignal,
};

/** Default time from the start of a connection to `welcome`, in ms. */
export declare const DEFAULT_CONNECT_TIMEOUT_MS: number;
/** Time `close()` waits for the relay to close after `hangup`, in ms. */
export declare const CLOSE_TIMEOUT_MS: number;
/** Time `ping()` waits for its `pong`, in ms. */
export declare const PING_TIMEOUT_MS: number;
/** Default reconnect backoff: 1 s doubling to 30 s, without an end. */
export declare const DEFAULT_RECONNECT: Readonly<Required<ReconnectOptions>>;
/** WebSocket bytes buffered above which `sendMedia` drops the packet. */
export declare const WS_SEND_BUFFER_LIMIT_BYTES: number;
/** Datagram writes in flight above which `sendMedia` drops the packet. */
export declare const MAX_DATAGRAMS_IN_FLIGHT: number;
/** Largest signal frame accepted from the relay over WebTransport, in bytes. */
export declare const MAX_RECEIVED_SIGNAL_BYTES: number;
/** Close code reported when a connection ended without a known one. */
export declare const ABNORMAL_CLOSE_CODE: number;
/** Close code of each `error.code` the relay sends. */
export declare const CLOSE_CODES: Readonly<Record<string, number>>;

/** A certificate hash to pin, as `GET /api/webtransport` lists it. */
export interface ServerCertificateHash {
  algorithm: "sha-256";
  /** The SHA-256 digest, as standard base64 or as bytes. */
  value: string | BufferSource;
}

/** Reconnect backoff; each delay is half fixed and half random. */
export interface ReconnectOptions {
  /** Delay before the first attempt, in ms. @default {1000} */
  initialDelayMs?: number;
  /** Largest delay; delays double up to it, in ms. @default {30000} */
  maxDelayMs?: number;
  /** Attempts after one close before giving up. @default {Infinity} */
  maxAttempts?: number;
}

/** Options of {@linkcode RelayClient}. */
export interface RelayClientOptions {
  /** Display name sent in `hello`; at most 64 characters. */
  alias?: string;
  /** Token sent in `hello`. */
  token?: string;
  /** Hashes of a self-signed WebTransport certificate to pin. */
  serverCertificateHashes?: ServerCertificateHash[];
  /**
   * Reconnect after an unexpected close (not hangup, not 4400, 4401, 4403,
   * 4410 or 4413), with exponential backoff and jitter, sending `hello`
   * again. Only after a first successful join. @default {false}
   */
  reconnect?: boolean | ReconnectOptions;
  /** Time from the start of a connection to `welcome`, in ms. @default {10000} */
  connectTimeoutMs?: number;
  /**
   * Interval of `ping` signals while joined, in ms; 0 sends none. The
   * latest round-trip time is `rttMs`. @default {0}
   */
  pingIntervalMs?: number;
}

/** Client states, in order; `reconnecting` waits for or runs an attempt. */
export type RelayClientState =
  | "idle"
  | "connecting"
  | "joined"
  | "reconnecting"
  | "closed";

/** The close code and reason that ended a connection. */
export interface CloseInfo {
  /**
   * Close code. Browsers do not expose WebTransport close codes, so there
   * it comes from the relay's `error` signal, 1000 after `hangup`, or 1006
   * when neither is known.
   */
  code: number;
  reason: string;
  /** `code` of the relay's `error` signal before the close, if any. */
  errorCode: string | null;
}

/** Body of `GET /api/webtransport`. */
export interface WebTransportInfo {
  /** Participant endpoint up to the room: append a percent-encoded name. */
  url: string;
  certificateHashes: { algorithm: "sha-256"; value: string }[];
  fingerprint: string;
  public_key: string;
  signature: string;
}

/** Error of `connect()` when the connection closed before `welcome`. */
export declare class RelayCloseError extends Error {
  constructor(
    code: number,
    reason: string,
    errorCode: string | null,
    message: string,
  );
  readonly code: number;
  readonly reason: string;
  readonly errorCode: string | null;
}

/** Events of {@linkcode RelayClient}, each a `CustomEvent`. */
export interface RelayClientEventMap {
  welcome: CustomEvent<WelcomeSignal>;
  room_update: CustomEvent<RoomUpdateSignal>;
  quality_directive: CustomEvent<QualityDirectiveSignal>;
  /** Dispatched only while a `media` listener is registered. */
  media: CustomEvent<{ source: number; packet: Uint8Array }>;
  state: CustomEvent<{ state: RelayClientState }>;
  close: CustomEvent<CloseInfo>;
  /**
   * The relay's `error` signal, or a failed reconnect attempt with code
   * `reconnect_failed`.
   */
  error: CustomEvent<ErrorSignal>;
  /** Every signal the relay sends, after the typed event for it. */
  signal: CustomEvent<{ type: string } & Record<string, unknown>>;
}

/** A participant of one relay room. */
export declare class RelayClient extends EventTarget {
  /**
   * @param url `ws://host:port/ws/<room>` (or `wss://`) for WebSocket,
   * `https://host:port/room/<room>` for WebTransport
   */
  constructor(url: string, options?: RelayClientOptions);

  /** Fetches `GET /api/webtransport` from the relay's HTTP base URL. */
  static fetchWebTransportInfo(httpBaseUrl: string): Promise<WebTransportInfo>;

  readonly transport: "ws" | "wt";
  readonly state: RelayClientState;
  /** Own participant id while joined. */
  readonly participantId: string | null;
  /** Participants of the latest `room_update`, in join order. */
  readonly participants: ParticipantInfo[];
  /** Room name decoded from the URL. */
  readonly room: string;
  readonly url: string;
  /** Latest round-trip time measured by `ping()`, in ms. */
  readonly rttMs: number | null;
  /** Close of the current connection, or of the next one before it starts. */
  readonly closed: Promise<CloseInfo>;

  /**
   * Receives every media packet with its sender's source id, without an
   * event object per packet. Exceptions are reported and do not stop
   * delivery.
   */
  onMedia: ((source: number, packet: Uint8Array) => void) | null;

  /** Connects, sends `hello` and resolves with `welcome`. */
  connect(): Promise<WelcomeSignal>;
  /** Sends one media packet; false when not joined or dropped. */
  sendMedia(packet: Uint8Array): boolean;
  /** Sends one signal; throws when no connection is open. */
  sendSignal(signal: { type: string } & Record<string, unknown>): void;
  /** Resolves with the round-trip time of one ping, in ms. */
  ping(): Promise<number>;
  /** Replaces the token; sends `refresh` when joined. */
  refresh(token: string): void;
  /** Sends `hangup` and waits (bounded) for the close; stops reconnects. */
  close(reason?: string): Promise<void>;
  /** Sends `hangup` and closes at once, for a page that is going away. */
  closeNow(reason?: string): void;

  addEventListener<K extends keyof RelayClientEventMap>(
    type: K,
    listener: (event: RelayClientEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof RelayClientEventMap>(
    type: K,
    listener: (event: RelayClientEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}
