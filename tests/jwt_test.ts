import assert from "node:assert/strict";
import {
  DEFAULT_CLOCK_SKEW_MS,
  type JwtFailureReason,
  JwtVerifier,
  MAX_TOKEN_BYTES,
  signJwt,
} from "../src/auth/jwt.ts";

const SECRET = "test-secret-that-is-at-least-32-bytes-long";
const NOW_MS = 1_700_000_000_000;
const NOW_S = NOW_MS / 1000;
const SKEW_S = DEFAULT_CLOCK_SKEW_MS / 1000;

const encoder = new TextEncoder();

function base64Url(text: string): string {
  return encoder.encode(text).toBase64({
    alphabet: "base64url",
    omitPadding: true,
  });
}

/** Signs raw header and payload text, for payloads signJwt cannot express. */
async function signRaw(
  secret: string,
  headerJson: string,
  payloadText: string,
): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const input = base64Url(headerJson) + "." + base64Url(payloadText);
  const signature = await crypto.subtle.sign(
    "HMAC",
    key,
    encoder.encode(input),
  );
  return input + "." +
    new Uint8Array(signature).toBase64({
      alphabet: "base64url",
      omitPadding: true,
    });
}

function createVerifier(): Promise<JwtVerifier> {
  return JwtVerifier.create(SECRET, { now: () => NOW_MS });
}

interface Case {
  name: string;
  token: () => Promise<string>;
  expected: "ok" | JwtFailureReason;
}

const CASES: Case[] = [
  {
    name: "valid token",
    token: () => signJwt(SECRET, { sub: "alice", exp: NOW_S + 60 }),
    expected: "ok",
  },
  {
    name: "valid token without claims",
    token: () => signJwt(SECRET, {}),
    expected: "ok",
  },
  {
    name: "wrong secret",
    token: () => signJwt("another-secret", { sub: "alice" }),
    expected: "bad_signature",
  },
  {
    name: "alg none with empty signature",
    token: async () => {
      const signed = await signJwt(SECRET, { sub: "alice" }, { alg: "none" });
      return signed.slice(0, signed.lastIndexOf(".") + 1);
    },
    expected: "bad_algorithm",
  },
  {
    name: "alg none with valid HMAC",
    token: () => signJwt(SECRET, { sub: "alice" }, { alg: "none" }),
    expected: "bad_algorithm",
  },
  {
    name: "alg RS256 with the secret as key",
    token: () => signJwt(SECRET, { sub: "alice" }, { alg: "RS256" }),
    expected: "bad_algorithm",
  },
  {
    name: "alg hs256 in lower case",
    token: () => signJwt(SECRET, { sub: "alice" }, { alg: "hs256" }),
    expected: "bad_algorithm",
  },
  {
    name: "missing alg",
    token: () => signJwt(SECRET, { sub: "alice" }, { typ: "JWT" }),
    expected: "bad_algorithm",
  },
  {
    name: "typ other than JWT",
    token: () => signJwt(SECRET, {}, { alg: "HS256", typ: "JWE" }),
    expected: "malformed",
  },
  {
    name: "crit header",
    token: () => signJwt(SECRET, {}, { alg: "HS256", crit: ["b64"] }),
    expected: "malformed",
  },
  {
    name: "header not JSON",
    token: () => signRaw(SECRET, "{alg:HS256}", "{}"),
    expected: "malformed",
  },
  {
    name: "header a JSON array",
    token: () => signRaw(SECRET, '["HS256"]', "{}"),
    expected: "malformed",
  },
  {
    name: "two parts",
    token: async () => {
      const signed = await signJwt(SECRET, {});
      return signed.slice(0, signed.lastIndexOf("."));
    },
    expected: "malformed",
  },
  {
    name: "four parts",
    token: async () => (await signJwt(SECRET, {})) + ".AAAA",
    expected: "malformed",
  },
  {
    name: "empty string",
    token: () => Promise.resolve(""),
    expected: "malformed",
  },
  {
    name: "bad base64 character",
    token: async () => (await signJwt(SECRET, {})).replace(".", ".!"),
    expected: "malformed",
  },
  {
    name: "base64 padding",
    token: async () => {
      const [header, payload, signature] = (await signJwt(SECRET, {})).split(
        ".",
      );
      return `${header}.${payload}.${signature}=`;
    },
    expected: "malformed",
  },
  {
    name: "non-canonical signature bits",
    token: async () => {
      // 32 signature bytes leave 2 unused bits in the last character; "B"
      // sets one of them, so a strict decoder rejects it.
      const signed = await signJwt(SECRET, {});
      return signed.slice(0, -1) + "B";
    },
    expected: "malformed",
  },
  {
    name: "non-object payload",
    token: () => signRaw(SECRET, '{"alg":"HS256"}', "[1,2]"),
    expected: "malformed",
  },
  {
    name: "null payload",
    token: () => signRaw(SECRET, '{"alg":"HS256"}', "null"),
    expected: "malformed",
  },
  {
    name: "payload not JSON",
    token: () => signRaw(SECRET, '{"alg":"HS256"}', "sub=alice"),
    expected: "malformed",
  },
  {
    name: "sub not a string",
    token: () => signJwt(SECRET, { sub: 42 }),
    expected: "malformed",
  },
  {
    name: "name not a string",
    token: () => signJwt(SECRET, { name: ["alice"] }),
    expected: "malformed",
  },
  {
    name: "room empty",
    token: () => signJwt(SECRET, { room: "" }),
    expected: "malformed",
  },
  {
    name: "exp a string",
    token: () => signJwt(SECRET, { exp: String(NOW_S + 60) }),
    expected: "malformed",
  },
  {
    name: "exp too large",
    token: () => signJwt(SECRET, { exp: 1e308 }),
    expected: "malformed",
  },
  {
    name: "expired beyond skew",
    token: () => signJwt(SECRET, { exp: NOW_S - SKEW_S - 1 }),
    expected: "expired",
  },
  {
    name: "expired exactly at skew",
    token: () => signJwt(SECRET, { exp: NOW_S - SKEW_S }),
    expected: "expired",
  },
  {
    name: "expired within skew",
    token: () => signJwt(SECRET, { exp: NOW_S - SKEW_S + 1 }),
    expected: "ok",
  },
  {
    name: "nbf in future",
    token: () => signJwt(SECRET, { nbf: NOW_S + SKEW_S + 1 }),
    expected: "not_yet_valid",
  },
  {
    name: "nbf within skew",
    token: () => signJwt(SECRET, { nbf: NOW_S + SKEW_S - 1 }),
    expected: "ok",
  },
  {
    name: "nbf a string",
    token: () => signJwt(SECRET, { nbf: "now" }),
    expected: "malformed",
  },
  {
    name: "oversize token",
    token: () => signJwt(SECRET, { pad: "a".repeat(MAX_TOKEN_BYTES) }),
    expected: "malformed",
  },
];

