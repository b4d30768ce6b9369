/**
 * Rate and connection limits end to end. Per-participant media and signal
 * rate limits drop the excess, then close with 4429 after the grace. The
 * per-address and relay-wide connection limits apply to WebSocket and
 * WebTransport together. Joins that race for the last places of a room or
 * the relay never overfill it.
 */

import assert from "node:assert/strict";
import type { RelayOptions } from "../src/options.ts";
import type { Relay } from "../src/relay.ts";
import {
  addressKey,
  ConnectionLimiter,
  type ConnectionLimits,
} from "../src/limits/connection_limiter.ts";
import { buildMediaPacket } from "../src/wire/media.ts";
import {
  closeAll,
  connectWs,
  delay,
  joinWs,
  metricValue,
  scrapeMetrics,
  startTestRelay,
  type TestClient,
  waitFor,
  wsUrl,
} from "./helpers.ts";
import {
  fetchWtInfo,
  hasWebTransport,
  joinWt,
  mediaPacket,
  startWtRelay,
  WtTestClient,
} from "./webtransport_helpers.ts";
import { toServerCertificateHashes } from "../src/identity/mod.ts";

/** Starts a relay with `options`, runs `body`, and always cleans up. */
async function withRelay(
  options: Partial<RelayOptions>,
  body: (relay: Relay) => Promise<void>,
): Promise<void> {
  await using test = await startTestRelay(options);
  await body(test.relay);
}

/**
 * Waits for the relay to close `client` and checks the code and that an
 * `error` signal with `errorCode` was the last signal before the close.
 */
async function assertRelayClose(
  client: TestClient,
  code: number,
  errorCode: string,
  timeoutMs = 3_000,
): Promise<void> {
  const info = await client.waitClosed(timeoutMs);
  assert.equal(info.code, code);
  const last = client.signalLog.at(-1);
  assert.equal(last?.type, "error", `no error signal before close ${code}`);
  assert.equal(last?.code, errorCode);
  assert.equal(typeof last?.message, "string");
}

/** Sends a WebSocket upgrade request with fetch; returns status and body. */
async function upgradeStatus(
  relay: Relay,
  room: string,
): Promise<{ status: number; code: unknown; message: unknown }> {
  const response = await fetch(`${relay.httpUrl}/ws/${room}`, {
    headers: {
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-key": crypto.getRandomValues(new Uint8Array(16))
        .toBase64(),
      "sec-websocket-version": "13",
    },
  });
  const body = await response.json().catch(() => null);
  return {
    status: response.status,
    code: body?.error?.code,
    message: body?.error?.message,
  };
}

/** Returns the sequence numbers of relayed media frames, in order. */
function sequencesOf(frames: Uint8Array[]): number[] {
  return frames.map((frame) =>
    new DataView(frame.buffer, frame.byteOffset).getUint16(2 + 2)
  );
}

// Per-participant media and signal rate limits.

Deno.test("media packet rate drops the excess", async () => {
  await withRelay({
    maxMediaPacketsPerSecond: 20,
    rateLimitGraceMs: 60_000,
  }, async (relay) => {
    const sender = await joinWs(relay, "room");
    const receiver = await joinWs(relay, "room");
    // One burst: every packet lands in the sender's first window.
    for (let sequence = 0; sequence < 50; sequence++) {
      sender.client.sendMedia(buildMediaPacket({ sequence }));
    }
    await sender.client.sync();
    await receiver.client.sync();

    assert.equal(relay.stats.dropped.rate_limited, 30);
    assert.equal(relay.stats.received.ws, 50);
    const frames = receiver.client.drainMedia();
    assert.deepEqual(sequencesOf(frames), [...Array(20).keys()]);
    assert.equal(sender.client.socket.readyState, WebSocket.OPEN);
    await closeAll([sender.client, receiver.client]);
  });
});

