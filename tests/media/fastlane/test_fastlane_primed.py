"""A primed lane (issue 38): Python has had no packet of a direction yet, and the engine arms the lane on its
first packet when it is the one expected (source, payload type). The snapshot tells Python that packet's
SSRC, anchors and where it came from (``armed_from``, what the SIP leg latches to). Python priming the lane
again before it has read that snapshot - its own view being older than the engine's - keeps the lane armed
only when it asks for what the lane already is; either way the packets the engine took stay accounted for
Python's next snapshot. Real sockets, the real engine; the test holds the event loop (time.sleep)."""

from __future__ import annotations

import struct
import time

from gateway.media.fastlane.native import SIP_TO_WEB, STATS_RFC3550, Address, NativeLink, snapshot
from tests.media.fastlane.test_fastlane_arm import QUEUED, fast_lane_built, link
from tests.media.fastlane.test_fastlane_engine import RtpPacketView, SrtpLink, rtp

__all__ = ["fast_lane_built", "link"]  # the fixtures

ANCHOR_OUT = 5000  # where Python's timeline to the browser starts


def prime(native: NativeLink, source: Address, destination: Address, at: float = 0.0) -> bool:
    """Prime the phone's direction for PCMU (0) from ``source``: SSRC and input anchor left to the packet;
    ``at``: when the output timeline stood at ANCHOR_OUT (0: untimed, the first packet maps to it)."""
    armed: bool = native.arm(
        SIP_TO_WEB, source, destination, 0, 0, 0, 0, ANCHOR_OUT, 8000, 8000, 0, at, 0, 0, -1, 0, 0,
        STATS_RFC3550, 8000, None, -1, -1, -1, True,
    )  # fmt: skip
    return armed


def phone_sends(s: SrtpLink, seqs: range, ssrc: int = 0x4321) -> None:
    for seq in seqs:
        s.phone_socket.sendto(s.phone.protect(rtp(seq, bytes([seq]) * 160, ssrc=ssrc)), s.linked.sip)
    time.sleep(QUEUED)


def armed_by_the_phone(s: SrtpLink) -> tuple[NativeLink, Address, Address]:
    """The phone's direction primed from the phone's socket, then armed by its packets 7-9 (SSRC 0x4321):
    the link's native side, the phone's and the browser's addresses."""
    native = s.linked.link.native
    phone, browser = s.phone_socket.getsockname(), s.browser_socket.getsockname()
    prime(native, phone, browser)
    phone_sends(s, range(7, 10))
    return native, phone, browser


def browser_gets(s: SrtpLink, count: int) -> list[tuple[int, int, int]]:
    """(sequence number, timestamp, SSRC) of the next ``count`` packets the browser receives."""
    got = []
    for _ in range(count):
        data = RtpPacketView(s.browser_rx.unprotect(s.browser_socket.recv(2048))).data
        seq, ts, ssrc = struct.unpack_from("!HII", data, 2)
        got.append((seq, ts, ssrc))
    return got


async def test_a_primed_lane_is_armed_by_its_first_packet_and_says_where_it_came_from(link: SrtpLink) -> None:
    s, native = link, link.linked.link.native
    phone, browser = s.phone_socket.getsockname(), s.browser_socket.getsockname()
    assert not prime(native, phone, browser) and not native.armed(SIP_TO_WEB)
    phone_sends(s, range(7, 10))
    assert native.armed(SIP_TO_WEB) and native.self_arms() == (0, 1)
    # the browser's stream starts at Python's anchor, stamped as the phone's packets are spaced
    assert browser_gets(s, 3) == [(200 + n, ANCHOR_OUT + 160 * n, 0x6161) for n in range(3)]
    taken = snapshot(native, SIP_TO_WEB)
    assert taken is not None
    assert (taken.packets, taken.ssrc, taken.anchor_in, taken.anchor_out) == (3, 0x4321, 160 * 7, ANCHOR_OUT)
    assert taken.armed_from == phone and taken.reception.received == 3
    phone_sends(s, range(10, 11))
    later = snapshot(native, SIP_TO_WEB)
    assert later is not None and later.packets == 1 and later.armed_from is None  # told once


async def test_a_primed_lanes_output_timeline_runs_on_the_clock_until_its_first_packet(
    link: SrtpLink,
) -> None:
    """Primed at a time (Python's timeline, on which the reconnecting fill plays meanwhile, stood at
    ANCHOR_OUT then), the lane maps the first packet to where that timeline is at its arrival."""
    s, native = link, link.linked.link.native
    phone, browser = s.phone_socket.getsockname(), s.browser_socket.getsockname()
    primed_at = time.monotonic() - 0.5
    prime(native, phone, browser, at=primed_at)
    phone_sends(s, range(7, 9))
    (_, first_ts, _), (_, second_ts, _) = browser_gets(s, 2)
    assert 4000 <= first_ts - ANCHOR_OUT <= 4000 + 8000 * QUEUED, first_ts - ANCHOR_OUT  # 0.5 s on
    assert second_ts - first_ts == 160
    taken = snapshot(native, SIP_TO_WEB)
    assert taken is not None and taken.anchor_out == first_ts  # what Python adopts


async def test_a_first_packet_from_elsewhere_leaves_the_lane_to_python(link: SrtpLink) -> None:
    s, native, handler = link, link.linked.link.native, link.linked.handler
    browser = s.browser_socket.getsockname()
    assert not prime(native, ("127.0.0.1", 9), browser)  # the SDP said another port than the phone's
    phone_sends(s, range(1, 3))
    assert not native.armed(SIP_TO_WEB) and native.self_arms() == (0, 0)
    s.linked.link.drain()
    assert [RtpPacketView(p).seq for p in handler.sip_rtp] == [1, 2] and handler.snapshots == []


async def test_primed_again_as_it_is_the_lane_goes_on_with_what_its_first_packet_set(link: SrtpLink) -> None:
    """The engine armed the lane; Python, not having read that yet, primes it again with the same source,
    destination and codec (a re-INVITE answered the same, say): the lane stays armed, and the snapshot
    still has the packets, SSRC and anchors of the first packet."""
    s = link
    native, phone, browser = armed_by_the_phone(s)
    assert prime(native, phone, browser)  # True: armed (by the thread), kept
    phone_sends(s, range(10, 12))
    assert native.armed(SIP_TO_WEB) and native.self_arms() == (0, 1)
    assert browser_gets(s, 5) == [(200 + n, ANCHOR_OUT + 160 * n, 0x6161) for n in range(5)]
    taken = snapshot(native, SIP_TO_WEB)
    assert taken is not None
    assert (taken.packets, taken.ssrc, taken.anchor_in, taken.armed_from) == (5, 0x4321, 160 * 7, phone)


async def test_primed_again_for_another_source_the_next_packet_goes_to_python(link: SrtpLink) -> None:
    """The same race with the SDP having moved the phone meanwhile: the lane is disarmed (Python decides
    about the next packet and arms anew), and what the engine took from the first source stays accounted,
    with that source, for Python's snapshot."""
    s, handler = link, link.linked.handler
    native, phone, browser = armed_by_the_phone(s)
    assert not prime(native, ("127.0.0.1", 9), browser)
    assert not native.armed(SIP_TO_WEB)
    phone_sends(s, range(10, 11))
    assert len(browser_gets(s, 3)) == 3
    s.linked.link.drain()
    assert [RtpPacketView(p).seq for p in handler.sip_rtp] == [10]
    (taken,) = handler.snapshots
    assert (taken.packets, taken.ssrc, taken.anchor_in, taken.armed_from) == (3, 0x4321, 160 * 7, phone)
