"""The RTP port allocator: even ports, RTCP on the odd neighbour, exhaustion, reuse, foreign holders."""

from __future__ import annotations

import errno
import random
import socket

import pytest

import peers.ports
from gateway.media.errors import MediaError, PortAllocationError
from gateway.media.rtp.ports import PortRange, RtpPortAllocator, bind_udp

HOST = "127.0.0.1"


def free_range(size: int) -> PortRange:
    """A range of ``size`` ports (even start) found free at this moment, in this pytest worker's own band
    below the ephemeral ports (peers/ports.py): a scan of the ephemeral area could hand out a port that any
    worker's outgoing socket, or an end-to-end test's fixed RTP range, takes a moment later."""
    start = peers.ports.free_range(size)
    return PortRange(start, start + size + size % 2 - 1)


def test_range_validation() -> None:
    assert list(PortRange(20000, 20005).even_ports()) == [20000, 20002, 20004]
    assert list(PortRange(20001, 20006).even_ports()) == [20002, 20004]
    with pytest.raises(PortAllocationError, match=r"\[20001, 20002\]"):
        PortRange(20001, 20002)  # 20002 has no 20003
    with pytest.raises(PortAllocationError):
        PortRange(80, 90)
    with pytest.raises(PortAllocationError):
        PortRange(30000, 20000)
    assert issubclass(PortAllocationError, MediaError)


def test_even_rtp_and_rtcp_plus_one() -> None:
    allocator = RtpPortAllocator(free_range(8))
    leases = [allocator.allocate(HOST) for _ in range(4)]
    try:
        for lease in leases:
            assert lease.rtp_port % 2 == 0
            assert lease.rtp_socket.getsockname() == (HOST, lease.rtp_port)
            assert lease.rtcp_socket is not None
            assert lease.rtcp_socket.getsockname() == (HOST, lease.rtp_port + 1)
            assert lease.rtcp_port == lease.rtp_port + 1
        assert len({lease.rtp_port for lease in leases}) == 4
        assert allocator.held == {lease.rtp_port for lease in leases}
    finally:
        for lease in leases:
            lease.release()


def test_exhaustion_is_a_clear_error() -> None:
    port_range = free_range(4)
    allocator = RtpPortAllocator(port_range)
    leases = [allocator.allocate(HOST), allocator.allocate(HOST)]
    with pytest.raises(PortAllocationError, match=rf"no free RTP port pair in \[{port_range.minimum}, "):
        allocator.allocate(HOST)
    for lease in leases:
        lease.release()


def test_release_and_reuse_last() -> None:
    allocator = RtpPortAllocator(free_range(6))
    first = allocator.allocate(HOST)
    port = first.rtp_port
    first.release()
    first.release()  # idempotent
    assert first.released and first.rtp_socket.fileno() == -1
    assert allocator.available == 3
    # released ports go to the back of the queue: the other two come first
    others = [allocator.allocate(HOST), allocator.allocate(HOST)]
    assert port not in {lease.rtp_port for lease in others}
    again = allocator.allocate(HOST)
    assert again.rtp_port == port
    for lease in [*others, again]:
        lease.release()
    assert allocator.held == frozenset()


def test_rtcp_mux_binds_one_socket_but_reserves_the_pair() -> None:
    allocator = RtpPortAllocator(free_range(4))
    lease = allocator.allocate(HOST, rtcp_mux=True)
    assert lease.rtcp_socket is None
    other = allocator.allocate(HOST)
    assert other.rtp_port not in (lease.rtp_port, lease.rtp_port + 1)
    lease.release()
    other.release()


@pytest.mark.parametrize("taken", ["rtp", "rtcp"])
def test_port_held_by_another_socket_is_skipped(taken: str) -> None:
    port_range = free_range(4)
    first = port_range.minimum
    blocker = bind_udp(HOST, first if taken == "rtp" else first + 1)
    try:
        allocator = RtpPortAllocator(port_range)
        lease = allocator.allocate(HOST)
        assert lease.rtp_port == first + 2
        with pytest.raises(PortAllocationError, match="taken by other processes"):
            allocator.allocate(HOST)
        lease.release()
        blocker.close()
        # the skipped port was kept: once free it is handed out again
        ports = {allocator.allocate(HOST).rtp_port, allocator.allocate(HOST).rtp_port}
        assert ports == {first, first + 2}
    finally:
        blocker.close()


def test_other_bind_errors_are_reported() -> None:
    def refuse(host: str, port: int) -> socket.socket:
        raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")

    allocator = RtpPortAllocator(PortRange(20000, 20003), bind=refuse)
    with pytest.raises(PortAllocationError, match="cannot bind UDP port 20000"):
        allocator.allocate("192.0.2.1")
    assert allocator.available == 2  # nothing lost


def test_never_hands_out_a_held_port_twice() -> None:
    bound: list[int] = []

    class FakeSocket:
        def close(self) -> None:
            pass

    def fake_bind(host: str, port: int) -> socket.socket:
        bound.append(port)
        return FakeSocket()  # type: ignore[return-value]

    allocator = RtpPortAllocator(PortRange(20000, 20999), bind=fake_bind)
    held: dict[int, object] = {}
    rng = random.Random(7)
    for _ in range(5000):
        if held and (len(held) == 500 or rng.random() < 0.45):
            held.pop(rng.choice(list(held))).release()  # type: ignore[attr-defined]
        else:
            lease = allocator.allocate(HOST)
            assert lease.rtp_port not in held
            held[lease.rtp_port] = lease
    assert allocator.available + len(held) == 500


def test_releasing_twice_through_the_allocator_is_an_error() -> None:
    allocator = RtpPortAllocator(
        PortRange(20000, 20003), bind=lambda h, p: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    )
    lease = allocator.allocate(HOST)
    lease.release()
    with pytest.raises(PortAllocationError, match="not held"):
        allocator._give_back(lease.rtp_port)
