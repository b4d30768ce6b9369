/**
 * The harness side of the generator processes: starts them pinned to the
 * generator core, sends requests of the JSON-lines control protocol, and
 * merges their reports.
 *
 * @module
 */

import type { RoomSpec } from "./generator_core.js";
import { LatencyHistogram } from "./histogram.js";
import { readLines } from "./lines.ts";
import {
  type ChildProcess,
  type ProcessSample,
  sampleProcess,
  spawnPinned,
  stopProcess,
} from "./processes.ts";

/** Time a generator has to reply to a request other than join, in ms. */
const REQUEST_TIMEOUT_MS = 30_000;

/** Time a generator has to join one batch of rooms, in ms. */
const JOIN_TIMEOUT_MS = 180_000;

/** Counters of one epoch, summed over every generator. */
export interface EpochReport {
  sent: number;
  expected: number;
  sendDrops: number;
  received: number;
  latency: LatencyHistogram;
  maxTimerLagMs: number;
  clients: number;
  closed: number;
}

interface Reply {
  id: number;
  ok: boolean;
  error?: string;
  [key: string]: unknown;
}

/** Turns a request into the line a generator reads. */
export type RequestEncoder = (
  id: number,
  body: Record<string, unknown>,
) => string;

/** Encodes requests as JSON lines, for the JavaScript generators. */
export const encodeJsonRequest: RequestEncoder = (id, body) =>
  JSON.stringify({ id, ...body });

/**
 * Encodes requests as the space-separated commands of ws_generator.c:
 * `join ID ROOMS (NAME MEMBERS (HOST:PORT:SEND:PROTOCOL)*)*`,
 * `epoch ID N`, `report ID N`, `close ID`, where PROTOCOL is `ws` (the
 * relay's protocol) or `sio` (Socket.IO). Room names are percent-encoded.
 */
export const encodeNativeRequest: RequestEncoder = (id, body) => {
  switch (body.op) {
    case "join": {
      const rooms = body.rooms as RoomSpec[];
      const parts = ["join", String(id), String(rooms.length)];
      for (const room of rooms) {
        parts.push(encodeURIComponent(room.name), String(room.members.length));
        for (const member of room.members) {
          const url = new URL(member.url);
          const protocol = member.transport === "socketio" ? "sio" : "ws";
          parts.push(
            `${url.hostname}:${url.port}:${member.send ? 1 : 0}:${protocol}`,
          );
        }
      }
      return parts.join(" ");
    }
    case "epoch":
    case "report":
      return `${body.op} ${id} ${body.epoch}`;
    default:
      return `${body.op} ${id}`;
  }
};

/** One generator process and its pending requests. */
class Generator {
  readonly child: ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #pending = new Map<number, (reply: Reply) => void>();
  readonly #encode: RequestEncoder;
  readonly ready: Promise<void>;
  #nextId = 1;

  constructor(child: ChildProcess, encode: RequestEncoder) {
    this.child = child;
    this.#encode = encode;
    this.#writer = child.process.stdin.getWriter();
    const ready = Promise.withResolvers<void>();
    this.ready = ready.promise;
    this.#pending.set(0, () => ready.resolve());
    void this.#read();
  }

  async #read(): Promise<void> {
    for await (const line of readLines(this.child.process.stdout)) {
      if (line.trim() === "") continue;
      const reply = JSON.parse(line) as Reply;
      const resolve = this.#pending.get(reply.id);
      this.#pending.delete(reply.id);
      resolve?.(reply);
    }
    for (const resolve of this.#pending.values()) {
      resolve({ id: -1, ok: false, error: "generator exited" });
    }
    this.#pending.clear();
  }

  async request(
    body: Record<string, unknown>,
    timeoutMs = REQUEST_TIMEOUT_MS,
  ): Promise<Reply> {
    const id = this.#nextId++;
    const reply = new Promise<Reply>((resolve) =>
      this.#pending.set(id, resolve)
    );
    await this.#writer.write(
      new TextEncoder().encode(this.#encode(id, body) + "\n"),
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<Reply>((resolve) => {
      timer = setTimeout(
        () =>
          resolve({
            id,
            ok: false,
            error: `no reply to ${body.op} within ${timeoutMs} ms`,
          }),
        timeoutMs,
      );
    });
    const result = await Promise.race([reply, timeout]);
    clearTimeout(timer);
    if (!result.ok) {
      throw new Error(
        `${this.child.name}: ${body.op} failed: ${result.error}\n${
          this.child.stderrTail.join("\n")
        }`,
      );
    }
    return result;
  }

  async close(): Promise<void> {
    await this.request({ op: "close" }).catch(() => {});
    await this.#writer.close().catch(() => {});
    await stopProcess(this.child);
  }
}

