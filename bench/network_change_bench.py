"""The audio gap when a browser's network changes mid-call (issue 34): per dialect, N calls, each moved once.

Run (as root: it makes a network namespace): python bench/network_change_bench.py [--calls 20]
[--dialects ws,http,jsonrpc,page]   (about 20 s per call; needs the pjsua2 desk phone; page: Chromium)

The gateway runs in this process, in the root namespace, on the veth end 10.201.0.1 with the pjsua2 desk
phone (user 2000, 440 Hz) as its PBX on loopback. The browser is an aiortc client in a namespace of its
own behind the veth pair, run by this script again (``--peer``, under ``ip netns exec``), one call at a
time. Once the client hears the phone, its address is changed (10.201.0.2 -> .3 -> .4 ...: the old one
deleted, a new one added, as a laptop moving from Wi-Fi to wired): its sockets, the signalling's and the
media's, are dead from then on, though the gateway is not told (no FIN, no RST reaches it). The client is
told at once, as a browser is by its `online`/network change events, and recovers as its dialect allows
an aiortc client (which cannot restart ICE):

- ``ws``: a new socket logs in with its session token (the old one lingers: the login takes its call
  over), the `calls` it is told, `reattach` with a new RTCPeerConnection;
- ``http``: a new RTCPeerConnection's offer posted with the session's `session_id` (new media);
- ``jsonrpc``: a new socket announces the peer id (it takes the peer over from the lingering socket), then
  `offer {call_id, sdp}` from a new RTCPeerConnection.

``jssip`` is unmodified JsSIP in headless Chromium over SIP over WebSocket; the bench plays its
application's part on a network change (see JsSipClient). ``page`` is the softphone page (`/ws`) in headless Chromium, in the namespace too: nothing tells it of the
move but what Chromium itself notices (its network change events, its WebSocket and ICE failing), and
it recovers as it would for a user, unaided. Its gap is read from the page's own RTCPeerConnections
(packets received, every 50 ms): from the move to the first packets of the phone's audio again.

The gap is from the address change to the first 100 ms in which the client hears the phone's tone again
(so it includes the client's own reconnect and the new ICE/DTLS set-up). A call is lost when the tone
does not come back within 15 s or the phone saw it end before the client hung up. Printed per dialect:
p50/p99/max of the gap and calls lost, with /proc/loadavg. SIP over WebSocket is not measured here: its
libraries renew media by an ICE restart of the same RTCPeerConnection, which aiortc cannot do (the JsSIP
and SIP.js tests restart ICE in Chromium).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from peers.netns import ClientNetwork  # noqa: E402

NETWORK = ClientNetwork(band=0)  # the client's namespace (peers/netns.py): gwnc0, 10.201.0.0/24
GATEWAY_IP = NETWORK.host_ip
API_KEY = "bench-network-change-key-0123456789"
TONE = 440
REALM = "127.0.0.1"  # the gateway's SIP domain (tests/e2e/harness.py gateway_config)
BACK_WITHIN = 15.0


# ------------------------------------------------------------------------------------ the client (--peer)


class PageClient:
    """The softphone page in headless Chromium (``page``): calls the phone, then recovers by itself."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.address = ""
        self._stack = contextlib.AsyncExitStack()
        self.page: Any = None

    async def call(self) -> Any:
        from tests.e2e.harness import ALICE_SECRET
        from tests.signaling.browser import RECORD_PEER_CONNECTIONS, chromium_page, expect, log_in

        if self.page is not None:  # each call a person's first move: the tab reloaded (its token kept)
            # One tab moved every ~12 s is a network in trouble to the page: from the third drop within a
            # minute its checks wait twice as long and reconnect with a backoff (webrtc-client.js
            # PROBE_DROPS), 4.9 s p50 in such a run. A reload starts the page's count again.
            await self.page.reload()
        else:  # one browser for every call
            flags = [f"--unsafely-treat-insecure-origin-as-secure={self.base}"]  # getUserMedia on http://
            # the desktop browser, as users run it (the headless shell ignores that flag)
            self.page = await self._stack.enter_async_context(chromium_page(flags=flags, full=True))
            await self.page.add_init_script(RECORD_PEER_CONNECTIONS)
            await self.page.add_init_script(RECORD_PHASES)
            await self.page.goto(self.base + "/")
            await log_in(self.page, "alice", ALICE_SECRET)
            await expect(self.page.locator("#status")).to_have_text("Registered as Alice", timeout=15000)
        page = self.page  # registered again (its socket died with the last move)
        await expect(page.locator("#status")).to_have_text("Registered as Alice", timeout=30000)
        await page.locator("#number").fill("2000")
        await page.get_by_role("button", name="Call", exact=True).click()
        await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
        await self.flowing(10.0)
        return {}

    async def flowing(self, within: float) -> float:
        from tests.signaling.browser import audio_flowing

        return await audio_flowing(self.page, within)

    async def mark(self) -> None:
        """The move's moment in the page's clock (the phases are printed from it)."""
        self.moved_at = await self.page.evaluate("performance.now()")

    async def phases(self) -> str:
        events = await self.page.evaluate("window.__phases || []")
        moved = getattr(self, "moved_at", 0.0)
        return " ".join(f"{name}@{at - moved:.0f}" for at, name in events if at >= moved)

    async def recover(self, state: Any) -> Any:
        from tests.signaling.browser import expect

        async def hang_up() -> None:
            await self.page.get_by_role("button", name="Hang up", exact=True).first.click()
            await expect(self.page.locator("#call-state")).to_have_text("No call", timeout=10000)

        return self, hang_up

    async def forget(self) -> None:
        pass

    async def close(self) -> None:
        await self._stack.aclose()


