import assert from "node:assert/strict";

import type { RelayOptions } from "../src/options.ts";
import type { Relay } from "../src/relay.ts";
import { signJwt } from "../src/auth/jwt.ts";
import { buildMediaPacket } from "../src/wire/media.ts";
import {
  closeAll,
  connectWs,
  delay,
  joinWs,
  metricValue,
  RawWebSocket,
  type ReceivedSignal,
  scrapeMetrics,
  startTestRelay,
  type TestClient,
  waitFor,
  withTimeout,
} from "./helpers.ts";

const SECRET = "websocket-test-secret-of-at-least-32-bytes";

/** Signs a token for `claims`, valid for every room unless `room` is given. */
function token(claims: Record<string, unknown> = {}): Promise<string> {
  return signJwt(SECRET, { sub: "user", ...claims });
}

/** Seconds since the epoch, `offsetMs` from now, as JWT `exp` wants. */
function epochSeconds(offsetMs: number): number {
  return (Date.now() + offsetMs) / 1000;
}

/**
 * Waits for the relay to close `client` and checks the code and that an
 * `error` signal with `errorCode` was the last signal before the close.
 */
async function assertRelayClose(
  client: TestClient,
  code: number,
  errorCode: string,
): Promise<void> {
  const info = await client.waitClosed();
  assert.equal(info.code, code);

  const last = client.signalLog.at(-1);
  assert.equal(last?.type, "error", `no error signal before close ${code}`);
  assert.equal(last?.code, errorCode);
  assert.equal(typeof last?.message, "string");
}

/** Returns the ids of a `room_update`, in order. */
function idsOf(update: ReceivedSignal): string[] {
  const participants = update.participants as { id: string }[];
  return participants.map((participant) => participant.id);
}

/** Returns the source id of each participant of a `room_update`. */
function sourcesOf(update: ReceivedSignal): Map<string, number> {
  const participants = update.participants as { id: string; source: number }[];
  return new Map(participants.map((p) => [p.id, p.source]));
}

/** Sends an upgrade request with `fetch` and returns the HTTP status. */
async function upgradeStatus(
  relay: Relay,
  path: string,
): Promise<{ status: number; code: unknown }> {
  const response = await fetch(`${relay.httpUrl}${path}`, {
    headers: {
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-key": crypto.getRandomValues(new Uint8Array(16))
        .toBase64(),
      "sec-websocket-version": "13",
    },
  });
  const body = await response.json().catch(() => null);
  return { status: response.status, code: body?.error?.code };
}

/** Returns a signal of unknown type that is exactly `bytes` bytes of UTF-8. */
function signalOfBytes(bytes: number, fill = "a"): string {
  const base = JSON.stringify({ type: "future", pad: "" });
  const fillBytes = new TextEncoder().encode(fill).length;
  const room = bytes - base.length;
  const pad = fill.repeat(Math.floor(room / fillBytes)) +
    "a".repeat(room % fillBytes);
  const text = JSON.stringify({ type: "future", pad });
  assert.equal(new TextEncoder().encode(text).length, bytes);
  return text;
}

/** Starts a relay with `options`, runs `body`, and always cleans up. */
async function withRelay(
  options: Partial<RelayOptions>,
  body: (relay: Relay) => Promise<void>,
): Promise<void> {
  await using test = await startTestRelay(options);
  await body(test.relay);
}

// Joining and room_update.

Deno.test("welcome carries session fields", async () => {
  await withRelay({}, async (relay) => {
    const { client, welcome } = await joinWs(relay, "lobby", { alias: "ann" });

    assert.equal(welcome.type, "welcome");
    assert.equal(typeof welcome.participant_id, "string");
    assert.notEqual(welcome.participant_id, "");
    assert.equal(welcome.room, "lobby");
    assert.equal(welcome.relay, relay.identity.fingerprint);
    // welcome is the first signal, and room_update comes right after it.
    assert.equal(client.signalLog[0], welcome);
    assert.equal(client.signalLog[1]?.type, "room_update");
    await client.close();
  });
});

