"""The `recording` section of gateway.yaml: whether calls are recorded, where and how (issue 37 item 3).

    recording:
      mode: on_demand        # never (default) | on_demand (the web user or an API starts it) | always
      directory: recordings  # <directory>/<YYYY-MM-DD>/<call id>-<n>.wav with <...>.json beside it
      format: wav            # wav (16-bit stereo PCM) | ogg (Ogg/Opus, stereo)
      rate: 8000             # 8000 | 16000 Hz
      max_per_call: 10       # recordings (each start of one: a file) a call may make
      max_per_user: 4        # a user's calls being recorded at once
      min_free_mb: 200       # no recording starts when the directory's disk has less free
      siprec:                # optional: each recording also streamed to a recording server (RFC 7866)
        server: sip:srs@192.0.2.20:5060
        transport: udp       # udp | tcp

A user (`users[].recording`) or a route (`routes[].recording`) may name its own mode: the route that
matches the call's destination (a call from the SIP side: its caller) comes first, then the user
carrying the call, then this section's `mode`. Left channel: the web user; right: the SIP party.

The caps keep one call or user from filling the disk (a start/stop loop makes a file each time): past
`max_per_call` or `max_per_user` a start is refused 429, under `min_free_mb` 507; /healthz says the free
space (`recording`), and `gateway_recording_disk_free_bytes` / `gateway_recordings_refused` count.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated

from gateway.config.errors import InvalidValue
from gateway.config.values import IntRange, Parse
from sipcore.errors import SIPError
from sipcore.syntax.uri import SipURI, parse_uri


class RecordingMode(enum.StrEnum):
    NEVER = "never"
    ON_DEMAND = "on_demand"
    ALWAYS = "always"


class RecordingFormat(enum.StrEnum):
    WAV = "wav"
    OGG = "ogg"


def _rate(value: object) -> int:
    if value not in (8000, 16000) or isinstance(value, bool):
        raise ValueError(f"expected 8000 or 16000, got {value!r}")
    return 8000 if value == 8000 else 16000


class SiprecTransport(enum.StrEnum):
    UDP = "udp"
    TCP = "tcp"


@dataclass(frozen=True, slots=True)
class SiprecSection:
    """The SIPREC recording server (SRS) each recording also goes to, as its recording client (SRC):
    `server` its SIP URI (the request goes there directly, never through the PBX)."""

    server: str
    transport: SiprecTransport = SiprecTransport.UDP

    def __post_init__(self) -> None:
        try:
            uri = parse_uri(self.server)
        except (SIPError, ValueError) as exc:
            raise InvalidValue("server", f"must be a SIP URI (sip:srs@host:port): {exc}") from None
        if not isinstance(uri, SipURI) or uri.scheme != "sip":
            raise InvalidValue("server", f"must be a sip: URI, got {self.server!r}")


@dataclass(frozen=True, slots=True)
class RecordingSection:
    mode: RecordingMode = RecordingMode.NEVER
    directory: str = "recordings"  # relative: from the working directory
    format: RecordingFormat = RecordingFormat.WAV
    rate: Annotated[int, Parse(_rate)] = 8000
    siprec: SiprecSection | None = None  # each recording also streamed to this SRS (RFC 7866)
    max_per_call: Annotated[int, IntRange(1, 1000)] = 10  # starts (files) one call may make
    max_per_user: Annotated[int, IntRange(1, 10000)] = 4  # a user's calls recorded at once
    min_free_mb: Annotated[int, IntRange(0, 10**7)] = 200  # free disk under which no recording starts

    def __post_init__(self) -> None:
        if not self.directory.strip():
            raise InvalidValue("directory", "must name a directory (default: recordings)")


def recording_mode(
    default: RecordingMode, user: RecordingMode | None, route: RecordingMode | None
) -> RecordingMode:
    """A call's mode: its route's, else its user's, else the section's."""
    return route or user or default
