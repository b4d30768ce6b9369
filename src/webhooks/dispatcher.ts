/**
 * Delivery of webhook events. Each key (a room, or the federation peers)
 * has one FIFO queue, so that the events of one room arrive in order.
 * Bounds apply to the events queued over all keys and to the requests in
 * flight, and failed requests are retried with exponential backoff.
 * Callers only enqueue, and every request runs later on the event loop, so
 * a slow or dead receiver costs the relay at most the queue bound in
 * memory.
 *
 * @module
 */

import { errorMessage, type Logger } from "../log.ts";
import type { WebhookPayload } from "./events.ts";
import { SIGNATURE_HEADER, WebhookSigner } from "./signature.ts";

/** Delivery settings of webhook events. */
export interface WebhookSettings {
  /** Receiver URL; unset turns webhooks off and discards queued events. */
  url?: string;
  /** HMAC key of `X-Relay-Signature`; unset sends unsigned requests. */
  secret?: string;
  /** Time limit of one request until the response headers, in ms. @default {5000} */
  timeoutMs: number;
  /** Tries per event, the first one included. @default {5} */
  maxAttempts: number;
  /** Wait before the first retry, in ms; doubles on each retry. @default {1000} */
  retryDelayMs: number;
  /** Maximum wait between two tries, in ms. @default {30000} */
  maxRetryDelayMs: number;
  /** Events queued over all keys, the one being sent included. @default {10000} */
  queueLimit: number;
  /** Requests in flight at once over all keys. @default {8} */
  maxConcurrentRequests?: number;
}

/** Default limits of {@linkcode WebhookSettings}. */
export const DEFAULT_WEBHOOK_LIMITS = Object.freeze({
  timeoutMs: 5_000,
  maxAttempts: 5,
  retryDelayMs: 1_000,
  maxRetryDelayMs: 30_000,
  queueLimit: 10_000,
  maxConcurrentRequests: 8,
});

/** Outcomes of events, the `result` label of the webhook metric. */
export const WEBHOOK_RESULTS = ["delivered", "failed", "dropped"] as const;

/** Outcome of one event. */
export type WebhookResult = typeof WEBHOOK_RESULTS[number];

/** Value of the `User-Agent` header of webhook requests. */
export const WEBHOOK_USER_AGENT = "voice-relay-webhooks";

interface QueuedEvent {
  event: string;
  room: string | undefined;
  body: string;
  attempts: number;
}

interface KeyQueue {
  key: string;
  events: QueuedEvent[];
  /** Retry timer while the head waits for its next try. */
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Set when the queue was discarded while its head was in flight. */
  discarded: boolean;
}

/** Sends webhook events in order per key, with retries and bounds. */
export class WebhookDispatcher {
  /** Events by outcome since the dispatcher was created. */
  readonly counters: Record<WebhookResult, number> = {
    delivered: 0,
    failed: 0,
    dropped: 0,
  };

  readonly #logger: Logger;
  #settings!: Required<Omit<WebhookSettings, "url" | "secret">>;
  #url: string | undefined;
  #signer: WebhookSigner | null = null;
  readonly #queues = new Map<string, KeyQueue>();
  /** Queues whose head may be sent now, in the order they became ready. */
  readonly #ready = new Set<KeyQueue>();
  readonly #requests = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  readonly #idleWaiters = new Set<() => void>();
  #client: Deno.HttpClient | null = null;
  #queued = 0;
  #closed = false;

  /** Throws a TypeError or RangeError naming an invalid setting. */
  constructor(settings: WebhookSettings, logger: Logger) {
    this.#logger = logger;
    this.configure(settings);
  }

  /** Whether a receiver URL is set. */
  get enabled(): boolean {
    return this.#url !== undefined && !this.#closed;
  }

  /** Events waiting or in flight, over all keys. */
  get queued(): number {
    return this.#queued;
  }

  /**
   * Applies new settings. Queued events go to the new URL, signed with
   * the new secret; without a URL they are discarded and counted as
   * dropped. Throws a TypeError or RangeError naming an invalid setting,
   * and then keeps the old settings.
   */
  configure(settings: WebhookSettings): void {
    const limits = checkWebhookSettings(settings);
    const signer = settings.secret === undefined
      ? null
      : new WebhookSigner(settings.secret);

    this.#settings = limits;
    this.#signer = signer;
    this.#url = settings.url;
    if (this.#url === undefined) this.#discardAll();
    this.#pump();
  }

  /**
   * Queues `payload` behind the earlier events of `key` and returns
   * whether it was queued. When webhooks are off it does nothing; when the
   * queue is full it drops the event and counts it.
   */
  enqueue(key: string, payload: WebhookPayload): boolean {
    if (!this.enabled) return false;
    if (this.#queued >= this.#settings.queueLimit) {
      this.counters.dropped++;
      this.#logger.warn("webhook queue full, event dropped", {
        event: payload.event,
        room: payload.room,
        queue_limit: this.#settings.queueLimit,
      });
      return false;
    }

