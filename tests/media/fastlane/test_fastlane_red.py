"""RFC 2198 redundancy (audio/red over Opus, issue 35) in the engine's lanes, driven directly (no bridge):
the browser's RED unwrapped and a lost packet restored from the next one's copy (pass-through: the phone
gets plain Opus, each packet with its own number and timestamp), malformed RED dropped and counted without
a crash or a word to Python, RED around another payload type left to Python, and RED sent to the browser
(each payload with the previous one as its redundant block, the previous one handed over both ways)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pylibsrtp
import pytest

from gateway.media.fastlane.native import CODECS, SIP_TO_WEB, STATS_RFC3550, WEB_TO_SIP, load_codecs
from gateway.media.rtp.red import RedBlock, pack, unpack
from tests.media.codecs.test_concealment import opus_packets
from tests.media.fastlane.test_fastlane_engine import KEY, Linked, RtpPacketView, open_link, receive, settle
from tests.media.fastlane.test_fastpath import require_fast_lane

RED_PT, OPUS_PT, PHONE_OPUS = 63, 111, 96
FRAME = 960  # 20 ms at 48 kHz
SSRC = 0x4242


@pytest.fixture(autouse=True)
def fast_lane_built() -> None:
    require_fast_lane()


@dataclass
class Red:
    linked: Linked
    browser: socket.socket  # sends SRTP to the web socket, receives what the engine sends the browser
    phone: socket.socket  # plain RTP
    srtp_out: pylibsrtp.Session  # the browser's
    srtp_in: pylibsrtp.Session


@pytest.fixture
async def red_link() -> AsyncIterator[Red]:
    async with open_link() as linked:
        browser = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for sock in (browser, phone):
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(2.0)
        try:
            yield Red(
                linked, browser, phone,
                pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)),
                pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND)),
            )  # fmt: skip
        finally:
            browser.close()
            phone.close()


def frame(seq: int) -> bytes:
    return bytes([seq & 0xFF]) * (40 + seq % 7)  # an "Opus frame" of its own, told apart by its bytes


def red_packet(seq: int, payload: bytes | None = None, pt: int = RED_PT) -> bytes:
    """Packet ``seq`` as Chrome sends it (its frame in RED with the previous one as a copy), or ``payload``."""
    if payload is None:
        previous = [RedBlock(OPUS_PT, FRAME * (seq - 1), frame(seq - 1))]
        payload = pack(RedBlock(OPUS_PT, FRAME * seq, frame(seq)), previous)
    return struct.pack("!BBHII", 0x80, pt, seq, FRAME * seq, SSRC) + payload


def arm_from_browser(r: Red, first_seq: int) -> None:
    """The browser -> phone lane, pass-through Opus, for RED around Opus (red_in); Python counted up to the
    packet before ``first_seq``."""
    native = r.linked.link.native
    last = FRAME * (first_seq - 1)
    assert native.arm(
        WEB_TO_SIP, r.browser.getsockname(), r.phone.getsockname(), SSRC, RED_PT, PHONE_OPUS, last, last,
        48000, 48000, last, time.monotonic(), 0, 0, -1, 0, 0, STATS_RFC3550, 48000, None, first_seq - 1,
        OPUS_PT, -1,
    )  # fmt: skip


def send(r: Red, data: bytes) -> None:
    r.browser.sendto(r.srtp_out.protect(data), r.linked.web)


async def test_a_lost_packet_comes_back_from_the_next_ones_copy_as_plain_opus(red_link: Red) -> None:
    r, native = red_link, red_link.linked.link.native
    arm_from_browser(r, 10)
    got = []
    for seq in (10, 11, 13, 14):  # 12 lost: 13's copy brings it back, before 13
        send(r, red_packet(seq))
        got.append(RtpPacketView(await receive(r.phone)))
        if seq == 13:
            got.append(RtpPacketView(await receive(r.phone)))
    assert [p.payload for p in got] == [frame(s) for s in (10, 11, 12, 13, 14)]
    assert [p.seq for p in got] == [100, 101, 102, 103, 104]  # the phone's numbering, the gap filled
    assert [struct.unpack_from("!I", p.data, 4)[0] for p in got] == [FRAME * s for s in (10, 11, 12, 13, 14)]
    assert {p.data[1] & 0x7F for p in got} == {PHONE_OPUS}  # never RED to the phone
    handler = r.linked.handler
    await settle(r.linked.link, lambda: handler.forwarded == 4)
    (snap,) = handler.snapshots
    assert (snap.packets, snap.lost, snap.recovered, snap.malformed, snap.sent) == (4, 1, 1, 0, 5)
    assert snap.forwarded == 5 and snap.pt == RED_PT and native.armed(WEB_TO_SIP)
    assert not handler.web_rtp  # Python saw none of it


@pytest.mark.parametrize(
    "payload",
    [
        b"",  # nothing
        bytes([0x80 | OPUS_PT, 0, 0]),  # a redundant block's header cut short
        bytes([0x80 | OPUS_PT, 0x0F, 0x00, 0x09, OPUS_PT, 1]),  # a block of 9 bytes where 1 is left
        bytes([0x80 | OPUS_PT, 0x0F, 0x03, 0xFF]) * 40,  # headers and never a primary
        bytes([0x80 | OPUS_PT, 0x0F, 0x03, 0xFF]) * 33 + bytes([OPUS_PT]),  # more blocks than RED has
    ],
)
async def test_malformed_red_is_dropped_and_counted_and_the_lane_goes_on(
    red_link: Red, payload: bytes
) -> None:
    r, native = red_link, red_link.linked.link.native
    arm_from_browser(r, 10)
    send(r, red_packet(10))
    assert RtpPacketView(await receive(r.phone)).payload == frame(10)
    for seq in (11, 12):
        send(r, red_packet(seq, payload))
    send(r, red_packet(13))  # the next good one, in its place (a dropped one counts as received, as in
    after = RtpPacketView(await receive(r.phone))  # forward.MediaPath: nothing to restore before it)
    assert (after.seq, after.payload) == (103, frame(13))
    handler = r.linked.handler
    await settle(r.linked.link, lambda: handler.forwarded == 4)
    (snap,) = handler.snapshots
    assert (snap.packets, snap.malformed, snap.recovered, snap.lost, snap.sent) == (4, 2, 0, 0, 2)
    assert native.armed(WEB_TO_SIP) and not handler.web_rtp and not handler.failed


async def test_red_around_another_payload_type_is_left_to_python(red_link: Red) -> None:
    r, native = red_link, red_link.linked.link.native
    arm_from_browser(r, 10)
    other = red_packet(10, pack(RedBlock(0, FRAME * 10, b"\xff" * 160)))  # PCMU in RED: not the lane's
    send(r, other)
    await settle(r.linked.link, lambda: bool(r.linked.handler.web_rtp))
    assert r.linked.handler.web_rtp == [other] and not native.armed(WEB_TO_SIP)


async def test_red_goes_to_the_browser_with_the_previous_payload_as_its_copy(red_link: Red) -> None:
    r, native = red_link, red_link.linked.link.native
    last = 160 * 9
    args = (SIP_TO_WEB, r.phone.getsockname(), r.browser.getsockname(), SSRC, 0, 0, last, last, 8000, 8000,
            last, time.monotonic(), 0, 0, -1, 0, 0, STATS_RFC3550, 8000, None, 9)  # fmt: skip
    assert native.arm(*args, -1, RED_PT)
    assert native.red_previous(SIP_TO_WEB, 160 * 9, b"before") == (160 * 9, b"before")  # Python sent 9
    received = []
    for seq in (10, 11, 12):
        r.phone.sendto(
            struct.pack("!BBHII", 0x80, 0, seq, 160 * seq, SSRC) + bytes([seq]) * 160, r.linked.sip
        )
        packet = r.srtp_in.unprotect(await receive(r.browser))
        assert packet[1] & 0x7F == RED_PT
        received.append(unpack(RtpPacketView(packet).payload, struct.unpack_from("!I", packet, 4)[0]))
    assert received == [
        (RedBlock(0, 160 * (seq - 1), bytes([seq - 1]) * 160 if seq > 10 else b"before"),
         RedBlock(0, 160 * seq, bytes([seq]) * 160))
        for seq in (10, 11, 12)
    ]  # fmt: skip
    assert native.red_previous(SIP_TO_WEB) == (160 * 12, bytes([12]) * 160)  # for Python's next RED packet
    await settle(r.linked.link, lambda: r.linked.handler.forwarded == 3)
    octets = sum(s.octets for s in r.linked.handler.snapshots)
    assert octets == 5 + 6 + 160 + 2 * (5 + 320)  # what was sent: RED's octets


async def test_bad_red_arguments_raise(red_link: Red) -> None:
    native, a = red_link.linked.link.native, red_link.linked.web
    base = (
        WEB_TO_SIP,
        a,
        a,
        1,
        RED_PT,
        0,
        0,
        0,
        8000,
        8000,
        0,
        0.0,
        0,
        0,
        -1,
        0,
        0,
        STATS_RFC3550,
        8000,
        None,
        -1,
    )
    for red_in, red_out in ((RED_PT, -1), (128, -1), (-2, -1), (-1, 0), (-1, 200)):
        with pytest.raises(ValueError, match="red_in"):
            native.arm(*base, red_in, red_out)
    with pytest.raises(ValueError, match="1023"):
        native.red_previous(SIP_TO_WEB, 0, b"x" * 1024)
    assert not native.armed(WEB_TO_SIP)
    await asyncio.sleep(0)


async def _transcoded_red(r: Red, packets: tuple[bytes, ...], drop: set[int], copies: bool) -> list[bytes]:
    """``packets`` (Opus with in-band FEC) in RED through a browser -> phone lane transcoding to PCMU, those
    in ``drop`` lost, each with the previous one as its copy when ``copies``; the PCMU the phone gets."""
    native = r.linked.link.native
    assert native.arm(
        WEB_TO_SIP, r.browser.getsockname(), r.phone.getsockname(), SSRC, RED_PT, 0, 0, 0, 48000, 8000, 0,
        time.monotonic(), CODECS["opus"], CODECS["pcmu"], -1, 3 * 160, 160, STATS_RFC3550, 48000, None, -1,
        OPUS_PT, -1,
    )  # fmt: skip
    for seq, packet in enumerate(packets):
        if seq not in drop:
            previous = [RedBlock(OPUS_PT, FRAME * (seq - 1), packets[seq - 1])] if seq and copies else []
            send(r, red_packet(seq, pack(RedBlock(OPUS_PT, FRAME * seq, packet), previous)))
    heard = [RtpPacketView(await receive(r.phone)).payload for _ in range(len(packets) - 1)]
    native.disarm(WEB_TO_SIP)
    return heard


async def test_two_lost_frames_the_first_from_the_fec_in_the_seconds_copy(red_link: Red) -> None:
    """Chrome's RED repeats whole Opus packets, in-band FEC included: with 12 and 13 lost, 14's copy of 13
    restores 13 and that copy's FEC restores 12. The decoder then does what it does when 12 alone is lost
    and 13 has no copy of it (12 from 13's FEC, then 13): the same PCMU, bit for bit (forward.py alike)."""
    if "opus>pcmu" not in load_codecs():
        pytest.fail("the engine cannot transcode Opus -> PCMU (libopus not found)")
    packets = opus_packets(30)
    both_lost = await _transcoded_red(red_link, packets, {12, 13}, copies=True)
    red_link.phone.settimeout(0.3)
    with contextlib.suppress(TimeoutError):
        while True:  # the last frame of the first run
            red_link.phone.recv(2048)
    red_link.phone.settimeout(2.0)
    async with open_link() as linked:  # a fresh lane and decoder, and the browser's SRTP from the start
        red_link.linked = linked
        red_link.srtp_out = pylibsrtp.Session(
            pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
        )
        one_lost = await _transcoded_red(red_link, packets, {12}, copies=False)
    assert both_lost == one_lost
