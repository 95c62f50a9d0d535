// chat.js: chat in a call on the softphone page (issue 17). A line typed here goes to the far end as a
// SIP MESSAGE in the call's dialog (call.sendMessage: `message {call_id, body}` over /ws, which works on
// every call, with or without a data channel); the far end's MESSAGEs come as the call's "message"
// events, and its answer to ours as "message_result" (200: delivered). Each call keeps its own lines;
// the panel shows the current call's and can send while it is connected or held.

const MAX_BYTES = 8192; // as the gateway's limit on a MESSAGE body

export class ChatPanel {
  constructor({ panel, log, form, input, button }) {
    this.el = { panel, log, input, button };
    this.call = null;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this._send();
    });
  }

  // Start keeping a call's lines (once per call).
  attach(call, who) {
    if (call.chat) return;
    call.chat = [];
    call.addEventListener("message", (event) => {
      this._add(call, { mine: false, who: who(call), text: event.detail.body, status: "" });
    });
    call.addEventListener("message_result", (event) => {
      const line = call.chat.find((l) => l.mine && l.status === "sending");
      if (!line) return;
      const status = event.detail.status;
      line.status = status >= 200 && status < 300 ? "delivered" : `not delivered (SIP ${status})`;
      if (call === this.call) this._render();
    });
  }

  // Show `call`'s lines (null: none); `canSend` while it is connected or held.
  show(call, canSend) {
    this.call = call;
    this.el.panel.hidden = !call;
    this.el.input.disabled = !canSend;
    this.el.button.disabled = !canSend;
    this._render();
  }

  _add(call, line) {
    call.chat.push(line);
    if (call === this.call) this._render();
  }

  _send() {
    const call = this.call;
    const text = this.el.input.value.trim();
    if (!call || !text) return;
    if (new TextEncoder().encode(text).length > MAX_BYTES) {
      this._add(call, { mine: true, who: "You", text: text.slice(0, 80) + "…", status: "too long, not sent" });
      return;
    }
    this.el.input.value = "";
    const line = { mine: true, who: "You", text, status: "sending" };
    this._add(call, line);
    call.sendMessage(text).catch((error) => {
      line.status = `not sent (${error.message || error.code})`;
      if (call === this.call) this._render();
    });
  }

  _render() {
    const log = this.el.log;
    log.replaceChildren();
    for (const line of this.call?.chat || []) {
      const item = document.createElement("li");
      item.className = line.mine ? "mine" : "theirs";
      const who = document.createElement("strong");
      who.textContent = `${line.who}: `;
      item.append(who, document.createTextNode(line.text));
      if (line.status) {
        const status = document.createElement("small");
        status.className = "chat-status";
        status.textContent = ` ${line.status}`;
        item.append(status);
      }
      log.append(item);
    }
    log.scrollTop = log.scrollHeight;
  }
}
