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
import { DataDirLock } from "./identity/data_dir_lock.ts";
import { CertificateManager } from "./identity/certificate_manager.ts";
import {
  createSignedCertificateHashes,
  type SignedCertificateHashes,
} from "./identity/certificate_hashes.ts";
import { createLogger, errorMessage, type Logger } from "./log.ts";
import { type RelayOptions, resolveOptions } from "./options.ts";
import { ConnectionLimiter } from "./limits/connection_limiter.ts";
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
import { WebTransportServer } from "./webtransport/server.ts";
import { Federation } from "./federation/federation.ts";
import { registerFederationMetrics } from "./federation/metrics.ts";
import {
  AUTH_OPTIONS,
  optionName,
  planReload,
  RESTART_ONLY_OPTIONS,
} from "./reload_plan.ts";
import {
  certificateHostnames,
  connectHost,
  hostnameOf,
  webTransportUrl,
} from "./addresses.ts";
import { warnIfUnsigned, webhookSettings } from "./webhooks/options.ts";
import {
  checkWebhookSettings,
  WebhookDispatcher,
} from "./webhooks/dispatcher.ts";
import { registerWebhookMetrics } from "./webhooks/metrics.ts";
import { WebhookNotifier } from "./webhooks/notifier.ts";

export { RESTART_ONLY_OPTIONS };

/** Lifecycle states of a relay. */
export type RelayState = "running" | "draining" | "stopped";

/** Options of {@linkcode Relay.start} besides the relay options. */
export interface RelayStartInit {
  /** @default a logger built from `logLevel` and `logFormat` */
  logger?: Logger;
  /** Identity to use instead of the one in the data directory. */
  identity?: RelayIdentity;
  /**
   * WebTransport certificates to use instead of a manager made from the
   * `cert`, `key` and `dataDir` options. The relay starts its rotation
   * timer and closes it on stop.
   */
  certificates?: CertificateManager;
}

/** Body of `GET /api/webtransport`. */
export interface WebTransportInfo extends SignedCertificateHashes {
  /**
   * URL of the participant endpoint up to the room: clients append one
   * percent-encoded room name, as in `https://host:4433/room/lobby`.
   */
  url: string;
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
  #certificates: CertificateManager | null;
  #webTransport: WebTransportServer | null = null;
  readonly #federation: Federation;
  readonly #webhooks: WebhookDispatcher;
  readonly #webhookNotifier: WebhookNotifier;
  /** Settles when the latest reload has finished; reloads run one by one. */
  #reloadQueue: Promise<void> = Promise.resolve();
  /** Last signed hash list, reused until the hashes change. */
  #signedHashes: SignedCertificateHashes | null = null;
  #stopping: Promise<void> | null = null;
  /** Lock on the data directory, released when the relay stops. */
  #lock: DataDirLock | null = null;
  #resolveClosed!: () => void;

