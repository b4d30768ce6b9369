/**
 * Federation cost: the CPU a packet costs when it crosses one federation
 * hop, against the same packet delivered locally, and how many packets
 * the batcher puts in one datagram.
 *
 * Two relays run with a federation config. Relay A, pinned to the relay
 * core, dials relay B, which is pinned to the generator core next to the
 * generators and whose CPU time is read on its own. Each room has one
 * sender at 50 packets/s and two listeners. A run is one of:
 *
 * - local: sender and listeners on relay A, in rooms that are not bridged;
 * - federated: sender on relay A, listeners on relay B, in bridged rooms,
 *   so every packet crosses the link once.
 *
 * The batching run is one federated run at the rate the batching target
 * names (20 rooms, 1,000 packets/s). The cost is measured at a higher rate
 * (200 rooms, 10,000 packets/s), where the relays do enough work that idle
 * CPU and the rest of the machine weigh less. It is measured in several
 * rounds of a local run followed by a federated run. Each round gives one ratio, and
 * the result is their median, so that one disturbed window does not decide
 * it.
 *
 * The local rooms are left out of `global_rooms`, so that their
 * announcements do not cross the link either. A peer requests media only
 * for rooms where it has participants, so bridged local rooms would send
 * no packets over the link.
 *
 * CPU per delivered packet is the CPU time of the relays that carried the
 * packets (A for local; A + B for federated) over the window, less each
 * relay's idle CPU time measured before the load, divided by the packets
 * the listeners received.
 *
 * @module
 */

import { RelayIdentity } from "../../src/identity/identity.ts";
import { generatorCommand } from "./capacity.ts";
import type { MemberSpec, RoomSpec } from "./generator_core.js";
import { GeneratorPool } from "./generator_pool.ts";
import { median } from "./median.ts";
import {
  freeTcpPort,
  freeUdpPort,
  type ProcessSample,
  sampleProcess,
} from "./processes.ts";
import { type RunningSystem, startRelay, stopSystem } from "./systems.ts";

/** Time the link has to come up after both relays started, in ms. */
const LINK_TIMEOUT_MS = 30_000;

/** Settings of {@linkcode runFederationCost}. */
export interface FederationSettings {
  /** Rooms of the batching run, each with one sender at 50 packets/s. */
  batchRooms: number;
  /** Rooms of each cost run, each with one sender at 50 packets/s. */
  costRooms: number;
  /** Rounds of a local and a federated cost run, one after the other. */
  rounds: number;
  listenersPerRoom: number;
  settleMs: number;
  windowMs: number;
  drainMs: number;
  /** Length of the idle CPU measurement before the load, in ms. */
  idleMs: number;
  generators: number;
  relayCore: number;
  peerCore: number;
  generatorCore: number;
  /** Path of the built ws_generator.c, or null to use the Deno generator. */
  nativeGenerator: string | null;
}

/** One measured run. */
export interface FederationRun {
  mode: "local" | "federated";
  /** "batching" for the run at the batching rate, else the round from 1. */
  round: number | "batching";
  /** Packets the senders sent per second. */
  sentPerSecond: number;
  deliveredPerSecond: number;
  loss: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU time over wall time, less idle, of relay A and relay B. */
  relayACpuUtilization: number;
  relayBCpuUtilization: number;
  /** CPU time of the relays that carried the packets per delivered packet, in µs. */
  cpuPerDeliveredUs: number;
  /** Packets relay A sent to relay B per second. */
  linkPacketsPerSecond: number;
  /** Datagrams relay A sent to relay B per second. */
  linkDatagramsPerSecond: number;
}

/** Result of {@linkcode runFederationCost}. */
export interface FederationResult {
  batchRooms: number;
  costRooms: number;
  listenersPerRoom: number;
  /** Idle CPU time over wall time of each relay, subtracted from the runs. */
  idleCpuUtilization: { a: number; b: number };
  /** Every run in the order measured: the batching run, then the rounds. */
  runs: FederationRun[];
  /** Federated over local CPU per delivered packet, one per complete round. */
  roundRatios: number[];
  /** Median of {@linkcode roundRatios}. */
  hopCostRatio: number | null;
  /** Packets per datagram on the link during the batching run. */
  packetsPerDatagram: number | null;
  /** Error that stopped the measurement, or null. */
  error: string | null;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Reads one counter of relay A's /metrics; 0 when absent. */
async function readMetric(httpUrl: string, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  let total = 0;
  for (const match of text.matchAll(pattern)) total += Number(match[1]);
  return total;
}

const PACKETS_OUT =
  /^wzp_federation_packets_forwarded_total\{[^}]*direction="out"[^}]*\} (\S+)$/gm;
const DATAGRAMS_OUT =
  /^wzp_federation_datagrams_total\{direction="out"\} (\S+)$/gm;
const PEER_UP = /^wzp_federation_peer_status\{peer="relay-b"\} (\S+)$/gm;

