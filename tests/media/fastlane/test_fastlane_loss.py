"""A transcoded call under loss and reordering (issue 35), through a real bridge on 127.0.0.1. A plain RTP
phone sends PCMU speech whose packets the network loses and reorders (seeded), an aiortc browser receives
Opus. Natively (the engine's transcoding lane) and on the Python path, the browser gets one frame per
20 ms slot - the lost ones concealed by G.711 Appendix I - on a timeline without a shifted frame, and the
swapped pairs come out in order. The other way, the browser's Opus is impaired at its egress (before SRTP)
and the phone gets a PCMU frame per slot, libopus concealing the lost ones; late packets are dropped."""

from __future__ import annotations

import array
import asyncio
import itertools
import math
import random
from collections.abc import Callable
from typing import Any

import pytest

from gateway.media.codecs.opus_decoder import OpusDecoder, opus_available
from gateway.media.rtp.packet import RtpPacket
from gateway.media.rtp.ports import RtpPortAllocator
from gateway.media.webrtc import aiortc_hooks
from peers.audio import rms, ulaw_encode
from peers.binaries import in_ci, unavailable
from tests.media.bridge_harness import Call, allocator
from tests.media.fastlane.test_fastpath import (
    OPUS_FRAME,
    OPUS_ONLY,
    OPUS_PT,
    counters,
    linked,
    require_fast_lane,
    require_transcoding,
    until,
)

TO_WEB = 2  # Link.counters()
FRAMES = 80
QUIET, LOUD = 600, 9000


class OpusTap:
    """The Opus packets the browser receives: (sequence number, timestamp, payload)."""

    def __init__(self, call: Call) -> None:
        self.packets: list[tuple[int, int, bytes]] = []
        aiortc_hooks.tap_receiver(call.web.transceiver.receiver, self._tap)

    def _tap(self, packet: Any) -> bool:
        if packet.payload_type == OPUS_PT:
            self.packets.append((packet.sequence_number, packet.timestamp, bytes(packet.payload)))
        return False


def _frame(index: int) -> array.array[int]:
    """20 ms of a 300 Hz voice-like tone, loud in odd frames, quiet in even ones (so order shows)."""
    level = LOUD if index % 2 else QUIET
    return array.array(
        "h", (int(level * math.sin(2 * math.pi * 300 * (160 * index + n) / 8000)) for n in range(160))
    )


def _schedule(seed: int) -> tuple[list[int], set[int], int]:
    """The order the phone's frames go out in: after a clean start, a few lost (one of them comes much
    later) and a few pairs swapped; and the first of the first swapped pair: the reorder wait is 0 until
    a reordering is seen (gateway/media/rtp/reorder.py), so that one is concealed and dropped when it
    comes, and the wait it needed is waited for the later swaps."""
    rng = random.Random(seed)
    slots = list(range(FRAMES))
    lost = set(rng.sample(range(30, FRAMES - 10, 2), 4))
    swaps = [
        i for i in range(31, FRAMES - 10, 2) if i not in lost and i + 1 not in lost and i - 1 not in lost
    ]
    swapped = rng.sample(swaps, 3)
    for i in swapped:
        slots[i], slots[i + 1] = slots[i + 1], slots[i]
    order = [i for i in slots if i not in lost]
    # one comes a dozen frames late: by then a packet more than the reorder buffer's 8 slots ahead has made
    # its slot concealed, whatever the machine's load did to the spacing (a wait of 60 ms alone might not
    # have passed in the lane's clock): dropped
    late = min(lost)
    order.insert(next(n for n, i in enumerate(order) if i >= late + 12), late)
    return order, lost, min(swapped)


