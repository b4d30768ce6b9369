/**
 * The WebTransport listener's certificate: the operator's PEM files, or a
 * self-signed certificate that the relay rotates before it expires.
 *
 * For self-signed certificates the manager keeps a *current* certificate
 * and a pre-generated *next* one, so that `GET /api/webtransport` can
 * publish both hashes and a client that fetched them shortly before a
 * rotation still connects after it. The next certificate's validity starts
 * when the current one becomes due for rotation (minus
 * {@linkcode CERTIFICATE_BACKDATE_MS}), so each certificate is published
 * for two rotation periods but presented for only one.
 *
 * Both are stored in `<dataDir>/certs/` as `current.pem` and `next.pem`,
 * each holding the certificate and its private key (mode 0o600), and are
 * reused at restart while they are still usable.
 *
 * @module
 */

import { join } from "node:path";
import { errorMessage, type Logger, silentLogger } from "../log.ts";
import {
  type CertificateHash,
  DEFAULT_CERTIFICATE_HOSTNAMES,
  parseTlsCertificate,
  type TlsCertificate,
} from "./certificate.ts";
import {
  DEFAULT_CERTIFICATE_VALIDITY_MS,
  DEFAULT_ROTATE_BEFORE_MS,
  type RotationPolicy,
  settleCertificates,
  validateRotationTimes,
} from "./certificate_rotation.ts";
import {
  readStoredCertificate,
  STORED_CERTIFICATE_NAMES,
} from "./certificate_store.ts";

/** Default interval of the rotation check timer started by `start()`. */
export const DEFAULT_ROTATION_CHECK_INTERVAL_MS = 60 * 60 * 1000;

/** Options of {@linkcode CertificateManager.create}. */
export interface CertificateManagerOptions {
  /** Data directory; self-signed certificates go to its `certs/` folder. */
  dataDir: string;
  /** Operator PEM certificate chain; requires `keyFile`. */
  certFile?: string;
  /** Operator PEM private key; requires `certFile`. */
  keyFile?: string;
  /**
   * Extra subjectAltName entries (DNS names or IP addresses) of
   * self-signed certificates, besides localhost, 127.0.0.1 and ::1.
   */
  hostnames?: readonly string[];
  /**
   * Validity of a self-signed certificate (notAfter minus notBefore), in
   * ms; at most 14 days. @default {864000000} (10 days)
   */
  validityMs?: number;
  /**
   * Remaining validity below which the current certificate rotates, in ms.
   * @default {172800000} (2 days)
   */
  rotateBeforeMs?: number;
  /** Interval of the timer that `start()` runs, in ms. @default {3600000} */
  checkIntervalMs?: number;
  /** Clock in ms since the epoch, replaceable in tests. @default {Date.now} */
  now?: () => number;
  logger?: Logger;
}

/** Listener of {@linkcode CertificateManager.onRotate}. */
export type RotateListener = (certificate: TlsCertificate) => void;

interface ResolvedOptions extends RotationPolicy {
  checkIntervalMs: number;
  logger: Logger;
}

/** Owns the WebTransport certificate and replaces it before it expires. */
export class CertificateManager {
  /** True for relay-made certificates, false for operator PEM files. */
  readonly selfSigned: boolean;
  #options: ResolvedOptions;
  #operatorFiles: { certFile: string; keyFile: string } | undefined;
  #current: TlsCertificate;
  #next: TlsCertificate | undefined;
  #listeners = new Set<RotateListener>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #busy: Promise<unknown> = Promise.resolve();

  private constructor(
    options: ResolvedOptions,
    operatorFiles: { certFile: string; keyFile: string } | undefined,
    current: TlsCertificate,
    next: TlsCertificate | undefined,
  ) {
    this.#options = options;
    this.#operatorFiles = operatorFiles;
    this.selfSigned = operatorFiles === undefined;
    this.#current = current;
    this.#next = next;
  }

  /**
   * Loads the operator's PEM files, or loads or creates the self-signed
   * current and next certificates. Throws a `TypeError` or `RangeError`
   * naming the option that is invalid.
   */
  static async create(
    options: CertificateManagerOptions,
  ): Promise<CertificateManager> {
    const resolved = resolveOptions(options);
    const { certFile, keyFile } = options;
    if ((certFile === undefined) !== (keyFile === undefined)) {
      throw new TypeError(
        "Invalid certificate options: certFile and keyFile must be given " +
          `together (certFile is ${JSON.stringify(certFile)}, keyFile is ` +
          `${JSON.stringify(keyFile)})`,
      );
    }

    if (certFile !== undefined && keyFile !== undefined) {
      const files = { certFile, keyFile };
      const current = await readOperatorCertificate(files);
      const manager = new CertificateManager(
        resolved,
        files,
        current,
        undefined,
      );
      manager.#warnIfExpiring();
      return manager;
    }

    await Deno.mkdir(resolved.certsDir, { recursive: true });
    const [current, next] = await Promise.all(
      STORED_CERTIFICATE_NAMES.map((name) =>
        readStoredCertificate(resolved.certsDir, name, resolved.hostnames)
          .catch((error) => {
            resolved.logger.info("replacing stored certificate", {
              file: join(resolved.certsDir, `${name}.pem`),
              reason: errorMessage(error),
            });
            return undefined;
          })
      ),
    );
    const settled = await settleCertificates(resolved, current, next);
    resolved.logger.info("using self-signed certificate", {
      hash: settled.current.hash.value,
      not_after: settled.current.notAfter.toISOString(),
      next_hash: settled.next.hash.value,
    });
    return new CertificateManager(
      resolved,
      undefined,
      settled.current,
      settled.next,
    );
  }

  /** Certificate that the listener presents to new connections. */
  get current(): TlsCertificate {
    return this.#current;
  }

