/**
 * Shared test helpers: a relay on 127.0.0.1 with its own data directory, a
 * WebSocket participant client with bounded waits, a raw TCP WebSocket
 * client that can stop reading, and a few small utilities.
 *
 * Every wait takes a timeout and clears its timer, so Deno's leak
 * sanitizers stay quiet and a hung relay fails the test instead of the run.
 *
 * @module
 */

import { Relay } from "../src/relay.ts";
import type { RelayOptions } from "../src/options.ts";
import { silentLogger } from "../src/log.ts";
import { RelayIdentity } from "../src/identity/identity.ts";

/** Default bound of every wait in these helpers, in ms. */
export const DEFAULT_WAIT_MS = 3_000;

/** Clients opened against each test relay, closed by its cleanup. */
const openClients = new WeakMap<Relay, Set<TestClient | RawWebSocket>>();

/** A relay started for one test. */
export interface TestRelay extends AsyncDisposable {
  relay: Relay;
  /** Temporary data directory of the relay. */
  dataDir: string;
  /** Stops the relay and removes its data directory. Idempotent. */
  cleanup(): Promise<void>;
}

/**
 * Starts a relay on 127.0.0.1 with free ports, WebTransport off, a silent
 * logger, a fresh in-memory identity and a temporary data directory.
 * `options` override these defaults.
 */
export async function startTestRelay(
  options: Partial<RelayOptions> = {},
  identity?: RelayIdentity,
): Promise<TestRelay> {
  const dataDir = await Deno.makeTempDir({ prefix: "relay-test-" });
  let relay: Relay;
  try {
    relay = await Relay.start({
      host: "127.0.0.1",
      httpPort: 0,
      wtPort: 0,
      noWebTransport: true,
      dataDir,
      ...options,
    }, {
      logger: silentLogger,
      identity: identity ?? await RelayIdentity.generate(),
    });
  } catch (error) {
    await Deno.remove(dataDir, { recursive: true });
    throw error;
  }

  const clients = new Set<TestClient | RawWebSocket>();
  openClients.set(relay, clients);
  let cleaning: Promise<void> | null = null;
  const cleanup = () => {
    cleaning ??= (async () => {
      for (const client of clients) {
        if (client instanceof RawWebSocket) client.close();
      }
      await relay.stop();
      // The relay closed every session; wait for the clients to see it so
      // that no socket outlives the test.
      await Promise.all(
        [...clients].map((client) =>
          client instanceof TestClient
            ? client.close().catch(() => {})
            : undefined
        ),
      );
      await Deno.remove(dataDir, { recursive: true });
    })();
    return cleaning;
  };
  return { relay, dataDir, cleanup, [Symbol.asyncDispose]: cleanup };
}

/**
 * Resolves with `promise`, or rejects with a message naming `label` once
 * `timeoutMs` has passed. The timer is cleared either way.
 */
export async function withTimeout<T>(
  promise: Promise<T>,
  timeoutMs: number,
  label: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Timed out after ${timeoutMs} ms: ${label}`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until `condition` returns true, checking every few ms. */
export async function waitFor(
  condition: () => boolean,
  timeoutMs: number,
  label: string,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${label}`);
    }
    await delay(5);
  }
}

/** Resolves after `ms`. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Code and reason of a closed WebSocket. */
export interface CloseInfo {
  code: number;
  reason: string;
}

/** A signal as received: a parsed JSON object. */
export type ReceivedSignal = Record<string, unknown> & { type: string };

interface Waiter<T> {
  matches(item: T): boolean;
  resolve(item: T): void;
  reject(error: Error): void;
}

/**
 * A queue of received items with bounded waits. An item that no waiter
 * takes stays queued until a later wait requests it.
 */
class Inbox<T> {
  readonly #items: T[] = [];
  readonly #waiters: Waiter<T>[] = [];
  #closedError: Error | null = null;

  get size(): number {
    return this.#items.length;
  }

  push(item: T): void {
    const index = this.#waiters.findIndex((waiter) => waiter.matches(item));
    if (index === -1) {
      this.#items.push(item);
      return;
    }
    const [waiter] = this.#waiters.splice(index, 1);
    waiter!.resolve(item);
  }

