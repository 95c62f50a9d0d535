"""IPv6 on the SIP leg, end to end on ::1 with sipp: SIP over IPv6 (Via, Contact), the answer's and our
offer's c=/o= lines in IP6, RTP on IPv6 sockets; a dual-stack gateway answers each caller in its own
family, and calls the PBX in the PBX's. The browser hears its own tone back through sipp's -rtp_echo:
audio went both ways over IPv6."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import socket
from pathlib import Path
from typing import Any

from peers.binaries import require_binary, require_ipv6_loopback
from peers.ports import free_port
from peers.sipp import Sipp
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until

TONE = 1000.0


def sip_section(*hosts: str) -> dict[str, Any]:
    listen = [
        {"transport": "udp", "host": host, "port": free_port(socket.SOCK_DGRAM, host)} for host in hosts
    ]
    return {"listen": listen, "trusted_sources": ["127.0.0.1/32", "::1/128"]}


def hostport(listen: dict[str, Any]) -> str:
    host = listen["host"]
    return f"[{host}]:{listen['port']}" if ":" in host else f"{host}:{listen['port']}"


def sdp_of(messages: str, first_line: str) -> str:
    """The body of the first message in sipp's log starting with `first_line`."""
    start = messages.index(first_line)
    message = messages[start : start + 4000]
    return message.split("\n\n", 1)[1] if "\n\n" in message else message.split("\r\n\r\n", 1)[1]


async def call_alice(tmp_path: Path, http_url: str, scenario: str, remote: str, host: str) -> str:
    """sipp (on `host`) calls alice through the gateway at `remote`; she answers and hears her tone
    come back. sipp's message log."""
    async with WebUser(http_url, "alice", ALICE_SECRET) as alice:
        sipp = Sipp(tmp_path, scenario, remote, host=host, service="1001", duration_ms=3000, rtp_echo=True)
        peer = WebPeer(TONE)
        try:
            await sipp.start()
            incoming = await alice.wait_for("incoming")
            await alice.answer(incoming["call_id"], peer.answer)
            await wait_until(lambda: peer.heard(TONE, last=0.5), timeout=10)
            await alice.wait_for("ended", call_id=incoming["call_id"], timeout=15)
            result = await sipp.wait(timeout=15)
        finally:
            await sipp.stop()
            await peer.close()
    assert result.ok, result
    return result.messages


async def test_a_call_over_ipv6_is_answered_in_ip6_and_carries_audio(tmp_path: Path) -> None:
    require_binary("sipp")
    require_ipv6_loopback()
    sip = sip_section("::1")
    async with running_gateway(gateway_config(None, sip=sip)) as gateway:
        messages = await call_alice(
            tmp_path, gateway.http_url, "uac_basic_call", hostport(sip["listen"][0]), "::1"
        )
    answer = sdp_of(messages, "SIP/2.0 200 OK")
    assert re.search(r"^c=IN IP6 ::1\r?$", answer, re.M) and re.search(
        r"^o=\S+ \d+ \d+ IN IP6 ::1\r?$", answer, re.M
    )
    assert "Contact: <sip:" in messages and "@[::1]:" in messages  # our Contact, bracketed


async def test_a_dual_stack_gateway_answers_each_caller_in_its_family(tmp_path: Path) -> None:
    require_binary("sipp")
    require_ipv6_loopback()
    sip = sip_section("127.0.0.1", "::1")
    async with running_gateway(gateway_config(None, sip=sip)) as gateway:
        v4, v6 = (hostport(listen) for listen in sip["listen"])
        over_v6 = await call_alice(tmp_path, gateway.http_url, "uac_basic_call", v6, "::1")
        over_v4 = await call_alice(tmp_path, gateway.http_url, "uac_basic_call", v4, "127.0.0.1")
        late_v6 = await call_alice(tmp_path, gateway.http_url, "uac_late_offer", v6, "::1")
    assert "c=IN IP6 ::1" in sdp_of(over_v6, "SIP/2.0 200 OK")
    assert "c=IN IP4 127.0.0.1" in sdp_of(over_v4, "SIP/2.0 200 OK")
    assert "@[::1]:" in over_v6 and "@127.0.0.1:" not in over_v6  # our Contact in the caller's family
    assert "@127.0.0.1:" in over_v4 and "@[::1]:" not in over_v4
    assert "c=IN IP6 ::1" in sdp_of(late_v6, "SIP/2.0 200 OK")  # our offer, in the INVITE's family


async def test_a_call_to_an_ipv6_pbx_offers_ip6(tmp_path: Path) -> None:
    require_binary("sipp")
    require_ipv6_loopback()
    sip = sip_section("127.0.0.1", "::1")
    async with Sipp(tmp_path, "uas_basic_call", host="::1", calls=1, rtp_echo=True) as pbx:
        config = gateway_config(pbx.address, sip=sip)
        # no OPTIONS keep-alive: this sipp takes the first request of any kind for its one call
        config = dataclasses.replace(config, pbx=dataclasses.replace(config.pbx, keepalive_interval=0))
        async with (
            running_gateway(config) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        ):
            peer = WebPeer(TONE)
            try:
                call_id = await alice.call("2000", await peer.offer())
                await peer.accept((await alice.wait_for("connected", call_id=call_id))["sdp"])
                await wait_until(lambda: peer.heard(TONE, last=0.5), timeout=10)
                await alice.request({"type": "hangup", "call_id": call_id})
                await alice.wait_for("ended", call_id=call_id)
            finally:
                await peer.close()
        result = await pbx.wait(timeout=15)
    assert result.ok, result
    offer = sdp_of(result.messages, "INVITE sip:")
    assert re.search(r"^c=IN IP6 ::1\r?$", offer, re.M), offer
    # Via and Contact in the family of the PBX, though the gateway listens on 127.0.0.1 first
    assert re.search(r"^Via: SIP/2.0/UDP \[::1\]:\d+;", result.messages, re.M), result.messages
    assert re.search(r"^Contact: <sip:([^>@]*@)?\[::1\]:\d+>", result.messages, re.M), result.messages


async def test_the_keepalive_to_an_ipv6_pbx_says_where_to_answer_in_ip6() -> None:
    require_ipv6_loopback()
    pbx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    pbx.bind(("::1", 0))
    pbx.setblocking(False)
    try:
        config = gateway_config(f"[::1]:{pbx.getsockname()[1]}", sip=sip_section("127.0.0.1", "::1"))
        config = dataclasses.replace(config, pbx=dataclasses.replace(config.pbx, keepalive_interval=0.2))
        async with running_gateway(config):
            data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(pbx, 4000), 5)
    finally:
        pbx.close()
    options = data.decode()
    assert options.startswith("OPTIONS sip:[::1]:"), options
    assert re.search(r"^Via: SIP/2.0/UDP \[::1\]:\d+;", options, re.M), options
    assert re.search(r"^Contact: <sip:\[::1\]:\d+>", options, re.M), options
