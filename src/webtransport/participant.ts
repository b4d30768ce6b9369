/**
 * The WebTransport participant adapter: turns a session on `/room/<room>`
 * into a participant session. Media packets are datagrams; signals are
 * `[u32 big-endian length][UTF-8 JSON]` frames on the first bidirectional
 * stream that the client opens, in both directions.
 *
 * @module
 */

import { OverLimitTimer } from "../session/over_limit_timer.ts";
import type { ConnectionLease } from "../limits/connection_limiter.ts";
import { errorMessage, type Logger } from "../log.ts";
import {
  ParticipantSession,
  type SessionContext,
  type SessionTransport,
} from "../session/session.ts";
import { CLOSE } from "../wire/close_codes.ts";
import type { RoomName } from "../wire/room_name.ts";
import {
  encodeFrame,
  FrameDecoder,
  FrameTooLargeError,
} from "../wire/stream_framing.ts";
import { closeSession, type ServerWebTransport } from "./close.ts";

/**
 * Default limit of signal bytes written to a client's stream and not yet
 * taken by QUIC; over it the session closes with 4008.
 */
export const DEFAULT_MAX_SIGNAL_QUEUE_BYTES = 256 * 1024;

/** Limits of a WebTransport participant, read on each use. */
export interface WebTransportParticipantSettings {
  /** Largest signal frame from the client, in bytes; over it closes 4413. */
  maxSignalBytes: number;
  /** Datagram writes in flight to one client before media to it is dropped. */
  maxDatagramsInFlight: number;
  /** Time at the in-flight limit before the session closes with 4008, in ms. */
  slowConsumerTimeoutMs: number;
  /**
   * Signal bytes queued to the client before the session closes with 4008.
   * @default {DEFAULT_MAX_SIGNAL_QUEUE_BYTES}
   */
  maxSignalQueueBytes?: number;
}

/** Room, token and peer address of a session for {@linkcode acceptParticipant}. */
export interface ParticipantInit {
  room: RoomName;
  /** Token from the URL's `?token=`; `hello` may override it. */
  queryToken: string | undefined;
  /** Peer address for logs. */
  remote: string;
  /**
   * The connection's place in the connection limits. Its handshake ends at
   * the session's `welcome`.
   */
  lease?: ConnectionLease;
}

/** Sends between two readings of the session's maximum datagram size. */
export const DATAGRAM_SIZE_REFRESH_SENDS = 256;

const encoder = new TextEncoder();
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A participant's WebTransport session with drop-on-backpressure media. */
class WebTransportTransport implements SessionTransport {
  readonly kind = "wt" as const;
  session: ParticipantSession | null = null;
  /** Resolves once the WebTransport session is closed. */
  readonly finished: Promise<void>;

  readonly #wt: ServerWebTransport;
  readonly #context: SessionContext;
  readonly #settings: WebTransportParticipantSettings;
  readonly #lease: ConnectionLease | undefined;
  readonly #datagrams: WritableStreamDefaultWriter<Uint8Array>;
  #signals: WritableStreamDefaultWriter<Uint8Array> | null = null;
  #signalBytesQueued = 0;
  #signalQueueOverflowed = false;
  #inFlight = 0;
  /** Last reading of the session's maximum datagram size, 0 before the first. */
  #maxDatagramSize = 0;
  #sendsSinceSizeRead = 0;
  readonly #overLimit = new OverLimitTimer();
  #closing = false;
  #resolveFinished!: () => void;

