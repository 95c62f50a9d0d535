"""Our RTCP reports to the browser carry the loss the gateway sees (issue 35, RFC 3550 §6.4.1, §A.3): an
aiortc browser whose every 10th RTP packet is dropped at its egress (before SRTP: a real gap at the
gateway) through a whole call, on the fast lane and on the Python path; the report blocks about its
stream it receives say ~10 % fraction lost and exactly the cumulative loss up to their highest sequence
number. And the engine's Opus encoder towards the browser (a G.711 phone transcoded to Opus) turns in-band
FEC on at the reported rate when the browser's own reports show loss (media.opus_inband_fec: auto)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket, RtcpSrPacket

from gateway.media import fastlane
from gateway.media.codecs import opus_settings
from gateway.media.fastlane.native import SIP_TO_WEB
from gateway.media.rtp.ports import RtpPortAllocator
from peers.binaries import in_ci, unavailable
from tests.media.bridge_harness import Call, allocator
from tests.media.fastlane.test_fastpath import linked, require_fast_lane, until


@pytest.fixture
def ports() -> RtpPortAllocator:
    return allocator(39000, 39999)


def lossy_egress(call: Call, every: int) -> list[int]:
    """Drop every ``every``-th RTP packet the browser sends (RTCP passes); the dropped sequence numbers."""
    dtls: Any = call.web.transceiver.sender.transport
    send = dtls._send_rtp
    dropped: list[int] = []
    count = 0

    async def lossy(data: bytes) -> None:
        nonlocal count
        if len(data) > 12 and not 192 <= data[1] <= 223:  # RTP, not RTCP (RFC 5761 §4)
            count += 1
            if count % every == 0:
                dropped.append(int.from_bytes(data[2:4], "big"))
                return
        await send(data)

    dtls._send_rtp = lossy
    return dropped


def lossy_ingress(call: Call, every: int) -> list[int]:
    """Drop every ``every``-th RTP packet the browser receives (decrypted, before aiortc's receiver and its
    statistics); the dropped sequence numbers. A -1 in the list stops it."""
    dtls: Any = call.web.transceiver.receiver.transport
    handle = dtls._handle_rtp_data
    dropped: list[int] = []
    count = 0

    async def lossy(data: bytes, arrival_time_ms: int) -> None:
        nonlocal count
        count += 1
        if -1 not in dropped and count % every == 0:
            dropped.append(int.from_bytes(data[2:4], "big"))
            return
        await handle(data, arrival_time_ms)

    dtls._handle_rtp_data = lossy
    return dropped


def received_blocks(call: Call) -> list[RtcpReceiverInfo]:
    """The report blocks about the browser's stream that it receives from the gateway, in order."""
    sender: Any = call.web.transceiver.sender
    handle = sender._handle_rtcp_packet
    blocks: list[RtcpReceiverInfo] = []

    async def recorded(packet: Any) -> None:
        if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            blocks.extend(b for b in packet.reports if b.ssrc == sender._ssrc)
        await handle(packet)

    sender._handle_rtcp_packet = recorded
    return blocks


def lost_up_to(dropped: list[int], highest: int) -> int:
    """How many of ``dropped`` are at or before the extended sequence number ``highest`` (16-bit compare)."""
    return sum(1 for seq in dropped if (highest - seq) & 0xFFFF < 0x8000)


@pytest.mark.parametrize("fast", [True, False], ids=["fast-lane", "python-path"])
async def test_the_browsers_loss_is_in_our_reports(ports: RtpPortAllocator, fast: bool) -> None:
    if fast and not fastlane.available():
        assert not in_ci(), "CI must build gateway.media.fastlane._fastlane (pip install -e .)"
        unavailable("gateway.media.fastlane._fastlane is not built")
    settings: dict[str, Any] = {"web_rtcp_interval": 1.0}
    if not fast:
        settings["fast_lane"] = None
    call = Call(ports, call_id=f"loss-{fast}", **settings)
    try:
        await call.browser_calls()
        dropped = lossy_egress(call, 10)
        blocks = received_blocks(call)
        await call.connected()
        if fast:
            await linked(call)
        playing = asyncio.ensure_future(call.play(6.0))  # the phone's RTP keeps the lanes armed
        await until(lambda: len(blocks) >= 4, 10.0, "four of our reports at the browser")
        await playing
        assert dropped, "nothing was dropped"
        later = blocks[1:]  # the first interval may start mid-way
        for block in later:
            assert 15 <= block.fraction_lost <= 40, [(b.fraction_lost, b.packets_lost) for b in blocks]
        last = blocks[-1]
        assert last.packets_lost == lost_up_to(dropped, last.highest_sequence), (last, dropped)
        assert last.packets_lost >= 10
    finally:
        await call.close()


async def test_the_engines_opus_encoder_turns_fec_on_when_the_browser_reports_loss(
    ports: RtpPortAllocator,
) -> None:
    require_fast_lane()
    opus_settings.configure(opus_settings.OpusEncoderSettings.from_mode(5, "auto"))
    call = Call(ports, call_id="fec-auto", web_codecs=("opus",), web_rtcp_interval=1.0)  # PCMU phone
    try:
        await call.browser_calls()
        await call.connected()
        await linked(call)
        await call.play(0.6)
        link = call.link
        assert link is not None
        await until(lambda: link.native.opus_encoder(SIP_TO_WEB) is not None, 5.0, "the engine's encoder")
        assert link.native.opus_encoder(SIP_TO_WEB) == (0, 0)  # no report of loss yet: FEC off
        # the browser loses every 10th of our packets (dropped at its ingress, after SRTP): its own
        # receiver reports say ~10 %, then, once the loss stops, 0
        lossy = lossy_ingress(call, 10)
        playing = asyncio.ensure_future(call.play(8.0))

        def fec_on() -> bool:
            settings = link.native.opus_encoder(SIP_TO_WEB)
            return settings is not None and settings[0] == 1 and 5 <= settings[1] <= 20

        await until(fec_on, 6.0, "FEC on at the reported rate")
        assert lossy
        lossy.clear()
        lossy.append(-1)  # stop dropping
        await until(lambda: link.native.opus_encoder(SIP_TO_WEB) == (0, 0), 6.0, "FEC off again")
        await playing
        assert call.link is link
    finally:
        await call.close()
        opus_settings.configure(opus_settings.OpusEncoderSettings())
