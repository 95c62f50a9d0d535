"""SDES (RFC 4568) in the SDP layer: a=crypto lines read liberally, offers with them accepted or refused
as media.sip_srtp says, and answered with our own key under the tag and suite offered."""

from __future__ import annotations

from pathlib import Path

import pytest

import sdp

FIELD = Path(__file__).resolve().parent.parent / "data" / "sdp-field"
KEY = "NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj"  # 30 bytes, RFC 4568 §9.1's example


@pytest.mark.parametrize(
    ("line", "usable"),
    [
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}", True),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20", True),  # a lifetime
        (f"2 AES_CM_128_HMAC_SHA1_32 inline:{KEY} KDR=1", True),  # a session parameter
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:32", False),  # an MKI
        (f"1 AES_256_CM_HMAC_SHA1_80 inline:{KEY}", False),  # a suite we do not do
        ("1 AES_CM_128_HMAC_SHA1_80 inline:short", False),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:!!!notbase64!!!", False),
        ("garbage", False),
    ],
)
def test_crypto_lines_are_read_liberally(line: str, usable: bool) -> None:
    assert (sdp.Crypto.parse(line) is not None) is usable


def test_a_key_is_never_shown() -> None:
    crypto = sdp.Crypto.new()
    assert "inline" not in repr(crypto) and crypto.to_sdp().startswith("1 AES_CM_128_HMAC_SHA1_80 inline:")
    assert sdp.Crypto.parse(crypto.to_sdp()) == crypto


@pytest.mark.parametrize(
    ("name", "off", "optional", "required"),
    [
        ("polycom-sdes-offer", 302, None, None),  # RTP/SAVP + a=crypto
        ("snom-best-effort-srtp-offer", None, None, None),  # RTP/AVP + a=crypto (RFC 8643)
        ("asterisk-offer", None, None, 302),  # plain RTP only
        ("firefox-webrtc-offer", 302, None, None),  # DTLS-SRTP (RFC 5763): taken unless off
    ],
)
def test_sip_srtp_decides_which_offers_are_bridged(
    name: str, off: int | None, optional: int | None, required: int | None
) -> None:
    offer = sdp.parse((FIELD / f"{name}.sdp").read_text())
    for mode, warning in (("off", off), ("optional", optional), ("required", required)):
        if warning is None:
            assert sdp.check_audio_offer(offer, ["PCMU", "G722"], srtp=mode) == 0
        else:
            with pytest.raises(sdp.SdpUnacceptable) as refused:
                sdp.check_audio_offer(offer, ["PCMU", "G722"], srtp=mode)
            assert refused.value.warning == warning, (mode, refused.value)


@pytest.mark.parametrize("name", ["polycom-sdes-offer", "snom-best-effort-srtp-offer"])
def test_an_offer_with_a_crypto_is_answered_with_our_key_in_its_profile(name: str) -> None:
    offer = sdp.parse((FIELD / f"{name}.sdp").read_text())
    theirs = offer.media[0].cryptos[0]
    ours = sdp.Crypto.new(theirs.tag, theirs.suite)
    answer = sdp.answer(
        offer, codecs=["PCMU/8000"], transport=sdp.PlainTransport("198.51.100.1", 40000, crypto=ours)
    )
    section = answer.media[0]
    assert section.proto == offer.media[0].proto and section.cryptos == (ours,)
    assert ours.key != theirs.key


def test_without_our_key_an_sdes_offer_is_not_answered() -> None:
    offer = sdp.parse((FIELD / "polycom-sdes-offer.sdp").read_text())
    with pytest.raises(sdp.SdpUnacceptable):
        sdp.answer(offer, codecs=["PCMU/8000"], transport=sdp.PlainTransport("198.51.100.1", 40000))


def test_two_crypto_lines_with_one_tag_are_refused() -> None:
    """RFC 4568 §9.1: a tag is unique in its media section. Two lines of tag 1 were taken and keyed
    (issue 67 item 6); refused at parse (400), naming the tag."""
    text = (FIELD / "polycom-sdes-offer.sdp").read_text()
    line = next(x for x in text.splitlines() if x.startswith("a=crypto:"))
    tag = line.split(":", 1)[1].split()[0]
    with pytest.raises(sdp.SdpParseError, match=rf"a=crypto tag {tag} given twice .*RFC 4568 §9.1"):
        sdp.parse(text.replace(line, f"{line}\r\n{line}"))
    other = line.replace(f"a=crypto:{tag} ", f"a=crypto:{int(tag) + 7} ", 1)  # another tag: both kept
    before = len(sdp.parse(text).media[0].cryptos)
    assert len(sdp.parse(text.replace(line, f"{line}\r\n{other}")).media[0].cryptos) == before + 1
