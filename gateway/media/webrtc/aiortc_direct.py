"""The media bridge's direct RTP paths through aiortc's and aioice's private internals (aiortc 1.16,
aioice 0.13), guarded with the other hooks by ``tests/media/webrtc/test_aiortc_hooks.py``.

The media bridge itself uses the two shortcuts below (``PacketTrack`` and ``tap_receiver`` stay for the
peers of tests and examples). Per packet, aiortc's own paths cost a queue, a task wakeup (an extra event
loop iteration) and several coroutine hops in each direction; these cost none:

* ``DirectSender`` (``attach_direct_sender(sender)``): writes the RTP header itself (the sender's SSRC,
  its own sequence numbers, the header extensions aiortc would write for audio: ``mid``), protects with
  the DTLS transport's SRTP session (``RTCDtlsTransport._tx_srtp``) and writes to the socket of the
  nominated ICE pair (``Connection._nominated``; ``StunProtocol.send_data`` does exactly this
  ``transport.sendto``), synchronously in the caller. aiortc's RTP loop stays parked on an idle
  ``PacketTrack``; its RTCP loop still sends the sender reports, with packet and octet counts, RTP and
  NTP timestamps filled in from ours (``RTCRtpSender._send_rtcp`` is wrapped; the private counters
  ``getStats()`` and the RTT estimate read are kept in step once per report).

RFC 2198 redundancy (``red_payload_type``: the browser negotiated ``audio/red`` over Opus, ``web_codecs``):
each audio payload goes out in RED with the one before it as a redundant block (RFC 2198 §3), so one lost
packet is restored whole from the next, while the browser's receiver reports show more than
``opus_settings.FEC_THRESHOLD`` % loss (``red_mode`` auto, the signal in-band FEC follows) or always (on);
plain Opus otherwise. ``red_active`` says which (the fast lane's engine then sends RED too, continuing from
``red_previous``, which it hands back).

The receiving half, ``DirectReceiver``, is in ``aiortc_receive``.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pylibsrtp
from aiortc import RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtcrtpsender import random_sequence_number
from aiortc.rtp import (
    AnyRtcpPacket,
    HeaderExtensions,
    HeaderExtensionsMap,
    RtcpSenderInfo,
    RtcpSrPacket,
)

from gateway.media.codecs.opus_settings import FEC_THRESHOLD
from gateway.media.rtp import red, seqmap
from gateway.media.rtp.own_loss import OwnLoss, ReportPoint
from gateway.media.rtp.send_guard import SendGuard
from gateway.media.webrtc import aiortc_hooks, aiortc_srtp
from gateway.media.webrtc.aiortc_hooks import HookError, PacketTrack

_RTP_HEADER = struct.Struct("!BBHII")
_EXTENSION_HEADER = struct.Struct("!HH")
_U32 = 0xFFFF_FFFF
_CONNECTED = DtlsState.CONNECTED
_SENDER = "_RTCRtpSender__"
# the sender's private counters, read by its getStats() and its round-trip time estimate
_SENDER_COUNTERS = ("packet_count", "octet_count", "rtp_timestamp", "ntp_timestamp", "lsr")
_NTP_EPOCH_OFFSET = 2_208_988_800


def _ntp_now() -> int:
    """The 64-bit NTP timestamp (RFC 3550 §4) of now."""
    ntp = time.time() + _NTP_EPOCH_OFFSET
    whole = int(ntp)
    return ((whole & _U32) << 32) | (int((ntp - whole) * (1 << 32)) & _U32)


def _nominated_pairs(transport: RTCDtlsTransport) -> dict[int, Any]:
    connection = getattr(transport.transport, "_connection", None)
    nominated = getattr(connection, "_nominated", None)
    if not isinstance(nominated, dict):
        raise HookError("aioice Connection._nominated is gone")
    return nominated


class DirectSender:
    """RTP payloads out on an ``RTCRtpSender``'s SSRC, synchronously: header, SRTP, socket (module note).

    ``timestamp`` is already on the output timeline (the bridge's mapper has a random origin); sequence
    numbers start at random in the lower half, as aiortc's do. ``now`` (on ``clock``) is when the packet
    left: the sender report extrapolates its RTP timestamp from the last one (RFC 3550 §6.4.1).
    """

    def __init__(self, sender: RTCRtpSender, clock: Callable[[], float] = time.monotonic) -> None:
        self._sender = sender
        self._clock = clock
        self._dtls: RTCDtlsTransport | None = None
        self._nominated: dict[int, Any] = {}
        self._pair: object = None
        self._socket: Any = None  # the asyncio datagram transport of the nominated pair's protocol
        self._address: tuple[str, int] | None = None
        self._first = 0x80  # V=2, no padding, no extension, no CSRC
        self._extension = b""
        self._ssrc = sender._ssrc
        self._audio_pt: int | None = None
        self._clock_rate = 8000
        self._sequence = random_sequence_number()
        self.sequence_map = seqmap.SequenceMap()  # forwarded packets' numbers (the fast lane's too)
        self._last_timestamp = 0
        self._last_time = 0.0
        self.packets_sent = self.octets_sent = 0
        self.link: Any = None  # a fast-lane link (fastlane.native.NativeLink) while the engine sends for us
        # video: what went under each recent SRTP index (send_guard.py; the audio's stream refuses repeats)
        self.guard: SendGuard | None = None
        self.refresh: Callable[[], None] | None = None  # brings the counters up to date first (the fast lane)
        self.idle_track = PacketTrack(8000)  # parks aiortc's RTP loop: nothing is ever pushed
        # the fraction lost (0-255) of each of the browser's report blocks about our stream (issue 35)
        self.on_loss: Callable[[int], None] | None = None
        self.reported_loss: int | None = None  # the latest one
        # the reports' sequence numbers and cumulative loss, and the SIP side's loss at each arrival: what
        # the browser's leg lost itself (own_loss.py); ``upstream_lost`` reads the SIP side's loss now, and
        # ``report_context`` is (arrival, that loss) while the fast lane hands over a report it kept
        self.own_loss = OwnLoss()
        self.upstream_lost: Callable[[], tuple[int, int] | None] | None = None
        self.report_context: tuple[float, tuple[int, int] | None] | None = None
        self.red_payload_type: int | None = None  # RED negotiated with the browser (module note)
        self.red_mode = "auto"
        self._previous: red.RedBlock | None = None  # the last audio payload, redundant in the next RED
        self._opus = False  # the sender's codec is Opus
        # (payload type, clock rate, Opus?) of the first codec negotiated (aiortc's), and of another
        # negotiated one the bridge sends in instead (``select``: a G.711 phone transcoded, conceal_steer)
        self._bound: tuple[int | None, int, bool] | None = None
        self._selected: tuple[int | None, int, bool] | None = None
        aiortc_hooks.on_receiver_report(sender, self._reported)

    def select(self, payload_type: int | None, clock_rate: int = 8000, *, opus: bool = False) -> None:
        """Send audio in this negotiated payload type from now on (None: the first negotiated one)."""
        self._selected = (payload_type, clock_rate, opus) if payload_type is not None else None
        self._use_codec()

    def _use_codec(self) -> None:
        codec = self._selected or self._bound
        if codec is not None and self._bound is not None:  # (not before the sender started: ``started``)
            self._audio_pt, self._clock_rate, self._opus = codec

    @property
    def red_active(self) -> bool:
        """Whether audio goes out in RED now (module note)."""
        if self.red_payload_type is None or self.red_mode == "off" or not self._opus:
            return False  # (red's fmtp names Opus: a leg sending another codec sends it plain)
        loss = self.reported_loss
        return self.red_mode == "on" or (loss is not None and (loss * 100 + 128) // 256 > FEC_THRESHOLD)

    @property
    def red_previous(self) -> tuple[int, bytes] | None:
        """(timestamp, payload) of the last audio payload sent, the next RED packet's redundant block."""
        previous = self._previous
        return (previous.timestamp, previous.payload) if previous is not None else None

    @red_previous.setter
    def red_previous(self, previous: tuple[int, bytes] | None) -> None:
        pt = self._audio_pt
        self._previous = red.RedBlock(pt, *previous) if previous is not None and pt is not None else None

    def _redundant(self, payload: bytes, timestamp: int) -> tuple[int, bytes]:
        """An audio payload as RED with the previous one (RFC 2198 §3) and RED's payload type, when
        ``red_active``; else as it is, with the audio codec's. The previous one is remembered either way."""
        pt, previous = self._audio_pt, self._previous
        assert pt is not None and self.red_payload_type is not None
        primary = self._previous = red.RedBlock(pt, timestamp, payload)
        if not self.red_active:
            return pt, payload
        return self.red_payload_type, red.pack(primary, [previous] if previous is not None else [])

    def _reported(self, block: Any) -> None:  # an aiortc RtcpReceiverInfo about our stream
        fraction_lost = self.reported_loss = block.fraction_lost
        arrival, upstream = self.report_context or (time.monotonic(), None)
        if upstream is None and self.upstream_lost is not None:
            upstream = self.upstream_lost()
        self.own_loss.add(ReportPoint(arrival, block.highest_sequence, block.packets_lost, upstream))
        if self.on_loss is not None:
            self.on_loss(fraction_lost)

    @property
    def started(self) -> bool:
        """The sender was started (DTLS connected, direction sends): packets can go."""
        return self._audio_pt is not None

    @property
    def payload_type(self) -> int | None:
        return self._audio_pt

    @property
    def ssrc(self) -> int:
        return self._ssrc

    def _bind(self, parameters: RTCRtpSendParameters) -> None:
        codec = parameters.codecs[0]
        extensions = HeaderExtensionsMap()
        extensions.configure(parameters)
        profile, value = extensions.set(HeaderExtensions(mid=parameters.muxId))  # as _run_rtp for audio
        if value:
            self._first = 0x90
            self._extension = _EXTENSION_HEADER.pack(profile, len(value) // 4) + value
        dtls = self._sender.transport
        self._nominated = _nominated_pairs(dtls)
        self._dtls = dtls
        self._ssrc = self._sender._ssrc
        if self._sender.kind == "audio" and not aiortc_srtp.guarded(dtls, self._ssrc):
            raise HookError("the audio's SRTP stream allows repeated indices (not the transport guarded)")
        if self._sender.kind != "audio" and self.guard is None:
            self.guard = SendGuard()
        self._bound = (codec.payloadType, codec.clockRate, codec.mimeType.lower() == "audio/opus")
        self._use_codec()

    def send(
        self,
        payload: bytes,
        timestamp: int,
        payload_type: int | None = None,
        marker: bool = False,
        now: float | None = None,
        source: tuple[int, int] | None = None,
    ) -> bool:
        """Send one payload (``payload_type`` None: the sender's codec); False when it cannot go now.
        ``source``: a forwarded packet's SSRC and sequence number, whose number is mapped (``seqmap``)."""
        pt, dtls = self._audio_pt, self._dtls
        if pt is None or dtls is None or dtls._state is not _CONNECTED or not self._sender._enabled:
            return False
        pair = self._nominated.get(1)
        if pair is not self._pair:
            if pair is None:
                return False
            self._pair, self._socket, self._address = pair, pair.protocol.transport, pair.remote_addr
        timestamp &= _U32
        previous = self._previous
        if payload_type is None and self.red_payload_type is not None:
            payload_type, payload = self._redundant(payload, timestamp)
        link = self.link
        if (
            link is not None
        ):  # the fast lane's engine owns the sequence numbers and SRTP (gateway/media/fastlane)
            seq = -1 if source is None else self.sequence_map.map(*source, link.sequence(1))
            pt = pt if payload_type is None else payload_type
            if link.send(1, self._address, marker, pt, timestamp, payload, seq) < 0:
                self._previous = previous  # not sent (e.g. an SRTP index used already): no RED copy
                return False
        else:
            sequence = self._sequence if source is None else self.sequence_map.map(*source, self._sequence)
            self._sequence = seqmap.advance(self._sequence, sequence)
            header = _RTP_HEADER.pack(
                self._first,
                (0x80 if marker else 0) | (pt if payload_type is None else payload_type),
                sequence,
                timestamp,
                self._ssrc,
            )
            try:
                packet = dtls._tx_srtp.protect(header + self._extension + payload)
            except pylibsrtp.Error:  # audio under an index used already (aiortc_srtp.py): never sent twice
                self._previous = previous  # nor is its payload the next packet's RED copy
                return False
            if self.guard is not None and not self.guard.admit(packet):
                return False  # video: another packet went under this index (send_guard.py)
            self._socket.sendto(packet, self._address)
        self.packets_sent += 1
        self.octets_sent += len(payload)
        self._last_timestamp = timestamp
        self._last_time = self._clock() if now is None else now
        return True

    def rtt_seconds(self) -> float | None:
        """aiortc's round-trip estimate from the browser's receiver reports (RFC 3550 §6.4.1), for metrics."""
        rtt = getattr(self._sender, _SENDER + "rtt", None)
        return float(rtt) if isinstance(rtt, int | float) else None

    def add_sent(self, packets: int, octets: int, last_timestamp: int, last_time: float) -> None:
        """Packets the fast lane sent on our SSRC (the last at ``last_time``), counted as ``send`` counts
        its own."""
        if packets:
            self.packets_sent += packets
            self.octets_sent += octets
            if last_time >= self._last_time:
                self._last_timestamp, self._last_time = last_timestamp, last_time

    @property
    def next_sequence(self) -> int:
        return self._sequence

    @next_sequence.setter
    def next_sequence(self, sequence: int) -> None:
        self._sequence = sequence & 0xFFFF

    def fast_lane_parts(self) -> tuple[Any, tuple[Any, ...], int, int, bytes] | None:
        """(nominated pair, remote address, first header byte, next sequence number, header extension)
        while the sender can send, else None."""
        dtls = self._dtls
        pair = self._nominated.get(1)
        if self._audio_pt is None or dtls is None or dtls._state is not _CONNECTED or pair is None:
            return None
        return pair, tuple(pair.remote_addr), self._first, self._sequence, self._extension

    @property
    def sending(self) -> bool:
        """Whether ``send`` would send now (started, DTLS up, the direction sends, a nominated pair)."""
        dtls = self._dtls
        return (
            self._audio_pt is not None
            and dtls is not None
            and dtls._state is _CONNECTED
            and self._sender._enabled
            and self._nominated.get(1) is not None
        )

    def _fill_sender_report(self, packets: Sequence[AnyRtcpPacket]) -> None:
        """Put our counts and timestamps into aiortc's SR (RFC 3550 §6.4.1) and its private counters."""
        info = self._sender_info()
        if info is None:
            return
        for packet in packets:
            if isinstance(packet, RtcpSrPacket) and packet.ssrc == self._ssrc:
                packet.sender_info = info

    def _sender_info(self) -> RtcpSenderInfo | None:
        """Our counts and timestamps now (RFC 3550 §6.4.1), also kept in aiortc's private counters (its
        getStats() and RTT estimate read them); None before our first packet."""
        if not self.packets_sent:
            return None
        ntp = _ntp_now()
        elapsed = self._clock() - self._last_time
        info = RtcpSenderInfo(
            ntp_timestamp=ntp,
            rtp_timestamp=(self._last_timestamp + int(elapsed * self._clock_rate)) & _U32,
            packet_count=self.packets_sent & _U32,
            octet_count=self.octets_sent & _U32,
        )
        values = (info.packet_count, info.octet_count, info.rtp_timestamp, ntp, (ntp >> 16) & _U32)
        for name, value in zip(_SENDER_COUNTERS, values, strict=True):
            setattr(self._sender, _SENDER + name, value)
        return info


def attach_direct_sender(
    sender: RTCRtpSender, *, clock: Callable[[], float] = time.monotonic
) -> DirectSender:
    """Send on ``sender`` with a ``DirectSender``; bound when aiortc starts the sender (``send()``)."""
    for name in _SENDER_COUNTERS:
        if not hasattr(sender, _SENDER + name):
            raise HookError(f"RTCRtpSender.__{name} is gone")
    if sender.kind == "audio":  # never two audio packets under one SRTP index
        aiortc_srtp.refuse_repeats(sender.transport, sender._ssrc)
    direct = DirectSender(sender, clock)
    original_send: Callable[[RTCRtpSendParameters], Awaitable[None]] = sender.send
    original_rtcp: Callable[[list[AnyRtcpPacket]], Awaitable[None]] = sender._send_rtcp

    async def send(parameters: RTCRtpSendParameters) -> None:
        await original_send(parameters)
        if parameters.codecs and not direct.started:
            direct._bind(parameters)

    async def send_rtcp(packets: list[AnyRtcpPacket]) -> None:
        if direct.refresh is not None:
            direct.refresh()
        direct._fill_sender_report(packets)
        await original_rtcp(packets)

    sender.send = send  # type: ignore[method-assign]
    sender._send_rtcp = send_rtcp  # type: ignore[method-assign]
    sender.replaceTrack(direct.idle_track)
    return direct
