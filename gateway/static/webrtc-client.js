// webrtc-client.js: a small browser client for the gateway's WebSocket signaling (docs/signaling.md).
//
// An ES module with no dependencies. Usage:
//
//   import { GatewayClient } from "/static/webrtc-client.js";
//   const client = new GatewayClient();                      // ws(s)://<this host>/ws by default
//   const me = await client.login({ user: "alice", secret: "..." });  // or { token }
//   client.addEventListener("incoming", (e) => e.detail.call.answer());
//   const call = await client.call("2000");                  // asks for the microphone
//   call.addEventListener("state", () => console.log(call.state));
//   call.sendDtmf("12#"); call.mute(true); await call.hold(); await call.resume(); await call.hangup();
//
// GatewayClient events: "registered" {detail: info}, "incoming" {detail: {call}}, "disconnected"
//   {detail: {code, reason}}, "reconnecting" {detail: {attempt, delay}}, "error" {detail: GatewayError}
//   (errors not tied to a request, e.g. the login timeout), "logout", "session_ended" {detail:
//   GatewayError} (a reconnect's token was refused: expired or revoked; log in again), "reattach"
//   {detail: {call}} (after a login with the saved token, e.g. on a reloaded page: a call of this login
//   that the gateway kept; the client is taking it back, docs/signaling.md `calls`).
// Three-way calls: `await client.merge(active, held)` mixes both calls in the gateway; "merged"
//   {detail: {conference_id, call_ids}} and "split" {detail: {conference_id, call_id, call_ids, reason,
//   over}} on the client, `call.conference` (the conference's id, or null); `await call.split()` takes a
//   call out again (held).
// Call events: "state" {detail: {state}}, "track" {detail: {stream}}, "ended" {detail: {reason,
//   message, sip_status}}, "dtmf" {detail: {digit, duration_ms}}, "error" {detail: GatewayError},
//   "hold" {detail: {local, remote}} (who holds the call: call.localHold, call.remoteHold), "video"
//   {detail: {sending}} (this page's camera went into the call or out of it mid-call).
// Video mid-call (docs/signaling.md "Video added or dropped mid-call"): `await call.addVideo(camera)`
//   offers the camera on the same RTCPeerConnection (true: the far end took it; false: it turned it
//   down; a GatewayError "renegotiation_failed": refused, rolled back), `await call.dropVideo()` stops it;
//   when the far end adds video, `call.videoSource` (a function giving a camera stream, or null) says
//   whether the answer sends this page's camera (without it the page only receives the picture).
// Call states: "calling", "ringing", "early", "incoming", "answering", "connected", "held",
//   "reconnecting" (its audio is being set up again after a disconnect or a network change), "ended".
//
// ICE candidates trickle both ways. After an unexpected disconnect (a gateway restart too: its session
// key is kept in its state directory) the client reconnects and logs in again with the session token
// from the last `registered`. Connected calls survive it (web_auth.reconnect_grace on the gateway): they
// go "reconnecting" and are taken back with a new RTCPeerConnection (`reattach`), or with the one they
// have when their media flows end to end (`end_to_end` in `calls`: the audio never stopped). A call whose
// RTCPeerConnection failed while the socket stayed up, or that was up when the browser went `offline`
// and came back `online` (a network change), restarts ICE on the same connection (`call.restartIce()`,
// reattached only if the gateway cannot restart it). Other calls end "disconnected". A call hung up while
// the socket is down ends here at once and is hung up at the gateway as soon as the socket is back (the
// gateway kept it for this login: taken back, it would come alive again); its id is kept in this tab's
// sessionStorage meanwhile, so a reload that logs in with the saved token hangs it up too. A call whose
// socket stays away for the gateway's whole reconnect grace (`reconnect_grace` in `registered`: every
// instance that could keep it is gone, or the network is) ends here "gateway_lost" and is hung up like one
// hung up while away; the client goes on reconnecting.

export class GatewayError extends Error {
  constructor(code, message, field = null, callId = null) {
    super(message);
    this.name = "GatewayError";
    this.code = code;
    this.field = field;
    this.callId = callId;
  }
}

function defaultUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

const HUNG_UP_KEY = "gateway.hung-up"; // sessionStorage: call_ids hung up while the socket was down

function storedHungUp() {
  try {
    const ids = JSON.parse(sessionStorage.getItem(HUNG_UP_KEY) || "[]");
    return Array.isArray(ids) ? ids.filter((id) => typeof id === "string") : [];
  } catch {
    return []; // no storage (a sandboxed frame), or not ours
  }
}

function emit(target, type, detail) {
  target.dispatchEvent(new CustomEvent(type, { detail }));
}

export class GatewayClient extends EventTarget {
  constructor({ url = defaultUrl(), reconnect = true, trickle = true } = {}) {
    super();
    this.url = url;
    this.reconnect = reconnect;
    this.trickle = trickle;
    this.info = null; // the last `registered` reply
    this.token = null;
    this.calls = new Map(); // call_id -> Call
    this._ws = null;
    this._nextId = 1;
    this._pending = new Map(); // request id -> {resolve, reject}
    this._closing = false;
    this._attempt = 0;
    this._probing = null; // a check of the socket under way (_checkLink)
    this._rtt = null; // the socket's smoothed round trip (ms): its login's, then its pings'
    this._heardAt = 0; // when the socket last brought a message (performance.now())
    this._probeDrops = []; // when checks dropped a socket, within PROBE_BACKOFF_MS
    this._early = new Map(); // call_id -> events that arrived before the reply that named the call
    this._hungUp = new Set(storedHungUp()); // call_ids hung up while the socket was down: told once back
    // The network came back (`online` after `offline`: Wi-Fi to wired, a tunnel): each call up restarts
    // ICE on its RTCPeerConnection (Call.restartIce), as when its connection goes "failed".
    this._offline = false;
    window.addEventListener("offline", () => { this._offline = true; });
    window.addEventListener("online", () => {
      if (!this._offline) return;
      this._offline = false;
      for (const call of this.calls.values()) call._networkChanged();
    });
  }

  get connected() {
    return this._ws !== null && this._ws.readyState === WebSocket.OPEN;
  }

