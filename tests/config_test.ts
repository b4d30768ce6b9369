import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  ConfigError,
  helpText,
  loadConfig,
  parseConfigText,
} from "../src/config.ts";
import {
  COMMAND_FLAGS,
  OPTION_TABLE,
  type ScalarField,
} from "../src/config/option_table.ts";
import { DEFAULT_OPTIONS, resolveOptions } from "../src/options.ts";

type Env = Record<string, string | undefined>;

const ROOT_PATH = fileURLToPath(new URL("..", import.meta.url));

const CERT_PEM =
  "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY_PEM =
  "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n";

const LONG_SECRET = "0123456789abcdef0123456789abcdef-secret";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "relay-config-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function writePemFiles(dir: string): Promise<[string, string]> {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  await Deno.writeTextFile(cert, CERT_PEM);
  await Deno.writeTextFile(key, KEY_PEM);
  return [cert, key];
}

/** Runs loadConfig and returns the ConfigError it must throw. */
async function loadError(args: string[], env: Env = {}): Promise<ConfigError> {
  try {
    await loadConfig(args, env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  assert.fail(`loadConfig accepted ${JSON.stringify({ args, env })}`);
}

/** Runs parseConfigText and returns the ConfigError it must throw. */
function textError(text: string, path = "relay.yaml"): ConfigError {
  try {
    parseConfigText(text, path);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  assert.fail(`parseConfigText accepted ${JSON.stringify(text)}`);
}

/** Returns a value for every option, as text and parsed, none a default. */
function samples(dir: string): Record<ScalarField, [string, unknown]> {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  return {
    host: ["127.0.0.1", "127.0.0.1"],
    httpPort: ["9000", 9000],
    wtPort: ["9001", 9001],
    noWebTransport: ["true", true],
    dataDir: [join(dir, "data"), join(dir, "data")],
    cert: [cert, cert],
    key: [key, key],
    tokenSecret: [LONG_SECRET, LONG_SECRET],
    authUrl: ["https://auth.test/validate", "https://auth.test/validate"],
    authTimeoutMs: ["2s", 2_000],
    adminToken: ["admin-token-value", "admin-token-value"],
    logLevel: ["debug", "debug"],
    logFormat: ["json", "json"],
    handshakeTimeoutMs: ["1500ms", 1_500],
    pingIntervalMs: ["3s", 3_000],
    livenessTimeoutMs: ["1m", 60_000],
    maxParticipantsPerRoom: ["7", 7],
    maxRooms: ["8", 8],
    maxParticipants: ["9", 9],
    maxConnectionsPerIp: ["10", 10],
    maxHandshakesPerIp: ["11", 11],
    maxPendingHandshakes: ["12", 12],
    maxSignalBytes: ["1024", 1_024],
    wsBufferLimitBytes: ["2048", 2_048],
    slowConsumerTimeoutMs: ["4s", 4_000],
    rateLimitGraceMs: ["3s", 3_000],
    maxDatagramsInFlight: ["16", 16],
    federationRateLimit: ["50", 50],
    maxMediaPacketsPerSecond: ["300", 300],
    maxMediaBytesPerSecond: ["100000", 100_000],
    maxSignalsPerSecond: ["30", 30],
    qualityIntervalMs: ["250ms", 250],
    qualityStaleMs: ["20s", 20_000],
    shutdownTimeoutMs: ["2", 2_000],
    roomShards: ["128", 128],
    webhookUrl: ["https://hooks.test/relay", "https://hooks.test/relay"],
    webhookSecret: ["webhook-secret-value", "webhook-secret-value"],
    webhookTimeoutMs: ["3s", 3_000],
    webhookMaxAttempts: ["3", 3],
    webhookRetryDelayMs: ["500ms", 500],
    webhookMaxRetryDelayMs: ["1m", 60_000],
    webhookQueueLimit: ["500", 500],
  };
}

function sampleArgs(dir: string): string[] {
  const values = samples(dir);
  return OPTION_TABLE.flatMap((spec) =>
    spec.kind.placeholder === ""
      ? [`--${spec.flag}`]
      : [`--${spec.flag}`, values[spec.field][0]]
  );
}

function sampleEnv(dir: string): Env {
  const values = samples(dir);
  return Object.fromEntries(
    OPTION_TABLE.map((spec) => [spec.env, values[spec.field][0]]),
  );
}

function sampleYaml(dir: string): string {
  const values = samples(dir);
  return OPTION_TABLE.map((spec) =>
    `${spec.key}: ${JSON.stringify(values[spec.field][0])}`
  ).join("\n") + "\n";
}

Deno.test("loadConfig returns defaults without input", async () => {
  const loaded = await loadConfig([], {});
  assert.deepEqual(loaded.options, resolveOptions());
  assert.equal(loaded.help, false);
  assert.equal(loaded.version, false);
  assert.equal(loaded.configFile, undefined);
  assert.deepEqual(loaded.warnings, []);
});

Deno.test("option table covers every option", () => {
  const fields = new Set(OPTION_TABLE.map((spec) => spec.field));
  const expected = new Set(
    Object.keys(samples("/tmp")) as ScalarField[],
  );
  assert.deepEqual(fields, expected);
  for (const key of Object.keys(DEFAULT_OPTIONS)) {
    if (key === "federation") continue;
    assert.ok(fields.has(key as ScalarField), `no flag sets ${key}`);
  }
});

Deno.test("samples differ from the defaults", () => {
  for (const [field, [, value]] of Object.entries(samples("/tmp"))) {
    assert.notEqual(
      value,
      DEFAULT_OPTIONS[field as ScalarField],
      `sample of ${field}`,
    );
  }
});

Deno.test("loadConfig sets every option from flags", async () => {
  await withTempDir(async (dir) => {
    await writePemFiles(dir);
    const { options } = await loadConfig(sampleArgs(dir), {});
    for (const [field, [, value]] of Object.entries(samples(dir))) {
      assert.deepEqual(
        options[field as ScalarField],
        value,
        `flag of ${field}`,
      );
    }
  });
});

Deno.test("loadConfig sets every option from env", async () => {
  await withTempDir(async (dir) => {
    await writePemFiles(dir);
    const { options } = await loadConfig([], sampleEnv(dir));
    for (const [field, [, value]] of Object.entries(samples(dir))) {
      assert.deepEqual(options[field as ScalarField], value, `env of ${field}`);
    }
  });
});

Deno.test("loadConfig sets every option from file", async () => {
  await withTempDir(async (dir) => {
    await writePemFiles(dir);
    const path = join(dir, "relay.yaml");
    await Deno.writeTextFile(path, sampleYaml(dir));
    const loaded = await loadConfig(["--config", path], {});
    assert.equal(loaded.configFile, path);
    for (const [field, [, value]] of Object.entries(samples(dir))) {
      assert.deepEqual(
        loaded.options[field as ScalarField],
        value,
        `file key of ${field}`,
      );
    }
  });
});

Deno.test("loadConfig precedence is flag, env, file", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "relay.yaml");
    await Deno.writeTextFile(path, "http_port: 1001\nmax_rooms: 11\n");
    const env = { RELAY_CONFIG: path, RELAY_HTTP_PORT: "1002" };

    const fileOnly = await loadConfig([], { RELAY_CONFIG: path });
    assert.equal(fileOnly.options.httpPort, 1001);

    const fileAndEnv = await loadConfig([], env);
    assert.equal(fileAndEnv.options.httpPort, 1002);
    assert.equal(fileAndEnv.options.maxRooms, 11);

    const all = await loadConfig(["--http-port", "1003"], env);
    assert.equal(all.options.httpPort, 1003);
    assert.equal(all.options.maxRooms, 11);
    assert.equal(all.options.wtPort, DEFAULT_OPTIONS.wtPort);
  });
});

