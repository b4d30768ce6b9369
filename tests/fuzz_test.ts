/**
 * Property-based tests with fast-check: random and mutated input at every
 * parser that reads bytes or text from a peer or an operator. Each parser
 * must return a result or throw its documented error type, never anything
 * else. A last test throws random WebSocket frames at a live relay while an
 * honest pair in another room keeps talking.
 *
 * `FUZZ_SEED` replays a failing run with the seed that fast-check prints,
 * and `FUZZ_RUNS` scales the number of runs of every property.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { JwtVerifier, signJwt } from "../src/auth/jwt.ts";
import { ConfigError, loadConfig, parseConfigText } from "../src/config.ts";
import { OPTION_TABLE } from "../src/config/option_table.ts";
import {
  ControlMessageError,
  parseControlMessage,
} from "../src/wire/federation_control.ts";
import {
  decodeFederationDatagram,
  FederationDatagramError,
  FederationDatagramWriter,
  roomHash,
  roomHashKey,
} from "../src/wire/federation_media.ts";
import {
  buildMediaPacket,
  checkMediaPacket,
  MAX_MEDIA_BYTES,
} from "../src/wire/media.ts";
import { decodeQualityReport } from "../src/wire/quality_report.ts";
import {
  MAX_ROOM_NAME_BYTES,
  parseRoomName,
  parseRoomSegment,
} from "../src/wire/room_name.ts";
import { parseClientSignal } from "../src/wire/signals.ts";
import {
  encodeFrame,
  FrameDecoder,
  FrameTooLargeError,
} from "../src/wire/stream_framing.ts";
import {
  closeAll,
  connectWs,
  delay,
  joinWs,
  startTestRelay,
  type TestClient,
  waitFor,
} from "./helpers.ts";

const SEED = Deno.env.get("FUZZ_SEED");
const RUN_SCALE = Number(Deno.env.get("FUZZ_RUNS") ?? "1");

/** fast-check parameters for a property worth `numRuns` runs at scale 1. */
function runs(numRuns: number): fc.Parameters<unknown> {
  const parameters: fc.Parameters<unknown> = {
    numRuns: Math.max(1, Math.round(numRuns * RUN_SCALE)),
  };
  if (SEED !== undefined) parameters.seed = Number(SEED);
  return parameters;
}

/** Runs `fn`; a throw of a type other than `allowed` fails the property. */
function throwsOnly(
  fn: () => unknown,
  ...allowed: (abstract new (...args: never[]) => Error)[]
): void {
  try {
    fn();
  } catch (error) {
    if (allowed.some((type) => error instanceof type)) return;
    throw error;
  }
}

const encoder = new TextEncoder();

/** Bytes with a bias towards short inputs and header-like first bytes. */
const bytes = (maxLength: number) => fc.uint8Array({ minLength: 0, maxLength });

/** Returns `input` with one byte changed, inserted or removed at `at`. */
function mutateBytes(
  input: Uint8Array,
  kind: number,
  at: number,
  value: number,
): Uint8Array {
  const index = input.length === 0 ? 0 : at % input.length;
  switch (kind % 3) {
    case 0: {
      const copy = input.slice();
      if (copy.length > 0) copy[index] = value;
      return copy;
    }
    case 1: {
      const copy = new Uint8Array(input.length + 1);
      copy.set(input.subarray(0, index));
      copy[index] = value;
      copy.set(input.subarray(index), index + 1);
      return copy;
    }
    default: {
      const copy = new Uint8Array(Math.max(0, input.length - 1));
      copy.set(input.subarray(0, index));
      copy.set(input.subarray(index + 1), index);
      return copy;
    }
  }
}

/** A mutation: kind, position and replacement, for {@linkcode mutateBytes}. */
const mutation = fc.tuple(fc.nat(), fc.nat(), fc.integer({ min: 0, max: 255 }));

/** Returns `text` with one character changed, inserted or removed. */
function mutateText(
  text: string,
  [kind, at, value]: [number, number, number],
): string {
  const index = text.length === 0 ? 0 : at % text.length;
  const character = String.fromCharCode(value);
  switch (kind % 3) {
    case 0:
      return text.slice(0, index) + character + text.slice(index + 1);
    case 1:
      return text.slice(0, index) + character + text.slice(index);
    default:
      return text.slice(0, index) + text.slice(index + 1);
  }
}

// Media header.

const MEDIA_REASONS = new Set([
  null,
  "too_short",
  "too_long",
  "bad_version",
  "short_quality_report",
]);

