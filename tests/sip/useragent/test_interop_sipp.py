"""The user agent against sipp (Debian sip-tester): each scenario of peers/scenarios that a
gateway meets, in the direction the gateway meets it. Our UA trusts 127.0.0.1 only (the real
TrustedSources policy, not AcceptAll)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.sip.useragent.ua_events import (
    Answered,
    Bye,
    Cancelled,
    Confirmed,
    EarlyMedia,
    Failed,
    InfoReceived,
    Provisional,
    ReinviteAcked,
    ReinviteReceived,
    set_direction,
)
from peers.binaries import require_binary
from peers.sipp import Sipp
from tests.sip.ua_helpers import (
    ANSWER,
    LOOPBACK,
    OFFER,
    address_of,
    answer_next,
    expect,
    identity,
    running_ua,
)


async def test_sipp_uac_basic_call_to_us(tmp_path: Path) -> None:
    require_binary("sipp")
    async with running_ua(trusted_sources=LOOPBACK) as ua:
        answering = asyncio.create_task(answer_next(ua))
        result = await Sipp(tmp_path, "uac_basic_call", address_of(ua), service="gw", duration_ms=300).run()
        assert result.ok, result
        call = await answering
        assert (
            "m=audio" in call.offer
            and call.caller is not None
            and str(call.caller.uri).startswith("sip:sipp@")
        )
        await expect(call, Confirmed)
        assert (await expect(call, Bye)).by_remote
        assert result.count("SIP/2.0 100") == 1 and result.count("SIP/2.0 180") == 1
        assert "bob 1 1 IN IP4" in result.messages  # our answer reached sipp


async def test_we_call_sipp_uas_basic_call(tmp_path: Path) -> None:
    require_binary("sipp")
    async with running_ua(trusted_sources=LOOPBACK) as ua, Sipp(tmp_path, "uas_basic_call") as uas:
        call = await ua.invite(uas.uri("2001"), OFFER, identity())
        assert (await expect(call, Provisional)).status in (100, 180)
        assert "o=sipp" in (await expect(call, Answered)).sdp
        await call.bye()
        assert (await expect(call, Bye)).status == 200
        result = await uas.wait(10)
        assert result.ok, result
        assert result.count("ACK sip:") == 1 and result.count("BYE sip:") == 1


async def test_we_cancel_sipp_after_180(tmp_path: Path) -> None:
    require_binary("sipp")
    async with running_ua(trusted_sources=LOOPBACK) as ua, Sipp(tmp_path, "uas_ring_cancelled") as uas:
        call = await ua.invite(uas.uri("2001"), OFFER, identity())
        while (await expect(call, Provisional)).status != 180:
            pass
        call.cancel()
        assert (await expect(call, Failed)).status == 487
        result = await uas.wait(10)
        assert result.ok, result
        assert result.count("CANCEL sip:") == 1


async def test_sipp_cancels_our_ringing_call(tmp_path: Path) -> None:
    require_binary("sipp")
    async with running_ua(trusted_sources=LOOPBACK) as ua:
        run = asyncio.create_task(Sipp(tmp_path, "uac_cancel", address_of(ua), service="gw").run())
        call = await ua.next_incoming(10)
        call.ring()
        assert await expect(call, Cancelled) == Cancelled()
        result = await run
        assert result.ok, result
        assert result.count("SIP/2.0 487") >= 1


async def test_sipp_busy(tmp_path: Path) -> None:
    require_binary("sipp")
    async with running_ua(trusted_sources=LOOPBACK) as ua, Sipp(tmp_path, "uas_busy") as uas:
        call = await ua.invite(uas.uri("2001"), OFFER, identity())
        failed = await expect(call, Failed)
        assert (failed.status, failed.reason) == (486, "Busy Here")
        result = await uas.wait(10)
        assert result.ok, result  # it got the ACK of its 486 (sent by our transaction)


async def test_sipp_early_media_then_200(tmp_path: Path) -> None:
    require_binary("sipp")
    async with running_ua(trusted_sources=LOOPBACK) as ua, Sipp(tmp_path, "uas_early_media") as uas:
        call = await ua.invite(uas.uri("2001"), OFFER, identity())
        assert "o=sipp" in (await expect(call, EarlyMedia)).sdp
        assert "o=sipp" in (await expect(call, Answered)).sdp
        await call.bye()
        result = await uas.wait(10)
        assert result.ok, result


async def test_sipp_info_dtmf_reaches_us(tmp_path: Path) -> None:
    require_binary("sipp")
    async with running_ua(trusted_sources=LOOPBACK) as ua:
        answering = asyncio.create_task(answer_next(ua))
        sipp = Sipp(tmp_path, "uac_info_dtmf", address_of(ua), service="gw", duration_ms=200)
        result = await sipp.run()
        assert result.ok, result
        call = await answering
        first, second = await expect(call, InfoReceived), await expect(call, InfoReceived)
        assert first.content_type == second.content_type == "application/dtmf-relay"
        assert b"Signal=5" in first.body and b"Signal=#" in second.body
        assert (await expect(call, Bye)).by_remote
        assert result.count("SIP/2.0 200") == 4  # INVITE, INFO, INFO, BYE


async def test_sipp_reinvite_hold_and_resume(tmp_path: Path) -> None:
    require_binary("sipp")
    async with running_ua(trusted_sources=LOOPBACK) as ua:
        answering = asyncio.create_task(answer_next(ua))
        run = asyncio.create_task(
            Sipp(tmp_path, "uac_reinvite_hold", address_of(ua), service="gw", duration_ms=300).run()
        )
        call = await answering
        hold = await expect(call, ReinviteReceived, timeout=10)
        assert "a=sendonly" in hold.sdp
        call.answer_reinvite(set_direction(ANSWER, "recvonly"))
        resume = await expect(call, ReinviteReceived, timeout=10)
        assert "a=sendrecv" in resume.sdp
        call.answer_reinvite(set_direction(ANSWER, "sendrecv"))
        assert (await expect(call, Bye, timeout=10)).by_remote
        result = await run
        assert result.ok, result
        assert "a=recvonly" in result.messages


async def test_sipp_offerless_reinvite_gets_our_offer_and_the_ack_brings_the_answer(tmp_path: Path) -> None:
    """RFC 3261 §14.2: a re-INVITE without SDP is delivered with an empty offer; our 200 carries the
    offer, retransmitted until the ACK, whose answer arrives as ReinviteAcked (once)."""
    require_binary("sipp")
    async with running_ua(trusted_sources=LOOPBACK) as ua:
        answering = asyncio.create_task(answer_next(ua))
        run = asyncio.create_task(
            Sipp(tmp_path, "uac_offerless_resume", address_of(ua), service="gw", duration_ms=300).run()
        )
        call = await answering
        assert "a=sendonly" in (await expect(call, ReinviteReceived, timeout=10)).sdp
        call.answer_reinvite(set_direction(ANSWER, "recvonly"))
        assert await expect(call, ReinviteAcked, timeout=10) == ReinviteAcked("")
        assert (await expect(call, ReinviteReceived, timeout=10)).sdp == ""
        remote = call.remote_sdp
        call.answer_reinvite(set_direction(OFFER, "sendrecv"))
        acked = await expect(call, ReinviteAcked, timeout=10)
        assert "m=audio" in acked.sdp and "a=sendrecv" in acked.sdp
        assert call.remote_sdp == remote  # an offerless re-INVITE does not blank what we know of them
        assert (await expect(call, Bye, timeout=10)).by_remote
        result = await run
        assert result.ok, result


async def test_sipp_requests_we_must_refuse_get_the_right_status_before_anyone_rings(tmp_path: Path) -> None:
    """RFC 3261 §8.2.1-§8.2.3 with RFC 4475 §3.3.6 and §3.3.15, on the wire: 415 with Accept, 406,
    501 for an unknown method, 405 with Allow for a known one; no call reaches the call layer."""
    require_binary("sipp")
    async with running_ua(trusted_sources=LOOPBACK) as ua:
        result = await Sipp(tmp_path, "uac_refused_requests", address_of(ua), service="gw").run()
        assert result.ok, result
        for status in ("415", "406", "501", "405"):
            assert result.count(f"SIP/2.0 {status}") >= 1, result
        assert result.count("SIP/2.0 180") == 0 and result.count("SIP/2.0 200") == 0
        assert "Accept: application/sdp" in result.messages  # on the 415 (and the 406)
        assert "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO" in result.messages  # on the 405 and 501
        with pytest.raises(TimeoutError):
            await ua.next_incoming(0.2)  # nothing was offered to the call layer
