/**
 * The participant protocol, independent of the transport: handshake,
 * authentication, join, signals, media, token expiry and close. WebSocket
 * and WebTransport adapters feed it frames and carry out its sends.
 *
 * @module
 */

import type { Authenticator, AuthOutcome } from "../auth/authenticator.ts";
import { errorMessage, type Logger } from "../log.ts";
import type { RoomManager } from "../room/manager.ts";
import { Participant, type ParticipantSink } from "../room/participant.ts";
import { directiveFor } from "../room/quality.ts";
import type { Room } from "../room/room.ts";
import type { AuthResultLabel, RelayStats, TransportKind } from "../stats.ts";
import { CLOSE, type CloseReason } from "../wire/close_codes.ts";
import {
  checkMediaPacket,
  hasQualityReport,
  QUALITY_REPORT_BYTES,
} from "../wire/media.ts";
import type { RoomName } from "../wire/room_name.ts";
import { RATE, RateWindow } from "./rate_window.ts";
import {
  type ClientSignal,
  parseClientSignal,
  type RelaySignal,
} from "../wire/signals.ts";

/** Settings a session reads when it needs them, so a reload applies. */
export interface SessionSettings {
  handshakeTimeoutMs: number;
  maxSignalBytes: number;
  maxMediaPacketsPerSecond: number;
  maxMediaBytesPerSecond: number;
  maxSignalsPerSecond: number;
  rateLimitGraceMs: number;
}

/** Shared relay state and services every session uses. */
export interface SessionContext {
  readonly rooms: RoomManager;
  readonly auth: Authenticator;
  readonly stats: RelayStats;
  readonly logger: Logger;
  readonly settings: SessionSettings;
  /** The relay's identity fingerprint, sent in `welcome`. */
  readonly relayFingerprint: string;
  /** True while the relay drains before it stops. */
  readonly draining: boolean;
  /** Called once when a session starts and once when it ends. */
  track(session: ParticipantSession): void;
  untrack(session: ParticipantSession): void;
}

/** The transport side of a session: sends and the final close. */
export interface SessionTransport {
  readonly kind: Exclude<TransportKind, "federated">;
  /** Sends one relay frame; false when dropped (the transport counts why). */
  sendMedia(frame: Uint8Array): boolean;
  sendSignal(text: string): void;
  /** Ends the transport with `code` and `reason`. Called once. */
  closeTransport(code: number, reason: string): void;
}

/** Session states, in order. */
export type SessionState = "handshake" | "authenticating" | "joined" | "closed";

/** Options of {@linkcode ParticipantSession}. */
export interface SessionInit {
  room: RoomName;
  /** Token from the `?token=` query parameter, if any. */
  queryToken?: string;
  /** Peer address for logs. */
  remote?: string;
}

let sessionCounter = 0;

/** Returns a participant id unique within this process. */
function nextParticipantId(): string {
  sessionCounter++;
  const random = crypto.getRandomValues(new Uint32Array(1))[0]!;
  return `p${sessionCounter.toString(36)}${
    random.toString(36).padStart(7, "0")
  }`;
}

/** One participant's session, from connect to close. */
export class ParticipantSession implements ParticipantSink {
  readonly id: string = nextParticipantId();
  readonly kind: Exclude<TransportKind, "federated">;
  readonly roomName: RoomName;
  readonly remote: string;
  /** Resolves once the session is closed and has left its room. */
  readonly closed: Promise<void>;
  /** Resolves once the transport reports that the connection is gone. */
  readonly transportClosed: Promise<void>;

  readonly #context: SessionContext;
  readonly #transport: SessionTransport;
  readonly #queryToken: string | undefined;
  readonly #logger: Logger;
  readonly #startedAt = performance.now();
  #state: SessionState = "handshake";
  #room: Room | null = null;
  #participant: Participant | null = null;
  #handshakeTimer: ReturnType<typeof setTimeout> | undefined;
  #expiryTimer: ReturnType<typeof setTimeout> | undefined;
  #resolveClosed!: () => void;
  readonly #mediaRate = new RateWindow();
  readonly #signalRate = new RateWindow();
  #resolveTransportClosed!: () => void;

  constructor(
    context: SessionContext,
    transport: SessionTransport,
    init: SessionInit,
  ) {
    this.#context = context;
    this.#transport = transport;
    this.kind = transport.kind;
    this.roomName = init.room;
    this.remote = init.remote ?? "unknown";
    this.#queryToken = init.queryToken;
    this.#logger = context.logger;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    this.transportClosed = new Promise((resolve) =>
      this.#resolveTransportClosed = resolve
    );

