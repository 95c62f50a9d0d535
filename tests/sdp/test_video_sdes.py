"""sdp.video_sdes: which key of a video m-line to use under media.sip_srtp, and our a=crypto on ours."""

from __future__ import annotations

import pytest

import sdp
from sdp import video_sdes

KEY = sdp.Crypto.new(1)
OTHER = sdp.Crypto.new(2, "AES_CM_128_HMAC_SHA1_32")
UNUSABLE = "3 AES_256_CM_HMAC_SHA1_80 inline:" + "A" * 60  # a tag of its own (RFC 4568 §9.1)


def section(proto: str, *cryptos: str) -> sdp.MediaDescription:
    attributes = [sdp.Attribute("rtcp", "5003"), *(sdp.Attribute("crypto", c) for c in cryptos)]
    attributes.append(sdp.Attribute("rtpmap", "96 VP8/90000"))
    return sdp.MediaDescription("video", 5002, proto, ("96",), attributes=tuple(attributes))


@pytest.mark.parametrize(
    ("proto", "cryptos", "srtp", "usable", "theirs"),
    [
        ("RTP/AVP", (), "off", True, None),
        ("RTP/AVP", (KEY.to_sdp(),), "off", True, None),  # SRTP off: the key is ignored
        ("RTP/AVP", (KEY.to_sdp(),), "optional", True, KEY),  # best effort, as the audio takes it
        ("RTP/AVPF", (), "optional", True, None),
        ("RTP/AVP", (), "required", False, None),
        ("RTP/SAVP", (KEY.to_sdp(),), "off", False, None),
        ("RTP/SAVP", (UNUSABLE, KEY.to_sdp()), "optional", True, KEY),  # the first usable line
        ("RTP/SAVPF", (OTHER.to_sdp(),), "required", True, OTHER),
        ("RTP/SAVP", (UNUSABLE,), "optional", False, None),
        ("RTP/SAVP", (UNUSABLE,), "required", False, None),
        ("RTP/SAVP", (), "optional", False, None),
        ("UDP/TLS/RTP/SAVPF", (), "optional", False, None),
    ],
)
def test_offered_keys(
    proto: str, cryptos: tuple[str, ...], srtp: str, usable: bool, theirs: sdp.Crypto | None
) -> None:
    assert video_sdes.offered_keys(section(proto, *cryptos), srtp) == video_sdes.VideoKeys(usable, theirs)


def test_answered_keys_take_our_tag_and_suite_only() -> None:
    ours = sdp.Crypto.new(1)
    reply = sdp.Crypto.new(1)
    answer = section("RTP/SAVP", OTHER.to_sdp(), reply.to_sdp())
    assert video_sdes.answered_keys(answer, ours, "required") == video_sdes.VideoKeys(True, reply)
    # no key of our tag: plain RTP where allowed, else the video is refused
    assert video_sdes.answered_keys(section("RTP/AVP"), ours, "optional") == video_sdes.VideoKeys(True)
    assert video_sdes.answered_keys(section("RTP/AVP"), ours, "required") == video_sdes.VideoKeys(False)
    assert video_sdes.answered_keys(section("RTP/SAVP", OTHER.to_sdp()), ours, "optional").usable is False
    # a plain offer answered in SRTP's profile is not usable; in RTP/AVP it is plain
    assert video_sdes.answered_keys(section("RTP/SAVP"), None, "off").usable is False
    assert video_sdes.answered_keys(section("RTP/AVPF"), None, "off") == video_sdes.VideoKeys(True)


def test_with_crypto_puts_our_key_after_rtcp_and_sets_the_profile() -> None:
    plain = section("RTP/AVPF", OTHER.to_sdp())
    secure = video_sdes.with_crypto(plain, KEY, secure=True)
    assert secure.proto == "RTP/SAVPF" and secure.cryptos == (KEY,)
    assert [a.name for a in secure.attributes] == ["rtcp", "crypto", "rtpmap"]
    best_effort = video_sdes.with_crypto(section("RTP/AVP"), KEY, secure=False)
    assert best_effort.proto == "RTP/AVP" and best_effort.cryptos == (KEY,)
    assert "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" in sdp.write(
        sdp.SessionDescription(sdp.Origin("-", "1", 1, "127.0.0.1"), media=(best_effort,))
    )


def test_bad_values_are_named() -> None:
    with pytest.raises(ValueError, match="'sometimes'"):
        video_sdes.offered_keys(section("RTP/AVP"), "sometimes")
    with pytest.raises(ValueError, match="unusable"):
        video_sdes.VideoKeys(False, KEY)
