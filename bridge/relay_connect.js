// Transport choice for the page: WebTransport when the browser has it and
// the relay offers it (certificate hashes from /api/webtransport), else
// WebSocket on the page's own origin. A WebTransport attempt that fails
// for a transport reason falls back to WebSocket. A relay decision such as
// 4401 unauthorized does not, because WebSocket would get the same result.

import { RelayClient } from "./relay_client.js";
import { isRelayDecision } from "./close_messages.js";

/** Bound of one connection attempt, hello and welcome included, in ms. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 8_000;

/** Transport preferences of the page: `auto` tries WebTransport first. */
export const TRANSPORT_CHOICES = Object.freeze(["auto", "wt", "ws"]);

/** Returns the WebSocket URL of `room` on the relay that served the page. */
export function webSocketUrl(room, origin = location.origin) {
  const url = new URL(`/ws/${encodeURIComponent(room)}`, origin);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

/**
 * Connects to `room` and returns `{ client, welcome, fallbackReason }`,
 * where fallbackReason gives the reason WebTransport was not used (null when it
 * was, or when WebSocket was requested). `transport` is one of
 * TRANSPORT_CHOICES; with "wt" a WebTransport failure is not retried over
 * WebSocket. Rejects with the last attempt's error.
 */
export async function connectToRoom(
  {
    room,
    alias,
    token,
    transport = "auto",
    origin = location.origin,
    connectTimeoutMs = DEFAULT_CONNECT_TIMEOUT_MS,
    onAttempt = () => {},
  },
) {
  if (!TRANSPORT_CHOICES.includes(transport)) {
    throw new TypeError(
      `Invalid transport "${transport}": use one of ${
        TRANSPORT_CHOICES.join(", ")
      }`,
    );
  }

  const options = { alias: alias || undefined, token: token || undefined };
  let fallbackReason = null;
  if (transport !== "ws") {
    try {
      onAttempt("wt");
      const info = await webTransportInfo(origin);
      const url = `${info.url}${encodeURIComponent(room)}`;
      const client = new RelayClient(url, {
        ...options,
        serverCertificateHashes: info.certificateHashes,
        connectTimeoutMs,
      });
      return await join(client, null);
    } catch (error) {
      if (transport === "wt" || isRelayDecision(error)) throw error;
      fallbackReason = `WebTransport failed: ${describe(error)}`;
    }
  }

  onAttempt("ws");
  const client = new RelayClient(webSocketUrl(room, origin), {
    ...options,
    connectTimeoutMs,
  });
  return await join(client, fallbackReason);
}

async function webTransportInfo(origin) {
  if (typeof WebTransport === "undefined") {
    throw new TypeError("this browser has no WebTransport");
  }
  return await RelayClient.fetchWebTransportInfo(origin);
}

async function join(client, fallbackReason) {
  try {
    const welcome = await client.connect();
    return { client, welcome, fallbackReason };
  } catch (error) {
    await client.close().catch(() => {});
    throw error;
  }
}

function describe(error) {
  return error instanceof Error ? error.message : String(error);
}