Deno.test("loadConfig prefers --config to RELAY_CONFIG", async () => {
  await withTempDir(async (dir) => {
    const fromFlag = join(dir, "flag.yaml");
    const fromEnv = join(dir, "env.yaml");
    await Deno.writeTextFile(fromFlag, "max_rooms: 5\n");
    await Deno.writeTextFile(fromEnv, "max_rooms: 6\n");
    const loaded = await loadConfig(["--config", fromFlag], {
      RELAY_CONFIG: fromEnv,
    });
    assert.equal(loaded.options.maxRooms, 5);
    assert.equal(loaded.configFile, fromFlag);
  });
});

Deno.test("loadConfig ignores empty env values", async () => {
  const loaded = await loadConfig([], {
    RELAY_HTTP_PORT: "",
    RELAY_CONFIG: "",
    RELAY_TOKEN_SECRET: "",
  });
  assert.deepEqual(loaded.options, resolveOptions());
});

/** Flag, value: each must fail and the message must name both. */
const INVALID_FLAGS: [string, string][] = [
  ["http-port", "abc"],
  ["http-port", "65536"],
  ["http-port", "-1"],
  ["http-port", "1.5"],
  ["http-port", " 80"],
  ["http-port", "0x50"],
  ["wt-port", "70000"],
  ["host", "local host"],
  ["data-dir", ""],
  ["auth-url", "ftp://auth.test/"],
  ["auth-url", "not a url"],
  ["auth-timeout", "5x"],
  ["max-participants-per-room", "0"],
  ["max-rooms", "-3"],
  ["max-participants", "1e3"],
  ["max-signal-bytes", "64k"],
  ["ws-buffer-limit", "0"],
  ["max-datagrams-in-flight", "many"],
  ["room-shards", "3"],
  ["room-shards", "0"],
  ["room-shards", "8192"],
  ["handshake-timeout", "0"],
  ["handshake-timeout", "0.5ms"],
  ["ping-interval", "597h"],
  ["liveness-timeout", "-1s"],
  ["slow-consumer-timeout", "10 s"],
  ["quality-interval", "1d"],
  ["quality-stale", ""],
  ["shutdown-timeout", "soon"],
  ["log-level", "verbose"],
  ["log-format", "xml"],
];

