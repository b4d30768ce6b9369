import assert from "node:assert/strict";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import {
  CERTIFICATE_BACKDATE_MS,
  type CertificateHash,
  CertificateManager,
  createSelfSignedCertificate,
  createSignedCertificateHashes,
  DEFAULT_CERTIFICATE_VALIDITY_MS,
  DEFAULT_ROTATE_BEFORE_MS,
  MAX_CERTIFICATE_VALIDITY_MS,
  RelayIdentity,
  signCertificateHashes,
  type TlsCertificate,
  toServerCertificateHashes,
  verifyCertificateHashes,
} from "../src/identity/mod.ts";

const DAY_MS = 24 * 60 * 60 * 1000;

async function withTempDir(
  body: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "relay_certificate_test_" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function makeCertificate(
  hostnames?: string[],
): Promise<TlsCertificate> {
  const now = Date.now();
  return await createSelfSignedCertificate({
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 5 * DAY_MS),
    hostnames,
  });
}

function sanNames(certificate: TlsCertificate): string[] {
  const leaf = new x509.X509Certificate(certificate.certPem);
  const san = leaf.getExtension(x509.SubjectAlternativeNameExtension);
  return san?.names.items.map((name) => `${name.type}:${name.value}`) ?? [];
}

Deno.test("self-signed certificate is ECDSA P-256", async () => {
  const certificate = await makeCertificate();
  const leaf = new x509.X509Certificate(certificate.certPem);
  const algorithm = leaf.publicKey.algorithm as EcKeyAlgorithm;
  assert.equal(algorithm.name, "ECDSA");
  assert.equal(algorithm.namedCurve, "P-256");
  assert.equal(leaf.signatureAlgorithm.name, "ECDSA");
  assert.match(certificate.keyPem, /^-----BEGIN PRIVATE KEY-----/);
});

Deno.test("self-signed certificate lists hostnames", async () => {
  const certificate = await makeCertificate([
    "localhost",
    "127.0.0.1",
    "::1",
    "relay.example",
  ]);
  const names = sanNames(certificate);
  assert.ok(names.includes("dns:localhost"), names.join());
  assert.ok(names.includes("ip:127.0.0.1"), names.join());
  assert.ok(names.includes("ip:::1"), names.join());
  assert.ok(names.includes("dns:relay.example"), names.join());
});

Deno.test("self-signed certificate hash is SHA-256", async () => {
  const certificate = await makeCertificate();
  const der = new x509.X509Certificate(certificate.certPem).rawData;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", der));
  assert.equal(certificate.hash.algorithm, "sha-256");
  assert.equal(certificate.hash.value, digest.toBase64());
});

Deno.test("self-signed certificate rejects long validity", async () => {
  const now = Date.now();
  await assert.rejects(
    () =>
      createSelfSignedCertificate({
        notBefore: new Date(now),
        notAfter: new Date(now + MAX_CERTIFICATE_VALIDITY_MS + 1000),
      }),
    RangeError,
  );
});

Deno.test("CertificateManager creates current and next", async () => {
  await withTempDir(async (dataDir) => {
    const now = Date.now();
    const manager = await CertificateManager.create({
      dataDir,
      hostnames: ["relay.example"],
      now: () => now,
    });
    const { current, next } = manager;
    assert.equal(manager.selfSigned, true);
    assert.ok(next !== undefined);

    for (const certificate of [current, next]) {
      const validity = certificate.notAfter.getTime() -
        certificate.notBefore.getTime();
      assert.ok(validity <= MAX_CERTIFICATE_VALIDITY_MS, `${validity} ms`);
      assert.ok(sanNames(certificate).includes("dns:relay.example"));
    }
    assert.ok(current.notBefore.getTime() <= now);
    assert.ok(
      now < current.notAfter.getTime() - DEFAULT_ROTATE_BEFORE_MS,
      "current is already due",
    );

    // next is valid from the moment current becomes due.
    const due = current.notAfter.getTime() - DEFAULT_ROTATE_BEFORE_MS;
    assert.ok(next.notBefore.getTime() <= due);
    assert.ok(next.notBefore.getTime() > due - CERTIFICATE_BACKDATE_MS - 1000);
    assert.deepEqual(manager.hashes, [current.hash, next.hash]);

    for (const name of ["current.pem", "next.pem"]) {
      const info = await Deno.stat(join(dataDir, "certs", name));
      assert.equal(info.mode! & 0o777, 0o600, name);
    }
  });
});

