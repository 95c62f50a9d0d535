"""DTMF between a browser's SIP library and the call core, as INFO in the call's dialog.

The library's own digits come as INFO `application/dtmf-relay` (JsSIP's `sendDTMF` with INFO, SIP.js's
`info`) or `application/dtmf` (`digit_of`): they go to the call core, which sends them on to the SIP
party. The SIP party's digits (`dtmf` events: RFC 4733 or its INFO) go to the library as INFO
`application/dtmf-relay` in the call's answered dialog, one after the other (`DigitRelay`): each once
the one before is answered, so they are never crossed; a refusal leaves the call as it is, a 481 or
no answer (408: the UA ended the dialog, RFC 3261 §12.2.1.2) hangs it up. Our other in-dialog
requests to the library report their outcome the same way (`sent`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

from gateway.media.codecs.dtmf import DTMF_RELAY, format_dtmf_relay, parse_dtmf_relay
from gateway.signaling import events as sig
from gateway.sip.useragent.ua_calls import Call
from sipcore.errors import SIPError
from sipcore.syntax.message import Response

__all__ = ["MAX_PENDING_DIGITS", "DigitRelay", "digit_of", "sent"]

logger = logging.getLogger(__name__)

MAX_PENDING_DIGITS: Final = 32  # the SIP party's digits waiting for their INFO to the library, per call


def digit_of(call_id: str, content_type: str, body: bytes) -> tuple[str, int | None] | None:
    """The library's INFO as a digit and its duration (ms, None when not said); None for another body
    (a bad DTMF body is logged)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind not in ("application/dtmf-relay", "application/dtmf"):
        return None
    try:
        if kind == "application/dtmf":
            return body.decode().strip(), None
        parsed = parse_dtmf_relay(body)
        return parsed.digit, parsed.duration_ms
    except (ValueError, UnicodeDecodeError) as exc:
        logger.info("call=%s INFO with a bad DTMF body: %s", call_id, exc)
        return None


async def sent(call_id: str, method: str, request: Awaitable[Response]) -> int | None:
    """Our in-dialog request to the library: its final status, None when it could not go (the dialog
    ended meanwhile, the flow went: what it carried is lost). A refusal is only logged."""
    try:
        response = await request
    except (SIPError, OSError) as exc:
        logger.info("call=%s %s to the SIP library failed: %s", call_id, method, exc)
        return None
    if response.status >= 300:
        logger.info("call=%s the SIP library refused our %s: %d", call_id, method, response.status)
    return response.status


class DigitRelay:
    """The SIP party's digits to the library (see the module note); ``hang_up`` ends a call whose
    dialog the library no longer has."""

    def __init__(
        self, spawn: Callable[[Coroutine[Any, Any, None]], None], hang_up: Callable[[str], Awaitable[None]]
    ) -> None:
        self._spawn = spawn
        self._hang_up = hang_up
        self._queued: dict[str, list[sig.DtmfReceived]] = {}  # per call, waiting for their INFO

    def digit(self, call_id: str, event: sig.DtmfReceived, leg: Call | None) -> None:
        """The SIP party's digit: INFO in ``leg`` (the call's answered dialog), after those before."""
        queued = self._queued.get(call_id)
        if leg is None or (queued is not None and len(queued) >= MAX_PENDING_DIGITS):
            logger.info(
                "call=%s DTMF %s not sent to the SIP library: no answered dialog, or too many",
                call_id,
                event.digit,
            )
        elif queued is not None:
            queued.append(event)
        else:
            self._queued[call_id] = [event]
            self._spawn(self._send(call_id, leg))

    async def _send(self, call_id: str, leg: Call) -> None:
        """The call's queued digits, each INFO once the one before is answered (in order, never crossed)."""
        queued = self._queued[call_id]
        try:
            while queued:
                digit = queued.pop(0)
                body = format_dtmf_relay(digit.digit, digit.duration_ms)
                if await sent(call_id, "INFO", leg.info(DTMF_RELAY, body)) in (408, 481):
                    # the library has no such dialog, or no longer answers: the UA ended the dialog
                    await self._hang_up(call_id)
                    return
        finally:
            self._queued.pop(call_id, None)
