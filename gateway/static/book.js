// book.js: the call history (kept in this browser's localStorage, per user) and the contacts list (web
// users of the gateway this user may call, with presence, from GET /contacts).

const MAX_ENTRIES = 50;

export class History {
  constructor(user) {
    this.key = `gateway.history.${user}`;
    try {
      this.entries = JSON.parse(localStorage.getItem(this.key) || "[]");
      if (!Array.isArray(this.entries)) this.entries = [];
    } catch {
      this.entries = [];
    }
  }

  // entry: {direction: "in"|"out", number, name, dial (what "Call back" dials; number when absent), at
  // (ms), duration (s), outcome: answered|missed|rejected|failed|cancelled|elsewhere (answered on another
  // device: no duration here)}
  add(entry) {
    this.entries.unshift(entry);
    this.entries = this.entries.slice(0, MAX_ENTRIES);
    this._save();
  }

  clear() {
    this.entries = [];
    this._save();
  }

  // The name an earlier call with `number` gave (a SIP display name), or "".
  nameOf(number) {
    return this.entries.find((e) => e.name && e.number === number)?.name || "";
  }

  get missed() {
    return this.entries.filter((e) => e.outcome === "missed" && !e.seen).length;
  }

  markSeen() {
    let changed = false;
    for (const entry of this.entries) {
      if (entry.outcome === "missed" && !entry.seen) { entry.seen = true; changed = true; }
    }
    if (changed) this._save();
  }

  _save() {
    try {
      localStorage.setItem(this.key, JSON.stringify(this.entries));
    } catch {
      // storage full or disabled: the history lives for this page only
    }
  }
}

// One name per party (issue 39): {number, name} for a SIP URI or a dialled string. The directory's
// (`contacts`: web users) when the number, user id or name is a contact's ("Bob", 1002); else `given`
// (the SIP side's display name) or the one an earlier call with that number gave in `history`; else no
// name. The number is the URI's user part, never the raw URI ("sip:2000@pbx" is 2000).
export function partyName(uri, given, contacts, history) {
  const number = String(uri || "").replace(/^(sips?|tel):/i, "").replace(/[@;].*$/, "");
  const lower = number.toLowerCase();
  const contact = contacts.find((c) => c.number === number || c.id.toLowerCase() === lower
    || c.display_name.toLowerCase() === lower);
  if (contact) return { number: contact.number, name: contact.display_name };
  return { number, name: given || history?.nameOf(number) || "" };
}

// How the page writes a party: "Bob (1002)", "Demo desk phone (2000)", or the number alone.
export const partyLabel = ({ number, name }) => (name && name !== number ? `${name} (${number})` : number);

const OUTCOME_TEXT = {
  answered: "", missed: "Missed", rejected: "Rejected", failed: "Failed", cancelled: "Cancelled",
  elsewhere: "Answered on another device",
};

function when(ms) {
  const date = new Date(ms);
  const today = new Date();
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return date.toDateString() === today.toDateString() ? time : `${date.toLocaleDateString()} ${time}`;
}

function seconds(total) {
  const m = Math.floor(total / 60);
  return `${m}:${String(total % 60).padStart(2, "0")}`;
}

// Fill `list` (an <ol>) with the history; `onCall(number)` redials; `describe(entry)` names the party.
export function renderHistory(list, history, onCall, describe) {
  list.replaceChildren();
  for (const entry of history.entries) {
    const item = document.createElement("li");
    item.className = `history-entry ${entry.outcome}`;
    const text = document.createElement("span");
    const arrow = entry.direction === "in" ? "Incoming" : "Outgoing";
    const outcome = OUTCOME_TEXT[entry.outcome] ?? entry.outcome;
    const who = describe(entry);
    const details = [arrow, outcome, when(entry.at), entry.duration ? seconds(entry.duration) : ""]
      .filter(Boolean).join(" · ");
    text.innerHTML = "";
    const strong = document.createElement("strong");
    strong.textContent = who;
    const small = document.createElement("small");
    small.textContent = details;
    text.append(strong, document.createElement("br"), small);
    const button = document.createElement("button");
    button.type = "button";
    button.className = "small";
    button.textContent = "Call back";
    button.setAttribute("aria-label", `Call ${who} back`);
    button.addEventListener("click", () => onCall(entry.dial || entry.number));
    item.append(text, button);
    list.append(item);
  }
  if (!history.entries.length) emptyLine(list, "No calls yet.");
}

// GET /contacts with the session token: [{id, display_name, number, online}]
export async function fetchContacts(token) {
  const response = await fetch("/contacts", { headers: { Authorization: `Bearer ${token}` } });
  if (!response.ok) throw new Error(`contacts: HTTP ${response.status}`);
  return (await response.json()).contacts;
}

export function renderContacts(list, contacts, onCall) {
  list.replaceChildren();
  for (const contact of contacts) {
    const item = document.createElement("li");
    item.className = "contact";
    item.dataset.user = contact.id;
    const dot = document.createElement("span");
    dot.className = `presence ${contact.online ? "online" : "offline"}`;
    dot.setAttribute("aria-hidden", "true");
    const text = document.createElement("span");
    text.className = "contact-name";
    text.textContent = `${contact.display_name} · ${contact.number}`;
    const state = document.createElement("small");
    state.className = "presence-text";
    state.textContent = contact.online ? "online" : "offline";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "small";
    button.textContent = "Call";
    button.setAttribute("aria-label", `Call ${contact.display_name}`);
    button.addEventListener("click", () => onCall(contact.number));
    item.append(dot, text, state, button);
    list.append(item);
  }
  if (!contacts.length) emptyLine(list, "No contacts.");
}

// An empty list says so in a line of its own ("No calls yet."), not a blank card.
function emptyLine(list, text) {
  const item = document.createElement("li");
  item.className = "muted";
  item.textContent = text;
  list.append(item);
}
