/**
 * One authenticated link to a peer relay: the control channel, the
 * datagram read loop, per-link batching of outgoing media, and liveness.
 *
 * @module
 */

import { errorMessage, type Logger } from "../log.ts";
import {
  ENTRY_HEADER_BYTES,
  FederationDatagramWriter,
} from "../wire/federation_media.ts";
import type { ControlMessage } from "../wire/federation_control.ts";
import type { ControlChannel } from "./control_channel.ts";

/** Time after the first queued packet before a batch is sent, in ms. */
export const BATCH_FLUSH_MS = 5;

/** Interval of link pings, in ms. */
export const LINK_PING_INTERVAL_MS = 2_000;

/** Time without any message from the peer before the link is closed, in ms. */
export const LINK_TIMEOUT_MS = 10_000;

/** Datagram writes in flight on one link before batches are dropped. */
export const MAX_LINK_DATAGRAMS_IN_FLIGHT = 256;

/** Largest datagram the batcher builds, whatever the path allows. */
const MAX_BATCH_BYTES = 1_400;

/** Used until the transport reports its own maximum datagram size. */
const FALLBACK_DATAGRAM_BYTES = 1_200;

/** Counters of one link, read by the admin API and metrics. */
export interface LinkCounters {
  packetsIn: number;
  packetsOut: number;
  datagramsIn: number;
  datagramsOut: number;
  /** Batches or entries dropped on send, by the link's own limits. */
  dropped: number;
}

/** Callbacks from a link to the federation manager. */
export interface LinkHandlers {
  onMessage(link: PeerLink, message: ControlMessage): void;
  onDatagram(link: PeerLink, datagram: Uint8Array): void;
  onClosed(link: PeerLink, reason: string): void;
}

let linkCounter = 0;

/** An established federation link. */
export class PeerLink {
  readonly id: number = ++linkCounter;
  readonly peerFingerprint: string;
  readonly label: string;
  /** The side that opened the session. */
  readonly role: "dialler" | "acceptor";
  readonly counters: LinkCounters = {
    packetsIn: 0,
    packetsOut: 0,
    datagramsIn: 0,
    datagramsOut: 0,
    dropped: 0,
  };
  /** Latest round-trip time from pings, in ms, or null before the first pong. */
  rttMs: number | null = null;
  readonly connectedAt: number = Date.now();

  readonly #transport: WebTransport;
  readonly #channel: ControlChannel;
  readonly #handlers: LinkHandlers;
  readonly #logger: Logger;
  readonly #batch = new FederationDatagramWriter(MAX_BATCH_BYTES);
  #writer: WritableStreamDefaultWriter<Uint8Array> | null = null;
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #lastHeard = performance.now();
  #inFlight = 0;
  #closed = false;

  constructor(init: {
    transport: WebTransport;
    channel: ControlChannel;
    peerFingerprint: string;
    label: string;
    role: "dialler" | "acceptor";
    handlers: LinkHandlers;
    logger: Logger;
  }) {
    this.#transport = init.transport;
    this.#channel = init.channel;
    this.peerFingerprint = init.peerFingerprint;
    this.label = init.label;
    this.role = init.role;
    this.#handlers = init.handlers;
    this.#logger = init.logger;
  }

  /** Whether the link has been closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Starts reading, pinging and accepting messages. */
  start(): void {
    const channel = this.#channel;
    channel.onMessage = (message) => this.#onMessage(message);
    channel.onEnd = (reason) => this.close(4000, reason);
    if (channel.error !== null) {
      this.close(4000, channel.error);
      return;
    }

    try {
      this.#writer = this.#transport.datagrams.writable.getWriter();
    } catch (error) {
      this.close(4000, `datagram writer unavailable: ${errorMessage(error)}`);
      return;
    }
    void this.#readDatagrams();
    this.#transport.closed.then(
      (info) =>
        this.close(info.closeCode ?? 0, info.reason || "session closed"),
      (error) => this.close(0, `session failed: ${errorMessage(error)}`),
    );

