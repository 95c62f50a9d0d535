"""SIP MESSAGE (RFC 3428) to and from web users, outside any call: the pure checks of what may pass.

Inbound: a page-mode MESSAGE (text/plain, or no type) from a trusted peer for a web user is shown to each
of her open sessions as a `message` event; 200 once delivered, 480 when she is not online, 404 for no such
user, 415 (Accept: text/plain) for another body, 413 beyond ``MAX_MESSAGE_BYTES``. Outbound: the web user's
`message {to, body}` goes to the PBX as MESSAGE under the same outbound policy as a call
(:func:`gateway.calls.setup.outbound.dial_target` and ``may_call``); she learns the SIP status it got.
"""

from __future__ import annotations

from typing import Final

from sipcore.syntax.message import Request

__all__ = ["MAX_MESSAGE_BYTES", "inbound_refusal", "text_of"]

MAX_MESSAGE_BYTES: Final = 8192  # RFC 3428 §7 asks for under 1300 over UDP; TCP/TLS may carry more
TEXT: Final = "text/plain"


def inbound_refusal(request: Request) -> tuple[int, str, tuple[tuple[str, str], ...]] | None:
    """Why a MESSAGE cannot be shown to a web user (status, phrase, headers); None: it can."""
    mime = (request.headers.get("Content-Type") or TEXT).split(";", 1)[0].strip().lower()
    if mime != TEXT:
        return 415, "Unsupported Media Type", (("Accept", TEXT),)
    if len(request.body) > MAX_MESSAGE_BYTES:
        return 413, "Request Entity Too Large", ()
    try:
        request.body.decode("utf-8")
    except UnicodeDecodeError:
        return 400, "Body Is Not UTF-8", ()
    return None


def text_of(request: Request) -> str:
    return request.body.decode("utf-8")