Deno.test("loadConfig names invalid flag values", async () => {
  for (const [flag, value] of INVALID_FLAGS) {
    const error = await loadError([`--${flag}=${value}`]);
    const expected = `Invalid value for --${flag}: ${JSON.stringify(value)}`;
    assert.ok(error.message.startsWith(expected), error.message);
    assert.equal(error.option, `--${flag}`);
  }
});

Deno.test("loadConfig rejects empty flag values", async () => {
  for (const spec of OPTION_TABLE) {
    if (spec.kind.placeholder === "") continue;
    const error = await loadError([`--${spec.flag}=`]);
    assert.ok(
      error.message.includes(`Invalid value for --${spec.flag}: `),
      error.message,
    );
  }
});

/** Variable, value: each must fail and the message must name both. */
const INVALID_ENV: [string, string][] = [
  ["RELAY_HTTP_PORT", "abc"],
  ["RELAY_WT_PORT", "99999"],
  ["RELAY_NO_WEBTRANSPORT", "maybe"],
  ["RELAY_MAX_ROOMS", "0"],
  ["RELAY_ROOM_SHARDS", "6"],
  ["RELAY_LOG_LEVEL", "trace"],
  ["RELAY_LOG_FORMAT", "yaml"],
  ["RELAY_PING_INTERVAL", "fast"],
  ["RELAY_AUTH_URL", "ws://auth.test/"],
];

Deno.test("loadConfig names invalid env values", async () => {
  for (const [name, value] of INVALID_ENV) {
    const error = await loadError([], { [name]: value });
    const expected = `Invalid value for ${name}: ${JSON.stringify(value)}`;
    assert.ok(error.message.startsWith(expected), error.message);
    assert.equal(error.option, name);
  }
});

/** YAML text, key, value as shown: each must fail naming key and value. */
const INVALID_FILE: [string, string, string][] = [
  ["http_port: abc", "http_port", '"abc"'],
  ["http_port: 1.5", "http_port", "1.5"],
  ["http_port: [80]", "http_port", "[80]"],
  ["wt_port: -1", "wt_port", "-1"],
  ["no_webtransport: maybe", "no_webtransport", '"maybe"'],
  ["no_webtransport: 1", "no_webtransport", "1"],
  ["max_rooms: 0", "max_rooms", "0"],
  ["room_shards: 100", "room_shards", "100"],
  ["log_level: 3", "log_level", "3"],
  ["log_format: XML", "log_format", '"XML"'],
  ["ping_interval: -1", "ping_interval", "-1"],
  ["quality_stale: 5x", "quality_stale", '"5x"'],
  ["handshake_timeout: true", "handshake_timeout", "true"],
  ["data_dir: ''", "data_dir", '""'],
  ["auth_url: //auth.test", "auth_url", '"//auth.test"'],
  ["host: {a: 1}", "host", '{"a":1}'],
];

Deno.test("parseConfigText names invalid values", () => {
  for (const [text, key, shown] of INVALID_FILE) {
    const error = textError(text + "\n");
    const expected = `Invalid value for ${key} in relay.yaml: ${shown} (`;
    assert.ok(error.message.startsWith(expected), error.message);
    assert.equal(error.option, `${key} in relay.yaml`);
  }
});