/** Options of {@linkcode GeneratorPool.start}. */
export interface PoolOptions {
  /** Number of generator processes. */
  count: number;
  /** Core for `taskset -c`. */
  core: number;
  /** Command of one generator, after `taskset -c <core>`. */
  command: string[];
  cwd?: string;
  /** Label prefix of the processes. */
  name: string;
  /** @default {encodeJsonRequest} */
  encode?: RequestEncoder;
}

/** A set of generator processes that share the load by whole rooms. */
export class GeneratorPool {
  readonly #generators: Generator[];
  #nextGenerator = 0;

  private constructor(generators: Generator[]) {
    this.#generators = generators;
  }

  static async start(options: PoolOptions): Promise<GeneratorPool> {
    const generators: Generator[] = [];
    for (let i = 0; i < options.count; i++) {
      const child = spawnPinned({
        name: `${options.name}-${i}`,
        core: options.core,
        command: options.command,
        cwd: options.cwd,
        piped: true,
      });
      generators.push(
        new Generator(child, options.encode ?? encodeJsonRequest),
      );
    }
    const pool = new GeneratorPool(generators);
    await Promise.all(generators.map((generator) => generator.ready));
    return pool;
  }

  /** Process ids, for CPU samples. */
  get pids(): number[] {
    return this.#generators.map((generator) => generator.child.pid);
  }

  /**
   * Spreads `rooms` over the generators round-robin, joins them all, and
   * returns the number of clients that joined.
   */
  async join(
    rooms: RoomSpec[],
    extra: Record<string, unknown>,
  ): Promise<{ joined: number; failed: number; errors: string[] }> {
    const shares: RoomSpec[][] = this.#generators.map(() => []);
    for (const room of rooms) {
      shares[this.#nextGenerator]!.push(room);
      this.#nextGenerator = (this.#nextGenerator + 1) % shares.length;
    }
    const replies = await Promise.all(
      this.#generators.map((generator, i) =>
        generator.request(
          { op: "join", rooms: shares[i], extra },
          JOIN_TIMEOUT_MS,
        )
      ),
    );
    let joined = 0;
    let failed = 0;
    const errors: string[] = [];
    for (const reply of replies) {
      joined += reply.joined as number;
      failed += reply.failed as number;
      errors.push(...reply.errors as string[]);
    }
    return { joined, failed, errors };
  }

  /** Sets the epoch stamped into packets; 0 stops counting. */
  async setEpoch(epoch: number): Promise<void> {
    await Promise.all(
      this.#generators.map((generator) =>
        generator.request({ op: "epoch", epoch })
      ),
    );
  }

  /** Collects and sums the counters of `epoch`. */
  async report(epoch: number): Promise<EpochReport> {
    const replies = await Promise.all(
      this.#generators.map((generator) =>
        generator.request({ op: "report", epoch })
      ),
    );
    const total: EpochReport = {
      sent: 0,
      expected: 0,
      sendDrops: 0,
      received: 0,
      latency: new LatencyHistogram(),
      maxTimerLagMs: 0,
      clients: 0,
      closed: 0,
    };
    for (const reply of replies) {
      total.sent += reply.sent as number;
      total.expected += reply.expected as number;
      total.sendDrops += reply.sendDrops as number;
      total.received += reply.received as number;
      total.latency.merge(
        reply.latency as { buckets: [number, number][]; max: number },
      );
      total.maxTimerLagMs = Math.max(
        total.maxTimerLagMs,
        reply.maxTimerLagMs as number,
      );
      total.clients += reply.clients as number;
      total.closed += reply.closed as number;
    }
    return total;
  }

  /** Returns the summed CPU time and memory of the generator processes. */
  sample(): ProcessSample {
    let cpuSeconds = 0;
    let systemSeconds = 0;
    let rssBytes = 0;
    for (const pid of this.pids) {
      const sample = sampleProcess(pid);
      cpuSeconds += sample.cpuSeconds;
      systemSeconds += sample.systemSeconds;
      rssBytes += sample.rssBytes;
    }
    return { cpuSeconds, systemSeconds, rssBytes, at: performance.now() };
  }

  /** Closes every client and stops the processes. */
  async close(): Promise<void> {
    await Promise.all(this.#generators.map((generator) => generator.close()));
  }
}
