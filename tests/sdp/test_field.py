"""What the gateway does with offers as other systems send them (tests/data/sdp-field, see its README):
refused before ringing with the right Warning code, or answered on the right audio m-line with the
right codec, telephone-event and packet time, as many m-lines as offered, and no comfort noise."""

from __future__ import annotations

from pathlib import Path

import pytest

import sdp
from gateway.media.codecs import codec_choice as choice
from gateway.media.codecs.packetize import packet_ms

FIELD = Path(__file__).resolve().parent.parent / "data" / "sdp-field"
SIP_CODECS = ("PCMU", "PCMA", "G722", "opus")  # the gateway's default SIP codecs

# name -> (audio m-line answered, codec sent, telephone-event rate, packet time) or the 488's warn-code
ACCEPTED = {
    "rfc4317-audio-video-offer": (0, "PCMU/8000", None, 20),
    "rfc4317-two-audio-streams-offer": (1, "PCMU/8000", 8000, 20),
    "asterisk-offer": (0, "PCMU/8000", 8000, 20),
    "freeswitch-offer": (0, "opus/48000", 8000, 20),
    "cucm-opus-offer": (0, "opus/48000", 8000, 20),
    "polycom-g722-offer": (0, "G722/8000", 8000, 20),
    "snom-best-effort-srtp-offer": (0, "PCMU/8000", 8000, 20),
    "snom-opus-offer": (0, "opus/48000", 8000, 20),
    "yealink-30ms-offer": (0, "PCMA/8000", 8000, 30),
    "grandstream-offer": (0, "PCMU/8000", 8000, 20),
    "xlite-offer": (0, "G722/8000", 8000, 20),
    "ims-sbc-pcma-offer": (0, "PCMA/8000", 8000, 20),
    "rfc2543-hold-offer": (0, "PCMU/8000", 8000, 20),
}
REFUSED = {
    "polycom-sdes-offer": 302,
    "firefox-webrtc-offer": 302,
    # WebRTC offers (DTLS-SRTP) of other systems: for the web leg (tests/e2e/dialects/test_field_webrtc_offers.py)
    "firefox35-webrtc-offer": 302,
    "freeswitch-webrtc-offer": 302,
    "kurento-webrtc-offer": 302,
    "asterisk13-webrtc-offer": 302,
    "bria4-offer": 302,
    "ims-amrwb-offer": 305,
    "t38-reinvite-offer": 304,
    "ipv6-phone-offer": 301,  # to an IPv4-only gateway; a dual-stack one takes it (below)
}


def load(name: str) -> sdp.SessionDescription:
    return sdp.parse((FIELD / f"{name}.sdp").read_text())


def test_every_field_sample_has_an_expected_outcome() -> None:
    assert {p.stem for p in FIELD.glob("*.sdp")} == set(ACCEPTED) | set(REFUSED)


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_offers_the_gateway_can_bridge_are_answered_as_expected(name: str) -> None:
    index, codec, event_rate, ms = ACCEPTED[name]
    offer = load(name)
    assert sdp.check_audio_offer(offer, SIP_CODECS, ("IP4",)) == index
    section = offer.media[index]
    chosen = choice.offered(section, SIP_CODECS)[0]  # the gateway's choice without a browser preference
    answer = sdp.answer(
        offer,
        codecs=[f"{chosen.name}/{chosen.clock_rate}"],
        transport=sdp.PlainTransport("198.51.100.1", 40000),
        preference=sdp.Preference.ANSWERER,
        telephone_event=True,
    )
    assert len(answer.media) == len(offer.media)  # never fewer m-lines than offered (RFC 3264 §6)
    assert [i for i, m in enumerate(answer.media) if not m.rejected] == [index]
    answered = answer.media[index]
    audio = [c for c in answered.codecs if not c.is_telephone_event]
    assert [f"{c.name}/{c.clock_rate}".lower() for c in audio] == [codec.lower()]  # names as offered
    events = [c.clock_rate for c in answered.codecs if c.is_telephone_event]
    assert events == ([event_rate] if event_rate else [])  # DTMF kept whenever it was offered
    assert not any(c.name.upper() == "CN" for c in answered.codecs)  # comfort noise not negotiated
    assert packet_ms(section) == ms
    if "crypto" in (FIELD / f"{name}.sdp").read_text():
        assert answered.proto == "RTP/AVP" and answered.get("crypto") is None  # best-effort SRTP declined


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_offers_the_gateway_cannot_bridge_are_refused_with_the_reason(name: str) -> None:
    with pytest.raises(sdp.SdpUnacceptable) as refused:
        sdp.check_audio_offer(load(name), SIP_CODECS, ("IP4",))
    assert refused.value.sip_status == 488 and refused.value.warning == REFUSED[name], refused.value


def test_a_dual_stack_gateway_takes_the_ipv6_phone() -> None:
    assert sdp.check_audio_offer(load("ipv6-phone-offer"), SIP_CODECS, ("IP4", "IP6")) == 0


def test_the_rfc_2543_hold_is_answered_recvonly() -> None:
    offer = load("rfc2543-hold-offer")
    answer = sdp.answer(offer, codecs=["PCMU/8000"], transport=sdp.PlainTransport("198.51.100.1", 40000))
    assert answer.direction_for(0) is sdp.Direction.RECVONLY
