"""Reliable provisional responses (RFC 3262) on the user agent's calls: the asyncio side of
:mod:`sipcore.dialogs.reliable`.

- :class:`ReliableResponder` (an incoming call whose INVITE requires 100rel, or supports it and
  ``sip.prack_when_supported`` is set): our 180/183 go through :class:`~sipcore.dialogs.reliable.ReliableSender`,
  retransmitted on the layer's scheduler until their PRACK; a PRACK is answered 200 (481 when it
  matches nothing, 400 without a valid RAck); after 64*T1 without PRACK the INVITE is rejected 500
  (§3); a 200 that must wait for the PRACK of a 1xx with SDP is sent when that PRACK comes.
- :class:`PrackSender` (an outgoing call): each reliable 1xx new and in order is PRACKed in its early
  dialog (RAck = RSeq, CSeq number, method, §7.2) and processed; a retransmission of it is not
  processed again but gets the same PRACK again (a retransmission of the PRACK's transaction, absorbed
  by the UAS's server transaction); one out of order is neither (§4). When our INVITE had no offer
  and the reliable 1xx carries one, the PRACK carries the answer (§5) from ``answer_early_offer``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from sipcore.dialogs.dialog import Dialog
from sipcore.dialogs.offer_answer import OaEvent
from sipcore.dialogs.reliable import (
    Action,
    Arm,
    GiveUp,
    ProvisionalTracker,
    RAck,
    ReliableSender,
    ReliableState,
    Transmit,
    Verdict,
)
from sipcore.errors import SIPError
from sipcore.syntax.message import Request, Response

if TYPE_CHECKING:
    from gateway.sip.transactions.scheduler import TimerHandle
    from gateway.sip.transactions.tu import IncomingRequest
    from gateway.sip.useragent.incoming import IncomingCall
    from gateway.sip.useragent.outgoing import OutgoingCall

__all__ = ["PrackSender", "ReliableResponder"]

logger = logging.getLogger(__name__)

SDP = "application/sdp"


def _is_sdp(message: Request | Response) -> bool:
    content_type = (message.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    return bool(message.body) and content_type == SDP


class ReliableResponder:
    """Our 1xx to one incoming INVITE, sent reliably (see the module note)."""

    def __init__(self, call: IncomingCall) -> None:
        self._call = call
        self._scheduler = call.ua.layer.scheduler
        self.sender = ReliableSender(call.request, t1=call.ua.settings.timers.t1, call_id=call.call_id)
        self._timer: TimerHandle | None = None
        self.deferred_2xx: Callable[[], None] | None = None  # our 200, waiting for a PRACK (§3)

    def send(self, response: Response) -> None:
        self._run(self.sender.send(response, self._scheduler.now()))

    def may_send_2xx(self) -> bool:
        return self.sender.may_send_2xx()

    def prack(self, incoming: IncomingRequest) -> None:
        """A PRACK in the early dialog (or after our 2xx: then it matches nothing, 481)."""
        request, dialog = incoming.request, self._call.dialog
        assert dialog is not None
        try:
            status, actions = self.sender.prack(request, self._scheduler.now())
        except SIPError as exc:  # no RAck, or a malformed one
            logger.info("sip_call_id=%s PRACK refused: %s", self._call.call_id, exc.detail)
            incoming.respond(dialog.respond(request, exc.status or 400, exc.phrase))
            return
        logger.info("sip_call_id=%s PRACK %s: %d", self._call.call_id, request.headers.get("RAck"), status)
        incoming.respond(dialog.respond(request, status))
        if status == 200 and _is_sdp(request):
            self._call.offer_event(OaEvent.RECV_ANSWER)  # our offer went in the 1xx (§5)
        self._run(actions)
        if self.deferred_2xx is not None and self.sender.may_send_2xx():
            send, self.deferred_2xx = self.deferred_2xx, None
            send()

    def finish(self) -> None:
        """The INVITE got its final response: nothing more is retransmitted."""
        self._cancel_timer()
        self.deferred_2xx = None
        if self.sender.state is not ReliableState.DONE:
            self.sender.finish()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        self._run(self.sender.timer(self._scheduler.now()))

    def _run(self, actions: list[Action]) -> None:
        call = self._call
        for action in actions:
            if isinstance(action, Transmit):
                if call.incoming.final is None and not call.incoming.cancelled:
                    call.incoming.respond(action.response)
            elif isinstance(action, Arm):
                self._cancel_timer()
                self._timer = self._scheduler.call_at(action.at, self._fire)
            elif isinstance(action, GiveUp):
                self._cancel_timer()
                self.deferred_2xx = None
                call.no_prack(action.status, action.reason)


class PrackSender:
    """The PRACKs of one outgoing INVITE (see the module note)."""

    def __init__(self, call: OutgoingCall) -> None:
        self._call = call
        self._tracker = ProvisionalTracker()
        self._sent: dict[tuple[str, RAck], Request] = {}
        # Late offer: the answer to an offer in a reliable 1xx, for the PRACK (RFC 3262 §5).
        self.answer_early_offer: Callable[[str], str | None] | None = None

    def judge(self, response: Response, dialog: Dialog | None) -> Verdict:
        """The verdict on a 1xx; PRACKs it (or re-sends its PRACK) as that verdict says."""
        verdict, rack = self._tracker.classify(response)
        tag = response.to.tag if response.to is not None and response.to.tag else ""
        if verdict is Verdict.OUT_OF_ORDER:
            logger.info(
                "sip_call_id=%s reliable %d (RSeq %s) out of order: not PRACKed (RFC 3262 §4)",
                self._call.call_id,
                response.status,
                response.headers.get("RSeq"),
            )
        elif verdict is Verdict.RETRANSMISSION and rack is not None:
            sent = self._sent.get((tag, rack))
            if sent is not None:
                self._call.spawn(self._resend(sent))
        elif verdict is Verdict.NEW and rack is not None and dialog is not None:
            self._call.spawn(self._prack(dialog, tag, rack, response))
        return verdict

    def _answer_for(self, response: Response) -> bytes:
        call = self._call
        if call.invite.body or not _is_sdp(response) or self.answer_early_offer is None:
            return b""
        call.offer_event(OaEvent.RECV_OFFER)
        answer = self.answer_early_offer(response.body.decode("utf-8", "replace"))
        if not answer:
            return b""
        call.offer_event(OaEvent.SEND_ANSWER)
        call.local_sdp = answer
        return answer.encode()

    async def _prack(self, dialog: Dialog, tag: str, rack: RAck, response: Response) -> None:
        call = self._call
        body = self._answer_for(response)
        try:
            prack = dialog.create_request(
                "PRACK", body=body, content_type=SDP if body else None, headers=(("RAck", str(rack)),)
            )
            self._sent[(tag, rack)] = prack
            logger.info("sip_call_id=%s PRACK %s", call.call_id, rack)
            handle = await call.ua.layer.request(prack, call.next_hop)
            final = await handle.final_response()
            if final.status != 481:  # a PRACK that crossed the final response: 481 ends no dialog
                dialog.receive_response(final)
            if final.status >= 300:
                logger.info("sip_call_id=%s PRACK answered %d %s", call.call_id, final.status, final.reason)
        except (SIPError, OSError) as exc:
            logger.info("sip_call_id=%s PRACK failed: %s", call.call_id, exc)

    async def _resend(self, prack: Request) -> None:
        if self._call.ua.layer.running:
            logger.debug("sip_call_id=%s reliable 1xx retransmitted: PRACK again", self._call.call_id)
            await self._call.ua.layer.send_stateless(prack, self._call.next_hop)
