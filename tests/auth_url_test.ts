import assert from "node:assert/strict";
import {
  AuthUrlClient,
  MAX_AUTH_RESPONSE_BYTES,
} from "../src/auth/auth_url.ts";

type Handler = (request: Request) => Response | Promise<Response>;

/**
 * Runs `body` against a real HTTP server on 127.0.0.1 port 0 and shuts the
 * server down afterwards. `release` resolves before shutdown, so handlers
 * that wait on it let the server finish.
 */
async function withServer(
  handler: (request: Request, release: Promise<void>) => Promise<Response>,
  body: (url: string) => Promise<void>,
): Promise<void> {
  const released = Promise.withResolvers<void>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => handler(request, released.promise),
  );
  try {
    await body(`http://127.0.0.1:${server.addr.port}/auth?key=hidden`);
  } finally {
    released.resolve();
    await server.shutdown();
  }
}

function answering(handler: Handler) {
  return async (request: Request) => {
    await request.body?.cancel();
    return await handler(request);
  };
}

Deno.test("auth url accepts valid answer", async () => {
  let method = "";
  let contentType = "";
  let requestBody: unknown = null;
  const handler = async (request: Request) => {
    method = request.method;
    contentType = request.headers.get("content-type") ?? "";
    requestBody = await request.json();
    return Response.json({
      valid: true,
      fingerprint: "a5d6:e3c6",
      alias: "alice",
      room: "general",
      expires_at: 1_700_000_000,
    });
  };

  await withServer(handler, async (url) => {
    const result = await new AuthUrlClient(url).validate("token-1");

    assert.equal(method, "POST");
    assert.equal(contentType, "application/json");
    assert.deepEqual(requestBody, { token: "token-1" });
    assert.ok(result.ok);
    assert.equal(result.acceptance.fingerprint, "a5d6:e3c6");
    assert.equal(result.acceptance.alias, "alice");
    assert.equal(result.acceptance.room, "general");
    assert.equal(result.acceptance.expiresAt, 1_700_000_000_000);
  });
});

Deno.test("auth url defaults optional fields", async () => {
  const handler = answering(() => Response.json({ valid: true, alias: null }));

  await withServer(handler, async (url) => {
    const result = await new AuthUrlClient(url).validate("token-1");

    assert.ok(result.ok);
    assert.equal(result.acceptance.fingerprint, null);
    assert.equal(result.acceptance.alias, null);
    assert.equal(result.acceptance.room, "*");
    assert.equal(result.acceptance.expiresAt, null);
  });
});

/** Responses of the service and the result each must produce. */
const ANSWER_CASES: {
  name: string;
  handler: Handler;
  expected: "rejected" | "unavailable";
  message?: RegExp;
}[] = [
  {
    name: "valid false",
    handler: () => Response.json({ valid: false }),
    expected: "rejected",
  },
  {
    name: "valid as string",
    handler: () => Response.json({ valid: "true" }),
    expected: "rejected",
  },
  {
    name: "status 401",
    handler: () => Response.json({ valid: true }, { status: 401 }),
    expected: "rejected",
  },
  {
    name: "status 302",
    handler: () =>
      new Response(null, {
        status: 302,
        headers: { location: "http://127.0.0.1:1/elsewhere" },
      }),
    expected: "rejected",
    message: /status 302/,
  },
  {
    name: "status 500",
    handler: () => Response.json({ valid: true }, { status: 500 }),
    expected: "unavailable",
  },
  {
    name: "status 503",
    handler: () => new Response("down", { status: 503 }),
    expected: "unavailable",
  },
  {
    name: "status 429",
    handler: () => new Response("slow down", { status: 429 }),
    expected: "unavailable",
  },
  {
    name: "non-JSON body",
    handler: () => new Response("<html>ok</html>"),
    expected: "rejected",
  },
  {
    name: "empty body",
    handler: () => new Response(null, { status: 204 }),
    expected: "rejected",
  },
  {
    name: "JSON array",
    handler: () => Response.json([{ valid: true }]),
    expected: "rejected",
  },
  {
    name: "alias not a string",
    handler: () => Response.json({ valid: true, alias: 5 }),
    expected: "rejected",
  },
  {
    name: "fingerprint not a string",
    handler: () => Response.json({ valid: true, fingerprint: {} }),
    expected: "rejected",
  },
  {
    name: "room empty",
    handler: () => Response.json({ valid: true, room: "" }),
    expected: "rejected",
  },
  {
    name: "expires_at a string",
    handler: () => Response.json({ valid: true, expires_at: "soon" }),
    expected: "rejected",
  },
  {
    name: "huge body with length",
    handler: () => Response.json({ valid: true, pad: "a".repeat(1024 * 1024) }),
    expected: "rejected",
  },
  {
    name: "huge streamed body",
    handler: () => {
      const chunk = new TextEncoder().encode(" ".repeat(1024));
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent === 0) {
            controller.enqueue(new TextEncoder().encode('{"valid":true}'));
          }
          controller.enqueue(chunk);
          sent++;
          if (sent === 1024) controller.close();
        },
      });
      return new Response(body, {
        headers: { "content-type": "application/json" },
      });
    },
    expected: "rejected",
    message: /over 16384 bytes/,
  },
];

