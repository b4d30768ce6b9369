/**
 * Writes a run's results: bench/results/latest.json, the latency chart
 * bench/results/latency_p99.svg, and the generated sections of
 * docs/benchmarks.md (between `<!-- BEGIN GENERATED: name -->` and
 * `<!-- END GENERATED: name -->`), which it then formats with `deno fmt`.
 *
 * @module
 */

import type { CapacityResult, StepResult } from "./capacity.ts";
import { renderLatencyChart } from "./chart.ts";
import type { FederationResult } from "./federation.ts";
import { median } from "./median.ts";
import type { PairedResult } from "./paired.ts";
import type { MicroResult } from "./micro.ts";
import type { LoadResults } from "./run.ts";
import { REPO_ROOT } from "./systems.ts";

/** Folder of the published run, which docs/benchmarks.md shows. */
export const RESULTS_DIR = `${REPO_ROOT}bench/results/`;
/** Default folder of partial runs, which never touch the published run. */
export const PARTIAL_RESULTS_DIR = `${REPO_ROOT}bench/results/partial/`;
const DOC_PATH = `${REPO_ROOT}docs/benchmarks.md`;
const CHART_FILE = "latency_p99.svg";

/** Targets the project set, 3-person rooms at 50 packets/s, one relay core. */
const TARGETS = {
  wsCapacity: 1_500,
  versusWs: 1 / 2,
  versusSocketIo: 1 / 3,
  versusFloor: 1.2,
  wtVersusWs: 1,
  hopCost: 1.5,
  packetsPerDatagram: 5,
  memoryPerParticipantBytes: 64 * 1024,
};

function integer(value: number): string {
  return Math.round(value).toLocaleString("en-US");
}

function ms(value: number): string {
  if (value < 10) return value.toFixed(2);
  if (value < 100) return value.toFixed(1);
  return integer(value);
}

function percent(share: number, digits = 0): string {
  return `${(share * 100).toFixed(digits)} %`;
}

function kib(bytes: number): string {
  return (bytes / 1024).toFixed(1);
}

/** Builds a Markdown table. */
function table(header: string[], rows: string[][]): string {
  const lines = [
    `| ${header.join(" | ")} |`,
    `| ${header.map(() => "---").join(" | ")} |`,
    ...rows.map((row) => `| ${row.join(" | ")} |`),
  ];
  return lines.join("\n");
}

/** Returns the capacity, marked when the generator limited it. */
function capacityText(result: CapacityResult): string {
  // Results saved before the join check have no joinFailedAt.
  const joinFailedAt = result.joinFailedAt ?? null;
  let bound = "";
  if (result.generatorBound) bound = " (generator-bound)";
  else if (joinFailedAt !== null) {
    bound = ` (clients failed to join at ${integer(joinFailedAt)})`;
  }
  if (result.capacity === null) return `none${bound}`;
  return bound === ""
    ? integer(result.capacity)
    : `≥ ${integer(result.capacity)}${bound}`;
}

/** Returns the step at the capacity, else the last step. */
function capacityStep(result: CapacityResult): StepResult | undefined {
  const passing = result.steps.filter((step) => step.pass);
  return passing.at(-1) ?? result.steps.at(-1);
}

/** CPU per delivered packet of two systems at one load. */
export interface LoadCost {
  participants: number;
  firstUs: number;
  secondUs: number;
  /** first / second. */
  ratio: number;
}

/** CPU per delivered packet of two systems over the loads they share. */
export interface PairedCost {
  /** Loads compared, in ascending order. */
  loads: LoadCost[];
  /** Both systems passed every compared load. */
  bothPassed: boolean;
  /** Median of the ratios of {@linkcode loads}. */
  ratio: number;
  minRatio: number;
  maxRatio: number;
}

/**
 * Compares CPU per delivered packet at every load both systems passed,
 * or, when they passed none in common, at the largest load both measured.
 * The result is the median of the per-load ratios, because one 5 s window
 * per load moves by more than the difference between two systems. When
 * `loads` is given, only those loads count.
 */
