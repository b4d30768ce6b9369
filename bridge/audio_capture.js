// Microphone capture for the page: getUserMedia into an AudioWorklet that
// cuts the signal into 20 ms frames of Float32 PCM at the context's rate.

/** Constraints of the microphone: voice processing on, one channel. */
export const MICROPHONE_CONSTRAINTS = Object.freeze({
  channelCount: 1,
  echoCancellation: true,
  noiseSuppression: true,
  autoGainControl: true,
});

export class AudioCapture {
  #stream;
  #source;
  #node;

  constructor(stream, source, node) {
    this.#stream = stream;
    this.#source = source;
    this.#node = node;
  }

  /**
   * Asks for the microphone and starts posting frames of `frameSamples`
   * samples: `onFrame(samples: Float32Array, level: number)` runs for each
   * one, with the frame's RMS level (0..1). The context must have loaded
   * capture_worklet.js. Rejects with the getUserMedia error (for example
   * NotAllowedError when the user denies the microphone).
   */
  static async start(context, { frameSamples, onFrame }) {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: MICROPHONE_CONSTRAINTS,
    });
    const source = context.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(context, "relay-capture", {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      processorOptions: { frameSamples },
    });
    node.port.onmessage = (event) => {
      if (event.data.type === "frame") {
        onFrame(event.data.samples, event.data.level);
      }
    };

    source.connect(node);
    // The node outputs silence; the connection keeps the graph pulling it.
    node.connect(context.destination);
    return new AudioCapture(stream, source, node);
  }

  /** Label of the microphone in use, as the browser names it. */
  get deviceLabel() {
    return this.#stream.getAudioTracks()[0]?.label ?? "";
  }

  /** Stops the microphone and disconnects the nodes. Idempotent. */
  stop() {
    for (const track of this.#stream.getTracks()) track.stop();
    this.#node.port.onmessage = null;
    this.#node.port.postMessage({ type: "stop" });
    this.#source.disconnect();
    this.#node.disconnect();
  }
}
