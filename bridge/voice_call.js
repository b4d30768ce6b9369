// A voice call in one room. Microphone -> Opus (WebCodecs) -> media packets
// -> relay, and relay -> one jitter buffer and decoder per source -> mixing
// worklet -> speakers. The call owns the relay client, the audio graph and
// the counters; the page only renders them.

import { AudioCapture } from "./audio_capture.js";
import { closeMessage } from "./close_messages.js";
import { bitrateForProfileCodec } from "./media_packet.js";
import { FRAME_SAMPLES, OpusEncoder, SAMPLE_RATE } from "./opus_encoder.js";
import { QualityMonitor } from "./quality_monitor.js";
import { connectToRoom } from "./relay_connect.js";
import { VoiceReceiver } from "./voice_receiver.js";
import { VoiceSender } from "./voice_sender.js";

/** Interval of jitter buffer draining, so that held gaps time out, in ms. */
export const DRAIN_INTERVAL_MS = 20;

/** Interval of ping and loss measurement, in ms. */
export const MEASURE_INTERVAL_MS = 1_000;

/**
 * Factor applied to a shown level at every level message (about 20 per
 * second) unless the new level is higher. A meter thus rises at once and
 * falls to a tenth in about half a second.
 */
export const LEVEL_DECAY = 0.8;

const WORKLET_URLS = [
  new URL("./capture_worklet.js", import.meta.url).href,
  new URL("./playback_worklet.js", import.meta.url).href,
];

export class VoiceCall extends EventTarget {
  #context;
  #client;
  #playback;
  #capture = null;
  #monitor = new QualityMonitor();
  #sender;
  #receiver;
  #timers = [];
  #closed = false;

  /** Transport in use, "ws" or "wt". */
  transport;
  /** Reason for not using WebTransport, or null. */
  fallbackReason;
  room;
  participantId;
  /** Participants of the latest room_update, in join order. */
  participants;
  /** Relay client state: "joined" during the call, then "closed". */
  state;
  /** Tier of the latest quality_directive, or null before the first. */
  tier = null;
  /** Microphone failure message, or null while the microphone works. */
  microphoneError = null;
  /** Smoothed RMS of the played mix, 0..1. */
  level = 0;
  /** Smoothed RMS of the microphone, 0..1. */
  localLevel = 0;
  /** Smoothed RMS of each remote source's playback, by source id. */
  sourceLevels = new Map();
  /** Times a source's playback queue ran dry. */
  underruns = 0;