class JsSipClient(PageClient):
    """Unmodified JsSIP in headless Chromium over the gateway's SIP WebSocket (``jssip``). JsSIP notices
    nothing by itself (its WebSocket looks open), so this plays the application's part, as the softphone
    page does for itself: no audio packet for 300 ms, and the application drops the socket; JsSIP
    connects again and REGISTERs (RFC 5626, the same instance and reg-id, so the gateway moves the call's
    dialog to the new flow), then the application restarts ICE with its re-INVITE. How soon JsSIP
    connects again is the application's (``--jssip-recovery``, JSSIP_RECOVERY_ENV): ``quick`` (the
    default) as docs/interop.md recommends, at once and each offer sent 300 ms after its last candidate
    (peers/js-softphones/driver.js `quickRecovery`); ``default``: after JsSIP's own recovery timer (2 s)
    and at the end of ICE gathering."""

    async def call(self) -> Any:
        from peers.softphones import Softphone
        from tests.e2e.websip.test_sip_websocket import ALICE_SIP_PASSWORD
        from tests.signaling.browser import RECORD_PEER_CONNECTIONS, chromium_page

        if self.page is None:
            flags = [f"--unsafely-treat-insecure-origin-as-secure={self.base}"]
            self.page = await self._stack.enter_async_context(chromium_page(flags=flags, full=True))
            await self.page.add_init_script(RECORD_PEER_CONNECTIONS)
            await self.page.add_init_script(RECORD_PHASES)
            self.phone = await self._stack.enter_async_context(
                Softphone(self.page, "jssip", origin=self.base)
            )
            ws_url = self.base.replace("http", "ws", 1) + "/sip"
            quick = os.environ.get(JSSIP_RECOVERY_ENV, "quick") == "quick"
            await self.phone.start(ws_url, f"sip:alice@{REALM}", ALICE_SIP_PASSWORD, quick_recovery=quick)
            await self.phone.wait_for("registered")
        await self.phone.call(f"sip:2000@{REALM}")
        await self.phone.wait_for("confirmed", timeout=15)
        await self.flowing(10.0)
        return {}

    async def silent(self, for_s: float) -> None:
        """Until no audio packet came for ``for_s`` seconds."""
        from tests.signaling.browser import AUDIO_PACKETS

        last, since = -1, time.monotonic()
        while time.monotonic() - since < for_s:
            now = int(await self.page.evaluate(AUDIO_PACKETS))
            if now != last:
                last, since = now, time.monotonic()
            await asyncio.sleep(0.05)

    async def recover(self, state: Any) -> Any:
        await self.silent(0.3)
        await self.phone.drop_socket(gone=True)
        await self.phone.wait_for("registered", timeout=BACK_WITHIN)
        await self.phone.restart_ice()
        await self.phone.wait_for("iceRestarted", timeout=BACK_WITHIN)

        async def hang_up() -> None:
            await self.phone.hangup()
            await self.phone.wait_for(("ended", "failed"), timeout=10)

        return self, hang_up


