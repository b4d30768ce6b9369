import assert from "node:assert/strict";
import {
  RelayClient,
  type RelayClientState,
  RelayCloseError,
} from "../src/client/mod.ts";
import type { RelayOptions } from "../src/options.ts";
import type { Relay } from "../src/relay.ts";
import { delay, fetchJson, waitFor, withTimeout } from "./helpers.ts";
import {
  hasWebTransport,
  mediaPacket,
  startWtRelay,
} from "./webtransport_helpers.ts";

const ignore = !hasWebTransport;
const WAIT_MS = 5_000;

/** Returns the WebSocket URL of `room`. */
function wsUrl(relay: Relay, room: string): string {
  return `${relay.httpUrl.replace("http:", "ws:")}/ws/${
    encodeURIComponent(room)
  }`;
}

/** Creates a client for `room` over `transport`, with pinned hashes. */
async function createClient(
  relay: Relay,
  transport: "ws" | "wt",
  room: string,
  options: ConstructorParameters<typeof RelayClient>[1] = {},
): Promise<RelayClient> {
  if (transport === "ws") return new RelayClient(wsUrl(relay, room), options);
  const info = await RelayClient.fetchWebTransportInfo(relay.httpUrl);
  return new RelayClient(info.url + encodeURIComponent(room), {
    serverCertificateHashes: info.certificateHashes,
    ...options,
  });
}

/** Resolves with the detail of the next `type` event of `client`. */
function nextEvent<T>(client: RelayClient, type: string): Promise<T> {
  const { promise, resolve } = Promise.withResolvers<T>();
  client.addEventListener(
    type,
    (event) => resolve((event as CustomEvent<T>).detail),
    { once: true },
  );
  return withTimeout(promise, WAIT_MS, `waiting for ${type} event`);
}

/** Waits until `client` is in `state`. */
function waitForState(client: RelayClient, state: RelayClientState) {
  return waitFor(() => client.state === state, WAIT_MS, `state ${state}`);
}

for (const transport of ["ws", "wt"] as const) {
  Deno.test({
    name: `RelayClient joins over ${transport}`,
    ignore,
    async fn() {
      await using test = await startWtRelay();
      const client = await createClient(test.relay, transport, "a room", {
        alias: "ann",
      });
      assert.equal(client.transport, transport);
      assert.equal(client.room, "a room");
      assert.equal(client.state, "idle");

      const update = nextEvent<{ participants: unknown[] }>(
        client,
        "room_update",
      );
      const welcome = await client.connect();
      assert.equal(welcome.room, "a room");
      assert.equal(client.state, "joined");
      assert.equal(client.participantId, welcome.participant_id);
      assert.equal((await update).participants.length, 1);
      assert.equal(client.participants[0]!.transport, transport);
      assert.equal(client.participants[0]!.alias, "ann");

      const rtt = await client.ping();
      assert.equal(typeof rtt, "number");
      assert.ok(rtt >= 0);

      await client.close();
      assert.equal(client.state, "closed");
      const closed = await client.closed;
      assert.equal(closed.code, 1000);
      assert.equal(closed.errorCode, null);
      await waitFor(() => test.relay.sessionCount === 0, WAIT_MS, "no session");
    },
  });
}

