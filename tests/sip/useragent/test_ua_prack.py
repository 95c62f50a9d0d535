"""100rel and UPDATE between two of our user agents on loopback (RFC 3262, RFC 3311): reliable 180 and
183 PRACKed once each, the 200 held back for the PRACK of the 183, 500 when no PRACK ever comes, a PRACK
that matches nothing 481; UPDATE as a session refresh, with an offer answered in its 200, refused 491/500
while an offer is outstanding (§5.2), and in the early dialog."""

from __future__ import annotations

import asyncio

from gateway.sip.useragent import ua_update
from gateway.sip.useragent.incoming import IncomingCall
from gateway.sip.useragent.outgoing import OutgoingCall
from gateway.sip.useragent.ua import Listen, UserAgent
from gateway.sip.useragent.ua_events import (
    Answered,
    Confirmed,
    EarlyMedia,
    Failed,
    Provisional,
    ReinviteReceived,
)
from sipcore.dialogs.offer_answer import OaEvent, OaState
from sipcore.dialogs.reliable import ReliableState, Verdict
from tests.sip.ua_helpers import ANSWER, EARLY, FAST, OFFER, expect, identity, running_ua, uri_of

HOLD = ANSWER.replace("a=sendrecv", "a=sendonly")


async def early(a: UserAgent, b: UserAgent) -> tuple[OutgoingCall, IncomingCall]:
    call = await a.invite(uri_of(b), OFFER, identity())
    incoming = await b.next_incoming(5)
    return call, incoming


async def test_reliable_180_and_183_are_prack_ed_and_the_200_waits_for_the_183s_prack() -> None:
    async with (
        running_ua(FAST) as a,
        running_ua(FAST, listen=(Listen("udp"),), prack_when_supported=True) as b,
    ):
        call, incoming = await early(a, b)
        assert "100rel" in incoming.request.headers.tags("Supported")
        assert "PRACK" in incoming.peer_allows and "UPDATE" in incoming.peer_allows
        assert incoming.reliable is not None
        incoming.ring()
        incoming.progress(EARLY)  # queued behind the 180 until its PRACK (§3)
        incoming.answer(ANSWER)  # held until the 183's PRACK (it carries SDP)
        assert (await expect(call, Provisional)).status == 100
        assert (await expect(call, Provisional)).status == 180
        assert (await expect(call, Provisional)).status == 183
        assert await expect(call, EarlyMedia) == EarlyMedia(EARLY)
        assert await expect(call, Answered) == Answered(ANSWER)
        await expect(incoming, Confirmed)
        assert incoming.reliable.sender.state is ReliableState.DONE
        assert call.offers.state is OaState.STABLE and incoming.offers.state is OaState.STABLE
        await call.bye()


async def test_unreliable_by_default_when_100rel_is_only_supported() -> None:
    async with running_ua(FAST) as a, running_ua(FAST, listen=(Listen("udp"),)) as b:
        call, incoming = await early(a, b)
        assert incoming.reliable is None
        incoming.answer(ANSWER)
        await expect(call, Answered)
        await call.bye()


async def test_no_prack_within_64_t1_fails_the_invite_with_500() -> None:
    async with (
        running_ua(FAST) as a,
        running_ua(FAST, listen=(Listen("udp"),), prack_when_supported=True) as b,
    ):
        call, incoming = await early(a, b)
        call.pracks.judge = lambda response, dialog: Verdict.UNRELIABLE  # type: ignore[method-assign]
        incoming.ring()
        failed = await expect(incoming, Failed, timeout=10)
        assert (failed.status, failed.reason) == (500, "No PRACK")
        assert (await expect(call, Failed, timeout=5)).status == 500


async def test_a_prack_matching_nothing_gets_481() -> None:
    async with (
        running_ua(FAST) as a,
        running_ua(FAST, listen=(Listen("udp"),), prack_when_supported=True) as b,
    ):
        call, incoming = await early(a, b)
        incoming.ring()
        await expect(call, Provisional)
        await expect(call, Provisional)
        assert call.dialog is not None
        for headers, status in (((("RAck", "1 999 INVITE"),), 481), ((), 400)):
            prack = call.dialog.create_request("PRACK", headers=headers)
            final = await (await a.layer.request(prack)).final_response()
            assert final.status == status, final
        incoming.answer(ANSWER)
        await expect(call, Answered)
        await call.bye()


async def answered(a: UserAgent, b: UserAgent) -> tuple[OutgoingCall, IncomingCall]:
    call, incoming = await early(a, b)
    incoming.answer(ANSWER)
    await expect(call, Answered)
    await expect(incoming, Confirmed)
    return call, incoming


async def test_update_without_offer_refreshes_and_with_an_offer_is_answered_in_its_200() -> None:
    async with running_ua(FAST) as a, running_ua(FAST, listen=(Listen("udp"),)) as b:
        call, incoming = await answered(a, b)
        assert "UPDATE" in call.peer_allows
        assert (await ua_update.refresh(incoming)).status == 200  # the callee refreshes
        assert call.dialog is not None
        update = call.dialog.create_request("UPDATE", body=OFFER.encode(), content_type="application/sdp")
        sent = asyncio.ensure_future(call.send_in_dialog(update))
        assert await expect(incoming, ReinviteReceived) == ReinviteReceived(OFFER)
        assert incoming.offers.state is OaState.REMOTE_OFFER
        incoming.answer_reinvite(HOLD)
        final, _ = await sent
        assert final.status == 200 and final.body.decode() == HOLD
        assert incoming.offers.state is OaState.STABLE
        await call.bye()


