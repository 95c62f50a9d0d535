"""The `recording` section of gateway.yaml: whether calls are recorded, where and how (issue 37 item 3).

    recording:
      mode: on_demand        # never (default) | on_demand (the web user or an API starts it) | always
      directory: recordings  # <directory>/<YYYY-MM-DD>/<call id>-<n>.wav with <...>.json beside it
      format: wav            # wav (16-bit stereo PCM) | ogg (Ogg/Opus, stereo)
      rate: 8000             # 8000 | 16000 Hz

A user (`users[].recording`) or a route (`routes[].recording`) may name its own mode: the route that
matches the call's destination (a call from the SIP side: its caller) comes first, then the user
carrying the call, then this section's `mode`. Left channel: the web user; right: the SIP party.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated

from gateway.config.errors import InvalidValue
from gateway.config.values import Parse


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


@dataclass(frozen=True, slots=True)
class RecordingSection:
    mode: RecordingMode = RecordingMode.NEVER
    directory: str = "recordings"  # relative: from the working directory
    format: RecordingFormat = RecordingFormat.WAV
    rate: Annotated[int, Parse(_rate)] = 8000

    def __post_init__(self) -> None:
        if not self.directory.strip():
            raise InvalidValue("directory", "must name a directory (default: recordings)")


def recording_mode(
    default: RecordingMode, user: RecordingMode | None, route: RecordingMode | None
) -> RecordingMode:
    """A call's mode: its route's, else its user's, else the section's."""
    return route or user or default
