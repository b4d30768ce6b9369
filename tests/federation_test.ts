/**
 * Federation over real WebTransport links between in-process relays on
 * 127.0.0.1: two relays, a full mesh of three, a chain of three, duplicate
 * dials, rejected peers, the ingress rate limit and batching.
 */

import assert from "node:assert/strict";
import { RelayIdentity } from "../src/identity/identity.ts";
import type { FederationOptions, RelayOptions } from "../src/options.ts";
import type { Relay } from "../src/relay.ts";
import { buildMediaPacket } from "../src/wire/media.ts";
import { roomHash } from "../src/wire/federation_media.ts";
import {
  closeAll,
  delay,
  joinWs,
  type ReceivedSignal,
  startTestRelay,
  type TestClient,
  type TestRelay,
  waitFor,
} from "./helpers.ts";

const ROOM = "general";
const LINK_WAIT_MS = 15_000;

interface Node {
  name: string;
  test: TestRelay;
  relay: Relay;
}

/** Starts relays with WebTransport on, each trusting all the others. */
async function startNodes(
  names: string[],
  options: Partial<RelayOptions> = {},
): Promise<Node[]> {
  const identities = await Promise.all(
    names.map(() => RelayIdentity.generate()),
  );
  const nodes: Node[] = [];
  for (const [i, name] of names.entries()) {
    const trusted = names
      .map((other, j) => ({
        fingerprint: identities[j]!.fingerprint,
        label: other,
      }))
      .filter((_, j) => j !== i);
    const test = await startTestRelay({
      noWebTransport: false,
      federation: { peers: [], trusted, globalRooms: [ROOM] },
      ...options,
    }, identities[i]!);
    nodes.push({ name, test, relay: test.relay });
  }
  return nodes;
}

/** Makes `from` dial each of `to`, keeping its trust list. */
function dial(from: Node, to: Node[], nodes: Node[]): void {
  const current = from.relay.options.federation;
  const federation: FederationOptions = {
    ...current,
    peers: to.map((peer) => ({
      url: `https://127.0.0.1:${peer.relay.wtPort}/federation`,
      httpUrl: peer.relay.httpUrl,
      fingerprint: peer.relay.identity.fingerprint,
      label: peer.name,
    })),
    trusted: current.trusted.filter((entry) =>
      nodes.some((node) =>
        node.relay.identity.fingerprint === entry.fingerprint
      )
    ),
  };
  from.relay.federation.reconfigure(federation);
}

async function stopNodes(nodes: Node[]): Promise<void> {
  await Promise.all(nodes.map((node) => node.test.cleanup()));
}

function linkCount(node: Node): number {
  return node.relay.federation.links.length;
}

/** Makes `a` dial `b` and waits until both ends have the link. */
async function linkPair(a: Node, b: Node, nodes: Node[]): Promise<void> {
  dial(a, [b], nodes);
  await waitFor(
    () => linkCount(a) === 1 && linkCount(b) === 1,
    LINK_WAIT_MS,
    "link",
  );
}

/** Waits until `client`'s latest room_update lists `count` participants. */
async function waitForMembers(
  client: TestClient,
  count: number,
  label: string,
): Promise<ReceivedSignal> {
  let latest: ReceivedSignal | undefined;
  await waitFor(
    () => {
      latest = client.signalLog.findLast((s) => s.type === "room_update");
      const participants = latest?.participants as unknown[] | undefined;
      return participants?.length === count;
    },
    LINK_WAIT_MS,
    `${label} to list ${count} participants`,
  );
  return latest!;
}

/** Sends `count` packets numbered by sequence, paced to stay under limits. */
async function sendNumbered(client: TestClient, count: number, tag: number) {
  for (let sequence = 0; sequence < count; sequence++) {
    client.sendMedia(buildMediaPacket({
      sequence,
      payload: new Uint8Array([tag, sequence & 0xff]),
    }));
    if (sequence % 10 === 9) await delay(20);
  }
}

