/**
 * Close codes and the `error.code` strings that go with them. WebSocket
 * sessions close with the number; WebTransport sessions close with the
 * number and the string as the reason.
 *
 * @module
 */

/** The protocol's close reasons, each with its code and `error.code`. */
export const CLOSE = {
  normal: { code: 1000, error: "normal" },
  badRequest: { code: 4400, error: "bad_request" },
  unauthorized: { code: 4401, error: "unauthorized" },
  forbidden: { code: 4403, error: "forbidden" },
  timeout: { code: 4408, error: "timeout" },
  roomFull: { code: 4409, error: "room_full" },
  tooLarge: { code: 4413, error: "too_large" },
  rateLimited: { code: 4429, error: "rate_limited" },
  slowConsumer: { code: 4008, error: "slow_consumer" },
  kicked: { code: 4410, error: "kicked" },
  shuttingDown: { code: 4503, error: "shutting_down" },
  internalError: { code: 1011, error: "internal_error" },
} as const;

/** One entry of {@linkcode CLOSE}. */
export type CloseReason = typeof CLOSE[keyof typeof CLOSE];
