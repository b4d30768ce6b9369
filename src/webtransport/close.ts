/**
 * Closing WebTransport sessions so that every client learns why.
 *
 * Measured with Deno 2.9.6 and Chromium 156 on loopback: a Deno client
 * sees the close code and reason that the server passes to `close()`.
 * Chromium never does, because its `closed` rejects with "Connection
 * lost". An `error` signal written right before `close()` is lost too. So
 * the relay writes the `error` signal, waits up to
 * {@linkcode PEER_CLOSE_WAIT_MS} for the client to close the session
 * itself, and only then closes it with the code.
 *
 * @module
 */

import { CLOSE, type CloseReason } from "../wire/close_codes.ts";
import { encodeFrame } from "../wire/stream_framing.ts";

/**
 * Time the relay waits for a client to close the session after the
 * `error` signal before it closes the session itself, in ms.
 */
export const PEER_CLOSE_WAIT_MS = 1_000;

/**
 * Time a rejected session has to open its signal stream, so that it can
 * receive the `error` signal, in ms.
 */
export const REJECT_STREAM_WAIT_MS = 1_000;

/** A server-side WebTransport session, as `upgradeWebTransport` returns it. */
export type ServerWebTransport = WebTransport & { url: string };

const encoder = new TextEncoder();

/** Encodes an `error` signal as a stream frame. */
export function encodeErrorFrame(
  reason: CloseReason,
  message: string,
): Uint8Array {
  const signal = { type: "error", code: reason.error, message };
  return encodeFrame(encoder.encode(JSON.stringify(signal)));
}

/**
 * Resolves with true when `promise` settles within `ms`, else with false.
 * Clears its timer either way and never rejects.
 */
export async function settlesWithin(
  promise: Promise<unknown>,
  ms: number,
): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([
      promise.then(() => true, () => true),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Closes `wt` with `code` and `reason`. Unless the close is normal (1000),
 * it first waits up to `peerWaitMs` for the client to close, so that the
 * `error` signal sent before has time to arrive. Resolves once the session
 * is closed; never rejects.
 */
export async function closeSession(
  wt: ServerWebTransport,
  code: number,
  reason: string,
  peerWaitMs = PEER_CLOSE_WAIT_MS,
): Promise<void> {
  if (code !== CLOSE.normal.code) {
    await settlesWithin(wt.closed, peerWaitMs);
  }
  try {
    wt.close({ closeCode: code, reason });
  } catch {
    // The client or the endpoint closed the session first.
  }
  await wt.closed.catch(() => {});
}

/**
 * Rejects a session before it becomes a participant: waits up to
 * {@linkcode REJECT_STREAM_WAIT_MS} for the client's first bidirectional
 * stream, writes the `error` signal on it, then closes with the reason's
 * code as {@linkcode closeSession} does. Never rejects.
 */
export async function rejectSession(
  wt: ServerWebTransport,
  reason: CloseReason,
  message: string,
): Promise<void> {
  const streams = wt.incomingBidirectionalStreams.getReader();
  const next = streams.read();
  next.catch(() => {});
  if (await settlesWithin(next, REJECT_STREAM_WAIT_MS)) {
    const result = await next.catch(() => undefined);
    const stream = result?.done === false ? result.value : undefined;
    if (stream !== undefined) {
      const writer = stream.writable.getWriter();
      await writer.write(encodeErrorFrame(reason, message)).catch(() => {});
    }
  }
  streams.releaseLock();
  await closeSession(wt, reason.code, reason.error);
}
