/**
 * The load generator's core, shared by the Deno generator (relay client
 * over WebSocket or WebTransport) and the Node generator of the Socket.IO
 * baseline. Plain JavaScript with no imports but the histogram, so that
 * both runtimes load it unchanged.
 *
 * A generator process owns whole rooms. Each sending member sends one
 * 100-byte media packet every 20 ms. The payload carries the wall-clock
 * send time and the measurement epoch. Any receiver, in any process, can
 * so compute the one-way latency and count the packet against the epoch
 * its sender stamped. Epoch 0 means "not measured" (warm-up and drain).
 *
 * The harness drives a generator with one JSON object per line on stdin
 * and reads one JSON reply per line on stdout; see {@linkcode runControlLoop}.
 *
 * @module
 */

import { LatencyHistogram } from "./histogram.js";

/** Size of every media packet the generator sends, in bytes. */
export const PACKET_BYTES = 100;

/** Interval between two packets of one sender, in ms (50 packets/s). */
export const PACKET_INTERVAL_MS = 20;

/** Interval of the send timer, in ms. */
export const TICK_MS = 5;

/** Connections one generator opens at the same time while joining. */
export const CONNECT_CONCURRENCY = 24;

/** Length of the media header, which the generator fills itself. */
const HEADER_BYTES = 12;
/** Offset of the send time, a float64 in ms since the Unix epoch. */
const SEND_TIME_OFFSET = HEADER_BYTES;
/** Offset of the epoch number, a u32. */
const EPOCH_OFFSET = HEADER_BYTES + 8;

/**
 * Returns the wall-clock time in ms with sub-ms resolution. Processes
 * agree on it because each adds its own monotonic clock to its own start
 * time.
 * @returns {number}
 */
export function wallClockMs() {
  return performance.timeOrigin + performance.now();
}

/**
 * @typedef {object} MemberSpec
 * @property {string} transport "ws", "wt" or "socketio"
 * @property {string} url where this member connects; the room is appended
 * @property {boolean} send whether this member sends media
 */

/**
 * @typedef {object} RoomSpec
 * @property {string} name
 * @property {MemberSpec[]} members
 */

/**
 * A connected client, as the generator uses it.
 * @typedef {object} LoadClient
 * @property {(packet: Uint8Array) => boolean} sendMedia
 * @property {(handler: (source: number, packet: Uint8Array) => void) => void} listen
 *   sets the function that receives every media packet
 * @property {() => boolean} isOpen
 * @property {() => Promise<void>} close
 */

/**
 * Opens one client and resolves once the relay sent `welcome`.
 * @typedef {(member: MemberSpec, room: string, extra: Record<string, unknown>) => Promise<LoadClient>} OpenClient
 */

/** Counters of one epoch in one generator. */
class EpochCounters {
  constructor() {
    /** Packets sent with this epoch. */
    this.sent = 0;
    /** Deliveries expected: for each sent packet, the other room members. */
    this.expected = 0;
    /** Packets the client refused to send (its own backpressure). */
    this.sendDrops = 0;
    /** Packets of this epoch received by any member. */
    this.received = 0;
    /** Latency of every received packet of this epoch. */
    this.latency = new LatencyHistogram();
    /** Largest delay of the send timer behind its schedule, in ms. */
    this.maxTimerLagMs = 0;
  }
}

/**
 * @typedef {object} Sender
 * @property {LoadClient} client
 * @property {number} receivers other members of its room
 * @property {number} startAt wall-clock time of its first packet
 * @property {number} sent packets sent so far
 * @property {number} sequence
 */

/** The generator state of one process. */
export class LoadWorker {
  /** @param {OpenClient} openClient */
  constructor(openClient) {
    this.openClient = openClient;
    /** @type {LoadClient[]} */
    this.clients = [];
    /** @type {Sender[]} */
    this.senders = [];
    this.epoch = 0;
    /** @type {Map<number, EpochCounters>} */
    this.epochs = new Map();
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.timer = undefined;
    this.nextTickAt = 0;
    this.scratch = new Float64Array(1);
    this.scratchBytes = new Uint8Array(this.scratch.buffer);
    this.onMedia = (
      /** @type {number} */ _source,
      /** @type {Uint8Array} */ packet,
    ) => this.#receive(packet);
  }

