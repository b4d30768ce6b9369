import assert from "node:assert/strict";
import { signJwt } from "../src/auth/jwt.ts";
import {
  CertificateManager,
  createSelfSignedCertificate,
  RelayIdentity,
  verifyCertificateHashes,
} from "../src/identity/mod.ts";
import { silentLogger } from "../src/log.ts";
import type { RelayOptions } from "../src/options.ts";
import { Relay } from "../src/relay.ts";
import { routeSession } from "../src/webtransport/routing.ts";
import { delay, fetchJson, waitFor, withTimeout } from "./helpers.ts";
import {
  closeAllWt,
  fetchWtInfo,
  hasWebTransport,
  joinWt,
  mediaPacket,
  relayFrame,
  startWtRelay,
  WtTestClient,
} from "./webtransport_helpers.ts";

const ignore = !hasWebTransport;

Deno.test("routeSession routes room and federation", () => {
  const room = routeSession("https://h:1/room/a%20b?token=t1");
  assert.equal(room.kind, "room");
  assert.equal(room.kind === "room" && room.room, "a b");
  assert.equal(room.kind === "room" && room.queryToken, "t1");
  assert.equal(routeSession("https://h:1/federation").kind, "federation");
  assert.equal(routeSession("https://h:1/").kind, "invalid");
  assert.equal(routeSession("https://h:1/room/").kind, "invalid");
  assert.equal(routeSession("https://h:1/room/a/b").kind, "invalid");
  assert.equal(routeSession("https://h:1/room/_x").kind, "invalid");
  assert.equal(routeSession("https://h:1/room/%FF").kind, "invalid");
});

Deno.test({
  name: "webtransport join sends welcome and room_update",
  ignore,
  async fn() {
    await using test = await startWtRelay();
    const { client, welcome } = await joinWt(test.relay, "lobby", {
      alias: "ann",
    });
    assert.equal(welcome.room, "lobby");
    assert.equal(welcome.relay, test.relay.identity.fingerprint);
    const update = await client.nextSignal("room_update");
    const participants = update.participants as Record<string, unknown>[];
    assert.equal(participants.length, 1);
    assert.equal(participants[0]!.transport, "wt");
    assert.equal(participants[0]!.alias, "ann");
    assert.equal(participants[0]!.id, welcome.participant_id);
    await client.close();
  },
});

Deno.test({
  name: "webtransport api info verifies",
  ignore,
  async fn() {
    await using test = await startWtRelay();
    const info = await fetchWtInfo(test.relay);
    assert.equal(info.url, `https://127.0.0.1:${test.relay.wtPort}/room/`);
    assert.equal(info.certificateHashes.length, 2);
    const identity = await fetchJson(test.relay, "/api/identity");
    const fingerprint = (identity.body as { fingerprint: string }).fingerprint;
    assert.equal(await verifyCertificateHashes(info, fingerprint), true);
    assert.equal(info.fingerprint, fingerprint);
  },
});

Deno.test({
  name: "webtransport api info uses Host header",
  ignore,
  async fn() {
    await using test = await startWtRelay();
    const port = test.relay.wtPort;
    // fetch() sets Host itself, so the relay method takes the header here.
    const named = await test.relay.webTransportInfo("localhost:8080");
    assert.equal(named?.url, `https://localhost:${port}/room/`);
    const ipv6 = await test.relay.webTransportInfo("[::1]:8080");
    assert.equal(ipv6?.url, `https://[::1]:${port}/room/`);
    const none = await test.relay.webTransportInfo(undefined);
    assert.equal(none?.url, `https://127.0.0.1:${port}/room/`);
  },
});

Deno.test("webtransport disabled answers 404", async () => {
  await using test = await startWtRelay({ noWebTransport: true });
  const response = await fetchJson(test.relay, "/api/webtransport");
  assert.equal(response.status, 404);
  assert.equal(test.relay.wtPort, 0);
  assert.equal(test.relay.wtUrl, null);
});

