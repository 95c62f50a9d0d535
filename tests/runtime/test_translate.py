"""The driver's pure translations: UA call events and bridge events to call events, and browser
commands to signaling events (the WebRTC answer goes out with `early_media` or `connected`)."""

from __future__ import annotations

from gateway.calls.boundary import commands as cmd
from gateway.calls.boundary import events as ev
from gateway.calls.reasons import EndReason
from gateway.calls.states import CallDirection, Side
from gateway.media import events as media
from gateway.runtime.translate import SignalMapper, hold_direction, media_to_call_event, sip_to_call_events
from gateway.signaling import events as sig
from gateway.sip.useragent import ua_events as sip
from sipcore.syntax.reason import parse_reasons

OUT, IN = CallDirection.OUTBOUND, CallDirection.INBOUND


def test_sip_events_of_an_outgoing_call() -> None:
    assert sip_to_call_events(sip.Provisional(100, "Trying"), OUT) == [ev.SipProvisional(100)]
    assert sip_to_call_events(sip.EarlyMedia("v=0"), OUT) == [ev.SipProvisional(183, "v=0")]
    assert sip_to_call_events(sip.Answered("v=0"), OUT) == [ev.SipAccepted("v=0")]
    assert sip_to_call_events(sip.Answered(""), OUT) == [ev.SipAccepted(None)]
    assert sip_to_call_events(sip.Failed(486, "Busy Here"), OUT) == [ev.SipFailed(486, "Busy Here")]
    assert sip_to_call_events(sip.Bye(by_remote=True), OUT) == [ev.SipByeReceived()]
    assert sip_to_call_events(sip.Bye(by_remote=False), OUT) == [ev.SipLegClosed()]


def test_sip_events_of_an_incoming_call() -> None:
    assert sip_to_call_events(sip.Provisional(100, "Trying"), IN) == []
    assert sip_to_call_events(sip.Cancelled(), IN) == [ev.SipCancelled()]
    elsewhere = sip.Cancelled(
        parse_reasons(['Q.850;cause=31, SIP;cause=200;text="Call completed elsewhere"'])
    )
    assert sip_to_call_events(elsewhere, IN) == [ev.SipCancelled(answered_elsewhere=True, cause=200)]
    q850 = sip.Cancelled(parse_reasons(["Q.850;cause=16"]))
    assert sip_to_call_events(q850, IN) == [ev.SipCancelled(answered_elsewhere=False, cause=16)]
    assert sip_to_call_events(sip.Confirmed(), IN) == [ev.SipAckReceived(None)]
    assert sip_to_call_events(sip.Confirmed("v=0"), IN) == [ev.SipAckReceived("v=0")]
    assert sip_to_call_events(sip.ReinviteAcked(""), IN) == [ev.SipAckReceived(None)]
    assert sip_to_call_events(sip.ReinviteAcked("v=0"), OUT) == [ev.SipAckReceived("v=0")]
    assert sip_to_call_events(sip.ReinviteReceived(""), IN) == [ev.SipReinviteReceived(None)]
    assert sip_to_call_events(sip.Failed(408, "No ACK"), IN) == [
        ev.SipFailed(408, "No ACK")
    ]  # the call reads it
    assert sip_to_call_events(sip.Failed(0, "transport"), OUT) == [ev.SipLegClosed()]
    assert sip_to_call_events(sip.ReinviteReceived("v=0"), IN) == [ev.SipReinviteReceived("v=0")]


def test_info_dtmf_becomes_remote_dtmf_and_other_info_goes_to_the_browser() -> None:
    info = sip.InfoReceived("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n")
    assert sip_to_call_events(info, IN) == [ev.RemoteDtmf("5", 160)]
    # the UA let only sip.info_content_types through; the body is relayed (RFC 6086)
    relayed = sip_to_call_events(sip.InfoReceived("Text/Plain; charset=UTF-8", b"hello"), IN)
    assert relayed == [ev.SipInfoReceived("text/plain", "hello")]
    assert sip_to_call_events(sip.InfoReceived("application/dtmf-relay", b"nonsense"), IN) == []


