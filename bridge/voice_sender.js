// The send path of a call: captured 20 ms frames -> Opus -> media packets,
// with a sequence number, a timestamp on the sample clock, and a quality
// report about once a second.

import { buildMediaPacket, codecIdForBitrate } from "./media_packet.js";
import { FRAME_DURATION_MS, OpusEncoder } from "./opus_encoder.js";

export class VoiceSender {
  #encoder;
  #monitor;
  #sendMedia;
  #sessionStartMs;
  #firstFrameUs = null;
  #frameIndex = 0;
  #sequence = 0;
  #closed = false;

  /** A muted sender encodes and sends nothing. */
  muted = false;
  /** Packets the transport accepted. */
  sent = 0;
  /** Packets the transport rejected (closed, backed up, or too large). */
  sendFailed = 0;

  /**
   * `sendMedia(packet)` returns whether the transport took the packet;
   * `monitor` is the QualityMonitor whose reports ride on the packets;
   * `onError(error)` receives encoder failures. Timestamps count from
   * `sessionStartMs` (performance.now() time).
   */
  constructor(
    { sendMedia, monitor, onError, sessionStartMs = performance.now() },
  ) {
    this.#sendMedia = sendMedia;
    this.#monitor = monitor;
    this.#sessionStartMs = sessionStartMs;
    this.#encoder = new OpusEncoder({
      onChunk: (bytes, timestampUs) => this.#send(bytes, timestampUs),
      onError,
    });
  }

  /** Encoder bitrate, in bits/s. */
  get bitrate() {
    return this.#encoder.bitrate;
  }

  setBitrate(bitrate) {
    this.#encoder.setBitrate(bitrate);
  }

  /** Encodes one captured frame, unless the sender is muted or closed. */
  pushFrame(samples) {
    const frameIndex = this.#frameIndex++;
    this.#firstFrameUs ??= (performance.now() - this.#sessionStartMs) * 1000;
    if (this.muted || this.#closed) return;

    // Timestamps follow the sample clock from the first frame, so they
    // advance exactly one frame duration per frame, muted frames included.
    const timestampUs = this.#firstFrameUs +
      frameIndex * FRAME_DURATION_MS * 1000;
    this.#encoder.encode(samples, Math.round(timestampUs));
  }

  /** Closes the encoder; frames still in it are not sent. Idempotent. */
  close() {
    this.#closed = true;
    this.#encoder.close();
  }

  #send(payload, timestampUs) {
    if (this.#closed) return;
    const bitrate = this.#encoder.bitrate;
    const packet = buildMediaPacket({
      codec: codecIdForBitrate(bitrate),
      sequence: this.#sequence,
      timestamp: Math.round(timestampUs / 1000),
      payload,
      qualityReport: this.#monitor.takeReport(performance.now(), bitrate),
    });
    this.#sequence = (this.#sequence + 1) & 0xffff;

    if (this.#sendMedia(packet)) {
      this.sent++;
    } else {
      this.sendFailed++;
    }
  }
}