  get iceServers() {
    return this.info ? this.info.ice_servers : [];
  }

  // Log in with {user, secret} or {token}; resolves with the `registered` reply, rejects with GatewayError.
  async login(credentials) {
    this._closing = false;
    await this._open();
    try {
      const sent = performance.now();
      const reply = await this.request({ type: "login", ...credentials });
      this._rtt = performance.now() - sent; // an upper bound: the login's own work is in it
      this._registered(reply);
      return reply;
    } catch (error) {
      this._closing = true;
      this._ws?.close(1000);
      throw error;
    }
  }

  _registered(reply) {
    this.info = reply;
    this.token = reply.token;
    this._attempt = 0;
    emit(this, "registered", reply);
  }

  _open() {
    if (this.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new WebSocket(this.url);
      } catch (error) {
        reject(new GatewayError("network", `cannot connect to ${this.url}: ${error.message}`));
        return;
      }
      this._ws = ws;
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new GatewayError("network", "cannot reach the gateway"));
      ws.onmessage = (event) => this._onMessage(event.data);
      ws.onclose = (event) => this._onClose(ws, event);
    });
  }

  // Send a request; resolves with its reply (`ack`, `registered`, `pong`), rejects with GatewayError.
  request(message) {
    if (!this.connected) {
      return Promise.reject(new GatewayError("network", "not connected to the gateway"));
    }
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      this._pending.set(id, { resolve, reject });
      this._ws.send(JSON.stringify({ ...message, id }));
    });
  }

  _onMessage(text) {
    this._heardAt = performance.now();
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    const pending = message.id != null ? this._pending.get(message.id) : undefined;
    if (pending) {
      this._pending.delete(message.id);
      if (message.type === "error") {
        pending.reject(new GatewayError(message.code, message.message, message.field, message.call_id));
      } else {
        pending.resolve(message);
      }
      return;
    }
    if (message.type === "incoming") {
      const call = new Call(this, message.call_id, "inbound");
      call.remote = { uri: message.from, displayName: message.display_name };
      // who the PBX asserts is calling (P-Asserted-Identity), where the call was diverted from (oldest
      // first) and the allow-listed custom headers (sip.pass_headers)
      call.asserted = message.asserted_identity || null;
      call.divertedFrom = message.diverted_from || [];
      call.headers = message.headers || {};
      call._offer = message.sdp || null;
      this.calls.set(call.id, call);
      call._setState("incoming");
      emit(this, "incoming", { call });
      return;
    }
    if (message.type === "merged" || message.type === "split") {
      this._conference(message);
      return;
    }
    const call = message.call_id ? this.calls.get(message.call_id) : undefined;
    if (call) {
      call._onEvent(message);
    } else if (message.type === "error" && !message.call_id) {
      emit(this, "error", new GatewayError(message.code, message.message, message.field));
    } else if (message.type === "sip_registration") {
      emit(this, "sip_registration", message); // the gateway's registration of this user at the PBX
    } else if (message.type === "calls") {
      this._takeBack(message.calls); // calls of this login the gateway kept (a reload, a reconnect)
    } else if (message.type === "pbx") {
      emit(this, "pbx", message); // the phone system answers the gateway's keep-alive, or not
    } else if (["presence", "contact_state", "voicemail"].includes(message.type)) {
      emit(this, message.type, message); // a contact online or offline; busy lamps, voicemail (lamps.js)
    } else if (message.call_id) {
      const early = this._early.get(message.call_id) || [];
      early.push(message);
      this._early.set(message.call_id, early.slice(-50));
      setTimeout(() => this._early.delete(message.call_id), 10000);
    }
  }

  // Three-way calls: `merged` {conference_id, call_ids} and `split` {conference_id, call_id, call_ids,
  // over}: each call's `conference` is the id of the conference it is in (null: none), then the client
  // emits the event as it came.
  _conference(message) {
    const merged = message.type === "merged";
    const leaving = merged ? message.call_ids : [message.call_id, ...(message.over ? message.call_ids : [])];
    for (const id of leaving) {
      const call = this.calls.get(id);
      if (call) call.conference = merged ? message.conference_id : null;
    }
    emit(this, message.type, message);
  }

  // Merge the active call and a held one into one conference mixed in the gateway (`merged` follows).
  merge(first, second) { return this.request({ type: "merge", call_ids: [first.id, second.id] }); }

  // A call heard nothing for a while, or its connection faltered: is the socket still there? A network
  // change (a new address: Wi-Fi to wired, a mobile handover) leaves the socket and the media dead without
  // a word: no FIN comes, and the browser's ICE says "disconnected" only seconds later. Two pings, each
  // given PROBE_MS or four of the socket's round trips: an answer to either, or any message from the
  // gateway meanwhile, and it lives. Neither: drop the socket and log in again (at once, unless checks
  // dropped several lately: then with the usual backoff); the gateway hands this login's calls to the new
  // socket (it takes over the old one's, whose death it cannot see either) and lists them in `calls`,
  // and each is taken back. Never while a call is being set up or changed (the reconnect would end or
  // break it). Resolves true when the socket answered.
  async _checkLink() {
    if (!this.connected) return false;
    if (!this._probing) {
      this._probing = this._probe().finally(() => { this._probing = null; });
    }
    return this._probing;
  }

  async _probe() {
    const ws = this._ws;
    const started = performance.now();
    this._probeDrops = this._probeDrops.filter((at) => started - at < PROBE_BACKOFF_MS);
    const lately = this._probeDrops.length >= PROBE_DROPS; // a loop of wrong guesses, or a network in trouble
    let answered = false;
    for (let round = 0; round < 2 && !answered && ws === this._ws; round += 1) {
      const sent = performance.now();
      const ping = this.request({ type: "ping" }).then(() => {
        const rtt = performance.now() - sent;
        this._rtt = this._rtt === null ? rtt : 0.8 * this._rtt + 0.2 * rtt;
        answered = true;
      }, () => {});
      const wait = Math.max(PROBE_MS, 4 * (this._rtt || 0)) * (lately ? 2 : 1);
      await Promise.race([ping, new Promise((resolve) => setTimeout(resolve, wait))]);
      answered ||= this._heardAt > started;
    }
    const busy = [...this.calls.values()].some((c) => !KEPT.includes(c.state) || c._renegotiation);
    if (answered || busy || ws !== this._ws) return answered || busy;
    this._probeDrops.push(performance.now());
    ws.onclose = null;
    ws.onmessage = null;
    ws.onerror = null;
    try { ws.close(); } catch { /* already closing */ }
    this._onClose(ws, { code: 1006, reason: "no answer from the gateway" }, !lately);
    return false;
  }

  _onClose(ws, event, now = false) {
    if (ws !== this._ws) return;
    this._ws = null;
    for (const { reject } of this._pending.values()) {
      reject(new GatewayError("network", "the connection to the gateway was lost"));
    }
    this._pending.clear();
    // 4010: a newer socket of this login took the calls over (this page's network changed and it logged in
    // again, or a duplicated tab did): neither keep them nor reconnect, or the two would take turns
    const replaced = event.code === 4010;
    const keep = !this._closing && this.reconnect && this.token && !replaced;
    const grace = this.info?.reconnect_grace ?? DEFAULT_GRACE_S; // 0: the gateway keeps no call
    for (const call of [...this.calls.values()]) {
      if (keep && grace > 0 && KEPT.includes(call.state)) call._detached(); // kept for `grace` s
      else call._end({ reason: "disconnected", message: "connection to the gateway lost", sip_status: null });
    }
    emit(this, "disconnected", { code: event.code, reason: event.reason });
    // 1012 (Service Restart): the gateway drains and closed this idle socket on purpose; reconnect at
    // once (the load balancer sends it to another instance), with the usual backoff if that fails
    if (keep) this._scheduleReconnect(now || event.code === 1012);
  }

  _scheduleReconnect(now = false) {
    const delay = now ? 0 : Math.min(30000, 500 * 2 ** this._attempt);
    this._attempt += 1;
    emit(this, "reconnecting", { attempt: this._attempt, delay });
    setTimeout(async () => {
      if (this._closing) return;
      try {
        await this._open();
        this._registered(await this.request({ type: "login", token: this.token }));
        await this._settleDetached();
      } catch (error) {
        if (error.code === "unauthorized") {
          // expired, revoked by a logout, or signed with a key the gateway no longer has: the user
          // must log in again (the page shows its login form)
          this.token = null;
          this.info = null;
          this._closing = true;
          this._ws?.close(1000);
          emit(this, "session_ended", error);
        }
      }
    }, delay);
  }

  // The gateway's `calls`: take each back with a new RTCPeerConnection (a call this page does not know
  // yet, after a reload, is made and announced with "reattach" first, so the page can show it). A call
  // whose media flows end to end (`end_to_end`: a pass-through or peer-to-peer call) and whose
  // RTCPeerConnection this page kept is taken back as it is, without an offer: its audio never stopped.
  _takeBack(list) {
    for (const item of list || []) {
      if (this._hungUp.has(item.call_id)) { // the user hung it up while the socket was down
        const id = item.call_id;
        this.request({ type: "hangup", call_id: id }).then(() => this._forgetHungUp(id), (error) => {
          if (error.code !== "network") this._forgetHungUp(id); // else down again: the next login tells it
        });
        continue;
      }
      let call = this.calls.get(item.call_id);
      if (!call) {
        call = new Call(this, item.call_id, item.direction);
        call.remote = { uri: item.remote, displayName: null };
        call.localHold = Boolean(item.held_local); // who holds it, known before its audio is back
        call.remoteHold = Boolean(item.held_remote);
        if (item.connected_for != null) call.connectedAt = Date.now() - item.connected_for * 1000;
        call.state = "reconnecting";
        this.calls.set(call.id, call);
        emit(this, "reattach", { call });
      }
      const failed = (error) => {
        call._end({ reason: "media_failed", message: `the call could not be taken back: ${error.message}`, sip_status: null });
      };
      // a connection this page kept is offered back as it is (its media flows end to end, or still through
      // the gateway when only the socket went); where the gateway has no leg for it any more, a new one
      if (!call._mediaKept()) {
        call._reattachSoon().catch(failed);
        continue;
      }
      // refused for want of an offer (the gateway carries its media after all): a new connection; a
      // lost socket: the next login takes it back
      call._reattachKept().catch((error) => {
        if (error.code === "bad_request" && error.field === "sdp") return call._reattachSoon();
        if (error.code === "network" || !this.connected) return undefined;
        throw error;
      }).catch(failed);
    }
  }

  // After a reconnect's login: a call still "reconnecting" that the gateway did not list in `calls` is
  // over (the ping's pong comes after `calls`: the gateway sends it while handling the login).
  async _settleDetached() {
    const answered = await this.request({ type: "ping" }).then(() => true, () => false);
    if (!answered) return; // the socket went again: the next login's `calls` says which calls are kept
    this._forgetHungUp(); // the calls hung up while away that the gateway did not list: over
    for (const call of [...this.calls.values()]) {
      if (call.state === "reconnecting" && !call._reattaching) {
        call._end({ reason: "disconnected", message: "connection to the gateway lost", sip_status: null });
      }
    }
  }

  // A call hung up while the socket was down: remembered (in this tab's sessionStorage too) until the
  // gateway has been told, or did not list it after a login; `forget` without an id: all of them.
  _rememberHungUp(callId) {
    this._hungUp.add(callId);
    this._storeHungUp();
  }

  _forgetHungUp(callId = null) {
    if (callId === null) this._hungUp.clear();
    else this._hungUp.delete(callId);
    this._storeHungUp();
  }

  _storeHungUp() {
    try {
      if (this._hungUp.size) sessionStorage.setItem(HUNG_UP_KEY, JSON.stringify([...this._hungUp]));
      else sessionStorage.removeItem(HUNG_UP_KEY);
    } catch { /* no storage: kept in this page's memory only */ }
  }

  // Log out: the gateway revokes the session token (everywhere) and ends this session's calls; no
  // reconnect. Resolves once the connection is closed (the gateway's ack waited for at most 2 s).
  async logout() {
    this._closing = true;
    this.token = null;
    this.info = null;
    if (this.connected) {
      const waited = new Promise((resolve) => setTimeout(resolve, 2000));
      await Promise.race([this.request({ type: "logout" }).catch(() => {}), waited]);
    }
    if (!this._ws) { // its socket gone already: the calls waiting for it end here, their connections too
      for (const call of [...this.calls.values()]) call._end({ reason: "disconnected", message: "logged out", sip_status: null });
    }
    this._ws?.close(1000, "logout");
    emit(this, "logout", {});
  }

  // TURN REST credentials (ice.turn on the gateway: username "<expiry>:<user>") expire: each new
  // RTCPeerConnection gets fresh ones from /iceservers with the session token, so a call has their whole
  // lifetime however long ago the login was; the login's when that fails.
  async _freshIceServers() {
    const minted = this.iceServers.some((server) => /^\d+:/.test(server.username || ""));
    if (!minted || !this.token) return this.iceServers;
    try {
      const url = this.url.replace(/^ws/, "http").replace(/\/ws$/, "/iceservers");
      const headers = { Authorization: `Bearer ${this.token}` };
      const signal = AbortSignal.timeout?.(3000); // never hold a call up for long: the login's then
      const reply = await fetch(url, { headers, cache: "no-store", signal });
      const servers = reply.ok ? await reply.json() : null;
      if (Array.isArray(servers)) this.info = { ...this.info, ice_servers: servers };
    } catch {
      // the network or the page's CSP: keep the login's, they may still be good
    }
    return this.iceServers;
  }

  async _peerConnection() {
    return new RTCPeerConnection({ iceServers: await this._freshIceServers() });
  }

  // Place a call to `to` (a number or SIP URI). Resolves with the Call once the gateway accepted it.
  // `transferOf`: the id of the call whose far end asked for this one (`transfer_requested`, a REFER):
  // the gateway tells that far end how this call goes, and puts in the INVITE the Replaces it asked for.
  // `text`: ask for real-time text (RFC 8865): a T.140 data channel opened here, `call.t140`, and the
  // offer's a=dcmap naming it, so that the gateway offers RFC 4103 text to the SIP side (rtt.js).
  async call(to, { stream = null, transferOf = null, text = false } = {}) {
    const call = new Call(this, null, "outbound");
    call.remote = { uri: to, displayName: null };
    let offer;
    try {
      await call._start(stream);
      if (text) call.t140 = call.pc.createDataChannel("t140", { protocol: "t140" });
      offer = await call._localOffer();
      if (text) offer = askT140(offer);
    } catch (error) { // (no microphone, a refused description): nothing of it may stay behind
      call._end({ reason: "failed", message: error.message, sip_status: null });
      throw error;
    }
    call._setState("calling");
    try {
      // early_answer: the gateway's answer comes in an `answer` event right after the ack, before its
      // INVITE, so ICE and DTLS come up while the far end rings (docs/signaling.md, *Early answer*)
      const request = { type: "call", to, sdp: offer, early_answer: true };
      if (transferOf !== null) request.transfer_of = transferOf;
      const reply = await this.request(request);
      call.id = reply.call_id;
      this.calls.set(call.id, call);
      call._flushCandidates();
      for (const message of this._early.get(call.id) || []) await call._onEvent(message);
      this._early.delete(call.id);
    } catch (error) {
      call._end({ reason: "error", message: error.message, sip_status: null });
      throw error;
    }
    return call;
  }
}

