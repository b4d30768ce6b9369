/**
 * Federation media datagrams: several media packets of any bridged rooms,
 * batched into one WebTransport datagram between two relays.
 *
 * ```
 * datagram := version (u8 = 1) entry+
 * entry    := room hash (8 bytes) | handle (u32) | sequence (u32) | length (u16) | packet
 * ```
 *
 * The room hash is the first 8 bytes of SHA-256 of the room name. The
 * handle names the sender in the sending relay's announcements, so it only
 * means something on the link it travels. The sequence number is assigned
 * by the sender's own relay and travels unchanged over every hop, so each
 * relay can drop a packet it has already seen. All integers are big-endian.
 *
 * @module
 */

import { createHash } from "node:crypto";

/** Version byte of the datagram format. */
export const FEDERATION_MEDIA_VERSION = 1;

/** Bytes before the first entry. */
export const DATAGRAM_HEADER_BYTES = 1;

/** Length of a room hash. */
export const ROOM_HASH_BYTES = 8;

/** Bytes of an entry before its packet. */
export const ENTRY_HEADER_BYTES = ROOM_HASH_BYTES + 4 + 4 + 2;

/** Returns the first 8 bytes of SHA-256 of the UTF-8 room name. */
export function roomHash(name: string): Uint8Array {
  const digest = createHash("sha256").update(name, "utf8").digest();
  return new Uint8Array(digest.buffer, digest.byteOffset, ROOM_HASH_BYTES)
    .slice();
}

/**
 * Returns the key of room lookups: the first 53 bits of the room hash as a
 * number, read without allocating. Two rooms share a key only if their
 * hashes share those 53 bits.
 */
export function roomHashKey(hash: Uint8Array, offset = 0): number {
  const high = ((hash[offset]! << 24) | (hash[offset + 1]! << 16) |
    (hash[offset + 2]! << 8) | hash[offset + 3]!) >>> 0;
  const low = ((hash[offset + 4]! << 24) | (hash[offset + 5]! << 16) |
    (hash[offset + 6]! << 8) | hash[offset + 7]!) >>> 0;
  return high * 0x200000 + (low >>> 11);
}

/** One decoded entry; `packet` is a view into the datagram. */
export interface FederationEntry {
  roomKey: number;
  handle: number;
  sequence: number;
  packet: Uint8Array;
}

/** Raised for a datagram that does not follow the format. */
export class FederationDatagramError extends TypeError {
  constructor(message: string) {
    super(message);
    this.name = "FederationDatagramError";
  }
}

/**
 * Decodes every entry of a datagram and calls `onEntry` for each. Throws
 * {@linkcode FederationDatagramError} on a bad version or a truncated
 * entry; entries before the bad one have been delivered by then.
 */
export function decodeFederationDatagram(
  datagram: Uint8Array,
  onEntry: (entry: FederationEntry) => void,
): void {
  if (datagram.length < DATAGRAM_HEADER_BYTES + ENTRY_HEADER_BYTES) {
    throw new FederationDatagramError(
      `Invalid federation datagram: ${datagram.length} bytes is shorter than one entry`,
    );
  }
  if (datagram[0] !== FEDERATION_MEDIA_VERSION) {
    throw new FederationDatagramError(
      `Invalid federation datagram: version ${
        datagram[0]
      }, expected ${FEDERATION_MEDIA_VERSION}`,
    );
  }

  const view = new DataView(
    datagram.buffer,
    datagram.byteOffset,
    datagram.byteLength,
  );
  let offset = DATAGRAM_HEADER_BYTES;
  while (offset < datagram.length) {
    if (datagram.length - offset < ENTRY_HEADER_BYTES) {
      throw new FederationDatagramError(
        `Invalid federation datagram: truncated entry header at byte ${offset}`,
      );
    }
    const roomKey = roomHashKey(datagram, offset);
    const handle = view.getUint32(offset + ROOM_HASH_BYTES);
    const sequence = view.getUint32(offset + ROOM_HASH_BYTES + 4);
    const length = view.getUint16(offset + ROOM_HASH_BYTES + 8);
    const start = offset + ENTRY_HEADER_BYTES;
    if (start + length > datagram.length) {
      throw new FederationDatagramError(
        `Invalid federation datagram: entry at byte ${offset} claims ${length} bytes, ${
          datagram.length - start
        } remain`,
      );
    }
    onEntry({
      roomKey,
      handle,
      sequence,
      packet: datagram.subarray(start, start + length),
    });
    offset = start + length;
  }
}

/**
 * Appends entries to one datagram buffer. The owner flushes it when the
 * next entry would not fit or when its timer fires.
 */
export class FederationDatagramWriter {
  #buffer: Uint8Array;
  #view: DataView;
  #length = 0;
  #entries = 0;

  constructor(capacity: number) {
    this.#buffer = new Uint8Array(capacity);
    this.#view = new DataView(this.#buffer.buffer);
  }

  /** Number of entries since the last {@linkcode take}. */
  get entries(): number {
    return this.#entries;
  }

  /** Bytes in the datagram so far, header included. */
  get length(): number {
    return this.#length;
  }

  /** Returns whether an entry for `packetLength` fits in `maxBytes`. */
  fits(packetLength: number, maxBytes: number): boolean {
    const start = this.#length === 0 ? DATAGRAM_HEADER_BYTES : this.#length;
    const end = start + ENTRY_HEADER_BYTES + packetLength;
    return end <= maxBytes && end <= this.#buffer.length;
  }

  /** Appends one entry; the caller checked {@linkcode fits} first. */
  append(
    hash: Uint8Array,
    handle: number,
    sequence: number,
    packet: Uint8Array,
  ): void {
    if (this.#length === 0) {
      this.#buffer[0] = FEDERATION_MEDIA_VERSION;
      this.#length = DATAGRAM_HEADER_BYTES;
    }
    const offset = this.#length;
    this.#buffer.set(hash, offset);
    this.#view.setUint32(offset + ROOM_HASH_BYTES, handle);
    this.#view.setUint32(offset + ROOM_HASH_BYTES + 4, sequence >>> 0);
    this.#view.setUint16(offset + ROOM_HASH_BYTES + 8, packet.length);
    this.#buffer.set(packet, offset + ENTRY_HEADER_BYTES);
    this.#length = offset + ENTRY_HEADER_BYTES + packet.length;
    this.#entries++;
  }

  /** Returns a copy of the datagram and starts a new one. */
  take(): Uint8Array {
    const datagram = this.#buffer.slice(0, this.#length);
    this.#length = 0;
    this.#entries = 0;
    return datagram;
  }
}
