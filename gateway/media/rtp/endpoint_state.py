"""The SIP leg's RTP endpoint (gateway/media/rtp/rtp_endpoint.py): its states (NEW -> OPEN -> CLOSED, NEW
-> CLOSED), its settings (``RtpEndpointConfig``, frozen, validated) and its addresses' comparison."""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from typing import Any

from gateway.media.errors import EndpointError

Address = tuple[str, int]


def same_place(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Whether two socket addresses name one host and port: an IP address in any spelling (the fast lane's
    engine writes IPv6 in inet_ntop's, with flow and scope after the port), else the same name."""
    if a[1] != b[1]:
        return False
    try:
        return ipaddress.ip_address(a[0]) == ipaddress.ip_address(b[0])
    except ValueError:
        return bool(a[0] == b[0])


class EndpointState(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


TRANSITIONS = {
    (EndpointState.NEW, EndpointState.OPEN),
    (EndpointState.NEW, EndpointState.CLOSED),
    (EndpointState.OPEN, EndpointState.CLOSED),
}


@dataclass(frozen=True, slots=True)
class RtpEndpointConfig:
    """``payload_types``: codecs of the negotiated answer; ``dtmf_payload_types``: its telephone-events."""

    payload_types: frozenset[int]
    dtmf_payload_types: frozenset[int] = frozenset()
    host: str = "127.0.0.1"
    clock_rate: int = 8000
    rtcp_mux: bool = False
    inactivity_timeout: float | None = 5.0
    hold_timeout: float | None = 15.0  # no RTP nor RTCP while none is expected (hold, silence): dead
    rtcp_interval: float = 5.0
    relatch_after: int = 0
    cname: str = "sip-webrtc-gateway"
    # the peer may ask for a packet again (RFC 4585 generic NACK: video) and gets the same packet under its
    # SRTP index; audio never repeats an index (srtp.py)
    retransmits: bool = False

    def __post_init__(self) -> None:
        if not self.payload_types:
            raise EndpointError("payload_types must name at least one codec")
        for pt in self.payload_types | self.dtmf_payload_types:
            if not isinstance(pt, int) or not 0 <= pt <= 127:
                raise EndpointError(f"payload type must be in [0, 127], got {pt!r}")
        if self.clock_rate <= 0:
            raise EndpointError(f"clock_rate must be positive, got {self.clock_rate!r}")
        if self.inactivity_timeout is not None and self.inactivity_timeout <= 0:
            raise EndpointError(f"inactivity_timeout must be positive, got {self.inactivity_timeout!r}")
        if self.hold_timeout is not None and self.hold_timeout <= 0:
            raise EndpointError(f"hold_timeout must be positive, got {self.hold_timeout!r}")
        if self.rtcp_interval <= 0:
            raise EndpointError(f"rtcp_interval must be positive, got {self.rtcp_interval!r}")
        if self.relatch_after < 0:
            raise EndpointError(f"relatch_after must be >= 0, got {self.relatch_after!r}")
        if not 0 < len(self.cname.encode()) <= 255:
            raise EndpointError(f"cname must be 1 to 255 bytes, got {self.cname!r}")
