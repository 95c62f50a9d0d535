"""A re-INVITE of ours without an offer (RFC 3261 §14.1, RFC 3264 §5): the far end offers in its 2xx
and we answer in the ACK (RFC 3261 §13.2.2.4).

What it is for: a browser's SIP library whose call a surviving instance took over (gateway/websip/
takeover.py) still has its RTCPeerConnection pointed at the dead instance. Asked for an offer, JsSIP
and SIP.js make one from that connection (the same ICE credentials and candidates); the survivor answers
it with a new web leg of its own (new ICE credentials and DTLS fingerprint), and the browser, seeing the
remote credentials and fingerprint change, checks the new pair and makes a new DTLS association on the
same RTCPeerConnection. No application code is needed for it.

A 2xx without an offer, or an offer ``answer`` cannot take (None, or an exception), is ACKed without a
body: what RFC 3261 §13.2.2.4 asks, a valid answer, is what could not be made; the library keeps its
session as it was or ends it (JsSIP answers such an ACK with BYE). It is reported as 488.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from gateway.sip.useragent.ua_events import ReinviteResult
from sipcore.dialogs.offer_answer import OaEvent

if TYPE_CHECKING:
    from gateway.sip.useragent.ua_calls import Call

__all__ = ["reinvite"]

logger = logging.getLogger(__name__)

SDP = "application/sdp"


async def reinvite(call: Call, answer: Callable[[str], Awaitable[str | None]]) -> ReinviteResult:
    """Send the re-INVITE without an offer and ACK its 2xx with ``answer(offer)`` (see the module note);
    the result's SDP is the far end's offer."""
    dialog = call._established()
    if call._reinvite_out or call._reinvite_in is not None:
        from gateway.sip.useragent.ua_calls import CallError  # (ua_calls imports this module)

        raise CallError(f"call {call.call_id}: a re-INVITE is already in progress")
    call._reinvite_out = True
    try:
        timer = call.session_timer
        headers = timer.request_headers() if timer else ()
        final, sent = await call._send(dialog.create_request("INVITE", headers=headers))
        if not 200 <= final.status < 300:
            return ReinviteResult(final.status, final.reason)
        offer = final.body.decode("utf-8", "replace") if final.body else ""
        made: str | None = None
        if offer:
            call.offer_event(OaEvent.RECV_OFFER)
            try:
                made = await answer(offer)
            except Exception as exc:  # the caller's refusal: logged, the 2xx ACKed all the same
                logger.info("sip_call_id=%s no answer to the offer in the 2xx: %s", call.call_id, exc)
        if made is None:
            await call._ack(dialog.ack(sent))
            if offer:
                call.offer_event(OaEvent.REJECTED)  # (the far end's offer went unanswered)
            return ReinviteResult(488, "Not Acceptable Here", offer)
        await call._ack(dialog.ack(sent, body=made.encode(), content_type=SDP))
        call.offer_event(OaEvent.SEND_ANSWER)
        call.local_sdp, call.remote_sdp = made, offer
        call.start_session_timer(None)  # a 2xx re-INVITE refreshes the session (RFC 4028 §10)
        return ReinviteResult(final.status, final.reason, offer)
    finally:
        call._reinvite_out = False
