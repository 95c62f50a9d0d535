// The softphone page: login, dial pad, several calls (call waiting, switching, hold per side), transfer,
// DTMF, mute, level meters, chat, ringtone / ringback, notifications, history, contacts, audio settings.
// Uses webrtc-client.js (signaling), sounds.js (tones), book.js (history, contacts), devices.js, chat.js, rtt.js (real-time text).
import { GatewayClient, levelMeter } from "/static/webrtc-client.js";
import { Tones } from "/static/sounds.js";
import {
  History, fetchContacts, partyLabel, partyName, renderContacts, renderHistory,
} from "/static/book.js";
import { AudioSettings } from "/static/devices.js";
import { VideoSettings } from "/static/video.js";
import { ChatPanel } from "/static/chat.js";
import { RttPanel } from "/static/rtt.js";
import { LampPanel } from "/static/lamps.js";

const $ = (id) => document.getElementById(id);
const client = new GatewayClient();
const TOKEN_KEY = "gateway.session-token";
const TITLE = document.title;
const tones = new Tones();
const audio = new AudioSettings({
  mic: $("mic-select"), speaker: $("speaker-select"), speakerRow: $("speaker-row"), volume: $("volume"),
  echo: $("echo-cancellation"), noise: $("noise-suppression"), testButton: $("mic-test"),
  testLevel: $("test-level"), audio: $("remote-audio"),
});
const video = new VideoSettings({
  toggle: $("video-toggle"), camera: $("camera-select"), local: $("local-video"), remote: $("remote-video"),
  panel: $("video-panel"), options: $("video-options"),
});
const rtt = new RttPanel({
  panel: $("rtt"), theirs: $("rtt-theirs"), input: $("rtt-input"), toggle: $("rtt-toggle"),
});
const chat = new ChatPanel({
  panel: $("chat"), log: $("chat-log"), form: $("chat-form"), input: $("chat-text"), button: $("chat-button"),
});
// busy lamps of the colleagues the user watches, and the voicemail light (lamps.js)
const lamps = new LampPanel({
  client, panel: $("lamps-panel"), list: $("lamps"), voicemail: $("voicemail"),
  nameOf: (number) => nameFor(number).name, pickup: (n) => dialNumber(n),
});
let call = null; // the current call (the one the controls act on)
let calls = []; // every call of this page not ended, in arrival order (current one included)
let waiting = null; // attended transfer: the held call to transfer, while `call` is the consultation
let ringing = []; // incoming calls not answered yet (the banner shows the first one not ignored)
let audioContext = null;
let stopMeters = [];
let timer = null;
let history = null;
let contacts = []; // from GET /contacts, kept up to date by the gateway's `presence` events
// for tests and the curious: which tone plays, and its level; the current call (its RTCPeerConnection)
window.softphone = { tones, get call() { return call; } };

const MESSAGES = {
  unauthorized: "Wrong user id or secret.",
  session_ended: "Your session has ended. Please log in again.",
  login_timeout: "The gateway closed the connection: log in took too long.",
  too_many_sessions: "You are logged in on too many devices or tabs. Close one and try again.",
  network: "Cannot reach the gateway. Check your network connection and try again.",
  forbidden: "You are not allowed to call this number.",
  not_found: "That call no longer exists.",
  rate_limited: "Too many actions at once. Please wait a moment.",
  bad_destination: "That is not a number or address you can call.",
  destination_not_allowed: "You are not allowed to call this number.",
  NotAllowedError: "Microphone access was denied.",
  NotFoundError: "No microphone was found.",
  NotReadableError: "The microphone is in use by another program.",
  renegotiation_failed: "The other side did not take the video.",
};

// What the user can do about an error (shown under it).
const HINTS = {
  unauthorized: "Check the user id and secret; they are case-sensitive.",
  network: "The page reconnects by itself when the network is back.",
  too_many_sessions: "Log out in another tab or device first.",
  forbidden: "Ask your administrator which numbers you may call.",
  destination_not_allowed: "Ask your administrator which numbers you may call.",
  bad_destination: "Dial digits (like 2000), a contact's name, or a SIP address like sip:2000@example.org.",
  NotAllowedError: "Allow the microphone for this site in your browser's address bar, then call again.",
  NotFoundError: "Plug in a microphone or headset, then call again.",
  NotReadableError: "Close the other program using the microphone, then call again.",
  pbx_unreachable: "Try again in a minute; if it persists, tell your administrator.",
  busy: "Try again later.",
  no_such_number: "Check the number.",
  incompatible_media: "Try another browser, or tell your administrator.",
  gateway_lost: "The page keeps trying to reconnect: call again once it says Registered.",
};

