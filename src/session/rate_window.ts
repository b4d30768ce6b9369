/**
 * Per-participant rate limits: counts packets and bytes in one-second
 * windows, drops the excess, and reports sustained abuse.
 *
 * @module
 */

/** Result of {@linkcode RateWindow.take}. */
export const RATE = { ok: 0, drop: 1, close: 2 } as const;

/** One of the values of {@linkcode RATE}. */
export type RateResult = typeof RATE[keyof typeof RATE];

const WINDOW_MS = 1_000;

/**
 * Counts events in fixed one-second windows. A sender counts as abusive
 * once it has gone over a limit in every window for `graceMs`.
 */
export class RateWindow {
  #windowStart = Number.NEGATIVE_INFINITY;
  #count = 0;
  #bytes = 0;
  #overInWindow = false;
  /** Start of the current run of windows over a limit, or -1. */
  #overSince = -1;

  /**
   * Counts one event of `bytes` at time `now` (ms). Returns `RATE.ok` to
   * accept it, `RATE.drop` when it is over a limit, and `RATE.close` when
   * the sender has been over a limit for `graceMs`.
   */
  take(
    now: number,
    bytes: number,
    maxCount: number,
    maxBytes: number,
    graceMs: number,
  ): RateResult {
    if (now - this.#windowStart >= WINDOW_MS) {
      // A window under the limits, or a silent gap, ends a run of abuse.
      const gap = now - this.#windowStart >= 2 * WINDOW_MS;
      if (!this.#overInWindow || gap) this.#overSince = -1;
      this.#windowStart = now;
      this.#count = 0;
      this.#bytes = 0;
      this.#overInWindow = false;
    }

    if (this.#count + 1 > maxCount || this.#bytes + bytes > maxBytes) {
      this.#overInWindow = true;
      if (this.#overSince < 0) this.#overSince = now;
      return now - this.#overSince >= graceMs ? RATE.close : RATE.drop;
    }

    this.#count++;
    this.#bytes += bytes;
    return RATE.ok;
  }
}
