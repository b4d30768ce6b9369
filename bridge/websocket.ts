/**
 * The WebSocket bridge: turns an upgraded WebSocket into a participant
 * session. Text frames are signals, binary frames are media.
 *
 * It calls `Deno.upgradeWebSocket` directly instead of hono's WebSocket
 * helper: the helper wraps every message in its own event object, and the
 * direct call sets `idleTimeout`, which drives liveness pings.
 *
 * @module
 */

import { OverLimitTimer } from "../src/session/over_limit_timer.ts";
import {
  type ConnectionLease,
  type ConnectionLimiter,
  type ConnectionLimits,
} from "../src/limits/connection_limiter.ts";
import { errorMessage } from "../src/log.ts";
import {
  ParticipantSession,
  type SessionContext,
  type SessionTransport,
} from "../src/session/session.ts";
import { CLOSE } from "../src/wire/close_codes.ts";
import { parseRoomSegment } from "../src/wire/room_name.ts";

/**
 * Time a socket may stay closing, with the relay still sending to it,
 * before its session ends without the close event, in ms. Deno starts
 * closing a socket whose peer missed the liveness ping, but when the
 * peer has stopped reading, the close frame never goes out and Deno never
 * reports the close, so the session would stay in its room.
 */
export const WS_CLOSE_WAIT_MS = 2_000;

/**
 * Backpressure and connection limits of the WebSocket endpoint, read on
 * each use.
 */
export interface WebSocketSettings extends ConnectionLimits {
  /** Buffered bytes over which media to this socket is dropped. */
  wsBufferLimitBytes: number;
  /** Time over the limit before the socket is closed with 4008, in ms. */
  slowConsumerTimeoutMs: number;
  /** Time without a pong before the socket is dropped, in ms. */
  livenessTimeoutMs: number;
  /** Largest frame of either kind, in bytes; larger ones close with 4413. */
  maxSignalBytes: number;
}

/** A session's WebSocket, with drop-on-backpressure media sends. */
class WebSocketTransport implements SessionTransport {
  readonly kind = "ws" as const;
  readonly #socket: WebSocket;
  readonly #context: SessionContext;
  readonly #settings: WebSocketSettings;
  readonly #lease: ConnectionLease;
  session: ParticipantSession | null = null;
  /** Upper bound of `bufferedAmount`: its last reading plus bytes sent since. */
  #bufferedBound = 0;
  readonly #overLimit = new OverLimitTimer();
  #closeWait: ReturnType<typeof setTimeout> | undefined;

  constructor(
    socket: WebSocket,
    context: SessionContext,
    settings: WebSocketSettings,
    lease: ConnectionLease,
  ) {
    this.#socket = socket;
    this.#context = context;
    this.#settings = settings;
    this.#lease = lease;
  }

  sendMedia(frame: Uint8Array): boolean {
    const socket = this.#socket;
    if (socket.readyState !== WebSocket.OPEN) {
      this.#waitForClose();
      return false;
    }

    // Reading bufferedAmount calls into the runtime, so it is read only
    // when the bytes sent since the last reading could have crossed the
    // limit. Until then, that reading plus those bytes is an upper bound.
    const settings = this.#settings;
    const limit = settings.wsBufferLimitBytes;
    if (this.#bufferedBound + frame.length > limit) {
      this.#bufferedBound = socket.bufferedAmount;
    }
    if (this.#bufferedBound > limit) {
      this.#context.stats.dropped.ws_buffer_full++;
      if (this.#overLimit.over(settings.slowConsumerTimeoutMs)) {
        this.session?.close(
          CLOSE.slowConsumer,
          `Receive buffer over ${settings.wsBufferLimitBytes} bytes for ${settings.slowConsumerTimeoutMs} ms`,
        );
      }
      return false;
    }

    this.#overLimit.under();
    socket.send(frame);
    this.#bufferedBound += frame.length;
    return true;
  }

  sendSignal(text: string): void {
    // The session is joined from its welcome on, the first signal it
    // sends after the join, so the handshake ends here.
    if (this.#lease.inHandshake && this.session?.state === "joined") {
      this.#lease.endHandshake();
    }
    if (this.#socket.readyState !== WebSocket.OPEN) {
      this.#waitForClose();
      return;
    }
    this.#socket.send(text);
    // At most 3 UTF-8 bytes per UTF-16 code unit.
    this.#bufferedBound += text.length * 3;
  }

  /** Stops the close wait once the socket reported its close. */
  socketClosed(): void {
    clearTimeout(this.#closeWait);
    this.#closeWait = undefined;
  }

  /**
   * Ends the session with 4408 when the socket, found not open on a send,
   * has not reported its close within {@linkcode WS_CLOSE_WAIT_MS}.
   */
  #waitForClose(): void {
    if (this.#closeWait !== undefined || this.session?.state === "closed") {
      return;
    }
    this.#closeWait = setTimeout(() => {
      this.session?.close(
        CLOSE.timeout,
        `Socket still closing after ${WS_CLOSE_WAIT_MS} ms`,
      );
    }, WS_CLOSE_WAIT_MS);
  }

  closeTransport(code: number, reason: string): void {
    // The session has ended, so nothing is left for the close wait to end.
    this.socketClosed();
    // NOTE: with Deno 2.9.6, a close() in the same task as the send() of
    // the error signal sometimes ends the TCP connection without the close
    // frame, so the client sees no close code. It happened on every run of
    // a signal flood closed with 4429 and never once the close ran in the
    // next task, after the pending send. The cause inside Deno is unknown.
    setTimeout(() => {
      const socket = this.#socket;
      if (
        socket.readyState === WebSocket.CLOSING ||
        socket.readyState === WebSocket.CLOSED
      ) {
        return;
      }
      socket.close(code, reason);
    }, 0);
  }
}

