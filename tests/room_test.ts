import assert from "node:assert/strict";

import { hashKey, ShardedMap } from "../src/room/sharded_map.ts";
import { Room } from "../src/room/room.ts";
import { type RoomLimits, RoomManager } from "../src/room/manager.ts";
import { Participant, type ParticipantSink } from "../src/room/participant.ts";
import { RelayStats, type TransportKind } from "../src/stats.ts";
import type { CloseReason } from "../src/wire/close_codes.ts";
import { parseRoomName, type RoomName } from "../src/wire/room_name.ts";
import { buildMediaPacket } from "../src/wire/media.ts";

function roomName(name: string): RoomName {
  const parsed = parseRoomName(name);
  if (!parsed.ok) throw new TypeError(parsed.message);
  return parsed.name;
}

/** A sink that records what the room sends to it. */
class RecordingSink implements ParticipantSink {
  readonly kind: TransportKind;
  readonly media: Uint8Array[] = [];
  readonly signals: Record<string, unknown>[] = [];
  readonly closes: CloseReason[] = [];

  constructor(kind: TransportKind = "ws") {
    this.kind = kind;
  }

  sendMedia(frame: Uint8Array): boolean {
    this.media.push(frame);
    return true;
  }

  sendSignal(text: string): void {
    this.signals.push(JSON.parse(text));
  }

  close(reason: CloseReason): void {
    this.closes.push(reason);
  }
}

function participant(
  id: string,
  kind: TransportKind = "ws",
): Participant & { sink: RecordingSink } {
  return new Participant({
    id,
    alias: null,
    fingerprint: null,
    relay: kind === "federated" ? "peer" : null,
    sink: new RecordingSink(kind),
  }) as Participant & { sink: RecordingSink };
}

const LIMITS: RoomLimits = {
  maxParticipantsPerRoom: 100,
  maxRooms: 100,
  maxParticipants: 100,
};

function manager(limits: Partial<RoomLimits> = {}): RoomManager {
  return new RoomManager({ ...LIMITS, ...limits }, new RelayStats(), {
    shardCount: 4,
  });
}

// ShardedMap.

Deno.test("hashKey is FNV-1a", () => {
  // Published FNV-1a 32-bit test vectors; ASCII code units equal bytes.
  assert.equal(hashKey(""), 0x811c9dc5);
  assert.equal(hashKey("a"), 0xe40c292c);
  assert.equal(hashKey("foobar"), 0xbf9cf968);
});

Deno.test("ShardedMap rejects bad shard counts", () => {
  for (const count of [0, -1, 3, 6, 1.5, 4097, 8192, NaN]) {
    assert.throws(() => new ShardedMap(count), RangeError, String(count));
  }
});

Deno.test("ShardedMap accepts power-of-two counts", () => {
  assert.equal(new ShardedMap(1).shardCount, 1);
  assert.equal(new ShardedMap(4096).shardCount, 4096);
  assert.equal(new ShardedMap().shardCount, 64);
});

Deno.test("ShardedMap stores and deletes", () => {
  const map = new ShardedMap<number>(8);
  map.set("a", 1);
  map.set("b", 2);
  map.set("a", 3);

  assert.equal(map.size, 2);
  assert.equal(map.get("a"), 3);
  assert.equal(map.has("b"), true);
  assert.equal(map.has("c"), false);
  assert.equal(map.get("c"), undefined);
  assert.equal(map.delete("a"), true);
  assert.equal(map.delete("a"), false);
  assert.equal(map.size, 1);
});

Deno.test("ShardedMap places keys by hash", () => {
  const map = new ShardedMap<string>(16);
  const keys = Array.from({ length: 200 }, (_, i) => `room-${i}`);
  for (const key of keys) map.set(key, key);

  const seen = new Set<string>();
  for (let index = 0; index < map.shardCount; index++) {
    for (const [key] of map.shard(index)) {
      assert.equal(map.shardOf(key), index);
      assert.equal(map.shardOf(key), hashKey(key) & 15);
      seen.add(key);
    }
  }
  assert.equal(seen.size, keys.length);
});

