/**
 * Dials one configured peer and keeps a link to it: verifies the peer's
 * TLS certificate, authenticates it, and reconnects with exponential
 * backoff and jitter while it is down.
 *
 * @module
 */

import { verifyCertificateHashes } from "../identity/certificate_hashes.ts";
import type { RelayIdentity } from "../identity/identity.ts";
import { errorMessage, type Logger } from "../log.ts";
import type { FederationPeerOptions } from "../options.ts";
import { ControlChannel } from "./control_channel.ts";
import type { Federation } from "./federation.ts";
import { dialHandshake } from "./handshake.ts";

/** First reconnect delay, in ms. */
export const RECONNECT_INITIAL_MS = 1_000;

/** Largest reconnect delay, in ms. */
export const RECONNECT_MAX_MS = 30_000;

/** Time one dial attempt may take, from fetch to ready, in ms. */
export const DIAL_TIMEOUT_MS = 15_000;

/** Largest `/api/webtransport` response read from a peer, in bytes. */
const MAX_CERTIFICATE_INFO_BYTES = 16 * 1024;

/** Options of {@linkcode PeerDialer}. */
export interface PeerDialerInit {
  /** Returns the peer's current config entry, or undefined once removed. */
  peer: () => FederationPeerOptions | undefined;
  federation: Federation;
  identity: RelayIdentity;
  logger: Logger;
}

/** Returns `delay` with up to 50 % random jitter either way. */
function withJitter(delay: number): number {
  return Math.round(delay * (0.5 + Math.random()));
}

/** The reconnect loop of one peer. */
export class PeerDialer {
  readonly #init: PeerDialerInit;
  readonly #abort = new AbortController();
  #sleepTimer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | null = null;

  constructor(init: PeerDialerInit) {
    this.#init = init;
  }

  start(): void {
    void this.#run();
  }

  /** Stops the loop; an attempt in progress is aborted. */
  stop(): void {
    this.#abort.abort();
    clearTimeout(this.#sleepTimer);
    this.#wake?.();
  }

  async #run(): Promise<void> {
    const { federation, logger } = this.#init;
    let delay = RECONNECT_INITIAL_MS;
    let attempt = 0;
    while (!this.#abort.signal.aborted) {
      const peer = this.#init.peer();
      if (peer === undefined) return;

      if (federation.hasLink(peer.fingerprint)) {
        await federation.linkClosed(peer.fingerprint);
        delay = RECONNECT_INITIAL_MS;
        attempt = 0;
        continue;
      }

      attempt++;
      try {
        await this.#dial(peer);
        delay = RECONNECT_INITIAL_MS;
        attempt = 0;
        continue;
      } catch (error) {
        if (this.#abort.signal.aborted) return;
        federation.counters.handshakeFailures.outbound++;
        const wait = withJitter(delay);
        logger.warn("federation dial failed; retrying", {
          peer: peer.label,
          url: peer.url,
          attempt,
          retry_in_ms: wait,
          error: errorMessage(error),
        });
        await this.#sleep(wait);
        delay = Math.min(delay * 2, RECONNECT_MAX_MS);
      }
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = () => {
        this.#wake = null;
        clearTimeout(this.#sleepTimer);
        resolve();
      };
      this.#sleepTimer = setTimeout(() => this.#wake?.(), ms);
    });
  }

  async #dial(peer: FederationPeerOptions): Promise<void> {
    const signal = AbortSignal.any([
      this.#abort.signal,
      AbortSignal.timeout(DIAL_TIMEOUT_MS),
    ]);
    const options: WebTransportOptions = {};
    if (peer.httpUrl !== undefined) {
      options.serverCertificateHashes = await fetchPinnedHashes(peer, signal);
    }

    const transport = new WebTransport(peer.url, options);
    let channel: ControlChannel | null = null;
    const onAbort = () => {
      channel?.close("dial aborted");
      try {
        transport.close({ closeCode: 4408, reason: "timeout" });
      } catch {
        // Not open yet or already closed.
      }
    };
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      await transport.ready;
      const stream = await transport.createBidirectionalStream();
      channel = new ControlChannel(stream);
      const authenticated = await dialHandshake(
        channel,
        this.#init.identity,
        peer.fingerprint,
      );
      signal.throwIfAborted();
      this.#init.federation.register(
        transport,
        channel,
        authenticated.fingerprint,
        "dialler",
      );
    } catch (error) {
      onAbort();
      if (
        peer.httpUrl === undefined &&
        errorMessage(error).includes("UnknownIssuer")
      ) {
        throw new Error(
          `${errorMessage(error)}; the peer's certificate is not signed by a ` +
            "known CA, so set http_url to pin its self-signed certificate",
          { cause: error },
        );
      }
      throw error;
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }
}

/**
 * Fetches the peer's signed certificate hashes from its HTTP API and
 * returns them for pinning once the signature verifies against the
 * configured fingerprint, so the HTTP channel needs no trust.
 */
async function fetchPinnedHashes(
  peer: FederationPeerOptions,
  signal: AbortSignal,
): Promise<WebTransportHash[]> {
  const url = new URL("/api/webtransport", peer.httpUrl).href;
  let response: Response;
  try {
    response = await fetch(url, { signal, redirect: "error" });
  } catch (error) {
    const cause = error instanceof Error && error.cause !== undefined
      ? `: ${errorMessage(error.cause)}`
      : "";
    throw new Error(
      `GET ${url} failed: ${
        errorMessage(error)
      }${cause}; check the peer's http_url`,
      { cause: error },
    );
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`GET ${url} returned HTTP ${response.status}`);
  }
  const text = await readBounded(response, MAX_CERTIFICATE_INFO_BYTES, url);
  const body: unknown = JSON.parse(text);
  if (!await verifyCertificateHashes(body, peer.fingerprint)) {
    throw new Error(
      `Certificate hashes from ${url} are not signed by ${peer.fingerprint}; check the peer's fingerprint`,
    );
  }
  const hashes =
    (body as { certificateHashes: { algorithm: string; value: string }[] })
      .certificateHashes;
  return hashes.map((hash) => ({
    algorithm: hash.algorithm,
    value: Uint8Array.fromBase64(hash.value),
  }));
}

/** Reads a response body as text, failing once it passes `maxBytes`. */
async function readBounded(
  response: Response,
  maxBytes: number,
  url: string,
): Promise<string> {
  const reader = response.body?.getReader();
  if (reader === undefined) return "";

  const chunks: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    length += value.length;
    if (length > maxBytes) {
      await reader.cancel();
      throw new Error(
        `GET ${url} returned more than ${maxBytes} bytes; expected a short JSON body`,
      );
    }
    chunks.push(value);
  }

  const body = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.length;
  }
  return new TextDecoder().decode(body);
}