Deno.test("room_update follows joins and leaves", async () => {
  await withRelay({}, async (relay) => {
    const a = await joinWs(relay, "room", { alias: "a" });
    const b = await joinWs(relay, "room", { alias: "b" });
    const c = await joinWs(relay, "room");
    const [idA, idB, idC] = [a, b, c].map((p) => p.welcome.participant_id);

    const seenByA = [
      await a.client.nextSignal("room_update"),
      await a.client.nextSignal("room_update"),
      await a.client.nextSignal("room_update"),
    ];
    assert.deepEqual(seenByA.map(idsOf), [
      [idA],
      [idA, idB],
      [idA, idB, idC],
    ]);
    assert.deepEqual(idsOf(await b.client.nextSignal("room_update")), [
      idA,
      idB,
    ]);
    assert.deepEqual(idsOf(await b.client.nextSignal("room_update")), [
      idA,
      idB,
      idC,
    ]);

    const full = await c.client.nextSignal("room_update");
    assert.equal(full.room, "room");
    assert.deepEqual(full.participants, [
      {
        id: idA,
        source: 0,
        alias: "a",
        fingerprint: null,
        transport: "ws",
        relay: null,
      },
      {
        id: idB,
        source: 1,
        alias: "b",
        fingerprint: null,
        transport: "ws",
        relay: null,
      },
      {
        id: idC,
        source: 2,
        alias: null,
        fingerprint: null,
        transport: "ws",
        relay: null,
      },
    ]);

    b.client.sendSignal({ type: "hangup" });
    await b.client.waitClosed();
    assert.deepEqual(idsOf(await a.client.nextSignal("room_update")), [
      idA,
      idC,
    ]);
    const afterLeave = await c.client.nextSignal("room_update");
    assert.deepEqual(idsOf(afterLeave), [idA, idC]);
    assert.deepEqual([...sourcesOf(afterLeave).values()], [0, 2]);

    // A later join gets a new source id, not b's.
    const d = await joinWs(relay, "room");
    const withD = await d.client.nextSignal("room_update");
    assert.deepEqual(idsOf(withD), [idA, idC, d.welcome.participant_id]);
    assert.equal(sourcesOf(withD).get(d.welcome.participant_id as string), 3);

    await closeAll([a.client, c.client, d.client]);
  });
});

Deno.test("client close sends room_update", async () => {
  await withRelay({}, async (relay) => {
    const a = await joinWs(relay, "room");
    const b = await joinWs(relay, "room");
    await a.client.nextSignal("room_update");
    await a.client.nextSignal("room_update");
    await b.client.close();

    const update = await a.client.nextSignal("room_update");
    assert.deepEqual(idsOf(update), [a.welcome.participant_id]);
    assert.equal(relay.rooms.get("room")?.size, 1);
    await a.client.close();
    await waitFor(() => relay.rooms.roomCount === 0, 2_000, "room removal");
  });
});

Deno.test("hangup closes with 1000", async () => {
  await withRelay({}, async (relay) => {
    const { client } = await joinWs(relay, "room");
    client.sendSignal({ type: "hangup", reason: "done" });
    const info = await client.waitClosed();

    assert.equal(info.code, 1000);
    assert.equal(client.signalLog.some((s) => s.type === "error"), false);
    assert.equal(relay.stats.closes.get(1000), 1);
  });
});

Deno.test("ping returns pong with ts", async () => {
  await withRelay({}, async (relay) => {
    const { client } = await joinWs(relay, "room");
    client.sendSignal({ type: "ping", ts: 1234.5 });
    const pong = await client.nextSignal("pong");

    assert.deepEqual(pong, { type: "pong", ts: 1234.5 });
    await client.close();
  });
});

Deno.test("unknown signal is ignored and counted", async () => {
  await withRelay({}, async (relay) => {
    const { client } = await joinWs(relay, "room");
    client.sendSignal({ type: "from_the_future", value: [1, 2] });
    await client.sync();

    assert.equal(relay.stats.unknownSignals, 1);
    assert.equal(client.socket.readyState, WebSocket.OPEN);
    const metrics = await scrapeMetrics(relay);
    assert.equal(metricValue(metrics, "wzp_relay_unknown_signals_total"), 1);
    await client.close();
  });
});

Deno.test("auth signal joins like hello", async () => {
  await withRelay({ tokenSecret: SECRET }, async (relay) => {
    const client = await connectWs(relay, "room");
    client.sendSignal({ type: "auth", token: await token({ name: "old" }) });
    const welcome = await client.nextSignal("welcome");
    const update = await client.nextSignal("room_update");

    assert.equal(welcome.room, "room");
    const [info] = update.participants as { alias: string }[];
    assert.equal(info?.alias, "old");
    await client.close();
  });
});

