"""The user agent against itself on loopback (ours to ours), and against a challenging UAS."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from gateway.sip.transactions.layer import TransactionLayer
from gateway.sip.transactions.policy import AcceptAll, TrustedSources
from gateway.sip.useragent.incoming import IncomingCall
from gateway.sip.useragent.outgoing import OutgoingCall
from gateway.sip.useragent.ua import UserAgent
from gateway.sip.useragent.ua_calls import CallError
from gateway.sip.useragent.ua_events import (
    Answered,
    Bye,
    Cancelled,
    Confirmed,
    EarlyMedia,
    Failed,
    InfoReceived,
    MessageReceived,
    Provisional,
    ReinviteReceived,
    set_direction,
)
from tests.sip.layer_ua import SDP, TestUA, make_request
from tests.sip.ua_helpers import (
    ANSWER,
    EARLY,
    FAST,
    OFFER,
    ChallengingUAS,
    address_of,
    expect,
    identity,
    running_ua,
    ua_pair,
    uri_of,
)


async def answered_call(a: UserAgent, b: UserAgent) -> tuple[OutgoingCall, IncomingCall]:
    call = await a.invite(uri_of(b), OFFER, identity())
    incoming = await b.next_incoming(5)
    incoming.answer(ANSWER)
    await expect(call, Answered)
    await expect(incoming, Confirmed)
    return call, incoming


async def test_invite_ring_answer_bye() -> None:
    async with ua_pair() as (a, b):
        call = await a.invite(uri_of(b), OFFER, identity())
        incoming = await b.next_incoming(5)
        assert incoming.offer == OFFER
        assert incoming.caller is not None and str(incoming.caller.uri) == "sip:alice@example.com"
        assert incoming.caller.display_name == "Alice"
        assert str(incoming.request_uri) == uri_of(b)
        assert incoming.callee is not None and incoming.callee.tag is None
        incoming.ring()
        assert await expect(call, Provisional) == Provisional(100, "Trying")
        assert await expect(call, Provisional) == Provisional(180, "Ringing")
        incoming.answer(ANSWER)
        assert await expect(call, Answered) == Answered(ANSWER)
        await expect(incoming, Confirmed)
        # Via and Contact carry the same address.
        contact = incoming.request.contacts[0].uri
        via = incoming.request.top_via
        assert via is not None and via.sent_by == (contact.host, contact.port)  # type: ignore[union-attr]
        await call.bye()
        assert await expect(call, Bye) == Bye(by_remote=False, status=200)
        assert await expect(incoming, Bye) == Bye(by_remote=True)
        assert a.calls == () and b.calls == ()


async def test_bye_from_the_callee() -> None:
    async with ua_pair() as (a, b):
        call, incoming = await answered_call(a, b)
        await incoming.bye()
        assert (await expect(call, Bye)).by_remote
        events = [event async for event in incoming.events()]
        assert events == [Bye(by_remote=False, status=200)]


async def test_cancel_ends_with_487() -> None:
    async with ua_pair() as (a, b):
        call = await a.invite(uri_of(b), OFFER, identity())
        incoming = await b.next_incoming(5)
        incoming.ring()
        await expect(call, Provisional)
        call.cancel()
        assert (await expect(call, Failed)).status == 487
        assert await expect(incoming, Cancelled) == Cancelled()
        assert (await call.final_response()).status == 487


@pytest.mark.parametrize("status", [404, 480, 486, 488, 603])
async def test_reject_statuses(status: int) -> None:
    async with ua_pair() as (a, b):
        call = await a.invite(uri_of(b), OFFER, identity())
        incoming = await b.next_incoming(5)
        incoming.reject(status)
        failed = await expect(call, Failed)
        assert failed.status == status
        assert (await expect(incoming, Failed)).status == status


async def test_early_media_then_answer_with_another_sdp() -> None:
    async with ua_pair() as (a, b):
        call = await a.invite(uri_of(b), OFFER, identity())
        incoming = await b.next_incoming(5)
        incoming.progress(EARLY)
        assert (await expect(call, Provisional)).status == 100
        assert (await expect(call, Provisional)).status == 183
        assert await expect(call, EarlyMedia) == EarlyMedia(EARLY)
        incoming.answer(ANSWER)
        assert await expect(call, Answered) == Answered(ANSWER)
        await call.bye()


async def test_info_both_ways() -> None:
    async with ua_pair() as (a, b):
        call, incoming = await answered_call(a, b)
        response = await call.info("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n")
        assert response.status == 200
        got = await expect(incoming, InfoReceived)
        assert got == InfoReceived("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n")
        frag = b"a=ice-ufrag:abcd\r\na=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\n"
        assert (await incoming.info("application/trickle-ice-sdpfrag", frag)).status == 200
        assert await expect(call, InfoReceived) == InfoReceived("application/trickle-ice-sdpfrag", frag)
        await call.bye()


async def test_message_in_the_dialog_both_ways_and_its_refusals() -> None:
    """RFC 3428 §4: chat inside the call's dialog; text/plain only, within 8192 bytes of UTF-8."""
    async with ua_pair() as (a, b):
        call, incoming = await answered_call(a, b)
        assert (await call.message("Hello ☎")).status == 200
        assert await expect(incoming, MessageReceived) == MessageReceived("Hello ☎")
        assert (await incoming.message("Hi back")).status == 200
        assert await expect(call, MessageReceived) == MessageReceived("Hi back")
        assert call.dialog is not None
        for body, content_type, status in (
            (b"<b>hi</b>", "text/html", 415),
            (b"x" * 8193, "text/plain", 413),
            (b"\xff\xfe", "text/plain; charset=utf-8", 400),
        ):
            request = call.dialog.create_request("MESSAGE", body=body, content_type=content_type)
            response, _ = await call.send_in_dialog(request)
            assert response.status == status, (content_type, response.status)
        assert (await call.message("after")).status == 200
        assert await incoming.next_event(2) == MessageReceived("after")  # nothing refused was delivered


