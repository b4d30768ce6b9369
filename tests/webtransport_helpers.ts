/**
 * Test helpers for WebTransport participants: a relay with WebTransport on
 * 127.0.0.1, and a raw participant client on Deno's WebTransport that
 * reads signal frames and datagrams with bounded waits.
 *
 * The client never closes the session on an `error` signal, so the tests
 * see the relay's own close code in `closed`, after the relay's wait for
 * the client (1 s).
 *
 * @module
 */

import type { RelayOptions } from "../src/options.ts";
import type { Relay, WebTransportInfo } from "../src/relay.ts";
import { toServerCertificateHashes } from "../src/identity/mod.ts";
import { encodeFrame } from "../src/wire/stream_framing.ts";
import {
  DEFAULT_WAIT_MS,
  type ReceivedSignal,
  startTestRelay,
  type TestRelay,
  withTimeout,
} from "./helpers.ts";

/** Deno.QuicEndpoint and WebTransport need --unstable-net. */
export const hasWebTransport = "QuicEndpoint" in Deno &&
  "WebTransport" in globalThis;

/** Starts a test relay with WebTransport on a free UDP port. */
export function startWtRelay(
  options: Partial<RelayOptions> = {},
): Promise<TestRelay> {
  return startTestRelay({ noWebTransport: false, ...options });
}

/** Fetches and returns `GET /api/webtransport` of `relay`. */
export async function fetchWtInfo(relay: Relay): Promise<WebTransportInfo> {
  const response = await fetch(`${relay.httpUrl}/api/webtransport`);
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`GET /api/webtransport returned ${response.status}`);
  }
  return await response.json() as WebTransportInfo;
}

/** Close code and reason as a Deno WebTransport client sees them. */
export interface WtCloseInfo {
  closeCode: number | null;
  reason: string;
}

/** Queue of received items with bounded waits. */
class Queue<T> {
  readonly #items: T[] = [];
  readonly #waiters: { match: (item: T) => boolean; put: (item: T) => void }[] =
    [];

  push(item: T): void {
    const index = this.#waiters.findIndex((waiter) => waiter.match(item));
    if (index === -1) {
      this.#items.push(item);
      return;
    }
    this.#waiters.splice(index, 1)[0]!.put(item);
  }

  get size(): number {
    return this.#items.length;
  }

  take(match: (item: T) => boolean, timeoutMs: number, what: string) {
    const index = this.#items.findIndex(match);
    if (index !== -1) return Promise.resolve(this.#items.splice(index, 1)[0]!);

    const { promise, resolve } = Promise.withResolvers<T>();
    const waiter = { match, put: resolve };
    this.#waiters.push(waiter);
    return withTimeout(promise, timeoutMs, what).finally(() => {
      const at = this.#waiters.indexOf(waiter);
      if (at !== -1) this.#waiters.splice(at, 1);
    });
  }

  drain(): T[] {
    return this.#items.splice(0);
  }
}

/** Options of {@linkcode WtTestClient.open}. */
export interface WtOpenOptions {
  /** Hashes to pin; fetched from the relay when not given. */
  hashes?: { algorithm: "sha-256"; value: string }[];
  /** Open the signal stream right away. @default {true} */
  signalStream?: boolean;
}

/** A raw WebTransport participant as seen from a test. */
export class WtTestClient {
  readonly wt: WebTransport;
  /** Resolves once the session is closed by either side. */
  readonly closed: Promise<WtCloseInfo>;
  readonly #signals = new Queue<ReceivedSignal>();
  readonly #datagrams = new Queue<Uint8Array>();
  #writer: WritableStreamDefaultWriter<Uint8Array> | null = null;
  readonly #datagramWriter: WritableStreamDefaultWriter<Uint8Array>;
  #pingCounter = 0;

  private constructor(wt: WebTransport) {
    this.wt = wt;
    this.closed = wt.closed.then(
      (info) => ({
        closeCode: info.closeCode ?? null,
        reason: info.reason ?? "",
      }),
      (error) => ({ closeCode: null, reason: String(error) }),
    );
    this.#datagramWriter = wt.datagrams.writable.getWriter();
    void this.#readDatagrams();
  }

  /**
   * Opens a session to `path` on the relay's WebTransport port (for example
   * `/room/lobby`) and waits until it is ready.
   */
  static async open(
    relay: Relay,
    path: string,
    options: WtOpenOptions = {},
  ): Promise<WtTestClient> {
    const hashes = options.hashes ??
      (await fetchWtInfo(relay)).certificateHashes;
    const wt = new WebTransport(`https://127.0.0.1:${relay.wtPort}${path}`, {
      serverCertificateHashes: toServerCertificateHashes(hashes),
    });
    const client = new WtTestClient(wt);
    try {
      await withTimeout(wt.ready, DEFAULT_WAIT_MS, `WebTransport to ${path}`);
      if (options.signalStream ?? true) await client.openSignalStream();
    } catch (error) {
      client.abort();
      await client.closed;
      throw error;
    }
    return client;
  }

