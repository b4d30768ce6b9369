/**
 * Signals: the JSON messages between a participant and the relay. Client
 * signals are parsed and validated here; relay signals are typed here and
 * serialized by the caller.
 *
 * @module
 */

import type { Profile, Tier } from "./quality_report.ts";

/** Maximum alias length, in UTF-16 code units. */
export const MAX_ALIAS_LENGTH = 64;

/** Client `hello`: the first signal of a session. */
export interface HelloSignal {
  type: "hello";
  token?: string;
  alias?: string;
}

/** Client `auth`: `hello` with a token, for older web clients. */
export interface AuthSignal {
  type: "auth";
  token: string;
}

/** Client `ping`; the relay returns `pong` with the same `ts`. */
export interface PingSignal {
  type: "ping";
  ts: number;
}

/** Client `hangup`: leave the room. */
export interface HangupSignal {
  type: "hangup";
  reason?: string;
}

/** Client `refresh`: replace the session's token. */
export interface RefreshSignal {
  type: "refresh";
  token: string;
}

/** A signal type this relay does not know; ignored and counted. */
export interface UnknownSignal {
  type: "unknown";
  name: string;
}

/** Every signal a client may send. */
export type ClientSignal =
  | HelloSignal
  | AuthSignal
  | PingSignal
  | HangupSignal
  | RefreshSignal
  | UnknownSignal;

/** A participant as listed in `room_update`. */
export interface ParticipantInfo {
  id: string;
  source: number;
  alias: string | null;
  fingerprint: string | null;
  transport: "ws" | "wt" | "federated";
  relay: string | null;
}

/** Relay `welcome`: the join succeeded. */
export interface WelcomeSignal {
  type: "welcome";
  participant_id: string;
  room: string;
  relay: string;
}

/** Relay `room_update`: the full participant list in join order. */
export interface RoomUpdateSignal {
  type: "room_update";
  room: string;
  participants: ParticipantInfo[];
}

/** Relay `quality_directive`: the codec profile the room should use. */
export interface QualityDirectiveSignal {
  type: "quality_directive";
  tier: Tier;
  profile: Profile;
  reason: string;
}

/** Relay `pong`. */
export interface PongSignal {
  type: "pong";
  ts: number;
}

/** Relay `error`, sent just before the relay closes the session. */
export interface ErrorSignal {
  type: "error";
  code: string;
  message: string;
}

/** Every signal the relay sends. */
export type RelaySignal =
  | WelcomeSignal
  | RoomUpdateSignal
  | QualityDirectiveSignal
  | PongSignal
  | ErrorSignal;

/** Result of {@linkcode parseClientSignal}. */
export type ParseResult =
  | { ok: true; signal: ClientSignal }
  | { ok: false; message: string };

function invalid(message: string): ParseResult {
  return { ok: false, message };
}

function optionalString(
  record: Record<string, unknown>,
  key: string,
): string | undefined | null {
  const value = record[key];
  if (value === undefined) return undefined;
  return typeof value === "string" ? value : null;
}

/**
 * Parses one signal from its JSON text. A malformed signal is an error: not
 * a JSON object, no string `type`, or a known type with fields of the wrong
 * type. An unknown `type` is returned as `unknown`.
 */
export function parseClientSignal(text: string): ParseResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return invalid("Invalid signal: not valid JSON");
  }

  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return invalid("Invalid signal: expected a JSON object");
  }

  const record = value as Record<string, unknown>;
  const type = record.type;
  if (typeof type !== "string") {
    return invalid("Invalid signal: 'type' must be a string");
  }

  switch (type) {
    case "hello": {
      const token = optionalString(record, "token");
      const alias = optionalString(record, "alias");
      if (token === null) {
        return invalid("Invalid hello: 'token' must be a string");
      }
      if (alias === null) {
        return invalid("Invalid hello: 'alias' must be a string");
      }
      if (alias !== undefined && alias.length > MAX_ALIAS_LENGTH) {
        return invalid(
          `Invalid hello: 'alias' is ${alias.length} characters, the maximum is ${MAX_ALIAS_LENGTH}`,
        );
      }
      const signal: HelloSignal = { type };
      if (token !== undefined) signal.token = token;
      if (alias !== undefined) signal.alias = alias;
      return { ok: true, signal };
    }

    case "auth":
    case "refresh": {
      const token = record.token;
      if (typeof token !== "string") {
        return invalid(`Invalid ${type}: 'token' must be a string`);
      }
      return { ok: true, signal: { type, token } };
    }

    case "ping": {
      const ts = record.ts;
      if (typeof ts !== "number" || !Number.isFinite(ts)) {
        return invalid("Invalid ping: 'ts' must be a finite number");
      }
      return { ok: true, signal: { type, ts } };
    }

    case "hangup": {
      const reason = optionalString(record, "reason");
      if (reason === null) {
        return invalid("Invalid hangup: 'reason' must be a string");
      }
      const signal: HangupSignal = { type };
      if (reason !== undefined) signal.reason = reason;
      return { ok: true, signal };
    }

    default:
      return { ok: true, signal: { type: "unknown", name: type } };
  }
}
