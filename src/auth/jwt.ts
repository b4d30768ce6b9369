/**
 * HS256 JSON Web Tokens (RFC 7519) for participants: verification with
 * WebCrypto HMAC SHA-256, and signing for tests, tools and benchmarks.
 *
 * Claims the relay reads:
 *
 * - `sub`: the participant's identity (string, optional).
 * - `name`: the participant's display alias (string, optional).
 * - `room`: the one room the token admits, or `"*"` for every room. A token
 *   without `room` admits every room, the same as `"*"`, so that tokens made
 *   only for identity keep working.
 * - `exp`, `nbf`: expiry and start of validity, in seconds since the epoch
 *   (numbers, fractions allowed), each checked with a clock-skew allowance.
 *
 * Other claims (`iat`, `iss`, `aud`, `jti`, ...) are ignored.
 *
 * @module
 */

/** Largest token accepted, in bytes. A valid token is ASCII only. */
export const MAX_TOKEN_BYTES = 8 * 1024;

/** Default allowance for clock differences on `exp` and `nbf`, in ms. */
export const DEFAULT_CLOCK_SKEW_MS = 30_000;

/** The one signature algorithm accepted in the header's `alg`. */
export const JWT_ALGORITHM = "HS256";

/** Claims of a verified token, in the relay's terms. */
export interface TokenClaims {
  /** The `sub` claim, or null when absent. */
  subject: string | null;
  /** The `name` claim, or null when absent. */
  alias: string | null;
  /** The `room` claim: a room name, or `"*"` (also when absent). */
  room: string;
  /** The `exp` claim in ms since the epoch, without the skew; null when absent. */
  expiresAt: number | null;
}

/** Reason a token failed verification. */
export type JwtFailureReason =
  | "malformed"
  | "bad_algorithm"
  | "bad_signature"
  | "expired"
  | "not_yet_valid";

/** Result of {@linkcode JwtVerifier.verify}. */
export type JwtResult =
  | { ok: true; claims: TokenClaims }
  | {
    ok: false;
    reason: JwtFailureReason;
    /** Description of the failure. It contains no part of the token. */
    message: string;
    /**
     * True when the signature verified with the secret, so the token comes
     * from a holder of the secret and only its claims or times failed.
     */
    signatureValid: boolean;
  };

/** Options of {@linkcode JwtVerifier.create}. */
export interface JwtVerifierOptions {
  /** Allowance for clock differences on `exp` and `nbf`, in ms. @default {30000} */
  clockSkewMs?: number;
  /** Clock in ms since the epoch, replaceable in tests. @default {Date.now} */
  now?: () => number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
const BASE64URL_PATTERN = /^[A-Za-z0-9_-]*$/;
const HMAC_SHA256 = { name: "HMAC", hash: "SHA-256" } as const;

/** Verifies HS256 tokens signed with one secret. */
export class JwtVerifier {
  #key: CryptoKey;
  #clockSkewMs: number;
  #now: () => number;

  /**
   * Imports `secret` (its UTF-8 bytes are the HMAC key) and returns a
   * verifier. Throws TypeError for an empty secret and RangeError for a
   * negative or non-finite `clockSkewMs`.
   */
  static async create(
    secret: string,
    options: JwtVerifierOptions = {},
  ): Promise<JwtVerifier> {
    const clockSkewMs = options.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS;
    if (!Number.isFinite(clockSkewMs) || clockSkewMs < 0) {
      throw new RangeError(
        `Invalid clockSkewMs: ${clockSkewMs}, expected a finite number >= 0`,
      );
    }

    const key = await importSecret(secret, ["verify"]);
    return new JwtVerifier(key, clockSkewMs, options.now ?? Date.now);
  }

  /** Use {@linkcode JwtVerifier.create}, which validates its arguments. */
  constructor(key: CryptoKey, clockSkewMs: number, now: () => number) {
    this.#key = key;
    this.#clockSkewMs = clockSkewMs;
    this.#now = now;
  }

