"""RFC 2198 redundancy (audio/red over Opus, issue 35) through a real bridge on 127.0.0.1.

The aiortc "browser" offers red as Chrome does (``a=fmtp:63 <opus>/<opus>``) and sends what Chrome sends
once it is negotiated: each Opus packet in RED with the previous one as a redundant block, rewritten at
its egress before SRTP, where packets are also lost. The phone gets every lost packet back: decoded from
its copy when the call transcodes to PCMU (one frame per slot, none concealed), passed through as plain
Opus with its own sequence number and timestamp when the phone has Opus (the phone never sees RED).
Without RED the same loss is only concealed. Natively (the engine's lanes unwrap RED, restore from it and
send it: _fastlane_red.c) as on the Python path, the call staying on the engine; the answer lists red just
before Opus, so that Chrome sends it."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from aiortc.rtp import RtcpReceiverInfo
from aiortc.rtp import RtpPacket as AiortcRtpPacket

import sdp
from gateway.media.codecs.opus_decoder import opus_available
from gateway.media.rtp.red import RedBlock, pack, unpack
from gateway.media.webrtc import aiortc_hooks
from peers.audio import rms
from peers.binaries import in_ci, unavailable
from tests.media.bridge_harness import Call, allocator
from tests.media.fastlane.test_fastlane_loss import BrowserEgress
from tests.media.fastlane.test_fastpath import (
    OPUS_FRAME,
    OPUS_PT,
    counters,
    linked,
    require_fast_lane,
    require_transcoding,
    until,
)

RED_PT = aiortc_hooks.RED_PAYLOAD_TYPE
LOST = {40, 55, 70}


class ChromeRed:
    """Each Opus packet of the browser's as Chrome sends it with red negotiated: in RED, the previous
    packet's Opus as a redundant block (a ``BrowserEgress`` rewrite, before the loss)."""

    def __init__(self) -> None:
        self._previous: RedBlock | None = None

    def __call__(self, data: bytes) -> bytes:
        packet = AiortcRtpPacket.parse(data)
        primary = RedBlock(OPUS_PT, packet.timestamp, packet.payload)
        packet.payload = pack(primary, [self._previous] if self._previous is not None else [])
        packet.payload_type, self._previous = RED_PT, primary
        return bytes(packet.serialize())


def chrome_like(call: Call) -> None:
    """The browser's offer with red's fmtp naming its Opus, as Chrome writes it (aiortc writes none)."""
    offer = call.web.offer

    async def with_red_fmtp() -> str:
        description = sdp.parse(await offer())
        return sdp.write(description.with_media([sdp.with_opus_red(m) for m in description.media]))

    call.web.offer = with_red_fmtp  # type: ignore[method-assign]


def _answer_red(call: Call) -> list[str]:
    """The answer's audio formats by name (what the browser was given)."""
    remote = call.web.pc.remoteDescription
    (audio,) = [m for m in sdp.parse(remote.sdp).media if m.media == "audio"]
    return [c.name.lower() for c in audio.codecs]


async def _run(sip_codec: str, *, red: bool, engine: str = "native") -> tuple[Call, BrowserEgress]:
    if not opus_available():
        assert not in_ci(), "CI must have libopus"
        unavailable("no libopus")
    lane: dict[str, Any] = {"fast_lane": None} if engine == "python" else {}
    if engine == "native":
        require_fast_lane()
        if sip_codec != "opus":
            require_transcoding("opus>pcmu")
    phone_pt = 111 if sip_codec == "opus" else 0
    call = Call(allocator(), web_codecs=("opus", "red", "telephone-event"), sip_codec=sip_codec,
                phone_payload_type=phone_pt, call_id=f"red-{sip_codec}-{red}", **lane)  # fmt: skip
    chrome_like(call)
    egress = BrowserEgress(call, LOST, set(), set(), ChromeRed() if red else None)
    await call.browser_calls()
    await call.connected()
    if engine == "native":
        await linked(call)  # before the first loss
    await until(lambda: egress.sent >= 90, 15.0, "90 packets from the browser")
    call.web.transceiver.sender.replaceTrack(None)
    await asyncio.sleep(0.3)
    if engine == "native":  # the engine carried the browser's RED, losses and restoring included
        assert counters(call)[1] >= 50, counters(call)
        assert call.link is not None and call.link.native.armed(0)
    return call, egress


@pytest.mark.parametrize(("red", "engine"), [(True, "native"), (True, "python"), (False, "native")])
async def test_a_lost_packet_is_decoded_from_the_next_ones_copy_when_transcoding(
    red: bool, engine: str
) -> None:
    call, egress = await _run("PCMU", red=red, engine=engine)
    try:
        # just before Opus: libwebrtc sends RED only when red comes before its send codec (sdp/opus.py)
        assert _answer_red(call)[:2] == ["red", "opus"]
        audio = [p for p in call.phone.packets if p.payload_type == 0]
        stats = call.bridge.stats().web_to_sip
        # one 20 ms PCMU frame per slot, on the input's timeline, either way
        assert egress.sent - 1 <= len(audio) <= egress.sent, (len(audio), egress.sent)
        assert [(b.timestamp - a.timestamp) % 2**32 for a, b in itertools.pairwise(audio)] == [160] * (
            len(audio) - 1
        )
        # with RED each lost frame is the real one (decoded from its copy), without it concealed
        assert stats.recovered == (len(LOST) if red else 0), stats
        assert stats.lost == len(LOST) and stats.dropped == 0
        assert call.phone.heard(1000.0)
        level = rms(call.phone.pcm[160 * 30 : 160 * 80])
        for slot in range(len(audio)):  # no frame of silence, the restored ones included
            if 5 < slot < len(audio) - 5:
                assert rms(call.phone.pcm[160 * slot : 160 * (slot + 1)]) > 0.5 * level, slot
    finally:
        await call.close()


