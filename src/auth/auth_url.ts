/**
 * Token validation by an external HTTP service, in the WarzonePhone
 * convention: the relay POSTs `{"token": "..."}` as JSON, and the service
 * accepts the token with a 2xx JSON response
 * `{"valid": true, "fingerprint"?: string, "alias"?: string,
 * "room"?: string, "expires_at"?: number}`, where `expires_at` is in seconds
 * since the epoch and a missing `room` admits every room.
 *
 * Every other outcome rejects the token (fail closed). The result
 * distinguishes a "rejected" token, when the service responded with anything
 * but an acceptance, from an "unavailable" service: a network error, a
 * time-out, 5xx, 408 or 429, or too many requests in flight. The two are
 * counted apart.
 *
 * @module
 */

import { errorMessage } from "../log.ts";

/** Default time limit of one request, body included, in ms. */
export const DEFAULT_AUTH_TIMEOUT_MS = 5_000;

/** Default maximum size of the response body read, in bytes. */
export const MAX_AUTH_RESPONSE_BYTES = 16 * 1024;

/** Default number of requests to the service in flight at once. */
export const DEFAULT_MAX_CONCURRENT_AUTH_REQUESTS = 64;

/** Identity fields the service returned for an accepted token. */
export interface AuthUrlAcceptance {
  fingerprint: string | null;
  alias: string | null;
  /** A room name, or `"*"` (also when the response has no `room`). */
  room: string;
  /** `expires_at` in ms since the epoch, or null when absent. */
  expiresAt: number | null;
}

/** Result of {@linkcode AuthUrlClient.validate}. */
export type AuthUrlResult =
  | { ok: true; acceptance: AuthUrlAcceptance }
  | {
    ok: false;
    /**
     * "rejected" when the service rejected the token, "unavailable" when no
     * usable response arrived.
     */
    reason: "rejected" | "unavailable";
    /** Details for the log; may name the service's origin, never the token. */
    message: string;
  };

/** Options of {@linkcode AuthUrlClient}. */
export interface AuthUrlClientOptions {
  /** Time limit of one request, body included, in ms. @default {5000} */
  timeoutMs?: number;
  /** Maximum size of the response body read, in bytes. @default {16384} */
  maxResponseBytes?: number;
  /** Requests in flight at once; more are "unavailable". @default {64} */
  maxConcurrentRequests?: number;
  /** The fetch function, replaceable by embedders. @default {globalThis.fetch} */
  fetch?: typeof fetch;
}

/** Asks one auth URL whether tokens are valid. */
export class AuthUrlClient {
  #url: URL;
  #timeoutMs: number;
  #maxResponseBytes: number;
  #maxConcurrentRequests: number;
  #fetch: typeof fetch;
  #inFlight = 0;

  /**
   * Throws TypeError when `url` is not an http or https URL and RangeError
   * when a limit is not a positive number.
   */
  constructor(url: string, options: AuthUrlClientOptions = {}) {
    this.#url = parseAuthUrl(url);
    this.#timeoutMs = checkPositive(
      "timeoutMs",
      options.timeoutMs ?? DEFAULT_AUTH_TIMEOUT_MS,
    );
    this.#maxResponseBytes = checkPositive(
      "maxResponseBytes",
      options.maxResponseBytes ?? MAX_AUTH_RESPONSE_BYTES,
    );
    this.#maxConcurrentRequests = checkPositive(
      "maxConcurrentRequests",
      options.maxConcurrentRequests ?? DEFAULT_MAX_CONCURRENT_AUTH_REQUESTS,
    );
    this.#fetch = options.fetch ?? fetch;
  }

  /** Origin of the auth URL, for logs; the path and query may hold secrets. */
  get origin(): string {
    return this.#url.origin;
  }

  /** POSTs `token` to the service and interprets its response. Never throws. */
  async validate(token: string): Promise<AuthUrlResult> {
    if (this.#inFlight >= this.#maxConcurrentRequests) {
      return unavailable(
        `Auth URL ${this.origin} has ${this.#inFlight} requests in flight, ` +
          `the maximum is ${this.#maxConcurrentRequests}`,
      );
    }

    this.#inFlight++;
    try {
      return await this.#request(token);
    } finally {
      this.#inFlight--;
    }
  }

  async #request(token: string): Promise<AuthUrlResult> {
    const signal = AbortSignal.timeout(this.#timeoutMs);
    let response: Response;
    try {
      response = await this.#fetch(this.#url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "accept": "application/json",
        },
        body: JSON.stringify({ token }),
        // A redirect is a response that is not an acceptance. Following it
        // would send the token to a host the operator did not configure.
        redirect: "manual",
        signal,
      });
    } catch (error) {
      return unavailable(this.#describeFailure(error));
    }

    const status = response.status;
    if (status >= 500 || status === 408 || status === 429) {
      await discardBody(response);
      return unavailable(`Auth URL ${this.origin} returned status ${status}`);
    }

    if (status < 200 || status > 299) {
      await discardBody(response);
      return rejected(`Auth URL ${this.origin} returned status ${status}`);
    }

    const declaredLength = Number(response.headers.get("content-length"));
    if (declaredLength > this.#maxResponseBytes) {
      await discardBody(response);
      return this.#tooLarge();
    }

    let body: Uint8Array | null;
    try {
      body = await readBody(response.body, this.#maxResponseBytes);
    } catch (error) {
      return unavailable(this.#describeFailure(error));
    }

    if (body === null) return this.#tooLarge();
    return interpretResponseBody(body, this.origin);
  }

  #tooLarge(): AuthUrlResult {
    return rejected(
      `Auth URL ${this.origin} returned a body over ` +
        `${this.#maxResponseBytes} bytes`,
    );
  }

  #describeFailure(error: unknown): string {
    if (error instanceof DOMException && error.name === "TimeoutError") {
      return `Auth URL ${this.origin} timed out after ${this.#timeoutMs} ms`;
    }
    return `Auth URL ${this.origin} request failed: ${errorMessage(error)}`;
  }
}

function parseAuthUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(
      `Invalid auth URL: ${JSON.stringify(url)} is not a URL, ` +
        `expected http(s)://host/path`,
    );
  }

  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new TypeError(
      `Invalid auth URL: scheme ${JSON.stringify(parsed.protocol)} ` +
        `is not supported, use http: or https:`,
    );
  }
  return parsed;
}

function checkPositive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(
      `Invalid ${name}: ${value}, expected a finite number > 0`,
    );
  }
  return value;
}

function rejected(message: string): AuthUrlResult {
  return { ok: false, reason: "rejected", message };
}

function unavailable(message: string): AuthUrlResult {
  return { ok: false, reason: "unavailable", message };
}

/** Cancels an unread body so that its connection is released. */
async function discardBody(response: Response): Promise<void> {
  try {
    await response.body?.cancel();
  } catch {
    // The body already failed, and the token is rejected either way.
  }
}

/**
 * Reads `body` chunk by chunk and returns its bytes, or null as soon as it
 * grows past `limit` (the rest is cancelled, never buffered). Throws when
 * the stream fails, for example on time-out.
 */
async function readBody(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
): Promise<Uint8Array | null> {
  if (body === null) return new Uint8Array(0);

  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;

      size += value.byteLength;
      if (size > limit) {
        await reader.cancel();
        return null;
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }

  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/** Turns a 2xx body into an acceptance, or a rejection naming the flaw. */
function interpretResponseBody(
  body: Uint8Array,
  origin: string,
): AuthUrlResult {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(body));
  } catch {
    return rejected(`Auth URL ${origin} returned a body that is not JSON`);
  }

  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return rejected(`Auth URL ${origin} returned JSON that is not an object`);
  }

  const fields = parsed as Record<string, unknown>;
  if (fields.valid !== true) {
    return rejected(`Auth URL ${origin} returned no "valid": true`);
  }

  const fingerprint = readOptionalString(fields.fingerprint);
  if (fingerprint === undefined) {
    return rejected(`Auth URL ${origin} returned a 'fingerprint' not a string`);
  }

  const alias = readOptionalString(fields.alias);
  if (alias === undefined) {
    return rejected(`Auth URL ${origin} returned an 'alias' not a string`);
  }

  const room = fields.room ?? "*";
  const expiresAtSeconds = fields.expires_at ?? null;
  if (typeof room !== "string" || room.length === 0) {
    return rejected(
      `Auth URL ${origin} returned a 'room' that is not a non-empty string`,
    );
  }

  let expiresAt: number | null = null;
  if (expiresAtSeconds !== null) {
    expiresAt = typeof expiresAtSeconds === "number"
      ? expiresAtSeconds * 1000
      : NaN;
    if (!Number.isFinite(expiresAt)) {
      return rejected(
        `Auth URL ${origin} returned an 'expires_at' that is not a number`,
      );
    }
  }

  return {
    ok: true,
    acceptance: {
      fingerprint,
      alias,
      room,
      expiresAt,
    },
  };
}

/** Returns null for null or absent, the string, or undefined for others. */
function readOptionalString(value: unknown): string | null | undefined {
  if (value === undefined || value === null) return null;
  return typeof value === "string" ? value : undefined;
}
