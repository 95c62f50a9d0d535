"""Calls the gateway must refuse, end to end: the SIP side sees the refusal on the wire at once, the web
user never hears of the call."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from peers.binaries import require_binary
from peers.ports import free_port
from peers.sipp import Sipp
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway


async def test_a_t38_only_invite_is_488_with_a_warning_and_rings_nobody(tmp_path: Path) -> None:
    require_binary("sipp")
    async with (
        running_gateway(gateway_config(None)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,  # online: the call would ring her
    ):
        host, port = gateway.sip_address
        result = await Sipp(tmp_path, "uac_t38_only", f"{host}:{port}", service="1001").run()
        assert result.ok, result
        assert result.count("SIP/2.0 488") >= 1 and result.count("SIP/2.0 180") == 0, result
        assert 'Warning: 304 sip-webrtc-gateway "no audio stream to bridge' in result.messages, result
        await asyncio.sleep(0.3)
        assert [e for e in alice.events if e.get("type") == "incoming"] == []
        assert gateway.driver.calls == 0


async def test_requests_the_gateway_must_refuse_get_their_status_and_ring_nobody(tmp_path: Path) -> None:
    """RFC 4475 §3.3.6 / §3.3.15 and RFC 3261 §8.2 through the whole gateway: an INVITE whose body is
    application/unknownformat gets 415 with Accept, one that accepts no SDP 406, an unknown method 501,
    a known one not allowed 405 with Allow; the web user, online, never hears of any of them."""
    require_binary("sipp")
    async with (
        running_gateway(gateway_config(None)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        host, port = gateway.sip_address
        result = await Sipp(tmp_path, "uac_refused_requests", f"{host}:{port}", service="1001").run()
        assert result.ok, result
        for status in ("415", "406", "501", "405"):
            assert result.count(f"SIP/2.0 {status}") >= 1, result
        assert result.count("SIP/2.0 180") == 0 and "Accept: application/sdp" in result.messages
        await asyncio.sleep(0.3)
        assert [e for e in alice.events if e.get("type") == "incoming"] == []
        assert gateway.driver.calls == 0


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_a_closed_pbx_port_ends_the_call_at_once(transport: str) -> None:
    """Nothing listens at the PBX's address: ICMP port unreachable (UDP, RFC 3261 §18.4) or the TCP
    connection refused ends the web user's call at once as "PBX unreachable", not after the setup
    timeout (20 s here)."""
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    closed = free_port(kind)  # free now: nothing listens there
    sip: dict[str, object] = {
        "listen": [{"transport": transport, "host": "127.0.0.1", "port": free_port(kind)}],
        "trusted_sources": ["127.0.0.1/32"],
    }
    config = gateway_config(
        f"127.0.0.1:{closed}", pbx_transport=transport, sip=sip, calls={"setup_timeout": 20}
    )
    async with running_gateway(config) as gateway, WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice:
        peer = WebPeer(freq=1000)
        try:
            started = asyncio.get_running_loop().time()
            call_id = await alice.call("2000", await peer.offer())
            ended = await alice.wait_for("ended", call_id=call_id, timeout=25)
            took = asyncio.get_running_loop().time() - started
        finally:
            await peer.close()
        assert ended["reason"] == "pbx_unreachable", ended
        assert "Destination Unreachable" in ended["message"], ended
        assert took < 5, f"the call took {took:.1f} s to fail"
        assert gateway.driver.calls == 0
