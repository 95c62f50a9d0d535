"""useinbandfec=1 (and usedtx=1 when configured) on Opus (sdp.with_opus_fec, RFC 7587 §6.1): on aiortc's
fmtp-less Opus, on a browser's m-line, and nothing else changes."""

from __future__ import annotations

import sdp
from tests.sdp.test_opus_hints import CHROME_AUDIO, audio

AIORTC_AUDIO = """v=0\r
o=- 1 2 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
m=audio 9 UDP/TLS/RTP/SAVPF 111 0 126\r
c=IN IP4 0.0.0.0\r
a=rtpmap:111 opus/48000/2\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:126 telephone-event/8000\r
a=fmtp:126 0-16\r
"""


def test_a_missing_opus_fmtp_is_added_after_its_rtpmap() -> None:
    after = sdp.with_opus_fec(audio(AIORTC_AUDIO))
    text = sdp.write(sdp.parse(AIORTC_AUDIO).with_media([after]))
    assert "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\na=rtpmap:0 PCMU/8000\r\n" in text
    assert "a=fmtp:126 0-16\r\n" in text
    assert sdp.parse(text).media[0].codecs[0].parameters == {"useinbandfec": "1"}


def test_existing_parameters_are_kept_and_usedtx_follows_the_setting() -> None:
    before = audio(CHROME_AUDIO.replace("useinbandfec=1", "usedtx=1;useinbandfec=0;stereo=1"))
    opus = next(c for c in sdp.with_opus_fec(before).codecs if c.name == "opus")
    assert opus.fmtp == "minptime=10;stereo=1;useinbandfec=1"
    opus = next(c for c in sdp.with_opus_fec(before, dtx=True).codecs if c.name == "opus")
    assert opus.fmtp == "minptime=10;stereo=1;useinbandfec=1;usedtx=1"
    after = sdp.with_opus_fec(before)
    assert [c for c in after.codecs if c.name != "opus"] == [c for c in before.codecs if c.name != "opus"]
    assert [a.name for a in after.attributes] == [a.name for a in before.attributes]


def test_without_opus_nothing_changes() -> None:
    pcmu = audio(AIORTC_AUDIO.replace(" 111 0 126", " 0 126").replace("a=rtpmap:111 opus/48000/2\r\n", ""))
    assert sdp.with_opus_fec(pcmu) is pcmu
