/**
 * The config files in examples/ load through loadConfig and start a relay,
 * with ports, bind address and data directory overridden for the test.
 * The federation pair gets real fingerprints in place of its placeholders
 * and must link up.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../src/config.ts";
import { RelayIdentity } from "../src/identity/identity.ts";
import { silentLogger } from "../src/log.ts";
import type { RelayOptions } from "../src/options.ts";
import { Relay } from "../src/relay.ts";
import { waitFor } from "./helpers.ts";

const EXAMPLES_DIR = fileURLToPath(new URL("../examples/", import.meta.url));
const FEDERATION_A = "federation-a.yaml";
const FEDERATION_B = "federation-b.yaml";
const LINK_WAIT_MS = 15_000;

async function exampleFiles(): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(EXAMPLES_DIR)) {
    if (entry.isFile && /\.ya?ml$/.test(entry.name)) names.push(entry.name);
  }
  return names.sort();
}

async function loadExample(name: string): Promise<RelayOptions> {
  const loaded = await loadConfig(["--config", join(EXAMPLES_DIR, name)], {});
  assert.deepEqual(loaded.warnings, [], `warnings loading ${name}`);
  return loaded.options;
}

/** Keeps the example's options but listens on free loopback ports. */
function forTest(options: RelayOptions, dataDir: string): RelayOptions {
  return { ...options, host: "127.0.0.1", httpPort: 0, wtPort: 0, dataDir };
}

async function withTempDirs<T>(
  count: number,
  fn: (dirs: string[]) => Promise<T>,
): Promise<T> {
  const dirs: string[] = [];
  try {
    for (let i = 0; i < count; i++) {
      dirs.push(await Deno.makeTempDir({ prefix: "relay-example-" }));
    }
    return await fn(dirs);
  } finally {
    for (const dir of dirs) await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("examples include the federation pair", async () => {
  const names = await exampleFiles();
  assert.ok(names.includes("relay.yaml"));
  assert.ok(names.includes(FEDERATION_A));
  assert.ok(names.includes(FEDERATION_B));
});

Deno.test("standalone examples start", async () => {
  const names = (await exampleFiles()).filter((name) =>
    name !== FEDERATION_A && name !== FEDERATION_B
  );
  for (const name of names) {
    const options = await loadExample(name);
    const federation = options.federation;
    assert.equal(
      federation.peers.length + federation.trusted.length,
      0,
      `${name} configures federation peers; test it as a pair`,
    );

    await withTempDirs(1, async ([dataDir]) => {
      const relay = await Relay.start(forTest(options, dataDir!), {
        logger: silentLogger,
      });
      try {
        assert.equal(relay.state, "running", name);
        const response = await fetch(`${relay.httpUrl}/readyz`);
        await response.body?.cancel();
        assert.equal(response.status, 200, `${name} is not ready`);
      } finally {
        await relay.stop();
      }
    });
  }
});

Deno.test("federation examples link up", async () => {
  const exampleA = await loadExample(FEDERATION_A);
  const exampleB = await loadExample(FEDERATION_B);
  assert.equal(exampleA.federation.peers.length, 1);
  assert.equal(exampleB.federation.trusted.length, 1);

  await withTempDirs(2, async ([dirA, dirB]) => {
    // Each relay creates its identity in its data directory on start; make
    // them first so that each config can name the other's fingerprint.
    const identityA = await RelayIdentity.loadOrCreate(dirA!);
    const identityB = await RelayIdentity.loadOrCreate(dirB!);

    const optionsB = forTest(exampleB, dirB!);
    optionsB.federation = {
      ...exampleB.federation,
      trusted: exampleB.federation.trusted.map((entry) => ({
        ...entry,
        fingerprint: identityA.fingerprint,
      })),
    };
    const relayB = await Relay.start(optionsB, { logger: silentLogger });
    let relayA: Relay | undefined;
    try {
      assert.equal(relayB.identity.fingerprint, identityB.fingerprint);

      const optionsA = forTest(exampleA, dirA!);
      optionsA.federation = {
        ...exampleA.federation,
        peers: exampleA.federation.peers.map((peer) => {
          const url = new URL(peer.url);
          url.port = String(relayB.wtPort);
          return {
            ...peer,
            url: url.href,
            httpUrl: relayB.httpUrl,
            fingerprint: identityB.fingerprint,
          };
        }),
      };
      relayA = await Relay.start(optionsA, { logger: silentLogger });
      assert.equal(relayA.identity.fingerprint, identityA.fingerprint);

      const a = relayA;
      await waitFor(
        () =>
          a.federation.links.length === 1 &&
          relayB.federation.links.length === 1,
        LINK_WAIT_MS,
        `${FEDERATION_A} and ${FEDERATION_B} to link`,
      );
      assert.equal(
        a.federation.links[0]!.peerFingerprint,
        identityB.fingerprint,
      );
      assert.equal(
        relayB.federation.links[0]!.peerFingerprint,
        identityA.fingerprint,
      );
    } finally {
      await relayA?.stop();
      await relayB.stop();
    }
  });
});