  /** Certificate that the next rotation presents; undefined for operator files. */
  get next(): TlsCertificate | undefined {
    return this.#next;
  }

  /** Hashes to publish: the current certificate's first, then the next's. */
  get hashes(): CertificateHash[] {
    const hashes = [{ ...this.#current.hash }];
    if (this.#next !== undefined) hashes.push({ ...this.#next.hash });
    return hashes;
  }

  /**
   * Rotates a self-signed certificate when it has less than
   * `rotateBeforeMs` left: next becomes current and a new next is made.
   * Calls the `onRotate` listeners and returns true when it rotated. For
   * operator files it only logs a warning when they are about to expire.
   */
  rotateIfDue(): Promise<boolean> {
    return this.#serialize(async () => {
      if (!this.selfSigned) {
        this.#warnIfExpiring();
        return false;
      }
      const settled = await settleCertificates(
        this.#options,
        this.#current,
        this.#next,
      );
      const rotated = settled.current !== this.#current;
      this.#current = settled.current;
      this.#next = settled.next;
      if (!rotated) return false;

      this.#options.logger.info("rotated certificate", {
        hash: settled.current.hash.value,
        not_after: settled.current.notAfter.toISOString(),
        next_hash: settled.next.hash.value,
      });
      this.#emit(settled.current);
      return true;
    });
  }

  /**
   * Reads the operator's PEM files again and calls the `onRotate`
   * listeners when the certificate changed. Throws when the files cannot
   * be read or parsed, and then keeps the certificate it had. Does nothing
   * for self-signed certificates.
   */
  reload(): Promise<void> {
    return this.#serialize(async () => {
      if (this.#operatorFiles === undefined) return;
      const certificate = await readOperatorCertificate(this.#operatorFiles);
      if (
        certificate.certPem === this.#current.certPem &&
        certificate.keyPem === this.#current.keyPem
      ) {
        this.#options.logger.info("certificate files unchanged", {
          cert_file: this.#operatorFiles.certFile,
        });
        return;
      }
      this.#current = certificate;
      this.#options.logger.info("reloaded certificate files", {
        cert_file: this.#operatorFiles.certFile,
        hash: certificate.hash.value,
        not_after: certificate.notAfter.toISOString(),
      });
      this.#warnIfExpiring();
      this.#emit(certificate);
    });
  }

  /**
   * Registers a listener called with the new current certificate after
   * each rotation or changed reload; returns a function that removes it.
   */
  onRotate(listener: RotateListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Starts a timer that calls {@linkcode rotateIfDue}; idempotent. */
  start(): void {
    if (this.#timer !== undefined) return;
    const timer = setInterval(() => {
      this.rotateIfDue().catch((error) => {
        this.#options.logger.error("certificate rotation failed", {
          error: errorMessage(error),
        });
      });
    }, this.#options.checkIntervalMs);
    // The timer alone must not keep the process alive.
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  /** Stops the timer of {@linkcode start} and removes all listeners. */
  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#listeners.clear();
  }

  #warnIfExpiring(): void {
    const left = this.#current.notAfter.getTime() - this.#options.now();
    if (left >= this.#options.rotateBeforeMs) return;
    this.#options.logger.warn(
      left > 0
        ? "certificate expires soon, replace the files and send SIGHUP"
        : "certificate has expired, replace the files and send SIGHUP",
      {
        cert_file: this.#operatorFiles?.certFile,
        not_after: this.#current.notAfter.toISOString(),
      },
    );
  }

  #emit(certificate: TlsCertificate): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(certificate);
      } catch (error) {
        this.#options.logger.error("certificate rotation listener failed", {
          error: errorMessage(error),
        });
      }
    }
  }

  // Runs one rotation or reload at a time, so that a timer tick and a
  // SIGHUP never interleave across an await.
  #serialize<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#busy.then(task);
    this.#busy = result.catch(() => {});
    return result;
  }
}

function resolveOptions(options: CertificateManagerOptions): ResolvedOptions {
  const validityMs = options.validityMs ?? DEFAULT_CERTIFICATE_VALIDITY_MS;
  const rotateBeforeMs = options.rotateBeforeMs ?? DEFAULT_ROTATE_BEFORE_MS;
  const checkIntervalMs = options.checkIntervalMs ??
    DEFAULT_ROTATION_CHECK_INTERVAL_MS;

  validateRotationTimes(validityMs, rotateBeforeMs);
  if (!Number.isFinite(checkIntervalMs) || checkIntervalMs <= 0) {
    throw new RangeError(
      `Invalid checkIntervalMs ${checkIntervalMs}: it must be positive`,
    );
  }

  const hostnames = [...DEFAULT_CERTIFICATE_HOSTNAMES];
  for (const name of options.hostnames ?? []) {
    if (name.length === 0) {
      throw new TypeError("Invalid certificate hostname: it is empty");
    }
    if (!hostnames.includes(name.toLowerCase())) {
      hostnames.push(name.toLowerCase());
    }
  }

  return {
    certsDir: join(options.dataDir, "certs"),
    hostnames,
    validityMs,
    rotateBeforeMs,
    checkIntervalMs,
    now: options.now ?? Date.now,
    logger: options.logger ?? silentLogger,
  };
}

async function readOperatorCertificate(
  files: { certFile: string; keyFile: string },
): Promise<TlsCertificate> {
  const [certPem, keyPem] = await Promise.all([
    Deno.readTextFile(files.certFile),
    Deno.readTextFile(files.keyFile),
  ]);
  try {
    return await parseTlsCertificate(certPem, keyPem);
  } catch (error) {
    throw new TypeError(
      `Invalid certificate files "${files.certFile}" and ` +
        `"${files.keyFile}": ${errorMessage(error)}`,
      { cause: error },
    );
  }
}