Deno.test("ShardedMap spreads keys over shards", () => {
  const map = new ShardedMap<number>(16);
  for (let i = 0; i < 1_000; i++) map.set(`room-${i}`, i);

  for (let index = 0; index < 16; index++) {
    assert.ok(map.shard(index).size > 0, `shard ${index} is empty`);
  }
});

Deno.test("ShardedMap iterates every value", () => {
  const map = new ShardedMap<number>(4);
  for (let i = 0; i < 50; i++) map.set(`k${i}`, i);

  const values = [...map.values()].sort((a, b) => a - b);
  assert.deepEqual(values, Array.from({ length: 50 }, (_, i) => i));
});

Deno.test("ShardedMap rejects bad shard index", () => {
  const map = new ShardedMap<number>(4);

  assert.throws(() => map.shard(4), RangeError);
  assert.throws(() => map.shard(-1), RangeError);
});

// Room snapshots and source ids.

Deno.test("room senders replaced on join", () => {
  const room = new Room(roomName("r"), new RelayStats());
  const empty = room.senders;
  const a = participant("a");
  room.add(a);
  const afterA = room.senders;
  room.add(participant("b"));

  assert.notEqual(afterA, empty);
  assert.notEqual(room.senders, afterA);
  assert.equal(empty.length, 0);
  assert.deepEqual(afterA.map((p) => p.id), ["a"]);
  assert.deepEqual(room.senders.map((p) => p.id), ["a", "b"]);
});

Deno.test("room senders replaced on leave", () => {
  const room = new Room(roomName("r"), new RelayStats());
  const a = participant("a");
  const b = participant("b");
  const c = participant("c");
  room.add(a);
  room.add(b);
  room.add(c);
  const before = room.senders;
  room.remove(b);

  assert.notEqual(room.senders, before);
  assert.deepEqual(before.map((p) => p.id), ["a", "b", "c"]);
  assert.deepEqual(room.senders.map((p) => p.id), ["a", "c"]);
});

Deno.test("room leave during fan-out is safe", () => {
  const room = new Room(roomName("r"), new RelayStats());
  const a = participant("a");
  const b = participant("b");
  const c = participant("c");
  for (const p of [a, b, c]) room.add(p);

  // b leaves while the frame is sent to it; c must still get the frame.
  b.sink.sendMedia = (frame) => {
    b.sink.media.push(frame);
    room.remove(b);
    room.remove(c);
    return true;
  };
  room.forward(a, buildMediaPacket());

  assert.equal(b.sink.media.length, 1);
  assert.equal(c.sink.media.length, 1);
  assert.deepEqual(room.senders.map((p) => p.id), ["a"]);
});

Deno.test("room senders exclude federated", () => {
  const room = new Room(roomName("r"), new RelayStats());
  room.add(participant("a"));
  const before = room.senders;
  const remote = participant("f", "federated");
  room.add(remote);

  assert.equal(room.senders, before);
  assert.equal(room.size, 2);
  assert.equal(room.localCount, 1);
  assert.equal(room.remove(remote), true);
  assert.equal(room.senders, before);
});

Deno.test("room allocates sources counting up", () => {
  const room = new Room(roomName("r"), new RelayStats());
  const a = participant("a");
  const b = participant("b");
  const c = participant("c");
  room.add(a);
  room.add(b);
  room.remove(a);
  room.add(c);
  const d = participant("d", "federated");
  room.add(d);

  assert.equal(a.source, 0);
  assert.equal(b.source, 1);
  // a's id 0 is free again but is not reused before the space wraps.
  assert.equal(c.source, 2);
  assert.equal(d.source, 3);
});

Deno.test("room source ids wrap at 16 bits", () => {
  const room = new Room(roomName("r"), new RelayStats());
  const first = participant("first");
  room.add(first);

  // Ids 1 to 65535 go to participants that leave again at once.
  for (let i = 1; i < 0x10000; i++) {
    const transient = participant(`t${i}`, "federated");
    room.add(transient);
    assert.equal(transient.source, i);
    room.remove(transient);
  }

  // Back at 0, which `first` still holds, so the next free id is 1.
  const wrapped = participant("wrapped");
  room.add(wrapped);
  assert.equal(wrapped.source, 1);
  const next = participant("next");
  room.add(next);
  assert.equal(next.source, 2);
});