Deno.test("CertificateManager default validity", async () => {
  await withTempDir(async (dataDir) => {
    const manager = await CertificateManager.create({ dataDir });
    const { current } = manager;
    assert.equal(
      current.notAfter.getTime() - current.notBefore.getTime(),
      DEFAULT_CERTIFICATE_VALIDITY_MS,
    );
  });
});

Deno.test("CertificateManager reuses certificates at restart", async () => {
  await withTempDir(async (dataDir) => {
    const first = await CertificateManager.create({ dataDir });
    const second = await CertificateManager.create({ dataDir });
    assert.deepEqual(second.hashes, first.hashes);
    assert.equal(second.current.keyPem, first.current.keyPem);
    assert.equal(second.current.certPem, first.current.certPem);
  });
});

Deno.test("CertificateManager replaces certificates for new hostnames", async () => {
  await withTempDir(async (dataDir) => {
    const first = await CertificateManager.create({ dataDir });
    const second = await CertificateManager.create({
      dataDir,
      hostnames: ["relay.example"],
    });
    assert.notEqual(second.current.hash.value, first.current.hash.value);
    assert.ok(sanNames(second.current).includes("dns:relay.example"));
  });
});

Deno.test("CertificateManager replaces corrupt stored file", async () => {
  await withTempDir(async (dataDir) => {
    const first = await CertificateManager.create({ dataDir });
    await Deno.writeTextFile(join(dataDir, "certs", "current.pem"), "junk");
    const second = await CertificateManager.create({ dataDir });
    assert.notEqual(second.current.hash.value, first.current.hash.value);
  });
});

Deno.test("CertificateManager rotation moves next to current", async () => {
  await withTempDir(async (dataDir) => {
    let now = Date.now();
    const manager = await CertificateManager.create({
      dataDir,
      now: () => now,
    });
    const before = manager.hashes;
    const rotated: TlsCertificate[] = [];
    manager.onRotate((certificate) => rotated.push(certificate));

    assert.equal(await manager.rotateIfDue(), false);
    assert.equal(rotated.length, 0);

    now = manager.current.notAfter.getTime() - DEFAULT_ROTATE_BEFORE_MS;
    assert.equal(await manager.rotateIfDue(), true);

    assert.equal(manager.current.hash.value, before[1]!.value);
    assert.notEqual(manager.next!.hash.value, before[0]!.value);
    assert.notEqual(manager.next!.hash.value, before[1]!.value);
    assert.equal(rotated.length, 1);
    assert.equal(rotated[0]!.hash.value, before[1]!.value);
    assert.ok(manager.current.notBefore.getTime() <= now);
    assert.equal(await manager.rotateIfDue(), false);

    // The rotated pair is what a restart at the same time loads.
    const restarted = await CertificateManager.create({
      dataDir,
      now: () => now,
    });
    assert.deepEqual(restarted.hashes, manager.hashes);
    manager.close();
  });
});

Deno.test("CertificateManager rotation with short validity", async () => {
  await withTempDir(async (dataDir) => {
    let now = Date.now();
    const validityMs = 3 * 60 * 60 * 1000;
    const rotateBeforeMs = 30 * 60 * 1000;
    const manager = await CertificateManager.create({
      dataDir,
      validityMs,
      rotateBeforeMs,
      now: () => now,
    });
    const seen = new Set(manager.hashes.map((hash) => hash.value));

    for (let round = 0; round < 3; round++) {
      now = manager.current.notAfter.getTime() - rotateBeforeMs + 1000;
      const previousNext = manager.next!.hash.value;
      assert.equal(await manager.rotateIfDue(), true, `round ${round}`);
      assert.equal(manager.current.hash.value, previousNext);
      assert.equal(seen.has(manager.next!.hash.value), false);
      seen.add(manager.next!.hash.value);
    }
  });
});

Deno.test("CertificateManager restart after expiry makes new pair", async () => {
  await withTempDir(async (dataDir) => {
    let now = Date.now();
    const first = await CertificateManager.create({
      dataDir,
      now: () => now,
    });
    now += 30 * DAY_MS;
    const second = await CertificateManager.create({
      dataDir,
      now: () => now,
    });
    for (const hash of second.hashes) {
      assert.equal(
        first.hashes.some((old) => old.value === hash.value),
        false,
      );
    }
    assert.ok(second.current.notBefore.getTime() <= now);
    assert.ok(second.current.notAfter.getTime() > now);
  });
});

