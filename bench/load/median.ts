/**
 * The median, which the harness uses to combine repeated measurements so
 * that one disturbed window does not decide a ratio.
 *
 * @module
 */

/** Returns the median of a non-empty list. */
export function median(values: readonly number[]): number {
  if (values.length === 0) {
    throw new RangeError("Cannot take the median of an empty list");
  }
  const sorted = [...values].sort((x, y) => x - y);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? sorted[middle]!
    : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
