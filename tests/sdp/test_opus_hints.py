"""Opus's receiver hints (sdp.with_opus_playback_rate, RFC 7587 §6.1) on real browsers' m-lines."""

from __future__ import annotations

import pytest

import sdp

CHROME_AUDIO = """v=0\r
o=- 1 2 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 0 8 126\r
c=IN IP4 0.0.0.0\r
a=rtpmap:111 opus/48000/2\r
a=rtcp-fb:111 transport-cc\r
a=fmtp:111 minptime=10;useinbandfec=1\r
a=rtpmap:63 red/48000/2\r
a=fmtp:63 111/111\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:126 telephone-event/8000\r
"""


def audio(text: str) -> sdp.MediaDescription:
    return sdp.parse(text).media[0]


def test_the_hints_join_opus_fmtp_and_nothing_else_changes() -> None:
    before = audio(CHROME_AUDIO)
    after = sdp.with_opus_playback_rate(before, 8000)
    opus = next(c for c in after.codecs if c.name == "opus")
    assert opus.fmtp == (
        "minptime=10;useinbandfec=1;maxplaybackrate=8000;sprop-maxcapturerate=8000;maxaveragebitrate=32000"
    )
    assert opus.rtcp_fb == ("transport-cc",)
    assert [c for c in after.codecs if c.name != "opus"] == [c for c in before.codecs if c.name != "opus"]
    assert after.formats == before.formats
    assert [a.name for a in after.attributes] == [a.name for a in before.attributes]
    text = sdp.write(sdp.parse(CHROME_AUDIO).with_media([after]))
    assert (
        "a=fmtp:111 minptime=10;useinbandfec=1;maxplaybackrate=8000;sprop-maxcapturerate=8000;"
        "maxaveragebitrate=32000\r\n"
    ) in text


def test_earlier_hints_are_replaced_and_a_missing_fmtp_is_added_after_the_rtpmap() -> None:
    hinted = CHROME_AUDIO.replace("useinbandfec=1", "maxplaybackrate=48000;useinbandfec=1")
    opus = next(c for c in sdp.with_opus_playback_rate(audio(hinted), 16000).codecs if c.name == "opus")
    assert opus.parameters == {
        "minptime": "10", "useinbandfec": "1", "maxplaybackrate": "16000", "sprop-maxcapturerate": "16000",
        "maxaveragebitrate": "32000",
    }  # fmt: skip
    bare = sdp.with_opus_playback_rate(
        audio(CHROME_AUDIO.replace("a=fmtp:111 minptime=10;useinbandfec=1\r\n", "")), 8000
    )
    names = [(a.name, (a.value or "").split(" ")[0]) for a in bare.attributes]
    assert names[names.index(("rtpmap", "111")) + 1] == ("fmtp", "111")
    assert (
        next(c for c in bare.codecs if c.name == "opus").fmtp
        == "maxplaybackrate=8000;sprop-maxcapturerate=8000;maxaveragebitrate=32000"
    )


def test_without_opus_the_m_line_is_the_same_and_rates_are_checked() -> None:
    pcmu_only = audio(CHROME_AUDIO.replace(" 111 63 0 8 126", " 0 8 126"))
    assert sdp.with_opus_playback_rate(pcmu_only, 8000) is pcmu_only
    with pytest.raises(ValueError, match="8000-48000"):
        sdp.with_opus_playback_rate(audio(CHROME_AUDIO), 4000)


def test_audio_rate_is_g722s_16_khz_and_the_clock_rate_otherwise() -> None:
    assert sdp.audio_rate(sdp.Codec(9, "G722", 8000)) == 16000
    assert sdp.audio_rate(sdp.Codec(0, "PCMU", 8000)) == 8000
    assert sdp.audio_rate(sdp.Codec(111, "opus", 48000, 2)) == 48000


def test_hint_names_in_any_case_are_replaced_and_odd_tokens_do_not_break_it() -> None:
    shouting = audio(
        CHROME_AUDIO.replace("useinbandfec=1", "MaxPlaybackRate=48000;useinbandfec=1;MAXAVERAGEBITRATE=9000")
        + "a=mid:\u00b2\r\n"
    )
    opus = next(c for c in sdp.with_opus_playback_rate(shouting, 8000).codecs if c.name == "opus")
    assert opus.fmtp == (
        "minptime=10;useinbandfec=1;maxplaybackrate=8000;sprop-maxcapturerate=8000;maxaveragebitrate=32000"
    )


def test_a_wideband_hint_asks_no_bit_rate() -> None:
    """Above 16 kHz the browser's own bit rate for that band stands (libwebrtc: 32 kbit/s from 24 kHz)."""
    opus = next(c for c in sdp.with_opus_playback_rate(audio(CHROME_AUDIO), 24000).codecs if c.name == "opus")
    assert opus.parameters == {
        "minptime": "10", "useinbandfec": "1", "maxplaybackrate": "24000", "sprop-maxcapturerate": "24000",
    }  # fmt: skip
    capped = audio(CHROME_AUDIO.replace("useinbandfec=1", "useinbandfec=1;maxaveragebitrate=20000"))
    kept = next(c for c in sdp.with_opus_playback_rate(capped, 24000).codecs if c.name == "opus")
    assert kept.parameters["maxaveragebitrate"] == "20000"  # one already there stays


def test_every_opus_payload_type_gets_the_hints() -> None:
    two = audio(
        CHROME_AUDIO.replace(" 111 63 0 8 126", " 111 112 0")
        + "a=rtpmap:112 OPUS/48000/2\r\na=fmtp:112 stereo=1\r\n"
    )
    hinted = sdp.with_opus_playback_rate(two, 16000)
    assert {
        c.payload_type: c.parameters.get("maxplaybackrate") for c in hinted.codecs if c.name.lower() == "opus"
    } == {111: "16000", 112: "16000"}


def test_red_goes_just_before_the_opus_it_carries_with_chromes_fmtp() -> None:
    """libwebrtc sends RED only when red precedes its send codec on the m-line it was given."""
    aiortc_order = audio(
        CHROME_AUDIO.replace(" 111 63 0 8 126", " 0 111 8 63 126").replace("a=fmtp:63 111/111\r\n", "")
    )
    moved = sdp.with_opus_red(aiortc_order)
    assert moved.formats == ("0", "63", "111", "8", "126")
    red = next(c for c in moved.codecs if c.name == "red")
    assert red.fmtp == "111/111"
    assert sdp.red_for_opus(moved) == 63
    assert sdp.with_opus_red(moved).formats == moved.formats  # already in place: the same order


def test_without_red_or_opus_the_formats_stay() -> None:
    no_red = audio(CHROME_AUDIO.replace(" 111 63 0 8 126", " 111 0 8 126"))
    assert sdp.with_opus_red(no_red) is no_red
    pcmu_only = audio(CHROME_AUDIO.replace(" 111 63 0 8 126", " 63 0 8 126"))
    assert sdp.with_opus_red(pcmu_only) is pcmu_only