Deno.test({
  name: "webtransport datagrams fan out",
  ignore,
  async fn() {
    await using test = await startWtRelay();
    const a = await joinWt(test.relay, "fan");
    const b = await joinWt(test.relay, "fan");
    const c = await joinWt(test.relay, "fan");
    await a.client.sync();

    const update = await c.client.nextSignal("room_update");
    const sources = new Map(
      (update.participants as { id: string; source: number }[]).map((
        p,
      ) => [p.id, p.source]),
    );
    const sourceA = sources.get(a.welcome.participant_id as string)!;

    const packet = mediaPacket(100, 1);
    await a.client.sendDatagram(packet);
    assert.deepEqual(
      await b.client.nextDatagram(),
      relayFrame(sourceA, packet),
    );
    assert.deepEqual(
      await c.client.nextDatagram(),
      relayFrame(sourceA, packet),
    );

    // The largest packet fits every receiver's datagram.
    const largest = mediaPacket(1100, 2);
    await a.client.sendDatagram(largest);
    assert.deepEqual(
      await b.client.nextDatagram(),
      relayFrame(sourceA, largest),
    );
    await c.client.nextDatagram();

    await delay(50);
    assert.equal(a.client.drainDatagrams().length, 0);
    assert.equal(test.relay.stats.received.wt, 2);
    assert.equal(test.relay.stats.dropped.datagram_too_large, 0);
    await closeAllWt([a.client, b.client, c.client]);
  },
});

Deno.test({
  name: "webtransport drops oversize media packet",
  ignore,
  async fn() {
    await using test = await startWtRelay();
    const a = await joinWt(test.relay, "big");
    const b = await joinWt(test.relay, "big");

    await a.client.sendDatagram(mediaPacket(1101));
    await waitFor(
      () => test.relay.stats.dropped.too_long === 1,
      3_000,
      "the too_long drop",
    );
    await a.client.sendDatagram(mediaPacket(50));
    const frame = await b.client.nextDatagram();
    assert.equal(frame.length, 52);
    assert.equal(b.client.drainDatagrams().length, 0);
    await closeAllWt([a.client, b.client]);
  },
});

Deno.test({
  name: "webtransport drops frame over maxDatagramSize",
  ignore,
  async fn() {
    await using test = await startWtRelay();
    const a = await joinWt(test.relay, "mds");
    const sink = test.relay.rooms.get(a.welcome.room as never)!
      .get(a.welcome.participant_id as string)!.sink;

    sink.sendMedia(new Uint8Array(2_000));
    assert.equal(test.relay.stats.dropped.datagram_too_large, 1);
    sink.sendMedia(relayFrame(9, mediaPacket(40)));
    assert.equal((await a.client.nextDatagram()).length, 42);
    await a.client.close();
  },
});

Deno.test({
  name: "webtransport caps datagrams in flight",
  ignore,
  async fn() {
    await using test = await startWtRelay({ maxDatagramsInFlight: 8 });
    const a = await joinWt(test.relay, "flight");
    const sink = test.relay.rooms.get(a.welcome.room as never)!
      .get(a.welcome.participant_id as string)!.sink;

    const frame = relayFrame(1, mediaPacket(40));
    for (let i = 0; i < 100; i++) sink.sendMedia(frame);
    assert.equal(test.relay.stats.dropped.datagram_in_flight, 92);

    // Once the writes settle, sends go through again.
    await delay(50);
    sink.sendMedia(frame);
    assert.equal(test.relay.stats.dropped.datagram_in_flight, 92);
    await a.client.close();
  },
});

Deno.test({
  name: "webtransport closes slow consumer",
  ignore,
  async fn() {
    await using test = await startWtRelay({
      maxDatagramsInFlight: 1,
      slowConsumerTimeoutMs: 0,
    });
    const a = await joinWt(test.relay, "slow");
    const sink = test.relay.rooms.get(a.welcome.room as never)!
      .get(a.welcome.participant_id as string)!.sink;

    const frame = relayFrame(1, mediaPacket(40));
    for (let i = 0; i < 3; i++) sink.sendMedia(frame);
    const error = await a.client.nextSignal("error");
    assert.equal(error.code, "slow_consumer");
    assert.equal((await a.client.waitClosed()).closeCode, 4008);
  },
});

Deno.test({
  name: "webtransport leave updates others",
  ignore,
  async fn() {
    await using test = await startWtRelay();
    const a = await joinWt(test.relay, "leave");
    await a.client.nextSignal("room_update");
    const b = await joinWt(test.relay, "leave");
    await a.client.nextSignal("room_update");

    await b.client.sendSignal({ type: "hangup" });
    const closed = await b.client.waitClosed();
    assert.equal(closed.closeCode, 1000);
    const update = await a.client.nextSignal("room_update");
    const ids = (update.participants as { id: string }[]).map((p) => p.id);
    assert.deepEqual(ids, [a.welcome.participant_id]);
    await a.client.close();
  },
});

