"""Every use of aiortc's and aioice's private internals, in one place (aiortc 1.16, aioice 0.13).

The media bridge forwards RTP payloads between the web leg and the SIP leg without decoding them, which
aiortc's public API does not offer. These hooks make it possible; ``tests/media/webrtc/test_aiortc_hooks.py``
fails if an aiortc upgrade changes any of them (pyproject pins aiortc to one minor version for this).

* ``register_telephone_event()``: adds ``audio/telephone-event`` (8000 and 48000 Hz, RFC 4733) to
  ``aiortc.codecs.CODECS`` so that it is negotiated and its packets are routed to the receiver.
* ``register_red()``: adds ``audio/red`` (48000 Hz, 2 channels, RFC 2198) the same way, so that the
  browser's redundant Opus can be negotiated (``web_codecs``); aiortc never sends or decodes it.
* ``register_vp9()``: adds ``video/VP9`` (profile-id 0 and 2, RFC 9628 §6) the same way, so that a
  phone's VP9 is negotiated with the browser and forwarded (``web_video``); aiortc has no VP9 encoder or
  decoder and needs none: the bridge's video never reaches aiortc's codecs.
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
* ``ice_connections(pc)``, ``add_protocol(connection, protocol)``, ``connect_turn(transport, protocol)``:
  every ICE connection of a peer connection, and what ``ice_ports`` needs to gather on sockets of the
  configured range (aioice binds port 0): a host or relay protocol joins ``Connection._protocols``, a
  TURN transport on our socket runs aioice's allocation (``TurnTransport._connect``).
* ``peer_connection(configuration, certificate)``: an ``RTCPeerConnection`` with the process's DTLS
  certificate: aiortc's constructor makes a new ECDSA key and self-signed certificate for every peer
  connection (``RTCCertificate.generateCertificate``, ~1 ms of the event loop per call) and takes none
  from its configuration; the browser checks the a=fingerprint of the SDP, not who signed it
  (RFC 8827 §6.5), so one certificate per process (renewed, ``DtlsCertificates``) serves every call.
* ``cache_host_addresses(ttl)``: aioice enumerates the interfaces (``ifaddr``, ~0.5 ms) at every
  gathering; the list is kept ``ttl`` seconds, process-wide (a change is seen after that, just after).

* ``bundle_with_first(pc, transceiver)``: a transceiver added to a connected peer connection (video
  added mid-call, issue 19) gets its own DTLS and ICE transports from aiortc (``__createDtlsTransport``,
  BALANCED bundle policy), which ``setLocalDescription`` would gather new sockets for and the offer
  would describe; it is moved onto the first transceiver's transport at once, as aiortc does for a
  BUNDLE answer (``_bundled``), and the unused transports leave ``__dtlsTransports``/``__iceTransports``.

* ``on_bitrate_limit(sender, callback)``, ``send_remb(receiver, bitrate, ssrcs)``: the browser's REMB of
  a video sender's stream (``RTCRtpSender._handle_rtcp_packet``, wrapped) and a REMB to the browser from
  the receiver's RTCP SSRC (``RTCRtpReceiver._send_rtcp``), for the video's bandwidth hints (issue 19).
* ``on_receiver_report(sender, callback)``: each report block of the browser's SR or RR about a sender's
  stream (``_handle_rtcp_packet``, wrapped), for our Opus encoder's FEC (issue 35) and own_loss.py.

ICE consent (RFC 7675: ``on_consent_expired``, ``set_consent_expiry``, what the fast lane answers checks
with) is in ``ice_consent``. The bridge's direct RTP paths are in ``aiortc_direct`` (``DirectSender``)
and ``aiortc_receive`` (``DirectReceiver``); the fast lane swaps the DTLS transport's SRTP sessions with
the three functions below:

* ``srtp_sessions(dtls)``, ``replace_srtp_sessions(dtls, rx, tx)``, ``restore_srtp_sessions(...)``:
  aiortc's ``RTCDtlsTransport._rx_srtp``/``_tx_srtp`` (``pylibsrtp.Session``), which the fast lane's
  engine uses directly and replaces by its serialized stand-ins while it is linked.
"""

from __future__ import annotations

import asyncio
import fractions
import functools
import logging
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol

import aioice.ice
import aioice.turn
import aiortc.rtcdtlstransport
import av
import pylibsrtp
from aioice import Connection
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.codecs import CODECS
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsFingerprint, RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecParameters, RTCRtpSendParameters
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpSrPacket,
    pack_remb_fci,
    unpack_remb_fci,
)
from aiortc.rtp import RtpPacket as AiortcRtpPacket
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL

from gateway.media.errors import MediaError

logger = logging.getLogger(__name__)
_MISSING = object()

TELEPHONE_EVENT_MIME = "audio/telephone-event"
# (clock rate, payload type, events): payload types as Chromium offers them, outside aiortc's video range
# (97-102) so BUNDLE never collides. The event ranges differ on purpose: aiortc's codec-preference filter
# (filter_preferred_codecs) compares MIME type and parameters but not the clock rate, so two entries with
# equal parameters would both match the first one and the description would list it twice.
TELEPHONE_EVENTS = ((8000, 126, "0-16"), (48000, 110, "0-15"))

RECEIVER_STREAMS = "_RTCRtpReceiver__remote_streams"
RECEIVER_CODECS = "_RTCRtpReceiver__codecs"  # payload type -> RTCRtpCodecParameters, set by receive()
CERTIFICATES = "_RTCPeerConnection__certificates"


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


RED_MIME = "audio/red"
RED_PAYLOAD_TYPE = 63  # as Chrome offers it; a browser's own is taken in an answer


def register_red() -> None:
    """Make aiortc negotiate ``audio/red/48000/2`` (RFC 2198 redundancy, over Opus). Idempotent. Without
    parameters: aiortc writes no fmtp for it (``sdp.with_opus_red`` does) and compares parameters when
    it filters the codec preferences."""
    audio = CODECS["audio"]
    if not any(c.mimeType.lower() == RED_MIME for c in audio):
        audio.append(
            RTCRtpCodecParameters(
                mimeType=RED_MIME, clockRate=48000, channels=2, payloadType=RED_PAYLOAD_TYPE
            )
        )


VP9_MIME = "video/VP9"
# (profile-id, payload type): as Chromium offers them (RFC 9628 §6: 0 is 8-bit 4:2:0, 2 is 10/12-bit),
# after aiortc's own video types (97-102); no rtx, which the bridge never carries
VP9_PROFILES = (("0", 103), ("2", 104))


def register_vp9() -> None:
    """Make aiortc negotiate ``video/VP9/90000`` (profile-id 0 and 2) with Chromium's RTCP feedback
    (``nack``, ``nack pli``, ``ccm fir``, ``goog-remb``). Idempotent. Only for forwarding: the web leg's
    video is sent by a ``DirectSender`` and taken by ``tap_receiver``, so aiortc's ``get_encoder`` and
    ``get_decoder``, which know no VP9, are never called for it."""
    video = CODECS["video"]
    for profile, payload_type in VP9_PROFILES:
        if any(c.mimeType == VP9_MIME and c.parameters.get("profile-id") == profile for c in video):
            continue
        video.append(
            RTCRtpCodecParameters(
                mimeType=VP9_MIME,
                clockRate=90000,
                payloadType=payload_type,
                rtcpFeedback=[
                    RTCRtcpFeedback(type="nack"),
                    RTCRtcpFeedback(type="nack", parameter="pli"),
                    RTCRtcpFeedback(type="ccm", parameter="fir"),
                    RTCRtcpFeedback(type="goog-remb"),
                ],
                parameters={"profile-id": profile},
            )
        )


# A tapped packet: aiortc's RtpPacket (payload_type, sequence_number, timestamp, ssrc, marker, payload).
RtpTap = Callable[[AiortcRtpPacket], bool]


def tap_receiver(receiver: RTCRtpReceiver, on_packet: RtpTap, *, clock_rate: int = 48000) -> None:
    """Hand each decrypted RTP packet of ``receiver`` to ``on_packet`` before aiortc decodes it.

    When ``on_packet`` returns True the packet is consumed: only the receive statistics used for RTCP
    receiver reports are fed, no jitter buffer, no decoding. Otherwise aiortc handles it as usual. The
    statistics of a new source count in its payload type's clock rate, as aiortc's own; ``clock_rate``
    only for a payload type the receiver does not know.
    """
    original = receiver._handle_rtp_packet
    if not callable(original):
        raise HookError("RTCRtpReceiver._handle_rtp_packet is gone")
    streams = getattr(receiver, RECEIVER_STREAMS, None)
    if not isinstance(streams, dict):
        raise HookError(f"RTCRtpReceiver.{RECEIVER_STREAMS} is gone")
    codecs = getattr(receiver, RECEIVER_CODECS, None)
    if not isinstance(codecs, dict):
        raise HookError(f"RTCRtpReceiver.{RECEIVER_CODECS} is gone")

    async def handle(packet: AiortcRtpPacket, arrival_time_ms: int) -> None:
        if not on_packet(packet):
            await original(packet, arrival_time_ms=arrival_time_ms)
            return
        stats = streams.get(packet.ssrc)
        if stats is None:
            # the codec's rate (filled in by receive()), as aiortc's _handle_rtp_packet: a PCMU source
            # counted at 48 kHz read its arrivals 6 x too fast, its jitter ~800 where it was 0, and the
            # fast lane that continued it at 8 kHz saw a jump of decades (an RR that could not be packed)
            codec = codecs.get(packet.payload_type)
            stats = streams[packet.ssrc] = StreamStatistics(codec.clockRate if codec else clock_rate)
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
    return dtls_connection(transceivers[0].receiver.transport)


