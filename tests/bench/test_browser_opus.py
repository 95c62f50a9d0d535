"""The bench's browsers' Opus (bench/native_peers.py, BENCH_BROWSER_OPUS): as Chromium encodes it, and
narrower when a box's answer carries maxplaybackrate (what tests/media/test_bridge_chromium.py sees)."""

from __future__ import annotations

import sys

from peers.audio import encode_tone
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "bench"))

from native_peers import max_playback_rate

ANSWER = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nc=IN IP4 127.0.0.1\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 96 0\r\na=rtpmap:96 opus/48000/2\r\n"
)


def configurations(frames: list[bytes]) -> set[int]:
    return {frame[0] >> 3 for frame in frames}  # RFC 6716 §3.1


def test_the_answers_maxplaybackrate_is_read_for_the_opus_payload_type() -> None:
    assert max_playback_rate(ANSWER + "a=fmtp:96 minptime=10;maxplaybackrate=8000\r\n", 96) == 8000
    assert max_playback_rate(ANSWER + "a=fmtp:96 minptime=10;useinbandfec=1\r\n", 96) is None
    assert max_playback_rate(ANSWER + "a=fmtp:97 maxplaybackrate=8000\r\n", 96) is None


def test_chromium_like_opus_is_fullband_hybrid_and_celt_then_narrowband_when_told() -> None:
    assert configurations(encode_tone(1000, "opus")) == {31}  # FFmpeg's default: CELT fullband
    assert configurations(encode_tone(1000, "opus", voip=True)) <= {12, 13, 14, 15, 28, 29, 30, 31}
    narrow = configurations(encode_tone(1000, "opus", max_playback_rate=8000, voip=True))
    assert narrow and narrow <= {0, 1, 2, 3, 16, 17, 18, 19}, narrow