async def test_a_message_over_the_gate_is_refused_486_and_not_delivered() -> None:
    """The call's owner's rate limit (gateway/runtime/message_rate.py) asked per MESSAGE by its sender."""
    async with ua_pair() as (a, b):
        call, incoming = await answered_call(a, b)
        asked: list[str] = []

        def gate(sender: str) -> float | None:
            asked.append(sender)
            return None if len(asked) == 1 else 3.0

        incoming.message_gate = gate
        assert (await call.message("first")).status == 200
        assert await expect(incoming, MessageReceived) == MessageReceived("first")
        refused = await call.message("second")
        assert (refused.status, refused.headers.get("Retry-After")) == (486, "3"), refused
        assert ";" not in asked[0] and asked == [asked[0]] * 2
        incoming.message_gate = None
        assert (await call.message("third")).status == 200
        assert await incoming.next_event(2) == MessageReceived("third")  # the second reached nobody
        await call.bye()


async def test_reinvite_hold_and_resume_both_ways() -> None:
    async with ua_pair() as (a, b):
        call, incoming = await answered_call(a, b)
        hold = asyncio.create_task(call.hold())
        offer = await expect(incoming, ReinviteReceived)
        assert "a=sendonly" in offer.sdp and "o=alice 1 2 " in offer.sdp
        incoming.answer_reinvite(set_direction(ANSWER, "recvonly"))
        result = await hold
        assert result.ok and "a=recvonly" in result.sdp
        resume = asyncio.create_task(call.resume())
        assert "a=sendrecv" in (await expect(incoming, ReinviteReceived)).sdp
        incoming.answer_reinvite(ANSWER)
        assert (await resume).ok
        # The callee holds the caller; the caller refuses once, then accepts.
        refused = asyncio.create_task(incoming.hold())
        await expect(call, ReinviteReceived)
        call.reject_reinvite(488)
        assert (await refused).status == 488
        again = asyncio.create_task(incoming.hold())
        await expect(call, ReinviteReceived)
        call.answer_reinvite(set_direction(OFFER, "recvonly"))
        assert (await again).ok
        await incoming.bye()
        assert (await expect(call, Bye)).by_remote


