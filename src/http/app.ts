/**
 * The HTTP API: health, readiness, metrics, identity, the admin routes, the
 * WebSocket endpoint and the browser page, on one hono app.
 *
 * @module
 */

import { Hono } from "hono";
import type { Context, Next } from "hono";
import type client from "prom-client";
import {
  upgradeToParticipant,
  type WebSocketSettings,
} from "../../bridge/websocket.ts";
import { serveAsset } from "../../bridge/assets.ts";
import {
  type ConnectionLimiter,
  sharedConnectionLimiter,
} from "../limits/connection_limiter.ts";
import type { RoomManager } from "../room/manager.ts";
import type { Room } from "../room/room.ts";
import type { SessionContext } from "../session/session.ts";
import { CLOSE } from "../wire/close_codes.ts";
import { parseRoomSegment } from "../wire/room_name.ts";

/**
 * Request headers that reverse proxies add. Without an admin token, a
 * request that carries one is refused, because behind a local proxy every
 * client connects from loopback.
 */
export const PROXY_HEADERS = [
  "forwarded",
  "x-forwarded-for",
  "x-real-ip",
] as const;

/** Per-request values that `Deno.serve` passes to the app as `env`. */
export interface HttpBindings {
  remoteAddr: Deno.NetAddr;
}

/** Relay state and services the HTTP app uses. */
export interface HttpDependencies {
  context: SessionContext;
  rooms: RoomManager;
  registry: client.Registry;
  /** Current settings, read per request so a reload applies. */
  settings: () => WebSocketSettings & { adminToken?: string };
  identity: { fingerprint: string; publicKeyBase64: string };
  /**
   * Body of `GET /api/webtransport`, or null when WebTransport is off.
   * Receives the request's Host header, if any, to build the URL with.
   */
  webTransportInfo: (host: string | undefined) => Promise<unknown | null>;
  /** Body of `GET /api/federation/peers`. */
  federationPeers: () => unknown;
  /** Extra details of a room, such as its quality tier. */
  roomDetails?: (room: Room) => Record<string, unknown>;
  /**
   * Connection limiter of the WebSocket endpoint. By default the one
   * shared with the WebTransport server through `context`.
   */
  limiter?: ConnectionLimiter;
}

type Env = { Bindings: HttpBindings };

/** Returns whether `address` is a loopback address. */
export function isLoopback(address: string): boolean {
  return address === "::1" || address.startsWith("127.") ||
    address.startsWith("::ffff:127.");
}

/** Returns the request path still percent-encoded; hono's `path` is decoded. */
function rawPath(c: Context): string {
  return new URL(c.req.url).pathname;
}

/** Orders two room names by UTF-16 code units, as `Array.sort` does. */
function compareNames(a: string, b: string): number {
  if (a < b) return -1;
  if (a > b) return 1;
  return 0;
}

/** Compares two strings in time that depends only on their lengths. */
function safeEqual(a: string, b: string): boolean {
  const left = new TextEncoder().encode(a);
  const right = new TextEncoder().encode(b);
  let difference = left.length ^ right.length;
  for (let i = 0; i < left.length; i++) {
    difference |= left[i]! ^ (right[i % right.length] ?? 0);
  }
  return difference === 0;
}

function apiError(
  c: Context,
  status: 400 | 401 | 403 | 404,
  code: string,
  message: string,
) {
  return c.json({ error: { code, message } }, status);
}