const END_REASONS = {
  busy: "The line is busy.",
  no_such_number: "That number does not exist.",
  declined: "The call was declined.",
  unavailable: "The person is not available.",
  no_answer: "No answer.",
  cancelled: "The call was cancelled.",
  remote_hangup: "The other side hung up.",
  hangup: "Call ended.",
  disconnected: "Connection to the gateway lost: call ended.",
  pbx_unreachable: "The phone system cannot be reached.",
  incompatible_media: "The other side does not support this browser's audio formats.",
  forbidden: "You are not allowed to call this number.",
  answered_elsewhere: "Answered on another device.",
  media_timeout: "Audio stopped: call ended.",
  media_failed: "Audio could not be set up.",
  transferred: "Call transferred.",
  gateway_lost: "The connection to the gateway could not be restored: call ended.",
};

const TRANSFER_TEXT = {
  requested: "Transferring…", accepted: "Transfer accepted…", progress: "Transfer target ringing…",
  succeeded: "Transferred.", failed: "Transfer failed: the call goes on.",
};

// Raw field errors of the gateway ("to must not contain spaces...") read as plain words.
function readable(error) {
  if (error.field === "to" && error.code === "bad_request") return MESSAGES.bad_destination;
  const text = MESSAGES[error.code] || MESSAGES[error.name];
  if (text && error.code === "forbidden" && error.message) return `${text} (${error.message})`;
  return text || error.message || String(error);
}

// How a call ended when nobody did anything wrong: said plainly, not as an error.
const NEUTRAL_ENDS = ["remote_hangup"];

function showNotice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

function showError(text, hint = "") {
  showNotice("");
  $("error").textContent = text;
  $("error-hint").textContent = hint;
  $("error-hint").hidden = !hint;
  $("error-box").hidden = !text;
}

function showFailure(error) {
  showError(readable(error), HINTS[error.code] || HINTS[error.name] || "");
}

const clearError = () => showError("");

function setStatus(state, text) {
  const status = $("status");
  status.dataset.state = state;
  status.textContent = text;
}