// Protocol errors: 4400.

Deno.test("malformed signals close with 4400", async () => {
  const cases = [
    "not json",
    "{",
    "[1,2]",
    "null",
    "42",
    '"ping"',
    "{}",
    '{"type":7}',
    '{"type":null}',
    '{"type":"ping","ts":"5"}',
    '{"type":"ping"}',
    '{"type":"hangup","reason":1}',
    '{"type":"refresh","token":5}',
    '{"type":"refresh"}',
  ];
  await withRelay({}, async (relay) => {
    for (const text of cases) {
      const { client } = await joinWs(relay, "room");
      client.sendText(text);
      await assertRelayClose(client, 4400, "bad_request");
    }
    assert.equal(relay.stats.closes.get(4400), cases.length);
  });
});

Deno.test("malformed hello closes with 4400", async () => {
  const cases = [
    { type: "hello", token: 1 },
    { type: "hello", alias: ["a"] },
    { type: "hello", alias: null },
    { type: "hello", alias: "a".repeat(65) },
    { type: "auth" },
    { type: "auth", token: false },
  ];
  await withRelay({}, async (relay) => {
    for (const signal of cases) {
      const client = await connectWs(relay, "room");
      client.sendSignal(signal);
      await assertRelayClose(client, 4400, "bad_request");
      assert.equal(client.signalLog.length, 1, JSON.stringify(signal));
    }
    assert.equal(relay.rooms.roomCount, 0);
  });
});

Deno.test("media before hello closes with 4400", async () => {
  await withRelay({}, async (relay) => {
    const client = await connectWs(relay, "room");
    client.sendMedia(buildMediaPacket());
    await assertRelayClose(client, 4400, "bad_request");
  });
});

Deno.test("duplicate hello closes with 4400", async () => {
  await withRelay({}, async (relay) => {
    const { client } = await joinWs(relay, "room");
    client.sendHello();
    await assertRelayClose(client, 4400, "bad_request");

    const second = await joinWs(relay, "room");
    second.client.sendSignal({ type: "auth", token: "t" });
    await assertRelayClose(second.client, 4400, "bad_request");
  });
});

Deno.test("invalid room names get HTTP 400", async () => {
  const segments = [
    "",
    "_reserved",
    "%5Freserved",
    "a".repeat(129),
    "%C3%A9".repeat(64) + "a",
    "a%2Fb",
    "a/b",
    "a%00b",
    "a%1Fb",
    "a%7Fb",
    "%ZZ",
    "%C3",
    "%FF",
  ];
  await withRelay({}, async (relay) => {
    for (const segment of segments) {
      const response = await fetch(`${relay.httpUrl}/ws/${segment}`);
      const body = await response.json();

      assert.equal(response.status, 400, segment);
      assert.equal(body.error.code, "bad_request", segment);
    }
    assert.equal(relay.sessionCount, 0);
    const metrics = await scrapeMetrics(relay);
    assert.equal(
      metricValue(metrics, "wzp_relay_requests_rejected_total", {
        reason: "invalid_room",
      }),
      segments.length,
    );
  });
});

Deno.test("invalid room refuses WebSocket upgrade", async () => {
  await withRelay({}, async (relay) => {
    const raw = await RawWebSocket.open(relay, "/ws/_relay");

    assert.equal(raw.status, 400);
    raw.close();
  });
});

Deno.test("longest room names join", async () => {
  await withRelay({}, async (relay) => {
    const ascii = "a".repeat(128);
    // 62 * 2 + 3 + 1 = 128 bytes in 64 characters.
    const multiByte = "é".repeat(62) + "€a";
    const first = await joinWs(relay, ascii);
    const second = await joinWs(relay, multiByte);

    assert.equal(first.welcome.room, ascii);
    assert.equal(second.welcome.room, multiByte);
    await closeAll([first.client, second.client]);
  });
});

Deno.test("percent-encoded room names decode", async () => {
  await withRelay({}, async (relay) => {
    const upper = await joinWs(relay, "caf%C3%A9", {}, { rawSegment: true });
    const lower = await joinWs(relay, "caf%c3%a9", {}, { rawSegment: true });
    const plain = await joinWs(relay, "café");

    assert.equal(upper.welcome.room, "café");
    const update = await plain.client.nextSignal("room_update");
    assert.equal(update.room, "café");
    assert.deepEqual(idsOf(update), [
      upper.welcome.participant_id,
      lower.welcome.participant_id,
      plain.welcome.participant_id,
    ]);
    assert.equal(relay.rooms.roomCount, 1);
    await closeAll([upper.client, lower.client, plain.client]);
  });
});

