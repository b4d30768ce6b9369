// @ts-self-types="./relay_client.d.ts"
/**
 * RelayClient: a participant client of the voice relay for Deno and for
 * browsers, over WebSocket (`ws://host:port/ws/<room>`) or WebTransport
 * (`https://host:port/room/<room>`). Plain JavaScript, so that the relay
 * can serve this file to browsers as `/assets/relay_client.js` without a
 * build step; the types are in `relay_client.d.ts`.
 *
 * ```js
 * import { RelayClient } from "/assets/relay_client.js";
 * const client = new RelayClient("ws://127.0.0.1:8080/ws/lobby");
 * client.onMedia = (source, packet) => console.log(source, packet.length);
 * await client.connect();
 * client.sendMedia(new Uint8Array(20));
 * await client.close();
 * ```
 *
 * @module
 */

import {
  MAX_DATAGRAMS_IN_FLIGHT,
  MAX_RECEIVED_SIGNAL_BYTES,
  WebSocketConnection,
  WebTransportConnection,
  WS_SEND_BUFFER_LIMIT_BYTES,
} from "./relay_connections.js";

export {
  MAX_DATAGRAMS_IN_FLIGHT,
  MAX_RECEIVED_SIGNAL_BYTES,
  WS_SEND_BUFFER_LIMIT_BYTES,
};

/** Default time from the start of a connection to `welcome`, in ms. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** Time `close()` waits for the relay to close after `hangup`, in ms. */
export const CLOSE_TIMEOUT_MS = 2_000;

/** Time `ping()` waits for its `pong`, in ms. */
export const PING_TIMEOUT_MS = 5_000;

/** Default reconnect backoff: 1 s doubling to 30 s, without an end. */
export const DEFAULT_RECONNECT = Object.freeze({
  initialDelayMs: 1_000,
  maxDelayMs: 30_000,
  maxAttempts: Infinity,
});

/**
 * Close code reported when a connection ended without one: the WebSocket
 * code for an abnormal closure, also used for WebTransport sessions whose
 * close code the runtime does not expose.
 */
export const ABNORMAL_CLOSE_CODE = 1006;

/** Close code of each `error.code` the relay sends. */
export const CLOSE_CODES = Object.freeze({
  normal: 1000,
  bad_request: 4400,
  unauthorized: 4401,
  forbidden: 4403,
  timeout: 4408,
  room_full: 4409,
  too_large: 4413,
  rate_limited: 4429,
  slow_consumer: 4008,
  kicked: 4410,
  shutting_down: 4503,
  internal_error: 1011,
});

const CODE_BY_ERROR = new Map(Object.entries(CLOSE_CODES));

/**
 * Returns the close code of an `error.code`, or ABNORMAL_CLOSE_CODE for a
 * code this client does not know.
 * @param {string} errorCode
 */
function closeCodeFor(errorCode) {
  return CODE_BY_ERROR.get(errorCode) ?? ABNORMAL_CLOSE_CODE;
}

/** Close codes after which reconnecting cannot succeed or is unwanted. */
const FINAL_CLOSE_CODES = new Set([1000, 4400, 4401, 4403, 4410, 4413]);

/** Raised by `connect()` when the connection closes before `welcome`. */
export class RelayCloseError extends Error {
  /**
   * @param {number} code close code
   * @param {string} reason close reason
   * @param {string | null} errorCode `code` of the relay's `error` signal
   * @param {string} message
   */
  constructor(code, reason, errorCode, message) {
    super(message);
    this.name = "RelayCloseError";
    this.code = code;
    this.reason = reason;
    this.errorCode = errorCode;
  }
}

/**
 * Returns a promise that resolves after `ms` with `value`, and its cancel.
 * @template T
 * @param {number} ms
 * @param {T} value
 * @returns {{ promise: Promise<T>, cancel: () => void }}
 */