/** Creates the hono app. */
export function createHttpApp(deps: HttpDependencies): Hono<Env> {
  const app = new Hono<Env>();
  const { rooms, context } = deps;
  const limiter = deps.limiter ?? sharedConnectionLimiter(context);

  /**
   * Admin routes require `Authorization: Bearer <admin token>` when a token
   * is configured. Without one, they respond to loopback clients only.
   */
  async function requireAdmin(c: Context<Env>, next: Next) {
    const adminToken = deps.settings().adminToken;
    if (adminToken !== undefined && adminToken !== "") {
      const header = c.req.header("authorization") ?? "";
      const match = /^Bearer\s+(.+)$/i.exec(header);
      if (match === null || !safeEqual(match[1]!, adminToken)) {
        return apiError(
          c,
          401,
          "unauthorized",
          "Missing or invalid admin bearer token",
        );
      }
      return await next();
    }

    const remote = c.env?.remoteAddr?.hostname ?? "";
    if (!isLoopback(remote)) {
      return apiError(
        c,
        403,
        "forbidden",
        "Admin routes answer only loopback clients unless --admin-token is set",
      );
    }
    // A reverse proxy on the same host connects from loopback for every
    // client, so a forwarded request is not trusted as local.
    if (PROXY_HEADERS.some((name) => c.req.header(name) !== undefined)) {
      return apiError(
        c,
        403,
        "forbidden",
        "Admin routes do not answer requests forwarded by a proxy " +
          `(a ${PROXY_HEADERS.join(", ")} header) unless --admin-token is set`,
      );
    }
    return await next();
  }

  app.get("/healthz", (c) => c.json({ status: "ok" }));

  app.get(
    "/readyz",
    (c) =>
      context.draining
        ? c.json({ status: "draining" }, 503)
        : c.json({ status: "ready" }),
  );

  app.get("/metrics", async (c) => {
    const body = await deps.registry.metrics();
    return c.body(body, 200, { "content-type": deps.registry.contentType });
  });

  app.get("/api/identity", (c) =>
    c.json({
      fingerprint: deps.identity.fingerprint,
      public_key: deps.identity.publicKeyBase64,
    }));

  app.get("/api/webtransport", async (c) => {
    const info = await deps.webTransportInfo(c.req.header("host"));
    if (info === null) {
      return apiError(
        c,
        404,
        "not_found",
        "WebTransport is disabled on this relay",
      );
    }
    return c.json(info);
  });

  app.get("/api/rooms", requireAdmin, (c) => {
    const list = [];
    for (const room of rooms.rooms()) {
      list.push({
        name: room.name,
        participants: room.size,
        local_participants: room.localCount,
        created_at: new Date(room.createdAt).toISOString(),
      });
    }
    list.sort((a, b) => compareNames(a.name, b.name));
    return c.json({ rooms: list });
  });

  app.get("/api/rooms/:room", requireAdmin, (c) => {
    const room = findRoom(rawPath(c), "/api/rooms/");
    if (room === undefined) {
      return apiError(c, 404, "not_found", "Room not found");
    }
    return c.json({
      name: room.name,
      created_at: new Date(room.createdAt).toISOString(),
      participants: room.update().participants,
      ...deps.roomDetails?.(room),
    });
  });

  app.delete("/api/rooms/:room/participants/:id", requireAdmin, (c) => {
    const room = findRoom(
      rawPath(c).replace(/\/participants\/[^/]*$/, ""),
      "/api/rooms/",
    );
    const id = c.req.param("id") ?? "";
    const participant = room?.get(id);
    if (room === undefined || participant === undefined) {
      return apiError(
        c,
        404,
        "not_found",
        `Participant ${id} not found in this room`,
      );
    }
    if (participant.sink.kind === "federated") {
      return apiError(
        c,
        400,
        "bad_request",
        `Participant ${id} is on relay ${participant.relay}; remove it there`,
      );
    }
    context.logger.info("participant kicked", {
      room: room.name,
      participant: id,
      remote: c.env?.remoteAddr?.hostname,
    });
    participant.sink.close(CLOSE.kicked, "Removed by an operator");
    return c.json({ removed: id });
  });

  app.get(
    "/api/federation/peers",
    requireAdmin,
    (c) => c.json(deps.federationPeers()),
  );

  app.get("/ws/*", (c) => {
    const segment = rawPath(c).slice("/ws/".length);
    if (segment.includes("/")) {
      context.stats.requestsRejected.invalid_room++;
      return c.json({
        error: {
          code: CLOSE.badRequest.error,
          message: "Invalid room name: expected one path segment after /ws/",
        },
      }, 400);
    }
    return upgradeToParticipant(c.req.raw, segment, context, deps.settings(), {
      remote: c.env?.remoteAddr?.hostname ?? "unknown",
      limiter,
    });
  });

  app.get("/", (c) => serveAsset(c.req.raw, "page.html"));
  app.get("/assets/:name", (c) => serveAsset(c.req.raw, c.req.param("name")));

  app.notFound((c) =>
    apiError(c, 404, "not_found", `No route for ${c.req.method} ${c.req.path}`)
  );

  /** Finds the room named by the raw path segment after `prefix`. */
  function findRoom(rawPath: string, prefix: string): Room | undefined {
    const segment = rawPath.slice(prefix.length);
    const parsed = parseRoomSegment(segment);
    return parsed.ok ? rooms.get(parsed.name) : undefined;
  }

  return app;
}
