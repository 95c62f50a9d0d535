"""Settings and statistics of the media bridge (frozen values), and the latency meter the bench reads."""

from __future__ import annotations

import array
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiortc import RTCIceServer
from aiortc.rtcdtlstransport import RTCCertificate

import sdp
from gateway.config import Config, DtmfMode, IceServer
from gateway.config.addresses import RtpAddress, family_of
from gateway.media.codecs.g729 import usable_sip_codecs
from gateway.media.errors import MediaError
from gateway.media.forward import PathStats
from gateway.media.rtp.dtls_srtp import DtlsCertificates
from gateway.media.rtp.ports import RtpPortAllocator
from gateway.media.webrtc import aiortc_hooks

if TYPE_CHECKING:
    from gateway.media.fastlane.engine import EnginePool
    from gateway.media.webrtc.ahead.peer_pool import PeerPool
    from gateway.media.webrtc.ice_ports import PortSource

DEFAULT_SIP_CODECS = ("PCMU", "PCMA", "G722", "opus")
DEFAULT_WEB_CODECS = ("opus", "PCMU", "PCMA", "G722")


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    """What one call's bridge needs. The SIP leg's RTP binds to ``bind_host`` and its SDP says
    ``public_address`` (default: ``bind_host``); ``addresses`` instead, when set, serves several address
    families (gateway/config/addresses.py: the default first). ``include_loopback``/``host_addresses``
    are for tests on loopback only (see ``WebLegOptions``)."""

    allocator: RtpPortAllocator
    bind_host: str = "127.0.0.1"
    # the web leg's ICE sockets' range (media.web_ports, or the gateway's IcePool in front of it or of
    # media.rtp_ports); None: they share ``allocator`` (media.rtp_ports)
    web_allocator: PortSource | None = None
    # the web legs' peer connections made ahead of their calls (the gateway's PeerPool); None: each
    # web leg makes its own
    peer_pool: PeerPool | None = None
    public_address: str | None = None
    addresses: Mapping[str, RtpAddress] | None = None
    # SDES-SRTP on the SIP leg (media.sip_srtp): off, optional (taken when offered, and offered when
    # `offer_sdes`), required (nothing else). `offer_sdes`: our offers carry a=crypto (the key travels in
    # the SDP: by default only when SIP to the PBX is TLS).
    sip_srtp: str = "off"
    offer_sdes: bool = False
    # our offers to the SIP side speak WebRTC media (DTLS-SRTP, ICE-lite, rtcp-mux, BUNDLE): a route's
    # `sip_offer: webrtc`, for a SIP side that takes nothing else (gateway/config/routes.py)
    offer_webrtc: bool = False
    # The gateway's DTLS certificate for DTLS-SRTP toward SIP peers that offer it (one per process,
    # owned by the application); None: each call makes its own.
    dtls_certificates: DtlsCertificates | None = None
    sip_codecs: tuple[str, ...] = DEFAULT_SIP_CODECS
    web_codecs: tuple[str, ...] = DEFAULT_WEB_CODECS
    telephone_event: bool = True
    # a G.711 phone's losses concealed by the browser or by us (codecs.g711_to_web: auto, forward,
    # transcode; gateway/media/codecs/conceal_choice.py)
    g711_to_web: str = "auto"
    # the browser's RFC 4733 events forwarded to the SIP leg as they came (sip.dtmf_mode rfc4733); False
    # (dtmf_mode info): only reported (DtmfReceived), the call sends each digit as SIP INFO, once
    forward_web_dtmf: bool = True
    # Video passed through between the legs (codecs.video, issue 19): H264, VP8, VP9 by preference;
    # empty: video m-lines are rejected with port 0 as before.
    video_codecs: tuple[str, ...] = ()
    ice_servers: tuple[RTCIceServer, ...] = ()
    inactivity_timeout: float | None = 5.0
    loss_detect: float | None = 2.0  # no RTP from the browser: reported lost, the SIP side hears a fill
    hold_timeout: float | None = 15.0  # no RTP nor RTCP from a held or silent SIP peer (media.hold_timeout)
    ice_timeout: float = 20.0
    web_rtcp_interval: float = 5.0  # our RTCP reports to the browser (RFC 3550 §6.2; aiortc's were 1 s)
    data_channel: bool = True  # accept the browser's data channel for chat (media.data_channel)
    # RFC 4103 text <-> a T.140 data channel (needs data_channel), media.realtime_text: answer (the SIP
    # side's offer answered, ours made when the browser asks), offer (ours on every data channel call), off
    realtime_text: str = "answer"
    opus_usedtx: bool = False  # usedtx=1 in our Opus fmtp to the browser (media.opus_usedtx)
    opus_red: str = "auto"  # RFC 2198 redundancy with the browser (media.opus_red: auto, on, off)
    include_loopback: bool = False
    host_addresses: tuple[str, ...] | None = None
    call_id: str = "-"
    measure_latency: bool = False
    clock: Callable[[], float] = time.monotonic  # seconds, for timestamp mapping and inactivity
    # The native engines that forward steady RTP (gateway/media/fastlane), owned by the application;
    # None: the Python path carries every packet. Used only with the monotonic clock.
    fast_lane: EnginePool | None = None

    def __post_init__(self) -> None:
        web_known = ("PCMU", "PCMA", "G722", "opus")
        for leg, codecs, known in (
            ("sip", self.sip_codecs, (*web_known, "G729")),  # G.729: SIP leg only (transcoded)
            ("web", self.web_codecs, web_known),
        ):
            if not codecs or any(c.lower() not in {k.lower() for k in known} for c in codecs):
                raise MediaError(f"{leg} codecs must be a non-empty subset of {', '.join(known)}: {codecs!r}")
        if self.inactivity_timeout is not None and self.inactivity_timeout <= 0:
            raise MediaError(f"inactivity_timeout must be positive, got {self.inactivity_timeout!r}")
        if self.ice_timeout <= 0:
            raise MediaError(f"ice_timeout must be positive, got {self.ice_timeout!r}")
        if self.web_rtcp_interval <= 0:
            raise MediaError(f"web_rtcp_interval must be positive, got {self.web_rtcp_interval!r}")
        if self.addresses is not None and not self.addresses:
            raise MediaError("addresses must serve at least one address family")

    def rtp_address(self, family: str | None = None) -> RtpAddress:
        """Where the SIP leg's RTP binds and what its SDP says for ``family`` ("IP4", "IP6"; None: the
        default). A family not served is a 488 with warn-code 301 (RFC 3261 §20.43), never one-way audio."""
        served = self.addresses
        if served is None:
            own = RtpAddress(self.bind_host, self.public_address)
            served = {family_of(own.sdp_address): own}
        if family is None:
            return next(iter(served.values()))
        found = served.get(family)
        if found is None:
            raise sdp.SdpUnacceptable(
                f"the gateway's RTP has no {family} address (it serves {', '.join(served)})", warning=301
            )
        return found