Deno.test("media byte rate drops the excess", async () => {
  await withRelay({
    maxMediaBytesPerSecond: 5_000,
    rateLimitGraceMs: 60_000,
  }, async (relay) => {
    const sender = await joinWs(relay, "room");
    const receiver = await joinWs(relay, "room");
    const payload = new Uint8Array(1_000 - 12);
    for (let sequence = 0; sequence < 10; sequence++) {
      sender.client.sendMedia(buildMediaPacket({ sequence, payload }));
    }
    await sender.client.sync();
    await receiver.client.sync();

    assert.equal(relay.stats.dropped.rate_limited, 5);
    const frames = receiver.client.drainMedia();
    assert.deepEqual(sequencesOf(frames), [0, 1, 2, 3, 4]);
    await closeAll([sender.client, receiver.client]);
  });
});

Deno.test("signal rate drops the excess", async () => {
  await withRelay({
    maxSignalsPerSecond: 5,
    rateLimitGraceMs: 60_000,
  }, async (relay) => {
    const { client } = await joinWs(relay, "room");
    for (let ts = 1; ts <= 12; ts++) client.sendSignal({ type: "ping", ts });
    // A new one-second window lets the sync ping through.
    await delay(1_100);
    await client.sync();

    const pongs = client.signalLog.filter((signal) =>
      signal.type === "pong" && (signal.ts as number) <= 12
    );
    // hello counts too when it fell into the same window as the burst.
    assert.ok(relay.stats.droppedSignals >= 7);
    assert.equal(pongs.length, 12 - relay.stats.droppedSignals);
    assert.equal(client.socket.readyState, WebSocket.OPEN);
    const metrics = await scrapeMetrics(relay);
    assert.equal(
      metricValue(metrics, "wzp_relay_signals_dropped_total"),
      relay.stats.droppedSignals,
    );
    await client.close();
  });
});

Deno.test("short burst over the rate is forgiven", async () => {
  await withRelay({
    maxMediaPacketsPerSecond: 10,
    rateLimitGraceMs: 1_000,
  }, async (relay) => {
    const sender = await joinWs(relay, "room");
    const receiver = await joinWs(relay, "room");
    for (let i = 0; i < 30; i++) sender.client.sendMedia(buildMediaPacket());
    await sender.client.sync();
    // A window under the limit ends the run over it, so the grace starts
    // again with the next burst.
    await delay(1_200);
    sender.client.sendMedia(buildMediaPacket({ sequence: 7 }));
    await delay(1_200);
    for (let i = 0; i < 30; i++) sender.client.sendMedia(buildMediaPacket());
    await sender.client.sync();

    assert.equal(relay.stats.closes.get(4429), undefined);
    assert.equal(relay.stats.dropped.rate_limited, 40);
    assert.equal(sender.client.socket.readyState, WebSocket.OPEN);
    await receiver.client.sync();
    assert.equal(receiver.client.drainMedia().length, 21);
    await closeAll([sender.client, receiver.client]);
  });
});

Deno.test("sustained media flood closes with 4429", async () => {
  await withRelay({
    maxMediaPacketsPerSecond: 50,
    rateLimitGraceMs: 1_000,
  }, async (relay) => {
    const flooder = await joinWs(relay, "room");
    const speaker = await joinWs(relay, "room");
    const listener = await joinWs(relay, "room");

    // The flooder sends 250 packets per second, the speaker 20.
    let sequence = 0;
    const deadline = performance.now() + 10_000;
    while (flooder.client.socket.readyState === WebSocket.OPEN) {
      assert.ok(performance.now() < deadline, "no close 4429 in 10 s");
      for (let i = 0; i < 5; i++) {
        flooder.client.sendMedia(buildMediaPacket({ codec: 1 }));
      }
      if (sequence < 1_000) {
        speaker.client.sendMedia(buildMediaPacket({ sequence: sequence++ }));
      }
      await delay(50);
    }
    await assertRelayClose(flooder.client, 4429, "rate_limited");
    assert.equal(relay.stats.closes.get(4429), 1);
    assert.ok(relay.stats.dropped.rate_limited > 0);

    // The listener got every packet of the speaker, in order.
    await speaker.client.sync();
    await listener.client.sync();
    const fromSpeaker = listener.client.drainMedia()
      .filter((frame) => (frame[2]! & 0x3c) === 0);
    assert.deepEqual(sequencesOf(fromSpeaker), [...Array(sequence).keys()]);
    assert.equal(speaker.client.socket.readyState, WebSocket.OPEN);
    assert.equal(relay.rooms.get("room")?.size, 2);
    await closeAll([speaker.client, listener.client]);
  });
});

