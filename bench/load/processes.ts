/**
 * Child processes of the harness: start one pinned to a core with
 * `taskset`, read its CPU time and resident memory from /proc, stop it.
 * Linux only.
 *
 * @module
 */

/** Clock ticks per second of /proc/<pid>/stat times (`getconf CLK_TCK`). */
const CLOCK_TICKS_PER_SECOND = 100;

/** Time a stopped process has after SIGTERM before SIGKILL, in ms. */
const STOP_GRACE_MS = 3_000;

/** A child process started by the harness. */
export interface ChildProcess {
  readonly name: string;
  readonly pid: number;
  readonly process: Deno.ChildProcess;
  /** Last lines of stderr, for error messages. */
  readonly stderrTail: string[];
}

/** Options of {@linkcode spawnPinned}. */
export interface SpawnOptions {
  /** Label for logs and errors. */
  name: string;
  /** Core for `taskset -c`. */
  core: number;
  /** Program and its arguments. */
  command: string[];
  cwd?: string;
  env?: Record<string, string>;
  /** Pipe stdin and stdout for a control protocol. @default {false} */
  piped?: boolean;
}

/** Lines of stderr kept per process. */
const STDERR_TAIL_LINES = 20;

/**
 * Starts `command` pinned to one core. Its stderr is kept (last lines) and
 * echoed with the process name, so a crash shows why.
 */
export function spawnPinned(options: SpawnOptions): ChildProcess {
  const [program, ...args] = options.command;
  if (program === undefined) {
    throw new TypeError(`Cannot start ${options.name}: empty command`);
  }
  const process = new Deno.Command("taskset", {
    args: ["-c", String(options.core), program, ...args],
    cwd: options.cwd,
    env: options.env,
    stdin: options.piped ? "piped" : "null",
    stdout: options.piped ? "piped" : "null",
    stderr: "piped",
  }).spawn();

  const child: ChildProcess = {
    name: options.name,
    pid: process.pid,
    process,
    stderrTail: [],
  };
  void keepStderr(child);
  return child;
}

async function keepStderr(child: ChildProcess): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of child.process.stderr) {
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) {
      if (line.trim() === "") continue;
      child.stderrTail.push(line);
      if (child.stderrTail.length > STDERR_TAIL_LINES) child.stderrTail.shift();
      console.error(`[${child.name}] ${line}`);
    }
  }
}

/**
 * Stops a child: SIGTERM, then SIGKILL after {@linkcode STOP_GRACE_MS}.
 * Waits for it to exit.
 */
export async function stopProcess(child: ChildProcess): Promise<void> {
  try {
    child.process.kill("SIGTERM");
  } catch {
    // Already exited.
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const killed = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      try {
        child.process.kill("SIGKILL");
      } catch {
        // Exited meanwhile.
      }
      resolve();
    }, STOP_GRACE_MS);
  });
  await Promise.race([child.process.status, killed]);
  clearTimeout(timer);
  await child.process.status;
}

/** CPU time and memory of a process at one moment. */
export interface ProcessSample {
  /** User plus system CPU time of all threads, in seconds. */
  cpuSeconds: number;
  /** System (kernel) part of `cpuSeconds`. */
  systemSeconds: number;
  /** Resident set size, in bytes. */
  rssBytes: number;
  /** `performance.now()` when the sample was taken, in ms. */
  at: number;
}

/**
 * Reads utime + stime from /proc/<pid>/stat and VmRSS from
 * /proc/<pid>/status. Throws if the process is gone.
 */
export function sampleProcess(pid: number): ProcessSample {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // The command name in parentheses may contain spaces; fields follow it.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here.
  const userTicks = Number(fields[11]);
  const systemTicks = Number(fields[12]);

  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const rss = /VmRSS:\s+(\d+) kB/.exec(status);
  return {
    cpuSeconds: (userTicks + systemTicks) / CLOCK_TICKS_PER_SECOND,
    systemSeconds: systemTicks / CLOCK_TICKS_PER_SECOND,
    rssBytes: rss === null ? 0 : Number(rss[1]) * 1024,
    at: performance.now(),
  };
}

/**
 * Returns the CPU time all cores spent busy since boot, in seconds, from
 * the first line of /proc/stat (everything but idle and iowait).
 */
export function machineBusySeconds(): number {
  const line = Deno.readTextFileSync("/proc/stat").split("\n")[0]!;
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  const total = ticks.slice(0, 8).reduce((sum, value) => sum + value, 0);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  return (total - idle) / CLOCK_TICKS_PER_SECOND;
}

/** Returns a free TCP port on 127.0.0.1. */
export function freeTcpPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Returns a free UDP port on 127.0.0.1. */
export function freeUdpPort(): number {
  const socket = Deno.listenDatagram({
    hostname: "127.0.0.1",
    port: 0,
    transport: "udp",
  });
  const port = (socket.addr as Deno.NetAddr).port;
  socket.close();
  return port;
}