Deno.test("fuzz media header check", () => {
  fc.assert(
    fc.property(bytes(1_200), fc.nat(16), (packet, offset) => {
      const reason = checkMediaPacket(packet);
      assert.ok(MEDIA_REASONS.has(reason));
      if (reason === null) {
        assert.ok(packet.length >= 12);
        assert.ok(packet.length <= MAX_MEDIA_BYTES);
        assert.equal(packet[0]! & 0x80, 0);
      }
      // A view into a larger buffer checks the same bytes.
      const padded = new Uint8Array(offset + packet.length);
      padded.set(packet, offset);
      assert.equal(checkMediaPacket(padded.subarray(offset)), reason);
    }),
    runs(5_000),
  );
});

Deno.test("fuzz quality report decode", () => {
  const number = fc.oneof(
    fc.integer({ min: -10, max: 300 }),
    fc.double(),
    fc.constantFrom(NaN, Infinity, -Infinity, -0),
  );
  fc.assert(
    fc.property(number, number, number, number, (a, b, c, d) => {
      throwsOnly(() => decodeQualityReport(a, b, c, d), RangeError);
    }),
    runs(500),
  );
});

// Signals.

const SIGNAL_TYPES = ["hello", "auth", "ping", "hangup", "refresh", "x"];

/** JSON texts of objects that look like signals, with any field values. */
const signalText = fc.record({
  type: fc.oneof(fc.constantFrom(...SIGNAL_TYPES), fc.jsonValue()),
  token: fc.jsonValue(),
  alias: fc.oneof(fc.string({ maxLength: 80 }), fc.jsonValue()),
  ts: fc.oneof(fc.double(), fc.jsonValue()),
  reason: fc.jsonValue(),
}, { requiredKeys: [] }).map((record) => JSON.stringify(record));

Deno.test("fuzz client signal parse", () => {
  const text = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.string({ unit: "binary", maxLength: 200 }),
    fc.jsonValue().map((value) => JSON.stringify(value)),
    signalText,
    fc.tuple(signalText, mutation).map(([t, m]) => mutateText(t, m)),
  );
  fc.assert(
    fc.property(text, (input) => {
      const result = parseClientSignal(input);
      if (result.ok) {
        assert.equal(typeof result.signal.type, "string");
      } else {
        assert.equal(typeof result.message, "string");
        assert.ok(result.message.startsWith("Invalid"));
      }
    }),
    runs(5_000),
  );
});

Deno.test("fuzz valid hello always parses", () => {
  fc.assert(
    fc.property(
      fc.option(fc.string({ maxLength: 300 }), { nil: undefined }),
      fc.option(fc.string({ maxLength: 64 }), { nil: undefined }),
      (token, alias) => {
        const result = parseClientSignal(
          JSON.stringify({ type: "hello", token, alias }),
        );
        assert.ok(result.ok);
        assert.deepEqual(result.signal, {
          type: "hello",
          ...(token === undefined ? {} : { token }),
          ...(alias === undefined ? {} : { alias }),
        });
      },
    ),
    runs(500),
  );
});

// Stream framing.

/** Splits `data` at the given cut points, in order. */
function chunksOf(data: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((cut) => cut % (data.length + 1)))]
    .sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const point of points) {
    chunks.push(data.subarray(start, point));
    start = point;
  }
  chunks.push(data.subarray(start));
  return chunks;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const total = parts.reduce((sum, part) => sum + part.length, 0);
  const joined = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.length;
  }
  return joined;
}

