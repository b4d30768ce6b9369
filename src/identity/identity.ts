/**
 * The relay's long-term Ed25519 identity key and its fingerprint.
 *
 * The key pair lives in `<dataDir>/identity.json` (mode 0o600) and is kept
 * across restarts, so that peers can pin the relay by fingerprint. The
 * fingerprint is the first 16 bytes of SHA-256 of the 32-byte raw public
 * key, written as 8 groups of 4 lowercase hex digits joined by `:`.
 *
 * @module
 */

import { join } from "node:path";

/** Name of the identity file inside the data directory. */
export const IDENTITY_FILE_NAME = "identity.json";

/** Length of a raw Ed25519 public key, in bytes. */
export const ED25519_PUBLIC_KEY_BYTES = 32;

/** Length of an Ed25519 signature, in bytes. */
export const ED25519_SIGNATURE_BYTES = 64;

/** Bytes of the SHA-256 digest that make up a fingerprint. */
export const FINGERPRINT_BYTES = 16;

const FINGERPRINT_PATTERN = /^[0-9a-f]{4}(?::[0-9a-f]{4}){7}$/i;

const IDENTITY_FILE_VERSION = 1;

/** Contents of the identity file. */
interface IdentityFile {
  version: number;
  algorithm: "Ed25519";
  /** PKCS #8 private key, base64. */
  private_key: string;
  /** Raw 32-byte public key, base64. */
  public_key: string;
}

/** Ed25519 identity of the relay, with a non-extractable private key. */
export class RelayIdentity {
  /** Fingerprint of {@linkcode publicKey}, like `a5d6:e3c6:...:4a43`. */
  readonly fingerprint: string;
  /** Raw 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array;
  /** {@linkcode publicKey} in standard base64. */
  readonly publicKeyBase64: string;
  #privateKey: CryptoKey;

  private constructor(
    privateKey: CryptoKey,
    publicKey: Uint8Array,
    fingerprint: string,
  ) {
    this.#privateKey = privateKey;
    this.publicKey = publicKey;
    this.publicKeyBase64 = publicKey.toBase64();
    this.fingerprint = fingerprint;
  }

  /**
   * Loads the identity from `<dataDir>/identity.json`, or creates the data
   * directory and a new identity file when there is none. Throws an `Error`
   * naming the path when the file exists but cannot be used.
   */
  static async loadOrCreate(dataDir: string): Promise<RelayIdentity> {
    const path = join(dataDir, IDENTITY_FILE_NAME);
    await Deno.mkdir(dataDir, { recursive: true });

    let text: string | undefined;
    try {
      text = await Deno.readTextFile(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    if (text !== undefined) return await RelayIdentity.#fromFile(path, text);

    const pkcs8 = await generatePkcs8();
    const identity = await RelayIdentity.#fromPkcs8(pkcs8);
    const file: IdentityFile = {
      version: IDENTITY_FILE_VERSION,
      algorithm: "Ed25519",
      private_key: pkcs8.toBase64(),
      public_key: identity.publicKeyBase64,
    };
    // createNew: two relays started on one data directory at the same time
    // must not overwrite each other's key, so the later one uses the file
    // the earlier one wrote.
    try {
      await Deno.writeTextFile(path, JSON.stringify(file, null, 2) + "\n", {
        mode: 0o600,
        createNew: true,
      });
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      return await RelayIdentity.#fromFile(path, await Deno.readTextFile(path));
    }
    return identity;
  }

  /** Creates a new identity that lives only in memory. */
  static async generate(): Promise<RelayIdentity> {
    return await RelayIdentity.#fromPkcs8(await generatePkcs8());
  }

  /** Imports a PKCS #8 Ed25519 private key and derives its public key. */
  static async #fromPkcs8(pkcs8: Uint8Array): Promise<RelayIdentity> {
    // The key is imported extractable once to read the public half from its
    // JWK form, then again as non-extractable for signing.
    const extractable = await crypto.subtle.importKey(
      "pkcs8",
      ownBuffer(pkcs8),
      "Ed25519",
      true,
      ["sign"],
    );
    const jwk = await crypto.subtle.exportKey("jwk", extractable);
    if (jwk.x === undefined) {
      throw new TypeError("Ed25519 private key has no public part");
    }
    const publicKey = Uint8Array.fromBase64(jwk.x, { alphabet: "base64url" });
    const privateKey = await crypto.subtle.importKey(
      "pkcs8",
      ownBuffer(pkcs8),
      "Ed25519",
      false,
      ["sign"],
    );
    const fingerprint = await computeFingerprint(publicKey);
    return new RelayIdentity(privateKey, publicKey, fingerprint);
  }

  /** Parses the identity file's text; errors name the file and the fix. */
  static async #fromFile(
    path: string,
    text: string,
  ): Promise<RelayIdentity> {
    const invalid = (reason: string, cause?: unknown) =>
      new Error(
        `Invalid identity file "${path}": ${reason}. Restore it from a backup, ` +
          `or delete it to create a new identity (peers that trust the old ` +
          `fingerprint must then be given the new one)`,
        { cause },
      );

    let file: Partial<IdentityFile>;
    try {
      file = JSON.parse(text);
    } catch (error) {
      throw invalid("it is not valid JSON", error);
    }
    if (typeof file !== "object" || file === null) {
      throw invalid("it is not a JSON object");
    }
    if (file.version !== IDENTITY_FILE_VERSION) {
      throw invalid(
        `version is ${
          JSON.stringify(file.version)
        }, expected ${IDENTITY_FILE_VERSION}`,
      );
    }
    if (file.algorithm !== "Ed25519") {
      throw invalid(
        `algorithm is ${JSON.stringify(file.algorithm)}, expected "Ed25519"`,
      );
    }
    if (typeof file.private_key !== "string") {
      throw invalid("private_key is missing");
    }
    if (typeof file.public_key !== "string") {
      throw invalid("public_key is missing");
    }

    let identity: RelayIdentity;
    try {
      identity = await RelayIdentity.#fromPkcs8(
        Uint8Array.fromBase64(file.private_key),
      );
    } catch (error) {
      throw invalid("private_key is not a base64 PKCS #8 Ed25519 key", error);
    }
    if (identity.publicKeyBase64 !== file.public_key) {
      throw invalid("public_key does not belong to private_key");
    }
    return identity;
  }

  /** Signs `data` with the identity key; returns the 64-byte signature. */
  async sign(data: Uint8Array): Promise<Uint8Array> {
    const signature = await crypto.subtle.sign(
      "Ed25519",
      this.#privateKey,
      ownBuffer(data),
    );
    return new Uint8Array(signature);
  }
}

