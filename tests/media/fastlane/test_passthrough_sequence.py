"""Pass-through keeps the input's sequence numbers' gaps and order (issue 35): a phone's RTP through a whole
call (bridge, fast-lane engine or the Python path) to an aiortc browser, and the browser's the other way.
The phone sends 1, 2, 4, 3, 6 (relative): the browser receives the same relative order with the gap at 5;
a new SSRC continues the output without a false gap; the wrap at 65535 is kept."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from gateway.media import fastlane
from gateway.media.fastlane.native import SIP_TO_WEB
from gateway.media.rtp.ports import RtpPortAllocator
from gateway.media.webrtc import aiortc_hooks
from peers.binaries import in_ci, unavailable
from peers.webpeer import WebPeer
from tests.media.bridge_harness import Call, allocator
from tests.media.fastlane.test_fastlane_engine import RtpPacketView, arm_both, open_srtp_link, receive, rtp
from tests.media.fastlane.test_fastpath import TO_WEB, counters, linked, require_fast_lane, until

FRAME = bytes([0xFF]) * 160  # PCMU silence, 20 ms


@pytest.fixture
def ports() -> RtpPortAllocator:
    return allocator(36000, 37999)


async def send_pattern(call: Call, relative: list[int], *, ssrc: int | None = None) -> None:
    """The phone sends frames whose sequence numbers (and timestamps) are ``relative`` to its next, paced
    at 20 ms; afterwards its next follows the highest."""
    phone = call.phone
    if ssrc is not None:
        phone.ssrc = ssrc
    base, ts = phone.sequence, phone.timestamp
    for step in relative:
        phone.sequence, phone.timestamp = (base + step) & 0xFFFF, (ts + 160 * step) & 0xFFFF_FFFF
        phone.send_payload(FRAME, 160)
        await asyncio.sleep(0.02)
    phone.sequence, phone.timestamp = (base + max(relative) + 1) & 0xFFFF, (ts + 160 * (max(relative) + 1))


def relative_to_first(seqs: list[int]) -> list[int]:
    return [(s - seqs[0]) & 0xFFFF for s in seqs]


@pytest.mark.parametrize("fast", [True, False], ids=["fast-lane", "python-path"])
async def test_gaps_reordering_source_change_and_wrap_reach_the_browser(
    ports: RtpPortAllocator, fast: bool
) -> None:
    if fast and not fastlane.available():
        assert not in_ci(), "CI must build gateway.media.fastlane._fastlane (pip install -e .)"
        unavailable("gateway.media.fastlane._fastlane is not built")
    call = Call(ports) if fast else Call(ports, fast_lane=None)
    call.phone.sequence = 65500  # the wrap comes during the test
    try:
        await call.browser_calls()
        await call.connected()
        if fast:
            await linked(call)
        await call.play(0.5)  # the lane armed on steady audio
        before = counters(call)[TO_WEB] if fast else 0
        call.web.clear()
        got = len(call.web.seqs)
        await send_pattern(call, [0, 1, 3, 2, 5])  # 1, 2, 4, 3, 6 of the brief: 5 lost, 3 and 4 swapped
        await until(lambda: len(call.web.seqs) >= got + 5, 5.0, "the pattern at the browser")
        assert relative_to_first(call.web.seqs[got:]) == [0, 1, 3, 2, 5]
        if fast:  # the engine carried them, not Python
            assert counters(call)[TO_WEB] >= before + 5
        last = max(call.web.seqs[got:], key=lambda s: (s - call.web.seqs[got]) & 0xFFFF)
        # a new source (another SSRC, far-off numbers): the output continues after the highest, no gap
        got = len(call.web.seqs)
        call.phone.sequence = 12345
        await send_pattern(call, [0, 1, 2, 4], ssrc=call.phone.ssrc ^ 0x5A5A)
        await until(lambda: len(call.web.seqs) >= got + 4, 5.0, "the new source at the browser")
        assert [(s - last) & 0xFFFF for s in call.web.seqs[got:]] == [1, 2, 3, 5]
        # the input wraps at 65535: no jump (it is still in order)
        got = len(call.web.seqs)
        call.phone.sequence = 65533
        await send_pattern(call, list(range(6)))  # resynchronised once (a jump), then steady across 0
        await until(lambda: len(call.web.seqs) >= got + 6, 5.0, "the wrap at the browser")
        steps = {
            (b - a) & 0xFFFF for a, b in zip(call.web.seqs[got:], call.web.seqs[got + 1 :], strict=False)
        }
        assert steps == {1}, call.web.seqs[got:]
        assert len(call.web.ssrcs) == 1  # the browser sees one source throughout
    finally:
        await call.close()


def tap_wire(peer: WebPeer) -> list[bytes]:
    """The SRTP datagrams reaching ``peer``'s ICE sockets, as they came (before its libsrtp, whose replay
    check would hide a repeated index)."""
    seen: list[bytes] = []
    for protocol in list(getattr(aiortc_hooks.ice_connection(peer.pc), "_protocols", [])):
        original = protocol.datagram_received

        def received(data: bytes, addr: tuple[str, int], original: Callable[..., None] = original) -> None:
            if len(data) > 12 and 128 <= data[0] < 192 and not 192 <= data[1] <= 223:  # SRTP, not SRTCP
                seen.append(data)
            original(data, addr)

        protocol.datagram_received = received
    return seen


@pytest.mark.parametrize("fast", [True, False], ids=["fast-lane", "python-path"])
async def test_no_two_packets_reach_the_browser_under_one_srtp_index(
    ports: RtpPortAllocator, fast: bool
) -> None:
    """RFC 3711 §9.1, RFC 7714 §9.1: the gateway numbers what it forwards from the phone's numbers, so a
    duplicate of a phone's packet with another payload, and a new source's first two packets arriving
    swapped (the late one maps onto the old source's last number), would go out under an index already
    used: the XOR of two payloads, and with GCM the authentication key, for whoever sees the browser's
    traffic. Each index reaches the browser once; the call goes on."""
    if fast and not fastlane.available():
        assert not in_ci(), "CI must build gateway.media.fastlane._fastlane (pip install -e .)"
        unavailable("gateway.media.fastlane._fastlane is not built")
    call = Call(ports) if fast else Call(ports, fast_lane=None)
    try:
        await call.browser_calls()
        await call.connected()
        if fast:
            await linked(call)
        await call.play(0.5)
        wire = tap_wire(call.web)
        got = len(call.web.seqs)
        await send_pattern(call, [0, 1, 2])
        phone = call.phone
        phone.sequence, phone.timestamp = (phone.sequence - 2) & 0xFFFF, (phone.timestamp - 320) & 0xFFFF_FFFF
        phone.send_payload(bytes([0x7F]) * 160, 160)  # the middle one again, another payload
        phone.sequence = 20000
        await send_pattern(call, [1, 0, 2, 3, 4], ssrc=phone.ssrc ^ 0x5A5A)  # a new source, 1 and 0 swapped
        await until(lambda: len(call.web.seqs) >= got + 6, 5.0, "the packets at the browser")
        await asyncio.sleep(0.1)
        by_index: dict[tuple[int, int], set[bytes]] = {}
        for datagram in wire:
            key = (int.from_bytes(datagram[8:12], "big"), int.from_bytes(datagram[2:4], "big"))
            by_index.setdefault(key, set()).add(datagram)
        assert by_index and all(len(copies) == 1 for copies in by_index.values()), {
            k: len(v) for k, v in by_index.items() if len(v) > 1
        }
    finally:
        await call.close()


async def test_the_engine_maps_a_lanes_sequence_numbers_and_hands_the_map_over() -> None:
    """The engine alone (real sockets, SRTP both legs): a lane armed for pass-through sends 10, 11, 13,
    12, 15 on as 200, 201, 203, 202, 205; its map goes to Python (sequence_map) and back
    (set_sequence_map); bad arguments are refused with the field named."""
    require_fast_lane()
    async with open_srtp_link() as s:
        native = s.linked.link.native
        native.set_sequence_map(SIP_TO_WEB, -1, 0, 0, -1)
        arm_both(s, 10)
        out = []
        for seq in (10, 11, 13, 12, 15):
            s.phone_socket.sendto(s.phone.protect(rtp(seq)), s.linked.sip)
            out.append(RtpPacketView(s.browser_rx.unprotect(await receive(s.browser_socket))).seq)
        assert out == [200, 201, 203, 202, 205]
        assert native.sequence(SIP_TO_WEB) == 206
        assert native.sequence_map(SIP_TO_WEB) == (0x1234, 190, 15, -1)
        # Python's forwarded packet with a number it mapped, then the engine continues from Python's map
        assert (
            native.send(SIP_TO_WEB, s.browser_socket.getsockname(), False, 0, 2560, b"\xff" * 160, 206) == 206
        )
        await receive(s.browser_socket)
        native.set_sequence_map(SIP_TO_WEB, 0x1234, 1000, 16, -1)  # e.g. Python resynchronised
        s.phone_socket.sendto(s.phone.protect(rtp(17)), s.linked.sip)
        assert RtpPacketView(s.browser_rx.unprotect(await receive(s.browser_socket))).seq == 1017
        for bad, message in (
            ((SIP_TO_WEB, -2, 0, 0, -1), "ssrc -1 or 32 bits"),
            ((SIP_TO_WEB, 1, 70000, 0, -1), "offset and highest 16 bits"),
            ((2, 1, 0, 0, -1), "which 0/1"),
        ):
            with pytest.raises(ValueError, match=message):
                native.set_sequence_map(*bad)
        with pytest.raises(ValueError, match="seq -1 or 16 bits"):
            native.send(SIP_TO_WEB, s.browser_socket.getsockname(), False, 0, 0, b"", 70000)
        with pytest.raises(ValueError, match="fec 0/1, percent 0-100"):
            native.opus_loss(SIP_TO_WEB, 1, 101)
        assert native.opus_encoder(SIP_TO_WEB) is None  # a pass-through lane has no encoder
        assert native.opus_loss(SIP_TO_WEB, 1, 10) is False  # kept for when one is made
