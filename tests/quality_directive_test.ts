/**
 * Room quality end to end: the timer with a clock the test controls, and a
 * live relay whose directives reach WebSocket and WebTransport
 * participants.
 */

import assert from "node:assert/strict";
import { RoomManager } from "../src/room/manager.ts";
import { Participant, type ParticipantSink } from "../src/room/participant.ts";
import {
  MIN_QUALITY_TICK_MS,
  QualityTimer,
} from "../src/room/quality_timer.ts";
import { RelayStats } from "../src/stats.ts";
import { buildMediaPacket } from "../src/wire/media.ts";
import { encodeQualityReport } from "../src/wire/quality_report.ts";
import { parseRoomName, type RoomName } from "../src/wire/room_name.ts";
import { closeAll, joinWs, type ReceivedSignal } from "./helpers.ts";
import {
  closeAllWt,
  hasWebTransport,
  joinWt,
  startWtRelay,
} from "./webtransport_helpers.ts";

class SignalSink implements ParticipantSink {
  readonly kind = "ws" as const;
  readonly signals: Record<string, unknown>[] = [];
  sendMedia(): boolean {
    return true;
  }
  sendSignal(text: string): void {
    this.signals.push(JSON.parse(text));
  }
  close(): void {}
}

function roomName(name: string): RoomName {
  const parsed = parseRoomName(name);
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.name;
}

function setup(count: number) {
  const stats = new RelayStats();
  const rooms = new RoomManager(
    { maxParticipantsPerRoom: 10, maxRooms: 10, maxParticipants: 10 },
    stats,
    { shardCount: 1, qualityStaleMs: 10_000 },
  );
  let now = 0;
  const timer = new QualityTimer(rooms, stats, () => now);
  const sinks: SignalSink[] = [];
  const participants: Participant[] = [];
  for (let i = 0; i < count; i++) {
    const sink = new SignalSink();
    const participant = new Participant({
      id: `p${i}`,
      alias: null,
      fingerprint: null,
      relay: null,
      sink,
    });
    const joined = rooms.join(roomName("r"), participant);
    assert.ok(joined.ok);
    sinks.push(sink);
    participants.push(participant);
  }
  return {
    rooms,
    stats,
    timer,
    sinks,
    participants,
    advance(ms: number) {
      now += ms;
    },
  };
}

function report(participant: Participant, loss: number, rttMs: number): void {
  const bytes = encodeQualityReport({
    lossPercent: loss,
    rttMs,
    jitterMs: 0,
    bitrateCapKbps: 0,
  });
  participant.quality.storeReport(bytes, 0);
}

function directives(sink: SignalSink): Record<string, unknown>[] {
  return sink.signals.filter((s) => s.type === "quality_directive");
}

Deno.test("QualityTimer sends catastrophic on third report", () => {
  const { timer, sinks, participants, stats, advance } = setup(2);
  const speaker = participants[0]!;

  // The first report sets the room tier at the speaker's starting tier.
  for (let i = 0; i < 2; i++) {
    report(speaker, 40, 300);
    advance(1_000);
    timer.tickAll();
  }
  assert.equal(directives(sinks[1]!).at(-1)?.tier, "good");

  report(speaker, 40, 300);
  advance(1_000);
  timer.tickAll();

  for (const sink of sinks) {
    const last = directives(sink).at(-1)!;
    assert.equal(last.tier, "catastrophic");
    assert.deepEqual(last.profile, {
      codec: "Codec2_1200",
      fec_ratio: 1,
      frame_duration_ms: 40,
      frames_per_block: 8,
    });
    assert.match(String(last.reason), /catastrophic/);
  }
  assert.equal(stats.qualityDirectives, 4);
});

Deno.test("QualityTimer ignores silent participants", () => {
  const { timer, sinks, participants, advance } = setup(3);
  // Only participant 0 reports, with a perfect link.
  for (let i = 0; i < 12; i++) {
    report(participants[0]!, 0, 10);
    advance(1_000);
    timer.tickAll();
  }
  // From the starting tier good, ten better reports climb one tier; the
  // two silent participants do not hold the room at good.
  const last = directives(sinks[2]!).at(-1)!;
  assert.equal(last.tier, "studio_32k");
});

Deno.test("QualityTimer drops a stale reporter", () => {
  const { timer, sinks, participants, advance } = setup(2);
  const [good, bad] = participants as [Participant, Participant];
  for (let i = 0; i < 3; i++) {
    report(good, 0, 10);
    report(bad, 40, 300);
    advance(1_000);
    timer.tickAll();
  }
  assert.equal(directives(sinks[0]!).at(-1)!.tier, "catastrophic");

  // The bad participant goes quiet; after the stale time only the good one counts.
  for (let i = 0; i < 12; i++) {
    report(good, 0, 10);
    advance(1_000);
    timer.tickAll();
  }
  assert.notEqual(directives(sinks[0]!).at(-1)!.tier, "catastrophic");
});

