/**
 * TLS certificates for the WebTransport listener: self-signed ECDSA P-256
 * certificates made with `@peculiar/x509` over WebCrypto, PEM parsing, and
 * the SHA-256 certificate hash that clients pin with
 * `serverCertificateHashes`.
 *
 * @module
 */

import { isIP } from "node:net";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(crypto);

/**
 * Maximum validity (notAfter minus notBefore) of a certificate pinned with
 * `serverCertificateHashes`: 14 days, the limit of the WebTransport
 * specification. Chromium 156 accepts exactly 14 days and rejects 14.01.
 */
export const MAX_CERTIFICATE_VALIDITY_MS = 14 * 24 * 60 * 60 * 1000;

/** Names every self-signed certificate carries in its subjectAltName. */
export const DEFAULT_CERTIFICATE_HOSTNAMES: readonly string[] = Object.freeze([
  "localhost",
  "127.0.0.1",
  "::1",
]);

/** A certificate hash as WebTransport's `serverCertificateHashes` takes it. */
export interface CertificateHash {
  algorithm: "sha-256";
  /** SHA-256 of the DER certificate, standard base64. */
  value: string;
}

/** A certificate with its private key, ready for `QuicEndpoint.listen()`. */
export interface TlsCertificate {
  /** PEM certificate chain, leaf first. */
  certPem: string;
  /** PEM private key of the leaf certificate. */
  keyPem: string;
  /** Hash of the leaf certificate. */
  hash: CertificateHash;
  notBefore: Date;
  notAfter: Date;
}

/** Options of {@linkcode createSelfSignedCertificate}. */
export interface SelfSignedCertificateOptions {
  /** Start of validity; truncated to whole seconds, as X.509 stores it. */
  notBefore: Date;
  /** End of validity; truncated to whole seconds. */
  notAfter: Date;
  /** subjectAltName entries: DNS names or IP addresses. */
  hostnames?: readonly string[];
}

/**
 * Creates a self-signed ECDSA P-256 certificate and key. Throws a
 * `RangeError` when the validity is empty or longer than
 * {@linkcode MAX_CERTIFICATE_VALIDITY_MS}.
 */
export async function createSelfSignedCertificate(
  options: SelfSignedCertificateOptions,
): Promise<TlsCertificate> {
  const notBefore = truncateToSeconds(options.notBefore);
  const notAfter = truncateToSeconds(options.notAfter);
  const validityMs = notAfter.getTime() - notBefore.getTime();
  if (!(validityMs > 0 && validityMs <= MAX_CERTIFICATE_VALIDITY_MS)) {
    throw new RangeError(
      `Invalid certificate validity from ${notBefore.toISOString()} to ` +
        `${notAfter.toISOString()}: it must be positive and at most 14 days`,
    );
  }

  const hostnames = options.hostnames ?? DEFAULT_CERTIFICATE_HOSTNAMES;
  const keys = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["sign", "verify"],
  );
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    name: [{ CN: [hostnames[0] ?? "localhost"] }],
    notBefore,
    notAfter,
    signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(
        hostnames.map((name) => ({
          type: isIP(name) ? "ip" as const : "dns" as const,
          value: name,
        })),
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });

  const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
  return {
    certPem: certificate.toString("pem") + "\n",
    keyPem: x509.PemConverter.encode(pkcs8, "PRIVATE KEY") + "\n",
    hash: await hashCertificate(new Uint8Array(certificate.rawData)),
    notBefore: certificate.notBefore,
    notAfter: certificate.notAfter,
  };
}

/**
 * Parses a PEM certificate chain and its PEM private key. The first
 * certificate is the leaf. Throws a `TypeError` when either PEM text has no
 * block of the expected kind or the certificate cannot be decoded.
 */
export async function parseTlsCertificate(
  certPem: string,
  keyPem: string,
): Promise<TlsCertificate> {
  const leaf = parseLeafCertificate(certPem);
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(keyPem)) {
    throw new TypeError(
      "Invalid private key: the PEM text has no PRIVATE KEY block",
    );
  }
  return {
    certPem,
    keyPem,
    hash: await hashCertificate(new Uint8Array(leaf.rawData)),
    notBefore: leaf.notBefore,
    notAfter: leaf.notAfter,
  };
}

/** Decodes the first certificate of a PEM chain. */
export function parseLeafCertificate(certPem: string): x509.X509Certificate {
  const blocks = x509.PemConverter.decodeWithHeaders(certPem)
    .filter((block) => block.type === "CERTIFICATE");
  const leaf = blocks[0];
  if (leaf === undefined) {
    throw new TypeError(
      "Invalid certificate: the PEM text has no CERTIFICATE block",
    );
  }
  try {
    return new x509.X509Certificate(leaf.rawData);
  } catch (error) {
    throw new TypeError(
      "Invalid certificate: the first CERTIFICATE block is not DER X.509",
      { cause: error },
    );
  }
}

/**
 * Returns true when `certPem`'s leaf is an ECDSA P-256 certificate valid
 * for at most {@linkcode MAX_CERTIFICATE_VALIDITY_MS} whose subjectAltName
 * lists exactly `hostnames` (in any order).
 */
export function isPinnableCertificate(
  certPem: string,
  hostnames: readonly string[],
): boolean {
  const leaf = parseLeafCertificate(certPem);
  const validityMs = leaf.notAfter.getTime() - leaf.notBefore.getTime();
  if (validityMs > MAX_CERTIFICATE_VALIDITY_MS) return false;

  const algorithm = leaf.publicKey.algorithm as EcKeyAlgorithm;
  if (algorithm.name !== "ECDSA" || algorithm.namedCurve !== "P-256") {
    return false;
  }

  const san = leaf.getExtension(x509.SubjectAlternativeNameExtension);
  if (san === null) return false;
  const names = san.names.items.map((name) => normalizeHostname(name.value));
  const expected = hostnames.map(normalizeHostname);
  return names.length === expected.length &&
    expected.every((name) => names.includes(name));
}

/** Computes the SHA-256 certificate hash of a DER certificate. */
export async function hashCertificate(
  der: Uint8Array<ArrayBuffer>,
): Promise<CertificateHash> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", der));
  return { algorithm: "sha-256", value: digest.toBase64() };
}

function truncateToSeconds(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}

// Lowercases DNS names and writes IPv6 addresses in one canonical form, so
// that "::1" and "0:0:0:0:0:0:0:1" compare equal.
function normalizeHostname(name: string): string {
  if (isIP(name) === 6) return new URL(`http://[${name}]/`).hostname;
  return name.toLowerCase();
}