def dtls_connection(dtls: RTCDtlsTransport) -> Connection:
    """The aioice connection under a DTLS transport (one m-line's, before BUNDLE is negotiated)."""
    connection = getattr(dtls.transport, "_connection", None)
    if not isinstance(connection, Connection):
        raise HookError("RTCIceTransport._connection is gone")
    return connection


def ice_connections(pc: RTCPeerConnection) -> list[Connection]:
    """The aioice connections of every ICE transport the peer connection gathers on (one per unbundled
    m-line: an offer with video or a data channel has several)."""
    transports = getattr(pc, "_RTCPeerConnection__iceTransports", None)
    if not isinstance(transports, set):
        raise HookError("RTCPeerConnection.__iceTransports is gone")
    found = [getattr(transport, "_connection", None) for transport in transports]
    if not all(isinstance(connection, Connection) for connection in found):
        raise HookError("RTCIceTransport._connection is gone")
    return found  # type: ignore[return-value]


def add_protocol(connection: Connection, protocol: Any) -> None:
    """Make ``protocol`` (a host or relayed candidate's) one of the connection's: paired with remote
    candidates, closed by ``close()``."""
    protocols = getattr(connection, "_protocols", None)
    if not isinstance(protocols, list):
        raise HookError("Connection._protocols is gone")
    protocols.append(protocol)


async def connect_turn(transport: aioice.turn.TurnTransport, protocol: Any) -> None:
    """aioice's TURN allocation (RFC 5766 §6) on ``transport``, whose socket is ours."""
    connect = getattr(transport, "_connect", None)
    if not callable(connect):
        raise HookError("TurnTransport._connect is gone")
    await connect(protocol)


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


