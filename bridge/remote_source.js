// One remote speaker as heard by the page: a jitter buffer that orders the
// speaker's packets and an AudioDecoder that turns their Opus frames into
// PCM for the playback worklet.

import { JitterBuffer } from "./jitter_buffer.js";
import { isOpusCodec } from "./media_packet.js";
import { SAMPLE_RATE } from "./opus_encoder.js";

/** Frames that may wait in the decoder before new ones are dropped. */
export const MAX_DECODE_QUEUE = 20;

export class RemoteSource {
  /** The 16-bit source id the relay puts before this speaker's packets. */
  source;
  jitter;

  /** Opus frames decoded. */
  decoded = 0;
  /** Packets with a codec the page cannot decode (not Opus). */
  undecodable = 0;
  /** Packets dropped because the decoder queue was full. */
  dropped = 0;
  /** Decoder failures; each one replaces the decoder. */
  decoderErrors = 0;

  #decoder = null;
  #onPcm;
  #onError;

  /**
   * `onPcm(samples: Float32Array)` receives each decoded frame;
   * `onError(error)` receives decoder failures.
   */
  constructor(source, { onPcm, onError, jitterOptions = {} }) {
    this.source = source;
    this.jitter = new JitterBuffer(jitterOptions);
    this.#onPcm = onPcm;
    this.#onError = onError;
  }

  /** Adds a parsed packet and decodes every packet that is now in order. */
  push(packet, nowMs) {
    this.jitter.push(packet, nowMs);
    this.drain(nowMs);
  }

  /** Decodes the packets the jitter buffer releases at `nowMs`. */
  drain(nowMs) {
    for (
      let packet = this.jitter.pop(nowMs);
      packet !== null;
      packet = this.jitter.pop(nowMs)
    ) {
      this.#decode(packet);
    }
  }

  /** Closes the decoder. Idempotent. */
  close() {
    if (this.#decoder !== null && this.#decoder.state !== "closed") {
      this.#decoder.close();
    }
    this.#decoder = null;
  }

  #decode(packet) {
    // Repair packets belong to block FEC, which this page does not decode.
    if (!isOpusCodec(packet.codec) || packet.repair) {
      this.undecodable++;
      return;
    }

    const decoder = this.#ensureDecoder();
    if (decoder.decodeQueueSize >= MAX_DECODE_QUEUE) {
      this.dropped++;
      return;
    }
    decoder.decode(
      new EncodedAudioChunk({
        type: "key",
        timestamp: packet.timestamp * 1000,
        data: packet.payload,
      }),
    );
  }

  #ensureDecoder() {
    if (this.#decoder !== null && this.#decoder.state !== "closed") {
      return this.#decoder;
    }

    // All Opus codec ids share one decoder: the bitrate is inside the
    // Opus stream, so a sender that changes bitrate needs no new decoder.
    const decoder = new AudioDecoder({
      output: (data) => this.#output(data),
      error: (error) => {
        this.decoderErrors++;
        this.#onError(error);
      },
    });
    decoder.configure({
      codec: "opus",
      sampleRate: SAMPLE_RATE,
      numberOfChannels: 1,
    });
    this.#decoder = decoder;
    return decoder;
  }

  #output(data) {
    try {
      const samples = new Float32Array(data.numberOfFrames);
      data.copyTo(samples, { planeIndex: 0, format: "f32-planar" });
      this.decoded++;
      this.#onPcm(samples);
    } finally {
      data.close();
    }
  }
}
