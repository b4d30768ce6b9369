/**
 * Baseline: a room relay on Node.js and the `ws` package, written the way
 * the package's users usually write one (a Map of rooms to Sets of
 * sockets, JSON for control, a loop over the room on every message).
 *
 * It speaks the subset of the relay's participant protocol that the load
 * generator uses: `GET /ws/<room>`, `welcome` in reply to `hello`, and
 * each binary message sent to the other members prefixed with the
 * sender's 2-byte source id. It checks nothing and drops nothing.
 *
 * Usage: node ws_relay.mjs --port <port>
 */

import { Buffer } from "node:buffer";
import { createRequire } from "node:module";
import process from "node:process";
import { parseArgs } from "node:util";

// Node resolves this package from ./node_modules. It is loaded with
// require() because `deno check bench/` also reads .mjs files and cannot
// resolve a bare package name without an import map entry.
const require = createRequire(import.meta.url);
const { WebSocket, WebSocketServer } = require("ws");

const { values } = parseArgs({
  options: { port: { type: "string" }, host: { type: "string" } },
});
const port = Number(values.port ?? 8090);
const host = values.host ?? "127.0.0.1";

/** @type {Map<string, Set<WebSocket>>} */
const rooms = new Map();
let nextSource = 0;
let nextId = 0;

const server = new WebSocketServer({ host, port });

server.on("connection", (socket, request) => {
  const path = request.url ?? "";
  if (!path.startsWith("/ws/")) {
    socket.close(4400, "bad_request");
    return;
  }
  const roomName = decodeURIComponent(path.slice(4).split("?")[0]);
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(nextSource++ & 0xffff);
  const id = `p${nextId++}`;
  let room = null;

  socket.on("message", (data, isBinary) => {
    if (!isBinary) {
      const message = JSON.parse(data.toString());
      if (message.type === "hello" && room === null) {
        room = rooms.get(roomName);
        if (!room) {
          room = new Set();
          rooms.set(roomName, room);
        }
        room.add(socket);
        socket.send(
          JSON.stringify({
            type: "welcome",
            participant_id: id,
            room: roomName,
            relay: "ws-baseline",
          }),
        );
      } else if (message.type === "hangup") {
        socket.close(1000);
      }
      return;
    }

    if (room === null) return;
    const frame = Buffer.concat([prefix, data]);
    for (const client of room) {
      if (client !== socket && client.readyState === WebSocket.OPEN) {
        client.send(frame);
      }
    }
  });

  socket.on("close", () => {
    if (room === null) return;
    room.delete(socket);
    if (room.size === 0) rooms.delete(roomName);
  });
});

server.on("listening", () => console.error(`ws baseline on ${host}:${port}`));
process.on("SIGTERM", () => process.exit(0));
