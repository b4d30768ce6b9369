/**
 * Memory of idle WebTransport sessions: on a bare Deno server that accepts
 * sessions and keeps a datagram read and a signal-stream read pending on
 * each, and on the relay
 * with each session joined to a 3-person room. Prints the RSS growth per
 * session of each.
 *
 * Each of the two measurements runs in a fresh process of its own. In one
 * shared process, the second measurement would reuse the pages that the first
 * one freed, and so would look cheaper than it is. Each measurement process
 * spawns one more process that opens the sessions, so the client side is not
 * counted.
 *
 * Run: deno run -A --unstable-net bench/wt_memory.ts [sessions]
 *
 * @module
 */

import { RelayClient } from "../src/client/mod.ts";
import { createSelfSignedCertificate } from "../src/identity/certificate.ts";
import { silentLogger } from "../src/log.ts";
import { Relay } from "../src/relay.ts";

/** Process modes, passed as the first argument when the script runs itself. */
const Mode = {
  /** Opens bare WebTransport sessions, each with a signal stream. */
  client: "client",
  /** Joins the relay with a `RelayClient` per session. */
  join: "join",
  /** Measures the bare Deno server and prints one JSON line. */
  bareServer: "measure-bare-server",
  /** Measures the relay and prints one JSON line. */
  relay: "measure-relay",
} as const;
type MeasurementMode = typeof Mode.bareServer | typeof Mode.relay;

/** Sessions opened when no count is given on the command line. */
const DEFAULT_SESSIONS = 198;
/** Time for the client process to open all its sessions, in ms. */
const CLIENT_TIMEOUT_MS = 60_000;
/** Time for a whole measurement process, clients included, in ms. */
const MEASUREMENT_TIMEOUT_MS = CLIENT_TIMEOUT_MS + 30_000;
/** Delay before the first RSS reading, in ms. */
const SETTLE_BEFORE_MS = 500;
/** Delay between the last session opening and the second RSS reading, in ms. */
const SETTLE_AFTER_MS = 1_000;
/** Interval between checks of the server's session count, in ms. */
const POLL_INTERVAL_MS = 100;
/** Lines of a failed measurement process's stderr that the parent prints. */
const STDERR_TAIL_LINES = 20;
/** Characters of unparseable stdout that the parent prints. */
const STDOUT_EXCERPT_CHARS = 200;

/** JSON object that a measurement process prints as its last stdout line. */
interface MeasurementResult {
  perSessionKiB: number;
}

const scriptPath = new URL(import.meta.url).pathname;

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

/**
 * Spawns the client process and returns the RSS growth per counted session.
 * Throws `Deno.errors.TimedOut` if fewer than `count` sessions open within
 * `CLIENT_TIMEOUT_MS`.
 */
async function measure(
  port: number,
  hash: string,
  count: number,
  join: boolean,
  sessions: () => number,
): Promise<number> {
  await delay(SETTLE_BEFORE_MS);
  const before = rssKiB();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-net",
      scriptPath,
      join ? Mode.join : Mode.client,
      String(port),
      hash,
      String(count),
    ],
    stdin: "piped",
    stdout: "null",
  }).spawn();
  const deadline = performance.now() + CLIENT_TIMEOUT_MS;
  while (sessions() < count && performance.now() < deadline) {
    await delay(POLL_INTERVAL_MS);
  }
  const opened = sessions();
  if (opened < count) {
    child.kill("SIGKILL");
    await child.status;
    throw new Deno.errors.TimedOut(
      `Client process timed out: ${opened} of ${count} sessions opened ` +
        `within ${CLIENT_TIMEOUT_MS} ms. Check stderr above for client ` +
        `errors, or pass a smaller session count.`,
    );
  }

  await delay(SETTLE_AFTER_MS);
  const perSession = (rssKiB() - before) / sessions();
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
  try {
    const info = await relay.webTransportInfo();
    return await measure(
      relay.wtPort,
      info!.certificateHashes[0]!.value,
      count,
      true,
      () => relay.sessionCount,
    );
  } finally {
    await relay.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
}

