"""The fast lane's engine driven directly (no bridge): a link over two real UDP sockets, what it hands
back to Python, malformed SRTP from the web side, bad arguments at every entry point, a closed link; a
link whose SIP leg has SRTP too (forwarded both ways, tampered packets dropped and counted, punted RTP
handed back decrypted exactly once, Python's own uses of the SIP sessions through the engine)."""

from __future__ import annotations

import array
import asyncio
import contextlib
import os
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pylibsrtp
import pytest

import sdp
from gateway.media.fastlane.engine import (
    PACK_LOAD,
    TRANSCODING_LOAD,
    EnginePool,
    FastLink,
    SerializedSrtp,
)
from gateway.media.fastlane.native import (
    DROPPED,
    SIP_DROPPED,
    SIP_TO_WEB,
    STATS_RFC3550,
    WEB_TO_SIP,
    Address,
    NativeLink,
    Snapshot,
    snapshot,
)
from gateway.media.rtp.srtp import SdesSrtp
from tests.media.fastlane.test_fastpath import require_fast_lane

KEY = bytes(range(30))  # SRTP master key + salt (AES_CM_128_HMAC_SHA1_80)


@pytest.fixture(autouse=True)
def fast_lane_built() -> None:
    require_fast_lane()


@dataclass
class Handler:
    """A LinkHandler that keeps what the engine hands back."""

    web_datagrams: list[bytes] = field(default_factory=list)
    web_rtp: list[bytes] = field(default_factory=list)
    web_rtcp: list[tuple[bytes, float, int, int | None]] = field(default_factory=list)  # decrypted SRTCP
    upstream: list[tuple[int, int] | None] = field(
        default_factory=list
    )  # the SIP side's loss at each arrival
    sip_datagrams: list[bytes] = field(default_factory=list)
    sip_rtp: list[bytes] = field(default_factory=list)  # decrypted by the engine
    snapshots: list[Snapshot] = field(default_factory=list)
    rearmed: int = 0
    failed: bool = False

    def fast_sync(self, native: NativeLink) -> None:
        for which in (WEB_TO_SIP, SIP_TO_WEB):
            taken = snapshot(native, which)
            if taken is not None:
                self.snapshots.append(taken)

    @property
    def forwarded(self) -> int:
        """Packets the engine accounted as forwarded, both ways."""
        return sum(s.packets for s in self.snapshots)

    def fast_web_datagram(self, data: bytes, source: Address) -> None:
        self.web_datagrams.append(data)

    def fast_web_rtp(self, data: bytes) -> None:
        self.web_rtp.append(data)

    def fast_web_rtcp(
        self,
        data: bytes,
        late: float,
        packets: int,
        octets: int | None,
        upstream: tuple[int, int] | None = None,
    ) -> None:
        self.web_rtcp.append((data, late, packets, octets))
        self.upstream.append(upstream)

    def fast_sip_datagram(self, data: bytes, source: Address) -> None:
        self.sip_datagrams.append(data)

    def fast_sip_rtp(self, data: bytes, source: Address) -> None:
        self.sip_rtp.append(data)

    def fast_video_sip_datagram(self, data: bytes, source: Address, decrypted: bool) -> None:
        pass

    def fast_rearm(self) -> None:
        self.rearmed += 1

    def fast_failed(self) -> None:
        self.failed = True


class Quiet(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append(data)


@dataclass
class Linked:
    pool: EnginePool
    link: FastLink
    handler: Handler
    web: tuple[str, int]  # the web socket's address (what a browser sends to)
    sip: tuple[str, int]
    web_protocol: Quiet
    restored: list[tuple[int, int]]


def rtp(seq: int, payload: bytes = b"\xff" * 160, pt: int = 0, ssrc: int = 0x1234) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq, 160 * seq, ssrc) + payload


@contextlib.asynccontextmanager
async def open_link(
    sip_srtp: SdesSrtp | None = None,
    handler: Handler | None = None,
    host: str = "127.0.0.1",
    latency: bool = False,
) -> AsyncIterator[Linked]:
    loop = asyncio.get_running_loop()
    web_t, web_p = await loop.create_datagram_endpoint(Quiet, local_addr=(host, 0))
    sip_t, _ = await loop.create_datagram_endpoint(Quiet, local_addr=(host, 0))
    rx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    policy = pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    policy.allow_repeat_tx = True  # as aiortc's web leg: video's retransmission goes again ...
    tx = pylibsrtp.Session(policy)
    audio = pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_SPECIFIC, ssrc_value=0x6161)
    tx.add_stream(audio)  # ... and the audio's SSRC (below) refuses a repeat, as aiortc_srtp makes it
    pool = EnginePool(workers=1)
    handler = handler or Handler()
    restored: list[tuple[int, int]] = []

    def install(native: NativeLink) -> Callable[[tuple[int, int]], None]:
        native.set_output(WEB_TO_SIP, 0x80, 0x5151, 100)
        native.set_output(SIP_TO_WEB, 0x90, 0x6161, 200, b"\xbe\xde\x00\x01\x10\xaa\x00\x00")
        return restored.append

    link = pool.link(
        handler, call_id="engine-test", web_transport=web_t, sip_transport=sip_t, sessions=(rx, tx),
        install=install, sip_sessions=sip_srtp.sessions if sip_srtp is not None else None, latency=latency,
    )  # fmt: skip
    try:
        yield Linked(pool, link, handler, web_t.get_extra_info("sockname"), sip_t.get_extra_info("sockname"),
                     web_p, restored)  # fmt: skip
    finally:
        link.close()
        pool.close()
        web_t.close()
        sip_t.close()