function formatDuration(ms) {
  const seconds = Math.floor(ms / 1000);
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = String(seconds % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

const STATE_TEXT = {
  calling: "Calling…", ringing: "Ringing…", early: "Ringing (early audio)…", incoming: "Incoming call",
  answering: "Connecting…", connected: "Connected", held: "On hold", ended: "Call ended",
  reconnecting: "Reconnecting the call…",
};

function stateText(c) {
  if (c.state === "held") {
    if (c.localHold && c.remoteHold) return "On hold (both sides)";
    if (c.remoteHold) return "Held by the other side";
    return "On hold";
  }
  return STATE_TEXT[c.state] || c.state;
}

// One name per party, wherever the page shows it (the call list, the incoming banner, the history, the
// colleagues' lamps): book.js's partyName, from the directory (contacts), the SIP side's name, or one an
// earlier call gave: in the history, or a call of this page (`learned`: the desk phone ringing now is
// "Demo desk phone (2000)" in the history too, not "2000" there and its name in the banner).
const learned = new Map(); // number -> the display name a call of this page gave (the newest)
const names = { nameOf: (number) => learned.get(number) || history?.nameOf(number) || "" };
const nameFor = (uri, given = "") => partyName(uri, given, contacts, names);

// Who the SIP side says is on a call: the asserted identity (P-Asserted-Identity), else its From.
const given = (c) => c.asserted || { uri: c.remote?.uri, display_name: c.remote?.displayName };

function learn(c) {
  const who = given(c);
  const { number, name } = partyName(who.uri, who.display_name || "", [], null);
  if (!name || learned.get(number) === name) return;
  learned.set(number, name);
  showHistory();
  lamps.render();
}

function whoIs(c) {
  const who = given(c);
  return nameFor(who.uri, who.display_name || "");
}

const party = (c) => partyLabel(whoIs(c));

const live = (c) => c && c.state !== "ended";
const talking = (c) => live(c) && ["connected", "held"].includes(c.state);

function render() {
  calls = calls.filter(live);
  ringing = ringing.filter((c) => c.state === "incoming");
  const active = live(call);
  const inCall = talking(call);
  // A second call may be placed while every other call is held by this user.
  const othersHeld = calls.every((c) => c.localHold || !talking(c));
  $("call-button").disabled = !client.connected || (active && !(inCall && othersHeld) && !call.localHold);
  $("hangup-button").disabled = !active;
  $("mute-button").disabled = !inCall;
  $("hold-button").disabled = !inCall;
  const consulting = Boolean(waiting && waiting.state !== "ended" && active && call !== waiting);
  $("transfer-to").disabled = !inCall || consulting;
  $("transfer-button").disabled = !inCall || consulting;
  $("consult-button").disabled = !inCall || consulting;
  $("consult").hidden = !consulting;
  if (consulting) {
    $("consult-text").textContent = `Consulting ${party(call)}; ${party(waiting) || "the first call"} is on hold.`;
    $("complete-transfer-button").disabled = call.state !== "connected" && call.state !== "held";
  }
  $("mute-button").setAttribute("aria-pressed", String(Boolean(active && call.muted)));
  $("mute-button").textContent = active && call.muted ? "Unmute" : "Mute";
  const held = active && call.localHold;
  $("hold-button").setAttribute("aria-pressed", String(Boolean(held)));
  $("hold-button").textContent = held ? "Resume" : "Hold";
  renderVideoButton(inCall);
  $("call-state").textContent = active ? stateText(call) : "No call";
  // the digits sent in this call (dial pad or keyboard), gone with it
  const digits = active ? call.sentDigits || "" : "";
  $("dtmf-sent").hidden = !digits;
  $("dtmf-sent").textContent = digits ? `Sent ${digits}` : "";
  // the digits the far end sent (RFC 4733 or INFO: an IVR, a door phone's keypad), gone with the call
  const received = active ? call.receivedDigits || "" : "";
  $("dtmf-received").hidden = !received;
  $("dtmf-received").textContent = received ? `Received ${received}` : "";
  renderQuality(inCall ? call : null);
  renderRecording(inCall ? call : null);
  chat.show(active && call.state !== "incoming" ? call : null, inCall);
  rtt.show(inCall ? call : null);
  renderIncoming();
  renderCalls();
  renderConference();
  ringAlerts();
}

// Three-way calls: Merge while the current call is connected and another is on hold by this user (the
// gateway mixes both: the current call's audio becomes the mix); the conference lists its parties, each
// with Split (back on hold, a call of its own) and Hang up.
const heldForMerge = () => calls.find((c) => c !== call && c.state === "held" && c.localHold && !c.remoteHold
  && !c.conference);

function renderConference() {
  const mergeable = talking(call) && call.state === "connected" && !call.conference && heldForMerge();
  $("merge-button").hidden = !mergeable;
  $("merge-button").setAttribute("aria-label", mergeable ? `Merge with ${party(heldForMerge())}` : "Merge");
  const members = calls.filter((c) => live(c) && c.conference && call && c.conference === call.conference);
  $("conference").hidden = members.length < 2;
  $("conference-parties").replaceChildren();
  if (members.length < 2) return;
  $("calls").hidden = true; // the conference shows them
  $("hold-button").disabled = true; // a party is split off (held) from the conference, not held in it
  // its calls being taken back (a lost socket, the mixing instance gone): said, not a conference in silence
  const back = members.some((c) => c.state === "reconnecting");
  $("call-state").textContent = back ? "Reconnecting the conference…" : `Conference with ${members.length} parties`;
  for (const c of members) {
    const item = document.createElement("li");
    const text = document.createElement("span");
    text.textContent = party(c);
    const split = document.createElement("button");
    split.type = "button";
    split.className = "small";
    split.textContent = "Split";
    split.setAttribute("aria-label", `Split off ${party(c)}`);
    split.disabled = c.state === "reconnecting"; // (hanging up works meanwhile: sent once it is back)
    split.addEventListener("click", () => c.split().catch((error) => showFailure(error)));
    const hangup = document.createElement("button");
    hangup.type = "button";
    hangup.className = "small danger";
    hangup.textContent = "Hang up";
    hangup.setAttribute("aria-label", `Hang up ${party(c)}`);
    hangup.addEventListener("click", () => c.hangup().catch((error) => showFailure(error)));
    item.append(text, split, hangup);
    $("conference-parties").append(item);
  }
}

// The call's recording (the `recording` event): a red "Recording" (or "Recording paused") while it is on;
// with mode on_demand a Record / Stop recording button and Pause / Resume recording.
const RECORDING_TEXT = { recording: "● Recording", paused: "Recording paused" };

function renderRecording(c) {
  const rec = c?.recording;
  const state = rec?.state || "idle";
  const box = $("recording-indicator");
  box.hidden = !(state in RECORDING_TEXT);
  box.dataset.state = state;
  box.textContent = RECORDING_TEXT[state] || "";
  const onDemand = rec?.mode === "on_demand";
  const on = state === "recording" || state === "paused";
  $("record-row").hidden = !onDemand; // a row of its own: the call's buttons stay on one line
  $("record-button").textContent = on ? "Stop recording" : "Record";
  $("record-button").setAttribute("aria-pressed", String(on));
  $("record-pause-button").hidden = !onDemand || !on;
  $("record-pause-button").textContent = state === "paused" ? "Resume recording" : "Pause recording";
  $("record-pause-button").setAttribute("aria-pressed", String(state === "paused"));
}

// "Poor connection" while a leg's estimated MOS is under the gateway's threshold (the `quality` event:
// legs.web is this browser's side, legs.sip the phone's); hidden again when it recovers.
const POOR_TEXT = { web: "your side", sip: "the phone's side" };

function renderQuality(c) {
  const poor = (c?.quality?.poor || []).filter((leg) => leg in POOR_TEXT);
  const box = $("quality-warning");
  box.hidden = !poor.length;
  box.dataset.legs = poor.join(" ");
  box.textContent = poor.length ? `Poor connection: ${poor.map((leg) => POOR_TEXT[leg]).join(" and ")}` : "";
}

// The in-call "Add video" / "Stop video" button (issue 19): the page's own offer mid-call. A call whose
// video this page stopped cannot add it again (docs/interop.md, Not yet). Shown only when the gateway
// carries video (codecs.video), or while a call has video all the same.
function renderVideoButton(inCall) {
  const button = $("video-button");
  button.hidden = !video.available && !(inCall && call.sendingVideo);
  const sending = Boolean(inCall && call.sendingVideo);
  button.textContent = sending ? "Stop video" : "Add video";
  button.setAttribute("aria-pressed", String(sending));
  button.disabled = !inCall || call.state !== "connected" || Boolean(call.videoBusy) || Boolean(call.videoStopped);
}

async function toggleVideo() {
  const target = call;
  if (!talking(target) || target.videoBusy) return;
  clearError();
  target.videoBusy = true;
  render();
  try {
    if (target.sendingVideo) {
      await target.dropVideo();
      target.videoStopped = true;
    } else if (!(await target.addVideo(await video.openCamera()))) {
      showError("The other side did not take the video.", "The call goes on with audio only.");
    }
  } catch (error) {
    if (error.code === "renegotiation_failed") {
      showError(MESSAGES.renegotiation_failed, `The call goes on as it was (${error.message}).`);
    } else {
      showFailure(error);
    }
  } finally {
    target.videoBusy = false;
    if (call === target) meters(target);
    render();
  }
}

function renderIncoming() {
  const shown = ringing.find((c) => !c.ignored);
  $("incoming").hidden = !shown;
  if (!shown) return;
  const from = shown.divertedFrom[0];
  const via = from ? `, forwarded from ${partyLabel(nameFor(from.uri))}` : "";
  const busy = calls.some((c) => c !== shown && talking(c));
  $("incoming-text").textContent = `Incoming call from ${party(shown)}${via}`;
  $("incoming-more").hidden = !busy;
  $("incoming-more").textContent = busy ? "Call waiting: answering puts your call on hold." : "";
  $("answer-button").textContent = busy ? "Answer and hold" : "Answer";
}

// The list of calls when there is more than one: who, how it stands, and a button to switch to it.
function renderCalls() {
  const list = $("calls");
  const shown = calls.filter((c) => c.state !== "incoming");
  list.hidden = shown.length < 2;
  list.replaceChildren();
  if (shown.length < 2) return;
  for (const c of shown) {
    const item = document.createElement("li");
    item.className = c === call ? "current" : "";
    const text = document.createElement("span");
    text.textContent = `${party(c)}: ${stateText(c)}`;
    item.append(text);
    if (c !== call) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "small";
      button.textContent = "Switch";
      button.setAttribute("aria-label", `Switch to the call with ${party(c)}`);
      button.addEventListener("click", () => switchTo(c));
      item.append(button);
    } else {
      const mark = document.createElement("small");
      mark.textContent = "current";
      item.append(mark);
    }
    list.append(item);
  }
}

// Ringtone, call-waiting beep or ringback; the title and favicon while a call rings here.
function ringAlerts() {
  const audible = ringing.filter((c) => !c.ignored);
  const busy = calls.some((c) => talking(c) || ["calling", "ringing", "early", "answering"].includes(c.state));
  if (audible.length) tones.play(busy ? "waiting" : "ringtone");
  else if (live(call) && call.state === "ringing") tones.play("ringback"); // not in "early": early media plays
  else tones.stop();
  const first = audible[0];
  document.title = first ? `Incoming call: ${party(first)} · ${TITLE}` : TITLE;
  $("favicon").href = first ? "/static/favicon-ringing.svg" : "/static/favicon.svg";
}

// --- notifications (with Answer / Reject buttons through the service worker, where permitted) -------
let worker = null;
async function setUpNotifications() {
  if (!("Notification" in window) || !("serviceWorker" in navigator)) return;
  try {
    worker = await navigator.serviceWorker.register("/static/sw.js", { scope: "/static/" });
  } catch { worker = null; }
  navigator.serviceWorker.addEventListener("message", (event) => {
    const { type, action, callId } = event.data || {};
    const target = ringing.find((c) => c.id === callId);
    if (type !== "notification" || !target) return;
    if (action === "answer") answer(target);
    else if (action === "reject") reject(target);
  });
}

function notify(incoming) {
  if (!worker || !("Notification" in window) || Notification.permission !== "granted") return;
  worker.showNotification("Incoming call", {
    body: party(incoming), tag: `call-${incoming.id}`, requireInteraction: true, data: { callId: incoming.id },
    icon: "/static/favicon-ringing.svg",
    actions: [{ action: "answer", title: "Answer" }, { action: "reject", title: "Reject" }],
  }).catch(() => {});
}

async function unnotify(incoming) {
  if (!worker) return;
  for (const shown of await worker.getNotifications({ tag: `call-${incoming.id}` })) shown.close();
}

// --- the call timer ---------------------------------------------------------------------------------
// Shown from `connected` (updated every second, on the second of the call), hidden and reset when the
// call ends, so that the state line never shows the last call's duration.
function tick() {
  const running = Boolean(call && call.state !== "ended" && call.connectedAt);
  const element = $("call-timer");
  element.hidden = !running;
  element.textContent = running ? formatDuration(Date.now() - call.connectedAt) : "";
}

function startTimer() {
  if (timer !== null || !call || !call.connectedAt) return;
  const started = call;
  tick();
  const delay = 1000 - ((Date.now() - started.connectedAt) % 1000);
  timer = setTimeout(() => {
    if (call !== started || timer === null) return;
    tick();
    timer = setInterval(tick, 1000);
  }, delay);
}

function stopTimer() {
  clearTimeout(timer);
  clearInterval(timer);
  timer = null;
  tick();
}

// --- meters and the speaker: always the current call's ----------------------------------------------
function meters(target) {
  for (const stop of stopMeters) stop();
  stopMeters = [];
  $("mic-level").value = 0;
  $("remote-level").value = 0;
  if (!live(target)) return;
  audioContext ||= tones.unlock();
  if (target.localStream) {
    stopMeters.push(levelMeter(target.localStream, (v) => { $("mic-level").value = v; }, { audioContext }));
  }
  video.show(target.remoteStream);
  if (target.remoteStream.getAudioTracks().length) {
    $("remote-audio").srcObject = target.remoteStream;
    audio.applySpeaker();
    stopMeters.push(levelMeter(target.remoteStream, (v) => { $("remote-level").value = v; }, { audioContext }));
  }
}

function focus(target) {
  call = target;
  stopTimer();
  if (live(target) && target.connectedAt) startTimer();
  $("transfer-status").hidden = true;
  meters(target);
  render();
}

function track(newCall) {
  if (!calls.includes(newCall)) calls.push(newCall);
  learn(newCall);
  chat.attach(newCall, party);
  rtt.attach(newCall);
  newCall.addEventListener("state", () => {
    render();
    if (call !== newCall) return;
    if (newCall.connectedAt && newCall.state !== "ended") startTimer();
    else tick();
  });
  newCall.addEventListener("hold", render);
  newCall.addEventListener("quality", render);
  newCall.addEventListener("recording", render);
  newCall.addEventListener("dtmf", (event) => {
    newCall.receivedDigits = ((newCall.receivedDigits || "") + event.detail.digit).slice(-32);
    render();
  });
  // the far end adds video mid-call: this page's camera goes into the answer when the toggle is on
  newCall.videoSource = () => (video.enabled ? video.openCamera() : null);
  newCall.addEventListener("video", (event) => {
    if (!event.detail.sending && call === newCall) video.unpreview();
    render();
  });
  newCall.addEventListener("track", () => { if (call === newCall) meters(newCall); });
  newCall.addEventListener("error", (event) => { if (call === newCall) showFailure(event.detail); });
  newCall.addEventListener("transfer", (event) => {
    const { state, sip_status: status } = event.detail;
    const box = $("transfer-status");
    box.hidden = false;
    box.textContent = (TRANSFER_TEXT[state] || state) + (state === "failed" && status ? ` (SIP ${status})` : "");
  });
  // The far end transfers this user (its REFER, blind or attended): call the target as a desk phone
  // does; the far end hears how it goes and hangs up once it is answered.
  newCall.addEventListener("transfer_requested", async (event) => {
    const box = $("transfer-status");
    box.hidden = false;
    box.textContent = `Transferred: calling ${event.detail.to}…`;
    newCall.transferring = true; // its end (the far end hangs up once the new call is answered) is no error
    try {
      const next = await client.call(event.detail.to, { stream: await audio.stream(), transferOf: newCall.id });
      next.startedAt = Date.now();
      track(next);
      focus(next);
    } catch (error) {
      newCall.transferring = false;
      showFailure(error);
    }
  });
  newCall.addEventListener("ended", (event) => {
    const { reason, message, sip_status: status } = event.detail;
    record(newCall, reason);
    if (newCall.localStream?.getVideoTracks().length || newCall.remoteStream.getVideoTracks().length) {
      video.stop(newCall.localStream); // the camera goes off, the far end's picture too
    }
    // a call that only rang here ends quietly (it is in the history: missed, answered elsewhere...)
    const rangOnly = newCall.direction === "inbound" && !newCall.answeredHere;
    const quiet = ["hangup", "transferred"].includes(reason) || newCall.transferring || rangOnly;
    if (!quiet && (call === newCall || !live(call))) {
      const suffix = status ? ` (SIP ${status})` : "";
      const text = (END_REASONS[reason] || message || `Call ended: ${reason}`) + suffix;
      if (NEUTRAL_ENDS.includes(reason)) showNotice(END_REASONS[reason]);
      else showError(text, HINTS[reason] || "");
    }
    calls = calls.filter((c) => c !== newCall);
    if (call === newCall) {
      stopTimer();
      // another call of the page becomes the current one (held: the user resumes it)
      const next = calls.find((c) => live(c) && c.state !== "incoming" && c !== waiting) || null;
      if (next) focus(next);
      else meters(null);
    }
    render();
  });
}

// The call history: one entry per call, when it ends.
function record(c, reason) {
  if (!history || c.recorded) return;
  c.recorded = true;
  const inbound = c.direction === "inbound";
  let outcome = "answered";
  if (!c.connectedAt) {
    // answered on another device: this page never knew how long it lasted, so it says where it went
    if (inbound) outcome = c.rejectedHere ? "rejected" : reason === "answered_elsewhere" ? "elsewhere" : "missed";
    else outcome = reason === "hangup" || reason === "cancelled" ? "cancelled" : "failed";
  }
  const { number, name } = whoIs(c);
  history.add({
    direction: inbound ? "in" : "out",
    number,
    name,
    dial: inbound ? number : c.remote?.uri || number, // what "Call back" dials: what was dialled
    at: c.startedAt || Date.now(),
    duration: c.connectedAt ? Math.round((Date.now() - c.connectedAt) / 1000) : 0,
    outcome,
  });
  showHistory();
}

function showHistory() {
  if (!history) return;
  // entries of older versions hold a SIP URI as their number
  const describe = (entry) => partyLabel(nameFor(entry.number, entry.name));
  renderHistory($("history"), history, (number) => dialNumber(number), describe);
  const missed = history.missed;
  $("missed-badge").hidden = !missed;
  $("missed-badge").textContent = missed ? `${missed} missed` : "";
}

function showContacts() {
  renderContacts($("contacts"), contacts, (number) => dialNumber(number));
  lamps.render(); // the colleagues' names come from the directory
}

async function refreshContacts() {
  if (!client.token) return;
  try {
    contacts = await fetchContacts(client.token);
    showContacts();
    showHistory(); // names from the directory
    render();
    $("contacts-panel").hidden = false;
  } catch {
    // contacts are a convenience: calls work without them
  }
}

async function login(credentials) {
  clearError();
  setStatus("connecting", "Connecting…");
  $("login-button").disabled = true;
  try {
    const info = await client.login(credentials);
    sessionStorage.setItem(TOKEN_KEY, info.token);
  } catch (error) {
    setStatus("offline", "Offline");
    if (!credentials.token) showFailure(error);
    else if (error.code === "unauthorized") showLogin(); // a saved session that ended: log in again
    else showFailure(error); // gateway unreachable: keep the saved session for a retry
  } finally {
    $("login-button").disabled = false;
  }
}

client.addEventListener("registered", (event) => {
  const info = event.detail;
  sessionStorage.setItem(TOKEN_KEY, info.token); // a reconnect's login gets a fresh token too
  setStatus("registered", `Registered as ${info.display_name}`);
  $("identity").textContent = `${info.display_name} · ${info.sip}`;
  video.setAvailable(info.video);
  $("login-panel").hidden = true;
  for (const id of ["phone-panel", "history-panel", "audio-panel"]) $(id).hidden = false;
  clearError();
  history = new History(info.user || info.sip);
  showHistory();
  refreshContacts(); // then kept current by `presence` events (no polling)
  audio.list().catch(() => {});
  render();
  $("number").focus();
});
client.addEventListener("disconnected", () => {
  if (!client.info) return;
  setStatus("connecting", "Reconnecting…");
  render();
});
client.addEventListener("error", (event) => showFailure(event.detail));
client.addEventListener("presence", (event) => {
  // a contact came online (her first session) or went offline (her last)
  const { user, online } = event.detail;
  const contact = contacts.find((c) => c.id === user);
  if (!contact) return void refreshContacts(); // one we did not list yet
  contact.online = online;
  showContacts();
});
client.addEventListener("pbx", (event) => {
  $("pbx-status").hidden = event.detail.state !== "unreachable"; // said before the user dials
});
function showLogin() {
  sessionStorage.removeItem(TOKEN_KEY);
  setStatus("offline", "Offline");
  contacts = [];
  learned.clear(); // the next user's callers are not this one's
  lamps.clear();
  tones.stop();
  ringing = [];
  render();
  for (const id of ["phone-panel", "history-panel", "audio-panel", "contacts-panel"]) $(id).hidden = true;
  $("login-panel").hidden = false;
}
client.addEventListener("logout", () => { clearError(); showLogin(); });
// the gateway refused the saved session on a reconnect (expired, or ended by a logout elsewhere):
// back to the login form, never stuck on "Reconnecting…"
client.addEventListener("session_ended", () => {
  showLogin();
  showError(MESSAGES.session_ended);
  $("login-user").focus();
});
// After a reload (or a reconnect) the gateway gives back the calls it kept for this login: show every one
// again, each with who holds it; its audio comes back on a new RTCPeerConnection (webrtc-client.js takes
// it back by itself). The current call is the one the user was talking in (the one not on hold here), as
// before the reload; the others are in the list of calls.
client.addEventListener("reattach", (event) => {
  const kept = event.detail.call;
  if (calls.includes(kept)) return;
  kept.answeredHere = true; // its end is news, as for any call of this page
  track(kept);
  if (!live(call) || call === kept || (call.localHold && !kept.localHold)) focus(kept);
  else render();
  kept.addEventListener("state", function metered() {
    if (kept.state !== "connected" && kept.state !== "held") return;
    kept.removeEventListener("state", metered);
    if (call === kept) meters(kept); // its new microphone stream
  });
});
// "Leave page?" only while a call is up: a reload then keeps it (web_auth.reconnect_grace), but closing
// the tab ends it once the grace is over.
window.addEventListener("beforeunload", (event) => {
  if (!calls.some(live) && !live(call)) return;
  event.preventDefault();
  event.returnValue = "";
});
// A call for this user. Busy or not, it rings (call waiting): never refused here, so that the user's
// other sessions go on ringing until one answers or the caller gives up.
client.addEventListener("incoming", (event) => {
  const incoming = event.detail.call;
  incoming.startedAt = Date.now();
  ringing.push(incoming);
  track(incoming);
  notify(incoming);
  incoming.addEventListener("ended", () => { unnotify(incoming); render(); });
  incoming.addEventListener("state", () => { if (incoming.state !== "incoming") unnotify(incoming); });
  render();
});

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  tones.unlock(); // a user gesture: sounds may play from now on
  if ("Notification" in window && Notification.permission === "default") {
    Notification.requestPermission().catch(() => {});
  }
  const user = $("login-user").value.trim();
  const secret = $("login-secret").value;
  if (!user || !secret) {
    showError("Enter your user id and secret.");
    return;
  }
  login({ user, secret });
});
// The form is handled from here on: index.html ships its button disabled, so nothing is submitted (a GET
// with the secret in the URL) before this script runs.
$("login-button").disabled = false;

