"""A call survives the loss of its user agent (issue 34 item 3): UA "A" has an established call with a
real SIP phone (pjsua2, peers/phone.py), A's ``call.handover()`` goes through JSON, A dies without a BYE
(its transports closed under the call), UA "B" on another port adopts the call and sends a re-INVITE with
a new SDP from its own Contact (a target refresh, RFC 3261 §12.2). The phone answers 200 and B ACKs it;
the phone's media goes to B's new port, and the phone's BYE then reaches B's adopted call, which answers
it 200 (the phone sees the call end with 200). Both directions: A placed the call, or A answered it.
Also on a bare pair of UAs: what adopt() refuses, the CSeq leap, B's Contact."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.runtime.continuity.takeover import NOT_CARRIED_ON
from gateway.sip.useragent.ua import UASettings, UserAgent
from gateway.sip.useragent.ua_adopt import CSEQ_LEAP, AdoptedCall
from gateway.sip.useragent.ua_calls import Call, CallError
from gateway.sip.useragent.ua_events import Answered, Bye, Confirmed, ReinviteAcked, ReinviteReceived
from peers.phone import DeskPhone
from sipcore.dialogs.snapshot import SnapshotError
from tests.sip.ua_helpers import (
    ANSWER,
    FAST,
    LOOPBACK,
    OFFER,
    address_of,
    answer_next,
    expect,
    identity,
    running_ua,
)


class MediaSink(asyncio.DatagramProtocol):
    """Where an SDP of ours says our audio goes: counts the RTP packets that arrive."""

    def __init__(self) -> None:
        self.packets = 0
        self.arrived = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.packets += 1
        self.arrived.set()


@contextlib.asynccontextmanager
async def media_sink() -> AsyncIterator[tuple[int, MediaSink]]:
    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_datagram_endpoint(MediaSink, local_addr=("127.0.0.1", 0))
    try:
        yield transport.get_extra_info("sockname")[1], sink
    finally:
        transport.close()


def sdp_at(port: int, version: int) -> str:
    """Our offer with audio at ``port`` and o= version ``version`` (RFC 3264 §8: a new offer in the
    session increments it)."""
    return OFFER.replace("40000", str(port)).replace("o=alice 1 1", f"o=alice 1 {version}")


async def die(ua: UserAgent) -> None:
    """What kill -9 leaves of a UA: its sockets gone, no BYE sent, no timer of it firing any more."""
    for call in ua.calls:
        call.stop_session_timer()
    await ua.layer.close()


async def move_and_hang_up(
    data: dict[str, Any], b: UserAgent, phone: DeskPhone, sink: MediaSink, port: int
) -> None:
    """B adopts the call, re-INVITEs from its Contact with audio at ``port``, then the phone hangs up."""
    call = b.adopt(json.loads(json.dumps(data)))  # what Redis kept: plain JSON
    assert isinstance(call, AdoptedCall) and call in b.calls
    assert call.dialog is not None and call.dialog.contact == b.endpoint.contact()  # B's own address
    result = await call.reinvite(sdp_at(port, 2))  # ACKed by reinvite() on its 200
    assert result.ok, result
    assert "m=audio" in result.sdp and call.remote_sdp == result.sdp
    await asyncio.wait_for(sink.arrived.wait(), 10)  # the phone's audio now comes to B's new port
    await phone.hangup()
    bye = await expect(call, Bye, timeout=10)  # the phone's BYE went to B (the refreshed target)
    assert bye.by_remote and call.ended and call not in b.calls
    await phone.wait_for("state", state="DISCONNECTED", code=200)  # and B answered it 200


async def test_a_call_we_placed_goes_on_from_another_ua(tmp_path: Path) -> None:
    a = UserAgent(UASettings(timers=FAST, trusted_sources=LOOPBACK))
    await a.start()
    try:
        async with (
            running_ua(trusted_sources=LOOPBACK) as b,
            DeskPhone(tmp_path, user="2000", tone=440) as phone,
            media_sink() as (port, sink),
        ):
            assert b.endpoint.port != a.endpoint.port
            call = await a.invite(phone.uri, OFFER, identity())
            await expect(call, Answered, timeout=10)
            await phone.wait_for("state", state="CONFIRMED")
            data = call.handover()
            assert data["kind"] == "outgoing" and data["dialog"]["role"] == "uac"
            await die(a)
            await move_and_hang_up(data, b, phone, sink, port)
    finally:
        await a.close(timeout=0.5)


async def test_a_call_we_answered_goes_on_from_another_ua(tmp_path: Path) -> None:
    a = UserAgent(UASettings(timers=FAST, trusted_sources=LOOPBACK))
    await a.start()
    try:
        async with (
            running_ua(trusted_sources=LOOPBACK) as b,
            DeskPhone(tmp_path, user="2001", tone=440) as phone,
            media_sink() as (port, sink),
        ):
            number = await phone.call(f"sip:gw@{address_of(a)}")
            call = await answer_next(a)
            await expect(call, Confirmed, timeout=10)
            await phone.wait_for("state", call=number, state="CONFIRMED")
            data = call.handover()
            assert data["kind"] == "incoming" and data["dialog"]["role"] == "uas"
            await die(a)
            await move_and_hang_up(data, b, phone, sink, port)
    finally:
        await a.close(timeout=0.5)


# --- on a bare pair of UAs: no phone -----------------------------------------------------------------


async def established(a: UserAgent, peer: UserAgent) -> tuple[Call, Call]:
    call = await a.invite(f"sip:bob@{address_of(peer)}", OFFER, identity())
    theirs = await answer_next(peer, ring=False)
    await expect(call, Answered)
    await expect(theirs, Confirmed)
    return call, theirs


async def test_adopt_refuses_a_call_it_has_and_malformed_data() -> None:
    async with running_ua() as a, running_ua() as peer, running_ua() as b:
        call, _ = await established(a, peer)
        data = call.handover()
        with pytest.raises(CallError, match="already"):
            a.adopt(data)  # A still has it
        for key, value, message in (
            ("version", 9, "call.version: expected 1"),
            ("kind", "sideways", "call.kind: expected one of"),
            ("dialog", None, "call.dialog: expected an object"),
            ("local_tag", "other", "call.call_id: the call's Call-ID and local tag are not its dialog's"),
            ("session_timer", {"interval": 0, "refresher": "uac", "we_are": "uac"}, "interval"),
            ("next_hop", {"transport": "UDP", "host": "[::1]", "port": 5060}, "call.next_hop: invalid host"),
            ("peer_allows", "INVITE", "call.peer_allows: expected a list"),
        ):
            with pytest.raises(SnapshotError, match=message):
                b.adopt({**data, key: value})
        early = {**data, "dialog": {**data["dialog"], "state": "early"}}
        with pytest.raises(SnapshotError, match="only a confirmed dialog"):
            b.adopt(early)
        b.adopt(data)  # none of the above left anything behind
        with pytest.raises(CallError, match="already"):
            b.adopt(data)  # none of the above left anything behind
        await call.bye()


async def test_an_adopted_call_given_up_says_why_in_its_bye() -> None:
    """A survivor that cannot carry a dead instance's call on ends it with a Reason (RFC 3326), which the
    far end reads (here a UA of ours: its Bye event has it; a PBX logs it as its hangup cause)."""
    async with running_ua() as a, running_ua() as peer, running_ua() as b:
        call, theirs = await established(a, peer)
        data = call.handover()
        await die(a)
        moved = b.adopt(data)
        await moved.bye(NOT_CARRIED_ON)
        ended = await expect(theirs, Bye)
        assert ended.by_remote and ended.reasons == (NOT_CARRIED_ON,)
        assert (await expect(moved, Bye)).reasons == (NOT_CARRIED_ON,)


async def test_adopted_call_leaps_its_cseq_and_refreshes_the_target() -> None:
    async with running_ua() as a, running_ua() as peer, running_ua() as b:
        call, theirs = await established(a, peer)
        await call.info("application/dtmf-relay", "Signal=1\r\nDuration=100\r\n")
        data = call.handover()
        assert data["dialog"]["local_cseq"] == 2  # the INVITE's 1, the INFO's 2
        await die(a)
        moved = b.adopt(data)
        assert moved.dialog is not None and moved.dialog.local_cseq == 2 + CSEQ_LEAP
        reinvite = asyncio.ensure_future(moved.reinvite(sdp_at(40010, 2)))
        offer = await expect(theirs, ReinviteReceived)
        assert "m=audio 40010" in offer.sdp
        assert theirs.dialog is not None and theirs.dialog.remote_cseq == 3 + CSEQ_LEAP
        # RFC 3261 §12.2.2: the re-INVITE's Contact (B's) is the peer's new remote target
        assert theirs.dialog.remote_target == moved.dialog.contact.uri
        theirs.answer_reinvite(ANSWER)
        assert (await reinvite).ok
        await expect(theirs, ReinviteAcked)
        await theirs.bye()
        assert (await expect(moved, Bye)).by_remote
        assert (await expect(theirs, Bye)).status == 200


async def test_a_re_invite_without_an_offer_takes_the_far_ends_offer_and_answers_in_the_ack() -> None:
    """RFC 3261 §14.1, RFC 3264 §5 (gateway/sip/useragent/ua_late_offer.py): our re-INVITE carries no
    body; the far end's 2xx carries its offer, and our ACK the answer `answer` makes of it. An offer
    we cannot answer is ACKed without a body and reported 488."""
    async with running_ua() as a, running_ua() as peer:
        call, theirs = await established(a, peer)
        offers: list[str] = []

        async def answering(offer: str) -> str | None:
            offers.append(offer)
            return ANSWER

        asked = asyncio.ensure_future(call.reinvite_offerless(answering))
        received = await expect(theirs, ReinviteReceived)
        assert received.sdp == ""  # no offer in our re-INVITE
        theirs.answer_reinvite(sdp_at(40020, 2))  # the far end's offer, in its 200
        result = await asked
        assert result.ok and "m=audio 40020" in result.sdp and offers == [result.sdp]
        acked = await expect(theirs, ReinviteAcked)
        assert acked.sdp == ANSWER  # our answer, in the ACK
        assert call.local_sdp == ANSWER and call.remote_sdp == result.sdp

        async def refusing(offer: str) -> str | None:
            return None

        asked = asyncio.ensure_future(call.reinvite_offerless(refusing))
        await expect(theirs, ReinviteReceived)
        theirs.answer_reinvite(sdp_at(40020, 3))
        assert (await asked).status == 488
        assert (await expect(theirs, ReinviteAcked)).sdp == ""  # an ACK all the same, with no answer
        await call.bye()