// Authentication: 4401 and 4403.

Deno.test("missing token closes with 4401", async () => {
  await withRelay({ tokenSecret: SECRET }, async (relay) => {
    const client = await connectWs(relay, "room");
    client.sendHello();
    await assertRelayClose(client, 4401, "unauthorized");

    assert.equal(relay.stats.auth.missing, 1);
    assert.equal(relay.rooms.roomCount, 0);
  });
});

Deno.test("invalid token closes with 4401", async () => {
  const badTokens = [
    "garbage",
    await signJwt("another-secret-that-is-also-32-bytes-long", {}),
    (await token()).slice(0, -2),
  ];
  await withRelay({ tokenSecret: SECRET }, async (relay) => {
    for (const bad of badTokens) {
      const client = await connectWs(relay, "room");
      client.sendHello({ token: bad });
      await assertRelayClose(client, 4401, "unauthorized");
    }
    assert.equal(relay.stats.auth.invalid, badTokens.length);
  });
});

Deno.test("expired token closes with 4401", async () => {
  await withRelay({ tokenSecret: SECRET }, async (relay) => {
    const client = await connectWs(relay, "room");
    // Further in the past than any clock-skew allowance.
    client.sendHello({ token: await token({ exp: epochSeconds(-600_000) }) });
    await assertRelayClose(client, 4401, "unauthorized");

    assert.equal(client.signalLog.length, 1);
    assert.equal(relay.stats.auth.expired, 1);
  });
});

Deno.test("expired token gets no welcome", async () => {
  // exp lies 5 s in the past, which is within the verifier's clock-skew
  // allowance. The relay may reject the token, or admit it and keep the
  // session for the allowance. It must not welcome the participant and
  // then drop it at once.
  await withRelay({ tokenSecret: SECRET }, async (relay) => {
    const client = await connectWs(relay, "room");
    client.sendHello({ token: await token({ exp: epochSeconds(-5_000) }) });
    const first = await client.nextSignal();

    if (first.type === "welcome") {
      // Admitted: the session must not end right after the welcome.
      const earlyClose = await withTimeout(client.closed, 300, "close").then(
        (info) => info.code,
        () => null,
      );
      assert.equal(earlyClose, null, `welcomed, then closed ${earlyClose}`);
      await client.close();
    } else {
      assert.equal(first.type, "error");
      assert.equal(first.code, "unauthorized");
      assert.equal((await client.waitClosed()).code, 4401);
    }
  });
});

Deno.test("token expiry ends session unless refreshed", async () => {
  await withRelay({ tokenSecret: SECRET }, async (relay) => {
    const exp = epochSeconds(1_500);
    const lapsing = await joinWs(relay, "room", {
      token: await token({ exp }),
    });
    const refreshed = await joinWs(relay, "room", {
      token: await token({ exp }),
    });
    refreshed.client.sendSignal({
      type: "refresh",
      token: await token({ exp: epochSeconds(60_000) }),
    });
    await refreshed.client.sync();

    await assertRelayClose(lapsing.client, 4401, "unauthorized");
    // The refreshed session outlives the first token's exp.
    await waitFor(() => Date.now() / 1000 > exp, 2_000, "the first exp");
    await refreshed.client.sync();
    assert.equal(refreshed.client.socket.readyState, WebSocket.OPEN);
    const update = await refreshed.client.nextSignal("room_update");
    assert.equal(idsOf(update).length, 2);
    assert.deepEqual(idsOf(await refreshed.client.nextSignal("room_update")), [
      refreshed.welcome.participant_id,
    ]);
    await refreshed.client.close();
  });
});

Deno.test("bad refresh token closes session", async () => {
  await withRelay({ tokenSecret: SECRET }, async (relay) => {
    const invalid = await joinWs(relay, "room", { token: await token() });
    invalid.client.sendSignal({ type: "refresh", token: "garbage" });
    await assertRelayClose(invalid.client, 4401, "unauthorized");

    const otherRoom = await joinWs(relay, "room", { token: await token() });
    otherRoom.client.sendSignal({
      type: "refresh",
      token: await token({ room: "elsewhere" }),
    });
    await assertRelayClose(otherRoom.client, 4403, "forbidden");
  });
});

