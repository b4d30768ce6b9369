/**
 * The relay's one entry for participant authentication. It combines the
 * HS256 verifier (`--token-secret`) and the auth URL (`--auth-url`) into
 * one decision per join: accepted with an identity, or rejected with the
 * close code to use.
 *
 * @module
 */

import type { RoomName } from "../wire/room_name.ts";
import { type Logger, silentLogger } from "../log.ts";
import { AuthUrlClient } from "./auth_url.ts";
import {
  DEFAULT_CLOCK_SKEW_MS,
  JwtVerifier,
  MAX_TOKEN_BYTES,
  type TokenClaims,
} from "./jwt.ts";

/**
 * Secret length below which the relay warns. RFC 7518 (section 3.2) requires
 * an HS256 key of at least 256 bits. Shorter secrets still work, so
 * that existing deployments can start.
 */
export const MIN_RECOMMENDED_SECRET_BYTES = 32;

/** Identity of a participant, taken from its token or the auth URL. */
export interface AuthIdentity {
  /** JWT `sub`; null for the auth URL and for an open relay. */
  subject: string | null;
  /** JWT `name` or the auth URL's `alias`. */
  alias: string | null;
  /** The auth URL's `fingerprint`; null for JWTs and an open relay. */
  fingerprint: string | null;
}

/**
 * Decision on one join. `code` is the protocol's `error.code` (close 4401
 * or 4403), `result` is the label for `wzp_relay_auth_attempts_total`, and
 * `message` is safe to send to the client: it never contains the token, the
 * secret or the auth URL.
 */
export type AuthOutcome =
  | { ok: true; identity: AuthIdentity; expiresAt: number | null }
  | {
    ok: false;
    code: "unauthorized" | "forbidden";
    message: string;
    result: "invalid" | "expired" | "forbidden" | "unavailable" | "missing";
  };

/** Checks participant tokens against the configured secret and auth URL. */
export interface Authenticator {
  /** False when neither secret nor URL is configured (open relay). */
  readonly required: boolean;
  /** Decides whether `token` admits its holder to `room`. Never throws. */
  authenticate(token: string | undefined, room: RoomName): Promise<AuthOutcome>;
}

/** Options of {@linkcode createAuthenticator}. */
export interface AuthenticatorOptions {
  /** HS256 secret; its UTF-8 bytes are the HMAC key. */
  tokenSecret?: string;
  /** URL that validates tokens by POST. */
  authUrl?: string;
  /** Time limit of one auth-URL request, in ms. @default {5000} */
  authTimeoutMs?: number;
  /** Auth-URL requests in flight at once. @default {64} */
  authMaxConcurrentRequests?: number;
  /** Allowance for clock differences on expiry times, in ms. @default {30000} */
  clockSkewMs?: number;
  /** Clock in ms since the epoch, replaceable in tests. @default {Date.now} */
  now?: () => number;
  /** @default {silentLogger} */
  logger?: Logger;
  /** The fetch function for the auth URL. @default {globalThis.fetch} */
  fetch?: typeof fetch;
}

const OPEN_OUTCOME: AuthOutcome = Object.freeze({
  ok: true,
  identity: Object.freeze({ subject: null, alias: null, fingerprint: null }),
  expiresAt: null,
});

/**
 * Creates the authenticator for the configured secret and URL. With neither,
 * the relay is open: every join is accepted with a null identity and any
 * token is ignored unread.
 *
 * With both a secret and a URL, a token is first verified as a JWT. When it
 * is not a JWT signed with the secret (malformed, another algorithm, or a
 * signature that does not match), the URL decides. A token whose signature
 * matches the secret is never sent to the URL, so an expired or
 * not-yet-valid JWT of this relay fails without a network round trip.
 *
 * Throws TypeError for an empty secret or a URL that is not http(s), and
 * RangeError for a limit that is out of range.
 */
export async function createAuthenticator(
  options: AuthenticatorOptions = {},
): Promise<Authenticator> {
  const logger = (options.logger ?? silentLogger).child("auth");
  const now = options.now ?? Date.now;
  const clockSkewMs = options.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS;

  const verifier = options.tokenSecret === undefined
    ? null
    : await JwtVerifier.create(options.tokenSecret, { clockSkewMs, now });
  const client = options.authUrl === undefined ? null : new AuthUrlClient(
    options.authUrl,
    {
      timeoutMs: options.authTimeoutMs,
      maxConcurrentRequests: options.authMaxConcurrentRequests,
      fetch: options.fetch,
    },
  );

  if (verifier === null && client === null) {
    return {
      required: false,
      authenticate: () => Promise.resolve(OPEN_OUTCOME),
    };
  }

  const secretBytes = new TextEncoder().encode(options.tokenSecret ?? "")
    .length;
  if (verifier !== null && secretBytes < MIN_RECOMMENDED_SECRET_BYTES) {
    logger.warn("Token secret is shorter than recommended", {
      bytes: secretBytes,
      recommended: MIN_RECOMMENDED_SECRET_BYTES,
    });
  }

  return new TokenAuthenticator(verifier, client, logger, now, clockSkewMs);
}

