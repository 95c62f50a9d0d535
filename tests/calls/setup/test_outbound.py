"""Outbound call flows: browser -> PBX."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from gateway.calls import (
    CallDirection,
    CallSettings,
    CallState,
    CancelTimer,
    CloseBridge,
    CreateBridge,
    EndReason,
    MediaAnswerFromSip,
    MediaConnected,
    MediaFailed,
    MediaInactive,
    MediaOfferToSip,
    MediaSipOfferReady,
    MediaWebAnswerReady,
    NotifyConnected,
    NotifyEarlyMedia,
    NotifyEnded,
    NotifyError,
    NotifyRinging,
    SendWebAnswer,
    SipAccepted,
    SipBye,
    SipCancel,
    SipFailed,
    SipInvite,
    SipLegClosed,
    SipProvisional,
    StartTimer,
    TimerFired,
    TimerName,
    WebHangup,
)
from gateway.calls.setup.outbound import BadDestination, dial_target
from gateway.config.secret import Secret, SecretSource
from gateway.identity import PbxCredentials, SipAddress, WebUser
from tests.calls import flows as f


def ended(commands: Sequence[object]) -> NotifyEnded:
    [notice] = [c for c in commands if isinstance(c, NotifyEnded)]
    return notice


def test_success_ringing_then_answer_then_hangup() -> None:
    call = f.machine()
    out = call.handle(f.dial("1002"))
    assert out == [
        CreateBridge("c1", CallDirection.OUTBOUND),
        MediaOfferToSip("c1", f.WEB_OFFER),
        StartTimer("c1", TimerName.SETUP, 10.0),
    ]
    assert call.state is CallState.INVITING
    [invite] = call.handle(MediaSipOfferReady(f.GW_SIP_OFFER))
    assert isinstance(invite, SipInvite)
    assert invite.target == f"sip:1002@{f.DOMAIN}"
    assert invite.identity.aor == f.ALICE.aor and invite.identity.display_name == "Alice"
    assert invite.sdp == f.GW_SIP_OFFER
    assert call.handle(SipProvisional(100)) == [
        CancelTimer("c1", TimerName.SETUP),
        StartTimer("c1", TimerName.RING, 180.0),
    ]
    # only a 180 rings (issue 33): a 181-183 without SDP, or the bare 183 the UA reports ahead of its
    # early media, is no ringing the PBX sent
    assert [call.handle(SipProvisional(status)) for status in (181, 182, 183)] == [[], [], []]
    assert call.handle(SipProvisional(180)) == [NotifyRinging("s1", "c1")]
    assert call.handle(SipProvisional(180)) == []  # the browser hears "ringing" once
    out = call.handle(SipAccepted(f.SIP_ANSWER))
    assert out == [
        CancelTimer("c1", TimerName.RING),
        MediaAnswerFromSip("c1", f.SIP_ANSWER),
        NotifyConnected("s1", "c1"),
    ]
    assert call.state is CallState.CONNECTED
    assert call.handle(MediaWebAnswerReady(f.WEB_ANSWER)) == [SendWebAnswer("s1", "c1", f.WEB_ANSWER)]
    out = call.handle(WebHangup("s1"))
    assert f.kinds(out) == [SipBye, CloseBridge, NotifyEnded, StartTimer]
    assert ended(out).reason is EndReason.HANGUP
    assert call.state is CallState.CLOSING
    assert call.handle(SipLegClosed()) == [CancelTimer("c1", TimerName.CLOSING)]
    assert call.state is CallState.CLOSED


def test_credentials_travel_with_the_invite() -> None:
    user = WebUser(
        "carol",
        "Carol",
        SipAddress.parse(f"sip:1003@{f.DOMAIN}"),
        credentials=PbxCredentials("1003", Secret(SecretSource.INLINE, "", "s3cret")),
        allow_outbound=f.ALICE.allow_outbound,
    )
    call = f.machine()
    f.run(call, f.dial("1002", user=user))
    [invite] = call.handle(MediaSipOfferReady(f.GW_SIP_OFFER))
    assert isinstance(invite, SipInvite)
    assert invite.identity.credentials == user.credentials


@pytest.mark.parametrize(
    ("destination", "code"),
    [
        ("2000", EndReason.DESTINATION_NOT_ALLOWED),
        ("sip:1003@evil.example", EndReason.DESTINATION_NOT_ALLOWED),
        ("sip:other@test.example", EndReason.DESTINATION_NOT_ALLOWED),
        ("", EndReason.BAD_DESTINATION),
        ("call mom", EndReason.BAD_DESTINATION),
        ("sip:@pbx", EndReason.BAD_DESTINATION),
        ("sip:pbx.example.org", EndReason.BAD_DESTINATION),
    ],
)
def test_refused_destinations_never_reach_sip(destination: str, code: EndReason) -> None:
    call = f.machine()
    out = call.handle(f.dial(destination))
    assert f.kinds(out) == [NotifyError, NotifyEnded]
    error = out[0]
    assert isinstance(error, NotifyError)
    assert (error.code, error.field, error.session_id) == (code.value, "destination", "s1")
    assert ended(out).reason is code
    assert call.state is CallState.CLOSED


@pytest.mark.parametrize(
    "destination", ["1002", "sip:1003@pbx.example.org", "1003@pbx.example.org", "sip:echo@test.example"]
)
def test_allowed_destinations(destination: str) -> None:
    call = f.machine()
    f.run(call, f.dial(destination))
    assert call.state is CallState.INVITING


def test_numbers_need_a_pbx_domain() -> None:
    call = f.machine(CallSettings())
    out = call.handle(f.dial("1002"))
    assert ended(out).reason is EndReason.BAD_DESTINATION
    assert "no PBX" in ended(out).message


def test_dial_target() -> None:
    assert dial_target(" 030 123-45 67 ", "pbx") == ("sip:0301234567@pbx", "0301234567")
    assert dial_target("*97#", "pbx") == ("sip:*97%23@pbx", "*97#")
    assert dial_target("+4930123", "pbx") == ("sip:+4930123@pbx", "+4930123")
    assert dial_target("bob@example.com", None) == ("sip:bob@example.com", "sip:bob@example.com")
    with pytest.raises(BadDestination):
        dial_target("12a", "pbx")


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (404, EndReason.NO_SUCH_NUMBER),
        (486, EndReason.BUSY),
        (487, EndReason.CANCELLED),
        (408, EndReason.PBX_UNREACHABLE),
        (480, EndReason.UNAVAILABLE),
        (603, EndReason.DECLINED),
        (488, EndReason.INCOMPATIBLE_MEDIA),
        (500, EndReason.SERVER_ERROR),
        (503, EndReason.SERVER_ERROR),
        (600, EndReason.BUSY),
        (302, EndReason.REDIRECTED),
        (415, EndReason.REJECTED),
    ],
)
def test_failures_reach_the_user_as_reasons(status: int, code: EndReason) -> None:
    call = f.inviting_ringing()
    out = call.handle(SipFailed(status, "Whatever"))
    notice = ended(out)
    assert (notice.reason, notice.sip_status) == (code, status)
    assert CloseBridge("c1") in out
    assert call.state is CallState.CLOSED
    assert call.timers == set()


def test_busy() -> None:
    call = f.inviting_ringing()
    notice = ended(call.handle(SipFailed(486, "Busy Here")))
    assert (notice.reason, notice.message, notice.sip_status) == (EndReason.BUSY, "Busy", 486)


def test_pbx_unreachable_after_setup_timeout() -> None:
    call = f.inviting()
    out = call.handle(TimerFired(TimerName.SETUP))
    notice = ended(out)
    assert (notice.reason, notice.sip_status) == (EndReason.PBX_UNREACHABLE, 408)
    assert SipCancel("c1") in out
    assert call.state is CallState.CLOSING
    assert call.handle(SipFailed(408)) == [CancelTimer("c1", TimerName.CLOSING)]
    assert call.state is CallState.CLOSED


def test_setup_timeout_before_the_invite_is_a_media_failure() -> None:
    call = f.inviting_prep()
    out = call.handle(TimerFired(TimerName.SETUP))
    assert ended(out).reason is EndReason.MEDIA_FAILED
    assert SipCancel("c1") not in out
    assert call.state is CallState.CLOSED


def test_no_answer_after_ring_timeout() -> None:
    call = f.inviting_ringing(CallSettings(pbx_domain=f.DOMAIN, outbound_ring_timeout=30))
    out = call.handle(TimerFired(TimerName.RING))
    assert ended(out).reason is EndReason.NO_ANSWER and SipCancel("c1") in out


def test_cancel_by_user_while_ringing() -> None:
    call = f.inviting_ringing()
    out = call.handle(WebHangup("s1"))
    assert f.kinds(out) == [CloseBridge, NotifyEnded, SipCancel, CancelTimer, StartTimer]
    assert ended(out).reason is EndReason.CANCELLED
    assert call.state is CallState.CLOSING
    # the INVITE's 487 ends it, without telling the browser twice
    assert call.handle(SipFailed(487, "Request Terminated")) == [CancelTimer("c1", TimerName.CLOSING)]
    assert call.state is CallState.CLOSED


def test_cancel_crossed_by_200_is_byed() -> None:
    call = f.closing_cancel()
    assert call.handle(SipAccepted(f.SIP_ANSWER)) == [SipBye("c1")]
    assert call.state is CallState.CLOSING
    call.handle(SipLegClosed())
    assert call.state is CallState.CLOSED


def test_cancel_before_the_invite_went_out_needs_no_sip() -> None:
    call = f.inviting_prep()
    out = call.handle(WebHangup("s1"))
    assert SipCancel("c1") not in out
    assert call.state is CallState.CLOSED


def test_early_media_then_200() -> None:
    call = f.inviting()
    out = call.handle(SipProvisional(183, f.SIP_ANSWER))
    assert out[-1] == MediaAnswerFromSip("c1", f.SIP_ANSWER)
    assert call.state is CallState.EARLY
    out = call.handle(MediaWebAnswerReady(f.WEB_ANSWER))
    assert out == [SendWebAnswer("s1", "c1", f.WEB_ANSWER), NotifyEarlyMedia("s1", "c1")]
    assert call.handle(SipProvisional(183, f.SIP_ANSWER)) == []  # one answer per offer
    out = call.handle(SipAccepted(None))  # the early answer stands
    assert out == [CancelTimer("c1", TimerName.RING), NotifyConnected("s1", "c1")]
    assert call.state is CallState.CONNECTED
    assert call.handle(MediaWebAnswerReady(f.WEB_ANSWER)) == []


def test_early_media_then_200_with_sdp_updates_the_bridge_only() -> None:
    call = f.early_out()
    f.run(call, MediaWebAnswerReady(f.WEB_ANSWER))
    out = call.handle(SipAccepted(f.SIP_ANSWER))
    assert MediaAnswerFromSip("c1", f.SIP_ANSWER) in out
    assert call.handle(MediaWebAnswerReady("v=0 other")) == []  # the browser keeps its answer


def test_early_media_then_failure() -> None:
    call = f.early_out()
    out = call.handle(SipFailed(486))
    assert ended(out).reason is EndReason.BUSY


def test_200_without_any_answer_is_hung_up() -> None:
    call = f.inviting_ringing()
    out = call.handle(SipAccepted(None))
    assert SipBye("c1") in out
    assert ended(out).reason is EndReason.INCOMPATIBLE_MEDIA
    assert call.state is CallState.CLOSING


def test_untranslatable_browser_offer() -> None:
    call = f.inviting_prep()
    notice = ended(call.handle(MediaFailed("no common codec", 488)))
    assert (notice.reason, notice.sip_status) == (EndReason.INCOMPATIBLE_MEDIA, 488)
    assert call.state is CallState.CLOSED


def test_duration_uses_the_injected_clock() -> None:
    call = f.inviting_ringing()
    clock = call.clock
    assert isinstance(clock, f.Clock)
    f.run(call, SipAccepted(f.SIP_ANSWER))
    clock.now += 42
    f.run(call, WebHangup("s1"), SipLegClosed())
    clock.now += 100
    assert call.duration == 42


@pytest.mark.parametrize(
    "destination",
    ["sip:2000@pbx;maddr=evil.example", "2000@pbx?Route=%3Csip:evil%3E", "sip:9@evil.example@pbx"],
)
def test_dial_target_refuses_uris_the_policy_cannot_see_through(destination: str) -> None:
    with pytest.raises(BadDestination, match="not a SIP address"):
        dial_target(destination, "pbx")


def test_a_web_leg_answered_early_comes_up_before_the_sip_answer_and_changes_nothing() -> None:
    """The HTTP offer API answers the browser before the INVITE goes out (early_answer): its web leg
    comes up, or idles, while the INVITE is out; the call connects on the 2xx as ever."""
    for call in (f.inviting(), f.inviting_ringing()):
        assert call.handle(MediaConnected()) == []
        assert call.handle(MediaInactive(10.0)) == []
        assert call.state is CallState.INVITING
        out = call.handle(SipAccepted(f.SIP_ANSWER))
        assert f.kinds(out) == [CancelTimer, MediaAnswerFromSip, NotifyConnected]
        assert call.state is CallState.CONNECTED
    call = f.early_out()
    assert call.handle(MediaConnected()) == [] and call.handle(MediaInactive(10.0)) == []
    assert call.state is CallState.EARLY
