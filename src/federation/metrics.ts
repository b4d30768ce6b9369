/**
 * Federation metrics, under the WarzonePhone names. Values are read from
 * the federation's counters at scrape time; peers are labeled by their
 * configured label, never by room.
 *
 * @module
 */

import client from "prom-client";
import type { Federation } from "./federation.ts";

/** Registers the federation metrics on `registry`. */
export function registerFederationMetrics(
  registry: client.Registry,
  federation: Federation,
): void {
  new client.Gauge({
    name: "wzp_federation_peer_status",
    help: "1 while the link to the peer is up, else 0",
    labelNames: ["peer"],
    registers: [registry],
    collect() {
      this.reset();
      const up = new Set(federation.links.map((link) => link.label));
      for (const label of federation.configuredLabels()) {
        this.set({ peer: label }, up.has(label) ? 1 : 0);
      }
    },
  });

  new client.Gauge({
    name: "wzp_federation_peer_rtt_ms",
    help: "Round-trip time of the link to the peer, from link pings",
    labelNames: ["peer"],
    registers: [registry],
    collect() {
      this.reset();
      for (const link of federation.links) {
        if (link.rttMs !== null) this.set({ peer: link.label }, link.rttMs);
      }
    },
  });

  new client.Counter({
    name: "wzp_federation_packets_forwarded_total",
    help: "Media packets exchanged with peers, by peer and direction",
    labelNames: ["peer", "direction"],
    registers: [registry],
    collect() {
      this.reset();
      const totals = new Map<string, { in: number; out: number }>();
      for (const [label, closed] of federation.counters.closedTotals) {
        totals.set(label, { ...closed });
      }
      for (const link of federation.links) {
        const total = totals.get(link.label) ?? { in: 0, out: 0 };
        total.in += link.counters.packetsIn;
        total.out += link.counters.packetsOut;
        totals.set(link.label, total);
      }
      for (const [peer, total] of totals) {
        this.inc({ peer, direction: "in" }, total.in);
        this.inc({ peer, direction: "out" }, total.out);
      }
    },
  });

  new client.Counter({
    name: "wzp_federation_packets_deduped_total",
    help: "Media packets from peers dropped as already seen",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(federation.counters.deduped);
    },
  });

  new client.Counter({
    name: "wzp_federation_packets_rate_limited_total",
    help: "Media packets from peers dropped by the per-sender rate limit",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(federation.counters.rateLimited);
    },
  });

  new client.Counter({
    name: "wzp_federation_packets_invalid_total",
    help:
      "Federation datagram entries dropped: unknown room or sender, or malformed",
    labelNames: ["reason"],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ reason: "unknown" }, federation.counters.unknown);
      this.inc({ reason: "malformed" }, federation.counters.malformed);
    },
  });

  new client.Counter({
    name: "wzp_federation_handshake_failures_total",
    help: "Federation links that failed before they were up, by direction; " +
      "outbound counts failed dials",
    labelNames: ["direction"],
    registers: [registry],
    collect() {
      this.reset();
      const failures = federation.counters.handshakeFailures;
      this.inc({ direction: "inbound" }, failures.inbound);
      this.inc({ direction: "outbound" }, failures.outbound);
    },
  });

  new client.Gauge({
    name: "wzp_federation_active_rooms",
    help: "Bridged rooms with federation state",
    registers: [registry],
    collect() {
      this.set(federation.roomCount);
    },
  });

  new client.Counter({
    name: "wzp_federation_datagrams_total",
    help: "Federation datagrams, by direction; each carries a batch of packets",
    labelNames: ["direction"],
    registers: [registry],
    collect() {
      this.reset();
      let datagramsIn = 0;
      let datagramsOut = 0;
      for (const link of federation.links) {
        datagramsIn += link.counters.datagramsIn;
        datagramsOut += link.counters.datagramsOut;
      }
      this.inc(
        { direction: "in" },
        datagramsIn + federation.counters.closedDatagrams.in,
      );
      this.inc(
        { direction: "out" },
        datagramsOut + federation.counters.closedDatagrams.out,
      );
    },
  });
}
