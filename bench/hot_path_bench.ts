/**
 * Micro-benchmarks of the media hot path, with real rooms, participants
 * and sessions whose transports only count what they are given:
 *
 * - fan-out through the room's immutable `senders` snapshot
 *   (`Room.forward`) against rebuilding the receiver list per packet;
 * - building the outgoing frame as a view into a shared slab
 *   (`buildRelayFrame`) against a new buffer per packet;
 * - the header check (`checkMediaPacket`);
 * - packets with and without a quality report through the whole session
 *   path (`ParticipantSession.handleMedia`), which should cost the same.
 *
 * Run with `deno task bench`.
 *
 * @module
 */

import { createAuthenticator } from "../src/auth/authenticator.ts";
import { silentLogger } from "../src/log.ts";
import { RoomManager } from "../src/room/manager.ts";
import { Participant, type ParticipantSink } from "../src/room/participant.ts";
import type { Room } from "../src/room/room.ts";
import {
  ParticipantSession,
  type SessionContext,
  type SessionTransport,
} from "../src/session/session.ts";
import { RelayStats } from "../src/stats.ts";
import {
  buildMediaPacket,
  buildRelayFrame,
  checkMediaPacket,
} from "../src/wire/media.ts";
import { parseRoomName, type RoomName } from "../src/wire/room_name.ts";

/** Room sizes of the fan-out benchmarks: the default 3 and a larger room. */
const ROOM_SIZES = [3, 10] as const;

/** A sink that counts frames and sends nothing. */
class CountingSink implements ParticipantSink, SessionTransport {
  readonly kind = "ws" as const;
  frames = 0;
  bytes = 0;

  sendMedia(frame: Uint8Array): boolean {
    this.frames++;
    this.bytes += frame.length;
    return true;
  }

  sendSignal(_text: string): void {}
  close(): void {}
  closeTransport(): void {}
}

function roomName(name: string): RoomName {
  const parsed = parseRoomName(name);
  if (!parsed.ok) throw new TypeError(parsed.message);
  return parsed.name;
}

/** Limits that never reject a benchmark join. */
const LIMITS = {
  maxParticipantsPerRoom: 1_000,
  maxRooms: 1_000,
  maxParticipants: 100_000,
};

/** Returns a room of `size` participants with counting sinks. */
function roomOf(size: number): { room: Room; members: Participant[] } {
  const rooms = new RoomManager(LIMITS, new RelayStats());
  const members: Participant[] = [];
  let room: Room | undefined;
  for (let i = 0; i < size; i++) {
    const participant = new Participant({
      id: `p${i}`,
      alias: null,
      fingerprint: null,
      relay: null,
      sink: new CountingSink(),
    });
    const result = rooms.join(roomName(`bench-${size}`), participant);
    if (!result.ok) throw new Error(result.message);
    room = result.room;
    members.push(participant);
  }
  return { room: room!, members };
}

/** The 100-byte packet the load generator sends: header and payload. */
const packet = buildMediaPacket({
  sequence: 1,
  timestamp: 20,
  payload: new Uint8Array(88),
});
const packetWithReport = buildMediaPacket({
  sequence: 1,
  timestamp: 20,
  payload: new Uint8Array(84),
  qualityReport: new Uint8Array([3, 12, 4, 24]),
});

/**
 * Forwards a packet the way the snapshot replaced: walks the membership
 * map, filters out the sender and federated members, then sends.
 */
function forwardRebuildingReceivers(
  room: Room,
  stats: RelayStats,
  from: Participant,
  bytes: Uint8Array,
): void {
  const frame = buildRelayFrame(from.source, bytes);
  const receivers = [...room.participants()].filter((participant) =>
    participant !== from && participant.sink.kind !== "federated"
  );
  let sent = 0;
  for (const receiver of receivers) {
    if (receiver.sink.sendMedia(frame)) sent++;
  }
  stats.packetsForwarded += sent;
  stats.bytesForwarded += sent * frame.length;
}

