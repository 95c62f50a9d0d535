"""The web leg's direct RTP receive path through aiortc's and aioice's private internals (aiortc 1.16,
aioice 0.13), the receiving half of ``aiortc_direct``, guarded with the other hooks by
``tests/media/webrtc/test_aiortc_hooks.py``. Per packet, aiortc's own path costs a queue, a task wakeup and
several coroutine hops; this costs none:

* ``DirectReceiver`` (``attach_direct_receiver(receiver, on_rtp)``): once the receiver is started, the
  ICE connection's ``data_received`` (called by aioice's ``StunProtocol`` with each non-STUN datagram,
  which it otherwise queues for the DTLS transport's reading task) unprotects SRTP packets right there
  with ``RTCDtlsTransport._rx_srtp`` and hands the fields to ``on_rtp``; SRTCP is unprotected there too
  and handed to ``RTCDtlsTransport._handle_rtcp_data`` in a task of its own (not through the ICE
  connection's queue and the DTLS transport's reading task); DTLS still takes aiortc's path. The ICE connection's ``StunProtocol``s hand datagrams of first byte 128-191 (RTP, RTCP:
  RFC 7983) to it without trying the STUN parser first. The receive statistics of RTCP receiver reports
  are fed as before (``StreamStatistics``; for what the fast lane forwarded its engine replays
  ``StreamStatistics.add`` and ``restore_reception`` copies the result in). aiortc's decoder thread for the receiver is stopped
  (``RTCRtpReceiver.__stop_decoder``, as on close) and was never started (``_IdleDecoderThread``
  stands in for it while aiortc's ``receive`` runs): nothing decodes.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import threading
import types
from collections.abc import Awaitable, Callable
from typing import Any

import aiortc.rtcrtpreceiver
import pylibsrtp
from aioice import Connection
from aiortc import RTCRtpReceiver
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters
from aiortc.rtcrtpreceiver import StreamStatistics

from gateway.media import arrival
from gateway.media.rtp.rtp_stats import ReceptionState
from gateway.media.webrtc.aiortc_hooks import RECEIVER_STREAMS, HookError

logger = logging.getLogger("gateway.media.webrtc.aiortc_direct")

_RTP_HEADER = struct.Struct("!BBHII")
_CONNECTED = DtlsState.CONNECTED
_SENDER = "_RTCRtpSender__"
_DTLS_RX = ("_RTCDtlsTransport__rx_bytes", "_RTCDtlsTransport__rx_packets")  # its getStats() reads them
_RTCP_TASKS: set[asyncio.Task[None]] = set()  # SRTCP being handled (a reference until done)
# SR, RR, SDES, BYE (RFC 3550 §6.4.1, §6.4.2, §6.5, §6.6): what a browser sends every second or so; aiortc's
# receiver and sender handle them without waiting (statistics, the RTT), so they are handled at once
_REPORT_TYPES = frozenset((200, 201, 202, 203))


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
        streams = getattr(receiver, RECEIVER_STREAMS, None)
        if not isinstance(streams, dict):
            raise HookError(f"RTCRtpReceiver.{RECEIVER_STREAMS} is gone")
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
        # the fast lane's packets of the browser not synced yet, as a count that only grows (media_progress)
        self.unsynced: Callable[[], int] | None = None
        # BUNDLE: another receiver on the same transport (the video one) gets the payload types this one
        # does not take; it started with ``via`` this one and never hooks the connection itself.
        self.next: DirectReceiver | None = None
        self.via: DirectReceiver | None = None

    def _start(self, parameters: RTCRtpReceiveParameters) -> None:
        dtls = self._receiver.transport
        if self.via is not None:  # bundled behind another receiver: it hands us our payload types
            self._clock_rates = {
                c.payloadType: c.clockRate for c in parameters.codecs if c.payloadType is not None
            }
            self._dtls = dtls
            self.via.next = self
            self._stop_decoder()
            self.started = True
            return
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
        if (
            len(data) > 1
            and 127 < data[0] < 192
            and dtls is not None
            and dtls._state is _CONNECTED
            and dtls._rx_srtp is not None
        ):  # SRTCP: handled as RTCDtlsTransport._recv_next does, without its queue and reading task
            try:
                plain = dtls._rx_srtp.unprotect_rtcp(data)
            except pylibsrtp.Error:
                return  # as aiortc: logged at debug level there, dropped
            self._rtcp(dtls, plain, 1, len(data), arrival.late)
            return
        assert self._queue_datagram is not None
        self._queue_datagram(data, component)

    def rtcp(self, plain: bytes, *, late: float, packets: int = 1, octets: int | None = None) -> None:
        """SRTCP from the browser the fast lane's engine unprotected (``late`` seconds after its arrival):
        a report compound it kept (``packets``/``octets``: how many SRTCP packets, and their size, arrived
        since, of which this is the latest kept; aiortc's DTLS counters count them all) or anything else
        it handed over at once. ``octets`` None: the decrypted size (the SRTCP trailer not counted)."""
        dtls = self._dtls
        if dtls is not None and dtls._state is _CONNECTED:
            self._rtcp(dtls, plain, packets, len(plain) if octets is None else octets, late)

    def _rtcp(self, dtls: RTCDtlsTransport, plain: bytes, packets: int, octets: int, late: float) -> None:
        for name, value in zip(_DTLS_RX, (octets, packets), strict=True):
            setattr(dtls, name, getattr(dtls, name) + value)
        handling = dtls._handle_rtcp_data(plain)
        if _reports_only(plain):  # at once: no task, no extra turn of the event loop
            restore = _at_arrival(dtls, late) if late else None
            try:
                handling.send(None)
            except StopIteration:
                return
            finally:
                if restore is not None:
                    restore()
            handling.close()  # aiortc's handlers of reports never wait: a newer aiortc would
            logger.warning("aiortc's RTCP handling waited: %s", plain[:2].hex())  # need a task
            return
        task = asyncio.get_running_loop().create_task(handling)
        _RTCP_TASKS.add(task)
        task.add_done_callback(_RTCP_TASKS.discard)

    @property
    def dtls(self) -> RTCDtlsTransport | None:
        return self._dtls

    @property
    def receiving(self) -> bool:
        """Whether decrypted RTP reaches ``on_rtp`` (started, DTLS up, the direction receives)."""
        dtls = self._dtls
        return self.started and dtls is not None and dtls._state is _CONNECTED and self._receiver._enabled

    def packets_received(self) -> int:
        """The browser's RTP packets received so far, every source (with the fast lane's, as of its last
        sync)."""
        return sum(stats.packets_received for stats in self._streams.values())

    def media_progress(self) -> int:
        """A count that grows while the browser's media arrive, on either path (the fast lane's engine
        counts without a sync): the consent checks' sign that media flow (``on_consent_expired``)."""
        unsynced = self.unsynced
        return self.packets_received() + (unsynced() if unsynced is not None else 0)

    def jitter_seconds(self) -> float | None:
        """Interarrival jitter of the browser's audio (RFC 3550 A.8, the worst of its sources), for metrics."""
        values = [s.jitter / s._clockrate for s in self._streams.values() if s._clockrate]
        return max(values) if values else None

    def clock_rate(self, payload_type: int) -> int:
        """The clock rate of a payload type the receiver takes (8000 when unknown, as ``StreamStatistics``)."""
        return self._clock_rates.get(payload_type, 8000)

    def reception_state(self, ssrc: int, clock_rate: int | None = None) -> ReceptionState | None:
        """aiortc's receive statistics of ``ssrc`` (``StreamStatistics``) for the fast lane's engine to
        continue from (its aiortc flavour replays ``StreamStatistics.add``); None before its first packet.
        With ``clock_rate`` (the engine's), arrival and jitter in that rate: a source that was counted in
        another (its first packet of another payload type) is rescaled, so the engine's next arrival
        does not look like a jump of years."""
        stats = self._streams.get(ssrc)
        if stats is None:
            return None
        arrival, jitter = stats._last_arrival, float(stats._jitter_q4)
        if clock_rate is not None and stats._clockrate and stats._clockrate != clock_rate:
            scale = clock_rate / stats._clockrate
            arrival = None if arrival is None else int(arrival * scale)
            jitter *= scale
        return ReceptionState(
            stats.packets_received, -1 if stats.base_seq is None else stats.base_seq,
            -1 if stats.max_seq is None else stats.max_seq, 0, stats.cycles, None, arrival,
            stats._last_timestamp or 0, jitter,
        )  # fmt: skip

    def restore_reception(self, ssrc: int, state: ReceptionState, payload_type: int) -> None:
        """Continue aiortc's receive statistics of ``ssrc`` from the engine's (the receiver reports read
        them)."""
        stats = self._streams.get(ssrc)
        if stats is None:
            stats = self._streams[ssrc] = StreamStatistics(self.clock_rate(payload_type))
        stats._clockrate = self.clock_rate(payload_type)  # the engine's values are in its rate
        stats.packets_received, stats.cycles = state.received, state.cycles
        stats.base_seq = None if state.base_seq < 0 else state.base_seq
        stats.max_seq = None if state.max_seq < 0 else state.max_seq
        stats._jitter_q4 = int(state.jitter)
        if state.arrival is not None:
            stats._last_arrival, stats._last_timestamp = state.arrival, state.timestamp

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
        if rate is None and self.next is not None and self.next.started:
            self.next._packet(data)  # the bundled video receiver's
            return
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


