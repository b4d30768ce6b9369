/**
 * Federation: links to peer relays, room announcements, and media between
 * relays. Local rooms stay usable whatever the peers do: a slow peer only
 * loses its own datagrams, and a peer that goes away takes its
 * participants out of the merged `room_update` when its link closes.
 *
 * @module
 */

import type { RelayIdentity } from "../identity/identity.ts";
import { errorMessage, type Logger } from "../log.ts";
import type { FederationOptions } from "../options.ts";
import type { RoomManager } from "../room/manager.ts";
import { Participant, type ParticipantSink } from "../room/participant.ts";
import type { Room } from "../room/room.ts";
import type { RelayStats } from "../stats.ts";
import { checkMediaPacket } from "../wire/media.ts";
import { CLOSE } from "../wire/close_codes.ts";
import {
  rejectSession,
  type ServerWebTransport,
} from "../webtransport/close.ts";
import { parseRoomName, type RoomName } from "../wire/room_name.ts";
import {
  type ControlMessage,
  MAX_PATH_LENGTH,
} from "../wire/federation_control.ts";
import {
  decodeFederationDatagram,
  type FederationEntry,
} from "../wire/federation_media.ts";
import { ControlChannel } from "./control_channel.ts";
import {
  FederatedRoom,
  remoteLabel,
  type RemoteParticipant,
} from "./federated_room.ts";
import { acceptHandshake, HandshakeError } from "./handshake.ts";
import { type LinkHandlers, PeerLink } from "./link.ts";
import { PacketRateLimiter } from "./sequence_window.ts";
import { PeerDialer } from "./dialer.ts";

/** Default packets per second accepted from one remote sender. */
export const DEFAULT_FEDERATION_RATE_LIMIT = 100;

/** Time an accepted session has to open its control stream, in ms. */
export const CONTROL_STREAM_TIMEOUT_MS = 10_000;

/** Counters of the federation layer. */
export interface FederationCounters {
  deduped: number;
  rateLimited: number;
  /** Entries for a room or sender this relay does not know. */
  unknown: number;
  /** Datagrams that did not decode, and packets with a bad header. */
  malformed: number;
  /** Packet totals of closed links by peer label, so counters never go back. */
  closedTotals: Map<string, { in: number; out: number }>;
  /** Datagram totals of closed links. */
  closedDatagrams: { in: number; out: number };
  /** Failed link handshakes, by which side this relay was. */
  handshakeFailures: { inbound: number; outbound: number };
}

/** Options of {@linkcode Federation}. */
export interface FederationInit {
  options: FederationOptions;
  identity: RelayIdentity;
  rooms: RoomManager;
  stats: RelayStats;
  logger: Logger;
  /** Packets per second accepted from one remote sender. */
  rateLimit?: number;
  /** Called when the link to a peer comes up or goes down. */
  onPeerChange?: (
    event: "peer_up" | "peer_down",
    peer: { label: string; fingerprint: string },
  ) => void;
}

/** A federated participant's sink: it receives nothing directly. */
const FEDERATED_SINK: ParticipantSink = {
  kind: "federated",
  sendMedia: () => false,
  sendSignal() {},
  close() {},
};

/** The federation layer of one relay. */
export class Federation {
  readonly counters: FederationCounters = {
    deduped: 0,
    rateLimited: 0,
    unknown: 0,
    malformed: 0,
    closedTotals: new Map(),
    closedDatagrams: { in: 0, out: 0 },
    handshakeFailures: { inbound: 0, outbound: 0 },
  };

  readonly #identity: RelayIdentity;
  readonly #rooms: RoomManager;
  readonly #stats: RelayStats;
  readonly #logger: Logger;
  readonly #onPeerChange: FederationInit["onPeerChange"];
  #options: FederationOptions;
  #rateLimit: number;
  readonly #links = new Map<string, PeerLink>();
  /** Snapshot of {@linkcode #links}, rebuilt on change, for iteration. */
  #linkList: readonly PeerLink[] = [];
  readonly #fedRooms = new Map<string, FederatedRoom>();
  readonly #fedRoomsByKey = new Map<number, FederatedRoom>();
  readonly #dialers = new Map<string, PeerDialer>();
  readonly #linkWaiters = new Map<string, Set<() => void>>();
  #nextHandle = 1;
  #stopped = false;
  #unlisten: () => void;
  readonly #handlers: LinkHandlers;