Deno.test("CertificateManager validates options", async () => {
  await assert.rejects(
    () =>
      CertificateManager.create({
        dataDir: "unused",
        validityMs: MAX_CERTIFICATE_VALIDITY_MS + 1,
      }),
    RangeError,
  );
  await assert.rejects(
    () =>
      CertificateManager.create({
        dataDir: "unused",
        validityMs: 2 * DAY_MS,
        rotateBeforeMs: 2 * DAY_MS,
      }),
    RangeError,
  );
  await assert.rejects(
    () => CertificateManager.create({ dataDir: "unused", certFile: "a.pem" }),
    TypeError,
  );
});

Deno.test("CertificateManager loads and reloads operator files", async () => {
  await withTempDir(async (dir) => {
    const certFile = join(dir, "cert.pem");
    const keyFile = join(dir, "key.pem");
    const first = await makeCertificate();
    await Deno.writeTextFile(certFile, first.certPem);
    await Deno.writeTextFile(keyFile, first.keyPem);

    const manager = await CertificateManager.create({
      dataDir: join(dir, "data"),
      certFile,
      keyFile,
    });
    assert.equal(manager.selfSigned, false);
    assert.equal(manager.next, undefined);
    assert.deepEqual(manager.hashes, [first.hash]);
    assert.equal(manager.current.keyPem, first.keyPem);
    assert.equal(await manager.rotateIfDue(), false);

    const rotated: TlsCertificate[] = [];
    manager.onRotate((certificate) => rotated.push(certificate));
    await manager.reload();
    assert.equal(rotated.length, 0, "unchanged files announced as rotation");

    const second = await makeCertificate();
    await Deno.writeTextFile(certFile, second.certPem);
    await Deno.writeTextFile(keyFile, second.keyPem);
    await manager.reload();
    assert.deepEqual(manager.hashes, [second.hash]);
    assert.equal(rotated.length, 1);
    assert.equal(rotated[0]!.hash.value, second.hash.value);

    await Deno.writeTextFile(certFile, "not a certificate");
    await assert.rejects(() => manager.reload(), /cert\.pem/);
    assert.deepEqual(manager.hashes, [second.hash]);
  });
});

Deno.test("CertificateManager rotates once when called twice", async () => {
  await withTempDir(async (dataDir) => {
    let now = Date.now();
    const manager = await CertificateManager.create({
      dataDir,
      now: () => now,
    });
    const next = manager.next!.hash.value;
    let rotations = 0;
    manager.onRotate(() => rotations++);
    now = manager.current.notAfter.getTime() - DEFAULT_ROTATE_BEFORE_MS;

    const results = await Promise.all([
      manager.rotateIfDue(),
      manager.rotateIfDue(),
    ]);
    assert.deepEqual(results, [true, false]);
    assert.equal(rotations, 1);
    assert.equal(manager.current.hash.value, next);
  });
});

Deno.test("CertificateManager onRotate remover and close", async () => {
  await withTempDir(async (dataDir) => {
    let now = Date.now();
    const manager = await CertificateManager.create({
      dataDir,
      now: () => now,
    });
    let calls = 0;
    const remove = manager.onRotate(() => calls++);
    remove();
    manager.start();
    manager.start();
    now = manager.current.notAfter.getTime() - DEFAULT_ROTATE_BEFORE_MS;
    assert.equal(await manager.rotateIfDue(), true);
    assert.equal(calls, 0);
    manager.close();
    manager.close();
  });
});

Deno.test("certificate hashes signature verifies", async () => {
  const identity = await RelayIdentity.generate();
  const hashes = [
    (await makeCertificate()).hash,
    (await makeCertificate()).hash,
  ];
  const body = await createSignedCertificateHashes(identity, hashes);
  assert.equal(body.signature, await signCertificateHashes(identity, hashes));
  assert.equal(
    await verifyCertificateHashes(body, identity.fingerprint),
    true,
  );
  assert.equal(
    await verifyCertificateHashes(body, identity.fingerprint.toUpperCase()),
    true,
  );
  const overJson = JSON.parse(JSON.stringify(body));
  assert.equal(
    await verifyCertificateHashes(overJson, identity.fingerprint),
    true,
  );
});