Deno.test({
  name: "RelayClient media across transports",
  ignore,
  async fn() {
    await using test = await startWtRelay();
    const web = await createClient(test.relay, "ws", "media");
    const native = await createClient(test.relay, "wt", "media");
    await web.connect();
    await native.connect();
    await waitFor(
      () => web.participants.length === 2,
      WAIT_MS,
      "both participants",
    );
    const sourceOf = (id: string | null) =>
      web.participants.find((p) => p.id === id)!.source;

    const atNative = Promise.withResolvers<[number, Uint8Array]>();
    native.onMedia = (source, packet) =>
      atNative.resolve([source, packet.slice()]);
    const packet = mediaPacket(200, 5);
    assert.equal(web.sendMedia(packet), true);
    const [source, received] = await withTimeout(
      atNative.promise,
      WAIT_MS,
      "media at the WebTransport client",
    );
    assert.equal(source, sourceOf(web.participantId));
    assert.deepEqual(received, packet);

    // The media event carries the same values when a listener exists.
    const event = nextEvent<{ source: number; packet: Uint8Array }>(
      web,
      "media",
    );
    const reply = mediaPacket(1100, 6);
    assert.equal(native.sendMedia(reply), true);
    const detail = await event;
    assert.equal(detail.source, sourceOf(native.participantId));
    assert.deepEqual(detail.packet, reply);

    await web.close();
    await native.close();
  },
});

Deno.test({
  name: "RelayClient sendMedia before join",
  ignore,
  async fn() {
    await using test = await startWtRelay();
    const client = await createClient(test.relay, "wt", "early");
    assert.equal(client.sendMedia(mediaPacket(20)), false);
    await client.connect();
    assert.equal(client.sendMedia(mediaPacket(20)), true);
    // A packet larger than a datagram is refused, not sent.
    assert.equal(client.sendMedia(new Uint8Array(4_000)), false);
    await client.close();
  },
});

for (const transport of ["ws", "wt"] as const) {
  Deno.test({
    name: `RelayClient full room rejects over ${transport}`,
    ignore,
    async fn() {
      await using test = await startWtRelay({ maxParticipantsPerRoom: 1 });
      const first = await createClient(test.relay, transport, "one");
      await first.connect();
      const second = await createClient(test.relay, transport, "one", {
        reconnect: { initialDelayMs: 10 },
      });
      const error = await second.connect().catch((e) => e);
      assert.ok(error instanceof RelayCloseError);
      assert.equal(error.code, 4409);
      assert.equal(error.errorCode, "room_full");
      // The relay's explanation, not only the code, reaches the message.
      assert.match(error.message, /\(room_full\): Room one is full/);
      assert.equal(second.state, "closed");
      await first.close();
    },
  });
}

Deno.test({
  name: "RelayClient invalid room over wt",
  ignore,
  async fn() {
    await using test = await startWtRelay();
    const client = await createClient(test.relay, "wt", "_reserved");
    const error = await client.connect().catch((e) => e);
    assert.ok(error instanceof RelayCloseError);
    assert.equal(error.code, 4400);
    assert.equal(error.errorCode, "bad_request");
  },
});

Deno.test({
  name: "RelayClient invalid room over ws",
  ignore,
  async fn() {
    await using test = await startWtRelay();
    // The relay responds with HTTP 400, which a WebSocket reports only as 1006.
    const client = await createClient(test.relay, "ws", "_reserved");
    const error = await client.connect().catch((e) => e);
    assert.ok(error instanceof RelayCloseError);
    assert.equal(error.code, 1006);
    assert.equal(error.errorCode, null);
  },
});

for (const transport of ["ws", "wt"] as const) {
  Deno.test({
    name: `RelayClient kick stops reconnect over ${transport}`,
    ignore,
    async fn() {
      await using test = await startWtRelay();
      const client = await createClient(test.relay, transport, "kick", {
        reconnect: { initialDelayMs: 10 },
      });
      const welcome = await client.connect();
      const closed = client.closed;
      const response = await fetchJson(
        test.relay,
        `/api/rooms/kick/participants/${welcome.participant_id}`,
        { method: "DELETE" },
      );
      assert.equal(response.status, 200);
      const info = await withTimeout(closed, WAIT_MS, "close after kick");
      assert.equal(info.code, 4410);
      assert.equal(info.errorCode, "kicked");
      await delay(50);
      assert.equal(client.state, "closed");
    },
  });
}

