/**
 * Helpers for the Chromium tests of the browser page: launching headless
 * Chromium through playwright-core with a fake microphone, starting a relay
 * with WebSocket and WebTransport, opening call pages and reading their
 * `window.relayClientState` with bounded waits.
 *
 * @module
 */

import { type Browser, chromium, type Page } from "playwright-core";
import { Relay } from "../src/relay.ts";
import type { RelayOptions } from "../src/options.ts";
import { silentLogger } from "../src/log.ts";

/** Where the tests expect Chromium (Debian's `chromium` package). */
export const CHROMIUM_PATH = "/usr/bin/chromium";

/** Bound of each wait on a page, in ms. */
export const PAGE_WAIT_MS = 15_000;

/**
 * Chromium flags: the headless defaults of this project, a fake microphone
 * that plays a beep tone and is allowed without a prompt, and autoplay
 * without a user gesture. Without the last flag, the page's AudioContext
 * stays suspended in headless Chromium 156, so nothing is captured or played.
 */
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
  "--autoplay-policy=no-user-gesture-required",
];

/** True when Chromium is installed. The browser tests are skipped without it. */
export const hasChromium: boolean = (() => {
  try {
    return Deno.statSync(CHROMIUM_PATH).isFile;
  } catch {
    return false;
  }
})();

/** Logs once per test file why its tests are ignored. */
export function warnIfNoChromium(file: string): void {
  if (hasChromium) return;
  console.warn(
    `${file}: skipping the browser tests because ${CHROMIUM_PATH} is ` +
      "missing; install it with `apt-get install -y chromium`",
  );
}

/** `window.relayClientState` of the page, as the tests read it. */
export interface PageState {
  state: string;
  transport: "ws" | "wt" | null;
  participantId: string | null;
  participants: {
    id: string;
    source: number;
    alias: string | null;
    transport: string;
  }[];
  sent: number;
  received: number;
  decoded: number;
  lost: number;
  level: number;
  muted: boolean;
}

/** A relay on 127.0.0.1 with WebTransport, and its data directory. */
export interface BrowserTestRelay extends AsyncDisposable {
  relay: Relay;
  /** URL of the page for `room`, with the extra query parameters given. */
  pageUrl(room: string, query?: Record<string, string>): string;
}

/**
 * Starts a relay on 127.0.0.1 with free HTTP and WebTransport ports and a
 * temporary data directory; `options` override these.
 */
export async function startBrowserTestRelay(
  options: Partial<RelayOptions> = {},
): Promise<BrowserTestRelay> {
  const dataDir = await Deno.makeTempDir({ prefix: "relay-browser-test-" });
  let relay: Relay;
  try {
    relay = await Relay.start(
      { host: "127.0.0.1", httpPort: 0, wtPort: 0, dataDir, ...options },
      { logger: silentLogger },
    );
  } catch (error) {
    await Deno.remove(dataDir, { recursive: true });
    throw error;
  }

  return {
    relay,
    pageUrl(room, query = {}) {
      const url = new URL(`${relay.httpUrl}/`);
      url.searchParams.set("room", room);
      for (const [key, value] of Object.entries(query)) {
        url.searchParams.set(key, value);
      }
      return url.href;
    },
    async [Symbol.asyncDispose]() {
      await relay.stop();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

/** Launches headless Chromium with CHROMIUM_ARGS. */
export async function launchChromium(): Promise<Browser> {
  return await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: CHROMIUM_ARGS,
    timeout: PAGE_WAIT_MS,
  });
}

/**
 * Opens `url` in a new browser context (so each page has its own
 * microphone permission and storage) and waits until its call is
 * connected. Page errors and console warnings are collected in `log`.
 */
export async function openCallPage(
  browser: Browser,
  url: string,
  log: string[] = [],
): Promise<Page> {
  const page = await openPage(browser, url, log);
  await waitForPage(
    page,
    (state) => state.state === "joined",
    "the call to connect",
    log,
  );
  return page;
}

/**
 * Opens `url` in a new browser context without waiting for the call.
 * Page errors and console warnings are collected in `log`.
 */
export async function openPage(
  browser: Browser,
  url: string,
  log: string[] = [],
): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(PAGE_WAIT_MS);
  page.on("pageerror", (error) => log.push(`pageerror: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "warning" || message.type() === "error") {
      log.push(`console.${message.type()}: ${message.text()}`);
    }
  });

  await page.goto(url);
  return page;
}

/** Returns the text of the page's status message. */
export async function messageText(page: Page): Promise<string> {
  return await page.locator("#message").textContent() ?? "";
}

/** Returns the page's `window.relayClientState`. */
export async function readState(page: Page): Promise<PageState> {
  return await page.evaluate(() =>
    structuredClone(
      (globalThis as unknown as { relayClientState: PageState })
        .relayClientState,
    )
  );
}

/**
 * Polls the page's state until `condition` holds, for at most
 * `timeoutMs`. The error names `what`, the last state seen and `log`.
 */
export async function waitForPage(
  page: Page,
  condition: (state: PageState) => boolean,
  what: string,
  log: string[] = [],
  timeoutMs = PAGE_WAIT_MS,
): Promise<PageState> {
  const deadline = performance.now() + timeoutMs;
  let state = await readState(page);
  while (!condition(state)) {
    if (performance.now() > deadline) {
      const summary = JSON.stringify({ ...state, participants: undefined });
      const message = await messageText(page);
      throw new Error(
        `Timed out after ${timeoutMs} ms waiting for ${what}; last state ` +
          `${summary}, message "${message}", page log: ` +
          (log.join(" | ") || "(empty)"),
      );
    }
    await page.waitForTimeout(50);
    state = await readState(page);
  }
  return state;
}

/**
 * Waits until `page` has seen at least `count` more than `base` of the
 * counter `key`, which shows that the counter is rising.
 */
export async function waitForRise(
  page: Page,
  key: "sent" | "received" | "decoded",
  count: number,
  what: string,
  log: string[] = [],
): Promise<PageState> {
  const base = (await readState(page))[key];
  return await waitForPage(
    page,
    (state) => state[key] >= base + count,
    `${what} (${key} to rise by ${count} from ${base})`,
    log,
  );
}
