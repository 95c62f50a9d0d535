"""The SIP leg's RTP endpoint on 127.0.0.1: exchange, latching, strangers, RTCP, inactivity, cleanup."""

from __future__ import annotations

import array
import asyncio
import contextlib
import itertools
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

import sdp
from gateway.media.errors import EndpointError, MediaError
from gateway.media.rtp.endpoint_state import EndpointState, RtpEndpointConfig, same_place
from gateway.media.rtp.latch import LatchState, SymmetricLatch
from gateway.media.rtp.packet import RtpPacket
from gateway.media.rtp.ports import PortRange, RtpPortAllocator
from gateway.media.rtp.rtcp import (
    RtcpBye,
    RtcpPacket,
    RtcpReceiverReport,
    RtcpSenderReport,
    RtcpSourceDescription,
    parse_rtcp,
)
from gateway.media.rtp.rtp_endpoint import RtpEndpoint
from gateway.media.rtp.srtp import SdesSrtp
from peers.audio import RtpTonePeer
from tests.media.rtp.test_ports import free_range

HOST = "127.0.0.1"
PCMU = 0
TEL_EVENT = 101


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


@dataclass
class Recorder:
    rtp: list[RtpPacket] = field(default_factory=list)
    rtcp: list[tuple[RtcpPacket, ...]] = field(default_factory=list)
    inactive: int = 0
    codec_changes: list[tuple[int | None, int]] = field(default_factory=list)

    def endpoint(self, allocator: RtpPortAllocator, **config: object) -> RtpEndpoint:
        settings: dict[str, object] = {
            "payload_types": frozenset({PCMU}),
            "dtmf_payload_types": frozenset({TEL_EVENT}),
        }
        settings.update(config)
        return RtpEndpoint(
            allocator,
            RtpEndpointConfig(**settings),  # type: ignore[arg-type]
            on_rtp=self.rtp.append,
            on_rtcp=self.rtcp.append,
            on_inactive=self.on_inactive,
            on_codec_change=lambda old, new: self.codec_changes.append((old, new)),
            call_id="test",
        )

    def on_inactive(self) -> None:
        self.inactive += 1

    def rtcp_of(self, kind: type) -> list[RtcpPacket]:
        return [p for compound in self.rtcp for p in compound if isinstance(p, kind)]


@pytest.fixture
def allocator() -> RtpPortAllocator:
    return RtpPortAllocator(free_range(40))


@pytest.fixture
async def peers() -> AsyncIterator[list[RtpTonePeer]]:
    made: list[RtpTonePeer] = []
    for _ in range(3):
        peer = RtpTonePeer()
        await peer.start()
        made.append(peer)
    yield made
    for peer in made:
        peer.close()


# -------------------------------------------------------------------------------- sans-I/O latch


def test_latch_table() -> None:
    latch = SymmetricLatch("t")
    a, b = (HOST, 1000), (HOST, 2000)
    assert not latch.accept(a, latchable=False)
    assert latch.state is LatchState.UNLATCHED
    assert latch.accept(a, latchable=True)
    assert latch.address == a and latch.state.value == "latched"
    assert latch.accept(a, latchable=False)  # from the latched source, anything goes to the caller
    assert not latch.accept(b, latchable=True)  # stranger
    latch.reset()
    assert latch.state is LatchState.UNLATCHED and latch.address is None


def test_relatch_after_consecutive_packets() -> None:
    latch = SymmetricLatch("t", relatch_after=3)
    a, b, c = (HOST, 1000), (HOST, 2000), (HOST, 3000)
    latch.accept(a, True)
    assert not latch.accept(b, True) and not latch.accept(b, True)
    assert latch.accept(a, True)  # the old source speaks again: the count restarts
    assert not latch.accept(b, True) and not latch.accept(c, True) and not latch.accept(b, True)
    assert not latch.accept(b, False)  # unlatchable packets never count
    assert not latch.accept(b, True)
    assert latch.accept(b, True) and latch.address == b  # third in a row
    assert not latch.accept(a, True)


# -------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "kwargs",
    [
        {"payload_types": frozenset()},
        {"payload_types": frozenset({128})},
        {"payload_types": frozenset({0}), "dtmf_payload_types": frozenset({-1})},
        {"payload_types": frozenset({0}), "clock_rate": 0},
        {"payload_types": frozenset({0}), "inactivity_timeout": 0},
        {"payload_types": frozenset({0}), "rtcp_interval": -1},
        {"payload_types": frozenset({0}), "relatch_after": -1},
        {"payload_types": frozenset({0}), "cname": ""},
    ],
)
def test_config_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(EndpointError):
        RtpEndpointConfig(**kwargs)  # type: ignore[arg-type]
    assert issubclass(EndpointError, MediaError)


