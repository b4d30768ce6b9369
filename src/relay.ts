/**
 * The relay: owns the listeners, the rooms, the sessions and the
 * background timers, and stops them in order.
 *
 * @module
 */

import type client from "prom-client";
import {
  type Authenticator,
  createAuthenticator,
} from "./auth/authenticator.ts";
import { createHttpApp, type HttpBindings } from "./http/app.ts";
import { createMetricsRegistry } from "./http/metrics.ts";
import { RelayIdentity } from "./identity/identity.ts";
import { createLogger, errorMessage, type Logger } from "./log.ts";
import { type RelayOptions, resolveOptions } from "./options.ts";
import { RoomManager } from "./room/manager.ts";
import { QualityTimer } from "./room/quality_timer.ts";
import type { Room } from "./room/room.ts";
import type {
  ParticipantSession,
  SessionContext,
  SessionSettings,
} from "./session/session.ts";
import { RelayStats } from "./stats.ts";
import { CLOSE } from "./wire/close_codes.ts";

/** Lifecycle states of a relay. */
export type RelayState = "running" | "draining" | "stopped";

/** Options of {@linkcode Relay.start} besides the relay options. */
export interface RelayStartInit {
  /** @default a logger built from `logLevel` and `logFormat` */
  logger?: Logger;
  /** Identity to use instead of the one in the data directory. */
  identity?: RelayIdentity;
}

/** A running relay. */
export class Relay {
  readonly stats: RelayStats = new RelayStats();
  readonly rooms: RoomManager;
  readonly identity: RelayIdentity;
  readonly logger: Logger;
  readonly registry: client.Registry;
  /** Resolves once {@linkcode stop} has finished. */
  readonly closed: Promise<void>;

  #options: RelayOptions;
  #auth: Authenticator;
  #state: RelayState = "running";
  #sessions = new Set<ParticipantSession>();
  #server: Deno.HttpServer<Deno.NetAddr> | null = null;
  #serverAbort = new AbortController();
  #quality: QualityTimer;
  #stopping: Promise<void> | null = null;
  #resolveClosed!: () => void;

  private constructor(
    options: RelayOptions,
    identity: RelayIdentity,
    auth: Authenticator,
    logger: Logger,
  ) {
    this.#options = options;
    this.identity = identity;
    this.#auth = auth;
    this.logger = logger;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    this.rooms = new RoomManager(options, this.stats, {
      shardCount: options.roomShards,
      qualityStaleMs: options.qualityStaleMs,
    });
    this.#quality = new QualityTimer(this.rooms, this.stats);
    this.registry = createMetricsRegistry({
      stats: this.stats,
      rooms: this.rooms,
      sessionCount: () => this.#sessions.size,
    });
  }

  /**
   * Starts a relay: loads or creates the identity, then listens. Options
   * not given take their defaults; port 0 picks a free port.
   */
  static async start(
    options: Partial<RelayOptions> = {},
    init: RelayStartInit = {},
  ): Promise<Relay> {
    const resolved = resolveOptions(options);
    const logger = init.logger ??
      createLogger({ level: resolved.logLevel, format: resolved.logFormat });
    const identity = init.identity ??
      await RelayIdentity.loadOrCreate(resolved.dataDir);
    const auth = await createAuthenticator({
      tokenSecret: resolved.tokenSecret,
      authUrl: resolved.authUrl,
      authTimeoutMs: resolved.authTimeoutMs,
      logger: logger.child("auth"),
    });

    const relay = new Relay(resolved, identity, auth, logger);
    try {
      await relay.#listen();
    } catch (error) {
      await relay.stop();
      throw error;
    }
    return relay;
  }

  /** The options in force. */
  get options(): Readonly<RelayOptions> {
    return this.#options;
  }

  get state(): RelayState {
    return this.#state;
  }

  /** Port of the HTTP listener. */
  get httpPort(): number {
    return this.#server?.addr.port ?? 0;
  }

  /** Base URL of the HTTP listener, with a host clients can reach. */
  get httpUrl(): string {
    return `http://${connectHost(this.#options.host)}:${this.httpPort}`;
  }

  /** Number of open sessions, joined or in the handshake. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  async #listen(): Promise<void> {
    const options = this.#options;
    const currentOptions = () => this.#options;
    const currentAuth = () => this.#auth;
    const isDraining = () => this.#state !== "running";
    const settings: SessionSettings = {
      get handshakeTimeoutMs() {
        return currentOptions().handshakeTimeoutMs;
      },
      get maxSignalBytes() {
        return currentOptions().maxSignalBytes;
      },
    };

    const context: SessionContext = {
      rooms: this.rooms,
      get auth() {
        return currentAuth();
      },
      stats: this.stats,
      logger: this.logger.child("session"),
      settings,
      relayFingerprint: this.identity.fingerprint,
      get draining() {
        return isDraining();
      },
      track: (session) => this.#sessions.add(session),
      untrack: (session) => this.#sessions.delete(session),
    };

    const app = createHttpApp({
      context,
      rooms: this.rooms,
      registry: this.registry,
      settings: () => this.#options,
      identity: this.identity,
      webTransportInfo: () => Promise.resolve(null),
      federationPeers: () => ({ peers: [] }),
      roomDetails: (room: Room) => ({ quality_tier: room.quality.tier }),
    });

    const ready = Promise.withResolvers<void>();
    this.#server = Deno.serve(
      {
        hostname: options.host,
        port: options.httpPort,
        signal: this.#serverAbort.signal,
        onListen: () => ready.resolve(),
        onError: (error) => {
          this.logger.error("http handler failed", {
            error: errorMessage(error),
          });
          return Response.json(
            { error: { code: "internal", message: "Internal error" } },
            { status: 500 },
          );
        },
      },
      (request, info) =>
        app.fetch(
          request,
          { remoteAddr: info.remoteAddr } satisfies HttpBindings,
        ),
    );
    await ready.promise;

    this.#quality.start(options.qualityIntervalMs);
    this.logger.info("relay started", {
      http: this.httpUrl,
      websocket: `ws://${connectHost(options.host)}:${this.httpPort}/ws/<room>`,
      fingerprint: this.identity.fingerprint,
    });
  }

  /**
   * Stops the relay: rejects new sessions, closes every session with 4503,
   * waits for them up to `shutdownTimeoutMs`, then closes the listeners.
   * Safe to call more than once.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    this.#state = "draining";
    this.#quality.stop();
    const sessions = [...this.#sessions];
    this.logger.info("relay stopping", { sessions: sessions.length });

    for (const session of sessions) {
      session.close(CLOSE.shuttingDown, "The relay is shutting down");
    }

    const deadline = this.#options.shutdownTimeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), deadline);
    });

    const server = this.#server;
    const drained = server === null
      ? Promise.resolve()
      : server.shutdown().catch((error) => {
        this.logger.warn("http shutdown failed", {
          error: errorMessage(error),
        });
      });
    const result = await Promise.race([
      drained.then(() => "done" as const),
      timeout,
    ]);
    if (result === "timeout") {
      this.logger.warn("shutdown timed out; closing remaining connections", {
        timeout_ms: deadline,
      });
      this.#serverAbort.abort();
      await server?.finished.catch(() => {});
    }
    clearTimeout(timer);

    this.#state = "stopped";
    this.logger.info("relay stopped");
    this.#resolveClosed();
  }
}

/** Returns a host name clients can connect to for a bind address. */
function connectHost(host: string): string {
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return host.includes(":") ? `[${host}]` : host;
}
