// Busy lamps and the voicemail light (issue 37): the gateway subscribes at the PBX to the extensions the
// user watches (users[].watch) and to her mailbox, and tells this page `contact_state` {number, state:
// idle | ringing | busy | unknown, pickup} and `voicemail` {mailbox, waiting, new, old} (docs/signaling.md).
// The "Colleagues" card lists each watched extension with its lamp; while one rings, "Pick up" dials its
// `pickup` number (pbx.pickup_prefix + the extension), which the PBX turns into a directed call pickup.
// The header's envelope shows the new and old voice messages while any wait.

const LABELS = { idle: "Available", ringing: "Ringing", busy: "On a call", unknown: "Unknown" };

export class LampPanel {
  // `client`: the GatewayClient; `nameOf(number)`: a colleague's name, if the directory knows it;
  // `pickup(number)`: place the call that picks a ringing colleague's call up.
  constructor({ client, panel, list, voicemail, nameOf, pickup }) {
    this.panel = panel;
    this.list = list;
    this.voicemailBadge = voicemail;
    this.nameOf = nameOf;
    this.pickup = pickup;
    this.lamps = new Map(); // number -> {number, state, pickup}, in the order first told
    client.addEventListener("contact_state", (event) => this.contactState(event.detail));
    client.addEventListener("voicemail", (event) => this.voicemail(event.detail));
    client.addEventListener("logout", () => this.clear());
  }

  contactState({ number, state, pickup }) {
    this.lamps.set(number, { number, state, pickup: pickup || null });
    this.render();
  }

  voicemail({ waiting, new: fresh, old }) {
    const badge = this.voicemailBadge;
    badge.hidden = !waiting && !fresh;
    badge.dataset.new = String(fresh);
    badge.textContent = `✉ ${fresh} new · ${old} old`;
    badge.title = waiting ? `Voicemail: ${fresh} new, ${old} old messages` : "No new voicemail";
    badge.setAttribute("aria-label", badge.title);
  }

  clear() {
    this.lamps.clear();
    this.voicemailBadge.hidden = true;
    this.render();
  }

  // Rebuilt whole on each change: a handful of colleagues, never a hot path.
  render() {
    this.panel.hidden = this.lamps.size === 0;
    this.list.replaceChildren(...[...this.lamps.values()].map((lamp) => this.item(lamp)));
  }

  item({ number, state, pickup }) {
    const li = document.createElement("li");
    li.dataset.number = number;
    li.dataset.state = state;
    const dot = document.createElement("span");
    dot.className = `lamp lamp-${state}`;
    dot.setAttribute("aria-hidden", "true");
    const name = document.createElement("span");
    name.className = "lamp-name";
    const known = this.nameOf(number);
    name.textContent = known ? `${known} (${number})` : number;
    const label = document.createElement("span");
    label.className = "lamp-state";
    label.textContent = LABELS[state] || state;
    li.append(dot, name, label);
    if (state === "ringing" && pickup) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "pickup";
      button.textContent = "Pick up";
      button.setAttribute("aria-label", `Pick up the call ringing at ${known || number}`);
      button.addEventListener("click", () => this.pickup(pickup));
      li.append(button);
    }
    return li;
  }
}