const FINGERPRINT_A = "7f2a:b391:0c44:9e15:2d68:c0f3:5a17:e8b2";
const FINGERPRINT_B = "a5d6:e3c6:5ae7:185c:4eb1:af89:daed:4a43";

function peerYaml(fields: Record<string, string>): string {
  const lines = Object.entries(fields).map(([key, value]) =>
    `      ${key}: ${value}`
  );
  return `federation:\n  peers:\n    -\n${lines.join("\n")}\n`;
}

const VALID_PEER = {
  url: "https://relay-b.test:4433/federation",
  http_url: "http://relay-b.test:8080",
  fingerprint: `"${FINGERPRINT_B}"`,
  label: "relay-b",
};

/** YAML text and the start of the expected message. */
const INVALID_FEDERATION: [string, string][] = [
  [
    "federation: [1]",
    "Invalid value for federation in relay.yaml: [1] (",
  ],
  [
    "federation: {peer: []}",
    'Unknown key "federation.peer" in relay.yaml',
  ],
  [
    "federation: {peers: {}}",
    "Invalid value for federation.peers in relay.yaml: {} (",
  ],
  [
    peerYaml({ ...VALID_PEER, url: "http://relay-b.test/federation" }),
    "Invalid value for federation.peers[0].url in relay.yaml: " +
    '"http://relay-b.test/federation" (',
  ],
  [
    peerYaml({ ...VALID_PEER, url: "relay-b" }),
    'Invalid value for federation.peers[0].url in relay.yaml: "relay-b" (',
  ],
  [
    peerYaml({ ...VALID_PEER, http_url: "ftp://relay-b.test" }),
    "Invalid value for federation.peers[0].http_url in relay.yaml: " +
    '"ftp://relay-b.test" (',
  ],
  [
    peerYaml({ ...VALID_PEER, fingerprint: "a5d6:e3c6" }),
    "Invalid value for federation.peers[0].fingerprint in relay.yaml: " +
    '"a5d6:e3c6" (',
  ],
  [
    peerYaml({
      ...VALID_PEER,
      fingerprint: "zzzz:e3c6:5ae7:185c:4eb1:af89:daed:4a43",
    }),
    "Invalid value for federation.peers[0].fingerprint in relay.yaml: " +
    '"zzzz:e3c6:5ae7:185c:4eb1:af89:daed:4a43" (',
  ],
  [
    peerYaml({ ...VALID_PEER, label: '""' }),
    'Invalid value for federation.peers[0].label in relay.yaml: "" (',
  ],
  [
    peerYaml({ ...VALID_PEER, label: '"   "' }),
    'Invalid value for federation.peers[0].label in relay.yaml: "   " (',
  ],
  [
    peerYaml({ ...VALID_PEER, label: "x".repeat(65) }),
    "Invalid value for federation.peers[0].label in relay.yaml: ",
  ],
  [
    peerYaml({ ...VALID_PEER, colour: "blue" }),
    'Unknown key "federation.peers[0].colour" in relay.yaml',
  ],
  [
    peerYaml({ fingerprint: VALID_PEER.fingerprint, label: "relay-b" }),
    "Missing key federation.peers[0].url in relay.yaml",
  ],
  [
    peerYaml({ url: VALID_PEER.url, label: "relay-b" }),
    "Missing key federation.peers[0].fingerprint in relay.yaml",
  ],
  [
    peerYaml({ url: VALID_PEER.url, fingerprint: VALID_PEER.fingerprint }),
    "Missing key federation.peers[0].label in relay.yaml",
  ],
  [
    `federation:\n  trusted:\n    - {fingerprint: "${FINGERPRINT_A}", label: a}\n` +
    `    - {fingerprint: "${FINGERPRINT_A}", label: a}\n`,
    "Invalid value for federation.trusted[1].fingerprint in relay.yaml: " +
    `"${FINGERPRINT_A}" (`,
  ],
  [
    `federation:\n  trusted:\n    - {fingerprint: "${FINGERPRINT_A}", label: a}\n` +
    `    - {fingerprint: "${FINGERPRINT_B}", label: a}\n`,
    'Invalid value for federation.trusted[1].label in relay.yaml: "a" (',
  ],
  [
    `federation:\n  trusted:\n    - {fingerprint: "${FINGERPRINT_A}"}\n`,
    "Missing key federation.trusted[0].label in relay.yaml",
  ],
  [
    "federation: {global_rooms: general}",
    'Invalid value for federation.global_rooms in relay.yaml: "general" (',
  ],
  [
    "federation: {global_rooms: [_system]}",
    "Invalid value for federation.global_rooms[0] in relay.yaml: " +
    '"_system" (',
  ],
  [
    "federation: {global_rooms: [a/b]}",
    'Invalid value for federation.global_rooms[0] in relay.yaml: "a/b" (',
  ],
  [
    "federation: {global_rooms: [1]}",
    "Invalid value for federation.global_rooms[0] in relay.yaml: 1 (",
  ],
];

