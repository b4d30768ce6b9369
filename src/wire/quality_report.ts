/**
 * The 4-byte quality report that a speaker may append to a media packet
 * (Q flag set), and the quality tiers and codec profiles that the relay
 * announces in `quality_directive`.
 *
 * Report layout, one byte each: loss (0-255 maps to 0-100 %), round-trip
 * time in units of 4 ms, jitter in ms, bitrate cap in kbps.
 *
 * @module
 */

/** Size of a quality report at the end of a media packet, in bytes. */
export const QUALITY_REPORT_BYTES = 4;

/** Round-trip time of one unit of the report's RTT byte, in ms. */
export const RTT_UNIT_MS = 4;

const BYTE_MAX = 255;

/** A decoded quality report. */
export interface QualityReport {
  /** Packet loss seen by the sender, 0 to 100. */
  lossPercent: number;
  /** Round-trip time, 0 to 1020 ms in steps of 4 ms. */
  rttMs: number;
  /** Jitter, 0 to 255 ms. */
  jitterMs: number;
  /** Bitrate cap, 0 to 255 kbps. */
  bitrateCapKbps: number;
}

/**
 * Quality tiers, worst first, so that the array index is the tier's rank.
 * The names are the `tier` values of `quality_directive`.
 */
export const TIERS = [
  "catastrophic",
  "degraded",
  "good",
  "studio_32k",
  "studio_48k",
  "studio_64k",
] as const;

/** A quality tier; see {@linkcode TIERS}. */
export type Tier = typeof TIERS[number];

/** Codec settings that clients use while the room is in a tier. */
export interface Profile {
  codec: string;
  fec_ratio: number;
  frame_duration_ms: number;
  frames_per_block: number;
}

function profile(
  codec: string,
  fecRatio: number,
  frameDurationMs: number,
  framesPerBlock: number,
): Readonly<Profile> {
  return Object.freeze({
    codec,
    fec_ratio: fecRatio,
    frame_duration_ms: frameDurationMs,
    frames_per_block: framesPerBlock,
  });
}

/**
 * The profile of each tier. The objects are frozen because directives share
 * them.
 */
export const PROFILES: Readonly<Record<Tier, Readonly<Profile>>> = Object
  .freeze({
    catastrophic: profile("Codec2_1200", 1.0, 40, 8),
    degraded: profile("Opus6k", 0.5, 40, 10),
    good: profile("Opus24k", 0.2, 20, 5),
    studio_32k: profile("Opus32k", 0.1, 20, 5),
    studio_48k: profile("Opus48k", 0.1, 20, 5),
    studio_64k: profile("Opus64k", 0.1, 20, 5),
  });

const RANKS: Readonly<Record<Tier, number>> = Object.freeze({
  catastrophic: 0,
  degraded: 1,
  good: 2,
  studio_32k: 3,
  studio_48k: 4,
  studio_64k: 5,
});

/** Returns the tier's index in {@linkcode TIERS}: 0 is the worst. */
export function tierRank(tier: Tier): number {
  return RANKS[tier];
}

/** Returns whether `value` is one of the {@linkcode TIERS}. */
export function isTier(value: unknown): value is Tier {
  return typeof value === "string" && Object.hasOwn(RANKS, value);
}

function checkByte(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > BYTE_MAX) {
    throw new RangeError(
      `Cannot decode quality report: ${name} byte is ${value}, expected an integer from 0 to ${BYTE_MAX}`,
    );
  }
}

/**
 * Decodes the four report bytes.
 *
 * @throws {RangeError} if an argument is not an integer from 0 to 255.
 */
export function decodeQualityReport(
  loss: number,
  rtt: number,
  jitter: number,
  bitrate: number,
): QualityReport {
  checkByte("loss", loss);
  checkByte("RTT", rtt);
  checkByte("jitter", jitter);
  checkByte("bitrate", bitrate);

  return {
    lossPercent: loss * 100 / BYTE_MAX,
    rttMs: rtt * RTT_UNIT_MS,
    jitterMs: jitter,
    bitrateCapKbps: bitrate,
  };
}

function toByte(name: string, value: number): number {
  if (Number.isNaN(value)) {
    throw new RangeError(
      `Cannot encode quality report: ${name} is NaN, expected a number`,
    );
  }
  return Math.min(BYTE_MAX, Math.max(0, Math.round(value)));
}

/**
 * Encodes a report into its four bytes. Each value is rounded to the nearest
 * step and clamped to the byte's range, so 1500 ms of RTT becomes 1020 ms.
 *
 * @throws {RangeError} if a field is NaN.
 */
export function encodeQualityReport(report: QualityReport): Uint8Array {
  const bytes = new Uint8Array(QUALITY_REPORT_BYTES);
  bytes[0] = toByte("lossPercent", report.lossPercent * BYTE_MAX / 100);
  bytes[1] = toByte("rttMs", report.rttMs / RTT_UNIT_MS);
  bytes[2] = toByte("jitterMs", report.jitterMs);
  bytes[3] = toByte("bitrateCapKbps", report.bitrateCapKbps);
  return bytes;
}