Deno.test("token for other room closes with 4403", async () => {
  await withRelay({ tokenSecret: SECRET }, async (relay) => {
    const client = await connectWs(relay, "room");
    client.sendHello({ token: await token({ room: "elsewhere" }) });
    await assertRelayClose(client, 4403, "forbidden");

    const allowed = await joinWs(relay, "elsewhere", {
      token: await token({ room: "elsewhere" }),
    });
    assert.equal(allowed.welcome.room, "elsewhere");
    await allowed.client.close();
  });
});

Deno.test("bad query token gets HTTP 401", async () => {
  await withRelay({ tokenSecret: SECRET }, async (relay) => {
    const expired = await token({ exp: epochSeconds(-600_000) });
    for (const bad of ["garbage", expired]) {
      const result = await upgradeStatus(relay, `/ws/room?token=${bad}`);

      assert.equal(result.status, 401);
      assert.equal(result.code, "unauthorized");
    }
    assert.equal(relay.sessionCount, 0);
  });
});

Deno.test("query token for other room is refused", async () => {
  await withRelay({ tokenSecret: SECRET }, async (relay) => {
    const other = await token({ room: "elsewhere" });
    const result = await upgradeStatus(relay, `/ws/room?token=${other}`);

    assert.equal(result.status, 403);
    assert.equal(result.code, "forbidden");
  });
});

Deno.test("query token admits hello without token", async () => {
  await withRelay({ tokenSecret: SECRET }, async (relay) => {
    const query = { token: await token({ name: "from-query" }) };
    const { client, welcome } = await joinWs(relay, "room", {}, { query });
    const update = await client.nextSignal("room_update");

    assert.equal(welcome.room, "room");
    const [info] = update.participants as { alias: string }[];
    assert.equal(info?.alias, "from-query");
    await client.close();
  });
});

Deno.test("hello token overrides query token", async () => {
  await withRelay({ tokenSecret: SECRET }, async (relay) => {
    const query = { token: await token({ name: "from-query" }) };
    const hello = { token: await token({ name: "from-hello" }) };
    const { client } = await joinWs(relay, "room", hello, { query });
    const update = await client.nextSignal("room_update");
    const [info] = update.participants as { alias: string }[];
    assert.equal(info?.alias, "from-hello");
    await client.close();

    const refused = await connectWs(relay, "room", { query });
    refused.sendHello({ token: "garbage" });
    await assertRelayClose(refused, 4401, "unauthorized");
  });
});

// Timeouts and limits: 4408, 4409, 4413.

Deno.test("no hello closes with 4408", async () => {
  await withRelay({ handshakeTimeoutMs: 300 }, async (relay) => {
    const early = await joinWs(relay, "room");
    const idle = await connectWs(relay, "room");
    await assertRelayClose(idle, 4408, "timeout");

    // early connected before idle, so its own handshake deadline has
    // passed too; the hello cancelled it.
    await early.client.sync();
    assert.equal(early.client.socket.readyState, WebSocket.OPEN);
    assert.equal(relay.stats.closes.get(4408), 1);
    await early.client.close();
  });
});

Deno.test("full room closes with 4409", async () => {
  await withRelay({ maxParticipantsPerRoom: 2 }, async (relay) => {
    const a = await joinWs(relay, "room");
    const b = await joinWs(relay, "room");
    const c = await connectWs(relay, "room");
    c.sendHello();
    await assertRelayClose(c, 4409, "room_full");
    assert.equal(c.signalLog.length, 1);

    const elsewhere = await joinWs(relay, "other");
    await a.client.sync();
    const updates = a.client.signalLog.filter((s) => s.type === "room_update");
    assert.equal(updates.length, 2);
    await closeAll([a.client, b.client, elsewhere.client]);
  });
});

Deno.test("full relay closes with 4409", async () => {
  await withRelay({ maxParticipants: 2 }, async (relay) => {
    const a = await joinWs(relay, "r1");
    const b = await joinWs(relay, "r2");
    const c = await connectWs(relay, "r3");
    c.sendHello();
    await assertRelayClose(c, 4409, "room_full");

    assert.equal(relay.rooms.get("r3"), undefined);
    await b.client.close();
    await waitFor(() => relay.rooms.localParticipants === 1, 2_000, "leave");
    const d = await joinWs(relay, "r3");
    await closeAll([a.client, d.client]);
  });
});

