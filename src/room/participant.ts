/**
 * A participant of a room, whatever its transport. Transports implement
 * {@linkcode ParticipantSink}; the room only ever talks to that.
 *
 * @module
 */

import type { TransportKind } from "../stats.ts";
import type { CloseReason } from "../wire/close_codes.ts";
import type { ParticipantInfo } from "../wire/signals.ts";
import { QualityState } from "./quality.ts";

/** The sending side of a participant, as a room uses it. */
export interface ParticipantSink {
  readonly kind: TransportKind;
  /**
   * Sends one relay frame and returns whether it was sent. Must not throw
   * or await: a receiver that cannot take the frame drops it, counts the
   * drop by reason itself and returns false.
   */
  sendMedia(frame: Uint8Array): boolean;
  /** Sends one serialized signal. Must not throw. */
  sendSignal(text: string): void;
  /** Closes the session, sending an `error` signal first. Idempotent. */
  close(reason: CloseReason, message: string): void;
}

/** Properties a participant joins with. */
export interface ParticipantInit {
  id: string;
  alias: string | null;
  fingerprint: string | null;
  /** Label of the peer relay for federated participants, else null. */
  relay: string | null;
  sink: ParticipantSink;
}

/** One member of a room. */
export class Participant {
  readonly id: string;
  readonly alias: string | null;
  readonly fingerprint: string | null;
  readonly relay: string | null;
  readonly sink: ParticipantSink;
  /** 16-bit source id, set by the room at join. */
  source = -1;
  /** Time of the join, in ms since the epoch. */
  joinedAt = 0;

  /** Latest quality report and tier, written by the hot path and the timer. */
  readonly quality: QualityState = new QualityState();

  constructor(init: ParticipantInit) {
    this.id = init.id;
    this.alias = init.alias;
    this.fingerprint = init.fingerprint;
    this.relay = init.relay;
    this.sink = init.sink;
  }

  /** Returns this participant as listed in `room_update`. */
  info(): ParticipantInfo {
    return {
      id: this.id,
      source: this.source,
      alias: this.alias,
      fingerprint: this.fingerprint,
      transport: this.sink.kind,
      relay: this.relay,
    };
  }
}
