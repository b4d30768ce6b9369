// Messages the page shows when a session ends, one for each close code of
// the participant protocol. WebTransport in Chromium never delivers the
// relay's close code, so the `error.code` string the relay sends just
// before closing is matched as well.

const MESSAGES = [
  {
    code: 1000,
    errorCode: "normal",
    text: "You left the room.",
  },
  {
    code: 4400,
    errorCode: "bad_request",
    text: "The relay rejected a malformed request. Check the room name: " +
      "1 to 128 bytes, without “/” or control characters.",
  },
  {
    code: 4401,
    errorCode: "unauthorized",
    text: "The relay requires a valid token: yours is missing, invalid or " +
      "expired. Enter a token in the form or add ?token= to the address.",
  },
  {
    code: 4403,
    errorCode: "forbidden",
    text: "Your token or the room's access list does not allow this room.",
  },
  {
    code: 4408,
    errorCode: "timeout",
    text: "The connection timed out: the relay got no hello in time or no " +
      "answer to its liveness checks. Check your network and join again.",
  },
  {
    code: 4409,
    errorCode: "room_full",
    text: "The room or the relay is full. Try again later or pick another " +
      "room.",
  },
  {
    code: 4413,
    errorCode: "too_large",
    text: "This page sent a message larger than the relay allows.",
  },
  {
    code: 4429,
    errorCode: "rate_limited",
    text: "This page sent packets faster than the relay's rate limit.",
  },
  {
    code: 4008,
    errorCode: "slow_consumer",
    text: "The relay disconnected this page because it fell behind reading " +
      "audio. Check your network or CPU load and join again.",
  },
  {
    code: 1011,
    errorCode: "internal_error",
    text: "The relay hit an internal error and closed this session. Join " +
      "again; if it keeps happening, tell the relay's operator.",
  },
  {
    code: 4410,
    errorCode: "kicked",
    text: "An operator removed you from the room.",
  },
  {
    code: 4503,
    errorCode: "shutting_down",
    text: "The relay is shutting down. Join again in a moment.",
  },
];

/** Close codes of the participant protocol, for callers that branch. */
export const PROTOCOL_CLOSE_CODES = Object.freeze(
  MESSAGES.map((entry) => entry.code),
);

/**
 * Returns the message for a session's end, `{ code, reason, errorCode }`
 * as the relay client reports it. Codes outside the protocol's table get a
 * generic message that shows the code and the reason.
 */
export function closeMessage({ code, reason, errorCode } = {}) {
  const entry = MESSAGES.find((candidate) => candidate.code === code) ??
    MESSAGES.find((candidate) => candidate.errorCode === errorCode);
  if (entry !== undefined) return entry.text;

  const detail = reason ? `: ${reason}` : "";
  return `The connection to the relay was lost (close code ${
    code ?? "none"
  }${detail}). Check that the relay is running and join again.`;
}

const TIMEOUT_CODE = 4408;

/**
 * Returns whether a failed join is the relay's decision about this
 * participant (a protocol close code or an `error.code`, such as 4401
 * unauthorized), which another transport would get as well. A timeout is
 * not: the relay client also reports its own connect timeout that way.
 */
export function isRelayDecision({ code, errorCode } = {}) {
  if (code === TIMEOUT_CODE || errorCode === "timeout") return false;
  return (typeof errorCode === "string" && errorCode !== "") ||
    (PROTOCOL_CLOSE_CODES.includes(code) && code !== 1000);
}