  // Bound once so that a datagram write allocates no new closure.
  readonly #onDatagramSent = () => {
    this.#inFlight--;
  };
  readonly #onDatagramFailed = () => {
    this.#inFlight--;
    if (!this.#closing) this.#context.stats.dropped.datagram_send_failed++;
  };

  constructor(
    wt: ServerWebTransport,
    context: SessionContext,
    settings: WebTransportParticipantSettings,
    lease: ConnectionLease | undefined,
  ) {
    this.#wt = wt;
    this.#context = context;
    this.#settings = settings;
    this.#lease = lease;
    this.#datagrams = wt.datagrams.writable.getWriter();
    this.finished = new Promise((resolve) => this.#resolveFinished = resolve);
  }

  /** Sets the writer of the signal stream, once the client opened it. */
  attachSignalStream(writer: WritableStreamDefaultWriter<Uint8Array>): void {
    this.#signals = writer;
  }

  get hasSignalStream(): boolean {
    return this.#signals !== null;
  }

  sendMedia(frame: Uint8Array): boolean {
    if (this.#closing) return false;

    const stats = this.#context.stats;
    // Deno drops an oversized datagram without an error. The size grows
    // after the handshake and may shrink with the path, and reading it
    // calls into the runtime, so a cached value is refreshed every
    // DATAGRAM_SIZE_REFRESH_SENDS sends and whenever a frame exceeds it.
    if (
      frame.length > this.#maxDatagramSize ||
      ++this.#sendsSinceSizeRead >= DATAGRAM_SIZE_REFRESH_SENDS
    ) {
      this.#maxDatagramSize = this.#wt.datagrams.maxDatagramSize;
      this.#sendsSinceSizeRead = 0;
    }
    if (frame.length > this.#maxDatagramSize) {
      stats.dropped.datagram_too_large++;
      return false;
    }

    const settings = this.#settings;
    if (this.#inFlight >= settings.maxDatagramsInFlight) {
      stats.dropped.datagram_in_flight++;
      if (this.#overLimit.over(settings.slowConsumerTimeoutMs)) {
        this.session?.close(
          CLOSE.slowConsumer,
          `${settings.maxDatagramsInFlight} datagrams in flight for ` +
            `${settings.slowConsumerTimeoutMs} ms`,
        );
      }
      return false;
    }

    this.#overLimit.under();
    this.#inFlight++;
    this.#datagrams.write(frame).then(
      this.#onDatagramSent,
      this.#onDatagramFailed,
    );
    return true;
  }

  sendSignal(text: string): void {
    // The session is joined from its welcome on, the first signal it
    // sends after the join, so the handshake ends here.
    const lease = this.#lease;
    if (lease?.inHandshake && this.session?.state === "joined") {
      lease.endHandshake();
    }

    const writer = this.#signals;
    // Without a signal stream the client cannot have sent hello, so only
    // the error signal of a close before hello can be lost here.
    if (this.#closing || writer === null || this.#signalQueueOverflowed) {
      return;
    }

    const frame = encodeFrame(encoder.encode(text));
    const limit = this.#settings.maxSignalQueueBytes ??
      DEFAULT_MAX_SIGNAL_QUEUE_BYTES;
    if (this.#signalBytesQueued + frame.length > limit) {
      // Set first: the close sends an error signal, which must not recurse.
      this.#signalQueueOverflowed = true;
      this.session?.close(
        CLOSE.slowConsumer,
        `Signal queue over ${limit} bytes`,
      );
      return;
    }

    this.#signalBytesQueued += frame.length;
    const settle = () => {
      this.#signalBytesQueued -= frame.length;
    };
    writer.write(frame).then(settle, settle);
  }

  closeTransport(code: number, reason: string): void {
    if (this.#closing) return;
    this.#closing = true;
    closeSession(this.#wt, code, reason).then(this.#resolveFinished);
  }

  /** Marks the transport closed by the client. */
  markClosed(): void {
    this.#closing = true;
    this.#resolveFinished();
  }
}

/** A participant session over WebTransport, as returned to the server. */
export interface WebTransportParticipant {
  readonly session: ParticipantSession;
  /** Resolves once the WebTransport session is closed by either side. */
  readonly finished: Promise<void>;
}

/**
 * Starts a participant session on `wt`, which must be ready, and runs its
 * read loops until the session closes.
 */
export function acceptParticipant(
  wt: ServerWebTransport,
  context: SessionContext,
  settings: WebTransportParticipantSettings,
  init: ParticipantInit,
): WebTransportParticipant {
  const transport = new WebTransportTransport(
    wt,
    context,
    settings,
    init.lease,
  );
  const session = new ParticipantSession(context, transport, {
    room: init.room,
    queryToken: init.queryToken,
    remote: init.remote,
  });
  transport.session = session;

  wt.closed
    .catch(() => {})
    .then(() => {
      transport.markClosed();
      session.handleTransportClosed();
    });

  void readDatagrams(wt, session, context.logger);
  void acceptSignalStream(
    wt,
    transport,
    session,
    settings.maxSignalBytes,
    context.logger,
  );

  return { session, finished: transport.finished };
}

/**
 * Hands each datagram to the session. A read stays pending at all times
 * because Deno's incoming datagram queue has room for one datagram, so the loop
 * awaits nothing but the next read.
 */
async function readDatagrams(
  wt: ServerWebTransport,
  session: ParticipantSession,
  logger: Logger,
): Promise<void> {
  const reader = wt.datagrams.readable.getReader();
  for (;;) {
    let result: ReadableStreamReadResult<Uint8Array>;
    try {
      result = await reader.read();
    } catch {
      // The session closed; wt.closed reports it to the session.
      return;
    }
    if (result.done) return;
    try {
      session.handleMedia(result.value);
    } catch (error) {
      handlerFailed(session, logger, "datagram", error);
      return;
    }
  }
}

/** Logs a throw from the session's handler once and closes the session. */
function handlerFailed(
  session: ParticipantSession,
  logger: Logger,
  what: "datagram" | "signal",
  error: unknown,
): void {
  logger.error(`webtransport ${what} handler failed`, {
    session: session.id,
    remote: session.remote,
    error: errorMessage(error),
  });
  session.close(CLOSE.internalError, `Internal error handling a ${what}`);
}

/**
 * Takes the first bidirectional stream the client opens as the signal
 * stream. Later streams carry nothing in this protocol and are cancelled.
 */
async function acceptSignalStream(
  wt: ServerWebTransport,
  transport: WebTransportTransport,
  session: ParticipantSession,
  maxSignalBytes: number,
  logger: Logger,
): Promise<void> {
  const streams = wt.incomingBidirectionalStreams.getReader();
  try {
    for (;;) {
      const { value: stream, done } = await streams.read();
      if (done) return;

      if (transport.hasSignalStream) {
        stream.readable.cancel().catch(() => {});
        stream.writable.abort().catch(() => {});
        continue;
      }
      transport.attachSignalStream(stream.writable.getWriter());
      void readSignals(stream.readable, session, maxSignalBytes, logger);
    }
  } catch {
    // The session closed.
  }
}

/** Splits the signal stream into frames and hands each to the session. */
async function readSignals(
  readable: ReadableStream<Uint8Array>,
  session: ParticipantSession,
  maxSignalBytes: number,
  logger: Logger,
): Promise<void> {
  const reader = readable.getReader();
  const decoder = new FrameDecoder(maxSignalBytes);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (isClosed(session)) return;
      if (done) {
        // Without its signal stream the client could not send hangup.
        session.close(CLOSE.normal, "Signal stream ended");
        return;
      }

      let frames: Uint8Array[];
      try {
        frames = decoder.push(value);
      } catch (error) {
        if (!(error instanceof FrameTooLargeError)) throw error;
        session.close(CLOSE.tooLarge, error.message);
        return;
      }

      for (const frame of frames) {
        let text: string;
        try {
          text = utf8.decode(frame);
        } catch {
          session.close(CLOSE.badRequest, "Invalid signal: not valid UTF-8");
          return;
        }
        try {
          session.handleSignal(text);
        } catch (error) {
          handlerFailed(session, logger, "signal", error);
          return;
        }
        if (isClosed(session)) return;
      }
    }
  } catch (error) {
    // A closed session also ends here; that needs no log line.
    if (isClosed(session)) return;
    logger.debug("signal stream failed", {
      session: session.id,
      error: errorMessage(error),
    });
  }
}

// A function, so that TypeScript does not narrow the state across calls
// that close the session.
function isClosed(session: ParticipantSession): boolean {
  return session.state === "closed";
}
