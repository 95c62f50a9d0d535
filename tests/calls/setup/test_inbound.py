"""Inbound call flows: SIP -> web user."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from gateway.calls import (
    CallDirection,
    CallMachine,
    CallState,
    CancelTimer,
    CloseBridge,
    CreateBridge,
    EndReason,
    GatewayStopping,
    IllegalEvent,
    MediaAnswerFromSip,
    MediaAnswerFromWeb,
    MediaConnected,
    MediaFailed,
    MediaOfferToWeb,
    MediaSipAnswerReady,
    MediaSipReoffer,
    MediaWebOfferReady,
    NotifyConnected,
    NotifyEnded,
    NotifyHeld,
    NotifyIncoming,
    RejectKind,
    SendWebOffer,
    Side,
    SipAckReceived,
    SipBye,
    SipByeReceived,
    SipCancelled,
    SipFailed,
    SipReinviteReceived,
    SipRespond,
    SipRespondReinvite,
    StartTimer,
    StopRinging,
    TimerFired,
    TimerName,
    WebAccept,
    WebDisconnected,
    WebHangup,
    WebHold,
    WebReject,
    WebSdpAnswer,
    WrongSession,
)
from gateway.identity import NoSuchUser, NotOnline
from tests.calls import flows as f


def responses(commands: Sequence[object]) -> list[int]:
    return [c.status for c in commands if isinstance(c, SipRespond)]


def stopped(commands: Sequence[object]) -> dict[str, EndReason]:
    return {c.session_id: c.code for c in commands if isinstance(c, StopRinging)}


def test_no_such_user_is_404() -> None:
    call = f.machine()
    out = call.handle(f.invite(NoSuchUser("sip:9999@gw")))
    assert out == [SipRespond("c1", 404, "Not Found")]
    assert call.state is CallState.CLOSED


def test_not_online_is_480() -> None:
    call = f.machine()
    out = call.handle(f.invite(NotOnline("sip:1001@gw", (f.ALICE,))))
    assert out == [SipRespond("c1", 480, "Temporarily Unavailable")]
    assert call.state is CallState.CLOSED


def late_offer_connected() -> CallMachine:
    """An INVITE without SDP, answered by s1: our offer went in the 200."""
    call = f.machine()
    out = call.handle(f.invite(sdp=None))
    assert responses(out) == [180] and f.kinds(out).count(NotifyIncoming) == 2  # rings like any call
    accepted = f.run(call, WebAccept("s1"))
    assert MediaOfferToWeb("c1", None) in accepted and CreateBridge("c1", CallDirection.INBOUND) in accepted
    out = f.run(
        call,
        MediaWebOfferReady(f.WEB_OFFER),
        WebSdpAnswer("s1", f.WEB_ANSWER),
        MediaSipAnswerReady(f.GW_SIP_OFFER),  # from the bridge: our offer, not an answer
        MediaConnected(),
    )
    assert [c for c in out if isinstance(c, SipRespond)] == [SipRespond("c1", 200, "OK", f.GW_SIP_OFFER)]
    assert call.state is CallState.CONNECTED and call.offer_in_200
    return call


def test_a_late_offer_rings_offers_in_the_200_and_takes_the_answer_from_the_ack() -> None:
    call = late_offer_connected()
    assert call.handle(SipAckReceived(f.SIP_ANSWER)) == [MediaAnswerFromSip("c1", f.SIP_ANSWER)]
    assert call.state is CallState.CONNECTED and not call.offer_in_200 and call.reinvite is None
    assert call.handle(WebHold("s1")) == [MediaSipReoffer("c1", True)]  # re-INVITEs work afterwards


def test_a_late_offer_answered_sendonly_in_the_ack_is_held_by_the_caller() -> None:
    call = late_offer_connected()
    out = call.handle(SipAckReceived(f.SIP_HOLD))
    assert out == [MediaAnswerFromSip("c1", f.SIP_HOLD), NotifyHeld("s1", "c1", Side.REMOTE)]
    assert call.state is CallState.HOLDING


@pytest.mark.parametrize("ack_sdp", [None, "garbage"])
def test_a_late_offer_whose_ack_has_no_valid_answer_ends_with_bye(ack_sdp: str | None) -> None:
    call = late_offer_connected()
    out = call.handle(SipAckReceived(ack_sdp))
    assert f.kinds(out)[:2] == [SipBye, CloseBridge]
    [ended] = [c for c in out if isinstance(c, NotifyEnded)]
    assert ended.reason is EndReason.INCOMPATIBLE_MEDIA and "ACK" in ended.message
    assert call.state is CallState.CLOSING


def test_a_reinvite_before_the_ack_of_a_late_offer_gets_491() -> None:
    call = late_offer_connected()
    assert call.handle(SipReinviteReceived(f.SIP_HOLD)) == [SipRespondReinvite("c1", 491, "Request Pending")]


def test_unparsable_offer_is_refused_before_ringing() -> None:
    call = f.machine()
    out = call.handle(f.invite(sdp="this is not sdp"))
    assert f.kinds(out) == [SipRespond]
    assert responses(out)[0] in (400, 488)


@pytest.mark.parametrize(
    ("offer", "detail"),
    [
        ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 99999 RTP/AVP 0\r\n", "port"),
        ("v=0\r\nx" + "\x07" * 500, ""),
    ],
)
def test_refused_offer_says_why_in_the_reason_phrase(offer: str | None, detail: str) -> None:
    """A bad SDP gets 488 (or 400) with a reason: the PBX's logs show what was wrong."""
    out = f.machine().handle(f.invite(sdp=offer))
    (reply,) = [c for c in out if isinstance(c, SipRespond)]
    assert reply.status in (400, 488) and detail in reply.phrase and "(" in reply.phrase
    assert reply.phrase.isprintable() and len(reply.phrase) < 160


