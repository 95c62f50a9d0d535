"""Every use of aiortc's and aioice's private internals, in one place (aiortc 1.16, aioice 0.13).

The media bridge forwards RTP payloads between the web leg and the SIP leg without decoding them, which
aiortc's public API does not offer. These hooks make it possible; ``tests/media/test_aiortc_hooks.py``
fails if an aiortc upgrade changes any of them (pyproject pins aiortc to one minor version for this).

* ``register_telephone_event()``: adds ``audio/telephone-event`` (8000 and 48000 Hz, RFC 4733) to
  ``aiortc.codecs.CODECS`` so that it is negotiated and its packets are routed to the receiver.
* ``tap_receiver(receiver, on_packet)``: replaces the receiver's ``_handle_rtp_packet`` (called by the
  DTLS transport with each decrypted, routed packet). ``on_packet`` returns True when it consumed the
  packet; otherwise aiortc's own handling (jitter buffer, decoder thread) runs as before.
* ``PacketTrack`` + ``attach_packet_track(sender, track)``: a track whose ``recv()`` returns ``av.Packet``
  is packetized by the encoder's ``pack()`` without encoding (``RTCRtpSender._next_encoded_frame``). The
  sender writes every packet with ``codec.payloadType`` of the codec its RTP loop was started with; to
  send telephone-events on the same SSRC and sequence space, the track switches that (mutable) codec
  object's payload type just before handing the packet over. The codec object is captured by wrapping
  the sender's ``send()``. aiortc sets the marker bit on every audio packet; that cannot be changed here.
* ``restrict_host_addresses(pc, ...)``: aioice skips 127.0.0.1 when gathering; tests on loopback wrap the
  connection's ``get_component_candidates`` to gather on the addresses given (production never does).
* ``ice_connection(pc)``: the aioice ``Connection`` behind the first transceiver, for candidate handling.

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
* ``DirectReceiver`` (``attach_direct_receiver(receiver, on_rtp)``): once the receiver is started, the
  ICE connection's ``data_received`` (called by aioice's ``StunProtocol`` with each non-STUN datagram,
  which it otherwise queues for the DTLS transport's reading task) unprotects SRTP packets right there
  with ``RTCDtlsTransport._rx_srtp`` and hands the fields to ``on_rtp``; DTLS and SRTCP still take
  aiortc's path. The ICE connection's ``StunProtocol``s hand datagrams of first byte 128-191 (RTP, RTCP:
  RFC 7983) to it without trying the STUN parser first. The receive statistics of RTCP receiver reports
  are fed as before. aiortc's decoder thread for the receiver is stopped
  (``RTCRtpReceiver.__stop_decoder``, as on close): nothing decodes.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import av
import pylibsrtp
from aioice import Connection
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.codecs import CODECS
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters, RTCRtpSendParameters
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtcrtpsender import random_sequence_number
from aiortc.rtp import AnyRtcpPacket, HeaderExtensions, HeaderExtensionsMap, RtcpSenderInfo, RtcpSrPacket
from aiortc.rtp import RtpPacket as AiortcRtpPacket
from aiortc.utils import uint16_gt

from gateway.media.errors import MediaError

logger = logging.getLogger(__name__)

TELEPHONE_EVENT_MIME = "audio/telephone-event"
# (clock rate, payload type, events): payload types as Chromium offers them, outside aiortc's video range
# (97-102) so BUNDLE never collides. The event ranges differ on purpose: aiortc's codec-preference filter
# (filter_preferred_codecs) compares MIME type and parameters but not the clock rate, so two entries with
# equal parameters would both match the first one and the description would list it twice.
TELEPHONE_EVENTS = ((8000, 126, "0-16"), (48000, 110, "0-15"))

_RECEIVER_STREAMS = "_RTCRtpReceiver__remote_streams"


class HookError(MediaError):
    """aiortc no longer has an internal the media bridge relies on (an aiortc upgrade broke a hook)."""


def register_telephone_event() -> None:
    """Make aiortc negotiate ``audio/telephone-event`` at 8000 and 48000 Hz (RFC 4733 §7). Idempotent.

    aiortc only negotiates codecs of its global ``CODECS`` table; without this entry a telephone-event
    payload type is left out of the answer and its packets are dropped by the RTP router.
    """
    audio = CODECS["audio"]
    for rate, payload_type, events in TELEPHONE_EVENTS:
        if any(c.mimeType.lower() == TELEPHONE_EVENT_MIME and c.clockRate == rate for c in audio):
            continue
        audio.append(
            RTCRtpCodecParameters(
                mimeType=TELEPHONE_EVENT_MIME,
                clockRate=rate,
                channels=1,
                payloadType=payload_type,
                parameters={events: None},
            )
        )


# A tapped packet: aiortc's RtpPacket (payload_type, sequence_number, timestamp, ssrc, marker, payload).
RtpTap = Callable[[AiortcRtpPacket], bool]


def tap_receiver(receiver: RTCRtpReceiver, on_packet: RtpTap, *, clock_rate: int = 48000) -> None:
    """Hand each decrypted RTP packet of ``receiver`` to ``on_packet`` before aiortc decodes it.

    When ``on_packet`` returns True the packet is consumed: only the receive statistics used for RTCP
    receiver reports are fed, no jitter buffer, no decoding. Otherwise aiortc handles it as usual.
    """
    original = receiver._handle_rtp_packet
    if not callable(original):
        raise HookError("RTCRtpReceiver._handle_rtp_packet is gone")
    streams = getattr(receiver, _RECEIVER_STREAMS, None)
    if not isinstance(streams, dict):
        raise HookError(f"RTCRtpReceiver.{_RECEIVER_STREAMS} is gone")

    async def handle(packet: AiortcRtpPacket, arrival_time_ms: int) -> None:
        if not on_packet(packet):
            await original(packet, arrival_time_ms=arrival_time_ms)
            return
        stats = streams.get(packet.ssrc)
        if stats is None:
            stats = streams[packet.ssrc] = StreamStatistics(clock_rate)
        stats.add(packet)

    receiver._handle_rtp_packet = handle  # type: ignore[method-assign]


class _Item(Protocol):
    payload_type: int


class PacketTrack(MediaStreamTrack):
    """An audio track of already encoded payloads: ``push()`` queues, ``recv()`` hands ``av.Packet``s.

    ``timestamp`` is in units of ``clock_rate`` (the RTP clock of the sending codec); aiortc adds its
    own random origin and writes its own SSRC and sequence numbers, so the web side stays continuous
    whatever happens on the other leg. The queue is bounded: when the sender stalls the oldest go.
    """

    kind = "audio"

    def __init__(self, clock_rate: int, *, max_queue: int = 16) -> None:
        super().__init__()
        self._time_base = fractions.Fraction(1, clock_rate)
        self._queue: deque[tuple[bytes, int, int | None]] = deque(maxlen=max_queue)
        self._waiter: asyncio.Future[None] | None = None
        self._codec: RTCRtpCodecParameters | None = None
        self._audio_pt: int | None = None
        self.on_sent: Callable[[], None] | None = None  # called as each packet leaves the queue
        self.dropped = 0

    def set_clock_rate(self, clock_rate: int) -> None:
        self._time_base = fractions.Fraction(1, clock_rate)

    def _bind_codec(self, codec: RTCRtpCodecParameters) -> None:
        self._codec = codec
        self._audio_pt = codec.payloadType

    @property
    def started(self) -> bool:
        """The sender's RTP loop is running (DTLS connected, direction sends)."""
        return self._codec is not None

    @property
    def payload_type(self) -> int | None:
        return self._audio_pt

    def push(self, payload: bytes, timestamp: int, payload_type: int | None = None) -> None:
        """Queue one payload; ``payload_type`` None is the sender's codec, else e.g. telephone-event."""
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append((payload, timestamp, payload_type))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def recv(self) -> av.Packet:  # type: ignore[type-arg]
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        payload, timestamp, payload_type = self._queue.popleft()
        if self._codec is not None and self._audio_pt is not None:
            # read by RTCRtpSender._run_rtp right after this returns, for this packet only
            self._codec.payloadType = self._audio_pt if payload_type is None else payload_type
        packet = av.Packet(payload)
        packet.pts = timestamp
        packet.time_base = self._time_base
        if self.on_sent is not None:
            self.on_sent()
        return packet

    def stop(self) -> None:
        super().stop()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def attach_packet_track(sender: RTCRtpSender, track: PacketTrack) -> None:
    """Send ``track``'s packets on ``sender``; capture the codec object its RTP loop will use."""
    original: Callable[[RTCRtpSendParameters], Awaitable[None]] = sender.send

    async def send(parameters: RTCRtpSendParameters) -> None:
        if parameters.codecs and track._codec is None:
            track._bind_codec(parameters.codecs[0])
        await original(parameters)

    sender.send = send  # type: ignore[method-assign]
    sender.replaceTrack(track)


