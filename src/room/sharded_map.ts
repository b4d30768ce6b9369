/**
 * A map split into 2^k shards by a hash of the key.
 *
 * In one isolate sharding buys no lock freedom, because there are no locks.
 * It exists so that background work (quality recompute, sweeps,
 * announcements) can visit a few shards per timer tick instead of walking
 * every room at once, and so that worker isolates could each own a set of
 * shards later.
 *
 * @module
 */

/** FNV-1a over the UTF-16 code units of `key`, as an unsigned 32-bit int. */
export function hashKey(key: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** A string-keyed map in a power-of-two number of shards. */
export class ShardedMap<V> {
  readonly #shards: Map<string, V>[];
  readonly #mask: number;
  #size = 0;

  /** Creates a map with `shardCount` shards, a power of two from 1 to 4096. */
  constructor(shardCount = 64) {
    if (
      !Number.isInteger(shardCount) || shardCount < 1 || shardCount > 4096 ||
      (shardCount & (shardCount - 1)) !== 0
    ) {
      throw new RangeError(
        `Invalid shard count: ${shardCount} (expected a power of two from 1 to 4096)`,
      );
    }
    this.#shards = Array.from({ length: shardCount }, () => new Map());
    this.#mask = shardCount - 1;
  }

  /** Number of entries over all shards. */
  get size(): number {
    return this.#size;
  }

  /** Number of shards. */
  get shardCount(): number {
    return this.#shards.length;
  }

  /** Returns the index of the shard that stores `key`. */
  shardOf(key: string): number {
    return hashKey(key) & this.#mask;
  }

  get(key: string): V | undefined {
    return this.#shards[this.shardOf(key)]!.get(key);
  }

  has(key: string): boolean {
    return this.#shards[this.shardOf(key)]!.has(key);
  }

  set(key: string, value: V): void {
    const shard = this.#shards[this.shardOf(key)]!;
    if (!shard.has(key)) this.#size++;
    shard.set(key, value);
  }

  delete(key: string): boolean {
    const deleted = this.#shards[this.shardOf(key)]!.delete(key);
    if (deleted) this.#size--;
    return deleted;
  }

  /** Returns the entries of one shard, for work spread over timer ticks. */
  shard(index: number): ReadonlyMap<string, V> {
    const shard = this.#shards[index];
    if (shard === undefined) {
      throw new RangeError(
        `Invalid shard index: ${index} (expected 0 to ${this.#mask})`,
      );
    }
    return shard;
  }

  /** Iterates every value, shard by shard. */
  *values(): IterableIterator<V> {
    for (const shard of this.#shards) yield* shard.values();
  }
}