function parseSessionCount(text: string | undefined): number {
  if (text === undefined) return DEFAULT_SESSIONS;
  const count = Number(text);
  if (!Number.isSafeInteger(count) || count < 1) {
    throw new RangeError(
      `Invalid session count "${text}": expected a positive integer, ` +
        `such as ${DEFAULT_SESSIONS}`,
    );
  }
  return count;
}

function lastLines(text: string, lines: number): string {
  const tail = text.trimEnd().split("\n").slice(-lines).join("\n");
  return tail === "" ? "(stderr was empty)" : tail;
}

/** Reads the JSON line that a measurement process prints last on stdout. */
function parseResult(stdout: string): number | undefined {
  const lastLine = stdout.trimEnd().split("\n").at(-1) ?? "";
  let result: Partial<MeasurementResult>;
  try {
    result = JSON.parse(lastLine);
  } catch {
    return undefined;
  }
  const perSessionKiB = result?.perSessionKiB;
  if (typeof perSessionKiB !== "number" || !Number.isFinite(perSessionKiB)) {
    return undefined;
  }
  return perSessionKiB;
}

/**
 * Runs one measurement in a fresh process and returns its RSS growth per
 * session in KiB. Throws an `Error` with the process's stderr tail if the
 * process times out, exits non-zero, or prints no result line.
 */
async function measureInChild(
  mode: MeasurementMode,
  count: number,
): Promise<number> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-net", scriptPath, mode, String(count)],
    // Plain text, so the stderr tail in a failure message reads cleanly.
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, MEASUREMENT_TIMEOUT_MS);
  const output = await child.output();
  clearTimeout(timer);

  const stdout = new TextDecoder().decode(output.stdout);
  const stderr = lastLines(
    new TextDecoder().decode(output.stderr),
    STDERR_TAIL_LINES,
  );
  if (timedOut) {
    throw new Error(
      `Measurement "${mode}" timed out after ${MEASUREMENT_TIMEOUT_MS} ms ` +
        `and was killed. Its stderr ends with:\n${stderr}`,
    );
  }
  if (!output.success) {
    throw new Error(
      `Measurement "${mode}" failed with exit code ${output.code}` +
        `${output.signal === null ? "" : ` (signal ${output.signal})`}. ` +
        `Its stderr ends with:\n${stderr}`,
    );
  }
  const perSessionKiB = parseResult(stdout);
  if (perSessionKiB === undefined) {
    throw new Error(
      `Measurement "${mode}" exited 0 but printed no valid result line. ` +
        `Expected {"perSessionKiB": <number>} as the last stdout line, ` +
        `got ${
          JSON.stringify(stdout.trimEnd().slice(-STDOUT_EXCERPT_CHARS))
        }. ` +
        `Its stderr ends with:\n${stderr}`,
    );
  }
  return perSessionKiB;
}

async function main(): Promise<void> {
  const count = parseSessionCount(Deno.args[0]);
  const bare = await measureInChild(Mode.bareServer, count);
  console.log(
    `${count} idle WebTransport sessions on a bare Deno server: ` +
      `${bare.toFixed(1)} KiB of RSS per session`,
  );
  const relay = await measureInChild(Mode.relay, count);
  console.log(
    `${count} idle WebTransport participants on the relay, in 3-person ` +
      `rooms: ${relay.toFixed(1)} KiB of RSS per participant`,
  );
}

const mode = Deno.args[0];
if (mode === Mode.client || mode === Mode.join) {
  await runClients(
    Number(Deno.args[1]),
    Deno.args[2]!,
    Number(Deno.args[3]),
    mode === Mode.join,
  );
} else if (mode === Mode.bareServer || mode === Mode.relay) {
  const count = parseSessionCount(Deno.args[1]);
  const perSessionKiB = mode === Mode.bareServer
    ? await measureBareServer(count)
    : await measureRelay(count);
  const result: MeasurementResult = { perSessionKiB };
  console.log(JSON.stringify(result));
  Deno.exit(0);
} else {
  try {
    await main();
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    Deno.exit(1);
  }
  Deno.exit(0);
}
