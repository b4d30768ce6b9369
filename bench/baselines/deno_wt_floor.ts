/**
 * Baseline: the runtime floor over WebTransport. The same fan-out as the
 * relay on Deno's QUIC endpoint and `Deno.upgradeWebTransport`, with
 * nothing else: rooms as arrays of sessions, no header check, no rate
 * limits, no metrics, no backpressure and no certificate rotation. The
 * relay's WebTransport cost above this is the price of its own work; the
 * cost of this floor against the WebSocket floor is the runtime's.
 *
 * It speaks the subset of the participant protocol that the load
 * generator's `RelayClient` uses. A session opens at `/room/<room>`, and
 * the client opens a signal stream of 4-byte length-prefixed JSON. The
 * floor replies to `hello` with `welcome` and sends each datagram to the
 * other members of the room, prefixed with the sender's 2-byte source id.
 *
 * `/healthz` on the HTTP port returns 200 once the QUIC endpoint listens.
 *
 * Usage: deno run --allow-net --allow-read --unstable-net
 *   bench/baselines/deno_wt_floor.ts --port <udp port> --http-port <tcp port>
 *   --cert <cert.pem> --key <key.pem>
 *
 * @module
 */

import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    port: { type: "string" },
    "http-port": { type: "string" },
    cert: { type: "string" },
    key: { type: "string" },
  },
});
const hostname = "127.0.0.1";
const port = Number(values.port);
const httpPort = Number(values["http-port"]);

/** One joined session: where its datagrams go. */
interface Member {
  writer: WritableStreamDefaultWriter<Uint8Array>;
}

/** Members of each room; replaced, never mutated, on join and leave. */
const rooms = new Map<string, Member[]>();
let nextSource = 0;
let nextId = 0;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const ignore = () => {};

function leave(name: string, member: Member): void {
  const members = (rooms.get(name) ?? []).filter((other) => other !== member);
  if (members.length === 0) rooms.delete(name);
  else rooms.set(name, members);
}

/** Writes one length-prefixed signal. */
function signal(
  writer: WritableStreamDefaultWriter<Uint8Array>,
  message: unknown,
): void {
  const body = encoder.encode(JSON.stringify(message));
  const frame = new Uint8Array(4 + body.length);
  new DataView(frame.buffer).setUint32(0, body.length);
  frame.set(body, 4);
  writer.write(frame).catch(ignore);
}

/** Waits for `hello` on the signal stream, then joins and forwards media. */
async function serve(wt: WebTransport & { url: string }): Promise<void> {
  const room = decodeURIComponent(
    new URL(wt.url).pathname.slice("/room/".length),
  );
  const streams = wt.incomingBidirectionalStreams.getReader();
  const { value: stream } = await streams.read();
  if (stream === undefined) return;
  const signals = stream.writable.getWriter();
  const member: Member = { writer: wt.datagrams.writable.getWriter() };
  const source = nextSource++ & 0xffff;

  // Only `hello` is acted on. Later signals are read and ignored.
  const reader = stream.readable.getReader();
  let buffer = new Uint8Array(0);
  let joined = false;
  while (!joined) {
    const { value, done } = await reader.read();
    if (done) return;
    const merged = new Uint8Array(buffer.length + value.length);
    merged.set(buffer);
    merged.set(value, buffer.length);
    buffer = merged;
    while (buffer.length >= 4 && !joined) {
      const length = new DataView(buffer.buffer).getUint32(0);
      if (buffer.length < 4 + length) break;
      const message = JSON.parse(
        decoder.decode(buffer.subarray(4, 4 + length)),
      );
      buffer = buffer.slice(4 + length);
      if (message.type === "hello") {
        joined = true;
        rooms.set(room, [...(rooms.get(room) ?? []), member]);
        signal(signals, {
          type: "welcome",
          participant_id: `p${nextId++}`,
          room,
          relay: "deno-wt-floor",
        });
      }
    }
  }
  (async () => {
    while (!(await reader.read()).done) {
      // Drain later signals.
    }
  })().catch(ignore);

  const datagrams = wt.datagrams.readable.getReader();
  try {
    for (;;) {
      const { value: packet, done } = await datagrams.read();
      if (done) break;
      const frame = new Uint8Array(packet.length + 2);
      frame[0] = source >>> 8;
      frame[1] = source & 0xff;
      frame.set(packet, 2);
      const members = rooms.get(room) ?? [];
      for (let i = 0; i < members.length; i++) {
        const other = members[i]!;
        if (other !== member) other.writer.write(frame).catch(ignore);
      }
    }
  } finally {
    leave(room, member);
  }
}

const endpoint = new Deno.QuicEndpoint({ hostname, port });
const listener = endpoint.listen({
  alpnProtocols: ["h3"],
  cert: await Deno.readTextFile(values.cert!),
  key: await Deno.readTextFile(values.key!),
});
(async () => {
  for await (const incoming of listener) {
    (async () => {
      const wt = await Deno.upgradeWebTransport(await incoming.accept());
      await wt.ready;
      await serve(wt as WebTransport & { url: string });
    })().catch(ignore);
  }
})();

Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
Deno.serve({
  hostname,
  port: httpPort,
  onListen: () =>
    console.error(`deno WebTransport floor on ${hostname}:${port}`),
}, () => new Response("ok"));
