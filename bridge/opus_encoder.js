// Opus encoding with WebCodecs for the page: 48 kHz mono frames of Float32
// PCM in, one encoded Opus frame out per input frame.

/** Sample rate of the encoder and of the page's AudioContext, in Hz. */
export const SAMPLE_RATE = 48_000;

/** Duration of one Opus frame, in ms. */
export const FRAME_DURATION_MS = 20;

/** Samples in one frame. */
export const FRAME_SAMPLES = SAMPLE_RATE * FRAME_DURATION_MS / 1000;

/** Bitrate at the start of a call, in bits/s (the Opus24k codec). */
export const DEFAULT_BITRATE = 24_000;

/**
 * Expected packet loss in percent that Opus in-band FEC is tuned for. A
 * higher value makes the encoder spend more of the bitrate on FEC.
 */
export const DEFAULT_PACKET_LOSS_PERCENT = 10;

/** Frames that may wait in the encoder before new ones are dropped. */
export const MAX_ENCODE_QUEUE = 10;

/** Returns the AudioEncoder configuration for `bitrate` bits/s. */
export function encoderConfig(bitrate) {
  return {
    codec: "opus",
    sampleRate: SAMPLE_RATE,
    numberOfChannels: 1,
    bitrate,
    opus: {
      frameDuration: FRAME_DURATION_MS * 1000,
      useinbandfec: true,
      packetlossperc: DEFAULT_PACKET_LOSS_PERCENT,
    },
  };
}

export class OpusEncoder {
  #encoder = null;
  #bitrate;
  #onChunk;
  #onError;

  /** Frames dropped because the encoder queue was full. */
  dropped = 0;

  /**
   * `onChunk(bytes: Uint8Array, timestampUs: number)` receives each encoded
   * frame; `onError(error)` receives encoder failures, after which the next
   * `encode` starts a fresh encoder.
   */
  constructor({ bitrate = DEFAULT_BITRATE, onChunk, onError }) {
    this.#bitrate = bitrate;
    this.#onChunk = onChunk;
    this.#onError = onError;
  }

  /**
   * Throws a TypeError naming the missing API when this browser cannot
   * encode Opus with WebCodecs.
   */
  static async checkSupport() {
    if (typeof AudioEncoder === "undefined") {
      throw new TypeError(
        "This browser has no WebCodecs AudioEncoder: use a recent Chromium, " +
          "Firefox or Safari",
      );
    }
    const { supported } = await AudioEncoder.isConfigSupported(
      encoderConfig(DEFAULT_BITRATE),
    );
    if (!supported) {
      throw new TypeError("This browser cannot encode Opus with WebCodecs");
    }
  }

  /** Current target bitrate, in bits/s. */
  get bitrate() {
    return this.#bitrate;
  }

  /** Changes the target bitrate; the next frames use it. */
  setBitrate(bitrate) {
    if (bitrate === this.#bitrate) return;
    this.#bitrate = bitrate;
    if (this.#encoder?.state === "configured") {
      this.#encoder.configure(encoderConfig(bitrate));
    }
  }

  /** Encodes one frame of FRAME_SAMPLES samples taken at `timestampUs`. */
  encode(samples, timestampUs) {
    const encoder = this.#ensureEncoder();
    if (encoder.encodeQueueSize >= MAX_ENCODE_QUEUE) {
      this.dropped++;
      return;
    }

    const data = new AudioData({
      format: "f32-planar",
      sampleRate: SAMPLE_RATE,
      numberOfChannels: 1,
      numberOfFrames: samples.length,
      timestamp: timestampUs,
      data: samples,
    });
    try {
      encoder.encode(data);
    } finally {
      data.close();
    }
  }

  /** Closes the encoder; pending frames are discarded. Idempotent. */
  close() {
    if (this.#encoder !== null && this.#encoder.state !== "closed") {
      this.#encoder.close();
    }
    this.#encoder = null;
  }

  #ensureEncoder() {
    if (this.#encoder !== null && this.#encoder.state !== "closed") {
      return this.#encoder;
    }

    const encoder = new AudioEncoder({
      output: (chunk) => {
        const bytes = new Uint8Array(chunk.byteLength);
        chunk.copyTo(bytes);
        this.#onChunk(bytes, chunk.timestamp);
      },
      error: (error) => this.#onError(error),
    });
    encoder.configure(encoderConfig(this.#bitrate));
    this.#encoder = encoder;
    return encoder;
  }
}
