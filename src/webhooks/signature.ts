/**
 * The `X-Relay-Signature` header of webhook requests:
 * `sha256=<hex HMAC-SHA256 of the exact body bytes>`, keyed with the UTF-8
 * bytes of `--webhook-secret`.
 *
 * @module
 */

/** Name of the signature header. */
export const SIGNATURE_HEADER = "X-Relay-Signature";

/** Prefix of the header value, naming the hash. */
export const SIGNATURE_PREFIX = "sha256=";

const encoder = new TextEncoder();

/** Signs webhook bodies with one secret; the key is imported once. */
export class WebhookSigner {
  readonly #key: Promise<CryptoKey>;

  /** Throws a TypeError when `secret` is empty. */
  constructor(secret: string) {
    if (secret === "") {
      throw new TypeError(
        "Invalid webhook secret: it is empty; set a random string of at " +
          "least 32 bytes or leave the secret unset",
      );
    }
    this.#key = importKey(secret, ["sign"]);
  }

  /** Returns the header value for `body`: `sha256=` and 64 hex digits. */
  async sign(body: string): Promise<string> {
    const mac = await crypto.subtle.sign(
      "HMAC",
      await this.#key,
      encoder.encode(body),
    );
    return SIGNATURE_PREFIX + toHex(new Uint8Array(mac));
  }
}

/**
 * Checks a signature header against `body` in constant time, as a receiver
 * does. Returns false for a header that is missing or malformed.
 */
export async function verifyWebhookSignature(
  secret: string,
  body: string,
  header: string | null,
): Promise<boolean> {
  if (header === null || !header.startsWith(SIGNATURE_PREFIX)) return false;
  const hex = header.slice(SIGNATURE_PREFIX.length);
  if (!/^[0-9a-f]{64}$/.test(hex)) return false;

  const mac = new Uint8Array(32);
  for (let i = 0; i < mac.length; i++) {
    mac[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  }
  return await crypto.subtle.verify(
    "HMAC",
    await importKey(secret, ["verify"]),
    mac,
    encoder.encode(body),
  );
}

function importKey(secret: string, usages: KeyUsage[]): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    usages,
  );
}

function toHex(bytes: Uint8Array): string {
  let hex = "";
  for (const byte of bytes) hex += byte.toString(16).padStart(2, "0");
  return hex;
}
