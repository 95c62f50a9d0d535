"""What the two sides say of who calls, beyond From: values carried by events and commands (pure).

``CallerDetails`` travels with an inbound INVITE to the ringing sessions: the asserted identity
(P-Asserted-Identity / Remote-Party-ID, RFC 3325, taken only from a trusted peer), where the call was
diverted from (Diversion / History-Info, oldest first) and the allow-listed custom headers
(``sip.pass_headers``). ``custom_headers`` checks the headers a web user's call carries the other way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway.calls.errors import InvalidValue

__all__ = ["MAX_HEADER_VALUE", "NO_DETAILS", "CallerDetails", "custom_headers"]

MAX_HEADER_VALUE = 256  # characters of a passed-through header value
MAX_HEADERS = 16


@dataclass(frozen=True, slots=True)
class CallerDetails:
    asserted_uri: str | None = None
    asserted_display: str | None = None
    diversions: tuple[tuple[str, str | None], ...] = ()  # (uri, reason or cause), oldest first
    headers: tuple[tuple[str, str], ...] = ()  # allow-listed custom headers, as received

    def __post_init__(self) -> None:
        if self.asserted_display is not None and self.asserted_uri is None:
            raise InvalidValue("asserted_display needs asserted_uri")
        for name, value in self.headers:
            _check_header(name, value)


NO_DETAILS = CallerDetails()  # frozen: one shared default


def _check_header(name: object, value: object) -> None:
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_." for c in name):
        raise InvalidValue(f"not a header name: {name!r}")
    if not isinstance(value, str) or len(value) > MAX_HEADER_VALUE or not value.isprintable():
        raise InvalidValue(
            f"header {name}: value must be printable text of at most {MAX_HEADER_VALUE} characters"
        )


def custom_headers(requested: Mapping[str, object], allowed: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """The headers a call asks for, checked against the allow-list (case-insensitive, written as the
    allow-list spells them); InvalidValue naming the first one refused."""
    spelled = {name.lower(): name for name in allowed}
    if len(requested) > MAX_HEADERS:
        raise InvalidValue(f"at most {MAX_HEADERS} headers")
    chosen = []
    for name, value in requested.items():
        canonical = spelled.get(name.lower()) if isinstance(name, str) else None
        if canonical is None:
            raise InvalidValue(f"header {name!r} is not in sip.pass_headers")
        _check_header(canonical, value)
        assert isinstance(value, str)
        chosen.append((canonical, value))
    return tuple(chosen)