class _SharedContextCertificate(RTCCertificate):
    """An ``RTCCertificate`` whose OpenSSL context (``_create_ssl_context``, called by every DTLS transport's
    ``start``) is made once per SRTP profile list and shared: an SSL_CTX is meant to serve many
    connections, and aiortc's one per transport cost each call its memory and the time to load the key.
    The shared context caches no sessions (a server-side cache would keep every call's) and releases
    idle connections' buffers. Its fingerprints are computed once too: aiortc hashes the certificate with
    each of its three digests at every offer and answer (~22 us a time on a call's critical path)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        super().__init__(key=key, cert=cert)
        self._contexts: dict[tuple[bytes, ...], SSL.Context] = {}
        self._fingerprints: tuple[RTCDtlsFingerprint, ...] | None = None

    def getFingerprints(self) -> list[RTCDtlsFingerprint]:
        if self._fingerprints is None:
            self._fingerprints = tuple(super().getFingerprints())
        return list(self._fingerprints)

    def _create_ssl_context(self, srtp_profiles: list[Any]) -> SSL.Context:
        profiles = tuple(profile.openssl_profile for profile in srtp_profiles)
        context = self._contexts.get(profiles)
        if context is None:
            context = super()._create_ssl_context(srtp_profiles)
            context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
            # an idle connection gives its read and write buffers back (after the handshake DTLS only
            # carries the close_notify; SRTP keys live in libsrtp)
            context.set_mode(SSL.MODE_RELEASE_BUFFERS)
            self._contexts[profiles] = context
        return context


_RTC_CERTIFICATES: dict[tuple[int, int], tuple[object, object, RTCCertificate]] = {}


def make_shared_context(certificate: RTCCertificate) -> None:
    """Make the OpenSSL context a DTLS transport's ``start`` asks for now (aiortc's SRTP profiles)."""
    certificate._create_ssl_context(srtp_profiles=aiortc.rtcdtlstransport.SRTP_PROFILES)


def rtc_certificate(key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> RTCCertificate:
    """aiortc's certificate object for a key and certificate of ours (``DtlsCertificate``): one per pair,
    whose OpenSSL context every web leg shares (``_SharedContextCertificate``)."""
    found = _RTC_CERTIFICATES.get((id(key), id(certificate)))
    if found is not None and found[0] is key and found[1] is certificate:
        return found[2]
    made = _SharedContextCertificate(key, certificate)
    if len(_RTC_CERTIFICATES) >= 4:  # renewed ones: the newest few are enough
        _RTC_CERTIFICATES.pop(next(iter(_RTC_CERTIFICATES)))
    _RTC_CERTIFICATES[(id(key), id(certificate))] = (key, certificate, made)
    return made


def peer_connection(
    configuration: RTCConfiguration, certificate: RTCCertificate | None = None
) -> RTCPeerConnection:
    """A peer connection that uses ``certificate`` for DTLS (None: aiortc makes its own).

    aiortc 1.16 calls ``RTCCertificate.generateCertificate()`` in the constructor and keeps the result in
    the name-mangled ``__certificates``: the class method is swapped for the constructor's duration only
    (synchronous: nothing else runs on the event loop meanwhile) and the result checked.
    """
    if certificate is None:
        return RTCPeerConnection(configuration)
    original = RTCCertificate.__dict__.get("generateCertificate")
    if not isinstance(original, classmethod):
        raise HookError("RTCCertificate.generateCertificate is gone")
    RTCCertificate.generateCertificate = classmethod(lambda cls: certificate)  # type: ignore[method-assign,assignment]
    try:
        pc = RTCPeerConnection(configuration)
    finally:
        RTCCertificate.generateCertificate = original  # type: ignore[method-assign,assignment]
    if getattr(pc, CERTIFICATES, None) != [certificate]:
        raise HookError(f"RTCPeerConnection.{CERTIFICATES} no longer holds the certificate it made")
    return pc


class _HostAddresses:
    """aioice's ``get_host_addresses``, remembered ``ttl`` seconds per (use_ipv4, use_ipv6). A stale list
    still answers (on the event loop: a new one is made just after, off the call's set-up)."""

    def __init__(self, original: Callable[[bool, bool], list[str]], ttl: float) -> None:
        self.original, self.ttl = original, ttl
        self._found: dict[tuple[bool, bool], tuple[float, list[str]]] = {}
        self._refreshing: dict[tuple[bool, bool], float] = {}  # when a renewal was scheduled (1 s: lost)

    def __call__(self, use_ipv4: bool, use_ipv6: bool) -> list[str]:
        key, now = (use_ipv4, use_ipv6), time.monotonic()
        found = self._found.get(key)
        if found is not None and now - found[0] > self.ttl and now - self._refreshing.get(key, -1.0) > 1:
            try:  # (a renewal whose loop ended before it ran is scheduled again after 1 s)
                asyncio.get_running_loop().call_later(0.05, self._refresh, key)
                self._refreshing[key] = now
            except RuntimeError:  # no loop: at once
                found = None
        return list(found[1] if found is not None else self._refresh(key))

    def _refresh(self, key: tuple[bool, bool]) -> list[str]:
        self._refreshing.pop(key, None)
        self._found[key] = (time.monotonic(), self.original(*key))
        return self._found[key][1]


def cache_host_addresses(ttl: float) -> None:
    """Enumerate the host's interfaces at most once per ``ttl`` seconds for ICE gathering (0: every
    time, aioice's own behaviour). Process-wide, as aioice looks the function up in its module."""
    if ttl < 0:
        raise ValueError(f"ttl must not be negative, got {ttl!r}")
    current = aioice.ice.get_host_addresses
    original = current.original if isinstance(current, _HostAddresses) else current
    aioice.ice.get_host_addresses = _HostAddresses(original, ttl) if ttl > 0 else original  # type: ignore[assignment]


def srtp_sessions(dtls: RTCDtlsTransport) -> tuple[pylibsrtp.Session, pylibsrtp.Session] | None:
    """The DTLS transport's (receive, transmit) libsrtp sessions once DTLS has set them up."""
    rx, tx = dtls._rx_srtp, dtls._tx_srtp
    if isinstance(rx, pylibsrtp.Session) and isinstance(tx, pylibsrtp.Session):
        return rx, tx
    return None


def replace_srtp_sessions(dtls: RTCDtlsTransport, rx: object, tx: object) -> None:
    """Have the DTLS transport protect and unprotect with stand-ins of the same methods."""
    dtls._rx_srtp = rx  # type: ignore[assignment]
    dtls._tx_srtp = tx  # type: ignore[assignment]


def restore_srtp_sessions(
    dtls: RTCDtlsTransport, rx: pylibsrtp.Session, tx: pylibsrtp.Session, *, replaced: type
) -> None:
    """Put the original sessions back where the stand-ins (of type ``replaced``) still are."""
    if isinstance(dtls._rx_srtp, replaced):
        dtls._rx_srtp = rx
    if isinstance(dtls._tx_srtp, replaced):
        dtls._tx_srtp = tx


def bundle_with_first(pc: RTCPeerConnection, transceiver: RTCRtpTransceiver) -> None:
    """Run ``transceiver`` over the first transceiver's (connected) transport (module note)."""
    dtls_set = getattr(pc, "_RTCPeerConnection__dtlsTransports", None)
    ice_set = getattr(pc, "_RTCPeerConnection__iceTransports", None)
    if not isinstance(dtls_set, set) or not isinstance(ice_set, set):
        raise HookError("RTCPeerConnection.__dtlsTransports/__iceTransports are gone")
    first = pc.getTransceivers()[0]
    if first is transceiver:
        raise HookError("the first transceiver cannot be bundled with itself")
    own, primary = transceiver.receiver.transport, first.receiver.transport
    if own is primary:
        return
    transceiver.receiver.setTransport(primary)
    transceiver.sender.setTransport(primary)
    transceiver._bundled = True
    dtls_set.discard(own)
    ice_set.discard(own.transport)


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """The browser's PLI or FIR of ``sender``'s stream goes to ``callback`` instead of aiortc's encoder
    (``RTCRtpSender._handle_rtcp_packet`` calls ``_send_keyframe`` for both, RFC 4585 §6.3.1, RFC 5104
    §4.3.1): the gateway asks the other leg for the keyframe, it has no encoder."""
    if not callable(getattr(sender, "_send_keyframe", None)):
        raise HookError("RTCRtpSender._send_keyframe is gone")
    sender._send_keyframe = callback  # type: ignore[method-assign]


def send_picture_loss(receiver: RTCRtpReceiver, media_ssrc: int) -> Coroutine[Any, Any, None]:
    """aiortc's own PLI to the browser for its stream ``media_ssrc`` (``RTCRtpReceiver._send_rtcp_pli``,
    from the receiver's RTCP SSRC once started; nothing before)."""
    send = getattr(receiver, "_send_rtcp_pli", None)
    if not callable(send):
        raise HookError("RTCRtpReceiver._send_rtcp_pli is gone")
    result: Coroutine[Any, Any, None] = send(media_ssrc)
    return result


def on_bitrate_limit(sender: RTCRtpSender, callback: Callable[[int, tuple[int, ...]], None]) -> None:
    """The browser's REMB naming ``sender``'s stream (RTCP PSFB FMT 15, which the DTLS transport routes to
    each sender its FCI names) goes to ``callback(bitrate, ssrcs)`` as well as to aiortc's handling (which
    would set an encoder's target bitrate: the gateway has no encoder)."""
    handle = getattr(sender, "_handle_rtcp_packet", None)
    if not callable(handle) or not asyncio.iscoroutinefunction(handle):
        raise HookError("RTCRtpSender._handle_rtcp_packet is gone")

    async def handle_rtcp_packet(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:  # another application's feedback
                pass
            else:
                callback(bitrate, tuple(ssrcs))
        await handle(packet)

    sender._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]


def on_receiver_report(sender: RTCRtpSender, callback: Callable[[Any], None]) -> None:
    """The browser's reception report blocks about ``sender``'s stream (in its SR or RR, RFC 3550 §6.4)
    go to ``callback`` (aiortc's RtcpReceiverInfo) as well as to aiortc's handling (RTT, statistics)."""
    handle = getattr(sender, "_handle_rtcp_packet", None)
    if not callable(handle) or not asyncio.iscoroutinefunction(handle):
        raise HookError("RTCRtpSender._handle_rtcp_packet is gone")

    async def handle_rtcp_packet(packet: Any) -> None:
        if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            for block in packet.reports:
                if block.ssrc == sender._ssrc:
                    callback(block)
        await handle(packet)

    sender._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]