$("logout-button").addEventListener("click", () => { clearError(); client.logout(); });
$("error-close").addEventListener("click", clearError);

// Keys typed on the page (outside a text field) work like the dial pad.
document.addEventListener("keydown", (event) => {
  const field = event.target.closest?.("input, select, textarea, button, summary");
  if (field || event.ctrlKey || event.metaKey || event.altKey || $("phone-panel").hidden) return;
  if (/^[0-9*#]$/.test(event.key)) {
    pressKey(event.key);
    event.preventDefault();
  }
});

function pressKey(key) {
  if (call && ["connected", "held", "early"].includes(call.state)) {
    call.sendDtmf(key).catch((error) => showFailure(error));
    call.sentDigits = (call.sentDigits || "") + key; // feedback: every digit sent in this call
    render();
  } else {
    $("number").value += key;
  }
}

$("dialpad").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-key]");
  if (button) pressKey(button.dataset.key);
});

async function dialNumber(number) {
  $("number").value = number;
  await dial();
}

async function dial() {
  tones.unlock();
  const to = $("number").value.trim();
  if (!to) {
    showError("Enter a number or SIP address to call.", "Or pick a contact or a recent call below.");
    return;
  }
  clearError();
  $("call-button").disabled = true;
  try {
    if (talking(call) && !call.localHold) await call.hold(); // the call goes on hold for the new one
    const stream = await video.addTo(await audio.stream());
    const placed = await client.call(to, { stream, text: rtt.wanted });
    placed.startedAt = Date.now();
    track(placed);
    focus(placed);
  } catch (error) {
    showFailure(error);
  } finally {
    render();
  }
}

