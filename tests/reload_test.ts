/**
 * Relay.reload under running sessions: limits, token secrets, federation
 * peers, the log level, options that need a restart and rejected settings;
 * and SIGHUP on a relay process that reads its config file again.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { signJwt } from "../src/auth/jwt.ts";
import { RelayIdentity } from "../src/identity/identity.ts";
import { createLogger } from "../src/log.ts";
import type { FederationOptions, RelayOptions } from "../src/options.ts";
import { Relay } from "../src/relay.ts";
import {
  closeAll,
  connectWs,
  delay,
  encodeClientFrame,
  joinWs,
  type ReceivedSignal,
  startTestRelay,
  TestClient,
  type TestRelay,
  waitFor,
  withTimeout,
} from "./helpers.ts";

const SECRET_A = "reload-test-secret-a-0123456789abcdef";
const SECRET_B = "reload-test-secret-b-0123456789abcdef";
const LINK_WAIT_MS = 15_000;
const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** Waits for the relay to close `client` with `code`. */
async function assertClosedWith(
  client: TestClient,
  code: number,
): Promise<void> {
  const info = await client.waitClosed();
  assert.equal(info.code, code);
}

/** Returns the options in force with `changes` on top. */
function withChanges(
  relay: Relay,
  changes: Partial<RelayOptions>,
): RelayOptions {
  return { ...relay.options, ...changes };
}

/** Starts a relay like startTestRelay, with its log lines kept in `lines`. */
async function startLoggedRelay(
  options: Partial<RelayOptions> = {},
): Promise<{ relay: Relay; lines: string[]; cleanup: () => Promise<void> }> {
  const lines: string[] = [];
  const dataDir = await Deno.makeTempDir({ prefix: "relay-reload-" });
  const relay = await Relay.start({
    host: "127.0.0.1",
    httpPort: 0,
    wtPort: 0,
    noWebTransport: true,
    dataDir,
    ...options,
  }, {
    logger: createLogger({
      level: options.logLevel,
      write: (line) => lines.push(line),
    }),
    identity: await RelayIdentity.generate(),
  });
  const cleanup = async () => {
    await relay.stop();
    await Deno.remove(dataDir, { recursive: true });
  };
  return { relay, lines, cleanup };
}

function participantCount(update: ReceivedSignal | undefined): number {
  return (update?.participants as unknown[] | undefined)?.length ?? -1;
}

async function waitForMembers(client: TestClient, count: number) {
  await waitFor(
    () =>
      participantCount(
        client.signalLog.findLast((signal) => signal.type === "room_update"),
      ) === count,
    LINK_WAIT_MS,
    `room_update with ${count} participants`,
  );
}

Deno.test("reload lowers room limit", async () => {
  await using test = await startTestRelay({ maxParticipantsPerRoom: 3 });
  const relay = test.relay;
  const a = await joinWs(relay, "room");
  const b = await joinWs(relay, "room");

  await relay.reload(withChanges(relay, { maxParticipantsPerRoom: 1 }));
  assert.equal(relay.options.maxParticipantsPerRoom, 1);
  assert.equal(relay.rooms.limits.maxParticipantsPerRoom, 1);

  const c = await connectWs(relay, "room");
  c.sendHello();
  await assertClosedWith(c, 4409);

  // The two sessions over the new limit stay up.
  await a.client.sync();
  await b.client.sync();
  assert.equal(relay.rooms.get("room")?.localCount, 2);

  await relay.reload(withChanges(relay, { maxParticipantsPerRoom: 3 }));
  const d = await joinWs(relay, "room");
  await closeAll([a.client, b.client, d.client]);
});

Deno.test("reload replaces token secret", async () => {
  await using test = await startTestRelay({ tokenSecret: SECRET_A });
  const relay = test.relay;
  const old = await joinWs(relay, "room", {
    token: await signJwt(SECRET_A, { sub: "old" }),
  });

  await relay.reload(withChanges(relay, { tokenSecret: SECRET_B }));

  const rejected = await connectWs(relay, "room");
  rejected.sendHello({ token: await signJwt(SECRET_A, { sub: "late" }) });
  await assertClosedWith(rejected, 4401);

  const fresh = await joinWs(relay, "room", {
    token: await signJwt(SECRET_B, { sub: "new" }),
  });
  await old.client.sync();
  await closeAll([old.client, fresh.client]);
});

