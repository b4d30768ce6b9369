import assert from "node:assert/strict";

import { createAuthenticator } from "../src/auth/authenticator.ts";
import { signJwt } from "../src/auth/jwt.ts";
import { createHttpApp, isLoopback, PROXY_HEADERS } from "../src/http/app.ts";
import { createMetricsRegistry } from "../src/http/metrics.ts";
import { RelayIdentity } from "../src/identity/identity.ts";
import { silentLogger } from "../src/log.ts";
import { resolveOptions } from "../src/options.ts";
import type { Relay } from "../src/relay.ts";
import { RoomManager } from "../src/room/manager.ts";
import type { SessionContext } from "../src/session/session.ts";
import { RelayStats } from "../src/stats.ts";
import { buildMediaPacket } from "../src/wire/media.ts";
import {
  closeAll,
  connectWs,
  fetchJson,
  joinWs,
  metricValue,
  RawWebSocket,
  type ReceivedSignal,
  scrapeMetrics,
  startTestRelay,
  waitFor,
  withTimeout,
} from "./helpers.ts";

const ADMIN_TOKEN = "admin-token-for-tests";
const SECRET = "http-test-secret-that-is-at-least-32-bytes";

/** An address outside loopback, from the documentation range (RFC 5737). */
const REMOTE_ADDRESS = "192.0.2.10";

type ErrorBody = { error: { code: string; message: string } };

function errorCode(body: unknown): string | undefined {
  return (body as Partial<ErrorBody>).error?.code;
}

function idsOf(update: ReceivedSignal): string[] {
  return (update.participants as { id: string }[]).map((p) => p.id);
}

/** Starts a relay with `options`, runs `body`, and always cleans up. */
async function withRelay(
  options: Parameters<typeof startTestRelay>[0],
  body: (relay: Relay) => Promise<void>,
): Promise<void> {
  await using test = await startTestRelay(options);
  await body(test.relay);
}

/** Builds the HTTP app without a listener, to send requests from a chosen peer. */
async function directApp(
  init: { adminToken?: string; draining?: boolean } = {},
) {
  const options = resolveOptions({ adminToken: init.adminToken });
  const stats = new RelayStats();
  const rooms = new RoomManager(options, stats);
  const identity = await RelayIdentity.generate();
  const context: SessionContext = {
    rooms,
    auth: await createAuthenticator(),
    stats,
    logger: silentLogger,
    settings: options,
    relayFingerprint: identity.fingerprint,
    draining: init.draining ?? false,
    track: () => {},
    untrack: () => {},
  };
  const app = createHttpApp({
    context,
    rooms,
    registry: createMetricsRegistry({ stats, rooms, sessionCount: () => 0 }),
    settings: () => options,
    identity,
    webTransportInfo: () => Promise.resolve(null),
    federationPeers: () => ({ peers: [] }),
  });

  /** Sends a request as if it came from `hostname`. */
  return (
    path: string,
    hostname: string,
    requestInit: RequestInit = {},
  ): Promise<Response> =>
    Promise.resolve(
      app.request(path, requestInit, {
        remoteAddr: { transport: "tcp", hostname, port: 40_000 },
      }),
    );
}

// Health, readiness, identity.

Deno.test("healthz returns ok", async () => {
  await withRelay({}, async (relay) => {
    const { status, body } = await fetchJson(relay, "/healthz");

    assert.equal(status, 200);
    assert.deepEqual(body, { status: "ok" });
  });
});

Deno.test("readyz returns ready while running", async () => {
  await withRelay({}, async (relay) => {
    const { status, body } = await fetchJson(relay, "/readyz");

    assert.equal(status, 200);
    assert.deepEqual(body, { status: "ready" });
  });
});

Deno.test("readyz returns 503 while draining", async () => {
  // A stopping relay closes its listener at once, so the draining state
  // is only reachable through the app itself.
  const request = await directApp({ draining: true });
  const response = await request("/readyz", "127.0.0.1");

  assert.equal(response.status, 503);
  assert.deepEqual(await response.json(), { status: "draining" });
});

Deno.test("readyz returns 503 during stop", async () => {
  await withRelay({ shutdownTimeoutMs: 1_000 }, async (relay) => {
    // A client that never reads cannot finish the close handshake, so the
    // relay drains until its shutdown timeout.
    const stuck = await RawWebSocket.open(relay, "/ws/room");
    await stuck.sendText(JSON.stringify({ type: "hello" }));
    await waitFor(() => relay.rooms.roomCount === 1, 2_000, "the join");
    const stopping = relay.stop();

    let status: number | string;
    try {
      const response = await withTimeout(
        fetch(`${relay.httpUrl}/readyz`),
        2_000,
        "GET /readyz",
      );
      await response.body?.cancel();
      status = response.status;
    } catch (error) {
      status = `request failed: ${(error as Error).message}`;
    }
    stuck.close();
    await withTimeout(stopping, 5_000, "relay.stop()");

    assert.equal(status, 503);
  });
});

