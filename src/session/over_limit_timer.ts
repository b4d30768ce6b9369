/**
 * The clock behind the slow-consumer close: how long a receiver has stayed
 * over its send limit without a send getting through.
 *
 * @module
 */

/** Tracks one receiver's time over its send limit. */
export class OverLimitTimer {
  /** When the receiver first went over the limit, or 0 while under it. */
  #since = 0;

  /**
   * Records a send dropped for the limit. Returns true once the receiver
   * has been over the limit for `timeoutMs`.
   */
  over(timeoutMs: number): boolean {
    const now = performance.now();
    if (this.#since === 0) {
      this.#since = now;
      return false;
    }
    return now - this.#since >= timeoutMs;
  }

  /** Records a send that got through, which ends the time over the limit. */
  under(): void {
    this.#since = 0;
  }
}
