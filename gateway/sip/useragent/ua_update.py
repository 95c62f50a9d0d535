"""UPDATE in a dialog (RFC 3311), received and sent, for the user agent's calls.

Received (:func:`receive`), in an early or a confirmed dialog (the dialog has already checked its
CSeq and taken a new Contact as the remote target, RFC 3311 §5.2):

- a body that is not SDP: 415 with Accept (RFC 3261 §8.2.3);
- no offer: a target or session refresh (RFC 4028 §7.4): 200 at once, with our Session-Expires, and
  the session timer restarts;
- an offer while ours is unanswered (our re-INVITE or UPDATE out, our offer in a 200 or a reliable
  1xx): 491 (§5.2, glare); while theirs is (a re-INVITE or UPDATE we are still answering, the
  initial INVITE's offer not yet answered): 500 with Retry-After 0-10 s (§5.2);
- an offer in an established call: delivered as :class:`~gateway.sip.useragent.ua_events.ReinviteReceived`
  and answered by ``answer_reinvite`` with the answer in the 200 (hold and resume from the far end
  work as with a re-INVITE);
- an offer in the early dialog of an INVITE we sent, once its offer was answered in an 18x (RFC 3311
  §5.1: the PBX moves or holds early media): delivered and answered in the 200 the same way;
- an offer in an early dialog we are the UAS of (the web user's answer is being set up): 488 with a
  Warning (not yet supported).

Sent (:func:`refresh`): the session refresh of RFC 4028 §7.4, an UPDATE without an offer, used when
the far end's Allow lists UPDATE; a 491 is retried after RFC 3261 §14.1's random delay.
Sent (:func:`offer`): a re-offer of a confirmed call (hold, resume) with ``sip.reoffer_with_update``
and a far end that allows UPDATE: the offer in the UPDATE, the answer in its 2xx, no ACK (§5.1); its
result reads as a re-INVITE's, so a 491 is retried by the call layer as a re-INVITE's is.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from gateway.sip.useragent.ua_events import ReinviteResult
from sipcore.dialogs.inspection import refuse_body
from sipcore.dialogs.offer_answer import OaEvent
from sipcore.syntax.headers import warning_value

if TYPE_CHECKING:
    from gateway.sip.transactions.tu import IncomingRequest
    from gateway.sip.useragent.ua_calls import Call

__all__ = ["MAX_GLARE_RETRIES", "offer", "receive", "refresh"]

logger = logging.getLogger(__name__)

MAX_GLARE_RETRIES = 2
SDP = "application/sdp"
_TAKEN_IN = frozenset({"answered", "confirmed"})  # CallState values where an offer goes to the call layer


def receive(call: Call, incoming: IncomingRequest) -> None:
    """Answer or deliver an UPDATE received in ``call``'s dialog (see the module note)."""
    request, dialog = incoming.request, call.dialog
    assert dialog is not None
    refusal = refuse_body(request, ("application/sdp",))
    if refusal is not None:
        incoming.respond(dialog.respond(request, refusal[0], headers=refusal[1]))
        return
    if not request.body:
        timer = call.session_timer
        headers = timer.headers(require=not timer.we_refresh) if timer else ()
        logger.info("sip_call_id=%s UPDATE without offer: refreshed", call.call_id)
        incoming.respond(dialog.respond(request, 200, headers=headers))
        call.start_session_timer(None)  # RFC 4028 §10: a 2xx to a refresh restarts the timer
        return
    ours, theirs = call.offer_pending
    status_headers = call.offers.refuse_offer()
    if status_headers is None and ours:
        status_headers = (491, ())
    if status_headers is None and theirs:
        status_headers = call.offers.refuse_offer() or (500, (("Retry-After", "2"),))
    if status_headers is not None:
        status, headers = status_headers
        logger.info("sip_call_id=%s UPDATE with an offer refused %d (RFC 3311 §5.2)", call.call_id, status)
        incoming.respond(dialog.respond(request, status, headers=headers))
        return
    if call.state.value not in _TAKEN_IN and not (call.early_offers and call.state.value == "early"):
        warning = warning_value(399, "an offer in UPDATE is taken once the call is answered")
        incoming.respond(dialog.respond(request, 488, headers=(("Warning", warning),)))
        return
    call.take_update(incoming)


async def refresh(call: Call) -> ReinviteResult:
    """Refresh the session with an UPDATE without an offer (RFC 4028 §7.4); 491 is retried after
    2.1-4 s (we own the Call-ID) or 0-2 s (RFC 3261 §14.1)."""
    dialog = call.dialog
    assert dialog is not None
    for attempt in range(MAX_GLARE_RETRIES + 1):
        timer = call.session_timer
        headers = timer.request_headers() if timer else ()
        final, _ = await call.send_in_dialog(dialog.create_request("UPDATE", headers=headers))
        if final.status == 491 and attempt < MAX_GLARE_RETRIES:
            delay = dialog.glare_retry_delay()
            logger.info("sip_call_id=%s UPDATE answered 491: again in %.2f s", call.call_id, delay)
            await asyncio.sleep(delay)
            continue
        if 200 <= final.status < 300:
            call.start_session_timer(None)
        return ReinviteResult(final.status, final.reason)
    raise AssertionError("unreachable")  # pragma: no cover


async def offer(call: Call, sdp: str) -> ReinviteResult:
    """A new offer in an UPDATE of the confirmed dialog (RFC 3311 §5.1), instead of a re-INVITE; a 2xx's
    answer becomes the session, and refreshes the session timer as a 2xx re-INVITE does (RFC 4028 §10)."""
    dialog = call.dialog
    assert dialog is not None
    timer = call.session_timer
    headers = timer.request_headers() if timer else ()
    request = dialog.create_request("UPDATE", body=sdp.encode(), content_type=SDP, headers=headers)
    call.offer_event(OaEvent.SEND_OFFER)
    final, _ = await call.send_in_dialog(request)
    answered = 200 <= final.status < 300 and bool(final.body)
    call.offer_event(OaEvent.RECV_ANSWER if answered else OaEvent.REJECTED)
    answer = final.body.decode("utf-8", "replace") if answered else ""
    if answered:
        call.local_sdp = sdp
        call.remote_sdp = answer
        if call.state.value == "confirmed":  # in an early dialog no session timer runs yet
            call.start_session_timer(None)
    logger.info("sip_call_id=%s offer in UPDATE answered %d", call.call_id, final.status)
    if 200 <= final.status < 300 and not answered:  # RFC 3311 §5.2 wants the answer in the 2xx
        return ReinviteResult(488, "No answer in the 2xx to UPDATE")  # the call keeps its session
    return ReinviteResult(final.status, final.reason, answer)