@pytest.fixture
async def linked() -> AsyncIterator[Linked]:
    async with open_link() as link:
        yield link


async def settle(link: FastLink, condition: Callable[[], bool], timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("the engine did not hand the datagram back")
        link.drain()
        link.sync()
        await asyncio.sleep(0.01)


async def test_malformed_srtp_from_the_browser_is_dropped_and_counted(linked: Linked) -> None:
    browser = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for seq in range(20):  # RTP-looking datagrams that do not authenticate, and truncated ones
            browser.sendto(rtp(seq) + b"\x00" * 10, linked.web)
            browser.sendto(b"\x80\x00", linked.web)
        sender = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
        good = sender.protect(rtp(100))
        browser.sendto(good, linked.web)  # a good one after them still gets through (to Python: no lane)
        await settle(linked.link, lambda: bool(linked.handler.web_rtp))
    finally:
        browser.close()
    assert linked.link.native.counters()[DROPPED] >= 20
    assert linked.handler.web_rtp == [rtp(100)]  # decrypted by the engine, handed to Python
    assert not linked.handler.failed and not linked.link.native.closed
    assert linked.handler.rearmed >= 1  # a datagram left to Python lets the owner re-arm


async def test_stun_and_plain_rtp_go_back_to_python(linked: Linked) -> None:
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        stun = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12)
        peer.sendto(stun, linked.web)
        peer.sendto(rtp(7), linked.sip)
        await settle(linked.link, lambda: bool(linked.handler.web_datagrams and linked.handler.sip_datagrams))
    finally:
        peer.close()
    assert linked.handler.web_datagrams == [stun]
    assert linked.handler.sip_datagrams == [rtp(7)]
    assert linked.web_protocol.received == []  # asyncio did not read the linked socket


async def test_rtcp_and_stun_go_to_python_without_a_sync_or_a_rearm(linked: Linked) -> None:
    """RTCP and STUN (a few a second per call: reports, consent checks) read no counter the engine keeps
    and change no lane: handed over without a snapshot or a re-arm; DTLS after them gets both."""
    syncs = [0]
    fast_sync = linked.handler.fast_sync

    def counted(native: NativeLink) -> None:
        syncs[0] += 1
        fast_sync(native)

    linked.handler.fast_sync = counted  # type: ignore[method-assign]
    handler = linked.handler
    pli = struct.pack("!BBHII", 0x81, 206, 2, 0x1234, 0x5678)  # RFC 4585 §6.3.1: the browser's feedback
    browser = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    sender_report = struct.pack("!BBHIQIII", 0x80, 200, 6, 0x1234, 0, 0, 0, 0)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    async def handed(condition: Callable[[], bool]) -> None:
        for _ in range(200):
            linked.link.drain()  # as the engine's eventfd does: no sync of its own
            if condition():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the engine did not hand the datagram back")

    try:
        peer.sendto(browser.protect_rtcp(pli), linked.web)
        peer.sendto(sender_report, linked.sip)
        await handed(lambda: bool(handler.web_rtcp and handler.sip_datagrams))
        assert ([r[0] for r in handler.web_rtcp], handler.sip_datagrams) == ([pli], [sender_report])
        assert syncs[0] == 0 and handler.rearmed == 0
        peer.sendto(b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12), linked.web)  # STUN
        await handed(lambda: len(handler.web_datagrams) == 1)
        assert syncs[0] == 0 and handler.rearmed == 0
        peer.sendto(b"\x15\xfe\xfd" + bytes(10), linked.web)  # a DTLS alert record (RFC 7983: 20-63)
        await handed(lambda: len(handler.web_datagrams) == 2)
        assert syncs[0] == 1 and handler.rearmed == 1
    finally:
        peer.close()


