"""Arming a lane under a backlog (issue 14): packets of the lane's direction the engine queued for Python
since the last drain are taken back and forwarded by the lane itself, first, in order, exactly once and
accounted once; the first one the lane would not take (DTMF, another SSRC) and every later one stay for
Python, and the lane stays disarmed; video lanes alike; a re-arm asked for inside a batch Python drains
waits for its end; a transcoding lane's go through its codecs; a lane re-armed between pass-through and
transcoding keeps working (its PCM buffer comes with the first transcoding arm). Real sockets, the real
engine; the test holds the event loop (time.sleep) while the engine queues, so that Python drains only when
the test says."""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pylibsrtp
import pytest

from gateway.media.fastlane.engine import FastLink
from gateway.media.fastlane.native import (
    CODECS,
    SIP_TO_WEB,
    STATS_RFC3550,
    WEB_TO_SIP,
    Address,
    NativeLink,
    load_codecs,
    snapshot,
    video_snapshot,
)
from gateway.media.rtp.send_guard import SendGuard
from tests.media.fastlane.test_fastlane_engine import (
    KEY,
    Handler,
    Linked,
    RtpPacketView,
    SrtpLink,
    linked,
    open_link,
    open_srtp_link,
    rtp,
)
from tests.media.fastlane.test_fastpath import require_fast_lane

__all__ = ["linked"]  # the fixture

QUEUED = 0.2  # seconds the engine has to read and queue what a test sent (loopback: well under 1 ms)


@pytest.fixture(autouse=True)
def fast_lane_built() -> None:
    require_fast_lane()


@pytest.fixture
async def link() -> AsyncIterator[SrtpLink]:
    """A link whose SIP leg has SRTP, the phone's and the browser's sockets (blocking, with a timeout)."""
    async with open_srtp_link() as srtp_link:
        yield srtp_link


def arm(s: SrtpLink, which: int, first_seq: int) -> bool:
    """Lane ``which`` for SSRC 0x1234 PCMU, Python's last packet ``first_seq - 1`` (timestamps 160 * seq)."""
    phone, browser = s.phone_socket.getsockname(), s.browser_socket.getsockname()
    source, destination = (phone, browser) if which == SIP_TO_WEB else (browser, phone)
    return s.linked.link.native.arm(
        which, source, destination, 0x1234, 0, 0, 0, 0, 8000, 8000, 160 * (first_seq - 1), time.monotonic(),
        0, 0, -1, 0, 0, STATS_RFC3550, 8000, None, first_seq - 1,
    )  # fmt: skip


def nothing_more(sock: socket.socket) -> bool:
    sock.settimeout(0.2)
    try:
        sock.recv(2048)
    except TimeoutError:
        return True
    return False


def reception_received(native: NativeLink, which: int) -> tuple[int, int, int, int]:
    taken = snapshot(native, which)
    assert taken is not None
    return taken.packets, taken.forwarded, taken.lost, taken.reception.received


