"""The web leg's RTCP reports through aiortc's private internals (aiortc 1.16), the RTCP half of
``aiortc_direct``; guarded by ``tests/media/webrtc/test_aiortc_hooks.py`` with the other hooks (issue 14 goal 1).

``DirectRtcp`` (``attach_direct_rtcp(sender, receiver)``): the web leg's RTCP reports on the process's
coarse timers (``coarse_timers``) instead of aiortc's two loops (the sender's SR and the receiver's RR,
each every 0.5-1.5 s, a task wakeup each): one compound packet per ``interval`` (RFC 3550 §6.2, 5 s
as the SIP leg's, randomized over [0.5, 1.5] x it, the first at half, §6.3.1), an SR whose reception
report blocks are the receiver's (§6.4.1; an RR when nothing is sent), SDES CNAME (§6.1), protected
and written synchronously as ``DirectSender`` writes RTP. aiortc's ``_run_rtcp`` of both are replaced
by parked coroutines that keep its started/exited events and the sender's BYE on stop.

Incoming RTCP still takes aiortc's path (the sender's RTT estimate, the receiver's LSR of each source).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.rtp import (
    AnyRtcpPacket,
    RtcpByePacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
)

from gateway.media.coarse_timers import PERIODIC_GRID, Cancellable, coarse_timers
from gateway.media.webrtc.aiortc_direct import (
    _CONNECTED,
    _SENDER,
    _SENDER_COUNTERS,
    _U32,
    DirectSender,
    _nominated_pairs,
)
from gateway.media.webrtc.aiortc_hooks import HookError
from gateway.media.webrtc.aiortc_receive import DirectReceiver

logger = logging.getLogger(__name__)

_RECEIVER = "_RTCRtpReceiver__"
_DTLS_TX = ("_RTCDtlsTransport__tx_bytes", "_RTCDtlsTransport__tx_packets")  # its getStats() reads them
MAX_REPORT_BLOCKS = 31  # RFC 3550 §6.4.1: the 5-bit reception report count
_INTERVALS = random.Random()  # report intervals' randomization (RFC 3550 §6.3.1); not a secret


class DirectRtcp:
    """A web leg's RTCP reports on the process's coarse timers (module note); ``attach_direct_rtcp``."""

    def __init__(
        self, sender: DirectSender, receiver: DirectReceiver, interval: float, rng: random.Random
    ) -> None:
        if interval <= 0:
            raise ValueError(f"RTCP interval must be positive, got {interval!r}")
        self._sender = sender
        self._receiver = receiver
        self.interval = interval
        self._rng = rng
        self._parts: set[str] = set()  # "sender", "receiver": aiortc started them and has not stopped
        self._timer: Cancellable | None = None
        self.reports_sent = 0

    def _started(self, part: str) -> None:
        first = not self._parts
        self._parts.add(part)
        if first:
            self._schedule(initial=True)

    def _stopped(self, part: str) -> None:
        self._parts.discard(part)
        if not self._parts and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self, *, initial: bool = False) -> None:
        # RFC 3550 §6.3.1: randomized over [0.5, 1.5] x the interval; §6.2: the first one at half of it.
        # On whole seconds with the calls' other periodic work (coarse_timers: one wakeup for all of it)
        delay = self.interval / (2 if initial else 1) * self._rng.uniform(0.5, 1.5)
        self._timer = coarse_timers().call_later(delay, self._due, grid=PERIODIC_GRID)

    def _due(self) -> None:
        self._timer = None
        if not self._parts:
            return
        try:
            self.send_report()
        except Exception:  # one report must not stop the next ones
            logger.exception("sending an RTCP report to the browser failed")
        self._schedule()

    def _blocks(self) -> list[RtcpReceiverInfo]:
        """Reception report blocks of the browser's streams, as aiortc's receiver loop makes them (but with
        the extended highest sequence number, RFC 3550 §6.4.1, where aiortc puts the 16-bit one)."""
        receiver = self._receiver._receiver
        lsrs: dict[int, int] = getattr(receiver, _RECEIVER + "lsr")
        lsr_times: dict[int, float] = getattr(receiver, _RECEIVER + "lsr_time")
        now = time.time()
        blocks = []
        for ssrc, stream in list(self._receiver._streams.items())[:MAX_REPORT_BLOCKS]:
            lsr = dlsr = 0
            if ssrc in lsrs:
                lsr = lsrs[ssrc]
                delay = now - lsr_times[ssrc]
                if 0 < delay < 65536:
                    dlsr = int(delay * 65536)
            blocks.append(
                RtcpReceiverInfo(
                    ssrc=ssrc,
                    fraction_lost=stream.fraction_lost,
                    packets_lost=stream.packets_lost,
                    highest_sequence=(stream.cycles + (stream.max_seq or 0))
                    & _U32,  # extended (RFC 3550 A.3)
                    jitter=min(stream.jitter, _U32),  # 32 bits on the wire: a wild estimate saturates
                    lsr=lsr,
                    dlsr=dlsr,
                )
            )
        return blocks

    def send_report(self) -> bool:
        """One compound report now: SR with the receiver's blocks and SDES, or RR when aiortc's sender is
        not running; False when it cannot go (not connected, nothing to report)."""
        direct = self._sender
        if direct.refresh is not None:  # the fast lane's packets counted first (both directions)
            direct.refresh()
        blocks = self._blocks() if "receiver" in self._parts else []
        sender = direct._sender
        packets: list[AnyRtcpPacket]
        if "sender" in self._parts:
            ssrc = sender._ssrc
            info = direct._sender_info()
            if info is None:  # nothing sent yet: aiortc's own (zero) counters, as its loop would
                info = RtcpSenderInfo(
                    ntp_timestamp=getattr(sender, _SENDER + "ntp_timestamp"),
                    rtp_timestamp=getattr(sender, _SENDER + "rtp_timestamp"),
                    packet_count=getattr(sender, _SENDER + "packet_count") & _U32,
                    octet_count=getattr(sender, _SENDER + "octet_count") & _U32,
                )
            # the browser's report blocks answer this SR: aiortc's RTT estimate matches them by these
            setattr(sender, _SENDER + "lsr", (info.ntp_timestamp >> 16) & _U32)
            setattr(sender, _SENDER + "lsr_time", time.time())
            packets = [RtcpSrPacket(ssrc=ssrc, sender_info=info, reports=blocks)]
            cname = getattr(sender, _SENDER + "cname")
            if cname is not None:
                packets.append(
                    RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=ssrc, items=[(1, cname.encode())])])
                )
        else:
            rtcp_ssrc = getattr(self._receiver._receiver, _RECEIVER + "rtcp_ssrc")
            if rtcp_ssrc is None or not blocks:
                return False
            packets = [RtcpRrPacket(ssrc=rtcp_ssrc, reports=blocks)]
        dtls = sender.transport
        if dtls._state is not _CONNECTED or dtls._tx_srtp is None:
            return False
        pair = _nominated_pairs(dtls).get(1)
        if pair is None:
            return False
        data = dtls._tx_srtp.protect_rtcp(b"".join(bytes(packet) for packet in packets))
        pair.protocol.transport.sendto(data, pair.remote_addr)  # what StunProtocol.send_data does
        tx_bytes, tx_packets = _DTLS_TX
        setattr(dtls, tx_bytes, getattr(dtls, tx_bytes) + len(data))
        setattr(dtls, tx_packets, getattr(dtls, tx_packets) + 1)
        self.reports_sent += 1
        return True


def attach_direct_rtcp(
    sender: DirectSender,
    receiver: DirectReceiver,
    *,
    interval: float = 5.0,
    rng: random.Random | None = None,
) -> DirectRtcp:
    """Replace the RTCP loops of ``sender``'s and ``receiver``'s aiortc objects (one transceiver) by one
    ``DirectRtcp``; call before aiortc starts them."""
    rtp_sender, rtp_receiver = sender._sender, receiver._receiver
    for owner, prefix, names in (
        (rtp_sender, _SENDER, ("rtcp_started", "rtcp_exited", "cname", "lsr_time", *_SENDER_COUNTERS)),
        (rtp_receiver, _RECEIVER, ("rtcp_started", "rtcp_exited", "rtcp_ssrc", "lsr", "lsr_time")),
    ):
        if not callable(getattr(owner, "_run_rtcp", None)):
            raise HookError(f"{type(owner).__name__}._run_rtcp is gone")
        for name in names:
            if not hasattr(owner, prefix + name):
                raise HookError(f"{type(owner).__name__}.__{name} is gone")
    direct = DirectRtcp(sender, receiver, interval, rng or _INTERVALS)  # a Random is 2.5 KiB: one for all

    async def parked(owner: RTCRtpSender | RTCRtpReceiver, prefix: str, part: str) -> None:
        getattr(owner, prefix + "rtcp_started").set()
        direct._started(part)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.get_running_loop().create_future()  # until aiortc's stop() cancels it
        direct._stopped(part)
        if part == "sender":  # RFC 3550 §6.3.7, as aiortc's loop ends
            await rtp_sender._send_rtcp([RtcpByePacket(sources=[rtp_sender._ssrc])])
        getattr(owner, prefix + "rtcp_exited").set()

    async def sender_rtcp() -> None:
        await parked(rtp_sender, _SENDER, "sender")

    async def receiver_rtcp() -> None:
        await parked(rtp_receiver, _RECEIVER, "receiver")

    rtp_sender._run_rtcp = sender_rtcp  # type: ignore[method-assign]
    rtp_receiver._run_rtcp = receiver_rtcp  # type: ignore[method-assign]
    return direct