async def test_update_offer_glare_491_and_unanswered_offer_500_with_retry_after() -> None:
    async with running_ua(FAST) as a, running_ua(FAST, listen=(Listen("udp"),)) as b:
        call, incoming = await answered(a, b)
        assert call.dialog is not None

        async def update() -> tuple[int, str | None]:
            assert call.dialog is not None
            request = call.dialog.create_request(
                "UPDATE", body=OFFER.encode(), content_type="application/sdp"
            )
            final, _ = await call.send_in_dialog(request)
            return final.status, final.headers.get("Retry-After")

        incoming.offer_event(OaEvent.SEND_OFFER)  # the callee's own offer is out (§5.2: glare)
        assert await update() == (491, None)
        incoming.offer_event(OaEvent.REJECTED)
        sent = asyncio.ensure_future(update())
        await expect(incoming, ReinviteReceived)
        status, retry = await update()  # the first still unanswered
        assert status == 500 and retry is not None and 0 <= int(retry) <= 10
        incoming.answer_reinvite(ANSWER)
        assert (await sent)[0] == 200
        await call.bye()


async def test_update_in_the_early_dialog() -> None:
    async with running_ua(FAST) as a, running_ua(FAST, listen=(Listen("udp"),)) as b:
        call, incoming = await early(a, b)
        incoming.ring()
        await expect(call, Provisional)
        await expect(call, Provisional)
        assert call.dialog is not None
        refresh = call.dialog.create_request("UPDATE")
        assert (await call.send_in_dialog(refresh))[0].status == 200
        offer = call.dialog.create_request("UPDATE", body=OFFER.encode(), content_type="application/sdp")
        final, _ = await call.send_in_dialog(offer)
        assert final.status == 500  # the INVITE's offer is not answered yet (§5.2)
        assert final.headers.get("Retry-After") is not None
        incoming.answer(ANSWER)
        await expect(call, Answered)
        await call.bye()


async def test_an_offer_in_update_re_negotiates_our_early_dialog_and_is_488_in_theirs() -> None:
    """RFC 3311 §5.1: the callee moves or holds early media with UPDATE once the 183 answered our offer;
    the answer goes in the UPDATE's 200. The callee's own early dialog (we are its UAS) takes none."""
    async with running_ua(FAST) as a, running_ua(FAST, listen=(Listen("udp"),)) as b:
        call, incoming = await early(a, b)
        incoming.progress(EARLY)
        assert await expect(call, EarlyMedia) == EarlyMedia(EARLY)
        assert incoming.dialog is not None and call.offers.state is OaState.STABLE
        held = HOLD.replace("ANSWER", "UPDATE")
        update = incoming.dialog.create_request("UPDATE", body=held.encode(), content_type="application/sdp")
        sent = asyncio.ensure_future(incoming.send_in_dialog(update))
        assert await expect(call, ReinviteReceived) == ReinviteReceived(held)
        call.answer_reinvite(OFFER.replace("a=sendrecv", "a=recvonly"))
        final, _ = await sent
        assert final.status == 200 and b"a=recvonly" in final.body
        assert call.offers.state is OaState.STABLE
        assert call.dialog is not None
        theirs = call.dialog.create_request("UPDATE", body=OFFER.encode(), content_type="application/sdp")
        assert (await call.send_in_dialog(theirs))[0].status in (488, 500)  # not taken in their dialog
        incoming.answer(ANSWER)
        await expect(call, Answered)
        await call.bye()


async def test_reoffer_with_update_sends_the_hold_in_update_and_otherwise_a_reinvite() -> None:
    """UserAgentSettings.reoffer_with_update: the caller's hold is an UPDATE with the offer, answered in
    its 200 (no ACK, RFC 3311 §5.1); the session and offer/answer state follow the answer. Without the
    setting, the same hold is a re-INVITE (the callee sees it as one: its ACK confirms it)."""
    for with_update in (True, False):
        async with (
            running_ua(FAST, reoffer_with_update=with_update) as a,
            running_ua(FAST, listen=(Listen("udp"),)) as b,
        ):
            call, incoming = await answered(a, b)
            holding = asyncio.ensure_future(call.hold(OFFER.replace("a=sendrecv", "a=sendonly")))
            received = await expect(incoming, ReinviteReceived)
            assert received.sdp is not None and "a=sendonly" in received.sdp
            assert (incoming._reinvite_in.request.method if incoming._reinvite_in else None) == (
                "UPDATE" if with_update else "INVITE"
            )
            incoming.answer_reinvite(ANSWER.replace("a=sendrecv", "a=recvonly"))
            result = await holding
            assert result.status == 200 and "a=recvonly" in result.sdp
            assert call.offers.state is OaState.STABLE and "a=recvonly" in call.remote_sdp
            await call.bye()