async def test_options_lists_allow_accept_supported() -> None:
    async with ua_pair() as (a, b):
        response = await a.options(uri_of(b))
        assert response.status == 200
        assert "INFO" in response.headers.get_all("Allow")
        accept = response.headers.get_all("Accept")
        for kind in ("application/sdp", "application/dtmf-relay", "application/trickle-ice-sdpfrag"):
            assert kind in accept
        assert "Supported" in response.headers


async def test_untrusted_source_gets_403_but_dialog_requests_pass() -> None:
    async with running_ua() as a, running_ua(policy=TrustedSources([])) as b:
        call = await a.invite(uri_of(b), OFFER, identity())
        assert (await expect(call, Failed)).status == 403
        assert (await a.options(uri_of(b))).status == 403
        assert b.calls == ()


async def test_close_ends_open_calls_and_is_idempotent() -> None:
    async with running_ua() as b:
        a = UserAgent(b.settings, policy=AcceptAll())
        await a.start()
        answered, incoming = await answered_call(a, b)
        ringing = await a.invite(uri_of(b), OFFER, identity())
        pending = await b.next_incoming(5)
        pending.ring()
        await expect(ringing, Provisional)
        await a.close()
        await a.close()
        assert (await expect(incoming, Bye)).by_remote
        await expect(pending, Cancelled)
        assert (await expect(answered, Bye)) == Bye(by_remote=False, status=200)
        assert (await expect(ringing, Failed)).status == 487
        with pytest.raises(RuntimeError):
            await a.invite(uri_of(b), OFFER, identity())


@contextlib.asynccontextmanager
async def raw_peer() -> AsyncIterator[tuple[TestUA, TransactionLayer]]:
    """A bare transaction layer on loopback, to send what our own UA would not (and never ACK)."""
    tu = TestUA()
    layer = TransactionLayer(tu, policy=AcceptAll(), timers=FAST)
    tu.layer = layer
    await layer.listen("udp", "127.0.0.1", 0)
    try:
        yield tu, layer
    finally:
        await layer.close()


async def test_no_ack_means_bye_and_failed() -> None:
    async with raw_peer() as (tu, layer), running_ua() as b:
        host, port = layer.transports[0].local
        invite = make_request(
            "INVITE",
            uri_of(b),
            headers=(("Contact", f"<sip:raw@{host}:{port}>"), ("Content-Type", "application/sdp")),
            body=SDP,
        )
        handle = await layer.request(invite)
        incoming = await b.next_incoming(5)
        incoming.answer(ANSWER)
        assert (await handle.final_response()).status == 200  # and never ACKed
        failed = await expect(incoming, Failed, timeout=10)
        assert failed.status == 408
        await tu.wait_for(lambda: "BYE" in tu.methods())


async def test_a_200_to_an_offerless_reinvite_never_acked_means_bye() -> None:
    """RFC 3261 §14.2 / §13.3.1.4: the 200 carrying our offer is retransmitted until its ACK; none
    within 64*T1 ends the call with BYE."""
    async with raw_peer() as (tu, layer), running_ua() as b:
        host, port = layer.transports[0].local
        contact = ("Contact", f"<sip:raw@{host}:{port}>")
        invite = make_request(
            "INVITE", uri_of(b), cseq=1, headers=(contact, ("Content-Type", "application/sdp")), body=SDP
        )
        handle = await layer.request(invite)
        incoming = await b.next_incoming(5)
        incoming.answer(ANSWER)
        ok = await handle.final_response()
        assert ok.status == 200 and ok.to is not None
        call_id, from_tag = invite.call_id, invite.from_.tag if invite.from_ else None
        ack = make_request("ACK", uri_of(b), call_id=call_id, from_tag=from_tag, cseq=1, to=str(ok.to))
        await layer.send_stateless(ack)
        await expect(incoming, Confirmed)
        reinvite = make_request(
            "INVITE",
            uri_of(b),
            call_id=call_id,
            from_tag=from_tag,
            cseq=2,
            to=str(ok.to),
            headers=(contact,),
        )
        rehandle = await layer.request(reinvite)
        assert (await expect(incoming, ReinviteReceived)).sdp == ""
        incoming.answer_reinvite(OFFER)
        final = await rehandle.final_response()
        assert final.status == 200 and final.body.decode() == OFFER  # and never ACKed
        assert not (await expect(incoming, Bye, timeout=10)).by_remote
        await tu.wait_for(lambda: "BYE" in tu.methods())