Deno.test({
  name: "webtransport client close leaves room",
  ignore,
  async fn() {
    await using test = await startWtRelay();
    const a = await joinWt(test.relay, "gone");
    const b = await joinWt(test.relay, "gone");
    await a.client.nextSignal("room_update");
    await a.client.nextSignal("room_update");

    await b.client.close();
    const update = await a.client.nextSignal("room_update");
    assert.equal((update.participants as unknown[]).length, 1);
    await waitFor(() => test.relay.sessionCount === 1, 3_000, "one session");
    await a.client.close();
  },
});

Deno.test({
  name: "webtransport query token authenticates",
  ignore,
  async fn() {
    const secret = "wt-test-secret";
    await using test = await startWtRelay({ tokenSecret: secret });
    const token = await signJwt(secret, { sub: "ann" });
    const client = await WtTestClient.open(
      test.relay,
      `/room/auth?token=${encodeURIComponent(token)}`,
    );
    const welcome = await client.join();
    assert.equal(welcome.type, "welcome");
    await client.close();

    const bad = await WtTestClient.open(test.relay, "/room/auth?token=bad");
    await bad.sendSignal({ type: "hello" });
    assert.equal((await bad.nextSignal("error")).code, "unauthorized");
    assert.equal((await bad.waitClosed()).closeCode, 4401);
  },
});

/** Opens `path`, optionally sends `send`, and returns the error and close. */
async function expectClose(
  client: WtTestClient,
  send?: (client: WtTestClient) => Promise<void>,
): Promise<{ errorCode: unknown; closeCode: number | null; reason: string }> {
  await send?.(client);
  const error = await client.nextSignal("error");
  const closed = await client.waitClosed();
  return { errorCode: error.code, ...closed };
}

Deno.test({
  name: "webtransport bad path closes 4400",
  ignore,
  async fn() {
    await using test = await startWtRelay();
    const client = await WtTestClient.open(test.relay, "/nowhere");
    const result = await expectClose(client);
    assert.equal(result.errorCode, "bad_request");
    assert.equal(result.closeCode, 4400);
    assert.equal(result.reason, "bad_request");
  },
});

Deno.test({
  name: "webtransport invalid room closes 4400",
  ignore,
  async fn() {
    await using test = await startWtRelay();
    const reserved = await WtTestClient.open(test.relay, "/room/_relay");
    const badUtf8 = await WtTestClient.open(test.relay, "/room/%FF");
    const [first, second] = await Promise.all([
      expectClose(reserved),
      expectClose(badUtf8),
    ]);
    assert.equal(first.closeCode, 4400);
    assert.equal(second.closeCode, 4400);
    assert.equal(test.relay.sessionCount, 0);
    assert.equal(test.relay.stats.requestsRejected.invalid_room, 2);
  },
});

Deno.test({
  name: "webtransport federation unconfigured closes 4403",
  ignore,
  async fn() {
    await using test = await startWtRelay();
    const client = await WtTestClient.open(test.relay, "/federation");
    const result = await expectClose(client);
    assert.equal(result.closeCode, 4403);
    assert.equal(result.reason, "forbidden");
  },
});

Deno.test({
  name: "webtransport malformed signal closes 4400",
  ignore,
  async fn() {
    await using test = await startWtRelay();
    const notJson = await WtTestClient.open(test.relay, "/room/bad");
    const notUtf8 = await WtTestClient.open(test.relay, "/room/bad");
    const [first, second] = await Promise.all([
      expectClose(notJson, (c) => c.sendText("not json")),
      expectClose(
        notUtf8,
        (c) => c.sendRaw(new Uint8Array([0, 0, 0, 2, 0xc3, 0x28])),
      ),
    ]);
    assert.equal(first.errorCode, "bad_request");
    assert.equal(first.closeCode, 4400);
    assert.equal(second.errorCode, "bad_request");
    assert.equal(second.closeCode, 4400);
  },
});

Deno.test({
  name: "webtransport media before hello closes 4400",
  ignore,
  async fn() {
    await using test = await startWtRelay();
    const client = await WtTestClient.open(test.relay, "/room/early");
    // A QUIC stream reaches the relay with its first bytes, so the relay
    // has no stream for the error signal here; the close code arrives.
    await client.sendDatagram(mediaPacket(20));
    const closed = await client.waitClosed();
    assert.equal(closed.closeCode, 4400);
    assert.equal(closed.reason, "bad_request");
  },
});