Deno.test("sustained signal flood closes with 4429", async () => {
  await withRelay({
    maxSignalsPerSecond: 5,
    rateLimitGraceMs: 1_000,
  }, async (relay) => {
    const flooder = await joinWs(relay, "room");
    const other = await joinWs(relay, "room");
    let ts = 0;
    const deadline = performance.now() + 10_000;
    while (flooder.client.socket.readyState === WebSocket.OPEN) {
      assert.ok(performance.now() < deadline, "no close 4429 in 10 s");
      for (let i = 0; i < 4; i++) {
        flooder.client.sendSignal({ type: "ping", ts: ++ts });
      }
      await delay(100);
    }
    await assertRelayClose(flooder.client, 4429, "rate_limited");
    assert.ok(relay.stats.droppedSignals > 0);

    await other.client.sync();
    assert.equal(other.client.socket.readyState, WebSocket.OPEN);
    await other.client.close();
  });
});

Deno.test({
  name: "webtransport media flood closes 4429",
  ignore: !hasWebTransport,
  async fn() {
    await using test = await startWtRelay({
      maxMediaPacketsPerSecond: 20,
      rateLimitGraceMs: 500,
    });
    const flooder = await joinWt(test.relay, "room");
    const deadline = performance.now() + 10_000;
    let closed = false;
    flooder.client.closed.then(() => closed = true);
    while (!closed) {
      assert.ok(performance.now() < deadline, "no close 4429 in 10 s");
      for (let i = 0; i < 10; i++) {
        await flooder.client.sendDatagram(mediaPacket(100)).catch(() => {});
      }
      await delay(20);
    }
    const info = await flooder.client.waitClosed();
    assert.equal(info.closeCode, 4429);
    assert.equal(info.reason, "rate_limited");
    const error = await flooder.client.nextSignal("error");
    assert.equal(error.code, "rate_limited");
    assert.ok(test.relay.stats.dropped.rate_limited > 0);
  },
});

// Connection limits.

const LIMITS: ConnectionLimits = {
  maxConnectionsPerIp: 3,
  maxHandshakesPerIp: 2,
  maxPendingHandshakes: 4,
};

Deno.test("ConnectionLimiter limits handshakes per address", () => {
  const limiter = new ConnectionLimiter();
  const first = limiter.admit("10.0.0.1", LIMITS);
  const second = limiter.admit("10.0.0.1", LIMITS);
  const third = limiter.admit("10.0.0.1", LIMITS);
  assert.ok(first.ok);
  assert.ok(second.ok);
  assert.equal(third.ok ? "admitted" : third.reason, "ip_handshakes");
  assert.equal(limiter.handshakesFrom("10.0.0.1"), 2);

  first.lease.endHandshake();
  first.lease.endHandshake();
  assert.equal(limiter.handshakesFrom("10.0.0.1"), 1);
  assert.equal(limiter.connectionsFrom("10.0.0.1"), 2);
  assert.ok(limiter.admit("10.0.0.1", LIMITS).ok);
});

Deno.test("ConnectionLimiter limits connections per address", () => {
  const limiter = new ConnectionLimiter();
  const leases = [];
  for (let i = 0; i < 3; i++) {
    const result = limiter.admit("10.0.0.1", LIMITS);
    assert.ok(result.ok);
    result.lease.endHandshake();
    leases.push(result.lease);
  }
  const over = limiter.admit("10.0.0.1", LIMITS);
  assert.equal(over.ok ? "admitted" : over.reason, "ip_connections");
  assert.ok(limiter.admit("10.0.0.2", LIMITS).ok);

  leases[0]!.release();
  leases[0]!.release();
  assert.equal(limiter.connectionsFrom("10.0.0.1"), 2);
  assert.ok(limiter.admit("10.0.0.1", LIMITS).ok);
});