Deno.test("parseConfigText names invalid federation", () => {
  for (const [text, expected] of INVALID_FEDERATION) {
    const error = textError(text);
    assert.ok(error.message.startsWith(expected), error.message);
  }
});

Deno.test("parseConfigText reads federation block", () => {
  const text = `
federation:
  peers:
    - url: https://relay-b.test:4433/federation
      http_url: http://relay-b.test:8080
      fingerprint: "${FINGERPRINT_B.toUpperCase()}"
      label: relay-b
    - url: https://relay-c.test:4433/federation
      fingerprint: "${FINGERPRINT_A}"
      label: relay-c
  trusted:
    - fingerprint: "${FINGERPRINT_A}"
      label: relay-c
  global_rooms: ["general", "*"]
`;
  const options = parseConfigText(text, "relay.yaml");
  assert.deepEqual(options.federation, {
    peers: [
      {
        url: "https://relay-b.test:4433/federation",
        httpUrl: "http://relay-b.test:8080",
        fingerprint: FINGERPRINT_B,
        label: "relay-b",
      },
      {
        url: "https://relay-c.test:4433/federation",
        fingerprint: FINGERPRINT_A,
        label: "relay-c",
      },
    ],
    trusted: [{ fingerprint: FINGERPRINT_A, label: "relay-c" }],
    globalRooms: ["general", "*"],
  });
});

Deno.test("parseConfigText accepts empty federation lists", () => {
  const options = parseConfigText(
    "federation:\n  peers:\n  trusted: []\n",
    "relay.yaml",
  );
  assert.deepEqual(options.federation, {
    peers: [],
    trusted: [],
    globalRooms: [],
  });
});

Deno.test("loadConfig passes federation through", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "relay.yaml");
    await Deno.writeTextFile(
      path,
      `federation:\n  trusted: [{fingerprint: "${FINGERPRINT_A}", label: a}]\n`,
    );
    const { options } = await loadConfig(["--config", path], {});
    assert.deepEqual(options.federation.trusted, [
      { fingerprint: FINGERPRINT_A, label: "a" },
    ]);
    assert.deepEqual(options.federation.peers, []);
  });
});

const DURATIONS: [string, number][] = [
  ["500ms", 500],
  ["5s", 5_000],
  ["2m", 120_000],
  ["1h", 3_600_000],
  ["5", 5_000],
  ["1.5s", 1_500],
  ["0.25", 250],
  ["1.1s", 1_100],
  ["1ms", 1],
  ["2147483647ms", 2_147_483_647],
  ["596h", 2_145_600_000],
];

Deno.test("loadConfig parses duration units", async () => {
  for (const [text, ms] of DURATIONS) {
    const { options } = await loadConfig(["--ping-interval", text], {});
    assert.equal(options.pingIntervalMs, ms, text);
  }
});

Deno.test("loadConfig rejects durations over the timer maximum", async () => {
  const error = await loadError(["--ping-interval", "2147483648ms"]);
  assert.ok(error.message.includes('"2147483648ms"'), error.message);
});

Deno.test("parseConfigText reads durations", () => {
  const options = parseConfigText(
    "ping_interval: 2\nquality_interval: 0.5\nquality_stale: 90s\n",
    "relay.yaml",
  );
  assert.equal(options.pingIntervalMs, 2_000);
  assert.equal(options.qualityIntervalMs, 500);
  assert.equal(options.qualityStaleMs, 90_000);
});

Deno.test("parseConfigText reads native YAML types", () => {
  const options = parseConfigText(
    "http_port: 0\nno_webtransport: true\nroom_shards: 4096\n" +
      "log_level: warn\nmax_signal_bytes: '4096'\n",
    "relay.yaml",
  );
  assert.equal(options.httpPort, 0);
  assert.equal(options.noWebTransport, true);
  assert.equal(options.roomShards, 4096);
  assert.equal(options.logLevel, "warn");
  assert.equal(options.maxSignalBytes, 4096);
});