/** Counts received frames by the tag byte of the payload. */
function countByTag(frames: Uint8Array[]): Map<number, number> {
  const counts = new Map<number, number>();
  for (const frame of frames) {
    const tag = frame[2 + 12]!;
    counts.set(tag, (counts.get(tag) ?? 0) + 1);
  }
  return counts;
}

async function collect(
  client: TestClient,
  expected: number,
): Promise<Uint8Array[]> {
  const frames: Uint8Array[] = [];
  await waitFor(
    () => {
      frames.push(...client.drainMedia());
      return frames.length >= expected;
    },
    LINK_WAIT_MS,
    `${expected} frames`,
  );
  // Anything extra, such as a duplicate, arrives within this pause.
  await delay(300);
  frames.push(...client.drainMedia());
  return frames;
}

Deno.test("federation two relays exchange media once", async () => {
  const nodes = await startNodes(["a", "b"]);
  const [a, b] = nodes as [Node, Node];
  try {
    await linkPair(a, b, nodes);

    const alice = (await joinWs(a.relay, ROOM, { alias: "alice" })).client;
    const bob = (await joinWs(b.relay, ROOM, { alias: "bob" })).client;
    const seenByAlice = await waitForMembers(alice, 2, "alice");
    await waitForMembers(bob, 2, "bob");

    const remote = (seenByAlice.participants as Record<string, unknown>[])
      .find((p) => p.alias === "bob")!;
    assert.equal(remote.transport, "federated");
    assert.equal(remote.relay, "b");
    assert.equal(typeof remote.source, "number");

    await sendNumbered(alice, 40, 1);
    await sendNumbered(bob, 40, 2);
    const atBob = countByTag(await collect(bob, 40));
    const atAlice = countByTag(await collect(alice, 40));
    assert.equal(atBob.get(1), 40);
    assert.equal(atBob.get(2), undefined);
    assert.equal(atAlice.get(2), 40);
    assert.equal(atAlice.get(1), undefined);

    // Packets cross byte for byte behind the local source id.
    alice.sendMedia(
      buildMediaPacket({ sequence: 7, payload: new Uint8Array([9, 9, 9]) }),
    );
    const frame = await bob.nextMedia(LINK_WAIT_MS);
    assert.deepEqual(
      frame.subarray(2),
      buildMediaPacket({ sequence: 7, payload: new Uint8Array([9, 9, 9]) }),
    );
    const seenByBob = await waitForMembers(bob, 2, "bob");
    const aliceAtBob = (seenByBob.participants as Record<string, unknown>[])
      .find((p) => p.alias === "alice")!;
    assert.equal((frame[0]! << 8) | frame[1]!, aliceAtBob.source);

    // The admin API and the metrics show the link and its traffic.
    const peers = await (await fetch(`${a.relay.httpUrl}/api/federation/peers`))
      .json();
    assert.equal(peers.fingerprint, a.relay.identity.fingerprint);
    assert.equal(peers.peers.length, 1);
    assert.equal(peers.peers[0].label, "b");
    assert.equal(peers.peers[0].state, "up");
    assert.deepEqual(peers.peers[0].rooms, [ROOM]);
    assert.ok(peers.peers[0].packets_out >= 41);
    assert.ok(peers.peers[0].packets_in >= 40);

    const metrics = await (await fetch(`${a.relay.httpUrl}/metrics`)).text();
    assert.match(metrics, /wzp_federation_peer_status\{peer="b"\} 1/);
    assert.match(metrics, /wzp_federation_active_rooms 1/);
    const out =
      /wzp_federation_packets_forwarded_total\{peer="b",direction="out"\} (\d+)/
        .exec(metrics);
    assert.ok(Number(out?.[1]) >= 41);
    assert.match(
      metrics,
      /wzp_federation_datagrams_total\{direction="out"\} [1-9]/,
    );

    await closeAll([alice, bob]);
  } finally {
    await stopNodes(nodes);
  }
});

