"""Calls the gateway must refuse, end to end: the SIP side sees the refusal on the wire at once, the web
user never hears of the call."""

from __future__ import annotations

import asyncio
from pathlib import Path

from peers.binaries import require_binary
from peers.sipp import Sipp
from peers.web_user import WebUser
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
