"""Keyframe requests: RTCP PLI/FIR both ways, RFC 5168 picture_fast_update, the rate limit (issue 19)."""

from __future__ import annotations

import pytest

from gateway.media.errors import PacketError
from gateway.media.rtp.rtcp import RtcpReceiverReport, RtcpUnknown, parse_rtcp, serialize_rtcp
from gateway.media.video import keyframe

# A PLI as Chromium 156 sends it (RFC 4585 §6.1: V=2, FMT=1, PT=206, length 2, sender SSRC 1, media SSRC).
CHROMIUM_PLI = bytes.fromhex("81ce000200000001a1b2c3d4")


def test_pli_round_trip_and_chromium_bytes() -> None:
    (pli,) = keyframe.keyframe_requests(parse_rtcp(CHROMIUM_PLI))
    assert pli == keyframe.PictureLoss(1, 0xA1B2C3D4)
    assert serialize_rtcp([pli.to_rtcp()]) == CHROMIUM_PLI


def test_fir_round_trip_in_a_compound_packet_with_two_entries() -> None:
    fir = keyframe.FullIntraRequest(0x11111111, 0x22222222, 7)
    data = serialize_rtcp([RtcpReceiverReport(0x11111111), fir.to_rtcp()])
    assert data[-16:] == bytes.fromhex("11111111000000002222222207000000")
    assert keyframe.keyframe_requests(parse_rtcp(data)) == [fir]
    two = RtcpUnknown(206, 4, fir.to_rtcp().body + bytes.fromhex("3333333309000000"))
    assert keyframe.keyframe_requests([two]) == [fir, keyframe.FullIntraRequest(0x11111111, 0x33333333, 9)]


def test_other_feedback_is_not_a_keyframe_request_and_short_ones_are_errors() -> None:
    remb = RtcpUnknown(206, 15, bytes(16))  # application layer feedback (REMB)
    nack = RtcpUnknown(205, 1, bytes(12))  # transport layer feedback (generic NACK)
    assert keyframe.keyframe_requests([remb, nack]) == []
    with pytest.raises(PacketError):
        keyframe.keyframe_requests([RtcpUnknown(206, 1, bytes(4))])
    with pytest.raises(PacketError):
        keyframe.keyframe_requests([RtcpUnknown(206, 4, bytes(12))])
    with pytest.raises(PacketError):
        keyframe.PictureLoss(-1, 0)
    with pytest.raises(PacketError):
        keyframe.FullIntraRequest(1, 2, 256)


def test_picture_fast_update_body_and_liberal_reading() -> None:
    body = keyframe.picture_fast_update()
    assert keyframe.is_picture_fast_update(keyframe.MEDIA_CONTROL, body)
    assert keyframe.is_picture_fast_update("Application/Media_Control+XML; charset=utf-8", body.encode())
    # as Polycom and Cisco phones send it: no declaration, other whitespace
    compact = (
        "<media_control><vc_primitive><to_encoder><picture_fast_update></picture_fast_update>"
        "</to_encoder></vc_primitive></media_control>"
    )
    assert keyframe.is_picture_fast_update(keyframe.MEDIA_CONTROL, compact)
    assert not keyframe.is_picture_fast_update("application/dtmf-relay", body)
    assert not keyframe.is_picture_fast_update(
        keyframe.MEDIA_CONTROL, "<media_control><general_error/></media_control>"
    )
    assert not keyframe.is_picture_fast_update(keyframe.MEDIA_CONTROL, b"\xff\xfe")


def test_how_the_sip_side_is_asked() -> None:
    assert keyframe.SipRequestKind.of(["nack", "nack  pli"]) is keyframe.SipRequestKind.PLI
    assert keyframe.SipRequestKind.of(["ccm fir", "nack"]) is keyframe.SipRequestKind.FIR
    assert keyframe.SipRequestKind.of(["nack"]) is keyframe.SipRequestKind.INFO
    assert keyframe.SipRequestKind.of([]) is keyframe.SipRequestKind.INFO


def test_requests_are_limited_per_interval_and_firs_numbered() -> None:
    requests = keyframe.KeyframeRequests(min_interval=0.5)
    assert [requests.want(t) for t in (0.0, 0.1, 0.49, 0.5, 0.6, 2.0)] == [
        True,
        False,
        False,
        True,
        False,
        True,
    ]
    assert (requests.sent, requests.suppressed) == (3, 3)
    assert [requests.next_fir() for _ in range(2)] == [1, 2]
    with pytest.raises(ValueError):
        keyframe.KeyframeRequests(-1)
