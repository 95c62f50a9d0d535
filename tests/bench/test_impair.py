"""bench/impair.py: the seeded impairment drops and delays what it says, over real UDP sockets too."""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from impair import Impairer, ImpairError, Impairment, ImpairRelay, is_rtp

N = 20000


def fates(impairment: Impairment, count: int = N) -> list[float | None]:
    impairer = Impairer(impairment)
    return [impairer.decide() for _ in range(count)]


def bursts(decisions: list[float | None]) -> list[int]:
    return [len(list(run)) for lost, run in itertools.groupby(d is None for d in decisions) if lost]


def rtp(seq: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, 160 * seq, 0x1234) + bytes(160)


@pytest.mark.parametrize("rate", [0.02, 0.05, 0.10])
def test_random_loss_rate_and_seed(rate: float) -> None:
    decisions = fates(Impairment(loss=rate, seed=3))
    assert abs(sum(d is None for d in decisions) / N - rate) < 0.2 * rate
    assert all(d == 0.0 for d in decisions if d is not None)  # no delay asked: none given
    assert decisions == fates(Impairment(loss=rate, seed=3))  # the same seed: the same packets
    assert decisions != fates(Impairment(loss=rate, seed=4))
    assert sum(bursts(decisions)) / len(bursts(decisions)) < 1.3  # independent: mostly single losses


def test_gilbert_elliott_bursts_have_the_rate_and_mean_length() -> None:
    decisions = fates(Impairment(burst_loss=0.05, burst_ms=100, seed=5), 100_000)
    runs = bursts(decisions)
    assert abs(sum(runs) / 100_000 - 0.05) < 0.01
    assert 4.0 < sum(runs) / len(runs) < 6.0  # 100 ms of 20 ms packets: 5 on average


def test_jitter_is_uniform_within_bounds_and_reorders() -> None:
    delays = [d for d in fates(Impairment(delay_ms=40, jitter_ms=20, seed=9)) if d is not None]
    assert len(delays) == N
    assert 0.020 <= min(delays) < 0.021 and 0.059 < max(delays) <= 0.060
    assert abs(sum(delays) / N - 0.040) < 0.001
    departures = [20e-3 * index + delay for index, delay in enumerate(delays)]  # packets every 20 ms
    overtaken = sum(1 for a, b in itertools.pairwise(departures) if b < a)
    assert overtaken > 0.05 * N


def test_bad_parameters_are_named() -> None:
    with pytest.raises(ImpairError, match="loss"):
        Impairment(loss=1.5)
    with pytest.raises(ImpairError, match="burst_ms"):
        Impairment(burst_loss=0.05, burst_ms=5)
    with pytest.raises(ImpairError, match="jitter_ms"):
        Impairment(delay_ms=10, jitter_ms=20)


def test_demultiplexing() -> None:
    assert is_rtp(rtp(1))
    assert not is_rtp(b"\x80\xc8" + bytes(30))  # RTCP sender report
    assert not is_rtp(b"\x00\x01" + bytes(30))  # STUN binding request
    assert not is_rtp(b"\x16\xfe\xfd" + bytes(30))  # DTLS handshake


async def test_relay_drops_delays_and_reorders_rtp_only_towards_the_box() -> None:
    box = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for sock in (box, peer):
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
    spec = Impairment(loss=0.10, delay_ms=40, jitter_ms=20, seed=11)
    relay = await ImpairRelay(spec, box=box.getsockname()).start()
    loop = asyncio.get_running_loop()
    count = 300
    expected = [d is not None for d in fates(spec, count)]
    got: list[int] = []
    stun = asyncio.Event()

    async def read() -> None:  # while the peer sends: the box's socket buffer must not overflow
        while True:
            data, source = await loop.sock_recvfrom(box, 2048)
            assert source == relay.b
            if is_rtp(data):
                got.append(struct.unpack("!H", data[2:4])[0])
            else:
                stun.set()

    reader = asyncio.ensure_future(read())
    try:
        for seq in range(count):
            peer.sendto(rtp(seq), relay.a)
            await asyncio.sleep(0.002)
        peer.sendto(b"\x00\x01" + bytes(18), relay.a)  # STUN: not impaired, not delayed
        deadline = loop.time() + 10
        while len(got) < sum(expected) or not stun.is_set():
            assert loop.time() < deadline, f"{len(got)} of {sum(expected)} RTP packets, STUN {stun}"
            await asyncio.sleep(0.05)
        reader.cancel()
        assert sorted(got) == [seq for seq in range(count) if expected[seq]]  # exactly the seed's survivors
        assert got != sorted(got)  # reordered
        assert relay.impairer.lost == count - len(got)
        # the box's answer goes back to the peer at once, untouched
        box.sendto(rtp(7), relay.b)
        data, source = await asyncio.wait_for(loop.sock_recvfrom(peer, 2048), 10)
        assert (data, source) == (rtp(7), relay.a)
    finally:
        reader.cancel()
        relay.close()
        box.close()
        peer.close()


async def test_closing_drops_the_packets_in_flight(caplog: pytest.LogCaptureFixture) -> None:
    box = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for sock in (box, peer):
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
    relay = await ImpairRelay(Impairment(delay_ms=100), box=box.getsockname()).start()
    try:
        for seq in range(5):
            peer.sendto(rtp(seq), relay.a)
        await wait_for(lambda: relay.impairer.packets == 5)
        relay.close()
        await asyncio.sleep(0.3)  # past the delay: a packet sent now would be in the box's socket
        with pytest.raises(BlockingIOError):
            box.recv(2048)
        assert relay.forwarded == 0
        assert not [r for r in caplog.records if r.name == "asyncio"], caplog.text
    finally:
        relay.close()
        box.close()
        peer.close()


async def wait_for(predicate: Callable[[], bool], timeout: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met"
        await asyncio.sleep(0.01)