Deno.test("room count limit closes with 4409", async () => {
  await withRelay({ maxRooms: 1 }, async (relay) => {
    const a = await joinWs(relay, "r1");
    const b = await connectWs(relay, "r2");
    b.sendHello();
    await assertRelayClose(b, 4409, "room_full");

    const c = await joinWs(relay, "r1");
    assert.equal(relay.rooms.roomCount, 1);
    await closeAll([a.client, c.client]);
  });
});

Deno.test("oversized signal closes with 4413", async () => {
  await withRelay({}, async (relay) => {
    const ascii = await joinWs(relay, "room");
    ascii.client.sendText(signalOfBytes(65_537));
    await assertRelayClose(ascii.client, 4413, "too_large");

    // Fewer UTF-16 code units than the limit, but more UTF-8 bytes.
    const multiByte = await joinWs(relay, "room");
    multiByte.client.sendText(signalOfBytes(65_537, "é"));
    await assertRelayClose(multiByte.client, 4413, "too_large");

    const beforeHello = await connectWs(relay, "room");
    beforeHello.sendText(signalOfBytes(65_537));
    await assertRelayClose(beforeHello, 4413, "too_large");
  });
});

Deno.test("signal of 65536 bytes is accepted", async () => {
  await withRelay({}, async (relay) => {
    const { client } = await joinWs(relay, "room");
    client.sendText(signalOfBytes(65_536));
    client.sendText(signalOfBytes(65_536, "é"));
    await client.sync();

    assert.equal(relay.stats.unknownSignals, 2);
    assert.equal(client.socket.readyState, WebSocket.OPEN);
    await client.close();
  });
});

Deno.test("oversized binary frame closes with 4413", async () => {
  await withRelay({}, async (relay) => {
    const { client } = await joinWs(relay, "room");
    // At the frame limit: only dropped as a too long media packet.
    client.sendMedia(new Uint8Array(65_536));
    await client.sync();
    assert.equal(relay.stats.dropped.too_long, 1);

    client.sendMedia(new Uint8Array(65_537));
    await assertRelayClose(client, 4413, "too_large");
  });
});

// Operator and relay closes: 4410, 4503.

Deno.test("kick closes with 4410", async () => {
  await withRelay({}, async (relay) => {
    const a = await joinWs(relay, "room");
    const b = await joinWs(relay, "room");
    await a.client.nextSignal("room_update");
    await a.client.nextSignal("room_update");
    const id = b.welcome.participant_id as string;
    const response = await fetch(
      `${relay.httpUrl}/api/rooms/room/participants/${id}`,
      { method: "DELETE" },
    );
    await response.body?.cancel();

    assert.equal(response.status, 200);
    await assertRelayClose(b.client, 4410, "kicked");
    const update = await a.client.nextSignal("room_update");
    assert.deepEqual(idsOf(update), [a.welcome.participant_id]);
    await a.client.close();
  });
});

Deno.test("relay stop closes with 4503", async () => {
  await using test = await startTestRelay();
  const relay = test.relay;
  const a = await joinWs(relay, "room");
  const b = await joinWs(relay, "other");
  const pending = await connectWs(relay, "room");
  await withTimeout(relay.stop(), 5_000, "relay.stop()");

  await assertRelayClose(a.client, 4503, "shutting_down");
  await assertRelayClose(b.client, 4503, "shutting_down");
  await assertRelayClose(pending, 4503, "shutting_down");
  assert.equal(relay.state, "stopped");
  assert.equal(relay.sessionCount, 0);
  assert.equal(relay.rooms.roomCount, 0);
  await assert.rejects(() => connectWs(relay, "room"));
});

// Media.

Deno.test("media fans out with source prefix", async () => {
  await withRelay({}, async (relay) => {
    const members = [
      await joinWs(relay, "room"),
      await joinWs(relay, "room"),
      await joinWs(relay, "room"),
    ];
    const last = members[2]!.client;
    const sources = sourcesOf(await last.nextSignal("room_update"));

    for (const [index, sender] of members.entries()) {
      const packet = buildMediaPacket({
        codec: index,
        sequence: 100 + index,
        timestamp: 0xdead_beef,
        payload: new Uint8Array([index, 1, 2, 3, 255]),
      });
      sender.client.sendMedia(packet);
      const source = sources.get(sender.welcome.participant_id as string)!;

      for (const receiver of members) {
        if (receiver === sender) continue;
        const frame = await receiver.client.nextMedia();
        assert.equal(frame.length, packet.length + 2);
        assert.equal((frame[0]! << 8) | frame[1]!, source);
        assert.deepEqual(frame.subarray(2), packet);
      }
    }

    // Nothing came back to a sender: each client's queue is empty once
    // everything the relay sent before a pong has arrived.
    for (const member of members) {
      await member.client.sync();
      assert.equal(member.client.pendingMedia, 0);
      assert.equal(member.client.mediaReceived, 2);
    }
    assert.equal(relay.stats.received.ws, 3);
    assert.equal(relay.stats.packetsForwarded, 6);
    await closeAll(members.map((member) => member.client));
  });
});