async def test_a_2xx_retransmitted_after_our_bye_is_acked_again() -> None:
    """RFC 3261 §13.2.2.4: every 2xx retransmission gets the ACK, even once the call is over (issue 10)."""
    async with raw_peer() as (tu, layer), running_ua() as a:
        host, port = layer.transports[0].local
        call = await a.invite(f"sip:raw@{host}:{port}", OFFER, identity())
        await expect(call, Answered)
        await tu.wait_for(lambda: len(tu.acks) == 1)
        await call.bye()
        await expect(call, Bye)
        invite = next(r for r in tu.requests if r.method == "INVITE")
        assert invite.final is not None and invite.final.status == 200
        await layer.send_stateless(invite.final, invite.source)  # the 200 again, as if the ACK were lost
        await tu.wait_for(lambda: len(tu.acks) == 2)
        assert tu.acks[1].cseq == tu.acks[0].cseq and tu.acks[1].method == "ACK"


async def test_digest_on_invite_info_and_bye_keeps_cseq_in_step() -> None:
    uas = await ChallengingUAS("alice", "pw").start()
    try:
        async with running_ua(outbound=uas.hop) as a:
            call = await a.invite(uas.uri, OFFER, identity("alice", "pw"))
            assert (await expect(call, Answered)).sdp == ANSWER
            assert (await call.info("application/dtmf-relay", "Signal=1\r\n")).status == 200
            await call.bye()
            assert (await expect(call, Bye)).status == 200
        assert uas.seen == [
            ("INVITE", 1, False),
            ("INVITE", 2, True),
            ("INFO", 3, False),
            ("INFO", 4, True),
            ("BYE", 5, False),
            ("BYE", 6, True),
        ]
        assert set(uas.acks) == {2}  # as often as the 200 came (one retransmission under load)
    finally:
        await uas.close()


async def test_digest_reinvite_is_acked_with_its_cseq() -> None:
    uas = await ChallengingUAS("alice", "pw").start()
    try:
        async with running_ua(outbound=uas.hop) as a:
            call = await a.invite(uas.uri, OFFER, identity("alice", "pw"))
            await expect(call, Answered)
            assert (await call.hold()).ok
            await call.bye()
        assert [s[:2] for s in uas.seen][2:4] == [("INVITE", 3), ("INVITE", 4)]
        # each 2xx is ACKed with its INVITE's CSeq (a 200 retransmitted under load is ACKed again: RFC
        # 3261 §13.2.2.4), never the challenged one's
        assert sorted(set(uas.acks)) == [2, 4] and uas.acks.index(4) > uas.acks.index(2)
    finally:
        await uas.close()


async def test_wrong_password_fails_without_looping() -> None:
    uas = await ChallengingUAS("alice", "pw").start()
    try:
        async with running_ua(outbound=uas.hop) as a:
            call = await a.invite(uas.uri, OFFER, identity("alice", "wrong"))
            assert (await expect(call, Failed)).status == 403
            no_credentials = await a.invite(uas.uri, OFFER, identity("alice"))
            assert (await expect(no_credentials, Failed)).status == 401
        assert [s[0] for s in uas.seen] == ["INVITE"] * 3
    finally:
        await uas.close()


