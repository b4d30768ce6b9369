/**
 * The relay's Ed25519 identity and its WebTransport TLS certificates.
 *
 * @module
 */

export {
  computeFingerprint,
  ED25519_PUBLIC_KEY_BYTES,
  ED25519_SIGNATURE_BYTES,
  FINGERPRINT_BYTES,
  IDENTITY_FILE_NAME,
  parseFingerprint,
  RelayIdentity,
  verifyIdentitySignature,
} from "./identity.ts";
export {
  type CertificateHash,
  createSelfSignedCertificate,
  DEFAULT_CERTIFICATE_HOSTNAMES,
  hashCertificate,
  MAX_CERTIFICATE_VALIDITY_MS,
  parseTlsCertificate,
  type SelfSignedCertificateOptions,
  type TlsCertificate,
} from "./certificate.ts";
export {
  CERTIFICATE_HASHES_SIGNATURE_CONTEXT,
  createSignedCertificateHashes,
  encodeCertificateHashesForSigning,
  MAX_CERTIFICATE_HASHES,
  signCertificateHashes,
  type SignedCertificateHashes,
  toServerCertificateHashes,
  verifyCertificateHashes,
} from "./certificate_hashes.ts";
export {
  CERTIFICATE_BACKDATE_MS,
  DEFAULT_CERTIFICATE_VALIDITY_MS,
  DEFAULT_ROTATE_BEFORE_MS,
} from "./certificate_rotation.ts";
export {
  CertificateManager,
  type CertificateManagerOptions,
  DEFAULT_ROTATION_CHECK_INTERVAL_MS,
  type RotateListener,
} from "./certificate_manager.ts";