Deno.test("parseConfigText treats null as unset", () => {
  const options = parseConfigText("token_secret:\nhttp_port: ~\n", "r.yaml");
  assert.deepEqual(options, {});
});

Deno.test("parseConfigText reads JSON", () => {
  const options = parseConfigText(
    JSON.stringify({
      http_port: 8081,
      handshake_timeout: "250ms",
      federation: { global_rooms: ["*"] },
    }),
    "relay.json",
  );
  assert.equal(options.httpPort, 8081);
  assert.equal(options.handshakeTimeoutMs, 250);
  assert.deepEqual(options.federation?.globalRooms, ["*"]);
});

Deno.test("parseConfigText reads empty text", () => {
  assert.deepEqual(parseConfigText("", "relay.yaml"), {});
  assert.deepEqual(parseConfigText("# nothing\n", "relay.yaml"), {});
});

Deno.test("parseConfigText rejects unknown keys", () => {
  const error = textError("http_prot: 8080\n");
  assert.ok(
    error.message.startsWith('Unknown key "http_prot" in relay.yaml'),
    error.message,
  );
  assert.equal(error.option, "http_prot");
});

Deno.test("parseConfigText rejects command keys", () => {
  for (const key of ["config", "help", "version"]) {
    const error = textError(`${key}: x\n`);
    assert.ok(error.message.includes(`"${key}"`), error.message);
  }
});

Deno.test("parseConfigText rejects invalid syntax", () => {
  const yaml = textError("http_port: 1\nhttp_port: 2\n");
  assert.ok(yaml.message.startsWith("Invalid YAML in relay.yaml: "));
  assert.ok(yaml.message.includes("line 2"), yaml.message);

  const json = textError('{"http_port": 1,, }', "relay.json");
  assert.ok(json.message.startsWith("Invalid JSON in relay.json: "));
  assert.ok(json.message.includes("line 1"), json.message);

  const alias = textError("http_port: *missing\n");
  assert.ok(alias.message.startsWith("Invalid YAML in relay.yaml: "));
});

Deno.test("parseConfigText rejects non-mapping top level", () => {
  for (const text of ["- 1\n", "8080\n", "just text\n"]) {
    const error = textError(text);
    assert.ok(error.message.includes("top level"), error.message);
  }
});

Deno.test("loadConfig reads YAML and JSON files", async () => {
  await withTempDir(async (dir) => {
    const yamlPath = join(dir, "relay.yml");
    const jsonPath = join(dir, "relay.json");
    await Deno.writeTextFile(yamlPath, "max_rooms: 12 # rooms\n");
    await Deno.writeTextFile(jsonPath, '{ "max_rooms": 13 }\n');

    const yaml = await loadConfig(["--config", yamlPath], {});
    assert.equal(yaml.options.maxRooms, 12);

    const json = await loadConfig([`--config=${jsonPath}`], {});
    assert.equal(json.options.maxRooms, 13);
  });
});

Deno.test("loadConfig names a missing config file", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "missing.yaml");
    const fromFlag = await loadError(["--config", path]);
    assert.ok(fromFlag.message.includes(`"${path}"`), fromFlag.message);
    assert.ok(fromFlag.message.includes("--config"), fromFlag.message);

    const fromEnv = await loadError([], { RELAY_CONFIG: path });
    assert.ok(fromEnv.message.includes(`"${path}"`), fromEnv.message);
    assert.ok(fromEnv.message.includes("RELAY_CONFIG"), fromEnv.message);
  });
});

Deno.test("loadConfig names the file in value errors", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "relay.yaml");
    await Deno.writeTextFile(path, "http_port: abc\n");
    const error = await loadError(["--config", path]);
    assert.ok(
      error.message.startsWith(
        `Invalid value for http_port in ${path}: "abc" (expected an ` +
          "integer from 0 to 65535)",
      ),
      error.message,
    );
  });
});

Deno.test("loadConfig rejects unknown flags", async () => {
  for (const flag of ["--bogus", "-x", "--http_port"]) {
    const error = await loadError([flag, "1"]);
    assert.ok(error.message.startsWith(`Unknown option "${flag}"`));
    assert.equal(error.option, flag);
  }
});

