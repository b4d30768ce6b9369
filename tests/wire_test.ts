import assert from "node:assert/strict";

import {
  buildMediaPacket,
  buildRelayFrame,
  checkMediaPacket,
  hasQualityReport,
  MAX_MEDIA_BYTES,
  MEDIA_HEADER_BYTES,
  MIN_MEDIA_BYTES,
} from "../src/wire/media.ts";
import {
  MAX_ALIAS_LENGTH,
  parseClientSignal,
  type ParseResult,
} from "../src/wire/signals.ts";
import {
  MAX_ROOM_NAME_BYTES,
  parseRoomName,
  parseRoomSegment,
} from "../src/wire/room_name.ts";
import {
  encodeFrame,
  FRAME_PREFIX_BYTES,
  FrameDecoder,
  FrameTooLargeError,
} from "../src/wire/stream_framing.ts";
import { CLOSE } from "../src/wire/close_codes.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Returns `length` zero bytes with `first` as byte 0. */
function packet(length: number, first = 0): Uint8Array {
  const bytes = new Uint8Array(length);
  if (length > 0) bytes[0] = first;
  return bytes;
}

function parsedOk(result: ParseResult) {
  assert.ok(result.ok, result.ok ? "" : result.message);
  return result.signal;
}

function assertInvalid(text: string): void {
  const result = parseClientSignal(text);
  assert.equal(result.ok, false, `expected ${text} to be rejected`);
}

// Media header checks.

Deno.test("media size limits match protocol", () => {
  assert.equal(MEDIA_HEADER_BYTES, 12);
  assert.equal(MIN_MEDIA_BYTES, 12);
  assert.equal(MAX_MEDIA_BYTES, 1_100);
});

Deno.test("media check drops short packets", () => {
  assert.equal(checkMediaPacket(packet(0)), "too_short");
  assert.equal(checkMediaPacket(packet(1)), "too_short");
  assert.equal(checkMediaPacket(packet(11)), "too_short");
});

Deno.test("media check accepts 12 bytes", () => {
  assert.equal(checkMediaPacket(packet(12)), null);
});

Deno.test("media check accepts 1100 bytes", () => {
  assert.equal(checkMediaPacket(packet(1_100)), null);
});

Deno.test("media check drops 1101 bytes", () => {
  assert.equal(checkMediaPacket(packet(1_101)), "too_long");
  assert.equal(checkMediaPacket(packet(65_536)), "too_long");
});

Deno.test("media check drops version bit", () => {
  assert.equal(checkMediaPacket(packet(12, 0x80)), "bad_version");
  assert.equal(checkMediaPacket(packet(100, 0xff)), "bad_version");
});

Deno.test("media check ignores other header bits", () => {
  // Repair bit, codec 15 (unassigned), FEC bit 6, and a full byte 1.
  const bytes = packet(20, 0x40 | 0x3c | 0x01);
  bytes[1] = 0xff;
  bytes[10] = 0xff;
  bytes[11] = 0xff;

  assert.equal(checkMediaPacket(bytes), null);
});

Deno.test("media check forwards every codec id", () => {
  for (let codec = 0; codec < 16; codec++) {
    assert.equal(checkMediaPacket(packet(12, codec << 2)), null, `${codec}`);
  }
});

Deno.test("media check Q needs four bytes", () => {
  assert.equal(checkMediaPacket(packet(12, 0x02)), "short_quality_report");
  assert.equal(checkMediaPacket(packet(15, 0x02)), "short_quality_report");
  assert.equal(checkMediaPacket(packet(16, 0x02)), null);
});

Deno.test("media check reports length first", () => {
  // A packet that breaks two rules is counted under the length reason.
  assert.equal(checkMediaPacket(packet(11, 0x80)), "too_short");
  assert.equal(checkMediaPacket(packet(1_101, 0x82)), "too_long");
});