  /**
   * Connects every member of `rooms`, a few at a time, and starts its
   * sending. Returns how many joined and the first errors.
   * @param {RoomSpec[]} rooms
   * @param {Record<string, unknown>} extra transport options (certificate hashes)
   */
  async join(rooms, extra) {
    /** @type {{ room: RoomSpec, member: MemberSpec }[]} */
    const queue = [];
    for (const room of rooms) {
      for (const member of room.members) queue.push({ room, member });
    }

    let joined = 0;
    /** @type {string[]} */
    const errors = [];
    let next = 0;
    const openNext = async () => {
      while (next < queue.length) {
        const { room, member } = queue[next++];
        try {
          const client = await this.openClient(member, room.name, extra);
          client.listen(this.onMedia);
          this.clients.push(client);
          if (member.send) {
            this.senders.push({
              client,
              receivers: room.members.length - 1,
              startAt: wallClockMs() + Math.random() * PACKET_INTERVAL_MS,
              sent: 0,
              sequence: 0,
            });
          }
          joined++;
        } catch (error) {
          if (errors.length < 5) errors.push(String(error));
        }
      }
    };
    await Promise.all(
      Array.from({ length: CONNECT_CONCURRENCY }, () => openNext()),
    );
    this.#startTimer();
    return { joined, failed: queue.length - joined, errors };
  }

  /** @param {number} epoch stamped into every packet from now on */
  setEpoch(epoch) {
    this.epoch = epoch;
  }

  /**
   * Returns the counters of `epoch` and deletes them, with the number of
   * clients that closed unexpectedly.
   * @param {number} epoch
   */
  report(epoch) {
    const counters = this.epochs.get(epoch) ?? new EpochCounters();
    this.epochs.delete(epoch);
    let closed = 0;
    for (const client of this.clients) if (!client.isOpen()) closed++;
    return {
      sent: counters.sent,
      expected: counters.expected,
      sendDrops: counters.sendDrops,
      received: counters.received,
      latency: counters.latency.toJSON(),
      maxTimerLagMs: counters.maxTimerLagMs,
      clients: this.clients.length,
      closed,
    };
  }

  /** Stops sending and closes every client. */
  async close() {
    clearInterval(this.timer);
    this.timer = undefined;
    const clients = this.clients;
    this.clients = [];
    this.senders = [];
    await Promise.all(clients.map((client) => client.close().catch(() => {})));
  }

  #startTimer() {
    if (this.timer !== undefined) return;
    this.nextTickAt = wallClockMs() + TICK_MS;
    this.timer = setInterval(() => this.#tick(), TICK_MS);
  }

  /** Sends every packet that is due, at most one interval late. */
  #tick() {
    const now = wallClockMs();
    const lag = now - this.nextTickAt;
    this.nextTickAt += TICK_MS;
    if (this.nextTickAt < now) this.nextTickAt = now + TICK_MS;

    const epoch = this.epoch;
    const counters = this.#counters(epoch);
    if (counters !== null && lag > counters.maxTimerLagMs) {
      counters.maxTimerLagMs = lag;
    }

