/**
 * Voice through the relay in headless Chromium: two pages with the fake
 * microphone (a beep tone) join one room over WebSocket, WebTransport, or
 * one of each. Each page must decode the other's Opus frames and play them
 * above silence. Mute must stop the flow and unmute must restart it. Leave
 * must update the other page's participant list.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Browser, Page } from "playwright-core";
import {
  type BrowserTestRelay,
  hasChromium,
  launchChromium,
  openCallPage,
  type PageState,
  readState,
  startBrowserTestRelay,
  waitForPage,
  waitForRise,
  warnIfNoChromium,
} from "./browser_helpers.ts";

warnIfNoChromium("browser_voice_test.ts");

/**
 * Playback level (RMS, 0..1) that counts as sound: -40 dBFS. The fake
 * microphone's beep plays back at about 0.05 to 0.3.
 */
const SILENCE_LEVEL = 0.01;

/** Frames each page must decode from the other: 0.5 s of audio. */
const DECODED_FRAMES = 25;

/** Time a counter must stay unchanged to count as stopped, in ms. */
const QUIET_MS = 400;

/** Time over which a muted sender must deliver nothing, in ms. */
const MUTED_WINDOW_MS = 1_000;

type Transport = "ws" | "wt";

/** Runs the whole call scenario with pages on `transports[0]` and `[1]`. */
async function checkVoiceCall(
  transports: [Transport, Transport],
): Promise<void> {
  await using test = await startBrowserTestRelay();
  const browser = await launchChromium();
  const log: string[] = [];
  try {
    const [first, second] = await openPair(browser, test, transports, log);
    await checkBothJoined(first, second, transports, log);

    for (const page of [first, second]) {
      await waitForRise(page, "decoded", DECODED_FRAMES, "Opus frames", log);
      const state = await waitForPage(
        page,
        (state) => state.level > SILENCE_LEVEL,
        `a playback level above ${SILENCE_LEVEL}`,
        log,
      );
      assert.ok(state.level <= 1, `level out of range: ${state.level}`);
    }

    await checkMuteStopsFlow(first, second, log);
    await checkLeaveUpdatesList(first, second, log);

    const pageErrors = log.filter((line) => line.startsWith("pageerror"));
    assert.deepEqual(pageErrors, []);
  } finally {
    await browser.close();
  }
}

async function openPair(
  browser: Browser,
  test: BrowserTestRelay,
  transports: [Transport, Transport],
  log: string[],
): Promise<[Page, Page]> {
  const pages: Page[] = [];
  for (const [index, transport] of transports.entries()) {
    const url = test.pageUrl("voice", {
      transport,
      alias: `speaker-${index + 1}`,
    });
    pages.push(await openCallPage(browser, url, log));
  }
  return [pages[0]!, pages[1]!];
}

async function checkBothJoined(
  first: Page,
  second: Page,
  transports: [Transport, Transport],
  log: string[],
): Promise<void> {
  const expected = [...transports].sort();
  for (const [index, page] of [first, second].entries()) {
    const state = await waitForPage(
      page,
      (state) => state.participants.length === 2,
      "both participants in the list",
      log,
    );
    assert.equal(state.transport, transports[index]);
    const listed = state.participants.map((p) => p.transport).sort();
    assert.deepEqual(listed, expected);
  }
}

/** Waits until `key` of `page` stays the same for QUIET_MS. */
async function waitForQuiet(
  page: Page,
  key: "sent" | "received",
  log: string[],
): Promise<PageState> {
  let previous = -1;
  let since = performance.now();
  return await waitForPage(
    page,
    (state) => {
      const now = performance.now();
      if (state[key] !== previous) {
        previous = state[key];
        since = now;
      }
      return now - since >= QUIET_MS;
    },
    `${key} to stop rising`,
    log,
  );
}

async function checkMuteStopsFlow(
  first: Page,
  second: Page,
  log: string[],
): Promise<void> {
  await first.click("#mute");
  const muted = await waitForQuiet(first, "sent", log);
  assert.equal(muted.muted, true);
  const before = await waitForQuiet(second, "received", log);

  await second.waitForTimeout(MUTED_WINDOW_MS);
  const after = await readState(second);
  assert.equal(after.received, before.received);
  const firstAfter = await readState(first);
  assert.equal(firstAfter.sent, muted.sent);

  await first.click("#mute");
  await waitForRise(second, "received", 10, "packets after unmute", log);
}

async function checkLeaveUpdatesList(
  first: Page,
  second: Page,
  log: string[],
): Promise<void> {
  const leavingId = (await readState(first)).participantId;
  assert.ok(leavingId !== null, "the leaving page has no participant id");

  await first.click("#leave");
  const left = await waitForPage(
    first,
    (state) => state.state === "closed",
    "the leaving page to close",
    log,
  );
  assert.equal(left.level, 0);
  const message = await first.locator("#message").textContent();
  assert.equal(message, "You left the room.");

  const remaining = await waitForPage(
    second,
    (state) => state.participants.length === 1,
    "the list without the leaving participant",
    log,
  );
  assert.equal(remaining.state, "joined");
  const ids = remaining.participants.map((p) => p.id);
  assert.ok(!ids.includes(leavingId), `${leavingId} still listed`);
}

Deno.test({
  name: "voice flows over WebSocket",
  ignore: !hasChromium,
  fn: () => checkVoiceCall(["ws", "ws"]),
});

Deno.test({
  name: "voice flows over WebTransport",
  ignore: !hasChromium,
  fn: () => checkVoiceCall(["wt", "wt"]),
});

Deno.test({
  name: "voice flows across transports",
  ignore: !hasChromium,
  fn: () => checkVoiceCall(["wt", "ws"]),
});