def test_media_events() -> None:
    assert media_to_call_event(media.MediaConnected()) == ev.MediaConnected()
    assert media_to_call_event(media.IceFailed("timeout")) == ev.MediaFailed("ICE failed: timeout")
    assert media_to_call_event(media.DtlsFailed("")) == ev.MediaFailed("DTLS failed")
    assert media_to_call_event(media.DtmfReceived(media.Leg.SIP, "7", 120)) == ev.RemoteDtmf("7", 120)
    assert media_to_call_event(media.DtmfReceived(media.Leg.WEB, "7", 120)) == ev.MediaWebDtmf("7", 120)
    assert media_to_call_event(media.DtmfReceived(media.Leg.WEB, "!", 0)) == ev.MediaWebDtmf("!", 1)
    assert media_to_call_event(media.MediaInactive(media.Leg.SIP, 10.0)) == ev.MediaInactive(10.0)
    assert media_to_call_event(media.CodecChosen("PCMU/8000", "PCMU/8000", False)) is None


def test_connected_waits_for_the_answer_that_a_2xx_carried() -> None:
    mapper = SignalMapper(OUT)
    assert mapper.events(cmd.NotifyConnected("s", "c")) == []
    assert mapper.events(cmd.SendWebAnswer("s", "c", "answer")) == [sig.Connected("c", "answer")]


def test_early_media_carries_the_answer_and_connected_then_has_none() -> None:
    mapper = SignalMapper(OUT)
    assert mapper.events(cmd.NotifyRinging("s", "c")) == [sig.Ringing("c")]
    assert mapper.events(cmd.SendWebAnswer("s", "c", "answer")) == []
    assert mapper.events(cmd.NotifyEarlyMedia("s", "c")) == [sig.EarlyMedia("c", "answer")]
    assert mapper.events(cmd.NotifyConnected("s", "c")) == [sig.Connected("c", None)]


def test_inbound_and_ending_commands() -> None:
    mapper = SignalMapper(IN)
    assert mapper.events(cmd.NotifyIncoming("s", "c", "sip:2000@x", "Desk")) == [
        sig.Incoming("c", "sip:2000@x", "Desk", None)
    ]
    assert mapper.events(cmd.SendWebOffer("s", "c", "offer")) == [sig.Offer("c", "offer")]
    assert mapper.events(cmd.NotifyConnected("s", "c")) == [sig.Connected("c", None)]
    assert mapper.events(cmd.NotifyHeld("s", "c", Side.REMOTE)) == [sig.Held("c", "remote")]
    assert mapper.events(cmd.NotifyResumed("s", "c", Side.LOCAL)) == [sig.Resumed("c", "local")]
    assert mapper.events(cmd.NotifyDtmf("s", "c", "1", 100)) == [sig.DtmfReceived("c", "1", 100)]
    ended = cmd.NotifyEnded("s", "c", EndReason.BUSY, "Busy", 486)
    assert mapper.events(ended) == [sig.Ended("c", "busy", "Busy", 486)]
    stop = cmd.StopRinging("s2", "c", "Answered elsewhere", EndReason.ANSWERED_ELSEWHERE)
    assert mapper.events(stop) == [sig.Ended("c", "answered_elsewhere", "Answered elsewhere", None)]
    error = cmd.NotifyError("s", "c", "hold_failed", "no", None)
    assert mapper.events(error) == [sig.ErrorMessage("hold_failed", "no", None, None, "c")]


def test_how_the_sip_party_holds() -> None:
    head = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    audio = "m=audio 4000 RTP/AVP 0\r\n"
    assert hold_direction(head + audio + "a=sendonly\r\n") == "sendonly"
    assert hold_direction(head + audio + "a=inactive\r\n") == "inactive"
    held = head.replace("10.0.0.1\r\nt", "0.0.0.0\r\nt") + audio  # RFC 2543 hold: c=0.0.0.0
    assert hold_direction(held) == "sendonly" and hold_direction(held + "a=recvonly\r\n") == "inactive"
    assert hold_direction("not sdp") == "sendonly"