class Client:
    """One dialect's calls from inside the namespace; commands on stdin, results on stdout (JSON lines)."""

    def __init__(self, dialect: str, base: str) -> None:
        import aiohttp

        self.dialect, self.base = dialect, base
        self.http = aiohttp.ClientSession()
        self.old: list[Any] = []  # what the move left behind (sockets, peers): closed at the end
        self.address = "10.201.0.2"  # this namespace's address now (the bench says when it moves)

    async def call(self) -> Any:
        from peers.web_user import WebUser
        from peers.webpeer import WebPeer
        from tests.e2e.dialects.test_jsonrpc import RpcClient
        from tests.e2e.harness import ALICE_SECRET

        peer = WebPeer(freq=1000, addresses=(self.address,))
        self.old.append(peer)
        offer = await peer.offer()
        if self.dialect == "ws":
            user = WebUser(self.base, "alice", ALICE_SECRET)
            await user.__aenter__()
            self.old.append(user)
            call_id = await user.call("2000", offer)
            connected = await user.wait_for("connected", call_id=call_id)
            await peer.accept(connected["sdp"])
            state = {"token": user.token, "call_id": call_id}
        elif self.dialect == "http":
            body = {"sdp": {"type": "offer", "sdp": offer}, "metadata": {"dial": "2000"}}
            async with self.http.post(
                f"{self.base}/webrtc/offer", json=body, headers={"X-API-Key": API_KEY}
            ) as r:
                answer = await r.json()
            await peer.accept(answer["sdp"]["sdp"])
            state = {"session_id": answer["session_id"]}
        else:
            ws = await self.http.ws_connect(f"{self.base.replace('http', 'ws')}/jsonrpc?api_key={API_KEY}")
            self.old.append(ws)
            rpc = RpcClient(ws)
            await rpc.request("announce", {"peer_id": "bench-laptop"})
            reply = await rpc.request("offer", {"sdp": offer, "type": "offer", "to": "2000"})
            await peer.accept(reply["result"]["answer"]["sdp"])
            state = {"call_id": reply["result"]["call_id"]}
        await _hears(peer, 10.0)
        return state

    async def recover(self, state: Any) -> Any:
        """The network changed: this dialect's way back; the new peer and what hangs the call up."""
        import aiohttp

        from peers.web_user import WebUser
        from peers.webpeer import WebPeer
        from tests.e2e.dialects.test_jsonrpc import RpcClient

        self.old.append(self.http)
        self.http = aiohttp.ClientSession()  # new connections, from the new address
        peer = WebPeer(freq=1300, addresses=(self.address,))
        self.old.append(peer)
        if self.dialect == "ws":
            user = WebUser(self.base, "alice", "", token=state["token"])
            await user.__aenter__()
            self.old.append(user)
            await user.wait_for("calls")
            await user.request({"type": "reattach", "call_id": state["call_id"], "sdp": await peer.offer()})
            reattached = await user.wait_for("reattached", call_id=state["call_id"])
            await peer.accept(reattached["sdp"])
            return peer, lambda: user.request({"type": "hangup", "call_id": state["call_id"]})
        if self.dialect == "http":
            body = {"sdp": {"type": "offer", "sdp": await peer.offer()}, "session_id": state["session_id"]}
            async with self.http.post(
                f"{self.base}/webrtc/offer", json=body, headers={"X-API-Key": API_KEY}
            ) as r:
                answer = await r.json()
            await peer.accept(answer["sdp"]["sdp"])
            close = {"session_id": state["session_id"]}
            return peer, lambda: self.http.post(
                f"{self.base}/webrtc/close", json=close, headers={"X-API-Key": API_KEY}
            )
        ws = await self.http.ws_connect(f"{self.base.replace('http', 'ws')}/jsonrpc?api_key={API_KEY}")
        self.old.append(ws)
        rpc = RpcClient(ws)
        await rpc.request("announce", {"peer_id": "bench-laptop"})
        reply = await rpc.request("offer", {"call_id": state["call_id"], "sdp": await peer.offer()})
        await peer.accept(reply["result"]["answer"]["sdp"])
        return peer, lambda: rpc.request("disconnect", {"call_id": state["call_id"]})

    async def forget(self) -> None:
        for thing in reversed(self.old):
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await thing.close()
        self.old.clear()


async def _hears(peer: Any, within: float) -> float:
    """Seconds until ``peer`` hears the phone (100 ms windows); TimeoutError past ``within``."""
    start = time.monotonic()
    async with asyncio.timeout(within):
        while not peer.heard(TONE, last=0.1):
            await asyncio.sleep(0.01)
    return time.monotonic() - start


