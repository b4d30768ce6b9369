/**
 * Federation state of one bridged room: the local participants this relay
 * announces, the remote participants it has heard of with every route to
 * them, and which peer wants which sender's media.
 *
 * Routing is path-vector: each announced participant carries the list of
 * relays its announcement passed through, a relay ignores routes that
 * contain itself, and each relay picks one best route per remote
 * participant (fewest hops). A relay requests a participant's media
 * (`want`) only from the peer on its best route, so media follows a tree rooted at
 * the sender's relay and reaches every relay once. Duplicates that slip
 * through while routes change are dropped by sequence number.
 *
 * @module
 */

import type { Participant } from "../room/participant.ts";
import type { RoomName } from "../wire/room_name.ts";
import type { AnnouncedParticipant } from "../wire/federation_control.ts";
import { roomHash, roomHashKey } from "../wire/federation_media.ts";
import type { PeerLink } from "./link.ts";
import { PacketRateLimiter, SequenceWindow } from "./sequence_window.ts";

/** A route to a remote participant through one link. */
export interface Route {
  link: PeerLink;
  /** The peer's handle for the participant, used in its datagrams. */
  handle: number;
  path: string[];
  originLabel: string | null;
  alias: string | null;
  fingerprint: string | null;
}

/** A participant of another relay. */
export interface RemoteParticipant {
  id: string;
  /** This relay's handle for the participant, used in its announcements. */
  handle: number;
  routes: Map<PeerLink, Route>;
  best: Route | null;
  /** The participant as inserted into the local room, if one exists. */
  local: Participant | null;
  /** Links that want this participant's media from this relay. */
  subscribers: PeerLink[];
  readonly window: SequenceWindow;
  limiter: PacketRateLimiter | null;
}

/** A participant of this relay in a bridged room. */
export interface LocalSender {
  id: string;
  handle: number;
  participant: Participant;
  /** Next federation sequence number of this sender. */
  sequence: number;
  subscribers: PeerLink[];
}

/** Federation state of one room. */
export class FederatedRoom {
  readonly name: RoomName;
  readonly hash: Uint8Array;
  readonly key: number;
  readonly locals = new Map<Participant, LocalSender>();
  readonly remotes = new Map<string, RemoteParticipant>();
  /** Inbound lookup: link, then the peer's handle. */
  readonly byHandle = new Map<PeerLink, Map<number, RemoteParticipant>>();
  /** This relay's handles that each link wants media for. */
  readonly wants = new Map<PeerLink, Set<number>>();
  /** Last announcement sent on each link, to skip repeats. */
  readonly lastSent = new Map<PeerLink, string>();

  constructor(name: RoomName) {
    this.name = name;
    this.hash = roomHash(name);
    this.key = roomHashKey(this.hash);
  }

  /** Whether nothing is left to track. */
  get idle(): boolean {
    return this.locals.size === 0 && this.remotes.size === 0 &&
      this.wants.size === 0;
  }

  /**
   * Replaces everything `link` announced for this room. Routes whose path
   * contains `selfFingerprint` are loops and are ignored.
   */
  applyAnnouncement(
    link: PeerLink,
    participants: AnnouncedParticipant[],
    want: number[],
    selfFingerprint: string,
    allocateHandle: () => number,
  ): void {
    const seen = new Set<string>();
    const handles = new Map<number, RemoteParticipant>();
    for (const announced of participants) {
      if (announced.path.includes(selfFingerprint)) continue;
      if (announced.id.startsWith(selfFingerprint + "/")) continue;
      if (seen.has(announced.id) || handles.has(announced.handle)) continue;
      seen.add(announced.id);

      let remote = this.remotes.get(announced.id);
      if (remote === undefined) {
        remote = {
          id: announced.id,
          handle: allocateHandle(),
          routes: new Map(),
          best: null,
          local: null,
          subscribers: [],
          window: new SequenceWindow(),
          limiter: null,
        };
        this.remotes.set(announced.id, remote);
      }
      remote.routes.set(link, {
        link,
        handle: announced.handle,
        path: announced.path,
        originLabel: announced.origin_label,
        alias: announced.alias,
        fingerprint: announced.fingerprint,
      });
      handles.set(announced.handle, remote);
    }

    for (const remote of this.remotes.values()) {
      if (!seen.has(remote.id)) remote.routes.delete(link);
    }
    this.byHandle.set(link, handles);
    if (want.length > 0) this.wants.set(link, new Set(want));
    else this.wants.delete(link);
  }

