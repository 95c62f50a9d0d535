"""An offer in UPDATE in the early dialog of the web user's outbound call (gateway/calls/setup/early_update.py,
RFC 3311 §5.1): answered through the bridge in the UPDATE's 200; the INVITE's 2xx SDP then not applied."""

from __future__ import annotations

from gateway.calls import (
    CallState,
    MediaAnswerFromSip,
    MediaFailed,
    MediaSipAnswerReady,
    MediaSipUpdate,
    NotifyHeld,
    SipAccepted,
    SipReinviteReceived,
    SipRespondReinvite,
)
from gateway.calls.states import Side
from tests.calls import flows as f


def test_the_pbx_holds_early_media_and_the_answer_goes_in_the_update_200() -> None:
    call = f.early_out()
    assert call.handle(SipReinviteReceived(f.SIP_HOLD)) == [MediaSipUpdate("c1", f.SIP_HOLD)]
    assert call.handle(MediaSipAnswerReady(f.GW_SIP_ANSWER)) == [
        SipRespondReinvite("c1", 200, "OK", f.GW_SIP_ANSWER),
        NotifyHeld("s1", "c1", Side.REMOTE),  # the browser hears its early media is held
    ]
    assert call.state is CallState.EARLY and call.reinvite is None and call.local_sip_sdp == f.GW_SIP_ANSWER
    out = call.handle(SipAccepted(f.SIP_ANSWER))  # the 183's answer repeated: the UPDATE's session stays
    assert not any(isinstance(c, MediaAnswerFromSip) for c in out)
    assert call.state is CallState.HOLDING  # answered while the PBX holds


def test_an_unusable_offer_is_refused_and_the_early_media_goes_on() -> None:
    call = f.early_out()
    call.handle(SipReinviteReceived(f.SIP_HOLD))
    out = call.handle(MediaFailed("no common codec", 488))
    assert [c.status for c in out if isinstance(c, SipRespondReinvite)] == [488]
    assert call.state is CallState.EARLY and call.reinvite is None
    out = call.handle(SipAccepted(f.SIP_ANSWER))  # nothing changed: the 2xx's SDP is applied as before
    assert any(isinstance(c, MediaAnswerFromSip) for c in out)


def test_the_2xx_while_the_update_is_answered_leaves_it_to_the_connected_call() -> None:
    call = f.early_out()
    call.handle(SipReinviteReceived(f.SIP_HOLD))
    call.handle(SipAccepted(f.SIP_ANSWER))
    assert call.state is CallState.CONNECTED
    out = call.handle(MediaSipAnswerReady(f.GW_SIP_ANSWER))
    assert [c.status for c in out if isinstance(c, SipRespondReinvite)] == [200]
