/**
 * Duplicate detection for federation packets: a sliding window over the
 * sender relay's 32-bit sequence numbers, one window per sender.
 *
 * @module
 */

/** Sequence numbers remembered behind the newest one. */
export const SEQUENCE_WINDOW_SIZE = 1024;

const WORDS = SEQUENCE_WINDOW_SIZE / 32;

/**
 * Remembers which of the last {@linkcode SEQUENCE_WINDOW_SIZE} sequence
 * numbers were seen. Numbers older than the window count as seen, because
 * a packet that late is useless to a voice receiver anyway.
 */
export class SequenceWindow {
  #highest = -1;
  readonly #bits = new Uint32Array(WORDS);

  /** Marks `sequence` seen; returns false if it was seen before. */
  accept(sequence: number): boolean {
    sequence >>>= 0;
    if (this.#highest < 0) {
      this.#highest = sequence;
      this.#set(sequence);
      return true;
    }

    // Distance forward from the highest, modulo 2^32.
    const ahead = (sequence - this.#highest) >>> 0;
    if (ahead === 0) return false;

    if (ahead < 0x80000000) {
      if (ahead >= SEQUENCE_WINDOW_SIZE) {
        this.#bits.fill(0);
      } else {
        for (let i = 1; i <= ahead; i++) this.#clear((this.#highest + i) >>> 0);
      }
      this.#highest = sequence;
      this.#set(sequence);
      return true;
    }

    const behind = (this.#highest - sequence) >>> 0;
    if (behind >= SEQUENCE_WINDOW_SIZE) return false;
    if (this.#has(sequence)) return false;
    this.#set(sequence);
    return true;
  }

  #set(sequence: number): void {
    const slot = sequence % SEQUENCE_WINDOW_SIZE;
    this.#bits[slot >>> 5]! |= 1 << (slot & 31);
  }

  #clear(sequence: number): void {
    const slot = sequence % SEQUENCE_WINDOW_SIZE;
    this.#bits[slot >>> 5]! &= ~(1 << (slot & 31));
  }

  #has(sequence: number): boolean {
    const slot = sequence % SEQUENCE_WINDOW_SIZE;
    return (this.#bits[slot >>> 5]! & (1 << (slot & 31))) !== 0;
  }
}

/**
 * A per-sender packet rate limit: a token bucket that contains at most one
 * second of packets and refills continuously.
 */
export class PacketRateLimiter {
  #tokens: number;
  #updatedAt: number;
  #ratePerSecond: number;

  constructor(ratePerSecond: number, now: number) {
    this.#ratePerSecond = ratePerSecond;
    this.#tokens = ratePerSecond;
    this.#updatedAt = now;
  }

  /** Takes one token; returns false when the sender is over its rate. */
  take(now: number, ratePerSecond = this.#ratePerSecond): boolean {
    this.#ratePerSecond = ratePerSecond;
    const elapsed = now - this.#updatedAt;
    this.#updatedAt = now;
    this.#tokens = Math.min(
      ratePerSecond,
      this.#tokens + (elapsed * ratePerSecond) / 1000,
    );
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }
}
