import assert from "node:assert/strict";
import {
  decodeFederationDatagram,
  ENTRY_HEADER_BYTES,
  FederationDatagramError,
  FederationDatagramWriter,
  type FederationEntry,
  roomHash,
  roomHashKey,
} from "../src/wire/federation_media.ts";
import {
  ControlMessageError,
  parseControlMessage,
} from "../src/wire/federation_control.ts";
import {
  PacketRateLimiter,
  SEQUENCE_WINDOW_SIZE,
  SequenceWindow,
} from "../src/federation/sequence_window.ts";

function decodeAll(datagram: Uint8Array): FederationEntry[] {
  const entries: FederationEntry[] = [];
  decodeFederationDatagram(
    datagram,
    (entry) => entries.push({ ...entry, packet: entry.packet.slice() }),
  );
  return entries;
}

Deno.test("roomHash is 8 bytes of SHA-256", async () => {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode("general")),
  );
  assert.deepEqual(roomHash("general"), digest.slice(0, 8));
  assert.equal(typeof roomHashKey(roomHash("general")), "number");
  assert.notEqual(
    roomHashKey(roomHash("general")),
    roomHashKey(roomHash("other")),
  );
});

Deno.test("datagram writer round trips entries", () => {
  const writer = new FederationDatagramWriter(1400);
  const hash = roomHash("a");
  writer.append(hash, 7, 1, new Uint8Array([1, 2, 3]));
  writer.append(hash, 0xffffffff, 0xfffffffe, new Uint8Array(100).fill(9));
  assert.deepEqual(writer.entries, 2);

  const entries = decodeAll(writer.take());
  assert.deepEqual(writer.entries, 0);
  assert.deepEqual(entries.length, 2);
  assert.deepEqual(entries[0]!.roomKey, roomHashKey(hash));
  assert.deepEqual(entries[0]!.handle, 7);
  assert.deepEqual(entries[0]!.sequence, 1);
  assert.deepEqual(entries[0]!.packet, new Uint8Array([1, 2, 3]));
  assert.deepEqual(entries[1]!.handle, 0xffffffff);
  assert.deepEqual(entries[1]!.sequence, 0xfffffffe);
  assert.deepEqual(entries[1]!.packet.length, 100);
});

Deno.test("datagram writer fits by max bytes", () => {
  const writer = new FederationDatagramWriter(1400);
  assert.ok(writer.fits(100, 1 + ENTRY_HEADER_BYTES + 100));
  assert.ok(!writer.fits(101, 1 + ENTRY_HEADER_BYTES + 100));
  writer.append(roomHash("a"), 1, 1, new Uint8Array(100));
  assert.ok(!writer.fits(1, 1 + ENTRY_HEADER_BYTES + 100));
});

Deno.test("datagram decode rejects bad input", () => {
  const cases: [string, Uint8Array][] = [
    ["empty", new Uint8Array(0)],
    ["wrong version", new Uint8Array(1 + ENTRY_HEADER_BYTES).fill(2)],
  ];
  const truncated = new FederationDatagramWriter(200);
  truncated.append(roomHash("a"), 1, 1, new Uint8Array(10));
  cases.push([
    "truncated packet",
    truncated.take().slice(0, 1 + ENTRY_HEADER_BYTES + 5),
  ]);
  const trailing = new FederationDatagramWriter(200);
  trailing.append(roomHash("a"), 1, 1, new Uint8Array(10));
  const withTail = new Uint8Array([...trailing.take(), 1, 2, 3]);
  cases.push(["trailing bytes", withTail]);

  for (const [name, datagram] of cases) {
    assert.throws(() => decodeAll(datagram), FederationDatagramError, name);
  }
});

Deno.test("control message parse validates fields", () => {
  const room = parseControlMessage(JSON.stringify({
    type: "room",
    room: "general",
    participants: [{
      id: "a/p1",
      handle: 3,
      alias: null,
      fingerprint: null,
      origin_label: null,
      path: ["a"],
    }],
    want: [1, 2],
  }));
  assert.deepEqual(room.type, "room");

  const bad = [
    "not json",
    "[]",
    JSON.stringify({ type: "nope" }),
    JSON.stringify({ type: "ping", ts: "x" }),
    JSON.stringify({ type: "room", room: "r", participants: {}, want: [] }),
    JSON.stringify({ type: "room", room: "r", participants: [], want: [-1] }),
    JSON.stringify({
      type: "room",
      room: "r",
      participants: [{ id: "x", handle: 1, path: [] }],
      want: [],
    }),
    JSON.stringify({ type: "hello", version: 1, fingerprint: 5 }),
  ];
  for (const text of bad) {
    assert.throws(() => parseControlMessage(text), ControlMessageError, text);
  }
});

Deno.test("SequenceWindow drops repeats", () => {
  const window = new SequenceWindow();
  assert.ok(window.accept(10));
  assert.ok(!window.accept(10));
  assert.ok(window.accept(12));
  assert.ok(window.accept(11));
  assert.ok(!window.accept(11));
  assert.ok(!window.accept(12));
});

Deno.test("SequenceWindow drops packets older than the window", () => {
  const window = new SequenceWindow();
  assert.ok(window.accept(5000));
  assert.ok(!window.accept(5000 - SEQUENCE_WINDOW_SIZE));
  assert.ok(window.accept(5000 - SEQUENCE_WINDOW_SIZE + 1));
});

Deno.test("SequenceWindow handles 32-bit wrap", () => {
  const window = new SequenceWindow();
  assert.ok(window.accept(0xffffffff));
  assert.ok(window.accept(0));
  assert.ok(window.accept(1));
  assert.ok(!window.accept(0xffffffff));
  assert.ok(!window.accept(0));
});

Deno.test("SequenceWindow forgets slots after a jump", () => {
  const window = new SequenceWindow();
  assert.ok(window.accept(1));
  assert.ok(window.accept(1 + SEQUENCE_WINDOW_SIZE * 3));
  assert.ok(window.accept(1 + SEQUENCE_WINDOW_SIZE * 3 - 1));
});

Deno.test("PacketRateLimiter allows rate per second", () => {
  const limiter = new PacketRateLimiter(100, 0);
  let passed = 0;
  for (let i = 0; i < 150; i++) if (limiter.take(0)) passed++;
  assert.deepEqual(passed, 100);
  assert.ok(!limiter.take(5));
  assert.ok(limiter.take(10));
  let later = 0;
  for (let i = 0; i < 200; i++) if (limiter.take(1010)) later++;
  assert.deepEqual(later, 100);
});
