/**
 * Tests of the load harness parts that decide verdicts. The two Deno
 * runtime floors must forward the same bytes as the relay, or the cost
 * ratios would compare different work. The paired-cost rule must pick the
 * largest load both systems passed.
 */

import assert from "node:assert/strict";
import { RelayClient } from "../src/client/mod.ts";
import type { CapacityResult, StepResult } from "../bench/load/capacity.ts";
import { pairedCost } from "../bench/load/report.ts";
import {
  type RunningSystem,
  startBaseline,
  startWebTransportFloor,
  stopSystem,
} from "../bench/load/systems.ts";
import { waitFor } from "./helpers.ts";
import {
  hasWebTransport,
  mediaPacket,
  relayFrame,
} from "./webtransport_helpers.ts";

const WAIT_MS = 10_000;

/** Joins three clients to one room of a floor and returns them. */
async function joinThree(
  system: RunningSystem,
  transport: "ws" | "wt",
): Promise<RelayClient[]> {
  const url = system.memberUrl(transport) + "floor-room";
  const options = transport === "wt"
    ? {
      serverCertificateHashes: system.extra.certificateHashes as {
        algorithm: "sha-256";
        value: string;
      }[],
    }
    : {};
  const clients: RelayClient[] = [];
  for (let i = 0; i < 3; i++) {
    const client = new RelayClient(url, options);
    await client.connect();
    clients.push(client);
  }
  return clients;
}

/** Checks that a packet of the first client reaches the other two only. */
async function checkFanOut(clients: RelayClient[]): Promise<void> {
  const received: { client: number; frame: Uint8Array }[] = [];
  clients.forEach((client, index) => {
    client.onMedia = (source, packet) => {
      received.push({ client: index, frame: relayFrame(source, packet) });
    };
  });
  const packet = mediaPacket(100, 7);
  const reached = (index: number) =>
    received.some((entry) => entry.client === index);
  await waitFor(
    () => {
      // Datagrams can be lost, so the sender repeats until both arrived.
      const done = reached(1) && reached(2);
      if (!done) clients[0]!.sendMedia(packet);
      return done;
    },
    WAIT_MS,
    "fan-out to two members",
  );

  assert.ok(!reached(0));
  for (const entry of received) {
    assert.deepEqual(entry.frame.subarray(2), packet);
  }
}

Deno.test({
  name: "Deno WebSocket floor fans out",
  async fn() {
    const floor = await startBaseline("floor", 0);
    try {
      const clients = await joinThree(floor, "ws");
      await checkFanOut(clients);
      await Promise.all(clients.map((client) => client.close()));
    } finally {
      await stopSystem(floor);
    }
  },
});

Deno.test({
  name: "Deno WebTransport floor fans out",
  ignore: !hasWebTransport,
  async fn() {
    const floor = await startWebTransportFloor(0);
    try {
      const clients = await joinThree(floor, "wt");
      await checkFanOut(clients);
      await Promise.all(clients.map((client) => client.close()));
    } finally {
      await stopSystem(floor);
    }
  },
});

/** Returns a capacity result with steps of (participants, µs, pass). */
function result(
  name: string,
  steps: [number, number, boolean][],
): CapacityResult {
  return {
    name,
    steps: steps.map(([participants, cpuPerDeliveredUs, pass]) => ({
      participants,
      cpuPerDeliveredUs,
      pass,
    } as StepResult)),
  } as CapacityResult;
}

/** Returns the loads a comparison used. */
function loads(cost: ReturnType<typeof pairedCost>): number[] | undefined {
  return cost?.loads.map((load) => load.participants);
}

Deno.test("pairedCost takes median of passed loads", () => {
  const first = result("a", [
    [150, 20, true],
    [300, 15, true],
    [450, 14, true],
    [600, 13, false],
  ]);
  const second = result("b", [
    [150, 10, true],
    [300, 10, true],
    [450, 20, true],
    [600, 9, true],
  ]);
  const cost = pairedCost(first, second);
  assert.deepEqual(loads(cost), [150, 300, 450]);
  assert.equal(cost?.bothPassed, true);
  assert.equal(cost?.ratio, 1.5);
  assert.equal(cost?.minRatio, 0.7);
  assert.equal(cost?.maxRatio, 2);
});

Deno.test("pairedCost falls back to a failed load", () => {
  const first = result("a", [[150, 20, false], [300, 15, false]]);
  const second = result("b", [[150, 10, true], [300, 12, true]]);
  const cost = pairedCost(first, second);
  assert.deepEqual(loads(cost), [300]);
  assert.equal(cost?.bothPassed, false);
});

Deno.test("pairedCost skips loads measured once", () => {
  const first = result("a", [[150, 20, true], [600, 15, true]]);
  const second = result("b", [[150, 10, true], [300, 12, true]]);
  assert.deepEqual(loads(pairedCost(first, second)), [150]);
  assert.equal(pairedCost(first, undefined), null);
});

Deno.test("pairedCost keeps to the given loads", () => {
  const first = result("a", [[150, 20, true], [300, 15, true]]);
  const second = result("b", [[150, 10, true], [300, 10, true]]);
  const cost = pairedCost(first, second, [300]);
  assert.deepEqual(loads(cost), [300]);
  assert.equal(cost?.ratio, 1.5);
});