const KEPT = ["connected", "held", "reconnecting"]; // call states the gateway keeps through a reconnect
const DEFAULT_GRACE_S = 30; // web_auth.reconnect_grace's default, for a gateway that does not tell it
const SILENT_MS = 300; // a connected call that received no audio packet this long checks its socket
// ...which must answer a ping within PROBE_MS, or 4 round trips when its pings take longer (a mobile
// network), else a new socket at once: a wrong guess costs a reconnect, about a second of audio
const PROBE_MS = 600;
const DISCONNECTED_MS = 1500; // a connection "disconnected" this long is checked (often brief on Wi-Fi)
const RESTART_EVERY_MS = 10000; // ...and restarts ICE at most this often
// PROBE_DROPS checks that dropped a socket within PROBE_BACKOFF_MS: the next waits twice as long and
// reconnects with the usual backoff (each network change of a moving phone still recovers at once)
const PROBE_BACKOFF_MS = 60000;
const PROBE_DROPS = 3;
// A take-back refused for now (`conflict`: the call's renegotiation with its far end, or another
// take-back, still under way) is tried again, REATTACH_TRIES times in all, REATTACH_WAIT_MS x the try apart
const REATTACH_TRIES = 6;
const REATTACH_WAIT_MS = 1000;
const HANDOFF_MS = 5000; // a reattach keeps its old connection playing at most this long (make before break)

