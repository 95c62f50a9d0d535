// window.softphone: one API over JsSIP 3 and SIP.js 0.21 for the tests (peers/softphones.py).
// Every outcome is pushed to softphone.events as {type, ...}; the Python side polls it. Each call (placed,
// received, or placed for a REFER) has a number, 0 first, in its events' `call`; the API acts on the
// latest one unless told (`select(n)`, or a `call` option).
(() => {
  const events = [];
  const emit = (type, fields = {}) => events.push({ type, at: Date.now(), ...fields });
  let library = null;
  let ua = null; // JsSIP.UA or SIP.UserAgent
  let registerer = null; // SIP.js
  let session = null; // JsSIP.RTCSession or SIP.js Session: the current call
  const calls = []; // every call's session, by its number
  let remoteStream = null;
  let audio = null;
  let video = false; // the call's media: audio and, with `video`, the camera (Chromium's fake one)
  // JsSIP, `quickRecovery` (bench/network_change_bench.py): an application tuned for network changes. Its
  // socket given up (dropSocket(gone)) reconnects at once rather than after JsSIP's recovery timer, and
  // each offer goes GATHER_WAIT_MS after the last candidate gathered rather than at the end of gathering
  // (a gathering started before Chromium has its new address never ends: JsSIP would never send it)
  let quickRecovery = false;
  const GATHER_WAIT_MS = 300;
  const media = () => ({ audio: true, video });

  function attachRemote(stream) {
    remoteStream = stream;
    const element = document.getElementById("remote");
    element.srcObject = stream; // Chromium feeds WebAudio from a remote stream only while it plays
    element.play().catch(() => {});
    const context = new AudioContext();
    const source = context.createMediaStreamSource(stream);
    const analyser = context.createAnalyser();
    analyser.fftSize = 8192;
    source.connect(analyser);
    audio = { context, analyser };
    emit("remote_audio");
  }

  // The far end's picture in <video id="remote-video"> (calls with `video: true`).
  function attachVideo(track) {
    const element = document.getElementById("remote-video");
    element.srcObject = new MediaStream([track]);
    element.play().catch(() => {});
    emit("remote_video");
  }

  function peerConnection() {
    if (!session) return null;
    if (library === "jssip") return session.connection || null;
    const handler = session.sessionDescriptionHandler;
    return handler ? handler.peerConnection : null;
  }

  function attachReceivers(pc) {
    const stream = new MediaStream();
    pc.getReceivers().forEach((r) => {
      if (r.track && r.track.kind === "audio") stream.addTrack(r.track);
      if (r.track && r.track.kind === "video" && video) attachVideo(r.track);
    });
    attachRemote(stream);
  }

  // A new call: numbered, the current one; its events say its number.
  function track(newSession) {
    newSession.number = calls.length;
    calls.push(newSession);
    session = newSession;
    return (type, fields = {}) => emit(type, { call: newSession.number, ...fields });
  }

  function callOf(options) {
    return options && options.call !== undefined && options.call !== null ? calls[options.call] : session;
  }

  // The status of a NOTIFY's message/sipfrag body ("SIP/2.0 180 Ringing"), null if none.
  function sipfragStatus(body) {
    const match = /^SIP\/2\.0\s+(\d{3})/.exec((body || "").trim());
    return match ? Number(match[1]) : null;
  }

  // --- JsSIP ---------------------------------------------------------------------------------------
  function jssipSession(newSession, direction) {
    const say = track(newSession);
    const s = newSession;
    s.on("progress", (e) => say("progress", { status: e.response ? e.response.status_code : null }));
    s.on("accepted", () => say("accepted"));
    s.on("confirmed", () => say("confirmed"));
    if (quickRecovery) {
      s.on("icecandidate", (e) => { clearTimeout(s.gatherWait); s.gatherWait = setTimeout(e.ready, GATHER_WAIT_MS); });
    }
    s.on("ended", (e) => say("ended", { cause: e.cause, originator: e.originator }));
    s.on("failed", (e) => say("failed", { cause: e.cause, status: e.message && e.message.status_code }));
    s.on("newDTMF", (e) => say("dtmf", { digit: e.dtmf.tone, originator: e.originator }));
    // an INFO that is no DTMF (JsSIP makes those newDTMF): its Info-Package, type and body
    s.on("newInfo", (e) => {
      if (e.originator !== "remote") return;
      say("info", { package: e.request.getHeader("Info-Package"), contentType: e.info.contentType, body: e.info.body });
    });
    s.on("hold", (e) => say("hold", { originator: e.originator }));
    s.on("unhold", (e) => say("unhold", { originator: e.originator }));
    // The far end's REFER (JsSIP answered it 202): accepted, JsSIP places the call to its Refer-To and
    // NOTIFYs the far end how that call goes.
    s.on("refer", (e) => {
      say("refer", { target: e.request.refer_to.uri.toString() });
      e.accept((referred) => {
        jssipSession(referred, "outgoing");
        emit("referCall", { call: referred.number, of: s.number });
      }, { mediaConstraints: media(), pcConfig: { iceServers: [] } });
    });
    const watch = (pc) => pc.addEventListener("track", (e) => {
      if (e.track.kind === "video") attachVideo(e.track);
      else attachRemote(e.streams[0] || new MediaStream([e.track]));
    });
    if (s.connection) watch(s.connection);
    else s.on("peerconnection", (e) => watch(e.peerconnection));
    if (direction === "incoming") say("incoming", { from: s.remote_identity.uri.toString() });
  }

  // A MESSAGE (JsSIP's UA takes every MESSAGE, in a dialog or not, once `newMessage` has a listener):
  // the call whose dialog it is in, if any.
  function jssipMessage(e) {
    if (e.originator !== "remote") return;
    const callId = e.request.call_id;
    const owner = calls.find((c) => c.id && c.id.startsWith(callId));
    emit("message", {
      call: owner ? owner.number : null,
      body: e.request.body || "",
      contentType: e.request.getHeader("Content-Type"),
    });
  }

  function startJssip(options) {
    const socket = new JsSIP.WebSocketInterface(options.wsUrl);
    ua = new JsSIP.UA({
      sockets: [socket],
      uri: options.uri,
      password: options.password,
      authorization_user: options.authorizationUser || undefined,
      display_name: options.displayName || undefined,
      register: true,
      session_timers: false,
    });
    ua.on("registered", (e) => emit("registered", { status: e.response.status_code }));
    ua.on("unregistered", () => emit("unregistered"));
    ua.on("registrationFailed", (e) =>
      emit("registrationFailed", { status: e.response ? e.response.status_code : null, cause: e.cause }));
    ua.on("newRTCSession", (e) => { if (e.originator === "remote") jssipSession(e.session, "incoming"); });
    ua.on("newMessage", jssipMessage);
    ua.on("connected", () => emit("connected"));
    ua.on("disconnected", () => emit("disconnected"));
    ua.start();
  }

  // --- SIP.js --------------------------------------------------------------------------------------
  // The audio direction of an SDP (its first a=sendrecv / sendonly / recvonly / inactive).
  function sdpDirection(sdp) {
    const match = /^a=(sendrecv|sendonly|recvonly|inactive)\s*$/m.exec(sdp || "");
    return match ? match[1] : "sendrecv";
  }

  function sipjsSession(newSession, direction) {
    const say = track(newSession);
    const s = newSession;
    let endedBy = "remote"; // hangup() sets "local"; SIP.js's Terminated state does not say
    let heldByRemote = false;
    s.hangupLocally = () => { endedBy = "local"; };
    s.stateChange.addListener((state) => {
      if (state === SIP.SessionState.Established) {
        say("accepted");
        say("confirmed");
        attachReceivers(s.sessionDescriptionHandler.peerConnection);
      } else if (state === SIP.SessionState.Terminated) {
        say("ended", { originator: endedBy });
      }
    });
    s.delegate = {
      onBye: (bye) => { endedBy = "remote"; bye.accept(); },
      onInfo: (info) => {
        const body = info.request.body || "";
        const match = /Signal=\s*(\S)/.exec(body);
        if (match) say("dtmf", { digit: match[1], originator: "remote" });
        else {
          const request = info.request;
          say("info", { package: request.getHeader("Info-Package"), contentType: request.getHeader("Content-Type"), body });
        }
        info.accept();
      },
      // SIP.js has no hold of its own: a re-INVITE it answered whose offer is sendonly or inactive is
      // the far end holding the call (what an application shows), sendrecv again its resume.
      onInvite: (request, response, statusCode) => {
        if (statusCode !== 200) return;
        const held = ["sendonly", "inactive"].includes(sdpDirection(request.body));
        if (held !== heldByRemote) say(held ? "hold" : "unhold", { originator: "remote" });
        heldByRemote = held;
      },
      onMessage: (message) => {
        const request = message.request;
        say("message", { body: request.body || "", contentType: request.getHeader("Content-Type") });
        message.accept();
      },
      // The far end's REFER: accepted (202), the call to its Refer-To placed by SIP.js, which NOTIFYs the
      // far end how it goes.
      onRefer: (referral) => {
        say("refer", { target: referral.referTo.uri.toString() });
        referral.accept().then(() => {
          const inviter = referral.makeInviter({ sessionDescriptionHandlerOptions: { constraints: media() } });
          sipjsSession(inviter, "outgoing");
          emit("referCall", { call: inviter.number, of: s.number });
          return inviter.invite();
        }).catch((e) => say("referCallFailed", { error: String(e) }));
      },
    };
    if (direction === "incoming") say("incoming", { from: s.remoteIdentity.uri.toString() });
  }

  // SIP.js's socket lost: an application's back-off, its reconnect (tried again while the gateway cannot
  // be reached), and its REGISTER again. Events: disconnected, connected, registered.
  let dropping = false;
  async function sipjsRecover() {
    emit("disconnected");
    for (let attempt = 0; ; attempt += 1) {
      await new Promise((resolve) => setTimeout(resolve, 1000)); // an application's back-off
      try {
        await ua.reconnect();
        break;
      } catch (e) {
        if (attempt >= 30) { emit("reconnectFailed", { error: String(e) }); return; }
      }
    }
    emit("connected");
    // still Registered to SIP.js (no state change, so no event of the registerer's): its 2xx says it
    await registerer.register({ requestDelegate: { onAccept: (r) => emit("registered", { status: r.message.statusCode }) } });
  }

  async function startSipjs(options) {
    const uri = SIP.UserAgent.makeURI(options.uri);
    ua = new SIP.UserAgent({
      uri,
      transportOptions: { server: options.wsUrl },
      authorizationUsername: options.authorizationUser || uri.user,
      authorizationPassword: options.password,
      displayName: options.displayName || undefined,
      delegate: {
        onInvite: (invitation) => sipjsSession(invitation, "incoming"),
        // the socket lost without asking (its gateway instance died, a proxy restarted): as an
        // application's onDisconnect does, reconnect and REGISTER again (dropSocket does the same)
        onDisconnect: (error) => { if (error && !dropping) sipjsRecover(); },
      },
      sessionDescriptionHandlerFactoryOptions: { iceGatheringTimeout: 2000 },
    });
    await ua.start();
    emit("connected");
    registerer = new SIP.Registerer(ua);
    registerer.stateChange.addListener((state) => {
      if (state === SIP.RegistererState.Registered) emit("registered", { status: 200 });
      if (state === SIP.RegistererState.Unregistered) emit("unregistered");
    });
    await registerer.register({
      requestDelegate: {
        onReject: (response) => emit("registrationFailed", { status: response.message.statusCode, cause: response.message.reasonPhrase }),
      },
    });
  }

  // JsSIP's hold() and unhold() do nothing (return false) while its previous re-INVITE is not done yet
  // (RTCSession._isReadyToReOffer: a pending transaction, or the answer's description still being set),
  // which a page pressing Resume right after Hold hits on a busy machine: try again, as a user would.
  async function jssipHold(hold) {
    for (let attempt = 0; attempt < 50; attempt += 1) {
      if (hold ? session.hold() : session.unhold()) return true;
      if (session.isOnHold().local === hold) return true;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return false;
  }

  // SIP.js holds by a re-INVITE whose offer is sendonly (its SessionDescriptionHandler's `hold` option,
  // kept for later offers); its event follows the 2xx (JsSIP emits its own as it sends the re-INVITE).
  function sipjsHold(hold) {
    const kind = hold ? "hold" : "unhold";
    const call = session.number;
    session.invite({
      sessionDescriptionHandlerOptions: { hold },
      requestDelegate: {
        onAccept: () => emit(kind, { call, originator: "local" }),
        onReject: (r) => emit(`${kind}Failed`, { call, status: r.message.statusCode }),
      },
    });
  }

  // Video mid-call (issue 19), each library's own renegotiation: JsSIP's renegotiate() (a re-INVITE with
  // a new offer of the same RTCPeerConnection; a refusal makes JsSIP end the call), SIP.js's invite() (with
  // video in its SessionDescriptionHandler's constraints to add the camera; a refusal is rolled back).
  // Outcome: "renegotiated", or "renegotiationFailed" {status}.
  function renegotiate(sipjsOptions) {
    if (library === "jssip") {
      if (!session.renegotiate({}, () => emit("renegotiated"))) emit("renegotiationFailed", { status: null });
      return;
    }
    session.invite({
      sessionDescriptionHandlerOptions: sipjsOptions,
      requestDelegate: {
        onAccept: () => emit("renegotiated"),
        // SIP.js's web SessionDescriptionHandler has no rollbackDescription: the offer would stay
        // pending (have-local-offer) and every later offer fail; the page rolls it back itself
        onReject: (r) => {
          const pc = peerConnection();
          const rolled = pc && pc.signalingState === "have-local-offer"
            ? pc.setLocalDescription({ type: "rollback" }) : Promise.resolve();
          rolled.finally(() => emit("renegotiationFailed", { status: r.message.statusCode }));
        },
      },
    }).catch((e) => emit("renegotiationFailed", { status: null, error: String(e) }));
  }

  // The far end's video as it comes (a video m-line added mid-call by either side).
  function watchVideo(pc) {
    if (pc.watchingVideo) return;
    pc.watchingVideo = true;
    pc.addEventListener("track", (e) => { if (e.track.kind === "video") attachVideo(e.track); });
  }

  async function cameraTrack() {
    const stream = await navigator.mediaDevices.getUserMedia({ video: true });
    return stream.getVideoTracks()[0];
  }

  function videoTransceivers(pc) {
    return pc.getTransceivers().filter((t) => !t.stopped && t.receiver.track && t.receiver.track.kind === "video");
  }

  async function codecName(pc, id) {
    let name = null;
    (await pc.getStats()).forEach((s) => { if (s.id === id) name = s.mimeType; });
    return name;
  }

  // --- the API -------------------------------------------------------------------------------------
  window.softphone = {
    events,
    async start(options) {
      library = options.library;
      quickRecovery = Boolean(options.quickRecovery);
      if (library === "jssip") startJssip(options);
      else await startSipjs(options);
    },
    async unregister() {
      if (library === "jssip") ua.unregister();
      else await registerer.unregister();
    },
    call(target, options = {}) {
      video = Boolean(options.video);
      if (library === "jssip") {
        const created = ua.call(target, {
          mediaConstraints: media(),
          pcConfig: { iceServers: [] },
          extraHeaders: options.extraHeaders || [],
        });
        jssipSession(created, "outgoing");
        return;
      }
      // earlyMedia: SIP.js applies the SDP of a 183 (its default ignores it), as a softphone that plays
      // the PBX's ringback or announcements does.
      const inviter = new SIP.Inviter(ua, SIP.UserAgent.makeURI(target), {
        earlyMedia: true,
        extraHeaders: options.extraHeaders || [],
        sessionDescriptionHandlerOptions: { constraints: media() },
      });
      sipjsSession(inviter, "outgoing");
      inviter.invite({
        requestDelegate: {
          onProgress: (r) => {
            emit("progress", { status: r.message.statusCode });
            const handler = inviter.sessionDescriptionHandler;
            if (r.message.body && handler && !audio) attachReceivers(handler.peerConnection);
          },
          onReject: (r) => emit("failed", { status: r.message.statusCode, cause: r.message.reasonPhrase }),
        },
      });
    },
    answer(options = {}) {
      video = Boolean(options.video);
      if (library === "jssip") session.answer({ mediaConstraints: media(), pcConfig: { iceServers: [] } });
      else session.accept({ sessionDescriptionHandlerOptions: { constraints: media() } });
    },
    // The camera added to the call and offered by the library's re-INVITE.
    async addVideo() {
      video = true;
      const pc = peerConnection();
      watchVideo(pc);
      if (library === "sipjs") {
        renegotiate({ constraints: { audio: true, video: true } });
        return;
      }
      if (!pc.getSenders().some((s) => s.track && s.track.kind === "video")) {
        const track = await cameraTrack();
        pc.addTrack(track, new MediaStream([track]));
      }
      renegotiate();
    },
    // The video turned down (its transceiver stopped: port 0 in the library's new offer, camera off).
    dropVideo() {
      const pc = peerConnection();
      videoTransceivers(pc).forEach((t) => { if (t.sender.track) t.sender.track.stop(); t.stop(); });
      renegotiate({});
    },
    // The camera ready for a video the far end adds by re-INVITE (answered with it, not receive-only):
    // a track added without renegotiating, which the offer's new video m-line takes (RFC 8829 §5.10).
    async cameraReady() {
      video = true;
      const pc = peerConnection();
      watchVideo(pc);
      const track = await cameraTrack();
      pc.addTrack(track, new MediaStream([track]));
    },
    // Is a camera track being sent (live, on a transceiver that is not stopped)?
    sendingVideo() {
      const pc = peerConnection();
      return Boolean(pc) && videoTransceivers(pc).some((t) => t.sender.track && t.sender.track.readyState === "live"
        && t.currentDirection && t.currentDirection.startsWith("send"));
    },
    // The received video: the inbound-rtp stats (frames decoded, size) and what <video> shows: its
    // size and the mean colour of the picture drawn into a canvas (null before any picture).
    async remoteVideo() {
      const pc = peerConnection();
      let inbound = null;
      if (pc) (await pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video") inbound = s; });
      const element = document.getElementById("remote-video");
      let picture = null;
      if (element.videoWidth > 0) {
        const canvas = document.createElement("canvas");
        canvas.width = element.videoWidth;
        canvas.height = element.videoHeight;
        const context = canvas.getContext("2d");
        context.drawImage(element, 0, 0);
        const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
        const sums = [0, 0, 0];
        for (let i = 0; i < pixels.length; i += 4) { sums[0] += pixels[i]; sums[1] += pixels[i + 1]; sums[2] += pixels[i + 2]; }
        const count = pixels.length / 4;
        picture = { width: element.videoWidth, height: element.videoHeight, mean: sums.map((x) => x / count) };
      }
      return {
        framesDecoded: inbound ? inbound.framesDecoded || 0 : 0,
        frameWidth: inbound ? inbound.frameWidth || 0 : 0,
        frameHeight: inbound ? inbound.frameHeight || 0 : 0,
        codec: inbound && inbound.codecId && pc ? await codecName(pc, inbound.codecId) : null,
        picture,
      };
    },
    // ICE restarted on the call's RTCPeerConnection by the library's own re-INVITE, whose offer has a
    // new ice-ufrag and ice-pwd (RFC 8839 §4.4.1.1.1): JsSIP's renegotiate() with rtcOfferConstraints
    // {iceRestart: true}; SIP.js's invite() with offerOptions {iceRestart: true} for its
    // SessionDescriptionHandler (SIP.js 0.21 reads the flag there, handing offerOptions to createOffer).
    // Both wait for the new candidates before they send. Outcome: "iceRestarted", or "iceRestartFailed"
    // {status} (JsSIP ends the call when its re-INVITE is refused).
    restartIce() {
      const call = session.number;
      if (library === "jssip") {
        const started = session.renegotiate({ rtcOfferConstraints: { iceRestart: true } },
          () => emit("iceRestarted", { call }));
        if (!started) emit("iceRestartFailed", { call, status: null });
        return;
      }
      session.invite({
        sessionDescriptionHandlerOptions: { offerOptions: { iceRestart: true } },
        requestDelegate: {
          onAccept: () => emit("iceRestarted", { call }),
          onReject: (r) => emit("iceRestartFailed", { call, status: r.message.statusCode }),
        },
      }).catch((e) => emit("iceRestartFailed", { call, status: null, error: String(e) }));
    },
    // The library's WebSocket lost mid-call (a proxy restart, a NAT timeout, a network change): closed
    // under it, the library left to recover as applications do. JsSIP reconnects by itself (its recovery
    // timer: 2 s or more) and REGISTERs again, same +sip.instance and reg-id; SIP.js is told by its
    // delegate's onDisconnect in an application, which reconnects and REGISTERs again (the same Contact:
    // no reg-id by default). Its sessions stay "established" in both. Events: disconnected, connected,
    // registered.
    // `gone`: the network under it went (no close handshake can complete): an application that noticed
    // gives the socket up at once (JsSIP's WebSocketInterface told it closed uncleanly) instead of
    // waiting for Chromium's closing handshake to time out.
    async dropSocket(gone = false) {
      if (library === "jssip" && gone && quickRecovery) {
        ua.transport.disconnect(); // JsSIP's public Transport: connect() again at once, no recovery timer
        ua.transport.connect();
        return;
      }
      if (library === "jssip") {
        const socket = ua._transport.socket;
        const ws = socket._ws;
        if (gone) ws.onclose = null;
        ws.close();
        if (gone) socket._onClose({ wasClean: false, code: 1006, reason: "network changed" });
        return;
      }
      const dropped = new Promise((resolve) => {
        const listener = (state) => { if (state === SIP.TransportState.Disconnected) resolve(); };
        ua.transport.stateChange.addListener(listener);
      });
      dropping = true;
      ua.transport.ws.close();
      await dropped;
      try {
        await sipjsRecover();
      } finally {
        dropping = false;
      }
    },
    // The call's ICE now: the ufrags of its local and remote descriptions (the remote one is the
    // gateway's), its connection state, the selected pair's local candidate ("address:port"), and the
    // remote description (the gateway's last one) with its m=audio line.
    async ice() {
      const pc = peerConnection();
      if (!pc) return null;
      const ufrag = (d) => { const m = d ? /^a=ice-ufrag:(\S+)/m.exec(d.sdp) : null; return m ? m[1] : null; };
      let local = null;
      const stats = await pc.getStats();
      stats.forEach((s) => {
        if (s.type !== "transport" || !s.selectedCandidatePairId) return;
        const pair = stats.get(s.selectedCandidatePairId);
        const candidate = pair && stats.get(pair.localCandidateId);
        if (candidate) local = `${candidate.address}:${candidate.port}`;
      });
      const audio = (d) => { const m = d ? /^m=audio .*$/m.exec(d.sdp) : null; return m ? m[0].trim() : null; };
      return { local: ufrag(pc.localDescription), remote: ufrag(pc.remoteDescription), state: pc.connectionState, pair: local,
               remoteAudio: audio(pc.remoteDescription), remoteSdp: pc.remoteDescription ? pc.remoteDescription.sdp : null };
    },
    // The m-lines of the session's local and remote descriptions: [{kind, port}] each.
    mLines() {
      const pc = peerConnection();
      const lines = (d) => (d ? d.sdp.split(/\r?\n/).filter((l) => l.startsWith("m=")).map((l) => ({ kind: l.slice(2).split(" ")[0], port: Number(l.split(" ")[1]) })) : []);
      return pc ? { local: lines(pc.localDescription), remote: lines(pc.remoteDescription) } : null;
    },
    sendDtmf(digit, transport) {
      if (library === "jssip") {
        session.sendDTMF(digit, { transportType: transport === "rfc4733" ? "RFC2833" : "INFO", duration: 160 });
        return;
      }
      if (transport === "rfc4733") {
        session.sessionDescriptionHandler.sendDtmf(digit, { duration: 160 });
        return;
      }
      session.info({
        requestOptions: { body: { contentDisposition: "render", contentType: "application/dtmf-relay", content: `Signal=${digit}\r\nDuration=160` } },
      });
    },
    hold() { return library === "jssip" ? jssipHold(true) : sipjsHold(true); },
    unhold() { return library === "jssip" ? jssipHold(false) : sipjsHold(false); },
    hangup(options = {}) {
      const s = callOf(options);
      if (library === "jssip") { s.terminate(); return; }
      s.hangupLocally();
      const state = s.state;
      if (state === SIP.SessionState.Established) s.bye();
      else if (s instanceof SIP.Inviter) s.cancel();
      else s.reject();
    },
    // Make call `n` the current one (the one hold, dtmf, transfer... act on).
    select(n) {
      session = calls[n];
    },
    // REFER the call (the current one, or options.call) to `target` (blind); with options.replaces (a
    // call's number), attended: the Refer-To carries Replaces naming that call's dialog (RFC 3891).
    // Events: referAccepted {status} (the REFER's 2xx), referFailed {status}, referNotify {status} (each
    // NOTIFY's sipfrag).
    transfer(target, options = {}) {
      const s = callOf(options);
      const say = (type, fields) => emit(type, { call: s.number, ...fields });
      const other = options.replaces !== undefined && options.replaces !== null ? calls[options.replaces] : null;
      if (library === "jssip") {
        const handlers = {
          requestSucceeded: (e) => say("referAccepted", { status: e.response.status_code }),
          requestFailed: (e) => say("referFailed", { status: e.response ? e.response.status_code : null, cause: e.cause }),
        };
        const notified = (e) => say("referNotify", { status: Number(e.status_line.status_code) });
        ["trying", "progress", "accepted", "failed"].forEach((name) => { handlers[name] = notified; });
        s.refer(target, other ? { replaces: other, eventHandlers: handlers } : { eventHandlers: handlers });
        return;
      }
      s.refer(other || SIP.UserAgent.makeURI(target), {
        requestDelegate: {
          onAccept: (r) => say("referAccepted", { status: r.message.statusCode }),
          onReject: (r) => say("referFailed", { status: r.message.statusCode }),
        },
        onNotify: (notification) => {
          notification.accept();
          say("referNotify", { status: sipfragStatus(notification.request.body) });
        },
      }).catch((e) => say("referFailed", { status: null, error: String(e) }));
    },
    // Chat: a MESSAGE (text/plain) in the call's dialog (RFC 3428 §4). JsSIP's RTCSession has no
    // message(): its generic sendRequest(MESSAGE) sends one in the dialog (ua.sendMessage would go
    // outside any dialog). Events: messageSent {status}, messageFailed {status}.
    message(text, options = {}) {
      const s = callOf(options);
      const say = (type, fields) => emit(type, { call: s.number, ...fields });
      if (library === "jssip") {
        s.sendRequest(JsSIP.C.MESSAGE, {
          body: text,
          extraHeaders: ["Content-Type: text/plain;charset=utf-8"],
          eventHandlers: {
            onSuccessResponse: (r) => say("messageSent", { status: r.status_code }),
            onErrorResponse: (r) => say("messageFailed", { status: r.status_code }),
            onRequestTimeout: () => say("messageFailed", { status: 408 }),
            onTransportError: () => say("messageFailed", { status: null }),
          },
        });
        return;
      }
      s.message({
        requestOptions: { body: { contentDisposition: "render", contentType: "text/plain", content: text } },
        requestDelegate: {
          onAccept: (r) => say("messageSent", { status: r.message.statusCode }),
          onReject: (r) => say("messageFailed", { status: r.message.statusCode }),
        },
      }).catch((e) => say("messageFailed", { status: null, error: String(e) }));
    },
    // RMS of the received audio's last analyser window (0..1 of full scale; 0 before any arrives).
    remoteLevel() {
      if (!audio) return 0;
      const samples = new Float32Array(audio.analyser.fftSize);
      audio.analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const x of samples) sum += x * x;
      return Math.sqrt(sum / samples.length);
    },
    // Relative power at `freq` Hz in the received audio: the bin's level (dB) above the median of the
    // telephone band (100-3800 Hz). Not the whole spectrum's median: narrowband audio (PCMU, 8 kHz)
    // leaves the bins above 4 kHz empty, and over that floor every bin of any audio would stand out.
    remoteTone(freq) {
      if (!audio) return -999;
      const bins = new Float32Array(audio.analyser.frequencyBinCount);
      audio.analyser.getFloatFrequencyData(bins);
      const binOf = (hz) => Math.min(bins.length - 1, Math.round((hz / audio.context.sampleRate) * audio.analyser.fftSize));
      const index = binOf(freq);
      let peak = -Infinity;
      for (let i = Math.max(0, index - 2); i <= Math.min(bins.length - 1, index + 2); i++) peak = Math.max(peak, bins[i]);
      const band = Array.from(bins.slice(binOf(100), binOf(3800) + 1)).sort((a, b) => a - b);
      return peak - band[Math.floor(band.length / 2)];
    },
  };
})();
