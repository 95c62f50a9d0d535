"""Offers the gateway must make itself, end to end with sipp: an INVITE without SDP (late offer) and a
re-INVITE without SDP (Polycom's resume). On the wire sipp checks that each 200 carries a full sendrecv
offer with PCMU and answers in the ACK; at the web client the call rings, connects and (re-INVITE)
reports held then resumed; and the browser hears its own tone back through sipp's -rtp_echo, so the
audio flowed both ways on the addresses of the ACK's answer."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from peers.binaries import require_binary
from peers.sipp import Sipp
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until

TONE = 1000.0


@contextlib.asynccontextmanager
async def sipp_calls_alice(
    tmp_path: Path, scenario: str
) -> AsyncIterator[tuple[WebUser, WebPeer, Sipp, str]]:
    """A gateway; alice online; sipp running `scenario` against her number (with -rtp_echo, a 4 s
    pause); she answers with a WebPeer playing TONE. (alice, her peer, sipp, the call id)."""
    async with (
        running_gateway(gateway_config(None)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        host, port = gateway.sip_address
        sipp = Sipp(tmp_path, scenario, f"{host}:{port}", service="1001", duration_ms=4000, rtp_echo=True)
        peer = WebPeer(TONE)
        try:
            await sipp.start()
            incoming = await alice.wait_for("incoming")
            await alice.answer(incoming["call_id"], peer.answer)
            yield alice, peer, sipp, incoming["call_id"]
        finally:
            await sipp.stop()
            await peer.close()


async def test_a_late_offer_rings_connects_and_carries_audio_both_ways(tmp_path: Path) -> None:
    require_binary("sipp")
    async with sipp_calls_alice(tmp_path, "uac_late_offer") as (alice, peer, sipp, call_id):
        await wait_until(lambda: peer.heard(TONE, last=0.5), timeout=10)  # there and back
        ended = await alice.wait_for("ended", call_id=call_id, timeout=15)
        assert ended["reason"] == "remote_hangup", ended
        result = await sipp.wait(timeout=15)
    assert result.ok, result  # the 200 carried an offer with PCMU and a=sendrecv
    assert result.count("SIP/2.0 200") >= 2, result


async def test_an_offerless_reinvite_after_hold_resumes_the_call(tmp_path: Path) -> None:
    require_binary("sipp")
    async with sipp_calls_alice(tmp_path, "uac_offerless_resume") as (alice, peer, sipp, call_id):
        assert (await alice.wait_for("held", call_id=call_id))["by"] == "remote"
        assert (await alice.wait_for("resumed", call_id=call_id))["by"] == "remote"
        peer.clear()
        await wait_until(lambda: peer.heard(TONE, last=0.5), timeout=10)  # audio after the resume
        await alice.wait_for("ended", call_id=call_id, timeout=15)
        result = await sipp.wait(timeout=15)
    assert result.ok, result  # the hold answered recvonly; the offerless INVITE's 200 offered sendrecv
    assert result.count("SIP/2.0 200") >= 4, result
