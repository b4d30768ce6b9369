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

import { errorMessage } from "../src/log.ts";
import {
  ParticipantSession,
  type SessionContext,
  type SessionTransport,
} from "../src/session/session.ts";
import { CLOSE } from "../src/wire/close_codes.ts";
import { parseRoomSegment } from "../src/wire/room_name.ts";

/** Backpressure settings of a WebSocket receiver, read on each use. */
export interface WebSocketSettings {
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
  session: ParticipantSession | null = null;
  /** When the buffer first went over the limit, or 0 while under it. */
  #overLimitSince = 0;

  constructor(
    socket: WebSocket,
    context: SessionContext,
    settings: WebSocketSettings,
  ) {
    this.#socket = socket;
    this.#context = context;
    this.#settings = settings;
  }

  sendMedia(frame: Uint8Array): boolean {
    const socket = this.#socket;
    if (socket.readyState !== WebSocket.OPEN) return false;

    const settings = this.#settings;
    if (socket.bufferedAmount > settings.wsBufferLimitBytes) {
      this.#context.stats.dropped.ws_buffer_full++;
      const now = performance.now();
      if (this.#overLimitSince === 0) {
        this.#overLimitSince = now;
      } else if (now - this.#overLimitSince >= settings.slowConsumerTimeoutMs) {
        this.session?.close(
          CLOSE.slowConsumer,
          `Receive buffer over ${settings.wsBufferLimitBytes} bytes for ${settings.slowConsumerTimeoutMs} ms`,
        );
      }
      return false;
    }

    this.#overLimitSince = 0;
    socket.send(frame);
    return true;
  }

  sendSignal(text: string): void {
    if (this.#socket.readyState !== WebSocket.OPEN) return;
    this.#socket.send(text);
  }

  closeTransport(code: number, reason: string): void {
    const socket = this.#socket;
    if (
      socket.readyState === WebSocket.CLOSING ||
      socket.readyState === WebSocket.CLOSED
    ) {
      return;
    }
    socket.close(code, reason);
  }
}

/** Extra information about the request, for logs. */
export interface UpgradeInfo {
  remote: string;
}

/**
 * Answers `GET /ws/<room>`: HTTP 400 for an invalid room name, 401 or 403
 * for a bad `?token=`, 503 while draining, else the WebSocket upgrade.
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
    return errorResponse(
      426,
      "upgrade_required",
      "Expected a WebSocket upgrade request",
    );
  }

  const queryToken = new URL(request.url).searchParams.get("token") ??
    undefined;
  if (queryToken !== undefined && context.auth.required) {
    const outcome = await context.auth.authenticate(queryToken, parsed.name);
    if (!outcome.ok) {
      context.stats.auth[outcome.result]++;
      return outcome.code === "forbidden"
        ? errorResponse(403, CLOSE.forbidden.error, outcome.message)
        : errorResponse(401, CLOSE.unauthorized.error, outcome.message);
    }
  }

  const { socket, response } = Deno.upgradeWebSocket(request, {
    idleTimeout: Math.max(1, Math.round(settings.livenessTimeoutMs / 1000)),
  });
  socket.binaryType = "arraybuffer";

  const transport = new WebSocketTransport(socket, context, settings);
  const session = new ParticipantSession(context, transport, {
    room: parsed.name,
    queryToken,
    remote: info.remote,
  });
  transport.session = session;

  socket.onmessage = (event: MessageEvent) => {
    const data = event.data;
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
  };
  socket.onclose = () => session.handleTransportClosed();
  socket.onerror = (event) => {
    context.logger.debug("websocket error", {
      session: session.id,
      error: event instanceof ErrorEvent ? event.message : errorMessage(event),
    });
  };

  return response;
}

function errorResponse(
  status: number,
  code: string,
  message: string,
): Response {
  return Response.json({ error: { code, message } }, { status });
}
