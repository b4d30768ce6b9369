/**
 * The relay's rooms: a sharded map of {@linkcode Room}s with the relay-wide
 * limits, membership events for other layers, and `room_update` on every
 * change.
 *
 * @module
 */

import type { RelayStats } from "../stats.ts";
import type { RoomName } from "../wire/room_name.ts";
import type { Participant } from "./participant.ts";
import { Room } from "./room.ts";
import { ShardedMap } from "./sharded_map.ts";

/** Limits of {@linkcode RoomManager}. */
export interface RoomLimits {
  /** Local participants in one room. @default {100} */
  maxParticipantsPerRoom: number;
  /** Rooms on this relay. @default {10000} */
  maxRooms: number;
  /** Local participants on this relay. @default {10000} */
  maxParticipants: number;
}

/** Reason a join was rejected. */
export type JoinRejection = "room_limit" | "relay_limit" | "room_count_limit";

/** Result of {@linkcode RoomManager.join}. */
export type JoinResult =
  | { ok: true; room: Room }
  | { ok: false; reason: JoinRejection; message: string };

/** Membership events, for federation, webhooks and quality tracking. */
export interface RoomEvents {
  roomCreated?(room: Room): void;
  roomRemoved?(room: Room): void;
  participantJoined?(room: Room, participant: Participant): void;
  participantLeft?(room: Room, participant: Participant): void;
}

/** Owns every room of the relay. */
export class RoomManager {
  readonly #rooms: ShardedMap<Room>;
  readonly #stats: RelayStats;
  readonly #listeners = new Set<RoomEvents>();
  #limits: RoomLimits;
  #localParticipants = 0;

  readonly #qualityStaleMs: number;

  constructor(
    limits: RoomLimits,
    stats: RelayStats,
    options: { shardCount?: number; qualityStaleMs?: number } = {},
  ) {
    this.#limits = { ...limits };
    this.#rooms = new ShardedMap(options.shardCount ?? 64);
    this.#stats = stats;
    this.#qualityStaleMs = options.qualityStaleMs ?? 10_000;
  }

  /** Number of rooms. */
  get roomCount(): number {
    return this.#rooms.size;
  }

  /** Number of participants that joined through this relay. */
  get localParticipants(): number {
    return this.#localParticipants;
  }

  /** The current limits. */
  get limits(): Readonly<RoomLimits> {
    return this.#limits;
  }

  /** Replaces the limits; members over a new limit stay. */
  setLimits(limits: RoomLimits): void {
    this.#limits = { ...limits };
  }

  /** Number of shards, for work spread over timer ticks. */
  get shardCount(): number {
    return this.#rooms.shardCount;
  }

  /** Rooms of one shard. */
  shard(index: number): Iterable<Room> {
    return this.#rooms.shard(index).values();
  }

  get(name: string): Room | undefined {
    return this.#rooms.get(name);
  }

  rooms(): IterableIterator<Room> {
    return this.#rooms.values();
  }

  /** Registers membership listeners; returns the function that removes them. */
  listen(events: RoomEvents): () => void {
    this.#listeners.add(events);
    return () => this.#listeners.delete(events);
  }

  /**
   * Adds a participant to a room, creating the room if needed, and sends
   * `room_update` to the room. The limit checks and the insert run in one
   * synchronous step, so two joins cannot both pass a check for the last
   * place. Federated participants are not counted against local limits.
   * `beforeUpdate` runs after the insert and before `room_update` goes out,
   * which is where a session sends its `welcome`.
   */
  join(
    name: RoomName,
    participant: Participant,
    beforeUpdate?: (room: Room) => void,
  ): JoinResult {
    const local = participant.sink.kind !== "federated";
    let room = this.#rooms.get(name);
    const limits = this.#limits;

    if (local) {
      if (this.#localParticipants >= limits.maxParticipants) {
        return {
          ok: false,
          reason: "relay_limit",
          message:
            `The relay is full: ${limits.maxParticipants} participants, the maximum`,
        };
      }
      if (
        room !== undefined && room.localCount >= limits.maxParticipantsPerRoom
      ) {
        return {
          ok: false,
          reason: "room_limit",
          message:
            `Room ${name} is full: ${limits.maxParticipantsPerRoom} participants, the maximum`,
        };
      }
    }

    if (room === undefined) {
      if (this.#rooms.size >= limits.maxRooms) {
        return {
          ok: false,
          reason: "room_count_limit",
          message: `The relay has ${limits.maxRooms} rooms, the maximum`,
        };
      }
      room = new Room(name, this.#stats, this.#qualityStaleMs);
      this.#rooms.set(name, room);
      this.#emit("roomCreated", room);
    }

    room.add(participant);
    if (local) this.#localParticipants++;
    beforeUpdate?.(room);
    this.#emit("participantJoined", room, participant);
    this.sendUpdate(room);
    return { ok: true, room };
  }

  /**
   * Removes a participant, sends `room_update` to those who remain and
   * removes the room once no local participant is left; federated
   * participants go with it. Safe to call twice.
   */
  leave(room: Room, participant: Participant): void {
    if (!room.remove(participant)) return;

    if (participant.sink.kind !== "federated") this.#localParticipants--;
    this.#emit("participantLeft", room, participant);

    if (room.localCount === 0) {
      this.#rooms.delete(room.name);
      this.#emit("roomRemoved", room);
      return;
    }
    this.sendUpdate(room);
  }

  /**
   * Adds and removes federated participants of an existing room, then
   * sends one `room_update` unless the caller sends it. Federated
   * participants do not count against local limits.
   */
  applyFederated(
    room: Room,
    added: readonly Participant[],
    removed: readonly Participant[],
    sendUpdate = true,
  ): void {
    if (this.#rooms.get(room.name) !== room) return;
    for (const participant of removed) room.remove(participant);
    for (const participant of added) {
      if (room.get(participant.id) === undefined) room.add(participant);
    }
    if (sendUpdate) this.sendUpdate(room);
  }

  /** Sends the room's current `room_update` to its local participants. */
  sendUpdate(room: Room): void {
    room.broadcast(JSON.stringify(room.update()));
  }

  #emit<K extends keyof RoomEvents>(
    event: K,
    room: Room,
    participant?: Participant,
  ): void {
    for (const listener of this.#listeners) {
      const handler = listener[event] as
        | ((room: Room, participant?: Participant) => void)
        | undefined;
      handler?.call(listener, room, participant);
    }
  }
}