# ---------------------------------------------------------------------------------- on loopback


@pytest.mark.parametrize("rtcp_mux", [False, True])
async def test_two_endpoints_exchange_rtp(allocator: RtpPortAllocator, rtcp_mux: bool) -> None:
    ra, rb = Recorder(), Recorder()
    a, b = ra.endpoint(allocator, rtcp_mux=rtcp_mux), rb.endpoint(allocator, rtcp_mux=rtcp_mux)
    await a.open()
    await b.open()
    try:
        assert a.state is EndpointState.OPEN
        assert a.local_rtp_address[1] % 2 == 0
        assert a.local_rtcp_address[1] == a.local_rtp_address[1] + (0 if rtcp_mux else 1)
        a.set_remote(b.local_rtp_address, b.local_rtcp_address)
        b.set_remote(a.local_rtp_address, a.local_rtcp_address)
        for n in range(5):
            assert a.send_rtp(PCMU, b"\xff" * 160, 160 * n, marker=n == 0)
            assert b.send_rtp(PCMU, b"\x7f" * 160, 160 * n)
        await until(lambda: len(ra.rtp) == 5 and len(rb.rtp) == 5)
        assert [p.payload for p in rb.rtp] == [b"\xff" * 160] * 5
        assert {p.ssrc for p in rb.rtp} == {a.ssrc}
        seqs = [p.sequence_number for p in rb.rtp]
        assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(5)]
        assert rb.rtp[0].marker
        assert a.latched and b.latched
        assert b.remote_rtp_address == a.local_rtp_address
        assert rb.codec_changes == [(None, PCMU)]
        assert b.statistics is not None and b.statistics.received == 5 and b.statistics.cumulative_lost == 0
    finally:
        a.close()
        b.close()


class WireTap(asyncio.DatagramProtocol):
    """What reaches a socket, as it came (encrypted)."""

    def __init__(self) -> None:
        self.datagrams: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) > 1 and not 192 <= data[1] <= 223:  # RTP, not RTCP
            self.datagrams.append(data)


@contextlib.asynccontextmanager
async def sdes_to_a_tap(
    allocator: RtpPortAllocator, **config: object
) -> AsyncIterator[tuple[RtpEndpoint, WireTap]]:
    """An open endpoint with SDES keys, sending to a socket that keeps what it gets."""
    keys = [sdp.Crypto(1, "AES_CM_128_HMAC_SHA1_80", os.urandom(30)) for _ in range(2)]
    endpoint = Recorder().endpoint(allocator, **config)
    transport, tap = await asyncio.get_running_loop().create_datagram_endpoint(WireTap, local_addr=(HOST, 0))
    await endpoint.open()
    try:
        endpoint.set_srtp(*keys)
        endpoint.set_remote(transport.get_extra_info("sockname"), None)
        yield endpoint, tap
    finally:
        endpoint.close()
        transport.close()


async def test_a_forwarded_packet_is_never_encrypted_under_an_index_sent_already(
    allocator: RtpPortAllocator,
) -> None:
    """RFC 3711 §9.1 on an SDES leg: a duplicate of the other leg's packet with another payload (spoofed,
    or a PBX's bug) maps onto the number its first copy went out with; it is dropped, not encrypted again
    under that index (which would give away the XOR of the two payloads, and with GCM the key)."""
    async with sdes_to_a_tap(allocator) as (endpoint, tap):
        assert endpoint.send_rtp(PCMU, b"A" * 160, 0, source=(7, 100))
        assert endpoint.send_rtp(PCMU, b"C" * 160, 160, source=(7, 101))
        assert not endpoint.send_rtp(PCMU, b"B" * 160, 0, source=(7, 100))  # the same number: refused
        assert endpoint.send_rtp(PCMU, b"D" * 160, 320, source=(7, 102))  # and the call goes on
        await until(lambda: len(tap.datagrams) >= 3)
        await asyncio.sleep(0.05)
        numbers = [int.from_bytes(d[2:4], "big") for d in tap.datagrams]
        assert len(numbers) == 3 and len(set(numbers)) == 3, numbers