export function pairedCost(
  first: CapacityResult | undefined,
  second: CapacityResult | undefined,
  loads?: readonly number[],
): PairedCost | null {
  if (first === undefined || second === undefined) return null;
  const passed: LoadCost[] = [];
  let fallback: LoadCost | null = null;
  for (const a of first.steps) {
    if (loads !== undefined && !loads.includes(a.participants)) continue;
    const b = second.steps.find((step) => step.participants === a.participants);
    if (b === undefined || a.cpuPerDeliveredUs === 0) continue;
    if (b.cpuPerDeliveredUs === 0) continue;
    const cost: LoadCost = {
      participants: a.participants,
      firstUs: a.cpuPerDeliveredUs,
      secondUs: b.cpuPerDeliveredUs,
      ratio: a.cpuPerDeliveredUs / b.cpuPerDeliveredUs,
    };
    if (a.pass && b.pass) passed.push(cost);
    if (fallback === null || cost.participants > fallback.participants) {
      fallback = cost;
    }
  }
  let chosen = passed;
  if (chosen.length === 0) {
    if (fallback === null) return null;
    chosen = [fallback];
  }
  chosen.sort((x, y) => x.participants - y.participants);
  const ratios = chosen.map((cost) => cost.ratio);
  return {
    loads: chosen,
    bothPassed: passed.length > 0,
    ratio: median(ratios),
    minRatio: Math.min(...ratios),
    maxRatio: Math.max(...ratios),
  };
}

/** Returns the loads of a comparison, for comparing others at the same. */
function loadsOf(cost: PairedCost | null): number[] | undefined {
  return cost?.loads.map((load) => load.participants);
}

function byName(results: LoadResults, name: string) {
  return results.capacity.find((result) => result.name === name);
}

function runSection(results: LoadResults): string {
  const m = results.machine;
  const rows = [
    ["Command", `\`${results.command}\``],
    ["Started", results.startedAt],
    ["Finished", results.finishedAt],
    ["CPU", `${m.cores} × ${m.cpuModel}`],
    ["Memory", `${m.memoryGiB} GiB`],
    ["Kernel", m.kernel],
    [
      "Load average at start",
      m.loadAverage.map((v) => v.toFixed(2)).join(", "),
    ],
    ["Deno", `${m.deno} (V8 ${m.v8})`],
    ["Node.js", m.node],
    ["C compiler", m.cc],
    [
      "npm packages",
      Object.entries(m.packages).map(([name, version]) => `${name} ${version}`)
        .join(", "),
    ],
    [
      "Generators",
      [...new Set(results.capacity.map((r) => `${r.name}: ${r.generator}`))]
        .join(", "),
    ],
  ];
  return table(["", ""], rows);
}

function summarySection(results: LoadResults): string {
  const rows = results.capacity.map((result) => {
    const step = capacityStep(result);
    if (step === undefined) {
      return [result.label, "–", "–", "–", "–", "–", "–", "–", "–", "–"];
    }
    return [
      result.label,
      capacityText(result),
      integer(step.deliveredPerSecond),
      `${ms(step.p50Ms)} / ${ms(step.p99Ms)} / ${ms(step.p999Ms)}`,
      percent(step.loss, 3),
      percent(step.relayCpuUtilization),
      step.cpuPerDeliveredUs.toFixed(1),
      integer(1e6 / step.cpuPerDeliveredUs),
      kib(step.rssPerParticipantBytes),
      percent(step.generatorCpuUtilization),
    ];
  });
  return table([
    "relay",
    "capacity (participants)",
    "delivered packets/s",
    "latency p50 / p99 / p99.9 (ms)",
    "loss",
    "relay CPU",
    "CPU µs per delivered packet",
    "delivered packets per core-second",
    "RSS KiB per participant",
    "generator CPU",
  ], rows) +
    "\n\nEach row is the relay's largest passing step, or its last step when " +
    "none passed. Each search stopped for this reason:\n\n" +
    results.capacity.map((r) => `- ${r.label}: ${r.stoppedBecause}.`)
      .join("\n");
}