for (const testCase of CASES) {
  Deno.test(`jwt verify ${testCase.name}`, async () => {
    const verifier = await createVerifier();
    const result = await verifier.verify(await testCase.token());

    const actual = result.ok ? "ok" : result.reason;
    assert.equal(actual, testCase.expected, result.ok ? "" : result.message);
  });
}

Deno.test("jwt verify returns claims", async () => {
  const verifier = await createVerifier();
  const token = await signJwt(SECRET, {
    sub: "alice",
    name: "Alice",
    room: "general",
    exp: NOW_S + 60.5,
  });
  const result = await verifier.verify(token);

  assert.ok(result.ok);
  assert.equal(result.claims.subject, "alice");
  assert.equal(result.claims.alias, "Alice");
  assert.equal(result.claims.room, "general");
  assert.equal(result.claims.expiresAt, NOW_MS + 60_500);
});

Deno.test("jwt verify defaults missing claims", async () => {
  const verifier = await createVerifier();
  const result = await verifier.verify(await signJwt(SECRET, {}));

  assert.ok(result.ok);
  assert.equal(result.claims.subject, null);
  assert.equal(result.claims.alias, null);
  assert.equal(result.claims.room, "*");
  assert.equal(result.claims.expiresAt, null);
});

Deno.test("jwt verify keeps room star", async () => {
  const verifier = await createVerifier();
  const result = await verifier.verify(await signJwt(SECRET, { room: "*" }));

  assert.ok(result.ok);
  assert.equal(result.claims.room, "*");
});

Deno.test("jwt verify accepts token at size limit", async () => {
  const verifier = await createVerifier();

  // Grow the padding until one more byte would pass the limit.
  let largest = "";
  for (let pad = MAX_TOKEN_BYTES * 3 / 4 - 200;; pad++) {
    const token = await signJwt(SECRET, { pad: "a".repeat(pad) });
    if (token.length > MAX_TOKEN_BYTES) break;
    largest = token;
  }
  const result = await verifier.verify(largest);

  assert.ok(largest.length > MAX_TOKEN_BYTES - 4);
  assert.ok(result.ok);
});

Deno.test("jwt verify marks signed failures", async () => {
  const verifier = await createVerifier();
  const expired = await verifier.verify(
    await signJwt(SECRET, { exp: NOW_S - 3600 }),
  );
  const forged = await verifier.verify(
    await signJwt("another-secret", { exp: NOW_S - 3600 }),
  );

  assert.ok(!expired.ok);
  assert.equal(expired.signatureValid, true);
  assert.ok(!forged.ok);
  assert.equal(forged.signatureValid, false);
});

Deno.test("jwt verify uses custom skew", async () => {
  const verifier = await JwtVerifier.create(SECRET, {
    now: () => NOW_MS,
    clockSkewMs: 0,
  });
  const result = await verifier.verify(
    await signJwt(SECRET, { exp: NOW_S - 1 }),
  );

  assert.ok(!result.ok);
  assert.equal(result.reason, "expired");
});

Deno.test("jwt messages omit the token", async () => {
  const verifier = await createVerifier();
  const token = await signJwt("another-secret", { sub: "alice" });
  const result = await verifier.verify(token);

  assert.ok(!result.ok);
  for (const part of token.split(".")) {
    assert.ok(!result.message.includes(part), result.message);
  }
});

Deno.test("jwt verifier rejects empty secret", async () => {
  await assert.rejects(JwtVerifier.create(""), TypeError);
});

Deno.test("jwt verifier rejects negative skew", async () => {
  await assert.rejects(
    JwtVerifier.create(SECRET, { clockSkewMs: -1 }),
    RangeError,
  );
});