def ice_connection(pc: RTCPeerConnection) -> Connection:
    """The aioice connection of the peer connection's first transceiver (all media is bundled)."""
    transceivers = pc.getTransceivers()
    if not transceivers:
        raise HookError("the peer connection has no transceiver yet")
    connection = getattr(transceivers[0].receiver.transport.transport, "_connection", None)
    if not isinstance(connection, Connection):
        raise HookError("RTCIceTransport._connection is gone")
    return connection


def restrict_host_addresses(
    pc: RTCPeerConnection, addresses: Sequence[str] | None = None, *, include_loopback: bool = False
) -> None:
    """Gather host candidates on ``addresses`` (None: aioice's own list) plus 127.0.0.1 if asked.

    Only for tests on loopback: aioice's ``get_host_addresses`` always leaves 127.0.0.1 out.
    Call after the transceiver exists and before ``setLocalDescription`` (which gathers).
    """
    connection = ice_connection(pc)
    original: Callable[..., Awaitable[Any]] = connection.get_component_candidates

    async def get_component_candidates(*args: Any, **kwargs: Any) -> Any:
        found = list(kwargs.get("addresses", ()))
        chosen = list(addresses) if addresses is not None else found
        if include_loopback and "127.0.0.1" not in chosen:
            chosen.append("127.0.0.1")
        kwargs["addresses"] = chosen
        return await original(*args, **kwargs)

    connection.get_component_candidates = get_component_candidates  # type: ignore[method-assign]