async def run_peer(dialect: str, base: str, address: str) -> None:
    client: Any = {"page": PageClient, "jssip": JsSipClient}.get(dialect, Client)
    client = client(base) if dialect in ("page", "jssip") else client(dialect, base)
    client.address = address
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )

    def say(**fields: Any) -> None:
        print(json.dumps(fields), flush=True)

    while line := await reader.readline():
        command = json.loads(line)
        try:
            if command["cmd"] == "call":
                state = await client.call()
                say(up=True)
            elif command["cmd"] == "moved":
                started = time.monotonic()
                if isinstance(client, PageClient) and os.environ.get(PHASES_ENV):
                    await client.mark()
                client.address = command["to"]
                peer, hang_up = await client.recover(state)
                if isinstance(client, PageClient):
                    await client.flowing(BACK_WITHIN - (time.monotonic() - started))
                else:
                    await _hears(peer, BACK_WITHIN - (time.monotonic() - started))
                gap_ms = round((time.monotonic() - started) * 1000)
                if isinstance(client, PageClient) and os.environ.get(PHASES_ENV):
                    await asyncio.sleep(0.3)  # what follows the first packets (the page's last candidates)
                    say(gap_ms=gap_ms, phases=await client.phases())
                else:
                    say(gap_ms=gap_ms)
            elif command["cmd"] == "hangup":
                with contextlib.suppress(Exception):
                    await hang_up()
                await client.forget()
                say(done=True)
            elif command["cmd"] == "quit":
                break
        except Exception as exc:
            traceback.print_exc()  # to stderr: the bench's terminal
            lost: dict[str, Any] = {"lost": f"{type(exc).__name__}: {exc}"[:200]}
            if isinstance(client, PageClient) and os.environ.get(PHASES_ENV):
                with contextlib.suppress(Exception):
                    lost["phases"] = await client.phases()  # what happened instead
            say(**lost)
            await client.forget()
    await client.forget()
    await (client.close() if isinstance(client, PageClient) else client.http.close())


PHASES_ENV = "NETWORK_CHANGE_PHASES"  # set by --phases for the peer processes
JSSIP_RECOVERY_ENV = "NETWORK_CHANGE_JSSIP_RECOVERY"  # --jssip-recovery, for the peer processes
# --phases: the page's steps after the move, in its own clock (ms): its pings, the new socket and login,
# each RTCPeerConnection's candidates by address and its states. Shows what the gap is made of (e.g. when
# Chromium first offers a candidate on the new address: Linux's NetworkChangeNotifier waits up to 2 s).
RECORD_PHASES = """(() => {
  const log = (name) => { (window.__phases ||= []).push([performance.now(), name]); };
  // a /ws message by its type (candidates left out), a SIP message by its method or status code
  const kind = (prefix, data) => {
    if (typeof data !== "string") return;
    let name;
    try { name = JSON.parse(data).type; } catch { name = data.startsWith("SIP/2.0 ") ? data.slice(8, 11) : data.split(" ", 1)[0]; }
    if (name !== "candidate") log(prefix + name);
  };
  window.addEventListener("online", () => log("online"));
  window.addEventListener("offline", () => log("offline"));
  navigator.connection?.addEventListener?.("change", () => log("netchange"));
  const WS = window.WebSocket;
  window.WebSocket = function (...args) {
    const ws = new WS(...args);
    log("ws-new");
    ws.addEventListener("open", () => log("ws-open"));
    ws.addEventListener("close", () => log("ws-close"));
    const send = ws.send.bind(ws);
    ws.send = (data) => { kind("tx-", data); send(data); };
    ws.addEventListener("message", (e) => kind("rx-", e.data));
    return ws;
  };
  window.WebSocket.prototype = WS.prototype;
  Object.setPrototypeOf(window.WebSocket, WS);
  const PC = window.RTCPeerConnection;
  window.RTCPeerConnection = function (...args) {
    const pc = new PC(...args);
    log("pc-new");
    pc.addEventListener("connectionstatechange", () => log("pc-" + pc.connectionState));
    pc.addEventListener("icecandidate", (e) => log(e.candidate ? "cand-" + (e.candidate.address || "?") : "gathered"));
    return pc;
  };
  window.RTCPeerConnection.prototype = PC.prototype;
  Object.setPrototypeOf(window.RTCPeerConnection, PC);
})();"""


# ------------------------------------------------------------------------------------ the bench (root)


@contextlib.asynccontextmanager
async def spawned(dialect: str, base: str, address: str) -> AsyncIterator[asyncio.subprocess.Process]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", NETWORK.name, sys.executable, __file__, "--peer", dialect, "--base", base, "--address", address,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError, BrokenPipeError, ConnectionResetError):
            assert process.stdin is not None
            process.stdin.write(b'{"cmd": "quit"}\n')
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 10)
        if process.returncode is None:
            process.kill()
            await process.wait()


