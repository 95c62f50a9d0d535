"""A rolling upgrade under live calls (issue 65 item 4): each of three instances drained in turn, left to
exit and started again, while every call goes on. How many calls are lost, the longest audio gap any
page heard, and whether any page had to log in again with its password.

Run: python bench/rolling_bench.py [--calls 20] [--settle 3] [--dialects ws,jsonrpc,http] [--page-procs 1]
     (needs sipp, kamailio, redis-server, haproxy; about two minutes; 60 calls: --page-procs 3)

The stage is bench/takeover_bench.py's: Redis, three gateway instances as processes (the CLI with
`cluster:`), the shipped Kamailio edge as their `pbx.outbound_proxy`, HAProxy in front of their HTTP, and
a sipp PBX with `-rtp_echo` that takes any number of re-INVITEs (peers/scenarios/uas_rolling.xml: each
instance that takes a call over sends one). The N pages (aiortc, a web user each, each from a loopback
address of its own) run in `--page-procs` processes of their own, spread over `--dialects` in turn
(`ws`: the softphone page's protocol, logged in with a password; `jsonrpc`: a JSON-RPC client announced
as `p<index>`; `http`: an HTTP API session; the last two with the user's API key), reach the instances
through HAProxy and call the PBX with their own tone, which comes back through the echo.

Then, for gw1, gw2 and gw3 in turn: SIGUSR1 (the drain: its calls handed to the others, its idle
sockets closed with 1012), wait for its exit, start it again, wait `--settle` seconds. A page whose
socket closes reconnects through HAProxy at once with its session token, as the softphone page does,
and reattaches its call where it is listed, with a new RTCPeerConnection, keeping the old one until the
new one plays (as webrtc-client.js does: the drained instance carries the media until the taker moves
the SIP party, make before break). A JSON-RPC client on 1012 opens a new socket through HAProxy,
announces its id again and renews its call's media with `offer {call_id, sdp}`; an HTTP API client,
told `web_lost` cause `moved` on its session's event stream, posts a new offer with its `session_id`;
each from a new RTCPeerConnection, the old one playing until the new one does. SIP over WebSocket
(JsSIP, SIP.js) is not measured here: a drain hands those calls over too, but the libraries run only in a
browser (their reconnect, REGISTER and answer to an offerless re-INVITE with the same RTCPeerConnection
are theirs: an aiortc page can renew its media only from a new connection, which would measure another
client); tests/e2e/cluster/test_cluster_drain_websip.py measures one such call in Chromium. Each page
samples its own tone every 20 ms from the first time it hears it, on either connection: the longest
stretch without it is its gap. Printed: calls
that lasted to the end with audio, the gaps (p50 / p99 / max, in all and per dialect), pages that had to give their password
again (the token refused), the re-INVITEs the PBX saw, and /proc/loadavg.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from takeover_bench import api_key, loadavg, page_address, percentile, stage  # noqa: E402

from peers.demo import ALICE_SECRET  # noqa: E402

SAMPLE = 0.02  # s between a page's looks at its tone
FRESH = 0.06  # s since a connection's last audio frame for what it holds to count as heard now
LOST_AFTER = 15.0  # s without its tone: the call is counted lost
LOGIN_WITHIN = 8.0
ECHO_WITHIN = 60.0  # s a new call may take to hear its echo (60 calls set up on a loaded 2-core machine)


class Page:
    """One page (`/ws`, as the softphone page): its login, its call, its current peer connection, and the
    longest gap in its tone."""

    dialect = "ws"

    def __init__(self, index: int, front: str) -> None:
        self.index, self.front = index, front
        self.freq = 500 + 50 * index
        self.user: Any = None
        self.peer: Any = None
        self.old_peer: Any = None  # the connection before a reattach, kept until the new one plays
        self.call_id = ""
        self.token = ""
        self.heard_at: float | None = None  # last time the tone was heard
        self.gap = 0.0
        self.relogins = 0
        self.kept = 0  # of those, calls taken back on their own connection (its socket alone went)
        self.password_again = 0
        self.lost = ""
        self._done = False

    async def begin(self) -> None:
        from peers.web_user import WebUser
        from peers.webpeer import WebPeer

        self.peer = WebPeer(freq=self.freq, codecs=PAGE_CODEC[0])
        self.user = WebUser(
            self.front, f"u{self.index}", ALICE_SECRET, local_address=page_address(self.index)
        )
        await self.user.__aenter__()
        self.token = str(self.user.token)
        self.call_id = await self.user.call("2000", await self.peer.offer())
        connected = await self.user.wait_for("connected", call_id=self.call_id, timeout=30)
        await self.peer.accept(connected["sdp"])
        deadline = time.monotonic() + ECHO_WITHIN
        while not self.peer.heard(self.freq, last=0.5):
            if time.monotonic() > deadline:
                raise RuntimeError(f"page {self.index}: no echo")
            await asyncio.sleep(0.1)
        self.heard_at = time.monotonic()

    async def watch(self) -> None:
        """Sample the tone; track the longest gap (and a gap past LOST_AFTER: lost), from the first time it
        is heard once sampling began (the pages start one after the other: not a gap)."""
        self.heard_at = None
        while not self._done:
            now = time.monotonic()
            peers = [p for p in (self.peer, self.old_peer) if p is not None]
            if any(self._hears(p, now) for p in peers):
                if self.heard_at is not None:
                    self.gap = max(self.gap, now - self.heard_at)
                self.heard_at = now
            elif self.heard_at is not None and now - self.heard_at > LOST_AFTER and not self.lost:
                self.lost = f"no tone for {LOST_AFTER:g} s"
            await asyncio.sleep(SAMPLE)

    def _hears(self, peer: Any, now: float) -> bool:
        """The page's tone in what `peer` played in the last 100 ms (a connection whose audio stopped
        still holds its last tone: it must have played a frame within FRESH seconds)."""
        return bool(now - peer.heard_at < FRESH and peer.heard(self.freq, last=0.1))

    async def follow(self) -> None:
        """Whenever the socket closes (a drain's 1012, the instance gone), log in again with the token
        through HAProxy and take the call back where it is listed."""
        while not self._done:
            if not await self._gone():
                continue
            if self._done:
                return
            try:
                await self._back()
            except Exception as exc:
                self.lost = f"not back: {exc!r}"
                return

    async def _gone(self) -> bool:
        """Once its socket closed: True (False: the wait itself failed)."""
        try:
            await self.user.wait_for("closed", timeout=3600)
        except Exception:
            return False
        return True

    async def _back(self) -> None:
        from peers.web_user import WebUser, WebUserError
        from peers.webpeer import WebPeer

        old_user, old_peer = self.user, self.peer
        await old_user.close()
        started = time.monotonic()
        while True:
            again = WebUser(self.front, f"u{self.index}", "", token=self.token,
                            local_address=page_address(self.index))  # fmt: skip
            try:
                await asyncio.wait_for(again.__aenter__(), LOGIN_WITHIN)
                listed = await again.wait_for("calls", timeout=LOST_AFTER)
                if any(c["call_id"] == self.call_id for c in listed["calls"]):
                    break
            except WebUserError as exc:
                if "401" in str(exc) or "token" in str(exc).lower():
                    self.password_again += 1
            except (ConnectionError, TimeoutError, OSError):
                pass
            await again.close()
            if time.monotonic() - started > LOST_AFTER:
                raise RuntimeError("its call not listed")
            await asyncio.sleep(0.2)
        self.relogins += 1
        if old_peer.pc.connectionState == "connected":  # as webrtc-client.js: a kept connection first
            try:
                await again.request({"type": "reattach", "call_id": self.call_id})
                await again.wait_for("reattached", call_id=self.call_id, timeout=LOST_AFTER)
                self.user = again
                self.kept += 1
                return
            except WebUserError as exc:  # the gateway has no leg for it (moved): a new connection
                if "sdp" not in str(exc):
                    raise
        peer = WebPeer(freq=self.freq, codecs=PAGE_CODEC[0])
        await again.request({"type": "reattach", "call_id": self.call_id, "sdp": await peer.offer()})
        reattached = await again.wait_for("reattached", call_id=self.call_id, timeout=LOST_AFTER)
        self.user = again
        await self._play_until_new_plays(peer, reattached["sdp"])

    async def end(self) -> dict[str, Any]:
        self._done = True
        with contextlib.suppress(Exception):
            await self.user.request({"type": "hangup", "call_id": self.call_id})
        with contextlib.suppress(Exception):
            await self.user.close()
        with contextlib.suppress(Exception):
            await self.peer.close()
        return {"index": self.index, "dialect": self.dialect, "gap": self.gap, "relogins": self.relogins,
                "kept": self.kept, "password_again": self.password_again, "lost": self.lost}  # fmt: skip

    async def _play_until_new_plays(self, peer: Any, answer: str) -> None:
        """As the softphone page does (webrtc-client.js): the old connection plays until the new one does."""
        old_peer = self.peer
        await peer.accept(answer)
        self.peer, self.old_peer = peer, old_peer
        started = time.monotonic()
        while not self._hears(peer, time.monotonic()) and time.monotonic() - started < LOST_AFTER:
            await asyncio.sleep(SAMPLE)
        self.old_peer = None
        await old_peer.close()


class RpcPage(Page):
    """A JSON-RPC client (`/jsonrpc` with its API key, announced as `p<index>`): on 1012 its new socket
    through HAProxy announces the id again (`resumed`) and renews the call's media with `offer {call_id,
    sdp}` from a new RTCPeerConnection, the old one playing until the new one does."""

    dialect = "jsonrpc"

    async def _socket(self) -> Any:
        import aiohttp

        if getattr(self, "http", None) is None:
            connector = aiohttp.TCPConnector(local_addr=(page_address(self.index), 0))
            self.http = aiohttp.ClientSession(connector=connector)
        url = f"{self.front.replace('http', 'ws', 1)}/jsonrpc?api_key={api_key(self.index)}"
        self.ws = await self.http.ws_connect(url)
        self._next = 0
        return self.ws

    async def _request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._next += 1
        await self.ws.send_str(
            json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": self._next})
        )
        while True:
            message: dict[str, Any] = await self.ws.receive_json(timeout=LOST_AFTER)
            if message.get("id") == self._next:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message["result"])

    async def begin(self) -> None:
        from peers.webpeer import WebPeer

        self.peer = WebPeer(freq=self.freq, codecs=PAGE_CODEC[0])
        await self._socket()
        await self._request("announce", {"peer_id": f"p{self.index}"})
        result = await self._request("offer", {"sdp": await self.peer.offer(), "type": "offer"})
        self.call_id = result["call_id"]
        await self.peer.accept(result["answer"]["sdp"])
        await self._heard_first()

    async def _heard_first(self) -> None:
        deadline = time.monotonic() + ECHO_WITHIN
        while not self.peer.heard(self.freq, last=0.5):
            if time.monotonic() > deadline:
                raise RuntimeError(f"page {self.index}: no echo")
            await asyncio.sleep(0.1)

    async def _gone(self) -> bool:
        import aiohttp

        closing = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        with contextlib.suppress(Exception):
            while (await self.ws.receive()).type not in closing:
                pass
        return True

    async def _back(self) -> None:
        from peers.webpeer import WebPeer

        started = time.monotonic()
        while True:
            try:
                await self._socket()
                resumed = await self._request("announce", {"peer_id": f"p{self.index}"})
                if self.call_id in resumed.get("call_ids", []):
                    break
            except Exception:
                pass
            with contextlib.suppress(Exception):
                await self.ws.close()
            if time.monotonic() - started > LOST_AFTER:
                raise RuntimeError("its call not resumed")
            await asyncio.sleep(0.2)
        self.relogins += 1
        peer = WebPeer(freq=self.freq, codecs=PAGE_CODEC[0])
        result = await self._request(
            "offer", {"call_id": self.call_id, "sdp": await peer.offer(), "type": "offer"}
        )
        await self._play_until_new_plays(peer, result["answer"]["sdp"])

    async def end(self) -> dict[str, Any]:
        self._done = True
        with contextlib.suppress(Exception):
            await self._request("disconnect", {"call_id": self.call_id})
        with contextlib.suppress(Exception):
            await self.ws.close()
        return await self._closed()

    async def _closed(self) -> dict[str, Any]:
        """Its HTTP client and connection closed: its figures."""
        with contextlib.suppress(Exception):
            await self.http.close()
        with contextlib.suppress(Exception):
            await self.peer.close()
        return {"index": self.index, "dialect": self.dialect, "gap": self.gap, "relogins": self.relogins,
                "kept": 0, "password_again": 0, "lost": self.lost}  # fmt: skip


class HttpPage(RpcPage):
    """An HTTP API client (its API key): its session's event stream, through HAProxy (opened again
    whenever it ends), says `web_lost` with cause `moved` when a drain hands its call over; it then posts
    a new offer with its `session_id` from a new RTCPeerConnection, the old one playing meanwhile."""

    dialect = "http"

    async def begin(self) -> None:
        import aiohttp

        from peers.webpeer import WebPeer

        connector = aiohttp.TCPConnector(local_addr=(page_address(self.index), 0))
        self.http = aiohttp.ClientSession(connector=connector, headers={"X-API-Key": api_key(self.index)})
        self.peer = WebPeer(freq=self.freq, codecs=PAGE_CODEC[0])
        body = {"sdp": {"type": "offer", "sdp": await self.peer.offer()}, "metadata": {"dial": "2000"}}
        answer = await self._post("/webrtc/offer", body)
        self.call_id = answer["session_id"]  # (its session id: what the bench follows it by)
        await self.peer.accept(answer["sdp"]["sdp"])
        await self._heard_first()
        self._moved = False
        self._renewing = asyncio.Lock()

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        started = time.monotonic()
        while True:  # 503 with Retry-After while its call is handed over: again
            async with self.http.post(self.front + path, json=body) as response:
                if response.status != 503 or time.monotonic() - started > LOST_AFTER:
                    found: dict[str, Any] = await response.json()
                    if response.status != 200:
                        raise RuntimeError(f"{path}: {response.status} {found}")
                    return found
            await asyncio.sleep(0.2)

    async def follow(self) -> None:
        while not self._done:
            with contextlib.suppress(Exception):
                async with self.http.get(f"{self.front}/webrtc/sessions/{self.call_id}/events") as stream:
                    event: dict[str, str] = {}
                    async for raw in stream.content:
                        line = raw.decode().rstrip("\n")
                        if line:
                            key, _, value = line.partition(": ")
                            event[key] = value
                            continue
                        name = event.get("event")
                        if name == "web_lost" and '"moved"' in event.get("data", ""):
                            self._moved = True
                            asyncio.get_running_loop().create_task(self._renew_soon())
                        elif name == "renewed":
                            self._moved = False
                        event = {}
            await asyncio.sleep(0.2)

    async def _renew_soon(self) -> None:
        """Renewed unless the stream (read again from its start) says renewed right after."""
        await asyncio.sleep(0.1)
        if not self._moved or self._renewing.locked() or self._done:
            return
        from peers.webpeer import WebPeer

        async with self._renewing:
            try:
                peer = WebPeer(freq=self.freq, codecs=PAGE_CODEC[0])
                body = {"sdp": {"type": "offer", "sdp": await peer.offer()}, "session_id": self.call_id}
                answer = await self._post("/webrtc/offer", body)
                self._moved = False
                self.relogins += 1
                await self._play_until_new_plays(peer, answer["sdp"]["sdp"])
            except Exception as exc:
                self.lost = f"not renewed: {exc!r}"

    async def end(self) -> dict[str, Any]:
        self._done = True
        with contextlib.suppress(Exception):
            await self._post("/webrtc/close", {"session_id": self.call_id})
        return await self._closed()


DIALECTS: dict[str, type[Page]] = {"ws": Page, "jsonrpc": RpcPage, "http": HttpPage}


PAGE_CODEC: list[tuple[str, ...] | None] = [None]  # the pages' offer (set by pages_main)


async def pages_main(count: int, front: str, first: int, dialects: list[str], codec: str = "opus") -> None:
    """The pages' process (pages `first`... of the bench, each of the dialect its index gives): up, say so,
    follow the drains until told to stop, then report each page."""
    from takeover_bench import LOGINS, PAGE_CODECS

    PAGE_CODEC[0] = PAGE_CODECS[codec]

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    indexes = range(first, first + count)
    pages = [DIALECTS[dialects[i % len(dialects)]](i, front) for i in indexes]

    async def up(page: Page) -> None:
        async with LOGINS:  # the gateway checks one password login per address at once
            await page.begin()

    await asyncio.gather(*(up(p) for p in pages))
    tasks = [loop.create_task(p.watch()) for p in pages] + [loop.create_task(p.follow()) for p in pages]
    print(json.dumps({"ready": count}), flush=True)
    await reader.readline()  # the bench says: over
    results = await asyncio.gather(*(p.end() for p in pages))
    for task in tasks:
        task.cancel()
    for result in results:
        print(json.dumps(result), flush=True)


async def main(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="rolling-bench-"))
    print(f"rolling upgrade bench: {args.calls} calls, three instances drained in turn")
    print(f"loadavg before: {loadavg()}")
    timing = argparse.Namespace(calls=args.calls, heartbeat=0.5, lease=2.0)
    async with stage(workdir, "uas_rolling", timing, 900) as on:
        results, steps = await roll(args, on.instances, on.front)
    report(args, results, steps, on.outcome)
    return 0


async def roll(
    args: argparse.Namespace, instances: list[Any], front: str
) -> tuple[list[dict[str, Any]], list[str]]:
    shares = [
        args.calls // args.page_procs + (i < args.calls % args.page_procs) for i in range(args.page_procs)
    ]
    procs = []
    for index, share in enumerate(shares):
        if share:
            procs.append(await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--pages", str(share), front, "--first", str(sum(shares[:index])),
                "--dialects", ",".join(args.dialects), "--page-codec", args.page_codec,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            ))  # fmt: skip
    for pages in procs:
        assert pages.stdout is not None
        line = await asyncio.wait_for(pages.stdout.readline(), 300)
        if not line or "ready" not in json.loads(line):
            raise RuntimeError(f"the pages did not come up: {line!r}")
    steps = []
    await asyncio.sleep(args.settle)
    for instance in instances:
        started = time.monotonic()
        instance.drain()
        code = await instance.wait(120)
        drained = time.monotonic() - started
        await instance.restart()
        steps.append(f"{instance.id}: drained and exited ({code}) in {drained:.1f} s, started again")
        print(steps[-1], flush=True)
        await asyncio.sleep(args.settle)
    results = []
    for pages in procs:
        assert pages.stdin is not None and pages.stdout is not None
        pages.stdin.write(b"over\n")
        await pages.stdin.drain()
    for pages in procs:
        assert pages.stdout is not None
        results += [json.loads(line) async for line in pages.stdout]
        await pages.wait()
    return results, steps


def report(args: argparse.Namespace, results: list[dict[str, Any]], steps: list[str], outcome: Any) -> None:
    kept = [r for r in results if not r["lost"]]
    print(f"calls kept with audio to the end: {len(kept)} of {args.calls}")
    for dialect in ["all", *args.dialects]:
        mine = [r for r in results if dialect == "all" or r.get("dialect", "ws") == dialect]
        gaps = [r["gap"] for r in mine if not r["lost"]]
        if gaps:
            print(
                f"{dialect}: {len(gaps)} of {len(mine)} kept; longest audio gap per page: p50"
                f" {statistics.median(gaps):.2f} s, p99 {percentile(gaps, 0.99):.2f} s, max {max(gaps):.2f} s;"
                f" gaps over 0.5 s: {sum(g > 0.5 for g in gaps)}"
            )
    print(
        f"reconnects with the token: {sum(r['relogins'] for r in results)} "
        f"({sum(r.get('kept', 0) for r in results)} on their own connection); "
        f"password asked again: {sum(r['password_again'] for r in results)}"
    )
    for r in results:
        if r["lost"]:
            print(f"  lost: page {r['index']}: {r['lost']}")
    invites = outcome.count("INVITE sip:")
    print(f"the PBX (sipp) received {invites - args.calls} re-INVITEs for {args.calls} calls")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument(
        "--settle", type=float, default=3.0, help="s between one instance's return and the next drain"
    )
    parser.add_argument(
        "--dialects", type=lambda text: text.split(","), default=["ws"],
        help="the pages' dialects, the calls spread over them in turn: ws,jsonrpc,http",
    )  # fmt: skip
    parser.add_argument("--page-procs", type=int, default=1, help="processes the pages are spread over")
    parser.add_argument(
        "--page-codec", choices=("opus", "pcmu"), default="opus",
        help="what the pages offer (takeover_bench.py's --page-codec): pcmu makes a page far cheaper",
    )  # fmt: skip
    parser.add_argument("--pages", nargs=2, metavar=("COUNT", "FRONT"), help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    unknown = [d for d in arguments.dialects if d not in DIALECTS]
    if unknown:
        parser.error(
            f"--dialects: {unknown} (known: {', '.join(DIALECTS)}; sipws runs only in a browser: "
            "tests/e2e/cluster/test_cluster_drain_websip.py)"
        )
    return arguments


if __name__ == "__main__":
    arguments = parse()
    if arguments.pages:
        count, front_url = arguments.pages
        asyncio.run(
            pages_main(int(count), front_url, arguments.first, arguments.dialects, arguments.page_codec)
        )
    else:
        with contextlib.suppress(KeyboardInterrupt):
            sys.exit(asyncio.run(main(arguments)))
