/**
 * Classification of quality reports into tiers, and the per-participant
 * tier controller with hysteresis.
 *
 * @module
 */

import {
  type QualityReport,
  type Tier,
  tierRank,
  TIERS,
} from "../wire/quality_report.ts";

/** Consecutive worse reports that make a participant drop to a worse tier. */
export const DOWNGRADE_REPORTS = 3;

/** Consecutive better reports that climb one tier from below `good`. */
export const UPGRADE_REPORTS_LOW = 5;

/** Consecutive better reports that climb one tier from `good` or above. */
export const UPGRADE_REPORTS_HIGH = 10;

/**
 * Tier of a participant before its first report. WarzonePhone's quality
 * controller (`AdaptiveQualityController`, Rust) starts at `good` too, so a
 * new participant needs 3 bad reports to drop and 10 clean ones to reach
 * the first studio tier. A participant counts toward the room tier only
 * after its first report.
 *
 * NOTE: from that first report on, a newcomer counts as `good` however
 * clean its link is, so it pulls a room at a studio tier down to `good` for
 * at least 10 report intervals.
 */
export const INITIAL_TIER: Tier = "good";

const GOOD_RANK = tierRank("good");

/**
 * Lower bounds of every tier except `studio_64k`, worst tier first. A report
 * belongs to the first tier whose loss or RTT bound it reaches.
 * `studio_48k` has no loss bound.
 */
export const TIER_THRESHOLDS = [
  { tier: "catastrophic", lossPercent: 15, rttMs: 200 },
  { tier: "degraded", lossPercent: 5, rttMs: 100 },
  { tier: "good", lossPercent: 2, rttMs: 80 },
  { tier: "studio_32k", lossPercent: 1, rttMs: 50 },
  { tier: "studio_48k", lossPercent: Infinity, rttMs: 30 },
] as const satisfies readonly {
  tier: Tier;
  lossPercent: number;
  rttMs: number;
}[];

/**
 * Classifies one report by its loss and round-trip time.
 *
 * @throws {RangeError} if a value is negative or NaN.
 */
export function classifyReport(lossPercent: number, rttMs: number): Tier {
  if (!(lossPercent >= 0) || !(rttMs >= 0)) {
    throw new RangeError(
      `Cannot classify quality report: loss is ${lossPercent} % and RTT is ${rttMs} ms, expected numbers >= 0`,
    );
  }

  for (const threshold of TIER_THRESHOLDS) {
    if (lossPercent >= threshold.lossPercent || rttMs >= threshold.rttMs) {
      return threshold.tier;
    }
  }
  return "studio_64k";
}

function tierOfRank(rank: number): Tier {
  const tier = TIERS[rank];
  if (tier === undefined) {
    throw new RangeError(
      `Invalid tier rank ${rank}: expected 0 to ${TIERS.length - 1}`,
    );
  }
  return tier;
}

/**
 * Per-participant tier with hysteresis, so that one odd report does not
 * flip the room's codec.
 *
 * - A report worse than the current tier counts toward a downgrade. After
 *   {@linkcode DOWNGRADE_REPORTS} in a row, the tier drops straight to the
 *   best tier among those reports. WarzonePhone drops to the tier of the
 *   last report instead. Taking the least bad one means that a single deep
 *   spike inside the run does not decide how far the room falls, and if the
 *   link stays that bad, the next run drops further.
 * - A report better than the current tier counts toward an upgrade. After
 *   {@linkcode UPGRADE_REPORTS_LOW} in a row below `good`, or
 *   {@linkcode UPGRADE_REPORTS_HIGH} at `good` or above, the tier climbs one
 *   step, however much better the reports were.
 * - A report in the current tier resets both counts, a worse report resets
 *   the upgrade count, and a better report resets the downgrade count.
 */
export class TierController {
  #tier: Tier = INITIAL_TIER;
  #worseReports = 0;
  #betterReports = 0;
  // Rank of the least bad report in the current run of worse reports.
  #bestWorseRank = 0;

  /** The current tier. */
  get tier(): Tier {
    return this.#tier;
  }

  /**
   * Feeds one report to the controller. Returns the new tier when it
   * changed, or null.
   *
   * @throws {RangeError} if a value is negative or NaN.
   */
  observe(report: Pick<QualityReport, "lossPercent" | "rttMs">): Tier | null {
    return this.observeTier(classifyReport(report.lossPercent, report.rttMs));
  }

  /**
   * Feeds one report that is already classified. Returns the new tier when
   * it changed, or null.
   */
  observeTier(classified: Tier): Tier | null {
    const current = tierRank(this.#tier);
    const rank = tierRank(classified);

    if (rank === current) {
      this.#worseReports = 0;
      this.#betterReports = 0;
      return null;
    }

    if (rank < current) {
      this.#betterReports = 0;
      this.#worseReports++;
      this.#bestWorseRank = this.#worseReports === 1
        ? rank
        : Math.max(this.#bestWorseRank, rank);
      if (this.#worseReports < DOWNGRADE_REPORTS) return null;

      return this.#moveTo(tierOfRank(this.#bestWorseRank));
    }

    this.#worseReports = 0;
    this.#betterReports++;
    const needed = current < GOOD_RANK
      ? UPGRADE_REPORTS_LOW
      : UPGRADE_REPORTS_HIGH;
    if (this.#betterReports < needed) return null;

    return this.#moveTo(tierOfRank(current + 1));
  }

  #moveTo(tier: Tier): Tier {
    this.#tier = tier;
    this.#worseReports = 0;
    this.#betterReports = 0;
    return tier;
  }
}