  constructor(context, playback, connection) {
    super();
    const client = connection.client;
    this.#context = context;
    this.#playback = playback;
    this.#client = client;
    this.transport = client.transport;
    this.fallbackReason = connection.fallbackReason;
    this.room = client.room;
    this.participantId = client.participantId;
    this.participants = client.participants ?? [];
    this.state = client.state;

    this.#sender = new VoiceSender({
      sendMedia: (packet) => client.sendMedia(packet),
      monitor: this.#monitor,
      onError: (error) => report("Opus encoder failed", error),
    });
    this.#receiver = new VoiceReceiver({
      onPcm: (source, samples) => {
        playback.port.postMessage(
          { type: "pcm", source, samples },
          [samples.buffer],
        );
      },
      onError: (source, error) =>
        report(`Opus decoder of source ${source} failed`, error),
    });
  }

  /**
   * Starts a call: loads the worklets into `context` (an AudioContext at
   * 48 kHz), joins the room, then opens the microphone. A microphone that
   * cannot be opened leaves the call listening only, with microphoneError
   * set. Rejects when the browser lacks WebCodecs Opus or the join fails.
   */
  static async start(context, { room, alias, token, transport, onAttempt }) {
    if (context.sampleRate !== SAMPLE_RATE) {
      throw new RangeError(
        `The AudioContext runs at ${context.sampleRate} Hz, expected ` +
          `${SAMPLE_RATE} Hz: create it with { sampleRate: ${SAMPLE_RATE} }`,
      );
    }
    await OpusEncoder.checkSupport();
    await Promise.all(
      WORKLET_URLS.map((url) => context.audioWorklet.addModule(url)),
    );

    const connection = await connectToRoom({
      room,
      alias,
      token,
      transport,
      onAttempt,
    });
    const playback = new AudioWorkletNode(context, "relay-playback", {
      numberOfInputs: 0,
      numberOfOutputs: 1,
      outputChannelCount: [1],
    });
    playback.connect(context.destination);

    const call = new VoiceCall(context, playback, connection);
    call.#listen();
    await call.#openMicrophone();
    return call;
  }

  /** Packets sent. */
  get sent() {
    return this.#sender.sent;
  }

  /** Packets the transport rejected. */
  get sendFailed() {
    return this.#sender.sendFailed;
  }

  /** Packets received. */
  get received() {
    return this.#receiver.received;
  }

  /** Opus frames decoded. */
  get decoded() {
    return this.#receiver.decoded;
  }

  /** Packets counted lost on the receive streams. */
  get lost() {
    return this.#receiver.lost;
  }

  /** Loss over the last measurement interval, in percent. */
  get lossPercent() {
    return this.#monitor.lossPercent;
  }

  /** Latest round-trip time, in ms, or null before the first pong. */
  get rttMs() {
    return this.#monitor.rttMs;
  }

  /** Worst interarrival jitter of the receive streams, in ms. */
  get jitterMs() {
    return this.#monitor.jitterMs;
  }

  /** Encoder bitrate, in bits/s. */
  get bitrate() {
    return this.#sender.bitrate;
  }

  get muted() {
    return this.#sender.muted;
  }

  /** AudioContext state: "suspended" until the browser lets audio run. */
  get audioState() {
    return this.#context.state;
  }

  /** Label of the microphone, or "" when none is open. */
  get microphoneLabel() {
    return this.#capture?.deviceLabel ?? "";
  }

  /** Stops or resumes sending audio. A muted call sends no packets. */
  setMuted(muted) {
    this.#sender.muted = muted;
    this.#changed();
  }

  /** Resumes a suspended AudioContext. Call it from a user gesture. */
  async resumeAudio() {
    await this.#context.resume();
    this.#changed();
  }

  /** Leaves the room: sends hangup, then releases every resource. */
  async leave() {
    await this.#client.close("leave").catch(() => {});
    this.#teardown({ code: 1000, reason: "leave", errorCode: null });
  }

  /**
   * Leaves without waiting for the relay, for a page that is going away.
   * Chromium 156 does not close a WebTransport session when its page
   * closes, so without this the relay would keep the participant until the
   * QUIC idle timeout.
   */
  leaveNow() {
    this.#client.closeNow("leave");
    this.#teardown({ code: 1000, reason: "leave", errorCode: null });
  }

  #listen() {
    const client = this.#client;
    client.onMedia = (source, packet) => {
      this.#receiver.receive(source, packet, performance.now());
    };
    client.addEventListener("room_update", (event) => {
      this.participants = event.detail?.participants ?? client.participants;
      this.#forgetDepartedSources();
      this.#changed();
    });
    client.addEventListener("quality_directive", (event) => {
      this.#applyDirective(event.detail);
    });
    client.addEventListener("state", () => {
      this.state = client.state;
      this.#changed();
    });
    client.addEventListener("error", (event) => {
      const signal = event.detail ?? {};
      report(`Relay sent error ${signal.code}`, signal.message);
    });
    client.addEventListener("close", (event) => this.#teardown(event.detail));
    client.closed.then((info) => this.#teardown(info), () => {});

    this.#context.addEventListener("statechange", () => this.#changed());
    this.#playback.port.onmessage = (event) => this.#showLevels(event.data);
    this.#timers.push(setInterval(() => this.#drain(), DRAIN_INTERVAL_MS));
    this.#timers.push(setInterval(() => this.#measure(), MEASURE_INTERVAL_MS));
  }

  async #openMicrophone() {
    try {
      this.#capture = await AudioCapture.start(this.#context, {
        frameSamples: FRAME_SAMPLES,
        onFrame: (samples, level) => {
          this.localLevel = Math.max(level, this.localLevel * LEVEL_DECAY);
          this.#sender.pushFrame(samples);
        },
      });
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error);
      this.microphoneError = `Microphone unavailable (${detail}): you can ` +
        "listen but not speak.";
    }
    if (this.#closed) this.#capture?.stop();
    this.#changed();
  }

  #drain() {
    this.#receiver.drain(performance.now());
    this.#changed();
  }

  #measure() {
    this.#monitor.measure(this.#receiver.sources);
    this.#client.ping().then(
      (rttMs) => this.#monitor.rttMs = rttMs,
      () => {},
    );
  }

  #showLevels(message) {
    if (message.type !== "levels") return;
    this.level = Math.max(message.mix, this.level * LEVEL_DECAY);
    for (const [source, rms] of Object.entries(message.sources)) {
      const id = Number(source);
      const previous = this.sourceLevels.get(id) ?? 0;
      this.sourceLevels.set(id, Math.max(rms, previous * LEVEL_DECAY));
    }
    this.underruns = message.underruns;
  }

  #applyDirective(directive) {
    this.tier = directive?.tier ?? this.tier;
    const bitrate = bitrateForProfileCodec(directive?.profile?.codec);
    // NOTE: frames stay 20 ms long even where the profile names 40 ms
    // (degraded, catastrophic); only the bitrate follows the tier.
    if (bitrate !== null) this.#sender.setBitrate(bitrate);
    this.#changed();
  }

  #forgetDepartedSources() {
    const present = new Set(this.participants.map((p) => p.source));
    for (const source of this.#receiver.retain(present)) {
      this.sourceLevels.delete(source);
      this.#playback.port.postMessage({ type: "remove", source });
    }
  }

  #teardown(detail) {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of this.#timers) clearInterval(timer);
    this.#capture?.stop();
    this.#sender.close();
    this.#receiver.close();
    this.#playback.port.postMessage({ type: "stop" });
    this.#playback.disconnect();
    this.#client.onMedia = null;
    this.state = "closed";
    this.level = 0;
    this.localLevel = 0;

    const info = {
      code: detail?.code ?? null,
      reason: detail?.reason ?? "",
      errorCode: detail?.errorCode ?? null,
    };
    this.dispatchEvent(
      new CustomEvent("close", {
        detail: { ...info, message: closeMessage(info) },
      }),
    );
  }

  #changed() {
    this.dispatchEvent(new Event("update"));
  }
}

function report(what, error) {
  const message = error instanceof Error ? error.message : String(error);
  console.warn(`${what}: ${message}`);
}