async def test_reports_and_consent_checks_wait_a_little_for_python(linked: Linked) -> None:
    """RTCP and STUN left to Python may wait NOTIFY_DELAY (10 ms) in the queue, so that one wake-up of
    the event loop carries many calls' (the engine's eventfd is written that much later); RTP left to
    Python wakes it as soon as the engine's round ends."""
    loop = asyncio.get_running_loop()
    fd = linked.link._engine.native.notify_fd
    loop.remove_reader(fd)  # the test watches the eventfd itself
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    async def readable() -> float:
        """Seconds until the eventfd is readable (an engine's notification)."""
        woken = loop.create_future()
        start = time.monotonic()

        def notified() -> None:
            if not woken.done():
                woken.set_result(time.monotonic() - start)

        loop.add_reader(fd, notified)
        try:
            return await asyncio.wait_for(woken, 2.0)
        finally:
            loop.remove_reader(fd)

    try:
        receiver_report = struct.pack("!BBHI", 0x80, 201, 1, 0x1234)  # RR (RFC 3550 §6.4.2)
        stun = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12)  # a STUN binding request
        # (the browser's SRTCP reports are not queued at all: test_fastlane_reports.py)
        for datagram, where in ((receiver_report, linked.sip), (stun, linked.web)):
            waiting = asyncio.ensure_future(readable())
            await asyncio.sleep(0)
            peer.sendto(datagram, where)
            assert await waiting >= 0.005  # load only makes it later
            linked.link.drain()
        assert (linked.handler.sip_datagrams, linked.handler.web_datagrams) == ([receiver_report], [stun])
        waiting = asyncio.ensure_future(readable())
        await asyncio.sleep(0)
        peer.sendto(rtp(9), linked.sip)  # RTP without an armed lane: Python's at once
        await waiting
        linked.link.drain()
        assert linked.handler.sip_datagrams == [receiver_report, rtp(9)]
    finally:
        peer.close()
        loop.add_reader(fd, linked.link._engine.drain)


async def test_closed_link_refuses_work_and_gives_the_sockets_back(linked: Linked) -> None:
    native = linked.link.native
    linked.link.close()
    linked.link.close()  # idempotent
    assert native.closed and linked.restored == [(100, 200)]  # the outputs' next sequence numbers
    assert linked.pool.engines == []  # the engine stopped with its last link
    with pytest.raises(ValueError, match="closed"):
        native.send(WEB_TO_SIP, linked.sip, False, 0, 0, b"x")
    with pytest.raises(ValueError, match="closed"):
        native.srtp(0, rtp(1))
    assert native.counters() == (0, 0, 0, 0, 0, 0)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        peer.sendto(b"back to asyncio", linked.web)
        await asyncio.sleep(0.1)
    finally:
        peer.close()
    assert linked.web_protocol.received == [b"back to asyncio"]
    linked.pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        linked.pool.acquire()


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda n, a: n.set_output(2, 0x80, 1, 1), ValueError),  # which is 0 or 1
        (lambda n, a: n.set_output(0, 0x80, 1, 70000), ValueError),  # 16-bit sequence
        (lambda n, a: n.set_output(0, 0x90, 1, 1, b"\x00" * 3), ValueError),  # extension in 32-bit words
        (lambda n, a: n.arm(0, a, a, 1, 200, 0, 0, 0, 8000, 8000, 0, 0.0, 0, 0, 0, 0, 160), ValueError),
        (lambda n, a: n.arm(0, a, a, 1, 0, 0, 0, 0, 0, 8000, 0, 0.0, 0, 0, 0, 0, 160), ValueError),  # rate 0
        (lambda n, a: n.arm(0, "host", a, 1, 0, 0, 0, 0, 8000, 8000, 0, 0.0, 0, 0, 0, 0, 160), TypeError),
        (lambda n, a: n.send(0, a, False, 128, 0, b"x"), ValueError),  # payload type
        (lambda n, a: n.send(5, a, False, 0, 0, b"x"), ValueError),
        (lambda n, a: n.srtp(9, b"x"), ValueError),  # op 0-3
        (lambda n, a: n.srtp(0, b"x" * 2000), ValueError),  # larger than a datagram
        (lambda n, a: n.srtp(9, b"x", True), ValueError),  # op 0-3 on the SIP leg's sessions too
        (lambda n, a: n.disarm(3), ValueError),
        (lambda n, a: n.sequence(-1), ValueError),
    ],
)
async def test_bad_arguments_raise_clear_errors(
    linked: Linked, call: Callable[[NativeLink, Address], object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        call(linked.link.native, linked.sip)
    assert not linked.link.native.closed  # the link still works after a refused call
    assert linked.link.native.sequence(WEB_TO_SIP) == 100


async def test_pass_through_calls_are_packed_and_transcoding_ones_spread() -> None:
    """EnginePool.acquire: a pass-through call goes to the busiest thread below PACK_LOAD (busy enough to
    gather its packets), a transcoding one (TRANSCODING_LOAD) to the least loaded; at most ``workers``."""
    pool = EnginePool(workers=2)
    try:
        first = pool.acquire(passthrough=True)
        first.load = 10
        assert pool.acquire(passthrough=True) is first
        second = pool.acquire()  # transcoding: another thread while there may be one
        assert second is not first and len(pool.engines) == 2
        second.load = TRANSCODING_LOAD
        assert pool.acquire(passthrough=True) is first  # the busier one below PACK_LOAD
        assert pool.acquire() is second  # the less loaded
        first.load = PACK_LOAD
        assert pool.acquire(passthrough=True) is second  # the first is full
        second.load = PACK_LOAD + 1
        assert pool.acquire(passthrough=True) is first  # all full, no more workers: the least loaded
        assert len(pool.engines) == 2
    finally:
        for engine in pool.engines:
            engine.load = 0
        pool.close()


async def test_the_engine_threads_are_named_for_top_and_proc() -> None:
    """An operator's ``top -H`` (and a benchmark's per-thread CPU) tells the media engine threads apart
    from the event loop's: each is named ``fastlane`` in /proc/<pid>/task/<tid>/comm."""
    from gateway.media.fastlane import _fastlane  # type: ignore[attr-defined]

    def named() -> int:
        tasks = Path(f"/proc/{os.getpid()}/task")
        return sum(
            1 for t in tasks.iterdir() if (t / "comm").read_text().strip() == _fastlane.ENGINE_THREAD_NAME
        )

    before = named()
    pool = EnginePool(workers=2)
    try:
        pool.acquire().load = TRANSCODING_LOAD  # the next call goes to a second thread
        pool.acquire()
        assert len(pool.engines) == 2
        assert named() == before + 2
    finally:
        for engine in pool.engines:
            engine.load = 0
        pool.close()
    assert _fastlane.ENGINE_THREAD_NAME == "fastlane"


def test_pool_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="workers"):
        EnginePool(workers=0)
    pool = EnginePool()
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.acquire()


async def test_engine_refuses_bad_link_arguments() -> None:
    pool = EnginePool(workers=1)
    try:
        engine = pool.acquire()
        with pytest.raises(TypeError):
            engine.native.link("one", 1, 2, 0, 0, None)
        with pytest.raises(ValueError, match="both"):  # the SIP leg's sessions: both or neither
            engine.native.link(1, 1, 2, 0, 0, None, 1234, 0)
    finally:
        pool.close()
    assert pool.engines == []


# ------------------------------------------------------------------------- SRTP on the SIP leg

GATEWAY_KEY, PHONE_KEY = sdp.Crypto.new(), sdp.Crypto.new()


@dataclass
class SrtpLink:
    linked: Linked
    gateway: SdesSrtp  # the SIP leg's SRTP the engine holds
    phone: SdesSrtp  # the phone's side of it (its own key protects, ours unprotects)
    browser_rx: pylibsrtp.Session  # what the browser would unprotect with
    browser_tx: pylibsrtp.Session
    phone_socket: socket.socket
    browser_socket: socket.socket


@pytest.fixture
async def srtp_link() -> AsyncIterator[SrtpLink]:
    async with open_srtp_link() as link:
        yield link


@contextlib.asynccontextmanager
async def open_srtp_link() -> AsyncIterator[SrtpLink]:
    gateway = SdesSrtp(GATEWAY_KEY, PHONE_KEY)
    async with open_link(gateway) as linked:
        phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        browser = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        phone.bind(("127.0.0.1", 0))
        browser.bind(("127.0.0.1", 0))
        phone.settimeout(2.0)
        browser.settimeout(2.0)
        try:
            yield SrtpLink(
                linked, gateway, SdesSrtp(PHONE_KEY, GATEWAY_KEY),
                pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND)),
                pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)),
                phone, browser,
            )  # fmt: skip
        finally:
            phone.close()
            browser.close()


