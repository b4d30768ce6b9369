/**
 * The two transports of RelayClient: one WebSocket or one WebTransport
 * session, with the same small interface (`opened`, `sendSignal`,
 * `sendMedia`, `close`, and handlers for signals, frames and the close).
 * Served to browsers as `/assets/relay_connections.js`.
 *
 * @module
 */

/** WebSocket bytes buffered above which `sendMedia` drops the packet. */
export const WS_SEND_BUFFER_LIMIT_BYTES = 64 * 1024;

/** Datagram writes in flight above which `sendMedia` drops the packet. */
export const MAX_DATAGRAMS_IN_FLIGHT = 64;

/**
 * Largest signal frame accepted from the relay, in bytes. Larger than the
 * 65,536 bytes a client may send, because a `room_update` of a large
 * federated room can exceed that.
 */
export const MAX_RECEIVED_SIGNAL_BYTES = 1024 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Decodes standard base64 with `atob`, which every runtime has.
 * @param {string} text
 */
function decodeBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * One WebSocket connection.
 * @implements {Connection}
 */
export class WebSocketConnection {
  /**
   * @param {string} url
   * @param {ConnectionHandlers} handlers
   */
  constructor(url, handlers) {
    this.handlers = handlers;
    this.finished = false;
    this.socket = new WebSocket(url);
    this.socket.binaryType = "arraybuffer";
    this.opened = new Promise((resolve) => {
      this.socket.onopen = () => resolve(undefined);
    });
    this.socket.onmessage = (event) => {
      const data = event.data;
      if (typeof data === "string") {
        handlers.onSignal(data);
        return;
      }
      handlers.onFrame(new Uint8Array(data));
    };
    this.socket.onclose = (event) => {
      this.finished = true;
      // Deno reports 0 for a refused upgrade, where browsers report 1006.
      handlers.onClose(event.code === 0 ? null : event.code, event.reason);
    };
  }

  /** @param {string} text */
  sendSignal(text) {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(text);
  }

  /** @param {Uint8Array} packet */
  sendMedia(packet) {
    const socket = this.socket;
    if (socket.readyState !== WebSocket.OPEN) return false;
    if (socket.bufferedAmount > WS_SEND_BUFFER_LIMIT_BYTES) return false;
    socket.send(packet);
    return true;
  }

  /**
   * @param {number} code
   * @param {string} reason
   */
  close(code, reason) {
    const socket = this.socket;
    if (
      socket.readyState === WebSocket.CLOSING ||
      socket.readyState === WebSocket.CLOSED
    ) {
      return;
    }
    // A WebSocket client may close only with 1000 or 3000-4999.
    const allowed = code === 1000 || (code >= 3000 && code <= 4999);
    socket.close(allowed ? code : 1000, reason);
  }
}

/**
 * One WebTransport session: signals on a bidirectional stream the client
 * opens, media as datagrams.
 * @implements {Connection}
 */
export class WebTransportConnection {
  /**
   * @param {string} url
   * @param {ServerCertificateHash[] | undefined} hashes
   * @param {ConnectionHandlers} handlers
   */
  constructor(url, hashes, handlers) {
    this.handlers = handlers;
    this.finished = false;
    this.inFlight = 0;
    /** @type {{ code: number, reason: string } | null} */
    this.localClose = null;
    /** @type {WritableStreamDefaultWriter<Uint8Array> | null} */
    this.signalWriter = null;
    /** @type {WritableStreamDefaultWriter<Uint8Array> | null} */
    this.datagramWriter = null;
    this.onDatagramSettled = () => {
      this.inFlight--;
    };

    /** @type {WebTransportOptions} */
    const options = {};
    if (hashes !== undefined && hashes.length > 0) {
      options.serverCertificateHashes = hashes.map((hash) => ({
        algorithm: hash.algorithm,
        value: typeof hash.value === "string"
          ? decodeBase64(hash.value)
          : hash.value,
      }));
    }
    this.wt = new WebTransport(url, options);
    this.wt.closed.then(
      // Deno resolves with undefined when the session is rejected in the
      // handshake.
      (info) => this.#finish(info?.closeCode ?? null, info?.reason ?? ""),
      (error) => this.#finish(error?.closeCode ?? null, String(error)),
    );
    this.opened = this.#open();
    this.opened.catch(() => {});
  }

