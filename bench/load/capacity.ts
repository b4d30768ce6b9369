/**
 * Capacity search for one relay: adds rooms step by step, measures each
 * step over a fixed window, and stops at the first step that misses the
 * latency or loss limit.
 *
 * @module
 */

import type { MemberSpec, RoomSpec } from "./generator_core.js";
import {
  encodeJsonRequest,
  encodeNativeRequest,
  type EpochReport,
  GeneratorPool,
  type RequestEncoder,
} from "./generator_pool.ts";
import {
  machineBusySeconds,
  type ProcessSample,
  sampleProcess,
} from "./processes.ts";
import {
  type GeneratorKind,
  REPO_ROOT,
  type RunningSystem,
  stopSystem,
  type TransportMix,
} from "./systems.ts";
import { BASELINES_DIR } from "./systems.ts";

/**
 * Generator CPU share at or above which a failing step is blamed on the
 * generator core rather than on the relay.
 */
export const GENERATOR_SATURATION = 0.9;

/**
 * Times a step is measured before it counts as failed. The machine's
 * cores are shared, and one stall of another process can push a window's
 * 99th percentile over the limit.
 */
export const MAX_STEP_ATTEMPTS = 2;

/**
 * CPU share of other processes under which a window may start: before
 * each window the harness waits, up to {@linkcode MAX_QUIET_WAIT_MS}, for
 * the rest of the machine to fall below it.
 */
export const QUIET_OTHER_CPU = 0.2;

/** Longest wait for a quiet machine before a window starts anyway, in ms. */
export const MAX_QUIET_WAIT_MS = 20_000;

/** Length of one probe of the machine's other load, in ms. */
const QUIET_PROBE_MS = 1_000;

/** Settings shared by every step of a search. */
export interface LoadSettings {
  /** Participants per room. */
  roomSize: number;
  /** Participant counts to step through, ascending. */
  levels: number[];
  /** Time after a join before the window starts, in ms. */
  settleMs: number;
  /** Length of the measurement window, in ms. */
  windowMs: number;
  /** Time after the window for its last packets to arrive, in ms. */
  drainMs: number;
  /** Generator processes. */
  generators: number;
  relayCore: number;
  generatorCore: number;
  /** A step passes below this 99th percentile latency, in ms. */
  p99LimitMs: number;
  /** A step passes below this fraction of lost packets. */
  lossLimit: number;
  /** Path of the built ws_generator.c, or null to use the Deno generator. */
  nativeGenerator: string | null;
}

/** One measured step. */
export interface StepResult {
  participants: number;
  rooms: number;
  windowSeconds: number;
  /** Packets the generators sent per second. */
  sentPerSecond: number;
  /** Packets received by all members per second. */
  deliveredPerSecond: number;
  /** Fraction of expected deliveries that did not arrive. */
  loss: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  /** Relay CPU time over wall time (1 = one core busy). */
  relayCpuUtilization: number;
  /** Relay CPU time per delivered packet, in µs. */
  cpuPerDeliveredUs: number;
  /** Share of the relay's CPU time spent in the kernel. */
  relaySystemShare: number;
  /** Generator CPU time over wall time, all generators on one core. */
  generatorCpuUtilization: number;
  /**
   * Busy CPU time of the machine outside the relay and the generators,
   * over wall time. It counts other processes, the harness and interrupt
   * work charged to no process, and reaches 2 on a 2-core machine.
   */
  otherCpuUtilization: number;
  relayRssBytes: number;
  /** Relay RSS above its idle RSS, per participant, in bytes. */
  rssPerParticipantBytes: number;
  /** Packets the clients refused to send (their own backpressure). */
  sendDrops: number;
  /** Clients that closed without being asked. */
  closedClients: number;
  /** Largest delay of a generator's send timer, in ms. */
  maxTimerLagMs: number;
  /** Relay drop counters during the window, by reason (relay only). */
  relayDrops: Record<string, number>;
  /** Windows measured at this load; the last one is reported. */
  attempts: number;
  /** Time spent waiting for a quiet machine before the window, in ms. */
  quietWaitMs: number;
  pass: boolean;
}

