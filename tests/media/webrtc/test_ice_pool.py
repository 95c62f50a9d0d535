"""The web legs' ICE sockets bound before the calls (gateway/media/webrtc/ice_pool.py, issue 64 item 1).

The pool's own behaviour is driven by hand with a fake clock and real sockets on small ranges of this
test's own (taking, topping up, sizing from the call rate, quarantine, stray datagrams dropped); then a
web leg answers a real aiortc peer (``WebPeer``) from a pooled socket, with no bind on its request path,
and connects through it.
"""

from __future__ import annotations

import socket

import pytest

import sdp
from gateway.media.events import MediaEvent
from gateway.media.rtp.ports import PortRange, RtpPortAllocator, bind_udp
from gateway.media.webrtc.ice_pool import LEAD, WINDOW, IcePool
from peers.ports import free_range
from peers.webpeer import WebPeer
from tests.media.webrtc.test_ice_ports import connected, in_range
from tests.media.webrtc.test_webrtc_leg import PCMU, make_leg

HOST = "127.0.0.1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingBind:
    """The allocator's bind, counted: what a call's request path binds shows here."""

    def __init__(self) -> None:
        self.binds = 0

    def __call__(self, host: str, port: int) -> socket.socket:
        self.binds += 1
        return bind_udp(host, port)


def a_range(pairs: int, clock: Clock | None = None, bind: CountingBind | None = None) -> RtpPortAllocator:
    start = free_range(2 * pairs)
    return RtpPortAllocator(
        PortRange(start, start + 2 * pairs - 1),
        clock=clock or Clock(),
        bind=bind or bind_udp,
    )


async def test_a_call_takes_a_pooled_socket_for_its_owner_and_the_pool_is_topped_up() -> None:
    clock = Clock()
    ports = a_range(64, clock)
    pool = IcePool(ports, clock=clock, minimum=2)
    try:
        pool.prime([HOST])
        assert pool.idle_on(HOST) == 2 and len(ports.held) == 2 and ports.held_by("call-1") == 0
        pooled = set(ports.held)
        lease = pool.allocate(HOST, rtcp_mux=True, owner="call-1")
        assert lease.rtp_port in pooled and lease.host == HOST and lease.rtcp_socket is None
        assert ports.held_by("call-1") == 1  # the per-user port budget counts it (caps.py)
        assert (pool.taken, pool.missed, pool.idle_on(HOST)) == (1, 0, 1)
        pool.top_up()  # what the loop does REFILL_DELAY later
        assert pool.idle_on(HOST) == 2 and len(ports.held) == 3
        lease.release()
        assert ports.held_by("call-1") == 0 and len(ports.held) == 2
    finally:
        await pool.close()
    assert not ports.held  # close gives the pooled ports back
    await pool.close()  # idempotent


async def test_an_address_not_pooled_yet_binds_on_demand_and_is_pooled_from_then_on() -> None:
    ports = a_range(64)
    pool = IcePool(ports, minimum=1)
    try:
        lease = pool.allocate(HOST, rtcp_mux=True, owner="c")
        assert (pool.taken, pool.missed) == (0, 1) and ports.held_by("c") == 1
        pool.top_up()
        assert pool.idle_on(HOST) == 1
        sip = pool.allocate(HOST, owner="sip")  # RTP with its own RTCP port: never from the pool
        assert sip.rtcp_socket is not None and pool.idle_on(HOST) == 1
        lease.release()
        sip.release()
    finally:
        await pool.close()
    assert not ports.held


async def test_the_pool_follows_the_recent_call_rate() -> None:
    clock = Clock()
    ports = a_range(200, clock)
    pool = IcePool(ports, clock=clock, minimum=2, maximum=64)
    leases = []
    try:
        pool.prime([HOST])
        assert pool.target() == 2
        for _ in range(50):  # 5 calls/s for 10 s
            leases.append(pool.allocate(HOST, rtcp_mux=True, owner="c"))
            clock.now += 0.2
            pool.top_up()
        assert pool.target() == round(50 / WINDOW * LEAD) == pool.idle_on(HOST) == 10
        assert pool.missed <= 1  # the first take or none: the pool grew ahead of the calls
        clock.now += WINDOW  # no call for a while: back to the minimum, the rest given back
        pool.top_up()
        assert pool.target() == pool.idle_on(HOST) == 2 and len(ports.held) == 50 + 2
    finally:
        for lease in leases:
            lease.release()
        await pool.close()
    assert not ports.held