Deno.test("fuzz frame decoder round trips", () => {
  fc.assert(
    fc.property(
      fc.array(bytes(300), { maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      (bodies, cuts) => {
        const stream = concat(bodies.map(encodeFrame));
        const decoder = new FrameDecoder(300);
        const frames = chunksOf(stream, cuts).flatMap((chunk) =>
          decoder.push(chunk)
        );
        assert.deepEqual(frames, bodies);
        assert.equal(decoder.buffered, 0);
      },
    ),
    runs(1_000),
  );
});

Deno.test("fuzz frame decoder on garbage", () => {
  fc.assert(
    fc.property(
      bytes(600),
      fc.array(fc.nat(), { maxLength: 12 }),
      fc.integer({ min: 0, max: 400 }),
      (stream, cuts, limit) => {
        const decoder = new FrameDecoder(limit);
        for (const chunk of chunksOf(stream, cuts)) {
          let frames: Uint8Array[];
          try {
            frames = decoder.push(chunk);
          } catch (error) {
            assert.ok(error instanceof FrameTooLargeError);
            assert.ok(error instanceof RangeError);
            return;
          }
          for (const frame of frames) assert.ok(frame.length <= limit);
          assert.ok(decoder.buffered <= limit + 4 + chunk.length);
        }
      },
    ),
    runs(1_000),
  );
});

// Federation datagrams and control messages.

const entry = fc.record({
  room: fc.string({ maxLength: 20 }),
  handle: fc.nat({ max: 0xffffffff }),
  sequence: fc.nat({ max: 0xffffffff }),
  packet: bytes(120),
});

Deno.test("fuzz federation datagram round trips", () => {
  fc.assert(
    fc.property(fc.array(entry, { minLength: 1, maxLength: 8 }), (entries) => {
      const writer = new FederationDatagramWriter(4_000);
      for (const item of entries) {
        assert.ok(writer.fits(item.packet.length, 4_000));
        writer.append(
          roomHash(item.room),
          item.handle,
          item.sequence,
          item.packet,
        );
      }
      const decoded: unknown[] = [];
      decodeFederationDatagram(writer.take(), (found) =>
        decoded.push({
          roomKey: found.roomKey,
          handle: found.handle,
          sequence: found.sequence,
          packet: found.packet.slice(),
        }));
      assert.deepEqual(
        decoded,
        entries.map((item) => ({
          roomKey: roomHashKey(roomHash(item.room)),
          handle: item.handle,
          sequence: item.sequence,
          packet: item.packet,
        })),
      );
    }),
    runs(500),
  );
});

Deno.test("fuzz federation datagram decode", () => {
  const valid = fc.array(entry, { minLength: 1, maxLength: 4 }).map(
    (entries) => {
      const writer = new FederationDatagramWriter(4_000);
      for (const item of entries) {
        writer.append(
          roomHash(item.room),
          item.handle,
          item.sequence,
          item.packet,
        );
      }
      return writer.take();
    },
  );
  const datagram = fc.oneof(
    bytes(1_400),
    fc.tuple(valid, mutation).map(([d, [k, a, v]]) => mutateBytes(d, k, a, v)),
  );
  fc.assert(
    fc.property(datagram, (input) => {
      throwsOnly(
        () =>
          decodeFederationDatagram(input, (found) => {
            assert.equal(found.packet.buffer, input.buffer);
            assert.ok(
              found.packet.byteOffset + found.packet.length <=
                input.byteOffset + input.length,
            );
          }),
        FederationDatagramError,
      );
    }),
    runs(5_000),
  );
});

const participant = fc.record({
  id: fc.string({ maxLength: 40 }),
  handle: fc.oneof(fc.nat({ max: 0xffffffff }), fc.jsonValue()),
  alias: fc.oneof(fc.constant(null), fc.string({ maxLength: 20 })),
  fingerprint: fc.oneof(fc.constant(null), fc.string({ maxLength: 40 })),
  origin_label: fc.oneof(fc.constant(null), fc.jsonValue()),
  path: fc.array(fc.string({ maxLength: 40 }), { maxLength: 18 }),
}, { requiredKeys: [] });

const controlText = fc.oneof(
  fc.record({
    type: fc.constantFrom("hello", "welcome"),
    version: fc.oneof(fc.constant(1), fc.jsonValue()),
    fingerprint: fc.string({ maxLength: 70 }),
    public_key: fc.string({ maxLength: 70 }),
    nonce: fc.string({ maxLength: 70 }),
    signature: fc.string({ maxLength: 130 }),
  }, { requiredKeys: [] }),
  fc.record({
    type: fc.constant("room"),
    room: fc.oneof(fc.string({ maxLength: 40 }), fc.jsonValue()),
    participants: fc.oneof(
      fc.array(participant, { maxLength: 4 }),
      fc.jsonValue(),
    ),
    want: fc.oneof(fc.array(fc.nat()), fc.jsonValue()),
  }, { requiredKeys: [] }),
  fc.record({
    type: fc.constantFrom("ping", "pong", "auth", "ready", "error", "x"),
    ts: fc.oneof(fc.double(), fc.jsonValue()),
    code: fc.jsonValue(),
    message: fc.jsonValue(),
    signature: fc.jsonValue(),
  }, { requiredKeys: [] }),
).map((record) => JSON.stringify(record));

Deno.test("fuzz federation control parse", () => {
  const text = fc.oneof(
    fc.string({ maxLength: 300 }),
    fc.jsonValue().map((value) => JSON.stringify(value)),
    controlText,
    fc.tuple(controlText, mutation).map(([t, m]) => mutateText(t, m)),
  );
  fc.assert(
    fc.property(text, (input) => {
      let message;
      try {
        message = parseControlMessage(input);
      } catch (error) {
        assert.ok(error instanceof ControlMessageError, String(error));
        return;
      }
      assert.equal(typeof message.type, "string");
    }),
    runs(5_000),
  );
});

// Room names.

/** Percent-encodes random bytes, valid UTF-8 or not. */
const percentEncoded = bytes(140).map((raw) =>
  [...raw].map((byte) => "%" + byte.toString(16).padStart(2, "0")).join("")
);

Deno.test("fuzz room names", () => {
  const segment = fc.oneof(
    fc.string({ maxLength: 140 }),
    fc.string({ unit: "binary", maxLength: 140 }),
    fc.string({ unit: "grapheme", maxLength: 60 }),
    percentEncoded,
    fc.constantFrom("..", "%2e%2e", "..%2F", "%00", "%", "%zz", "%C0%AF"),
  );
  fc.assert(
    fc.property(segment, (input) => {
      const result = parseRoomSegment(input);
      const direct = parseRoomName(input);
      for (const parsed of [result, direct]) {
        if (!parsed.ok) {
          assert.ok(parsed.message.startsWith("Invalid room name"));
          continue;
        }
        const name = parsed.name;
        assert.ok(name.length > 0);
        assert.ok(encoder.encode(name).length <= MAX_ROOM_NAME_BYTES);
        assert.ok(!name.includes("/"));
        assert.ok(name.isWellFormed());
        assert.ok(!name.startsWith("_"));
        // deno-lint-ignore no-control-regex
        assert.ok(!/[\u0000-\u001f\u007f-\u009f]/.test(name));
        const again = parseRoomSegment(encodeURIComponent(name));
        assert.ok(again.ok);
        assert.equal(again.name, name);
      }
    }),
    runs(5_000),
  );
});

// Configuration.

const CONFIG_KEYS = OPTION_TABLE.map((spec) => spec.key);

/** Mappings with real and made-up keys and values of every JSON type. */
const configMapping = fc.dictionary(
  fc.oneof(fc.constantFrom(...CONFIG_KEYS, "federation"), fc.string()),
  fc.oneof(
    fc.jsonValue(),
    fc.string({ maxLength: 12 }),
    fc.integer(),
    fc.constantFrom("5s", "100ms", "2m", "1h", "0", "-1", "1e3", "true"),
  ),
  { maxKeys: 6 },
);

/** Text of a config file: JSON, YAML-like lines, or anything. */
const configText = fc.oneof(
  fc.string({ maxLength: 300 }),
  configMapping.map((mapping) => JSON.stringify(mapping)),
  configMapping.map((mapping) =>
    Object.entries(mapping)
      .map(([key, value]) => `${key}: ${JSON.stringify(value)}`)
      .join("\n")
  ),
  fc.tuple(
    configMapping.map((mapping) => JSON.stringify(mapping)),
    mutation,
  ).map(([text, m]) => mutateText(text, m)),
);

Deno.test("fuzz config text parse", () => {
  fc.assert(
    fc.property(configText, fc.constantFrom("relay.yaml", "relay.json"), (
      text,
      path,
    ) => {
      throwsOnly(() => parseConfigText(text, path), ConfigError);
    }),
    runs(1_000),
  );
});

Deno.test("fuzz loadConfig args and env", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relay-fuzz-config-" });
  try {
    const configFile = `${dir}/relay.yaml`;
    const flags = OPTION_TABLE.map((spec) => `--${spec.flag}`);
    const value = fc.oneof(
      fc.string({ maxLength: 16 }),
      fc.constantFrom("0", "1", "65536", "5s", "-1", "true", "", "=x"),
    );
    // Paths stay inside the temporary directory, so no input makes the
    // loader read a file outside it.
    const pathFlag = fc.constantFrom("--config", "--cert", "--key");
    const pathValue = fc.constantFrom(configFile, `${dir}/missing.pem`, dir);
    const arg = fc.oneof(
      fc.tuple(fc.constantFrom(...flags), value).map(([f, v]) => [f, v]),
      fc.tuple(fc.constantFrom(...flags), value).map(([f, v]) => [`${f}=${v}`]),
      fc.tuple(pathFlag, pathValue).map(([f, v]) => [f, v]),
      fc.constantFrom(["--no-webtransport"], ["-x"], ["--"], ["--unknown"]),
      fc.string({ maxLength: 10 }).filter((s) => !s.startsWith("-"))
        .map((s) => [s]),
    );
    const env = fc.dictionary(
      fc.oneof(
        fc.constantFrom(...OPTION_TABLE.map((spec) => spec.env)),
        fc.string({ maxLength: 10 }).map((s) => `RELAY_${s}`),
      ),
      value,
      { maxKeys: 4 },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(arg, { maxLength: 5 }),
        env,
        configText,
        async (args, environment, text) => {
          await Deno.writeTextFile(configFile, text);
          try {
            const loaded = await loadConfig(args.flat(), environment);
            assert.equal(typeof loaded.options.httpPort, "number");
          } catch (error) {
            assert.ok(error instanceof ConfigError, String(error));
          }
        },
      ),
      runs(300),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// JWT.

const JWT_SECRET = "fuzz-test-secret-of-at-least-32-bytes-long";

Deno.test("fuzz jwt verify", async () => {
  const verifier = await JwtVerifier.create(JWT_SECRET);
  const claims = { sub: "alice", room: "lobby", name: "Alice" };
  const valid = await signJwt(JWT_SECRET, claims);
  const base64url = fc.string({
    unit: fc.constantFrom(
      ..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    ),
    maxLength: 60,
  });
  const token = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.tuple(base64url, base64url, base64url).map((parts) => parts.join(".")),
    mutation.map((m) => mutateText(valid, m)),
    fc.tuple(mutation, mutation).map(([a, b]) =>
      mutateText(mutateText(valid, a), b)
    ),
    fc.jsonValue().map((value) =>
      `${btoa('{"alg":"HS256"}')}.${btoa(JSON.stringify(value))}.`
    ),
  );
  await fc.assert(
    fc.asyncProperty(token, async (input) => {
      const result = await verifier.verify(input);
      if (result.ok) {
        // A changed token can only pass with the signed claims unchanged.
        assert.equal(result.claims.subject, "alice");
        assert.equal(result.claims.room, "lobby");
        assert.equal(result.claims.alias, "Alice");
      } else {
        assert.equal(typeof result.reason, "string");
      }
    }),
    runs(1_000),
  );
});

// A live relay.

/** A random frame a client might send: text or binary, valid or not. */
const wireFrame = fc.oneof(
  { weight: 3, arbitrary: signalText },
  { weight: 2, arbitrary: fc.string({ maxLength: 200 }) },
  {
    weight: 1,
    arbitrary: fc.tuple(signalText, mutation).map(([t, m]) => mutateText(t, m)),
  },
  { weight: 3, arbitrary: bytes(1_300) },
  {
    weight: 3,
    arbitrary: fc.tuple(bytes(200), mutation).map(([payload, [k, a, v]]) =>
      mutateBytes(buildMediaPacket({ payload }), k, a, v)
    ),
  },
);

Deno.test("fuzz frames at a live relay", async () => {
  await using test = await startTestRelay({
    handshakeTimeoutMs: 1_000,
    maxSignalsPerSecond: 1_000,
    maxMediaPacketsPerSecond: 10_000,
    maxMediaBytesPerSecond: 10_000_000,
  });
  const relay = test.relay;
  const speaker = (await joinWs(relay, "honest")).client;
  const listener = (await joinWs(relay, "honest")).client;

  const frames = fc.sample(
    wireFrame,
    SEED === undefined
      ? { numRuns: Math.round(5_000 * RUN_SCALE) }
      : { numRuns: Math.round(5_000 * RUN_SCALE), seed: Number(SEED) },
  );
  // Even-numbered fuzzers send hello first, so that frames reach joined
  // sessions too. Odd-numbered ones send everything before hello. A closed
  // one is replaced.
  const fuzzers: TestClient[] = [];
  const open = async (index: number) => {
    fuzzers[index] = index % 2 === 0
      ? (await joinWs(relay, "fuzz")).client
      : await connectWs(relay, "fuzz");
  };
  const sessions = 4;
  for (let index = 0; index < sessions; index++) await open(index);

  let sent = 0;
  for (let i = 0; i < frames.length; i++) {
    const index = i % sessions;
    if (fuzzers[index]!.socket.readyState !== WebSocket.OPEN) {
      await fuzzers[index]!.waitClosed();
      await open(index);
    }
    fuzzers[index]!.socket.send(frames[i]!);
    if (i % 20 === 0) {
      speaker.sendMedia(buildMediaPacket({ sequence: sent++ }));
      await delay(1);
    }
  }

  await speaker.sync();
  await listener.sync();
  const received = listener.drainMedia();
  assert.equal(received.length, sent);
  received.forEach((frame, index) => {
    assert.equal(new DataView(frame.buffer).getUint16(4), index);
  });
  await closeAll([...fuzzers, speaker, listener]);
  await waitFor(() => relay.sessionCount === 0, 5_000, "the sessions end");
  assert.equal(relay.rooms.roomCount, 0);
});