async def test_the_phone_re_keying_alone_keeps_our_transmit_session(allocator: RtpPortAllocator) -> None:
    """A re-INVITE whose answer changes only the phone's key: our sessions' rollover counter and SRTCP
    index go on under our unchanged key (tests/media/rtp/test_sdes_srtp.py shows why)."""
    async with sdes_to_a_tap(allocator) as (endpoint, _):
        before = endpoint.srtp
        assert isinstance(before, SdesSrtp)
        endpoint.set_srtp(before.ours, sdp.Crypto(2, "AES_CM_128_HMAC_SHA1_80", os.urandom(30)))
        after = endpoint.srtp
        assert isinstance(after, SdesSrtp) and after is not before
        assert after.sessions[1] is before.sessions[1] and after.sessions[0] is not before.sessions[0]
        # while the fast lane's engine holds that transmit session, protecting goes on through its stand-in
        # (libsrtp's sessions are not thread-safe); a new key of ours ends that until the lane links again
        stand_in = RecordingSrtp(after)
        endpoint.serialize_srtp(stand_in)
        endpoint.set_srtp(after.ours, sdp.Crypto(3, "AES_CM_128_HMAC_SHA1_80", os.urandom(30)))
        assert endpoint.send_rtp(PCMU, b"A" * 160, 0) and stand_in.protected == 1
        endpoint.set_srtp(sdp.Crypto(4, "AES_CM_128_HMAC_SHA1_80", os.urandom(30)), after.theirs)
        assert endpoint.send_rtp(PCMU, b"B" * 160, 160) and stand_in.protected == 1


class RecordingSrtp:
    """A fast-lane stand-in that counts what it protects (and protects with the sessions it stands for)."""

    def __init__(self, original: SdesSrtp) -> None:
        self.original, self.protected, self.ready, self.separate_rtcp = original, 0, True, False
        self.sessions = original.sessions

    def protect(self, packet: bytes) -> bytes:
        self.protected += 1
        return self.original.protect(packet)

    def protect_rtcp(self, packet: bytes) -> bytes:
        return self.original.protect_rtcp(packet)

    def unprotect(self, packet: bytes) -> bytes:
        return self.original.unprotect(packet)

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        return self.original.unprotect_rtcp(packet)


async def test_a_video_endpoint_sends_a_retransmission_again_under_its_index(
    allocator: RtpPortAllocator,
) -> None:
    """Video (``retransmits``): the browser's answer to the phone's NACK (RFC 4585) is the same packet
    under the same number again; it goes out, the very same bytes."""
    async with sdes_to_a_tap(allocator, retransmits=True) as (endpoint, tap):
        assert endpoint.send_rtp(PCMU, b"A" * 160, 0, source=(7, 100))
        assert endpoint.send_rtp(PCMU, b"C" * 160, 160, source=(7, 101))
        assert endpoint.send_rtp(PCMU, b"A" * 160, 0, source=(7, 100))  # asked for again
        await until(lambda: len(tap.datagrams) >= 3)
        assert tap.datagrams[2] == tap.datagrams[0]


async def test_a_video_endpoint_never_sends_another_packet_under_an_index(
    allocator: RtpPortAllocator,
) -> None:
    """Video's stream allows a repeated index (the retransmission above), so what stops a different packet
    under one is the send guard (send_guard.py): a duplicate of the browser's number with another payload
    (its sender restarting its numbers, a late packet of an old SSRC) is dropped, before and after a new
    key of ours (a new index space: the first packet under each number goes again)."""
    async with sdes_to_a_tap(allocator, retransmits=True) as (endpoint, tap):
        assert endpoint.send_rtp(PCMU, b"A" * 160, 0, source=(7, 100))
        assert endpoint.send_rtp(PCMU, b"C" * 160, 160, source=(7, 101))
        assert not endpoint.send_rtp(PCMU, b"B" * 160, 0, source=(7, 100))  # another payload: refused
        assert endpoint.send_rtp(PCMU, b"A" * 160, 0, source=(7, 100))  # the same packet: it goes
        await until(lambda: len(tap.datagrams) >= 3)
        srtp = endpoint.srtp
        assert isinstance(srtp, SdesSrtp)
        endpoint.set_srtp(sdp.Crypto(5, "AES_CM_128_HMAC_SHA1_80", os.urandom(30)), srtp.theirs)
        assert endpoint.send_rtp(PCMU, b"B" * 160, 0, source=(7, 100))  # under the new key: its first
        assert not endpoint.send_rtp(PCMU, b"E" * 160, 0, source=(7, 100))
        await until(lambda: len(tap.datagrams) >= 4)
        await asyncio.sleep(0.05)
        sent = [(d[2:4], d[12:]) for d in tap.datagrams]
        assert len(sent) == 4 and sent[2] == sent[0] and sent[3][0] == sent[0][0] and sent[3] != sent[0]