  /** Rejects current and later waits that the queue cannot satisfy. */
  fail(error: Error): void {
    this.#closedError = error;
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
  }

  take(
    matches: (item: T) => boolean,
    timeoutMs: number,
    label: string,
  ): Promise<T> {
    const index = this.#items.findIndex(matches);
    if (index !== -1) {
      const [item] = this.#items.splice(index, 1);
      return Promise.resolve(item!);
    }
    if (this.#closedError !== null) {
      return Promise.reject(
        new Error(`${label}: ${this.#closedError.message}`),
      );
    }

    const { promise, resolve, reject } = Promise.withResolvers<T>();
    const waiter: Waiter<T> = { matches, resolve, reject };
    this.#waiters.push(waiter);
    return withTimeout(promise, timeoutMs, label).finally(() => {
      const at = this.#waiters.indexOf(waiter);
      if (at !== -1) this.#waiters.splice(at, 1);
    });
  }

  /** Removes and returns every queued item. */
  drain(): T[] {
    return this.#items.splice(0);
  }
}

/** Options of {@linkcode connectWs}. */
export interface ConnectOptions {
  /** Query parameters, such as `token`. */
  query?: Record<string, string>;
  /** Use `room` as the path segment as it is, without percent-encoding. */
  rawSegment?: boolean;
  /** Bound of the open, in ms. @default {DEFAULT_WAIT_MS} */
  timeoutMs?: number;
}

/** A participant's WebSocket as seen from a test. */
export class TestClient {
  readonly socket: WebSocket;
  /** Resolves once the socket is closed by either side. */
  readonly closed: Promise<CloseInfo>;
  /** Every signal received, in order, including those already taken. */
  readonly signalLog: ReceivedSignal[] = [];
  /** Number of media frames received so far. */
  mediaReceived = 0;

  readonly #signals = new Inbox<ReceivedSignal>();
  readonly #media = new Inbox<Uint8Array>();
  #pingCounter = 0;

  constructor(socket: WebSocket) {
    this.socket = socket;
    socket.binaryType = "arraybuffer";
    const closed = Promise.withResolvers<CloseInfo>();
    this.closed = closed.promise;

    socket.onmessage = (event: MessageEvent) => {
      if (typeof event.data === "string") {
        const signal = JSON.parse(event.data) as ReceivedSignal;
        this.signalLog.push(signal);
        this.#signals.push(signal);
        return;
      }
      this.mediaReceived++;
      this.#media.push(new Uint8Array(event.data as ArrayBuffer));
    };
    socket.onclose = (event: CloseEvent) => {
      const error = new Error(
        `socket closed with code ${event.code} (${event.reason})`,
      );
      this.#signals.fail(error);
      this.#media.fail(error);
      closed.resolve({ code: event.code, reason: event.reason });
    };
  }

  /** Number of media frames received and not yet taken. */
  get pendingMedia(): number {
    return this.#media.size;
  }