/** Result of one capacity search. */
export interface CapacityResult {
  name: string;
  label: string;
  mix: TransportMix;
  /** Generator program that drove it. */
  generator: GeneratorKind;
  idleRssBytes: number;
  steps: StepResult[];
  /** Largest passing step before the first failure, or null. */
  capacity: number | null;
  /**
   * The failing step had the generator core saturated, so the relay's
   * capacity is at least `capacity`.
   */
  generatorBound: boolean;
  /**
   * Participants of the level where clients failed to join, or null. The
   * join is not measured, so the capacity is at least `capacity`.
   */
  joinFailedAt: number | null;
  /** Reason the search stopped. */
  stoppedBecause: string;
}

/** A relay setup that {@linkcode runCapacitySearch} measures. */
export interface CapacityScenario {
  name: string;
  label: string;
  mix: TransportMix;
  generator: GeneratorKind;
  /** Participant counts to step through instead of the settings' list. */
  levels?: number[];
  start(): Promise<RunningSystem>;
}

/** How to start one generator process. */
export interface GeneratorCommand {
  command: string[];
  cwd: string;
  encode: RequestEncoder;
}

/**
 * Returns the generator command for a kind. `native` needs the path of
 * the built ws_generator.c.
 */
export function generatorCommand(
  kind: GeneratorKind,
  nativePath: string | null,
): GeneratorCommand {
  if (kind === "socketio") {
    return {
      command: ["node", `${BASELINES_DIR}socketio_generator.mjs`],
      cwd: BASELINES_DIR,
      encode: encodeJsonRequest,
    };
  }
  if (kind === "native") {
    if (nativePath === null) {
      throw new TypeError("The native generator is not built");
    }
    return {
      command: [nativePath],
      cwd: REPO_ROOT,
      encode: encodeNativeRequest,
    };
  }
  return {
    encode: encodeJsonRequest,
    command: [
      Deno.execPath(),
      "run",
      "--allow-net",
      "--unstable-net",
      "bench/load/generator.ts",
    ],
    cwd: REPO_ROOT,
  };
}

/** Transport of member `index` of room `room` in a mix. */
function memberTransport(
  mix: TransportMix,
  room: number,
  index: number,
  roomSize: number,
): MemberSpec["transport"] {
  if (mix !== "mixed") return mix;
  return (room * roomSize + index) % 2 === 0 ? "ws" : "wt";
}

/** Builds the specs of rooms `from` to `to - 1`. */
function roomSpecs(
  scenario: CapacityScenario,
  system: RunningSystem,
  from: number,
  to: number,
  roomSize: number,
): RoomSpec[] {
  const rooms: RoomSpec[] = [];
  for (let room = from; room < to; room++) {
    const members: MemberSpec[] = [];
    for (let index = 0; index < roomSize; index++) {
      const transport = memberTransport(scenario.mix, room, index, roomSize);
      members.push({ transport, url: system.memberUrl(transport), send: true });
    }
    rooms.push({ name: `${scenario.name}-${room}`, members });
  }
  return rooms;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Reads `wzp_relay_packets_dropped_total` by reason from a relay's
 * /metrics; empty for systems without it.
 */
export async function readDropCounters(
  httpUrl: string | null,
): Promise<Record<string, number>> {
  if (httpUrl === null) return {};
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  const drops: Record<string, number> = {};
  for (
    const match of text.matchAll(
      /^wzp_relay_packets_dropped_total\{reason="([^"]+)"\} (\S+)$/gm,
    )
  ) {
    drops[match[1]!] = Number(match[2]);
  }
  return drops;
}

