"""A call we place: INVITE, its responses, ACK, CANCEL (RFC 3261 §13.2, §9.1, §22.2).

How it works: :meth:`OutgoingCall.start` runs one task that sends the INVITE in a client
transaction and reads its responses. Each response goes through the UA's
:class:`~sipcore.dialogs.dialogset.DialogSet` (early dialogs from 1xx with a To tag; the first 2xx
confirms its dialog; a 2xx from another fork is ACKed and BYEd). Every 1xx becomes a
:class:`Provisional` event, an 18x with SDP also an :class:`EarlyMedia` event; a 2xx is ACKed
(the ACK kept for retransmitted 2xx, which the layer hands the UA as stray responses) and
becomes :class:`Answered`; a 401/407 from the PBX (:mod:`gateway.sip.useragent.pbx_binding`) is answered
once more with credentials (the transaction itself ACKs the challenge; the new INVITE has
CSeq + 1); any other final response is
:class:`Failed`. :meth:`cancel` asks the transaction to CANCEL the INVITE (once a provisional
response has arrived, §9.1); the INVITE then ends with 487, reported as ``Failed(487, ...)``.

Reliable 1xx (RFC 3262; the INVITE says ``Supported: 100rel``) are judged by
:class:`~gateway.sip.useragent.ua_reliable.PrackSender` first: a new one in order is PRACKed and processed as
above, a retransmission only PRACKed again, one out of order dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from gateway.sip.transactions.client import ClientTransaction
from gateway.sip.useragent import dialog_sources
from gateway.sip.useragent.ua_calls import MAX_AUTH_RETRIES, Call, CallError, CallState
from gateway.sip.useragent.ua_events import Answered, EarlyMedia, Failed, Provisional
from gateway.sip.useragent.ua_reliable import PrackSender
from sipcore.auth.digest import DigestClient
from sipcore.dialogs.offer_answer import OaEvent, OaState
from sipcore.dialogs.reliable import Verdict
from sipcore.dialogs.session_timer import uac_decision
from sipcore.errors import DigestError, SIPError
from sipcore.location.redirect import redirect_targets
from sipcore.location.routing import Target
from sipcore.syntax.message import Request, Response

if TYPE_CHECKING:
    from gateway.sip.useragent.ua import UserAgent

__all__ = ["OutgoingCall"]

logger = logging.getLogger(__name__)


def _is_sdp(message: Request | Response) -> bool:
    content_type = (message.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    return bool(message.body) and content_type == "application/sdp"


class OutgoingCall(Call):
    """A call placed with :meth:`UserAgent.invite`; read its events, then ``bye()``/``cancel()``."""

    early_offers = True  # an UPDATE's offer in our early dialog re-negotiates early media (ua_update)

    def __init__(
        self, ua: UserAgent, invite: Request, target: Target | None, digest: DigestClient | None
    ) -> None:
        super().__init__(ua, invite.call_id or "", CallState.CALLING, digest)
        self.invite = invite
        self.local_tag = invite.from_.tag if invite.from_ is not None and invite.from_.tag else ""
        self.local_sdp = invite.body.decode("utf-8", "replace")
        self._target = target
        self._handle: ClientTransaction | None = None
        self._cancel_requested = False
        self._final: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.pracks = PrackSender(self)  # RFC 3262
        self._reliable_answer = False  # our INVITE's offer was answered in a reliable 18x
        self._early_answer = False  # ...in any 18x (the early dialog is the far end's, INFO may flow)
        if invite.body:
            self.offer_event(OaEvent.SEND_OFFER)

    def start(self) -> None:
        self._spawn(self._run())

    async def _run(self) -> None:
        invite = self.invite
        try:
            for attempt in range(MAX_AUTH_RETRIES + 1):
                handle = await self.ua.layer.request(invite, self._target)
                dialog_sources.remember(self.peer_hosts, handle.destination)
                self._handle, self.invite = handle, handle.request
                if self._cancel_requested:
                    handle.cancel()
                final: Response | None = None
                async for response in handle:
                    if response.status < 200:
                        self._provisional(response)
                    elif response.status < 300:
                        await self._answered(response)
                        return
                    else:
                        final = response
                assert final is not None
                challenged = final.status in (401, 407) and not self._cancel_requested
                refusal = self.ua.pbx_binding.refusal(handle.destination, final) if challenged else None
                if refusal is not None:
                    logger.warning("sip_call_id=%s INVITE: credentials withheld: %s", self.call_id, refusal)
                elif challenged and self._digest is not None and attempt < MAX_AUTH_RETRIES:
                    try:
                        invite = self._digest.authorize(self.invite, final)  # CSeq + 1 (§22.2)
                        continue
                    except DigestError as exc:
                        logger.info("sip_call_id=%s INVITE not authorized: %s", self.call_id, exc.detail)
                self._failed(final)
                return
        except SIPError as exc:
            logger.info("sip_call_id=%s INVITE failed: %s", self.call_id, exc.detail)
            self._emit(Failed(500, "Server Internal Error"))
        except Exception:
            logger.exception("sip_call_id=%s INVITE failed", self.call_id)
            self._emit(Failed(500, "Server Internal Error"))
        finally:
            if not self._final.done():
                self._final.set_result(Response(500, "Call Ended"))

    @property
    def early_info_allowed(self) -> bool:
        """INFO in the early dialog (RFC 8840 §4.1, RFC 6086 §4.2.1): once an 18x of that dialog answered
        our INVITE's offer (the far end's ICE agent exists and knows ours); the runtime also needs the
        far end to have named the package in Recv-Info."""
        return self._early_answer and self.state is CallState.EARLY and self.dialog is not None

    @property
    def early_update_allowed(self) -> bool:
        return self._reliable_answer and "UPDATE" in self.peer_allows and self.offers.state is OaState.STABLE

    def _provisional(self, response: Response) -> None:
        outcome = self.ua.dialogs.on_invite_response(self.invite, response)
        if self.pracks.judge(response, outcome.dialog) in (Verdict.RETRANSMISSION, Verdict.OUT_OF_ORDER):
            return  # RFC 3262 §4: processed once, in order
        if outcome.dialog is not None and self.dialog is None:
            self.dialog = outcome.dialog
        if outcome.dialog is not None and self.state is CallState.CALLING:
            self._set_state(CallState.EARLY)
        self._emit(Provisional(response.status, response.reason))
        if response.headers.get("Allow") is not None or response.headers.get("Recv-Info") is not None:
            self.learn_allow(response)  # (its Info Packages too: INFO in the early dialog, RFC 6086 §5.2.2)
        if 180 <= response.status < 200 and _is_sdp(response):
            self.remote_sdp = response.body.decode("utf-8", "replace")
            if self.invite.body:
                self.offer_event(OaEvent.RECV_ANSWER)
                self._early_answer = outcome.dialog is not None
                # RFC 3311 §5.1: an answer in a *reliable* 18x lets us offer in UPDATE before the 2xx
                self._reliable_answer = self._reliable_answer or response.headers.get("RSeq") is not None
            self._emit(EarlyMedia(self.remote_sdp))

    async def _answered(self, response: Response) -> None:
        if not self._final.done():
            self._final.set_result(response)
        outcome = self.ua.dialogs.on_invite_response(self.invite, response)
        self.dialog = outcome.dialog
        if outcome.ack is not None:
            await self._ack(outcome.ack)
        self.remote_sdp = response.body.decode("utf-8", "replace") if response.body else self.remote_sdp
        self.learn_allow(response)
        if response.body:
            self.offer_event(OaEvent.RECV_ANSWER)
        self._set_state(CallState.CONFIRMED)
        self._emit(Answered(self.remote_sdp))
        policy = self.ua.settings.session_timer
        if policy is not None:
            try:
                self.start_session_timer(uac_decision(response, policy))
            except SIPError as exc:
                logger.info("sip_call_id=%s Session-Expires of the 2xx ignored: %s", self.call_id, exc.detail)
        if self._cancel_requested:  # the 2xx crossed our CANCEL: end the call at once (§9.1)
            logger.info("sip_call_id=%s answered after CANCEL: BYE", self.call_id)
            await self.bye()

    def _failed(self, response: Response) -> None:
        if not self._final.done():
            self._final.set_result(response)
        self.ua.dialogs.on_invite_response(self.invite, response)  # ends the early dialogs (§12.3)
        contacts = redirect_targets(response) if 300 <= response.status < 400 else ()
        self.offer_event(OaEvent.REJECTED)
        self._emit(Failed(response.status, response.reason, contacts))

    async def final_response(self) -> Response:
        """The final response to the INVITE (the last one, after any digest challenge)."""
        return await asyncio.shield(self._final)

    def cancel(self) -> None:
        """Give up on the unanswered call: CANCEL (RFC 3261 §9.1). Ends with ``Failed(487)``."""
        self._need("cancel", CallState.CALLING, CallState.EARLY)
        if self._cancel_requested:
            return
        logger.info("sip_call_id=%s cancelling", self.call_id)
        self._cancel_requested = True
        if self._handle is not None:
            self._handle.cancel()

    def on_stray_2xx(self, response: Response) -> None:
        dialog = self.dialog
        if dialog is None or response.to is None or response.to.tag == dialog.id.remote_tag:
            super().on_stray_2xx(response)
            return
        # A 2xx from another fork (RFC 3261 §13.2.2.4): ACK it, then BYE it.
        try:
            outcome = self.ua.dialogs.on_invite_response(self.invite, response)
        except SIPError as exc:
            logger.debug("sip_call_id=%s stray 2xx dropped: %s", self.call_id, exc.detail)
            return
        self._spawn(self._refuse_fork(outcome.ack, outcome.bye))

    async def _refuse_fork(self, ack: Request | None, bye: Request | None) -> None:
        if ack is not None:
            await self._resend(ack)
        if bye is not None and self.ua.layer.running:
            await (await self.ua.layer.request(bye, self.next_hop)).final_response()

    async def close(self) -> None:
        if self._ended:
            return
        if self.state in (CallState.CALLING, CallState.EARLY):
            self.cancel()
            await self._wait_tasks(2.0)
        elif self.state is CallState.CONFIRMED:
            with contextlib.suppress(CallError):
                await self.bye()
        if not self._ended:
            self._emit(Failed(503, "User Agent Closing"))