function sleep(ms, value) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  const promise = new Promise((resolve) => {
    timer = setTimeout(() => resolve(value), ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

/**
 * Calls a user callback; an exception is reported and does not stop the
 * read loop that called it.
 * @param {() => void} call
 */
function guard(call) {
  try {
    call();
  } catch (error) {
    globalThis.reportError?.(error);
  }
}

/** A participant client of the relay. See relay_client.d.ts for types. */
export class RelayClient extends EventTarget {
  /** @type {((source: number, packet: Uint8Array) => void) | null} */
  onMedia = null;

  #url;
  #transport;
  #room;
  #alias;
  #token;
  #hashes;
  #reconnect;
  #connectTimeoutMs;
  #pingIntervalMs;
  #state = "idle";
  /** @type {string | null} */
  #participantId = null;
  /** @type {object[]} */
  #participants = [];
  /** @type {Connection | null} */
  #connection = null;
  /** @type {string | null} */
  #errorCode = null;
  /** `message` of the relay's last `error` signal, or "". */
  #errorMessage = "";
  #hangupSent = false;
  #userClosed = false;
  #attempt = 0;
  /** @type {{ cancel: () => void } | null} */
  #reconnectTimer = null;
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #pingTimer = undefined;
  /** @type {number | null} */
  #rttMs = null;
  /** @type {object | null} */
  #welcome = null;
  /** @type {PromiseWithResolvers<object> | null} */
  #joining = null;
  /** @type {PromiseWithResolvers<CloseInfoValue>} */
  #closed = Promise.withResolvers();
  #closedSettled = false;
  #pingCounter = 0;
  /** @type {Map<number, { resolve: (ms: number) => void, reject: (e: Error) => void, start: number, cancel: () => void }>} */
  #pings = new Map();
  /** @type {Set<unknown>} */
  #mediaListeners = new Set();

  /**
   * @param {string} url
   * @param {RelayClientOptionsValue} [options]
   */
  constructor(url, options = {}) {
    super();
    const parsed = new URL(url);
    if (parsed.protocol === "ws:" || parsed.protocol === "wss:") {
      this.#transport = "ws";
    } else if (parsed.protocol === "https:") {
      this.#transport = "wt";
    } else {
      throw new TypeError(
        `Invalid relay URL ${url}: expected ws://, wss:// (WebSocket) or ` +
          `https:// (WebTransport)`,
      );
    }
    this.#url = parsed.href;
    const segment = parsed.pathname.slice(parsed.pathname.lastIndexOf("/") + 1);
    try {
      this.#room = decodeURIComponent(segment);
    } catch {
      this.#room = segment;
    }

    this.#alias = options.alias;
    this.#token = options.token;
    this.#hashes = options.serverCertificateHashes;
    this.#connectTimeoutMs = options.connectTimeoutMs ??
      DEFAULT_CONNECT_TIMEOUT_MS;
    this.#pingIntervalMs = options.pingIntervalMs ?? 0;
    const reconnect = options.reconnect ?? false;
    this.#reconnect = reconnect === false ? null : {
      ...DEFAULT_RECONNECT,
      ...(reconnect === true ? {} : reconnect),
    };
    this.#closed.promise.catch(() => {});
  }

  /**
   * Fetches `GET /api/webtransport` of a relay: the WebTransport URL up to
   * the room name and the certificate hashes to pin.
   * @param {string} httpBaseUrl such as `http://127.0.0.1:8080`
   */
  static async fetchWebTransportInfo(httpBaseUrl) {
    const url = new URL("/api/webtransport", httpBaseUrl);
    const response = await fetch(url);
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const message = body?.error?.message ?? response.statusText;
      throw new Error(
        `Cannot fetch ${url.href}: HTTP ${response.status} (${message})`,
      );
    }
    return body;
  }

  get transport() {
    return this.#transport;
  }

  get state() {
    return this.#state;
  }

  get participantId() {
    return this.#participantId;
  }

  get participants() {
    return this.#participants;
  }

  get room() {
    return this.#room;
  }

  get url() {
    return this.#url;
  }

  /** Latest round-trip time measured by `ping()`, in ms. */
  get rttMs() {
    return this.#rttMs;
  }

  /** Close of the current connection, or of the next one before it starts. */
  get closed() {
    return this.#closed.promise;
  }

  /**
   * Connects, sends `hello` and resolves with `welcome`. Rejects with a
   * RelayCloseError when the connection closes before `welcome`. Reconnects
   * (when enabled) happen only after a first successful join.
   */
  connect() {
    if (this.#state === "joined" && this.#welcome !== null) {
      return Promise.resolve(this.#welcome);
    }
    if (this.#joining !== null) return this.#joining.promise;

    this.#reconnectTimer?.cancel();
    this.#reconnectTimer = null;
    this.#userClosed = false;
    this.#attempt = 0;
    return this.#open("connecting");
  }

  /**
   * Sends one media packet. Returns false when not joined or when the
   * packet is dropped because the transport is backed up or it does not
   * fit a datagram.
   * @param {Uint8Array} packet
   */
  sendMedia(packet) {
    if (this.#state !== "joined") return false;
    return this.#connection?.sendMedia(packet) ?? false;
  }

  /**
   * Sends one signal object as JSON.
   * @param {{ type: string } & Record<string, unknown>} signal
   */
  sendSignal(signal) {
    const connection = this.#connection;
    if (connection === null || connection.finished) {
      throw new Error(
        `Cannot send ${signal.type} signal: the client is ${this.#state}`,
      );
    }
    connection.sendSignal(JSON.stringify(signal));
  }

  /** Sends `ping` and resolves with the round-trip time in ms. */
  ping() {
    if (this.#state !== "joined") {
      return Promise.reject(
        new Error(`Cannot ping: the client is ${this.#state}`),
      );
    }
    const ts = ++this.#pingCounter;
    const { promise, resolve, reject } = Promise.withResolvers();
    const timeout = sleep(PING_TIMEOUT_MS, undefined);
    timeout.promise.then(() => {
      if (!this.#pings.delete(ts)) return;
      reject(new Error(`No pong within ${PING_TIMEOUT_MS} ms`));
    });
    this.#pings.set(ts, {
      resolve,
      reject,
      start: performance.now(),
      cancel: timeout.cancel,
    });
    try {
      this.sendSignal({ type: "ping", ts });
    } catch (error) {
      this.#pings.delete(ts);
      timeout.cancel();
      return Promise.reject(error);
    }
    return promise;
  }

  /**
   * Replaces the token: sends `refresh` when joined, and uses the token
   * for the `hello` of later reconnects.
   * @param {string} token
   */
  refresh(token) {
    this.#token = token;
    if (this.#state === "joined") this.sendSignal({ type: "refresh", token });
  }

  /**
   * Leaves: sends `hangup`, waits up to CLOSE_TIMEOUT_MS for the relay to
   * close, then closes from this side. Stops reconnecting.
   * @param {string} [reason]
   */
  async close(reason) {
    const connection = this.#beginLeave();
    if (connection === null) return;

    const closed = this.#closed.promise;
    if (!this.#sendHangup(connection, reason)) {
      // No welcome yet, so there is no session to hang up.
      connection.close(CLOSE_CODES.normal, reason ?? "hangup");
      await closed;
      return;
    }

    const wait = sleep(CLOSE_TIMEOUT_MS, "timeout");
    const result = await Promise.race([closed, wait.promise]);
    wait.cancel();
    if (result === "timeout") {
      connection.close(CLOSE_CODES.normal, reason ?? "hangup");
      await closed;
    }
  }

  /**
   * Leaves without waiting, for a page that is going away: sends `hangup`
   * when joined and closes the connection in the same call. Stops
   * reconnecting. Use {@linkcode close} everywhere else, because it lets
   * the relay close first.
   * @param {string} [reason]
   */
  closeNow(reason) {
    const connection = this.#beginLeave();
    if (connection === null) return;
    this.#sendHangup(connection, reason);
    connection.close(CLOSE_CODES.normal, reason ?? "hangup");
  }

  /**
   * Stops reconnecting and returns the open connection, or null (after
   * setting the state to closed) when there is none.
   * @returns {Connection | null}
   */
  #beginLeave() {
    this.#userClosed = true;
    this.#reconnectTimer?.cancel();
    this.#reconnectTimer = null;

    const connection = this.#connection;
    if (connection === null || connection.finished) {
      this.#setState("closed");
      return null;
    }
    return connection;
  }

  /**
   * Sends `hangup` when joined. Returns whether it was sent.
   * @param {Connection} connection
   * @param {string | undefined} reason
   * @returns {boolean}
   */
  #sendHangup(connection, reason) {
    if (this.#state !== "joined") return false;
    this.#hangupSent = true;
    connection.sendSignal(
      JSON.stringify(
        reason === undefined ? { type: "hangup" } : { type: "hangup", reason },
      ),
    );
    return true;
  }

  /**
   * Counts `media` listeners, so that media events are built only when
   * someone listens.
   * @override
   * @param {string} type
   * @param {EventListenerOrEventListenerObject | null} listener
   * @param {boolean | AddEventListenerOptions} [options]
   */
  addEventListener(type, listener, options) {
    if (type === "media" && listener !== null) {
      this.#mediaListeners.add(listener);
      const signal = typeof options === "object" ? options.signal : undefined;
      signal?.addEventListener(
        "abort",
        () => this.#mediaListeners.delete(listener),
      );
    }
    super.addEventListener(type, listener, options);
  }

  /**
   * @override
   * @param {string} type
   * @param {EventListenerOrEventListenerObject | null} listener
   * @param {boolean | EventListenerOptions} [options]
   */
  removeEventListener(type, listener, options) {
    if (type === "media") this.#mediaListeners.delete(listener);
    super.removeEventListener(type, listener, options);
  }

  /**
   * Starts one connection and resolves at its `welcome`.
   * @param {"connecting" | "reconnecting"} state
   */
  #open(state) {
    const joining = Promise.withResolvers();
    joining.promise.catch(() => {});
    this.#joining = joining;
    this.#errorCode = null;
    this.#errorMessage = "";
    this.#hangupSent = false;
    this.#welcome = null;
    if (this.#closedSettled) {
      this.#closed = Promise.withResolvers();
      this.#closed.promise.catch(() => {});
      this.#closedSettled = false;
    }
    this.#setState(state);

    /** @type {ConnectionHandlers} */
    const handlers = {
      onSignal: (text) => this.#handleSignal(text),
      onFrame: (frame) => this.#handleFrame(frame),
      onClose: (code, reason) => this.#handleClose(connection, code, reason),
    };
    /** @type {Connection} */
    let connection;
    try {
      connection = this.#transport === "ws"
        ? new WebSocketConnection(this.#url, handlers)
        : new WebTransportConnection(this.#url, this.#hashes, handlers);
    } catch (error) {
      // The runtime rejected the URL or the options outright.
      this.#joining = null;
      this.#setState("closed");
      return Promise.reject(error);
    }
    this.#connection = connection;

    const timeout = sleep(this.#connectTimeoutMs, undefined);
    timeout.promise.then(() => {
      if (this.#joining !== joining || connection.finished) return;
      this.#errorCode = "timeout";
      connection.close(CLOSE_CODES.timeout, "timeout");
    });
    joining.promise.then(timeout.cancel, timeout.cancel);

    connection.opened.then(() => {
      if (connection.finished || this.#connection !== connection) return;
      /** @type {Record<string, string>} */
      const hello = { type: "hello" };
      if (this.#token !== undefined) hello.token = this.#token;
      if (this.#alias !== undefined) hello.alias = this.#alias;
      connection.sendSignal(JSON.stringify(hello));
    }, () => {
      // The connection failed to open; its close reports the failure.
    });
    return joining.promise;
  }

  /** @param {string} text */
  #handleSignal(text) {
    let signal;
    try {
      signal = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof signal !== "object" || signal === null) return;

    switch (signal.type) {
      case "welcome":
        this.#participantId = signal.participant_id;
        this.#welcome = signal;
        this.#attempt = 0;
        this.#setState("joined");
        this.#startPings();
        this.#joining?.resolve(signal);
        this.#joining = null;
        this.#dispatch("welcome", signal);
        break;
      case "room_update":
        this.#participants = signal.participants;
        this.#dispatch("room_update", signal);
        break;
      case "quality_directive":
        this.#dispatch("quality_directive", signal);
        break;
      case "pong": {
        const ping = this.#pings.get(signal.ts);
        if (ping !== undefined) {
          this.#pings.delete(signal.ts);
          ping.cancel();
          this.#rttMs = performance.now() - ping.start;
          ping.resolve(this.#rttMs);
        }
        break;
      }
      case "error":
        // Browsers lose WebTransport close reasons, so the code that the
        // error signal carries is what reports the cause.
        this.#errorCode = signal.code;
        this.#errorMessage = typeof signal.message === "string"
          ? signal.message
          : "";
        this.#dispatch("error", signal);
        if (this.#transport === "wt") {
          this.#connection?.close(
            closeCodeFor(String(signal.code)),
            String(signal.code),
          );
        }
        break;
    }
    this.#dispatch("signal", signal);
  }

  /** @param {Uint8Array} frame */
  #handleFrame(frame) {
    if (frame.length < 2) return;
    const source = ((frame[0] ?? 0) << 8) | (frame[1] ?? 0);
    const packet = frame.subarray(2);
    const onMedia = this.onMedia;
    if (onMedia !== null) guard(() => onMedia(source, packet));
    if (this.#mediaListeners.size > 0) {
      this.dispatchEvent(
        new CustomEvent("media", { detail: { source, packet } }),
      );
    }
  }

  /**
   * @param {Connection} connection
   * @param {number | null} code
   * @param {string} reason
   */
  #handleClose(connection, code, reason) {
    if (this.#connection !== connection) return;
    this.#stopPings();

    const errorCode = this.#errorCode;
    const closeCode = this.#closeCodeOf(code, errorCode);
    const info = { code: closeCode, reason, errorCode };

    for (const ping of this.#pings.values()) {
      ping.cancel();
      ping.reject(new Error(`Connection closed with ${closeCode}`));
    }
    this.#pings.clear();

    const joining = this.#joining;
    this.#joining = null;
    const wasJoined = joining === null;
    const retry = this.#reconnect !== null && !this.#userClosed &&
      !this.#hangupSent && !FINAL_CLOSE_CODES.has(closeCode) &&
      (wasJoined || this.#state === "reconnecting") &&
      this.#attempt < this.#reconnect.maxAttempts;

    this.#participantId = null;
    this.#participants = [];
    this.#setState(retry ? "reconnecting" : "closed");
    this.#closedSettled = true;
    this.#closed.resolve(info);
    this.#dispatch("close", info);
    joining?.reject(
      new RelayCloseError(
        closeCode,
        reason,
        errorCode,
        `Connection to ${this.#url} closed before welcome: ${closeCode}` +
          (errorCode === null ? "" : ` (${errorCode})`) +
          // The relay's error message explains the close, while the close
          // reason only repeats the error code.
          (this.#errorMessage !== ""
            ? `: ${this.#errorMessage}`
            : reason === ""
            ? ""
            : `: ${reason}`),
      ),
    );
    if (retry) this.#scheduleReconnect();
  }

  /**
   * Returns the close code to report: the transport's when it has one,
   * else the one the relay's error signal implies, else 1000 after hangup.
   * @param {number | null} code
   * @param {string | null} errorCode
   * @returns {number}
   */
  #closeCodeOf(code, errorCode) {
    if (code !== null) return code;
    if (errorCode !== null) return closeCodeFor(errorCode);
    return this.#hangupSent ? CLOSE_CODES.normal : ABNORMAL_CLOSE_CODE;
  }

  #scheduleReconnect() {
    const reconnect = this.#reconnect;
    if (reconnect === null) return;
    const base = Math.min(
      reconnect.maxDelayMs,
      reconnect.initialDelayMs * 2 ** this.#attempt,
    );
    // Half fixed, half random, so that clients of one relay spread out.
    const delay = base / 2 + Math.random() * base / 2;
    this.#attempt++;
    const timer = sleep(delay, undefined);
    this.#reconnectTimer = timer;
    timer.promise.then(() => {
      if (this.#reconnectTimer !== timer || this.#userClosed) return;
      this.#reconnectTimer = null;
      this.#open("reconnecting").catch((error) => {
        this.#dispatch("error", {
          type: "error",
          code: "reconnect_failed",
          message: String(error?.message ?? error),
        });
      });
    });
  }

  #startPings() {
    if (this.#pingIntervalMs <= 0) return;
    this.#stopPings();
    this.#pingTimer = setInterval(() => {
      this.ping().catch(() => {});
    }, this.#pingIntervalMs);
  }

  #stopPings() {
    clearInterval(this.#pingTimer);
    this.#pingTimer = undefined;
  }

  /** @param {RelayClientStateValue} state */
  #setState(state) {
    if (this.#state === state) return;
    this.#state = state;
    this.#dispatch("state", { state });
  }

  /**
   * @param {string} type
   * @param {unknown} detail
   */
  #dispatch(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/**
 * @typedef {import("./relay_client.d.ts").ServerCertificateHash} ServerCertificateHash
 * @typedef {import("./relay_client.d.ts").RelayClientOptions} RelayClientOptionsValue
 * @typedef {import("./relay_client.d.ts").RelayClientState} RelayClientStateValue
 * @typedef {import("./relay_client.d.ts").CloseInfo} CloseInfoValue
 * @typedef {{
 *   onSignal: (text: string) => void,
 *   onFrame: (frame: Uint8Array) => void,
 *   onClose: (code: number | null, reason: string) => void,
 * }} ConnectionHandlers
 * @typedef {{
 *   finished: boolean,
 *   opened: Promise<void>,
 *   sendSignal: (text: string) => void,
 *   sendMedia: (packet: Uint8Array) => boolean,
 *   close: (code: number, reason: string) => void,
 * }} Connection
 */
