// AudioWorklet processor "relay-playback": keeps a queue of decoded PCM per
// remote source, mixes the sources into one mono output, and posts the RMS
// level of each source and of the mix to the page a few times a second.
//
// Messages from the page: { type: "pcm", source, samples: Float32Array },
// { type: "remove", source }, { type: "stop" }.
// Messages to the page: { type: "levels", mix, sources: { [source]: rms },
// underruns }.
//
// Each source starts (and restarts after running dry) only once its queue
// contains the prebuffer, which absorbs network and decoder timing jitter. A
// queue that grows past its maximum drops its oldest samples so latency
// stays bounded when a sender's clock runs faster than ours.

/** Samples buffered before a source plays: 60 ms at 48 kHz. */
const DEFAULT_PREBUFFER_SAMPLES = 2_880;

/** Samples a source may queue before the oldest are dropped: 250 ms. */
const DEFAULT_MAX_QUEUED_SAMPLES = 12_000;

/** Samples between two level messages: 50 ms at 48 kHz. */
const DEFAULT_LEVEL_INTERVAL_SAMPLES = 2_400;

class SourceQueue {
  chunks = [];
  /** Read position inside chunks[0]. */
  offset = 0;
  queued = 0;
  playing = false;
  /** Sum of squares of this source's output since the last level message. */
  energy = 0;

  push(samples, maxQueued) {
    this.chunks.push(samples);
    this.queued += samples.length;
    while (this.queued > maxQueued && this.chunks.length > 1) {
      const dropped = this.chunks.shift();
      this.queued -= dropped.length - this.offset;
      this.offset = 0;
    }
  }

  /** Adds up to `output.length` queued samples into `output`. */
  mixInto(output) {
    let written = 0;
    while (written < output.length && this.chunks.length > 0) {
      const chunk = this.chunks[0];
      const count = Math.min(
        output.length - written,
        chunk.length - this.offset,
      );
      for (let i = 0; i < count; i++) {
        const sample = chunk[this.offset + i];
        output[written + i] += sample;
        this.energy += sample * sample;
      }
      written += count;
      this.offset += count;
      this.queued -= count;
      if (this.offset === chunk.length) {
        this.chunks.shift();
        this.offset = 0;
      }
    }
    return written;
  }
}

class PlaybackProcessor extends AudioWorkletProcessor {
  #sources = new Map();
  #prebuffer;
  #maxQueued;
  #levelInterval;
  #samplesSinceLevel = 0;
  #mixEnergy = 0;
  #underruns = 0;
  #running = true;

  constructor(options) {
    super();
    const settings = options.processorOptions ?? {};
    this.#prebuffer = settings.prebufferSamples ?? DEFAULT_PREBUFFER_SAMPLES;
    this.#maxQueued = settings.maxQueuedSamples ?? DEFAULT_MAX_QUEUED_SAMPLES;
    this.#levelInterval = settings.levelIntervalSamples ??
      DEFAULT_LEVEL_INTERVAL_SAMPLES;
    this.port.onmessage = (event) => this.#handle(event.data);
  }

  #handle(message) {
    if (message.type === "pcm") {
      let queue = this.#sources.get(message.source);
      if (queue === undefined) {
        queue = new SourceQueue();
        this.#sources.set(message.source, queue);
      }
      queue.push(message.samples, this.#maxQueued);
    } else if (message.type === "remove") {
      this.#sources.delete(message.source);
    } else if (message.type === "stop") {
      this.#running = false;
    }
  }

  process(_inputs, outputs) {
    const output = outputs[0][0];
    for (const queue of this.#sources.values()) {
      if (!queue.playing) {
        if (queue.queued < this.#prebuffer) continue;
        queue.playing = true;
      }
      if (queue.mixInto(output) < output.length) {
        queue.playing = false;
        this.#underruns++;
      }
    }

    for (let i = 0; i < output.length; i++) {
      const sample = Math.max(-1, Math.min(1, output[i]));
      output[i] = sample;
      this.#mixEnergy += sample * sample;
    }

    this.#samplesSinceLevel += output.length;
    if (this.#samplesSinceLevel >= this.#levelInterval) this.#postLevels();
    return this.#running;
  }

  #postLevels() {
    const count = this.#samplesSinceLevel;
    const sources = {};
    for (const [source, queue] of this.#sources) {
      sources[source] = Math.sqrt(queue.energy / count);
      queue.energy = 0;
    }
    this.port.postMessage({
      type: "levels",
      mix: Math.sqrt(this.#mixEnergy / count),
      sources,
      underruns: this.#underruns,
    });
    this.#mixEnergy = 0;
    this.#samplesSinceLevel = 0;
  }
}

registerProcessor("relay-playback", PlaybackProcessor);
