"""One video direction: payload types mapped, repair dropped, numbers rewritten, keyframes (issue 19).

The payloads are real: aiortc's VP8 (libvpx) and H.264 (libx264 through PyAV) encoders and packetizers.
"""

from __future__ import annotations

import fractions

import av
import pytest
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder

from gateway.media.fastlane.native import VideoSnapshot
from gateway.media.rtp.rtp_stats import ReceptionState
from gateway.media.video.forward import VideoPath, is_keyframe


def frames(encoder: Vp8Encoder | H264Encoder, count: int) -> list[list[bytes]]:
    """``count`` encoded frames of a changing picture, each a list of RTP payloads; the first is a keyframe."""
    result = []
    for i in range(count):
        frame = av.VideoFrame(width=320, height=240, format="yuv420p")
        for j, plane in enumerate(frame.planes):
            plane.update(bytes([(i * 40 + j * 7) % 255]) * plane.buffer_size)
        frame.pts, frame.time_base = i * 3000, fractions.Fraction(1, 90000)
        payloads, _ = encoder.encode(frame, force_keyframe=i == 0)
        result.append(payloads)
    return result


@pytest.mark.parametrize(("name", "encoder"), [("vp8", Vp8Encoder), ("h264", H264Encoder)])
def test_keyframes_of_real_encoders(name: str, encoder: type[Vp8Encoder | H264Encoder]) -> None:
    encoded = frames(encoder(), 4)
    assert is_keyframe(name, encoded[0][0])
    assert not any(is_keyframe(name, p) for frame in encoded[1:] for p in frame)
    assert not any(is_keyframe(name, p) for p in encoded[0][1:])  # only the frame's first packet counts
    assert not is_keyframe(name, b"") and not is_keyframe("av1", encoded[0][0])


def test_vp9_descriptor_and_h264_stap_a_and_fu_a() -> None:
    assert is_keyframe("VP9", bytes([0x08])) and not is_keyframe("vp9", bytes([0x48]))
    assert is_keyframe("h264", bytes([0x7C, 0x85]))  # FU-A start of an IDR slice
    assert not is_keyframe("h264", bytes([0x7C, 0x05]))  # FU-A continuation
    assert is_keyframe("h264", bytes([0x78, 0x00, 0x02, 0x67, 0x42]))  # STAP-A with an SPS
    assert not is_keyframe("h264", bytes([0x78, 0x00, 0x02, 0x41, 0x9A]))


def test_forwards_with_new_numbers_and_drops_repair() -> None:
    encoded = frames(Vp8Encoder(), 3)
    path = VideoPath("web->sip", start_sequence=500)
    path.configure({96: 100}, {96: "VP8"}, repair=frozenset({97}))
    assert path.take_keyframe_request() and not path.take_keyframe_request()
    out = []
    seq, ts = 65534, 2**32 - 3000  # both wrap
    for number, payloads in enumerate(encoded):
        for payload in payloads:
            got = path.feed(
                0xAAAA, seq & 0xFFFF, (ts + number * 3000) % 2**32, 96, True, payload, number / 30
            )
            assert got is not None
            out.append(got)
            seq += 1
        assert path.feed(0xBBBB, 7, 0, 97, False, b"rtx", 0.0) is None  # RTX of the browser
    assert [o.sequence for o in out] == list(range(500, 500 + len(out)))
    assert [o.payload_type for o in out] == [100] * len(out)
    assert [(o.timestamp - out[0].timestamp) % 2**32 for o in out] == [0, 3000, 6000][: len(out)]
    assert [o.payload for o in out] == [p for f in encoded for p in f]
    stats = path.stats()
    assert (stats.forwarded, stats.repair_dropped, stats.keyframes, stats.lost) == (len(out), 3, 1, 0)


def test_gaps_kept_new_source_continues_and_asks_for_a_keyframe() -> None:
    path = VideoPath("sip->web", start_sequence=10)
    path.configure({100: 96}, {100: "VP8"})
    path.take_keyframe_request()
    a = path.feed(1, 1000, 90000, 100, False, b"x", 0.0)
    assert path.take_keyframe_request()  # the first source: the receiver starts with a keyframe
    b = path.feed(1, 1003, 93000, 100, False, b"x", 0.033)  # two lost
    assert a is not None and b is not None and (a.sequence, b.sequence) == (10, 13)
    assert path.lost == 2 and not path.take_keyframe_request()
    c = path.feed(2, 5, 123, 100, True, b"y", 0.066)  # a new source (re-INVITE): continues, asks
    assert c is not None and c.sequence == 14 and 0 < (c.timestamp - b.timestamp) % 2**32 < 9000
    assert path.take_keyframe_request()
    # reordered before the new source's first: its place, 13, was b's. Sent, it would put a second
    # payload under one SRTP index (RFC 3711 §9.1): dropped instead
    assert path.feed(2, 4, 0, 100, False, b"y", 0.07) is None and path.stats().dropped == 1
    assert path.feed(2, 7, 6000, 100, False, b"y", 0.13).sequence == 16  # type: ignore[union-attr]
    late = path.feed(2, 6, 3000, 100, False, b"y", 0.14)  # late within the new source, never sent: its place
    assert late is not None and late.sequence == 15


