"""The sections of gateway.yaml as frozen dataclasses; each validates itself in `__post_init__`.

Field names are the YAML keys, field types say how values are read (see `gateway.config.values`),
defaults are what an absent key means. `Config.__post_init__` holds the checks that span sections.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Final

from gateway.config.addresses import RtpAddress, rtp_addresses, web_ports_overlap
from gateway.config.admin import AdminSection, WebhookConfig
from gateway.config.audio_stream import AudioStreamSection
from gateway.config.cluster import ClusterSection
from gateway.config.connections import ConnectionsSection
from gateway.config.dns import DnsSection
from gateway.config.errors import InvalidValue
from gateway.config.limits import LimitsSection
from gateway.config.ops import CdrSection, MetricsSection, QualitySection
from gateway.config.pbxs import CallerId, RewriteRule, TenantConfig, pbx_checks
from gateway.config.recording import RecordingSection
from gateway.config.rooms import RoomsSection
from gateway.config.routes import RouteConfig
from gateway.config.secret import Secret
from gateway.config.trace import TraceSection
from gateway.config.users import PbxAuth, UserConfig
from gateway.config.values import (
    SUPPORTED_TRANSPORTS,
    Codec,
    DtmfMode,
    FloatRange,
    FollowRedirects,
    G711ToWeb,
    HostPort,
    IntRange,
    IPAddress,
    IPNetwork,
    LogFormat,
    LogLevel,
    OpusFec,
    Parse,
    Port,
    RealtimeText,
    SrtpMode,
    Transport,
    VideoCodec,
    WebCalls,
    check_host,
    check_leg_codecs,
    check_transport,
    normalize_origin,
    parse_ice_url,
    parse_ip,
    parse_network,
    parse_opus_fec,
    parse_realtime_text,
)
from gateway.identity.model import WebAuthMode


def _host(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a host name or IP address, got {value!r}")
    return check_host(value)


Host = Annotated[str, Parse(_host)]


def _supported_transport(value: object) -> Transport:
    """A transport the SIP stack has today; reserved ones (tls, ws, wss) get their own message."""
    text = str(value).lower() if isinstance(value, str) else None
    choices = ", ".join(t.value for t in Transport if t in SUPPORTED_TRANSPORTS)
    if text not in {t.value for t in Transport}:
        raise ValueError(f"expected one of {choices}, got {value!r}")
    transport = Transport(text)
    check_transport("", transport)
    return transport


SipTransport = Annotated[Transport, Parse(_supported_transport)]


@dataclass(frozen=True, slots=True)
class SipListen:
    transport: SipTransport = Transport.UDP
    host: Host = "127.0.0.1"
    port: Port = 5060

    def __post_init__(self) -> None:
        check_transport("transport", self.transport)


@dataclass(frozen=True, slots=True)
class SipTls:
    """SIP over TLS (gateway/tls.py). Our certificate is presented to whoever connects to a `tls`
    listen address, and to a PBX that asks for a client certificate; the PBX's certificate must chain
    to `ca_file` (default: the system's CAs) and carry the name it is reached by (pbx.server_name)."""

    certificate: str | None = None  # PEM: our certificate followed by its chain
    private_key: str | None = None
    ca_file: str | None = None  # PEM bundle of the CAs trusted for peers' certificates
    verify_server: bool = True  # false only for a lab: a PBX whose certificate fails is then accepted

    def __post_init__(self) -> None:
        if (self.certificate is None) != (self.private_key is None):
            raise InvalidValue(
                "private_key" if self.private_key is None else "certificate",
                "certificate and private_key go together",
            )


def _ws_path(value: object) -> str:
    if not isinstance(value, str) or not value.startswith("/") or any(c in value for c in " ?#\r\n"):
        raise ValueError(f"expected a URL path such as '/sip', got {value!r}")
    return value


def _header_name(value: object) -> str:
    """A custom SIP header name to pass through (RFC 3261 §25.1 token); never one the SIP stack owns."""
    if not isinstance(value, str) or not value or not all(c.isalnum() or c in "-_." for c in value):
        raise ValueError(f"expected a SIP header name such as 'X-Account', got {value!r}")
    if value.lower() in _OWN_HEADERS:
        raise ValueError(f"{value!r} is set by the gateway itself and cannot be passed through")
    return value


_OWN_HEADERS = frozenset(
    h.lower()
    for h in (
        "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Max-Forwards", "Route", "Record-Route",
        "Content-Type", "Content-Length", "Authorization", "Proxy-Authorization", "WWW-Authenticate",
        "Proxy-Authenticate", "Require", "Supported", "Allow", "Session-Expires", "Min-SE",
        "P-Asserted-Identity", "Remote-Party-ID", "Diversion", "History-Info", "Replaces", "Refer-To",
    )
)  # fmt: skip


def _media_type(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+", value):
        raise ValueError(f"expected a media type such as 'application/json', got {value!r}")
    return value.lower()


def _digest_algorithm(value: object) -> str:
    if not isinstance(value, str) or value.upper() not in ("MD5", "SHA-256"):
        raise ValueError(f"expected 'MD5' or 'SHA-256', got {value!r}")
    return value.upper()


@dataclass(frozen=True, slots=True)
class WebSocketListen:
    """A listener of its own for SIP over WebSocket (ws://host:port/path, wss:// with http.tls's
    certificate), e.g. 5066 / 7443 as FreeSWITCH and Kamailio deployments use."""

    host: Host = "127.0.0.1"
    port: Port = 5066


@dataclass(frozen=True, slots=True)
class SipWebSocket:
    """SIP over WebSocket (RFC 7118) for JsSIP and SIP.js on the HTTP listener (ws://, or wss:// with
    http.tls). Users with `sip_auth` REGISTER and call there (gateway/websip/)."""

    path: Annotated[str, Parse(_ws_path)] = "/sip"
    realm: str | None = None  # digest realm; default pbx.domain (or the PBX address), else the HTTP host
    # One challenge per algorithm, the preferred first (RFC 8760 §2.4: a client answers the first it
    # supports). JsSIP 3 and SIP.js 0.21 read only the LAST and speak only MD5: keep MD5 last for them.
    digest_algorithms: tuple[Annotated[str, Parse(_digest_algorithm)], ...] = ("SHA-256", "MD5")
    min_expires: Annotated[int, IntRange(10, 3600)] = 60  # shorter REGISTER expiries get 423
    max_expires: Annotated[int, IntRange(60, 86400)] = 3600  # longer ones are cut to this
    # a flow with no successful digest (REGISTER or INVITE) within this many seconds is closed (4008)
    auth_timeout: Annotated[float, FloatRange(1.0, 300.0)] = 15.0
    # a REGISTER that would give one user more bindings is refused 403 (docs/signaling.md)
    max_bindings_per_user: Annotated[int, IntRange(1, 1000)] = 10
    # a library's SUBSCRIBE (relayed to the PBX) that would give one flow, or one user, more
    # subscriptions is refused 403 as a REGISTER past the bindings cap is (docs/signaling.md)
    max_subscriptions_per_flow: Annotated[int, IntRange(1, 10_000)] = 64
    max_subscriptions_per_user: Annotated[int, IntRange(1, 10_000)] = 128
    on_http: bool = True  # served on the HTTP listener (http.host:http.port + path)
    listen: WebSocketListen | None = None  # and/or on a port of its own

    def __post_init__(self) -> None:
        if not self.on_http and self.listen is None:
            raise InvalidValue("on_http", "SIP over WebSocket needs the HTTP listener (on_http) or a listen")
        if not self.digest_algorithms:
            raise InvalidValue("digest_algorithms", "at least one of MD5, SHA-256")
        if self.min_expires > self.max_expires:
            raise InvalidValue("min_expires", f"must not exceed max_expires ({self.max_expires})")


@dataclass(frozen=True, slots=True)
class SipSection:
    listen: tuple[SipListen, ...] = (SipListen(Transport.UDP), SipListen(Transport.TCP))
    public_address: HostPort | None = None  # host[:port] written into Via/Contact
    dtmf_mode: DtmfMode = DtmfMode.RFC4733
    trusted_sources: tuple[Annotated[IPNetwork, Parse(parse_network)], ...] = ()
    user_agent: str = "sip-webrtc-gateway"
    tls: SipTls = field(default_factory=SipTls)
    websocket: SipWebSocket | None = None  # SIP over WebSocket for browser SIP libraries; None: off
    # custom headers (e.g. X-Account) passed from a web call into its INVITE, and from an inbound INVITE
    # to the browser's `incoming` event; no others
    pass_headers: tuple[Annotated[str, Parse(_header_name)], ...] = ()
    # INFO bodies (RFC 6086) relayed between the SIP party and the browser besides DTMF, e.g.
    # [application/json, text/plain]; other INFO bodies get 415, an Info-Package 469
    info_content_types: tuple[Annotated[str, Parse(_media_type)], ...] = ()
    prack_when_supported: bool = False  # 180/183 reliably (RFC 3262) when 100rel is only supported
    # hold/resume (any re-offer of a confirmed call) in UPDATE (RFC 3311) to a far end whose Allow lists
    # UPDATE, instead of a re-INVITE
    reoffer_with_update: bool = False
    # a request in a dialog (re-INVITE, UPDATE, BYE, INFO, REFER...) from any address; false: only from
    # the dialog's peer or a trusted source, others get 403 (gateway/sip/useragent/dialog_sources.py)
    in_dialog_any_source: bool = False

    def __post_init__(self) -> None:
        if not self.listen:
            raise InvalidValue("listen", "at least one listen address is needed")
        for index, item in enumerate(self.listen):
            if item.transport is Transport.TLS and self.tls.certificate is None:
                raise InvalidValue(
                    f"listen[{index}]", "a tls listen address needs sip.tls.certificate and private_key"
                )
        seen: dict[tuple[Transport, str, int], int] = {}
        for index, item in enumerate(self.listen):
            key = (item.transport, item.host, item.port)
            if key in seen:
                raise InvalidValue(
                    f"listen[{index}]",
                    f"duplicate listen address {item.transport.value} {item.host}:{item.port} "
                    f"(also listen[{seen[key]}])",
                )
            seen[key] = index


MIN_RTP_PAIRS: Final = 10


@dataclass(frozen=True, slots=True)
class RtpPorts:
    """UDP ports for the plain RTP leg: RTP on even ports, RTCP on the odd port above (RFC 3550 §11)."""

    start: Port = 10000
    end: Port = 20000

    def __post_init__(self) -> None:
        if self.start % 2:
            raise InvalidValue(
                "start", f"must be even (RTP takes the even port of each pair), got {self.start!r}"
            )
        if self.start < 1024:
            raise InvalidValue("start", f"must be 1024 or above (no privileged ports), got {self.start!r}")
        if self.end <= self.start:
            raise InvalidValue("end", f"must be above start ({self.start}), got {self.end!r}")
        if self.pairs < MIN_RTP_PAIRS:
            raise InvalidValue(
                "",
                f"range {self.start}-{self.end} holds {self.pairs} RTP/RTCP pairs; "
                f"at least {MIN_RTP_PAIRS} needed",
            )

    @property
    def pairs(self) -> int:
        """How many RTP/RTCP port pairs, so how many concurrent SIP legs, the range holds."""
        return (self.end - self.start + 1) // 2


def _public_addresses(value: object) -> tuple[IPAddress, ...]:
    """One IP address, or one per address family (a list, or comma-separated text)."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise TypeError(f"expected an IP address or a list of them, got {value!r}")
    addresses = tuple(parse_ip(item.strip() if isinstance(item, str) else item) for item in items)
    versions = [address.version for address in addresses]
    if len(set(versions)) != len(versions):
        raise ValueError(f"expected at most one IPv4 and one IPv6 address, got {value!r}")
    return addresses


@dataclass(frozen=True, slots=True)
class MediaSection:
    # The IPs in SDP c= lines, at most one per address family (see gateway/config/addresses.py).
    public_address: Annotated[tuple[IPAddress, ...], Parse(_public_addresses)] = ()
    rtp_ports: RtpPorts = field(default_factory=RtpPorts)
    web_ports: RtpPorts | None = None  # the browsers' ICE sockets' own range; absent: they share rtp_ports
    inactivity_timeout: Annotated[float, FloatRange(0.5, 3600.0)] = 5.0  # seconds without RTP: hang up
    # seconds without RTP from the browser after which its audio is reported lost (event `web_lost`,
    # metric gateway_media_lost_total) and the SIP side hears the reconnecting fill; 0: off
    loss_detect: Annotated[float, FloatRange(0.0, 3600.0)] = 2.0
    # seconds without RTP nor RTCP from a SIP peer that sends no audio on purpose (hold, silence
    # suppression) but has shown it sends RTCP: it is gone, hang up
    hold_timeout: Annotated[float, FloatRange(1.0, 3600.0)] = 15.0
    fast_path: bool = True  # steady RTP forwarded/transcoded by the native engine (gateway/media/fastlane/)
    # milliseconds a busy engine thread gathers packets before its next round (fewer wake-ups; each packet
    # waits at most this long); 0: every packet as it comes
    fast_path_coalesce_ms: Annotated[float, FloatRange(0.0, 5.0)] = 1.0
    sip_srtp: SrtpMode = SrtpMode.OPTIONAL  # SDES-SRTP on the SIP leg: off | optional | required
    sdes_over_plain_sip: bool = False  # offer a=crypto keys even when SIP to the PBX is not TLS
    # accept a data channel the browser opens on a call: its text goes to the SIP side as MESSAGE in the
    # call's dialog (RFC 3428), and the SIP side's MESSAGEs come back on it (gateway/media/webrtc/data_channel.py)
    data_channel: bool = True
    # RFC 4103 text (m=text, T.140 with RED) <-> an RFC 8865 T.140 data channel (needs data_channel):
    # answer: answered when the SIP side offers it, offered when the browser's offer asks (a=dcmap
    # subprotocol "t140"); offer: offered on every browser call with a data channel; off: port 0
    realtime_text: Annotated[RealtimeText, Parse(parse_realtime_text)] = RealtimeText.ANSWER
    # Python's GC tuned for long-lived calls (gateway/ops/gc_tuning.py): start-up and set-up calls frozen
    # out of the collections' walk, fewer young collections; full-collection pauses stop growing with calls
    gc_tuning: bool = True
    # Opus encoding of a G.711 source (transcoding, gateway/media/codecs/opus_settings.py): libopus's complexity
    # (10 best, most CPU; 5 is WebRTC's on mobile) and in-band FEC: auto (on, at the reported loss rate,
    # while the browser's receiver reports show more than 1 % loss), on, off
    opus_complexity: Annotated[int, IntRange(0, 10)] = 5
    opus_inband_fec: Annotated[OpusFec, Parse(parse_opus_fec)] = OpusFec.AUTO
    # usedtx=1 in the Opus fmtp of our descriptions to the browser (its encoder then stops sending in
    # silence); useinbandfec=1 is always there (RFC 7587 §6.1)
    opus_usedtx: bool = False
    # RFC 2198 redundancy with the browser (audio/red over Opus): auto (negotiated where the browser offers
    # it; the browser's RED unwrapped, a lost packet restored from it; RED sent to the browser while its
    # receiver reports show more than 1 % loss), on (RED sent always once negotiated), off (never negotiated)
    opus_red: Annotated[OpusFec, Parse(parse_opus_fec)] = OpusFec.AUTO


@dataclass(frozen=True, slots=True)
class CallsSection:
    """Call timeouts, in seconds (the call state machine's timers)."""

    setup_timeout: Annotated[float, FloatRange(1.0, 300.0)] = 10.0  # dial -> PBX's first 1xx: unreachable
    outbound_ring_timeout: Annotated[float, FloatRange(5.0, 3600.0)] = 180.0  # 1xx -> answer: no answer
    inbound_ring_timeout: Annotated[float, FloatRange(5.0, 3600.0)] = 60.0  # browsers ringing: 480
    max_ringing_per_user: Annotated[int, IntRange(1, 100)] = 4  # inbound calls ringing one user; more: 486
    # Session timers (RFC 4028): the interval our INVITEs ask for, and the shortest we accept (422 below;
    # RFC 4028 says 90 s at least: lower values are for tests). session_interval 0: no session timers.
    session_interval: Annotated[int, IntRange(0, 86400)] = 1800
    min_session_interval: Annotated[int, IntRange(1, 86400)] = 90
    answer_timeout: Annotated[float, FloatRange(1.0, 300.0)] = 20.0  # answered -> WebRTC up: 480
    follow_redirects: FollowRedirects = FollowRedirects.PBX  # 3xx from the PBX: off | pbx | policy
    web_calls: WebCalls = WebCalls.DIRECT  # a web user dialling another one: direct | pbx


@dataclass(frozen=True, slots=True)
class CodecsSection:
    sip: tuple[Codec, ...] = (Codec.PCMU, Codec.PCMA, Codec.G722, Codec.OPUS)
    webrtc: tuple[Codec, ...] = (Codec.OPUS, Codec.PCMU, Codec.PCMA, Codec.G722)
    telephone_event: bool = True  # offer audio/telephone-event (RFC 4733) on both legs
    # a G.711 phone heard by a browser that has Opus too: auto (per call, from the phone leg's loss) |
    # forward (G.711 passed through: the browser conceals) | transcode (to Opus: the gateway conceals)
    g711_to_web: G711ToWeb = G711ToWeb.AUTO
    # video passed through (never decoded) between browsers and SIP video phones; empty: audio only
    video: tuple[VideoCodec, ...] = ()

    def __post_init__(self) -> None:
        for index, picture in enumerate(self.video):
            if self.video.index(picture) != index:
                raise InvalidValue(f"video[{index}]", f"codec {picture.value!r} listed twice")
        for leg in ("sip", "webrtc"):
            codecs: tuple[Codec, ...] = getattr(self, leg)
            if not codecs:
                raise InvalidValue(leg, "at least one codec is needed")
            check_leg_codecs(leg, codecs)  # config/values.py


@dataclass(frozen=True, slots=True)
class IceServer:
    """One RTCIceServer: STUN needs only urls; TURN also needs username and credential."""

    urls: tuple[Annotated[str, Parse(parse_ice_url)], ...]
    username: str | None = None
    credential: Secret | None = None

    def __post_init__(self) -> None:
        if not self.urls:
            raise InvalidValue("urls", "at least one URL is needed")
        if any(url.lower().startswith("turn") for url in self.urls):
            if self.username is None:
                raise InvalidValue("username", "required for turn:/turns: URLs")
            if self.credential is None:
                raise InvalidValue("credential", "required for turn:/turns: URLs")


@dataclass(frozen=True, slots=True)
class TurnRestSection:
    """TURN servers whose credentials the gateway issues per login (TURN REST API,
    draft-uberti-behave-turn-rest-00 §2.2; coturn `use-auth-secret` + `static-auth-secret`): username
    `<expiry unix time>:<user id>`, credential base64(HMAC-SHA1(shared_secret, username))."""

    urls: tuple[Annotated[str, Parse(parse_ice_url)], ...]
    shared_secret: Secret  # the TURN server's static-auth-secret: keep it in the environment
    ttl: Annotated[int, IntRange(60, 7 * 86400)] = 3600  # seconds a credential lives (set > longest call)

    def __post_init__(self) -> None:
        if not self.urls:
            raise InvalidValue("urls", "at least one turn:/turns: URL is needed")
        for index, url in enumerate(self.urls):
            if not url.lower().startswith("turn"):
                raise InvalidValue(f"urls[{index}]", f"expected a turn: or turns: URL, got {url!r}")
        if len(self.shared_secret.reveal().encode("utf-8")) < 16:
            raise InvalidValue(
                "shared_secret", f"must be at least 16 bytes (from {self.shared_secret.describe()})"
            )


@dataclass(frozen=True, slots=True)
class IceSection:
    browser: tuple[IceServer, ...] = ()  # handed to browsers in their RTCConfiguration
    # TURN with per-login ephemeral credentials; then ice.browser may hold no static TURN credential
    turn: TurnRestSection | None = None
    gateway: tuple[IceServer, ...] = ()  # used by the gateway's own aiortc peer connections
    # The addresses the gateway's web legs gather host candidates on (those browsers can reach); empty:
    # every interface aioice finds. Fewer addresses: fewer sockets per call and faster ICE checks.
    host_addresses: tuple[Annotated[IPAddress, Parse(parse_ip)], ...] = ()


@dataclass(frozen=True, slots=True)
class PbxSection:
    address: HostPort | None = None  # where outbound calls (and REGISTERs) go; None: no PBX
    transport: SipTransport = Transport.UDP
    outbound_proxy: HostPort | None = None
    register: bool = False  # REGISTER users that have pbx_auth, on their behalf
    register_expiry: Annotated[int, IntRange(60, 86400)] = 3600
    domain: Host | None = None  # SIP domain of users' AORs; default: the host of `address`
    realm: str | None = None  # expected digest realm; None: accept the PBX's
    server_name: Host | None = None  # transport tls: the name the PBX's certificate carries; default its host
    keepalive_interval: Annotated[float, FloatRange(0.0, 3600.0)] = 30.0  # OPTIONS to the PBX; 0: none
    # P-Asserted-Identity (the web user's display name and number) on INVITEs to the PBX (RFC 3325): only
    # toward a PBX that trusts the gateway. None: when the PBX's address is in sip.trusted_sources.
    assert_identity: bool | None = None
    # Busy lamps and voicemail (users[].watch, users[].voicemail; gateway/runtime/lamps/): the expiry
    # asked of the PBX's SUBSCRIBEs, and what the page dials before a ringing colleague's extension.
    subscribe_expiry: Annotated[int, IntRange(60, 86400)] = 600
    pickup_prefix: str = "**"
    auth: PbxAuth | None = None  # a trunk's own credentials: calls of users whose PBX is another one
    rewrite: tuple[RewriteRule, ...] = ()  # of dialled numbers sent here, after a route's (config/pbxs.py)
    caller_id: CallerId | None = None  # what calls sent here present, unless a route says

    def __post_init__(self) -> None:
        check_transport("transport", self.transport)
        if not re.fullmatch(r"[0-9*#]{0,8}", self.pickup_prefix):
            raise InvalidValue("pickup_prefix", f"expected up to 8 of 0-9 * #, got {self.pickup_prefix!r}")
        if self.register and self.address is None:
            raise InvalidValue("register", "registration needs pbx.address")

    @property
    def effective_domain(self) -> str | None:
        if self.domain is not None:
            return self.domain
        return self.address.host if self.address is not None else None


@dataclass(frozen=True, slots=True)
class HttpTls:
    """HTTPS (and WSS) on `http.port`: PEM files, reloaded on SIGHUP (gateway/tls.py). Relative paths are
    relative to the working directory."""

    certificate: str  # the server certificate followed by its chain
    private_key: str
    redirect_port: Port | None = None  # plain HTTP here answers 308 to https; None: no plain HTTP at all

    def __post_init__(self) -> None:
        for name in ("certificate", "private_key"):
            if not getattr(self, name).strip():
                raise InvalidValue(name, "a PEM file path is needed")


def _origin(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected an origin like https://phone.example.org, got {value!r}")
    origin = normalize_origin(value)
    if origin is None:
        raise ValueError(f"expected an origin like https://phone.example.org[:port], got {value!r}")
    return origin


Origin = Annotated[str, Parse(_origin)]


@dataclass(frozen=True, slots=True)
class HttpSection:
    host: Host = "127.0.0.1"
    port: Port = 8080
    tls: HttpTls | None = None
    # Pages from these origins may open the WebSockets besides the gateway's own (RFC 6455 §10.2);
    # a cross-site page must not drive a user's session. Clients without Origin (no browser) pass.
    allowed_origins: tuple[Origin, ...] = ()
    # The origins browsers open the gateway's own pages at (its public URLs; behind a proxy, the proxy's).
    # The Host header is not trusted (DNS rebinding); empty: derived from host, port and the TLS
    # certificate's names, with the loopback names for a loopback or wildcard host (signaling/origin.py).
    public_origins: tuple[Origin, ...] = ()
    # Reverse proxies in front (HAProxy, nginx): from these peers the client's address is read from
    # X-Forwarded-For (the rightmost hop not in this list), so that throttles and per-address caps key on
    # clients, not on the proxy (signaling/proxies.py). Empty: the header is ignored.
    trusted_proxies: tuple[Annotated[IPNetwork, Parse(parse_network)], ...] = ()
    expose_version: bool = False  # the version in /healthz and the Server header (off: no help to attackers)

    def __post_init__(self) -> None:
        if self.tls is not None and self.tls.redirect_port == self.port:
            raise InvalidValue("tls.redirect_port", f"must differ from http.port ({self.port})")


@dataclass(frozen=True, slots=True)
class WebAuthSection:
    mode: WebAuthMode = WebAuthMode.SECRET
    session_secret: Secret | None = None  # signs session tokens; None: random per process start
    token_ttl: Annotated[int, IntRange(60, 30 * 86400)] = 12 * 3600  # session token lifetime, seconds
    # seconds a connected call waits for its browser to come back (reload, network change); 0: no wait
    reconnect_grace: Annotated[float, FloatRange(0, 3600)] = 30.0
    # the same for a call of the HTTP API (POST /webrtc/offer): its client has no socket whose return
    # says it is alive, so a client that vanished is given less (its lost media noticed in about 2 s)
    http_reconnect_grace: Annotated[float, FloatRange(0, 3600)] = 10.0

    def __post_init__(self) -> None:
        # HMAC-SHA256 key (gateway.signaling.tokens): a short one can be guessed, and forged tokens log in.
        if self.session_secret is not None and len(self.session_secret.reveal().encode("utf-8")) < 16:
            raise InvalidValue(
                "session_secret",
                f"must be at least 16 bytes (from {self.session_secret.describe()}); "
                "try `python -c 'import secrets; print(secrets.token_urlsafe(32))'`",
            )


@dataclass(frozen=True, slots=True)
class LoggingSection:
    level: LogLevel = LogLevel.INFO
    format: LogFormat = LogFormat.TEXT


@dataclass(frozen=True, slots=True)
class Config:
    sip: SipSection = field(default_factory=SipSection)
    media: MediaSection = field(default_factory=MediaSection)
    calls: CallsSection = field(default_factory=CallsSection)
    codecs: CodecsSection = field(default_factory=CodecsSection)
    ice: IceSection = field(default_factory=IceSection)
    pbx: PbxSection = field(default_factory=PbxSection)
    pbxs: Mapping[str, PbxSection] = field(default_factory=dict)  # more PBXs and trunks by name (pbxs.py)
    tenants: Mapping[str, TenantConfig] = field(default_factory=dict)  # groups of users (config/pbxs.py)
    dns: DnsSection = field(default_factory=DnsSection)
    http: HttpSection = field(default_factory=HttpSection)
    # caps and deadlines before authentication, fds kept for media (config/connections.py)
    connections: ConnectionsSection = field(default_factory=ConnectionsSection)
    web_auth: WebAuthSection = field(default_factory=WebAuthSection)
    users: tuple[UserConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()  # media per destination: terminate (default) | passthrough
    logging: LoggingSection = field(default_factory=LoggingSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)  # /metrics, /readyz (config/ops.py)
    cdr: CdrSection = field(default_factory=CdrSection)  # call records (config/ops.py)
    trace: TraceSection = field(default_factory=TraceSection)  # per-call traces, HEP (config/trace.py)
    recording: RecordingSection = field(default_factory=RecordingSection)  # (config/recording.py)
    quality: QualitySection = field(default_factory=QualitySection)  # while a call is up (config/ops.py)
    rooms: RoomsSection = field(default_factory=RoomsSection)  # peer-to-peer rooms (config/rooms.py)
    limits: LimitsSection = field(default_factory=LimitsSection)  # per-user caps (config/limits.py)
    cluster: ClusterSection | None = None  # several gateways sharing state in Redis (config/cluster.py)
    admin: AdminSection = field(default_factory=AdminSection)  # admin page and REST API (config/admin.py)
    webhooks: tuple[WebhookConfig, ...] = ()  # call events POSTed, signed (config/admin.py)
    audio_stream: AudioStreamSection = field(default_factory=AudioStreamSection)
    # What outlives a restart (gateway/state_dir.py): the session key, revoked tokens; created 0700.
    # A relative path is taken from the working directory.
    state_dir: str = "state"

    def __post_init__(self) -> None:
        if not self.state_dir.strip():
            raise InvalidValue("state_dir", "must name a directory (default: state)")
        problems = list(self._cross_checks())
        if problems:
            raise InvalidValue.many(problems)

    def rtp_addresses(self) -> Mapping[str, RtpAddress]:
        """The address families the SIP leg's RTP serves, the default first (gateway/config/addresses.py)."""
        pbx = self.pbx.address.host if self.pbx.address is not None else None
        return rtp_addresses((item.host for item in self.sip.listen), self.media.public_address, pbx)

    def _cross_checks(self) -> Iterator[tuple[str, str]]:
        yield from web_ports_overlap(self.media.rtp_ports, self.media.web_ports)  # config/addresses.py
        yield from pbx_checks(self)  # config/pbxs.py: names, and bare extensions need a PBX domain
        tls_listen = any(item.transport is Transport.TLS for item in self.sip.listen)
        if self.pbx.transport is Transport.TLS and not tls_listen:
            yield (
                "pbx.transport",
                "tls needs a sip.listen address with transport tls (and sip.tls certificates)",
            )
        own = self.sip.websocket.listen if self.sip.websocket is not None else None
        if own is not None and (own.host, own.port) == (self.http.host, self.http.port):
            yield "sip.websocket.listen", f"is http's own address {own.host}:{own.port}: use on_http instead"
        if self.cluster is not None and self.web_auth.session_secret is None:
            yield "web_auth.session_secret", "required with cluster (the same on every instance signs tokens)"
        if self.ice.turn is not None:
            for index, server in enumerate(self.ice.browser):
                if server.credential is not None:
                    yield (
                        f"ice.browser[{index}].credential",
                        "a static TURN credential is not allowed with ice.turn (every browser would "
                        "share it): give that server's URLs to ice.turn.urls instead",
                    )
        if self.sip.dtmf_mode is DtmfMode.RFC4733 and not self.codecs.telephone_event:
            yield "codecs.telephone_event", "must be true when sip.dtmf_mode is 'rfc4733'"
        first_index: dict[str, int] = {}
        login_field = "web_secret_hash" if self.web_auth.mode is WebAuthMode.SECRET else "web_token"
        for index, user in enumerate(self.users):
            if user.id in first_index:
                yield (
                    f"users[{index}].id",
                    f"duplicate user id {user.id!r} (also users[{first_index[user.id]}])",
                )
            first_index.setdefault(user.id, index)
            if getattr(user, login_field) is None:
                yield (
                    f"users[{index}].{login_field}",
                    f"required when web_auth.mode is {self.web_auth.mode.value!r}",
                )
            for number, api_key in enumerate(user.api_keys):
                if len(api_key.key.reveal()) < 16:
                    yield f"users[{index}].api_keys[{number}].key", "must be at least 16 characters"