async def send_remb(receiver: RTCRtpReceiver, bitrate: int, ssrcs: Sequence[int]) -> bool:
    """A REMB (``bitrate`` bit/s for the streams ``ssrcs``) to the browser from ``receiver``'s RTCP SSRC,
    as aiortc's own bitrate estimator sends it (``RTCRtpReceiver._handle_rtp_packet``); False before the
    receiver has started (no RTCP SSRC yet)."""
    ssrc = getattr(receiver, "_RTCRtpReceiver__rtcp_ssrc", _MISSING)
    send = getattr(receiver, "_send_rtcp", None)
    if ssrc is _MISSING or not callable(send):
        raise HookError("RTCRtpReceiver.__rtcp_ssrc or _send_rtcp is gone")
    if not isinstance(ssrc, int):  # None: not started
        return False
    packet = RtcpPsfbPacket(
        fmt=RTCP_PSFB_APP, ssrc=ssrc, media_ssrc=0, fci=pack_remb_fci(bitrate, list(ssrcs))
    )
    await send(packet)
    return True


PC_CLOSE_TIMEOUT = 5.0  # seconds a peer connection's close may take before the leg goes on without it


async def close_peer(pc: Any, call_id: str, timeout: float = PC_CLOSE_TIMEOUT) -> None:
    """``pc.close()``, bounded: aiortc's receiver waits for its RTCP task's `exited` event, which a task
    that died of an exception never sets, and a full run once hung a gateway's shutdown there for 8
    minutes. Past `timeout` the close goes on in the background and a WARNING says so.

    One close task per peer connection, whoever asks: a second ``pc.close()`` waits on aiortc's own
    "closed" future, and a cancelled waiter cancels that future, so the first close then failed with
    InvalidStateError in a task nobody read ("Task exception was never retrieved", a full run's ERROR).
    A failure of the close is logged once, as a WARNING, whenever it ends.

    When aiortc has begun closing by itself (the far end's DTLS close_notify starts its own close task),
    that task is the close: waited on shielded, never joined by a second ``pc.close()``, whose
    cancellation (a shutdown cancelling the tasks left) would cancel aiortc's "closed" future under its
    own task, which then failed unread (test_fuzz_gateway's rare failure)."""
    closing = _CLOSING.get(pc)
    if closing is None:
        own = begun_by_aiortc(pc)
        if own is not None:
            own.add_done_callback(functools.partial(_closed, call_id))  # its failure read, and said
            closing = _CLOSING[pc] = asyncio.ensure_future(_shielded(own))
        else:
            closing = _CLOSING[pc] = asyncio.ensure_future(pc.close())
            closing.add_done_callback(functools.partial(_closed, call_id))
    done, _ = await asyncio.wait({closing}, timeout=timeout)  # (a cancelled caller leaves the close be)
    if not done:
        logger.warning(
            "call=%s the peer connection did not close within %g s: left to finish", call_id, timeout
        )