async def test_latches_to_real_source_not_sdp_address(
    allocator: RtpPortAllocator, peers: list[RtpTonePeer]
) -> None:
    sdp_peer, nat_peer, _ = peers
    rec = Recorder()
    ep = rec.endpoint(allocator)
    await ep.open()
    try:
        ep.set_remote(sdp_peer.address)  # what the SDP said
        ep.send_rtp(PCMU, b"\xff" * 160, 0)
        await until(lambda: len(sdp_peer.packets) == 1)  # before latching: to the SDP address
        nat_peer.remote = ep.local_rtp_address
        nat_peer.send_frame(array_of(160), marker=True)  # the real source, NAT-rewritten port
        await until(lambda: len(rec.rtp) == 1)
        assert ep.latched and ep.remote_rtp_address == nat_peer.address
        ep.send_rtp(PCMU, b"\xff" * 160, 160)
        await until(lambda: len(nat_peer.packets) == 1)
        await asyncio.sleep(0.02)
        assert len(sdp_peer.packets) == 1  # nothing more went to the SDP address
    finally:
        ep.close()


async def test_unexpected_payload_type_does_not_latch(
    allocator: RtpPortAllocator, peers: list[RtpTonePeer]
) -> None:
    peer = peers[0]
    rec = Recorder()
    ep = rec.endpoint(allocator)
    await ep.open()
    try:
        peer.send_raw(RtpPacket(96, 1, 0, 1, b"x").serialize(), ep.local_rtp_address)
        peer.send_raw(b"garbage", ep.local_rtp_address)
        await until(lambda: ep.dropped == 2)
        assert not ep.latched and rec.rtp == []
        peer.send_raw(
            RtpPacket(TEL_EVENT, 2, 0, 1, bytes.fromhex("058a0320")).serialize(), ep.local_rtp_address
        )
        await until(lambda: len(rec.rtp) == 1)
        assert ep.latched and rec.codec_changes == []  # telephone-event is not a codec
    finally:
        ep.close()


async def test_reconfigure_changes_the_accepted_payload_types(
    allocator: RtpPortAllocator, peers: list[RtpTonePeer]
) -> None:
    peer = peers[0]
    rec = Recorder()
    ep = rec.endpoint(allocator)
    await ep.open()
    try:
        ep.reconfigure(frozenset({8}), frozenset({96}), 8000)  # a re-INVITE moved to PCMA, event PT 96
        peer.send_raw(RtpPacket(PCMU, 1, 0, 1, b"x").serialize(), ep.local_rtp_address)
        await until(lambda: ep.dropped == 1)
        peer.send_raw(RtpPacket(8, 2, 160, 1, b"x").serialize(), ep.local_rtp_address)
        peer.send_raw(RtpPacket(96, 3, 160, 1, bytes.fromhex("058a0320")).serialize(), ep.local_rtp_address)
        await until(lambda: len(rec.rtp) == 2)
        assert [p.payload_type for p in rec.rtp] == [8, 96] and rec.codec_changes == [(None, 8)]
        assert ep.config.payload_types == frozenset({8})
    finally:
        ep.close()


async def test_stranger_dropped_after_latching(allocator: RtpPortAllocator, peers: list[RtpTonePeer]) -> None:
    peer, stranger, _ = peers
    rec = Recorder()
    ep = rec.endpoint(allocator)
    await ep.open()
    try:
        peer.remote = stranger.remote = ep.local_rtp_address
        peer.send_frame(array_of(160))
        await until(lambda: len(rec.rtp) == 1)
        for _ in range(10):
            stranger.send_frame(array_of(160))
        await until(lambda: ep.dropped == 10)
        peer.send_frame(array_of(160))
        await until(lambda: len(rec.rtp) == 2)
        assert {p.ssrc for p in rec.rtp} == {peer.ssrc}
        assert ep.remote_rtp_address == peer.address
    finally:
        ep.close()


async def test_relatch_when_source_changes_persistently(
    allocator: RtpPortAllocator, peers: list[RtpTonePeer]
) -> None:
    old, new, _ = peers
    rec = Recorder()
    ep = rec.endpoint(allocator, relatch_after=5)
    await ep.open()
    try:
        old.remote = new.remote = ep.local_rtp_address
        old.send_frame(array_of(160))
        await until(lambda: len(rec.rtp) == 1)
        for _ in range(6):
            new.send_frame(array_of(160))
        await until(lambda: len(rec.rtp) == 3)  # 4 dropped, the 5th re-latches, the 6th passes
        assert ep.dropped == 4 and ep.remote_rtp_address == new.address
        ep.send_rtp(PCMU, b"\xff" * 160, 0)
        await until(lambda: len(new.packets) == 1)
    finally:
        ep.close()


