/**
 * The WebTransport endpoint: a QUIC endpoint with ALPN `h3` that upgrades
 * each connection to a WebTransport session and routes it by path, to a
 * participant session (`/room/<room>`) or to the federation hook
 * (`/federation`). Needs `--unstable-net`.
 *
 * Certificate rotation follows what Deno 2.9.6 allows: each new certificate
 * gets another `listen()` on the same endpoint, which replaces the
 * endpoint's server configuration for new connections and keeps the
 * established ones. No listener is ever stopped, because `stop()` clears
 * the endpoint-wide configuration, and every listener object stays
 * referenced until the endpoint closes, because collecting one clears it
 * too. All listeners share one accept queue, so only the first is read.
 *
 * @module
 */

import type { TlsCertificate } from "../identity/certificate.ts";
import {
  type AdmitResult,
  type ConnectionLease,
  type ConnectionLimiter,
  type ConnectionLimits,
  sharedConnectionLimiter,
} from "../limits/connection_limiter.ts";
import { errorMessage, type Logger } from "../log.ts";
import type { SessionContext } from "../session/session.ts";
import { CLOSE } from "../wire/close_codes.ts";
import type { RoomName } from "../wire/room_name.ts";
import { rejectSession, type ServerWebTransport } from "./close.ts";
import {
  acceptParticipant,
  type WebTransportParticipant,
  type WebTransportParticipantSettings,
} from "./participant.ts";
import { routeSession } from "./routing.ts";

/**
 * Time a connection rejected by a connection limit has to complete its
 * WebTransport upgrade, so that it can be closed with 4429, in ms. Later,
 * the QUIC connection is closed with 4429 instead.
 */
export const REJECTED_UPGRADE_WAIT_MS = 1_000;

/** Source of the listener's certificate and of its replacements. */
export interface CertificateSource {
  readonly current: TlsCertificate;
  /** Registers a listener for new certificates; returns its remover. */
  onRotate(listener: (certificate: TlsCertificate) => void): () => void;
}

/** Receives a session on `/federation`; the federation layer owns it. */
export type FederationSessionHandler = (
  wt: ServerWebTransport,
  conn: Deno.QuicConn,
) => void | Promise<void>;

/** Options of {@linkcode WebTransportServer.listen}. */
export interface WebTransportServerOptions {
  /** Address to bind the UDP socket to. */
  hostname: string;
  /** UDP port; 0 picks a free one. */
  port: number;
  certificates: CertificateSource;
  /** Idle time after which QUIC sends a keep-alive, in ms. */
  keepAliveIntervalMs: number;
  /** Idle time after which QUIC drops the connection, in ms. */
  maxIdleTimeoutMs: number;
  /** Session context shared with the WebSocket bridge. */
  context: SessionContext;
  /**
   * Participant limits, connection limits and the handshake timeout, read
   * per session.
   */
  settings: () =>
    & WebTransportParticipantSettings
    & ConnectionLimits
    & { handshakeTimeoutMs: number };
  /**
   * Connection limiter of the endpoint. By default the one shared with
   * the WebSocket endpoint through `context`.
   */
  limiter?: ConnectionLimiter;
  /** Called once for each connection that fails before its session starts. */
  onAcceptError?: () => void;
  /** Handler of `/federation` sessions; without it they close with 4400. */
  onFederationSession?: FederationSessionHandler;
  logger: Logger;
}

/** The relay's WebTransport endpoint. */
export class WebTransportServer {
  readonly #endpoint: Deno.QuicEndpoint;
  readonly #options: WebTransportServerOptions;
  readonly #logger: Logger;
  /** Every listener made, kept referenced until the endpoint closes. */
  readonly #listeners: Deno.QuicListener[] = [];
  readonly #participants = new Set<WebTransportParticipant>();
  readonly #limiter: ConnectionLimiter;
  readonly #removeRotateListener: () => void;
  readonly #acceptLoop: Promise<void>;
  #closed = false;

