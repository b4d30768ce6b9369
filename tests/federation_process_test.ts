/**
 * Three relay processes started from config files bridge a room in a full
 * mesh; one is killed with SIGKILL and restarted, and the federation heals
 * by itself.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { RelayIdentity } from "../src/identity/identity.ts";
import { buildMediaPacket } from "../src/wire/media.ts";
import {
  closeAll,
  delay,
  type ReceivedSignal,
  TestClient,
  waitFor,
  withTimeout,
} from "./helpers.ts";

const ROOM = "general";
const MAIN = new URL("../main.ts", import.meta.url).pathname;

interface RelayProcess {
  name: string;
  config: string;
  httpPort: number;
  child: Deno.ChildProcess;
}

function freeTcpPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

function freeUdpPort(): number {
  const socket = Deno.listenDatagram({
    hostname: "127.0.0.1",
    port: 0,
    transport: "udp",
  });
  const port = (socket.addr as Deno.NetAddr).port;
  socket.close();
  return port;
}

function spawn(name: string, config: string, httpPort: number): RelayProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-net", MAIN, "--config", config],
    stdout: "null",
    stderr: "null",
  }).spawn();
  return { name, config, httpPort, child };
}

async function waitReady(relay: RelayProcess): Promise<void> {
  const deadline = performance.now() + 20_000;
  while (performance.now() < deadline) {
    try {
      const response = await fetch(`http://127.0.0.1:${relay.httpPort}/readyz`);
      await response.body?.cancel();
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    await delay(100);
  }
  throw new Error(`relay ${relay.name} did not become ready`);
}

async function connect(
  relay: RelayProcess,
  alias: string,
): Promise<TestClient> {
  const socket = new WebSocket(`ws://127.0.0.1:${relay.httpPort}/ws/${ROOM}`);
  const client = new TestClient(socket);
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      socket.onopen = () => resolve();
      socket.onerror = () =>
        reject(new Error(`connect to ${relay.name} failed`));
    }),
    5_000,
    `open ${relay.name}`,
  );
  await client.join({ alias });
  return client;
}

function aliases(update: ReceivedSignal | undefined): string[] {
  const participants = (update?.participants ?? []) as { alias: string }[];
  return participants.map((p) => p.alias).sort();
}

async function waitForAliases(
  client: TestClient,
  expected: string[],
  timeoutMs: number,
): Promise<void> {
  await waitFor(
    () =>
      JSON.stringify(
        aliases(client.signalLog.findLast((s) => s.type === "room_update")),
      ) === JSON.stringify(expected),
    timeoutMs,
    `members ${expected.join(",")}`,
  );
}

Deno.test({
  name: "federation processes heal after SIGKILL",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "relay-federation-" });
    const names = ["a", "b", "c"];
    const processes: RelayProcess[] = [];
    const clients: TestClient[] = [];
    try {
      const nodes = [];
      for (const name of names) {
        const dataDir = join(dir, name);
        const identity = await RelayIdentity.loadOrCreate(dataDir);
        nodes.push({
          name,
          dataDir,
          fingerprint: identity.fingerprint,
          httpPort: freeTcpPort(),
          wtPort: freeUdpPort(),
        });
      }

      for (const node of nodes) {
        const others = nodes.filter((other) => other !== node);
        const config = {
          host: "127.0.0.1",
          http_port: node.httpPort,
          wt_port: node.wtPort,
          data_dir: node.dataDir,
          log_level: "warn",
          shutdown_timeout: "1s",
          federation: {
            peers: others.map((other) => ({
              url: `https://127.0.0.1:${other.wtPort}/federation`,
              http_url: `http://127.0.0.1:${other.httpPort}`,
              fingerprint: other.fingerprint,
              label: other.name,
            })),
            trusted: [],
            global_rooms: [ROOM],
          },
        };
        const path = join(dir, `${node.name}.json`);
        await Deno.writeTextFile(path, JSON.stringify(config, null, 2));
        processes.push(spawn(node.name, path, node.httpPort));
      }
      await Promise.all(processes.map(waitReady));

      for (const relay of processes) {
        clients.push(await connect(relay, `p${relay.name}`));
      }
      for (const client of clients) {
        await waitForAliases(client, ["pa", "pb", "pc"], 20_000);
      }

      // Each packet reaches each other participant once.
      clients[0]!.sendMedia(buildMediaPacket({ sequence: 1 }));
      clients[1]!.sendMedia(buildMediaPacket({ sequence: 2 }));
      await delay(500);
      assert.equal(clients[0]!.drainMedia().length, 1);
      assert.equal(clients[1]!.drainMedia().length, 1);
      assert.equal(clients[2]!.drainMedia().length, 2);

      // Kill C: A and B drop its participant.
      const killed = processes[2]!;
      killed.child.kill("SIGKILL");
      await killed.child.status;
      await clients[2]!.waitClosed(5_000).catch(() => {});
      await waitForAliases(clients[0]!, ["pa", "pb"], 20_000);
      await waitForAliases(clients[1]!, ["pa", "pb"], 20_000);

      // Restart C on the same ports: the mesh heals without help.
      processes[2] = spawn(killed.name, killed.config, killed.httpPort);
      await waitReady(processes[2]);
      clients[2] = await connect(processes[2], "pc");
      for (const client of clients) {
        await waitForAliases(client, ["pa", "pb", "pc"], 40_000);
      }
      clients[2]!.sendMedia(buildMediaPacket({ sequence: 3 }));
      await delay(500);
      assert.equal(clients[0]!.drainMedia().length, 1);
      assert.equal(clients[1]!.drainMedia().length, 1);
    } finally {
      await closeAll(
        clients.filter((c) => c.socket.readyState === WebSocket.OPEN),
      )
        .catch(() => {});
      for (const relay of processes) {
        try {
          relay.child.kill("SIGTERM");
        } catch {
          // Already gone.
        }
        await withTimeout(relay.child.status, 10_000, `stop ${relay.name}`)
          .catch(() => relay.child.kill("SIGKILL"));
      }
      await Deno.remove(dir, { recursive: true });
    }
  },
});
