"""The RTCP of the SIP leg's RTP endpoint (gateway/media/rtp/rtp_endpoint.py), RFC 3550 §6: reports in
(the far end's view of our stream, its sender reports, BYE; a held or quiet peer judged alive by them) and
out (SR or RR with SDES CNAME at a randomized interval, §6.3.1; feedback after a report, RFC 4585 §6).

``EndpointRtcp`` is a base of ``RtpEndpoint``, whose fields it uses (declared below for the type checker).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.media import arrival
from gateway.media.coarse_timers import PERIODIC_GRID, Cancellable, coarse_timers
from gateway.media.errors import PacketError
from gateway.media.rtp.endpoint_state import Address, EndpointState, RtpEndpointConfig
from gateway.media.rtp.latch import LatchState, SymmetricLatch
from gateway.media.rtp.packet import SDES_CNAME, ntp_from_unix
from gateway.media.rtp.rtcp import (
    ReportBlock,
    RtcpBye,
    RtcpPacket,
    RtcpReceiverReport,
    RtcpSenderReport,
    RtcpSourceDescription,
    SdesChunk,
    parse_rtcp,
    serialize_rtcp,
)
from gateway.media.rtp.rtp_stats import FarEndStats, ReceiveStatistics
from gateway.media.rtp.srtp import SipSrtp, SrtpError

logger = logging.getLogger("gateway.media.rtp.rtp_endpoint")


class EndpointRtcp:
    """The endpoint's RTCP reports in and out (see the module note)."""

    if TYPE_CHECKING:  # RtpEndpoint's, set in its __init__
        config: RtpEndpointConfig
        control: Callable[[str, bytes, Address], None] | None
        statistics: ReceiveStatistics | None
        far_end: FarEndStats
        ssrc: int
        packets_sent: int
        octets_sent: int
        inactive_held: bool
        refresh: Callable[[], None] | None
        _call: str
        _state: EndpointState
        _srtp: SipSrtp | None
        _rtp_latch: SymmetricLatch
        _rtcp_latch: SymmetricLatch
        _rtp_transport: asyncio.DatagramTransport | None
        _rtcp_transport: asyncio.DatagramTransport | None
        _on_rtcp: Callable[[tuple[RtcpPacket, ...]], None] | None
        _wallclock: Callable[[], float]
        _rng: random.Random
        _last_rtcp: float | None
        _last_sent_time: float
        _last_sent_timestamp: int
        _inactive: bool
        _inactivity_timer: Cancellable | None
        _rtcp_timer: Cancellable | None

        @property
        def remote_rtcp_address(self) -> Address | None: ...
        @property
        def _crypto(self) -> SipSrtp | None: ...
        def _now(self) -> float: ...
        def _get_loop(self) -> asyncio.AbstractEventLoop: ...
        def _arm_inactivity(self) -> None: ...
        def _drop(self, message: str, source: Address, detail: object) -> None: ...

    def _rtcp_socket(self, data: bytes, source: Address) -> None:
        if self.control is not None and data and not 128 <= data[0] <= 191:
            if self._state is EndpointState.OPEN:
                self.control("rtcp", data, source)
            return
        self._rtcp_received(data, source)

    def _rtcp_received(self, data: bytes, source: Address) -> None:
        opened = self._unprotect(data, source, rtcp=True)
        if opened is None or self._state is not EndpointState.OPEN:
            return
        try:
            packets = parse_rtcp(opened)
        except PacketError as exc:
            self._drop("malformed RTCP from %s: %s", source, exc)
            return
        if not self._rtcp_from_peer(source):
            return
        now = self._now()
        self._last_rtcp = now
        if self._inactive and self.inactive_held:  # taken for gone on hold, it lives (its RTCP): watch again
            self._inactive = False
            self._arm_inactivity()
        elif not self._inactive and self._inactivity_timer is None:
            self._arm_inactivity()  # a held or quiet peer can be judged by its RTCP from now on
        self._read_reports(packets, source, now)
        if self._on_rtcp is not None:
            self._on_rtcp(packets)

    def _unprotect(self, data: bytes, source: Address, *, rtcp: bool) -> bytes | None:
        """The RTP packet (SRTP, RFC 3711 §3.3) or RTCP compound packet (SRTCP, §3.4) in clear, once
        keyed; None: dropped."""
        crypto = self._crypto
        if crypto is None:
            return data
        if not crypto.ready:
            self._drop(
                f"{'RTCP' if rtcp else 'RTP'} from %s before the SRTP keys: %d bytes", source, len(data)
            )
            return None
        try:
            return crypto.unprotect_rtcp(data) if rtcp else crypto.unprotect(data)
        except SrtpError as exc:
            self._drop(f"{'SRTCP' if rtcp else 'SRTP'} packet from %s not authentic: %s", source, exc)
            return None

    def _rtcp_from_peer(self, source: Address) -> bool:
        """Whether RTCP from `source` is the peer's: on RTP's port (rtcp-mux, RFC 5761) once latched, the
        latched address; on its own port, what RTCP's latch accepts. A stranger's is dropped."""
        latch = self._rtp_latch if self.config.rtcp_mux else self._rtcp_latch
        if self.config.rtcp_mux:
            ours = latch.state is not LatchState.LATCHED or source == latch.address
        else:
            ours = latch.accept(source, True)
        if not ours:
            self._drop("RTCP from stranger %s, latched to %s", source, latch.address)
        return ours

    def _read_reports(self, packets: tuple[RtcpPacket, ...], source: Address, now: float) -> None:
        """What the reports say of the far end (RTT, loss) and of its sender clock; a BYE logged."""
        # RFC 3550 §6.4.1: the RTT's A and our DLSR count from the report's arrival, which the fast lane's
        # engine may have held up to 10 ms before handing it over (gateway.media.arrival)
        late = arrival.late
        for packet in packets:
            if isinstance(packet, RtcpSenderReport | RtcpReceiverReport):
                self.far_end.update(
                    packet.reports, self.ssrc, ntp_from_unix(self._wallclock() - late), now - late
                )
            if isinstance(packet, RtcpSenderReport) and self.statistics is not None:
                if packet.ssrc == self.statistics.ssrc:
                    self.statistics.on_sender_report(packet.ntp_timestamp, now - late)
            elif isinstance(packet, RtcpBye):
                logger.info("call=%s RTCP BYE from %s:%d: %r", self._call, *source, packet.reason)

    def _schedule_rtcp(self, initial: bool = False) -> None:
        # RFC 3550 §6.3.1: randomize over [0.5, 1.5] x the interval; §6.2: the first one at half of it
        base = self.config.rtcp_interval / (2 if initial else 1)
        delay = base * self._rng.uniform(0.5, 1.5)  # on whole seconds with the calls' other periodic work
        self._rtcp_timer = coarse_timers(self._get_loop()).call_later(
            delay, self._rtcp_due, grid=PERIODIC_GRID
        )

    def _rtcp_due(self) -> None:
        self._rtcp_timer = None
        if self._state is EndpointState.OPEN:
            self._send_rtcp()
            self._schedule_rtcp()

    def build_report(self, *, bye: bool = False) -> tuple[RtcpPacket, ...]:
        """SR (if we sent RTP) or RR, SDES CNAME, and BYE if asked (RFC 3550 §6.1 compound)."""
        if self.refresh is not None:  # the fast lane's packets counted first
            self.refresh()
        now = self._now()
        blocks: tuple[ReportBlock, ...] = ()
        if self.statistics is not None and self.statistics.received:
            blocks = (self.statistics.report_block(now),)
        report: RtcpPacket
        if self.packets_sent:
            elapsed = now - self._last_sent_time
            rtp_ts = (self._last_sent_timestamp + int(elapsed * self.config.clock_rate)) & 0xFFFF_FFFF
            report = RtcpSenderReport(
                self.ssrc,
                ntp_from_unix(self._wallclock()),
                rtp_ts,
                self.packets_sent & 0xFFFF_FFFF,
                self.octets_sent & 0xFFFF_FFFF,
                blocks,
            )
        else:
            report = RtcpReceiverReport(self.ssrc, blocks)
        sdes = RtcpSourceDescription((SdesChunk(self.ssrc, ((SDES_CNAME, self.config.cname.encode()),)),))
        return (report, sdes, RtcpBye((self.ssrc,))) if bye else (report, sdes)

    def send_feedback(self, packets: tuple[RtcpPacket, ...]) -> bool:
        """RTCP feedback (RFC 4585 §6: PLI, FIR) now, after a report as RFC 3550 §6.1 wants a compound
        packet to start; False when there is nowhere to send it yet."""
        if self._state is not EndpointState.OPEN:
            return False
        return self._send_rtcp(extra=packets)

    def _send_rtcp(self, *, bye: bool = False, extra: tuple[RtcpPacket, ...] = ()) -> bool:
        destination = self.remote_rtcp_address
        transport = self._rtp_transport if self.config.rtcp_mux else self._rtcp_transport
        if destination is None or transport is None or (self._srtp is not None and not self._srtp.ready):
            return False
        report = serialize_rtcp(self.build_report(bye=bye) + extra)
        crypto = self._crypto
        transport.sendto(crypto.protect_rtcp(report) if crypto is not None else report, destination)
        return True
