/**
 * The relays the harness measures: this project's relay, and the baseline
 * relays in bench/baselines/. Each starts as its own process pinned to the
 * relay core and returns the URLs the generators connect to.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { createSelfSignedCertificate } from "../../src/identity/certificate.ts";
import type { MemberSpec } from "./generator_core.js";
import {
  type ChildProcess,
  freeTcpPort,
  freeUdpPort,
  spawnPinned,
  stopProcess,
} from "./processes.ts";

/** Root of the repository. */
export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Folder of the baseline relays and their package.json. */
export const BASELINES_DIR = fileURLToPath(
  new URL("../baselines/", import.meta.url),
);

/** Time a relay process has to start listening, in ms. */
const START_TIMEOUT_MS = 30_000;

/** Permissions of the relay, as in the `start` task. */
export const RELAY_PERMISSIONS = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-sys",
  "--unstable-net",
];

/**
 * Flags every measured relay gets on top of the defaults. All load comes
 * from 127.0.0.1, so the per-address limits (32 connections and 32
 * handshakes by default) are raised above the largest load step.
 */
export const RELAY_LOAD_FLAGS = [
  "--max-connections-per-ip",
  "100000",
  "--max-handshakes-per-ip",
  "1000",
  "--max-participants",
  "100000",
];

/** Transport of the members of a scenario's rooms. */
export type TransportMix = "ws" | "wt" | "mixed" | "socketio";

/**
 * Generator program that drives a system: `native` is ws_generator.c
 * (the relay's protocol and Socket.IO over WebSocket), `deno` the relay
 * client on Deno (WebSocket and WebTransport), `socketio` socket.io-client
 * on Node.js.
 */
export type GeneratorKind = "native" | "deno" | "socketio";

/** A relay process started for one scenario. */
export interface RunningSystem {
  readonly child: ChildProcess;
  /** Member URL for a transport, to which the room name is appended. */
  memberUrl(transport: MemberSpec["transport"]): string;
  /** Extra client options, such as WebTransport certificate hashes. */
  readonly extra: Record<string, unknown>;
  /** HTTP base URL when the system has the relay's API, else null. */
  readonly httpUrl: string | null;
  /** Data directory to remove after the stop, if any. */
  readonly dataDir: string | null;
}

/** Options of {@linkcode startRelay}. */
export interface RelayStartOptions {
  core: number;
  name?: string;
  /** Extra command-line flags, such as `--config`. */
  flags?: string[];
  /** Data directory; a temporary one when not given. */
  dataDir?: string;
  httpPort?: number;
  wtPort?: number;
  /** Run with a CPU profile written into this directory. */
  cpuProfileDir?: string;
}

/** Starts this project's relay with `main.ts`, as an operator would. */
export async function startRelay(
  options: RelayStartOptions,
): Promise<RunningSystem> {
  const dataDir = options.dataDir ??
    await Deno.makeTempDir({ prefix: "relay-bench-" });
  const httpPort = options.httpPort ?? freeTcpPort();
  const wtPort = options.wtPort ?? freeUdpPort();
  const profile = options.cpuProfileDir === undefined
    ? []
    : ["--cpu-prof", `--cpu-prof-dir=${options.cpuProfileDir}`];
  const child = spawnPinned({
    name: options.name ?? "relay",
    core: options.core,
    cwd: REPO_ROOT,
    command: [
      Deno.execPath(),
      "run",
      ...RELAY_PERMISSIONS,
      ...profile,
      "main.ts",
      "--host",
      "127.0.0.1",
      "--http-port",
      String(httpPort),
      "--wt-port",
      String(wtPort),
      "--data-dir",
      dataDir,
      "--log-level",
      "warn",
      ...RELAY_LOAD_FLAGS,
      ...(options.flags ?? []),
    ],
  });
  const httpUrl = `http://127.0.0.1:${httpPort}`;
  try {
    await waitForHealth(`${httpUrl}/healthz`, child);
  } catch (error) {
    await stopProcess(child);
    throw error;
  }

  const response = await fetch(`${httpUrl}/api/webtransport`);
  const info = await response.json() as {
    url: string;
    certificateHashes: { algorithm: string; value: string }[];
  };
  return {
    child,
    httpUrl,
    dataDir: options.dataDir === undefined ? dataDir : null,
    extra: { certificateHashes: info.certificateHashes },
    memberUrl: (transport) =>
      transport === "wt" ? info.url : `ws://127.0.0.1:${httpPort}/ws/`,
  };
}