Deno.test("upgrade while draining gets 503", async () => {
  const request = await directApp({ draining: true });
  const response = await request("/ws/room", "127.0.0.1", {
    headers: { upgrade: "websocket", connection: "Upgrade" },
  });

  assert.equal(response.status, 503);
  assert.equal(errorCode(await response.json()), "shutting_down");
});

Deno.test("identity returns fingerprint and key", async () => {
  await withRelay({}, async (relay) => {
    const { status, body } = await fetchJson(relay, "/api/identity");

    assert.equal(status, 200);
    assert.deepEqual(body, {
      fingerprint: relay.identity.fingerprint,
      public_key: relay.identity.publicKeyBase64,
    });
    assert.match(relay.identity.fingerprint, /^([0-9a-f]{4}:){7}[0-9a-f]{4}$/);
  });
});

Deno.test("webtransport info 404 when disabled", async () => {
  await withRelay({}, async (relay) => {
    const { status, body } = await fetchJson(relay, "/api/webtransport");

    assert.equal(status, 404);
    assert.equal(errorCode(body), "not_found");
  });
});

Deno.test("unknown route returns JSON 404", async () => {
  await withRelay({}, async (relay) => {
    const { status, body } = await fetchJson(relay, "/no/such/route");

    assert.equal(status, 404);
    assert.equal(errorCode(body), "not_found");
  });
});

// Metrics.

Deno.test("metrics count traffic", async () => {
  await withRelay({}, async (relay) => {
    const a = await joinWs(relay, "room");
    const b = await joinWs(relay, "room");
    const c = await joinWs(relay, "other");
    const packet = buildMediaPacket({ payload: new Uint8Array(20) });
    for (let i = 0; i < 3; i++) a.client.sendMedia(packet);
    a.client.sendMedia(new Uint8Array(5));
    for (let i = 0; i < 3; i++) await b.client.nextMedia();
    await a.client.sync();

    const response = await fetch(`${relay.httpUrl}/metrics`);
    const text = await response.text();
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/plain/);

    assert.equal(metricValue(text, "wzp_relay_active_sessions"), 3);
    assert.equal(metricValue(text, "wzp_relay_active_rooms"), 2);
    assert.equal(
      metricValue(text, "wzp_relay_participants", { transport: "ws" }),
      3,
    );
    assert.equal(
      metricValue(text, "wzp_relay_participants", { transport: "wt" }),
      0,
    );
    assert.equal(metricValue(text, "wzp_relay_packets_forwarded_total"), 3);
    assert.equal(
      metricValue(text, "wzp_relay_bytes_forwarded_total"),
      3 * (packet.length + 2),
    );
    assert.equal(
      metricValue(text, "wzp_relay_packets_received_total", {
        transport: "ws",
      }),
      4,
    );
    assert.equal(
      metricValue(text, "wzp_relay_packets_dropped_total", {
        reason: "too_short",
      }),
      1,
    );
    assert.equal(
      metricValue(text, "wzp_relay_handshake_duration_seconds_count"),
      3,
    );

    await c.client.close();
    await waitFor(() => relay.rooms.roomCount === 1, 2_000, "room removal");
    const after = await scrapeMetrics(relay);
    assert.equal(metricValue(after, "wzp_relay_active_sessions"), 2);
    assert.equal(metricValue(after, "wzp_relay_active_rooms"), 1);
    await closeAll([a.client, b.client]);
  });
});

Deno.test("metrics count closes and auth", async () => {
  await withRelay({ tokenSecret: SECRET }, async (relay) => {
    const good = await joinWs(relay, "room", {
      token: await signJwt(SECRET, {}),
    });
    const missing = await connectWs(relay, "room");
    missing.sendHello();
    await missing.waitClosed();
    const invalid = await connectWs(relay, "room");
    invalid.sendHello({ token: "garbage" });
    await invalid.waitClosed();
    good.client.sendSignal({ type: "hangup" });
    await good.client.waitClosed();

    const text = await scrapeMetrics(relay);
    const auth = "wzp_relay_auth_attempts_total";
    assert.equal(metricValue(text, auth, { result: "ok" }), 1);
    assert.equal(metricValue(text, auth, { result: "missing" }), 1);
    assert.equal(metricValue(text, auth, { result: "invalid" }), 1);
    assert.equal(metricValue(text, auth, { result: "expired" }), 0);
    const closes = "wzp_relay_sessions_closed_total";
    assert.equal(metricValue(text, closes, { code: "4401" }), 2);
    assert.equal(metricValue(text, closes, { code: "1000" }), 1);
  });
});

