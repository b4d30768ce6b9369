/**
 * Micro-benchmarks of federation media batching: encoding packets into
 * datagrams with `FederationDatagramWriter` and decoding them with
 * `decodeFederationDatagram`, batched (as many 100-byte packets as fit a
 * 1,200-byte datagram) against one packet per datagram.
 *
 * Run with `deno task bench`.
 *
 * @module
 */

import {
  DATAGRAM_HEADER_BYTES,
  decodeFederationDatagram,
  ENTRY_HEADER_BYTES,
  FederationDatagramWriter,
  type FederationEntry,
  roomHash,
} from "../src/wire/federation_media.ts";

/** Datagram size the batcher falls back to before the path reports one. */
const DATAGRAM_BYTES = 1_200;

/** Payload size of the load generator's packets. */
const PACKET_BYTES = 100;

/** Packets that fit one datagram. */
const PER_DATAGRAM = Math.floor(
  (DATAGRAM_BYTES - DATAGRAM_HEADER_BYTES) /
    (ENTRY_HEADER_BYTES + PACKET_BYTES),
);

const hash = roomHash("bench");
const packet = new Uint8Array(PACKET_BYTES).fill(7);
const writer = new FederationDatagramWriter(DATAGRAM_BYTES);
let sequence = 0;

/** Encodes `count` packets, taking a datagram whenever the next is full. */
function encode(count: number, perDatagram: number): Uint8Array[] {
  const datagrams: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    if (
      writer.entries >= perDatagram ||
      !writer.fits(packet.length, DATAGRAM_BYTES)
    ) {
      datagrams.push(writer.take());
    }
    writer.append(hash, 1, sequence++, packet);
  }
  datagrams.push(writer.take());
  return datagrams;
}

const batched = encode(PER_DATAGRAM, PER_DATAGRAM);
const single = encode(PER_DATAGRAM, 1);
let decoded = 0;
const onEntry = (entry: FederationEntry) => {
  decoded += entry.packet.length;
};

Deno.bench({
  name: `encode ${PER_DATAGRAM} packets into 1 datagram`,
  group: "federation encode",
  baseline: true,
  fn: () => {
    encode(PER_DATAGRAM, PER_DATAGRAM);
  },
});
Deno.bench({
  name: `encode ${PER_DATAGRAM} packets into ${PER_DATAGRAM} datagrams`,
  group: "federation encode",
  fn: () => {
    encode(PER_DATAGRAM, 1);
  },
});

Deno.bench({
  name: `decode 1 datagram of ${PER_DATAGRAM} packets`,
  group: "federation decode",
  baseline: true,
  fn: () => {
    for (const datagram of batched) decodeFederationDatagram(datagram, onEntry);
  },
});
Deno.bench({
  name: `decode ${PER_DATAGRAM} datagrams of 1 packet`,
  group: "federation decode",
  fn: () => {
    for (const datagram of single) decodeFederationDatagram(datagram, onEntry);
  },
});

// Keeps the decoded byte count observable so the work is not optimized away.
globalThis.addEventListener("unload", () => {
  if (decoded < 0) console.log(decoded);
});