  /**
   * Returns the next signal not yet taken. With `type`, returns the first
   * queued signal of that type, and signals of other types stay queued.
   */
  nextSignal(
    type?: string,
    timeoutMs = DEFAULT_WAIT_MS,
  ): Promise<ReceivedSignal> {
    return this.#signals.take(
      (signal) => type === undefined || signal.type === type,
      timeoutMs,
      `waiting for signal ${type ?? "(any)"}`,
    );
  }

  /** Returns the next media frame not yet taken. */
  nextMedia(timeoutMs = DEFAULT_WAIT_MS): Promise<Uint8Array> {
    return this.#media.take(() => true, timeoutMs, "waiting for media");
  }

  /** Removes and returns every queued media frame. */
  drainMedia(): Uint8Array[] {
    return this.#media.drain();
  }

  /** Removes and returns every queued signal. */
  drainSignals(): ReceivedSignal[] {
    return this.#signals.drain();
  }

  sendText(text: string): void {
    this.socket.send(text);
  }

  sendSignal(signal: Record<string, unknown>): void {
    this.socket.send(JSON.stringify(signal));
  }

  sendHello(fields: { token?: string; alias?: string } = {}): void {
    this.sendSignal({ type: "hello", ...fields });
  }

  sendMedia(packet: Uint8Array): void {
    this.socket.send(packet);
  }

  /** Sends `hello` and returns the `welcome` that follows it. */
  async join(
    fields: { token?: string; alias?: string } = {},
    timeoutMs = DEFAULT_WAIT_MS,
  ): Promise<ReceivedSignal> {
    this.sendHello(fields);
    return await this.nextSignal("welcome", timeoutMs);
  }

  /**
   * Sends `ping` and waits for its `pong`. Everything the relay sent to this
   * client before it handled the ping has arrived once this resolves.
   */
  async sync(timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    const ts = ++this.#pingCounter;
    this.sendSignal({ type: "ping", ts });
    await this.#signals.take(
      (signal) => signal.type === "pong" && signal.ts === ts,
      timeoutMs,
      `waiting for pong ${ts}`,
    );
  }

  /** Returns the close of the socket, bounded by `timeoutMs`. */
  waitClosed(timeoutMs = DEFAULT_WAIT_MS): Promise<CloseInfo> {
    return withTimeout(this.closed, timeoutMs, "waiting for the close");
  }

  /** Closes the socket from this side and waits for the close. */
  async close(timeoutMs = DEFAULT_WAIT_MS): Promise<CloseInfo> {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.close(1000);
    return await this.waitClosed(timeoutMs);
  }
}

/** Returns the WebSocket URL of `room` on `relay`. */
export function wsUrl(
  relay: Relay,
  room: string,
  options: ConnectOptions = {},
): string {
  const segment = options.rawSegment ? room : encodeURIComponent(room);
  const url = new URL(`${relay.httpUrl}/ws/${segment}`);
  url.protocol = "ws:";
  for (const [key, value] of Object.entries(options.query ?? {})) {
    url.searchParams.set(key, value);
  }
  return url.href;
}

/**
 * Opens a WebSocket to `room` and resolves once it is open. Rejects when
 * the relay closes or rejects it first.
 */
export async function connectWs(
  relay: Relay,
  room: string,
  options: ConnectOptions = {},
): Promise<TestClient> {
  const socket = new WebSocket(wsUrl(relay, room, options));
  const client = new TestClient(socket);
  openClients.get(relay)?.add(client);
  const opened = new Promise<void>((resolve, reject) => {
    socket.onopen = () => resolve();
    client.closed.then((info) =>
      reject(
        new Error(`WebSocket to ${room} closed before open: ${info.code}`),
      )
    );
  });
  try {
    await withTimeout(opened, options.timeoutMs ?? DEFAULT_WAIT_MS, "open");
  } catch (error) {
    if (socket.readyState !== WebSocket.CLOSED) socket.close();
    await withTimeout(client.closed, DEFAULT_WAIT_MS, "close after failure");
    throw error;
  }
  return client;
}

/** Connects to `room`, sends `hello` and waits for `welcome`. */
export async function joinWs(
  relay: Relay,
  room: string,
  hello: { token?: string; alias?: string } = {},
  options: ConnectOptions = {},
): Promise<{ client: TestClient; welcome: ReceivedSignal }> {
  const client = await connectWs(relay, room, options);
  try {
    const welcome = await client.join(hello);
    return { client, welcome };
  } catch (error) {
    await client.close().catch(() => {});
    throw error;
  }
}