function stepsSection(results: LoadResults): string {
  const rows: string[][] = [];
  for (const result of results.capacity) {
    for (const step of result.steps) {
      const drops = Object.entries(step.relayDrops)
        .map(([reason, count]) => `${reason} ${integer(count)}`).join(", ");
      rows.push([
        result.name,
        integer(step.participants),
        integer(step.deliveredPerSecond),
        percent(step.loss, 3),
        ms(step.p50Ms),
        ms(step.p99Ms),
        ms(step.p999Ms),
        percent(step.relayCpuUtilization),
        step.cpuPerDeliveredUs.toFixed(1),
        percent(step.relaySystemShare),
        percent(step.generatorCpuUtilization),
        percent(step.otherCpuUtilization),
        kib(step.rssPerParticipantBytes),
        drops === "" ? "–" : drops,
        `${step.pass ? "pass" : "FAIL"}${
          step.attempts > 1 ? ` (attempt ${step.attempts})` : ""
        }`,
      ]);
    }
  }
  return table([
    "relay",
    "participants",
    "delivered/s",
    "loss",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "relay CPU",
    "µs/packet",
    "kernel share",
    "generator CPU",
    "other CPU",
    "KiB/participant",
    "relay drops",
    "result",
  ], rows);
}

function ratioRow(
  label: string,
  cost: PairedCost | null,
  target: string,
  met: ((ratio: number) => boolean) | null,
): string[] {
  if (cost === null) return [label, "not measured", "–", "–", target, "–"];

  let verdict = "–";
  if (met !== null) verdict = met(cost.ratio) ? "met" : "missed";
  const loads = cost.loads.map((load) => integer(load.participants)).join(
    ", ",
  ) + (cost.bothPassed ? "" : " (not both passing)");
  const perLoad = cost.loads.map((load) =>
    `${load.firstUs.toFixed(1)} / ${load.secondUs.toFixed(1)} = ${
      load.ratio.toFixed(2)
    }`
  ).join("; ");
  return [label, loads, perLoad, cost.ratio.toFixed(2), target, verdict];
}

function ratiosSection(results: LoadResults): string {
  const relayWs = byName(results, "relay-ws");
  const rows = [
    ratioRow(
      "relay ÷ Node.js ws",
      pairedCost(relayWs, byName(results, "ws-baseline")),
      "≤ 0.50",
      (r) => r <= TARGETS.versusWs,
    ),
    ratioRow(
      "relay ÷ Socket.IO",
      pairedCost(relayWs, byName(results, "socketio-baseline")),
      "≤ 0.33",
      (r) => r <= TARGETS.versusSocketIo,
    ),
    ratioRow(
      "relay ÷ Deno floor",
      pairedCost(relayWs, byName(results, "deno-floor")),
      "≤ 1.20",
      (r) => r <= TARGETS.versusFloor,
    ),
    ratioRow(
      "relay WebTransport ÷ relay WebSocket",
      pairedCost(byName(results, "relay-wt"), relayWs),
      "≤ 1.00",
      (r) => r <= TARGETS.wtVersusWs,
    ),
    ratioRow(
      "relay mixed ÷ relay WebSocket",
      pairedCost(byName(results, "relay-mixed"), relayWs),
      "–",
      null,
    ),
    ratioRow(
      "relay WebTransport ÷ Deno WebTransport floor",
      pairedCost(byName(results, "relay-wt"), byName(results, "deno-wt-floor")),
      "–",
      null,
    ),
    ratioRow(
      "Deno floor ÷ Node.js ws",
      pairedCost(byName(results, "deno-floor"), byName(results, "ws-baseline")),
      "–",
      null,
    ),
    ratioRow(
      "Deno floor ÷ Socket.IO",
      pairedCost(
        byName(results, "deno-floor"),
        byName(results, "socketio-baseline"),
      ),
      "–",
      null,
    ),
    ratioRow(
      "Deno WebTransport floor ÷ Deno floor",
      pairedCost(
        byName(results, "deno-wt-floor"),
        byName(results, "deno-floor"),
      ),
      "–",
      null,
    ),
  ];
  return table(
    [
      "comparison",
      "loads (participants)",
      "CPU µs per delivered packet at each load (ratio)",
      "median ratio",
      "target",
      "verdict",
    ],
    rows,
  ) +
    "\n\nEach ratio compares two systems at every load both passed, " +
    "measured in this run one after the other on the same core, and the " +
    "verdict uses the median. When they passed no load in common, the " +
    "largest load both measured is used.\n\n" +
    floorRoundsText(results.floorRounds ?? null);
}