Deno.test("metrics have no room labels", async () => {
  await withRelay({}, async (relay) => {
    const { client, welcome } = await joinWs(relay, "secret-room-name");
    const text = await scrapeMetrics(relay);

    assert.equal(text.includes("secret-room-name"), false);
    assert.equal(text.includes(welcome.participant_id as string), false);
    await client.close();
  });
});

// Admin routes.

Deno.test("rooms list shows members", async () => {
  await withRelay({}, async (relay) => {
    const b1 = await joinWs(relay, "beta");
    const b2 = await joinWs(relay, "beta");
    const a1 = await joinWs(relay, "alpha");
    const { status, body } = await fetchJson(relay, "/api/rooms");

    assert.equal(status, 200);
    const rooms = (body as { rooms: Record<string, unknown>[] }).rooms;
    assert.deepEqual(rooms.map((room) => room.name), ["alpha", "beta"]);
    assert.deepEqual(rooms.map((room) => room.participants), [1, 2]);
    assert.deepEqual(rooms.map((room) => room.local_participants), [1, 2]);
    for (const room of rooms) {
      const created = Date.parse(room.created_at as string);
      assert.ok(Number.isFinite(created), String(room.created_at));
    }
    await closeAll([b1.client, b2.client, a1.client]);
  });
});

Deno.test("rooms list is empty at start", async () => {
  await withRelay({}, async (relay) => {
    const { status, body } = await fetchJson(relay, "/api/rooms");

    assert.equal(status, 200);
    assert.deepEqual(body, { rooms: [] });
  });
});

Deno.test("room details list participants", async () => {
  await withRelay({}, async (relay) => {
    const a = await joinWs(relay, "café", { alias: "ann" });
    const b = await joinWs(relay, "café");
    const update = await a.client.nextSignal("room_update");
    const latest = await a.client.nextSignal("room_update");
    assert.equal(idsOf(update).length, 1);
    const { status, body } = await fetchJson(relay, "/api/rooms/caf%C3%A9");

    assert.equal(status, 200);
    const details = body as Record<string, unknown>;
    assert.equal(details.name, "café");
    assert.deepEqual(details.participants, latest.participants);
    assert.equal(details.quality_tier, null);
    await closeAll([a.client, b.client]);
  });
});

Deno.test("room details 404 for unknown room", async () => {
  await withRelay({}, async (relay) => {
    for (const path of ["/api/rooms/nobody", "/api/rooms/_x", "/api/rooms/%"]) {
      const { status, body } = await fetchJson(relay, path);

      assert.equal(status, 404, path);
      assert.equal(errorCode(body), "not_found", path);
    }
  });
});

Deno.test("delete participant kicks with 4410", async () => {
  await withRelay({}, async (relay) => {
    const a = await joinWs(relay, "room");
    const b = await joinWs(relay, "room");
    const c = await joinWs(relay, "room");
    const id = b.welcome.participant_id as string;
    await a.client.sync();
    await c.client.sync();
    a.client.drainSignals();
    c.client.drainSignals();
    const { status, body } = await fetchJson(
      relay,
      `/api/rooms/room/participants/${id}`,
      { method: "DELETE" },
    );

    assert.equal(status, 200);
    assert.deepEqual(body, { removed: id });
    const info = await b.client.waitClosed();
    assert.equal(info.code, 4410);
    assert.equal(b.client.signalLog.at(-1)?.type, "error");
    assert.equal(b.client.signalLog.at(-1)?.code, "kicked");

    const expected = [a.welcome.participant_id, c.welcome.participant_id];
    for (const other of [a.client, c.client]) {
      const update = await other.nextSignal();
      assert.equal(update.type, "room_update");
      assert.deepEqual(idsOf(update), expected);
    }
    await closeAll([a.client, c.client]);
  });
});

Deno.test("delete unknown participant is 404", async () => {
  await withRelay({}, async (relay) => {
    const { client, welcome } = await joinWs(relay, "room");
    const paths = [
      "/api/rooms/room/participants/nobody",
      `/api/rooms/other/participants/${welcome.participant_id}`,
    ];
    for (const path of paths) {
      const { status, body } = await fetchJson(relay, path, {
        method: "DELETE",
      });
      assert.equal(status, 404, path);
      assert.equal(errorCode(body), "not_found", path);
    }

    await client.sync();
    assert.equal(client.socket.readyState, WebSocket.OPEN);
    await client.close();
  });
});

