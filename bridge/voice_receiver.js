// The receive path of a call: packets from the relay, sorted by source id
// into one RemoteSource (jitter buffer and Opus decoder) per speaker.

import { parseMediaPacket } from "./media_packet.js";
import { RemoteSource } from "./remote_source.js";

export class VoiceReceiver {
  #sources = new Map();
  #onPcm;
  #onError;
  #decodedBefore = 0;
  #lostBefore = 0;

  /** Packets received from the relay. */
  received = 0;
  /** Received packets that are not valid media packets. */
  invalid = 0;

  /**
   * `onPcm(source, samples)` receives each decoded frame with its source
   * id; `onError(source, error)` receives decoder failures.
   */
  constructor({ onPcm, onError }) {
    this.#onPcm = onPcm;
    this.#onError = onError;
  }

  /** The RemoteSource of each source heard from and still present. */
  get sources() {
    return this.#sources.values();
  }

  /** Frames decoded since the call started, departed sources included. */
  get decoded() {
    let total = this.#decodedBefore;
    for (const remote of this.#sources.values()) total += remote.decoded;
    return total;
  }

  /** Packets counted lost since the call started, departed sources included. */
  get lost() {
    let total = this.#lostBefore;
    for (const remote of this.#sources.values()) total += remote.jitter.lost;
    return total;
  }

  /** Handles one packet (source id prefix removed) that arrived at `nowMs`. */
  receive(source, packet, nowMs) {
    this.received++;
    const parsed = parseMediaPacket(packet);
    if (parsed === null) {
      this.invalid++;
      return;
    }

    let remote = this.#sources.get(source);
    if (remote === undefined) {
      remote = new RemoteSource(source, {
        onPcm: (samples) => this.#onPcm(source, samples),
        onError: (error) => this.#onError(source, error),
      });
      this.#sources.set(source, remote);
    }
    remote.push(parsed, nowMs);
  }

  /** Decodes what the jitter buffers release at `nowMs`. */
  drain(nowMs) {
    for (const remote of this.#sources.values()) remote.drain(nowMs);
  }

  /**
   * Closes the streams of sources that are not in `present` (a Set of
   * source ids) and returns their ids.
   */
  retain(present) {
    const removed = [];
    for (const [source, remote] of this.#sources) {
      if (present.has(source)) continue;
      this.#forget(source, remote);
      removed.push(source);
    }
    return removed;
  }

  /** Closes every stream. Idempotent. */
  close() {
    for (const [source, remote] of this.#sources) this.#forget(source, remote);
  }

  #forget(source, remote) {
    this.#decodedBefore += remote.decoded;
    this.#lostBefore += remote.jitter.lost;
    remote.close();
    this.#sources.delete(source);
  }
}
