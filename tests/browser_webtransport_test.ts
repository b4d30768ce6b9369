/**
 * Chromium end to end: RelayClient loaded from `/assets/relay_client.js`,
 * one page over WebTransport (hashes from `/api/webtransport`, no
 * certificate flags) and one over WebSocket, in one room.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type Browser, chromium, type Page } from "playwright-core";
import { fetchJson, waitFor } from "./helpers.ts";
import { hasWebTransport, startWtRelay } from "./webtransport_helpers.ts";

const CHROMIUM_PATH = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const WAIT_MS = 15_000;

const hasChromium = (() => {
  try {
    return Deno.statSync(CHROMIUM_PATH).isFile;
  } catch {
    return false;
  }
})();
if (!hasChromium) {
  console.warn(
    `browser_webtransport_test.ts: skipped because ${CHROMIUM_PATH} is ` +
      "missing; install it with `apt-get install -y chromium`",
  );
}

/** Client state that a page exposes to the test as `window.test`. */
interface PageClient {
  state: string;
  transport: string;
  participants: { id: string; source: number; transport: string }[];
  received: { source: number; bytes: number[] }[];
  closes: { code: number; reason: string; errorCode: string | null }[];
  participantId: string | null;
}

/**
 * Joins `room` from `page` with RelayClient over `transport` and keeps the
 * client and what it receives in `window.test`.
 */
async function joinFromPage(
  page: Page,
  transport: "ws" | "wt",
  room: string,
): Promise<string> {
  return await page.evaluate(async ([transport, room]) => {
    const { RelayClient } = await import("/assets/relay_client.js");
    let client;
    if (transport === "wt") {
      const info = await RelayClient.fetchWebTransportInfo(location.origin);
      client = new RelayClient(info.url + encodeURIComponent(room), {
        serverCertificateHashes: info.certificateHashes,
      });
    } else {
      client = new RelayClient(
        `ws://${location.host}/ws/${encodeURIComponent(room)}`,
      );
    }
    const received: { source: number; bytes: number[] }[] = [];
    const closes: unknown[] = [];
    client.onMedia = (source: number, packet: Uint8Array) => {
      received.push({ source, bytes: Array.from(packet) });
    };
    client.addEventListener("close", (event: Event) => {
      closes.push((event as CustomEvent).detail);
    });
    Object.assign(globalThis, {
      relayClient: client,
      test: {
        get state() {
          return client.state;
        },
        get transport() {
          return client.transport;
        },
        get participants() {
          return client.participants;
        },
        get participantId() {
          return client.participantId;
        },
        received,
        closes,
      },
    });
    const welcome = await client.connect();
    return welcome.participant_id as string;
  }, [transport, room] as const);
}

function readClient(page: Page): Promise<PageClient> {
  return page.evaluate(() => {
    const test = (globalThis as unknown as { test: PageClient }).test;
    return JSON.parse(JSON.stringify({
      state: test.state,
      transport: test.transport,
      participants: test.participants,
      received: test.received,
      closes: test.closes,
      participantId: test.participantId,
    }));
  });
}

async function waitForPage(
  page: Page,
  condition: (client: PageClient) => boolean,
  what: string,
): Promise<PageClient> {
  const deadline = performance.now() + WAIT_MS;
  for (;;) {
    const client = await readClient(page);
    if (condition(client)) return client;
    if (performance.now() > deadline) {
      throw new Error(
        `Timed out waiting for ${what}: ${JSON.stringify(client)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Sends one media packet of `length` bytes with `fill` from `page`. */
function sendFromPage(page: Page, length: number, fill: number) {
  return page.evaluate(([length, fill]) => {
    const packet = new Uint8Array(length);
    for (let i = 12; i < length; i++) packet[i] = (fill + i) & 0xff;
    const client = (globalThis as unknown as {
      relayClient: { sendMedia(packet: Uint8Array): boolean };
    }).relayClient;
    return client.sendMedia(packet);
  }, [length, fill] as const);
}

function expectedBytes(length: number, fill: number): number[] {
  const bytes = new Array<number>(length).fill(0);
  for (let i = 12; i < length; i++) bytes[i] = (fill + i) & 0xff;
  return bytes;
}

Deno.test({
  name: "browser webtransport and websocket share room",
  ignore: !hasChromium || !hasWebTransport,
  async fn() {
    await using test = await startWtRelay();
    let browser: Browser | undefined;
    try {
      browser = await chromium.launch({
        executablePath: CHROMIUM_PATH,
        args: CHROMIUM_ARGS,
      });
      const wtPage = await browser.newPage();
      const wsPage = await browser.newPage();
      // Any page of the relay's origin can import the client module.
      await wtPage.goto(`${test.relay.httpUrl}/healthz`);
      await wsPage.goto(`${test.relay.httpUrl}/healthz`);

      const wtId = await joinFromPage(wtPage, "wt", "browser room");
      const wsId = await joinFromPage(wsPage, "ws", "browser room");
      const both = (client: PageClient) => client.participants.length === 2;
      const atWt = await waitForPage(wtPage, both, "two participants");
      await waitForPage(wsPage, both, "two participants");
      assert.equal(atWt.transport, "wt");
      assert.deepEqual(
        atWt.participants.map((p) => [p.id, p.transport]),
        [[wtId, "wt"], [wsId, "ws"]],
      );
      const sourceOf = (id: string) =>
        atWt.participants.find((p) => p.id === id)!.source;

      assert.equal(await sendFromPage(wtPage, 1100, 1), true);
      assert.equal(await sendFromPage(wsPage, 300, 2), true);
      const gotWs = await waitForPage(
        wsPage,
        (client) => client.received.length >= 1,
        "media at the WebSocket page",
      );
      const gotWt = await waitForPage(
        wtPage,
        (client) => client.received.length >= 1,
        "media at the WebTransport page",
      );
      assert.equal(gotWs.received[0]!.source, sourceOf(wtId));
      assert.deepEqual(gotWs.received[0]!.bytes, expectedBytes(1100, 1));
      assert.equal(gotWt.received[0]!.source, sourceOf(wsId));
      assert.deepEqual(gotWt.received[0]!.bytes, expectedBytes(300, 2));

      // Chromium never exposes the relay's WebTransport close code; the
      // client reports the one its error signal implies.
      const kicked = await fetchJson(
        test.relay,
        `/api/rooms/${encodeURIComponent("browser room")}/participants/${wtId}`,
        { method: "DELETE" },
      );
      assert.equal(kicked.status, 200);
      const closed = await waitForPage(
        wtPage,
        (client) => client.closes.length === 1,
        "the close after the kick",
      );
      assert.equal(closed.closes[0]!.code, 4410);
      assert.equal(closed.closes[0]!.errorCode, "kicked");
      assert.equal(closed.state, "closed");
      await waitFor(() => test.relay.sessionCount === 1, WAIT_MS, "one left");

      await wsPage.evaluate(() =>
        (globalThis as unknown as { relayClient: { close(): Promise<void> } })
          .relayClient.close()
      );
      const wsClosed = await readClient(wsPage);
      assert.equal(wsClosed.closes[0]!.code, 1000);
    } finally {
      await browser?.close();
    }
  },
});
