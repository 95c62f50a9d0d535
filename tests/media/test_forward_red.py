"""RFC 2198 redundancy from the browser (audio/red wrapping Opus) in one forwarding direction
(gateway/media/forward.py): unwrapped for pass-through, a lost packet restored from the next one's
redundant copy, decoded in the lost frame's place when transcoding; malformed RED dropped."""

from __future__ import annotations

import sdp
from gateway.media.codecs import codec_choice as choice
from gateway.media.forward import MediaPath
from gateway.media.rtp.red import RedBlock, pack
from tests.media.codecs.test_concealment import opus_packets

OPUS = choice.known("opus")
PCMU = choice.known("PCMU")
RED = sdp.Codec(63, "red", 48000, 2, "111/111")


def _red(packets: tuple[bytes, ...], index: int) -> bytes:
    """Packet ``index`` as Chrome sends it: its Opus frame with the previous one as redundancy."""
    previous = [RedBlock(111, 960 * (index - 1), packets[index - 1])] if index else []
    return pack(RedBlock(111, 960 * index, packets[index]), previous)


def _path(out: sdp.Codec) -> MediaPath:
    path = MediaPath("web->sip")
    path.configure({111: OPUS, 63: RED}, out, None)
    return path


def test_pass_through_unwraps_red_and_restores_a_lost_packet_in_its_place() -> None:
    packets = opus_packets(10)
    path = _path(OPUS)
    assert path.passthrough and path.codec_pairs() == frozenset()
    out = []
    for i in (0, 1, 2, 4, 5):  # 3 lost
        sent, _ = path.feed(9, 100 + i, 960 * i, 63, False, _red(packets, i), 0.02 * i)
        out += sent
    assert [p.payload for p in out] == [packets[i] for i in (0, 1, 2, 3, 4, 5)]
    assert [p.seq for p in out] == [100, 101, 102, 103, 104, 105]  # numbered as the phone expects
    assert [(p.timestamp - out[0].timestamp) % 2**32 for p in out] == [960 * i for i in range(6)]
    assert all(p.payload_type is None for p in out)  # the phone's Opus, never RED
    stats = path.stats()
    assert stats.forwarded == 6 and stats.lost == 1 and stats.dropped == 0
    # two lost in a row, one copy each: the second comes back, the first stays lost
    sent, _ = path.feed(9, 108, 960 * 8, 63, False, _red(packets, 8), 0.16)
    assert [(p.payload, p.seq) for p in sent] == [(packets[7], 107), (packets[8], 108)]
    assert path.stats().recovered == 2


def test_a_late_packet_after_its_copy_was_sent_keeps_its_number() -> None:
    packets = opus_packets(5)
    path = _path(OPUS)
    path.feed(9, 0, 0, 63, False, _red(packets, 0), 0.0)
    restored, _ = path.feed(9, 2, 1920, 63, False, _red(packets, 2), 0.04)
    late, _ = path.feed(9, 1, 960, 63, False, _red(packets, 1), 0.045)
    assert [p.seq for p in restored] == [1, 2] and [p.seq for p in late] == [1]  # a duplicate to the phone


def test_malformed_red_and_red_around_an_unknown_codec_are_dropped() -> None:
    path = _path(OPUS)
    for payload in (b"", bytes([0x80 | 111, 0, 0]), bytes([0x80 | 111, 0, 0x3C, 0x09, 111, 1])):
        assert path.feed(9, 1, 960, 63, False, payload, 0.0) == ([], [])
    assert path.feed(9, 2, 1920, 63, False, bytes([96]) + b"x", 0.02) == ([], [])  # 96 not negotiated
    assert path.feed(9, 3, 2880, 63, False, bytes([63]) + b"x", 0.04) == ([], [])  # RED in RED
    assert path.stats().dropped == 5


def _transcoded(drop: set[int], wrap: bool, count: int = 30) -> list[bytes]:
    packets = opus_packets(count)
    path = _path(PCMU)
    assert path.codec_pairs() == frozenset({"opus>pcmu"})
    out: list[bytes] = []
    for i in range(count):
        if i not in drop:
            payload, pt = (_red(packets, i), 63) if wrap else (packets[i], 111)
            out += [p.payload for p in path.feed(9, 500 + i, 960 * i, pt, False, payload, 0.02 * i)[0]]
    return out


def test_transcoding_decodes_the_redundant_copy_of_a_lost_frame() -> None:
    clean = _transcoded(set(), wrap=False)
    with_red = _transcoded({12}, wrap=True)
    without = _transcoded({12}, wrap=False)
    # the lost frame decoded from its copy: the decoder's state as if nothing was lost, bit for bit
    assert with_red == clean
    assert len(without) == len(clean) and without[12] != clean[12]  # FEC or PLC: close, not the same


def test_two_lost_frames_the_first_from_the_fec_in_the_seconds_copy() -> None:
    """Chrome's RED repeats whole Opus packets, in-band FEC included: when 12 and 13 are lost, 14's copy of
    13 restores 13 and its FEC restores 12. The decoder then does just what it does when 12 alone is lost
    without RED (12 from 13's FEC, then 13): the same output, bit for bit; without it, 12 was PLC."""
    fec_then_13 = _transcoded({12}, wrap=False)
    both_lost = _transcoded({12, 13}, wrap=True)
    assert both_lost == fec_then_13
    plc = _transcoded({12, 13}, wrap=False)  # no copy of 13: 12 is PLC, 13 the FEC in 14
    assert len(plc) == len(both_lost) and plc[12] != both_lost[12]


def test_a_copy_that_does_not_decode_leaves_its_frame_to_plc_and_the_gap_concealed() -> None:
    """13's copy in 14 is garbage: 13 and 12 (whose FEC would have come from it) are concealed by PLC,
    one frame per slot, and the call goes on; before the FEC came from copies, 12 was PLC anyway."""
    packets = list(opus_packets(30))
    path = _path(PCMU)
    out: list[bytes] = []
    for i in range(30):
        if i in (12, 13):
            continue
        if i == 14:
            payload = pack(RedBlock(111, 960 * 14, packets[14]), [RedBlock(111, 960 * 13, bytes([0xFF]) * 3)])
        else:
            payload = _red(tuple(packets), i)
        out += [p.payload for p in path.feed(9, 500 + i, 960 * i, 63, False, payload, 0.02 * i)[0]]
    assert len(out) == 30 and all(len(p) == 160 for p in out)


def test_the_fast_lane_is_armed_for_red_with_its_primary() -> None:
    """``lane()`` after RED: the lane takes RED (its payload type) around Opus (``red``), pass-through or
    transcoding alike, so that a call with Chrome's RED stays on the engine (_fastlane_red.c)."""
    packets = opus_packets(3)
    for out, pairs in ((OPUS, frozenset()), (PCMU, frozenset({"opus>pcmu"}))):
        path = _path(out)
        assert path.lane(pairs) is None  # nothing yet
        for i in range(2):
            path.feed(9, 100 + i, 960 * i, 63, False, _red(packets, i), 0.02 * i)
        lane = path.lane(pairs)
        assert lane is not None and (lane.payload_type, lane.red, lane.ssrc) == (63, 111, 9)
        assert lane.codec_in == ("" if out is OPUS else "opus")
        path.feed(9, 102, 1920, 111, False, packets[2], 0.04)  # plain Opus again: a plain lane
        lane = path.lane(pairs)
        assert lane is not None and (lane.payload_type, lane.red) == (111, -1)