async def test_comfort_noise_is_not_a_codec_change(
    allocator: RtpPortAllocator, peers: list[RtpTonePeer]
) -> None:
    peer = peers[0]
    rec = Recorder()
    ep = rec.endpoint(allocator, payload_types=frozenset({PCMU, 8}))
    await ep.open()
    try:
        for seq, pt in enumerate([PCMU, 13, 13, PCMU, 8]):
            peer.send_raw(RtpPacket(pt, seq, 160 * seq, 1, b"\x40").serialize(), ep.local_rtp_address)
            await until(lambda seq=seq: len(rec.rtp) == seq + 1)  # type: ignore[misc]
        assert [p.payload_type for p in rec.rtp] == [PCMU, 13, 13, PCMU, 8]
        assert rec.codec_changes == [(None, PCMU), (PCMU, 8)]
        assert ep.codec_payload_type == 8
    finally:
        ep.close()


@pytest.mark.parametrize("rtcp_mux", [False, True])
async def test_rtcp_reports_sent_and_parsed(allocator: RtpPortAllocator, rtcp_mux: bool) -> None:
    ra, rb = Recorder(), Recorder()
    a = ra.endpoint(allocator, rtcp_mux=rtcp_mux, rtcp_interval=0.1, cname="alice@test")
    b = rb.endpoint(allocator, rtcp_mux=rtcp_mux, rtcp_interval=0.1, cname="bob@test")
    await a.open()
    await b.open()
    try:
        a.set_remote(b.local_rtp_address, b.local_rtcp_address)
        b.set_remote(a.local_rtp_address, a.local_rtcp_address)
        for n in range(10):
            a.send_rtp(PCMU, b"\xff" * 160, 160 * n)
            await asyncio.sleep(0.01)
        await until(lambda: any(p.packet_count == 10 for p in rb.rtcp_of(RtcpSenderReport)), 3.0)  # type: ignore[union-attr]
        sr = rb.rtcp_of(RtcpSenderReport)[-1]
        assert isinstance(sr, RtcpSenderReport)
        assert sr.ssrc == a.ssrc and sr.packet_count == 10 and sr.octet_count == 1600
        # b only receives: it sends RR with a report block about a's stream
        await until(
            lambda: any(
                isinstance(p, RtcpReceiverReport) and p.reports for p in ra.rtcp_of(RtcpReceiverReport)
            )
        )
        rr = next(
            p for p in ra.rtcp_of(RtcpReceiverReport) if isinstance(p, RtcpReceiverReport) and p.reports
        )
        assert isinstance(rr, RtcpReceiverReport) and rr.ssrc == b.ssrc
        block = rr.reports[0]
        assert block.ssrc == a.ssrc and block.cumulative_lost == 0
        cnames = {
            c.cname
            for p in ra.rtcp_of(RtcpSourceDescription)
            if isinstance(p, RtcpSourceDescription)
            for c in p.chunks
        }
        assert cnames == {"bob@test"}
        assert rb.rtp and all(isinstance(p, RtpPacket) for p in rb.rtp)  # RTCP never reached on_rtp
    finally:
        a.close()
        b.close()


async def test_rtcp_interval_is_randomized(allocator: RtpPortAllocator, peers: list[RtpTonePeer]) -> None:
    peer = peers[0]
    rec = Recorder()
    ep = rec.endpoint(allocator, rtcp_interval=0.1, rtcp_mux=True)
    await ep.open()
    try:
        ep.set_remote(peer.address)
        loop = asyncio.get_running_loop()
        arrivals: list[float] = []
        while len(arrivals) < 8:
            count = len(peer.other)
            await until(lambda count=count: len(peer.other) > count)  # type: ignore[misc]
            arrivals.append(loop.time())
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        # within [0.5, 1.5] x 0.1 s, with slack for a loaded machine's scheduling (a late arrival makes
        # the next gap short)
        assert all(0.02 <= g <= 0.2 for g in gaps), gaps
        assert max(gaps) - min(gaps) > 0.005  # not a fixed period
        assert all(isinstance(parse_rtcp(d)[0], RtcpReceiverReport) for d in peer.other)
    finally:
        ep.close()


