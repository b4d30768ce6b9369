/**
 * Webhooks against real receivers on 127.0.0.1: event order and content,
 * the HMAC signature, retries, peer events, and receivers that refuse
 * connections or never respond.
 */

import assert from "node:assert/strict";
import { RelayIdentity } from "../src/identity/identity.ts";
import { silentLogger } from "../src/log.ts";
import type { RelayOptions } from "../src/options.ts";
import type { Relay } from "../src/relay.ts";
import { WebhookDispatcher } from "../src/webhooks/dispatcher.ts";
import type { WebhookPayload } from "../src/webhooks/events.ts";
import {
  SIGNATURE_HEADER,
  verifyWebhookSignature,
  WebhookSigner,
} from "../src/webhooks/signature.ts";
import {
  closeAll,
  joinWs,
  startTestRelay,
  type TestRelay,
  waitFor,
} from "./helpers.ts";

const SECRET = "webhook-test-secret-0123456789abcdef";
const WAIT_MS = 5_000;
const LINK_WAIT_MS = 15_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface ReceivedRequest {
  body: string;
  payload: WebhookPayload;
  signature: string | null;
  contentType: string | null;
}

/** An HTTP receiver that records every request and responds with `status(n)`. */
class Receiver {
  readonly requests: ReceivedRequest[];
  readonly #server: Deno.HttpServer<Deno.NetAddr>;

  private constructor(
    server: Deno.HttpServer<Deno.NetAddr>,
    requests: ReceivedRequest[],
  ) {
    this.#server = server;
    this.requests = requests;
  }

  static async start(
    status: (index: number) => number = () => 204,
  ): Promise<Receiver> {
    const ready = Promise.withResolvers<void>();
    const requests: ReceivedRequest[] = [];
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => ready.resolve() },
      async (request) => {
        const body = await request.text();
        const index = requests.length;
        requests.push({
          body,
          payload: JSON.parse(body) as WebhookPayload,
          signature: request.headers.get(SIGNATURE_HEADER),
          contentType: request.headers.get("content-type"),
        });
        return new Response(null, { status: status(index) });
      },
    );
    await ready.promise;
    return new Receiver(server, requests);
  }

  get url(): string {
    return `http://127.0.0.1:${this.#server.addr.port}/hook`;
  }

  /** Payloads of the requests that got a 2xx response, in arrival order. */
  delivered(status: (index: number) => number): WebhookPayload[] {
    return this.requests
      .filter((_, index) => status(index) < 300)
      .map((request) => request.payload);
  }

  async close(): Promise<void> {
    await this.#server.shutdown();
  }
}

/** A TCP listener that accepts connections and never responds. */
class SilentReceiver {
  readonly #listener: Deno.TcpListener;
  readonly #conns: Deno.TcpConn[] = [];
  readonly #accepting: Promise<void>;

  constructor() {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#listener = listener;
    this.#accepting = (async () => {
      try {
        for await (const conn of listener) this.#conns.push(conn);
      } catch {
        // The listener was closed.
      }
    })();
  }

  get url(): string {
    return `http://127.0.0.1:${this.#listener.addr.port}/hook`;
  }

  get accepted(): number {
    return this.#conns.length;
  }

  async close(): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch {
        // Closed by the client already.
      }
    }
  }
}

/** Returns a URL on a loopback port that nothing listens on. */
function closedPortUrl(): string {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return `http://127.0.0.1:${port}/hook`;
}