  /** Forgets everything learned from `link`. */
  removeLink(link: PeerLink): void {
    for (const remote of this.remotes.values()) remote.routes.delete(link);
    this.byHandle.delete(link);
    this.wants.delete(link);
    this.lastSent.delete(link);
  }

  /**
   * Picks each remote participant's best route and each sender's
   * subscribers. Returns the remote participants that lost their last
   * route; they are removed from the room state.
   */
  recomputeRoutes(): RemoteParticipant[] {
    const unreachable: RemoteParticipant[] = [];
    for (const remote of this.remotes.values()) {
      let best: Route | null = null;
      for (const route of remote.routes.values()) {
        if (best === null || isBetter(route, best)) best = route;
      }
      remote.best = best;
      if (best === null) {
        unreachable.push(remote);
        this.remotes.delete(remote.id);
      }
    }

    for (const local of this.locals.values()) {
      local.subscribers = this.#subscribers(local.handle, null);
    }
    for (const remote of this.remotes.values()) {
      remote.subscribers = this.#subscribers(remote.handle, remote.best!.link);
    }
    return unreachable;
  }

  /**
   * Builds the announcement for `link`: local senders, plus remote
   * participants whose best route neither uses `link` nor passes its peer
   * (split horizon), and the handles this relay wants from `link`.
   */
  announcementFor(
    link: PeerLink,
    selfFingerprint: string,
    maxPathLength: number,
  ): { participants: AnnouncedParticipant[]; want: number[] } {
    const participants: AnnouncedParticipant[] = [];
    for (const local of this.locals.values()) {
      participants.push({
        id: local.id,
        handle: local.handle,
        alias: local.participant.alias,
        fingerprint: local.participant.fingerprint,
        origin_label: null,
        path: [selfFingerprint],
      });
    }

    // Media is worth requesting only for local listeners or for peers that
    // request it from this relay in turn.
    const hasListeners = this.locals.size > 0;
    const want: number[] = [];
    for (const remote of this.remotes.values()) {
      const best = remote.best;
      if (best === null) continue;
      if (best.link === link) {
        if (hasListeners || remote.subscribers.length > 0) {
          want.push(best.handle);
        }
        continue;
      }
      if (best.path.includes(link.peerFingerprint)) continue;
      if (best.path.length + 1 > maxPathLength) continue;
      participants.push({
        id: remote.id,
        handle: remote.handle,
        alias: best.alias,
        fingerprint: best.fingerprint,
        origin_label: best.path.length === 1
          ? best.link.label
          : best.originLabel,
        path: [...best.path, selfFingerprint],
      });
    }
    return { participants, want };
  }

  #subscribers(handle: number, except: PeerLink | null): PeerLink[] {
    const links: PeerLink[] = [];
    for (const [link, handles] of this.wants) {
      if (link !== except && !link.closed && handles.has(handle)) {
        links.push(link);
      }
    }
    return links;
  }
}

/** Fewer hops wins; equal paths go to the lower peer fingerprint. */
function isBetter(route: Route, than: Route): boolean {
  if (route.path.length !== than.path.length) {
    return route.path.length < than.path.length;
  }
  return route.link.peerFingerprint < than.link.peerFingerprint;
}

/** Label shown for a remote participant: its relay as best known here. */
export function remoteLabel(remote: RemoteParticipant): string | null {
  const best = remote.best;
  if (best === null) return null;
  return best.path.length === 1
    ? best.link.label
    : best.originLabel ?? best.link.label;
}