Deno.test("loadConfig rejects flag misuse", async () => {
  const missing = await loadError(["--http-port"]);
  assert.ok(missing.message.startsWith("Missing value for --http-port"));

  const dash = await loadError(["--token-secret", "-secret-value"]);
  assert.ok(dash.message.startsWith("Missing value for --token-secret"));
  assert.ok(!dash.message.includes("secret-value"), dash.message);

  const switchValue = await loadError(["--no-webtransport=yes"]);
  assert.ok(switchValue.message.includes("--no-webtransport takes no value"));

  const positional = await loadError(["serve"]);
  assert.ok(positional.message.includes('"serve"'), positional.message);
});

Deno.test("loadConfig redacts secrets in errors", async () => {
  const flag = await loadError(["--admin-token="]);
  assert.ok(flag.message.includes('"***"'), flag.message);

  const text = textError("token_secret: 123456789\n");
  assert.ok(text.message.includes('"***"'), text.message);
  assert.ok(!text.message.includes("123456789"), text.message);

  const list = textError("admin_token: [hunter2-admin]\n");
  assert.ok(!list.message.includes("hunter2"), list.message);
});

Deno.test("parseConfigText keeps secrets out of syntax errors", () => {
  const unterminated = textError('token_secret: "hunter2-secret\nx: 1\n');
  assert.ok(!unterminated.message.includes("hunter2"), unterminated.message);

  const duplicate = textError(
    "admin_token: hunter2-admin\nadmin_token: hunter2-admin\n",
  );
  assert.ok(!duplicate.message.includes("hunter2"), duplicate.message);

  const json = textError('{"token_secret": "hunter2-json",, }', "relay.json");
  assert.ok(!json.message.includes("hunter2"), json.message);
});

Deno.test("loadConfig requires cert and key together", async () => {
  await withTempDir(async (dir) => {
    const [cert, key] = await writePemFiles(dir);
    const certOnly = await loadError(["--cert", cert]);
    assert.ok(certOnly.message.startsWith("Missing value for --key"));

    const keyOnly = await loadError([], { RELAY_KEY: key });
    assert.ok(keyOnly.message.startsWith("Missing value for --cert"));
    assert.ok(keyOnly.message.includes("RELAY_KEY"), keyOnly.message);

    const path = join(dir, "relay.yaml");
    await Deno.writeTextFile(path, `cert: ${JSON.stringify(cert)}\n`);
    const mixed = await loadConfig(["--config", path, "--key", key], {});
    assert.equal(mixed.options.cert, cert);
    assert.equal(mixed.options.key, key);
  });
});

Deno.test("loadConfig checks cert and key files", async () => {
  await withTempDir(async (dir) => {
    const [cert, key] = await writePemFiles(dir);
    const missing = join(dir, "missing.pem");
    const absent = await loadError(["--cert", missing, "--key", key]);
    assert.ok(absent.message.includes(`"${missing}"`), absent.message);
    assert.ok(absent.message.includes("--cert"), absent.message);

    const swapped = await loadError(["--cert", key, "--key", cert]);
    assert.ok(
      swapped.message.startsWith(
        `Invalid value for --cert: ${JSON.stringify(key)}`,
      ),
      swapped.message,
    );
  });
});

Deno.test("loadConfig returns help and version", async () => {
  const help = await loadConfig(["--help", "--http-port", "abc"], {});
  assert.equal(help.help, true);
  assert.deepEqual(help.options, resolveOptions());

  const short = await loadConfig(["-h"], {});
  assert.equal(short.help, true);

  const version = await loadConfig(["--version"], {});
  assert.equal(version.version, true);
  assert.equal(version.help, false);
});

Deno.test("loadConfig warns about unknown env", async () => {
  const loaded = await loadConfig([], { RELAY_HTTP_PROT: "1", HOME: "/" });
  assert.equal(loaded.warnings.length, 1);
  assert.ok(loaded.warnings[0]?.includes("RELAY_HTTP_PROT"));
});

Deno.test("loadConfig warns about short token secret", async () => {
  const loaded = await loadConfig(["--token-secret", "short-secret"], {});
  assert.equal(loaded.options.tokenSecret, "short-secret");
  assert.equal(loaded.warnings.length, 1);
  assert.ok(!loaded.warnings[0]?.includes("short-secret"));
});

