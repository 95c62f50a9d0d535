"""`CallSettings`: what a call needs from gateway.yaml, plus its timeouts."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.calls.caps import CapsTable
from gateway.calls.errors import InvalidValue
from gateway.config.pbxs import PbxPlan
from gateway.config.values import DtmfMode

if TYPE_CHECKING:
    from gateway.config.schema import Config, PbxSection


@dataclass(frozen=True, slots=True)
class CallSettings:
    """Per-call policy. Timeouts are seconds; the machine only asks for timers, it never sleeps."""

    dtmf_mode: DtmfMode = DtmfMode.RFC4733  # how browser keypad digits reach the SIP leg
    pbx_domain: str | None = None  # host of the Request-URI for dialed numbers (sip:<number>@<domain>)
    # P-Asserted-Identity with the web user's display name and number on INVITEs: only toward a PBX in
    # the gateway's trust domain (RFC 3325 §4: pbx.assert_identity, or the PBX in sip.trusted_sources)
    assert_identity: bool = False
    setup_timeout: float = 10.0  # dial until the PBX's first response (any 1xx): "PBX unreachable"
    outbound_ring_timeout: float = 180.0  # first 1xx until answer: CANCEL, "no answer"
    inbound_ring_timeout: float = 60.0  # ringing web sessions until one answers: 480
    max_ringing_per_user: int = 4  # inbound calls ringing one user at once; more get 486 (a caller's flood)
    answer_timeout: float = 20.0  # a session answered until WebRTC is up: 480
    closing_timeout: float = 32.0  # 64*T1 (RFC 3261 §17.1.1.2 timer B): give up on the SIP leg
    # After our BYE the session is over (RFC 3261 §15.1.1): its answer is awaited this long only, so a
    # dead far end does not keep the call registered for Timer F; the UA goes on retransmitting the BYE.
    bye_timeout: float = 2.0
    # A REFER from the SIP party was accepted (202): if the browser places no call for it in this time,
    # the referrer is told it failed (NOTIFY 408), which ends its implicit subscription (RFC 3515 §2.4.5)
    refer_timeout: float = 30.0
    # web_auth.reconnect_grace: a connected call whose browser went away (reload, network change) stays
    # up this long for it to come back (gateway/calls/connected/reconnect.py); 0: it ends at once
    reconnect_grace: float = 30.0
    # web_auth.http_reconnect_grace: the same for a call of the HTTP API (WebDial.grace)
    http_reconnect_grace: float = 10.0
    # The SIP party's re-INVITE adds or drops video (escalation): the browser's answer to the gateway's
    # new offer is awaited this long, then the re-INVITE is refused 488 and the call goes on as it was
    web_reoffer_timeout: float = 10.0
    dtmf_duration_ms: int = 100  # per digit, when the browser gives none
    sip_codecs: tuple[str, ...] = ("PCMU", "PCMA", "G722", "opus")  # what an inbound offer must have one of
    media_families: tuple[str, ...] = ("IP4",)  # address families of the SIP leg's RTP ("IP4", "IP6")
    sip_srtp: str = "off"  # media.sip_srtp: which SIP offers can be bridged (sdp.check_audio_offer)
    follow_redirects: str = (
        "pbx"  # calls.follow_redirects: off | pbx | policy (gateway/calls/setup/redirects.py)
    )
    pbx_hosts: tuple[str, ...] = ()  # pbx.address and pbx.outbound_proxy hosts: redirects may go there
    caps: CapsTable = field(default_factory=CapsTable)  # per-user caps (limits, gateway/calls/caps.py)
    pbx_plan: PbxPlan = field(default_factory=PbxPlan)  # several PBXs, tenants, rewriting (config/pbxs.py)
    asserting_pbxs: frozenset[str] = frozenset()  # of those, the ones P-Asserted-Identity goes to

    def __post_init__(self) -> None:
        for name in (
            "setup_timeout",
            "outbound_ring_timeout",
            "inbound_ring_timeout",
            "answer_timeout",
            "closing_timeout",
            "bye_timeout",
            "refer_timeout",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 3600:
                raise InvalidValue(f"{name} must be a number of seconds in (0, 3600], got {value!r}")
        for name in ("reconnect_grace", "http_reconnect_grace"):
            grace = getattr(self, name)
            if not isinstance(grace, (int, float)) or isinstance(grace, bool) or not 0 <= grace <= 3600:
                raise InvalidValue(f"{name} must be a number of seconds in [0, 3600], got {grace!r}")
        if not self.media_families or set(self.media_families) - {"IP4", "IP6"}:
            raise InvalidValue(f"media_families must be IP4 and/or IP6, got {self.media_families!r}")
        if not self.sip_codecs:
            raise InvalidValue("sip_codecs must name at least one codec")
        if self.follow_redirects not in ("off", "pbx", "policy"):
            raise InvalidValue(f"follow_redirects must be off, pbx or policy, got {self.follow_redirects!r}")
        if not 40 <= self.dtmf_duration_ms <= 5000:
            raise InvalidValue(f"dtmf_duration_ms must be 40-5000, got {self.dtmf_duration_ms!r}")

    @classmethod
    def from_config(cls, config: Config, **overrides: Any) -> CallSettings:
        """DTMF mode, PBX domain and the `calls:` timeouts from gateway.yaml; `overrides` win."""
        values: dict[str, Any] = {
            "dtmf_mode": config.sip.dtmf_mode,
            "pbx_domain": config.pbx.effective_domain,
            "assert_identity": _assert_identity(config),
            "setup_timeout": config.calls.setup_timeout,
            "outbound_ring_timeout": config.calls.outbound_ring_timeout,
            "inbound_ring_timeout": config.calls.inbound_ring_timeout,
            "max_ringing_per_user": config.calls.max_ringing_per_user,
            "caps": CapsTable.from_config(config),
            "answer_timeout": config.calls.answer_timeout,
            "reconnect_grace": config.web_auth.reconnect_grace,
            "http_reconnect_grace": config.web_auth.http_reconnect_grace,
            "sip_codecs": tuple(c.value for c in config.codecs.sip),
            "media_families": _families(config),
            "sip_srtp": config.media.sip_srtp.value,
            "follow_redirects": config.calls.follow_redirects.value,
            "pbx_hosts": tuple(
                hp.host
                for pbx in (config.pbx, *config.pbxs.values())
                for hp in (pbx.address, pbx.outbound_proxy)
                if hp is not None
            ),
            "pbx_plan": PbxPlan.from_config(config),
            "asserting_pbxs": frozenset(
                name
                for name, pbx in PbxPlan.from_config(config).pbxs.items()
                if _assert_identity(config, pbx)
            ),
        }
        values.update(overrides)
        return cls(**values)


def _families(config: Config) -> tuple[str, ...]:
    """The address families of the SIP leg's RTP (gateway/config/addresses.py); IP4 when none is
    usable yet (the bridge then refuses the call: media.public_address is needed)."""
    return tuple(config.rtp_addresses()) or ("IP4",)


def _assert_identity(config: Config, pbx: PbxSection | None = None) -> bool:
    """pbx.assert_identity, or (unset) whether the PBX's IP is among sip.trusted_sources."""
    pbx = pbx or config.pbx
    if pbx.assert_identity is not None:
        return pbx.assert_identity
    if pbx.address is None:
        return False
    try:
        ip = ipaddress.ip_address(pbx.address.host.strip("[]"))
    except ValueError:
        return False  # a host name: trusted only when said so
    return any(ip in network for network in config.sip.trusted_sources)