async def test_a_lane_armed_over_queued_packets_forwards_them_first_in_order_exactly_once(
    link: SrtpLink,
) -> None:
    s, native, handler = link, link.linked.link.native, link.linked.handler
    srtcp = s.phone.protect_rtcp(struct.pack("!BBHI", 0x80, 201, 1, 0x1234))  # a receiver report: Python's
    for packet in (s.phone.protect(rtp(1, b"\x01" * 160)), srtcp, s.phone.protect(rtp(2, b"\x02" * 160))):
        s.phone_socket.sendto(packet, s.linked.sip)
    for seq in (1, 2, 3):
        s.browser_socket.sendto(s.browser_tx.protect(rtp(seq, bytes([100 + seq]) * 160)), s.linked.web)
    time.sleep(QUEUED)  # the loop does not run: all of it waits in the queue, no lane armed
    assert arm(s, SIP_TO_WEB, 1) and arm(s, WEB_TO_SIP, 1)  # main refused: "a packet waits, drain first"
    s.phone_socket.sendto(s.phone.protect(rtp(3, b"\x03" * 160)), s.linked.sip)  # the lane's, after them
    to_browser = [RtpPacketView(s.browser_rx.unprotect(s.browser_socket.recv(2048))) for _ in range(3)]
    assert [(p.ssrc, p.seq, p.payload) for p in to_browser] == [
        (0x6161, 200 + n, bytes([n + 1]) * 160) for n in range(3)
    ]
    to_phone = [RtpPacketView(s.phone.unprotect(s.phone_socket.recv(2048))) for _ in range(3)]
    assert [(p.ssrc, p.seq, p.payload) for p in to_phone] == [
        (0x5151, 100 + n, bytes([101 + n]) * 160) for n in range(3)
    ]
    assert nothing_more(s.browser_socket) and nothing_more(s.phone_socket)  # exactly once
    s.linked.link.drain()  # what is left for Python: the report only, nothing it would handle twice
    assert handler.sip_rtp == [] and handler.web_rtp == [] and handler.sip_datagrams == [srtcp]
    assert native.armed(SIP_TO_WEB) and native.armed(WEB_TO_SIP)
    # accounted once, in the lanes' tallies: 3 packets each, no loss, the receive statistics' 3
    assert reception_received(native, SIP_TO_WEB) == (3, 3, 0, 3)
    assert reception_received(native, WEB_TO_SIP) == (3, 3, 0, 3)
    assert native.counters()[1:3] == (3, 3)


async def test_a_queued_packet_the_lane_would_not_take_stays_for_python_with_all_after_it(
    link: SrtpLink,
) -> None:
    s, native, handler = link, link.linked.link.native, link.linked.handler
    dtmf = rtp(3, b"\x05\x0a\x00\xa0", pt=101)  # RFC 4733: Python's, and what follows must wait for it
    sent = [rtp(1, b"\x01" * 160), rtp(2, b"\x02" * 160), dtmf, rtp(4, b"\x04" * 160), rtp(5, ssrc=0x9999)]
    for packet in sent:
        s.phone_socket.sendto(s.phone.protect(packet), s.linked.sip)
    time.sleep(QUEUED)
    assert not arm(s, SIP_TO_WEB, 1)  # it took 1 and 2, then the event disarmed it, as in the thread
    heard = [RtpPacketView(s.browser_rx.unprotect(s.browser_socket.recv(2048))).payload for _ in range(2)]
    assert heard == [b"\x01" * 160, b"\x02" * 160] and nothing_more(s.browser_socket)
    assert not native.armed(SIP_TO_WEB)
    s.linked.link.drain()  # Python reads the lane's accounts first (a snapshot), then the rest, in order
    assert handler.sip_rtp == sent[2:]
    (taken,) = handler.snapshots
    assert (taken.packets, taken.forwarded, taken.last_seq, taken.reception.received) == (2, 2, 2, 2)
    assert native.counters()[2] == 2


async def test_plain_rtp_from_the_sip_side_queued_raw_is_taken_back_too() -> None:
    async with open_link() as linked:  # no SIP-leg SRTP: the engine queues the phone's RTP as it came
        phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        browser = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for sock in (phone, browser):
                sock.bind(("127.0.0.1", 0))
                sock.settimeout(1.0)
            for seq in (7, 8):
                phone.sendto(rtp(seq, bytes([seq]) * 160), linked.sip)
            time.sleep(QUEUED)
            native = linked.link.native
            assert native.arm(
                SIP_TO_WEB, phone.getsockname(), browser.getsockname(), 0x1234, 0, 0, 0, 0, 8000, 8000,
                160 * 6, time.monotonic(), 0, 0, -1, 0, 0, STATS_RFC3550, 8000, None, 6,
            )  # fmt: skip
            rx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
            heard = [RtpPacketView(rx.unprotect(browser.recv(2048))) for _ in range(2)]
            assert [(p.seq, p.payload) for p in heard] == [(200, b"\x07" * 160), (201, b"\x08" * 160)]
            linked.link.drain()
            assert linked.handler.sip_datagrams == [] and nothing_more(browser)
            assert reception_received(native, SIP_TO_WEB) == (2, 2, 0, 2)
        finally:
            phone.close()
            browser.close()