/** Describes the paired rounds of the relay against the Deno floor. */
function floorRoundsText(rounds: PairedResult | null): string {
  if (rounds === null) {
    return "Paired rounds of the relay against the Deno floor: not run.";
  }
  if (rounds.rounds.length === 0) {
    return "Paired rounds of the relay against the Deno floor: not measured " +
      `(${rounds.error ?? "no round finished"}).`;
  }
  const list = rounds.rounds.map((round) =>
    `${round.firstUs.toFixed(1)} / ${round.secondUs.toFixed(1)} = ` +
    `${round.ratio.toFixed(2)}${round.bothPassed ? "" : " (not both passing)"}`
  ).join("; ");
  return `Paired rounds of the relay against the Deno floor at ${
    integer(rounds.participants)
  } participants, each system started afresh and measured in turns, the ` +
    `order alternating between rounds: ${list}. Median ` +
    `${rounds.ratio!.toFixed(2)}; the targets table uses it.` +
    (rounds.error === null ? "" : ` The rounds stopped early: ${rounds.error}`);
}

function federationSection(federation: FederationResult | null): string {
  if (federation === null) {
    return "Not run (`--no-federation`, or `--only` without `federation`).";
  }
  if (federation.runs.length === 0) {
    return `Not measured: ${federation.error ?? "no run finished"}`;
  }
  const rows = federation.runs.map((run) => [
    run.round === "batching" ? "batching" : `cost, round ${run.round}`,
    run.mode,
    integer(run.sentPerSecond),
    integer(run.deliveredPerSecond),
    percent(run.loss, 3),
    `${ms(run.p50Ms)} / ${ms(run.p99Ms)}`,
    percent(run.relayACpuUtilization, 1),
    percent(run.relayBCpuUtilization, 1),
    run.cpuPerDeliveredUs.toFixed(1),
    integer(run.linkPacketsPerSecond),
    integer(run.linkDatagramsPerSecond),
  ]);
  const ratios = federation.roundRatios.map((ratio) => ratio.toFixed(2));
  const summary = [
    `Federated ÷ local CPU per delivered packet, per round: ${
      ratios.length === 0 ? "–" : ratios.join(", ")
    }; median ${
      federation.hopCostRatio?.toFixed(2) ?? "–"
    } (target ≤ ${TARGETS.hopCost}).`,
    `Packets per datagram on the link in the batching run: ${
      federation.packetsPerDatagram?.toFixed(1) ?? "–"
    } (target ≥ ${TARGETS.packetsPerDatagram}).`,
    `Idle CPU subtracted: relay A ${
      percent(federation.idleCpuUtilization.a, 1)
    }, relay B ${percent(federation.idleCpuUtilization.b, 1)}.`,
  ];
  if (federation.error !== null) {
    summary.push(`The measurement stopped early: ${federation.error}`);
  }
  return table([
    "run",
    "mode",
    "sent/s",
    "delivered/s",
    "loss",
    "latency p50 / p99 (ms)",
    "relay A CPU",
    "relay B CPU",
    "CPU µs per delivered packet",
    "link packets/s",
    "link datagrams/s",
  ], rows) + "\n\n" + summary.join(" ");
}

function microSection(micro: MicroResult[] | null): string {
  if (micro === null) return "Not run (`--no-micro` or `--only`).";
  const rows = micro.map((bench) => [
    bench.group ?? "–",
    `${bench.name}${bench.baseline ? " (baseline)" : ""}`,
    bench.avgNs.toFixed(1),
    bench.p99Ns.toFixed(1),
  ]);
  return table(["group", "benchmark", "mean ns", "p99 ns"], rows);
}

/** Returns one row of the targets table, with `met` null when not measured. */
function targetRow(
  target: string,
  measured: string | null,
  met: boolean | null,
): string[] {
  let verdict = "missed";
  if (met === null) verdict = "not measured";
  else if (met) verdict = "met";
  return [target, measured ?? "–", verdict];
}

/** Row of a CPU ratio against another relay, over their common loads. */
function ratioTarget(
  target: string,
  cost: PairedCost | null,
  limit: number,
): string[] {
  if (cost === null) return targetRow(target, null, null);
  return targetRow(target, ratioText(cost), cost.ratio <= limit);
}

/**
 * Formats the memory per participant at `participants`, or at the
 * system's capacity step when it was not measured there.
 */
function memoryText(
  result?: CapacityResult,
  participants?: number,
): string | null {
  const step =
    result?.steps.find((step) => step.participants === participants) ??
      (result === undefined ? undefined : capacityStep(result));
  if (step === undefined) return null;
  return `${kib(step.rssPerParticipantBytes)} KiB at ${
    integer(step.participants)
  } participants`;
}

