// The rooms demo (GET /webrtc/client): browsers in one room talk peer to peer; the gateway only relays
// offer / answer / ice_candidate between them (docs/signaling.md "Rooms"). Each newcomer offers to the
// peers already in the room (existing_peers), so two peers never offer to each other at once. Every
// connection carries the microphone (and the camera when asked) and a data channel "chat".
// A phone can be called into the room ("Call in": {type: "dial", to}); the gateway then joins as the peer
// "gateway", which this page connects to like any peer, and mixes the phone's audio (sip_party events).
// A socket lost (a network change, the gateway instance gone) is opened again by itself: the page's
// connections go on meanwhile. Back within rooms.rejoin_grace it takes its place again (`joined` with
// `resumed`); else (another instance, the room made again there) it offers to the peers it has no live
// connection with, and always to the gateway's peer (its legs died with their instance).
// For tests the page keeps its state on window.roomDemo: {peers: Map(peerId -> {pc, channel, stream}),
// parties: Map(callId -> {remote, state}), reconnects}.

const $ = (id) => document.getElementById(id);
const state = {
  ws: null, me: null, room: null, url: null, user: null, secret: null, iceServers: [], local: null,
  peers: new Map(), parties: new Map(), reconnects: 0, tries: 0, lostAt: 0,
};
const GATEWAY_PEER = "gateway";
const RETRY_DELAYS = [250, 500, 1000, 2000, 3000]; // ms between tries to open a lost socket again (then 5 s)
const RETRY_FOR = 60000; // ms of tries before the page gives up
// closes the gateway means: the page left (1000, 1001), a refused login or join (4001, 4008, 4009), another
// socket of this peer took its place (4010), a policy (1008); any other close is a lost socket
const FINAL_CLOSES = new Set([1000, 1001, 1008, 4001, 4008, 4009, 4010]);
window.roomDemo = state;

function setStatus(text, kind) {
  $("status").textContent = text;
  $("status").dataset.state = kind;
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

function send(message) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(message));
}

function chatLine(from, text) {
  const item = document.createElement("li");
  item.textContent = `${from}: ${text}`;
  item.dataset.from = from;
  $("chat-log").append(item);
}

function renderPeers() {
  const list = $("peers");
  list.replaceChildren();
  for (const [peerId, peer] of state.peers) {
    const item = document.createElement("li");
    item.dataset.peer = peerId;
    item.textContent = `${peerId} · ${peer.pc.connectionState}`;
    list.append(item);
  }
}

function wireChannel(peerId, channel) {
  const peer = state.peers.get(peerId);
  if (peer) peer.channel = channel;
  channel.addEventListener("message", (event) => chatLine(peerId, String(event.data)));
  channel.addEventListener("open", renderPeers);
}

function peerConnection(peerId) {
  let peer = state.peers.get(peerId);
  if (peer) return peer;
  const pc = new RTCPeerConnection({ iceServers: state.iceServers });
  peer = { pc, channel: null, stream: null, pending: [], element: null };
  state.peers.set(peerId, peer);
  for (const track of state.local.getTracks()) pc.addTrack(track, state.local);
  pc.addEventListener("icecandidate", (event) => {
    // null: the end of our candidates (the document's ice_candidate with candidate null)
    send({ type: "ice_candidate", candidate: event.candidate ? event.candidate.toJSON() : null, target_peer_id: peerId });
  });
  pc.addEventListener("connectionstatechange", renderPeers);
  pc.addEventListener("datachannel", (event) => wireChannel(peerId, event.channel));
  pc.addEventListener("track", (event) => {
    if (peer.element) return;
    peer.stream = event.streams[0] || new MediaStream([event.track]);
    const video = state.local.getVideoTracks().length > 0 || event.track.kind === "video";
    const element = document.createElement(video ? "video" : "audio");
    element.id = `remote-${peerId}`;
    element.autoplay = true;
    element.playsInline = true;
    element.srcObject = peer.stream;
    peer.element = element;
    $("media").append(element);
  });
  renderPeers();
  return peer;
}

async function drain(peer) {
  for (const candidate of peer.pending.splice(0)) await peer.pc.addIceCandidate(candidate);
}