  /**
   * Verifies `token` and returns its claims, or the reason it failed. The
   * header and the signature are checked before the payload is parsed.
   * Never throws for a malformed token.
   */
  async verify(token: string): Promise<JwtResult> {
    if (token.length > MAX_TOKEN_BYTES) {
      return fail(
        "malformed",
        `Invalid token: ${token.length} bytes, the maximum is ${MAX_TOKEN_BYTES}`,
      );
    }

    const parts = token.split(".");
    if (parts.length !== 3) {
      return fail(
        "malformed",
        `Invalid token: ${parts.length} parts separated by '.', expected 3`,
      );
    }

    const [headerText, payloadText, signatureText] = parts as [
      string,
      string,
      string,
    ];
    const headerBytes = decodeBase64Url(headerText);
    const payloadBytes = decodeBase64Url(payloadText);
    const signature = decodeBase64Url(signatureText);
    if (headerBytes === null || payloadBytes === null || signature === null) {
      return fail("malformed", "Invalid token: a part is not base64url");
    }

    const header = parseJsonObject(headerBytes);
    if (header === null) {
      return fail(
        "malformed",
        "Invalid token: the header is not a JSON object",
      );
    }

    const headerProblem = checkHeader(header);
    if (headerProblem !== null) return headerProblem;

    const signedBytes = encoder.encode(token.slice(0, token.lastIndexOf(".")));
    const signatureValid = await crypto.subtle.verify(
      "HMAC",
      this.#key,
      signature,
      signedBytes,
    );
    if (!signatureValid) {
      return fail("bad_signature", "Invalid token: the signature is not valid");
    }

    const payload = parseJsonObject(payloadBytes);
    if (payload === null) {
      return fail(
        "malformed",
        "Invalid token: the payload is not a JSON object",
        true,
      );
    }

    return this.#checkClaims(payload);
  }

  #checkClaims(payload: Record<string, unknown>): JwtResult {
    const subject = payload.sub ?? null;
    if (subject !== null && typeof subject !== "string") {
      return fail("malformed", "Invalid token: 'sub' is not a string", true);
    }

    const alias = payload.name ?? null;
    if (alias !== null && typeof alias !== "string") {
      return fail("malformed", "Invalid token: 'name' is not a string", true);
    }

    const room = payload.room ?? "*";
    if (typeof room !== "string" || room.length === 0) {
      return fail(
        "malformed",
        "Invalid token: 'room' is not a non-empty string",
        true,
      );
    }

    const expiresAt = readNumericDate(payload.exp);
    if (expiresAt === undefined) {
      return fail("malformed", "Invalid token: 'exp' is not a number", true);
    }

    const notBefore = readNumericDate(payload.nbf);
    if (notBefore === undefined) {
      return fail("malformed", "Invalid token: 'nbf' is not a number", true);
    }

    const now = this.#now();
    if (expiresAt !== null && now - this.#clockSkewMs >= expiresAt) {
      return fail(
        "expired",
        `Token expired: 'exp' is ${formatTime(expiresAt)}, ` +
          `now is ${formatTime(now)}`,
        true,
      );
    }

    if (notBefore !== null && now + this.#clockSkewMs < notBefore) {
      return fail(
        "not_yet_valid",
        `Token not yet valid: 'nbf' is ${formatTime(notBefore)}, ` +
          `now is ${formatTime(now)}`,
        true,
      );
    }

    return { ok: true, claims: { subject, alias, room, expiresAt } };
  }
}

/**
 * Signs `claims` as an HS256 token with `secret`. The signature is always
 * HMAC SHA-256, whatever `alg` the header names, so tests can build tokens with a
 * wrong `alg`. Throws TypeError for an empty secret.
 */