Deno.test("reload keeps restart-only options", async () => {
  const { relay, lines, cleanup } = await startLoggedRelay();
  try {
    const port = relay.httpPort;
    await relay.reload(withChanges(relay, {
      httpPort: port + 1,
      roomShards: 8,
      maxRooms: 5,
    }));
    assert.equal(relay.options.httpPort, 0);
    assert.equal(relay.options.roomShards, 64);
    assert.equal(relay.options.maxRooms, 5);
    assert.equal(relay.httpPort, port);

    const warning = lines.find((line) =>
      line.includes("options that need a restart")
    );
    assert.ok(warning !== undefined, "no warning about restart-only options");
    assert.match(warning, /options=http_port,room_shards/);
    const reloaded = lines.find((line) => line.includes(" reloaded "));
    assert.match(reloaded ?? "", /changed=max_rooms/);
  } finally {
    await cleanup();
  }
});

Deno.test("reload sets log level", async () => {
  const { relay, lines, cleanup } = await startLoggedRelay({
    logLevel: "warn",
  });
  try {
    relay.logger.info("before reload");
    await relay.reload(withChanges(relay, { logLevel: "debug" }));
    relay.logger.debug("after reload");
    assert.ok(!lines.some((line) => line.includes("before reload")));
    assert.ok(lines.some((line) => line.includes("after reload")));
  } finally {
    await cleanup();
  }
});

Deno.test("reload rejects invalid webhook secret", async () => {
  await using test = await startTestRelay({ maxRooms: 10 });
  const relay = test.relay;
  await assert.rejects(
    relay.reload(withChanges(relay, {
      maxRooms: 2,
      webhookUrl: "http://127.0.0.1:9/hook",
      webhookSecret: "",
    })),
    TypeError,
  );
  assert.equal(relay.options.maxRooms, 10);
  assert.equal(relay.rooms.limits.maxRooms, 10);
  assert.equal(relay.webhooks.enabled, false);
});

Deno.test("reload changes federation peers", async () => {
  const [idA, idB] = await Promise.all([
    RelayIdentity.generate(),
    RelayIdentity.generate(),
  ]);
  const rooms = ["general"];
  const b = await startTestRelay({
    noWebTransport: false,
    federation: {
      peers: [],
      trusted: [{ fingerprint: idA.fingerprint, label: "relay-a" }],
      globalRooms: rooms,
    },
  }, idB);
  let a: TestRelay | undefined;
  const clients: TestClient[] = [];
  try {
    a = await startTestRelay({ noWebTransport: false }, idA);
    const relayA = a.relay;
    const onA = await joinWs(relayA, "general", { alias: "on-a" });
    const onB = await joinWs(b.relay, "general", { alias: "on-b" });
    clients.push(onA.client, onB.client);

    const federation: FederationOptions = {
      peers: [{
        url: `https://127.0.0.1:${b.relay.wtPort}/federation`,
        httpUrl: b.relay.httpUrl,
        fingerprint: idB.fingerprint,
        label: "relay-b",
      }],
      trusted: [],
      globalRooms: rooms,
    };
    await relayA.reload(withChanges(relayA, { federation }));
    await waitFor(
      () => relayA.federation.links.length === 1,
      LINK_WAIT_MS,
      "link to B",
    );
    await waitForMembers(onA.client, 2);
    await waitForMembers(onB.client, 2);

    await relayA.reload(withChanges(relayA, {
      federation: { peers: [], trusted: [], globalRooms: rooms },
    }));
    await waitFor(
      () => relayA.federation.links.length === 0,
      LINK_WAIT_MS,
      "link closed",
    );
    await waitForMembers(onA.client, 1);
    await waitForMembers(onB.client, 1);

    // Both participants stayed connected through both reloads.
    await onA.client.sync();
    await onB.client.sync();
  } finally {
    await closeAll(clients).catch(() => {});
    await a?.cleanup();
    await b.cleanup();
  }
});

/** A relay process whose stderr lines are collected as they come. */
class RelayProcess {
  readonly lines: string[] = [];
  readonly child: Deno.ChildProcess;
  readonly #reading: Promise<void>;

  constructor(config: string) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--unstable-net", MAIN, "--config", config],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#reading = this.#read();
  }

  async #read(): Promise<void> {
    let pending = "";
    const stream = this.child.stderr.pipeThrough(new TextDecoderStream());
    for await (const chunk of stream) {
      pending += chunk;
      const parts = pending.split("\n");
      pending = parts.pop() ?? "";
      this.lines.push(...parts);
    }
    if (pending !== "") this.lines.push(pending);
  }

  /** Waits for a line containing `text` after the first `after` lines. */
  async waitForLine(text: string, after = 0): Promise<string> {
    let found: string | undefined;
    await waitFor(
      () => {
        found = this.lines.slice(after).find((line) => line.includes(text));
        return found !== undefined;
      },
      20_000,
      `log line "${text}"`,
    );
    return found!;
  }

  /** Stops the process with SIGTERM and returns its exit code. */
  async stop(): Promise<number> {
    try {
      this.child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    const status = await withTimeout(this.child.status, 20_000, "exit");
    await this.#reading;
    return status.code;
  }
}