for (const testCase of ANSWER_CASES) {
  Deno.test(`auth url ${testCase.name}`, async () => {
    await withServer(answering(testCase.handler), async (url) => {
      const result = await new AuthUrlClient(url).validate("token-1");

      assert.equal(result.ok, false);
      assert.ok(!result.ok);
      assert.equal(result.reason, testCase.expected, result.message);
      if (testCase.message !== undefined) {
        assert.match(result.message, testCase.message);
      }
    });
  });
}

Deno.test("auth url accepts body at limit", async () => {
  const skeleton = JSON.stringify({ valid: true, alias: "" });
  const alias = "a".repeat(MAX_AUTH_RESPONSE_BYTES - skeleton.length);
  const handler = answering(() =>
    new Response(JSON.stringify({ valid: true, alias }))
  );

  await withServer(handler, async (url) => {
    const result = await new AuthUrlClient(url).validate("token-1");

    assert.ok(result.ok);
    assert.equal(result.acceptance.alias, alias);
  });
});

Deno.test("auth url slow answer unavailable", async () => {
  const handler = async (request: Request, release: Promise<void>) => {
    await request.body?.cancel();
    await release;
    return Response.json({ valid: true });
  };

  await withServer(handler, async (url) => {
    const client = new AuthUrlClient(url, { timeoutMs: 100 });
    const result = await client.validate("token-1");

    assert.ok(!result.ok);
    assert.equal(result.reason, "unavailable");
    assert.match(result.message, /timed out after 100 ms/);
  });
});

Deno.test("auth url slow body unavailable", async () => {
  const handler = async (request: Request, release: Promise<void>) => {
    await request.body?.cancel();
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(new TextEncoder().encode('{"valid":'));
        await release;
        controller.enqueue(new TextEncoder().encode("true}"));
        controller.close();
      },
    });
    return new Response(body);
  };

  await withServer(handler, async (url) => {
    const client = new AuthUrlClient(url, { timeoutMs: 100 });
    const result = await client.validate("token-1");

    assert.ok(!result.ok);
    assert.equal(result.reason, "unavailable");
  });
});

Deno.test("auth url server down unavailable", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response(),
  );
  const url = `http://127.0.0.1:${server.addr.port}/auth`;
  await server.shutdown();

  const result = await new AuthUrlClient(url).validate("token-1");

  assert.ok(!result.ok);
  assert.equal(result.reason, "unavailable");
});

Deno.test("auth url limits requests in flight", async () => {
  const gate = Promise.withResolvers<void>();
  const handler = async (request: Request) => {
    await request.body?.cancel();
    await gate.promise;
    return Response.json({ valid: true });
  };

  await withServer(handler, async (url) => {
    const client = new AuthUrlClient(url, { maxConcurrentRequests: 1 });
    const first = client.validate("token-1");
    const second = await client.validate("token-2");
    gate.resolve();
    const firstResult = await first;

    assert.ok(!second.ok);
    assert.equal(second.reason, "unavailable");
    assert.match(second.message, /maximum is 1/);
    assert.ok(firstResult.ok);
  });
});

Deno.test("auth url messages hide path", async () => {
  const handler = answering(() => Response.json({ valid: false }));

  await withServer(handler, async (url) => {
    const result = await new AuthUrlClient(url).validate("token-1");

    assert.ok(!result.ok);
    assert.ok(!result.message.includes("hidden"), result.message);
    assert.ok(!result.message.includes("token-1"), result.message);
  });
});

Deno.test("auth url rejects bad scheme", () => {
  assert.throws(() => new AuthUrlClient("ftp://127.0.0.1/auth"), TypeError);
});

Deno.test("auth url rejects non-URL", () => {
  assert.throws(() => new AuthUrlClient("not a url"), TypeError);
});

Deno.test("auth url rejects zero timeout", () => {
  assert.throws(
    () => new AuthUrlClient("http://127.0.0.1/auth", { timeoutMs: 0 }),
    RangeError,
  );
});
