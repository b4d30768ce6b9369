import assert from "node:assert/strict";
import { silentLogger } from "../src/log.ts";
import { Relay } from "../src/relay.ts";

const OPTIONS = {
  host: "127.0.0.1",
  httpPort: 0,
  wtPort: 0,
  noWebTransport: true,
};

Deno.test("data directory admits one relay", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "relay-lock-" });
  try {
    const first = await Relay.start({ ...OPTIONS, dataDir }, {
      logger: silentLogger,
    });
    try {
      await assert.rejects(
        Relay.start({ ...OPTIONS, dataDir }, { logger: silentLogger }),
        /Another relay is using the data directory .* \(--data-dir\)/,
      );
    } finally {
      await first.stop();
    }

    // The lock goes with the relay that held it.
    const second = await Relay.start({ ...OPTIONS, dataDir }, {
      logger: silentLogger,
    });
    assert.equal(second.identity.fingerprint, first.identity.fingerprint);
    await second.stop();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
