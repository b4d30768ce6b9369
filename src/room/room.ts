/**
 * A room: its participants in join order, the immutable snapshot of local
 * receivers that the hot path iterates, and source id allocation.
 *
 * @module
 */

import type { RelayStats } from "../stats.ts";
import type { RoomName } from "../wire/room_name.ts";
import type { RoomUpdateSignal } from "../wire/signals.ts";
import { buildRelayFrame } from "../wire/media.ts";
import type { Participant } from "./participant.ts";
import { RoomQuality } from "./quality.ts";

/** Size of the source id space. */
const SOURCE_ID_SPACE = 0x10000;

/**
 * Receives every packet forwarded in a room, after local fan-out; the
 * federation layer uses it to pass packets on to peers.
 */
export type MediaTap = (
  room: Room,
  from: Participant,
  packet: Uint8Array,
) => void;

/** A room of participants. Created and removed by the room manager. */
export class Room {
  readonly name: RoomName;
  /** Participants by id, in join order. */
  readonly #participants = new Map<string, Participant>();
  /**
   * Local participants, rebuilt as a new array on every join and leave and
   * never mutated, so a leave during a fan-out cannot disturb the loop.
   */
  senders: readonly Participant[] = [];
  /** Number of participants that joined through this relay. */
  localCount = 0;
  /** Set while the room is bridged to peer relays. */
  mediaTap: MediaTap | null = null;
  /** Time the room was created, in ms since the epoch. */
  readonly createdAt: number;
  /** The room's quality tier, recomputed by the quality timer. */
  readonly quality: RoomQuality;

  readonly #stats: RelayStats;
  #nextSource = 0;

  constructor(
    name: RoomName,
    stats: RelayStats,
    qualityStaleMs = 10_000,
    now = Date.now(),
  ) {
    this.name = name;
    this.#stats = stats;
    this.createdAt = now;
    this.quality = new RoomQuality({ staleMs: qualityStaleMs });
  }

  /** Returns whether a participant stored a report the timer has not read. */
  hasDirtyQuality(): boolean {
    for (const participant of this.senders) {
      if (participant.quality.dirty) return true;
    }
    return false;
  }

  /** Number of participants, federated ones included. */
  get size(): number {
    return this.#participants.size;
  }

  /** Participants in join order. */
  participants(): IterableIterator<Participant> {
    return this.#participants.values();
  }

  get(id: string): Participant | undefined {
    return this.#participants.get(id);
  }

  /**
   * Adds a participant and gives it a source id. Limits are the manager's
   * job. Throws if the id is already in the room or all 65,536 source ids
   * are taken.
   */
  add(participant: Participant, now = Date.now()): void {
    if (this.#participants.has(participant.id)) {
      throw new TypeError(
        `Cannot add participant ${participant.id} to room ${this.name}: already a member`,
      );
    }

    participant.source = this.#allocateSource();
    participant.joinedAt = now;
    this.#participants.set(participant.id, participant);
    if (participant.sink.kind !== "federated") {
      this.localCount++;
      this.senders = [...this.senders, participant];
    }
  }

  /** Removes a participant; returns false if it was not a member. */
  remove(participant: Participant): boolean {
    if (this.#participants.get(participant.id) !== participant) return false;

    this.#participants.delete(participant.id);
    if (participant.sink.kind !== "federated") {
      this.localCount--;
      this.senders = this.senders.filter((p) => p !== participant);
    }
    return true;
  }

  /**
   * Forwards one checked media packet from `from` to every other local
   * participant, as the same frame object, then, for a local sender, to the
   * media tap.
   */
  forward(from: Participant, packet: Uint8Array): void {
    const frame = buildRelayFrame(from.source, packet);
    const receivers = this.senders;
    let sent = 0;
    for (let i = 0; i < receivers.length; i++) {
      const receiver = receivers[i]!;
      if (receiver === from) continue;
      if (receiver.sink.sendMedia(frame)) sent++;
    }

    const stats = this.#stats;
    stats.packetsForwarded += sent;
    stats.bytesForwarded += sent * frame.length;

    const tap = this.mediaTap;
    if (tap !== null && from.sink.kind !== "federated") tap(this, from, packet);
  }

  /** Returns the `room_update` signal for the current membership. */
  update(): RoomUpdateSignal {
    const participants = [];
    for (const participant of this.#participants.values()) {
      participants.push(participant.info());
    }
    return { type: "room_update", room: this.name, participants };
  }

  /** Sends one serialized signal to every local participant. */
  broadcast(text: string): void {
    for (const participant of this.senders) participant.sink.sendSignal(text);
  }

  /**
   * Returns the next source id not in use, counting up and wrapping at
   * 16 bits, so an id is reused only after the space wraps around.
   */
  #allocateSource(): number {
    if (this.#participants.size >= SOURCE_ID_SPACE) {
      throw new RangeError(
        `Cannot allocate a source id in room ${this.name}: all ${SOURCE_ID_SPACE} are in use`,
      );
    }

    const used = new Set<number>();
    for (const participant of this.#participants.values()) {
      used.add(participant.source);
    }
    let source = this.#nextSource;
    while (used.has(source)) source = (source + 1) % SOURCE_ID_SPACE;
    this.#nextSource = (source + 1) % SOURCE_ID_SPACE;
    return source;
  }
}