def web_certificate(certificates: DtlsCertificates | None) -> RTCCertificate | None:
    """The process's DTLS certificate for a web leg (renewed by ``DtlsCertificates``), as aiortc's
    object; None: aiortc makes one per peer connection."""
    if certificates is None:
        return None
    current = certificates.current()
    return aiortc_hooks.rtc_certificate(current.key, current.certificate)


def ice_servers_from_config(servers: Iterable[IceServer]) -> tuple[RTCIceServer, ...]:
    """``Config.ice.gateway`` (credentials are ``Secret`` values) as aiortc RTCIceServers."""
    return tuple(
        RTCIceServer(
            urls=list(server.urls),
            username=server.username,
            credential=server.credential.reveal() if server.credential is not None else None,
        )
        for server in servers
    )


def settings_from_config(
    config: Config,
    allocator: RtpPortAllocator,
    *,
    call_id: str,
    fast_lane: EnginePool | None = None,
    dtls_certificates: DtlsCertificates | None = None,
    web_allocator: PortSource | None = None,
    peer_pool: PeerPool | None = None,
) -> BridgeSettings:
    """The bridge settings of one call from ``gateway.yaml``: RTP on the SIP listen hosts, per address
    family (``Config.rtp_addresses``). A wildcard listen host needs ``media.public_address`` of its
    family: ``c=IN IP4 0.0.0.0`` would tell the SIP side the call is on hold."""
    addresses = config.rtp_addresses()
    if not addresses:
        raise MediaError("media.public_address is required when RTP binds to a wildcard address")
    default = next(iter(addresses.values()))
    return BridgeSettings(
        allocator,
        web_allocator=web_allocator,
        peer_pool=peer_pool,
        bind_host=default.bind_host,
        public_address=default.public,
        addresses=addresses,
        sip_srtp=config.media.sip_srtp.value,
        offer_sdes=config.media.sip_srtp.value != "off"
        and (config.pbx.transport.value == "tls" or config.media.sdes_over_plain_sip),
        dtls_certificates=dtls_certificates,
        sip_codecs=usable_sip_codecs([c.value for c in config.codecs.sip]),  # G729 when libbcg729 loads
        web_codecs=tuple(c.value for c in config.codecs.webrtc),
        telephone_event=config.codecs.telephone_event,
        g711_to_web=config.codecs.g711_to_web.value,
        forward_web_dtmf=config.sip.dtmf_mode is DtmfMode.RFC4733,
        video_codecs=tuple(c.value for c in config.codecs.video),
        ice_servers=ice_servers_from_config(config.ice.gateway),
        host_addresses=tuple(str(a) for a in config.ice.host_addresses) or None,
        inactivity_timeout=config.media.inactivity_timeout,
        loss_detect=config.media.loss_detect or None,
        hold_timeout=config.media.hold_timeout,
        data_channel=config.media.data_channel,
        realtime_text=config.media.realtime_text.value,
        opus_usedtx=config.media.opus_usedtx,
        opus_red=config.media.opus_red.value,
        call_id=call_id,
        fast_lane=fast_lane if config.media.fast_path else None,
    )