/** Opens a participant WebSocket to `url` and waits until it is open. */
async function openClient(url: string): Promise<TestClient> {
  const socket = new WebSocket(url);
  const client = new TestClient(socket);
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      socket.onopen = () => resolve();
      socket.onerror = () => reject(new Error(`connect to ${url} failed`));
    }),
    5_000,
    `open ${url}`,
  );
  return client;
}

function configText(dir: string, maxParticipantsPerRoom: number): string {
  return [
    "host: 127.0.0.1",
    "http_port: 0",
    "no_webtransport: true",
    `data_dir: ${JSON.stringify(join(dir, "data"))}`,
    `max_participants_per_room: ${maxParticipantsPerRoom}`,
    "",
  ].join("\n");
}

Deno.test("SIGHUP reloads the config file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relay-sighup-" });
  const config = join(dir, "relay.yaml");
  await Deno.writeTextFile(config, configText(dir, 2));
  const process = new RelayProcess(config);
  const clients: TestClient[] = [];
  try {
    const started = await process.waitForLine("relay started");
    const httpUrl = /http=(\S+)/.exec(started)?.[1];
    assert.ok(httpUrl !== undefined, `no URL in ${started}`);
    const url = `ws://${new URL(httpUrl).host}/ws/room`;

    const first = await openClient(url);
    clients.push(first);
    await first.join();

    await Deno.writeTextFile(config, configText(dir, 1));
    let mark = process.lines.length;
    process.child.kill("SIGHUP");
    await process.waitForLine("changed=max_participants_per_room", mark);

    const second = await openClient(url);
    clients.push(second);
    second.sendHello();
    await assertClosedWith(second, 4409);

    // A config that does not load leaves the running one in force.
    await Deno.writeTextFile(config, "max_participants_per_room: -1\n");
    mark = process.lines.length;
    process.child.kill("SIGHUP");
    await process.waitForLine("reload rejected", mark);
    await first.sync();

    await first.close();
    assert.equal(await process.stop(), 0);
  } finally {
    for (const client of clients) {
      if (client.socket.readyState !== WebSocket.CLOSED) client.socket.close();
    }
    await process.stop().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("duplicate SIGINT still stops gracefully", async () => {
  // Ctrl-C under `deno task start` delivers SIGINT twice within moments:
  // once from the terminal and once forwarded by `deno task`. A client
  // that never replies to the close keeps the stop waiting, so the second
  // signal arrives while the first is still being handled.
  const dir = await Deno.makeTempDir({ prefix: "relay-sigint-" });
  const config = join(dir, "relay.yaml");
  await Deno.writeTextFile(config, configText(dir, 2));
  const process = new RelayProcess(config);
  let conn: Deno.TcpConn | undefined;
  try {
    const started = await process.waitForLine("relay started");
    const httpUrl = /http=(\S+)/.exec(started)?.[1];
    assert.ok(httpUrl !== undefined, `no URL in ${started}`);
    const { hostname, port } = new URL(httpUrl);
    conn = await Deno.connect({ hostname, port: Number(port) });
    const key = crypto.getRandomValues(new Uint8Array(16)).toBase64();
    await conn.write(new TextEncoder().encode(
      `GET /ws/room HTTP/1.1\r\nHost: ${hostname}:${port}\r\n` +
        "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    ));
    await conn.write(
      encodeClientFrame(0x1, new TextEncoder().encode('{"type":"hello"}')),
    );
    const deadline = performance.now() + 5_000;
    for (;;) {
      const response = await fetch(`${httpUrl}/api/rooms`);
      const body = await response.json() as {
        rooms: { participants: number }[];
      };
      if (body.rooms[0]?.participants === 1) break;
      assert.ok(performance.now() < deadline, "the raw client did not join");
      await delay(20);
    }

    const mark = process.lines.length;
    process.child.kill("SIGINT");
    // Two signals sent back to back merge into one, so the second waits
    // until the first has been handled.
    await process.waitForLine("stopping", mark);
    process.child.kill("SIGINT");
    const status = await withTimeout(process.child.status, 20_000, "exit");
    assert.equal(status.code, 0);
  } finally {
    conn?.close();
    await process.stop().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});
