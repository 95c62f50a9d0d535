"""The fast lane's engine driven directly (no bridge): a link over two real UDP sockets, what it hands
back to Python, malformed SRTP from the web side, bad arguments at every entry point, a closed link."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pylibsrtp
import pytest

from gateway.media.fastlane.engine import EnginePool, FastLink
from gateway.media.fastlane.native import SIP_TO_WEB, WEB_TO_SIP, Address, NativeLink, Record
from tests.media.test_fastpath import require_fast_lane

KEY = bytes(range(30))  # SRTP master key + salt (AES_CM_128_HMAC_SHA1_80)
DROPPED = 0  # index into Link.counters()


@pytest.fixture(autouse=True)
def fast_lane_built() -> None:
    require_fast_lane()


@dataclass
class Handler:
    """A LinkHandler that keeps what the engine hands back."""

    web_datagrams: list[bytes] = field(default_factory=list)
    web_rtp: list[bytes] = field(default_factory=list)
    sip_datagrams: list[bytes] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    rearmed: int = 0
    failed: bool = False

    def fast_records(self, records: list[Record], wall_offset: float) -> None:
        self.records += records

    def fast_web_datagram(self, data: bytes, source: Address) -> None:
        self.web_datagrams.append(data)

    def fast_web_rtp(self, data: bytes) -> None:
        self.web_rtp.append(data)

    def fast_sip_datagram(self, data: bytes, source: Address) -> None:
        self.sip_datagrams.append(data)

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


@pytest.fixture
async def linked() -> AsyncIterator[Linked]:
    loop = asyncio.get_running_loop()
    web_t, web_p = await loop.create_datagram_endpoint(Quiet, local_addr=("127.0.0.1", 0))
    sip_t, _ = await loop.create_datagram_endpoint(Quiet, local_addr=("127.0.0.1", 0))
    rx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    tx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    pool = EnginePool(workers=1)
    handler = Handler()
    restored: list[tuple[int, int]] = []

    def install(native: NativeLink) -> Callable[[tuple[int, int]], None]:
        native.set_output(WEB_TO_SIP, 0x80, 0x5151, 100)
        native.set_output(SIP_TO_WEB, 0x90, 0x6161, 200, b"\xbe\xde\x00\x01\x10\xaa\x00\x00")
        return restored.append

    link = pool.link(
        handler, call_id="engine-test", web_transport=web_t, sip_transport=sip_t, sessions=(rx, tx),
        install=install,
    )  # fmt: skip
    try:
        yield Linked(pool, link, handler, web_t.get_extra_info("sockname"), sip_t.get_extra_info("sockname"),
                     web_p, restored)  # fmt: skip
    finally:
        link.close()
        pool.close()
        web_t.close()
        sip_t.close()


async def settle(link: FastLink, condition: Callable[[], bool], timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("the engine did not hand the datagram back")
        link.drain()
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
    assert native.counters() == (0, 0, 0, 0, 0)
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
    finally:
        pool.close()
    assert pool.engines == []
