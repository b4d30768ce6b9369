/**
 * When self-signed certificates rotate: the rules that decide whether the
 * current and next certificates can still be used and when new ones are
 * made.
 *
 * A certificate is presented from the moment its predecessor becomes due
 * (its notAfter minus `rotateBeforeMs`) until it becomes due itself, and it
 * is published as "next" for the period before that. Its notBefore is set
 * {@linkcode CERTIFICATE_BACKDATE_MS} before it is first presented.
 *
 * @module
 */

import {
  createSelfSignedCertificate,
  MAX_CERTIFICATE_VALIDITY_MS,
  type TlsCertificate,
} from "./certificate.ts";
import { writeStoredCertificate } from "./certificate_store.ts";

/** Default validity of a self-signed certificate: 10 days. */
export const DEFAULT_CERTIFICATE_VALIDITY_MS = 10 * 24 * 60 * 60 * 1000;

/** Default time before expiry at which the current certificate rotates. */
export const DEFAULT_ROTATE_BEFORE_MS = 2 * 24 * 60 * 60 * 1000;

/**
 * Time by which a certificate's notBefore precedes the moment it is first
 * presented, so that clients whose clocks are behind accept it. It counts
 * towards the validity.
 */
export const CERTIFICATE_BACKDATE_MS = 60 * 60 * 1000;

/** Settings of {@linkcode settleCertificates}. */
export interface RotationPolicy {
  /** Folder of the stored certificates. */
  certsDir: string;
  /** subjectAltName entries of new certificates. */
  hostnames: readonly string[];
  /** Validity of new certificates, in ms. */
  validityMs: number;
  /** Remaining validity below which a certificate is due, in ms. */
  rotateBeforeMs: number;
  /** Clock in ms since the epoch. */
  now: () => number;
}

/**
 * Checks that `validityMs` is allowed for pinned certificates and leaves
 * time to present a certificate before it is due. Throws a `RangeError`
 * naming the value otherwise.
 */
export function validateRotationTimes(
  validityMs: number,
  rotateBeforeMs: number,
): void {
  if (
    !Number.isFinite(validityMs) || validityMs <= 0 ||
    validityMs > MAX_CERTIFICATE_VALIDITY_MS
  ) {
    throw new RangeError(
      `Invalid validityMs ${validityMs}: it must be positive and at most ` +
        `${MAX_CERTIFICATE_VALIDITY_MS} (14 days), the limit browsers set ` +
        `for pinned certificates`,
    );
  }
  if (!Number.isFinite(rotateBeforeMs) || rotateBeforeMs < 0) {
    throw new RangeError(
      `Invalid rotateBeforeMs ${rotateBeforeMs}: it must be 0 or more`,
    );
  }
  if (rotateBeforeMs + CERTIFICATE_BACKDATE_MS >= validityMs) {
    throw new RangeError(
      `Invalid rotateBeforeMs ${rotateBeforeMs}: with the ` +
        `${CERTIFICATE_BACKDATE_MS} ms backdate it must be less than ` +
        `validityMs ${validityMs}, or a certificate would be due for ` +
        `rotation as soon as it is presented`,
    );
  }
}

/**
 * Moves from the given current and next certificates to usable ones: next
 * replaces a current that is due, and new certificates replace any that
 * cannot be used. Stores what changed.
 */
export async function settleCertificates(
  policy: RotationPolicy,
  current: TlsCertificate | undefined,
  next: TlsCertificate | undefined,
): Promise<{ current: TlsCertificate; next: TlsCertificate }> {
  const now = policy.now();

  if (current === undefined || !usableAsCurrent(policy, current, now)) {
    if (next !== undefined && usableAsCurrent(policy, next, now)) {
      current = next;
    } else {
      current = await generate(policy, now);
    }
    next = undefined;
    await writeStoredCertificate(policy.certsDir, "current", current);
  }

  if (next === undefined || !fitsAsNext(policy, next, current)) {
    next = await generate(policy, dueTime(policy, current));
    await writeStoredCertificate(policy.certsDir, "next", next);
  }

  return { current, next };
}

// Makes a certificate that is first presented at `presentedFrom`.
function generate(
  policy: RotationPolicy,
  presentedFrom: number,
): Promise<TlsCertificate> {
  // Whole seconds, as X.509 stores them, so that truncation cannot stretch
  // the validity.
  const notBefore =
    Math.floor((presentedFrom - CERTIFICATE_BACKDATE_MS) / 1000) *
    1000;
  return createSelfSignedCertificate({
    notBefore: new Date(notBefore),
    notAfter: new Date(notBefore + policy.validityMs),
    hostnames: policy.hostnames,
  });
}

function dueTime(
  policy: RotationPolicy,
  certificate: TlsCertificate,
): number {
  return certificate.notAfter.getTime() - policy.rotateBeforeMs;
}

function usableAsCurrent(
  policy: RotationPolicy,
  certificate: TlsCertificate,
  now: number,
): boolean {
  return certificate.notBefore.getTime() <= now &&
    now < dueTime(policy, certificate);
}

// A next certificate must be valid when the current one becomes due and
// must outlive it, or the rotation would gain nothing.
function fitsAsNext(
  policy: RotationPolicy,
  next: TlsCertificate,
  current: TlsCertificate,
): boolean {
  return next.hash.value !== current.hash.value &&
    next.notBefore.getTime() <= dueTime(policy, current) &&
    next.notAfter.getTime() > current.notAfter.getTime();
}
