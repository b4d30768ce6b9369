import assert from "node:assert/strict";

import {
  decodeQualityReport,
  encodeQualityReport,
  isTier,
  PROFILES,
  type QualityReport,
  type Tier,
  tierRank,
  TIERS,
} from "../src/wire/quality_report.ts";
import {
  classifyReport,
  directiveFor,
  DOWNGRADE_REPORTS,
  INITIAL_TIER,
  QualityState,
  RoomQuality,
  TierController,
  UPGRADE_REPORTS_HIGH,
  UPGRADE_REPORTS_LOW,
  weakestTier,
} from "../src/room/quality.ts";

// One report per tier, picked by RTT alone so that byte rounding of the loss
// value cannot move it across a threshold.
const REPORT: Record<Tier, QualityReport> = {
  catastrophic: { lossPercent: 0, rttMs: 400, jitterMs: 0, bitrateCapKbps: 0 },
  degraded: { lossPercent: 0, rttMs: 120, jitterMs: 0, bitrateCapKbps: 0 },
  good: { lossPercent: 0, rttMs: 88, jitterMs: 0, bitrateCapKbps: 0 },
  studio_32k: { lossPercent: 0, rttMs: 60, jitterMs: 0, bitrateCapKbps: 0 },
  studio_48k: { lossPercent: 0, rttMs: 40, jitterMs: 0, bitrateCapKbps: 0 },
  studio_64k: { lossPercent: 0, rttMs: 0, jitterMs: 0, bitrateCapKbps: 0 },
};

const STALE_MS = 10_000;

function observeMany(
  controller: TierController,
  tier: Tier,
  count: number,
): (Tier | null)[] {
  const results: (Tier | null)[] = [];
  for (let i = 0; i < count; i++) {
    results.push(controller.observe(REPORT[tier]));
  }
  return results;
}

// Returns a controller moved to `tier` by reports of that tier.
function controllerAt(tier: Tier): TierController {
  const controller = new TierController();
  if (tierRank(tier) < tierRank(INITIAL_TIER)) {
    observeMany(controller, tier, DOWNGRADE_REPORTS);
  }
  while (tierRank(controller.tier) < tierRank(tier)) {
    observeMany(controller, tier, UPGRADE_REPORTS_HIGH);
  }
  assert.equal(controller.tier, tier, "setup must reach the tier");
  return controller;
}

// Stores one report as the hot path would and runs the timer at `now`.
function feed(state: QualityState, tier: Tier, now: number): boolean {
  state.storeReport(encodeQualityReport(REPORT[tier]), 0);
  return state.update(now);
}

// Returns a state whose controller reached `tier` through stored reports,
// one per second, ending at t = 100 s.
function stateAt(tier: Tier): QualityState {
  const state = new QualityState();
  let now = 0;
  while (state.tier !== tier && now < 100_000) {
    now += 1_000;
    feed(state, tier, now);
  }
  feed(state, tier, 100_000);
  assert.equal(state.tier, tier, "setup must reach the tier");
  return state;
}

Deno.test("classifyReport catastrophic edges", () => {
  assert.equal(classifyReport(15, 0), "catastrophic");
  assert.equal(classifyReport(14.99, 0), "degraded");
  assert.equal(classifyReport(0, 200), "catastrophic");
  assert.equal(classifyReport(0, 199), "degraded");
});

Deno.test("classifyReport degraded edges", () => {
  assert.equal(classifyReport(5, 0), "degraded");
  assert.equal(classifyReport(4.99, 0), "good");
  assert.equal(classifyReport(0, 100), "degraded");
  assert.equal(classifyReport(0, 99), "good");
});

Deno.test("classifyReport good edges", () => {
  assert.equal(classifyReport(2, 0), "good");
  assert.equal(classifyReport(1.99, 0), "studio_32k");
  assert.equal(classifyReport(0, 80), "good");
  assert.equal(classifyReport(0, 79), "studio_32k");
});

