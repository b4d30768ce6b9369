/**
 * Addresses the relay hands out: host names clients can reach for a bind
 * address, and the WebTransport endpoint URL.
 *
 * @module
 */

import { ROOM_PATH_PREFIX } from "./webtransport/routing.ts";

/** Returns the participant endpoint URL, up to the room name. */
export function webTransportUrl(host: string, port: number): string {
  return `https://${host}:${port}${ROOM_PATH_PREFIX}`;
}

/** Returns the host name of a Host header, or undefined if it has none. */
export function hostnameOf(host: string | undefined): string | undefined {
  if (host === undefined || host === "") return undefined;
  try {
    const hostname = new URL(`http://${host}`).hostname;
    return hostname === "" ? undefined : hostname;
  } catch {
    return undefined;
  }
}

/**
 * Returns extra subjectAltName entries for self-signed certificates: the
 * bind address when it names one host, not a wildcard.
 */
export function certificateHostnames(host: string): string[] {
  if (host === "" || host === "0.0.0.0" || host === "::") return [];
  return [host];
}

/** Returns a host name clients can connect to for a bind address. */
export function connectHost(host: string): string {
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return host.includes(":") ? `[${host}]` : host;
}