  async #open() {
    const wt = this.wt;
    await wt.ready;
    const stream = await wt.createBidirectionalStream();
    this.signalWriter = stream.writable.getWriter();
    this.datagramWriter = wt.datagrams.writable.getWriter();
    this.#readSignals(stream.readable);
    this.#readDatagrams();
  }

  /** @param {ReadableStream<Uint8Array>} readable */
  async #readSignals(readable) {
    const reader = readable.getReader();
    /** @type {Uint8Array} */
    let buffer = new Uint8Array(0);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer = buffer.length === 0 ? value : concat(buffer, value);
        let offset = 0;
        while (buffer.length - offset >= 4) {
          const view = new DataView(buffer.buffer, buffer.byteOffset + offset);
          const length = view.getUint32(0);
          if (length > MAX_RECEIVED_SIGNAL_BYTES) {
            // 4413 is the protocol's too_large close code.
            this.close(4413, "too_large");
            return;
          }
          const end = offset + 4 + length;
          if (end > buffer.length) break;
          this.handlers.onSignal(
            decoder.decode(buffer.subarray(offset + 4, end)),
          );
          offset = end;
        }
        buffer = buffer.slice(offset);
      }
    } catch {
      // The session closed; wt.closed reports it.
    }
  }

  // Deno's incoming datagram queue has room for one datagram, so a read stays
  // pending at all times and the loop awaits nothing else.
  async #readDatagrams() {
    const reader = this.wt.datagrams.readable.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        this.handlers.onFrame(value);
      }
    } catch {
      // The session closed.
    }
  }

  /** @param {string} text */
  sendSignal(text) {
    const writer = this.signalWriter;
    if (writer === null || this.finished) return;
    const body = encoder.encode(text);
    const frame = new Uint8Array(4 + body.length);
    new DataView(frame.buffer).setUint32(0, body.length);
    frame.set(body, 4);
    writer.write(frame).catch(() => {});
  }

  /** @param {Uint8Array} packet */
  sendMedia(packet) {
    const writer = this.datagramWriter;
    if (writer === null || this.finished || this.localClose !== null) {
      return false;
    }
    // A datagram over maxDatagramSize would be dropped without an error.
    if (packet.length > this.wt.datagrams.maxDatagramSize) return false;
    if (this.inFlight >= MAX_DATAGRAMS_IN_FLIGHT) return false;
    this.inFlight++;
    writer.write(packet).then(this.onDatagramSettled, this.onDatagramSettled);
    return true;
  }

  /**
   * @param {number} code
   * @param {string} reason
   */
  close(code, reason) {
    if (this.finished || this.localClose !== null) return;
    this.localClose = { code, reason };
    try {
      this.wt.close({ closeCode: code, reason });
    } catch {
      // Not connected yet or already closed; wt.closed reports it.
    }
  }

  /**
   * Reports the end once. A close started by this side wins, because the
   * runtime reports code 0 for it. A missing code is reported as null for
   * the client to fill in, because browsers never expose the relay's.
   * @param {number | null} code
   * @param {string} reason
   */
  #finish(code, reason) {
    if (this.finished) return;
    this.finished = true;
    const local = this.localClose;
    if (local !== null) {
      this.handlers.onClose(local.code, local.reason);
    } else if (typeof code === "number" && code !== 0) {
      this.handlers.onClose(code, reason);
    } else {
      this.handlers.onClose(null, reason);
    }
  }
}

/**
 * @param {Uint8Array} a
 * @param {Uint8Array} b
 */
function concat(a, b) {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
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