$("call-button").addEventListener("click", dial);
$("number").addEventListener("keydown", (event) => { if (event.key === "Enter") dial(); });
$("hangup-button").addEventListener("click", () => {
  clearError();
  call?.hangup().catch((error) => showFailure(error));
});
$("mute-button").addEventListener("click", () => { call?.mute(!call.muted); render(); });
$("transfer-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const to = $("transfer-to").value.trim();
  if (!call || !to) return;
  call.transfer(to).catch((error) => showFailure(error));
});
// Attended transfer: hold this call, call the number in "Transfer to" (the consultation), then either
// complete (the held call's far end calls the consulted party in our place) or go back to the first call.
$("consult-button").addEventListener("click", async () => {
  const to = $("transfer-to").value.trim();
  const first = call;
  if (!first || !to) {
    if (!to) showError("Enter the number to consult in \"Transfer to\".");
    return;
  }
  clearError();
  try {
    if (!first.localHold) await first.hold();
    waiting = first;
    const consultation = await client.call(to, { stream: await audio.stream() });
    consultation.startedAt = Date.now();
    consultation.addEventListener("ended", () => {
      if (waiting && waiting.state !== "ended") backToFirst();
    });
    first.addEventListener("ended", () => { if (waiting === first) { waiting = null; render(); } });
    track(consultation);
    focus(consultation);
  } catch (error) {
    waiting = null;
    showFailure(error);
    render();
  }
});