@contextlib.contextmanager
def video_sockets(native: Any) -> Iterator[tuple[socket.socket, socket.socket, socket.socket]]:
    """(the SIP side's video socket, given to the link, plain RTP; the phone; the browser)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(1.0)
        native.video(sockets[0].fileno())
        native.set_video_output(SIP_TO_WEB, 0x80, 0x7777)
        yield sockets[0], sockets[1], sockets[2]
    finally:
        for sock in sockets:
            sock.close()


def arm_vp8(native: Any, phone: socket.socket, browser: socket.socket, ssrc: int) -> bool:
    """The phone's VP8 (96) to the browser (98), numbers and timestamps as they come."""
    pt_map, codecs = bytearray(b"\xff" * 128), bytearray(128)
    pt_map[96], codecs[96] = 98, 1
    armed: bool = native.arm_video(
        SIP_TO_WEB, phone.getsockname(), browser.getsockname(), ssrc, bytes(pt_map), bytes(128),
        bytes(codecs), 0, 0, -1, 0, 0, 0, time.monotonic(), STATS_RFC3550, 90000, None,
    )  # fmt: skip
    return armed


async def test_a_video_lane_armed_over_queued_packets_forwards_them_first(linked: Linked) -> None:
    native, ssrc = linked.link.native, 0x4444
    with video_sockets(native) as (video, phone, browser):
        vp8 = [struct.pack("!BBHII", 0x80, 96, seq, 3000 * seq, ssrc) + bytes([0x10, seq]) for seq in (1, 2)]
        for packet in vp8:
            phone.sendto(packet, video.getsockname())
        time.sleep(QUEUED)
        assert arm_vp8(native, phone, browser, ssrc)
        rx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
        heard = [RtpPacketView(rx.unprotect(browser.recv(2048))) for _ in range(2)]
        assert [(p.ssrc, p.seq, p.payload) for p in heard] == [
            (0x7777, 1, b"\x10\x01"),
            (0x7777, 2, b"\x10\x02"),
        ]
        assert nothing_more(browser)
        (engine,) = linked.pool.engines
        assert engine.native.drain() == []  # nothing left for Python
        taken = video_snapshot(native, SIP_TO_WEB)
        assert taken is not None and (taken.received, taken.forwarded, taken.sent) == (2, 2, 2)


async def test_a_video_lane_drops_a_late_packet_across_a_skipped_padding_packet(linked: Linked) -> None:
    """As VideoPath (tests/media/video/test_video.py): after a padding-only packet the numbers close up,
    and a packet older than it that arrives after it would take its predecessor's number - a second
    payload under one SRTP index (RFC 3711 §9.1). The engine drops it."""
    native, ssrc = linked.link.native, 0x4444
    with video_sockets(native) as (video, phone, browser):
        arm_vp8(native, phone, browser, ssrc)
        for seq, payload in ((1, b"a"), (2, b"b"), (4, b"d"), (5, b""), (6, b"f"), (3, b"c")):  # 5: padding
            phone.sendto(
                struct.pack("!BBHII", 0x80, 96, seq, 3000 * seq, ssrc) + payload, video.getsockname()
            )
            time.sleep(0.005)
        rx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
        heard = [RtpPacketView(rx.unprotect(browser.recv(2048))) for _ in range(4)]
        assert [(p.seq, p.payload) for p in heard] == [(1, b"a"), (2, b"b"), (4, b"d"), (5, b"f")]
        assert nothing_more(browser)  # 3 would have gone out as 2, b's number
        taken = video_snapshot(native, SIP_TO_WEB)
        assert taken is not None and (taken.padding, taken.dropped, taken.sent) == (1, 1, 4)


