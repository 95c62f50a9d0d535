// admin.js: the admin page (gateway/static/admin.html). It logs in once (an admin user's id and secret,
// exchanged for a session token at POST /admin/api/session, or the gateway's admin.token), keeps the token
// in this tab's sessionStorage, and polls GET /admin/api/calls every POLL_MS to show the live calls of every
// instance. Each row has a hang-up button (POST /admin/api/calls/{id}/hangup) and a trace download
// (GET /admin/api/calls/{id}/trace). docs/operations.md "Admin page and REST API".

const TOKEN_KEY = "gateway-admin-token";
const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);
let timer = null;

function showError(text) {
  const box = $("error");
  box.textContent = text || "";
  box.hidden = !text;
}

async function api(method, path, body, token = sessionStorage.getItem(TOKEN_KEY)) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store",
  });
  return response;
}

async function errorText(response) {
  try {
    const body = await response.json();
    return body.error || `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

// A leg's figures as one span each ("MOS 4.4" never breaks inside), so a narrow cell wraps between them.
function leg(figures) {
  if (!figures) return ["–"];
  const parts = [figures.codec || "?"];
  if (typeof figures.mos === "number") parts.push(`MOS ${figures.mos.toFixed(1)}`);
  const sent = figures.packets_received + figures.packets_lost;
  if (sent > 0) parts.push(`loss ${((100 * figures.packets_lost) / sent).toFixed(1)}%`);
  if (typeof figures.jitter === "number") parts.push(`jitter ${(figures.jitter * 1000).toFixed(0)} ms`);
  if (typeof figures.rtt === "number") parts.push(`rtt ${(figures.rtt * 1000).toFixed(0)} ms`);
  return parts;
}

function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

// Each cell carries its column's name (data-label): a narrow screen shows a call as a card of label: value.
const COLUMNS = [...document.querySelectorAll("#calls thead th")].map((th) => th.textContent.trim());

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text ?? "–";
  if (className) td.className = className;
  td.dataset.label = COLUMNS[row.cells.length] ?? "";
  row.append(td);
  return td;
}

// A party's URI may break after its "@" (sip:1001@ / pbx.example.com), so the From and To columns stay narrow.
function partyCell(row, uri) {
  const td = cell(row, "", "party");
  const at = (uri ?? "").indexOf("@");
  if (at < 0) td.textContent = uri || "–";
  else td.append(uri.slice(0, at + 1), document.createElement("wbr"), uri.slice(at + 1));
}

function legCell(row, figures) {
  const figuresSpan = document.createElement("span"); // one grid item beside the label on a narrow screen
  leg(figures).forEach((part, index) => {
    const span = document.createElement("span");
    span.className = "figure";
    span.textContent = part;
    figuresSpan.append(...(index ? [" · ", span] : [span]));
  });
  cell(row, "", "leg").append(figuresSpan);
}

async function hangUp(callId, button) {
  button.disabled = true;
  const response = await api("POST", `/admin/api/calls/${encodeURIComponent(callId)}/hangup`);
  if (!response.ok) showError(`Hang-up of ${callId} failed: ${await errorText(response)}`);
  await refresh();
}

async function downloadTrace(callId) {
  const response = await api("GET", `/admin/api/calls/${encodeURIComponent(callId)}/trace`);
  if (!response.ok) {
    showError(`No trace of ${callId}: ${await errorText(response)}`);
    return;
  }
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = `${callId}.trace.txt`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

function render(body) {
  const tbody = $("calls").querySelector("tbody");
  tbody.replaceChildren();
  for (const call of body.calls) {
    const row = document.createElement("tr");
    row.dataset.callId = call.call_id;
    partyCell(row, call.from);
    partyCell(row, call.to);
    cell(row, call.user);
    cell(row, call.dialect);
    cell(row, call.instance);
    cell(row, call.state, "state");
    cell(row, duration(call.duration), "duration");
    legCell(row, call.legs?.web);
    legCell(row, call.legs?.sip);
    const actions = cell(row, "", "actions");
    const hangup = document.createElement("button");
    hangup.type = "button";
    hangup.className = "hangup";
    hangup.textContent = "Hang up";
    hangup.setAttribute("aria-label", `Hang up ${call.from || ""} to ${call.to || ""}`);
    hangup.addEventListener("click", () => hangUp(call.call_id, hangup));
    const trace = document.createElement("button");
    trace.type = "button";
    trace.textContent = "Trace";
    trace.addEventListener("click", () => downloadTrace(call.call_id));
    actions.append(hangup, " ", trace);
    tbody.append(row);
  }
  $("call-count").textContent = String(body.calls.length);
  $("no-calls").hidden = body.calls.length > 0;
  const instances = Object.entries(body.instances || {});
  $("instances").textContent = instances.length > 1
    ? "Instances: " + instances.map(([id, state]) => `${id} ${state}`).join(", ")
    : "";
}

async function refresh() {
  let response;
  try {
    response = await api("GET", "/admin/api/calls");
  } catch (error) {
    $("status").textContent = `Gateway unreachable (${error.message}); retrying`;
    return;
  }
  if (response.status === 401 || response.status === 403) {
    logOut(await errorText(response));
    return;
  }
  if (!response.ok) {
    showError(await errorText(response));
    return;
  }
  showError("");
  render(await response.json());
  $("status").textContent = `Updated ${new Date().toLocaleTimeString()}`;
}

function start() {
  $("login-panel").hidden = true;
  $("calls-panel").hidden = false;
  $("logout").hidden = false;
  clearInterval(timer);
  timer = setInterval(refresh, POLL_MS);
  return refresh();
}

function logOut(why) {
  clearInterval(timer);
  sessionStorage.removeItem(TOKEN_KEY);
  $("login-panel").hidden = false;
  $("calls-panel").hidden = true;
  $("logout").hidden = true;
  $("status").textContent = "Not logged in";
  showError(why || "");
}

async function logIn(event) {
  event.preventDefault();
  showError("");
  const token = $("login-token").value.trim();
  if (token) {
    const response = await api("GET", "/admin/api/calls", undefined, token);
    if (!response.ok) {
      showError(await errorText(response));
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    await start();
    return;
  }
  const user = $("login-user").value.trim();
  const secret = $("login-secret").value;
  if (!user || !secret) {
    showError("Enter a user id and secret, or the admin token");
    return;
  }
  const basic = btoa(String.fromCharCode(...new TextEncoder().encode(`${user}:${secret}`)));
  const response = await fetch("/admin/api/session", { method: "POST", headers: { Authorization: `Basic ${basic}` } });
  if (!response.ok) {
    showError(await errorText(response));
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, (await response.json()).token);
  $("login-secret").value = "";
  await start();
}

$("login-form").addEventListener("submit", logIn);
$("login-button").disabled = false; // admin.html ships it disabled until the form is handled here
$("logout").addEventListener("click", () => logOut(""));
if (sessionStorage.getItem(TOKEN_KEY)) start();