/** Counts one step's measurements into a {@linkcode StepResult}. */
function stepResult(
  settings: LoadSettings,
  participants: number,
  rooms: number,
  report: EpochReport,
  relay: [ProcessSample, ProcessSample],
  generators: [ProcessSample, ProcessSample],
  machineBusy: [number, number],
  idleRssBytes: number,
  relayDrops: Record<string, number>,
): StepResult {
  const seconds = (relay[1].at - relay[0].at) / 1000;
  const relayCpu = relay[1].cpuSeconds - relay[0].cpuSeconds;
  const generatorCpu = generators[1].cpuSeconds - generators[0].cpuSeconds;
  const loss = report.expected === 0
    ? 0
    : Math.max(0, 1 - report.received / report.expected);
  const p99Ms = report.latency.quantile(0.99);
  return {
    participants,
    rooms,
    windowSeconds: seconds,
    sentPerSecond: report.sent / seconds,
    deliveredPerSecond: report.received / seconds,
    loss,
    p50Ms: report.latency.quantile(0.5),
    p99Ms,
    p999Ms: report.latency.quantile(0.999),
    maxMs: report.latency.max,
    relayCpuUtilization: relayCpu / seconds,
    cpuPerDeliveredUs: report.received === 0
      ? 0
      : relayCpu / report.received * 1e6,
    relaySystemShare: relayCpu === 0
      ? 0
      : (relay[1].systemSeconds - relay[0].systemSeconds) / relayCpu,
    generatorCpuUtilization: generatorCpu / seconds,
    otherCpuUtilization: Math.max(
      0,
      (machineBusy[1] - machineBusy[0] - relayCpu - generatorCpu) / seconds,
    ),
    relayRssBytes: relay[1].rssBytes,
    rssPerParticipantBytes: (relay[1].rssBytes - idleRssBytes) / participants,
    sendDrops: report.sendDrops,
    closedClients: report.closed,
    maxTimerLagMs: report.maxTimerLagMs,
    relayDrops,
    attempts: 1,
    quietWaitMs: 0,
    pass: p99Ms < settings.p99LimitMs && loss < settings.lossLimit &&
      report.closed === 0 && report.received > 0,
  };
}

/** Returns the counters that grew between two reads. */
function dropDelta(
  before: Record<string, number>,
  after: Record<string, number>,
): Record<string, number> {
  const delta: Record<string, number> = {};
  for (const [reason, value] of Object.entries(after)) {
    const grown = value - (before[reason] ?? 0);
    if (grown > 0) delta[reason] = grown;
  }
  return delta;
}

/** Prints one step as a line on stderr. */
export function logStep(name: string, step: StepResult): void {
  console.error(
    `${name}: ${step.participants} participants: ` +
      `${Math.round(step.deliveredPerSecond)} delivered/s, ` +
      `loss ${(step.loss * 100).toFixed(3)} %, ` +
      `p50 ${step.p50Ms.toFixed(2)} ms, p99 ${step.p99Ms.toFixed(2)} ms, ` +
      `relay cpu ${(step.relayCpuUtilization * 100).toFixed(0)} % ` +
      `(${step.cpuPerDeliveredUs.toFixed(2)} µs/packet, ` +
      `${(step.relaySystemShare * 100).toFixed(0)} % kernel), ` +
      `generators ${(step.generatorCpuUtilization * 100).toFixed(0)} %, ` +
      `other ${(step.otherCpuUtilization * 100).toFixed(0)} %` +
      (step.quietWaitMs > 1_500
        ? ` (waited ${(step.quietWaitMs / 1000).toFixed(0)} s for quiet), `
        : ", ") +
      `${(step.rssPerParticipantBytes / 1024).toFixed(1)} KiB/participant ` +
      `${step.pass ? "PASS" : "FAIL"} (attempt ${step.attempts})`,
  );
}

/**
 * Waits until processes other than the relay and the generators use less
 * than {@linkcode QUIET_OTHER_CPU} of the machine, or until
 * {@linkcode MAX_QUIET_WAIT_MS} has passed. Returns the time waited, in ms.
 */
export async function waitForQuietMachine(pids: number[]): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < MAX_QUIET_WAIT_MS) {
    const busyStart = machineBusySeconds();
    const oursStart = pids.reduce(
      (sum, pid) => sum + sampleProcess(pid).cpuSeconds,
      0,
    );
    await sleep(QUIET_PROBE_MS);
    const ours = pids.reduce(
      (sum, pid) => sum + sampleProcess(pid).cpuSeconds,
      0,
    ) - oursStart;
    const other = (machineBusySeconds() - busyStart - ours) /
      (QUIET_PROBE_MS / 1000);
    if (other < QUIET_OTHER_CPU) break;
  }
  return performance.now() - started;
}

