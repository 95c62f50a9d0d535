"""Validation shared by events and commands; each failure quotes the bad value."""

from __future__ import annotations

from typing import Final

from gateway.calls.errors import InvalidValue

DTMF_DIGITS: Final = frozenset("0123456789*#ABCD")
MAX_CHAT_BYTES: Final = 8192  # a chat text in a SIP MESSAGE (RFC 3428 §7: TCP/TLS may carry more than UDP)


def text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidValue(f"{name} must be a non-empty string, got {value!r}")


def optional_text(name: str, value: object) -> None:
    if value is not None:
        text(name, value)


def status(name: str, value: object, low: int = 100, high: int = 699) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidValue(f"{name} must be a SIP status {low}-{high}, got {value!r}")


def digit(value: object, *, flash: bool = False) -> None:
    """A keypad digit; with ``flash``, also "!" (RFC 4733 event 16), which only media reports."""
    if flash and value == "!":
        return
    if not isinstance(value, str) or len(value) != 1 or value not in DTMF_DIGITS:
        raise InvalidValue(f"not a DTMF digit (0-9 * # A-D): {value!r}")


def duration(value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10_000:
        raise InvalidValue(f"DTMF duration must be 1-10000 ms, got {value!r}")


def chat_text(value: object) -> None:
    """A chat text for a MESSAGE: a string of 1 to ``MAX_CHAT_BYTES`` bytes in UTF-8."""
    if not isinstance(value, str) or not value:
        raise InvalidValue(f"body must be a non-empty string, got {value!r}")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_CHAT_BYTES:
        raise InvalidValue(
            f"body must be at most {MAX_CHAT_BYTES} bytes in UTF-8, got {len(value)} characters"
        )