def arm_both(s: SrtpLink, first_seq: int) -> None:
    """Lanes for SSRC 0x1234 PCMU from the phone's and the browser's sockets, timestamps 160 * seq."""
    native, now = s.linked.link.native, time.monotonic()
    phone, browser = s.phone_socket.getsockname(), s.browser_socket.getsockname()
    last = 160 * (first_seq - 1)
    for which, source, destination in ((SIP_TO_WEB, phone, browser), (WEB_TO_SIP, browser, phone)):
        assert native.arm(
            which, source, destination, 0x1234, 0, 0, 0, 0, 8000, 8000, last, now, 0, 0, -1, 0, 0
        )


async def receive(sock: socket.socket) -> bytes:
    return await asyncio.get_running_loop().run_in_executor(None, sock.recv, 2048)


async def test_the_link_counts_why_its_lanes_were_disarmed(srtp_link: SrtpLink) -> None:
    """Link.disarms (bench/vs_rtpengine.py prints their sums): per lane, the thread's disarms at a timestamp
    jump and for a packet of another SSRC, and Python's own (disarm() of an armed lane)."""
    s, native = srtp_link, srtp_link.linked.link.native
    assert native.disarms() == (0, 0, 0, 0, 0, 0)
    arm_both(s, 10)
    s.phone_socket.sendto(s.phone.protect(rtp(10)), s.linked.sip)
    await receive(s.browser_socket)  # forwarded by the lane
    s.phone_socket.sendto(s.phone.protect(rtp(11 + 8000)), s.linked.sip)  # 160 s on: a new timeline
    await settle(s.linked.link, lambda: not native.armed(SIP_TO_WEB))
    s.linked.link.drain()  # the packet the lane refused (else the next arm would try it first: a jump)
    assert native.disarms() == (0, 0, 0, 1, 0, 0)
    arm_both(s, 12)
    s.phone_socket.sendto(s.phone.protect(rtp(12, ssrc=0x9999)), s.linked.sip)  # another source
    await settle(s.linked.link, lambda: not native.armed(SIP_TO_WEB))
    s.linked.link.drain()
    assert native.disarms() == (0, 0, 0, 1, 1, 0)
    native.disarm(WEB_TO_SIP)  # armed: counted
    native.disarm(WEB_TO_SIP)  # not armed any more: not counted
    assert native.disarms() == (0, 0, 1, 1, 1, 0)


