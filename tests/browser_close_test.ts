/**
 * A page that goes away leaves its room at once, over either transport.
 * The relay's liveness timeout is set far above the test's wait, so a
 * participant that leaves within the wait left because the page closed
 * its session, not because the relay timed it out.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  hasChromium,
  launchChromium,
  openCallPage,
  PAGE_WAIT_MS,
  readState,
  startBrowserTestRelay,
  warnIfNoChromium,
} from "./browser_helpers.ts";
import { waitFor } from "./helpers.ts";

warnIfNoChromium("browser_close_test.ts");

/** Liveness timeout of the test relay: four times the test's wait. */
const LIVENESS_TIMEOUT_MS = 4 * PAGE_WAIT_MS;

for (const transport of ["wt", "ws"] as const) {
  Deno.test({
    name: `closed ${transport} page leaves room`,
    ignore: !hasChromium,
    async fn() {
      await using test = await startBrowserTestRelay({
        livenessTimeoutMs: LIVENESS_TIMEOUT_MS,
      });
      const browser = await launchChromium();
      const log: string[] = [];
      try {
        const page = await openCallPage(
          browser,
          test.pageUrl("closing", { transport }),
          log,
        );
        assert.equal((await readState(page)).transport, transport);
        assert.equal(test.relay.sessionCount, 1);

        await page.close();
        await waitFor(
          () => test.relay.sessionCount === 0,
          PAGE_WAIT_MS,
          `the closed ${transport} page to leave`,
        );
      } finally {
        await browser.close();
      }
    },
  });
}