# ------------------------------------------------------------------------------ direct RTP paths

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
        self._last_timestamp = 0
        self._last_time = 0.0
        self.packets_sent = self.octets_sent = 0
        self.link: Any = None  # a fast-lane link (fastpath.NativeLink) while the engine sends for us
        self.idle_track = PacketTrack(8000)  # parks aiortc's RTP loop: nothing is ever pushed

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
        self._clock_rate = codec.clockRate
        self._audio_pt = codec.payloadType

    def send(
        self,
        payload: bytes,
        timestamp: int,
        payload_type: int | None = None,
        marker: bool = False,
        now: float | None = None,
    ) -> bool:
        """Send one payload (``payload_type`` None: the sender's codec); False when it cannot go now."""
        pt, dtls = self._audio_pt, self._dtls
        if pt is None or dtls is None or dtls._state is not _CONNECTED or not self._sender._enabled:
            return False
        pair = self._nominated.get(1)
        if pair is not self._pair:
            if pair is None:
                return False
            self._pair, self._socket, self._address = pair, pair.protocol.transport, pair.remote_addr
        timestamp &= _U32
        link = self.link
        if link is not None:  # the fast lane's engine owns the sequence numbers and SRTP (fastpath.py)
            if (
                link.send(
                    1, self._address, marker, pt if payload_type is None else payload_type, timestamp, payload
                )
                < 0
            ):
                return False
        else:
            sequence = self._sequence
            self._sequence = (sequence + 1) & 0xFFFF
            header = _RTP_HEADER.pack(
                self._first,
                (0x80 if marker else 0) | (pt if payload_type is None else payload_type),
                sequence,
                timestamp,
                self._ssrc,
            )
            self._socket.sendto(dtls._tx_srtp.protect(header + self._extension + payload), self._address)
        self.packets_sent += 1
        self.octets_sent += len(payload)
        self._last_timestamp = timestamp
        self._last_time = self._clock() if now is None else now
        return True

    def account_sent(self, records: list[tuple[Any, ...]]) -> None:
        """Packets the fast lane sent on our SSRC (fastpath records: octets at 7, last output timestamp
        at 9, departure at 10, packets at 11), counted as ``send`` counts its own."""
        sent = [record for record in records if record[11]]
        if sent:
            self.packets_sent += sum(record[11] for record in sent)
            self.octets_sent += sum(record[7] for record in sent)
            self._last_timestamp, self._last_time = sent[-1][9], sent[-1][10]

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
        if not self.packets_sent:
            return
        ntp = _ntp_now()
        elapsed = self._clock() - self._last_time
        info = RtcpSenderInfo(
            ntp_timestamp=ntp,
            rtp_timestamp=(self._last_timestamp + int(elapsed * self._clock_rate)) & _U32,
            packet_count=self.packets_sent & _U32,
            octet_count=self.octets_sent & _U32,
        )
        for packet in packets:
            if isinstance(packet, RtcpSrPacket) and packet.ssrc == self._ssrc:
                packet.sender_info = info
        values = (info.packet_count, info.octet_count, info.rtp_timestamp, ntp, (ntp >> 16) & _U32)
        for name, value in zip(_SENDER_COUNTERS, values, strict=True):
            setattr(self._sender, _SENDER + name, value)