async def test_sip_leg_srtp_is_forwarded_natively_both_ways(srtp_link: SrtpLink) -> None:
    s, native = srtp_link, srtp_link.linked.link.native
    arm_both(s, 10)
    for seq in range(10, 15):
        s.phone_socket.sendto(s.phone.protect(rtp(seq, bytes([seq]) * 160)), s.linked.sip)
        to_browser = RtpPacketView(s.browser_rx.unprotect(await receive(s.browser_socket)))
        assert (to_browser.ssrc, to_browser.seq, to_browser.payload) == (
            0x6161,
            200 + seq - 10,
            bytes([seq]) * 160,
        )
        s.browser_socket.sendto(s.browser_tx.protect(rtp(seq, bytes([seq + 100]) * 160)), s.linked.web)
        to_phone = RtpPacketView(s.phone.unprotect(await receive(s.phone_socket)))  # our key, SRTP
        assert (to_phone.ssrc, to_phone.seq, to_phone.payload) == (
            0x5151,
            100 + seq - 10,
            bytes([seq + 100]) * 160,
        )
    await settle(s.linked.link, lambda: s.linked.handler.forwarded == 10)
    assert native.counters()[1:3] == (5, 5) and native.counters()[SIP_DROPPED] == 0
    assert native.armed(SIP_TO_WEB) and native.armed(WEB_TO_SIP)
    assert not s.linked.handler.sip_rtp and not s.linked.handler.sip_datagrams  # nothing left to Python
    # Python's own packet to the phone (a DTMF event, say) goes out with the engine's sequence and SRTP
    assert native.send(WEB_TO_SIP, s.phone_socket.getsockname(), True, 101, 0, b"\x05\x0a\x00\xa0") == 105
    assert RtpPacketView(s.phone.unprotect(await receive(s.phone_socket))).payload == b"\x05\x0a\x00\xa0"


async def test_tampered_srtp_from_the_sip_side_is_dropped_counted_and_the_next_good_one_delivered(
    srtp_link: SrtpLink,
) -> None:
    s, native = srtp_link, srtp_link.linked.link.native
    arm_both(s, 1)
    good = s.phone.protect(rtp(1, b"\x11" * 160))
    tampered = bytearray(s.phone.protect(rtp(2, b"\x22" * 160)))
    tampered[20] ^= 0xFF  # one payload bit flipped: the authentication tag no longer matches
    s.phone_socket.sendto(good, s.linked.sip)
    s.phone_socket.sendto(bytes(tampered), s.linked.sip)
    s.phone_socket.sendto(good, s.linked.sip)  # a replay: libsrtp refuses it too
    s.phone_socket.sendto(s.phone.protect(rtp(3, b"\x33" * 160)), s.linked.sip)
    heard = [RtpPacketView(s.browser_rx.unprotect(await receive(s.browser_socket))).payload for _ in range(2)]
    assert heard == [b"\x11" * 160, b"\x33" * 160]
    await settle(s.linked.link, lambda: s.linked.handler.forwarded == 2)
    assert native.counters()[SIP_DROPPED] == 2 and native.counters()[DROPPED] == 0
    assert native.armed(SIP_TO_WEB)  # a dropped packet does not disarm the lane
    assert not s.linked.handler.sip_rtp and not s.linked.handler.sip_datagrams


async def test_punted_sip_rtp_arrives_decrypted_exactly_once(srtp_link: SrtpLink) -> None:
    s, handler = srtp_link, srtp_link.linked.handler
    sent = [s.phone.protect(rtp(seq, bytes([seq]) * 160)) for seq in range(1, 4)]  # no lane armed
    rtcp = s.phone.protect_rtcp(struct.pack("!BBHI", 0x80, 201, 1, 0x1234))  # an SRTCP receiver report
    for packet in (*sent, rtcp):
        s.phone_socket.sendto(packet, s.linked.sip)
    await settle(s.linked.link, lambda: len(handler.sip_rtp) == 3 and len(handler.sip_datagrams) == 1)
    await asyncio.sleep(0.1)
    s.linked.link.drain()
    assert handler.sip_rtp == [rtp(seq, bytes([seq]) * 160) for seq in range(1, 4)]  # once each, plain
    assert handler.sip_datagrams == [rtcp]  # SRTCP is Python's, as on the web leg
    # Python unprotects through the engine (the stand-in the endpoint uses while linked): SRTCP works, a
    # second unprotect of what the engine already unprotected is a replay
    stand_in = SerializedSrtp(s.linked.link.native, s.gateway, sip=True)
    assert stand_in.sessions == s.gateway.sessions
    assert stand_in.unprotect_rtcp(rtcp) == struct.pack("!BBHI", 0x80, 201, 1, 0x1234)
    with pytest.raises(pylibsrtp.Error):
        stand_in.unprotect(sent[0])
    assert s.phone.unprotect(stand_in.protect(rtp(50))) == rtp(50)
    report = struct.pack("!BBHI", 0x80, 201, 1, 0x5151)
    assert s.phone.unprotect_rtcp(stand_in.protect_rtcp(report)) == report
    # while the link closes, what it queued is handled (SRTCP a DirectReceiver unprotects at once):
    # the stand-in goes to the sessions themselves, which the thread no longer uses
    s.linked.link.native.close()
    later = struct.pack("!BBHI", 0x80, 201, 1, 0x7777)
    assert stand_in.unprotect_rtcp(s.phone.protect_rtcp(later)) == later
    assert s.phone.unprotect(stand_in.protect(rtp(51))) == rtp(51)


