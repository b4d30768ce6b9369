/**
 * Storage of self-signed certificates in `<dataDir>/certs/`: one PEM file
 * per certificate (`current.pem`, `next.pem`) holding the certificate
 * followed by its PKCS #8 private key, written atomically with mode 0o600.
 *
 * @module
 */

import { join } from "node:path";
import {
  isPinnableCertificate,
  parseLeafCertificate,
  parseTlsCertificate,
  type TlsCertificate,
} from "./certificate.ts";

/** Names of the stored certificates, without the `.pem` extension. */
export const STORED_CERTIFICATE_NAMES = ["current", "next"] as const;

/** Name of a stored certificate. */
export type StoredCertificateName = typeof STORED_CERTIFICATE_NAMES[number];

const CERTIFICATE_BLOCK =
  /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\s*/g;
const PRIVATE_KEY_BLOCK =
  /-----BEGIN PRIVATE KEY-----[\s\S]*?-----END PRIVATE KEY-----\s*/;

/**
 * Reads `<certsDir>/<name>.pem`. Returns undefined when the file does not
 * exist. Throws a `TypeError` when it is not an ECDSA P-256 certificate of
 * at most 14 days for exactly `hostnames` with its matching private key.
 */
export async function readStoredCertificate(
  certsDir: string,
  name: StoredCertificateName,
  hostnames: readonly string[],
): Promise<TlsCertificate | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(join(certsDir, `${name}.pem`));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }

  const certPem = text.match(CERTIFICATE_BLOCK)?.join("") ?? "";
  const keyPem = text.match(PRIVATE_KEY_BLOCK)?.[0] ?? "";
  const certificate = await parseTlsCertificate(certPem, keyPem);
  if (!isPinnableCertificate(certPem, hostnames)) {
    throw new TypeError(
      "Stored certificate is not an ECDSA P-256 certificate of at most " +
        `14 days for ${hostnames.join(", ")}`,
    );
  }
  if (!await keyMatchesCertificate(certPem, keyPem)) {
    throw new TypeError(
      "Stored private key does not belong to the stored certificate",
    );
  }
  return certificate;
}

/** Writes `<certsDir>/<name>.pem` atomically with mode 0o600. */
export async function writeStoredCertificate(
  certsDir: string,
  name: StoredCertificateName,
  certificate: TlsCertificate,
): Promise<void> {
  const path = join(certsDir, `${name}.pem`);
  const temporary = `${path}.tmp`;
  await Deno.writeTextFile(
    temporary,
    certificate.certPem + certificate.keyPem,
    {
      mode: 0o600,
    },
  );
  // The mode option only applies to new files, and a crash may have left
  // the temporary file behind with other permissions.
  await Deno.chmod(temporary, 0o600);
  await Deno.rename(temporary, path);
}

// Compares the public point of a PKCS #8 ECDSA P-256 key with the
// certificate's public key.
async function keyMatchesCertificate(
  certPem: string,
  keyPem: string,
): Promise<boolean> {
  const pkcs8 = Uint8Array.fromBase64(
    keyPem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, ""),
  );
  const privateKey = await crypto.subtle.importKey(
    "pkcs8",
    pkcs8,
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["sign"],
  );
  const privateJwk = await crypto.subtle.exportKey("jwk", privateKey);

  const publicKey = await parseLeafCertificate(certPem).publicKey.export(
    { name: "ECDSA", namedCurve: "P-256" },
    ["verify"],
  );
  const publicJwk = await crypto.subtle.exportKey("jwk", publicKey);
  return privateJwk.x === publicJwk.x && privateJwk.y === publicJwk.y;
}