async def test_a_video_lanes_floor_follows_a_long_stream(linked: Linked) -> None:
    """The engine's floor trails the numbers out as VideoPath's: far-apart numbers on one offset (as
    minutes of video would bring) all go, past half the number space."""
    native, ssrc = linked.link.native, 0x4444
    with video_sockets(native) as (video, phone, browser):
        arm_vp8(native, phone, browser, ssrc)
        seqs = [1, 10001, 20001, 30001, 40001, 50001, 60001, 4465]  # the last across the wrap
        for n, seq in enumerate(seqs):
            packet = struct.pack("!BBHII", 0x80, 96, seq, 3000 * n, ssrc) + bytes([n])
            phone.sendto(packet, video.getsockname())
            time.sleep(0.005)
        rx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
        heard = [RtpPacketView(rx.unprotect(browser.recv(2048))).seq for _ in seqs]
        assert heard == seqs and nothing_more(browser)
        taken = video_snapshot(native, SIP_TO_WEB)
        assert taken is not None and taken.dropped == 0


async def test_a_video_lane_never_sends_another_packet_under_an_index(linked: Linked) -> None:
    """The send guard in the engine (send_guard.py, guard_admit): a duplicate of the phone's number with
    another payload (spoofed plain RTP) is not encrypted under the index its first copy went out with; the
    same packet again (a retransmission a NACK asked for) goes, the very same bytes. The engine keeps the
    state Python's SendGuard reads: Python then refuses that payload too."""
    native, ssrc = linked.link.native, 0x4444
    guard = SendGuard()  # Python sent "p" as number 7 before the lane was armed
    python_tx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    pythons = python_tx.protect(struct.pack("!BBHII", 0x80, 98, 7, 3000, 0x7777) + b"p")
    assert guard.admit(pythons)
    with video_sockets(native) as (video, phone, browser):
        pt_map, codecs = bytearray(b"\xff" * 128), bytearray(128)
        pt_map[96], codecs[96] = 98, 1
        assert native.arm_video(
            SIP_TO_WEB, phone.getsockname(), browser.getsockname(), ssrc, bytes(pt_map), bytes(128),
            bytes(codecs), 0, 0, -1, 0, 0, 0, time.monotonic(), STATS_RFC3550, 90000, None, guard.state,
        )  # fmt: skip
        for seq, payload in ((1, b"a"), (2, b"b"), (1, b"X"), (1, b"a"), (3, b"c"), (7, b"q"), (7, b"p")):
            phone.sendto(struct.pack("!BBHII", 0x80, 96, seq, 3000, ssrc) + payload, video.getsockname())
            time.sleep(0.005)
        wire = [browser.recv(2048) for _ in range(5)]
        assert nothing_more(browser)  # X would have gone out under a's index, q under Python's p's
        assert wire[2] == wire[0] and wire[4] == pythons
        rx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
        heard = [RtpPacketView(rx.unprotect(wire[i])) for i in (0, 1, 3)]
        assert [(p.seq, p.payload) for p in heard] == [(1, b"a"), (2, b"b"), (3, b"c")]
        first = bytes(wire[0])
        assert guard.admit(first) and not guard.admit(first[:-1] + bytes([first[-1] ^ 1]))
    with pytest.raises(ValueError, match="SendGuard"):
        native.arm_video(
            SIP_TO_WEB, ("127.0.0.1", 9), ("127.0.0.1", 9), ssrc, bytes(b"\xff" * 128), bytes(128), bytes(128),
            0, 0, -1, 0, 0, 0, time.monotonic(), STATS_RFC3550, 90000, None, bytearray(16),
        )  # fmt: skip


