/**
 * Media packet header checks for the hot path. The relay never decodes a
 * packet: it checks the few header bits that decide whether to forward it,
 * and finds the quality report when the Q flag is set.
 *
 * Header layout, big-endian (byte 0): bit 7 version (must be 0), bit 6
 * repair, bits 5-2 codec id, bit 1 Q (a 4-byte quality report ends the
 * packet), bit 0 the top bit of the FEC ratio.
 *
 * @module
 */

/** Length of the fixed media header, in bytes. */
export const MEDIA_HEADER_BYTES = 12;

/** Smallest media packet: the header alone. */
export const MIN_MEDIA_BYTES = MEDIA_HEADER_BYTES;

/**
 * Largest media packet. With the 2-byte source id it fits a WebTransport
 * datagram on every path measured so far (Chromium allows 1211 bytes).
 */
export const MAX_MEDIA_BYTES = 1_100;

/** Length of the quality report that ends a packet when Q is set. */
export const QUALITY_REPORT_BYTES = 4;

/** Length of the source id that prefixes every relayed packet. */
export const SOURCE_ID_BYTES = 2;

const VERSION_BIT = 0x80;
const QUALITY_BIT = 0x02;

/** Reason a media packet was dropped, also the `reason` label of the metric. */
export type MediaDropReason =
  | "too_short"
  | "too_long"
  | "bad_version"
  | "short_quality_report";

/**
 * Checks a media packet. Returns null when it may be forwarded, or the
 * reason to drop it. Allocates nothing.
 */
export function checkMediaPacket(packet: Uint8Array): MediaDropReason | null {
  const length = packet.length;
  if (length < MIN_MEDIA_BYTES) return "too_short";
  if (length > MAX_MEDIA_BYTES) return "too_long";

  const first = packet[0]!;
  if ((first & VERSION_BIT) !== 0) return "bad_version";

  if (
    (first & QUALITY_BIT) !== 0 &&
    length < MEDIA_HEADER_BYTES + QUALITY_REPORT_BYTES
  ) {
    return "short_quality_report";
  }

  return null;
}

/** Returns whether a checked packet carries a quality report. */
export function hasQualityReport(packet: Uint8Array): boolean {
  return (packet[0]! & QUALITY_BIT) !== 0;
}

/**
 * Size of the buffers relay frames are cut from. Allocating one small typed
 * array per packet costs about ten times more than a view into a shared
 * buffer (`deno task bench`, bench/hot_path_bench.ts).
 */
const FRAME_SLAB_BYTES = 64 * 1024;

let slab = new Uint8Array(FRAME_SLAB_BYTES);
let slabOffset = 0;

/**
 * Builds the frame the relay sends to receivers: the sender's source id,
 * big-endian, then the packet unchanged.
 *
 * The frame is a view into a shared slab. A full slab is replaced, never
 * reused, so a frame stays valid for as long as anything references it,
 * such as a send queue.
 */
export function buildRelayFrame(
  source: number,
  packet: Uint8Array,
): Uint8Array {
  const length = SOURCE_ID_BYTES + packet.length;
  if (slabOffset + length > slab.length) {
    slab = new Uint8Array(Math.max(FRAME_SLAB_BYTES, length));
    slabOffset = 0;
  }

  const frame = slab.subarray(slabOffset, slabOffset + length);
  slabOffset += length;
  frame[0] = source >>> 8;
  frame[1] = source & 0xff;
  frame.set(packet, SOURCE_ID_BYTES);
  return frame;
}

/** Options of {@linkcode buildMediaPacket}. */
export interface MediaPacketFields {
  /** Codec id, 0-15. @default {0} */
  codec?: number;
  /** Sequence number, wraps at 16 bits. @default {0} */
  sequence?: number;
  /** Milliseconds since the sender's session start. @default {0} */
  timestamp?: number;
  /** Payload after the header. @default {empty} */
  payload?: Uint8Array;
  /** Quality report bytes to append, which also sets Q. */
  qualityReport?: Uint8Array;
}

/** Builds a media packet with a valid header, for clients and tests. */
export function buildMediaPacket(fields: MediaPacketFields = {}): Uint8Array {
  const payload = fields.payload ?? new Uint8Array(0);
  const report = fields.qualityReport;
  const length = MEDIA_HEADER_BYTES + payload.length +
    (report ? QUALITY_REPORT_BYTES : 0);
  const packet = new Uint8Array(length);
  const view = new DataView(packet.buffer);

  packet[0] = ((fields.codec ?? 0) & 0x0f) << 2 | (report ? QUALITY_BIT : 0);
  view.setUint16(2, (fields.sequence ?? 0) & 0xffff);
  view.setUint32(4, (fields.timestamp ?? 0) >>> 0);
  packet.set(payload, MEDIA_HEADER_BYTES);
  if (report) packet.set(report.subarray(0, 4), length - QUALITY_REPORT_BYTES);
  return packet;
}