Deno.test("classifyReport studio edges", () => {
  assert.equal(classifyReport(1, 0), "studio_32k");
  assert.equal(classifyReport(0.99, 0), "studio_64k");
  assert.equal(classifyReport(0, 50), "studio_32k");
  assert.equal(classifyReport(0, 49), "studio_48k");
  assert.equal(classifyReport(0.99, 30), "studio_48k");
  assert.equal(classifyReport(0, 30), "studio_48k");
  assert.equal(classifyReport(0, 29), "studio_64k");
  assert.equal(classifyReport(0, 0), "studio_64k");
});

Deno.test("classifyReport takes the worse metric", () => {
  assert.equal(classifyReport(20, 0), "catastrophic");
  assert.equal(classifyReport(0, 1020), "catastrophic");
  assert.equal(classifyReport(3, 150), "degraded");
});

Deno.test("classifyReport rejects invalid values", () => {
  assert.throws(() => classifyReport(NaN, 0), RangeError);
  assert.throws(() => classifyReport(0, NaN), RangeError);
  assert.throws(() => classifyReport(-1, 0), RangeError);
  assert.throws(() => classifyReport(0, -4), RangeError);
});

Deno.test("decodeQualityReport maps bytes", () => {
  const report = decodeQualityReport(255, 50, 17, 64);
  assert.equal(report.lossPercent, 100);
  assert.equal(report.rttMs, 200);
  assert.equal(report.jitterMs, 17);
  assert.equal(report.bitrateCapKbps, 64);
});

Deno.test("decodeQualityReport byte edges", () => {
  const low = decodeQualityReport(0, 0, 0, 0);
  assert.equal(low.lossPercent, 0);
  assert.equal(low.rttMs, 0);
  const high = decodeQualityReport(255, 255, 255, 255);
  assert.equal(high.rttMs, 1020);
  assert.equal(high.jitterMs, 255);
  assert.equal(high.bitrateCapKbps, 255);
  assert.equal(decodeQualityReport(51, 0, 0, 0).lossPercent, 20);
});

Deno.test("decodeQualityReport rejects non-bytes", () => {
  assert.throws(() => decodeQualityReport(256, 0, 0, 0), RangeError);
  assert.throws(() => decodeQualityReport(0, -1, 0, 0), RangeError);
  assert.throws(() => decodeQualityReport(0, 0, 1.5, 0), RangeError);
  assert.throws(() => decodeQualityReport(0, 0, 0, NaN), RangeError);
});

Deno.test("encodeQualityReport round trip", () => {
  const bytes = encodeQualityReport(decodeQualityReport(38, 50, 17, 64));
  assert.deepEqual([...bytes], [38, 50, 17, 64]);
});

Deno.test("encodeQualityReport rounds values", () => {
  const bytes = encodeQualityReport({
    lossPercent: 10,
    rttMs: 202,
    jitterMs: 3.4,
    bitrateCapKbps: 31.6,
  });
  assert.equal(bytes[0], 26, "10 % is 25.5, rounded up");
  assert.equal(bytes[1], 51, "202 ms is 50.5 units, rounded up");
  assert.equal(bytes[2], 3);
  assert.equal(bytes[3], 32);
});

Deno.test("encodeQualityReport clamps values", () => {
  const high = encodeQualityReport({
    lossPercent: 150,
    rttMs: 5000,
    jitterMs: 300,
    bitrateCapKbps: Infinity,
  });
  assert.deepEqual([...high], [255, 255, 255, 255]);
  const low = encodeQualityReport({
    lossPercent: -5,
    rttMs: -8,
    jitterMs: -1,
    bitrateCapKbps: -Infinity,
  });
  assert.deepEqual([...low], [0, 0, 0, 0]);
});

Deno.test("encodeQualityReport rejects NaN", () => {
  assert.throws(
    () =>
      encodeQualityReport({
        lossPercent: 0,
        rttMs: NaN,
        jitterMs: 0,
        bitrateCapKbps: 0,
      }),
    RangeError,
  );
});