Deno.test("federation leave updates the peer", async () => {
  const nodes = await startNodes(["a", "b"]);
  const [a, b] = nodes as [Node, Node];
  try {
    await linkPair(a, b, nodes);
    const alice = (await joinWs(a.relay, ROOM, { alias: "alice" })).client;
    const bob = (await joinWs(b.relay, ROOM, { alias: "bob" })).client;
    const carol = (await joinWs(b.relay, ROOM, { alias: "carol" })).client;
    await waitForMembers(alice, 3, "alice");

    await carol.close();
    await waitForMembers(alice, 2, "alice after carol left");
    await bob.close();
    await waitForMembers(alice, 1, "alice after bob left");
    await closeAll([alice]);
  } finally {
    await stopNodes(nodes);
  }
});

Deno.test("federation full mesh of three delivers once", async () => {
  const nodes = await startNodes(["a", "b", "c"]);
  const [a, b, c] = nodes as [Node, Node, Node];
  try {
    dial(a, [b, c], nodes);
    dial(b, [c], nodes);
    await waitFor(
      () => nodes.every((node) => linkCount(node) === 2),
      LINK_WAIT_MS,
      "mesh links",
    );

    const clients = [
      (await joinWs(a.relay, ROOM, { alias: "pa" })).client,
      (await joinWs(b.relay, ROOM, { alias: "pb" })).client,
      (await joinWs(c.relay, ROOM, { alias: "pc" })).client,
    ];
    for (const [i, client] of clients.entries()) {
      await waitForMembers(client, 3, `client ${i}`);
    }

    await Promise.all(
      clients.map((client, i) => sendNumbered(client, 30, i + 1)),
    );
    for (const [i, client] of clients.entries()) {
      const counts = countByTag(await collect(client, 60));
      for (let tag = 1; tag <= 3; tag++) {
        assert.equal(
          counts.get(tag),
          tag === i + 1 ? undefined : 30,
          `client ${i} received tag ${tag} ${counts.get(tag)} times`,
        );
      }
    }
    await closeAll(clients);
  } finally {
    await stopNodes(nodes);
  }
});

Deno.test("federation chain forwards through the middle", async () => {
  const nodes = await startNodes(["a", "b", "c"]);
  const [a, b, c] = nodes as [Node, Node, Node];
  try {
    dial(a, [b], nodes);
    dial(c, [b], nodes);
    // The acceptor registers a link before the dialler reads `ready`.
    await waitFor(
      () => linkCount(b) === 2 && linkCount(a) === 1 && linkCount(c) === 1,
      LINK_WAIT_MS,
      "chain links",
    );

    // B has no participant of its own in the room.
    const atA = (await joinWs(a.relay, ROOM, { alias: "pa" })).client;
    const atC = (await joinWs(c.relay, ROOM, { alias: "pc" })).client;
    const update = await waitForMembers(atA, 2, "a");
    const pc = (update.participants as Record<string, unknown>[])
      .find((p) => p.alias === "pc")!;
    assert.equal(pc.transport, "federated");
    assert.equal(pc.relay, "c");
    await waitForMembers(atC, 2, "c");

    await sendNumbered(atA, 30, 1);
    await sendNumbered(atC, 30, 3);
    assert.equal(countByTag(await collect(atC, 30)).get(1), 30);
    assert.equal(countByTag(await collect(atA, 30)).get(3), 30);
    assert.equal(countByTag(atA.drainMedia()).get(1), undefined);
    await closeAll([atA, atC]);
  } finally {
    await stopNodes(nodes);
  }
});