class _IdleDecoderThread:
    """Stands in for the decoder thread ``RTCRtpReceiver.receive`` starts (``threading.Thread`` of its
    module, ``decoder_worker`` with the track's queue third in ``args``): nothing decodes on the direct
    path, and a real one cost each call a thread start and, when stopped at once, a join that blocked the
    event loop until the thread ran. ``join`` ends the track as ``decoder_worker`` does when stopped."""

    def __init__(self, *, target: object = None, name: str = "", args: tuple[Any, ...] = ()) -> None:
        self._track_queue: asyncio.Queue[Any] | None = args[2] if len(args) > 2 else None

    def start(self) -> None:
        pass

    def join(self, timeout: float | None = None) -> None:
        if self._track_queue is not None:
            self._track_queue.put_nowait(None)  # "inform the track that it has ended"
            self._track_queue = None


_NO_THREADS = types.SimpleNamespace(Thread=_IdleDecoderThread, Event=threading.Event)


def attach_direct_receiver(
    receiver: RTCRtpReceiver, on_rtp: RawRtpHandler, *, via: DirectReceiver | None = None
) -> DirectReceiver:
    """Take ``receiver``'s RTP on the direct path once aiortc starts it (``receive()``); ``via``: the
    receiver whose transport this one shares (BUNDLE), which passes on the payload types it lacks."""
    direct = DirectReceiver(receiver, on_rtp)
    direct.via = via
    original: Callable[[RTCRtpReceiveParameters], Awaitable[None]] = receiver.receive

    async def receive(parameters: RTCRtpReceiveParameters) -> None:
        if direct.started:
            await original(parameters)
            return
        module: Any = aiortc.rtcrtpreceiver  # its decoder thread would be stopped at once: none starts
        module.threading = _NO_THREADS
        try:
            await original(parameters)  # runs through without awaiting: no other receive() sees this
        finally:
            module.threading = threading
        direct._start(parameters)

    receiver.receive = receive  # type: ignore[method-assign]
    return direct