def attach_direct_sender(
    sender: RTCRtpSender, *, clock: Callable[[], float] = time.monotonic
) -> DirectSender:
    """Send on ``sender`` with a ``DirectSender``; bound when aiortc starts the sender (``send()``)."""
    for name in _SENDER_COUNTERS:
        if not hasattr(sender, _SENDER + name):
            raise HookError(f"RTCRtpSender.__{name} is gone")
    direct = DirectSender(sender, clock)
    original_send: Callable[[RTCRtpSendParameters], Awaitable[None]] = sender.send
    original_rtcp: Callable[[list[AnyRtcpPacket]], Awaitable[None]] = sender._send_rtcp

    async def send(parameters: RTCRtpSendParameters) -> None:
        await original_send(parameters)
        if parameters.codecs and not direct.started:
            direct._bind(parameters)

    async def send_rtcp(packets: list[AnyRtcpPacket]) -> None:
        direct._fill_sender_report(packets)
        await original_rtcp(packets)

    sender.send = send  # type: ignore[method-assign]
    sender._send_rtcp = send_rtcp  # type: ignore[method-assign]
    sender.replaceTrack(direct.idle_track)
    return direct


# (ssrc, sequence number, timestamp, payload type, marker, payload) of a decrypted RTP packet
RawRtpHandler = Callable[[int, int, int, int, bool, bytes], None]


class _Seen:
    """What ``StreamStatistics.add`` reads of a packet; one reused instance instead of a packet object."""

    __slots__ = ("sequence_number", "timestamp")

    def __init__(self) -> None:
        self.sequence_number = 0
        self.timestamp = 0


