"""What the SIP user agent is configured with and what it says it supports: its listening
addresses and :class:`UASettings`, read from gateway.yaml by :meth:`UASettings.from_config`; the
methods it allows and the INFO bodies it always takes (the UA itself is :mod:`gateway.sip.useragent.ua`)."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.fd_reserve import FdReserve
from gateway.sip.transactions.policy import Network
from gateway.sip.transports.resolver import DnsSettings, configured_target
from gateway.sip.transports.transport_tcp import DEFAULT_TCP_LIMITS, TcpLimits
from gateway.sip.useragent.registrar_client import RegistrationSpec
from gateway.tls import sip_tls_contexts
from sipcore.dialogs.session_timer import TimerPolicy
from sipcore.location.routing import DEFAULT_PORT, DEFAULT_TLS_PORT, Target
from sipcore.transaction import TimerConfig

if TYPE_CHECKING:
    from gateway.config.schema import Config, PbxSection

__all__ = ["ALLOW", "INFO_ALWAYS", "Listen", "UASettings"]

# What the UA allows (RFC 3261 §20.5), in Allow of its requests and answers
ALLOW = (
    "INVITE",
    "ACK",
    "CANCEL",
    "BYE",
    "OPTIONS",
    "INFO",
    "PRACK",
    "UPDATE",
    "MESSAGE",
    "REFER",
    "NOTIFY",
)  # RFC 3262, 3311, 3428, 3515
# DTMF, trickle ICE (RFC 8840) and video keyframe requests (RFC 5168 application/media_control+xml)
INFO_ALWAYS = (
    "application/dtmf-relay",
    "application/dtmf",
    "application/trickle-ice-sdpfrag",
    "application/media_control+xml",
)


@dataclass(frozen=True, slots=True)
class Listen:
    transport: str  # "udp" / "tcp"
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port


@dataclass(frozen=True, slots=True)
class UASettings:
    """What the UA needs from the configuration (see :meth:`from_config`)."""

    listen: tuple[Listen, ...] = (Listen("udp"),)
    public_address: tuple[str, int | None] | None = None  # Via sent-by and Contact
    user_agent: str = "sip-webrtc-gateway"
    outbound: Target | None = None  # next hop of out-of-dialog requests (the PBX or its proxy)
    trusted_sources: tuple[Network, ...] = ()  # empty: trust the `pbx_hosts` (resolved at start)
    pbx_hosts: tuple[str, ...] = ()  # default: the host of `outbound`
    registrations: tuple[RegistrationSpec, ...] = ()
    # False: none registers at start; each waits for `registrations.start_one` (gateway/cluster: the
    # instance that owns it)
    register_at_start: bool = True
    timers: TimerConfig = field(default_factory=TimerConfig)
    unregister_timeout: float = 3.0
    # Where users' digest credentials may be sent (pbx_binding): default `outbound`.
    credential_hops: tuple[Target, ...] = ()
    pbx_realm: str | None = None  # when set, the only digest realm answered
    session_timer: TimerPolicy | None = field(default_factory=TimerPolicy)  # RFC 4028; None: off
    keepalive_interval: float = 0.0  # seconds between OPTIONS to `outbound` (0: none); state in pbx_state()
    tls: tuple[ssl.SSLContext, ssl.SSLContext] | None = None  # server and client contexts (gateway/tls.py)
    tls_names: tuple[tuple[str, str], ...] = ()  # host of a target -> the name its certificate carries
    info_content_types: tuple[str, ...] = ()  # INFO bodies relayed to the browser besides DTMF (RFC 6086)
    dns: DnsSettings = field(
        default_factory=DnsSettings
    )  # RFC 3263 location (gateway/sip/transports/resolver.py)
    # RFC 3262 §3: our 1xx go reliably when the INVITE requires 100rel, and also when it only
    # supports it if this is set (sip.prack_when_supported).
    prack_when_supported: bool = False
    # Re-offers of a confirmed call (hold, resume) in UPDATE when the far end allows it (RFC 3311 §5.1),
    # else in a re-INVITE (sip.reoffer_with_update).
    reoffer_with_update: bool = False
    # In-dialog requests from any source, not only the dialog's peer or a trusted one (dialog_sources)
    in_dialog_any_source: bool = False
    tcp_limits: TcpLimits = DEFAULT_TCP_LIMITS  # caps and deadlines of SIP TCP/TLS (`connections`)
    fd_reserve: FdReserve | None = None  # descriptors kept for media (gateway/fd_reserve.py), set by the app
    # Several PBXs (config/pbxs.py): each named one's next hop (its outbound proxy, else its address), and
    # (name, hop, seconds) of those with an OPTIONS keep-alive; `default` (the `pbx:` section) is
    # `outbound` and `keepalive_interval`.
    pbx_targets: tuple[tuple[str, Target], ...] = ()
    hop_realms: tuple[tuple[Target, str | None], ...] = ()  # each PBX's hops and its `realm` (pbx_binding)
    keepalives: tuple[tuple[str, Target, float], ...] = ()

    def __post_init__(self) -> None:
        if not self.listen:
            raise ValueError("the user agent needs at least one listen address")

    def realm_of(self, hop: Target) -> str | None:
        """The digest realm the PBX reached by ``hop`` must challenge with (its `realm`), None: any; a hop
        not configured: `pbx_realm`."""
        return next((realm for known, realm in self.hop_realms if known == hop), self.pbx_realm)

    @property
    def option_tags(self) -> tuple[str, ...]:
        """What we support (RFC 3261 §20.37): 100rel (RFC 3262), replaces (RFC 3891, ua_replaces), timer
        (RFC 4028) unless turned off."""
        return ("100rel", "replaces", "timer") if self.session_timer is not None else ("100rel", "replaces")

    @classmethod
    def from_config(cls, config: Config, registrations: Sequence[RegistrationSpec] = ()) -> UASettings:
        sip, pbx, calls = config.sip, config.pbx, config.calls
        hop = pbx.outbound_proxy or pbx.address
        transport = pbx.transport.value.upper()
        default_port = DEFAULT_TLS_PORT if transport == "TLS" else DEFAULT_PORT
        hops = _hops(pbx)
        named = {name: _hops(entry) for name, entry in config.pbxs.items()}
        uses_tls = any(p.transport.value == "tls" for p in (pbx, *config.pbxs.values())) or any(
            item.transport.value == "tls" for item in sip.listen
        )
        tls = sip.tls
        contexts = (
            sip_tls_contexts(tls.certificate, tls.private_key, tls.ca_file, verify_server=tls.verify_server)
            if uses_tls
            else None
        )
        names = tuple(
            (found[-1].host, entry.server_name)
            for entry, found in ((pbx, hops), *((config.pbxs[n], h) for n, h in named.items()))
            if entry.server_name and found
        )
        return cls(
            listen=tuple(Listen(item.transport.value, item.host, item.port) for item in sip.listen),
            public_address=(sip.public_address.host, sip.public_address.port) if sip.public_address else None,
            user_agent=sip.user_agent,
            outbound=configured_target(transport, hop.host.strip("[]"), hop.port, default_port)
            if hop is not None
            else None,
            trusted_sources=tuple(sip.trusted_sources),
            pbx_hosts=tuple(
                hp.host.strip("[]")
                for entry in (pbx, *config.pbxs.values())
                for hp in (entry.address, entry.outbound_proxy)
                if hp is not None
            ),
            registrations=tuple(registrations),
            credential_hops=(*hops, *(h for found in named.values() for h in found)),
            pbx_targets=tuple((name, found[0]) for name, found in named.items() if found),
            keepalives=tuple(
                (name, found[0], config.pbxs[name].keepalive_interval)
                for name, found in named.items()
                if found and config.pbxs[name].keepalive_interval > 0
            ),
            pbx_realm=pbx.realm,
            hop_realms=tuple(
                (hop, entry.realm) for entry in (pbx, *config.pbxs.values()) for hop in _hops(entry)
            ),
            tls=contexts,
            tls_names=names,
            session_timer=(
                TimerPolicy(calls.session_interval, min(calls.min_session_interval, calls.session_interval))
                if calls.session_interval
                else None
            ),
            keepalive_interval=pbx.keepalive_interval,
            info_content_types=tuple(sip.info_content_types),
            tcp_limits=TcpLimits(
                max_connections=config.connections.sip_max_connections,
                max_connections_per_ip=config.connections.sip_max_connections_per_ip,
                max_untrusted_per_ip=config.connections.sip_max_untrusted_per_ip,
                untrusted_idle_timeout=config.connections.sip_untrusted_idle_timeout,
                handshake_timeout=config.connections.tls_handshake_timeout,
                reserved_trusted=min(
                    DEFAULT_TCP_LIMITS.reserved_trusted, config.connections.sip_max_connections // 4
                ),
            ),
            dns=DnsSettings(
                servers=tuple((s.host, s.port or 53) for s in config.dns.servers),
                timeout=config.dns.timeout,
                cache_size=config.dns.cache_size,
            ),
            prack_when_supported=sip.prack_when_supported,
            reoffer_with_update=sip.reoffer_with_update,
            in_dialog_any_source=sip.in_dialog_any_source,
        )


def _hops(pbx: PbxSection) -> tuple[Target, ...]:
    """A PBX's hops, the next one first: its outbound proxy, its address."""
    transport = pbx.transport.value.upper()
    default_port = DEFAULT_TLS_PORT if transport == "TLS" else DEFAULT_PORT
    return tuple(
        configured_target(transport, hp.host.strip("[]"), hp.port, default_port)
        for hp in (pbx.outbound_proxy, pbx.address)
        if hp is not None
    )