function backToFirst() {
  const first = waiting;
  waiting = null;
  if (!first || first.state === "ended") return;
  focus(first);
}

$("complete-transfer-button").addEventListener("click", () => {
  const first = waiting;
  if (!first || !call || call === first) return;
  const box = $("transfer-status");
  box.hidden = false;
  box.textContent = TRANSFER_TEXT.requested;
  call.transferring = true; // its end (the consulted party hangs up on the gateway) is no error
  first.attendedTransfer(call).catch((error) => {
    call.transferring = false;
    showFailure(error);
  });
});
$("back-button").addEventListener("click", () => {
  const consultation = call;
  consultation?.hangup().catch((error) => showFailure(error));
});
$("video-button").addEventListener("click", toggleVideo);
$("merge-button").addEventListener("click", () => {
  const held = heldForMerge();
  if (!call || !held) return;
  clearError();
  client.merge(call, held).catch((error) => showFailure(error));
});
// the current call carries the mix; when it leaves the conference, the call left goes on on its own audio
client.addEventListener("merged", render);
client.addEventListener("split", (event) => {
  const { call_id: gone, call_ids: rest, over } = event.detail;
  const other = over ? calls.find((c) => rest.includes(c.id) && live(c)) : null;
  if (other && call && call.id === gone) focus(other);
  else render();
});
$("record-button").addEventListener("click", () => {
  const state = call?.recording?.state;
  if (!call) return;
  call.record(state === "recording" || state === "paused" ? "stop" : "start").catch((error) => showFailure(error));
});
$("record-pause-button").addEventListener("click", () => {
  if (!call) return;
  call.record(call.recording?.state === "paused" ? "resume" : "pause").catch((error) => showFailure(error));
});
$("hold-button").addEventListener("click", () => {
  if (!call) return;
  (call.localHold ? call.resume() : call.hold()).catch((error) => showFailure(error));
});