def _at_arrival(dtls: RTCDtlsTransport, late: float) -> Callable[[], None]:
    """aiortc takes a report's arrival as ``time.time()`` when it handles it; the fast lane handed it over
    ``late`` seconds after (gateway.media.arrival). RFC 3550 §6.4.1: each sender's RTT from an RR (now -
    LSR's time - DLSR) reads ``late`` long, unless its LSR's time moves as much later while it is handled;
    what this returns moves it back and each receiver's time of an SR handled meanwhile (its DLSR counts
    from there) ``late`` earlier. Private fields read as aiortc_rtcp's hooks check them; none: nothing."""
    router = getattr(dtls, "_rtp_router", None)
    found = getattr(router, "senders", {})
    senders = [s for s in found.values() if isinstance(getattr(s, _SENDER + "lsr_time", None), float)]
    receivers = [
        (r, dict(t)) for r in getattr(router, "receivers", ()) if isinstance(t := _lsr_times(r), dict)
    ]
    for sender in senders:
        setattr(sender, _SENDER + "lsr_time", getattr(sender, _SENDER + "lsr_time") + late)

    def restore() -> None:
        for sender in senders:
            setattr(sender, _SENDER + "lsr_time", getattr(sender, _SENDER + "lsr_time") - late)
        for receiver, before in receivers:
            times = _lsr_times(receiver)
            for ssrc, handled in times.items():
                if before.get(ssrc) != handled:  # an SR of this source was handled now
                    times[ssrc] = handled - late

    return restore


def _lsr_times(receiver: Any) -> Any:
    return getattr(receiver, "_RTCRtpReceiver__lsr_time", None)


def _reports_only(rtcp: bytes) -> bool:
    """Whether a compound RTCP packet (decrypted) holds only SR, RR, SDES and BYE packets, its lengths
    (RFC 3550 §6.4.1: 32-bit words minus one) adding up. Feedback (NACK, PLI, REMB) and anything malformed
    take aiortc's task as before."""
    position, size = 0, len(rtcp)
    while position + 4 <= size:
        if rtcp[position + 1] not in _REPORT_TYPES:
            return False
        position += 4 * (((rtcp[position + 2] << 8) | rtcp[position + 3]) + 1)
    return position == size and size > 0