@pytest.mark.parametrize(
    ("media", "warning", "words"),
    [
        ("m=image 40000 udptl t38\r\n", 304, "no audio stream"),  # T.38 fax only
        ("m=audio 40000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n", 302, "SDES-SRTP"),
        ("m=audio 40000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n", 305, "G729/8000"),
        ("m=audio 40000 RTP/AVP 0\r\nc=IN IP6 2001:db8::9\r\n", 301, "IP6"),  # to an IPv4 gateway
    ],
)
def test_an_offer_that_cannot_be_bridged_is_488_before_anyone_rings(
    media: str, warning: int, words: str
) -> None:
    call = f.machine()
    offer = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n" + media
    out = call.handle(f.invite(f.found(("alice", "s1")), sdp=offer))
    assert f.kinds(out) == [SipRespond]  # no NotifyIncoming: nobody rings
    (reply,) = out
    assert isinstance(reply, SipRespond) and reply.status == 488 and words in reply.phrase
    assert reply.warning is not None and reply.warning[0] == warning and words in reply.warning[1]
    assert call.state is CallState.CLOSED


def test_rings_every_session_and_sends_180() -> None:
    call = f.machine()
    out = call.handle(f.invite(f.found(("alice", "s1"), ("alice", "s2"), ("bob", "s3"))))
    assert out == [
        NotifyIncoming("s1", "c1", "sip:0301234567@pbx.example.org", "Carol"),
        NotifyIncoming("s2", "c1", "sip:0301234567@pbx.example.org", "Carol"),
        NotifyIncoming("s3", "c1", "sip:0301234567@pbx.example.org", "Carol"),
        SipRespond("c1", 180, "Ringing"),
        StartTimer("c1", TimerName.RING, 60.0),
    ]
    assert call.state is CallState.INVITED
    assert call.sessions == {"s1", "s2", "s3"}


def test_first_answer_wins_then_media_then_200() -> None:
    call = f.invited()
    out = call.handle(WebAccept("s2"))
    assert out == [
        CancelTimer("c1", TimerName.RING),
        StopRinging("s1", "c1", "answered elsewhere", EndReason.ANSWERED_ELSEWHERE),
        CreateBridge("c1", CallDirection.INBOUND),
        MediaOfferToWeb("c1", f.SIP_OFFER),
        StartTimer("c1", TimerName.ANSWER, 20.0),
    ]
    assert call.state is CallState.EARLY
    assert call.sessions == {"s2"}
    with pytest.raises(IllegalEvent, match="WebAccept"):
        call.handle(WebAccept("s1"))  # too late: the call is no longer ringing
    assert call.handle(MediaWebOfferReady(f.WEB_OFFER)) == [SendWebOffer("s2", "c1", f.WEB_OFFER)]
    assert call.handle(WebSdpAnswer("s2", f.WEB_ANSWER)) == [MediaAnswerFromWeb("c1", f.WEB_ANSWER)]
    assert call.handle(MediaSipAnswerReady(f.GW_SIP_ANSWER)) == []  # WebRTC not up yet: no 200
    out = call.handle(MediaConnected())
    assert out == [
        CancelTimer("c1", TimerName.ANSWER),
        SipRespond("c1", 200, "OK", f.GW_SIP_ANSWER),
        NotifyConnected("s2", "c1"),
    ]
    assert call.state is CallState.CONNECTED