/** Row of relay memory per participant at a relay's capacity step. */
function memoryTarget(target: string, result?: CapacityResult): string[] {
  const step = result === undefined ? undefined : capacityStep(result);
  if (step === undefined) return targetRow(target, null, null);
  return targetRow(
    target,
    memoryText(result),
    step.rssPerParticipantBytes <= TARGETS.memoryPerParticipantBytes,
  );
}

/** Formats a CPU ratio: the median and the loads it comes from. */
function ratioText(cost: PairedCost | null, inverse = false): string | null {
  if (cost === null) return null;
  const value = (ratio: number) => (inverse ? 1 / ratio : ratio).toFixed(2);
  const count = cost.loads.length;
  if (count === 1) {
    return `${value(cost.ratio)}× at ${
      integer(cost.loads[0]!.participants)
    } participants${cost.bothPassed ? "" : " (not both passing)"}`;
  }
  const [low, high] = inverse
    ? [cost.maxRatio, cost.minRatio]
    : [cost.minRatio, cost.maxRatio];
  return `${value(cost.ratio)}×, median of ${count} loads (${value(low)} to ${
    value(high)
  })`;
}

/**
 * Returns what Deno's runtime floors measure against each target, in
 * target order. The floors do the relay's fan-out with nothing else, so
 * a target that they miss too is limited by the runtime.
 */
function floorColumn(results: LoadResults): (string | null)[] {
  const relayWs = byName(results, "relay-ws");
  const relayWt = byName(results, "relay-wt");
  const floorWs = byName(results, "deno-floor");
  const floorWt = byName(results, "deno-wt-floor");
  const ws = byName(results, "ws-baseline");
  const socketIo = byName(results, "socketio-baseline");
  // Each comparison uses the loads of the relay's own comparison, so that
  // the two columns compare like with like.
  const at = (first?: CapacityResult, second?: CapacityResult) =>
    loadsOf(pairedCost(first, second));
  const relayStep = relayWs === undefined ? undefined : capacityStep(relayWs);
  const relayWtStep = relayWt === undefined ? undefined : capacityStep(relayWt);
  return [
    floorWs === undefined ? null : capacityText(floorWs),
    ratioText(pairedCost(floorWs, ws, at(relayWs, ws))),
    ratioText(pairedCost(floorWs, socketIo, at(relayWs, socketIo))),
    null,
    ratioText(
      pairedCost(floorWt, floorWs, at(relayWt, relayWs)),
      true,
    ),
    null,
    null,
    memoryText(floorWs, relayStep?.participants),
    memoryText(floorWt, relayWtStep?.participants),
  ];
}

