"""DTMF: RFC 4733 telephone-events and SIP INFO bodies, sans-I/O.

* ``TelephoneEvent``: the 4-octet payload of RFC 4733 §2.3 (event, E bit, volume, duration).
* ``DtmfSender.packets``: the packet sequence of RFC 4733 §2.5.1 for one digit. Every packet of an
  event carries the event's start timestamp; the first has the marker bit; updates follow every packet
  interval with the duration so far; the final packet (E bit) is sent three times (§2.5.1.4).
* ``DtmfReceiver``: packets in, digits out, each digit once: the repeated end packets are dropped, an
  event whose start packet was lost is still reported, an event whose end packets were all lost is
  reported when the next event starts or on ``flush()`` (§2.5.2).
* SIP INFO bodies: ``application/dtmf-relay`` (``Signal=5\\r\\nDuration=160\\r\\n``) and
  ``application/dtmf`` (the digit alone), as PBXs send them.

Digits are ``0-9 * # A-D`` and ``!`` for hook flash (event 16, RFC 4733 §3.2).
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from gateway.media.errors import DtmfError

# RFC 4733 §3.2, table 7: DTMF named events
EVENT_CODES: dict[str, int] = {
    **{str(d): d for d in range(10)},
    "*": 10,
    "#": 11,
    "A": 12,
    "B": 13,
    "C": 14,
    "D": 15,
    "!": 16,
}
EVENT_DIGITS: dict[int, str] = {code: digit for digit, code in EVENT_CODES.items()}

DEFAULT_VOLUME = 10  # -10 dBm0
DEFAULT_INFO_DURATION_MS = 250  # used when a dtmf-relay body names no duration
MAX_DURATION_MS = 8000  # one event, unsegmented (RFC 4733 §2.5.1.3 would split longer ones)
END_REPEATS = 3  # RFC 4733 §2.5.1.4


def event_code(digit: str) -> int:
    """The RFC 4733 event code of a digit; lower-case a-d are accepted."""
    code = EVENT_CODES.get(digit.upper())
    if code is None:
        raise DtmfError(f"unknown DTMF digit {digit!r}; expected one of 0-9 * # A-D !")
    return code


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """The RFC 4733 §2.3 payload: event (8 bits), E, R, volume (6 bits), duration (16 bits)."""

    event: int
    end: bool = False
    volume: int = DEFAULT_VOLUME
    duration: int = 0

    SIZE = 4

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 255:
            raise DtmfError(f"event must be in [0, 255], got {self.event!r}")
        if not 0 <= self.volume <= 63:
            raise DtmfError(f"volume must be in [0, 63], got {self.volume!r}")
        if not 0 <= self.duration <= 0xFFFF:
            raise DtmfError(f"duration must be in [0, 65535], got {self.duration!r}")

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        if len(payload) < cls.SIZE:
            raise DtmfError(f"telephone-event payload must be 4 bytes, got {len(payload)}")
        event, flags, duration = struct.unpack_from("!BBH", payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def serialize(self) -> bytes:
        return struct.pack("!BBH", self.event, (0x80 if self.end else 0) | self.volume, self.duration)

    @property
    def digit(self) -> str | None:
        return EVENT_DIGITS.get(self.event)


@dataclass(frozen=True, slots=True)
class DtmfPacket:
    """One telephone-event packet to send: ``offset`` seconds after the first, RTP timestamp fixed."""

    offset: float
    timestamp: int
    marker: bool
    event: TelephoneEvent

    @property
    def payload(self) -> bytes:
        return self.event.serialize()


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """A digit heard, once, with its duration in milliseconds."""

    digit: str
    duration_ms: int
    volume: int = DEFAULT_VOLUME

    def __post_init__(self) -> None:
        event_code(self.digit)
        if not 0 <= self.duration_ms <= 0xFFFF:
            raise DtmfError(f"duration must be in [0, 65535] ms, got {self.duration_ms!r}")


def event_timestamp(timestamp: int, audio_rate: int, event_rate: int) -> int:
    """An event's RTP timestamp in its own payload type's clock (RFC 4733 §2.1, §2.3.5: timestamp and
    duration count at the telephone-event's rtpmap rate), from ``timestamp`` on the audio's timeline at
    ``audio_rate``. Opus (48 kHz) with only telephone-event/8000 negotiated: both are in 8 kHz units, so
    a receiver reads the event's start and its duration on one clock (issue 33: they were 48 and 8 kHz).
    Telephone-event at the audio's rate (the gateway offers telephone-event/48000 with Opus, and
    answers one at the chosen codec's rate when offered) leaves the timestamp as it is."""
    if audio_rate <= 0 or event_rate <= 0 or audio_rate == event_rate:
        return timestamp
    return (timestamp * event_rate // audio_rate) & 0xFFFF_FFFF


@dataclass(frozen=True, slots=True)
class DtmfSender:
    """Turns digits into RFC 4733 §2.5.1 packet sequences at a clock rate and packet interval."""

    clock_rate: int = 8000
    packet_ms: int = 20
    volume: int = DEFAULT_VOLUME

    def __post_init__(self) -> None:
        if self.clock_rate <= 0 or self.packet_ms <= 0:
            raise DtmfError(f"bad clock rate {self.clock_rate!r} or packet interval {self.packet_ms!r}")
        if not 0 <= self.volume <= 63:
            raise DtmfError(f"volume must be in [0, 63], got {self.volume!r}")

    def packets(self, digit: str, timestamp: int, duration_ms: int = 100) -> list[DtmfPacket]:
        code = event_code(digit)
        if not self.packet_ms <= duration_ms <= MAX_DURATION_MS:
            raise DtmfError(
                f"duration must be in [{self.packet_ms}, {MAX_DURATION_MS}] ms, got {duration_ms}"
            )
        if not 0 <= timestamp <= 0xFFFF_FFFF:
            raise DtmfError(f"timestamp must be a 32-bit value, got {timestamp!r}")
        step = self.clock_rate * self.packet_ms // 1000
        total = min(0xFFFF, self.clock_rate * duration_ms // 1000)
        interval = self.packet_ms / 1000
        out: list[DtmfPacket] = []
        elapsed, index = step, 0
        while elapsed < total:  # start packet (marker) and updates, duration so far (§2.5.1.2)
            out.append(
                DtmfPacket(
                    index * interval, timestamp, index == 0, TelephoneEvent(code, False, self.volume, elapsed)
                )
            )
            elapsed, index = elapsed + step, index + 1
        final = TelephoneEvent(code, True, self.volume, total)
        for repeat in range(END_REPEATS):  # §2.5.1.4: the end packet three times, same timestamp
            out.append(DtmfPacket((index + repeat) * interval, timestamp, index == 0 and repeat == 0, final))
        return out


class DtmfReceiver:
    """Turns received telephone-event packets into digits, each digit exactly once (RFC 4733 §2.5.2).

    An event is identified by its RTP timestamp (and code). ``feed`` returns the digits completed by a
    packet: normally none or one; two when a new event reveals that the previous one lost its end.
    """

    __slots__ = ("_current", "_done", "clock_rate")

    def __init__(self, clock_rate: int = 8000, *, memory: int = 16) -> None:
        if clock_rate <= 0:
            raise DtmfError(f"clock rate must be positive, got {clock_rate!r}")
        self.clock_rate = clock_rate
        self._current: tuple[int, TelephoneEvent] | None = None  # (timestamp, latest packet)
        self._done: deque[tuple[int, int]] = deque(maxlen=memory)  # (timestamp, event) reported

    def feed(self, timestamp: int, payload: bytes | TelephoneEvent) -> list[DtmfDigit]:
        event = payload if isinstance(payload, TelephoneEvent) else TelephoneEvent.parse(payload)
        key = (timestamp, event.event)
        if key in self._done or event.digit is None:
            return []  # a repeated end packet, a late update, or an event that is not DTMF
        digits: list[DtmfDigit] = []
        current = self._current
        if current is not None and (current[0], current[1].event) != key:
            digits.extend(self.flush())  # its end packets were all lost
            current = None
        if current is None or event.duration >= current[1].duration:
            current = (timestamp, event)
        self._current = current
        if event.end:
            digits.extend(self.flush())
        return digits

    def flush(self) -> list[DtmfDigit]:
        """Report the event in progress, if any (call when packets stopped without an end packet)."""
        if self._current is None:
            return []
        timestamp, event = self._current
        self._current = None
        self._done.append((timestamp, event.event))
        digit = EVENT_DIGITS[event.event]
        duration_ms = min(0xFFFF, event.duration * 1000 // self.clock_rate)
        return [DtmfDigit(digit, duration_ms, event.volume)]


# ----------------------------------------------------------------------------------- SIP INFO bodies

DTMF_RELAY = "application/dtmf-relay"
DTMF = "application/dtmf"


def format_dtmf_relay(digit: str, duration_ms: int) -> str:
    """An ``application/dtmf-relay`` body."""
    return f"Signal={DtmfDigit(digit.upper(), duration_ms).digit}\r\nDuration={duration_ms}\r\n"


def _signal(value: str, *, codes: bool = True) -> str:
    value = value.strip()
    # some PBXs send the event code instead of the digit: Signal=11, Signal=16
    if codes and value.isascii() and value.isdigit() and int(value) in EVENT_DIGITS:
        return EVENT_DIGITS[int(value)]
    if len(value) == 1:
        event_code(value)
        return value.upper()
    raise DtmfError(f"unknown DTMF signal {value!r}")


def parse_dtmf_relay(body: str | bytes) -> DtmfDigit:
    """Parse an ``application/dtmf-relay`` body: ``Signal=`` required, ``Duration=`` (ms) optional."""
    text = _text(body)
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise DtmfError(f"dtmf-relay line without '=': {line!r}")
        fields[name.strip().lower()] = value.strip()
    if "signal" not in fields:
        raise DtmfError(f"dtmf-relay body has no Signal: {text!r}")
    digit = _signal(fields["signal"])
    duration = fields.get("duration", str(DEFAULT_INFO_DURATION_MS))
    if not (duration.isascii() and duration.isdigit()) or not 0 < int(duration) <= 0xFFFF:
        raise DtmfError(f"dtmf-relay Duration must be a positive integer (ms), got {duration!r}")
    return DtmfDigit(digit, int(duration))


def format_dtmf(digit: str) -> str:
    """An ``application/dtmf`` body: the digit alone."""
    return EVENT_DIGITS[event_code(digit)]


def parse_dtmf(body: str | bytes) -> DtmfDigit:
    """Parse an ``application/dtmf`` body: one digit character (no duration is sent; the default is assumed)."""
    return DtmfDigit(_signal(_text(body), codes=False), DEFAULT_INFO_DURATION_MS)


def _text(body: str | bytes) -> str:
    if isinstance(body, bytes):
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DtmfError(f"DTMF body is not UTF-8: {body!r}") from exc
    return body


INFO_PARSERS = {DTMF_RELAY: parse_dtmf_relay, DTMF: parse_dtmf}


def parse_info_body(content_type: str, body: str | bytes) -> DtmfDigit:
    """Parse a SIP INFO DTMF body by its Content-Type (parameters ignored)."""
    mime = content_type.split(";", 1)[0].strip().lower()
    parser = INFO_PARSERS.get(mime)
    if parser is None:
        raise DtmfError(f"unsupported DTMF content type {content_type!r}")
    return parser(body)