@pytest.mark.parametrize("engine", ["native", "python"])
async def test_pass_through_unwraps_red_and_gives_the_phone_the_lost_packets(engine: str) -> None:
    call, egress = await _run("opus", red=True, engine=engine)
    try:
        packets = [p for p in call.phone.packets if p.payload_type == 111]
        assert {p.payload_type for p in call.phone.packets} <= {111, 101, 102}  # never RED
        # every packet the browser sent, lost ones included, numbered and stamped in order
        assert len(packets) == egress.sent, (len(packets), egress.sent)
        assert [(b.sequence_number - a.sequence_number) & 0xFFFF for a, b in itertools.pairwise(packets)] == [
            1
        ] * (len(packets) - 1)
        steps = {(b.timestamp - a.timestamp) % 2**32 for a, b in itertools.pairwise(packets)}
        assert steps == {OPUS_FRAME}, steps
        assert call.bridge.stats().web_to_sip.recovered == len(LOST)
    finally:
        await call.close()


class BrowserRed:
    """What the browser receives: (payload type, timestamp, payload); RED ones consumed (aiortc cannot
    decode them), the others left to the browser."""

    def __init__(self, call: Call) -> None:
        self.packets: list[tuple[int, int, bytes]] = []
        aiortc_hooks.tap_receiver(call.web.transceiver.receiver, self._tap)

    def _tap(self, packet: AiortcRtpPacket) -> bool:
        if packet.payload_type in (OPUS_PT, RED_PT):
            self.packets.append((packet.payload_type, packet.timestamp, bytes(packet.payload)))
        return packet.payload_type == RED_PT


@pytest.mark.parametrize("engine", ["native", "python"])
async def test_red_goes_to_the_browser_as_rfc_2198_says(engine: str) -> None:
    """media.opus_red: on (auto's lossy state): the phone's PCMU transcoded to Opus reaches the browser in
    RED, each packet with the previous one as its redundant block, across the hand-over between Python
    (the first packets) and the engine (the others)."""
    lane: dict[str, Any] = {} if engine == "native" else {"fast_lane": None}
    if engine == "native":
        require_fast_lane()
        require_transcoding("pcmu>opus")
    web_codecs = ("opus", "red", "telephone-event")
    call = Call(allocator(), web_codecs=web_codecs, call_id="red-send", opus_red="on", **lane)
    chrome_like(call)
    browser = BrowserRed(call)
    try:
        await call.browser_calls()
        await call.connected()
        if call.bridge.fast_lane is not None:
            await linked(call)
        sender = call.bridge._web.direct_sender
        assert sender.red_payload_type == RED_PT and sender.red_active
        await call.play(0.4)
        red = browser.packets
        assert len(red) >= 15 and {pt for pt, _, _ in red} == {RED_PT}
        blocks = [unpack(payload, timestamp) for _, timestamp, payload in red]
        assert blocks[0] is not None and len(blocks[0]) == 1  # the first: a primary alone
        for before, after in itertools.pairwise(blocks):
            assert before is not None and after is not None
            *copies, primary = after
            assert primary.payload_type == OPUS_PT and primary.payload
            # the one redundant block: the previous packet's Opus, its timestamp by the 14-bit offset
            assert copies == [before[-1]] and (primary.timestamp - copies[0].timestamp) % 2**32 == OPUS_FRAME
        if engine == "native":  # the engine sent them (its lane to the browser armed for RED)
            assert counters(call)[2] >= 10 and call.link is not None and call.link.native.armed(1)
    finally:
        await call.close()


async def test_auto_sends_red_while_the_browser_reports_loss() -> None:
    """The browser's receiver reports (fraction lost, RFC 3550 §6.4.1) turn RED on above 1 % and off below,
    and the engine's lane to the browser is re-armed to send it or not."""
    call = Call(allocator(), web_codecs=("opus", "red", "telephone-event"), call_id="red-auto")
    chrome_like(call)
    try:
        await call.browser_calls()
        await call.connected()
        sender = call.bridge._web.direct_sender
        assert sender.red_payload_type == RED_PT and not sender.red_active  # no report yet
        controller = call.bridge.fast_lane
        if controller is not None:
            await linked(call)
        for fraction, active in ((26, True), (2, False), (5, True), (0, False)):  # 10 %, 0.8 %, 2 %, 0
            block = RtcpReceiverInfo(ssrc=sender.ssrc, fraction_lost=fraction, packets_lost=0,
                                     highest_sequence=1, jitter=0, lsr=0, dlsr=0)  # fmt: skip
            sender._reported(block)
            assert sender.red_active is active, fraction
            if controller is not None:
                assert controller._red is active, fraction
    finally:
        await call.close()


async def test_off_leaves_red_out_of_the_answer() -> None:
    call = Call(allocator(), web_codecs=("opus", "red", "telephone-event"), call_id="red-off", opus_red="off")
    chrome_like(call)
    try:
        await call.browser_calls()
        assert "red" not in _answer_red(call)
        assert call.bridge._web.direct_sender.red_payload_type is None
    finally:
        await call.close()
