/**
 * The quality timer: recomputes room tiers off the hot path and sends
 * `quality_directive` when a room's tier changes. Each tick visits a few
 * shards of the room map, and ticks are spaced so that every shard is
 * visited once per quality interval.
 *
 * @module
 */

import type { RelayStats } from "../stats.ts";
import type { RoomManager } from "./manager.ts";
import type { QualityState } from "./quality.ts";
import type { Room } from "./room.ts";

/**
 * Shortest interval between two ticks, in ms. Every tick wakes the event
 * loop, and a wake-up with nothing to do cost about 0.17 ms of CPU on the
 * benchmark machine (an estimate: idle CPU time over wake-ups). One shard per tick with the default 64 shards and 1 s
 * interval kept an idle relay at about 1 % of a core, so a tick visits as
 * many shards as it takes to keep ticks this far apart.
 */
export const MIN_QUALITY_TICK_MS = 100;

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
  #shardsPerTick = 1;
  #tickMs = 0;

  constructor(
    rooms: RoomManager,
    stats: RelayStats,
    now: () => number = () => performance.now(),
  ) {
    this.#rooms = rooms;
    this.#stats = stats;
    this.#now = now;
  }

  /**
   * Starts ticking so that all shards are visited every `intervalMs`, at
   * most one tick every {@linkcode MIN_QUALITY_TICK_MS}.
   */
  start(intervalMs: number): void {
    this.stop();
    const shards = this.#rooms.shardCount;
    const tickMs = Math.max(1, intervalMs / shards, MIN_QUALITY_TICK_MS);
    // Rounded up, so that a full round takes at most intervalMs.
    this.#shardsPerTick = Math.min(
      shards,
      Math.ceil(shards * tickMs / intervalMs),
    );
    this.#tickMs = tickMs;
    this.#timer = setInterval(() => this.tick(), tickMs);
  }

  /** Shards visited per tick; 1 until {@linkcode start}. */
  get shardsPerTick(): number {
    return this.#shardsPerTick;
  }

  /** Interval between ticks in ms; 0 until {@linkcode start}. */
  get tickMs(): number {
    return this.#tickMs;
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Visits the next {@linkcode shardsPerTick} shards. */
  tick(): void {
    const now = this.#now();
    const shards = this.#rooms.shardCount;
    for (let i = 0; i < this.#shardsPerTick; i++) {
      const shard = this.#nextShard;
      this.#nextShard = (shard + 1) % shards;
      for (const room of this.#rooms.shard(shard)) this.recompute(room, now);
    }
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