    context.track(this);
    this.#handshakeTimer = setTimeout(() => {
      this.#handshakeTimer = undefined;
      this.close(CLOSE.timeout, "No hello within the handshake timeout");
    }, context.settings.handshakeTimeoutMs);
  }

  get state(): SessionState {
    return this.#state;
  }

  /** The participant, once joined. */
  get participant(): Participant | null {
    return this.#participant;
  }

  /** Handles one signal frame's text. */
  handleSignal(text: string): void {
    if (this.#state === "closed") return;

    // A UTF-16 length over the limit may still fit in bytes only when the
    // text is ASCII, and then the two lengths are equal.
    const limit = this.#context.settings.maxSignalBytes;
    if (text.length > limit || utf8Length(text, limit) > limit) {
      this.close(
        CLOSE.tooLarge,
        `Signal frame over ${limit} bytes, the maximum`,
      );
      return;
    }

    const settings = this.#context.settings;
    const rate = this.#signalRate.take(
      performance.now(),
      0,
      settings.maxSignalsPerSecond,
      Number.POSITIVE_INFINITY,
      settings.rateLimitGraceMs,
    );
    if (rate !== RATE.ok) {
      this.#context.stats.droppedSignals++;
      if (rate === RATE.close) {
        this.close(
          CLOSE.rateLimited,
          `Over ${settings.maxSignalsPerSecond} signals per second for ${settings.rateLimitGraceMs} ms`,
        );
      }
      return;
    }

    const parsed = parseClientSignal(text);
    if (!parsed.ok) {
      this.close(CLOSE.badRequest, parsed.message);
      return;
    }
    this.#dispatch(parsed.signal);
  }

  /**
   * Handles one media packet: the hot path. Checks the header, stores a
   * quality report if present, and forwards.
   */
  handleMedia(packet: Uint8Array): void {
    const participant = this.#participant;
    const stats = this.#context.stats;
    if (participant === null) {
      if (this.#state === "handshake") {
        this.close(CLOSE.badRequest, "Media before hello");
      } else if (this.#state === "authenticating") {
        stats.dropped.not_joined++;
      }
      return;
    }

    stats.received[this.kind]++;
    const settings = this.#context.settings;
    const rate = this.#mediaRate.take(
      performance.now(),
      packet.length,
      settings.maxMediaPacketsPerSecond,
      settings.maxMediaBytesPerSecond,
      settings.rateLimitGraceMs,
    );
    if (rate !== RATE.ok) {
      stats.dropped.rate_limited++;
      if (rate === RATE.close) {
        this.close(
          CLOSE.rateLimited,
          `Over ${settings.maxMediaPacketsPerSecond} packets or ${settings.maxMediaBytesPerSecond} bytes per second for ${settings.rateLimitGraceMs} ms`,
        );
      }
      return;
    }

    const reason = checkMediaPacket(packet);
    if (reason !== null) {
      stats.dropped[reason]++;
      return;
    }

    if (hasQualityReport(packet)) {
      participant.quality.storeReport(
        packet,
        packet.length - QUALITY_REPORT_BYTES,
      );
    }

    this.#room!.forward(participant, packet);
  }

  /** Handles the transport going away without a close from the relay. */
  handleTransportClosed(): void {
    this.#finish();
    this.#resolveTransportClosed();
  }

  // ParticipantSink: the room sends through these.

  sendMedia(frame: Uint8Array): boolean {
    return this.#transport.sendMedia(frame);
  }

  sendSignal(text: string): void {
    if (this.#state === "closed") return;
    this.#transport.sendSignal(text);
  }

  /**
   * Closes the session: sends `error` (unless the close is normal), closes
   * the transport with the code, and leaves the room. Idempotent.
   */
  close(reason: CloseReason, message: string): void {
    if (this.#state === "closed") return;

    if (reason.code !== CLOSE.normal.code) {
      this.#send({ type: "error", code: reason.error, message });
    }
    this.#context.stats.countClose(reason.code);
    this.#logger.debug("session closing", {
      session: this.id,
      room: this.roomName,
      code: reason.code,
      reason: message,
    });

    const wireReason = reason.code === CLOSE.normal.code ? "" : reason.error;
    this.#finish();
    try {
      this.#transport.closeTransport(reason.code, wireReason);
    } catch (error) {
      this.#logger.debug("transport close failed", {
        session: this.id,
        error: errorMessage(error),
      });
    }
  }

  #send(signal: RelaySignal): void {
    this.#transport.sendSignal(JSON.stringify(signal));
  }

  #dispatch(signal: ClientSignal): void {
    switch (signal.type) {
      case "hello":
      case "auth":
        if (this.#state !== "handshake") {
          this.close(
            CLOSE.badRequest,
            `Unexpected ${signal.type}: already sent`,
          );
          return;
        }
        this.#state = "authenticating";
        this.#join(
          signal.token ?? this.#queryToken,
          signal.type === "hello" ? signal.alias : undefined,
        ).catch((error) => this.#fail("join", error));
        return;

      case "ping":
        this.#send({ type: "pong", ts: signal.ts });
        return;

      case "hangup":
        this.close(CLOSE.normal, signal.reason ?? "hangup");
        return;

      case "refresh":
        if (this.#state !== "joined") {
          this.close(CLOSE.badRequest, "Unexpected refresh before welcome");
          return;
        }
        this.#refresh(signal.token).catch((error) =>
          this.#fail("refresh", error)
        );
        return;

      case "unknown":
        this.#context.stats.unknownSignals++;
        return;
    }
  }

  async #join(
    token: string | undefined,
    alias: string | undefined,
  ): Promise<void> {
    const context = this.#context;
    const outcome = await this.#authenticate(token, "authenticating");
    // The transport may have closed while the result travelled back here.
    if (outcome === null || this.#state !== "authenticating") return;
    // The verifier allows clock skew on `exp`; a token already past it
    // would be welcomed only to be closed at once.
    if (outcome.expiresAt !== null && outcome.expiresAt <= Date.now()) {
      this.#countAuth("expired");
      this.close(CLOSE.unauthorized, "Token expired; request a new token");
      return;
    }
    if (context.auth.required) this.#countAuth("ok");

    if (context.draining) {
      this.close(CLOSE.shuttingDown, "The relay is shutting down");
      return;
    }

    const participant = new Participant({
      id: this.id,
      alias: alias ?? outcome.identity.alias,
      fingerprint: outcome.identity.fingerprint ?? outcome.identity.subject,
      relay: null,
      sink: this,
    });

    // The welcome goes out inside the join, after the limit checks and
    // before the room_update that the join sends to everyone.
    const result = context.rooms.join(this.roomName, participant, (room) => {
      clearTimeout(this.#handshakeTimer);
      this.#handshakeTimer = undefined;
      this.#room = room;
      this.#participant = participant;
      this.#state = "joined";
      this.#send({
        type: "welcome",
        participant_id: this.id,
        room: this.roomName,
        relay: context.relayFingerprint,
      });
    });
    if (!result.ok) {
      this.close(CLOSE.roomFull, result.message);
      return;
    }

    const tier = result.room.quality.tier;
    if (tier !== null) this.#send(directiveFor(tier));

    this.#armExpiry(outcome.expiresAt);
    context.stats.onHandshake((performance.now() - this.#startedAt) / 1000);
    this.#logger.debug("participant joined", {
      session: this.id,
      room: this.roomName,
      transport: this.kind,
      remote: this.remote,
    });
  }

  async #refresh(token: string): Promise<void> {
    const outcome = await this.#authenticate(token, "joined");
    if (outcome !== null && this.#state === "joined") {
      this.#armExpiry(outcome.expiresAt);
    }
  }

  /** Logs an unexpected error of an asynchronous step and closes with 1011. */
  #fail(step: string, error: unknown): void {
    this.#logger.error(`session ${step} failed`, {
      session: this.id,
      room: this.roomName,
      error: errorMessage(error),
    });
    this.close(CLOSE.internalError, `Internal error during ${step}`);
  }

  /**
   * Checks `token` for this room. Returns the accepted outcome, or null
   * after closing the session when the token is rejected or the check
   * fails, and also when the session left `expected` state meanwhile.
   */
  async #authenticate(
    token: string | undefined,
    expected: SessionState,
  ): Promise<Extract<AuthOutcome, { ok: true }> | null> {
    let outcome: AuthOutcome;
    try {
      outcome = await this.#context.auth.authenticate(token, this.roomName);
    } catch (error) {
      this.#logger.error("authentication failed", {
        session: this.id,
        error: errorMessage(error),
      });
      this.#countAuth("unavailable");
      this.close(CLOSE.unauthorized, "Authentication failed");
      return null;
    }
    if (this.#state !== expected) return null;

    if (!outcome.ok) {
      this.#countAuth(outcome.result);
      this.close(
        outcome.code === "forbidden" ? CLOSE.forbidden : CLOSE.unauthorized,
        outcome.message,
      );
      return null;
    }
    return outcome;
  }

  #armExpiry(expiresAt: number | null): void {
    clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
    if (expiresAt === null) return;

    // setTimeout takes at most 2^31-1 ms; a later expiry re-arms on firing.
    const delay = Math.min(Math.max(0, expiresAt - Date.now()), 2 ** 31 - 1);
    this.#expiryTimer = setTimeout(() => {
      this.#expiryTimer = undefined;
      if (Date.now() < expiresAt) {
        this.#armExpiry(expiresAt);
        return;
      }
      this.close(CLOSE.unauthorized, "Token expired; send refresh before exp");
    }, delay);
  }

  #countAuth(result: AuthResultLabel): void {
    this.#context.stats.auth[result]++;
  }

  /** Leaves the room and releases timers. Idempotent. */
  #finish(): void {
    if (this.#state === "closed") return;

    this.#state = "closed";
    clearTimeout(this.#handshakeTimer);
    clearTimeout(this.#expiryTimer);
    this.#handshakeTimer = undefined;
    this.#expiryTimer = undefined;

    const room = this.#room;
    const participant = this.#participant;
    this.#room = null;
    this.#participant = null;
    if (room !== null && participant !== null) {
      this.#context.rooms.leave(room, participant);
      this.#logger.debug("participant left", {
        session: this.id,
        room: this.roomName,
      });
    }
    this.#context.untrack(this);
    this.#resolveClosed();
  }
}

/** Returns the UTF-8 length of `text`, stopping early once over `limit`. */
function utf8Length(text: string, limit: number): number {
  let bytes = 0;
  for (let i = 0; i < text.length && bytes <= limit; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit < 0xdc00) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}
