/**
 * The `federation:` block of the config file: peers this relay dials,
 * relays trusted to dial it, and the rooms bridged between them. File keys
 * are snake case (`http_url`, `global_rooms`) and map to the camel case
 * fields of {@linkcode FederationOptions}.
 *
 * @module
 */

import type {
  FederationOptions,
  FederationPeerOptions,
  FederationTrustedOptions,
} from "../options.ts";
import { parseRoomName } from "../wire/room_name.ts";
import { ConfigError, invalidValue } from "./config_error.ts";
import { isUrlWith } from "./value_kinds.ts";

/** Identity fingerprint: 8 groups of 4 hex digits separated by colons. */
export const FINGERPRINT_PATTERN = /^[0-9a-f]{4}(?::[0-9a-f]{4}){7}$/i;

/** Maximum length of a peer label, in characters; labels appear in logs and metrics. */
export const MAX_LABEL_LENGTH = 64;

/** Entry of `global_rooms` that bridges every room. */
export const ALL_ROOMS = "*";

const FINGERPRINT_EXPECTED = "8 groups of 4 hex digits separated by " +
  'colons, such as "a5d6:e3c6:5ae7:185c:4eb1:af89:daed:4a43"';

// deno-lint-ignore no-control-regex
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;

type Entry = Record<string, unknown>;

function isMapping(value: unknown): value is Entry {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Reads the block's entries and names each error after its file key. */
class FederationReader {
  readonly #path: string;
  /** Label of each fingerprint seen so far, with the key that set it. */
  readonly #labels = new Map<string, { label: string; key: string }>();
  /** Fingerprint of each label seen so far. */
  readonly #fingerprints = new Map<string, string>();

  constructor(path: string) {
    this.#path = path;
  }

  where(key: string): string {
    return `${key} in ${this.#path}`;
  }

  mapping(value: unknown, key: string, allowed: readonly string[]): Entry {
    if (!isMapping(value)) {
      throw invalidValue(this.where(key), value, "a mapping of keys to values");
    }

    for (const name of Object.keys(value)) {
      if (allowed.includes(name)) continue;
      throw new ConfigError(
        `Unknown key "${key}.${name}" in ${this.#path}: ` +
          `the keys here are ${allowed.join(", ")}`,
        { option: `${key}.${name}` },
      );
    }
    return value;
  }

  list(value: unknown, key: string): unknown[] {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) {
      throw invalidValue(this.where(key), value, "a list");
    }
    return value;
  }

  required(entry: Entry, name: string, key: string): unknown {
    const value = entry[name];
    if (value !== undefined && value !== null) return value;
    throw new ConfigError(`Missing key ${key}.${name} in ${this.#path}`, {
      option: `${key}.${name}`,
    });
  }

  url(value: unknown, key: string, protocols: string[]): string {
    if (typeof value === "string" && isUrlWith(value, protocols)) return value;
    const schemes = protocols.map((p) => `${p}//`).join(" or ");
    throw invalidValue(this.where(key), value, `an ${schemes} URL`);
  }

  fingerprint(value: unknown, key: string): string {
    if (typeof value === "string" && FINGERPRINT_PATTERN.test(value)) {
      return value.toLowerCase();
    }
    throw invalidValue(this.where(key), value, FINGERPRINT_EXPECTED);
  }

  label(value: unknown, key: string): string {
    if (
      typeof value === "string" && value.trim().length > 0 &&
      value.length <= MAX_LABEL_LENGTH && !CONTROL_CHARACTER.test(value)
    ) {
      return value;
    }
    throw invalidValue(
      this.where(key),
      value,
      `a non-empty name of at most ${MAX_LABEL_LENGTH} characters ` +
        "without control characters",
    );
  }

  /** Checks that each fingerprint has one label and each label one relay. */
  pair(fingerprint: string, label: string, key: string): void {
    const known = this.#labels.get(fingerprint);
    if (known !== undefined && known.label !== label) {
      throw invalidValue(
        this.where(`${key}.label`),
        label,
        `the label that ${known.key} gives this fingerprint, "${known.label}"`,
      );
    }

    const owner = this.#fingerprints.get(label);
    if (owner !== undefined && owner !== fingerprint) {
      throw invalidValue(
        this.where(`${key}.label`),
        label,
        "a label that no other fingerprint uses",
      );
    }

    this.#labels.set(fingerprint, { label, key });
    this.#fingerprints.set(label, fingerprint);
  }
}