Deno.test("media keeps order per sender", async () => {
  await withRelay({}, async (relay) => {
    const sender = await joinWs(relay, "room");
    const receiver = await joinWs(relay, "room");
    for (let sequence = 0; sequence < 50; sequence++) {
      sender.client.sendMedia(buildMediaPacket({ sequence }));
    }

    for (let sequence = 0; sequence < 50; sequence++) {
      const frame = await receiver.client.nextMedia();
      assert.equal(new DataView(frame.buffer).getUint16(4), sequence);
    }
    await closeAll([sender.client, receiver.client]);
  });
});

Deno.test("media stays in its room", async () => {
  await withRelay({}, async (relay) => {
    const sender = await joinWs(relay, "room");
    const receiver = await joinWs(relay, "room");
    const outsider = await joinWs(relay, "other");
    sender.client.sendMedia(buildMediaPacket({ payload: new Uint8Array(8) }));
    await receiver.client.nextMedia();

    // The forward to the room has happened, so a frame for the outsider
    // would be queued before this pong.
    await outsider.client.sync();
    assert.equal(outsider.client.mediaReceived, 0);
    await closeAll([sender.client, receiver.client, outsider.client]);
  });
});

Deno.test("invalid media is dropped and counted", async () => {
  await withRelay({}, async (relay) => {
    const sender = await joinWs(relay, "room");
    const receiver = await joinWs(relay, "room");
    const versionBit = buildMediaPacket();
    versionBit[0] = 0x80;
    const shortReport = new Uint8Array(15);
    shortReport[0] = 0x02;
    sender.client.sendMedia(new Uint8Array(11));
    sender.client.sendMedia(versionBit);
    sender.client.sendMedia(new Uint8Array(1_101));
    sender.client.sendMedia(shortReport);
    sender.client.sendMedia(buildMediaPacket({ sequence: 7 }));

    // The valid packet is the first and only frame to arrive.
    const frame = await receiver.client.nextMedia();
    assert.equal(new DataView(frame.buffer).getUint16(4), 7);
    await receiver.client.sync();
    assert.equal(receiver.client.mediaReceived, 1);

    const dropped = relay.stats.dropped;
    assert.equal(dropped.too_short, 1);
    assert.equal(dropped.bad_version, 1);
    assert.equal(dropped.too_long, 1);
    assert.equal(dropped.short_quality_report, 1);
    assert.equal(sender.client.socket.readyState, WebSocket.OPEN);

    const metrics = await scrapeMetrics(relay);
    const name = "wzp_relay_packets_dropped_total";
    for (
      const reason of [
        "too_short",
        "bad_version",
        "too_long",
        "short_quality_report",
      ]
    ) {
      assert.equal(metricValue(metrics, name, { reason }), 1, reason);
    }
    assert.equal(
      metricValue(metrics, "wzp_relay_packets_received_total", {
        transport: "ws",
      }),
      5,
    );
    await closeAll([sender.client, receiver.client]);
  });
});

Deno.test("media edge sizes are forwarded", async () => {
  await withRelay({}, async (relay) => {
    const sender = await joinWs(relay, "room");
    const receiver = await joinWs(relay, "room");
    const smallest = new Uint8Array(12);
    const largest = new Uint8Array(1_100);
    largest.fill(0x5a, 12);
    const withReport = buildMediaPacket({
      qualityReport: new Uint8Array([1, 2, 3, 4]),
    });
    for (const packet of [smallest, largest, withReport]) {
      sender.client.sendMedia(packet);
      const frame = await receiver.client.nextMedia();
      assert.deepEqual(frame.subarray(2), packet);
    }
    await closeAll([sender.client, receiver.client]);
  });
});

