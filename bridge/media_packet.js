// Media packets of the participant protocol, for the browser page: the
// 12-byte header, the optional 4-byte quality report at the end, and the
// codec ids that tell receivers which Opus bitrate a frame was encoded at.
//
// Header (big-endian): byte 0 = bit 7 version (0), bit 6 repair, bits 5-2
// codec id, bit 1 Q (quality report present), bit 0 FEC ratio bit 6;
// byte 1 = FEC ratio bits 5-0 in bits 7-2; bytes 2-3 sequence (u16,
// wrapping); bytes 4-7 timestamp in ms since the sender's session start
// (u32); byte 8 FEC block id; byte 9 FEC symbol index; byte 10 reserved;
// byte 11 contributing-source count.

/** Length of the fixed header, in bytes. */
export const MEDIA_HEADER_BYTES = 12;

/** Largest packet the relay forwards, header and report included. */
export const MAX_MEDIA_BYTES = 1_100;

/** Length of the quality report that ends a packet when Q is set. */
export const QUALITY_REPORT_BYTES = 4;

/** Round-trip time of one unit of the report's RTT byte, in ms. */
export const RTT_UNIT_MS = 4;

const VERSION_BIT = 0x80;
const REPAIR_BIT = 0x40;
const QUALITY_BIT = 0x02;
const BYTE_MAX = 255;

/** Codec ids of the header, by the protocol's codec name. */
export const CODEC_IDS = Object.freeze({
  Opus24k: 0,
  Opus16k: 1,
  Opus6k: 2,
  Codec2_3200: 3,
  Codec2_1200: 4,
  ComfortNoise: 5,
  Opus32k: 6,
  Opus48k: 7,
  Opus64k: 8,
});

/** Opus bitrates in bits/s that have a codec id, lowest first. */
export const OPUS_BITRATES = Object.freeze([
  6_000,
  16_000,
  24_000,
  32_000,
  48_000,
  64_000,
]);

/** Lowest Opus bitrate with a codec id, in bits/s. */
export const LOWEST_OPUS_BITRATE = 6_000;

const CODEC_ID_BY_BITRATE = new Map([
  [6_000, CODEC_IDS.Opus6k],
  [16_000, CODEC_IDS.Opus16k],
  [24_000, CODEC_IDS.Opus24k],
  [32_000, CODEC_IDS.Opus32k],
  [48_000, CODEC_IDS.Opus48k],
  [64_000, CODEC_IDS.Opus64k],
]);

const OPUS_CODEC_IDS = new Set(CODEC_ID_BY_BITRATE.values());

/**
 * Returns the codec id of an Opus bitrate. Throws a RangeError for a
 * bitrate without an id; pick one of OPUS_BITRATES.
 */
export function codecIdForBitrate(bitrate) {
  const id = CODEC_ID_BY_BITRATE.get(bitrate);
  if (id === undefined) {
    throw new RangeError(
      `Cannot pick a codec id for ${bitrate} b/s: use one of ${
        OPUS_BITRATES.join(", ")
      }`,
    );
  }
  return id;
}

/** Returns whether a codec id is one of the Opus codecs. */
export function isOpusCodec(codecId) {
  return OPUS_CODEC_IDS.has(codecId);
}

/**
 * Returns the Opus bitrate in bits/s for a `quality_directive` profile
 * codec, such as "Opus24k" -> 24000, or null for an unknown name.
 */
export function bitrateForProfileCodec(codec) {
  if (typeof codec !== "string") return null;
  // The page encodes only Opus (WebCodecs has no Codec2), so the Codec2
  // tiers, which the relay picks for its worst links, get the lowest Opus
  // bitrate instead.
  if (codec.startsWith("Codec2")) return LOWEST_OPUS_BITRATE;

  const match = /^Opus(\d+)k$/.exec(codec);
  if (match === null) return null;
  const bitrate = Number(match[1]) * 1000;
  return CODEC_ID_BY_BITRATE.has(bitrate) ? bitrate : null;
}

/**
 * Builds a media packet: the header, `payload`, then `qualityReport` (4
 * bytes) when given, which also sets Q. Throws a RangeError when the packet
 * would exceed MAX_MEDIA_BYTES.
 *
 * The repair bit, the FEC ratio and the FEC block fields stay 0: the page
 * sends no separate repair packets and relies on Opus in-band FEC, which
 * lives inside the payload.
 *
 * @param {{ codec: number, sequence: number, timestamp: number,
 *   payload: Uint8Array, qualityReport?: Uint8Array | null }} fields
 */
export function buildMediaPacket(
  { codec, sequence, timestamp, payload, qualityReport = null },
) {
  const reportBytes = qualityReport === null ? 0 : QUALITY_REPORT_BYTES;
  const length = MEDIA_HEADER_BYTES + payload.length + reportBytes;
  if (length > MAX_MEDIA_BYTES) {
    throw new RangeError(
      `Media packet of ${length} bytes exceeds the limit of ` +
        `${MAX_MEDIA_BYTES}: lower the bitrate or the frame duration`,
    );
  }

  const packet = new Uint8Array(length);
  const view = new DataView(packet.buffer);
  packet[0] = (codec & 0x0f) << 2 | (qualityReport === null ? 0 : QUALITY_BIT);
  view.setUint16(2, sequence & 0xffff);
  view.setUint32(4, timestamp >>> 0);
  packet.set(payload, MEDIA_HEADER_BYTES);
  if (qualityReport !== null) {
    packet.set(qualityReport, length - QUALITY_REPORT_BYTES);
  }
  return packet;
}

/**
 * Parses a received media packet (without the source id prefix). Returns
 * null for a packet the relay would not forward: shorter than the header,
 * over MAX_MEDIA_BYTES, version 1, or Q set without room for the report.
 */
export function parseMediaPacket(packet) {
  const length = packet.length;
  if (length < MEDIA_HEADER_BYTES || length > MAX_MEDIA_BYTES) return null;

  const first = packet[0];
  if ((first & VERSION_BIT) !== 0) return null;

  const hasReport = (first & QUALITY_BIT) !== 0;
  if (hasReport && length < MEDIA_HEADER_BYTES + QUALITY_REPORT_BYTES) {
    return null;
  }

  const view = new DataView(packet.buffer, packet.byteOffset, length);
  const payloadEnd = hasReport ? length - QUALITY_REPORT_BYTES : length;
  return {
    codec: (first >> 2) & 0x0f,
    repair: (first & REPAIR_BIT) !== 0,
    sequence: view.getUint16(2),
    timestamp: view.getUint32(4),
    payload: packet.subarray(MEDIA_HEADER_BYTES, payloadEnd),
    qualityReport: hasReport ? packet.subarray(payloadEnd) : null,
  };
}

/**
 * Encodes a quality report. Each value is clamped to its byte: loss 0-100 %
 * maps to 0-255, RTT is stored in 4 ms units up to 1020 ms, jitter in ms
 * up to 255, the bitrate cap in kbps up to 255.
 */
export function encodeQualityReport(
  { lossPercent, rttMs, jitterMs, bitrateCapKbps },
) {
  return Uint8Array.of(
    clampByte(lossPercent * BYTE_MAX / 100),
    clampByte(rttMs / RTT_UNIT_MS),
    clampByte(jitterMs),
    clampByte(bitrateCapKbps),
  );
}

function clampByte(value) {
  if (!Number.isFinite(value) || value <= 0) return 0;
  return Math.min(BYTE_MAX, Math.round(value));
}