  constructor(init: FederationInit) {
    this.#options = init.options;
    this.#identity = init.identity;
    this.#rooms = init.rooms;
    this.#stats = init.stats;
    this.#logger = init.logger;
    this.#onPeerChange = init.onPeerChange;
    this.#rateLimit = init.rateLimit ?? DEFAULT_FEDERATION_RATE_LIMIT;
    this.#handlers = {
      onMessage: (link, message) => this.#onControl(link, message),
      onDatagram: (link, datagram) => this.#onDatagram(link, datagram),
      onClosed: (link, reason) => this.#onLinkClosed(link, reason),
    };
    this.#unlisten = this.#rooms.listen({
      participantJoined: (room, participant) =>
        this.#onLocalJoin(room, participant),
      participantLeft: (room, participant) =>
        this.#onLocalLeave(room, participant),
    });
  }

  /** The relay's fingerprint. */
  get fingerprint(): string {
    return this.#identity.fingerprint;
  }

  /** The federation options in force. */
  get options(): FederationOptions {
    return this.#options;
  }

  /** Links that are up, one per peer. */
  get links(): readonly PeerLink[] {
    return this.#linkList;
  }

  /** Rooms with federation state. */
  get roomCount(): number {
    return this.#fedRooms.size;
  }

  /** Starts dialling the configured peers. */
  start(): void {
    for (const peer of this.#options.peers) this.#startDialer(peer.fingerprint);
  }

  /**
   * Applies new federation options: dials new peers, stops dialling
   * removed ones and closes links no longer allowed.
   */
  reconfigure(options: FederationOptions, rateLimit = this.#rateLimit): void {
    this.#options = options;
    this.#rateLimit = rateLimit;
    const configured = new Set(options.peers.map((peer) => peer.fingerprint));
    for (const [fingerprint, dialer] of this.#dialers) {
      if (!configured.has(fingerprint)) {
        dialer.stop();
        this.#dialers.delete(fingerprint);
      }
    }
    for (const fingerprint of configured) {
      if (!this.#dialers.has(fingerprint)) this.#startDialer(fingerprint);
    }
    for (const link of this.#linkList) {
      if (this.#labelOf(link.peerFingerprint) === null) {
        link.close(4403, "peer removed from the configuration");
      }
    }
    this.#rebridge();
  }

  /**
   * Brings local rooms in line with the bridged-room list after a change:
   * rooms that became bridged announce their participants, and rooms that
   * stopped being bridged are announced empty and forgotten.
   */
  #rebridge(): void {
    for (const fedRoom of [...this.#fedRooms.values()]) {
      if (this.isBridged(fedRoom.name)) continue;
      fedRoom.locals.clear();
      for (const remote of fedRoom.remotes.values()) remote.routes.clear();
      fedRoom.wants.clear();
      const room = this.#rooms.get(fedRoom.name);
      if (room !== undefined) room.mediaTap = null;
      this.#refresh(fedRoom, room);
      this.#fedRooms.delete(fedRoom.name);
      this.#fedRoomsByKey.delete(fedRoom.key);
    }

    for (const room of this.#rooms.rooms()) {
      if (!this.isBridged(room.name) || this.#fedRooms.has(room.name)) continue;
      for (const participant of room.senders) {
        this.#onLocalJoin(room, participant);
      }
    }
  }

  /** Stops dialling and closes every link. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const dialer of this.#dialers.values()) dialer.stop();
    this.#dialers.clear();
    for (const link of this.#linkList) link.close(4503, "relay shutting down");
    this.#unlisten();
    for (const waiters of this.#linkWaiters.values()) {
      for (const wake of waiters) wake();
    }
  }

  /** Returns whether `name` is bridged to peers. */
  isBridged(name: string): boolean {
    const rooms = this.#options.globalRooms;
    return rooms.includes("*") || rooms.includes(name);
  }

  /** Returns whether a link to `fingerprint` is up. */
  hasLink(fingerprint: string): boolean {
    const link = this.#links.get(fingerprint);
    return link !== undefined && !link.closed;
  }

  /** Resolves when the link to `fingerprint` closes, or at once if none. */
  linkClosed(fingerprint: string): Promise<void> {
    if (!this.hasLink(fingerprint) || this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      let waiters = this.#linkWaiters.get(fingerprint);
      if (waiters === undefined) {
        waiters = new Set();
        this.#linkWaiters.set(fingerprint, waiters);
      }
      waiters.add(resolve);
    });
  }

  /**
   * Takes an incoming `/federation` session: waits for its control
   * stream, authenticates the peer and registers the link.
   */
  async acceptSession(transport: WebTransport, remote: string): Promise<void> {
    const options = this.#options;
    if (options.peers.length === 0 && options.trusted.length === 0) {
      this.#logger.warn(
        "rejected federation link: no peers or trusted relays are configured",
        { remote },
      );
      await rejectSession(
        transport as ServerWebTransport,
        CLOSE.forbidden,
        "Federation is not configured on this relay",
      );
      return;
    }

    let channel: ControlChannel | null = null;
    try {
      const stream = await firstBidirectionalStream(
        transport,
        CONTROL_STREAM_TIMEOUT_MS,
      );
      channel = new ControlChannel(stream);
      const peer = await acceptHandshake(
        channel,
        this.#identity,
        (fingerprint) => {
          if (this.#labelOf(fingerprint) !== null) return true;
          this.#logger.warn(
            "rejected federation link from unknown relay; to accept it, add it under federation.trusted",
            {
              fingerprint,
              remote,
              config_entry: `{fingerprint: "${fingerprint}", label: "<name>"}`,
            },
          );
          return false;
        },
      );
      this.register(transport, channel, peer.fingerprint, "acceptor");
    } catch (error) {
      const code = error instanceof HandshakeError ? error.code : 4400;
      const errorCode = error instanceof HandshakeError
        ? error.errorCode
        : "bad_request";
      this.counters.handshakeFailures.inbound++;
      this.#logger.warn("federation handshake failed", {
        remote,
        error: errorMessage(error),
      });
      channel?.send({
        type: "error",
        code: errorCode,
        message: errorMessage(error),
      });
      setTimeout(() => {
        channel?.close();
        try {
          transport.close({ closeCode: code, reason: errorCode });
        } catch {
          // Already closed.
        }
      }, 50);
    }
  }

  /**
   * Adds an authenticated link. When a link to the same peer exists, the
   * one dialled by the relay with the lower fingerprint stays, so two
   * relays that dial each other agree on one link.
   */
  register(
    transport: WebTransport,
    channel: ControlChannel,
    peerFingerprint: string,
    role: "dialler" | "acceptor",
  ): PeerLink | null {
    const label = this.#labelOf(peerFingerprint) ?? peerFingerprint;
    const link = new PeerLink({
      transport,
      channel,
      peerFingerprint,
      label,
      role,
      handlers: this.#handlers,
      logger: this.#logger,
    });
    if (this.#stopped) {
      link.close(4503, "relay shutting down");
      return null;
    }

    const existing = this.#links.get(peerFingerprint);
    if (existing !== undefined && !existing.closed) {
      if (
        existing.role === role ||
        this.#diallerOf(link) < this.#diallerOf(existing)
      ) {
        this.#links.delete(peerFingerprint);
        existing.close(4409, "duplicate link replaced");
      } else {
        link.close(4409, "duplicate link");
        return null;
      }
    }

    this.#links.set(peerFingerprint, link);
    this.#linkList = [...this.#links.values()];
    link.start();
    if (link.closed) return null;
    this.#logger.info("federation link up", {
      peer: label,
      fingerprint: peerFingerprint,
      role,
    });
    this.#onPeerChange?.("peer_up", { label, fingerprint: peerFingerprint });
    for (const fedRoom of this.#fedRooms.values()) this.#refresh(fedRoom);
    return link;
  }

  /** Details of every configured peer, for the admin API. */
  describePeers(): unknown {
    const seen = new Set<string>();
    const entries = [];
    const configured = [
      ...this.#options.peers.map((peer) => ({
        ...peer,
        direction: "outbound",
      })),
      ...this.#options.trusted.map((peer) => ({
        ...peer,
        direction: "inbound",
      })),
    ];
    for (const peer of configured) {
      if (seen.has(peer.fingerprint)) continue;
      seen.add(peer.fingerprint);
      entries.push(
        this.#describe(peer.fingerprint, peer.label, peer.direction),
      );
    }
    return { fingerprint: this.fingerprint, peers: entries };
  }

  /** Returns every label that is configured, for metrics. */
  configuredLabels(): string[] {
    return [
      ...new Set([
        ...this.#options.peers.map((peer) => peer.label),
        ...this.#options.trusted.map((peer) => peer.label),
      ]),
    ];
  }

  #describe(fingerprint: string, label: string, direction: string) {
    const link = this.#links.get(fingerprint);
    const up = link !== undefined && !link.closed;
    const rooms = [];
    if (up) {
      for (const fedRoom of this.#fedRooms.values()) {
        if (fedRoom.lastSent.has(link) || fedRoom.byHandle.has(link)) {
          rooms.push(fedRoom.name);
        }
      }
    }
    return {
      label,
      fingerprint,
      direction,
      state: up ? "up" : this.#dialers.has(fingerprint) ? "connecting" : "down",
      role: up ? link.role : null,
      rtt_ms: up ? link.rttMs : null,
      connected_at: up ? new Date(link.connectedAt).toISOString() : null,
      rooms: rooms.sort(),
      packets_in: up ? link.counters.packetsIn : 0,
      packets_out: up ? link.counters.packetsOut : 0,
      datagrams_in: up ? link.counters.datagramsIn : 0,
      datagrams_out: up ? link.counters.datagramsOut : 0,
      dropped: up ? link.counters.dropped : 0,
    };
  }

  #diallerOf(link: PeerLink): string {
    return link.role === "dialler" ? this.fingerprint : link.peerFingerprint;
  }

  #labelOf(fingerprint: string): string | null {
    const options = this.#options;
    return options.peers.find((peer) => peer.fingerprint === fingerprint)
      ?.label ??
      options.trusted.find((peer) => peer.fingerprint === fingerprint)?.label ??
      null;
  }

  #startDialer(fingerprint: string): void {
    const dialer = new PeerDialer({
      peer: () =>
        this.#options.peers.find((peer) => peer.fingerprint === fingerprint),
      federation: this,
      identity: this.#identity,
      logger: this.#logger,
    });
    this.#dialers.set(fingerprint, dialer);
    dialer.start();
  }

  #fedRoom(name: RoomName, create: boolean): FederatedRoom | undefined {
    let fedRoom = this.#fedRooms.get(name);
    if (fedRoom === undefined && create) {
      fedRoom = new FederatedRoom(name);
      this.#fedRooms.set(name, fedRoom);
      this.#fedRoomsByKey.set(fedRoom.key, fedRoom);
    }
    return fedRoom;
  }

  #allocateHandle = (): number => {
    const handle = this.#nextHandle;
    this.#nextHandle = this.#nextHandle >= 0xffffffff
      ? 1
      : this.#nextHandle + 1;
    return handle;
  };

  #onLocalJoin(room: Room, participant: Participant): void {
    if (participant.sink.kind === "federated" || !this.isBridged(room.name)) {
      return;
    }

    const fedRoom = this.#fedRoom(room.name, true)!;
    room.mediaTap = this.#forwardLocal;
    fedRoom.locals.set(participant, {
      id: `${this.fingerprint}/${participant.id}`,
      handle: this.#allocateHandle(),
      participant,
      sequence: 0,
      subscribers: [],
    });
    // The join that called this sends the room_update itself.
    this.#refresh(fedRoom, room, false);
  }

  #onLocalLeave(room: Room, participant: Participant): void {
    if (participant.sink.kind === "federated") return;
    const fedRoom = this.#fedRooms.get(room.name);
    if (fedRoom === undefined || !fedRoom.locals.delete(participant)) return;
    this.#refresh(fedRoom);
  }

  /** Local media tap: sends a local sender's packet to subscribed peers. */
  #forwardLocal = (room: Room, from: Participant, packet: Uint8Array): void => {
    const fedRoom = this.#fedRooms.get(room.name);
    const sender = fedRoom?.locals.get(from);
    if (sender === undefined || sender.subscribers.length === 0) return;

    const sequence = sender.sequence;
    sender.sequence = (sequence + 1) >>> 0;
    const links = sender.subscribers;
    for (let i = 0; i < links.length; i++) {
      links[i]!.enqueue(fedRoom!.hash, sender.handle, sequence, packet);
    }
  };

  #onControl(link: PeerLink, message: ControlMessage): void {
    if (message.type !== "room") {
      this.#logger.debug("unexpected federation message", {
        peer: link.label,
        type: message.type,
      });
      return;
    }

    const parsed = parseRoomName(message.room);
    if (!parsed.ok || !this.isBridged(parsed.name)) {
      this.#logger.debug("ignored announcement of a room not bridged here", {
        peer: link.label,
        room: message.room,
      });
      return;
    }

    const fedRoom = this.#fedRoom(parsed.name, true)!;
    fedRoom.applyAnnouncement(
      link,
      message.participants,
      message.want,
      this.fingerprint,
      this.#allocateHandle,
    );
    this.#refresh(fedRoom);
  }

  #onDatagram(link: PeerLink, datagram: Uint8Array): void {
    // One clock reading serves every entry of the datagram: they arrived
    // together.
    const now = performance.now();
    try {
      decodeFederationDatagram(
        datagram,
        (entry) => this.#onEntry(link, entry, now),
      );
    } catch (error) {
      this.counters.malformed++;
      this.#logger.debug("malformed federation datagram", {
        peer: link.label,
        error: errorMessage(error),
      });
    }
  }

  #onEntry(link: PeerLink, entry: FederationEntry, now: number): void {
    const fedRoom = this.#fedRoomsByKey.get(entry.roomKey);
    const remote = fedRoom?.byHandle.get(link)?.get(entry.handle);
    if (fedRoom === undefined || remote === undefined) {
      this.counters.unknown++;
      return;
    }
    if (checkMediaPacket(entry.packet) !== null) {
      this.counters.malformed++;
      return;
    }

    link.counters.packetsIn++;
    remote.limiter ??= new PacketRateLimiter(this.#rateLimit, now);
    if (!remote.limiter.take(now, this.#rateLimit)) {
      this.counters.rateLimited++;
      this.#stats.dropped.rate_limited++;
      return;
    }
    if (!remote.window.accept(entry.sequence)) {
      this.counters.deduped++;
      return;
    }

    const local = remote.local;
    if (local !== null) {
      this.#stats.received.federated++;
      const room = this.#rooms.get(fedRoom.name);
      room?.forward(local, entry.packet);
    }

    const links = remote.subscribers;
    for (let i = 0; i < links.length; i++) {
      const target = links[i]!;
      if (target !== link) {
        target.enqueue(
          fedRoom.hash,
          remote.handle,
          entry.sequence,
          entry.packet,
        );
      }
    }
  }

  #onLinkClosed(link: PeerLink, reason: string): void {
    const totals = this.counters.closedTotals.get(link.label) ??
      { in: 0, out: 0 };
    totals.in += link.counters.packetsIn;
    totals.out += link.counters.packetsOut;
    this.counters.closedTotals.set(link.label, totals);
    this.counters.closedDatagrams.in += link.counters.datagramsIn;
    this.counters.closedDatagrams.out += link.counters.datagramsOut;

    if (this.#links.get(link.peerFingerprint) === link) {
      this.#links.delete(link.peerFingerprint);
      this.#linkList = [...this.#links.values()];
      this.#logger.info("federation link down", {
        peer: link.label,
        fingerprint: link.peerFingerprint,
        reason,
      });
      this.#onPeerChange?.("peer_down", {
        label: link.label,
        fingerprint: link.peerFingerprint,
      });
      const waiters = this.#linkWaiters.get(link.peerFingerprint);
      this.#linkWaiters.delete(link.peerFingerprint);
      for (const wake of waiters ?? []) wake();
    }

    for (const fedRoom of [...this.#fedRooms.values()]) {
      fedRoom.removeLink(link);
      this.#refresh(fedRoom);
    }
  }

  /**
   * Recomputes routes of one room, updates the local room's federated
   * participants, and sends each link the room's announcement if it
   * changed.
   */
  #refresh(
    fedRoom: FederatedRoom,
    room = this.#rooms.get(fedRoom.name),
    sendUpdate = true,
  ): void {
    const unreachable = fedRoom.recomputeRoutes();
    if (room !== undefined) {
      this.#syncLocalRoom(fedRoom, room, unreachable, sendUpdate);
    } else for (const remote of unreachable) remote.local = null;

    for (const link of this.#linkList) {
      if (link.closed) continue;
      const { participants, want } = fedRoom.announcementFor(
        link,
        this.fingerprint,
        MAX_PATH_LENGTH,
      );
      const message: ControlMessage = {
        type: "room",
        room: fedRoom.name,
        participants,
        want,
      };
      const text = JSON.stringify(message);
      const known = fedRoom.lastSent.has(link);
      if (fedRoom.lastSent.get(link) === text) continue;
      if (!known && participants.length === 0 && want.length === 0) continue;
      fedRoom.lastSent.set(link, text);
      link.send(message);
    }

    // An idle room has just been announced empty where it was known.
    if (fedRoom.idle) {
      this.#fedRooms.delete(fedRoom.name);
      this.#fedRoomsByKey.delete(fedRoom.key);
    }
  }

  /** Inserts and removes federated participants of the local room. */
  #syncLocalRoom(
    fedRoom: FederatedRoom,
    room: Room,
    unreachable: RemoteParticipant[],
    sendUpdate: boolean,
  ): void {
    const added: Participant[] = [];
    const removed: Participant[] = [];
    for (const remote of unreachable) {
      if (remote.local !== null) removed.push(remote.local);
      remote.local = null;
    }
    for (const remote of fedRoom.remotes.values()) {
      if (remote.local !== null && room.get(remote.local.id) === remote.local) {
        continue;
      }
      const best = remote.best!;
      remote.local = new Participant({
        id: remote.id,
        alias: best.alias,
        fingerprint: best.fingerprint,
        relay: remoteLabel(remote),
        sink: FEDERATED_SINK,
      });
      added.push(remote.local);
    }
    if (added.length > 0 || removed.length > 0) {
      this.#rooms.applyFederated(room, added, removed, sendUpdate);
    }
  }
}

/** Resolves to the first bidirectional stream the peer opens. */
async function firstBidirectionalStream(
  transport: WebTransport,
  timeoutMs: number,
): Promise<WebTransportBidirectionalStream> {
  const reader = transport.incomingBidirectionalStreams.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const result = await Promise.race([
      reader.read(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new HandshakeError(
                4408,
                "timeout",
                "No control stream opened in time",
              ),
            ),
          timeoutMs,
        );
      }),
    ]);
    if (result.done) {
      throw new HandshakeError(
        4400,
        "bad_request",
        "Session ended before a control stream",
      );
    }
    return result.value;
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
}