async def test_the_browsers_new_video_ssrc_disarms_the_lane(linked: Linked) -> None:
    """A packet of another SSRC with one of the video's payload types (the browser's new source) goes to
    Python, whose VideoPath numbers it from the lane's next number: the engine stops forwarding the old
    source there and then, so the two never send on the stream at once (send_guard.py)."""
    native = linked.link.native
    browser_tx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    with video_sockets(native) as (_, phone, browser):
        pt_map, codecs = bytearray(b"\xff" * 128), bytearray(128)
        pt_map[96], codecs[96] = 96, 1
        native.set_video_output(WEB_TO_SIP, 0x80, 0x5555)
        assert native.arm_video(
            WEB_TO_SIP, browser.getsockname(), phone.getsockname(), 0xAAAA, bytes(pt_map), bytes(128),
            bytes(codecs), 0, 0, -1, 0, 0, 0, time.monotonic(), STATS_RFC3550, 90000, None,
        )  # fmt: skip
        for source, seq, payload in ((0xAAAA, 1, b"a1"), (0xBBBB, 7, b"b7"), (0xAAAA, 2, b"a2")):
            packet = struct.pack("!BBHII", 0x80, 96, seq, 3000, source) + payload
            browser.sendto(browser_tx.protect(packet), linked.web)
            time.sleep(0.01)
        assert phone.recv(2048)[12:] == b"a1" and nothing_more(phone)
        (engine,) = linked.pool.engines
        left = [bytes(item[2])[12:] for item in engine.native.drain()]
        assert left == [b"b7", b"a2"], left  # both Python's, in order


@dataclass
class RearmingHandler(Handler):
    """Asks for a re-arm from inside a batch, as a bridge does when a datagram of it completes DTLS."""

    link: FastLink | None = None
    events: list[str] = field(default_factory=list)

    def fast_web_datagram(self, data: bytes, source: Address) -> None:
        assert self.link is not None
        self.events.append(f"web datagram, re-arm deferred: {self.link.defer_rearm()}")

    def fast_sip_datagram(self, data: bytes, source: Address) -> None:
        self.events.append("sip datagram")

    def fast_rearm(self) -> None:
        self.events.append("re-arm")


async def test_a_re_arm_asked_for_inside_a_batch_waits_for_its_end() -> None:
    """Arming mid-batch would let the engine forward (take back) packets newer than ones the batch still
    holds for Python."""
    handler = RearmingHandler()
    async with open_link(handler=handler) as linked:
        handler.link = linked.link
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.sendto(b"\x00\x01" + bytes(18), linked.web)  # STUN-shaped: Python's, no sync
            sock.sendto(rtp(1), linked.sip)  # plain RTP from the SIP side, no lane: Python's too
            time.sleep(QUEUED)
        finally:
            sock.close()
        linked.link.drain()
        assert handler.events == ["web datagram, re-arm deferred: True", "sip datagram", "re-arm"]
        assert not linked.link.defer_rearm()  # outside a batch: now


async def test_a_transcoding_lane_armed_over_queued_packets_encodes_them_first(link: SrtpLink) -> None:
    """PCMU from the phone -> Opus to the browser: the queued packets go through the lane's codecs."""
    if "pcmu>opus" not in load_codecs():
        pytest.fail("the engine cannot transcode PCMU -> Opus (libopus not found)")
    s, native = link, link.linked.link.native
    for seq in (1, 2):
        s.phone_socket.sendto(s.phone.protect(rtp(seq, b"\xff" * 160)), s.linked.sip)
    time.sleep(QUEUED)
    assert native.arm(
        SIP_TO_WEB, s.phone_socket.getsockname(), s.browser_socket.getsockname(), 0x1234, 0, 111, 0, 0, 8000,
        48000, 0, time.monotonic(), CODECS["pcmu"], CODECS["opus"], -1, 3 * 960, 960, STATS_RFC3550, 8000, None,
        0,
    )  # fmt: skip
    heard = [RtpPacketView(s.browser_rx.unprotect(s.browser_socket.recv(2048))) for _ in range(2)]
    stamps = [struct.unpack_from("!BBHI", p.data)[1:] for p in heard]
    assert stamps == [(111, 200, 960), (111, 201, 1920)]  # payload type, sequence, timestamp (48 kHz)
    assert nothing_more(s.browser_socket)
    s.linked.link.drain()
    assert s.linked.handler.sip_rtp == []
    taken = snapshot(native, SIP_TO_WEB)
    assert taken is not None and (taken.packets, taken.transcoded, taken.sent) == (2, 2, 2)