def _snapshot(ssrc: int, highest: int, last_out: int) -> VideoSnapshot:
    """The engine's snapshot of a lane that forwarded up to input ``highest`` as ``last_out`` (no counts)."""
    reception = ReceptionState(0, -1, -1, 0x10001, 0, None, None, 0, 0.0)
    offset = (last_out - highest) & 0xFFFF
    return VideoSnapshot(
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        ssrc,
        0,
        0.0,
        0,
        0,
        0.0,
        offset,
        last_out,
        highest & 0xFFFF,
        reception,
        False,
    )


def test_the_floor_follows_the_engines_numbers_too() -> None:
    """The engine carries the stream for minutes (its snapshots, a few hundred numbers apart) and hands it
    back: the floor trailed along, the next packet goes out."""
    path = VideoPath("sip->web", start_sequence=10)
    path.configure({100: 96}, {100: "VP8"})
    path.feed(1, 1000, 0, 100, False, b"x", 0.0)
    path.feed(2, 5, 0, 100, False, b"y", 0.0)  # a new source: a floor at 11
    last_out, seq = 11, 5
    for _ in range(200):  # 200 snapshots of 300 packets each: 60 000 numbers on
        last_out, seq = (last_out + 300) & 0xFFFF, seq + 300
        path.fast_account(_snapshot(2, seq, last_out))
    out = path.feed(2, seq + 1, 0, 100, False, b"y", 1.0)
    assert out is not None and out.sequence == (last_out + 1) & 0xFFFF and path.stats().dropped == 0


def test_the_floor_follows_a_long_stream() -> None:
    """The floor trails the numbers out (FLOOR_TRAIL): a stream on one offset for more than half the
    number space (32 768 packets: minutes of video) goes on, across the wrap."""
    path = VideoPath("sip->web", start_sequence=10)
    path.configure({100: 96}, {100: "VP8"})
    path.feed(1, 1000, 0, 100, False, b"x", 0.0)
    path.feed(2, 5, 0, 100, False, b"y", 0.0)  # a new source: a floor
    sent = [path.feed(2, 5 + n, 3000 * n, 100, False, b"y", n / 30) for n in range(1, 70000)]
    assert all(out is not None for out in sent) and path.stats().dropped == 0
    assert sent[-1] is not None and sent[-1].sequence == (11 + 69999) & 0xFFFF


def test_a_late_packet_across_a_skipped_padding_packet_is_dropped() -> None:
    """Padding-only packets are not forwarded and the numbers after them close up (the offset moves by
    one); a packet older than the padding that arrives after it would take its predecessor's number."""
    path = VideoPath("web->sip", start_sequence=100)
    path.configure({96: 96}, {96: "VP8"})
    for seq in (1, 2, 4):  # 3 late
        assert path.feed(7, seq, 90 * seq, 96, False, b"x", 0.0) is not None
    assert path.feed(7, 5, 450, 96, False, b"", 0.0) is None  # padding: the numbers close up
    assert path.feed(7, 6, 540, 96, False, b"z", 0.0).sequence == 104  # type: ignore[union-attr]
    assert path.feed(7, 3, 270, 96, False, b"w", 0.0) is None  # would be 101: packet 2's
    assert path.padding == 1 and path.stats().dropped == 1


def test_held_unknown_and_restart() -> None:
    path = VideoPath("web->sip")
    path.configure({96: 96}, {96: "VP8"})
    path.enabled = False
    assert path.feed(1, 1, 1, 96, False, b"x", 0.0) is None
    path.enabled = True
    assert path.feed(1, 2, 1, 45, False, b"av1", 0.0) is None  # not negotiated on both legs
    assert path.stats().dropped == 2
    path.take_keyframe_request()
    path.configure({96: 96}, {96: "VP8"})  # same mapping: nothing new
    assert not path.take_keyframe_request()
    path.restart()
    assert path.take_keyframe_request()
