// The browser page at `/`: joins a room from the address
// (`/?room=name&alias=&token=&transport=auto|wt|ws`) or from the form, runs
// a VoiceCall and renders it. Counters are mirrored into
// window.relayClientState for tests and for the console:
// { state, participants, sent, received, decoded, level, ... }.

import { VoiceCall } from "./voice_call.js";
import { SAMPLE_RATE } from "./opus_encoder.js";
import { closeMessage } from "./close_messages.js";
import { TRANSPORT_CHOICES } from "./relay_connect.js";

/** Playback level above which a participant is shown as speaking. */
const SPEAKING_LEVEL = 0.02;

const TRANSPORT_NAMES = { ws: "WebSocket", wt: "WebTransport" };

/** Labels of the relay client's states. */
const STATE_LABELS = {
  idle: "not connected",
  connecting: "connecting",
  joined: "connected",
  reconnecting: "reconnecting",
  closed: "disconnected",
};

const elements = {
  form: document.getElementById("join"),
  call: document.getElementById("call"),
  message: document.getElementById("message"),
  roomName: document.getElementById("room-name"),
  state: document.getElementById("state"),
  transport: document.getElementById("transport"),
  fallback: document.getElementById("fallback"),
  enableAudio: document.getElementById("enable-audio"),
  audioBlocked: document.getElementById("audio-blocked"),
  mute: document.getElementById("mute"),
  leave: document.getElementById("leave"),
  localLevel: document.getElementById("local-level"),
  microphoneLabel: document.getElementById("microphone-label"),
  microphoneError: document.getElementById("microphone-error"),
  participants: document.getElementById("participants"),
  sent: document.getElementById("sent"),
  received: document.getElementById("received"),
  decoded: document.getElementById("decoded"),
  lost: document.getElementById("lost"),
  rtt: document.getElementById("rtt"),
  jitter: document.getElementById("jitter"),
  bitrate: document.getElementById("bitrate"),
  tier: document.getElementById("tier"),
};

/** Counters of a call that has not started, for relayClientState. */
function emptyCallState(state) {
  return {
    state,
    transport: null,
    participantId: null,
    participants: [],
    sent: 0,
    received: 0,
    decoded: 0,
    lost: 0,
    level: 0,
    muted: false,
  };
}

const relayClientState = emptyCallState("idle");
globalThis.relayClientState = relayClientState;

let call = null;
let renderPending = false;

/** Copies the call's counters into relayClientState and schedules a render. */
function update() {
  if (call !== null) {
    Object.assign(relayClientState, {
      state: call.state,
      transport: call.transport,
      participantId: call.participantId,
      participants: call.participants,
      sent: call.sent,
      received: call.received,
      decoded: call.decoded,
      lost: call.lost,
      level: call.level,
      muted: call.muted,
    });
  }
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => {
    renderPending = false;
    render();
  });
}

function render() {
  if (call === null) return;
  showState(relayClientState.state);
  elements.transport.textContent = TRANSPORT_NAMES[call.transport] ?? "";
  elements.fallback.hidden = call.fallbackReason === null;
  elements.fallback.textContent = call.fallbackReason === null
    ? ""
    : `Using WebSocket because ${call.fallbackReason}.`;
  elements.enableAudio.hidden = call.audioState !== "suspended";
  elements.audioBlocked.hidden = call.audioState !== "suspended";
  elements.mute.textContent = call.muted ? "Unmute" : "Mute";
  elements.mute.setAttribute("aria-pressed", String(call.muted));

  elements.localLevel.value = call.muted ? 0 : meterValue(call.localLevel);
  elements.microphoneLabel.textContent = call.muted
    ? "muted"
    : call.microphoneLabel;
  elements.microphoneError.hidden = call.microphoneError === null;
  elements.microphoneError.textContent = call.microphoneError ?? "";

  renderParticipants();
  elements.sent.textContent = String(call.sent);
  elements.received.textContent = String(call.received);
  elements.decoded.textContent = String(call.decoded);
  elements.lost.textContent = `${call.lost} (${call.lossPercent.toFixed(1)} %)`;
  elements.rtt.textContent = call.rttMs === null
    ? "–"
    : `${Math.round(call.rttMs)} ms`;
  elements.jitter.textContent = `${call.jitterMs.toFixed(1)} ms`;
  elements.bitrate.textContent = `${call.bitrate / 1000} kb/s Opus`;
  elements.tier.textContent = call.tier ?? "–";
}