Deno.test("admin routes need the admin token", async () => {
  await withRelay({ adminToken: ADMIN_TOKEN }, async (relay) => {
    const { client, welcome } = await joinWs(relay, "room");
    const routes: [string, string][] = [
      ["GET", "/api/rooms"],
      ["GET", "/api/rooms/room"],
      ["GET", "/api/federation/peers"],
      ["DELETE", `/api/rooms/room/participants/${welcome.participant_id}`],
    ];
    const badHeaders: Record<string, string>[] = [
      {},
      { authorization: "Bearer wrong" },
      { authorization: `Bearer ${ADMIN_TOKEN}x` },
      { authorization: `Bearer ${ADMIN_TOKEN.slice(0, -1)}` },
      { authorization: ADMIN_TOKEN },
      { authorization: `Basic ${ADMIN_TOKEN}` },
    ];
    for (const [method, path] of routes) {
      for (const headers of badHeaders) {
        const { status, body } = await fetchJson(relay, path, {
          method,
          headers,
        });
        const label = `${method} ${path} ${JSON.stringify(headers)}`;
        assert.equal(status, 401, label);
        assert.equal(errorCode(body), "unauthorized", label);
      }
    }
    await client.sync();
    assert.equal(client.socket.readyState, WebSocket.OPEN);

    for (const [method, path] of routes) {
      const { status } = await fetchJson(relay, path, {
        method,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      assert.equal(status, 200, `${method} ${path}`);
    }
    assert.equal((await client.waitClosed()).code, 4410);
  });
});

Deno.test("admin token scheme is case-insensitive", async () => {
  await withRelay({ adminToken: ADMIN_TOKEN }, async (relay) => {
    const { status } = await fetchJson(relay, "/api/rooms", {
      headers: { authorization: `bearer ${ADMIN_TOKEN}` },
    });

    assert.equal(status, 200);
  });
});

Deno.test("public routes skip the admin token", async () => {
  await withRelay({ adminToken: ADMIN_TOKEN }, async (relay) => {
    for (const path of ["/healthz", "/readyz", "/metrics", "/api/identity"]) {
      const response = await fetch(`${relay.httpUrl}${path}`);
      await response.body?.cancel();
      assert.equal(response.status, 200, path);
    }
  });
});

Deno.test("admin routes answer loopback without token", async () => {
  await withRelay({}, async (relay) => {
    const { status } = await fetchJson(relay, "/api/federation/peers");

    assert.equal(status, 200);
  });
});

Deno.test("admin routes reject remote without token", async () => {
  const request = await directApp();
  const routes: [string, string][] = [
    ["GET", "/api/rooms"],
    ["GET", "/api/rooms/room"],
    ["GET", "/api/federation/peers"],
    ["DELETE", "/api/rooms/room/participants/p1"],
  ];
  for (const [method, path] of routes) {
    const response = await request(path, REMOTE_ADDRESS, { method });
    assert.equal(response.status, 403, `${method} ${path}`);
    assert.equal(errorCode(await response.json()), "forbidden");
  }

  const noAddress = await request("/api/rooms", "");
  assert.equal(noAddress.status, 403);
  await noAddress.body?.cancel();
});

Deno.test("admin routes accept loopback peers", async () => {
  const request = await directApp();
  for (
    const hostname of ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"]
  ) {
    const response = await request("/api/rooms", hostname);
    assert.equal(response.status, 200, hostname);
    assert.deepEqual(await response.json(), { rooms: [] });
  }
});

Deno.test("admin routes reject proxied loopback", async () => {
  const request = await directApp();
  for (const name of PROXY_HEADERS) {
    const response = await request("/api/rooms", "127.0.0.1", {
      headers: { [name]: "203.0.113.7" },
    });
    assert.equal(response.status, 403, name);
    assert.equal(errorCode(await response.json()), "forbidden");
  }
});

Deno.test("admin token admits proxied requests", async () => {
  const request = await directApp({ adminToken: ADMIN_TOKEN });
  const response = await request("/api/rooms", "127.0.0.1", {
    headers: {
      authorization: `Bearer ${ADMIN_TOKEN}`,
      "x-forwarded-for": "203.0.113.7",
    },
  });
  assert.equal(response.status, 200);
  await response.body?.cancel();
});

Deno.test("admin token admits remote peers", async () => {
  const request = await directApp({ adminToken: ADMIN_TOKEN });
  const allowed = await request("/api/rooms", REMOTE_ADDRESS, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  const refused = await request("/api/rooms", "127.0.0.1");

  assert.equal(allowed.status, 200);
  assert.equal(refused.status, 401);
  await allowed.body?.cancel();
  await refused.body?.cancel();
});

Deno.test("isLoopback matches loopback only", () => {
  for (
    const address of ["127.0.0.1", "127.255.255.254", "::1", "::ffff:127.0.0.1"]
  ) {
    assert.equal(isLoopback(address), true, address);
  }
  for (
    const address of [
      "",
      "0.0.0.0",
      "10.0.0.1",
      "192.0.2.10",
      "1.127.0.0",
      "::",
      "::2",
      "::ffff:10.0.0.1",
      "fe80::1",
    ]
  ) {
    assert.equal(isLoopback(address), false, address);
  }
});
