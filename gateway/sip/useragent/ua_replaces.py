"""An INVITE with Replaces (RFC 3891 §3): the call of ours it takes over, or why it may not.

:func:`replaced_call` runs before the UA accepts a new INVITE: without a Replaces header it returns
None (an ordinary new call). With one, the call whose dialog it names is looked up by Call-ID and *our*
tag (the Replaces to-tag; the from-tag must be the far end's, §3) and judged by
:func:`sipcore.dialogs.replacing.judge`: a malformed or repeated Replaces gets 400, no such dialog 481, a
terminated one 603, an early dialog we are the UAS of 481, a source outside ``sip.trusted_sources`` 403,
``early-only`` on a confirmed dialog 486. The accepted INVITE becomes an
:class:`~gateway.sip.useragent.incoming.IncomingCall` whose ``replaces`` is that call; its owner answers the new
INVITE and ends the old dialog (BYE, or CANCEL when it is our early dialog).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from gateway.sip.useragent.incoming import IncomingCall
from gateway.sip.useragent.ua_calls import CallState
from sipcore.dialogs.refer import Replaces
from sipcore.dialogs.replacing import DialogPhase, Refusal, ReplacedDialog, judge
from sipcore.errors import SIPError
from sipcore.syntax.message import Request

if TYPE_CHECKING:
    from gateway.sip.useragent.ua_calls import Call

__all__ = ["names_our_dialog", "replaced_call"]

logger = logging.getLogger(__name__)

_PHASES = {
    CallState.INCOMING: DialogPhase.EARLY,
    CallState.EARLY: DialogPhase.EARLY,
    CallState.ANSWERED: DialogPhase.CONFIRMED,
    CallState.CONFIRMED: DialogPhase.CONFIRMED,
    CallState.TERMINATED: DialogPhase.TERMINATED,
}


def _describe(call: Call) -> ReplacedDialog | None:
    phase = DialogPhase.TERMINATED if call.ended else _PHASES.get(call.state)
    if phase is None:  # CALLING: no dialog yet (no To tag), nothing a Replaces can name
        return None
    return ReplacedDialog(phase, initiated_here=not isinstance(call, IncomingCall))


def replaced_call(
    calls: Mapping[tuple[str, str], Call], request: Request, trusted: bool
) -> Call | Refusal | None:
    """The call ``request`` (a new INVITE) replaces, the refusal it gets, or None without Replaces."""
    try:
        replaces = Replaces.of_request(request.headers.get_all("Replaces"))
    except SIPError as exc:
        return Refusal(400, exc.reason_phrase or "Bad Replaces")
    if replaces is None:
        return None
    call = calls.get((replaces.call_id, replaces.to_tag))
    dialog = call.dialog if call is not None else None
    if call is None or dialog is None or dialog.id.remote_tag != replaces.from_tag:
        found = None
    else:
        found = _describe(call)
    refusal = judge(replaces, found, trusted)
    if refusal is not None:
        logger.info(
            "sip_call_id=%s INVITE with Replaces %s refused %d", request.call_id, replaces, refusal.status
        )
        return refusal
    assert call is not None
    logger.info("sip_call_id=%s INVITE replaces call %s", request.call_id, call.call_id)
    return call


def names_our_dialog(calls: Iterable[Call], replaces: str) -> bool:
    """Whether the Replaces value ``replaces`` (from a Refer-To, unescaped) names a live dialog of one of
    ``calls`` as its UAS sees it (RFC 3891 §3): a REFER asking for an INVITE that would take over a call
    of this gateway's own (an attended transfer between two of its calls)."""
    try:
        wanted = Replaces.parse(replaces)
    except SIPError:
        return False
    return any(
        call.call_id == wanted.call_id
        and call.dialog is not None
        and wanted.matches(call.dialog.id.call_id, call.dialog.id.local_tag, call.dialog.id.remote_tag)
        and not call.ended
        for call in calls
    )