/**
 * Returns `bytes` typed as backed by an `ArrayBuffer`, as WebCrypto requires,
 * copying only a view of a `SharedArrayBuffer`.
 */
function ownBuffer(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  if (bytes.buffer instanceof ArrayBuffer) {
    return bytes as Uint8Array<ArrayBuffer>;
  }
  return new Uint8Array(bytes);
}

async function generatePkcs8(): Promise<Uint8Array> {
  const pair = await crypto.subtle.generateKey("Ed25519", true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  return new Uint8Array(
    await crypto.subtle.exportKey("pkcs8", pair.privateKey),
  );
}

/**
 * Computes the fingerprint of a raw 32-byte Ed25519 public key: the first
 * 16 bytes of its SHA-256, as 8 groups of 4 lowercase hex digits joined by
 * `:`.
 */
export async function computeFingerprint(
  rawPublicKey: Uint8Array,
): Promise<string> {
  if (rawPublicKey.length !== ED25519_PUBLIC_KEY_BYTES) {
    throw new TypeError(
      `Cannot compute fingerprint: public key is ${rawPublicKey.length} bytes, expected ${ED25519_PUBLIC_KEY_BYTES}`,
    );
  }
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", ownBuffer(rawPublicKey)),
  );
  const hex = digest.subarray(0, FINGERPRINT_BYTES).toHex();
  return hex.match(/.{4}/g)!.join(":");
}

/**
 * Verifies an Ed25519 signature made by {@linkcode RelayIdentity.sign}.
 * Returns false for a key or signature of the wrong length.
 */
export async function verifyIdentitySignature(
  rawPublicKey: Uint8Array,
  data: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  if (rawPublicKey.length !== ED25519_PUBLIC_KEY_BYTES) return false;
  if (signature.length !== ED25519_SIGNATURE_BYTES) return false;

  let key: CryptoKey;
  try {
    key = await crypto.subtle.importKey(
      "raw",
      ownBuffer(rawPublicKey),
      "Ed25519",
      false,
      [
        "verify",
      ],
    );
  } catch {
    return false;
  }
  return await crypto.subtle.verify(
    "Ed25519",
    key,
    ownBuffer(signature),
    ownBuffer(data),
  );
}

/**
 * Validates a fingerprint written as 8 groups of 4 hex digits joined by `:`
 * and returns it in lowercase. Throws a `TypeError` naming the value when
 * it has another form.
 */
export function parseFingerprint(text: string): string {
  if (typeof text !== "string" || !FINGERPRINT_PATTERN.test(text)) {
    throw new TypeError(
      `Invalid fingerprint ${JSON.stringify(text)}: expected 8 groups of 4 ` +
        `hex digits joined by ':', like "a5d6:e3c6:5ae7:185c:4eb1:af89:daed:4a43"`,
    );
  }
  return text.toLowerCase();
}
