/**
 * Facts about the machine and the software versions of a run, for the
 * report.
 *
 * @module
 */

import { BASELINES_DIR } from "./systems.ts";

/** Machine and versions of one run. */
export interface MachineInfo {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  deno: string;
  v8: string;
  node: string;
  cc: string;
  /** Versions of the baselines' npm packages, as installed. */
  packages: Record<string, string>;
  /** Load average over 1, 5 and 15 minutes when the run started. */
  loadAverage: number[];
}

async function commandLine(command: string, args: string[]): Promise<string> {
  try {
    const output = await new Deno.Command(command, { args, stderr: "null" })
      .output();
    return new TextDecoder().decode(output.stdout).split("\n")[0]!.trim();
  } catch {
    return "not installed";
  }
}

async function packageVersion(name: string): Promise<string> {
  try {
    const text = await Deno.readTextFile(
      `${BASELINES_DIR}node_modules/${name}/package.json`,
    );
    return (JSON.parse(text) as { version: string }).version;
  } catch {
    return "not installed";
  }
}

/** Reads /proc and runs `--version` of the tools the run uses. */
export async function collectMachineInfo(): Promise<MachineInfo> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo");
  const meminfo = await Deno.readTextFile("/proc/meminfo");
  const memKiB = Number(/MemTotal:\s+(\d+)/.exec(meminfo)?.[1] ?? 0);
  const packages: Record<string, string> = {};
  for (const name of ["ws", "socket.io", "socket.io-client"]) {
    packages[name] = await packageVersion(name);
  }
  return {
    // Counted from /proc/cpuinfo: the harness runs under taskset, so
    // navigator.hardwareConcurrency reports only the cores it may use.
    cores: cpuinfo.match(/^processor\s*:/gm)?.length ?? 0,
    cpuModel: /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
    memoryGiB: Math.round(memKiB / 1024 / 1024 * 10) / 10,
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    node: await commandLine("node", ["--version"]),
    cc: await commandLine("cc", ["--version"]),
    packages,
    loadAverage: Deno.loadavg(),
  };
}
