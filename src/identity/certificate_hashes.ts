/**
 * Certificate hashes signed with the relay's identity key, as published by
 * `GET /api/webtransport`, so that a peer relay can pin a rotating
 * self-signed certificate without trusting the HTTP channel.
 *
 * The signed bytes are the UTF-8 encoding of
 * {@linkcode CERTIFICATE_HASHES_SIGNATURE_CONTEXT} followed by
 * `JSON.stringify` of the hash list in published order, each entry written
 * as `{"algorithm":"sha-256","value":"<base64>"}` with exactly these two
 * keys in this order. The context prefix keeps a signature over hashes from
 * being replayed as a signature over any other message of the identity key.
 *
 * @module
 */

import type { CertificateHash } from "./certificate.ts";
import {
  computeFingerprint,
  ED25519_PUBLIC_KEY_BYTES,
  ED25519_SIGNATURE_BYTES,
  parseFingerprint,
  type RelayIdentity,
  verifyIdentitySignature,
} from "./identity.ts";

/** Prefix of the signed bytes; ends with a newline. */
export const CERTIFICATE_HASHES_SIGNATURE_CONTEXT =
  "voice-relay certificate-hashes v1\n";

/** Most certificate hashes a peer's signed list may contain. */
export const MAX_CERTIFICATE_HASHES = 8;

/** Length of a SHA-256 digest, in bytes. */
const SHA256_BYTES = 32;

const encoder = new TextEncoder();

/** Signed fields of the `GET /api/webtransport` response. */
export interface SignedCertificateHashes {
  certificateHashes: CertificateHash[];
  /** Fingerprint of `public_key`. */
  fingerprint: string;
  /** Raw Ed25519 public key, base64. */
  public_key: string;
  /** Ed25519 signature over the signed bytes, base64. */
  signature: string;
}

/** Encodes the bytes that {@linkcode signCertificateHashes} signs. */
export function encodeCertificateHashesForSigning(
  hashes: readonly CertificateHash[],
): Uint8Array<ArrayBuffer> {
  const canonical = hashes.map((hash) => ({
    algorithm: hash.algorithm,
    value: hash.value,
  }));
  return encoder.encode(
    CERTIFICATE_HASHES_SIGNATURE_CONTEXT + JSON.stringify(canonical),
  );
}

/** Signs a certificate hash list; returns the signature in base64. */
export async function signCertificateHashes(
  identity: RelayIdentity,
  hashes: readonly CertificateHash[],
): Promise<string> {
  const signature = await identity.sign(
    encodeCertificateHashesForSigning(hashes),
  );
  return signature.toBase64();
}

/**
 * Builds the signed fields of the `GET /api/webtransport` response for
 * `hashes`.
 */
export async function createSignedCertificateHashes(
  identity: RelayIdentity,
  hashes: readonly CertificateHash[],
): Promise<SignedCertificateHashes> {
  return {
    certificateHashes: hashes.map((hash) => ({ ...hash })),
    fingerprint: identity.fingerprint,
    public_key: identity.publicKeyBase64,
    signature: await signCertificateHashes(identity, hashes),
  };
}

/**
 * Verifies a peer's signed certificate hash list (a parsed JSON body of
 * `GET /api/webtransport`): the public key must have `expectedFingerprint`,
 * the body's `fingerprint` must equal it, every hash must be a base64
 * SHA-256 digest, and the signature must verify. Returns false on any
 * mismatch or malformed field. Throws a `TypeError` only when
 * `expectedFingerprint` itself is malformed, because that is a
 * configuration error.
 */
export async function verifyCertificateHashes(
  body: unknown,
  expectedFingerprint: string,
): Promise<boolean> {
  const expected = parseFingerprint(expectedFingerprint);
  if (typeof body !== "object" || body === null) return false;
  const fields = body as Partial<
    Record<keyof SignedCertificateHashes, unknown>
  >;

  const hashes = fields.certificateHashes;
  if (!Array.isArray(hashes) || hashes.length === 0) return false;
  if (hashes.length > MAX_CERTIFICATE_HASHES) return false;
  if (!hashes.every(isCertificateHash)) return false;

  if (typeof fields.fingerprint !== "string") return false;
  if (fields.fingerprint.toLowerCase() !== expected) return false;

  const publicKey = decodeBase64(fields.public_key, ED25519_PUBLIC_KEY_BYTES);
  const signature = decodeBase64(fields.signature, ED25519_SIGNATURE_BYTES);
  if (publicKey === undefined || signature === undefined) return false;
  if (await computeFingerprint(publicKey) !== expected) return false;

  return await verifyIdentitySignature(
    publicKey,
    encodeCertificateHashesForSigning(hashes),
    signature,
  );
}

/**
 * Converts published hashes to the form `new WebTransport(url,
 * { serverCertificateHashes })` takes, with the digest as bytes.
 */
export function toServerCertificateHashes(
  hashes: readonly CertificateHash[],
): { algorithm: "sha-256"; value: Uint8Array<ArrayBuffer> }[] {
  return hashes.map((hash) => ({
    algorithm: "sha-256",
    value: Uint8Array.fromBase64(hash.value),
  }));
}

function isCertificateHash(value: unknown): value is CertificateHash {
  if (typeof value !== "object" || value === null) return false;
  const hash = value as Record<string, unknown>;
  return hash.algorithm === "sha-256" &&
    decodeBase64(hash.value, SHA256_BYTES) !== undefined;
}

// Decodes standard base64 of exactly `length` bytes, or returns undefined.
function decodeBase64(
  value: unknown,
  length: number,
): Uint8Array<ArrayBuffer> | undefined {
  if (typeof value !== "string") return undefined;
  try {
    const bytes = Uint8Array.fromBase64(value);
    return bytes.length === length ? bytes : undefined;
  } catch {
    return undefined;
  }
}