Deno.test("media check reads Q bit", () => {
  assert.equal(hasQualityReport(packet(16, 0x02)), true);
  assert.equal(hasQualityReport(packet(16, 0xfd)), false);
});

Deno.test("media check accepts subarray views", () => {
  const backing = new Uint8Array(64);
  backing[10] = 0x80;
  backing[20] = 0x02;

  assert.equal(checkMediaPacket(backing.subarray(10, 30)), "bad_version");
  assert.equal(
    checkMediaPacket(backing.subarray(20, 35)),
    "short_quality_report",
  );
  assert.equal(checkMediaPacket(backing.subarray(20, 36)), null);
});

Deno.test("buildRelayFrame prefixes source big-endian", () => {
  const body = buildMediaPacket({ payload: new Uint8Array([1, 2, 3]) });
  const frame = buildRelayFrame(0x1234, body);

  assert.equal(frame.length, body.length + 2);
  assert.equal(frame[0], 0x12);
  assert.equal(frame[1], 0x34);
  assert.deepEqual(frame.subarray(2), body);
});

Deno.test("buildRelayFrame handles edge sources", () => {
  const body = packet(12);

  assert.deepEqual([...buildRelayFrame(0, body).subarray(0, 2)], [0, 0]);
  assert.deepEqual([...buildRelayFrame(0xff, body).subarray(0, 2)], [0, 0xff]);
  assert.deepEqual(
    [...buildRelayFrame(0xffff, body).subarray(0, 2)],
    [0xff, 0xff],
  );
});

Deno.test("buildRelayFrame copies the packet", () => {
  const body = packet(12, 0x04);
  const frame = buildRelayFrame(7, body);
  body[0] = 0x80;

  assert.equal(frame[2], 0x04);
});

Deno.test("buildMediaPacket writes header fields", () => {
  const bytes = buildMediaPacket({
    codec: 8,
    sequence: 0x1_0005,
    timestamp: 0x0102_0304,
    payload: new Uint8Array([9, 9]),
  });
  const view = new DataView(bytes.buffer);

  assert.equal(bytes.length, 14);
  assert.equal(bytes[0], 8 << 2);
  assert.equal(view.getUint16(2), 5);
  assert.equal(view.getUint32(4), 0x0102_0304);
  assert.deepEqual([...bytes.subarray(12)], [9, 9]);
  assert.equal(checkMediaPacket(bytes), null);
});

Deno.test("buildMediaPacket appends quality report", () => {
  const report = new Uint8Array([10, 20, 30, 40]);
  const bytes = buildMediaPacket({
    payload: new Uint8Array(3),
    qualityReport: report,
  });

  assert.equal(bytes.length, 12 + 3 + 4);
  assert.equal(hasQualityReport(bytes), true);
  assert.deepEqual([...bytes.subarray(-4)], [10, 20, 30, 40]);
  assert.equal(checkMediaPacket(bytes), null);
});

// Signal parsing.

Deno.test("signal hello parses optional fields", () => {
  assert.deepEqual(parsedOk(parseClientSignal('{"type":"hello"}')), {
    type: "hello",
  });
  assert.deepEqual(
    parsedOk(parseClientSignal('{"type":"hello","token":"t","alias":"a"}')),
    { type: "hello", token: "t", alias: "a" },
  );
});

Deno.test("signal hello rejects wrong field types", () => {
  assertInvalid('{"type":"hello","token":1}');
  assertInvalid('{"type":"hello","token":null}');
  assertInvalid('{"type":"hello","token":{}}');
  assertInvalid('{"type":"hello","alias":false}');
  assertInvalid('{"type":"hello","alias":["a"]}');
  assertInvalid('{"type":"hello","alias":null}');
});

