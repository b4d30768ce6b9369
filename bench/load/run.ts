/**
 * `deno task bench:load`: measures the relay and the baseline relays under
 * the same load on loopback, writes bench/results/latest.json and the
 * chart, and regenerates the measured sections of docs/benchmarks.md.
 * A partial run (`--quick`, `--only`, `--levels`, `--generators`,
 * `--no-micro`, `--no-federation`) writes to bench/results/partial/
 * instead and leaves the page alone; `--out DIR` picks another folder.
 *
 * ```
 * deno task bench:load            # full suite, about 8 minutes
 * deno task bench:load --quick    # smoke run, about 2 minutes
 * deno task bench:load --only relay-ws,ws-baseline --levels 300,600
 * deno task bench:load --from bench/results/latest.json  # re-render only
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  type CapacityResult,
  type CapacityScenario,
  type LoadSettings,
  runCapacitySearch,
} from "./capacity.ts";
import {
  type FederationResult,
  type FederationSettings,
  runFederationCost,
} from "./federation.ts";
import { collectMachineInfo } from "./machine.ts";
import {
  type PairedResult,
  type PairedSettings,
  runPairedRounds,
} from "./paired.ts";
import { buildNativeGenerator } from "./native_generator.ts";
import { type MicroResult, runMicroBenchmarks } from "./micro.ts";
import { PARTIAL_RESULTS_DIR, RESULTS_DIR, writeReport } from "./report.ts";
import {
  ensureBaselinePackages,
  startBaseline,
  startRelay,
  startWebTransportFloor,
} from "./systems.ts";

/** Core the relay under test is pinned to. */
const RELAY_CORE = 0;
/** Core the generators (and the harness) are pinned to. */
const GENERATOR_CORE = 1;

/**
 * Steps of the scenarios with WebTransport members: their generator is
 * Deno's WebTransport client, which saturates its core at a few hundred
 * participants, so the steps are finer. 150, 300 and 450 are also
 * WebSocket steps, where the report compares the two at the same load.
 */
const WEBTRANSPORT_LEVELS = [60, 120, 150, 180, 240, 300, 450];

/** Every capacity scenario, in report order. */
const SCENARIOS: CapacityScenario[] = [
  {
    name: "relay-ws",
    label: "relay, WebSocket",
    mix: "ws",
    generator: "native",
    start: () => startRelay({ core: RELAY_CORE }),
  },
  {
    name: "relay-wt",
    label: "relay, WebTransport",
    mix: "wt",
    generator: "deno",
    levels: WEBTRANSPORT_LEVELS,
    start: () => startRelay({ core: RELAY_CORE }),
  },
  {
    name: "relay-mixed",
    label: "relay, WebSocket + WebTransport",
    mix: "mixed",
    generator: "deno",
    levels: WEBTRANSPORT_LEVELS,
    start: () => startRelay({ core: RELAY_CORE }),
  },
  {
    name: "ws-baseline",
    label: "Node.js ws baseline",
    mix: "ws",
    generator: "native",
    start: () => startBaseline("ws", RELAY_CORE),
  },
  {
    name: "socketio-baseline",
    label: "Socket.IO baseline",
    mix: "socketio",
    generator: "native",
    start: () => startBaseline("socketio", RELAY_CORE),
  },
  {
    name: "deno-floor",
    label: "Deno runtime floor",
    mix: "ws",
    generator: "native",
    start: () => startBaseline("floor", RELAY_CORE),
  },
  {
    name: "deno-wt-floor",
    label: "Deno runtime floor, WebTransport",
    mix: "wt",
    generator: "deno",
    levels: WEBTRANSPORT_LEVELS,
    start: () => startWebTransportFloor(RELAY_CORE),
  },
];

/**
 * Paired rounds of the relay against the Deno floor, for the ≤ 1.2× target:
 * a load both carry with room to spare, measured in alternating turns.
 */
const FLOOR_ROUNDS_FULL: PairedSettings = { participants: 450, rounds: 3 };
const FLOOR_ROUNDS_QUICK: PairedSettings = { participants: 450, rounds: 1 };

/** Settings of the full suite. */
const FULL: LoadSettings = {
  roomSize: 3,
  levels: [150, 300, 450, 600, 750, 900, 1050, 1200, 1500, 1800, 2400, 3000],
  settleMs: 1_000,
  windowMs: 5_000,
  drainMs: 500,
  generators: 3,
  relayCore: RELAY_CORE,
  generatorCore: GENERATOR_CORE,
  p99LimitMs: 50,
  lossLimit: 0.001,
  nativeGenerator: null,
};

/** Settings of `--quick`: fewer, shorter steps. */
const QUICK: LoadSettings = {
  ...FULL,
  levels: [150, 450],
  settleMs: 1_000,
  windowMs: 2_000,
  drainMs: 500,
};