async def test_close_sends_bye_and_is_idempotent(allocator: RtpPortAllocator) -> None:
    ra, rb = Recorder(), Recorder()
    a, b = ra.endpoint(allocator), rb.endpoint(allocator)
    await a.open()
    await b.open()
    a.set_remote(b.local_rtp_address)
    b.set_remote(a.local_rtp_address)
    a.close()
    a.close()
    assert a.state is EndpointState.CLOSED and allocator.held == {b.local_rtp_address[1]}
    await until(lambda: bool(rb.rtcp_of(RtcpBye)))
    bye = rb.rtcp_of(RtcpBye)[0]
    assert isinstance(bye, RtcpBye) and bye.sources == (a.ssrc,)
    with pytest.raises(EndpointError, match="closed"):
        a.send_rtp(PCMU, b"", 0)
    with pytest.raises(EndpointError):
        await a.open()
    b.close()
    assert allocator.held == frozenset()


async def test_endpoint_closed_before_open() -> None:
    allocator = RtpPortAllocator(free_range(4))
    ep = Recorder().endpoint(allocator)
    with pytest.raises(EndpointError, match="new"):
        ep.send_rtp(PCMU, b"", 0)
    with pytest.raises(EndpointError, match="not open"):
        _ = ep.local_rtp_address
    ep.close()
    assert ep.state is EndpointState.CLOSED


async def test_send_needs_a_remote_and_a_sending_direction(
    allocator: RtpPortAllocator, peers: list[RtpTonePeer]
) -> None:
    ep = Recorder().endpoint(allocator)
    await ep.open()
    try:
        assert not ep.send_rtp(PCMU, b"\xff", 0)  # no remote yet
        ep.set_remote(peers[0].address)
        ep.set_direction(sdp.Direction.RECVONLY)
        assert not ep.send_rtp(PCMU, b"\xff", 0)
        ep.set_direction(sdp.Direction.SENDRECV)
        assert ep.send_rtp(PCMU, b"\xff", 0)
        await until(lambda: len(peers[0].packets) == 1)
    finally:
        ep.close()


async def test_inactivity_fires_once_without_rtp(allocator: RtpPortAllocator) -> None:
    rec = Recorder()
    ep = rec.endpoint(allocator, inactivity_timeout=0.3)
    loop = asyncio.get_running_loop()
    await ep.open()
    started = loop.time()
    try:
        await until(lambda: rec.inactive == 1)
        assert 0.28 <= loop.time() - started < 0.6
        await asyncio.sleep(0.4)
        assert rec.inactive == 1  # once per silence
    finally:
        ep.close()


async def test_inactivity_not_while_rtp_flows_then_fires_and_rearms(
    allocator: RtpPortAllocator, peers: list[RtpTonePeer]
) -> None:
    peer = peers[0]
    rec = Recorder()
    ep = rec.endpoint(allocator, inactivity_timeout=0.3)
    await ep.open()
    try:
        peer.remote = ep.local_rtp_address
        await peer.send_tone(1000, 0.8)  # 0.8 s of packets, longer than the timeout
        await until(lambda: len(rec.rtp) == 40)  # (the last ones may still be in flight when it returns)
        assert rec.inactive == 0
        await until(lambda: rec.inactive == 1)
        await peer.send_tone(1000, 0.1)  # RTP resumes: the timer is re-armed
        await until(lambda: rec.inactive == 2)
    finally:
        ep.close()


async def test_hold_pauses_the_inactivity_timer(allocator: RtpPortAllocator) -> None:
    rec = Recorder()
    ep = rec.endpoint(allocator, inactivity_timeout=0.3)
    loop = asyncio.get_running_loop()
    await ep.open()
    try:
        ep.set_direction(sdp.Direction.SENDONLY)  # we put the peer on hold: it sends nothing
        await asyncio.sleep(0.5)
        assert rec.inactive == 0
        ep.set_direction(sdp.Direction.INACTIVE)
        await asyncio.sleep(0.1)
        resumed = loop.time()
        ep.set_direction(sdp.Direction.SENDRECV)
        await until(lambda: rec.inactive == 1)
        assert loop.time() - resumed >= 0.28  # counted from the resume, not from open
    finally:
        ep.close()


