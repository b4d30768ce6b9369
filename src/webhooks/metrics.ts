/**
 * Webhook metrics, read from the dispatcher's counters at scrape time.
 *
 * @module
 */

import client from "prom-client";
import { WEBHOOK_RESULTS, type WebhookDispatcher } from "./dispatcher.ts";

/** Registers the webhook metrics on `registry`. */
export function registerWebhookMetrics(
  registry: client.Registry,
  dispatcher: WebhookDispatcher,
): void {
  new client.Counter({
    name: "wzp_relay_webhook_events_total",
    help: "Webhook events by result: delivered, failed after every " +
      "attempt, or dropped because the queue was full or webhooks stopped",
    labelNames: ["result"],
    registers: [registry],
    collect() {
      this.reset();
      for (const result of WEBHOOK_RESULTS) {
        this.inc({ result }, dispatcher.counters[result]);
      }
    },
  });

  new client.Gauge({
    name: "wzp_relay_webhook_queued_events",
    help: "Webhook events waiting or in flight",
    registers: [registry],
    collect() {
      this.set(dispatcher.queued);
    },
  });
}