function readPeers(reader: FederationReader, value: unknown) {
  const peers: FederationPeerOptions[] = [];
  const seen = new Map<string, string>();
  reader.list(value, "federation.peers").forEach((item, index) => {
    const key = `federation.peers[${index}]`;
    const entry = reader.mapping(item, key, [
      "url",
      "http_url",
      "fingerprint",
      "label",
    ]);
    const url = reader.url(reader.required(entry, "url", key), `${key}.url`, [
      "https:",
    ]);
    const fingerprint = reader.fingerprint(
      reader.required(entry, "fingerprint", key),
      `${key}.fingerprint`,
    );
    const label = reader.label(
      reader.required(entry, "label", key),
      `${key}.label`,
    );
    const peer: FederationPeerOptions = { url, fingerprint, label };
    if (entry.http_url !== undefined && entry.http_url !== null) {
      peer.httpUrl = reader.url(entry.http_url, `${key}.http_url`, [
        "http:",
        "https:",
      ]);
    }

    const previous = seen.get(fingerprint);
    if (previous !== undefined) {
      throw invalidValue(
        reader.where(`${key}.fingerprint`),
        fingerprint,
        `a fingerprint not listed before; ${previous} lists it too`,
      );
    }
    seen.set(fingerprint, key);
    reader.pair(fingerprint, label, key);
    peers.push(peer);
  });
  return peers;
}

function readTrusted(reader: FederationReader, value: unknown) {
  const trusted: FederationTrustedOptions[] = [];
  const seen = new Map<string, string>();
  reader.list(value, "federation.trusted").forEach((item, index) => {
    const key = `federation.trusted[${index}]`;
    const entry = reader.mapping(item, key, ["fingerprint", "label"]);
    const fingerprint = reader.fingerprint(
      reader.required(entry, "fingerprint", key),
      `${key}.fingerprint`,
    );
    const label = reader.label(
      reader.required(entry, "label", key),
      `${key}.label`,
    );

    const previous = seen.get(fingerprint);
    if (previous !== undefined) {
      throw invalidValue(
        reader.where(`${key}.fingerprint`),
        fingerprint,
        `a fingerprint not listed before; ${previous} lists it too`,
      );
    }
    seen.set(fingerprint, key);
    reader.pair(fingerprint, label, key);
    trusted.push({ fingerprint, label });
  });
  return trusted;
}

function readGlobalRooms(reader: FederationReader, value: unknown): string[] {
  const rooms: string[] = [];
  reader.list(value, "federation.global_rooms").forEach((item, index) => {
    const key = `federation.global_rooms[${index}]`;
    if (item === ALL_ROOMS) {
      rooms.push(item);
      return;
    }

    const result = typeof item === "string" ? parseRoomName(item) : undefined;
    if (result?.ok !== true) {
      const reason = result?.ok === false
        ? `; ${result.message.replace(/^Invalid room name: /, "")}`
        : "";
      throw invalidValue(
        reader.where(key),
        item,
        `"${ALL_ROOMS}" or a valid room name${reason}`,
      );
    }
    rooms.push(result.name);
  });
  return rooms;
}

/**
 * Parses the value of the `federation` key of the config file at `path`.
 * Fingerprints come back in lower case.
 *
 * @throws {ConfigError} naming the key, such as
 * `federation.peers[0].fingerprint`, and the value.
 */
export function parseFederation(
  value: unknown,
  path: string,
): FederationOptions {
  if (value === undefined || value === null) {
    return { peers: [], trusted: [], globalRooms: [] };
  }

  const reader = new FederationReader(path);
  const block = reader.mapping(value, "federation", [
    "peers",
    "trusted",
    "global_rooms",
  ]);
  return {
    peers: readPeers(reader, block.peers),
    trusted: readTrusted(reader, block.trusted),
    globalRooms: readGlobalRooms(reader, block.global_rooms),
  };
}
