"""Benchmark of whole calls through the gateway: call setup time, and the time the gateway itself adds.

Run: python bench/call_bench.py [--rates 1,20] [--seconds 4] [--hold 2]   (needs sipp; about a minute)

The far end is sipp's UAS (peers/scenarios/uas_basic_call.xml) with -rtp_echo; the gateway runs in
this process (its PBX is sipp); the web users are aiortc clients in a separate process, speaking the
WebSocket protocol (4 sessions of alice, calls spread over them), sending pre-encoded PCMU (so the
gateway forwards without transcoding, and the clients stay cheap). At each rate (calls per second) calls
are started for `--seconds`, each held `--hold` seconds, then hung up. Printed figures:

- setup: the client's `call` request sent -> `connected` received (p50, p99, max), and failures;
- gateway, dial -> INVITE: the browser's `call` reaching the driver -> the INVITE handed to the SIP stack
  (the SIP offer is made in between: RTP ports, SDP translation);
- gateway, 200 -> connected: the 200 OK's event reaching the call -> `connected` leaving for the browser
  (the web answer is made in between: aiortc's setRemoteDescription/createAnswer, ICE gathering);
- gateway, media: per RTP packet, arrival on one leg -> departure on the other (the bridges'
  LatencyMeter, both directions, all calls).

These machines are shared and noisy: compare figures of one run (1 cps against 20 cps), not across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from peers.demo import ALICE_HASH, ALICE_SECRET
from peers.ports import free_port
from peers.sipp import SCENARIOS

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = SCENARIOS / "uas_basic_call.xml"
SESSIONS = 4


def percentiles(values: list[float]) -> str:
    if not values:
        return "no samples"
    ordered = sorted(values)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  max {ordered[-1]:7.2f} ms  (n={len(ordered)})"


# --- the client process: aiortc web users ------------------------------------------------------------


async def client_main(url: str, rate: float, seconds: float, hold: float) -> dict[str, Any]:
    from peers.web_user import WebUser
    from peers.webpeer import WebPeer

    users = [WebUser(url, "alice", ALICE_SECRET) for _ in range(SESSIONS)]
    for user in users:
        await user.__aenter__()
    setups: list[float] = []
    failures: list[str] = []

    async def one_call(number: int) -> None:
        index = number % SESSIONS
        user = users[index]
        peer = WebPeer(1000, codecs=("PCMU",), raw=True)
        try:
            offer = await peer.offer()
            start = time.perf_counter()
            call_id = await user.call("2000", offer)
            event = await user.wait_for(("connected", "ended"), timeout=20, call_id=call_id)
            if event["type"] == "ended":
                failures.append(f"{event['reason']} {event.get('sip_status')}")
                return
            setups.append(1000 * (time.perf_counter() - start))
            await peer.accept(event["sdp"])
            await peer.connected()
            peer.play_raw(hold)
            await asyncio.sleep(hold)
            await user.request({"type": "hangup", "call_id": call_id})
        except Exception as exc:  # a failed call is a figure, not the end of the run
            failures.append(type(exc).__name__)
        finally:
            await peer.close()

    calls: list[asyncio.Task[None]] = []
    loop = asyncio.get_running_loop()
    begin = loop.time()
    for number in range(max(1, round(rate * seconds))):
        delay = begin + number / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        calls.append(asyncio.create_task(one_call(number)))
    await asyncio.gather(*calls)
    for user in users:
        await user.close()
    return {"setups": setups, "failures": failures, "calls": len(calls)}


# --- the gateway process: the gateway, instrumented -----------------------------------------------------


class Probe:
    """Timestamps taken inside the gateway (perf_counter), by call id."""

    def __init__(self) -> None:
        self.dial: dict[str, float] = {}
        self.invite: dict[str, float] = {}
        self.answered: dict[str, float] = {}
        self.connected: dict[str, float] = {}
        self.media: list[float] = []

    def install(self) -> None:
        from gateway.calls.boundary import commands as cmd
        from gateway.calls.boundary import events as ev
        from gateway.media.bridge import MediaBridge
        from gateway.runtime.call_runtime import CallRuntime
        from gateway.runtime.driver import CallDriver
        from gateway.runtime.sip_side import SipSide
        from gateway.signaling import events as sig

        probe = self
        dial, feed, send = CallDriver.dial, CallRuntime.feed_nowait, CallRuntime._send
        execute, close = SipSide.execute, MediaBridge.close

        async def timed_dial(
            self: CallDriver,
            session: Any,
            to: str,
            sdp: str,
            headers: tuple[tuple[str, str], ...] = (),
            transfer_of: str | None = None,
        ) -> str:
            start = time.perf_counter()
            call_id = await dial(self, session, to, sdp, headers, transfer_of)
            probe.dial[call_id] = start
            return call_id

        def timed_feed(self: CallRuntime, event: Any) -> None:
            if isinstance(event, ev.SipAccepted):
                probe.answered[self.call_id] = time.perf_counter()
            feed(self, event)

        async def timed_send(self: CallRuntime, session_id: str, event: Any) -> None:
            if isinstance(event, sig.Connected):
                probe.connected[self.call_id] = time.perf_counter()
            await send(self, session_id, event)

        async def timed_execute(self: SipSide, command: Any) -> None:
            if isinstance(command, cmd.SipInvite):
                probe.invite[self.call_id] = time.perf_counter()
            await execute(self, command)

        async def keep_latency(self: MediaBridge) -> None:
            probe.media.extend(1000 * s for s in getattr(self._latency, "_samples", ()))
            await close(self)

        CallDriver.dial = timed_dial  # type: ignore[method-assign,assignment]
        CallRuntime.feed_nowait = timed_feed  # type: ignore[method-assign]
        CallRuntime._send = timed_send  # type: ignore[method-assign]
        SipSide.execute = timed_execute  # type: ignore[method-assign]
        MediaBridge.close = keep_latency  # type: ignore[method-assign]

    def gaps(self, start: dict[str, float], end: dict[str, float]) -> list[float]:
        return [1000 * (end[k] - start[k]) for k in start if k in end and end[k] >= start[k]]

    def clear(self) -> None:
        for table in (self.dial, self.invite, self.answered, self.connected):
            table.clear()
        self.media.clear()


async def run_rate(url: str, rate: float, args: argparse.Namespace, probe: Probe) -> None:
    probe.clear()
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", url, str(rate), str(args.seconds), str(args.hold),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    result = json.loads(out.decode().strip().splitlines()[-1])
    await asyncio.sleep(0.5)  # the last bridges close
    print(
        f"\n{rate:g} calls/s: {result['calls']} calls, {len(result['failures'])} failed {result['failures'][:5]}"
    )
    print(f"  setup (call -> connected, client) {percentiles(result['setups'])}")
    print(f"  gateway dial -> INVITE             {percentiles(probe.gaps(probe.dial, probe.invite))}")
    print(f"  gateway 200 OK -> connected        {percentiles(probe.gaps(probe.answered, probe.connected))}")
    print(f"  gateway media packet in -> out     {percentiles(probe.media)}")


async def bench(args: argparse.Namespace) -> int:
    import logging

    from gateway.app import Gateway
    from gateway.config.loader import config_from_mapping
    from gateway.media.bridge_settings import BridgeSettings

    sipp = shutil.which("sipp")
    if sipp is None:
        print("sipp is not installed (apt-get install sip-tester); nothing to measure")
        return 0
    logging.basicConfig(level=logging.WARNING)
    probe = Probe()
    probe.install()
    with tempfile.TemporaryDirectory(prefix="call-bench-") as tmp:
        sip_port, media_port = free_port(socket.SOCK_DGRAM), 40000 + 2 * (free_port() % 2000)
        far_end = subprocess.Popen(
            [sipp, "-sf", str(SCENARIO), "-i", "127.0.0.1", "-p", str(sip_port), "-mi", "127.0.0.1",
             "-mp", str(media_port), "-rtp_echo", "-nostdin", "-aa", "-max_retrans", "5"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp,
        )  # fmt: skip
        config = config_from_mapping(
            {
                "sip": {
                    "listen": [
                        {"transport": "udp", "host": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM)}
                    ],
                    "trusted_sources": ["127.0.0.1/32"],
                },
                "media": {"rtp_ports": {"start": 20000, "end": 29999}},
                "pbx": {"address": f"127.0.0.1:{sip_port}", "domain": "127.0.0.1"},
                "http": {"host": "127.0.0.1", "port": free_port()},
                "users": [
                    {"id": "alice", "sip": "1001", "allow_outbound": ["."], "web_secret_hash": ALICE_HASH}
                ],
                "logging": {"level": "WARNING"},
                "limits": {
                    "calls_per_user": 10000,
                    "unanswered_per_user": 10000,
                    "port_share": 1.0,
                },  # one user's calls are the load
                "state_dir": f"{tmp}/state",
            },
            {},
        )

        class MeasuredGateway(Gateway):
            def _bridge_settings(self, call_id: str) -> BridgeSettings:
                return replace(super()._bridge_settings(call_id), measure_latency=True)

        gateway = MeasuredGateway(config)
        try:
            await gateway.start()
            print(f"gateway {gateway.http_url}, far end sipp UAS (-rtp_echo) on 127.0.0.1:{sip_port}")
            for rate in args.rates:
                await run_rate(gateway.http_url, rate, args, probe)
        finally:
            await gateway.close()
            far_end.terminate()
            try:
                far_end.wait(5)
            except subprocess.TimeoutExpired:
                far_end.kill()
                far_end.wait()
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        url, rate, seconds, hold = sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
        print(json.dumps(asyncio.run(client_main(url, rate, seconds, hold))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="1,20", type=lambda s: [float(x) for x in s.split(",")])
    parser.add_argument("--seconds", type=float, default=4.0, help="how long calls are started at each rate")
    parser.add_argument("--hold", type=float, default=2.0, help="how long each call lasts")
    return asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
