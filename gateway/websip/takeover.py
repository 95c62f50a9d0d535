"""A SIP library's call carried on by a surviving instance when its own dies (issue 34 item 3).

What the dead instance wrote at each heartbeat, beside the call's handover (runtime/continuity/takeover.py:
the call machine, the SIP party's dialog, the SIP side of the media): the library's side, `handover`
(the session's id, the library's dialog as `Call.handover()` gives it, our last SDP to the library, and
what recognises the browser on a new flow: its outbound `+sip.instance` or Contact URI, flows.py).

The survivor (`adopt`): its UA adopts the library's dialog (gateway/sip/useragent/ua_adopt.py), a
`WebSipSession` is made again under the same id, carrying the call, and is held as a session whose flow
closed (flows.py, for `web_auth.reconnect_grace`), its identities recorded in Redis so that the library's
new WebSocket, wherever HAProxy sends it, is relayed here by its REGISTER (gateway/signaling/sip_ws.py).
The call machine waits for new web media (`TakenOver` with its session kept: `web_lost`).

The library's media still points at the dead instance. Applications that restart ICE when their
connection fails or their socket comes back (`renegotiate({rtcOfferConstraints: {iceRestart:
true}})`, `invite({sessionDescriptionHandlerOptions: {offerOptions: {iceRestart: true}}})`). That re-INVITE
(same RTCPeerConnection, new ICE credentials) reaches the survivor's session, which takes it as the
call's new web media (`Renewals`): a `reattach` with the offer, a new web leg on the same SIP leg, and its
answer in the 200 OK. The answer carries the survivor's own DTLS fingerprint, and a browser whose remote
fingerprint changes with an ICE restart makes a new DTLS association on the same RTCPeerConnection
(Chromium does: `DtlsTransport` tears the old one down when the fingerprint changes). An application
that does not restart ICE is asked (`renew_later`): a second after its library is back on a flow, our
re-INVITE without an offer gets the library's offer (its old ICE credentials and candidates) in the
200, and the new web leg's answer goes in the ACK; Chromium, seeing the remote credentials and
fingerprint change, checks the new pair and makes the new DTLS association all the same.

A pass-through call's media is the library's with the far end (ICE and DTLS end to end): it never went
through the dead instance and goes on by itself (`TakenOver.media_intact`: the call stays attached), so
the survivor asks the library for nothing; its REGISTER on a new flow moves the dialog, and its own
re-INVITEs (an ICE restart) go to the far end as on one instance.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from gateway.signaling.errors import SignalingError
from gateway.signaling.jsonrpc.renew import RENEW_TIMEOUT
from gateway.signaling.jsonrpc.renew import Renewals as OfferWaits
from gateway.signaling.service import CallService, ReattachService, WebRenewalService
from gateway.sip.useragent.ua_adopt import AdoptedCall
from gateway.sip.useragent.ua_calls import Call, CallError, CallState
from sipcore.errors import SIPError

if TYPE_CHECKING:
    from gateway.identity import WebUser
    from gateway.websip.service import WebSipService
    from gateway.websip.sessions import WebSipSession

__all__ = ["Renewals", "adopt", "handover"]

logger = logging.getLogger(__name__)

RENEW_WAIT: Final = 1.0  # s a library back on a flow has to renew its media itself before we ask it
RENEW_TRIES: Final = 3  # our re-INVITEs asking for an offer, when they meet the library's (491)


def handover(
    session: WebSipSession, call_id: str, leg: Call | None, answer: str | None
) -> dict[str, Any] | None:
    """The library's side of call ``call_id`` for a survivor (see the module note): None while its dialog
    is not answered, without our SDP to it, or from a browser that could not be recognised on a new flow
    (it never registered)."""
    if leg is None or leg.state is not CallState.CONFIRMED or not answer or not session.identities:
        return None
    try:
        dialog = leg.handover()
    except CallError:
        return None
    return {
        "session_id": session.id,
        "dialog": dialog,
        "answer": answer,
        "identities": sorted(session.identities),
    }


async def adopt(service: WebSipService, user: WebUser, data: Mapping[str, Any], call_id: str) -> bool:
    """Carry on call ``call_id``'s library side from ``data`` (a `handover`): False when it cannot be read
    or adopted (the takeover then gives the call up)."""
    identities, answer, dialog = data.get("identities"), data.get("answer"), data.get("dialog")
    if (
        not isinstance(identities, list)
        or not identities
        or not all(isinstance(i, str) for i in identities)
        or not isinstance(answer, str)
        or not answer
        or not isinstance(dialog, dict)
    ):
        logger.warning("call=%s: the SIP library's handover cannot be read", call_id)
        return False
    if service.lost.grace <= 0:
        return False  # no library would be waited for (no handover is written without a grace either)
    try:
        leg = service.ua.adopt(dialog)  # no credentials: the library's dialog never needs any
    except (CallError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        logger.warning("call=%s: the SIP library's dialog cannot be adopted (%s)", call_id, exc)
        return False
    session = await service.session_again(user, str(data["session_id"]), frozenset(identities))
    session.take_back(call_id, leg, answer)
    service.hold(session)  # (it can: a grace, and an answered dialog)
    logger.info("call=%s: %s's SIP library's dialog taken over, waiting for its new flow", call_id, user.id)
    return True


async def renew_later(
    calls: CallService, session: WebSipSession, call_id: str, leg: AdoptedCall, renewals: Renewals
) -> None:
    """The library back on a flow, its call taken over here: unless it renews the media itself within
    `RENEW_WAIT` (its application's ICE restart), our re-INVITE without an offer asks it for one
    (gateway/sip/useragent/ua_late_offer.py), which the new web leg answers in the ACK. An application
    that never restarts ICE gets its audio back this way. Glare with the library's own re-INVITE (491
    either way) is retried after RFC 3261 §14.1's random wait while the media is still not back."""
    delay = RENEW_WAIT
    for _ in range(RENEW_TRIES):
        await asyncio.sleep(delay)
        if not _still_lost(calls, session, call_id, leg, renewals):
            return

        async def answer(offer: str) -> str | None:
            try:
                kept = _dtls_role_kept(offer, session.our_sdp(call_id))
                renewed = await renewals.renewed(calls, session, call_id, kept, restarts=True)
            except SignalingError as exc:  # our last answer then: the library keeps its call
                logger.info("call=%s the library's offer did not renew the media: %s", call_id, exc)
                renewed = None
            return await session.renewal_answer(call_id, offer, renewed)

        logger.info("call=%s asking the SIP library for an offer to renew the media", call_id)
        try:
            result = await leg.reinvite_offerless(answer)
        except (CallError, SIPError, OSError) as exc:  # its own re-INVITE under way, the flow went
            logger.info("call=%s the re-INVITE asking for an offer did not go: %s", call_id, exc)
            result = None
        if result is not None and result.status != 491:
            if not result.ok:
                logger.info("call=%s the SIP library did not renew the media: %d", call_id, result.status)
            return
        delay = random.uniform(0.5, 2.0)  # (a crossing re-INVITE of the library's may renew it first)