async function offerTo(peerId) {
  const peer = peerConnection(peerId);
  wireChannel(peerId, peer.pc.createDataChannel("chat"));
  await peer.pc.setLocalDescription(await peer.pc.createOffer());
  send({ type: "offer", offer: peer.pc.localDescription.toJSON(), target_peer_id: peerId });
}

function fingerprint(description) {
  const found = description && /^a=fingerprint:(.*)$/m.exec(description.sdp);
  return found ? found[1].trim() : null;
}

async function onOffer(offer, from) {
  const known = state.peers.get(from);
  // an offer from another DTLS endpoint under a known peer id (the gateway's peer made again on another
  // instance, a browser that reloaded): a new connection, not a renegotiation of the old one
  if (known && known.pc.remoteDescription && fingerprint(known.pc.remoteDescription) !== fingerprint(offer)) dropPeer(from);
  const peer = peerConnection(from);
  await peer.pc.setRemoteDescription(offer);
  await drain(peer);
  await peer.pc.setLocalDescription(await peer.pc.createAnswer());
  send({ type: "answer", answer: peer.pc.localDescription.toJSON(), target_peer_id: from });
}

async function onAnswer(answer, from) {
  const peer = state.peers.get(from);
  if (!peer) return;
  await peer.pc.setRemoteDescription(answer);
  await drain(peer);
}

async function onCandidate(candidate, from) {
  const peer = state.peers.get(from);
  if (!peer) return;
  const init = candidate || {}; // null: the end of the far side's candidates
  if (peer.pc.remoteDescription) await peer.pc.addIceCandidate(init);
  else peer.pending.push(init);
}

function dropPeer(peerId) {
  const peer = state.peers.get(peerId);
  if (!peer) return;
  peer.pc.close();
  if (peer.element) peer.element.remove();
  state.peers.delete(peerId);
  renderPeers();
}

function renderParties() {
  const list = $("sip-parties");
  list.replaceChildren();
  for (const [callId, party] of state.parties) {
    const item = document.createElement("li");
    item.dataset.call = callId;
    item.dataset.state = party.state;
    item.textContent = `${party.remote} · ${party.state}${party.reason ? ` (${party.reason})` : ""} `;
    if (party.state !== "ended") {
      const hangup = document.createElement("button");
      hangup.type = "button";
      hangup.className = "link";
      hangup.textContent = "Hang up";
      hangup.addEventListener("click", () => send({ type: "hangup", call_id: callId }));
      item.append(hangup);
    }
    list.append(item);
  }
}

async function handle(message) {
  switch (message.type) {
    case "joined":
      state.lostAt = 0;
      state.tries = 0;
      state.iceServers = message.ice_servers || [];
      $("identity").textContent = `Room ${message.room_id} as ${message.peer_id} (${message.user})`
        + (message.owner ? `, owner ${message.owner}` : "");
      if (!message.resumed && !state.reconnects) for (const watcher of message.watchers || []) chatLine("room", `${watcher.user} is listening`);
      setStatus("In the room", "registered");
      $("join-panel").hidden = true;
      $("room-panel").hidden = false;
      break;
    case "existing_peers":
      for (const peerId of message.peers) {
        const known = state.peers.get(peerId);
        // back after a lost socket: connections that go on are kept (browser to browser), the rest made again
        if (known && peerId !== GATEWAY_PEER && known.pc.connectionState === "connected") continue;
        if (known) dropPeer(peerId);
        await offerTo(peerId);
      }
      break;
    case "peer_joined":
      renderPeers(); // it offers to us
      chatLine("room", `${message.peer_id} joined`);
      break;
    case "peer_left":
      dropPeer(message.peer_id);
      chatLine("room", `${message.peer_id} left`);
      break;
    case "offer":
      await onOffer(message.offer, message.from_peer_id);
      break;
    case "answer":
      await onAnswer(message.answer, message.from_peer_id);
      break;
    case "ice_candidate":
      await onCandidate(message.candidate, message.from_peer_id);
      break;
    case "dialing":
      if (!state.parties.has(message.call_id)) state.parties.set(message.call_id, { remote: message.to, state: "calling" });
      renderParties();
      break;
    case "sip_party":
      state.parties.set(message.call_id, { remote: message.remote, state: message.state, reason: message.reason });
      renderParties();
      break;
    case "watcher_joined":
      chatLine("room", `${message.user} is listening`);
      break;
    case "watcher_left":
      chatLine("room", `${message.user} stopped listening`);
      break;
    case "error":
      showError(`${message.code}: ${message.message}`);
      break;
    default:
      break;
  }
}

