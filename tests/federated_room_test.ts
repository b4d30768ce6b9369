/**
 * Routing tests of FederatedRoom without sockets: relays exchange
 * announcements in memory until nothing changes, then the test checks that
 * every sender's media follows a tree (each relay is fed by exactly one
 * neighbour) in full meshes, chains and rings.
 */

import assert from "node:assert/strict";
import { FederatedRoom } from "../src/federation/federated_room.ts";
import type { PeerLink } from "../src/federation/link.ts";
import { Participant } from "../src/room/participant.ts";
import type { RoomName } from "../src/wire/room_name.ts";

const ROOM = "general" as RoomName;

interface SimulatedRelay {
  name: string;
  room: FederatedRoom;
  /** Link objects of this relay, by peer name. */
  links: Map<string, PeerLink>;
  nextHandle: number;
}

function fakeLink(peer: string): PeerLink {
  return { peerFingerprint: peer, label: peer, closed: false } as PeerLink;
}

function localParticipant(id: string): Participant {
  return new Participant({
    id,
    alias: id,
    fingerprint: null,
    relay: null,
    sink: {
      kind: "ws",
      sendMedia: () => true,
      sendSignal: () => {},
      close: () => {},
    },
  });
}

function network(names: string[], edges: [string, string][]) {
  const relays = new Map<string, SimulatedRelay>();
  for (const name of names) {
    relays.set(name, {
      name,
      room: new FederatedRoom(ROOM),
      links: new Map(),
      nextHandle: 1,
    });
  }
  for (const [a, b] of edges) {
    relays.get(a)!.links.set(b, fakeLink(b));
    relays.get(b)!.links.set(a, fakeLink(a));
  }
  return relays;
}

function addLocal(relay: SimulatedRelay, id: string): void {
  relay.room.locals.set(localParticipant(id), {
    id: `${relay.name}/${id}`,
    handle: relay.nextHandle++,
    participant: localParticipant(id),
    sequence: 0,
    subscribers: [],
  });
}

/** Exchanges announcements until a round changes nothing. */
function converge(relays: Map<string, SimulatedRelay>): void {
  for (let round = 0; round < 50; round++) {
    let changed = false;
    for (const relay of relays.values()) relay.room.recomputeRoutes();
    for (const relay of relays.values()) {
      for (const [peerName, link] of relay.links) {
        if (link.closed) continue;
        const { participants, want } = relay.room.announcementFor(
          link,
          relay.name,
          16,
        );
        const text = JSON.stringify({ participants, want });
        if (relay.room.lastSent.get(link) === text) continue;
        relay.room.lastSent.set(link, text);
        changed = true;
        const peer = relays.get(peerName)!;
        const reverse = peer.links.get(relay.name)!;
        peer.room.applyAnnouncement(
          reverse,
          participants,
          want,
          peer.name,
          () => peer.nextHandle++,
        );
        peer.room.recomputeRoutes();
      }
    }
    if (!changed) {
      for (const relay of relays.values()) relay.room.recomputeRoutes();
      return;
    }
  }
  throw new Error("announcements did not converge in 50 rounds");
}

/** Counts, per relay, how many neighbours send it the sender's media. */
function feeds(
  relays: Map<string, SimulatedRelay>,
  senderId: string,
): Map<string, number> {
  const counts = new Map<string, number>();
  for (const relay of relays.values()) {
    const subscribers = [...relay.room.locals.values()]
      .find((local) => local.id === senderId)?.subscribers ??
      relay.room.remotes.get(senderId)?.subscribers ?? [];
    for (const link of subscribers) {
      counts.set(
        link.peerFingerprint,
        (counts.get(link.peerFingerprint) ?? 0) + 1,
      );
    }
  }
  return counts;
}

function assertTree(
  relays: Map<string, SimulatedRelay>,
  origin: string,
  senderId: string,
): void {
  const counts = feeds(relays, senderId);
  for (const name of relays.keys()) {
    if (name === origin) {
      assert.equal(counts.get(name) ?? 0, 0, `${senderId} echoed to ${name}`);
    } else {
      assert.equal(
        counts.get(name),
        1,
        `${name} fed ${counts.get(name) ?? 0} times`,
      );
    }
  }
}

