/**
 * Webhook settings taken from the relay options.
 *
 * @module
 */

import type { Logger } from "../log.ts";
import type { RelayOptions } from "../options.ts";
import type { WebhookSettings } from "./dispatcher.ts";

/** Returns the webhook part of the relay options. */
export function webhookSettings(options: RelayOptions): WebhookSettings {
  return {
    url: options.webhookUrl,
    secret: options.webhookSecret,
    timeoutMs: options.webhookTimeoutMs,
    maxAttempts: options.webhookMaxAttempts,
    retryDelayMs: options.webhookRetryDelayMs,
    maxRetryDelayMs: options.webhookMaxRetryDelayMs,
    queueLimit: options.webhookQueueLimit,
  };
}

/** Logs a warning when webhooks are on without a signing secret. */
export function warnIfUnsigned(options: RelayOptions, logger: Logger): void {
  if (options.webhookUrl === undefined || options.webhookSecret !== undefined) {
    return;
  }
  logger.warn(
    "webhook requests are unsigned; set --webhook-secret so that the " +
      "receiver can check them",
  );
}