def begun_by_aiortc(pc: Any) -> asyncio.Future[None] | None:
    """aiortc's own close of ``pc`` while it runs (begun when every DTLS transport closed: the far end's
    close_notify, or transports an offer left unused), else None."""
    own = getattr(pc, "_RTCPeerConnection__closeTask", None)
    return own if isinstance(own, asyncio.Future) and not own.done() else None


async def close_throwaway(pc: Any) -> None:
    """Close a peer connection no call holds (an offer's check): as ``pc.close()``, but a close aiortc
    began by itself is waited on shielded (its outcome read) rather than joined, so that a cancelled
    caller (the browser gone while its offer was checked) cannot break it (see ``close_peer``)."""
    own = begun_by_aiortc(pc)
    if own is None:
        await pc.close()
        return
    own.add_done_callback(_read)
    await asyncio.shield(own)


def _read(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()  # read: a throwaway's failed close is nobody's concern


async def _shielded(task: asyncio.Future[None]) -> None:
    """Wait for ``task`` without ever cancelling it (a cancelled waiter leaves it be)."""
    await asyncio.shield(task)


def _closed(call_id: str, closing: asyncio.Future[None]) -> None:
    if not closing.cancelled() and closing.exception() is not None:
        logger.warning("call=%s closing the peer connection failed: %r", call_id, closing.exception())


# each peer connection's close, until the connection is gone (a close that never ends is kept with it)
_CLOSING: weakref.WeakKeyDictionary[Any, asyncio.Future[None]] = weakref.WeakKeyDictionary()