/** Writes the federation config of one relay as JSON. */
async function writeConfig(path: string, federation: unknown): Promise<void> {
  await Deno.writeTextFile(path, JSON.stringify({ federation }, null, 2));
}

/** Starts relay A and relay B with a link between them. */
async function startPair(
  settings: FederationSettings,
  dirs: { a: string; b: string },
): Promise<{ a: RunningSystem; b: RunningSystem }> {
  const bridged = Array.from(
    { length: Math.max(settings.batchRooms, settings.costRooms) },
    (_, i) => roomName("federated", i),
  );
  const identityA = await RelayIdentity.loadOrCreate(dirs.a);
  const identityB = await RelayIdentity.loadOrCreate(dirs.b);
  const httpB = freeTcpPort();
  const wtB = freeUdpPort();
  const configA = `${dirs.a}/federation.json`;
  const configB = `${dirs.b}/federation.json`;
  await writeConfig(configA, {
    peers: [{
      url: `https://127.0.0.1:${wtB}/federation`,
      http_url: `http://127.0.0.1:${httpB}`,
      fingerprint: identityB.fingerprint,
      label: "relay-b",
    }],
    global_rooms: bridged,
  });
  await writeConfig(configB, {
    trusted: [{ fingerprint: identityA.fingerprint, label: "relay-a" }],
    global_rooms: bridged,
  });

  const b = await startRelay({
    core: settings.peerCore,
    name: "relay-b",
    dataDir: dirs.b,
    httpPort: httpB,
    wtPort: wtB,
    flags: ["--config", configB],
  });
  let a: RunningSystem;
  try {
    a = await startRelay({
      core: settings.relayCore,
      name: "relay-a",
      dataDir: dirs.a,
      flags: ["--config", configA],
    });
  } catch (error) {
    await stopSystem(b);
    throw error;
  }

  const deadline = performance.now() + LINK_TIMEOUT_MS;
  while (performance.now() < deadline) {
    if (await readMetric(a.httpUrl!, PEER_UP) === 1) return { a, b };
    await sleep(200);
  }
  await stopSystem(a);
  await stopSystem(b);
  throw new Error(
    `The federation link did not come up in ${LINK_TIMEOUT_MS} ms`,
  );
}

/** Returns the name of room `index` of a run. */
function roomName(mode: FederationRun["mode"], index: number): string {
  return `${mode}-${index}`;
}

/** Returns the rooms of one run. */
function roomsFor(
  mode: FederationRun["mode"],
  count: number,
  settings: FederationSettings,
  a: RunningSystem,
  b: RunningSystem,
): RoomSpec[] {
  const rooms: RoomSpec[] = [];
  for (let i = 0; i < count; i++) {
    const sender: MemberSpec = {
      transport: "ws",
      url: a.memberUrl("ws"),
      send: true,
    };
    const listeners: MemberSpec[] = [];
    for (let j = 0; j < settings.listenersPerRoom; j++) {
      listeners.push({
        transport: "ws",
        url: (mode === "local" ? a : b).memberUrl("ws"),
        send: false,
      });
    }
    rooms.push({ name: roomName(mode, i), members: [sender, ...listeners] });
  }
  return rooms;
}

/** Measures one run on a pool whose rooms of the run are joined. */
async function measure(
  mode: FederationRun["mode"],
  round: FederationRun["round"],
  settings: FederationSettings,
  pool: GeneratorPool,
  epoch: number,
  relays: { a: RunningSystem; b: RunningSystem },
  idle: { a: number; b: number },
): Promise<FederationRun> {
  // The metric reads sit next to the CPU samples, so that the link rates
  // and the CPU time cover the same interval.
  const httpA = relays.a.httpUrl!;
  const packetsBefore = await readMetric(httpA, PACKETS_OUT);
  const datagramsBefore = await readMetric(httpA, DATAGRAMS_OUT);
  const a0 = sampleProcess(relays.a.child.pid);
  const b0 = sampleProcess(relays.b.child.pid);
  await pool.setEpoch(epoch);
  await sleep(settings.windowMs);
  await pool.setEpoch(0);
  const a1 = sampleProcess(relays.a.child.pid);
  const b1 = sampleProcess(relays.b.child.pid);
  const packets = await readMetric(httpA, PACKETS_OUT) - packetsBefore;
  const datagrams = await readMetric(httpA, DATAGRAMS_OUT) - datagramsBefore;
  const metricSeconds = (performance.now() - a0.at) / 1000;
  await sleep(settings.drainMs);
  const report = await pool.report(epoch);

  const seconds = (a1.at - a0.at) / 1000;
  const busy = (start: ProcessSample, end: ProcessSample, idleShare: number) =>
    Math.max(0, end.cpuSeconds - start.cpuSeconds - idleShare * seconds);
  const cpuA = busy(a0, a1, idle.a);
  const cpuB = busy(b0, b1, idle.b);
  const carried = mode === "local" ? cpuA : cpuA + cpuB;
  return {
    mode,
    round,
    sentPerSecond: report.sent / seconds,
    deliveredPerSecond: report.received / seconds,
    loss: report.expected === 0
      ? 0
      : Math.max(0, 1 - report.received / report.expected),
    p50Ms: report.latency.quantile(0.5),
    p99Ms: report.latency.quantile(0.99),
    relayACpuUtilization: cpuA / seconds,
    relayBCpuUtilization: cpuB / seconds,
    cpuPerDeliveredUs: report.received === 0
      ? 0
      : carried / report.received * 1e6,
    linkPacketsPerSecond: packets / metricSeconds,
    linkDatagramsPerSecond: datagrams / metricSeconds,
  };
}

