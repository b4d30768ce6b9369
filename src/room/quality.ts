/**
 * Link-quality tracking, run from a timer and never on the media hot path.
 *
 * The hot path stores the latest 4-byte quality report of a participant in
 * its {@linkcode QualityState} and marks it dirty. A timer (every
 * `qualityIntervalMs`, 1 s by default) calls {@linkcode RoomQuality.update}
 * for the room, which feeds each dirty participant's latest report to its
 * {@linkcode TierController} once. The room tier is the weakest tier among
 * participants that reported recently, and a change of it produces a
 * `quality_directive` for every participant of the room.
 *
 * @module
 */

import {
  decodeQualityReport,
  type Profile,
  PROFILES,
  type QualityReport,
  type Tier,
  tierRank,
} from "../wire/quality_report.ts";
import { TierController } from "./tier_controller.ts";

export {
  classifyReport,
  DOWNGRADE_REPORTS,
  INITIAL_TIER,
  TIER_THRESHOLDS,
  TierController,
  UPGRADE_REPORTS_HIGH,
  UPGRADE_REPORTS_LOW,
} from "./tier_controller.ts";

/** Age after which a participant's last report no longer counts, in ms. */
export const DEFAULT_QUALITY_STALE_MS = 10_000;

/**
 * Quality state of one participant. The hot path writes the public report
 * fields, and the quality timer calls {@linkcode QualityState.update}.
 *
 * Only the latest report is kept, so the controller counts at most one
 * report per timer interval. Clients send about one report per second,
 * which matches the default interval of 1 s. With a longer interval, the
 * hysteresis counts stretch in time by the same factor.
 */
export class QualityState {
  /** Loss byte of the latest report: 0-255 maps to 0-100 %. */
  loss = 0;
  /** RTT byte of the latest report, in units of 4 ms. */
  rtt = 0;
  /** Jitter byte of the latest report, in ms. */
  jitter = 0;
  /** Bitrate cap byte of the latest report, in kbps. */
  bitrate = 0;
  /** Whether a report arrived since the last {@linkcode update}. */
  dirty = false;
  /** Reports stored so far, counted by the writer. */
  reports = 0;
  /**
   * Time in ms at which {@linkcode update} last consumed a report, on the
   * clock that the caller passes as `now`. It is -Infinity before the first.
   * The hot path does not read a clock, so this lags the packet by at most
   * one timer interval.
   */
  reportedAt = Number.NEGATIVE_INFINITY;
  /** The participant's tier controller. */
  readonly controller: TierController = new TierController();

  /**
   * Stores the report at `bytes[offset]` to `bytes[offset + 3]` and marks
   * the state dirty, without allocating. Bytes past the end of `bytes`
   * read as 0.
   */
  storeReport(bytes: Uint8Array, offset: number): void {
    this.loss = bytes[offset] ?? 0;
    this.rtt = bytes[offset + 1] ?? 0;
    this.jitter = bytes[offset + 2] ?? 0;
    this.bitrate = bytes[offset + 3] ?? 0;
    this.reports++;
    this.dirty = true;
  }

  /**
   * Feeds the latest report to the controller if one arrived since the last
   * call. Returns whether the tier changed.
   *
   * @throws {RangeError} if a report field is not a byte value.
   */
  update(now: number): boolean {
    if (!this.dirty) return false;

    this.dirty = false;
    this.reportedAt = now;
    const report = decodeQualityReport(
      this.loss,
      this.rtt,
      this.jitter,
      this.bitrate,
    );
    return this.controller.observe(report) !== null;
  }

  /** The participant's current tier. */
  get tier(): Tier {
    return this.controller.tier;
  }

  /** Returns whether a report was consumed at most `staleMs` before `now`. */
  isFresh(now: number, staleMs: number): boolean {
    return now - this.reportedAt <= staleMs;
  }

  /** Returns the latest stored report, or null before the first one. */
  latestReport(): QualityReport | null {
    if (this.reports === 0) return null;

    return decodeQualityReport(this.loss, this.rtt, this.jitter, this.bitrate);
  }
}

/** The `quality_directive` signal. */
export interface QualityDirective {
  type: "quality_directive";
  tier: Tier;
  profile: Profile;
  reason: string;
}

/**
 * Builds the `quality_directive` for `tier`. The reason names the weakest
 * participant tier, which is the room tier unless the caller caps it.
 */
export function directiveFor(
  tier: Tier,
  weakest: Tier = tier,
): QualityDirective {
  return {
    type: "quality_directive",
    tier,
    profile: PROFILES[tier],
    reason: `weakest link is ${weakest}`,
  };
}

/**
 * Returns the worst tier among participants whose last report is at most
 * `staleMs` old at `now`, or null when none is. Participants that never
 * reported do not count.
 */
export function weakestTier(
  states: Iterable<QualityState>,
  now: number,
  staleMs: number,
): Tier | null {
  let weakest: Tier | null = null;
  for (const state of states) {
    weakest = weakerOf(weakest, state, now, staleMs);
  }
  return weakest;
}

function weakerOf(
  weakest: Tier | null,
  state: QualityState,
  now: number,
  staleMs: number,
): Tier | null {
  if (!state.isFresh(now, staleMs)) return weakest;
  if (weakest !== null && tierRank(weakest) <= tierRank(state.tier)) {
    return weakest;
  }
  return state.tier;
}

/** Options of {@linkcode RoomQuality}. */
export interface RoomQualityOptions {
  /**
   * Age after which a participant's last report no longer counts, in ms.
   * @default {10000}
   */
  staleMs?: number;
}

/**
 * Quality tier of one room: the weakest tier among its participants that
 * reported within `staleMs`.
 *
 * When no participant has a fresh report, the room keeps the tier of its last
 * directive and sends none. Clients keep their profile until a reporting
 * participant changes the room tier again.
 */
export class RoomQuality {
  /** Age after which a participant's last report no longer counts, in ms. */
  readonly staleMs: number;
  #tier: Tier | null = null;

  /** @throws {RangeError} if `staleMs` is not a positive finite number. */
  constructor(options: RoomQualityOptions = {}) {
    const staleMs = options.staleMs ?? DEFAULT_QUALITY_STALE_MS;
    if (!Number.isFinite(staleMs) || staleMs <= 0) {
      throw new RangeError(
        `Invalid staleMs ${staleMs}: expected a positive number of ms`,
      );
    }
    this.staleMs = staleMs;
  }

  /** Tier of the last directive that {@linkcode update} returned, or null. */
  get tier(): Tier | null {
    return this.#tier;
  }

  /**
   * Updates every participant's state and recomputes the room tier in one
   * pass over `states`. Returns the directive to send to every participant
   * when the room tier changed, or null.
   *
   * Call it for rooms that have a dirty participant and also for rooms
   * whose tier is set. Otherwise a weak participant that stops reporting
   * or leaves keeps holding the room tier down.
   */
  update(
    states: Iterable<QualityState>,
    now: number,
  ): QualityDirective | null {
    let weakest: Tier | null = null;
    for (const state of states) {
      state.update(now);
      weakest = weakerOf(weakest, state, now, this.staleMs);
    }

    if (weakest === null || weakest === this.#tier) return null;

    this.#tier = weakest;
    return directiveFor(weakest);
  }
}