Deno.test({
  name: "webtransport oversize signal closes 4413",
  ignore,
  async fn() {
    await using test = await startWtRelay();
    const client = await WtTestClient.open(test.relay, "/room/huge");
    const prefix = new Uint8Array(4);
    new DataView(prefix.buffer).setUint32(0, 65_537);
    const result = await expectClose(client, (c) => c.sendRaw(prefix));
    assert.equal(result.errorCode, "too_large");
    assert.equal(result.closeCode, 4413);
    assert.equal(result.reason, "too_large");
  },
});

Deno.test({
  name: "webtransport handshake timeout closes 4408",
  ignore,
  async fn() {
    await using test = await startWtRelay({ handshakeTimeoutMs: 200 });
    // Without a signal stream no error signal can arrive; the code can.
    const silent = await WtTestClient.open(test.relay, "/room/quiet", {
      signalStream: false,
    });
    const withStream = await WtTestClient.open(test.relay, "/room/quiet");
    const [first, second] = await Promise.all([
      silent.waitClosed(),
      expectClose(withStream),
    ]);
    assert.equal(first.closeCode, 4408);
    assert.equal(second.errorCode, "timeout");
    assert.equal(second.closeCode, 4408);
  },
});

Deno.test({
  name: "webtransport full room closes 4409",
  ignore,
  async fn() {
    await using test = await startWtRelay({ maxParticipantsPerRoom: 1 });
    const first = await joinWt(test.relay, "small");
    const second = await WtTestClient.open(test.relay, "/room/small");
    const result = await expectClose(
      second,
      (c) => c.sendSignal({ type: "hello" }),
    );
    assert.equal(result.errorCode, "room_full");
    assert.equal(result.closeCode, 4409);
    await first.client.close();
  },
});

Deno.test({
  name: "webtransport shutdown closes 4503",
  ignore,
  async fn() {
    const test = await startWtRelay();
    try {
      const a = await joinWt(test.relay, "bye");
      const stopping = test.relay.stop();
      const error = await a.client.nextSignal("error");
      assert.equal(error.code, "shutting_down");
      assert.equal((await a.client.waitClosed()).closeCode, 4503);
      await stopping;
      assert.equal(test.relay.state, "stopped");
    } finally {
      await test.cleanup();
    }
  },
});

Deno.test({
  name: "webtransport counts failed handshakes",
  ignore,
  async fn() {
    await using test = await startWtRelay();
    const wrongHash = {
      algorithm: "sha-256" as const,
      value: "A".repeat(43) + "=",
    };
    await assert.rejects(
      WtTestClient.open(test.relay, "/room/x", { hashes: [wrongHash] }),
    );
    await waitFor(
      () => test.relay.stats.webTransportAcceptErrors === 1,
      3_000,
      "the accept error count",
    );
    // The endpoint still accepts sessions after a failed one.
    const { client } = await joinWt(test.relay, "x");
    await client.close();
  },
});

/** Starts a relay with WebTransport and the given certificates. */
async function startWithCertificates(
  dataDir: string,
  certificates: CertificateManager,
  options: Partial<RelayOptions> = {},
): Promise<Relay> {
  return await Relay.start({
    host: "127.0.0.1",
    httpPort: 0,
    wtPort: 0,
    dataDir,
    ...options,
  }, {
    logger: silentLogger,
    identity: await RelayIdentity.generate(),
    certificates,
  });
}

