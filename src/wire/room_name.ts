/**
 * Room names: one percent-decoded path segment of 1 to 128 UTF-8 bytes with
 * no control characters and no `/`. Names starting with `_` are reserved for
 * the relay itself.
 *
 * @module
 */

/** A validated room name, made only by {@linkcode parseRoomName}. */
export type RoomName = string & { readonly __brand: "RoomName" };

/** Largest room name, in UTF-8 bytes. */
export const MAX_ROOM_NAME_BYTES = 128;

const encoder = new TextEncoder();

// C0 controls, DEL and C1 controls.
// deno-lint-ignore no-control-regex
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;

/** Result of {@linkcode parseRoomName}. */
export type RoomNameResult =
  | { ok: true; name: RoomName }
  | { ok: false; message: string };

/**
 * Validates an already decoded room name. Reserved names (leading `_`) are
 * rejected unless `allowReserved` is set.
 */
export function parseRoomName(
  name: string,
  allowReserved = false,
): RoomNameResult {
  if (name.length === 0) {
    return { ok: false, message: "Invalid room name: it is empty" };
  }

  const bytes = encoder.encode(name).length;
  if (bytes > MAX_ROOM_NAME_BYTES) {
    return {
      ok: false,
      message:
        `Invalid room name: ${bytes} bytes, the maximum is ${MAX_ROOM_NAME_BYTES}`,
    };
  }

  if (name.includes("/")) {
    return { ok: false, message: "Invalid room name: it contains '/'" };
  }

  if (CONTROL_CHARACTER.test(name)) {
    return {
      ok: false,
      message: "Invalid room name: it contains a control character",
    };
  }

  // A lone surrogate would not survive the UTF-8 round trip.
  if (!name.isWellFormed()) {
    return { ok: false, message: "Invalid room name: it is not valid UTF-8" };
  }

  if (!allowReserved && name.startsWith("_")) {
    return {
      ok: false,
      message: `Invalid room name: names starting with '_' are reserved`,
    };
  }

  return { ok: true, name: name as RoomName };
}

/**
 * Decodes one percent-encoded path segment and validates it as a room name.
 */
export function parseRoomSegment(segment: string): RoomNameResult {
  let decoded: string;
  try {
    decoded = decodeURIComponent(segment);
  } catch {
    return {
      ok: false,
      message: `Invalid room name: ${
        JSON.stringify(segment)
      } is not valid percent-encoded UTF-8`,
    };
  }
  return parseRoomName(decoded);
}