Deno.test("signal hello limits alias length", () => {
  const longest = "a".repeat(MAX_ALIAS_LENGTH);
  const hello = parsedOk(
    parseClientSignal(JSON.stringify({ type: "hello", alias: longest })),
  );

  assert.equal(MAX_ALIAS_LENGTH, 64);
  assert.deepEqual(hello, { type: "hello", alias: longest });
  assertInvalid(JSON.stringify({ type: "hello", alias: longest + "a" }));
});

Deno.test("signal auth needs string token", () => {
  assert.deepEqual(parsedOk(parseClientSignal('{"type":"auth","token":"t"}')), {
    type: "auth",
    token: "t",
  });
  assertInvalid('{"type":"auth"}');
  assertInvalid('{"type":"auth","token":5}');
  assertInvalid('{"type":"auth","token":null}');
});

Deno.test("signal ping needs finite ts", () => {
  assert.deepEqual(parsedOk(parseClientSignal('{"type":"ping","ts":12.5}')), {
    type: "ping",
    ts: 12.5,
  });
  assertInvalid('{"type":"ping"}');
  assertInvalid('{"type":"ping","ts":"12"}');
  assertInvalid('{"type":"ping","ts":null}');
  assertInvalid('{"type":"ping","ts":true}');
  // 1e999 parses to Infinity.
  assertInvalid('{"type":"ping","ts":1e999}');
});

Deno.test("signal hangup parses optional reason", () => {
  assert.deepEqual(parsedOk(parseClientSignal('{"type":"hangup"}')), {
    type: "hangup",
  });
  assert.deepEqual(
    parsedOk(parseClientSignal('{"type":"hangup","reason":"bye"}')),
    { type: "hangup", reason: "bye" },
  );
  assertInvalid('{"type":"hangup","reason":1}');
  assertInvalid('{"type":"hangup","reason":null}');
});

Deno.test("signal refresh needs string token", () => {
  assert.deepEqual(
    parsedOk(parseClientSignal('{"type":"refresh","token":"t2"}')),
    { type: "refresh", token: "t2" },
  );
  assertInvalid('{"type":"refresh"}');
  assertInvalid('{"type":"refresh","token":[]}');
});

Deno.test("signal unknown type is returned", () => {
  assert.deepEqual(
    parsedOk(parseClientSignal('{"type":"future","x":[1,2]}')),
    { type: "unknown", name: "future" },
  );
  assert.deepEqual(parsedOk(parseClientSignal('{"type":""}')), {
    type: "unknown",
    name: "",
  });
});

Deno.test("signal rejects malformed JSON", () => {
  assertInvalid("");
  assertInvalid("{");
  assertInvalid("{'type':'ping'}");
  assertInvalid('{"type":"ping","ts":1} trailing');
});

Deno.test("signal rejects non-objects", () => {
  assertInvalid("null");
  assertInvalid("1");
  assertInvalid('"hello"');
  assertInvalid("true");
  assertInvalid('[{"type":"hello"}]');
});

Deno.test("signal rejects missing type", () => {
  assertInvalid("{}");
  assertInvalid('{"token":"t"}');
  assertInvalid('{"type":1}');
  assertInvalid('{"type":null}');
  assertInvalid('{"type":["hello"]}');
});

Deno.test("signal ignores inherited type", () => {
  // `__proto__` in JSON text makes an own property, not a prototype.
  assertInvalid('{"__proto__":{"type":"hello"}}');
});

Deno.test("close codes match protocol table", () => {
  const expected: [number, string][] = [
    [1000, "normal"],
    [4400, "bad_request"],
    [4401, "unauthorized"],
    [4403, "forbidden"],
    [4408, "timeout"],
    [4409, "room_full"],
    [4413, "too_large"],
    [4429, "rate_limited"],
    [4008, "slow_consumer"],
    [4410, "kicked"],
    [4503, "shutting_down"],
    [1011, "internal_error"],
  ];
  const actual = Object.values(CLOSE).map((r) => [r.code, r.error]);

  assert.deepEqual(actual, expected);
});

// Room names.