class TokenAuthenticator implements Authenticator {
  readonly required = true;
  #verifier: JwtVerifier | null;
  #client: AuthUrlClient | null;
  #logger: Logger;
  #now: () => number;
  #clockSkewMs: number;

  constructor(
    verifier: JwtVerifier | null,
    client: AuthUrlClient | null,
    logger: Logger,
    now: () => number,
    clockSkewMs: number,
  ) {
    this.#verifier = verifier;
    this.#client = client;
    this.#logger = logger;
    this.#now = now;
    this.#clockSkewMs = clockSkewMs;
  }

  async authenticate(
    token: string | undefined,
    room: RoomName,
  ): Promise<AuthOutcome> {
    if (token === undefined || token === "") {
      return this.#reject("unauthorized", "missing", "Token missing", room);
    }

    // The auth URL gets the same size limit as JWTs, so that a client
    // cannot make the relay forward a huge body to the service.
    if (token.length > MAX_TOKEN_BYTES) {
      return this.#reject(
        "unauthorized",
        "invalid",
        `Token invalid: ${token.length} bytes, the maximum is ${MAX_TOKEN_BYTES}`,
        room,
      );
    }

    if (this.#verifier !== null) {
      const verified = await this.#verifier.verify(token);
      if (verified.ok) return this.#admitJwt(verified.claims, room);

      if (this.#client === null || verified.signatureValid) {
        const result = verified.reason === "expired" ? "expired" : "invalid";
        return this.#reject("unauthorized", result, verified.message, room, {
          reason: verified.reason,
        });
      }
    }

    // Without a verifier there is a client: createAuthenticator builds this
    // class only when at least one of the two is configured.
    return await this.#askUrl(this.#client!, token, room);
  }

  #admitJwt(claims: TokenClaims, room: RoomName): AuthOutcome {
    if (!roomAllowed(claims.room, room)) {
      return this.#reject(
        "forbidden",
        "forbidden",
        "Token does not allow this room",
        room,
        { subject: claims.subject, allowed_room: claims.room },
      );
    }

    return {
      ok: true,
      identity: {
        subject: claims.subject,
        alias: claims.alias,
        fingerprint: null,
      },
      expiresAt: claims.expiresAt,
    };
  }

  async #askUrl(
    client: AuthUrlClient,
    token: string,
    room: RoomName,
  ): Promise<AuthOutcome> {
    const validation = await client.validate(token);
    if (!validation.ok) {
      if (validation.reason === "unavailable") {
        this.#logger.warn("Auth URL unavailable, token rejected", {
          room,
          error: validation.message,
        });
        return {
          ok: false,
          code: "unauthorized",
          result: "unavailable",
          message: "Authentication service unavailable, try again later",
        };
      }

      return this.#reject(
        "unauthorized",
        "invalid",
        "Token rejected by the authentication service",
        room,
        { reason: validation.message },
      );
    }

    const acceptance = validation.acceptance;
    const expiresAt = acceptance.expiresAt;
    if (expiresAt !== null && this.#now() - this.#clockSkewMs >= expiresAt) {
      return this.#reject(
        "unauthorized",
        "expired",
        "Token expired according to the authentication service",
        room,
      );
    }

    if (!roomAllowed(acceptance.room, room)) {
      return this.#reject(
        "forbidden",
        "forbidden",
        "Token does not allow this room",
        room,
        { fingerprint: acceptance.fingerprint, allowed_room: acceptance.room },
      );
    }

    return {
      ok: true,
      identity: {
        subject: null,
        alias: acceptance.alias,
        fingerprint: acceptance.fingerprint,
      },
      expiresAt,
    };
  }

  #reject(
    code: "unauthorized" | "forbidden",
    result: "invalid" | "expired" | "forbidden" | "missing",
    message: string,
    room: RoomName,
    fields: Record<string, string | null> = {},
  ): AuthOutcome {
    this.#logger.debug("Token rejected", { room, result, message, ...fields });
    return { ok: false, code, result, message };
  }
}

function roomAllowed(allowed: string, room: RoomName): boolean {
  return allowed === "*" || allowed === room;
}
