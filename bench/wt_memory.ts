/**
 * Memory of idle WebTransport sessions: on a bare Deno server that accepts
 * sessions and keeps a datagram read and a signal-stream read pending on
 * each, and on the relay
 * with each session joined to a 3-person room. Prints the RSS growth per
 * session of each. A child process opens the sessions, so the client side
 * is not counted.
 *
 * Run: deno run -A --unstable-net bench/wt_memory.ts [sessions]
 *
 * @module
 */

import { RelayClient } from "../src/client/mod.ts";
import { createSelfSignedCertificate } from "../src/identity/certificate.ts";
import { silentLogger } from "../src/log.ts";
import { Relay } from "../src/relay.ts";

/** Time for the child process to open all its sessions, in ms. */
const CLIENT_TIMEOUT_MS = 60_000;

function rssKiB(): number {
  return Deno.memoryUsage().rss / 1024;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Opens `count` sessions in the child process and keeps them until stdin ends. */
async function runClients(
  port: number,
  hash: string,
  count: number,
  join: boolean,
): Promise<void> {
  const serverCertificateHashes = [{
    algorithm: "sha-256" as const,
    value: Uint8Array.fromBase64(hash),
  }];
  const clients: { close(): unknown }[] = [];
  for (let i = 0; i < count; i++) {
    const url = `https://127.0.0.1:${port}/room/memory-${Math.floor(i / 3)}`;
    if (join) {
      const client = new RelayClient(url, { serverCertificateHashes });
      await client.connect();
      clients.push(client);
    } else {
      const wt = new WebTransport(url, { serverCertificateHashes });
      await wt.ready;
      // A signal stream with one small frame, as a participant opens.
      const stream = await wt.createBidirectionalStream();
      await stream.writable.getWriter().write(
        new Uint8Array([0, 0, 0, 2, 123, 125]),
      );
      clients.push(wt);
    }
  }
  for await (const _ of Deno.stdin.readable) {
    // Nothing is sent on stdin; its end is the signal to leave.
  }
  for (const client of clients) client.close();
}

/** Spawns the clients and returns the RSS growth per counted session. */
async function measure(
  port: number,
  hash: string,
  count: number,
  join: boolean,
  sessions: () => number,
): Promise<number> {
  await delay(500);
  const before = rssKiB();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-net",
      new URL(import.meta.url).pathname,
      join ? "join" : "client",
      String(port),
      hash,
      String(count),
    ],
    stdin: "piped",
    stdout: "null",
  }).spawn();
  const deadline = performance.now() + CLIENT_TIMEOUT_MS;
  while (sessions() < count && performance.now() < deadline) await delay(100);
  await delay(1_000);
  const perSession = (rssKiB() - before) / Math.max(1, sessions());
  await child.stdin.close();
  await child.status;
  return perSession;
}

async function measureBareServer(count: number): Promise<number> {
  const now = Date.now();
  const certificate = await createSelfSignedCertificate({
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 7 * 24 * 3600_000),
  });
  const endpoint = new Deno.QuicEndpoint({ hostname: "127.0.0.1", port: 0 });
  const listener = endpoint.listen({
    alpnProtocols: ["h3"],
    cert: certificate.certPem,
    key: certificate.keyPem,
  });
  const held: WebTransport[] = [];
  (async () => {
    for await (const incoming of listener) {
      const wt = await Deno.upgradeWebTransport(await incoming.accept());
      held.push(wt);
      wt.datagrams.readable.getReader().read().catch(() => {});
      const streams = wt.incomingBidirectionalStreams.getReader();
      streams.read().then(({ value }) => {
        const reader = value?.readable.getReader();
        (async () => {
          while (reader !== undefined && !(await reader.read()).done) {
            // Keep a read pending, as the relay does on the signal stream.
          }
        })().catch(() => {});
      }).catch(() => {});
    }
  })().catch(() => {});

  const perSession = await measure(
    endpoint.addr.port,
    certificate.hash.value,
    count,
    false,
    () => held.length,
  );
  endpoint.close();
  return perSession;
}

async function measureRelay(count: number): Promise<number> {
  const dataDir = await Deno.makeTempDir({ prefix: "wt-memory-" });
  const relay = await Relay.start({
    host: "127.0.0.1",
    httpPort: 0,
    wtPort: 0,
    dataDir,
    maxConnectionsPerIp: 100_000,
    maxHandshakesPerIp: 100_000,
  }, { logger: silentLogger });
  const info = await relay.webTransportInfo();
  const perSession = await measure(
    relay.wtPort,
    info!.certificateHashes[0]!.value,
    count,
    true,
    () => relay.sessionCount,
  );
  await relay.stop();
  await Deno.remove(dataDir, { recursive: true });
  return perSession;
}

if (Deno.args[0] === "client" || Deno.args[0] === "join") {
  await runClients(
    Number(Deno.args[1]),
    Deno.args[2]!,
    Number(Deno.args[3]),
    Deno.args[0] === "join",
  );
} else {
  const count = Number(Deno.args[0] ?? 198);
  const bare = await measureBareServer(count);
  console.log(
    `${count} idle WebTransport sessions on a bare Deno server: ` +
      `${bare.toFixed(1)} KiB of RSS per session`,
  );
  const relay = await measureRelay(count);
  console.log(
    `${count} idle WebTransport participants on the relay, in 3-person ` +
      `rooms: ${relay.toFixed(1)} KiB of RSS per participant`,
  );
  Deno.exit(0);
}