def test_webrtc_up_before_the_sip_answer_is_ready() -> None:
    call = f.early_in_offered()
    f.run(call, WebSdpAnswer("s1", f.WEB_ANSWER))
    assert call.handle(MediaConnected()) == []
    out = call.handle(MediaSipAnswerReady(f.GW_SIP_ANSWER))
    assert responses(out) == [200]
    assert call.state is CallState.CONNECTED


def test_second_accept_is_refused() -> None:
    call = f.early_in()
    with pytest.raises(IllegalEvent) as info:
        call.handle(WebAccept("s2"))
    assert "WebAccept" in str(info.value) and "early" in str(info.value)


def test_caller_cancels_while_ringing() -> None:
    call = f.invited()
    out = call.handle(SipCancelled())
    assert stopped(out) == {"s1": EndReason.CALLER_CANCELLED, "s2": EndReason.CALLER_CANCELLED}
    assert responses(out) == []  # the SIP UA already answered 487
    assert call.state is CallState.CLOSED


def test_the_gateway_stopping_while_web_users_ring() -> None:
    """They stop ringing with `shutdown`; the caller gets 480; the same while the browser answers."""
    call = f.invited()
    out = call.handle(GatewayStopping())
    assert stopped(out) == {"s1": EndReason.SHUTDOWN, "s2": EndReason.SHUTDOWN}
    assert responses(out) == [480] and call.state is CallState.CLOSED
    call = f.early_in_offered()
    out = call.handle(GatewayStopping())
    [notice] = [c for c in out if isinstance(c, NotifyEnded)]
    assert notice.reason is EndReason.SHUTDOWN and responses(out) == [480]


def test_caller_cancels_while_the_browser_answers() -> None:
    call = f.early_in_offered()
    out = call.handle(SipCancelled())
    assert CloseBridge("c1") in out
    [notice] = [c for c in out if isinstance(c, NotifyEnded)]
    assert notice.reason is EndReason.CALLER_CANCELLED and notice.session_id == "s1"
    assert call.state is CallState.CLOSED


def test_a_cancel_saying_answered_elsewhere_ends_the_ringing_so() -> None:
    call = f.invited()
    out = call.handle(SipCancelled(answered_elsewhere=True, cause=200))
    assert stopped(out) == {"s1": EndReason.ANSWERED_ELSEWHERE, "s2": EndReason.ANSWERED_ELSEWHERE}
    assert call.end_reason is not None and call.end_reason.code is EndReason.ANSWERED_ELSEWHERE
    assert call.state is CallState.CLOSED


def test_a_cancel_saying_answered_elsewhere_while_the_browser_answers() -> None:
    call = f.early_in_offered()
    out = call.handle(SipCancelled(answered_elsewhere=True))
    [notice] = [c for c in out if isinstance(c, NotifyEnded)]
    assert notice.reason is EndReason.ANSWERED_ELSEWHERE


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        (RejectKind.UNAVAILABLE, 480, EndReason.UNAVAILABLE),
        (RejectKind.DECLINE, 603, EndReason.DECLINED),
    ],
)
def test_reject_busy_unavailable_or_decline(kind: RejectKind, status: int, code: EndReason) -> None:
    call = f.invited()
    out = call.handle(WebReject("s1", kind))
    assert responses(out) == [status]
    assert stopped(out) == {"s1": code, "s2": EndReason.REJECTED_ELSEWHERE}
    assert call.state is CallState.CLOSED


def test_a_busy_session_leaves_the_users_other_sessions_ringing() -> None:
    """Issue 16: a tab in a call says busy; the user's idle tab rings on (RFC 3261 §16.7: a 4xx does not
    end the other branches); the last busy one refuses the call with 486."""
    call = f.invited()
    out = call.handle(WebReject("s1", RejectKind.BUSY))
    assert responses(out) == [] and stopped(out) == {"s1": EndReason.BUSY}
    assert call.state is CallState.INVITED and call.sessions == {"s2"}
    out = call.handle(WebReject("s2", RejectKind.BUSY))
    assert responses(out) == [486] and stopped(out) == {"s2": EndReason.BUSY}
    assert call.state is CallState.CLOSED


def test_hangup_while_ringing_declines() -> None:
    call = f.invited()
    assert responses(call.handle(WebHangup("s2"))) == [603]


def test_one_user_rejecting_leaves_another_ringing() -> None:
    call = f.machine()
    f.run(call, f.invite(f.found(("alice", "s1"), ("bob", "s3"))))
    out = call.handle(WebReject("s1", RejectKind.BUSY))
    assert responses(out) == [] and stopped(out) == {"s1": EndReason.BUSY}
    assert call.state is CallState.INVITED and call.sessions == {"s3"}
    out = call.handle(WebReject("s3", RejectKind.DECLINE))
    assert responses(out) == [603]
    assert call.state is CallState.CLOSED