class DirectReceiver:
    """Decrypted RTP of a receiver straight from the ICE connection's datagram callback (module note)."""

    def __init__(self, receiver: RTCRtpReceiver, on_rtp: RawRtpHandler) -> None:
        streams = getattr(receiver, _RECEIVER_STREAMS, None)
        if not isinstance(streams, dict):
            raise HookError(f"RTCRtpReceiver.{_RECEIVER_STREAMS} is gone")
        stop_decoder = getattr(receiver, "_RTCRtpReceiver__stop_decoder", None)
        if not callable(stop_decoder):
            raise HookError("RTCRtpReceiver.__stop_decoder is gone")
        self._receiver = receiver
        self._on_rtp = on_rtp
        self._streams: dict[int, StreamStatistics] = streams
        self._stop_decoder: Callable[[], None] = stop_decoder
        self._clock_rates: dict[int, int] = {}
        self._dtls: RTCDtlsTransport | None = None
        self._queue_datagram: Callable[[bytes, int], None] | None = None
        self._seen = _Seen()
        self.started = False
        self.dropped = 0

    def _start(self, parameters: RTCRtpReceiveParameters) -> None:
        dtls = self._receiver.transport
        connection = getattr(dtls.transport, "_connection", None)
        original = getattr(connection, "data_received", None)
        if not isinstance(connection, Connection) or not callable(original):
            raise HookError("aioice Connection.data_received is gone")
        self._clock_rates = {
            codec.payloadType: codec.clockRate for codec in parameters.codecs if codec.payloadType is not None
        }
        self._dtls = dtls
        self._queue_datagram = original
        connection.data_received = self._datagram  # type: ignore[method-assign]
        for protocol in getattr(connection, "_protocols", ()):
            self._bypass_stun_parser(protocol)
        self._stop_decoder()  # the receiver's decoder thread would only idle
        self.started = True

    def _bypass_stun_parser(self, protocol: Any) -> None:
        """RFC 7983 §7: a first byte of 128-191 is RTP or RTCP, never STUN. aioice tries to parse every
        datagram as STUN first (an exception per RTP packet, and an RTP packet whose sequence number
        happens to equal its length - 20 would pass for STUN and be lost): skip that for those."""
        original: Callable[[bytes, tuple[Any, ...]], None] = protocol.datagram_received
        component: int = protocol.local_candidate.component
        datagram = self._datagram

        def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
            if data and 127 < data[0] < 192:
                datagram(data, component)
            else:
                original(data, addr)

        protocol.datagram_received = datagram_received

    def _datagram(self, data: bytes, component: int) -> None:
        # RFC 7983 demultiplexing as RTCDtlsTransport._recv_next: 128-191 is RTP/RTCP, RTCP by its type
        dtls = self._dtls
        if (
            len(data) > 1
            and 127 < data[0] < 192
            and not 191 < data[1] < 209
            and dtls is not None
            and dtls._state is _CONNECTED
            and dtls._rx_srtp is not None
        ):
            try:
                plain = dtls._rx_srtp.unprotect(data)
            except pylibsrtp.Error:
                self.dropped += 1
                return
            try:
                self._packet(plain)
            except Exception:  # never let one packet break aioice's socket callback
                logger.exception("handling a decrypted RTP packet failed")
            return
        assert self._queue_datagram is not None
        self._queue_datagram(data, component)

    @property
    def dtls(self) -> RTCDtlsTransport | None:
        return self._dtls

    @property
    def receiving(self) -> bool:
        """Whether decrypted RTP reaches ``on_rtp`` (started, DTLS up, the direction receives)."""
        dtls = self._dtls
        return self.started and dtls is not None and dtls._state is _CONNECTED and self._receiver._enabled

    def account(self, records: list[tuple[Any, ...]], wall_offset: float) -> None:
        """Packets the fast lane forwarded (fastpath records: ssrc, seq, ts, pt at 2-5, monotonic arrival at
        8), fed to the statistics of the receiver reports as ``StreamStatistics.add`` would have when they
        arrived (it takes arrival from time.time(): ``wall_offset`` converts)."""
        streams = self._streams
        for record in records:
            ssrc, sequence, timestamp = record[2], record[3], record[4]
            stats = streams.get(ssrc)
            if stats is None:
                stats = streams[ssrc] = StreamStatistics(self._clock_rates.get(record[5], 8000))
            in_order = stats.max_seq is None or uint16_gt(sequence, stats.max_seq)
            stats.packets_received += 1
            if stats.base_seq is None:
                stats.base_seq = sequence
            if not in_order:
                continue
            arrival = int((record[8] + wall_offset) * stats._clockrate)
            if stats.max_seq is not None and sequence < stats.max_seq:
                stats.cycles += 1 << 16
            stats.max_seq = sequence
            last_arrival, last_timestamp = stats._last_arrival, stats._last_timestamp
            if last_arrival is not None and last_timestamp is not None and timestamp != last_timestamp:
                diff = abs((arrival - last_arrival) - (timestamp - last_timestamp))
                stats._jitter_q4 += diff - ((stats._jitter_q4 + 8) >> 4)
            stats._last_arrival = arrival
            stats._last_timestamp = timestamp

    def packet(self, data: bytes) -> None:
        """A decrypted RTP packet (the fast lane decrypts what it does not forward itself)."""
        self._packet(data)

    def _packet(self, data: bytes) -> None:
        size = len(data)
        if not self._receiver._enabled or size < 12:
            self.dropped += 1
            return
        first, second, sequence, timestamp, ssrc = _RTP_HEADER.unpack_from(data)
        pos = 12 + 4 * (first & 0x0F)
        if first & 0x10:  # RFC 3550 §5.3.1: skip the extension (truncated: dropped below)
            pos = pos + 4 + 4 * ((data[pos + 2] << 8) | data[pos + 3]) if size >= pos + 4 else size + 1
        end = size
        if first & 0x20:  # RFC 3550 §5.1: the last octet counts the padding, itself included
            end = size - data[-1] if data[-1] else -1
        payload_type = second & 0x7F
        rate = self._clock_rates.get(payload_type)
        if first >> 6 != 2 or pos > end or rate is None:
            self.dropped += 1  # malformed, or a payload type aiortc would not route to this receiver
            return
        stats = self._streams.get(ssrc)
        if stats is None:
            stats = self._streams[ssrc] = StreamStatistics(rate)
        seen = self._seen
        seen.sequence_number, seen.timestamp = sequence, timestamp
        stats.add(seen)  # type: ignore[arg-type]
        self._on_rtp(ssrc, sequence, timestamp, payload_type, second > 127, data[pos:end])


def attach_direct_receiver(receiver: RTCRtpReceiver, on_rtp: RawRtpHandler) -> DirectReceiver:
    """Take ``receiver``'s RTP on the direct path once aiortc starts it (``receive()``)."""
    direct = DirectReceiver(receiver, on_rtp)
    original: Callable[[RTCRtpReceiveParameters], Awaitable[None]] = receiver.receive

    async def receive(parameters: RTCRtpReceiveParameters) -> None:
        await original(parameters)
        if not direct.started:
            direct._start(parameters)

    receiver.receive = receive  # type: ignore[method-assign]
    return direct