async def test_via_and_contact_carry_the_public_address() -> None:
    async with running_ua(public_address=("192.0.2.7", 5080)) as ua:
        assert (ua.endpoint.host, ua.endpoint.port) == ("192.0.2.7", 5080)
        assert ua.layer.public_address == ("192.0.2.7", 5080)
        via = ua.layer.via_for(ua.layer.transports[0])
        assert (via.host, via.port) == ("192.0.2.7", 5080)
        assert str(ua.endpoint.contact_uri()) == "sip:192.0.2.7:5080"


async def test_actions_refused_in_the_wrong_state_name_both() -> None:
    async with ua_pair() as (a, b):
        call, incoming = await answered_call(a, b)
        actions: tuple[Callable[[], object], ...] = (
            incoming.ring,
            lambda: incoming.answer(ANSWER),
            incoming.reject,
            call.cancel,
        )
        for action in actions:
            with pytest.raises(CallError, match="CONFIRMED"):
                action()
        with pytest.raises(CallError, match="no re-INVITE"):
            incoming.answer_reinvite(ANSWER)
        await call.bye()
        await expect(incoming, Bye)
        with pytest.raises(CallError, match="TERMINATED"):
            await call.info("application/dtmf-relay", "Signal=1")
        with pytest.raises(CallError, match="TERMINATED"):
            await incoming.bye()
        with pytest.raises(CallError, match="TERMINATED"):
            await call.hold()


def test_set_direction_rewrites_every_direction_and_bumps_the_version() -> None:
    held = set_direction(OFFER, "sendonly")
    assert "a=sendonly" in held and "a=sendrecv" not in held and "o=alice 1 2 IN" in held
    assert set_direction("v=0\r\no=- 5 7 IN IP4 h\r\n", "inactive").endswith("a=inactive\r\n")
    with pytest.raises(ValueError, match="'sideways'"):
        set_direction(OFFER, "sideways")


async def test_default_policy_trusts_the_pbx_hosts_only() -> None:
    async with running_ua(pbx_hosts=("127.0.0.2", "localhost"), policy=None) as ua:
        policy = ua.layer.policy
        assert isinstance(policy, TrustedSources)
        assert policy.trusts("127.0.0.2") and policy.trusts("127.0.0.1") and not policy.trusts("192.0.2.1")


async def test_an_rfc_2543_invite_is_processed_for_backward_compatibility() -> None:
    """RFC 4475 §3.4.1 (inv2543): no Via branch, no From tag, no Max-Forwards, no Content-Length (on
    UDP the datagram ends the body): a legal RFC 2543 INVITE becomes a call, answered and ACKed."""
    loop = asyncio.get_running_loop()
    received: list[bytes] = []

    class Phone(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            received.append(data)

    transport, _ = await loop.create_datagram_endpoint(Phone, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        async with running_ua() as ua:
            invite = (
                "INVITE sip:gw@127.0.0.1 SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port}\r\n"
                "From: <sip:UserA@example.com>\r\nTo: <sip:gw@example.com>\r\n"
                "Call-ID: 2543.inv@example.com\r\nCSeq: 1 INVITE\r\n"
                f"Contact: <sip:UserA@127.0.0.1:{port}>\r\nContent-Type: application/sdp\r\n\r\n" + OFFER
            ).encode()
            host, ua_port = address_of(ua).split(":")
            transport.sendto(invite, (host, int(ua_port)))
            call = await ua.next_incoming(5)
            assert call.dialog is not None and call.dialog.id.remote_tag == "" and "m=audio" in call.offer
            call.answer(ANSWER)
            for _ in range(50):
                if any(d.startswith(b"SIP/2.0 200") for d in received):
                    break
                await asyncio.sleep(0.02)
            ok = next(d for d in received if d.startswith(b"SIP/2.0 200"))
            assert b"To: <sip:gw@example.com>;tag=" in ok and b"Via: SIP/2.0/UDP 127.0.0.1:" in ok
    finally:
        transport.close()
