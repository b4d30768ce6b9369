/**
 * A latency histogram with logarithmic buckets, mergeable across
 * processes. Plain JavaScript, so that the Deno generators, the Node
 * generator of the Socket.IO baseline and the harness share it.
 *
 * Bucket `i` (from 1) covers `[MIN_MS * GROWTH^(i-1), MIN_MS * GROWTH^i)`,
 * and a quantile is reported as its bucket's upper edge, so it is at most
 * 2 % above the recorded value.
 *
 * @module
 */

/** Lower edge of bucket 1, in ms; smaller values land in bucket 0. */
export const MIN_MS = 0.001;

/** Ratio between the edges of two neighbouring buckets. */
export const GROWTH = 1.02;

/** Number of buckets: up to about 100 s, larger values land in the last. */
export const BUCKET_COUNT = 932;

const LOG_GROWTH = Math.log(GROWTH);

/** Counts of latencies in logarithmic buckets, with the exact maximum. */
export class LatencyHistogram {
  constructor() {
    /** @type {Float64Array} counts per bucket (float so merges cannot overflow) */
    this.counts = new Float64Array(BUCKET_COUNT);
    /** Number of recorded values. */
    this.count = 0;
    /** Largest recorded value, in ms. */
    this.max = 0;
  }

  /**
   * Records one latency in ms. Negative values, from clock differences
   * between processes, count as zero.
   * @param {number} ms
   */
  record(ms) {
    let index = 0;
    if (ms > MIN_MS) {
      index = Math.floor(Math.log(ms / MIN_MS) / LOG_GROWTH) + 1;
      if (index >= BUCKET_COUNT) index = BUCKET_COUNT - 1;
    }
    this.counts[index]++;
    this.count++;
    if (ms > this.max) this.max = ms;
  }

  /**
   * Returns the upper edge of the bucket that contains quantile `q` (0-1), in
   * ms, capped at the maximum; 0 when empty.
   * @param {number} q
   * @returns {number}
   */
  quantile(q) {
    if (this.count === 0) return 0;
    const rank = Math.ceil(q * this.count);
    let seen = 0;
    for (let i = 0; i < BUCKET_COUNT; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.min(upperEdge(i), this.max);
    }
    return this.max;
  }

  /**
   * Returns the non-empty buckets as `[index, count]` pairs and the maximum,
   * the form sent between processes.
   * @returns {{ buckets: [number, number][], max: number }}
   */
  toJSON() {
    /** @type {[number, number][]} */
    const buckets = [];
    for (let i = 0; i < BUCKET_COUNT; i++) {
      const count = this.counts[i];
      if (count > 0) buckets.push([i, count]);
    }
    return { buckets, max: this.max };
  }

  /**
   * Adds the counts of a histogram in the form of {@linkcode toJSON}.
   * @param {{ buckets: [number, number][], max: number }} sparse
   */
  merge(sparse) {
    for (const [index, count] of sparse.buckets) {
      this.counts[index] += count;
      this.count += count;
    }
    if (sparse.max > this.max) this.max = sparse.max;
  }
}

/**
 * Returns the upper edge of bucket `index`, in ms.
 * @param {number} index
 * @returns {number}
 */
function upperEdge(index) {
  return MIN_MS * Math.pow(GROWTH, index);
}
