"""Round-trip times from RTCP (RFC 3550 §6.4.1: A - LSR - DLSR, A the report's ARRIVAL) through the fast
lane, whose engine holds the RTCP it leaves to Python up to NOTIFY_DELAY (10 ms) for one wake-up to carry
many calls' (gateway.media.arrival): with a single call and nothing else waking Python, each report
waits the full 10 ms, which the RTT must not count. On loopback the RTT is well under a millisecond.

The SIP leg: an ``RtpEndpoint`` (rtcp-mux, as with DTLS-SRTP) linked to an engine, a real UDP socket
sending receiver reports whose LSR is the NTP time of sending and DLSR 0 (so A - LSR is the transit and
the time until Python takes the report as its arrival), then a sender report whose arrival our own
reports' DLSR counts from. The web leg: a whole call (aiortc browser <->
bridge <-> RTP phone), the RTT both aiortc senders estimate from each other's reports (the bridge's
from the browser's RRs, which the engine holds; the browser's from the bridge's RRs, whose DLSR counts
from the browser's SR, which the engine held)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

import pylibsrtp
from aiortc.rtcrtpsender import RTT_ALPHA

from gateway.media import arrival
from gateway.media.fastlane.engine import EnginePool
from gateway.media.fastlane.native import Address, NativeLink
from gateway.media.ports import RtpPortAllocator
from gateway.media.rtcp import ReportBlock, RtcpReceiverReport, RtcpSenderReport, serialize_rtcp
from gateway.media.rtp import ntp_from_unix, ntp_middle32
from gateway.media.rtp_endpoint import RtpEndpoint, RtpEndpointConfig
from tests.media.bridge_harness import Call, allocator
from tests.media.test_fastlane_engine import KEY, Handler, Quiet, rtp
from tests.media.test_fastpath import linked, require_fast_lane, until

PEER_SSRC = 0x7E57
LOOPBACK_RTT = 0.003  # seconds; the bug read ~0.010 (the engine's NOTIFY_DELAY) more


class EndpointHandler(Handler):
    """Hands the SIP socket's datagrams to the endpoint, as the bridge's fast-lane controller does."""

    def __init__(self, endpoint: RtpEndpoint) -> None:
        super().__init__()
        self.endpoint = endpoint

    def fast_sip_datagram(self, data: bytes, source: Address) -> None:
        self.endpoint.datagram(data, source)


def receiver_report(ssrc: int) -> bytes:
    """An RR of our stream whose LSR is now (NTP, RFC 3550 §4) and DLSR 0: its RTT is its transit."""
    block = ReportBlock(ssrc, last_sr=ntp_middle32(ntp_from_unix(time.time())), delay_since_last_sr=0)
    return serialize_rtcp([RtcpReceiverReport(PEER_SSRC, (block,))])


def sender_report(ntp: int) -> bytes:
    return serialize_rtcp([RtcpSenderReport(PEER_SSRC, ntp, 160, 1, 160)])


async def test_sip_leg_rtt_counts_from_the_reports_arrival_not_from_the_engines_wakeup() -> None:
    require_fast_lane()
    loop = asyncio.get_running_loop()
    config = RtpEndpointConfig(frozenset({0}), rtcp_mux=True)
    endpoint = RtpEndpoint(allocator(28000, 28999), config, on_rtp=lambda packet: None, call_id="rtt")
    await endpoint.open()
    web_t, _ = await loop.create_datagram_endpoint(Quiet, local_addr=("127.0.0.1", 0))
    rx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    tx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    pool = EnginePool(workers=1)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def install(native: NativeLink) -> Callable[[tuple[int, int]], None]:
        return lambda sequences: None

    assert endpoint.rtp_transport is not None
    link = pool.link(
        EndpointHandler(endpoint), call_id="rtt", web_transport=web_t, sip_transport=endpoint.rtp_transport,
        sessions=(rx, tx), install=install,
    )  # fmt: skip
    rtts: list[float] = []
    try:
        for _ in range(5):
            reports = endpoint.far_end.reports
            peer.sendto(receiver_report(endpoint.ssrc), endpoint.local_rtp_address)
            deadline = loop.time() + 2.0
            while endpoint.far_end.reports == reports:  # the engine's eventfd wakes Engine.drain
                assert loop.time() < deadline, "the report never reached the endpoint"
                await asyncio.sleep(0.001)
            assert endpoint.far_end.rtt is not None
            rtts.append(endpoint.far_end.rtt)
        # our own reports' DLSR counts from the peer's SR's arrival: (now - sent) - DLSR is its transit
        peer.sendto(rtp(1, ssrc=PEER_SSRC), endpoint.local_rtp_address)  # RTP wakes Python at once
        await until(lambda: endpoint.statistics is not None)
        ntp = ntp_from_unix(time.time())
        sent = loop.time()  # the endpoint's clock
        peer.sendto(sender_report(ntp), endpoint.local_rtp_address)
        stats = endpoint.statistics
        assert stats is not None
        await until(lambda: stats.report_block(loop.time()).last_sr == ntp_middle32(ntp))
        now = loop.time()
        dlsr = stats.report_block(now).delay_since_last_sr / 65536
        assert arrival.late == 0.0  # outside a drain
    finally:
        peer.close()
        link.close()
        pool.close()
        web_t.close()
        endpoint.close()
    assert min(rtts) < LOOPBACK_RTT, rtts  # the bug added its delay to every sample; load adds to some
    assert (now - sent) - dlsr < LOOPBACK_RTT, (now - sent, dlsr)


def rtt_samples(sender: Any, samples: list[float]) -> Callable[[], None]:
    """Record each RTT sample aiortc's sender folds into its estimate (rtt = a x rtt + (1 - a) x sample)."""
    last: list[float | None] = [None]

    def poll() -> None:
        rtt = sender._RTCRtpSender__rtt
        if rtt is not None and rtt != last[0]:
            old = last[0]
            samples.append(rtt if old is None else (rtt - RTT_ALPHA * old) / (1 - RTT_ALPHA))
            last[0] = rtt

    return poll


async def test_web_leg_rtt_counts_from_the_reports_arrival_not_from_the_engines_wakeup() -> None:
    require_fast_lane()
    ports: RtpPortAllocator = allocator(29000, 29999)
    call = Call(ports, call_id="rtt", web_rtcp_interval=1.0)
    bridge_samples: list[float] = []
    browser_samples: list[float] = []
    try:
        await call.browser_calls()
        await call.connected()
        await linked(call)
        polls = (
            rtt_samples(call.bridge._web.direct_sender._sender, bridge_samples),
            rtt_samples(call.web.transceiver.sender, browser_samples),
        )
        playing = asyncio.ensure_future(call.play(6.0))  # the phone's RTP keeps the lanes armed
        while not playing.done():
            for poll in polls:
                poll()
            await asyncio.sleep(0.005)
        await playing
        assert call.link is not None  # linked all along: the browser's reports went through the engine
    finally:
        await call.close()
    # each side's RR answers the other's last SR only when no newer SR went out meanwhile
    assert len(bridge_samples) >= 2 and len(browser_samples) >= 2, (bridge_samples, browser_samples)
    assert min(bridge_samples) < LOOPBACK_RTT, bridge_samples  # as above: min, not median
    assert min(browser_samples) < LOOPBACK_RTT, browser_samples