  /** Opens the signal stream and starts reading it. */
  async openSignalStream(): Promise<void> {
    const stream = await this.wt.createBidirectionalStream();
    this.#writer = stream.writable.getWriter();
    void this.#readSignals(stream.readable);
  }

  /** Writes raw bytes on the signal stream. */
  async sendRaw(bytes: Uint8Array): Promise<void> {
    await this.#writer!.write(bytes);
  }

  async sendText(text: string): Promise<void> {
    await this.sendRaw(encodeFrame(new TextEncoder().encode(text)));
  }

  async sendSignal(signal: Record<string, unknown>): Promise<void> {
    await this.sendText(JSON.stringify(signal));
  }

  /** Sends `hello` and returns the `welcome` reply. */
  async join(fields: { token?: string; alias?: string } = {}) {
    await this.sendSignal({ type: "hello", ...fields });
    return await this.nextSignal("welcome");
  }

  /** Sends `ping` and waits for its `pong`. */
  async sync(): Promise<void> {
    const ts = ++this.#pingCounter;
    await this.sendSignal({ type: "ping", ts });
    await this.#signals.take(
      (signal) => signal.type === "pong" && signal.ts === ts,
      DEFAULT_WAIT_MS,
      `waiting for pong ${ts}`,
    );
  }

  /** Returns the next signal, or the first queued one of `type`. */
  nextSignal(type?: string, timeoutMs = DEFAULT_WAIT_MS) {
    return this.#signals.take(
      (signal) => type === undefined || signal.type === type,
      timeoutMs,
      `waiting for signal ${type ?? "(any)"}`,
    );
  }

  sendDatagram(bytes: Uint8Array): Promise<void> {
    return this.#datagramWriter.write(bytes);
  }

  nextDatagram(timeoutMs = DEFAULT_WAIT_MS): Promise<Uint8Array> {
    return this.#datagrams.take(() => true, timeoutMs, "waiting for datagram");
  }

  /** Removes and returns every queued datagram. */
  drainDatagrams(): Uint8Array[] {
    return this.#datagrams.drain();
  }

  /** Returns the close of the session, bounded by `timeoutMs`. */
  waitClosed(timeoutMs = DEFAULT_WAIT_MS): Promise<WtCloseInfo> {
    return withTimeout(this.closed, timeoutMs, "waiting for the close");
  }

  /** Closes from this side without waiting. Idempotent. */
  abort(): void {
    try {
      this.wt.close();
    } catch {
      // Already closed.
    }
  }

  /** Closes from this side and waits for the close. */
  async close(): Promise<WtCloseInfo> {
    this.abort();
    return await this.waitClosed();
  }

  async #readSignals(readable: ReadableStream<Uint8Array>): Promise<void> {
    const reader = readable.getReader();
    let buffer = new Uint8Array(0);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        const joined = new Uint8Array(buffer.length + value.length);
        joined.set(buffer);
        joined.set(value, buffer.length);
        buffer = joined;
        while (buffer.length >= 4) {
          const length = new DataView(buffer.buffer, buffer.byteOffset)
            .getUint32(0);
          if (buffer.length < 4 + length) break;
          const text = new TextDecoder().decode(buffer.subarray(4, 4 + length));
          this.#signals.push(JSON.parse(text) as ReceivedSignal);
          buffer = buffer.slice(4 + length);
        }
      }
    } catch {
      // The session closed.
    }
  }

  // A read stays pending at all times because Deno queues one datagram.
  async #readDatagrams(): Promise<void> {
    const reader = this.wt.datagrams.readable.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        this.#datagrams.push(value);
      }
    } catch {
      // The session closed.
    }
  }
}

/** Connects to `room`, sends `hello` and waits for `welcome`. */
export async function joinWt(
  relay: Relay,
  room: string,
  hello: { token?: string; alias?: string } = {},
  options: WtOpenOptions = {},
): Promise<{ client: WtTestClient; welcome: ReceivedSignal }> {
  const client = await WtTestClient.open(
    relay,
    `/room/${encodeURIComponent(room)}`,
    options,
  );
  try {
    return { client, welcome: await client.join(hello) };
  } catch (error) {
    await client.close();
    throw error;
  }
}

/** Closes every client and waits for each close. */
export async function closeAllWt(clients: Iterable<WtTestClient>) {
  await Promise.all([...clients].map((client) => client.close()));
}

/** Builds a valid media packet of `length` bytes with sequence `sequence`. */
export function mediaPacket(length: number, sequence = 0): Uint8Array {
  const packet = new Uint8Array(length);
  new DataView(packet.buffer).setUint16(2, sequence);
  for (let i = 12; i < length; i++) packet[i] = (i * 7 + sequence) & 0xff;
  return packet;
}

/** Returns the relay frame for `packet` from `source`. */
export function relayFrame(source: number, packet: Uint8Array): Uint8Array {
  const frame = new Uint8Array(2 + packet.length);
  new DataView(frame.buffer).setUint16(0, source);
  frame.set(packet, 2);
  return frame;
}