/** Starts a baseline relay: `ws`, `socketio` (Node) or `floor` (Deno). */
export async function startBaseline(
  kind: "ws" | "socketio" | "floor",
  core: number,
): Promise<RunningSystem> {
  const port = freeTcpPort();
  const command = kind === "floor"
    ? [
      Deno.execPath(),
      "run",
      "--allow-net",
      `${BASELINES_DIR}deno_floor.ts`,
      "--port",
      String(port),
    ]
    : [
      "node",
      `${BASELINES_DIR}${
        kind === "ws" ? "ws_relay.mjs" : "socketio_relay.mjs"
      }`,
      "--port",
      String(port),
    ];
  const child = spawnPinned({
    name: `${kind}-baseline`,
    core,
    cwd: BASELINES_DIR,
    command,
  });
  try {
    await waitForPort(port, child);
  } catch (error) {
    await stopProcess(child);
    throw error;
  }
  return {
    child,
    httpUrl: null,
    dataDir: null,
    extra: {},
    memberUrl: (transport) =>
      transport === "socketio"
        ? `http://127.0.0.1:${port}`
        : `ws://127.0.0.1:${port}/ws/`,
  };
}

/** Validity of the WebTransport floor's certificate around its start, in ms. */
const FLOOR_CERTIFICATE_VALIDITY_MS = 24 * 3600_000;

/**
 * Starts the WebTransport runtime floor with a fresh self-signed
 * certificate, which its clients pin by hash as they pin the relay's.
 */
export async function startWebTransportFloor(
  core: number,
): Promise<RunningSystem> {
  const dataDir = await Deno.makeTempDir({ prefix: "relay-bench-wt-floor-" });
  const now = Date.now();
  const certificate = await createSelfSignedCertificate({
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + FLOOR_CERTIFICATE_VALIDITY_MS),
  });
  await Deno.writeTextFile(`${dataDir}/cert.pem`, certificate.certPem);
  await Deno.writeTextFile(`${dataDir}/key.pem`, certificate.keyPem);
  const httpPort = freeTcpPort();
  const wtPort = freeUdpPort();
  const child = spawnPinned({
    name: "wt-floor-baseline",
    core,
    cwd: BASELINES_DIR,
    command: [
      Deno.execPath(),
      "run",
      "--allow-net",
      "--allow-read",
      "--unstable-net",
      `${BASELINES_DIR}deno_wt_floor.ts`,
      "--port",
      String(wtPort),
      "--http-port",
      String(httpPort),
      "--cert",
      `${dataDir}/cert.pem`,
      "--key",
      `${dataDir}/key.pem`,
    ],
  });
  try {
    await waitForHealth(`http://127.0.0.1:${httpPort}/healthz`, child);
  } catch (error) {
    await stopProcess(child);
    await Deno.remove(dataDir, { recursive: true });
    throw error;
  }
  return {
    child,
    httpUrl: null,
    dataDir,
    extra: { certificateHashes: [certificate.hash] },
    memberUrl: () => `https://127.0.0.1:${wtPort}/room/`,
  };
}

/** Stops a system and removes its temporary data directory. */
export async function stopSystem(system: RunningSystem): Promise<void> {
  await stopProcess(system.child);
  if (system.dataDir !== null) {
    await Deno.remove(system.dataDir, { recursive: true }).catch(() => {});
  }
}

/**
 * Installs the baselines' npm packages with `npm ci` unless they are
 * there already.
 */
export async function ensureBaselinePackages(): Promise<void> {
  try {
    await Deno.stat(`${BASELINES_DIR}node_modules/socket.io`);
    await Deno.stat(`${BASELINES_DIR}node_modules/ws`);
    await Deno.stat(`${BASELINES_DIR}node_modules/socket.io-client`);
    return;
  } catch {
    // Not installed yet.
  }
  console.error("installing baseline packages with npm ci ...");
  const output = await new Deno.Command("npm", {
    args: ["ci", "--no-audit", "--no-fund"],
    cwd: BASELINES_DIR,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!output.success) {
    throw new Error(
      `npm ci in ${BASELINES_DIR} failed with exit code ${output.code}`,
    );
  }
}

async function waitForHealth(url: string, child: ChildProcess): Promise<void> {
  await waitUntil(child, async () => {
    const response = await fetch(url);
    await response.body?.cancel();
    return response.ok;
  }, url);
}

async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  await waitUntil(child, async () => {
    const connection = await Deno.connect({ hostname: "127.0.0.1", port });
    connection.close();
    return true;
  }, `port ${port}`);
}

/** Polls `probe` until it returns true; throws on timeout or exit. */
async function waitUntil(
  child: ChildProcess,
  probe: () => Promise<boolean>,
  what: string,
): Promise<void> {
  const deadline = performance.now() + START_TIMEOUT_MS;
  let exited = false;
  child.process.status.then(() => exited = true);
  while (performance.now() < deadline && !exited) {
    try {
      if (await probe()) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(
    `${child.name} did not respond on ${what} within ${START_TIMEOUT_MS} ms${
      exited ? " (it exited)" : ""
    }:\n${child.stderrTail.join("\n")}`,
  );
}
