/**
 * Load generator process for the Socket.IO baseline, on Node.js with
 * socket.io-client (the only client that speaks Socket.IO's framing). It
 * runs the same generator core and control protocol as the Deno
 * generator, so the load and the measurements are the same.
 *
 * Every client connects with the WebSocket transport only (no HTTP
 * long-polling first) and its own connection (`forceNew`).
 *
 * Usage: node socketio_generator.mjs (driven by the harness on stdin)
 */

import { createRequire } from "node:module";
import process from "node:process";
import { createInterface } from "node:readline";
import { runControlLoop } from "../load/generator_core.js";

// Node resolves this package from ./node_modules. It is loaded with
// require() because `deno check bench/` also reads .mjs files and cannot
// resolve a bare package name without an import map entry.
const require = createRequire(import.meta.url);
const { io } = require("socket.io-client");

/** Time a client has from connect to `welcome`, in ms. */
const CONNECT_TIMEOUT_MS = 30_000;

/**
 * @param {import("../load/generator_core.js").MemberSpec} member
 * @param {string} room
 * @returns {Promise<import("../load/generator_core.js").LoadClient>}
 */
function openClient(member, room) {
  if (member.transport !== "socketio") {
    throw new TypeError(
      `Unsupported transport ${member.transport}: this generator speaks socketio`,
    );
  }

  const socket = io(member.url, {
    transports: ["websocket"],
    query: { room },
    forceNew: true,
    reconnection: false,
    timeout: CONNECT_TIMEOUT_MS,
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`No welcome within ${CONNECT_TIMEOUT_MS} ms`));
    }, CONNECT_TIMEOUT_MS);
    socket.on("connect_error", (error) => {
      clearTimeout(timer);
      socket.close();
      reject(error);
    });
    socket.on("connect", () => socket.emit("hello", {}));
    socket.once("welcome", () => {
      clearTimeout(timer);
      resolve({
        sendMedia: (packet) => {
          socket.emit("media", packet);
          return true;
        },
        listen: (handler) => {
          socket.on("media", (frame) => {
            const source = (frame[0] << 8) | frame[1];
            handler(source, frame.subarray(2));
          });
        },
        isOpen: () => socket.connected,
        close: () => {
          socket.close();
          return Promise.resolve();
        },
      });
    });
  });
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
await runControlLoop(
  lines,
  (line) => process.stdout.write(line + "\n"),
  openClient,
);
process.exit(0);
