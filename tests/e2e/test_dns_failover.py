"""RFC 3263 end to end: the PBX is `pbx.test` (a name, no port), located through a DNS server of the
test's own (dnsmasq: NAPTR -> SRV -> A). The first SRV target is dead (a closed port: ICMP unreachable)
or answers 503 (sipp); the web user's call and the OPTIONS keep-alive fail over to the
second target (RFC 3263 §4.3) and the browser sees only the outcome: connected."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from pathlib import Path
from typing import Any

from gateway.config import Config
from peers.binaries import require_binary
from peers.dnsmasq import Dnsmasq, Naptr, SrvHost
from peers.ports import free_port
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
    rtp = {"start": 38000 + 2 * (free_port() % 200), "end": 0}
    base = gateway_config(
        "pbx.test", domain="pbx.test", dns={"servers": [dns.address]}, media={"rtp_ports": rtp}
    )
    return dataclasses.replace(base, pbx=dataclasses.replace(base.pbx, **{"keepalive_interval": 0.0, **pbx}))


def closed_udp_port() -> int:
    """A port nobody listens on: a datagram there gets ICMP port unreachable."""
    return free_port(socket.SOCK_DGRAM)


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
    async with Dnsmasq(tmp_path, **records(closed_udp_port(), live.port)) as dns, live:
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
    async with Dnsmasq(tmp_path, **records(closed_udp_port(), live.port)) as dns, live:
        async with running_gateway(config(dns, keepalive_interval=0.5)) as gateway:
            ua = gateway.sip
            assert ua is not None
            await wait_until(lambda: (ua.pbx_state() or {}).get("state") == "reachable", timeout=10)
            assert (ua.pbx_state() or {}).get("last_status") == 200
            await asyncio.sleep(1.2)  # more keep-alives: each one finds the live target
            assert (ua.pbx_state() or {}).get("state") == "reachable"
        result = await live.stop()
        assert result.count("OPTIONS") >= 2, result