Deno.test("ConnectionLimiter limits pending handshakes", () => {
  const limiter = new ConnectionLimiter();
  const leases = [];
  for (let i = 0; i < 4; i++) {
    const result = limiter.admit(`10.0.0.${i}`, LIMITS);
    assert.ok(result.ok);
    leases.push(result.lease);
  }
  const over = limiter.admit("10.0.0.9", LIMITS);
  assert.equal(over.ok ? "admitted" : over.reason, "pending_handshakes");
  assert.equal(limiter.pendingHandshakes, 4);

  leases[0]!.release();
  leases[1]!.endHandshake();
  assert.equal(limiter.pendingHandshakes, 2);
  for (const lease of leases) lease.release();
  assert.equal(limiter.pendingHandshakes, 0);
  assert.equal(limiter.addressCount, 0);
});

Deno.test("addressKey groups IPv6 by /64", () => {
  assert.equal(addressKey("192.0.2.7"), "192.0.2.7");
  assert.equal(addressKey("::ffff:192.0.2.7"), "192.0.2.7");
  assert.equal(addressKey("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  assert.equal(addressKey("2001:db8:1:2::99"), "2001:db8:1:2::/64");
  assert.equal(addressKey("[2001:0db8:0001:0002::1]"), "2001:db8:1:2::/64");
  assert.equal(addressKey("fe80::1%eth0"), "fe80:0:0:0::/64");
  assert.equal(addressKey("::1"), "0:0:0:0::/64");
  assert.equal(addressKey("1::2::3"), "1::2::3");
  assert.equal(addressKey("unknown"), "unknown");
});

Deno.test("per-address handshake limit returns 429", async () => {
  await withRelay({
    maxHandshakesPerIp: 3,
    maxConnectionsPerIp: 10,
  }, async (relay) => {
    const idle = await Promise.all(
      [1, 2, 3].map(() => connectWs(relay, "room")),
    );
    const refused = await upgradeStatus(relay, "room");
    assert.equal(refused.status, 429);
    assert.equal(refused.code, "rate_limited");
    assert.match(String(refused.message), /handshakes in progress/);
    assert.equal(relay.stats.connectionsRejected.ip_handshakes, 1);

    // A welcome ends one handshake and frees its place.
    await idle[0]!.join();
    const admitted = await connectWs(relay, "room");
    const metrics = await scrapeMetrics(relay);
    assert.equal(
      metricValue(metrics, "wzp_relay_connections_rejected_total", {
        reason: "ip_handshakes",
      }),
      1,
    );
    await closeAll([...idle, admitted]);
  });
});

Deno.test("per-address connection limit returns 429", async () => {
  await withRelay({ maxConnectionsPerIp: 3 }, async (relay) => {
    const joined = [];
    for (let i = 0; i < 3; i++) joined.push((await joinWs(relay, "r")).client);
    const refused = await upgradeStatus(relay, "r");
    assert.equal(refused.status, 429);
    assert.equal(refused.code, "rate_limited");
    assert.equal(relay.stats.connectionsRejected.ip_connections, 1);

    await joined.pop()!.close();
    await waitFor(() => relay.sessionCount === 2, 3_000, "the session end");
    joined.push((await joinWs(relay, "r")).client);
    await closeAll(joined);
  });
});

Deno.test("pending handshake limit returns 503", async () => {
  await withRelay({
    maxPendingHandshakes: 2,
    maxHandshakesPerIp: 10,
  }, async (relay) => {
    const idle = await Promise.all([1, 2].map(() => connectWs(relay, "p")));
    const refused = await upgradeStatus(relay, "p");
    assert.equal(refused.status, 503);
    assert.equal(refused.code, "rate_limited");
    assert.equal(relay.stats.connectionsRejected.pending_handshakes, 1);
    await closeAll(idle);
  });
});

Deno.test("rejected upgrade opens no session", async () => {
  await withRelay({ maxConnectionsPerIp: 1 }, async (relay) => {
    const first = await joinWs(relay, "room");
    const socket = new WebSocket(wsUrl(relay, "room"));
    const outcome = await new Promise<string>((resolve) => {
      socket.onopen = () => resolve("open");
      socket.onerror = () => resolve("error");
    });
    if (socket.readyState !== WebSocket.CLOSED) {
      await new Promise((resolve) => {
        socket.onclose = resolve;
        if (socket.readyState === WebSocket.OPEN) socket.close();
      });
    }
    assert.equal(outcome, "error");
    assert.equal(relay.sessionCount, 1);
    await first.client.close();
  });
});

Deno.test({
  name: "webtransport connection limit closes 4429",
  ignore: !hasWebTransport,
  async fn() {
    await using test = await startWtRelay({ maxConnectionsPerIp: 1 });
    const first = await joinWt(test.relay, "room");

    const info = await fetchWtInfo(test.relay);
    const wt = new WebTransport(
      `https://127.0.0.1:${test.relay.wtPort}/room/room`,
      {
        serverCertificateHashes: toServerCertificateHashes(
          info.certificateHashes,
        ),
      },
    );
    wt.ready.catch(() => {});
    const closed = await wt.closed.catch((error) => ({
      closeCode: null,
      reason: String(error),
    }));
    assert.equal(closed.closeCode, 4429);
    assert.equal(closed.reason, "rate_limited");
    assert.equal(test.relay.stats.connectionsRejected.ip_connections, 1);

    // Both transports count against the same limit.
    const refused = await upgradeStatus(test.relay, "room");
    assert.equal(refused.status, 429);
    assert.equal(test.relay.stats.connectionsRejected.ip_connections, 2);

    await first.client.close();
    await waitFor(() => test.relay.sessionCount === 0, 5_000, "session end");
    const again = await WtTestClient.open(test.relay, "/room/room");
    await again.join();
    await again.close();
  },
});

// Room and relay limits under concurrent joins.

/** Opens `count` sockets, sends every hello at once, and counts outcomes. */
async function raceJoins(
  relay: Relay,
  rooms: string[],
): Promise<{ welcomed: number; full: number }> {
  const clients = await Promise.all(
    rooms.map((room) => connectWs(relay, room)),
  );
  for (const client of clients) client.sendHello();
  const outcomes = await Promise.all(clients.map(async (client) => {
    const first = await client.nextSignal(undefined, 5_000);
    if (first.type === "welcome") return "welcome";
    await client.waitClosed();
    return first.type === "error" ? String(first.code) : first.type;
  }));
  await closeAll(clients);
  return {
    welcomed: outcomes.filter((outcome) => outcome === "welcome").length,
    full: outcomes.filter((outcome) => outcome === "room_full").length,
  };
}

const RACE_LIMITS: Partial<RelayOptions> = {
  maxConnectionsPerIp: 100,
  maxHandshakesPerIp: 100,
};

Deno.test("concurrent joins fill a room exactly", async () => {
  await withRelay(
    { ...RACE_LIMITS, maxParticipantsPerRoom: 10 },
    async (relay) => {
      const result = await raceJoins(relay, Array(40).fill("race"));
      assert.equal(result.welcomed, 10);
      assert.equal(result.full, 30);
    },
  );
});

Deno.test("concurrent joins respect max rooms", async () => {
  await withRelay({ ...RACE_LIMITS, maxRooms: 5 }, async (relay) => {
    const rooms = [...Array(30).keys()].map((i) => `room-${i}`);
    const result = await raceJoins(relay, rooms);
    assert.equal(result.welcomed, 5);
    assert.equal(result.full, 25);
  });
});

Deno.test("concurrent joins respect max participants", async () => {
  await withRelay({ ...RACE_LIMITS, maxParticipants: 7 }, async (relay) => {
    const rooms = [...Array(30).keys()].map((i) => `room-${i % 3}`);
    const result = await raceJoins(relay, rooms);
    assert.equal(result.welcomed, 7);
    assert.equal(result.full, 23);
  });
});
