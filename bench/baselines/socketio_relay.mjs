/**
 * Baseline: a room relay on Node.js and Socket.IO rooms, written the way
 * Socket.IO's users usually write one (`socket.join(room)` and
 * `socket.to(room).emit(...)`).
 *
 * Socket.IO has its own framing, so this relay is driven by
 * `socketio_generator.mjs` (socket.io-client) instead of the relay client.
 * The exchange mirrors the relay's protocol: the client connects with
 * `?room=<room>`, emits `hello`, gets `welcome`, then emits `media` with
 * binary packets, and every other member of the room receives `media` with
 * the sender's 2-byte source id before the packet.
 *
 * Usage: node socketio_relay.mjs --port <port>
 */

import { Buffer } from "node:buffer";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import process from "node:process";
import { parseArgs } from "node:util";

// Node resolves this package from ./node_modules. It is loaded with
// require() because `deno check bench/` also reads .mjs files and cannot
// resolve a bare package name without an import map entry.
const require = createRequire(import.meta.url);
const { Server } = require("socket.io");

const { values } = parseArgs({
  options: { port: { type: "string" }, host: { type: "string" } },
});
const port = Number(values.port ?? 8091);
const host = values.host ?? "127.0.0.1";

const httpServer = createServer();
const io = new Server(httpServer, { serveClient: false });
let nextSource = 0;

io.on("connection", (socket) => {
  const room = String(socket.handshake.query.room ?? "");
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(nextSource++ & 0xffff);

  socket.on("hello", () => {
    socket.join(room);
    socket.emit("welcome", {
      type: "welcome",
      participant_id: socket.id,
      room,
      relay: "socketio-baseline",
    });
  });

  socket.on("media", (packet) => {
    socket.to(room).emit("media", Buffer.concat([prefix, packet]));
  });

  socket.on("hangup", () => socket.disconnect(true));
});

httpServer.listen(port, host, () => {
  console.error(`socket.io baseline on ${host}:${port}`);
});
process.on("SIGTERM", () => process.exit(0));
