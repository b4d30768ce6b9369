/**
 * Counters the hot path increments as plain numeric fields. prom-client
 * reads them when `/metrics` is scraped, because calling prom-client per
 * packet would cost more than forwarding the packet.
 *
 * @module
 */

/** Transports a participant can use. */
export type TransportKind = "ws" | "wt" | "federated";

/** Every reason a packet can be dropped; the `reason` label of the metric. */
export const DROP_REASONS = [
  "too_short",
  "too_long",
  "bad_version",
  "short_quality_report",
  "not_joined",
  "ws_buffer_full",
  "datagram_in_flight",
  "datagram_too_large",
  "datagram_send_failed",
  "rate_limited",
] as const;

/** A reason a packet was dropped. */
export type DropReason = typeof DROP_REASONS[number];

/** Authentication outcomes; the `result` label of the auth metric. */
export const AUTH_RESULTS = [
  "ok",
  "missing",
  "invalid",
  "expired",
  "forbidden",
  "unavailable",
] as const;

/** An authentication outcome. */
export type AuthResultLabel = typeof AUTH_RESULTS[number];

/**
 * Connection limits that reject a new connection; the `reason` label of
 * `wzp_relay_connections_rejected_total`.
 */
export const CONNECTION_REJECT_REASONS = [
  "ip_connections",
  "ip_handshakes",
  "pending_handshakes",
] as const;

/** A connection limit that rejected a connection. */
export type ConnectionRejectReason = typeof CONNECTION_REJECT_REASONS[number];

/**
 * Invalid requests rejected before a session started; the `reason` label
 * of `wzp_relay_requests_rejected_total`.
 */
export const REQUEST_REJECT_REASONS = [
  "invalid_room",
  "invalid_upgrade",
] as const;

/** A reason an invalid request was rejected. */
export type RequestRejectReason = typeof REQUEST_REJECT_REASONS[number];

function zeroed<K extends string>(keys: readonly K[]): Record<K, number> {
  const record = {} as Record<K, number>;
  for (const key of keys) record[key] = 0;
  return record;
}

/** The relay's counters. One instance per relay. */
export class RelayStats {
  /** Media packets received, by the sender's transport. */
  readonly received: Record<TransportKind, number> = zeroed([
    "ws",
    "wt",
    "federated",
  ]);
  /** Frames handed to receivers (one per receiver). */
  packetsForwarded = 0;
  /** Bytes of the frames handed to receivers. */
  bytesForwarded = 0;
  /** Dropped packets by reason. */
  readonly dropped: Record<DropReason, number> = zeroed(DROP_REASONS);
  /** Authentication attempts by result. */
  readonly auth: Record<AuthResultLabel, number> = zeroed(AUTH_RESULTS);
  /** `quality_directive` signals sent, one per receiver. */
  qualityDirectives = 0;
  /** Signals dropped by the per-participant signal rate limit. */
  droppedSignals = 0;
  /** Signals with a `type` this relay does not know. */
  unknownSignals = 0;
  /** WebTransport connections that failed before their session started. */
  webTransportAcceptErrors = 0;
  /** Connections rejected by a connection limit, by the limit. */
  readonly connectionsRejected: Record<ConnectionRejectReason, number> = zeroed(
    CONNECTION_REJECT_REASONS,
  );
  /** Invalid requests rejected before a session started, by reason. */
  readonly requestsRejected: Record<RequestRejectReason, number> = zeroed(
    REQUEST_REJECT_REASONS,
  );
  /** Sessions closed, by close code. */
  readonly closes = new Map<number, number>();
  /** Receives each handshake duration in seconds, at `welcome`. */
  onHandshake: (seconds: number) => void = () => {};

  /** Counts one close with `code`. */
  countClose(code: number): void {
    this.closes.set(code, (this.closes.get(code) ?? 0) + 1);
  }
}