async def test_a_link_without_sip_sessions_refuses_python_sip_srtp(linked: Linked) -> None:
    stand_in = SerializedSrtp(linked.link.native, None, sip=True)
    with pytest.raises(pylibsrtp.Error):
        stand_in.protect(rtp(1))
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:  # plain RTP from the SIP side is handed back raw, as before
        peer.sendto(rtp(7), linked.sip)
        await settle(linked.link, lambda: bool(linked.handler.sip_datagrams))
    finally:
        peer.close()
    assert linked.handler.sip_datagrams == [rtp(7)] and linked.handler.sip_rtp == []


@dataclass(frozen=True)
class RtpPacketView:
    """The fields of a plain RTP packet these tests look at (no extension, as the phone's)."""

    data: bytes

    @property
    def seq(self) -> int:
        return int(struct.unpack_from("!H", self.data, 2)[0])

    @property
    def ssrc(self) -> int:
        return int(struct.unpack_from("!I", self.data, 8)[0])

    @property
    def payload(self) -> bytes:
        extension = 4 + 4 * struct.unpack_from("!H", self.data, 14)[0] if self.data[0] & 0x10 else 0
        return self.data[12 + extension :]


async def test_forwarded_packets_are_accounted_in_the_engine_and_read_as_snapshots(
    srtp_link: SrtpLink,
) -> None:
    s, native, handler = srtp_link, srtp_link.linked.link.native, srtp_link.linked.handler
    arm_both(s, 10)
    for seq in (10, 11, 13, 14, 15):  # 12 lost
        s.phone_socket.sendto(s.phone.protect(rtp(seq, bytes([seq]) * 160)), s.linked.sip)
        await receive(s.browser_socket)
    await settle(s.linked.link, lambda: handler.forwarded == 5)
    (taken,) = handler.snapshots
    assert (taken.packets, taken.forwarded, taken.lost, taken.sent, taken.octets) == (5, 5, 1, 5, 800)
    assert (taken.ssrc, taken.pt, taken.ts, taken.mapped, taken.last_seq) == (0x1234, 0, 2400, 2400, 15)
    assert taken.reception[:5] == (5, 10, 15, 65537, 0) and taken.departure >= taken.arrival > 0
    assert not handler.sip_rtp and not handler.sip_datagrams  # nothing queued per forwarded packet
    assert snapshot(native, SIP_TO_WEB) is None and snapshot(native, WEB_TO_SIP) is None  # nothing new
    # while the lane is armed the engine holds the statistics: arm() again does not import Python's
    now, phone, browser = time.monotonic(), s.phone_socket.getsockname(), s.browser_socket.getsockname()
    other = taken.reception._replace(received=999)
    args = (SIP_TO_WEB, phone, browser, 0x1234, 0, 0, 0, 0, 8000, 8000, 2400, now, 0, 0, -1, 0, 0)
    assert native.arm(*args, STATS_RFC3550, 8000, other, 15)
    s.phone_socket.sendto(s.phone.protect(rtp(16)), s.linked.sip)
    await receive(s.browser_socket)
    await settle(s.linked.link, lambda: handler.forwarded == 6)
    assert handler.snapshots[-1].reception.received == 6
    # a snapshot of a disarmed lane hands them back: the next arm() continues from Python's
    native.disarm(SIP_TO_WEB)
    assert snapshot(native, SIP_TO_WEB) is None
    assert native.arm(*args[:10], 2560, now, 0, 0, -1, 0, 0, STATS_RFC3550, 8000, other, 16)
    s.phone_socket.sendto(s.phone.protect(rtp(17)), s.linked.sip)
    await receive(s.browser_socket)
    await settle(s.linked.link, lambda: handler.forwarded == 7)
    assert handler.snapshots[-1].reception.received == 1000 and handler.snapshots[-1].lost == 0


