/**
 * Unit tests of the browser page's plain modules that need no browser: the
 * media packet format (checked against the relay's own parser), the jitter
 * buffer, the quality report and the close messages.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  bitrateForProfileCodec,
  buildMediaPacket,
  CODEC_IDS,
  codecIdForBitrate,
  encodeQualityReport,
  isOpusCodec,
  MAX_MEDIA_BYTES,
  OPUS_BITRATES,
  parseMediaPacket,
} from "../bridge/media_packet.js";
import { JitterBuffer, sequenceDistance } from "../bridge/jitter_buffer.js";
import { closeMessage, isRelayDecision } from "../bridge/close_messages.js";
import { QualityMonitor } from "../bridge/quality_monitor.js";
import {
  buildMediaPacket as buildRelayMediaPacket,
  checkMediaPacket,
} from "../src/wire/media.ts";
import { decodeQualityReport, PROFILES } from "../src/wire/quality_report.ts";
import { CLOSE } from "../src/wire/close_codes.ts";

Deno.test("page packet passes relay checks", () => {
  const report = encodeQualityReport({
    lossPercent: 10,
    rttMs: 40,
    jitterMs: 5,
    bitrateCapKbps: 24,
  });
  const packet = buildMediaPacket({
    codec: CODEC_IDS.Opus24k,
    sequence: 7,
    timestamp: 1_234,
    payload: new Uint8Array(60).fill(9),
    qualityReport: report,
  });

  assert.equal(checkMediaPacket(packet), null);
  assert.equal(packet.length, 12 + 60 + 4);
  assert.equal(packet[0]! & 0x02, 0x02);
});

Deno.test("page packet matches relay layout", () => {
  const payload = new Uint8Array([1, 2, 3]);
  const fields = { codec: CODEC_IDS.Opus64k, sequence: 65_535, timestamp: 9 };
  const ours = buildMediaPacket({ ...fields, payload });
  const relays = buildRelayMediaPacket({ ...fields, payload });
  assert.deepEqual(ours, relays);
});

Deno.test("page packet parses back", () => {
  const report = Uint8Array.of(25, 10, 3, 32);
  const packet = buildMediaPacket({
    codec: CODEC_IDS.Opus32k,
    sequence: 0x1_0005,
    timestamp: 2 ** 32 + 17,
    payload: Uint8Array.of(4, 5),
    qualityReport: report,
  });
  const parsed = parseMediaPacket(packet);

  assert.ok(parsed !== null);
  assert.equal(parsed.codec, CODEC_IDS.Opus32k);
  assert.equal(parsed.repair, false);
  assert.equal(parsed.sequence, 5);
  assert.equal(parsed.timestamp, 17);
  assert.deepEqual(parsed.payload, Uint8Array.of(4, 5));
  assert.deepEqual(parsed.qualityReport, report);
});

Deno.test("page packet rejects oversize payload", () => {
  const payload = new Uint8Array(MAX_MEDIA_BYTES - 12 + 1);
  assert.throws(
    () => buildMediaPacket({ codec: 0, sequence: 0, timestamp: 0, payload }),
    RangeError,
  );
  const fits = buildMediaPacket({
    codec: 0,
    sequence: 0,
    timestamp: 0,
    payload: payload.subarray(1),
  });
  assert.equal(fits.length, MAX_MEDIA_BYTES);
});

Deno.test("page parser drops invalid packets", () => {
  const cases: [string, Uint8Array][] = [
    ["short", new Uint8Array(11)],
    ["long", new Uint8Array(MAX_MEDIA_BYTES + 1)],
    ["version 1", Uint8Array.from({ length: 12 }, (_, i) => i ? 0 : 0x80)],
    ["Q without report", Uint8Array.from({ length: 15 }, (_, i) => i ? 0 : 2)],
  ];
  for (const [name, packet] of cases) {
    assert.equal(parseMediaPacket(packet), null, name);
  }
});

Deno.test("codec ids follow bitrates", () => {
  const expected: Record<number, number> = {
    6_000: 2,
    16_000: 1,
    24_000: 0,
    32_000: 6,
    48_000: 7,
    64_000: 8,
  };
  for (const bitrate of OPUS_BITRATES) {
    assert.equal(codecIdForBitrate(bitrate), expected[bitrate]);
    assert.equal(isOpusCodec(codecIdForBitrate(bitrate)), true);
  }
  assert.throws(() => codecIdForBitrate(20_000), RangeError);
  assert.equal(isOpusCodec(CODEC_IDS.Codec2_1200), false);
});

Deno.test("every tier profile maps to a bitrate", () => {
  const expected: Record<string, number> = {
    catastrophic: 6_000,
    degraded: 6_000,
    good: 24_000,
    studio_32k: 32_000,
    studio_48k: 48_000,
    studio_64k: 64_000,
  };
  for (const [tier, profile] of Object.entries(PROFILES)) {
    assert.equal(bitrateForProfileCodec(profile.codec), expected[tier], tier);
  }
  assert.equal(bitrateForProfileCodec("Opus20k"), null);
  assert.equal(bitrateForProfileCodec(undefined), null);
});

Deno.test("quality report round trips", () => {
  const bytes = encodeQualityReport({
    lossPercent: 100,
    rttMs: 2_000,
    jitterMs: 12.4,
    bitrateCapKbps: 24,
  });
  const report = decodeQualityReport(
    bytes[0]!,
    bytes[1]!,
    bytes[2]!,
    bytes[3]!,
  );
  assert.equal(report.lossPercent, 100);
  assert.equal(report.rttMs, 1_020);
  assert.equal(report.jitterMs, 12);
  assert.equal(report.bitrateCapKbps, 24);
});

Deno.test("sequence distance wraps", () => {
  assert.equal(sequenceDistance(0, 65_535), 1);
  assert.equal(sequenceDistance(65_535, 0), -1);
  assert.equal(sequenceDistance(10, 3), 7);
});

function packetAt(sequence: number) {
  return { sequence, timestamp: sequence * 20 };
}

function popAll(buffer: JitterBuffer, nowMs: number): number[] {
  const out: number[] = [];
  for (let p = buffer.pop(nowMs); p !== null; p = buffer.pop(nowMs)) {
    out.push(p.sequence);
  }
  return out;
}

Deno.test("jitter buffer reorders packets", () => {
  const buffer = new JitterBuffer();
  buffer.push(packetAt(10), 0);
  assert.deepEqual(popAll(buffer, 0), [10]);
  buffer.push(packetAt(12), 1);
  assert.deepEqual(popAll(buffer, 1), []);
  buffer.push(packetAt(11), 2);
  assert.deepEqual(popAll(buffer, 2), [11, 12]);
  assert.equal(buffer.lost, 0);
  assert.equal(buffer.released, 3);
});

Deno.test("jitter buffer skips after hold limit", () => {
  const buffer = new JitterBuffer({ maxHoldPackets: 2, maxHoldMs: 1_000 });
  buffer.push(packetAt(0), 0);
  popAll(buffer, 0);
  for (const sequence of [2, 3]) buffer.push(packetAt(sequence), 1);
  assert.deepEqual(popAll(buffer, 1), []);
  buffer.push(packetAt(4), 2);
  assert.deepEqual(popAll(buffer, 2), [2, 3, 4]);
  assert.equal(buffer.lost, 1);

  buffer.push(packetAt(1), 3);
  assert.equal(buffer.discarded, 1);
  assert.deepEqual(popAll(buffer, 3), []);
});

Deno.test("jitter buffer skips after hold time", () => {
  const buffer = new JitterBuffer({ maxHoldPackets: 10, maxHoldMs: 80 });
  buffer.push(packetAt(100), 0);
  popAll(buffer, 0);
  buffer.push(packetAt(103), 10);
  assert.deepEqual(popAll(buffer, 89), []);
  assert.deepEqual(popAll(buffer, 90), [103]);
  assert.equal(buffer.lost, 2);
  assert.equal(buffer.expected, 4);
});

Deno.test("jitter buffer crosses sequence wrap", () => {
  const buffer = new JitterBuffer();
  for (const sequence of [65_534, 0, 65_535, 1]) {
    buffer.push(packetAt(sequence), 0);
  }
  assert.deepEqual(popAll(buffer, 0), [65_534, 65_535, 0, 1]);
  assert.equal(buffer.lost, 0);
});

Deno.test("jitter buffer restarts on big jump", () => {
  const buffer = new JitterBuffer({ restartDistance: 100 });
  buffer.push(packetAt(5), 0);
  popAll(buffer, 0);
  buffer.push(packetAt(30_000), 1);
  assert.deepEqual(popAll(buffer, 1), [30_000]);
  assert.equal(buffer.lost, 0);
});

Deno.test("jitter buffer estimates jitter", () => {
  const steady = new JitterBuffer();
  const uneven = new JitterBuffer();
  for (let i = 0; i < 50; i++) {
    steady.push(packetAt(i), i * 20);
    uneven.push(packetAt(i), i * 20 + (i % 2 === 0 ? 0 : 15));
    popAll(steady, i * 20);
    popAll(uneven, i * 20);
  }
  assert.equal(steady.jitterMs, 0);
  assert.ok(uneven.jitterMs > 10, `jitter ${uneven.jitterMs} ms`);
});

Deno.test("quality monitor measures interval loss", () => {
  const monitor = new QualityMonitor({ intervalMs: 1_000 });
  const remote = { source: 1, jitter: new JitterBuffer({ maxHoldPackets: 0 }) };
  for (const sequence of [0, 1, 3]) {
    remote.jitter.push(packetAt(sequence), sequence * 20);
  }
  popAll(remote.jitter, 60);

  monitor.measure([remote]);
  assert.equal(monitor.lossPercent, 25);
  monitor.measure([remote]);
  assert.equal(monitor.lossPercent, 0);

  monitor.rttMs = 40;
  const report = monitor.takeReport(5_000, 24_000);
  assert.deepEqual(report, Uint8Array.of(0, 10, 0, 24));
  assert.equal(monitor.takeReport(5_500, 24_000), null);
});

Deno.test("close messages cover every code", () => {
  const generic = closeMessage({ code: 1006, reason: "", errorCode: null });
  const texts = new Set<string>();
  for (const { code, error } of Object.values(CLOSE)) {
    const byCode = closeMessage({ code, reason: "", errorCode: null });
    const byName = closeMessage({ code: 1006, reason: "", errorCode: error });
    assert.notEqual(byCode, generic, `${code}`);
    assert.equal(byName, byCode, error);
    texts.add(byCode);
  }
  assert.equal(texts.size, Object.keys(CLOSE).length);
  assert.match(generic, /close code 1006/);
});

Deno.test("relay decisions skip fallback", () => {
  assert.equal(isRelayDecision({ code: 4401, errorCode: null }), true);
  assert.equal(
    isRelayDecision({ code: 1006, errorCode: "unauthorized" }),
    true,
  );
  assert.equal(isRelayDecision({ code: 4408, errorCode: "timeout" }), false);
  assert.equal(isRelayDecision({ code: 1006, errorCode: null }), false);
  assert.equal(isRelayDecision(new Error("Opening handshake failed")), false);
});
