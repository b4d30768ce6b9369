/**
 * Mutual authentication of two relays. Each side signs a transcript that
 * contains both fresh nonces and both fingerprints with its identity key,
 * so a signature can neither be replayed on another link nor be passed on
 * to a third relay.
 *
 * ```
 * dialler  -> hello   {version, fingerprint, public_key, nonce}
 * acceptor -> welcome {fingerprint, public_key, nonce, signature(acceptor transcript)}
 * dialler  -> auth    {signature(dialler transcript)}
 * acceptor -> ready
 * ```
 *
 * @module
 */

import {
  computeFingerprint,
  type RelayIdentity,
  verifyIdentitySignature,
} from "../identity/identity.ts";
import { FEDERATION_PROTOCOL_VERSION } from "../wire/federation_control.ts";
import type { ControlChannel } from "./control_channel.ts";

/** Time the whole handshake may take, in ms. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

const CONTEXT = "voice-relay federation v1";

/** A failed handshake, with the close code the link ends with. */
export class HandshakeError extends Error {
  readonly code: number;
  readonly errorCode: string;

  constructor(code: number, errorCode: string, message: string) {
    super(message);
    this.name = "HandshakeError";
    this.code = code;
    this.errorCode = errorCode;
  }
}

/** The peer a handshake authenticated. */
export interface AuthenticatedPeer {
  fingerprint: string;
  publicKey: Uint8Array;
}

function transcript(
  role: "dialler" | "acceptor",
  diallerNonce: string,
  acceptorNonce: string,
  diallerFingerprint: string,
  acceptorFingerprint: string,
): Uint8Array {
  return new TextEncoder().encode(
    [
      CONTEXT,
      role,
      diallerNonce,
      acceptorNonce,
      diallerFingerprint,
      acceptorFingerprint,
    ]
      .join("\n"),
  );
}

function newNonce(): string {
  return crypto.getRandomValues(new Uint8Array(32)).toBase64();
}

function decodeBase64(text: string, what: string): Uint8Array {
  try {
    return Uint8Array.fromBase64(text);
  } catch {
    throw new HandshakeError(
      4400,
      "bad_request",
      `Invalid ${what}: not base64`,
    );
  }
}

/** Checks that `publicKeyBase64` hashes to `fingerprint`; returns the key. */
async function checkKey(
  fingerprint: string,
  publicKeyBase64: string,
): Promise<Uint8Array> {
  const publicKey = decodeBase64(publicKeyBase64, "public key");
  if (publicKey.length !== 32) {
    throw new HandshakeError(
      4400,
      "bad_request",
      "Invalid public key: expected 32 bytes",
    );
  }
  if (await computeFingerprint(publicKey) !== fingerprint) {
    throw new HandshakeError(
      4401,
      "unauthorized",
      `Public key does not match fingerprint ${fingerprint}`,
    );
  }
  return publicKey;
}

async function expect<T extends string>(
  channel: ControlChannel,
  type: T,
  deadline: number,
) {
  const message = await channel.next(Math.max(1, deadline - Date.now()));
  if (message === null && channel.error !== null) {
    throw new HandshakeError(
      4400,
      "bad_request",
      `Control stream ended while waiting for ${type}: ${channel.error}`,
    );
  }
  if (message === null) {
    throw new HandshakeError(4408, "timeout", `Timed out waiting for ${type}`);
  }
  if (message.type === "error") {
    throw new HandshakeError(
      4403,
      message.code,
      `Peer rejected the link: ${message.message}`,
    );
  }
  if (message.type !== type) {
    throw new HandshakeError(
      4400,
      "bad_request",
      `Expected ${type}, got ${message.type}`,
    );
  }
  return message as Extract<typeof message, { type: T }>;
}

/**
 * Runs the dialler's side. `expectedFingerprint` is the configured peer;
 * a peer that proves another identity is rejected.
 */
export async function dialHandshake(
  channel: ControlChannel,
  identity: RelayIdentity,
  expectedFingerprint: string,
): Promise<AuthenticatedPeer> {
  const deadline = Date.now() + HANDSHAKE_TIMEOUT_MS;
  const nonce = newNonce();
  channel.send({
    type: "hello",
    version: FEDERATION_PROTOCOL_VERSION,
    fingerprint: identity.fingerprint,
    public_key: identity.publicKeyBase64,
    nonce,
  });

  const welcome = await expect(channel, "welcome", deadline);
  if (welcome.fingerprint !== expectedFingerprint) {
    throw new HandshakeError(
      4403,
      "forbidden",
      `Peer identifies as ${welcome.fingerprint}, expected ${expectedFingerprint}`,
    );
  }
  const publicKey = await checkKey(welcome.fingerprint, welcome.public_key);
  const signed = transcript(
    "acceptor",
    nonce,
    welcome.nonce,
    identity.fingerprint,
    welcome.fingerprint,
  );
  const valid = await verifyIdentitySignature(
    publicKey,
    signed,
    decodeBase64(welcome.signature, "signature"),
  );
  if (!valid) {
    throw new HandshakeError(
      4401,
      "unauthorized",
      `Invalid signature from ${welcome.fingerprint}`,
    );
  }

  const signature = await identity.sign(
    transcript(
      "dialler",
      nonce,
      welcome.nonce,
      identity.fingerprint,
      welcome.fingerprint,
    ),
  );
  channel.send({ type: "auth", signature: signature.toBase64() });
  await expect(channel, "ready", deadline);
  return { fingerprint: welcome.fingerprint, publicKey };
}

/**
 * Runs the acceptor's side. `isTrusted` decides whether a fingerprint may
 * link; it is asked before any signature work.
 */
export async function acceptHandshake(
  channel: ControlChannel,
  identity: RelayIdentity,
  isTrusted: (fingerprint: string) => boolean,
): Promise<AuthenticatedPeer> {
  const deadline = Date.now() + HANDSHAKE_TIMEOUT_MS;
  const hello = await expect(channel, "hello", deadline);
  if (hello.version !== FEDERATION_PROTOCOL_VERSION) {
    throw new HandshakeError(
      4400,
      "bad_request",
      `Unsupported federation version ${hello.version}, expected ${FEDERATION_PROTOCOL_VERSION}`,
    );
  }
  if (!isTrusted(hello.fingerprint)) {
    throw new HandshakeError(
      4403,
      "forbidden",
      `Unknown peer ${hello.fingerprint}`,
    );
  }
  const publicKey = await checkKey(hello.fingerprint, hello.public_key);

  const nonce = newNonce();
  const signature = await identity.sign(
    transcript(
      "acceptor",
      hello.nonce,
      nonce,
      hello.fingerprint,
      identity.fingerprint,
    ),
  );
  channel.send({
    type: "welcome",
    fingerprint: identity.fingerprint,
    public_key: identity.publicKeyBase64,
    nonce,
    signature: signature.toBase64(),
  });

  const auth = await expect(channel, "auth", deadline);
  const valid = await verifyIdentitySignature(
    publicKey,
    transcript(
      "dialler",
      hello.nonce,
      nonce,
      hello.fingerprint,
      identity.fingerprint,
    ),
    decodeBase64(auth.signature, "signature"),
  );
  if (!valid) {
    throw new HandshakeError(
      4401,
      "unauthorized",
      `Invalid signature from ${hello.fingerprint}`,
    );
  }
  channel.send({ type: "ready" });
  return { fingerprint: hello.fingerprint, publicKey };
}