async def test_a_kept_report_carries_the_sip_sides_loss_at_its_arrival(srtp_link: SrtpLink) -> None:
    """The browser's report compound kept for Python's next sync comes with the SIP side's stream's
    cumulative loss when it arrived (RFC 3550 A.3 of the lane's live statistics): the gaps the report
    counts that the phone's path lost (own_loss.py). None while that lane is not armed (Python's
    statistics are the live ones then)."""
    s, native, handler = srtp_link, srtp_link.linked.link.native, srtp_link.linked.handler
    browser = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))

    async def report(highest: int) -> tuple[int, int] | None:
        block = struct.pack("!IIIIII", 0x6161, highest, highest, 0, 0, 0)  # (its cumulative loss: 0, 0...)
        receiver_report = struct.pack("!BBHI", 0x81, 201, 7, 0x4321) + block
        count = len(handler.web_rtcp)
        s.browser_socket.sendto(browser.protect_rtcp(receiver_report), s.linked.web)
        await settle(s.linked.link, lambda: len(handler.web_rtcp) > count)
        return handler.upstream[-1]

    assert await report(1) is None  # no lane to the browser armed
    arm_both(s, 10)
    assert await report(2) is None  # armed, no packet from the phone yet
    for seq in (10, 11, 13, 14, 17):  # 12, 15 and 16 lost on the phone's path
        s.phone_socket.sendto(s.phone.protect(rtp(seq)), s.linked.sip)
        await receive(s.browser_socket)
    assert await report(3) == (0x1234, 3)
    native.disarm(SIP_TO_WEB)
    assert await report(4) is None
    # armed again with Python's statistics (it had the stream since): the engine counts on from its loss
    taken = handler.snapshots[-1].reception._replace(received=100, base_seq=0, max_seq=119)  # 20 lost
    now, phone, web = time.monotonic(), s.phone_socket.getsockname(), s.browser_socket.getsockname()
    args = (SIP_TO_WEB, phone, web, 0x1234, 0, 0, 0, 0, 8000, 8000, 160 * 119, now, 0, 0, -1, 0, 0)
    assert native.arm(*args, STATS_RFC3550, 8000, taken, 119)
    for seq in (120, 122):
        s.phone_socket.sendto(s.phone.protect(rtp(seq)), s.linked.sip)
        await receive(s.browser_socket)
    assert await report(5) == (0x1234, 21)


async def test_the_engine_reads_the_clock_per_packet_only_for_a_latency_meter(srtp_link: SrtpLink) -> None:
    """Engine.latency: off (a gateway's calls measure no latency) a forwarded packet's departure is its
    round's time (its arrival the kernel's) and no sample is kept, so no clock is read per packet; a call whose meter is on
    (EnginePool.link(latency=True), a benchmark's) turns it on, and each packet's arrival -> departure is
    sampled again."""
    s, native, handler = srtp_link, srtp_link.linked.link.native, srtp_link.linked.handler
    engine = s.linked.pool.engines[0].native
    assert engine.latency is False
    arm_both(s, 10)
    for seq in (10, 11):
        s.phone_socket.sendto(s.phone.protect(rtp(seq)), s.linked.sip)
        await receive(s.browser_socket)
    await settle(s.linked.link, lambda: handler.forwarded == 2)
    taken = handler.snapshots[-1]
    # the arrival is the kernel's (SO_TIMESTAMPNS), the departure the round's time: no clock read per packet
    assert 0 < taken.arrival <= taken.departure < taken.arrival + 1.0, taken
    s.phone_socket.sendto(s.phone.protect(rtp(12)), s.linked.sip)
    await receive(s.browser_socket)
    assert (quiet := snapshot(native, SIP_TO_WEB, latency=True)) is not None and quiet.latency == b""
    engine.latency = True
    for seq in (13, 14):
        s.phone_socket.sendto(s.phone.protect(rtp(seq)), s.linked.sip)
        await receive(s.browser_socket)
    measured = snapshot(native, SIP_TO_WEB, latency=True)
    assert measured is not None and measured.latency is not None
    samples = array.array("d", measured.latency)
    assert len(samples) == 2 and all(0 <= sample < 1.0 for sample in samples), samples
    assert measured.departure > measured.arrival
    with pytest.raises(TypeError):
        del engine.latency


async def test_a_call_that_measures_latency_turns_its_engine_s_clock_reads_on() -> None:
    """EnginePool.link(latency=True), as the fast-lane controller links a call whose bridge measures."""
    async with open_link(latency=True) as linked:
        assert linked.pool.engines[0].native.latency is True
    async with open_link() as linked:
        assert linked.pool.engines[0].native.latency is False


async def test_the_thread_times_its_rounds_and_its_waits_for_the_lock(linked: Linked) -> None:
    """Engine.timing (bench/scale_bench.py prints it): what delays a packet inside the engine - a wait
    for the lock Python holds, a round that holds it while it handles other calls' packets."""
    engine = linked.pool.engines[0].native
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        peer.sendto(rtp(7), linked.sip)
        await settle(linked.link, lambda: bool(linked.handler.sip_datagrams))
    finally:
        peer.close()
    lock_waits, longest_wait, long_rounds, longest_round = engine.timing
    assert isinstance(lock_waits, int) and isinstance(long_rounds, int)
    assert 0 < longest_round < 1.0  # the round that read the datagram, timed
    assert 0 <= longest_wait < 1.0