  private constructor(options: WebTransportServerOptions) {
    this.#options = options;
    this.#logger = options.logger;
    this.#limiter = options.limiter ?? sharedConnectionLimiter(options.context);
    this.#endpoint = new Deno.QuicEndpoint({
      hostname: options.hostname,
      port: options.port,
    });
    try {
      this.#listen(options.certificates.current);
    } catch (error) {
      this.#endpoint.close();
      throw error;
    }
    this.#removeRotateListener = options.certificates.onRotate(
      (certificate) => this.#rotate(certificate),
    );
    this.#acceptLoop = this.#accept();
  }

  /** Binds the endpoint and starts accepting sessions. */
  static listen(options: WebTransportServerOptions): WebTransportServer {
    return new WebTransportServer(options);
  }

  /** Bound UDP address. */
  get addr(): Deno.NetAddr {
    return this.#endpoint.addr;
  }

  /** Number of participant sessions whose WebTransport is still open. */
  get participantCount(): number {
    return this.#participants.size;
  }

  /**
   * Resolves once every participant session open now has closed its
   * WebTransport session. Callers close the sessions first.
   */
  async drained(): Promise<void> {
    await Promise.all([...this.#participants].map((p) => p.finished));
  }

  /**
   * Closes the endpoint, which ends every remaining connection without a
   * close code. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#removeRotateListener();
    this.#endpoint.close();
    await this.#acceptLoop;
    this.#listeners.length = 0;
  }

  #listen(certificate: TlsCertificate): void {
    const options = this.#options;
    this.#listeners.push(this.#endpoint.listen({
      alpnProtocols: ["h3"],
      cert: certificate.certPem,
      key: certificate.keyPem,
      // Transport options belong on listen(), not accept(), in Deno 2.9.6.
      keepAliveInterval: options.keepAliveIntervalMs,
      maxIdleTimeout: options.maxIdleTimeoutMs,
    }));
  }

  #rotate(certificate: TlsCertificate): void {
    if (this.#closed) return;
    try {
      this.#listen(certificate);
      this.#logger.info("webtransport certificate replaced", {
        hash: certificate.hash.value,
      });
    } catch (error) {
      this.#logger.error("webtransport certificate replacement failed", {
        hash: certificate.hash.value,
        error: errorMessage(error),
      });
    }
  }

  async #accept(): Promise<void> {
    const listener = this.#listeners[0]!;
    while (!this.#closed) {
      let incoming: Deno.QuicIncoming;
      try {
        incoming = await listener.incoming();
      } catch (error) {
        if (this.#closed) return;
        // NOTE: an endpoint that fails here for good would log each time;
        // the logger's repeat limit keeps that bounded.
        this.#acceptFailed("webtransport accept failed", error);
        continue;
      }

      if (this.#options.context.draining) {
        incoming.refuse();
        continue;
      }
      this.#handle(incoming).catch((error) =>
        this.#acceptFailed("webtransport session setup failed", error)
      );
    }
  }

  async #handle(incoming: Deno.QuicIncoming): Promise<void> {
    // Reading remoteAddr on the incoming connection would consume it, so
    // the address comes from the accepted connection.
    const conn = await incoming.accept();
    const remote = `${conn.remoteAddr.hostname}:${conn.remoteAddr.port}`;
    const settings = this.#options.settings();
    const timeoutMs = settings.handshakeTimeoutMs;

    // The connection counts from here, so that connections that never
    // finish the upgrade count against the limits too.
    const admitted = this.#limiter.admit(conn.remoteAddr.hostname, settings);
    if (!admitted.ok) {
      await this.#rejectConnection(conn, remote, admitted);
      return;
    }
    const lease = admitted.lease;

    let wt: ServerWebTransport;
    try {
      wt = await withDeadline(
        upgrade(conn),
        timeoutMs,
        `No WebTransport session within ${timeoutMs} ms`,
      );
    } catch (error) {
      lease.release();
      conn.close({
        closeCode: CLOSE.timeout.code,
        reason: CLOSE.timeout.error,
      });
      throw new Error(`${errorMessage(error)} (remote ${remote})`, {
        cause: error,
      });
    }

    const route = routeSession(wt.url);
    switch (route.kind) {
      case "room":
        this.#startParticipant(
          wt,
          route.room,
          route.queryToken,
          remote,
          lease,
        );
        return;

      case "federation":
        await this.#startFederation(wt, conn, remote, lease);
        return;

      case "invalid":
        this.#options.context.stats.requestsRejected.invalid_room++;
        this.#logger.debug("webtransport session rejected", {
          remote,
          reason: route.message,
        });
        try {
          await rejectSession(wt, CLOSE.badRequest, route.message);
        } finally {
          lease.release();
        }
        return;
    }
  }

  /**
   * Closes a connection over a connection limit with 4429: the session
   * when the upgrade completes within {@linkcode REJECTED_UPGRADE_WAIT_MS},
   * else the QUIC connection. Sends no `error` signal and does not wait
   * for the client, so that a flood costs little.
   */
  async #rejectConnection(
    conn: Deno.QuicConn,
    remote: string,
    rejection: Extract<AdmitResult, { ok: false }>,
  ): Promise<void> {
    this.#options.context.stats.connectionsRejected[rejection.reason]++;
    this.#logger.warn("webtransport connection rejected", {
      remote,
      reason: rejection.reason,
    });

    const { code, error: reason } = CLOSE.rateLimited;
    try {
      const wt = await withDeadline(
        upgrade(conn),
        REJECTED_UPGRADE_WAIT_MS,
        "upgrade of a rejected connection timed out",
      );
      wt.close({ closeCode: code, reason });
    } catch {
      try {
        conn.close({ closeCode: code, reason });
      } catch {
        // The client has closed the connection already.
      }
    }
  }

  #startParticipant(
    wt: ServerWebTransport,
    room: RoomName,
    queryToken: string | undefined,
    remote: string,
    lease: ConnectionLease,
  ): void {
    // NOTE: a bad ?token= is not rejected here, unlike on WebSocket: the
    // session's hello and authentication close it with 4401 or 4403.
    let participant: WebTransportParticipant;
    try {
      participant = acceptParticipant(
        wt,
        this.#options.context,
        this.#options.settings(),
        { room, queryToken, remote, lease },
      );
    } catch (error) {
      lease.release();
      try {
        wt.close({
          closeCode: CLOSE.badRequest.code,
          reason: CLOSE.badRequest.error,
        });
      } catch {
        // Already closed.
      }
      throw error;
    }
    this.#participants.add(participant);
    participant.session.closed.then(() => lease.endHandshake());
    participant.finished.then(() => {
      this.#participants.delete(participant);
      lease.release();
    });
  }

  async #startFederation(
    wt: ServerWebTransport,
    conn: Deno.QuicConn,
    remote: string,
    lease: ConnectionLease,
  ): Promise<void> {
    // The federation handshake counts as a handshake in progress until the
    // handler returns; the link keeps its connection place until it closes.
    wt.closed.catch(() => {}).then(() => lease.release());
    const handler = this.#options.onFederationSession;
    if (handler === undefined) {
      await rejectSession(
        wt,
        CLOSE.badRequest,
        "Federation is not enabled on this relay",
      );
      return;
    }
    try {
      await handler(wt, conn);
      lease.endHandshake();
    } catch (error) {
      this.#logger.error("federation session handler failed", {
        remote,
        error: errorMessage(error),
      });
      try {
        wt.close({ closeCode: CLOSE.badRequest.code, reason: "bad_request" });
      } catch {
        // Already closed.
      }
    }
  }

  #acceptFailed(message: string, error: unknown): void {
    // Closing the endpoint fails the connections still in setup.
    if (this.#closed) return;
    this.#options.onAcceptError?.();
    this.#logger.warn(message, { error: errorMessage(error) });
  }
}

/** Upgrades `conn` to a WebTransport session and waits until it is ready. */
async function upgrade(conn: Deno.QuicConn): Promise<ServerWebTransport> {
  const session = await Deno.upgradeWebTransport(conn);
  // maxDatagramSize is 1024 until the session is ready.
  await session.ready;
  return session;
}

/** Rejects with `message` when `promise` does not settle within `ms`. */
async function withDeadline<T>(
  promise: Promise<T>,
  ms: number,
  message: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  promise.catch(() => {});
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