def test_ring_timeout_is_480() -> None:
    call = f.invited()
    out = call.handle(TimerFired(TimerName.RING))
    assert responses(out) == [480]
    assert set(stopped(out).values()) == {EndReason.NO_ANSWER}
    assert call.state is CallState.CLOSED


def test_answer_timeout_is_480() -> None:
    call = f.early_in_offered()
    out = call.handle(TimerFired(TimerName.ANSWER))
    assert responses(out) == [480]
    assert call.state is CallState.CLOSED


def test_last_ringing_session_disconnecting_is_480() -> None:
    call = f.invited()
    assert call.handle(WebDisconnected("s1")) == []
    assert call.sessions == {"s2"}
    out = call.handle(WebDisconnected("s2"))
    assert out == [SipRespond("c1", 480, "Temporarily Unavailable"), CancelTimer("c1", TimerName.RING)]
    assert call.state is CallState.CLOSED


def test_caller_bye_on_the_early_dialog() -> None:
    call = f.invited()
    out = call.handle(SipByeReceived())
    assert responses(out) == [487]
    assert len(stopped(out)) == 2


def test_bridge_cannot_translate_the_offer() -> None:
    call = f.early_in()
    out = call.handle(MediaFailed("no common codec", 488))
    assert responses(out) == [488]
    assert [c.phrase for c in out if isinstance(c, SipRespond)] == ["Not Acceptable Here (no common codec)"]
    [notice] = [c for c in out if isinstance(c, NotifyEnded)]
    assert notice.reason is EndReason.INCOMPATIBLE_MEDIA


def test_unknown_session_is_refused() -> None:
    call = f.invited()
    with pytest.raises(WrongSession):
        call.handle(WebAccept("s9"))
    assert call.state is CallState.INVITED and call.sessions == {"s1", "s2"}


def test_found_without_sessions_is_480() -> None:
    from gateway.identity import Found

    call = f.machine()
    out = call.handle(f.invite(Found("sip:1001@gw", (f.ALICE,), {})))
    assert out == [SipRespond("c1", 480, "Temporarily Unavailable")]


def test_a_pass_through_call_is_answered_once_the_browser_answered() -> None:
    """Pass-through media (the caller's WebRTC offer goes to the browser as it is): no web leg of the
    gateway's comes up, so the 200 goes out with the browser's answer, without MediaConnected."""
    call = f.machine()
    f.run(call, dataclasses.replace(f.invite(), passthrough=True), WebAccept("s1"))
    assert call.passthrough
    f.run(call, MediaWebOfferReady(f.SIP_OFFER), WebSdpAnswer("s1", f.WEB_ANSWER))
    out = call.handle(MediaSipAnswerReady(f.WEB_ANSWER))
    assert [(c.status, c.sdp) for c in out if isinstance(c, SipRespond)] == [(200, f.WEB_ANSWER)]
    assert NotifyConnected("s1", "c1") in out
    assert call.state is CallState.CONNECTED and call.media_up
    assert call.handle(MediaConnected()) == []  # should the media say so after all: nothing more


def test_a_bridged_call_waits_for_webrtc_before_the_200() -> None:
    call = f.early_in_offered()
    f.run(call, WebSdpAnswer("s1", f.WEB_ANSWER))
    assert not any(isinstance(c, SipRespond) for c in call.handle(MediaSipAnswerReady(f.GW_SIP_ANSWER)))
    assert call.state is CallState.EARLY
    assert NotifyConnected("s1", "c1") in call.handle(MediaConnected())


def test_a_sip_failure_after_our_200_loses_an_inbound_calls_leg() -> None:
    """The UA gives up on our 2xx (never ACKed, RFC 3261 §13.3.1.4) and reports it as a failure: an
    inbound call reads it as its SIP leg lost; an outbound call's INVITE cannot fail once answered."""
    call = f.connected_in()
    out = call.handle(SipFailed(408, "No ACK"))
    assert f.kinds(out) == [CloseBridge, NotifyEnded]
    assert [c.reason for c in out if isinstance(c, NotifyEnded)] == [EndReason.CONNECTION_LOST]
    assert call.state is CallState.CLOSED
    with pytest.raises(IllegalEvent, match="not on an outbound call"):
        f.connected_out().handle(SipFailed(408, "No ACK"))
    with pytest.raises(IllegalEvent):
        f.invited().handle(SipFailed(408, "No ACK"))