Deno.test("TIERS order and ranks", () => {
  assert.deepEqual(TIERS, [
    "catastrophic",
    "degraded",
    "good",
    "studio_32k",
    "studio_48k",
    "studio_64k",
  ]);
  for (const [index, tier] of TIERS.entries()) {
    assert.equal(tierRank(tier), index, tier);
  }
});

Deno.test("isTier accepts only tier names", () => {
  assert.equal(isTier("studio_48k"), true);
  assert.equal(isTier("Studio48k"), false);
  assert.equal(isTier("toString"), false);
  assert.equal(isTier(2), false);
});

Deno.test("PROFILES match the protocol table", () => {
  assert.deepEqual(PROFILES.catastrophic, {
    codec: "Codec2_1200",
    fec_ratio: 1.0,
    frame_duration_ms: 40,
    frames_per_block: 8,
  });
  assert.deepEqual(PROFILES.degraded, {
    codec: "Opus6k",
    fec_ratio: 0.5,
    frame_duration_ms: 40,
    frames_per_block: 10,
  });
  assert.deepEqual(PROFILES.good, {
    codec: "Opus24k",
    fec_ratio: 0.2,
    frame_duration_ms: 20,
    frames_per_block: 5,
  });
  assert.deepEqual(PROFILES.studio_32k, {
    codec: "Opus32k",
    fec_ratio: 0.1,
    frame_duration_ms: 20,
    frames_per_block: 5,
  });
  assert.deepEqual(PROFILES.studio_48k, {
    codec: "Opus48k",
    fec_ratio: 0.1,
    frame_duration_ms: 20,
    frames_per_block: 5,
  });
  assert.deepEqual(PROFILES.studio_64k, {
    codec: "Opus64k",
    fec_ratio: 0.1,
    frame_duration_ms: 20,
    frames_per_block: 5,
  });
});

Deno.test("PROFILES are frozen", () => {
  assert.equal(Object.isFrozen(PROFILES), true);
  assert.equal(Object.isFrozen(PROFILES.good), true);
});

Deno.test("hysteresis constants", () => {
  assert.equal(DOWNGRADE_REPORTS, 3);
  assert.equal(UPGRADE_REPORTS_LOW, 5);
  assert.equal(UPGRADE_REPORTS_HIGH, 10);
});

Deno.test("TierController starts at good", () => {
  assert.equal(new TierController().tier, "good");
});

Deno.test("TierController needs three worse reports", () => {
  const controller = new TierController();
  assert.deepEqual(observeMany(controller, "catastrophic", 2), [null, null]);
  assert.equal(controller.tier, "good");
  assert.equal(controller.observe(REPORT.catastrophic), "catastrophic");
  assert.equal(controller.tier, "catastrophic");
});

Deno.test("TierController drops to least bad", () => {
  const controller = new TierController();
  assert.equal(controller.observe(REPORT.catastrophic), null);
  assert.equal(controller.observe(REPORT.degraded), null);
  assert.equal(controller.observe(REPORT.catastrophic), "degraded");
});

Deno.test("TierController recounts after drop", () => {
  const controller = controllerAt("degraded");
  assert.deepEqual(observeMany(controller, "catastrophic", 3), [
    null,
    null,
    "catastrophic",
  ]);
});

Deno.test("TierController drops several tiers", () => {
  const controller = controllerAt("studio_32k");
  assert.deepEqual(observeMany(controller, "degraded", 3), [
    null,
    null,
    "degraded",
  ]);
});

Deno.test("TierController matching report resets downgrade", () => {
  const controller = new TierController();
  observeMany(controller, "degraded", 2);
  assert.equal(controller.observe(REPORT.good), null);
  assert.deepEqual(observeMany(controller, "degraded", 2), [null, null]);
  assert.equal(controller.tier, "good");
  assert.equal(controller.observe(REPORT.degraded), "degraded");
});

Deno.test("TierController matching report resets upgrade", () => {
  const controller = controllerAt("degraded");
  observeMany(controller, "good", 4);
  assert.equal(controller.observe(REPORT.degraded), null);
  assert.deepEqual(observeMany(controller, "good", 4), [
    null,
    null,
    null,
    null,
  ]);
  assert.equal(controller.tier, "degraded");
  assert.equal(controller.observe(REPORT.good), "good");
});