/** Measures one window at the current load. */
async function measureStep(
  settings: LoadSettings,
  system: RunningSystem,
  pool: GeneratorPool,
  epoch: number,
  rooms: number,
  idleRssBytes: number,
): Promise<StepResult> {
  const quietWaitMs = await waitForQuietMachine([
    system.child.pid,
    ...pool.pids,
  ]);
  const dropsBefore = await readDropCounters(system.httpUrl);
  const busyStart = machineBusySeconds();
  const relayStart = sampleProcess(system.child.pid);
  const generatorsStart = pool.sample();
  await pool.setEpoch(epoch);
  await sleep(settings.windowMs);
  await pool.setEpoch(0);
  const relayEnd = sampleProcess(system.child.pid);
  const generatorsEnd = pool.sample();
  const busyEnd = machineBusySeconds();
  await sleep(settings.drainMs);
  const report = await pool.report(epoch);
  const dropsAfter = await readDropCounters(system.httpUrl);

  const step = stepResult(
    settings,
    rooms * settings.roomSize,
    rooms,
    report,
    [relayStart, relayEnd],
    [generatorsStart, generatorsEnd],
    [busyStart, busyEnd],
    idleRssBytes,
    dropDelta(dropsBefore, dropsAfter),
  );
  step.quietWaitMs = quietWaitMs;
  return step;
}

/**
 * Starts the system and the generators, steps through
 * `settings.levels`, and stops everything before returning.
 */
export async function runCapacitySearch(
  scenario: CapacityScenario,
  settings: LoadSettings,
): Promise<CapacityResult> {
  // Without a C compiler the JavaScript generators stand in.
  let kind = scenario.generator;
  if (kind === "native" && settings.nativeGenerator === null) {
    kind = scenario.mix === "socketio" ? "socketio" : "deno";
  }
  const { command, cwd, encode } = generatorCommand(
    kind,
    settings.nativeGenerator,
  );
  const system = await scenario.start();
  let pool: GeneratorPool | null = null;
  const steps: StepResult[] = [];
  let stoppedBecause = "every level passed";
  let generatorBound = false;
  let joinFailedAt: number | null = null;
  let idleRssBytes = 0;
  try {
    pool = await GeneratorPool.start({
      count: settings.generators,
      core: settings.generatorCore,
      command,
      cwd,
      encode,
      name: `${scenario.name}-generator`,
    });
    await sleep(500);
    idleRssBytes = sampleProcess(system.child.pid).rssBytes;

    let rooms = 0;
    let epoch = 0;
    for (const level of scenario.levels ?? settings.levels) {
      const target = Math.ceil(level / settings.roomSize);
      const join = await pool.join(
        roomSpecs(scenario, system, rooms, target, settings.roomSize),
        system.extra,
      );
      rooms = target;
      if (join.failed > 0) {
        joinFailedAt = level;
        stoppedBecause = `${join.failed} clients failed to join at ` +
          `${level} participants: ${join.errors[0] ?? "unknown error"}`;
        break;
      }
      await sleep(settings.settleMs);

      let step = await measureStep(
        settings,
        system,
        pool,
        ++epoch,
        rooms,
        idleRssBytes,
      );
      logStep(scenario.name, step);
      for (
        let attempt = 2;
        attempt <= MAX_STEP_ATTEMPTS && !step.pass;
        attempt++
      ) {
        step = await measureStep(
          settings,
          system,
          pool,
          ++epoch,
          rooms,
          idleRssBytes,
        );
        step.attempts = attempt;
        logStep(scenario.name, step);
      }
      steps.push(step);
      if (!step.pass) {
        generatorBound = step.generatorCpuUtilization >= GENERATOR_SATURATION;
        stoppedBecause = `failed at ${step.participants} participants` +
          (generatorBound ? " with the generator core saturated" : "");
        break;
      }
    }
  } catch (error) {
    stoppedBecause = `error: ${
      error instanceof Error ? error.message : String(error)
    }`;
    console.error(`${scenario.name}: ${stoppedBecause}`);
  } finally {
    await pool?.close();
    await stopSystem(system);
  }

  let capacity: number | null = null;
  for (const step of steps) {
    if (!step.pass) break;
    capacity = step.participants;
  }
  return {
    name: scenario.name,
    label: scenario.label,
    mix: scenario.mix,
    generator: kind,
    idleRssBytes,
    steps,
    capacity,
    generatorBound,
    joinFailedAt,
    stoppedBecause,
  };
}
