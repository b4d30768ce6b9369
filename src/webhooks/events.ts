/**
 * Webhook event payloads: what the relay POSTs to `--webhook-url` when a
 * room starts or finishes, a local participant joins or leaves, or a
 * federation link to a peer relay goes up or down.
 *
 * @module
 */

import type { Participant } from "../room/participant.ts";
import type { TransportKind } from "../stats.ts";

/** Every event name, the `event` field of a payload. */
export const WEBHOOK_EVENTS = [
  "room_started",
  "room_finished",
  "participant_joined",
  "participant_left",
  "peer_up",
  "peer_down",
] as const;

/** Name of a webhook event. */
export type WebhookEventName = typeof WEBHOOK_EVENTS[number];

/** Events about one room. */
export type RoomEventName = "room_started" | "room_finished";

/** Events about one local participant of a room. */
export type ParticipantEventName = "participant_joined" | "participant_left";

/** Events about a federation link. */
export type PeerEventName = "peer_up" | "peer_down";

/** A participant as a payload lists it. */
export interface WebhookParticipant {
  /** Participant id, unique on this relay while the participant is joined. */
  id: string;
  alias: string | null;
  /** Fingerprint given by the auth URL; null for JWTs and an open relay. */
  fingerprint: string | null;
  transport: TransportKind;
  /** 16-bit source id that media frames carry. */
  source: number;
  /** Time of the join, ISO 8601 in UTC. */
  joined_at: string;
}

/** A peer relay as a payload lists it. */
export interface WebhookPeer {
  /** Label of the peer in this relay's federation config. */
  label: string;
  fingerprint: string;
}

/** Body of one webhook request. */
export interface WebhookPayload {
  /** Random UUID of this event; a retried delivery repeats it. */
  id: string;
  event: WebhookEventName;
  /** Room name; absent on peer events. */
  room?: string;
  /** Present on participant events. */
  participant?: WebhookParticipant;
  /** Present on peer events. */
  peer?: WebhookPeer;
  /** Identity fingerprint of the relay that sends the event. */
  relay: string;
  /** Time the event happened, ISO 8601 in UTC. */
  timestamp: string;
}

/** Builds a `room_started` or `room_finished` payload. */
export function roomPayload(
  event: RoomEventName,
  room: string,
  relay: string,
  now: number,
): WebhookPayload {
  return {
    id: crypto.randomUUID(),
    event,
    room,
    relay,
    timestamp: new Date(now).toISOString(),
  };
}

/** Builds a `participant_joined` or `participant_left` payload. */
export function participantPayload(
  event: ParticipantEventName,
  room: string,
  participant: Participant,
  relay: string,
  now: number,
): WebhookPayload {
  return {
    id: crypto.randomUUID(),
    event,
    room,
    participant: {
      id: participant.id,
      alias: participant.alias,
      fingerprint: participant.fingerprint,
      transport: participant.sink.kind,
      source: participant.source,
      joined_at: new Date(participant.joinedAt).toISOString(),
    },
    relay,
    timestamp: new Date(now).toISOString(),
  };
}

/** Builds a `peer_up` or `peer_down` payload. */
export function peerPayload(
  event: PeerEventName,
  peer: WebhookPeer,
  relay: string,
  now: number,
): WebhookPayload {
  return {
    id: crypto.randomUUID(),
    event,
    peer: { label: peer.label, fingerprint: peer.fingerprint },
    relay,
    timestamp: new Date(now).toISOString(),
  };
}
