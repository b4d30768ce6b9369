// AudioWorklet processor "relay-capture": cuts the microphone signal into
// frames of a fixed number of samples (960 = 20 ms at 48 kHz by default)
// and posts each one to the page with its RMS level. Its output is silence.

/** Samples per posted frame unless processorOptions.frameSamples sets it. */
const DEFAULT_FRAME_SAMPLES = 960;

class CaptureProcessor extends AudioWorkletProcessor {
  #frameSamples;
  #frame;
  #filled = 0;
  #running = true;

  constructor(options) {
    super();
    this.#frameSamples = options.processorOptions?.frameSamples ??
      DEFAULT_FRAME_SAMPLES;
    this.#frame = new Float32Array(this.#frameSamples);
    this.port.onmessage = (event) => {
      if (event.data?.type === "stop") this.#running = false;
    };
  }

  process(inputs) {
    // Mono: a stereo microphone contributes its first channel only.
    const channel = inputs[0]?.[0];
    if (channel === undefined) return this.#running;

    let offset = 0;
    while (offset < channel.length) {
      const count = Math.min(
        channel.length - offset,
        this.#frameSamples - this.#filled,
      );
      this.#frame.set(channel.subarray(offset, offset + count), this.#filled);
      this.#filled += count;
      offset += count;
      if (this.#filled === this.#frameSamples) this.#post();
    }
    return this.#running;
  }

  #post() {
    const samples = this.#frame;
    let sum = 0;
    for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
    const level = Math.sqrt(sum / samples.length);

    this.port.postMessage({ type: "frame", samples, level }, [samples.buffer]);
    this.#frame = new Float32Array(this.#frameSamples);
    this.#filled = 0;
  }
}

registerProcessor("relay-capture", CaptureProcessor);
