/**
 * An exclusive lock on the data directory, so that two relays never run
 * with one identity key. The operating system releases the lock when the
 * process ends, also after SIGKILL.
 *
 * @module
 */

import { join } from "node:path";

/** Name of the lock file inside the data directory. */
export const LOCK_FILE_NAME = "relay.lock";

/** A held lock; {@linkcode DataDirLock.release} gives it up. */
export class DataDirLock {
  readonly #file: Deno.FsFile;

  private constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  /**
   * Creates the directory if needed and takes its lock. Throws an Error
   * that names the directory when another process has the lock.
   */
  static async acquire(dataDir: string): Promise<DataDirLock> {
    await Deno.mkdir(dataDir, { recursive: true });
    const path = join(dataDir, LOCK_FILE_NAME);
    const file = await Deno.open(path, {
      read: true,
      write: true,
      create: true,
    });
    if (!(await file.tryLock(true))) {
      file.close();
      throw new Error(
        `Another relay is using the data directory ${dataDir} (--data-dir); ` +
          "each relay needs its own directory, because it holds the relay's identity",
      );
    }
    return new DataDirLock(file);
  }

  /** Releases the lock. Idempotent. */
  release(): void {
    try {
      this.#file.close();
    } catch {
      // Already closed.
    }
  }
}
