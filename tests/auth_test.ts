import assert from "node:assert/strict";
import {
  type AuthOutcome,
  createAuthenticator,
} from "../src/auth/authenticator.ts";
import { signJwt } from "../src/auth/jwt.ts";
import { createLogger } from "../src/log.ts";
import { parseRoomName, type RoomName } from "../src/wire/room_name.ts";

const SECRET = "test-secret-that-is-at-least-32-bytes-long";
const NOW_MS = 1_700_000_000_000;
const NOW_S = NOW_MS / 1000;

function room(name: string): RoomName {
  const parsed = parseRoomName(name);
  if (!parsed.ok) throw new TypeError(parsed.message);
  return parsed.name;
}

const GENERAL = room("general");

function failure(outcome: AuthOutcome) {
  assert.ok(!outcome.ok, "expected a rejection");
  return outcome;
}

/** Auth-URL stand-in on 127.0.0.1 that counts requests. */
async function withAuthServer(
  answer: (token: string) => Response,
  body: (url: string, requests: () => number) => Promise<void>,
): Promise<void> {
  let count = 0;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      count++;
      const { token } = await request.json();
      return answer(token);
    },
  );
  try {
    await body(`http://127.0.0.1:${server.addr.port}/auth`, () => count);
  } finally {
    await server.shutdown();
  }
}

Deno.test("open relay accepts without token", async () => {
  const authenticator = await createAuthenticator();
  const outcome = await authenticator.authenticate(undefined, GENERAL);

  assert.equal(authenticator.required, false);
  assert.ok(outcome.ok);
  assert.equal(outcome.identity.subject, null);
  assert.equal(outcome.identity.alias, null);
  assert.equal(outcome.identity.fingerprint, null);
  assert.equal(outcome.expiresAt, null);
});

Deno.test("open relay ignores given token", async () => {
  const authenticator = await createAuthenticator();
  const token = await signJwt(SECRET, { sub: "alice", room: "other" });

  const outcome = await authenticator.authenticate(token, GENERAL);

  assert.ok(outcome.ok);
  assert.equal(outcome.identity.subject, null);
});

Deno.test("secret auth is required", async () => {
  const authenticator = await createAuthenticator({ tokenSecret: SECRET });

  assert.equal(authenticator.required, true);
});

Deno.test("secret auth missing token", async () => {
  const authenticator = await createAuthenticator({ tokenSecret: SECRET });

  for (const token of [undefined, ""]) {
    const outcome = failure(await authenticator.authenticate(token, GENERAL));

    assert.equal(outcome.code, "unauthorized");
    assert.equal(outcome.result, "missing");
  }
});

Deno.test("secret auth accepts valid token", async () => {
  const authenticator = await createAuthenticator({
    tokenSecret: SECRET,
    now: () => NOW_MS,
  });
  const token = await signJwt(SECRET, {
    sub: "alice",
    name: "Alice",
    room: "general",
    exp: NOW_S + 60,
  });

  const outcome = await authenticator.authenticate(token, GENERAL);

  assert.ok(outcome.ok);
  assert.equal(outcome.identity.subject, "alice");
  assert.equal(outcome.identity.alias, "Alice");
  assert.equal(outcome.identity.fingerprint, null);
  assert.equal(outcome.expiresAt, NOW_MS + 60_000);
});

Deno.test("secret auth invalid token", async () => {
  const authenticator = await createAuthenticator({ tokenSecret: SECRET });
  const token = await signJwt("another-secret", { sub: "alice" });

  const outcome = failure(await authenticator.authenticate(token, GENERAL));

  assert.equal(outcome.code, "unauthorized");
  assert.equal(outcome.result, "invalid");
});

Deno.test("secret auth expired token", async () => {
  const authenticator = await createAuthenticator({
    tokenSecret: SECRET,
    now: () => NOW_MS,
  });
  const token = await signJwt(SECRET, { exp: NOW_S - 3600 });

  const outcome = failure(await authenticator.authenticate(token, GENERAL));

  assert.equal(outcome.code, "unauthorized");
  assert.equal(outcome.result, "expired");
});

