/**
 * The quality timer: recomputes room tiers off the hot path and sends
 * `quality_directive` when a room's tier changes. Each tick visits one
 * shard of the room map, and ticks are spaced so that every shard is
 * visited once per quality interval.
 *
 * @module
 */

import type { RelayStats } from "../stats.ts";
import type { RoomManager } from "./manager.ts";
import type { QualityState } from "./quality.ts";
import type { Room } from "./room.ts";

function* qualityStates(room: Room): Generator<QualityState> {
  for (const participant of room.senders) yield participant.quality;
}

/** Periodic tier recompute over all rooms. */
export class QualityTimer {
  readonly #rooms: RoomManager;
  readonly #stats: RelayStats;
  readonly #now: () => number;
  #timer: ReturnType<typeof setInterval> | undefined;
  #nextShard = 0;

  constructor(
    rooms: RoomManager,
    stats: RelayStats,
    now: () => number = () => performance.now(),
  ) {
    this.#rooms = rooms;
    this.#stats = stats;
    this.#now = now;
  }

  /** Starts ticking so that all shards are visited every `intervalMs`. */
  start(intervalMs: number): void {
    this.stop();
    const tickMs = Math.max(1, intervalMs / this.#rooms.shardCount);
    this.#timer = setInterval(() => this.tick(), tickMs);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Visits the next shard. */
  tick(): void {
    const shard = this.#nextShard;
    this.#nextShard = (shard + 1) % this.#rooms.shardCount;
    const now = this.#now();
    for (const room of this.#rooms.shard(shard)) this.recompute(room, now);
  }

  /** Visits every room at once, for tests and shutdown. */
  tickAll(): void {
    const now = this.#now();
    for (const room of this.#rooms.rooms()) this.recompute(room, now);
  }

  /**
   * Recomputes one room if a participant reported or the room has a tier,
   * so that a weak participant that goes quiet or leaves stops holding the
   * room down once its report is stale.
   */
  recompute(room: Room, now: number): void {
    if (room.quality.tier === null && !room.hasDirtyQuality()) return;

    const directive = room.quality.update(qualityStates(room), now);
    if (directive === null) return;

    room.broadcast(JSON.stringify(directive));
    this.#stats.qualityDirectives += room.senders.length;
  }
}