function renderParticipants() {
  const items = call.participants.map((participant) => {
    const isSelf = participant.id === call.participantId;
    const level = isSelf
      ? (call.muted ? 0 : call.localLevel)
      : call.sourceLevels.get(participant.source) ?? 0;

    const item = document.createElement("li");
    item.classList.toggle("speaking", level >= SPEAKING_LEVEL);
    item.dataset.source = String(participant.source);

    const name = document.createElement("span");
    name.className = "name";
    name.textContent = participant.alias ?? shortId(participant.id);
    if (isSelf) name.append(" (you)");
    if (isSelf && call.muted) name.append(", muted");

    const details = document.createElement("span");
    details.className = "note";
    details.textContent = [
      TRANSPORT_NAMES[participant.transport] ?? participant.transport,
      participant.relay === null ? "this relay" : `via ${participant.relay}`,
      `source ${participant.source}`,
    ].join(" · ");

    const meter = document.createElement("meter");
    meter.min = 0;
    meter.max = 1;
    meter.value = meterValue(level);
    meter.title = isSelf ? "your microphone" : "playback level";

    item.append(name, details, meter);
    return item;
  });
  elements.participants.replaceChildren(...items);
}

/** Maps an RMS level to a meter position: -60 dBFS -> 0, 0 dBFS -> 1. */
function meterValue(level) {
  if (level <= 0) return 0;
  const decibels = 20 * Math.log10(level);
  return Math.max(0, Math.min(1, (decibels + 60) / 60));
}

function shortId(id) {
  if (typeof id !== "string") return String(id);
  // A federated participant's id is "<relay fingerprint>/<id there>".
  return id.slice(id.lastIndexOf("/") + 1).slice(0, 8);
}

function showState(state) {
  elements.state.textContent = STATE_LABELS[state] ?? state;
  elements.state.dataset.state = state;
}

function showMessage(text, kind = "info") {
  elements.message.textContent = text;
  elements.message.dataset.kind = kind;
}

/**
 * Joins `room`. Creates the AudioContext before the first await, so a join
 * from the form (a user gesture) may start audio at once.
 */
async function join({ room, alias, token, transport }) {
  if (call !== null) return;
  const context = new AudioContext({
    sampleRate: SAMPLE_RATE,
    latencyHint: "interactive",
  });
  context.resume().catch(() => {});

  elements.form.hidden = true;
  elements.call.hidden = false;
  elements.roomName.textContent = room;
  showState("connecting");
  elements.transport.textContent = "";
  elements.participants.replaceChildren();
  showMessage("");
  Object.assign(relayClientState, emptyCallState("connecting"));

  try {
    call = await VoiceCall.start(context, {
      room,
      alias,
      token,
      transport,
      onAttempt: (attempt) => {
        elements.transport.textContent = `trying ${TRANSPORT_NAMES[attempt]}`;
      },
    });
  } catch (error) {
    await context.close().catch(() => {});
    finish(startFailureMessage(error));
    return;
  }

  call.addEventListener("update", update);
  call.addEventListener("close", (event) => {
    context.close().catch(() => {});
    update();
    call = null;
    finish(event.detail.message, event.detail.code === 1000);
  });
  update();
}

function startFailureMessage(error) {
  if (error !== null && typeof error === "object" && "code" in error) {
    return closeMessage(error);
  }
  const detail = error instanceof Error ? error.message : String(error);
  return `Could not join the room: ${detail}`;
}

/** Returns to the form and shows why the call ended. */
function finish(text, normal = false) {
  relayClientState.state = "closed";
  relayClientState.level = 0;
  elements.call.hidden = true;
  elements.form.hidden = false;
  showMessage(text, normal ? "info" : "error");
}

function readAddress() {
  const params = new URLSearchParams(location.search);
  const transport = params.get("transport") ?? "auto";
  return {
    room: params.get("room") ?? "",
    alias: params.get("alias") ?? "",
    token: params.get("token") ?? "",
    transport: TRANSPORT_CHOICES.includes(transport) ? transport : "auto",
  };
}

elements.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const data = new FormData(elements.form);
  const request = {
    room: String(data.get("room") ?? ""),
    alias: String(data.get("alias") ?? ""),
    token: String(data.get("token") ?? ""),
    transport: String(data.get("transport") ?? "auto"),
  };
  // The address records room, name and transport for sharing. The token
  // stays out of it so that it does not end up in history or links.
  const params = new URLSearchParams({ room: request.room });
  if (request.alias !== "") params.set("alias", request.alias);
  if (request.transport !== "auto") params.set("transport", request.transport);
  history.replaceState(null, "", `?${params}`);
  join(request);
});

elements.mute.addEventListener("click", () => call?.setMuted(!call.muted));
elements.leave.addEventListener("click", () => call?.leave());
// A closed tab keeps a WebTransport session open in Chromium, so the page
// closes its session itself when it goes away.
addEventListener("pagehide", () => call?.leaveNow());
elements.enableAudio.addEventListener("click", () => call?.resumeAudio());

const address = readAddress();
elements.form.elements.room.value = address.room;
elements.form.elements.alias.value = address.alias;
elements.form.elements.transport.value = address.transport;
if (address.room !== "") join(address);