Deno.test("secret auth token not yet valid", async () => {
  const authenticator = await createAuthenticator({
    tokenSecret: SECRET,
    now: () => NOW_MS,
  });
  const token = await signJwt(SECRET, { nbf: NOW_S + 3600 });

  const outcome = failure(await authenticator.authenticate(token, GENERAL));

  assert.equal(outcome.code, "unauthorized");
  assert.equal(outcome.result, "invalid");
});

Deno.test("secret auth room mismatch", async () => {
  const authenticator = await createAuthenticator({ tokenSecret: SECRET });
  const token = await signJwt(SECRET, { sub: "alice", room: "other" });

  const outcome = failure(await authenticator.authenticate(token, GENERAL));

  assert.equal(outcome.code, "forbidden");
  assert.equal(outcome.result, "forbidden");
});

Deno.test("secret auth room star", async () => {
  const authenticator = await createAuthenticator({ tokenSecret: SECRET });
  const token = await signJwt(SECRET, { room: "*" });

  const outcome = await authenticator.authenticate(token, GENERAL);

  assert.ok(outcome.ok);
});

Deno.test("secret auth without room claim", async () => {
  const authenticator = await createAuthenticator({ tokenSecret: SECRET });
  const token = await signJwt(SECRET, { sub: "alice" });

  const outcome = await authenticator.authenticate(token, GENERAL);

  assert.ok(outcome.ok);
});

Deno.test("url auth accepts valid answer", async () => {
  const answer = (token: string) =>
    Response.json({
      valid: token === "opaque-1",
      fingerprint: "a5d6:e3c6",
      alias: "bob",
      room: "general",
      expires_at: NOW_S + 60,
    });

  await withAuthServer(answer, async (url) => {
    const authenticator = await createAuthenticator({
      authUrl: url,
      now: () => NOW_MS,
    });
    const outcome = await authenticator.authenticate("opaque-1", GENERAL);

    assert.equal(authenticator.required, true);
    assert.ok(outcome.ok);
    assert.equal(outcome.identity.subject, null);
    assert.equal(outcome.identity.alias, "bob");
    assert.equal(outcome.identity.fingerprint, "a5d6:e3c6");
    assert.equal(outcome.expiresAt, NOW_MS + 60_000);
  });
});

Deno.test("url auth rejected token", async () => {
  await withAuthServer(() => Response.json({ valid: false }), async (url) => {
    const authenticator = await createAuthenticator({ authUrl: url });
    const outcome = failure(
      await authenticator.authenticate("opaque-1", GENERAL),
    );

    assert.equal(outcome.code, "unauthorized");
    assert.equal(outcome.result, "invalid");
  });
});

Deno.test("url auth service unavailable", async () => {
  const answer = () => new Response("boom", { status: 500 });

  await withAuthServer(answer, async (url) => {
    const authenticator = await createAuthenticator({ authUrl: url });
    const outcome = failure(
      await authenticator.authenticate("opaque-1", GENERAL),
    );

    assert.equal(outcome.code, "unauthorized");
    assert.equal(outcome.result, "unavailable");
    assert.ok(!outcome.message.includes(url), outcome.message);
  });
});

Deno.test("url auth room mismatch", async () => {
  const answer = () => Response.json({ valid: true, room: "other" });

  await withAuthServer(answer, async (url) => {
    const authenticator = await createAuthenticator({ authUrl: url });
    const outcome = failure(
      await authenticator.authenticate("opaque-1", GENERAL),
    );

    assert.equal(outcome.code, "forbidden");
    assert.equal(outcome.result, "forbidden");
  });
});

Deno.test("url auth expired answer", async () => {
  const answer = () => Response.json({ valid: true, expires_at: NOW_S - 3600 });

  await withAuthServer(answer, async (url) => {
    const authenticator = await createAuthenticator({
      authUrl: url,
      now: () => NOW_MS,
    });
    const outcome = failure(
      await authenticator.authenticate("opaque-1", GENERAL),
    );

    assert.equal(outcome.code, "unauthorized");
    assert.equal(outcome.result, "expired");
  });
});