// `sdp` with the data channel m-line's a=dcmap asking for T.140 (at the end of that media section).
function askT140(sdp) {
  const lines = sdp.split("\r\n");
  const start = lines.findIndex((line) => line.startsWith("m=application "));
  if (start < 0) return sdp;
  let end = lines.findIndex((line, i) => i > start && line.startsWith("m="));
  if (end < 0) end = lines[lines.length - 1] === "" ? lines.length - 1 : lines.length;
  lines.splice(end, 0, 'a=dcmap:1 label="t140";subprotocol="t140"');
  return lines.join("\r\n");
}

export class Call extends EventTarget {
  constructor(client, id, direction) {
    super();
    this.client = client;
    this.id = id;
    this.direction = direction; // "outbound" | "inbound"
    this.state = "new";
    this.remote = null;
    this.pc = null;
    this.localStream = null;
    this.remoteStream = new MediaStream();
    this.muted = false;
    this.localHold = false; // this user put the call on hold
    this.remoteHold = false; // the far end put this user on hold
    this.conference = null; // the id of the three-way conference this call is in (`merged`)
    this.connectedAt = null;
    this._offer = null;
    this._queuedLocal = []; // candidates found before the call had an id
    this._queuedRemote = []; // candidates received before the remote description
    this._reattaching = false; // a `reattach` is under way: local candidates wait for its ack
    this._restarting = false; // an ICE restart's offer is out: local candidates wait for its answer
    this._renegotiation = null; // this page's own offer mid-call: {resolve, reject} until answered
    this._restartedAt = 0; // when its connection's "disconnected" last restarted ICE (Date.now())
    this.videoSource = null; // () => a camera MediaStream (or null): sent when the far end adds video
    this._lostTimer = null; // the socket went: ends the call once the gateway's reconnect grace is over
    this._handoff = null; // a reattach's old connection, playing until the new one does
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    if (state !== "reconnecting" && this._lostTimer !== null) {
      clearTimeout(this._lostTimer);
      this._lostTimer = null;
    }
    if (state === "connected" && this.connectedAt === null) this.connectedAt = Date.now();
    emit(this, "state", { state });
  }