async def test_a_refill_binds_a_few_sockets_at_a_time() -> None:
    clock = Clock()
    ports = a_range(200, clock)
    pool = IcePool(ports, clock=clock, minimum=2, maximum=64)
    try:
        pool.prime([HOST])
        leases = [pool.allocate(HOST, rtcp_mux=True, owner="c") for _ in range(30)]  # a burst: 6 wanted
        assert pool.target() == 6 and pool.idle_on(HOST) == 0
        assert pool.top_up(limit=4) is True and pool.idle_on(HOST) == 4  # more to bind: called again
        assert pool.top_up(limit=4) is False and pool.idle_on(HOST) == 6
        for lease in leases:
            lease.release()
    finally:
        await pool.close()


async def test_the_pool_never_holds_more_than_its_share_of_the_range() -> None:
    ports = a_range(16)
    pool = IcePool(ports, minimum=6, share=8)
    try:
        pool.prime([HOST])
        assert pool.idle_on(HOST) == 2  # 16 free pairs, one in 8 pooled: the SIP legs keep the rest
    finally:
        await pool.close()


async def test_a_port_given_back_is_not_pooled_again_before_its_quarantine() -> None:
    clock = Clock()
    ports = a_range(2, clock)
    pool = IcePool(ports, clock=clock, minimum=1, share=1, quarantine=2.0)
    try:
        pool.prime([HOST])
        first = pool.allocate(HOST, rtcp_mux=True, owner="call-1")
        pool.top_up()
        second = pool.allocate(HOST, rtcp_mux=True, owner="call-2")
        port = first.rtp_port
        first.release()  # call 1 ends: its browser may still send to that port for a moment
        clock.now += 1.0
        pool.top_up()
        assert pool.idle_on(HOST) == 0 and ports.available == 1  # left unbound while in quarantine
        clock.now += 1.5
        pool.top_up()
        assert pool.idle_on(HOST) == 1 and port in ports.held  # settled: bound ahead again
        second.release()
    finally:
        await pool.close()
    assert not ports.held


async def test_stray_datagrams_that_reached_a_pooled_socket_are_dropped_when_a_call_takes_it() -> None:
    ports = a_range(16)
    pool = IcePool(ports, minimum=1)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        pool.prime([HOST])
        (port,) = ports.held
        for _ in range(3):  # a late packet of an earlier call, a scan...
            sender.sendto(b"\x80\x00stale", (HOST, port))
        lease = pool.allocate(HOST, rtcp_mux=True, owner="c")
        assert lease.rtp_port == port and pool.drained == 3
        with pytest.raises(BlockingIOError):
            lease.rtp_socket.recv(2048)  # nothing of them reaches the call
        lease.release()
    finally:
        sender.close()
        await pool.close()


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match=r"bad pool bounds 5\.\.2"):
        IcePool(a_range(2), minimum=5, maximum=2)


async def test_a_web_leg_answers_from_a_pooled_socket_binding_nothing_and_connects_through_it() -> None:
    bind = CountingBind()
    ports = a_range(64, bind=bind)
    pool = IcePool(ports, minimum=2)
    pool.prime([HOST])
    pooled, binds = set(ports.held), bind.binds
    events: list[MediaEvent] = []
    leg = make_leg(events, ports=pool)
    peer = WebPeer()
    try:
        answer = await leg.accept_offer(sdp.parse(await peer.offer()), PCMU)
        (candidate,) = answer.media[0].candidates
        assert in_range(ports, candidate.port) and candidate.port in pooled
        assert bind.binds == binds  # the request path bound no socket
        assert ports.held_by("t") == 1 and (pool.taken, pool.missed) == (1, 0)
        await peer.accept(sdp.write(answer))
        await connected(events)
    finally:
        await peer.close()
        await leg.close()
        await pool.close()
    assert not ports.held
