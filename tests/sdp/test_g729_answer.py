"""G.729 in descriptions: static payload type 18 without an rtpmap, and answered ``annexb=no``
(RFC 4856 §2.1.9: Annex B is on when the parameter is absent; the gateway sends no SID frames)."""

from __future__ import annotations

import pytest

import sdp
from gateway.media.codecs import codec_choice

PLAIN = sdp.PlainTransport("192.0.2.20", 30000)


def _offer(formats: str, *lines: str) -> sdp.SessionDescription:
    text = "\r\n".join(
        [
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.9",
            "s=-",
            "c=IN IP4 192.0.2.9",
            "t=0 0",
            f"m=audio 4000 RTP/AVP {formats}",
            *lines,
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=ptime:20",
            "",
        ]
    )
    return sdp.parse(text)


@pytest.mark.parametrize(
    "fmtp",
    [(), ("a=fmtp:18 annexb=yes",), ("a=rtpmap:18 G729/8000", "a=fmtp:18 annexb=no")],
    ids=["absent", "yes", "no"],
)
def test_a_g729_only_offer_is_answered_without_annex_b(fmtp: tuple[str, ...]) -> None:
    answer = sdp.answer(_offer("18 101", *fmtp), codecs=["G729/8000"], transport=PLAIN)
    media = answer.media[0]
    assert media.m_line == "audio 30000 RTP/AVP 18 101"
    assert media.codecs[0] == sdp.Codec(18, "G729", 8000, 1, "annexb=no")
    assert "a=fmtp:18 annexb=no" in sdp.write(answer)
    assert media.codecs[1].is_telephone_event


def test_other_codecs_keep_their_fmtp_and_g729_is_refused_when_not_allowed() -> None:
    offer = _offer("18 0 101", "a=fmtp:18 annexb=yes")
    both = sdp.answer(offer, codecs=["PCMU", "G729"], transport=PLAIN, preference=sdp.Preference.ANSWERER)
    assert both.media[0].payload_types == (0, 18, 101)
    with pytest.raises(sdp.SdpUnacceptable):
        sdp.answer(_offer("18 101"), codecs=["PCMU", "opus"], transport=PLAIN)


def test_our_offer_with_g729_says_annexb_no() -> None:
    codecs = codec_choice.sip_offer_codecs(("opus", "G729"))
    offer = codec_choice.plain_offer(codecs, address="192.0.2.1", port=4000, telephone_event=True)
    text = sdp.write(offer)
    assert "m=audio 4000 RTP/AVP 111 18 101 102" in text
    assert "a=rtpmap:18 G729/8000" in text and "a=fmtp:18 annexb=no" in text
    offered = codec_choice.offered(_offer("18 101").media[0], ["PCMU", "G729"])
    assert [c.name for c in offered] == ["G729"]
