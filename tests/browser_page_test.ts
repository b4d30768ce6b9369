/**
 * The browser page in headless Chromium. Two pages in one room list each
 * other and receive each other's packets. The page prefers WebTransport,
 * falls back to WebSocket, and explains why the relay closed a session.
 *
 * @module
 */

import assert from "node:assert/strict";
import { signJwt } from "../src/auth/jwt.ts";
import {
  hasChromium,
  launchChromium,
  messageText,
  openCallPage,
  openPage,
  readState,
  startBrowserTestRelay,
  waitForPage,
  waitForRise,
  warnIfNoChromium,
} from "./browser_helpers.ts";

warnIfNoChromium("browser_page_test.ts");

Deno.test({
  name: "page joins and receives over WebSocket",
  ignore: !hasChromium,
  async fn() {
    await using test = await startBrowserTestRelay();
    const browser = await launchChromium();
    const log: string[] = [];
    try {
      const url = test.pageUrl("x", { transport: "ws" });
      const first = await openCallPage(browser, url, log);
      const second = await openCallPage(browser, url, log);

      for (const page of [first, second]) {
        const state = await waitForPage(
          page,
          (state) => state.participants.length === 2,
          "both participants in the list",
          log,
        );
        assert.equal(state.transport, "ws");
        const transports = state.participants.map((p) => p.transport);
        assert.deepEqual(transports, ["ws", "ws"]);
      }

      const firstIds = (await readState(first)).participants.map((p) => p.id);
      const secondIds = (await readState(second)).participants.map((p) => p.id);
      assert.deepEqual(firstIds, secondIds);

      for (const page of [first, second]) {
        await waitForRise(page, "received", 25, "the other's packets", log);
        const state = await readState(page);
        assert.ok(
          state.sent > 0,
          `page sent nothing: ${JSON.stringify(state)}`,
        );
      }
    } finally {
      await browser.close();
    }
  },
});

Deno.test({
  name: "page prefers WebTransport",
  ignore: !hasChromium,
  async fn() {
    await using test = await startBrowserTestRelay();
    const browser = await launchChromium();
    const log: string[] = [];
    try {
      const page = await openCallPage(browser, test.pageUrl("auto"), log);
      const state = await readState(page);
      assert.equal(state.transport, "wt");
      assert.equal(await page.locator("#fallback").isHidden(), true);
    } finally {
      await browser.close();
    }
  },
});

Deno.test({
  name: "page falls back to WebSocket",
  ignore: !hasChromium,
  async fn() {
    await using test = await startBrowserTestRelay({ noWebTransport: true });
    const browser = await launchChromium();
    const log: string[] = [];
    try {
      const page = await openCallPage(browser, test.pageUrl("auto"), log);
      const state = await readState(page);
      assert.equal(state.transport, "ws");
      const note = await page.locator("#fallback").textContent() ?? "";
      assert.match(note, /^Using WebSocket because WebTransport failed/);
    } finally {
      await browser.close();
    }
  },
});

Deno.test({
  name: "page explains missing token",
  ignore: !hasChromium,
  async fn() {
    const secret = "browser-test-secret";
    await using test = await startBrowserTestRelay({ tokenSecret: secret });
    const browser = await launchChromium();
    const log: string[] = [];
    try {
      for (const transport of ["ws", "wt"]) {
        const page = await openPage(
          browser,
          test.pageUrl("locked", { transport }),
          log,
        );
        await waitForPage(
          page,
          (state) => state.state === "closed",
          `the ${transport} join to be rejected`,
          log,
        );
        assert.match(await messageText(page), /requires a valid token/);
      }

      const token = await signJwt(secret, { sub: "carol", room: "locked" });
      const page = await openCallPage(
        browser,
        test.pageUrl("locked", { token }),
        log,
      );
      assert.equal((await readState(page)).state, "joined");
    } finally {
      await browser.close();
    }
  },
});

Deno.test({
  name: "page explains operator removal",
  ignore: !hasChromium,
  async fn() {
    await using test = await startBrowserTestRelay();
    const browser = await launchChromium();
    const log: string[] = [];
    try {
      for (const transport of ["ws", "wt"]) {
        const page = await openCallPage(
          browser,
          test.pageUrl("kick", { transport }),
          log,
        );
        const { participantId } = await readState(page);
        const response = await fetch(
          `${test.relay.httpUrl}/api/rooms/kick/participants/${participantId}`,
          { method: "DELETE" },
        );
        await response.body?.cancel();
        assert.equal(response.status, 200);

        await waitForPage(
          page,
          (state) => state.state === "closed",
          `the ${transport} page to be closed`,
          log,
        );
        assert.equal(
          await messageText(page),
          "An operator removed you from the room.",
        );
      }
    } finally {
      await browser.close();
    }
  },
});

Deno.test({
  name: "page joins from the form",
  ignore: !hasChromium,
  async fn() {
    await using test = await startBrowserTestRelay();
    const browser = await launchChromium();
    const log: string[] = [];
    try {
      const page = await openPage(browser, `${test.relay.httpUrl}/`, log);
      assert.equal((await readState(page)).state, "idle");

      await page.fill("input[name=room]", "form room");
      await page.fill("input[name=alias]", "dave");
      await page.fill("input[name=token]", "not-needed");
      await page.selectOption("select[name=transport]", "ws");
      await page.click("button[type=submit]");
      const state = await waitForPage(
        page,
        (state) => state.state === "joined",
        "the form join",
        log,
      );

      assert.equal(state.transport, "ws");
      assert.equal(state.participants[0]?.alias, "dave");
      const address = new URL(page.url());
      assert.equal(address.searchParams.get("room"), "form room");
      assert.equal(address.searchParams.get("alias"), "dave");
      assert.equal(address.searchParams.has("token"), false);
    } finally {
      await browser.close();
    }
  },
});