for (const transport of ["ws", "wt"] as const) {
  Deno.test({
    name: `RelayClient closeNow leaves over ${transport}`,
    ignore,
    async fn() {
      await using test = await startWtRelay();
      const client = await createClient(test.relay, transport, "close-now");
      await client.connect();
      assert.equal(test.relay.sessionCount, 1);

      client.closeNow("leave");
      const info = await withTimeout(client.closed, WAIT_MS, "closeNow");
      assert.equal(info.code, 1000);
      assert.equal(client.state, "closed");
      await waitFor(
        () => test.relay.sessionCount === 0,
        WAIT_MS,
        "the relay to drop the session",
      );
    },
  });
}

/** A relay running in a child process. */
interface RelayProcess {
  httpUrl: string;
  httpPort: number;
  wtPort: number;
  /** Sends SIGTERM and waits for the process to exit. */
  stop(): Promise<void>;
}

const FIXTURE = new URL("./fixtures/relay_process.ts", import.meta.url);
const CONFIG = new URL("../deno.json", import.meta.url);

/**
 * Starts a relay in a child process. A restart on the same ports needs a
 * new process: Deno 2.9.6 frees a closed QuicEndpoint's UDP port only when
 * the endpoint is garbage-collected.
 */
async function spawnRelay(
  options: Partial<RelayOptions>,
): Promise<RelayProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-net",
      "--config",
      CONFIG.pathname,
      FIXTURE.pathname,
      JSON.stringify({ host: "127.0.0.1", ...options }),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();

  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  try {
    while (!text.includes("\n")) {
      const { value, done } = await withTimeout(
        lines.read(),
        20_000,
        "relay process start",
      );
      if (done) throw new Error("The relay process exited before listening");
      text += value;
    }
  } catch (error) {
    child.kill("SIGKILL");
    await child.status;
    throw error;
  } finally {
    await lines.cancel();
  }

  const ports = JSON.parse(text) as { httpPort: number; wtPort: number };
  return {
    ...ports,
    httpUrl: `http://127.0.0.1:${ports.httpPort}`,
    stop: async () => {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

Deno.test({
  name: "RelayClient reconnects after relay restart",
  ignore,
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "relay-client-test-" });
    let relay = await spawnRelay({ dataDir, httpPort: 0, wtPort: 0 });
    const ports = { httpPort: relay.httpPort, wtPort: relay.wtPort };
    const clients: RelayClient[] = [];
    try {
      const reconnect = { initialDelayMs: 50, maxDelayMs: 200 };
      const web = new RelayClient(
        `ws://127.0.0.1:${ports.httpPort}/ws/again`,
        { reconnect },
      );
      const info = await RelayClient.fetchWebTransportInfo(relay.httpUrl);
      const native = new RelayClient(`${info.url}again`, {
        reconnect,
        serverCertificateHashes: info.certificateHashes,
      });
      clients.push(web, native);
      await web.connect();
      await native.connect();

      const closes = Promise.all(clients.map((client) => client.closed));
      await relay.stop();
      for (const closed of await closes) {
        assert.equal(closed.code, 4503);
        assert.equal(closed.errorCode, "shutting_down");
      }
      for (const client of clients) {
        assert.equal(client.state, "reconnecting");
      }

      // The same data directory keeps the certificate the client pinned.
      relay = await spawnRelay({ dataDir, ...ports });
      await waitForState(web, "joined");
      await waitForState(native, "joined");
      await waitFor(
        () => web.participants.length === 2,
        WAIT_MS,
        "both participants again",
      );

      const received = Promise.withResolvers<Uint8Array>();
      web.onMedia = (_source, packet) => received.resolve(packet.slice());
      const packet = mediaPacket(80, 7);
      assert.equal(native.sendMedia(packet), true);
      assert.deepEqual(
        await withTimeout(received.promise, WAIT_MS, "media after restart"),
        packet,
      );
    } finally {
      await Promise.all(clients.map((client) => client.close()));
      await relay.stop();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
