/**
 * Load generator process for Deno: joins rooms with the project's own
 * `RelayClient` over WebSocket or WebTransport and runs the control
 * protocol of `generator_core.js` on stdin and stdout.
 *
 * Run by the harness as
 * `taskset -c 1 deno run --allow-net --unstable-net bench/load/generator.ts`.
 *
 * @module
 */

import {
  RelayClient,
  type ServerCertificateHash,
} from "../../src/client/mod.ts";
import {
  type LoadClient,
  type MemberSpec,
  runControlLoop,
} from "./generator_core.js";
import { readLines } from "./lines.ts";

/** Time a client has from connect to `welcome`, in ms. */
const CONNECT_TIMEOUT_MS = 30_000;

async function openClient(
  member: MemberSpec,
  room: string,
  extra: Record<string, unknown>,
): Promise<LoadClient> {
  if (member.transport !== "ws" && member.transport !== "wt") {
    throw new TypeError(
      `Unsupported transport ${member.transport}: this generator speaks ws and wt`,
    );
  }

  const hashes = member.transport === "wt"
    ? extra.certificateHashes as ServerCertificateHash[] | undefined
    : undefined;
  const client = new RelayClient(member.url + encodeURIComponent(room), {
    serverCertificateHashes: hashes,
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
  });
  await client.connect();
  return {
    sendMedia: (packet) => client.sendMedia(packet),
    listen: (handler) => {
      client.onMedia = handler;
    },
    isOpen: () => client.state === "joined",
    close: () => client.close(),
  };
}

const encoder = new TextEncoder();
await runControlLoop(
  readLines(Deno.stdin.readable),
  (line) => Deno.stdout.writeSync(encoder.encode(line + "\n")),
  openClient,
);
