/**
 * Federation control messages: JSON frames on the first bidirectional
 * stream of a link, `[u32 big-endian length][UTF-8 JSON]` like participant
 * signals. Every message from a peer is validated here before use.
 *
 * @module
 */

/** Version of the federation protocol. */
export const FEDERATION_PROTOCOL_VERSION = 1;

/** Largest control frame, in bytes. */
export const MAX_CONTROL_FRAME_BYTES = 1024 * 1024;

/** Maximum number of participants in one room announcement. */
export const MAX_ANNOUNCED_PARTICIPANTS = 10_000;

/** Most relays on an announced path, which bounds the federation's depth. */
export const MAX_PATH_LENGTH = 16;

/** A participant as announced to a peer. */
export interface AnnouncedParticipant {
  /** Globally unique id: origin fingerprint, `/`, id at the origin. */
  id: string;
  /** Name of this participant on the link, used in media datagrams. */
  handle: number;
  alias: string | null;
  fingerprint: string | null;
  /** Label the announcer has for the participant's relay, or null for its own participants. */
  origin_label: string | null;
  /** Fingerprints of the relays from the origin to the announcer, in order. */
  path: string[];
}

/** Every control message. */
export type ControlMessage =
  | {
    type: "hello";
    version: number;
    fingerprint: string;
    public_key: string;
    nonce: string;
  }
  | {
    type: "welcome";
    fingerprint: string;
    public_key: string;
    nonce: string;
    signature: string;
  }
  | { type: "auth"; signature: string }
  | { type: "ready" }
  | {
    type: "room";
    room: string;
    participants: AnnouncedParticipant[];
    /** Handles of the receiver's announcements whose media the sender wants. */
    want: number[];
  }
  | { type: "ping"; ts: number }
  | { type: "pong"; ts: number }
  | { type: "error"; code: string; message: string };

/** Raised for a control message that does not follow the format. */
export class ControlMessageError extends TypeError {
  constructor(message: string) {
    super(message);
    this.name = "ControlMessageError";
  }
}

function fail(message: string): never {
  throw new ControlMessageError(`Invalid federation message: ${message}`);
}

function string(
  record: Record<string, unknown>,
  key: string,
  max = 1024,
): string {
  const value = record[key];
  if (typeof value !== "string" || value.length > max) {
    fail(`'${key}' must be a string of at most ${max} characters`);
  }
  return value;
}

function nullableString(
  record: Record<string, unknown>,
  key: string,
  max = 256,
): string | null {
  const value = record[key];
  if (value === null || value === undefined) return null;
  if (typeof value !== "string" || value.length > max) {
    fail(`'${key}' must be null or a string of at most ${max} characters`);
  }
  return value;
}

function u32(value: unknown, key: string): number {
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < 0 ||
    value > 0xffffffff
  ) {
    fail(`'${key}' must be an unsigned 32-bit integer`);
  }
  return value;
}

function participant(value: unknown): AnnouncedParticipant {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail("each participant must be an object");
  }
  const record = value as Record<string, unknown>;
  const path = record.path;
  if (
    !Array.isArray(path) || path.length === 0 ||
    path.length > MAX_PATH_LENGTH ||
    !path.every((hop) => typeof hop === "string" && hop.length <= 64)
  ) {
    fail(`'path' must be 1 to ${MAX_PATH_LENGTH} fingerprints`);
  }
  return {
    id: string(record, "id", 256),
    handle: u32(record.handle, "handle"),
    alias: nullableString(record, "alias"),
    fingerprint: nullableString(record, "fingerprint"),
    origin_label: nullableString(record, "origin_label"),
    path: path as string[],
  };
}

/** Parses and validates one control frame. Throws {@linkcode ControlMessageError}. */
export function parseControlMessage(text: string): ControlMessage {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    fail("not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail("expected a JSON object");
  }

  const record = value as Record<string, unknown>;
  switch (record.type) {
    case "hello":
      return {
        type: "hello",
        version: u32(record.version, "version"),
        fingerprint: string(record, "fingerprint", 64),
        public_key: string(record, "public_key", 64),
        nonce: string(record, "nonce", 64),
      };
    case "welcome":
      return {
        type: "welcome",
        fingerprint: string(record, "fingerprint", 64),
        public_key: string(record, "public_key", 64),
        nonce: string(record, "nonce", 64),
        signature: string(record, "signature", 128),
      };
    case "auth":
      return { type: "auth", signature: string(record, "signature", 128) };
    case "ready":
      return { type: "ready" };
    case "room": {
      const participants = record.participants;
      const want = record.want;
      if (
        !Array.isArray(participants) ||
        participants.length > MAX_ANNOUNCED_PARTICIPANTS
      ) {
        fail(
          `'participants' must be an array of at most ${MAX_ANNOUNCED_PARTICIPANTS}`,
        );
      }
      if (!Array.isArray(want) || want.length > MAX_ANNOUNCED_PARTICIPANTS) {
        fail(
          `'want' must be an array of at most ${MAX_ANNOUNCED_PARTICIPANTS}`,
        );
      }
      return {
        type: "room",
        room: string(record, "room", 512),
        participants: participants.map(participant),
        want: want.map((handle) => u32(handle, "want")),
      };
    }
    case "ping":
    case "pong": {
      const ts = record.ts;
      if (typeof ts !== "number" || !Number.isFinite(ts)) {
        fail("'ts' must be a finite number");
      }
      return { type: record.type, ts };
    }
    case "error":
      return {
        type: "error",
        code: string(record, "code", 64),
        message: string(record, "message", 1024),
      };
    default:
      fail(`unknown type ${JSON.stringify(record.type)}`);
  }
}