Deno.test("room source ids stay unique", () => {
  const room = new Room(roomName("r"), new RelayStats());
  const members: Participant[] = [];
  for (let i = 0; i < 300; i++) {
    const p = participant(`p${i}`, i % 3 === 0 ? "federated" : "ws");
    room.add(p);
    members.push(p);
    if (i % 4 === 1) {
      room.remove(members.splice(i % members.length, 1)[0]!);
    }
  }

  const sources = [...room.participants()].map((p) => p.source);
  assert.equal(new Set(sources).size, sources.length);
  for (const source of sources) {
    assert.ok(source >= 0, `source ${source}`);
    assert.ok(source <= 0xffff, `source ${source}`);
  }
});

Deno.test("room rejects duplicate participant id", () => {
  const room = new Room(roomName("r"), new RelayStats());
  room.add(participant("a"));

  assert.throws(() => room.add(participant("a")), TypeError);
  assert.equal(room.size, 1);
});

Deno.test("room remove ignores non-members", () => {
  const room = new Room(roomName("r"), new RelayStats());
  const a = participant("a");
  room.add(a);
  const senders = room.senders;

  assert.equal(room.remove(participant("a")), false);
  assert.equal(room.remove(participant("x")), false);
  assert.equal(room.senders, senders);
  assert.equal(room.remove(a), true);
  assert.equal(room.remove(a), false);
  assert.equal(room.localCount, 0);
});

Deno.test("room forward shares one frame", () => {
  const stats = new RelayStats();
  const room = new Room(roomName("r"), stats);
  const [a, b, c] = [participant("a"), participant("b"), participant("c")];
  for (const p of [a, b, c]) room.add(p);
  const packet = buildMediaPacket({ payload: new Uint8Array([7, 8]) });
  room.forward(b, packet);

  assert.equal(a.sink.media.length, 1);
  assert.equal(b.sink.media.length, 0);
  assert.equal(c.sink.media.length, 1);
  assert.equal(a.sink.media[0], c.sink.media[0]);
  assert.deepEqual([...a.sink.media[0]!], [0, 1, ...packet]);
  assert.equal(stats.packetsForwarded, 2);
  assert.equal(stats.bytesForwarded, 2 * (packet.length + 2));
});

Deno.test("room forward calls media tap", () => {
  const room = new Room(roomName("r"), new RelayStats());
  const a = participant("a");
  room.add(a);
  const tapped: Uint8Array[] = [];
  room.mediaTap = (tapRoom, from, packet) => {
    assert.equal(tapRoom, room);
    assert.equal(from, a);
    tapped.push(packet);
  };
  const packet = buildMediaPacket();
  room.forward(a, packet);

  assert.deepEqual(tapped, [packet]);
});

Deno.test("room update lists join order", () => {
  const room = new Room(roomName("r"), new RelayStats());
  room.add(participant("a"));
  room.add(participant("f", "federated"));
  room.add(participant("b"));
  const update = room.update();

  assert.equal(update.type, "room_update");
  assert.equal(update.room, "r");
  assert.deepEqual(update.participants.map((p) => p.id), ["a", "f", "b"]);
  assert.deepEqual(update.participants.map((p) => p.source), [0, 1, 2]);
  assert.deepEqual(update.participants[1], {
    id: "f",
    source: 1,
    alias: null,
    fingerprint: null,
    transport: "federated",
    relay: "peer",
  });
});

// RoomManager limits and updates.

Deno.test("manager join sends room_update", () => {
  const rooms = manager();
  const a = participant("a");
  const b = participant("b");
  rooms.join(roomName("r"), a);
  rooms.join(roomName("r"), b);

  assert.deepEqual(a.sink.signals.map((s) => s.type), [
    "room_update",
    "room_update",
  ]);
  assert.deepEqual(b.sink.signals.map((s) => s.type), ["room_update"]);
  assert.deepEqual(b.sink.signals[0], rooms.get("r")!.update());
});