    let queue = this.#queues.get(key);
    if (queue === undefined) {
      queue = { key, events: [], timer: undefined, discarded: false };
      this.#queues.set(key, queue);
    }
    queue.events.push({
      event: payload.event,
      room: payload.room,
      body: JSON.stringify(payload),
      attempts: 0,
    });
    this.#queued++;
    if (queue.events.length === 1) {
      this.#ready.add(queue);
      this.#pump();
    }
    return true;
  }

  /** Resolves once no event is queued. */
  drained(): Promise<void> {
    if (this.#queued === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.add(resolve));
  }

  /**
   * Stops delivery: waits up to `drainMs` for the queue to empty, then
   * aborts requests in flight and drops what is left, counting it.
   * Idempotent.
   */
  async close(drainMs = 0): Promise<void> {
    if (this.#closed) return;
    if (drainMs > 0 && this.#queued > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.drained(),
        new Promise<void>((resolve) => timer = setTimeout(resolve, drainMs)),
      ]);
      clearTimeout(timer);
    }

    this.#closed = true;
    if (this.#queued > 0) {
      this.#logger.warn("webhook events dropped at shutdown", {
        events: this.#queued,
      });
    }
    this.#discardAll();
    this.#abort.abort();
    await Promise.allSettled([...this.#requests]);
    this.#client?.close();
    this.#client = null;
  }

  /** Drops every queued event, counting each. */
  #discardAll(): void {
    for (const queue of this.#queues.values()) {
      clearTimeout(queue.timer);
      queue.discarded = true;
      this.counters.dropped += queue.events.length;
    }
    this.#queues.clear();
    this.#ready.clear();
    this.#queued = 0;
    this.#wakeIdle();
  }

  /** Starts requests for ready queues up to the concurrency bound. */
  #pump(): void {
    const url = this.#url;
    if (url === undefined || this.#closed) return;
    while (
      this.#requests.size < this.#settings.maxConcurrentRequests &&
      this.#ready.size > 0
    ) {
      const queue = this.#ready.values().next().value!;
      this.#ready.delete(queue);
      const request = this.#attempt(queue, url);
      this.#requests.add(request);
      const settle = () => {
        this.#requests.delete(request);
        this.#pump();
      };
      request.then(settle, (error) => {
        this.#logger.error("webhook delivery step failed", {
          key: queue.key,
          error: errorMessage(error),
        });
        settle();
      });
    }
  }

  /** Sends the head of `queue` once, then settles, retries or moves on. */
  async #attempt(queue: KeyQueue, url: string): Promise<void> {
    const event = queue.events[0]!;
    event.attempts++;
    const failure = await this.#post(url, event.body);
    if (queue.discarded || this.#closed) return;

    if (failure === null) {
      this.counters.delivered++;
      this.#finishHead(queue);
      return;
    }

    const settings = this.#settings;
    if (event.attempts >= settings.maxAttempts) {
      this.counters.failed++;
      this.#logger.warn("webhook delivery failed, event given up", {
        event: event.event,
        room: event.room,
        attempts: event.attempts,
        error: failure,
      });
      this.#finishHead(queue);
      return;
    }

    const delayMs = Math.min(
      settings.maxRetryDelayMs,
      settings.retryDelayMs * 2 ** (event.attempts - 1),
    );
    this.#logger.warn("webhook delivery failed, retrying", {
      event: event.event,
      room: event.room,
      attempt: event.attempts,
      retry_in_ms: delayMs,
      error: failure,
    });
    queue.timer = setTimeout(() => {
      queue.timer = undefined;
      this.#ready.add(queue);
      this.#pump();
    }, delayMs);
  }

  #finishHead(queue: KeyQueue): void {
    queue.events.shift();
    this.#queued--;
    if (queue.events.length > 0) {
      this.#ready.add(queue);
    } else {
      this.#queues.delete(queue.key);
    }
    if (this.#queued === 0) this.#wakeIdle();
  }

  #wakeIdle(): void {
    for (const wake of this.#idleWaiters) wake();
    this.#idleWaiters.clear();
  }

  /** POSTs one body; returns null on a 2xx response, else what failed. */
  async #post(url: string, body: string): Promise<string | null> {
    const timeoutMs = this.#settings.timeoutMs;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), timeoutMs);
    try {
      const headers: Record<string, string> = {
        "content-type": "application/json",
        "user-agent": WEBHOOK_USER_AGENT,
      };
      if (this.#signer !== null) {
        headers[SIGNATURE_HEADER] = await this.#signer.sign(body);
      }
      this.#client ??= Deno.createHttpClient({});
      const response = await fetch(url, {
        method: "POST",
        headers,
        body,
        redirect: "manual",
        signal: AbortSignal.any([timeout.signal, this.#abort.signal]),
        client: this.#client,
      });
      await response.body?.cancel();
      if (response.status >= 200 && response.status < 300) return null;
      return `HTTP status ${response.status}`;
    } catch (error) {
      if (timeout.signal.aborted) return `timed out after ${timeoutMs} ms`;
      return errorMessage(error);
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Checks webhook settings without applying them; returns the limits with
 * defaults filled in. Throws a TypeError for a URL that is not http(s) or
 * an empty secret, and a RangeError for a limit below 1.
 */
export function checkWebhookSettings(
  settings: WebhookSettings,
): Required<Omit<WebhookSettings, "url" | "secret">> {
  const url = settings.url;
  if (url !== undefined && !isHttpUrl(url)) {
    throw new TypeError(
      `Invalid webhook URL ${JSON.stringify(url)}: use an http:// or ` +
        "https:// URL",
    );
  }

  if (settings.secret === "") {
    throw new TypeError(
      "Invalid webhook secret: it is empty; set a random string of at " +
        "least 32 bytes or leave the secret unset",
    );
  }

  const limits = {
    timeoutMs: settings.timeoutMs,
    maxAttempts: settings.maxAttempts,
    retryDelayMs: settings.retryDelayMs,
    maxRetryDelayMs: settings.maxRetryDelayMs,
    queueLimit: settings.queueLimit,
    maxConcurrentRequests: settings.maxConcurrentRequests ??
      DEFAULT_WEBHOOK_LIMITS.maxConcurrentRequests,
  };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(
        `Invalid webhook setting ${name}: ${value}; use a positive integer`,
      );
    }
  }
  return limits;
}

function isHttpUrl(text: string): boolean {
  if (!URL.canParse(text)) return false;
  const protocol = new URL(text).protocol;
  return protocol === "http:" || protocol === "https:";
}