function targetsSection(results: LoadResults): string {
  const relayWs = byName(results, "relay-ws");
  const relayWt = byName(results, "relay-wt");
  const rows: string[][] = [];

  rows.push(
    relayWs === undefined
      ? targetRow(
        "WebSocket capacity ≥ 1,500 participants per core",
        null,
        null,
      )
      : targetRow(
        "WebSocket capacity ≥ 1,500 participants per core",
        capacityText(relayWs),
        (relayWs.capacity ?? 0) >= TARGETS.wsCapacity,
      ),
  );
  rows.push(ratioTarget(
    "CPU per delivered packet ≤ 1/2 of the ws baseline",
    pairedCost(relayWs, byName(results, "ws-baseline")),
    TARGETS.versusWs,
  ));
  rows.push(ratioTarget(
    "CPU per delivered packet ≤ 1/3 of Socket.IO",
    pairedCost(relayWs, byName(results, "socketio-baseline")),
    TARGETS.versusSocketIo,
  ));
  const rounds = results.floorRounds ?? null;
  if (rounds !== null && rounds.ratio !== null) {
    // Paired rounds at one load are steadier than the capacity steps,
    // which measure each system once, a minute or more apart.
    rows.push(targetRow(
      "CPU per delivered packet ≤ 1.2× the runtime floor",
      `${rounds.ratio.toFixed(2)}×, median of ${rounds.rounds.length} ` +
        `paired rounds at ${integer(rounds.participants)} participants`,
      rounds.ratio <= TARGETS.versusFloor,
    ));
  } else {
    rows.push(ratioTarget(
      "CPU per delivered packet ≤ 1.2× the runtime floor",
      pairedCost(relayWs, byName(results, "deno-floor")),
      TARGETS.versusFloor,
    ));
  }

  // Packets per core are the inverse of CPU per packet, so WebTransport
  // meets the target when its CPU per packet is at most WebSocket's.
  const wt = pairedCost(relayWt, relayWs);
  rows.push(
    wt === null
      ? targetRow(
        "WebTransport delivers ≥ as many packets per core as WebSocket",
        null,
        null,
      )
      : targetRow(
        "WebTransport delivers ≥ as many packets per core as WebSocket",
        ratioText(wt, true),
        wt.ratio <= TARGETS.wtVersusWs,
      ),
  );

  const hop = results.federation?.hopCostRatio ?? null;
  rows.push(targetRow(
    "Federation hop ≤ 1.5× local delivery",
    hop === null
      ? null
      : `${hop.toFixed(2)}× (median of ${
        results.federation!.roundRatios.length
      } rounds)`,
    hop === null ? null : hop <= TARGETS.hopCost,
  ));
  const batch = results.federation?.packetsPerDatagram ?? null;
  rows.push(targetRow(
    "Batching cuts datagrams ≥ 5× at 1,000 packets/s",
    batch === null ? null : `${batch.toFixed(1)} packets per datagram`,
    batch === null ? null : batch >= TARGETS.packetsPerDatagram,
  ));

  rows.push(
    memoryTarget("≤ 64 KiB relay memory per participant (WebSocket)", relayWs),
  );
  rows.push(
    memoryTarget(
      "≤ 64 KiB relay memory per participant (WebTransport)",
      relayWt,
    ),
  );
  const floor = floorColumn(results);
  return table(
    ["target", "measured", "verdict", "Deno's runtime floor, same measure"],
    rows.map((row, i) => [...row, floor[i] ?? "–"]),
  );
}

/** Replaces the text between the markers of `name`; throws if missing. */
function replaceSection(doc: string, name: string, body: string): string {
  const begin = `<!-- BEGIN GENERATED: ${name} -->`;
  const end = `<!-- END GENERATED: ${name} -->`;
  const start = doc.indexOf(begin);
  const stop = doc.indexOf(end);
  if (start === -1 || stop === -1 || stop < start) {
    throw new Error(
      `Cannot update ${DOC_PATH}: markers for section "${name}" are missing; ` +
        `add "${begin}" and "${end}"`,
    );
  }
  return doc.slice(0, start + begin.length) + "\n\n" + body.trim() + "\n\n" +
    doc.slice(stop);
}

/** Writes the JSON, the chart and, when `docs` is set, the doc sections. */
export async function writeReport(
  results: LoadResults,
  options: { docs: boolean; outDir: string; json?: boolean },
): Promise<void> {
  const outDir = options.outDir.endsWith("/")
    ? options.outDir
    : `${options.outDir}/`;
  await Deno.mkdir(outDir, { recursive: true });
  if (options.json !== false) {
    await Deno.writeTextFile(
      `${outDir}latest.json`,
      JSON.stringify(results, null, 2) + "\n",
    );
  }

  const series = results.capacity.map((result) => ({
    label: result.label,
    points: result.steps.map((step) =>
      [step.participants, step.p99Ms] as [number, number]
    ),
  }));
  await Deno.writeTextFile(
    `${outDir}${CHART_FILE}`,
    renderLatencyChart(
      series,
      results.settings.p99LimitMs,
      "p99 added latency against load, one relay core",
    ),
  );
  console.error(`wrote ${outDir}latest.json and ${CHART_FILE}`);
  if (!options.docs) return;

  let doc = await Deno.readTextFile(DOC_PATH);
  doc = replaceSection(doc, "run", runSection(results));
  doc = replaceSection(doc, "targets", targetsSection(results));
  doc = replaceSection(doc, "summary", summarySection(results));
  doc = replaceSection(doc, "ratios", ratiosSection(results));
  doc = replaceSection(doc, "steps", stepsSection(results));
  doc = replaceSection(
    doc,
    "federation",
    federationSection(results.federation),
  );
  doc = replaceSection(doc, "micro", microSection(results.micro));
  await Deno.writeTextFile(DOC_PATH, doc);
  await new Deno.Command(Deno.execPath(), {
    args: ["fmt", DOC_PATH],
    stdout: "null",
    stderr: "inherit",
  }).output();
  console.error(`updated ${DOC_PATH}`);
}