def _dtls_role_kept(offer: str, ours: str | None) -> str:
    """The library's ``offer`` in the 200 to our re-INVITE without one, as the new web leg is to answer
    it: the DTLS role the library held with the drained or dead instance kept. Its RTCPeerConnection
    offers actpass again (RFC 5763 §5) while keeping its DTLS transport; when it was the client (it
    answered our offer: our last SDP to it says passive) and we answered active, it had to turn server,
    dropped our ClientHello that came before our answer did, and the handshake waited for the
    retransmission a second later: the call's audio lost that second both ways. Read as active, the offer
    is answered passive and the library, client as before, starts the new handshake once it has our
    answer."""
    if ours is None or "a=setup:passive" not in ours:
        return offer
    return offer.replace("a=setup:actpass", "a=setup:active")


def _still_lost(
    calls: CallService, session: WebSipSession, call_id: str, leg: AdoptedCall, renewals: Renewals
) -> bool:
    """Whether call ``call_id`` still waits for new web media that nobody is bringing."""
    if leg.ended or renewals.waiting(call_id) or not isinstance(calls, WebRenewalService):
        return False
    try:
        return calls.web_media_lost(session, call_id)  # (False: renewed by its own re-INVITE)
    except SignalingError:
        return False  # the call ended meanwhile


class Renewals(OfferWaits):
    """The library's re-INVITEs that bring a call new web media (see the module note), per call: they
    wait for the call core's answer as a JSON-RPC peer's offers do (jsonrpc/renew.py)."""

    async def renewed(
        self, calls: CallService, session: WebSipSession, call_id: str, offer: str, restarts: bool
    ) -> str | None:
        """The new web leg's answer to ``offer`` when it ``restarts`` ICE and the call waits for new web
        media; None otherwise (an ordinary re-INVITE: a hold, a session refresh, whose offer keeps the
        old ICE session, which no new web leg's answer can meet). `SignalingError` when the renewal was
        refused (another under way, the call's end) or did not come."""
        if (
            not restarts
            or not isinstance(calls, WebRenewalService)
            or not calls.web_media_lost(session, call_id)
        ):
            return None
        if not isinstance(calls, ReattachService):
            raise SignalingError("the call core takes no new web media")
        answer = await self.wait(call_id, calls.reattach(session, call_id, offer), RENEW_TIMEOUT)
        logger.info("call=%s the SIP library's re-INVITE renewed the call's web media", call_id)
        return answer