  private constructor(
    options: RelayOptions,
    identity: RelayIdentity,
    auth: Authenticator,
    logger: Logger,
    certificates: CertificateManager | null,
  ) {
    this.#options = options;
    this.#certificates = certificates;
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
    this.#webhooks = new WebhookDispatcher(
      webhookSettings(options),
      logger.child("webhooks"),
    );
    this.#webhookNotifier = new WebhookNotifier({
      rooms: this.rooms,
      dispatcher: this.#webhooks,
      relayFingerprint: identity.fingerprint,
    });
    registerWebhookMetrics(this.registry, this.#webhooks);
    warnIfUnsigned(options, logger);
    this.#federation = new Federation({
      options: options.federation,
      identity,
      rooms: this.rooms,
      stats: this.stats,
      logger: logger.child("federation"),
      rateLimit: options.federationRateLimit,
      onPeerChange: (event, peer) =>
        this.#webhookNotifier.peerChanged(event, peer),
    });
    registerFederationMetrics(this.registry, this.#federation);
  }

  /** The federation layer: links to peer relays and bridged rooms. */
  get federation(): Federation {
    return this.#federation;
  }

  /** The webhook queue, with its counters. */
  get webhooks(): WebhookDispatcher {
    return this.#webhooks;
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
    const lock = await describeFailure(
      `Cannot use the data directory ${resolved.dataDir} (--data-dir)`,
      () => DataDirLock.acquire(resolved.dataDir),
    );
    try {
      return await Relay.#startLocked(resolved, init, lock);
    } catch (error) {
      lock.release();
      throw error;
    }
  }

  static async #startLocked(
    resolved: RelayOptions,
    init: RelayStartInit,
    lock: DataDirLock,
  ): Promise<Relay> {
    const logger = init.logger ??
      createLogger({ level: resolved.logLevel, format: resolved.logFormat });
    const identity = init.identity ??
      await describeFailure(
        `Cannot use the data directory ${resolved.dataDir} (--data-dir)`,
        () => RelayIdentity.loadOrCreate(resolved.dataDir),
      );
    const auth = await createAuthenticator({
      tokenSecret: resolved.tokenSecret,
      authUrl: resolved.authUrl,
      authTimeoutMs: resolved.authTimeoutMs,
      logger: logger.child("auth"),
    });

    let certificates: CertificateManager | null = null;
    if (!resolved.noWebTransport) {
      certificates = init.certificates ?? await CertificateManager.create({
        dataDir: resolved.dataDir,
        certFile: resolved.cert,
        keyFile: resolved.key,
        hostnames: certificateHostnames(resolved.host),
        logger: logger.child("certificates"),
      });
    }

    const relay = new Relay(resolved, identity, auth, logger, certificates);
    relay.#lock = lock;
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

  /** UDP port of the WebTransport endpoint; 0 when it is disabled. */
  get wtPort(): number {
    return this.#webTransport?.addr.port ?? 0;
  }

  /**
   * URL of the WebTransport participant endpoint up to the room name, with
   * a host clients can reach; null when WebTransport is disabled.
   */
  get wtUrl(): string | null {
    if (this.#webTransport === null) return null;
    return webTransportUrl(connectHost(this.#options.host), this.wtPort);
  }

  /**
   * Body of `GET /api/webtransport`: the endpoint URL and the certificate
   * hashes signed with the identity key; null when WebTransport is
   * disabled. The URL's host is `host` (a Host header) when given, else
   * the bind address made reachable.
   */
  async webTransportInfo(host?: string): Promise<WebTransportInfo | null> {
    const certificates = this.#certificates;
    if (this.#webTransport === null || certificates === null) return null;

    const hashes = certificates.hashes;
    let signed = this.#signedHashes;
    if (signed === null || !sameHashes(signed, hashes)) {
      signed = await createSignedCertificateHashes(this.identity, hashes);
      this.#signedHashes = signed;
    }

    const urlHost = hostnameOf(host) ?? connectHost(this.#options.host);
    return { url: webTransportUrl(urlHost, this.wtPort), ...signed };
  }

  /**
   * Applies new options while the relay runs; main.ts calls it on SIGHUP
   * with the flags, environment and config file read again. `options`
   * replaces the options in force, with defaults for what it leaves out;
   * without it the options stay. Either way the operator's certificate
   * files are read again. Tokens and secrets, limits, the log level,
   * federation peers and bridged rooms, and webhooks take effect at once.
   * Running sessions stay up, and limits apply to new joins. The
   * {@linkcode RESTART_ONLY_OPTIONS} keep their running values, with a
   * warning that names them. Reloads run one at a time.
   *
   * Throws, and changes nothing, when the new token settings, webhook
   * settings or certificate files are invalid.
   */
  reload(options?: Partial<RelayOptions>): Promise<void> {
    const run = this.#reloadQueue.then(() => this.#reload(options));
    this.#reloadQueue = run.catch(() => {});
    return run;
  }

  async #reload(overrides: Partial<RelayOptions> | undefined): Promise<void> {
    if (this.#state !== "running") {
      this.logger.warn("reload ignored: the relay is stopping");
      return;
    }

    const { next, needRestart, changed } = planReload(
      this.#options,
      overrides,
    );

    // Steps that can fail run first, so that a failure changes nothing.
    const auth = AUTH_OPTIONS.some((field) => changed.includes(field))
      ? await createAuthenticator({
        tokenSecret: next.tokenSecret,
        authUrl: next.authUrl,
        authTimeoutMs: next.authTimeoutMs,
        logger: this.logger.child("auth"),
      })
      : null;
    checkWebhookSettings(webhookSettings(next));
    await this.#certificates?.reload();
    // A stop that began during the awaits has stopped federation and
    // timers, which the steps below would start again.
    if (this.#state !== "running") {
      this.logger.warn("reload ignored: the relay is stopping");
      return;
    }

    this.#options = next;
    if (auth !== null) this.#auth = auth;
    this.rooms.setLimits({
      maxParticipantsPerRoom: next.maxParticipantsPerRoom,
      maxRooms: next.maxRooms,
      maxParticipants: next.maxParticipants,
    });
    this.logger.setLevel(next.logLevel);
    const federationChanged = changed.includes("federation") ||
      changed.includes("federationRateLimit");
    if (federationChanged && this.#certificates !== null) {
      this.#federation.reconfigure(next.federation, next.federationRateLimit);
    }
    if (changed.includes("qualityIntervalMs")) {
      this.#quality.start(next.qualityIntervalMs);
    }
    this.#webhooks.configure(webhookSettings(next));
    if (changed.includes("webhookUrl") || changed.includes("webhookSecret")) {
      warnIfUnsigned(next, this.logger);
    }

    if (needRestart.length > 0) {
      this.logger.warn(
        "options that need a restart keep their running values",
        {
          options: needRestart.map(optionName).join(","),
        },
      );
    }
    this.logger.info("reloaded", {
      changed: changed.length === 0
        ? "none"
        : changed.map(optionName).join(","),
    });
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
      get maxMediaPacketsPerSecond() {
        return currentOptions().maxMediaPacketsPerSecond;
      },
      get maxMediaBytesPerSecond() {
        return currentOptions().maxMediaBytesPerSecond;
      },
      get maxSignalsPerSecond() {
        return currentOptions().maxSignalsPerSecond;
      },
      get rateLimitGraceMs() {
        return currentOptions().rateLimitGraceMs;
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

    // WebSocket and WebTransport count connections of one address together.
    const limiter = new ConnectionLimiter();
    const app = createHttpApp({
      context,
      limiter,
      rooms: this.rooms,
      registry: this.registry,
      settings: () => this.#options,
      identity: this.identity,
      webTransportInfo: (host) => this.webTransportInfo(host),
      federationPeers: () => this.#federation.describePeers(),
      roomDetails: (room: Room) => ({ quality_tier: room.quality.tier }),
    });

    const certificates = this.#certificates;
    if (certificates !== null) {
      this.#webTransport = listenFailure(
        `Cannot listen for WebTransport on UDP ${options.host}:${options.wtPort} (--host, --wt-port)`,
        () =>
          WebTransportServer.listen({
            hostname: options.host,
            port: options.wtPort,
            certificates,
            keepAliveIntervalMs: options.pingIntervalMs,
            maxIdleTimeoutMs: options.livenessTimeoutMs,
            context,
            limiter,
            settings: () => this.#options,
            onAcceptError: () => this.stats.webTransportAcceptErrors++,
            onFederationSession: (wt, conn) =>
              this.#federation.acceptSession(
                wt,
                `${conn.remoteAddr.hostname}:${conn.remoteAddr.port}`,
              ),
            logger: this.logger.child("webtransport"),
          }),
      );
      certificates.start();
    }

    const ready = Promise.withResolvers<void>();
    this.#server = listenFailure(
      `Cannot listen for HTTP on TCP ${options.host}:${options.httpPort} (--host, --http-port)`,
      () =>
        Deno.serve(
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
        ),
    );
    await ready.promise;

    this.#quality.start(options.qualityIntervalMs);
    if (certificates !== null) this.#federation.start();
    this.logger.info("relay started", {
      http: this.httpUrl,
      websocket: `ws://${connectHost(options.host)}:${this.httpPort}/ws/<room>`,
      webtransport: this.wtUrl === null ? "disabled" : `${this.wtUrl}<room>`,
      certificate_hash: certificates?.current.hash.value,
      fingerprint: this.identity.fingerprint,
      // The URLs name a host to connect to, which for 0.0.0.0 is loopback.
      listen: options.host,
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
    const startedAt = performance.now();
    this.#state = "draining";
    this.#quality.stop();
    const sessions = [...this.#sessions];
    this.logger.info("relay stopping", { sessions: sessions.length });

    this.#federation.stop();
    for (const session of sessions) {
      session.close(CLOSE.shuttingDown, "The relay is shutting down");
    }

    const deadline = this.#options.shutdownTimeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), deadline);
    });

    // Deno.serve's shutdown() closes open WebSockets with 1001, which would
    // replace the 4503 close, so it waits until the sessions' transports
    // are closed. WebTransport sessions wait up to PEER_CLOSE_WAIT_MS for
    // their clients before they close with 4503.
    const server = this.#server;
    const drained = (async () => {
      await Promise.all([
        ...sessions.map((session) => session.transportClosed),
        this.#webTransport?.drained(),
      ]);
      await server?.shutdown().catch((error) => {
        this.logger.warn("http shutdown failed", {
          error: errorMessage(error),
        });
      });
    })();
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
    await this.#webTransport?.close();
    this.#certificates?.close();
    this.#lock?.release();

    // Events of the sessions just closed get what is left of the deadline.
    const remainingMs = deadline - (performance.now() - startedAt);
    await this.#webhooks.close(Math.max(0, remainingMs));
    this.#webhookNotifier.close();

    this.#state = "stopped";
    this.logger.info("relay stopped");
    this.#resolveClosed();
  }
}

/** Returns whether two hash lists are equal in order and value. */
function sameHashes(
  signed: SignedCertificateHashes,
  hashes: readonly { value: string }[],
): boolean {
  const current = signed.certificateHashes;
  return current.length === hashes.length &&
    current.every((hash, i) => hash.value === hashes[i]!.value);
}

/** Runs `listen`, rethrowing a failure with `context` in front of it. */
function listenFailure<T>(context: string, listen: () => T): T {
  try {
    return listen();
  } catch (error) {
    const hint = error instanceof Deno.errors.AddrInUse
      ? "; another process uses this port, so choose another one"
      : "";
    throw new Error(`${context}: ${errorMessage(error)}${hint}`, {
      cause: error,
    });
  }
}

/** Awaits `step`, rethrowing a failure with `context` in front of it. */
async function describeFailure<T>(
  context: string,
  step: () => Promise<T>,
): Promise<T> {
  try {
    return await step();
  } catch (error) {
    throw new Error(`${context}: ${errorMessage(error)}`, { cause: error });
  }
}