/** Computes the expected header with WebCrypto, apart from the relay's code. */
async function expectedSignature(body: string): Promise<string> {
  const encoder = new TextEncoder();
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(SECRET),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(
    await crypto.subtle.sign("HMAC", key, encoder.encode(body)),
  );
  return "sha256=" +
    [...mac].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

function startHookedRelay(
  url: string,
  options: Partial<RelayOptions> = {},
): Promise<TestRelay> {
  return startTestRelay({
    webhookUrl: url,
    webhookSecret: SECRET,
    shutdownTimeoutMs: 500,
    ...options,
  });
}

async function metricValue(relay: Relay, result: string): Promise<number> {
  const response = await fetch(`${relay.httpUrl}/metrics`);
  const text = await response.text();
  const line = text.split("\n").find((entry) =>
    entry.startsWith(`wzp_relay_webhook_events_total{result="${result}"}`)
  );
  assert.ok(line !== undefined, `no webhook metric for ${result}`);
  return Number(line.split(" ").at(-1));
}

Deno.test("webhooks send room events in order", async () => {
  const receiver = await Receiver.start();
  const test = await startHookedRelay(receiver.url);
  try {
    const relay = test.relay;
    const a = await joinWs(relay, "lobby", { alias: "alice" });
    const b = await joinWs(relay, "lobby", { alias: "bob" });
    await a.client.close();
    await waitFor(() => relay.rooms.localParticipants === 1, WAIT_MS, "leave");
    await b.client.close();
    await waitFor(() => receiver.requests.length === 6, WAIT_MS, "6 events");

    const payloads = receiver.requests.map((request) => request.payload);
    assert.deepEqual(payloads.map((payload) => payload.event), [
      "room_started",
      "participant_joined",
      "participant_joined",
      "participant_left",
      "participant_left",
      "room_finished",
    ]);
    assert.deepEqual(
      payloads.map((payload) => payload.participant?.alias ?? null),
      [null, "alice", "bob", "alice", "bob", null],
    );

    const joined = payloads[1]!;
    assert.equal(joined.room, "lobby");
    assert.equal(joined.relay, relay.identity.fingerprint);
    assert.equal(joined.participant?.id, a.welcome.participant_id);
    assert.equal(joined.participant?.transport, "ws");
    assert.equal(typeof joined.participant?.source, "number");
    assert.equal(joined.peer, undefined);
    for (const payload of payloads) {
      assert.match(payload.id, UUID);
      assert.equal(payload.room, "lobby");
      assert.equal(
        new Date(payload.timestamp).toISOString(),
        payload.timestamp,
      );
    }
    assert.equal(new Set(payloads.map((payload) => payload.id)).size, 6);
    await waitFor(
      () => relay.webhooks.counters.delivered === 6,
      WAIT_MS,
      "6 deliveries counted",
    );
    assert.equal(await metricValue(relay, "delivered"), 6);
  } finally {
    await test.cleanup();
    await receiver.close();
  }
});

Deno.test("webhook signature matches the body", async () => {
  const receiver = await Receiver.start();
  const test = await startHookedRelay(receiver.url);
  try {
    const a = await joinWs(test.relay, "signed");
    await waitFor(() => receiver.requests.length === 2, WAIT_MS, "2 events");
    for (const request of receiver.requests) {
      assert.equal(request.contentType, "application/json");
      assert.equal(request.signature, await expectedSignature(request.body));
      assert.ok(
        await verifyWebhookSignature(SECRET, request.body, request.signature),
      );
      assert.equal(
        await verifyWebhookSignature(
          SECRET,
          request.body + " ",
          request.signature,
        ),
        false,
      );
    }
    await a.client.close();
  } finally {
    await test.cleanup();
    await receiver.close();
  }
});

Deno.test("webhooks without secret are unsigned", async () => {
  const receiver = await Receiver.start();
  const test = await startTestRelay({ webhookUrl: receiver.url });
  try {
    const a = await joinWs(test.relay, "plain");
    await waitFor(() => receiver.requests.length === 2, WAIT_MS, "2 events");
    assert.equal(receiver.requests[0]!.signature, null);
    await a.client.close();
  } finally {
    await test.cleanup();
    await receiver.close();
  }
});

Deno.test("webhook signer rejects empty secret", () => {
  assert.throws(() => new WebhookSigner(""), TypeError);
});

Deno.test("webhooks retry failed deliveries in order", async () => {
  // The first two requests get 500; the first event is retried twice
  // before the second event is sent.
  const status = (index: number) => index < 2 ? 500 : 204;
  const receiver = await Receiver.start(status);
  const test = await startHookedRelay(receiver.url, {
    webhookRetryDelayMs: 10,
    webhookMaxAttempts: 3,
  });
  try {
    const relay = test.relay;
    const a = await joinWs(relay, "retry");
    await waitFor(() => receiver.requests.length === 4, WAIT_MS, "4 requests");

    const ids = receiver.requests.map((request) => request.payload.id);
    assert.equal(ids[0], ids[1]);
    assert.equal(ids[1], ids[2]);
    assert.notEqual(ids[2], ids[3]);
    assert.deepEqual(
      receiver.delivered(status).map((payload) => payload.event),
      ["room_started", "participant_joined"],
    );
    // The receiver records a request before the relay reads its response.
    await waitFor(
      () => relay.webhooks.counters.delivered === 2,
      WAIT_MS,
      "2 deliveries counted",
    );
    assert.equal(relay.webhooks.counters.failed, 0);
    await a.client.close();
  } finally {
    await test.cleanup();
    await receiver.close();
  }
});

Deno.test("webhooks give up after max attempts", async () => {
  const receiver = await Receiver.start(() => 503);
  const test = await startHookedRelay(receiver.url, {
    webhookRetryDelayMs: 5,
    webhookMaxAttempts: 2,
  });
  try {
    const relay = test.relay;
    const a = await joinWs(relay, "give-up");
    await waitFor(
      () => relay.webhooks.counters.failed === 2,
      WAIT_MS,
      "2 failed events",
    );
    assert.equal(receiver.requests.length, 4);
    assert.equal(relay.webhooks.queued, 0);
    assert.equal(await metricValue(relay, "failed"), 2);
    await a.client.close();
  } finally {
    await test.cleanup();
    await receiver.close();
  }
});

Deno.test("refused receiver drops beyond queue limit", async () => {
  const test = await startHookedRelay(closedPortUrl(), {
    webhookQueueLimit: 5,
    webhookMaxAttempts: 100,
    webhookRetryDelayMs: 60_000,
  });
  try {
    const relay = test.relay;
    const clients = [];
    // Each join in a new room queues room_started and participant_joined.
    for (let i = 0; i < 10; i++) {
      const { client } = await joinWs(relay, `room-${i}`);
      clients.push(client);
    }
    assert.equal(relay.rooms.localParticipants, 10);
    assert.equal(relay.webhooks.queued, 5);
    assert.equal(relay.webhooks.counters.dropped, 15);
    assert.equal(await metricValue(relay, "dropped"), 15);
    assert.equal(relay.webhooks.counters.delivered, 0);
    await closeAll(clients);
    assert.ok(relay.webhooks.queued <= 5, `${relay.webhooks.queued} queued`);
  } finally {
    await test.cleanup();
  }
});

Deno.test("silent receiver times out without blocking", async () => {
  const receiver = new SilentReceiver();
  const test = await startHookedRelay(receiver.url, {
    webhookQueueLimit: 4,
    webhookTimeoutMs: 200,
    webhookMaxAttempts: 2,
    webhookRetryDelayMs: 10,
  });
  try {
    const relay = test.relay;
    const clients = [];
    for (let i = 0; i < 6; i++) {
      const { client } = await joinWs(relay, `quiet-${i}`);
      clients.push(client);
    }
    assert.equal(relay.rooms.localParticipants, 6);
    assert.ok(relay.webhooks.queued <= 4, `${relay.webhooks.queued} queued`);
    assert.ok(relay.webhooks.counters.dropped >= 8);

    // Each of the 4 queued events times out twice and is given up.
    await waitFor(
      () => relay.webhooks.counters.failed === 4,
      WAIT_MS,
      "4 events given up",
    );
    assert.ok(receiver.accepted >= 2, `${receiver.accepted} connections`);
    assert.equal(relay.webhooks.queued, 0);
    await closeAll(clients);
  } finally {
    await test.cleanup();
    await receiver.close();
  }
});

Deno.test("dispatcher close drops queued events", async () => {
  const dispatcher = new WebhookDispatcher({
    url: closedPortUrl(),
    timeoutMs: 1_000,
    maxAttempts: 10,
    retryDelayMs: 60_000,
    maxRetryDelayMs: 60_000,
    queueLimit: 100,
  }, silentLogger);
  const payload: WebhookPayload = {
    id: crypto.randomUUID(),
    event: "room_started",
    room: "r",
    relay: "x",
    timestamp: new Date().toISOString(),
  };
  for (let i = 0; i < 3; i++) dispatcher.enqueue(`room:${i}`, payload);
  assert.equal(dispatcher.queued, 3);
  await dispatcher.close();
  assert.equal(dispatcher.queued, 0);
  assert.equal(dispatcher.counters.dropped, 3);
  assert.equal(dispatcher.enqueue("room:0", payload), false);
});

Deno.test("dispatcher rejects invalid settings", () => {
  const base = {
    timeoutMs: 1_000,
    maxAttempts: 1,
    retryDelayMs: 1,
    maxRetryDelayMs: 1,
    queueLimit: 1,
  };
  assert.throws(
    () => new WebhookDispatcher({ ...base, url: "ftp://x" }, silentLogger),
    TypeError,
  );
  assert.throws(
    () => new WebhookDispatcher({ ...base, queueLimit: 0 }, silentLogger),
    RangeError,
  );
});

Deno.test("webhooks report peer up and down", async () => {
  const receiver = await Receiver.start();
  const [idA, idB] = await Promise.all([
    RelayIdentity.generate(),
    RelayIdentity.generate(),
  ]);
  const b = await startTestRelay({
    noWebTransport: false,
    federation: {
      peers: [],
      trusted: [{ fingerprint: idA.fingerprint, label: "relay-a" }],
      globalRooms: ["general"],
    },
  }, idB);
  let a: TestRelay | undefined;
  try {
    a = await startTestRelay({
      noWebTransport: false,
      webhookUrl: receiver.url,
      webhookSecret: SECRET,
      federation: {
        peers: [{
          url: `https://127.0.0.1:${b.relay.wtPort}/federation`,
          httpUrl: b.relay.httpUrl,
          fingerprint: idB.fingerprint,
          label: "relay-b",
        }],
        trusted: [],
        globalRooms: ["general"],
      },
    }, idA);
    await waitFor(
      () => receiver.requests.length === 1,
      LINK_WAIT_MS,
      "peer_up",
    );
    await b.cleanup();
    await waitFor(
      () => receiver.requests.length === 2,
      LINK_WAIT_MS,
      "peer_down",
    );

    const [up, down] = receiver.requests.map((request) => request.payload);
    assert.equal(up?.event, "peer_up");
    assert.deepEqual(up?.peer, {
      label: "relay-b",
      fingerprint: idB.fingerprint,
    });
    assert.equal(up?.room, undefined);
    assert.equal(up?.relay, idA.fingerprint);
    assert.equal(down?.event, "peer_down");
    assert.deepEqual(down?.peer, up?.peer);
  } finally {
    await a?.cleanup();
    await b.cleanup();
    await receiver.close();
  }
});