Deno.test("manager runs beforeUpdate first", () => {
  const rooms = manager();
  const a = participant("a");
  const order: string[] = [];
  a.sink.sendSignal = (text) => order.push(JSON.parse(text).type);
  rooms.join(roomName("r"), a, (room) => {
    assert.equal(room.get("a"), a);
    order.push("beforeUpdate");
  });

  assert.deepEqual(order, ["beforeUpdate", "room_update"]);
});

Deno.test("manager leave updates the rest", () => {
  const rooms = manager();
  const a = participant("a");
  const b = participant("b");
  const result = rooms.join(roomName("r"), a);
  rooms.join(roomName("r"), b);
  assert.ok(result.ok);
  rooms.leave(result.room, a);

  const last = b.sink.signals.at(-1) as { participants: { id: string }[] };
  assert.deepEqual(last.participants.map((p) => p.id), ["b"]);
  assert.equal(a.sink.signals.length, 2);
});

Deno.test("manager removes empty rooms", () => {
  const rooms = manager();
  const a = participant("a");
  const result = rooms.join(roomName("r"), a);
  assert.ok(result.ok);
  rooms.leave(result.room, a);
  rooms.leave(result.room, a);

  assert.equal(rooms.get("r"), undefined);
  assert.equal(rooms.roomCount, 0);
  assert.equal(rooms.localParticipants, 0);
});

Deno.test("manager limits room size", () => {
  const rooms = manager({ maxParticipantsPerRoom: 2 });
  rooms.join(roomName("r"), participant("a"));
  rooms.join(roomName("r"), participant("b"));
  const third = participant("c");
  const result = rooms.join(roomName("r"), third);

  assert.equal(result.ok, false);
  assert.equal(!result.ok && result.reason, "room_limit");
  assert.equal(rooms.get("r")!.size, 2);
  assert.equal(third.sink.signals.length, 0);
  assert.ok(rooms.join(roomName("other"), participant("d")).ok);
});

Deno.test("manager limits relay participants", () => {
  const rooms = manager({ maxParticipants: 2 });
  rooms.join(roomName("r1"), participant("a"));
  rooms.join(roomName("r2"), participant("b"));
  const result = rooms.join(roomName("r3"), participant("c"));

  assert.equal(!result.ok && result.reason, "relay_limit");
  assert.equal(rooms.roomCount, 2);
  assert.equal(rooms.localParticipants, 2);
});

Deno.test("manager limits room count", () => {
  const rooms = manager({ maxRooms: 1 });
  rooms.join(roomName("r1"), participant("a"));
  const result = rooms.join(roomName("r2"), participant("b"));

  assert.equal(!result.ok && result.reason, "room_count_limit");
  assert.equal(rooms.get("r2"), undefined);
  assert.ok(rooms.join(roomName("r1"), participant("c")).ok);
});

Deno.test("manager frees places on leave", () => {
  const rooms = manager({ maxParticipantsPerRoom: 1, maxParticipants: 1 });
  const a = participant("a");
  const first = rooms.join(roomName("r"), a);
  assert.ok(first.ok);
  rooms.leave(first.room, a);

  assert.ok(rooms.join(roomName("r"), participant("b")).ok);
});

Deno.test("manager skips limits for federated", () => {
  const rooms = manager({ maxParticipantsPerRoom: 1, maxParticipants: 1 });
  rooms.join(roomName("r"), participant("a"));
  const result = rooms.join(roomName("r"), participant("f", "federated"));

  assert.ok(result.ok);
  assert.equal(rooms.localParticipants, 1);
  assert.equal(rooms.get("r")!.size, 2);
});

Deno.test("manager emits membership events", () => {
  const rooms = manager();
  const events: string[] = [];
  const stop = rooms.listen({
    roomCreated: (room) => events.push(`created ${room.name}`),
    participantJoined: (_, p) => events.push(`joined ${p.id}`),
    participantLeft: (_, p) => events.push(`left ${p.id}`),
    roomRemoved: (room) => events.push(`removed ${room.name}`),
  });
  const a = participant("a");
  const result = rooms.join(roomName("r"), a);
  assert.ok(result.ok);
  rooms.leave(result.room, a);
  stop();
  rooms.join(roomName("r"), participant("b"));

  assert.deepEqual(events, ["created r", "joined a", "left a", "removed r"]);
});