    this.#pingTimer = setInterval(() => this.#ping(), LINK_PING_INTERVAL_MS);
  }

  /** Sends one control message; false when the link is closed. */
  send(message: ControlMessage): boolean {
    if (this.#closed) return false;
    return this.#channel.send(message);
  }

  /**
   * Queues one media entry in the link's batch. The batch is sent when the
   * next entry would not fit or {@linkcode BATCH_FLUSH_MS} after its first
   * entry. Never awaits.
   */
  enqueue(
    hash: Uint8Array,
    handle: number,
    sequence: number,
    packet: Uint8Array,
  ): void {
    if (this.#closed) return;

    const maxBytes = this.#maxDatagramBytes();
    if (!this.#batch.fits(packet.length, maxBytes)) {
      if (this.#batch.entries > 0) this.flush();
      if (!this.#batch.fits(packet.length, maxBytes)) {
        this.counters.dropped++;
        return;
      }
    }

    this.#batch.append(hash, handle, sequence, packet);
    if (this.#flushTimer === undefined) {
      this.#flushTimer = setTimeout(() => {
        this.#flushTimer = undefined;
        this.flush();
      }, BATCH_FLUSH_MS);
    }
  }

  /** Sends the current batch now, if it has entries. */
  flush(): void {
    if (this.#flushTimer !== undefined) {
      clearTimeout(this.#flushTimer);
      this.#flushTimer = undefined;
    }
    if (this.#batch.entries === 0 || this.#closed) return;

    const entries = this.#batch.entries;
    const datagram = this.#batch.take();
    const writer = this.#writer;
    if (writer === null || this.#inFlight >= MAX_LINK_DATAGRAMS_IN_FLIGHT) {
      this.counters.dropped += entries;
      return;
    }

    // Packets count as sent with their datagram, so that a dropped batch
    // counts only as dropped.
    this.#inFlight++;
    this.counters.datagramsOut++;
    this.counters.packetsOut += entries;
    writer.write(datagram).then(
      () => this.#inFlight--,
      () => {
        this.#inFlight--;
        this.counters.dropped += entries;
      },
    );
  }

  /** Closes the link and its session. Idempotent. */
  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#flushTimer);
    clearInterval(this.#pingTimer);
    this.#channel.close(reason);
    try {
      this.#transport.close({ closeCode: code, reason: reason.slice(0, 100) });
    } catch {
      // The session is already gone.
    }
    this.#handlers.onClosed(this, reason);
  }

  #maxDatagramBytes(): number {
    const size = (this.#transport.datagrams as { maxDatagramSize?: number })
      .maxDatagramSize;
    return Math.min(
      MAX_BATCH_BYTES,
      typeof size === "number" && size > ENTRY_HEADER_BYTES
        ? size
        : FALLBACK_DATAGRAM_BYTES,
    );
  }

  #onMessage(message: ControlMessage): void {
    this.#lastHeard = performance.now();
    switch (message.type) {
      case "ping":
        this.send({ type: "pong", ts: message.ts });
        return;
      case "pong":
        this.rttMs = Math.max(0, performance.now() - message.ts);
        return;
      case "error":
        this.#logger.warn("peer reported an error", {
          peer: this.label,
          code: message.code,
          message: message.message,
        });
        return;
      default:
        this.#handlers.onMessage(this, message);
    }
  }

  #ping(): void {
    if (performance.now() - this.#lastHeard > LINK_TIMEOUT_MS) {
      this.close(4408, `no message for ${LINK_TIMEOUT_MS} ms`);
      return;
    }
    this.send({ type: "ping", ts: performance.now() });
  }

  /**
   * Keeps one datagram read pending at all times: Deno holds only one
   * incoming datagram, so the loop hands each one on synchronously.
   */
  async #readDatagrams(): Promise<void> {
    let reader: ReadableStreamDefaultReader<Uint8Array>;
    try {
      reader = this.#transport.datagrams.readable.getReader();
    } catch (error) {
      this.close(4000, `datagram reader unavailable: ${errorMessage(error)}`);
      return;
    }
    try {
      while (!this.#closed) {
        const { value, done } = await reader.read();
        if (done) break;
        this.#lastHeard = performance.now();
        this.counters.datagramsIn++;
        this.#handlers.onDatagram(this, value);
      }
    } catch (error) {
      if (!this.#closed) {
        this.#logger.debug("datagram read ended", {
          peer: this.label,
          error: errorMessage(error),
        });
      }
    } finally {
      reader.releaseLock();
    }
  }
}