/** Federation settings: the full suite and `--quick`. */
const FEDERATION_FULL: FederationSettings = {
  batchRooms: 20,
  costRooms: 200,
  rounds: 3,
  listenersPerRoom: 2,
  settleMs: 3_000,
  windowMs: 6_000,
  drainMs: 1_000,
  // CPU time is read in clock ticks of 10 ms, so a relay idling at 1 %
  // shows as 3 ticks in 3 s; 10 s gives the subtracted figure 10 ticks.
  idleMs: 10_000,
  generators: 1,
  relayCore: RELAY_CORE,
  peerCore: GENERATOR_CORE,
  generatorCore: GENERATOR_CORE,
  nativeGenerator: null,
};
const FEDERATION_QUICK: FederationSettings = {
  ...FEDERATION_FULL,
  rounds: 1,
  settleMs: 2_000,
  windowMs: 3_000,
  drainMs: 500,
  idleMs: 1_000,
};

/** Everything one run measured; written to bench/results/latest.json. */
export interface LoadResults {
  startedAt: string;
  finishedAt: string;
  quick: boolean;
  command: string;
  machine: Awaited<ReturnType<typeof collectMachineInfo>>;
  /** Settings of the capacity search; `nativeGenerator` is a temporary path. */
  settings: LoadSettings;
  micro: MicroResult[] | null;
  capacity: CapacityResult[];
  /** Paired rounds of the relay against the Deno floor, or null if not run. */
  floorRounds?: PairedResult | null;
  federation: FederationResult | null;
}

/** Returns the scenario named `name`. */
function scenario(name: string): CapacityScenario {
  const found = SCENARIOS.find((candidate) => candidate.name === name);
  if (found === undefined) throw new RangeError(`Unknown scenario ${name}`);
  return found;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      only: { type: "string" },
      levels: { type: "string" },
      generators: { type: "string" },
      "no-micro": { type: "boolean", default: false },
      "no-federation": { type: "boolean", default: false },
      "no-docs": { type: "boolean", default: false },
      out: { type: "string" },
      from: { type: "string" },
    },
  });

  if (values.from !== undefined) {
    // Re-renders a saved run, for example after a change to the report.
    const saved = JSON.parse(await Deno.readTextFile(values.from));
    const outDir = values.out ?? RESULTS_DIR;
    await writeReport(saved as LoadResults, {
      docs: !values["no-docs"] && outDir === RESULTS_DIR,
      outDir,
      json: false,
    });
    return;
  }

  const settings: LoadSettings = { ...(values.quick ? QUICK : FULL) };
  if (values.levels !== undefined) {
    settings.levels = values.levels.split(",").map(Number);
  }
  if (values.generators !== undefined) {
    settings.generators = Number(values.generators);
  }
  const only = values.only?.split(",");
  // --quick and --levels use one step list for every scenario.
  const uniformLevels = values.quick || values.levels !== undefined;
  const scenarios = SCENARIOS
    .filter((scenario) => only === undefined || only.includes(scenario.name))
    .map((scenario) =>
      uniformLevels ? { ...scenario, levels: undefined } : scenario
    );
  const runFederation = !values["no-federation"] &&
    (only === undefined || only.includes("federation"));
  const runFloorRounds = only === undefined || only.includes("floor-rounds");

  const startedAt = new Date().toISOString();
  await ensureBaselinePackages();
  const machine = await collectMachineInfo();
  const native = await buildNativeGenerator();
  settings.nativeGenerator = native?.path ?? null;

  let micro: MicroResult[] | null = null;
  const capacity: CapacityResult[] = [];
  let federation: FederationResult | null = null;
  let floorRounds: PairedResult | null = null;
  try {
    if (!values["no-micro"] && only === undefined) {
      micro = await runMicroBenchmarks(RELAY_CORE);
    }
    for (const scenario of scenarios) {
      console.error(`== ${scenario.label}`);
      capacity.push(await runCapacitySearch(scenario, settings));
    }
    if (runFloorRounds) {
      console.error("== relay against the Deno floor, paired rounds");
      floorRounds = await runPairedRounds(
        scenario("relay-ws"),
        scenario("deno-floor"),
        { ...settings, levels: [] },
        values.quick ? FLOOR_ROUNDS_QUICK : FLOOR_ROUNDS_FULL,
      );
    }
    if (runFederation) {
      console.error("== federation");
      federation = await runFederationCost({
        ...(values.quick ? FEDERATION_QUICK : FEDERATION_FULL),
        nativeGenerator: settings.nativeGenerator,
      });
    }
  } finally {
    if (native !== null) await Deno.remove(native.dir, { recursive: true });
  }

  const results: LoadResults = {
    startedAt,
    finishedAt: new Date().toISOString(),
    quick: values.quick,
    command: ["deno task bench:load", ...Deno.args].join(" "),
    machine,
    settings,
    micro,
    capacity,
    floorRounds,
    federation,
  };
  // Only a full run replaces the published run and the page. A partial
  // run goes to its own folder, so that it cannot mix with the published
  // one.
  const partial = values.quick || only !== undefined ||
    values.levels !== undefined || values.generators !== undefined ||
    values["no-micro"] || values["no-federation"];
  const outDir = values.out ?? (partial ? PARTIAL_RESULTS_DIR : RESULTS_DIR);
  await writeReport(results, {
    docs: !values["no-docs"] && !partial && outDir === RESULTS_DIR,
    outDir,
  });
}

await main();
