/**
 * Turns room membership and federation link changes into webhook events.
 * Only participants that joined through this relay emit participant
 * events. Each relay of a federation reports its own, so a receiver that
 * gets events from every relay learns of each participant once.
 *
 * @module
 */

import type { RoomManager } from "../room/manager.ts";
import type { Participant } from "../room/participant.ts";
import type { Room } from "../room/room.ts";
import type { WebhookDispatcher } from "./dispatcher.ts";
import {
  participantPayload,
  type PeerEventName,
  peerPayload,
  roomPayload,
  type WebhookPeer,
} from "./events.ts";

/** Queue key of peer events, apart from every room's key. */
export const PEER_QUEUE_KEY = "peers";

/** Returns the queue key of a room's events. */
export function roomQueueKey(room: string): string {
  return `room:${room}`;
}

/** Options of {@linkcode WebhookNotifier}. */
export interface WebhookNotifierInit {
  rooms: RoomManager;
  dispatcher: WebhookDispatcher;
  /** Fingerprint of this relay, the `relay` field of every payload. */
  relayFingerprint: string;
  /** Clock in ms since the epoch. @default {Date.now} */
  now?: () => number;
}

/** Enqueues webhook events for room and peer changes. */
export class WebhookNotifier {
  readonly #dispatcher: WebhookDispatcher;
  readonly #relay: string;
  readonly #now: () => number;
  readonly #unlisten: () => void;
  /** Fingerprints of peers whose link is up, so each change emits once. */
  readonly #peersUp = new Set<string>();

  constructor(init: WebhookNotifierInit) {
    this.#dispatcher = init.dispatcher;
    this.#relay = init.relayFingerprint;
    this.#now = init.now ?? Date.now;
    this.#unlisten = init.rooms.listen({
      roomCreated: (room) => this.#roomChanged("room_started", room),
      roomRemoved: (room) => this.#roomChanged("room_finished", room),
      participantJoined: (room, participant) =>
        this.#participantChanged("participant_joined", room, participant),
      participantLeft: (room, participant) =>
        this.#participantChanged("participant_left", room, participant),
    });
  }

  /**
   * Enqueues `peer_up` or `peer_down`. A link that replaces another link
   * to the same peer emits nothing, because the peer stayed up.
   */
  peerChanged(event: PeerEventName, peer: WebhookPeer): void {
    const up = event === "peer_up";
    if (this.#peersUp.has(peer.fingerprint) === up) return;
    if (up) this.#peersUp.add(peer.fingerprint);
    else this.#peersUp.delete(peer.fingerprint);

    if (!this.#dispatcher.enabled) return;
    this.#dispatcher.enqueue(
      PEER_QUEUE_KEY,
      peerPayload(event, peer, this.#relay, this.#now()),
    );
  }

  /** Stops listening to room changes. */
  close(): void {
    this.#unlisten();
  }

  #roomChanged(event: "room_started" | "room_finished", room: Room): void {
    if (!this.#dispatcher.enabled) return;
    this.#dispatcher.enqueue(
      roomQueueKey(room.name),
      roomPayload(event, room.name, this.#relay, this.#now()),
    );
  }

  #participantChanged(
    event: "participant_joined" | "participant_left",
    room: Room,
    participant: Participant,
  ): void {
    if (participant.sink.kind === "federated") return;
    if (!this.#dispatcher.enabled) return;
    this.#dispatcher.enqueue(
      roomQueueKey(room.name),
      participantPayload(
        event,
        room.name,
        participant,
        this.#relay,
        this.#now(),
      ),
    );
  }
}