Deno.test({
  name: "webtransport rotation keeps sessions",
  ignore,
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "relay-wt-rotation-" });
    // Deno's client checks validity against the real clock. With 2 h of
    // validity and rotation 30 min before expiry, the next certificate's
    // notBefore is 30 min ago, so it is valid now, not only at the faked
    // time.
    const rotateBeforeMs = 30 * 60 * 1000;
    let now = Date.now();
    const certificates = await CertificateManager.create({
      dataDir,
      validityMs: 2 * 60 * 60 * 1000,
      rotateBeforeMs,
      now: () => now,
    });
    const relay = await startWithCertificates(dataDir, certificates);
    try {
      const before = await fetchWtInfo(relay);
      const a = await joinWt(relay, "rotate", {}, {
        hashes: before.certificateHashes,
      });

      now = certificates.current.notAfter.getTime() - rotateBeforeMs;
      assert.equal(await certificates.rotateIfDue(), true);
      const after = await fetchWtInfo(relay);
      assert.equal(
        after.certificateHashes[0]!.value,
        before.certificateHashes[1]!.value,
      );
      assert.equal(
        await verifyCertificateHashes(after, after.fingerprint),
        true,
      );

      // Pinning only the new current hash proves the listener switched.
      const b = await joinWt(relay, "rotate", {}, {
        hashes: [after.certificateHashes[0]!],
      });
      await a.client.sync();
      const update = await b.client.nextSignal("room_update");
      const listed = update.participants as { id: string; source: number }[];
      const sourceA = listed.find((p) => p.id === a.welcome.participant_id)!
        .source;
      const packet = mediaPacket(64, 3);
      await a.client.sendDatagram(packet);
      assert.deepEqual(
        await b.client.nextDatagram(),
        relayFrame(sourceA, packet),
      );
      await b.client.sendDatagram(packet);
      assert.equal((await a.client.nextDatagram()).length, 66);
      await closeAllWt([a.client, b.client]);
    } finally {
      await relay.stop();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

Deno.test({
  name: "webtransport reload replaces operator certificate",
  ignore,
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "relay-wt-reload-" });
    const certFile = `${dataDir}/cert.pem`;
    const keyFile = `${dataDir}/key.pem`;
    const write = async () => {
      const now = Date.now();
      const certificate = await createSelfSignedCertificate({
        notBefore: new Date(now - 60_000),
        notAfter: new Date(now + 5 * 24 * 60 * 60 * 1000),
      });
      await Deno.writeTextFile(certFile, certificate.certPem);
      await Deno.writeTextFile(keyFile, certificate.keyPem);
      return certificate.hash;
    };
    const first = await write();
    const relay = await Relay.start({
      host: "127.0.0.1",
      httpPort: 0,
      wtPort: 0,
      dataDir,
      cert: certFile,
      key: keyFile,
    }, { logger: silentLogger, identity: await RelayIdentity.generate() });
    try {
      assert.deepEqual((await fetchWtInfo(relay)).certificateHashes, [first]);
      const a = await joinWt(relay, "reload", {}, { hashes: [first] });

      const second = await write();
      await relay.reload();
      assert.deepEqual((await fetchWtInfo(relay)).certificateHashes, [second]);
      const b = await joinWt(relay, "reload", {}, { hashes: [second] });
      await a.client.sync();
      await closeAllWt([a.client, b.client]);
    } finally {
      await relay.stop();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

Deno.test({
  name: "webtransport signal queue limit closes 4008",
  ignore,
  async fn() {
    await using test = await startWtRelay();
    const a = await joinWt(test.relay, "queue");
    const sink = test.relay.rooms.get(a.welcome.room as never)!
      .get(a.welcome.participant_id as string)!.sink;

    // Writes settle asynchronously, so these five queue up at once: the
    // fifth takes the queue over 256 KiB.
    const text = JSON.stringify({ type: "padding", pad: "a".repeat(60_000) });
    for (let i = 0; i < 5; i++) sink.sendSignal(text);
    const closed = await a.client.waitClosed();
    assert.equal(closed.closeCode, 4008);
    assert.equal(closed.reason, "slow_consumer");
  },
});

Deno.test({
  name: "webtransport idle timeout drops vanished peer",
  ignore,
  async fn() {
    await using test = await startWtRelay({
      pingIntervalMs: 200,
      livenessTimeoutMs: 1_000,
    });
    const watcher = await joinWt(test.relay, "idle");
    await watcher.client.nextSignal("room_update");

    // A killed process sends no QUIC close, so only the idle timeout can
    // end its session.
    const info = await fetchWtInfo(test.relay);
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--unstable-net",
        "--config",
        new URL("../deno.json", import.meta.url).pathname,
        new URL("./fixtures/wt_participant.ts", import.meta.url).pathname,
        `${info.url}idle`,
        info.certificateHashes[0]!.value,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const output = child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    try {
      const joined = await withTimeout(output.read(), 20_000, "child join");
      assert.equal(joined.value?.trim(), "joined");
      const update = await watcher.client.nextSignal("room_update");
      assert.equal((update.participants as unknown[]).length, 2);
    } finally {
      await output.cancel();
      child.kill("SIGKILL");
      await child.status;
    }

    const left = await watcher.client.nextSignal("room_update", 5_000);
    assert.equal((left.participants as unknown[]).length, 1);
    await watcher.client.close();
  },
});