Deno.test("TierController better report resets downgrade", () => {
  const controller = new TierController();
  observeMany(controller, "degraded", 2);
  assert.equal(controller.observe(REPORT.studio_64k), null);
  assert.deepEqual(observeMany(controller, "degraded", 2), [null, null]);
  assert.equal(controller.tier, "good");
});

Deno.test("TierController worse report resets upgrade", () => {
  const controller = controllerAt("degraded");
  observeMany(controller, "good", 4);
  assert.equal(controller.observe(REPORT.catastrophic), null);
  assert.deepEqual(observeMany(controller, "good", 4), [
    null,
    null,
    null,
    null,
  ]);
  assert.equal(controller.tier, "degraded");
  assert.equal(controller.observe(REPORT.good), "good");
});

Deno.test("TierController climbs in five below good", () => {
  const controller = controllerAt("catastrophic");
  const first = observeMany(controller, "studio_64k", 5);
  assert.deepEqual(first.slice(0, 4), [null, null, null, null]);
  assert.equal(first[4], "degraded", "one step, not straight to studio_64k");
  const second = observeMany(controller, "studio_64k", 5);
  assert.deepEqual(second.slice(0, 4), [null, null, null, null]);
  assert.equal(second[4], "good");
});

Deno.test("TierController climbs in ten from good", () => {
  const controller = new TierController();
  const first = observeMany(controller, "studio_64k", 10);
  assert.equal(first.slice(0, 9).every((tier) => tier === null), true);
  assert.equal(first[9], "studio_32k", "one step, not straight to studio_64k");
  const second = observeMany(controller, "studio_64k", 10);
  assert.equal(second.slice(0, 9).every((tier) => tier === null), true);
  assert.equal(second[9], "studio_48k");
  const third = observeMany(controller, "studio_64k", 10);
  assert.equal(third[9], "studio_64k");
  assert.equal(controller.observe(REPORT.studio_64k), null);
});

Deno.test("QualityState stores without consuming", () => {
  const state = new QualityState();
  state.storeReport(new Uint8Array([9, 9, 255, 50, 17, 64]), 2);
  assert.equal(state.loss, 255);
  assert.equal(state.rtt, 50);
  assert.equal(state.jitter, 17);
  assert.equal(state.bitrate, 64);
  assert.equal(state.dirty, true);
  assert.equal(state.reports, 1);
  assert.equal(state.isFresh(1_000, STALE_MS), false);
});

Deno.test("QualityState latestReport decodes bytes", () => {
  const state = new QualityState();
  assert.equal(state.latestReport(), null);
  state.storeReport(new Uint8Array([255, 50, 17, 64]), 0);
  assert.deepEqual(state.latestReport(), {
    lossPercent: 100,
    rttMs: 200,
    jitterMs: 17,
    bitrateCapKbps: 64,
  });
});

Deno.test("QualityState counts latest report once", () => {
  const state = new QualityState();
  for (let i = 0; i < 3; i++) {
    state.storeReport(encodeQualityReport(REPORT.catastrophic), 0);
  }
  assert.equal(state.update(1_000), false);
  assert.equal(state.dirty, false);
  assert.equal(state.update(2_000), false, "nothing new to consume");
  assert.equal(state.tier, "good");
  assert.equal(feed(state, "catastrophic", 3_000), false);
  assert.equal(feed(state, "catastrophic", 4_000), true);
  assert.equal(state.tier, "catastrophic");
});

Deno.test("QualityState freshness edges", () => {
  const state = new QualityState();
  feed(state, "good", 1_000);
  assert.equal(state.reportedAt, 1_000);
  assert.equal(state.isFresh(11_000, STALE_MS), true);
  assert.equal(state.isFresh(11_001, STALE_MS), false);
});

Deno.test("directiveFor builds the signal", () => {
  assert.deepEqual(directiveFor("degraded"), {
    type: "quality_directive",
    tier: "degraded",
    profile: PROFILES.degraded,
    reason: "weakest link is degraded",
  });
  assert.equal(
    directiveFor("good", "catastrophic").reason,
    "weakest link is catastrophic",
  );
});

