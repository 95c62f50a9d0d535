// The softphone page: login, dial pad, calls, DTMF, mute, hold, level meters. Uses webrtc-client.js.
import { GatewayClient, levelMeter } from "/static/webrtc-client.js";

const $ = (id) => document.getElementById(id);
const client = new GatewayClient();
const TOKEN_KEY = "gateway.session-token";
let call = null; // the current call
let waiting = null; // attended transfer: the held call to transfer, while `call` is the consultation
let ringing = null; // an incoming call not answered yet
let audioContext = null;
let stopMeters = [];
let timer = null;

const MESSAGES = {
  unauthorized: "Wrong user id or secret.",
  session_ended: "Your session has ended. Please log in again.",
  login_timeout: "The gateway closed the connection: log in took too long.",
  too_many_sessions: "You are logged in on too many devices or tabs. Close one and try again.",
  network: "Cannot reach the gateway. Check your network connection and try again.",
  forbidden: "You are not allowed to call this number.",
  not_found: "That call no longer exists.",
  rate_limited: "Too many actions at once. Please wait a moment.",
  NotAllowedError: "Microphone access was denied. Allow the microphone in your browser and try again.",
  NotFoundError: "No microphone was found.",
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
};

const TRANSFER_TEXT = {
  requested: "Transferring…", accepted: "Transfer accepted…", progress: "Transfer target ringing…",
  succeeded: "Transferred.", failed: "Transfer failed: the call goes on.",
};

function readable(error) {
  const text = MESSAGES[error.code] || MESSAGES[error.name];
  if (text && error.code === "forbidden" && error.message) return `${text} (${error.message})`;
  return text || error.message || String(error);
}

function showError(text) {
  const box = $("error");
  box.textContent = text;
  box.hidden = !text;
}

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

function render() {
  const active = call && call.state !== "ended";
  const inCall = active && ["connected", "held"].includes(call.state);
  $("call-button").disabled = Boolean(active) || !client.connected;
  $("hangup-button").disabled = !active;
  $("mute-button").disabled = !inCall;
  $("hold-button").disabled = !inCall;
  const consulting = Boolean(waiting && waiting.state !== "ended" && active && call !== waiting);
  $("transfer-to").disabled = !inCall || consulting;
  $("transfer-button").disabled = !inCall || consulting;
  $("consult-button").disabled = !inCall || consulting;
  $("consult").hidden = !consulting;
  if (consulting) {
    $("consult-text").textContent = `Consulting ${call.remote?.uri || ""}; ${waiting.remote?.uri || "the first call"} is on hold.`;
    $("complete-transfer-button").disabled = call.state !== "connected" && call.state !== "held";
  }
  $("mute-button").setAttribute("aria-pressed", String(Boolean(active && call.muted)));
  $("mute-button").textContent = active && call.muted ? "Unmute" : "Mute";
  const held = active && call.state === "held";
  $("hold-button").setAttribute("aria-pressed", String(Boolean(held)));
  $("hold-button").textContent = held ? "Resume" : "Hold";
  $("call-state").textContent = active ? STATE_TEXT[call.state] || call.state : "No call";
  $("incoming").hidden = !ringing;
  if (ringing) {
    const party = ringing.asserted || { uri: ringing.remote.uri, display_name: ringing.remote.displayName };
    const who = party.display_name ? `${party.display_name} (${party.uri})` : party.uri;
    const via = ringing.divertedFrom.length ? `, forwarded from ${ringing.divertedFrom[0].uri}` : "";
    $("incoming-text").textContent = `Incoming call from ${who}${via}`;
  }
}

// The call timer: shown from `connected` (updated every second, on the second of the call), hidden and
// reset when the call ends, so that the state line never shows the last call's duration.
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
  // Align the updates with the call's seconds: the first one when the first second has passed.
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

function micMeter(target) {
  if (!target.localStream) return;
  audioContext ||= new AudioContext();
  audioContext.resume().catch(() => {});
  stopMeters.push(levelMeter(target.localStream, (v) => { $("mic-level").value = v; }, { audioContext }));
}

function meters(target) {
  micMeter(target);
  target.addEventListener("track", (event) => {
    audioContext ||= new AudioContext();
    $("remote-audio").srcObject = event.detail.stream;
    stopMeters.push(levelMeter(event.detail.stream, (v) => { $("remote-level").value = v; }, { audioContext }));
  });
}

function adopt(newCall) {
  call = newCall;
  call.addEventListener("state", () => {
    render();
    if (call !== newCall) return;
    if (newCall.connectedAt && newCall.state !== "ended") startTimer();
    else tick();
  });
  call.addEventListener("error", (event) => showError(readable(event.detail)));
  call.addEventListener("transfer", (event) => {
    const { state, sip_status: status } = event.detail;
    const box = $("transfer-status");
    box.hidden = false;
    box.textContent = (TRANSFER_TEXT[state] || state) + (state === "failed" && status ? ` (SIP ${status})` : "");
  });
  call.addEventListener("ended", (event) => {
    const { reason, message, sip_status: status } = event.detail;
    if (reason !== "hangup" && reason !== "transferred" && !newCall.transferring) {
      const suffix = status ? ` (SIP ${status})` : "";
      showError((END_REASONS[reason] || message || `Call ended: ${reason}`) + suffix);
    }
    for (const stop of stopMeters) stop();
    stopMeters = [];
    $("mic-level").value = 0;
    $("remote-level").value = 0;
    if (call === newCall) stopTimer();
    render();
  });
  stopTimer();
  $("transfer-status").hidden = true;
  $("transfer-to").value = "";
  meters(call);
  render();
}