for (const size of ROOM_SIZES) {
  const { room, members } = roomOf(size);
  const from = members[0]!;
  const stats = new RelayStats();
  const group = `fan-out, ${size}-person room`;

  Deno.bench({
    name: `Room.forward (senders snapshot), ${size} members`,
    group,
    baseline: true,
    fn: () => room.forward(from, packet),
  });
  Deno.bench({
    name: `rebuild receiver list per packet, ${size} members`,
    group,
    fn: () => forwardRebuildingReceivers(room, stats, from, packet),
  });
}

/** Builds the same frame as `buildRelayFrame` in a new buffer of its own. */
function buildFrameInNewArray(source: number, bytes: Uint8Array): Uint8Array {
  const frame = new Uint8Array(2 + bytes.length);
  frame[0] = source >>> 8;
  frame[1] = source & 0xff;
  frame.set(bytes, 2);
  return frame;
}

Deno.bench({
  name: "frame in a new Uint8Array per packet",
  group: "frame build",
  baseline: true,
  fn: () => {
    buildFrameInNewArray(7, packet);
  },
});

Deno.bench({
  name: "buildRelayFrame, a view into a 64 KiB slab",
  group: "frame build",
  fn: () => {
    buildRelayFrame(7, packet);
  },
});

const tooShort = new Uint8Array(8);
const badVersion = packet.slice();
badVersion[0] = 0x80;

Deno.bench({
  name: "checkMediaPacket, valid 100-byte packet",
  group: "header check",
  baseline: true,
  fn: () => {
    if (checkMediaPacket(packet) !== null) throw new Error("rejected");
  },
});
Deno.bench({
  name: "checkMediaPacket, with quality report",
  group: "header check",
  fn: () => {
    if (checkMediaPacket(packetWithReport) !== null) {
      throw new Error("rejected");
    }
  },
});
Deno.bench({
  name: "checkMediaPacket, too short",
  group: "header check",
  fn: () => {
    if (checkMediaPacket(tooShort) === null) throw new Error("accepted");
  },
});
Deno.bench({
  name: "checkMediaPacket, bad version",
  group: "header check",
  fn: () => {
    if (checkMediaPacket(badVersion) === null) throw new Error("accepted");
  },
});

/**
 * Returns a joined session in a 3-person room whose transports count,
 * with rate limits off so every packet takes the full path.
 */
async function joinedSession(): Promise<ParticipantSession> {
  const stats = new RelayStats();
  const context: SessionContext = {
    rooms: new RoomManager(LIMITS, stats),
    auth: await createAuthenticator(),
    stats,
    logger: silentLogger,
    settings: {
      handshakeTimeoutMs: 60_000,
      maxSignalBytes: 65_536,
      maxMediaPacketsPerSecond: Number.POSITIVE_INFINITY,
      maxMediaBytesPerSecond: Number.POSITIVE_INFINITY,
      maxSignalsPerSecond: Number.POSITIVE_INFINITY,
      rateLimitGraceMs: 5_000,
    },
    relayFingerprint: "0000:0000:0000:0000:0000:0000:0000:0000",
    draining: false,
    track: () => {},
    untrack: () => {},
  };

  const sessions: ParticipantSession[] = [];
  for (let i = 0; i < 3; i++) {
    const session = new ParticipantSession(context, new CountingSink(), {
      room: roomName("quality"),
    });
    session.handleSignal('{"type":"hello"}');
    sessions.push(session);
  }
  // The join awaits the authenticator once.
  await new Promise((resolve) => setTimeout(resolve, 0));
  for (const session of sessions) {
    if (session.state !== "joined") {
      throw new Error(`Session ${session.id} did not join: ${session.state}`);
    }
  }
  return sessions[0]!;
}

const session = await joinedSession();

Deno.bench({
  name: "handleMedia, no quality report",
  group: "quality report through the session",
  baseline: true,
  fn: () => session.handleMedia(packet),
});
Deno.bench({
  name: "handleMedia, with quality report",
  group: "quality report through the session",
  fn: () => session.handleMedia(packetWithReport),
});
