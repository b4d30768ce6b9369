/**
 * Prints the functions with the most self time in a V8 `.cpuprofile`
 * (as written by `deno run --cpu-prof`), with their share of all samples.
 *
 * ```
 * deno run --allow-read bench/load/profile_summary.ts CPU.123.cpuprofile [top]
 * ```
 *
 * @module
 */

interface ProfileNode {
  id: number;
  callFrame: {
    functionName: string;
    url: string;
    lineNumber: number;
  };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time of one function. */
export interface FunctionTime {
  name: string;
  location: string;
  /** Self time, in ms. */
  selfMs: number;
  /** Share of the profile's total time. */
  share: number;
}

/** Returns the functions of a profile by self time, largest first. */
export function summarizeProfile(profile: CpuProfile): FunctionTime[] {
  const byId = new Map<number, ProfileNode>();
  for (const node of profile.nodes) byId.set(node.id, node);

  const selfUs = new Map<
    string,
    { name: string; location: string; us: number }
  >();
  let totalUs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]!);
    const delta = profile.timeDeltas[i] ?? 0;
    totalUs += delta;
    if (node === undefined) continue;
    const frame = node.callFrame;
    const file = frame.url.replace(/^.*\/(src|bridge|ext|bench)\//, "$1/");
    const location = file === ""
      ? "(native)"
      : `${file}:${frame.lineNumber + 1}`;
    const name = frame.functionName || "(anonymous)";
    const key = `${name} ${location}`;
    const entry = selfUs.get(key) ?? { name, location, us: 0 };
    entry.us += delta;
    selfUs.set(key, entry);
  }

  return [...selfUs.values()]
    .sort((a, b) => b.us - a.us)
    .map((entry) => ({
      name: entry.name,
      location: entry.location,
      selfMs: entry.us / 1000,
      share: totalUs === 0 ? 0 : entry.us / totalUs,
    }));
}

if (import.meta.main) {
  const [path, top] = Deno.args;
  if (path === undefined) {
    console.error("usage: profile_summary.ts FILE.cpuprofile [top]");
    Deno.exit(2);
  }
  const profile = JSON.parse(await Deno.readTextFile(path)) as CpuProfile;
  for (const entry of summarizeProfile(profile).slice(0, Number(top ?? 30))) {
    console.log(
      `${(entry.share * 100).toFixed(1).padStart(5)} %  ${
        entry.selfMs.toFixed(0).padStart(6)
      } ms  ${entry.name}  ${entry.location}`,
    );
  }
}
