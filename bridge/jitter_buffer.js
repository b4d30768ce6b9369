// Packet jitter buffer for one remote source. It puts media packets back in
// sequence order and waits a bounded time for a missing packet. Packets it
// gives up on count as lost. It also estimates interarrival jitter the way
// RTP receivers do (RFC 3550, section 6.4.1).
//
// Timing jitter is absorbed after decoding, by the playback worklet's
// prebuffer; this buffer only reorders and detects loss.

/** Packets held behind a gap before the gap is declared lost. */
export const DEFAULT_MAX_HOLD_PACKETS = 3;

/** Time a gap may stay open before it is declared lost, in ms. */
export const DEFAULT_MAX_HOLD_MS = 80;

/**
 * Sequence jump, forward or back, past which the stream is treated as
 * restarted (a sender that rejoined) instead of as loss or reordering.
 */
export const DEFAULT_RESTART_DISTANCE = 500;

/** Signed distance from sequence `b` to sequence `a` on the 16-bit circle. */
export function sequenceDistance(a, b) {
  return ((a - b + 0x8000) & 0xffff) - 0x8000;
}

export class JitterBuffer {
  #maxHoldPackets;
  #maxHoldMs;
  #restartDistance;

  /** Sequence number of the next packet to release; null before the first. */
  #next = null;
  /** Held packets by sequence number, each `{ packet, arrivalMs }`. */
  #held = new Map();
  /** Arrival time of the oldest packet held behind the current gap. */
  #gapSinceMs = null;

  #previousTransit = null;
  #jitterMs = 0;

  /** Packets pushed, duplicates and late arrivals included. */
  received = 0;
  /** Packets released in order. */
  released = 0;
  /** Sequence numbers skipped because their packet did not come in time. */
  lost = 0;
  /** Packets dropped as duplicates or as arriving after their slot. */
  discarded = 0;

  constructor(
    {
      maxHoldPackets = DEFAULT_MAX_HOLD_PACKETS,
      maxHoldMs = DEFAULT_MAX_HOLD_MS,
      restartDistance = DEFAULT_RESTART_DISTANCE,
    } = {},
  ) {
    this.#maxHoldPackets = maxHoldPackets;
    this.#maxHoldMs = maxHoldMs;
    this.#restartDistance = restartDistance;
  }

  /** Interarrival jitter estimate, in ms. */
  get jitterMs() {
    return this.#jitterMs;
  }

  /** Sequence numbers accounted for so far: released plus lost. */
  get expected() {
    return this.released + this.lost;
  }

  /**
   * Adds a parsed packet (`{ sequence, timestamp, ... }`) that arrived at
   * `arrivalMs` (performance.now() time).
   */
  push(packet, arrivalMs) {
    this.received++;
    if (this.#next === null) this.#next = packet.sequence;
    let distance = sequenceDistance(packet.sequence, this.#next);
    if (Math.abs(distance) > this.#restartDistance) {
      this.#restart(packet.sequence);
      distance = 0;
    }
    this.#updateJitter(packet.timestamp, arrivalMs);

    if (distance < 0 || this.#held.has(packet.sequence)) {
      this.discarded++;
      return;
    }

    this.#held.set(packet.sequence, { packet, arrivalMs });
    if (packet.sequence !== this.#next && this.#gapSinceMs === null) {
      this.#gapSinceMs = arrivalMs;
    }
  }

  /**
   * Returns the next packet in sequence order, or null when none is ready.
   * Skips a gap, counting its packets as lost, once more than the hold
   * limit of packets wait behind it or it has been open too long.
   */
  pop(nowMs) {
    if (this.#next === null || this.#held.size === 0) return null;

    let entry = this.#held.get(this.#next);
    if (entry === undefined) {
      const gapTooOld = this.#gapSinceMs !== null &&
        nowMs - this.#gapSinceMs >= this.#maxHoldMs;
      if (this.#held.size <= this.#maxHoldPackets && !gapTooOld) return null;

      const first = this.#earliestHeld();
      this.lost += sequenceDistance(first, this.#next);
      this.#next = first;
      entry = this.#held.get(first);
    }

    this.#held.delete(this.#next);
    this.#next = (this.#next + 1) & 0xffff;
    this.released++;
    this.#gapSinceMs = this.#held.size === 0 || this.#held.has(this.#next)
      ? null
      : this.#earliestArrival();
    return entry.packet;
  }

  #earliestHeld() {
    let best = null;
    for (const sequence of this.#held.keys()) {
      if (best === null || sequenceDistance(sequence, best) < 0) {
        best = sequence;
      }
    }
    return best;
  }

  #earliestArrival() {
    let earliest = Infinity;
    for (const { arrivalMs } of this.#held.values()) {
      earliest = Math.min(earliest, arrivalMs);
    }
    return earliest;
  }

  #restart(sequence) {
    this.discarded += this.#held.size;
    this.#held.clear();
    this.#next = sequence;
    this.#gapSinceMs = null;
    this.#previousTransit = null;
  }

  #updateJitter(timestampMs, arrivalMs) {
    const transit = arrivalMs - timestampMs;
    if (this.#previousTransit !== null) {
      const difference = Math.abs(transit - this.#previousTransit);
      this.#jitterMs += (difference - this.#jitterMs) / 16;
    }
    this.#previousTransit = transit;
  }
}