async function connect(event) {
  event.preventDefault();
  showError("");
  const room = $("room-id").value.trim();
  const peerId = $("peer-id").value.trim();
  const user = $("user-id").value.trim();
  const secret = $("user-secret").value;
  if (!room || !peerId) {
    showError("Room ID and Peer ID are needed");
    return;
  }
  try {
    state.local = await navigator.mediaDevices.getUserMedia({ audio: true, video: $("with-video").checked });
  } catch (error) {
    showError(`No microphone: ${error.message}`);
    return;
  }
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const page = new URLSearchParams(location.search); // ?token= or ?api_key= go on to the socket
  const query = new URLSearchParams();
  for (const name of ["token", "api_key"]) if (page.get(name)) query.set(name, page.get(name));
  const suffix = query.toString() ? `?${query}` : "";
  state.url = `${scheme}//${location.host}/webrtc/signaling/${encodeURIComponent(room)}/${encodeURIComponent(peerId)}${suffix}`;
  setStatus("Connecting", "connecting");
  state.me = peerId;
  state.room = room;
  state.user = user;
  state.secret = secret;
  openSocket();
}

function openSocket() {
  const ws = new WebSocket(state.url);
  state.ws = ws;
  let queue = Promise.resolve();
  ws.addEventListener("open", () => {
    if (state.user) send({ type: "login", user: state.user, secret: state.secret });
  });
  ws.addEventListener("message", (message) => {
    const parsed = JSON.parse(message.data);
    queue = queue.then(() => handle(parsed)).catch((error) => showError(String(error)));
  });
  ws.addEventListener("close", (close) => {
    if (state.ws !== ws) return; // (a socket the page gave up already)
    const lost = !FINAL_CLOSES.has(close.code) && state.room !== null;
    if (lost && reconnect()) return;
    setStatus(close.code === 1000 ? "Offline" : `Closed (${close.code})`, "offline");
    for (const peerId of [...state.peers.keys()]) dropPeer(peerId);
    state.room = null;
    $("join-panel").hidden = false;
    $("room-panel").hidden = true;
  });
}

// A lost socket: opened again after a pause, its connections kept meanwhile; false once RETRY_FOR is over.
function reconnect() {
  const now = Date.now();
  if (!state.lostAt) state.lostAt = now;
  if (now - state.lostAt > RETRY_FOR) return false;
  const delay = state.tries < RETRY_DELAYS.length ? RETRY_DELAYS[state.tries] : 5000;
  state.tries += 1;
  state.reconnects += 1;
  setStatus("Reconnecting", "connecting");
  setTimeout(openSocket, delay);
  return true;
}

function leave() {
  state.room = null;
  if (state.ws) state.ws.close(1000);
  if (state.local) for (const track of state.local.getTracks()) track.stop();
}

function sendChat(event) {
  event.preventDefault();
  const text = $("chat-text").value;
  if (!text) return;
  for (const peer of state.peers.values()) {
    if (peer.channel && peer.channel.readyState === "open") peer.channel.send(text);
  }
  chatLine(state.me, text);
  $("chat-text").value = "";
}

function dial(event) {
  event.preventDefault();
  const to = $("dial-to").value.trim();
  if (!to) return;
  showError("");
  send({ type: "dial", to });
  $("dial-to").value = "";
}

$("join-form").addEventListener("submit", connect);
$("dial-form").addEventListener("submit", dial);
$("leave-button").addEventListener("click", leave);
$("chat-form").addEventListener("submit", sendChat);
// room.html ships the forms' buttons disabled until they are handled here
for (const id of ["connect-button", "chat-button", "dial-button"]) $(id).disabled = false;
$("peer-id").value = `peer-${Math.random().toString(36).slice(2, 8)}`;