Deno.test("federation mutual dials keep one link", async () => {
  const nodes = await startNodes(["a", "b"]);
  const [a, b] = nodes as [Node, Node];
  try {
    dial(a, [b], nodes);
    dial(b, [a], nodes);
    await waitFor(
      () => linkCount(a) === 1 && linkCount(b) === 1,
      LINK_WAIT_MS,
      "links",
    );
    // Let both dials finish and the duplicate be resolved.
    await delay(2_000);
    assert.equal(linkCount(a), 1);
    assert.equal(linkCount(b), 1);
    const linkAtA = a.relay.federation.links[0]!;
    const linkAtB = b.relay.federation.links[0]!;
    assert.notEqual(linkAtA.role, linkAtB.role);

    const alice = (await joinWs(a.relay, ROOM, { alias: "alice" })).client;
    const bob = (await joinWs(b.relay, ROOM, { alias: "bob" })).client;
    await waitForMembers(bob, 2, "bob");
    await sendNumbered(alice, 20, 1);
    assert.equal(countByTag(await collect(bob, 20)).get(1), 20);
    await closeAll([alice, bob]);
  } finally {
    await stopNodes(nodes);
  }
});

Deno.test("federation rejects an unknown relay", async () => {
  const nodes = await startNodes(["a", "b"]);
  const [a, b] = nodes as [Node, Node];
  try {
    // B removes A from its trusted relays, then A dials B.
    b.relay.federation.reconfigure({
      peers: [],
      trusted: [],
      globalRooms: [ROOM],
    });
    b.relay.federation.reconfigure({
      peers: [],
      trusted: [{
        fingerprint: "0000:0000:0000:0000:0000:0000:0000:0000",
        label: "x",
      }],
      globalRooms: [ROOM],
    });
    dial(a, [b], nodes);
    await delay(2_500);
    assert.equal(linkCount(a), 0);
    assert.equal(linkCount(b), 0);
    const peers = a.relay.federation.describePeers() as {
      peers: { state: string }[];
    };
    assert.equal(peers.peers[0]!.state, "connecting");
    assert.ok(a.relay.federation.counters.handshakeFailures.outbound > 0);
    assert.ok(b.relay.federation.counters.handshakeFailures.inbound > 0);
  } finally {
    await stopNodes(nodes);
  }
});

Deno.test("federation rejects a wrong fingerprint", async () => {
  const nodes = await startNodes(["a", "b"]);
  const [a, b] = nodes as [Node, Node];
  try {
    const impostor = await RelayIdentity.generate();
    a.relay.federation.reconfigure({
      ...a.relay.options.federation,
      peers: [{
        url: `https://127.0.0.1:${b.relay.wtPort}/federation`,
        httpUrl: b.relay.httpUrl,
        fingerprint: impostor.fingerprint,
        label: "b",
      }],
    });
    await delay(2_500);
    assert.equal(linkCount(a), 0);
    assert.equal(linkCount(b), 0);
  } finally {
    await stopNodes(nodes);
  }
});

Deno.test("federation rate limit drops and counts", async () => {
  const nodes = await startNodes(["a", "b"], {
    federationRateLimit: 20,
    maxMediaPacketsPerSecond: 10_000,
  });
  const [a, b] = nodes as [Node, Node];
  try {
    await linkPair(a, b, nodes);
    const alice = (await joinWs(a.relay, ROOM, { alias: "alice" })).client;
    const bob = (await joinWs(b.relay, ROOM, { alias: "bob" })).client;
    await waitForMembers(bob, 2, "bob");

    for (let sequence = 0; sequence < 100; sequence++) {
      alice.sendMedia(buildMediaPacket({ sequence }));
    }
    await waitFor(
      () => b.relay.federation.counters.rateLimited >= 50,
      LINK_WAIT_MS,
      "rate-limited packets",
    );
    await delay(200);
    const received = bob.drainMedia().length;
    assert.ok(received >= 15, `bob received ${received}`);
    assert.ok(received <= 30, `bob received ${received}`);
    assert.ok(b.relay.stats.dropped.rate_limited >= 50);
    await closeAll([alice, bob]);
  } finally {
    await stopNodes(nodes);
  }
});

