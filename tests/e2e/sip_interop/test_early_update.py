"""An offer in UPDATE in the early dialog (RFC 3311 §5.1) end to end with sipp and a web user.

The PBX (sipp UAS `uas_early_update`, -rtp_echo) answers alice's call with a 183 carrying SDP, then holds
the early media with an UPDATE offering a=sendonly (sipp checks the 200 answers a=recvonly), resumes it
with a second UPDATE (a=sendrecv in the answer), then answers the INVITE with 200. Alice hears her tone
echoed during early media, silence while held (the gateway stops sending toward the PBX), the tone again
once resumed and after the 200."""

from __future__ import annotations

import asyncio
from pathlib import Path

from peers.binaries import require_binary
from peers.sipp import Sipp
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import wait_until
from tests.e2e.sip_interop.test_pickup import TONE, alice_dialing


async def _echo_stops(peer: WebPeer, timeout: float = 10.0) -> None:
    """Within ``timeout``, a second in which (almost) no RTP reaches the browser."""
    for _ in range(int(timeout)):
        before = peer.received
        await asyncio.sleep(1.0)
        if peer.received - before < 5:  # 50 packets a second while the echo flows
            return
    raise AssertionError("the echo never stopped: the gateway kept sending toward the held PBX")


async def _echo_back_then_connected(alice: WebUser, peer: WebPeer, call_id: str) -> None:
    """The echo is back before the 200; the 200 connects the call, the echo goes on; alice hangs up."""
    peer.clear()
    await wait_until(lambda: peer.heard(TONE, last=0.5), timeout=10)
    assert not any(e.get("type") == "connected" for e in alice.events)
    await alice.wait_for("connected", call_id=call_id, timeout=10)
    peer.clear()
    await wait_until(lambda: peer.heard(TONE, last=0.5), timeout=10)
    await alice.request({"type": "hangup", "call_id": call_id})
    await alice.wait_for("ended", call_id=call_id)


async def test_the_pbx_holds_and_resumes_early_media_with_update(tmp_path: Path) -> None:
    require_binary("sipp")
    async with Sipp(tmp_path, "uas_early_update", rtp_echo=True) as pbx:
        async with alice_dialing(pbx) as (_, alice, peer, call_id):
            early = await alice.wait_for("early_media", call_id=call_id, timeout=10)
            await peer.accept(early["sdp"])
            await wait_until(lambda: peer.heard(TONE, last=0.5), timeout=10)
            # UPDATE a=sendonly: the gateway answers recvonly and stops sending: no echo comes back
            await _echo_stops(peer)
            assert (await alice.wait_for("held", call_id=call_id))["by"] == "remote"
            assert (await alice.wait_for("resumed", call_id=call_id))["by"] == "remote"
            # UPDATE a=sendrecv: the echo is back, before the 200
            await _echo_back_then_connected(alice, peer, call_id)
        result = await pbx.wait(timeout=15)
    assert result.ok, result  # both UPDATEs answered 200: recvonly, then sendrecv
    assert result.messages.count("CSeq: 1 UPDATE") >= 2 and result.messages.count("CSeq: 2 UPDATE") >= 2


async def test_the_web_user_holds_and_resumes_early_media_with_update(tmp_path: Path) -> None:
    """The other way (RFC 3311 §5.1): the PBX (sipp `uas_early_hold_update`, -rtp_echo) answers alice's
    call in a reliable 183 whose Allow lists UPDATE; alice holds during early media: the gateway sends
    an UPDATE offering a=sendonly (sipp checks it), alice hears `held` and no echo; she resumes: an UPDATE
    with a=sendrecv, `resumed`, the echo is back; the 200 that follows connects the call."""
    require_binary("sipp")
    async with Sipp(tmp_path, "uas_early_hold_update", rtp_echo=True) as pbx:
        async with alice_dialing(pbx) as (_, alice, peer, call_id):
            early = await alice.wait_for("early_media", call_id=call_id, timeout=10)
            await peer.accept(early["sdp"])
            await wait_until(lambda: peer.heard(TONE, last=0.5), timeout=10)
            await alice.request({"type": "hold", "call_id": call_id})
            assert (await alice.wait_for("held", call_id=call_id))["by"] == "local"
            await _echo_stops(peer)
            await alice.request({"type": "resume", "call_id": call_id})
            assert (await alice.wait_for("resumed", call_id=call_id))["by"] == "local"
            await _echo_back_then_connected(alice, peer, call_id)
        result = await pbx.wait(timeout=15)
    assert result.ok, result  # both UPDATEs came, with a=sendonly then a=sendrecv
    assert "UPDATE sip:" in result.messages and "a=sendonly" in result.messages
