/**
 * Runs the `deno bench` micro-benchmarks with `--json` and keeps the mean
 * and percentiles of each, for the report.
 *
 * @module
 */

import { REPO_ROOT } from "./systems.ts";

/** One micro-benchmark result; times in ns. */
export interface MicroResult {
  file: string;
  group: string | null;
  name: string;
  baseline: boolean;
  avgNs: number;
  p75Ns: number;
  p99Ns: number;
}

interface BenchJson {
  benches: {
    origin: string;
    group: string | null;
    name: string;
    baseline: boolean;
    results: { ok?: { avg: number; p75: number; p99: number } }[];
  }[];
}

/** Runs `deno bench --json bench/` pinned to the relay core. */
export async function runMicroBenchmarks(core = 0): Promise<MicroResult[]> {
  console.error("== micro-benchmarks (deno bench)");
  const output = await new Deno.Command("taskset", {
    args: [
      "-c",
      String(core),
      Deno.execPath(),
      "bench",
      "--json",
      "--allow-all",
      "--unstable-net",
      "bench/",
    ],
    cwd: REPO_ROOT,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!output.success) {
    throw new Error(`deno bench failed with exit code ${output.code}`);
  }
  const json = JSON.parse(new TextDecoder().decode(output.stdout)) as BenchJson;
  const results: MicroResult[] = [];
  for (const bench of json.benches) {
    const ok = bench.results[0]?.ok;
    if (ok === undefined) continue;
    results.push({
      file: bench.origin.replace(/^.*\/bench\//, "bench/"),
      group: bench.group,
      name: bench.name,
      baseline: bench.baseline,
      avgNs: ok.avg,
      p75Ns: ok.p75,
      p99Ns: ok.p99,
    });
  }
  return results;
}