Deno.test("helpText lists every flag", () => {
  const text = helpText();
  const lines = text.split("\n");
  for (const spec of OPTION_TABLE) {
    const line = lines.find((l) => l.trimStart().startsWith(`--${spec.flag} `));
    assert.ok(line !== undefined, `--${spec.flag} is missing from --help`);
    assert.ok(line.includes("(default: "), `--${spec.flag} has no default`);
    assert.ok(line.includes(spec.description), `--${spec.flag} description`);
  }
  for (const command of COMMAND_FLAGS) {
    assert.ok(text.includes(`--${command.flag}`), `--${command.flag}`);
  }
  for (const group of ["Listeners", "Authentication", "Limits", "Timers"]) {
    assert.ok(text.includes(`\n${group}:\n`), group);
  }
  assert.ok(text.includes("Logging:"));
  assert.ok(text.includes("Federation (config file only):"));
});

Deno.test("helpText shows defaults with units", () => {
  const text = helpText();
  assert.ok(text.includes("(default: 5s)"), "handshake timeout");
  assert.ok(text.includes("(default: 65536 bytes)"), "signal bytes");
  assert.ok(text.includes("(default: 8080)"), "http port");
  assert.ok(text.includes("bare number"), "duration unit");
});

Deno.test("example relay.yaml holds the defaults", async () => {
  const path = new URL("../examples/relay.yaml", import.meta.url);
  const text = await Deno.readTextFile(path);
  const options = resolveOptions(parseConfigText(text, "relay.yaml"));
  assert.deepEqual(options, resolveOptions());
  for (const spec of OPTION_TABLE) {
    assert.ok(
      new RegExp(`^(# )?${spec.key}:`, "m").test(text),
      `${spec.key} is missing from examples/relay.yaml`,
    );
  }
});

Deno.test("example federation files parse", async () => {
  for (const name of ["federation-a.yaml", "federation-b.yaml"]) {
    const path = new URL(`../examples/${name}`, import.meta.url);
    const options = parseConfigText(await Deno.readTextFile(path), name);
    const federation = options.federation;
    assert.ok(federation !== undefined, name);
    assert.equal(
      federation.peers.length + federation.trusted.length,
      1,
      `${name} lists one other relay`,
    );
    assert.deepEqual(federation.globalRooms, ["general"], name);
  }
});

async function exists(path: URL): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

const HAS_MOD = await exists(new URL("../mod.ts", import.meta.url));

function mainCommand(args: string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-net", "main.ts", ...args],
    cwd: ROOT_PATH,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

Deno.test({
  name: "main prints help",
  ignore: !HAS_MOD,
  async fn() {
    const output = await mainCommand(["--help"]).output();
    const stdout = new TextDecoder().decode(output.stdout);
    assert.equal(output.code, 0);
    assert.ok(stdout.includes("--http-port"), stdout);
  },
});

Deno.test({
  name: "main prints version",
  ignore: !HAS_MOD,
  async fn() {
    const output = await mainCommand(["--version"]).output();
    const stdout = new TextDecoder().decode(output.stdout);
    const denoJson = JSON.parse(
      await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
    );
    assert.equal(output.code, 0);
    assert.equal(stdout.trim(), `relay ${denoJson.version}`);
  },
});

Deno.test({
  name: "main exits 2 on invalid value",
  ignore: !HAS_MOD,
  async fn() {
    const output = await mainCommand(["--http-port", "abc"]).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 2);
    assert.ok(stderr.includes("--http-port"), stderr);
    assert.ok(stderr.includes('"abc"'), stderr);
    assert.ok(stderr.includes("--help"), stderr);
  },
});

Deno.test({
  name: "main stops on SIGTERM",
  ignore: !HAS_MOD || Deno.build.os === "windows",
  async fn() {
    await withTempDir(async (dir) => {
      const child = mainCommand([
        "--host",
        "127.0.0.1",
        "--http-port",
        "0",
        "--no-webtransport",
        "--data-dir",
        join(dir, "data"),
      ]).spawn();
      // Only a hung child trips this; the test does not measure speed.
      const guard = setTimeout(() => child.kill("SIGKILL"), 60_000);
      const reader = child.stderr.pipeThrough(new TextDecoderStream())
        .getReader();
      let log = "";
      try {
        while (!log.includes("relay started")) {
          const { value, done } = await reader.read();
          if (done) break;
          log += value;
        }
        const started = log.includes("relay started");
        if (started) child.kill("SIGTERM");
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          log += value;
        }
        await child.stdout.cancel();
        const status = await child.status;
        assert.ok(started, log);
        assert.equal(status.code, 0, log);
      } finally {
        clearTimeout(guard);
      }
    });
  },
});