/** The client's address and the relay's connection limiter. */
export interface UpgradeInfo {
  /** Client IP address, for the connection limits and logs. */
  remote: string;
  limiter: ConnectionLimiter;
}

/**
 * Handles `GET /ws/<room>`. Returns HTTP 400 for an invalid room name or
 * upgrade request, 503 while draining, 429 over a per-address connection
 * limit and 503 over the relay's handshake limit, 401 or 403 for a bad
 * `?token=`, else the WebSocket upgrade. Every error response has a JSON
 * body `{error: {code, message}}`.
 */
export async function upgradeToParticipant(
  request: Request,
  roomSegment: string,
  context: SessionContext,
  settings: WebSocketSettings,
  info: UpgradeInfo,
): Promise<Response> {
  const parsed = parseRoomSegment(roomSegment);
  if (!parsed.ok) {
    context.stats.requestsRejected.invalid_room++;
    return errorResponse(400, CLOSE.badRequest.error, parsed.message);
  }

  if (context.draining) {
    return errorResponse(
      503,
      CLOSE.shuttingDown.error,
      "The relay is shutting down",
    );
  }

  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    context.stats.requestsRejected.invalid_upgrade++;
    return errorResponse(
      426,
      "upgrade_required",
      "Expected a WebSocket upgrade request",
    );
  }

  const admitted = info.limiter.admit(info.remote, settings);
  if (!admitted.ok) {
    context.stats.connectionsRejected[admitted.reason]++;
    context.logger.warn("websocket connection rejected", {
      remote: info.remote,
      reason: admitted.reason,
    });
    return errorResponse(
      admitted.reason === "pending_handshakes" ? 503 : 429,
      CLOSE.rateLimited.error,
      admitted.message,
    );
  }
  const lease = admitted.lease;

  let session: ParticipantSession;

  let transport: WebSocketTransport;
  let socket: WebSocket;
  let response: Response;
  try {
    const queryToken = new URL(request.url).searchParams.get("token") ??
      undefined;
    if (queryToken !== undefined && context.auth.required) {
      const outcome = await context.auth.authenticate(queryToken, parsed.name);
      if (!outcome.ok) {
        lease.release();
        context.stats.auth[outcome.result]++;
        return outcome.code === "forbidden"
          ? errorResponse(403, CLOSE.forbidden.error, outcome.message)
          : errorResponse(401, CLOSE.unauthorized.error, outcome.message);
      }
    }

    try {
      ({ socket, response } = Deno.upgradeWebSocket(request, {
        idleTimeout: Math.max(
          1,
          Math.round(settings.livenessTimeoutMs / 1000),
        ),
      }));
    } catch (error) {
      // Deno rejects an upgrade without a valid Sec-WebSocket-Key or
      // Version header.
      lease.release();
      context.stats.requestsRejected.invalid_upgrade++;
      return errorResponse(
        400,
        CLOSE.badRequest.error,
        `Invalid WebSocket upgrade request: ${errorMessage(error)}`,
      );
    }
    socket.binaryType = "arraybuffer";

    transport = new WebSocketTransport(socket, context, settings, lease);
    session = new ParticipantSession(context, transport, {
      room: parsed.name,
      queryToken,
      remote: info.remote,
    });
    transport.session = session;
  } catch (error) {
    lease.release();
    throw error;
  }
  // The session closes at the latest when its handshake times out or its
  // peer stops responding to pings, which ends the handshake. The connection
  // counts until the socket is closed: Deno keeps a socket that the relay
  // closed open until the client responds to the close, so a client that
  // never responds keeps its place.
  session.closed.then(() => lease.endHandshake());

  let handlerFailed = false;
  socket.onmessage = (event: MessageEvent) => {
    try {
      handleMessage(session, settings, event.data);
    } catch (error) {
      // A throw here would be an uncaught exception that ends the process.
      if (handlerFailed) return;
      handlerFailed = true;
      context.logger.error("websocket message handler failed", {
        session: session.id,
        remote: info.remote,
        error: errorMessage(error),
      });
      session.close(CLOSE.internalError, "Internal error handling a frame");
    }
  };
  socket.onclose = () => {
    transport.socketClosed();
    lease.release();
    session.handleTransportClosed();
  };
  socket.onerror = (event) => {
    context.logger.debug("websocket error", {
      session: session.id,
      error: event instanceof ErrorEvent ? event.message : errorMessage(event),
    });
  };

  return response;
}

/** Hands one frame to the session: text is a signal, binary is media. */
function handleMessage(
  session: ParticipantSession,
  settings: WebSocketSettings,
  data: unknown,
): void {
  if (typeof data === "string") {
    session.handleSignal(data);
    return;
  }

  const packet = new Uint8Array(data as ArrayBuffer);
  if (packet.length > settings.maxSignalBytes) {
    session.close(
      CLOSE.tooLarge,
      `Binary frame of ${packet.length} bytes, the maximum is ${settings.maxSignalBytes}`,
    );
    return;
  }
  session.handleMedia(packet);
}

function errorResponse(
  status: number,
  code: string,
  message: string,
): Response {
  return Response.json({ error: { code, message } }, { status });
}
