// rtt.js: real-time text in a call on the softphone page (issue 68). When the far end is a text phone
// (RFC 4103 on the SIP side), the gateway opens a T.140 data channel (RFC 8865: subprotocol "t140") on the
// call's RTCPeerConnection; this panel then shows the far end's characters as they arrive and sends ours
// as they are typed, one T.140 character string per change: erasures as BACKSPACE (U+0008), a new line
// as LINE SEPARATOR (U+2028), as ITU-T T.140 writes them. The gateway does the 300 ms buffering and the
// redundancy toward the SIP side.

const BACKSPACE = "\u0008";
const LINE_SEPARATOR = "\u2028";
const BOM = "\ufeff";

// The far end's T.140 text applied to what was shown: erasures remove the last character, line
// separators (and CR LF) break the line.
export function applyT140(shown, received) {
  const chars = Array.from(shown);
  for (const char of Array.from(received.replaceAll("\r\n", "\n"))) {
    if (char === BACKSPACE) chars.pop();
    else if (char === LINE_SEPARATOR || char === "\r") chars.push("\n");
    else if (char !== BOM) chars.push(char);
  }
  return chars.join("");
}

// What to send for the input going from `before` to `after`: an erasure per character removed past their
// common start, then the characters added (new lines as LINE SEPARATOR).
export function t140Change(before, after) {
  const old = Array.from(before);
  const now = Array.from(after);
  let same = 0;
  while (same < old.length && same < now.length && old[same] === now[same]) same += 1;
  const added = now.slice(same).map((c) => (c === "\n" ? LINE_SEPARATOR : c)).join("");
  return BACKSPACE.repeat(old.length - same) + added;
}

// The calls this page places ask for real-time text in their offer (RFC 8865 §5.1: an a=dcmap line with
// subprotocol "t140" on the data channel m-line) and open the T.140 channel themselves (DCEP): the gateway
// then offers RFC 4103 text to the SIP side. The "Real-time text in my calls" choice is kept in localStorage.
const KEY = "gateway.rtt";

export class RttPanel {
  constructor({ panel, theirs, input, toggle }) {
    this.el = { panel, theirs, input, toggle };
    this.call = null;
    input.addEventListener("input", () => this._typed());
    try { toggle.checked = localStorage.getItem(KEY) === "on"; } catch { /* private mode */ }
    toggle.addEventListener("change", () => {
      try { localStorage.setItem(KEY, toggle.checked ? "on" : "off"); } catch { /* private mode */ }
    });
  }

  // Whether the calls this page places ask for real-time text.
  get wanted() {
    return this.el.toggle.checked;
  }

  // Take the call's T.140 data channel: the one this page opened (`call.t140`), or the gateway's.
  attach(call) {
    if (call.rttWatched) return;
    call.rttWatched = true;
    if (call.t140) this._take(call, call.t140);
    call.addEventListener("datachannel", (event) => {
      if (event.detail.channel.protocol === "t140") this._take(call, event.detail.channel);
    });
  }

  _take(call, channel) {
    // (a reattach's new channel: the conversation so far stays on the panel)
    call.rtt = { channel, theirs: call.rtt?.theirs || "", mine: call.rtt?.mine || "" };
    channel.addEventListener("message", (e) => {
      call.rtt.theirs = applyT140(call.rtt.theirs, String(e.data));
      if (call === this.call) this._render();
    });
    channel.addEventListener("open", () => call === this.call && this._render());
    // closed: the far end took no text (or the call ended): the panel goes
    channel.addEventListener("close", () => {
      if (call.rtt?.channel === channel && !call.rtt.theirs && !call.rtt.mine) call.rtt = null;
      if (call === this.call) this.show(call);
    });
    if (call === this.call) this.show(call);
  }

  // Show `call`'s text (null, or a call without a T.140 channel: the panel is hidden).
  show(call) {
    const changed = call !== this.call;
    this.call = call;
    this.el.panel.hidden = !call?.rtt;
    if (changed) this.el.input.value = call?.rtt?.mine || "";
    this._render();
  }

  _typed() {
    const rtt = this.call?.rtt;
    if (!rtt || rtt.channel.readyState !== "open") return;
    const value = this.el.input.value;
    const change = t140Change(rtt.mine, value);
    rtt.mine = value;
    if (change) rtt.channel.send(change);
  }

  _render() {
    const rtt = this.call?.rtt;
    this.el.theirs.textContent = rtt ? rtt.theirs : "";
    this.el.input.disabled = !rtt || rtt.channel.readyState !== "open";
  }
}