@dataclass(frozen=True, slots=True)
class LatencySummary:
    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True, slots=True)
class BridgeStats:
    web_to_sip: PathStats
    sip_to_web: PathStats
    transcoding: bool
    latency: LatencySummary | None = None
    web_dropped: int = 0  # packets from the browser the direct receive path dropped (SRTP check, malformed)
    fast_lane_packets: int = 0  # of those forwarded, by the native engine (the others: the Python path)


class LatencyMeter:
    """Time from a packet's arrival at the bridge (its socket callback) to its departure (socket write):
    the latest ``size`` samples, as 8-octet doubles in a ring (a deque of Python floats took 32 octets a
    sample and, full, 640 KiB per call; the benchmarks that turn it on measure the bridge's RSS too)."""

    def __init__(
        self, *, enabled: bool, clock: Callable[[], float] = time.monotonic, size: int = 4096
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be positive, got {size!r}")
        self.enabled = enabled
        self._clock = clock
        self._size = size
        self._samples = array.array("d")
        self._next = 0  # where the next sample goes once the ring is full

    def measure(self, arrival: float) -> None:
        if self.enabled:
            self._add(self._clock() - arrival)

    def record(self, seconds: float) -> None:
        """A latency measured elsewhere (the fast lane's thread)."""
        if self.enabled:
            self._add(seconds)

    def extend(self, seconds: Iterable[float]) -> None:
        """Latencies measured elsewhere (the fast lane's thread samples its latest packets, up to 128 a
        sync): copied into the ring by slices, not a Python call per sample."""
        if not self.enabled:
            return
        new = seconds if isinstance(seconds, array.array) else array.array("d", seconds)
        samples, size = self._samples, self._size
        if len(new) >= size:  # only the newest `size` stay
            self._samples = array.array("d", new[-size:])
            self._next = 0
            return
        room = size - len(samples)
        if room > 0:
            samples.extend(new[:room])
            new = new[room:]
        while new:
            start = self._next
            chunk = new[: size - start]
            samples[start : start + len(chunk)] = chunk
            self._next = (start + len(chunk)) % size
            new = new[len(chunk) :]

    def _add(self, value: float) -> None:
        samples = self._samples
        if len(samples) < self._size:
            samples.append(value)
        else:
            samples[self._next] = value
            self._next = (self._next + 1) % self._size

    def summary(self) -> LatencySummary | None:
        if not self._samples:
            return None
        ordered = sorted(self._samples)
        n = len(ordered)
        return LatencySummary(
            n, 1000 * ordered[n // 2], 1000 * ordered[min(n - 1, int(n * 0.99))], 1000 * ordered[-1]
        )