async def test_a_held_peer_is_watched_by_its_rtcp(allocator: RtpPortAllocator) -> None:
    """On hold no RTP is expected, but a peer that sends RTCP keeps showing it lives: while its reports
    come, nothing fires; once they stop (it died), on_inactive fires after hold_timeout, ``held``."""
    rec = Recorder()
    ep = rec.endpoint(allocator, inactivity_timeout=0.3, hold_timeout=0.5)
    peer = Recorder().endpoint(allocator, rtcp_interval=0.1, inactivity_timeout=None)
    loop = asyncio.get_running_loop()
    await ep.open()
    await peer.open()
    try:
        ep.set_remote(peer.local_rtp_address, peer.local_rtcp_address)
        peer.set_remote(ep.local_rtp_address, ep.local_rtcp_address)
        ep.set_direction(sdp.Direction.SENDONLY)  # we hold the peer: it sends no RTP, only its reports
        peer.set_direction(sdp.Direction.RECVONLY)
        await asyncio.sleep(1.2)
        assert rec.inactive == 0 and rec.rtcp, "the peer's RTCP should have arrived"
        peer.close()  # gone: no RTCP any more (its BYE is the last one)
        gone = loop.time()
        await until(lambda: rec.inactive == 1)
        assert 0.4 <= loop.time() - gone < 1.0 and ep.inactive_held
    finally:
        ep.close()
        peer.close()


async def test_comfort_noise_then_rtcp_only_is_silence_not_death(
    allocator: RtpPortAllocator, peers: list[RtpTonePeer]
) -> None:
    """RFC 3389 silence suppression: after a comfort-noise packet the peer may send no RTP for a while;
    its RTCP says it lives, so the RTP timeout does not fire; when speech resumes the RTP timeout is
    back."""
    rec = Recorder()
    ep = rec.endpoint(allocator, inactivity_timeout=0.3, hold_timeout=0.6)
    reporter = Recorder().endpoint(allocator, rtcp_interval=0.1, inactivity_timeout=None)
    await ep.open()
    await reporter.open()
    try:
        reporter.set_remote(ep.local_rtp_address, ep.local_rtcp_address)
        reporter.set_direction(sdp.Direction.RECVONLY)
        peer = peers[0]
        peer.remote = ep.local_rtp_address
        await peer.send_tone(1000, 0.1)
        peer.send_raw(RtpPacket(13, peer.sequence, peer.timestamp, peer.ssrc, b"\x40").serialize())  # CN
        await asyncio.sleep(0.9)  # three RTP timeouts, RTCP all along
        assert rec.inactive == 0
        await peer.send_tone(1000, 0.1)  # speech again: the RTP timeout applies
        await until(lambda: rec.inactive == 1)
        assert not ep.inactive_held
        await asyncio.sleep(0.5)  # RTCP goes on, but RTP is what was expected: it fired once, for good
        assert rec.inactive == 1
    finally:
        ep.close()
        reporter.close()


async def test_inactivity_disabled(allocator: RtpPortAllocator) -> None:
    rec = Recorder()
    ep = rec.endpoint(allocator, inactivity_timeout=None)
    await ep.open()
    await asyncio.sleep(0.1)
    ep.close()
    assert rec.inactive == 0


async def test_reinvite_to_new_address_relatches(
    allocator: RtpPortAllocator, peers: list[RtpTonePeer]
) -> None:
    first, second, _ = peers
    rec = Recorder()
    ep = rec.endpoint(allocator)
    await ep.open()
    try:
        ep.set_remote(first.address)
        first.remote = second.remote = ep.local_rtp_address
        first.send_frame(array_of(160))
        await until(lambda: ep.latched)
        ep.set_remote(second.address)  # re-INVITE: the peer moved
        assert not ep.latched and ep.remote_rtp_address == second.address
        second.send_frame(array_of(160))
        await until(lambda: len(rec.rtp) == 2)
        assert ep.remote_rtp_address == second.address
    finally:
        ep.close()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_two_thousand_endpoints_leak_nothing() -> None:
    allocator = RtpPortAllocator(free_range(20))  # 10 pairs: every port is reused ~200 times
    loop = asyncio.get_running_loop()
    ep = Recorder().endpoint(allocator)
    await ep.open()
    ep.close()
    await asyncio.sleep(0)
    before = open_fds()
    for n in range(2000):
        ep = Recorder().endpoint(allocator, rtcp_mux=n % 2 == 1)
        await ep.open()
        ep.set_remote((HOST, 9))
        ep.send_rtp(PCMU, b"\xff", 0)
        ep.close()
        ep.close()
    await asyncio.sleep(0.01)
    await loop.shutdown_default_executor()
    assert allocator.held == frozenset() and allocator.available == 10
    assert open_fds() == before


def array_of(count: int) -> array.array[int]:
    return array.array("h", bytes(2 * count))