function roomNameOk(name: string): boolean {
  return parseRoomName(name).ok;
}

function segmentName(segment: string): string | null {
  const result = parseRoomSegment(segment);
  return result.ok ? result.name : null;
}

Deno.test("room name rejects empty", () => {
  assert.equal(roomNameOk(""), false);
  assert.equal(segmentName(""), null);
});

Deno.test("room name allows 128 bytes", () => {
  assert.equal(MAX_ROOM_NAME_BYTES, 128);
  assert.equal(roomNameOk("a".repeat(128)), true);
  assert.equal(roomNameOk("a".repeat(129)), false);
});

Deno.test("room name counts UTF-8 bytes", () => {
  // "é" is 2 bytes, "😀" is 4 bytes (2 UTF-16 code units).
  assert.equal(roomNameOk("é".repeat(64)), true);
  assert.equal(roomNameOk("é".repeat(64) + "a"), false);
  assert.equal(roomNameOk("😀".repeat(32)), true);
  assert.equal(roomNameOk("😀".repeat(32) + "a"), false);
  assert.equal(roomNameOk("€".repeat(42) + "ab"), true);
  assert.equal(roomNameOk("€".repeat(43)), false);
});

Deno.test("room name rejects slash", () => {
  assert.equal(roomNameOk("a/b"), false);
  assert.equal(roomNameOk("/"), false);
  assert.equal(roomNameOk("a/"), false);
});

Deno.test("room name rejects control characters", () => {
  for (const control of ["\u0000", "\t", "\n", "\u001f", "\u007f", "\u0085"]) {
    const name = `a${control}b`;
    assert.equal(roomNameOk(name), false, JSON.stringify(name));
  }
});

Deno.test("room name allows spaces and symbols", () => {
  assert.equal(roomNameOk("a b"), true);
  assert.equal(roomNameOk("café"), true);
  assert.equal(roomNameOk("a_b"), true);
  assert.equal(roomNameOk("?#%&"), true);
});

Deno.test("room name reserves leading underscore", () => {
  assert.equal(roomNameOk("_relay"), false);
  assert.equal(parseRoomName("_relay", true).ok, true);
  assert.equal(segmentName("_relay"), null);
  assert.equal(segmentName("%5Frelay"), null);
});

Deno.test("room name rejects lone surrogate", () => {
  assert.equal(roomNameOk("a\ud800b"), false);
  assert.equal(roomNameOk("a\udc00"), false);
});

Deno.test("room segment percent-decodes", () => {
  assert.equal(segmentName("caf%C3%A9"), "café");
  assert.equal(segmentName("caf%c3%a9"), "café");
  assert.equal(segmentName("a%20b"), "a b");
  assert.equal(segmentName("plain"), "plain");
});

Deno.test("room segment rejects invalid escapes", () => {
  for (
    const segment of ["%", "a%", "%Z1", "%C3", "%FF", "%C3%28", "%ED%A0%80"]
  ) {
    assert.equal(segmentName(segment), null, segment);
  }
});

Deno.test("room segment checks decoded name", () => {
  assert.equal(segmentName("a%2Fb"), null);
  assert.equal(segmentName("a%00b"), null);
  assert.equal(segmentName("a%0Ab"), null);
  assert.equal(segmentName("%C3%A9".repeat(64)), "é".repeat(64));
  assert.equal(segmentName("%C3%A9".repeat(64) + "a"), null);
});

Deno.test("room segment decodes only once", () => {
  assert.equal(segmentName("a%252Fb"), "a%2Fb");
});

// Stream framing.

function framesOf(frameDecoder: FrameDecoder, chunk: Uint8Array): string[] {
  return frameDecoder.push(chunk).map((frame) => decoder.decode(frame));
}

Deno.test("encodeFrame prefixes u32 length", () => {
  const frame = encodeFrame(encoder.encode("abc"));

  assert.equal(FRAME_PREFIX_BYTES, 4);
  assert.deepEqual([...frame], [0, 0, 0, 3, 97, 98, 99]);
});