    const senders = this.senders;
    for (let i = 0; i < senders.length; i++) {
      const sender = senders[i];
      const due = Math.floor((now - sender.startAt) / PACKET_INTERVAL_MS) + 1;
      while (sender.sent < due) {
        sender.sent++;
        this.#send(sender, epoch, counters);
      }
    }
  }

  /**
   * @param {Sender} sender
   * @param {number} epoch
   * @param {EpochCounters | null} counters
   */
  #send(sender, epoch, counters) {
    // A new buffer per packet: WebTransport writes complete later.
    const packet = new Uint8Array(PACKET_BYTES);
    const sequence = sender.sequence = (sender.sequence + 1) & 0xffff;
    const now = wallClockMs();
    const elapsed = (now - sender.startAt) >>> 0;
    packet[2] = sequence >>> 8;
    packet[3] = sequence & 0xff;
    packet[4] = elapsed >>> 24;
    packet[5] = (elapsed >>> 16) & 0xff;
    packet[6] = (elapsed >>> 8) & 0xff;
    packet[7] = elapsed & 0xff;
    this.scratch[0] = now;
    packet.set(this.scratchBytes, SEND_TIME_OFFSET);
    packet[EPOCH_OFFSET] = epoch >>> 24;
    packet[EPOCH_OFFSET + 1] = (epoch >>> 16) & 0xff;
    packet[EPOCH_OFFSET + 2] = (epoch >>> 8) & 0xff;
    packet[EPOCH_OFFSET + 3] = epoch & 0xff;

    const ok = sender.client.sendMedia(packet);
    if (counters === null) return;
    if (ok) {
      counters.sent++;
      counters.expected += sender.receivers;
    } else {
      counters.sendDrops++;
    }
  }

  /** @param {Uint8Array} packet */
  #receive(packet) {
    if (packet.length < EPOCH_OFFSET + 4) return;
    const epoch = (packet[EPOCH_OFFSET] << 24 |
      packet[EPOCH_OFFSET + 1] << 16 | packet[EPOCH_OFFSET + 2] << 8 |
      packet[EPOCH_OFFSET + 3]) >>> 0;
    const counters = this.#counters(epoch);
    if (counters === null) return;

    const bytes = this.scratchBytes;
    for (let i = 0; i < 8; i++) bytes[i] = packet[SEND_TIME_OFFSET + i];
    counters.received++;
    counters.latency.record(wallClockMs() - this.scratch[0]);
  }

  /**
   * @param {number} epoch
   * @returns {EpochCounters | null}
   */
  #counters(epoch) {
    if (epoch === 0) return null;
    let counters = this.epochs.get(epoch);
    if (counters === undefined) {
      counters = new EpochCounters();
      this.epochs.set(epoch, counters);
    }
    return counters;
  }
}

/**
 * Runs the control protocol until `close` or the end of input.
 *
 * Requests (one JSON object per line, each with a numeric `id`):
 * `{op: "join", rooms: RoomSpec[], extra}`, `{op: "epoch", epoch}`,
 * `{op: "report", epoch}`, `{op: "close"}`. Each gets one reply line
 * `{id, ok: true, ...result}` or `{id, ok: false, error}`.
 *
 * @param {AsyncIterable<string>} lines
 * @param {(line: string) => void} writeLine
 * @param {OpenClient} openClient
 */
export async function runControlLoop(lines, writeLine, openClient) {
  const worker = new LoadWorker(openClient);
  writeLine(JSON.stringify({ id: 0, ok: true, ready: true }));
  for await (const line of lines) {
    if (line.trim() === "") continue;
    const request = JSON.parse(line);
    try {
      const result = await handle(worker, request);
      writeLine(JSON.stringify({ id: request.id, ok: true, ...result }));
      if (request.op === "close") return;
    } catch (error) {
      writeLine(
        JSON.stringify({ id: request.id, ok: false, error: String(error) }),
      );
    }
  }
  await worker.close();
}

/**
 * @param {LoadWorker} worker
 * @param {{ op: string, rooms?: RoomSpec[], extra?: Record<string, unknown>, epoch?: number }} request
 * @returns {Promise<Record<string, unknown>>}
 */
async function handle(worker, request) {
  switch (request.op) {
    case "join":
      return await worker.join(request.rooms ?? [], request.extra ?? {});
    case "epoch":
      worker.setEpoch(request.epoch ?? 0);
      return {};
    case "report":
      return worker.report(request.epoch ?? 0);
    case "close":
      await worker.close();
      return {};
    default:
      throw new TypeError(`Unknown op ${JSON.stringify(request.op)}`);
  }
}
