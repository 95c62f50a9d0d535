"""How a SIP library is told that a call ended or was refused: the final status for its INVITE when
the call ended with a reason of the call core's and no SIP status, and the reason phrase and Warning
(RFC 3261 §20.43) that say why."""

from __future__ import annotations

from sipcore.syntax.headers import warning_value

__all__ = ["reason_phrase", "status_for", "warning_headers"]

_STATUS_FOR_REASON = {
    "no_such_number": 404,
    "busy": 486,
    "cancelled": 487,
    "caller_cancelled": 487,
    "pbx_unreachable": 503,
    "declined": 603,
    "incompatible_media": 488,
    "media_failed": 488,
    "forbidden": 403,
    "destination_not_allowed": 403,
    "bad_destination": 484,
    "no_answer": 480,
    "server_error": 500,
}


def status_for(reason: str) -> int:
    """The final status for the browser's INVITE when the call ended with ``reason`` and no SIP status."""
    return _STATUS_FOR_REASON.get(reason, 480)


def warning_headers(status: int, text: str) -> tuple[tuple[str, str], ...]:
    """A Warning (399, RFC 3261 §20.43) saying why an offer was refused (400, 488) or a call was over a
    per-user cap (486), as the UDP side gives the PBX's: a browser library's log shows it."""
    return (("Warning", warning_value(399, text)),) if text and status in (400, 486, 488) else ()


def reason_phrase(text: str, limit: int = 80) -> str:
    """``text`` as a reason phrase: printable, at most ``limit`` characters, cut between words (with
    "...") rather than mid-word; the Warning carries it in full."""
    clean = "".join(c if c.isprintable() else " " for c in text).strip()
    if len(clean) > limit:
        clean = clean[: limit - 3].rsplit(" ", 1)[0].rstrip(" ,;:(") + "..."
    return clean or "Refused"
