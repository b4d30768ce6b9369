/**
 * Prometheus metrics. The names of the WarzonePhone relay are kept where
 * the meaning is the same, so its Grafana dashboard keeps working. Values
 * come from plain counters read at scrape time; nothing here runs per
 * packet. No metric is labeled by room or participant.
 *
 * @module
 */

import client from "prom-client";
import type { RoomManager } from "../room/manager.ts";
import { type Tier, TIERS } from "../wire/quality_report.ts";
import {
  AUTH_RESULTS,
  CONNECTION_REJECT_REASONS,
  DROP_REASONS,
  type RelayStats,
  REQUEST_REJECT_REASONS,
  type TransportKind,
} from "../stats.ts";

/** Sources the metrics read at scrape time. */
export interface MetricsSources {
  stats: RelayStats;
  rooms: RoomManager;
  /** Number of open sessions, joined or still in the handshake. */
  sessionCount: () => number;
}

/** Buckets of the handshake histogram, in seconds. */
const HANDSHAKE_BUCKETS = [
  0.001,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
];

const TRANSPORTS: readonly TransportKind[] = ["ws", "wt", "federated"];

/** Creates a registry with the relay's metrics. One registry per relay. */
export function createMetricsRegistry(
  sources: MetricsSources,
): client.Registry {
  const registry = new client.Registry();
  const { stats, rooms } = sources;

  new client.Gauge({
    name: "wzp_relay_active_sessions",
    help: "Open participant sessions, joined or in the handshake",
    registers: [registry],
    collect() {
      this.set(sources.sessionCount());
    },
  });

  new client.Gauge({
    name: "wzp_relay_active_rooms",
    help: "Rooms with at least one participant",
    registers: [registry],
    collect() {
      this.set(rooms.roomCount);
    },
  });

  new client.Gauge({
    name: "wzp_relay_participants",
    help: "Participants in rooms, by transport",
    labelNames: ["transport"],
    registers: [registry],
    collect() {
      const counts: Record<TransportKind, number> = {
        ws: 0,
        wt: 0,
        federated: 0,
      };
      for (const room of rooms.rooms()) {
        for (const participant of room.participants()) {
          counts[participant.sink.kind]++;
        }
      }
      for (const transport of TRANSPORTS) {
        this.set({ transport }, counts[transport]);
      }
    },
  });

  new client.Counter({
    name: "wzp_relay_packets_forwarded_total",
    help: "Media frames sent to receivers, one per receiver",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats.packetsForwarded);
    },
  });

  new client.Counter({
    name: "wzp_relay_bytes_forwarded_total",
    help: "Bytes of media frames sent to receivers, source id included",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats.bytesForwarded);
    },
  });

  new client.Counter({
    name: "wzp_relay_packets_received_total",
    help: "Media packets received from participants, by transport",
    labelNames: ["transport"],
    registers: [registry],
    collect() {
      this.reset();
      for (const transport of TRANSPORTS) {
        this.inc({ transport }, stats.received[transport]);
      }
    },
  });

  new client.Counter({
    name: "wzp_relay_packets_dropped_total",
    help: "Media packets or frames dropped, by reason",
    labelNames: ["reason"],
    registers: [registry],
    collect() {
      this.reset();
      for (const reason of DROP_REASONS) {
        this.inc({ reason }, stats.dropped[reason]);
      }
    },
  });

  new client.Counter({
    name: "wzp_relay_auth_attempts_total",
    help: "Token checks, by result",
    labelNames: ["result"],
    registers: [registry],
    collect() {
      this.reset();
      for (const result of AUTH_RESULTS) {
        this.inc({ result }, stats.auth[result]);
      }
    },
  });

  new client.Counter({
    name: "wzp_relay_unknown_signals_total",
    help: "Signals with a type this relay does not know, ignored",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats.unknownSignals);
    },
  });

  new client.Counter({
    name: "wzp_relay_signals_dropped_total",
    help: "Signals dropped over the per-participant signal rate limit",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats.droppedSignals);
    },
  });

  new client.Counter({
    name: "wzp_relay_sessions_closed_total",
    help: "Sessions closed by the relay, by close code",
    labelNames: ["code"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [code, count] of stats.closes) {
        this.inc({ code: String(code) }, count);
      }
    },
  });

  new client.Counter({
    name: "wzp_relay_webtransport_accept_errors_total",
    help: "WebTransport connections that failed before their session started",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats.webTransportAcceptErrors);
    },
  });

  new client.Counter({
    name: "wzp_relay_connections_rejected_total",
    help: "Connections rejected by a connection limit, by the limit",
    labelNames: ["reason"],
    registers: [registry],
    collect() {
      this.reset();
      for (const reason of CONNECTION_REJECT_REASONS) {
        this.inc({ reason }, stats.connectionsRejected[reason]);
      }
    },
  });

  new client.Counter({
    name: "wzp_relay_requests_rejected_total",
    help: "Invalid requests rejected before a session started, by reason",
    labelNames: ["reason"],
    registers: [registry],
    collect() {
      this.reset();
      for (const reason of REQUEST_REJECT_REASONS) {
        this.inc({ reason }, stats.requestsRejected[reason]);
      }
    },
  });

  new client.Counter({
    name: "wzp_relay_quality_directives_total",
    help: "quality_directive signals sent, one per receiver",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats.qualityDirectives);
    },
  });

  new client.Gauge({
    name: "wzp_relay_participants_by_tier",
    help:
      "Local participants by quality tier, counting those that reported recently",
    labelNames: ["tier"],
    registers: [registry],
    collect() {
      const counts = new Map<Tier, number>(TIERS.map((tier) => [tier, 0]));
      const now = performance.now();
      for (const room of rooms.rooms()) {
        for (const participant of room.senders) {
          const quality = participant.quality;
          if (!quality.isFresh(now, room.quality.staleMs)) continue;
          counts.set(quality.tier, counts.get(quality.tier)! + 1);
        }
      }
      for (const [tier, count] of counts) this.set({ tier }, count);
    },
  });

  const handshake = new client.Histogram({
    name: "wzp_relay_handshake_duration_seconds",
    help: "Time from connect to welcome",
    buckets: HANDSHAKE_BUCKETS,
    registers: [registry],
  });
  stats.onHandshake = (seconds) => handshake.observe(seconds);

  new client.Gauge({
    name: "process_resident_memory_bytes",
    help: "Resident memory of the relay process",
    registers: [registry],
    collect() {
      this.set(Deno.memoryUsage().rss);
    },
  });

  return registry;
}