  async _start(stream) {
    this.localStream = stream || (await navigator.mediaDevices.getUserMedia({ audio: true, video: false }));
    this.pc = await this.client._peerConnection();
    // the microphone, and the camera when the stream has one (video calls, issue 19)
    for (const track of this.localStream.getTracks()) this.pc.addTrack(track, this.localStream);
    this.pc.ontrack = (event) => {
      for (const track of event.streams[0]?.getTracks() || [event.track]) this.remoteStream.addTrack(track);
      if (!this._handoff) emit(this, "track", { stream: this.remoteStream }); // (else once it plays)
    };
    // a channel the gateway opens: real-time text (RFC 8865 "t140", rtt.js), or its chat channel
    this.pc.ondatachannel = (event) => emit(this, "datachannel", { channel: event.channel });
    const pc = this.pc;
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      // the network went (Wi-Fi to wired): the socket may still be up, the media is not; restart ICE
      if (pc.connectionState === "failed") this._networkChanged();
      // faltering: often brief on Wi-Fi; still so after DISCONNECTED_MS, a socket that answers restarts ICE
      // (once per RESTART_EVERY_MS), a dead one is replaced (_checkLink)
      else if (pc.connectionState === "disconnected") {
        setTimeout(async () => {
          if (pc !== this.pc || pc.connectionState !== "disconnected") return;
          const alive = await this.client._checkLink();
          if (!alive || pc !== this.pc || Date.now() - this._restartedAt < RESTART_EVERY_MS) return;
          this._restartedAt = Date.now();
          this._networkChanged();
        }, DISCONNECTED_MS);
      }
    };
    this._watch(pc);
    this.pc.onicecandidate = (event) => {
      if (!this.client.trickle) return;
      this._sendCandidate(event.candidate ? event.candidate.toJSON() : null);
    };
  }

  async _gathered() {
    if (this.client.trickle || this.pc.iceGatheringState === "complete") return;
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, 3000);
      this.pc.addEventListener("icegatheringstatechange", () => {
        if (this.pc.iceGatheringState === "complete") { clearTimeout(timer); resolve(); }
      });
    });
  }

  async _localOffer() {
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await this._gathered();
    return this.pc.localDescription.sdp;
  }

  _sendCandidate(candidate) {
    if (this.id === null || this._reattaching || this._restarting) {
      this._queuedLocal.push(candidate);
      return;
    }
    if (this.state === "ended" || !this.client.connected) return;
    this.client.request({ type: "ice", call_id: this.id, candidate }).catch(() => {});
  }

  _flushCandidates() {
    const queued = this._queuedLocal;
    this._queuedLocal = [];
    for (const candidate of queued) this._sendCandidate(candidate);
  }

  async _remoteDescription(type, sdp) {
    if (!sdp || !this.pc) return;
    if (type === "answer" && this.pc.signalingState !== "have-local-offer") return;
    await this.pc.setRemoteDescription({ type, sdp });
    for (const candidate of this._queuedRemote) await this._addRemoteCandidate(candidate);
    this._queuedRemote = [];
  }

  async _addRemoteCandidate(candidate) {
    if (!this.pc || !this.pc.remoteDescription) {
      this._queuedRemote.push(candidate);
      return;
    }
    try {
      await this.pc.addIceCandidate(candidate === null ? null : candidate);
    } catch (error) {
      console.warn("gateway candidate rejected", error);
    }
  }

  async _onEvent(message) {
    try {
      switch (message.type) {
        case "ringing": this._setState("ringing"); break;
        case "early_media":
          await this._remoteDescription("answer", message.sdp);
          this._setState("early");
          break;
        case "connected":
          await this._remoteDescription("answer", message.sdp);
          this._setState("connected");
          break;
        case "offer": await this._answerOffer(message.sdp); break;
        case "answer": // to our own offer mid-call, or the early answer to the call's first offer
          if (this._renegotiation) this._renegotiation.resolve(message.sdp);
          else await this._remoteDescription("answer", message.sdp);
          break;
        case "held":
        case "resumed":
          // who holds: `by` local (this user) or remote (the far end); the call is "held" while either does
          if (message.by === "remote") this.remoteHold = message.type === "held";
          else this.localHold = message.type === "held";
          this._sendAudio();
          if (this.localHold || this.remoteHold) this._setState("held");
          else this._setState("connected");
          emit(this, "hold", { local: this.localHold, remote: this.remoteHold });
          break;
        case "ice": await this._addRemoteCandidate(message.candidate); break;
        case "dtmf": emit(this, "dtmf", { digit: message.digit, duration_ms: message.duration_ms }); break;
        // each leg's figures while the call is up: legs.web (this browser) and legs.sip (the phone's side),
        // each {mos, loss, remote_loss, jitter, rtt, poor}; `poor` lists the legs under the threshold
        case "quality":
          this.quality = { legs: message.legs || {}, poor: message.poor || [] };
          emit(this, "quality", this.quality);
          break;
        // the call's recording (issue 37 item 3): state idle, recording, paused or stopped; mode on_demand
        // (this user starts and stops it: `call.record(action)`) or always
        case "recording":
          this.recording = { state: message.state, mode: message.mode, files: message.files || [] };
          emit(this, "recording", this.recording);
          break;
        case "transfer": emit(this, "transfer", message); break; // state, sip_status, message
        // the far end transfers this user (REFER): call `to` with `client.call(to, {transferOf: id})`
        case "transfer_requested": emit(this, "transfer_requested", { to: message.to }); break;
        case "info": emit(this, "info", { contentType: message.content_type, body: message.body }); break;
        case "message": emit(this, "message", { body: message.body }); break; // chat: MESSAGE in the dialog
        case "message_result": emit(this, "message_result", { status: message.status }); break;
        case "reattached":
          if (message.sdp) await this._remoteDescription("answer", message.sdp); // (none: media kept)
          this.localHold = Boolean(message.held_local);
          this.remoteHold = Boolean(message.held_remote);
          this._sendAudio();
          this._setState(message.held_local || message.held_remote ? "held" : "connected");
          emit(this, "hold", { local: this.localHold, remote: this.remoteHold });
          break;
        case "ended": this._end(message); break;
        case "error": {
          const error = new GatewayError(message.code, message.message, message.field, this.id);
          if (message.code === "renegotiation_failed" && this._renegotiation) this._renegotiation.reject(error);
          else emit(this, "error", error);
          break;
        }
        default: break;
      }
    } catch (error) {
      emit(this, "error", new GatewayError("media", `media setup failed: ${error.message}`, null, this.id));
    }
  }

  async _answerOffer(sdp) {
    if (!this.pc) await this._start(null);
    await this.pc.setRemoteDescription({ type: "offer", sdp });
    for (const candidate of this._queuedRemote) await this._addRemoteCandidate(candidate);
    this._queuedRemote = [];
    if (this.state !== "answering") await this._offeredVideo();
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    this._videoSettled();
    await this._gathered();
    await this.client.request({ type: "answer", call_id: this.id, sdp: this.pc.localDescription.sdp });
  }

  // Accept an incoming call (asks for the microphone unless a stream is given).
  async answer({ stream = null } = {}) {
    this._setState("answering");
    await this._start(stream);
    if (this._offer) {
      await this._answerOffer(this._offer);
    } else {
      await this.client.request({ type: "answer", call_id: this.id }); // the offer follows as `offer`
    }
  }

  // --- video added or dropped mid-call (issue 19) ------------------------------------------------------
  // The far end offers video mid-call: the camera goes into the answer when videoSource gives one.
  async _offeredVideo() {
    for (const transceiver of this.pc.getTransceivers()) {
      if (!isVideo(transceiver) || transceiver.sender.track || !this.videoSource) continue;
      const camera = await this.videoSource();
      const track = camera?.getVideoTracks()[0];
      if (!track) return;
      await transceiver.sender.replaceTrack(track);
      transceiver.direction = "sendrecv";
      this.localStream.addTrack(track);
    }
  }

  // After a description that may have added or dropped the video: a camera no live m-line sends is
  // stopped, a far-end picture that ended leaves remoteStream; "video" and "track" tell the page.
  _videoSettled() {
    for (const transceiver of this.pc.getTransceivers()) {
      const track = transceiver.sender.track;
      if (track?.kind !== "video" || isVideo(transceiver)) continue;
      try {
        this.pc.removeTrack(transceiver.sender); // free for the next video m-line
      } catch { /* a stopped transceiver */ }
    }
    const sent = new Set(this.pc.getTransceivers().filter(isVideo).map((t) => t.sender.track).filter(Boolean));
    for (const track of this.localStream?.getVideoTracks() || []) {
      if (sent.has(track)) continue;
      track.stop();
      this.localStream.removeTrack(track);
    }
    for (const track of this.remoteStream.getVideoTracks()) {
      if (track.readyState === "ended") this.remoteStream.removeTrack(track);
    }
    emit(this, "video", { sending: this.sendingVideo });
    emit(this, "track", { stream: this.remoteStream });
  }

  // This page's camera goes into the call.
  get sendingVideo() {
    return Boolean(this.localStream?.getVideoTracks().some((t) => t.readyState === "live"));
  }

  // Add the camera (a stream with a video track) mid-call: this page's own offer on the same
  // RTCPeerConnection. True once the far end took the video, false when it turned it down (the camera
  // is stopped); a refusal rejects with GatewayError "renegotiation_failed" after a rollback.
  async addVideo(camera) {
    const track = camera.getVideoTracks()[0];
    if (!track) throw new GatewayError("media", "no camera", null, this.id);
    this.pc.addTrack(track, this.localStream);
    this.localStream.addTrack(track);
    try {
      await this._renegotiate();
    } catch (error) {
      if (this.pc) this._videoSettled();
      throw error;
    }
    this._videoSettled();
    return this.sendingVideo;
  }

  // Stop the camera and the far end's picture mid-call (the video m-line at port 0).
  async dropVideo() {
    for (const transceiver of this.pc.getTransceivers()) if (isVideo(transceiver)) transceiver.stop();
    try {
      await this._renegotiate();
    } finally {
      this._videoSettled();
    }
  }

  // Our offer -> `offer {call_id, sdp}`; the gateway's `answer` event is applied, its `error
  // renegotiation_failed` (or the call ending) rolls the offer back.
  async _renegotiate() {
    if (this._renegotiation) throw new GatewayError("conflict", "a video change is already under way", null, this.id);
    const answered = new Promise((resolve, reject) => { this._renegotiation = { resolve, reject }; });
    try {
      const offer = await this._localOffer();
      await this.client.request({ type: "offer", call_id: this.id, sdp: offer });
      const sdp = await answered;
      await this.pc.setRemoteDescription({ type: "answer", sdp });
    } catch (error) {
      if (this.pc?.signalingState === "have-local-offer") await this.pc.setLocalDescription({ type: "rollback" });
      throw error;
    } finally {
      this._renegotiation = null;
    }
  }

  reject(status = 486) {
    return this.client.request({ type: "reject", call_id: this.id, status });
  }

  // Hang up: cancels an unanswered outbound call, hangs up an answered one, rejects a ringing one.
  async hangup() {
    if (this.state === "ended") return;
    if (this.direction === "inbound" && this.state === "incoming") return this.reject();
    const type = this.direction === "outbound" && ["calling", "ringing", "early"].includes(this.state)
      ? "cancel" : "hangup";
    try {
      await this.client.request({ type, call_id: this.id });
    } catch (error) {
      // the socket is down (a reconnect under way): the gateway keeps the call for this login, so it is
      // hung up there once the socket is back (_takeBack); for the user it ends now
      if (error.code !== "network" || this.id === null) throw error;
      this.client._rememberHungUp(this.id);
    } finally {
      this._end({ reason: "hangup", message: "", sip_status: null });
    }
  }

  hold() { return this.client.request({ type: "hold", call_id: this.id }); }

  // The call's recording: "start", "pause", "resume" or "stop"; the "recording" event tells the state.
  record(action) { return this.client.request({ type: "record", call_id: this.id, action: String(action) }); }

  // Chat in the call: SIP MESSAGE in its dialog; the far end's answer comes as a "message_result" event.
  sendMessage(body) { return this.client.request({ type: "message", call_id: this.id, body: String(body) }); }

  // Blind transfer (REFER): the other side is asked to call `to`; "transfer" events tell how it goes.
  transfer(to) { return this.client.request({ type: "transfer", call_id: this.id, to: String(to) }); }

  // Attended transfer (REFER with Replaces, RFC 3891): this call's far end is asked to call the far end
  // of `consultation` (the user's other connected call) in its place; both calls then end.
  attendedTransfer(consultation) {
    return this.client.request({ type: "transfer", call_id: this.id, replaces: consultation.id });
  }

  resume() { return this.client.request({ type: "resume", call_id: this.id }); }

  // Take this call out of its conference: it is held again, a call of its own (`split` follows).
  split() { return this.client.request({ type: "split", call_id: this.id }); }

  sendDtmf(digits, durationMs = undefined) {
    const message = { type: "dtmf", call_id: this.id, digits: String(digits) };
    if (durationMs !== undefined) message.duration_ms = durationMs;
    return this.client.request(message);
  }

  // Mute or unmute the microphone locally (the gateway is not told; the far end hears silence).
  mute(on = true) {
    this.muted = Boolean(on);
    this._sendAudio();
    emit(this, "state", { state: this.state });
  }

  // The microphone goes out unless muted or held by this user: a call whose media flows end to end (a
  // web-to-web call, a pass-through route) has no gateway in the path to hold it back.
  _sendAudio() {
    for (const track of this.localStream?.getAudioTracks() || []) track.enabled = !this.muted && !this.localHold;
  }

  // While `pc` carries the call: a connected call (not held) that received no audio packet for
  // SILENT_MS has its socket checked (GatewayClient._checkLink): the first sign of a network change.
  _watch(pc) {
    // held, or its media being changed (a video offer, an ICE restart, a reattach): its audio may pause
    const steady = () => this.state === "connected" && !this.localHold && !this.remoteHold
      && !this._renegotiation && !this._restarting && !this._reattaching && pc.signalingState === "stable";
    let packets = 0;
    let since = Date.now();
    const timer = setInterval(async () => {
      if (pc !== this.pc || this.state === "ended") {
        clearInterval(timer);
        return;
      }
      let now = 0;
      try {
        if (steady()) {
          (await pc.getStats()).forEach((s) => {
            if (s.type === "inbound-rtp" && s.kind === "audio") now += s.packetsReceived;
          });
        }
      } catch {
        return; // closed meanwhile
      }
      if (now === 0 || !steady()) {
        since = Date.now(); // not armed before its first audio (ICE and DTLS coming up), nor unsteady
      } else if (now !== packets) {
        since = Date.now();
      } else if (Date.now() - since >= SILENT_MS) {
        since = Date.now();
        this.client._checkLink();
      }
      packets = now || packets;
    }, 200);
  }

  // The socket went: the gateway keeps the call (its audio stops, unless it flows end to end) until this
  // client logs in again. The RTCPeerConnection stays until then: an end-to-end call goes on with it, any
  // other call gets a new one (`_reattach` closes this one).
  _detached() {
    this._renegotiation?.reject(new GatewayError("network", "the connection to the gateway was lost", null, this.id));
    this._renegotiation = null;
    this._setState("reconnecting");
    if (this._lostTimer === null) {
      const grace = this.client.info?.reconnect_grace ?? DEFAULT_GRACE_S;
      this._lostTimer = setTimeout(() => this._lost(), grace * 1000);
    }
  }

  // No socket for the gateway's whole reconnect grace: the gateway ended the call meanwhile (or ends it
  // the moment this page is back: it is hung up then), so it ends here, said plainly, not left
  // "reconnecting" over dead air. Not while a socket is up: its login's `calls` says what is kept.
  _lost() {
    this._lostTimer = null;
    if (this.state !== "reconnecting" || this.client.connected) return;
    if (this.id !== null) this.client._rememberHungUp(this.id);
    this._end({ reason: "gateway_lost", message: "the gateway could not be reached again", sip_status: null });
  }

  // Whether this call's RTCPeerConnection still carries its media (not closed, not failed).
  _mediaKept() {
    return Boolean(this.pc) && !["failed", "closed"].includes(this.pc.connectionState);
  }

  // Take an end-to-end call back without an offer: only the signaling comes back (`reattached` without
  // sdp), again while the gateway answers "not now" (`conflict`: a renegotiation with the far end under
  // way). A connection that is not "connected" then (the network changed with the socket) restarts ICE.
  async _reattachKept() {
    for (let attempt = 1; ; attempt += 1) {
      this._reattaching = true;
      try {
        await this.client.request({ type: "reattach", call_id: this.id });
        break;
      } catch (error) {
        if (error.code !== "conflict" || attempt >= REATTACH_TRIES || this.state !== "reconnecting") throw error;
      } finally {
        this._reattaching = false;
        this._flushCandidates();
      }
      await new Promise((resolve) => setTimeout(resolve, REATTACH_WAIT_MS * attempt));
      if (this.state !== "reconnecting" || !this.client.connected) return;
    }
    if (this.pc && this.pc.connectionState !== "connected") await this.restartIce();
  }

  // The network changed under a call that is up (its connection "failed", or `online` after
  // `offline`): restart ICE, or take the call back when that cannot be done.
  _networkChanged() {
    if (!["connected", "held"].includes(this.state) || !this.client.connected) return;
    // The socket may have gone with the old network (no FIN comes): checked first. An offer sent into a
    // dead socket would wait for an answer that never comes, and the renegotiation under way would keep
    // every check of the socket off meanwhile: the call stuck "connected" without audio. A dead socket
    // is replaced (_checkLink) and the reconnect takes the call back.
    this.client._checkLink().then((alive) => {
      if (!alive || !["connected", "held"].includes(this.state)) return undefined;
      return this.restartIce();
    }).catch((error) => {
      // the socket went meanwhile: the reconnect takes the call back, no error to show
      if (this.state === "reconnecting" || error.code === "network") return;
      emit(this, "error", new GatewayError("media", error.message, null, this.id));
    });
  }

  // Restart ICE in place: restartIce() and a new offer on the same RTCPeerConnection (`offer {call_id,
  // sdp}`), answered at once with the gateway's new ICE credentials (docs/signaling.md "ICE restart");
  // the call, its DTLS and its audio go on, over the new path once found. When the gateway cannot
  // restart it (its side of the media is gone already), a new RTCPeerConnection takes the call back
  // (`reattach`). True once restarted in place, false when reattached.
  async restartIce() {
    if (!this.pc || this._reattaching || this._restarting) return false;
    this._restarting = true;
    try {
      this.pc.restartIce();
      await this._renegotiate();
      return true;
    } catch (error) {
      if (this.state === "ended" || !this.client.connected) throw error;
      console.warn("ICE restart refused, taking the call back with a new connection", error);
    } finally {
      this._restarting = false;
      this._flushCandidates();
    }
    await this._reattachSoon();
    return false;
  }

  // _reattach, again while the gateway answers "not now" (`conflict`: a pass-through call's
  // renegotiation with its far end, a hold say, still under way; the call waits meanwhile). Only the
  // latest of these loops goes on; one whose call ended, or whose socket went (the reconnect takes the
  // call back by itself), stops quietly.
  async _reattachSoon() {
    const loop = (this._reattachLoop = (this._reattachLoop || 0) + 1);
    for (let attempt = 1; ; attempt += 1) {
      try {
        await this._reattach();
        return;
      } catch (error) {
        const again = error.code === "conflict" && attempt < REATTACH_TRIES;
        if (!again || this.state !== "reconnecting" || !this.client.connected) throw error;
      }
      this.pc?.close(); // the refused connection: none of its candidates goes out meanwhile
      await new Promise((resolve) => setTimeout(resolve, REATTACH_WAIT_MS * attempt));
      const stale = loop !== this._reattachLoop || this._reattaching;
      if (stale || this.state !== "reconnecting" || !this.client.connected) return;
    }
  }

  // Take the call back (after a reconnect or a reload) or renew its media (a network change): a new
  // RTCPeerConnection offers; the gateway bridges it to the same call and answers with `reattached`.
  async _reattach() {
    if (this._reattaching) return;
    this._reattaching = true;
    // make before break: a connection still playing plays on until the new one does (a drained gateway
    // instance carries the call until then: docs/deploy.md "Drain and rolling restart")
    const old = this.pc;
    const keep = Boolean(old) && old.connectionState === "connected";
    if (!keep) old?.close();
    this._handoff = keep ? old : null;
    try {
      this._queuedRemote = [];
      this._queuedLocal = [];
      this.remoteStream = new MediaStream();
      this._setState("reconnecting");
      const live = this.localStream?.getAudioTracks().some((t) => t.readyState === "live");
      await this._start(live ? this.localStream : null);
      this._sendAudio(); // (muted or held: the new stream too)
      // a call with real-time text asks for it again on the new connection (rtt.js takes the channel)
      const text = Boolean(this.t140 || this.rtt);
      if (text) {
        this.t140 = this.pc.createDataChannel("t140", { protocol: "t140" });
        emit(this, "datachannel", { channel: this.t140 });
      }
      let offer = await this._localOffer();
      if (text) offer = askT140(offer);
      await this.client.request({ type: "reattach", call_id: this.id, sdp: offer });
    } catch (error) {
      this._handedOff();
      throw error;
    } finally {
      this._reattaching = false;
    }
    this._flushCandidates();
    if (this._handoff) this._whenPlaying(this.pc);
  }

  // The new connection of a reattach plays (its first audio packets), or HANDOFF_MS passed: the old one
  // closes and the page is given the new stream.
  async _whenPlaying(pc) {
    const until = Date.now() + HANDOFF_MS;
    while (this._handoff && pc === this.pc && Date.now() < until) {
      let packets = 0;
      try {
        const stats = await pc.getStats();
        stats.forEach((report) => {
          if (report.type === "inbound-rtp" && report.kind === "audio") packets += report.packetsReceived || 0;
        });
      } catch {
        break;
      }
      if (packets > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
    this._handedOff();
  }

  _handedOff() {
    const old = this._handoff;
    if (!old) return;
    this._handoff = null;
    old.close();
    if (this.state !== "ended") emit(this, "track", { stream: this.remoteStream });
  }

  _end(detail) {
    if (this.state === "ended") return;
    this.endReason = detail;
    this._renegotiation?.reject(new GatewayError("not_found", "the call ended", null, this.id));
    this._handoff?.close();
    this._handoff = null;
    this.pc?.close();
    for (const track of this.localStream?.getTracks() || []) track.stop();
    if (this.id !== null) this.client.calls.delete(this.id);
    this._setState("ended");
    emit(this, "ended", { reason: detail.reason, message: detail.message || "", sip_status: detail.sip_status ?? null });
  }
}

// A transceiver of a video m-line still in use (not stopped, not rejected with port 0).
function isVideo(transceiver) {
  return transceiver.receiver.track.kind === "video" && transceiver.mid !== null
    && transceiver.direction !== "stopped" && transceiver.currentDirection !== "stopped";
}

// Measure a stream's audio level (0..1, RMS) about `rate` times per second; returns a stop function.
export function levelMeter(stream, onLevel, { audioContext = null, rate = 20 } = {}) {
  const context = audioContext || new AudioContext();
  const source = context.createMediaStreamSource(stream);
  const analyser = context.createAnalyser();
  analyser.fftSize = 1024;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const value of samples) sum += value * value;
    onLevel(Math.min(1, Math.sqrt(sum / samples.length) * 3));
  }, 1000 / rate);
  return () => {
    clearInterval(timer);
    source.disconnect();
    if (!audioContext) context.close();
  };
}
