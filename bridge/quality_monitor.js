// The page's own link measurements, turned into the quality report that it
// appends to one media packet about once a second. The report carries the
// loss seen on received streams (from sequence gaps), the round-trip time
// (from ping/pong), the worst jitter of the receive streams, and the
// current encoder bitrate as the bitrate cap.

import { encodeQualityReport } from "./media_packet.js";

/** Time between two quality reports, in ms. */
export const DEFAULT_REPORT_INTERVAL_MS = 1_000;

export class QualityMonitor {
  #intervalMs;
  #lastReportMs = -Infinity;
  /** Lost and expected counters of each source at the last report. */
  #baseline = new Map();

  /**
   * Latest round-trip time from ping/pong, in ms, or null before the first.
   * @type {number | null}
   */
  rttMs = null;
  /** Loss over the last report interval, in percent. */
  lossPercent = 0;
  /** Worst interarrival jitter over the receive streams, in ms. */
  jitterMs = 0;

  constructor({ intervalMs = DEFAULT_REPORT_INTERVAL_MS } = {}) {
    this.#intervalMs = intervalMs;
  }

  /**
   * Returns a 4-byte quality report of the latest measurements when one is
   * due at `nowMs`, else null. `bitrate` is the encoder's current bitrate
   * in bits/s.
   */
  takeReport(nowMs, bitrate) {
    if (nowMs - this.#lastReportMs < this.#intervalMs) return null;
    this.#lastReportMs = nowMs;

    return encodeQualityReport({
      lossPercent: this.lossPercent,
      rttMs: this.rttMs ?? 0,
      jitterMs: this.jitterMs,
      bitrateCapKbps: bitrate / 1000,
    });
  }

  /**
   * Updates lossPercent and jitterMs from the counters of `sources` (the
   * RemoteSource objects heard from) since the previous call. The call
   * runs this once per report interval.
   */
  measure(sources) {
    let lost = 0;
    let expected = 0;
    let jitter = 0;
    const baseline = new Map();
    for (const remote of sources) {
      const previous = this.#baseline.get(remote.source) ??
        { lost: 0, expected: 0 };
      const now = {
        lost: remote.jitter.lost,
        expected: remote.jitter.expected,
      };
      lost += now.lost - previous.lost;
      expected += now.expected - previous.expected;
      jitter = Math.max(jitter, remote.jitter.jitterMs);
      baseline.set(remote.source, now);
    }

    this.#baseline = baseline;
    this.lossPercent = expected === 0 ? 0 : 100 * lost / expected;
    this.jitterMs = jitter;
  }
}