Deno.test("federation batches packets into fewer datagrams", async () => {
  const nodes = await startNodes(["a", "b"], {
    maxMediaPacketsPerSecond: 10_000,
  });
  const [a, b] = nodes as [Node, Node];
  try {
    await linkPair(a, b, nodes);
    const senders = [];
    for (let i = 0; i < 5; i++) {
      senders.push((await joinWs(a.relay, ROOM, { alias: `s${i}` })).client);
    }
    const bob = (await joinWs(b.relay, ROOM, { alias: "bob" })).client;
    await waitForMembers(bob, 6, "bob");

    for (let round = 0; round < 20; round++) {
      for (const sender of senders) {
        sender.sendMedia(
          buildMediaPacket({ sequence: round, payload: new Uint8Array(60) }),
        );
      }
      await delay(2);
    }
    await collect(bob, 100);
    const link = a.relay.federation.links[0]!;
    assert.equal(link.counters.packetsOut, 100);
    assert.ok(
      link.counters.datagramsOut < 50,
      `${link.counters.datagramsOut} datagrams for 100 packets`,
    );
    await closeAll([...senders, bob]);
  } finally {
    await stopNodes(nodes);
  }
});

Deno.test("federation follows bridged room changes", async () => {
  const nodes = await startNodes(["a", "b"]);
  const [a, b] = nodes as [Node, Node];
  try {
    await linkPair(a, b, nodes);
    const alice = (await joinWs(a.relay, "side", { alias: "alice" })).client;
    const bob = (await joinWs(b.relay, "side", { alias: "bob" })).client;
    await delay(300);
    assert.equal(
      (alice.signalLog.findLast((s) => s.type === "room_update")!
        .participants as unknown[]).length,
      1,
    );

    // Both relays start bridging every room: the running room joins up.
    for (const node of nodes) {
      node.relay.federation.reconfigure({
        ...node.relay.federation.options,
        globalRooms: ["*"],
      });
    }
    await waitForMembers(alice, 2, "alice after bridging");
    await waitForMembers(bob, 2, "bob after bridging");

    // And stop again: each side lists only its own participant.
    for (const node of nodes) {
      node.relay.federation.reconfigure({
        ...node.relay.federation.options,
        globalRooms: [],
      });
    }
    await waitForMembers(alice, 1, "alice after unbridging");
    await waitForMembers(bob, 1, "bob after unbridging");
    await closeAll([alice, bob]);
  } finally {
    await stopNodes(nodes);
  }
});

Deno.test("federation drops a replayed packet", async () => {
  const nodes = await startNodes(["a", "b"]);
  const [a, b] = nodes as [Node, Node];
  try {
    await linkPair(a, b, nodes);
    const alice = (await joinWs(a.relay, ROOM, { alias: "alice" })).client;
    const bob = (await joinWs(b.relay, ROOM, { alias: "bob" })).client;
    await waitForMembers(bob, 2, "bob");

    const packet = buildMediaPacket({ sequence: 1 });
    alice.sendMedia(packet);
    await bob.nextMedia(LINK_WAIT_MS);

    // Send the same federation entry again over the real link. Alice is the
    // first participant relay A announced, so her handle there is 1, and
    // her first packet carried federation sequence 0.
    const link = a.relay.federation.links[0]!;
    link.enqueue(roomHash(ROOM), 1, 0, packet);
    link.flush();
    await waitFor(
      () => b.relay.federation.counters.deduped === 1,
      LINK_WAIT_MS,
      "the replay to be dropped",
    );
    await delay(200);
    assert.equal(bob.drainMedia().length, 0);

    // A new sequence number from the same sender is delivered.
    link.enqueue(roomHash(ROOM), 1, 1, packet);
    link.flush();
    await bob.nextMedia(LINK_WAIT_MS);
    assert.equal(b.relay.federation.counters.deduped, 1);
    await closeAll([alice, bob]);
  } finally {
    await stopNodes(nodes);
  }
});