// Switch: the current call goes on hold, the chosen one is resumed.
async function switchTo(target) {
  clearError();
  try {
    if (talking(call) && !call.localHold && call !== target) await call.hold();
    focus(target);
    if (target.localHold) await target.resume();
  } catch (error) {
    showFailure(error);
  }
}

async function answer(incoming) {
  clearError();
  tones.unlock();
  ringing = ringing.filter((c) => c !== incoming);
  incoming.answeredHere = true;
  try {
    if (talking(call) && !call.localHold && call !== incoming) await call.hold(); // answer-and-hold
    focus(incoming);
    await incoming.answer({ stream: await video.addTo(await audio.stream()) });
    meters(incoming);
  } catch (error) {
    showFailure(error);
  }
  render();
}

function reject(incoming) {
  clearError();
  ringing = ringing.filter((c) => c !== incoming);
  incoming.rejectedHere = true;
  render();
  incoming.reject(603).catch((error) => showFailure(error));
}

const shownRinging = () => ringing.find((c) => !c.ignored);
$("answer-button").addEventListener("click", () => { const c = shownRinging(); if (c) answer(c); });
$("reject-button").addEventListener("click", () => { const c = shownRinging(); if (c) reject(c); });
// Ignore: silence it here; it rings on elsewhere until answered or the caller gives up (then "missed")
$("ignore-button").addEventListener("click", () => {
  const c = shownRinging();
  if (!c) return;
  c.ignored = true;
  unnotify(c);
  render();
});
$("history-clear").addEventListener("click", () => { history?.clear(); showHistory(); });
$("history-panel").addEventListener("focusin", () => { history?.markSeen(); });

setUpNotifications();
render();
const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) login({ token: saved });
