"""RFC 3263 end to end: the PBX is `pbx.test` (a name, no port), located through a DNS server of the
test's own (dnsmasq: NAPTR -> SRV -> A). The first SRV target is dead (a closed port: ICMP unreachable),
silent (a socket that never answers: a host down or a firewall dropping, no ICMP) or answers 503
(sipp); the web user's call and the OPTIONS keep-alive fail over to the second target (RFC 3263 §4.3)
and the browser sees only the outcome: connected. A silent target is blocklisted once the keep-alive
gave up on it (gateway.sip.transactions.client): calls then go to the live one first, without Timer B's 32 s."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gateway.config import Config
from peers.binaries import require_binary
from peers.dnsmasq import Dnsmasq, Naptr, SrvHost
from peers.ports import free_range
from peers.sipp import Sipp
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until

HOSTS = {"dead.pbx.test": "127.0.0.1", "live.pbx.test": "127.0.0.1"}


def records(dead_port: int, live_port: int) -> dict[str, Any]:
    return {
        "naptr": [Naptr("pbx.test", 10, 10, "SIP+D2U", "_sip._udp.pbx.test")],
        "srv": [
            SrvHost("_sip._udp.pbx.test", "dead.pbx.test", dead_port, 10, 0),
            SrvHost("_sip._udp.pbx.test", "live.pbx.test", live_port, 20, 0),
        ],
        "hosts": HOSTS,
    }


def config(dns: Dnsmasq, **pbx: Any) -> Config:
    rtp = {"start": free_range(), "end": 0}
    base = gateway_config(
        "pbx.test", domain="pbx.test", dns={"servers": [dns.address]}, media={"rtp_ports": rtp}
    )
    return dataclasses.replace(base, pbx=dataclasses.replace(base.pbx, **{"keepalive_interval": 0.0, **pbx}))


@contextlib.contextmanager
def closed_udp_port() -> Iterator[int]:
    """A port nobody listens on for the gateway: a datagram there gets ICMP port unreachable. It is held
    by a socket connected to another port (Linux hands that socket only its peer's datagrams), so that
    no other process can take it meanwhile (a free port, closed again, once went to a silent socket:
    the keep-alive then timed out instead of seeing ICMP)."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as elsewhere,
    ):
        elsewhere.bind(("127.0.0.1", 0))
        held.bind(("127.0.0.1", 0))
        held.connect(elsewhere.getsockname())
        yield held.getsockname()[1]


@contextlib.contextmanager
def silent_udp_port() -> Iterator[socket.socket]:
    """A bound socket that reads nothing and answers nothing: datagrams there vanish (no ICMP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.setblocking(False)
        yield silent


def received(sock: socket.socket) -> list[bytes]:
    """What reached ``sock`` so far."""
    out = []
    with contextlib.suppress(BlockingIOError):
        while True:
            out.append(sock.recv(65536))
    return out


async def call_through(gateway_url: str) -> None:
    """alice calls 2000: connected with audio set up; then she hangs up."""
    async with WebUser(gateway_url, "alice", ALICE_SECRET) as alice:
        peer = WebPeer(1000)
        try:
            call_id = await alice.call("2000", await peer.offer())
            connected = await alice.wait_for(("connected", "ended"), call_id=call_id)
            assert connected["type"] == "connected", alice.events
            await peer.accept(connected["sdp"])
            assert not [e for e in alice.events if e.get("type") == "ended"]
            await alice.request({"type": "hangup", "call_id": call_id})
            await alice.wait_for("ended", call_id=call_id)
        finally:
            await peer.close()


async def test_a_call_fails_over_from_a_dead_srv_target(tmp_path: Path) -> None:
    require_binary("sipp")
    live = Sipp(tmp_path, "uas_basic_call", calls=1)
    with closed_udp_port() as dead:
        async with Dnsmasq(tmp_path, **records(dead, live.port)) as dns, live:
            async with running_gateway(config(dns)) as gateway:
                await call_through(gateway.http_url)
            result = await live.wait(timeout=10)
            assert result.ok, result
            assert result.count("INVITE") == 1
            assert dns.queries()[:2] == ["NAPTR pbx.test", "SRV _sip._udp.pbx.test"]


async def test_a_call_fails_over_from_a_target_answering_503(tmp_path: Path) -> None:
    require_binary("sipp")
    busy = Sipp(tmp_path, "uas_unavailable", calls=1)
    live = Sipp(tmp_path, "uas_basic_call", calls=1)
    async with Dnsmasq(tmp_path, **records(busy.port, live.port)) as dns, busy, live:
        async with running_gateway(config(dns)) as gateway:
            await call_through(gateway.http_url)
        unavailable, answered = await busy.wait(timeout=10), await live.wait(timeout=10)
        assert unavailable.ok, unavailable  # it got the INVITE, said 503 and had its ACK
        assert unavailable.count("SIP/2.0 503") >= 1
        assert answered.ok, answered


async def test_the_keepalive_fails_over_too(tmp_path: Path) -> None:
    require_binary("sipp")
    # sipp -aa answers OPTIONS () with 200
    live = Sipp(tmp_path, "uas_basic_call", calls=None, auto_answer=True)
    with closed_udp_port() as dead:
        async with Dnsmasq(tmp_path, **records(dead, live.port)) as dns, live:
            async with running_gateway(config(dns, keepalive_interval=0.5)) as gateway:
                ua = gateway.sip
                assert ua is not None
                await wait_until(lambda: (ua.pbx_state() or {}).get("state") == "reachable", timeout=10)
                assert (ua.pbx_state() or {}).get("last_status") == 200
                await asyncio.sleep(1.2)  # more keep-alives: each one finds the live target
                assert (ua.pbx_state() or {}).get("state") == "reachable"
            result = await live.stop()
            assert result.count("OPTIONS") >= 2, result


async def test_a_silent_first_target_is_tried_last_once_the_keepalive_gave_up_on_it(tmp_path: Path) -> None:
    """No ICMP from the first target: the first keep-alive times out (0.5 s), the next ones and the call
    go to the second target first. Without the blocklist every probe went to the silent one (PBX
    "unreachable" for good) and the INVITE waited Timer B (32 s) before the failover."""
    require_binary("sipp")
    live = Sipp(tmp_path, "uas_basic_call", calls=None, auto_answer=True)  # (each OPTIONS counts as a call)
    with silent_udp_port() as silent:
        async with Dnsmasq(tmp_path, **records(silent.getsockname()[1], live.port)) as dns, live:
            async with running_gateway(config(dns, keepalive_interval=0.5)) as gateway:
                ua = gateway.sip
                assert ua is not None
                await wait_until(lambda: (ua.pbx_state() or {}).get("state") == "reachable", timeout=5)
                probes = received(silent)
                assert probes and all(data.startswith(b"OPTIONS ") for data in probes), probes
                await asyncio.wait_for(call_through(gateway.http_url), 15)  # not 32 s: no Timer B first
                assert (ua.pbx_state() or {}).get("state") == "reachable"
            assert not [data for data in received(silent) if data.startswith(b"INVITE ")]
            result = await live.stop()
            assert result.count("INVITE") == 1 and result.count("OPTIONS") >= 1, result
