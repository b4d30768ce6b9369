/**
 * Routing of WebTransport sessions by URL path: `/room/<room>` for
 * participants and `/federation` for peer relays. `Deno.upgradeWebTransport`
 * exposes only the URL of the CONNECT request, so the URL is the only
 * information the relay has about a session before it starts.
 *
 * @module
 */

import { parseRoomSegment, type RoomName } from "../wire/room_name.ts";

/** Path prefix of participant sessions; the room segment follows it. */
export const ROOM_PATH_PREFIX = "/room/";

/** Path of federation sessions between relays. */
export const FEDERATION_PATH = "/federation";

/** The destination of a WebTransport session, decided from its URL. */
export type SessionRoute =
  | { kind: "room"; room: RoomName; queryToken: string | undefined }
  | { kind: "federation" }
  | { kind: "invalid"; message: string };

/**
 * Routes a session by the URL of its CONNECT request. A `?token=` query
 * parameter on a room URL becomes the session's query token.
 */
export function routeSession(url: string): SessionRoute {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { kind: "invalid", message: `Invalid session URL ${url}` };
  }

  const path = parsed.pathname;
  if (path === FEDERATION_PATH) return { kind: "federation" };

  if (!path.startsWith(ROOM_PATH_PREFIX)) {
    return {
      kind: "invalid",
      message: `No WebTransport endpoint at ${path}; ` +
        `use ${ROOM_PATH_PREFIX}<room> or ${FEDERATION_PATH}`,
    };
  }

  const segment = path.slice(ROOM_PATH_PREFIX.length);
  if (segment.includes("/")) {
    return {
      kind: "invalid",
      message: `Invalid room name: expected one path segment after ` +
        ROOM_PATH_PREFIX,
    };
  }

  const room = parseRoomSegment(segment);
  if (!room.ok) return { kind: "invalid", message: room.message };

  return {
    kind: "room",
    room: room.name,
    queryToken: parsed.searchParams.get("token") ?? undefined,
  };
}
