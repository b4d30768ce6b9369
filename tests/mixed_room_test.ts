import assert from "node:assert/strict";
import { closeAll, joinWs } from "./helpers.ts";
import {
  closeAllWt,
  hasWebTransport,
  joinWt,
  mediaPacket,
  relayFrame,
  startWtRelay,
} from "./webtransport_helpers.ts";

const ignore = !hasWebTransport;

interface ListedParticipant {
  id: string;
  source: number;
  transport: string;
}

Deno.test({
  name: "mixed room lists both transports",
  ignore,
  async fn() {
    await using test = await startWtRelay();
    const ws = await joinWs(test.relay, "mixed", { alias: "web" });
    await ws.client.nextSignal("room_update");
    const wt = await joinWt(test.relay, "mixed", { alias: "native" });

    for (
      const signal of [
        await ws.client.nextSignal("room_update"),
        await wt.client.nextSignal("room_update"),
      ]
    ) {
      const listed = signal.participants as ListedParticipant[];
      assert.deepEqual(listed.map((p) => p.id), [
        ws.welcome.participant_id,
        wt.welcome.participant_id,
      ]);
      assert.deepEqual(listed.map((p) => p.transport), ["ws", "wt"]);
    }
    await closeAll([ws.client]);
    await closeAllWt([wt.client]);
  },
});

Deno.test({
  name: "mixed room forwards media both ways",
  ignore,
  async fn() {
    await using test = await startWtRelay();
    const ws = await joinWs(test.relay, "both");
    const wt = await joinWt(test.relay, "both");
    const update = await wt.client.nextSignal("room_update");
    const listed = update.participants as ListedParticipant[];
    const sourceOf = (id: unknown) => listed.find((p) => p.id === id)!.source;
    const wsSource = sourceOf(ws.welcome.participant_id);
    const wtSource = sourceOf(wt.welcome.participant_id);

    for (const length of [12, 160, 1100]) {
      const fromWs = mediaPacket(length, length);
      ws.client.sendMedia(fromWs);
      assert.deepEqual(
        await wt.client.nextDatagram(),
        relayFrame(wsSource, fromWs),
      );

      const fromWt = mediaPacket(length, length + 1);
      await wt.client.sendDatagram(fromWt);
      assert.deepEqual(
        await ws.client.nextMedia(),
        relayFrame(wtSource, fromWt),
      );
    }

    assert.equal(test.relay.stats.received.ws, 3);
    assert.equal(test.relay.stats.received.wt, 3);
    assert.equal(wt.client.drainDatagrams().length, 0);
    assert.equal(ws.client.drainMedia().length, 0);
    await closeAll([ws.client]);
    await closeAllWt([wt.client]);
  },
});

Deno.test({
  name: "mixed room sends one frame to all",
  ignore,
  async fn() {
    await using test = await startWtRelay();
    const sender = await joinWt(test.relay, "fan");
    const wsReceiver = await joinWs(test.relay, "fan");
    const wtReceiver = await joinWt(test.relay, "fan");
    await sender.client.sync();

    const packet = mediaPacket(300, 9);
    await sender.client.sendDatagram(packet);
    const viaWs = await wsReceiver.client.nextMedia();
    const viaWt = await wtReceiver.client.nextDatagram();
    assert.deepEqual(viaWs, viaWt);
    assert.deepEqual(viaWs.subarray(2), packet);
    await closeAll([wsReceiver.client]);
    await closeAllWt([sender.client, wtReceiver.client]);
  },
});

Deno.test({
  name: "mixed room leave updates other transport",
  ignore,
  async fn() {
    await using test = await startWtRelay();
    const ws = await joinWs(test.relay, "part");
    const wt = await joinWt(test.relay, "part");
    await ws.client.nextSignal("room_update");
    await ws.client.nextSignal("room_update");

    await wt.client.sendSignal({ type: "hangup" });
    const update = await ws.client.nextSignal("room_update");
    const listed = update.participants as ListedParticipant[];
    assert.deepEqual(listed.map((p) => p.transport), ["ws"]);
    await closeAll([ws.client]);
    await wt.client.waitClosed();
  },
});