@pytest.mark.parametrize("source", list(EndpointState))
@pytest.mark.parametrize("target", list(EndpointState))
def test_every_state_pair(source: EndpointState, target: EndpointState) -> None:
    ep = Recorder().endpoint(RtpPortAllocator(PortRange(20000, 20003)))
    ep._state = source
    legal = {
        (EndpointState.NEW, EndpointState.OPEN),
        (EndpointState.NEW, EndpointState.CLOSED),
        (EndpointState.OPEN, EndpointState.CLOSED),
    }
    if (source, target) in legal:
        ep._set_state(target)
        assert ep.state is target
    else:
        with pytest.raises(EndpointError, match=f"from {source.value} to {target.value}"):
            ep._set_state(target)


async def test_dtmf_between_endpoints(allocator: RtpPortAllocator) -> None:
    from gateway.media.codecs.dtmf import DtmfDigit, DtmfReceiver, DtmfSender

    ra, rb = Recorder(), Recorder()
    a, b = ra.endpoint(allocator), rb.endpoint(allocator)
    await a.open()
    await b.open()
    try:
        a.set_remote(b.local_rtp_address)
        receiver, digits = DtmfReceiver(), []
        loop = asyncio.get_running_loop()
        for n, digit in enumerate("1#"):
            start = loop.time()
            for packet in DtmfSender().packets(digit, timestamp=8000 * n, duration_ms=60):
                await asyncio.sleep(max(0.0, start + packet.offset - loop.time()))
                a.send_rtp(TEL_EVENT, packet.payload, packet.timestamp, marker=packet.marker)
        await until(lambda: len(rb.rtp) == 10)
        for received in rb.rtp:
            assert received.payload_type == TEL_EVENT
            digits += receiver.feed(received.timestamp, received.payload)
        assert digits == [DtmfDigit("1", 60), DtmfDigit("#", 60)]
    finally:
        a.close()
        b.close()


async def test_inactivity_follows_the_injected_clock(allocator: RtpPortAllocator) -> None:
    now = [100.0]
    fired: list[int] = []
    ep = RtpEndpoint(
        allocator,
        RtpEndpointConfig(frozenset({PCMU}), inactivity_timeout=0.05),
        on_rtp=lambda packet: None,
        on_inactive=lambda: fired.append(1),
        clock=lambda: now[0],
    )
    await ep.open()
    try:
        await asyncio.sleep(0.2)  # the loop's time passes, the endpoint's clock does not
        assert fired == []
        now[0] += 0.06
        await until(lambda: fired == [1])
    finally:
        ep.close()


async def test_a_failing_callback_does_not_kill_the_endpoint(
    allocator: RtpPortAllocator, peers: list[RtpTonePeer], caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[RtpPacket] = []

    def explode(packet: RtpPacket) -> None:
        calls.append(packet)
        raise RuntimeError("bridge bug")

    ep = RtpEndpoint(allocator, RtpEndpointConfig(frozenset({PCMU})), on_rtp=explode)
    await ep.open()
    try:
        peers[0].remote = ep.local_rtp_address
        peers[0].send_frame(array_of(160))
        await until(lambda: len(calls) == 1)
        peers[0].send_frame(array_of(160))
        await until(lambda: len(calls) == 2)  # the socket is still open
        assert "bridge bug" in caplog.text
    finally:
        ep.close()


async def test_close_while_opening_releases_everything(allocator: RtpPortAllocator) -> None:
    ep = Recorder().endpoint(allocator)
    opening = asyncio.ensure_future(ep.open())
    await asyncio.sleep(0)  # open() is now waiting inside create_datagram_endpoint
    ep.close()
    with pytest.raises(EndpointError, match="closed while opening"):
        await opening
    assert ep.state is EndpointState.CLOSED and allocator.held == frozenset()


def test_addresses_are_the_same_place_whatever_the_ipv6_spelling() -> None:
    """The fast lane's engine reports a primed lane's source as inet_ntop writes it, with flow and scope;
    the SIP leg latches to its SDP's address when that is the same place."""
    assert same_place(("2001:DB8:0::1", 4000), ("2001:db8::1", 4000, 0, 0))
    assert same_place(("192.0.2.7", 4000), ("192.0.2.7", 4000))
    assert not same_place(("2001:db8::1", 4000), ("2001:db8::1", 4002, 0, 0))
    assert not same_place(("2001:db8::1", 4000), ("2001:db8::2", 4000, 0, 0))
    assert same_place(("pbx.example", 4000), ("pbx.example", 4000))  # (a name: as it is written)