async function login(credentials) {
  showError("");
  setStatus("connecting", "Connecting…");
  $("login-button").disabled = true;
  try {
    const info = await client.login(credentials);
    sessionStorage.setItem(TOKEN_KEY, info.token);
  } catch (error) {
    setStatus("offline", "Offline");
    if (!credentials.token) showError(readable(error));
    else if (error.code === "unauthorized") showLogin(); // a saved session that ended: log in again
    else showError(readable(error)); // gateway unreachable: keep the saved session for a retry
  } finally {
    $("login-button").disabled = false;
  }
}

client.addEventListener("registered", (event) => {
  const info = event.detail;
  sessionStorage.setItem(TOKEN_KEY, info.token); // a reconnect's login gets a fresh token too
  setStatus("registered", `Registered as ${info.display_name}`);
  $("identity").textContent = `${info.display_name} · ${info.sip}`;
  $("login-panel").hidden = true;
  $("phone-panel").hidden = false;
  showError("");
  render();
  $("number").focus();
});
client.addEventListener("disconnected", () => {
  if (!client.info) return;
  setStatus("connecting", "Reconnecting…");
  render();
});
client.addEventListener("error", (event) => showError(readable(event.detail)));
client.addEventListener("pbx", (event) => {
  $("pbx-status").hidden = event.detail.state !== "unreachable"; // said before the user dials
});
function showLogin() {
  sessionStorage.removeItem(TOKEN_KEY);
  setStatus("offline", "Offline");
  $("phone-panel").hidden = true;
  $("login-panel").hidden = false;
}
client.addEventListener("logout", showLogin);
// the gateway refused the saved session on a reconnect (expired, or ended by a logout elsewhere):
// back to the login form, never stuck on "Reconnecting…"
client.addEventListener("session_ended", () => {
  showLogin();
  showError(MESSAGES.session_ended);
  $("login-user").focus();
});
// After a reload (or a reconnect) the gateway gives back the calls it kept for this login: show the call
// again; its audio comes back on a new RTCPeerConnection (webrtc-client.js takes it back by itself).
client.addEventListener("reattach", (event) => {
  const kept = event.detail.call;
  if (call && call.state !== "ended" && call !== kept) return; // this page shows one call; others wait
  adopt(kept);
  kept.addEventListener("state", function metered() {
    if (kept.state !== "connected" && kept.state !== "held") return;
    kept.removeEventListener("state", metered);
    micMeter(kept);
  });
});
// "Leave page?" only while a call is up: a reload then keeps it (web_auth.reconnect_grace), but closing
// the tab ends it once the grace is over.
window.addEventListener("beforeunload", (event) => {
  if (!call || call.state === "ended") return;
  event.preventDefault();
  event.returnValue = "";
});
client.addEventListener("incoming", (event) => {
  const incoming = event.detail.call;
  if (call && call.state !== "ended") {
    incoming.reject(486).catch(() => {}); // busy: this page holds one call at a time
    return;
  }
  ringing = incoming;
  incoming.addEventListener("ended", () => { if (ringing === incoming) { ringing = null; render(); } });
  render();
});

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const user = $("login-user").value.trim();
  const secret = $("login-secret").value;
  if (!user || !secret) {
    showError("Enter your user id and secret.");
    return;
  }
  login({ user, secret });
});

$("logout-button").addEventListener("click", () => client.logout());

$("dialpad").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-key]");
  if (!button) return;
  const key = button.dataset.key;
  if (call && ["connected", "held", "early"].includes(call.state)) {
    call.sendDtmf(key).catch((error) => showError(readable(error)));
  } else {
    $("number").value += key;
  }
});

async function dial() {
  const to = $("number").value.trim();
  if (!to) {
    showError("Enter a number or SIP address to call.");
    return;
  }
  showError("");
  $("call-button").disabled = true;
  try {
    adopt(await client.call(to));
  } catch (error) {
    showError(readable(error));
  } finally {
    render();
  }
}

$("call-button").addEventListener("click", dial);
$("number").addEventListener("keydown", (event) => { if (event.key === "Enter") dial(); });
$("hangup-button").addEventListener("click", () => {
  call?.hangup().catch((error) => showError(readable(error)));
});
$("mute-button").addEventListener("click", () => { call?.mute(!call.muted); render(); });
$("transfer-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const to = $("transfer-to").value.trim();
  if (!call || !to) return;
  call.transfer(to).catch((error) => showError(readable(error)));
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
  showError("");
  try {
    if (first.state !== "held") await first.hold();
    waiting = first;
    const consultation = await client.call(to);
    consultation.addEventListener("ended", () => {
      if (call === consultation && waiting && waiting.state !== "ended") backToFirst();
    });
    first.addEventListener("ended", () => { if (waiting === first) { waiting = null; render(); } });
    adopt(consultation);
  } catch (error) {
    waiting = null;
    showError(readable(error));
    render();
  }
});

function backToFirst() {
  const first = waiting;
  waiting = null;
  if (!first || first.state === "ended") return;
  adopt(first);
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
    showError(readable(error));
  });
});
$("back-button").addEventListener("click", () => {
  const consultation = call;
  consultation?.hangup().catch((error) => showError(readable(error)));
});
$("hold-button").addEventListener("click", () => {
  if (!call) return;
  (call.state === "held" ? call.resume() : call.hold()).catch((error) => showError(readable(error)));
});
$("answer-button").addEventListener("click", async () => {
  const incoming = ringing;
  ringing = null;
  if (!incoming) return;
  adopt(incoming);
  try {
    await incoming.answer();
    micMeter(incoming);
  } catch (error) {
    showError(readable(error));
  }
  render();
});
$("reject-button").addEventListener("click", () => {
  const incoming = ringing;
  ringing = null;
  render();
  incoming?.reject(603).catch((error) => showError(readable(error)));
});

render();
const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) login({ token: saved });
