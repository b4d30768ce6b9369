/**
 * Connection limits that apply before a participant session can do any
 * harm: open connections per client address, handshakes in progress per
 * address, and handshakes in progress on the whole relay. WebSocket
 * upgrades and WebTransport sessions share one limiter per relay.
 *
 * A connection keeps a {@linkcode ConnectionLease} from the upgrade until
 * it closes. Its handshake lasts until the session's `welcome`, so a
 * client that connects and never sends `hello`, or waits on a slow auth
 * URL, counts as a handshake in progress until the handshake timeout
 * closes it.
 *
 * @module
 */

import type { ConnectionRejectReason } from "../stats.ts";

/**
 * Limits of {@linkcode ConnectionLimiter.admit}, read on each call. The
 * relay options of the same names set the defaults.
 */
export interface ConnectionLimits {
  /** Open connections from one address (an IPv6 /64 counts as one). */
  maxConnectionsPerIp: number;
  /** Connections from one address that have not reached `welcome`. */
  maxHandshakesPerIp: number;
  /** Connections on the relay that have not reached `welcome`. */
  maxPendingHandshakes: number;
}

/** Result of {@linkcode ConnectionLimiter.admit}. */
export type AdmitResult =
  | { ok: true; lease: ConnectionLease }
  | { ok: false; reason: ConnectionRejectReason; message: string };

interface AddressCount {
  connections: number;
  handshakes: number;
}

/**
 * One admitted connection. {@linkcode endHandshake} and
 * {@linkcode release} are idempotent, and a release also ends the
 * handshake.
 */
export class ConnectionLease {
  readonly address: string;
  #inHandshake = true;
  #released = false;
  readonly #onHandshakeEnd: () => void;
  readonly #onRelease: (inHandshake: boolean) => void;

  constructor(
    address: string,
    onHandshakeEnd: () => void,
    onRelease: (inHandshake: boolean) => void,
  ) {
    this.address = address;
    this.#onHandshakeEnd = onHandshakeEnd;
    this.#onRelease = onRelease;
  }

  /** Whether the connection still counts as a handshake in progress. */
  get inHandshake(): boolean {
    return this.#inHandshake;
  }

  /** Marks the handshake as done: the session got its `welcome`. */
  endHandshake(): void {
    if (!this.#inHandshake || this.#released) return;
    this.#inHandshake = false;
    this.#onHandshakeEnd();
  }

  /** Gives the connection's places back once it has closed. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    const wasInHandshake = this.#inHandshake;
    this.#inHandshake = false;
    this.#onRelease(wasInHandshake);
  }
}

/** Counts connections and handshakes by client address. */
export class ConnectionLimiter {
  readonly #byAddress = new Map<string, AddressCount>();
  #pendingHandshakes = 0;

  /** Connections on the relay that have not reached `welcome`. */
  get pendingHandshakes(): number {
    return this.#pendingHandshakes;
  }

  /** Number of addresses with at least one open connection. */
  get addressCount(): number {
    return this.#byAddress.size;
  }

  /** Open connections from the address of `hostname`. */
  connectionsFrom(hostname: string): number {
    return this.#byAddress.get(addressKey(hostname))?.connections ?? 0;
  }

  /** Handshakes in progress from the address of `hostname`. */
  handshakesFrom(hostname: string): number {
    return this.#byAddress.get(addressKey(hostname))?.handshakes ?? 0;
  }

  /**
   * Admits one new connection from `hostname`, or returns the limit it
   * would exceed. The checks and the count run in one synchronous step, so
   * two connections cannot both take the last place.
   */
  admit(hostname: string, limits: ConnectionLimits): AdmitResult {
    const key = addressKey(hostname);
    const count = this.#byAddress.get(key);
    if (count !== undefined) {
      if (count.connections >= limits.maxConnectionsPerIp) {
        return {
          ok: false,
          reason: "ip_connections",
          message: `Too many connections from ${hostname}: ` +
            `${limits.maxConnectionsPerIp}, the maximum; close one first`,
        };
      }
      if (count.handshakes >= limits.maxHandshakesPerIp) {
        return {
          ok: false,
          reason: "ip_handshakes",
          message: `Too many handshakes in progress from ${hostname}: ` +
            `${limits.maxHandshakesPerIp}, the maximum; send hello first`,
        };
      }
    }
    if (this.#pendingHandshakes >= limits.maxPendingHandshakes) {
      return {
        ok: false,
        reason: "pending_handshakes",
        message: `The relay has ${limits.maxPendingHandshakes} handshakes ` +
          "in progress, the maximum; retry later",
      };
    }

    const entry = count ?? { connections: 0, handshakes: 0 };
    entry.connections++;
    entry.handshakes++;
    this.#byAddress.set(key, entry);
    this.#pendingHandshakes++;
    return {
      ok: true,
      lease: new ConnectionLease(
        key,
        () => this.#endHandshake(entry),
        (inHandshake) => this.#release(key, entry, inHandshake),
      ),
    };
  }

  #endHandshake(entry: AddressCount): void {
    entry.handshakes--;
    this.#pendingHandshakes--;
  }

  #release(key: string, entry: AddressCount, inHandshake: boolean): void {
    if (inHandshake) this.#endHandshake(entry);
    entry.connections--;
    if (entry.connections === 0) this.#byAddress.delete(key);
  }
}

const limiters = new WeakMap<object, ConnectionLimiter>();

/**
 * Returns the limiter shared by everything that passes the same `owner`,
 * creating it on first use. The HTTP app and the WebTransport server of a
 * relay pass the session context they share, so that both transports count
 * against the same limits.
 */
export function sharedConnectionLimiter(owner: object): ConnectionLimiter {
  let limiter = limiters.get(owner);
  if (limiter === undefined) {
    limiter = new ConnectionLimiter();
    limiters.set(owner, limiter);
  }
  return limiter;
}

const IPV4_MAPPED = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;
const HEX_GROUP = /^[0-9a-f]{1,4}$/i;

/**
 * Returns the key that connection limits count `hostname` under: an IPv4
 * address as it is (also when mapped into IPv6), and the /64 prefix of an
 * IPv6 address, because one client is usually assigned a whole /64. A name that
 * is not an IP address is its own key.
 */
export function addressKey(hostname: string): string {
  let address = hostname;
  if (address.startsWith("[") && address.endsWith("]")) {
    address = address.slice(1, -1);
  }
  const zone = address.indexOf("%");
  if (zone !== -1) address = address.slice(0, zone);

  const mapped = IPV4_MAPPED.exec(address);
  if (mapped !== null) return mapped[1]!;
  if (!address.includes(":")) return address;

  const groups = expandIpv6(address);
  if (groups === null) return hostname;
  return `${groups.slice(0, 4).join(":")}::/64`;
}

/** Returns the 8 groups of an IPv6 address without leading zeros, or null. */
function expandIpv6(address: string): string[] | null {
  const halves = address.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] === "" ? [] : halves[0]!.split(":");
  const tail = halves.length === 2 && halves[1] !== ""
    ? halves[1]!.split(":")
    : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;

  const groups = [...head, ...Array(missing).fill("0"), ...tail];
  if (!groups.every((group) => HEX_GROUP.test(group))) return null;
  return groups.map((group) => parseInt(group, 16).toString(16));
}