Deno.test("weakestTier ignores silent participants", () => {
  const silent = new QualityState();
  const reporting = new QualityState();
  assert.equal(weakestTier([silent], 1_000, STALE_MS), null);
  feed(reporting, "studio_64k", 1_000);
  assert.equal(weakestTier([silent, reporting], 1_000, STALE_MS), "good");
});

Deno.test("RoomQuality takes the minimum", () => {
  const room = new RoomQuality();
  const silent = new QualityState();
  const weak = new QualityState();
  const strong = new QualityState();
  const states = [silent, weak, strong];

  assert.equal(room.update(states, 1_000), null, "nobody reported yet");
  assert.equal(room.tier, null);

  strong.storeReport(encodeQualityReport(REPORT.studio_64k), 0);
  weak.storeReport(encodeQualityReport(REPORT.degraded), 0);
  assert.deepEqual(room.update(states, 2_000), directiveFor("good"));

  weak.storeReport(encodeQualityReport(REPORT.degraded), 0);
  strong.storeReport(encodeQualityReport(REPORT.studio_64k), 0);
  assert.equal(room.update(states, 3_000), null, "tier unchanged");

  weak.storeReport(encodeQualityReport(REPORT.degraded), 0);
  strong.storeReport(encodeQualityReport(REPORT.studio_64k), 0);
  assert.deepEqual(room.update(states, 4_000), directiveFor("degraded"));
  assert.equal(room.tier, "degraded");
  assert.equal(strong.tier, "good");
  assert.equal(silent.tier, "good");
});

Deno.test("RoomQuality newcomer counts as good", () => {
  const room = new RoomQuality();
  const veteran = stateAt("studio_48k");
  assert.deepEqual(room.update([veteran], 100_000), directiveFor("studio_48k"));

  const newcomer = new QualityState();
  newcomer.storeReport(encodeQualityReport(REPORT.studio_64k), 0);
  veteran.storeReport(encodeQualityReport(REPORT.studio_48k), 0);
  assert.deepEqual(
    room.update([veteran, newcomer], 101_000),
    directiveFor("good"),
  );
});

Deno.test("RoomQuality drops stale participants", () => {
  const room = new RoomQuality({ staleMs: STALE_MS });
  const weak = new QualityState();
  const strong = new QualityState();
  for (const now of [1_000, 2_000, 3_000]) {
    feed(weak, "catastrophic", now);
  }
  feed(strong, "good", 3_000);
  assert.deepEqual(
    room.update([weak, strong], 3_000),
    directiveFor("catastrophic"),
  );

  // weak stops reporting; strong keeps reporting every second.
  strong.storeReport(encodeQualityReport(REPORT.good), 0);
  assert.equal(room.update([weak, strong], 13_000), null, "weak at the edge");
  strong.storeReport(encodeQualityReport(REPORT.good), 0);
  assert.deepEqual(room.update([weak, strong], 13_001), directiveFor("good"));
});

Deno.test("RoomQuality keeps tier when nobody fresh", () => {
  const room = new RoomQuality({ staleMs: STALE_MS });
  const state = new QualityState();
  feed(state, "good", 1_000);
  assert.deepEqual(room.update([state], 1_000), directiveFor("good"));
  assert.equal(room.update([state], 20_000), null);
  assert.equal(room.tier, "good");
  assert.equal(room.update([], 21_000), null);
  assert.equal(room.tier, "good");

  state.storeReport(encodeQualityReport(REPORT.good), 0);
  assert.equal(room.update([state], 22_000), null, "same tier again");
});

Deno.test("RoomQuality rejects invalid staleMs", () => {
  assert.throws(() => new RoomQuality({ staleMs: 0 }), RangeError);
  assert.throws(() => new RoomQuality({ staleMs: NaN }), RangeError);
  assert.throws(() => new RoomQuality({ staleMs: Infinity }), RangeError);
  assert.equal(new RoomQuality().staleMs, 10_000);
});