/** Measures the idle CPU time share of a process over `ms`. */
async function idleShare(pid: number, ms: number): Promise<number> {
  const start = sampleProcess(pid);
  await sleep(ms);
  const end = sampleProcess(pid);
  return (end.cpuSeconds - start.cpuSeconds) / ((end.at - start.at) / 1000);
}

/** Runs the batching run and the cost rounds; see the module doc. */
export async function runFederationCost(
  settings: FederationSettings,
): Promise<FederationResult> {
  const result: FederationResult = {
    batchRooms: settings.batchRooms,
    costRooms: settings.costRooms,
    listenersPerRoom: settings.listenersPerRoom,
    idleCpuUtilization: { a: 0, b: 0 },
    runs: [],
    roundRatios: [],
    hopCostRatio: null,
    packetsPerDatagram: null,
    error: null,
  };
  const dirs = {
    a: await Deno.makeTempDir({ prefix: "relay-bench-a-" }),
    b: await Deno.makeTempDir({ prefix: "relay-bench-b-" }),
  };
  let relays: { a: RunningSystem; b: RunningSystem } | null = null;
  let pool: GeneratorPool | null = null;
  try {
    relays = await startPair(settings, dirs);
    const pair = relays;
    const { command, cwd, encode } = generatorCommand(
      settings.nativeGenerator === null ? "deno" : "native",
      settings.nativeGenerator,
    );
    const startPool = () =>
      GeneratorPool.start({
        count: settings.generators,
        core: settings.generatorCore,
        command,
        cwd,
        encode,
        name: "federation-generator",
      });

    const [idleA, idleB] = await Promise.all([
      idleShare(pair.a.child.pid, settings.idleMs),
      idleShare(pair.b.child.pid, settings.idleMs),
    ]);
    const idle = { a: idleA, b: idleB };
    result.idleCpuUtilization = idle;

    let epoch = 0;
    // Each run starts a fresh pool and closes it after, so that the members
    // of one run do not add to the load of the next.
    const run = async (
      mode: FederationRun["mode"],
      round: FederationRun["round"],
      rooms: number,
    ): Promise<FederationRun> => {
      pool = await startPool();
      const join = await pool.join(
        roomsFor(mode, rooms, settings, pair.a, pair.b),
        pair.a.extra,
      );
      if (join.failed > 0) {
        throw new Error(
          `${join.failed} clients failed to join (${mode}): ${join.errors[0]}`,
        );
      }
      await sleep(settings.settleMs);
      const measured = await measure(
        mode,
        round,
        settings,
        pool,
        ++epoch,
        pair,
        idle,
      );
      await pool.close();
      pool = null;
      result.runs.push(measured);
      console.error(
        `federation ${mode} (${round}): ${
          Math.round(measured.deliveredPerSecond)
        } delivered/s, loss ${(measured.loss * 100).toFixed(3)} %, p99 ${
          measured.p99Ms.toFixed(2)
        } ms, ${measured.cpuPerDeliveredUs.toFixed(2)} µs/packet, ${
          Math.round(measured.linkPacketsPerSecond)
        } link packets/s in ${
          Math.round(measured.linkDatagramsPerSecond)
        } datagrams/s`,
      );
      return measured;
    };

    const batching = await run("federated", "batching", settings.batchRooms);
    if (batching.linkDatagramsPerSecond > 0) {
      result.packetsPerDatagram = batching.linkPacketsPerSecond /
        batching.linkDatagramsPerSecond;
    }
    for (let round = 1; round <= settings.rounds; round++) {
      const local = await run("local", round, settings.costRooms);
      const federated = await run("federated", round, settings.costRooms);
      if (local.cpuPerDeliveredUs > 0) {
        result.roundRatios.push(
          federated.cpuPerDeliveredUs / local.cpuPerDeliveredUs,
        );
      }
    }
    if (result.roundRatios.length > 0) {
      result.hopCostRatio = median(result.roundRatios);
    }
  } catch (error) {
    result.error = error instanceof Error ? error.message : String(error);
    console.error(`federation: ${result.error}`);
  } finally {
    await (pool as GeneratorPool | null)?.close();
    if (relays !== null) {
      await stopSystem(relays.a);
      await stopSystem(relays.b);
    }
    await Deno.remove(dirs.a, { recursive: true }).catch(() => {});
    await Deno.remove(dirs.b, { recursive: true }).catch(() => {});
  }
  return result;
}
