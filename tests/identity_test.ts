import assert from "node:assert/strict";
import { join } from "node:path";
import {
  computeFingerprint,
  IDENTITY_FILE_NAME,
  parseFingerprint,
  RelayIdentity,
  verifyIdentitySignature,
} from "../src/identity/mod.ts";

const FINGERPRINT_FORMAT = /^[0-9a-f]{4}(:[0-9a-f]{4}){7}$/;
const encoder = new TextEncoder();

async function withTempDir(
  body: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "relay_identity_test_" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("RelayIdentity creates and persists key", async () => {
  await withTempDir(async (root) => {
    const dataDir = join(root, "missing", "data");
    const created = await RelayIdentity.loadOrCreate(dataDir);
    const path = join(dataDir, IDENTITY_FILE_NAME);

    const info = await Deno.stat(path);
    assert.equal(info.mode! & 0o777, 0o600);

    const file = JSON.parse(await Deno.readTextFile(path));
    assert.equal(file.algorithm, "Ed25519");
    assert.equal(file.public_key, created.publicKeyBase64);
    assert.equal(typeof file.private_key, "string");

    const reloaded = await RelayIdentity.loadOrCreate(dataDir);
    assert.equal(reloaded.fingerprint, created.fingerprint);
    assert.deepEqual(reloaded.publicKey, created.publicKey);
  });
});

Deno.test("RelayIdentity reloaded key signs alike", async () => {
  await withTempDir(async (dataDir) => {
    const created = await RelayIdentity.loadOrCreate(dataDir);
    const reloaded = await RelayIdentity.loadOrCreate(dataDir);
    const data = encoder.encode("challenge");
    const signature = await reloaded.sign(data);
    assert.equal(
      await verifyIdentitySignature(created.publicKey, data, signature),
      true,
    );
  });
});

Deno.test("RelayIdentity fingerprint format", async () => {
  const identity = await RelayIdentity.generate();
  assert.match(identity.fingerprint, FINGERPRINT_FORMAT);
  assert.equal(identity.publicKey.length, 32);
  assert.equal(
    identity.fingerprint,
    await computeFingerprint(identity.publicKey),
  );
});

Deno.test("computeFingerprint matches SHA-256 prefix", async () => {
  const key = new Uint8Array(32).map((_, i) => i);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", key));
  const expected = digest.subarray(0, 16).toHex().match(/.{4}/g)!.join(":");
  assert.equal(await computeFingerprint(key), expected);
});

Deno.test("computeFingerprint rejects wrong key length", async () => {
  await assert.rejects(
    () => computeFingerprint(new Uint8Array(31)),
    TypeError,
  );
});

Deno.test("RelayIdentity sign and verify", async () => {
  const identity = await RelayIdentity.generate();
  const data = encoder.encode("hello relay");
  const signature = await identity.sign(data);
  assert.equal(signature.length, 64);
  assert.equal(
    await verifyIdentitySignature(identity.publicKey, data, signature),
    true,
  );

  const tampered = encoder.encode("hello relaY");
  assert.equal(
    await verifyIdentitySignature(identity.publicKey, tampered, signature),
    false,
  );

  const other = await RelayIdentity.generate();
  assert.equal(
    await verifyIdentitySignature(other.publicKey, data, signature),
    false,
  );
});

Deno.test("verifyIdentitySignature rejects bad lengths", async () => {
  const identity = await RelayIdentity.generate();
  const data = encoder.encode("x");
  const signature = await identity.sign(data);
  assert.equal(
    await verifyIdentitySignature(new Uint8Array(31), data, signature),
    false,
  );
  assert.equal(
    await verifyIdentitySignature(
      identity.publicKey,
      data,
      signature.subarray(0, 63),
    ),
    false,
  );
});

Deno.test("RelayIdentity corrupt file names path", async () => {
  await withTempDir(async (dataDir) => {
    const path = join(dataDir, IDENTITY_FILE_NAME);
    const cases = [
      "not json",
      "[]",
      JSON.stringify({ version: 1, algorithm: "Ed25519" }),
      JSON.stringify({
        version: 1,
        algorithm: "Ed25519",
        private_key: "AAAA",
        public_key: "AAAA",
      }),
    ];
    for (const text of cases) {
      await Deno.writeTextFile(path, text);
      await assert.rejects(
        () => RelayIdentity.loadOrCreate(dataDir),
        (error: Error) => error.message.includes(path),
        `no error naming the path for ${text}`,
      );
    }
  });
});

Deno.test("RelayIdentity rejects mismatched public key", async () => {
  await withTempDir(async (dataDir) => {
    await RelayIdentity.loadOrCreate(dataDir);
    const path = join(dataDir, IDENTITY_FILE_NAME);
    const file = JSON.parse(await Deno.readTextFile(path));
    const other = await RelayIdentity.generate();
    file.public_key = other.publicKeyBase64;
    await Deno.writeTextFile(path, JSON.stringify(file));
    await assert.rejects(
      () => RelayIdentity.loadOrCreate(dataDir),
      /does not belong to private_key/,
    );
  });
});

Deno.test("parseFingerprint accepts and lowercases", () => {
  assert.equal(
    parseFingerprint("A5D6:E3C6:5AE7:185C:4EB1:AF89:DAED:4A43"),
    "a5d6:e3c6:5ae7:185c:4eb1:af89:daed:4a43",
  );
});

Deno.test("parseFingerprint rejects bad forms", () => {
  const bad = [
    "",
    "a5d6:e3c6:5ae7:185c:4eb1:af89:daed",
    "a5d6:e3c6:5ae7:185c:4eb1:af89:daed:4a43:0000",
    "a5d6e3c65ae7185c4eb1af89daed4a43",
    "a5d6:e3c6:5ae7:185c:4eb1:af89:daed:4a4g",
    " a5d6:e3c6:5ae7:185c:4eb1:af89:daed:4a43",
    "a5d6-e3c6-5ae7-185c-4eb1-af89-daed-4a43",
  ];
  for (const text of bad) {
    assert.throws(
      () => parseFingerprint(text),
      (error: Error) =>
        error instanceof TypeError &&
        error.message.includes(JSON.stringify(text)),
      `accepted ${JSON.stringify(text)}`,
    );
  }
});