async def all_in(linked: Linked, quiet: float = 0.3, timeout: float = 10.0) -> int:
    """Drain until no more of a burst comes (none for ``quiet`` seconds); how many Python got. On a loaded
    machine the kernel may drop some of a 10 000-a-second burst (the socket's buffer full while the engine
    thread waits for a CPU), so the bursts' tests wait for the end, not for a count."""
    loop, handler = asyncio.get_running_loop(), linked.handler
    deadline, count, since = loop.time() + timeout, -1, loop.time()
    while loop.time() < deadline:
        linked.link.drain()
        linked.link.sync()
        if len(handler.sip_datagrams) != count:
            count, since = len(handler.sip_datagrams), loop.time()
        elif loop.time() - since >= quiet:
            break
        await asyncio.sleep(0.01)
    return count


def _send(address: tuple[str, int], count: int, burst: int, pause: float) -> None:
    """``count`` RTP packets to ``address``, ``burst`` at a time then ``pause`` seconds (a thread)."""
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for seq in range(count):
            peer.sendto(rtp(seq), address)
            if seq % burst == burst - 1:
                time.sleep(pause)
    finally:
        peer.close()


async def test_a_busy_thread_gathers_packets_and_a_quiet_one_does_not(linked: Linked) -> None:
    """Engine.coalesce (_fastlane_thread.c gather; media.fast_path_coalesce_ms): a thread reading thousands of
    packets a second waits up to 1 ms after a round so that the next round takes several (``coalesced``
    counts those waits) and drops none itself; at 50 a second it never waits (the wait would gather nothing). Three
    waits of 64 that end over 0.5 ms late (the CPUs busy with other processes: ``overslept``) stop the waits
    for a second, so on a loaded machine a busy thread may wait only a few times."""
    engine = linked.pool.engines[0].native
    assert engine.coalesce == pytest.approx(0.001)  # EnginePool's default (COALESCE)
    loop, handler = asyncio.get_running_loop(), linked.handler
    await loop.run_in_executor(None, _send, linked.sip, 25, 1, 0.02)  # one call's 50 packets a second
    await settle(linked.link, lambda: len(handler.sip_datagrams) == 25)
    assert engine.coalesced == 0
    await loop.run_in_executor(None, _send, linked.sip, 4000, 20, 0.002)  # ~10 000 a second
    assert await all_in(linked) > 3000
    busy = engine.coalesced
    assert busy >= 10 or engine.overslept >= 3, (busy, engine.overslept)
    assert engine.overslept <= busy
    engine.coalesce = 0  # off: each round as packets come
    await loop.run_in_executor(None, _send, linked.sip, 2000, 20, 0.002)
    assert await all_in(linked) > 4500
    assert engine.coalesced == busy
    assert linked.link.native.counters()[DROPPED] == 0


async def test_late_waits_pause_the_gathering_and_it_comes_back_after(linked: Linked) -> None:
    """Three late waits (``gather_late`` 0 here: every wait is late, as when other processes keep the CPUs
    busy) stop the waits for a second. A lull forgets the late waits counted: the next burst waits three
    times again before it stops (then for two seconds, the pause coming within ten of the last)."""
    engine = linked.pool.engines[0].native
    assert engine.gather_late == pytest.approx(0.0005)  # _fastlane.h GATHER_LATE
    engine.gather_late = 0.0
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, _send, linked.sip, 4000, 20, 0.002)  # ~10 000 a second for ~0.4 s
    assert await all_in(linked) > 3000
    assert engine.coalesced == engine.overslept == 3  # then no wait for the rest of the burst
    await asyncio.sleep(1.2)  # the pause ends
    await loop.run_in_executor(None, _send, linked.sip, 4000, 20, 0.002)
    assert await all_in(linked) > 6000
    assert engine.coalesced == engine.overslept == 6
    assert linked.link.native.counters()[DROPPED] == 0
    with pytest.raises(ValueError, match="gather_late"):
        engine.gather_late = -1.0
    # what /metrics exports (gateway_fast_lane_*): the pool's counts, a stopped engine's kept
    counted = linked.pool.counters()
    assert (counted.gathering_waits, counted.late_waits, counted.queue_drops) == (6, 6, 0)
    linked.link.close()  # its last link: the engine thread stops
    after = linked.pool.counters()
    assert linked.pool.engines == [] and after[:2] == counted[:2] and after.queue_drops == 0


@pytest.mark.parametrize("value", [-0.001, 0.006, float("nan"), "1"])
async def test_coalesce_refuses_nonsense(linked: Linked, value: object) -> None:
    engine = linked.pool.engines[0].native
    with pytest.raises((ValueError, TypeError), match=r"coalesce|real number"):
        engine.coalesce = value
    assert engine.coalesce == pytest.approx(0.001)
    with pytest.raises(ValueError, match="coalesce"):
        EnginePool(coalesce=0.01)