// Slow consumers: 4008.

interface SlowConsumerRun {
  relay: Relay;
  sender: TestClient;
  receiver: TestClient;
  stuck: RawWebSocket;
  /** Packets the sender sent before the relay closed the stuck client. */
  sent: number;
  /** Frames the reading receiver had when the relay first dropped one. */
  receivedAtFirstDrop: number;
}

/**
 * Joins a sender, a reading receiver and a raw client that never reads,
 * then sends 1100-byte packets until the relay closes the raw client for
 * being slow. The raw client's TCP buffers fill first; only then does the
 * relay's send buffer for it grow past `wsBufferLimitBytes`.
 */
async function runSlowConsumer(relay: Relay): Promise<SlowConsumerRun> {
  const sender = await joinWs(relay, "slow");
  const receiver = await joinWs(relay, "slow");
  const stuck = await RawWebSocket.open(relay, "/ws/slow");
  assert.equal(stuck.status, 101);
  await stuck.sendText(JSON.stringify({ type: "hello" }));
  await waitFor(() => relay.rooms.get("slow")?.size === 3, 2_000, "joins");

  const packet = new Uint8Array(1_100);
  let sent = 0;
  let receivedAtFirstDrop = -1;
  const deadline = performance.now() + 15_000;
  while (relay.stats.closes.get(4008) === undefined) {
    if (performance.now() > deadline) {
      throw new Error(`No close 4008 after ${sent} packets`);
    }
    // A burst stays under the receiver's buffer limit, so the reading
    // receiver loses few or no packets.
    for (let i = 0; i < 40; i++, sent++) sender.client.sendMedia(packet);
    await delay(1);
    receiver.client.drainMedia();
    if (receivedAtFirstDrop === -1 && relay.stats.dropped.ws_buffer_full > 0) {
      receivedAtFirstDrop = receiver.client.mediaReceived;
    }
  }
  return {
    relay,
    sender: sender.client,
    receiver: receiver.client,
    stuck,
    sent,
    receivedAtFirstDrop,
  };
}

// The sender floods on purpose, so its own rate limits are lifted.
const SLOW_OPTIONS: Partial<RelayOptions> = {
  wsBufferLimitBytes: 65_536,
  slowConsumerTimeoutMs: 300,
  maxMediaPacketsPerSecond: 1_000_000,
  maxMediaBytesPerSecond: 1_000_000_000,
};

Deno.test("stuck receiver closes with 4008", async () => {
  await withRelay(SLOW_OPTIONS, async (relay) => {
    const run = await runSlowConsumer(relay);
    run.stuck.close();

    assert.equal(relay.stats.closes.get(4008), 1);
    assert.ok(relay.stats.dropped.ws_buffer_full > 0);
    assert.equal(relay.rooms.get("slow")?.size, 2);

    // The reading receiver stays and keeps getting media in order.
    await run.receiver.sync();
    run.receiver.drainMedia();
    const update = run.receiver.signalLog.findLast((s) =>
      s.type === "room_update"
    );
    assert.equal(idsOf(update!).length, 2);
    for (let sequence = 0; sequence < 5; sequence++) {
      run.sender.sendMedia(buildMediaPacket({ sequence }));
      const frame = await run.receiver.nextMedia();
      assert.equal(new DataView(frame.buffer).getUint16(4), sequence);
    }
    // It also got media while the relay was dropping the stuck client's.
    assert.ok(run.receivedAtFirstDrop >= 0);
    assert.ok(run.receiver.mediaReceived > run.receivedAtFirstDrop + 5);
    await closeAll([run.sender, run.receiver]);
  });
});

Deno.test("dropped frames are not counted forwarded", async () => {
  await withRelay(SLOW_OPTIONS, async (relay) => {
    const run = await runSlowConsumer(relay);
    run.stuck.close();
    await run.receiver.sync();

    // Each packet went to two receivers, the stuck one and the reading
    // one. A frame that a receiver dropped was not forwarded to it.
    const stats = relay.stats;
    assert.ok(stats.dropped.ws_buffer_full > 0);
    assert.ok(
      stats.packetsForwarded + stats.dropped.ws_buffer_full <= 2 * run.sent,
      `forwarded ${stats.packetsForwarded} + dropped ` +
        `${stats.dropped.ws_buffer_full} > ${2 * run.sent} frames`,
    );
    await closeAll([run.sender, run.receiver]);
  });
});