Deno.test("FrameDecoder returns joined frames", () => {
  const frameDecoder = new FrameDecoder(1024);
  const joined = new Uint8Array([
    ...encodeFrame(encoder.encode("one")),
    ...encodeFrame(new Uint8Array(0)),
    ...encodeFrame(encoder.encode("three")),
  ]);

  assert.deepEqual(framesOf(frameDecoder, joined), ["one", "", "three"]);
  assert.equal(frameDecoder.buffered, 0);
});

Deno.test("FrameDecoder joins split frames", () => {
  const frameDecoder = new FrameDecoder(1024);
  const bytes = new Uint8Array([
    ...encodeFrame(encoder.encode("hello")),
    ...encodeFrame(encoder.encode("world!")),
  ]);

  // Split inside the first prefix, inside the first body, and across the
  // boundary between the frames.
  assert.deepEqual(framesOf(frameDecoder, bytes.subarray(0, 2)), []);
  assert.equal(frameDecoder.buffered, 2);
  assert.deepEqual(framesOf(frameDecoder, bytes.subarray(2, 6)), []);
  assert.deepEqual(framesOf(frameDecoder, bytes.subarray(6, 11)), ["hello"]);
  assert.deepEqual(framesOf(frameDecoder, bytes.subarray(11, 13)), []);
  assert.deepEqual(framesOf(frameDecoder, bytes.subarray(13)), ["world!"]);
  assert.equal(frameDecoder.buffered, 0);
});

Deno.test("FrameDecoder takes one byte chunks", () => {
  const frameDecoder = new FrameDecoder(1024);
  const bytes = encodeFrame(encoder.encode('{"type":"hello"}'));
  const frames: string[] = [];
  for (const byte of bytes) {
    frames.push(...framesOf(frameDecoder, new Uint8Array([byte])));
  }

  assert.deepEqual(frames, ['{"type":"hello"}']);
});

Deno.test("FrameDecoder returns copies", () => {
  const frameDecoder = new FrameDecoder(1024);
  const chunk = encodeFrame(encoder.encode("abc"));
  const [frame] = frameDecoder.push(chunk);
  chunk[4] = 120;

  assert.equal(decoder.decode(frame), "abc");
});

Deno.test("FrameDecoder accepts frame at limit", () => {
  const frameDecoder = new FrameDecoder(65_536);
  const [frame] = frameDecoder.push(encodeFrame(new Uint8Array(65_536)));

  assert.equal(frame?.length, 65_536);
});

Deno.test("FrameDecoder rejects over limit early", () => {
  const frameDecoder = new FrameDecoder(65_536);
  const prefix = new Uint8Array(4);
  new DataView(prefix.buffer).setUint32(0, 65_537);

  // The prefix alone is enough: the body never has to arrive.
  assert.throws(() => frameDecoder.push(prefix), FrameTooLargeError);
  assert.throws(
    () => new FrameDecoder(10).push(encodeFrame(new Uint8Array(11))),
    RangeError,
  );
});

Deno.test("FrameDecoder rejects huge announced length", () => {
  const frameDecoder = new FrameDecoder(65_536);
  let error: unknown;
  try {
    frameDecoder.push(new Uint8Array([0xff, 0xff, 0xff, 0xff]));
  } catch (caught) {
    error = caught;
  }

  assert.ok(error instanceof FrameTooLargeError);
  assert.equal(error.length, 0xffff_ffff);
});

Deno.test("FrameDecoder finds oversize frame after good", () => {
  const frameDecoder = new FrameDecoder(8);
  const bytes = new Uint8Array([
    ...encodeFrame(encoder.encode("ok")),
    0,
    0,
    0,
    9,
  ]);

  assert.throws(() => frameDecoder.push(bytes), FrameTooLargeError);
});