Deno.test("QualityTimer recomputes after a leave", () => {
  const { rooms, timer, sinks, participants, advance } = setup(3);
  const [a, b] = participants as [Participant, Participant];
  for (let i = 0; i < 11; i++) {
    report(a, 0, 10);
    if (i < 3) report(b, 40, 300);
    advance(500);
    timer.tickAll();
  }
  assert.equal(directives(sinks[2]!).at(-1)!.tier, "catastrophic");

  rooms.leave(rooms.get("r")!, b);
  advance(500);
  timer.tickAll();
  // Only a counts now, and its eleven good reports lifted it one tier.
  assert.equal(directives(sinks[2]!).at(-1)!.tier, "studio_32k");
});

Deno.test("QualityTimer visits one shard per tick", () => {
  const stats = new RelayStats();
  const rooms = new RoomManager(
    { maxParticipantsPerRoom: 10, maxRooms: 10, maxParticipants: 10 },
    stats,
    { shardCount: 4 },
  );
  const timer = new QualityTimer(rooms, stats, () => 0);
  const sink = new SignalSink();
  const participant = new Participant({
    id: "p",
    alias: null,
    fingerprint: null,
    relay: null,
    sink,
  });
  rooms.join(roomName("r"), participant);
  report(participant, 0, 10);

  let ticks = 0;
  while (directives(sink).length === 0 && ticks < 10) {
    timer.tick();
    ticks++;
  }
  assert.equal(directives(sink).length, 1);
  assert.ok(ticks <= 4, `took ${ticks} ticks`);
});

function qualityPacket(sequence: number): Uint8Array {
  return buildMediaPacket({
    sequence,
    qualityReport: encodeQualityReport({
      lossPercent: 40,
      rttMs: 300,
      jitterMs: 10,
      bitrateCapKbps: 24,
    }),
  });
}

async function waitForTier(
  next: () => Promise<ReceivedSignal>,
  tier: string,
): Promise<ReceivedSignal> {
  for (;;) {
    const signal = await next();
    if (signal.tier === tier) return signal;
  }
}

Deno.test({
  name: "quality directive reaches ws and wt",
  ignore: !hasWebTransport,
  async fn() {
    await using test = await startWtRelay({ qualityIntervalMs: 100 });
    const relay = test.relay;
    const speaker = (await joinWs(relay, "q", { alias: "speaker" })).client;
    const listener = (await joinWs(relay, "q", { alias: "ws" })).client;
    const native = (await joinWt(relay, "q", { alias: "wt" })).client;

    // One report per quality interval, as a client would send them.
    for (let sequence = 0; sequence < 4; sequence++) {
      speaker.sendMedia(qualityPacket(sequence));
      await new Promise((resolve) => setTimeout(resolve, 150));
    }

    const atWs = await waitForTier(
      () => listener.nextSignal("quality_directive", 3_000),
      "catastrophic",
    );
    const atWt = await waitForTier(
      () => native.nextSignal("quality_directive", 3_000),
      "catastrophic",
    );
    assert.equal((atWs.profile as { codec: string }).codec, "Codec2_1200");
    assert.equal((atWt.profile as { codec: string }).codec, "Codec2_1200");

    const details = await (await fetch(`${relay.httpUrl}/api/rooms/q`)).json();
    assert.equal(details.quality_tier, "catastrophic");

    const metrics = await (await fetch(`${relay.httpUrl}/metrics`)).text();
    assert.match(
      metrics,
      /wzp_relay_participants_by_tier\{tier="catastrophic"\} 1/,
    );
    assert.match(metrics, /wzp_relay_quality_directives_total [1-9]/);

    // A newcomer gets the room's current directive after its welcome.
    const late = (await joinWs(relay, "q", { alias: "late" })).client;
    const first = await late.nextSignal("quality_directive", 3_000);
    assert.equal(first.tier, "catastrophic");

    await closeAll([speaker, listener, late]);
    await closeAllWt([native]);
  },
});

/** Starts a timer at a 1 s interval over `shardCount` shards, for `check`. */
function withStartedTimer(
  shardCount: number,
  check: (timer: QualityTimer) => void,
): void {
  const stats = new RelayStats();
  const rooms = new RoomManager(
    { maxParticipantsPerRoom: 10, maxRooms: 10, maxParticipants: 10 },
    stats,
    { shardCount },
  );
  const timer = new QualityTimer(rooms, stats, () => 0);
  timer.start(1_000);
  try {
    check(timer);
  } finally {
    timer.stop();
  }
}

Deno.test("QualityTimer spaces ticks at least 100 ms", () => {
  withStartedTimer(64, (timer) => {
    assert.equal(timer.tickMs, MIN_QUALITY_TICK_MS);
    assert.equal(timer.shardsPerTick, 7);
  });
});

Deno.test("QualityTimer keeps one shard when slow", () => {
  withStartedTimer(4, (timer) => {
    assert.equal(timer.tickMs, 250);
    assert.equal(timer.shardsPerTick, 1);
  });
});