Deno.test("FederatedRoom full mesh feeds once", () => {
  const relays = network(["a", "b", "c"], [["a", "b"], ["b", "c"], ["a", "c"]]);
  addLocal(relays.get("a")!, "p1");
  addLocal(relays.get("b")!, "p2");
  addLocal(relays.get("c")!, "p3");
  converge(relays);

  assertTree(relays, "a", "a/p1");
  assertTree(relays, "b", "b/p2");
  assertTree(relays, "c", "c/p3");
  assert.equal(relays.get("c")!.room.remotes.size, 2);
});

Deno.test("FederatedRoom chain forwards through middle", () => {
  const relays = network(["a", "b", "c"], [["a", "b"], ["b", "c"]]);
  addLocal(relays.get("a")!, "p1");
  addLocal(relays.get("c")!, "p3");
  converge(relays);

  assertTree(relays, "a", "a/p1");
  assertTree(relays, "c", "c/p3");
  const atC = relays.get("c")!.room.remotes.get("a/p1")!;
  assert.deepEqual(atC.best!.path, ["a", "b"]);
});

Deno.test("FederatedRoom ring of five feeds once", () => {
  const names = ["a", "b", "c", "d", "e"];
  const relays = network(names, [
    ["a", "b"],
    ["b", "c"],
    ["c", "d"],
    ["d", "e"],
    ["e", "a"],
  ]);
  for (const name of names) addLocal(relays.get(name)!, `p-${name}`);
  converge(relays);

  for (const name of names) assertTree(relays, name, `${name}/p-${name}`);
});

Deno.test("FederatedRoom full mesh of four", () => {
  const names = ["a", "b", "c", "d"];
  const edges: [string, string][] = [];
  for (let i = 0; i < names.length; i++) {
    for (let j = i + 1; j < names.length; j++) {
      edges.push([names[i]!, names[j]!]);
    }
  }
  const relays = network(names, edges);
  for (const name of names) addLocal(relays.get(name)!, `p-${name}`);
  converge(relays);

  for (const name of names) assertTree(relays, name, `${name}/p-${name}`);
});

Deno.test("FederatedRoom reroutes after link loss", () => {
  const relays = network(["a", "b", "c"], [["a", "b"], ["b", "c"], ["a", "c"]]);
  addLocal(relays.get("a")!, "p1");
  addLocal(relays.get("b")!, "p2");
  addLocal(relays.get("c")!, "p3");
  converge(relays);

  // The a-c link goes down on both ends.
  for (const [from, to] of [["a", "c"], ["c", "a"]] as const) {
    const relay = relays.get(from)!;
    const link = relay.links.get(to)!;
    (link as { closed: boolean }).closed = true;
    relay.room.removeLink(link);
  }
  converge(relays);

  assertTree(relays, "a", "a/p1");
  const atC = relays.get("c")!.room.remotes.get("a/p1")!;
  assert.deepEqual(atC.best!.path, ["a", "b"]);
});

Deno.test("FederatedRoom drops participant when origin leaves", () => {
  const relays = network(["a", "b", "c"], [["a", "b"], ["b", "c"], ["a", "c"]]);
  addLocal(relays.get("a")!, "p1");
  converge(relays);
  assert.equal(relays.get("b")!.room.remotes.size, 1);

  relays.get("a")!.room.locals.clear();
  converge(relays);

  assert.equal(relays.get("b")!.room.remotes.size, 0);
  assert.equal(relays.get("c")!.room.remotes.size, 0);
});

Deno.test("FederatedRoom requests media only for listeners", () => {
  // A chain a-b-c where only a has a participant, so no relay listens.
  const relays = network(["a", "b", "c"], [["a", "b"], ["b", "c"]]);
  addLocal(relays.get("a")!, "p1");
  converge(relays);
  assert.equal(feeds(relays, "a/p1").size, 0);

  // A listener joins at c: b forwards to it without participants of its own.
  addLocal(relays.get("c")!, "p3");
  converge(relays);
  assertTree(relays, "a", "a/p1");
});

Deno.test("FederatedRoom ignores routes through itself", () => {
  const room = new FederatedRoom(ROOM);
  const link = fakeLink("b");
  room.applyAnnouncement(
    link,
    [{
      id: "c/p1",
      handle: 1,
      alias: null,
      fingerprint: null,
      origin_label: null,
      path: ["c", "a", "b"],
    }, {
      id: "a/p2",
      handle: 2,
      alias: null,
      fingerprint: null,
      origin_label: null,
      path: ["a", "b"],
    }],
    [],
    "a",
    () => 1,
  );

  assert.equal(room.remotes.size, 0);
});