Deno.test("url auth skips oversize token", async () => {
  await withAuthServer(() => Response.json({ valid: true }), async (url) => {
    const authenticator = await createAuthenticator({ authUrl: url });
    const outcome = failure(
      await authenticator.authenticate("a".repeat(9000), GENERAL),
    );

    assert.equal(outcome.result, "invalid");
    assert.equal(outcome.code, "unauthorized");
  });
});

Deno.test("both accept own JWT locally", async () => {
  await withAuthServer(
    () => Response.json({ valid: false }),
    async (url, requests) => {
      const authenticator = await createAuthenticator({
        tokenSecret: SECRET,
        authUrl: url,
      });
      const token = await signJwt(SECRET, { sub: "alice" });
      const outcome = await authenticator.authenticate(token, GENERAL);

      assert.ok(outcome.ok);
      assert.equal(outcome.identity.subject, "alice");
      assert.equal(requests(), 0);
    },
  );
});

Deno.test("both reject own expired JWT", async () => {
  await withAuthServer(
    () => Response.json({ valid: true }),
    async (url, requests) => {
      const authenticator = await createAuthenticator({
        tokenSecret: SECRET,
        authUrl: url,
        now: () => NOW_MS,
      });
      const token = await signJwt(SECRET, { exp: NOW_S - 3600 });
      const outcome = failure(await authenticator.authenticate(token, GENERAL));

      assert.equal(outcome.result, "expired");
      assert.equal(requests(), 0);
    },
  );
});

Deno.test("both send opaque token to URL", async () => {
  const answer = (token: string) =>
    Response.json({ valid: token === "opaque-1", alias: "bob" });

  await withAuthServer(answer, async (url, requests) => {
    const authenticator = await createAuthenticator({
      tokenSecret: SECRET,
      authUrl: url,
    });
    const outcome = await authenticator.authenticate("opaque-1", GENERAL);

    assert.ok(outcome.ok);
    assert.equal(outcome.identity.alias, "bob");
    assert.equal(requests(), 1);
  });
});

Deno.test("both send foreign JWT to URL", async () => {
  await withAuthServer(
    () => Response.json({ valid: false }),
    async (url, requests) => {
      const authenticator = await createAuthenticator({
        tokenSecret: SECRET,
        authUrl: url,
      });
      const token = await signJwt("another-secret", { sub: "mallory" });
      const outcome = failure(await authenticator.authenticate(token, GENERAL));

      assert.equal(outcome.result, "invalid");
      assert.equal(requests(), 1);
    },
  );
});

Deno.test("auth logs rejection at debug", async () => {
  const lines: string[] = [];
  const logger = createLogger({ level: "debug", write: (l) => lines.push(l) });
  const authenticator = await createAuthenticator({
    tokenSecret: SECRET,
    logger,
  });
  const token = await signJwt("another-secret", { sub: "alice" });

  await authenticator.authenticate(token, GENERAL);

  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /DEBUG auth Token rejected/);
  assert.ok(!lines[0]!.includes(token), "the log line contains the token");
});

Deno.test("auth logs unavailable at warn", async () => {
  const lines: string[] = [];
  const logger = createLogger({ level: "debug", write: (l) => lines.push(l) });

  await withAuthServer(() => new Response("", { status: 503 }), async (url) => {
    const authenticator = await createAuthenticator({ authUrl: url, logger });
    await authenticator.authenticate("opaque-1", GENERAL);
  });

  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /WARN {2}auth Auth URL unavailable/);
  assert.ok(!lines[0]!.includes("opaque-1"), "the log line contains the token");
});

Deno.test("auth warns on short secret", async () => {
  const lines: string[] = [];
  const logger = createLogger({ write: (l) => lines.push(l) });

  await createAuthenticator({ tokenSecret: "tiny-k3y", logger });

  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /shorter than recommended/);
  assert.ok(
    !lines[0]!.includes("tiny-k3y"),
    "the log line contains the secret",
  );
});

Deno.test("auth rejects empty secret", async () => {
  await assert.rejects(createAuthenticator({ tokenSecret: "" }), TypeError);
});

Deno.test("auth rejects bad URL", async () => {
  await assert.rejects(
    createAuthenticator({ authUrl: "file:///etc/passwd" }),
    TypeError,
  );
});