async def test_a_lane_re_armed_between_pass_through_and_transcoding_keeps_working(link: SrtpLink) -> None:
    """The PCM buffer comes with the first transcoding arm (issue 14 memory) and outlives later re-arms:
    PCMU pass-through, PCMU -> Opus, pass-through again, Opus again - one packet each, each as armed."""
    if "pcmu>opus" not in load_codecs():
        pytest.fail("the engine cannot transcode PCMU -> Opus (libopus not found)")
    s, native = link, link.linked.link.native
    phone, browser = s.phone_socket.getsockname(), s.browser_socket.getsockname()
    heard = []
    for seq in (1, 2, 3, 4):
        if seq % 2:
            assert arm(s, SIP_TO_WEB, seq)
        else:
            assert native.arm(
                SIP_TO_WEB, phone, browser, 0x1234, 0, 111, 160 * (seq - 1), 0, 8000, 48000, 160 * (seq - 1),
                time.monotonic(), CODECS["pcmu"], CODECS["opus"], -1, 3 * 960, 960, STATS_RFC3550, 8000, None,
                seq - 1,
            )  # fmt: skip
        s.phone_socket.sendto(s.phone.protect(rtp(seq, b"\xff" * 160)), s.linked.sip)
        heard.append(RtpPacketView(s.browser_rx.unprotect(s.browser_socket.recv(2048))))
    as_sent = b"\xff" * 160
    assert [(p.data[1] & 0x7F, p.payload == as_sent) for p in heard] == [
        (0, True), (111, False), (0, True), (111, False)
    ]  # fmt: skip
    assert nothing_more(s.browser_socket)
    s.linked.link.drain()
    assert s.linked.handler.sip_rtp == []


async def test_a_python_behind_gets_at_most_a_window_of_each_directions_packets(link: SrtpLink) -> None:
    """Issue 38: 500 calls starting at once under load queued all their packets for Python until its
    lanes armed (50 000 a second), the loop stalled for seconds and every call was silent. A disarmed
    direction's RTP waits for Python at most PUNT_WINDOW (0.5 s) from the first one queued since its last
    drain (the first ones are what it needs to arm the lane); later ones are dropped and counted."""
    s, handler = link, link.linked.handler
    (engine,) = [e for e in link.linked.pool.engines if e.native is not None]
    drops = engine.native.queue_drops

    def both(seqs: range) -> None:
        for seq in seqs:
            s.phone_socket.sendto(s.phone.protect(rtp(seq, bytes([seq]) * 160)), s.linked.sip)
            s.browser_socket.sendto(s.browser_tx.protect(rtp(seq, bytes([seq]) * 160)), s.linked.web)

    both(range(1, 26))
    time.sleep(0.7)  # the loop does not run: Python is behind by more than the window
    both(range(26, 51))
    time.sleep(QUEUED)
    s.linked.link.drain()
    assert [RtpPacketView(p).seq for p in handler.sip_rtp] == list(range(1, 26))
    assert [RtpPacketView(p).seq for p in handler.web_rtp] == list(range(1, 26))
    assert engine.native.queue_drops - drops == 2 * 25
    both(range(51, 53))  # after a drain: queued again
    time.sleep(QUEUED)
    s.linked.link.drain()
    assert [RtpPacketView(p).seq for p in handler.sip_rtp[-2:]] == [51, 52]
