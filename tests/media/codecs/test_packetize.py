"""Re-packetization for SIP peers that want other packet times (gateway/media/codecs/packetize.py)."""

from __future__ import annotations

import pytest

import sdp
from gateway.media.codecs.codec_choice import KNOWN
from gateway.media.codecs.packetize import Packetizer, packet_ms
from gateway.media.forward import MediaPath


def section(*attributes: str) -> sdp.MediaDescription:
    text = (
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    )
    return sdp.parse(text + "".join(f"a={a}\r\n" for a in attributes)).media[0]


@pytest.mark.parametrize(
    ("attributes", "ms"),
    [
        ((), 20),
        (("ptime:30",), 30),
        (("ptime:40",), 40),
        (("ptime:10",), 10),
        (("ptime:20", "maxptime:10"), 10),
        (("maxptime:15",), 10),  # no 20 ms packet fits in 15: 10
        (("ptime:60", "maxptime:40"), 40),
        (("ptime:240",), 60),  # kept to what a jitter buffer takes
        (("ptime:5",), 10),
        (("ptime:abc",), 20),  # unreadable: the default, never a failed call
        (("ptime:30", "maxptime:junk"), 30),
    ],
)
def test_the_packet_time_follows_ptime_capped_by_maxptime(attributes: tuple[str, ...], ms: int) -> None:
    assert packet_ms(section(*attributes)) == ms


def test_20_ms_packets_become_30_ms_ones_with_true_timestamps() -> None:
    packetizer = Packetizer(30)
    out = []
    for n in range(6):  # 120 ms of 20 ms packets
        out += packetizer.push(bytes([n]) * 160, 1000 + 160 * n, marker=n == 0)
    assert [(len(p), ts, m) for p, ts, m in out] == [(240, 1000, True), (240, 1240, False),
                                                     (240, 1480, False), (240, 1720, False)]  # fmt: skip
    assert out[0][0] == bytes([0]) * 160 + bytes([1]) * 80  # cut and joined, not decoded


def test_20_ms_packets_split_into_10_ms_ones() -> None:
    out = Packetizer(10).push(bytes(range(160)), 0xFFFF_FF60)  # the timestamp wraps
    assert [(len(p), ts) for p, ts, _ in out] == [(80, 0xFFFF_FF60), (80, 0xFFFF_FFB0)]


def test_a_gap_sends_what_is_buffered_and_starts_again() -> None:
    packetizer = Packetizer(40)
    assert packetizer.push(b"a" * 160, 0) == []
    out = packetizer.push(b"b" * 160, 800)  # 80 ms later: loss, or a new source
    assert [(p, ts) for p, ts, _ in out] == [(b"a" * 160, 0)]
    assert packetizer.push(b"c" * 160, 960) == [(b"b" * 160 + b"c" * 160, 800, False)]


def test_a_path_to_a_30_ms_peer_repacketizes_and_leaves_the_fast_lane_out() -> None:
    path = MediaPath("web->sip")
    pcmu = KNOWN["pcmu"]
    path.configure({0: pcmu}, pcmu, None, 30)
    assert not path.passthrough and path.codec_pairs() == frozenset()
    assert path.forward_audio(1, 1, 0, 0, 0.0) == -1  # never the allocation-free pass-through
    sizes = []
    for n in range(3):
        out, _ = path.feed(1, 1 + n, 160 * n, 0, False, b"\xff" * 160, 0.02 * n)
        sizes += [len(p.payload) for p in out]
    assert sizes == [240, 240]
    assert path.lane() is None
    path.configure({0: pcmu}, pcmu, None, 20)  # a re-INVITE back to 20 ms: plain pass-through again
    assert path.passthrough and path.forward_audio(1, 4, 480, 0, 0.06) >= 0


def test_opus_is_never_cut() -> None:
    path = MediaPath("web->sip")
    opus = KNOWN["opus"]
    path.configure({111: opus}, opus, None, 40)
    assert path.passthrough