export async function signJwt(
  secret: string,
  claims: Record<string, unknown>,
  header: Record<string, unknown> = { alg: JWT_ALGORITHM, typ: "JWT" },
): Promise<string> {
  const key = await importSecret(secret, ["sign"]);
  const signingInput = encodeBase64Url(encoder.encode(JSON.stringify(header))) +
    "." + encodeBase64Url(encoder.encode(JSON.stringify(claims)));
  const signature = await crypto.subtle.sign(
    "HMAC",
    key,
    encoder.encode(signingInput),
  );
  return signingInput + "." + encodeBase64Url(new Uint8Array(signature));
}

function importSecret(
  secret: string,
  usages: KeyUsage[],
): Promise<CryptoKey> {
  if (typeof secret !== "string" || secret.length === 0) {
    throw new TypeError(
      "Invalid token secret: it is empty, set a secret or leave the option out",
    );
  }
  return crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    HMAC_SHA256,
    false,
    usages,
  );
}

/**
 * Returns a failure for a bad `alg`, `typ` or `crit`, or null when the
 * header is acceptable. Only `HS256` passes the `alg` check, which rules out
 * `none` and public-key algorithms whose key could be confused with the
 * secret.
 */
function checkHeader(header: Record<string, unknown>): JwtResult | null {
  const algorithm = header.alg;
  if (algorithm === undefined) {
    return fail("bad_algorithm", "Invalid token: the header has no 'alg'");
  }

  if (algorithm !== JWT_ALGORITHM) {
    return fail(
      "bad_algorithm",
      `Invalid token: 'alg' is ${describeValue(algorithm)}, ` +
        `expected "${JWT_ALGORITHM}"`,
    );
  }

  if (header.typ !== undefined && header.typ !== "JWT") {
    return fail(
      "malformed",
      `Invalid token: 'typ' is ${describeValue(header.typ)}, expected "JWT"`,
    );
  }

  // RFC 7515 requires rejecting a token whose `crit` names extensions the
  // verifier does not implement, and this verifier implements none.
  if (header.crit !== undefined) {
    return fail(
      "malformed",
      "Invalid token: the header has 'crit', no extensions are supported",
    );
  }

  return null;
}

function fail(
  reason: JwtFailureReason,
  message: string,
  signatureValid = false,
): JwtResult {
  return { ok: false, reason, message, signatureValid };
}

/**
 * Decodes unpadded base64url, or returns null for anything else: padding,
 * whitespace, other characters, or nonzero bits after the last byte. The
 * strict form means each token has exactly one encoding.
 */
function decodeBase64Url(text: string): Uint8Array<ArrayBuffer> | null {
  if (!BASE64URL_PATTERN.test(text) || text.length % 4 === 1) return null;

  const padded = text.padEnd(Math.ceil(text.length / 4) * 4, "=");
  try {
    return Uint8Array.fromBase64(padded, {
      alphabet: "base64url",
      lastChunkHandling: "strict",
    });
  } catch {
    return null;
  }
}

function encodeBase64Url(bytes: Uint8Array): string {
  return bytes.toBase64({ alphabet: "base64url", omitPadding: true });
}

/** Parses UTF-8 JSON and returns it if it is a plain object, else null. */
function parseJsonObject(bytes: Uint8Array): Record<string, unknown> | null {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch {
    return null;
  }

  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return null;
  }
  return value as Record<string, unknown>;
}

/**
 * Converts a NumericDate claim (seconds) to ms. Returns null when the claim
 * is absent and undefined when it is not a number whose ms value is finite.
 */
function readNumericDate(value: unknown): number | null | undefined {
  if (value === undefined) return null;
  if (typeof value !== "number") return undefined;

  const ms = value * 1000;
  return Number.isFinite(ms) ? ms : undefined;
}

/** Formats ms since the epoch as ISO 8601, or as a number when out of range. */
function formatTime(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? `${ms} ms` : date.toISOString();
}

/** Quotes a header value for a message, cut short so it cannot flood a log. */
function describeValue(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 40 ? text.slice(0, 37) + "..." : text;
}
