/**
 * Baseline: the runtime floor. The same fan-out as the relay with nothing
 * else: `Deno.serve` and `Deno.upgradeWebSocket`, rooms as arrays of
 * sockets, no header check, no rate limits, no metrics and no
 * backpressure. The relay's cost above this is the price of its checks,
 * counters and drop-on-backpressure.
 *
 * It speaks the subset of the participant protocol that the load
 * generator uses: `GET /ws/<room>`, `welcome` in reply to `hello`, and
 * each binary message sent to the other members of the room prefixed with
 * the sender's 2-byte source id.
 *
 * Usage: deno run --allow-net bench/baselines/deno_floor.ts --port <port>
 *
 * @module
 */

import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: { port: { type: "string" }, host: { type: "string" } },
});
const port = Number(values.port ?? 8092);
const hostname = values.host ?? "127.0.0.1";

/** Members of each room; replaced, never mutated, on join and leave. */
const rooms = new Map<string, WebSocket[]>();
let nextSource = 0;
let nextId = 0;

function join(name: string, socket: WebSocket): void {
  rooms.set(name, [...(rooms.get(name) ?? []), socket]);
}

function leave(name: string, socket: WebSocket): void {
  const members = (rooms.get(name) ?? []).filter((member) => member !== socket);
  if (members.length === 0) rooms.delete(name);
  else rooms.set(name, members);
}

function accept(request: Request): Response {
  const path = new URL(request.url).pathname;
  if (!path.startsWith("/ws/")) {
    return new Response("not found", { status: 404 });
  }

  const room = decodeURIComponent(path.slice(4));
  const { socket, response } = Deno.upgradeWebSocket(request);
  socket.binaryType = "arraybuffer";
  const source = nextSource++ & 0xffff;
  const id = `p${nextId++}`;
  let joined = false;

  socket.onmessage = (event: MessageEvent) => {
    const data = event.data;
    if (typeof data === "string") {
      const message = JSON.parse(data) as { type?: string };
      if (message.type === "hello" && !joined) {
        joined = true;
        join(room, socket);
        socket.send(JSON.stringify({
          type: "welcome",
          participant_id: id,
          room,
          relay: "deno-floor",
        }));
      } else if (message.type === "hangup") {
        socket.close(1000);
      }
      return;
    }

    if (!joined) return;
    const packet = new Uint8Array(data as ArrayBuffer);
    const frame = new Uint8Array(packet.length + 2);
    frame[0] = source >>> 8;
    frame[1] = source & 0xff;
    frame.set(packet, 2);
    const members = rooms.get(room) ?? [];
    for (let i = 0; i < members.length; i++) {
      const member = members[i]!;
      if (member !== socket) member.send(frame);
    }
  };
  socket.onclose = () => {
    if (joined) leave(room, socket);
  };
  return response;
}

Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
Deno.serve({
  hostname,
  port,
  onListen: () => console.error(`deno floor on ${hostname}:${port}`),
}, accept);
