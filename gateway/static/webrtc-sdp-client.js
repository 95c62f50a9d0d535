// WebRTCSDPClient 1.0.0: the gateway's HTTP offer/answer API (docs/signaling.md "HTTP offer/answer API")
// in the shape of RustPBX's "WebRTC SDP Integration Guide" JavaScript client. A classic script without
// dependencies (the document loads it with <script src>): it defines the globals WebRTCSDPClient and
// WebRTCSDPError. Every failed request rejects with a WebRTCSDPError whose `code` is the HTTP status (the
// error body's `code`), `reason` the gateway's machine code (e.g. "no_such_number"), `sessionId` the
// session it concerns, and `message` the gateway's text.
//
//   const client = new WebRTCSDPClient("https://gateway.example.org", { apiKey: "..." });
//   // or { token }, or { user, secret } (Basic); none: WebRTCSDPClient.defaults (else 401)
//   const iceServers = await client.getIceServers();           // [{urls, username?, credential?}]
//   const { sessionId, answerSdp } = await client.exchangeSdp(offer.sdp);
//   await client.sendIceCandidate(sessionId, event.candidate);  // null: the end of the candidates
//   await client.closeSession(sessionId, "User ended call");
(function (root) {
  "use strict";

  class WebRTCSDPError extends Error {
    constructor(message, code, reason = null, sessionId = null, field = null) {
      super(message);
      this.name = "WebRTCSDPError";
      this.code = code;
      this.reason = reason;
      this.sessionId = sessionId;
      this.field = field;
    }
  }

  function candidateJson(candidate) {
    if (candidate === null || candidate === undefined) return null;
    const init = typeof candidate.toJSON === "function" ? candidate.toJSON() : candidate;
    if (!init.candidate) return null; // Chrome's empty candidate also means "no more"
    return {
      candidate: init.candidate,
      sdpMid: init.sdpMid ?? null,
      sdpMLineIndex: init.sdpMLineIndex ?? null,
      ...(init.usernameFragment ? { usernameFragment: init.usernameFragment } : {}),
    };
  }

  class WebRTCSDPClient {
    static VERSION = "1.0.0";
    // Credentials for clients made without options, as `new WebRTCSDPClient(url)` in the document's
    // examples: set once, e.g. WebRTCSDPClient.defaults = { apiKey: "..." }.
    static defaults = {};

    constructor(baseUrl = "", options = WebRTCSDPClient.defaults) {
      this.baseUrl = String(baseUrl || "").replace(/\/+$/, "");
      this.headers = {};
      if (options.apiKey) this.headers["X-API-Key"] = options.apiKey;
      else if (options.token) this.headers.Authorization = `Bearer ${options.token}`;
      else if (options.user !== undefined && options.secret !== undefined) {
        const pair = new TextEncoder().encode(`${options.user}:${options.secret}`);
        this.headers.Authorization = `Basic ${btoa(String.fromCharCode(...pair))}`;
      }
      this.timeout = options.timeout ?? 30000; // ms per request
    }

    async request(method, path, body, sessionId = null) {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), this.timeout);
      let response;
      try {
        response = await fetch(this.baseUrl + path, {
          method,
          headers: body === undefined ? { ...this.headers } : { ...this.headers, "Content-Type": "application/json" },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: controller.signal,
          credentials: "omit",
        });
      } catch (error) {
        const timedOut = error && error.name === "AbortError";
        throw new WebRTCSDPError(timedOut ? "request timed out" : `network error: ${error.message}`,
          timedOut ? 408 : 0, timedOut ? "timeout" : "network_error", sessionId);
      } finally {
        clearTimeout(timer);
      }
      let data = null;
      try {
        data = await response.json();
      } catch (error) {
        data = null;
      }
      if (!response.ok) {
        const detail = data && typeof data === "object" ? data : {};
        throw new WebRTCSDPError(detail.error || `HTTP ${response.status}`,
          typeof detail.code === "number" ? detail.code : response.status,
          detail.reason || null, detail.session_id || sessionId, detail.field || null);
      }
      return data;
    }

    /** The browser's ICE servers: `new RTCPeerConnection({ iceServers })`. */
    async getIceServers() {
      return this.request("GET", "/iceservers");
    }

    /** The full answer: {session_id, sdp: {type, sdp}, ice_candidates, metadata, call_id}. */
    async sendOffer(sdp, sessionId = null, metadata = null) {
      const body = { sdp: { type: "offer", sdp } };
      if (sessionId) body.session_id = sessionId;
      if (metadata) body.metadata = metadata;
      return this.request("POST", "/webrtc/offer", body, sessionId);
    }

    /** Offer `sdp` to the credentials' default destination (or `metadata.dial`): {sessionId, answerSdp}. */
    async exchangeSdp(sdp, metadata = null) {
      const answer = await this.sendOffer(sdp, null, metadata);
      return { sessionId: answer.session_id, answerSdp: answer.sdp.sdp, metadata: answer.metadata };
    }

    /** A trickled candidate (RTCIceCandidate or its JSON); null ends the candidates. */
    async sendIceCandidate(sessionId, candidate) {
      return this.request("POST", "/webrtc/ice-candidate",
        { session_id: sessionId, candidate: candidateJson(candidate) }, sessionId);
    }

    /** Offer, then every candidate and the end of candidates: {sessionId, answerSdp}. */
    async setupSession(sdp, candidates = []) {
      const result = await this.exchangeSdp(sdp);
      for (const candidate of candidates) await this.sendIceCandidate(result.sessionId, candidate);
      await this.sendIceCandidate(result.sessionId, null);
      return result;
    }

    /** Hang the session's call up. */
    async closeSession(sessionId, reason = null) {
      const body = { session_id: sessionId };
      if (reason) body.reason = reason;
      return this.request("POST", "/webrtc/close", body, sessionId);
    }

    /** The session's state and progress events so far (GET /webrtc/sessions/{id}). */
    async sessionStatus(sessionId) {
      return this.request("GET", `/webrtc/sessions/${encodeURIComponent(sessionId)}`, undefined, sessionId);
    }
  }

  root.WebRTCSDPClient = WebRTCSDPClient;
  root.WebRTCSDPError = WebRTCSDPError;
  if (typeof module === "object" && module && module.exports) module.exports = { WebRTCSDPClient, WebRTCSDPError };
})(typeof globalThis !== "undefined" ? globalThis : this);
