"""The `audio_stream` section of gateway.yaml: live audio of calls streamed to an app over a WebSocket
(speech to text, bots; issue 37 item 4; gateway/runtime/audio_streams/, docs/operations.md "Live audio
streams").

    audio_stream:
      url: wss://bot.example.org/listen   # where each stream connects (ws:// or wss://)
      token: {env: AUDIO_STREAM_TOKEN}    # sent as Authorization: Bearer <token> (optional)
      sample_rate: 16000                  # 8000 | 16000
      encoding: pcm16                     # pcm16 (interleaved stereo) | opus (one packet per leg)
      policy: never                       # never: only by API | always: every answered call
      inject: none                        # the app's audio to: none | sip | web | both
      overrides:                          # first match wins: a web user, and/or the SIP party's number
        - user: alice
          policy: always
        - to: "7xxx"
          policy: always
          inject: sip
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields, replace
from typing import Annotated, Final
from urllib.parse import urlsplit

from gateway.config.errors import InvalidValue
from gateway.config.secret import Secret
from gateway.config.values import FloatRange, IntRange, Parse
from gateway.identity.patterns import DialPattern

SAMPLE_RATES: Final = (8000, 16000)
ENCODINGS: Final = ("pcm16", "opus")
INJECT: Final = ("none", "sip", "web", "both")


class StreamPolicy(enum.StrEnum):
    NEVER = "never"  # only when asked (admin API, /ws, HTTP API)
    ALWAYS = "always"  # every call once answered


def stream_url(value: object) -> str:
    """A ws:// or wss:// URL with a host."""
    if not isinstance(value, str):
        raise TypeError(f"expected a ws:// or wss:// URL, got {value!r}")
    parts = urlsplit(value)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"expected a ws:// or wss:// URL, got {value!r}")
    return value


def _sample_rate(value: object) -> int:
    if isinstance(value, bool) or value not in SAMPLE_RATES:
        raise ValueError(f"expected one of {list(SAMPLE_RATES)}, got {value!r}")
    return int(value)


def _choice(options: tuple[str, ...]) -> Parse:
    def parse(value: object) -> str:
        if not isinstance(value, str) or value.lower() not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {value!r}")
        return value.lower()

    return Parse(parse)


SampleRate = Annotated[int, Parse(_sample_rate)]
Encoding = Annotated[str, _choice(ENCODINGS)]
InjectTo = Annotated[str, _choice(INJECT)]
StreamUrl = Annotated[str, Parse(stream_url)]


@dataclass(frozen=True, slots=True)
class StreamOverride:
    """What differs for the calls of one web user (`user`) and/or to or from numbers matching `to` (a
    dial pattern on the SIP party's number); unset keys keep the section's."""

    user: str | None = None
    to: DialPattern | None = None
    url: StreamUrl | None = None
    policy: StreamPolicy | None = None
    sample_rate: SampleRate | None = None
    encoding: Encoding | None = None
    inject: InjectTo | None = None

    def __post_init__(self) -> None:
        if self.user is None and self.to is None:
            raise InvalidValue("user", "an override names a user, a number pattern (to), or both")

    def matches(self, user: str | None, number: str | None) -> bool:
        if self.user is not None and self.user != user:
            return False
        return self.to is None or (number is not None and self.to.matches(number))


@dataclass(frozen=True, slots=True)
class AudioStreamSection:
    url: StreamUrl | None = None  # none: a stream needs a url from the admin API
    token: Secret | None = None
    policy: StreamPolicy = StreamPolicy.NEVER
    sample_rate: SampleRate = 8000
    encoding: Encoding = "pcm16"
    inject: InjectTo = "none"
    queue_frames: Annotated[int, IntRange(5, 3000)] = 50  # frames waiting for the socket (1 s)
    connect_timeout: Annotated[float, FloatRange(0.1, 60.0)] = 5.0
    reconnect_attempts: Annotated[int, IntRange(0, 100)] = 3  # after a lost connection; then give up
    backoff: Annotated[float, FloatRange(0.01, 60.0)] = 0.5  # s before the first retry, doubling
    max_streams: Annotated[int, IntRange(1, 100_000)] = 100  # at once on this instance
    overrides: tuple[StreamOverride, ...] = ()

    def __post_init__(self) -> None:
        for index, override in enumerate(self.overrides):
            if override.policy is StreamPolicy.ALWAYS and (override.url or self.url) is None:
                raise InvalidValue(f"overrides[{index}].url", "policy always needs a url (here or above)")
        if self.policy is StreamPolicy.ALWAYS and self.url is None:
            raise InvalidValue("url", "policy always needs a url")

    def for_call(self, user: str | None, number: str | None) -> AudioStreamSection:
        """The section as it applies to a call of web user `user` with SIP party `number`."""
        for override in self.overrides:
            if override.matches(user, number):
                changes = {
                    f.name: getattr(override, f.name)
                    for f in fields(override)
                    if f.name not in ("user", "to") and getattr(override, f.name) is not None
                }
                return replace(self, overrides=(), **changes)
        return self