@pytest.mark.parametrize("engine", ["native", "python"])
async def test_loss_and_reordering_from_the_phone_are_concealed_and_put_in_order(engine: str) -> None:
    if not opus_available():
        assert not in_ci(), "CI must have libopus (the fast lane and aiortc's opus use it)"
        unavailable("no libopus")
    ports: RtpPortAllocator
    if engine == "native":
        require_fast_lane()
        require_transcoding("pcmu>opus")
        ports = allocator()
        call = Call(ports, web_codecs=OPUS_ONLY)
    else:
        ports = allocator()
        call = Call(ports, web_codecs=OPUS_ONLY, fast_lane=None)
    tap = OpusTap(call)
    order, lost, learnt = _schedule(35)
    try:
        await call.browser_calls()
        await call.connected()
        phone = call.phone
        assert phone.remote is not None
        base_seq, base_ts = phone.sequence, phone.timestamp
        loop = asyncio.get_running_loop()
        start = loop.time()
        for n, index in enumerate(order):
            packet = RtpPacket(0, (base_seq + index) & 0xFFFF, (base_ts + 160 * index) & 0xFFFFFFFF,
                               phone.ssrc, ulaw_encode(_frame(index)))  # fmt: skip
            phone.send_raw(packet.serialize())
            if engine == "native" and n == 20:
                await linked(call)  # the lane takes the call before the first loss
            await asyncio.sleep(max(0.0, start + 0.02 * (n + 1) - loop.time()))
        await until(lambda: len(tap.packets) >= FRAMES, 10.0, f"{FRAMES} frames at the browser")
        await asyncio.sleep(0.2)  # nothing more comes
        if engine == "native":
            assert counters(call)[TO_WEB] >= FRAMES - 30  # the engine, not Python, transcoded the losses
        packets = tap.packets
        assert len(packets) == FRAMES  # every slot: the lost frames concealed, nothing doubled
        assert [(b[0] - a[0]) & 0xFFFF for a, b in itertools.pairwise(packets)] == [1] * (FRAMES - 1)
        steps = [(b[1] - a[1]) & 0xFFFFFFFF for a, b in itertools.pairwise(packets)]
        assert steps == [OPUS_FRAME] * (FRAMES - 1)  # the input's spacing: no frame shifted by a gap
        decoder = OpusDecoder(8000)
        levels = [rms(array.array("h", decoder.decode(p[2]))) for p in packets]
        # the swapped pairs came out in order: odd slots louder than even ones (the codec's delay and
        # look-ahead carry several ms of each frame into the next, hence the small margin), the concealed
        # ones not silent
        concealed = {*lost, learnt}  # (learnt: the first swap, before the wait had seen one)
        for slot in range(4, FRAMES):
            if slot in concealed or slot - 1 in concealed:
                continue
            louder = (
                levels[slot] > 1.2 * levels[slot - 1] if slot % 2 else levels[slot - 1] > 1.2 * levels[slot]
            )
            assert louder, (slot, levels[slot - 1 : slot + 1], sorted(lost))
        assert all(levels[slot] > QUIET / 4 for slot in concealed), [levels[s] for s in sorted(concealed)]
        stats = call.bridge.stats()
        assert stats.sip_to_web.dropped == 2  # the late one, and the first swap's first
    finally:
        await call.close()


class BrowserEgress:
    """The browser's outgoing Opus, impaired before SRTP (as a lossy network would, at its egress): packets
    ``lost`` never go, ``swapped`` ones go after the next, ``late`` ones 200 ms after their slot; each one
    ``rewrite`` first when given (RED wrapping: tests/media/test_bridge_red.py)."""

    def __init__(
        self,
        call: Call,
        lost: set[int],
        swapped: set[int],
        late: set[int],
        rewrite: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.sent = 0  # Opus packets the browser sent (the impaired ones counted)
        self._lost, self._swapped, self._late, self._rewrite = lost, swapped, late, rewrite
        self._held: bytes | None = None
        self._later: dict[int, bytes] = {}
        transport = call.web.transceiver.sender.transport
        self._send = transport._send_rtp
        setattr(transport, "_send_rtp", self._impaired)  # noqa: B010  (an instance attribute over the method)

    async def _impaired(self, data: bytes) -> None:
        if len(data) < 12 or data[1] & 0x7F != OPUS_PT or 192 <= data[1] <= 223:
            await self._send(data)
            return
        index = self.sent
        self.sent += 1
        if self._rewrite is not None:
            data = self._rewrite(data)
        if index in self._late:
            self._later[index + 10] = data
        elif index in self._swapped:
            self._held = data
        elif index not in self._lost:
            await self._send(data)
            if self._held is not None:
                held, self._held = self._held, None
                await self._send(held)
        if index in self._later:
            await self._send(self._later.pop(index))


@pytest.mark.parametrize("engine", ["native", "python"])
async def test_loss_and_reordering_from_the_browser_are_concealed_and_put_in_order(engine: str) -> None:
    if not opus_available():
        assert not in_ci(), "CI must have libopus (the fast lane and aiortc's opus use it)"
        unavailable("no libopus")
    if engine == "native":
        require_fast_lane()
        require_transcoding("opus>pcmu")
        call = Call(allocator(), web_codecs=OPUS_ONLY)
    else:
        call = Call(allocator(), web_codecs=OPUS_ONLY, fast_lane=None)
    egress = BrowserEgress(call, lost={40, 55, 56, 70}, swapped={45, 61}, late={40})
    try:
        await call.browser_calls()
        await call.connected()
        if engine == "native":
            await linked(call)
        await until(lambda: egress.sent >= 90, 15.0, "90 packets from the browser")
        call.web.transceiver.sender.replaceTrack(None)
        await asyncio.sleep(0.3)
        sent = egress.sent
        audio = [p for p in call.phone.packets if p.payload_type == 0]
        if engine == "native":
            assert counters(call)[1] >= 40  # the engine transcoded the browser's losses
        # one 20 ms PCMU frame per slot from the first the phone got to the last: the lost ones concealed
        # (libopus PLC: aiortc sends no FEC), nothing doubled (the late one dropped), the input's spacing
        assert sent - 1 <= len(audio) <= sent, (len(audio), sent)
        assert {len(p.payload) for p in audio} == {160}
        assert [(b.sequence_number - a.sequence_number) & 0xFFFF for a, b in itertools.pairwise(audio)] == [
            1
        ] * (len(audio) - 1)
        assert [(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in itertools.pairwise(audio)] == [160] * (
            len(audio) - 1
        )
        assert call.phone.heard(1000.0)
        # the late one, and 45: the first swap, before the reorder wait had seen one (rtp/reorder.py)
        assert call.bridge.stats().web_to_sip.dropped == 2
    finally:
        await call.close()