async def ask(
    process: asyncio.subprocess.Process, command: str, timeout: float, **fields: Any
) -> dict[str, Any]:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps({"cmd": command, **fields}).encode() + b"\n")
    await process.stdin.drain()
    while True:
        line = await asyncio.wait_for(process.stdout.readline(), timeout)
        if not line:
            return {"lost": "the client exited"}
        try:
            reply: dict[str, Any] = json.loads(line)
            return reply
        except ValueError:
            continue  # a library's print


async def bench(calls: int, dialects: list[str]) -> None:
    from peers.phone import DeskPhone
    from tests.e2e.harness import running_gateway
    from tests.e2e.websip.test_sip_websocket import websocket_config

    results: dict[str, tuple[list[float], list[str]]] = {}
    load = Path("/proc/loadavg").read_text().split()[:3]
    with tempfile.TemporaryDirectory() as tmp, NETWORK:
        async with DeskPhone(Path(tmp), user="2000", tone=TONE) as phone:
            config = websocket_config(  # SIP over WebSocket on /sip too, and alice's SIP password (jssip)
                phone.address,
                sections={
                    "alice_extra": {"default_dial": "2000", "api_keys": [{"key": API_KEY, "name": "bench"}]},
                    "http": {"host": GATEWAY_IP, "port": 18080},
                },
            )
            async with running_gateway(config) as gateway:
                for dialect in dialects:
                    gaps, lost = results.setdefault(dialect, ([], []))
                    async with spawned(dialect, gateway.http_url, NETWORK.address) as process:
                        for _ in range(calls):
                            up = await ask(process, "call", 30)
                            if "up" not in up:
                                lost.append(f"no call: {up.get('lost')}")
                                continue
                            ended_before = len(phone.seen("state", state="DISCONNECTED"))
                            moved_to = NETWORK.move()
                            reply = await ask(process, "moved", BACK_WITHIN + 10, to=moved_to)
                            await asyncio.sleep(1.0)  # on the new path
                            if "gap_ms" not in reply:
                                lost.append(str(reply.get("lost")))
                            elif len(phone.seen("state", state="DISCONNECTED")) != ended_before:
                                lost.append("the phone's call ended before the hang-up")
                            else:
                                gaps.append(reply["gap_ms"])
                            await ask(process, "hangup", 20)
                            await asyncio.sleep(0.5)
                            if (
                                "gap_ms" in reply
                                and len(phone.seen("state", state="DISCONNECTED")) == ended_before
                            ):
                                lost.append("the call did not end with the hang-up")
                            print(f"{dialect} call: {reply}", flush=True)
    end = Path("/proc/loadavg").read_text().split()[:3]
    print(
        f"\nnetwork change: audio gap per dialect ({calls} calls each; page, jssip: Chromium; others aiortc)"
    )
    print(f"loadavg {' '.join(load)} -> {' '.join(end)}")
    for dialect, (gaps, lost) in results.items():
        ordered = sorted(gaps)
        if ordered:
            p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
            figures = (
                f"p50 {statistics.median(ordered):6.0f} ms  p99 {p99:6.0f} ms  max {ordered[-1]:6.0f} ms"
            )
        else:
            figures = "no call came back"
        print(f"{dialect:8s} {figures}  lost {len(lost)} of {calls}" + (f"  ({lost[0]})" if lost else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--dialects", default="ws,http,jsonrpc")
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument(
        "--phases", action="store_true", help="page, jssip: print each call's steps after the move (ms)"
    )
    parser.add_argument(
        "--jssip-recovery", choices=("quick", "default"), default="quick",
        help="jssip: the application reconnects at once and bounds ICE gathering (quick), or leaves both "
        "to JsSIP (default: its 2 s recovery timer)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.phases:
        os.environ[PHASES_ENV] = "1"  # the peers inherit it
    if args.peer:
        asyncio.run(run_peer(args.peer, args.base, args.address))
        return
    os.environ[JSSIP_RECOVERY_ENV] = args.jssip_recovery  # the peers inherit it
    if os.geteuid() != 0:
        sys.exit("run as root: the client gets a network namespace of its own")
    asyncio.run(bench(args.calls, [d.strip() for d in args.dialects.split(",") if d.strip()]))


if __name__ == "__main__":
    main()
