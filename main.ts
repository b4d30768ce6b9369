/**
 * Command line entry point: reads flags, `RELAY_*` environment variables
 * and the config file, starts the relay, stops it on SIGINT or SIGTERM,
 * and reloads the configuration on SIGHUP.
 *
 * @module
 */

import denoJson from "./deno.json" with { type: "json" };
import {
  ConfigError,
  helpText,
  loadConfig,
  type LoadedConfig,
} from "./src/config.ts";
import { createLogger, errorMessage, type Logger } from "./src/log.ts";
import { Relay } from "./mod.ts";

/** Exit status for invalid configuration, as for any usage error. */
const EXIT_USAGE = 2;

/** Exit status when the relay fails to start or to stop. */
const EXIT_FAILURE = 1;

/** Exit status after a second SIGINT or SIGTERM: 128 plus SIGINT (2). */
const EXIT_INTERRUPTED = 130;

/** Reads the configuration; returns an exit status when there is nothing to run. */
async function readConfig(): Promise<LoadedConfig | number> {
  let loaded: LoadedConfig;
  try {
    loaded = await loadConfig(Deno.args, Deno.env.toObject());
  } catch (error) {
    if (!(error instanceof ConfigError)) {
      console.error(`relay: ${errorMessage(error)}`);
      return EXIT_FAILURE;
    }
    console.error(`relay: ${error.message}`);
    console.error("Run with --help to list the options.");
    return EXIT_USAGE;
  }

  if (loaded.help) {
    console.log(helpText().trimEnd());
    return 0;
  }
  if (loaded.version) {
    console.log(`relay ${denoJson.version}`);
    return 0;
  }
  return loaded;
}

/**
 * Time after the first stop signal during which a second one counts as a
 * copy of the first, in ms. Ctrl-C in a terminal sends SIGINT to the whole
 * process group, so under `deno task start` the relay gets it from the
 * terminal and again from `deno task`, which forwards it.
 */
export const DUPLICATE_SIGNAL_MS = 500;

/**
 * Signal handlers: SIGINT and SIGTERM stop the relay and exit, a second one
 * (after {@linkcode DUPLICATE_SIGNAL_MS}) exits at once, and SIGHUP reloads
 * the configuration. They are installed
 * before the relay starts, so that no signal meets the default action,
 * which exits without a graceful stop.
 */
class SignalHandlers {
  readonly #logger: Logger;
  readonly #posix = Deno.build.os !== "windows";
  #relay: Relay | undefined;
  /** Stop signal received while the relay was starting. */
  #pending: Deno.Signal | undefined;
  #stopping: Promise<void> | undefined;
  /** Time of the first stop signal, from performance.now(). */
  #firstStopAt = 0;

  readonly #onInterrupt = () => this.#requestStop("SIGINT");
  readonly #onTerminate = () => this.#requestStop("SIGTERM");
  readonly #onHangUp = () => void this.#reload();

  constructor(logger: Logger) {
    this.#logger = logger;
    Deno.addSignalListener("SIGINT", this.#onInterrupt);
    // Windows has only SIGINT and SIGBREAK.
    if (this.#posix) {
      Deno.addSignalListener("SIGTERM", this.#onTerminate);
      Deno.addSignalListener("SIGHUP", this.#onHangUp);
    }
  }

  /** Stop that a signal started, which exits when done; else undefined. */
  get stopping(): Promise<void> | undefined {
    return this.#stopping;
  }

  /** Sets the started relay, and stops it if a signal came during start. */
  attach(relay: Relay): void {
    this.#relay = relay;
    if (this.#pending !== undefined) this.#stop(relay, this.#pending);
  }

  remove(): void {
    Deno.removeSignalListener("SIGINT", this.#onInterrupt);
    if (this.#posix) {
      Deno.removeSignalListener("SIGTERM", this.#onTerminate);
      Deno.removeSignalListener("SIGHUP", this.#onHangUp);
    }
  }

  #requestStop(signal: Deno.Signal): void {
    if (this.#stopping !== undefined || this.#pending !== undefined) {
      if (performance.now() - this.#firstStopAt < DUPLICATE_SIGNAL_MS) {
        this.#logger.debug("duplicate stop signal ignored", { signal });
        return;
      }
      this.#logger.warn("second signal, exiting without waiting", { signal });
      Deno.exit(EXIT_INTERRUPTED);
    }
    this.#firstStopAt = performance.now();

    if (this.#relay === undefined) {
      this.#logger.info("stopping once started", { signal });
      this.#pending = signal;
      return;
    }
    this.#stop(this.#relay, signal);
  }

  #stop(relay: Relay, signal: Deno.Signal): void {
    this.#logger.info("stopping", { signal });
    this.#stopping = relay.stop().then(
      () => Deno.exit(0),
      (error) => {
        this.#logger.error("stop failed", { error: errorMessage(error) });
        Deno.exit(EXIT_FAILURE);
      },
    );
  }

  /**
   * Reads flags, environment and config file again and applies them. A
   * config that does not load is rejected with a log line, and the relay
   * keeps the configuration it runs with.
   */
  async #reload(): Promise<void> {
    const relay = this.#relay;
    if (relay === undefined) {
      this.#logger.info("SIGHUP ignored: the relay is still starting");
      return;
    }

    this.#logger.info("reloading", { signal: "SIGHUP" });
    let loaded: LoadedConfig;
    try {
      loaded = await loadConfig(Deno.args, Deno.env.toObject());
    } catch (error) {
      this.#logger.error(
        "reload rejected, keeping the running configuration",
        { error: errorMessage(error) },
      );
      return;
    }

    const configLogger = this.#logger.child("config");
    for (const warning of loaded.warnings) configLogger.warn(warning);
    try {
      await relay.reload(loaded.options);
    } catch (error) {
      this.#logger.error(
        "reload failed, keeping the running configuration",
        { error: errorMessage(error) },
      );
    }
  }
}

async function main(): Promise<number> {
  const loaded = await readConfig();
  if (typeof loaded === "number") return loaded;

  const { options } = loaded;
  const logger = createLogger({
    level: options.logLevel,
    format: options.logFormat,
  });
  const configLogger = logger.child("config");
  for (const warning of loaded.warnings) configLogger.warn(warning);

  const signals = new SignalHandlers(logger);
  let relay: Relay;
  try {
    relay = await Relay.start(options, { logger });
  } catch (error) {
    logger.error("start failed", { error: errorMessage(error) });
    signals.remove();
    return EXIT_FAILURE;
  }

  signals.attach(relay);
  let status = 0;
  try {
    await relay.closed;
  } catch (error) {
    logger.error("relay failed", { error: errorMessage(error) });
    status = EXIT_FAILURE;
  }

  // The relay may close before its stop has finished; the stop exits then.
  await signals.stopping;
  signals.remove();
  return status;
}

Deno.exit(await main());