Deno.test("certificate hashes reject wrong fingerprint", async () => {
  const identity = await RelayIdentity.generate();
  const other = await RelayIdentity.generate();
  const hashes = [(await makeCertificate()).hash];
  const body = await createSignedCertificateHashes(identity, hashes);
  assert.equal(await verifyCertificateHashes(body, other.fingerprint), false);

  // A body that claims the expected fingerprint but carries another key.
  const swapped = { ...body, fingerprint: other.fingerprint };
  assert.equal(
    await verifyCertificateHashes(swapped, other.fingerprint),
    false,
  );
  const otherKey = { ...body, public_key: other.publicKeyBase64 };
  assert.equal(
    await verifyCertificateHashes(otherKey, identity.fingerprint),
    false,
  );
});

Deno.test("certificate hashes reject tampering", async () => {
  const identity = await RelayIdentity.generate();
  const first = (await makeCertificate()).hash;
  const second = (await makeCertificate()).hash;
  const body = await createSignedCertificateHashes(identity, [first, second]);
  const cases: Record<string, unknown> = {
    "replaced hash": { ...body, certificateHashes: [second, second] },
    "reordered hashes": { ...body, certificateHashes: [second, first] },
    "dropped hash": { ...body, certificateHashes: [first] },
    "empty list": { ...body, certificateHashes: [] },
    "short hash": {
      ...body,
      certificateHashes: [{ algorithm: "sha-256", value: "AAAA" }, second],
    },
    "other algorithm": {
      ...body,
      certificateHashes: [{ ...first, algorithm: "sha-384" }, second],
    },
    "bad signature": { ...body, signature: "AAAA" },
    "missing key": { ...body, public_key: undefined },
    "null body": null,
    "string body": "certificateHashes",
  };
  for (const [name, tampered] of Object.entries(cases)) {
    assert.equal(
      await verifyCertificateHashes(tampered, identity.fingerprint),
      false,
      name,
    );
  }
});

Deno.test("verifyCertificateHashes rejects bad fingerprint", async () => {
  await assert.rejects(
    () => verifyCertificateHashes({}, "not-a-fingerprint"),
    TypeError,
  );
});

Deno.test({
  name: "WebTransport pins rotated certificate",
  // Deno.QuicEndpoint exists only with --unstable-net.
  ignore: !("QuicEndpoint" in Deno),
  async fn() {
    await withTempDir(async (dataDir) => {
      // Deno's client checks validity against the real clock. With 2 h of
      // validity and rotation 30 min before expiry, next's notBefore is
      // 30 min ago, so next is valid now and not only at the faked time.
      const rotateBeforeMs = 30 * 60 * 1000;
      let now = Date.now();
      const manager = await CertificateManager.create({
        dataDir,
        validityMs: 2 * 60 * 60 * 1000,
        rotateBeforeMs,
        now: () => now,
      });
      const published = manager.hashes;
      const endpoint = new Deno.QuicEndpoint({
        hostname: "127.0.0.1",
        port: 0,
      });
      const listen = (certificate: TlsCertificate) =>
        endpoint.listen({
          alpnProtocols: ["h3"],
          cert: certificate.certPem,
          key: certificate.keyPem,
        });
      // Every listener object stays referenced until the endpoint closes,
      // because collecting one clears the endpoint's certificate.
      const listeners = [listen(manager.current)];
      manager.onRotate((certificate) => listeners.push(listen(certificate)));

      const sessions: WebTransport[] = [];
      const accepting = (async () => {
        for await (const incoming of listeners[0]!) {
          const conn = await incoming.accept();
          sessions.push(await Deno.upgradeWebTransport(conn));
        }
      })().catch(() => {});

      const connect = async (path: string, hashes: CertificateHash[]) => {
        const client = new WebTransport(
          `https://127.0.0.1:${endpoint.addr.port}${path}`,
          { serverCertificateHashes: toServerCertificateHashes(hashes) },
        );
        await client.ready;
        return client;
      };

      const before = await connect("/before", published);
      now = manager.current.notAfter.getTime() - rotateBeforeMs;
      assert.equal(await manager.rotateIfDue(), true);
      // The hashes published before the rotation still reach the relay, and
      // the new current certificate alone proves that the listener
      // switched.
      const after = await connect("/after", published);
      const pinnedNew = await connect("/new", [manager.current.hash]);

      for (const client of [before, after, pinnedNew]) {
        client.close();
        await client.closed;
      }
      for (const session of sessions) {
        session.close();
        await session.closed.catch(() => {});
      }
      endpoint.close();
      await accepting;
      manager.close();
    });
  },
});