/** Closes every client that is still open and waits for each close. */
export async function closeAll(clients: Iterable<TestClient>): Promise<void> {
  await Promise.all([...clients].map((client) => client.close()));
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A WebSocket client over a raw TCP connection, for what the WebSocket
 * API cannot do: read the HTTP status of a refused upgrade, and stop
 * reading so that the relay's send buffer for it grows.
 */
export class RawWebSocket {
  readonly conn: Deno.TcpConn;
  /** HTTP status of the upgrade response. */
  readonly status: number;
  /** Response head up to the blank line. */
  readonly head: string;
  #closed = false;

  private constructor(conn: Deno.TcpConn, status: number, head: string) {
    this.conn = conn;
    this.status = status;
    this.head = head;
  }

  /**
   * Connects to `relay`, sends an upgrade request for `path` and reads the
   * response head. Bytes after the head stay unread.
   */
  static async open(
    relay: Relay,
    path: string,
    timeoutMs = DEFAULT_WAIT_MS,
  ): Promise<RawWebSocket> {
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: relay.httpPort,
    });
    try {
      const key = crypto.getRandomValues(new Uint8Array(16)).toBase64();
      const request = `GET ${path} HTTP/1.1\r\n` +
        `Host: 127.0.0.1:${relay.httpPort}\r\n` +
        "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
      await conn.write(encoder.encode(request));
      const head = await withTimeout(
        readHead(conn),
        timeoutMs,
        `reading the response to ${path}`,
      );
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? NaN);
      const raw = new RawWebSocket(conn, status, head);
      openClients.get(relay)?.add(raw);
      return raw;
    } catch (error) {
      conn.close();
      throw error;
    }
  }

  /** Sends one masked text frame, as a client must. */
  async sendText(text: string): Promise<void> {
    await writeAll(this.conn, encodeClientFrame(0x1, encoder.encode(text)));
  }

  /** Sends one masked binary frame. */
  async sendBinary(bytes: Uint8Array): Promise<void> {
    await writeAll(this.conn, encodeClientFrame(0x2, bytes));
  }

  /** Closes the TCP connection without a WebSocket close. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.conn.close();
  }
}

/** Reads byte by byte up to the end of an HTTP response head. */
async function readHead(conn: Deno.TcpConn): Promise<string> {
  const bytes: number[] = [];
  const one = new Uint8Array(1);
  while (bytes.length < 16_384) {
    const read = await conn.read(one);
    if (read === null) break;
    bytes.push(one[0]!);
    const length = bytes.length;
    if (
      length >= 4 && bytes[length - 4] === 13 && bytes[length - 3] === 10 &&
      bytes[length - 2] === 13 && bytes[length - 1] === 10
    ) {
      break;
    }
  }
  return decoder.decode(new Uint8Array(bytes));
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    offset += await conn.write(bytes.subarray(offset));
  }
}

/** Encodes one final, masked client frame (RFC 6455, section 5.2). */
export function encodeClientFrame(
  opcode: number,
  payload: Uint8Array,
): Uint8Array {
  const length = payload.length;
  let lengthBytes = 8;
  if (length < 126) lengthBytes = 0;
  else if (length < 0x10000) lengthBytes = 2;
  const frame = new Uint8Array(2 + lengthBytes + 4 + length);
  const view = new DataView(frame.buffer);
  frame[0] = 0x80 | opcode;
  if (lengthBytes === 0) {
    frame[1] = 0x80 | length;
  } else if (lengthBytes === 2) {
    frame[1] = 0x80 | 126;
    view.setUint16(2, length);
  } else {
    frame[1] = 0x80 | 127;
    view.setBigUint64(2, BigInt(length));
  }

  const maskAt = 2 + lengthBytes;
  const mask = crypto.getRandomValues(new Uint8Array(4));
  frame.set(mask, maskAt);
  for (let i = 0; i < length; i++) {
    frame[maskAt + 4 + i] = payload[i]! ^ mask[i & 3]!;
  }
  return frame;
}

/** Fetches `path` on the relay and returns the status and parsed body. */
export async function fetchJson(
  relay: Relay,
  path: string,
  init: RequestInit = {},
): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${relay.httpUrl}${path}`, init);
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: the text is the body.
  }
  return { status: response.status, body };
}

/** Returns the value of one sample in Prometheus text format, or undefined. */
export function metricValue(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const expected = Object.entries(labels);
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;

    const found = new Map<string, string>();
    for (const pair of (match[3] ?? "").matchAll(/(\w+)="([^"]*)"/g)) {
      found.set(pair[1]!, pair[2]!);
    }
    if (expected.every(([key, value]) => found.get(key) === value)) {
      return Number(match[4]);
    }
  }
  return undefined;
}

/** Returns the `/metrics` text of `relay`. */
export async function scrapeMetrics(relay: Relay): Promise<string> {
  const response = await fetch(`${relay.httpUrl}/metrics`);
  return await response.text();
}
